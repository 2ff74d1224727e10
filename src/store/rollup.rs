//! Hourly rollups: per asset and hour, how many probes, how many succeeded, and the latency
//! (sum, min, max and a histogram). They outlive the raw events by far, so uptime and latency
//! over a year are read from a few thousand rows instead of millions.
//!
//! A rollup is always computed from the raw events of its hour, never added up write by write:
//! writes only mark their hour *pending* (before storing them, in the same transaction on
//! PostgreSQL, in a statement of its own on SQLite), and the Persistence actor
//! rolls each completed pending hour up in one pass over its events, which are found by their
//! ids (UUIDv7, made from the probe time, so an hour is a range of the primary key). Reads
//! aggregate pending hours (the current one included) from the raw events on the fly. So
//! rollups are exact whatever was retried, written late or written twice, and a write costs
//! one tiny extra statement instead of an update of every asset's row.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::Serialize;

/// Upper bounds (ms) of the latency histogram's buckets; one more bucket holds the rest.
pub const LATENCY_BOUNDS_MS: [i64; 10] = [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000];
pub const BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;
/// The histogram's columns, in bucket order (non-cumulative counts).
pub const BUCKET_COLUMNS: [&str; BUCKETS] =
    ["le_10", "le_25", "le_50", "le_100", "le_250", "le_500", "le_1000", "le_2500", "le_5000", "le_10000", "le_inf"];

/// One asset-hour, or the sum of several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollup {
    pub asset_id: String,
    pub hour: DateTime<Utc>,
    pub probes: i64,
    pub successes: i64,
    pub latency_sum: i64,
    pub latency_min: i64,
    pub latency_max: i64,
    pub buckets: [i64; BUCKETS],
}

impl Rollup {
    fn empty(asset_id: &str, hour: DateTime<Utc>) -> Rollup {
        Rollup {
            asset_id: asset_id.to_string(),
            hour,
            probes: 0,
            successes: 0,
            latency_sum: 0,
            latency_min: i64::MAX,
            latency_max: i64::MIN,
            buckets: [0; BUCKETS],
        }
    }

    /// Adds another rollup of the same asset into this one.
    pub fn merge(&mut self, other: &Rollup) {
        self.probes += other.probes;
        self.successes += other.successes;
        self.latency_sum = self.latency_sum.saturating_add(other.latency_sum);
        self.latency_min = self.latency_min.min(other.latency_min);
        self.latency_max = self.latency_max.max(other.latency_max);
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
    }

    /// Reads a row of `probe_rollups_hourly`, or of [`aggregate_select`], given its hour.
    pub(super) fn from_row<R>(row: &R, hour: DateTime<Utc>) -> Result<Rollup, sqlx::Error>
    where
        R: sqlx::Row,
        for<'c> &'c str: sqlx::ColumnIndex<R>,
        for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        let mut buckets = [0i64; BUCKETS];
        for (bucket, column) in buckets.iter_mut().zip(BUCKET_COLUMNS) {
            *bucket = row.try_get(column)?;
        }
        Ok(Rollup {
            asset_id: row.try_get("asset_id")?,
            hour,
            probes: row.try_get("probes")?,
            successes: row.try_get("successes")?,
            latency_sum: row.try_get("latency_sum")?,
            latency_min: row.try_get("latency_min")?,
            latency_max: row.try_get("latency_max")?,
            buckets,
        })
    }
}

/// Probes and successes of one asset over one UTC day, summed from its stored hourly rollups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayTotal {
    pub asset_id: String,
    /// Midnight UTC.
    pub day: DateTime<Utc>,
    pub probes: i64,
    pub successes: i64,
}

/// The hourly rollups of every asset over a range: those rolled up (`stored`) and those read
/// from the raw events because their hour is pending (`pending`, the current hour among them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HourlyRollups {
    pub stored: Vec<Rollup>,
    pub pending: Vec<Rollup>,
}

/// The hour a timestamp falls in.
pub fn hour_of(timestamp: DateTime<Utc>) -> DateTime<Utc> {
    timestamp.duration_trunc(TimeDelta::hours(1)).unwrap_or(timestamp)
}

/// The columns of `probe_rollups_hourly`, in the order [`aggregate_select`] produces them.
pub(super) fn rollup_columns() -> String {
    format!("asset_id, hour, probes, successes, latency_sum, latency_min, latency_max, {}", BUCKET_COLUMNS.join(", "))
}

/// The condition on `probe_events` rows that uptime counts: results taken in a maintenance
/// window or while statusd had lost its own network (`inconclusive`) say nothing about the
/// asset, so rollups leave them out.
pub(super) const COUNTED: &str = "(mark IS NULL OR mark = 'degraded')";

