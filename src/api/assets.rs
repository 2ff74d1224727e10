//! `/api/assets`: config plus live state from each asset's actor; `/events`: history.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, TimeDelta, Utc};
use ractor::call_t;
use serde::Serialize;

use super::error::ErrorBody;
use super::{ApiError, ApiState};
use crate::actors::asset::{AssetMsg, AssetSnapshot};
use crate::actors::health::StatusName;
use crate::actors::supervisor::{AssetEntry, SupervisorMsg};
use crate::config::AssetConfig;
use crate::probe::ProbeResult;
use crate::store::rollup::hour_of;
use crate::store::{EventsQuery, Uptime};

/// How long an asset actor may take to describe itself. It answers in microseconds unless
/// something is badly wrong, and then the route must still answer.
const SNAPSHOT_TIMEOUT_MS: u64 = 1000;
const SUPERVISOR_TIMEOUT_MS: u64 = 2000;
pub const MAX_LIMIT: u32 = 1000;
const DEFAULT_LIMIT: u32 = 100;

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssetView {
    #[serde(flatten)]
    config: AssetConfig,
    /// The address with its password and secret query values masked (`user:***@`,
    /// `apikey=***`), or `***` with `hideAddress`: this route needs no token.
    address: String,
    #[serde(flatten)]
    live: AssetSnapshot,
    restarts: u32,
    /// Why the live state is missing, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

async fn view(entry: AssetEntry) -> AssetView {
    let config = (*entry.config).clone();
    let address = config.shown_address();
    let blank = |status| AssetSnapshot {
        status,
        since: None,
        last_probe: None,
        consecutive_failures: 0,
        consecutive_successes: 0,
        open_incident_id: None,
        probing: false,
        skipped_ticks: 0,
    };
    let (live, error) = match entry.actor {
        None => (blank(StatusName::Crashed), Some("the asset's actor keeps failing and waits to be restarted".into())),
        Some(actor) => match call_t!(actor, AssetMsg::Snapshot, SNAPSHOT_TIMEOUT_MS) {
            Ok(snapshot) => (snapshot, None),
            Err(e) => (blank(StatusName::Unknown), Some(format!("the asset's actor did not answer: {e}"))),
        },
    };
    AssetView { config, address, live, restarts: entry.restarts, error }
}

fn supervisor_unavailable(error: impl std::fmt::Display) -> ApiError {
    ApiError::Unavailable(format!("the supervisor did not answer: {error}"))
}

/// `GET /api/assets`
#[utoipa::path(get, path = "/api/assets", tag = "assets",
    responses(
        (status = 200, description = "Every asset: its config and its live state, asked from its actor", body = Vec<AssetView>),
        (status = 503, description = "The supervisor did not answer", body = ErrorBody),
    ))]
pub async fn list_assets(State(state): State<ApiState>) -> Result<Json<Vec<AssetView>>, ApiError> {
    let entries =
        call_t!(state.supervisor, SupervisorMsg::Assets, SUPERVISOR_TIMEOUT_MS).map_err(supervisor_unavailable)?;
    Ok(Json(futures::future::join_all(entries.into_iter().map(view)).await))
}

/// `GET /api/assets/{id}`
#[utoipa::path(get, path = "/api/assets/{id}", tag = "assets",
    params(("id" = String, Path, description = "Asset id")),
    responses(
        (status = 200, description = "One asset", body = AssetView),
        (status = 404, description = "No such asset", body = ErrorBody),
        (status = 503, description = "The supervisor did not answer", body = ErrorBody),
    ))]
pub async fn get_asset(State(state): State<ApiState>, Path(id): Path<String>) -> Result<Json<AssetView>, ApiError> {
    let entry = call_t!(state.supervisor, SupervisorMsg::Asset, SUPERVISOR_TIMEOUT_MS, id.clone())
        .map_err(supervisor_unavailable)?
        .ok_or_else(|| ApiError::NotFound(format!("no asset {id:?}")))?;
    Ok(Json(view(entry).await))
}

