//! Opsgenie Alert API: one alert per incident, its `alias` the incident id; a DOWN creates it,
//! an ACK acknowledges it, a RECOVERY closes it, both by alias
//! (<https://docs.opsgenie.com/docs/alert-api>: `POST /v2/alerts`,
//! `POST /v2/alerts/{alias}/acknowledge?identifierType=alias`,
//! `POST /v2/alerts/{alias}/close?identifierType=alias`). Authenticated with
//! `Authorization: GenieKey <apiKey>`. EU accounts set `"baseUrl": "https://api.eu.opsgenie.com"`.

use serde::Deserialize;
use serde_json::json;

use super::{Api, Key, Notification, Page, Request, path_segment, truncate};
use crate::redact::Secret;

/// `{"type": "opsgenie", "apiKey": "…", "priority": "P1"}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// An API integration's key.
    pub api_key: Secret,
    /// The priority of the alerts a DOWN creates; maintenance and test alerts are `P5`.
    #[serde(default)]
    pub priority: Priority,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, strum::IntoStaticStr)]
pub enum Priority {
    P1,
    P2,
    #[default]
    P3,
    P4,
    P5,
}

/// Opsgenie's limits on `message` and `description`.
const MAX_MESSAGE: usize = 130;
const MAX_DESCRIPTION: usize = 15000;

impl Api for Settings {
    const KEYS: &'static [Key] = &[Key::secret("apiKey"), Key::optional("priority")];
    const DEFAULT_BASE_URL: Option<&'static str> = Some("https://api.opsgenie.com");
    const GROUPS: bool = false;
    const TEMPLATED: bool = false;

    fn request(&self, base: &str, notification: &Notification) -> Request {
        let alias = notification.alert_key();
        let by_alias = |action: &str, note: &str| {
            let alias = path_segment(&alias);
            Request::post(
                format!("{base}/v2/alerts/{alias}/{action}?identifierType=alias"),
                json!({"source": "statusd", "user": "statusd", "note": note}),
            )
        };
        let request = match notification.event.page() {
            Page::Acknowledge => by_alias("acknowledge", &notification.details),
            Page::Close => by_alias("close", &notification.details),
            page => {
                let priority: &str = if page == Page::Note { "P5" } else { self.priority.into() };
                Request::post(
                    format!("{base}/v2/alerts"),
                    json!({
                        "message": truncate(&notification.headline(), MAX_MESSAGE),
                        "alias": alias,
                        "description": truncate(&notification.plain_text(), MAX_DESCRIPTION),
                        "priority": priority,
                        "source": "statusd",
                        "entity": notification.asset_id,
                        "tags": ["statusd", notification.event.as_str()],
                        "details": {
                            "asset": notification.asset_id,
                            "event": notification.event.as_str(),
                            "timestamp": notification.timestamp.to_rfc3339(),
                        },
                    }),
                )
            }
        };
        request.header("Authorization", format!("GenieKey {}", self.api_key.expose()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Event, sample};
    use super::*;

    #[test]
    fn create_acknowledge_and_close_by_alias() {
        let settings = Settings { api_key: Secret::new("K3Y"), priority: Priority::P1 };
        let create = settings.request("https://og", &sample(Event::Down));
        assert_eq!(create.url, "https://og/v2/alerts");
        assert_eq!(create.headers, [("Authorization".to_string(), "GenieKey K3Y".to_string())]);
        assert_eq!(create.body["alias"], "00000000-0000-0000-0000-000000000000");
        assert_eq!(create.body["priority"], "P1");
        assert_eq!(create.body["message"], "🔴 Production API - DOWN");
        let ack = settings.request("https://og", &sample(Event::Ack));
        assert_eq!(
            ack.url,
            "https://og/v2/alerts/00000000-0000-0000-0000-000000000000/acknowledge?identifierType=alias"
        );
        let close = settings.request("https://og", &sample(Event::Recovery));
        assert!(close.url.ends_with("/close?identifierType=alias"), "{}", close.url);
        assert_eq!(settings.request("https://og", &sample(Event::Test)).body["priority"], "P5");
    }
}
