//! Restarts after panics, graceful shutdown, refusing bad configs, and overload that never
//! becomes a false outage.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::e2e::harness::{
    Mode, Receiver, Setup, Target, all_channels, binary, eventually, http_asset, metric, no_channels,
};

const WAIT: Duration = Duration::from_secs(10);

/// The lines a child writes to its piped standard output, as they come (read on a thread).
fn stdout_lines(child: &mut std::process::Child) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    lines
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_asset_actor_is_restarted_with_its_state_and_keeps_probing() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let setup = Setup::new(backend, json!([http_asset("fragile", &target.url())]), all_channels(&receiver, 0)).await;
    let statusd = setup.start(&["--enable-chaos"]).await;
    target.set(Mode::Error);
    let down = statusd.wait_status("fragile", "down", WAIT).await;

    let response =
        statusd.http.post(statusd.url("/api/debug/panic?actor=asset:fragile")).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    // Restarted, not just counted: between the panic and the new actor the asset reads
    // "crashed" with its restart already counted.
    let restarted = eventually("the restart", WAIT, || async {
        let asset = statusd.asset("fragile").await;
        (asset["restarts"] == 1 && asset["status"] != "crashed").then_some(asset)
    })
    .await;
    // Same outage, same incident: nothing was forgotten.
    assert_eq!(restarted["status"], "down");
    assert_eq!(restarted["openIncidentId"], down["openIncidentId"]);
    statusd.wait_probes("fragile", 2).await;
    target.set(Mode::Ok);
    statusd.wait_status("fragile", "up", WAIT).await;
    eventually("the recovery", WAIT, || async { (receiver.events("webhook") == ["DOWN", "RECOVERY"]).then_some(()) })
        .await;

    let (_, actors) = statusd.get("/api/actors").await;
    let asset = actors.as_array().expect("list").iter().find(|a| a["name"] == "asset:fragile").expect("listed").clone();
    assert_eq!(asset["restarts"], 1);
    assert!(asset["lastRestart"].is_string());
    let restarts = "statusd_actor_restarts_total{actor=\"asset:fragile\"}";
    assert_eq!(metric(&statusd.metrics().await, restarts), Some(1.0));

    let response = statusd.http.post(statusd.url("/api/debug/panic?actor=asset:ghost")).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_exits_0_within_10s_with_every_accepted_result_stored() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let assets: Vec<Value> = (0..5).map(|i| http_asset(&format!("term-{i}"), &target.url())).collect();
    let setup = Setup::new(backend, json!(assets), no_channels()).await;
    let mut args = setup.args(&["--log-format", "json", "--log-level", "info,statusd=debug"]);
    args.remove(0);
    let mut child = Command::new(binary())
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start statusd");
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(value) = serde_json::from_str::<Value>(&line) {
                let _ = lines_tx.send(value);
            }
        }
    });
    // Wait for a few rounds of probes.
    let mut probes = 0;
    while probes < 12 {
        let line = tokio::time::timeout(WAIT, lines.recv()).await.expect("log lines").expect("statusd running");
        if line["success"] == true {
            probes += 1;
        }
    }
    let stopped_at = tokio::time::Instant::now();
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = tokio::task::spawn_blocking(move || child.wait()).await.expect("join").expect("wait");
    assert!(stopped_at.elapsed() < Duration::from_secs(10), "took {:?}", stopped_at.elapsed());
    assert_eq!(status.code(), Some(0));

    let mut report = None;
    while let Ok(line) = lines.try_recv() {
        if line["message"] == "persistence stopped" {
            report = Some(line);
        }
    }
    let report = report.expect("the persistence report in the logs");
    let accepted = report["accepted"].as_i64().expect("accepted");
    assert_eq!(report["written"].as_i64(), Some(accepted), "{report}");
    assert_eq!(report["lost"], 0);
    assert!(accepted >= 12);
    let db = setup.inspect().await;
    let mut stored = 0;
    for i in 0..5 {
        stored += db.count("SELECT count(*) FROM probe_events WHERE asset_id = $1", &format!("term-{i}")).await;
    }
    db.close().await;
    assert_eq!(stored, accepted);
}

