//! Extreme numbers in every numeric setting, manifest field and notifiers field: what
//! `check-config` refuses it names, and what it accepts runs (readiness, a retention pass, the
//! first probes, a clean stop) without panicking.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use futures::StreamExt;
use proptest::prelude::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use statusd::ProbeResult;
use statusd::Settings;
use statusd::Store;
use statusd::{AssetConfig, Config};

use crate::e2e::harness::{Backend, Receiver, Setup, Target, eventually, http_asset};

const WAIT: Duration = Duration::from_secs(20);
/// The latency of the seeded old result: its hour's rollup shows it once retention rolled it up.
const SEEDED_LATENCY_MS: i64 = 12_345;

/// What the issue names: 0, 1, u32::MAX, u64::MAX, i64::MAX, and negative numbers (every
/// field is a JSON, TOML or environment number, which may be negative).
const EXTREMES: [i128; 7] = [0, 1, u32::MAX as i128, u64::MAX as i128, i64::MAX as i128, -1, i64::MIN as i128];

/// Where a field lives.
#[derive(Clone, Copy)]
enum Place {
    /// A setting, by its dotted key in `statusd.toml`.
    Setting,
    /// The second asset of the manifest (`assets[1]`), built for the value, given the target.
    Asset(fn(&str, i128) -> Value),
    /// A field of `notificationPolicy`.
    Policy(&'static str),
    /// The `timeoutSeconds` of the webhook channel `hook`.
    ChannelTimeout,
}

struct Field {
    /// What a refusal must name: the setting's key, or the path of the value in its file.
    key: &'static str,
    /// The values accepted, with every other field at its default; None where that is not a
    /// range (a condition's text).
    accepts: Option<RangeInclusive<i128>>,
    place: Place,
}

fn number(value: i128) -> Value {
    match i64::try_from(value) {
        Ok(small) => json!(small),
        Err(_) => json!(u64::try_from(value).expect("a JSON number")),
    }
}

/// The asset under test, probed every second.
fn probed(asset_type: &str, address: String) -> Value {
    json!({"id": "extreme", "assetType": asset_type, "address": address,
           "intervalSeconds": 1, "timeoutSeconds": 1, "retryIntervalSeconds": 1})
}

fn http_with(url: &str, key: &str, value: i128) -> Value {
    let mut asset = probed("http", url.to_string());
    asset[key] = number(value);
    asset
}

fn setting(key: &'static str, accepts: RangeInclusive<i128>) -> Field {
    Field { key, accepts: Some(accepts), place: Place::Setting }
}

fn asset(key: &'static str, accepts: Option<RangeInclusive<i128>>, build: fn(&str, i128) -> Value) -> Field {
    Field { key, accepts, place: Place::Asset(build) }
}

const WEEK: i128 = 604_800;

fn fields() -> Vec<Field> {
    vec![
        setting("workers", 1..=10_000),
        setting("api_port", 1..=65_535),
        setting("max_connections", 1..=100_000),
        setting("persistence.batch_size", 1..=100_000),
        setting("persistence.flush_interval_ms", 1..=60_000),
        setting("persistence.max_buffered", 1..=10_000_000),
        setting("persistence.connect_timeout_seconds", 0..=3600),
        setting("persistence.write_stall_seconds", 1..=86_400),
        // Up to rollup_days, 400 by default.
        setting("retention.days", 1..=400),
        // At least days, 30 by default.
        setting("retention.rollup_days", 30..=36_500),
        setting("retention.interval_seconds", 1..=WEEK),
        setting("retention.batch", 1..=100_000),
        setting("restart.max_restarts", 0..=1_000_000),
        setting("restart.window_seconds", 1..=86_400),
        asset("assets[1].intervalSeconds", Some(1..=WEEK), |url, v| http_with(url, "intervalSeconds", v)),
        asset("assets[1].timeoutSeconds", Some(1..=3600), |url, v| http_with(url, "timeoutSeconds", v)),
        asset("assets[1].failureThreshold", Some(1..=100), |url, v| http_with(url, "failureThreshold", v)),
        asset("assets[1].successThreshold", Some(1..=100), |url, v| http_with(url, "successThreshold", v)),
        asset("assets[1].retryIntervalSeconds", Some(1..=WEEK), |url, v| http_with(url, "retryIntervalSeconds", v)),
        asset("assets[1].expectedStatusCodes[0]", Some(100..=599), |url, v| {
            let mut asset = probed("http", url.to_string());
            asset["expectedStatusCodes"] = json!([number(v)]);
            asset
        }),
        asset("assets[1].address", Some(0..=65_535), |_, v| probed("http", format!("http://127.0.0.1:{v}/"))),
        asset("assets[1].address", Some(1..=65_535), |_, v| probed("tcp", format!("127.0.0.1:{v}"))),
        asset("assets[1].address", Some(1..=65_535), |_, v| probed("tls", format!("127.0.0.1:{v}"))),
        asset("assets[1].minDaysValid", Some(0..=3650), |_, v| {
            let mut asset = probed("tls", "127.0.0.1:1".into());
            asset["minDaysValid"] = number(v);
            asset
        }),
        asset("assets[1].nameserver", Some(1..=65_535), |_, v| {
            let mut asset = probed("dns", "example.com".into());
            asset["nameserver"] = json!(format!("127.0.0.1:{v}"));
            asset
        }),
        asset("assets[1].graceSeconds", Some(0..=WEEK), |_, v| {
            json!({"id": "extreme", "assetType": "push", "token": "0123456789abcdef", "intervalSeconds": 1,
                   "graceSeconds": number(v)})
        }),
        // Numbers inside conditions: refused or judged, never a panic.
        asset("assets[1].conditions", None, |url, v| {
            let mut asset = probed("http", url.to_string());
            asset["conditions"] = json!([
                format!("[RESPONSE_TIME] < {v}"),
                format!("[BODY] != {v}"),
                format!("len([BODY]) >= {v}"),
                format!("[CERTIFICATE_EXPIRATION] > {v}h"),
                format!("[STATUS] == any(200, {v})"),
            ]);
            asset
        }),
        Field {
            key: "notificationPolicy.throttleSeconds",
            accepts: Some(0..=WEEK),
            place: Place::Policy("throttleSeconds"),
        },
        Field {
            key: "notificationPolicy.repeatIntervalSeconds",
            accepts: Some(1..=WEEK),
            place: Place::Policy("repeatIntervalSeconds"),
        },
        Field { key: "notifiers.hook.timeoutSeconds", accepts: Some(1..=60), place: Place::ChannelTimeout },
    ]
}

/// The three config files and the environment for one field set to one value. Settings go
/// through `statusd.toml` or, as `STATUSD_*` variables, the environment.
struct Case {
    assets: Value,
    notifiers: Value,
    settings: String,
    env: BTreeMap<String, String>,
}

fn case(field: &Field, value: i128, via_env: bool, target: &str, receiver: &str) -> Case {
    let mut assets = vec![http_asset("watched", target)];
    let mut notifiers = json!({
        "notifiers": {"hook": {"type": "webhook", "url": receiver}},
        "notificationPolicy": {"onDown": ["hook"], "onRecovery": ["hook"]}
    });
    let mut settings = String::new();
    let mut env = BTreeMap::new();
    match field.place {
        Place::Setting if via_env => {
            env.insert(format!("STATUSD_{}", field.key.replace('.', "__").to_uppercase()), value.to_string());
        }
        Place::Setting => {
            settings = match field.key.split_once('.') {
                Some((section, key)) => format!("[{section}]\n{key} = {value}\n"),
                None => format!("{} = {value}\n", field.key),
            };
        }
        Place::Asset(build) => assets.push(build(target, value)),
        Place::Policy(key) => notifiers["notificationPolicy"][key] = number(value),
        Place::ChannelTimeout => notifiers["notifiers"]["hook"]["timeoutSeconds"] = number(value),
    }
    Case { assets: json!(assets), notifiers, settings, env }
}

/// What `check-config` does with a case: settings, then both files; the refusal's text.
fn check(dir: &Path, case: &Case) -> Result<(), String> {
    std::fs::write(dir.join("manifest.json"), json!({"assets": case.assets}).to_string()).expect("manifest");
    std::fs::write(dir.join("notifiers.json"), case.notifiers.to_string()).expect("notifiers");
    std::fs::write(dir.join("statusd.toml"), &case.settings).expect("settings");
    let path = |name: &str| dir.join(name).display().to_string();
    let args = [
        "statusd".to_string(),
        "check-config".into(),
        "--config".into(),
        path("statusd.toml"),
        "--manifest".into(),
        path("manifest.json"),
        "--notifiers".into(),
        path("notifiers.json"),
    ];
    let (_, settings) = Settings::from_args(args, &case.env).map_err(|e| e.to_string())?;
    Config::load(&settings.manifest, &settings.notifiers).map(drop).map_err(|e| e.to_string())
}

/// Checks one value of one field: refused exactly outside its range, naming the field.
fn judge(dir: &Path, field: &Field, value: i128, via_env: bool) -> Result<bool, String> {
    let outcome = check(dir, &case(field, value, via_env, "http://127.0.0.1:9/health", "http://127.0.0.1:9/hook"));
    if let Err(refusal) = &outcome
        && !refusal.contains(field.key)
    {
        return Err(format!("{} = {value}: the refusal does not name the field: {refusal}", field.key));
    }
    if let Some(range) = &field.accepts
        && range.contains(&value) != outcome.is_ok()
    {
        return Err(format!("{} = {value}: expected {}, got {outcome:?}", field.key, range.contains(&value)));
    }
    Ok(outcome.is_ok())
}

fn strategy_for(field: &Field) -> BoxedStrategy<i128> {
    let edges: Vec<i128> = match &field.accepts {
        Some(range) => vec![range.start() - 1, *range.start(), *range.end(), range.end() + 1],
        None => EXTREMES.to_vec(),
    };
    prop_oneof![
        any::<i64>().prop_map(i128::from),
        any::<u64>().prop_map(i128::from),
        -3i128..=70_000,
        proptest::sample::select(edges),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any number in any field: accepted exactly within its range, otherwise refused by name.
    #[test]
    fn any_number_in_any_field_is_accepted_in_its_range_or_refused_by_name(
        (index, value, via_env) in (0..fields().len()).prop_flat_map(|i| (Just(i), strategy_for(&fields()[i]), any::<bool>()))
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let field = &fields()[index];
        // TOML integers are 64-bit signed: larger ones reach a setting through the environment.
        let via_env = via_env || i64::try_from(value).is_err();
        judge(dir.path(), field, value, via_env).map_err(TestCaseError::fail)?;
    }
}

/// Starts statusd on an accepted case and watches it do its work: ready, a whole retention pass,
/// the first probes of every asset, a clean stop. Any panic fails the stop or the waits.
async fn runs(case: Case, target: &Target, has_extreme: bool) {
    let setup = Setup::new(Backend::Sqlite, case.assets.clone(), case.notifiers.clone()).await;
    setup.write_settings(&case.settings);
    // A result from three hours ago: its hour is rolled up by the retention pass.
    let store = Store::connect(&setup.db_url()).await.expect("store");
    let watched: AssetConfig = serde_json::from_value(http_asset("watched", &target.url())).expect("asset");
    store.sync_assets(&[std::sync::Arc::new(watched)], true).await.expect("sync");
    let at = Utc::now() - TimeDelta::hours(3);
    let old = ProbeResult {
        id: statusd::event_id(at),
        asset_id: "watched".into(),
        timestamp: at,
        success: true,
        latency_ms: SEEDED_LATENCY_MS,
        code: Some(200),
        message: None,
        mark: None,
        detail: Default::default(),
    };
    store.write(&[], &[old]).await.expect("seed");
    store.close().await;

    let statusd = setup.start(&[]).await;
    eventually("/readyz to answer 200", WAIT, || async {
        (statusd.get("/readyz").await.0 == StatusCode::OK).then_some(())
    })
    .await;
    eventually("the retention pass to roll up the old hour", WAIT, || async {
        let (_, uptime) = statusd.get("/api/assets/watched/uptime?hours=6").await;
        (uptime["latencyMs"]["max"].as_i64() >= Some(SEEDED_LATENCY_MS)).then_some(())
    })
    .await;
    // The rest of the pass (pruning events, then rollups) shares the writer: results still
    // being stored after it means it finished, or at least never wedged the writer.
    let stored = || async {
        let (_, events) = statusd.get("/api/assets/watched/events?limit=1000").await;
        events.as_array().map_or(0, Vec::len)
    };
    let before = stored().await;
    eventually("results stored after the retention pass", WAIT, || async {
        (stored().await >= before + 2).then_some(())
    })
    .await;
    for id in ["watched"].into_iter().chain(has_extreme.then_some("extreme")) {
        eventually(&format!("{id} to be scheduled"), WAIT, || async {
            (!statusd.asset(id).await["lastProbe"].is_null()).then_some(())
        })
        .await;
    }
    statusd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn extreme_values_are_refused_by_name_or_run_without_panicking() {
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut accepted = Vec::new();
    for field in fields() {
        for value in EXTREMES {
            for via_env in [false, true] {
                if !via_env && i64::try_from(value).is_err() && matches!(field.place, Place::Setting) {
                    continue;
                }
                let ok = judge(dir.path(), &field, value, via_env).unwrap_or_else(|e| panic!("{e}"));
                // Binding a privileged port is the system's decision, not statusd's.
                if ok && !via_env && field.key != "api_port" {
                    accepted.push((
                        field.key,
                        value,
                        case(&field, value, false, &target.url(), &receiver.url("hook")),
                        matches!(field.place, Place::Asset(_)),
                    ));
                }
            }
        }
    }
    assert!(accepted.len() >= 30, "{} accepted", accepted.len());
    // A few at a time: each is a whole statusd with its own database.
    futures::stream::iter(accepted)
        .for_each_concurrent(4, |(key, value, case, has_extreme)| {
            let target = &target;
            async move {
                let started = tokio::time::Instant::now();
                runs(case, target, has_extreme).await;
                eprintln!("{key} = {value}: ran and stopped in {:?}", started.elapsed());
            }
        })
        .await;
}
