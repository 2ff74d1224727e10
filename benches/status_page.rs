//! The status page stays fast and light: `GET /` with 1,000 assets and 90 days of hourly
//! rollups (2.16 million rows) must render in under 50 ms (p95) and weigh under 150 KB
//! compressed.
//!
//! `cargo bench --bench status_page`. A fresh SQLite file is filled with 1,000 assets, 90 days
//! of hourly rollups (an hour in a thousand with failures) and 300 incidents, statusd is
//! started on it (in-process, release build) with the 1,000 assets probing a local HTTP server
//! every 10 s, and once every asset is up, `GET /` is timed over HTTP as a browser asks for it
//! (brotli, then gzip, then uncompressed), along with `GET /api/status`.
//! `STATUSD_BENCH_REQUESTS` sets the number of requests per encoding (default 200).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DurationRound, TimeDelta, Utc};
use serde_json::{Value, json};

const ASSETS: i64 = 1000;
const DAYS: i64 = 90;

async fn fill(url: &str) {
    let store = statusd::Store::connect(url).await.expect("migrate");
    store.close().await;
    let pool = sqlx::SqlitePool::connect(url).await.expect("fixture");
    let started = Instant::now();
    sqlx::query(
        "WITH RECURSIVE a(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM a WHERE i < ?1 - 1)
         INSERT INTO assets (id, name, address, asset_type, created_at, updated_at)
         SELECT 'asset-' || i, 'Asset ' || i, 'http://localhost/', 'http', 0, 0 FROM a",
    )
    .bind(ASSETS)
    .execute(&pool)
    .await
    .expect("assets");
    let now = Utc::now();
    let first_hour = (now - TimeDelta::days(DAYS)).duration_trunc(TimeDelta::hours(1)).expect("an hour");
    let hours = DAYS * 24;
    // Every asset-hour up to the previous one: 60 probes, an hour in about a thousand with 30
    // failures, latencies between 20 and 200 ms.
    sqlx::query(
        "WITH RECURSIVE g(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM g WHERE n < ?1 * ?2 - 1)
         INSERT INTO probe_rollups_hourly (asset_id, hour, probes, successes, latency_sum, latency_min, latency_max, le_100)
         SELECT 'asset-' || (n % ?1), ?3 + (n / ?1) * 3600000, 60,
                CASE WHEN ((n % ?1) * 7919 + (n / ?1) * 104729) % 997 = 0 THEN 30 ELSE 60 END,
                60 * (20 + ((n % ?1) * 31 + (n / ?1) * 17) % 180), 20, 200, 60
         FROM g",
    )
    .bind(ASSETS)
    .bind(hours)
    .bind(first_hour.timestamp_millis())
    .execute(&pool)
    .await
    .expect("rollups");
    // 300 closed incidents spread over the 90 days, and their summaries.
    for i in 0..300i64 {
        let started_at = now - TimeDelta::minutes(i * 431 % (DAYS * 24 * 60 - 60));
        sqlx::query(
            "INSERT INTO incidents (id, asset_id, severity, summary, started_at, ended_at, close_reason)
             VALUES (?1, ?2, 'critical', ?3, ?4, ?5, 'recovered')",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(format!("asset-{}", i * 37 % ASSETS))
        .bind(format!("Asset {} is down: HTTP 503 (expected 200)", i * 37 % ASSETS))
        .bind(started_at.timestamp_millis())
        .bind((started_at + TimeDelta::minutes(12)).timestamp_millis())
        .execute(&pool)
        .await
        .expect("incident");
    }
    sqlx::query("ANALYZE").execute(&pool).await.expect("analyze");
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM probe_rollups_hourly").fetch_one(&pool).await.expect("count");
    println!("fixture: {rows} hourly rollups, 300 incidents, in {:.1} s", started.elapsed().as_secs_f64());
    pool.close().await;
}

fn quantiles(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
    format!("p50 {:6.2} ms   p95 {:6.2} ms   max {:6.2} ms", at(0.5), at(0.95), at(1.0))
}

#[tokio::main]
async fn main() {
    let requests: usize = std::env::var("STATUSD_BENCH_REQUESTS").ok().and_then(|n| n.parse().ok()).unwrap_or(200);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name).to_str().expect("utf-8").to_string();
    let url = format!("sqlite://{}", path("statusd.db"));
    fill(&url).await;

    let target = format!("{}/health", common::target().await);
    let assets: Vec<Value> = (0..ASSETS)
        .map(|i| {
            json!({"id": format!("asset-{i}"), "name": format!("Asset {i}"), "assetType": "http", "address": target,
                   "intervalSeconds": 10, "timeoutSeconds": 2, "metadata": {"group": format!("Group {}", i % 10)}})
        })
        .collect();
    common::write_manifest(std::path::Path::new(&path("manifest.json")), &assets);
    std::fs::write(path("notifiers.json"), "{}").expect("notifiers");
    std::fs::write(path("statusd.toml"), "[retention]\ndays = 3650\nrollup_days = 3650\n").expect("settings");
    let args = [
        "statusd",
        "--config",
        &path("statusd.toml"),
        "--manifest",
        &path("manifest.json"),
        "--notifiers",
        &path("notifiers.json"),
        "--db",
        &url,
        "--listen",
        "127.0.0.1:0",
        "--log-level",
        "error",
    ];
    let (_, settings) = statusd::Settings::from_args(args, &BTreeMap::new()).expect("settings");
    let app = statusd::App::build(settings).await.expect("statusd");
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(async {
        let _ = stopped.await;
    }));

    // Raw bytes: the client must not decompress, so that sizes are what travels.
    let client = reqwest::Client::builder().no_gzip().no_brotli().no_deflate().build().expect("client");
    let waited = Instant::now();
    loop {
        let assets: Vec<Value> =
            client.get(format!("{base}/api/assets")).send().await.expect("assets").json().await.expect("json");
        let up = assets.iter().filter(|asset| asset["status"] == "up").count();
        if up == ASSETS as usize {
            break;
        }
        assert!(waited.elapsed() < Duration::from_secs(60), "only {up} assets up after a minute");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("all {ASSETS} assets up after {:.1} s", waited.elapsed().as_secs_f64());

    let cold = Instant::now();
    let response = client.get(format!("{base}/")).send().await.expect("page");
    assert!(response.status().is_success(), "{}", response.status());
    let raw = response.bytes().await.expect("body").len();
    println!("first GET / (history computed from the store): {:.1} ms", cold.elapsed().as_secs_f64() * 1000.0);

    let mut sizes = Vec::new();
    for encoding in ["br", "gzip", "identity"] {
        let mut timings = Vec::with_capacity(requests);
        let mut size = 0;
        for _ in 0..requests {
            let started = Instant::now();
            let response =
                client.get(format!("{base}/")).header("accept-encoding", encoding).send().await.expect("page");
            assert!(response.status().is_success());
            let body = response.bytes().await.expect("body");
            timings.push(started.elapsed());
            size = body.len();
        }
        println!(
            "GET / {encoding:<8} {}   {:>8.1} KB   ({requests} requests)",
            quantiles(timings),
            size as f64 / 1000.0
        );
        sizes.push((encoding, size));
    }
    let mut timings = Vec::with_capacity(requests);
    let mut size = 0;
    for _ in 0..requests {
        let started = Instant::now();
        let response =
            client.get(format!("{base}/api/status")).header("accept-encoding", "br").send().await.expect("status");
        assert!(response.status().is_success());
        size = response.bytes().await.expect("body").len();
        timings.push(started.elapsed());
    }
    println!("GET /api/status br {}   {:>8.1} KB   ({requests} requests)", quantiles(timings), size as f64 / 1000.0);
    println!("page uncompressed: {:.1} KB", raw as f64 / 1000.0);

    // A minute and more of a browser's pace: the page changes when the minute it shows turns and
    // when the history is computed again (each minute, in the background), so some requests
    // render and compress it anew.
    let seconds: u64 = std::env::var("STATUSD_BENCH_SPAN_SECONDS").ok().and_then(|n| n.parse().ok()).unwrap_or(75);
    let mut timings = Vec::new();
    let span = Instant::now();
    while span.elapsed() < Duration::from_secs(seconds) {
        let started = Instant::now();
        let response = client.get(format!("{base}/")).header("accept-encoding", "br").send().await.expect("page");
        assert!(response.status().is_success());
        let _ = response.bytes().await.expect("body");
        timings.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let count = timings.len();
    let mut sorted = timings.clone();
    sorted.sort();
    let slow = sorted.iter().rev().take(5).map(|d| format!("{:.1}", d.as_secs_f64() * 1000.0)).collect::<Vec<_>>();
    println!(
        "GET / br over {seconds} s, every 100 ms: {}   ({count} requests; slowest {} ms)",
        quantiles(timings),
        slow.join(", ")
    );
    let _ = stop.send(());
    let _ = server.await;
}
