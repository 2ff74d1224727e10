//! Root causes (`dependsOn`): an outage of an asset whose parent is down is attributed to that
//! parent (`causedBy`) and sends nothing of its own; the root's DOWN names the dependants it
//! took down. As Alertmanager's inhibition rules, but from the dependency graph the manifest
//! declares rather than from label matching.
//!
//! Rules:
//! - An asset that goes down while an asset it depends on (transitively) is down is attributed
//!   to the topmost such ancestor ([`DependencyGraph::root_cause`]).
//! - With a wait (the policy's `grouping.waitSeconds`), the DOWN of an asset in the graph is
//!   held that long: a dependant that went down first is attributed to a parent that goes down
//!   within the wait, and the parent's DOWN, sent when the wait ends, lists every dependant
//!   attributed to it by then.
//! - An outage that ends while attributed, or while its DOWN is held, ends silently: nobody
//!   heard of it.
//! - When a root recovers, each dependant still down is attributed to another ancestor that is
//!   down, if any, and otherwise becomes an outage of its own, with a normal DOWN, held for the
//!   wait like any other: dependants recover a moment after their root, not with it, and one
//!   that does within the wait was never an outage of its own.
//!
//! Pure logic with time passed in; persistent maps (`imbl`), like the rest of the Incidents
//! actor's memory, so that its checkpoint after every event stays O(1).

use std::sync::Arc;
use std::time::Duration;

use imbl::{HashMap, OrdSet};
use tokio::time::Instant;

use crate::dependencies::DependencyGraph;
use crate::notify::Notification;

/// A DOWN held for the wait.
#[derive(Debug, Clone)]
struct Held {
    due: Instant,
    down: Notification,
}

/// What to do with a DOWN.
#[derive(Debug, Clone, PartialEq)]
pub enum DownOutcome {
    /// Not part of any dependency: send it now.
    Send(Notification),
    /// Held for the wait; `attributed` lists held outages now attributed to this asset.
    Held { attributed: Vec<String> },
    /// Caused by `root`'s outage: nothing is sent.
    Attributed { root: String },
}

/// What an outage's end changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecoveryOutcome {
    /// Nobody heard of this outage (it was attributed, or its DOWN held): send no RECOVERY.
    pub silent: bool,
    /// Dependants attributed to another root (Some) or to none any more (None).
    pub reattributed: Vec<(String, Option<String>)>,
    /// DOWNs of dependants still down that are now outages of their own, to send now (without
    /// a wait; with one, they are held like any DOWN and come out of [`Causes::wake`]).
    pub now_down: Vec<Notification>,
}

/// The attributions and held DOWNs. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Causes {
    graph: Arc<DependencyGraph>,
    /// Asset → the root its open outage is attributed to.
    caused_by: HashMap<String, String>,
    /// The DOWN of each attributed outage, sent should it become an outage of its own.
    downs: HashMap<String, Notification>,
    held: HashMap<String, Held>,
    /// Held DOWNs by when they are due.
    due: OrdSet<(Instant, String)>,
}

impl Causes {
    pub fn new(graph: Arc<DependencyGraph>) -> Causes {
        Causes { graph, ..Causes::default() }
    }

    /// A reloaded manifest: attributions already made stand.
    pub fn set_graph(&mut self, graph: Arc<DependencyGraph>) {
        self.graph = graph;
    }

    /// An outage open when statusd stopped, attributed to `root` back then (its DOWN, as the
    /// dependant's own, is kept should it outlast the root).
    pub fn resume(&mut self, down: Notification, root: String) {
        self.caused_by.insert(down.asset_id.clone(), root);
        self.downs.insert(down.asset_id.clone(), down);
    }

    #[cfg(test)]
    fn caused_by(&self, asset_id: &str) -> Option<&String> {
        self.caused_by.get(asset_id)
    }

