//! Supervisor ("statusd"): spawns every child linked to itself, restarts the ones that fail
//! with the state they must keep, applies reloads as a diff, and stops the children in order on
//! shutdown.
//!
//! ractor restarts nothing by itself: a child's panic arrives here as `ActorFailed`, and the
//! decision is ours. Like an OTP supervisor, a child that fails more than `max_restarts` times
//! within `window` is marked crashed and retried later with exponential backoff instead of
//! being restarted in a tight loop. What a child must keep lives in its spec (an asset's
//! memory, the Incidents inbox and memory, a channel's queue, Persistence's backlog), so the
//! replacement starts where the old one stopped.
//!
//! # Layout
//! - `children`: the child table, each child's spec and how it is spawned.
//! - `intensity`: restart intensity and crash backoff (pure).
//! - `reload`: a reload applied as a diff.
//! - `shutdown`: the children stopped in order.

mod children;
mod intensity;
mod reload;
mod shutdown;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use serde::Serialize;
use tokio::time::Instant;

use super::asset::AssetMemory;
use super::degradation::Degradation;
use super::health::{Health, OpenIncident, Thresholds};
use super::incidents::{AckOutcome, AckRequest, IncidentEvent, IncidentsMemory, IncidentsMsg, Resumed, metadata_of};
use super::notifier::ChannelQueue;
use super::{AbortOnDrop, Services, maintenance};
use crate::config::Config;
use crate::dependencies::DependencyGraph;
use crate::settings::{RetentionSettings, Settings};
use crate::store::{Incident, NotificationWrite, OutboxEntry, Store, StoreOp};
use crate::telemetry::names;
use children::{Child, ChildRef, ChildSpec, PersistenceSpec};
pub use intensity::RestartIntensity;
use reload::Reloads;
pub use reload::{Loaded, ReloadError, ReloadReport, ReloadTrigger};

pub struct Supervisor;

pub struct SupervisorArgs {
    pub config: Config,
    /// The settings statusd runs with; a reload reports those it cannot apply live.
    pub settings: Settings,
    pub store: Store,
    pub services: Arc<Services>,
    /// Open incidents found in the store at start: their assets resume as down.
    pub open_incidents: Vec<Incident>,
    /// Degradations found in the store at start (asset id, since): their assets resume degraded.
    pub degradations: Vec<(String, DateTime<Utc>)>,
    /// The outbox's pending notifications at start: decided before a restart, never sent.
    pub outbox: Vec<OutboxEntry>,
    pub retention: RetentionSettings,
    pub intensity: RestartIntensity,
    /// Cluster mode: assets run only once the cluster loop says this replica owns them.
    pub cluster: bool,
}

pub enum SupervisorMsg {
    Assets(RpcReplyPort<Vec<AssetEntry>>),
    Asset(String, RpcReplyPort<Option<AssetEntry>>),
    Actors(RpcReplyPort<Vec<ActorInfo>>),
    /// Acknowledge an incident: handed to the Incidents actor, which answers (no answer while
    /// it is down).
    Ack(AckRequest, RpcReplyPort<AckOutcome>),
    /// Chaos testing: make the named child panic. Answers whether it exists.
    Panic(String, RpcReplyPort<bool>),
    /// Load the config (and settings) again and apply the difference; answers if asked.
    Reload(ReloadTrigger, Option<RpcReplyPort<Result<ReloadReport, ReloadError>>>),
    /// A reload's files were loaded (off the runtime threads): apply them, or report why not.
    Loaded(Box<Loaded>),
    /// Retry a crashed child after its backoff.
    Respawn {
        name: String,
    },
    /// Cluster mode: the ids of the configured assets this replica's location probes: those
    /// whose `locations` include it, and the assets without `locations` if it is the cluster's
    /// home location (the argument; see `cluster.rs`).
    AssetIds(bool, RpcReplyPort<Vec<String>>),
    /// Cluster mode: run exactly these assets (those whose leases this replica holds); the
    /// others are stopped (and waited for) before the answer.
    Own(HashSet<String>, RpcReplyPort<()>),
    /// Stop every child in order (assets, incidents, notifiers, persistence last, so that it
    /// flushes everything the others produced).
    Shutdown(RpcReplyPort<()>),
}

pub use super::index::AssetEntry;

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
    /// Cluster mode: the assets this replica owns (None: alone, it owns every asset).
    owned: Option<HashSet<String>>,
    /// Reloads asked for: the one loading, and those that wait for it to end.
    reloads: Reloads,
    /// The task that announces maintenance windows opening and closing; it lives as long as
    /// the Supervisor, so no child's restart and no reload announces anything twice.
    _announcer: Option<AbortOnDrop<()>>,
}

