//! What every probe test needs: an asset from JSON, validated as a config file would be.

use serde_json::{Value, json};
use statusd::{AssetConfig, Manifest};
use statusd::{ProbeContext, ProbeResult};

/// The asset as the config loader makes it; panics with every problem if it is invalid.
pub fn asset(fields: Value) -> AssetConfig {
    let mut asset = json!({"id": "probe", "intervalSeconds": 5, "timeoutSeconds": 1});
    for (key, value) in fields.as_object().expect("an object").iter() {
        asset[key] = value.clone();
    }
    match Manifest::from_value(&json!({"assets": [asset]}), "test") {
        Ok(mut manifest) => std::sync::Arc::unwrap_or_clone(manifest.assets.remove(0)),
        Err(problems) => panic!("invalid asset: {problems}"),
    }
}

/// The problems the config loader finds in one asset, as `path: message` lines.
pub fn problems(fields: Value) -> Vec<String> {
    let mut asset = json!({"id": "probe", "intervalSeconds": 5, "timeoutSeconds": 1});
    for (key, value) in fields.as_object().expect("an object").iter() {
        asset[key] = value.clone();
    }
    match Manifest::from_value(&json!({"assets": [asset]}), "test") {
        Ok(_) => Vec::new(),
        Err(problems) => problems.0.iter().map(|p| format!("{}: {}", p.path, p.message)).collect(),
    }
}

/// Probes once, as the asset's actor would.
pub async fn probe_once(fields: Value) -> ProbeResult {
    let asset = asset(fields);
    let context = ProbeContext::new().expect("probe clients");
    asset.check(&context).await
}
