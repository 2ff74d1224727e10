//! statusd's own network, as its `"role": "connectivity"` assets (a gateway, a public resolver)
//! see it.
//!
//! Two views, for two deciders:
//! - [`Connectivity`], shared by every Asset actor: each connectivity asset writes whether its
//!   latest result failed, and every other asset reads, on each of its failures, whether all of
//!   them did. The rule: **a failure of an ordinary asset is inconclusive when the latest result
//!   of every connectivity asset failed**, confirmed down or not. Latest results rather than
//!   confirmed states, because when the network goes, every asset fails at once and the
//!   connectivity assets' own confirmation would come after the others' (their incidents would
//!   open first). It costs a read lock (never held across an await) and one atomic load per
//!   connectivity asset, on failures only.
//! - [`NetworkWatch`], in the Incidents actor (pure): the connectivity assets confirmed down,
//!   and whether `NETWORK_DOWN` was announced. Announced once every connectivity asset is
//!   confirmed down; `NETWORK_UP` once one of them is up again (or the set changes so that not
//!   all are down). Derived from open incidents, so a restart neither repeats nor loses either.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use parking_lot::RwLock;

/// No result yet from this connectivity asset.
const UNKNOWN: u8 = 0;
const PASSED: u8 = 1;
const FAILED: u8 = 2;

/// The latest result of each connectivity asset, shared by every Asset actor.
#[derive(Debug, Default)]
pub struct Connectivity {
    /// Asset id → its latest result ([`UNKNOWN`], [`PASSED`], [`FAILED`]). Replaced whole when
    /// the set of connectivity assets changes (start, reload); the slots of assets that stay
    /// are carried over, so a reload forgets nothing.
    slots: RwLock<Arc<HashMap<String, Arc<AtomicU8>>>>,
}

impl Connectivity {
    /// The connectivity assets are now `members`.
    pub fn set_members<'a>(&self, members: impl IntoIterator<Item = &'a str>) {
        let mut slots = self.slots.write();
        let next: HashMap<String, Arc<AtomicU8>> = members
            .into_iter()
            .map(|id| {
                let slot = slots.get(id).cloned().unwrap_or_else(|| Arc::new(AtomicU8::new(UNKNOWN)));
                (id.to_string(), slot)
            })
            .collect();
        *slots = Arc::new(next);
    }

    /// The latest result of connectivity asset `asset_id` passed or failed.
    pub fn report(&self, asset_id: &str, passed: bool) {
        if let Some(slot) = self.slots.read().get(asset_id) {
            slot.store(if passed { PASSED } else { FAILED }, Ordering::Relaxed);
        }
    }

    /// Every connectivity asset's latest result failed (false when there are none).
    pub fn lost(&self) -> bool {
        let slots = self.slots.read();
        !slots.is_empty() && slots.values().all(|slot| slot.load(Ordering::Relaxed) == FAILED)
    }
}

/// What the network's state changed, to announce to the `onPanic` channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkChange {
    /// Every connectivity asset is down: these.
    Lost(Vec<String>),
    /// Not all are down any more; `back` is the asset that came back, if one did.
    Restored { back: Option<String> },
}

/// The connectivity assets confirmed down, and what was announced. Small (a few assets), so a
/// clone for each checkpoint costs nothing that matters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkWatch {
    members: BTreeSet<String>,
    down: BTreeSet<String>,
    /// NETWORK_DOWN went out and NETWORK_UP did not yet.
    announced: bool,
}

impl NetworkWatch {
    /// The watch as statusd left it: `members` configured, `down` those with an open incident.
    /// If all were down, NETWORK_DOWN went out then, and is not sent again.
    pub fn resume(members: BTreeSet<String>, down: impl IntoIterator<Item = String>) -> NetworkWatch {
        let down = down.into_iter().filter(|id| members.contains(id)).collect();
        let mut watch = NetworkWatch { members, down, announced: false };
        watch.announced = watch.lost();
        watch
    }

    /// The watch with `down` confirmed down too, as if statusd had left it so (no
    /// announcement: whoever decided them announced it).
    pub fn with_down(&self, down: impl IntoIterator<Item = String>) -> NetworkWatch {
        NetworkWatch::resume(self.members.clone(), self.down.iter().cloned().chain(down))
    }

    /// The watch with every member up, and nothing announced.
    pub fn all_up(&self) -> NetworkWatch {
        NetworkWatch::resume(self.members.clone(), std::iter::empty())
    }

    pub fn is_member(&self, asset_id: &str) -> bool {
        self.members.contains(asset_id)
    }

