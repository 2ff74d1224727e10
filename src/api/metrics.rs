//! `/metrics`: Prometheus text format, served by the API itself (no second port).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::ApiState;
use crate::store::Store;
use crate::telemetry::names;

#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain")))]
pub async fn scrape(State(state): State<ApiState>) -> impl IntoResponse {
    if let Store::Sqlite(_) = state.store {
        metrics::gauge!(names::SQLITE_MEMORY_BYTES).set(crate::store::sqlite::memory_used() as f64);
    }
    // Computed here rather than by a timer: one report over every asset costs three queries
    // (README: a few ms for 1,000 assets), and a scrape that fails to get it keeps the last values.
    if let Err(error) = super::sla::refresh_budget_metric(&state).await {
        tracing::warn!(error = %error, "cannot compute the error budgets for /metrics");
    }
    let mut text = state.metrics.render();
    let retired = state.services.retired_assets.read();
    if !retired.is_empty() {
        text = crate::telemetry::without_assets(&text, &retired);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}
