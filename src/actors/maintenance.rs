//! Maintenance in the running tree: the [`Board`] that every actor asks "is this asset in
//! maintenance now?", and [`announce`], the task that tells the `onMaintenance` channels when a
//! window opens and closes.
//!
//! The board holds a [`Calendar`] (every window, indexed by asset id) behind an `Arc` that is
//! swapped whole whenever a window or an asset changes (a reload, the API). A reader takes the
//! read lock only to clone the `Arc` and lets go at once, so no lock is ever held across an
//! await or while a calendar is consulted: an asset actor checks each of its results for the
//! cost of a hash lookup.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Notify;

use super::Services;
use super::incidents::IncidentEvent;
use super::task::{TaskKind, supervised};
use crate::config::Manifest;
use crate::maintenance::{Calendar, Occurrence, Window};
use crate::notify::{Event, Notification};

/// Where a window was defined: only the API's own can be deleted by the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Manifest,
    Api,
}

/// The windows in force and who hears about them; shared by every actor (in [`Services`]).
#[derive(Default)]
pub struct Board {
    /// Swapped whole on every change.
    calendar: RwLock<Arc<Calendar>>,
    /// What the calendar is built from.
    sources: Mutex<Sources>,
    /// Wakes [`announce`] when the windows changed, so that it looks again at once.
    changed: Notify,
}

#[derive(Default)]
struct Sources {
    manifest: Vec<Arc<Window>>,
    api: Vec<Arc<Window>>,
    /// Every configured asset's id and metadata, in config order.
    assets: Vec<(String, BTreeMap<String, Value>)>,
    /// `notificationPolicy.onMaintenance`.
    channels: Vec<String>,
}

impl Board {
    /// The calendar in force now; cheap (an `Arc` clone under a read lock let go at once).
    pub fn calendar(&self) -> Arc<Calendar> {
        Arc::clone(&self.calendar.read())
    }

    /// The one place where "is this asset in maintenance?" is decided, for every actor.
    pub fn in_maintenance(&self, asset_id: &str, at: DateTime<Utc>) -> bool {
        self.calendar().in_maintenance(asset_id, at)
    }

    /// Takes the manifest's assets and windows (at start and on every reload that changes
    /// either).
    pub fn configure(&self, manifest: &Manifest) {
        let mut sources = self.sources.lock();
        sources.manifest = manifest.maintenance.iter().cloned().map(Arc::new).collect();
        sources.assets = manifest.assets.iter().map(|a| (a.id.clone(), a.metadata.clone())).collect();
        self.rebuild(&sources);
    }

    pub fn set_channels(&self, channels: Vec<String>) {
        self.sources.lock().channels = channels;
    }

    fn channels(&self) -> Vec<String> {
        self.sources.lock().channels.clone()
    }

    /// The windows read back from the store at start.
    pub fn set_api(&self, windows: Vec<Window>) {
        let mut sources = self.sources.lock();
        sources.api = windows.into_iter().map(Arc::new).collect();
        self.rebuild(&sources);
    }

    /// A window made by the API (already stored).
    pub fn add_api(&self, window: Window) {
        let mut sources = self.sources.lock();
        sources.api.retain(|w| w.id() != window.id());
        sources.api.push(Arc::new(window));
        self.rebuild(&sources);
    }

    /// A window deleted by the API (already deleted from the store).
    pub fn remove_api(&self, id: &str) {
        let mut sources = self.sources.lock();
        sources.api.retain(|w| w.id() != id);
        self.rebuild(&sources);
    }

    /// Where the window with this id comes from, if there is one.
    pub fn source_of(&self, id: &str) -> Option<Source> {
        let sources = self.sources.lock();
        if sources.manifest.iter().any(|w| w.id() == id) {
            Some(Source::Manifest)
        } else {
            sources.api.iter().any(|w| w.id() == id).then_some(Source::Api)
        }
    }

    /// The configured asset ids, which a window may name.
    pub fn asset_ids(&self) -> Vec<String> {
        self.sources.lock().assets.iter().map(|(id, _)| id.clone()).collect()
    }

    fn rebuild(&self, sources: &Sources) {
        let manifest_ids: HashSet<&str> = sources.manifest.iter().map(|w| w.id()).collect();
        let api = sources.api.iter().filter(|w| {
            // The manifest was edited to use an id the API had taken: the manifest decides.
            let shadowed = manifest_ids.contains(w.id());
            if shadowed {
                tracing::warn!(window_id = %w.id(), "a maintenance window made by the API is hidden by the manifest's window of the same id");
            }
            !shadowed
        });
        let windows = sources.manifest.iter().chain(api).cloned().collect();
        let calendar = Calendar::new(windows, sources.assets.iter().map(|(id, metadata)| (id.as_str(), metadata)));
        *self.calendar.write() = Arc::new(calendar);
        self.changed.notify_one();
    }
}

