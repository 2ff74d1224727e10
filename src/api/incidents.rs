//! `/api/incidents?state=open|closed|all&limit=`

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};

use super::assets::limit;
use super::{ApiError, ApiState};
use crate::store::{Incident, IncidentState};

/// `GET /api/incidents`: newest first; open ones unless `state` says otherwise.
pub async fn list(
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
