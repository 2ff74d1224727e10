//! How the HTTP probe ends its connections (its other behaviour is tested end to end, in
//! `tests/e2e/http_probe.rs`).

use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{Value, json};
use statusd::ProbeContext;
use tokio::net::TcpListener;

use super::common::{asset, time_wait_sides};

/// A probe that does not keep its connection asks the server to close it (`Connection: close`,
/// RFC 9112 section 9.6), so the server closes first and the TIME_WAIT is the server's: statusd
/// holds no local port for 60 s per probe, which would cap probes of one address:port at about
/// 470 a second off loopback. A kept connection sends no such header, and an asset's own
/// `Connection` header is sent instead of statusd's.
#[tokio::test]
async fn a_probe_without_keep_alive_asks_the_server_to_close_and_keeps_no_port_waiting() {
    use axum::routing::get;
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let recorder = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/",
        get(move |headers: axum::http::HeaderMap| async move {
            let connection = headers.get("connection").and_then(|v| v.to_str().ok()).unwrap_or("-");
            recorder.lock().push(connection.to_string());
            "ok"
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let port: u16 = base.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    let context = ProbeContext::new().expect("clients");
    let asset = |extra: Value| {
        let mut fields = json!({"assetType": "http", "address": format!("{base}/"), "timeoutSeconds": 2});
        for (key, value) in extra.as_object().into_iter().flatten() {
            fields[key] = value.clone();
        }
        asset(fields)
    };

    let fresh = asset(json!({}));
    const PROBES: usize = 20;
    for _ in 0..PROBES {
        let result = fresh.check(&context).await;
        assert!(result.success, "{result:?}");
    }
    assert_eq!(*seen.lock(), vec!["close"; PROBES]);
    // Each connection reaches TIME_WAIT on the side that closed it first; wait until all have.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let (server, client) = loop {
        let (server, client) = time_wait_sides(port);
        if server + client >= PROBES || tokio::time::Instant::now() > deadline {
            break (server, client);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    // A close that crosses the server's on the wire leaves both sides waiting: rare, allowed.
    assert!(server >= PROBES && client <= PROBES / 4, "TIME_WAIT: server's side {server}, statusd's {client}");

    seen.lock().clear();
    assert!(asset(json!({"keepAlive": true})).check(&context).await.success);
    assert!(asset(json!({"headers": {"Connection": "keep-alive"}})).check(&context).await.success);
    assert_eq!(*seen.lock(), vec!["-", "keep-alive"], "a kept connection, then the asset's own header");
}
