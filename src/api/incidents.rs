//! `/api/incidents?state=open|closed|all&limit=`

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::error::ErrorBody;
use super::query::{Choice, Choices, Limit, Params, limit};
use super::{ApiError, ApiState};
use crate::store::{Incident, IncidentState};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IncidentsParams {
    /// open (default), closed or all
    #[param(value_type = Option<String>)]
    state: Option<Choice<IncidentState>>,
    /// 1 to 1000; default 100
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<Limit>,
}

impl Choices for IncidentState {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("open", IncidentState::Open), ("closed", IncidentState::Closed), ("all", IncidentState::All)];
}

/// `GET /api/incidents`: newest first; open ones unless `state` says otherwise.
#[utoipa::path(get, path = "/api/incidents", tag = "incidents",
    params(IncidentsParams),
    responses(
        (status = 200, description = "Incidents, newest first", body = Vec<Incident>),
        (status = 400, description = "An unknown state or a limit out of range", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ))]
pub async fn list_incidents(
    State(state): State<ApiState>,
    Params(params): Params<IncidentsParams>,
) -> Result<Json<Vec<Incident>>, ApiError> {
    let wanted = params.state.map_or(IncidentState::Open, |state| state.0);
    Ok(Json(state.store.incidents(wanted, limit(params.limit)).await?))
}
