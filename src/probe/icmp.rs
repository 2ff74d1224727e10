//! ICMP probe: one echo request to the host; healthy on the reply. Opening an ICMP socket
//! needs CAP_NET_RAW (raw socket) or a group within `net.ipv4.ping_group_range` (datagram
//! socket); without either the asset says so on every probe instead of going silently down.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use surge_ping::{Client, Config, ICMP, PingIdentifier, PingSequence, SurgeError};

use super::{Facts, ProbeOutcome};
use crate::report::Report;

pub const PERMISSION_HINT: &str = "ICMP needs CAP_NET_RAW or net.ipv4.ping_group_range";

/// Sent in every echo request, so a capture shows who is pinging.
const PAYLOAD: &[u8] = b"statusd";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IcmpSpec {}

/// One socket per address family and source address, opened on first use and shared by every
/// ICMP asset; a failure to open is not remembered, so granting the permission later needs no
/// restart.
pub struct Pingers {
    /// Keyed by (IPv4?, `[probes] source_address`): a socket bound to one source cannot send
    /// from another.
    clients: Mutex<HashMap<(bool, Option<IpAddr>), Client>>,
}

impl Pingers {
    pub fn new() -> Self {
        Pingers { clients: Mutex::new(HashMap::new()) }
    }

    /// The socket to ping `ip` with, bound to `source` when there is one (the caller has checked
    /// that both are of one family).
    fn client(&self, ip: IpAddr, source: Option<IpAddr>) -> std::io::Result<Client> {
        let mut clients = self.clients.lock();
        if let Some(client) = clients.get(&(ip.is_ipv4(), source)) {
            return Ok(client.clone());
        }
        let mut config = Config::builder().kind(if ip.is_ipv4() { ICMP::V4 } else { ICMP::V6 });
        if let Some(source) = source {
            config = config.bind(SocketAddr::new(source, 0));
        }
        let client = Client::new(&config.build())?;
        clients.insert((ip.is_ipv4(), source), client.clone());
        Ok(client)
    }
}

impl Default for Pingers {
    fn default() -> Self {
        Pingers::new()
    }
}

/// What an operator should read when the socket cannot be opened or used.
pub fn describe_socket_error(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::PermissionDenied => format!("{PERMISSION_HINT} ({error})"),
        _ => format!("ICMP error: {error}"),
    }
}

impl IcmpSpec {
    pub(super) fn validate(&self, address: &str, path: &str, report: &mut Report<'_>) {
        let address_path = format!("{path}.address");
        if address.trim().is_empty() {
            report.problem(address_path, "must not be empty: an icmp asset needs a host name or IP address");
        } else if address.contains("://") || address.contains('/') {
            report.problem(address_path, format!("{address:?} is not a host: give a host name or IP address, no URL"));
        } else if literal_ip(address).is_none() && address.contains(':') {
            report.problem(address_path, format!("{address:?} is not a host: ICMP has no ports"));
        }
    }

    /// With `source` (`[probes] source_address`) the echo is sent from that local address, to
    /// the host's first address of its family.
    pub(super) async fn check(&self, address: &str, pingers: &Pingers, source: Option<IpAddr>) -> ProbeOutcome {
        let ip = match literal_ip(address) {
            Some(ip) => ip,
            None => match tokio::net::lookup_host((address, 0)).await.map(|found| found.collect::<Vec<_>>()) {
                // The first address of the source's family, as the TCP probe connects to.
                Ok(found) => {
                    match found.iter().find(|f| source.is_none_or(|s| s.is_ipv4() == f.is_ipv4())).or(found.first()) {
                        Some(found) => found.ip(),
                        None => return ProbeOutcome::down(None, format!("DNS error: no address for {address}")),
                    }
                }
                Err(error) => return ProbeOutcome::down(None, format!("DNS error: {error}")),
            },
        };
        if let Some(source) = source
            && source.is_ipv4() != ip.is_ipv4()
        {
            return ProbeOutcome::down(None, super::no_address_from(source));
        }
        let client = match pingers.client(ip, source) {
            Ok(client) => client,
            Err(error) => return ProbeOutcome::down(None, describe_socket_error(&error)),
        };
        let mut pinger = client.pinger(ip, PingIdentifier(fastrand::u16(..))).await;
        // The probe's own timeout bounds the wait; this one only has to be longer.
        pinger.timeout(std::time::Duration::from_secs(3600));
        let facts = Facts { ip: Some(ip.to_string()), ..Facts::default() };
        match pinger.ping(PingSequence(0), PAYLOAD).await {
            Ok(_) => ProbeOutcome::up(None).with_facts(Facts { connected: Some(true), ..facts }),
            Err(SurgeError::IOError(error)) => {
                ProbeOutcome::down(None, describe_socket_error(&error)).with_facts(facts)
            }
            Err(error) => ProbeOutcome::down(None, format!("no echo reply from {ip}: {error}")).with_facts(facts),
        }
    }
}

/// An IP address as written, IPv6 with or without brackets (`::1`, `[::1]`, as URLs write it).
fn literal_ip(address: &str) -> Option<IpAddr> {
    let unbracketed = address.strip_prefix('[').and_then(|a| a.strip_suffix(']'));
    match unbracketed {
        Some(inner) => inner.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
        None => address.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_socket_names_the_permission_it_needs() {
        let refused = std::io::Error::from_raw_os_error(1); // EPERM, as socket(2) answers
        assert!(describe_socket_error(&refused).starts_with(PERMISSION_HINT), "{}", describe_socket_error(&refused));
    }
}
