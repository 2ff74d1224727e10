//! Cluster mode: one Incidents actor for the whole cluster.
//!
//! Every replica probes its own share of the assets, but only the holder of the incidents role
//! decides: a confirmed change of state (DOWN, RECOVERY, DEGRADED and its end, an actor's
//! PANIC) on a replica without the role goes through the [`Relay`] to the `incident_events`
//! table, with a word on `statusd_incident_events`, and the holder takes it from there (at once
//! on that word, and every third of the lease in case a word was lost) into its own Incidents
//! actor. So one outage is one incident and one notification whichever replica probes the
//! asset, and storm grouping, `dependsOn` and the flap breaker see every asset of the cluster,
//! as they do on a single instance. On the holder itself its own assets' events go straight to
//! its Incidents actor.
//!
//! The role moves (its holder died, or lost its database session). The replica that takes it
//! goes on with what the store has open, as a restarted instance does: every open incident
//! (its DOWN went out, later tiers are due by its age, the RECOVERY is owed), every
//! degradation, and every notification decided and not yet delivered, which it sends; and
//! only then decides the queued events. A replica that loses the role forgets what it was
//! deciding (the next holder goes on with it) and queues its events from then on.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

use super::Services;
use super::health::{OpenIncident, Recovery};
use super::incidents::{AssetDegraded, AssetDown, AssetRecovered, IncidentEvent};
use crate::store::{Store, StoreError};

/// Events taken off the queue in one statement; more are taken at once after.
const TAKE: i64 = 1000;

/// This replica's side of the relay: the events waiting to be queued, and whether its own
/// Incidents actor decides (it holds the role and has taken over what the store has open).
#[derive(Default)]
pub struct Relay {
    pending: Mutex<VecDeque<IncidentEvent>>,
    wake: Notify,
    deciding: AtomicBool,
}

impl Relay {
    /// A relay for a replica whose Incidents actor already decides (`deciding`: it held the
    /// role at start and resumed from the store), or not yet.
    pub fn new(deciding: bool) -> Relay {
        Relay { deciding: AtomicBool::new(deciding), ..Relay::default() }
    }

    /// Takes `event` to be relayed, or gives it back to go straight to this replica's
    /// Incidents actor: only when that actor decides and nothing is waiting before it, so that
    /// one asset's events are decided in the order they happened.
    pub fn offer(&self, event: IncidentEvent) -> Option<IncidentEvent> {
        let mut pending = self.pending.lock();
        if pending.is_empty() && self.deciding.load(Ordering::Acquire) {
            return Some(event);
        }
        pending.push_back(event);
        self.wake.notify_one();
        None
    }

    fn take_pending(&self) -> Vec<IncidentEvent> {
        self.pending.lock().drain(..).collect()
    }

    /// Puts back events that could not be queued, ahead of any that came meanwhile.
    fn restore(&self, unqueued: Vec<IncidentEvent>) {
        let mut pending = self.pending.lock();
        for event in unqueued.into_iter().rev() {
            pending.push_front(event);
        }
    }
}

/// An event as the queue keeps it (JSON): what [`IncidentEvent`] says of a change, without the
/// monotonic instants that mean nothing to another process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Relayed {
    Down {
        asset_id: String,
        asset_name: String,
        incident_id: Uuid,
        started_at: DateTime<Utc>,
        details: String,
    },
    Recovered {
        asset_id: String,
        asset_name: String,
        incident_id: Uuid,
        started_at: DateTime<Utc>,
        ended_at: DateTime<Utc>,
        /// How long the outage lasted, in milliseconds (measured on the prober's monotonic clock).
        lasted_ms: u64,
        details: Option<String>,
    },
    Degraded {
        asset_id: String,
        asset_name: String,
        since: DateTime<Utc>,
        details: String,
    },
    DegradationEnded {
        asset_id: String,
        asset_name: String,
        since: DateTime<Utc>,
        details: String,
    },
    Panicked {
        actor: String,
        details: String,
    },
}

