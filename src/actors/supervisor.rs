//! Supervisor ("statusd"): spawns every child linked to itself, restarts the ones that fail
//! with the state they must keep, applies reloads as a diff, and stops the children in order on
//! shutdown.
//!
//! ractor restarts nothing by itself: a child's panic arrives here as `ActorFailed`, and the
//! decision is ours. Like an OTP supervisor, a child that fails more than `max_restarts` times
//! within `window` is marked crashed and retried later with exponential backoff instead of
//! being restarted in a tight loop. What a child must keep lives in its spec here (an asset's
//! memory, the Incidents inbox and memory, a channel's queue, Persistence's backlog), so the
//! replacement starts where the old one stopped.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use serde::Serialize;
use tokio::time::Instant;

use super::Services;
use super::asset::{Asset, AssetArgs, AssetMemory, AssetMsg};
use super::health::{Health, OpenIncident, Thresholds};
use super::inbox::Inbox;
use super::incidents::{IncidentEvent, Incidents, IncidentsArgs, IncidentsMemory, IncidentsMsg};
use super::notifier::{ChannelQueue, Notifier, NotifierArgs, NotifierMsg};
use super::persistence::{Backlog, Persistence, PersistenceArgs, PersistenceMsg};
use super::task::TaskKind;
use super::watcher::{ConfigWatcher, WatcherArgs, WatcherMsg};
use crate::config::diff::{ChangeSummary, ConfigDiff};
use crate::config::{AssetConfig, Config, Problems};
use crate::notify::Event;
use crate::settings::Settings;
use crate::settings::{PersistenceSettings, RetentionSettings};
use crate::store::{Incident, Store, StoreOp};
use crate::telemetry::names;

/// How long each stage of shutdown may take; together they stay under the 10 s promise.
const STOP_ASSETS: Duration = Duration::from_secs(1);
const STOP_INCIDENTS: Duration = Duration::from_secs(1);
const STOP_NOTIFIERS: Duration = Duration::from_millis(2500);
const STOP_PERSISTENCE: Duration = Duration::from_millis(4500);
const FIRST_CRASH_BACKOFF: Duration = Duration::from_secs(1);
const MAX_CRASH_BACKOFF: Duration = Duration::from_secs(300);
/// Edits come in bursts of filesystem events; reload once they settle.
const WATCH_SETTLE: Duration = Duration::from_millis(500);
const WATCH_POLL: Duration = Duration::from_secs(5);

pub struct Supervisor;

/// OTP's restart intensity: more than `max_restarts` failures within `window` is a crash loop.
#[derive(Debug, Clone, Copy)]
pub struct RestartIntensity {
    pub max_restarts: usize,
    pub window: Duration,
}

pub struct SupervisorArgs {
    pub config: Config,
    /// The settings statusd runs with; a reload reports those it cannot apply live.
    pub settings: Settings,
    pub store: Store,
    pub services: Arc<Services>,
    /// Open incidents found in the store at start: their assets resume as down.
    pub open_incidents: Vec<Incident>,
    pub retention: RetentionSettings,
    pub intensity: RestartIntensity,
}

/// What asked for a reload, for logs and the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReloadTrigger {
    FileChange,
    Signal,
    Api,
}

/// A reload that was applied.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReloadReport {
    pub trigger: ReloadTrigger,
    #[serde(flatten)]
    pub changes: ChangeSummary,
    /// Settings that changed but only take effect after a restart.
    pub restart_required: Vec<String>,
    /// What the new config does that may not be meant, as `check-config` prints it.
    pub warnings: Vec<String>,
}

/// A reload that changed nothing, and why.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(Problems),
    #[error("{0}")]
    Settings(String),
}

