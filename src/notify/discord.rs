//! Discord webhook: a short `content` line and one embed with the facts.

use serde_json::json;

use super::{Notification, truncate};

pub fn payload(notification: &Notification) -> serde_json::Value {
    if !notification.group.is_empty() {
        return group_payload(notification);
    }
    let mut fields = vec![
        json!({"name": "Service", "value": truncate(&notification.asset_name, 1024), "inline": true}),
        json!({"name": "Status", "value": notification.event.as_str(), "inline": true}),
    ];
    if let Some(incident) = notification.incident_id {
        fields.push(json!({"name": "Incident", "value": incident.to_string(), "inline": false}));
    }
    if let Some(tier) = notification.tier_text() {
        fields.push(json!({"name": "Escalation", "value": tier, "inline": true}));
    }
    json!({
        "content": truncate(&notification.headline(), 2000),
        "embeds": [{
            "title": truncate(&notification.headline(), 256),
            "description": truncate(&notification.details, 4096),
            "color": notification.event.colour(),
            "timestamp": notification.timestamp.to_rfc3339(),
            "fields": fields,
            "footer": {"text": format!("statusd · {}", notification.asset_id)},
        }],
        // A probe's error text must never ping @everyone.
        "allowed_mentions": {"parse": []},
    })
}

/// A template's text as the message: `content` only (Discord's limit: 2000 characters).
pub fn text(_notification: &Notification, text: &str) -> serde_json::Value {
    json!({"content": truncate(text, 2000), "allowed_mentions": {"parse": []}})
}

/// A storm: one embed whose description lists the assets, one per line.
fn group_payload(notification: &Notification) -> serde_json::Value {
    let lines: Vec<String> = notification.group_lines().iter().map(|line| format!("• {line}")).collect();
    json!({
        "content": truncate(&notification.headline(), 2000),
        "embeds": [{
            "title": truncate(&notification.headline(), 256),
            "description": truncate(&lines.join("\n"), 4096),
            "color": notification.event.colour(),
            "timestamp": notification.timestamp.to_rfc3339(),
            "footer": {"text": "statusd"},
        }],
        "allowed_mentions": {"parse": []},
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Event, sample, sample_group};
    use super::*;

    #[test]
    fn has_content_and_embeds() {
        let message = payload(&sample(Event::Recovery));
        assert_eq!(message["content"], "🟢 Production API - RECOVERY");
        let embed = &message["embeds"][0];
        assert_eq!(embed["description"], "HTTP 500 (expected 200)");
        assert_eq!(embed["color"], 0x12B76A);
        assert_eq!(embed["timestamp"], "2026-11-21T10:30:00+00:00");
        assert_eq!(embed["fields"][0]["value"], "Production API");
        assert_eq!(message["allowed_mentions"]["parse"], json!([]));
        let paged = payload(&Notification { tier: Some(1), ..sample(Event::Down) });
        assert_eq!(paged["embeds"][0]["fields"][3], json!({"name": "Escalation", "value": "tier 1", "inline": true}));
    }

    #[test]
    fn a_group_is_one_embed_listing_the_assets() {
        let message = payload(&sample_group(4));
        assert_eq!(message["content"], "🔴 4 assets - DOWN");
        let list = message["embeds"][0]["description"].as_str().expect("list");
        assert_eq!(list.lines().count(), 4);
        assert!(
            list.contains("• API 3: HTTP 500 (expected 200) (incident 00000000-0000-0000-0000-000000000004)"),
            "{list}"
        );
        assert_eq!(message["allowed_mentions"]["parse"], json!([]));
    }
}
