//! The one retry policy: exponential backoff with a cap and optional jitter, used wherever
//! statusd waits before trying again (opening the database, a failed write, a failed delivery,
//! a crashed actor).
//!
//! Written here rather than taken from a crate: the policies statusd had want a jitter as a
//! fraction of each wait (±20 % for deliveries) and a `reset()` after success, and a small
//! pure type keeps every caller's timing unit-tested without sleeping.

use std::time::Duration;

/// Waits of `first`, `first × factor`, … up to `max`, each spread by ±`jitter` (a fraction:
/// 0.2 for ±20 %) so that callers failing together do not retry in lockstep.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    factor: u32,
    jitter: f64,
    /// The wait `next_delay()` hands out, before jitter.
    current: Duration,
}

impl Backoff {
    /// Doubling waits from `first`, never above `max`, without jitter.
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { first, max, factor: 2, jitter: 0.0, current: first }
    }

    /// Each wait spread uniformly over `wait × (1 ± fraction)`; `fraction` in `[0, 1]`.
    pub const fn with_jitter(self, fraction: f64) -> Backoff {
        Backoff { jitter: fraction, ..self }
    }

    /// The wait before the next try; the one after is `factor` times longer, up to `max`.
    /// The cap applies before jitter, so a capped wait still varies.
    pub fn next_delay(&mut self) -> Duration {
        let wait = self.current;
        self.current = wait.saturating_mul(self.factor).min(self.max);
        if self.jitter == 0.0 { wait } else { wait.mul_f64(1.0 - self.jitter + fastrand::f64() * 2.0 * self.jitter) }
    }

    /// After a success: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.current = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn waits_double_up_to_the_cap_and_start_over_after_a_reset() {
        let mut backoff = Backoff::new(Duration::from_millis(250), 5 * SECOND);
        let waits: Vec<u64> = (0..8).map(|_| backoff.next_delay().as_millis() as u64).collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(250));
    }

    #[test]
    fn a_cap_out_of_reach_never_overflows() {
        let mut backoff = Backoff::new(SECOND, Duration::MAX);
        for _ in 0..100 {
            backoff.next_delay();
        }
        assert_eq!(backoff.next_delay(), Duration::MAX);
    }

    #[test]
    fn jitter_spreads_each_wait_around_the_exponential_one() {
        let mut backoff = Backoff::new(SECOND, 4 * SECOND).with_jitter(0.2);
        let mut seen = Vec::new();
        for round in 0..1000 {
            if round % 4 == 0 {
                backoff.reset();
            }
            let exact = [1.0, 2.0, 4.0, 4.0][round % 4];
            let wait = backoff.next_delay().as_secs_f64();
            assert!((exact * 0.8..=exact * 1.2).contains(&wait), "round {round}: {wait} s, not {exact} s ± 20 %");
            if round % 4 == 0 {
                seen.push(wait);
            }
        }
        // Spread, not fixed: the first waits cover most of their ±20 % range.
        let (low, high) = seen.iter().fold((f64::MAX, 0.0f64), |(l, h), w| (l.min(*w), h.max(*w)));
        assert!(low < 0.85 && high > 1.15, "{low}..{high}");
    }
}
