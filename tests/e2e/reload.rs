//! Reload is a message: an edit applies live, touching only what changed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::e2e::harness::{Mode, Receiver, Setup, Target, binary, eventually, http_asset, metric};

const WAIT: Duration = Duration::from_secs(10);

fn webhook(receiver: &Receiver, channel: &str) -> Value {
    json!({
        "notifiers": {"hook": {"type": "webhook", "url": receiver.url(channel)}},
        "notificationPolicy": {"onDown": ["hook"], "onRecovery": ["hook"], "throttleSeconds": 0}
    })
}

async fn asset_ids(statusd: &crate::e2e::harness::Statusd) -> Vec<String> {
    let (_, assets) = statusd.get("/api/assets").await;
    assets.as_array().map(|a| a.iter().filter_map(|x| x["id"].as_str().map(String::from)).collect()).unwrap_or_default()
}

/// The largest gap between two consecutive stored probes of an asset, in ms.
async fn largest_gap(statusd: &crate::e2e::harness::Statusd, id: &str) -> i64 {
    let (_, events) = statusd.get(&format!("/api/assets/{id}/events?limit=1000")).await;
    let stamps: Vec<chrono::DateTime<chrono::Utc>> =
        events.as_array().expect("events").iter().filter_map(|e| e["timestamp"].as_str()?.parse().ok()).collect();
    stamps.windows(2).map(|w| (w[0] - w[1]).num_milliseconds()).max().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn editing_the_manifest_adds_changes_and_removes_assets_and_leaves_the_rest_alone() {
    let Some(backend) = crate::backend().await else { return };
    let healthy = Target::start().await;
    let failing = Target::start().await;
    failing.set(Mode::Error);
    let receiver = Receiver::start().await;
    let mut changed = http_asset("changed", &healthy.url());
    let assets = json!([http_asset("steady", &healthy.url()), changed.clone(), http_asset("doomed", &failing.url())]);
    let setup = Setup::new(backend, assets, webhook(&receiver, "hook")).await;
    let statusd = setup.start(&[]).await;
    statusd.wait_status("steady", "up", WAIT).await;
    statusd.wait_status("changed", "up", WAIT).await;
    let doomed = statusd.wait_status("doomed", "down", WAIT).await;
    let doomed_incident = doomed["openIncidentId"].clone();
    assert!(statusd.metrics().await.contains("statusd_asset_up{asset=\"doomed\"} 0"));
    eventually("the DOWN of doomed", WAIT, || async { (receiver.events("hook") == ["DOWN"]).then_some(()) }).await;
    statusd.wait_probes("steady", 2).await;

    // In-place edit: doomed leaves, changed gets a new name and interval, fresh arrives.
    changed["name"] = json!("Renamed");
    changed["intervalSeconds"] = json!(2);
    setup.write_manifest(json!([http_asset("steady", &healthy.url()), changed, http_asset("fresh", &healthy.url())]));
    eventually("the edit to apply", WAIT, || async {
        (asset_ids(&statusd).await == ["changed", "fresh", "steady"]).then_some(())
    })
    .await;
    let renamed = statusd.asset("changed").await;
    assert_eq!((renamed["name"].as_str(), renamed["intervalSeconds"].as_u64()), (Some("Renamed"), Some(2)));
    assert_eq!((renamed["status"].as_str(), renamed["restarts"].as_u64()), (Some("up"), Some(0)), "{renamed}");
    statusd.wait_status("fresh", "up", WAIT).await;

    // The removed asset's incident closed as removed, and nobody heard a recovery.
    let closed = statusd.wait_incidents("closed", 1).await;
    assert_eq!((&closed[0]["id"], closed[0]["closeReason"].as_str()), (&doomed_incident, Some("removed")));
    statusd.wait_probes("steady", 3).await;
    assert_eq!(receiver.events("hook"), ["DOWN"]);
    let (_, actors) = statusd.get("/api/actors").await;
    let names: Vec<&str> = actors.as_array().expect("actors").iter().filter_map(|a| a["name"].as_str()).collect();
    assert!(!names.contains(&"asset:doomed") && names.contains(&"asset:fresh"), "{names:?}");
    assert!(actors.as_array().expect("actors").iter().all(|a| a["restarts"] == 0), "{actors}");
    // Its series are gone from /metrics; the others' stay.
    let metrics = statusd.metrics().await;
    assert!(!metrics.contains("asset=\"doomed\"") && !metrics.contains("actor=\"asset:doomed\""), "{metrics}");
    assert!(metrics.contains("statusd_asset_up{asset=\"fresh\"}"), "{metrics}");

    // The untouched asset went on probing every second through the reload.
    let steady = statusd.asset("steady").await;
    assert_eq!(steady["restarts"], 0);
    let gap = largest_gap(&statusd, "steady").await;
    assert!(gap < 1500, "steady's largest gap between probes was {gap} ms");
    let reloads = metric(&statusd.metrics().await, "statusd_config_reloads_total{result=\"success\"}");
    assert!(reloads >= Some(1.0), "{reloads:?}");
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_editor_saving_by_rename_is_noticed_and_notifiers_change_live() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let setup =
        Setup::new(backend, json!([http_asset("renamed-save", &target.url())]), webhook(&receiver, "first")).await;
    let statusd = setup.start(&[]).await;
    statusd.wait_status("renamed-save", "up", WAIT).await;

    setup.replace_manifest(json!([
        http_asset("renamed-save", &target.url()),
        http_asset("added-by-rename", &target.url())
    ]));
    statusd.wait_status("added-by-rename", "up", WAIT).await;

    // The channel's URL changes: the next notification goes to the new one. A marker asset
    // added after it tells when a reload has read both files.
    setup.write_notifiers(webhook(&receiver, "second"));
    setup.write_manifest(json!([
        http_asset("renamed-save", &target.url()),
        http_asset("added-by-rename", &target.url()),
        http_asset("marker", &target.url())
    ]));
    statusd.wait_status("marker", "up", WAIT).await;
    target.set(Mode::Error);
    statusd.wait_status("renamed-save", "down", WAIT).await;
    // All three assets share the failing target: three DOWNs, all at the new URL.
    eventually("a DOWN per asset at the new URL", WAIT, || async {
        (receiver.events("second") == ["DOWN", "DOWN", "DOWN"]).then_some(())
    })
    .await;
    assert!(receiver.events("first").is_empty());
    assert_eq!(statusd.asset("renamed-save").await["restarts"], 0);
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_edit_changes_nothing_and_the_api_says_why() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let setup = Setup::new(backend, json!([http_asset("kept", &target.url())]), webhook(&receiver, "hook")).await;
    setup.write_settings("watch_config = false\n");
    let statusd = setup.start(&[]).await;
    statusd.wait_status("kept", "up", WAIT).await;

    setup.write_manifest(json!([
        http_asset("kept", &target.url()),
        {"id": "broken", "assetType": "http", "address": "", "intervalSeconds": 0}
    ]));
    let (status, body) = statusd.post("/api/reload").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let problems: Vec<String> = body["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| format!("{}: {}", p["path"].as_str().unwrap_or(""), p["message"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        problems,
        [
            "assets[1].intervalSeconds: must be at least 1",
            "assets[1].address: must not be empty: an http asset needs a URL"
        ]
    );
    assert_eq!(asset_ids(&statusd).await, ["kept"]);
    assert_eq!(
        metric(&statusd.metrics().await, "statusd_config_reloads_total{result=\"error\"}").map(|n| n >= 1.0),
        Some(true)
    );
    statusd.wait_probes("kept", 2).await;

    // Fixed, and asked again: applied, and the answer says what changed.
    setup.write_manifest(json!([http_asset("kept", &target.url()), http_asset("added", &target.url())]));
    setup.write_settings("watch_config = false\nworkers = 3\n");
    let (status, body) = statusd.post("/api/reload").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["trigger"], "api");
    assert_eq!(body["assets"]["added"], json!(["added"]));
    assert_eq!(body["assets"]["unchanged"], 1);
    assert_eq!(body["restartRequired"], json!(["workers: changed; restart statusd to apply it"]));
    statusd.wait_status("added", "up", WAIT).await;
    statusd.stop().await;
}