pub enum SupervisorMsg {
    Assets(RpcReplyPort<Vec<AssetEntry>>),
    Asset(String, RpcReplyPort<Option<AssetEntry>>),
    Actors(RpcReplyPort<Vec<ActorInfo>>),
    /// Chaos testing: make the named child panic. Answers whether it exists.
    Panic(String, RpcReplyPort<bool>),
    /// Load the config (and settings) again and apply the difference; answers if asked.
    Reload(ReloadTrigger, Option<RpcReplyPort<Result<ReloadReport, ReloadError>>>),
    /// Retry a crashed child after its backoff.
    Respawn {
        name: String,
    },
    /// Stop every child in order (assets, incidents, notifiers, persistence last, so that it
    /// flushes everything the others produced).
    Shutdown(RpcReplyPort<()>),
}

/// An asset as the API needs it: its config and where to ask for its live state.
#[derive(Clone)]
pub struct AssetEntry {
    pub config: Arc<AssetConfig>,
    /// None while the actor is crashed and waiting out its backoff.
    pub actor: Option<ActorRef<AssetMsg>>,
    pub restarts: u32,
}

/// One actor of the tree, as `/api/actors` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActorInfo {
    pub name: String,
    pub kind: &'static str,
    pub status: &'static str,
    pub restarts: u32,
    pub last_restart: Option<DateTime<Utc>>,
    /// Messages waiting in the actor's inbox, for the actors that have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<usize>,
}

/// What a child needs to be spawned again, with the state it keeps across restarts.
enum ChildSpec {
    Persistence { store: Store, settings: PersistenceSettings, retention: RetentionSettings, backlog: Arc<Backlog> },
    Incidents { inbox: Arc<Inbox<IncidentEvent>>, memory: Arc<Mutex<IncidentsMemory>> },
    Notifier { queue: Arc<ChannelQueue> },
    Asset { config: Arc<AssetConfig>, memory: Arc<Mutex<AssetMemory>> },
    Watcher { files: Vec<PathBuf>, seen: Arc<Mutex<Option<u64>>> },
}

impl ChildSpec {
    fn name(&self) -> String {
        match self {
            ChildSpec::Persistence { .. } => "persistence".into(),
            ChildSpec::Incidents { .. } => "incidents".into(),
            ChildSpec::Notifier { queue } => format!("notifier:{}", queue.name()),
            ChildSpec::Asset { config, .. } => format!("asset:{}", config.id),
            ChildSpec::Watcher { .. } => "config".into(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            ChildSpec::Persistence { .. } => "persistence",
            ChildSpec::Incidents { .. } => "incidents",
            ChildSpec::Notifier { .. } => "notifier",
            ChildSpec::Asset { .. } => "asset",
            ChildSpec::Watcher { .. } => "config",
        }
    }

    fn mailbox(&self) -> Option<usize> {
        match self {
            ChildSpec::Persistence { backlog, .. } => Some(backlog.len()),
            ChildSpec::Incidents { inbox, .. } => Some(inbox.len()),
            ChildSpec::Notifier { queue } => Some(queue.len()),
            ChildSpec::Asset { .. } | ChildSpec::Watcher { .. } => None,
        }
    }
}

/// A running child, typed so that it can be sent its own messages.
#[derive(Clone)]
enum ChildRef {
    Persistence(ActorRef<PersistenceMsg>),
    Incidents(ActorRef<IncidentsMsg>),
    Notifier(ActorRef<NotifierMsg>),
    Asset(ActorRef<AssetMsg>),
    Watcher(ActorRef<WatcherMsg>),
}

impl ChildRef {
    fn cell(&self) -> ActorCell {
        match self {
            ChildRef::Persistence(a) => a.get_cell(),
            ChildRef::Incidents(a) => a.get_cell(),
            ChildRef::Notifier(a) => a.get_cell(),
            ChildRef::Asset(a) => a.get_cell(),
            ChildRef::Watcher(a) => a.get_cell(),
        }
    }

