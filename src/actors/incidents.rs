//! Incidents actor ("incidents"): opens an incident when an asset is confirmed down, closes it
//! when the asset recovers (or leaves the config), and decides by the policy which channels
//! hear what, PANIC reports included.
//!
//! Its inbox is an [`Inbox`] the Supervisor keeps, and its memory (open incidents, what each
//! channel heard) a checkpoint the Supervisor keeps too: a panic loses neither a transition
//! waiting to be handled nor what was already decided. On a fresh start the memory is rebuilt
//! from the store's open incidents, so a restarted process neither opens a second incident nor
//! sends a second DOWN for an outage it already reported, and still sends the RECOVERY.
//!
//! Escalation and acknowledgement live here too: each tier the policy notifies is recorded on
//! the incident (`tier`, and a `notified` entry in its timeline), and an acknowledgement asked
//! through the API ([`IncidentsMsg::Ack`]) is recorded and stops reminders and tiers. Both are
//! persisted, so a restarted statusd resumes an open incident with the tier it reached and its
//! acknowledgement: no tier is sent twice, and an acknowledged incident stays quiet.
//!
//! The checkpoint is taken after every event, and a mass outage brings tens of thousands of
//! events in seconds, so it must not cost in proportion to what is remembered. The memory is
//! made of persistent maps (`imbl`): the checkpoint is a clone that shares every node (O(1)),
//! and the next change copies only the path to what it changes (O(log n)). Mutating the shared
//! memory in place would be O(1) too, but a panic half-way through an event would leave half of
//! it applied for the redelivered event to trip over (an incident recorded as open whose DOWN
//! was never decided, say); with a snapshot per event, the replacement resumes from the memory
//! as it was before the event and handles it whole.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::time::Instant;
use uuid::Uuid;

use super::causes::{Causes, DownOutcome};
use super::flapping::{FlapBreaker, FlapVerdict, Settled};
use super::grouping::Grouper;
use super::health::{OpenIncident, Recovery};
use super::inbox::{Inbox, MAX_ATTEMPTS};
use super::network::{NetworkChange, NetworkWatch};
use super::policy::{AssetsMetadata, Delivery, Dispatcher, human_duration};
use super::services::HeldIncident;
use super::{AbortOnDrop, Services};
use crate::asset::AssetConfig;
use crate::config::NotificationPolicy;
use crate::dependencies::DependencyGraph;
use crate::notify::{Event, Notification};
use crate::store::{
    CloseReason, DegradationWrite, Incident, IncidentWrite, OutboxEntry, Store, StoreError, StoreOp, TimelineEntry,
    TimelineKind,
};
use crate::telemetry::names;

/// The `assetId` of NETWORK_DOWN and NETWORK_UP, which are about statusd's network, no asset.
pub const NETWORK: &str = "network";

/// Severity of a newly opened incident (the seed's default).
pub const INITIAL_SEVERITY: &str = "INITIAL";

/// How the timeline says an incident closed because its asset left the config.
const REMOVED_DETAIL: &str = "its asset left the config";

pub struct Incidents;

pub struct IncidentsArgs {
    pub services: Arc<Services>,
    pub inbox: Arc<Inbox<IncidentEvent>>,
    /// Outlives the actor: the Supervisor hands it to the replacement after a panic.
    pub memory: Arc<Mutex<IncidentsMemory>>,
}

/// An asset was confirmed down (sent by its actor).
#[derive(Debug, Clone)]
pub struct AssetDown {
    pub asset_id: String,
    pub asset_name: String,
    pub incident: OpenIncident,
    pub details: String,
}

/// An asset that was down is confirmed up again.
#[derive(Debug, Clone)]
pub struct AssetRecovered {
    pub asset_id: String,
    pub asset_name: String,
    pub incident: OpenIncident,
    pub recovery: Recovery,
    /// What more the RECOVERY says: for an asset with `locations`, which locations see what.
    pub details: Option<String>,
}

/// An asset was confirmed degraded, or confirmed no longer degraded (sent by its actor).
#[derive(Debug, Clone)]
pub struct AssetDegraded {
    pub asset_id: String,
    pub asset_name: String,
    /// When the degradation began (its first degraded result).
    pub since: DateTime<Utc>,
    /// Why, from the result that decided: `slow: 412ms > degradedLatencyMs 200ms`, …
    pub details: String,
}

/// What the Incidents actor is told, through its inbox.
#[derive(Debug, Clone)]
pub enum IncidentEvent {
    Down(AssetDown),
    Recovered(AssetRecovered),
    Degraded(AssetDegraded),
    DegradationEnded(AssetDegraded),
    /// The `"role": "connectivity"` assets are now these (start and reload).
    Connectivity(BTreeSet<String>),
    /// The asset left the config: its open incident closes as removed; nobody hears a recovery.
    Removed {
        asset_id: String,
    },
    /// An actor panicked: the `onPanic` channels hear it.
    Panicked {
        actor: String,
        details: String,
    },
    /// The notification policy or the assets were reloaded: the policy in force, and every
    /// asset's metadata (which picks its route).
    Policy {
        policy: NotificationPolicy,
        metadata: Arc<AssetsMetadata>,
    },
    /// The manifest was reloaded: its `dependsOn` graph.
    Dependencies(Arc<DependencyGraph>),
    /// Cluster mode: this replica just took the incidents role, and goes on with what the
    /// store has open (`names`: every configured asset's name, by id).
    RoleTaken {
        /// The open incidents (their DOWN went out).
        open: Vec<Incident>,
        /// The assets confirmed degraded, and since when (their DEGRADED went out).
        degraded: Vec<(String, DateTime<Utc>)>,
        names: HashMap<String, String>,
    },
    /// Cluster mode: this replica lost the incidents role: it forgets every incident, without
    /// closing any or telling anyone (the next holder goes on with them).
    RoleLost,
    /// statusd is stopping: whatever waits to be grouped goes out now (it was decided, and a
    /// restarted statusd knows it was). Sent last, so every event before it is handled first.
    Stopping,
    /// The assets a maintenance window covers now (at start and whenever that changes): their
    /// open incidents send neither reminders nor tiers until they are released.
    Maintenance(BTreeSet<String>),
}

