//! Asset dependencies (`dependsOn`): which assets an asset needs, so that when a parent goes
//! down its dependants' outages are attributed to it instead of paging on their own.
//!
//! The graph is checked when the manifest is read (unknown ids, an asset that depends on
//! itself, cycles), so the walks here may assume it is acyclic.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::asset::AssetConfig;

/// Every asset's parents (what it `dependsOn`) and children (what depends on it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DependencyGraph {
    parents: HashMap<String, Vec<String>>,
    children: HashMap<String, Vec<String>>,
}

/// Why a manifest's `dependsOn` lists are refused: the asset's index, the dependency's index
/// in its list (for the key `assets[i].dependsOn[j]`), and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyProblem {
    pub asset: usize,
    pub dependency: usize,
    pub message: String,
}

impl DependencyGraph {
    /// The graph of valid assets (ids assumed unique).
    pub fn of(assets: &[Arc<AssetConfig>]) -> DependencyGraph {
        let mut graph = DependencyGraph::default();
        for asset in assets.iter().filter(|asset| !asset.depends_on.is_empty()) {
            graph.parents.insert(asset.id.clone(), asset.depends_on.clone());
            for parent in &asset.depends_on {
                graph.children.entry(parent.clone()).or_default().push(asset.id.clone());
            }
        }
        graph
    }

    /// Whether the asset depends on anything or anything depends on it.
    pub fn involves(&self, asset_id: &str) -> bool {
        self.parents.contains_key(asset_id) || self.children.contains_key(asset_id)
    }

    /// The assets that depend on `asset_id`, directly or through others, nearest first.
    pub fn dependants(&self, asset_id: &str) -> Vec<String> {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut order = Vec::new();
        let mut next: Vec<&str> = vec![asset_id];
        while !next.is_empty() {
            let mut further = Vec::new();
            for id in next {
                for child in self.children.get(id).into_iter().flatten() {
                    if child != asset_id && seen.insert(child) {
                        order.push(child.clone());
                        further.push(child.as_str());
                    }
                }
            }
            next = further;
        }
        order
    }

    /// Whether `ancestor` is among what `asset_id` depends on, directly or through others.
    pub fn depends_on(&self, asset_id: &str, ancestor: &str) -> bool {
        let mut stack: Vec<&str> = vec![asset_id];
        let mut seen: HashSet<&str> = HashSet::new();
        while let Some(id) = stack.pop() {
            for parent in self.parents.get(id).into_iter().flatten() {
                if parent == ancestor {
                    return true;
                }
                if seen.insert(parent) {
                    stack.push(parent);
                }
            }
        }
        false
    }

    /// The root cause of `asset_id` being down: the first of its ancestors, in the order the
    /// manifest lists them, that is down and depends on nothing that is down itself. None when
    /// no ancestor is down.
    pub fn root_cause(&self, asset_id: &str, is_down: impl Fn(&str) -> bool) -> Option<String> {
        self.root_of(asset_id, &is_down, &mut HashSet::new())
    }

