//! The asset index: every asset's config and the memory its actor checkpoints, by id, kept by
//! the Supervisor as it spawns, restarts, updates and retires asset actors.
//!
//! The API reads live state from here instead of asking each actor: a page of `/api/assets`
//! costs the page (a range of the ordered map and one short lock per asset), not one message
//! and one answer per asset, which at 100,000 assets is the difference between microseconds
//! and a second. The state read is the actor's last checkpoint, taken after every message that
//! changes it, so it is never older than the actor's last handled message.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use ractor::ActorRef;

use super::asset::{AssetMemory, AssetMsg};
use crate::asset::AssetConfig;

/// One asset as the API needs it: its config, its actor (to send it pushes) and its memory.
#[derive(Clone)]
pub struct AssetEntry {
    pub config: Arc<AssetConfig>,
    /// None while the actor is crashed and waiting out its backoff.
    pub actor: Option<ActorRef<AssetMsg>>,
    pub restarts: u32,
    /// What the actor checkpoints after each message; outlives the actor.
    pub memory: Arc<Mutex<AssetMemory>>,
    /// Cluster mode: another replica probes it; this one runs no actor for it.
    pub elsewhere: bool,
}

/// Every asset by id, in id order (the order pages follow).
#[derive(Default)]
pub struct AssetIndex {
    entries: RwLock<BTreeMap<String, AssetEntry>>,
}

/// A page of the index: the entries kept, and whether more entries follow the last one kept.
pub struct Page {
    pub entries: Vec<AssetEntry>,
    pub more: bool,
}

impl AssetIndex {
    pub fn set(&self, entry: AssetEntry) {
        self.entries.write().insert(entry.config.id.clone(), entry);
    }

    pub fn remove(&self, id: &str) {
        self.entries.write().remove(id);
    }

    pub fn get(&self, id: &str) -> Option<AssetEntry> {
        self.entries.read().get(id).cloned()
    }

    pub fn len(&self) -> usize {
        self.entries.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.read().is_empty()
    }

    /// Every entry, in id order.
    pub fn all(&self) -> Vec<AssetEntry> {
        self.entries.read().values().cloned().collect()
    }

    /// Up to `limit` entries after the id `after` (from the start without it) that `keep`
    /// accepts, in id order. Without a filter this reads `limit + 1` entries whatever the size
    /// of the index; a filter reads on until the page is full or the index ends.
    pub fn page(&self, after: Option<&str>, limit: usize, mut keep: impl FnMut(&AssetEntry) -> bool) -> Page {
        let entries = self.entries.read();
        let start = match after {
            Some(id) => Bound::Excluded(id),
            None => Bound::Unbounded,
        };
        let mut kept = Vec::with_capacity(limit.min(1024));
        let mut more = false;
        for entry in entries.range::<str, _>((start, Bound::Unbounded)).map(|(_, entry)| entry) {
            if !keep(entry) {
                continue;
            }
            if kept.len() == limit {
                more = true;
                break;
            }
            kept.push(entry.clone());
        }
        Page { entries: kept, more }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::actors::testing::http_asset;

    fn index(ids: &[&str]) -> AssetIndex {
        let index = AssetIndex::default();
        for id in ids {
            index.set(AssetEntry {
                config: http_asset(id, json!({})),
                actor: None,
                restarts: 0,
                memory: Arc::default(),
                elsewhere: false,
            });
        }
        index
    }

    fn ids(page: &Page) -> Vec<&str> {
        page.entries.iter().map(|e| e.config.id.as_str()).collect()
    }

    #[test]
    fn pages_follow_id_order_and_say_whether_more_follow() {
        let index = index(&["c", "a", "d", "b"]);
        let first = index.page(None, 2, |_| true);
        assert_eq!((ids(&first), first.more), (vec!["a", "b"], true));
        let second = index.page(Some("b"), 2, |_| true);
        assert_eq!((ids(&second), second.more), (vec!["c", "d"], false));
        // A cursor whose asset was removed still finds its place.
        index.remove("c");
        let after_removed = index.page(Some("c"), 2, |_| true);
        assert_eq!((ids(&after_removed), after_removed.more), (vec!["d"], false));
    }

    #[test]
    fn a_filter_reads_on_until_the_page_is_full() {
        let index = index(&["a", "b", "c", "d", "e"]);
        let page = index.page(None, 2, |e| e.config.id != "a" && e.config.id != "c");
        assert_eq!((ids(&page), page.more), (vec!["b", "d"], true));
        let last = index.page(Some("d"), 2, |e| e.config.id != "e");
        assert_eq!((ids(&last), last.more), (Vec::<&str>::new(), false));
    }
}
