//! PagerDuty Events API v2: one alert per incident, filed under `dedup_key` = the incident id.
//! A DOWN triggers it, an ACK acknowledges it, a RECOVERY resolves it
//! (<https://developer.pagerduty.com/docs/events-api-v2/trigger-events/>, `POST /v2/enqueue`).
//! Maintenance and test messages page no one: they are change events
//! (<https://developer.pagerduty.com/docs/events-api-v2/send-change-events/>, `POST
//! /v2/change/enqueue`).

use serde::Deserialize;
use serde_json::json;

use super::{Api, Key, Notification, Page, Request, truncate};
use crate::redact::Secret;

/// `{"type": "pagerduty", "routingKey": "…", "severity": "critical"}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// The integration key of an Events API v2 integration (32 characters).
    pub routing_key: Secret,
    #[serde(default)]
    pub severity: Severity,
}

/// PagerDuty's `payload.severity` of a triggered alert.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Critical,
    Error,
    Warning,
    Info,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// PagerDuty's limit on `payload.summary`.
const MAX_SUMMARY: usize = 1024;

impl Api for Settings {
    const KEYS: &'static [Key] = &[Key::secret("routingKey"), Key::optional("severity")];
    const DEFAULT_BASE_URL: Option<&'static str> = Some("https://events.pagerduty.com");
    const GROUPS: bool = false;
    const TEMPLATED: bool = false;

    fn request(&self, base: &str, notification: &Notification) -> Request {
        let summary = truncate(&format!("{}: {}", notification.headline(), notification.details), MAX_SUMMARY);
        let action = match notification.event.page() {
            Page::Open => "trigger",
            Page::Acknowledge => "acknowledge",
            Page::Close => "resolve",
            Page::Note => {
                return Request::post(
                    format!("{base}/v2/change/enqueue"),
                    json!({
                        "routing_key": self.routing_key.expose(),
                        "payload": {
                            "summary": summary,
                            "timestamp": notification.timestamp.to_rfc3339(),
                            "source": "statusd",
                            "custom_details": {"event": notification.event.as_str(), "details": notification.details},
                        },
                    }),
                );
            }
        };
        let mut body = json!({
            "routing_key": self.routing_key.expose(),
            "event_action": action,
            "dedup_key": notification.alert_key(),
        });
        // Only a trigger carries the alert's facts; acknowledge and resolve name the key alone.
        if action == "trigger" {
            body["payload"] = json!({
                "summary": summary,
                "source": notification.asset_id,
                "severity": self.severity.as_str(),
                "timestamp": notification.timestamp.to_rfc3339(),
                "component": notification.asset_name,
                "class": notification.event.as_str(),
                "custom_details": {
                    "event": notification.event.as_str(),
                    "details": notification.details,
                    "incident": notification.incident_id,
                    "tier": notification.tier,
                },
            });
            body["client"] = json!("statusd");
        }
        Request::post(format!("{base}/v2/enqueue"), body)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Event, sample};
    use super::*;

    fn settings() -> Settings {
        Settings { routing_key: Secret::new("R0UTING"), severity: Severity::default() }
    }

    #[test]
    fn down_triggers_ack_acknowledges_recovery_resolves_under_the_incident_id() {
        let down = settings().request("https://pd", &sample(Event::Down));
        assert_eq!(down.url, "https://pd/v2/enqueue");
        assert_eq!(down.body["event_action"], "trigger");
        assert_eq!(down.body["routing_key"], "R0UTING");
        assert_eq!(down.body["dedup_key"], "00000000-0000-0000-0000-000000000000");
        assert_eq!(down.body["payload"]["severity"], "critical");
        assert_eq!(down.body["payload"]["source"], "api-prod");
        assert_eq!(down.body["payload"]["summary"], "🔴 Production API - DOWN: HTTP 500 (expected 200)");
        let ack = settings().request("https://pd", &sample(Event::Ack));
        assert_eq!((ack.body["event_action"].as_str(), ack.body.get("payload")), (Some("acknowledge"), None));
        let resolve = settings().request("https://pd", &sample(Event::Recovery));
        assert_eq!(resolve.body["event_action"], "resolve");
        assert_eq!(resolve.body["dedup_key"], down.body["dedup_key"]);
    }

    #[test]
    fn a_test_message_is_a_change_event_that_pages_no_one() {
        let test = settings().request("https://pd", &sample(Event::Test));
        assert_eq!(test.url, "https://pd/v2/change/enqueue");
        assert_eq!(test.body.get("event_action"), None);
        assert_eq!(test.body["payload"]["source"], "statusd");
    }
}
