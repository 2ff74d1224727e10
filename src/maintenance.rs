//! Maintenance windows: when an asset's failures are expected and must alarm no one.
//!
//! A window names its assets (`"assets": [ids]`) or picks them by metadata (`"match": {key:
//! value | [values]}`, every key must match), and is either fixed (`start`, `end`, RFC 3339) or
//! recurring (`cron`, standard 5 fields, `durationMinutes`, in `timezone`, default UTC). The
//! same shape comes from the manifest's top-level `maintenance` list and from `POST
//! /api/maintenance`.
//!
//! Pure logic with time passed in: a window's occurrences, whether it covers an asset at an
//! instant, and the [`Calendar`] of every window indexed by asset id, which is what the asset
//! actors ask on every result (a hash lookup, and for the few assets that have windows, one
//! occurrence check each).
//!
//! Time zones: a recurring window is computed in its own zone, so `0 2 * * SUN` in
//! `Europe/Berlin` is 02:00 Berlin time all year (01:00 UTC in winter, 00:00 UTC in summer). On
//! the night the clocks go forward, 02:00 does not exist and the window opens at the first
//! real instant after the gap (03:00 CEST); on the night they go back, 02:00 happens twice and
//! the window opens once, at the first. `durationMinutes` is elapsed time, so a 60-minute window
//! lasts 60 minutes even across a change.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::report::{Bound, Report, check_identifier, parse_value};

/// A window as written, in the manifest or in the body of `POST /api/maintenance`; the API
/// answers with it, and the store keeps it as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WindowSpec {
    pub id: String,
    /// The asset ids it covers (or `match`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assets: Option<Vec<String>>,
    /// Metadata every covered asset has: `{"env": "prod", "team": ["a", "b"]}` (or `assets`).
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub match_metadata: Option<BTreeMap<String, Value>>,
    /// A fixed window: from `start` (RFC 3339) ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<DateTime<Utc>>,
    /// ... to `end`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<DateTime<Utc>>,
    /// A recurring window: opens at each time of this 5-field cron expression ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// ... for this many minutes ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_minutes: Option<u64>,
    /// ... read in this IANA time zone (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

/// A window checked and ready to answer questions about time.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub spec: WindowSpec,
    schedule: Schedule,
}

#[derive(Debug, Clone, PartialEq)]
enum Schedule {
    Fixed { start: DateTime<Utc>, end: DateTime<Utc> },
    Recurring { cron: Box<Cron>, duration: TimeDelta, timezone: Tz },
}

/// One occurrence of a window: in force from `start` (included) to `end` (excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
pub struct Occurrence {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Occurrence {
    fn covers(&self, at: DateTime<Utc>) -> bool {
        self.start <= at && at < self.end
    }
}

/// The most occurrences of one window [`Window::occurrences`] returns.
pub const MAX_OCCURRENCES: usize = 50_000;

/// The longest recurring window: a week (a longer one would be maintenance for good).
pub const MAX_DURATION_MINUTES: u64 = 7 * 24 * 60;

const BOUNDS: &[Bound] = &[Bound::new("durationMinutes", 1, MAX_DURATION_MINUTES)];

/// The keys of a window, for typos.
const KEYS: &[&str] = &["id", "assets", "match", "start", "end", "cron", "durationMinutes", "timezone"];

/// Reads and checks one window at `path` (`maintenance[2]`), reporting every problem there.
/// `known_assets` are the configured asset ids: a window naming another is a problem.
pub fn parse_window(value: &Value, path: &str, known_assets: &[&str], report: &mut Report<'_>) -> Option<Window> {
    read_window(value, path, Some(known_assets), report)
}

/// A window the store kept (JSON text), checked again; the assets it names need not be
/// configured any more (it covers those that are). The error lists every problem.
pub fn read_stored(definition: &str) -> Result<Window, String> {
    let value: Value = serde_json::from_str(definition).map_err(|e| format!("not JSON: {e}"))?;
    let mut problems = Vec::new();
    let window = read_window(&value, "", None, &mut Report::new("stored window", &mut problems));
    match window {
        Some(window) if problems.is_empty() => Ok(window),
        _ => Err(problems.iter().map(|p| format!("{}: {}", p.path, p.message)).collect::<Vec<_>>().join("; ")),
    }
}

fn read_window(value: &Value, path: &str, known_assets: Option<&[&str]>, report: &mut Report<'_>) -> Option<Window> {
    if !value.is_object() {
        report.problem(path, "must be an object with id, assets or match, and start and end or cron");
        return None;
    }
    report.unknown_fields(path, value, KEYS);
    let before = report.problems.len();
    let (checked, in_range) = report.bounded(path, value, &[BOUNDS]);
    let known: serde_json::Map<String, Value> = checked
        .as_object()
        .map(|fields| fields.iter().filter(|(k, _)| KEYS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())))
        .into_iter()
        .flatten()
        .collect();
    let spec: WindowSpec = parse_value(&Value::Object(known), path, report)?;
    let window = Window::from_spec(spec, path, known_assets, report);
    (in_range && report.problems.len() == before).then_some(window).flatten()
}

