//! The up/down state machine of one asset: failures are confirmed before crying wolf, and
//! recoveries before calling it over.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use uuid::Uuid;

/// How many results in a row it takes to change the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub failure: u32,
    pub success: u32,
}

/// An outage the asset is in; its id is made here so that the incident can be opened, notified
/// and later closed without waiting for the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenIncident {
    pub id: Uuid,
    /// When it began, as people read time (the first failure's timestamp).
    pub started_at: DateTime<Utc>,
    /// The same moment on the monotonic clock, while this process knows it (not for an outage
    /// read back from the store). How long an outage lasted comes from it, so a wall-clock step
    /// (an NTP correction, a resumed VM) never makes one negative or end before it began.
    pub started: Option<Instant>,
}

/// How an outage ended: when, as people read time, and how long it lasted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// Never before the outage's `started_at`: its start plus the monotonic time it lasted.
    pub ended_at: DateTime<Utc>,
    pub lasted: Duration,
}

impl OpenIncident {
    /// The outage ends now (`at` on the wall clock, `now` on the monotonic one).
    pub fn recovery(&self, at: DateTime<Utc>, now: Instant) -> Recovery {
        let measured = self.started.and_then(|started| {
            let lasted = now.saturating_duration_since(started);
            let ended_at = self.started_at.checked_add_signed(TimeDelta::from_std(lasted).ok()?)?;
            Some(Recovery { ended_at, lasted })
        });
        measured.unwrap_or_else(|| {
            // Only the wall clock is known: never earlier than the start.
            let ended_at = at.max(self.started_at);
            Recovery { ended_at, lasted: (ended_at - self.started_at).to_std().unwrap_or_default() }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Status {
    /// No verdict yet: the first results are still coming in.
    #[default]
    Unknown,
    Up,
    Down(OpenIncident),
}

/// Status as the API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusName {
    Unknown,
    Up,
    Down,
    /// The asset's actor keeps panicking and is waiting out its restart backoff.
    Crashed,
    /// Up, but confirmed slower than `degradedLatencyMs` or against `degradedConditions`.
    Degraded,
    /// Its latest result failed while statusd's own network was lost (every connectivity asset's
    /// latest result failed): nothing is known about the asset itself.
    Inconclusive,
    /// Its state changes too often to report each change: the flap breaker holds one incident
    /// open until the state has held for `flapping.stableSeconds`.
    Flapping,
    /// A maintenance window covers the asset: it is probed, but its state does not move.
    Maintenance,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Health {
    pub status: Status,
    /// When the current status began.
    pub since: Option<DateTime<Utc>>,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
    /// Time of the first result of the current streak, on the wall and the monotonic clock: an
    /// outage starts at its first failure, not at the one that confirmed it.
    streak_started: Option<(DateTime<Utc>, Instant)>,
}

/// What a result changed, for the Incidents actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    None,
    /// The first verdict is up: nothing to tell anyone.
    CameUp,
    WentDown(OpenIncident),
    Recovered(OpenIncident, Recovery),
}

impl Health {
    /// The state of an asset that was down when statusd last stopped: it stays down under the
    /// same incident until it has recovered.
    pub fn resume_down(incident: OpenIncident, thresholds: Thresholds) -> Health {
        Health {
            since: Some(incident.started_at),
            status: Status::Down(incident),
            consecutive_failures: thresholds.failure,
            consecutive_successes: 0,
            streak_started: None,
        }
    }

    pub fn name(&self) -> StatusName {
        match self.status {
            Status::Unknown => StatusName::Unknown,
            Status::Up => StatusName::Up,
            Status::Down(_) => StatusName::Down,
        }
    }

    pub fn open_incident(&self) -> Option<&OpenIncident> {
        match &self.status {
            Status::Down(incident) => Some(incident),
            _ => None,
        }
    }

    /// A maintenance window began: what the results before it counted towards is forgotten, so
    /// that once the window ends, a failure is confirmed from scratch (`failureThreshold` results
    /// after the window) and an outage is dated from a failure after it. The status (and an open
    /// incident) stays as it is.
    pub fn pause(&mut self) {
        self.consecutive_failures = 0;
        self.consecutive_successes = 0;
        self.streak_started = None;
    }

    /// Suspect (failing but not yet confirmed) or down: the asset is probed at its retry interval.
    pub fn is_suspect_or_down(&self) -> bool {
        self.consecutive_failures > 0 || matches!(self.status, Status::Down(_))
    }

    /// Takes one probe result, stamped `at` (wall clock) and observed `now` (monotonic clock),
    /// and says what changed.
    pub fn observe(&mut self, success: bool, at: DateTime<Utc>, now: Instant, thresholds: Thresholds) -> Transition {
        if success {
            if self.consecutive_successes == 0 {
                self.streak_started = Some((at, now));
            }
            self.consecutive_successes = self.consecutive_successes.saturating_add(1);
            self.consecutive_failures = 0;
            if self.consecutive_successes < thresholds.success || self.status == Status::Up {
                return Transition::None;
            }
            self.since = self.streak_started.map(|(at, _)| at);
            match std::mem::replace(&mut self.status, Status::Up) {
                Status::Down(incident) => {
                    let recovery = incident.recovery(at, now);
                    Transition::Recovered(incident, recovery)
                }
                _ => Transition::CameUp,
            }
        } else {
            if self.consecutive_failures == 0 {
                self.streak_started = Some((at, now));
            }
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
            self.consecutive_successes = 0;
            if self.consecutive_failures < thresholds.failure || matches!(self.status, Status::Down(_)) {
                return Transition::None;
            }
            let (started_at, started) = self.streak_started.unwrap_or((at, now));
            let incident = OpenIncident { id: Uuid::now_v7(), started_at, started: Some(started) };
            self.since = Some(started_at);
            self.status = Status::Down(incident.clone());
            Transition::WentDown(incident)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;
    use proptest::prelude::*;

    fn at(second: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + TimeDelta::seconds(second)
    }

    /// The monotonic instant of second `n` of a test, when wall and monotonic clocks agree.
    fn mono(second: i64) -> Instant {
        static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *ORIGIN.get_or_init(Instant::now) + Duration::from_secs(second as u64)
    }

    fn run(thresholds: Thresholds, results: &str) -> (Health, Vec<&'static str>) {
        let mut health = Health::default();
        let transitions = results
            .chars()
            .enumerate()
            .map(|(i, c)| match health.observe(c == '+', at(i as i64), mono(i as i64), thresholds) {
                Transition::None => ".",
                Transition::CameUp => "up",
                Transition::WentDown(_) => "down",
                Transition::Recovered(..) => "recovered",
            })
            .collect();
        (health, transitions)
    }

    const DEFAULT: Thresholds = Thresholds { failure: 2, success: 1 };

    #[test]
    fn one_failure_is_not_an_outage() {
        let (health, transitions) = run(DEFAULT, "+-+-+");
        assert_eq!(transitions, ["up", ".", ".", ".", "."]);
        assert_eq!(health.status, Status::Up);
    }

    #[test]
    fn the_second_failure_in_a_row_opens_the_incident_dated_from_the_first() {
        let (health, transitions) = run(DEFAULT, "+--");
        assert_eq!(transitions, ["up", ".", "down"]);
        let incident = health.open_incident().expect("down");
        assert_eq!(incident.started_at, at(1));
        assert_eq!(health.since, Some(at(1)));
    }

    #[test]
    fn staying_down_does_not_open_another_incident() {
        let (health, transitions) = run(DEFAULT, "+-----");
        assert_eq!(transitions, ["up", ".", "down", ".", ".", "."]);
        assert_eq!(health.consecutive_failures, 5);
    }

    #[test]
    fn recovery_closes_the_same_incident() {
        let mut health = Health::default();
        health.observe(false, at(0), mono(0), DEFAULT);
        let Transition::WentDown(opened) = health.observe(false, at(1), mono(1), DEFAULT) else {
            panic!("expected down")
        };
        let recovery = Recovery { ended_at: at(2), lasted: Duration::from_secs(2) };
        assert_eq!(health.observe(true, at(2), mono(2), DEFAULT), Transition::Recovered(opened, recovery));
        assert_eq!(health.status, Status::Up);
        assert_eq!(health.since, Some(at(2)));
    }

    #[test]
    fn an_asset_failing_from_the_start_goes_down_without_coming_up() {
        let (_, transitions) = run(DEFAULT, "--");
        assert_eq!(transitions, [".", "down"]);
    }

    #[test]
    fn success_threshold_needs_consecutive_successes() {
        let thresholds = Thresholds { failure: 1, success: 3 };
        let (health, transitions) = run(thresholds, "-++-+++");
        assert_eq!(transitions, ["down", ".", ".", ".", ".", ".", "recovered"]);
        assert_eq!(health.since, Some(at(4)));
    }

    #[test]
    fn first_verdict_up_needs_the_success_threshold_too() {
        let (_, transitions) = run(Thresholds { failure: 2, success: 2 }, "+++");
        assert_eq!(transitions, [".", "up", "."]);
    }

    #[test]
    fn a_resumed_outage_keeps_its_incident_and_recovers_once() {
        let incident = OpenIncident { id: Uuid::now_v7(), started_at: at(0), started: None };
        let mut health = Health::resume_down(incident.clone(), DEFAULT);
        assert_eq!(health.observe(false, at(5), mono(5), DEFAULT), Transition::None);
        assert_eq!(health.open_incident(), Some(&incident));
        let recovery = Recovery { ended_at: at(6), lasted: Duration::from_secs(6) };
        assert_eq!(health.observe(true, at(6), mono(6), DEFAULT), Transition::Recovered(incident, recovery));
        assert_eq!(health.observe(true, at(7), mono(7), DEFAULT), Transition::None);
    }

    #[test]
    fn a_pause_forgets_the_streak_but_keeps_the_status_and_its_incident() {
        // Suspect before the window: after it, the failure threshold counts from zero, and the
        // outage is dated from its first failure after the window.
        let mut health = Health::default();
        health.observe(true, at(0), mono(0), DEFAULT);
        health.observe(false, at(1), mono(1), DEFAULT);
        health.pause();
        assert_eq!(health.observe(false, at(10), mono(10), DEFAULT), Transition::None);
        let Transition::WentDown(incident) = health.observe(false, at(11), mono(11), DEFAULT) else {
            panic!("expected down")
        };
        assert_eq!(incident.started_at, at(10));

        // Down before the window: still down, under the same incident, until a recovery.
        health.pause();
        assert_eq!(health.open_incident(), Some(&incident));
        assert_eq!(health.observe(false, at(20), mono(20), DEFAULT), Transition::None);
        assert!(matches!(health.observe(true, at(21), mono(21), DEFAULT), Transition::Recovered(..)));
    }

    #[test]
    fn a_wall_clock_stepped_back_never_ends_an_outage_before_it_began() {
        let mut health = Health::default();
        health.observe(false, at(1000), mono(0), DEFAULT);
        health.observe(false, at(1001), mono(1), DEFAULT);
        // NTP steps the wall clock back an hour; 30 s pass on the monotonic clock.
        let Transition::Recovered(incident, recovery) = health.observe(true, at(1030 - 3600), mono(30), DEFAULT) else {
            panic!("expected a recovery")
        };
        assert_eq!(recovery, Recovery { ended_at: at(1030), lasted: Duration::from_secs(30) });
        assert!(recovery.ended_at >= incident.started_at);

        // An outage read back from the store has no monotonic start: the wall clock, clamped.
        let resumed = OpenIncident { id: Uuid::nil(), started_at: at(1000), started: None };
        assert_eq!(resumed.recovery(at(400), mono(0)), Recovery { ended_at: at(1000), lasted: Duration::ZERO });
    }

    proptest! {
        /// Against a model that only counts the last results: the verdict flips exactly when
        /// the trailing run reaches its threshold, at any point of any sequence.
        #[test]
        fn flips_exactly_at_the_thresholds(
            results in proptest::collection::vec(any::<bool>(), 0..60),
            failure in 1u32..5,
            success in 1u32..5,
        ) {
            let thresholds = Thresholds { failure, success };
            let mut health = Health::default();
            let mut model: Option<bool> = None;
            let (mut run_ok, mut run_fail) = (0u32, 0u32);
            let mut open = 0i32;
            for (i, ok) in results.iter().enumerate() {
                if *ok { run_ok += 1; run_fail = 0 } else { run_fail += 1; run_ok = 0 }
                let before = model;
                if *ok && run_ok >= success { model = Some(true) }
                if !*ok && run_fail >= failure { model = Some(false) }
                let transition = health.observe(*ok, at(i as i64), mono(i as i64), thresholds);
                let expected = match (before, model) {
                    (Some(false), Some(true)) => "recovered",
                    (None, Some(true)) => "up",
                    (b, Some(false)) if b != Some(false) => "down",
                    _ => ".",
                };
                let actual = match transition {
                    Transition::None => ".",
                    Transition::CameUp => "up",
                    Transition::WentDown(_) => { open += 1; "down" }
                    Transition::Recovered(..) => { open -= 1; "recovered" }
                };
                prop_assert_eq!(actual, expected, "at result {}", i);
                prop_assert!((0..=1).contains(&open));
                prop_assert_eq!(health.open_incident().is_some(), open == 1);
            }
        }
    }
}
