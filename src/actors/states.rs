//! Cluster mode: every replica answers the live state of every asset, through the store.
//!
//! A replica runs asset actors only for the assets it owns; the API of any replica behind a
//! load balancer must still answer the same for all of them. So every round (a third of
//! `lease_seconds`, at least 200 ms) this loop writes to `asset_states` the snapshots of the
//! assets this replica runs that changed since they were last written, then reads the rows the
//! others wrote into the [`StateMirror`], which `GET /api/assets` answers for an asset probed
//! elsewhere.
//!
//! What it costs: a change of status, `since` or open incident is written at the next round; a
//! change of `lastProbe` or of the counters alone (every probe of a steady asset) at most once
//! per lease ([`due`]), so 30,000 assets probed every 10 s with a 15 s lease write at most
//! 2,000 rows a second, not 3,000, and an asset probed less often than the lease writes each
//! probe. The read is incremental (rows stamped since the last read, less [`MARGIN`]) with a
//! full read every [`FULL_READ_EVERY`]. Assets with `locations` are left out: their status is
//! the locations' combined verdict (`quorum.rs`), the same on every replica already.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use parking_lot::RwLock;
use tokio::time::Instant;
use uuid::Uuid;

use super::Services;
use super::asset::{AssetSnapshot, snapshot_of};
use super::health::StatusName;
use super::index::AssetEntry;
use crate::probe::ProbeResult;
use crate::store::Store;
use crate::store::states::{StateRow, StateWrite};

/// How far back an incremental read reaches before the previous read's time. A row is stamped
/// with its write transaction's start (`now()`), but becomes visible only when that transaction
/// commits: a write that started before a read and committed after it carries a stamp older
/// than that read, and a read starting strictly after it would miss the row for good. The
/// margin reads again what was stamped in the last few seconds (a write of a whole batch takes
/// milliseconds; seconds only on a database in trouble), and the full read repairs the rest.
pub const MARGIN: TimeDelta = TimeDelta::seconds(5);

/// How often the whole table is read instead of what changed: whatever an incremental read
/// missed (a write slower than [`MARGIN`]) and rows deleted by hand are caught up with by then.
pub const FULL_READ_EVERY: Duration = Duration::from_secs(60);

/// One asset's live state as another replica reported it.
#[derive(Debug, Clone)]
pub struct Mirrored {
    /// What the owner's API answers, `probing` false.
    pub snapshot: AssetSnapshot,
    /// The replica that wrote it.
    pub owner: String,
    /// When it was written (the database's time).
    pub reported_at: DateTime<Utc>,
}

/// Cluster mode: every asset's live state as the store has it, and which replicas are alive to
/// vouch for it. Written by the states loop, read by the API.
#[derive(Default)]
pub struct StateMirror {
    states: RwLock<HashMap<String, Arc<Mirrored>>>,
    /// The members whose heartbeat is younger than the lease, as the last round saw them; None
    /// before the cluster's first round.
    live: RwLock<Option<HashSet<String>>>,
}

impl StateMirror {
    /// The asset's state as last read from the store (or written by this replica); None before
    /// its owner wrote one.
    pub fn get(&self, asset_id: &str) -> Option<Arc<Mirrored>> {
        self.states.read().get(asset_id).cloned()
    }

    /// Whether `member`'s heartbeat was younger than the lease at the last round (true before
    /// the first, when nobody can say).
    pub fn is_live(&self, member: &str) -> bool {
        self.live.read().as_ref().is_none_or(|live| live.contains(member))
    }

    /// Keeps `mirrored` unless the mirror has a newer state of the asset.
    fn put(&self, asset_id: String, mirrored: Mirrored) {
        let mut states = self.states.write();
        if states.get(&asset_id).is_none_or(|known| known.reported_at <= mirrored.reported_at) {
            states.insert(asset_id, Arc::new(mirrored));
        }
    }

    /// Whether the mirror has `row`'s state already (or a newer one).
    fn knows(&self, row: &StateRow) -> bool {
        self.states.read().get(&row.state.asset_id).is_some_and(|known| known.reported_at >= row.reported_at)
    }

    fn replace(&self, states: HashMap<String, Arc<Mirrored>>) {
        *self.states.write() = states;
    }
}

/// What a change must reach the store at the next round: what the API's readers act on.
#[derive(Debug, Clone, PartialEq)]
struct Headline {
    status: StatusName,
    since: Option<DateTime<Utc>>,
    open_incident_id: Option<Uuid>,
}

/// What changes with every probe, and may wait for up to a lease.
#[derive(Debug, Clone, PartialEq)]
struct Detail {
    last_probe: Option<(Uuid, DateTime<Utc>)>,
    consecutive_failures: u32,
    consecutive_successes: u32,
    skipped_ticks: u64,
}