    fn panic(&self, reason: String) -> bool {
        match self {
            ChildRef::Persistence(a) => a.cast(PersistenceMsg::Panic(reason)).is_ok(),
            ChildRef::Incidents(a) => a.cast(IncidentsMsg::Panic(reason)).is_ok(),
            ChildRef::Notifier(a) => a.cast(NotifierMsg::Panic(reason)).is_ok(),
            ChildRef::Asset(a) => a.cast(AssetMsg::Panic(reason)).is_ok(),
            ChildRef::Watcher(a) => a.cast(WatcherMsg::Panic(reason)).is_ok(),
        }
    }
}

struct Child {
    spec: ChildSpec,
    running: Option<ChildRef>,
    restarts: u32,
    last_restart: Option<DateTime<Utc>>,
    recent_failures: VecDeque<Instant>,
    crash_backoff: Duration,
}

pub struct SupervisorState {
    services: Arc<Services>,
    intensity: RestartIntensity,
    config: Config,
    settings: Settings,
    /// Children by name, and the order they were started in (assets in config order).
    children: HashMap<String, Child>,
    order: Vec<String>,
    by_id: HashMap<ActorId, String>,
    shutting_down: bool,
}

/// Counters that only move on rare events are exported at zero from the start, so a dashboard
/// or an alert (`increase(...) > 0`) sees a series instead of nothing until the first event.
fn register_series(name: &str, spec: &ChildSpec) {
    metrics::counter!(names::ACTOR_RESTARTS_TOTAL, "actor" => name.to_string()).increment(0);
    let tasks: &[TaskKind] = match spec {
        ChildSpec::Persistence { .. } => &[TaskKind::Write, TaskKind::Retention],
        ChildSpec::Notifier { .. } => &[TaskKind::Delivery],
        ChildSpec::Asset { .. } => &[TaskKind::Probe],
        ChildSpec::Incidents { .. } | ChildSpec::Watcher { .. } => &[],
    };
    for task in tasks {
        metrics::counter!(names::TASK_PANICS_TOTAL, "actor" => name.to_string(), "task" => task.as_str()).increment(0);
    }
    if let ChildSpec::Notifier { queue } = spec {
        metrics::counter!(names::NOTIFICATIONS_RATE_LIMITED_TOTAL, "channel" => queue.name().to_string()).increment(0);
        for event in Event::ALL {
            for result in ["sent", "failed"] {
                let channel = queue.name().to_string();
                metrics::counter!(names::NOTIFICATIONS_TOTAL, "channel" => channel, "event" => event.as_str(), "result" => result)
                    .increment(0);
            }
        }
    }
}

impl SupervisorState {
    async fn start_child(&mut self, myself: &ActorRef<SupervisorMsg>, spec: ChildSpec) {
        let name = spec.name();
        register_series(&name, &spec);
        self.order.push(name.clone());
        self.children.insert(
            name.clone(),
            Child {
                spec,
                running: None,
                restarts: 0,
                last_restart: None,
                recent_failures: VecDeque::new(),
                crash_backoff: FIRST_CRASH_BACKOFF,
            },
        );
        if let Err(error) = self.spawn(myself, &name).await {
            tracing::error!(actor = %name, %error, "could not start; retrying with backoff");
            self.crashed(myself, &name);
        }
    }

