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
    println!("failover: {} results accepted, {stored} stored", probes_counted("failover"));
    assert_eq!(stored, probes_counted("failover"), "every result accepted is stored");
    let incidents = db.incidents().await;
    assert_eq!(incidents.len(), 1, "the incident opened during the fault is stored: {incidents:?}");
    assert_eq!((incidents[0].1, incidents[0].2.as_deref()), (true, Some("recovered")), "{incidents:?}");
    db.close().await;
}

/// Turns a whole server read-only (every session, from its next transaction) or writable again.
async fn server_read_only(server: &PgPool, on: bool) {
    let setting = if on {
        "ALTER SYSTEM SET default_transaction_read_only = on"
    } else {
        "ALTER SYSTEM RESET default_transaction_read_only"
    };
    sqlx::query(setting).execute(server).await.expect("alter system");
    sqlx::query("SELECT pg_reload_conf()").execute(server).await.expect("reload");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_several_hosts_and_target_session_attrs_read_write_writes_follow_the_primary() {
    if crate::backend().await.is_none() {
        return;
    }
    let (Some(first), Some(second)) = (PgCluster::start(), PgCluster::start()) else { return };
    let admin = |cluster: &PgCluster| PgPool::connect_lazy(&cluster.url("template1")).expect("admin pool");
    let (first_admin, second_admin) = (admin(&first), admin(&second));
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
        first.port, second.port
    );
    let target = Target::start().await;
    let setup = Setup::on(
        TestDb::existing(Backend::Postgres, url),
        json!([http_asset("multi-host", &target.url())]),
        json!({"notifiers": {}}),
    );
    // Both hold statusd's schema and assets, as a primary and its replica would.
    let config = statusd::Config::load(&setup.path("manifest.json"), &setup.path("notifiers.json"));
    let assets = config.expect("valid config").manifest.assets;
    for cluster in [&first, &second] {
        let store = statusd::Store::connect(&cluster.url("postgres")).await.expect("migrate");
        store.sync_assets(&assets, true).await.expect("assets");
        store.close().await;
    }
    // The first host listed is a standby at start: statusd must write to the second.
    server_read_only(&first_admin, true).await;
    let statusd = setup.start(&[]).await;
    statusd.wait_status("multi-host", "up", WAIT).await;
    let stored = |cluster: &PgCluster| {
        let url = cluster.url("postgres");
        async move {
            let pool = PgPool::connect(&url).await.expect("connect");
            let count: i64 = sqlx::query_scalar("SELECT count(*) FROM probe_events WHERE asset_id = 'multi-host'")
                .fetch_one(&pool)
                .await
                .expect("count");
            pool.close().await;
            count
        }
    };
    eventually("results written to the primary", WAIT, || async { (stored(&second).await >= 2).then_some(()) }).await;
    assert_eq!(stored(&first).await, 0, "nothing is written to the standby");

    // Failover: the first host is promoted, the second demoted.
    server_read_only(&first_admin, false).await;
    server_read_only(&second_admin, true).await;
    eventually("results written to the new primary", WAIT, || async { (stored(&first).await >= 2).then_some(()) })
        .await;
    eventually("everything held written", WAIT, || async {
        let (status, ready) = statusd.get("/readyz").await;
        (status == StatusCode::OK && ready["checks"]["store"]["backlog"]["queued"] == 0).then_some(())
    })
    .await;
    statusd.stop().await;
    let (on_first, on_second) = (stored(&first).await, stored(&second).await);
    println!(
        "multi-host: {} results accepted, {on_second} stored on the first primary, {on_first} on the second",
        probes_counted("multi-host")
    );
    assert_eq!(on_first + on_second, probes_counted("multi-host"), "nothing lost");
    first_admin.close().await;
    second_admin.close().await;
}
