//! Soak: 1,000 assets probed every second for a long time, with a reload every 30 s, a panic
//! injected into a random actor every second and an outage of every target every 120 s, while
//! the resident memory of the statusd process is sampled. `STATUSD_SOAK_SECONDS=600 cargo bench
//! --bench soak` (default 600 s); STATUSD_SOAK_RELOAD_SECONDS and STATUSD_SOAK_OUTAGE_SECONDS set
//! the time between reloads and between outages (0: none).
//!
//! An outage lasts 10 s: the target holds every request past the probes' timeout, so all 1,000
//! assets fail at once, open incidents and recover together; the bursts (timeouts, reconnects,
//! incident writes) are what a monitor lives through, and what raises a heap's high-water mark.
//!
//! statusd runs as its own process (the release binary); the target it probes is served from
//! this one, so the memory measured is statusd's alone. STATUSD_SOAK_PANICS=0 and
//! STATUSD_SOAK_RELOADS=0 leave out the panics or the reloads, to see what costs what;
//! STATUSD_SOAK_BIN runs another statusd binary (a saved build), to compare two side by side.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ASSETS: usize = 1000;
const OUTAGE: Duration = Duration::from_secs(10);

/// Resident memory in KiB: total, then its anonymous (heap, stacks), file-backed and shared parts.
fn rss_kib(pid: u32) -> Option<[u64; 4]> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field =
        |name: &str| status.lines().find_map(|l| l.strip_prefix(name)?.trim().strip_suffix(" kB")?.trim().parse().ok());
    Some([field("VmRSS:")?, field("RssAnon:")?, field("RssFile:")?, field("RssShmem:")?])
}

/// Threads and open file descriptors: resources a leak would show before memory does.
fn threads_and_fds(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let threads = status.lines().find_map(|l| l.strip_prefix("Threads:")?.trim().parse().ok()).unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (threads, fds)
}

fn manifest(target: &str, round: usize) -> Value {
    let assets: Vec<Value> = (0..ASSETS)
        .map(|i| {
            // Each reload changes 50 assets' names: applied as updates, the rest untouched.
            let changed = (i / 50) % 20 == round % 20;
            json!({
                "id": format!("soak-{i}"),
                "assetType": "http",
                "name": if changed { format!("Soak {i} (round {round})") } else { format!("Soak {i}") },
                "address": target,
                "intervalSeconds": 1,
                "timeoutSeconds": 1,
            })
        })
        .collect();
    json!({"assets": assets})
}

fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::var("STATUSD_SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(600);
    let with_panics = std::env::var("STATUSD_SOAK_PANICS").map_or(true, |v| v != "0");
    let with_reloads = std::env::var("STATUSD_SOAK_RELOADS").map_or(true, |v| v != "0");
    let reload_every: u64 =
        std::env::var("STATUSD_SOAK_RELOAD_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(30).max(1);
    let outage_every: u64 =
        std::env::var("STATUSD_SOAK_OUTAGE_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(120);
    let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let target_url = format!("http://{}/health", target.local_addr().expect("addr"));
    let target_down = Arc::new(AtomicBool::new(false));
    let down = target_down.clone();
    tokio::spawn(async move {
        let app = axum::Router::new().route(
            "/health",
            axum::routing::get(move || {
                let down = down.clone();
                async move {
                    if down.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                    "ok"
                }
            }),
        );
        let _ = axum::serve(target, app).await;
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("manifest.json"), manifest(&target_url, 0).to_string()).expect("manifest");
    std::fs::write(path("notifiers.json"), "{}").expect("notifiers");
    std::fs::write(path("statusd.toml"), "[restart]\nmax_restarts = 1000000\n").expect("settings");
    // STATUSD_SOAK_DB: a database URL instead of a fresh SQLite file (e.g. an empty PostgreSQL
    // database), to tell the store's memory from the rest.
    let db = std::env::var("STATUSD_SOAK_DB").unwrap_or_else(|_| format!("sqlite://{}", path("statusd.db").display()));
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let base = format!("http://127.0.0.1:{port}");
    let binary = std::env::var("STATUSD_SOAK_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_statusd").to_string());
    let mut child = Command::new(binary)
        .args(["--config", path("statusd.toml").to_str().expect("utf-8")])
        .args(["--manifest", path("manifest.json").to_str().expect("utf-8")])
        .args(["--notifiers", path("notifiers.json").to_str().expect("utf-8")])
        .args(["--db", &db])
        .args(["--listen", &format!("127.0.0.1:{port}"), "--log-level", "error", "--enable-chaos"])
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .spawn()
        .expect("start statusd");
    let pid = child.id();
    let http = reqwest::Client::new();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let started = Instant::now();
    let mut rng = fastrand::Rng::with_seed(11);
    let (mut panics, mut reloads, mut outages) = (0u64, 0usize, 0u64);
    let mut samples: Vec<(u64, [u64; 4])> = Vec::new();
    let mut next_sample = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(seconds) {
        let elapsed = started.elapsed();
        if elapsed >= next_sample {
            if let Some(rss) = rss_kib(pid) {
                samples.push((elapsed.as_secs(), rss));
            }
            next_sample += Duration::from_secs(10);
        }
        if outage_every > 0 {
            let phase = elapsed.as_secs() % outage_every;
            let down = elapsed.as_secs() >= outage_every && phase < OUTAGE.as_secs();
            if down && !target_down.swap(true, Ordering::Relaxed) {
                outages += 1;
            }
            if !down {
                target_down.store(false, Ordering::Relaxed);
            }
        }
        if with_reloads && elapsed.as_secs() / reload_every > reloads as u64 {
            reloads += 1;
            let temporary = path(".manifest.json.new");
            std::fs::write(&temporary, manifest(&target_url, reloads).to_string()).expect("manifest");
            std::fs::rename(&temporary, path("manifest.json")).expect("rename");
        }
        if with_panics
            && let Ok(response) = http.get(format!("{base}/api/actors")).send().await
            && let Ok(actors) = response.json::<Vec<Value>>().await
        {
            let names: Vec<&str> = actors
                .iter()
                .filter(|a| a["status"] == "running" && a["kind"] != "supervisor")
                .filter_map(|a| a["name"].as_str())
                .collect();
            if let Some(name) = rng.choice(names)
                && http
                    .post(format!("{base}/api/debug/panic?actor={name}"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            {
                panics += 1;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let metrics = http.get(format!("{base}/metrics")).send().await.expect("metrics").text().await.expect("text");
    let (threads, fds) = threads_and_fds(pid);
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait");

    let at =
        |second: u64| samples.iter().find(|(s, _)| *s >= second).or(samples.last()).map_or([0; 4], |(_, kib)| *kib);
    let (start, end) = (at(60), samples.last().map_or([0; 4], |(_, kib)| *kib));
    let max = samples.iter().map(|(_, kib)| kib[0]).max().unwrap_or(0);
    let probes = metric_sum(&metrics, "statusd_probe_total");
    let failures: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("statusd_probe_total") && l.contains("result=\"failure\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    println!(
        "soak: {ASSETS} assets at 1 s for {seconds} s, {reloads} reloads, {panics} panics injected, {outages} outages, on {}",
        db.split(':').next().unwrap_or("?")
    );
    println!("  RSS after 60 s: {} MiB   at the end: {} MiB   max: {} MiB", start[0] / 1024, end[0] / 1024, max / 1024);
    println!("  RSS samples (s, MiB): {:?}", samples.iter().map(|(s, k)| (*s, k[0] / 1024)).collect::<Vec<_>>());
    let parts = |kib: [u64; 4]| format!("{} / {} / {}", kib[1] / 1024, kib[2] / 1024, kib[3] / 1024);
    println!("  anonymous / file / shared (MiB): after 60 s {}   at the end {}", parts(start), parts(end));
    println!("  probes: {probes:.0} ({:.0}/s), failed: {failures:.0}", probes / seconds as f64);
    println!("  restarts counted: {:.0}", metric_sum(&metrics, "statusd_actor_restarts_total"));
    println!("  reloads counted: {:.0}", metric_sum(&metrics, "statusd_config_reloads_total{result=\"success\"}"));
    println!("  at the end: {threads} threads, {fds} open file descriptors");
    println!("  exit: {status}");
}
