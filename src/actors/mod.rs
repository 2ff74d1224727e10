//! The supervision tree (see DESIGN.md): a Supervisor with one Persistence, one Incidents, one
//! Notifier per channel and one Asset actor per asset, all linked to it.
//!
//! Actors find each other through the [`Directory`] rather than ractor's global registry: the
//! registry is process-wide, and tests run several statusd instances in one process. Messages
//! that must not be lost go into inboxes that outlive the actors (see [`inbox`]); the actor is
//! only woken. The Supervisor updates the directory whenever it (re)spawns a child, so a wake-up
//! sent after a restart reaches the new actor, and one sent during it is made up for by the
//! new actor looking at its inbox when it starts.

pub mod asset;
pub mod health;
pub mod inbox;
pub mod incidents;
pub mod notifier;
pub mod persistence;
pub mod policy;
pub mod schedule;
pub mod services;
pub mod supervisor;
pub mod task;
pub mod watcher;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use ractor::ActorRef;

use crate::notify::Notification;
use crate::probe::ProbeResult;
use crate::store::StoreOp;
use inbox::Inbox;
use incidents::{IncidentEvent, IncidentsMsg};
use notifier::{ChannelQueue, NotifierMsg};
use persistence::{Backlog, PersistenceMsg};
pub use services::Services;
pub use task::AbortOnDrop;

/// Where to send what, and whom to wake.
pub struct Directory {
    /// Persistence's inbox.
    backlog: Arc<Mutex<Backlog>>,
    batch_size: usize,
    incidents_inbox: Arc<Inbox<IncidentEvent>>,
    channels: RwLock<HashMap<String, Arc<ChannelQueue>>>,
    persistence: RwLock<Option<ActorRef<PersistenceMsg>>>,
    incidents: RwLock<Option<ActorRef<IncidentsMsg>>>,
    notifiers: RwLock<HashMap<String, ActorRef<NotifierMsg>>>,
}

impl Directory {
    pub fn new(backlog: Arc<Mutex<Backlog>>, batch_size: usize) -> Self {
        Directory {
            backlog,
            batch_size: batch_size.max(1),
            incidents_inbox: Arc::new(Inbox::default()),
            channels: RwLock::new(HashMap::new()),
            persistence: RwLock::new(None),
            incidents: RwLock::new(None),
            notifiers: RwLock::new(HashMap::new()),
        }
    }

    pub fn backlog(&self) -> &Arc<Mutex<Backlog>> {
        &self.backlog
    }

    pub fn incidents_inbox(&self) -> &Arc<Inbox<IncidentEvent>> {
        &self.incidents_inbox
    }

    /// Hands a probe result to Persistence, waking it when a batch is full.
    pub fn persist(&self, result: ProbeResult) {
        let waiting = self.backlog.lock().accept(result);
        if waiting == self.batch_size {
            self.wake_persistence();
        }
    }

    /// Hands a change (an incident, the asset list) to Persistence, to be written at once.
    pub fn persist_change(&self, change: StoreOp) {
        self.backlog.lock().accept_change(change);
        self.wake_persistence();
    }

    pub fn incidents(&self, event: IncidentEvent) {
        self.incidents_inbox.push(event);
        // If the actor is restarting, its replacement looks at the inbox when it starts.
        if let Some(actor) = self.incidents.read().as_ref() {
            let _ = actor.cast(IncidentsMsg::Wake);
        }
    }

    pub fn notify(&self, channel: &str, notification: Notification) {
        let queue = self.channels.read().get(channel).cloned();
        match queue {
            Some(queue) => {
                queue.push(notification);
                self.wake_notifier(channel);
            }
            None => tracing::error!(%channel, "no such notification channel: a notification was dropped"),
        }
    }

    pub fn wake_notifier(&self, channel: &str) {
        if let Some(actor) = self.notifiers.read().get(channel) {
            let _ = actor.cast(NotifierMsg::Wake);
        }
    }

    fn wake_persistence(&self) {
        if let Some(actor) = self.persistence.read().as_ref() {
            let _ = actor.cast(PersistenceMsg::Wake);
        }
    }

    pub(crate) fn set_persistence(&self, actor: ActorRef<PersistenceMsg>) {
        *self.persistence.write() = Some(actor);
    }

    pub(crate) fn set_incidents(&self, actor: ActorRef<IncidentsMsg>) {
        *self.incidents.write() = Some(actor);
    }

    pub(crate) fn set_notifier(&self, queue: &Arc<ChannelQueue>, actor: ActorRef<NotifierMsg>) {
        self.channels.write().insert(queue.name().to_string(), Arc::clone(queue));
        self.notifiers.write().insert(queue.name().to_string(), actor);
    }

    pub(crate) fn remove_notifier(&self, channel: &str) {
        self.channels.write().remove(channel);
        self.notifiers.write().remove(channel);
    }
}