#[tokio::test(flavor = "multi_thread")]
async fn waiting_for_a_worker_is_lag_not_failure() {
    let Some(backend) = crate::backend().await else { return };
    // One worker for four assets whose probes take 400 ms each: a round takes 1.6 s while each
    // asset wants one probe per second. Probes queue, ticks are skipped; nothing fails.
    let target = Target::start().await;
    target.set(Mode::Slow);
    let ids: Vec<String> = (0..4).map(|i| format!("queued-{i}")).collect();
    let assets: Vec<Value> = ids.iter().map(|id| http_asset(id, &target.url())).collect();
    let setup = Setup::new(backend, json!(assets), no_channels()).await;
    let statusd = setup.start(&["--workers", "1"]).await;
    // Waited for side by side: the probes queue for the one worker, not for each other's wait.
    futures::future::join_all(ids.iter().map(|id| statusd.wait_probes(id, 3))).await;
    let metrics = statusd.metrics().await;
    let mut skipped = 0.0;
    for id in &ids {
        let asset = statusd.asset(id).await;
        assert_eq!(asset["status"], "up", "{asset}");
        assert_eq!(metric(&metrics, &format!("statusd_probe_total{{asset=\"{id}\",result=\"failure\"}}")), Some(0.0));
        skipped += metric(&metrics, &format!("statusd_probes_skipped_total{{asset=\"{id}\"}}")).unwrap_or(0.0);
    }
    assert!(skipped > 0.0, "an overloaded monitor skips ticks instead of queueing them forever");
    let late = metrics
        .lines()
        .find(|l| l.starts_with("statusd_schedule_lag_seconds_bucket{le=\"0.1\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    let all = metric(&metrics, "statusd_schedule_lag_seconds_count").unwrap_or(0.0);
    assert!(late.is_some_and(|within| within < all), "some probes waited over 100 ms for their worker");
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_of_actor_comes_back_after_a_panic_and_the_tree_keeps_working() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let setup = Setup::new(backend, json!([http_asset("sturdy", &target.url())]), all_channels(&receiver, 0)).await;
    let statusd = setup.start(&["--enable-chaos"]).await;
    statusd.wait_status("sturdy", "up", WAIT).await;

    for actor in ["persistence", "incidents", "notifier:webhook", "notifier:teams"] {
        let response =
            statusd.http.post(statusd.url(&format!("/api/debug/panic?actor={actor}"))).send().await.expect("request");
        assert_eq!(response.status(), StatusCode::OK, "{actor}");
        eventually(&format!("{actor} to be restarted"), WAIT, || async {
            let (_, actors) = statusd.get("/api/actors").await;
            actors
                .as_array()?
                .iter()
                .find(|a| a["name"] == actor)
                .filter(|a| a["restarts"] == 1 && a["status"] == "running")
                .map(|_| ())
        })
        .await;
    }

    // The restarted actors do their jobs: an outage is recorded and told, and so is its end.
    target.set(Mode::Error);
    statusd.wait_status("sturdy", "down", WAIT).await;
    target.set(Mode::Ok);
    statusd.wait_status("sturdy", "up", WAIT).await;
    for channel in ["teams", "slack", "discord", "webhook"] {
        eventually(&format!("DOWN and RECOVERY on {channel}"), WAIT, || async {
            (receiver.events(channel) == ["DOWN", "RECOVERY"]).then_some(())
        })
        .await;
    }
    statusd.wait_incidents("closed", 1).await;
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_urls_never_reach_the_logs() {
    let Some(backend) = crate::backend().await else { return };
    let mut asset = http_asset("secretive", "http://127.0.0.1:1/health");
    asset["failureThreshold"] = json!(1);
    let notifiers = json!({
        "notifiers": {
            "hook": {"type": "webhook", "url": "http://127.0.0.1:1/hooks/SECRET-TOKEN-123?key=SECRET-KEY-456"},
            "teams": {"type": "teams", "webhookUrl": "ftp-is-not-ok://SECRET-TOKEN-789"},
        },
        "notificationPolicy": {"onDown": ["hook"], "throttleSeconds": 0}
    });
    let setup = Setup::new(backend, json!([asset]), notifiers).await;
    let mut args = setup.args(&["--log-format", "json", "--log-level", "debug"]);
    args[0] = "check-config".into();
    let output = Command::new(binary()).args(&args).output().expect("check-config");
    let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(printed.contains("notifiers.teams.webhookUrl"), "{printed}");
    assert!(!printed.contains("SECRET"), "{printed}");

    let notifiers = json!({
        "notifiers": {"hook": {"type": "webhook", "url": "http://127.0.0.1:1/hooks/SECRET-TOKEN-123?key=SECRET-KEY-456"}},
        "notificationPolicy": {"onDown": ["hook"], "throttleSeconds": 0}
    });
    std::fs::write(setup.path("notifiers.json"), notifiers.to_string()).expect("write");
    args.remove(0);
    let mut child =
        Command::new(binary()).args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start");
    let mut lines = stdout_lines(&mut child);
    let mut log = String::new();
    while !log.contains("notification failed") {
        let line = tokio::time::timeout(WAIT, lines.recv()).await.expect("the failed delivery").expect("running");
        log.push_str(&line);
        log.push('\n');
    }
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await.expect("join").expect("wait");
    while let Ok(line) = lines.try_recv() {
        log.push_str(&line);
    }
    log.push_str(&String::from_utf8_lossy(&output.stderr));
    assert!(log.contains("connection refused"), "the failure is logged with its cause:\n{log}");
    assert!(!log.contains("SECRET"), "a secret leaked:\n{log}");
}

/// `pretty` log lines sent anywhere but a terminal (a pipe here; a file, journald or `docker
/// logs` alike) carry no colour codes: tracing-subscriber's default put ANSI escapes around
/// every timestamp, level and field whatever the output was.
#[tokio::test(flavor = "multi_thread")]
async fn logs_not_sent_to_a_terminal_carry_no_colour_codes() {
    let Some(backend) = crate::backend().await else { return };
    let setup = Setup::new(backend, json!([http_asset("refused", "http://127.0.0.1:1/health")]), no_channels()).await;
    let mut args = setup.args(&["--log-format", "pretty", "--log-level", "info"]);
    args.remove(0);
    let mut child = Command::new(binary())
        .args(&args)
        .env_remove("NO_COLOR")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");
    let mut lines = stdout_lines(&mut child);
    let mut log = String::new();
    while !log.contains("Connection refused") && !log.contains("connection refused") {
        let line = tokio::time::timeout(WAIT, lines.recv()).await.expect("the failed probe").expect("running");
        log.push_str(&line);
        log.push('\n');
    }
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let _ = tokio::task::spawn_blocking(move || child.wait()).await.expect("join");
    assert!(log.contains("WARN") && log.contains("refused"), "a failed probe is logged:\n{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a log that is not a terminal's:\n{log:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_loop_is_marked_crashed_reported_and_retried_with_backoff() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let notifiers = json!({
        "notifiers": {"ops": {"type": "webhook", "url": receiver.url("ops")}},
        "notificationPolicy": {"onPanic": ["ops"], "throttleSeconds": 0}
    });
    let setup = Setup::new(backend, json!([http_asset("loopy", &target.url())]), notifiers).await;
    setup.write_settings("[restart]\nmax_restarts = 2\nwindow_seconds = 60\n");
    let statusd = setup.start(&["--enable-chaos"]).await;
    statusd.wait_status("loopy", "up", WAIT).await;

    for round in 1..=3u64 {
        eventually("the asset actor to be running", WAIT, || async {
            let (status, _) = statusd.post("/api/debug/panic?actor=asset:loopy").await;
            (status == StatusCode::OK).then_some(())
        })
        .await;
        eventually(&format!("restart {round} to be counted"), WAIT, || async {
            (statusd.asset("loopy").await["restarts"] == round).then_some(())
        })
        .await;
    }
    // The third failure within a minute is one too many: crashed, visible, reported.
    let crashed = statusd.asset("loopy").await;
    assert_eq!(crashed["status"], "crashed", "{crashed}");
    let (_, actors) = statusd.get("/api/actors").await;
    let actor = actors.as_array().expect("actors").iter().find(|a| a["name"] == "asset:loopy").expect("listed").clone();
    assert_eq!(actor["status"], "crashed");
    eventually("a PANIC per failure", WAIT, || async { (receiver.events("ops").len() == 3).then_some(()) }).await;
    let panic = &receiver.bodies("ops")[2];
    assert_eq!((panic["event"].as_str(), panic["assetName"].as_str()), (Some("PANIC"), Some("asset:loopy")));
    assert!(panic["details"].as_str().is_some_and(|d| d.contains("marked crashed")), "{panic}");

    // After its backoff it is started again, with its state, and probes on.
    let back = statusd.wait_status("loopy", "up", WAIT).await;
    assert_eq!(back["restarts"], 3);
    statusd.wait_probes("loopy", 2).await;
    statusd.stop().await;
}