/// Every asset's metadata, by id, for the routes.
pub fn metadata_of(assets: &[Arc<AssetConfig>]) -> Arc<AssetsMetadata> {
    Arc::new(assets.iter().map(|asset| (asset.id.clone(), asset.metadata.clone())).collect())
}

/// `POST /api/incidents/{id}/ack`: who acknowledges, and why.
#[derive(Debug, Clone)]
pub struct AckRequest {
    pub incident_id: Uuid,
    pub by: String,
    pub note: Option<String>,
}

/// What an acknowledgement found.
#[derive(Debug, Clone)]
pub enum AckOutcome {
    /// The open incident, acknowledged now or already (the first acknowledgement stays).
    Acknowledged(Box<Incident>),
    /// No open incident has this id (closed, or never was: the store tells which).
    NotOpen,
}

pub enum IncidentsMsg {
    /// The inbox has events.
    Wake,
    /// Time to send held-back DOWNs, tiers and reminders.
    Timer {
        generation: u64,
    },
    /// Acknowledge an open incident, answering with the incident.
    Ack(AckRequest, RpcReplyPort<AckOutcome>),
    Panic(String),
}

/// What the Incidents actor knows; kept across restarts of the actor. Cloning it is O(1).
#[derive(Debug, Clone)]
pub struct IncidentsMemory {
    /// Open incident per asset id.
    open: imbl::HashMap<String, Incident>,
    dispatcher: Dispatcher,
    /// Deliveries held back to be grouped with others of a storm.
    grouper: Grouper,
    /// Recent changes of state, and which assets are flapping.
    flaps: FlapBreaker,
    /// The names of the flapping assets, for the message that announces how each settled.
    flapping_names: imbl::HashMap<String, String>,
    /// Outages attributed to a root cause (`dependsOn`), and DOWNs held to find one.
    causes: Causes,
    /// DEGRADED and its RECOVERY, by the policy's `onDegraded` (see
    /// [`NotificationPolicy::for_degraded`]): throttled per asset and channel like the rest.
    degraded: Dispatcher,
    /// The connectivity assets confirmed down, and whether NETWORK_DOWN went out.
    network: NetworkWatch,
    /// The assets a maintenance window covers, as last told.
    held: imbl::OrdSet<String>,
}

/// What a fresh start resumes from, besides the policy.
#[derive(Debug, Clone, Default)]
pub struct Resumed {
    /// Open incidents in the store: their DOWN already went out.
    pub open: Vec<Incident>,
    /// Assets confirmed degraded in the store, and since when: their DEGRADED already went out.
    pub degraded: Vec<(String, DateTime<Utc>)>,
    /// The ids of the `"role": "connectivity"` assets.
    pub connectivity: BTreeSet<String>,
}

impl IncidentsMemory {
    /// The memory of a fresh start: what the store says was already decided. An open
    /// incident's tiers up to the one recorded already went out; the later ones are due as long
    /// after `startedAt` as their `afterSeconds` (on the wall clock, the only one that spans a
    /// restart); one with no tier recorded had its DOWN decided by nobody yet (held to find a
    /// root cause, say), so it is decided again.
    pub fn resume(
        policy: NotificationPolicy,
        metadata: Arc<AssetsMetadata>,
        graph: Arc<DependencyGraph>,
        resumed: Resumed,
        names: &HashMap<String, String>,
    ) -> Self {
        let Resumed { open, degraded, connectivity } = resumed;
        let mut dispatcher = Dispatcher::new(policy.clone());
        dispatcher.set_metadata(metadata, Instant::now());
        let mut memory = IncidentsMemory {
            open: imbl::HashMap::new(),
            dispatcher,
            grouper: Grouper::default(),
            flaps: FlapBreaker::default(),
            flapping_names: imbl::HashMap::new(),
            causes: Causes::new(graph),
            degraded: Dispatcher::new(policy.for_degraded()),
            network: NetworkWatch::resume(connectivity, std::iter::empty()),
            held: imbl::OrdSet::new(),
        };
        memory.adopt(open, degraded, names);
        memory
    }

    /// Goes on with what the store has open (at start, or on taking the cluster's incidents
    /// role): each open incident not known yet, and each degradation.
    fn adopt(
        &mut self,
        open: Vec<Incident>,
        degradations: Vec<(String, DateTime<Utc>)>,
        names: &HashMap<String, String>,
    ) {
        let now = Instant::now();
        let wall_clock = Utc::now();
        let name_of = |id: &String| names.get(id).cloned().unwrap_or_else(|| id.clone());
        let open_for = |since: DateTime<Utc>| (wall_clock - since).to_std().unwrap_or_default();
        for (asset_id, since) in degradations {
            let notification = Notification {
                event: Event::Degraded,
                asset_name: name_of(&asset_id),
                asset_id,
                timestamp: since,
                details: String::new(),
                incident_id: None,
                group: Vec::new(),
                tier: None,
                since: Some(since),
            };
            // DEGRADED has one tier (`onDegraded`), and it went out.
            self.degraded.resume(notification, Some(0), false, open_for(since), now);
        }
        let open: Vec<Incident> = open
            .into_iter()
            .filter(|incident| self.open.get(&incident.asset_id).is_none_or(|known| known.id != incident.id))
            .collect();
        // A connectivity asset down in the store was down when its outage was decided.
        self.network = self.network.with_down(open.iter().map(|incident| incident.asset_id.clone()));
        for incident in open {
            let asset_name = name_of(&incident.asset_id);
            self.resume_open(incident, asset_name, open_for, now);
        }
    }
}

