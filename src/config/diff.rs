//! What a reload changes: assets by id, channels by name, and the policy. "Changed" means not
//! equal, field by field; anything equal is left alone, so its actor never notices the reload.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::Serialize;

use super::{AssetConfig, Config, NotificationPolicy};
use crate::maintenance::Window;
use crate::notify::ChannelConfig;

/// The difference between the running config and a new one.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigDiff {
    pub added_assets: Vec<Arc<AssetConfig>>,
    pub removed_assets: Vec<String>,
    pub changed_assets: Vec<Arc<AssetConfig>>,
    pub unchanged_assets: usize,
    pub added_channels: BTreeMap<String, ChannelConfig>,
    pub removed_channels: Vec<String>,
    pub changed_channels: BTreeMap<String, ChannelConfig>,
    pub policy: Option<NotificationPolicy>,
    /// The manifest's maintenance windows, when they changed (all of them: the calendar is
    /// built again from the whole list).
    pub maintenance: Option<Vec<Window>>,
    /// The ids of the `"role": "connectivity"` assets, when they changed.
    pub connectivity: Option<BTreeSet<String>>,
}

impl ConfigDiff {
    pub fn between(old: &Config, new: &Config) -> ConfigDiff {
        let before: HashMap<&str, &Arc<AssetConfig>> = old.manifest.assets.iter().map(|a| (a.id.as_str(), a)).collect();
        let after: HashMap<&str, &Arc<AssetConfig>> = new.manifest.assets.iter().map(|a| (a.id.as_str(), a)).collect();
        let mut diff = ConfigDiff {
            added_assets: Vec::new(),
            removed_assets: old
                .manifest
                .assets
                .iter()
                .filter(|a| !after.contains_key(a.id.as_str()))
                .map(|a| a.id.clone())
                .collect(),
            changed_assets: Vec::new(),
            unchanged_assets: 0,
            added_channels: BTreeMap::new(),
            removed_channels: Vec::new(),
            changed_channels: BTreeMap::new(),
            policy: (old.notifiers.policy != new.notifiers.policy).then(|| new.notifiers.policy.clone()),
            maintenance: (old.manifest.maintenance != new.manifest.maintenance)
                .then(|| new.manifest.maintenance.clone()),
            connectivity: Some(new.manifest.connectivity()).filter(|now| *now != old.manifest.connectivity()),
        };
        for asset in &new.manifest.assets {
            match before.get(asset.id.as_str()) {
                None => diff.added_assets.push(asset.clone()),
                // The same allocation (see `Manifest::share_unchanged`) is the same asset.
                Some(previous) if !Arc::ptr_eq(previous, asset) && ***previous != **asset => {
                    diff.changed_assets.push(asset.clone())
                }
                Some(_) => diff.unchanged_assets += 1,
            }
        }
        let (old_channels, new_channels) = (&old.notifiers.notifiers, &new.notifiers.notifiers);
        diff.removed_channels = old_channels.keys().filter(|name| !new_channels.contains_key(*name)).cloned().collect();
        for (name, channel) in new_channels {
            match old_channels.get(name) {
                None => {
                    diff.added_channels.insert(name.clone(), channel.clone());
                }
                Some(previous) if previous != channel => {
                    diff.changed_channels.insert(name.clone(), channel.clone());
                }
                Some(_) => {}
            }
        }
        diff
    }

