//! An asset: one watched service as the manifest describes it, and how it is probed once.
//!
//! The common fields (id, schedule, thresholds, conditions) are here; what is specific to an
//! asset type lives in its probe's spec ([`ProbeSpec`]), which validates itself. The config
//! loader only assembles assets from files.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use crate::probe::{
    self, Condition, Facts, MAX_INTERVAL_SECONDS, Mark, ProbeContext, ProbeOutcome, ProbeResult, ProbeSpec, event_id,
    without_nul,
};
use crate::report::{Bound, Report, check_identifier};

/// One watched service. The common fields come from the seed; probe-specific settings live in
/// [`ProbeSpec`], chosen by `assetType`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssetConfig {
    pub id: String,
    /// Shown in notifications and logs; defaults to the id.
    #[serde(default)]
    pub name: String,
    /// What the probe connects to, as written; it may hold credentials, so it is never
    /// serialized: what leaves the process is [`AssetConfig::shown_address`].
    #[serde(default, skip_serializing)]
    pub address: String,
    /// Show the address as `***` everywhere outside the process (API, store, messages), for
    /// addresses that are secrets as a whole (a ping URL with a token in its path).
    #[serde(default)]
    pub hide_address: bool,
    #[serde(default = "default_interval_seconds")]
    pub interval_seconds: u64,
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    /// Consecutive failures before the asset is confirmed down: one failure may be a glitch.
    #[serde(default = "default_failure_threshold")]
    pub failure_threshold: u32,
    #[serde(default = "default_success_threshold")]
    pub success_threshold: u32,
    /// Probe interval while the asset is suspect or down; defaults to the smaller of
    /// `intervalSeconds` and 30 s, so an outage is confirmed (and its end seen) quickly, but
    /// never to less than `timeoutSeconds`, so a hanging target does not skip every retry.
    #[serde(default)]
    pub retry_interval_seconds: Option<u64>,
    #[serde(default)]
    pub metadata: BTreeMap<String, Value>,
    /// Ids of the assets this one needs: while one of them is down, this asset's outage is
    /// attributed to it (`causedBy`) and sends nothing of its own.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Checks on what the probe saw, in Gatus' syntax; all must hold (see `probe/conditions.rs`).
    #[serde(default)]
    #[schema(value_type = Vec<String>, example = json!(["[STATUS] == 200", "[RESPONSE_TIME] < 300"]))]
    pub conditions: Vec<Condition>,
    /// A probe that passes but takes longer than this many ms is `degraded`, not down.
    #[serde(default)]
    pub degraded_latency_ms: Option<u64>,
    /// Checks in the syntax of `conditions`: a probe that passes but breaks one is `degraded`.
    #[serde(default)]
    #[schema(value_type = Vec<String>, example = json!(["[RESPONSE_TIME] < 500"]))]
    pub degraded_conditions: Vec<Condition>,
    /// `connectivity`: the asset stands for statusd's own network (a gateway, a public
    /// resolver). While every such asset's latest result failed, the other assets' failures are
    /// inconclusive.
    #[serde(default)]
    pub role: Option<Role>,
    /// Shown on the status page and by its badges (default true); false keeps the asset off
    /// both (its badges answer 404), while it is monitored and reported as usual.
    #[serde(default = "default_public")]
    pub public: bool,
    /// The uptime promised, in percent (`99.9`): above 0, at most 100. None: the default of
    /// `statusd.toml` applies.
    #[serde(default)]
    pub sla_target: Option<f64>,
    /// Cluster mode: the asset is probed from several locations and confirmed down only when
    /// `required` of them see it down (see `actors/quorum.rs`). None: one verdict, as alone.
    #[serde(default)]
    pub locations: Option<Locations>,
    #[serde(flatten)]
    pub probe: ProbeSpec,
}

/// `locations`: from where an asset is probed, and how many must see it down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Locations {
    /// How many locations must see the asset down (each after its own `failureThreshold`) for
    /// it to be confirmed down; it is up again once fewer do.
    pub required: u32,
    /// The locations that probe it; None: every location of the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
}

impl Locations {
    /// Whether replicas of `location` probe the asset.
    pub fn includes(&self, location: &str) -> bool {
        self.names.as_ref().is_none_or(|names| names.iter().any(|name| name == location))
    }

    fn validate(&self, path: &str, report: &mut Report<'_>) {
        if self.required == 0 {
            report.problem(
                format!("{path}.required"),
                "0 is not allowed: it must be at least 1 (how many locations must see the asset down)",
            );
        }
        let Some(names) = &self.names else { return };
        if names.is_empty() {
            report.problem(
                format!("{path}.names"),
                "must not be empty: name the locations that probe the asset, or leave names out for every location",
            );
            return;
        }
        for (i, name) in names.iter().enumerate() {
            if name.trim().is_empty() {
                report.problem(format!("{path}.names[{i}]"), format!("{name:?}: a location name must not be empty"));
            } else if names[..i].contains(name) {
                report.problem(format!("{path}.names[{i}]"), format!("{name:?} is listed twice"));
            }
        }
        if usize::try_from(self.required).is_ok_and(|required| required > names.len()) {
            report.problem(
                format!("{path}.required"),
                format!(
                    "{} is more than the {} location(s) in names: the asset could never be confirmed down",
                    self.required,
                    names.len()
                ),
            );
        }
    }
}

