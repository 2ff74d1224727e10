//! Tasks that actors spawn and hear back from only by message: a probe, a notification
//! delivery, a database write, a retention step, a round of the maintenance announcer.
//!
//! ractor catches a panic inside an actor's handler and tells the Supervisor, but a panic in a
//! task the actor spawned reaches nobody: the task just ends, the message it owed its actor never
//! comes, and the actor waits for it forever (an asset that never probes again, a notifier slot
//! lost for good, a Persistence that never flushes again). So every such task runs its work
//! through [`supervised`]: a panic is caught there, logged with actor and task, counted in
//! `statusd_task_panics_total{actor,task}`, reported to the `onPanic` channels like an actor
//! panic, and handed back to the task as a [`TaskPanic`], which turns it into the message its
//! owner waits for (a failed probe, a failed send, a failed write).
//!
//! The chaos switch (`POST /api/debug/panic?actor=NAME&task=KIND`, with `--enable-chaos`) arms a
//! panic for the next task of one kind of one actor; it fires inside [`supervised`], so it takes
//! exactly the path a real panic would.

use std::collections::HashSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::FutureExt;
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::task::JoinHandle;

use super::Services;
use super::incidents::IncidentEvent;
use crate::telemetry::{names, panic_message};

/// The kinds of task an actor spawns, as the metric label and the chaos route name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// An asset's probe.
    Probe,
    /// A notifier's delivery of one notification.
    Delivery,
    /// Persistence writing a batch.
    Write,
    /// Persistence rolling up or pruning history.
    Retention,
    /// The Supervisor's maintenance announcer, one round (see `maintenance.rs`).
    Announce,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Probe => "probe",
            TaskKind::Delivery => "delivery",
            TaskKind::Write => "write",
            TaskKind::Retention => "retention",
            TaskKind::Announce => "announce",
        }
    }

    /// What the owner does about the panic, in the words of the report.
    fn recovery(self) -> &'static str {
        match self {
            TaskKind::Probe => "the probe counts as failed and the schedule goes on",
            TaskKind::Delivery => "the notification is sent again",
            TaskKind::Write => "the batch is written again; nothing accepted is lost",
            TaskKind::Retention => "the step is tried again in the next round",
            TaskKind::Announce => "maintenance windows are announced again a second later",
        }
    }
}

impl std::fmt::Display for TaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task's panic, caught: what it said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} task panicked: {message}")]
pub struct TaskPanic {
    pub kind: TaskKind,
    pub message: String,
}

/// Panics armed from the chaos route, each for the next task of one kind of one actor.
#[derive(Debug, Default)]
pub struct ChaosSwitch {
    /// Set while anything is armed, so that the 10,000 probes a second of a healthy statusd
    /// look at one atomic, not at a lock.
    any: AtomicBool,
    armed: Mutex<HashSet<(String, TaskKind)>>,
}

impl ChaosSwitch {
    /// Makes the next `kind` task of `actor` panic.
    pub fn arm(&self, actor: &str, kind: TaskKind) {
        self.armed.lock().insert((actor.to_string(), kind));
        self.any.store(true, Ordering::Release);
    }

    /// Disarms and returns whether a panic was armed for this task.
    fn take(&self, actor: &str, kind: TaskKind) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        let mut armed = self.armed.lock();
        let taken = armed.remove(&(actor.to_string(), kind));
        if armed.is_empty() {
            self.any.store(false, Ordering::Release);
        }
        taken
    }
}

/// Runs `work` (the body of a spawned task) and catches a panic inside it: logged, counted,
/// reported to the `onPanic` channels, and returned as `Err` for the task to turn into the
/// message its owner `actor` waits for.
pub async fn supervised<T>(
    services: &Services,
    actor: &str,
    kind: TaskKind,
    work: impl Future<Output = T>,
) -> Result<T, TaskPanic> {
    let chaos = services.chaos.take(actor, kind);
    // Unwind safety: what the task touches is its own, and the owner rebuilds what it needs
    // from the Err below (it never reads state the task left half-changed).
    let outcome = AssertUnwindSafe(async move {
        if chaos {
            panic!("chaos: panic injected into the {kind} task of {actor}");
        }
        work.await
    })
    .catch_unwind()
    .await;
    outcome.map_err(|payload| {
        let panic = TaskPanic { kind, message: panic_message(payload.as_ref()) };
        metrics::counter!(names::TASK_PANICS_TOTAL, "actor" => actor.to_string(), "task" => kind.as_str()).increment(1);
        tracing::error!(actor, task = kind.as_str(), error = %panic.message, "task panicked: {}", kind.recovery());
        services.directory.incidents(IncidentEvent::Panicked {
            actor: actor.to_string(),
            details: format!("the {kind} task of {actor} panicked: {}; {}", panic.message, kind.recovery()),
        });
        panic
    })
}

/// A task that dies with its owner: actor state keeps timers and probes in these, so that a
/// panicking actor's leftovers never fire into its replacement.
pub struct AbortOnDrop<T>(pub JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_armed_panic_fires_once_and_only_for_its_actor_and_kind() {
        let chaos = ChaosSwitch::default();
        assert!(!chaos.take("asset:a", TaskKind::Probe));
        chaos.arm("asset:a", TaskKind::Probe);
        assert!(!chaos.take("asset:b", TaskKind::Probe));
        assert!(!chaos.take("asset:a", TaskKind::Write));
        assert!(chaos.take("asset:a", TaskKind::Probe));
        assert!(!chaos.take("asset:a", TaskKind::Probe));
    }
}
