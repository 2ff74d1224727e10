//! Escalation tiers, acknowledgement and routes, through real webhook receivers, with statusd
//! restarted in the middle: nothing decided is decided again.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::e2e::harness::{Mode, Receiver, Setup, Statusd, Target, asset_of, eventually, http_asset};

const WAIT: Duration = Duration::from_secs(15);
const TOKEN: &str = "escalation-test-token";
const TIERS: [&str; 4] = ["t0", "t1", "t2", "t3"];

/// Tiers t0 at once, t1 after 3 s, t2 after 6 s, t3 after 12 s, reminders every second; assets
/// with `team: db` go to `dba` alone.
fn notifiers(receiver: &Receiver) -> Value {
    json!({
        "notifiers": {
            "t0": {"type": "webhook", "url": receiver.url("t0")},
            "t1": {"type": "webhook", "url": receiver.url("t1")},
            "t2": {"type": "webhook", "url": receiver.url("t2")},
            "t3": {"type": "webhook", "url": receiver.url("t3")},
            "dba": {"type": "webhook", "url": receiver.url("dba")},
        },
        "notificationPolicy": {
            "throttleSeconds": 0,
            "repeatAlerts": true,
            "repeatIntervalSeconds": 1,
            "escalation": [
                {"afterSeconds": 0, "channels": ["t0"]},
                {"afterSeconds": 3, "channels": ["t1"]},
                {"afterSeconds": 6, "channels": ["t2"]},
                {"afterSeconds": 12, "channels": ["t3"]},
            ],
            "routes": [{"match": {"team": ["db", "dba"]}, "escalation": [{"afterSeconds": 0, "channels": ["dba"]}]}],
        }
    })
}

