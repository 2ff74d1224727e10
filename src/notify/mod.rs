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

use crate::backoff::Backoff;
use crate::redact::Secret;
use crate::report::{Bound, Report};

/// What happened, in the words every channel uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Event {
    Down,
    /// The asset is up again (or, for `onDegraded` channels, no longer degraded).
    Recovery,
    /// Still down: sent while an incident stays open, when the policy asks for repeats.
    Reminder,
    Panic,
    /// Someone acknowledged the incident (`details` names who): no more reminders or tiers.
    Ack,
    /// The asset changes state too often to report each change: one incident stays open.
    Flapping,
    /// The asset answers, but slower than `degradedLatencyMs` or against `degradedConditions`.
    Degraded,
    /// Every asset with `"role": "connectivity"` is down: statusd has lost its own network.
    NetworkDown,
    /// A connectivity asset is up again after [`Event::NetworkDown`].
    NetworkUp,
    /// A maintenance window began for the asset.
    MaintenanceStart,
    /// A maintenance window of the asset ended.
    MaintenanceEnd,
    /// A test message asked for through `POST /api/notifiers/{name}/test`: about nothing.
    Test,
}

impl Event {
    pub const ALL: [Event; 12] = [
        Event::Down,
        Event::Recovery,
        Event::Reminder,
        Event::Panic,
        Event::Ack,
        Event::Flapping,
        Event::Degraded,
        Event::NetworkDown,
        Event::NetworkUp,
        Event::MaintenanceStart,
        Event::MaintenanceEnd,
        Event::Test,
    ];

    /// The name channels and the API use, as serde writes it: `DOWN`, `NETWORK_DOWN`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Down => "DOWN",
            Event::Recovery => "RECOVERY",
            Event::Reminder => "REMINDER",
            Event::Panic => "PANIC",
            Event::Ack => "ACK",
            Event::Flapping => "FLAPPING",
            Event::Degraded => "DEGRADED",
            Event::NetworkDown => "NETWORK_DOWN",
            Event::NetworkUp => "NETWORK_UP",
            Event::MaintenanceStart => "MAINTENANCE_START",
            Event::MaintenanceEnd => "MAINTENANCE_END",
            Event::Test => "TEST",
        }
    }

    fn emoji(self) -> &'static str {
        match self {
            Event::Down | Event::NetworkDown => "🔴",
            Event::Recovery | Event::NetworkUp => "🟢",
            Event::Reminder | Event::Degraded => "🟠",
            Event::Panic => "💥",
            Event::Ack => "👀",
            Event::Flapping => "🔁",
            Event::MaintenanceStart | Event::MaintenanceEnd => "🔧",
            Event::Test => "🧪",
        }
    }

    /// RGB colour for channels that colour their cards.
    fn colour(self) -> u32 {
        match self {
            Event::Down | Event::NetworkDown => 0xD92D20,
            Event::Recovery | Event::NetworkUp => 0x12B76A,
            Event::Reminder | Event::Degraded | Event::Flapping => 0xF79009,
            Event::Panic => 0x7A5AF8,
            Event::Ack | Event::MaintenanceStart | Event::MaintenanceEnd | Event::Test => 0x2E90FA,
        }
    }
}

/// One message for people, the same for every channel before formatting. Its JSON is also what
/// the outbox keeps (`notifications.payload`) to send it again after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub event: Event,
    pub asset_id: String,
    pub asset_name: String,
    pub timestamp: DateTime<Utc>,
    pub details: String,
    pub incident_id: Option<Uuid>,
    /// A storm grouped into one message: the notifications it stands for, one per asset, all
    /// of this event. Empty for a notification about one asset. See [`Notification::grouped`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group: Vec<Notification>,
    /// The escalation tier: for a DOWN, the tier that paged the channel (0 is `onDown` or the
    /// first tier); for a REMINDER, the DOWN's; for an ACK or a RECOVERY, the highest tier
    /// reached. None for events outside an incident (PANIC).
    pub tier: Option<u32>,
}

impl Notification {
    /// One message for several assets' notifications of the same event (at least one): named
    /// "N assets", stamped with the earliest, its details a list of the names.
    pub fn grouped(event: Event, items: Vec<Notification>) -> Notification {
        let timestamp = items.iter().map(|n| n.timestamp).min().unwrap_or_else(Utc::now);
        let names: Vec<&str> = items.iter().map(|n| n.asset_name.as_str()).collect();
        Notification {
            event,
            asset_id: String::new(),
            asset_name: format!("{} assets", items.len()),
            timestamp,
            details: names.join(", "),
            incident_id: None,
            group: items,
            tier: None,
        }
    }

    /// One line that reads well anywhere: `🔴 Production API - DOWN`.
    fn headline(&self) -> String {
        format!("{} {} - {}", self.event.emoji(), self.asset_name, self.event.as_str())
    }

    /// The lines of a grouped message, one per asset: `Production API: HTTP 500 (incident …)`.
    fn group_lines(&self) -> Vec<String> {
        self.group
            .iter()
            .map(|n| match n.incident_id {
                Some(incident) => format!("{}: {} (incident {incident})", n.asset_name, n.details),
                None => format!("{}: {}", n.asset_name, n.details),
            })
            .collect()
    }

