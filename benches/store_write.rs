//! Sustained write throughput: how many probe results per second each backend takes.
//!
//! `cargo bench --bench store_write` (set STATUSD_BENCH_POSTGRES_URL for a server other than
//! the local one; STATUSD_BENCH_ONLY=sqlite|postgres for one backend). PostgreSQL is measured
//! in plain TCP and over TLS (sqlx 0.9.0 does not set TCP_NODELAY, so over TLS a write whose
//! payload spans several TLS records waits ~40 ms for a delayed ACK: sqlx issue 4335). Two
//! paths are measured on a fresh database each:
//! - `Store::write` alone, with the batch sizes the Persistence actor uses;
//! - the Persistence actor end to end: results sent as messages as fast as one producer can,
//!   timed until the last one is committed (rollups included, as in production).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use ractor::Actor;
use serde_json::json;
use statusd::AssetConfig;
use statusd::ProbeResult;
use statusd::Store;
use statusd::{Backlog, Persistence, PersistenceArgs};
use statusd::{Directory, PersistenceSettings, RetentionSettings, Services};
use uuid::Uuid;

const ASSETS: usize = 1000;

fn assets() -> Vec<std::sync::Arc<AssetConfig>> {
    (0..ASSETS)
        .map(|i| {
            serde_json::from_value(
                json!({"id": format!("asset-{i}"), "assetType": "http", "address": "http://localhost/"}),
            )
            .expect("asset")
        })
        .collect()
}

/// Results as a busy statusd makes them: every asset in turn, one in twenty failing.
fn results(n: usize) -> Vec<ProbeResult> {
    let start = Utc::now();
    (0..n)
        .map(|i| {
            let failed = i % 20 == 0;
            ProbeResult {
                id: Uuid::now_v7(),
                asset_id: format!("asset-{}", i % ASSETS),
                timestamp: start + TimeDelta::milliseconds(i as i64),
                success: !failed,
                latency_ms: (i % 300) as i64,
                code: Some(if failed { 503 } else { 200 }),
                message: failed.then(|| "HTTP 503 (expected 200)".to_string()),
                mark: None,
                detail: Default::default(),
            }
        })
        .collect()
}

async fn direct(store: &Store, batch: usize, total: usize) -> f64 {
    let results = results(total);
    let started = Instant::now();
    for chunk in results.chunks(batch) {
        store.write(&[], chunk).await.expect("write");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

async fn through_the_actor(store: &Store, total: usize) -> f64 {
    let backlog = Arc::new(Backlog::new(total));
    let settings = PersistenceSettings {
        // The defaults.
        batch_size: 5000,
        flush_interval_ms: 1000,
        max_buffered: None,
        connect_timeout_seconds: 30,
        write_stall_seconds: Some(3),
    };
    let directory = Directory::new(Arc::clone(&backlog), settings.batch_size);
    let args = PersistenceArgs {
        store: store.clone(),
        services: Arc::new(Services::new(directory, 1, settings).expect("services")),
        settings,
        retention: RetentionSettings { days: 30, rollup_days: 400, interval_seconds: 3600, batch: 5000 },
        backlog: Arc::clone(&backlog),
    };
    let (actor, handle) = Actor::spawn(None, Persistence, args).await.expect("spawn");
    let results = results(total);
    let started = Instant::now();
    // As asset actors hand results over: into the backlog, waking the actor for each batch.
    for result in results {
        if backlog.accept(result) == 500 {
            backlog.wake();
        }
    }
    while backlog.stats().written < total as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    actor.stop(None);
    let _ = handle.await;
    rate
}

async fn run(name: &str, url: &str, total: usize) {
    let store = Store::connect(url).await.expect("connect");
    store.sync_assets(&assets(), true).await.expect("assets");
    // Warm up: first writes pay for caches and statement preparation.
    direct(&store, 500, 5_000).await;
    for batch in [500, 5000] {
        let rate = direct(&store, batch, total).await;
        println!("{name:<10} Store::write, batches of {batch:>4}     {rate:>9.0} results/s");
    }
    let rate = through_the_actor(&store, total).await;
    println!("{name:<10} Persistence actor, end to end    {rate:>9.0} results/s  ({total} results)");
    store.close().await;
}

#[tokio::main]
async fn main() {
    // STATUSD_BENCH_ONLY=sqlite|postgres runs one backend.
    let only = std::env::var("STATUSD_BENCH_ONLY").unwrap_or_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
    if only != "postgres" {
        run("SQLite", &sqlite, 200_000).await;
    }
    if only == "sqlite" {
        return;
    }

    let admin_url = std::env::var("STATUSD_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let Ok(admin) = sqlx::PgPool::connect(&admin_url).await else {
        println!("PostgreSQL  skipped: {admin_url} is unreachable");
        return;
    };
    let (base, query) = admin_url.split_once('?').map_or((admin_url.as_str(), ""), |(b, q)| (b, q));
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    for (label, sslmode) in [("PG plain", "disable"), ("PG TLS", "require")] {
        let name = format!("statusd_bench_{}", Uuid::now_v7().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.expect("create");
        let params = if query.is_empty() { format!("sslmode={sslmode}") } else { format!("{query}&sslmode={sslmode}") };
        let url = format!("{server}/{name}?{params}");
        match Store::connect(&url).await {
            Ok(store) => {
                store.close().await;
                run(label, &url, 500_000).await;
            }
            Err(error) => println!("{label:<10} skipped: {error}"),
        }
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")))
            .execute(&admin)
            .await
            .expect("drop");
    }
}