    fn root_of<'a>(&'a self, id: &str, is_down: &impl Fn(&str) -> bool, seen: &mut HashSet<&'a str>) -> Option<String> {
        for parent in self.parents.get(id).into_iter().flatten() {
            if !seen.insert(parent) {
                continue;
            }
            if let Some(root) = self.root_of(parent, is_down, seen) {
                return Some(root);
            }
            if is_down(parent) {
                return Some(parent.clone());
            }
        }
        None
    }

    /// Checks every `dependsOn` of `assets`: each names another configured asset, and no
    /// chain of them leads back to where it started.
    pub fn check(assets: &[Arc<AssetConfig>]) -> Vec<DependencyProblem> {
        let index: HashMap<&str, usize> = assets.iter().enumerate().map(|(i, a)| (a.id.as_str(), i)).collect();
        let mut problems = Vec::new();
        for (i, asset) in assets.iter().enumerate() {
            for (j, parent) in asset.depends_on.iter().enumerate() {
                let message = if parent == &asset.id {
                    "an asset cannot depend on itself".to_string()
                } else if !index.contains_key(parent.as_str()) {
                    format!("unknown asset {parent:?}")
                } else {
                    continue;
                };
                problems.push(DependencyProblem { asset: i, dependency: j, message });
            }
        }
        if !problems.is_empty() {
            return problems;
        }
        // Depth-first, colouring each asset: on the path (grey) or done (black). Reaching a
        // grey asset again closes a cycle, reported once, at the asset where it was found.
        #[derive(Clone, Copy, PartialEq)]
        enum Colour {
            White,
            Grey,
            Black,
        }
        let mut colour = vec![Colour::White; assets.len()];
        for start in 0..assets.len() {
            if colour[start] != Colour::White {
                continue;
            }
            // (asset, next dependency to visit), the path from `start`.
            let mut path: Vec<(usize, usize)> = vec![(start, 0)];
            colour[start] = Colour::Grey;
            while let Some((at, next)) = path.last().copied() {
                let Some(parent) = assets[at].depends_on.get(next) else {
                    colour[at] = Colour::Black;
                    path.pop();
                    continue;
                };
                if let Some(top) = path.last_mut() {
                    top.1 += 1;
                }
                let Some(&p) = index.get(parent.as_str()) else { continue };
                match colour[p] {
                    Colour::White => {
                        colour[p] = Colour::Grey;
                        path.push((p, 0));
                    }
                    Colour::Grey => {
                        let from = path.iter().position(|(a, _)| *a == p).unwrap_or(0);
                        let mut cycle: Vec<&str> = path[from..].iter().map(|(a, _)| assets[*a].id.as_str()).collect();
                        cycle.push(assets[p].id.as_str());
                        problems.push(DependencyProblem {
                            asset: at,
                            dependency: next,
                            message: format!("dependency cycle: {}", cycle.join(" → ")),
                        });
                    }
                    Colour::Black => {}
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn assets(edges: &[(&str, &[&str])]) -> Vec<Arc<AssetConfig>> {
        edges
            .iter()
            .map(|(id, parents)| {
                serde_json::from_value(json!({
                    "id": id, "assetType": "tcp", "address": "127.0.0.1:1", "dependsOn": parents
                }))
                .expect("asset")
            })
            .collect()
    }

    #[test]
    fn the_root_cause_is_the_topmost_ancestor_that_is_down() {
        // app → api → db → network; app → cache.
        let list = assets(&[
            ("network", &[]),
            ("db", &["network"]),
            ("api", &["db"]),
            ("cache", &[]),
            ("app", &["cache", "api"]),
        ]);
        let graph = DependencyGraph::of(&list);
        let down = |ids: &'static [&'static str]| move |id: &str| ids.contains(&id);
        assert_eq!(graph.root_cause("app", down(&[])), None);
        assert_eq!(graph.root_cause("app", down(&["api"])).as_deref(), Some("api"));
        assert_eq!(graph.root_cause("app", down(&["api", "db"])).as_deref(), Some("db"));
        assert_eq!(
            graph.root_cause("app", down(&["network"])).as_deref(),
            Some("network"),
            "through assets that are up"
        );
        assert_eq!(graph.root_cause("app", down(&["cache", "db"])).as_deref(), Some("cache"), "in the listed order");
        assert_eq!(graph.root_cause("network", down(&["db"])), None, "dependants never cause their parents");
        assert_eq!(graph.dependants("db"), ["api", "app"]);
        assert_eq!(graph.dependants("network"), ["db", "api", "app"]);
        assert!(graph.depends_on("app", "network") && !graph.depends_on("network", "app"));
        assert!(graph.involves("cache") && !graph.involves("elsewhere"));
    }

    #[test]
    fn a_diamond_lists_each_dependant_once() {
        let list = assets(&[("root", &[]), ("a", &["root"]), ("b", &["root"]), ("leaf", &["a", "b"])]);
        let graph = DependencyGraph::of(&list);
        assert_eq!(graph.dependants("root"), ["a", "b", "leaf"]);
        assert_eq!(graph.root_cause("leaf", |id| id == "root").as_deref(), Some("root"));
    }

    #[test]
    fn unknown_ids_self_dependencies_and_cycles_are_refused_where_they_are() {
        let problems = DependencyGraph::check(&assets(&[("a", &["ghost", "a"])]));
        assert_eq!(
            problems,
            [
                DependencyProblem { asset: 0, dependency: 0, message: "unknown asset \"ghost\"".into() },
                DependencyProblem { asset: 0, dependency: 1, message: "an asset cannot depend on itself".into() },
            ]
        );
        let problems = DependencyGraph::check(&assets(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("d", &["a"])]));
        assert_eq!(
            problems,
            [DependencyProblem { asset: 2, dependency: 0, message: "dependency cycle: a → b → c → a".into() }]
        );
        assert!(DependencyGraph::check(&assets(&[("a", &[]), ("b", &["a"]), ("c", &["a", "b"])])).is_empty());
    }
}
