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
//! The checkpoint is taken after every event, and a mass outage brings tens of thousands of
//! events in seconds, so it must not cost in proportion to what is remembered. The memory is
//! made of persistent maps (`imbl`): the checkpoint is a clone that shares every node (O(1)),
//! and the next change copies only the path to what it changes (O(log n)). Mutating the shared
//! memory in place would be O(1) too, but a panic half-way through an event would leave half of
//! it applied for the redelivered event to trip over (an incident recorded as open whose DOWN
//! was never decided, say); with a snapshot per event, the replacement resumes from the memory
//! as it was before the event and handles it whole.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use parking_lot::Mutex;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::time::Instant;

use super::health::{OpenIncident, Recovery};
use super::inbox::{Inbox, MAX_ATTEMPTS};
use super::policy::{Delivery, Dispatcher, human_duration};
use super::{AbortOnDrop, Services};
use crate::asset::AssetConfig;
use crate::config::NotificationPolicy;
use crate::notify::{Event, Notification};
use crate::store::{CloseReason, Incident, IncidentWrite, Store, StoreError, StoreOp};
use crate::telemetry::names;

/// Severity of a newly opened incident (the seed's default).
pub const INITIAL_SEVERITY: &str = "INITIAL";

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
}

/// What the Incidents actor is told, through its inbox.
#[derive(Debug, Clone)]
pub enum IncidentEvent {
    Down(AssetDown),
    Recovered(AssetRecovered),
    /// The asset left the config: its open incident closes as removed; nobody hears a recovery.
    Removed {
        asset_id: String,
    },
    /// An actor panicked: the `onPanic` channels hear it.
    Panicked {
        actor: String,
        details: String,
    },
    /// The notification policy was reloaded.
    Policy(NotificationPolicy),
}

pub enum IncidentsMsg {
    /// The inbox has events.
    Wake,
    /// Time to send held-back DOWNs and reminders.
    Timer {
        generation: u64,
    },
    Panic(String),
}

/// What the Incidents actor knows; kept across restarts of the actor. Cloning it is O(1).
#[derive(Debug, Clone)]
pub struct IncidentsMemory {
    /// Open incident per asset id.
    open: imbl::HashMap<String, Incident>,
    dispatcher: Dispatcher,
}

impl IncidentsMemory {
    /// The memory of a fresh start: the store's open incidents, whose DOWN already went out.
    pub fn resume(policy: NotificationPolicy, open: Vec<Incident>, names: &HashMap<String, String>) -> Self {
        let mut dispatcher = Dispatcher::new(policy);
        let now = Instant::now();
        for incident in &open {
            let asset_name = names.get(&incident.asset_id).cloned().unwrap_or_else(|| incident.asset_id.clone());
            dispatcher.resume(
                Notification {
                    event: Event::Down,
                    asset_id: incident.asset_id.clone(),
                    asset_name,
                    timestamp: incident.started_at,
                    details: incident.summary.clone(),
                    incident_id: Some(incident.id),
                },
                now,
            );
        }
        let open = open.into_iter().map(|i| (i.asset_id.clone(), i)).collect();
        IncidentsMemory { open, dispatcher }
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
    fn dispatch(&self, deliveries: Vec<Delivery>) {
        for delivery in deliveries {
            self.services.directory.notify(&delivery.channel, delivery.notification);
        }
    }

    /// Whether a maintenance window covers the asset now: the one place this actor asks.
    fn in_maintenance(&self, asset_id: &str) -> bool {
        self.services.maintenance.in_maintenance(asset_id, Utc::now())
    }

    fn reschedule(&mut self, myself: &ActorRef<IncidentsMsg>) {
        let next = self.memory.dispatcher.next_wake();
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
            IncidentEvent::Panicked { actor, details } => {
                let notification = Notification {
                    event: Event::Panic,
                    asset_id: actor.strip_prefix("asset:").unwrap_or(&actor).to_string(),
                    asset_name: actor.clone(),
                    timestamp: Utc::now(),
                    details,
                    incident_id: None,
                };
                let deliveries = self.memory.dispatcher.panic(notification, Instant::now());
                self.dispatch(deliveries);
            }
            IncidentEvent::Policy(policy) => self.memory.dispatcher.set_policy(policy, Instant::now()),
        }
    }

