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
pub mod health;
pub mod inbox;
pub mod incidents;
pub mod notifier;
pub mod persistence;
pub mod policy;
pub mod schedule;
pub mod supervisor;
pub mod task;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::notify::Notification;
use crate::probe::{ProbeContext, ProbeResult};
use crate::store::StoreOp;
use inbox::{Bound, Inbox};
use incidents::IncidentEvent;
use notifier::ChannelQueue;
use persistence::Backlog;

/// What every actor of one statusd instance shares.
pub struct Services {
    pub directory: Directory,
    pub probes: ProbeContext,
    /// Probes in flight at once, across all assets (`--workers`).
    pub workers: Arc<Semaphore>,
    /// Client for notification webhooks (keeps connections alive, unlike the probe client).
    pub notify_client: reqwest::Client,
    pub persistence: PersistenceSettings,
    /// Probes due but waiting for a worker slot: above zero for long, statusd cannot keep up.
    pub waiting: AtomicUsize,
    /// Panics armed for the next task of an actor (`--enable-chaos` only).
    pub chaos: task::ChaosSwitch,
    /// What the Supervisor reports to readiness.
    pub tree: TreeHealth,
    /// Assets removed from the config while statusd runs: their metric series are left out of
    /// `/metrics` (the recorder cannot forget a series; an id configured again is taken out).
    pub retired_assets: RwLock<HashSet<String>>,
}

impl Services {
    /// What the actors of one statusd share: `workers` probes at a time, results and changes
    /// handed to Persistence through `directory`.
    pub fn new(
        directory: Directory,
        workers: usize,
        persistence: PersistenceSettings,
    ) -> Result<Services, reqwest::Error> {
        Ok(Services {
            directory,
            probes: ProbeContext::new()?,
            workers: Arc::new(Semaphore::new(workers)),
            notify_client: reqwest::Client::builder()
                .user_agent(concat!("statusd/", env!("CARGO_PKG_VERSION")))
                .build()?,
            persistence,
            waiting: AtomicUsize::new(0),
            chaos: task::ChaosSwitch::default(),
            tree: TreeHealth::default(),
            retired_assets: RwLock::new(HashSet::new()),
        })
    }

    pub fn probes_waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Waits for a worker slot, counted in `waiting` for as long as it waits (even if the wait
    /// is abandoned). None once statusd is shutting down.
    pub async fn worker_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiting);
        Arc::clone(&self.workers).acquire_owned().await.ok()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct PersistenceSettings {
    /// Flush as soon as this many results wait.
    pub batch_size: usize,
    /// Flush at least this often.
    pub flush_interval: Duration,
    /// Writes failing with nothing written for this long make statusd not ready.
    pub write_stall: Duration,
}

/// What the Supervisor knows that `/readyz` reports, kept where the API reads it without asking
/// the Supervisor (which may be busy applying a large reload).
#[derive(Debug, Default)]
pub struct TreeHealth {
    /// Actors marked crashed (failing too often, waiting out a restart backoff), by name.
    crashed: Mutex<BTreeSet<String>>,
    /// The last reload, when it was refused: when, and why. The config in force is the one
    /// before it, still valid and still served.
    refused_reload: Mutex<Option<RefusedReload>>,
}

/// A reload that changed nothing because the new config or settings were invalid.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefusedReload {
    pub at: DateTime<Utc>,
    pub error: String,
}

impl TreeHealth {
    pub fn crashed(&self) -> Vec<String> {
        self.crashed.lock().iter().cloned().collect()
    }

    pub fn refused_reload(&self) -> Option<RefusedReload> {
        self.refused_reload.lock().clone()
    }

    pub(crate) fn set_crashed(&self, actor: &str, crashed: bool) {
        let mut set = self.crashed.lock();
        if crashed {
            set.insert(actor.to_string());
        } else {
            set.remove(actor);
        }
    }

    pub(crate) fn set_reload(&self, refused: Option<String>) {
        *self.refused_reload.lock() = refused.map(|error| RefusedReload { at: Utc::now(), error });
    }
}

/// How long history is kept, and how the pruning is paced.
#[derive(Debug, Clone, Copy)]
pub struct RetentionSettings {
    /// Raw probe events older than this are deleted.
    pub events: chrono::TimeDelta,
    /// Hourly rollups older than this are deleted.
    pub rollups: chrono::TimeDelta,
    /// How often a retention pass runs.
    pub every: Duration,
    /// Events deleted per transaction.
    pub batch: u32,
}

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

    pub fn notify(&self, channel: &str, notification: Notification) {
        let queue = self.channels.read().get(channel).cloned();
        match queue {
            Some(queue) => {
                queue.push(notification);
            }
            None => tracing::error!(%channel, "no such notification channel: a notification was dropped"),
        }
    }

    pub(crate) fn set_channel(&self, queue: &Arc<ChannelQueue>) {
        self.channels.write().insert(queue.name().to_string(), Arc::clone(queue));
    }

    pub(crate) fn remove_notifier(&self, channel: &str) {
        self.channels.write().remove(channel);
    }
}

/// A task that dies with its owner: actor state keeps timers and probes in these, so that a
/// panicking actor's leftovers never fire into its replacement.
pub struct AbortOnDrop<T>(pub JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
