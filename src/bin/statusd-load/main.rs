//! `statusd-load`: puts a statusd under a known load and measures it from outside.
//!
//! It serves a fast HTTP target on K loopback addresses (127.0.0.1 … 127.0.0.K, so that one
//! address's ephemeral ports are not the ceiling), writes a manifest of N HTTP assets spread over
//! them, starts statusd **as a child process** (so that its CPU and memory are read from `/proc`
//! and nothing of this tool's own work is counted), waits until it is ready, measures over a
//! window and prints one JSON line:
//!
//! ```text
//! cargo run --release --bin statusd-load -- --assets 1000 --interval 1 --duration 60
//! {"assets":1000,"interval_s":1,…,"probes_done":60012,"probes_ok":60012,"cpu_ms_per_1000_probes":231.4,…}
//! ```
//!
//! `--asset-type tcp|dns|tls|https` makes every asset a TCP probe of the target's addresses, a DNS
//! query to a name server the tool serves on the same addresses (UDP), a TLS probe of a TLS
//! listener there (a certificate of a CA the tool makes, trusted through `caFile`), or an HTTP
//! probe of the same target over that TLS listener. `--fail-fraction F` turns that share of the
//! targets to 500 (DNS: SERVFAIL; TLS: a refused handshake) half-way through the window, so the
//! incident and notification path (one webhook channel, served by the same target) is loaded too.
//! `--replicas R` (with a PostgreSQL `--db`) starts R statusd in cluster mode instead of one, waits
//! until their leases cover every asset, reports each replica's CPU and memory, and reads from
//! PostgreSQL's statistics views how much database work the window cost and how much of it touched
//! the coordination tables (`cluster_members`, `asset_leases`, `asset_states`, `incident_events`,
//! `asset_location_states`). `--history S` stores S seconds of results for every asset before
//! statusd starts, so that the window measures a database in use rather than a fresh one.
//! `--monitor blackbox` measures Prometheus scraping blackbox_exporter under the same load instead
//! of statusd (`peer.rs`), so that the comparison can be run again beside statusd's. Linux only:
//! it reads `/proc`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use clap::Parser;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::net::TcpListener;

mod peer;

#[derive(Debug, Parser)]
#[command(name = "statusd-load", about = "Puts statusd under a known load and prints one JSON line of measurements")]
struct Args {
    /// Assets to watch.
    #[arg(long, default_value_t = 1000)]
    assets: usize,
    /// The probe every asset uses.
    #[arg(long, value_enum, default_value_t = AssetType::Http)]
    asset_type: AssetType,
    /// Each asset's intervalSeconds.
    #[arg(long, default_value_t = 1)]
    interval: u64,
    /// The measured window, in seconds (after statusd is ready and one interval has passed).
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// The database statusd uses (default: a fresh SQLite file in a temporary directory).
    #[arg(long)]
    db: Option<String>,
    /// Loopback addresses the target listens on (127.0.0.1 … 127.0.0.K).
    #[arg(long, default_value_t = 1)]
    addresses: u8,
    /// Share of the targets (0 to 1) that answer 500 (DNS: SERVFAIL) from half-way through the
    /// window.
    #[arg(long, default_value_t = 0.0)]
    fail_fraction: f64,
    /// The statusd binary (default: the one next to this tool).
    #[arg(long)]
    statusd: Option<PathBuf>,
    /// What is measured: statusd, or Prometheus scraping blackbox_exporter (the stack statusd is
    /// compared with) on the same target and window (HTTP assets only).
    #[arg(long, value_enum, default_value_t = Monitor::Statusd)]
    monitor: Monitor,
    /// The prometheus binary for `--monitor blackbox` (default: `prometheus` on PATH).
    #[arg(long)]
    prometheus: Option<PathBuf>,
    /// The blackbox_exporter binary for `--monitor blackbox` (default: `blackbox_exporter` or
    /// Debian's `prometheus-blackbox-exporter` on PATH).
    #[arg(long)]
    blackbox_exporter: Option<PathBuf>,
    /// statusd processes sharing the assets in cluster mode (more than 1 needs a PostgreSQL --db).
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Seconds of results to store for every asset (one per interval) before statusd starts, as
    /// a database that has been in use that long holds: a fresh one takes writes more cheaply.
    #[arg(long, default_value_t = 0)]
    history: u64,
}

/// The program under load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Monitor {
    /// statusd (`--statusd`, default the binary next to this tool).
    Statusd,
    /// Prometheus scraping blackbox_exporter's `/probe` once per asset and interval.
    Blackbox,
}

/// The probe the load tool's assets use, as the manifest's `assetType` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
enum AssetType {
    /// `GET http://127.0.0.K:PORT/a/N`, 200 expected: the target times each asset's gaps and
    /// can fail any of them (`--fail-fraction`).
    Http,
    /// A TCP connection to `127.0.0.K:PORT`, closed once open: the target cannot tell the assets
    /// apart, so the gap fields stay empty and `--fail-fraction` does not apply.
    Tcp,
    /// An A query for `aN.load.test` over UDP to the target's name server on `127.0.0.K`, which
    /// answers `127.0.0.1` (the value the asset expects): it times each asset's gaps from its
    /// name and can fail any of them (SERVFAIL), as for HTTP.
    Dns,
    /// A TLS handshake with `127.0.0.K:PORT` sending `aN.load.test` as its server name (SNI),
    /// and the certificate judged against the tool's CA: the listener times each asset's gaps
    /// from that name and fails any of them by refusing the handshake.
    Tls,
    /// `GET https://127.0.0.K:PORT/a/N` through the same TLS listener (a certificate for the
    /// loopback addresses), 200 expected: timed and failed as for HTTP.
    Https,
}

impl AssetType {
    /// The manifest's `assetType` for these assets: HTTPS is the HTTP probe.
    fn manifest_type(self) -> &'static str {
        match self {
            AssetType::Https => "http",
            other => other.into(),
        }
    }
}