    /// `tier 1`, for the channels that show it in their text.
    fn tier_text(&self) -> Option<String> {
        self.tier.map(|tier| format!("tier {tier}"))
    }
}

/// A configured channel, chosen by `type`. Its names (serde's tag, and [`ChannelType`]'s for
/// lists) both come from the variants, lower-cased.
#[derive(Debug, Clone, PartialEq, Deserialize, strum::EnumDiscriminants)]
#[serde(tag = "type", rename_all = "lowercase")]
#[strum_discriminants(
    name(ChannelType),
    derive(strum::IntoStaticStr, strum::VariantNames),
    strum(serialize_all = "lowercase")
)]
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
    /// Whether a storm reaches this channel as one grouped message (when the policy has
    /// `grouping`); unset, channels read by people group and the generic webhook does not.
    #[serde(default)]
    pub group: Option<bool>,
}

fn default_timeout_seconds() -> u64 {
    10
}

impl Endpoint {
    /// A channel slower than a minute is down; waiting longer only holds a delivery slot.
    pub const BOUNDS: &'static [Bound] = &[Bound::new("timeoutSeconds", 1, 60)];
}

impl ChannelConfig {
    /// Every channel `type`, in the order of the variants.
    pub const TYPES: &'static [&'static str] = <ChannelType as strum::VariantNames>::VARIANTS;

    /// The channel's `type`: `teams`, `slack`, …
    pub fn kind(&self) -> &'static str {
        ChannelType::from(self).into()
    }

    /// Whether storms reach this channel grouped: its `group` key, else yes for channels read
    /// by people and no for the generic webhook (scripts expect one payload per incident).
    pub fn groups(&self) -> bool {
        let endpoint = self.endpoint();
        endpoint.group.unwrap_or(!matches!(self, ChannelConfig::Webhook(_)))
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
    /// The channel asked to be left alone for `wait` (429, or 503 with `Retry-After`): not a
    /// failed attempt; the same notification goes out once the wait is over.
    #[error("rate limited with HTTP {status}: asked to wait {}s", wait.as_secs_f64())]
    RateLimited { status: StatusCode, wait: Duration },
}

/// A delivery that went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub attempts: u32,
    /// The channel said its budget is spent (Discord's `X-RateLimit-Remaining: 0`): nothing more
    /// may be posted for this long (`X-RateLimit-Reset-After`).
    pub pause: Option<Duration>,
}

/// Tries per notification, the first included, against failures that are not rate limits.
pub const ATTEMPTS: u32 = 3;
/// Waits between tries: 1 s, then 2 s, each ±20 % so that channels failing together do not
/// retry in lockstep. No cap: [`ATTEMPTS`] tries never get far.
const BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::MAX).with_jitter(0.2);
/// Waits a channel asks for are honoured up to this: far above what services ask (Slack and
/// Discord ask for seconds), short enough that a bogus header cannot silence a channel for good.
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(15 * 60);
/// A 429 without a wait the channel names: try again after this.
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(1);

/// Posts a notification to its channel, retrying transient failures (timeouts, connection
/// errors, 5xx, 408) with exponential backoff. A rate limit ends the call at once with the wait
/// the channel asked for, for the caller to pause the whole channel: a rate limit is per
/// webhook, not per message.
pub async fn deliver(
    client: &reqwest::Client,
    channel: &ChannelConfig,
    notification: &Notification,
) -> Result<Sent, DeliveryError> {
    deliver_tries(client, channel, notification, ATTEMPTS).await
}

