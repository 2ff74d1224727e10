//! The outbox: every notification is written to `notifications` before it is sent and updated
//! when the send ends, shown by `GET /api/notifications` and with its incident; a process killed
//! in the middle of a send sends it once after the restart, and a sent one never again.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::e2e::harness::{Mode, Receiver, Setup, Target, binary, eventually, free_port, http_asset};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread")]
async fn every_delivery_is_recorded_with_its_status_attempts_and_error() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    receiver.fail("broken");
    let notifiers = json!({
        "notifiers": {
            "ops": {"type": "webhook", "url": receiver.url("ops")},
            "broken": {"type": "webhook", "url": receiver.url("broken")},
        },
        "notificationPolicy": {"onDown": ["ops", "broken"], "onRecovery": ["ops", "broken"], "throttleSeconds": 0}
    });
    let setup = Setup::new(backend, json!([http_asset("outboxed", &target.url())]), notifiers).await;
    let statusd = setup.start(&[]).await;
    statusd.wait_status("outboxed", "up", WAIT).await;
    target.set(Mode::Error);
    let open = statusd.wait_incidents("open", 1).await;
    let incident = open[0]["id"].as_str().expect("incident id").to_string();
    target.set(Mode::Ok);
    statusd.wait_incidents("closed", 1).await;

    // ops took both; broken refused all 3 attempts of each.
    let settled =
        |rows: &Value| rows.as_array().is_some_and(|r| r.len() == 4 && r.iter().all(|n| n["status"] != "pending"));
    let rows = eventually("4 deliveries settled", WAIT, || async {
        let (_, rows) = statusd.get("/api/notifications").await;
        settled(&rows).then_some(rows)
    })
    .await;
    let summary: Vec<(String, String, String, u64)> = rows
        .as_array()
        .expect("a list")
        .iter()
        .map(|n| {
            let text = |key: &str| n[key].as_str().unwrap_or_default().to_string();
            (text("channel"), text("event"), text("status"), n["attempts"].as_u64().unwrap_or(0))
        })
        .collect();
    let mut sorted = summary.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            ("broken".into(), "DOWN".into(), "failed".into(), 3),
            ("broken".into(), "RECOVERY".into(), "failed".into(), 3),
            ("ops".into(), "DOWN".into(), "sent".into(), 1),
            ("ops".into(), "RECOVERY".into(), "sent".into(), 1),
        ]
    );
    let failed = rows.as_array().expect("a list").iter().find(|n| n["status"] == "failed").expect("a failed one");
    assert!(failed["lastError"].as_str().unwrap_or_default().contains("500"), "{failed}");
    assert!(failed["sentAt"].is_null());
    assert!(rows[0]["decidedAt"].as_str() >= rows[3]["decidedAt"].as_str(), "newest first: {rows}");

    // Filters, and the incident's own view.
    let (_, sent) = statusd.get("/api/notifications?channel=ops&status=sent").await;
    assert_eq!(sent.as_array().map(Vec::len), Some(2), "{sent}");
    let (_, mine) = statusd.get(&format!("/api/notifications?incident={incident}&asset=outboxed&limit=1")).await;
    assert_eq!((mine.as_array().map(Vec::len), mine[0]["incidentId"].as_str()), (Some(1), Some(incident.as_str())));
    let (status, refused) = statusd.get("/api/notifications?status=lost").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let (_, detail) = statusd.get(&format!("/api/incidents/{incident}")).await;
    let events: Vec<&str> =
        detail["notifications"].as_array().expect("notifications").iter().filter_map(|n| n["event"].as_str()).collect();
    assert_eq!(events.len(), 4, "{detail}");
    assert_eq!(&events[..2], ["DOWN", "DOWN"], "oldest first: {detail}");
    statusd.stop().await;
}

/// `maxAttempts` per channel: a channel that keeps failing is tried exactly that many times
/// (1 here, 4 there; the default is 3), then its row is `failed` with those attempts.
#[tokio::test(flavor = "multi_thread")]
async fn each_channel_tries_as_often_as_its_max_attempts_then_the_row_is_failed() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    receiver.fail("once");
    receiver.fail("four");
    let notifiers = json!({
        "notifiers": {
            "once": {"type": "webhook", "url": receiver.url("once"), "maxAttempts": 1},
            "four": {"type": "webhook", "url": receiver.url("four"), "maxAttempts": 4},
        },
        "notificationPolicy": {"onDown": ["once", "four"], "throttleSeconds": 0}
    });
    let setup = Setup::new(backend, json!([http_asset("tries", &target.url())]), notifiers).await;
    let statusd = setup.start(&[]).await;
    statusd.wait_status("tries", "up", WAIT).await;
    target.set(Mode::Error);
    let rows = eventually("both deliveries failed", WAIT, || async {
        let (_, rows) = statusd.get("/api/notifications").await;
        let list = rows.as_array()?;
        (list.len() == 2 && list.iter().all(|n| n["status"] == "failed")).then_some(rows)
    })
    .await;
    let metrics = statusd.metrics().await;
    statusd.stop().await;
    let attempts = |channel: &str| {
        rows.as_array().and_then(|r| r.iter().find(|n| n["channel"] == channel)).map(|n| n["attempts"].clone())
    };
    assert_eq!((attempts("once"), attempts("four")), (Some(json!(1)), Some(json!(4))), "{rows}");
    assert_eq!((receiver.attempts("once"), receiver.attempts("four")), (1, 4));
    let failed = "statusd_notifications_total{channel=\"four\",event=\"DOWN\",result=\"failed\"}";
    assert_eq!(crate::e2e::harness::metric(&metrics, failed), Some(1.0));
}