    /// What changed, by name, as the reload API reports it.
    pub fn summary(&self) -> ChangeSummary {
        ChangeSummary {
            assets: Changes {
                added: self.added_assets.iter().map(|a| a.id.clone()).collect(),
                removed: self.removed_assets.clone(),
                changed: self.changed_assets.iter().map(|a| a.id.clone()).collect(),
                unchanged: self.unchanged_assets,
            },
            notifiers: Changes {
                added: self.added_channels.keys().cloned().collect(),
                removed: self.removed_channels.clone(),
                changed: self.changed_channels.keys().cloned().collect(),
                unchanged: 0,
            },
            policy_changed: self.policy.is_some(),
            maintenance_changed: self.maintenance.is_some(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeSummary {
    pub assets: Changes,
    pub notifiers: Changes,
    pub policy_changed: bool,
    /// The manifest's maintenance windows changed.
    pub maintenance_changed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub unchanged: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Manifest, NotifiersConfig};
    use serde_json::json;

    fn asset(id: &str, interval: u64) -> AssetConfig {
        serde_json::from_value(
            json!({"id": id, "assetType": "http", "address": "http://x/", "intervalSeconds": interval}),
        )
        .expect("asset")
    }

    fn channel(url: &str) -> ChannelConfig {
        serde_json::from_value(json!({"type": "webhook", "url": url})).expect("channel")
    }

    fn config(assets: Vec<AssetConfig>, channels: &[(&str, &str)], throttle: u64) -> Config {
        Config {
            manifest: Manifest { assets: assets.into_iter().map(Arc::new).collect(), maintenance: Vec::new() },
            notifiers: NotifiersConfig {
                notifiers: channels.iter().map(|(n, u)| (n.to_string(), channel(u))).collect(),
                policy: NotificationPolicy { throttle_seconds: throttle, ..NotificationPolicy::default() },
            },
            warnings: Vec::new(),
        }
    }

    #[test]
    fn a_change_of_the_connectivity_assets_is_told_apart() {
        let mut gateway = asset("gateway", 60);
        let old = config(vec![gateway.clone(), asset("api", 60)], &[], 300);
        assert_eq!(ConfigDiff::between(&old, &old).connectivity, None);
        gateway.role = Some(crate::asset::Role::Connectivity);
        let new = config(vec![gateway, asset("api", 60)], &[], 300);
        let diff = ConfigDiff::between(&old, &new);
        assert_eq!(diff.connectivity, Some(["gateway".to_string()].into()));
        assert_eq!(diff.changed_assets.len(), 1, "the asset itself changed too");
        assert_eq!(ConfigDiff::between(&new, &old).connectivity, Some(BTreeSet::new()));
    }

    #[test]
    fn a_reload_keeps_one_copy_of_each_unchanged_asset() {
        let running = config(vec![asset("kept", 60), asset("edited", 60)], &[], 300);
        let mut loaded = config(vec![asset("kept", 60), asset("edited", 30), asset("new", 60)], &[], 300);
        loaded.manifest.share_unchanged(&running.manifest);
        let [kept, edited, _] = &loaded.manifest.assets[..] else { panic!("three assets") };
        assert!(Arc::ptr_eq(kept, &running.manifest.assets[0]), "the running copy is shared");
        assert!(!Arc::ptr_eq(edited, &running.manifest.assets[1]));
        let diff = ConfigDiff::between(&running, &loaded);
        assert_eq!((diff.unchanged_assets, diff.changed_assets.len(), diff.added_assets.len()), (1, 1, 1));
    }

    #[test]
    fn assets_and_channels_are_matched_by_id_and_name() {
        let old = config(
            vec![asset("a", 60), asset("b", 60), asset("c", 60)],
            &[("x", "http://x/"), ("y", "http://y/")],
            300,
        );
        let new = config(
            vec![asset("b", 60), asset("c", 30), asset("d", 60)],
            &[("y", "http://y2/"), ("z", "http://z/")],
            300,
        );
        let diff = ConfigDiff::between(&old, &new);
        assert_eq!(diff.removed_assets, ["a"]);
        assert_eq!(diff.added_assets, [Arc::new(asset("d", 60))]);
        assert_eq!(diff.changed_assets, [Arc::new(asset("c", 30))]);
        assert_eq!(diff.unchanged_assets, 1);
        assert_eq!(diff.removed_channels, ["x"]);
        assert_eq!(diff.added_channels.keys().collect::<Vec<_>>(), ["z"]);
        assert_eq!(diff.changed_channels.keys().collect::<Vec<_>>(), ["y"]);
        assert_eq!(diff.policy, None);
    }

    #[test]
    fn the_same_config_changes_nothing_and_a_new_policy_is_noticed() {
        let old = config(vec![asset("a", 60)], &[("x", "http://x/")], 300);
        let same = ConfigDiff::between(&old, &old.clone());
        assert_eq!(same.summary().assets.unchanged, 1);
        assert!(same.added_assets.is_empty() && same.changed_assets.is_empty() && same.removed_assets.is_empty());
        let new = config(vec![asset("a", 60)], &[("x", "http://x/")], 0);
        assert_eq!(ConfigDiff::between(&old, &new).policy.map(|p| p.throttle_seconds), Some(0));
    }
}
