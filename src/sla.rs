//! SLA arithmetic: uptime, downtime, MTTR, MTBF and the error budget of one asset over a period,
//! from spans of time (incidents, maintenance, inconclusive results). Pure: the caller reads the
//! spans from the store and the maintenance calendar and passes the time in (`api/sla.rs`).
//!
//! The formula (the README's "SLA" section states the same):
//! - the *measured* span is `[max(from, since), min(to, now))`, `since` being when the asset was
//!   first configured; the *planned* span is `[max(from, since), to)`;
//! - `eligible(S)` = `|S|` minus the time of S covered by maintenance windows minus the time of
//!   S covered by inconclusive results (and not by maintenance);
//! - `downtime` = the time of the measured span covered by incidents (`startedAt..endedAt`, an
//!   open one up to `now`) and by neither maintenance nor inconclusive results;
//! - `uptime %` = 100 × (eligible(measured) − downtime) / eligible(measured), none when nothing
//!   is eligible;
//! - `allowed` = (1 − target/100) × eligible(planned): the budget of the whole period, so a
//!   month's budget does not grow as the month goes by; `used` = downtime;
//!   `remaining` = allowed − used (negative once breached); met ⇔ used ≤ allowed;
//! - `burn rate` = (downtime of the last 24 h / eligible time of the last 24 h) / (1 − target/100),
//!   the last 24 h ending at the measured span's end; 1 spends the budget exactly over the period;
//! - `incidents` = incidents with downtime in the period; MTTR = downtime / incidents;
//!   MTBF = (eligible − downtime) / incidents; none without incidents.

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

/// A span of time: from `.0` (included) to `.1` (excluded).
pub type Span = (DateTime<Utc>, DateTime<Utc>);

/// What is known of one asset, as spans; none needs to be sorted or disjoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// When the asset was first configured: time before it is no one's uptime.
    pub since: Option<DateTime<Utc>>,
    /// One span per incident; an open incident ends at `now` (or later: it is clipped).
    pub incidents: Vec<Span>,
    /// Occurrences of the maintenance windows that cover the asset.
    pub maintenance: Vec<Span>,
    /// Time covered by inconclusive results (statusd's own network was down).
    pub inconclusive: Vec<Span>,
}

/// The figures of one asset over a period. Durations in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    /// Percent of the eligible time without an incident; null when no time was eligible.
    pub uptime_percent: Option<f64>,
    /// Eligible time measured so far (the period up to now, less maintenance and inconclusive time).
    pub eligible_seconds: f64,
    pub downtime_seconds: f64,
    /// Incidents with downtime in the period.
    pub incidents: u32,
    /// Mean time to recovery: downtime / incidents; null without incidents.
    pub mttr_seconds: Option<f64>,
    /// Mean time between failures: (eligible − downtime) / incidents; null without incidents.
    pub mtbf_seconds: Option<f64>,
    /// The SLA target in percent (the asset's `slaTarget`, else `[sla] default_target`).
    pub target_percent: f64,
    /// Whether the downtime stays within the period's error budget.
    pub met: bool,
    pub error_budget: ErrorBudget,
}

/// The error budget of a period, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBudget {
    /// (1 − target/100) × eligible time of the whole period.
    pub allowed_seconds: f64,
    pub used_seconds: f64,
    /// allowed − used; negative once the target is breached.
    pub remaining_seconds: f64,
    /// remaining / allowed; null when nothing is allowed (a target of 100 %).
    pub remaining_ratio: Option<f64>,
    /// Budget burn rate over the last 24 h of the period (1: spent exactly over the period);
    /// null when the last 24 h had no eligible time or the target is 100 %.
    pub burn_rate_24h: Option<f64>,
}

