//! What the actors' unit tests share: the services of a statusd that never probes (no worker
//! slots, so a probe waits until the test ends it) and assets from JSON.

use std::sync::Arc;

use serde_json::{Value, json};

use super::persistence::Backlog;
use super::{Directory, Services};
use crate::asset::AssetConfig;
use crate::settings::Settings;

/// Services with no worker slot: every probe started waits for one until the test is over.
pub(crate) fn services() -> Arc<Services> {
    let settings = Settings::default().persistence;
    let directory = Directory::new(Arc::new(Backlog::new(1000)), settings.batch_size);
    Arc::new(Services::new(directory, 0, settings).expect("HTTP clients"))
}

/// An HTTP asset (to a port nothing listens on) with `settings` merged in.
pub(crate) fn http_asset(id: &str, settings: Value) -> Arc<AssetConfig> {
    let mut asset = json!({"id": id, "assetType": "http", "address": "http://127.0.0.1:9/"});
    if let (Some(asset), Some(settings)) = (asset.as_object_mut(), settings.as_object()) {
        asset.extend(settings.clone());
    }
    let mut config: AssetConfig = serde_json::from_value(asset).expect("an asset");
    config.name = config.id.clone();
    Arc::new(config)
}
