//! The API answers as documented: live state fast, history paged, bad input as 400 JSON.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::time::Instant;

use crate::e2e::harness::{Mode, Setup, Target, eventually, http_asset, no_channels};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread")]
async fn an_asset_answers_while_its_probe_hangs_for_5s() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    target.set(Mode::Hang);
    let mut asset = http_asset("hanging", &target.url());
    asset["intervalSeconds"] = json!(10);
    asset["timeoutSeconds"] = json!(5);
    let setup = Setup::new(backend, json!([asset]), no_channels()).await;
    let statusd = setup.start(&[]).await;
    eventually("the probe to be hanging", WAIT * 2, || async {
        (statusd.asset("hanging").await["probing"] == true).then_some(())
    })
    .await;

    // Each answer comes while the probe still hangs (it says so): the API reads the asset's
    // checkpointed state, never waits for its actor. How fast is for the benchmarks to say.
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let asset = statusd.asset("hanging").await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(asset["probing"], true, "the probe is still running: {asset}");
    }
    let (status, assets) = statusd.get("/api/assets").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(assets[0]["probing"], true, "answered while the probe hangs: {assets}");
    eprintln!("slowest of 20 answers while the probe hangs: {slowest:?}");

    // And the hang ends as a timeout failure, 5 s after the probe started.
    let failed = eventually("the timeout", WAIT, || async {
        let asset = statusd.asset("hanging").await;
        (asset["consecutiveFailures"] == 1).then_some(asset)
    })
    .await;
    assert_eq!(failed["lastProbe"]["message"], "timeout after 5s");
    let latency = failed["lastProbe"]["latencyMs"].as_i64().expect("latency");
    assert!((5000..5500).contains(&latency), "{latency} ms");
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn history_is_newest_first_paged_and_validated() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let setup = Setup::new(backend, json!([http_asset("history", &target.url())]), no_channels()).await;
    let statusd = setup.start(&["--enable-chaos"]).await;
    statusd.wait_probes("history", 4).await;
    let events = eventually("stored events", WAIT, || async {
        let (_, events) = statusd.get("/api/assets/history/events?limit=3").await;
        (events.as_array().map(Vec::len) == Some(3)).then_some(events)
    })
    .await;
    let stamps: Vec<&str> = events.as_array().expect("list").iter().filter_map(|e| e["timestamp"].as_str()).collect();
    assert!(stamps.windows(2).all(|w| w[0] > w[1]), "newest first: {stamps:?}");
    assert_eq!(events[0]["assetId"], "history");
    assert_eq!(events[0]["success"], true);
    assert_eq!(events[0]["code"], 200);
    assert!(events[0]["latencyMs"].is_i64());

    let (_, older) = statusd.get(&format!("/api/assets/history/events?limit=2&before={}", stamps[1])).await;
    assert_eq!(older[0]["timestamp"], stamps[2], "the page after the second event starts at the third");
    let (_, since) = statusd.get(&format!("/api/assets/history/events?since={}", stamps[0])).await;
    assert!(since.as_array().is_some_and(|s| !s.is_empty() && s.len() <= 2), "{since}");

    for (query, parameter) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=abc", "limit"),
        ("limit=-1", "limit"),
        ("before=yesterday", "before"),
        ("since=2026-13-01", "since"),
    ] {
        let (status, body) = statusd.get(&format!("/api/assets/history/events?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["parameter"], parameter, "{query}: {body}");
        assert!(body["error"].is_string());
    }
    let (status, body) = statusd.get("/api/incidents?state=sometimes").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "state must be open, closed or all");
    let (status, _) = statusd.get("/api/incidents?limit=5000").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, body) = statusd.get("/api/assets/nope").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::NOT_FOUND, Some("no asset \"nope\"")));
    let (status, _) = statusd.get("/api/assets/nope/events").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = statusd.get("/api/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string());
    let response = statusd.http.delete(statusd.url("/api/assets")).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    // A body over the limit is refused from its length alone, before it is read.
    let mut raw = tokio::net::TcpStream::connect(statusd.addr).await.expect("connect");
    let request = "POST /api/debug/panic?actor=nobody HTTP/1.1\r\nhost: statusd\r\ncontent-length: 1048576\r\n\r\n";
    tokio::io::AsyncWriteExt::write_all(&mut raw, request.as_bytes()).await.expect("send");
    let mut answer = vec![0u8; 64];
    let read = tokio::io::AsyncReadExt::read(&mut raw, &mut answer).await.expect("answer");
    let status_line = String::from_utf8_lossy(&answer[..read]);
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn health_readiness_tree_and_metrics() {
    let Some(backend) = crate::backend().await else { return };
    let target = Target::start().await;
    let setup = Setup::new(
        backend,
        json!([http_asset("observed", &target.url())]),
        crate::e2e::harness::all_channels(&crate::e2e::harness::Receiver::start().await, 0),
    )
    .await;
    let statusd = setup.start(&[]).await;
    statusd.wait_probes("observed", 1).await;

    assert_eq!(statusd.get("/healthz").await, (StatusCode::OK, json!({"status": "ok"})));
    assert_eq!(statusd.get("/api/health").await, (StatusCode::OK, json!({"status": "healthy"})));
    let (status, ready) = statusd.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["checks"]["store"]["status"], "ok");
    assert_eq!(ready["checks"]["supervisor"]["status"], "ok");

    let (_, actors) = statusd.get("/api/actors").await;
    let names: Vec<&str> = actors.as_array().expect("list").iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "statusd",
            "persistence",
            "notifier:discord",
            "notifier:slack",
            "notifier:teams",
            "notifier:webhook",
            "incidents",
            "config",
            "asset:observed"
        ]
    );
    assert!(actors.as_array().expect("list").iter().all(|a| a["status"] == "running" && a["restarts"] == 0));

    let metrics = statusd.metrics().await;
    for name in [
        "statusd_probe_total{asset=\"observed\",result=\"success\"}",
        "statusd_probe_duration_seconds_bucket{asset=\"observed\"",
        "statusd_asset_up{asset=\"observed\"} 1",
        "statusd_incidents_open",
        "statusd_build_info{version=\"",
        "statusd_http_requests_total{method=\"GET\",route=\"/api/assets/{id}\",status=\"200\"}",
        "statusd_schedule_lag_seconds_bucket",
    ] {
        assert!(metrics.contains(name), "missing {name}");
    }
    assert!(!metrics.contains("route=\"/api/assets/observed\""), "raw paths must not become labels");

    // Without --enable-chaos the debug route does not exist.
    let response =
        statusd.http.post(statusd.url("/api/debug/panic?actor=asset:observed")).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    statusd.stop().await;
}