impl SupervisorState {
    /// A child died: restart it at once, or, in a crash loop, after a growing backoff.
    async fn failed(&mut self, myself: &ActorRef<SupervisorMsg>, name: &str, reason: &str) {
        let now = Instant::now();
        let intensity = self.intensity;
        let Some(child) = self.children.get_mut(name) else { return };
        child.running = None;
        child.restarts += 1;
        child.last_restart = Some(Utc::now());
        let crash_loop = child.failures.failed(now, intensity);
        let restarts = child.restarts;
        self.index(name);
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

    pub(super) fn crashed(&mut self, myself: &ActorRef<SupervisorMsg>, name: &str) {
        let Some(child) = self.children.get_mut(name) else { return };
        let backoff = child.failures.crash_backoff();
        self.services.tree.set_crashed(name, true);
        tracing::error!(actor = %name, retry_in_s = backoff.as_secs_f64(), "actor keeps failing: marked crashed");
        let name = name.to_string();
        myself.send_after(backoff, move || SupervisorMsg::Respawn { name });
    }

    /// A crashed child's backoff is over: start it again, or wait longer if that fails.
    async fn respawn(&mut self, myself: &ActorRef<SupervisorMsg>, name: &str) {
        let waiting = self.children.get(name).is_some_and(|child| child.running.is_none() && !child.parked);
        if !waiting || self.shutting_down {
            return;
        }
        match self.spawn(myself, name).await {
            Ok(()) => {
                self.services.tree.set_crashed(name, false);
                tracing::warn!(actor = %name, "crashed actor started again");
            }
            Err(error) => {
                tracing::error!(actor = %name, %error, "restart failed");
                self.crashed(myself, name);
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
        let announcer = AbortOnDrop(tokio::spawn(maintenance::announce(Arc::clone(&args.services))));
        let mut state = SupervisorState {
            services: args.services,
            intensity: args.intensity,
            config: args.config.clone(),
            settings: args.settings,
            children: HashMap::new(),
            order: Vec::new(),
            by_id: HashMap::new(),
            shutting_down: false,
            owned: args.cluster.then(HashSet::new),
            reloads: Reloads::default(),
            _announcer: Some(announcer),
        };
        let config = args.config;
        let names: HashMap<String, String> =
            config.manifest.assets.iter().map(|a| (a.id.clone(), a.name.clone())).collect();
        let open_by_asset: HashMap<&str, &Incident> =
            args.open_incidents.iter().map(|i| (i.asset_id.as_str(), i)).collect();

        let persistence = ChildSpec::Persistence(Box::new(PersistenceSpec {
            store: args.store,
            settings: state.services.persistence,
            retention: args.retention,
            backlog: Arc::clone(state.services.directory.backlog()),
        }));
        state.start_child(&myself, persistence).await;
        let mut outbox: HashMap<String, Vec<OutboxEntry>> = HashMap::new();
        // In a cluster the replicas start together, and the outbox is the database's: only the
        // incidents role's holder sends what was left pending, once.
        let resend = !args.cluster || state.services.cluster.holds_incidents_role();
        let pending = if resend { args.outbox } else { Vec::new() };
        for entry in pending {
            outbox.entry(entry.channel.clone()).or_default().push(entry);
        }
        for (name, channel) in &config.notifiers.notifiers {
            let queue = ChannelQueue::new(name, channel.clone());
            // Before anything new: they were decided first.
            for entry in outbox.remove(name).unwrap_or_default() {
                let age = (Utc::now() - entry.decided_at).to_std().unwrap_or_default();
                queue.resume(entry, age);
            }
            state.start_child(&myself, ChildSpec::Notifier { queue }).await;
        }
        for entry in outbox.into_values().flatten() {
            tracing::warn!(channel = %entry.channel, asset_id = %entry.notification.asset_id, "a pending notification's channel is no longer configured: given up");
            state.services.directory.persist_change(StoreOp::Notification(NotificationWrite::Failed {
                id: entry.id,
                at: Utc::now(),
                attempts: 0,
                error: format!("channel {:?} is no longer configured", entry.channel),
            }));
        }
        state.services.set_template_assets(&config.manifest.assets);
        let graph = Arc::new(DependencyGraph::of(&config.manifest.assets));
        let connectivity = config.manifest.connectivity();
        state.services.connectivity.set_members(connectivity.iter().map(String::as_str));
        // In a cluster only the incidents role's holder decides (see `relay.rs`): it goes on
        // with what the store has open; another replica's Incidents actor starts empty, and
        // takes everything over if the role comes to it.
        let resumed = if args.cluster && !state.services.cluster.holds_incidents_role() {
            Resumed { open: Vec::new(), degraded: Vec::new(), connectivity }
        } else {
            Resumed { open: args.open_incidents.clone(), degraded: args.degradations.clone(), connectivity }
        };
        let incidents = IncidentsMemory::resume(
            config.notifiers.policy.clone(),
            metadata_of(&config.manifest.assets),
            graph,
            resumed,
            &names,
        );
        let degraded_since: HashMap<&str, DateTime<Utc>> =
            args.degradations.iter().map(|(id, since)| (id.as_str(), *since)).collect();
        let inbox = Arc::clone(state.services.directory.incidents_inbox());
        state.start_child(&myself, ChildSpec::Incidents { inbox, memory: Arc::new(Mutex::new(incidents)) }).await;
        if state.settings.watch_config {
            state.start_child(&myself, ChildSpec::Watcher { files, seen: Arc::default() }).await;
        }
        let mut specs = Vec::with_capacity(config.manifest.assets.len());
        for asset in config.manifest.assets {
            let mut memory = AssetMemory::default();
            if let Some(incident) = open_by_asset.get(asset.id.as_str()) {
                let thresholds = Thresholds { failure: asset.failure_threshold, success: asset.success_threshold };
                let open = OpenIncident { id: incident.id, started_at: incident.started_at, started: None };
                memory.health = Health::resume_down(open, thresholds);
                if asset.is_connectivity() {
                    // Down when statusd stopped: its latest result failed, so the network is
                    // judged lost from the first result of any other asset, not after a race.
                    state.services.connectivity.report(&asset.id, false);
                }
            }
            if let Some(since) = degraded_since.get(asset.id.as_str()) {
                memory.degradation = Degradation::resume(*since);
            }
            specs.push(ChildSpec::Asset { config: asset, memory: Arc::new(Mutex::new(memory)) });
        }
        state.start_assets(&myself, specs).await;
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
            SupervisorMsg::Ack(request, reply) => {
                if let Some(Child { running: Some(ChildRef::Incidents(actor)), .. }) = state.children.get("incidents") {
                    // Answered by the Incidents actor itself: the Supervisor does not wait.
                    let _ = actor.cast(IncidentsMsg::Ack(request, reply));
                }
            }
            SupervisorMsg::Panic(actor, reply) => {
                let running = state.children.get(&actor).and_then(|child| child.running.clone());
                let sent = running.is_some_and(|child| child.panic(format!("chaos: panic injected into {actor}")));
                let _ = reply.send(sent);
            }
            SupervisorMsg::Reload(trigger, reply) => state.request_reload(&myself, trigger, reply),
            SupervisorMsg::Loaded(loaded) => state.apply_loaded(&myself, *loaded).await,
            SupervisorMsg::Respawn { name } => state.respawn(&myself, &name).await,
            SupervisorMsg::AssetIds(home, reply) => {
                // An asset whose `locations` leave this replica's out is parked here.
                let location = &state.services.cluster.location;
                let ids = state
                    .config
                    .manifest
                    .assets
                    .iter()
                    .filter(|asset| asset.locations.as_ref().map_or(home, |locations| locations.includes(location)))
                    .map(|asset| asset.id.clone())
                    .collect();
                let _ = reply.send(ids);
            }
            SupervisorMsg::Own(owned, reply) => {
                state.own(&myself, owned).await;
                let _ = reply.send(());
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

/// Restart intensity and crash backoff through the Supervisor's own handling, in virtual time:
/// a relay actor stands in for the Supervisor, so each failure and each retry reaches the test,
/// which hands it to the state as the Supervisor would.
#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde_json::json;
    use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

    use super::*;
    use crate::actors::testing::{http_asset, services};
    use crate::config::{Manifest, NotifiersConfig};

    const SECOND: Duration = Duration::from_secs(1);
    const NAME: &str = "asset:loopy";

    enum Heard {
        Failed(ActorId),
        Respawn(String),
    }

    /// Stands in for the Supervisor: what would reach it goes to the test, stamped.
    struct Relay;

    impl Actor for Relay {
        type Msg = SupervisorMsg;
        type State = UnboundedSender<(Instant, Heard)>;
        type Arguments = UnboundedSender<(Instant, Heard)>;

        async fn pre_start(
            &self,
            _: ActorRef<SupervisorMsg>,
            heard: Self::Arguments,
        ) -> Result<Self::State, ActorProcessingErr> {
            Ok(heard)
        }

        async fn handle(
            &self,
            _: ActorRef<SupervisorMsg>,
            message: SupervisorMsg,
            heard: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            if let SupervisorMsg::Respawn { name } = message {
                let _ = heard.send((Instant::now(), Heard::Respawn(name)));
            }
            Ok(())
        }

        async fn handle_supervisor_evt(
            &self,
            _: ActorRef<SupervisorMsg>,
            event: SupervisionEvent,
            heard: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            if let SupervisionEvent::ActorFailed(cell, _) = event {
                let _ = heard.send((Instant::now(), Heard::Failed(cell.get_id())));
            }
            Ok(())
        }
    }

    struct Tree {
        state: SupervisorState,
        relay: ActorRef<SupervisorMsg>,
        heard: UnboundedReceiver<(Instant, Heard)>,
    }

    impl Tree {
        async fn start(intensity: RestartIntensity) -> Tree {
            let (sender, heard) = unbounded_channel();
            let (relay, _) = Actor::spawn(None, Relay, sender).await.expect("relay");
            let config = Config {
                manifest: Manifest { assets: Vec::new(), maintenance: Vec::new() },
                notifiers: NotifiersConfig { notifiers: BTreeMap::new(), policy: Default::default() },
                warnings: Vec::new(),
            };
            let mut state = SupervisorState {
                services: services(),
                intensity,
                config,
                settings: Settings::default(),
                children: HashMap::new(),
                order: Vec::new(),
                by_id: HashMap::new(),
                shutting_down: false,
                owned: None,
                reloads: Reloads::default(),
                _announcer: None,
            };
            let spec = ChildSpec::Asset { config: http_asset("loopy", json!({})), memory: Arc::default() };
            state.start_child(&relay, spec).await;
            Tree { state, relay, heard }
        }

        fn running(&self) -> bool {
            self.state.children[NAME].running.is_some()
        }

        fn crashed(&self) -> bool {
            self.state.services.tree.crashed().contains(&NAME.to_string())
        }

        /// Makes the child panic and hands its failure to the state; returns when it failed.
        async fn crash(&mut self) -> Instant {
            let running = self.state.children[NAME].running.clone().expect("running");
            assert!(running.panic("chaos".into()));
            let Some((at, Heard::Failed(id))) = self.heard.recv().await else { panic!("expected a failure") };
            let name = self.state.by_id.remove(&id).expect("one of the children");
            self.state.failed(&self.relay, &name, "chaos").await;
            at
        }

        /// Waits for the retry of a crashed child, hands it to the state; returns the wait.
        async fn retried(&mut self, failed: Instant) -> Duration {
            assert!(!self.running() && self.crashed(), "crashed, waiting out its backoff");
            let Some((at, Heard::Respawn(name))) = self.heard.recv().await else { panic!("expected a retry") };
            self.state.respawn(&self.relay, &name).await;
            assert!(self.running() && !self.crashed(), "running again");
            at.duration_since(failed)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_crash_loop_is_retried_after_a_doubling_backoff_that_starts_over_after_a_healthy_window() {
        let window = 60 * SECOND;
        let mut tree = Tree::start(RestartIntensity { max_restarts: 1, window }).await;

        // One failure within the window is restarted at once.
        tree.crash().await;
        assert!(tree.running() && !tree.crashed());
        // Each further one is a crash loop: retried after 1 s, 2 s, 4 s.
        for wait in [1, 2, 4] {
            let failed = tree.crash().await;
            assert_eq!(tree.retried(failed).await, wait * SECOND);
        }
        assert_eq!(tree.state.children[NAME].restarts, 4);

        // Healthy for a whole window: the next failure is restarted at once again, and the
        // crash loop after it starts over from 1 s instead of going on to 8 s.
        tokio::time::sleep(window).await;
        tree.crash().await;
        assert!(tree.running() && !tree.crashed());
        let failed = tree.crash().await;
        assert_eq!(tree.retried(failed).await, SECOND);
        // Not healthy long enough: the backoff grows from there.
        tokio::time::sleep(window / 2).await;
        let failed = tree.crash().await;
        assert_eq!(tree.retried(failed).await, 2 * SECOND);
    }
}
