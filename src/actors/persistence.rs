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
//! A failed write is classified ([`Failure`]). While the database is unavailable the whole
//! batch waits and is tried again with backoff. When the database refuses the data itself, one
//! bad row must not hold back the rest: the batch is taken apart (changes one by one, results by
//! bisection) until the refused rows stand alone; a refused probe result is dropped, logged and
//! counted (`statusd_persistence_rejected_total`), while a refused change (an incident) stays
//! queued, in order, is retried with backoff, and makes `/readyz` fail until it is written.
//!
//! Maintenance runs here too, in the same single slot as writes and always after them, one
//! short step at a time so that a write never waits long: completed hours are rolled up, raw
//! events past their retention are deleted in small batches, then old hourly rollups.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use parking_lot::Mutex;
use ractor::{Actor, ActorProcessingErr, ActorRef, MessagingErr};
use serde::Serialize;
use tokio::time::Instant;

use super::inbox::{Bound, Inbox, Lease};
use super::task::{TaskKind, supervised};
use super::{AbortOnDrop, Services};
use crate::asset::AssetConfig;
use crate::backoff::Backoff;
use crate::probe::ProbeResult;
use crate::settings::{PersistenceSettings, RetentionSettings};
use crate::store::{DegradationWrite, Failure, IncidentWrite, NotificationWrite, Store, StoreOp};
use crate::telemetry::names;

/// This actor's name, in logs, metrics and panic reports.
const ACTOR: &str = "persistence";

/// Rows per write when catching up on a backlog, unless `batch_size` is larger: a write takes
/// at least a whole batch, or with a larger batch size a flush interval would write only this
/// much, and above this many results a second a whole batch would stay behind for good.
const MAX_ROWS_PER_WRITE: usize = 5000;
/// Waits before writing again after a failed write: 200 ms, doubling up to 5 s.
const RETRY: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
/// How long a stopping actor keeps trying to write what it accepted.
const STOP_DEADLINE: Duration = Duration::from_secs(4);

pub struct Persistence;

pub struct PersistenceArgs {
    pub store: Store,
    pub services: Arc<Services>,
    pub settings: PersistenceSettings,
    pub retention: RetentionSettings,
    /// Outlives the actor: the Supervisor hands it to the replacement after a panic.
    pub backlog: Arc<Backlog>,
}

pub enum PersistenceMsg {
    /// Something was added to the backlog that should be written now (a full batch, a change).
    Wake,
    /// Flush timer.
    Flush,
    /// The write under way finished; its batch is acknowledged by the outcome.
    Written(WriteOutcome, Batch),
    /// Retention timer.
    Maintain,
    /// A retention step finished.
    Pruned(Result<Pruned, String>),
    Panic(String),
}

/// What a maintenance step did.
/// Probe results buffered while the database is away: this much time's worth, by default.
const DEFAULT_BUFFER_SECONDS: u64 = 600;
const MIN_BUFFERED_RESULTS: usize = 10_000;

/// How many probe results the backlog holds while the database is away: `max_buffered` when
/// set, otherwise ten minutes of probe results of `assets` at their intervals, and never less
/// than 10,000.
pub fn buffer_capacity(settings: &PersistenceSettings, assets: &[Arc<AssetConfig>]) -> usize {
    settings.max_buffered.unwrap_or_else(|| {
        let per_window: u64 = assets.iter().map(|asset| DEFAULT_BUFFER_SECONDS / asset.interval_seconds.max(1)).sum();
        usize::try_from(per_window).unwrap_or(usize::MAX).max(MIN_BUFFERED_RESULTS)
    })
}

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

/// How a write ended.
#[derive(Debug)]
pub enum WriteOutcome {
    /// Committed: the first `changes` changes of the batch and every result but the `rejected`
    /// ones. A change the database refused stops the changes there: it and the ones after it
    /// stay queued, in order, and `refused_change` says why.
    Committed { changes: usize, rejected: Vec<Rejected>, refused_change: Option<String> },
    /// Nothing was written (the database is unavailable, or the write task panicked): the whole
    /// batch is tried again after a backoff.
    Failed { error: String },
}