/// `GET /api/assets/{id}/events?limit=&before=&since=`: newest first.
#[utoipa::path(get, path = "/api/assets/{id}/events", tag = "assets",
    params(
        ("id" = String, Path, description = "Asset id"),
        ("limit" = Option<u32>, Query, description = "1 to 1000; default 100", minimum = 1, maximum = 1000),
        ("before" = Option<String>, Query, description = "RFC 3339 timestamp: only events before it (paging cursor)"),
        ("since" = Option<String>, Query, description = "RFC 3339 timestamp: only events at or after it"),
    ),
    responses(
        (status = 200, description = "Probe history, newest first", body = Vec<ProbeResult>),
        (status = 400, description = "A parameter out of range or not a timestamp", body = ErrorBody),
        (status = 404, description = "No such asset", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ))]
pub async fn asset_events(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Vec<ProbeResult>>, ApiError> {
    let query = EventsQuery {
        limit: limit(&params)?,
        before: timestamp(&params, "before")?,
        since: timestamp(&params, "since")?,
    };
    if !state.store.asset_exists(&id).await? {
        return Err(ApiError::NotFound(format!("no asset {id:?}")));
    }
    Ok(Json(state.store.probe_events(&id, &query).await?))
}

/// `GET /api/assets/{id}/uptime?days=N` or `?hours=N` (default 30 days): uptime and latency
/// from the hourly rollups, whole hours from the start of the window up to now.
#[utoipa::path(get, path = "/api/assets/{id}/uptime", tag = "assets",
    params(
        ("id" = String, Path, description = "Asset id"),
        ("days" = Option<u32>, Query, description = "Window in days, 1 to 3660; default 30"),
        ("hours" = Option<u32>, Query, description = "Window in hours, instead of days"),
    ),
    responses(
        (status = 200, description = "Uptime and latency over the window, from the hourly rollups", body = Uptime),
        (status = 400, description = "A window out of range, or both days and hours", body = ErrorBody),
        (status = 404, description = "No such asset", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ))]
pub async fn asset_uptime(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Uptime>, ApiError> {
    let window = window(&params)?;
    if !state.store.asset_exists(&id).await? {
        return Err(ApiError::NotFound(format!("no asset {id:?}")));
    }
    let now = Utc::now();
    let from = hour_of(now - window);
    let rollups = state.store.rollups(&id, from, hour_of(now) + TimeDelta::hours(1)).await?;
    Ok(Json(Uptime::from_rollups(&id, from, now, &rollups)))
}

const MAX_WINDOW_DAYS: i64 = 3660;

fn window(params: &HashMap<String, String>) -> Result<TimeDelta, ApiError> {
    let number = |name: &'static str, max: i64| -> Result<Option<i64>, ApiError> {
        params
            .get(name)
            .map(|raw| match raw.parse::<i64>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::bad_parameter(name, raw, format!("{name} must be a number from 1 to {max}"))),
            })
            .transpose()
    };
    match (number("days", MAX_WINDOW_DAYS)?, number("hours", MAX_WINDOW_DAYS * 24)?) {
        (Some(_), Some(_)) => Err(ApiError::bad_parameter("hours", "", "give days or hours, not both")),
        (_, Some(hours)) => Ok(TimeDelta::hours(hours)),
        (days, None) => Ok(TimeDelta::days(days.unwrap_or(30))),
    }
}

/// `limit`: a number from 1 to 1000, 100 when absent.
pub fn limit(params: &HashMap<String, String>) -> Result<u32, ApiError> {
    let Some(raw) = params.get("limit") else { return Ok(DEFAULT_LIMIT) };
    match raw.parse::<u32>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_parameter("limit", raw, format!("limit must be a number from 1 to {MAX_LIMIT}"))),
    }
}

fn timestamp(params: &HashMap<String, String>, name: &'static str) -> Result<Option<DateTime<Utc>>, ApiError> {
    params
        .get(name)
        .map(|raw| {
            DateTime::parse_from_rfc3339(raw).map(|t| t.with_timezone(&Utc)).map_err(|_| {
                ApiError::bad_parameter(
                    name,
                    raw,
                    format!("{name} must be an RFC 3339 timestamp, e.g. 2026-11-21T10:30:00Z"),
                )
            })
        })
        .transpose()
}
