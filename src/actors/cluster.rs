//! Cluster mode: replicas on one PostgreSQL database share the assets of their location.
//!
//! Every round (a third of the lease, or at once when another replica says on the
//! `statusd_cluster` channel that membership or leases changed) a replica records its heartbeat,
//! reads the live members of its location, and works out by rendezvous hashing which assets
//! are its own: each asset goes to the member with the highest hash of (member, asset), so a
//! join or a leave moves only that member's share and every replica reaches the same answer
//! from the same table, with no leader. It stops the actors of assets that are no longer its own
//! and releases their leases first (the new owner takes them only once released, or expired),
//! then takes the leases it lacks in one statement, and has the Supervisor run exactly the
//! assets whose leases it holds. A lease lasts as long as its owner's heartbeat is younger than
//! `lease_seconds`, so the heartbeat renews them all and a steady round writes one row. A
//! replica that dies stops beating: once its heartbeat is older than the lease the others take
//! its assets at their next round, within 2 × lease. With several locations, an asset without
//! `locations` is probed in one of them only, the home location ([`home_location`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use ractor::ActorRef;
use tokio::time::Instant;

use super::supervisor::SupervisorMsg;
use crate::store::Store;
use crate::store::claim::Claim;
use crate::store::cluster::MemberRow;
use crate::telemetry::names;

/// How long the Supervisor may take to stop or start actors for a round.
const SUPERVISOR_CALL: Duration = Duration::from_secs(10);

/// What this instance knows of the cluster, for the API and the actors.
#[derive(Debug)]
pub struct ClusterView {
    pub enabled: bool,
    pub me: String,
    pub location: String,
    pub lease_seconds: u64,
    /// Whether this instance holds the `incidents` role: alone on the database it always does.
    /// Its holder alone marks assets left out of the config removed and closes their incidents.
    incidents: AtomicBool,
    /// The assets whose leases this replica holds.
    owned: Mutex<HashSet<String>>,
    /// The members as the last round read them.
    members: Mutex<Vec<MemberRow>>,
}

impl Default for ClusterView {
    fn default() -> Self {
        ClusterView::alone()
    }
}

impl ClusterView {
    /// An instance alone on its database: it owns everything and holds every role.
    pub fn alone() -> ClusterView {
        ClusterView {
            enabled: false,
            me: String::new(),
            location: String::new(),
            lease_seconds: 0,
            incidents: AtomicBool::new(true),
            owned: Mutex::default(),
            members: Mutex::default(),
        }
    }

    pub fn replica(me: String, location: String, lease_seconds: u64, incidents: bool) -> ClusterView {
        ClusterView {
            enabled: true,
            me,
            location,
            lease_seconds,
            incidents: AtomicBool::new(incidents),
            owned: Mutex::default(),
            members: Mutex::default(),
        }
    }

    pub fn holds_incidents_role(&self) -> bool {
        self.incidents.load(Ordering::Relaxed)
    }

    pub fn owned(&self) -> usize {
        self.owned.lock().len()
    }

    pub fn members(&self) -> Vec<MemberRow> {
        self.members.lock().clone()
    }
}

/// The member of `members` that asset `asset` belongs to: the highest rendezvous weight.
pub fn owner_of<'m>(asset: &str, members: &'m [String]) -> Option<&'m String> {
    members.iter().max_by_key(|member| (weight(member, asset), member.as_str()))
}

/// The location that probes the assets without `locations`: the first by name that has a
/// live replica (`mine` counts as live: its heartbeat was just written). One location, so that
/// each such asset has one prober and one verdict; the first by name, so that every replica
/// agrees with no leader, and if all its replicas die the next location takes those assets
/// over as a replica takes over a dead one's, within 2 × lease.
pub fn home_location<'m>(members: &'m [MemberRow], mine: &'m str) -> &'m str {
    members
        .iter()
        .filter(|member| member.live && member.mode == "cluster")
        .map(|member| member.location.as_str())
        .chain([mine])
        .min()
        .unwrap_or(mine)
}

/// A stable 64-bit hash of (member, asset): FNV-1a, then splitmix64's finaliser to spread the
/// bits (FNV alone weighs near-identical names almost alike). Stable across processes and
/// builds, unlike std's hasher, which every replica must agree on.
fn weight(member: &str, asset: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in member.bytes().chain([0xff]).chain(asset.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// Alone on the database: checks the claim's session every few seconds and takes the claim
/// again if the session died (a database restart), until the task is aborted.
pub async fn keep_alone(store: Store, claim: Arc<Claim>) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        match claim.keep(&store).await {
            Ok(false) => {}
            Ok(true) => tracing::warn!("the database session holding the claim was lost; the claim is taken again"),
            Err(error) => tracing::error!(%error, "this instance no longer holds the database alone"),
        }
    }
}

