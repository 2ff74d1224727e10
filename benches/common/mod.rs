//! What the benchmarks share: a statusd started in-process on a generated config.

// Each benchmark binary uses part of this.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

/// A config directory and a running statusd on it (SQLite in the same directory).
pub struct Bench {
    pub dir: tempfile::TempDir,
    pub supervisor: ractor::ActorRef<statusd::actors::supervisor::SupervisorMsg>,
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
        let (_, settings) = statusd::settings::Settings::from_args(args, &BTreeMap::new()).expect("settings");
        let _ = statusd::telemetry::init_logging(settings.log_format, &settings.log_level);
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
