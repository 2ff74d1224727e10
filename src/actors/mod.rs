//! The supervision tree (see DESIGN.md): a Supervisor with one Persistence, one Incidents, one
//! Notifier per channel and one Asset actor per asset, all linked to it.
//!
//! Actors find each other through the [`Directory`] rather than ractor's global registry: the
//! registry is process-wide, and tests run several statusd instances in one process. Messages
//! that must not be lost go into inboxes that outlive the actors (see [`inbox`]); the actor is
//! only woken, once for many messages. Each incarnation attaches itself to its inbox when it
//! starts, so a wake-up sent after a restart reaches the new actor, and one sent during it is
//! made up for by the new actor looking at its inbox as it attaches.

pub mod asset;
pub mod causes;
pub mod cluster;
pub mod degradation;
pub mod flapping;
pub mod grouping;
pub mod health;
pub mod inbox;
pub mod incidents;
pub mod index;
pub mod lateness;
pub mod maintenance;
pub mod network;
pub mod notifier;
pub mod persistence;
pub mod policy;
pub mod quorum;
pub mod relay;
pub mod schedule;
pub mod services;
pub mod states;
pub mod supervisor;
pub mod task;
#[cfg(test)]
pub(crate) mod testing;
pub mod ticks;
pub mod watcher;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use parking_lot::{Mutex, RwLock};
use uuid::Uuid;

use crate::notify::Notification;
use crate::probe::ProbeResult;
use crate::store::{NotificationWrite, OutboxEntry, StoreOp};
use inbox::{Bound, Inbox};
use incidents::IncidentEvent;
use notifier::ChannelQueue;
use persistence::Backlog;
pub use services::Services;
pub use task::AbortOnDrop;

/// Where to send what: the inboxes that outlive the actors (each wakes its own consumer).
pub struct Directory {
    /// Persistence's inbox.
    backlog: Arc<Backlog>,
    batch_size: usize,
    incidents_inbox: Arc<Inbox<IncidentEvent>>,
    channels: RwLock<HashMap<String, Arc<ChannelQueue>>>,
    /// The outbox keys decided so far ([`Notification::outbox_key`]): a notification whose key
    /// was decided before is neither written nor sent again.
    decided: Mutex<Decided>,
    /// Cluster mode: where confirmed changes go when another replica decides (`relay.rs`).
    relay: std::sync::OnceLock<Arc<relay::Relay>>,
}

/// Outbox keys by incident, kept while the incident is open and [`KEEP_AFTER_CLOSE`] after it
/// closed, so that memory stays bounded by the incidents open and recent. The store keeps
/// each key unique too (a unique index): no second row even for a key forgotten here.
#[derive(Default)]
struct Decided {
    by_incident: HashMap<Uuid, HashSet<String>>,
    /// Incidents that closed, oldest first, with when.
    closed: VecDeque<(tokio::time::Instant, Uuid)>,
}

/// Long past any RECOVERY decided (a grouped one waits seconds) or decided twice after its
/// incident closed.
const KEEP_AFTER_CLOSE: Duration = Duration::from_secs(600);

impl Decided {
    /// Whether `key` (of `incident`) is new, remembering it.
    fn first(&mut self, incident: Uuid, key: String) -> bool {
        self.forget_old();
        self.by_incident.entry(incident).or_default().insert(key)
    }

    fn closed(&mut self, incident: Uuid) {
        self.forget_old();
        self.closed.push_back((tokio::time::Instant::now(), incident));
    }

    /// Forgets the incidents closed more than [`KEEP_AFTER_CLOSE`] ago.
    fn forget_old(&mut self) {
        let now = tokio::time::Instant::now();
        while let Some((at, old)) = self.closed.front().copied() {
            if now.saturating_duration_since(at) < KEEP_AFTER_CLOSE {
                break;
            }
            self.closed.pop_front();
            self.by_incident.remove(&old);
        }
    }
}

impl Directory {
    pub fn new(backlog: Arc<Backlog>, batch_size: usize) -> Self {
        Directory {
            backlog,
            batch_size: batch_size.max(1),
            incidents_inbox: Arc::new(Inbox::new(Bound::Unbounded)),
            channels: RwLock::new(HashMap::new()),
            decided: Mutex::new(Decided::default()),
            relay: std::sync::OnceLock::new(),
        }
    }

