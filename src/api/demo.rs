//! Demo routes (`demo = true` in the settings, as in the example `config/statusd.toml`), so
//! that a first run on a machine without internet shows the whole cycle: a target that goes
//! down and comes back, incidents opening and closing, and a webhook that receives the
//! notifications and logs them. Off unless asked for.

use axum::Json;
use axum::http::StatusCode;
use chrono::Utc;
use serde_json::{Value, json};

/// The flaky target is up for the first half of each cycle and down for the second.
const CYCLE_SECONDS: i64 = 120;

/// `GET /demo/flaky`: 200 for a minute, then 503 for a minute, by the wall clock.
#[utoipa::path(get, path = "/demo/flaky", tag = "demo",
    description = "Only with `demo = true`: up for a minute, down for a minute.",
    responses(
        (status = 200, description = "In its up minute", body = Object),
        (status = 503, description = "In its down minute", body = Object),
    ))]
pub async fn flaky() -> (StatusCode, Json<Value>) {
    let phase = Utc::now().timestamp().rem_euclid(CYCLE_SECONDS);
    if phase < CYCLE_SECONDS / 2 {
        (StatusCode::OK, Json(json!({"status": "up", "downInSeconds": CYCLE_SECONDS / 2 - phase})))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "down", "upInSeconds": CYCLE_SECONDS - phase})))
    }
}

/// `POST /demo/webhook`: logs the notification it receives (a generic webhook payload).
#[utoipa::path(post, path = "/demo/webhook", tag = "demo",
    description = "Only with `demo = true`: logs the notification it receives.",
    request_body(content = Object, description = "A generic webhook notification"),
    responses((status = 204, description = "Received")))]
pub async fn webhook(Json(notification): Json<Value>) -> StatusCode {
    tracing::info!(
        event = %notification["event"].as_str().unwrap_or("?"),
        asset_id = %notification["assetId"].as_str().unwrap_or("?"),
        "demo webhook received: {}",
        notification
    );
    StatusCode::NO_CONTENT
}
