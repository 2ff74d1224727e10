//! `notifiers.json`: the notification channels and the policy that decides who hears what.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::notify::{ChannelConfig, ChannelType, Endpoint};
use crate::probe::MAX_INTERVAL_SECONDS;
use crate::report::{Bound, Report, check_identifier, parse_value};
use strum::IntoEnumIterator;

#[derive(Debug, Clone, PartialEq)]
pub struct NotifiersConfig {
    pub notifiers: BTreeMap<String, ChannelConfig>,
    pub policy: NotificationPolicy,
}

/// Which channels hear which events, and how often.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationPolicy {
    #[serde(default)]
    pub on_down: Vec<String>,
    #[serde(default)]
    pub on_recovery: Vec<String>,
    /// Channels told when an actor panics (throttled like the rest).
    #[serde(default)]
    pub on_panic: Vec<String>,
    /// Channels told when a maintenance window opens and closes (MAINTENANCE_START/END, once
    /// per occurrence of a window).
    #[serde(default)]
    pub on_maintenance: Vec<String>,
    /// Channels told when an asset becomes degraded (DEGRADED) and when it no longer is
    /// (RECOVERY); none by default.
    #[serde(default)]
    pub on_degraded: Vec<String>,
    /// At most one notification per asset and channel in this window; 0 turns throttling off.
    #[serde(default = "default_throttle_seconds")]
    pub throttle_seconds: u64,
    /// Send a REMINDER to the channels that heard DOWN while the incident stays open.
    #[serde(default)]
    pub repeat_alerts: bool,
    /// How often reminders go out; defaults to `throttleSeconds`.
    #[serde(default)]
    pub repeat_interval_seconds: Option<u64>,
    /// Storm grouping; absent, every notification goes out on its own at once.
    #[serde(default)]
    pub grouping: Option<Grouping>,
    /// The flap breaker; absent, every confirmed change opens or closes an incident.
    #[serde(default)]
    pub flapping: Option<Flapping>,
    /// Tiers notified in turn while an incident stays open and unacknowledged; absent: `onDown`
    /// is the only tier (tier 0, at once).
    #[serde(default)]
    pub escalation: Option<Vec<Tier>>,
    /// Per-asset policies chosen by metadata: the first route that matches decides, its unset
    /// keys falling back to the ones above.
    #[serde(default)]
    pub routes: Vec<Route>,
}

/// `notificationPolicy.flapping`: an asset whose confirmed state changed more than
/// `maxTransitions` times within `windowSeconds` is flapping until its state has held for
/// `stableSeconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Flapping {
    #[serde(default = "default_flap_window_seconds")]
    pub window_seconds: u64,
    #[serde(default = "default_flap_max_transitions")]
    pub max_transitions: u64,
    #[serde(default = "default_flap_stable_seconds")]
    pub stable_seconds: u64,
}

fn default_flap_window_seconds() -> u64 {
    600
}

fn default_flap_max_transitions() -> u64 {
    4
}

fn default_flap_stable_seconds() -> u64 {
    300
}

impl Flapping {
    pub fn window(&self) -> Duration {
        Duration::from_secs(self.window_seconds)
    }

    pub fn stable(&self) -> Duration {
        Duration::from_secs(self.stable_seconds)
    }

    /// Transitions within the window allowed before the breaker trips.
    pub fn max_transitions(&self) -> usize {
        usize::try_from(self.max_transitions).unwrap_or(usize::MAX)
    }

    fn validate(&self, report: &mut Report<'_>) {
        // A window or a stable time past a week would hold an asset in `flapping` for good;
        // one transition is an outage, not a flap.
        let week = MAX_INTERVAL_SECONDS;
        check_range(report, "flapping.windowSeconds", self.window_seconds, 1..=week);
        check_range(report, "flapping.maxTransitions", self.max_transitions, 1..=10_000);
        check_range(report, "flapping.stableSeconds", self.stable_seconds, 1..=week);
    }
}

/// Reports `notificationPolicy.<key>` when `value` is outside `range`, in the words of
/// [`Bound`] ("must be at least 1").
fn check_range(report: &mut Report<'_>, key: &str, value: u64, range: std::ops::RangeInclusive<u64>) {
    let path = format!("notificationPolicy.{key}");
    if value < *range.start() {
        report.problem(path, format!("must be at least {}", range.start()));
    } else if value > *range.end() {
        report.problem(path, format!("must be at most {}", range.end()));
    }
}