fn default_public() -> bool {
    true
}

/// What an asset stands for, beyond itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// statusd's own way out to the network.
    Connectivity,
}

fn default_interval_seconds() -> u64 {
    60
}
fn default_timeout_seconds() -> u64 {
    5
}
fn default_failure_threshold() -> u32 {
    2
}
fn default_success_threshold() -> u32 {
    1
}

const DEFAULT_MAX_RETRY_INTERVAL_SECONDS: u64 = 30;

/// `degradedLatencyMs` can be no longer than the longest timeout.
pub const MAX_DEGRADED_LATENCY_MS: u64 = MAX_TIMEOUT_SECONDS * 1000;

/// An hour: a probe that takes longer has failed by any standard.
pub const MAX_TIMEOUT_SECONDS: u64 = 3600;
/// Confirming an outage (or a recovery) over more probes than this is not confirming it.
pub const MAX_THRESHOLD: u64 = 100;

impl AssetConfig {
    /// The common whole-number fields and their ranges (probe-specific ones are in
    /// [`ProbeSpec::bounds`]).
    pub const BOUNDS: &'static [Bound] = &[
        Bound::new("intervalSeconds", 1, MAX_INTERVAL_SECONDS),
        Bound::new("timeoutSeconds", 1, MAX_TIMEOUT_SECONDS),
        Bound::new("failureThreshold", 1, MAX_THRESHOLD),
        Bound::new("successThreshold", 1, MAX_THRESHOLD),
        Bound::new("retryIntervalSeconds", 1, MAX_INTERVAL_SECONDS),
        Bound::new("degradedLatencyMs", 1, MAX_DEGRADED_LATENCY_MS),
    ];

    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_seconds)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds)
    }

    pub fn retry_interval(&self) -> Duration {
        Duration::from_secs(
            self.retry_interval_seconds
                .unwrap_or(self.interval_seconds.min(DEFAULT_MAX_RETRY_INTERVAL_SECONDS).max(self.timeout_seconds)),
        )
    }

    /// The asset stands for statusd's own network (`"role": "connectivity"`).
    pub fn is_connectivity(&self) -> bool {
        self.role == Some(Role::Connectivity)
    }

    pub fn asset_type(&self) -> &'static str {
        self.probe.asset_type()
    }

    /// The address as it may be shown outside the process: `***` with `hideAddress`, otherwise
    /// with its password and secret query values masked (see [`crate::redact::url`]).
    pub fn shown_address(&self) -> String {
        if self.hide_address { crate::redact::MASK.to_string() } else { crate::redact::url(&self.address) }
    }

    /// `text` (a probe's message) with every secret of the address masked, and with
    /// `hideAddress` the address, its host and its path too: a peer may echo the request.
    pub fn scrub(&self, text: String) -> String {
        if !self.hide_address && !self.address.contains(['@', '?']) {
            return text;
        }
        crate::redact::scrub(text, &crate::redact::secrets(&self.address, self.hide_address))
    }

    /// Numbers are already in range (see [`AssetConfig::BOUNDS`]); this checks the rest.
    pub(crate) fn validate(&self, path: &str, report: &mut Report<'_>) {
        check_identifier(report, &format!("{path}.id"), "id", &self.id);
        // A push asset is never probed: its timeout means nothing.
        if !matches!(self.probe, ProbeSpec::Push(_)) {
            // Allowed: a tick that finds the previous probe still running is skipped and counted.
            if self.timeout_seconds > self.interval_seconds {
                report.warning(
                    format!("{path}.timeoutSeconds"),
                    format!(
                        "{}s is longer than intervalSeconds ({}s): while a probe takes that long, the ticks \
                         due meanwhile are skipped (counted in statusd_probes_skipped_total)",
                        self.timeout_seconds, self.interval_seconds
                    ),
                );
            }
            if let Some(retry) = self.retry_interval_seconds
                && retry < self.timeout_seconds
            {
                report.warning(
                    format!("{path}.retryIntervalSeconds"),
                    format!(
                        "{retry}s is shorter than timeoutSeconds ({}s): while a probe takes that long, the \
                         retries due meanwhile are skipped",
                        self.timeout_seconds
                    ),
                );
            }
        }
        if let Some(slow) = self.degraded_latency_ms
            && slow >= self.timeout_seconds.saturating_mul(1000)
        {
            report.warning(
                format!("{path}.degradedLatencyMs"),
                format!(
                    "{slow}ms is not shorter than timeoutSeconds ({}s): a probe that slow has failed, so the \
                     asset is never degraded by latency",
                    self.timeout_seconds
                ),
            );
        }
        if let Some(target) = self.sla_target
            && !(target > 0.0 && target <= 100.0)
        {
            report.problem(
                format!("{path}.slaTarget"),
                format!("{target} is not a percentage above 0 and at most 100 (99.9 promises 99.9% uptime)"),
            );
        }
        if let Some(locations) = &self.locations {
            locations.validate(&format!("{path}.locations"), report);
        }
        let before = report.problems.len();
        self.probe.validate(&self.address, path, report);
        // Problems are printed, logged and answered by the reload route: a probe quoting the
        // address must not quote its secrets.
        for problem in &mut report.problems[before..] {
            problem.message = self.scrub(std::mem::take(&mut problem.message));
        }
    }

    /// Probes an asset once. The timeout starts now, when the probe starts, not when it was due: a
    /// probe that waited for a worker is never failed for the wait.
    pub async fn check(&self, context: &ProbeContext) -> ProbeResult {
        let asset = self;
        let timestamp = Utc::now();
        let started = Instant::now();
        let timeout = asset.timeout();
        let mut outcome = match tokio::time::timeout(
            timeout,
            asset.probe.check(&asset.address, asset.has_conditions(), timeout, context),
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(_) => ProbeOutcome::down(None, format!("timeout after {}s", asset.timeout_seconds)),
        };
        let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let mut mark = None;
        if outcome.success && asset.has_conditions() {
            outcome.facts.response_time_ms = Some(u64::try_from(latency_ms).unwrap_or(0));
            if let Some(failed) = probe::conditions::first_failure(&asset.conditions, &outcome.facts) {
                outcome.success = false;
                outcome.message = Some(with_body_note(failed, &outcome.facts));
            }
        }
        if outcome.success
            && let Some(why) = asset.degradation(latency_ms, &outcome.facts)
        {
            mark = Some(Mark::Degraded);
            outcome.message = Some(why);
        }
        ProbeResult {
            id: event_id(timestamp),
            asset_id: asset.id.clone(),
            timestamp,
            success: outcome.success,
            latency_ms,
            code: outcome.code,
            // Stored, logged and notified: no secret of the address may be in it.
            message: outcome.message.map(|message| without_nul(asset.scrub(message))),
            mark,
            detail: outcome.detail,
        }
    }

    /// The probe must collect what conditions read (a body, a banner).
    fn has_conditions(&self) -> bool {
        !self.conditions.is_empty() || !self.degraded_conditions.is_empty()
    }

    /// Why a probe that passed in `latency_ms` with `facts` is degraded, if it is: slower than
    /// `degradedLatencyMs`, or the first of `degradedConditions` that does not hold.
    pub fn degradation(&self, latency_ms: i64, facts: &Facts) -> Option<String> {
        if let Some(slow) = self.degraded_latency_ms
            && u64::try_from(latency_ms).is_ok_and(|ms| ms > slow)
        {
            return Some(format!("slow: {latency_ms}ms > degradedLatencyMs {slow}ms"));
        }
        probe::conditions::first_failure(&self.degraded_conditions, facts)
            .map(|failed| format!("degraded: {}", with_body_note(failed, facts)))
    }
}

