//! The flap breaker: a target that changes state at every probe is reported once as flapping,
//! with a single open incident from the trip on, and once more when it is stable again.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::e2e::harness::{Mode, Receiver, Setup, Statusd, Target, eventually, http_asset, metric};

const ID: &str = "flappy";

fn events(receiver: &Receiver) -> Vec<String> {
    receiver.bodies("webhook").iter().filter_map(|body| body["event"].as_str().map(str::to_string)).collect()
}

async fn open_incidents(statusd: &Statusd) -> Vec<Value> {
    let (status, incidents) = statusd.get("/api/incidents?state=open").await;
    assert_eq!(status, StatusCode::OK);
    incidents.as_array().cloned().unwrap_or_default()
}

/// Flips the target after each probe, so that every probe changes the asset's state.
async fn flip(statusd: &Statusd, target: &Target, down: &mut bool) {
    *down = !*down;
    target.set(if *down { Mode::Error } else { Mode::Ok });
    statusd.wait_probes(ID, 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_flapping_every_second_is_reported_once_with_one_incident() {
    let Some(backend) = crate::backend().await else { return };
    let receiver = Receiver::start().await;
    let target = Target::start().await;
    let mut asset = http_asset(ID, &target.url());
    asset["failureThreshold"] = json!(1);
    asset["successThreshold"] = json!(1);
    let notifiers = json!({
        "notifiers": {"webhook": {"type": "webhook", "url": receiver.url("webhook")}},
        "notificationPolicy": {
            "onDown": ["webhook"], "onRecovery": ["webhook"], "throttleSeconds": 0,
            "flapping": {"windowSeconds": 120, "maxTransitions": 4, "stableSeconds": 4}
        }
    });
    let setup = Setup::new(backend, json!([asset]), notifiers).await;
    let statusd = setup.start(&[]).await;
    statusd.wait_status(ID, "up", Duration::from_secs(10)).await;

    let mut down = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while !events(&receiver).iter().any(|e| e == "FLAPPING") {
        assert!(tokio::time::Instant::now() < deadline, "the breaker did not trip: {:?}", events(&receiver));
        flip(&statusd, &target, &mut down).await;
    }
    // Changes 1 to 4 are reported as usual; the fifth (a DOWN) trips the breaker.
    assert_eq!(events(&receiver), ["DOWN", "RECOVERY", "DOWN", "RECOVERY", "FLAPPING"]);
    let kept = open_incidents(&statusd).await;
    assert_eq!(kept.len(), 1, "{kept:?}");

    // It goes on flapping: nothing is sent and no other incident opens.
    for _ in 0..6 {
        flip(&statusd, &target, &mut down).await;
        let open = open_incidents(&statusd).await;
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!(open[0]["id"], kept[0]["id"]);
    }
    let asset = statusd.asset(ID).await;
    assert_eq!(asset["status"], "flapping");
    assert_eq!(asset["openIncidentId"], kept[0]["id"]);
    let flapping = format!("statusd_asset_flapping{{asset=\"{ID}\"}}");
    assert_eq!(metric(&statusd.metrics().await, &flapping), Some(1.0));
    assert_eq!(events(&receiver).len(), 5, "{:?}", events(&receiver));

    // Stable and up for stableSeconds: one RECOVERY closes the kept incident.
    target.set(Mode::Ok);
    eventually("the RECOVERY once stable", Duration::from_secs(20), || async {
        (events(&receiver).len() == 6).then_some(())
    })
    .await;
    assert_eq!(events(&receiver)[5], "RECOVERY");
    let recovery = &receiver.bodies("webhook")[5];
    assert_eq!(recovery["incidentId"], kept[0]["id"]);
    statusd.wait_incidents("open", 0).await;
    statusd.wait_status(ID, "up", Duration::from_secs(5)).await;
    assert_eq!(metric(&statusd.metrics().await, &flapping), Some(0.0));
    statusd.stop().await;
}
