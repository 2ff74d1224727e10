//! Persistence actor ("persistence"): the only writer to the store.
//!
//! Its inbox is the [`Backlog`]: senders put results and changes (incidents, the asset list)
//! there directly and wake the actor when a batch is due, so nothing accepted lives in a
//! mailbox that a panic could lose. The backlog is written in batches, one transaction per
//! flush, when enough has gathered or every flush interval. The write runs as a task so the
//! backlog keeps filling while the database is slow; entries leave the backlog only once their
//! transaction committed, so a failed write is retried with backoff, and a panicking actor's
//! replacement (which gets the same backlog) writes them again. Every write is idempotent (ids
//! are made by statusd), so writing twice stores once. Probe results beyond the buffer bound
//! are dropped oldest first and counted; changes are never dropped.
//!
//! Maintenance runs here too, in the same single slot as writes and always after them, one
//! short step at a time so that a write never waits long: completed hours are rolled up, raw
//! events past their retention are deleted in small batches, then old hourly rollups.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use parking_lot::Mutex;
use ractor::{Actor, ActorProcessingErr, ActorRef, MessagingErr};
use serde::Serialize;
use tokio::time::Instant;

use super::AbortOnDrop;
use crate::actors::{PersistenceSettings, RetentionSettings};
use crate::probe::ProbeResult;
use crate::store::{Store, StoreOp};
use crate::telemetry::names;

/// Rows per write when catching up on a backlog.
const MAX_ROWS_PER_WRITE: usize = 5000;
const FIRST_RETRY: Duration = Duration::from_millis(200);
const MAX_RETRY: Duration = Duration::from_secs(5);
/// How long a stopping actor keeps trying to write what it accepted.
const STOP_DEADLINE: Duration = Duration::from_secs(4);

pub struct Persistence;

pub struct PersistenceArgs {
    pub store: Store,
    pub settings: PersistenceSettings,
    pub retention: RetentionSettings,
    /// Outlives the actor: the Supervisor hands it to the replacement after a panic.
    pub backlog: Arc<Mutex<Backlog>>,
}

pub enum PersistenceMsg {
    /// Something was added to the backlog that should be written now (a full batch, a change).
    Wake,
    /// Flush timer.
    Flush,
    /// The write under way finished.
    Written {
        error: Option<String>,
    },
    /// Retention timer.
    Maintain,
    /// A retention step finished.
    Pruned(Result<Pruned, String>),
    Panic(String),
}

/// What a maintenance step did.
#[derive(Debug, Clone, Copy)]
pub enum Pruned {
    /// An hour rolled up; None when no completed hour was pending.
    RolledUp(Option<chrono::DateTime<Utc>>),
    /// Raw events deleted; a full batch means there may be more.
    Events(u64),
    Rollups(u64),
}

/// Where a maintenance pass is: roll up completed hours, then prune raw events (never from an
/// hour not rolled up), then prune old rollups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RetentionPhase {
    RollUp,
    Events,
    Rollups,
}

/// The backlog in numbers, for readiness and logs.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BacklogStats {
    pub queued: usize,
    pub accepted: u64,
    pub written: u64,
    pub dropped: u64,
}

/// What Persistence accepted and has not yet seen committed.
#[derive(Debug)]
pub struct Backlog {
    results: VecDeque<ProbeResult>,
    changes: VecDeque<StoreOp>,
    /// How many changes and results at the front of the queues a write is under way for.
    writing: Option<(usize, usize)>,
    /// Probe results kept while the database cannot take them; beyond, the oldest go.
    max_results: usize,
    accepted: u64,
    written: u64,
    dropped: u64,
    /// Drops not yet logged: during a long outage one line per interval, not one per result.
    unlogged_drops: u64,
    last_drop_log: Option<Instant>,
}

/// At most one "buffer full" line per this interval.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

impl Backlog {
    pub fn new(max_results: usize) -> Self {
        Backlog {
            results: VecDeque::new(),
            changes: VecDeque::new(),
            writing: None,
            max_results: max_results.max(1),
            accepted: 0,
            written: 0,
            dropped: 0,
            unlogged_drops: 0,
            last_drop_log: None,
        }
    }

