//! statusd: an uptime monitor built as an actor supervision tree.
//!
//! # Layout
//! The modules are private; what tests, benches and `main.rs` use is re-exported below, so the
//! compiler reports what nobody uses. ARCHITECTURE.md draws the tree, the data flow and the
//! layers (a module uses only the layers below it; `tests/architecture.rs` checks it).
//! - `settings`: CLI and layered settings (defaults < `config/statusd.toml` < env < flags).
//! - `config`: the manifest (assets) and notifiers files, assembled and validated.
//! - `asset`: one watched service, and how it is probed once.
//! - `actors`: the supervision tree — Supervisor, Asset, Incidents, Persistence, Notifier.
//! - `probe`: one file per asset type.
//! - `notify`: one file per notification channel.
//! - `maintenance`: maintenance windows and their occurrences (pure, time passed in).
//! - `store`: the Store, on SQLite or PostgreSQL.
//! - `api`: the HTTP API, every route in `api/routes.rs`.
//! - `report`, `redact`, `http_error`, `backoff`, `telemetry`: leaves every layer may use
//!   (validation reports; secrets; HTTP errors in words; the one retry policy; logs, metrics
//!   and the panic hook).
//!
//! [`run`] is the whole program; `main.rs` only calls it. Tests call it too (or [`App`], to
//! learn the port it bound), any number of times in one process.

mod actors;
mod api;
mod asset;
mod backoff;
mod config;
mod dependencies;
mod http_error;
mod maintenance;
mod notify;
mod probe;
mod quorum;
mod redact;
mod report;
mod rfc3339;
mod settings;
mod sla;
mod statuspage;
mod store;
mod telemetry;

pub use actors::asset::AssetMsg;
pub use actors::persistence::{Backlog, Persistence, PersistenceArgs, PersistenceMsg};
pub use actors::supervisor::{ReloadTrigger, SupervisorMsg};
pub use actors::{Directory, Services};
pub use asset::AssetConfig;
pub use config::{Config, Manifest};
pub use notify::{Event, Notification};
pub use probe::icmp::PERMISSION_HINT;
pub use probe::tls::not_after;
pub use probe::{Mark, ProbeContext, ProbeResult, ProbeSpec, event_id};
pub use settings::{MetricsSettings, PerAsset, PersistenceSettings, RetentionSettings, Settings, StatusPageSettings};
pub use store::rollup::hour_of;
pub use store::{
    CloseReason, EventsQuery, Incident, IncidentState, IncidentUpdate, IncidentWrite, NotificationWrite, OutboxEntry,
    Rollup, Store, StoreOp, StoredWindow, TimelineEntry, TimelineKind, UpdateStatus, Uptime,
};
pub use telemetry::{LogFormat, init_logging, metrics_handle};

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use ractor::{Actor, ActorRef};
use tokio::net::TcpListener;

use actors::supervisor::{RestartIntensity, Supervisor, SupervisorArgs};
use api::{ApiState, Lifecycle};
use config::Problems;
use settings::{Command, SettingsError};
use store::StoreError;
use telemetry::TelemetryError;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit this binary was built from, when the build said (`STATUSD_COMMIT`).
pub const COMMIT: &str = match option_env!("STATUSD_COMMIT") {
    Some(commit) => commit,
    None => "unknown",
};

/// API requests in flight get this long to finish once shutdown begins.
const API_DRAIN: Duration = Duration::from_secs(2);
/// The actors get this long to stop in order and flush; within the 10 s shutdown promise.
const ACTORS_STOP: Duration = Duration::from_secs(9);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    #[error("{0}")]
    Config(#[from] Problems),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Claim(#[from] store::claim::ClaimError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot build the HTTP clients: {0}")]
    HttpClient(#[from] reqwest::Error),
    #[error("cannot start the supervision tree: {0}")]
    Actors(String),
    #[error("{url}: {reason}")]
    Unhealthy { url: String, reason: String },
}

impl Error {
    /// Prints the error the way a person at a terminal should see it and picks the exit code:
    /// 1 for a bad config (what `check-config` promises), 2 for bad usage or settings.
    pub fn report(&self) -> ExitCode {
        match self {
            Error::Settings(SettingsError::Cli(error)) => {
                let _ = error.print();
                ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2))
            }
            Error::Settings(_) => {
                eprintln!("statusd: {self}");
                ExitCode::from(2)
            }
            _ => {
                eprintln!("statusd: {self}");
                ExitCode::FAILURE
            }
        }
    }
}