/// What the target saw: per asset, when it was last probed, and how far each gap was from the
/// interval (µs), while the window is open.
struct Target {
    failing_below: AtomicU64,
    measuring: AtomicBool,
    interval: Duration,
    last: Vec<Mutex<Option<Instant>>>,
    deviations: Mutex<Vec<u64>>,
    notifications: AtomicU64,
}

impl Target {
    /// Times the gap since asset `index`'s previous probe (while the window is open); false when
    /// the asset is among those made to fail.
    fn probed(&self, index: usize) -> bool {
        let now = Instant::now();
        if let Some(slot) = self.last.get(index) {
            let previous = slot.lock().replace(now);
            if let Some(previous) = previous
                && self.measuring.load(Ordering::Relaxed)
            {
                let gap = now.duration_since(previous);
                let deviation = gap.abs_diff(self.interval).as_micros();
                self.deviations.lock().push(u64::try_from(deviation).unwrap_or(u64::MAX));
            }
        }
        (index as u64) >= self.failing_below.load(Ordering::Relaxed)
    }
}

impl Target {
    /// The measured window (`--duration`): the target times gaps through it, and turns the
    /// `--fail-fraction` share of the assets to failing half-way through.
    async fn hold_window(&self, args: &Args) {
        self.measuring.store(true, Ordering::Relaxed);
        let window = Duration::from_secs(args.duration.max(1));
        let window_start = Instant::now();
        tokio::time::sleep(window / 2).await;
        let failing = (args.assets as f64 * args.fail_fraction).round() as u64;
        self.failing_below.store(failing, Ordering::Relaxed);
        tokio::time::sleep(window.saturating_sub(window_start.elapsed())).await;
        self.measuring.store(false, Ordering::Relaxed);
    }
}

async fn probe(State(target): State<Arc<Target>>, UrlPath(index): UrlPath<usize>) -> StatusCode {
    if target.probed(index) { StatusCode::OK } else { StatusCode::INTERNAL_SERVER_ERROR }
}

async fn hook(State(target): State<Arc<Target>>) -> StatusCode {
    target.notifications.fetch_add(1, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

/// The target's routes: `GET /a/N` for asset N, `POST /hook` for the notifications.
fn app(target: Arc<Target>) -> axum::Router {
    axum::Router::new()
        .route("/a/{index}", axum::routing::get(probe))
        .route("/hook", axum::routing::post(hook))
        .with_state(target)
}

/// TCP listeners on 127.0.0.1 … 127.0.0.K, all on the same port (the first one's, picked by
/// the system), and that port.
async fn listen_on_all(addresses: u8) -> std::io::Result<(u16, Vec<TcpListener>)> {
    let first = TcpListener::bind("127.0.0.1:0").await?;
    let port = first.local_addr()?.port();
    let mut listeners = vec![first];
    for k in 2..=addresses {
        listeners.push(TcpListener::bind(SocketAddr::from(([127, 0, 0, k], port))).await?);
    }
    Ok((port, listeners))
}

/// Serves the target on 127.0.0.1 … 127.0.0.K, all on the same port; returns the port.
async fn serve(app: axum::Router, addresses: u8) -> std::io::Result<u16> {
    let (port, listeners) = listen_on_all(addresses).await?;
    for listener in listeners {
        let app = app.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }
    Ok(port)
}

/// The asset a name `aN.load.test` (or its first label `aN`) stands for.
fn asset_of_name(name: &str) -> Option<usize> {
    name.split('.').next()?.strip_prefix('a')?.parse().ok()
}

/// The TLS side of the target: a CA the assets trust (its PEM in `ca_file`, for `caFile`) and
/// one certificate it signed for `*.load.test` and 127.0.0.1 … 127.0.0.K, served with every
/// handshake. The handshake is where TLS assets are told apart (by their server name) and
/// timed, and where a failing one is refused; HTTPS assets send no server name (an IP address
/// is not one, RFC 6066 section 3) and are timed by the HTTP handler behind it.
struct TlsTarget {
    target: Arc<Target>,
    certified: Arc<rustls::sign::CertifiedKey>,
}

impl std::fmt::Debug for TlsTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsTarget")
    }
}

impl rustls::server::ResolvesServerCert for TlsTarget {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        match hello.server_name().and_then(asset_of_name) {
            // No certificate: rustls ends the handshake with a handshake_failure alert.
            Some(index) if !self.target.probed(index) => None,
            _ => Some(Arc::clone(&self.certified)),
        }
    }
}

impl TlsTarget {
    fn new(target: Arc<Target>, addresses: u8, ca_file: &Path) -> Result<TlsTarget, Box<dyn std::error::Error>> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        ca.distinguished_name.push(DnType::CommonName, "statusd-load CA");
        std::fs::write(ca_file, ca.self_signed(&ca_key)?.pem())?;
        let issuer = Issuer::new(ca, ca_key);
        // rcgen takes a name that parses as an IP address as an IP address SAN.
        let names: Vec<String> =
            std::iter::once("*.load.test".to_string()).chain((1..=addresses).map(|k| format!("127.0.0.{k}"))).collect();
        let key = KeyPair::generate()?;
        let leaf = CertificateParams::new(names)?.signed_by(&key, &issuer)?;
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)?;
        let certified = Arc::new(rustls::sign::CertifiedKey::new(vec![leaf.der().clone()], signing));
        Ok(TlsTarget { target, certified })
    }
}

/// Serves the target's routes over TLS on 127.0.0.1 … 127.0.0.K, all on the same port; returns
/// the port. Each connection is handshaken and served on a task of its own, so a slow client
/// holds up no other.
async fn serve_tls(tls: TlsTarget, app: axum::Router, addresses: u8) -> std::io::Result<u16> {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(tls));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let (port, listeners) = listen_on_all(addresses).await?;
    for listener in listeners {
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            // An accept error is the listener's own (as for the HTTP target, which ends on one).
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else { return };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    }
    Ok(port)
}

/// The address every DNS asset expects its name to resolve to.
const DNS_ANSWER: std::net::Ipv4Addr = std::net::Ipv4Addr::LOCALHOST;

