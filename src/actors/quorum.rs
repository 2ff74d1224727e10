//! Cluster mode, assets with `locations`: every location probes them, and one replica decides.
//!
//! The replica probing such an asset in its location does not open incidents for it: its
//! Asset actor hands each confirmed change of its verdict (up or down, after its own
//! `failureThreshold`; degraded counts as up) to the [`LocationBoard`], and this loop writes
//! them to `asset_location_states` and says so on `statusd_locations`. Every replica reads the
//! table back (at once on that notification, and every third of the lease so that a location
//! whose replicas died turns `unknown`), combines each asset's verdicts (`crate::quorum`) for
//! the API, and the holder of the incidents role alone acts on them: its Incidents actor opens
//! the incident when `required` locations see the asset down and closes it when fewer do,
//! through the usual policy and outbox, whichever replica probes the asset.
//!
//! When the role moves, the new holder starts from the open incidents in the store: it takes
//! over those of quorum assets as a replica takes over an asset (their DOWN went out) and goes
//! on deciding from the table, so a failover sends no second DOWN and loses no RECOVERY.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use super::Services;
use super::health::OpenIncident;
use super::incidents::{AssetDown, AssetRecovered, INITIAL_SEVERITY, IncidentEvent};
use crate::asset::AssetConfig;
use crate::quorum::{Combined, LocationState, Verdict, decide};
use crate::store::locations::{Board, Reported};
use crate::store::{Incident, IncidentWrite, Store, StoreOp};

/// What this replica's locations verdicts are, on their way to the store, and what every
/// quorum asset's verdict is, as last read back.
#[derive(Default)]
pub struct LocationBoard {
    /// Verdicts of this location not written yet, the latest per asset.
    pending: Mutex<HashMap<String, Reported>>,
    /// Wakes the loop when a verdict is pending.
    wake: Notify,
    /// Every quorum asset's combined verdict, for the API.
    verdicts: RwLock<HashMap<String, Verdict>>,
}

impl LocationBoard {
    /// This location now sees `asset_id` `state`, since `changed_at` (called by its Asset actor).
    pub fn report(&self, asset_id: &str, state: LocationState, changed_at: DateTime<Utc>) {
        let reported = Reported { asset_id: asset_id.to_string(), state, changed_at };
        self.pending.lock().insert(asset_id.to_string(), reported);
        self.wake.notify_one();
    }

    /// The asset's verdict as last read from the store; None for an asset without `locations`
    /// (or before the first read).
    pub fn verdict(&self, asset_id: &str) -> Option<Verdict> {
        self.verdicts.read().get(asset_id).cloned()
    }

    fn take_pending(&self) -> Vec<Reported> {
        self.pending.lock().drain().map(|(_, reported)| reported).collect()
    }

    /// Puts back verdicts that could not be written, unless a newer one came meanwhile.
    fn restore(&self, unwritten: Vec<Reported>) {
        let mut pending = self.pending.lock();
        for reported in unwritten {
            pending.entry(reported.asset_id.clone()).or_insert(reported);
        }
    }
}

/// What the decider opened (or took over) and must close.
#[derive(Default)]
struct Decider {
    /// Whether this replica held the incidents role at the last pass.
    holding: bool,
    /// The open incident of each quorum asset confirmed down.
    open: HashMap<String, OpenIncident>,
}

/// The quorum loop of a replica, until the task is aborted (at shutdown).
pub async fn run(store: Store, services: Arc<Services>) {
    let view = Arc::clone(&services.cluster);
    let lease = Duration::from_secs(view.lease_seconds);
    let round = (lease / 3).max(Duration::from_millis(200));
    let mut listener = match store.locations_listener().await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!(actor = "quorum", %error, "cannot listen on statusd_locations; verdicts are read every round");
            None
        }
    };
    let mut decider = Decider::default();
    loop {
        let pending = services.locations.take_pending();
        if !pending.is_empty()
            && let Err(error) = store.report_locations(&view.me, &view.location, &pending).await
        {
            tracing::warn!(actor = "quorum", %error, verdicts = pending.len(), "cannot report this location's verdicts; retrying");
            services.locations.restore(pending);
        }
        match store.location_board().await {
            Ok(board) => decider.pass(&store, &services, board, lease).await,
            Err(error) => tracing::warn!(actor = "quorum", %error, "cannot read the locations' verdicts"),
        }
        tokio::select! {
            () = tokio::time::sleep(round) => {}
            () = services.locations.wake.notified() => {}
            failed = crate::store::cluster::next_notification(&mut listener) => {
                if failed {
                    tracing::warn!(actor = "quorum", "statusd_locations listener failed; it reconnects");
                }
            }
        }
    }
}

