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

/// `GET /readyz`: 200 when statusd does its job: the store answers and takes writes, the
/// supervisor runs and no actor is crashed; 503 otherwise, with what is wrong. Two things are
/// reported without failing readiness, because statusd still works through them: a refused
/// reload (the previous config, still valid, stays in force and is served) and a scheduler that
/// cannot keep up with its probes (it still answers and still probes): then `"degraded": true`
/// and the `scheduler` check is `behind`, with the last minute's late probes and skipped ticks
/// (see `actors/lateness.rs`).
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Store reachable and writing, supervisor running, no actor crashed; each check with its status", body = Object,
            example = json!({"status": "ready", "degraded": false, "checks": {"config": {"status": "ok"}, "store": {"status": "ok", "backlog": {"queued": 0, "accepted": 120, "written": 120, "dropped": 0, "rejected": 0}}, "supervisor": {"status": "ok"}, "actors": {"status": "ok", "crashed": []}, "scheduler": {"status": "ok", "probesWaitingForWorker": 0, "lastMinute": {"probesStarted": 1200, "probesLate": 0, "ticksSkipped": 0}}}})),
        (status = 503, description = "Not ready (or stopping): the failing checks say why", body = Object),
    ))]
pub async fn readiness(State(state): State<ApiState>) -> (StatusCode, Json<Value>) {
    let mut store = match tokio::time::timeout(STORE_PING_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => json!({"status": "ok"}),
        Ok(Err(error)) => json!({"status": "down", "error": error.to_string()}),
        Err(_) => json!({"status": "down", "error": "no answer within 1s"}),
    };
    {
        let backlog = state.services.directory.backlog();
        // Answering is not enough: writes must go through.
        if store["status"] == "ok"
            && let Err(error) = backlog.write_health(state.services.persistence.write_stall())
        {
            store = json!({"status": "down", "error": error});
        }
        // While the database is away, results wait here: how many, and how many were dropped.
        store["backlog"] = json!(backlog.stats());
    }
    let supervisor = match state.supervisor.get_status() {
        ActorStatus::Running => json!({"status": "ok"}),
        other => json!({"status": "down", "error": format!("supervisor is {other:?}")}),
    };
    let crashed = state.services.tree.crashed();
    let actors = if crashed.is_empty() {
        json!({"status": "ok", "crashed": []})
    } else {
        let error = format!("{} keep failing and wait out a restart backoff", crashed.join(", "));
        json!({"status": "down", "crashed": crashed, "error": error})
    };
    let config = match state.services.tree.refused_reload() {
        None => json!({"status": "ok"}),
        Some(refused) => json!({
            "status": "warning",
            "error": format!("the last reload was refused; the config before it stays in force: {}", refused.error),
            "refusedAt": refused.at,
        }),
    };
    let waiting = state.services.probes_waiting();
    let window = state.services.lateness.window();
    let behind = window.behind();
    let mut scheduler = json!({
        "status": if behind.is_some() {
            "behind"
        } else if waiting > 0 && state.services.workers.available_permits() == 0 {
            "saturated"
        } else {
            "ok"
        },
        "probesWaitingForWorker": waiting,
        "lastMinute": {"probesStarted": window.started, "probesLate": window.late, "ticksSkipped": window.skipped},
    });
    if let Some(error) = &behind {
        scheduler["error"] = json!(error);
    }
    let stopping = state.lifecycle.is_stopping();
    let ready = !stopping && [&store, &supervisor, &actors].iter().all(|check| check["status"] == "ok");
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if ready { "ready" } else if stopping { "stopping" } else { "not ready" },
        // Working, but not keeping up with its probes: ready stays true (it still probes and
        // answers); this says it is late.
        "degraded": behind.is_some(),
        "checks": {
            "config": config,
            "store": store,
            "supervisor": supervisor,
            "actors": actors,
            "scheduler": scheduler,
        },
    });
    (status, Json(body))
}
