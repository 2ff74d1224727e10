//! The HTTP probe against real servers misbehaving in every way it claims to recognise.

use std::time::Duration;

use serde_json::{Value, json};
use statusd::config::AssetConfig;
use statusd::probe::{self, ProbeContext, ProbeResult};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::e2e::harness::{Mode, Target};

async fn probe_once(address: &str, extra: Value) -> ProbeResult {
    let mut asset =
        json!({"id": "p", "assetType": "http", "address": address, "intervalSeconds": 5, "timeoutSeconds": 1});
    for (key, value) in extra.as_object().into_iter().flatten() {
        asset[key] = value.clone();
    }
    let asset: AssetConfig = serde_json::from_value(asset).expect("asset");
    let context = ProbeContext::new().expect("clients");
    probe::run(&asset, &context).await
}

#[tokio::test]
async fn healthy_when_the_status_is_expected() {
    let target = Target::start().await;
    let result = probe_once(&target.url(), json!({})).await;
    assert!(result.success, "{result:?}");
    assert_eq!((result.code, result.message.as_deref()), (Some(200), None));
    assert!(result.latency_ms < 1000);
    // Without expectedStatusCodes anything below 400 is healthy; with them only they are.
    let result = probe_once(&target.url(), json!({"expectedStatusCodes": [204]})).await;
    assert_eq!((result.success, result.message.as_deref()), (false, Some("HTTP 200 (expected 204)")));
    target.set(Mode::Error);
    let result = probe_once(&target.url(), json!({})).await;
    assert_eq!(
        (result.success, result.code, result.message.as_deref()),
        (false, Some(500), Some("HTTP 500 (expected < 400)"))
    );
}

#[tokio::test]
async fn names_a_timeout() {
    let target = Target::start().await;
    target.set(Mode::Hang);
    let result = probe_once(&target.url(), json!({})).await;
    assert_eq!((result.success, result.message.as_deref()), (false, Some("timeout after 1s")));
    assert!((1000..1300).contains(&result.latency_ms), "{}", result.latency_ms);
}

#[tokio::test]
async fn names_a_refused_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let result = probe_once(&format!("http://{addr}/"), json!({})).await;
    assert_eq!((result.success, result.code, result.message.as_deref()), (false, None, Some("connection refused")));
}

#[tokio::test]
async fn names_a_dns_error() {
    // .invalid never resolves (RFC 6761).
    let result = probe_once("http://statusd-test.invalid/", json!({})).await;
    assert!(!result.success);
    let message = result.message.expect("message");
    assert!(message.starts_with("DNS error: "), "{message}");
}

#[tokio::test]
async fn names_a_tls_error() {
    // A plain-text answer to a TLS ClientHello fails the handshake.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    });
    let result = probe_once(&format!("https://{addr}/health"), json!({})).await;
    assert!(!result.success);
    let message = result.message.expect("message");
    assert!(message.starts_with("TLS error: "), "{message}");
}

#[tokio::test]
async fn names_a_connection_closed_without_an_answer() {
    let target = Target::start().await;
    target.set(Mode::Close);
    let result = probe_once(&target.url(), json!({})).await;
    assert!(!result.success);
    let message = result.message.expect("message");
    assert!(message.contains("closed") || message.contains("reset"), "{message}");
}

#[tokio::test]
async fn reads_at_most_one_mebibyte_of_an_endless_body() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request).await;
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n").await;
        let chunk = vec![b'x'; 64 * 1024];
        while stream.write_all(&chunk).await.is_ok() {
            counter.fetch_add(chunk.len(), std::sync::atomic::Ordering::SeqCst);
        }
    });
    let result = probe_once(&format!("http://{addr}/"), json!({})).await;
    assert!(result.success, "{result:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sent = sent.load(std::sync::atomic::Ordering::SeqCst);
    // The probe stopped reading at 1 MiB; the kernel's socket buffers hold a few MiB more.
    assert!(sent < 16 * 1024 * 1024, "the server got to send {sent} bytes");
}

#[tokio::test]
async fn never_panics_on_garbage() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        for reply in [
            &b"garbage\r\n\r\n"[..],
            b"HTTP/1.1 999 What\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
            b"\x00\xff\x13",
        ] {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request).await;
            let _ = stream.write_all(reply).await;
        }
    });
    for _ in 0..4 {
        let result = probe_once(&format!("http://{addr}/"), json!({})).await;
        assert!(!result.success, "{result:?}");
        assert!(result.message.is_some());
    }
}
