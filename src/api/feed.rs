//! `GET /feed.atom`: the incidents of public assets as an Atom feed (RFC 4287): open ones and
//! those of the last 14 days, newest first; 404 when the status page is disabled.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::error::ErrorBody;
use super::{ApiError, ApiState, status};
use crate::statuspage::render;

/// `GET /feed.atom`
#[utoipa::path(get, path = "/feed.atom", tag = "status page",
    responses(
        (status = 200, description = "Incidents of public assets, open and of the last 14 days, as Atom", content_type = "application/atom+xml"),
        (status = 404, description = "The status page is disabled", body = ErrorBody),
        (status = 503, description = "The supervisor or the database did not answer", body = ErrorBody),
    ))]
pub async fn feed(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let report = status::report(&state).await?;
    let mut incidents: Vec<_> = report.open_incidents.iter().chain(&report.recent_incidents).cloned().collect();
    incidents.sort_by_key(|incident| std::cmp::Reverse(incident.started_at));
    // The feed's id and links use the host the client asked for (escaped by the XML writer).
    let host = headers.get(header::HOST).and_then(|host| host.to_str().ok()).unwrap_or("localhost");
    let xml = render::atom(&report, &incidents, &format!("http://{host}"));
    let mut response = xml.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/atom+xml; charset=utf-8"));
    Ok(response)
}
