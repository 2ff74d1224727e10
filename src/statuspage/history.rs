//! The status page's historical numbers, for every asset at once: uptime over 24 hours, 30 and
//! 90 days, one figure per UTC day for the 90-day bar, and the average response time of each of
//! the last 24 hours for the sparkline. They come from the hourly rollups in two bulk reads (one
//! per granularity, whatever the number of assets) and change at most hourly, apart from the
//! current hour: [`HistoryCache`] keeps them and refreshes them in the background once they are
//! a minute old, so a request only adds the live statuses.
//!
//! Windows: `last24h` is the current hour and the 23 before it; `last30d` and `last90d` are the
//! current UTC day and the 29 (89) before it. Results taken in maintenance or while statusd's own
//! network was lost are not counted (as in every rollup); degraded results count as up.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use parking_lot::RwLock;
use uuid::Uuid;

use crate::store::rollup::hour_of;
use crate::store::{DayTotal, HourlyRollups, Incident, Store, StoreError};

/// Days on the bar, and the longest uptime window.
pub const DAYS: usize = 90;
/// Hours on the sparkline, and the shortest uptime window.
pub const HOURS: usize = 24;
/// How old the numbers may get before a request starts refreshing them in the background.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// Probes and successes over some span.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    pub probes: i64,
    pub successes: i64,
}

impl Count {
    fn add(&mut self, probes: i64, successes: i64) {
        self.probes += probes;
        self.successes += successes;
    }

    /// Percentage of successful probes; None without probes.
    pub fn percent(&self) -> Option<f64> {
        (self.probes > 0).then(|| 100.0 * self.successes as f64 / self.probes as f64)
    }
}

/// One asset's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetHistory {
    /// [`DAYS`] days, oldest first; the last is today (UTC).
    pub days: Vec<Count>,
    /// [`HOURS`] hours, oldest first; the last is the current hour.
    pub hours: Vec<Count>,
    /// Average response time of each of those hours, in ms; None for an hour without probes.
    pub latency_ms: Vec<Option<f64>>,
}

impl AssetHistory {
    pub fn empty() -> AssetHistory {
        AssetHistory {
            days: vec![Count::default(); DAYS],
            hours: vec![Count::default(); HOURS],
            latency_ms: vec![None; HOURS],
        }
    }

    /// Over the last `days` days (today included).
    pub fn over_days(&self, days: usize) -> Count {
        self.days.iter().rev().take(days).fold(Count::default(), |mut total, day| {
            total.add(day.probes, day.successes);
            total
        })
    }

    pub fn over_24h(&self) -> Count {
        self.hours.iter().fold(Count::default(), |mut total, hour| {
            total.add(hour.probes, hour.successes);
            total
        })
    }
}

/// Every asset's numbers, and the incidents of the bar's days, as of `computed_at`.
#[derive(Debug, Clone)]
pub struct History {
    pub computed_at: DateTime<Utc>,
    /// The bar's first day (UTC).
    pub first_day: NaiveDate,
    /// The sparkline's first hour.
    pub first_hour: DateTime<Utc>,
    pub assets: HashMap<String, AssetHistory>,
    /// Incidents open now or that started or ended on one of the bar's days, newest first.
    pub incidents: Vec<Incident>,
    /// For each asset, the incidents that touched each day of the bar: (day index, incident).
    pub day_incidents: HashMap<String, Vec<(usize, Uuid)>>,
}

/// Midnight (UTC) of the first day on the bar, and the first hour on the sparkline, at `now`.
pub fn windows(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let today = now.date_naive();
    let first_day = today - TimeDelta::days(DAYS as i64 - 1);
    let from_day = first_day.and_hms_opt(0, 0, 0).map_or(now, |midnight| midnight.and_utc());
    (from_day, hour_of(now) - TimeDelta::hours(HOURS as i64 - 1))
}

