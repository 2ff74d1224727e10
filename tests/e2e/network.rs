//! Own network: while every `"role": "connectivity"` asset is down, the others' failures are
//! inconclusive, no incident opens, and only NETWORK_DOWN / NETWORK_UP are sent.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::e2e::harness::{Mode, Receiver, Setup, Target, eventually, http_asset};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread")]
async fn all_connectivity_assets_down_opens_no_incident_and_results_are_inconclusive() {
    let Some(backend) = crate::backend().await else { return };
    let (gateway, resolver, api, web) =
        (Target::start().await, Target::start().await, Target::start().await, Target::start().await);
    let receiver = Receiver::start().await;
    let mut assets = vec![
        http_asset("gateway", &gateway.url()),
        http_asset("resolver", &resolver.url()),
        http_asset("api", &api.url()),
        http_asset("web", &web.url()),
    ];
    for connectivity in &mut assets[..2] {
        connectivity["role"] = json!("connectivity");
    }
    let notifiers = json!({
        "notifiers": {
            "pager": {"type": "webhook", "url": receiver.url("pager")},
            "ops": {"type": "webhook", "url": receiver.url("ops")},
        },
        "notificationPolicy": {"onDown": ["pager"], "onRecovery": ["pager"], "onPanic": ["ops"], "throttleSeconds": 0}
    });
    let setup = Setup::new(backend, Value::Array(assets), notifiers).await;
    let statusd = setup.start(&[]).await;
    for id in ["gateway", "resolver", "api", "web"] {
        statusd.wait_status(id, "up", WAIT).await;
    }

    // The network goes: everything fails at the same moment.
    for target in [&gateway, &resolver, &api, &web] {
        target.set(Mode::Error);
    }
    eventually("the NETWORK_DOWN", WAIT, || async { (receiver.events("ops") == ["NETWORK_DOWN"]).then_some(()) }).await;
    for id in ["api", "web"] {
        statusd.wait_status(id, "inconclusive", WAIT).await;
        statusd.wait_probes(id, 3).await;
        let asset = statusd.asset(id).await;
        assert_eq!(asset["status"], "inconclusive", "{asset}");
        assert_eq!(asset["openIncidentId"], Value::Null);
        assert_eq!(asset["lastProbe"]["mark"], "inconclusive");
    }
    // The connectivity assets record their outage; nobody hears a DOWN.
    let open = statusd.wait_incidents("open", 2).await;
    let mut ids: Vec<&str> = open.as_array().expect("list").iter().filter_map(|i| i["assetId"].as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["gateway", "resolver"]);
    assert!(receiver.bodies("pager").is_empty(), "{:?}", receiver.bodies("pager"));

    // A restart in the middle: nothing is announced again, nothing opens.
    statusd.stop().await;
    let statusd = setup.start(&[]).await;
    statusd.wait_status("gateway", "down", WAIT).await;
    for id in ["api", "web"] {
        statusd.wait_status(id, "inconclusive", WAIT).await;
        statusd.wait_probes(id, 3).await;
        assert_eq!(statusd.asset(id).await["openIncidentId"], Value::Null);
    }
    assert_eq!(receiver.events("ops"), ["NETWORK_DOWN"]);
    assert_eq!(statusd.get("/api/incidents?state=open").await.1.as_array().map(Vec::len), Some(2));

    // The gateway is back: one NETWORK_UP; the assets still failing are judged again and go
    // down for real, with their DOWN.
    gateway.set(Mode::Ok);
    eventually("the NETWORK_UP", WAIT, || async {
        (receiver.events("ops") == ["NETWORK_DOWN", "NETWORK_UP"]).then_some(())
    })
    .await;
    let up = &receiver.bodies("ops")[1];
    assert_eq!(up["assetId"], "network");
    assert!(up["details"].as_str().expect("details").starts_with("gateway is up again"), "{up}");
    statusd.wait_status("api", "down", WAIT).await;
    eventually("the DOWN of api and web", WAIT, || async {
        let mut assets: Vec<String> =
            receiver.bodies("pager").iter().filter_map(|b| b["assetId"].as_str().map(str::to_string)).collect();
        assets.sort();
        (assets == ["api", "web"]).then_some(())
    })
    .await;
    assert!(receiver.events("pager").iter().all(|e| e == "DOWN"));

    // Stored, shown, and left out of uptime.
    let (status, events) = statusd.get("/api/assets/api/events?limit=1000").await;
    assert_eq!(status, StatusCode::OK);
    let inconclusive = events.as_array().expect("events").iter().filter(|e| e["mark"] == "inconclusive").count();
    assert!(inconclusive >= 6, "{inconclusive} inconclusive results");
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_that_adds_the_connectivity_role_applies_at_once() {
    let Some(backend) = crate::backend().await else { return };
    let (gateway, api) = (Target::start().await, Target::start().await);
    let receiver = Receiver::start().await;
    let notifiers = json!({
        "notifiers": {"pager": {"type": "webhook", "url": receiver.url("pager")}},
        "notificationPolicy": {"onDown": ["pager"], "onPanic": ["pager"], "throttleSeconds": 0}
    });
    let plain = json!([http_asset("gateway", &gateway.url()), http_asset("api", &api.url())]);
    let setup = Setup::new(backend, plain, notifiers).await;
    setup.write_settings("watch_config = false\n");
    let statusd = setup.start(&[]).await;
    statusd.wait_status("api", "up", WAIT).await;

    let mut gateway_asset = http_asset("gateway", &gateway.url());
    gateway_asset["role"] = json!("connectivity");
    setup.write_manifest(json!([gateway_asset, http_asset("api", &api.url())]));
    let (status, report) = statusd.post("/api/reload").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["assets"]["changed"], json!(["gateway"]), "{report}");

    gateway.set(Mode::Error);
    api.set(Mode::Error);
    statusd.wait_status("api", "inconclusive", WAIT).await;
    eventually("the NETWORK_DOWN", WAIT, || async { (receiver.events("pager") == ["NETWORK_DOWN"]).then_some(()) })
        .await;
    statusd.wait_probes("api", 3).await;
    assert_eq!(statusd.asset("api").await["openIncidentId"], Value::Null);
    statusd.stop().await;
}