/// What is compared of a snapshot to decide whether it changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Fingerprint {
    headline: Headline,
    detail: Detail,
}

impl Fingerprint {
    pub fn of(snapshot: &AssetSnapshot) -> Fingerprint {
        Fingerprint {
            headline: Headline {
                status: snapshot.status,
                since: snapshot.since,
                open_incident_id: snapshot.open_incident_id,
            },
            detail: Detail {
                last_probe: snapshot.last_probe.as_ref().map(|probe| (probe.id, probe.timestamp)),
                consecutive_failures: snapshot.consecutive_failures,
                consecutive_successes: snapshot.consecutive_successes,
                skipped_ticks: snapshot.skipped_ticks,
            },
        }
    }
}

/// An asset's snapshot as last written, and when.
#[derive(Debug, Clone)]
pub struct Written {
    pub fingerprint: Fingerprint,
    pub at: Instant,
}

/// Whether an asset's snapshot (`now`'s fingerprint) is to be written at the round starting at
/// `at`: never written yet, or its status, `since` or open incident changed, at once; only its
/// `lastProbe` or counters changed, once `lease` has passed since it was last written; nothing
/// changed, never.
pub fn due(written: Option<&Written>, now: &Fingerprint, at: Instant, lease: Duration) -> bool {
    let Some(written) = written else { return true };
    if written.fingerprint.headline != now.headline {
        return true;
    }
    written.fingerprint.detail != now.detail && at.saturating_duration_since(written.at) >= lease
}

/// The loop's own memory: what it wrote, and where reading got to.
#[derive(Default)]
struct Loop {
    written: HashMap<String, Written>,
    /// The database's time of the last read.
    read_at: Option<DateTime<Utc>>,
    full_read_at: Option<Instant>,
}

/// The states loop of a replica, until the task is aborted (at shutdown).
pub async fn run(store: Store, services: Arc<Services>) {
    let lease = Duration::from_secs(services.cluster.lease_seconds);
    let round = (lease / 3).max(Duration::from_millis(200));
    let mut state = Loop::default();
    loop {
        let started = Instant::now();
        state.write(&store, &services, started, lease).await;
        state.read(&store, &services, started).await;
        tokio::time::sleep_until(started + round).await;
    }
}

/// What this replica's API answers for an asset it runs (`probing` aside): its checkpointed
/// memory, `crashed` while its actor waits out a restart.
fn own_snapshot(entry: &AssetEntry, services: &Services) -> AssetSnapshot {
    let snapshot = {
        let memory = entry.memory.lock();
        snapshot_of(&memory, &entry.config.id, services, false)
    };
    match entry.actor {
        Some(_) => snapshot,
        None => AssetSnapshot { status: StatusName::Crashed, ..snapshot },
    }
}

/// The row written for a snapshot.
fn row_of(asset_id: &str, snapshot: &AssetSnapshot) -> StateWrite {
    StateWrite {
        asset_id: asset_id.to_string(),
        status: status_name(snapshot.status),
        since: snapshot.since,
        // A ProbeResult always serialises (plain fields, string keys); None would only hide it.
        last_probe: snapshot.last_probe.as_ref().and_then(|probe| serde_json::to_value(probe).ok()),
        consecutive_failures: i32::try_from(snapshot.consecutive_failures).unwrap_or(i32::MAX),
        consecutive_successes: i32::try_from(snapshot.consecutive_successes).unwrap_or(i32::MAX),
        open_incident_id: snapshot.open_incident_id,
        skipped_ticks: i64::try_from(snapshot.skipped_ticks).unwrap_or(i64::MAX),
    }
}

fn status_name(status: StatusName) -> String {
    serde_json::to_value(status).ok().and_then(|value| value.as_str().map(str::to_string)).unwrap_or_default()
}

/// A row as the API answers it; a status or a probe this build cannot read (written by a newer
/// replica during a rollout) reads `unknown`, or without `lastProbe`.
fn mirrored_of(row: StateRow) -> (String, Mirrored) {
    let StateRow { state, owner, reported_at } = row;
    let status = serde_json::from_value(serde_json::Value::String(state.status)).unwrap_or(StatusName::Unknown);
    let last_probe = state.last_probe.and_then(|probe| serde_json::from_value::<ProbeResult>(probe).ok());
    let snapshot = AssetSnapshot {
        status,
        since: state.since,
        last_probe,
        consecutive_failures: u32::try_from(state.consecutive_failures).unwrap_or(0),
        consecutive_successes: u32::try_from(state.consecutive_successes).unwrap_or(0),
        open_incident_id: state.open_incident_id,
        probing: false,
        skipped_ticks: u64::try_from(state.skipped_ticks).unwrap_or(0),
    };
    (state.asset_id, Mirrored { snapshot, owner, reported_at })
}

