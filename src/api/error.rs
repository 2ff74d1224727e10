//! API errors: each variant is a decision about the status code; the body is always JSON.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::config::Problems;
use crate::store::{Failure, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadParameter { parameter: String, value: String, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("missing or wrong push token")]
    WrongPushToken,
    /// 503 when the database cannot be reached (try again later); 500 with an error id for
    /// anything else, the full error logged under that id (it may name tables and values).
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    InvalidConfig(Problems),
    /// The settings' own message, which says they are invalid and names each problem.
    #[error("{0}")]
    InvalidSettings(String),
    /// A maintenance window in a request body with problems (400, each listed).
    #[error("{0}")]
    InvalidWindow(Problems),
    /// What was asked clashes with what exists or its state (409): a taken id, acknowledging a
    /// closed incident.
    #[error("{0}")]
    Conflict(String),
}

impl ApiError {
    pub fn bad_parameter(parameter: impl Into<String>, value: &str, message: impl Into<String>) -> Self {
        ApiError::BadParameter { parameter: parameter.into(), value: value.to_string(), message: message.into() }
    }
}

/// Every error answer: `{"error": "..."}`, plus what went wrong where it helps.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub error: String,
    /// The query parameter that was wrong (400).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// Its value, as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Every problem of a refused config (422).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<ProblemBody>>,
    /// An internal error (500): the log line with the details carries the same id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_id: Option<uuid::Uuid>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProblemBody {
    pub file: String,
    /// Where in the file, e.g. `assets[2].intervalSeconds`.
    pub path: String,
    pub message: String,
}

impl ErrorBody {
    fn new(error: impl Into<String>) -> Self {
        ErrorBody { error: error.into(), ..ErrorBody::default() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            ApiError::BadParameter { parameter, value, message } => (
                StatusCode::BAD_REQUEST,
                ErrorBody { parameter: Some(parameter.clone()), value: Some(value.clone()), ..ErrorBody::new(message) },
            ),
            ApiError::NotFound(message) => (StatusCode::NOT_FOUND, ErrorBody::new(message)),
            ApiError::Conflict(message) => (StatusCode::CONFLICT, ErrorBody::new(message)),
            ApiError::Unauthorized | ApiError::WrongPushToken => {
                (StatusCode::UNAUTHORIZED, ErrorBody::new(self.to_string()))
            }
            ApiError::Store(error) if error.failure() == Failure::Unavailable => {
                tracing::error!(error.cause_chain = %error, "store query failed: the database is unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, ErrorBody::new("the database is unavailable"))
            }
            ApiError::Store(error) => {
                let error_id = uuid::Uuid::now_v7();
                tracing::error!(%error_id, error.cause_chain = %error, "store query failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorBody {
                        error_id: Some(error_id),
                        ..ErrorBody::new(format!("the database query failed (error id {error_id}, in the log)"))
                    },
                )
            }
            ApiError::Unavailable(message) => (StatusCode::SERVICE_UNAVAILABLE, ErrorBody::new(message)),
            ApiError::InvalidWindow(problems) => (
                StatusCode::BAD_REQUEST,
                ErrorBody {
                    problems: Some(problem_bodies(problems)),
                    ..ErrorBody::new(format!(
                        "invalid maintenance window: {}",
                        problems.0.iter().map(describe).collect::<Vec<_>>().join("; ")
                    ))
                },
            ),
            ApiError::InvalidConfig(problems) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorBody {
                    problems: Some(problem_bodies(problems)),
                    ..ErrorBody::new(format!("the config has {} problem(s); nothing was changed", problems.0.len()))
                },
            ),
            ApiError::InvalidSettings(message) => {
                (StatusCode::UNPROCESSABLE_ENTITY, ErrorBody::new(format!("{message}; nothing was changed")))
            }
        };
        (status, Json(body)).into_response()
    }
}

fn problem_bodies(problems: &Problems) -> Vec<ProblemBody> {
    problems
        .0
        .iter()
        .map(|p| ProblemBody { file: p.file.clone(), path: p.path.clone(), message: p.message.clone() })
        .collect()
}

/// `path: message`, or the message alone for the whole document.
fn describe(problem: &crate::config::Problem) -> String {
    if problem.path.is_empty() { problem.message.clone() } else { format!("{}: {}", problem.path, problem.message) }
}

pub fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(ErrorBody::new(message))).into_response()
}