impl IncidentsMemory {
    /// Goes on with an incident the store has open (at start, or taken over): its DOWN (or
    /// FLAPPING) went out, so only later tiers and the RECOVERY are owed; `open_for` says how
    /// long ago a time was on the wall clock.
    fn resume_open(
        &mut self,
        incident: Incident,
        asset_name: String,
        open_for: impl Fn(DateTime<Utc>) -> std::time::Duration,
        now: Instant,
    ) {
        // A connectivity asset's outage was never a DOWN (see `network.rs`): nothing is owed.
        if !self.network.is_down(&incident.asset_id) {
            let down = Notification {
                event: if incident.flapping { Event::Flapping } else { Event::Down },
                asset_id: incident.asset_id.clone(),
                asset_name,
                timestamp: incident.started_at,
                details: incident.summary.clone(),
                incident_id: Some(incident.id),
                group: Vec::new(),
                tier: None,
                since: Some(incident.started_at),
            };
            if incident.flapping {
                // The breaker held it when it was last decided: it goes on holding it, as if
                // the state had just changed.
                self.flaps.resume(&incident.asset_id, now);
                self.flapping_names.insert(incident.asset_id.clone(), down.asset_name.clone());
            }
            match &incident.caused_by {
                // Its DOWN was never sent: no RECOVERY is owed, and it may yet be its own outage.
                Some(root) => self.causes.resume(down, root.clone()),
                None => self.dispatcher.resume(
                    down,
                    incident.tier,
                    incident.acknowledged_at.is_some(),
                    open_for(incident.started_at),
                    now,
                ),
            }
        }
        self.open.insert(incident.asset_id.clone(), incident);
    }
}

pub struct IncidentsState {
    services: Arc<Services>,
    inbox: Arc<Inbox<IncidentEvent>>,
    checkpoint: Arc<Mutex<IncidentsMemory>>,
    memory: IncidentsMemory,
    generation: u64,
    /// The wake-up the timer is set for, while it has not fired: an event that leaves the next
    /// deadline where it was keeps the timer instead of replacing it.
    timer_at: Option<Instant>,
    timer: Option<AbortOnDrop<Result<(), ractor::MessagingErr<IncidentsMsg>>>>,
    open_gauge: metrics::Gauge,
}

impl IncidentsState {
    /// Sends what the policy decided, except what waits to be grouped with a storm, and
    /// records the tiers it reached.
    fn dispatch(&mut self, deliveries: Vec<Delivery>) {
        let directory = &self.services.directory;
        let grouping = self.memory.dispatcher.policy().grouping;
        let now = Instant::now();
        let ready = self.memory.grouper.offer(deliveries, grouping, |channel| directory.channel_groups(channel), now);
        self.send(ready);
        self.record_climbs();
    }

    fn send(&self, deliveries: Vec<Delivery>) {
        for delivery in deliveries {
            self.services.directory.notify(&delivery.channel, delivery.notification);
        }
    }

    /// Records on each incident the tiers the dispatcher reached (at the decision: a DOWN that
    /// waits to be grouped counts as notified).
    fn record_climbs(&mut self) {
        for climb in self.memory.dispatcher.take_climbs() {
            let Some(incident) = self.memory.open.get_mut(&climb.asset_id) else { continue };
            if Some(incident.id) != climb.incident_id {
                continue;
            }
            incident.tier = Some(incident.tier.map_or(climb.tier, |tier| tier.max(climb.tier)));
            let id = incident.id;
            tracing::info!(actor = "incidents", asset_id = %climb.asset_id, incident_id = %id, tier = climb.tier, channels = ?climb.channels, "escalation tier notified");
            self.persist(IncidentWrite::Tier { id, tier: climb.tier });
            let detail = format!("tier {}: {}", climb.tier, climb.channels.join(", "));
            self.timeline(id, Utc::now(), TimelineKind::Notified, detail);
        }
    }

    fn persist(&self, write: IncidentWrite) {
        self.services.directory.persist_change(StoreOp::Incident(write));
    }

    fn timeline(&self, incident_id: Uuid, at: DateTime<Utc>, kind: TimelineKind, detail: String) {
        self.persist(IncidentWrite::Timeline(TimelineEntry { id: Uuid::now_v7(), incident_id, at, kind, detail }));
    }

    /// Acknowledges an open incident (once: a second acknowledgement keeps the first).
    fn acknowledge(&mut self, request: AckRequest) -> AckOutcome {
        let Some((asset_id, incident)) = self.memory.open.iter().find(|(_, i)| i.id == request.incident_id) else {
            return AckOutcome::NotOpen;
        };
        if incident.acknowledged_at.is_some() {
            return AckOutcome::Acknowledged(Box::new(incident.clone()));
        }
        let asset_id = asset_id.clone();
        let now = Utc::now();
        let note = request.note.filter(|note| !note.is_empty());
        let said = match &note {
            Some(note) => format!("by {}: {note}", request.by),
            None => format!("by {}", request.by),
        };
        let mut incident = incident.clone();
        incident.acknowledged_at = Some(now);
        incident.acknowledged_by = Some(request.by.clone());
        incident.ack_note = note.clone();
        self.memory.open.insert(asset_id.clone(), incident.clone());
        tracing::info!(actor = "incidents", %asset_id, incident_id = %incident.id, "incident acknowledged {said}");
        self.persist(IncidentWrite::Ack { id: incident.id, at: now, by: request.by, note });
        self.timeline(incident.id, now, TimelineKind::Acknowledged, said.clone());
        let deliveries =
            self.memory.dispatcher.ack(&asset_id, incident.id, format!("acknowledged {said}"), now, Instant::now());
        self.dispatch(deliveries);
        AckOutcome::Acknowledged(Box::new(incident))
    }