impl Window {
    /// Checks a spec, reporting every problem at `path`; `known_assets` as in [`parse_window`].
    fn from_spec(
        spec: WindowSpec,
        path: &str,
        known_assets: Option<&[&str]>,
        report: &mut Report<'_>,
    ) -> Option<Window> {
        let at = |key: &str| crate::report::join_path(path, key);
        check_identifier(report, &at("id"), "window id", &spec.id);
        match (&spec.assets, &spec.match_metadata) {
            (Some(_), Some(_)) => report.problem(at("match"), "give assets or match, not both"),
            (None, None) => report.problem(path, "missing: assets (a list of asset ids) or match (metadata)"),
            (Some(assets), None) => {
                if assets.is_empty() {
                    report.problem(at("assets"), "must name at least one asset");
                }
                for (index, id) in assets.iter().enumerate() {
                    if known_assets.is_some_and(|known| !known.contains(&id.as_str())) {
                        report.problem(format!("{}[{index}]", at("assets")), format!("unknown asset id {id:?}"));
                    }
                }
            }
            (None, Some(metadata)) => {
                if metadata.is_empty() {
                    report.problem(at("match"), "must have at least one metadata key");
                }
                for (key, wanted) in metadata {
                    let scalar = |v: &Value| !matches!(v, Value::Array(_) | Value::Object(_) | Value::Null);
                    let fine = match wanted {
                        Value::Array(values) => !values.is_empty() && values.iter().all(scalar),
                        other => scalar(other),
                    };
                    if !fine {
                        report.problem(at(&format!("match.{key}")), "must be a value or a non-empty list of values");
                    }
                }
            }
        }
        let schedule = match (&spec.start, &spec.end, &spec.cron) {
            (Some(start), Some(end), None) => {
                for key in [("durationMinutes", spec.duration_minutes.is_some()), ("timezone", spec.timezone.is_some())]
                    .iter()
                    .filter(|(_, set)| *set)
                    .map(|(key, _)| key)
                {
                    report.problem(at(key), "only for a recurring window (with cron); a fixed one has start and end");
                }
                if end <= start {
                    report.problem(at("end"), format!("must be after start ({})", start.to_rfc3339()));
                }
                Some(Schedule::Fixed { start: *start, end: *end })
            }
            (None, None, Some(expression)) => {
                let cron = parse_cron(expression).map_err(|why| report.problem(at("cron"), why)).ok();
                let timezone = match spec.timezone.as_deref() {
                    None => Some(Tz::UTC),
                    Some(name) => Tz::from_str(name)
                        .map_err(|_| {
                            report.problem(
                                at("timezone"),
                                format!("unknown time zone {name:?} (an IANA name, such as Europe/Berlin or UTC)"),
                            )
                        })
                        .ok(),
                };
                let duration = match spec.duration_minutes {
                    Some(minutes) => Some(TimeDelta::minutes(i64::try_from(minutes).unwrap_or(i64::MAX))),
                    None => {
                        report.problem(at("durationMinutes"), "missing: how long each occurrence lasts, in minutes");
                        None
                    }
                };
                match (cron, timezone, duration) {
                    (Some(cron), Some(timezone), Some(duration)) => {
                        Some(Schedule::Recurring { cron: Box::new(cron), duration, timezone })
                    }
                    _ => None,
                }
            }
            (_, _, Some(_)) => {
                report.problem(at("cron"), "give start and end, or cron, not both");
                None
            }
            (Some(_), None, None) => {
                report.problem(at("end"), "missing: a fixed window needs start and end (RFC 3339)");
                None
            }
            (None, Some(_), None) => {
                report.problem(at("start"), "missing: a fixed window needs start and end (RFC 3339)");
                None
            }
            (None, None, None) => {
                report.problem(path, "missing: start and end (RFC 3339), or cron and durationMinutes");
                None
            }
        };
        Some(Window { spec, schedule: schedule? })
    }

