//! `/api/incidents?state=open|closed|all&limit=`

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};

use super::assets::limit;
use super::error::ErrorBody;
use super::{ApiError, ApiState};
use crate::store::{Incident, IncidentState};

/// `GET /api/incidents`: newest first; open ones unless `state` says otherwise.
#[utoipa::path(get, path = "/api/incidents", tag = "incidents",
    params(
        ("state" = Option<String>, Query, description = "open (default), closed or all"),
        ("limit" = Option<u32>, Query, description = "1 to 1000; default 100", minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "Incidents, newest first", body = Vec<Incident>),
        (status = 400, description = "An unknown state or a limit out of range", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ))]
pub async fn list_incidents(
    State(state): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Vec<Incident>>, ApiError> {
    let wanted = match params.get("state").map(String::as_str) {
        None | Some("open") => IncidentState::Open,
        Some("closed") => IncidentState::Closed,
        Some("all") => IncidentState::All,
        Some(other) => return Err(ApiError::bad_parameter("state", other, "state must be open, closed or all")),
    };
    Ok(Json(state.store.incidents(wanted, limit(&params)?).await?))
}
