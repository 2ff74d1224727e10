//! History reads stay fast: `GET /api/assets/{id}/events` with 10 million probe events stored.
//!
//! `cargo bench --bench events_query`. The fixture (1,000 assets × 10,000 events, one a minute
//! over the last week) is generated once per backend and kept for later runs: a PostgreSQL
//! database `statusd_bench_events_10m` and `target/bench-fixtures/events-10m.db`. Then statusd
//! is started on it and the route is timed over HTTP, like a user would call it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;

const ASSETS: i64 = 1000;
const PER_ASSET: i64 = 10_000;
const REQUESTS: usize = 2000;

async fn fixture_postgres(admin_url: &str) -> Option<String> {
    let admin = sqlx::PgPool::connect(admin_url).await.ok()?;
    let name = "statusd_bench_events_10m";
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&admin)
        .await
        .expect("look up the fixture");
    let (base, query) = admin_url.split_once('?').map_or((admin_url, ""), |(b, q)| (b, q));
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    let url = if query.is_empty() { format!("{server}/{name}") } else { format!("{server}/{name}?{query}") };
    if !exists {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.expect("create");
    }
    let store = statusd::Store::connect(&url).await.expect("migrate the fixture");
    store.close().await;
    let pool = sqlx::PgPool::connect(&url).await.expect("fixture");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM probe_events").fetch_one(&pool).await.expect("count");
    if count != ASSETS * PER_ASSET {
        println!("generating the PostgreSQL fixture (10M events, a few minutes, once)...");
        let started = Instant::now();
        sqlx::query("TRUNCATE probe_events, incidents, probe_rollups_hourly, rollup_pending, assets")
            .execute(&pool)
            .await
            .expect("truncate");
        sqlx::query(
            "INSERT INTO assets (id, name, address, asset_type)
             SELECT 'asset-' || a, 'Asset ' || a, 'http://localhost/', 'http' FROM generate_series(0, $1 - 1) a",
        )
        .bind(ASSETS)
        .execute(&pool)
        .await
        .expect("assets");
        // In time order, with UUIDv7-shaped ids of the probe time, as statusd writes them.
        sqlx::query(
            "INSERT INTO probe_events (id, asset_id, timestamp, success, latency_ms, code, message)
             SELECT (lpad(to_hex((extract(epoch FROM ts) * 1000)::bigint), 12, '0') || '7' ||
                     lpad(to_hex(n % 4096), 3, '0') || '8' || lpad(to_hex(n), 15, '0'))::uuid,
                    'asset-' || (n % $1), ts, n % 50 <> 0, 20 + n % 200, CASE WHEN n % 50 = 0 THEN 503 ELSE 200 END,
                    CASE WHEN n % 50 = 0 THEN 'HTTP 503 (expected 200)' END
             FROM (SELECT n, now() - interval '7 days' + (n / $1) * interval '1 minute' + (n % $1) * interval '1 millisecond' AS ts
                   FROM generate_series(0, $1 * $2 - 1) n) generated",
        )
        .bind(ASSETS)
        .bind(PER_ASSET)
        .execute(&pool)
        .await
        .expect("events");
        sqlx::query("ANALYZE").execute(&pool).await.expect("analyze");
        println!("  generated in {:.0} s", started.elapsed().as_secs_f64());
    }
    pool.close().await;
    admin.close().await;
    Some(url)
}