/// Serves DNS over UDP on 127.0.0.1 … 127.0.0.K, all on the same port; returns the port.
async fn serve_dns(target: Arc<Target>, addresses: u8) -> std::io::Result<u16> {
    let first = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let port = first.local_addr()?.port();
    let mut sockets = vec![first];
    for k in 2..=addresses {
        sockets.push(tokio::net::UdpSocket::bind(SocketAddr::from(([127, 0, 0, k], port))).await?);
    }
    for socket in sockets {
        let target = Arc::clone(&target);
        tokio::spawn(async move {
            // A query is at most 512 bytes over UDP without EDNS (RFC 1035, section 2.3.4);
            // EDNS lets the client offer more, and statusd's resolver offers 1,232.
            let mut buffer = vec![0u8; 4096];
            loop {
                // An unconnected UDP socket reports no peer's ICMP errors (udp(7)): an error here
                // would be this socket's own, and the server ends as the HTTP target would.
                let Ok((length, peer)) = socket.recv_from(&mut buffer).await else {
                    return;
                };
                if let Some(reply) = dns_reply(&target, &buffer[..length]) {
                    let _ = socket.send_to(&reply, peer).await;
                }
            }
        });
    }
    Ok(port)
}

/// The answer to a query for `aN.load.test`: `DNS_ANSWER`, or SERVFAIL when asset N is made to
/// fail; None (no reply) for what is not such a query.
fn dns_reply(target: &Target, query: &[u8]) -> Option<Vec<u8>> {
    use hickory_resolver::proto::op::{Message, OpCode, ResponseCode};
    use hickory_resolver::proto::rr::{RData, Record, rdata::A};
    let query = Message::from_vec(query).ok()?;
    let question = query.queries.first()?.clone();
    let index = asset_of_name(std::str::from_utf8(question.name().iter().next()?).ok()?)?;
    let mut reply = Message::response(query.metadata.id, OpCode::Query);
    reply.metadata.authoritative = true;
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.add_query(question.clone());
    if target.probed(index) {
        reply.add_answer(Record::from_rdata(question.name().clone(), 60, RData::A(A(DNS_ANSWER))));
    } else {
        reply.metadata.response_code = ResponseCode::ServFail;
    }
    reply.to_vec().ok()
}

/// CPU seconds (user + system) the process has used.
fn cpu_seconds(pid: i32) -> Option<f64> {
    let stat = procfs::process::Process::new(pid).ok()?.stat().ok()?;
    Some((stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64)
}

/// CPU seconds (user + system) of the process's threads named `sqlx-sqlite-worker` (truncated to
/// 15 bytes by the kernel): SQLite's own work, each connection's statements run on its thread.
fn sqlite_cpu_seconds(pid: i32) -> Option<f64> {
    let ticks: u64 = procfs::process::Process::new(pid)
        .ok()?
        .tasks()
        .ok()?
        .filter_map(|task| task.ok()?.stat().ok())
        .filter(|stat| stat.comm.starts_with("sqlx-sqlite"))
        .map(|stat| stat.utime + stat.stime)
        .sum();
    Some(ticks as f64 / procfs::ticks_per_second() as f64)
}

/// Stores `history` of results for every asset of the manifest in `dir` (one per `interval`,
/// each asset at its own offset in the interval, all in the past), as statusd would have stored
/// them; returns how many. The schema is statusd's own: its migrations run first and its assets
/// are synced, as at its start. The hours filled are not marked for the hourly rollup, which a
/// running statusd does once an hour, not for hours at a time at its start.
async fn fill_history(
    db: &str,
    dir: &Path,
    interval: Duration,
    history: Duration,
) -> Result<u64, Box<dyn std::error::Error>> {
    let config = statusd::Config::load(&dir.join("manifest.json"), &dir.join("notifiers.json"))
        .map_err(|problems| format!("the load manifest: {problems}"))?;
    let assets = i64::try_from(config.manifest.assets.len())?;
    let store = statusd::Store::connect(db).await?;
    store.sync_assets(&config.manifest.assets, false).await?;
    drop(store);
    let step = i64::try_from(interval.as_millis())?;
    let steps = i64::try_from(history.as_millis())? / step;
    let now = chrono::Utc::now().timestamp_millis();
    // Rows by time, every asset in turn, as results come to statusd, so that the index pages split
    // as in use. The id is a UUIDv7 of the row's time (RFC 9562, section 5.7: 48 bits of Unix
    // milliseconds, version 7, random bits, variant 10), which retention and rollups read as time.
    let rows = if db.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(db).await?;
        sqlx::query(
            "INSERT INTO probe_events (id, asset_id, timestamp, success, latency_ms, code, message)
             SELECT (lpad(to_hex(t), 12, '0') || '7' || substr(md5(random()::text), 1, 3) || '8'
                     || substr(md5(random()::text), 1, 15))::uuid,
                    'load-' || i, to_timestamp(t / 1000.0), true, 1, 200, NULL
             FROM generate_series($1::int8, 1, -1) AS k, generate_series(0, $2::int8 - 1) AS i,
                  LATERAL (SELECT $3::int8 - k * $4::int8 + i * $4::int8 / $2::int8 AS t) AS row_time
             ORDER BY k DESC, i",
        )
        .bind(steps)
        .bind(assets)
        .bind(now)
        .bind(step)
        .execute(&pool)
        .await?
        .rows_affected()
    } else {
        use sqlx::Connection;
        let mut connection = sqlx::SqliteConnection::connect(db).await?;
        // A page cache of up to 4 GiB for this one connection: the rows go in by time,
        // each to its asset's place in the index, which a small cache would read back each time.
        sqlx::query("PRAGMA cache_size = -4194304").execute(&mut connection).await?;
        let rows = sqlx::query(
            "WITH RECURSIVE step(k) AS (SELECT $1 UNION ALL SELECT k - 1 FROM step WHERE k > 1),
                            asset(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM asset WHERE i + 1 < $2),
                            result(t, i) AS (SELECT $3 - k * $4 + i * $4 / $2, i FROM step, asset)
             INSERT INTO probe_events (id, asset_id, timestamp, success, latency_ms, code, message, mark)
             SELECT unhex(printf('%012x', t) || '7' || substr(hex(randomblob(2)), 2) || '8'
                          || substr(hex(randomblob(8)), 2)),
                    'load-' || i, t, 1, 1, 200, NULL, NULL
             FROM result WHERE true",
        )
        .bind(steps)
        .bind(assets)
        .bind(now)
        .bind(step)
        .execute(&mut connection)
        .await?
        .rows_affected();
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut connection).await?;
        rows
    };
    Ok(rows)
}

