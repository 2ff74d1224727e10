//! Cross-cutting request handling: request ids in logs, RED metrics, timeouts, bearer tokens,
//! JSON answers for panics, unknown routes and every other error.

use std::any::Any;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use tokio::time::Instant;
use tracing::Instrument;

use super::error::json_error;
use super::routes::REQUEST_TIMEOUT;
use super::{ApiError, ApiState};
use crate::telemetry::names;

/// Every log line of a request carries its id (taken from `x-request-id` or generated).
pub async fn trace(request: Request, next: Next) -> Response {
    let request_id =
        request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let span = tracing::info_span!("request", %request_id, method = %request.method(), path = %request.uri().path());
    async move {
        let started = Instant::now();
        let response = next.run(request).await;
        tracing::debug!(
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_millis() as u64,
            "answered"
        );
        response
    }
    .instrument(span)
    .await
}

/// Rate, errors and duration per route, labelled with the route template, never the raw path
/// (asset ids in paths would make the label set unbounded).
pub async fn record_metrics(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(names::HTTP_REQUESTS_TOTAL, "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(names::HTTP_REQUEST_DURATION_SECONDS, "route" => route).record(started.elapsed().as_secs_f64());
    response
}

/// Error text longer than this is not an extractor's rejection; it is cut here.
const MAX_ERROR_TEXT_BYTES: usize = 4096;

/// Every error answer is `{"error": …}` JSON. Handlers answer with [`ApiError`], query
/// parameters included (see `query.rs`); what answers before a handler runs (axum's extractor
/// rejections: a path segment that is not UTF-8, a malformed JSON body; the body limit's 413)
/// speaks plain text, and is rewritten here with its status, its headers and its words.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_ERROR_TEXT_BYTES).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() { status.canonical_reason().unwrap_or("error").to_lowercase() } else { text };
    let (json_parts, json_body) = json_error(status, message).into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        json_parts.headers.get(header::CONTENT_TYPE).cloned().unwrap_or(HeaderValue::from_static("application/json")),
    );
    Response::from_parts(parts, json_body)
}

pub async fn timeout(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => json_error(StatusCode::SERVICE_UNAVAILABLE, "the request took too long"),
    }
}

/// Mutating routes need `Authorization: Bearer <token>` when a token is configured.
pub async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    if let Some(expected) = &state.api_token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        // Constant time, so the token cannot be guessed byte by byte from response times.
        if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(request).await
}

/// A handler panicked: the panic hook has logged it with its location; it is counted and the
/// client gets a JSON 500.
pub fn panic_response(_payload: Box<dyn Any + Send + 'static>) -> Response<Body> {
    metrics::counter!(names::HTTP_PANICS_TOTAL).increment(1);
    json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

pub async fn not_found(method: Method, uri: Uri) -> Response {
    json_error(StatusCode::NOT_FOUND, format!("no route for {method} {}", uri.path()))
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    json_error(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed on {}", uri.path()))
}
