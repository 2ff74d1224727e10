//! What the end-to-end tests run statusd against: real servers on loopback, and statusd itself
//! started the way `main` starts it, on a free port, with its own config and database.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use crate::e2e::databases::{Backend, Inspect, TestDb};

/// Waits until `check` yields a value, polling; fails the test with `what` after `within`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A loopback port that is free now, for a server a test starts later (a child process, a
/// PostgreSQL server stopped and started again). It is taken below the kernel's ephemeral range
/// (`net.ipv4.ip_local_port_range`): a port from `bind(0)` is in that range, where any outgoing
/// connection of the suite (thousands of probes) may take it as its local port, or hold it in
/// TIME_WAIT, before the server binds it, and the server then fails with "address in use".
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let low = ephemeral_low.saturating_sub(12_000).max(1024);
    let span = ephemeral_low - low;
    // Spread by process id, so that two test binaries running at once start apart (wrapping:
    // a pid may be as large as 2^22, its product past u32).
    let start = std::process::id().wrapping_mul(7919);
    for _ in 0..span {
        let candidate = low + start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        // Invariant: candidate < ephemeral_low <= 65535.
        let port = u16::try_from(candidate).expect("a port number");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {low}..{ephemeral_low}");
}

// ---------------------------------------------------------------------------------------------
// A target that can be switched between healthy, failing, hanging and closing connections.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Ok = 0,
    Error = 1,
    /// Accepts the request and never answers.
    Hang = 2,
    /// Accepts the connection and closes it without a word.
    Close = 3,
    /// Answers 200 after 400 ms.
    Slow = 4,
}

pub struct Target {
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    _server: AbortOnDrop,
}

/// A server task, ended with its owner.
pub struct AbortOnDrop(pub JoinHandle<()>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Target {
    /// A minimal HTTP/1.1 server written against the socket, so that it can misbehave in ways
    /// a framework would not let it (hang after the request, drop the connection).
    pub async fn start() -> Target {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind target");
        let addr = listener.local_addr().expect("target address");
        let mode = Arc::new(AtomicU8::new(Mode::Ok as u8));
        let server_mode = Arc::clone(&mode);
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let mode = server_mode.load(Ordering::SeqCst);
                tokio::spawn(answer(stream, mode));
            }
        });
        Target { addr, mode, _server: AbortOnDrop(server) }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    pub fn url(&self) -> String {
        format!("http://{}/health", self.addr)
    }
}

/// Reads an HTTP request's head off `stream` and answers its path; None if the peer closed or
/// failed first. Enough for the test targets, which answer every path alike.
pub async fn request_path(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    Some(String::from_utf8_lossy(&head).split_whitespace().nth(1).unwrap_or_default().to_string())
}

