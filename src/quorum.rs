//! The quorum of locations: how the verdicts of several locations on one asset (`locations:
//! {"required": 2}`) combine into one. Pure: the reports, the members' heartbeats and the time
//! come in, the verdict goes out; `actors/quorum.rs` feeds it from the store.
//!
//! A location counts only while one of its replicas is alive (its heartbeat younger than the
//! lease): a location whose replicas are all gone is `unknown`, and counts neither up nor down,
//! whatever it reported last. The asset is down when at least `required` locations report it
//! down; it is up again once fewer do and at least one location sees it up. With fewer than
//! `required` down and none up (the others gone or not reporting yet) nothing is decided: an
//! open outage stays open rather than "recover" because the locations that saw it went away.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::asset::Locations;

/// One location's verdict on an asset, as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LocationState {
    Up,
    Down,
    /// No live replica in the location, or none has reached a verdict yet.
    Unknown,
}

impl LocationState {
    pub fn as_str(self) -> &'static str {
        match self {
            LocationState::Up => "up",
            LocationState::Down => "down",
            LocationState::Unknown => "unknown",
        }
    }

    /// The state as stored (`up` or `down`); anything else is no verdict.
    pub fn parse(stored: &str) -> LocationState {
        match stored {
            "up" => LocationState::Up,
            "down" => LocationState::Down,
            _ => LocationState::Unknown,
        }
    }
}

/// What one location last reported about an asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationReport {
    pub location: String,
    pub state: LocationState,
    /// When the location's verdict became `state`.
    pub changed_at: DateTime<Utc>,
}

/// A replica as the quorum sees it: where it is and when it last beat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub location: String,
    pub at: DateTime<Utc>,
}

/// The combined verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combined {
    /// At least `required` locations see it down, since the moment the `required`-th did.
    Down { since: DateTime<Utc> },
    /// Fewer than `required` see it down, and at least one sees it up.
    Up,
    /// Neither: no location sees it up and too few see it down (gone, or no verdict yet).
    Undecided,
}

/// Every location's state and what they add up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub locations: BTreeMap<String, LocationState>,
    pub combined: Combined,
}

impl Verdict {
    /// Which locations saw what, for a notification: `down in eu, us; up in ap`.
    pub fn details(&self) -> String {
        let named = |wanted: LocationState| -> Vec<&str> {
            self.locations.iter().filter(|(_, state)| **state == wanted).map(|(name, _)| name.as_str()).collect()
        };
        let parts: Vec<String> = [
            (LocationState::Down, "down in"),
            (LocationState::Up, "up in"),
            (LocationState::Unknown, "no verdict from"),
        ]
        .into_iter()
        .filter_map(|(state, said)| {
            let names = named(state);
            (!names.is_empty()).then(|| format!("{said} {}", names.join(", ")))
        })
        .collect();
        parts.join("; ")
    }
}

/// The locations with a live replica at `now`: a heartbeat younger than `lease`.
pub fn live_locations(members: &[Heartbeat], now: DateTime<Utc>, lease: Duration) -> BTreeSet<String> {
    let lease = chrono::TimeDelta::from_std(lease).unwrap_or(chrono::TimeDelta::MAX);
    members.iter().filter(|member| now - member.at < lease).map(|member| member.location.clone()).collect()
}

