//! `POST /api/debug/panic?actor=NAME`: exists only with `--enable-chaos`; makes the named
//! actor panic so that restarts can be tested from outside. `actor=api` panics the request
//! handler itself, to show the API answering 500 and going on.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use ractor::call_t;
use serde_json::{Value, json};

use super::error::ErrorBody;
use super::{ApiError, ApiState};
use crate::actors::supervisor::SupervisorMsg;

#[utoipa::path(post, path = "/api/debug/panic", tag = "debug", security(("apiToken" = [])),
    description = "Exists only when statusd runs with --enable-chaos.",
    params(("actor" = String, Query, description = "An actor name from /api/actors, or api for this handler")),
    responses(
        (status = 200, description = "The actor was told to panic", body = Object, example = json!({"panicked": "asset:api-prod"})),
        (status = 400, description = "No actor named", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such running actor (or chaos is off)", body = ErrorBody),
        (status = 500, description = "actor=api: the handler panicked and the panic was caught", body = ErrorBody),
    ))]
pub async fn panic(
    State(state): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let actor = params
        .get("actor")
        .filter(|name| !name.is_empty())
        .ok_or_else(|| ApiError::bad_parameter("actor", "", "actor must name an actor, e.g. asset:api-prod"))?
        .clone();
    if actor == "api" {
        panic!("chaos: panic requested in an API handler");
    }
    let sent = call_t!(state.supervisor, SupervisorMsg::Panic, 2000, actor.clone())
        .map_err(|e| ApiError::Unavailable(format!("the supervisor did not answer: {e}")))?;
    if !sent {
        return Err(ApiError::NotFound(format!("no running actor {actor:?} (see /api/actors)")));
    }
    Ok(Json(json!({"panicked": actor})))
}