/// `notificationPolicy.grouping`: a DOWN (or RECOVERY) for a channel that groups waits up to
/// `waitSeconds` for others of the same event; `minAssets` or more gathered go out as one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Grouping {
    #[serde(default = "default_group_wait_seconds")]
    pub wait_seconds: u64,
    #[serde(default = "default_group_min_assets")]
    pub min_assets: u64,
}

fn default_group_wait_seconds() -> u64 {
    10
}

fn default_group_min_assets() -> u64 {
    3
}

impl Grouping {
    /// How long the first notification of a storm waits for the others.
    pub fn wait(&self) -> Duration {
        Duration::from_secs(self.wait_seconds)
    }

    /// Gathered notifications go out as one message from this many on.
    pub fn min_assets(&self) -> usize {
        usize::try_from(self.min_assets).unwrap_or(usize::MAX)
    }

    fn validate(&self, report: &mut Report<'_>) {
        // A wait past ten minutes would hold every DOWN that long; one asset is not a storm.
        check_range(report, "grouping.waitSeconds", self.wait_seconds, 1..=600);
        check_range(report, "grouping.minAssets", self.min_assets, 2..=1_000_000);
    }
}

/// One tier of an escalation: who is paged once the incident has been open `afterSeconds`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tier {
    /// Seconds after the incident opened (not after the previous tier).
    pub after_seconds: u64,
    pub channels: Vec<String>,
}

impl Tier {
    pub fn after(&self) -> Duration {
        Duration::from_secs(self.after_seconds)
    }
}

/// What a route asks of one metadata key: a value, or any of several.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Wanted {
    One(String),
    AnyOf(Vec<String>),
}

impl Wanted {
    fn accepts(&self, text: &str) -> bool {
        match self {
            Wanted::One(wanted) => wanted == text,
            Wanted::AnyOf(wanted) => wanted.iter().any(|w| w == text),
        }
    }
}

/// A policy for the assets whose metadata matches; every key but `match` is optional.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Route {
    /// metadata key → the value (or values) it must have; empty matches every asset.
    #[serde(rename = "match", default)]
    pub matcher: BTreeMap<String, Wanted>,
    pub on_down: Option<Vec<String>>,
    pub on_recovery: Option<Vec<String>>,
    pub escalation: Option<Vec<Tier>>,
    pub throttle_seconds: Option<u64>,
    pub repeat_alerts: Option<bool>,
    pub repeat_interval_seconds: Option<u64>,
}

/// An asset's metadata, as the manifest gives it.
pub type Metadata = BTreeMap<String, Value>;

impl Route {
    /// Every key of `match` is in `metadata` with an accepted value. Numbers and booleans are
    /// compared as they are written (`8080`, `true`); a list matches when one of its items does.
    pub fn matches(&self, metadata: &Metadata) -> bool {
        self.matcher.iter().all(|(key, wanted)| metadata.get(key).is_some_and(|value| value_matches(wanted, value)))
    }
}

fn value_matches(wanted: &Wanted, value: &Value) -> bool {
    match value {
        Value::String(text) => wanted.accepts(text),
        Value::Number(n) => wanted.accepts(&n.to_string()),
        Value::Bool(b) => wanted.accepts(if *b { "true" } else { "false" }),
        Value::Array(items) => items.iter().any(|item| !item.is_array() && value_matches(wanted, item)),
        Value::Null | Value::Object(_) => false,
    }
}

/// The policy one asset is under: its route's keys, the top level's for the rest.
#[derive(Debug, Clone, Copy)]
pub struct AssetPolicy<'a> {
    pub on_down: &'a [String],
    pub on_recovery: &'a [String],
    pub escalation: Option<&'a [Tier]>,
    throttle_seconds: u64,
    repeat_alerts: bool,
    repeat_interval_seconds: Option<u64>,
}