    pub fn id(&self) -> &str {
        &self.spec.id
    }

    /// Whether the window is about this asset (at any time).
    pub fn applies_to(&self, asset_id: &str, metadata: &BTreeMap<String, Value>) -> bool {
        match (&self.spec.assets, &self.spec.match_metadata) {
            (Some(assets), _) => assets.iter().any(|id| id == asset_id),
            (None, Some(wanted)) => wanted.iter().all(|(key, wanted)| {
                let Some(value) = metadata.get(key) else { return false };
                match wanted {
                    Value::Array(values) => values.contains(value),
                    single => single == value,
                }
            }),
            (None, None) => false,
        }
    }

    /// Whether the window puts this asset in maintenance at `at`.
    pub fn is_active(&self, asset_id: &str, metadata: &BTreeMap<String, Value>, at: DateTime<Utc>) -> bool {
        self.applies_to(asset_id, metadata) && self.occurrence_at(at).is_some()
    }

    /// The occurrence in force at `at`, if any. With a duration longer than the time between
    /// two starts, occurrences overlap; the latest one to start is returned (it ends last).
    pub fn occurrence_at(&self, at: DateTime<Utc>) -> Option<Occurrence> {
        match &self.schedule {
            Schedule::Fixed { start, end } => Some(Occurrence { start: *start, end: *end }).filter(|o| o.covers(at)),
            Schedule::Recurring { cron, duration, timezone } => {
                let start = cron.find_previous_occurrence(&at.with_timezone(timezone), true).ok()?.with_timezone(&Utc);
                Some(Occurrence { start, end: start.checked_add_signed(*duration)? }).filter(|o| o.covers(at))
            }
        }
    }

    /// The first occurrence that starts after `at` (strictly).
    pub fn next_after(&self, at: DateTime<Utc>) -> Option<Occurrence> {
        match &self.schedule {
            Schedule::Fixed { start, end } => (*start > at).then_some(Occurrence { start: *start, end: *end }),
            Schedule::Recurring { cron, duration, timezone } => {
                let start = cron.find_next_occurrence(&at.with_timezone(timezone), false).ok()?.with_timezone(&Utc);
                Some(Occurrence { start, end: start.checked_add_signed(*duration)? })
            }
        }
    }

