//! Liveness and readiness.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ractor::ActorStatus;
use serde_json::{Value, json};

use super::ApiState;

const STORE_PING_TIMEOUT: Duration = Duration::from_secs(1);

/// `GET /healthz`: 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process runs", body = Object, example = json!({"status": "ok"}))))]
pub async fn liveness() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /api/health`: the seed's health check.
#[utoipa::path(get, path = "/api/health", tag = "health",
    responses((status = 200, description = "The seed's health check", body = Object, example = json!({"status": "healthy"}))))]
pub async fn seed_health() -> Json<Value> {
    Json(json!({"status": "healthy"}))
}

/// `GET /readyz`: 200 when the config is loaded, the store answers and the supervisor runs;
/// 503 otherwise, with what is wrong. A monitor that cannot keep up with its probes says so here
/// too, without failing readiness (it still answers and still probes).
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Config loaded, store reachable, supervisor running; each check with its status", body = Object,
            example = json!({"status": "ready", "checks": {"config": {"status": "ok"}, "store": {"status": "ok"}, "supervisor": {"status": "ok"}, "scheduler": {"status": "ok", "probesWaitingForWorker": 0}}})),
        (status = 503, description = "Not ready (or stopping): the failing checks say why", body = Object),
    ))]
pub async fn readiness(State(state): State<ApiState>) -> (StatusCode, Json<Value>) {
    let mut store = match tokio::time::timeout(STORE_PING_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => json!({"status": "ok"}),
        Ok(Err(error)) => json!({"status": "down", "error": error.to_string()}),
        Err(_) => json!({"status": "down", "error": "no answer within 1s"}),
    };
    // While the database is away, results wait here: how many, and how many were dropped.
    store["backlog"] = json!(state.services.directory.backlog().lock().stats());
    let supervisor = match state.supervisor.get_status() {
        ActorStatus::Running => json!({"status": "ok"}),
        other => json!({"status": "down", "error": format!("supervisor is {other:?}")}),
    };
    let waiting = state.services.probes_waiting();
    let scheduler = json!({
        "status": if waiting > 0 && state.services.workers.available_permits() == 0 { "saturated" } else { "ok" },
        "probesWaitingForWorker": waiting,
    });
    let stopping = state.lifecycle.is_stopping();
    let ready = !stopping && store["status"] == "ok" && supervisor["status"] == "ok";
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if ready { "ready" } else if stopping { "stopping" } else { "not ready" },
        "checks": {
            "config": {"status": "ok"},
            "store": store,
            "supervisor": supervisor,
            "scheduler": scheduler,
        },
    });
    (status, Json(body))
}
