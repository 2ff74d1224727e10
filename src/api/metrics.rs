//! `/metrics`: Prometheus text format, served by the API itself (no second port).

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiState};
use crate::actors::health::StatusName;
use crate::actors::index::AssetIndex;
use crate::settings::PerAsset;
use crate::statuspage::Encoding;
use crate::store::Store;
use crate::telemetry::names;

#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain")))]
pub async fn scrape(State(state): State<ApiState>, request: HeaderMap) -> Response {
    if let Store::Sqlite(_) = state.store {
        metrics::gauge!(names::SQLITE_MEMORY_BYTES).set(crate::store::sqlite::memory_used() as f64);
    }
    // Computed here rather than by a timer: one report over every asset costs three queries
    // (README: a few ms for 1,000 assets), and a scrape that fails to get it keeps the last values.
    // Per asset, with full per-asset metrics only: at 100,000 assets the report costs more
    // than a second, and `GET /api/sla` gives the same figures.
    let summary = state.services.per_asset == PerAsset::Summary;
    if !summary && let Err(error) = super::sla::refresh_budget_metric(&state).await {
        tracing::warn!(error = %error, "cannot compute the error budgets for /metrics");
    }
    // Prometheus asks for gzip at every scrape (`Accept-Encoding: gzip`), as node_exporter and
    // client_golang serve it: the page of per-asset lines is a few names repeated, and shrinks
    // about tenfold. Compressed with the render, off the runtime threads.
    let accepted = request.get(header::ACCEPT_ENCODING).and_then(|value| value.to_str().ok()).unwrap_or("");
    let gzip = Encoding::accepts(accepted, "gzip");
    // Rendering walks every series (a second of CPU at 100,000 assets with full histograms):
    // on a blocking thread, so that the runtime's workers go on probing meanwhile.
    let rendered = tokio::task::spawn_blocking(move || {
        let mut text = state.metrics.render();
        // Left out: the series of assets removed from the config, and in cluster mode those of
        // assets this replica handed over to another (their owner exports them now: two
        // replicas' values for one asset would contradict each other).
        let mut hidden = state.services.retired_assets.read().clone();
        if state.services.cluster.enabled {
            hidden.extend(state.services.assets.all().into_iter().filter(|e| e.elsewhere).map(|e| e.config.id.clone()));
        }
        if !hidden.is_empty() {
            text = crate::telemetry::without_assets(&text, &hidden);
        }
        if summary {
            per_asset_summary(&state.services.assets, &mut text);
        }
        // The fastest level: a scrape is made once and read once.
        if gzip { crate::statuspage::gzip(text.as_bytes(), flate2::Compression::fast()) } else { text.into_bytes() }
    })
    .await;
    match rendered {
        Ok(body) => {
            let mut response =
                ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response();
            if gzip {
                response.headers_mut().insert(header::CONTENT_ENCODING, header::HeaderValue::from_static("gzip"));
            }
            response.headers_mut().insert(header::VARY, header::HeaderValue::from_static("accept-encoding"));
            response
        }
        Err(error) => {
            tracing::error!(error = %error, "rendering /metrics failed");
            ApiError::Unavailable("rendering the metrics failed".into()).into_response()
        }
    }
}

/// With `[metrics] per_asset = "summary"`: per asset, up, last latency and the probe counters,
/// written from the asset index (what each actor checkpoints after each message) in one pass,
/// instead of registered with the recorder, which sorts and formats every series at each
/// scrape (seconds at 100,000 assets). Skipped ticks and degraded appear for the assets that
/// have them. Asset ids are a safe alphabet (config validation): no escaping needed.
fn per_asset_summary(index: &AssetIndex, text: &mut String) {
    use std::fmt::Write;
    struct Line {
        up: Option<bool>,
        degraded: bool,
        last_seconds: Option<f64>,
        successes: u64,
        failures: u64,
        skipped: u64,
    }
    let entries = index.all();
    let lines: Vec<(&str, Line)> = entries
        .iter()
        // Cluster mode: another replica probes it, and exports its series.
        .filter(|entry| !entry.elsewhere)
        .map(|entry| {
            let memory = entry.memory.lock();
            let up = match memory.health.name() {
                StatusName::Up => Some(true),
                StatusName::Down => Some(false),
                _ => None,
            };
            let line = Line {
                up,
                degraded: memory.status() == StatusName::Degraded,
                last_seconds: memory.last_probe.as_ref().map(|p| p.latency_ms.max(0) as f64 / 1000.0),
                successes: memory.successes,
                failures: memory.failures,
                skipped: memory.skipped_ticks,
            };
            (entry.config.id.as_str(), line)
        })
        .collect();
    text.reserve(lines.len() * 200);
    // Writing to a String cannot fail.
    let _ = writeln!(text, "# HELP {} 1 while the asset is up, 0 while it is down.", names::ASSET_UP);
    let _ = writeln!(text, "# TYPE {} gauge", names::ASSET_UP);
    for (id, line) in &lines {
        if let Some(up) = line.up {
            let _ = writeln!(text, "{}{{asset=\"{id}\"}} {}", names::ASSET_UP, u8::from(up));
        }
    }
    let _ = writeln!(
        text,
        "# HELP {} How long the asset's last probe took, in seconds.",
        names::PROBE_LAST_DURATION_SECONDS
    );
    let _ = writeln!(text, "# TYPE {} gauge", names::PROBE_LAST_DURATION_SECONDS);
    for (id, line) in &lines {
        if let Some(seconds) = line.last_seconds {
            let _ = writeln!(text, "{}{{asset=\"{id}\"}} {seconds}", names::PROBE_LAST_DURATION_SECONDS);
        }
    }
    let _ = writeln!(text, "# HELP {} Probes run, by asset and result (success or failure).", names::PROBE_TOTAL);
    let _ = writeln!(text, "# TYPE {} counter", names::PROBE_TOTAL);
    for (id, line) in &lines {
        let _ = writeln!(text, "{}{{asset=\"{id}\",result=\"success\"}} {}", names::PROBE_TOTAL, line.successes);
        let _ = writeln!(text, "{}{{asset=\"{id}\",result=\"failure\"}} {}", names::PROBE_TOTAL, line.failures);
    }
    if lines.iter().any(|(_, line)| line.degraded) {
        let _ = writeln!(text, "# TYPE {} gauge", names::ASSET_DEGRADED);
        for (id, _) in lines.iter().filter(|(_, line)| line.degraded) {
            let _ = writeln!(text, "{}{{asset=\"{id}\"}} 1", names::ASSET_DEGRADED);
        }
    }
    if lines.iter().any(|(_, line)| line.skipped > 0) {
        let _ = writeln!(text, "# TYPE {} counter", names::PROBES_SKIPPED_TOTAL);
        for (id, line) in lines.iter().filter(|(_, line)| line.skipped > 0) {
            let _ = writeln!(text, "{}{{asset=\"{id}\"}} {}", names::PROBES_SKIPPED_TOTAL, line.skipped);
        }
    }
}