/// A failed condition's message, with what of the body the probe could not see when it is about
/// the body.
fn with_body_note(failed: String, facts: &Facts) -> String {
    match &facts.body_note {
        Some(note) if failed.contains("[BODY]") => format!("{failed} ({note})"),
        _ => failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn asset(settings: Value) -> AssetConfig {
        let mut value = json!({"id": "api", "assetType": "http", "address": "http://x/"});
        if let (Some(object), Value::Object(extra)) = (value.as_object_mut(), settings) {
            object.extend(extra);
        }
        serde_json::from_value(value).expect("an asset")
    }

    #[test]
    fn a_passing_probe_is_degraded_when_slower_than_the_limit_or_against_a_degraded_condition() {
        let facts = Facts { status: Some(200), body: Some(br#"{"status": "SLOW"}"#.to_vec()), ..Facts::default() };
        let slow = asset(json!({"degradedLatencyMs": 200}));
        assert_eq!(slow.degradation(200, &facts), None, "at the limit is not over it");
        assert_eq!(slow.degradation(201, &facts).as_deref(), Some("slow: 201ms > degradedLatencyMs 200ms"));

        let judged = asset(json!({"degradedConditions": ["[BODY].status == UP"]}));
        assert_eq!(judged.degradation(5, &facts).as_deref(), Some("degraded: [BODY].status (SLOW) == UP"));
        let healthy = Facts { body: Some(br#"{"status": "UP"}"#.to_vec()), ..facts };
        assert_eq!(judged.degradation(5, &healthy), None);
        assert_eq!(asset(json!({})).degradation(i64::MAX, &healthy), None, "nothing asked, nothing degraded");
    }

    /// A probe runs as a task of its own, and tokio copies a task's future whole when it spawns
    /// it, when it finishes and when its handle is dropped: a probe's future must stay small
    /// whatever the largest probe type needs, or those copies cost more than the probe's own
    /// work (see `ProbeSpec::check`).
    #[tokio::test]
    async fn a_probe_future_stays_small_whatever_the_largest_probe_type_needs() {
        let context = ProbeContext::new().expect("the probe clients");
        let http = asset(json!({}));
        let probe = http.check(&context);
        let size = std::mem::size_of_val(&probe);
        eprintln!("a probe's future: {size} bytes");
        assert!(size <= 1024, "a probe's future is {size} bytes");
    }
}
