//! Gotify: `POST /message` on your server with the application's token in `X-Gotify-Key`
//! (<https://gotify.net/api-docs#/message/createMessage>, <https://gotify.net/docs/pushmsg>).
//! `baseUrl` is required: Gotify is self-hosted.

use serde::Deserialize;
use serde_json::json;

use super::{Api, Key, Notification, Request};
use crate::redact::Secret;
use crate::report::Bound;

/// `{"type": "gotify", "baseUrl": "https://gotify.example.com", "appToken": "A…", "priority": 8}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub app_token: Secret,
    /// Gotify's priority (0 … 10) of a DOWN; other events go out at this or 5, whichever is
    /// lower (the Android app rings from 8).
    #[serde(default = "default_priority")]
    pub priority: u8,
}

/// Gotify's priorities.
pub const BOUNDS: &[Bound] = &[Bound::new("priority", 0, 10)];

fn default_priority() -> u8 {
    8
}

impl Api for Settings {
    const KEYS: &'static [Key] = &[Key::secret("appToken"), Key::optional("priority")];
    const DEFAULT_BASE_URL: Option<&'static str> = None;

    fn request(&self, base: &str, notification: &Notification) -> Request {
        let priority = if notification.event.is_trouble() { self.priority } else { self.priority.min(5) };
        Request::post(
            format!("{base}/message"),
            json!({
                "title": notification.headline(),
                "message": notification.plain_text(),
                "priority": priority,
                "extras": {"client::display": {"contentType": "text/plain"}},
            }),
        )
        .header("X-Gotify-Key", self.app_token.expose().to_string())
    }

    /// A template's text as the message (title and priority stay).
    fn with_text(&self, request: &mut Request, text: &str) {
        request.body["message"] = json!(text);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Event, sample};
    use super::*;

    #[test]
    fn posts_a_message_with_the_token_in_a_header() {
        let settings = Settings { app_token: Secret::new("AT0K"), priority: 9 };
        let down = settings.request("https://gotify", &sample(Event::Down));
        assert_eq!(down.url, "https://gotify/message");
        assert_eq!(down.headers, [("X-Gotify-Key".to_string(), "AT0K".to_string())]);
        assert_eq!(
            (down.body["title"].as_str(), down.body["priority"].as_u64()),
            (Some("🔴 Production API - DOWN"), Some(9))
        );
        assert_eq!(settings.request("https://gotify", &sample(Event::Recovery)).body["priority"], 5);
    }
}
