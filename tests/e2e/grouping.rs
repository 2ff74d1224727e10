//! Storm grouping: many assets failing together reach a chat channel as one message, and the
//! generic webhook (which does not group unless asked) as one payload each.

use std::time::Duration;

use serde_json::{Value, json};

use crate::e2e::harness::{Mode, Receiver, Setup, Target, eventually, http_asset};

const ASSETS: usize = 20;

fn events(bodies: &[Value], event: &str) -> usize {
    bodies.iter().filter(|body| body["event"] == event).count()
}

/// The headline of a Slack message: `🔴 20 assets - DOWN`.
fn slack_headline(body: &Value) -> String {
    body["blocks"][0]["text"]["text"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_assets_failing_together_reach_chat_as_one_message_and_a_webhook_as_twenty() {
    let Some(backend) = crate::backend().await else { return };
    let receiver = Receiver::start().await;
    let target = Target::start().await;
    let assets: Vec<Value> =
        (0..ASSETS).map(|i| http_asset(&format!("storm-{i:02}"), &format!("{}?n={i}", target.url()))).collect();
    let notifiers = json!({
        "notifiers": {
            "slack": {"type": "slack", "webhookUrl": receiver.url("slack")},
            "webhook": {"type": "webhook", "url": receiver.url("webhook")},
            "grouped-hook": {"type": "webhook", "url": receiver.url("grouped-hook"), "group": true},
        },
        "notificationPolicy": {
            "onDown": ["slack", "webhook", "grouped-hook"],
            "onRecovery": ["slack", "webhook", "grouped-hook"],
            "throttleSeconds": 0,
            "grouping": {"waitSeconds": 8, "minAssets": 3},
        }
    });
    let setup = Setup::new(backend, Value::Array(assets), notifiers).await;
    let statusd = setup.start(&[]).await;
    for i in 0..ASSETS {
        statusd.wait_status(&format!("storm-{i:02}"), "up", Duration::from_secs(10)).await;
    }

    target.set(Mode::Error);
    eventually("20 DOWNs on the webhook", Duration::from_secs(20), || async {
        (events(&receiver.bodies("webhook"), "DOWN") == ASSETS).then_some(())
    })
    .await;
    let down = eventually("the grouped DOWN on Slack", Duration::from_secs(20), || async {
        receiver.bodies("slack").first().cloned()
    })
    .await;
    assert_eq!(slack_headline(&down), format!("🔴 {ASSETS} assets - DOWN"));
    let list = down["blocks"][1]["text"]["text"].as_str().expect("the list of assets");
    assert_eq!(list.lines().count(), ASSETS, "{list}");
    for i in 0..ASSETS {
        assert!(list.contains(&format!("Asset storm-{i:02}: HTTP 500")), "storm-{i:02} in {list}");
    }
    let grouped = eventually("the grouped DOWN on the opted-in webhook", Duration::from_secs(20), || async {
        receiver.bodies("grouped-hook").first().cloned()
    })
    .await;
    assert_eq!((grouped["event"].as_str(), grouped["grouped"].as_bool()), (Some("DOWN"), Some(true)));
    let payloads = grouped["assets"].as_array().expect("the usual payloads");
    assert_eq!(payloads.len(), ASSETS);
    assert!(payloads.iter().all(|p| p["event"] == "DOWN" && p["incidentId"].is_string()));

    target.set(Mode::Ok);
    eventually("20 RECOVERYs on the webhook", Duration::from_secs(20), || async {
        (events(&receiver.bodies("webhook"), "RECOVERY") == ASSETS).then_some(())
    })
    .await;
    let slack = eventually("the grouped RECOVERY on Slack", Duration::from_secs(20), || async {
        let bodies = receiver.bodies("slack");
        (bodies.len() >= 2).then_some(bodies)
    })
    .await;
    // The RECOVERY batch closed after every DOWN went out: a straggling DOWN would show here.
    let headlines: Vec<String> = slack.iter().map(slack_headline).collect();
    assert_eq!(headlines, [format!("🔴 {ASSETS} assets - DOWN"), format!("🟢 {ASSETS} assets - RECOVERY")]);
    assert_eq!(receiver.bodies("webhook").len(), 2 * ASSETS, "the generic webhook got one payload per incident");
    statusd.stop().await;
}

/// What waits to be grouped when statusd stops was decided: it goes out as statusd stops, and the
/// restarted statusd neither sends it again nor forgets that the channels are owed the RECOVERY.
#[tokio::test(flavor = "multi_thread")]
async fn a_storm_waiting_to_be_grouped_when_statusd_stops_goes_out_once_and_its_recovery_after_the_restart() {
    const STORM: usize = 5;
    let Some(backend) = crate::backend().await else { return };
    let receiver = Receiver::start().await;
    let target = Target::start().await;
    let ids: Vec<String> = (0..STORM).map(|i| format!("held-{i}")).collect();
    let assets: Vec<Value> = ids.iter().map(|id| http_asset(id, &format!("{}?{id}", target.url()))).collect();
    let notifiers = |wait: u64| {
        json!({
            "notifiers": {
                "slack": {"type": "slack", "webhookUrl": receiver.url("slack")},
                "webhook": {"type": "webhook", "url": receiver.url("webhook")},
            },
            "notificationPolicy": {
                "onDown": ["slack", "webhook"], "onRecovery": ["slack", "webhook"], "throttleSeconds": 0,
                "grouping": {"waitSeconds": wait, "minAssets": 3},
            }
        })
    };
    // A wait longer than the test: the DOWN batch can only go out because statusd stops.
    let setup = Setup::new(backend, Value::Array(assets), notifiers(600)).await;
    let statusd = setup.start(&[]).await;
    for id in &ids {
        statusd.wait_status(id, "up", Duration::from_secs(10)).await;
    }
    target.set(Mode::Error);
    eventually("the DOWNs on the webhook", Duration::from_secs(20), || async {
        (events(&receiver.bodies("webhook"), "DOWN") == STORM).then_some(())
    })
    .await;
    assert!(receiver.bodies("slack").is_empty(), "the Slack batch waits");
    statusd.stop().await;
    let headlines: Vec<String> = receiver.bodies("slack").iter().map(slack_headline).collect();
    assert_eq!(headlines, [format!("🔴 {STORM} assets - DOWN")], "sent as statusd stopped");

    setup.write_notifiers(notifiers(2));
    let statusd = setup.start(&[]).await;
    for id in &ids {
        statusd.wait_probes(id, 2).await;
        assert_eq!(statusd.asset(id).await["status"], "down");
    }
    target.set(Mode::Ok);
    eventually("the RECOVERYs on the webhook", Duration::from_secs(20), || async {
        (events(&receiver.bodies("webhook"), "RECOVERY") == STORM).then_some(())
    })
    .await;
    let slack = eventually("the grouped RECOVERY on Slack", Duration::from_secs(20), || async {
        let bodies = receiver.bodies("slack");
        (bodies.len() >= 2).then_some(bodies)
    })
    .await;
    let headlines: Vec<String> = slack.iter().map(slack_headline).collect();
    assert_eq!(headlines, [format!("🔴 {STORM} assets - DOWN"), format!("🟢 {STORM} assets - RECOVERY")]);
    assert_eq!(events(&receiver.bodies("webhook"), "DOWN"), STORM, "no DOWN twice");
    statusd.stop().await;
}
