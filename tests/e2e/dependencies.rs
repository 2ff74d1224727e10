//! Dependencies: a parent and its dependants failing together page once, with a DOWN that names
//! the dependants; a dependant still down when its parent recovers pages on its own.

use std::time::Duration;

use serde_json::{Value, json};

use crate::e2e::harness::{Mode, Receiver, Setup, Target, eventually, http_asset};

const WAIT: Duration = Duration::from_secs(30);

/// (event, assetId) of every webhook payload so far, sorted.
fn received(receiver: &Receiver) -> Vec<(String, String)> {
    let mut events: Vec<(String, String)> = receiver
        .bodies("webhook")
        .iter()
        .map(|body| (body["event"].as_str().unwrap_or("?").into(), body["assetId"].as_str().unwrap_or("?").into()))
        .collect();
    events.sort();
    events
}

fn pair(event: &str, asset: &str) -> (String, String) {
    (event.into(), asset.into())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_parent_and_five_dependants_page_once_and_a_dependant_still_down_pages_after() {
    let Some(backend) = crate::backend().await else { return };
    let receiver = Receiver::start().await;
    let shared = Target::start().await;
    let own = Target::start().await;
    let asset = |id: &str, url: &str, parents: &[&str]| {
        let mut asset = http_asset(id, url);
        asset["failureThreshold"] = json!(2);
        asset["successThreshold"] = json!(1);
        asset["dependsOn"] = json!(parents);
        asset
    };
    // Four dependants share the parent's target; the fifth fails on its own target too.
    let mut assets = vec![asset("router", &shared.url(), &[])];
    for i in 1..=4 {
        assets.push(asset(&format!("app-{i}"), &format!("{}?app={i}", shared.url()), &["router"]));
    }
    assets.push(asset("app-5", &own.url(), &["router"]));
    let notifiers = json!({
        "notifiers": {"webhook": {"type": "webhook", "url": receiver.url("webhook")}},
        "notificationPolicy": {
            "onDown": ["webhook"], "onRecovery": ["webhook"], "throttleSeconds": 0,
            "grouping": {"waitSeconds": 5, "minAssets": 3}
        }
    });
    let setup = Setup::new(backend, Value::Array(assets), notifiers).await;
    let statusd = setup.start(&[]).await;
    for id in ["router", "app-1", "app-2", "app-3", "app-4", "app-5"] {
        statusd.wait_status(id, "up", WAIT).await;
    }

    shared.set(Mode::Error);
    own.set(Mode::Error);
    statusd.wait_incidents("open", 6).await;
    let down = eventually("the router's DOWN", WAIT, || async {
        receiver.bodies("webhook").into_iter().find(|body| body["event"] == "DOWN")
    })
    .await;
    assert_eq!(down["assetId"], "router");
    let details = down["details"].as_str().expect("details");
    assert!(details.starts_with("HTTP 500 (expected 200); also affects 5: "), "{details}");
    for i in 1..=5 {
        assert!(details.contains(&format!("Asset app-{i}")), "app-{i} in {details}");
    }
    // Apps that went down before the router were attributed to it when it did.
    eventually("five incidents caused by the router's", WAIT, || async {
        let (_, open) = statusd.get("/api/incidents?state=open").await;
        let open = open.as_array().cloned().unwrap_or_default();
        let caused = open.iter().filter(|i| i["causedBy"] == "router").count();
        let root = open.iter().filter(|i| i["assetId"] == "router" && i["causedBy"].is_null()).count();
        (caused == 5 && root == 1).then_some(())
    })
    .await;
    assert_eq!(received(&receiver), [pair("DOWN", "router")], "one DOWN for the six outages");

    // The router recovers, and with it four apps, silently; app-5 is still down: it pages now.
    shared.set(Mode::Ok);
    eventually("app-5's own DOWN", WAIT, || async {
        received(&receiver).contains(&pair("DOWN", "app-5")).then_some(())
    })
    .await;
    for id in ["router", "app-1", "app-2", "app-3", "app-4"] {
        statusd.wait_status(id, "up", WAIT).await;
    }
    own.set(Mode::Ok);
    eventually("app-5's RECOVERY", WAIT, || async {
        received(&receiver).contains(&pair("RECOVERY", "app-5")).then_some(())
    })
    .await;
    statusd.wait_incidents("open", 0).await;
    assert_eq!(
        received(&receiver),
        [pair("DOWN", "app-5"), pair("DOWN", "router"), pair("RECOVERY", "app-5"), pair("RECOVERY", "router")],
        "apps 1 to 4 were never heard of"
    );
    let (_, closed) = statusd.get("/api/incidents?state=closed").await;
    let app5 = closed.as_array().expect("closed").iter().find(|i| i["assetId"] == "app-5").cloned();
    assert_eq!(app5.expect("app-5's incident")["causedBy"], Value::Null, "no longer attributed once it paged");
    statusd.stop().await;
}