    pub fn len(&self) -> usize {
        self.results.len() + self.changes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn stats(&self) -> BacklogStats {
        BacklogStats { queued: self.len(), accepted: self.accepted, written: self.written, dropped: self.dropped }
    }

    /// Takes a probe result; says how many results now wait (the sender wakes the actor when
    /// that makes a batch).
    pub fn accept(&mut self, result: ProbeResult) -> usize {
        self.accepted += 1;
        self.results.push_back(result);
        // Never drop what a write is under way for: it may be committing right now.
        let protected = self.writing.map_or(0, |(_, results)| results);
        let excess = self.results.len().saturating_sub(self.max_results.max(protected + 1));
        if excess > 0 {
            self.results.drain(protected..protected + excess);
            self.dropped += excess as u64;
            self.unlogged_drops += excess as u64;
            metrics::counter!(names::PERSISTENCE_DROPPED_TOTAL).increment(excess as u64);
            if self.last_drop_log.is_none_or(|at| at.elapsed() >= DROP_LOG_INTERVAL) {
                tracing::error!(
                    actor = "persistence",
                    dropped = self.unlogged_drops,
                    dropped_total = self.dropped,
                    buffer = self.max_results,
                    "buffer full: oldest probe results dropped"
                );
                self.unlogged_drops = 0;
                self.last_drop_log = Some(Instant::now());
            }
        }
        self.results.len()
    }

    /// Takes a change; changes are never dropped.
    pub fn accept_change(&mut self, change: StoreOp) {
        self.changes.push_back(change);
    }

    /// Copies the front of the queues for a write, remembering how much it covers.
    fn begin_write(&mut self) -> (Vec<StoreOp>, Vec<ProbeResult>) {
        let changes: Vec<StoreOp> = self.changes.iter().cloned().collect();
        let results: Vec<ProbeResult> = self.results.iter().take(MAX_ROWS_PER_WRITE).cloned().collect();
        self.writing = Some((changes.len(), results.len()));
        (changes, results)
    }

    /// The write committed: what it covered leaves the queues.
    fn commit(&mut self) {
        if let Some((changes, results)) = self.writing.take() {
            self.changes.drain(..changes);
            self.results.drain(..results);
            self.written += results as u64;
        }
    }

    fn report_depth(&self) {
        metrics::gauge!(names::PERSISTENCE_QUEUE_DEPTH).set(self.len() as f64);
    }
}

pub struct PersistenceState {
    store: Store,
    settings: PersistenceSettings,
    retention: RetentionSettings,
    backlog: Arc<Mutex<Backlog>>,
    /// This actor's write (or retention step) under way; a write hands back its `Written` if
    /// the actor stopped meanwhile.
    write: Option<AbortOnDrop<Option<PersistenceMsg>>>,
    retry_delay: Duration,
    retry_at: Option<Instant>,
    /// A retention pass waiting for the slot, and how far it got.
    retention_due: Option<RetentionPhase>,
    _flush_timer: AbortOnDrop<()>,
    _retention_timer: AbortOnDrop<()>,
}

impl PersistenceState {
    /// Uses the slot: a write if one is due, else the next retention step, if any.
    fn flush(&mut self, myself: &ActorRef<PersistenceMsg>, force: bool) {
        if self.write.is_some() || self.retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let batch = {
            let mut backlog = self.backlog.lock();
            let due = force || !backlog.changes.is_empty() || backlog.results.len() >= self.settings.batch_size;
            (due && !backlog.is_empty()).then(|| backlog.begin_write())
        };
        let store = self.store.clone();
        let myself = myself.clone();
        if let Some((changes, results)) = batch {
            self.write = Some(AbortOnDrop(tokio::spawn(async move {
                let error = store.write(&changes, &results).await.err().map(|e| e.to_string());
                match myself.cast(PersistenceMsg::Written { error }) {
                    Ok(()) => None,
                    // Stopping: post_stop picks the outcome up from this task instead.
                    Err(MessagingErr::SendErr(message)) => Some(message),
                    Err(_) => None,
                }
            })));
        } else if let Some(phase) = self.retention_due {
            let retention = self.retention;
            self.write = Some(AbortOnDrop(tokio::spawn(async move {
                let now = Utc::now();
                let outcome = match phase {
                    RetentionPhase::RollUp => {
                        store.roll_up_next(crate::store::rollup::hour_of(now)).await.map(Pruned::RolledUp)
                    }
                    // Checked: a retention reaching before the earliest date there is prunes nothing.
                    RetentionPhase::Events => match now.checked_sub_signed(retention.events) {
                        Some(before) => store.prune_events(before, retention.batch).await.map(Pruned::Events),
                        None => Ok(Pruned::Events(0)),
                    },
                    RetentionPhase::Rollups => match now.checked_sub_signed(retention.rollups) {
                        Some(before) => store.prune_rollups(before).await.map(Pruned::Rollups),
                        None => Ok(Pruned::Rollups(0)),
                    },
                };
                let _ = myself.cast(PersistenceMsg::Pruned(outcome.map_err(|e| e.to_string())));
                None
            })));
        }
    }