    fn reschedule(&mut self, myself: &ActorRef<IncidentsMsg>) {
        let flapping = self.memory.dispatcher.policy().flapping;
        let next = [
            self.memory.dispatcher.next_wake(),
            self.memory.grouper.next_wake(),
            self.memory.flaps.next_wake(flapping),
            self.memory.causes.next_wake(),
            self.memory.degraded.next_wake(),
        ]
        .into_iter()
        .flatten()
        .min();
        if next == self.timer_at {
            return;
        }
        self.generation += 1;
        let generation = self.generation;
        self.timer_at = next;
        self.timer = next.map(|at| {
            let delay = at.saturating_duration_since(Instant::now());
            AbortOnDrop(myself.send_after(delay, move || IncidentsMsg::Timer { generation }))
        });
    }

    fn handle(&mut self, event: IncidentEvent) {
        match event {
            IncidentEvent::Down(down) => self.opened(down),
            IncidentEvent::Recovered(recovered) => self.recovered(recovered),
            IncidentEvent::Removed { asset_id } => self.removed(&asset_id),
            IncidentEvent::RoleTaken { open, degraded, names } => self.memory.adopt(open, degraded, &names),
            IncidentEvent::RoleLost => {
                let known: Vec<String> = self
                    .memory
                    .open
                    .keys()
                    .cloned()
                    .chain(self.services.assets.all().into_iter().map(|entry| entry.config.id.clone()))
                    .collect();
                for asset_id in &known {
                    self.forget(asset_id);
                }
                self.memory.open.clear();
                self.memory.network = self.memory.network.all_up();
            }
            IncidentEvent::Panicked { actor, details } => {
                let notification = Notification {
                    event: Event::Panic,
                    asset_id: actor.strip_prefix("asset:").unwrap_or(&actor).to_string(),
                    asset_name: actor.clone(),
                    timestamp: Utc::now(),
                    details,
                    incident_id: None,
                    group: Vec::new(),
                    tier: None,
                    since: None,
                };
                let deliveries = self.memory.dispatcher.panic(notification, Instant::now());
                self.dispatch(deliveries);
            }
            IncidentEvent::Degraded(degraded) => self.degraded(degraded),
            IncidentEvent::DegradationEnded(ended) => self.degradation_ended(ended),
            IncidentEvent::Connectivity(members) => {
                let change = self.memory.network.set_members(members);
                self.announce_network(change);
            }
            IncidentEvent::Dependencies(graph) => self.memory.causes.set_graph(graph),
            IncidentEvent::Stopping => {
                let waiting = self.memory.grouper.flush();
                if !waiting.is_empty() {
                    tracing::info!(
                        actor = "incidents",
                        notifications = waiting.len(),
                        "stopping: notifications waiting to be grouped go out now"
                    );
                }
                self.send(waiting);
            }
            IncidentEvent::Maintenance(held) => {
                let held: imbl::OrdSet<String> = held.into_iter().collect();
                let now = Instant::now();
                let released: Vec<String> = self.memory.held.iter().filter(|a| !held.contains(*a)).cloned().collect();
                for asset_id in released {
                    tracing::info!(actor = "incidents", %asset_id, "maintenance over: reminders and tiers resume");
                    self.memory.dispatcher.set_held(&asset_id, false, now);
                }
                for asset_id in held.iter().filter(|a| !self.memory.held.contains(*a)) {
                    self.memory.dispatcher.set_held(asset_id, true, now);
                }
                self.memory.held = held;
            }
            IncidentEvent::Policy { policy, metadata } => {
                let now = Instant::now();
                self.memory.degraded.set_policy(policy.for_degraded(), now);
                self.memory.dispatcher.set_policy(policy, now);
                self.memory.dispatcher.set_metadata(metadata, now);
            }
        }
    }

    fn degraded(&mut self, degraded: AssetDegraded) {
        tracing::info!(actor = "incidents", asset_id = %degraded.asset_id, "degraded since {}: {}", degraded.since.to_rfc3339(), degraded.details);
        self.services.directory.persist_change(StoreOp::Degradation(DegradationWrite::Start {
            asset_id: degraded.asset_id.clone(),
            since: degraded.since,
        }));
        let notification = Notification {
            event: Event::Degraded,
            asset_id: degraded.asset_id,
            asset_name: degraded.asset_name,
            timestamp: degraded.since,
            details: degraded.details,
            incident_id: None,
            group: Vec::new(),
            tier: None,
            since: Some(degraded.since),
        };
        let deliveries = self.memory.degraded.down(notification, Instant::now());
        self.dispatch(deliveries);
    }

    fn degradation_ended(&mut self, ended: AssetDegraded) {
        let now = Utc::now();
        let lasted = human_duration(now - ended.since);
        tracing::info!(actor = "incidents", asset_id = %ended.asset_id, "no longer degraded, after {lasted}");
        self.services
            .directory
            .persist_change(StoreOp::Degradation(DegradationWrite::End { asset_id: ended.asset_id.clone() }));
        let notification = Notification {
            event: Event::Recovery,
            asset_id: ended.asset_id,
            asset_name: ended.asset_name,
            timestamp: now,
            details: format!("no longer degraded, after {lasted}"),
            incident_id: None,
            group: Vec::new(),
            tier: None,
            since: Some(ended.since),
        };
        let deliveries = self.memory.degraded.recovery(notification, Instant::now());
        self.dispatch(deliveries);
    }