impl AssetPolicy<'_> {
    pub fn throttle(&self) -> Duration {
        Duration::from_secs(self.throttle_seconds)
    }

    /// The reminder period, when reminders are on.
    pub fn repeat_interval(&self) -> Option<Duration> {
        let seconds = self.repeat_interval_seconds.unwrap_or(self.throttle_seconds);
        (self.repeat_alerts && seconds > 0).then(|| Duration::from_secs(seconds))
    }

    /// How many tiers there are: the escalation's, or one (`onDown`).
    pub fn tier_count(&self) -> usize {
        self.escalation.map_or(1, <[Tier]>::len)
    }

    /// Tier `index`: when it is due after the incident opened, and its channels.
    pub fn tier(&self, index: usize) -> Option<(Duration, &[String])> {
        match self.escalation {
            Some(tiers) => tiers.get(index).map(|tier| (tier.after(), tier.channels.as_slice())),
            None => (index == 0).then_some((Duration::ZERO, self.on_down)),
        }
    }

    /// Whether `channel` is paged by some tier (it may then hear the DOWN).
    pub fn pages(&self, channel: &str) -> bool {
        (0..self.tier_count()).any(|i| self.tier(i).is_some_and(|(_, channels)| channels.iter().any(|c| c == channel)))
    }

    /// Channels that hear a RECOVERY (when they heard the DOWN, or, listed only for recoveries,
    /// throttle permitting): `onRecovery`, and with an escalation every tier's channels.
    pub fn hears_recovery(&self, channel: &str) -> bool {
        self.on_recovery.iter().any(|c| c == channel) || (self.escalation.is_some() && self.pages(channel))
    }

    /// Every channel this policy may notify about an outage, each once, in a stable order.
    pub fn channels(&self) -> Vec<&str> {
        let mut all: Vec<&str> = Vec::new();
        let tiers = (0..self.tier_count()).filter_map(|i| self.tier(i)).flat_map(|(_, channels)| channels.iter());
        for channel in tiers.chain(self.on_recovery.iter()) {
            if !all.contains(&channel.as_str()) {
                all.push(channel);
            }
        }
        all
    }
}

fn default_throttle_seconds() -> u64 {
    300
}

impl Default for NotificationPolicy {
    fn default() -> Self {
        NotificationPolicy {
            on_down: Vec::new(),
            on_recovery: Vec::new(),
            on_panic: Vec::new(),
            on_maintenance: Vec::new(),
            on_degraded: Vec::new(),
            throttle_seconds: default_throttle_seconds(),
            repeat_alerts: false,
            repeat_interval_seconds: None,
            grouping: None,
            flapping: None,
            escalation: None,
            routes: Vec::new(),
        }
    }
}