    /// The occurrences that overlap `[from, to)`, oldest first; at most [`MAX_OCCURRENCES`]
    /// (a window every minute for a year would be more: the rest is left out).
    pub fn occurrences(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Occurrence> {
        match &self.schedule {
            Schedule::Fixed { start, end } => {
                if *start < to && *end > from {
                    vec![Occurrence { start: *start, end: *end }]
                } else {
                    Vec::new()
                }
            }
            Schedule::Recurring { duration, .. } => {
                let mut found = Vec::new();
                // The first occurrence that may still be in force at `from` starts after this.
                let mut at = from.checked_sub_signed(*duration).unwrap_or(from);
                while let Some(next) = self.next_after(at) {
                    if next.start >= to || found.len() >= MAX_OCCURRENCES {
                        break;
                    }
                    if next.end > from {
                        found.push(next);
                    }
                    at = next.start;
                }
                found
            }
        }
    }

    /// The next instant after `at` when the window may open or close.
    pub fn next_edge(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let closes = self.occurrence_at(at).map(|o| o.end);
        let opens = self.next_after(at).map(|o| o.start);
        closes.into_iter().chain(opens).min()
    }
}

/// Standard cron: exactly five fields (minute, hour, day of month, month, day of week), as
/// crontab reads them; croner would also take seconds and years.
fn parse_cron(expression: &str) -> Result<Cron, String> {
    let fields = expression.split_whitespace().count();
    if fields != 5 {
        return Err(format!(
            "{expression:?} has {fields} fields: give the 5 of standard cron (minute hour day-of-month month day-of-week), e.g. \"0 2 * * SUN\""
        ));
    }
    Cron::from_str(expression).map_err(|error| {
        format!(
            "{expression:?} is not a valid cron expression ({error}); fields: minute 0-59, hour 0-23, \
             day-of-month 1-31, month 1-12 or JAN-DEC, day-of-week 0-7 or SUN-SAT"
        )
    })
}

/// Every window, indexed by the assets it covers. Built again whenever a window or an asset
/// changes; asked on every probe result.
#[derive(Debug, Default)]
pub struct Calendar {
    /// In the order given (the manifest's, then the API's).
    windows: Vec<Arc<Window>>,
    /// Asset id → the windows that cover it; assets without windows are absent.
    by_asset: HashMap<String, Vec<Arc<Window>>>,
    /// Window id → the asset ids it covers, in config order.
    by_window: HashMap<String, Vec<String>>,
}

impl Calendar {
    /// `assets`: every configured asset's id and metadata, in config order.
    pub fn new<'a>(
        windows: Vec<Arc<Window>>,
        assets: impl IntoIterator<Item = (&'a str, &'a BTreeMap<String, Value>)>,
    ) -> Calendar {
        let mut by_asset: HashMap<String, Vec<Arc<Window>>> = HashMap::new();
        let mut by_window: HashMap<String, Vec<String>> =
            windows.iter().map(|w| (w.id().to_string(), Vec::new())).collect();
        for (asset_id, metadata) in assets {
            for window in windows.iter().filter(|w| w.applies_to(asset_id, metadata)) {
                by_asset.entry(asset_id.to_string()).or_default().push(Arc::clone(window));
                by_window.entry(window.id().to_string()).or_default().push(asset_id.to_string());
            }
        }
        Calendar { windows, by_asset, by_window }
    }

    pub fn windows(&self) -> &[Arc<Window>] {
        &self.windows
    }

    pub fn window(&self, id: &str) -> Option<&Arc<Window>> {
        self.windows.iter().find(|w| w.id() == id)
    }

    /// Whether some window puts the asset in maintenance at `at`.
    pub fn in_maintenance(&self, asset_id: &str, at: DateTime<Utc>) -> bool {
        self.by_asset.get(asset_id).is_some_and(|windows| windows.iter().any(|w| w.occurrence_at(at).is_some()))
    }

    /// The windows that cover the asset, in config order.
    pub fn windows_of(&self, asset_id: &str) -> &[Arc<Window>] {
        self.by_asset.get(asset_id).map_or(&[], Vec::as_slice)
    }

    /// The assets a window covers, in config order.
    pub fn assets_of(&self, window_id: &str) -> &[String] {
        self.by_window.get(window_id).map_or(&[], Vec::as_slice)
    }

    /// The occurrences in force at `at`, by window id.
    pub fn active(&self, at: DateTime<Utc>) -> BTreeMap<String, Occurrence> {
        self.windows.iter().filter_map(|w| Some((w.id().to_string(), w.occurrence_at(at)?))).collect()
    }

    /// The next instant after `at` when any window opens or closes.
    pub fn next_edge(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.windows.iter().filter_map(|w| w.next_edge(at)).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ASSETS: &[&str] = &["api", "web", "db"];

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("RFC 3339").with_timezone(&Utc)
    }

    fn window(value: Value) -> Window {
        let mut problems = Vec::new();
        let window = parse_window(&value, "maintenance[0]", ASSETS, &mut Report::new("manifest.json", &mut problems));
        assert!(problems.is_empty(), "{problems:?}");
        window.expect("a valid window")
    }

    fn problems_of(value: Value) -> Vec<String> {
        let mut problems = Vec::new();
        let window = parse_window(&value, "maintenance[0]", ASSETS, &mut Report::new("manifest.json", &mut problems));
        assert!(window.is_none(), "refused");
        problems.iter().map(|p| format!("{}: {}", p.path, p.message)).collect()
    }

    fn no_metadata() -> BTreeMap<String, Value> {
        BTreeMap::new()
    }

