//! Retention while running: old raw events go in small batches, probing goes on, and the
//! hourly rollups keep the long history that the uptime route reads.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::json;
use statusd::AssetConfig;
use statusd::ProbeResult;
use statusd::Store;
use uuid::Uuid;

use crate::e2e::harness::{Setup, Target, eventually, http_asset, no_channels};

const OLD: i64 = 1200;

#[tokio::test(flavor = "multi_thread")]
async fn old_events_are_pruned_in_batches_while_probing_goes_on_and_rollups_stay() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let asset = http_asset("aged", &target.url());
    let setup = Setup::new(backend, json!([asset.clone()]), no_channels()).await;
    std::fs::write(setup.path("statusd.toml"), "[retention]\ndays = 30\ninterval_seconds = 1\nbatch = 100\n")
        .expect("settings");

    // Forty days ago, this asset was probed 1,200 times, 1,100 of them successfully.
    let store = Store::connect(&setup.db_url()).await.expect("store");
    let config: AssetConfig = serde_json::from_value(asset).expect("asset");
    store.sync_assets(&[std::sync::Arc::new(config)], true).await.expect("sync");
    let start = Utc::now() - TimeDelta::days(40);
    let old: Vec<ProbeResult> = (0..OLD)
        .map(|i| {
            let at = start + TimeDelta::seconds(i * 60);
            let stamp = uuid::Timestamp::from_unix(uuid::NoContext, at.timestamp() as u64, at.timestamp_subsec_nanos());
            ProbeResult {
                id: Uuid::new_v7(stamp),
                asset_id: "aged".into(),
                timestamp: at,
                success: i % 12 != 0,
                latency_ms: 30,
                code: Some(200),
                message: None,
                mark: None,
                detail: Default::default(),
            }
        })
        .collect();
    store.write(&[], &old).await.expect("old history");
    store.close().await;

    // Counted before statusd starts: under load its first prunes may finish before a look.
    let db = setup.inspect().await;
    let old_events = "SELECT count(*) FROM probe_events WHERE asset_id = $1 AND latency_ms = 30";
    assert_eq!(db.count(old_events, "aged").await, OLD);
    let statusd = setup.start(&[]).await;
    eventually("the old events to be pruned", Duration::from_secs(20), || async {
        (db.count(old_events, "aged").await == 0).then_some(())
    })
    .await;
    statusd.wait_probes("aged", 2).await;
    eventually("new results stored meanwhile", Duration::from_secs(10), || async {
        (db.count("SELECT count(*) FROM probe_events WHERE asset_id = $1", "aged").await >= 2).then_some(())
    })
    .await;

    // The rollups remember what the raw events no longer show.
    let (status, uptime) = statusd.get("/api/assets/aged/uptime?days=60").await;
    assert_eq!(status, StatusCode::OK, "{uptime}");
    let probes = uptime["probes"].as_i64().expect("probes");
    let successes = uptime["successes"].as_i64().expect("successes");
    assert!(probes > OLD, "{uptime}");
    assert_eq!(probes - successes, OLD / 12, "the old failures are all there: {uptime}");
    assert!(uptime["latencyMs"]["max"].as_i64() >= Some(30), "{uptime}");
    let (_, day) = statusd.get("/api/assets/aged/uptime?hours=24").await;
    assert!(day["probes"].as_i64() < Some(10), "the last day holds only the new probes: {day}");
    assert_eq!(day["uptimePercent"], 100.0);

    for (query, parameter) in
        [("days=0", "days"), ("days=abc", "days"), ("hours=1000000", "hours"), ("days=1&hours=1", "hours")]
    {
        let (status, body) = statusd.get(&format!("/api/assets/aged/uptime?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["parameter"], parameter, "{query}: {body}");
    }
    assert_eq!(statusd.get("/api/assets/nobody/uptime").await.0, StatusCode::NOT_FOUND);
    db.close().await;
    statusd.stop().await;
}
