//! `GET|POST /api/push/{id}?token=…[&status=up|down][&msg=…]`: a heartbeat from what cannot be
//! probed (cron jobs, batch tasks). Not behind the API token: each push asset has its own,
//! compared in constant time. Only the path is ever logged, never the query holding it.
//!
//! A POST may carry a body of any size (`curl --data-binary @job.log`): without `msg`, its
//! start is the message. It is never refused for its size: a job that posts its log with each
//! heartbeat must not look dead because the log grew.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ErrorBody;
use super::query::{Choice, Choices, Params};
use super::{ApiError, ApiState};
use crate::actors::asset::AssetMsg;
use crate::actors::supervisor::SupervisorMsg;
use crate::probe::ProbeSpec;

/// A pushed message is stored with every result: a runaway one is cut here.
const MAX_MESSAGE_CHARS: usize = 200;
/// Of a POST's body, this much is read as the message (before the cut above); the rest is
/// read and discarded, so the client can finish sending and read the answer.
const MAX_BODY_BYTES: usize = 100 * 1000;
/// A body larger than this is not even drained: the answer goes out and the connection closes.
const MAX_DRAINED_BYTES: usize = 16 * 1024 * 1024;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PushParams {
    /// The asset's token.
    #[serde(default)]
    #[param(required = true)]
    token: String,
    /// `up` (the default) or `down`.
    #[serde(default)]
    #[param(value_type = Option<String>)]
    status: Option<Choice<PushStatus>>,
    /// Stored with the result; at most 200 characters are kept. A POST without it may send
    /// the message as its body.
    #[serde(default)]
    msg: Option<String>,
}

/// `status`: how the job went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PushStatus {
    Up,
    Down,
}

impl Choices for PushStatus {
    const CHOICES: &'static [(&'static str, Self)] = &[("up", PushStatus::Up), ("down", PushStatus::Down)];
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
    params: Params<PushParams>,
) -> Result<Json<Value>, ApiError> {
    push(state, id, params, None).await
}

#[utoipa::path(post, path = "/api/push/{id}", tag = "assets",
    description = "A heartbeat for a push asset, guarded by that asset's own token (not the API token).",
    params(("id" = String, Path, description = "Push asset id"), PushParams),
    request_body(content = String, content_type = "text/plain",
        description = "Optional, any size: without `msg`, its first 100 kB are read as the message (of which 200 characters are kept)"),
    responses(PushAnswers))]
pub async fn push_post(
    state: State<ApiState>,
    id: Path<String>,
    params: Params<PushParams>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let start = read_start(body).await;
    push(state, id, params, Some(start)).await
}

/// The first [`MAX_BODY_BYTES`] of a body; the rest is read and dropped. A body that breaks
/// off (the client went away) is what arrived.
async fn read_start(body: Body) -> Vec<u8> {
    let mut stream = body.into_data_stream();
    let mut start = Vec::new();
    let mut seen = 0usize;
    while seen < MAX_DRAINED_BYTES
        && let Some(Ok(chunk)) = stream.next().await
    {
        let room = MAX_BODY_BYTES.saturating_sub(start.len());
        start.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
        seen = seen.saturating_add(chunk.len());
    }
    start
}

async fn push(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Params(params): Params<PushParams>,
    body: Option<Vec<u8>>,
) -> Result<Json<Value>, ApiError> {
    let success = params.status.is_none_or(|status| status.0 == PushStatus::Up);
    let entry = state.ask(|reply| SupervisorMsg::Asset(id.clone(), reply)).await?;
    let not_found = || ApiError::NotFound(format!("no push asset {id:?}"));
    let entry = entry.ok_or_else(not_found)?;
    let ProbeSpec::Push(spec) = &entry.config.probe else { return Err(not_found()) };
    if !spec.accepts(&params.token) {
        return Err(ApiError::WrongPushToken);
    }
    let actor = entry
        .actor
        .ok_or_else(|| ApiError::Unavailable(format!("the actor of {id:?} keeps failing; push again later")))?;
    let body = body.map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string());
    let message = params
        .msg
        .filter(|m| !m.is_empty())
        .or(body.filter(|b| !b.is_empty()))
        .map(|m| m.chars().take(MAX_MESSAGE_CHARS).collect());
    actor
        .cast(AssetMsg::Push { success, message })
        .map_err(|e| ApiError::Unavailable(format!("the actor of {id:?} did not take the push: {e}")))?;
    Ok(Json(json!({"accepted": true, "assetId": id, "status": if success { "up" } else { "down" }})))
}
