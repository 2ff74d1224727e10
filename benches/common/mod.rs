//! What the benchmarks share: a statusd started in-process on a generated config.

// Each benchmark binary uses part of this.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

/// A config directory and a running statusd on it (SQLite in the same directory).
pub struct Bench {
    pub dir: tempfile::TempDir,
    pub supervisor: ractor::ActorRef<statusd::SupervisorMsg>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<Result<(), statusd::Error>>,
}

impl Bench {
    /// Starts statusd with these assets, no notifiers, and extra settings (TOML).
    pub async fn start(assets: &[Value], settings: &str, extra_args: &[&str]) -> Bench {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = |name: &str| -> PathBuf { dir.path().join(name) };
        write_manifest(&path("manifest.json"), assets);
        std::fs::write(path("notifiers.json"), "{}").expect("notifiers");
        std::fs::write(path("statusd.toml"), settings).expect("settings");
        let mut args: Vec<String> = [
            "statusd",
            "--config",
            path("statusd.toml").to_str().expect("utf-8"),
            "--manifest",
            path("manifest.json").to_str().expect("utf-8"),
            "--notifiers",
            path("notifiers.json").to_str().expect("utf-8"),
            "--listen",
            "127.0.0.1:0",
            "--log-level",
            "error",
        ]
        .map(String::from)
        .to_vec();
        args.push("--db".into());
        args.push(format!("sqlite://{}", path("statusd.db").display()));
        args.extend(extra_args.iter().map(|a| a.to_string()));
        let (_, settings) = statusd::Settings::from_args(args, &BTreeMap::new()).expect("settings");
        if let Ok(Some(guard)) = statusd::init_logging(settings.log_format, &settings.log_level) {
            // The writer runs for the whole bench process.
            std::mem::forget(guard);
        }
        let app = statusd::App::build(settings).await.expect("statusd");
        let supervisor = app.supervisor();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.serve(async {
            let _ = stopped.await;
        }));
        Bench { dir, supervisor, stop: Some(stop), server }
    }

    pub fn manifest(&self) -> PathBuf {
        self.dir.path().join("manifest.json")
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.server).await;
    }
}

pub fn write_manifest(path: &std::path::Path, assets: &[Value]) {
    std::fs::write(path, json!({"assets": assets}).to_string()).expect("manifest");
}

/// A local HTTP server that answers every path 200 `ok`, for assets to probe: `http://ADDR`.
pub async fn target() -> String {
    let app = axum::Router::new().fallback(|| async { "ok" });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind target");
    let addr = listener.local_addr().expect("target address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// An asset that probes nothing reachable, rarely: for benchmarks of the tree itself.
pub fn idle_asset(i: usize, interval: u64) -> Value {
    json!({"id": format!("asset-{i}"), "assetType": "http", "address": "http://127.0.0.1:9/", "intervalSeconds": interval, "timeoutSeconds": 1})
}

/// p50, p99 and max of durations, in ms.
pub fn summary(mut samples: Vec<std::time::Duration>) -> String {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
    format!("p50 {:.3} ms   p99 {:.3} ms   max {:.3} ms   ({} samples)", at(0.5), at(0.99), at(1.0), samples.len())
}

/// statusd's release binary, run as a child process on a config directory, so that what is
/// measured (CPU, memory) is statusd's alone and not the load generator's.
pub struct Child {
    pub process: std::process::Child,
    /// `http://127.0.0.1:PORT`, statusd's API.
    pub base: String,
}

impl Child {
    /// Starts `binary` (STATUSD_BENCH_BIN, else this build's statusd) on `dir`'s
    /// `statusd.toml`, `manifest.json` and `notifiers.json`, with a SQLite file in `dir`, and
    /// waits until `/healthz` answers.
    pub async fn start(dir: &std::path::Path, extra_args: &[&str]) -> Child {
        let path = |name: &str| dir.join(name).to_str().expect("utf-8").to_string();
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
        let binary = std::env::var("STATUSD_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_statusd").to_string());
        let process = std::process::Command::new(binary)
            .args(["--config", &path("statusd.toml")])
            .args(["--manifest", &path("manifest.json")])
            .args(["--notifiers", &path("notifiers.json")])
            .args(["--db", &format!("sqlite://{}", path("statusd.db"))])
            .args(["--listen", &format!("127.0.0.1:{port}"), "--log-level", "error"])
            .args(extra_args)
            .env("RUST_BACKTRACE", "0")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start statusd");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        while http.get(format!("{base}/healthz")).send().await.is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Child { process, base }
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// SIGTERM, and SIGKILL if it has not exited within `grace`; says how it ended.
    pub fn stop(mut self, grace: std::time::Duration) -> String {
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
        unsafe { libc::kill(self.process.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.process.try_wait() {
                return status.to_string();
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
        format!("still running {grace:?} after SIGTERM, killed")
    }
}

/// CPU time (user + system) a process has used so far, in seconds, from `/proc/PID/stat`.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of stat(5), 11 and 12 after the name.
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) as f64 / per_second
}

/// The highest resident memory a process reached so far (VmHWM), in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix(" kB")?.trim().parse().ok()).unwrap_or(0)
}
