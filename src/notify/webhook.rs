//! Generic webhook: the notification itself as JSON, for receivers we do not know.

use super::Notification;

/// `{"event", "assetId", "assetName", "timestamp", "details", "incidentId"}`.
pub fn payload(notification: &Notification) -> serde_json::Value {
    serde_json::json!({
        "event": notification.event,
        "assetId": notification.asset_id,
        "assetName": notification.asset_name,
        "timestamp": notification.timestamp,
        "details": notification.details,
        "incidentId": notification.incident_id,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Event, sample};
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
            })
        );
    }
}