    /// NETWORK_DOWN or NETWORK_UP to the `onPanic` channels, once each (see `network.rs`).
    fn announce_network(&mut self, change: Option<NetworkChange>) {
        let Some(change) = change else { return };
        let (event, details) = match change {
            NetworkChange::Lost(members) => (
                Event::NetworkDown,
                format!(
                    "every connectivity asset is down ({}): failures of the other assets are inconclusive \
                     until one is back",
                    members.join(", ")
                ),
            ),
            NetworkChange::Restored { back: Some(asset) } => {
                (Event::NetworkUp, format!("{asset} is up again: the other assets are judged again"))
            }
            NetworkChange::Restored { back: None } => {
                (Event::NetworkUp, "not every connectivity asset is down any more".to_string())
            }
        };
        tracing::warn!(actor = "incidents", event = event.as_str(), "{details}");
        let notification = Notification {
            event,
            asset_id: NETWORK.into(),
            asset_name: "statusd's network".into(),
            timestamp: Utc::now(),
            details,
            incident_id: None,
            group: Vec::new(),
            tier: None,
            since: None,
        };
        for channel in &self.memory.dispatcher.policy().on_panic {
            self.services.directory.notify(channel, notification.clone());
        }
    }

    fn opened(&mut self, down: AssetDown) {
        if let Some(known) = self.memory.open.get(&down.asset_id) {
            if known.id == down.incident.id {
                return;
            }
            if self.services.cluster.enabled && !self.memory.flaps.is_flapping(&down.asset_id) {
                // The asset moved to another replica before its outage was stored, so its new
                // prober confirmed it down afresh: the same outage, already told.
                tracing::info!(actor = "incidents", asset_id = %down.asset_id, incident_id = %known.id, "the open outage confirmed again by the asset's new prober");
                return;
            }
            if !self.memory.flaps.is_flapping(&down.asset_id) {
                tracing::warn!(actor = "incidents", asset_id = %down.asset_id, incident_id = %known.id, "a new outage was reported while another is open for this asset");
            }
        }
        if self.memory.network.is_member(&down.asset_id) {
            self.connectivity_down(down);
            return;
        }
        let now = Instant::now();
        let rule = self.memory.dispatcher.policy().flapping;
        let verdict = self.memory.flaps.change(&down.asset_id, false, now, rule);
        if verdict == FlapVerdict::Absorbed {
            tracing::debug!(actor = "incidents", asset_id = %down.asset_id, "down again while flapping: no new incident");
            return;
        }
        let notification = Notification {
            event: Event::Down,
            asset_id: down.asset_id.clone(),
            asset_name: down.asset_name.clone(),
            timestamp: down.incident.started_at,
            details: down.details.clone(),
            incident_id: Some(down.incident.id),
            group: Vec::new(),
            tier: None,
            since: Some(down.incident.started_at),
        };
        let outcome = if verdict == FlapVerdict::Tripped {
            None
        } else {
            let open = &self.memory.open;
            let wait = self.memory.dispatcher.policy().grouping.map(|grouping| grouping.wait());
            Some(self.memory.causes.down(notification.clone(), |id| open.contains_key(id), wait, now))
        };
        let caused_by = match &outcome {
            Some(DownOutcome::Attributed { root }) => Some(root.clone()),
            _ => None,
        };
        let mut incident = Incident::opened(
            down.incident.id,
            down.asset_id.clone(),
            down.incident.started_at,
            INITIAL_SEVERITY.into(),
            format!("{} is down: {}", down.asset_name, down.details),
        );
        incident.caused_by = caused_by;
        match &incident.caused_by {
            Some(root) => {
                tracing::info!(actor = "incidents", asset_id = %down.asset_id, incident_id = %incident.id, caused_by = %root, "incident opened, caused by {root}'s outage: {}", incident.summary)
            }
            None => {
                tracing::info!(actor = "incidents", asset_id = %down.asset_id, incident_id = %incident.id, "incident opened: {}", incident.summary)
            }
        }
        self.open(incident);
        match outcome {
            // Down at the trip: the incident just opened is the one the breaker keeps.
            None => self.trip(notification, now),
            Some(DownOutcome::Send(notification)) => {
                let deliveries = self.memory.dispatcher.down(notification, now);
                self.dispatch(deliveries);
            }
            Some(DownOutcome::Held { attributed }) => {
                let root = Some(down.asset_id);
                for dependant in attributed {
                    self.attribute(&dependant, root.clone());
                }
            }
            Some(DownOutcome::Attributed { .. }) => {}
        }
    }

    /// Records a newly opened incident, in memory and in the store with its timeline's first step.
    fn open(&mut self, incident: Incident) {
        self.persist(IncidentWrite::Open(incident.clone()));
        self.timeline(incident.id, incident.started_at, TimelineKind::Opened, incident.summary.clone());
        self.memory.open.insert(incident.asset_id.clone(), incident);
    }

    /// Records in the store that the open outage of `asset_id` is now attributed to `root`.
    fn attribute(&self, asset_id: &str, root: Option<String>) {
        let Some(incident) = self.memory.open.get(asset_id) else { return };
        tracing::info!(actor = "incidents", %asset_id, incident_id = %incident.id, caused_by = ?root, "outage attributed");
        self.persist(IncidentWrite::CausedBy { id: incident.id, caused_by: root });
    }

    /// A connectivity asset is confirmed down: its incident is recorded, and it speaks only as
    /// the network (NETWORK_DOWN once all are down), never with a DOWN of its own, so neither the
    /// flap breaker nor dependencies apply to it.
    fn connectivity_down(&mut self, down: AssetDown) {
        let incident = Incident::opened(
            down.incident.id,
            down.asset_id.clone(),
            down.incident.started_at,
            INITIAL_SEVERITY.into(),
            format!("{} is down: {}", down.asset_name, down.details),
        );
        tracing::info!(actor = "incidents", asset_id = %down.asset_id, incident_id = %incident.id, "incident opened (connectivity): {}", incident.summary);
        self.open(incident);
        let change = self.memory.network.down(&down.asset_id);
        self.announce_network(change);
    }

