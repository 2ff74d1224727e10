//! Faults inside statusd and its database, from outside: a task that panics (a probe, a write,
//! a retention step), a row or an incident the database refuses for good, a database locked by
//! someone else, an actor in a crash loop, a refused reload. Each time the owner recovers,
//! nothing else is held back, and `/readyz` tells the truth while it lasts.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::e2e::harness::{Receiver, Setup, Statusd, Target, eventually, http_asset, metric, probes_counted};

const WAIT: Duration = Duration::from_secs(15);

fn on_panic(receiver: &Receiver) -> Value {
    json!({
        "notifiers": {"ops": {"type": "webhook", "url": receiver.url("ops")}},
        "notificationPolicy": {"onPanic": ["ops"], "throttleSeconds": 0}
    })
}

async fn task_panics(statusd: &Statusd, actor: &str, task: &str) -> f64 {
    let series = format!("statusd_task_panics_total{{actor=\"{actor}\",task=\"{task}\"}}");
    metric(&statusd.metrics().await, &series).unwrap_or(0.0)
}

async fn written(statusd: &Statusd) -> u64 {
    statusd.get("/readyz").await.1["checks"]["store"]["backlog"]["written"].as_u64().unwrap_or(0)
}

/// Waits until Persistence has written `more` results beyond what it had written now.
async fn wait_written(statusd: &Statusd, more: u64) {
    let now = written(statusd).await;
    eventually(&format!("{more} more results written"), WAIT, || async {
        (written(statusd).await >= now + more).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_probe_task_counts_as_a_failed_probe_and_the_schedule_goes_on() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let setup = Setup::new(backend, json!([http_asset("probe-panic", &target.url())]), on_panic(&receiver)).await;
    let statusd = setup.start(&["--enable-chaos"]).await;
    statusd.wait_status("probe-panic", "up", WAIT).await;

    let (status, body) = statusd.post("/api/debug/panic?actor=asset:probe-panic&task=probe").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"panicked": "asset:probe-panic", "task": "probe"}));

    // The probe that panicked is a failed result, stored like any other...
    let db = setup.inspect().await;
    eventually("the panicked probe's result stored", WAIT, || async {
        let failures = db.count("SELECT count(*) FROM probe_events WHERE asset_id = $1 AND NOT success", "probe-panic");
        (failures.await == 1).then_some(())
    })
    .await;
    let (_, message) = db.a_failure("probe-panic").await;
    assert_eq!(
        message.as_deref(),
        Some("probe panicked: chaos: panic injected into the probe task of asset:probe-panic")
    );
    // ...and the schedule goes on: one failure is not an outage, the next probes succeed.
    statusd.wait_probes("probe-panic", 3).await;
    let asset = statusd.asset("probe-panic").await;
    assert_eq!((asset["status"].as_str(), asset["consecutiveFailures"].as_u64()), (Some("up"), Some(0)), "{asset}");

    // Counted, and reported like an actor panic; the actor itself never failed.
    assert_eq!(task_panics(&statusd, "asset:probe-panic", "probe").await, 1.0);
    let report = eventually("the PANIC report", WAIT, || async { receiver.bodies("ops").into_iter().next() }).await;
    assert_eq!(report["event"], "PANIC", "{report}");
    let details = report["details"].as_str().unwrap_or_default();
    assert!(details.starts_with("the probe task of asset:probe-panic panicked: chaos"), "{details}");
    assert_eq!(asset["restarts"], 0, "{asset}");

    // Tasks an actor does not run, and actors that do not exist, are refused.
    let (status, body) = statusd.post("/api/debug/panic?actor=asset:probe-panic&task=write").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = statusd.post("/api/debug/panic?actor=asset:nobody&task=probe").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    db.close().await;
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_write_or_retention_step_is_tried_again_and_nothing_accepted_is_lost() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let setup = Setup::new(backend, json!([http_asset("write-panic", &target.url())]), on_panic(&receiver)).await;
    setup.write_settings("[retention]\ninterval_seconds = 1\n");
    let statusd = setup.start(&["--enable-chaos"]).await;
    statusd.wait_status("write-panic", "up", WAIT).await;
    wait_written(&statusd, 1).await;

    for task in ["write", "retention"] {
        let before = task_panics(&statusd, "persistence", task).await;
        let (status, body) = statusd.post(&format!("/api/debug/panic?actor=persistence&task={task}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        eventually(&format!("the {task} task to panic"), WAIT, || async {
            (task_panics(&statusd, "persistence", task).await == before + 1.0).then_some(())
        })
        .await;
        // Persistence goes on writing, and nobody had to restart it.
        wait_written(&statusd, 2).await;
    }
    let (status, ready) = statusd.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    let (_, actors) = statusd.get("/api/actors").await;
    let persistence = actors.as_array().and_then(|a| a.iter().find(|actor| actor["name"] == "persistence")).cloned();
    assert_eq!(persistence.map(|p| p["restarts"].clone()), Some(json!(0)));
    statusd.stop().await;

    // Every result the asset produced is stored: the batch that panicked was written again.
    let db = setup.inspect().await;
    let stored = db.count("SELECT count(*) FROM probe_events WHERE asset_id = $1", "write-panic").await;
    assert_eq!(stored, probes_counted("write-panic"));
    db.close().await;
}