/// The whole program: parse `args` and `env`, then check the config or run the monitor until
/// `shutdown` resolves.
pub async fn run<A, T, E, K, V>(args: A, env: E, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error>
where
    A: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
    E: IntoIterator<Item = (K, V)>,
    K: Into<OsString>,
    V: Into<OsString>,
{
    let env: BTreeMap<String, String> = env
        .into_iter()
        .filter_map(|(k, v)| Some((k.into().into_string().ok()?, v.into().into_string().ok()?)))
        .collect();
    let (command, settings) = Settings::from_args(args, &env)?;
    match command {
        Command::CheckConfig => check_config(&settings),
        Command::Healthcheck => healthcheck(&settings).await,
        Command::Run => {
            // Held to the end: dropping it writes out the last lines (the shutdown report).
            let _logs = telemetry::init_logging(settings.log_format, &settings.log_level)?;
            App::build(settings).await?.serve(shutdown).await
        }
    }
}

/// Prints every warning (on stderr, like problems) and a summary; warnings alone exit 0.
fn check_config(settings: &Settings) -> Result<(), Error> {
    let config = Config::load(&settings.manifest, &settings.notifiers)?;
    for warning in &config.warnings {
        eprintln!("statusd: warning: {warning}");
    }
    let warnings = match config.warnings.len() {
        0 => String::new(),
        1 => ", 1 warning".to_string(),
        n => format!(", {n} warnings"),
    };
    println!(
        "{}: {} assets; {}: {} notifiers; no problems found{warnings}",
        settings.manifest.display(),
        config.manifest.assets.len(),
        settings.notifiers.display(),
        config.notifiers.notifiers.len()
    );
    Ok(())
}

/// How long `statusd healthcheck` waits for an answer; a Docker HEALTHCHECK allows 30 s.
const HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(3);

async fn healthcheck(settings: &Settings) -> Result<(), Error> {
    // A server listening on every address is reached on loopback.
    let mut addr = settings.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let url = format!("http://{addr}/healthz");
    let unhealthy = |reason: String| Error::Unhealthy { url: url.clone(), reason };
    let client = reqwest::Client::builder().timeout(HEALTHCHECK_TIMEOUT).build()?;
    let response = client.get(&url).send().await.map_err(|e| unhealthy(http_error::describe_reqwest_error(&e)))?;
    if !response.status().is_success() {
        return Err(unhealthy(format!("answered {}", response.status())));
    }
    println!("{url}: {}", response.status());
    Ok(())
}

/// Resolves on SIGINT or SIGTERM: what `main` passes to [`run`].
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM; only SIGINT stops statusd");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => tracing::info!(signal = "SIGINT", "shutdown requested"),
            _ = terminate.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// A started statusd: config loaded, database migrated, actors running, port bound.
pub struct App {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: Router,
    supervisor: ActorRef<SupervisorMsg>,
    supervisor_task: tokio::task::JoinHandle<()>,
    store: Store,
    lifecycle: Arc<Lifecycle>,
    hangups: Hangups,
    max_connections: usize,
    /// This instance's claim on the database, held until it stops.
    claim: Arc<store::claim::Claim>,
    /// The membership loop (cluster mode: heartbeats, leases), or the claim's keeper (alone).
    membership: Option<actors::AbortOnDrop<()>>,
    /// Cluster mode: the quorum loop (assets with `locations`: verdicts reported and combined),
    /// the states loop (live states written for the others, theirs read) and the relay
    /// (confirmed changes to the incidents role's holder).
    coordination: Vec<actors::AbortOnDrop<()>>,
    view: Arc<actors::cluster::ClusterView>,
}

impl App {
    pub async fn build(settings: Settings) -> Result<App, Error> {
        let config = Config::load(&settings.manifest, &settings.notifiers)?;
        tracing::info!(
            assets = config.manifest.assets.len(),
            notifiers = config.notifiers.notifiers.len(),
            manifest = %settings.manifest.display(),
            "config loaded"
        );
        config.log_warnings();
        let metrics = telemetry::metrics_handle()?;
        let store = Store::connect_with_retries(
            &settings.db,
            Duration::from_secs(settings.persistence.connect_timeout_seconds),
        )
        .await?;
        tracing::info!(db = %store::redact_url(&settings.db), "database ready");
        let cluster = &settings.cluster;
        let claimant = store::claim::Claimant {
            id: cluster.instance_id(),
            host: settings::host_name(),
            location: cluster.location.clone(),
            version: VERSION.to_string(),
            cluster: cluster.enabled,
        };
        // Before anything is written: a second instance on this database by mistake is refused
        // here, before it marks the first one's assets removed and closes its incidents.
        let claim = Arc::new(store::claim::Claim::take(&store, &claimant, &settings.db).await?);
        let view = if cluster.enabled {
            let incidents = claim.try_incidents_role().await?;
            tracing::info!(instance_id = %claimant.id, location = %claimant.location, incidents_role = incidents, "joined the cluster");
            Arc::new(actors::cluster::ClusterView::replica(
                claimant.id.clone(),
                claimant.location.clone(),
                cluster.lease_seconds,
                incidents,
            ))
        } else {
            Arc::new(actors::cluster::ClusterView::alone())
        };
        let removals = view.holds_incidents_role();
        let with_locations = config.manifest.assets.iter().filter(|asset| asset.locations.is_some()).count();
        if !view.enabled && with_locations > 0 {
            tracing::warn!(
                assets = with_locations,
                "`locations` applies to replicas of a cluster (--cluster): alone, this instance's own verdict decides"
            );
        }
        let mut open_incidents = actors::incidents::close_orphaned(&store, &config.manifest.assets, removals).await?;
        let degradations = actors::incidents::degradations(&store, &config.manifest.assets).await?;
        let outbox = store.pending_notifications().await?;
        actors::incidents::tiers_from_outbox(&mut open_incidents, &outbox);
        // What was decided for the open incidents (sent or not) is never decided again.
        let decided = match open_incidents.iter().map(|incident| incident.started_at).min() {
            Some(since) => store.outbox_keys(since).await?,
            None => Vec::new(),
        };
        if !outbox.is_empty() {
            tracing::info!(
                pending = outbox.len(),
                "notifications decided before the restart and never sent go out now"
            );
        }

        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|source| Error::Listen { addr: settings.listen, source })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Listen { addr: settings.listen, source })?;

        let max_buffered = actors::persistence::buffer_capacity(&settings.persistence, &config.manifest.assets);
        let backlog = Arc::new(Backlog::new(max_buffered));
        let persistence = settings.persistence;
        let directory = Directory::new(backlog, settings.persistence.batch_size);
        // The asset rows are written by Persistence, first in its queue, so ahead of every
        // result: start-up does not wait for 100,000 upserts (README "Benchmarks").
        directory.persist_change(store::StoreOp::SyncAssets(Arc::new(config.manifest.assets.clone()), removals));
        // Building the clients reads the system's root certificates: off the runtime threads.
        let workers = settings.workers;
        let source = settings.probes.source_address;
        let mut services = tokio::task::spawn_blocking(move || {
            let services = Services::new(directory, workers, persistence)?;
            match source {
                Some(_) => Ok(Services { probes: probe::ProbeContext::sent_from(source)?, ..services }),
                None => Ok::<_, reqwest::Error>(services),
            }
        })
        .await
        .map_err(|e| Error::Actors(format!("building the probe clients failed: {e}")))??;
        services.cluster = Arc::clone(&view);
        let services = Arc::new(Services { per_asset: settings.metrics.per_asset, ..services });
        // Cluster mode: confirmed changes are decided by the incidents role's holder alone. At
        // start the holder's Incidents actor resumes from the store like an instance alone.
        let relay = view.enabled.then(|| {
            let relay = Arc::new(actors::relay::Relay::new(view.holds_incidents_role()));
            services.directory.set_relay(Arc::clone(&relay));
            relay
        });
        let open: std::collections::HashSet<uuid::Uuid> = open_incidents.iter().map(|incident| incident.id).collect();
        services.directory.remember_decided(&open, decided);
        services.maintenance.configure(&config.manifest);
        services.maintenance.set_channels(config.notifiers.policy.on_maintenance.clone());
        services.maintenance.set_api(stored_windows(&store).await?);
        let (supervisor, supervisor_task) = Actor::spawn(
            None,
            Supervisor,
            SupervisorArgs {
                config,
                settings: settings.clone(),
                store: store.clone(),
                services: Arc::clone(&services),
                open_incidents,
                degradations,
                outbox,
                retention: settings.retention,
                intensity: RestartIntensity {
                    max_restarts: settings.restart.max_restarts,
                    window: Duration::from_secs(settings.restart.window_seconds),
                },
                cluster: view.enabled,
            },
        )
        .await
        .map_err(|e| Error::Actors(e.to_string()))?;

        let membership = Some(actors::AbortOnDrop(if view.enabled {
            tokio::spawn(actors::cluster::run(store.clone(), Arc::clone(&claim), Arc::clone(&view), supervisor.clone()))
        } else {
            tokio::spawn(actors::cluster::keep_alone(store.clone(), Arc::clone(&claim)))
        }));
        let mut coordination = Vec::new();
        if view.enabled {
            coordination
                .push(actors::AbortOnDrop(tokio::spawn(actors::quorum::run(store.clone(), Arc::clone(&services)))));
            coordination
                .push(actors::AbortOnDrop(tokio::spawn(actors::states::run(store.clone(), Arc::clone(&services)))));
        }
        if let Some(relay) = relay {
            coordination.push(actors::AbortOnDrop(tokio::spawn(actors::relay::run(
                store.clone(),
                Arc::clone(&services),
                relay,
            ))));
        }
        let lifecycle = Arc::new(Lifecycle::default());
        let router = api::routes::router(ApiState {
            supervisor: supervisor.clone(),
            store: store.clone(),
            services,
            metrics,
            lifecycle: Arc::clone(&lifecycle),
            api_token: settings.api_token.as_deref().filter(|t| !t.is_empty()).map(Arc::from),
            enable_chaos: settings.enable_chaos,
            cors_origins: settings.cors_origins.clone(),
            demo: settings.demo,
            statuspage: Arc::new(statuspage::StatusPage::new(settings.statuspage.clone())),
            sla_default_target: settings.sla.default_target,
        });
        let hangups = listen_for_hangups();
        tracing::info!(listen = %local_addr, version = VERSION, "statusd started");
        let max_connections = settings.max_connections;
        Ok(App {
            listener,
            local_addr,
            router,
            supervisor,
            supervisor_task,
            store,
            lifecycle,
            hangups,
            max_connections,
            claim,
            membership,
            coordination,
            view,
        })
    }

    /// Where the API listens (the real port when the settings asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The root of the supervision tree, for tools that talk to it directly (benchmarks).
    pub fn supervisor(&self) -> ActorRef<SupervisorMsg> {
        self.supervisor.clone()
    }

    /// Serves until `shutdown` resolves, then stops gracefully: readiness turns 503, the API
    /// drains while the actors stop in order, Persistence writes everything it accepted, and
    /// the database pool closes.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
        let App {
            listener,
            router,
            supervisor,
            supervisor_task,
            store,
            lifecycle,
            hangups,
            max_connections,
            claim,
            membership,
            coordination,
            view,
            ..
        } = self;
        let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(api::server::serve(
            listener,
            router,
            async {
                let _ = api_stopped.await;
            },
            API_DRAIN,
            max_connections,
        ));
        let _hangups = actors::AbortOnDrop(tokio::spawn(reload_on_hangup(hangups, supervisor.clone())));
        shutdown.await;
        let started = tokio::time::Instant::now();
        tracing::info!("shutting down");
        lifecycle.begin_shutdown();
        let _ = stop_api.send(());
        // No round may start an asset while they stop.
        drop(membership);
        drop(coordination);
        let actors = async {
            let stopped = supervisor.call(SupervisorMsg::Shutdown, Some(ACTORS_STOP)).await;
            if !matches!(stopped, Ok(ractor::rpc::CallResult::Success(()))) {
                tracing::error!("actors did not stop in time");
            }
            supervisor.stop(None);
            let _ = supervisor_task.await;
        };
        let (server, ()) = tokio::join!(server, actors);
        if let Err(error) = server {
            tracing::error!(%error, "the API server task failed");
        }
        if view.enabled {
            // Its assets are taken by the others at their next round, not after the lease.
            if let Err(error) = store.leave_cluster(&view.me).await {
                tracing::warn!(%error, "could not leave the cluster cleanly; its leases expire");
            }
        }
        if let Ok(claim) = Arc::try_unwrap(claim) {
            claim.release().await;
        }
        store.close().await;
        tracing::info!(took_ms = started.elapsed().as_millis() as u64, "statusd stopped");
        Ok(())
    }
}

