//! Maintenance windows: made by the API or written in the manifest, they silence an asset's
//! outage (results kept and marked, no incident, nothing sent) until they end, survive restarts,
//! and tell the `onMaintenance` channels when they open and close.

use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::e2e::harness::{Backend, Mode, Receiver, Setup, Statusd, Target, eventually, http_asset};

const WAIT: Duration = Duration::from_secs(15);
const TOKEN: &str = "maintenance-token";

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `pager` hears outages, `ops` hears maintenance.
fn channels(receiver: &Receiver) -> Value {
    json!({
        "notifiers": {
            "pager": {"type": "webhook", "url": receiver.url("pager")},
            "ops": {"type": "webhook", "url": receiver.url("ops")},
        },
        "notificationPolicy": {"onDown": ["pager"], "onRecovery": ["pager"], "onMaintenance": ["ops"], "throttleSeconds": 0}
    })
}

/// A statusd whose mutating routes need [`TOKEN`].
async fn setup(backend: Backend, assets: Value, notifiers: Value) -> Setup {
    let setup = Setup::new(backend, assets, notifiers).await;
    setup.write_settings(&format!("api_token = \"{TOKEN}\"\n"));
    setup
}

fn write_manifest(setup: &Setup, manifest: Value) {
    std::fs::write(setup.path("manifest.json"), manifest.to_string()).expect("write manifest");
}

