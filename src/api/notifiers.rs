//! `POST /api/notifiers/{name}/test`: sends a clearly marked test message through a channel now,
//! so that a user can check a webhook URL before an outage does.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::Serialize;

use super::error::ErrorBody;
use super::{ApiError, ApiState};
use crate::notify::{self, DeliveryError, Event, Notification};
use crate::telemetry::names;

/// How a test message went.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestOutcome {
    pub channel: String,
    /// Whether the channel took it.
    pub sent: bool,
    /// What the channel answered when it did not: `rejected with HTTP 404`, `gave up after 1
    /// attempts: connection refused`, … (never its URL or tokens).
    pub error: Option<String>,
}

/// `POST /api/notifiers/{name}/test`: one try, no retry, not through the channel's queue (so a
/// paused or busy channel still answers now) and not in the outbox (it is about nothing).
#[utoipa::path(post, path = "/api/notifiers/{name}/test", tag = "notifications", security(("apiToken" = [])),
    params(("name" = String, Path, description = "A notifier's name in notifiers.json")),
    responses(
        (status = 200, description = "The channel took the test message", body = TestOutcome),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such notifier", body = ErrorBody),
        (status = 502, description = "The channel refused it or could not be reached: `error` says how", body = TestOutcome),
    ))]
pub async fn test_notifier(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<TestOutcome>), ApiError> {
    let channel = state
        .services
        .directory
        .channel(&name)
        .ok_or_else(|| ApiError::NotFound(format!("no notifier {name:?} (see notifiers.json)")))?;
    let now = Utc::now();
    let test = Notification {
        event: Event::Test,
        asset_id: "statusd".into(),
        asset_name: "statusd test message".into(),
        timestamp: now,
        details: format!(
            "This is a test of the notifier {name:?}, asked for at {} through POST /api/notifiers/{name}/test. \
             If you read it, statusd can reach this channel. Nothing is down.",
            now.to_rfc3339()
        ),
        incident_id: None,
        group: Vec::new(),
        tier: None,
        since: None,
    };
    let message = notify::message_for(&name, &channel, &test, None);
    let outcome = notify::deliver(&state.services.notify_client, &channel, &message, 1).await;
    let result = if outcome.is_ok() { "sent" } else { "failed" };
    metrics::counter!(names::NOTIFICATIONS_TOTAL, "channel" => name.clone(), "event" => Event::Test.as_str(), "result" => result)
        .increment(1);
    match outcome {
        Ok(_) => {
            tracing::info!(channel = %name, "test message sent");
            Ok((StatusCode::OK, Json(TestOutcome { channel: name, sent: true, error: None })))
        }
        Err(error) => {
            let error = match error {
                // One try: "gave up after 1 attempts" says less than what went wrong.
                DeliveryError::GaveUp { last, .. } => last,
                other => other.to_string(),
            };
            tracing::warn!(channel = %name, %error, "test message failed");
            Ok((StatusCode::BAD_GATEWAY, Json(TestOutcome { channel: name, sent: false, error: Some(error) })))
        }
    }
}