/// A probe result the database refused for good: its place in the batch, and why.
#[derive(Debug)]
pub struct Rejected {
    index: usize,
    error: String,
}

/// Writes a batch ([`Store::write`]); if the database refuses part of it, takes the batch apart
/// so that everything it accepts is written: the changes one at a time, in order, up to the first
/// refused one (changes are never dropped), and the results by bisection, so `k` bad rows among
/// `n` cost about `2k·log n` extra statements. Every write is idempotent, so parts committed
/// before the database went away are simply written again with the rest later.
async fn write_batch(store: &Store, changes: &[StoreOp], results: &[ProbeResult]) -> WriteOutcome {
    let refused = match store.write(changes, results).await {
        Ok(()) => {
            return WriteOutcome::Committed { changes: changes.len(), rejected: Vec::new(), refused_change: None };
        }
        Err(error) if error.failure() == Failure::Rejected => error,
        Err(error) => return WriteOutcome::Failed { error: error.to_string() },
    };
    tracing::warn!(
        actor = ACTOR, error = %refused, changes = changes.len(), results = results.len(),
        "the database refused part of a batch: writing the rest without the refused rows"
    );
    let mut written_changes = 0;
    let mut refused_change = None;
    for change in changes {
        match store.write(std::slice::from_ref(change), &[]).await {
            Ok(()) => written_changes += 1,
            Err(error) if error.failure() == Failure::Rejected => {
                refused_change = Some(format!("{}: {error}", describe(change)));
                break;
            }
            Err(error) => return WriteOutcome::Failed { error: error.to_string() },
        }
    }
    let mut rejected = Vec::new();
    // The ranges still to write, as (start, end) of the batch.
    let mut ranges = vec![(0, results.len())];
    while let Some((start, end)) = ranges.pop() {
        if start == end {
            continue;
        }
        match store.write(&[], &results[start..end]).await {
            Ok(()) => {}
            Err(error) if error.failure() == Failure::Rejected => {
                if end - start == 1 {
                    rejected.push(Rejected { index: start, error: error.to_string() });
                } else {
                    let middle = start + (end - start) / 2;
                    // The first half is popped first: rows are written in their order.
                    ranges.push((middle, end));
                    ranges.push((start, middle));
                }
            }
            Err(error) => return WriteOutcome::Failed { error: error.to_string() },
        }
    }
    WriteOutcome::Committed { changes: written_changes, rejected, refused_change }
}

/// A change in words, for the log line and readiness when the database refuses it.
fn describe(change: &StoreOp) -> String {
    match change {
        StoreOp::SyncAssets(assets, _) => format!("syncing the {} configured assets", assets.len()),
        StoreOp::Incident(IncidentWrite::Open(incident)) => {
            format!("opening incident {} of asset {}", incident.id, incident.asset_id)
        }
        StoreOp::Incident(IncidentWrite::Flapping { id, .. }) => format!("marking incident {id} as flapping or not"),
        StoreOp::Incident(IncidentWrite::CausedBy { id, .. }) => format!("attributing incident {id} to its cause"),
        StoreOp::Incident(IncidentWrite::Close { id, .. }) => format!("closing incident {id}"),
        StoreOp::Degradation(DegradationWrite::Start { asset_id, .. }) => {
            format!("recording asset {asset_id} as degraded")
        }
        StoreOp::Degradation(DegradationWrite::End { asset_id }) => {
            format!("ending the degradation of asset {asset_id}")
        }
        StoreOp::Incident(IncidentWrite::Tier { id, tier }) => format!("recording tier {tier} of incident {id}"),
        StoreOp::Incident(IncidentWrite::Ack { id, .. }) => format!("acknowledging incident {id}"),
        StoreOp::Incident(IncidentWrite::Timeline(entry)) => {
            format!("adding {} to the timeline of incident {}", entry.kind.as_str(), entry.incident_id)
        }
        StoreOp::Notification(NotificationWrite::Decided(entry)) => format!(
            "recording the {} of asset {} for channel {}",
            entry.notification.event.as_str(),
            entry.notification.asset_id,
            entry.channel
        ),
        StoreOp::Notification(NotificationWrite::Sent { id, .. }) => format!("recording notification {id} as sent"),
        StoreOp::Notification(NotificationWrite::Failed { id, .. }) => {
            format!("recording notification {id} as failed")
        }
    }
}

