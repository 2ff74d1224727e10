//! A PostgreSQL primary that fails over: statusd's connections are cut and the server they
//! reconnect to is read-only (what a demoted primary, or a name still pointing at the old
//! primary, gives; emulated on a throwaway server of the test's own: the database's
//! `default_transaction_read_only` is set and every session is terminated, so new sessions start
//! read-only and stay so for their whole life). Every write fails; then the database takes
//! writes again, for new sessions. statusd must leave the connections that cannot write, and
//! write everything it held.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::e2e::databases::{Backend, PgCluster, TestDb};
use crate::e2e::harness::{Mode, Receiver, Setup, Target, eventually, http_asset, probes_counted};

const WAIT: Duration = Duration::from_secs(30);

/// `admin` is connected to another database than statusd's `postgres`.
async fn fail_over_to_read_only(admin: &PgPool) {
    sqlx::query("ALTER DATABASE postgres SET default_transaction_read_only = on").execute(admin).await.expect("alter");
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'postgres'")
        .execute(admin)
        .await
        .expect("terminate statusd's sessions");
}

/// New sessions can write again; sessions opened meanwhile stay read-only.
async fn take_writes_again(admin: &PgPool) {
    sqlx::query("ALTER DATABASE postgres RESET default_transaction_read_only").execute(admin).await.expect("alter");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_primary_turned_read_only_holds_writes_back_and_writing_resumes_when_it_takes_writes() {
    if crate::backend().await.is_none() {
        return;
    }
    let Some(cluster) = PgCluster::start() else { return };
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let notifiers = json!({
        "notifiers": {"webhook": {"type": "webhook", "url": receiver.url("webhook")}},
        "notificationPolicy": {"onDown": ["webhook"], "onRecovery": ["webhook"], "throttleSeconds": 0}
    });
    let setup = Setup::on(
        TestDb::existing(Backend::Postgres, cluster.url("postgres")),
        json!([http_asset("failover", &target.url())]),
        notifiers,
    );
    let statusd = setup.start(&[]).await;
    statusd.wait_status("failover", "up", WAIT).await;
    let backlog = || async { statusd.get("/readyz").await.1["checks"]["store"]["backlog"].clone() };
    eventually("first results written", WAIT, || async { (backlog().await["written"].as_u64()? >= 2).then_some(()) })
        .await;

    let admin = PgPool::connect(&cluster.url("template1")).await.expect("admin connection");
    fail_over_to_read_only(&admin).await;
    target.set(Mode::Error);
    statusd.wait_status("failover", "down", WAIT).await;
    let ready = eventually("readiness to report the writes failing", WAIT, || async {
        let (status, ready) = statusd.get("/readyz").await;
        (status == StatusCode::SERVICE_UNAVAILABLE).then_some(ready)
    })
    .await;
    let error = ready["checks"]["store"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("read-only transaction"), "{ready}");
    eventually("a backlog to build up", WAIT, || async { (backlog().await["queued"].as_u64()? >= 8).then_some(()) })
        .await;
    target.set(Mode::Ok);
    statusd.wait_status("failover", "up", WAIT).await;

    take_writes_again(&admin).await;
    eventually("everything held written", WAIT, || async {
        let (status, ready) = statusd.get("/readyz").await;
        (status == StatusCode::OK && ready["checks"]["store"]["backlog"]["queued"] == 0).then_some(())
    })
    .await;
    admin.close().await;
    statusd.stop().await;

    let db = setup.inspect().await;
    let stored = db.count("SELECT count(*) FROM probe_events WHERE asset_id = $1", "failover").await;
    assert_eq!(stored, probes_counted("failover"), "every result accepted is stored");
    let incidents = db.incidents().await;
    assert_eq!(incidents.len(), 1, "the incident opened during the fault is stored: {incidents:?}");
    assert_eq!((incidents[0].1, incidents[0].2.as_deref()), (true, Some("recovered")), "{incidents:?}");
    db.close().await;
}
