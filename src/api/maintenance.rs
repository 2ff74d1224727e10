//! `/api/maintenance`: the maintenance windows, the manifest's and those made here. A window
//! made here is stored (it survives restarts) and applies at once; one from the manifest is
//! changed by editing the manifest.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ErrorBody;
use super::query::{Choice, Choices, Params};
use super::{ApiError, ApiState};
use crate::actors::maintenance::{Board, Source};
use crate::config::Problems;
use crate::maintenance::{Calendar, Occurrence, Window, WindowSpec, parse_window};
use crate::report::Report;
use crate::store::StoredWindow;

/// Which windows to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowState {
    /// In force now.
    Active,
    /// Not in force now, with an occurrence to come.
    Upcoming,
    All,
}

impl Choices for WindowState {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("active", WindowState::Active), ("upcoming", WindowState::Upcoming), ("all", WindowState::All)];
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MaintenanceParams {
    /// active, upcoming or all (default)
    #[param(value_type = Option<String>)]
    state: Option<Choice<WindowState>>,
}

/// A window as written, with where it comes from and when it is in force.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WindowView {
    #[serde(flatten)]
    spec: WindowSpec,
    source: Source,
    active: bool,
    /// The occurrence in force now, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    current: Option<Occurrence>,
    /// The next occurrence to start, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<Occurrence>,
    /// The configured assets it covers (those it names, or those its `match` picks).
    covered_assets: Vec<String>,
}

fn view(board: &Board, calendar: &Calendar, window: &Window, now: DateTime<Utc>) -> WindowView {
    let current = window.occurrence_at(now);
    WindowView {
        spec: window.spec.clone(),
        source: board.source_of(window.id()).unwrap_or(Source::Api),
        active: current.is_some(),
        current,
        next: window.next_after(now),
        covered_assets: calendar.assets_of(window.id()).to_vec(),
    }
}

/// `GET /api/maintenance?state=active|upcoming|all`
#[utoipa::path(get, path = "/api/maintenance", tag = "maintenance",
    params(MaintenanceParams),
    responses(
        (status = 200, description = "Maintenance windows, the manifest's first, each with its current or next occurrence", body = Vec<WindowView>),
        (status = 400, description = "An unknown state", body = ErrorBody),
    ))]
pub async fn list_windows(
    State(state): State<ApiState>,
    Params(params): Params<MaintenanceParams>,
) -> Json<Vec<WindowView>> {
    let wanted = params.state.map_or(WindowState::All, |state| state.0);
    let board = &state.services.maintenance;
    let calendar = board.calendar();
    let now = Utc::now();
    let views = calendar
        .windows()
        .iter()
        .map(|window| view(board, &calendar, window, now))
        .filter(|view| match wanted {
            WindowState::Active => view.active,
            WindowState::Upcoming => !view.active && view.next.is_some(),
            WindowState::All => true,
        })
        .collect();
    Json(views)
}

/// `POST /api/maintenance`: the manifest's shape, one window.
#[utoipa::path(post, path = "/api/maintenance", tag = "maintenance", security(("apiToken" = [])),
    request_body(content = WindowSpec, description = "One window: id, assets or match, and start and end (RFC 3339) or cron, durationMinutes and timezone"),
    responses(
        (status = 201, description = "Stored and in force", body = WindowView),
        (status = 400, description = "Not a valid window: every problem is listed", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 409, description = "A window with this id exists", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ))]
pub async fn create_window(
    State(state): State<ApiState>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<WindowView>), ApiError> {
    let board = &state.services.maintenance;
    let assets = board.asset_ids();
    let known: Vec<&str> = assets.iter().map(String::as_str).collect();
    let mut problems = Vec::new();
    let window = parse_window(&body, "", &known, &mut Report::new("request body", &mut problems));
    let window = match window {
        Some(window) if problems.is_empty() => window,
        _ => return Err(ApiError::InvalidWindow(Problems(problems))),
    };
    let id = window.id().to_string();
    if let Some(source) = board.source_of(&id) {
        return Err(ApiError::Conflict(taken(&id, source)));
    }
    let stored = StoredWindow {
        id: id.clone(),
        // Invariant: a spec is strings, numbers and JSON values, which always serialize.
        definition: serde_json::to_string(&window.spec).expect("a window spec serializes"),
        created_at: Utc::now(),
    };
    // The database decides between two requests for the same id.
    if !state.store.add_maintenance_window(&stored).await? {
        return Err(ApiError::Conflict(taken(&id, Source::Api)));
    }
    tracing::info!(window_id = %id, "maintenance window created by the API");
    board.add_api(window.clone());
    Ok((StatusCode::CREATED, Json(view(board, &board.calendar(), &window, Utc::now()))))
}

fn taken(id: &str, source: Source) -> String {
    match source {
        Source::Manifest => format!("a maintenance window {id:?} is defined in the manifest: choose another id"),
        Source::Api => format!("a maintenance window {id:?} exists already: DELETE /api/maintenance/{id} first"),
    }
}

/// `DELETE /api/maintenance/{id}`: a window made by the API.
#[utoipa::path(delete, path = "/api/maintenance/{id}", tag = "maintenance", security(("apiToken" = [])),
    params(("id" = String, Path, description = "Window id")),
    responses(
        (status = 204, description = "Deleted: no longer in force"),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such window", body = ErrorBody),
        (status = 409, description = "The window comes from the manifest: edit the manifest", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ))]
pub async fn delete_window(State(state): State<ApiState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let board = &state.services.maintenance;
    if board.source_of(&id) == Some(Source::Manifest) {
        return Err(ApiError::Conflict(format!(
            "maintenance window {id:?} is defined in the manifest: edit the manifest to change or remove it"
        )));
    }
    if !state.store.remove_maintenance_window(&id).await? {
        return Err(ApiError::NotFound(format!("no maintenance window {id:?}")));
    }
    tracing::info!(window_id = %id, "maintenance window deleted by the API");
    board.remove_api(&id);
    Ok(StatusCode::NO_CONTENT)
}