/// Lets the runtime's other tasks run every few hundred states: a round goes over every asset
/// of the replica (10,000 of 30,000 in `statusd-load --replicas 3`), and done in one go it held
/// a worker thread long enough to make probes half a second late (gap deviation p99 523 ms).
async fn yield_every(n: usize) {
    if n % 256 == 255 {
        tokio::task::yield_now().await;
    }
}

impl Loop {
    /// Writes the snapshots of the assets this replica runs that are [`due`], in one statement.
    async fn write(&mut self, store: &Store, services: &Services, at: Instant, lease: Duration) {
        let view = &services.cluster;
        let mut owned = HashSet::new();
        let mut batch = Vec::new();
        for (n, entry) in services.assets.all().into_iter().enumerate() {
            yield_every(n).await;
            if entry.elsewhere || entry.config.locations.is_some() {
                continue;
            }
            let snapshot = own_snapshot(&entry, services);
            let fingerprint = Fingerprint::of(&snapshot);
            let id = entry.config.id.clone();
            if due(self.written.get(&id), &fingerprint, at, lease) {
                batch.push((id.clone(), snapshot, fingerprint));
            }
            owned.insert(id);
        }
        // An asset given up is written afresh if it comes back: its new memory starts over.
        self.written.retain(|id, _| owned.contains(id));
        if batch.is_empty() {
            return;
        }
        let mut rows: Vec<StateWrite> = Vec::with_capacity(batch.len());
        for (n, (id, snapshot, _)) in batch.iter().enumerate() {
            yield_every(n).await;
            rows.push(row_of(id, snapshot));
        }
        let stamps: HashMap<String, DateTime<Utc>> = match store.write_states(&view.me, &view.location, &rows).await {
            Ok(written) => written.into_iter().collect(),
            Err(error) => {
                // Nothing is marked written: the next round tries again with what is due then.
                tracing::warn!(actor = "states", %error, states = rows.len(), "cannot write live states");
                return;
            }
        };
        for (id, snapshot, fingerprint) in batch {
            // Left out by the store: the lease is not (or no longer) this replica's.
            let Some(reported_at) = stamps.get(&id) else { continue };
            self.written.insert(id.clone(), Written { fingerprint, at });
            // Known here as the others will read it: if the asset moves to another replica, this
            // replica answers its last state until the new owner's is read.
            let mirrored = Mirrored { snapshot, owner: view.me.clone(), reported_at: *reported_at };
            services.states.put(id, mirrored);
        }
    }

