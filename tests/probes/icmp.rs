//! The ICMP probe against 127.0.0.1, where this process may open an ICMP socket; where it may
//! not, the asset must say what it needs.

use serde_json::json;
use statusd::PERMISSION_HINT;

use super::common::{probe_once, problems};

/// Whether this process may open an ICMP socket of either kind, asked of the kernel directly.
fn icmp_permitted() -> bool {
    [libc::SOCK_DGRAM, libc::SOCK_RAW].into_iter().any(|kind| {
        // SAFETY: socket(2) with constant arguments; the descriptor is closed right away.
        let fd = unsafe { libc::socket(libc::AF_INET, kind, libc::IPPROTO_ICMP) };
        if fd >= 0 {
            // SAFETY: fd was just returned by socket(2) and is owned here.
            unsafe { libc::close(fd) };
        }
        fd >= 0
    })
}

#[tokio::test]
async fn pings_the_loopback_or_says_what_it_needs() {
    let result = probe_once(json!({"assetType": "icmp", "address": "127.0.0.1"})).await;
    if icmp_permitted() {
        assert!(result.success, "{result:?}");
        assert!(result.latency_ms < 1000);
    } else {
        assert!(!result.success);
        assert!(result.message.as_deref().is_some_and(|m| m.starts_with(PERMISSION_HINT)), "{result:?}");
    }
}

#[tokio::test]
async fn a_host_name_is_resolved_first() {
    let result = probe_once(json!({"assetType": "icmp", "address": "localhost"})).await;
    assert_eq!(result.success, icmp_permitted(), "{result:?}");
    let result = probe_once(json!({"assetType": "icmp", "address": "no-such-host.invalid"})).await;
    assert!(result.message.as_deref().is_some_and(|m| m.starts_with("DNS error")), "{result:?}");
}

#[test]
fn addresses_are_checked_at_load() {
    assert_eq!(
        problems(json!({"assetType": "icmp", "address": ""})),
        ["assets[0].address: must not be empty: an icmp asset needs a host name or IP address"]
    );
    assert_eq!(
        problems(json!({"assetType": "icmp", "address": "http://host/"})),
        ["assets[0].address: \"http://host/\" is not a host: give a host name or IP address, no URL"]
    );
    assert_eq!(
        problems(json!({"assetType": "icmp", "address": "host:80"})),
        ["assets[0].address: \"host:80\" is not a host: ICMP has no ports"]
    );
    assert!(problems(json!({"assetType": "icmp", "address": "::1"})).is_empty());
}

#[tokio::test]
async fn a_bracketed_ipv6_address_is_a_host_wherever_a_host_is_expected() {
    assert_eq!(problems(json!({"assetType": "icmp", "address": "[::1]"})), Vec::<String>::new());
    assert_eq!(
        problems(json!({"assetType": "icmp", "address": "[::1]:80"})),
        ["assets[0].address: \"[::1]:80\" is not a host: ICMP has no ports"]
    );
    for asset_type in ["tcp", "tls"] {
        assert_eq!(problems(json!({"assetType": asset_type, "address": "[::1]:443"})), Vec::<String>::new());
    }
    // Pinged as ::1, not looked up as a name.
    let result = probe_once(json!({"assetType": "icmp", "address": "[::1]"})).await;
    let message = result.message.clone().unwrap_or_default();
    assert!(!message.starts_with("DNS error"), "{result:?}");
    assert!(result.success || message.starts_with(PERMISSION_HINT), "{result:?}");

    let listener = tokio::net::TcpListener::bind("[::1]:0").await.expect("bind ::1");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    let result = probe_once(json!({"assetType": "tcp", "address": format!("[::1]:{port}")})).await;
    assert!(result.success, "{result:?}");
}
