//! Whether an asset is degraded: it answers, but slower than `degradedLatencyMs` or against
//! `degradedConditions`. Pure, with time passed in.
//!
//! Rules, chosen so that one slow answer is not an alert:
//! - entering takes `failureThreshold` degraded results in a row, and leaving takes
//!   `successThreshold` clean ones in a row, the asset's own confirmation numbers;
//! - a failed result is neither: it breaks both runs and leaves the verdict as it was (the
//!   up/down machine judges failures);
//! - an asset is only ever announced degraded while it is up: a down asset is down, and one not
//!   yet up waits for its first verdict. A run that reached the threshold meanwhile announces at
//!   the next degraded result once it is up.
//! - degraded opens no incident; it is said once (`DEGRADED`) and its end once (`RECOVERY`).

use chrono::{DateTime, Utc};

use super::health::Thresholds;

/// One result, as degradation reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Passed, within `degradedLatencyMs` and `degradedConditions`.
    Clean,
    /// Passed, but broke `degradedLatencyMs` or one of `degradedConditions`.
    Degraded,
    /// Did not pass (or was not judged: inconclusive).
    Failed,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Degradation {
    /// When the current degradation began (its first degraded result); None while not degraded.
    pub since: Option<DateTime<Utc>>,
    degraded_run: u32,
    clean_run: u32,
    /// When the current run of degraded results began: a degradation starts at its first one.
    run_started: Option<DateTime<Utc>>,
}

/// What a result changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    None,
    /// Confirmed degraded, since the first degraded result of the run.
    Entered {
        since: DateTime<Utc>,
    },
    /// Confirmed clean again after being degraded since `since`.
    Left {
        since: DateTime<Utc>,
    },
}

impl Degradation {
    /// A degradation that was confirmed before statusd restarted: it goes on until confirmed over.
    pub fn resume(since: DateTime<Utc>) -> Degradation {
        Degradation { since: Some(since), ..Degradation::default() }
    }

    pub fn is_degraded(&self) -> bool {
        self.since.is_some()
    }