async fn fixture_sqlite() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-fixtures");
    std::fs::create_dir_all(&dir).expect("fixture directory");
    let url = format!("sqlite://{}", dir.join("events-10m.db").display());
    let store = statusd::Store::connect(&url).await.expect("migrate the fixture");
    store.close().await;
    let pool = sqlx::SqlitePool::connect(&url).await.expect("fixture");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM probe_events").fetch_one(&pool).await.expect("count");
    if count != ASSETS * PER_ASSET {
        println!("generating the SQLite fixture (10M events, a few minutes, once)...");
        let started = Instant::now();
        for table in ["probe_events", "incidents", "probe_rollups_hourly", "rollup_pending", "assets"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}"))).execute(&pool).await.expect("empty");
        }
        sqlx::query(
            "WITH RECURSIVE a(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM a WHERE i < ?1 - 1)
             INSERT INTO assets (id, name, address, asset_type, created_at, updated_at)
             SELECT 'asset-' || i, 'Asset ' || i, 'http://localhost/', 'http', 0, 0 FROM a",
        )
        .bind(ASSETS)
        .execute(&pool)
        .await
        .expect("assets");
        let start_ms = (Utc::now() - chrono::TimeDelta::days(7)).timestamp_millis();
        sqlx::query(
            "WITH RECURSIVE g(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM g WHERE n < ?1 * ?2 - 1)
             INSERT INTO probe_events (id, asset_id, timestamp, success, latency_ms, code, message)
             SELECT unhex(printf('%012x7%03x8%015x', ?3 + (n / ?1) * 60000 + (n % ?1), n % 4096, n)),
                    'asset-' || (n % ?1), ?3 + (n / ?1) * 60000 + (n % ?1), n % 50 <> 0, 20 + n % 200,
                    CASE WHEN n % 50 = 0 THEN 503 ELSE 200 END,
                    CASE WHEN n % 50 = 0 THEN 'HTTP 503 (expected 200)' END
             FROM g",
        )
        .bind(ASSETS)
        .bind(PER_ASSET)
        .bind(start_ms)
        .execute(&pool)
        .await
        .expect("events");
        sqlx::query("ANALYZE").execute(&pool).await.expect("analyze");
        println!("  generated in {:.0} s", started.elapsed().as_secs_f64());
    }
    pool.close().await;
    url
}

struct Timings(Vec<Duration>);

impl Timings {
    fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort();
        sorted[((sorted.len() - 1) as f64 * q).round() as usize]
    }
}

async fn measure(name: &str, url: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = dir.path().join("manifest.json");
    let notifiers = dir.path().join("notifiers.json");
    let settings_file = dir.path().join("statusd.toml");
    // One asset of the fixture is configured (and probes nothing that exists); the others are
    // history of removed assets, still readable. Retention must not prune the fixture.
    std::fs::write(
        &manifest,
        json!({"assets": [{"id": "asset-0", "assetType": "http", "address": "http://127.0.0.1:9/", "intervalSeconds": 3600}]})
            .to_string(),
    )
    .expect("manifest");
    std::fs::write(&notifiers, "{}").expect("notifiers");
    std::fs::write(&settings_file, "[retention]\ndays = 3650\nrollup_days = 3650\n").expect("settings");
    let args = [
        "statusd".to_string(),
        "--config".into(),
        settings_file.display().to_string(),
        "--manifest".into(),
        manifest.display().to_string(),
        "--notifiers".into(),
        notifiers.display().to_string(),
        "--db".into(),
        url.into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--log-level".into(),
        "error".into(),
    ];
    let (_, settings) = statusd::Settings::from_args(args, &BTreeMap::new()).expect("settings");
    let app = statusd::App::build(settings).await.expect("statusd");
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let middle = (Utc::now() - chrono::TimeDelta::days(3)).to_rfc3339();
    let shapes = [
        ("newest 100", String::from("limit=100")),
        ("newest 1000", String::from("limit=1000")),
        ("100 before 3 days ago", format!("limit=100&before={}", urlencode(&middle))),
    ];
    for (shape, query) in shapes {
        let mut timings = Timings(Vec::with_capacity(REQUESTS));
        for i in 0..REQUESTS {
            let asset = (i * 7919) % ASSETS as usize;
            let started = Instant::now();
            let response =
                client.get(format!("{base}/api/assets/asset-{asset}/events?{query}")).send().await.expect("request");
            assert!(response.status().is_success());
            let events: Vec<serde_json::Value> = response.json().await.expect("events");
            timings.0.push(started.elapsed());
            assert!(!events.is_empty());
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{name:<10} {shape:<22} p50 {:>6.2} ms   p99 {:>6.2} ms   max {:>6.2} ms   ({REQUESTS} requests)",
            ms(timings.quantile(0.5)),
            ms(timings.quantile(0.99)),
            ms(timings.quantile(1.0))
        );
    }
    let _ = stop.send(());
    let _ = server.await;
}

fn urlencode(text: &str) -> String {
    text.replace(':', "%3A").replace('+', "%2B")
}

#[tokio::main]
async fn main() {
    let only = std::env::var("STATUSD_BENCH_ONLY").unwrap_or_default();
    if only != "postgres" {
        let url = fixture_sqlite().await;
        measure("SQLite", &url).await;
    }
    if only == "sqlite" {
        return;
    }
    let admin_url = std::env::var("STATUSD_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into());
    match fixture_postgres(&admin_url).await {
        Some(url) => measure("PostgreSQL", &url).await,
        None => println!("PostgreSQL skipped: {admin_url} is unreachable"),
    }
}