    /// Remembers outbox keys decided before a restart (`keys`, of the incidents `open`), so
    /// that none is decided again.
    pub fn remember_decided(&self, open: &HashSet<Uuid>, keys: impl IntoIterator<Item = String>) {
        let mut decided = self.decided.lock();
        for key in keys {
            // The key starts with its incident's id (see `Notification::outbox_key`).
            let incident = key.split('/').next().and_then(|id| id.parse::<Uuid>().ok());
            if let Some(incident) = incident.filter(|id| open.contains(id)) {
                decided.by_incident.entry(incident).or_default().insert(key);
            }
        }
    }

    /// The incident closed: its outbox keys are forgotten after [`KEEP_AFTER_CLOSE`].
    pub fn incident_closed(&self, incident: Uuid) {
        self.decided.lock().closed(incident);
    }

    /// Whether `notification` to `channel` may be decided: false when its outbox key was
    /// already (logged and counted as a duplicate).
    fn first_decision(&self, channel: &str, notification: &Notification) -> bool {
        let (Some(key), Some(incident)) = (notification.outbox_key(channel), notification.incident_id) else {
            return true;
        };
        if self.decided.lock().first(incident, key) {
            return true;
        }
        metrics::counter!(crate::telemetry::names::NOTIFICATIONS_DUPLICATE_TOTAL, "channel" => channel.to_string())
            .increment(1);
        tracing::warn!(
            %channel, asset_id = %notification.asset_id, %incident, event = notification.event.as_str(),
            tier = ?notification.tier, "a notification already decided was decided again: not sent twice"
        );
        false
    }

    pub fn backlog(&self) -> &Arc<Backlog> {
        &self.backlog
    }

    pub fn incidents_inbox(&self) -> &Arc<Inbox<IncidentEvent>> {
        &self.incidents_inbox
    }

    /// Hands a probe result to Persistence, waking it when a batch is full.
    pub fn persist(&self, result: ProbeResult) {
        if self.backlog.accept(result) == self.batch_size {
            self.backlog.wake();
        }
    }

    /// Hands a change (an incident, the asset list) to Persistence, to be written at once;
    /// answers its sequence number, for [`Backlog::stored`].
    pub fn persist_change(&self, change: StoreOp) -> u64 {
        self.backlog.accept_change(change)
    }

    /// Hands an event to the Incidents actor that decides it: this replica's, or in cluster
    /// mode, for a confirmed change while another replica holds the incidents role, that
    /// replica's through the relay (see `relay.rs`).
    pub fn incidents(&self, event: IncidentEvent) {
        let event = match self.relay.get() {
            Some(relay) if relay::Relayed::of(&event).is_some() => match relay.offer(event) {
                Some(event) => event,
                None => return,
            },
            _ => event,
        };
        self.incidents_here(event);
    }

    /// Hands an event to this replica's Incidents actor.
    pub fn incidents_here(&self, event: IncidentEvent) {
        // Unbounded: events come from the configured assets, one transition at a time each.
        self.incidents_inbox.push(event);
        self.incidents_inbox.wake();
    }

    /// Cluster mode: confirmed changes go through `relay` from now on.
    pub fn set_relay(&self, relay: Arc<relay::Relay>) {
        let _ = self.relay.set(relay);
    }

    /// Queues a notification decided before and never delivered (by an instance that stopped,
    /// or the replica that held the incidents role before this one) to its channel; one whose
    /// channel is no longer configured is logged and left pending.
    pub fn resume_undelivered(&self, entry: OutboxEntry) {
        let age = (Utc::now() - entry.decided_at).to_std().unwrap_or_default();
        match self.channels.read().get(&entry.channel) {
            Some(queue) => queue.resume(entry, age),
            None => {
                tracing::warn!(channel = %entry.channel, asset_id = %entry.notification.asset_id, "an undelivered notification's channel is not configured here")
            }
        }
    }