/// Statements that make the database refuse, for good, probe results and incidents that
/// mention "poison": what a constraint or a trigger added by someone else does.
const REFUSE_POISON_SQLITE: &str = "
    CREATE TRIGGER refuse_poison_events BEFORE INSERT ON probe_events WHEN NEW.message LIKE '%poison%'
    BEGIN SELECT RAISE(ABORT, 'poison result refused'); END;
    CREATE TRIGGER refuse_poison_incidents BEFORE INSERT ON incidents WHEN NEW.summary LIKE '%poison%'
    BEGIN SELECT RAISE(ABORT, 'poison incident refused'); END;";
const REFUSE_POISON_POSTGRES: &str = "
    ALTER TABLE probe_events ADD CONSTRAINT no_poison CHECK (message IS NULL OR message NOT LIKE '%poison%');
    ALTER TABLE incidents ADD CONSTRAINT no_poison CHECK (summary NOT LIKE '%poison%');";

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_row_is_left_out_alone_and_a_refused_incident_is_kept_and_reported() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let token = "poison-job-token-123";
    let assets = json!([
        http_asset("beside-poison", &target.url()),
        {"id": "poison-job", "assetType": "push", "token": token, "intervalSeconds": 600},
    ]);
    let setup = Setup::new(backend, assets, json!({"notifiers": {}})).await;
    let statusd = setup.start(&[]).await;
    statusd.wait_status("beside-poison", "up", WAIT).await;
    let db = setup.inspect().await;
    db.execute(REFUSE_POISON_SQLITE, REFUSE_POISON_POSTGRES).await;
    let rejected_before = metric(&statusd.metrics().await, "statusd_persistence_rejected_total").unwrap_or(0.0);

    // Within one flush: a good push, one the database refuses (its incident too), a good one.
    for query in ["", "&status=down&msg=poison%20pill", ""] {
        let (status, body) = statusd.post(&format!("/api/push/poison-job?token={token}{query}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    // The refused result is left out alone: the pushes beside it are stored, and so is every
    // later result of the other asset.
    eventually("the good pushes stored", WAIT, || async {
        (db.count("SELECT count(*) FROM probe_events WHERE asset_id = $1", "poison-job").await == 2).then_some(())
    })
    .await;
    let failures = db.count("SELECT count(*) FROM probe_events WHERE asset_id = $1 AND NOT success", "poison-job");
    assert_eq!(failures.await, 0);
    let beside = db.count("SELECT count(*) FROM probe_events WHERE asset_id = $1", "beside-poison").await;
    eventually("results of the other asset stored after it", WAIT, || async {
        let now = db.count("SELECT count(*) FROM probe_events WHERE asset_id = $1", "beside-poison").await;
        (now >= beside + 2).then_some(())
    })
    .await;
    let rejected = metric(&statusd.metrics().await, "statusd_persistence_rejected_total").unwrap_or(0.0);
    assert_eq!(rejected, rejected_before + 1.0);

    // The refused incident is never dropped: readiness says so until it is written.
    let (status, ready) = eventually("readiness to report the refused incident", WAIT, || async {
        let (status, ready) = statusd.get("/readyz").await;
        (status == StatusCode::SERVICE_UNAVAILABLE).then_some((status, ready))
    })
    .await;
    let error = ready["checks"]["store"]["error"].as_str().unwrap_or_default().to_string();
    assert!(error.starts_with("the database refuses a change, which is kept and retried: opening incident"), "{ready}");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(db.incidents().await.is_empty());

    // Once the database takes it, the incident is written, and its recovery after it.
    db.execute("DROP TRIGGER refuse_poison_incidents", "ALTER TABLE incidents DROP CONSTRAINT no_poison").await;
    eventually("readiness back", WAIT, || async { (statusd.get("/readyz").await.0 == StatusCode::OK).then_some(()) })
        .await;
    let incidents = eventually("the incident stored and closed", WAIT, || async {
        let incidents = db.incidents().await;
        (incidents.len() == 1 && incidents[0].1).then_some(incidents)
    })
    .await;
    assert_eq!(incidents[0].2.as_deref(), Some("recovered"));
    db.close().await;
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_fails_while_the_database_takes_no_writes_and_recovers_when_it_does() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let setup = Setup::new(backend, json!([http_asset("locked-out", &target.url())]), json!({"notifiers": {}})).await;
    setup.write_settings("[persistence]\nflush_interval_ms = 200\nwrite_stall_seconds = 1\n");
    let statusd = setup.start(&[]).await;
    statusd.wait_status("locked-out", "up", WAIT).await;
    wait_written(&statusd, 1).await;
    assert_eq!(statusd.get("/readyz").await.0, StatusCode::OK);

    // Someone else holds the database's write lock: SQLite writers fail ("database is locked"),
    // PostgreSQL writers wait.
    let db = setup.inspect().await;
    let lock = db.lock_writes().await;
    let ready = eventually("readiness to fail", WAIT, || async {
        let (status, ready) = statusd.get("/readyz").await;
        (status == StatusCode::SERVICE_UNAVAILABLE).then_some(ready)
    })
    .await;
    let error = ready["checks"]["store"]["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("writes have failed") || error.starts_with("a write has been waiting"), "{ready}");
    // Probing and reading go on meanwhile.
    statusd.wait_probes("locked-out", 2).await;
    assert_eq!(statusd.get("/api/assets/locked-out/events?limit=1").await.0, StatusCode::OK);

    lock.release().await;
    eventually("readiness back", WAIT * 2, || async {
        (statusd.get("/readyz").await.0 == StatusCode::OK).then_some(())
    })
    .await;
    statusd.stop().await;
    let stored = db.count("SELECT count(*) FROM probe_events WHERE asset_id = $1", "locked-out").await;
    assert_eq!(stored, probes_counted("locked-out"), "every result accepted was written once the lock was gone");
    db.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_actor_makes_statusd_not_ready_until_it_runs_again() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let setup = Setup::new(backend, json!([http_asset("crash-loop", &target.url())]), json!({"notifiers": {}})).await;
    setup.write_settings("[restart]\nmax_restarts = 1\nwindow_seconds = 60\n");
    let statusd = setup.start(&["--enable-chaos"]).await;
    statusd.wait_status("crash-loop", "up", WAIT).await;

    // Panic until the Supervisor gives up restarting at once; its backoff doubles each time,
    // so the crashed state is seen however slow the machine.
    let mut seen = None;
    for _ in 0..5 {
        let _ = statusd.post("/api/debug/panic?actor=asset:crash-loop").await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while seen.is_none() && tokio::time::Instant::now() < deadline {
            let (status, ready) = statusd.get("/readyz").await;
            if status == StatusCode::SERVICE_UNAVAILABLE {
                seen = Some(ready);
            }
        }
        if seen.is_some() {
            break;
        }
    }
    let ready = seen.expect("readiness to fail while the actor is crashed");
    assert_eq!(ready["checks"]["actors"]["crashed"], json!(["asset:crash-loop"]), "{ready}");
    eventually("readiness back once it runs again", WAIT * 2, || async {
        (statusd.get("/readyz").await.0 == StatusCode::OK).then_some(())
    })
    .await;
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_reload_is_a_warning_and_the_config_before_it_stays_in_force() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let asset = http_asset("reload-kept", &target.url());
    let setup = Setup::new(backend, json!([asset.clone()]), json!({"notifiers": {}})).await;
    let statusd = setup.start(&[]).await;
    statusd.wait_status("reload-kept", "up", WAIT).await;

    setup.write_manifest(json!([{"id": "reload-kept", "assetType": "http", "address": "not a url"}]));
    assert_eq!(statusd.post("/api/reload").await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, ready) = statusd.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "statusd still works on the config before: {ready}");
    assert_eq!(ready["checks"]["config"]["status"], "warning", "{ready}");
    let error = ready["checks"]["config"]["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("the last reload was refused; the config before it stays in force"), "{ready}");
    assert!(error.contains("not a url"), "{ready}");
    statusd.wait_probes("reload-kept", 1).await;

    setup.write_manifest(json!([asset]));
    assert_eq!(statusd.post("/api/reload").await.0, StatusCode::OK);
    let (_, ready) = statusd.get("/readyz").await;
    assert_eq!(ready["checks"]["config"], json!({"status": "ok"}));
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_query_answers_500_with_an_error_id_unless_the_database_is_unreachable() {
    let Some(backend) = crate::backend().await else { return };
    let setup = Setup::new(backend, json!([]), json!({"notifiers": {}})).await;
    let statusd = setup.start(&[]).await;
    assert_eq!(statusd.get("/api/incidents").await.0, StatusCode::OK);

    // A schema that does not match is not an outage: retrying will not help, and a load
    // balancer must not be told the database is away.
    let db = setup.inspect().await;
    let rename = "ALTER TABLE incidents RENAME TO incidents_elsewhere";
    db.execute(rename, rename).await;
    let (status, body) = statusd.get("/api/incidents").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    let id = body["errorId"].as_str().expect("an error id").to_string();
    assert!(body["error"].as_str().is_some_and(|e| e.contains(&id)), "{body}");
    assert!(!body.to_string().contains("incidents_elsewhere"), "no SQL details in the answer: {body}");
    let back = "ALTER TABLE incidents_elsewhere RENAME TO incidents";
    db.execute(back, back).await;
    assert_eq!(statusd.get("/api/incidents").await.0, StatusCode::OK);
    db.close().await;
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_delivery_is_sent_again_and_the_channel_goes_on() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let notifiers = json!({
        "notifiers": {
            "hook": {"type": "webhook", "url": receiver.url("hook")},
            "ops": {"type": "webhook", "url": receiver.url("ops")},
        },
        "notificationPolicy": {"onDown": ["hook"], "onRecovery": ["hook"], "onPanic": ["ops"], "throttleSeconds": 0}
    });
    let setup = Setup::new(backend, json!([http_asset("delivery-panic", &target.url())]), notifiers).await;
    let statusd = setup.start(&["--enable-chaos"]).await;
    statusd.wait_status("delivery-panic", "up", WAIT).await;

    let (status, body) = statusd.post("/api/debug/panic?actor=notifier:hook&task=delivery").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    target.set(crate::e2e::harness::Mode::Error);
    eventually("the DOWN, despite the panic", WAIT, || async { (receiver.events("hook") == ["DOWN"]).then_some(()) })
        .await;
    assert_eq!(task_panics(&statusd, "notifier:hook", "delivery").await, 1.0);
    let report = eventually("the PANIC report", WAIT, || async { receiver.bodies("ops").into_iter().next() }).await;
    let details = report["details"].as_str().unwrap_or_default();
    assert!(details.starts_with("the delivery task of notifier:hook panicked"), "{details}");

    // The channel goes on, every slot intact: the RECOVERY follows.
    target.set(crate::e2e::harness::Mode::Ok);
    eventually("the RECOVERY", WAIT, || async { (receiver.events("hook") == ["DOWN", "RECOVERY"]).then_some(()) })
        .await;
    statusd.stop().await;
}

/// The maintenance announcer is a task of the Supervisor, not an actor: a round that panics is
/// caught, counted and reported like any task, and the next round announces what it had not.
#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_round_of_the_maintenance_announcer_is_reported_and_the_window_still_announced() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let notifiers = json!({
        "notifiers": {"ops": {"type": "webhook", "url": receiver.url("ops")}},
        "notificationPolicy": {"onPanic": ["ops"], "onMaintenance": ["ops"], "throttleSeconds": 0}
    });
    let setup = Setup::new(backend, json!([http_asset("announced", &target.url())]), notifiers).await;
    let statusd = setup.start(&["--enable-chaos"]).await;
    statusd.wait_status("announced", "up", WAIT).await;

    let (status, body) = statusd.post("/api/debug/panic?actor=statusd&task=announce").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"panicked": "statusd", "task": "announce"})));
    let (status, _) = statusd.post("/api/debug/panic?actor=persistence&task=announce").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "only the Supervisor announces");
    // A window made now wakes the announcer: that round panics, the next one announces it.
    let now = chrono::Utc::now();
    let window = json!({"id": "after-panic", "assets": ["announced"], "start": (now - chrono::TimeDelta::minutes(1)).to_rfc3339(),
        "end": (now + chrono::TimeDelta::hours(1)).to_rfc3339()});
    let response = statusd.http.post(statusd.url("/api/maintenance")).json(&window).send().await.expect("create");
    assert_eq!(response.status(), StatusCode::CREATED);
    let events = eventually("the PANIC, then the MAINTENANCE_START", WAIT, || async {
        let events = receiver.events("ops");
        events.contains(&"MAINTENANCE_START".to_string()).then_some(events)
    })
    .await;
    assert_eq!(events, ["PANIC", "MAINTENANCE_START"]);
    assert_eq!(task_panics(&statusd, "statusd", "announce").await, 1.0);
    // The held assets were told again: the asset is in maintenance.
    statusd.wait_status("announced", "maintenance", WAIT).await;
    statusd.stop().await;
}
