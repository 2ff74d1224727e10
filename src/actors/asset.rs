//! Asset actor ("asset:<id>"): owns one asset's schedule and up/down state.
//!
//! The probe never runs inside a handler: a tick spawns it as a task, which waits for a worker
//! slot, probes, and sends the result back as a message. So the actor answers state queries at
//! once even while a probe hangs on its timeout, and a tick that finds the previous probe still
//! running is skipped (and counted) instead of doubling it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use metrics::{Counter, Gauge, Histogram};
use parking_lot::Mutex;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use tokio::time::Instant;
use uuid::Uuid;

use super::degradation::{Change, Degradation, Verdict};
use super::health::{Health, Status, StatusName, Thresholds, Transition};
use super::incidents::{AssetDegraded, AssetDown, AssetRecovered, IncidentEvent};
use super::schedule::{first_tick_offset, next_tick};
use super::task::{TaskKind, supervised};
use super::ticks::TickTarget;
use super::{AbortOnDrop, Services};
use crate::asset::AssetConfig;
use crate::probe::{Mark, ProbeResult, ProbeSpec};
use crate::quorum::LocationState;
use crate::settings::PerAsset;
use crate::telemetry::names;

pub struct Asset;

pub struct AssetArgs {
    pub config: Arc<AssetConfig>,
    pub services: Arc<Services>,
    /// Outlives the actor: the Supervisor hands it to the replacement after a panic.
    pub memory: Arc<Mutex<AssetMemory>>,
}

/// What an asset must not forget when its actor is restarted.
#[derive(Debug, Clone, Default)]
pub struct AssetMemory {
    pub health: Health,
    /// Whether it is degraded, apart from up/down (see `degradation.rs`).
    pub degradation: Degradation,
    pub last_probe: Option<ProbeResult>,
    pub skipped_ticks: u64,
    /// The next tick as last scheduled: a restarted actor keeps its phase instead of
    /// spreading its first tick again.
    pub next_due: Option<Instant>,
    /// A probe was running when the memory was last checkpointed: what the API shows as
    /// `probing`, read from here instead of asking the actor (see `AssetIndex`). A restarted
    /// actor has none running, and says so at its first checkpoint.
    pub probing: bool,
    /// Results recorded, successful and not, since the asset was configured: the per-asset
    /// probe counters of `/metrics` with `[metrics] per_asset = "summary"`, rendered from the
    /// asset index rather than registered with the recorder (see `api/metrics.rs`).
    pub successes: u64,
    pub failures: u64,
}

impl AssetMemory {
    /// The status the API shows: up/down from the health machine, `degraded` while up and
    /// degraded, `inconclusive` while not down and the latest result was judged inconclusive.
    pub fn status(&self) -> StatusName {
        let inconclusive = self.last_probe.as_ref().is_some_and(|p| p.mark == Some(Mark::Inconclusive));
        match self.health.name() {
            StatusName::Up if self.degradation.is_degraded() => StatusName::Degraded,
            StatusName::Up | StatusName::Unknown if inconclusive => StatusName::Inconclusive,
            name => name,
        }
    }
}

pub enum AssetMsg {
    /// Time to probe, if the tick is from the current schedule.
    Tick {
        generation: u64,
    },
    ProbeDone {
        seq: u64,
        result: ProbeResult,
    },
    Snapshot(RpcReplyPort<AssetSnapshot>),
    /// The asset's config was reloaded with changes: keep the state, take the new settings.
    Update(Arc<AssetConfig>),
    /// A push asset was called (`/api/push/{id}`): a result reported from outside.
    Push {
        success: bool,
        message: Option<String>,
    },
    /// Chaos testing: panic inside the handler, as a bug would.
    Panic(String),
}

/// The live state of an asset, as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssetSnapshot {
    pub status: StatusName,
    #[serde(serialize_with = "crate::rfc3339::serialize_option")]
    pub since: Option<DateTime<Utc>>,
    pub last_probe: Option<ProbeResult>,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
    pub open_incident_id: Option<Uuid>,
    /// A probe is running right now.
    pub probing: bool,
    pub skipped_ticks: u64,
}

pub struct AssetState {
    /// "asset:<id>", for log lines.
    actor: String,
    config: Arc<AssetConfig>,
    services: Arc<Services>,
    checkpoint: Arc<Mutex<AssetMemory>>,
    memory: AssetMemory,
    /// The interval in effect: the normal one, or the retry interval while suspect or down.
    interval: Duration,
    next_due: Instant,
    /// Bumped on every reschedule, so that a tick already in the mailbox from an older
    /// schedule is ignored.
    generation: u64,
    /// What the shared timer (`ticks.rs`) sends this actor's ticks to; dropped with the state,
    /// so the ticks of a stopped actor go nowhere.
    ticks: TickTarget,
    probe: Option<(u64, AbortOnDrop<()>)>,
    probe_seq: u64,
    metrics: AssetMetrics,
}

