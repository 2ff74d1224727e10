//! `manifest.json`: the assets to watch, in the seed's format.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::asset::AssetConfig;
use crate::dependencies::DependencyGraph;
use crate::maintenance::{Window, parse_window};
use crate::probe::ProbeSpec;
use crate::report::{Problems, Report, parse_value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub assets: Vec<Arc<AssetConfig>>,
    /// The top-level `maintenance` list (optional). Windows made by the API are in the store.
    #[serde(skip)]
    pub maintenance: Vec<Window>,
}

impl Manifest {
    /// The ids of the assets with `"role": "connectivity"`.
    pub fn connectivity(&self) -> BTreeSet<String> {
        self.assets.iter().filter(|a| a.is_connectivity()).map(|a| a.id.clone()).collect()
    }

    /// Takes the running manifest's copy of every asset that did not change, so that an asset
    /// is held once (by the running config and its actor's spec alike) across reloads, not
    /// once per reload that kept it: at 100,000 assets a copy is ≈ 45 MB.
    pub fn share_unchanged(&mut self, running: &Manifest) {
        let running: HashMap<&str, &Arc<AssetConfig>> = running.assets.iter().map(|a| (a.id.as_str(), a)).collect();
        for asset in &mut self.assets {
            if let Some(kept) = running.get(asset.id.as_str())
                && **kept == *asset
            {
                *asset = Arc::clone(kept);
            }
        }
    }

    /// Parses and validates a manifest already read into a JSON value (`file` names it in
    /// the problems).
    pub fn from_value(value: &Value, file: &str) -> Result<Manifest, Problems> {
        let mut problems = Vec::new();
        let manifest = parse(value, &mut Report::new(file, &mut problems));
        match manifest {
            Some(manifest) if problems.is_empty() => Ok(manifest),
            _ => Err(Problems(problems)),
        }
    }
}

pub(super) fn parse(value: &Value, report: &mut Report<'_>) -> Option<Manifest> {
    let Some(root) = value.as_object() else {
        report.problem("", "must be an object with an \"assets\" list");
        return None;
    };
    report.unknown_fields("", value, &["assets", "maintenance"]);
    let Some(items) = root.get("assets") else {
        report.problem("assets", "missing: list the assets to watch (it may be empty)");
        return None;
    };
    let Some(items) = items.as_array() else {
        report.problem("assets", "must be a list");
        return None;
    };

    let mut assets = Vec::with_capacity(items.len());
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    let mut complete = true;
    for (index, item) in items.iter().enumerate() {
        let path = format!("assets[{index}]");
        match parse_asset(item, &path, report) {
            Some(asset) => {
                if let Some(first) = first_seen.get(&asset.id) {
                    report.problem(
                        format!("{path}.id"),
                        format!("duplicate id {:?} (first used by assets[{first}])", asset.id),
                    );
                } else {
                    first_seen.insert(asset.id.clone(), index);
                }
                assets.push(Arc::new(asset));
            }
            None => complete = false,
        }
    }
    if complete {
        for problem in DependencyGraph::check(&assets) {
            report.problem(format!("assets[{}].dependsOn[{}]", problem.asset, problem.dependency), problem.message);
        }
    }
    // Every id written, valid asset or not: an asset with a problem is one problem, not also
    // an unknown id in a window.
    let ids: Vec<&str> = items.iter().filter_map(|item| item.get("id")?.as_str()).collect();
    let maintenance = parse_maintenance(root.get("maintenance"), &ids, report);
    (complete && maintenance.is_some()).then(|| Manifest { assets, maintenance: maintenance.unwrap_or_default() })
}

/// The `maintenance` list: every window checked against the assets (a window naming an asset
/// that is not there is a problem). None when any window has a problem.
fn parse_maintenance(value: Option<&Value>, known: &[&str], report: &mut Report<'_>) -> Option<Vec<Window>> {
    let items = match value {
        None | Some(Value::Null) => return Some(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            report.problem("maintenance", "must be a list of maintenance windows");
            return None;
        }
    };
    let mut windows: Vec<Window> = Vec::with_capacity(items.len());
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    let mut complete = true;
    for (index, item) in items.iter().enumerate() {
        let path = format!("maintenance[{index}]");
        match parse_window(item, &path, known, report) {
            Some(window) => {
                if let Some(first) = first_seen.get(window.id()) {
                    report.problem(
                        format!("{path}.id"),
                        format!("duplicate id {:?} (first used by maintenance[{first}])", window.id()),
                    );
                    complete = false;
                } else {
                    first_seen.insert(window.id().to_string(), index);
                }
                windows.push(window);
            }
            None => complete = false,
        }
    }
    complete.then_some(windows)
}

