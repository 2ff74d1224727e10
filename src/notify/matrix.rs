//! Matrix: an `m.notice` sent to a room through the client-server API, `PUT
//! /_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}` with `Authorization: Bearer
//! <accessToken>` (<https://spec.matrix.org/v1.11/client-server-api/#put_matrixclientv3roomsroomidsendeventtypetxnid>).
//! The transaction id is made from the notification, so a retry of the same message is one
//! event in the room (the homeserver deduplicates it). `baseUrl` (the homeserver) is required.

use serde::Deserialize;
use serde_json::json;

use super::{Api, Key, Notification, Request, escape_html, path_segment};
use crate::redact::Secret;
use crate::report::Report;

/// `{"type": "matrix", "baseUrl": "https://matrix.example.org", "accessToken": "syt_…", "roomId": "!abc:example.org"}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub access_token: Secret,
    /// The room's id (`!…:server`), not an alias: the send endpoint takes ids only.
    pub room_id: String,
}

impl Api for Settings {
    const KEYS: &'static [Key] = &[Key::secret("accessToken"), Key::required("roomId")];
    const DEFAULT_BASE_URL: Option<&'static str> = None;

    fn request(&self, base: &str, notification: &Notification) -> Request {
        let txn = format!(
            "statusd-{}-{}-{}",
            notification.alert_key(),
            notification.event.as_str(),
            notification.timestamp.timestamp_millis()
        );
        let html = format!(
            "<b>{}</b><br>{}",
            escape_html(&notification.headline()),
            escape_html(&notification.plain_text()).replace('\n', "<br>")
        );
        Request {
            method: reqwest::Method::PUT,
            url: format!(
                "{base}/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
                path_segment(&self.room_id),
                path_segment(&txn)
            ),
            headers: vec![("Authorization".to_string(), format!("Bearer {}", self.access_token.expose()))],
            body: json!({
                "msgtype": "m.notice",
                "body": format!("{}\n{}", notification.headline(), notification.plain_text()),
                "format": "org.matrix.custom.html",
                "formatted_body": html,
            }),
        }
    }

    /// A template's text: a plain `m.notice` (no HTML body).
    fn with_text(&self, request: &mut Request, text: &str) {
        request.body = json!({"msgtype": "m.notice", "body": text});
    }

    fn validate(&self, path: &str, report: &mut Report<'_>) {
        if !(self.room_id.starts_with('!') && self.room_id.contains(':')) {
            report.problem(
                format!("{path}.roomId"),
                format!(
                    "{:?} is not a room id (\"!opaque:server\"; an alias such as #ops:server will not do)",
                    self.room_id
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Event, sample};
    use super::*;

    #[test]
    fn puts_a_notice_in_the_room_with_a_stable_transaction_id() {
        let settings = Settings { access_token: Secret::new("syt_T"), room_id: "!room:example.org".into() };
        let request = settings.request("https://hs", &sample(Event::Down));
        assert_eq!(request.method, reqwest::Method::PUT);
        assert!(
            request
                .url
                .starts_with("https://hs/_matrix/client/v3/rooms/%21room%3Aexample.org/send/m.room.message/statusd-"),
            "{}",
            request.url
        );
        assert_eq!(
            request.url,
            settings.request("https://hs", &sample(Event::Down)).url,
            "a retry is the same transaction"
        );
        assert_eq!(request.headers, [("Authorization".to_string(), "Bearer syt_T".to_string())]);
        assert_eq!(request.body["msgtype"], "m.notice");
        assert!(
            request.body["formatted_body"]
                .as_str()
                .expect("html")
                .starts_with("<b>🔴 Production API - DOWN</b><br>HTTP 500")
        );
    }
}