/// The replica's membership loop, until the task is aborted (at shutdown).
pub async fn run(store: Store, claim: Arc<Claim>, view: Arc<ClusterView>, supervisor: ActorRef<SupervisorMsg>) {
    let lease = Duration::from_secs(view.lease_seconds);
    let round = (lease / 3).max(Duration::from_millis(200));
    let mut listener = match store.cluster_listener().await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!(%error, "cannot listen on statusd_cluster; changes are seen at the next round");
            None
        }
    };
    // The last round that renewed the leases: once a lease may have run out, this replica stops
    // probing, as another may have taken its assets.
    let mut renewed: Option<Instant> = None;
    loop {
        let started = Instant::now();
        match one_round(&store, &claim, &view, &supervisor).await {
            Ok(()) => {
                if renewed.is_none() {
                    // A newcomer: the others hand over its share now rather than at their next round.
                    store.notify_cluster(&view.me).await;
                }
                renewed = Some(started);
            }
            Err(error) => {
                tracing::warn!(actor = "cluster", %error, "cluster round failed");
                if renewed.is_none_or(|at| at.elapsed() >= lease) && !view.owned.lock().is_empty() {
                    tracing::error!(
                        actor = "cluster",
                        "leases may have expired: this replica stops probing until it renews them"
                    );
                    let _ = ractor::call_t!(
                        supervisor,
                        SupervisorMsg::Own,
                        SUPERVISOR_CALL.as_millis() as u64,
                        HashSet::new()
                    );
                    view.owned.lock().clear();
                    metrics::gauge!(names::CLUSTER_ASSETS_OWNED).set(0.0);
                }
            }
        }
        let sleep = tokio::time::sleep_until(started + round);
        match &mut listener {
            Some(listener) => {
                tokio::select! {
                    () = sleep => {}
                    notification = listener.recv() => {
                        if let Err(error) = notification {
                            tracing::warn!(actor = "cluster", %error, "statusd_cluster listener failed; it reconnects");
                            tokio::time::sleep(round).await;
                        }
                        // Several replicas notify at once on a change: one round serves them all.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        while listener.next_buffered().is_some() {}
                    }
                }
            }
            None => sleep.await,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Claim(#[from] crate::store::claim::ClaimError),
    #[error("the supervisor did not answer: {0}")]
    Supervisor(String),
}

async fn one_round(
    store: &Store,
    claim: &Claim,
    view: &ClusterView,
    supervisor: &ActorRef<SupervisorMsg>,
) -> Result<(), RoundError> {
    let supervisor_error = |e: ractor::RactorErr<SupervisorMsg>| RoundError::Supervisor(e.to_string());
    let call_ms = SUPERVISOR_CALL.as_millis() as u64;
    if claim.keep(store).await? && view.incidents.swap(false, Ordering::Relaxed) {
        // The role's lock went with the old session; it is taken again below if still free.
        tracing::warn!(actor = "cluster", "the database session was lost: the incidents role is given up");
    }
    if !view.holds_incidents_role() && claim.try_incidents_role().await? {
        tracing::info!(actor = "cluster", instance_id = %view.me, "this replica holds the incidents role");
        view.incidents.store(true, Ordering::Relaxed);
    }
    let roles: &[&str] = if view.holds_incidents_role() { &["incidents"] } else { &[] };
    let members = store.heartbeat(&view.me, roles, view.lease_seconds).await?;
    let mut live: Vec<String> = members
        .iter()
        .filter(|m| m.live && m.mode == "cluster" && m.location == view.location)
        .map(|m| m.id.clone())
        .collect();
    if !live.contains(&view.me) {
        // Its own heartbeat was just written; a row deleted by hand is written again below.
        live.push(view.me.clone());
    }
    metrics::gauge!(names::CLUSTER_MEMBERS).set(members.iter().filter(|m| m.live).count() as f64);
    let home = home_location(&members, &view.location) == view.location;
    *view.members.lock() = members;

    let assets: Vec<String> =
        ractor::call_t!(supervisor, SupervisorMsg::AssetIds, call_ms, home).map_err(supervisor_error)?;
    let mine: Vec<String> = assets.into_iter().filter(|id| owner_of(id, &live) == Some(&view.me)).collect();
    let wanted: HashSet<&String> = mine.iter().collect();
    let owned = view.owned.lock().clone();
    let leaving: Vec<String> = owned.iter().filter(|id| !wanted.contains(id)).cloned().collect();
    if !leaving.is_empty() {
        // Stopped before released: the new owner never probes while this one still does.
        let keep: HashSet<String> = owned.iter().filter(|id| wanted.contains(id)).cloned().collect();
        ractor::call_t!(supervisor, SupervisorMsg::Own, call_ms, keep.clone()).map_err(supervisor_error)?;
        *view.owned.lock() = keep;
        store.release_leases(&view.me, &view.location, &leaving).await?;
        tracing::info!(actor = "cluster", released = leaving.len(), "assets handed over to other replicas");
        store.notify_cluster(&view.me).await;
    }
    let held = store.claim_leases(&view.me, &view.location, &mine, view.lease_seconds).await?;
    let takeovers = held.iter().filter(|lease| lease.taken_from.is_some()).count();
    if takeovers > 0 {
        let from: HashMap<&str, usize> =
            held.iter().filter_map(|l| l.taken_from.as_deref()).fold(HashMap::new(), |mut by, owner| {
                *by.entry(owner).or_default() += 1;
                by
            });
        tracing::warn!(actor = "cluster", takeovers, from = ?from, "expired leases taken over");
        metrics::counter!(names::CLUSTER_LEASE_TAKEOVERS_TOTAL).increment(takeovers as u64);
    }
    let now_owned: HashSet<String> = held.into_iter().map(|lease| lease.asset_id).collect();
    let gained = now_owned.difference(&owned).count();
    if now_owned != owned || !leaving.is_empty() {
        ractor::call_t!(supervisor, SupervisorMsg::Own, call_ms, now_owned.clone()).map_err(supervisor_error)?;
        if gained > 0 {
            tracing::info!(actor = "cluster", gained, owned = now_owned.len(), "assets taken");
        }
    }
    metrics::gauge!(names::CLUSTER_ASSETS_OWNED).set(now_owned.len() as f64);
    *view.owned.lock() = now_owned;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, location: &str, live: bool) -> MemberRow {
        MemberRow {
            id: id.into(),
            host: "host".into(),
            location: location.into(),
            version: "test".into(),
            mode: "cluster".into(),
            roles: Vec::new(),
            started_at: chrono::Utc::now(),
            heartbeat_at: chrono::Utc::now(),
            live,
        }
    }

    /// Every replica agrees on one home location; when its replicas are all gone, the next one
    /// is home; a location joining ahead by name becomes home.
    #[test]
    fn the_home_location_is_the_first_live_one_by_name() {
        let members = [member("us-1", "us", true), member("eu-1", "eu", true), member("eu-2", "eu", true)];
        assert_eq!(home_location(&members, "us"), "eu");
        assert_eq!(home_location(&members, "eu"), "eu");
        let eu_gone = [member("us-1", "us", true), member("eu-1", "eu", false), member("eu-2", "eu", false)];
        assert_eq!(home_location(&eu_gone, "us"), "us");
        assert_eq!(home_location(&[], "default"), "default", "its own heartbeat not read back yet");
        let alone = [member("x", "ap", true)];
        assert_eq!(home_location(&alone, "default"), "ap", "the first by name");
    }

    #[test]
    fn a_join_or_a_leave_moves_only_its_share() {
        let assets: Vec<String> = (0..3000).map(|i| format!("asset-{i}")).collect();
        let three: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let four: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let owners3: Vec<&String> = assets.iter().map(|id| owner_of(id, &three).expect("members")).collect();
        let owners4: Vec<&String> = assets.iter().map(|id| owner_of(id, &four).expect("members")).collect();
        for member in &three {
            let share = owners3.iter().filter(|owner| **owner == member).count();
            assert!((800..1200).contains(&share), "{member} owns {share} of 3000");
        }
        for (before, after) in owners3.iter().zip(&owners4) {
            assert!(before == after || after.as_str() == "d", "only assets moving to the newcomer move");
        }
        let moved = owners4.iter().filter(|owner| owner.as_str() == "d").count();
        assert!((550..950).contains(&moved), "the newcomer takes about a quarter: {moved}");
    }
}
