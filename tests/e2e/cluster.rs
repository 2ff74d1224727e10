//! Several statusd on one database. Alone (the default), an instance claims the database and a
//! second one is refused, naming the first, before it can mark the first one's assets removed
//! or close its incidents. With `--cluster`, replicas on one PostgreSQL database share the
//! assets by leases: each asset is probed by exactly one replica, and a replica killed outright
//! has its assets taken over by the others within 2 × lease.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::e2e::harness::*;

/// A deadline, not a promise: three or four debug-built processes starting while the rest of
/// the suite runs on two cores can take a while to join (takeover times are measured apart).
const WAIT: Duration = Duration::from_secs(45);

/// A second statusd's files, on the database of `first`.
fn on_the_same_database(first: &Setup, assets: Value) -> Setup {
    Setup::on(TestDb::existing(first.db.backend, first.db_url()), assets, no_channels())
}

async fn refusal(setup: &Setup, extra: &[&str]) -> String {
    let (_, settings) = statusd::Settings::from_args(setup.args(extra), &BTreeMap::new()).expect("valid settings");
    match statusd::App::build(settings).await {
        Ok(_) => panic!("a second instance on the same database started"),
        Err(error) => error.to_string(),
    }
}

/// The trap: a second instance alone on the same database would mark the first one's assets
/// removed and close its open incidents as "removed". It is refused instead, and says by whom.
async fn a_second_instance_is_refused_and_closes_nothing(backend: Backend) {
    let target = Target::start().await;
    target.set(Mode::Error);
    let first_setup = Setup::new(backend, json!([http_asset("first", &target.url())]), no_channels()).await;
    let first = first_setup.start(&["--instance-id", "first-instance"]).await;
    first.wait_incidents("open", 1).await;

    let second_setup = on_the_same_database(&first_setup, json!([http_asset("second", &target.url())]));
    let error = refusal(&second_setup, &["--instance-id", "second-instance"]).await;
    println!("refused: {error}");
    assert!(error.contains("first-instance"), "names the holder: {error}");
    assert!(error.contains("--cluster"), "says what to do: {error}");
    assert!(error.contains("host ") && error.contains("since "), "{error}");

    let inspect = first_setup.inspect().await;
    let incidents = inspect.incidents().await;
    assert_eq!(incidents.len(), 1);
    assert!(!incidents[0].1, "the first instance's incident is still open: {incidents:?}");
    let removed = inspect.count("SELECT count(*) FROM assets WHERE id = $1 AND removed_at IS NOT NULL", "first").await;
    assert_eq!(removed, 0, "the first instance's asset is not marked removed");
    first.wait_status("first", "down", WAIT).await;

    // Once the first stops, the second may start.
    first.stop().await;
    let second = second_setup.start(&["--instance-id", "second-instance"]).await;
    second.wait_status("second", "down", WAIT).await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_instance_on_one_sqlite_file_is_refused_and_closes_nothing() {
    a_second_instance_is_refused_and_closes_nothing(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_instance_on_one_postgres_database_is_refused_and_closes_nothing() {
    if !crate::e2e::databases::postgres_available().await {
        return;
    }
    a_second_instance_is_refused_and_closes_nothing(Backend::Postgres).await;
}

/// Alone and in a cluster exclude each other; replicas of a cluster share the database, and a
/// replica without the incidents role neither marks the other's assets removed nor closes
/// their incidents, even while its config lacks them.
#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_a_database_that_an_instance_alone_may_not() {
    if !crate::e2e::databases::postgres_available().await {
        return;
    }
    let target = Target::start().await;
    target.set(Mode::Error);
    let cluster = ["--cluster"];
    let first_setup = Setup::new(
        Backend::Postgres,
        json!([http_asset("shared", &target.url()), http_asset("only-first", &target.url())]),
        no_channels(),
    )
    .await;
    first_setup.write_settings("[cluster]\nlease_seconds = 2\n");
    let first = first_setup.start(&[&cluster[..], &["--instance-id", "replica-1"]].concat()).await;
    eventually("replica-1 probes both assets and opens their incidents", WAIT, || async {
        let (_, open) = first.get("/api/incidents?state=open").await;
        (open.as_array().map(Vec::len) == Some(2)).then_some(())
    })
    .await;

    let alone = on_the_same_database(&first_setup, json!([http_asset("shared", &target.url())]));
    let error = refusal(&alone, &["--instance-id", "alone"]).await;
    println!("refused: {error}");
    assert!(error.contains("cluster of statusd replicas (replica-1)") && error.contains("--cluster"), "{error}");

    // A replica whose config lacks `only-first` (an edit half rolled out) joins: it does not
    // hold the incidents role, so it leaves `only-first` and its incident alone.
    let second_setup = on_the_same_database(&first_setup, json!([http_asset("shared", &target.url())]));
    second_setup.write_settings("[cluster]\nlease_seconds = 2\n");
    let second = second_setup.start(&[&cluster[..], &["--instance-id", "replica-2"]].concat()).await;
    let inspect = first_setup.inspect().await;
    let removed =
        inspect.count("SELECT count(*) FROM assets WHERE id = $1 AND removed_at IS NOT NULL", "only-first").await;
    assert_eq!(removed, 0, "only-first is not marked removed");
    assert!(inspect.incidents().await.iter().all(|(_, ended, _)| !ended), "no incident was closed");

    second.stop().await;
    first.stop().await;
    // With the cluster gone, an instance alone may use the database again.
    let alone = alone.start(&["--instance-id", "alone"]).await;
    alone.wait_status("shared", "down", WAIT).await;
    alone.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_mode_on_sqlite_is_refused_at_start() {
    let setup = Setup::new(Backend::Sqlite, json!([]), no_channels()).await;
    let error = statusd::Settings::from_args(setup.args(&["--cluster"]), &BTreeMap::new()).expect_err("refused");
    assert!(error.to_string().contains("cluster mode needs a PostgreSQL database"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// Three replicas as separate processes, on one PostgreSQL database.

/// A target that answers 200 to everything and logs each request's path and arrival: who
/// probes what, and when, as the monitored service sees it.
struct LoggingTarget {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<(String, Instant)>>>,
    _server: AbortOnDrop,
}

impl LoggingTarget {
    async fn start() -> LoggingTarget {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind target");
        let addr = listener.local_addr().expect("target address");
        let log: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
        let server_log = Arc::clone(&log);
        let server = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let log = Arc::clone(&server_log);
                tokio::spawn(async move {
                    let Some(path) = request_path(&mut stream).await else { return };
                    log.lock().push((path, Instant::now()));
                    let _ =
                        stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        LoggingTarget { addr, log, _server: AbortOnDrop(server) }
    }

    fn url(&self, asset: &str) -> String {
        format!("http://{}/probe/{asset}", self.addr)
    }

    /// Requests per asset that arrived within [from, to).
    fn counts(&self, from: Instant, to: Instant) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for (path, at) in self.log.lock().iter() {
            if *at >= from && *at < to {
                let asset = path.trim_start_matches("/probe/").to_string();
                *counts.entry(asset).or_default() += 1;
            }
        }
        counts
    }

    /// The first request for `asset` at or after `from`.
    fn first_after(&self, asset: &str, from: Instant) -> Option<Instant> {
        let path = format!("/probe/{asset}");
        self.log.lock().iter().filter(|(p, at)| *p == path && *at >= from).map(|(_, at)| *at).min()
    }
}

/// A replica as a process of its own, so that it can be killed outright.
struct Replica {
    id: String,
    port: u16,
    process: Child,
}

impl Replica {
    async fn spawn(setup: &Setup, id: &str) -> Replica {
        Replica::spawn_with(setup, id, &[]).await
    }

    /// A replica with more flags (`--location`, `--source-address`).
    async fn spawn_with(setup: &Setup, id: &str, extra: &[&str]) -> Replica {
        let port = free_port();
        let flags = [&["--cluster", "--instance-id", id, "--log-level", "statusd=debug,info"][..], extra].concat();
        let mut args = setup.args(&flags);
        args.remove(0);
        let listen = args.iter().position(|arg| arg == "127.0.0.1:0").expect("the listen address");
        args[listen] = format!("127.0.0.1:{port}");
        // STATUSD_TEST_BINARY: the binary to run instead of this build's target/debug/statusd,
        // which worktrees sharing one target directory overwrite with each other's builds.
        let binary = std::env::var_os("STATUSD_TEST_BINARY").map_or_else(|| binary().to_path_buf(), Into::into);
        let process = Command::new(binary)
            .args(&args)
            .env("STATUSD_CLUSTER__LEASE_SECONDS", LEASE_SECONDS.to_string())
            .stderr(match std::env::var("STATUSD_TEST_REPLICA_LOGS") {
                // A directory to keep each replica's log (stdout) and errors (stderr) in, when debugging.
                Ok(dir) => std::fs::File::create(format!("{dir}/{id}.err")).map_or(Stdio::null(), Stdio::from),
                Err(_) => Stdio::null(),
            })
            .stdout(match std::env::var("STATUSD_TEST_REPLICA_LOGS") {
                Ok(dir) => std::fs::File::create(format!("{dir}/{id}.log")).map_or(Stdio::null(), Stdio::from),
                Err(_) => Stdio::null(),
            })
            .spawn()
            .expect("start statusd");
        Replica { id: id.to_string(), port, process }
    }

    async fn get(&self, path: &str) -> Option<Value> {
        let response = reqwest::get(format!("http://127.0.0.1:{}{path}", self.port)).await.ok()?;
        response.json().await.ok()
    }

    /// The assets this replica probes itself (the others it answers as their owner reported
    /// them, with `reportedBy`, or as probed elsewhere).
    async fn owned(&self) -> Option<BTreeSet<String>> {
        let assets = self.get("/api/assets").await?;
        Some(assets.as_array()?.iter().filter(|asset| answered_by_itself(asset)).filter_map(asset_id).collect())
    }

    /// The assets whose `statusd_probe_total` this replica exports.
    async fn exported_probe_counters(&self) -> Option<BTreeSet<String>> {
        let response = reqwest::get(format!("http://127.0.0.1:{}/metrics", self.port)).await.ok()?;
        let text = response.text().await.ok()?;
        Some(
            text.lines()
                .filter(|line| line.starts_with("statusd_probe_total{"))
                .filter_map(|line| line.split("asset=\"").nth(1)?.split('"').next().map(str::to_string))
                .collect(),
        )
    }

    fn kill(&mut self) {
        self.process.kill().expect("SIGKILL");
        self.process.wait().expect("reaped");
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

const LEASE_SECONDS: u64 = 2;

/// Until the outbox has recorded every send. A replica killed between a send and its record
/// leaves that notification pending, and the next holder of the incidents role sends it again
/// (at least once, as a restart does; PagerDuty and Matrix deduplicate it by its key): the
/// tests that kill the sender mid-outage kill it once its sends are recorded.
async fn sends_recorded(replica: &Replica) {
    eventually("every notification recorded as sent", WAIT, || async {
        replica.get("/api/notifications?status=pending").await?.as_array()?.is_empty().then_some(())
    })
    .await;
}

/// Replica processes running at once across this binary's tests. Each holds a dozen PostgreSQL
/// connections (its pool, the claim's session, listeners) and the suite's other tests need
/// theirs: without a bound, PostgreSQL's default `max_connections = 100` runs out ("too many
/// clients") while they all run at once. Each test takes all the slots it needs at its start.
static REPLICA_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(7);

async fn replica_slots(processes: u32) -> tokio::sync::SemaphorePermit<'static> {
    // Invariant: the semaphore is never closed.
    REPLICA_SLOTS.acquire_many(processes).await.expect("the replica slots stay open")
}

/// An asset as the API answers it from the replica that probes it: not a state another replica
/// reported through the store (`reportedBy`), nor one it has yet to report.
fn answered_by_itself(asset: &Value) -> bool {
    asset["reportedBy"].is_null()
        && !asset["error"].as_str().is_some_and(|error| error.starts_with("probed by another replica"))
}

fn asset_id(asset: &Value) -> Option<String> {
    asset["id"].as_str().map(str::to_string)
}

fn replicas_ids(replicas: &[Replica]) -> Vec<&str> {
    replicas.iter().map(|replica| replica.id.as_str()).collect()
}
const ASSETS: usize = 30;

/// Waits until the replicas' owned sets are disjoint, each non-empty, and cover every asset.
async fn split(replicas: &[&Replica], all: &BTreeSet<String>) -> Vec<BTreeSet<String>> {
    eventually("the replicas to split the assets among themselves", WAIT, || async {
        let mut sets = Vec::new();
        for replica in replicas {
            sets.push(replica.owned().await?);
        }
        let total: usize = sets.iter().map(BTreeSet::len).sum();
        let union: BTreeSet<String> = sets.iter().flatten().cloned().collect();
        (total == all.len() && union == *all && sets.iter().all(|set| !set.is_empty())).then_some(sets)
    })
    .await
}

/// Over a window of whole probe intervals, every asset is requested by the target about once a
/// second: by one replica. Two probing it would double that.
async fn probed_once_each(target: &LoggingTarget, all: &BTreeSet<String>, what: &str) {
    let window = Duration::from_secs(4);
    let from = Instant::now();
    tokio::time::sleep_until(from + window).await;
    let counts = target.counts(from, from + window);
    for asset in all {
        let n = counts.get(asset).copied().unwrap_or(0);
        // 4 s at one probe a second: 4, or 3 to 5 at the window's edges; two probers give 8.
        assert!((2..=5).contains(&n), "{what}: {asset} was requested {n} times in 4 s: {counts:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replica_processes_split_the_assets_and_take_over_a_killed_ones_within_two_leases() {
    if !crate::e2e::databases::postgres_available().await {
        return;
    }
    let _slots = replica_slots(4).await;
    let target = LoggingTarget::start().await;
    let ids: Vec<String> = (0..ASSETS).map(|i| format!("asset-{i:02}")).collect();
    let all: BTreeSet<String> = ids.iter().cloned().collect();
    let assets: Vec<Value> = ids.iter().map(|id| http_asset(id, &target.url(id))).collect();
    let setup = Setup::new(Backend::Postgres, Value::Array(assets), no_channels()).await;
    let mut replicas = vec![
        Replica::spawn(&setup, "split-a").await,
        Replica::spawn(&setup, "split-b").await,
        Replica::spawn(&setup, "split-c").await,
    ];

    let sets = split(&replicas.iter().collect::<Vec<_>>(), &all).await;
    for (replica, set) in replicas.iter().zip(&sets) {
        println!("{} owns {} assets", replica.id, set.len());
    }
    probed_once_each(&target, &all, "three replicas").await;
    // Every replica answers the same: three live members, their shares, one incidents holder.
    for replica in &replicas {
        let view = replica.get("/api/cluster").await.expect("GET /api/cluster");
        assert_eq!(view["enabled"], true);
        assert_eq!(view["instanceId"], replica.id.as_str());
        let members = view["members"].as_array().expect("members");
        let owned: BTreeMap<&str, usize> = members
            .iter()
            .map(|m| (m["id"].as_str().unwrap_or_default(), m["assetsOwned"].as_u64().unwrap_or(0) as usize))
            .collect();
        let expected: BTreeMap<&str, usize> =
            replicas_ids(&replicas).into_iter().zip(sets.iter().map(BTreeSet::len)).collect();
        assert_eq!(owned, expected, "{view}");
        assert!(members.iter().all(|m| m["live"] == true && m["mode"] == "cluster"), "{view}");
        let holder = view["incidentsHolder"].as_str().expect("an incidents holder");
        let holders: Vec<&Value> = members.iter().filter(|m| m["roles"] == json!(["incidents"])).collect();
        assert_eq!(holders.len(), 1, "{view}");
        assert_eq!(holders[0]["id"], holder);
    }

    // SIGKILL the second: nothing tells the others; its leases run out.
    let victim = replicas.remove(1);
    let orphaned = sets[1].clone();
    let mut victim = victim;
    let killed = Instant::now();
    victim.kill();
    let lease = Duration::from_secs(LEASE_SECONDS);
    // The promise is 2 × lease; the wait allows a probe interval and scheduling on a busy box.
    let deadline = 2 * lease + Duration::from_secs(3);
    let survivors: Vec<&Replica> = replicas.iter().collect();
    let sets = split(&survivors, &all).await;
    let taken_at = eventually("every orphaned asset probed again", deadline, || async {
        let firsts: Option<Vec<Instant>> =
            orphaned.iter().map(|asset| target.first_after(asset, killed + Duration::from_millis(100))).collect();
        firsts?.into_iter().max()
    })
    .await;
    let takeover = taken_at.duration_since(killed);
    println!(
        "takeover: the last of {} orphaned assets probed again {:.2} s after SIGKILL (lease {} s); survivors own {:?}",
        orphaned.len(),
        takeover.as_secs_f64(),
        LEASE_SECONDS,
        sets.iter().map(BTreeSet::len).collect::<Vec<_>>()
    );
    probed_once_each(&target, &all, "after the takeover").await;
    let mut takeovers = 0.0;
    for replica in &replicas {
        let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", replica.port))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        takeovers += metric(&text, "statusd_cluster_lease_takeovers_total").unwrap_or(0.0);
    }
    assert_eq!(takeovers as usize, orphaned.len(), "each orphaned lease was taken over once");

    // A replica joining takes its share, released by the others first: still one prober each.
    let joined = Replica::spawn(&setup, "replica-d").await;
    replicas.push(joined);
    let sets = split(&replicas.iter().collect::<Vec<_>>(), &all).await;
    println!("after a join: {:?}", sets.iter().map(BTreeSet::len).collect::<Vec<_>>());
    probed_once_each(&target, &all, "after a join").await;
    // Each replica exports the series of the assets it probes now, not of those it handed over
    // (their new owner exports them). Compared with what it answers as its own at the same
    // moment: on a loaded machine a late lease renewal may still move an asset meanwhile.
    for replica in &replicas {
        let what = format!("{}: the probe counters of its own assets only", replica.id);
        eventually(&what, WAIT, || async {
            let owned = replica.owned().await?;
            let exported = replica.exported_probe_counters().await?;
            if owned != exported {
                // Shown with the test's output if it fails.
                println!("{what}: owns {owned:?}, exports {exported:?}");
            }
            (owned == exported).then_some(())
        })
        .await;
    }
}

/// One outage is one incident, one DOWN and one RECOVERY, even when the replica probing the
/// failing asset is killed in the middle of it: the replica that takes the asset over resumes it
/// down with its open incident, as a restarted statusd would, instead of confirming a new one.
#[tokio::test(flavor = "multi_thread")]
async fn an_outage_whose_replica_is_killed_midway_is_one_down_and_one_recovery() {
    if !crate::e2e::databases::postgres_available().await {
        return;
    }
    let _slots = replica_slots(3).await;
    let quiet = LoggingTarget::start().await;
    let failing = Target::start().await;
    let receiver = Receiver::start().await;
    let mut assets: Vec<Value> =
        (0..8).map(|i| http_asset(&format!("quiet-{i}"), &quiet.url(&format!("quiet-{i}")))).collect();
    assets.push(http_asset("failing", &failing.url()));
    let all: BTreeSet<String> = assets.iter().filter_map(|a| a["id"].as_str().map(str::to_string)).collect();
    let notifiers = json!({
        "notifiers": {"hook": {"type": "webhook", "url": receiver.url("webhook")}},
        "notificationPolicy": {"onDown": ["hook"], "onRecovery": ["hook"], "throttleSeconds": 0}
    });
    let setup = Setup::new(Backend::Postgres, Value::Array(assets), notifiers).await;
    let mut replicas = vec![
        Replica::spawn(&setup, "midway-a").await,
        Replica::spawn(&setup, "midway-b").await,
        Replica::spawn(&setup, "midway-c").await,
    ];
    split(&replicas.iter().collect::<Vec<_>>(), &all).await;

    failing.set(Mode::Error);
    eventually("one DOWN", WAIT, || async { (receiver.events("webhook") == ["DOWN"]).then_some(()) }).await;
    let mut owner = None;
    for (index, replica) in replicas.iter().enumerate() {
        if replica.owned().await.is_some_and(|owned| owned.contains("failing")) {
            owner = Some(index);
        }
    }
    sends_recorded(&replicas[0]).await;
    let mut victim = replicas.remove(owner.expect("an owner of the failing asset"));
    let killed = Instant::now();
    victim.kill();
    println!("killed {}, which probed the failing asset", victim.id);

    // Taken over, resumed down, and probed a few times more while still failing.
    let (heir, stamp) = eventually("the failing asset taken over and probed", WAIT, || async {
        for replica in &replicas {
            let asset = replica.get("/api/assets/failing").await?;
            if answered_by_itself(&asset)
                && asset["error"].is_null()
                && asset["status"] == "down"
                && asset["lastProbe"].is_object()
            {
                return Some((replica, asset["lastProbe"]["timestamp"].clone()));
            }
        }
        None
    })
    .await;
    println!("{} took the failing asset over {:.2} s after the kill", heir.id, killed.elapsed().as_secs_f64());
    let mut last = stamp;
    for probe in 0..3 {
        last = eventually(&format!("probe {probe} by the heir"), WAIT, || {
            let last = last.clone();
            async move {
                let now = heir.get("/api/assets/failing").await?["lastProbe"]["timestamp"].clone();
                (now != last).then_some(now)
            }
        })
        .await;
    }
    assert_eq!(receiver.events("webhook"), ["DOWN"], "no second DOWN after the takeover");

    // The incidents role is held by a survivor (it moves if the victim held it).
    eventually("a live incidents-role holder", WAIT, || async {
        let view = heir.get("/api/cluster").await?;
        let holder = view["incidentsHolder"].as_str()?;
        (holder != victim.id).then_some(())
    })
    .await;

    failing.set(Mode::Ok);
    eventually("one RECOVERY", WAIT, || async { (receiver.events("webhook") == ["DOWN", "RECOVERY"]).then_some(()) })
        .await;
    heir.get("/api/assets/failing").await.expect("asset");
    let incidents = setup.inspect().await.incidents().await;
    assert_eq!(incidents.len(), 1, "one incident: {incidents:?}");
    assert!(incidents[0].1, "closed by the recovery: {incidents:?}");
}

/// The incidents role moves when its holder is killed outright: a survivor takes it within
/// 2 × lease and does the holder's work from then on (here: an asset removed from the config is
/// marked removed and its incident closed as removed), and an outage spread over every replica
/// stays one DOWN and one RECOVERY per asset across the failover.
#[tokio::test(flavor = "multi_thread")]
async fn killing_the_incidents_role_holder_moves_the_role_and_sends_nothing_twice() {
    if !crate::e2e::databases::postgres_available().await {
        return;
    }
    let _slots = replica_slots(3).await;
    let quiet = LoggingTarget::start().await;
    let failing = Target::start().await;
    let receiver = Receiver::start().await;
    // Several failing assets, so that the holder and the other replicas each probe some.
    let failing_ids: Vec<String> = (0..9).map(|i| format!("role-down-{i}")).collect();
    let mut assets: Vec<Value> =
        (0..6).map(|i| http_asset(&format!("role-quiet-{i}"), &quiet.url(&format!("role-quiet-{i}")))).collect();
    assets.extend(failing_ids.iter().map(|id| http_asset(id, &failing.url())));
    let all: BTreeSet<String> = assets.iter().filter_map(|a| a["id"].as_str().map(str::to_string)).collect();
    let notifiers = json!({
        "notifiers": {"hook": {"type": "webhook", "url": receiver.url("webhook")}},
        "notificationPolicy": {"onDown": ["hook"], "onRecovery": ["hook"], "throttleSeconds": 0}
    });
    let setup = Setup::new(Backend::Postgres, Value::Array(assets.clone()), notifiers).await;
    let mut replicas = vec![
        Replica::spawn(&setup, "role-a").await,
        Replica::spawn(&setup, "role-b").await,
        Replica::spawn(&setup, "role-c").await,
    ];
    split(&replicas.iter().collect::<Vec<_>>(), &all).await;
    let holder = eventually("an incidents-role holder", WAIT, || async {
        replicas[0].get("/api/cluster").await?["incidentsHolder"].as_str().map(str::to_string)
    })
    .await;

    failing.set(Mode::Error);
    let per_asset = |event: &'static str| {
        let bodies = receiver.bodies("webhook");
        let mut by_asset: BTreeMap<String, usize> = BTreeMap::new();
        for body in bodies.iter().filter(|body| body["event"] == event) {
            *by_asset.entry(asset_of("webhook", body)).or_default() += 1;
        }
        by_asset
    };
    let every_failing_once: BTreeMap<String, usize> = failing_ids.iter().map(|id| (id.clone(), 1)).collect();
    eventually("one DOWN per failing asset", WAIT, || async {
        (per_asset("DOWN") == every_failing_once).then_some(())
    })
    .await;

    sends_recorded(&replicas[0]).await;
    let victim_index = replicas.iter().position(|replica| replica.id == holder).expect("the holder is a replica");
    let mut victim = replicas.remove(victim_index);
    let killed = Instant::now();
    victim.kill();
    let heir = eventually("the incidents role taken by a survivor", WAIT, || async {
        for replica in &replicas {
            let view = replica.get("/api/cluster").await?;
            let holder = view["incidentsHolder"].as_str()?;
            if holder != victim.id && replicas.iter().any(|r| r.id == holder) {
                return Some(holder.to_string());
            }
        }
        None
    })
    .await;
    println!("{heir} holds the incidents role {:.2} s after {} was killed", killed.elapsed().as_secs_f64(), victim.id);
    // The victim's assets are taken over, resumed down.
    split(&replicas.iter().collect::<Vec<_>>(), &all).await;
    for id in &failing_ids {
        eventually(&format!("{id} probed again, still down"), WAIT, || async {
            for replica in &replicas {
                let asset = replica.get(&format!("/api/assets/{id}")).await?;
                if answered_by_itself(&asset) && asset["error"].is_null() && asset["status"] == "down" {
                    return Some(());
                }
            }
            None
        })
        .await;
    }

    // The config loses one failing asset: the new holder marks it removed and its incident
    // closes as removed, telling nobody it recovered.
    let removed = failing_ids[0].clone();
    let kept: Vec<Value> = assets.iter().filter(|a| a["id"] != removed.as_str()).cloned().collect();
    setup.write_manifest(Value::Array(kept));
    for replica in &replicas {
        assert_eq!(unsafe { libc::kill(replica.process.id() as i32, libc::SIGHUP) }, 0, "SIGHUP {}", replica.id);
    }
    let crate::e2e::databases::Inspect::Postgres(pool) = setup.inspect().await else { unreachable!("postgres") };
    eventually("the removed asset marked removed and its incident closed as removed", WAIT, || async {
        let removed_at: Option<bool> = sqlx::query_scalar("SELECT removed_at IS NOT NULL FROM assets WHERE id = $1")
            .bind(&removed)
            .fetch_optional(&pool)
            .await
            .ok()?;
        let reason: Option<String> = sqlx::query_scalar("SELECT close_reason FROM incidents WHERE asset_id = $1")
            .bind(&removed)
            .fetch_optional(&pool)
            .await
            .ok()??;
        (removed_at == Some(true) && reason.as_deref() == Some("removed")).then_some(())
    })
    .await;

    failing.set(Mode::Ok);
    let recovered: BTreeMap<String, usize> = failing_ids[1..].iter().map(|id| (id.clone(), 1)).collect();
    eventually("one RECOVERY per failing asset still watched", WAIT, || async {
        (per_asset("RECOVERY") == recovered).then_some(())
    })
    .await;
    assert_eq!(per_asset("DOWN"), every_failing_once, "no DOWN sent twice across the failover");
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM incidents WHERE ended_at IS NULL")
        .fetch_one(&pool)
        .await
        .expect("open incidents");
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM incidents").fetch_one(&pool).await.expect("incidents");
    assert_eq!((open, total), (0, failing_ids.len() as i64), "one incident per failing asset, all closed");
}

/// What every replica answers for `id`: (status, whether lastProbe is there, reportedBy),
/// from `GET /api/assets/{id}` and from the entry of `GET /api/assets`; None while a replica
/// does not answer, has an error for it, or the two disagree.
async fn answers(replicas: &[Replica], id: &str) -> Option<Vec<(String, bool, Option<String>)>> {
    let mut answers = Vec::new();
    for replica in replicas {
        let one = replica.get(&format!("/api/assets/{id}")).await?;
        let list = replica.get("/api/assets").await?;
        let listed = list.as_array()?.iter().find(|asset| asset["id"] == id)?.clone();
        let answer = |asset: &Value| {
            asset["error"].is_null().then(|| {
                let reported_by = asset["reportedBy"].as_str().map(str::to_string);
                (asset["status"].as_str().unwrap_or_default().to_string(), asset["lastProbe"].is_object(), reported_by)
            })
        };
        let (one, listed) = (answer(&one)?, answer(&listed)?);
        if one.0 != listed.0 || one.1 != listed.1 {
            return None;
        }
        answers.push(one);
    }
    Some(answers)
}

/// Waits until every replica answers `status` for `id`, with its last probe, and exactly one of
/// them probes it (the others answer what it reported through the store, naming it); answers
/// the owner's id.
async fn everyone_answers(replicas: &[Replica], id: &str, status: &str) -> String {
    eventually(&format!("every replica to answer {status} for {id}"), WAIT, || async {
        let answers = answers(replicas, id).await?;
        if !answers.iter().all(|(answered, probe, _)| answered == status && *probe) {
            return None;
        }
        let owners: Vec<&str> = replicas
            .iter()
            .zip(&answers)
            .filter(|(_, (_, _, reported_by))| reported_by.is_none())
            .map(|(replica, _)| replica.id.as_str())
            .collect();
        let [owner] = owners[..] else { return None };
        answers.iter().all(|(_, _, by)| by.as_deref().is_none_or(|by| by == owner)).then(|| owner.to_string())
    })
    .await
}

/// Every replica serves the whole API: an asset another replica probes is answered with the
/// state its owner wrote to the store (`asset_states`), not `unknown`, so that any replica
/// behind a load balancer answers the same; a change of status reaches them all, and so does
/// the state of an asset taken over from a replica killed outright.
#[tokio::test(flavor = "multi_thread")]
async fn every_replica_answers_the_live_state_of_every_asset() {
    if !crate::e2e::databases::postgres_available().await {
        return;
    }
    let _slots = replica_slots(3).await;
    let failing = Target::start().await;
    failing.set(Mode::Error);
    let healthy = Target::start().await;
    let (down_id, up_id) = ("mirrored-failing", "mirrored-healthy");
    let assets = json!([http_asset(down_id, &failing.url()), http_asset(up_id, &healthy.url())]);
    let setup = Setup::new(Backend::Postgres, assets, no_channels()).await;
    let mut replicas = vec![
        Replica::spawn(&setup, "mirror-a").await,
        Replica::spawn(&setup, "mirror-b").await,
        Replica::spawn(&setup, "mirror-c").await,
    ];
    let started = Instant::now();
    let down_owner = everyone_answers(&replicas, down_id, "down").await;
    let up_owner = everyone_answers(&replicas, up_id, "up").await;
    println!(
        "every replica answers {down_id} down (probed by {down_owner}) and {up_id} up (probed by {up_owner}) {:.2} s \
         after the start",
        started.elapsed().as_secs_f64()
    );

    // What the others answer is what the owner wrote, and only it.
    let crate::e2e::databases::Inspect::Postgres(pool) = setup.inspect().await else { unreachable!("postgres") };
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT asset_id, owner, status FROM asset_states ORDER BY asset_id")
            .fetch_all(&pool)
            .await
            .expect("asset_states");
    assert_eq!(
        rows,
        [(down_id.into(), down_owner.clone(), "down".into()), (up_id.into(), up_owner.clone(), "up".into())],
    );
    // The answer of a replica that does not probe it: the owner's, with when it reported it.
    let other = replicas.iter().find(|replica| replica.id != down_owner).expect("a replica that does not probe it");
    let mirrored = other.get(&format!("/api/assets/{down_id}")).await.expect("the asset");
    assert_eq!(mirrored["reportedBy"], down_owner.as_str(), "{mirrored}");
    assert!(mirrored["reportedAt"].is_string() && mirrored["since"].is_string(), "{mirrored}");
    assert_eq!(mirrored["probing"], false, "{mirrored}");
    assert!(mirrored["consecutiveFailures"].as_u64().is_some_and(|n| n >= 1), "{mirrored}");
    assert_eq!(mirrored["lastProbe"]["success"], false, "{mirrored}");
    // A new probe alone reaches the others within a lease or so, not at every probe.
    let first = mirrored["lastProbe"]["timestamp"].clone();
    eventually("a newer lastProbe reported by the owner", WAIT, || async {
        let now = other.get(&format!("/api/assets/{down_id}")).await?;
        (now["lastProbe"]["timestamp"] != first).then_some(())
    })
    .await;

    // Changes of status reach every replica.
    failing.set(Mode::Ok);
    healthy.set(Mode::Error);
    let started = Instant::now();
    everyone_answers(&replicas, down_id, "up").await;
    let owner = everyone_answers(&replicas, up_id, "down").await;
    println!("every replica answers both changes {:.2} s after the targets switched", started.elapsed().as_secs_f64());

    // SIGKILL the replica probing the failing asset: the survivors stop answering its last word
    // once its heartbeat is too old, and answer the heir's as soon as it has written it.
    let index = replicas.iter().position(|replica| replica.id == owner).expect("the owner is a replica");
    let mut victim = replicas.remove(index);
    let killed = Instant::now();
    victim.kill();
    let heir = everyone_answers(&replicas, up_id, "down").await;
    assert_ne!(heir, victim.id);
    println!(
        "after SIGKILL of {}, both survivors answer {up_id} down as {heir} reports it, {:.2} s later",
        victim.id,
        killed.elapsed().as_secs_f64()
    );
}

/// The claim outlives its session: when the connection holding the lock dies (a database
/// restart, a proxy dropping it), the instance takes the claim again, so a second instance is
/// still refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_claim_whose_session_dies_is_taken_again() {
    if !crate::e2e::databases::postgres_available().await {
        return;
    }
    let setup = Setup::new(Backend::Postgres, json!([]), no_channels()).await;
    let first = setup.start(&["--instance-id", "first-instance"]).await;
    let crate::e2e::databases::Inspect::Postgres(pool) = setup.inspect().await else { unreachable!("postgres") };
    const HOLDERS: &str = "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
                           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";
    let before: Vec<i32> = sqlx::query_scalar(HOLDERS).fetch_all(&pool).await.expect("locks");
    assert_eq!(before.len(), 1, "one session holds the claim: {before:?}");
    let _: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(before[0])
        .fetch_one(&pool)
        .await
        .expect("terminate");
    eventually("the claim taken again on a new session", WAIT, || async {
        let now: Vec<i32> = sqlx::query_scalar(HOLDERS).fetch_all(&pool).await.ok()?;
        (now.len() == 1 && now[0] != before[0]).then_some(())
    })
    .await;
    let second = on_the_same_database(&setup, json!([]));
    let error = refusal(&second, &["--instance-id", "second-instance"]).await;
    assert!(error.contains("first-instance"), "{error}");
    first.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Two locations on one machine: each replica sends its probes from its own loopback address
// (`--source-address`), and the target fails the probes of one address only, as a network
// path that is broken from one location and fine from the other.

/// A target that answers 500 to the probes sent from the addresses in `failing`, 200 to the
/// others, and logs who asked for what.
struct PathTarget {
    addr: SocketAddr,
    failing: Arc<Mutex<BTreeSet<IpAddr>>>,
    log: Arc<Mutex<Vec<(String, IpAddr)>>>,
    _server: AbortOnDrop,
}

impl PathTarget {
    async fn start() -> PathTarget {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind target");
        let addr = listener.local_addr().expect("target address");
        let failing: Arc<Mutex<BTreeSet<IpAddr>>> = Arc::default();
        let log: Arc<Mutex<Vec<(String, IpAddr)>>> = Arc::default();
        let (server_failing, server_log) = (Arc::clone(&failing), Arc::clone(&log));
        let server = tokio::spawn(async move {
            while let Ok((mut stream, peer)) = listener.accept().await {
                let (failing, log) = (Arc::clone(&server_failing), Arc::clone(&server_log));
                tokio::spawn(async move {
                    let Some(path) = request_path(&mut stream).await else { return };
                    log.lock().push((path, peer.ip()));
                    let status =
                        if failing.lock().contains(&peer.ip()) { "500 Internal Server Error" } else { "200 OK" };
                    let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        PathTarget { addr, failing, log, _server: AbortOnDrop(server) }
    }

    fn url(&self, asset: &str) -> String {
        format!("http://{}/probe/{asset}", self.addr)
    }

    fn fail_from(&self, sources: &[IpAddr]) {
        *self.failing.lock() = sources.iter().copied().collect();
    }

    /// The addresses `asset` was probed from.
    fn sources(&self, asset: &str) -> BTreeSet<IpAddr> {
        self.sources_since(asset, 0)
    }

    /// The addresses `asset` was requested from, from the `from`th request of the log on.
    fn sources_since(&self, asset: &str, from: usize) -> BTreeSet<IpAddr> {
        let path = format!("/probe/{asset}");
        self.log.lock().iter().skip(from).filter(|(p, _)| *p == path).map(|(_, ip)| *ip).collect()
    }
}

/// An asset confirmed down only when two locations see it down: one location's view is shown
/// and opens nothing; both give one incident, one DOWN naming them, and one RECOVERY.
#[tokio::test(flavor = "multi_thread")]
async fn an_asset_needing_two_locations_is_down_only_when_both_see_it_down() {
    if !crate::e2e::databases::postgres_available().await {
        return;
    }
    let _slots = replica_slots(2).await;
    let eu: IpAddr = "127.0.0.2".parse().expect("an address");
    let us: IpAddr = "127.0.0.3".parse().expect("an address");
    let target = PathTarget::start().await;
    let receiver = Receiver::start().await;
    let mut edge = http_asset("edge", &target.url("edge"));
    edge["locations"] = json!({"names": ["eu", "us"], "required": 2});
    // On a target of its own, which never fails.
    let other = PathTarget::start().await;
    let mut eu_only = http_asset("eu-only", &other.url("eu-only"));
    eu_only["locations"] = json!({"names": ["eu"], "required": 1});
    // No `locations`: probed in the home location only (eu, first by name), one verdict.
    let anywhere = http_asset("anywhere", &other.url("anywhere"));
    let notifiers = json!({
        "notifiers": {"hook": {"type": "webhook", "url": receiver.url("webhook")}},
        "notificationPolicy": {"onDown": ["hook"], "onRecovery": ["hook"], "throttleSeconds": 0}
    });
    let setup = Setup::new(Backend::Postgres, json!([edge, eu_only, anywhere]), notifiers).await;
    let replicas = [
        Replica::spawn_with(&setup, "replica-eu", &["--location", "eu", "--source-address", "127.0.0.2"]).await,
        Replica::spawn_with(&setup, "replica-us", &["--location", "us", "--source-address", "127.0.0.3"]).await,
    ];
    // Every replica answers the same, whichever location it is in.
    let seen = |locations: Value, status: &'static str| {
        let replicas = &replicas;
        async move {
            eventually(&format!("every replica to show edge {status} with {locations}"), WAIT, || async {
                for replica in replicas {
                    let asset = replica.get("/api/assets/edge").await?;
                    if asset["locations"] != locations || asset["status"] != status {
                        return None;
                    }
                }
                Some(())
            })
            .await
        }
    };
    seen(json!({"eu": "up", "us": "up"}), "up").await;
    // Replicas starting together may each take themselves for the home location for a round.
    let settled = other.log.lock().len();

    // Failing from eu only: shown, and nothing opened.
    target.fail_from(&[eu]);
    seen(json!({"eu": "down", "us": "up"}), "up").await;
    // Five more probes from each location, every one of them a chance for a wrong decision.
    let probed = target.log.lock().len();
    eventually("ten more probes of edge", WAIT, || async { (target.log.lock().len() >= probed + 10).then_some(()) })
        .await;
    seen(json!({"eu": "down", "us": "up"}), "up").await;
    assert_eq!(receiver.events("webhook"), Vec::<String>::new(), "no notification for one location");
    assert_eq!(setup.inspect().await.incidents().await.len(), 0, "no incident for one location");

    // Failing from both: one incident, one DOWN that names both locations.
    target.fail_from(&[eu, us]);
    eventually("one DOWN", WAIT, || async { (receiver.events("webhook") == ["DOWN"]).then_some(()) }).await;
    let down = receiver.bodies("webhook")[0].clone();
    println!("DOWN: {down}");
    assert_eq!(down["assetId"], "edge");
    assert_eq!(down["details"], "down in eu, us", "{down}");
    seen(json!({"eu": "down", "us": "down"}), "down").await;
    let incidents = setup.inspect().await.incidents().await;
    assert_eq!(incidents.len(), 1, "one incident: {incidents:?}");

    // Up again from us: fewer than two see it down, so it recovers, once.
    target.fail_from(&[eu]);
    eventually("one RECOVERY", WAIT, || async { (receiver.events("webhook") == ["DOWN", "RECOVERY"]).then_some(()) })
        .await;
    let recovery = receiver.bodies("webhook")[1].clone();
    let details = recovery["details"].as_str().unwrap_or_default();
    assert!(details.starts_with("back up after ") && details.ends_with(": down in eu; up in us"), "{recovery}");
    seen(json!({"eu": "down", "us": "up"}), "up").await;
    let probed = target.log.lock().len();
    eventually("ten more probes of edge", WAIT, || async { (target.log.lock().len() >= probed + 10).then_some(()) })
        .await;
    assert_eq!(receiver.events("webhook"), ["DOWN", "RECOVERY"], "nothing more");
    let incidents = setup.inspect().await.incidents().await;
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert!(incidents[0].1, "closed by the recovery: {incidents:?}");

    // An asset named for eu only is probed from eu only; us parks it; so does one without
    // `locations`, which the home location alone probes.
    assert_eq!(other.sources("eu-only"), BTreeSet::from([eu]));
    assert_eq!(other.sources_since("anywhere", settled), BTreeSet::from([eu]));
    assert_eq!(target.sources("edge"), BTreeSet::from([eu, us]));
}

/// The decider dies in the middle of a quorum outage: the replica that takes the incidents role
/// takes the open incident over from the store, so the outage is still one DOWN and one RECOVERY.
#[tokio::test(flavor = "multi_thread")]
async fn a_quorum_outage_survives_the_death_of_its_decider() {
    if !crate::e2e::databases::postgres_available().await {
        return;
    }
    let _slots = replica_slots(3).await;
    let eu: IpAddr = "127.0.0.2".parse().expect("an address");
    let us: IpAddr = "127.0.0.3".parse().expect("an address");
    let target = PathTarget::start().await;
    let receiver = Receiver::start().await;
    let mut edge = http_asset("edge", &target.url("edge"));
    edge["locations"] = json!({"required": 2});
    let notifiers = json!({
        "notifiers": {"hook": {"type": "webhook", "url": receiver.url("webhook")}},
        "notificationPolicy": {"onDown": ["hook"], "onRecovery": ["hook"], "throttleSeconds": 0}
    });
    let setup = Setup::new(Backend::Postgres, json!([edge]), notifiers).await;
    let in_eu = ["--location", "eu", "--source-address", "127.0.0.2"];
    let mut decider = Replica::spawn_with(&setup, "replica-eu-a", &in_eu).await;
    eventually("replica-eu-a to hold the incidents role", WAIT, || async {
        (decider.get("/api/cluster").await?["incidentsHolder"] == "replica-eu-a").then_some(())
    })
    .await;
    let others = [
        Replica::spawn_with(&setup, "replica-eu-b", &in_eu).await,
        Replica::spawn_with(&setup, "replica-us-a", &["--location", "us", "--source-address", "127.0.0.3"]).await,
    ];
    eventually("edge up from eu and us", WAIT, || async {
        let asset = others[1].get("/api/assets/edge").await?;
        (asset["locations"] == json!({"eu": "up", "us": "up"})).then_some(())
    })
    .await;

    target.fail_from(&[eu, us]);
    eventually("one DOWN", WAIT, || async { (receiver.events("webhook") == ["DOWN"]).then_some(()) }).await;
    sends_recorded(&decider).await;
    let killed = Instant::now();
    decider.kill();
    let holder = eventually("the incidents role to move", WAIT, || async {
        let holder = others[0].get("/api/cluster").await?["incidentsHolder"].as_str()?.to_string();
        (holder != "replica-eu-a").then_some(holder)
    })
    .await;
    println!("{holder} holds the incidents role {:.2} s after the decider was killed", killed.elapsed().as_secs_f64());
    // eu is still live (replica-eu-b took the asset over) and still sees it down.
    eventually("edge down from eu and us, seen by the new holder", WAIT, || async {
        let asset = others[0].get("/api/assets/edge").await?;
        (asset["locations"] == json!({"eu": "down", "us": "down"}) && asset["status"] == "down").then_some(())
    })
    .await;
    let probed = target.log.lock().len();
    eventually("ten more probes of edge", WAIT, || async { (target.log.lock().len() >= probed + 10).then_some(()) })
        .await;
    assert_eq!(receiver.events("webhook"), ["DOWN"], "no second DOWN after the decider died");

    target.fail_from(&[]);
    eventually("one RECOVERY", WAIT, || async { (receiver.events("webhook") == ["DOWN", "RECOVERY"]).then_some(()) })
        .await;
    let incidents = setup.inspect().await.incidents().await;
    assert_eq!(incidents.len(), 1, "one incident: {incidents:?}");
    assert!(incidents[0].1, "closed by the recovery: {incidents:?}");
}

/// The assets each replica probes itself, with the status it sees: until every asset is up on
/// the replica that probes it.
async fn all_up_where_probed(replicas: &[Replica], all: &BTreeSet<String>) {
    eventually("every asset up on the replica probing it", WAIT, || async {
        let mut up = BTreeSet::new();
        for replica in replicas {
            for asset in replica.get("/api/assets").await?.as_array()? {
                if answered_by_itself(asset) && asset["error"].is_null() && asset["status"] == "up" {
                    up.insert(asset["id"].as_str()?.to_string());
                }
            }
        }
        (up == *all).then_some(())
    })
    .await;
}

/// One Incidents actor for the whole cluster: an outage spread over three replicas reaches a
/// chat channel as one grouped message, and dependants probed by other replicas than their
/// parent are attributed to its outage rather than paged, as on a single instance.
#[tokio::test(flavor = "multi_thread")]
async fn a_storm_over_three_replicas_is_one_message_and_their_dependants_page_nobody() {
    if !crate::e2e::databases::postgres_available().await {
        return;
    }
    let _slots = replica_slots(3).await;
    let storm = Target::start().await;
    let shared = Target::start().await;
    let receiver = Receiver::start().await;
    let gales: Vec<String> = (0..9).map(|i| format!("gale-{i}")).collect();
    let spokes: Vec<String> = (0..6).map(|i| format!("spoke-{i}")).collect();
    let mut assets: Vec<Value> = gales.iter().map(|id| http_asset(id, &format!("{}?{id}", storm.url()))).collect();
    assets.push(http_asset("hub", &shared.url()));
    for id in &spokes {
        let mut spoke = http_asset(id, &format!("{}?{id}", shared.url()));
        spoke["dependsOn"] = json!(["hub"]);
        assets.push(spoke);
    }
    let all: BTreeSet<String> = assets.iter().filter_map(|a| a["id"].as_str().map(str::to_string)).collect();
    let notifiers = json!({
        "notifiers": {
            "slack": {"type": "slack", "webhookUrl": receiver.url("slack")},
            "webhook": {"type": "webhook", "url": receiver.url("webhook")},
        },
        "notificationPolicy": {
            "onDown": ["slack", "webhook"], "onRecovery": ["slack", "webhook"], "throttleSeconds": 0,
            "grouping": {"waitSeconds": 8, "minAssets": 3}
        }
    });
    let setup = Setup::new(Backend::Postgres, Value::Array(assets), notifiers).await;
    let replicas = vec![
        Replica::spawn(&setup, "gale-a").await,
        Replica::spawn(&setup, "gale-b").await,
        Replica::spawn(&setup, "gale-c").await,
    ];
    let shares = split(&replicas.iter().collect::<Vec<_>>(), &all).await;
    let with_hub = shares.iter().find(|share| share.contains("hub")).expect("the hub's prober");
    assert!(
        spokes.iter().any(|spoke| !with_hub.contains(spoke))
            && shares.iter().filter(|share| gales.iter().any(|gale| share.contains(gale))).count() >= 2,
        "the storm and the dependants are spread over the replicas: {shares:?}"
    );
    all_up_where_probed(&replicas, &all).await;

    // The storm first, the hub once the storm's message is out: a DOWN held for its dependants
    // (`waitSeconds`) that is released while a storm's batch is still open joins that batch, as
    // it should, so failing both at once would leave the message count to which replica
    // confirmed first.
    storm.set(Mode::Error);
    let downs = |receiver: &Receiver, event: &str| -> BTreeSet<String> {
        let bodies = receiver.bodies("webhook");
        bodies
            .iter()
            .filter(|b| b["event"] == event)
            .filter_map(|b| b["assetId"].as_str().map(str::to_string))
            .collect()
    };
    let slack = |receiver: &Receiver, event: &str| -> Vec<String> {
        let bodies = receiver.bodies("slack");
        bodies.iter().filter_map(|b| b["text"].as_str()).filter(|t| t.contains(event)).map(str::to_string).collect()
    };
    let named =
        |text: &String| gales.iter().all(|gale| text.split(", ").any(|n| n.ends_with(&format!("Asset {gale}"))));
    // The storm, from every replica, is one message.
    let storm_message = eventually("one DOWN message on Slack for the storm", WAIT, || async {
        slack(&receiver, "DOWN").into_iter().next()
    })
    .await;
    assert!(
        storm_message.starts_with("🔴 9 assets - DOWN: ") && named(&storm_message),
        "one message for the storm of every replica: {storm_message}"
    );

    // The hub's DOWN, which names its dependants (on any replica), is its own.
    shared.set(Mode::Error);
    let paged: BTreeSet<String> = gales.iter().cloned().chain(["hub".to_string()]).collect();
    eventually("a DOWN on the webhook for each gale and the hub", WAIT, || async {
        (downs(&receiver, "DOWN") == paged).then_some(())
    })
    .await;
    let messages = eventually("two DOWN messages on Slack", WAIT, || async {
        let downs = slack(&receiver, "DOWN");
        (downs.len() >= 2).then_some(downs)
    })
    .await;
    assert!(messages[1].starts_with("🔴 Asset hub - DOWN: "), "the hub's DOWN on its own: {messages:?}");
    let hub = receiver.bodies("webhook").into_iter().find(|b| b["event"] == "DOWN" && b["assetId"] == "hub");
    let details = hub.as_ref().and_then(|hub| hub["details"].as_str()).unwrap_or_default().to_string();
    assert!(details.starts_with("HTTP 500 (expected 200); also affects 6: "), "{details}");
    eventually("the spokes' outages attributed to the hub's", WAIT, || async {
        let open = replicas[0].get("/api/incidents?state=open").await?;
        let open = open.as_array()?;
        let caused = open.iter().filter(|i| i["causedBy"] == "hub").count();
        (open.len() == all.len() && caused == spokes.len()).then_some(())
    })
    .await;

    storm.set(Mode::Ok);
    shared.set(Mode::Ok);
    eventually("a RECOVERY on the webhook for each gale and the hub", WAIT, || async {
        (downs(&receiver, "RECOVERY") == paged).then_some(())
    })
    .await;
    eventually("a grouped RECOVERY on Slack naming every gale", WAIT, || async {
        slack(&receiver, "RECOVERY")
            .iter()
            .any(|text| text.contains("assets - RECOVERY: ") && named(text))
            .then_some(())
    })
    .await;
    eventually("every incident closed", WAIT, || async {
        let open = replicas[1].get("/api/incidents?state=open").await?;
        open.as_array()?.is_empty().then_some(())
    })
    .await;
    assert_eq!(slack(&receiver, "DOWN").len(), 2, "no DOWN message but the storm's and the hub's");
    assert_eq!(downs(&receiver, "DOWN"), paged, "no spoke was paged");
    assert_eq!(receiver.bodies("webhook").len(), 2 * paged.len(), "nothing twice");
}
