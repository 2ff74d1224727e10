//! The child table: what each child of the Supervisor is (its spec, with the state it keeps
//! across restarts), how it is spawned linked to the Supervisor, and how it leaves the table.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use ractor::{Actor, ActorCell, ActorRef};
use tokio::time::Instant;

use super::intensity::Restarts;
use super::{AssetEntry, SupervisorMsg, SupervisorState};
use crate::actors::asset::{Asset, AssetArgs, AssetMemory, AssetMsg};
use crate::actors::health::{Health, OpenIncident, Thresholds};
use crate::actors::inbox::Inbox;
use crate::actors::incidents::{IncidentEvent, Incidents, IncidentsArgs, IncidentsMemory, IncidentsMsg};
use crate::actors::notifier::{ChannelQueue, Notifier, NotifierArgs, NotifierMsg};
use crate::actors::persistence::{Backlog, Persistence, PersistenceArgs, PersistenceMsg};
use crate::actors::task::TaskKind;
use crate::actors::watcher::{ConfigWatcher, WatcherArgs, WatcherMsg};
use crate::config::AssetConfig;
use crate::notify::Event;
use crate::settings::{PerAsset, PersistenceSettings, RetentionSettings};
use crate::store::{Incident, Store};
use crate::telemetry::names;

/// Edits come in bursts of filesystem events; reload once they settle.
const WATCH_SETTLE: Duration = Duration::from_millis(500);
const WATCH_POLL: Duration = Duration::from_secs(5);
/// Asset actors spawned at once at start and on reload: enough to keep both cores busy while
/// each spawn waits for its actor's `pre_start`.
const SPAWN_AT_ONCE: usize = 256;

pub(super) struct PersistenceSpec {
    pub(super) store: Store,
    pub(super) settings: PersistenceSettings,
    pub(super) retention: RetentionSettings,
    pub(super) backlog: Arc<Backlog>,
}

/// What a child needs to be spawned again, with the state it keeps across restarts.
pub(super) enum ChildSpec {
    /// Boxed: one child among thousands, it would size every asset's entry to its own.
    Persistence(Box<PersistenceSpec>),
    Incidents {
        inbox: Arc<Inbox<IncidentEvent>>,
        memory: Arc<Mutex<IncidentsMemory>>,
    },
    Notifier {
        queue: Arc<ChannelQueue>,
    },
    Asset {
        config: Arc<AssetConfig>,
        memory: Arc<Mutex<AssetMemory>>,
    },
    Watcher {
        files: Vec<PathBuf>,
        seen: Arc<Mutex<Option<u64>>>,
    },
}

impl ChildSpec {
    pub(super) fn name(&self) -> String {
        match self {
            ChildSpec::Persistence(_) => "persistence".into(),
            ChildSpec::Incidents { .. } => "incidents".into(),
            ChildSpec::Notifier { queue } => format!("notifier:{}", queue.name()),
            ChildSpec::Asset { config, .. } => format!("asset:{}", config.id),
            ChildSpec::Watcher { .. } => "config".into(),
        }
    }

    pub(super) fn kind(&self) -> &'static str {
        match self {
            ChildSpec::Persistence(_) => "persistence",
            ChildSpec::Incidents { .. } => "incidents",
            ChildSpec::Notifier { .. } => "notifier",
            ChildSpec::Asset { .. } => "asset",
            ChildSpec::Watcher { .. } => "config",
        }
    }

    pub(super) fn mailbox(&self) -> Option<usize> {
        match self {
            ChildSpec::Persistence(spec) => Some(spec.backlog.len()),
            ChildSpec::Incidents { inbox, .. } => Some(inbox.len()),
            ChildSpec::Notifier { queue } => Some(queue.len()),
            ChildSpec::Asset { .. } | ChildSpec::Watcher { .. } => None,
        }
    }
}

