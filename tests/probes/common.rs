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

/// The sockets of one server's port that a test's own connections may have left, told apart
/// from those already there when the server started listening: TIME_WAIT lasts 60 s on Linux,
/// and meanwhile the kernel may hand the port to another test's server, whose count would then
/// include connections to the port's last listener (likely what failed one CI run, not proven).
pub struct Sockets {
    port: u16,
    before: std::collections::HashSet<(u16, u16)>,
}

impl Sockets {
    /// Call once the server listens on `port` and before the first connection to it.
    pub fn of(port: u16) -> Sockets {
        let before = sockets_of(port).into_iter().map(|(local, remote, _)| (local, remote)).collect();
        Sockets { port, before }
    }

    fn new_since(&self) -> impl Iterator<Item = (u16, u16, String)> + '_ {
        sockets_of(self.port).into_iter().filter(|(local, remote, _)| !self.before.contains(&(*local, *remote)))
    }

    /// Connections in TIME_WAIT on the server's side and on its clients' side: (server's,
    /// clients').
    pub fn time_wait_sides(&self) -> (usize, usize) {
        let waiting = self.new_since().filter(|(_, _, state)| state == "06");
        waiting.fold(
            (0, 0),
            |(server, client), (local, _, _)| {
                if local == self.port { (server + 1, client) } else { (server, client + 1) }
            },
        )
    }

    /// The states (the kernel's hex) of the client sockets still open or waiting towards the
    /// server.
    pub fn clients(&self) -> Vec<String> {
        self.new_since().filter(|(local, _, _)| *local != self.port).map(|(_, _, state)| state).collect()
    }
}
