//! `GET /api/version`: which build is answering.

use axum::Json;
use serde_json::{Value, json};

#[utoipa::path(get, path = "/api/version", tag = "health",
    responses((status = 200, description = "The running build", body = Object, example = json!({"version": "0.1.0", "commit": "3ee859f0a1b2"}))))]
pub async fn version() -> Json<Value> {
    Json(json!({"version": crate::VERSION, "commit": crate::COMMIT}))
}
