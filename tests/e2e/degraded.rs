//! Degraded: an asset that answers, but too slowly, is reported degraded, not down.

use std::time::Duration;

use serde_json::{Value, json};

use crate::e2e::harness::{Mode, Receiver, Setup, Target, eventually, http_asset, metric};

const WAIT: Duration = Duration::from_secs(10);

/// Each test names its asset differently: the metrics recorder is one per test process, and the
/// first test reads `statusd_asset_degraded{asset="slow"}`, which a second "slow" would overwrite.
fn slow_asset(id: &str, target: &Target) -> Value {
    let mut asset = http_asset(id, &target.url());
    // The target's slow mode answers after 400 ms; the timeout is 2 s.
    asset["timeoutSeconds"] = json!(2);
    asset["degradedLatencyMs"] = json!(200);
    asset
}

fn channels(receiver: &Receiver) -> Value {
    json!({
        "notifiers": {
            "pager": {"type": "webhook", "url": receiver.url("pager")},
            "perf": {"type": "webhook", "url": receiver.url("perf")},
        },
        "notificationPolicy": {"onDown": ["pager"], "onRecovery": ["pager"], "onDegraded": ["perf"], "throttleSeconds": 0}
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_target_is_reported_degraded_not_down_and_a_restart_changes_nothing() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let setup = Setup::new(backend, json!([slow_asset("slow", &target)]), channels(&receiver)).await;
    let statusd = setup.start(&[]).await;
    statusd.wait_status("slow", "up", WAIT).await;

    target.set(Mode::Slow);
    let degraded = statusd.wait_status("slow", "degraded", WAIT).await;
    assert_eq!(degraded["openIncidentId"], Value::Null, "{degraded}");
    assert_eq!(degraded["lastProbe"]["success"], true);
    assert_eq!(degraded["lastProbe"]["mark"], "degraded");
    eventually("the DEGRADED", WAIT, || async { (receiver.events("perf") == ["DEGRADED"]).then_some(()) }).await;
    let message = &receiver.bodies("perf")[0];
    assert_eq!(message["assetId"], "slow");
    assert_eq!(message["incidentId"], Value::Null);
    assert!(message["details"].as_str().expect("details").starts_with("slow: "), "{message}");
    assert_eq!(metric(&statusd.metrics().await, "statusd_asset_degraded{asset=\"slow\"}"), Some(1.0));
    // Stored as a success, marked (the store is written a moment after the probe).
    eventually("a degraded result in the history", WAIT, || async {
        let (_, events) = statusd.get("/api/assets/slow/events?limit=1").await;
        (events[0]["mark"] == "degraded" && events[0]["success"] == true).then_some(())
    })
    .await;

    // A restart while degraded: not announced again, still degraded, and still no incident.
    statusd.stop().await;
    let statusd = setup.start(&[]).await;
    statusd.wait_status("slow", "degraded", WAIT).await;
    statusd.wait_probes("slow", 3).await;
    assert_eq!(statusd.asset("slow").await["status"], "degraded");
    assert_eq!(receiver.events("perf"), ["DEGRADED"]);

    // Fast again: one RECOVERY to the onDegraded channel; the pager never heard a thing.
    target.set(Mode::Ok);
    statusd.wait_status("slow", "up", WAIT).await;
    eventually("the RECOVERY", WAIT, || async { (receiver.events("perf") == ["DEGRADED", "RECOVERY"]).then_some(()) })
        .await;
    assert!(receiver.bodies("perf")[1]["details"].as_str().expect("details").starts_with("no longer degraded"));
    assert_eq!(metric(&statusd.metrics().await, "statusd_asset_degraded{asset=\"slow\"}"), Some(0.0));
    let (_, incidents) = statusd.get("/api/incidents?state=all").await;
    assert_eq!(incidents, json!([]));
    assert!(receiver.bodies("pager").is_empty(), "{:?}", receiver.bodies("pager"));
    statusd.stop().await;

    // Counted as up: every stored result succeeded, the slow ones marked.
    let db = setup.inspect().await;
    let failed = db.count("SELECT count(*) FROM probe_events WHERE asset_id = $1 AND NOT success", "slow").await;
    assert_eq!(failed, 0);
    let marked = db.count("SELECT count(*) FROM probe_events WHERE asset_id = $1 AND mark = 'degraded'", "slow").await;
    assert!(marked >= 5, "{marked} degraded results stored");
    db.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_slow_answer_is_not_degraded_and_a_down_target_is_down() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let mut asset = slow_asset("sometimes-slow", &target);
    // Three slow answers in a row to be degraded.
    asset["failureThreshold"] = json!(3);
    let setup = Setup::new(backend, json!([asset]), channels(&receiver)).await;
    let statusd = setup.start(&[]).await;
    statusd.wait_status("sometimes-slow", "up", WAIT).await;
    // Slow and fast in turn: never three slow in a row.
    for _ in 0..3 {
        target.set(Mode::Slow);
        statusd.wait_probes("sometimes-slow", 1).await;
        target.set(Mode::Ok);
        statusd.wait_probes("sometimes-slow", 1).await;
    }
    assert_eq!(statusd.asset("sometimes-slow").await["status"], "up");

    // Failing: down, not degraded, and the DOWN goes to onDown only.
    target.set(Mode::Error);
    statusd.wait_status("sometimes-slow", "down", WAIT).await;
    eventually("the DOWN", WAIT, || async { (receiver.events("pager") == ["DOWN"]).then_some(()) }).await;
    assert!(receiver.bodies("perf").is_empty());
    statusd.stop().await;
}
