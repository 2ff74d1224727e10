//! `POST /api/reload`: load the config again and apply what changed.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use ractor::rpc::CallResult;

use super::error::ErrorBody;
use super::{ApiError, ApiState};
use crate::actors::supervisor::{ReloadError, ReloadReport, ReloadTrigger, SupervisorMsg};

/// A reload of many thousands of assets is well under a second; this only guards a stuck tree.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// 200 with what changed, 422 with every problem (and then nothing changed).
#[utoipa::path(post, path = "/api/reload", tag = "config", security(("apiToken" = [])),
    responses(
        (status = 200, description = "Applied: what changed", body = ReloadReport),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 422, description = "The new config has problems; nothing changed", body = ErrorBody),
        (status = 503, description = "The supervisor did not answer", body = ErrorBody),
    ))]
pub async fn reload(State(state): State<ApiState>) -> Result<Json<ReloadReport>, ApiError> {
    let answer = state
        .supervisor
        .call(|reply| SupervisorMsg::Reload(ReloadTrigger::Api, Some(reply)), Some(RELOAD_TIMEOUT))
        .await;
    match answer {
        Ok(CallResult::Success(Ok(report))) => Ok(Json(report)),
        Ok(CallResult::Success(Err(ReloadError::Config(problems)))) => Err(ApiError::InvalidConfig(problems)),
        Ok(CallResult::Success(Err(ReloadError::Settings(message)))) => Err(ApiError::InvalidSettings(message)),
        Ok(_) | Err(_) => Err(ApiError::Unavailable("the supervisor did not answer the reload".into())),
    }
}