/// The longest [`announce`] sleeps without looking at the wall clock again (which may jump).
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// Wakes this long after an edge, so that the wall clock is past it when it looks.
const AFTER_EDGE: Duration = Duration::from_millis(5);

/// Tells the `onMaintenance` channels, once per occurrence, when a window opens
/// (MAINTENANCE_START) and closes (MAINTENANCE_END, also when it is deleted or edited away while
/// open). Runs for as long as statusd does, owned by the Supervisor, so restarts of the other
/// actors and reloads never send anything twice. Windows already open when it starts are taken
/// as announced: a restart of statusd does not announce them again. It also tells the Incidents
/// actor which assets are held (at start and whenever that changes), so open incidents of those
/// assets send neither reminders nor escalation tiers while a window covers them.
///
/// Each round runs under [`supervised`]: a panic is caught, counted and reported as a task of
/// the Supervisor ("statusd"), and the next round, a second later, tells the Incidents actor the
/// held assets again and announces what the round that panicked had not marked as announced.
pub async fn announce(services: Arc<Services>) {
    let board = &services.maintenance;
    let mut rounds = Rounds { announced: Rounds::opened(&board.calendar(), Utc::now()), told: None };
    loop {
        // Unwind safety: a round marks windows announced only at its end, so what a round told
        // before it panicked is told again by the next one (a repeat, never a loss); `told` is
        // reset below.
        let round = supervised(&services, SUPERVISOR, TaskKind::Announce, async { rounds.round(&services) }).await;
        let sleep = match round {
            Ok(sleep) => sleep,
            Err(_) => {
                // What the Incidents actor was told may not have reached it.
                rounds.told = None;
                AFTER_PANIC
            }
        };
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = board.changed.notified() => {}
        }
    }
}

/// The name the announcer's panics are counted and reported under: the actor that owns it.
const SUPERVISOR: &str = "statusd";
/// How long the announcer waits after a round panicked.
const AFTER_PANIC: Duration = Duration::from_secs(1);

/// What [`announce`] remembers from one round to the next.
struct Rounds {
    /// The windows open at the last round, each with its occurrence and assets.
    announced: BTreeMap<String, (Occurrence, Vec<String>)>,
    /// The assets held, as the Incidents actor was last told (None: not told yet).
    told: Option<BTreeSet<String>>,
}

impl Rounds {
    fn opened(calendar: &Calendar, now: DateTime<Utc>) -> BTreeMap<String, (Occurrence, Vec<String>)> {
        calendar.active(now).into_iter().map(|(id, o)| (id.clone(), (o, calendar.assets_of(&id).to_vec()))).collect()
    }

    /// Announces what changed since the last round; returns how long to sleep until the next.
    fn round(&mut self, services: &Services) -> Duration {
        let calendar = services.maintenance.calendar();
        let now = Utc::now();
        let open = Self::opened(&calendar, now);
        let held: BTreeSet<String> = open.values().flat_map(|(_, assets)| assets.iter().cloned()).collect();
        if self.told.as_ref() != Some(&held) {
            services.directory.incidents(IncidentEvent::Maintenance(held.clone()));
            self.told = Some(held);
        }
        for (id, (occurrence, assets)) in &self.announced {
            if open.get(id).map(|(o, _)| o) != Some(occurrence) {
                tell(services, Event::MaintenanceEnd, id, occurrence, assets, now);
            }
        }
        for (id, (occurrence, assets)) in &open {
            if self.announced.get(id).map(|(o, _)| o) != Some(occurrence) {
                tell(services, Event::MaintenanceStart, id, occurrence, assets, now);
            }
        }
        self.announced = open;
        calendar
            .next_edge(now)
            .and_then(|edge| (edge - now).to_std().ok())
            .map_or(MAX_SLEEP, |wait| (wait + AFTER_EDGE).min(MAX_SLEEP))
    }
}

fn tell(services: &Services, event: Event, id: &str, occurrence: &Occurrence, assets: &[String], now: DateTime<Utc>) {
    let verb = if event == Event::MaintenanceStart { "started" } else { "ended" };
    let covered = if assets.is_empty() { "no configured asset".to_string() } else { assets.join(", ") };
    let details = format!(
        "maintenance window {id} {verb} for {covered} (scheduled {} to {})",
        occurrence.start.to_rfc3339(),
        occurrence.end.to_rfc3339()
    );
    tracing::info!(window_id = %id, assets = %covered, "{details}");
    let notification = Notification {
        event,
        asset_id: id.to_string(),
        asset_name: format!("Maintenance {id}"),
        timestamp: now,
        details,
        incident_id: None,
        group: Vec::new(),
        tier: None,
        since: None,
    };
    for channel in services.maintenance.channels() {
        services.directory.notify(&channel, notification.clone());
    }
}