    /// `down` confirmed at `now`; `is_down` says which other assets are down.
    pub fn down(
        &mut self,
        down: Notification,
        is_down: impl Fn(&str) -> bool,
        wait: Option<Duration>,
        now: Instant,
    ) -> DownOutcome {
        let asset_id = down.asset_id.clone();
        if let Some(root) = self.graph.root_cause(&asset_id, &is_down) {
            self.caused_by.insert(asset_id.clone(), root.clone());
            self.downs.insert(asset_id, down);
            return DownOutcome::Attributed { root };
        }
        let wait = wait.filter(|wait| !wait.is_zero());
        let Some(due) = wait.filter(|_| self.graph.involves(&asset_id)).and_then(|wait| now.checked_add(wait)) else {
            return DownOutcome::Send(down);
        };
        // Held dependants of this asset, and what was attributed to them, are its now.
        let dependants: Vec<String> =
            self.held.keys().filter(|held| self.graph.depends_on(held, &asset_id)).cloned().collect();
        let mut attributed = Vec::new();
        for dependant in dependants {
            if let Some(held) = self.held.remove(&dependant) {
                self.due.remove(&(held.due, dependant.clone()));
                self.caused_by.insert(dependant.clone(), asset_id.clone());
                self.downs.insert(dependant.clone(), held.down);
                attributed.push(dependant.clone());
            }
            let moved: Vec<String> =
                self.caused_by.iter().filter(|(_, root)| **root == dependant).map(|(id, _)| id.clone()).collect();
            for id in moved {
                self.caused_by.insert(id.clone(), asset_id.clone());
                attributed.push(id);
            }
        }
        self.held.insert(asset_id.clone(), Held { due, down });
        self.due.insert((due, asset_id));
        DownOutcome::Held { attributed }
    }

    /// The held DOWNs due by `now`, each naming the dependants attributed to it.
    pub fn wake(&mut self, now: Instant) -> Vec<Notification> {
        let mut ready = Vec::new();
        while let Some((due, asset_id)) = self.due.get_min().cloned() {
            if due > now {
                break;
            }
            self.due.remove_min();
            let Some(Held { mut down, .. }) = self.held.remove(&asset_id) else { continue };
            let affected = self.affected_by(&asset_id);
            if !affected.is_empty() {
                down.details = format!("{}; also affects {}: {}", down.details, affected.len(), affected.join(", "));
            }
            ready.push(down);
        }
        ready
    }

    /// The names of the dependants attributed to `root`, in the order of the graph.
    fn affected_by(&self, root: &str) -> Vec<String> {
        self.graph
            .dependants(root)
            .into_iter()
            .filter(|id| self.caused_by.get(id).is_some_and(|cause| cause == root))
            .map(|id| self.downs.get(&id).map_or(id, |down| down.asset_name.clone()))
            .collect()
    }

    pub fn next_wake(&self) -> Option<Instant> {
        self.due.get_min().map(|(due, _)| *due)
    }

    /// `asset_id`'s outage ended at `now`; `is_down` says which assets are still down (not
    /// this one).
    pub fn recovered(
        &mut self,
        asset_id: &str,
        is_down: impl Fn(&str) -> bool,
        wait: Option<Duration>,
        now: Instant,
    ) -> RecoveryOutcome {
        let mut outcome = RecoveryOutcome::default();
        if self.caused_by.remove(asset_id).is_some() {
            self.downs.remove(asset_id);
            outcome.silent = true;
        }
        if let Some(held) = self.held.remove(asset_id) {
            self.due.remove(&(held.due, asset_id.to_string()));
            outcome.silent = true;
        }
        let dependants: Vec<String> =
            self.caused_by.iter().filter(|(_, root)| root.as_str() == asset_id).map(|(id, _)| id.clone()).collect();
        for dependant in dependants {
            match self.graph.root_cause(&dependant, |id| id != asset_id && is_down(id)) {
                Some(root) => {
                    self.caused_by.insert(dependant.clone(), root.clone());
                    outcome.reattributed.push((dependant, Some(root)));
                }
                None => {
                    self.caused_by.remove(&dependant);
                    outcome.reattributed.push((dependant.clone(), None));
                    let Some(down) = self.downs.remove(&dependant) else { continue };
                    match wait.filter(|wait| !wait.is_zero()).and_then(|wait| now.checked_add(wait)) {
                        Some(due) => {
                            self.held.insert(dependant.clone(), Held { due, down });
                            self.due.insert((due, dependant));
                        }
                        None => outcome.now_down.push(down),
                    }
                }
            }
        }
        outcome
    }