    fn pruned(&mut self, outcome: Result<Pruned, String>) {
        self.write = None;
        self.retention_due = match outcome {
            // One hour per step, so writes get the slot in between.
            Ok(Pruned::RolledUp(Some(hour))) => {
                tracing::debug!(actor = "persistence", %hour, "hour rolled up");
                Some(RetentionPhase::RollUp)
            }
            Ok(Pruned::RolledUp(None)) => Some(RetentionPhase::Events),
            Ok(Pruned::Events(deleted)) => {
                if deleted > 0 {
                    tracing::info!(actor = "persistence", deleted, "pruned probe events past retention");
                }
                // A full batch may have left more behind: the next step takes the next batch.
                Some(if deleted >= u64::from(self.retention.batch) {
                    RetentionPhase::Events
                } else {
                    RetentionPhase::Rollups
                })
            }
            Ok(Pruned::Rollups(deleted)) => {
                if deleted > 0 {
                    tracing::info!(actor = "persistence", deleted, "pruned hourly rollups past retention");
                }
                None
            }
            Err(error) => {
                tracing::warn!(actor = "persistence", %error, "retention step failed; trying again next round");
                None
            }
        };
    }

    fn written(&mut self, error: Option<String>) {
        self.write = None;
        let mut backlog = self.backlog.lock();
        match error {
            None => {
                backlog.commit();
                self.retry_delay = FIRST_RETRY;
                self.retry_at = None;
            }
            Some(error) => {
                backlog.writing = None;
                tracing::warn!(
                    actor = "persistence", %error, backlog = backlog.len(),
                    retry_in_ms = self.retry_delay.as_millis() as u64, "write failed; will retry"
                );
                self.retry_at = Some(Instant::now() + self.retry_delay);
                self.retry_delay = (self.retry_delay * 2).min(MAX_RETRY);
            }
        }
        backlog.report_depth();
    }
}

impl Actor for Persistence {
    type Msg = PersistenceMsg;
    type State = PersistenceState;
    type Arguments = PersistenceArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<PersistenceMsg>,
        args: PersistenceArgs,
    ) -> Result<PersistenceState, ActorProcessingErr> {
        // A write that was under way when a previous incarnation died is simply done again.
        args.backlog.lock().writing = None;
        // Whatever the previous incarnation left is written without waiting for the timer.
        let _ = myself.cast(PersistenceMsg::Wake);
        let flush_timer = AbortOnDrop(myself.send_interval(args.settings.flush_interval, || PersistenceMsg::Flush));
        let retention_timer = AbortOnDrop(myself.send_interval(args.retention.every, || PersistenceMsg::Maintain));
        Ok(PersistenceState {
            store: args.store,
            settings: args.settings,
            retention: args.retention,
            backlog: args.backlog,
            write: None,
            retry_delay: FIRST_RETRY,
            retry_at: None,
            // A pass right after start, then on the timer.
            retention_due: Some(RetentionPhase::RollUp),
            _flush_timer: flush_timer,
            _retention_timer: retention_timer,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<PersistenceMsg>,
        message: PersistenceMsg,
        state: &mut PersistenceState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            PersistenceMsg::Wake => state.flush(&myself, false),
            PersistenceMsg::Flush => state.flush(&myself, true),
            PersistenceMsg::Written { error } => {
                state.written(error);
                state.flush(&myself, false);
            }
            PersistenceMsg::Maintain => {
                state.retention_due.get_or_insert(RetentionPhase::RollUp);
                state.flush(&myself, false);
            }
            PersistenceMsg::Pruned(outcome) => {
                state.pruned(outcome);
                state.flush(&myself, false);
            }
            PersistenceMsg::Panic(reason) => panic!("{reason}"),
        }
        state.backlog.lock().report_depth();
        Ok(())
    }

    /// On shutdown: write everything accepted, retrying until the deadline.
    async fn post_stop(
        &self,
        _myself: ActorRef<PersistenceMsg>,
        state: &mut PersistenceState,
    ) -> Result<(), ActorProcessingErr> {
        let deadline = Instant::now() + STOP_DEADLINE;
        if let Some(mut task) = state.write.take() {
            match tokio::time::timeout_at(deadline, &mut task.0).await {
                Ok(Ok(Some(PersistenceMsg::Written { error }))) => state.written(error),
                // A retention step, or a write that did not finish: what it covered stays queued.
                _ => state.backlog.lock().writing = None,
            }
        }
        let mut delay = FIRST_RETRY;
        while !state.backlog.lock().is_empty() && Instant::now() < deadline {
            let (changes, results) = state.backlog.lock().begin_write();
            let error = match tokio::time::timeout_at(deadline, state.store.write(&changes, &results)).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some("deadline reached".to_string()),
            };
            let failed = error.is_some();
            state.written(error);
            if failed {
                tokio::time::sleep(delay.min(deadline.saturating_duration_since(Instant::now()))).await;
                delay = (delay * 2).min(MAX_RETRY);
            }
        }
        let backlog = state.backlog.lock();
        let lost = backlog.len();
        if lost > 0 {
            tracing::error!(actor = "persistence", lost, "stopped before the database took everything");
        }
        tracing::info!(
            actor = "persistence",
            accepted = backlog.accepted,
            written = backlog.written,
            dropped = backlog.dropped,
            lost,
            "persistence stopped"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use uuid::Uuid;

    fn result(n: u32) -> ProbeResult {
        ProbeResult {
            id: Uuid::now_v7(),
            asset_id: format!("a{n}"),
            timestamp: Utc::now(),
            success: true,
            latency_ms: 1,
            code: None,
            message: None,
            detail: Default::default(),
        }
    }

    fn ids(backlog: &Backlog) -> Vec<String> {
        backlog.results.iter().map(|r| r.asset_id.clone()).collect()
    }

    #[test]
    fn a_full_buffer_drops_the_oldest_results_and_counts_them() {
        let mut backlog = Backlog::new(3);
        for n in 0..5 {
            backlog.accept(result(n));
        }
        assert_eq!(ids(&backlog), ["a2", "a3", "a4"]);
        assert_eq!((backlog.accepted, backlog.dropped), (5, 2));
    }

    #[test]
    fn results_under_write_are_never_dropped_and_leave_only_on_commit() {
        let mut backlog = Backlog::new(3);
        for n in 0..3 {
            backlog.accept(result(n));
        }
        let (_, batch) = backlog.begin_write();
        assert_eq!(batch.len(), 3);
        backlog.accept(result(3));
        backlog.accept(result(4));
        // The three being written stay; the newest overflow goes.
        assert_eq!(ids(&backlog), ["a0", "a1", "a2", "a4"]);
        backlog.commit();
        assert_eq!(ids(&backlog), ["a4"]);
        assert_eq!((backlog.written, backlog.dropped), (3, 1));
    }

    #[test]
    fn a_failed_write_keeps_everything_for_the_retry() {
        let mut backlog = Backlog::new(10);
        backlog.accept(result(0));
        backlog.accept_change(StoreOp::Incident(crate::store::IncidentWrite::Close {
            id: Uuid::nil(),
            ended_at: Utc::now(),
            reason: crate::store::CloseReason::Recovered,
        }));
        backlog.begin_write();
        backlog.writing = None;
        assert_eq!(backlog.len(), 2);
        let (incidents, results) = backlog.begin_write();
        assert_eq!((incidents.len(), results.len()), (1, 1));
    }
}
