//! Settings: built-in defaults < `config/statusd.toml` < `STATUSD_*` environment < flags.
//!
//! The environment comes in as a map, not from the process, so tests can run many instances
//! with different settings in one process.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};

use crate::report::Bound;
use crate::telemetry::{LogFormat, log_filter};

const DEFAULT_SETTINGS_FILE: &str = "config/statusd.toml";
const ENV_PREFIX: &str = "STATUSD_";

/// Every whole-number setting and its range, by its key in `statusd.toml` (the README's
/// settings table lists them). Checked after layering, whichever layer a value came from.
const BOUNDS: &[Bound] = &[
    Bound::new("workers", 1, 10_000),
    Bound::new("api_port", 1, 65_535),
    Bound::new("max_connections", 1, 100_000),
    Bound::new("persistence.batch_size", 1, 100_000),
    Bound::new("persistence.flush_interval_ms", 1, 60_000),
    Bound::new("persistence.max_buffered", 1, 10_000_000),
    Bound::new("persistence.connect_timeout_seconds", 0, 3600),
    Bound::new("persistence.write_stall_seconds", 1, 86_400),
    // A century: "keep forever" in practice, and far inside what date arithmetic can take.
    Bound::new("retention.days", 1, 36_500),
    Bound::new("retention.rollup_days", 1, 36_500),
    Bound::new("retention.interval_seconds", 1, 7 * 24 * 3600),
    Bound::new("retention.batch", 1, 100_000),
    // Benchmarks and chaos tests set a million: "never give up on an actor".
    Bound::new("restart.max_restarts", 0, 1_000_000),
    Bound::new("restart.window_seconds", 1, 24 * 3600),
    // A lease shorter than a second is renewed more often than a round trip can promise; one
    // over ten minutes leaves a dead replica's assets unprobed for too long to be a monitor.
    Bound::new("cluster.lease_seconds", 1, 600),
];

#[derive(Debug, Parser)]
#[command(name = "statusd", version = crate::VERSION, about = "An uptime monitor: probes assets, opens incidents, notifies people.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub flags: Flags,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Run the monitor (the default).
    Run,
    /// Validate the config files, print every problem, exit 1 if there is any.
    CheckConfig,
    /// Ask the running statusd at the `listen` address for /healthz: exit 0 when it answers 200,
    /// 1 otherwise (the container's HEALTHCHECK; distroless images have no curl).
    Healthcheck,
}

/// Flags override everything else; unset flags leave lower layers alone.
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct Flags {
    /// Settings file [default: config/statusd.toml, if present]
    #[arg(long, global = true, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Assets to watch [default: config/manifest.json]
    #[arg(long, global = true, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<PathBuf>,
    /// Notification channels and policy [default: config/notifiers.json]
    #[arg(long, global = true, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notifiers: Option<PathBuf>,
    /// Database URL: sqlite://FILE or postgres://… [default: sqlite://statusd.db]
    #[arg(long, global = true, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db: Option<String>,
    /// Probes that may run at the same time [default: 64]
    #[arg(long, global = true, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Address of the API and /metrics [default: 127.0.0.1:8080]
    #[arg(long, global = true, value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Port of the API, keeping the address of --listen (the seed's flag)
    #[arg(long, global = true, value_name = "PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_port: Option<u16>,
    /// Log format [default: pretty]
    #[arg(long, global = true, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Log level or filter, e.g. debug or "statusd=debug,warn" [default: info]
    #[arg(long, global = true, value_name = "LEVEL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// Enable POST /api/debug/panic?actor=NAME, to test restarts from outside
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub enable_chaos: bool,
    #[command(flatten)]
    #[serde(skip_serializing_if = "ClusterFlags::is_empty")]
    pub cluster: ClusterFlags,
    #[command(flatten)]
    #[serde(skip_serializing_if = "ProbesFlags::is_empty")]
    pub probes: ProbesFlags,
}

/// The `[probes]` flags, serialized nested like [`ClusterFlags`].
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct ProbesFlags {
    /// Local address every probe (HTTP, TCP, TLS, DNS, ICMP) is sent from (`[probes] source_address`)
    #[arg(long, global = true, value_name = "IP")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_address: Option<std::net::IpAddr>,
}

impl ProbesFlags {
    fn is_empty(&self) -> bool {
        self.source_address.is_none()
    }
}