    /// The asset left the config.
    pub fn forget(&mut self, asset_id: &str) {
        self.caused_by.remove(asset_id);
        self.downs.remove(asset_id);
        if let Some(held) = self.held.remove(asset_id) {
            self.due.remove(&(held.due, asset_id.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::asset::AssetConfig;
    use crate::notify::Event;

    const WAIT: Option<Duration> = Some(Duration::from_secs(10));

    /// router ← db ← api ← web; unrelated stands alone.
    fn causes() -> Causes {
        let assets: Vec<Arc<AssetConfig>> =
            [("router", vec![]), ("db", vec!["router"]), ("api", vec!["db"]), ("web", vec!["api"])]
                .into_iter()
                .chain([("unrelated", vec![])])
                .map(|(id, parents)| {
                    serde_json::from_value(
                        json!({"id": id, "assetType": "tcp", "address": "127.0.0.1:1", "dependsOn": parents}),
                    )
                    .expect("asset")
                })
                .collect();
        Causes::new(Arc::new(DependencyGraph::of(&assets)))
    }

    fn down(asset: &str) -> Notification {
        Notification {
            event: Event::Down,
            asset_id: asset.into(),
            asset_name: format!("The {asset}"),
            timestamp: Utc::now(),
            details: "HTTP 500".into(),
            incident_id: Some(Uuid::now_v7()),
            group: Vec::new(),
            tier: None,
            since: None,
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_dependant_of_a_down_asset_is_attributed_to_the_topmost_one() {
        let mut causes = causes();
        let t0 = Instant::now();
        let downs = ["router", "db"];
        let is_down = |id: &str| downs.contains(&id);
        assert_eq!(causes.down(down("web"), is_down, None, t0), DownOutcome::Attributed { root: "router".into() });
        assert_eq!(causes.caused_by("web").map(String::as_str), Some("router"));
        assert!(matches!(causes.down(down("unrelated"), is_down, WAIT, t0), DownOutcome::Send(_)), "never held");
    }

    #[test]
    fn without_a_wait_the_root_is_sent_at_once() {
        let mut causes = causes();
        let outcome = causes.down(down("router"), |_| false, None, Instant::now());
        assert!(matches!(outcome, DownOutcome::Send(n) if n.asset_id == "router"));
        assert_eq!(causes.next_wake(), None);
    }

    #[test]
    fn the_roots_down_waits_and_names_the_dependants_that_went_down_before_and_after_it() {
        let mut causes = causes();
        let t0 = Instant::now();
        // api goes down first: held, since its parent may follow.
        assert_eq!(causes.down(down("api"), |_| false, WAIT, t0), DownOutcome::Held { attributed: vec![] });
        // web, below api, is attributed to api at once.
        let is_down = |id: &str| id == "api";
        assert_eq!(
            causes.down(down("web"), is_down, WAIT, t0 + secs(1)),
            DownOutcome::Attributed { root: "api".into() }
        );
        // Then router: api (held) and web (attributed to api) are router's now.
        let outcome = causes.down(down("router"), |_| false, WAIT, t0 + secs(2));
        assert_eq!(outcome, DownOutcome::Held { attributed: vec!["api".into(), "web".into()] });
        // db, between them, comes last and is router's too.
        let is_down = |id: &str| ["api", "web", "router"].contains(&id);
        assert_eq!(
            causes.down(down("db"), is_down, WAIT, t0 + secs(3)),
            DownOutcome::Attributed { root: "router".into() }
        );
        assert_eq!(causes.next_wake(), Some(t0 + secs(12)));
        assert!(causes.wake(t0 + secs(11)).is_empty(), "api's hold was cancelled, router's is not due");
        let sent = causes.wake(t0 + secs(12));
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].asset_id, "router");
        assert_eq!(sent[0].details, "HTTP 500; also affects 3: The db, The api, The web");
    }

    #[test]
    fn a_held_outage_that_ends_within_the_wait_is_never_heard_of() {
        let mut causes = causes();
        let t0 = Instant::now();
        causes.down(down("db"), |_| false, WAIT, t0);
        let outcome = causes.recovered("db", |_| false, WAIT, t0 + secs(1));
        assert!(outcome.silent);
        assert!(causes.wake(t0 + secs(10)).is_empty());
    }

    #[test]
    fn when_the_root_recovers_dependants_still_down_move_to_another_root_or_go_down_on_their_own() {
        let mut causes = causes();
        let t0 = Instant::now();
        causes.down(down("router"), |_| false, None, t0);
        causes.down(down("api"), |id| id == "router", None, t0);
        causes.down(down("web"), |id| ["router", "api"].contains(&id), None, t0);
        assert_eq!(causes.caused_by("web").map(String::as_str), Some("router"));

        // router recovers; db is (somehow) down on its own: api and web are db's now.
        let outcome = causes.recovered("router", |id| ["db", "api", "web"].contains(&id), None, t0);
        assert!(!outcome.silent);
        let mut reattributed = outcome.reattributed.clone();
        reattributed.sort();
        assert_eq!(reattributed, [("api".into(), Some("db".into())), ("web".into(), Some("db".into()))]);
        assert!(outcome.now_down.is_empty());

        // db recovers: api has nothing above it down and is an outage of its own; web is api's.
        let outcome = causes.recovered("db", |id| ["api", "web"].contains(&id), None, t0);
        let mut reattributed = outcome.reattributed.clone();
        reattributed.sort();
        assert_eq!(reattributed, [("api".into(), None), ("web".into(), Some("api".into()))]);
        assert_eq!(outcome.now_down.iter().map(|n| n.asset_id.as_str()).collect::<Vec<_>>(), ["api"]);

        // An attributed outage that ends is silent.
        assert!(causes.recovered("web", |id| id == "api", None, t0).silent);
    }

    #[test]
    fn with_a_wait_a_dependant_left_down_by_its_roots_recovery_is_held_and_silent_if_it_follows() {
        let mut causes = causes();
        let t0 = Instant::now();
        causes.down(down("router"), |_| false, None, t0);
        causes.down(down("db"), |id| id == "router", WAIT, t0);
        causes.down(down("api"), |id| ["router", "db"].contains(&id), WAIT, t0);
        let outcome = causes.recovered("router", |id| ["db", "api"].contains(&id), WAIT, t0 + secs(60));
        assert!(outcome.now_down.is_empty(), "held, not sent");
        assert_eq!(causes.next_wake(), Some(t0 + secs(70)));
        // db recovers a moment later: it was never an outage of its own; api was db's, then
        // nobody's, and is held in turn.
        assert!(causes.recovered("db", |id| id == "api", WAIT, t0 + secs(61)).silent);
        // api does not recover: its DOWN goes out once its wait is over.
        assert!(causes.wake(t0 + secs(70)).is_empty());
        let sent = causes.wake(t0 + secs(71));
        assert_eq!(sent.iter().map(|n| n.asset_id.as_str()).collect::<Vec<_>>(), ["api"]);
    }

    #[test]
    fn a_removed_asset_leaves_no_hold_or_attribution() {
        let mut causes = causes();
        let t0 = Instant::now();
        causes.down(down("router"), |_| false, WAIT, t0);
        causes.down(down("db"), |id| id == "router", WAIT, t0);
        causes.forget("router");
        causes.forget("db");
        assert_eq!(causes.next_wake(), None);
        assert!(causes.caused_by("db").is_none());
    }
}