/// Metric handles, resolved once per actor instead of once per probe.
struct AssetMetrics {
    success: Counter,
    failure: Counter,
    duration: Histogram,
    up: Gauge,
    degraded: Gauge,
    skipped: Counter,
}

impl AssetMetrics {
    fn new(config: &AssetConfig, per_asset: PerAsset) -> Self {
        let id = config.id.clone();
        match per_asset {
            PerAsset::Full => {
                // Set by the Incidents actor; registered here (unchanged) so that every asset has it.
                metrics::gauge!(names::ASSET_FLAPPING, "asset" => id.clone()).increment(0.0);
                AssetMetrics {
                    success: metrics::counter!(names::PROBE_TOTAL, "asset" => id.clone(), "result" => "success"),
                    failure: metrics::counter!(names::PROBE_TOTAL, "asset" => id.clone(), "result" => "failure"),
                    duration: metrics::histogram!(names::PROBE_DURATION_SECONDS, "asset" => id.clone()),
                    up: metrics::gauge!(names::ASSET_UP, "asset" => id.clone()),
                    degraded: metrics::gauge!(names::ASSET_DEGRADED, "asset" => id.clone()),
                    skipped: metrics::counter!(names::PROBES_SKIPPED_TOTAL, "asset" => id),
                }
            }
            // Nothing per asset in the recorder: `/metrics` renders up, last latency and the
            // counters from the asset index (api/metrics.rs), a few lines per asset written
            // straight from memory instead of a dozen series each for the recorder to sort
            // and format. One latency histogram per probe type.
            PerAsset::Summary => AssetMetrics {
                success: Counter::noop(),
                failure: Counter::noop(),
                duration: metrics::histogram!(names::PROBE_DURATION_SECONDS, "type" => config.probe.asset_type()),
                up: Gauge::noop(),
                degraded: Gauge::noop(),
                skipped: Counter::noop(),
            },
        }
    }
}

impl AssetState {
    fn thresholds(&self) -> Thresholds {
        Thresholds { failure: self.config.failure_threshold, success: self.config.success_threshold }
    }

    fn wanted_interval(&self) -> Duration {
        if let ProbeSpec::Push(push) = &self.config.probe {
            // A push asset's tick is its deadline: a push is missing once this has passed.
            return push.deadline(self.config.interval_seconds);
        }
        if self.memory.health.is_suspect_or_down() { self.config.retry_interval() } else { self.config.interval() }
    }

    /// A push asset's tick: the deadline passed without a push.
    fn missed_push(&mut self) {
        let waited = self.interval.as_secs();
        self.record(ProbeResult::unmeasured(&self.config.id, false, Some(format!("no push within {waited}s"))));
    }

    fn schedule(&mut self, due: Instant) {
        self.generation += 1;
        self.next_due = due;
        self.memory.next_due = Some(due);
        self.services.ticks.schedule(due, &self.ticks, self.generation);
    }

    fn start_probe(&mut self, myself: &ActorRef<AssetMsg>, due: Instant) {
        self.probe_seq += 1;
        let seq = self.probe_seq;
        let config = Arc::clone(&self.config);
        let services = Arc::clone(&self.services);
        let myself = myself.clone();
        let actor = self.actor.clone();
        let task = tokio::spawn(async move {
            // A closed semaphore means statusd is shutting down: no more probes.
            let Some(_slot) = services.worker_slot().await else {
                return;
            };
            let lag = Instant::now().saturating_duration_since(due);
            services.schedule_lag.record(lag.as_secs_f64());
            services.lateness.started(lag);
            let probe = config.check(&services.probes);
            // A panicking probe still answers: as a failed result, so the schedule goes on.
            let result = supervised(&services, &actor, TaskKind::Probe, probe).await.unwrap_or_else(|panic| {
                ProbeResult::unmeasured(&config.id, false, Some(format!("probe panicked: {}", panic.message)))
            });
            // The actor may have been restarted meanwhile; then this result has no one to go to.
            let _ = myself.cast(AssetMsg::ProbeDone { seq, result });
        });
        self.probe = Some((seq, AbortOnDrop(task)));
    }