/// The `[cluster]` flags; serialized nested, so they layer over `cluster.*` like the file and
/// `STATUSD_CLUSTER__*` do.
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct ClusterFlags {
    /// Run as one replica of several sharing a PostgreSQL database (`[cluster] enabled`)
    #[arg(long = "cluster", global = true)]
    #[serde(rename = "enabled", skip_serializing_if = "std::ops::Not::not")]
    pub enabled: bool,
    /// This replica's name in the cluster [default: host name and process id]
    #[arg(long, global = true, value_name = "ID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Where this replica probes from; replicas of one location share its assets [default: default]
    #[arg(long, global = true, value_name = "NAME")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

impl ClusterFlags {
    fn is_empty(&self) -> bool {
        !self.enabled && self.instance_id.is_none() && self.location.is_none()
    }
}

/// Every setting, after layering.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub manifest: PathBuf,
    pub notifiers: PathBuf,
    pub db: String,
    pub workers: usize,
    pub listen: SocketAddr,
    pub api_port: Option<u16>,
    pub log_format: LogFormat,
    pub log_level: String,
    pub enable_chaos: bool,
    /// Bearer token required by mutating API routes, when set (`STATUSD_API_TOKEN`).
    pub api_token: Option<String>,
    /// Origins whose pages may call the API from a browser (`https://status.example.com`, or
    /// `*`). Empty, the default, sends no CORS headers at all: browsers keep other sites out.
    pub cors_origins: Vec<String>,
    /// Serve `/demo/flaky` and `/demo/webhook`, which the example config watches and notifies.
    pub demo: bool,
    /// API connections open at once; further clients wait to be accepted (`STATUSD_MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// Reload when the config files change; without it, only SIGHUP and `POST /api/reload` do.
    pub watch_config: bool,
    pub persistence: PersistenceSettings,
    pub retention: RetentionSettings,
    pub restart: RestartSettings,
    /// The public status page (`GET /`, `/api/status`, `/feed.atom`).
    pub statuspage: StatusPageSettings,
    pub sla: SlaSettings,
    /// `[metrics]`: what `/metrics` exports per asset.
    pub metrics: MetricsSettings,
    /// `[cluster]`: several replicas on one PostgreSQL database.
    pub cluster: ClusterSettings,
    /// `[probes]`: how probes go out.
    pub probes: ProbesSettings,
    /// Where these settings came from, to load them again on reload.
    #[serde(skip)]
    source: Option<Source>,
}

/// The flags and environment the settings were layered from (the file is read again).
#[derive(Clone)]
struct Source {
    flags: Flags,
    env: BTreeMap<String, String>,
}

impl std::fmt::Debug for Source {
    /// The environment may hold secrets (STATUSD_API_TOKEN, a database password).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Source { .. }")
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistenceSettings {
    /// Flush as soon as this many results wait (default 5,000). Large by default because each
    /// write of the results costs the database a page per asset it touches, whatever the number
    /// of rows: on SQLite at 10,000 probes/s, writes of 5,000 results took 35 to 40 % less of
    /// its thread than writes of 500 (README, Benchmarks). Below 5,000 probes/s the flush
    /// interval writes first, so results reach the store at most that late either way.
    pub batch_size: usize,
    /// Flush at least this often, in milliseconds (default 1,000). Assets probed every second
    /// or two put several results each in a longer interval's write, which costs SQLite a page
    /// per asset whatever the rows: 5,000 took its thread's work down by half at 1,000 assets
    /// × 1 s on a database with an hour of history (README, Benchmarks), for history stored up
    /// to 5 s after the probe. Changes (incidents, notifications) are written at once anyway.
    pub flush_interval_ms: u64,
    /// Probe results held while the database is unreachable; by default ten minutes of
    /// probes at the configured rate (at least 10,000).
    pub max_buffered: Option<usize>,
    /// How long to keep trying to reach the database at start before giving up.
    pub connect_timeout_seconds: u64,
    /// `/readyz` fails once writes have been failing and nothing was written for this long;
    /// by default three flush intervals (at least 3 s).
    pub write_stall_seconds: Option<u64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Raw probe events are kept this many days.
    pub days: u32,
    /// Hourly rollups (uptime and latency history) are kept this many days.
    pub rollup_days: u32,
    /// How often old history is pruned.
    pub interval_seconds: u64,
    /// Events deleted per transaction: small enough that writers never wait long.
    pub batch: u32,
}

impl PersistenceSettings {
    /// Flush at least this often.
    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }

    /// How long writes may fail with nothing written before statusd says it is not ready:
    /// `write_stall_seconds`, by default three flush intervals and at least 3 s.
    pub fn write_stall(&self) -> Duration {
        match self.write_stall_seconds {
            Some(seconds) => Duration::from_secs(seconds),
            None => Duration::from_millis(self.flush_interval_ms.saturating_mul(3)).max(Duration::from_secs(3)),
        }
    }
}

