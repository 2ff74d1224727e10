//! Pushover: `POST /1/messages.json` with the application's `token` and the `user` key
//! (<https://pushover.net/api>). A DOWN goes out at the configured `priority`; at 2
//! (emergency) it repeats every [`EMERGENCY_RETRY_SECONDS`] until acknowledged in the app or
//! [`EMERGENCY_EXPIRE_SECONDS`] have passed (<https://pushover.net/api#priority>). Other events
//! go out at the priority no higher than 0 (normal): a recovery should not ring all night.

use serde::Deserialize;
use serde_json::json;

use super::{Api, Key, Notification, Request, truncate};
use crate::redact::Secret;
use crate::report::Report;

/// `{"type": "pushover", "userKey": "u…", "appToken": "a…", "priority": 2}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub user_key: Secret,
    pub app_token: Secret,
    /// -2 (lowest) … 2 (emergency), for a DOWN.
    #[serde(default)]
    pub priority: i8,
}

/// Pushover's least retry interval is 30 s, its longest expiry 10800 s (3 hours).
pub const EMERGENCY_RETRY_SECONDS: u32 = 60;
pub const EMERGENCY_EXPIRE_SECONDS: u32 = 3600;
/// Pushover's limits on `title` and `message`.
const MAX_TITLE: usize = 250;
const MAX_MESSAGE: usize = 1024;

impl Api for Settings {
    const KEYS: &'static [Key] = &[Key::secret("userKey"), Key::secret("appToken"), Key::optional("priority")];
    const DEFAULT_BASE_URL: Option<&'static str> = Some("https://api.pushover.net");

    fn request(&self, base: &str, notification: &Notification) -> Request {
        let priority = if notification.event.is_trouble() { self.priority } else { self.priority.min(0) };
        let mut body = json!({
            "token": self.app_token.expose(),
            "user": self.user_key.expose(),
            "title": truncate(&notification.headline(), MAX_TITLE),
            "message": truncate(&notification.plain_text(), MAX_MESSAGE),
            "priority": priority,
            "timestamp": notification.timestamp.timestamp(),
        });
        if priority == 2 {
            body["retry"] = json!(EMERGENCY_RETRY_SECONDS);
            body["expire"] = json!(EMERGENCY_EXPIRE_SECONDS);
        }
        Request::post(format!("{base}/1/messages.json"), body)
    }

    /// A template's text as the message (the title stays).
    fn with_text(&self, request: &mut Request, text: &str) {
        request.body["message"] = json!(truncate(text, MAX_MESSAGE));
    }

    fn validate(&self, path: &str, report: &mut Report<'_>) {
        if !(-2..=2).contains(&self.priority) {
            report.problem(format!("{path}.priority"), format!("must be from -2 to 2, not {}", self.priority));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Event, sample};
    use super::*;

    #[test]
    fn an_emergency_down_retries_and_expires_and_a_recovery_is_normal() {
        let settings = Settings { user_key: Secret::new("U"), app_token: Secret::new("A"), priority: 2 };
        let down = settings.request("https://po", &sample(Event::Down));
        assert_eq!(down.url, "https://po/1/messages.json");
        assert_eq!((down.body["token"].as_str(), down.body["user"].as_str()), (Some("A"), Some("U")));
        assert_eq!(
            (down.body["priority"].as_i64(), down.body["retry"].as_u64(), down.body["expire"].as_u64()),
            (Some(2), Some(60), Some(3600))
        );
        let up = settings.request("https://po", &sample(Event::Recovery));
        assert_eq!((up.body["priority"].as_i64(), up.body.get("retry")), (Some(0), None));
    }
}
