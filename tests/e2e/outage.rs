//! Real database outages: a throwaway PostgreSQL server is stopped under a running statusd and
//! started again. Probing and notifications go on; results wait in the bounded buffer and are
//! written, in order and exactly once, when the database is back.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::e2e::databases::{PgCluster, TestDb};
use crate::e2e::harness::{
    Mode, Receiver, Setup, Statusd, Target, all_channels, eventually, http_asset, metric, probes_counted,
};

const WAIT: Duration = Duration::from_secs(10);
const RECOVERY: Duration = Duration::from_secs(30);

async fn backlog(statusd: &Statusd) -> (StatusCode, Value) {
    let (status, ready) = statusd.get("/readyz").await;
    (status, ready["checks"]["store"]["backlog"].clone())
}

fn assets(prefix: &str, target: &Target) -> (Vec<String>, Value) {
    let ids: Vec<String> = (0..3).map(|i| format!("{prefix}-{i}")).collect();
    let assets: Vec<Value> = ids.iter().map(|id| http_asset(id, &target.url())).collect();
    (ids, json!(assets))
}

/// The outage itself: the database goes away while every asset goes down and comes back;
/// returns once the database is back and the backlog is written.
async fn ride_out_an_outage(
    statusd: &Statusd,
    cluster: &PgCluster,
    target: &Target,
    receiver: &Receiver,
    ids: &[String],
) {
    for id in ids {
        statusd.wait_status(id, "up", WAIT).await;
    }
    eventually("first results stored", WAIT, || async {
        (backlog(statusd).await.1["written"].as_u64() >= Some(3)).then_some(())
    })
    .await;

    cluster.stop();
    let (status, ready) = eventually("readiness to report the store down", WAIT, || async {
        let (status, ready) = statusd.get("/readyz").await;
        (ready["checks"]["store"]["status"] == "down").then_some((status, ready))
    })
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");

    // Probing and notifying go on without the database.
    target.set(Mode::Error);
    for id in ids {
        statusd.wait_status(id, "down", WAIT).await;
    }
    eventually("a DOWN per asset", WAIT, || async { (receiver.events("webhook").len() == ids.len()).then_some(()) })
        .await;
    target.set(Mode::Ok);
    for id in ids {
        statusd.wait_status(id, "up", WAIT).await;
    }
    eventually("a RECOVERY per asset", WAIT, || async {
        (receiver.events("webhook").len() == 2 * ids.len()).then_some(())
    })
    .await;
    // Several flush intervals' worth of results wait.
    eventually("a backlog to build up", WAIT * 2, || async {
        let (_, backlog) = backlog(statusd).await;
        (backlog["accepted"].as_u64()? >= backlog["written"].as_u64()? + 20).then_some(())
    })
    .await;
    assert_eq!(statusd.get("/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);

    cluster.resume();
    eventually("the backlog to be written", RECOVERY, || async {
        let (status, backlog) = backlog(statusd).await;
        (status == StatusCode::OK && backlog["queued"] == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_within_the_buffer_loses_nothing() {
    let Some(backend) = crate::backend().await else { return };
    let Some(cluster) = PgCluster::start() else { return };
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let (ids, assets) = assets("calm", &target);
    let setup = Setup::on(TestDb::existing(backend, cluster.url("postgres")), assets, all_channels(&receiver, 0));
    let statusd = setup.start(&[]).await;

    ride_out_an_outage(&statusd, &cluster, &target, &receiver, &ids).await;
    let (_, final_backlog) = backlog(&statusd).await;
    assert_eq!(final_backlog["dropped"], 0);
    statusd.stop().await;

    let db = setup.inspect().await;
    for id in &ids {
        let stored = db.count("SELECT count(*) FROM probe_events WHERE asset_id = $1", id).await;
        assert_eq!(stored, probes_counted(id), "every result of {id} stored exactly once");
        let distinct = db.count("SELECT count(DISTINCT timestamp) FROM probe_events WHERE asset_id = $1", id).await;
        assert_eq!(distinct, stored, "no result of {id} stored twice");
    }
    let incidents = db.incidents().await;
    assert_eq!(incidents.len(), ids.len(), "incidents opened during the outage were written: {incidents:?}");
    assert!(
        incidents.iter().all(|(_, ended, reason)| *ended && reason.as_deref() == Some("recovered")),
        "{incidents:?}"
    );
    db.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_buffer_bound_the_oldest_results_are_dropped_and_counted_exactly() {
    let Some(backend) = crate::backend().await else { return };
    let Some(cluster) = PgCluster::start() else { return };
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let (ids, assets) = assets("tight", &target);
    let setup = Setup::on(TestDb::existing(backend, cluster.url("postgres")), assets, all_channels(&receiver, 0));
    std::fs::write(setup.path("statusd.toml"), "[persistence]\nmax_buffered = 10\n").expect("settings");
    let statusd = setup.start(&[]).await;

    ride_out_an_outage(&statusd, &cluster, &target, &receiver, &ids).await;
    let (_, final_backlog) = backlog(&statusd).await;
    let dropped = final_backlog["dropped"].as_i64().expect("dropped");
    assert!(dropped >= 10, "the outage overflowed a 10-result buffer: {final_backlog}");
    let metrics = statusd.metrics().await;
    statusd.stop().await;

    let db = setup.inspect().await;
    let mut stored = 0;
    let mut probed = 0;
    for id in &ids {
        stored += db.count("SELECT count(*) FROM probe_events WHERE asset_id = $1", id).await;
        probed += probes_counted(id);
    }
    assert_eq!(stored, probed - dropped, "all but the dropped ones stored: probed {probed}, dropped {dropped}");
    // This is the only test of its process that drops results.
    assert_eq!(metric(&metrics, "statusd_persistence_dropped_total"), Some(dropped as f64));
    // Incident changes are never dropped, however full the buffer.
    let incidents = db.incidents().await;
    assert_eq!(incidents.len(), ids.len(), "{incidents:?}");
    assert!(incidents.iter().all(|(_, ended, _)| *ended), "{incidents:?}");
    db.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_still_starting_is_waited_for() {
    let Some(backend) = crate::backend().await else { return };
    let Some(cluster) = PgCluster::start() else { return };
    let target = Target::start().await;
    let setup = Setup::on(
        TestDb::existing(backend, cluster.url("postgres")),
        json!([http_asset("patient", &target.url())]),
        crate::e2e::harness::no_channels(),
    );
    cluster.stop();
    // The scenario: the database comes up a second and a half after statusd.
    let (statusd, ()) = tokio::join!(setup.start(&[]), async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        tokio::task::block_in_place(|| cluster.resume());
    });
    statusd.wait_status("patient", "up", WAIT).await;
    assert_eq!(statusd.get("/readyz").await.0, StatusCode::OK);
    statusd.stop().await;
}
