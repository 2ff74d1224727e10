//! Microsoft Teams: the seed's Adaptive Card, posted to an incoming webhook or workflow URL.

use serde_json::json;

use super::Notification;

pub fn payload(notification: &Notification) -> serde_json::Value {
    if !notification.group.is_empty() {
        return group_payload(notification);
    }
    let mut facts = vec![
        json!({"title": "Service", "value": notification.asset_name}),
        json!({"title": "Status", "value": notification.event.as_str()}),
        // RFC 1123, as the seed's card shows it.
        json!({"title": "Time", "value": notification.timestamp.format("%a, %d %b %Y %H:%M:%S UTC").to_string()}),
        json!({"title": "Details", "value": notification.details}),
    ];
    if let Some(tier) = notification.tier_text() {
        facts.push(json!({"title": "Escalation", "value": tier}));
    }
    card(json!([
        {
            "type": "TextBlock",
            "text": notification.headline(),
            "weight": "Bolder",
            "size": "Large",
            "wrap": true,
        },
        {"type": "FactSet", "facts": facts},
    ]))
}

/// A template's text as the message: the card with one wrapped text block.
pub fn text(_notification: &Notification, text: &str) -> serde_json::Value {
    card(json!([{"type": "TextBlock", "text": text, "wrap": true}]))
}

/// A Teams message holding one Adaptive Card (schema 1.4) with `body`, as the Workflows
/// webhook expects it (https://learn.microsoft.com/en-us/connectors/teams/#microsoft-teams-webhook).
fn card(body: serde_json::Value) -> serde_json::Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
            },
        }],
    })
}

/// A storm: the headline, the time, then one fact per asset (its name, and its details with
/// the incident id).
fn group_payload(notification: &Notification) -> serde_json::Value {
    let facts: Vec<serde_json::Value> = notification
        .group
        .iter()
        .map(|n| {
            let details = match n.incident_id {
                Some(incident) => format!("{} (incident {incident})", n.details),
                None => n.details.clone(),
            };
            json!({"title": n.asset_name, "value": details})
        })
        .collect();
    card(json!([
        {"type": "TextBlock", "text": notification.headline(), "weight": "Bolder", "size": "Large", "wrap": true},
        {
            "type": "TextBlock",
            "text": notification.timestamp.format("%a, %d %b %Y %H:%M:%S UTC").to_string(),
            "isSubtle": true,
            "wrap": true,
        },
        {"type": "FactSet", "facts": facts},
    ]))
}

#[cfg(test)]
mod tests {
    use super::super::{Event, sample, sample_group};
    use super::*;

    #[test]
    fn is_the_seed_adaptive_card() {
        let card = payload(&sample(Event::Down));
        assert_eq!(card["type"], "message");
        let content = &card["attachments"][0]["content"];
        assert_eq!(card["attachments"][0]["contentType"], "application/vnd.microsoft.card.adaptive");
        assert_eq!(content["type"], "AdaptiveCard");
        assert_eq!(content["version"], "1.4");
        assert_eq!(content["body"][0]["text"], "🔴 Production API - DOWN");
        assert_eq!(
            content["body"][1]["facts"],
            json!([
                {"title": "Service", "value": "Production API"},
                {"title": "Status", "value": "DOWN"},
                {"title": "Time", "value": "Sat, 21 Nov 2026 10:30:00 UTC"},
                {"title": "Details", "value": "HTTP 500 (expected 200)"},
            ])
        );
        let paged = payload(&Notification { tier: Some(2), ..sample(Event::Down) });
        assert_eq!(
            paged["attachments"][0]["content"]["body"][1]["facts"][4],
            json!({"title": "Escalation", "value": "tier 2"})
        );
        let recovery = payload(&sample(Event::Recovery));
        assert_eq!(recovery["attachments"][0]["content"]["body"][0]["text"], "🟢 Production API - RECOVERY");
    }

    #[test]
    fn a_group_is_one_card_with_a_fact_per_asset() {
        let card = payload(&sample_group(5));
        let body = &card["attachments"][0]["content"]["body"];
        assert_eq!(body[0]["text"], "🔴 5 assets - DOWN");
        let facts = body[2]["facts"].as_array().expect("facts");
        assert_eq!(facts.len(), 5);
        assert_eq!(
            facts[1],
            json!({"title": "API 1", "value": "HTTP 500 (expected 200) (incident 00000000-0000-0000-0000-000000000002)"})
        );
    }
}