    #[test]
    fn a_fixed_window_covers_from_its_start_included_to_its_end_excluded() {
        let w = window(json!({"id": "upgrade", "assets": ["api"],
            "start": "2026-12-01T02:00:00+01:00", "end": "2026-12-01T03:00:00+01:00"}));
        let m = no_metadata();
        assert!(!w.is_active("api", &m, utc("2026-12-01T00:59:59Z")));
        assert!(w.is_active("api", &m, utc("2026-12-01T01:00:00Z")), "the offset is honoured");
        assert!(w.is_active("api", &m, utc("2026-12-01T01:59:59Z")));
        assert!(!w.is_active("api", &m, utc("2026-12-01T02:00:00Z")));
        assert!(!w.is_active("web", &m, utc("2026-12-01T01:30:00Z")), "another asset");
        assert_eq!(w.next_edge(utc("2026-12-01T00:00:00Z")), Some(utc("2026-12-01T01:00:00Z")));
        assert_eq!(w.next_edge(utc("2026-12-01T01:30:00Z")), Some(utc("2026-12-01T02:00:00Z")));
        assert_eq!(w.next_edge(utc("2026-12-01T02:00:00Z")), None, "over for good");
        assert_eq!(w.next_after(utc("2026-12-01T01:30:00Z")), None);
    }

    #[test]
    fn occurrences_are_those_overlapping_the_range() {
        let daily = window(json!({"id": "nightly", "assets": ["db"], "cron": "0 2 * * *",
            "durationMinutes": 60, "timezone": "UTC"}));
        // The one in force at the start (02:00-03:00 on the 1st) counts; the 4th's starts at the end.
        let found = daily.occurrences(utc("2026-12-01T02:30:00Z"), utc("2026-12-04T02:00:00Z"));
        let starts: Vec<_> = found.iter().map(|o| o.start).collect();
        assert_eq!(starts, [utc("2026-12-01T02:00:00Z"), utc("2026-12-02T02:00:00Z"), utc("2026-12-03T02:00:00Z")]);
        assert!(found.iter().all(|o| o.end - o.start == TimeDelta::hours(1)));
        let fixed = window(json!({"id": "upgrade", "assets": ["api"],
            "start": "2026-12-01T01:00:00Z", "end": "2026-12-01T02:00:00Z"}));
        assert_eq!(fixed.occurrences(utc("2026-12-01T00:00:00Z"), utc("2026-12-01T01:00:00Z")), []);
        assert_eq!(fixed.occurrences(utc("2026-12-01T01:59:00Z"), utc("2026-12-02T00:00:00Z")).len(), 1);
        let calendar =
            Calendar::new(vec![Arc::new(daily), Arc::new(fixed)], [("db", &no_metadata()), ("api", &no_metadata())]);
        let ids = |asset: &str| calendar.windows_of(asset).iter().map(|w| w.id().to_string()).collect::<Vec<_>>();
        assert_eq!(
            (ids("api"), ids("db"), ids("web")),
            (vec!["upgrade".to_string()], vec!["nightly".to_string()], vec![])
        );
        let week = calendar.windows_of("db")[0].occurrences(utc("2026-12-01T00:00:00Z"), utc("2026-12-08T00:00:00Z"));
        assert_eq!(week.len(), 7);
    }

    #[test]
    fn match_picks_assets_by_every_metadata_key_with_lists_as_alternatives() {
        let w = window(json!({"id": "prod-db", "match": {"env": "prod", "team": ["db", "infra"]},
            "start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z"}));
        let metadata = |value: Value| -> BTreeMap<String, Value> { serde_json::from_value(value).expect("metadata") };
        assert!(w.applies_to("x", &metadata(json!({"env": "prod", "team": "db"}))));
        assert!(w.applies_to("x", &metadata(json!({"env": "prod", "team": "infra", "tier": 1}))));
        assert!(!w.applies_to("x", &metadata(json!({"env": "staging", "team": "db"}))));
        assert!(!w.applies_to("x", &metadata(json!({"env": "prod"}))), "a key the asset lacks");
        assert!(!w.applies_to("x", &no_metadata()));
        let tier = window(
            json!({"id": "t", "match": {"tier": 1}, "start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z"}),
        );
        assert!(tier.applies_to("x", &metadata(json!({"tier": 1}))));
        assert!(!tier.applies_to("x", &metadata(json!({"tier": "1"}))), "values compare as written");
    }

