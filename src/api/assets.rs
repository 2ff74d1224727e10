//! `/api/assets`: config plus live state from each asset's actor; `/events`: history.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use ractor::call_t;
use serde::{Deserialize, Serialize};

use super::error::ErrorBody;
use super::query::{Bounded, Choice, Choices, Limit, Params, Timestamp, limit};
use super::{ApiError, ApiState};
use crate::actors::asset::{AssetMsg, AssetSnapshot};
use crate::actors::health::StatusName;
use crate::actors::supervisor::{AssetEntry, SupervisorMsg};
use crate::asset::AssetConfig;
use crate::probe::ProbeResult;
use crate::store::rollup::{SeriesPoint, hour_of, series as series_of};
use crate::store::{EventsQuery, Uptime};

/// How long an asset actor may take to describe itself. It answers in microseconds unless
/// something is badly wrong, and then the route must still answer.
const SNAPSHOT_TIMEOUT_MS: u64 = 1000;

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
    let (live, error) = live(&entry).await;
    AssetView { config, address, live, restarts: entry.restarts, error }
}

/// The asset's live state, asked from its actor, and why it is missing when it is (then the
/// status is `crashed` or `unknown`); what `/api/assets` and the status page show.
pub(super) async fn live(entry: &AssetEntry) -> (AssetSnapshot, Option<String>) {
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
    match &entry.actor {
        // Cluster mode: its owner probes it; until the store serves its state, it is unknown here.
        None if entry.elsewhere => {
            (blank(StatusName::Unknown), Some("probed by another replica of the cluster".into()))
        }
        None => (blank(StatusName::Crashed), Some("the asset's actor keeps failing and waits to be restarted".into())),
        Some(actor) => match call_t!(actor, AssetMsg::Snapshot, SNAPSHOT_TIMEOUT_MS) {
            Ok(snapshot) => (snapshot, None),
            Err(e) => (blank(StatusName::Unknown), Some(format!("the asset's actor did not answer: {e}"))),
        },
    }
}

/// `GET /api/assets`
#[utoipa::path(get, path = "/api/assets", tag = "assets",
    responses(
        (status = 200, description = "Every asset: its config and its live state, asked from its actor", body = Vec<AssetView>),
        (status = 503, description = "The supervisor did not answer", body = ErrorBody),
    ))]
pub async fn list_assets(State(state): State<ApiState>) -> Result<Json<Vec<AssetView>>, ApiError> {
    let entries = state.ask(SupervisorMsg::Assets).await?;
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
    let entry = state
        .ask(|reply| SupervisorMsg::Asset(id.clone(), reply))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no asset {id:?}")))?;
    Ok(Json(view(entry).await))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsParams {
    /// 1 to 1000; default 100
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<Limit>,
    /// RFC 3339 timestamp: only events before it (paging cursor)
    #[param(value_type = Option<String>)]
    before: Option<Timestamp>,
    /// RFC 3339 timestamp: only events at or after it
    #[param(value_type = Option<String>)]
    since: Option<Timestamp>,
}

/// `GET /api/assets/{id}/events?limit=&before=&since=`: newest first.
#[utoipa::path(get, path = "/api/assets/{id}/events", tag = "assets",
    params(("id" = String, Path, description = "Asset id"), EventsParams),
    responses(
        (status = 200, description = "Probe history, newest first", body = Vec<ProbeResult>),
        (status = 400, description = "A parameter out of range or not a timestamp", body = ErrorBody),
        (status = 404, description = "No such asset", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ))]
pub async fn asset_events(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Params(params): Params<EventsParams>,
) -> Result<Json<Vec<ProbeResult>>, ApiError> {
    let query = EventsQuery {
        limit: limit(params.limit),
        before: params.before.map(|t| t.0),
        since: params.since.map(|t| t.0),
    };
    if !state.store.asset_exists(&id).await? {
        return Err(ApiError::NotFound(format!("no asset {id:?}")));
    }
    Ok(Json(state.store.probe_events(&id, &query).await?))
}

const MAX_WINDOW_DAYS: u32 = 3660;
const DEFAULT_WINDOW_DAYS: u32 = 30;
/// Most points a series answers: a year and a half of hours.
const MAX_POINTS: i64 = 13_200;

/// The step of an uptime series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Hour,
    Day,
}