async fn answer(mut stream: TcpStream, mode: u8) {
    if mode == Mode::Close as u8 {
        return;
    }
    if request_path(&mut stream).await.is_none() {
        return;
    }
    let response: &[u8] = match mode {
        m if m == Mode::Hang as u8 => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
        m if m == Mode::Error as u8 => {
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\nconnection: close\r\n\r\nboom"
        }
        m if m == Mode::Slow as u8 => {
            tokio::time::sleep(Duration::from_millis(400)).await;
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
        }
        _ => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
    };
    let _ = stream.write_all(response).await;
    let _ = stream.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// A webhook receiver that records what every channel got.

#[derive(Clone, Default)]
struct Inbox {
    received: Arc<Mutex<Vec<(String, Value)>>>,
    failing: Arc<Mutex<HashSet<String>>>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    inbox: Inbox,
    _server: AbortOnDrop,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let inbox = Inbox::default();
        let app = axum::Router::new().route("/{channel}", axum::routing::post(receive)).with_state(inbox.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
        let addr = listener.local_addr().expect("receiver address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, inbox, _server: AbortOnDrop(server) }
    }

    pub fn url(&self, channel: &str) -> String {
        format!("http://{}/{channel}", self.addr)
    }

    /// Makes `channel` answer 500 from now on.
    pub fn fail(&self, channel: &str) {
        self.inbox.failing.lock().insert(channel.to_string());
    }

    /// Every body `channel` accepted, in arrival order.
    pub fn bodies(&self, channel: &str) -> Vec<Value> {
        self.inbox.received.lock().iter().filter(|(c, _)| c == channel).map(|(_, b)| b.clone()).collect()
    }

    /// How many requests `channel` got, accepted or not.
    pub fn attempts(&self, channel: &str) -> usize {
        self.inbox.received.lock().iter().filter(|(c, _)| c.as_str() == format!("{channel}#attempt")).count()
    }

    /// The events `channel` received, read from each channel's own format.
    pub fn events(&self, channel: &str) -> Vec<String> {
        self.bodies(channel).iter().map(|body| event_of(channel, body)).collect()
    }
}

async fn receive(State(inbox): State<Inbox>, UrlPath(channel): UrlPath<String>, Json(body): Json<Value>) -> StatusCode {
    inbox.received.lock().push((format!("{channel}#attempt"), Value::Null));
    if inbox.failing.lock().contains(&channel) {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    inbox.received.lock().push((channel, body));
    StatusCode::NO_CONTENT
}

/// The asset a payload is about, wherever each channel's format puts it.
pub fn asset_of(channel: &str, body: &Value) -> String {
    let text = match channel {
        "teams" => None,
        "slack" => body["blocks"][3]["elements"][0]["text"]
            .as_str()
            .and_then(|t| t.strip_prefix("asset `"))
            .and_then(|t| t.split('`').next()),
        "discord" => body["embeds"][0]["footer"]["text"].as_str().and_then(|t| t.strip_prefix("statusd · ")),
        _ => body["assetId"].as_str(),
    };
    text.unwrap_or("?").to_string()
}

/// The event name inside a payload, wherever each channel's format puts it.
pub fn event_of(channel: &str, body: &Value) -> String {
    let text = match channel {
        "teams" => body["attachments"][0]["content"]["body"][1]["facts"][1]["value"].as_str(),
        "slack" => body["blocks"][1]["fields"][1]["text"].as_str().and_then(|t| t.strip_prefix("*Status*\n")),
        "discord" => body["embeds"][0]["fields"][1]["value"].as_str(),
        _ => body["event"].as_str(),
    };
    text.unwrap_or("?").to_string()
}

// ---------------------------------------------------------------------------------------------
// statusd itself.

pub const CHANNELS: [&str; 4] = ["teams", "slack", "discord", "webhook"];

/// The config files and database of one statusd, which may be started more than once.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub db: TestDb,
}

impl Setup {
    pub async fn new(backend: Backend, assets: Value, notifiers: Value) -> Setup {
        Setup::on(TestDb::create(backend).await, assets, notifiers)
    }

    /// A setup on a database the test made itself.
    pub fn on(db: TestDb, assets: Value, notifiers: Value) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let setup = Setup { dir, db };
        setup.write_manifest(assets);
        std::fs::write(setup.path("notifiers.json"), notifiers.to_string()).expect("write notifiers");
        std::fs::write(setup.path("statusd.toml"), "").expect("write settings");
        setup
    }

    /// Rewrites the manifest in place, as `echo > file` does.
    pub fn write_manifest(&self, assets: Value) {
        std::fs::write(self.path("manifest.json"), json!({"assets": assets}).to_string()).expect("write manifest");
    }

    /// Writes the manifest the way editors save: a new file renamed over the old one.
    pub fn replace_manifest(&self, assets: Value) {
        let temporary = self.path(".manifest.json.swp");
        std::fs::write(&temporary, json!({"assets": assets}).to_string()).expect("write manifest");
        std::fs::rename(&temporary, self.path("manifest.json")).expect("rename manifest");
    }

    pub fn write_notifiers(&self, notifiers: Value) {
        std::fs::write(self.path("notifiers.json"), notifiers.to_string()).expect("write notifiers");
    }

    pub fn write_settings(&self, toml: &str) {
        std::fs::write(self.path("statusd.toml"), toml).expect("write settings");
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn db_url(&self) -> String {
        self.db.url.clone()
    }

    pub fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "statusd".into(),
            "--config".into(),
            self.path("statusd.toml").display().to_string(),
            "--manifest".into(),
            self.path("manifest.json").display().to_string(),
            "--notifiers".into(),
            self.path("notifiers.json").display().to_string(),
            "--db".into(),
            self.db_url(),
            "--listen".into(),
            "127.0.0.1:0".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    pub async fn start(&self, extra: &[&str]) -> Statusd {
        init_logs();
        let (_, settings) = statusd::Settings::from_args(self.args(extra), &BTreeMap::new()).expect("valid settings");
        let app = statusd::App::build(settings).await.expect("statusd starts");
        let addr = app.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.serve(async {
            let _ = stopped.await;
        }));
        // Idle connections are dropped before statusd's 10 s header-read timeout closes them:
        // otherwise a request may go out on a connection the server is closing at that moment
        // (hyper's `IncompleteMessage`).
        let http = reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(5)).build().expect("HTTP client");
        Statusd { addr, http, stop: Some(stop), task }
    }

    /// Reads the database directly, as an operator would.
    pub async fn inspect(&self) -> Inspect {
        self.db.inspect().await
    }
}

