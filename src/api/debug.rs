//! `POST /api/debug/panic?actor=NAME[&task=KIND]`: exists only with `--enable-chaos`; makes the
//! named actor panic, or with `task`, the next task of that kind the actor spawns (a probe, a
//! delivery, a write, a retention step), so that restarts and task recovery can be tested from
//! outside. `actor=api` panics the request handler itself, to show the API answering 500 and
//! going on.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ErrorBody;
use super::query::{Choice, Choices, Params};
use super::{ApiError, ApiState};
use crate::actors::supervisor::SupervisorMsg;
use crate::actors::task::TaskKind;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PanicParams {
    /// An actor name from /api/actors, or api for this handler
    #[param(required = true)]
    actor: Option<String>,
    /// probe (an asset), delivery (a notifier), write or retention (persistence), announce (statusd, the maintenance announcer): the actor's next such task panics instead of the actor
    #[param(value_type = Option<String>)]
    task: Option<Choice<TaskKind>>,
}

impl Choices for TaskKind {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("probe", TaskKind::Probe),
        ("delivery", TaskKind::Delivery),
        ("write", TaskKind::Write),
        ("retention", TaskKind::Retention),
        ("announce", TaskKind::Announce),
    ];
}

#[utoipa::path(post, path = "/api/debug/panic", tag = "debug", security(("apiToken" = [])),
    description = "Exists only when statusd runs with --enable-chaos.",
    params(PanicParams),
    responses(
        (status = 200, description = "The actor (or its next task) was told to panic", body = Object, example = json!({"panicked": "asset:api-prod", "task": "probe"})),
        (status = 400, description = "No actor named, or a task this actor does not run", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such running actor (or chaos is off)", body = ErrorBody),
        (status = 500, description = "actor=api: the handler panicked and the panic was caught", body = ErrorBody),
    ))]
pub async fn panic(
    State(state): State<ApiState>,
    Params(params): Params<PanicParams>,
) -> Result<Json<Value>, ApiError> {
    let actor = params
        .actor
        .filter(|name| !name.is_empty())
        .ok_or_else(|| ApiError::bad_parameter("actor", "", "actor must name an actor, e.g. asset:api-prod"))?;
    if actor == "api" {
        panic!("chaos: panic requested in an API handler");
    }
    if let Some(Choice(kind)) = params.task {
        return arm_task(&state, actor, kind).await;
    }
    let sent = state.ask(|reply| SupervisorMsg::Panic(actor.clone(), reply)).await?;
    if !sent {
        return Err(ApiError::NotFound(format!("no running actor {actor:?} (see /api/actors)")));
    }
    Ok(Json(json!({"panicked": actor})))
}

/// Arms a panic for the next `kind` task of `actor`, after checking that the actor runs such tasks.
async fn arm_task(state: &ApiState, actor: String, kind: TaskKind) -> Result<Json<Value>, ApiError> {
    // The Supervisor is not one of its own children: /api/actors lists it first, as "statusd".
    let found = if actor == "statusd" {
        Some("supervisor")
    } else {
        state.ask(SupervisorMsg::Actors).await?.iter().find(|info| info.name == actor).map(|info| info.kind)
    };
    let Some(found) = found else {
        return Err(ApiError::NotFound(format!("no actor {actor:?} (see /api/actors)")));
    };
    let runs = match kind {
        TaskKind::Probe => found == "asset",
        TaskKind::Delivery => found == "notifier",
        TaskKind::Write | TaskKind::Retention => found == "persistence",
        TaskKind::Announce => found == "supervisor",
    };
    if !runs {
        return Err(ApiError::bad_parameter("task", kind.as_str(), format!("{actor} runs no {kind} tasks")));
    }
    state.services.chaos.arm(&actor, kind);
    Ok(Json(json!({"panicked": actor, "task": kind.as_str()})))
}
