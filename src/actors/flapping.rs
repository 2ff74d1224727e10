//! The flap breaker: an asset whose confirmed state changes too often is reported once as
//! flapping instead of once per change, as Nagios' flap detection and Alertmanager's
//! inhibition spare people a stream of DOWN/RECOVERY pairs.
//!
//! Rules (`notificationPolicy.flapping`): an asset whose confirmed state changed more than
//! `maxTransitions` times within the last `windowSeconds` is flapping; the change that makes it
//! so trips the breaker. While it flaps, its changes are absorbed: no incident opens or closes
//! and nothing is sent. Once its state has held for `stableSeconds`, it settles, up or down,
//! and the Incidents actor announces the outcome once.
//!
//! Pure logic with time passed in. The memory is persistent (`imbl`), so the Incidents actor's
//! checkpoint after each event stays O(1); each asset keeps at most `maxTransitions + 1`
//! changes, and settling is found through an index ordered by the last change, so a wake
//! touches only what settles.

use imbl::{HashMap, OrdSet, Vector};
use tokio::time::Instant;

use crate::config::Flapping;

/// What the breaker makes of a confirmed change of state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlapVerdict {
    /// Not flapping: the change opens or closes an incident as usual.
    Normal,
    /// This change made the asset flapping.
    Tripped,
    /// The asset is flapping: the change is recorded and otherwise ignored.
    Absorbed,
}

/// An asset that was flapping and whose state has now held for `stableSeconds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub asset_id: String,
    pub up: bool,
}

#[derive(Debug, Clone, Default)]
struct AssetFlaps {
    /// Recent confirmed changes, oldest first; only those inside the window matter.
    changes: Vector<Instant>,
    /// While flapping: the last change and the state it left the asset in.
    flapping: Option<(Instant, bool)>,
}

/// Recent changes of every asset, and which ones are flapping. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct FlapBreaker {
    assets: HashMap<String, AssetFlaps>,
    /// Flapping assets by their last change: the first to settle first.
    quiet_since: OrdSet<(Instant, String)>,
}

impl FlapBreaker {
    /// Records a confirmed change of `asset_id` to `up` at `now` and says what it means.
    /// Without a rule nothing ever flaps (and nothing is recorded).
    pub fn change(&mut self, asset_id: &str, up: bool, now: Instant, rule: Option<Flapping>) -> FlapVerdict {
        let Some(rule) = rule else { return FlapVerdict::Normal };
        let flaps = self.assets.entry(asset_id.to_string()).or_default();
        if let Some((last, _)) = flaps.flapping {
            self.quiet_since.remove(&(last, asset_id.to_string()));
            flaps.flapping = Some((now, up));
            self.quiet_since.insert((now, asset_id.to_string()));
            return FlapVerdict::Absorbed;
        }
        flaps.changes.push_back(now);
        while flaps.changes.front().is_some_and(|first| now.saturating_duration_since(*first) >= rule.window()) {
            flaps.changes.pop_front();
        }
        if flaps.changes.len() > rule.max_transitions() {
            flaps.changes.clear();
            flaps.flapping = Some((now, up));
            self.quiet_since.insert((now, asset_id.to_string()));
            return FlapVerdict::Tripped;
        }
        FlapVerdict::Normal
    }

    /// The assets whose state has held for `stableSeconds` by `now`: no longer flapping.
    /// Without a rule (it was removed by a reload), every flapping asset settles at once.
    pub fn wake(&mut self, now: Instant, rule: Option<Flapping>) -> Vec<Settled> {
        let mut settled = Vec::new();
        while let Some((since, asset_id)) = self.quiet_since.get_min().cloned() {
            if rule.is_some_and(|rule| since.checked_add(rule.stable()).is_none_or(|due| due > now)) {
                break;
            }
            self.quiet_since.remove_min();
            if let Some(flaps) = self.assets.get_mut(&asset_id)
                && let Some((_, up)) = flaps.flapping.take()
            {
                settled.push(Settled { asset_id, up });
            }
        }
        settled
    }

    /// When the next flapping asset settles if its state holds.
    pub fn next_wake(&self, rule: Option<Flapping>) -> Option<Instant> {
        let (since, _) = self.quiet_since.get_min()?;
        match rule {
            Some(rule) => since.checked_add(rule.stable()),
            None => Some(*since),
        }
    }

    pub fn is_flapping(&self, asset_id: &str) -> bool {
        self.assets.get(asset_id).is_some_and(|flaps| flaps.flapping.is_some())
    }