    #[test]
    fn a_weekly_cron_window_follows_berlin_time_across_both_dst_changes() {
        // Every Sunday 02:00 Berlin time, one hour. 2026: summer time from Sunday 29 March
        // (02:00 CET -> 03:00 CEST), winter time from Sunday 25 October (03:00 CEST -> 02:00 CET).
        let w = window(json!({"id": "weekly", "assets": ["db"], "cron": "0 2 * * SUN",
            "durationMinutes": 60, "timezone": "Europe/Berlin"}));
        let m = no_metadata();
        let next = |at: &str| w.next_after(utc(at)).expect("a next occurrence");

        // Winter: 02:00 CET is 01:00 UTC.
        assert_eq!(
            next("2026-03-20T00:00:00Z"),
            Occurrence { start: utc("2026-03-22T01:00:00Z"), end: utc("2026-03-22T02:00:00Z") }
        );
        // The night of the change: 02:00 does not exist; the window opens at the first real
        // instant after the gap, 03:00 CEST (01:00 UTC), and lasts its 60 minutes.
        let spring = next("2026-03-28T00:00:00Z");
        assert_eq!(spring, Occurrence { start: utc("2026-03-29T01:00:00Z"), end: utc("2026-03-29T02:00:00Z") });
        assert!(w.is_active("db", &m, utc("2026-03-29T01:30:00Z")));
        assert!(!w.is_active("db", &m, utc("2026-03-29T02:00:00Z")));
        // Summer: 02:00 CEST is 00:00 UTC.
        assert_eq!(next("2026-03-30T00:00:00Z").start, utc("2026-04-05T00:00:00Z"));
        assert!(w.is_active("db", &m, utc("2026-04-05T00:59:00Z")));
        assert!(!w.is_active("db", &m, utc("2026-04-05T01:30:00Z")), "01:00 UTC is 03:00 CEST: over");

        // The night back: 02:00 happens twice (00:00 UTC in CEST, 01:00 UTC in CET). The window
        // opens once, at the first, and is over when 02:00 comes round again.
        let autumn = next("2026-10-24T12:00:00Z");
        assert_eq!(autumn, Occurrence { start: utc("2026-10-25T00:00:00Z"), end: utc("2026-10-25T01:00:00Z") });
        assert!(w.is_active("db", &m, utc("2026-10-25T00:30:00Z")));
        assert!(
            !w.is_active("db", &m, utc("2026-10-25T01:30:00Z")),
            "02:30 CET, the second 02:30, is not a new window"
        );
        assert_eq!(next("2026-10-25T00:30:00Z").start, utc("2026-11-01T01:00:00Z"), "back to 01:00 UTC, a week later");
        assert_eq!(w.next_edge(utc("2026-10-25T00:30:00Z")), Some(utc("2026-10-25T01:00:00Z")));
    }

    #[test]
    fn a_daily_window_over_midnight_is_active_on_both_sides() {
        let w = window(json!({"id": "nightly", "assets": ["web"], "cron": "30 23 * * *", "durationMinutes": 90}));
        let m = no_metadata();
        assert!(!w.is_active("web", &m, utc("2026-06-01T23:29:59Z")));
        assert!(w.is_active("web", &m, utc("2026-06-01T23:30:00Z")));
        assert!(w.is_active("web", &m, utc("2026-06-02T00:59:59Z")));
        assert!(!w.is_active("web", &m, utc("2026-06-02T01:00:00Z")));
        assert_eq!(w.occurrence_at(utc("2026-06-02T00:10:00Z")).map(|o| o.start), Some(utc("2026-06-01T23:30:00Z")));
    }