/// The events of the `api` asset that `channel` received.
fn events(receiver: &Receiver, channel: &str, asset: &str) -> Vec<String> {
    receiver
        .bodies(channel)
        .iter()
        .filter(|body| asset_of(channel, body) == asset)
        .map(|body| body["event"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn count(events: &[String], event: &str) -> usize {
    events.iter().filter(|e| *e == event).count()
}

async fn ack(statusd: &Statusd, id: &str, body: Value, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = statusd.http.post(statusd.url(&format!("/api/incidents/{id}/ack"))).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_escalation_reaches_tier_2_stops_at_ack_and_restarts_change_nothing_decided() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let mut db = http_asset("db", &target.url());
    db["metadata"] = json!({"team": "db"});
    let assets = json!([http_asset("api", &target.url()), db]);
    let setup = Setup::new(backend, assets, notifiers(&receiver)).await;
    setup.write_settings(&format!("api_token = \"{TOKEN}\"\n"));
    target.set(Mode::Error);

    // Tiers 0 and 1, then a restart.
    let statusd = setup.start(&[]).await;
    let down = statusd.wait_status("api", "down", WAIT).await;
    let id = down["openIncidentId"].as_str().expect("an open incident").to_string();
    eventually("tier 1 recorded", WAIT, || async {
        let (_, open) = statusd.get("/api/incidents").await;
        open.as_array()?.iter().find(|i| i["id"] == id.as_str() && i["tier"] == 1).map(|_| ())
    })
    .await;
    // A tier is stored when it is decided (the outbox), its delivery follows: wait for it.
    eventually("tiers 0 and 1 delivered", WAIT, || async {
        let delivered = |channel| count(&events(&receiver, channel, "api"), "DOWN");
        (delivered("t0") == 1 && delivered("t1") == 1).then_some(())
    })
    .await;
    statusd.stop().await;

    // Restarted: tier 2 goes out once, 6 s after the incident opened; tiers 0 and 1 are not
    // paged again.
    let statusd = setup.start(&[]).await;
    eventually("tier 2", WAIT, || async { (count(&events(&receiver, "t2", "api"), "DOWN") == 1).then_some(()) }).await;
    for (tier, channel) in TIERS[..3].iter().enumerate() {
        let bodies: Vec<Value> = receiver.bodies(channel).into_iter().filter(|b| b["event"] == "DOWN").collect();
        assert_eq!(bodies.len(), 1, "{channel}: one DOWN");
        assert_eq!(bodies[0]["tier"], tier, "{channel}");
        assert_eq!(bodies[0]["incidentId"], id.as_str());
    }

    // Acknowledged: API token needed; 200 with the incident; the second keeps the first.
    let body = json!({"by": "alice", "note": "looking into it"});
    assert_eq!(ack(&statusd, &id, body.clone(), None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(ack(&statusd, &id, json!({"note": "who?"}), Some(TOKEN)).await.0, StatusCode::BAD_REQUEST);
    let (status, acked) = ack(&statusd, &id, body, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert_eq!((acked["id"].as_str(), acked["acknowledgedBy"].as_str()), (Some(id.as_str()), Some("alice")));
    assert_eq!(acked["ackNote"], "looking into it");
    assert_eq!(acked["tier"], 2);
    let (status, again) = ack(&statusd, &id, json!({"by": "bob"}), Some(TOKEN)).await;
    assert_eq!(
        (status, &again["acknowledgedBy"], &again["acknowledgedAt"]),
        (StatusCode::OK, &acked["acknowledgedBy"], &acked["acknowledgedAt"])
    );
    let unknown = uuid::Uuid::now_v7();
    assert_eq!(ack(&statusd, &unknown.to_string(), json!({"by": "alice"}), Some(TOKEN)).await.0, StatusCode::NOT_FOUND);
    for channel in &TIERS[..3] {
        eventually(&format!("the ACK on {channel}"), WAIT, || async {
            (count(&events(&receiver, channel, "api"), "ACK") == 1).then_some(())
        })
        .await;
    }
    let ack_body = receiver.bodies("t0").into_iter().find(|b| b["event"] == "ACK").expect("ACK");
    assert_eq!(ack_body["details"], "acknowledged by alice: looking into it");
    eventually("the ack stored", WAIT, || async {
        let (_, incident) = statusd.get(&format!("/api/incidents/{id}")).await;
        (incident["acknowledgedBy"] == "alice").then_some(())
    })
    .await;
    statusd.stop().await;

    // Restarted again, acknowledged: past tier 3's 12 s, no tier 3 and no reminder.
    let statusd = setup.start(&[]).await;
    let started = chrono::DateTime::parse_from_rfc3339(acked["startedAt"].as_str().expect("startedAt")).expect("time");
    let quiet_until = started + chrono::TimeDelta::seconds(15);
    eventually("tier 3's time to pass", Duration::from_secs(30), || async {
        (chrono::Utc::now() > quiet_until).then_some(())
    })
    .await;
    statusd.wait_probes("api", 1).await;
    assert!(events(&receiver, "t3", "api").is_empty(), "tier 3 was never paged: {:?}", receiver.bodies("t3"));

    // Recovery: every tier that heard the DOWN hears it.
    target.set(Mode::Ok);
    statusd.wait_status("api", "up", WAIT).await;
    for channel in &TIERS[..3] {
        eventually(&format!("the RECOVERY on {channel}"), WAIT, || async {
            (count(&events(&receiver, channel, "api"), "RECOVERY") == 1).then_some(())
        })
        .await;
        let heard = events(&receiver, channel, "api");
        let after_ack = &heard[heard.iter().position(|e| e == "ACK").expect("ACK")..];
        assert_eq!(after_ack, ["ACK", "RECOVERY"], "{channel}: nothing between the ACK and the RECOVERY: {heard:?}");
        assert_eq!(count(&heard, "DOWN"), 1, "{channel}: {heard:?}");
    }
    assert!(receiver.bodies("t3").is_empty());

    // The routed asset went to its route's channel only.
    assert_eq!(count(&events(&receiver, "dba", "db"), "DOWN"), 1);
    assert!(TIERS.iter().all(|channel| events(&receiver, channel, "db").is_empty()));
    assert!(events(&receiver, "dba", "api").is_empty());

    // Closed: 409 on ack; the timeline tells the whole story.
    let closed = eventually("the incident closed", WAIT, || async {
        let (_, incident) = statusd.get(&format!("/api/incidents/{id}")).await;
        incident["endedAt"].is_string().then_some(incident)
    })
    .await;
    assert_eq!(ack(&statusd, &id, json!({"by": "alice"}), Some(TOKEN)).await.0, StatusCode::CONFLICT);
    let steps: Vec<(String, String)> = closed["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|step| {
            (step["kind"].as_str().unwrap_or("?").to_string(), step["detail"].as_str().unwrap_or("?").to_string())
        })
        .collect();
    let kinds: Vec<&str> = steps.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["opened", "notified", "notified", "notified", "acknowledged", "closed"], "{steps:?}");
    assert_eq!(steps[2].1, "tier 1: t1");
    assert_eq!(steps[4].1, "by alice: looking into it");
    assert!(steps[5].1.starts_with("recovered after"), "{steps:?}");
    assert_eq!(closed["tier"], 2);
    assert_eq!(statusd.get("/api/incidents/not-an-id").await.0, StatusCode::NOT_FOUND);
    statusd.stop().await;
}