async fn send(statusd: &Statusd, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = statusd.http.request(method, statusd.url(path)).bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn create(statusd: &Statusd, window: Value) -> (StatusCode, Value) {
    send(statusd, reqwest::Method::POST, "/api/maintenance", Some(window)).await
}

async fn delete(statusd: &Statusd, id: &str) -> (StatusCode, Value) {
    send(statusd, reqwest::Method::DELETE, &format!("/api/maintenance/{id}"), None).await
}

async fn window_ids(statusd: &Statusd, state: &str) -> Vec<String> {
    let (status, windows) = statusd.get(&format!("/api/maintenance?state={state}")).await;
    assert_eq!(status, StatusCode::OK, "{windows}");
    windows.as_array().expect("a list").iter().map(|w| w["id"].as_str().expect("an id").to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_maintenance_window_created_by_api_silences_an_outage_and_the_outage_is_reported_once_the_window_ends() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let setup = setup(backend, json!([http_asset("svc", &target.url())]), channels(&receiver)).await;
    let statusd = setup.start(&[]).await;
    statusd.wait_status("svc", "up", WAIT).await;

    let end = Utc::now() + TimeDelta::seconds(6);
    let window = json!({"id": "deploy", "assets": ["svc"], "start": rfc3339(Utc::now() - TimeDelta::seconds(1)), "end": rfc3339(end)});
    let unauthorized = statusd.http.post(statusd.url("/api/maintenance")).json(&window).send().await.expect("request");
    assert_eq!(unauthorized.status().as_u16(), 401, "the API token is required");
    let (status, created) = create(&statusd, window).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!((created["active"].clone(), created["source"].clone()), (json!(true), json!("api")));
    assert_eq!(created["coveredAssets"], json!(["svc"]));
    assert_eq!(window_ids(&statusd, "active").await, ["deploy"]);

    // The deploy breaks the service: probes go on, their results are kept, marked, and move
    // nothing.
    target.set(Mode::Error);
    statusd.wait_status("svc", "maintenance", WAIT).await;
    let (_, events) = eventually("three failures marked maintenance", WAIT, || async {
        let (_, events) = statusd.get("/api/assets/svc/events?limit=3").await;
        let marked = events
            .as_array()
            .is_some_and(|e| e.len() == 3 && e.iter().all(|e| e["success"] == false && e["mark"] == "maintenance"));
        marked.then_some(((), events))
    })
    .await;
    assert_eq!(events[0]["message"], "HTTP 500 (expected 200)");
    assert_eq!(statusd.asset("svc").await["openIncidentId"], Value::Null);
    eventually("MAINTENANCE_START for ops", WAIT, || async {
        (receiver.events("ops") == ["MAINTENANCE_START"]).then_some(())
    })
    .await;
    let start = &receiver.bodies("ops")[0];
    assert_eq!(start["assetId"], "deploy");
    assert!(start["details"].as_str().expect("details").contains("deploy started for svc"), "{start}");

    // Still broken when the window ends: confirmed as usual (two failures), then reported.
    let down = statusd.wait_status("svc", "down", WAIT).await;
    assert!(Utc::now() >= end);
    let since: DateTime<Utc> = down["since"].as_str().expect("since").parse().expect("a time");
    assert!(since >= end, "the outage is dated after the window ({since} < {end})");
    eventually("DOWN for the pager", WAIT, || async { (receiver.events("pager") == ["DOWN"]).then_some(()) }).await;
    eventually("MAINTENANCE_END for ops", WAIT, || async {
        (receiver.events("ops") == ["MAINTENANCE_START", "MAINTENANCE_END"]).then_some(())
    })
    .await;
    let incidents = statusd.wait_incidents("open", 1).await;
    assert_eq!(incidents[0]["assetId"], "svc");
    assert!(window_ids(&statusd, "active").await.is_empty());
    assert!(window_ids(&statusd, "upcoming").await.is_empty());
    assert_eq!(window_ids(&statusd, "all").await, ["deploy"]);
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restarting_statusd_changes_nothing_decided_the_windows_survive() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let setup = setup(backend, json!([http_asset("db", &target.url())]), channels(&receiver)).await;
    let statusd = setup.start(&[]).await;
    statusd.wait_status("db", "up", WAIT).await;

    let hour = json!({"id": "migration", "assets": ["db"],
        "start": rfc3339(Utc::now() - TimeDelta::seconds(1)), "end": rfc3339(Utc::now() + TimeDelta::hours(1))});
    assert_eq!(create(&statusd, hour).await.0, StatusCode::CREATED);
    // Three days from today, so that it is never active while the test runs.
    let day = (chrono::Datelike::weekday(&Utc::now()).num_days_from_sunday() + 3) % 7;
    let weekly = json!({"id": "weekly", "match": {"team": "nobody"}, "cron": format!("0 2 * * {day}"),
        "durationMinutes": 60, "timezone": "Europe/Berlin"});
    assert_eq!(create(&statusd, weekly).await.0, StatusCode::CREATED);
    target.set(Mode::Error);
    statusd.wait_status("db", "maintenance", WAIT).await;
    statusd.wait_probes("db", 2).await;
    statusd.stop().await;

    // Restarted in the middle of the window, with the service still failing.
    let statusd = setup.start(&[]).await;
    statusd.wait_status("db", "maintenance", WAIT).await;
    statusd.wait_probes("db", 3).await;
    assert_eq!(statusd.asset("db").await["status"], "maintenance");
    let (_, incidents) = statusd.get("/api/incidents?state=all").await;
    assert_eq!(incidents, json!([]), "no incident opened across the restart");
    assert_eq!(window_ids(&statusd, "all").await, ["migration", "weekly"]);
    assert_eq!(window_ids(&statusd, "upcoming").await, ["weekly"]);
    let (_, windows) = statusd.get("/api/maintenance").await;
    let weekly = &windows[1];
    assert_eq!((weekly["source"].clone(), weekly["active"].clone()), (json!("api"), json!(false)));
    assert_eq!(weekly["timezone"], "Europe/Berlin");
    assert_eq!(weekly["coveredAssets"], json!([]));
    assert!(weekly["next"]["start"].is_string() && weekly["current"].is_null(), "{weekly}");
    // Deleted: the outage goes through the usual confirmation and is reported.
    assert_eq!(delete(&statusd, "migration").await.0, StatusCode::NO_CONTENT);
    statusd.wait_status("db", "down", WAIT).await;
    eventually("DOWN for the pager", WAIT, || async { (receiver.events("pager") == ["DOWN"]).then_some(()) }).await;
    // The START went out once, before the restart; the END when the window was deleted.
    eventually("MAINTENANCE_END for ops", WAIT, || async {
        (receiver.events("ops") == ["MAINTENANCE_START", "MAINTENANCE_END"]).then_some(())
    })
    .await;
    statusd.stop().await;

    let statusd = setup.start(&[]).await;
    assert_eq!(window_ids(&statusd, "all").await, ["weekly"], "the deletion is kept too");
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_refuses_bad_windows_taken_ids_and_windows_of_the_manifest() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let setup = setup(backend, json!([]), json!({"notifiers": {}})).await;
    // Twelve hours from now, so that it is upcoming (not active) whenever the test runs.
    let hour = (chrono::Timelike::hour(&Utc::now()) + 12) % 24;
    write_manifest(
        &setup,
        json!({"assets": [http_asset("web", &target.url())], "maintenance": [
            {"id": "nightly", "assets": ["web"], "cron": format!("0 {hour} * * *"), "durationMinutes": 30}
        ]}),
    );
    let statusd = setup.start(&[]).await;

    let (status, body) = create(
        &statusd,
        json!({"id": "bad", "assets": ["web", "nope"], "cron": "0 2 * *", "durationMinutes": 60, "timezone": "Europe/Berln"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let error = body["error"].as_str().expect("error");
    assert!(error.starts_with("invalid maintenance window: assets[1]: unknown asset id \"nope\"; cron: "), "{error}");
    assert!(error.contains("timezone: unknown time zone \"Europe/Berln\""), "{error}");
    assert_eq!(body["problems"].as_array().map(Vec::len), Some(3), "{body}");
    let (status, body) = create(
        &statusd,
        json!({"id": "late", "assets": ["web"], "start": "2026-12-01T03:00:00Z", "end": "2026-12-01T02:00:00Z"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid maintenance window: end: must be after start (2026-12-01T03:00:00+00:00)");

    let (status, body) =
        create(&statusd, json!({"id": "nightly", "assets": ["web"], "cron": "0 4 * * *", "durationMinutes": 5})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"].as_str().expect("error").contains("defined in the manifest"), "{body}");
    let later = json!({"id": "later", "match": {"env": "prod"},
        "start": "2099-01-01T00:00:00+01:00", "end": "2099-01-01T01:00:00+01:00"});
    assert_eq!(create(&statusd, later.clone()).await.0, StatusCode::CREATED);
    let (status, body) = create(&statusd, later).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"].as_str().expect("error").contains("exists already"), "{body}");

    let (status, body) = delete(&statusd, "nightly").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body["error"],
        "maintenance window \"nightly\" is defined in the manifest: edit the manifest to change or remove it"
    );
    assert_eq!(delete(&statusd, "nobody").await.0, StatusCode::NOT_FOUND);
    let (_, windows) = statusd.get("/api/maintenance?state=upcoming").await;
    assert_eq!(windows[0]["source"], "manifest");
    assert_eq!(windows[1]["next"], json!({"start": "2098-12-31T23:00:00Z", "end": "2099-01-01T00:00:00Z"}));
    let (status, _) = statusd.get("/api/maintenance?state=sometimes").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn editing_the_manifests_windows_applies_live() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let setup = setup(backend, json!([]), channels(&receiver)).await;
    let mut asset = http_asset("cache", &target.url());
    asset["metadata"] = json!({"env": "prod"});
    write_manifest(&setup, json!({"assets": [asset.clone()]}));
    let statusd = setup.start(&[]).await;
    statusd.wait_status("cache", "up", WAIT).await;

    let window = json!({"id": "prod-work", "match": {"env": ["prod", "staging"]},
        "start": rfc3339(Utc::now() - TimeDelta::minutes(1)), "end": rfc3339(Utc::now() + TimeDelta::hours(1))});
    write_manifest(&setup, json!({"assets": [asset.clone()], "maintenance": [window]}));
    let (status, report) = send(&statusd, reqwest::Method::POST, "/api/reload", None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["maintenanceChanged"], true);
    statusd.wait_status("cache", "maintenance", WAIT).await;
    assert_eq!(window_ids(&statusd, "active").await, ["prod-work"]);
    eventually("MAINTENANCE_START", WAIT, || async { (receiver.events("ops") == ["MAINTENANCE_START"]).then_some(()) })
        .await;
    // A reload that leaves the window as it is announces nothing again.
    let (status, report) = send(&statusd, reqwest::Method::POST, "/api/reload", None).await;
    assert_eq!((status, report["maintenanceChanged"].clone()), (StatusCode::OK, json!(false)));

    write_manifest(&setup, json!({"assets": [asset]}));
    assert_eq!(send(&statusd, reqwest::Method::POST, "/api/reload", None).await.0, StatusCode::OK);
    statusd.wait_status("cache", "up", WAIT).await;
    assert!(window_ids(&statusd, "all").await.is_empty());
    eventually("MAINTENANCE_END", WAIT, || async {
        (receiver.events("ops") == ["MAINTENANCE_START", "MAINTENANCE_END"]).then_some(())
    })
    .await;
    assert!(receiver.bodies("ops")[1]["details"].as_str().expect("details").contains("prod-work ended for cache"));
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incident_already_open_stays_open_without_reminders_during_a_window() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let mut notifiers = channels(&receiver);
    notifiers["notificationPolicy"]["repeatAlerts"] = json!(true);
    notifiers["notificationPolicy"]["repeatIntervalSeconds"] = json!(1);
    let setup = setup(backend, json!([http_asset("api", &target.url())]), notifiers).await;
    let statusd = setup.start(&[]).await;
    statusd.wait_status("api", "up", WAIT).await;
    target.set(Mode::Error);
    let incident = statusd.wait_status("api", "down", WAIT).await["openIncidentId"].clone();
    let reminders = || receiver.events("pager").iter().filter(|e| *e == "REMINDER").count();
    eventually("a reminder", WAIT, || async { (reminders() >= 1).then_some(()) }).await;

    let window = json!({"id": "on-it", "assets": ["api"],
        "start": rfc3339(Utc::now() - TimeDelta::seconds(1)), "end": rfc3339(Utc::now() + TimeDelta::hours(1))});
    assert_eq!(create(&statusd, window).await.0, StatusCode::CREATED);
    statusd.wait_status("api", "maintenance", WAIT).await;
    // A reminder already on its way may still arrive; none is decided from here on.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = reminders();
    statusd.wait_probes("api", 3).await;
    assert_eq!(reminders(), before, "no reminder during the window");
    let asset = statusd.asset("api").await;
    assert_eq!(asset["openIncidentId"], incident, "the incident stays open");
    statusd.wait_incidents("open", 1).await;

    assert_eq!(delete(&statusd, "on-it").await.0, StatusCode::NO_CONTENT);
    eventually("reminders again", WAIT, || async { (reminders() > before).then_some(()) }).await;
    let asset = statusd.wait_status("api", "down", WAIT).await;
    assert_eq!(asset["openIncidentId"], incident, "the same outage goes on");
    assert_eq!(receiver.events("pager").iter().filter(|e| *e == "DOWN").count(), 1, "no second DOWN");
    statusd.stop().await;
}