/// A running child, typed so that it can be sent its own messages.
#[derive(Clone)]
pub(super) enum ChildRef {
    Persistence(ActorRef<PersistenceMsg>),
    Incidents(ActorRef<IncidentsMsg>),
    Notifier(ActorRef<NotifierMsg>),
    Asset(ActorRef<AssetMsg>),
    Watcher(ActorRef<WatcherMsg>),
}

impl ChildRef {
    pub(super) fn cell(&self) -> ActorCell {
        match self {
            ChildRef::Persistence(a) => a.get_cell(),
            ChildRef::Incidents(a) => a.get_cell(),
            ChildRef::Notifier(a) => a.get_cell(),
            ChildRef::Asset(a) => a.get_cell(),
            ChildRef::Watcher(a) => a.get_cell(),
        }
    }

    pub(super) fn panic(&self, reason: String) -> bool {
        match self {
            ChildRef::Persistence(a) => a.cast(PersistenceMsg::Panic(reason)).is_ok(),
            ChildRef::Incidents(a) => a.cast(IncidentsMsg::Panic(reason)).is_ok(),
            ChildRef::Notifier(a) => a.cast(NotifierMsg::Panic(reason)).is_ok(),
            ChildRef::Asset(a) => a.cast(AssetMsg::Panic(reason)).is_ok(),
            ChildRef::Watcher(a) => a.cast(WatcherMsg::Panic(reason)).is_ok(),
        }
    }
}

/// How long an asset given up to another replica may take to stop.
const STOP_ASSET: Duration = Duration::from_secs(2);

/// A child in the table: running or waiting out its crash backoff.
pub(super) struct Child {
    pub(super) spec: ChildSpec,
    /// None while crashed (or between a failure and its restart).
    pub(super) running: Option<ChildRef>,
    /// Cluster mode: an asset another replica owns, so not run here.
    pub(super) parked: bool,
    pub(super) restarts: u32,
    pub(super) last_restart: Option<DateTime<Utc>>,
    pub(super) failures: Restarts,
}