/// The figures of `history` over `[from, to)`, seen at `now`, for a target in percent.
pub fn figures(history: &History, from: DateTime<Utc>, to: DateTime<Utc>, now: DateTime<Utc>, target: f64) -> Figures {
    let start = history.since.map_or(from, |since| since.max(from));
    let end = to.min(now).max(start);
    let planned_end = to.max(start);
    let measured = account(history, start, end);
    let planned = eligible(history, start, planned_end);
    let allowed_fraction = (1.0 - target / 100.0).max(0.0);
    let allowed = allowed_fraction * planned;
    let remaining = allowed - measured.downtime;
    let day_start = (end - TimeDelta::hours(24)).max(start);
    let last_day = account(history, day_start, end);
    let burn_rate = (last_day.eligible > 0.0 && allowed_fraction > 0.0)
        .then(|| (last_day.downtime / last_day.eligible) / allowed_fraction);
    let incidents = measured.incidents;
    Figures {
        uptime_percent: (measured.eligible > 0.0)
            .then(|| 100.0 * (measured.eligible - measured.downtime) / measured.eligible),
        eligible_seconds: measured.eligible,
        downtime_seconds: measured.downtime,
        incidents,
        mttr_seconds: (incidents > 0).then(|| measured.downtime / f64::from(incidents)),
        mtbf_seconds: (incidents > 0).then(|| (measured.eligible - measured.downtime) / f64::from(incidents)),
        target_percent: target,
        met: measured.downtime <= allowed,
        error_budget: ErrorBudget {
            allowed_seconds: allowed,
            used_seconds: measured.downtime,
            remaining_seconds: remaining,
            remaining_ratio: (allowed > 0.0).then(|| remaining / allowed),
            burn_rate_24h: burn_rate,
        },
    }
}

struct Account {
    eligible: f64,
    downtime: f64,
    incidents: u32,
}

/// Eligible time, downtime and incidents of `[start, end)`.
fn account(history: &History, start: DateTime<Utc>, end: DateTime<Utc>) -> Account {
    let excluded = normalize(history.maintenance.iter().chain(&history.inconclusive).copied(), start, end);
    let eligible = seconds(end - start) - total(&excluded);
    let mut incidents = 0;
    for incident in &history.incidents {
        let own = subtract(&normalize([*incident], start, end), &excluded);
        if total(&own) > 0.0 {
            incidents += 1;
        }
    }
    let down = subtract(&normalize(history.incidents.iter().copied(), start, end), &excluded);
    Account { eligible, downtime: total(&down), incidents }
}

fn eligible(history: &History, start: DateTime<Utc>, end: DateTime<Utc>) -> f64 {
    let excluded = normalize(history.maintenance.iter().chain(&history.inconclusive).copied(), start, end);
    seconds(end - start) - total(&excluded)
}