/// Loading a config is file I/O and parsing: a slow filesystem, or a manifest of 100,000 assets,
/// takes a while. The Supervisor loads off the runtime threads and keeps answering meanwhile.
/// Here the manifest is a named pipe that gives its content only when the test writes it: until
/// then, the load is stuck, and the API, which asks the Supervisor, must still answer.
#[tokio::test(flavor = "multi_thread")]
async fn the_supervisor_keeps_answering_while_a_reload_loads() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let setup = Setup::new(backend, json!([http_asset("kept", &target.url())]), json!({"notifiers": {}})).await;
    setup.write_settings("watch_config = false\n");
    let statusd = setup.start(&[]).await;
    statusd.wait_status("kept", "up", WAIT).await;

    let pipe = setup.path("manifest.fifo");
    let made = Command::new("mkfifo").arg(&pipe).status().expect("mkfifo");
    assert!(made.success(), "mkfifo failed");
    std::fs::rename(&pipe, setup.path("manifest.json")).expect("the pipe replaces the manifest");
    let reload = tokio::spawn({
        let (http, url) = (reqwest::Client::new(), statusd.url("/api/reload"));
        async move { http.post(url).send().await.expect("reload request").status() }
    });
    // Answered by the Supervisor while its reload waits for the manifest (without the fix, the
    // Supervisor is stuck in the read, and these time out with 503).
    for _ in 0..3 {
        let (status, actors) = statusd.get("/api/actors").await;
        assert_eq!(status, StatusCode::OK, "{actors}");
        let (status, assets) = statusd.get("/api/assets").await;
        assert_eq!(status, StatusCode::OK, "{assets}");
    }
    assert!(!reload.is_finished(), "the reload is still loading");

    // The manifest arrives: the reload completes and applies it.
    let manifest = json!({"assets": [http_asset("kept", &target.url()), http_asset("added", &target.url())]});
    let path = setup.path("manifest.json");
    let writer = std::thread::spawn(move || std::fs::write(path, manifest.to_string()));
    let status = tokio::time::timeout(WAIT, reload).await.expect("the reload finishes").expect("reload task");
    assert_eq!(status, StatusCode::OK);
    writer.join().expect("writer").expect("write the manifest into the pipe");
    statusd.wait_status("added", "up", WAIT).await;
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_a_running_process() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let setup = Setup::new(backend, json!([http_asset("before-hup", &target.url())]), json!({"notifiers": {}})).await;
    setup.write_settings("watch_config = false\n");
    let mut args = setup.args(&["--log-format", "json", "--log-level", "info,statusd=debug"]);
    args.remove(0);
    let mut child = Command::new(binary()).args(&args).stdout(Stdio::piped()).spawn().expect("start statusd");
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(value) = serde_json::from_str::<Value>(&line) {
                let _ = lines_tx.send(value);
            }
        }
    });
    let mut started = false;
    while !started {
        let line = tokio::time::timeout(WAIT, lines.recv()).await.expect("logs").expect("running");
        started = line["message"] == "statusd started";
    }
    setup.write_manifest(json!([http_asset("before-hup", &target.url()), http_asset("after-hup", &target.url())]));
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGHUP) }, 0);
    let mut reloaded = None;
    while reloaded.is_none() {
        let line = tokio::time::timeout(WAIT, lines.recv()).await.expect("logs").expect("running");
        if line["message"] == "config reloaded" {
            reloaded = Some(line);
        }
    }
    let reloaded = reloaded.expect("a reload");
    assert_eq!(reloaded["trigger"], "Signal");
    assert!(reloaded["changes"].as_str().is_some_and(|c| c.contains("after-hup")), "{reloaded}");
    let mut probed = false;
    while !probed {
        let line = tokio::time::timeout(WAIT, lines.recv()).await.expect("logs").expect("running");
        probed = line["asset_id"] == "after-hup" && line["success"] == true;
    }
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = tokio::task::spawn_blocking(move || child.wait()).await.expect("join").expect("wait");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn channels_are_added_and_removed_by_a_reload_through_the_api() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let setup = Setup::new(backend, json!([http_asset("told", &target.url())]), webhook(&receiver, "old")).await;
    setup.write_settings("watch_config = false\n");
    let statusd = setup.start(&[]).await;
    statusd.wait_status("told", "up", WAIT).await;

    setup.write_notifiers(json!({
        "notifiers": {"pager": {"type": "webhook", "url": receiver.url("new")}},
        "notificationPolicy": {"onDown": ["pager"], "onRecovery": ["pager"], "throttleSeconds": 0}
    }));
    let (status, body) = statusd.post("/api/reload").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((&body["notifiers"]["added"], &body["notifiers"]["removed"]), (&json!(["pager"]), &json!(["hook"])));
    assert_eq!(body["policyChanged"], true);
    assert_eq!(body["assets"]["unchanged"], 1);
    let (_, actors) = statusd.get("/api/actors").await;
    let names: Vec<&str> = actors.as_array().expect("actors").iter().filter_map(|a| a["name"].as_str()).collect();
    assert!(names.contains(&"notifier:pager") && !names.contains(&"notifier:hook"), "{names:?}");

    target.set(Mode::Error);
    statusd.wait_status("told", "down", WAIT).await;
    eventually("the DOWN on the new channel", WAIT, || async { (receiver.events("new") == ["DOWN"]).then_some(()) })
        .await;
    assert!(receiver.events("old").is_empty());
    assert_eq!(statusd.asset("told").await["restarts"], 0);
    statusd.stop().await;
}
