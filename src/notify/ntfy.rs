//! ntfy: a JSON message published to the server's root, its priority by event (5 for a DOWN,
//! 3 for a RECOVERY, …) (<https://docs.ntfy.sh/publish/#publish-as-json>); with a `token`,
//! `Authorization: Bearer <token>` (<https://docs.ntfy.sh/publish/#access-tokens>).

use serde::Deserialize;
use serde_json::json;

use super::Api;
use super::{Event, Key, Notification, Request};
use crate::redact::Secret;

/// `{"type": "ntfy", "topic": "statusd-alerts", "token": "tk_…"}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub topic: String,
    /// An access token, for a protected topic.
    #[serde(default)]
    pub token: Option<Secret>,
}

/// ntfy's priority (1 min … 5 max) and tags (emoji short codes) of an event.
fn priority_and_tag(event: Event) -> (u8, &'static str) {
    match event {
        Event::Down | Event::Panic | Event::NetworkDown => (5, "rotating_light"),
        Event::Reminder | Event::Flapping | Event::Degraded => (4, "warning"),
        Event::Recovery | Event::NetworkUp => (3, "white_check_mark"),
        Event::Ack => (3, "eyes"),
        Event::MaintenanceStart | Event::MaintenanceEnd | Event::Test => (2, "wrench"),
    }
}

impl Api for Settings {
    const KEYS: &'static [Key] = &[Key::required("topic"), Key::optional_secret("token")];
    const DEFAULT_BASE_URL: Option<&'static str> = Some("https://ntfy.sh");

    fn request(&self, base: &str, notification: &Notification) -> Request {
        let (priority, tag) = priority_and_tag(notification.event);
        let request = Request::post(
            format!("{base}/"),
            json!({
                "topic": self.topic,
                "title": format!("{} - {}", notification.asset_name, notification.event.as_str()),
                "message": notification.plain_text(),
                "priority": priority,
                "tags": [tag, "statusd"],
            }),
        );
        match &self.token {
            Some(token) => request.header("Authorization", format!("Bearer {}", token.expose())),
            None => request,
        }
    }

    /// A template's text as the message (title, priority and tags stay).
    fn with_text(&self, request: &mut Request, text: &str) {
        request.body["message"] = json!(text);
    }

    fn validate(&self, path: &str, report: &mut crate::report::Report<'_>) {
        // ntfy's topic names: https://docs.ntfy.sh/publish/ ("[-_A-Za-z0-9]{1,64}").
        let valid = (1..=64).contains(&self.topic.len())
            && self.topic.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            report.problem(format!("{path}.topic"), format!("{:?} is not 1 to 64 letters, digits, - or _", self.topic));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::sample;
    use super::*;

    #[test]
    fn publishes_json_with_a_priority_by_event() {
        let settings = Settings { topic: "alerts".into(), token: Some(Secret::new("tk_1")) };
        let down = settings.request("https://ntfy", &sample(Event::Down));
        assert_eq!(down.url, "https://ntfy/");
        assert_eq!(down.headers, [("Authorization".to_string(), "Bearer tk_1".to_string())]);
        assert_eq!((down.body["topic"].as_str(), down.body["priority"].as_u64()), (Some("alerts"), Some(5)));
        assert_eq!(down.body["title"], "Production API - DOWN");
        let up = settings.request("https://ntfy", &sample(Event::Recovery));
        assert_eq!(up.body["priority"], 3);
        let open = Settings { token: None, ..settings };
        assert!(open.request("https://ntfy", &sample(Event::Down)).headers.is_empty());
    }
}