impl RetentionSettings {
    /// Raw probe events older than this are deleted.
    pub fn events_age(&self) -> chrono::TimeDelta {
        days(self.days)
    }

    /// Hourly rollups older than this are deleted.
    pub fn rollups_age(&self) -> chrono::TimeDelta {
        days(self.rollup_days)
    }

    /// How often a retention pass runs.
    pub fn every(&self) -> Duration {
        Duration::from_secs(self.interval_seconds)
    }
}

/// A retention period. Settings bound it far inside chrono's range; one past it would keep
/// everything, as the retention task's checked arithmetic then prunes nothing.
fn days(days: u32) -> chrono::TimeDelta {
    chrono::TimeDelta::try_days(i64::from(days)).unwrap_or(chrono::TimeDelta::MAX)
}

/// `[statuspage]`: what the public status page says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusPageSettings {
    /// Serve `GET /`, `GET /api/status` and `/feed.atom`; false answers them 404.
    pub enabled: bool,
    /// The page's title and the feed's (default "Service status").
    pub title: String,
    /// A sentence under the title; none by default.
    pub description: Option<String>,
    /// An image shown next to the title, as the browser will fetch it: a path on your own
    /// site or a `data:` URL keeps the page free of requests to other hosts.
    pub logo_url: Option<String>,
}

impl Default for StatusPageSettings {
    fn default() -> Self {
        StatusPageSettings { enabled: true, title: "Service status".into(), description: None, logo_url: None }
    }
}

/// `[metrics]`: what `/metrics` exports per asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// `full` (the default) or `summary` (`STATUSD_METRICS__PER_ASSET`); see [`PerAsset`].
    pub per_asset: PerAsset,
}

/// How much `/metrics` says about each asset. Per-asset latency histograms are most of the
/// page (about a kilobyte per asset), which at tens of thousands of assets makes a scrape
/// megabytes long: `summary` keeps what an alert per asset needs and histograms per probe type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PerAsset {
    /// Every per-asset series, a latency histogram per asset included.
    #[default]
    Full,
    /// Per asset: up, last latency, probe counters (and skipped ticks); latency histograms
    /// per probe type only; series of rare events per asset (restarts, panics, flapping)
    /// appear when they happen instead of at zero from the start.
    Summary,
}

/// `[sla]`: SLA reports (`GET /api/sla`), badges and the error-budget metric.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaSettings {
    /// The uptime promised, in percent, for assets without their own `slaTarget`: above 0, at
    /// most 100 (`STATUSD_SLA__DEFAULT_TARGET`).
    pub default_target: f64,
}

/// `[probes]`: how probes go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbesSettings {
    /// The local address every probe is sent from: HTTP, TCP and TLS connections, DNS queries
    /// (UDP and TCP) and ICMP echoes (`--source-address`, `STATUSD_PROBES__SOURCE_ADDRESS`;
    /// blackbox_exporter's `source_ip_address`): on a host with several addresses or uplinks,
    /// which one the targets see. None: the system picks.
    pub source_address: Option<std::net::IpAddr>,
}

/// `[cluster]`: replicas sharing one PostgreSQL database and the assets in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// Share the database with other replicas (`--cluster`); without it, statusd claims the
    /// database for itself and refuses to start when another instance holds it.
    pub enabled: bool,
    /// This replica's name (`--instance-id`); by default the host name and the process id.
    pub instance_id: Option<String>,
    /// Where this replica probes from (`--location`).
    pub location: String,
    /// How long an asset's lease (and a replica's heartbeat) lasts: a dead replica's assets are
    /// taken over within twice this.
    pub lease_seconds: u64,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings { enabled: false, instance_id: None, location: "default".into(), lease_seconds: 15 }
    }
}

impl ClusterSettings {
    /// The id this instance goes by: the one set, or host name and process id.
    pub fn instance_id(&self) -> String {
        match &self.instance_id {
            Some(id) => id.clone(),
            None => format!("{}-{}", host_name(), std::process::id()),
        }
    }

    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_seconds)
    }
}

