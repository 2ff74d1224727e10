//! `PUT /api/log-level`: change what the running process logs, without a restart.

use axum::Json;
use axum::body::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use super::error::ErrorBody;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LevelChange {
    level: String,
}

/// Body `{"level": "debug"}` or a filter (`"statusd=debug,warn"`); 400 for anything else.
#[utoipa::path(put, path = "/api/log-level", tag = "config", security(("apiToken" = [])),
    request_body(content = LevelChange, example = json!({"level": "debug"})),
    responses(
        (status = 200, description = "The new level", body = LevelChange),
        (status = 400, description = "Not a level or filter", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
    ))]
pub async fn set_log_level(body: Bytes) -> Result<Json<Value>, ApiError> {
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
