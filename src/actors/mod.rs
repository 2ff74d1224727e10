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
pub mod maintenance;
pub mod network;
pub mod notifier;
pub mod persistence;
pub mod policy;
pub mod schedule;
pub mod services;
pub mod supervisor;
pub mod task;
#[cfg(test)]
pub(crate) mod testing;
pub mod watcher;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use parking_lot::RwLock;
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
}

impl Directory {
    pub fn new(backlog: Arc<Backlog>, batch_size: usize) -> Self {
        Directory {
            backlog,
            batch_size: batch_size.max(1),
            incidents_inbox: Arc::new(Inbox::new(Bound::Unbounded)),
            channels: RwLock::new(HashMap::new()),
        }
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

    /// Hands a change (an incident, the asset list) to Persistence, to be written at once.
    pub fn persist_change(&self, change: StoreOp) {
        self.backlog.accept_change(change);
    }

    pub fn incidents(&self, event: IncidentEvent) {
        // Unbounded: events come from the configured assets, one transition at a time each.
        self.incidents_inbox.push(event);
        self.incidents_inbox.wake();
    }

    /// Hands a decided notification to its channel: first to the outbox (written before any
    /// later change, so before the send's outcome), then to the channel's queue.
    pub fn notify(&self, channel: &str, notification: Notification) {
        let queue = self.channels.read().get(channel).cloned();
        match queue {
            Some(queue) => {
                let id = Uuid::now_v7();
                self.persist_change(StoreOp::Notification(NotificationWrite::Decided(OutboxEntry {
                    id,
                    channel: channel.to_string(),
                    notification: notification.clone(),
                    decided_at: Utc::now(),
                })));
                queue.push(id, notification);
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