    /// Spawns (or respawns) the named child from its spec, linked to the supervisor.
    async fn spawn(&mut self, myself: &ActorRef<SupervisorMsg>, name: &str) -> Result<(), ractor::SpawnErr> {
        let Some(child) = self.children.get(name) else { return Ok(()) };
        let services = Arc::clone(&self.services);
        let supervisor = myself.get_cell();
        let running = match &child.spec {
            ChildSpec::Persistence { store, settings, retention, backlog } => {
                let args = PersistenceArgs {
                    store: store.clone(),
                    services: Arc::clone(&services),
                    settings: *settings,
                    retention: *retention,
                    backlog: Arc::clone(backlog),
                };
                let (actor, _) = Actor::spawn_linked(None, Persistence, args, supervisor).await?;
                ChildRef::Persistence(actor)
            }
            ChildSpec::Incidents { inbox, memory } => {
                let args = IncidentsArgs {
                    services: Arc::clone(&services),
                    inbox: Arc::clone(inbox),
                    memory: Arc::clone(memory),
                };
                let (actor, _) = Actor::spawn_linked(None, Incidents, args, supervisor).await?;
                ChildRef::Incidents(actor)
            }
            ChildSpec::Notifier { queue } => {
                let args = NotifierArgs { queue: Arc::clone(queue), services: Arc::clone(&services) };
                let (actor, _) = Actor::spawn_linked(None, Notifier, args, supervisor).await?;
                services.directory.set_channel(queue);
                ChildRef::Notifier(actor)
            }
            ChildSpec::Asset { config, memory } => {
                let args = AssetArgs { config: Arc::clone(config), services, memory: Arc::clone(memory) };
                let (actor, _) = Actor::spawn_linked(None, Asset, args, supervisor).await?;
                ChildRef::Asset(actor)
            }
            ChildSpec::Watcher { files, seen } => {
                let args = WatcherArgs {
                    files: files.clone(),
                    supervisor: myself.clone(),
                    settle: WATCH_SETTLE,
                    poll: WATCH_POLL,
                    seen: Arc::clone(seen),
                };
                let (actor, _) = Actor::spawn_linked(None, ConfigWatcher, args, supervisor).await?;
                ChildRef::Watcher(actor)
            }
        };
        self.by_id.insert(running.cell().get_id(), name.to_string());
        if let Some(child) = self.children.get_mut(name) {
            child.running = Some(running);
        }
        Ok(())
    }

    /// A child died: restart it at once, or, in a crash loop, after a growing backoff.
    async fn failed(&mut self, myself: &ActorRef<SupervisorMsg>, name: &str, reason: &str) {
        let now = Instant::now();
        let intensity = self.intensity;
        let Some(child) = self.children.get_mut(name) else { return };
        child.running = None;
        child.restarts += 1;
        child.last_restart = Some(Utc::now());
        child.recent_failures.push_back(now);
        while child.recent_failures.front().is_some_and(|t| now.duration_since(*t) > intensity.window) {
            child.recent_failures.pop_front();
        }
        let restarts = child.restarts;
        let crash_loop = child.recent_failures.len() > intensity.max_restarts;
        metrics::counter!(names::ACTOR_RESTARTS_TOTAL, "actor" => name.to_string()).increment(1);
        tracing::error!(actor = %name, restarts, reason, "actor failed");
        let outcome = if crash_loop {
            self.crashed(myself, name);
            "it keeps failing: marked crashed and retried with backoff".to_string()
        } else {
            match self.spawn(myself, name).await {
                Ok(()) => format!("restarted (restart {restarts})"),
                Err(error) => {
                    tracing::error!(actor = %name, %error, "restart failed; retrying with backoff");
                    self.crashed(myself, name);
                    "the restart failed: retried with backoff".to_string()
                }
            }
        };
        self.services.directory.incidents(IncidentEvent::Panicked {
            actor: name.to_string(),
            details: format!("{name} failed: {reason}; {outcome}"),
        });
    }

    fn crashed(&mut self, myself: &ActorRef<SupervisorMsg>, name: &str) {
        let Some(child) = self.children.get_mut(name) else { return };
        let backoff = child.crash_backoff;
        child.crash_backoff = (backoff * 2).min(MAX_CRASH_BACKOFF);
        self.services.tree.set_crashed(name, true);
        tracing::error!(actor = %name, retry_in_s = backoff.as_secs_f64(), "actor keeps failing: marked crashed");
        let name = name.to_string();
        myself.send_after(backoff, move || SupervisorMsg::Respawn { name });
    }