    /// Reads what the others wrote since the last read (or everything, every
    /// [`FULL_READ_EVERY`]) into the mirror, and which members are alive.
    async fn read(&mut self, store: &Store, services: &Services, at: Instant) {
        let live: HashSet<String> =
            services.cluster.members().into_iter().filter(|member| member.live).map(|member| member.id).collect();
        if !live.is_empty() {
            *services.states.live.write() = Some(live);
        }
        let full = self.full_read_at.is_none_or(|last| at.saturating_duration_since(last) >= FULL_READ_EVERY);
        let after = if full { None } else { self.read_at.map(|read_at| read_at - MARGIN) };
        let read = match store.read_states(&services.cluster.me, after).await {
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(actor = "states", %error, "cannot read the other replicas' live states");
                return;
            }
        };
        self.read_at = Some(read.now);
        if after.is_none() {
            self.full_read_at = Some(at);
            let mut states = HashMap::with_capacity(read.rows.len());
            for (n, row) in read.rows.into_iter().enumerate() {
                yield_every(n).await;
                let (id, mirrored) = mirrored_of(row);
                states.insert(id, Arc::new(mirrored));
            }
            services.states.replace(states);
        } else {
            // The margin reads rows again: those known already are not parsed again.
            let fresh = read.rows.into_iter().filter(|row| !services.states.knows(row));
            for (n, (id, mirrored)) in fresh.map(mirrored_of).enumerate() {
                yield_every(n).await;
                services.states.put(id, mirrored);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(status: StatusName, probe_at: i64, failures: u32) -> AssetSnapshot {
        let mut probe = ProbeResult::unmeasured("a", status != StatusName::Down, None);
        probe.timestamp = DateTime::from_timestamp(probe_at, 0).expect("a valid time");
        probe.id = crate::probe::event_id(probe.timestamp);
        AssetSnapshot {
            status,
            since: DateTime::from_timestamp(1_000, 0),
            last_probe: Some(probe),
            consecutive_failures: failures,
            consecutive_successes: 0,
            open_incident_id: None,
            probing: false,
            skipped_ticks: 0,
        }
    }

    const LEASE: Duration = Duration::from_secs(15);

    fn written_at(snapshot: &AssetSnapshot, at: Instant) -> Written {
        Written { fingerprint: Fingerprint::of(snapshot), at }
    }

    #[test]
    fn a_state_never_written_is_written() {
        let t0 = Instant::now();
        assert!(due(None, &Fingerprint::of(&snapshot(StatusName::Up, 1, 0)), t0, LEASE));
    }

    #[test]
    fn a_new_probe_alone_is_written_at_most_once_per_lease() {
        let t0 = Instant::now();
        let written = written_at(&snapshot(StatusName::Up, 1, 0), t0);
        let probed = Fingerprint::of(&snapshot(StatusName::Up, 2, 0));
        assert!(!due(Some(&written), &probed, t0 + Duration::from_secs(1), LEASE), "a second after");
        assert!(!due(Some(&written), &probed, t0 + LEASE - Duration::from_millis(1), LEASE), "just short of a lease");
        assert!(due(Some(&written), &probed, t0 + LEASE, LEASE), "a lease after");
        // The counters alone count as detail too.
        let counted = Fingerprint::of(&snapshot(StatusName::Up, 1, 1));
        assert!(!due(Some(&written), &counted, t0 + Duration::from_secs(1), LEASE));
        assert!(due(Some(&written), &counted, t0 + LEASE, LEASE));
    }

    #[test]
    fn a_change_of_status_since_or_incident_is_written_at_once() {
        let t0 = Instant::now();
        let up = snapshot(StatusName::Up, 1, 0);
        let written = written_at(&up, t0);
        let soon = t0 + Duration::from_millis(1);
        let down = Fingerprint::of(&snapshot(StatusName::Down, 2, 3));
        assert!(due(Some(&written), &down, soon, LEASE), "status");
        let moved = AssetSnapshot { since: DateTime::from_timestamp(2_000, 0), ..up.clone() };
        assert!(due(Some(&written), &Fingerprint::of(&moved), soon, LEASE), "since");
        let incident = AssetSnapshot { open_incident_id: Some(Uuid::now_v7()), ..up.clone() };
        assert!(due(Some(&written), &Fingerprint::of(&incident), soon, LEASE), "open incident");
    }

    #[test]
    fn an_unchanged_state_is_never_written_again() {
        let t0 = Instant::now();
        let up = snapshot(StatusName::Up, 1, 0);
        let written = written_at(&up, t0);
        assert!(!due(Some(&written), &Fingerprint::of(&up), t0 + 100 * LEASE, LEASE));
        // `probing` is not part of what is written.
        let probing = AssetSnapshot { probing: true, ..up };
        assert!(!due(Some(&written), &Fingerprint::of(&probing), t0 + 100 * LEASE, LEASE));
    }

    #[test]
    fn a_row_reads_back_as_the_snapshot_written() {
        let written = AssetSnapshot { open_incident_id: Some(Uuid::now_v7()), ..snapshot(StatusName::Down, 5, 3) };
        let row = StateRow {
            state: row_of("a", &written),
            owner: "replica-1".into(),
            reported_at: DateTime::from_timestamp(6, 0).expect("a valid time"),
        };
        assert_eq!(row.state.status, "down");
        let (id, mirrored) = mirrored_of(row);
        assert_eq!(id, "a");
        assert_eq!(mirrored.owner, "replica-1");
        let read = mirrored.snapshot;
        // As the API shows it: the probe's id is not shown, nor kept.
        assert_eq!(
            serde_json::to_value(&read).expect("serialises"),
            serde_json::to_value(&written).expect("serialises")
        );
    }

    #[test]
    fn the_mirror_keeps_the_newer_state() {
        let mirror = StateMirror::default();
        let at = |seconds| DateTime::from_timestamp(seconds, 0).expect("a valid time");
        let state = |owner: &str, seconds| Mirrored {
            snapshot: snapshot(StatusName::Up, 1, 0),
            owner: owner.into(),
            reported_at: at(seconds),
        };
        mirror.put("a".into(), state("new", 10));
        mirror.put("a".into(), state("old", 5));
        assert_eq!(mirror.get("a").expect("kept").owner, "new");
        let row = |seconds| StateRow {
            state: row_of("a", &snapshot(StatusName::Up, 1, 0)),
            owner: "new".into(),
            reported_at: at(seconds),
        };
        assert!(mirror.knows(&row(10)) && mirror.knows(&row(5)), "read again within the margin");
        assert!(!mirror.knows(&row(11)), "newer");
        assert!(mirror.is_live("anyone"), "nobody can say before the first round");
        *mirror.live.write() = Some(HashSet::from(["new".to_string()]));
        assert!(mirror.is_live("new") && !mirror.is_live("old"));
    }
}