/// (resident now, peak resident, anonymous resident now) in MiB. The rest of the resident
/// set is file pages, mostly the binary's own code, shared and reclaimable (proc(5): RssAnon,
/// RssFile).
fn rss_mib(pid: i32) -> Option<(f64, f64, f64)> {
    let status = procfs::process::Process::new(pid).ok()?.status().ok()?;
    Some((status.vmrss? as f64 / 1024.0, status.vmhwm? as f64 / 1024.0, status.rssanon? as f64 / 1024.0))
}

/// The sum of a metric's series (all label sets).
fn metric_sum(text: &str, name: &str, label: Option<&str>) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']))
        .filter(|line| label.is_none_or(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The cumulative buckets of a histogram: (upper bound, count).
fn buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (bound, rest) = rest.split_once('"')?;
            let bound = if bound == "+Inf" { f64::INFINITY } else { bound.parse().ok()? };
            Some((bound, rest.rsplit(' ').next()?.parse().ok()?))
        })
        .collect()
}

/// The upper bound of the bucket holding quantile `q` of what a histogram counted between two
/// scrapes (as Prometheus' `histogram_quantile` would, without interpolation).
fn quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<f64> {
    let counts: Vec<(f64, f64)> = after
        .iter()
        .map(|(bound, count)| {
            let earlier = before.iter().find(|(b, _)| b == bound).map_or(0.0, |(_, c)| *c);
            (*bound, count - earlier)
        })
        .collect();
    let total = counts.last()?.1;
    (total > 0.0).then(|| counts.iter().find(|(_, c)| *c >= q * total).map_or(f64::INFINITY, |(b, _)| *b))
}

/// The `q` quantile of `values` (sorted here).
fn percentile(values: &mut [u64], q: f64) -> Option<u64> {
    values.sort_unstable();
    let last = values.len().checked_sub(1)?;
    values.get(((last as f64) * q).round() as usize).copied()
}

struct Statusd {
    child: Child,
    pid: i32,
    base: String,
    http: reqwest::Client,
}

impl Statusd {
    async fn get(&self, path: &str) -> Option<(StatusCode, String)> {
        let response = self.http.get(format!("{}{path}", self.base)).send().await.ok()?;
        let status = StatusCode::from_u16(response.status().as_u16()).ok()?;
        Some((status, response.text().await.ok()?))
    }

    /// The `/metrics` page: an error rather than an empty page, which would count as no probes.
    async fn metrics(&self) -> Result<String, String> {
        let url = format!("{}/metrics", self.base);
        let response = self.http.get(&url).send().await.map_err(|e| format!("GET {url}: {e:?}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {url} answered {}", response.status()));
        }
        response.text().await.map_err(|e| format!("GET {url}: reading the page: {e:?}"))
    }

    /// The size of the `/metrics` page as Prometheus fetches it (`Accept-Encoding: gzip`), by a
    /// client that leaves the body compressed; None if it fails.
    async fn metrics_gzip_bytes(&self) -> Option<usize> {
        let undecoding = reqwest::Client::builder().gzip(false).build().ok()?;
        let response = undecoding
            .get(format!("{}/metrics", self.base))
            .header(reqwest::header::ACCEPT_ENCODING, "gzip")
            .send()
            .await
            .ok()?;
        Some(response.bytes().await.ok()?.len())
    }

    /// How many assets this statusd probes itself (in cluster mode, the leases it holds).
    async fn owned(&self, cluster: bool) -> Option<f64> {
        if !cluster {
            return Some(f64::INFINITY);
        }
        let (_, body) = self.get("/api/cluster").await?;
        let view: Value = serde_json::from_str(&body).ok()?;
        let me = view["instanceId"].as_str()?;
        let members = view["members"].as_array()?;
        members.iter().find(|m| m["id"] == me)?["assetsOwned"].as_f64()
    }

    /// Results Persistence has written so far (from `/readyz`).
    async fn written(&self) -> f64 {
        let Some((_, body)) = self.get("/readyz").await else { return 0.0 };
        let ready: Value = serde_json::from_str(&body).unwrap_or_default();
        ready["checks"]["store"]["backlog"]["written"].as_f64().unwrap_or(0.0)
    }
}