/// This machine's name, as the kernel has it; `localhost` if it cannot be read.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartSettings {
    /// More failures than this within the window and an actor is marked crashed.
    pub max_restarts: usize,
    pub window_seconds: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            manifest: "config/manifest.json".into(),
            notifiers: "config/notifiers.json".into(),
            db: "sqlite://statusd.db".into(),
            workers: 64,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            api_port: None,
            log_format: LogFormat::Pretty,
            log_level: "info".into(),
            enable_chaos: false,
            api_token: None,
            cors_origins: Vec::new(),
            demo: false,
            max_connections: 1024,
            watch_config: true,
            persistence: PersistenceSettings {
                batch_size: 5000,
                flush_interval_ms: 1000,
                max_buffered: None,
                connect_timeout_seconds: 30,
                write_stall_seconds: None,
            },
            retention: RetentionSettings { days: 30, rollup_days: 400, interval_seconds: 300, batch: 5000 },
            restart: RestartSettings { max_restarts: 5, window_seconds: 60 },
            statuspage: StatusPageSettings::default(),
            sla: SlaSettings { default_target: 99.9 },
            metrics: MetricsSettings::default(),
            cluster: ClusterSettings::default(),
            probes: ProbesSettings::default(),
            source: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{}", .0.to_string().trim())]
    Cli(#[from] clap::Error),
    /// Every problem found, each naming its setting (`retention.days: must be at most 36500`).
    #[error("invalid settings: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

impl Settings {
    /// Parses the command line and layers the settings under it.
    pub fn from_args<I, T>(args: I, env: &BTreeMap<String, String>) -> Result<(Command, Settings), SettingsError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let cli = Cli::try_parse_from(args)?;
        let settings = Settings::load(&cli.flags, env)?;
        Ok((cli.command.unwrap_or(Command::Run), settings))
    }

    pub fn load(flags: &Flags, env: &BTreeMap<String, String>) -> Result<Settings, SettingsError> {
        let file = match &flags.config {
            Some(path) => Toml::file_exact(path),
            None => Toml::file(DEFAULT_SETTINGS_FILE),
        };
        let mut settings: Settings = Figment::from(Serialized::defaults(Settings::default()))
            .merge(file)
            .merge(EnvVars::from(env))
            .merge(Serialized::defaults(flags))
            .extract()
            .map_err(|error| SettingsError::Invalid(error.into_iter().map(|e| describe_figment_error(&e)).collect()))?;
        if let Some(port) = settings.api_port {
            settings.listen.set_port(port);
        }
        settings.validate()?;
        settings.source = Some(Source { flags: flags.clone(), env: env.clone() });
        Ok(settings)
    }

    /// The settings layered again from the same flags and environment and the file as it is
    /// now; None for settings that were not loaded from a command line.
    pub fn reload(&self) -> Option<Result<Settings, SettingsError>> {
        let source = self.source.as_ref()?;
        Some(Settings::load(&source.flags, &source.env))
    }

    /// The settings that differ in `new` but only apply at start (all but the log level),
    /// named without their values, which may be secret.
    pub fn needs_restart(&self, new: &Settings) -> Vec<String> {
        let (Ok(serde_json::Value::Object(old)), Ok(serde_json::Value::Object(new))) =
            (serde_json::to_value(self), serde_json::to_value(new))
        else {
            return Vec::new();
        };
        old.iter()
            .filter(|(key, value)| key.as_str() != "log_level" && new.get(key.as_str()) != Some(value))
            .map(|(key, _)| format!("{key}: changed; restart statusd to apply it"))
            .collect()
    }

    /// Reports every problem at once, each with its key.
    fn validate(&self) -> Result<(), SettingsError> {
        let mut problems = Vec::new();
        // Settings serialize to the shape of `statusd.toml`, so the bounds find values by key.
        let values = serde_json::to_value(self).unwrap_or_default();
        for bound in BOUNDS {
            let value = bound.key.split('.').try_fold(&values, |value, key| value.get(key));
            if let Some(value) = value.filter(|v| !v.is_null())
                && let Err(message) = bound.refusal(value)
            {
                problems.push(format!("{}: {message}", bound.key));
            }
        }
        if self.retention.rollup_days < self.retention.days {
            problems.push(
                "retention.rollup_days: must be at least retention.days: rollups summarise the raw events".into(),
            );
        }
        let target = self.sla.default_target;
        if !(target > 0.0 && target <= 100.0) {
            problems.push(format!(
                "sla.default_target: must be a percentage above 0 and at most 100 (e.g. 99.9), found {target}"
            ));
        }
        if let Err(error) = log_filter(&self.log_level) {
            problems.push(format!("log_level: {error}"));
        }
        for origin in &self.cors_origins {
            if let Err(reason) = validate_origin(origin) {
                problems.push(format!("cors_origins: {origin:?} is not an origin: {reason}"));
            }
        }
        if let Some(logo) = &self.statuspage.logo_url
            && let Err(reason) = validate_logo_url(logo)
        {
            problems.push(format!("statuspage.logo_url: {reason}"));
        }
        if self.statuspage.title.trim().is_empty() {
            problems.push("statuspage.title: must not be empty".into());
        }
        if self.cluster.enabled && !(self.db.starts_with("postgres:") || self.db.starts_with("postgresql:")) {
            problems.push(
                "cluster.enabled: cluster mode needs a PostgreSQL database (--db postgres://…); \
                 replicas cannot share a SQLite file"
                    .into(),
            );
        }
        if self.cluster.instance_id.as_deref().is_some_and(|id| id.trim().is_empty()) {
            problems.push("cluster.instance_id: must not be empty".into());
        }
        if self.cluster.location.trim().is_empty() {
            problems.push("cluster.location: must not be empty".into());
        }
        if problems.is_empty() { Ok(()) } else { Err(SettingsError::Invalid(problems)) }
    }
}

