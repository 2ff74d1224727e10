//! `[metrics] per_asset`: `full` exports every per-asset series (a latency histogram per
//! asset); `summary` keeps per asset what an alert needs (up, last latency, counters) and
//! latency histograms per probe type only.
//!
//! The metrics recorder is process-wide, so each statusd here watches an asset of its own and
//! the checks look at that asset's lines only.

use std::time::Duration;

use serde_json::json;

use crate::e2e::harness::{Setup, Statusd, Target, eventually, http_asset, no_channels};

const WAIT: Duration = Duration::from_secs(20);

/// Starts statusd watching one healthy asset, with `settings`, and waits for a probe of it to
/// show in `/metrics`; answers the page.
async fn scraped(id: &str, settings: &str, target: &Target) -> (Setup, Statusd, String) {
    let backend = crate::backend().await.expect("a backend");
    let setup = Setup::new(backend, json!([http_asset(id, &target.url())]), no_channels()).await;
    setup.write_settings(settings);
    let statusd = setup.start(&[]).await;
    let counted = format!("statusd_probe_total{{asset=\"{id}\",result=\"success\"}}");
    let metrics = eventually("a probe counted", WAIT, || async {
        let metrics = statusd.metrics().await;
        metrics.lines().any(|line| line.starts_with(&counted) && !line.ends_with(" 0")).then_some(metrics)
    })
    .await;
    (setup, statusd, metrics)
}

fn lines_of<'a>(metrics: &'a str, id: &str) -> Vec<&'a str> {
    let asset = format!("asset=\"{id}\"");
    let actor = format!("actor=\"asset:{id}\"");
    metrics.lines().filter(|line| line.contains(&asset) || line.contains(&actor)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn summary_metrics_keep_per_asset_up_and_counters_but_no_per_asset_histogram() {
    if crate::backend().await.is_none() {
        return;
    }
    let target = Target::start().await;

    let (_setup, full, metrics) = scraped("metrics-full", "", &target).await;
    let lines = lines_of(&metrics, "metrics-full");
    for series in [
        "statusd_probe_duration_seconds_bucket{asset=\"metrics-full\",le=\"0.005\"}",
        "statusd_probe_duration_seconds_count{asset=\"metrics-full\"}",
        "statusd_asset_up{asset=\"metrics-full\"} 1",
        "statusd_asset_flapping{asset=\"metrics-full\"} 0",
        "statusd_actor_restarts_total{actor=\"asset:metrics-full\"} 0",
    ] {
        assert!(lines.iter().any(|line| line.starts_with(series)), "full: missing {series} in {lines:#?}");
    }
    assert!(!lines.iter().any(|line| line.starts_with("statusd_probe_last_duration_seconds")), "{lines:#?}");
    full.stop().await;

    let (_setup, summary, metrics) = scraped("metrics-summary", "[metrics]\nper_asset = \"summary\"\n", &target).await;
    let lines = lines_of(&metrics, "metrics-summary");
    for series in [
        "statusd_asset_up{asset=\"metrics-summary\"} 1",
        "statusd_probe_total{asset=\"metrics-summary\",result=\"success\"}",
        "statusd_probe_total{asset=\"metrics-summary\",result=\"failure\"} 0",
        "statusd_probe_last_duration_seconds{asset=\"metrics-summary\"}",
    ] {
        assert!(lines.iter().any(|line| line.starts_with(series)), "summary: missing {series} in {lines:#?}");
    }
    assert!(!lines.iter().any(|line| line.starts_with("statusd_probe_duration_seconds")), "{lines:#?}");
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("statusd_probe_duration_seconds_bucket{type=\"http\",le=\"0.005\"}")),
        "the latency histogram per probe type"
    );
    // Four lines for a healthy asset, against the dozens of a histogram; no error budget per
    // asset (GET /api/sla has it), no skipped ticks nor degraded at zero.
    assert_eq!(lines.len(), 4, "{lines:#?}");

    // As Prometheus scrapes: gzip asked for, the page comes compressed and reads the same
    // (by a client that leaves the body as it came).
    let undecoding = reqwest::Client::builder().gzip(false).build().expect("client");
    let response = undecoding
        .get(summary.url("/metrics"))
        .header(reqwest::header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .expect("metrics");
    assert_eq!(response.headers().get(reqwest::header::CONTENT_ENCODING).map(|v| v.as_bytes()), Some(&b"gzip"[..]));
    let compressed = response.bytes().await.expect("body");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&compressed[..]), &mut text).expect("gzip");
    assert!(compressed.len() * 3 < text.len(), "{} bytes for {} of text", compressed.len(), text.len());
    assert!(text.contains("statusd_asset_up{asset=\"metrics-summary\"} 1"), "{text}");
    summary.stop().await;
}