impl NotificationPolicy {
    /// Windows up to a week: a longer one would silence an asset for good.
    pub const BOUNDS: &'static [Bound] = &[
        Bound::new("throttleSeconds", 0, MAX_INTERVAL_SECONDS),
        Bound::new("repeatIntervalSeconds", 1, MAX_INTERVAL_SECONDS),
    ];

    pub fn throttle(&self) -> Duration {
        Duration::from_secs(self.throttle_seconds)
    }

    /// The reminder period, when reminders are on.
    pub fn repeat_interval(&self) -> Option<Duration> {
        self.for_route(None).repeat_interval()
    }

    /// The index of the first route whose match the metadata meets, if any.
    pub fn route_of(&self, metadata: &Metadata) -> Option<usize> {
        self.routes.iter().position(|route| route.matches(metadata))
    }

    /// The policy under route `index` (None: the top level).
    pub fn for_route(&self, index: Option<usize>) -> AssetPolicy<'_> {
        let route = index.and_then(|i| self.routes.get(i));
        AssetPolicy {
            on_down: route.and_then(|r| r.on_down.as_deref()).unwrap_or(&self.on_down),
            on_recovery: route.and_then(|r| r.on_recovery.as_deref()).unwrap_or(&self.on_recovery),
            escalation: route.and_then(|r| r.escalation.as_deref()).or(self.escalation.as_deref()),
            throttle_seconds: route.and_then(|r| r.throttle_seconds).unwrap_or(self.throttle_seconds),
            repeat_alerts: route.and_then(|r| r.repeat_alerts).unwrap_or(self.repeat_alerts),
            repeat_interval_seconds: route.and_then(|r| r.repeat_interval_seconds).or(self.repeat_interval_seconds),
        }
    }

    /// Warns about route keys that no asset's metadata has: such a route never matches.
    pub fn check_routes(&self, assets: &[std::sync::Arc<crate::asset::AssetConfig>], report: &mut Report<'_>) {
        for (i, route) in self.routes.iter().enumerate() {
            for key in route.matcher.keys() {
                if !assets.iter().any(|asset| asset.metadata.contains_key(key)) {
                    report.warning(
                        format!("notificationPolicy.routes[{i}].match.{key}"),
                        format!("no asset has the metadata key {key:?}: this route matches nothing"),
                    );
                }
            }
        }
    }

    /// The policy that DEGRADED and its RECOVERY follow: the `onDegraded` channels hear both,
    /// under the same throttle as the rest, with no reminders.
    pub fn for_degraded(&self) -> NotificationPolicy {
        NotificationPolicy {
            on_down: self.on_degraded.clone(),
            on_recovery: self.on_degraded.clone(),
            throttle_seconds: self.throttle_seconds,
            ..NotificationPolicy::default()
        }
    }

    /// `defined` holds every notifier name in the file, valid or not: a notifier with a bad URL
    /// is one problem, not also a dangling name in the policy.
    fn validate(&self, defined: &[&str], report: &mut Report<'_>) {
        let mut lists: Vec<(String, &Vec<String>)> = vec![
            ("notificationPolicy.onDown".into(), &self.on_down),
            ("notificationPolicy.onRecovery".into(), &self.on_recovery),
            ("notificationPolicy.onPanic".into(), &self.on_panic),
            ("notificationPolicy.onMaintenance".into(), &self.on_maintenance),
            ("notificationPolicy.onDegraded".into(), &self.on_degraded),
        ];
        let mut escalations = vec![("notificationPolicy.escalation".to_string(), self.escalation.as_ref())];
        for (r, route) in self.routes.iter().enumerate() {
            let path = format!("notificationPolicy.routes[{r}]");
            lists.extend(route.on_down.as_ref().map(|names| (format!("{path}.onDown"), names)));
            lists.extend(route.on_recovery.as_ref().map(|names| (format!("{path}.onRecovery"), names)));
            escalations.push((format!("{path}.escalation"), route.escalation.as_ref()));
            for (key, value) in
                [("throttleSeconds", route.throttle_seconds), ("repeatIntervalSeconds", route.repeat_interval_seconds)]
            {
                if value.is_some_and(|seconds| seconds > MAX_INTERVAL_SECONDS) {
                    report.problem(format!("{path}.{key}"), format!("must be at most {MAX_INTERVAL_SECONDS}"));
                }
            }
            if self.for_route(Some(r)).repeat_alerts && self.for_route(Some(r)).repeat_interval().is_none() {
                report.problem(
                    format!("{path}.repeatIntervalSeconds"),
                    "must be at least 1 when repeatAlerts is true (or set throttleSeconds)",
                );
            }
        }
        for (path, tiers) in escalations {
            let Some(tiers) = tiers else { continue };
            if tiers.is_empty() {
                report.problem(&path, "must list at least one tier (leave it out to page onDown at once)");
            }
            let mut previous = 0;
            for (t, tier) in tiers.iter().enumerate() {
                if tier.after_seconds > MAX_INTERVAL_SECONDS {
                    report.problem(
                        format!("{path}[{t}].afterSeconds"),
                        format!("must be at most {MAX_INTERVAL_SECONDS}"),
                    );
                } else if tier.after_seconds < previous {
                    report.problem(
                        format!("{path}[{t}].afterSeconds"),
                        format!("must not be earlier than the tier before ({previous})"),
                    );
                }
                previous = previous.max(tier.after_seconds);
                lists.push((format!("{path}[{t}].channels"), &tier.channels));
            }
        }
        for (list, names) in lists {
            for (i, name) in names.iter().enumerate() {
                if !defined.contains(&name.as_str()) {
                    report.problem(
                        format!("{list}[{i}]"),
                        format!("unknown notifier {name:?} (defined: {})", defined.join(", ")),
                    );
                }
            }
        }
        if let Some(grouping) = &self.grouping {
            grouping.validate(report);
        }
        if let Some(flapping) = &self.flapping {
            flapping.validate(report);
        }
        if self.repeat_alerts && self.repeat_interval().is_none() {
            report.problem(
                "notificationPolicy.repeatIntervalSeconds",
                "must be at least 1 when repeatAlerts is true (or set throttleSeconds)",
            );
        }
    }
}

