//! Rocket.Chat incoming webhook: Slack-compatible `text` and `attachments`, with Rocket.Chat's
//! own `alias` (the sender's shown name) and `emoji` (its avatar), and attachments stamped with
//! an ISO `ts` (<https://docs.rocket.chat/docs/integrations>, "Incoming webhook script";
//! <https://developer.rocket.chat/reference/api/rest-api/endpoints/messaging/chat-endpoints/postmessage#attachments-detail>).

use serde_json::json;

use super::{Notification, slack_attachment};

pub fn payload(notification: &Notification) -> serde_json::Value {
    let mut attachment = slack_attachment(notification);
    attachment["ts"] = json!(notification.timestamp.to_rfc3339());
    json!({
        "alias": "statusd",
        "emoji": ":satellite:",
        "text": notification.headline(),
        "attachments": [attachment],
    })
}

/// A template's text as the message: `text` only, with the sender's alias and emoji.
pub fn text(_notification: &Notification, text: &str) -> serde_json::Value {
    json!({"alias": "statusd", "emoji": ":satellite:", "text": text})
}

#[cfg(test)]
mod tests {
    use super::super::{Event, sample};
    use super::*;

    #[test]
    fn has_alias_emoji_text_and_an_attachment() {
        let message = payload(&sample(Event::Recovery));
        assert_eq!(
            (message["alias"].as_str(), message["text"].as_str()),
            (Some("statusd"), Some("🟢 Production API - RECOVERY"))
        );
        let attachment = &message["attachments"][0];
        assert_eq!(
            (attachment["color"].as_str(), attachment["ts"].as_str()),
            (Some("#12B76A"), Some("2026-11-21T10:30:00+00:00"))
        );
        assert_eq!(attachment["fields"][0]["value"], "Production API");
    }
}