    /// The asset left the config.
    pub fn forget(&mut self, asset_id: &str) {
        if let Some(AssetFlaps { flapping: Some((since, _)), .. }) = self.assets.remove(asset_id) {
            self.quiet_since.remove(&(since, asset_id.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn rule() -> Option<Flapping> {
        Some(Flapping { window_seconds: 600, max_transitions: 4, stable_seconds: 300 })
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// Changes `count` times, one every `every`, starting down; returns the verdicts.
    fn flap(breaker: &mut FlapBreaker, t0: Instant, count: u64, every: Duration) -> Vec<FlapVerdict> {
        (0..count).map(|i| breaker.change("api", i % 2 == 1, t0 + every * i as u32, rule())).collect()
    }

    #[test]
    fn more_than_max_transitions_within_the_window_trips_on_the_one_too_many() {
        let mut breaker = FlapBreaker::default();
        let t0 = Instant::now();
        let verdicts = flap(&mut breaker, t0, 7, secs(60));
        use FlapVerdict::*;
        assert_eq!(verdicts, [Normal, Normal, Normal, Normal, Tripped, Absorbed, Absorbed]);
        assert!(breaker.is_flapping("api"));
        assert!(!breaker.is_flapping("web"));
    }

    #[test]
    fn changes_spread_wider_than_the_window_never_trip() {
        let mut breaker = FlapBreaker::default();
        let t0 = Instant::now();
        // Five changes 150 s apart: the first has left the 600 s window when the fifth comes.
        let verdicts = flap(&mut breaker, t0, 20, secs(150));
        assert!(verdicts.iter().all(|v| *v == FlapVerdict::Normal), "{verdicts:?}");
        // 149 s apart, five fit in 596 s: the fifth trips.
        let mut breaker = FlapBreaker::default();
        assert_eq!(flap(&mut breaker, t0, 5, secs(149))[4], FlapVerdict::Tripped);
    }

    #[test]
    fn it_settles_once_the_state_held_for_stable_seconds_and_reports_that_state() {
        let mut breaker = FlapBreaker::default();
        let t0 = Instant::now();
        flap(&mut breaker, t0, 6, secs(1)); // ends up at t0+5, up (the sixth change is i = 5)
        let last = t0 + secs(5);
        assert_eq!(breaker.next_wake(rule()), Some(last + secs(300)));
        assert!(breaker.wake(last + secs(299), rule()).is_empty());
        // Another change restarts the stable time.
        assert_eq!(breaker.change("api", false, last + secs(299), rule()), FlapVerdict::Absorbed);
        assert!(breaker.wake(last + secs(300), rule()).is_empty());
        let settled = breaker.wake(last + secs(599), rule());
        assert_eq!(settled, [Settled { asset_id: "api".into(), up: false }]);
        assert!(!breaker.is_flapping("api"));
        assert_eq!(breaker.next_wake(rule()), None);
        // Settled, it starts counting afresh: four more changes are fine.
        let verdicts = flap(&mut breaker, last + secs(700), 4, secs(1));
        assert!(verdicts.iter().all(|v| *v == FlapVerdict::Normal), "{verdicts:?}");
    }

    #[test]
    fn without_a_rule_nothing_flaps_and_a_removed_rule_settles_everything() {
        let mut breaker = FlapBreaker::default();
        let t0 = Instant::now();
        for i in 0..20 {
            assert_eq!(breaker.change("api", i % 2 == 0, t0 + secs(i), None), FlapVerdict::Normal);
        }
        flap(&mut breaker, t0, 5, secs(1));
        assert!(breaker.is_flapping("api"));
        assert_eq!(breaker.next_wake(None), Some(t0 + secs(4)));
        assert_eq!(breaker.wake(t0 + secs(5), None), [Settled { asset_id: "api".into(), up: false }]);
    }

    #[test]
    fn assets_settle_in_the_order_they_went_quiet() {
        let mut breaker = FlapBreaker::default();
        let t0 = Instant::now();
        for (asset, start) in [("b", 0), ("a", 10)] {
            for i in 0..5 {
                breaker.change(asset, i % 2 == 1, t0 + secs(start + i), rule());
            }
        }
        assert!(breaker.is_flapping("a") && breaker.is_flapping("b"));
        let settled: Vec<String> = breaker.wake(t0 + secs(400), rule()).into_iter().map(|s| s.asset_id).collect();
        assert_eq!(settled, ["b", "a"]);
    }

    #[test]
    fn a_removed_asset_never_settles() {
        let mut breaker = FlapBreaker::default();
        let t0 = Instant::now();
        flap(&mut breaker, t0, 5, secs(1));
        breaker.forget("api");
        assert_eq!(breaker.next_wake(rule()), None);
        assert!(breaker.wake(t0 + secs(1000), rule()).is_empty());
    }
}