/// A logo is an `http(s)://` URL, a `data:image/…` URL or a path (`/logo.svg`); anything else
/// (`javascript:`) is refused.
fn validate_logo_url(logo: &str) -> Result<(), &'static str> {
    if logo.starts_with("data:image/") || (logo.starts_with('/') && !logo.starts_with("//")) {
        return Ok(());
    }
    match url::Url::parse(logo) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(()),
        _ => Err("expected an http(s):// URL, a data:image/ URL or a path starting with /"),
    }
}

/// One layering error in words: a number that does not even fit its type (`days = -1`,
/// `STATUSD_WORKERS=many`) names its key and range like one out of range, plus where it came
/// from; anything else is figment's own message, which names key and source.
fn describe_figment_error(error: &figment::Error) -> String {
    let key = error.path.join(".");
    let bound = BOUNDS.iter().find(|bound| bound.key == key);
    let found = match &error.kind {
        figment::error::Kind::InvalidType(actual, _) | figment::error::Kind::InvalidValue(actual, _) => {
            actual.to_string()
        }
        figment::error::Kind::ISizeOutOfRange(n) => n.to_string(),
        figment::error::Kind::USizeOutOfRange(n) => n.to_string(),
        _ => return error.to_string(),
    };
    let Some(bound) = bound else { return error.to_string() };
    let origin = match (&error.metadata, &error.profile) {
        (Some(metadata), _) if metadata.source.is_some() => {
            format!(" in {}", metadata.source.as_ref().map(ToString::to_string).unwrap_or_default())
        }
        // The variable's name, as the EnvVars provider spells it.
        (Some(metadata), Some(profile)) => {
            format!(" in {} {}", metadata.name, metadata.interpolate(profile, &error.path))
        }
        _ => String::new(),
    };
    format!("{key}: must be a whole number from {} to {}, found {found}{origin}", bound.min, bound.max)
}

/// An origin is `scheme://host[:port]`, exactly what a browser sends in `Origin`, or `*`.
fn validate_origin(origin: &str) -> Result<(), &'static str> {
    if origin == "*" {
        return Ok(());
    }
    let uri: axum::http::Uri = origin.parse().map_err(|_| "expected scheme://host[:port]")?;
    match (uri.scheme_str(), uri.authority(), uri.path_and_query().map(|p| p.as_str())) {
        (Some("http" | "https"), Some(_), None | Some("") | Some("/")) if !origin.ends_with('/') => Ok(()),
        (Some("http" | "https"), Some(_), _) => Err("an origin has no path, not even a trailing /"),
        _ => Err("expected http(s)://host[:port]"),
    }
}

/// `STATUSD_*` variables from the given map: `STATUSD_LOG_LEVEL` is `log_level`, and `__`
/// nests (`STATUSD_PERSISTENCE__BATCH_SIZE`). Variables that name no setting are ignored,
/// since other tools may share the prefix.
struct EnvVars(Vec<(String, String)>);

impl From<&BTreeMap<String, String>> for EnvVars {
    fn from(env: &BTreeMap<String, String>) -> Self {
        let known = match serde_json::to_value(Settings::default()) {
            Ok(serde_json::Value::Object(keys)) => keys.keys().cloned().collect(),
            _ => Vec::new(),
        };
        let vars = env
            .iter()
            .filter_map(|(name, value)| {
                let key = name.strip_prefix(ENV_PREFIX)?.to_ascii_lowercase();
                let top = key.split("__").next().unwrap_or_default();
                known.iter().any(|k| k == top).then(|| (key, value.clone()))
            })
            .collect();
        EnvVars(vars)
    }
}

impl Provider for EnvVars {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable")
            .interpolater(|_: &Profile, keys: &[&str]| format!("{ENV_PREFIX}{}", keys.join("__").to_ascii_uppercase()))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (key, raw) in &self.0 {
            // Infallible: figment parses anything, falling back to a string.
            let value: Value = raw.parse().unwrap_or_else(|_| Value::from(raw.clone()));
            let path: Vec<&str> = key.split("__").collect();
            insert_at(&mut dict, &path, value);
        }
        Ok(Profile::Default.collect(dict))
    }
}