fn init_logs() {
    let level = std::env::var("STATUSD_TEST_LOG").unwrap_or_else(|_| "error".into());
    // The writer runs for the whole test process: its guard is never dropped.
    if let Ok(Some(guard)) = statusd::init_logging(statusd::LogFormat::Pretty, &level) {
        std::mem::forget(guard);
    }
}

/// One asset of the manifest, with fast test timings.
pub fn http_asset(id: &str, url: &str) -> Value {
    json!({
        "id": id,
        "assetType": "http",
        "name": format!("Asset {id}"),
        "address": url,
        "intervalSeconds": 1,
        "timeoutSeconds": 1,
        "retryIntervalSeconds": 1,
        "expectedStatusCodes": [200],
    })
}

/// All four channel types, posting to the receiver, on DOWN and RECOVERY.
pub fn all_channels(receiver: &Receiver, throttle_seconds: u64) -> Value {
    json!({
        "notifiers": {
            "teams": {"type": "teams", "webhookUrl": receiver.url("teams")},
            "slack": {"type": "slack", "webhookUrl": receiver.url("slack")},
            "discord": {"type": "discord", "webhookUrl": receiver.url("discord")},
            "webhook": {"type": "webhook", "url": receiver.url("webhook")},
        },
        "notificationPolicy": {
            "onDown": CHANNELS,
            "onRecovery": CHANNELS,
            "throttleSeconds": throttle_seconds,
        }
    })
}

pub fn no_channels() -> Value {
    json!({"notifiers": {}})
}

/// A running statusd.
pub struct Statusd {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), statusd::Error>>,
}

impl Statusd {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self.http.get(self.url(path)).send().await.expect("request");
        let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn post(&self, path: &str) -> (StatusCode, Value) {
        let response = self.http.post(self.url(path)).send().await.expect("request");
        let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn asset(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/api/assets/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Waits until the asset exists and its live status is `status`.
    pub async fn wait_status(&self, id: &str, status: &str, within: Duration) -> Value {
        eventually(&format!("{id} to be {status}"), within, || async {
            let (code, asset) = self.get(&format!("/api/assets/{id}")).await;
            (code == StatusCode::OK && asset["status"] == status).then_some(asset)
        })
        .await
    }

    /// Waits until the asset has been probed `more` more times than now.
    pub async fn wait_probes(&self, id: &str, more: u32) {
        let stamp = |asset: Value| asset["lastProbe"]["timestamp"].as_str().map(str::to_string);
        let mut last = stamp(self.asset(id).await);
        for i in 1..=more {
            last = eventually(&format!("probe {i} of {more} more of {id}"), Duration::from_secs(10), || {
                let last = last.clone();
                async move {
                    let now = stamp(self.asset(id).await);
                    (now != last).then_some(now)
                }
            })
            .await;
        }
    }

    /// Waits until `/api/incidents?state=` lists `count` incidents (the store is written a
    /// moment after the actors decide), and returns them.
    pub async fn wait_incidents(&self, state: &str, count: usize) -> Value {
        eventually(&format!("{count} {state} incidents"), Duration::from_secs(10), || async {
            let (_, incidents) = self.get(&format!("/api/incidents?state={state}")).await;
            (incidents.as_array().map(Vec::len) == Some(count)).then_some(incidents)
        })
        .await
    }

    pub async fn metrics(&self) -> String {
        self.http.get(self.url("/metrics")).send().await.expect("metrics").text().await.expect("metrics text")
    }

    /// Stops statusd as SIGTERM would, and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
        let result = result.expect("statusd stops within 10 s").expect("statusd task");
        result.expect("statusd stops cleanly");
    }
}

/// How many probes of the asset this process has counted (success and failure), read from
/// the process-wide metrics recorder: after statusd stopped, that is every result it accepted.
pub fn probes_counted(asset_id: &str) -> i64 {
    let text = statusd::metrics_handle().expect("metrics").render();
    ["success", "failure"]
        .iter()
        .map(|result| {
            metric(&text, &format!("statusd_probe_total{{asset=\"{asset_id}\",result=\"{result}\"}}")).unwrap_or(0.0)
        })
        .sum::<f64>() as i64
}

/// A metric's value from the Prometheus text, for one exact label set.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_statusd"))
}