    fn opened(&mut self, down: AssetDown) {
        if let Some(known) = self.memory.open.get(&down.asset_id) {
            if known.id == down.incident.id {
                return;
            }
            tracing::warn!(actor = "incidents", asset_id = %down.asset_id, incident_id = %known.id, "a new outage was reported while another is open for this asset");
        }
        let incident = Incident {
            id: down.incident.id,
            asset_id: down.asset_id.clone(),
            started_at: down.incident.started_at,
            ended_at: None,
            severity: INITIAL_SEVERITY.into(),
            summary: format!("{} is down: {}", down.asset_name, down.details),
            close_reason: None,
        };
        tracing::info!(actor = "incidents", asset_id = %down.asset_id, incident_id = %incident.id, "incident opened: {}", incident.summary);
        self.services.directory.persist_change(StoreOp::Incident(IncidentWrite::Open(incident.clone())));
        self.memory.open.insert(down.asset_id.clone(), incident);
        let deliveries = self.memory.dispatcher.down(
            Notification {
                event: Event::Down,
                asset_id: down.asset_id,
                asset_name: down.asset_name,
                timestamp: down.incident.started_at,
                details: down.details,
                incident_id: Some(down.incident.id),
            },
            Instant::now(),
        );
        self.dispatch(deliveries);
    }

    fn recovered(&mut self, recovered: AssetRecovered) {
        let incident = recovered.incident;
        if self.memory.open.get(&recovered.asset_id).is_some_and(|open| open.id == incident.id) {
            self.memory.open.remove(&recovered.asset_id);
        }
        let Recovery { ended_at, lasted } = recovered.recovery;
        let lasted = human_duration(chrono::TimeDelta::from_std(lasted).unwrap_or(chrono::TimeDelta::MAX));
        tracing::info!(actor = "incidents", asset_id = %recovered.asset_id, incident_id = %incident.id, "incident closed: recovered after {lasted}");
        self.services.directory.persist_change(StoreOp::Incident(IncidentWrite::Close {
            id: incident.id,
            ended_at,
            reason: CloseReason::Recovered,
        }));
        let deliveries = self.memory.dispatcher.recovery(
            Notification {
                event: Event::Recovery,
                asset_id: recovered.asset_id,
                asset_name: recovered.asset_name,
                timestamp: ended_at,
                details: format!("back up after {lasted}"),
                incident_id: Some(incident.id),
            },
            Instant::now(),
        );
        self.dispatch(deliveries);
    }

    fn removed(&mut self, asset_id: &str) {
        self.memory.dispatcher.forget(asset_id);
        if let Some(incident) = self.memory.open.remove(asset_id) {
            tracing::info!(actor = "incidents", %asset_id, incident_id = %incident.id, "incident closed: its asset left the config");
            self.services.directory.persist_change(StoreOp::Incident(IncidentWrite::Close {
                id: incident.id,
                ended_at: Utc::now(),
                reason: CloseReason::Removed,
            }));
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
                let mut deliveries = state.memory.dispatcher.wake(Instant::now(), Utc::now());
                // An outage that is being worked on in a maintenance window stays open, unreminded.
                deliveries.retain(|d| {
                    d.notification.event != Event::Reminder || !state.in_maintenance(&d.notification.asset_id)
                });
                state.dispatch(deliveries);
                *state.checkpoint.lock() = state.memory.clone();
            }
            IncidentsMsg::Timer { .. } => return Ok(()),
            IncidentsMsg::Panic(reason) => panic!("{reason}"),
        }
        state.open_gauge.set(state.memory.open.len() as f64);
        state.reschedule(&myself);
        Ok(())
    }
}

/// Incidents left open for assets that are no longer configured are closed as removed; the
/// rest are returned so their assets resume as down.
pub async fn close_orphaned(store: &Store, assets: &[AssetConfig]) -> Result<Vec<Incident>, StoreError> {
    let configured: HashMap<&str, ()> = assets.iter().map(|a| (a.id.as_str(), ())).collect();
    let (open, orphaned): (Vec<_>, Vec<_>) = store
        .open_incidents()
        .await?
        .into_iter()
        .partition(|incident| configured.contains_key(incident.asset_id.as_str()));
    if !orphaned.is_empty() {
        let now = Utc::now();
        let closes: Vec<StoreOp> = orphaned
            .iter()
            .map(|incident| {
                StoreOp::Incident(IncidentWrite::Close { id: incident.id, ended_at: now, reason: CloseReason::Removed })
            })
            .collect();
        store.write(&closes, &[]).await?;
        tracing::info!(closed = closes.len(), "closed incidents of assets no longer configured");
    }
    Ok(open)
}