/// Combines `reports` on one asset by `rule`, judging at `now` which locations are alive from
/// `members` (a location is alive while one of its replicas beat within `lease`). The locations
/// shown are those `rule` names, or else every live location and every one that reported.
pub fn decide(
    rule: &Locations,
    reports: &[LocationReport],
    members: &[Heartbeat],
    now: DateTime<Utc>,
    lease: Duration,
) -> Verdict {
    let live = live_locations(members, now, lease);
    let shown: BTreeSet<String> = match &rule.names {
        Some(names) => names.iter().cloned().collect(),
        None => live.iter().cloned().chain(reports.iter().map(|report| report.location.clone())).collect(),
    };
    let mut locations = BTreeMap::new();
    let mut down_since = Vec::new();
    for location in shown {
        let report = reports.iter().find(|report| report.location == location);
        let state = match report {
            Some(report) if live.contains(&location) => report.state,
            _ => LocationState::Unknown,
        };
        if let (LocationState::Down, Some(report)) = (state, report) {
            down_since.push(report.changed_at);
        }
        locations.insert(location, state);
    }
    down_since.sort();
    let required = usize::try_from(rule.required.max(1)).unwrap_or(usize::MAX);
    let combined = match down_since.get(required - 1) {
        Some(since) => Combined::Down { since: *since },
        None if locations.values().any(|state| *state == LocationState::Up) => Combined::Up,
        None => Combined::Undecided,
    };
    Verdict { locations, combined }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    const LEASE: Duration = Duration::from_secs(15);

    fn at(second: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + TimeDelta::seconds(second)
    }

    fn rule(required: u32, names: Option<&[&str]>) -> Locations {
        Locations { required, names: names.map(|names| names.iter().map(|name| name.to_string()).collect()) }
    }

    fn report(location: &str, state: LocationState, second: i64) -> LocationReport {
        LocationReport { location: location.into(), state, changed_at: at(second) }
    }

    fn beat(location: &str, second: i64) -> Heartbeat {
        Heartbeat { location: location.into(), at: at(second) }
    }

    use LocationState::{Down, Unknown, Up};

    #[test]
    fn one_location_down_of_two_required_is_no_outage() {
        let members = [beat("eu", 100), beat("us", 100)];
        let reports = [report("eu", Down, 90), report("us", Up, 10)];
        let verdict = decide(&rule(2, None), &reports, &members, at(101), LEASE);
        assert_eq!(verdict.combined, Combined::Up);
        assert_eq!(verdict.locations, BTreeMap::from([("eu".into(), Down), ("us".into(), Up)]));
        assert_eq!(verdict.details(), "down in eu; up in us");
    }

    #[test]
    fn the_outage_is_confirmed_when_the_required_location_sees_it_and_dated_then() {
        let members = [beat("eu", 100), beat("us", 100), beat("ap", 100)];
        let reports = [report("eu", Down, 90), report("us", Down, 95), report("ap", Up, 10)];
        let verdict = decide(&rule(2, Some(&["eu", "us", "ap"])), &reports, &members, at(101), LEASE);
        assert_eq!(verdict.combined, Combined::Down { since: at(95) });
        assert_eq!(verdict.details(), "down in eu, us; up in ap");
        // One location back up: fewer than required see it down, and one sees it up.
        let reports = [report("eu", Down, 90), report("us", Up, 99), report("ap", Up, 10)];
        let verdict = decide(&rule(2, Some(&["eu", "us", "ap"])), &reports, &members, at(101), LEASE);
        assert_eq!(verdict.combined, Combined::Up);
    }

    #[test]
    fn a_location_whose_replicas_stopped_beating_counts_neither_up_nor_down() {
        // us last beat at 80: at 101 with a 15 s lease it is gone, and its "down" no longer counts.
        let members = [beat("eu", 100), beat("us", 80), beat("ap", 100)];
        let reports = [report("eu", Down, 90), report("us", Down, 70), report("ap", Up, 10)];
        let verdict = decide(&rule(2, None), &reports, &members, at(101), LEASE);
        assert_eq!(verdict.locations["us"], Unknown);
        assert_eq!(verdict.combined, Combined::Up, "one down of two required; ap sees it up");
        assert_eq!(verdict.details(), "down in eu; up in ap; no verdict from us");
        // Still within the lease, it counts.
        let verdict = decide(&rule(2, None), &reports, &members, at(94), LEASE);
        assert_eq!(verdict.combined, Combined::Down { since: at(90) });
    }

    #[test]
    fn with_no_location_seeing_it_up_and_too_few_down_nothing_is_decided() {
        // An outage seen in eu and us: us goes away. It does not "recover" for lack of witnesses.
        let members = [beat("eu", 100), beat("us", 50)];
        let reports = [report("eu", Down, 40), report("us", Down, 45)];
        let verdict = decide(&rule(2, None), &reports, &members, at(101), LEASE);
        assert_eq!(verdict.combined, Combined::Undecided);
        // A named location with no replica at all and no report: shown, unknown.
        let verdict = decide(&rule(1, Some(&["eu", "sa"])), &[], &members, at(101), LEASE);
        assert_eq!(verdict.locations, BTreeMap::from([("eu".into(), Unknown), ("sa".into(), Unknown)]));
        assert_eq!(verdict.combined, Combined::Undecided);
    }

    #[test]
    fn a_report_from_a_location_not_named_is_left_out() {
        let members = [beat("eu", 100), beat("us", 100)];
        let reports = [report("eu", Down, 90), report("us", Down, 90)];
        let verdict = decide(&rule(1, Some(&["eu"])), &reports, &members, at(101), LEASE);
        assert_eq!(verdict.locations.keys().collect::<Vec<_>>(), ["eu"]);
        assert_eq!(verdict.combined, Combined::Down { since: at(90) });
    }
}