    fn recovered(&mut self, recovered: AssetRecovered) {
        if self.memory.network.is_down(&recovered.asset_id) {
            let incident = self.memory.open.remove(&recovered.asset_id).map_or(recovered.incident.id, |open| open.id);
            let lasted = human_duration(
                chrono::TimeDelta::from_std(recovered.recovery.lasted).unwrap_or(chrono::TimeDelta::MAX),
            );
            self.close(
                &recovered.asset_id,
                incident,
                recovered.recovery.ended_at,
                &format!("recovered after {lasted}"),
            );
            let change = self.memory.network.up(&recovered.asset_id);
            self.announce_network(change);
            return;
        }
        let now = Instant::now();
        let rule = self.memory.dispatcher.policy().flapping;
        let verdict = self.memory.flaps.change(&recovered.asset_id, true, now, rule);
        if verdict == FlapVerdict::Absorbed {
            tracing::debug!(actor = "incidents", asset_id = %recovered.asset_id, "up again while flapping: the incident stays open");
            return;
        }
        // The open incident is the one to close, whatever the asset's actor calls it: after the
        // breaker settled down, the actor's own outage id was never stored.
        let incident = match self.memory.open.remove(&recovered.asset_id) {
            Some(open) => open.id,
            None => recovered.incident.id,
        };
        self.services.flaps.set(&recovered.asset_id, None);
        let Recovery { ended_at, lasted } = recovered.recovery;
        if verdict == FlapVerdict::Tripped {
            // Up at the trip: this outage closes quietly, and the trip opens the one incident
            // the breaker keeps until the asset is stable.
            self.close(&recovered.asset_id, incident, ended_at, "recovered, and began to flap");
            let opened = Incident::opened(
                Uuid::now_v7(),
                recovered.asset_id.clone(),
                Utc::now(),
                INITIAL_SEVERITY.into(),
                format!("{} is flapping", recovered.asset_name),
            );
            tracing::info!(actor = "incidents", asset_id = %recovered.asset_id, incident_id = %opened.id, "incident opened: {}", opened.summary);
            self.open(opened.clone());
            let notification = Notification {
                event: Event::Down,
                asset_id: recovered.asset_id,
                asset_name: recovered.asset_name,
                timestamp: opened.started_at,
                details: String::new(),
                incident_id: Some(opened.id),
                group: Vec::new(),
                tier: None,
                since: Some(opened.started_at),
            };
            self.trip(notification, now);
            return;
        }
        // When the incident began, for the templates' `duration`.
        let began = chrono::TimeDelta::from_std(lasted).ok().and_then(|lasted| ended_at.checked_sub_signed(lasted));
        let lasted = human_duration(chrono::TimeDelta::from_std(lasted).unwrap_or(chrono::TimeDelta::MAX));
        self.close(&recovered.asset_id, incident, ended_at, &format!("recovered after {lasted}"));
        let open = &self.memory.open;
        let wait = self.memory.dispatcher.policy().grouping.map(|grouping| grouping.wait());
        let causes = self.memory.causes.recovered(&recovered.asset_id, |id| open.contains_key(id), wait, now);
        if !causes.silent {
            let deliveries = self.memory.dispatcher.recovery(
                Notification {
                    event: Event::Recovery,
                    asset_id: recovered.asset_id,
                    asset_name: recovered.asset_name,
                    timestamp: ended_at,
                    details: match &recovered.details {
                        Some(details) => format!("back up after {lasted}: {details}"),
                        None => format!("back up after {lasted}"),
                    },
                    incident_id: Some(incident),
                    group: Vec::new(),
                    tier: None,
                    since: began,
                },
                now,
            );
            self.dispatch(deliveries);
        }
        for (dependant, root) in causes.reattributed {
            self.attribute(&dependant, root);
        }
        for down in causes.now_down {
            // Still down after its root cause recovered: an outage of its own now.
            let deliveries = self.memory.dispatcher.down(down, now);
            self.dispatch(deliveries);
        }
    }

    fn close(&self, asset_id: &str, incident: Uuid, ended_at: DateTime<Utc>, why: &str) {
        tracing::info!(actor = "incidents", %asset_id, incident_id = %incident, "incident closed: {why}");
        self.persist(IncidentWrite::Close { id: incident, ended_at, reason: CloseReason::Recovered });
        self.timeline(incident, ended_at, TimelineKind::Closed, why.to_string());
        self.services.directory.incident_closed(incident);
    }

    /// The flap breaker tripped on `asset`: `kept` (a DOWN about the incident it keeps open)
    /// goes out as one FLAPPING to the DOWN channels.
    fn trip(&mut self, kept: Notification, now: Instant) {
        let asset_id = kept.asset_id.clone();
        let Some(incident) = kept.incident_id else { return };
        tracing::warn!(actor = "incidents", %asset_id, incident_id = %incident, "flapping: one incident stays open until the asset is stable");
        self.services.flaps.set(&asset_id, Some(HeldIncident { incident, flapping: true }));
        self.persist(IncidentWrite::Flapping { id: incident, flapping: true });
        self.memory.flapping_names.insert(asset_id.clone(), kept.asset_name.clone());
        metrics::gauge!(names::ASSET_FLAPPING, "asset" => asset_id.clone()).set(1.0);
        let window = self.memory.dispatcher.policy().flapping.map(|rule| rule.window_seconds).unwrap_or_default();
        let flapping = Notification {
            event: Event::Flapping,
            details: format!(
                "{} changed state too often (more than the limit in {}); one incident stays open until it is stable",
                kept.asset_name,
                human_duration(chrono::TimeDelta::seconds(i64::try_from(window).unwrap_or(i64::MAX)))
            ),
            ..kept
        };
        self.timeline(incident, Utc::now(), TimelineKind::Flapping, flapping.details.clone());
        let deliveries = self.memory.dispatcher.flapping(flapping, now);
        self.dispatch(deliveries);
    }

