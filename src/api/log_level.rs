//! `PUT /api/log-level`: change what the running process logs, without a restart.

use axum::Json;
use axum::body::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;

#[derive(Deserialize)]
struct LevelChange {
    level: String,
}

/// Body `{"level": "debug"}` or a filter (`"statusd=debug,warn"`); 400 for anything else.
pub async fn set(body: Bytes) -> Result<Json<Value>, ApiError> {
    let change: LevelChange = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_parameter(
            "level",
            &String::from_utf8_lossy(&body),
            format!("expected {{\"level\": \"debug\"}}: {e}"),
        )
    })?;
    crate::telemetry::set_log_level(&change.level)
        .map_err(|e| ApiError::bad_parameter("level", &change.level, e.to_string()))?;
    tracing::info!(level = %change.level, "log level changed");
    Ok(Json(json!({"level": change.level})))
}
