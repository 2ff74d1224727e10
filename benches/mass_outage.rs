//! Mass outage: N HTTP assets, all healthy, then every target answers 500 at the same moment
//! (a network partition, a DNS outage: the moment a monitor exists for), then all come back.
//! Measures, from outside as a user would, how long until the last DOWN and the last RECOVERY
//! reach a webhook, that each arrives exactly once, and how `GET /api/assets/{id}` answers
//! meanwhile. `cargo bench --bench mass_outage` runs N = 1,000, 10,000 and 50,000;
//! `cargo bench --bench mass_outage -- --assets 10000` (or STATUSD_MASS_ASSETS=10000; a comma
//! list for several) runs only those.
//!
//! Each asset: `intervalSeconds` 10 (STATUSD_MASS_INTERVAL), `failureThreshold` 2,
//! `retryIntervalSeconds` 1; one webhook channel on DOWN and RECOVERY, the default policy.
//! statusd runs as its own process (the release binary; STATUSD_BENCH_BIN for another build)
//! on a fresh SQLite file. The targets are one small HTTP server answering every path, spread
//! over 127.0.0.1..127.0.0.K (one address per 5,000 assets) so that fresh connections do not
//! run out of ephemeral ports. A phase that has not seen every event after
//! STATUSD_MASS_WAIT_SECONDS (default 240) is reported as incomplete.
//!
//! The goal (issue 11): every DOWN within interval + retry + 10 s of the flip, every RECOVERY
//! within the same of the way back, none twice, and the API under 1 s at p99 throughout.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde_json::{Value, json};

const DEFAULT_SIZES: [usize; 3] = [1_000, 10_000, 50_000];
const ASSETS_PER_ADDRESS: usize = 5_000;
/// After a phase is complete, how long to keep listening for duplicates.
const LINGER: Duration = Duration::from_secs(3);
/// Between two `GET /api/assets/{id}` samples.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `--assets N[,M…]` (cargo passes `--bench` too, which is ignored), else STATUSD_MASS_ASSETS.
fn sizes() -> Vec<usize> {
    let args: Vec<String> = std::env::args().collect();
    let listed = args
        .iter()
        .position(|a| a == "--assets")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| args.iter().find_map(|a| a.strip_prefix("--assets=").map(str::to_string)))
        .or_else(|| std::env::var("STATUSD_MASS_ASSETS").ok());
    match listed {
        Some(list) => list.split(',').map(|n| n.trim().replace('_', "").parse().expect("--assets: a number")).collect(),
        None => DEFAULT_SIZES.to_vec(),
    }
}

/// What the webhook received: per asset, when each DOWN and each RECOVERY arrived, and the
/// first one's `timestamp` with its arrival (wall clock). That timestamp is the first failed
/// probe for a DOWN (the incident's start; the DOWN is decided on the second, a retry interval
/// later) and the recovering probe for a RECOVERY: it tells probing time from the rest.
#[derive(Default)]
struct Received {
    down: HashMap<String, Vec<Instant>>,
    recovery: HashMap<String, Vec<Instant>>,
    down_decided: HashMap<String, (DateTime<Utc>, DateTime<Utc>)>,
    recovery_decided: HashMap<String, (DateTime<Utc>, DateTime<Utc>)>,
    other: usize,
}

type Inbox = Arc<Mutex<Received>>;

async fn receive(State(inbox): State<Inbox>, body: axum::Json<Value>) -> StatusCode {
    let now = Instant::now();
    let arrived = Utc::now();
    let asset = body["assetId"].as_str().unwrap_or("?").to_string();
    let decided = body["timestamp"].as_str().and_then(|t| t.parse::<DateTime<Utc>>().ok()).unwrap_or(arrived);
    let mut inbox = inbox.lock();
    match body["event"].as_str() {
        Some("DOWN") => {
            inbox.down_decided.entry(asset.clone()).or_insert((decided, arrived));
            inbox.down.entry(asset).or_default().push(now);
        }
        Some("RECOVERY") => {
            inbox.recovery_decided.entry(asset.clone()).or_insert((decided, arrived));
            inbox.recovery.entry(asset).or_default().push(now);
        }
        _ => inbox.other += 1,
    }
    StatusCode::NO_CONTENT
}