    /// Announces the assets whose state has held long enough to leave `flapping`: up closes
    /// the kept incident with one RECOVERY; down goes on as an outage, with nothing new sent.
    fn settle(&mut self, now: Instant) {
        let rule = self.memory.dispatcher.policy().flapping;
        for Settled { asset_id, up } in self.memory.flaps.wake(now, rule) {
            metrics::gauge!(names::ASSET_FLAPPING, "asset" => asset_id.clone()).set(0.0);
            let asset_name = self.memory.flapping_names.remove(&asset_id).unwrap_or_else(|| asset_id.clone());
            let Some(incident) = self.memory.open.get(&asset_id).cloned() else {
                self.services.flaps.set(&asset_id, None);
                continue;
            };
            self.persist(IncidentWrite::Flapping { id: incident.id, flapping: false });
            if !up {
                tracing::info!(actor = "incidents", %asset_id, incident_id = %incident.id, "stable again, and down: the incident goes on as an outage");
                self.services.flaps.set(&asset_id, Some(HeldIncident { incident: incident.id, flapping: false }));
                let open_for = (Utc::now() - incident.started_at).to_std().unwrap_or_default();
                let (tier, acknowledged) = (incident.tier, incident.acknowledged_at.is_some());
                self.memory.dispatcher.resume(self.down_of(&incident, asset_name), tier, acknowledged, open_for, now);
                continue;
            }
            self.memory.open.remove(&asset_id);
            self.services.flaps.set(&asset_id, None);
            let ended_at = Utc::now();
            self.close(&asset_id, incident.id, ended_at, "stable again, and up");
            let lasted = human_duration(ended_at - incident.started_at);
            let recovery = Notification {
                event: Event::Recovery,
                asset_id,
                asset_name,
                timestamp: ended_at,
                details: format!("stable again after flapping for {lasted}"),
                incident_id: Some(incident.id),
                group: Vec::new(),
                tier: None,
                since: Some(incident.started_at),
            };
            let deliveries = self.memory.dispatcher.recovery(recovery, now);
            self.dispatch(deliveries);
        }
    }

    fn down_of(&self, incident: &Incident, asset_name: String) -> Notification {
        Notification {
            event: Event::Down,
            asset_id: incident.asset_id.clone(),
            asset_name,
            timestamp: incident.started_at,
            details: incident.summary.clone(),
            incident_id: Some(incident.id),
            group: Vec::new(),
            tier: None,
            since: Some(incident.started_at),
        }
    }

    /// Drops what the policy remembers of an asset (timers, throttles, flaps, causes).
    fn forget(&mut self, asset_id: &str) {
        self.memory.dispatcher.forget(asset_id);
        self.memory.grouper.forget(asset_id);
        self.memory.flaps.forget(asset_id);
        self.memory.flapping_names.remove(asset_id);
        self.memory.causes.forget(asset_id);
        self.services.flaps.set(asset_id, None);
        self.memory.degraded.forget(asset_id);
    }

    fn removed(&mut self, asset_id: &str) {
        self.forget(asset_id);
        self.services
            .directory
            .persist_change(StoreOp::Degradation(DegradationWrite::End { asset_id: asset_id.to_string() }));
        if let Some(incident) = self.memory.open.remove(asset_id) {
            tracing::info!(actor = "incidents", %asset_id, incident_id = %incident.id, "incident closed: its asset left the config");
            let now = Utc::now();
            self.persist(IncidentWrite::Close { id: incident.id, ended_at: now, reason: CloseReason::Removed });
            self.services.directory.incident_closed(incident.id);
            self.timeline(incident.id, now, TimelineKind::Closed, REMOVED_DETAIL.into());
        }
    }

    /// Handles everything in the inbox; each event leaves it only once handled. A panic while
    /// handling one gives it back (the lease is dropped while unwinding), so the replacement
    /// handles it again; one that failed [`MAX_ATTEMPTS`] times is given up as poison.
    fn drain(&mut self) {
        self.inbox.woken();
        loop {
            let lease = self.inbox.take(1);
            let Some(event) = lease.first().cloned() else { break };
            if lease.failures() >= MAX_ATTEMPTS {
                tracing::error!(actor = "incidents", event = ?event, "event dropped: handling it failed every time");
                lease.ack();
                continue;
            }
            self.handle(event);
            lease.ack();
            *self.checkpoint.lock() = self.memory.clone();
        }
    }
}

