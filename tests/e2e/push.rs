//! Push assets: a heartbeat keeps them up, silence past the deadline takes them down, and a
//! push may report a failure itself.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::e2e::harness::{Receiver, Setup, eventually};

const WAIT: Duration = Duration::from_secs(10);
const TOKEN: &str = "s3cret-push-token-1234";

#[tokio::test(flavor = "multi_thread")]
async fn a_heartbeat_keeps_a_push_asset_up_and_silence_takes_it_down() {
    let Some(backend) = crate::backend().await else { return };
    let receiver = Receiver::start().await;
    let asset = json!({
        "id": "nightly-backup", "assetType": "push", "token": TOKEN,
        "intervalSeconds": 1, "timeoutSeconds": 1, "graceSeconds": 1
    });
    let notifiers = json!({
        "notifiers": {"hook": {"type": "webhook", "url": receiver.url("hook")}},
        "notificationPolicy": {"onDown": ["hook"], "onRecovery": ["hook"], "throttleSeconds": 0}
    });
    let setup = Setup::new(backend, json!([asset]), notifiers).await;
    let statusd = setup.start(&[]).await;
    let push = |query: String| {
        let url = statusd.url(&format!("/api/push/{query}"));
        let http = statusd.http.clone();
        async move {
            let response = http.get(url).send().await.expect("push");
            (response.status(), response.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };

    let (status, body) = push(format!("nightly-backup?token={TOKEN}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let up = statusd.wait_status("nightly-backup", "up", WAIT).await;
    assert_eq!(up["token"], "***", "the token never shows in the API");

    // Refused pushes change nothing.
    assert_eq!(push("nightly-backup?token=wrong".into()).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(push("nightly-backup".into()).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(push(format!("no-such-asset?token={TOKEN}")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(push(format!("nightly-backup?token={TOKEN}&status=maybe")).await.0, StatusCode::BAD_REQUEST);

    // Silence past interval + grace: down on the first miss, with one DOWN.
    let down = statusd.wait_status("nightly-backup", "down", WAIT).await;
    assert_eq!(down["lastProbe"]["message"], "no push within 2s");
    eventually("the DOWN", WAIT, || async { (receiver.events("hook") == ["DOWN"]).then_some(()) }).await;

    // A push brings it back; a push reporting failure takes it down with its message.
    let response = statusd.http.post(statusd.url(&format!("/api/push/nightly-backup?token={TOKEN}"))).send().await;
    assert_eq!(response.expect("push").status(), StatusCode::OK);
    statusd.wait_status("nightly-backup", "up", WAIT).await;
    eventually("the RECOVERY", WAIT, || async { (receiver.events("hook") == ["DOWN", "RECOVERY"]).then_some(()) })
        .await;
    assert_eq!(push(format!("nightly-backup?token={TOKEN}&status=down&msg=disk%20full")).await.0, StatusCode::OK);
    let down = statusd.wait_status("nightly-backup", "down", WAIT).await;
    assert_eq!(down["lastProbe"]["message"], "disk full");

    // Every push and every miss is a stored result (written a moment after the actor decides).
    let stored = eventually("the last push stored", WAIT, || async {
        let (_, events) = statusd.get("/api/assets/nightly-backup/events").await;
        let stored: Vec<(bool, String)> = events
            .as_array()?
            .iter()
            .rev()
            .map(|e| (e["success"].as_bool().unwrap_or(false), e["message"].as_str().unwrap_or("").to_string()))
            .collect();
        (stored.last() == Some(&(false, "disk full".to_string()))).then_some(stored)
    })
    .await;
    assert_eq!(stored.first(), Some(&(true, String::new())), "{stored:?}");
    assert!(stored.contains(&(false, "no push within 2s".to_string())), "{stored:?}");

    // A NUL from the pusher is kept as U+FFFD: PostgreSQL would refuse the whole batch.
    assert_eq!(push(format!("nightly-backup?token={TOKEN}&status=down&msg=nul%00here")).await.0, StatusCode::OK);
    eventually("the NUL message stored", WAIT, || async {
        let (_, events) = statusd.get("/api/assets/nightly-backup/events?limit=1").await;
        (events[0]["message"] == "nul\u{FFFD}here").then_some(())
    })
    .await;
    assert_eq!(statusd.asset("nightly-backup").await["lastProbe"]["message"], "nul\u{FFFD}here");
    statusd.stop().await;
}

#[test]
fn a_push_asset_needs_a_strong_token_and_no_address() {
    let manifest = json!({"assets": [
        {"id": "weak", "assetType": "push", "token": "short"},
        {"id": "addressed", "assetType": "push", "token": TOKEN, "address": "http://x/"},
        {"id": "tokenless", "assetType": "push"}
    ]});
    let problems: Vec<String> = statusd::Manifest::from_value(&manifest, "manifest.json")
        .expect_err("invalid")
        .0
        .iter()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect();
    assert_eq!(
        problems,
        [
            "assets[0].token: must be at least 16 characters (has 5): the push URL must not be guessable",
            "assets[1].address: a push asset has no address: it is called, it does not call",
            "assets[2]: missing field `token`",
        ]
    );
}