/// The backlog in numbers, for readiness and logs.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BacklogStats {
    pub queued: usize,
    pub accepted: u64,
    pub written: u64,
    pub dropped: u64,
    /// Results the database refused for good (see `statusd_persistence_rejected_total`).
    pub rejected: u64,
}

/// A write that failed, and since when writes have been failing.
#[derive(Debug, Clone)]
struct WriteFailure {
    error: String,
    since: Instant,
}

/// What Persistence accepted and has not yet seen committed: two [`Inbox`]es (results, bounded
/// and dropping the oldest; changes, never dropped) plus the write statistics. A write takes a
/// [`Batch`] of leases; what it does not commit goes back to the front of the queues, also when
/// the actor panics with the write under way (the lease is dropped with the write task).
pub struct Backlog {
    results: Arc<Inbox<ProbeResult>>,
    /// The bound of `results`, for the log line.
    max_results: usize,
    changes: Arc<Inbox<StoreOp>>,
    /// Changes accepted so far: a change's sequence number is this count once it is queued.
    /// Under a lock with the push, so that numbers follow queue order.
    changes_accepted: Mutex<u64>,
    /// Changes written so far. Changes are written in queue order (one refused stops those
    /// after it), so a change is stored once this reaches its sequence number.
    changes_written: tokio::sync::watch::Sender<u64>,
    stats: Mutex<WriteStats>,
}

/// The front of the queues, taken for one write.
pub struct Batch {
    changes: Lease<StoreOp>,
    results: Lease<ProbeResult>,
}

/// Writes and their failures, for readiness and logs.
#[derive(Debug)]
struct WriteStats {
    /// When the write under way began: one that waits on the database for long (a lock held
    /// elsewhere) is as bad for readiness as one that failed.
    write_started: Option<Instant>,
    written: u64,
    rejected: u64,
    /// When a write last committed (or the backlog was made): how long nothing has been written.
    last_commit: Instant,
    /// Set while writes fail; cleared by the next commit.
    failing: Option<WriteFailure>,
    /// A change the database refuses: it stays queued, and readiness fails until it is written.
    refused_change: Option<String>,
    /// Drops not yet logged: during a long outage one line per interval, not one per result.
    unlogged_drops: u64,
    last_drop_log: Option<Instant>,
}

/// At most one "buffer full" line per this interval.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

impl Backlog {
    /// A backlog keeping at most `max_results` probe results (at least one) while the database
    /// cannot take them.
    pub fn new(max_results: usize) -> Self {
        Backlog {
            results: Arc::new(Inbox::new(Bound::DropOldest(max_results.max(1)))),
            max_results: max_results.max(1),
            // Changes are never dropped: they are few (an incident opens or closes, a reload).
            changes: Arc::new(Inbox::new(Bound::Unbounded)),
            changes_accepted: Mutex::new(0),
            changes_written: tokio::sync::watch::Sender::new(0),
            stats: Mutex::new(WriteStats {
                write_started: None,
                written: 0,
                rejected: 0,
                last_commit: Instant::now(),
                failing: None,
                refused_change: None,
                unlogged_drops: 0,
                last_drop_log: None,
            }),
        }
    }