fn insert_at(dict: &mut Dict, path: &[&str], value: Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert((*last).to_string(), value);
        }
        [first, rest @ ..] => {
            let entry = dict.entry((*first).to_string()).or_insert_with(|| Value::from(Dict::new()));
            if let Value::Dict(_, inner) = entry {
                insert_at(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn load(args: &[&str], vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let args = std::iter::once("statusd").chain(args.iter().copied());
        Settings::from_args(args, &env(vars)).map(|(_, settings)| settings)
    }

    #[test]
    fn per_asset_metrics_are_full_unless_set_to_summary_in_the_file_or_the_environment() {
        assert_eq!(load(&[], &[]).expect("valid").metrics.per_asset, PerAsset::Full);
        let settings = load(&[], &[("STATUSD_METRICS__PER_ASSET", "summary")]).expect("valid");
        assert_eq!(settings.metrics.per_asset, PerAsset::Summary);
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("statusd.toml");
        std::fs::write(&file, "[metrics]\nper_asset = \"summary\"\n").expect("write");
        let from_file = load(&["--config", file.to_str().expect("utf-8")], &[]).expect("valid");
        assert_eq!(from_file.metrics.per_asset, PerAsset::Summary);
        let error = load(&[], &[("STATUSD_METRICS__PER_ASSET", "some")]).expect_err("refused").to_string();
        assert!(error.contains("STATUSD_METRICS__PER_ASSET") && error.contains("`full` or `summary`"), "{error}");
    }

    #[test]
    fn the_default_sla_target_comes_from_the_environment_and_must_be_a_percentage() {
        assert_eq!(load(&[], &[]).expect("valid").sla.default_target, 99.9);
        let settings = load(&[], &[("STATUSD_SLA__DEFAULT_TARGET", "99.5")]).expect("valid");
        assert_eq!(settings.sla.default_target, 99.5);
        assert_eq!(load(&[], &[("STATUSD_SLA__DEFAULT_TARGET", "100")]).expect("valid").sla.default_target, 100.0);
        for bad in ["0", "-1", "100.01"] {
            let error = load(&[], &[("STATUSD_SLA__DEFAULT_TARGET", bad)]).expect_err(bad).to_string();
            assert!(
                error.contains("sla.default_target: must be a percentage above 0 and at most 100 (e.g. 99.9), found"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn cors_origins_come_from_the_environment_as_a_list_and_must_be_origins() {
        let settings = load(&[], &[("STATUSD_CORS_ORIGINS", "[\"https://a.example\", \"http://b.example:8080\"]")])
            .expect("valid");
        assert_eq!(settings.cors_origins, ["https://a.example", "http://b.example:8080"]);
        assert_eq!(load(&[], &[("STATUSD_CORS_ORIGINS", "[\"*\"]")]).expect("valid").cors_origins, ["*"]);
        assert!(load(&[], &[]).expect("valid").cors_origins.is_empty());
        for bad in ["https://a.example/", "https://a.example/path", "a.example", "ftp://a.example"] {
            let error = load(&[], &[("STATUSD_CORS_ORIGINS", &format!("[\"{bad}\"]"))]).expect_err(bad).to_string();
            assert!(error.contains(&format!("cors_origins: {bad:?} is not an origin")), "{error}");
        }
    }

    #[test]
    fn layers_apply_in_order_defaults_file_env_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("statusd.toml");
        std::fs::write(&file, "db = \"sqlite://from-file.db\"\nworkers = 8\nlog_level = \"warn\"\n").expect("write");
        let file = file.to_str().expect("utf-8 path");

        let settings = load(&["--config", file], &[]).expect("valid");
        assert_eq!(
            (settings.db.as_str(), settings.workers, settings.log_level.as_str()),
            ("sqlite://from-file.db", 8, "warn")
        );
        assert_eq!(settings.manifest, PathBuf::from("config/manifest.json"));

        let settings =
            load(&["--config", file], &[("STATUSD_WORKERS", "16"), ("STATUSD_PERSISTENCE__BATCH_SIZE", "50")])
                .expect("valid");
        assert_eq!(
            (settings.db.as_str(), settings.workers, settings.persistence.batch_size),
            ("sqlite://from-file.db", 16, 50)
        );

        let settings = load(&["--config", file, "--workers", "32"], &[("STATUSD_WORKERS", "16")]).expect("valid");
        assert_eq!(settings.workers, 32);
    }

    #[test]
    fn api_port_keeps_the_listen_address() {
        let settings = load(&["--listen", "0.0.0.0:9000", "--api-port", "8081"], &[]).expect("valid");
        assert_eq!(settings.listen, "0.0.0.0:8081".parse().expect("address"));
    }

    #[test]
    fn bad_values_name_their_source() {
        let error = load(&[], &[("STATUSD_WORKERS", "many")]).expect_err("invalid").to_string();
        assert!(error.contains("STATUSD_WORKERS"), "{error}");
        let error = load(&["--listen", "nowhere"], &[]).expect_err("invalid").to_string();
        assert!(error.contains("listen"), "{error}");
        let error = load(&["--log-level", "loud=verbose=yes"], &[]).expect_err("invalid").to_string();
        assert!(error.contains("invalid log level"), "{error}");
        let error = load(&["--workers", "0"], &[]).expect_err("invalid").to_string();
        assert!(error.contains("workers: must be at least 1"), "{error}");
    }

    #[test]
    fn every_number_out_of_range_is_named_with_its_range_all_at_once() {
        let error = load(
            &["--workers", "0"],
            &[("STATUSD_RETENTION__DAYS", "999999999"), ("STATUSD_PERSISTENCE__BATCH_SIZE", "18446744073709551615")],
        )
        .expect_err("invalid")
        .to_string();
        assert_eq!(
            error,
            "invalid settings: workers: must be at least 1; persistence.batch_size: must be at most 100000; \
             retention.days: must be at most 36500; retention.rollup_days: must be at least retention.days: \
             rollups summarise the raw events"
        );
        // Numbers that do not even fit their type name their key, range and source as well.
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("statusd.toml");
        std::fs::write(&file, "[retention]\ndays = -1\n").expect("write");
        let error = load(&["--config", file.to_str().expect("utf-8")], &[]).expect_err("negative").to_string();
        assert!(
            error.starts_with("invalid settings: retention.days: must be a whole number from 1 to 36500"),
            "{error}"
        );
        // figment names the file relative to the working directory when that is shorter.
        let dir_name = dir.path().file_name().and_then(|name| name.to_str()).expect("a name");
        assert!(error.contains("found signed int `-1` in "), "{error}");
        assert!(error.ends_with(&format!("{dir_name}/statusd.toml")), "{error}");
        let error = load(&[], &[("STATUSD_RETENTION__BATCH", "99999999999")]).expect_err("too big").to_string();
        assert!(
            error.starts_with("invalid settings: retention.batch: must be a whole number from 1 to 100000"),
            "{error}"
        );
        assert!(error.ends_with("in environment variable STATUSD_RETENTION__BATCH"), "{error}");
    }

    #[test]
    fn a_named_settings_file_must_exist_and_know_its_keys() {
        let error = load(&["--config", "/nonexistent/statusd.toml"], &[]).expect_err("missing").to_string();
        assert!(error.contains("/nonexistent/statusd.toml"), "{error}");
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("statusd.toml");
        std::fs::write(&file, "dbb = \"x\"\n").expect("write");
        let error = load(&["--config", file.to_str().expect("utf-8")], &[]).expect_err("unknown key").to_string();
        assert!(error.contains("dbb"), "{error}");
    }

    #[test]
    fn a_reload_reads_the_file_again_and_names_what_needs_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("statusd.toml");
        std::fs::write(&file, "workers = 8\n").expect("write");
        let running =
            load(&["--config", file.to_str().expect("utf-8")], &[("STATUSD_API_TOKEN", "t0ken")]).expect("valid");
        std::fs::write(&file, "workers = 9\nlog_level = \"debug\"\ndb = \"sqlite://other.db\"\n").expect("write");
        let reloaded = running.reload().expect("has a source").expect("valid");
        assert_eq!((reloaded.workers, reloaded.log_level.as_str()), (9, "debug"));
        assert_eq!(reloaded.api_token.as_deref(), Some("t0ken"), "the environment is kept");
        let restart = running.needs_restart(&reloaded);
        assert_eq!(
            restart,
            ["db: changed; restart statusd to apply it", "workers: changed; restart statusd to apply it"]
        );
    }

    #[test]
    fn the_status_page_section_comes_from_the_file_and_the_environment() {
        let defaults = load(&[], &[]).expect("valid");
        assert_eq!(defaults.statuspage, StatusPageSettings::default());
        assert!(defaults.statuspage.enabled);
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("statusd.toml");
        std::fs::write(&file, "[statuspage]\ntitle = \"Acme status\"\nlogo_url = \"/logo.svg\"\n").expect("write");
        let file = file.to_str().expect("utf-8");
        let settings = load(&["--config", file], &[("STATUSD_STATUSPAGE__ENABLED", "false")]).expect("valid");
        assert_eq!(settings.statuspage.title, "Acme status");
        assert_eq!(settings.statuspage.logo_url.as_deref(), Some("/logo.svg"));
        assert!(!settings.statuspage.enabled);
        let settings = load(&[], &[("STATUSD_STATUSPAGE__DESCRIPTION", "Our services")]).expect("valid");
        assert_eq!(settings.statuspage.description.as_deref(), Some("Our services"));
        let error = load(&[], &[("STATUSD_STATUSPAGE__LOGO_URL", "javascript:alert(1)")]).expect_err("refused");
        assert!(error.to_string().contains("statuspage.logo_url: expected"), "{error}");
        for good in ["https://example.com/logo.png", "data:image/svg+xml;base64,AAAA", "/static/logo.png"] {
            assert!(validate_logo_url(good).is_ok(), "{good}");
        }
        assert!(validate_logo_url("//evil.example/x.png").is_err());
    }

    #[test]
    fn the_cluster_section_layers_like_every_other_and_refuses_sqlite() {
        let defaults = load(&[], &[]).expect("valid").cluster;
        assert_eq!(defaults, ClusterSettings::default());
        assert!(!defaults.enabled);
        assert_eq!((defaults.location.as_str(), defaults.lease_seconds), ("default", 15));
        assert_eq!(defaults.instance_id(), format!("{}-{}", host_name(), std::process::id()));
        let pg = "postgres://postgres@127.0.0.1/statusd";
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("statusd.toml");
        std::fs::write(&file, "[cluster]\nlocation = \"eu\"\nlease_seconds = 5\ninstance_id = \"file\"\n")
            .expect("write");
        let file = file.to_str().expect("utf-8");
        let settings = load(
            &["--config", file, "--db", pg, "--instance-id", "flag"],
            &[("STATUSD_CLUSTER__ENABLED", "true"), ("STATUSD_CLUSTER__LEASE_SECONDS", "2")],
        )
        .expect("valid")
        .cluster;
        assert!(settings.enabled);
        assert_eq!(
            (settings.instance_id().as_str(), settings.location.as_str(), settings.lease_seconds),
            ("flag", "eu", 2)
        );
        let settings = load(&["--db", pg, "--cluster", "--location", "us"], &[]).expect("valid").cluster;
        assert!(settings.enabled);
        assert_eq!(settings.location, "us");
        let error = load(&["--cluster"], &[]).expect_err("sqlite").to_string();
        assert!(error.contains("cluster.enabled: cluster mode needs a PostgreSQL database"), "{error}");
        let error = load(&[], &[("STATUSD_CLUSTER__LEASE_SECONDS", "0")]).expect_err("zero").to_string();
        assert!(error.contains("cluster.lease_seconds: must be at least 1"), "{error}");
    }

    #[test]
    fn the_probes_source_address_comes_from_the_file_the_environment_or_the_flag() {
        let ip = |s: &str| Some(s.parse::<std::net::IpAddr>().expect("an address"));
        assert_eq!(load(&[], &[]).expect("valid").probes.source_address, None);
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("statusd.toml");
        std::fs::write(&file, "[probes]\nsource_address = \"127.0.0.2\"\n").expect("write");
        let file = file.to_str().expect("utf-8");
        assert_eq!(load(&["--config", file], &[]).expect("valid").probes.source_address, ip("127.0.0.2"));
        let env = [("STATUSD_PROBES__SOURCE_ADDRESS", "10.0.0.4")];
        assert_eq!(load(&["--config", file], &env).expect("valid").probes.source_address, ip("10.0.0.4"));
        let flag = ["--config", file, "--source-address", "127.0.0.3"];
        assert_eq!(load(&flag, &env).expect("valid").probes.source_address, ip("127.0.0.3"));
        let error = load(&[], &[("STATUSD_PROBES__SOURCE_ADDRESS", "eu")]).expect_err("not an address").to_string();
        assert!(error.contains("STATUSD_PROBES__SOURCE_ADDRESS"), "{error}");
    }

    #[test]
    fn unrelated_statusd_variables_are_ignored() {
        assert!(load(&[], &[("STATUSD_COMMIT", "abc")]).is_ok());
    }

    #[test]
    fn check_config_is_a_subcommand() {
        let (command, _) = Settings::from_args(["statusd", "check-config"], &BTreeMap::new()).expect("valid");
        assert_eq!(command, Command::CheckConfig);
    }
}
