//! `/api/assets`: config plus live state from the asset index (what each asset's actor
//! checkpoints), paged and filtered; `/events`: history.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::error::{ErrorBody, json_error};
use super::query::{Bounded, Choice, Choices, Limit, Params, Timestamp, limit};
use super::{ApiError, ApiState};
use crate::actors::asset::{AssetSnapshot, snapshot_of};
use crate::actors::health::StatusName;
use crate::actors::index::AssetEntry;
use crate::asset::AssetConfig;
use crate::probe::ProbeResult;
use crate::quorum::{Combined, LocationState};
use crate::store::rollup::{SeriesPoint, hour_of, series as series_of};
use crate::store::{EventsQuery, Uptime};

/// Most assets the unpaginated `GET /api/assets` lists. Above it, the answer is the first page
/// of this many with the cursor of the next (the paged shape, and a `Link: rel="next"`
/// header): a client that expects every asset in one array fails loudly instead of silently
/// missing some.
pub const UNPAGINATED_CAP: usize = 1000;

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssetView {
    // The asset index's own copy, shared: a page of 100 copied 100 configs (their strings,
    // maps and conditions) only to write them out. (A plain comment: a doc comment here
    // would become the field's description in the OpenAPI document.)
    #[serde(flatten)]
    #[schema(value_type = AssetConfig)]
    config: Arc<AssetConfig>,
    /// The address with its password and secret query values masked (`user:***@`,
    /// `apikey=***`), or `***` with `hideAddress`: this route needs no token.
    address: String,
    #[serde(flatten)]
    live: AssetSnapshot,
    restarts: u32,
    /// Cluster mode, an asset with `locations`: each location's verdict (`up`, `down`, or
    /// `unknown` for a location with no live replica or no verdict yet); `status` is what they
    /// add up to.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<BTreeMap<String, LocationState>>, example = json!({"eu": "down", "us": "up"}))]
    locations: Option<BTreeMap<String, LocationState>>,
    /// Why the live state is missing, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Cluster mode, an asset another replica probes: the replica whose report of the live
    /// state this is (read from the store; absent when this replica probes the asset itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "web-2")]
    reported_by: Option<String>,
    /// With `reportedBy`: when that replica wrote it (the database's time). A change of status
    /// is written within a third of `lease_seconds`, a new `lastProbe` alone within one lease.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "crate::rfc3339::serialize_option")]
    reported_at: Option<DateTime<Utc>>,
}

/// An asset's live state as this replica answers it: what its actor checkpointed, or what its
/// owner reported through the store.
pub(super) struct Live {
    pub snapshot: AssetSnapshot,
    /// Why the live state is missing, when it is.
    pub error: Option<String>,
    /// Cluster mode, an asset another replica probes: who reported this state, and when.
    pub reported: Option<(String, DateTime<Utc>)>,
}

fn view(state: &ApiState, entry: &AssetEntry) -> AssetView {
    view_of(state, entry, live_state(state, entry))
}

fn view_of(state: &ApiState, entry: &AssetEntry, live: Live) -> AssetView {
    let config = Arc::clone(&entry.config);
    let address = config.shown_address();
    let locations = quorum(state, entry).then(|| {
        let verdict = state.services.locations.verdict(&entry.config.id);
        verdict.map(|verdict| verdict.locations).unwrap_or_default()
    });
    let (reported_by, reported_at) = live.reported.unzip();
    AssetView {
        config,
        address,
        live: live.snapshot,
        restarts: entry.restarts,
        locations,
        error: live.error,
        reported_by,
        reported_at,
    }
}

/// Cluster mode and the asset has `locations`: its status is the locations' combined verdict.
fn quorum(state: &ApiState, entry: &AssetEntry) -> bool {
    state.services.cluster.enabled && entry.config.locations.is_some()
}

/// The asset's live state and why it is missing when it is: what the badges and the status
/// page show (see [`live_state`]).
pub(super) fn live(state: &ApiState, entry: &AssetEntry) -> (AssetSnapshot, Option<String>) {
    let Live { snapshot, error, .. } = live_state(state, entry);
    (snapshot, error)
}

/// The asset's live state, read from the memory its actor checkpoints after every message
/// (see `actors/index.rs`), and why it is missing when it is (then the status is `crashed`);
/// in cluster mode, for an asset another replica probes, what that replica last wrote to the
/// store (see `actors/states.rs`): the same answer on every replica. What `/api/assets` shows.
pub(super) fn live_state(state: &ApiState, entry: &AssetEntry) -> Live {
    let snapshot = {
        let memory = entry.memory.lock();
        snapshot_of(&memory, &entry.config.id, &state.services, memory.probing)
    };
    if quorum(state, entry) {
        // What every location saw, as the store has it: the same on every replica. The
        // incident is the decider's (`GET /api/incidents`), not this location's.
        let status = match state.services.locations.verdict(&entry.config.id).map(|verdict| verdict.combined) {
            Some(Combined::Down { .. }) => StatusName::Down,
            Some(Combined::Up) => StatusName::Up,
            Some(Combined::Undecided) | None => StatusName::Unknown,
        };
        let probing = snapshot.probing && entry.actor.is_some();
        let snapshot = AssetSnapshot { status, open_incident_id: None, probing, ..snapshot };
        return Live { snapshot, error: None, reported: None };
    }
    match &entry.actor {
        // Cluster mode: its owner probes it; this replica runs no actor for it.
        None if entry.elsewhere => elsewhere(state, entry),
        None => Live {
            snapshot: AssetSnapshot { status: StatusName::Crashed, probing: false, ..snapshot },
            error: Some("the asset's actor keeps failing and waits to be restarted".into()),
            reported: None,
        },
        Some(_) => Live { snapshot, error: None, reported: None },
    }
}