/// Counters that only move on rare events are exported at zero from the start, so a dashboard
/// or an alert (`increase(...) > 0`) sees a series instead of nothing until the first event.
/// With `[metrics] per_asset = "summary"`, an asset's series of rare events appear when they
/// happen instead: at zero they would be most of the page at 100,000 assets.
fn register_series(name: &str, spec: &ChildSpec, per_asset: PerAsset) {
    if matches!(spec, ChildSpec::Asset { .. }) && per_asset == PerAsset::Summary {
        return;
    }
    metrics::counter!(names::ACTOR_RESTARTS_TOTAL, "actor" => name.to_string()).increment(0);
    let tasks: &[TaskKind] = match spec {
        ChildSpec::Persistence(_) => &[TaskKind::Write, TaskKind::Retention],
        ChildSpec::Notifier { .. } => &[TaskKind::Delivery],
        ChildSpec::Asset { .. } => &[TaskKind::Probe],
        ChildSpec::Incidents { .. } | ChildSpec::Watcher { .. } => &[],
    };
    for task in tasks {
        metrics::counter!(names::TASK_PANICS_TOTAL, "actor" => name.to_string(), "task" => task.as_str()).increment(0);
    }
    if let ChildSpec::Notifier { queue } = spec {
        metrics::counter!(names::NOTIFICATIONS_RATE_LIMITED_TOTAL, "channel" => queue.name().to_string()).increment(0);
        metrics::counter!(names::NOTIFICATION_TEMPLATE_ERRORS_TOTAL, "channel" => queue.name().to_string())
            .increment(0);
        metrics::counter!(names::NOTIFICATIONS_DUPLICATE_TOTAL, "channel" => queue.name().to_string()).increment(0);
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
    /// Adds a child to the tree, not yet running, and lists it (even if its first start fails:
    /// then as crashed); answers its name and whether it is parked (cluster mode: an asset
    /// another replica owns is listed, not started).
    fn add_child(&mut self, spec: ChildSpec) -> (String, bool) {
        let name = spec.name();
        register_series(&name, &spec, self.services.per_asset);
        self.order.push(name.clone());
        let parked = match (&spec, &self.owned) {
            (ChildSpec::Asset { config, .. }, Some(owned)) => !owned.contains(&config.id),
            _ => false,
        };
        self.children.insert(
            name.clone(),
            Child {
                spec,
                running: None,
                parked,
                restarts: 0,
                last_restart: None,
                failures: Restarts::new(Instant::now()),
            },
        );
        self.index(&name);
        (name, parked)
    }

    pub(super) async fn start_child(&mut self, myself: &ActorRef<SupervisorMsg>, spec: ChildSpec) {
        let (name, parked) = self.add_child(spec);
        if parked {
            return;
        }
        if let Err(error) = self.spawn(myself, &name).await {
            tracing::error!(actor = %name, %error, "could not start; retrying with backoff");
            self.crashed(myself, &name);
        }
    }

    /// Starts many asset children at once: their actors are spawned [`SPAWN_AT_ONCE`] at a
    /// time instead of one after the other, so that at 100,000 assets start-up is not a queue
    /// of one spawn and one `pre_start` each waited for in turn (README "Benchmarks").
    pub(super) async fn start_assets(&mut self, myself: &ActorRef<SupervisorMsg>, specs: Vec<ChildSpec>) {
        use futures::StreamExt;
        let mut spawns = Vec::with_capacity(specs.len());
        for spec in specs {
            let ChildSpec::Asset { config, memory } = &spec else {
                self.start_child(myself, spec).await;
                continue;
            };
            let args = AssetArgs {
                config: Arc::clone(config),
                services: Arc::clone(&self.services),
                memory: Arc::clone(memory),
            };
            let (name, parked) = self.add_child(spec);
            if parked {
                continue;
            }
            let supervisor = myself.get_cell();
            spawns.push(async move { (name, Actor::spawn_linked(None, Asset, args, supervisor).await) });
        }
        let mut spawned = futures::stream::iter(spawns).buffer_unordered(SPAWN_AT_ONCE);
        while let Some((name, result)) = spawned.next().await {
            match result {
                Ok((actor, _)) => {
                    self.by_id.insert(actor.get_id(), name.clone());
                    if let Some(child) = self.children.get_mut(&name) {
                        child.running = Some(ChildRef::Asset(actor));
                        child.failures.started(Instant::now());
                    }
                    self.index(&name);
                }
                Err(error) => {
                    tracing::error!(actor = %name, %error, "could not start; retrying with backoff");
                    self.crashed(myself, &name);
                }
            }
        }
    }

    /// Spawns (or respawns) the named child from its spec, linked to the supervisor.
    pub(super) async fn spawn(&mut self, myself: &ActorRef<SupervisorMsg>, name: &str) -> Result<(), ractor::SpawnErr> {
        let Some(child) = self.children.get(name) else { return Ok(()) };
        let services = Arc::clone(&self.services);
        let supervisor = myself.get_cell();
        let running = match &child.spec {
            ChildSpec::Persistence(spec) => {
                let args = PersistenceArgs {
                    store: spec.store.clone(),
                    services: Arc::clone(&services),
                    settings: spec.settings,
                    retention: spec.retention,
                    backlog: Arc::clone(&spec.backlog),
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
            child.failures.started(Instant::now());
        }
        self.index(name);
        Ok(())
    }

    pub(super) fn asset_entry(&self, name: &str) -> Option<AssetEntry> {
        let child = self.children.get(name)?;
        let ChildSpec::Asset { config, memory } = &child.spec else { return None };
        let actor = match &child.running {
            Some(ChildRef::Asset(actor)) => Some(actor.clone()),
            _ => None,
        };
        Some(AssetEntry {
            config: Arc::clone(config),
            actor,
            restarts: child.restarts,
            memory: Arc::clone(memory),
            elsewhere: child.parked,
        })
    }

    /// Brings the asset index up to date with the named child (an asset child, or nothing):
    /// called on every change of an asset child's config, actor or restarts.
    pub(super) fn index(&self, name: &str) {
        let Some(id) = name.strip_prefix("asset:") else { return };
        match self.asset_entry(name) {
            Some(entry) => self.services.assets.set(entry),
            None => self.services.assets.remove(id),
        }
    }

    /// Cluster mode: runs exactly the `owned` assets. An asset given up is stopped and waited
    /// for; one taken resumes from the store as after a restart: down with its open incident
    /// if it has one, so that an outage moving between replicas is one incident and one DOWN
    /// (the incident itself is the incidents role's holder's, wherever the asset is probed).
    pub(super) async fn own(&mut self, myself: &ActorRef<SupervisorMsg>, owned: HashSet<String>) {
        if self.shutting_down {
            return;
        }
        let mut stopping = Vec::new();
        let mut handed_over = Vec::new();
        let mut starting = Vec::new();
        for (name, child) in &mut self.children {
            let ChildSpec::Asset { config, .. } = &child.spec else { continue };
            let want = owned.contains(&config.id);
            if want && child.parked {
                child.parked = false;
                starting.push(name.clone());
            } else if !want && !child.parked {
                child.parked = true;
                handed_over.push(config.id.clone());
                if let Some(running) = child.running.take() {
                    self.by_id.remove(&running.cell().get_id());
                    stopping.push(running.cell());
                }
                self.services.tree.set_crashed(name, false);
            }
        }
        futures::future::join_all(
            stopping.iter().map(|cell| cell.stop_and_wait(Some("owned by another replica".into()), Some(STOP_ASSET))),
        )
        .await;
        for asset_id in handed_over {
            // Listed as probed elsewhere from now on.
            self.index(&format!("asset:{asset_id}"));
        }
        let open = if starting.is_empty() { HashMap::new() } else { self.open_incidents().await };
        for name in &starting {
            let Some(Child { spec: ChildSpec::Asset { config, memory }, .. }) = self.children.get_mut(name) else {
                continue;
            };
            let mut fresh = AssetMemory::default();
            // An asset with `locations` starts afresh: its location's verdict stays in the store
            // until this replica confirms one of its own, and its incident is the decider's.
            if let Some(incident) = open.get(&config.id).filter(|_| config.locations.is_none()) {
                let thresholds = Thresholds { failure: config.failure_threshold, success: config.success_threshold };
                let resumed = OpenIncident { id: incident.id, started_at: incident.started_at, started: None };
                // Its incident is the incidents role's holder's (see `relay.rs`): this replica
                // only goes on confirming the outage, and its recovery.
                fresh.health = Health::resume_down(resumed, thresholds);
            }
            *memory = Arc::new(Mutex::new(fresh));
        }
        for name in starting {
            if let Err(error) = self.spawn(myself, &name).await {
                tracing::error!(actor = %name, %error, "could not start; retrying with backoff");
                self.crashed(myself, &name);
            }
        }
        self.owned = Some(owned);
    }

    /// The open incidents in the store, by asset; none (logged) if the store cannot say: the
    /// assets then start afresh, as they did before the takeover was resumed.
    async fn open_incidents(&self) -> HashMap<String, Incident> {
        let store = self.children.values().find_map(|child| match &child.spec {
            ChildSpec::Persistence(spec) => Some(spec.store.clone()),
            _ => None,
        });
        let Some(store) = store else { return HashMap::new() };
        match store.open_incidents().await {
            Ok(open) => open.into_iter().map(|incident| (incident.asset_id.clone(), incident)).collect(),
            Err(error) => {
                tracing::warn!(actor = "statusd", %error, "cannot read open incidents; assets taken over start afresh");
                HashMap::new()
            }
        }
    }

    /// Removes a child for good (its asset or channel left the config).
    pub(super) fn retire(&mut self, name: &str) -> Option<Child> {
        let child = self.children.remove(name)?;
        self.order.retain(|n| n != name);
        self.index(name);
        self.services.tree.set_crashed(name, false);
        if let Some(running) = &child.running {
            self.by_id.remove(&running.cell().get_id());
        }
        Some(child)
    }
}
