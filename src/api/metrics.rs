//! `/metrics`: Prometheus text format, served by the API itself (no second port).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiState};
use crate::store::Store;
use crate::telemetry::names;

#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain")))]
pub async fn scrape(State(state): State<ApiState>) -> Response {
    if let Store::Sqlite(_) = state.store {
        metrics::gauge!(names::SQLITE_MEMORY_BYTES).set(crate::store::sqlite::memory_used() as f64);
    }
    // Computed here rather than by a timer: one report over every asset costs three queries
    // (README: a few ms for 1,000 assets), and a scrape that fails to get it keeps the last values.
    if let Err(error) = super::sla::refresh_budget_metric(&state).await {
        tracing::warn!(error = %error, "cannot compute the error budgets for /metrics");
    }
    // Rendering walks every series (a second of CPU at 100,000 assets with full histograms):
    // on a blocking thread, so that the runtime's workers go on probing meanwhile.
    let rendered = tokio::task::spawn_blocking(move || {
        let text = state.metrics.render();
        let retired = state.services.retired_assets.read();
        if retired.is_empty() { text } else { crate::telemetry::without_assets(&text, &retired) }
    })
    .await;
    match rendered {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response(),
        Err(error) => {
            tracing::error!(error = %error, "rendering /metrics failed");
            ApiError::Unavailable("rendering the metrics failed".into()).into_response()
        }
    }
}