impl History {
    /// Sorts the store's totals into days and hours, at `now` (pure).
    pub fn compute(now: DateTime<Utc>, days: &[DayTotal], hours: &HourlyRollups, incidents: Vec<Incident>) -> History {
        let (from_day, first_hour) = windows(now);
        let first_day = from_day.date_naive();
        let day_index = |at: DateTime<Utc>| {
            let index = (at.date_naive() - first_day).num_days();
            usize::try_from(index).ok().filter(|i| *i < DAYS)
        };
        let hour_index = |at: DateTime<Utc>| {
            let index = (at - first_hour).num_hours();
            usize::try_from(index).ok().filter(|i| *i < HOURS)
        };
        let mut assets: HashMap<String, AssetHistory> = HashMap::new();
        fn entry<'m>(assets: &'m mut HashMap<String, AssetHistory>, id: &str) -> &'m mut AssetHistory {
            if !assets.contains_key(id) {
                assets.insert(id.to_string(), AssetHistory::empty());
            }
            // Invariant: inserted just above.
            assets.get_mut(id).expect("present")
        }
        for total in days {
            if let Some(i) = day_index(total.day) {
                entry(&mut assets, &total.asset_id).days[i].add(total.probes, total.successes);
            }
        }
        // Pending hours are in no daily total: they count for their day and, if recent, their hour.
        for rollup in &hours.pending {
            let asset = entry(&mut assets, &rollup.asset_id);
            if let Some(i) = day_index(rollup.hour) {
                asset.days[i].add(rollup.probes, rollup.successes);
            }
        }
        let mut latency_sums: HashMap<(String, usize), (i64, i64)> = HashMap::new();
        for rollup in hours.stored.iter().chain(&hours.pending) {
            if let Some(i) = hour_index(rollup.hour) {
                entry(&mut assets, &rollup.asset_id).hours[i].add(rollup.probes, rollup.successes);
                let sum = latency_sums.entry((rollup.asset_id.clone(), i)).or_default();
                sum.0 = sum.0.saturating_add(rollup.latency_sum);
                sum.1 += rollup.probes;
            }
        }
        for ((asset_id, i), (sum, probes)) in latency_sums {
            if probes > 0
                && let Some(asset) = assets.get_mut(&asset_id)
            {
                asset.latency_ms[i] = Some(sum as f64 / probes as f64);
            }
        }
        let mut day_incidents: HashMap<String, Vec<(usize, Uuid)>> = HashMap::new();
        for incident in &incidents {
            let first = day_index(incident.started_at.max(from_day)).unwrap_or(0);
            let last = day_index(incident.ended_at.unwrap_or(now).min(now)).unwrap_or(DAYS - 1);
            if incident.ended_at.is_some_and(|end| end < from_day) {
                continue;
            }
            let touched = day_incidents.entry(incident.asset_id.clone()).or_default();
            touched.extend((first..=last).map(|day| (day, incident.id)));
        }
        History { computed_at: now, first_day, first_hour, assets, incidents, day_incidents }
    }

    /// Reads what `compute` needs from the store: three bulk queries and one for incidents.
    pub async fn load(store: &Store, now: DateTime<Utc>) -> Result<History, StoreError> {
        let (from_day, first_hour) = windows(now);
        let to = hour_of(now) + TimeDelta::hours(1);
        let days = store.daily_totals(from_day, to).await?;
        let hours = store.all_rollups(first_hour, to).await?;
        let incidents = store.incidents_since(from_day).await?;
        Ok(History::compute(now, &days, &hours, incidents))
    }

    /// The date of day `index` of the bar.
    pub fn date(&self, index: usize) -> NaiveDate {
        self.first_day + TimeDelta::days(index as i64)
    }

    /// Whether these numbers should be computed again at `now`: a minute old, or from another hour.
    fn stale(&self, now: DateTime<Utc>) -> bool {
        let age = (now - self.computed_at).to_std().unwrap_or_default();
        age >= MAX_AGE || hour_of(now) != hour_of(self.computed_at)
    }
}

/// The numbers last computed, refreshed in the background when stale; one refresh at a time.
#[derive(Default)]
pub struct HistoryCache {
    current: RwLock<Option<Arc<History>>>,
    refreshing: AtomicBool,
    /// Serializes the first load, so that a burst of first requests reads the store once.
    first: tokio::sync::Mutex<()>,
}

impl HistoryCache {
    /// The numbers to show now: the cached ones (starting a refresh in the background when they
    /// are stale), or, the first time, computed while the caller waits.
    pub async fn get(self: &Arc<Self>, store: &Store) -> Result<Arc<History>, StoreError> {
        let now = Utc::now();
        if let Some(history) = self.current.read().clone() {
            if history.stale(now) && !self.refreshing.swap(true, Ordering::AcqRel) {
                let cache = Arc::clone(self);
                let store = store.clone();
                tokio::spawn(async move {
                    let started = std::time::Instant::now();
                    match History::load(&store, Utc::now()).await {
                        Ok(fresh) => {
                            *cache.current.write() = Some(Arc::new(fresh));
                            tracing::debug!(
                                took_ms = started.elapsed().as_millis() as u64,
                                "status page history refreshed"
                            );
                        }
                        Err(error) => {
                            tracing::warn!(%error, "cannot refresh the status page's history; keeping the last")
                        }
                    }
                    cache.refreshing.store(false, Ordering::Release);
                });
            }
            return Ok(history);
        }
        let _first = self.first.lock().await;
        if let Some(history) = self.current.read().clone() {
            return Ok(history);
        }
        let started = std::time::Instant::now();
        let history = Arc::new(History::load(store, now).await?);
        tracing::debug!(took_ms = started.elapsed().as_millis() as u64, "status page history computed");
        *self.current.write() = Some(Arc::clone(&history));
        Ok(history)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Rollup;
    use crate::store::rollup::BUCKETS;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("a timestamp")
    }

