//! What the SLA report costs with 1,000 assets: `GET /api/sla` (the report over every asset)
//! and `GET /metrics`, which computes the same report for
//! `statusd_sla_error_budget_remaining_ratio` at every scrape.
//!
//! `cargo bench --bench sla_budget`. 1,000 assets (STATUSD_SLA_ASSETS) on SQLite, each with 10
//! closed incidents this month and 20 inconclusive results written straight into the database,
//! plus one open incident each (their targets do not answer), and a weekly maintenance window
//! over all of them. Then each route is timed over HTTP, as a scraper calls it.

mod common;

use std::time::{Duration, Instant};

use chrono::{Datelike, Utc};
use serde_json::json;

const REQUESTS: usize = 50;

#[tokio::main]
async fn main() {
    let assets: usize = std::env::var("STATUSD_SLA_ASSETS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let mut manifest: Vec<serde_json::Value> = (0..assets).map(|i| common::idle_asset(i, 3600)).collect();
    for asset in &mut manifest {
        asset["metadata"] = json!({"team": "bench"});
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("manifest.json"),
        json!({"assets": manifest, "maintenance": [
            {"id": "weekly", "match": {"team": "bench"}, "cron": "0 2 * * SUN", "durationMinutes": 60, "timezone": "UTC"}
        ]})
        .to_string(),
    )
    .expect("manifest");
    std::fs::write(dir.path().join("notifiers.json"), "{}").expect("notifiers");
    std::fs::write(dir.path().join("statusd.toml"), "").expect("settings");
    let child = common::Child::start(dir.path(), &[]).await;
    let http = reqwest::Client::new();
    let base = child.base.clone();

    // Seed this month's history beside what statusd writes itself.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join("statusd.db").display()))
        .await
        .expect("the database");
    let now = Utc::now();
    let month_start = now.date_naive().with_day(1).expect("the 1st").and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let elapsed = (now - month_start).num_milliseconds().max(1000);
    let mut tx = pool.begin().await.expect("begin");
    for i in 0..assets {
        let asset = format!("asset-{i}");
        for k in 0..10i64 {
            let start = month_start.timestamp_millis() + elapsed * k / 10;
            sqlx::query(
                "INSERT INTO incidents (id, asset_id, severity, summary, started_at, ended_at, close_reason) VALUES ($1, $2, 'INITIAL', 'bench', $3, $4, 'recovered')",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(&asset)
            .bind(start)
            .bind(start + 60_000)
            .execute(&mut *tx)
            .await
            .expect("incident");
        }
        for k in 0..20i64 {
            let at = month_start.timestamp_millis() + elapsed * k / 20 + 1;
            sqlx::query(
                "INSERT INTO probe_events (id, asset_id, timestamp, success, latency_ms, mark) VALUES ($1, $2, $3, FALSE, 1, 'inconclusive')",
            )
            .bind(uuid::Uuid::now_v7().as_bytes().to_vec())
            .bind(&asset)
            .bind(at)
            .execute(&mut *tx)
            .await
            .expect("event");
        }
    }
    tx.commit().await.expect("commit");

    let hour_ago = (now - chrono::TimeDelta::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let last_hour = format!("/api/sla?from={hour_ago}");
    for (route, path) in [
        ("GET /api/sla (this month)", "/api/sla"),
        ("GET /api/sla (the last hour: few rows)", last_hour.as_str()),
        ("GET /metrics (with the budgets)", "/metrics"),
        ("GET /api/assets (baseline: every asset's live state)", "/api/assets"),
    ] {
        let mut samples = Vec::with_capacity(REQUESTS);
        let mut bytes = 0;
        for _ in 0..REQUESTS {
            let started = Instant::now();
            let response = http.get(format!("{base}{path}")).send().await.expect("request");
            assert!(response.status().is_success(), "{route}: {}", response.status());
            bytes = response.bytes().await.expect("body").len();
            samples.push(started.elapsed());
        }
        println!("{route} with {assets} assets: {}   ({bytes} bytes)", common::summary(samples));
    }
    let cpu = common::cpu_seconds(child.pid());
    println!("statusd CPU so far: {cpu:.2} s");
    child.stop(Duration::from_secs(10));
}
