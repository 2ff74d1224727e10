//! The ICMP probe against 127.0.0.1, where this process may open an ICMP socket; where it may
//! not, the asset must say what it needs.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use serde_json::json;
use statusd::{PERMISSION_HINT, ProbeContext};

use super::common::{asset, probe_once, problems};

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
    let called = std::time::Instant::now();
    let result = probe_once(json!({"assetType": "icmp", "address": "127.0.0.1"})).await;
    if icmp_permitted() {
        assert!(result.success, "{result:?}");
        // The round trip in milliseconds: within the call's time, never a larger unit.
        assert!(u128::try_from(result.latency_ms).is_ok_and(|ms| ms <= called.elapsed().as_millis()), "{result:?}");
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

/// A raw ICMP socket: the kernel hands it a copy of every ICMP packet this host receives, echo
/// requests on the loopback included, IP header first. None when this process may not open one.
struct IcmpCapture(libc::c_int);

impl IcmpCapture {
    fn open() -> Option<IcmpCapture> {
        // SAFETY: socket(2) with constant arguments; the descriptor is owned by the capture.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
        if fd < 0 {
            return None;
        }
        // Each read waits at most this long, so that `echo_requests_to` keeps to its deadline.
        let wait = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
        // SAFETY: fd is open; the option value is a timeval of the size given.
        let set = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const wait).cast(),
                libc::socklen_t::try_from(size_of::<libc::timeval>()).expect("a small size"),
            )
        };
        assert_eq!(set, 0, "SO_RCVTIMEO: {}", std::io::Error::last_os_error());
        Some(IcmpCapture(fd))
    }

    /// The source addresses of the echo requests to `target` received so far, waiting up to
    /// `deadline` for at least one.
    fn echo_requests_to(&self, target: Ipv4Addr, deadline: Duration) -> Vec<Ipv4Addr> {
        let started = Instant::now();
        let mut sources = Vec::new();
        let mut packet = [0u8; 65536];
        while started.elapsed() < deadline {
            // SAFETY: fd is open and the buffer is as long as said.
            let read = unsafe { libc::recv(self.0, packet.as_mut_ptr().cast(), packet.len(), 0) };
            let Ok(length) = usize::try_from(read) else {
                if sources.is_empty() {
                    continue; // timed out, or interrupted: try again until the deadline
                }
                break; // nothing more queued
            };
            let header = usize::from(packet[0] & 0x0f) * 4;
            let to = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
            // ICMP type 8: echo request.
            if length > header && packet[header] == 8 && to == target {
                sources.push(Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]));
            }
        }
        sources
    }
}

impl Drop for IcmpCapture {
    fn drop(&mut self) {
        // SAFETY: the descriptor is owned by the capture and closed once.
        unsafe { libc::close(self.0) };
    }
}

/// `[probes] source_address`: the echo request leaves from that address (seen by a raw socket
/// on the loopback), and a target of the other family is a clear failure, as a TCP one is.
#[tokio::test]
async fn pings_from_the_source_address() {
    // Addresses no other test pings, so the capture sees only this test's echo.
    let target = Ipv4Addr::new(127, 0, 83, 3);
    let source = IpAddr::V4(Ipv4Addr::new(127, 0, 83, 2));
    let context = ProbeContext::sent_from(Some(source)).expect("probe clients");

    // A target of the other family fails before any socket is needed.
    let result = asset(json!({"assetType": "icmp", "address": "::1"})).check(&context).await;
    assert!(!result.success);
    assert_eq!(result.message.as_deref(), Some("no IPv4 address to reach from the source address 127.0.83.2"));
    let v6 = ProbeContext::sent_from(Some("::1".parse().expect("an address"))).expect("probe clients");
    let result = asset(json!({"assetType": "icmp", "address": "127.0.0.1"})).check(&v6).await;
    assert!(!result.success);
    assert_eq!(result.message.as_deref(), Some("no IPv6 address to reach from the source address ::1"));

    let Some(capture) = IcmpCapture::open() else {
        eprintln!("skipped the capture: no raw ICMP socket (needs CAP_NET_RAW)");
        return;
    };
    let result = asset(json!({"assetType": "icmp", "address": target.to_string()})).check(&context).await;
    assert!(result.success, "{result:?}");
    let sources = tokio::task::spawn_blocking(move || capture.echo_requests_to(target, Duration::from_secs(5)))
        .await
        .expect("the capture");
    assert_eq!(sources, [source], "echo requests to {target} came from {sources:?}");
}