/// An asset another replica probes: the state its owner last wrote to the store, while that
/// replica is alive. Once its heartbeat is older than the lease, the state is `unknown` (with
/// the last report named in `error`) until the replica taking the asset over writes its own:
/// a dead replica's last word may be a lease and more out of date, and the heir starts afresh.
/// What this replica's own memory of the asset holds (from before it was handed over, if it
/// ever ran it here) is never shown: every replica answers the same.
fn elsewhere(state: &ApiState, entry: &AssetEntry) -> Live {
    let Some(mirrored) = state.services.states.get(&entry.config.id) else {
        let unknown = AssetSnapshot {
            status: StatusName::Unknown,
            since: None,
            last_probe: None,
            consecutive_failures: 0,
            consecutive_successes: 0,
            open_incident_id: None,
            probing: false,
            skipped_ticks: 0,
        };
        return Live {
            snapshot: unknown,
            error: Some("probed by another replica of the cluster, which has not reported its state yet".into()),
            reported: None,
        };
    };
    let reported = Some((mirrored.owner.clone(), mirrored.reported_at));
    if !state.services.states.is_live(&mirrored.owner) {
        let error = format!(
            "probed by another replica of the cluster: {}, which last reported it at {} and has stopped \
             (no heartbeat within the lease); another replica takes it over",
            mirrored.owner,
            mirrored.reported_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        // Its last probe and open incident stay true of the past; the status no longer is.
        let unknown = AssetSnapshot { status: StatusName::Unknown, since: None, ..mirrored.snapshot.clone() };
        return Live { snapshot: unknown, error: Some(error), reported };
    }
    Live { snapshot: mirrored.snapshot.clone(), error: None, reported }
}

impl Choices for StatusName {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("up", StatusName::Up),
        ("down", StatusName::Down),
        ("degraded", StatusName::Degraded),
        ("flapping", StatusName::Flapping),
        ("maintenance", StatusName::Maintenance),
        ("inconclusive", StatusName::Inconclusive),
        ("unknown", StatusName::Unknown),
        ("crashed", StatusName::Crashed),
    ];
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AssetsParams {
    /// 1 to 1000: answer a page of at most this many (the paged shape); default 100 with `cursor`
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<Limit>,
    /// The `nextCursor` of the previous page: the page after it (the paged shape)
    cursor: Option<String>,
    /// Only assets with this status: up, down, degraded, flapping, maintenance, inconclusive,
    /// unknown or crashed
    #[param(value_type = Option<String>)]
    status: Option<Choice<StatusName>>,
}

/// One page of assets, in id order, and where the next starts.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssetPage {
    assets: Vec<AssetView>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

/// What `GET /api/assets` answers: every asset (no `limit` nor `cursor`, and at most
/// [`UNPAGINATED_CAP`] of them), or a page.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum AssetsAnswer {
    All(Vec<AssetView>),
    Page(AssetPage),
}

/// A cursor names the last asset of a page: its id in hex, so that it is one opaque token in a
/// URL whatever the id holds. Pages follow id order, so a cursor stays valid while assets come
/// and go: the next page starts after that id, even if the asset itself was removed.
fn cursor_of(id: &str) -> String {
    id.bytes().map(|b| format!("{b:02x}")).collect()
}

fn id_of(cursor: &str) -> Option<String> {
    if !cursor.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        (0..cursor.len()).step_by(2).map(|i| u8::from_str_radix(cursor.get(i..i + 2)?, 16).ok()).collect();
    String::from_utf8(bytes?).ok()
}

/// The `metadata.KEY=VALUE` pairs of a query string.
fn metadata_filters(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter_map(|(name, value)| Some((name.strip_prefix("metadata.")?.to_string(), value.into_owned())))
        .collect()
}

fn metadata_matches(config: &AssetConfig, filters: &[(String, String)]) -> bool {
    filters.iter().all(|(key, wanted)| match config.metadata.get(key) {
        Some(serde_json::Value::String(value)) => value == wanted,
        Some(value) => serde_json::from_str::<serde_json::Value>(wanted).is_ok_and(|wanted| wanted == *value),
        None => false,
    })
}