/// The maintenance windows made by the API, read back from the store. One that no longer reads
/// as a window (written by a later version, say) is logged and left out, not fatal.
async fn stored_windows(store: &Store) -> Result<Vec<maintenance::Window>, Error> {
    let mut windows = Vec::new();
    for stored in store.maintenance_windows().await? {
        match maintenance::read_stored(&stored.definition) {
            Ok(window) => windows.push(window),
            Err(error) => {
                tracing::error!(window_id = %stored.id, %error, "a stored maintenance window is unreadable; ignored")
            }
        }
    }
    Ok(windows)
}

/// SIGHUP, listened for from the moment statusd says it started (until then, the default
/// action would end the process).
#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = ();

fn listen_for_hangups() -> Hangups {
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hangups) => Some(hangups),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; reload with POST /api/reload");
            None
        }
    }
}

/// SIGHUP reloads the config, like a file change or `POST /api/reload`.
async fn reload_on_hangup(hangups: Hangups, supervisor: ActorRef<SupervisorMsg>) {
    #[cfg(unix)]
    if let Some(mut hangups) = hangups {
        while hangups.recv().await.is_some() {
            tracing::info!(signal = "SIGHUP", "reload requested");
            let _ = supervisor.cast(SupervisorMsg::Reload(actors::supervisor::ReloadTrigger::Signal, None));
        }
    }
    #[cfg(not(unix))]
    let _ = (hangups, supervisor);
}