pub(super) fn parse(value: &Value, report: &mut Report<'_>) -> Option<NotifiersConfig> {
    let Some(root) = value.as_object() else {
        report.problem("", "must be an object with \"notifiers\" and \"notificationPolicy\"");
        return None;
    };
    report.unknown_fields("", value, &["notifiers", "notificationPolicy"]);
    let before = report.problems.len();

    let mut notifiers = BTreeMap::new();
    let mut defined: Vec<&str> = Vec::new();
    match root.get("notifiers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(entries)) => {
            for (name, entry) in entries {
                defined.push(name);
                let path = format!("notifiers.{name}");
                check_identifier(report, &path, "notifier name", name);
                if let Some(channel) = parse_channel(entry, &path, report) {
                    notifiers.insert(name.clone(), channel);
                }
            }
        }
        Some(_) => report.problem("notifiers", "must be an object of named notifiers"),
    }

    let policy = match root.get("notificationPolicy") {
        None | Some(Value::Null) => Some(NotificationPolicy::default()),
        Some(value) => {
            // A number out of range is a problem already, which refuses the file below.
            let (checked, _) = report.bounded("notificationPolicy", value, &[NotificationPolicy::BOUNDS]);
            parse_value::<NotificationPolicy>(&checked, "notificationPolicy", report)
        }
    };
    if let Some(policy) = &policy {
        policy.validate(&defined, report);
    }
    if report.problems.len() != before {
        return None;
    }
    Some(NotifiersConfig { notifiers, policy: policy? })
}

fn parse_channel(entry: &Value, path: &str, report: &mut Report<'_>) -> Option<ChannelConfig> {
    match entry.get("type") {
        Some(Value::String(t)) if ChannelConfig::TYPES.contains(&t.as_str()) => {}
        Some(Value::String(t)) => {
            report.problem(
                format!("{path}.type"),
                format!("unknown notifier type {t:?} (one of: {})", ChannelConfig::TYPES.join(", ")),
            );
            return None;
        }
        _ => {
            report.problem(format!("{path}.type"), format!("missing (one of: {})", ChannelConfig::TYPES.join(", ")));
            return None;
        }
    }
    let kind = ChannelConfig::TYPES.iter().position(|t| entry.get("type").and_then(Value::as_str) == Some(t));
    let kind = kind.and_then(|index| ChannelType::iter().nth(index));
    if let Some(kind) = kind.filter(|kind| kind.is_service()) {
        // Services flatten their settings, which serde cannot check for unknown keys.
        let before = report.problems.len();
        let mut known: Vec<&str> = kind.keys().iter().map(|key| key.name).collect();
        known.push("type");
        report.unknown_fields(path, entry, &known);
        if report.problems.len() != before {
            return None;
        }
    }
    let own_bounds = kind.map(ChannelType::bounds).unwrap_or_default();
    let (checked, in_range) = report.bounded(path, entry, &[Endpoint::BOUNDS, own_bounds]);
    let before = report.problems.len();
    let channel: Option<ChannelConfig> = parse_value(&checked, path, report);
    name_quoted_key(entry, path, &mut report.problems[before..]);
    let channel = channel?;
    let before = report.problems.len();
    channel.validate(path, report);
    (in_range && report.problems.len() == before).then_some(channel)
}