/// The spans clipped to `[start, end)`, sorted, overlapping ones merged, empty ones dropped.
pub fn normalize(spans: impl IntoIterator<Item = Span>, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<Span> {
    let mut clipped: Vec<Span> =
        spans.into_iter().map(|(a, b)| (a.max(start), b.min(end))).filter(|(a, b)| a < b).collect();
    clipped.sort_unstable();
    let mut merged: Vec<Span> = Vec::with_capacity(clipped.len());
    for (a, b) in clipped {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

/// `spans` without what `holes` covers; both normalized.
fn subtract(spans: &[Span], holes: &[Span]) -> Vec<Span> {
    let mut out = Vec::new();
    for &(mut a, b) in spans {
        for &(h0, h1) in holes {
            if h1 <= a || h0 >= b {
                continue;
            }
            if h0 > a {
                out.push((a, h0));
            }
            a = a.max(h1);
            if a >= b {
                break;
            }
        }
        if a < b {
            out.push((a, b));
        }
    }
    out
}

fn total(spans: &[Span]) -> f64 {
    spans.iter().map(|(a, b)| seconds(*b - *a)).sum()
}

/// Seconds, to the microsecond (what PostgreSQL keeps; SQLite keeps milliseconds).
fn seconds(delta: TimeDelta) -> f64 {
    delta.num_microseconds().map_or_else(|| delta.num_milliseconds() as f64 / 1e3, |us| us as f64 / 1e6)
}

/// The calendar month that contains `at` in time zone `tz`: from its first midnight to the
/// next month's, in UTC. A month with a change to or from summer time has an hour less or more.
pub fn month_of(at: DateTime<Utc>, tz: Tz) -> Span {
    let local = at.with_timezone(&tz).date_naive();
    let first = local.with_day(1).unwrap_or(local);
    let next = first.checked_add_months(chrono::Months::new(1)).unwrap_or(first);
    (local_midnight(first, tz), local_midnight(next, tz))
}

/// The first instant of a day in `tz` (midnight, or the first time after it that exists).
fn local_midnight(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let mut time = day.and_time(chrono::NaiveTime::MIN);
    // A day whose midnight is skipped by a summer-time change starts at most a few hours later.
    for _ in 0..24 {
        if let Some(at) = tz.from_local_datetime(&time).earliest() {
            return at.with_timezone(&Utc);
        }
        time += TimeDelta::minutes(30);
    }
    day.and_time(chrono::NaiveTime::MIN).and_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("RFC 3339").with_timezone(&Utc)
    }

    fn close(actual: f64, expected: f64) {
        assert!((actual - expected).abs() < 1e-6, "{actual} != {expected}");
    }

    #[test]
    fn a_berlin_month_with_a_summer_time_change_has_one_hour_less_or_more() {
        let berlin: Tz = "Europe/Berlin".parse().expect("zone");
        let (from, to) = month_of(t("2026-03-15T12:00:00Z"), berlin);
        assert_eq!((from, to), (t("2026-02-28T23:00:00Z"), t("2026-03-31T22:00:00Z")));
        assert_eq!((to - from).num_hours(), 743);
        let (from, to) = month_of(t("2026-10-15T12:00:00Z"), berlin);
        assert_eq!((from, to), (t("2026-09-30T22:00:00Z"), t("2026-10-31T23:00:00Z")));
        assert_eq!((to - from).num_hours(), 745);
        let (from, to) = month_of(t("2026-03-15T12:00:00Z"), Tz::UTC);
        assert_eq!((to - from).num_hours(), 744);
        // The first instant of the month in Berlin is still February in UTC.
        assert_eq!(month_of(t("2026-02-28T23:30:00Z"), berlin).0, t("2026-02-28T23:00:00Z"));
    }

    /// March 2026 in Berlin (743 h = 2,674,800 s). An outage 10:00–12:00 UTC on the 10th
    /// (7,200 s); a maintenance window 11:00–13:00 that day (7,200 s, 3,600 of them during the
    /// outage); the network lost 00:00–00:30 on the 20th (1,800 s inconclusive).
    /// Eligible = 2,674,800 − 7,200 − 1,800 = 2,665,800 s; downtime = 7,200 − 3,600 = 3,600 s;
    /// uptime = 100 × 2,662,200 / 2,665,800 = 99.864956110736...%;
    /// allowed at 99.9 % = 0.001 × 2,665,800 = 2,665.8 s; remaining = −934.2 s: breached.
    #[test]
    fn a_berlin_march_with_an_outage_half_in_maintenance() {
        let berlin: Tz = "Europe/Berlin".parse().expect("zone");
        let (from, to) = month_of(t("2026-03-02T00:00:00Z"), berlin);
        let history = History {
            since: Some(t("2026-01-01T00:00:00Z")),
            incidents: vec![(t("2026-03-10T10:00:00Z"), t("2026-03-10T12:00:00Z"))],
            maintenance: vec![(t("2026-03-10T11:00:00Z"), t("2026-03-10T13:00:00Z"))],
            inconclusive: vec![(t("2026-03-20T00:00:00Z"), t("2026-03-20T00:30:00Z"))],
        };
        let now = t("2026-04-05T00:00:00Z");
        let f = figures(&history, from, to, now, 99.9);
        close(f.eligible_seconds, 2_665_800.0);
        close(f.downtime_seconds, 3_600.0);
        close(f.uptime_percent.expect("eligible time"), 99.864_956_110_736);
        assert_eq!(f.incidents, 1);
        close(f.mttr_seconds.expect("an incident"), 3_600.0);
        close(f.mtbf_seconds.expect("an incident"), 2_662_200.0);
        close(f.error_budget.allowed_seconds, 2_665.8);
        close(f.error_budget.used_seconds, 3_600.0);
        close(f.error_budget.remaining_seconds, -934.2);
        close(f.error_budget.remaining_ratio.expect("a budget"), -934.2 / 2_665.8);
        assert!(!f.met);
        // The last 24 h of the month (31 March 22:00 UTC back) had no downtime.
        close(f.error_budget.burn_rate_24h.expect("eligible"), 0.0);
        // At 99.8 % the same month meets its target: 5,331.6 s allowed.
        let f = figures(&history, from, to, now, 99.8);
        assert!(f.met);
        close(f.error_budget.remaining_seconds, 5_331.6 - 3_600.0);
    }

    /// An outage across the night summer time begins in Berlin (29 March 2026, 02:00 CET →
    /// 03:00 CEST): 00:30–01:30 UTC, wall clock 01:30 to 03:30, is one hour, not two.
    #[test]
    fn an_outage_across_the_summer_time_change_counts_real_seconds() {
        let berlin: Tz = "Europe/Berlin".parse().expect("zone");
        let (from, to) = month_of(t("2026-03-29T12:00:00Z"), berlin);
        let history =
            History { incidents: vec![(t("2026-03-29T00:30:00Z"), t("2026-03-29T01:30:00Z"))], ..History::default() };
        let f = figures(&history, from, to, t("2026-04-01T00:00:00Z"), 99.9);
        close(f.downtime_seconds, 3_600.0);
        close(f.eligible_seconds, 2_674_800.0);
        close(f.uptime_percent.expect("eligible"), 100.0 * (2_674_800.0 - 3_600.0) / 2_674_800.0);
        // October: 745 h = 2,682,000 s, budget 2,682 s.
        let (from, to) = month_of(t("2026-10-10T00:00:00Z"), berlin);
        let f = figures(&History::default(), from, to, t("2026-11-02T00:00:00Z"), 99.9);
        close(f.error_budget.allowed_seconds, 2_682.0);
        assert_eq!((f.incidents, f.mttr_seconds, f.uptime_percent), (0, None, Some(100.0)));
    }

    /// The current month is measured up to now, while its budget is the whole month's; the
    /// burn rate compares the last 24 h with the budget's pace.
    #[test]
    fn the_current_month_is_measured_up_to_now_against_the_whole_months_budget() {
        let (from, to) = (t("2026-06-01T00:00:00Z"), t("2026-07-01T00:00:00Z"));
        let now = t("2026-06-11T00:00:00Z");
        let history = History {
            // 864 s down yesterday, one incident still open for the last 60 s.
            incidents: vec![
                (t("2026-06-10T10:00:00Z"), t("2026-06-10T10:14:24Z")),
                (t("2026-06-10T23:59:00Z"), t("2026-06-11T03:00:00Z")),
            ],
            ..History::default()
        };
        let f = figures(&history, from, to, now, 99.0);
        close(f.eligible_seconds, 10.0 * 86_400.0);
        close(f.downtime_seconds, 924.0);
        close(f.error_budget.allowed_seconds, 0.01 * 30.0 * 86_400.0);
        assert_eq!(f.incidents, 2);
        // Last 24 h: 924 / 86,400 = 1.0694 %, against 1 % allowed.
        close(f.error_budget.burn_rate_24h.expect("eligible"), 924.0 / 86_400.0 / 0.01);
        assert!(f.met);
    }

    #[test]
    fn time_before_the_asset_existed_counts_for_nothing() {
        let (from, to) = (t("2026-06-01T00:00:00Z"), t("2026-07-01T00:00:00Z"));
        let history = History {
            since: Some(t("2026-06-30T00:00:00Z")),
            incidents: vec![(t("2026-06-30T00:00:00Z"), t("2026-06-30T01:00:00Z"))],
            ..History::default()
        };
        let f = figures(&history, from, to, t("2026-06-30T02:00:00Z"), 99.9);
        close(f.eligible_seconds, 7_200.0);
        close(f.uptime_percent.expect("eligible"), 50.0);
        close(f.error_budget.allowed_seconds, 86.4);
        // Nothing eligible yet: no uptime, rather than 0 or 100.
        let f = figures(&history, from, to, t("2026-06-29T00:00:00Z"), 99.9);
        assert_eq!((f.uptime_percent, f.eligible_seconds, f.error_budget.burn_rate_24h), (None, 0.0, None));
        // 100 %: nothing allowed, no ratio, no burn rate.
        let f = figures(&history, from, to, t("2026-06-30T02:00:00Z"), 100.0);
        assert_eq!((f.error_budget.remaining_ratio, f.error_budget.burn_rate_24h, f.met), (None, None, false));
    }

    #[test]
    fn spans_are_clipped_merged_and_subtracted() {
        let h = |hour: i64| t("2026-01-01T00:00:00Z") + TimeDelta::hours(hour);
        let spans = normalize([(h(5), h(8)), (h(0), h(2)), (h(1), h(3)), (h(9), h(9)), (h(-2), h(-1))], h(0), h(7));
        assert_eq!(spans, vec![(h(0), h(3)), (h(5), h(7))]);
        assert_eq!(subtract(&spans, &[(h(1), h(2)), (h(6), h(10))]), vec![(h(0), h(1)), (h(2), h(3)), (h(5), h(6))]);
        assert_eq!(total(&spans), 5.0 * 3600.0);
    }
}