    fn asset_entry(&self, name: &str) -> Option<AssetEntry> {
        let child = self.children.get(name)?;
        let ChildSpec::Asset { config, .. } = &child.spec else { return None };
        let actor = match &child.running {
            Some(ChildRef::Asset(actor)) => Some(actor.clone()),
            _ => None,
        };
        Some(AssetEntry { config: Arc::clone(config), actor, restarts: child.restarts })
    }

    /// Removes a child for good (its asset or channel left the config).
    fn retire(&mut self, name: &str) -> Option<Child> {
        let child = self.children.remove(name)?;
        self.order.retain(|n| n != name);
        self.services.tree.set_crashed(name, false);
        if let Some(running) = &child.running {
            self.by_id.remove(&running.cell().get_id());
        }
        Some(child)
    }

    async fn reload(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        trigger: ReloadTrigger,
    ) -> Result<ReloadReport, ReloadError> {
        // Settings first: the files to load are the running ones (changing them needs a restart).
        let settings = match self.settings.reload() {
            Some(Ok(settings)) => settings,
            Some(Err(error)) => return Err(ReloadError::Settings(error.to_string())),
            None => self.settings.clone(),
        };
        let config = Config::load(&self.settings.manifest, &self.settings.notifiers).map_err(ReloadError::Config)?;
        config.log_warnings();
        let mut restart_required = self.settings.needs_restart(&settings);
        if settings.log_level != self.settings.log_level {
            match crate::telemetry::set_log_level(&settings.log_level) {
                Ok(()) => tracing::info!(level = %settings.log_level, "log level changed"),
                Err(error) => restart_required.push(format!("log_level: {error}")),
            }
        }
        let diff = ConfigDiff::between(&self.config, &config);
        self.apply(myself, &diff, &config).await;
        self.config = config;
        // Only the log level applies live; the rest keeps running as it started.
        self.settings.log_level = settings.log_level;
        let warnings = self.config.warnings.iter().map(ToString::to_string).collect();
        Ok(ReloadReport { trigger, changes: diff.summary(), restart_required, warnings })
    }

    /// Applies a diff: only what changed is touched.
    async fn apply(&mut self, myself: &ActorRef<SupervisorMsg>, diff: &ConfigDiff, config: &Config) {
        let directory = &self.services.directory;
        if !diff.added_assets.is_empty() || !diff.removed_assets.is_empty() || !diff.changed_assets.is_empty() {
            // Queued ahead of the new assets' first results, so their rows exist first.
            directory.persist_change(StoreOp::SyncAssets(Arc::new(config.manifest.assets.clone())));
        }
        {
            let mut retired = self.services.retired_assets.write();
            retired.extend(diff.removed_assets.iter().cloned());
            for asset in &diff.added_assets {
                retired.remove(&asset.id);
            }
        }
        for id in &diff.removed_assets {
            if let Some(child) = self.retire(&format!("asset:{id}"))
                && let Some(running) = child.running
            {
                running.cell().stop(Some("removed from the config".into()));
            }
            // Its open incident closes as removed; nobody is told it recovered.
            self.services.directory.incidents(IncidentEvent::Removed { asset_id: id.clone() });
        }
        for asset in &diff.changed_assets {
            let name = format!("asset:{}", asset.id);
            let config = Arc::new(asset.clone());
            if let Some(child) = self.children.get_mut(&name) {
                if let ChildSpec::Asset { config: spec, .. } = &mut child.spec {
                    *spec = Arc::clone(&config);
                }
                if let Some(ChildRef::Asset(actor)) = &child.running {
                    let _ = actor.cast(AssetMsg::Update(config));
                }
            }
        }
        for name in &diff.removed_channels {
            self.services.directory.remove_notifier(name);
            if let Some(child) = self.retire(&format!("notifier:{name}"))
                && let Some(running) = child.running
            {
                // Drained in the background: what it still has to send goes out.
                let cell = running.cell();
                tokio::spawn(async move {
                    let _ = cell.drain_and_wait(Some(STOP_NOTIFIERS)).await;
                });
            }
        }
        for (name, channel) in &diff.changed_channels {
            if let Some(Child { spec: ChildSpec::Notifier { queue }, .. }) =
                self.children.get(&format!("notifier:{name}"))
            {
                queue.update(channel.clone());
            }
        }
        for (name, channel) in &diff.added_channels {
            self.start_child(myself, ChildSpec::Notifier { queue: ChannelQueue::new(name, channel.clone()) }).await;
        }
        if let Some(policy) = &diff.policy {
            self.services.directory.incidents(IncidentEvent::Policy(policy.clone()));
        }
        for asset in &diff.added_assets {
            let spec = ChildSpec::Asset { config: Arc::new(asset.clone()), memory: Arc::default() };
            self.start_child(myself, spec).await;
        }
        // Keep the listing in config order.
        let position: HashMap<&str, usize> =
            config.manifest.assets.iter().enumerate().map(|(i, a)| (a.id.as_str(), i)).collect();
        self.order.sort_by_key(|name| match name.strip_prefix("asset:") {
            Some(id) => (1, position.get(id).copied().unwrap_or(usize::MAX)),
            None => (0, 0),
        });
    }