    #[test]
    fn overlapping_windows_keep_an_asset_in_maintenance_until_the_last_one_ends() {
        let first = window(json!({"id": "a", "assets": ["api", "web"],
            "start": "2026-12-01T01:00:00Z", "end": "2026-12-01T03:00:00Z"}));
        let second = window(json!({"id": "b", "match": {"env": "prod"},
            "start": "2026-12-01T02:00:00Z", "end": "2026-12-01T04:00:00Z"}));
        // Recurring and overlapping itself: every hour, for 90 minutes.
        let third = window(json!({"id": "c", "assets": ["db"], "cron": "0 * * * *", "durationMinutes": 90}));
        let prod: BTreeMap<String, Value> = [("env".to_string(), json!("prod"))].into();
        let calendar = Calendar::new(
            vec![Arc::new(first), Arc::new(second), Arc::new(third)],
            [("api", &prod), ("web", &BTreeMap::new()), ("db", &BTreeMap::new())],
        );
        let at = |hhmm: &str| utc(&format!("2026-12-01T{hhmm}:00Z"));
        assert!(!calendar.in_maintenance("api", at("00:59")));
        assert!(calendar.in_maintenance("api", at("01:00")), "a");
        assert!(calendar.in_maintenance("api", at("02:59")), "a and b");
        assert!(calendar.in_maintenance("api", at("03:30")), "b still");
        assert!(!calendar.in_maintenance("api", at("04:00")));
        assert!(calendar.in_maintenance("web", at("02:30")));
        assert!(!calendar.in_maintenance("web", at("03:30")), "b does not match web");
        assert!(calendar.in_maintenance("db", at("07:45")), "the 06:00 occurrence ran until 07:30; 07:00's goes on");
        assert!(!calendar.in_maintenance("nobody", at("02:00")));
        assert_eq!(calendar.assets_of("a"), ["api", "web"]);
        assert_eq!(calendar.assets_of("b"), ["api"]);
        assert_eq!(calendar.active(at("02:30")).keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(calendar.next_edge(at("03:30")), Some(at("04:00")), "c's next start, b's end");
    }

    #[test]
    fn every_problem_is_reported_with_its_key_and_value() {
        assert_eq!(
            problems_of(json!({"id": "bad cron", "assets": ["api", "nope"], "cron": "0 2 * *",
                "durationMinutes": 0, "timezone": "Europe/Berln"})),
            [
                "maintenance[0].durationMinutes: must be at least 1",
                "maintenance[0].id: window id \"bad cron\" has ' ': use letters, digits, '-', '_' and '.'",
                "maintenance[0].assets[1]: unknown asset id \"nope\"",
                "maintenance[0].cron: \"0 2 * *\" has 4 fields: give the 5 of standard cron (minute hour day-of-month month day-of-week), e.g. \"0 2 * * SUN\"",
                "maintenance[0].timezone: unknown time zone \"Europe/Berln\" (an IANA name, such as Europe/Berlin or UTC)",
                "maintenance[0].durationMinutes: missing: how long each occurrence lasts, in minutes",
            ]
        );
        let problems = problems_of(json!({"id": "x", "assets": ["api"], "cron": "0 25 * * *", "durationMinutes": 5}));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("maintenance[0].cron: \"0 25 * * *\" is not a valid cron expression"),
            "{problems:?}"
        );
        assert_eq!(
            problems_of(json!({"id": "late", "match": {"env": "prod"},
                "start": "2026-12-01T03:00:00Z", "end": "2026-12-01T02:00:00Z", "timezone": "UTC"})),
            [
                "maintenance[0].timezone: only for a recurring window (with cron); a fixed one has start and end",
                "maintenance[0].end: must be after start (2026-12-01T03:00:00+00:00)",
            ]
        );
        assert_eq!(
            problems_of(json!({"id": "both", "assets": ["api"], "match": {}, "start": "2026-12-01T03:00:00Z"})),
            [
                "maintenance[0].match: give assets or match, not both",
                "maintenance[0].end: missing: a fixed window needs start and end (RFC 3339)",
            ]
        );
        assert_eq!(
            problems_of(json!({"id": "n", "asset": ["api"], "start": "yesterday", "end": "2026-12-01T03:00:00Z"})),
            [
                "maintenance[0].asset: unknown field (did you mean `assets`?)",
                "maintenance[0].start: input contains invalid characters",
            ]
        );
        assert_eq!(
            problems_of(json!({"id": "none", "assets": []})),
            [
                "maintenance[0].assets: must name at least one asset",
                "maintenance[0]: missing: start and end (RFC 3339), or cron and durationMinutes",
            ]
        );
    }

    #[test]
    fn a_window_reads_back_from_what_it_serializes_to() {
        let w = window(json!({"id": "weekly", "match": {"env": ["prod"]}, "cron": "0 2 * * SUN",
            "durationMinutes": 60, "timezone": "Europe/Berlin"}));
        let stored = serde_json::to_value(&w.spec).expect("serializes");
        assert_eq!(
            stored,
            json!({"id": "weekly", "match": {"env": ["prod"]}, "cron": "0 2 * * SUN",
            "durationMinutes": 60, "timezone": "Europe/Berlin"})
        );
        assert_eq!(window(stored), w);
    }
}