    fn record(&mut self, mut result: ProbeResult) {
        let config = &self.config;
        // During a maintenance window the result is kept, marked, and moves nothing: no
        // outage is confirmed, none recovers, nobody is told.
        let in_maintenance = self.services.maintenance.in_maintenance(&config.id, result.timestamp);
        if in_maintenance {
            result.mark = Some(Mark::Maintenance);
        }
        if config.is_connectivity() {
            self.services.connectivity.report(&config.id, result.success);
        } else if !in_maintenance && !result.success && self.services.connectivity.lost() {
            // statusd's own network is gone (see `network.rs`): this says nothing about the asset.
            result.mark = Some(Mark::Inconclusive);
        }
        let inconclusive = result.mark == Some(Mark::Inconclusive);
        let seconds = Duration::from_millis(u64::try_from(result.latency_ms).unwrap_or(0)).as_secs_f64();
        self.metrics.duration.record(seconds);
        if result.success {
            self.metrics.success.increment(1);
            self.memory.successes += 1;
            // DEBUG: at 10,000 probes a second, a line per success would be most of the log.
            // Failures, state changes and recoveries stay at WARN and INFO.
            tracing::debug!(
                actor = %self.actor, asset_id = %config.id, asset_name = %config.name, success = true,
                latency_ms = result.latency_ms, code = result.code,
                "[✓] {} ({}): {}ms", config.name, config.id, result.latency_ms
            );
        } else {
            self.metrics.failure.increment(1);
            self.memory.failures += 1;
            let message = result.message.as_deref().unwrap_or("failed");
            tracing::warn!(
                actor = %self.actor, asset_id = %config.id, asset_name = %config.name, success = false,
                latency_ms = result.latency_ms, code = result.code, error = message,
                "[✗] {} ({}): {}ms: {message}", config.name, config.id, result.latency_ms
            );
        }

        if let Some(expires_at) = result.detail.certificate_expires_at {
            let left = (expires_at - Utc::now()).num_seconds() as f64;
            metrics::gauge!(names::TLS_CERT_EXPIRY_SECONDS, "asset" => config.id.clone()).set(left);
        }
        let thresholds = self.thresholds();
        // An inconclusive failure counts towards nothing: no outage is confirmed on it.
        let transition = if in_maintenance {
            self.memory.health.pause();
            Transition::None
        } else if inconclusive {
            Transition::None
        } else {
            self.memory.health.observe(result.success, result.timestamp, Instant::now(), thresholds)
        };
        let verdict = match (result.success, result.mark) {
            (false, _) => Verdict::Failed,
            (true, Some(Mark::Degraded)) => Verdict::Degraded,
            (true, _) => Verdict::Clean,
        };
        let up = self.memory.health.status == Status::Up;
        let change = if in_maintenance {
            Change::None
        } else {
            self.memory.degradation.observe(verdict, up, result.timestamp, thresholds)
        };
        let details = result.message.clone().unwrap_or_default();
        let at = result.timestamp;
        self.services.directory.persist(result.clone());
        self.memory.last_probe = Some(result);
        // Cluster mode with `locations`: this verdict is one location's; the incidents role's
        // holder combines them and decides (see `quorum.rs`).
        let quorum = self.services.cluster.enabled && config.locations.is_some();
        let locations = &self.services.locations;
        match transition {
            Transition::None => {}
            Transition::CameUp => {
                self.metrics.up.set(1.0);
                tracing::info!(actor = %self.actor, asset_id = %config.id, asset_name = %config.name, "{} is up", config.name);
                if quorum {
                    locations.report(&config.id, LocationState::Up, self.memory.health.since.unwrap_or(at));
                }
            }
            Transition::WentDown(incident) if quorum => {
                self.metrics.up.set(0.0);
                tracing::warn!(actor = %self.actor, asset_id = %config.id, asset_name = %config.name, "{} is down from this location", config.name);
                locations.report(&config.id, LocationState::Down, incident.started_at);
            }
            Transition::Recovered(_, recovery) if quorum => {
                self.metrics.up.set(1.0);
                tracing::info!(actor = %self.actor, asset_id = %config.id, asset_name = %config.name, "{} is up again from this location", config.name);
                locations.report(&config.id, LocationState::Up, self.memory.health.since.unwrap_or(recovery.ended_at));
            }
            Transition::WentDown(incident) => {
                self.metrics.up.set(0.0);
                self.services.directory.incidents(IncidentEvent::Down(AssetDown {
                    asset_id: config.id.clone(),
                    asset_name: config.name.clone(),
                    incident,
                    details: details.clone(),
                }));
            }
            Transition::Recovered(incident, recovery) => {
                self.metrics.up.set(1.0);
                self.services.directory.incidents(IncidentEvent::Recovered(AssetRecovered {
                    asset_id: config.id.clone(),
                    asset_name: config.name.clone(),
                    incident,
                    recovery,
                    details: None,
                }));
            }
        }
        let degraded = |since| AssetDegraded {
            asset_id: config.id.clone(),
            asset_name: config.name.clone(),
            since,
            details: details.clone(),
        };
        match change {
            // Degraded counts as up for the quorum, and one location's slowness is not the
            // asset's: no DEGRADED from each location.
            Change::None | Change::Entered { .. } | Change::Left { .. } if quorum => {}
            Change::None => {}
            Change::Entered { since } => {
                tracing::warn!(actor = %self.actor, asset_id = %config.id, asset_name = %config.name, "{} is degraded: {details}", config.name);
                self.services.directory.incidents(IncidentEvent::Degraded(degraded(since)));
            }
            Change::Left { since } => {
                tracing::info!(actor = %self.actor, asset_id = %config.id, asset_name = %config.name, "{} is no longer degraded", config.name);
                self.services.directory.incidents(IncidentEvent::DegradationEnded(degraded(since)));
            }
        }
        self.metrics.degraded.set(if self.memory.status() == StatusName::Degraded { 1.0 } else { 0.0 });
    }

