//! Chaos: the same scripted outages watched by two statusd instances, one of which has panics
//! injected into random actors hundreds of times. Both must report exactly the same incidents
//! and notifications: none missing, none duplicated.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::e2e::harness::{Mode, Receiver, Setup, Statusd, Target, eventually, http_asset};

const ASSETS: usize = 24;

/// The script: outages as (start, length) in seconds from the start, per asset.
fn outages(asset: usize) -> Vec<(u64, u64)> {
    let first = (2 + (asset % 4) * 2) as u64;
    let mut outages = vec![(first, 5)];
    if asset.is_multiple_of(3) {
        outages.push((first + 11, 4));
    }
    outages
}

const SCRIPT_SECONDS: u64 = 23;

struct Run {
    setup: Setup,
    statusd: Statusd,
    targets: Vec<Target>,
    receiver: Receiver,
}

async fn start(backend: crate::e2e::databases::Backend, chaos: bool) -> Run {
    let mut targets = Vec::new();
    let mut assets = Vec::new();
    for i in 0..ASSETS {
        let target = Target::start().await;
        assets.push(http_asset(&format!("scripted-{i}"), &target.url()));
        targets.push(target);
    }
    let receiver = Receiver::start().await;
    let notifiers = json!({
        "notifiers": {
            "webhook": {"type": "webhook", "url": receiver.url("webhook")},
            "slack": {"type": "slack", "webhookUrl": receiver.url("slack")},
        },
        "notificationPolicy": {"onDown": ["webhook", "slack"], "onRecovery": ["webhook", "slack"], "throttleSeconds": 0}
    });
    let setup = Setup::new(backend, json!(assets), notifiers).await;
    // Hundreds of panics in half a minute are the point here, not a crash loop to back off from.
    setup.write_settings("[restart]\nmax_restarts = 100000\n");
    let statusd = setup.start(if chaos { &["--enable-chaos"] } else { &[] }).await;
    Run { setup, statusd, targets, receiver }
}

/// Plays the script on every target of every run, from now.
async fn play(runs: &[&Run]) {
    let started = Instant::now();
    for second in 0..=SCRIPT_SECONDS {
        tokio::time::sleep_until(started + Duration::from_secs(second)).await;
        for i in 0..ASSETS {
            let down = outages(i).iter().any(|(from, length)| (*from..from + length).contains(&second));
            for run in runs {
                run.targets[i].set(if down { Mode::Error } else { Mode::Ok });
            }
        }
    }
}

/// Panics into random actors until told to stop; returns how many were injected.
async fn inject(statusd: &Statusd, stop: Arc<AtomicBool>, injected: Arc<AtomicUsize>) {
    let mut rng = fastrand::Rng::with_seed(7);
    while !stop.load(Ordering::SeqCst) {
        let (_, actors) = statusd.get("/api/actors").await;
        let names: Vec<String> = actors
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|x| x["status"] == "running" && x["kind"] != "supervisor")
                    .filter_map(|x| x["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(name) = rng.choice(names.iter()) {
            let (status, _) = statusd.post(&format!("/api/debug/panic?actor={name}")).await;
            if status == StatusCode::OK {
                injected.fetch_add(1, Ordering::SeqCst);
            }
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

/// Per asset: its incidents (closed, with reason) and each channel's events, as stored and received.
async fn outcome(run: &Run) -> BTreeMap<String, Value> {
    let (_, incidents) = run.statusd.get("/api/incidents?state=all&limit=1000").await;
    let mut by_asset: BTreeMap<String, Value> = BTreeMap::new();
    for i in 0..ASSETS {
        let id = format!("scripted-{i}");
        let mine: Vec<Value> = incidents
            .as_array()
            .expect("incidents")
            .iter()
            .filter(|x| x["assetId"] == id.as_str())
            .map(|x| json!([x["endedAt"].is_string(), x["closeReason"]]))
            .collect();
        let heard = |channel: &str| -> Vec<String> {
            run.receiver
                .bodies(channel)
                .iter()
                .filter(|b| crate::e2e::harness::asset_of(channel, b) == id)
                .map(|b| crate::e2e::harness::event_of(channel, b))
                .collect()
        };
        let record = json!({"incidents": mine, "webhook": heard("webhook"), "slack": heard("slack")});
        by_asset.insert(id, record);
    }
    by_asset
}

#[tokio::test(flavor = "multi_thread")]
async fn hundreds_of_panics_change_no_incident_and_no_notification() {
    let Some(backend) = crate::backend().await else { return };
    let calm = start(backend, false).await;
    let chaotic = start(backend, true).await;
    for run in [&calm, &chaotic] {
        for i in 0..ASSETS {
            run.statusd.wait_status(&format!("scripted-{i}"), "up", Duration::from_secs(10)).await;
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let injected = Arc::new(AtomicUsize::new(0));
    let chaos = inject(&chaotic.statusd, Arc::clone(&stop), Arc::clone(&injected));
    let script = async {
        play(&[&calm, &chaotic]).await;
        stop.store(true, Ordering::SeqCst);
    };
    tokio::join!(chaos, script);
    let injected = injected.load(Ordering::SeqCst);
    assert!(injected >= 200, "only {injected} panics injected");
    eprintln!("chaos: {injected} panics injected");

    // Everything recovers, and everything owed is delivered and stored.
    let expected: usize = (0..ASSETS).map(|i| outages(i).len()).sum();
    for run in [&calm, &chaotic] {
        for i in 0..ASSETS {
            run.statusd.wait_status(&format!("scripted-{i}"), "up", Duration::from_secs(15)).await;
        }
        run.statusd.wait_incidents("closed", expected).await;
        for channel in ["webhook", "slack"] {
            eventually(&format!("every notification on {channel}"), Duration::from_secs(15), || async {
                (run.receiver.bodies(channel).len() >= 2 * expected).then_some(())
            })
            .await;
        }
    }
    let (calm_outcome, chaotic_outcome) = (outcome(&calm).await, outcome(&chaotic).await);
    for i in 0..ASSETS {
        let id = format!("scripted-{i}");
        let count = outages(i).len();
        let events: Vec<&str> = std::iter::repeat_n(["DOWN", "RECOVERY"], count).flatten().collect();
        let incidents: Vec<Value> = std::iter::repeat_n(json!([true, "recovered"]), count).collect();
        let expected = json!({"incidents": incidents, "webhook": events, "slack": events});
        assert_eq!(calm_outcome[&id], expected, "{id} without chaos");
        assert_eq!(chaotic_outcome[&id], expected, "{id} with {injected} panics");
    }
    let (_, actors) = chaotic.statusd.get("/api/actors").await;
    let restarts: u64 = actors.as_array().expect("actors").iter().filter_map(|a| a["restarts"].as_u64()).sum();
    assert_eq!(restarts as usize, injected, "every panic was a restart");
    for run in [calm, chaotic] {
        run.statusd.stop().await;
        drop(run.setup);
    }
}