    fn rollup(asset: &str, hour: &str, probes: i64, successes: i64, latency: i64) -> Rollup {
        Rollup {
            asset_id: asset.into(),
            hour: at(hour),
            probes,
            successes,
            latency_sum: latency * probes,
            latency_min: latency,
            latency_max: latency,
            buckets: [0; BUCKETS],
        }
    }

    fn day(asset: &str, day: &str, probes: i64, successes: i64) -> DayTotal {
        DayTotal { asset_id: asset.into(), day: at(day), probes, successes }
    }

    #[test]
    fn days_hours_and_windows_add_up_from_totals_and_pending_hours() {
        let now = at("2026-11-30T10:20:00Z");
        let days = [
            day("a", "2026-11-30T00:00:00Z", 600, 600),
            day("a", "2026-11-29T00:00:00Z", 1440, 1380),
            day("a", "2026-10-01T00:00:00Z", 1000, 0), // 60 days ago: in 90 d, not 30 d
            day("a", "2026-08-01T00:00:00Z", 1000, 1000), // before the bar
        ];
        let hours = HourlyRollups {
            stored: vec![
                rollup("a", "2026-11-30T09:00:00Z", 60, 60, 40),
                rollup("a", "2026-11-29T10:00:00Z", 60, 0, 10),
            ],
            // The current hour, and an old hour rolled up late: both only here.
            pending: vec![
                rollup("a", "2026-11-30T10:00:00Z", 20, 10, 100),
                rollup("a", "2026-11-20T03:00:00Z", 60, 60, 5),
            ],
        };
        let history = History::compute(now, &days, &hours, Vec::new());
        assert_eq!(history.first_day, NaiveDate::from_ymd_opt(2026, 9, 2).expect("date"));
        assert_eq!(history.first_hour, at("2026-11-29T11:00:00Z"));
        let a = &history.assets["a"];
        assert_eq!(a.days[DAYS - 1], Count { probes: 620, successes: 610 });
        assert_eq!(a.days[DAYS - 2], Count { probes: 1440, successes: 1380 });
        assert_eq!(a.days[DAYS - 11], Count { probes: 60, successes: 60 });
        // 24 h: 09:00 and 10:00 today; 10:00 yesterday is 24 hours before the current hour: out.
        assert_eq!(a.over_24h(), Count { probes: 80, successes: 70 });
        assert_eq!(a.latency_ms[HOURS - 1], Some(100.0));
        assert_eq!(a.latency_ms[HOURS - 2], Some(40.0));
        assert_eq!(a.latency_ms[0], None);
        assert_eq!(a.over_days(30), Count { probes: 620 + 1440 + 60, successes: 610 + 1380 + 60 });
        assert_eq!(a.over_days(90), Count { probes: 620 + 1440 + 60 + 1000, successes: 610 + 1380 + 60 });
        assert_eq!(Count::default().percent(), None);
        assert_eq!(a.over_24h().percent(), Some(87.5));
    }

    #[test]
    fn an_incident_marks_every_day_it_touched() {
        let now = at("2026-11-30T10:20:00Z");
        let mut long = Incident::opened(Uuid::nil(), "a".into(), at("2026-11-27T23:00:00Z"), "down".into(), "x".into());
        long.ended_at = Some(at("2026-11-29T01:00:00Z"));
        let open = Incident::opened(Uuid::max(), "b".into(), at("2026-11-30T09:00:00Z"), "down".into(), "y".into());
        let old =
            Incident::opened(Uuid::from_u128(7), "a".into(), at("2026-01-01T00:00:00Z"), "down".into(), "z".into());
        let history = History::compute(now, &[], &HourlyRollups::default(), vec![long, open, old]);
        let days_of = |asset: &str| history.day_incidents[asset].iter().map(|(day, _)| *day).collect::<Vec<_>>();
        // The old incident, still open, covers the whole bar; the long one three days.
        let a = days_of("a");
        assert!(a.contains(&(DAYS - 4)) && a.contains(&(DAYS - 3)) && a.contains(&(DAYS - 2)));
        assert_eq!(a.len(), 3 + DAYS);
        assert_eq!(days_of("b"), [DAYS - 1]);
        assert_eq!(history.date(DAYS - 1), now.date_naive());
    }

    #[test]
    fn numbers_go_stale_after_a_minute_or_when_the_hour_turns() {
        let history = History::compute(at("2026-11-30T10:20:00Z"), &[], &HourlyRollups::default(), Vec::new());
        assert!(!history.stale(at("2026-11-30T10:20:59Z")));
        assert!(history.stale(at("2026-11-30T10:21:00Z")));
        let late = History::compute(at("2026-11-30T10:59:50Z"), &[], &HourlyRollups::default(), Vec::new());
        assert!(late.stale(at("2026-11-30T11:00:01Z")));
    }
}