/// The SELECT list that turns `probe_events` rows into rollup rows (grouped by the caller),
/// in SQL that SQLite and PostgreSQL both speak. `hour` is the SQL of the hour column.
pub(super) fn aggregate_select(hour: &str) -> String {
    let mut buckets = Vec::with_capacity(BUCKETS);
    let mut lower: Option<i64> = None;
    for (i, column) in BUCKET_COLUMNS.iter().enumerate() {
        let condition = match (lower, LATENCY_BOUNDS_MS.get(i)) {
            (None, Some(upper)) => format!("latency_ms <= {upper}"),
            (Some(lower), Some(upper)) => format!("latency_ms > {lower} AND latency_ms <= {upper}"),
            (Some(lower), None) => format!("latency_ms > {lower}"),
            (None, None) => "TRUE".into(),
        };
        buckets.push(format!("CAST(sum(CASE WHEN {condition} THEN 1 ELSE 0 END) AS BIGINT) AS {column}"));
        lower = LATENCY_BOUNDS_MS.get(i).copied();
    }
    format!(
        "asset_id, {hour} AS hour, CAST(count(*) AS BIGINT) AS probes,
         CAST(sum(CASE WHEN success THEN 1 ELSE 0 END) AS BIGINT) AS successes,
         CAST(sum(latency_ms) AS BIGINT) AS latency_sum, min(latency_ms) AS latency_min,
         max(latency_ms) AS latency_max, {}",
        buckets.join(", ")
    )
}

/// Uptime and latency of one asset over a window, from its rollups.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Uptime {
    pub asset_id: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub probes: i64,
    pub successes: i64,
    /// Percentage of successful probes; None without probes.
    pub uptime_percent: Option<f64>,
    pub latency_ms: Option<LatencySummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LatencySummary {
    pub avg: f64,
    pub min: i64,
    pub max: i64,
    /// Estimated from the histogram (linear within a bucket, capped by the true extremes).
    pub p95: f64,
}

impl Uptime {
    pub fn from_rollups(asset_id: &str, from: DateTime<Utc>, to: DateTime<Utc>, rollups: &[Rollup]) -> Uptime {
        let mut total = Rollup::empty(asset_id, from);
        for rollup in rollups {
            total.merge(rollup);
        }
        let probes = total.probes;
        Uptime {
            asset_id: asset_id.to_string(),
            from,
            to,
            probes,
            successes: total.successes,
            uptime_percent: (probes > 0).then(|| 100.0 * total.successes as f64 / probes as f64),
            latency_ms: (probes > 0).then(|| LatencySummary {
                avg: total.latency_sum as f64 / probes as f64,
                min: total.latency_min,
                max: total.latency_max,
                p95: percentile(&total, 0.95),
            }),
        }
    }
}

/// One step of an uptime series.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeriesPoint {
    /// Start of the step (UTC; a day starts at 00:00 UTC).
    pub start: DateTime<Utc>,
    /// Successful / counted probes, from 0 to 1; null when no probe was counted in the step.
    pub uptime: Option<f64>,
    /// Probes counted (results in maintenance or inconclusive are not).
    pub probes: i64,
    /// Mean latency of the counted probes, in ms; null without probes.
    pub avg_latency_ms: Option<f64>,
}

/// The rollups cut into `count` steps of `step` from `start`: one point per step, oldest first,
/// a step without rollups included (with no uptime). Rollups outside the steps are ignored.
pub fn series(start: DateTime<Utc>, step: TimeDelta, count: usize, rollups: &[Rollup]) -> Vec<SeriesPoint> {
    let mut sums: Vec<(i64, i64, i64)> = vec![(0, 0, 0); count];
    let step_ms = step.num_milliseconds().max(1);
    for rollup in rollups {
        let offset = (rollup.hour - start).num_milliseconds();
        if offset < 0 {
            continue;
        }
        if let Some(sum) = usize::try_from(offset / step_ms).ok().and_then(|i| sums.get_mut(i)) {
            sum.0 += rollup.probes;
            sum.1 += rollup.successes;
            sum.2 = sum.2.saturating_add(rollup.latency_sum);
        }
    }
    sums.into_iter()
        .enumerate()
        .map(|(i, (probes, successes, latency))| SeriesPoint {
            start: start + step * i32::try_from(i).unwrap_or(i32::MAX),
            uptime: (probes > 0).then(|| successes as f64 / probes as f64),
            probes,
            avg_latency_ms: (probes > 0).then(|| latency as f64 / probes as f64),
        })
        .collect()
}