/// [`deliver`], with `tries` tries (at least one) instead of [`ATTEMPTS`]: a test message
/// answers at once, it does not retry for the asker to wait.
pub async fn deliver_tries(
    client: &reqwest::Client,
    channel: &ChannelConfig,
    notification: &Notification,
    tries: u32,
) -> Result<Sent, DeliveryError> {
    let tries = tries.max(1);
    let endpoint = channel.endpoint();
    let body = channel.payload(notification);
    let mut backoff = BACKOFF;
    let mut last = String::new();
    for attempt in 1..=tries {
        match client
            .post(endpoint.webhook_url.expose())
            .timeout(Duration::from_secs(endpoint.timeout_seconds))
            .json(&body)
            .send()
            .await
        {
            Ok(response) if response.status().is_success() => {
                return Ok(Sent { attempts: attempt, pause: budget_spent(response.headers()) });
            }
            Ok(response) => {
                let status = response.status();
                if let Some(wait) = rate_limit(status, response.headers()) {
                    return Err(DeliveryError::RateLimited { status, wait });
                }
                let retryable = status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT;
                if !retryable {
                    return Err(DeliveryError::Rejected { status });
                }
                last = format!("HTTP {status}");
            }
            // Without the URL: it is a secret, and this message ends up in logs.
            Err(e) => last = crate::http_error::describe_reqwest_error(&e.without_url()),
        }
        if attempt < tries {
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
    Err(DeliveryError::GaveUp { attempts: tries, last })
}

/// The wait a refusal asks for, if it is a rate limit: any 429, and a 503 that names a
/// `Retry-After` (a service asking for a pause, RFC 9110 section 10.2.3). The longest of
/// `Retry-After` and Discord's `X-RateLimit-Reset-After` is honoured, never less
/// (<https://discord.com/developers/docs/topics/rate-limits>).
fn rate_limit(status: StatusCode, headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let asked = [retry_after(headers), reset_after(headers)].into_iter().flatten().max();
    match status {
        StatusCode::TOO_MANY_REQUESTS => Some(asked.unwrap_or(DEFAULT_RATE_LIMIT_WAIT).min(MAX_RATE_LIMIT_WAIT)),
        StatusCode::SERVICE_UNAVAILABLE => asked.map(|wait| wait.min(MAX_RATE_LIMIT_WAIT)),
        _ => None,
    }
}

/// After a success: Discord's `X-RateLimit-Remaining: 0` says the next post would be refused
/// until `X-RateLimit-Reset-After` seconds have passed.
fn budget_spent(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let remaining = headers.get("x-ratelimit-remaining")?.to_str().ok()?.trim().parse::<f64>().ok()?;
    if remaining > 0.0 {
        return None;
    }
    reset_after(headers).map(|wait| wait.min(MAX_RATE_LIMIT_WAIT))
}

/// `Retry-After`: delay-seconds, or an HTTP date (RFC 9110 section 10.2.3).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    (at - Utc::now()).to_std().ok()
}

/// Discord's `X-RateLimit-Reset-After`: seconds, with decimals.
fn reset_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds = headers.get("x-ratelimit-reset-after")?.to_str().ok()?.trim().parse::<f64>().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
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
        group: Vec::new(),
        tier: None,
    }
}

/// A storm of `n` DOWNs grouped into one notification, for the channels' tests.
#[cfg(test)]
pub(crate) fn sample_group(n: usize) -> Notification {
    let items = (0..n)
        .map(|i| Notification {
            asset_id: format!("api-{i}"),
            asset_name: format!("API {i}"),
            incident_id: Some(Uuid::from_u128(i as u128 + 1)),
            ..sample(Event::Down)
        })
        .collect();
    Notification::grouped(Event::Down, items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> reqwest::header::HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (reqwest::header::HeaderName::from_static(name), value.parse().expect("value")))
            .collect()
    }

    #[test]
    fn rate_limits_are_read_as_services_send_them() {
        let too_many = StatusCode::TOO_MANY_REQUESTS;
        assert_eq!(rate_limit(too_many, &headers(&[("retry-after", "42")])), Some(Duration::from_secs(42)));
        assert_eq!(rate_limit(too_many, &headers(&[("retry-after", "1.5")])), Some(Duration::from_millis(1500)));
        // Discord: the longer of the two.
        let discord = headers(&[("retry-after", "1"), ("x-ratelimit-reset-after", "2.25")]);
        assert_eq!(rate_limit(too_many, &discord), Some(Duration::from_millis(2250)));
        assert_eq!(rate_limit(too_many, &headers(&[])), Some(DEFAULT_RATE_LIMIT_WAIT));
        assert_eq!(rate_limit(too_many, &headers(&[("retry-after", "86400")])), Some(MAX_RATE_LIMIT_WAIT));
        let date = (Utc::now() + chrono::TimeDelta::seconds(120)).to_rfc2822();
        let wait = rate_limit(too_many, &headers(&[("retry-after", &date)])).expect("a wait");
        assert!((Duration::from_secs(118)..=Duration::from_secs(120)).contains(&wait), "{wait:?}");
        // A 503 is a rate limit only when it names a wait.
        let unavailable = StatusCode::SERVICE_UNAVAILABLE;
        assert_eq!(rate_limit(unavailable, &headers(&[("retry-after", "5")])), Some(Duration::from_secs(5)));
        assert_eq!(rate_limit(unavailable, &headers(&[])), None);
        assert_eq!(rate_limit(StatusCode::INTERNAL_SERVER_ERROR, &headers(&[("retry-after", "5")])), None);
        // After a success: a spent budget pauses the channel.
        let spent = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset-after", "0.5")]);
        assert_eq!(budget_spent(&spent), Some(Duration::from_millis(500)));
        let left = headers(&[("x-ratelimit-remaining", "3"), ("x-ratelimit-reset-after", "0.5")]);
        assert_eq!(budget_spent(&left), None);
    }

    /// The list of channel types and the names serde reads cannot drift: both come from the variants.
    #[test]
    fn every_channel_type_is_read_by_its_name() {
        for name in ChannelConfig::TYPES {
            let channel: ChannelConfig =
                serde_json::from_value(serde_json::json!({"type": name, "url": "https://hooks.example.com/x"}))
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(channel.kind(), *name);
        }
        let unknown = serde_json::from_value::<ChannelConfig>(serde_json::json!({"type": "pager"})).expect_err("pager");
        let listed = ChannelConfig::TYPES.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ");
        assert!(unknown.to_string().ends_with(&format!("expected one of {listed}")), "{unknown}");
    }

    #[test]
    fn truncation_keeps_short_text_and_marks_long_text() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
