//! `GET /` (the status page, HTML) and `GET /api/status` (the same content as JSON). Both 404
//! when `[statuspage] enabled = false`. Live statuses are asked from the actors as
//! `/api/assets` asks them; uptime, day bars and response times come from the cached history
//! (`statuspage/history.rs`), incidents of the last 14 days from one query.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use chrono::{TimeDelta, Utc};

use super::error::ErrorBody;
use super::{ApiError, ApiState, assets};
use crate::actors::supervisor::SupervisorMsg;
use crate::asset::AssetConfig;
use crate::statuspage::model::{self, Inputs, Live, RECENT_DAYS, StatusReport};
use crate::statuspage::{Document, Encoding, render};

/// What the page may load: nothing from another host, except the configured logo's.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
     img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'";

/// The report, or 404 when the status page is disabled.
pub(super) async fn report(state: &ApiState) -> Result<StatusReport, ApiError> {
    let settings = &state.statuspage.settings;
    if !settings.enabled {
        return Err(ApiError::NotFound("the status page is disabled ([statuspage] enabled = false)".into()));
    }
    let entries = state.ask(SupervisorMsg::Assets).await?;
    let public: Vec<_> = entries.into_iter().filter(|entry| entry.config.public).collect();
    let snapshots: Vec<_> = public.iter().map(|entry| assets::live(state, entry)).collect();
    let history = state.statuspage.history.get(&state.store).await?;
    let configs: Vec<&AssetConfig> = public.iter().map(|entry| entry.config.as_ref()).collect();
    let views = state.statuspage.views(&history, &configs);
    let now = Utc::now();
    let incidents = state.store.incidents_since(now - TimeDelta::days(RECENT_DAYS)).await?;
    let calendar = state.services.maintenance.calendar();
    let assets = public
        .iter()
        .zip(&snapshots)
        .map(|(entry, (snapshot, _))| Live { config: &entry.config, status: snapshot.status, since: snapshot.since })
        .collect();
    let mut report = model::build(Inputs {
        settings,
        assets,
        history: &history,
        views: &views,
        incidents: &incidents,
        calendar: &calendar,
        now,
    });
    let listed = model::listed_incidents(&report);
    if !listed.is_empty() {
        let updates = state.store.incident_updates(&listed).await?;
        model::attach_updates(&mut report, &updates);
    }
    Ok(report)
}

/// `GET /`: the status page.
#[utoipa::path(get, path = "/", tag = "status page",
    responses(
        (status = 200, description = "The status page (HTML, no requests to other hosts)", content_type = "text/html"),
        (status = 404, description = "The status page is disabled", body = ErrorBody),
        (status = 503, description = "The supervisor or the database did not answer", body = ErrorBody),
    ))]
pub async fn page(State(state): State<ApiState>, request_headers: HeaderMap) -> Result<Response, ApiError> {
    let report = report(&state).await?;
    let html = render::html(&report).map_err(|error| {
        // A template that compiled renders; this would be a bug, reported as one.
        tracing::error!(%error, "the status page did not render");
        ApiError::Unavailable(format!("the status page did not render: {error}"))
    })?;
    let mut response = encoded(&state, &request_headers, Document::Html, html).await?;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    let policy = match report.logo_url.as_deref().and_then(logo_origin) {
        Some(origin) => {
            CONTENT_SECURITY_POLICY.replace("img-src 'self' data:", &format!("img-src 'self' data: {origin}"))
        }
        None => CONTENT_SECURITY_POLICY.to_string(),
    };
    if let Ok(policy) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    Ok(response)
}

/// `text` as the client accepts it (brotli, gzip or plain), compressed once per distinct text.
async fn encoded(
    state: &ApiState,
    request: &HeaderMap,
    document: Document,
    text: String,
) -> Result<Response, ApiError> {
    let accepted = request.get(header::ACCEPT_ENCODING).and_then(|value| value.to_str().ok()).unwrap_or("");
    let encoding = Encoding::preferred(accepted);
    let page = state.statuspage.encoded(document, text);
    // Compressing a new page is CPU work (tens of ms for a thousand assets): off the runtime.
    let body = tokio::task::spawn_blocking(move || page.body(encoding))
        .await
        .map_err(|error| ApiError::Unavailable(format!("the status page could not be compressed: {error}")))?;
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    if let Some(coding) = encoding.header() {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
    }
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// The origin (`https://cdn.example`) of a logo on another host, for the page's policy.
fn logo_origin(logo: &str) -> Option<String> {
    let url = url::Url::parse(logo).ok().filter(|url| matches!(url.scheme(), "http" | "https"))?;
    Some(url.origin().ascii_serialization())
}

/// `GET /api/status`: the status page's content as JSON.
#[utoipa::path(get, path = "/api/status", tag = "status page",
    responses(
        (status = 200, description = "What the status page shows: banner, groups of public assets with live status, uptime (24 h, 30 d, 90 d), 90 days and 24 hourly response times; open incidents, maintenance, incidents of the last 14 days", body = StatusReport),
        (status = 404, description = "The status page is disabled", body = ErrorBody),
        (status = 503, description = "The supervisor or the database did not answer", body = ErrorBody),
    ))]
pub async fn status(State(state): State<ApiState>, request_headers: HeaderMap) -> Result<Response, ApiError> {
    let report = report(&state).await?;
    let json = serde_json::to_string(&report)
        .map_err(|error| ApiError::Unavailable(format!("the status report did not serialize: {error}")))?;
    let mut response = encoded(&state, &request_headers, Document::Json, json).await?;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}
