//! What every probe test needs: an asset from JSON, validated as a config file would be.

use serde_json::{Value, json};
use statusd::{AssetConfig, Manifest};
use statusd::{ProbeContext, ProbeResult};

/// The asset as the config loader makes it; panics with every problem if it is invalid.
pub fn asset(fields: Value) -> AssetConfig {
    let mut asset = json!({"id": "probe", "intervalSeconds": 5, "timeoutSeconds": 1});
    for (key, value) in fields.as_object().expect("an object").iter() {
        asset[key] = value.clone();
    }
    match Manifest::from_value(&json!({"assets": [asset]}), "test") {
        Ok(mut manifest) => std::sync::Arc::unwrap_or_clone(manifest.assets.remove(0)),
        Err(problems) => panic!("invalid asset: {problems}"),
    }
}

/// The problems the config loader finds in one asset, as `path: message` lines.
pub fn problems(fields: Value) -> Vec<String> {
    let mut asset = json!({"id": "probe", "intervalSeconds": 5, "timeoutSeconds": 1});
    for (key, value) in fields.as_object().expect("an object").iter() {
        asset[key] = value.clone();
    }
    match Manifest::from_value(&json!({"assets": [asset]}), "test") {
        Ok(_) => Vec::new(),
        Err(problems) => problems.0.iter().map(|p| format!("{}: {}", p.path, p.message)).collect(),
    }
}

/// Probes once, as the asset's actor would.
pub async fn probe_once(fields: Value) -> ProbeResult {
    let asset = asset(fields);
    let context = ProbeContext::new().expect("probe clients");
    asset.check(&context).await
}

/// The TCP connections on IPv4 loopback with a local or remote port of `port`, from
/// `/proc/net/tcp`: (local port, remote port, state in the kernel's hex, `06` for TIME_WAIT).
fn sockets_of(port: u16) -> Vec<(u16, u16, String)> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let port_of = |address: &str| address.rsplit(':').next().and_then(|hex| u16::from_str_radix(hex, 16).ok());
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            // sl, local_address, rem_address, st, …
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, remote) = (port_of(fields.get(1)?)?, port_of(fields.get(2)?)?);
            let state = fields.get(3)?.to_string();
            (local == port || remote == port).then_some((local, remote, state))
        })
        .collect()
}

/// Connections in TIME_WAIT on IPv4 loopback on the side of the server listening on `port`
/// and on the side of its clients: (server's, clients').
pub fn time_wait_sides(port: u16) -> (usize, usize) {
    let waiting = sockets_of(port).into_iter().filter(|(_, _, state)| state == "06");
    waiting.fold(
        (0, 0),
        |(server, client), (local, _, _)| if local == port { (server + 1, client) } else { (server, client + 1) },
    )
}

/// The states (the kernel's hex) of the client sockets still open or waiting towards the
/// server listening on `port`.
pub fn client_sockets_to(port: u16) -> Vec<String> {
    sockets_of(port).into_iter().filter(|(local, _, _)| *local != port).map(|(_, _, state)| state).collect()
}
