//! The Store interface: the same tests, on every backend.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use statusd::AssetConfig;
use statusd::{
    CloseReason, Event, EventsQuery, Incident, IncidentState, IncidentWrite, Notification, NotificationWrite,
    OutboxEntry, Store, StoreOp, TimelineEntry, TimelineKind,
};
use statusd::{Mark, ProbeResult};
use std::sync::Arc;
use uuid::Uuid;

use crate::e2e::databases::TestDb;

async fn open() -> Option<(TestDb, Store)> {
    let backend = crate::backend().await?;
    let db = TestDb::create(backend).await;
    let store = Store::connect(&db.url).await.expect("connect and migrate");
    Some((db, store))
}

fn asset(id: &str) -> Arc<AssetConfig> {
    serde_json::from_value(json!({
        "id": id, "assetType": "http", "name": format!("Asset {id}"), "address": "http://localhost/",
        "expectedStatusCodes": [200], "metadata": {"team": "ops", "tier": 1}
    }))
    .expect("asset")
}

/// A result as statusd makes it: its UUIDv7 id carries the probe time.
fn result(asset_id: &str, at: DateTime<Utc>, success: bool, latency_ms: i64) -> ProbeResult {
    ProbeResult {
        id: statusd::event_id(at),
        asset_id: asset_id.into(),
        timestamp: at,
        success,
        latency_ms,
        code: Some(if success { 200 } else { 500 }),
        message: (!success).then(|| "HTTP 500 (expected 200)".into()),
        mark: None,
        detail: Default::default(),
    }
}

fn hour(n: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_790_000_000 / 3600 * 3600, 0).expect("valid") + TimeDelta::hours(n)
}

fn recent(n: u32) -> EventsQuery {
    EventsQuery { limit: n, before: None, since: None }
}

#[tokio::test(flavor = "multi_thread")]
async fn events_come_back_newest_first_and_page_by_time() {
    let Some((_db, store)) = open().await else { return };
    store.sync_assets(&[asset("a"), asset("b")], true).await.expect("sync");
    let results: Vec<ProbeResult> = (0..10)
        .map(|i| result(if i % 2 == 0 { "a" } else { "b" }, hour(0) + TimeDelta::seconds(i), i != 4, i))
        .collect();
    store.write(&[], &results).await.expect("write");

    let a = store.probe_events("a", &recent(100)).await.expect("read");
    let seconds: Vec<i64> = a.iter().map(|e| (e.timestamp - hour(0)).num_seconds()).collect();
    assert_eq!(seconds, [8, 6, 4, 2, 0]);
    assert_eq!(a[2], results[4], "every field round-trips");
    assert_eq!(store.probe_events("a", &recent(2)).await.expect("read").len(), 2);
    let page = EventsQuery { limit: 2, before: Some(a[1].timestamp), since: None };
    let page: Vec<i64> = store.probe_events("a", &page).await.expect("read").iter().map(|e| e.latency_ms).collect();
    assert_eq!(page, [4, 2]);
    let since = EventsQuery { limit: 100, before: None, since: Some(a[1].timestamp) };
    assert_eq!(store.probe_events("a", &since).await.expect("read").len(), 2);
    assert!(store.probe_events("nobody", &recent(10)).await.expect("read").is_empty());
    store.close().await;
}

/// A page without `before` or `since` is bounded by stand-in times, in each database's own
/// type: every time statusd can store lies within them.
#[tokio::test(flavor = "multi_thread")]
async fn a_page_without_bounds_finds_events_at_any_time() {
    let Some((_db, store)) = open().await else { return };
    store.sync_assets(&[asset("a")], true).await.expect("sync");
    let extremes = ["1970-01-01T00:00:00.001Z", "9999-12-31T23:59:59.999Z"]
        .map(|at| result("a", at.parse().expect("a time"), true, 1));
    store.write(&[], &extremes).await.expect("write");
    let found = store.probe_events("a", &recent(10)).await.expect("read");
    assert_eq!(found, [extremes[1].clone(), extremes[0].clone()]);
    store.close().await;
}

