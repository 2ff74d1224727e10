//! Whether statusd keeps up with its probes: how many started late (waiting for a worker slot
//! longer than [`LATE`]) and how many ticks were skipped, over the last minute.
//!
//! A scheduler that cannot keep up still probes (late, or skipping ticks), so readiness does
//! not fail for it; `/readyz` says `"degraded": true` and its `scheduler` check says why, so
//! that an operator sees it before users do. Counted in ten-second buckets of atomics: the
//! probe path only adds to a counter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// A probe that waited longer than this for a worker started late.
pub const LATE: Duration = Duration::from_secs(1);
/// How far back the verdict looks.
pub const WINDOW: Duration = Duration::from_secs(60);
const BUCKET: Duration = Duration::from_secs(10);
const BUCKETS: usize = 6;
/// Behind once at least this share of the probes of the window started late...
const LATE_SHARE: f64 = 0.01;
/// ...and at least this many did (one slow moment is not a trend).
const LATE_MIN: u64 = 10;

#[derive(Default)]
struct Bucket {
    /// Which ten seconds (since `origin`) the counts are of.
    epoch: AtomicU64,
    started: AtomicU64,
    late: AtomicU64,
    skipped: AtomicU64,
}

pub struct Lateness {
    origin: Instant,
    buckets: [Bucket; BUCKETS],
}

/// The last minute, counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    pub started: u64,
    pub late: u64,
    pub skipped: u64,
}

impl Window {
    /// Why statusd is not keeping up, or None while it is.
    pub fn behind(&self) -> Option<String> {
        let late_share = if self.started == 0 { 0.0 } else { self.late as f64 / self.started as f64 };
        (self.late >= LATE_MIN && late_share >= LATE_SHARE).then(|| {
            format!(
                "statusd cannot keep up: {} of {} probes in the last {} s waited more than {} s for a worker; \
                 {} ticks were skipped (raise --workers, lengthen intervals, or add CPU)",
                self.late,
                self.started,
                WINDOW.as_secs(),
                LATE.as_secs(),
                self.skipped
            )
        })
    }
}

impl Default for Lateness {
    fn default() -> Self {
        Lateness { origin: Instant::now(), buckets: Default::default() }
    }
}

impl Lateness {
    fn epoch(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.origin).as_millis() / BUCKET.as_millis()) as u64 + 1
    }

    /// The bucket of now, emptied first if it still holds counts of an older ten seconds. Two
    /// threads may both empty it at a bucket's turn and lose a count or two: statistics, not
    /// accounting.
    fn bucket(&self, now: Instant) -> &Bucket {
        let epoch = self.epoch(now);
        let bucket = &self.buckets[(epoch % BUCKETS as u64) as usize];
        let seen = bucket.epoch.load(Ordering::Relaxed);
        if seen != epoch && bucket.epoch.compare_exchange(seen, epoch, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            bucket.started.store(0, Ordering::Relaxed);
            bucket.late.store(0, Ordering::Relaxed);
            bucket.skipped.store(0, Ordering::Relaxed);
        }
        bucket
    }

    /// A probe started after waiting `lag` for a worker.
    pub fn started(&self, lag: Duration) {
        let bucket = self.bucket(Instant::now());
        bucket.started.fetch_add(1, Ordering::Relaxed);
        if lag > LATE {
            bucket.late.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A tick found the asset's previous probe still running (or still waiting for a worker).
    pub fn skipped(&self) {
        self.bucket(Instant::now()).skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts of the last minute (the current ten seconds and the five before).
    pub fn window(&self) -> Window {
        let now = self.epoch(Instant::now());
        let oldest = now.saturating_sub(BUCKETS as u64 - 1);
        let mut window = Window::default();
        for bucket in &self.buckets {
            let epoch = bucket.epoch.load(Ordering::Relaxed);
            if (oldest..=now).contains(&epoch) {
                window.started += bucket.started.load(Ordering::Relaxed);
                window.late += bucket.late.load(Ordering::Relaxed);
                window.skipped += bucket.skipped.load(Ordering::Relaxed);
            }
        }
        window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn late_probes_make_statusd_behind_for_a_minute_then_it_recovers() {
        let lateness = Lateness::default();
        // Keeping up: every probe on time, a few ticks skipped by slow targets.
        for _ in 0..1000 {
            lateness.started(Duration::from_millis(5));
        }
        lateness.skipped();
        assert_eq!(lateness.window(), Window { started: 1000, late: 0, skipped: 1 });
        assert_eq!(lateness.window().behind(), None);

        // A few late ones are not a trend.
        for _ in 0..(LATE_MIN - 1) {
            lateness.started(2 * SECOND);
        }
        assert_eq!(lateness.window().behind(), None);

        // Overloaded: a fifth of the probes wait for a worker for seconds.
        tokio::time::sleep(5 * SECOND).await;
        for _ in 0..300 {
            lateness.started(3 * SECOND);
            lateness.started(Duration::ZERO);
            lateness.started(Duration::ZERO);
            lateness.skipped();
        }
        let behind = lateness.window().behind().expect("behind");
        assert!(behind.contains("309 of 1909 probes"), "{behind}");
        assert!(behind.contains("301 ticks were skipped"), "{behind}");

        // Still within the minute: still behind.
        tokio::time::sleep(50 * SECOND).await;
        assert!(lateness.window().behind().is_some());
        // Back on time: once the late minute has passed, no longer behind.
        tokio::time::sleep(15 * SECOND).await;
        for _ in 0..100 {
            lateness.started(Duration::from_millis(1));
        }
        assert_eq!(lateness.window(), Window { started: 100, late: 0, skipped: 0 });
        assert_eq!(lateness.window().behind(), None);
    }
}