impl Relayed {
    /// The event as relayed; None for an event about this replica alone (policy, reload,
    /// maintenance, stopping), which never leaves it.
    pub fn of(event: &IncidentEvent) -> Option<Relayed> {
        Some(match event {
            IncidentEvent::Down(down) => Relayed::Down {
                asset_id: down.asset_id.clone(),
                asset_name: down.asset_name.clone(),
                incident_id: down.incident.id,
                started_at: down.incident.started_at,
                details: down.details.clone(),
            },
            IncidentEvent::Recovered(recovered) => Relayed::Recovered {
                asset_id: recovered.asset_id.clone(),
                asset_name: recovered.asset_name.clone(),
                incident_id: recovered.incident.id,
                started_at: recovered.incident.started_at,
                ended_at: recovered.recovery.ended_at,
                lasted_ms: u64::try_from(recovered.recovery.lasted.as_millis()).unwrap_or(u64::MAX),
                details: recovered.details.clone(),
            },
            IncidentEvent::Degraded(degraded) => Relayed::Degraded {
                asset_id: degraded.asset_id.clone(),
                asset_name: degraded.asset_name.clone(),
                since: degraded.since,
                details: degraded.details.clone(),
            },
            IncidentEvent::DegradationEnded(ended) => Relayed::DegradationEnded {
                asset_id: ended.asset_id.clone(),
                asset_name: ended.asset_name.clone(),
                since: ended.since,
                details: ended.details.clone(),
            },
            IncidentEvent::Panicked { actor, details } => {
                Relayed::Panicked { actor: actor.clone(), details: details.clone() }
            }
            _ => return None,
        })
    }

    /// The event to decide on the holder.
    pub fn into_event(self) -> IncidentEvent {
        let opened = |id, started_at| OpenIncident { id, started_at, started: None };
        match self {
            Relayed::Down { asset_id, asset_name, incident_id, started_at, details } => {
                IncidentEvent::Down(AssetDown {
                    asset_id,
                    asset_name,
                    incident: opened(incident_id, started_at),
                    details,
                })
            }
            Relayed::Recovered { asset_id, asset_name, incident_id, started_at, ended_at, lasted_ms, details } => {
                IncidentEvent::Recovered(AssetRecovered {
                    asset_id,
                    asset_name,
                    incident: opened(incident_id, started_at),
                    recovery: Recovery { ended_at, lasted: Duration::from_millis(lasted_ms) },
                    details,
                })
            }
            Relayed::Degraded { asset_id, asset_name, since, details } => {
                IncidentEvent::Degraded(AssetDegraded { asset_id, asset_name, since, details })
            }
            Relayed::DegradationEnded { asset_id, asset_name, since, details } => {
                IncidentEvent::DegradationEnded(AssetDegraded { asset_id, asset_name, since, details })
            }
            Relayed::Panicked { actor, details } => IncidentEvent::Panicked { actor, details },
        }
    }
}

/// The relay loop of a replica, until the task is aborted (at shutdown).
pub async fn run(store: Store, services: Arc<Services>, relay: Arc<Relay>) {
    let view = Arc::clone(&services.cluster);
    let lease = Duration::from_secs(view.lease_seconds);
    let round = (lease / 3).max(Duration::from_millis(200));
    let mut listener = match store.incident_events_listener().await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!(actor = "relay", %error, "cannot listen on statusd_incident_events; events are taken every round");
            None
        }
    };
    loop {
        let holds = view.holds_incidents_role();
        let deciding = relay.deciding.load(Ordering::Acquire);
        if holds && !deciding {
            match take_role(&store, &services).await {
                Ok(()) => relay.deciding.store(true, Ordering::Release),
                Err(error) => {
                    tracing::warn!(actor = "relay", %error, "cannot read what the store has open; deciding waits")
                }
            }
        } else if !holds && deciding {
            relay.deciding.store(false, Ordering::Release);
            tracing::warn!(actor = "relay", "the incidents role was lost: its open incidents are the next holder's");
            services.directory.incidents_here(IncidentEvent::RoleLost);
        }
        let pending = relay.take_pending();
        if relay.deciding.load(Ordering::Acquire) {
            for event in pending {
                services.directory.incidents_here(event);
            }
            take_queued(&store, &services).await;
        } else if !pending.is_empty()
            && let Err(error) = queue(&store, &view.me, &pending).await
        {
            tracing::warn!(actor = "relay", %error, events = pending.len(), "cannot queue events for the incidents role's holder; retrying");
            relay.restore(pending);
        }
        tokio::select! {
            () = tokio::time::sleep(round) => {}
            () = relay.wake.notified() => {}
            failed = crate::store::cluster::next_notification(&mut listener) => {
                if failed {
                    tracing::warn!(actor = "relay", "statusd_incident_events listener failed; it reconnects");
                    tokio::time::sleep(round).await;
                }
            }
        }
    }
}

async fn queue(store: &Store, me: &str, events: &[IncidentEvent]) -> Result<(), StoreError> {
    let json: Vec<String> = events
        .iter()
        .filter_map(Relayed::of)
        // Invariant: `Relayed` is plain strings, ids and times, which always serialise.
        .map(|relayed| serde_json::to_string(&relayed).expect("a relayed event serialises"))
        .collect();
    store.queue_incident_events(me, &json).await
}