/// The q-quantile of the latency, interpolated inside the bucket it falls in.
fn percentile(rollup: &Rollup, q: f64) -> f64 {
    let rank = q * rollup.probes as f64;
    let mut seen = 0.0;
    for (i, count) in rollup.buckets.iter().enumerate() {
        let count = *count as f64;
        if count > 0.0 && seen + count >= rank {
            let lower = if i == 0 { 0.0 } else { LATENCY_BOUNDS_MS[i - 1] as f64 };
            let upper = LATENCY_BOUNDS_MS.get(i).map_or(rollup.latency_max as f64, |b| *b as f64);
            let within = lower + (upper - lower) * ((rank - seen) / count);
            return within.clamp(rollup.latency_min as f64, rollup.latency_max as f64);
        }
        seen += count;
    }
    rollup.latency_max as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollup(probes: i64, successes: i64, latencies: &[(usize, i64)], min: i64, max: i64) -> Rollup {
        let mut buckets = [0; BUCKETS];
        for (bucket, count) in latencies {
            buckets[*bucket] = *count;
        }
        Rollup {
            asset_id: "a".into(),
            hour: DateTime::UNIX_EPOCH,
            probes,
            successes,
            latency_sum: 40 * probes,
            latency_min: min,
            latency_max: max,
            buckets,
        }
    }

    #[test]
    fn uptime_and_latency_come_from_the_sum_of_rollups() {
        // Two hours: 95 probes at 40 ms (bucket (25, 50]), 5 at 900 ms (bucket (500, 1000]).
        let first = rollup(60, 50, &[(2, 60)], 40, 40);
        let second = rollup(40, 40, &[(2, 35), (6, 5)], 40, 900);
        let uptime = Uptime::from_rollups("a", DateTime::UNIX_EPOCH, DateTime::UNIX_EPOCH, &[first, second]);
        assert_eq!((uptime.probes, uptime.successes), (100, 90));
        assert_eq!(uptime.uptime_percent, Some(90.0));
        let latency = uptime.latency_ms.expect("latency");
        assert_eq!((latency.min, latency.max), (40, 900));
        assert!((25.0..=50.0).contains(&latency.p95), "{}", latency.p95);
        let mostly_slow = rollup(100, 100, &[(2, 10), (6, 90)], 40, 900);
        let p95 = Uptime::from_rollups("a", DateTime::UNIX_EPOCH, DateTime::UNIX_EPOCH, &[mostly_slow])
            .latency_ms
            .expect("latency")
            .p95;
        assert!((500.0..=900.0).contains(&p95), "{p95}");
    }

    #[test]
    fn a_series_has_one_point_per_step_with_empty_steps_as_null() {
        let day = |d: i64, h: i64| DateTime::UNIX_EPOCH + TimeDelta::days(d) + TimeDelta::hours(h);
        let at = |hour, probes, successes| Rollup { hour, ..rollup(probes, successes, &[], 40, 40) };
        // Day 0: 60 + 40 probes, 90 up; day 1: none; day 2: 10, all up; day 3 is outside.
        let rollups = [at(day(0, 1), 60, 50), at(day(0, 23), 40, 40), at(day(2, 5), 10, 10), at(day(3, 0), 5, 0)];
        let points = series(day(0, 0), TimeDelta::days(1), 3, &rollups);
        assert_eq!(points.len(), 3);
        assert_eq!((points[0].start, points[0].probes, points[0].uptime), (day(0, 0), 100, Some(0.9)));
        assert_eq!(points[0].avg_latency_ms, Some(40.0));
        assert_eq!(
            (points[1].start, points[1].probes, points[1].uptime, points[1].avg_latency_ms),
            (day(1, 0), 0, None, None)
        );
        assert_eq!((points[2].probes, points[2].uptime), (10, Some(1.0)));
        let hourly = series(day(0, 0), TimeDelta::hours(1), 24, &rollups);
        assert_eq!(hourly.iter().map(|p| p.probes).sum::<i64>(), 100);
        assert_eq!((hourly[1].probes, hourly[23].probes, hourly[2].uptime), (60, 40, None));
    }

    #[test]
    fn no_probes_means_no_uptime_rather_than_zero() {
        let uptime = Uptime::from_rollups("a", DateTime::UNIX_EPOCH, DateTime::UNIX_EPOCH, &[]);
        assert_eq!((uptime.probes, uptime.uptime_percent, uptime.latency_ms), (0, None, None));
    }

    #[test]
    fn the_histogram_sql_covers_every_latency_exactly_once() {
        let sql = aggregate_select("hour");
        assert!(sql.contains("CASE WHEN latency_ms <= 10 THEN 1"));
        assert!(sql.contains("CASE WHEN latency_ms > 10 AND latency_ms <= 25 THEN 1"));
        assert!(sql.contains("CASE WHEN latency_ms > 10000 THEN 1 ELSE 0 END) AS BIGINT) AS le_inf"));
        assert_eq!(sql.matches("CASE WHEN latency").count(), BUCKETS);
    }
}