    fn snapshot(&self) -> AssetSnapshot {
        snapshot_of(&self.memory, &self.config.id, &self.services, self.probe.is_some())
    }

    fn checkpoint(&self) {
        let mut checkpoint = self.checkpoint.lock();
        checkpoint.clone_from(&self.memory);
        checkpoint.probing = self.probe.is_some();
    }
}

/// The live state of an asset from its memory: what the actor answers to `Snapshot`, and what
/// the API reads from the checkpoint without asking the actor (a page of `/api/assets` costs
/// the page, not one message per asset).
pub fn snapshot_of(memory: &AssetMemory, asset_id: &str, services: &Services, probing: bool) -> AssetSnapshot {
    let health = &memory.health;
    let status = if services.maintenance.in_maintenance(asset_id, Utc::now()) {
        StatusName::Maintenance
    } else {
        memory.status()
    };
    let mut snapshot = AssetSnapshot {
        status,
        since: if status == StatusName::Degraded { memory.degradation.since } else { health.since },
        last_probe: memory.last_probe.clone(),
        consecutive_failures: health.consecutive_failures,
        consecutive_successes: health.consecutive_successes,
        open_incident_id: health.open_incident().map(|i| i.id),
        probing,
        skipped_ticks: memory.skipped_ticks,
    };
    // The flap breaker keeps one incident open in place of the ones this actor reports.
    if let Some(held) = services.flaps.get(asset_id) {
        if held.flapping {
            snapshot.status = StatusName::Flapping;
        }
        if matches!(snapshot.status, StatusName::Flapping | StatusName::Down) {
            snapshot.open_incident_id = Some(held.incident);
        }
    }
    snapshot
}

impl Actor for Asset {
    type Msg = AssetMsg;
    type State = AssetState;
    type Arguments = AssetArgs;

