//! Mattermost incoming webhook: Slack-compatible, but without Block Kit: a `text` line and one
//! legacy message attachment (<https://developers.mattermost.com/integrate/webhooks/incoming/>,
//! <https://developers.mattermost.com/integrate/reference/message-attachments/>), posted as
//! `statusd` (`username`; the webhook must allow overriding it, else Mattermost ignores it).

use serde_json::json;

use super::{Notification, slack_attachment};

pub fn payload(notification: &Notification) -> serde_json::Value {
    let mut attachment = slack_attachment(notification);
    attachment["footer"] = json!(format!("statusd · {}", notification.timestamp.to_rfc3339()));
    json!({
        "username": "statusd",
        "text": notification.headline(),
        "attachments": [attachment],
    })
}

/// A template's text as the message: `text` only, posted as `statusd`.
pub fn text(_notification: &Notification, text: &str) -> serde_json::Value {
    json!({"username": "statusd", "text": text})
}

#[cfg(test)]
mod tests {
    use super::super::{Event, sample, sample_group};
    use super::*;

    #[test]
    fn has_text_and_one_attachment() {
        let message = payload(&sample(Event::Down));
        assert_eq!(message["text"], "🔴 Production API - DOWN");
        let attachment = &message["attachments"][0];
        assert_eq!(
            (attachment["color"].as_str(), attachment["text"].as_str()),
            (Some("#D92D20"), Some("HTTP 500 (expected 200)"))
        );
        assert_eq!(attachment["fields"][1], json!({"short": true, "title": "Status", "value": "DOWN"}));
        assert_eq!(payload(&sample_group(3))["attachments"][0]["text"].as_str().map(|t| t.lines().count()), Some(3));
    }
}
