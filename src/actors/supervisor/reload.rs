//! Reload: load the config and settings again, and apply only the difference to the tree.

use std::collections::HashMap;
use std::sync::Arc;

use ractor::ActorRef;
use serde::Serialize;

use super::children::{Child, ChildRef, ChildSpec};
use super::shutdown::STOP_NOTIFIERS;
use super::{SupervisorMsg, SupervisorState};
use crate::actors::asset::AssetMsg;
use crate::actors::incidents::IncidentEvent;
use crate::actors::notifier::ChannelQueue;
use crate::config::diff::{ChangeSummary, ConfigDiff};
use crate::config::{Config, Problems};
use crate::store::StoreOp;

/// What asked for a reload, for logs and the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReloadTrigger {
    FileChange,
    Signal,
    Api,
}

/// A reload that was applied.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReloadReport {
    pub trigger: ReloadTrigger,
    #[serde(flatten)]
    pub changes: ChangeSummary,
    /// Settings that changed but only take effect after a restart.
    pub restart_required: Vec<String>,
    /// What the new config does that may not be meant, as `check-config` prints it.
    pub warnings: Vec<String>,
}

/// A reload that changed nothing, and why.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(Problems),
    #[error("{0}")]
    Settings(String),
}

impl SupervisorState {
    pub(super) async fn reload(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        trigger: ReloadTrigger,
    ) -> Result<ReloadReport, ReloadError> {
        // Settings first: the files to load are the running ones (changing them needs a restart).
        let settings = match self.settings.reload() {
            Some(Ok(settings)) => settings,
            Some(Err(error)) => return Err(ReloadError::Settings(error.to_string())),
            None => self.settings.clone(),
        };
        let config = Config::load(&self.settings.manifest, &self.settings.notifiers).map_err(ReloadError::Config)?;
        config.log_warnings();
        let mut restart_required = self.settings.needs_restart(&settings);
        if settings.log_level != self.settings.log_level {
            match crate::telemetry::set_log_level(&settings.log_level) {
                Ok(()) => tracing::info!(level = %settings.log_level, "log level changed"),
                Err(error) => restart_required.push(format!("log_level: {error}")),
            }
        }
        let diff = ConfigDiff::between(&self.config, &config);
        self.apply(myself, &diff, &config).await;
        self.config = config;
        // Only the log level applies live; the rest keeps running as it started.
        self.settings.log_level = settings.log_level;
        let warnings = self.config.warnings.iter().map(ToString::to_string).collect();
        Ok(ReloadReport { trigger, changes: diff.summary(), restart_required, warnings })
    }

    /// Applies a diff: only what changed is touched.
    async fn apply(&mut self, myself: &ActorRef<SupervisorMsg>, diff: &ConfigDiff, config: &Config) {
        let directory = &self.services.directory;
        if !diff.added_assets.is_empty() || !diff.removed_assets.is_empty() || !diff.changed_assets.is_empty() {
            // Queued ahead of the new assets' first results, so their rows exist first.
            directory.persist_change(StoreOp::SyncAssets(Arc::new(config.manifest.assets.clone())));
        }
        {
            let mut retired = self.services.retired_assets.write();
            retired.extend(diff.removed_assets.iter().cloned());
            for asset in &diff.added_assets {
                retired.remove(&asset.id);
            }
        }
        for id in &diff.removed_assets {
            if let Some(child) = self.retire(&format!("asset:{id}"))
                && let Some(running) = child.running
            {
                running.cell().stop(Some("removed from the config".into()));
            }
            // Its open incident closes as removed; nobody is told it recovered.
            self.services.directory.incidents(IncidentEvent::Removed { asset_id: id.clone() });
        }
        for asset in &diff.changed_assets {
            let name = format!("asset:{}", asset.id);
            let config = Arc::new(asset.clone());
            if let Some(child) = self.children.get_mut(&name) {
                if let ChildSpec::Asset { config: spec, .. } = &mut child.spec {
                    *spec = Arc::clone(&config);
                }
                if let Some(ChildRef::Asset(actor)) = &child.running {
                    let _ = actor.cast(AssetMsg::Update(config));
                }
            }
        }
        for name in &diff.removed_channels {
            self.services.directory.remove_notifier(name);
            if let Some(child) = self.retire(&format!("notifier:{name}"))
                && let Some(running) = child.running
            {
                // Drained in the background: what it still has to send goes out.
                let cell = running.cell();
                tokio::spawn(async move {
                    let _ = cell.drain_and_wait(Some(STOP_NOTIFIERS)).await;
                });
            }
        }
        for (name, channel) in &diff.changed_channels {
            if let Some(Child { spec: ChildSpec::Notifier { queue }, .. }) =
                self.children.get(&format!("notifier:{name}"))
            {
                queue.update(channel.clone());
            }
        }
        for (name, channel) in &diff.added_channels {
            self.start_child(myself, ChildSpec::Notifier { queue: ChannelQueue::new(name, channel.clone()) }).await;
        }
        if let Some(policy) = &diff.policy {
            self.services.directory.incidents(IncidentEvent::Policy(policy.clone()));
        }
        for asset in &diff.added_assets {
            let spec = ChildSpec::Asset { config: Arc::new(asset.clone()), memory: Arc::default() };
            self.start_child(myself, spec).await;
        }
        // Keep the listing in config order.
        let position: HashMap<&str, usize> =
            config.manifest.assets.iter().enumerate().map(|(i, a)| (a.id.as_str(), i)).collect();
        self.order.sort_by_key(|name| match name.strip_prefix("asset:") {
            Some(id) => (1, position.get(id).copied().unwrap_or(usize::MAX)),
            None => (0, 0),
        });
    }
}
