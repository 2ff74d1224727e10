//! Outages become exactly one incident and one DOWN per channel; recoveries close them.

use std::time::Duration;

use serde_json::json;

use crate::e2e::harness::{
    CHANNELS, Mode, Receiver, Setup, Target, all_channels, eventually, http_asset, metric, probes_counted,
};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_opens_one_incident_and_its_recovery_closes_it() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let setup = Setup::new(backend, json!([http_asset("outage", &target.url())]), all_channels(&receiver, 300)).await;
    let statusd = setup.start(&[]).await;

    let up = statusd.wait_status("outage", "up", WAIT).await;
    assert_eq!(up["lastProbe"]["code"], 200);
    assert_eq!(up["openIncidentId"], json!(null));

    target.set(Mode::Error);
    let down = statusd.wait_status("outage", "down", WAIT).await;
    assert!(down["consecutiveFailures"].as_u64() >= Some(2), "{down}");
    let incident_id = down["openIncidentId"].as_str().expect("an open incident").to_string();
    assert_eq!(down["lastProbe"]["message"], "HTTP 500 (expected 200)");

    // Stay down for several more probes: still one incident, one DOWN per channel.
    statusd.wait_probes("outage", 3).await;
    let open = statusd.wait_incidents("open", 1).await;
    assert_eq!(open[0]["id"], incident_id);
    assert_eq!(open[0]["assetId"], "outage");
    assert_eq!(open[0]["endedAt"], json!(null));
    for channel in CHANNELS {
        eventually(&format!("DOWN on {channel}"), WAIT, || async {
            (receiver.events(channel).len() == 1).then_some(())
        })
        .await;
        assert_eq!(receiver.events(channel), ["DOWN"], "{channel}");
    }
    assert_eq!(metric(&statusd.metrics().await, "statusd_asset_up{asset=\"outage\"}"), Some(0.0));

    target.set(Mode::Ok);
    let up = statusd.wait_status("outage", "up", WAIT).await;
    assert_eq!(up["openIncidentId"], json!(null));
    for channel in CHANNELS {
        eventually(&format!("RECOVERY on {channel}"), WAIT, || async {
            (receiver.events(channel).len() == 2).then_some(())
        })
        .await;
    }
    statusd.wait_probes("outage", 2).await;
    for channel in CHANNELS {
        assert_eq!(receiver.events(channel), ["DOWN", "RECOVERY"], "{channel}");
    }
    let closed = statusd.wait_incidents("closed", 1).await;
    assert_eq!(statusd.get("/api/incidents").await.1, json!([]));
    assert_eq!(closed[0]["id"], incident_id);
    assert_eq!(closed[0]["closeReason"], "recovered");
    assert!(closed[0]["endedAt"].is_string());
    statusd.stop().await;

    // The database tells the same story.
    let db = setup.inspect().await;
    assert_eq!(db.incidents().await, [(incident_id, true, Some("recovered".to_string()))]);
    let failures = db.count("SELECT count(*) FROM probe_events WHERE asset_id = $1 AND NOT success", "outage").await;
    assert!(failures >= 5, "{failures} failed probes stored");
    db.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_single_failure_is_not_an_outage() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let setup = Setup::new(backend, json!([http_asset("glitch", &target.url())]), all_channels(&receiver, 0)).await;
    let statusd = setup.start(&[]).await;
    statusd.wait_status("glitch", "up", WAIT).await;

    target.set(Mode::Close);
    eventually("the glitch to be seen", WAIT, || async {
        (statusd.asset("glitch").await["consecutiveFailures"] == 1).then_some(())
    })
    .await;
    target.set(Mode::Ok);
    statusd.wait_probes("glitch", 2).await;
    let asset = statusd.asset("glitch").await;
    assert_eq!(asset["status"], "up");
    assert_eq!(asset["consecutiveFailures"], 0);
    let (_, incidents) = statusd.get("/api/incidents?state=all").await;
    assert_eq!(incidents, json!([]));
    assert!(receiver.bodies("webhook").is_empty());
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_while_down_neither_reopens_nor_renotifies_and_the_recovery_closes_the_original() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let setup = Setup::new(backend, json!([http_asset("restart", &target.url())]), all_channels(&receiver, 0)).await;
    target.set(Mode::Error);

    let statusd = setup.start(&[]).await;
    let down = statusd.wait_status("restart", "down", WAIT).await;
    let incident_id = down["openIncidentId"].as_str().expect("open incident").to_string();
    eventually("the DOWN", WAIT, || async { (receiver.events("webhook").len() == 1).then_some(()) }).await;
    statusd.stop().await;

    // Same database, still failing.
    let statusd = setup.start(&[]).await;
    let resumed = statusd.asset("restart").await;
    assert_eq!(resumed["status"], "down", "{resumed}");
    assert_eq!(resumed["openIncidentId"], incident_id);
    statusd.wait_probes("restart", 3).await;
    assert_eq!(statusd.asset("restart").await["openIncidentId"], incident_id);
    statusd.wait_incidents("all", 1).await;
    for channel in CHANNELS {
        assert_eq!(receiver.events(channel), ["DOWN"], "{channel}");
    }

    target.set(Mode::Ok);
    statusd.wait_status("restart", "up", WAIT).await;
    for channel in CHANNELS {
        eventually(&format!("RECOVERY on {channel}"), WAIT, || async {
            (receiver.events(channel).len() == 2).then_some(())
        })
        .await;
        assert_eq!(receiver.events(channel), ["DOWN", "RECOVERY"], "{channel}");
    }
    let recovery = &receiver.bodies("webhook")[1];
    assert_eq!(recovery["incidentId"], incident_id);
    let closed = statusd.wait_incidents("closed", 1).await;
    assert_eq!(closed[0]["id"], incident_id);
    assert_eq!(statusd.get("/api/incidents?state=all").await.1.as_array().map(Vec::len), Some(1));
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_throttle_allows_one_notification_per_window_and_recovery_follows_a_sent_down() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let setup = Setup::new(backend, json!([http_asset("flappy", &target.url())]), all_channels(&receiver, 3600)).await;
    let statusd = setup.start(&[]).await;
    statusd.wait_status("flappy", "up", WAIT).await;

    // Two full outages inside one throttle window.
    for _ in 0..2 {
        target.set(Mode::Error);
        statusd.wait_status("flappy", "down", WAIT).await;
        target.set(Mode::Ok);
        statusd.wait_status("flappy", "up", WAIT).await;
    }
    // Both outages are incidents.
    statusd.wait_incidents("closed", 2).await;
    for channel in CHANNELS {
        eventually(&format!("both messages on {channel}"), WAIT, || async {
            (receiver.events(channel).len() >= 2).then_some(())
        })
        .await;
    }
    statusd.wait_probes("flappy", 2).await;
    for channel in CHANNELS {
        // The first DOWN and its RECOVERY; the second outage fell inside the window.
        assert_eq!(receiver.events(channel), ["DOWN", "RECOVERY"], "{channel}");
    }
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_probe_result_is_stored() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let setup =
        Setup::new(backend, json!([http_asset("stored", &target.url())]), crate::e2e::harness::no_channels()).await;
    let statusd = setup.start(&[]).await;
    statusd.wait_probes("stored", 3).await;
    target.set(Mode::Error);
    statusd.wait_probes("stored", 2).await;
    statusd.stop().await;
    // Stopped: the probe counters are final, and every probe counted was handed to Persistence.
    let probed = probes_counted("stored");
    let db = setup.inspect().await;
    let stored = db.count("SELECT count(*) FROM probe_events WHERE asset_id = $1", "stored").await;
    assert!(probed >= 5, "{probed} probes");
    assert_eq!(stored, probed, "every probe result is stored, once");
    assert_eq!(db.a_failure("stored").await, (Some(500), Some("HTTP 500 (expected 200)".to_string())));
    db.close().await;
}
