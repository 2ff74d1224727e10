//! `GET|POST /api/push/{id}?token=…[&status=up|down][&msg=…]`: a heartbeat from what cannot be
//! probed (cron jobs, batch tasks). Not behind the API token: each push asset has its own,
//! compared in constant time. Only the path is ever logged, never the query holding it.

use axum::Json;
use axum::extract::{Path, Query, State};
use ractor::call_t;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ErrorBody;
use super::{ApiError, ApiState};
use crate::actors::asset::AssetMsg;
use crate::actors::supervisor::SupervisorMsg;
use crate::probe::ProbeSpec;

/// A pushed message is stored with every result: a runaway one is cut here.
const MAX_MESSAGE_CHARS: usize = 200;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PushParams {
    /// The asset's token.
    #[serde(default)]
    #[param(required = true)]
    token: String,
    /// `up` (the default) or `down`.
    #[serde(default)]
    status: Option<String>,
    /// Stored with the result; at most 200 characters are kept.
    #[serde(default)]
    msg: Option<String>,
}

/// What a push answers; the same for GET (a cron job's curl) and POST.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only describes the answers of `push` for the OpenAPI document.
enum PushAnswers {
    #[response(status = 200, description = "Accepted",
        example = json!({"accepted": true, "assetId": "nightly-backup", "status": "up"}))]
    Accepted(#[to_schema] Value),
    #[response(status = 400, description = "A status other than up or down")]
    BadStatus(#[to_schema] ErrorBody),
    #[response(status = 401, description = "Wrong token")]
    WrongToken(#[to_schema] ErrorBody),
    #[response(status = 404, description = "No such push asset")]
    NotFound(#[to_schema] ErrorBody),
    #[response(status = 503, description = "The asset's actor is unavailable")]
    Unavailable(#[to_schema] ErrorBody),
}

#[utoipa::path(get, path = "/api/push/{id}", tag = "assets",
    description = "A heartbeat for a push asset, guarded by that asset's own token (not the API token).",
    params(("id" = String, Path, description = "Push asset id"), PushParams),
    responses(PushAnswers))]
pub async fn push_get(
    state: State<ApiState>,
    id: Path<String>,
    params: Query<PushParams>,
) -> Result<Json<Value>, ApiError> {
    push(state, id, params).await
}

#[utoipa::path(post, path = "/api/push/{id}", tag = "assets",
    description = "A heartbeat for a push asset, guarded by that asset's own token (not the API token).",
    params(("id" = String, Path, description = "Push asset id"), PushParams),
    responses(PushAnswers))]
pub async fn push_post(
    state: State<ApiState>,
    id: Path<String>,
    params: Query<PushParams>,
) -> Result<Json<Value>, ApiError> {
    push(state, id, params).await
}

async fn push(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(params): Query<PushParams>,
) -> Result<Json<Value>, ApiError> {
    let success = match params.status.as_deref() {
        None | Some("up") => true,
        Some("down") => false,
        Some(other) => return Err(ApiError::bad_parameter("status", other, "status must be up or down")),
    };
    let entry = call_t!(state.supervisor, SupervisorMsg::Asset, 2000, id.clone())
        .map_err(|e| ApiError::Unavailable(format!("the supervisor did not answer: {e}")))?;
    let not_found = || ApiError::NotFound(format!("no push asset {id:?}"));
    let entry = entry.ok_or_else(not_found)?;
    let ProbeSpec::Push(spec) = &entry.config.probe else { return Err(not_found()) };
    if !spec.accepts(&params.token) {
        return Err(ApiError::WrongPushToken);
    }
    let actor = entry
        .actor
        .ok_or_else(|| ApiError::Unavailable(format!("the actor of {id:?} keeps failing; push again later")))?;
    let message = params.msg.filter(|m| !m.is_empty()).map(|m| m.chars().take(MAX_MESSAGE_CHARS).collect());
    actor
        .cast(AssetMsg::Push { success, message })
        .map_err(|e| ApiError::Unavailable(format!("the actor of {id:?} did not take the push: {e}")))?;
    Ok(Json(json!({"accepted": true, "assetId": id, "status": if success { "up" } else { "down" }})))
}
