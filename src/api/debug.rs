//! `POST /api/debug/panic?actor=NAME`: exists only with `--enable-chaos`; makes the named
//! actor panic so that restarts can be tested from outside.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use ractor::call_t;
use serde_json::{Value, json};

use super::{ApiError, ApiState};
use crate::actors::supervisor::SupervisorMsg;

pub async fn panic(
    State(state): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let actor = params
        .get("actor")
        .filter(|name| !name.is_empty())
        .ok_or_else(|| ApiError::bad_parameter("actor", "", "actor must name an actor, e.g. asset:api-prod"))?
        .clone();
    let sent = call_t!(state.supervisor, SupervisorMsg::Panic, 2000, actor.clone())
        .map_err(|e| ApiError::Unavailable(format!("the supervisor did not answer: {e}")))?;
    if !sent {
        return Err(ApiError::NotFound(format!("no running actor {actor:?} (see /api/actors)")));
    }
    Ok(Json(json!({"panicked": actor})))
}