/// Serves `app` on `address` (port 0), returning the port.
async fn serve(address: &str, app: axum::Router) -> u16 {
    let listener = tokio::net::TcpListener::bind((address, 0)).await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

/// `GET /api/assets/{id}` latencies (an error counts with the time it took), sampled until
/// `stop` is set, tagged with the phase they fell in.
async fn sample_api(base: String, assets: usize, phase: Arc<Mutex<&'static str>>, stop: Arc<AtomicBool>) -> Samples {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let mut rng = fastrand::Rng::with_seed(11);
    let mut samples = Samples::default();
    while !stop.load(Ordering::Relaxed) {
        let id = rng.usize(..assets);
        let started = Instant::now();
        let ok = http.get(format!("{base}/api/assets/mass-{id}")).send().await.is_ok_and(|r| r.status().is_success());
        let phase = *phase.lock();
        samples.by_phase.entry(phase).or_default().push(started.elapsed());
        if !ok {
            *samples.errors.entry(phase).or_default() += 1;
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    samples
}

#[derive(Default)]
struct Samples {
    by_phase: HashMap<&'static str, Vec<Duration>>,
    errors: HashMap<&'static str, usize>,
}

/// Waits until `done` says the phase is complete or `limit` has passed; true if complete.
async fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

/// Each event's `timestamp` after `since` (median, last), and how long each took from its
/// timestamp to its arrival (median, max), in seconds.
fn split(decided: &HashMap<String, (DateTime<Utc>, DateTime<Utc>)>, since: DateTime<Utc>) -> [f64; 4] {
    let seconds = |d: chrono::TimeDelta| d.num_milliseconds() as f64 / 1000.0;
    let mut detect: Vec<f64> = decided.values().map(|(at, _)| seconds(*at - since)).collect();
    let mut deliver: Vec<f64> = decided.values().map(|(at, arrived)| seconds(*arrived - *at)).collect();
    detect.sort_by(f64::total_cmp);
    deliver.sort_by(f64::total_cmp);
    let median = |v: &[f64]| v.get(v.len() / 2).copied().unwrap_or(f64::NAN);
    let last = |v: &[f64]| v.last().copied().unwrap_or(f64::NAN);
    [median(&detect), last(&detect), median(&deliver), last(&deliver)]
}

/// First arrival per asset of one event, as seconds after `since`: (median, last, count).
fn arrivals(events: &HashMap<String, Vec<Instant>>, since: Instant) -> (f64, f64, usize) {
    let mut firsts: Vec<f64> = events
        .values()
        .filter_map(|times| times.first())
        .map(|t| t.saturating_duration_since(since).as_secs_f64())
        .collect();
    firsts.sort_by(f64::total_cmp);
    let median = firsts.get(firsts.len() / 2).copied().unwrap_or(f64::NAN);
    (median, firsts.last().copied().unwrap_or(f64::NAN), firsts.len())
}

async fn run(assets: usize, interval: u64, wait: Duration) {
    // The targets: every path, 200 until `failing` is set, then 500.
    let failing = Arc::new(AtomicBool::new(false));
    let target = {
        let failing = Arc::clone(&failing);
        axum::Router::new().fallback(move || {
            let failing = failing.load(Ordering::Relaxed);
            async move { if failing { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK } }
        })
    };
    let addresses = assets.div_ceil(ASSETS_PER_ADDRESS).max(1);
    let mut targets = Vec::new();
    for k in 1..=addresses {
        let address = format!("127.0.0.{k}");
        let port = serve(&address, target.clone()).await;
        targets.push(format!("http://{address}:{port}"));
    }
    let inbox = Inbox::default();
    let hook = serve(
        "127.0.0.1",
        axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(Arc::clone(&inbox)),
    )
    .await;

    let dir = tempfile::tempdir().expect("tempdir");
    let manifest: Vec<Value> = (0..assets)
        .map(|i| {
            json!({
                "id": format!("mass-{i}"),
                "assetType": "http",
                "name": format!("Mass {i}"),
                "address": format!("{}/health/{i}", targets[i % targets.len()]),
                "intervalSeconds": interval,
                "timeoutSeconds": 5,
                "failureThreshold": 2,
                "retryIntervalSeconds": 1,
            })
        })
        .collect();
    common::write_manifest(&dir.path().join("manifest.json"), &manifest);
    let notifiers = json!({
        "notifiers": {"hook": {"type": "webhook", "url": format!("http://127.0.0.1:{hook}/hook")}},
        "notificationPolicy": {"onDown": ["hook"], "onRecovery": ["hook"]},
    });
    std::fs::write(dir.path().join("notifiers.json"), notifiers.to_string()).expect("notifiers");
    std::fs::write(dir.path().join("statusd.toml"), "").expect("settings");

    let started = Instant::now();
    let statusd = common::Child::start(dir.path(), &[]).await;
    let pid = statusd.pid();
    let http = reqwest::Client::new();
    // Every asset probed and up (first probes are spread over the interval).
    let all_up = {
        let deadline = Instant::now() + Duration::from_secs(interval * 3) + wait;
        let mut up = 0;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let Ok(response) = http.get(format!("{}/api/assets", statusd.base)).send().await else { continue };
            let Ok(list) = response.json::<Vec<Value>>().await else { continue };
            up = list.iter().filter(|a| a["status"] == "up").count();
            if up == assets {
                break;
            }
        }
        up
    };
    let ready_after = started.elapsed();

    let phase = Arc::new(Mutex::new("outage"));
    let stop_sampling = Arc::new(AtomicBool::new(false));
    let sampler =
        tokio::spawn(sample_api(statusd.base.clone(), assets, Arc::clone(&phase), Arc::clone(&stop_sampling)));
    let cpu_before = common::cpu_seconds(pid);

    let (flip, flip_wall) = (Instant::now(), Utc::now());
    failing.store(true, Ordering::Relaxed);
    let downs_complete = wait_for(wait, || inbox.lock().down.len() >= assets).await;
    tokio::time::sleep(LINGER).await;

    *phase.lock() = "recovery";
    let (back, back_wall) = (Instant::now(), Utc::now());
    failing.store(false, Ordering::Relaxed);
    let recoveries_complete = wait_for(wait, || inbox.lock().recovery.len() >= assets).await;
    tokio::time::sleep(LINGER).await;

    stop_sampling.store(true, Ordering::Relaxed);
    let samples = sampler.await.expect("sampler");
    let cpu_outage = common::cpu_seconds(pid) - cpu_before;
    let cpu_total = common::cpu_seconds(pid);
    let peak_rss = common::peak_rss_kib(pid);

    let received = inbox.lock();
    let (down_median, down_last, downs) = arrivals(&received.down, flip);
    let (recovery_median, recovery_last, recoveries) = arrivals(&received.recovery, back);
    let duplicates = |events: &HashMap<String, Vec<Instant>>| events.values().map(|t| t.len() - 1).sum::<usize>();
    let out_of_order = received
        .recovery
        .iter()
        .filter(|(asset, times)| received.down.get(*asset).is_none_or(|downs| downs[0] > times[0]))
        .count();
    let goal = (interval + 1 + 10) as f64;
    let verdict = |complete: bool, last: f64| match (complete, last <= goal) {
        (false, _) => "INCOMPLETE",
        (true, true) => "within the goal",
        (true, false) => "LATE",
    };

    println!(
        "mass outage: {assets} assets at {interval} s (failureThreshold 2, retry 1 s), SQLite, one webhook; goal: every event within {goal:.0} s"
    );
    println!("  all {all_up}/{assets} up {:.1} s after start", ready_after.as_secs_f64());
    println!(
        "  DOWN:     {downs}/{assets} received, median {down_median:.1} s, last {down_last:.1} s after the flip ({}); duplicates {}",
        verdict(downs_complete, down_last),
        duplicates(&received.down)
    );
    println!(
        "  RECOVERY: {recoveries}/{assets} received, median {recovery_median:.1} s, last {recovery_last:.1} s after the way back ({}); duplicates {}; before their DOWN {out_of_order}",
        verdict(recoveries_complete, recovery_last),
        duplicates(&received.recovery)
    );
    for (event, decided, since) in
        [("DOWN", &received.down_decided, flip_wall), ("RECOVERY", &received.recovery_decided, back_wall)]
    {
        let [detect_median, detect_last, deliver_median, deliver_max] = split(decided, since);
        println!(
            "    {event:<8}  its timestamp (first failed / recovering probe): median {detect_median:.1} s, last {detect_last:.1} s; from there to arrival: median {deliver_median:.1} s, max {deliver_max:.1} s"
        );
    }
    if received.other > 0 {
        println!("  other events: {}", received.other);
    }
    for phase in ["outage", "recovery"] {
        if let Some(latencies) = samples.by_phase.get(phase) {
            println!(
                "  GET /api/assets/{{id}} during the {phase}: {}, {} errors",
                common::summary(latencies.clone()),
                samples.errors.get(phase).copied().unwrap_or(0)
            );
        }
    }
    println!(
        "  statusd CPU: {cpu_outage:.1} s from the flip to the end, {cpu_total:.1} s in all; peak RSS {} MiB",
        peak_rss / 1024
    );
    drop(received);
    println!("  exit: {}", statusd.stop(Duration::from_secs(20)));
}

#[tokio::main]
async fn main() {
    let interval = env_number("STATUSD_MASS_INTERVAL", 10);
    let wait = Duration::from_secs(env_number("STATUSD_MASS_WAIT_SECONDS", 240));
    for assets in sizes() {
        run(assets, interval, wait).await;
    }
}