impl Drop for Statusd {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// How a statusd ended when the load tool stopped it.
struct Stopped {
    /// Exited with status 0 after SIGTERM, within [`STOP_GRACE`]: it wrote what it held and
    /// returned from `main` (an instrumented build writes its profile only then:
    /// `scripts/pgo-build`). False when it had ended before, failed, or had to be killed.
    clean: bool,
    /// From SIGTERM to its exit, in seconds.
    seconds: f64,
}

/// How long statusd gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Stops statusd as an operator would: SIGTERM, then SIGKILL if it is still running after
/// [`STOP_GRACE`]. Stopping one already stopped changes nothing.
fn stop(child: &mut Child) -> Stopped {
    let asked = Instant::now();
    let ended = |clean: bool| Stopped { clean, seconds: asked.elapsed().as_secs_f64() };
    if !matches!(child.try_wait(), Ok(None)) {
        return ended(false);
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) takes two integers and touches no memory of this process.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        while asked.elapsed() < STOP_GRACE {
            match child.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Ok(Some(status)) => return ended(status.success()),
                Err(_) => return ended(false),
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    ended(false)
}

/// Where the target listens: HTTP (always: the notifications' webhook is there too), and the
/// name server and TLS listener when the assets use them (0 when not served).
struct Ports {
    http: u16,
    dns: u16,
    tls: u16,
}

/// The tool's CA certificate (PEM), in the run's directory, for the TLS and HTTPS assets'
/// `caFile`.
const CA_FILE: &str = "ca.pem";

fn write_config(dir: &Path, args: &Args, ports: &Ports) -> std::io::Result<()> {
    let ca_file = dir.join(CA_FILE);
    let port = ports.http;
    let assets: Vec<Value> = (0..args.assets)
        .map(|i| {
            let host = (i % usize::from(args.addresses.max(1))) + 1;
            let mut asset = json!({
                "id": format!("load-{i}"), "assetType": args.asset_type.manifest_type(),
                "intervalSeconds": args.interval, "timeoutSeconds": args.interval.clamp(1, 5),
            });
            match args.asset_type {
                AssetType::Http => {
                    asset["address"] = json!(format!("http://127.0.0.{host}:{port}/a/{i}"));
                    asset["expectedStatusCodes"] = json!([200]);
                }
                AssetType::Tcp => asset["address"] = json!(format!("127.0.0.{host}:{port}")),
                AssetType::Dns => {
                    asset["address"] = json!(format!("a{i}.load.test"));
                    asset["nameserver"] = json!(format!("127.0.0.{host}:{}", ports.dns));
                    asset["expectedValues"] = json!([DNS_ANSWER.to_string()]);
                }
                AssetType::Tls => {
                    asset["address"] = json!(format!("127.0.0.{host}:{}", ports.tls));
                    asset["serverName"] = json!(format!("a{i}.load.test"));
                    asset["caFile"] = json!(ca_file);
                }
                AssetType::Https => {
                    asset["address"] = json!(format!("https://127.0.0.{host}:{}/a/{i}", ports.tls));
                    asset["expectedStatusCodes"] = json!([200]);
                    asset["caFile"] = json!(ca_file);
                }
            }
            asset
        })
        .collect();
    std::fs::write(dir.join("manifest.json"), json!({ "assets": assets }).to_string())?;
    let notifiers = json!({
        "notifiers": {"load": {"type": "webhook", "url": format!("http://127.0.0.1:{port}/hook")}},
        "notificationPolicy": {"onDown": ["load"], "onRecovery": ["load"], "throttleSeconds": 0}
    });
    std::fs::write(dir.join("notifiers.json"), notifiers.to_string())?;
    std::fs::write(dir.join("statusd.toml"), "")
}

/// The port a started statusd listens on. It is started on `127.0.0.1:0` and picks one
/// itself, so no other program can take the port between the tool choosing it and statusd
/// binding it (as with a port found free beforehand). Read from `/proc`: the listening TCP
/// socket on loopback among the file descriptors of the child or of a process it started (a
/// `--statusd` wrapper script that runs statusd under valgrind or heaptrack); None until then.
fn listening_port(pid: i32) -> Option<u16> {
    use procfs::net::TcpState;
    use procfs::process::{FDTarget, Process, all_processes};
    let parents: Vec<(i32, i32)> =
        all_processes().ok()?.filter_map(|p| p.ok()?.stat().ok()).map(|stat| (stat.pid, stat.ppid)).collect();
    let mut family = vec![pid];
    let mut next = 0;
    while let Some(&parent) = family.get(next) {
        family.extend(parents.iter().filter(|(_, ppid)| *ppid == parent).map(|(pid, _)| *pid));
        next += 1;
    }
    let sockets: std::collections::HashSet<u64> = family
        .iter()
        .filter_map(|&pid| Process::new(pid).ok()?.fd().ok())
        .flatten()
        .filter_map(|fd| match fd.ok()?.target {
            FDTarget::Socket(inode) => Some(inode),
            _ => None,
        })
        .collect();
    Process::new(pid)
        .ok()?
        .tcp()
        .ok()?
        .into_iter()
        .find(|entry| {
            entry.state == TcpState::Listen && entry.local_address.ip().is_loopback() && sockets.contains(&entry.inode)
        })
        .map(|entry| entry.local_address.port())
}

/// Why a started program has no port to be reached on.
enum NotListening {
    Exited(std::process::ExitStatus),
    /// Its state could not be read (`waitpid` failed).
    Unwaitable(std::io::Error),
    TimedOut,
}

/// The port `child` (process `pid`) listens on, once it does (read from `/proc` every 20 ms),
/// within `limit`.
async fn port_once_listening(child: &mut Child, pid: i32, limit: Duration) -> Result<u16, NotListening> {
    let waited = Instant::now();
    loop {
        if let Some(port) = listening_port(pid) {
            return Ok(port);
        }
        if let Some(status) = child.try_wait().map_err(NotListening::Unwaitable)? {
            return Err(NotListening::Exited(status));
        }
        if waited.elapsed() > limit {
            return Err(NotListening::TimedOut);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A statusd started, its API port not known yet.
struct Starting {
    /// Taken by [`Starting::listening`] into the `Statusd`; stopped here if it never gets there.
    child: Option<Child>,
    pid: i32,
    binary: PathBuf,
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            stop(child);
        }
    }
}

/// Starts one statusd on the files of `dir`, as replica `replica` of `replicas`.
fn spawn(
    binary: &Path,
    dir: &Path,
    db: &str,
    replica: usize,
    replicas: usize,
) -> Result<Starting, Box<dyn std::error::Error>> {
    let path = |name: &str| dir.join(name).display().to_string();
    let mut command = Command::new(binary);
    command
        .args(["--config", &path("statusd.toml"), "--manifest", &path("manifest.json")])
        .args(["--notifiers", &path("notifiers.json"), "--db", db])
        .args(["--listen", "127.0.0.1:0", "--log-level", "warn"]);
    if replicas > 1 {
        command.args(["--cluster", "--instance-id", &format!("load-replica-{replica}")]);
    }
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", binary.display()))?;
    let pid = i32::try_from(child.id())?;
    Ok(Starting { child: Some(child), pid, binary: binary.to_path_buf() })
}

impl Starting {
    /// Waits (up to 180 s) until statusd listens; then it is reached on that port.
    async fn listening(mut self) -> Result<Statusd, Box<dyn std::error::Error>> {
        let binary = self.binary.display().to_string();
        let child = self.child.as_mut().ok_or("the child was already taken")?;
        let api_port = match port_once_listening(child, self.pid, Duration::from_secs(180)).await {
            Ok(port) => port,
            Err(NotListening::Exited(status)) => {
                return Err(format!("{binary} exited ({status}) before it listened").into());
            }
            Err(NotListening::Unwaitable(error)) => return Err(format!("{binary}: {error}").into()),
            Err(NotListening::TimedOut) => {
                return Err(format!(
                    "{binary} did not listen within 180 s, or its port could not be read from /proc \
                     (another network namespace, /proc/PID/fd not readable)"
                )
                .into());
            }
        };
        // Idle connections are dropped before statusd's own 10 s header-read timeout closes them
        // under a request sent at that very moment (hyper: IncompleteMessage).
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_idle_timeout(Duration::from_secs(5))
            .build()?;
        let child = self.child.take().ok_or("the child was already taken")?;
        Ok(Statusd { child, pid: self.pid, base: format!("http://127.0.0.1:{api_port}"), http })
    }
}

/// Every statusd's `/metrics`, one after the other (rendering takes seconds at tens of
/// thousands of assets: at once they would slow each other and the probes measured), each with
/// the moment it stands for, the middle of its scrape. A window timed by the tool's own clock
/// would count probes for longer than it says.
async fn scrape_each(statusds: &[Statusd]) -> Result<Vec<(String, Instant)>, String> {
    let mut pages = Vec::new();
    for statusd in statusds {
        let asked = Instant::now();
        let page = statusd.metrics().await?;
        pages.push((page, asked + asked.elapsed() / 2));
    }
    Ok(pages)
}

/// What PostgreSQL's statistics views say about the database: transactions (every statement
/// outside a transaction block counts as one), and the scans of the coordination tables (a
/// statement scans a table at least once; the lease statement looks each of its leases up
/// by index, one scan each).
#[derive(Clone, Copy, Default)]
struct DbWork {
    transactions: f64,
    coordination_scans: f64,
    coordination_rows_written: f64,
}

async fn db_work(pool: &sqlx::PgPool) -> Result<DbWork, sqlx::Error> {
    // The views are a snapshot per transaction; a fresh one for each reading.
    sqlx::query("SELECT pg_stat_clear_snapshot()").execute(pool).await?;
    let transactions: i64 = sqlx::query_scalar(
        "SELECT (xact_commit + xact_rollback)::int8 FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await?;
    let (scans, written): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT sum(coalesce(seq_scan, 0) + coalesce(idx_scan, 0))::int8,
                sum(n_tup_ins + n_tup_upd + n_tup_del)::int8
         FROM pg_stat_user_tables
         WHERE relname IN ('cluster_members', 'asset_leases', 'asset_states', 'incident_events', 'asset_location_states')",
    )
    .fetch_one(pool)
    .await?;
    Ok(DbWork {
        transactions: transactions as f64,
        coordination_scans: scans.unwrap_or(0) as f64,
        coordination_rows_written: written.unwrap_or(0) as f64,
    })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("statusd-load-{}", uuid::Uuid::now_v7()));
    // Stopped by a signal, the run is dropped: every program it started is stopped by its
    // `Drop` (SIGTERM, then SIGKILL), and the run's directory is removed below, as after a run.
    let stopped = stop_signal();
    let outcome = tokio::select! {
        outcome = run(args, &dir) => outcome,
        signal = stopped => Err(format!("stopped by {signal}").into()),
    };
    let _ = std::fs::remove_dir_all(&dir);
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("statusd-load: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The name of the first SIGINT or SIGTERM the tool receives (never, if they cannot be
/// listened for). Listened for from the call, not from the first poll: a signal that comes
/// before the run has been polled once is caught too.
fn stop_signal() -> impl std::future::Future<Output = &'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let listening = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()));
    async move {
        let (Ok(mut interrupt), Ok(mut terminate)) = listening else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        }
    }
}

/// Options that cannot go together, refused before anything starts: the message names the
/// option given (`--db: …`), not every option the rule covers, and says what to use instead.
fn refuse(args: &Args) -> Result<(), String> {
    if !(0.0..=1.0).contains(&args.fail_fraction) {
        return Err(format!("--fail-fraction {}: must be from 0 to 1", args.fail_fraction));
    }
    if args.fail_fraction > 0.0 && args.asset_type == AssetType::Tcp {
        return Err("--fail-fraction: TCP assets cannot be made to fail (--asset-type http, dns, tls or https)".into());
    }
    let postgres = args.db.as_deref().is_some_and(|db| db.starts_with("postgres"));
    match args.monitor {
        Monitor::Statusd => {
            if args.replicas > 1 && !postgres {
                return Err(format!("--replicas {}: cluster mode needs a PostgreSQL --db", args.replicas));
            }
            let peer_only = [
                ("--prometheus", args.prometheus.is_some()),
                ("--blackbox-exporter", args.blackbox_exporter.is_some()),
            ];
            if let Some((option, _)) = peer_only.iter().find(|(_, given)| *given) {
                return Err(format!(
                    "{option}: only with --monitor blackbox (it names a program of the peer, not of statusd)"
                ));
            }
        }
        Monitor::Blackbox => {
            let why = "--monitor blackbox measures Prometheus scraping blackbox_exporter";
            if args.asset_type != AssetType::Http {
                let given: &str = args.asset_type.into();
                return Err(format!("--asset-type {given}: {why} with HTTP assets only"));
            }
            if let Some(db) = &args.db {
                return Err(format!("--db {db}: {why}, which keep no results in a database of statusd's"));
            }
            if args.replicas > 1 {
                return Err(format!("--replicas {}: {why}, one of each", args.replicas));
            }
            if args.history > 0 {
                return Err(format!("--history {}: {why}, which have no stored history to start from", args.history));
            }
            if let Some(statusd) = &args.statusd {
                return Err(format!("--statusd {}: {why}, not statusd", statusd.display()));
            }
        }
    }
    Ok(())
}

/// One run, its files in `dir` (created here, removed by the caller).
async fn run(args: Args, dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    refuse(&args)?;
    let interval = Duration::from_secs(args.interval.max(1));
    let target = Arc::new(Target {
        failing_below: AtomicU64::new(0),
        measuring: AtomicBool::new(false),
        interval,
        last: (0..args.assets).map(|_| Mutex::new(None)).collect(),
        deviations: Mutex::new(Vec::new()),
        notifications: AtomicU64::new(0),
    });
    std::fs::create_dir_all(dir)?;
    let dir = dir.to_path_buf();
    let addresses = args.addresses.max(1);
    let ports = Ports {
        http: serve(app(Arc::clone(&target)), addresses).await?,
        dns: match args.asset_type {
            AssetType::Dns => serve_dns(Arc::clone(&target), addresses).await?,
            _ => 0,
        },
        tls: match args.asset_type {
            AssetType::Tls | AssetType::Https => {
                let tls = TlsTarget::new(Arc::clone(&target), addresses, &dir.join(CA_FILE))?;
                serve_tls(tls, app(Arc::clone(&target)), addresses).await?
            }
            _ => 0,
        },
    };
    if args.monitor == Monitor::Blackbox {
        println!("{}", peer::measure(&args, &target, ports.http, &dir).await?);
        return Ok(());
    }
    write_config(&dir, &args, &ports)?;
    // The database in a directory of its own, as in the default layout (`config/` beside
    // `statusd.db`) and the container's (`/app/config`, `/app/data`): the config watcher listens
    // to its directory, and every write beside the config files would wake it (≈ 5 % of
    // statusd's CPU at 10,000 probes/s, measured with perf), which no deployment pays.
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let db = args.db.clone().unwrap_or_else(|| format!("sqlite://{}", data.join("statusd.db").display()));
    let binary = match &args.statusd {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("statusd"),
    };
    let replicas = args.replicas.max(1);
    let history_rows = match args.history {
        0 => 0,
        seconds => fill_history(&db, &dir, interval, Duration::from_secs(seconds)).await?,
    };
    let started = Instant::now();
    let mut statusds = Vec::new();
    // All started before any is waited for, so replicas come up together as they did.
    let mut starting = Vec::new();
    for replica in 0..replicas {
        starting.push(spawn(&binary, &dir, &db, replica, replicas)?);
    }
    for replica in starting {
        statusds.push(replica.listening().await?);
    }
    let cluster = replicas > 1;

    // Ready: every /readyz answers 200 (every asset actor started, the store reachable) and, in
    // cluster mode, the replicas' leases cover every asset.
    loop {
        let mut ready = true;
        let mut owned = 0.0;
        for statusd in &statusds {
            ready &= matches!(statusd.get("/readyz").await, Some((StatusCode::OK, _)));
            owned += statusd.owned(cluster).await.unwrap_or(0.0);
        }
        if ready && owned >= args.assets as f64 {
            break;
        }
        if started.elapsed() > Duration::from_secs(180) {
            return Err("statusd was not ready within 180 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready_s = started.elapsed().as_secs_f64();
    // One interval for the first ticks (spread over it) to have happened.
    tokio::time::sleep(interval).await;

    // Sample GET /api/assets/{id} and a page of 100 of GET /api/assets (following nextCursor,
    // from the start again after the last page) through the window.
    let sampling = Arc::new(AtomicBool::new(true));
    // Sampled on the first replica (there is always one): any replica answers for every asset.
    let statusd = &statusds[0];
    let sampler = {
        let (http, base, sampling, assets) =
            (statusd.http.clone(), statusd.base.clone(), Arc::clone(&sampling), args.assets);
        tokio::spawn(async move {
            let (mut latencies, mut pages) = (Vec::new(), Vec::new());
            let mut cursor: Option<String> = None;
            let mut i = 0usize;
            let micros = |asked: Instant| u64::try_from(asked.elapsed().as_micros()).unwrap_or(u64::MAX);
            while sampling.load(Ordering::Relaxed) {
                let asked = Instant::now();
                if http.get(format!("{base}/api/assets/load-{}", i % assets.max(1))).send().await.is_ok() {
                    latencies.push(micros(asked));
                }
                i += 7919;
                let after = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
                let asked = Instant::now();
                if let Ok(response) = http.get(format!("{base}/api/assets?limit=100{after}")).send().await
                    && let Ok(page) = response.json::<serde_json::Value>().await
                {
                    pages.push(micros(asked));
                    cursor = page["nextCursor"].as_str().map(str::to_string);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (latencies, pages)
        })
    };

    let pool = match db.starts_with("postgres") {
        true => Some(sqlx::PgPool::connect(&db).await?),
        false => None,
    };
    let db_before = match &pool {
        Some(pool) => Some(db_work(pool).await?),
        None => None,
    };
    let (metrics_before, counted_from): (Vec<String>, Vec<Instant>) = scrape_each(&statusds).await?.into_iter().unzip();
    let (mut written_before, mut cpu_before) = (0.0, Vec::new());
    for statusd in &statusds {
        written_before += statusd.written().await;
    }
    let cpu_from = Instant::now();
    for statusd in &statusds {
        cpu_before.push(cpu_seconds(statusd.pid).ok_or("reading statusd's CPU time")?);
    }
    let sqlite_before: Option<f64> = statusds.iter().map(|s| sqlite_cpu_seconds(s.pid)).sum();
    let own_pid = i32::try_from(std::process::id())?;
    let tool_before = cpu_seconds(own_pid).ok_or("reading the tool's own CPU time")?;
    target.hold_window(&args).await;
    let mut cpu = Vec::new();
    for (statusd, before) in statusds.iter().zip(&cpu_before) {
        cpu.push(cpu_seconds(statusd.pid).ok_or("reading statusd's CPU time")? - before);
    }
    let sqlite_after: Option<f64> = statusds.iter().map(|s| sqlite_cpu_seconds(s.pid)).sum();
    let tool_cpu = cpu_seconds(own_pid).ok_or("reading the tool's own CPU time")? - tool_before;
    let cpu_window = cpu_from.elapsed().as_secs_f64();
    let db_after = match &pool {
        Some(pool) => Some(db_work(pool).await?),
        None => None,
    };
    let scraped = Instant::now();
    let (metrics_after, counted_to): (Vec<String>, Vec<Instant>) = scrape_each(&statusds).await?.into_iter().unzip();
    let scrape_s = scraped.elapsed().as_secs_f64() / statusds.len() as f64;
    let metrics_gzip_bytes = statusds[0].metrics_gzip_bytes().await;
    // Each replica's probe counters have a window of their own, from one reading to the other.
    let windows: Vec<f64> =
        counted_to.iter().zip(&counted_from).map(|(to, from)| to.duration_since(*from).as_secs_f64()).collect();
    let elapsed = windows.iter().sum::<f64>() / windows.len() as f64;
    let (mut written_after, mut rss_final, mut rss_peak, mut rss_anon) = (0.0, Vec::new(), Vec::new(), Vec::new());
    for statusd in &statusds {
        written_after += statusd.written().await;
        let (now, peak, anon) = rss_mib(statusd.pid).ok_or("reading statusd's memory")?;
        rss_final.push((now * 10.0).round() / 10.0);
        rss_peak.push((peak * 10.0).round() / 10.0);
        rss_anon.push((anon * 10.0).round() / 10.0);
    }
    sampling.store(false, Ordering::Relaxed);
    let (mut api, mut pages) = sampler.await?;

    // Sums over the replicas of what changed in the window.
    let delta = |name: &str, label: Option<&str>| -> f64 {
        metrics_after
            .iter()
            .zip(&metrics_before)
            .map(|(a, b)| metric_sum(a, name, label) - metric_sum(b, name, label))
            .sum()
    };
    let done = delta("statusd_probe_total", None);
    let rate: f64 = metrics_after
        .iter()
        .zip(&metrics_before)
        .zip(&windows)
        .map(|((a, b), window)| {
            (metric_sum(a, "statusd_probe_total", None) - metric_sum(b, "statusd_probe_total", None)) / window
        })
        .sum();
    let ok = delta("statusd_probe_total", Some("result=\"success\""));
    let expected = args.assets as f64 * elapsed / interval.as_secs_f64();
    let cpu_total: f64 = cpu.iter().sum();
    let lag = "statusd_schedule_lag_seconds";
    let lag_p99 = metrics_after
        .iter()
        .zip(&metrics_before)
        .filter_map(|(a, b)| quantile(&buckets(b, lag), &buckets(a, lag), 0.99))
        .reduce(f64::max);
    let per_s = |count: f64| (count / elapsed * 10.0).round() / 10.0;
    let db_line = match (db_before, db_after) {
        (Some(before), Some(after)) => json!({
            "transactions_per_s": per_s(after.transactions - before.transactions),
            "coordination_scans_per_s": per_s(after.coordination_scans - before.coordination_scans),
            "coordination_rows_written_per_s": per_s(after.coordination_rows_written - before.coordination_rows_written),
        }),
        _ => Value::Null,
    };
    let one_or_each = |values: &[f64]| if values.len() == 1 { json!(values[0]) } else { json!(values) };
    let cpu_each: Vec<f64> = cpu.iter().map(|c| (c * 1000.0).round() / 1000.0).collect();
    let mut deviations = std::mem::take(&mut *target.deviations.lock());
    let ms = |micros: Option<u64>| micros.map(|m| m as f64 / 1000.0);
    let mut line = json!({
        "assets": args.assets,
        "asset_type": <&str>::from(args.asset_type),
        "interval_s": args.interval,
        "window_s": (elapsed * 10.0).round() / 10.0,
        "addresses": args.addresses,
        "db": if args.db.is_some() { "given" } else { "sqlite" },
        "fail_fraction": args.fail_fraction,
        "history_s": args.history,
        "history_rows": history_rows,
        "time_to_ready_s": (ready_s * 100.0).round() / 100.0,
        "probes_expected": expected.round(),
        "probes_done": done,
        "probes_ok": ok,
        "probes_per_s": rate.round(),
        "replicas": replicas,
        "cpu_s": one_or_each(&cpu_each),
        // Of which SQLite's threads (on PostgreSQL, 0: its work is the server's).
        "sqlite_cpu_s": sqlite_before.zip(sqlite_after).map(|(before, after)| ((after - before) * 1000.0).round() / 1000.0),
        // CPU over its own window, per probe at the rate of the counters' window.
        "cpu_ms_per_1000_probes": if done > 0.0 {
            (cpu_total * 1_000_000.0 / (rate * cpu_window) * 10.0).round() / 10.0
        } else {
            0.0
        },
        // The tool's own (its target, its name server, its API sampling): the machine's other
        // load, which on a machine of few cores may be the limit rather than statusd.
        "tool_cpu_s": (tool_cpu * 1000.0).round() / 1000.0,
        "rss_peak_mib": one_or_each(&rss_peak),
        "rss_final_mib": one_or_each(&rss_final),
        "rss_anon_final_mib": one_or_each(&rss_anon),
        "database": db_line,
        "gap_deviation_p50_ms": ms(percentile(&mut deviations, 0.50)),
        "gap_deviation_p99_ms": ms(percentile(&mut deviations, 0.99)),
        "schedule_lag_p99_s": lag_p99,
        "rows_stored": written_after - written_before,
        "notifications_received": target.notifications.load(Ordering::Relaxed),
        "api_asset_p99_ms": ms(percentile(&mut api, 0.99)),
        "api_samples": api.len(),
        "api_page100_p99_ms": ms(percentile(&mut pages, 0.99)),
        "api_page_samples": pages.len(),
        "metrics_scrape_s": (scrape_s * 1000.0).round() / 1000.0,
        "metrics_bytes": metrics_after[0].len(),
        "metrics_gzip_bytes": metrics_gzip_bytes,
        "probes_skipped": delta("statusd_probes_skipped_total", None),
    });
    let stopped: Vec<Stopped> = statusds.iter_mut().map(|statusd| stop(&mut statusd.child)).collect();
    let stop_s: Vec<f64> = stopped.iter().map(|s| (s.seconds * 100.0).round() / 100.0).collect();
    line["stop_s"] = one_or_each(&stop_s);
    line["stopped_cleanly"] = json!(stopped.iter().all(|s| s.clean));
    println!("{line}");
    drop(statusds);
    Ok(())
}
