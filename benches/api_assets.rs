//! What answering `GET /api/assets` costs statusd: its CPU time per page of 100 assets (and per
//! `GET /api/assets/{id}`), read from `/proc` while a client asks one request after another,
//! the way a dashboard polls (and the load tool's API sampler, 20 pages a second).
//!
//! `cargo bench --bench api_assets`. statusd runs as its own process (the release binary;
//! STATUSD_BENCH_BIN for another build, so that two builds can be run alternately) with 1,000
//! HTTP assets (`intervalSeconds` 60) probing a local server, each with metadata as a real
//! manifest has. Once every asset has a `lastProbe` (so that each view is complete), statusd's
//! CPU is read over 3 s without requests (the probing still going on, about 17 a second) and
//! that rate is taken off what the requests' stretch used. STATUSD_BENCH_REQUESTS sets the
//! number of requests of each kind (default 4,000).

mod common;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ASSETS: usize = 1000;
const PAGE: usize = 100;

/// statusd's CPU time per request over `requests` requests, `idle` (CPU-seconds per second
/// without requests) taken off, in µs; and the wall time per request.
async fn measure(
    statusd: &common::Child,
    http: &reqwest::Client,
    idle: f64,
    requests: usize,
    next: impl Fn(&Value) -> String,
) -> (f64, f64) {
    let mut path = next(&Value::Null);
    let cpu = common::cpu_seconds(statusd.pid());
    let started = Instant::now();
    for _ in 0..requests {
        let answer: Value = http
            .get(format!("{}{path}", statusd.base))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("an answer")
            .json()
            .await
            .expect("JSON");
        path = next(&answer);
    }
    let wall = started.elapsed().as_secs_f64();
    let used = common::cpu_seconds(statusd.pid()) - cpu - idle * wall;
    (used / requests as f64 * 1e6, wall / requests as f64 * 1e6)
}

#[tokio::main]
async fn main() {
    let requests: usize = std::env::var("STATUSD_BENCH_REQUESTS").ok().and_then(|n| n.parse().ok()).unwrap_or(4000);
    let target = common::target().await;
    let assets: Vec<Value> = (0..ASSETS)
        .map(|i| {
            json!({
                "id": format!("asset-{i}"), "name": format!("Asset {i}"), "assetType": "http",
                "address": format!("{target}/a/{i}"), "intervalSeconds": 60, "timeoutSeconds": 5,
                "expectedStatusCodes": [200], "metadata": {"env": "prod", "team": format!("team-{}", i % 7)},
            })
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    common::write_manifest(&dir.path().join("manifest.json"), &assets);
    std::fs::write(dir.path().join("notifiers.json"), "{}").expect("notifiers");
    std::fs::write(dir.path().join("statusd.toml"), "[metrics]\nper_asset = \"summary\"\n").expect("settings");
    let statusd = common::Child::start(dir.path(), &[]).await;
    let http = reqwest::Client::new();

    // Every asset's first probe is spread over its interval.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let all: Value = match http.get(format!("{}/api/assets?limit=1000", statusd.base)).send().await {
            Ok(answer) => answer.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        let probed = all["assets"].as_array().map_or(0, |a| a.iter().filter(|v| v["lastProbe"].is_object()).count());
        if probed == ASSETS {
            break;
        }
        assert!(Instant::now() < deadline, "only {probed} of {ASSETS} assets probed after 90 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let cpu = common::cpu_seconds(statusd.pid());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = (common::cpu_seconds(statusd.pid()) - cpu) / 3.0;
    println!("statusd without requests: {:.1} ms of CPU per second (probing)", idle * 1000.0);

    // Pages of 100 in id order, from the first again after the last.
    let (cpu, wall) = measure(&statusd, &http, idle, requests, |page| match page["nextCursor"].as_str() {
        Some(cursor) => format!("/api/assets?limit={PAGE}&cursor={cursor}"),
        None => format!("/api/assets?limit={PAGE}"),
    })
    .await;
    println!(
        "GET /api/assets?limit={PAGE}: {cpu:.1} µs of statusd's CPU per page, {wall:.0} µs per request ({requests} requests)"
    );
    let (cpu, wall) = measure(&statusd, &http, idle, requests, |_| "/api/assets/asset-17".to_string()).await;
    println!(
        "GET /api/assets/{{id}}: {cpu:.1} µs of statusd's CPU per request, {wall:.0} µs per request ({requests} requests)"
    );
    println!("statusd: {}", statusd.stop(Duration::from_secs(10)));
}
