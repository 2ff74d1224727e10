//! `notifiers.json`: the notification channels and the policy that decides who hears what.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::notify::{ChannelConfig, Endpoint};
use crate::probe::MAX_INTERVAL_SECONDS;
use crate::report::{Bound, Report, check_identifier, parse_value};

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
        let seconds = self.repeat_interval_seconds.unwrap_or(self.throttle_seconds);
        (self.repeat_alerts && seconds > 0).then(|| Duration::from_secs(seconds))
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
        let lists = [
            ("onDown", &self.on_down),
            ("onRecovery", &self.on_recovery),
            ("onPanic", &self.on_panic),
            ("onMaintenance", &self.on_maintenance),
            ("onDegraded", &self.on_degraded),
        ];
        for (list, names) in lists {
            for (i, name) in names.iter().enumerate() {
                if !defined.contains(&name.as_str()) {
                    report.problem(
                        format!("notificationPolicy.{list}[{i}]"),
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
    let (checked, in_range) = report.bounded(path, entry, &[Endpoint::BOUNDS]);
    let channel: ChannelConfig = parse_value(&checked, path, report)?;
    let before = report.problems.len();
    channel.validate(path, report);
    (in_range && report.problems.len() == before).then_some(channel)
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
            "notifiers.chat.type: unknown notifier type \"irc\" (one of: teams, slack, discord, webhook)",
            "notifiers.hook: unknown field `timeoutSecond`, expected one of `url`, `webhookUrl`, `timeoutSeconds`, `group`",
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

    #[test]
    fn a_missing_policy_notifies_nobody() {
        let mut problems = Vec::new();
        let mut report = Report::new("notifiers.json", &mut problems);
        let config = parse(&json!({"notifiers": {}}), &mut report).expect("valid");
        assert!(config.policy.on_down.is_empty());
    }
}