/// What the receiver counts: requests arrived, bodies answered, whether the next one is held.
type HoldingState = (Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<Value>>>, Arc<AtomicBool>);

/// A webhook that holds the first request it gets for good (a send under way when statusd is
/// killed) and answers every later one at once; it counts only the requests it answered.
struct HoldingReceiver {
    url: String,
    arrived: Arc<AtomicUsize>,
    answered: Arc<std::sync::Mutex<Vec<Value>>>,
    holding: Arc<AtomicBool>,
    _server: tokio::task::JoinHandle<()>,
}

impl HoldingReceiver {
    async fn start() -> HoldingReceiver {
        let arrived = Arc::new(AtomicUsize::new(0));
        let answered = Arc::new(std::sync::Mutex::new(Vec::new()));
        let holding = Arc::new(AtomicBool::new(true));
        let state = (Arc::clone(&arrived), Arc::clone(&answered), Arc::clone(&holding));
        let app = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(
                    |axum::extract::State((arrived, answered, holding)): axum::extract::State<HoldingState>,
                     axum::Json(body): axum::Json<Value>| async move {
                        arrived.fetch_add(1, Ordering::SeqCst);
                        if holding.swap(false, Ordering::SeqCst) {
                            std::future::pending::<()>().await;
                        }
                        answered.lock().expect("answered").push(body);
                        StatusCode::NO_CONTENT
                    },
                ),
            )
            .with_state(state);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("address"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HoldingReceiver { url, arrived, answered, holding, _server: server }
    }

    fn answered(&self) -> Vec<String> {
        let answered = self.answered.lock().expect("answered");
        answered.iter().map(|body| body["event"].as_str().unwrap_or_default().to_string()).collect()
    }
}

/// statusd as a process of its own, on `port`, so that it can be killed outright.
fn spawn_statusd(setup: &Setup, port: u16) -> Child {
    let mut args = setup.args(&[]);
    args.remove(0);
    let listen = args.iter().position(|arg| arg == "127.0.0.1:0").expect("the listen address");
    args[listen] = format!("127.0.0.1:{port}");
    Command::new(binary()).args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start statusd")
}

async fn get(port: u16, path: &str) -> Option<Value> {
    let response = reqwest::get(format!("http://127.0.0.1:{port}{path}")).await.ok()?;
    response.json().await.ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_send_cut_by_sigkill_goes_out_once_after_the_restart_and_a_sent_one_never_again() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let receiver = HoldingReceiver::start().await;
    let notifiers = json!({
        "notifiers": {"hook": {"type": "webhook", "url": receiver.url, "timeoutSeconds": 60}},
        "notificationPolicy": {"onDown": ["hook"], "onRecovery": ["hook"], "throttleSeconds": 0}
    });
    let setup = Setup::new(backend, json!([http_asset("killed", &target.url())]), notifiers).await;
    target.set(Mode::Error);
    let port = free_port();
    let mut first = spawn_statusd(&setup, port);

    // The DOWN is decided, written as pending, and its send is under way (held by the receiver).
    eventually("the DOWN pending in the outbox, its send under way", WAIT, || async {
        let pending = get(port, "/api/notifications?status=pending").await?;
        let written = pending.as_array().is_some_and(|rows| rows.len() == 1 && rows[0]["event"] == "DOWN");
        (written && receiver.arrived.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    assert!(receiver.answered().is_empty(), "nothing was answered before the kill");

    let port = free_port();
    let mut second = spawn_statusd(&setup, port);
    eventually("the DOWN sent after the restart", WAIT, || async {
        let sent = get(port, "/api/notifications?status=sent").await?;
        (sent.as_array().map(Vec::len) == Some(1)).then_some(())
    })
    .await;
    assert_eq!(receiver.answered(), ["DOWN"]);
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(second.id() as i32, libc::SIGTERM) }, 0);
    second.wait().expect("reaped");

    // A completed send is never repeated: a third start sends nothing until the recovery.
    let port = free_port();
    let mut third = spawn_statusd(&setup, port);
    eventually("the third statusd up and probing", WAIT, || async {
        let asset = get(port, "/api/assets/killed").await?;
        (asset["status"] == "down" && asset["lastProbe"].is_object()).then_some(())
    })
    .await;
    target.set(Mode::Ok);
    eventually("the RECOVERY", WAIT, || async { (receiver.answered().len() == 2).then_some(()) }).await;
    assert_eq!(receiver.answered(), ["DOWN", "RECOVERY"]);
    assert_eq!(receiver.arrived.load(Ordering::SeqCst), 3, "the held DOWN, its one resend, the RECOVERY");
    third.kill().expect("stop");
    third.wait().expect("reaped");
}
