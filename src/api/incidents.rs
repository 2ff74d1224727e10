//! `/api/incidents?state=open|closed|all&limit=`, `/api/incidents/{id}` (with its timeline and
//! updates), `POST /api/incidents/{id}/ack` and `POST /api/incidents/{id}/updates`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::ErrorBody;
use super::query::{Choice, Choices, Limit, MAX_LIMIT, Params, limit};
use super::{ApiError, ApiState};
use crate::actors::incidents::{AckOutcome, AckRequest};
use crate::actors::supervisor::SupervisorMsg;
use crate::store::{
    DeliveriesQuery, DeliveryRecord, Incident, IncidentState, IncidentUpdate, TimelineEntry, UpdateStatus,
};

/// Longest `by` and `note` accepted: names and a sentence, not documents.
const MAX_BY_CHARS: usize = 200;
const MAX_NOTE_CHARS: usize = 2000;

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

/// One incident with its timeline and its public updates.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncidentDetail {
    #[serde(flatten)]
    pub incident: Incident,
    /// Oldest first: opened, each tier notified, acknowledged, flapping, closed.
    pub timeline: Vec<TimelineEntry>,
    /// Oldest first: what people said about it (`POST /api/incidents/{id}/updates`).
    pub updates: Vec<IncidentUpdate>,
    /// Oldest first: each notification about it, for each channel, with its status, attempts
    /// and last error (as `GET /api/notifications?incident=` shows them).
    pub notifications: Vec<DeliveryRecord>,
}

/// An id that is not a UUID names no incident.
fn incident_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::NotFound(format!("no incident {id:?}")))
}

/// `GET /api/incidents/{id}`: one incident, open or closed, with its timeline.
#[utoipa::path(get, path = "/api/incidents/{id}", tag = "incidents",
    params(("id" = String, Path, description = "Incident id")),
    responses(
        (status = 200, description = "The incident, its timeline and its updates", body = IncidentDetail),
        (status = 404, description = "No such incident", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ))]
pub async fn get_incident(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<IncidentDetail>, ApiError> {
    let uuid = incident_id(&id)?;
    let incident =
        state.store.incident(uuid).await?.ok_or_else(|| ApiError::NotFound(format!("no incident {id:?}")))?;
    let timeline = state.store.timeline(uuid).await?;
    let updates = state.store.incident_updates(&[uuid]).await?;
    let query = DeliveriesQuery { incident: Some(uuid), limit: MAX_LIMIT, ..DeliveriesQuery::default() };
    let mut notifications = state.store.deliveries(&query).await?;
    notifications.reverse();
    Ok(Json(IncidentDetail { incident, timeline, updates, notifications }))
}

/// Who acknowledges an incident, and optionally why.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Acknowledgement {
    by: String,
    note: Option<String>,
}

/// `POST /api/incidents/{id}/ack`: no more reminders or tiers; the channels that heard the DOWN
/// get an ACK. The open incidents are the Incidents actor's; the store tells a closed incident
/// (409) from one that never was (404).
#[utoipa::path(post, path = "/api/incidents/{id}/ack", tag = "incidents", security(("apiToken" = [])),
    params(("id" = String, Path, description = "Incident id")),
    request_body(content = Acknowledgement, example = json!({"by": "alice", "note": "looking into it"})),
    responses(
        (status = 200, description = "The incident, acknowledged (a second acknowledgement keeps the first)", body = Incident),
        (status = 400, description = "No `by`, or not the expected body", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such incident", body = ErrorBody),
        (status = 409, description = "The incident is closed", body = ErrorBody),
        (status = 503, description = "The incidents actor did not answer", body = ErrorBody),
    ))]
pub async fn acknowledge(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Incident>, ApiError> {
    let ack: Acknowledgement = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_parameter(
            "body",
            &String::from_utf8_lossy(&body),
            format!("expected {{\"by\": \"name\", \"note\": \"optional\"}}: {e}"),
        )
    })?;
    let by = ack.by.trim().to_string();
    if by.is_empty() || by.chars().count() > MAX_BY_CHARS {
        return Err(ApiError::bad_parameter(
            "by",
            &ack.by,
            format!("by must name who acknowledges (1 to {MAX_BY_CHARS} characters)"),
        ));
    }
    if let Some(note) = &ack.note
        && note.chars().count() > MAX_NOTE_CHARS
    {
        return Err(ApiError::bad_parameter("note", note, format!("note must be at most {MAX_NOTE_CHARS} characters")));
    }
    let incident_id = incident_id(&id)?;
    let request = AckRequest { incident_id, by, note: ack.note };
    match state.ask(|reply| SupervisorMsg::Ack(request, reply)).await? {
        AckOutcome::Acknowledged(incident) => Ok(Json(*incident)),
        AckOutcome::NotOpen => match state.store.incident(incident_id).await? {
            Some(_) => {
                Err(ApiError::Conflict(format!("incident {id} is closed: only an open incident can be acknowledged")))
            }
            None => Err(ApiError::NotFound(format!("no incident {id:?}"))),
        },
    }
}

/// Longest update message accepted: a few paragraphs for the status page.
const MAX_MESSAGE_CHARS: usize = 5000;

/// A public update on an incident.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUpdate {
    /// investigating, identified, monitoring or resolved
    #[schema(value_type = String)]
    status: String,
    message: String,
}

/// `POST /api/incidents/{id}/updates`: a public update (status page, feed, `GET
/// /api/incidents/{id}`), open or closed incident alike. `resolved` is a message: it does not
/// close an incident the probes still see as down. Written by the handler itself, as
/// maintenance windows are: the answer depends on the write.
#[utoipa::path(post, path = "/api/incidents/{id}/updates", tag = "incidents", security(("apiToken" = [])),
    params(("id" = String, Path, description = "Incident id")),
    request_body(content = NewUpdate, example = json!({"status": "identified", "message": "A bad deploy; rolling back."})),
    responses(
        (status = 201, description = "The update, stored", body = IncidentUpdate),
        (status = 400, description = "An unknown status, an empty or too long message, or not the expected body", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such incident", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ))]
pub async fn add_update(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(axum::http::StatusCode, Json<IncidentUpdate>), ApiError> {
    let new: NewUpdate = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_parameter(
            "body",
            &String::from_utf8_lossy(&body),
            format!(
                "expected {{\"status\": \"investigating|identified|monitoring|resolved\", \"message\": \"...\"}}: {e}"
            ),
        )
    })?;
    let status: UpdateStatus = new.status.parse().map_err(|_| {
        ApiError::bad_parameter(
            "status",
            &new.status,
            format!("status must be one of {}", <UpdateStatus as strum::VariantNames>::VARIANTS.join(", ")),
        )
    })?;
    let message = new.message.trim().to_string();
    if message.is_empty() || message.chars().count() > MAX_MESSAGE_CHARS {
        return Err(ApiError::bad_parameter(
            "message",
            &new.message,
            format!("message must say something (1 to {MAX_MESSAGE_CHARS} characters)"),
        ));
    }
    let incident_id = incident_id(&id)?;
    if state.store.incident(incident_id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no incident {id:?}")));
    }
    let update = IncidentUpdate { id: Uuid::now_v7(), incident_id, at: chrono::Utc::now(), status, message };
    state.store.add_incident_update(&update).await?;
    tracing::info!(%incident_id, status = status.as_str(), "incident update posted");
    Ok((axum::http::StatusCode::CREATED, Json(update)))
}