/// Decides every queued event, oldest first. One that cannot be read (written by another
/// version of statusd) is logged and dropped rather than blocking the queue.
async fn take_queued(store: &Store, services: &Services) {
    loop {
        let taken = match store.take_incident_events(TAKE).await {
            Ok(taken) => taken,
            Err(error) => {
                tracing::warn!(actor = "relay", %error, "cannot take queued incident events; retrying");
                return;
            }
        };
        let full = taken.len() as i64 == TAKE;
        for (reporter, json) in taken {
            match serde_json::from_str::<Relayed>(&json) {
                Ok(relayed) => services.directory.incidents_here(relayed.into_event()),
                Err(error) => {
                    tracing::error!(actor = "relay", %reporter, %error, event = %json, "an incident event that cannot be read was dropped")
                }
            }
        }
        if !full {
            return;
        }
    }
}

/// The role was just taken: what the store has open becomes this replica's to go on with.
async fn take_role(store: &Store, services: &Services) -> Result<(), StoreError> {
    let configured: HashMap<String, String> =
        services.assets.all().into_iter().map(|entry| (entry.config.id.clone(), entry.config.name.clone())).collect();
    let mut open: Vec<_> =
        store.open_incidents().await?.into_iter().filter(|i| configured.contains_key(&i.asset_id)).collect();
    let degraded: Vec<_> =
        store.degradations().await?.into_iter().filter(|(asset_id, _)| configured.contains_key(asset_id)).collect();
    let outbox = store.pending_notifications().await?;
    super::incidents::tiers_from_outbox(&mut open, &outbox);
    let keys = match open.iter().map(|incident| incident.started_at).min() {
        Some(since) => store.outbox_keys(since).await?,
        None => Vec::new(),
    };
    let ids = open.iter().map(|incident| incident.id).collect();
    services.directory.remember_decided(&ids, keys);
    tracing::info!(
        actor = "relay",
        open = open.len(),
        degraded = degraded.len(),
        undelivered = outbox.len(),
        "this replica decides for the cluster from now on"
    );
    services.directory.incidents_here(IncidentEvent::RoleTaken { open, degraded, names: configured });
    for entry in outbox {
        services.directory.resume_undelivered(entry);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down(asset_id: &str) -> IncidentEvent {
        IncidentEvent::Down(AssetDown {
            asset_id: asset_id.into(),
            asset_name: asset_id.to_uppercase(),
            incident: OpenIncident { id: Uuid::now_v7(), started_at: Utc::now(), started: None },
            details: "HTTP 500".into(),
        })
    }

    /// What the queue keeps is what the holder decides: the same change, read back.
    #[test]
    fn an_event_reads_back_as_it_was_queued() {
        let recovered = IncidentEvent::Recovered(AssetRecovered {
            asset_id: "api".into(),
            asset_name: "API".into(),
            incident: OpenIncident { id: Uuid::now_v7(), started_at: Utc::now(), started: None },
            recovery: Recovery { ended_at: Utc::now(), lasted: Duration::from_millis(61_500) },
            details: Some("eu: up".into()),
        });
        for event in
            [down("api"), recovered, IncidentEvent::Panicked { actor: "asset:api".into(), details: "boom".into() }]
        {
            let relayed = Relayed::of(&event).expect("relayed");
            let json = serde_json::to_string(&relayed).expect("json");
            let back: Relayed = serde_json::from_str(&json).expect("read back");
            assert_eq!(back, relayed);
            assert_eq!(Relayed::of(&back.into_event()), Some(relayed));
        }
        assert_eq!(Relayed::of(&IncidentEvent::Stopping), None, "about this replica alone");
    }

    /// Straight to the local actor only while it decides and nothing waits before the event:
    /// one asset's DOWN queued while the role was elsewhere is decided before its RECOVERY.
    #[test]
    fn events_keep_their_order_across_taking_the_role() {
        let relay = Relay::new(false);
        assert!(relay.offer(down("a")).is_none(), "not deciding: relayed");
        relay.deciding.store(true, Ordering::Release);
        assert!(relay.offer(down("b")).is_none(), "behind one that waits");
        assert_eq!(relay.take_pending().len(), 2);
        assert!(relay.offer(down("c")).is_some(), "deciding, nothing waiting: straight through");
        relay.restore(vec![down("d"), down("e")]);
        relay.pending.lock().push_back(down("f"));
        let order: Vec<String> = relay
            .take_pending()
            .iter()
            .map(|event| match event {
                IncidentEvent::Down(down) => down.asset_id.clone(),
                _ => String::new(),
            })
            .collect();
        assert_eq!(order, ["d", "e", "f"]);
    }
}
