//! Generic webhook: the notification itself as JSON, for receivers we do not know.

use super::Notification;

/// `{"event", "assetId", "assetName", "timestamp", "details", "incidentId", "tier"}`; a grouped
/// storm (for a webhook that opted in with `"group": true`) is
/// `{"event", "grouped": true, "assets": [<one such object per asset>]}`.
pub fn payload(notification: &Notification) -> serde_json::Value {
    if !notification.group.is_empty() {
        return serde_json::json!({
            "event": notification.event,
            "grouped": true,
            "assets": notification.group.iter().map(payload).collect::<Vec<_>>(),
        });
    }
    serde_json::json!({
        "event": notification.event,
        "assetId": notification.asset_id,
        "assetName": notification.asset_name,
        "timestamp": notification.timestamp,
        "details": notification.details,
        "incidentId": notification.incident_id,
        "tier": notification.tier,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Event, sample, sample_group};
    use super::*;

    #[test]
    fn has_the_documented_fields() {
        assert_eq!(
            payload(&sample(Event::Down)),
            serde_json::json!({
                "event": "DOWN",
                "assetId": "api-prod",
                "assetName": "Production API",
                "timestamp": "2026-11-21T10:30:00Z",
                "details": "HTTP 500 (expected 200)",
                "incidentId": "00000000-0000-0000-0000-000000000000",
                "tier": null,
            })
        );
        let paged = Notification { tier: Some(2), ..sample(Event::Down) };
        assert_eq!(payload(&paged)["tier"], 2);
    }

    #[test]
    fn a_group_lists_the_usual_payloads() {
        let grouped = payload(&sample_group(3));
        assert_eq!(grouped["event"], "DOWN");
        assert_eq!(grouped["grouped"], true);
        let assets = grouped["assets"].as_array().expect("assets");
        assert_eq!(assets.len(), 3);
        assert_eq!(assets[2]["assetId"], "api-2");
        assert_eq!(assets[2]["incidentId"], "00000000-0000-0000-0000-000000000003");
        assert_eq!(assets[0]["details"], "HTTP 500 (expected 200)");
    }
}
