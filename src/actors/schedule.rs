//! When an asset is probed: first ticks spread over the interval, then a fixed rate that never
//! bursts to catch up.

use std::time::Duration;

use tokio::time::Instant;

/// A stable offset in `[0, interval)` from the asset id, so that thousands of assets loaded at
/// once do not all fire in the same instant, and each keeps its phase across restarts.
pub fn first_tick_offset(asset_id: &str, interval: Duration) -> Duration {
    let millis = interval.as_millis().max(1) as u64;
    Duration::from_millis(fnv1a(asset_id.as_bytes()) % millis)
}

/// FNV-1a: tiny and, unlike `DefaultHasher`, guaranteed stable between Rust releases.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}

/// The tick after `due`. When the actor fell behind by whole intervals (a stalled process),
/// the missed ticks are skipped rather than fired all at once.
pub fn next_tick(due: Instant, interval: Duration, now: Instant) -> Instant {
    let next = due + interval;
    if next > now {
        return next;
    }
    let behind = now.duration_since(next).as_nanos();
    let missed = behind / interval.as_nanos().max(1) + 1;
    next + interval * u32::try_from(missed).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_stable_and_inside_the_interval() {
        let interval = Duration::from_secs(60);
        let offset = first_tick_offset("api-prod", interval);
        assert_eq!(offset, first_tick_offset("api-prod", interval));
        assert!(offset < interval);
        assert_ne!(offset, first_tick_offset("web-prod", interval));
    }

    #[test]
    fn ten_thousand_assets_spread_evenly_over_the_interval() {
        let interval = Duration::from_secs(60);
        let mut buckets = [0u32; 10];
        for i in 0..10_000 {
            let offset = first_tick_offset(&format!("asset-{i}"), interval);
            buckets[(offset.as_secs() / 6) as usize] += 1;
        }
        // A uniform spread puts 1,000 in each sixth of a minute; allow ±15 %.
        for (i, count) in buckets.iter().enumerate() {
            assert!((850..=1150).contains(count), "bucket {i} has {count}: {buckets:?}");
        }
    }

    #[test]
    fn the_next_tick_keeps_the_rate_and_skips_what_was_missed() {
        let start = Instant::now();
        let second = Duration::from_secs(1);
        assert_eq!(next_tick(start, second, start), start + second);
        // Woken 3.5 intervals late: the next tick is the next slot on the grid, not a burst.
        let late = start + Duration::from_millis(3500);
        assert_eq!(next_tick(start, second, late), start + 4 * second);
        assert_eq!(next_tick(start, second, start + 2 * second), start + 3 * second);
    }
}