    /// Results and changes waiting or being written.
    pub fn len(&self) -> usize {
        self.results.len() + self.changes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn stats(&self) -> BacklogStats {
        let stats = self.stats.lock();
        BacklogStats {
            queued: self.len(),
            accepted: self.results.accepted(),
            written: stats.written,
            dropped: self.results.dropped(),
            rejected: stats.rejected,
        }
    }

    /// Whether results and changes reach the database, for readiness: not when a change is
    /// refused (it is kept and retried, but nothing after it can be written), nor when writes
    /// have failed (or one has waited on the database) and nothing was written for longer than
    /// `stall`. A single failed write, or a database that is merely slow, is not yet a reason to
    /// take statusd out of rotation.
    pub fn write_health(&self, stall: Duration) -> Result<(), String> {
        let stats = self.stats.lock();
        if let Some(refused) = &stats.refused_change {
            return Err(format!("the database refuses a change, which is kept and retried: {refused}"));
        }
        if stats.last_commit.elapsed() <= stall {
            return Ok(());
        }
        match (&stats.failing, stats.write_started) {
            (Some(failure), _) => Err(format!(
                "writes have failed for {}s and nothing was written for {}s: {}",
                failure.since.elapsed().as_secs(),
                stats.last_commit.elapsed().as_secs(),
                failure.error
            )),
            (None, Some(started)) if started.elapsed() > stall => {
                Err(format!("a write has been waiting for the database for {}s", started.elapsed().as_secs()))
            }
            _ => Ok(()),
        }
    }

    /// Takes a probe result; says how many results now wait (the sender wakes the actor with
    /// [`Backlog::wake`] when that makes a batch). Beyond the bound the oldest results not
    /// under write are dropped, counted and logged.
    pub fn accept(&self, result: ProbeResult) -> usize {
        let pushed = self.results.push(result);
        if pushed.dropped > 0 {
            metrics::counter!(names::PERSISTENCE_DROPPED_TOTAL).increment(pushed.dropped as u64);
            let mut stats = self.stats.lock();
            stats.unlogged_drops += pushed.dropped as u64;
            if stats.last_drop_log.is_none_or(|at| at.elapsed() >= DROP_LOG_INTERVAL) {
                tracing::error!(
                    actor = ACTOR,
                    dropped = stats.unlogged_drops,
                    dropped_total = self.results.dropped(),
                    buffer = self.max_results,
                    "buffer full: oldest probe results dropped"
                );
                stats.unlogged_drops = 0;
                stats.last_drop_log = Some(Instant::now());
            }
        }
        pushed.len
    }

    /// Takes a change (never dropped) and wakes the actor to write it now; answers its
    /// sequence number, for [`Backlog::stored`].
    pub fn accept_change(&self, change: StoreOp) -> u64 {
        let seq = {
            let mut accepted = self.changes_accepted.lock();
            *accepted += 1;
            self.changes.push(change);
            *accepted
        };
        self.changes.wake();
        seq
    }

    /// Waits until the change numbered `seq` (and every change before it) is in the database,
    /// at most `within`; answers whether it is.
    pub async fn stored(&self, seq: u64, within: Duration) -> bool {
        let mut written = self.changes_written.subscribe();
        tokio::time::timeout(within, written.wait_for(|written| *written >= seq)).await.is_ok_and(|r| r.is_ok())
    }

    /// Wakes the actor: a batch of results is due.
    pub fn wake(&self) {
        self.results.wake();
    }

    /// Makes `waker` the consumer of both queues, and wakes it once.
    fn attach(&self, waker: impl Fn() -> bool + Clone + Send + Sync + 'static) {
        self.results.attach(waker.clone());
        self.changes.attach(waker);
    }

    /// The actor was woken: a push from now on wakes it again.
    fn woken(&self) {
        self.results.woken();
        self.changes.woken();
    }

    /// Whether a write is due: changes wait, or `batch_size` results (or any, when `force`).
    fn due(&self, force: bool, batch_size: usize) -> bool {
        let results = self.results.waiting();
        self.changes.waiting() > 0 || results >= batch_size || (force && results > 0)
    }

    /// Takes the front of the queues for a write: every change, and results up to a write's
    /// worth (`batch_size` or [`MAX_ROWS_PER_WRITE`], the larger). None when nothing waits.
    fn begin_write(&self, batch_size: usize) -> Option<Batch> {
        let results = self.results.take(batch_size.max(MAX_ROWS_PER_WRITE));
        let batch = Batch { changes: self.changes.take(usize::MAX), results };
        if batch.changes.is_empty() && batch.results.is_empty() {
            return None;
        }
        self.stats.lock().write_started = Some(Instant::now());
        Some(batch)
    }

    /// No write is under way any more (it failed, or its actor died): what it covered is back
    /// in the queues, given back by its lease.
    fn abandon_write(&self) {
        self.stats.lock().write_started = None;
    }

    /// The write committed: the changes it wrote and every result it covered leave the queues
    /// (the other changes go back in front, in order); the results the database refused are
    /// dropped for good, logged and counted.
    fn commit(&self, batch: Batch, changes: usize, rejected: &[Rejected]) {
        for refused in rejected {
            if let Some(result) = batch.results.items().get(refused.index) {
                tracing::error!(
                    actor = ACTOR, asset_id = %result.asset_id, timestamp = %result.timestamp,
                    error = %refused.error, "the database refused a probe result: dropped"
                );
            }
        }
        let results = batch.results.len();
        batch.changes.ack_first(changes);
        self.changes_written.send_modify(|written| *written += changes as u64);
        batch.results.ack();
        let mut stats = self.stats.lock();
        stats.written += (results - rejected.len()) as u64;
        stats.rejected += rejected.len() as u64;
        metrics::counter!(names::PERSISTENCE_REJECTED_TOTAL).increment(rejected.len() as u64);
        stats.write_started = None;
        stats.last_commit = Instant::now();
        stats.failing = None;
    }

    fn report_depth(&self) {
        metrics::gauge!(names::PERSISTENCE_QUEUE_DEPTH).set(self.len() as f64);
    }
}

pub struct PersistenceState {
    store: Store,
    services: Arc<Services>,
    settings: PersistenceSettings,
    retention: RetentionSettings,
    backlog: Arc<Backlog>,
    /// This actor's write (or retention step) under way; a write hands back its `Written` if
    /// the actor stopped meanwhile.
    write: Option<AbortOnDrop<Option<PersistenceMsg>>>,
    retry: Backoff,
    retry_at: Option<Instant>,
    /// A timed flush came while the slot was busy (a retention step, a write, a retry wait):
    /// owed, and done as soon as the slot frees, so that a busy slot (retention every second
    /// on a loaded machine) never holds results back past a flush interval.
    flush_owed: bool,
    /// A retention pass waiting for the slot, and how far it got.
    retention_due: Option<RetentionPhase>,
    _flush_timer: AbortOnDrop<()>,
    _retention_timer: AbortOnDrop<()>,
}

/// One step of a retention pass. Cut-offs are computed with checked arithmetic: a retention
/// long enough to reach before the calendar's start simply has nothing to delete.
async fn retention_step(store: Store, phase: RetentionPhase, retention: RetentionSettings) -> Result<Pruned, String> {
    let now = Utc::now();
    let outcome = match phase {
        RetentionPhase::RollUp => store.roll_up_next(crate::store::rollup::hour_of(now)).await.map(Pruned::RolledUp),
        RetentionPhase::Events => match now.checked_sub_signed(retention.events_age()) {
            Some(before) => store.prune_events(before, retention.batch).await.map(Pruned::Events),
            None => Ok(Pruned::Events(0)),
        },
        RetentionPhase::Rollups => {
            // The outbox's deliveries are kept as long as the raw results they were about.
            if let Some(before) = now.checked_sub_signed(retention.events_age()) {
                let deleted = store.prune_notifications(before).await.map_err(|e| e.to_string())?;
                if deleted > 0 {
                    tracing::info!(actor = ACTOR, deleted, "pruned notifications past retention");
                }
            }
            match now.checked_sub_signed(retention.rollups_age()) {
                Some(before) => store.prune_rollups(before).await.map(Pruned::Rollups),
                None => Ok(Pruned::Rollups(0)),
            }
        }
    };
    outcome.map_err(|e| e.to_string())
}

impl PersistenceState {
    /// Uses the slot: a write if one is due, else the next retention step, if any.
    fn flush(&mut self, myself: &ActorRef<PersistenceMsg>, force: bool) {
        if self.write.is_some() || self.retry_at.is_some_and(|at| Instant::now() < at) {
            self.flush_owed |= force;
            return;
        }
        let force = force || std::mem::take(&mut self.flush_owed);
        let batch = if self.backlog.due(force, self.settings.batch_size) {
            self.backlog.begin_write(self.settings.batch_size)
        } else {
            None
        };
        let store = self.store.clone();
        let services = Arc::clone(&self.services);
        let myself = myself.clone();
        if let Some(batch) = batch {
            // The task owns the batch: if the actor dies, the task is aborted and the batch's
            // leases give everything back for the replacement to write.
            self.write = Some(AbortOnDrop(tokio::spawn(async move {
                let write = write_batch(&store, batch.changes.items(), batch.results.items());
                // A panicking write is a failed one: the batch stays queued and is written again.
                let outcome = supervised(&services, ACTOR, TaskKind::Write, write)
                    .await
                    .unwrap_or_else(|panic| WriteOutcome::Failed { error: panic.to_string() });
                match myself.cast(PersistenceMsg::Written(outcome, batch)) {
                    Ok(()) => None,
                    // Stopping: post_stop picks the outcome up from this task instead.
                    Err(MessagingErr::SendErr(message)) => Some(message),
                    Err(_) => None,
                }
            })));
        } else if let Some(phase) = self.retention_due {
            let retention = self.retention;
            self.write = Some(AbortOnDrop(tokio::spawn(async move {
                let step = retention_step(store, phase, retention);
                let outcome = supervised(&services, ACTOR, TaskKind::Retention, step)
                    .await
                    .unwrap_or_else(|panic| Err(panic.to_string()));
                let _ = myself.cast(PersistenceMsg::Pruned(outcome));
                None
            })));
        }
    }