impl Decider {
    async fn pass(&mut self, store: &Store, services: &Services, board: Board, lease: Duration) {
        let assets: Vec<Arc<AssetConfig>> = services
            .assets
            .all()
            .into_iter()
            .map(|entry| entry.config)
            .filter(|config| config.locations.is_some())
            .collect();
        let mut reports: HashMap<&str, Vec<_>> = HashMap::new();
        for (asset_id, report) in &board.reports {
            reports.entry(asset_id.as_str()).or_default().push(report.clone());
        }
        let verdicts: HashMap<String, Verdict> = assets
            .iter()
            .filter_map(|config| {
                let rule = config.locations.as_ref()?;
                let theirs = reports.get(config.id.as_str()).map(Vec::as_slice).unwrap_or_default();
                Some((config.id.clone(), decide(rule, theirs, &board.members, board.now, lease)))
            })
            .collect();
        *services.locations.verdicts.write() = verdicts.clone();

        if !services.cluster.holds_incidents_role() {
            if self.holding {
                // The role went with a lost session: the new holder goes on with these.
                // Its Incidents actor forgets them too (see `relay.rs`).
                tracing::warn!(actor = "quorum", incidents = self.open.len(), "no longer deciding for quorum assets");
                self.open.clear();
                self.holding = false;
            }
            return;
        }
        if !self.holding && !self.take_over(store, &assets).await {
            return;
        }
        self.open.retain(|asset_id, _| verdicts.contains_key(asset_id));
        for config in &assets {
            let Some(verdict) = verdicts.get(&config.id) else { continue };
            match (verdict.combined, self.open.get(&config.id)) {
                (Combined::Down { since }, None) => {
                    let incident = OpenIncident { id: uuid::Uuid::now_v7(), started_at: since, started: None };
                    let details = verdict.details();
                    // Stored before anyone is told, not batched behind the DOWN: a holder that
                    // dies right after sending it leaves the incident for the next one to take
                    // over, not to open again. The Incidents actor's own write of it is a no-op.
                    let summary = format!("{} is down: {details}", config.name);
                    let opened =
                        Incident::opened(incident.id, config.id.clone(), since, INITIAL_SEVERITY.into(), summary);
                    if let Err(error) = store.write(&[StoreOp::Incident(IncidentWrite::Open(opened))], &[]).await {
                        tracing::warn!(actor = "quorum", asset_id = %config.id, %error, "cannot record the outage; deciding again at the next pass");
                        continue;
                    }
                    tracing::warn!(actor = "quorum", asset_id = %config.id, incident_id = %incident.id, "confirmed down by the locations: {details}");
                    self.open.insert(config.id.clone(), incident.clone());
                    services.directory.incidents(IncidentEvent::Down(AssetDown {
                        asset_id: config.id.clone(),
                        asset_name: config.name.clone(),
                        incident,
                        details,
                    }));
                }
                (Combined::Up, Some(_)) => {
                    let Some(incident) = self.open.remove(&config.id) else { continue };
                    tracing::info!(actor = "quorum", asset_id = %config.id, incident_id = %incident.id, "up again by the locations: {}", verdict.details());
                    let recovery = incident.recovery(board.now, tokio::time::Instant::now());
                    services.directory.incidents(IncidentEvent::Recovered(AssetRecovered {
                        asset_id: config.id.clone(),
                        asset_name: config.name.clone(),
                        incident,
                        recovery,
                        details: Some(verdict.details()),
                    }));
                }
                _ => {}
            }
        }
    }

    /// The role was just taken: the open incidents of quorum assets in the store are this
    /// replica's to close now, their DOWN already sent. False if the store cannot say (the
    /// next pass tries again: deciding without them could open a second incident).
    async fn take_over(&mut self, store: &Store, assets: &[Arc<AssetConfig>]) -> bool {
        let open = match store.open_incidents().await {
            Ok(open) => open,
            Err(error) => {
                tracing::warn!(actor = "quorum", %error, "cannot read the open incidents; deciding waits");
                return false;
            }
        };
        let quorum: std::collections::HashSet<&str> = assets.iter().map(|config| config.id.as_str()).collect();
        // The Incidents actor goes on with them as the relay takes the role (`relay.rs`).
        for incident in open.into_iter().filter(|incident| quorum.contains(incident.asset_id.as_str())) {
            let resumed = OpenIncident { id: incident.id, started_at: incident.started_at, started: None };
            self.open.insert(incident.asset_id.clone(), resumed);
        }
        tracing::info!(actor = "quorum", resumed = self.open.len(), "deciding for quorum assets");
        self.holding = true;
        true
    }
}