    async fn pre_start(&self, myself: ActorRef<AssetMsg>, args: AssetArgs) -> Result<AssetState, ActorProcessingErr> {
        let memory = {
            let mut shared = args.memory.lock();
            // The probe of the actor before a restart died with it.
            shared.probing = false;
            shared.clone()
        };
        let metrics = AssetMetrics::new(&args.config, args.services.per_asset);
        match memory.health.name() {
            StatusName::Up => metrics.up.set(1.0),
            StatusName::Down => metrics.up.set(0.0),
            _ => {}
        }
        metrics.degraded.set(if memory.status() == StatusName::Degraded { 1.0 } else { 0.0 });
        let now = Instant::now();
        let mut state = AssetState {
            actor: format!("asset:{}", args.config.id),
            config: args.config,
            services: args.services,
            checkpoint: args.memory,
            memory,
            interval: Duration::ZERO,
            next_due: now,
            generation: 0,
            ticks: Arc::new(myself.clone()),
            probe: None,
            probe_seq: 0,
            metrics,
        };
        state.interval = state.wanted_interval();
        let first = match state.memory.next_due {
            Some(due) => due.max(now),
            // A push asset gives its caller a whole deadline after start.
            None if matches!(state.config.probe, ProbeSpec::Push(_)) => now + state.interval,
            None => now + first_tick_offset(&state.config.id, state.interval),
        };
        state.schedule(first);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<AssetMsg>,
        message: AssetMsg,
        state: &mut AssetState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            AssetMsg::Tick { generation } if generation == state.generation => {
                let due = state.next_due;
                if state.probe.is_some() {
                    state.memory.skipped_ticks += 1;
                    state.metrics.skipped.increment(1);
                    state.services.lateness.skipped();
                    tracing::debug!(actor = %state.actor, asset_id = %state.config.id, "previous probe still running: tick skipped");
                } else if matches!(state.config.probe, ProbeSpec::Push(_)) {
                    state.missed_push();
                } else {
                    state.start_probe(&myself, due);
                }
                let next = next_tick(due, state.interval, Instant::now());
                state.schedule(next);
                state.checkpoint();
            }
            AssetMsg::Tick { .. } => {}
            AssetMsg::ProbeDone { seq, result } => {
                let started = match &state.probe {
                    Some((current, _)) if *current == seq => Instant::now(),
                    _ => return Ok(()),
                };
                state.probe = None;
                state.record(result);
                let wanted = state.wanted_interval();
                if wanted != state.interval {
                    // Suspect: look again soon. Recovered: back to the normal pace. Measured
                    // from now, so the switch never fires a burst.
                    state.interval = wanted;
                    state.schedule(started + wanted);
                }
                state.checkpoint();
            }
            AssetMsg::Snapshot(reply) => {
                let _ = reply.send(state.snapshot());
            }
            AssetMsg::Update(config) => {
                let previous = state.interval;
                state.config = config;
                let wanted = state.wanted_interval();
                if wanted != previous {
                    // Keep the phase: the next probe comes one new interval after the last tick,
                    // never in the past, so a shorter interval probes once now, not in a burst.
                    let last_tick = state.next_due.checked_sub(previous).unwrap_or(state.next_due);
                    state.interval = wanted;
                    state.schedule((last_tick + wanted).max(Instant::now()));
                }
                tracing::info!(actor = %state.actor, asset_id = %state.config.id, "asset settings updated");
                state.checkpoint();
            }
            AssetMsg::Push { success, message } => {
                let message = message.or_else(|| Some("pushed down".into()));
                state.record(ProbeResult::unmeasured(&state.config.id, success, message));
                // The next push is due one deadline from this one.
                state.interval = state.wanted_interval();
                state.schedule(Instant::now() + state.interval);
                state.checkpoint();
            }
            AssetMsg::Panic(reason) => panic!("{reason}"),
        }
        Ok(())
    }
}

