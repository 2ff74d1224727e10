//! TCP probe: connect to `host:port` within the timeout; optionally `send` bytes and `expect` a
//! substring of the reply (banner checks: SMTP's `220`, Redis' `PING` → `+PONG`).

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use super::{Facts, ProbeDetail, ProbeOutcome, Timings, millis_since};
use crate::report::Report;

/// Enough reply for any banner or short answer; a peer that streams more is cut here.
const MAX_REPLY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TcpSpec {
    /// Written once connected (JSON escapes such as `\r\n` work).
    #[serde(default)]
    pub send: Option<String>,
    /// The reply must contain this.
    #[serde(default)]
    pub expect: Option<String>,
}

/// Checks a `host:port` address, as the `tcp` and `tls` probes take it.
pub(super) fn validate_host_port(asset_type: &str, address: &str, path: &str, report: &mut Report<'_>) {
    let address_path = format!("{path}.address");
    if address.trim().is_empty() {
        report.problem(address_path, format!("must not be empty: a {asset_type} asset needs host:port"));
        return;
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        report.problem(address_path, format!("{address:?} has no port: write host:port"));
        return;
    };
    if host.is_empty() || host == "[]" {
        report.problem(address_path, format!("{address:?} has no host: write host:port"));
    } else if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        report.problem(address_path, format!("{address:?}: put an IPv6 address in brackets, as [::1]:443"));
    } else if !port.parse::<u16>().is_ok_and(|p| p > 0) {
        report.problem(address_path, format!("{port:?} is not a port (1-65535)"));
    }
}

/// The host of a `host:port` address, without IPv6 brackets.
pub(super) fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
}

/// Words an operator knows for a failed connect.
/// Connects for a TCP-based probe, with what the connection tells conditions (`[CONNECTED]`,
/// `[IP]`) and its time; a refused or failed connection is the probe's outcome.
/// With `source` (`[probes] source_address`) the connection is made from that local address, to
/// the host's addresses of the same family in turn.
pub(super) async fn connect(
    address: &str,
    source: Option<IpAddr>,
) -> Result<(TcpStream, Facts, Timings), ProbeOutcome> {
    let started = Instant::now();
    let connected = match source {
        None => TcpStream::connect(address).await,
        Some(source) => connect_from(address, source).await,
    };
    let stream = connected.map_err(|error| {
        let facts = Facts { connected: Some(false), ..Facts::default() };
        ProbeOutcome::down(None, describe_connect_error(&error)).with_facts(facts)
    })?;
    let timings = Timings { connect_ms: Some(millis_since(started)), ..Timings::default() };
    let facts =
        Facts { connected: Some(true), ip: stream.peer_addr().ok().map(|a| a.ip().to_string()), ..Facts::default() };
    Ok((stream, facts, timings))
}

/// Connects from `source` to the first of `address`'s addresses of its family that answers, as
/// `TcpStream::connect` tries them all (tokio has no connect-from for a host name).
async fn connect_from(address: &str, source: IpAddr) -> std::io::Result<TcpStream> {
    let mut last = None;
    for target in tokio::net::lookup_host(address).await?.filter(|target| target.is_ipv4() == source.is_ipv4()) {
        let socket = if source.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        socket.bind(SocketAddr::new(source, 0))?;
        match socket.connect(target).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last = Some(error),
        }
    }
    Err(last
        .unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, super::no_address_from(source))))
}

pub(super) fn describe_connect_error(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::ConnectionReset => "connection reset by peer".into(),
        std::io::ErrorKind::TimedOut => "timeout".into(),
        // tokio resolves names with getaddrinfo; its failures carry no io kind of their own.
        _ if error.to_string().contains("failed to lookup address") => format!("DNS error: {error}"),
        _ => error.to_string(),
    }
}

impl TcpSpec {
    pub(super) fn validate(&self, address: &str, path: &str, report: &mut Report<'_>) {
        validate_host_port("tcp", address, path, report);
        if self.expect.as_deref() == Some("") {
            report.problem(format!("{path}.expect"), "must not be empty (leave it out to only connect)");
        }
    }

    pub(super) async fn check(&self, address: &str, has_conditions: bool, source: Option<IpAddr>) -> ProbeOutcome {
        let started = Instant::now();
        let (mut stream, mut facts, mut timings) = match connect(address, source).await {
            Ok(connected) => connected,
            Err(outcome) => return outcome,
        };
        // Ended by a reset (`SO_LINGER` 0), not a FIN, as HAProxy ends its TCP health checks:
        // the probe closes first, and a FIN would leave its local port in TIME_WAIT for 60 s.
        // Off loopback (`net.ipv4.tcp_tw_reuse` 0, the default) the 28,232 ephemeral ports then
        // last ≈ 470 probes a second to one address and port, and every probe past that fails
        // to connect (README, Benchmarks). Nothing is lost to the reset: the probe has read what
        // it reads, and what it sent left with its `write` (a fresh connection sends its first
        // segment at once). A socket that refuses the option closes as before.
        let _ = stream.set_zero_linger();
        if let Some(send) = &self.send
            && let Err(error) = stream.write_all(send.as_bytes()).await
        {
            return ProbeOutcome::down(None, format!("connected, then sending failed: {error}")).with_facts(facts);
        }
        // Read only when something will look at the reply: a silent service is not a failure.
        if self.expect.is_some() || has_conditions {
            let reply = match read_reply(&mut stream, self.expect.as_deref()).await {
                Ok(reply) => reply,
                Err(error) => {
                    return ProbeOutcome::down(None, format!("connected, then reading failed: {error}"))
                        .with_facts(facts);
                }
            };
            timings.first_byte_ms = Some(millis_since(started));
            let text = String::from_utf8_lossy(&reply).into_owned();
            facts.body = Some(reply);
            if let Some(expect) = &self.expect
                && !text.contains(expect.as_str())
            {
                let shown: String = text.chars().take(80).collect();
                return ProbeOutcome::down(None, format!("reply {shown:?} does not contain {expect:?}"))
                    .with_facts(facts);
            }
        }
        let detail = ProbeDetail { timings: Some(timings), ..ProbeDetail::default() };
        ProbeOutcome::up(None).with_facts(facts).with_detail(detail)
    }
}

/// Reads until the reply holds `expect`, the peer closes, or the size bound; with nothing
/// expected, the first chunk is the reply. The probe's timeout bounds the wait.
async fn read_reply(stream: &mut TcpStream, expect: Option<&str>) -> std::io::Result<Vec<u8>> {
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(reply);
        }
        reply.extend_from_slice(&chunk[..read]);
        let found = match expect {
            Some(expect) => reply.windows(expect.len()).any(|w| w == expect.as_bytes()),
            None => true,
        };
        if found || reply.len() >= MAX_REPLY_BYTES {
            return Ok(reply);
        }
    }
}