    fn pruned(&mut self, outcome: Result<Pruned, String>) {
        self.write = None;
        self.retention_due = match outcome {
            // One hour per step, so writes get the slot in between.
            Ok(Pruned::RolledUp(Some(hour))) => {
                tracing::debug!(actor = ACTOR, %hour, "hour rolled up");
                Some(RetentionPhase::RollUp)
            }
            Ok(Pruned::RolledUp(None)) => Some(RetentionPhase::Events),
            Ok(Pruned::Events(deleted)) => {
                if deleted > 0 {
                    tracing::info!(actor = ACTOR, deleted, "pruned probe events past retention");
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
                    tracing::info!(actor = ACTOR, deleted, "pruned hourly rollups past retention");
                }
                None
            }
            Err(error) => {
                tracing::warn!(actor = ACTOR, %error, "retention step failed; trying again next round");
                None
            }
        };
    }

    fn written(&mut self, outcome: WriteOutcome, batch: Batch) {
        self.write = None;
        let backlog = &self.backlog;
        // Whether to wait before the next write, and the error if the write failed.
        let (retry, failed) = match outcome {
            WriteOutcome::Committed { changes, rejected, refused_change } => {
                backlog.commit(batch, changes, &rejected);
                let retry = refused_change.is_some();
                if let Some(refused) = &refused_change {
                    tracing::error!(actor = ACTOR, error = %refused, "the database refused a change; it is kept and retried");
                }
                backlog.stats.lock().refused_change = refused_change;
                (retry, None)
            }
            WriteOutcome::Failed { error } => {
                // Everything the batch covered goes back in front, for the retry.
                batch.changes.retry();
                batch.results.retry();
                backlog.abandon_write();
                (true, Some(error))
            }
        };
        if retry {
            let delay = self.retry.next_delay();
            self.retry_at = Some(Instant::now() + delay);
            if let Some(error) = failed {
                tracing::warn!(
                    actor = ACTOR, %error, backlog = backlog.len(),
                    retry_in_ms = delay.as_millis() as u64, "write failed; will retry"
                );
                let mut stats = backlog.stats.lock();
                let since = stats.failing.as_ref().map_or_else(Instant::now, |failing| failing.since);
                stats.failing = Some(WriteFailure { error, since });
            }
        } else {
            self.retry.reset();
            self.retry_at = None;
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
        // A write that was under way when a previous incarnation died is simply done again: its
        // batch gave everything back when the write task was aborted.
        args.backlog.abandon_write();
        // Wakes this incarnation at once: whatever the previous one left is written without
        // waiting for the timer.
        let waker = myself.clone();
        args.backlog.attach(move || waker.cast(PersistenceMsg::Wake).is_ok());
        let flush_timer = AbortOnDrop(myself.send_interval(args.settings.flush_interval(), || PersistenceMsg::Flush));
        let retention_timer = AbortOnDrop(myself.send_interval(args.retention.every(), || PersistenceMsg::Maintain));
        Ok(PersistenceState {
            store: args.store,
            services: args.services,
            settings: args.settings,
            retention: args.retention,
            backlog: args.backlog,
            write: None,
            retry: RETRY,
            retry_at: None,
            flush_owed: false,
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
            PersistenceMsg::Wake => {
                state.backlog.woken();
                state.flush(&myself, false);
            }
            PersistenceMsg::Flush => state.flush(&myself, true),
            PersistenceMsg::Written(outcome, batch) => {
                state.written(outcome, batch);
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
        state.backlog.report_depth();
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
                Ok(Ok(Some(PersistenceMsg::Written(outcome, batch)))) => state.written(outcome, batch),
                // A retention step, or a write that did not finish: its batch (dropped with the
                // task) gave what it covered back.
                _ => state.backlog.abandon_write(),
            }
        }
        let mut backoff = RETRY;
        while Instant::now() < deadline {
            // Nothing left to take (what is still in hand, if anything, is not ours to write).
            let Some(batch) = state.backlog.begin_write(state.settings.batch_size) else { break };
            let write = write_batch(&state.store, batch.changes.items(), batch.results.items());
            let outcome = tokio::time::timeout_at(deadline, write)
                .await
                .unwrap_or_else(|_| WriteOutcome::Failed { error: "deadline reached".into() });
            let failed = !matches!(outcome, WriteOutcome::Committed { refused_change: None, .. });
            state.written(outcome, batch);
            if failed {
                tokio::time::sleep(backoff.next_delay().min(deadline.saturating_duration_since(Instant::now()))).await;
            }
        }
        let stats = state.backlog.stats();
        let lost = stats.queued;
        if lost > 0 {
            tracing::error!(actor = ACTOR, lost, "stopped before the database took everything");
        }
        tracing::info!(
            actor = ACTOR,
            accepted = stats.accepted,
            written = stats.written,
            dropped = stats.dropped,
            rejected = stats.rejected,
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
            mark: None,
            detail: Default::default(),
        }
    }

    /// The results waiting (not under write), by asset id.
    fn ids(backlog: &Backlog) -> Vec<String> {
        backlog.results.with(|queue| queue.iter().map(|r| r.asset_id.clone()).collect())
    }

    fn counts(backlog: &Backlog) -> (u64, u64, u64, u64) {
        let stats = backlog.stats();
        (stats.accepted, stats.written, stats.dropped, stats.rejected)
    }

    fn failing(backlog: &Backlog) {
        backlog.stats.lock().failing = Some(WriteFailure { error: "database is locked".into(), since: Instant::now() });
    }

    #[test]
    fn a_full_buffer_drops_the_oldest_results_and_counts_them() {
        let backlog = Backlog::new(3);
        for n in 0..5 {
            backlog.accept(result(n));
        }
        assert_eq!(ids(&backlog), ["a2", "a3", "a4"]);
        assert_eq!(counts(&backlog), (5, 0, 2, 0));
    }

    #[test]
    fn a_write_takes_a_whole_batch_when_the_batch_size_is_above_the_catch_up_size() {
        let batch_size = MAX_ROWS_PER_WRITE + 3000;
        let backlog = Backlog::new(2 * batch_size);
        for n in 0..batch_size + 10 {
            backlog.accept(result(u32::try_from(n).expect("a few thousand")));
        }
        // Were a write capped below the batch size, a timed flush would write only part of
        // what waits, and at a high rate a whole batch would stay behind for good.
        let batch = backlog.begin_write(batch_size).expect("results wait");
        assert_eq!(batch.results.len(), batch_size);
        assert_eq!(backlog.begin_write(batch_size).map(|rest| rest.results.len()), Some(10), "the rest is next");
        drop(batch);
    }

    #[test]
    fn results_under_write_are_never_dropped_and_leave_only_on_commit() {
        let backlog = Backlog::new(3);
        for n in 0..3 {
            backlog.accept(result(n));
        }
        let batch = backlog.begin_write(1).expect("results wait");
        assert_eq!(batch.results.len(), 3);
        backlog.accept(result(3));
        backlog.accept(result(4));
        // The three being written stay; the newest overflow goes.
        assert_eq!(ids(&backlog), ["a4"]);
        assert_eq!(backlog.len(), 4);
        backlog.commit(batch, 0, &[]);
        assert_eq!(ids(&backlog), ["a4"]);
        assert_eq!(backlog.len(), 1);
        assert_eq!(counts(&backlog), (5, 3, 1, 0));
    }

    #[test]
    fn a_batch_dropped_with_its_write_task_gives_everything_back_in_order() {
        let backlog = Backlog::new(10);
        for n in 0..3 {
            backlog.accept(result(n));
        }
        let batch = backlog.begin_write(1).expect("results wait");
        backlog.accept(result(3));
        drop(batch); // the actor panicked and its write task was aborted
        assert_eq!(ids(&backlog), ["a0", "a1", "a2", "a3"]);
    }

    #[tokio::test(start_paused = true)]
    async fn writes_are_unhealthy_once_nothing_was_written_for_longer_than_the_bound() {
        let stall = Duration::from_secs(3);
        let backlog = Backlog::new(10);
        backlog.accept(result(0));
        let batch = backlog.begin_write(1).expect("a result waits");
        assert_eq!(backlog.write_health(stall), Ok(()));
        tokio::time::advance(Duration::from_secs(4)).await;
        let error = backlog.write_health(stall).expect_err("a write waited too long");
        assert!(error.starts_with("a write has been waiting for the database for 4s"), "{error}");

        // A failed write is reported only once nothing was written for the bound.
        drop(batch);
        backlog.abandon_write();
        failing(&backlog);
        let error = backlog.write_health(stall).expect_err("failing");
        assert!(error.starts_with("writes have failed for 0s and nothing was written for 4s"), "{error}");
        let batch = backlog.begin_write(1).expect("the result is back");
        backlog.commit(batch, 0, &[]);
        assert_eq!(backlog.write_health(stall), Ok(()));
        failing(&backlog);
        assert_eq!(backlog.write_health(stall), Ok(()), "one failure right after a commit is not a stall");

        // A refused change is reported at once.
        backlog.stats.lock().refused_change = Some("opening incident 1 of asset a: refused".into());
        assert!(backlog.write_health(stall).is_err());
    }

    #[test]
    fn refused_results_leave_the_queue_counted_apart_from_the_written_ones() {
        let backlog = Backlog::new(10);
        for n in 0..4 {
            backlog.accept(result(n));
        }
        let batch = backlog.begin_write(1).expect("results wait");
        backlog.commit(batch, 0, &[Rejected { index: 1, error: "CHECK constraint failed".into() }]);
        assert!(backlog.is_empty());
        assert_eq!(counts(&backlog), (4, 3, 0, 1));
    }

    fn close() -> StoreOp {
        StoreOp::Incident(crate::store::IncidentWrite::Close {
            id: Uuid::nil(),
            ended_at: Utc::now(),
            reason: crate::store::CloseReason::Recovered,
        })
    }

    #[test]
    fn a_failed_write_keeps_everything_for_the_retry() {
        let backlog = Backlog::new(10);
        backlog.accept(result(0));
        backlog.accept_change(close());
        let batch = backlog.begin_write(1).expect("a result and a change wait");
        batch.changes.retry();
        batch.results.retry();
        backlog.abandon_write();
        assert_eq!(backlog.len(), 2);
        let batch = backlog.begin_write(1).expect("both are back");
        assert_eq!((batch.changes.len(), batch.results.len()), (1, 1));
    }

    #[test]
    fn a_refused_change_and_the_ones_after_it_stay_queued_in_order() {
        let backlog = Backlog::new(10);
        for _ in 0..3 {
            backlog.accept_change(close());
        }
        let batch = backlog.begin_write(1).expect("changes wait");
        backlog.commit(batch, 1, &[]);
        assert_eq!(backlog.len(), 2);
        assert_eq!(backlog.begin_write(1).map(|batch| batch.changes.len()), Some(2));
    }
}
