//! `/api/actors`: the supervision tree.

use axum::Json;
use axum::extract::State;

use super::error::ErrorBody;
use super::{ApiError, ApiState};
use crate::actors::supervisor::{ActorInfo, SupervisorMsg};

/// `GET /api/actors`: the supervisor first, then its children in start order.
#[utoipa::path(get, path = "/api/actors", tag = "actors",
    responses(
        (status = 200, description = "The supervision tree: every actor with its status and restarts", body = Vec<ActorInfo>),
        (status = 503, description = "The supervisor did not answer", body = ErrorBody),
    ))]
pub async fn list_actors(State(state): State<ApiState>) -> Result<Json<Vec<ActorInfo>>, ApiError> {
    let children = state.ask(SupervisorMsg::Actors).await?;
    let supervisor = ActorInfo {
        name: "statusd".into(),
        kind: "supervisor",
        status: "running",
        restarts: 0,
        last_restart: None,
        mailbox: None,
    };
    Ok(Json(std::iter::once(supervisor).chain(children).collect()))
}
