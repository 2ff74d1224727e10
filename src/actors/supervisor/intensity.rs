//! Restart intensity, as in OTP: a child that fails more than `max_restarts` times within
//! `window` is in a crash loop, marked crashed and retried after a growing backoff instead of
//! being restarted at once. Pure: every time is passed in.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::backoff::Backoff;

/// Waits before a crashed child is tried again: 1 s, doubling up to 5 minutes.
const CRASH_BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));

/// OTP's restart intensity: more than `max_restarts` failures within `window` is a crash loop.
#[derive(Debug, Clone, Copy)]
pub struct RestartIntensity {
    pub max_restarts: usize,
    pub window: Duration,
}

/// One child's failure history: its recent failures and its crash backoff.
#[derive(Debug)]
pub(super) struct Restarts {
    /// Failures within the last window, oldest first.
    recent: VecDeque<Instant>,
    backoff: Backoff,
    /// When the child last started running.
    started: Instant,
}

impl Restarts {
    pub(super) fn new(now: Instant) -> Restarts {
        Restarts { recent: VecDeque::new(), backoff: CRASH_BACKOFF, started: now }
    }

    /// The child runs from `now` (started, restarted or retried after its backoff).
    pub(super) fn started(&mut self, now: Instant) {
        self.started = now;
    }

    /// The child failed at `now`: true if that makes a crash loop. A child that had run a
    /// whole window without failing was healthy, so its next crash backoff starts again
    /// from the first (otherwise one crash loop a week would end up waiting 5 minutes).
    pub(super) fn failed(&mut self, now: Instant, intensity: RestartIntensity) -> bool {
        if now.duration_since(self.started) >= intensity.window {
            self.backoff.reset();
        }
        self.recent.push_back(now);
        while self.recent.front().is_some_and(|t| now.duration_since(*t) > intensity.window) {
            self.recent.pop_front();
        }
        self.recent.len() > intensity.max_restarts
    }

    /// How long a crashed child waits before it is tried again; each wait doubles the next.
    pub(super) fn crash_backoff(&mut self) -> Duration {
        self.backoff.next_delay()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);
    const INTENSITY: RestartIntensity = RestartIntensity { max_restarts: 2, window: Duration::from_secs(60) };

    #[test]
    fn more_than_max_restarts_within_the_window_is_a_crash_loop() {
        let start = Instant::now();
        let mut restarts = Restarts::new(start);
        assert!(!restarts.failed(start + SECOND, INTENSITY));
        assert!(!restarts.failed(start + 2 * SECOND, INTENSITY));
        assert!(restarts.failed(start + 3 * SECOND, INTENSITY), "the third failure within a minute");
    }

    #[test]
    fn failures_older_than_the_window_no_longer_count() {
        let start = Instant::now();
        let mut restarts = Restarts::new(start);
        assert!(!restarts.failed(start, INTENSITY));
        assert!(!restarts.failed(start + 30 * SECOND, INTENSITY));
        // The first failure left the window a second ago: two within it, not three.
        assert!(!restarts.failed(start + 61 * SECOND, INTENSITY));
        assert!(restarts.failed(start + 62 * SECOND, INTENSITY));
    }

    #[test]
    fn zero_max_restarts_makes_the_first_failure_a_crash_loop() {
        let start = Instant::now();
        let intensity = RestartIntensity { max_restarts: 0, ..INTENSITY };
        assert!(Restarts::new(start).failed(start + SECOND, intensity));
    }

    #[test]
    fn the_crash_backoff_doubles_from_one_second_up_to_five_minutes() {
        let mut restarts = Restarts::new(Instant::now());
        let waits: Vec<u64> = (0..11).map(|_| restarts.crash_backoff().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    }

    #[test]
    fn the_crash_backoff_starts_over_once_the_child_ran_healthy_for_a_window() {
        let start = Instant::now();
        let mut restarts = Restarts::new(start);
        let mut now = start;
        // A crash loop: each retry fails at once, and the backoff grows.
        for expected in [1, 2, 4] {
            now += SECOND;
            restarts.failed(now, INTENSITY);
            let wait = restarts.crash_backoff();
            assert_eq!(wait, expected * SECOND);
            now += wait;
            restarts.started(now);
        }
        // Failing again before a window has passed keeps the backoff growing.
        now += 59 * SECOND;
        restarts.failed(now, INTENSITY);
        assert_eq!(restarts.crash_backoff(), 8 * SECOND);
        restarts.started(now);
        // A full window of healthy running: the next crash starts over from 1 s.
        now += 60 * SECOND;
        restarts.failed(now, INTENSITY);
        assert_eq!(restarts.crash_backoff(), SECOND);
    }
}
