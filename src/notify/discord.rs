//! Discord webhook: a short `content` line and one embed with the facts.

use serde_json::json;

use super::{Notification, truncate};

pub fn payload(notification: &Notification) -> serde_json::Value {
    let mut fields = vec![
        json!({"name": "Service", "value": truncate(&notification.asset_name, 1024), "inline": true}),
        json!({"name": "Status", "value": notification.event.as_str(), "inline": true}),
    ];
    if let Some(incident) = notification.incident_id {
        fields.push(json!({"name": "Incident", "value": incident.to_string(), "inline": false}));
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

#[cfg(test)]
mod tests {
    use super::super::{Event, sample};
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
    }
}
