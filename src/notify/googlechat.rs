//! Google Chat incoming webhook: a `text` line (shown in notifications) and one card v2 with a
//! header and the facts as decorated text
//! (card text is Google Chat's HTML subset: escaped;
//! <https://developers.google.com/workspace/chat/api/reference/rest/v1/spaces.messages#Message>,
//! <https://developers.google.com/workspace/chat/api/reference/rest/v1/cards>).

use serde_json::json;

use super::{Notification, escape_html, truncate};

pub fn payload(notification: &Notification) -> serde_json::Value {
    let fact = |label: &str, text: String| json!({"decoratedText": {"topLabel": label, "text": escape_html(&text)}});
    let mut widgets = Vec::new();
    if notification.group.is_empty() {
        widgets.push(fact("Status", notification.event.as_str().to_string()));
        widgets.push(fact("Details", truncate(&notification.details, 4000)));
        if let Some(incident) = notification.incident_id {
            widgets.push(fact("Incident", incident.to_string()));
        }
        if let Some(tier) = notification.tier_text() {
            widgets.push(fact("Escalation", tier));
        }
        widgets.push(fact("Time", notification.timestamp.to_rfc3339()));
    } else {
        let lines = notification.group_lines().iter().map(|line| escape_html(line)).collect::<Vec<_>>().join("<br>");
        widgets.push(json!({"textParagraph": {"text": truncate(&lines, 4000)}}));
    }
    let card_id = format!("statusd-{}", notification.alert_key());
    json!({
        "text": notification.headline(),
        "cardsV2": [{
            "cardId": card_id,
            "card": {
                "header": {"title": truncate(&notification.headline(), 200), "subtitle": notification.asset_id},
                "sections": [{"widgets": widgets}],
            },
        }],
    })
}

/// A template's text as the message: `text` only (Google Chat's simple formatting applies).
pub fn text(_notification: &Notification, text: &str) -> serde_json::Value {
    json!({"text": truncate(text, 4000)})
}

#[cfg(test)]
mod tests {
    use super::super::{Event, sample, sample_group};
    use super::*;

    #[test]
    fn has_text_and_a_card_v2() {
        let message = payload(&sample(Event::Down));
        assert_eq!(message["text"], "🔴 Production API - DOWN");
        let card = &message["cardsV2"][0]["card"];
        assert_eq!(card["header"]["subtitle"], "api-prod");
        let widgets = card["sections"][0]["widgets"].as_array().expect("widgets");
        assert_eq!(widgets[0]["decoratedText"], json!({"topLabel": "Status", "text": "DOWN"}));
        assert_eq!(widgets[1]["decoratedText"]["text"], "HTTP 500 (expected 200)");
        let storm = payload(&sample_group(2));
        assert!(
            storm["cardsV2"][0]["card"]["sections"][0]["widgets"][0]["textParagraph"]["text"]
                .as_str()
                .expect("list")
                .contains("<br>")
        );
    }
}
