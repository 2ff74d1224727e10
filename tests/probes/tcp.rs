//! The TCP probe against real listeners on loopback: plain connect, banners, send/expect.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::common::{Sockets, probe_once, problems};

/// A listener that runs `serve` on every connection; returns its address.
async fn server<F, Fut>(serve: F) -> String
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    address
}

/// Answers `PING` with `+PONG`, as Redis does.
async fn pong(mut stream: tokio::net::TcpStream) {
    let mut buffer = [0u8; 64];
    if let Ok(n) = stream.read(&mut buffer).await
        && buffer[..n].starts_with(b"PING")
    {
        let _ = stream.write_all(b"+PONG\r\n").await;
    }
}

#[tokio::test]
async fn connects_and_reports_the_connect_time() {
    let address = server(|_stream| async {}).await;
    let result = probe_once(json!({"assetType": "tcp", "address": address})).await;
    assert!(result.success, "{result:?}");
    let timings = result.detail.timings.expect("timings");
    assert!(timings.connect_ms.is_some_and(|ms| ms < 1000), "{timings:?}");
}

#[tokio::test]
async fn names_a_refused_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let result = probe_once(json!({"assetType": "tcp", "address": address})).await;
    assert_eq!((result.success, result.message.as_deref()), (false, Some("connection refused")));
}

#[tokio::test]
async fn send_and_expect_checks_the_reply() {
    let address = server(pong).await;
    let asked = |expect: &str| json!({"assetType": "tcp", "address": address, "send": "PING\r\n", "expect": expect});
    let result = probe_once(asked("+PONG")).await;
    assert!(result.success, "{result:?}");
    let result = probe_once(asked("+PANG")).await;
    assert_eq!(
        (result.success, result.message.as_deref()),
        (false, Some("reply \"+PONG\\r\\n\" does not contain \"+PANG\""))
    );
}

#[tokio::test]
async fn a_banner_is_read_without_sending() {
    let address = server(|mut stream| async move {
        let _ = stream.write_all(b"220 mail.test ESMTP ready\r\n").await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let result = probe_once(json!({"assetType": "tcp", "address": address, "expect": "220 "})).await;
    assert!(result.success, "{result:?}");
    assert!(result.detail.timings.and_then(|t| t.first_byte_ms).is_some());
}

#[tokio::test]
async fn a_peer_that_closes_without_the_expected_reply_is_down() {
    let address = server(|mut stream| async move {
        let _ = stream.write_all(b"-ERR go away\r\n").await;
    })
    .await;
    let result = probe_once(json!({"assetType": "tcp", "address": address, "expect": "+OK"})).await;
    assert_eq!(
        (result.success, result.message.as_deref()),
        (false, Some("reply \"-ERR go away\\r\\n\" does not contain \"+OK\""))
    );
}

#[tokio::test]
async fn a_silent_peer_times_out_when_a_reply_is_expected() {
    let address = server(|stream| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(stream);
    })
    .await;
    let result = probe_once(json!({"assetType": "tcp", "address": address, "expect": "220"})).await;
    assert_eq!((result.success, result.message.as_deref()), (false, Some("timeout after 1s")));
    assert!((1000..2000).contains(&result.latency_ms), "{}", result.latency_ms);
    // Without anything to check, a silent peer is just a connection: healthy.
    let result = probe_once(json!({"assetType": "tcp", "address": address})).await;
    assert!(result.success, "{result:?}");
}

#[tokio::test]
async fn names_a_host_that_does_not_resolve() {
    let result = probe_once(json!({"assetType": "tcp", "address": "no-such-host.invalid:80"})).await;
    assert!(!result.success);
    assert!(result.message.as_deref().is_some_and(|m| m.starts_with("DNS error")), "{result:?}");
}

#[test]
fn addresses_are_checked_at_load() {
    let cases = [
        ("", "address: must not be empty: a tcp asset needs host:port"),
        ("localhost", "address: \"localhost\" has no port: write host:port"),
        (":80", "address: \":80\" has no host: write host:port"),
        ("localhost:0", "address: \"0\" is not a port (1-65535)"),
        ("localhost:70000", "address: \"70000\" is not a port (1-65535)"),
        ("::1:80", "address: \"::1:80\": put an IPv6 address in brackets, as [::1]:443"),
    ];
    for (address, expected) in cases {
        let found = problems(json!({"assetType": "tcp", "address": address}));
        assert_eq!(found, [format!("assets[0].{expected}")], "{address:?}");
    }
    assert!(problems(json!({"assetType": "tcp", "address": "[::1]:6379"})).is_empty());
    assert_eq!(
        problems(json!({"assetType": "tcp", "address": "localhost:25", "expect": ""})),
        ["assets[0].expect: must not be empty (leave it out to only connect)"]
    );
}

/// `[probes] source_address`: the TCP probe connects from that address (as the HTTP probe
/// does), and one of the other family than the target's is a clear failure.
#[tokio::test]
async fn connects_from_the_source_address() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    let peers = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&peers);
    tokio::spawn(async move {
        while let Ok((_stream, peer)) = listener.accept().await {
            seen.lock().push(peer.ip());
        }
    });
    let asset = super::common::asset(json!({"assetType": "tcp", "address": address}));
    let source: std::net::IpAddr = "127.0.0.7".parse().expect("an address");
    let context = statusd::ProbeContext::sent_from(Some(source)).expect("probe clients");
    let result = asset.check(&context).await;
    assert!(result.success, "{result:?}");
    // The listener records the peer as it accepts, which may come after the probe's connect.
    tokio::time::timeout(Duration::from_secs(5), async {
        while peers.lock().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the connection accepted");
    assert_eq!(peers.lock().as_slice(), [source]);

    let context = statusd::ProbeContext::sent_from(Some("::1".parse().expect("an address"))).expect("probe clients");
    let result = asset.check(&context).await;
    assert!(!result.success);
    let message = result.message.unwrap_or_default();
    assert!(message.contains("no IPv6 address to reach from the source address ::1"), "{message}");
}

/// A probe ends its connection with a reset, as HAProxy ends its TCP checks, so nothing of it is
/// left on statusd's side once it returns: closed with a FIN, the probe's socket would wait in
/// FIN_WAIT and then TIME_WAIT for 60 s, holding its local port, and off loopback that caps
/// probes of one address:port at about 470 a second. With a reply read, the same.
#[tokio::test]
async fn a_probe_leaves_no_socket_waiting_on_statusds_side() {
    // The server closes on end of stream, as servers do; the probe closes first either way.
    let address = server(|mut stream| async move {
        let mut buffer = [0u8; 64];
        let _ = stream.write_all(b"220 ready\r\n").await;
        while let Ok(n) = stream.read(&mut buffer).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    let port: u16 = address.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    let sockets = Sockets::of(port);
    for fields in [
        json!({"assetType": "tcp", "address": address}),
        json!({"assetType": "tcp", "address": address, "expect": "220"}),
    ] {
        for _ in 0..5 {
            let result = probe_once(fields.clone()).await;
            assert!(result.success, "{result:?}");
            assert_eq!(sockets.clients(), Vec::<String>::new(), "statusd's side after {fields}");
        }
    }
}