    /// Takes one result stamped `at`; `up` says whether the up/down machine holds the asset up
    /// after this result.
    pub fn observe(&mut self, verdict: Verdict, up: bool, at: DateTime<Utc>, thresholds: Thresholds) -> Change {
        match verdict {
            Verdict::Degraded => {
                if self.degraded_run == 0 {
                    self.run_started = Some(at);
                }
                self.degraded_run = self.degraded_run.saturating_add(1);
                self.clean_run = 0;
                if self.since.is_some() || !up || self.degraded_run < thresholds.failure {
                    return Change::None;
                }
                let since = self.run_started.unwrap_or(at);
                self.since = Some(since);
                Change::Entered { since }
            }
            Verdict::Clean => {
                self.clean_run = self.clean_run.saturating_add(1);
                self.degraded_run = 0;
                match self.since {
                    Some(since) if self.clean_run >= thresholds.success => {
                        self.since = None;
                        Change::Left { since }
                    }
                    _ => Change::None,
                }
            }
            Verdict::Failed => {
                self.degraded_run = 0;
                self.clean_run = 0;
                Change::None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn at(second: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + TimeDelta::seconds(second)
    }

    /// Runs `results` (`s` slow, `+` clean, `-` failed), the asset up throughout unless a `d`
    /// (down, degraded result) appears; one letter per second.
    fn run(thresholds: Thresholds, results: &str) -> (Degradation, Vec<String>) {
        let mut degradation = Degradation::default();
        let changes = results
            .chars()
            .enumerate()
            .map(|(i, c)| {
                let (verdict, up) = match c {
                    's' => (Verdict::Degraded, true),
                    'd' => (Verdict::Degraded, false),
                    '+' => (Verdict::Clean, true),
                    _ => (Verdict::Failed, true),
                };
                match degradation.observe(verdict, up, at(i as i64), thresholds) {
                    Change::None => ".".to_string(),
                    Change::Entered { since } => format!("in@{}", since.timestamp()),
                    Change::Left { since } => format!("out@{}", since.timestamp()),
                }
            })
            .collect();
        (degradation, changes)
    }

    const DEFAULT: Thresholds = Thresholds { failure: 2, success: 1 };

    #[test]
    fn one_slow_answer_is_not_degraded() {
        let (degradation, changes) = run(DEFAULT, "+s+s+");
        assert_eq!(changes, [".", ".", ".", ".", "."]);
        assert!(!degradation.is_degraded());
    }

    #[test]
    fn the_failure_threshold_of_slow_answers_enters_dated_from_the_first() {
        let (degradation, changes) = run(DEFAULT, "+sss");
        assert_eq!(changes, [".", ".", "in@1", "."]);
        assert_eq!(degradation.since, Some(at(1)));
    }

    #[test]
    fn the_success_threshold_of_clean_answers_leaves() {
        let thresholds = Thresholds { failure: 2, success: 3 };
        let (degradation, changes) = run(thresholds, "ss++s+++");
        assert_eq!(changes, [".", "in@0", ".", ".", ".", ".", ".", "out@0"]);
        assert!(!degradation.is_degraded());
    }

    #[test]
    fn a_failure_breaks_a_run_and_keeps_the_verdict() {
        // Slow, failed, slow: never two slow in a row.
        let (_, changes) = run(DEFAULT, "s-s-s");
        assert_eq!(changes, [".", ".", ".", ".", "."]);
        // Degraded, then failures: still degraded (the outage is the up/down machine's).
        let (degradation, changes) = run(DEFAULT, "ss---+");
        assert_eq!(changes, [".", "in@0", ".", ".", ".", "out@0"]);
        assert!(!degradation.is_degraded());
    }

    #[test]
    fn a_down_asset_is_not_announced_degraded_until_it_is_up() {
        // Slow answers while still down (success threshold not reached): nothing; the first
        // slow answer once up announces it, dated from the start of the run.
        let (degradation, changes) = run(DEFAULT, "ddds");
        assert_eq!(changes, [".", ".", ".", "in@0"]);
        assert!(degradation.is_degraded());
    }

    /// DEGRADED and its RECOVERY follow `onDegraded` under the policy's throttle, per asset and
    /// channel: a second degradation inside the window waits for the window's end, and is
    /// dropped (with no RECOVERY) if it ended meanwhile.
    #[test]
    fn degraded_notifications_are_throttled_per_asset_and_channel() {
        use std::time::Duration;

        use tokio::time::Instant;

        use crate::actors::policy::Dispatcher;
        use crate::config::NotificationPolicy;
        use crate::notify::{Event, Notification};

        let policy = NotificationPolicy {
            on_down: vec!["pager".into()],
            on_degraded: vec!["perf".into()],
            throttle_seconds: 60,
            ..NotificationPolicy::default()
        };
        let mut dispatcher = Dispatcher::new(policy.for_degraded());
        let note = |event, asset: &str| Notification {
            event,
            asset_id: asset.into(),
            asset_name: asset.into(),
            timestamp: at(0),
            details: String::new(),
            incident_id: None,
            group: Vec::new(),
            tier: None,
            since: None,
        };
        let sent = |deliveries: Vec<crate::actors::policy::Delivery>| {
            deliveries
                .into_iter()
                .map(|d| format!("{}:{}:{}", d.channel, d.notification.asset_id, d.notification.event.as_str()))
                .collect::<Vec<_>>()
        };
        let start = Instant::now();
        let second = Duration::from_secs(1);
        assert_eq!(sent(dispatcher.down(note(Event::Degraded, "api"), start)), ["perf:api:DEGRADED"]);
        assert_eq!(sent(dispatcher.down(note(Event::Degraded, "web"), start)), ["perf:web:DEGRADED"], "per asset");
        assert_eq!(sent(dispatcher.recovery(note(Event::Recovery, "api"), start + second)), ["perf:api:RECOVERY"]);
        // Degraded again within the window: held back until it ends, sent if still degraded.
        assert!(dispatcher.down(note(Event::Degraded, "api"), start + 2 * second).is_empty());
        assert_eq!(dispatcher.next_wake(), Some(start + second + 60 * second));
        assert_eq!(sent(dispatcher.wake(start + 61 * second, at(61))), ["perf:api:DEGRADED"]);
        // Held back, then over before the window ended: neither is sent.
        assert_eq!(sent(dispatcher.recovery(note(Event::Recovery, "web"), start + 62 * second)), ["perf:web:RECOVERY"]);
        assert!(dispatcher.down(note(Event::Degraded, "web"), start + 63 * second).is_empty());
        assert!(dispatcher.recovery(note(Event::Recovery, "web"), start + 64 * second).is_empty());
        assert!(dispatcher.wake(start + 200 * second, at(200)).is_empty());
    }

    #[test]
    fn a_resumed_degradation_is_not_announced_again_and_ends_once() {
        let mut degradation = Degradation::resume(at(0));
        assert_eq!(degradation.observe(Verdict::Degraded, true, at(10), DEFAULT), Change::None);
        assert_eq!(degradation.observe(Verdict::Degraded, true, at(11), DEFAULT), Change::None);
        assert_eq!(degradation.observe(Verdict::Clean, true, at(12), DEFAULT), Change::Left { since: at(0) });
        assert_eq!(degradation.observe(Verdict::Clean, true, at(13), DEFAULT), Change::None);
    }
}