    /// The asset was confirmed down as a connectivity asset: its recovery is the watch's too.
    pub fn is_down(&self, asset_id: &str) -> bool {
        self.down.contains(asset_id)
    }

    fn lost(&self) -> bool {
        !self.members.is_empty() && self.members.iter().all(|m| self.down.contains(m))
    }

    /// Announces what changed since the last announcement, if anything did.
    fn settle(&mut self, back: Option<&str>) -> Option<NetworkChange> {
        let lost = self.lost();
        if lost == self.announced {
            return None;
        }
        self.announced = lost;
        Some(if lost {
            NetworkChange::Lost(self.members.iter().cloned().collect())
        } else {
            NetworkChange::Restored { back: back.map(str::to_string) }
        })
    }

    /// The connectivity assets are now `members` (a reload).
    pub fn set_members(&mut self, members: BTreeSet<String>) -> Option<NetworkChange> {
        self.down.retain(|id| members.contains(id));
        self.members = members;
        self.settle(None)
    }

    /// Connectivity asset `asset_id` is confirmed down.
    pub fn down(&mut self, asset_id: &str) -> Option<NetworkChange> {
        self.down.insert(asset_id.to_string());
        self.settle(None)
    }

    /// Connectivity asset `asset_id` is confirmed up again (or left the config).
    pub fn up(&mut self, asset_id: &str) -> Option<NetworkChange> {
        self.down.remove(asset_id);
        self.settle(Some(asset_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn lost_only_while_every_connectivity_asset_latest_result_failed() {
        let connectivity = Connectivity::default();
        assert!(!connectivity.lost(), "no connectivity assets: never lost");
        connectivity.set_members(["gateway", "resolver"]);
        assert!(!connectivity.lost(), "no results yet");
        connectivity.report("gateway", false);
        assert!(!connectivity.lost(), "the resolver has not failed");
        connectivity.report("resolver", false);
        assert!(connectivity.lost());
        connectivity.report("other", true);
        assert!(connectivity.lost(), "only members count");
        connectivity.report("resolver", true);
        assert!(!connectivity.lost());
    }

    #[test]
    fn a_reload_keeps_the_results_of_the_assets_that_stay() {
        let connectivity = Connectivity::default();
        connectivity.set_members(["gateway", "resolver"]);
        connectivity.report("gateway", false);
        connectivity.report("resolver", false);
        connectivity.set_members(["gateway"]);
        assert!(connectivity.lost(), "the gateway's failure is remembered");
        connectivity.set_members(["gateway", "new"]);
        assert!(!connectivity.lost(), "the new one has no result yet");
        connectivity.set_members([]);
        assert!(!connectivity.lost());
    }

    #[test]
    fn network_down_once_all_are_down_and_up_once_one_is_back() {
        let mut watch = NetworkWatch::default();
        assert_eq!(watch.set_members(set(&["gateway", "resolver"])), None);
        assert_eq!(watch.down("gateway"), None);
        assert_eq!(watch.down("resolver"), Some(NetworkChange::Lost(vec!["gateway".into(), "resolver".into()])));
        assert_eq!(watch.down("resolver"), None, "said once");
        assert_eq!(watch.up("gateway"), Some(NetworkChange::Restored { back: Some("gateway".into()) }));
        assert_eq!(watch.up("resolver"), None, "said once");
        assert_eq!(watch.down("gateway"), None);
    }

    #[test]
    fn a_restart_while_lost_does_not_announce_again_and_still_restores() {
        let mut watch = NetworkWatch::resume(set(&["gateway"]), ["gateway".to_string(), "api".to_string()]);
        assert!(watch.is_down("gateway"));
        assert!(!watch.is_down("api"), "not a member");
        assert_eq!(watch.down("gateway"), None);
        assert_eq!(watch.up("gateway"), Some(NetworkChange::Restored { back: Some("gateway".into()) }));
    }

    #[test]
    fn a_reload_that_changes_the_members_settles_the_announcement() {
        let mut watch = NetworkWatch::resume(set(&["gateway"]), ["gateway".to_string()]);
        // A second connectivity asset, not down: the network is not lost any more.
        assert_eq!(watch.set_members(set(&["gateway", "resolver"])), Some(NetworkChange::Restored { back: None }));
        assert_eq!(watch.set_members(set(&["gateway"])), Some(NetworkChange::Lost(vec!["gateway".into()])));
        assert_eq!(watch.set_members(set(&[])), Some(NetworkChange::Restored { back: None }));
    }
}
