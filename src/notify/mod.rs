//! Notification channels: what a notification is, how each channel's payload looks, and how a
//! payload is delivered (timeout, retries with backoff, `Retry-After`).
//!
//! A new channel is one file here with its payload, plus one variant in [`ChannelConfig`].

mod discord;
mod slack;
mod teams;
mod webhook;

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::{Bound, Report, Secret};

/// What happened, in the words every channel uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Event {
    Down,
    Recovery,
    /// Still down: sent while an incident stays open, when the policy asks for repeats.
    Reminder,
    Panic,
}

impl Event {
    pub const ALL: [Event; 4] = [Event::Down, Event::Recovery, Event::Reminder, Event::Panic];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::Down => "DOWN",
            Event::Recovery => "RECOVERY",
            Event::Reminder => "REMINDER",
            Event::Panic => "PANIC",
        }
    }

    fn emoji(self) -> &'static str {
        match self {
            Event::Down => "🔴",
            Event::Recovery => "🟢",
            Event::Reminder => "🟠",
            Event::Panic => "💥",
        }
    }

    /// RGB colour for channels that colour their cards.
    fn colour(self) -> u32 {
        match self {
            Event::Down => 0xD92D20,
            Event::Recovery => 0x12B76A,
            Event::Reminder => 0xF79009,
            Event::Panic => 0x7A5AF8,
        }
    }
}

/// One message for people, the same for every channel before formatting.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub event: Event,
    pub asset_id: String,
    pub asset_name: String,
    pub timestamp: DateTime<Utc>,
    pub details: String,
    pub incident_id: Option<Uuid>,
}

impl Notification {
    /// One line that reads well anywhere: `🔴 Production API - DOWN`.
    fn headline(&self) -> String {
        format!("{} {} - {}", self.event.emoji(), self.asset_name, self.event.as_str())
    }
}

/// A configured channel, chosen by `type`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ChannelConfig {
    Teams(Endpoint),
    Slack(Endpoint),
    Discord(Endpoint),
    Webhook(Endpoint),
}

/// Where and how patiently to post.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Endpoint {
    #[serde(alias = "url")]
    pub webhook_url: Secret,
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
}

fn default_timeout_seconds() -> u64 {
    10
}

impl Endpoint {
    /// A channel slower than a minute is down; waiting longer only holds a delivery slot.
    pub const BOUNDS: &'static [Bound] = &[Bound::new("timeoutSeconds", 1, 60)];
}

impl ChannelConfig {
    pub const TYPES: &'static [&'static str] = &["teams", "slack", "discord", "webhook"];

    pub fn kind(&self) -> &'static str {
        match self {
            ChannelConfig::Teams(_) => "teams",
            ChannelConfig::Slack(_) => "slack",
            ChannelConfig::Discord(_) => "discord",
            ChannelConfig::Webhook(_) => "webhook",
        }
    }

    fn endpoint(&self) -> &Endpoint {
        match self {
            ChannelConfig::Teams(e)
            | ChannelConfig::Slack(e)
            | ChannelConfig::Discord(e)
            | ChannelConfig::Webhook(e) => e,
        }
    }

    /// The JSON body this channel expects for a notification.
    pub fn payload(&self, notification: &Notification) -> serde_json::Value {
        match self {
            ChannelConfig::Teams(_) => teams::payload(notification),
            ChannelConfig::Slack(_) => slack::payload(notification),
            ChannelConfig::Discord(_) => discord::payload(notification),
            ChannelConfig::Webhook(_) => webhook::payload(notification),
        }
    }

    pub(crate) fn validate(&self, path: &str, report: &mut Report<'_>) {
        let endpoint = self.endpoint();
        let url_path = format!("{path}.webhookUrl");
        // The URL is a secret (it carries the channel's token), so problems never quote it.
        match reqwest::Url::parse(endpoint.webhook_url.expose()) {
            Err(e) => report.problem(url_path, format!("is not a valid URL ({e})")),
            Ok(url) if !matches!(url.scheme(), "http" | "https") => {
                report.problem(url_path, format!("scheme {:?} is not http or https", url.scheme()))
            }
            Ok(_) => {}
        }
    }
}

/// How a delivery ended when it did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The channel answered with a status that retrying will not fix (a bad URL, a bad payload).
    #[error("rejected with HTTP {status}")]
    Rejected { status: StatusCode },
    #[error("gave up after {attempts} attempts: {last}")]
    GaveUp { attempts: u32, last: String },
}

/// Tries per notification, the first included.
pub const ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// A `Retry-After` longer than this is not worth holding a delivery slot for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Posts a notification to its channel, retrying transient failures with exponential backoff.
/// Returns how many attempts it took.
pub async fn deliver(
    client: &reqwest::Client,
    channel: &ChannelConfig,
    notification: &Notification,
) -> Result<u32, DeliveryError> {
    let endpoint = channel.endpoint();
    let body = channel.payload(notification);
    let mut backoff = FIRST_BACKOFF;
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let mut wait = backoff;
        match client
            .post(endpoint.webhook_url.expose())
            .timeout(Duration::from_secs(endpoint.timeout_seconds))
            .json(&body)
            .send()
            .await
        {
            Ok(response) if response.status().is_success() => return Ok(attempt),
            Ok(response) => {
                let status = response.status();
                let retryable = status.is_server_error()
                    || status == StatusCode::TOO_MANY_REQUESTS
                    || status == StatusCode::REQUEST_TIMEOUT;
                if !retryable {
                    return Err(DeliveryError::Rejected { status });
                }
                if let Some(after) = retry_after(&response) {
                    wait = after.min(MAX_RETRY_AFTER);
                }
                last = format!("HTTP {status}");
            }
            // Without the URL: it is a secret, and this message ends up in logs.
            Err(e) => last = crate::probe::describe_reqwest_error(&e.without_url()),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(jitter(wait)).await;
            backoff *= 2;
        }
    }
    Err(DeliveryError::GaveUp { attempts: ATTEMPTS, last })
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?;
    value.to_str().ok()?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// ±20 %, so that channels failing together do not retry in lockstep.
fn jitter(wait: Duration) -> Duration {
    wait.mul_f64(0.8 + fastrand::f64() * 0.4)
}

/// Shortens text to at most `max` characters, marking the cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
pub(crate) fn sample(event: Event) -> Notification {
    Notification {
        event,
        asset_id: "api-prod".into(),
        asset_name: "Production API".into(),
        timestamp: DateTime::parse_from_rfc3339("2026-11-21T10:30:00Z").expect("a valid timestamp").with_timezone(&Utc),
        details: "HTTP 500 (expected 200)".into(),
        incident_id: Some(Uuid::nil()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_short_text_and_marks_long_text() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
