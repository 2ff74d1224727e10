//! What every actor of one statusd instance shares ([`Services`]): the [`Directory`], the probe
//! clients, the worker slots, the persistence settings, and what the Supervisor tells readiness
//! ([`TreeHealth`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::index::AssetIndex;
use super::lateness::Lateness;
use super::maintenance::Board;
use super::network::Connectivity;
use super::ticks::Ticks;
use super::{Directory, task};
use crate::notify::AssetFacts;
use crate::probe::ProbeContext;
use crate::settings::{PerAsset, PersistenceSettings};
use crate::telemetry::names;

/// What every actor of one statusd instance shares.
pub struct Services {
    pub directory: Directory,
    pub probes: ProbeContext,
    /// Probes in flight at once, across all assets (`--workers`).
    pub workers: Arc<Semaphore>,
    /// Client for notification webhooks (keeps connections alive, unlike the probe client).
    pub notify_client: reqwest::Client,
    pub persistence: PersistenceSettings,
    /// Probes due but waiting for a worker slot: above zero for long, statusd cannot keep up.
    pub waiting: AtomicUsize,
    /// Panics armed for the next task of an actor (`--enable-chaos` only).
    pub chaos: task::ChaosSwitch,
    /// What the Supervisor reports to readiness.
    pub tree: TreeHealth,
    /// Incidents the flap breaker holds open, by asset; written by the Incidents actor.
    pub flaps: FlapRegistry,
    /// Assets removed from the config while statusd runs: their metric series are left out of
    /// `/metrics` (the recorder cannot forget a series; an id configured again is taken out).
    pub retired_assets: RwLock<HashSet<String>>,
    /// The maintenance windows in force: asked on every probe result and by Incidents.
    pub maintenance: Board,
    /// The latest result of each `"role": "connectivity"` asset: whether statusd lost its own
    /// network, read by every asset on each failure.
    pub connectivity: Connectivity,
    /// What message templates know of each asset (masked address, metadata), by id: set by
    /// the Supervisor at start and on each reload that changes assets.
    pub template_assets: RwLock<HashMap<String, Arc<AssetFacts>>>,
    /// Every asset's config and checkpointed memory by id, kept by the Supervisor: what the API
    /// reads live state from (see `index.rs`).
    pub assets: AssetIndex,
    /// `[metrics] per_asset`: which series each asset actor registers.
    pub per_asset: PerAsset,
    /// Probes started late and ticks skipped over the last minute: whether statusd keeps up.
    pub lateness: Lateness,
    /// `statusd_schedule_lag_seconds`, registered once: looking the series up by name on every
    /// probe (hashing its key, finding it in the recorder's map) was ≈ 0.5 % of statusd's CPU at
    /// 1,000 probes a second. Registered with the recorder in force when `Services` are built:
    /// `run()` installs statusd's (`telemetry::metrics_handle`) before that.
    pub schedule_lag: metrics::Histogram,
    /// Cluster mode: which replica this is, what it owns, whether it holds the incidents role.
    pub cluster: Arc<super::cluster::ClusterView>,
    /// The one timer every asset's ticks wait in.
    pub ticks: Ticks,
    /// Cluster mode, assets with `locations`: this location's verdicts on their way to the
    /// store, and every such asset's combined verdict (see `quorum.rs`).
    pub locations: super::quorum::LocationBoard,
    /// Cluster mode: the live state of every asset as the store has it, for the API to answer
    /// those another replica probes (see `states.rs`).
    pub states: super::states::StateMirror,
}