impl Choices for Step {
    const CHOICES: &'static [(&'static str, Self)] = &[("1h", Step::Hour), ("1d", Step::Day)];
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UptimeParams {
    /// Window in days, 1 to 3660; default 30
    #[param(value_type = Option<u32>, minimum = 1, maximum = 3660)]
    days: Option<Bounded<1, MAX_WINDOW_DAYS>>,
    /// Window in hours, instead of days
    #[param(value_type = Option<u32>, minimum = 1, maximum = 87840)]
    hours: Option<Bounded<1, { MAX_WINDOW_DAYS * 24 }>>,
    /// 1h or 1d: answer a series, one point per step, instead of one figure for the window
    #[param(value_type = Option<String>)]
    step: Option<Choice<Step>>,
}

/// An uptime series: one point per step, oldest first, the last one the step now is in.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UptimeSeries {
    asset_id: String,
    /// `1h` or `1d`.
    step: String,
    /// Start of the first step.
    from: DateTime<Utc>,
    /// When the series was read: the last step is counted up to here.
    to: DateTime<Utc>,
    points: Vec<SeriesPoint>,
}

/// What `/uptime` answers: one figure for the window, or a series with `step`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum UptimeAnswer {
    Window(Uptime),
    Series(UptimeSeries),
}

/// `GET /api/assets/{id}/uptime?days=N` or `?hours=N` (default 30 days): uptime and latency
/// from the hourly rollups, whole hours from the start of the window up to now. With
/// `step=1h|1d`, a series instead: `days` (or `hours`, with `step=1h`) steps ending with the one
/// now is in, days starting at 00:00 UTC; the current hour is read from its raw events.
#[utoipa::path(get, path = "/api/assets/{id}/uptime", tag = "assets",
    params(("id" = String, Path, description = "Asset id"), UptimeParams),
    responses(
        (status = 200, description = "Uptime and latency over the window (Uptime), or with step a series (UptimeSeries), \
            from the hourly rollups and the raw events of hours not rolled up yet", body = UptimeAnswer),
        (status = 400, description = "A window out of range, both days and hours, hours with step=1d, or too many points", body = ErrorBody),
        (status = 404, description = "No such asset", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ))]
pub async fn asset_uptime(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Params(params): Params<UptimeParams>,
) -> Result<Json<UptimeAnswer>, ApiError> {
    let window = match (params.days, params.hours) {
        (Some(_), Some(hours)) => {
            return Err(ApiError::bad_parameter("hours", &hours.get().to_string(), "give days or hours, not both"));
        }
        (_, Some(hours)) => TimeDelta::hours(hours.get().into()),
        (days, None) => TimeDelta::days(days.map_or(DEFAULT_WINDOW_DAYS, Bounded::get).into()),
    };
    let series = match params.step.map(|step| step.0) {
        None => None,
        Some(Step::Day) if params.hours.is_some() => {
            return Err(ApiError::bad_parameter("step", "1d", "step=1d takes days, not hours"));
        }
        Some(Step::Day) => Some((Step::Day, TimeDelta::days(1), window.num_days())),
        Some(Step::Hour) => Some((Step::Hour, TimeDelta::hours(1), window.num_hours())),
    };
    if let Some((_, _, count)) = series
        && count > MAX_POINTS
    {
        return Err(ApiError::bad_parameter(
            "step",
            "1h",
            format!("a series has at most {MAX_POINTS} points: ask fewer hours or days, or step=1d"),
        ));
    }
    if !state.store.asset_exists(&id).await? {
        return Err(ApiError::NotFound(format!("no asset {id:?}")));
    }
    let now = Utc::now();
    let Some((step, length, count)) = series else {
        let from = hour_of(now - window);
        let rollups = state.store.rollups(&id, from, hour_of(now) + TimeDelta::hours(1)).await?;
        return Ok(Json(UptimeAnswer::Window(Uptime::from_rollups(&id, from, now, &rollups))));
    };
    let current = match step {
        Step::Hour => hour_of(now),
        Step::Day => now.duration_trunc(TimeDelta::days(1)).unwrap_or(now),
    };
    let from = current - length * i32::try_from(count - 1).unwrap_or(0);
    let rollups = state.store.rollups(&id, from, hour_of(now) + TimeDelta::hours(1)).await?;
    let points = series_of(from, length, usize::try_from(count).unwrap_or(0), &rollups);
    let step = if step == Step::Hour { "1h" } else { "1d" };
    Ok(Json(UptimeAnswer::Series(UptimeSeries { asset_id: id, step: step.into(), from, to: now, points })))
}