/// Messages are whatever a peer sent back (SQLite takes the batch as one JSON text), and batch
/// sizes are whatever gathered: every row comes back exactly as written.
#[tokio::test(flavor = "multi_thread")]
async fn any_message_and_any_batch_size_round_trip_exactly() {
    let Some((_db, store)) = open().await else { return };
    store.sync_assets(&[asset("a"), asset("quote\"d \\ asset")], true).await.expect("sync");
    let messages = [
        None,
        Some(String::new()),
        Some(r#"say "hi" \ C:\path\n not a newline"#.into()),
        Some("line one\nline two\ttab\r\u{1}control".into()),
        Some("ünïcødé, 中文, 🚨".into()),
        Some(r#"["looks", "like", {"json": null}]"#.into()),
        Some("x".repeat(10_000)),
    ];
    let results: Vec<ProbeResult> = (0..2_345)
        .map(|i: i64| {
            let mut r = result(
                if i % 3 == 0 { "quote\"d \\ asset" } else { "a" },
                hour(0) + TimeDelta::milliseconds(i),
                i % 2 == 0,
                i * 1_000_003,
            );
            r.message = messages[i as usize % messages.len()].clone();
            r.code = (i % 5 != 0).then_some(i32::MAX - i as i32);
            r
        })
        .collect();
    store.write(&[], &results).await.expect("write");
    store.write(&[], &results[..1]).await.expect("a batch of one");
    let mut stored = store.probe_events("a", &recent(10_000)).await.expect("read");
    stored.extend(store.probe_events("quote\"d \\ asset", &recent(10_000)).await.expect("read"));
    stored.sort_by_key(|r| r.timestamp);
    assert_eq!(stored, results);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn writing_a_batch_twice_stores_and_rolls_it_up_once() {
    let Some((_db, store)) = open().await else { return };
    store.sync_assets(&[asset("a")], true).await.expect("sync");
    let batch: Vec<ProbeResult> = (0..50).map(|i| result("a", hour(0) + TimeDelta::seconds(i), true, 20)).collect();
    let opened = incident("a", hour(0));
    let writes = [StoreOp::Incident(IncidentWrite::Open(opened.clone()))];
    store.write(&writes, &batch).await.expect("first write");
    store.write(&writes, &batch).await.expect("the same write again");
    assert_eq!(store.probe_events("a", &recent(1000)).await.expect("read").len(), 50);
    assert_eq!(store.incidents(IncidentState::All, 100).await.expect("incidents"), [opened]);
    let live = store.rollups("a", hour(0), hour(1)).await.expect("rollups");
    assert_eq!(live.len(), 1);
    assert_eq!((live[0].probes, live[0].successes), (50, 50));
    assert_eq!(store.roll_up_next(hour(2)).await.expect("roll up"), Some(hour(0)));
    assert_eq!(store.roll_up_next(hour(2)).await.expect("roll up"), None);
    assert_eq!(store.rollups("a", hour(0), hour(1)).await.expect("rollups"), live);
    store.close().await;
}

fn incident(asset_id: &str, started_at: DateTime<Utc>) -> Incident {
    Incident::opened(
        Uuid::now_v7(),
        asset_id.into(),
        started_at,
        "INITIAL".into(),
        format!("{asset_id} is down: HTTP 500"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn incidents_open_close_and_filter_by_state() {
    let Some((_db, store)) = open().await else { return };
    store.sync_assets(&[asset("a"), asset("b")], true).await.expect("sync");
    let first = incident("a", hour(0));
    let second = incident("b", hour(1));
    let third = incident("a", hour(2));
    let opens: Vec<StoreOp> =
        [&first, &second, &third].map(|i| StoreOp::Incident(IncidentWrite::Open(i.clone()))).into();
    store.write(&opens, &[]).await.expect("open");
    let close =
        StoreOp::Incident(IncidentWrite::Close { id: first.id, ended_at: hour(1), reason: CloseReason::Recovered });
    store.write(std::slice::from_ref(&close), &[]).await.expect("close");
    // Closing again changes nothing: the first close stands.
    let late =
        StoreOp::Incident(IncidentWrite::Close { id: first.id, ended_at: hour(5), reason: CloseReason::Removed });
    store.write(&[late], &[]).await.expect("close again");

    let ids = |incidents: Vec<Incident>| incidents.into_iter().map(|i| i.id).collect::<Vec<_>>();
    assert_eq!(ids(store.open_incidents().await.expect("open")), [third.id, second.id]);
    let closed = store.incidents(IncidentState::Closed, 10).await.expect("closed");
    assert_eq!(closed.len(), 1);
    assert_eq!((closed[0].ended_at, closed[0].close_reason), (Some(hour(1)), Some(CloseReason::Recovered)));
    assert_eq!(ids(store.incidents(IncidentState::All, 10).await.expect("all")), [third.id, second.id, first.id]);
    assert_eq!(store.incidents(IncidentState::All, 1).await.expect("limited").len(), 1);

    // A dependant's incident carries its root cause, set when opened or later.
    let dependant = Incident { caused_by: Some("a".into()), ..incident("b", hour(3)) };
    let late = incident("b", hour(4));
    let ops = [
        StoreOp::Incident(IncidentWrite::Open(dependant.clone())),
        StoreOp::Incident(IncidentWrite::Open(late.clone())),
        StoreOp::Incident(IncidentWrite::CausedBy { id: late.id, caused_by: Some("a".into()) }),
        StoreOp::Incident(IncidentWrite::CausedBy { id: dependant.id, caused_by: None }),
        StoreOp::Incident(IncidentWrite::Flapping { id: late.id, flapping: true }),
    ];
    store.write(&ops, &[]).await.expect("caused by");
    let open = store.open_incidents().await.expect("open");
    let cause = |id| open.iter().find(|i| i.id == id).and_then(|i| i.caused_by.clone());
    assert_eq!((cause(late.id), cause(dependant.id)), (Some("a".to_string()), None));
    let flapping = |id| open.iter().find(|i| i.id == id).is_some_and(|i| i.flapping);
    assert!(flapping(late.id) && !flapping(dependant.id));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn assets_mirror_the_config_and_removed_ones_keep_their_history() {
    let Some((_db, store)) = open().await else { return };
    store.sync_assets(&[asset("a"), asset("b")], true).await.expect("sync");
    store.write(&[], &[result("b", hour(0), true, 5)]).await.expect("write");
    store.sync_assets(&[asset("a")], true).await.expect("b removed");
    assert!(store.asset_exists("b").await.expect("lookup"), "a removed asset is still known");
    assert_eq!(store.probe_events("b", &recent(10)).await.expect("history").len(), 1);
    assert!(!store.asset_exists("c").await.expect("lookup"));
    let mut changed = asset("b");
    Arc::make_mut(&mut changed).name = "Renamed".into();
    store.sync_assets(&[asset("a"), changed], true).await.expect("b back");
    store.write(&[], &[result("b", hour(1), true, 5)]).await.expect("write");
    assert_eq!(store.probe_events("b", &recent(10)).await.expect("history").len(), 2);
    store.close().await;
}

/// A batch is written in two parts at most, each all or nothing: its changes (incidents,
/// notifications, the asset list) in one transaction, its probe results in one statement.
/// PostgreSQL commits both together; SQLite commits the results alone, after the changes
/// (inside the changes' transaction it would keep a statement journal of every page the insert
/// touches). Either way a retry of the whole batch stores everything once.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_s_changes_and_its_results_are_each_all_or_nothing() {
    let Some((_db, store)) = open().await else { return };
    let results_commit_alone = matches!(store, Store::Sqlite(_));
    store.sync_assets(&[asset("a")], true).await.expect("sync");
    let opened = incident("a", hour(0));
    let open = || [StoreOp::Incident(IncidentWrite::Open(opened.clone()))];
    let open_ids = async || store.open_incidents().await.expect("read").iter().map(|i| i.id).collect::<Vec<_>>();

    // One result names an asset the store never heard of: none of the results is stored.
    let batch = [result("a", hour(0), true, 5), result("ghost", hour(0), true, 5)];
    assert!(store.write(&open(), &batch).await.is_err());
    assert!(store.probe_events("a", &recent(10)).await.expect("read").is_empty());
    assert!(store.rollups("a", hour(0), hour(1)).await.expect("rollups").is_empty());
    let expected: Vec<Uuid> = if results_commit_alone { vec![opened.id] } else { vec![] };
    assert_eq!(open_ids().await, expected, "the changes commit alone only where the results do");

    // One change names an unknown asset: none of the changes, and no result, is stored.
    let ghost = [StoreOp::Incident(IncidentWrite::Open(incident("ghost", hour(0))))];
    assert!(store.write(&ghost, &[result("a", hour(0), true, 7)]).await.is_err());
    assert!(store.probe_events("a", &recent(10)).await.expect("read").is_empty());

    // The first batch again without the ghost result: everything once.
    store.write(&open(), &batch[..1]).await.expect("retry");
    store.write(&open(), &batch[..1]).await.expect("retry again");
    assert_eq!(store.probe_events("a", &recent(10)).await.expect("read").len(), 1);
    assert_eq!(open_ids().await, vec![opened.id]);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rollups_sum_each_hour_read_live_until_rolled_up_and_again_after_late_results() {
    let Some((_db, store)) = open().await else { return };
    store.sync_assets(&[asset("a"), asset("b")], true).await.expect("sync");
    // Hour 0: 60 probes, 6 failures, one slow; hour 1: 30 probes, all fine; in uneven batches.
    let results: Vec<ProbeResult> = (0..90)
        .map(|i| {
            let at = hour(0) + TimeDelta::minutes(i);
            result("a", at, !(i < 60 && i % 10 == 0), if i == 5 { 3000 } else { 40 + i })
        })
        .collect();
    for chunk in results.chunks(37) {
        store.write(&[], chunk).await.expect("write");
    }
    store.write(&[], &[result("b", hour(0), true, 1)]).await.expect("write b");
    let check = |rollups: &[statusd::Rollup]| {
        assert_eq!(rollups.len(), 2);
        assert_eq!((rollups[0].hour, rollups[0].probes, rollups[0].successes), (hour(0), 60, 54));
        assert_eq!((rollups[0].latency_min, rollups[0].latency_max), (40, 3000));
        assert_eq!(rollups[0].latency_sum, (0..60).map(|i| if i == 5 { 3000 } else { 40 + i }).sum::<i64>());
        assert_eq!(rollups[0].buckets[2], 10, "40..=50 ms fall in (25, 50]");
        assert_eq!(rollups[0].buckets[3], 49, "51..=99 ms fall in (50, 100]");
        assert_eq!(rollups[0].buckets[8], 1, "3 s falls in (2500, 5000]");
        assert_eq!(rollups[0].buckets.iter().sum::<i64>(), 60);
        assert_eq!((rollups[1].hour, rollups[1].probes, rollups[1].successes), (hour(1), 30, 30));
    };
    let live = store.rollups("a", hour(0), hour(2)).await.expect("live");
    check(&live);

    // Rolling up stores exactly what was read live; the current hour is left alone.
    assert_eq!(store.roll_up_next(hour(1)).await.expect("roll up"), Some(hour(0)));
    assert_eq!(store.roll_up_next(hour(1)).await.expect("roll up"), None, "hour 1 is not over");
    check(&store.rollups("a", hour(0), hour(2)).await.expect("rolled up"));
    assert_eq!(store.rollups("b", hour(0), hour(2)).await.expect("b").len(), 1);

    // A late result for a rolled-up hour makes it pending again: read live, then rolled up anew.
    store.write(&[], &[result("a", hour(0) + TimeDelta::seconds(30), true, 41)]).await.expect("late");
    assert_eq!(store.rollups("a", hour(0), hour(1)).await.expect("live again")[0].probes, 61);
    assert_eq!(store.roll_up_next(hour(1)).await.expect("roll up"), Some(hour(0)));
    assert_eq!(store.rollups("a", hour(0), hour(1)).await.expect("rolled up again")[0].probes, 61);

    let uptime =
        statusd::Uptime::from_rollups("a", hour(0), hour(2), &store.rollups("a", hour(0), hour(2)).await.expect("r"));
    assert_eq!((uptime.probes, uptime.successes), (91, 85));
    store.close().await;
}

/// Results taken in a maintenance window or while statusd had lost its own network keep their
/// mark and say nothing about uptime; degraded ones count as up.
#[tokio::test(flavor = "multi_thread")]
async fn marked_results_round_trip_and_only_degraded_ones_count_for_uptime() {
    let Some((_db, store)) = open().await else { return };
    store.sync_assets(&[asset("a")], true).await.expect("sync");
    let marks = [None, Some(Mark::Degraded), Some(Mark::Maintenance), Some(Mark::Inconclusive)];
    let results: Vec<ProbeResult> = (0..40)
        .map(|i| {
            // Half the plain results fail, and every inconclusive one; the rest pass.
            let success = i % 8 != 4 && i % 4 != 3;
            let mut result = result("a", hour(0) + TimeDelta::minutes(i), success, 10);
            result.mark = marks[i as usize % 4];
            result
        })
        .collect();
    store.write(&[], &results).await.expect("write");
    let stored = store.probe_events("a", &recent(100)).await.expect("read");
    let stored_marks: Vec<Option<Mark>> = stored.iter().rev().map(|e| e.mark).collect();
    assert_eq!(stored_marks, results.iter().map(|r| r.mark).collect::<Vec<_>>());
    for rolled_up in [false, true] {
        if rolled_up {
            assert_eq!(store.roll_up_next(hour(1)).await.expect("roll up"), Some(hour(0)));
        }
        let rollups = store.rollups("a", hour(0), hour(1)).await.expect("rollups");
        assert_eq!((rollups[0].probes, rollups[0].successes), (20, 15), "rolled up: {rolled_up}");
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_prunes_rolled_up_events_in_batches_and_old_rollups_later() {
    let Some((_db, store)) = open().await else { return };
    store.sync_assets(&[asset("a")], true).await.expect("sync");
    let now = Utc::now();
    let old: Vec<ProbeResult> =
        (0..25).map(|i| result("a", now - TimeDelta::days(40) + TimeDelta::minutes(i), true, 5)).collect();
    let fresh: Vec<ProbeResult> =
        (0..5).map(|i| result("a", now - TimeDelta::minutes(10) + TimeDelta::seconds(i), true, 5)).collect();
    store.write(&[], &old).await.expect("write old");
    store.write(&[], &fresh).await.expect("write fresh");

    let cutoff = now - TimeDelta::days(30);
    assert_eq!(store.prune_events(cutoff, 10).await.expect("prune"), 0, "not rolled up yet: kept");
    while store.roll_up_next(statusd::hour_of(now)).await.expect("roll up").is_some() {}
    assert_eq!(store.prune_events(cutoff, 10).await.expect("prune"), 10, "at most one batch at a time");
    assert_eq!(store.prune_events(cutoff, 10).await.expect("prune"), 10);
    assert_eq!(store.prune_events(cutoff, 10).await.expect("prune"), 5);
    assert_eq!(store.prune_events(cutoff, 10).await.expect("prune"), 0);
    assert_eq!(store.probe_events("a", &recent(100)).await.expect("read").len(), 5, "recent events stay");

    // The pruned hours' rollups stay, until they pass their own, longer retention.
    let long_ago = now - TimeDelta::days(41);
    let rollups = store.rollups("a", long_ago, now + TimeDelta::hours(1)).await.expect("rollups");
    assert_eq!(rollups.iter().map(|r| r.probes).sum::<i64>(), 30, "{rollups:?}");
    assert_eq!(store.prune_rollups(now - TimeDelta::days(400)).await.expect("prune"), 0);
    assert!(store.prune_rollups(now - TimeDelta::days(2)).await.expect("prune") >= 1);
    let left = store.rollups("a", long_ago, now + TimeDelta::hours(1)).await.expect("rollups");
    assert_eq!(left.iter().map(|r| r.probes).sum::<i64>(), 5, "{left:?}");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_run_once_whoever_connects() {
    let Some((db, store)) = open().await else { return };
    store.sync_assets(&[asset("a")], true).await.expect("sync");
    store.write(&[], &[result("a", hour(0), true, 5)]).await.expect("write");
    let (again, third) = tokio::join!(Store::connect(&db.url), Store::connect(&db.url));
    let again = again.expect("connect again");
    third.expect("connect concurrently").close().await;
    assert_eq!(again.probe_events("a", &recent(10)).await.expect("read").len(), 1);
    again.close().await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn maintenance_windows_are_kept_once_per_id_until_deleted() {
    let Some((_db, store)) = open().await else { return };
    let window = |id: &str, at: DateTime<Utc>| statusd::StoredWindow {
        id: id.into(),
        definition: json!({"id": id, "assets": ["a"], "start": "2026-12-01T00:00:00Z", "end": "2026-12-01T01:00:00Z"})
            .to_string(),
        created_at: at,
    };
    assert!(store.maintenance_windows().await.expect("read").is_empty());
    assert!(store.add_maintenance_window(&window("later", hour(1))).await.expect("add"));
    assert!(store.add_maintenance_window(&window("first", hour(0))).await.expect("add"));
    let mut taken = window("first", hour(2));
    taken.definition = "{}".into();
    assert!(!store.add_maintenance_window(&taken).await.expect("add"), "the id is taken");
    let stored = store.maintenance_windows().await.expect("read");
    assert_eq!(stored, [window("first", hour(0)), window("later", hour(1))], "oldest first, the first one kept");
    assert!(store.remove_maintenance_window("first").await.expect("delete"));
    assert!(!store.remove_maintenance_window("first").await.expect("delete"), "gone already");
    assert_eq!(store.maintenance_windows().await.expect("read"), [window("later", hour(1))]);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tiers_rise_the_first_ack_stays_and_the_timeline_is_written_once() {
    let Some((_db, store)) = open().await else { return };
    store.sync_assets(&[asset("a")], true).await.expect("sync");
    let opened = incident("a", hour(0));
    let step = |at: i64, kind: TimelineKind, detail: &str| TimelineEntry {
        id: Uuid::now_v7(),
        incident_id: opened.id,
        at: hour(0) + TimeDelta::seconds(at),
        kind,
        detail: detail.into(),
    };
    let ack = |by: &str, at: i64| IncidentWrite::Ack {
        id: opened.id,
        at: hour(0) + TimeDelta::seconds(at),
        by: by.into(),
        note: Some(format!("{by}'s note")),
    };
    let writes: Vec<StoreOp> = [
        IncidentWrite::Open(opened.clone()),
        IncidentWrite::Timeline(step(0, TimelineKind::Opened, "a is down")),
        IncidentWrite::Tier { id: opened.id, tier: 0 },
        IncidentWrite::Timeline(step(1, TimelineKind::Notified, "tier 0: t0")),
        IncidentWrite::Tier { id: opened.id, tier: 2 },
        // A late write of a lower tier never lowers it.
        IncidentWrite::Tier { id: opened.id, tier: 1 },
        ack("alice", 5),
        IncidentWrite::Timeline(step(5, TimelineKind::Acknowledged, "by alice")),
        ack("bob", 6),
    ]
    .into_iter()
    .map(StoreOp::Incident)
    .collect();
    store.write(&writes, &[]).await.expect("write");
    // The same batch again (a retried write) changes nothing.
    store.write(&writes, &[]).await.expect("write again");
    let stored = store.incident(opened.id).await.expect("read").expect("stored");
    assert_eq!(stored.tier, Some(2));
    assert_eq!(stored.acknowledged_by.as_deref(), Some("alice"));
    assert_eq!(stored.ack_note.as_deref(), Some("alice's note"));
    assert_eq!(stored.acknowledged_at, Some(hour(0) + TimeDelta::seconds(5)));
    let timeline = store.timeline(opened.id).await.expect("timeline");
    let kinds: Vec<TimelineKind> = timeline.iter().map(|step| step.kind).collect();
    assert_eq!(kinds, [TimelineKind::Opened, TimelineKind::Notified, TimelineKind::Acknowledged]);
    assert_eq!(timeline[1].detail, "tier 0: t0");
    assert_eq!(store.incident(Uuid::now_v7()).await.expect("read"), None);
    store.close().await;
}

/// The outbox keeps one row per key (incident, event, channel, tier; a REMINDER's decision time
/// too): the same DOWN decided twice is one row, whether in one batch or two; another channel,
/// tier or reminder is a row of its own, and notifications outside an incident are never held.
#[tokio::test(flavor = "multi_thread")]
async fn the_outbox_keeps_one_row_per_incident_event_channel_and_tier() {
    let Some((_db, store)) = open().await else { return };
    let incident = Uuid::now_v7();
    let note = |event: Event, tier: Option<u32>, at: i64| Notification {
        event,
        asset_id: "a".into(),
        asset_name: "A".into(),
        timestamp: hour(0) + TimeDelta::seconds(at),
        details: "HTTP 500".into(),
        incident_id: (event != Event::Panic).then_some(incident),
        group: Vec::new(),
        tier,
        since: Some(hour(0)),
    };
    let decided = |channel: &str, notification: Notification| {
        StoreOp::Notification(NotificationWrite::Decided(OutboxEntry {
            id: Uuid::now_v7(),
            channel: channel.into(),
            notification,
            decided_at: hour(0),
        }))
    };
    let first = vec![
        decided("c", note(Event::Down, Some(0), 0)),
        decided("c", note(Event::Down, Some(0), 0)),
        decided("d", note(Event::Down, Some(0), 0)),
        decided("c", note(Event::Down, Some(1), 0)),
        decided("c", note(Event::Reminder, Some(0), 300)),
        decided("c", note(Event::Reminder, Some(0), 600)),
        decided("c", note(Event::Reminder, Some(0), 600)),
        decided("c", note(Event::Panic, None, 0)),
        decided("c", note(Event::Panic, None, 0)),
    ];
    store.write(&first, &[]).await.expect("write");
    // Decided again in a later batch (after a restart, say): still one row.
    store.write(&[decided("c", note(Event::Down, Some(0), 0))], &[]).await.expect("write again");
    let pending = store.pending_notifications().await.expect("pending");
    let mut rows: Vec<(String, String, Option<u32>)> = pending
        .iter()
        .map(|e| (e.channel.clone(), e.notification.event.as_str().to_string(), e.notification.tier))
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            ("c".into(), "DOWN".into(), Some(0)),
            ("c".into(), "DOWN".into(), Some(1)),
            ("c".into(), "PANIC".into(), None),
            ("c".into(), "PANIC".into(), None),
            ("c".into(), "REMINDER".into(), Some(0)),
            ("c".into(), "REMINDER".into(), Some(0)),
            ("d".into(), "DOWN".into(), Some(0)),
        ]
    );
    let mut keys = store.outbox_keys(hour(0)).await.expect("keys");
    keys.sort();
    assert_eq!(keys.len(), 5, "{keys:?}");
    assert!(keys.contains(&format!("{incident}/DOWN/c/0")), "{keys:?}");
    assert!(keys.contains(&format!("{incident}/REMINDER/c/0/{}", (hour(0) + TimeDelta::seconds(300)).timestamp())));
    assert!(store.outbox_keys(hour(1)).await.expect("keys").is_empty());
    store.close().await;
}