impl Services {
    /// What the actors of one statusd share: `workers` probes at a time, results and changes
    /// handed to Persistence through `directory`.
    pub fn new(
        directory: Directory,
        workers: usize,
        persistence: PersistenceSettings,
    ) -> Result<Services, reqwest::Error> {
        Ok(Services {
            directory,
            probes: ProbeContext::new()?,
            workers: Arc::new(Semaphore::new(workers)),
            notify_client: reqwest::Client::builder()
                .user_agent(concat!("statusd/", env!("CARGO_PKG_VERSION")))
                .build()?,
            persistence,
            waiting: AtomicUsize::new(0),
            chaos: task::ChaosSwitch::default(),
            tree: TreeHealth::default(),
            assets: AssetIndex::default(),
            per_asset: PerAsset::Full,
            lateness: Lateness::default(),
            schedule_lag: metrics::histogram!(names::SCHEDULE_LAG_SECONDS),
            flaps: FlapRegistry::default(),
            retired_assets: RwLock::new(HashSet::new()),
            maintenance: Board::default(),
            connectivity: Connectivity::default(),
            template_assets: RwLock::new(HashMap::new()),
            cluster: Arc::default(),
            ticks: Ticks::default(),
            locations: super::quorum::LocationBoard::default(),
            states: super::states::StateMirror::default(),
        })
    }

    /// What templates may say of `assets` (as [`AssetFacts`]), in place of what they knew.
    pub fn set_template_assets(&self, assets: &[Arc<crate::asset::AssetConfig>]) {
        let facts = assets
            .iter()
            .map(|asset| {
                let facts = AssetFacts { address: asset.shown_address(), metadata: asset.metadata.clone() };
                (asset.id.clone(), Arc::new(facts))
            })
            .collect();
        *self.template_assets.write() = facts;
    }

    pub fn probes_waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Waits for a worker slot, counted in `waiting` for as long as it waits (even if the wait
    /// is abandoned). None once statusd is shutting down.
    pub async fn worker_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiting);
        Arc::clone(&self.workers).acquire_owned().await.ok()
    }
}

/// The incident the flap breaker opened or kept for an asset, while it is open: the asset's
/// actor shows it (and status `flapping` while the breaker holds) in place of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldIncident {
    pub incident: Uuid,
    /// The breaker still holds the asset; false once it settled down, with the incident going
    /// on as an outage.
    pub flapping: bool,
}

/// [`HeldIncident`]s by asset id. Read by every asset snapshot, written at each trip and settle.
#[derive(Debug, Default)]
pub struct FlapRegistry {
    held: RwLock<HashMap<String, HeldIncident>>,
}

impl FlapRegistry {
    pub fn get(&self, asset_id: &str) -> Option<HeldIncident> {
        self.held.read().get(asset_id).copied()
    }

    pub(crate) fn set(&self, asset_id: &str, held: Option<HeldIncident>) {
        let mut map = self.held.write();
        match held {
            Some(held) => map.insert(asset_id.to_string(), held),
            None => map.remove(asset_id),
        };
    }
}

/// What the Supervisor knows that `/readyz` reports, kept where the API reads it without asking
/// the Supervisor (which may be busy applying a large reload).
#[derive(Debug, Default)]
pub struct TreeHealth {
    /// Actors marked crashed (failing too often, waiting out a restart backoff), by name.
    crashed: Mutex<BTreeSet<String>>,
    /// The last reload, when it was refused: when, and why. The config in force is the one
    /// before it, still valid and still served.
    refused_reload: Mutex<Option<RefusedReload>>,
}

/// A reload that changed nothing because the new config or settings were invalid.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefusedReload {
    pub at: DateTime<Utc>,
    pub error: String,
}

impl TreeHealth {
    pub fn crashed(&self) -> Vec<String> {
        self.crashed.lock().iter().cloned().collect()
    }

    pub fn refused_reload(&self) -> Option<RefusedReload> {
        self.refused_reload.lock().clone()
    }

    pub(crate) fn set_crashed(&self, actor: &str, crashed: bool) {
        let mut set = self.crashed.lock();
        if crashed {
            set.insert(actor.to_string());
        } else {
            set.remove(actor);
        }
    }

    pub(crate) fn set_reload(&self, refused: Option<String>) {
        *self.refused_reload.lock() = refused.map(|error| RefusedReload { at: Utc::now(), error });
    }
}