/// Serde reports an error inside a channel (read through its `type` tag, and for services
/// through flattened settings) at the notifier itself (`notifiers.pd: unknown variant
/// `urgent``): moves it to the key whose value it quotes.
fn name_quoted_key(entry: &Value, path: &str, problems: &mut [crate::report::Problem]) {
    let Some(fields) = entry.as_object() else { return };
    for problem in problems.iter_mut().filter(|p| p.path == path) {
        // Serde quotes the value first (`unknown variant `urgent`, expected one of …`).
        let Some(quoted) = problem.message.split('`').nth(1) else { continue };
        let key = fields.iter().filter(|(key, _)| key.as_str() != "type").find(|(_, value)| {
            let shown = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            shown == quoted
        });
        if let Some((key, _)) = key {
            problem.path = format!("{path}.{key}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems_of(value: Value) -> Vec<String> {
        let mut problems = Vec::new();
        let mut report = Report::new("notifiers.json", &mut problems);
        parse(&value, &mut report);
        problems.iter().map(|p| format!("{}: {}", p.path, p.message)).collect()
    }

    #[test]
    fn the_seed_notifiers_load_unchanged() {
        let mut problems = Vec::new();
        let mut report = Report::new("notifiers.json", &mut problems);
        let config = parse(
            &json!({
              "notifiers": {
                "teams": {"type": "teams", "webhookUrl": "https://outlook.office.com/webhook/your-webhook-url"}
              },
              "notificationPolicy": {
                "onDown": ["teams"], "onRecovery": ["teams"], "throttleSeconds": 300, "repeatAlerts": false
              }
            }),
            &mut report,
        )
        .expect("valid");
        assert!(problems.is_empty());
        assert_eq!(config.notifiers.len(), 1);
        assert_eq!(config.policy.throttle(), Duration::from_secs(300));
        assert_eq!(config.policy.repeat_interval(), None);
    }

    /// Service channels: problems name the key and the value, never a secret's.
    #[test]
    fn a_wrong_service_setting_names_its_key_and_value() {
        let problems = problems_of(json!({
          "notifiers": {
            "pd": {"type": "pagerduty", "routingKey": "SECRET-KEY", "severity": "urgent"},
            "pd2": {"type": "pagerduty", "routingKey": "SECRET-KEY", "group": true},
            "gotify": {"type": "gotify", "appToken": "SECRET-TOKEN", "priority": 11},
            "matrix": {"type": "matrix", "accessToken": "SECRET-MX", "roomId": "#ops:example.org", "baseUrl": "ftp://hs"},
            "ntfy": {"type": "ntfy", "topic": "ops", "tokne": "SECRET-NTFY"},
            "push": {"type": "pushover", "userKey": "SECRET-U", "appToken": "SECRET-A", "priority": 3},
            "og": {"type": "opsgenie", "apiKey": "SECRET-OG", "baseUrl": "https://u:SECRET-PW@api.eu.opsgenie.com x"},
            "mail": {"type": "email", "host": "smtp", "from": "not an address", "to": [], "password": "SECRET-MAIL"},
            "mail2": {"type": "email", "host": "smtp", "from": "a@b.c", "to": ["x@y.z"], "security": "ssl"}
          }
        }));
        let text = problems.join("\n");
        for expected in [
            "notifiers.pd.severity: unknown variant `urgent`",
            "notifiers.gotify.priority: must be at most 10",
            "notifiers.gotify.baseUrl: missing",
            "notifiers.matrix.roomId: \"#ops:example.org\" is not a room id",
            "notifiers.matrix.baseUrl: scheme \"ftp\" is not http or https",
            "notifiers.ntfy.tokne: unknown field (did you mean `token`?)",
            "notifiers.push.priority: must be from -2 to 2, not 3",
            "notifiers.og.baseUrl:",
            "notifiers.pd2.group: cannot be true here",
            "notifiers.mail.from: \"not an address\" is not an address",
            "notifiers.mail.to: must list at least one address",
            "notifiers.mail.password: is set without a username",
            "notifiers.mail2.security: unknown variant `ssl`, expected one of `starttls`, `tls`, `none`",
        ] {
            assert!(text.contains(expected), "{expected:?} in\n{text}");
        }
        assert!(!text.contains("SECRET"), "{text}");
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let problems = problems_of(json!({
          "notifiers": {
            "teams": {"type": "teams", "webhookUrl": "ftp://example.com/hook"},
            "chat": {"type": "irc", "url": "https://x"},
            "hook": {"type": "webhook", "url": "https://example.com/x", "timeoutSecond": 3},
            "slack": {"type": "slack"},
            "bad name": {"type": "discord", "webhookUrl": "https://discord.example/api"},
            "nourl": {"type": "webhook", "url": "not a url"}
          },
          "notificationPolicy": {
            "onDown": ["teams", "pagerduty"], "onRecovery": ["sms"], "onMaintenance": ["teams", "ops"],
            "onDegraded": ["teams", "chatops"], "repeatAlerts": true,
            "throttleSeconds": 0
          }
        }));
        let expected = [
            "notifiers.teams.webhookUrl: scheme \"ftp\" is not http or https",
            "notifiers.chat.type: unknown notifier type \"irc\" (one of: teams, slack, discord, webhook, pagerduty, opsgenie, telegram, ntfy, gotify, pushover, mattermost, rocketchat, googlechat, matrix, email)",
            "notifiers.hook: unknown field `timeoutSecond`, expected one of `url`, `webhookUrl`, `baseUrl`, `timeoutSeconds`, `maxAttempts`, `group`, `template`, `method`, `headers`, `body`",
            "notifiers.slack: missing field `webhookUrl`",
            "notifiers.bad name: notifier name \"bad name\" has ' ': use letters, digits, '-', '_' and '.'",
            "notifiers.nourl.webhookUrl: is not a valid URL (relative URL without a base)",
            "notificationPolicy.onDown[1]: unknown notifier \"pagerduty\" (defined: bad name, chat, hook, nourl, slack, teams)",
            "notificationPolicy.onRecovery[0]: unknown notifier \"sms\" (defined: bad name, chat, hook, nourl, slack, teams)",
            "notificationPolicy.onMaintenance[1]: unknown notifier \"ops\" (defined: bad name, chat, hook, nourl, slack, teams)",
            "notificationPolicy.onDegraded[1]: unknown notifier \"chatops\" (defined: bad name, chat, hook, nourl, slack, teams)",
            "notificationPolicy.repeatIntervalSeconds: must be at least 1 when repeatAlerts is true (or set throttleSeconds)",
        ];
        for line in &expected {
            assert!(problems.contains(&line.to_string()), "missing {line:?} in {problems:#?}");
        }
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    }

    #[test]
    fn every_number_out_of_range_is_refused_with_its_key_and_range() {
        let problems = problems_of(json!({
          "notifiers": {
            "slow": {"type": "webhook", "url": "https://example.com/x", "timeoutSeconds": 61},
            "never": {"type": "slack", "webhookUrl": "ftp://example.com/x", "timeoutSeconds": -1}
          },
          "notificationPolicy": {
            "onDown": ["pager"], "throttleSeconds": u64::MAX, "repeatIntervalSeconds": 0,
            "grouping": {"waitSeconds": 0, "minAssets": 1},
            "flapping": {"windowSeconds": 604801, "maxTransitions": 0}
          }
        }));
        assert_eq!(
            problems,
            [
                "notifiers.never.timeoutSeconds: must be at least 1",
                // The rest of a channel is still checked.
                "notifiers.never.webhookUrl: scheme \"ftp\" is not http or https",
                "notifiers.slow.timeoutSeconds: must be at most 60",
                "notificationPolicy.throttleSeconds: must be at most 604800",
                "notificationPolicy.repeatIntervalSeconds: must be at least 1",
                "notificationPolicy.onDown[0]: unknown notifier \"pager\" (defined: never, slow)",
                "notificationPolicy.grouping.waitSeconds: must be at least 1",
                "notificationPolicy.grouping.minAssets: must be at least 2",
                "notificationPolicy.flapping.windowSeconds: must be at most 604800",
                "notificationPolicy.flapping.maxTransitions: must be at least 1",
            ]
        );
    }

    #[test]
    fn webhook_urls_never_appear_in_problems() {
        let problems = problems_of(json!({"notifiers": {
            "a": {"type": "slack", "webhookUrl": "ftp://hooks.example/SECRET-TOKEN"},
            "b": {"type": "slack", "webhookUrl": "https://"}
        }}));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().all(|p| !p.contains("SECRET")), "{problems:?}");
    }

    fn metadata(value: Value) -> Metadata {
        serde_json::from_value(value).expect("metadata")
    }

    #[test]
    fn routes_match_every_key_with_strings_lists_numbers_and_booleans() {
        let route: Route = serde_json::from_value(json!({
            "match": {"team": "db", "env": ["prod", "staging"], "port": "5432", "critical": "true"}
        }))
        .expect("route");
        let asset = |env: Value| metadata(json!({"team": "db", "env": env, "port": 5432, "critical": true}));
        assert!(route.matches(&asset(json!("prod"))));
        assert!(route.matches(&asset(json!("staging"))));
        assert!(!route.matches(&asset(json!("dev"))));
        // A list in the metadata matches when one of its items does.
        assert!(route.matches(&asset(json!(["dev", "prod"]))));
        assert!(!route.matches(&asset(json!({"name": "prod"}))));
        assert!(!route.matches(&metadata(json!({"team": "db", "env": "prod", "port": 5432}))), "a key missing");
        let catch_all: Route = serde_json::from_value(json!({"match": {}})).expect("route");
        assert!(catch_all.matches(&Metadata::new()));
    }

    #[test]
    fn the_first_matching_route_decides_and_unset_keys_fall_back_to_the_top_level() {
        let policy: NotificationPolicy = serde_json::from_value(json!({
            "onDown": ["teams"], "onRecovery": ["teams"], "throttleSeconds": 120,
            "escalation": [{"afterSeconds": 0, "channels": ["teams"]}],
            "routes": [
                {"match": {"team": "db"}, "onDown": ["dba"], "repeatAlerts": true},
                {"match": {"team": ["db", "web"]}, "throttleSeconds": 0, "escalation": [
                    {"afterSeconds": 0, "channels": ["web"]}, {"afterSeconds": 600, "channels": ["lead"]}
                ]}
            ]
        }))
        .expect("policy");
        assert_eq!(policy.route_of(&metadata(json!({"team": "db"}))), Some(0));
        assert_eq!(policy.route_of(&metadata(json!({"team": "web"}))), Some(1));
        assert_eq!(policy.route_of(&metadata(json!({"team": "ops"}))), None);
        let db = policy.for_route(Some(0));
        assert_eq!(db.on_down, ["dba"]);
        assert_eq!(db.on_recovery, ["teams"]);
        assert_eq!(db.throttle(), Duration::from_secs(120));
        assert_eq!(db.repeat_interval(), Some(Duration::from_secs(120)));
        assert_eq!(db.tier_count(), 1, "the top level's escalation");
        let web = policy.for_route(Some(1));
        assert_eq!(web.throttle(), Duration::ZERO);
        assert_eq!(web.tier(1), Some((Duration::from_secs(600), ["lead".to_string()].as_slice())));
        assert!(web.hears_recovery("lead") && web.pages("lead"));
        assert_eq!(web.channels(), ["web", "lead", "teams"]);
        let top = policy.for_route(None);
        assert_eq!(top.repeat_interval(), None);
        let plain = NotificationPolicy { on_down: vec!["a".into()], ..NotificationPolicy::default() };
        assert_eq!(plain.for_route(None).tier(0), Some((Duration::ZERO, ["a".to_string()].as_slice())));
        assert_eq!(plain.for_route(None).tier(1), None);
    }

    #[test]
    fn routes_and_tiers_naming_unknown_channels_or_out_of_order_are_problems() {
        let problems = problems_of(json!({
          "notifiers": {"teams": {"type": "teams", "webhookUrl": "https://example.com/hook"}},
          "notificationPolicy": {
            "escalation": [{"afterSeconds": 600, "channels": ["teams"]}, {"afterSeconds": 60, "channels": ["pager"]}],
            "routes": [
              {"match": {"team": "db"}, "onDown": ["dba"], "escalation": [], "throttleSeconds": 999999999},
              {"match": {"team": 5}}
            ]
          }
        }));
        assert_eq!(
            problems,
            ["notificationPolicy.routes[1].match.team: data did not match any variant of untagged enum Wanted",],
        );
        let problems = problems_of(json!({
          "notifiers": {"teams": {"type": "teams", "webhookUrl": "https://example.com/hook"}},
          "notificationPolicy": {
            "escalation": [{"afterSeconds": 600, "channels": ["teams"]}, {"afterSeconds": 60, "channels": ["pager"]}],
            "routes": [{"match": {"team": "db"}, "onDown": ["dba"], "escalation": [], "throttleSeconds": 999999999}]
          }
        }));
        assert_eq!(
            problems,
            [
                "notificationPolicy.routes[0].throttleSeconds: must be at most 604800",
                "notificationPolicy.escalation[1].afterSeconds: must not be earlier than the tier before (600)",
                "notificationPolicy.routes[0].escalation: must list at least one tier (leave it out to page onDown at once)",
                "notificationPolicy.routes[0].onDown[0]: unknown notifier \"dba\" (defined: teams)",
                "notificationPolicy.escalation[1].channels[0]: unknown notifier \"pager\" (defined: teams)",
            ]
        );
    }

    #[test]
    fn a_route_key_no_asset_has_is_a_warning() {
        let policy: NotificationPolicy =
            serde_json::from_value(json!({"routes": [{"match": {"team": "db", "tier": "gold"}}]})).expect("policy");
        let assets: Vec<std::sync::Arc<crate::asset::AssetConfig>> = serde_json::from_value(json!([
            {"id": "a", "assetType": "http", "address": "http://localhost/", "metadata": {"team": "db"}}
        ]))
        .expect("assets");
        let mut problems = Vec::new();
        let mut report = Report::new("notifiers.json", &mut problems);
        policy.check_routes(&assets, &mut report);
        let warnings: Vec<String> = report.into_warnings().iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            [
                "notifiers.json: notificationPolicy.routes[0].match.tier: no asset has the metadata key \"tier\": this route matches nothing"
            ]
        );
        assert!(problems.is_empty());
    }

    #[test]
    fn a_missing_policy_notifies_nobody() {
        let mut problems = Vec::new();
        let mut report = Report::new("notifiers.json", &mut problems);
        let config = parse(&json!({"notifiers": {}}), &mut report).expect("valid");
        assert!(config.policy.on_down.is_empty());
    }
}