    async fn shutdown(&mut self) {
        self.shutting_down = true;
        // No probe starts from here on; probes waiting for a slot give up.
        self.services.workers.close();
        let running = |kind: &'static str| -> Vec<ActorCell> {
            self.order
                .iter()
                .filter_map(|name| self.children.get(name))
                .filter(|child| child.spec.kind() == kind)
                .filter_map(|child| child.running.as_ref().map(ChildRef::cell))
                .collect()
        };
        for cell in running("config") {
            cell.stop(None);
        }
        let assets = running("asset");
        futures::future::join_all(assets.iter().map(|cell| cell.stop_and_wait(None, Some(STOP_ASSETS)))).await;
        // Drain, not stop: what is already queued (the last state changes, notifications and
        // results) is handled before each actor exits.
        for cell in running("incidents") {
            let _ = cell.drain_and_wait(Some(STOP_INCIDENTS)).await;
        }
        let notifiers = running("notifier");
        futures::future::join_all(notifiers.iter().map(|cell| cell.drain_and_wait(Some(STOP_NOTIFIERS)))).await;
        for cell in running("persistence") {
            if cell.drain_and_wait(Some(STOP_PERSISTENCE)).await.is_err() {
                tracing::error!(actor = "persistence", "did not finish writing in time");
            }
        }
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let files = vec![args.settings.manifest.clone(), args.settings.notifiers.clone()];
        let mut state = SupervisorState {
            services: args.services,
            intensity: args.intensity,
            config: args.config.clone(),
            settings: args.settings,
            children: HashMap::new(),
            order: Vec::new(),
            by_id: HashMap::new(),
            shutting_down: false,
        };
        let config = args.config;
        let names: HashMap<String, String> =
            config.manifest.assets.iter().map(|a| (a.id.clone(), a.name.clone())).collect();
        let open_by_asset: HashMap<&str, &Incident> =
            args.open_incidents.iter().map(|i| (i.asset_id.as_str(), i)).collect();