fn parse_asset(item: &Value, path: &str, report: &mut Report<'_>) -> Option<AssetConfig> {
    let Some(object) = item.as_object() else {
        report.problem(path, "must be an object");
        return None;
    };
    match object.get("assetType") {
        None => {
            report.problem(
                format!("{path}.assetType"),
                format!("missing (one of: {})", ProbeSpec::ASSET_TYPES.join(", ")),
            );
            return None;
        }
        Some(Value::String(t)) if !ProbeSpec::ASSET_TYPES.contains(&t.as_str()) => {
            report.problem(
                format!("{path}.assetType"),
                format!("unknown asset type {t:?} (one of: {})", ProbeSpec::ASSET_TYPES.join(", ")),
            );
            return None;
        }
        _ => {}
    }

    let asset_type = object.get("assetType").and_then(Value::as_str).unwrap_or_default();
    let (checked, in_range) = report.bounded(path, item, &[AssetConfig::BOUNDS, ProbeSpec::bounds(asset_type)]);
    let before = report.problems.len();
    let warned = report.warnings.len();
    let mut asset: AssetConfig = parse_value(&checked, path, report)?;
    // Every field the type knows survives a round trip; any other key in the input is a typo.
    if let Ok(Value::Object(known)) = serde_json::to_value(&asset) {
        // `address` is never serialized (it may hold credentials).
        let known: Vec<&str> = known.keys().map(String::as_str).chain(["address"]).collect();
        report.unknown_fields(path, item, &known);
    }
    if asset.name.is_empty() {
        asset.name = asset.id.clone();
    }
    // A missed push is already a confirmed fact (its grace period was the benefit of the
    // doubt), so a push asset goes down on the first miss unless told otherwise.
    if matches!(asset.probe, ProbeSpec::Push(_)) && !object.contains_key("failureThreshold") {
        asset.failure_threshold = 1;
    }
    asset.validate(path, report);
    if !in_range {
        // Checked under defaults in place of the refused numbers: its warnings may be about those.
        report.warnings.truncate(warned);
        return None;
    }
    (report.problems.len() == before).then_some(asset)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use serde_json::json;

    fn problems_of(value: Value) -> Vec<String> {
        let mut problems = Vec::new();
        let mut report = Report::new("manifest.json", &mut problems);
        parse(&value, &mut report);
        problems.iter().map(|p| format!("{}: {}", p.path, p.message)).collect()
    }

    fn parse_ok(value: Value) -> Manifest {
        let mut problems = Vec::new();
        let mut report = Report::new("manifest.json", &mut problems);
        let manifest = parse(&value, &mut report);
        assert!(problems.is_empty(), "{problems:?}");
        manifest.expect("a manifest without problems")
    }

    #[test]
    fn the_seed_manifest_loads_unchanged() {
        let manifest = parse_ok(json!({
          "assets": [
            {"id": "api-prod", "assetType": "http", "name": "Production API",
             "address": "https://api.example.com/health", "intervalSeconds": 60,
             "timeoutSeconds": 5, "expectedStatusCodes": [200],
             "metadata": {"env": "prod", "owner": "platform-team"}},
            {"id": "web-prod", "assetType": "http", "name": "Production Website",
             "address": "https://www.example.com", "intervalSeconds": 120,
             "timeoutSeconds": 10, "expectedStatusCodes": [200, 301]}
          ]
        }));
        assert_eq!(manifest.assets.len(), 2);
        let api = &manifest.assets[0];
        assert_eq!(api.failure_threshold, 2);
        assert_eq!(api.success_threshold, 1);
        assert_eq!(api.retry_interval(), Duration::from_secs(30));
        assert_eq!(api.metadata["owner"], json!("platform-team"));
        assert_eq!(manifest.assets[1].retry_interval(), Duration::from_secs(30));
    }

    #[test]
    fn defaults_fill_what_the_seed_leaves_out() {
        let manifest = parse_ok(json!({"assets": [
            {"id": "a", "assetType": "http", "address": "http://localhost/"}
        ]}));
        let a = &manifest.assets[0];
        assert_eq!(a.name, "a");
        assert_eq!((a.interval_seconds, a.timeout_seconds), (60, 5));
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let problems = problems_of(json!({"assets": [
            {"id": "ok", "assetType": "http", "address": "http://localhost/"},
            {"id": "bad interval", "assetType": "http", "address": "http://x/", "intervalSeconds": 0},
            {"id": "ok", "assetType": "http", "address": "http://localhost/"},
            {"id": "ftp", "assetType": "ftp", "address": "ftp://x"},
            {"id": "empty", "assetType": "http", "address": ""},
            {"id": "typo", "assetType": "http", "address": "http://x/", "intervalSecond": 5},
            {"id": "wrong-type", "assetType": "http", "address": "http://x/", "timeoutSeconds": "5"},
            {"id": "slow", "assetType": "http", "address": "http://x/", "intervalSeconds": 5, "timeoutSeconds": 10},
            {"id": "codes", "assetType": "http", "address": "http://x/", "expectedStatusCodes": [200, 1000]},
            {"assetType": "http", "address": "http://x/"},
            {"id": "notype", "address": "http://x/"},
            {"id": "zero", "assetType": "http", "address": "http://x/", "failureThreshold": 0, "successThreshold": 0, "retryIntervalSeconds": 0},
            {"id": "scheme", "assetType": "http", "address": "ftp://x/"}
        ]}));
        let expected = [
            "assets[1].id: id \"bad interval\" has ' ': use letters, digits, '-', '_' and '.'",
            "assets[1].intervalSeconds: must be at least 1",
            "assets[2].id: duplicate id \"ok\" (first used by assets[0])",
            "assets[3].assetType: unknown asset type \"ftp\" (one of: http, tcp, dns, tls, icmp, push)",
            "assets[4].address: must not be empty: an http asset needs a URL",
            "assets[5].intervalSecond: unknown field (did you mean `intervalSeconds`?)",
            "assets[6].timeoutSeconds: must be a whole number from 1 to 3600, not \"5\"",
            "assets[8].expectedStatusCodes[1]: must be at most 599",
            "assets[9]: missing field `id`",
            "assets[10].assetType: missing (one of: http, tcp, dns, tls, icmp, push)",
            "assets[11].failureThreshold: must be at least 1",
            "assets[11].successThreshold: must be at least 1",
            "assets[11].retryIntervalSeconds: must be at least 1",
            "assets[12].address: scheme \"ftp\" is not http or https",
        ];
        for line in &expected {
            assert!(problems.contains(&line.to_string()), "missing {line:?} in {problems:#?}");
        }
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    }

    #[test]
    fn every_number_out_of_range_is_refused_with_its_key_and_range() {
        let problems = problems_of(json!({"assets": [
            {"id": "a", "assetType": "http", "address": "http://x/", "intervalSeconds": 604_801,
             "timeoutSeconds": u64::MAX, "failureThreshold": 4_294_967_296u64, "successThreshold": -1,
             "retryIntervalSeconds": 1.5, "expectedStatusCodes": [200, -1, 1e30]},
            {"id": "b", "assetType": "push", "token": "0123456789abcdef", "graceSeconds": -1},
            {"id": "c", "assetType": "tls", "address": "x:443", "minDaysValid": i64::MAX},
            {"id": "d e", "assetType": "http", "address": "http://x/", "intervalSeconds": 0}
        ]}));
        assert_eq!(
            problems,
            [
                "assets[0].intervalSeconds: must be at most 604800",
                "assets[0].timeoutSeconds: must be at most 3600",
                "assets[0].failureThreshold: must be at most 100",
                "assets[0].successThreshold: must be at least 1",
                "assets[0].retryIntervalSeconds: must be a whole number from 1 to 604800, not 1.5",
                "assets[0].expectedStatusCodes[1]: must be at least 100",
                "assets[0].expectedStatusCodes[2]: must be at most 599",
                // Inside the flattened probe settings too, where serde would lose the key.
                "assets[1].graceSeconds: must be at least 0",
                "assets[2].minDaysValid: must be at most 3650",
                // The rest of an asset is still checked.
                "assets[3].intervalSeconds: must be at least 1",
                "assets[3].id: id \"d e\" has ' ': use letters, digits, '-', '_' and '.'",
            ]
        );
    }

    #[test]
    fn a_timeout_longer_than_the_interval_is_a_warning_and_retries_wait_for_it() {
        let mut problems = Vec::new();
        let mut report = Report::new("manifest.json", &mut problems);
        let manifest = parse(
            &json!({"assets": [
                {"id": "slow", "assetType": "http", "address": "http://x/", "intervalSeconds": 10, "timeoutSeconds": 60},
                {"id": "retry", "assetType": "http", "address": "http://x/", "timeoutSeconds": 20, "retryIntervalSeconds": 5},
                {"id": "cron", "assetType": "push", "token": "0123456789abcdef", "intervalSeconds": 1}
            ]}),
            &mut report,
        );
        let warnings: Vec<String> = report.warnings.iter().map(|w| format!("{}: {}", w.path, w.message)).collect();
        let manifest = manifest.expect("warnings refuse nothing");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            warnings,
            [
                "assets[0].timeoutSeconds: 60s is longer than intervalSeconds (10s): while a probe takes that long, \
                 the ticks due meanwhile are skipped (counted in statusd_probes_skipped_total)",
                "assets[1].retryIntervalSeconds: 5s is shorter than timeoutSeconds (20s): while a probe takes that \
                 long, the retries due meanwhile are skipped",
            ]
        );
        // The default retry interval is never shorter than the timeout.
        assert_eq!(manifest.assets[0].retry_interval(), Duration::from_secs(60));
        assert_eq!(manifest.assets[1].retry_interval(), Duration::from_secs(5), "as configured");
    }

    #[test]
    fn problems_never_quote_the_secrets_of_an_address() {
        let problems = problems_of(json!({"assets": [
            {"id": "a", "assetType": "http", "address": "http://user:s3cretpw@host:99999/x?token=t0k3n"},
            {"id": "b", "assetType": "icmp", "address": "http://host/ping/t0k3n", "hideAddress": true}
        ]}));
        assert_eq!(
            problems,
            [
                r#"assets[0].address: "http://user:***@host:99999/x?token=***" is not a valid URL (invalid port number)"#,
                r#"assets[1].address: "***" is not a host: give a host name or IP address, no URL"#,
            ]
        );
    }

    #[test]
    fn an_address_is_shown_masked_and_hidden_on_request() {
        let manifest = parse_ok(json!({"assets": [
            {"id": "a", "assetType": "http", "address": "https://u:pw@example.com/h?apikey=k&page=2"},
            {"id": "b", "assetType": "http", "address": "https://example.com/h", "hideAddress": true}
        ]}));
        let (a, b) = (&manifest.assets[0], &manifest.assets[1]);
        assert!(!a.hide_address);
        assert_eq!(a.shown_address(), "https://u:***@example.com/h?apikey=***&page=2");
        assert_eq!(b.shown_address(), "***");
        // The address as written is never serialized, masked or not.
        let serialized = serde_json::to_value(a).expect("serializes");
        assert_eq!(serialized.get("address"), None);
        assert_eq!(serialized["hideAddress"], json!(false));
    }

    #[test]
    fn public_defaults_to_true_and_an_sla_target_must_be_a_percentage() {
        let asset = |id: &str, extra: Value| {
            let mut asset = json!({"id": id, "assetType": "tcp", "address": "127.0.0.1:1"});
            asset.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
            asset
        };
        let problems = problems_of(json!({"assets": [
            asset("zero", json!({"slaTarget": 0})),
            asset("over", json!({"slaTarget": 100.5})),
        ]}));
        assert_eq!(
            problems,
            [
                "assets[0].slaTarget: 0 is not a percentage above 0 and at most 100 (99.9 promises 99.9% uptime)",
                "assets[1].slaTarget: 100.5 is not a percentage above 0 and at most 100 (99.9 promises 99.9% uptime)",
            ]
        );
        let manifest = parse_ok(json!({"assets": [
            asset("api", json!({})),
            asset("db", json!({"public": false, "slaTarget": 99.95})),
        ]}));
        assert!(manifest.assets[0].public);
        assert_eq!((manifest.assets[1].public, manifest.assets[1].sla_target), (false, Some(99.95)));
    }

    #[test]
    fn dependencies_on_unknown_assets_and_cycles_are_refused_with_their_path() {
        let asset = |id: &str, depends_on: Value| json!({"id": id, "assetType": "tcp", "address": "127.0.0.1:1", "dependsOn": depends_on});
        let problems = problems_of(json!({"assets": [
            asset("gateway", json!([])),
            asset("db", json!(["gateway", "dns"])),
            asset("api", json!(["db", "web"])),
            asset("web", json!(["api"])),
        ]}));
        assert_eq!(problems, ["assets[1].dependsOn[1]: unknown asset \"dns\""]);
        let problems = problems_of(json!({"assets": [
            asset("db", json!([])),
            asset("api", json!(["db", "web"])),
            asset("web", json!(["api"])),
        ]}));
        assert_eq!(problems, ["assets[2].dependsOn[0]: dependency cycle: api → web → api"]);
        let manifest = parse_ok(json!({"assets": [asset("db", json!([])), asset("api", json!(["db"]))]}));
        assert_eq!(manifest.assets[1].depends_on, ["db"]);
    }

    #[test]
    fn maintenance_windows_load_with_the_assets_and_every_problem_names_its_key() {
        let manifest = parse_ok(json!({
            "assets": [{"id": "db", "assetType": "tcp", "address": "db:5432"}],
            "maintenance": [
                {"id": "weekly", "assets": ["db"], "cron": "0 2 * * SUN", "durationMinutes": 60, "timezone": "Europe/Berlin"},
                {"id": "upgrade", "match": {"env": "prod"}, "start": "2026-12-01T02:00:00Z", "end": "2026-12-01T03:00:00Z"}
            ]
        }));
        assert_eq!(manifest.maintenance.iter().map(Window::id).collect::<Vec<_>>(), ["weekly", "upgrade"]);
        assert!(parse_ok(json!({"assets": []})).maintenance.is_empty(), "optional");

        assert_eq!(
            problems_of(json!({
                "assets": [{"id": "db", "assetType": "tcp", "address": "db:5432"},
                           {"id": "broken", "assetType": "http", "address": ""}],
                "maintenance": [
                    {"id": "w", "assets": ["db", "broken", "gone"], "cron": "61 * * * *", "durationMinutes": 5},
                    {"id": "w", "assets": ["db"], "cron": "0 2 * * *", "durationMinutes": 5, "timezone": "Mars/Olympus"},
                    {"id": "w", "assets": ["db"], "start": "2026-12-01T03:00:00Z", "end": "2026-12-01T02:00:00Z"}
                ]
            })),
            [
                "assets[1].address: must not be empty: an http asset needs a URL",
                "maintenance[0].assets[2]: unknown asset id \"gone\"",
                "maintenance[0].cron: \"61 * * * *\" is not a valid cron expression (Component error: Number out of bounds.); \
                 fields: minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or JAN-DEC, day-of-week 0-7 or SUN-SAT",
                "maintenance[1].timezone: unknown time zone \"Mars/Olympus\" (an IANA name, such as Europe/Berlin or UTC)",
                "maintenance[2].end: must be after start (2026-12-01T03:00:00+00:00)",
            ]
        );
        assert_eq!(
            problems_of(json!({"assets": [], "maintenance": [
                {"id": "x", "assets": [], "start": "2026-12-01T02:00:00Z", "end": "2026-12-01T03:00:00Z"}
            ]}))[0],
            "maintenance[0].assets: must name at least one asset"
        );
        assert_eq!(
            problems_of(json!({"assets": [], "maintenance": {}})),
            ["maintenance: must be a list of maintenance windows"]
        );
    }

    #[test]
    fn degraded_and_role_settings_are_checked_with_file_key_and_value() {
        let problems = problems_of(json!({"assets": [
            {"id": "a", "assetType": "http", "address": "http://x/", "role": "gateway"},
            {"id": "b", "assetType": "http", "address": "http://x/", "degradedLatencyMs": 0},
            {"id": "c", "assetType": "http", "address": "http://x/", "degradedLatencyMs": 3_600_001},
            {"id": "d", "assetType": "http", "address": "http://x/", "degradedConditions": ["[RESPONSE_TIME] < fast"]}
        ]}));
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert_eq!(problems[0], "assets[0].role: unknown variant `gateway`, expected `connectivity`");
        assert_eq!(problems[1], "assets[1].degradedLatencyMs: must be at least 1");
        assert_eq!(problems[2], "assets[2].degradedLatencyMs: must be at most 3600000");
        assert!(problems[3].starts_with("assets[3].degradedConditions[0]: "), "{problems:#?}");

        let mut problems = Vec::new();
        let mut report = Report::new("manifest.json", &mut problems);
        let manifest = parse(
            &json!({"assets": [
                {"id": "gw", "assetType": "tcp", "address": "10.0.0.1:53", "role": "connectivity"},
                {"id": "api", "assetType": "http", "address": "http://x/", "timeoutSeconds": 2,
                 "degradedLatencyMs": 2000, "degradedConditions": ["[BODY].status == UP"]}
            ]}),
            &mut report,
        )
        .expect("valid");
        let warnings: Vec<String> = report.warnings.iter().map(|w| format!("{}: {}", w.path, w.message)).collect();
        assert_eq!(
            warnings,
            ["assets[1].degradedLatencyMs: 2000ms is not shorter than timeoutSeconds (2s): a probe that slow has \
              failed, so the asset is never degraded by latency"]
        );
        assert_eq!(manifest.connectivity().into_iter().collect::<Vec<_>>(), ["gw"]);
        assert_eq!(manifest.assets[1].degraded_latency_ms, Some(2000));
        assert_eq!(manifest.assets[1].degraded_conditions.len(), 1);
    }

    #[test]
    fn locations_are_checked_with_file_key_and_value() {
        let asset = |id: &str, locations: Value| json!({"id": id, "assetType": "http", "address": "http://x/", "locations": locations});
        let problems = problems_of(json!({"assets": [
            asset("zero", json!({"required": 0})),
            asset("none", json!({"names": [], "required": 1})),
            asset("twice", json!({"names": ["eu", "us", "eu"], "required": 2})),
            asset("blank", json!({"names": ["eu", " "], "required": 1})),
            asset("more", json!({"names": ["eu", "us"], "required": 3})),
            asset("typo", json!({"require": 2})),
            asset("negative", json!({"required": -1})),
        ]}));
        assert_eq!(problems.len(), 7, "{problems:#?}");
        assert_eq!(
            problems[0],
            "assets[0].locations.required: 0 is not allowed: it must be at least 1 (how many locations must see the \
             asset down)"
        );
        assert!(problems[1].starts_with("assets[1].locations.names: must not be empty"), "{problems:#?}");
        assert_eq!(problems[2], "assets[2].locations.names[2]: \"eu\" is listed twice");
        assert_eq!(problems[3], "assets[3].locations.names[1]: \" \": a location name must not be empty");
        assert_eq!(
            problems[4],
            "assets[4].locations.required: 3 is more than the 2 location(s) in names: the asset could never be \
             confirmed down"
        );
        assert!(problems[5].starts_with("assets[5].locations"), "{problems:#?}");
        assert!(problems[6].starts_with("assets[6].locations"), "{problems:#?}");

        let manifest = parse_ok(json!({"assets": [
            asset("any", json!({"required": 2})),
            asset("named", json!({"names": ["eu", "us", "ap"], "required": 2})),
            {"id": "plain", "assetType": "http", "address": "http://x/"},
        ]}));
        let any = manifest.assets[0].locations.as_ref().expect("locations");
        assert_eq!((any.required, any.names.as_ref()), (2, None));
        assert!(any.includes("anywhere"));
        let named = manifest.assets[1].locations.as_ref().expect("locations");
        assert!(named.includes("us") && !named.includes("sa"));
        assert_eq!(manifest.assets[2].locations, None);
    }

    #[test]
    fn a_manifest_without_an_assets_list_is_rejected() {
        assert_eq!(
            problems_of(json!({"asets": []})),
            vec![
                "asets: unknown field (did you mean `assets`?)".to_string(),
                "assets: missing: list the assets to watch (it may be empty)".to_string()
            ]
        );
        assert_eq!(problems_of(json!([])), vec![": must be an object with an \"assets\" list"]);
    }
}