impl Actor for Incidents {
    type Msg = IncidentsMsg;
    type State = IncidentsState;
    type Arguments = IncidentsArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<IncidentsMsg>,
        args: IncidentsArgs,
    ) -> Result<IncidentsState, ActorProcessingErr> {
        let memory = args.memory.lock().clone();
        // What the flap breaker holds, for the assets' snapshots (after a restart of statusd,
        // the registry starts empty).
        for (asset_id, incident) in memory.open.iter() {
            if memory.flaps.is_flapping(asset_id) {
                args.services.flaps.set(asset_id, Some(HeldIncident { incident: incident.id, flapping: true }));
                metrics::gauge!(names::ASSET_FLAPPING, "asset" => asset_id.clone()).set(1.0);
            }
        }
        let open_gauge = metrics::gauge!(names::INCIDENTS_OPEN);
        open_gauge.set(memory.open.len() as f64);
        let mut state = IncidentsState {
            services: args.services,
            inbox: args.inbox,
            checkpoint: args.memory,
            memory,
            generation: 0,
            timer_at: None,
            timer: None,
            open_gauge,
        };
        state.reschedule(&myself);
        // Wakes this incarnation at once, so events that came while no actor ran are handled.
        state.inbox.attach(move || myself.cast(IncidentsMsg::Wake).is_ok());
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<IncidentsMsg>,
        message: IncidentsMsg,
        state: &mut IncidentsState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            IncidentsMsg::Wake => state.drain(),
            IncidentsMsg::Timer { generation } if generation == state.generation => {
                state.timer_at = None;
                let (now, wall_clock) = (Instant::now(), Utc::now());
                let mut deliveries = state.memory.dispatcher.wake(now, wall_clock);
                deliveries.extend(state.memory.degraded.wake(now, wall_clock));
                state.dispatch(deliveries);
                state.settle(now);
                for down in state.memory.causes.wake(now) {
                    let deliveries = state.memory.dispatcher.down(down, now);
                    state.dispatch(deliveries);
                }
                let grouped = state.memory.grouper.wake(now);
                state.send(grouped);
                *state.checkpoint.lock() = state.memory.clone();
            }
            IncidentsMsg::Timer { .. } => return Ok(()),
            IncidentsMsg::Ack(request, reply) => {
                let outcome = state.acknowledge(request);
                *state.checkpoint.lock() = state.memory.clone();
                let _ = reply.send(outcome);
            }
            IncidentsMsg::Panic(reason) => panic!("{reason}"),
        }
        state.open_gauge.set(state.memory.open.len() as f64);
        state.reschedule(&myself);
        Ok(())
    }
}

/// Incidents left open for assets that are no longer configured are closed as removed, when
/// `close` (alone on the database, or holding the cluster's incidents role: another replica may
/// run a config with more assets); the rest are returned so their assets resume as down.
pub async fn close_orphaned(
    store: &Store,
    assets: &[Arc<AssetConfig>],
    close: bool,
) -> Result<Vec<Incident>, StoreError> {
    let configured: HashMap<&str, ()> = assets.iter().map(|a| (a.id.as_str(), ())).collect();
    let (open, orphaned): (Vec<_>, Vec<_>) = store
        .open_incidents()
        .await?
        .into_iter()
        .partition(|incident| configured.contains_key(incident.asset_id.as_str()));
    if !orphaned.is_empty() && close {
        let now = Utc::now();
        let closes: Vec<StoreOp> = orphaned
            .iter()
            .flat_map(|incident| {
                [
                    IncidentWrite::Close { id: incident.id, ended_at: now, reason: CloseReason::Removed },
                    IncidentWrite::Timeline(TimelineEntry {
                        id: Uuid::now_v7(),
                        incident_id: incident.id,
                        at: now,
                        kind: TimelineKind::Closed,
                        detail: REMOVED_DETAIL.into(),
                    }),
                ]
            })
            .map(StoreOp::Incident)
            .collect();
        store.write(&closes, &[]).await?;
        tracing::info!(closed = orphaned.len(), "closed incidents of assets no longer configured");
    }
    Ok(open)
}

/// Raises each open incident's tier to the highest its pending notifications carry: the outbox
/// row of a DOWN and the incident's tier are written one after the other, and a process killed
/// between the two writes must not decide (and send) that DOWN a second time.
/// By id: after a mass outage both lists hold tens of thousands, and this runs at start-up.
pub fn tiers_from_outbox(open: &mut [Incident], outbox: &[OutboxEntry]) {
    let mut by_id: HashMap<Uuid, &mut Incident> = open.iter_mut().map(|incident| (incident.id, incident)).collect();
    for entry in outbox {
        let notification = &entry.notification;
        let (Some(id), Some(tier)) = (notification.incident_id, notification.tier) else { continue };
        if !matches!(notification.event, Event::Down | Event::Flapping) {
            continue;
        }
        if let Some(incident) = by_id.get_mut(&id) {
            incident.tier = Some(incident.tier.map_or(tier, |known| known.max(tier)));
        }
    }
}

/// Degradations stored for assets that are still configured; those of assets no longer
/// configured are deleted.
pub async fn degradations(
    store: &Store,
    assets: &[Arc<AssetConfig>],
) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
    let configured: HashMap<&str, ()> = assets.iter().map(|a| (a.id.as_str(), ())).collect();
    let (kept, orphaned): (Vec<_>, Vec<_>) =
        store.degradations().await?.into_iter().partition(|(asset_id, _)| configured.contains_key(asset_id.as_str()));
    if !orphaned.is_empty() {
        let ends: Vec<StoreOp> = orphaned
            .into_iter()
            .map(|(asset_id, _)| StoreOp::Degradation(DegradationWrite::End { asset_id }))
            .collect();
        store.write(&ends, &[]).await?;
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(event: Event, incident: Uuid, tier: Option<u32>) -> OutboxEntry {
        OutboxEntry {
            id: Uuid::now_v7(),
            channel: "pager".into(),
            notification: Notification {
                event,
                asset_id: "api".into(),
                asset_name: "API".into(),
                timestamp: Utc::now(),
                details: String::new(),
                incident_id: Some(incident),
                group: Vec::new(),
                tier,
                since: None,
            },
            decided_at: Utc::now(),
        }
    }

    #[test]
    fn a_pending_down_raises_its_incidents_tier_and_nothing_else_does() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let opened = |id| Incident::opened(id, "api".into(), Utc::now(), INITIAL_SEVERITY.into(), "down".into());
        let mut open = vec![opened(a), Incident { tier: Some(2), ..opened(b) }];
        let outbox = [
            entry(Event::Down, a, Some(0)),
            entry(Event::Reminder, a, Some(3)),
            entry(Event::Down, b, Some(1)),
            entry(Event::Down, Uuid::now_v7(), Some(5)),
        ];
        tiers_from_outbox(&mut open, &outbox);
        assert_eq!(open[0].tier, Some(0), "the DOWN's tier was decided, even if its write was lost");
        assert_eq!(open[1].tier, Some(2), "a tier never falls");
    }
}