        let persistence = ChildSpec::Persistence {
            store: args.store,
            settings: state.services.persistence,
            retention: args.retention,
            backlog: Arc::clone(state.services.directory.backlog()),
        };
        state.start_child(&myself, persistence).await;
        for (name, channel) in &config.notifiers.notifiers {
            state.start_child(&myself, ChildSpec::Notifier { queue: ChannelQueue::new(name, channel.clone()) }).await;
        }
        let incidents = IncidentsMemory::resume(config.notifiers.policy.clone(), args.open_incidents.clone(), &names);
        let inbox = Arc::clone(state.services.directory.incidents_inbox());
        state.start_child(&myself, ChildSpec::Incidents { inbox, memory: Arc::new(Mutex::new(incidents)) }).await;
        if state.settings.watch_config {
            state.start_child(&myself, ChildSpec::Watcher { files, seen: Arc::default() }).await;
        }
        for asset in config.manifest.assets {
            let mut memory = AssetMemory::default();
            if let Some(incident) = open_by_asset.get(asset.id.as_str()) {
                let thresholds = Thresholds { failure: asset.failure_threshold, success: asset.success_threshold };
                let open = OpenIncident { id: incident.id, started_at: incident.started_at, started: None };
                memory.health = Health::resume_down(open, thresholds);
            }
            let spec = ChildSpec::Asset { config: Arc::new(asset), memory: Arc::new(Mutex::new(memory)) };
            state.start_child(&myself, spec).await;
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        message: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::Assets(reply) => {
                let entries = state.order.iter().filter_map(|name| state.asset_entry(name)).collect();
                let _ = reply.send(entries);
            }
            SupervisorMsg::Asset(id, reply) => {
                let _ = reply.send(state.asset_entry(&format!("asset:{id}")));
            }
            SupervisorMsg::Actors(reply) => {
                let infos = state
                    .order
                    .iter()
                    .filter_map(|name| state.children.get(name).map(|child| (name, child)))
                    .map(|(name, child)| ActorInfo {
                        name: name.clone(),
                        kind: child.spec.kind(),
                        status: if child.running.is_some() { "running" } else { "crashed" },
                        restarts: child.restarts,
                        last_restart: child.last_restart,
                        mailbox: child.spec.mailbox(),
                    })
                    .collect();
                let _ = reply.send(infos);
            }
            SupervisorMsg::Panic(actor, reply) => {
                let running = state.children.get(&actor).and_then(|child| child.running.clone());
                let sent = running.is_some_and(|child| child.panic(format!("chaos: panic injected into {actor}")));
                let _ = reply.send(sent);
            }
            SupervisorMsg::Reload(trigger, reply) => {
                if state.shutting_down {
                    return Ok(());
                }
                let outcome = state.reload(&myself, trigger).await;
                state.services.tree.set_reload(outcome.as_ref().err().map(ToString::to_string));
                match &outcome {
                    Ok(report) => {
                        metrics::counter!(names::CONFIG_RELOADS_TOTAL, "result" => "success").increment(1);
                        tracing::info!(?trigger, changes = ?report.changes, restart_required = ?report.restart_required, "config reloaded");
                    }
                    Err(error) => {
                        metrics::counter!(names::CONFIG_RELOADS_TOTAL, "result" => "error").increment(1);
                        tracing::error!(?trigger, %error, "config reload refused; nothing changed");
                    }
                }
                if let Some(reply) = reply {
                    let _ = reply.send(outcome);
                }
            }
            SupervisorMsg::Respawn { name } => {
                let waiting = state.children.get(&name).is_some_and(|child| child.running.is_none());
                if waiting && !state.shutting_down {
                    match state.spawn(&myself, &name).await {
                        Ok(()) => {
                            state.services.tree.set_crashed(&name, false);
                            tracing::warn!(actor = %name, "crashed actor started again");
                        }
                        Err(error) => {
                            tracing::error!(actor = %name, %error, "restart failed");
                            state.crashed(&myself, &name);
                        }
                    }
                }
            }
            SupervisorMsg::Shutdown(reply) => {
                state.shutdown().await;
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        // Never let an error escape from here: a supervisor that fails takes every monitor down.
        let (cell, reason) = match event {
            SupervisionEvent::ActorFailed(cell, error) => (cell, error.to_string()),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, reason.unwrap_or_else(|| "stopped unexpectedly".into()))
            }
            _ => return Ok(()),
        };
        let Some(name) = state.by_id.remove(&cell.get_id()) else { return Ok(()) };
        if state.shutting_down {
            return Ok(());
        }
        state.failed(&myself, &name, &reason).await;
        Ok(())
    }
}