/// `GET /api/assets?limit=&cursor=&status=&metadata.KEY=VALUE`
#[utoipa::path(get, path = "/api/assets", tag = "assets",
    params(AssetsParams,
        ("metadata.KEY" = Option<String>, Query, description = "`metadata.KEY=VALUE`, any number of them: only assets whose \
            metadata has each KEY at VALUE (a string compared as it is, a number or boolean as JSON writes it)")),
    responses(
        (status = 200, description = "Assets in id order, each with its config and live state. Without limit and cursor: \
            an array of every asset that matches, or, above 1000, the first page of 1000 in the paged shape \
            {assets, nextCursor} with a Link rel=next header. With limit or cursor: a page {assets, nextCursor}, \
            nextCursor null on the last page", body = AssetsAnswer),
        (status = 400, description = "A parameter out of range, an unknown status, or a cursor not from a previous page", body = ErrorBody),
    ))]
pub async fn list_assets(
    State(state): State<ApiState>,
    Params(params): Params<AssetsParams>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let after = match &params.cursor {
        None => None,
        Some(cursor) => Some(id_of(cursor).ok_or_else(|| {
            ApiError::bad_parameter("cursor", cursor, "cursor must be the nextCursor of a previous page")
        })?),
    };
    let paged = params.limit.is_some() || params.cursor.is_some();
    let size = if paged { limit(params.limit) as usize } else { UNPAGINATED_CAP };
    let status = params.status.map(|status| status.0);
    let metadata = metadata_filters(query.as_deref());
    // Filtered under the index's read lock, with the live state the filter needed kept for the
    // answer: one read of each asset's memory.
    let mut views = Vec::new();
    let page = state.services.assets.page(after.as_deref(), size, |entry| {
        if !metadata_matches(&entry.config, &metadata) {
            return false;
        }
        if status.is_none() {
            return true;
        }
        // The config is copied only for the assets kept.
        let live = live_state(&state, entry);
        let keep = Some(live.snapshot.status) == status;
        if keep && views.len() < size {
            views.push(view_of(&state, entry, live));
        }
        keep
    });
    if status.is_none() {
        views = page.entries.iter().map(|entry| view(&state, entry)).collect();
    }
    let next_cursor = page.more.then(|| page.entries.last().map(|entry| cursor_of(&entry.config.id))).flatten();
    let capacity = views.len().saturating_mul(VIEW_BYTES);
    if !paged && next_cursor.is_none() {
        return Ok(json_sized(&AssetsAnswer::All(views), capacity));
    }
    let link = next_cursor.as_ref().map(|cursor| next_link(cursor, size, query.as_deref()));
    let mut response = json_sized(&AssetsAnswer::Page(AssetPage { assets: views, next_cursor }), capacity);
    if let Some(link) = link.and_then(|link| HeaderValue::from_str(&link).ok()) {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}

/// About what one asset's view takes as JSON, to size a list's buffer at once.
const VIEW_BYTES: usize = 1024;

/// `value` as an `application/json` answer, written into a buffer of `capacity` bytes to start
/// with. axum's `Json` starts from 128 bytes in a `BytesMut`: a page of 100 assets (≈ 100 KB)
/// grew through ten copies, with a capacity check per token serde writes, ≈ 2 % of statusd's CPU
/// while a dashboard polls a page 20 times a second.
fn json_sized<T: Serialize>(value: &T, capacity: usize) -> Response {
    let mut body = Vec::with_capacity(capacity);
    match serde_json::to_writer(&mut body, value) {
        Ok(()) => ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response(),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot write the answer: {e}")),
    }
}

/// `Link: </api/assets?...&cursor=...>; rel="next"`: the same query, the next cursor.
fn next_link(cursor: &str, size: usize, query: Option<&str>) -> String {
    let mut next = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if name != "cursor" && name != "limit" {
            next.append_pair(&name, &value);
        }
    }
    next.append_pair("limit", &size.to_string());
    next.append_pair("cursor", cursor);
    format!("</api/assets?{}>; rel=\"next\"", next.finish())
}

/// `GET /api/assets/{id}`
#[utoipa::path(get, path = "/api/assets/{id}", tag = "assets",
    params(("id" = String, Path, description = "Asset id")),
    responses(
        (status = 200, description = "One asset", body = AssetView),
        (status = 404, description = "No such asset", body = ErrorBody),
    ))]
pub async fn get_asset(State(state): State<ApiState>, Path(id): Path<String>) -> Result<Json<AssetView>, ApiError> {
    let entry = state.services.assets.get(&id).ok_or_else(|| ApiError::NotFound(format!("no asset {id:?}")))?;
    Ok(Json(view(&state, &entry)))
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

#[cfg(test)]
mod tests {
    /// What a replica answers for an asset another one probes is documented: who reported the
    /// state and when.
    #[test]
    fn the_reporter_of_a_mirrored_state_is_documented() {
        let document = serde_json::to_value(super::super::openapi::document()).expect("serializes");
        // Its own fields are the part of `allOf` with properties (the others are the flattened
        // config and snapshot).
        let view = &document["components"]["schemas"]["AssetView"];
        let own = view["allOf"].as_array().and_then(|parts| parts.iter().find(|part| part["properties"].is_object()));
        let properties = &own.expect("AssetView's own properties")["properties"];
        assert!(properties["reportedBy"].is_object(), "{properties}");
        assert!(properties["reportedAt"].is_object(), "{properties}");
    }
}