    /// Hands a decided notification to its channel: first to the outbox (written before any
    /// later change, so before the send's outcome), then to the channel's queue, whose notifier
    /// sends it once the outbox row (and the incident opened before it) is stored.
    /// A notification whose outbox key was decided before is dropped here (see
    /// [`Notification::outbox_key`]).
    pub fn notify(&self, channel: &str, notification: Notification) {
        let queue = self.channels.read().get(channel).cloned();
        match queue {
            Some(queue) => {
                if !self.first_decision(channel, &notification) {
                    return;
                }
                let id = Uuid::now_v7();
                let stored = self.persist_change(StoreOp::Notification(NotificationWrite::Decided(OutboxEntry {
                    id,
                    channel: channel.to_string(),
                    notification: notification.clone(),
                    decided_at: Utc::now(),
                })));
                queue.push(id, notification, stored);
            }
            None => tracing::error!(%channel, "no such notification channel: a notification was dropped"),
        }
    }

    /// The channel's config as in force now; None for a channel not configured.
    pub fn channel(&self, channel: &str) -> Option<Arc<crate::notify::ChannelConfig>> {
        self.channels.read().get(channel).map(|queue| queue.config())
    }

    /// Whether the channel takes storms grouped into one message; an unknown one does not.
    pub fn channel_groups(&self, channel: &str) -> bool {
        self.channels.read().get(channel).is_some_and(|queue| queue.groups())
    }

    pub(crate) fn set_channel(&self, queue: &Arc<ChannelQueue>) {
        self.channels.write().insert(queue.name().to_string(), Arc::clone(queue));
    }

    pub(crate) fn remove_notifier(&self, channel: &str) {
        self.channels.write().remove(channel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::{ChannelConfig, Event};

    fn down(incident: Uuid, tier: u32) -> Notification {
        Notification {
            event: Event::Down,
            asset_id: "api".into(),
            asset_name: "API".into(),
            timestamp: Utc::now(),
            details: "HTTP 500".into(),
            incident_id: Some(incident),
            group: Vec::new(),
            tier: Some(tier),
            since: None,
        }
    }

    /// The same DOWN decided twice for one incident, channel and tier is written and queued
    /// once; another tier, or one remembered from before a restart, follows the same rule.
    #[test]
    fn a_notification_decided_twice_is_queued_and_written_once() {
        let directory = Directory::new(Arc::new(Backlog::new(100)), 10);
        let channel: ChannelConfig =
            serde_json::from_value(serde_json::json!({"type": "webhook", "url": "http://127.0.0.1:9/"}))
                .expect("a channel");
        let queue = ChannelQueue::new("ops", channel);
        directory.set_channel(&queue);
        let incident = Uuid::now_v7();
        directory.notify("ops", down(incident, 0));
        directory.notify("ops", down(incident, 0));
        assert_eq!((queue.len(), directory.backlog().len()), (1, 1));
        directory.notify("ops", down(incident, 1));
        assert_eq!((queue.len(), directory.backlog().len()), (2, 2));

        let earlier = Uuid::now_v7();
        let open = HashSet::from([earlier]);
        directory.remember_decided(&open, [format!("{earlier}/DOWN/ops/0"), format!("{}/DOWN/ops/0", Uuid::nil())]);
        directory.notify("ops", down(earlier, 0));
        assert_eq!(queue.len(), 2, "decided before the restart");
        // A PANIC has no incident: never held back.
        let panic = Notification { event: Event::Panic, incident_id: None, tier: None, ..down(incident, 0) };
        directory.notify("ops", panic.clone());
        directory.notify("ops", panic);
        assert_eq!(queue.len(), 4);
    }
}

#[cfg(test)]
mod forgetting {
    use super::*;

    /// A closed incident's keys are kept a while (a RECOVERY decided twice is still caught),
    /// then forgotten: memory follows the incidents open and recent, not all there ever were.
    #[tokio::test(start_paused = true)]
    async fn a_closed_incidents_keys_are_forgotten_after_a_while() {
        let mut decided = Decided::default();
        let incident = Uuid::now_v7();
        assert!(decided.first(incident, "k".into()));
        decided.closed(incident);
        tokio::time::advance(KEEP_AFTER_CLOSE - Duration::from_secs(1)).await;
        assert!(!decided.first(incident, "k".into()), "still kept");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(decided.first(Uuid::now_v7(), "other".into()));
        assert!(!decided.by_incident.contains_key(&incident), "forgotten");
    }
}
