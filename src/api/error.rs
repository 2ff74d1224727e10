//! API errors: each variant is a decision about the status code; the body is always JSON.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::config::Problems;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadParameter { parameter: &'static str, value: String, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("missing or wrong push token")]
    WrongPushToken,
    #[error("the database is unavailable")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    InvalidConfig(Problems),
    #[error("invalid settings: {0}")]
    InvalidSettings(String),
}

impl ApiError {
    pub fn bad_parameter(parameter: &'static str, value: &str, message: impl Into<String>) -> Self {
        ApiError::BadParameter { parameter, value: value.to_string(), message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            ApiError::BadParameter { parameter, value, message } => {
                (StatusCode::BAD_REQUEST, json!({"error": message, "parameter": parameter, "value": value}))
            }
            ApiError::NotFound(message) => (StatusCode::NOT_FOUND, json!({"error": message})),
            ApiError::Unauthorized | ApiError::WrongPushToken => {
                (StatusCode::UNAUTHORIZED, json!({"error": self.to_string()}))
            }
            ApiError::Store(error) => {
                tracing::error!(error.cause_chain = %error, "store query failed");
                (StatusCode::SERVICE_UNAVAILABLE, json!({"error": self.to_string()}))
            }
            ApiError::Unavailable(message) => (StatusCode::SERVICE_UNAVAILABLE, json!({"error": message})),
            ApiError::InvalidConfig(problems) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({
                    "error": format!("the config has {} problem(s); nothing was changed", problems.0.len()),
                    "problems": problems.0.iter().map(|p| json!({"file": p.file, "path": p.path, "message": p.message})).collect::<Vec<_>>(),
                }),
            ),
            ApiError::InvalidSettings(message) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": format!("invalid settings: {message}; nothing was changed")}),
            ),
        };
        (status, Json(body)).into_response()
    }
}

/// A JSON error response for middleware that has no `ApiError` at hand.
pub fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}
