//! What each channel receives, and that a failing channel hurts no one else.

use std::time::Duration;

use serde_json::{Value, json};

use crate::e2e::harness::{Backend, Mode, Receiver, Setup, Target, all_channels, eventually, http_asset, metric};

const WAIT: Duration = Duration::from_secs(10);

async fn one_down(backend: Backend, receiver: &Receiver, id: &str) -> (Setup, crate::e2e::harness::Statusd, Target) {
    let target = Target::start().await;
    let setup = Setup::new(backend, json!([http_asset(id, &target.url())]), all_channels(receiver, 0)).await;
    let statusd = setup.start(&[]).await;
    statusd.wait_status(id, "up", WAIT).await;
    target.set(Mode::Error);
    statusd.wait_status(id, "down", WAIT).await;
    (setup, statusd, target)
}

#[tokio::test(flavor = "multi_thread")]
async fn each_channel_receives_its_documented_shape() {
    let Some(backend) = crate::backend().await else { return };
    let receiver = Receiver::start().await;
    let (_setup, statusd, _target) = one_down(backend, &receiver, "shapes").await;
    for channel in ["teams", "slack", "discord", "webhook"] {
        eventually(&format!("DOWN on {channel}"), WAIT, || async {
            (!receiver.bodies(channel).is_empty()).then_some(())
        })
        .await;
    }
    let incident = statusd.asset("shapes").await["openIncidentId"].clone();

    let webhook = &receiver.bodies("webhook")[0];
    let keys: Vec<&String> = webhook.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["assetId", "assetName", "details", "event", "incidentId", "tier", "timestamp"]);
    assert_eq!(webhook["tier"], 0, "onDown is tier 0");
    assert_eq!(webhook["event"], "DOWN");
    assert_eq!(webhook["assetId"], "shapes");
    assert_eq!(webhook["assetName"], "Asset shapes");
    assert_eq!(webhook["details"], "HTTP 500 (expected 200)");
    assert_eq!(webhook["incidentId"], incident);
    assert!(chrono::DateTime::parse_from_rfc3339(webhook["timestamp"].as_str().expect("timestamp")).is_ok());

    let teams = &receiver.bodies("teams")[0];
    assert_eq!(teams["type"], "message");
    let attachment = &teams["attachments"][0];
    assert_eq!(attachment["contentType"], "application/vnd.microsoft.card.adaptive");
    let card = &attachment["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["$schema"], "http://adaptivecards.io/schemas/adaptive-card.json");
    assert_eq!(card["body"][0]["type"], "TextBlock");
    assert_eq!(card["body"][0]["text"], "🔴 Asset shapes - DOWN");
    let facts: Vec<&str> =
        card["body"][1]["facts"].as_array().expect("facts").iter().filter_map(|f| f["title"].as_str()).collect();
    assert_eq!(facts, ["Service", "Status", "Time", "Details", "Escalation"]);

    let slack = &receiver.bodies("slack")[0];
    assert!(slack["text"].as_str().expect("text").contains("Asset shapes - DOWN"));
    let blocks = slack["blocks"].as_array().expect("blocks");
    assert_eq!(blocks[0]["type"], "header");
    assert!(blocks.iter().all(|b| b["type"].is_string()));
    assert_eq!(blocks[2]["text"]["text"], "*Details*\nHTTP 500 (expected 200)");

    let discord = &receiver.bodies("discord")[0];
    assert_eq!(discord["content"], "🔴 Asset shapes - DOWN");
    let embed = &discord["embeds"][0];
    assert_eq!(embed["description"], "HTTP 500 (expected 200)");
    assert!(embed["color"].is_u64());
    assert!(embed["timestamp"].is_string());
    assert_eq!(embed["fields"][2]["value"], incident);
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_channel_is_retried_counted_and_blocks_no_one() {
    let Some(backend) = crate::backend().await else { return };
    let receiver = Receiver::start().await;
    receiver.fail("slack");
    let (_setup, statusd, _target) = one_down(backend, &receiver, "failing-channel").await;

    // The other channels hear at once; slack is tried three times, with backoff, then given up.
    for channel in ["teams", "discord", "webhook"] {
        eventually(&format!("DOWN on {channel}"), WAIT, || async {
            (receiver.events(channel) == ["DOWN"]).then_some(())
        })
        .await;
    }
    let failed = "statusd_notifications_total{channel=\"slack\",event=\"DOWN\",result=\"failed\"}";
    eventually("slack to be given up", WAIT, || async {
        metric(&statusd.metrics().await, failed).filter(|n| *n >= 1.0)
    })
    .await;
    assert_eq!(receiver.attempts("slack"), 3);
    assert!(receiver.bodies("slack").is_empty());
    let sent = "statusd_notifications_total{channel=\"teams\",event=\"DOWN\",result=\"sent\"}";
    assert!(metric(&statusd.metrics().await, sent).is_some_and(|n| n >= 1.0));
    // Probing went on all along.
    statusd.wait_probes("failing-channel", 2).await;
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn notifications_follow_the_policy_lists() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let notifiers = json!({
        "notifiers": {
            "pager": {"type": "webhook", "url": receiver.url("pager")},
            "log": {"type": "webhook", "url": receiver.url("log")},
        },
        "notificationPolicy": {"onDown": ["pager"], "onRecovery": ["pager", "log"], "throttleSeconds": 0}
    });
    let setup = Setup::new(backend, json!([http_asset("lists", &target.url())]), notifiers).await;
    let statusd = setup.start(&[]).await;
    statusd.wait_status("lists", "up", WAIT).await;
    target.set(Mode::Error);
    statusd.wait_status("lists", "down", WAIT).await;
    target.set(Mode::Ok);
    statusd.wait_status("lists", "up", WAIT).await;
    eventually("the recovery on both", WAIT, || async {
        (receiver.events("pager").len() == 2 && receiver.events("log").len() == 1).then_some(())
    })
    .await;
    assert_eq!(receiver.events("pager"), ["DOWN", "RECOVERY"]);
    assert_eq!(receiver.events("log"), ["RECOVERY"]);
    let recovery: &Value = &receiver.bodies("log")[0];
    assert!(recovery["details"].as_str().expect("details").starts_with("back up after"));
    statusd.stop().await;
}

/// `POST /api/notifiers/{name}/test`: a marked test message, now, with what the channel said.
#[tokio::test(flavor = "multi_thread")]
async fn a_test_message_reaches_a_working_channel_and_a_broken_one_says_why_without_its_url() {
    const TOKEN: &str = "notifier-test-token";
    let Some(backend) = crate::backend().await else { return };
    let receiver = Receiver::start().await;
    receiver.fail("broken");
    // A port nothing listens on: bound, then let go.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address");
    let notifiers = json!({
        "notifiers": {
            "ok": {"type": "slack", "webhookUrl": receiver.url("ok")},
            "broken": {"type": "webhook", "url": receiver.url("broken")},
            "dead": {"type": "webhook", "url": format!("http://{dead}/secret-path-token")},
        },
        "notificationPolicy": {"onDown": ["ok"]}
    });
    let setup = Setup::new(backend, json!([]), notifiers).await;
    setup.write_settings(&format!("api_token = \"{TOKEN}\"\n"));
    let statusd = setup.start(&[]).await;
    let test = |name: &str, token: Option<&str>| {
        let mut request = statusd.http.post(statusd.url(&format!("/api/notifiers/{name}/test")));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.expect("test a notifier");
            (response.status(), response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    assert_eq!(test("ok", None).await.0, reqwest::StatusCode::UNAUTHORIZED);
    let (status, outcome) = test("ok", Some(TOKEN)).await;
    assert_eq!(
        (status, outcome.clone()),
        (reqwest::StatusCode::OK, json!({"channel": "ok", "sent": true, "error": null}))
    );
    let message = receiver.bodies("ok").pop().expect("the test message");
    assert!(message["text"].as_str().unwrap_or_default().contains("TEST"), "{message}");
    assert!(message["text"].as_str().unwrap_or_default().contains("Nothing is down"), "{message}");

    let (status, outcome) = test("broken", Some(TOKEN)).await;
    assert_eq!(status, reqwest::StatusCode::BAD_GATEWAY);
    assert_eq!(
        (outcome["sent"].clone(), outcome["error"].as_str()),
        (json!(false), Some("HTTP 500 Internal Server Error"))
    );
    assert_eq!(receiver.attempts("broken"), 1, "one try, no retry");
    let (status, outcome) = test("dead", Some(TOKEN)).await;
    assert_eq!(status, reqwest::StatusCode::BAD_GATEWAY);
    let error = outcome["error"].as_str().expect("an error");
    assert!(error.contains("refused"), "{error}");
    assert!(!error.contains("secret-path-token") && !error.contains(&dead.port().to_string()), "{error}");
    assert_eq!(test("nobody", Some(TOKEN)).await.0, reqwest::StatusCode::NOT_FOUND);

    // About nothing: not in the outbox, but counted.
    let (_, outbox) = statusd.get("/api/notifications").await;
    assert_eq!(outbox, json!([]));
    let sent = "statusd_notifications_total{channel=\"ok\",event=\"TEST\",result=\"sent\"}";
    assert_eq!(metric(&statusd.metrics().await, sent), Some(1.0));
    statusd.stop().await;
}