/// The timing rules in virtual time (`start_paused`): the clock only moves when every task
/// waits, so each check lands exactly where it is aimed, in milliseconds and whatever the
/// machine's load. Probes never get a worker slot (there are none), so a probe runs until the
/// test finishes it with the result it wants, and nothing touches the network.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::testing::{http_asset as http, services};
    use serde_json::json;

    const SECOND: Duration = Duration::from_secs(1);
    /// Checks are aimed this far before or after an instant the actor acts at, never at it:
    /// just past the timer's grid step, by which a tick may come late (`ticks.rs`).
    const JUST: Duration = crate::actors::ticks::STEP.saturating_add(Duration::from_millis(1));

    struct Running {
        actor: ActorRef<AssetMsg>,
        services: Arc<Services>,
        memory: Arc<Mutex<AssetMemory>>,
        id: String,
    }

    async fn spawn(config: Arc<AssetConfig>, memory: Arc<Mutex<AssetMemory>>) -> Running {
        let services = services();
        let id = config.id.clone();
        let args = AssetArgs { config, services: Arc::clone(&services), memory: Arc::clone(&memory) };
        let (actor, _) = Actor::spawn(None, Asset, args).await.expect("spawned");
        Running { actor, services, memory, id }
    }

    impl Running {
        async fn snapshot(&self) -> AssetSnapshot {
            ractor::call!(self.actor, AssetMsg::Snapshot).expect("an answer")
        }

        /// Whether a probe runs at `at` (virtual time).
        async fn probing_at(&self, at: Instant) -> bool {
            tokio::time::sleep_until(at).await;
            let probing = self.snapshot().await.probing;
            // Never two at once, whatever the ticks.
            assert_eq!(self.services.probes_waiting(), usize::from(probing));
            probing
        }

        /// Ends probe number `seq` (they are numbered from 1) with the given outcome.
        async fn finish(&self, seq: u64, success: bool) {
            let message = (!success).then(|| "refused".to_string());
            let result = ProbeResult::unmeasured(&self.id, success, message);
            self.actor.cast(AssetMsg::ProbeDone { seq, result }).expect("sent");
            assert!(!self.snapshot().await.probing, "probe {seq} was the one running");
        }

        /// Results recorded so far (probes finished, pushes, missed pushes).
        fn recorded(&self) -> usize {
            self.services.directory.backlog().len()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_tick_is_spread_and_the_next_ones_keep_the_interval() {
        let start = Instant::now();
        let config = http("spread", json!({"intervalSeconds": 10}));
        let first = start + first_tick_offset("spread", 10 * SECOND);
        let asset = spawn(config, Arc::default()).await;
        assert!(!asset.probing_at(first - JUST).await);
        assert!(asset.probing_at(first + JUST).await);
        asset.finish(1, true).await;
        assert!(!asset.probing_at(first + 10 * SECOND - JUST).await);
        assert!(asset.probing_at(first + 10 * SECOND + JUST).await);
        assert_eq!(asset.memory.lock().next_due, Some(first + 20 * SECOND), "the phase is kept for a restart");
    }

    #[tokio::test(start_paused = true)]
    async fn a_tick_that_finds_the_probe_still_running_is_skipped_and_counted() {
        let start = Instant::now();
        let first = start + first_tick_offset("slow", 10 * SECOND);
        let asset = spawn(http("slow", json!({"intervalSeconds": 10})), Arc::default()).await;
        assert!(asset.probing_at(first + JUST).await);
        // The probe hangs for three more ticks: each is skipped, none starts a second probe.
        assert!(asset.probing_at(first + 35 * SECOND).await);
        assert_eq!(asset.snapshot().await.skipped_ticks, 3);
        asset.finish(1, true).await;
        // The schedule goes on on its grid: the next tick probes again.
        assert!(!asset.probing_at(first + 40 * SECOND - JUST).await);
        assert!(asset.probing_at(first + 40 * SECOND + JUST).await);
        assert_eq!(asset.snapshot().await.skipped_ticks, 3);
        assert_eq!(asset.memory.lock().skipped_ticks, 3, "kept for a restart");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_probes_again_at_the_retry_interval_and_a_recovery_returns_to_the_interval() {
        let start = Instant::now();
        let first = start + first_tick_offset("flaky", 60 * SECOND);
        let settings = json!({"intervalSeconds": 60, "retryIntervalSeconds": 5});
        let asset = spawn(http("flaky", settings), Arc::default()).await;
        assert!(asset.probing_at(first + JUST).await);
        // Fails two seconds in: suspect, so the next probe comes one retry interval later.
        tokio::time::sleep_until(first + 2 * SECOND).await;
        asset.finish(1, false).await;
        let failed = first + 2 * SECOND;
        assert!(!asset.probing_at(failed + 5 * SECOND - JUST).await);
        assert!(asset.probing_at(failed + 5 * SECOND + JUST).await);
        // Fails again: down (two failures), still at the retry interval.
        asset.finish(2, false).await;
        let down = failed + 5 * SECOND + JUST;
        assert_eq!(asset.snapshot().await.status, StatusName::Down);
        assert!(asset.probing_at(down + 5 * SECOND + JUST).await);
        // Recovers: back to the normal interval, measured from the recovery, with no burst.
        asset.finish(3, true).await;
        let up = down + 5 * SECOND + JUST;
        assert_eq!(asset.snapshot().await.status, StatusName::Up);
        assert!(!asset.probing_at(up + 60 * SECOND - JUST).await);
        assert!(asset.probing_at(up + 60 * SECOND + JUST).await);
        assert_eq!(asset.recorded(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn an_update_keeps_the_phase_of_the_schedule() {
        let start = Instant::now();
        let first = start + first_tick_offset("phased", 60 * SECOND);
        let asset = spawn(http("phased", json!({"intervalSeconds": 60})), Arc::default()).await;
        assert!(asset.probing_at(first + JUST).await);
        asset.finish(1, true).await;

        // 20 s after the tick, the interval becomes 30 s: the next probe is 30 s after the
        // last tick, not 30 s after the edit.
        tokio::time::sleep_until(first + 20 * SECOND).await;
        asset.actor.cast(AssetMsg::Update(http("phased", json!({"intervalSeconds": 30})))).expect("sent");
        assert!(!asset.probing_at(first + 30 * SECOND - JUST).await);
        assert!(asset.probing_at(first + 30 * SECOND + JUST).await);
        asset.finish(2, true).await;

        // 25 s after that tick, 10 s: one interval after the last tick is already past, so
        // it probes once at once, then every 10 s; no burst for the ticks it "missed".
        let tick = first + 30 * SECOND;
        tokio::time::sleep_until(tick + 25 * SECOND).await;
        asset.actor.cast(AssetMsg::Update(http("phased", json!({"intervalSeconds": 10})))).expect("sent");
        assert!(asset.probing_at(tick + 25 * SECOND + JUST).await);
        asset.finish(3, true).await;
        assert!(!asset.probing_at(tick + 35 * SECOND - JUST).await);
        assert!(asset.probing_at(tick + 35 * SECOND + JUST).await);
        assert_eq!(asset.snapshot().await.skipped_ticks, 0);

        // A change that leaves the interval alone leaves the schedule alone.
        asset.finish(4, true).await;
        asset
            .actor
            .cast(AssetMsg::Update(http("phased", json!({"intervalSeconds": 10, "timeoutSeconds": 5}))))
            .expect("sent");
        assert!(!asset.probing_at(tick + 45 * SECOND - JUST).await);
        assert!(asset.probing_at(tick + 45 * SECOND + JUST).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_restarted_actor_keeps_its_phase() {
        let start = Instant::now();
        let first = start + first_tick_offset("restarted", 60 * SECOND);
        let memory = Arc::default();
        let asset = spawn(http("restarted", json!({"intervalSeconds": 60})), Arc::clone(&memory)).await;
        assert!(asset.probing_at(first + JUST).await);
        asset.finish(1, true).await;
        asset.actor.stop(None);
        // A replacement 10 s later probes on the old grid, not at a new spread offset.
        tokio::time::sleep_until(first + 10 * SECOND).await;
        let again = spawn(http("restarted", json!({"intervalSeconds": 60})), memory).await;
        assert!(!again.probing_at(first + 60 * SECOND - JUST).await);
        assert!(again.probing_at(first + 60 * SECOND + JUST).await);
    }

    /// Events handed to the Incidents actor so far, by kind.
    fn told(services: &Services) -> Vec<&'static str> {
        services.directory.incidents_inbox().with(|queue| {
            queue
                .iter()
                .map(|event| match event {
                    IncidentEvent::Down(_) => "down",
                    IncidentEvent::Recovered(_) => "recovered",
                    IncidentEvent::Degraded(_) => "degraded",
                    IncidentEvent::DegradationEnded(_) => "degradation-ended",
                    _ => "other",
                })
                .collect()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn while_every_connectivity_asset_failed_failures_are_inconclusive_and_confirm_nothing() {
        let asset = spawn(http("api", json!({"intervalSeconds": 1, "retryIntervalSeconds": 1})), Arc::default()).await;
        asset.services.connectivity.set_members(["gateway"]);
        asset.services.connectivity.report("gateway", false);
        for seq in 1..=3 {
            tokio::time::sleep(2 * SECOND).await;
            asset.finish(seq, false).await;
        }
        let snapshot = asset.snapshot().await;
        assert_eq!(snapshot.status, StatusName::Inconclusive);
        assert_eq!(snapshot.consecutive_failures, 0, "inconclusive failures count towards nothing");
        assert_eq!(snapshot.last_probe.and_then(|p| p.mark), Some(Mark::Inconclusive));
        assert!(told(&asset.services).is_empty());
        assert_eq!(asset.recorded(), 3, "stored all the same");

        // The gateway answers again: failures are judged again and confirm an outage.
        asset.services.connectivity.report("gateway", true);
        for seq in 4..=5 {
            tokio::time::sleep(2 * SECOND).await;
            asset.finish(seq, false).await;
        }
        assert_eq!(asset.snapshot().await.status, StatusName::Down);
        assert_eq!(told(&asset.services), ["down"]);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_answers_confirm_degraded_and_clean_ones_end_it() {
        let asset = spawn(http("api", json!({"intervalSeconds": 1, "degradedLatencyMs": 100})), Arc::default()).await;
        let answer = |seq: u64, slow: bool| {
            let mut result = ProbeResult::unmeasured("api", true, None);
            result.mark = slow.then_some(Mark::Degraded);
            asset.actor.cast(AssetMsg::ProbeDone { seq, result }).expect("sent");
        };
        for (seq, slow) in [(1, false), (2, true)] {
            tokio::time::sleep(2 * SECOND).await;
            answer(seq, slow);
        }
        assert_eq!(asset.snapshot().await.status, StatusName::Up, "one slow answer is not degraded");
        tokio::time::sleep(2 * SECOND).await;
        answer(3, true);
        let snapshot = asset.snapshot().await;
        assert_eq!(snapshot.status, StatusName::Degraded);
        assert_eq!(snapshot.open_incident_id, None);
        assert!(asset.memory.lock().degradation.is_degraded(), "kept for a restart of the actor");
        tokio::time::sleep(2 * SECOND).await;
        answer(4, false);
        assert_eq!(asset.snapshot().await.status, StatusName::Up);
        assert_eq!(told(&asset.services), ["degraded", "degradation-ended"]);
    }

    #[tokio::test(start_paused = true)]
    async fn in_a_maintenance_window_results_are_kept_marked_and_move_nothing() {
        let start = Instant::now();
        let config = http("fixing", json!({"intervalSeconds": 10, "retryIntervalSeconds": 10}));
        let first = start + first_tick_offset("fixing", 10 * SECOND);
        let asset = spawn(Arc::clone(&config), Arc::default()).await;
        let now = Utc::now();
        let hour = chrono::TimeDelta::hours(1);
        let window = json!({"id": "fix", "assets": ["fixing"], "start": now - hour, "end": now + hour});
        let window = crate::maintenance::read_stored(&window.to_string()).expect("a window");
        let manifest = |maintenance| crate::config::Manifest { assets: vec![Arc::clone(&config)], maintenance };
        asset.services.maintenance.configure(&manifest(vec![window]));

        // Three failures, where two confirm an outage: kept, marked, and nobody is told.
        for seq in 1..=3u32 {
            assert!(asset.probing_at(first + (seq - 1) * 10 * SECOND + JUST).await);
            asset.finish(u64::from(seq), false).await;
        }
        let snapshot = asset.snapshot().await;
        assert_eq!(snapshot.status, StatusName::Maintenance);
        assert_eq!((snapshot.open_incident_id, snapshot.consecutive_failures), (None, 0));
        assert_eq!(snapshot.last_probe.and_then(|p| p.mark), Some(Mark::Maintenance));
        assert_eq!(asset.recorded(), 3);
        assert!(asset.services.directory.incidents_inbox().is_empty(), "no outage reported");

        // The window is taken away: the outage is confirmed from scratch, two failures.
        asset.services.maintenance.configure(&manifest(Vec::new()));
        assert!(asset.probing_at(first + 30 * SECOND + JUST).await);
        asset.finish(4, false).await;
        assert!(asset.services.directory.incidents_inbox().is_empty(), "one failure after the window");
        assert!(asset.probing_at(first + 40 * SECOND + JUST).await);
        asset.finish(5, false).await;
        let snapshot = asset.snapshot().await;
        assert_eq!(snapshot.status, StatusName::Down);
        assert_eq!(snapshot.last_probe.and_then(|p| p.mark), None);
        assert_eq!(asset.services.directory.incidents_inbox().len(), 1, "the DOWN");
    }

    #[tokio::test(start_paused = true)]
    async fn a_push_asset_is_down_once_a_deadline_passes_without_a_push() {
        let start = Instant::now();
        let push = json!({"id": "cron", "assetType": "push", "token": "0123456789abcdef",
                          "intervalSeconds": 10, "graceSeconds": 5, "failureThreshold": 1});
        let mut config: AssetConfig = serde_json::from_value(push).expect("a push asset");
        config.name = config.id.clone();
        let asset = spawn(Arc::new(config), Arc::default()).await;
        // A whole deadline (interval + grace) after start, not a spread offset.
        tokio::time::sleep_until(start + 15 * SECOND - JUST).await;
        assert_eq!(asset.recorded(), 0);
        asset.actor.cast(AssetMsg::Push { success: true, message: None }).expect("sent");
        tokio::time::sleep_until(start + 15 * SECOND + JUST).await;
        let snapshot = asset.snapshot().await;
        assert_eq!((snapshot.status, asset.recorded()), (StatusName::Up, 1), "a push moves the deadline");

        // Silence: down when the deadline after the last push passes, and once per deadline.
        let pushed = start + 15 * SECOND - JUST;
        tokio::time::sleep_until(pushed + 15 * SECOND - JUST).await;
        assert_eq!(asset.snapshot().await.status, StatusName::Up);
        tokio::time::sleep_until(pushed + 15 * SECOND + JUST).await;
        let snapshot = asset.snapshot().await;
        assert_eq!(snapshot.status, StatusName::Down);
        let message = snapshot.last_probe.and_then(|p| p.message).unwrap_or_default();
        assert_eq!(message, "no push within 15s");
        tokio::time::sleep_until(pushed + 30 * SECOND + JUST).await;
        assert_eq!(asset.recorded(), 3);
        assert!(!asset.snapshot().await.probing, "a push asset never probes");
    }
}
