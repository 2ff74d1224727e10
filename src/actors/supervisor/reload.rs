//! Reload: load the config and settings again, and apply only the difference to the tree.

use std::collections::HashMap;
use std::sync::Arc;

use ractor::{ActorRef, RpcReplyPort};
use serde::Serialize;

use super::children::{Child, ChildRef, ChildSpec};
use super::shutdown::STOP_NOTIFIERS;
use super::{SupervisorMsg, SupervisorState};
use crate::actors::asset::AssetMsg;
use crate::actors::incidents::{IncidentEvent, metadata_of};
use crate::actors::notifier::ChannelQueue;
use crate::config::diff::{ChangeSummary, ConfigDiff};
use crate::config::{Config, Problems};
use crate::dependencies::DependencyGraph;
use crate::settings::Settings;
use crate::store::StoreOp;
use crate::telemetry::names;

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

/// Whoever waits for a reload's outcome (the API), if anyone.
type ReloadReply = Option<RpcReplyPort<Result<ReloadReport, ReloadError>>>;

/// The reloads asked for. One loads at a time; those asked for meanwhile wait, and all of them
/// are served by one load that starts when the current one ends, so that every asker sees files
/// read after it asked, and a burst of edits is one load, not one each.
#[derive(Default)]
pub(super) struct Reloads {
    loading: bool,
    waiting: Vec<(ReloadTrigger, ReloadReply)>,
}

/// What one load read, and who asked for it.
pub struct Loaded {
    askers: Vec<(ReloadTrigger, ReloadReply)>,
    outcome: Result<(Settings, Config), ReloadError>,
}

/// Reads and validates the settings and both config files: blocking file I/O and parsing, run
/// on tokio's blocking pool so a large manifest or a slow filesystem stalls neither the
/// runtime threads nor the Supervisor's mailbox. The files are the running ones (changing
/// which files needs a restart).
fn load(running: &Settings) -> Result<(Settings, Config), ReloadError> {
    let settings = match running.reload() {
        Some(Ok(settings)) => settings,
        Some(Err(error)) => return Err(ReloadError::Settings(error.to_string())),
        None => running.clone(),
    };
    let config = Config::load(&running.manifest, &running.notifiers).map_err(ReloadError::Config)?;
    Ok((settings, config))
}

impl SupervisorState {
    /// Starts a load, or, if one is under way, has this reload wait for the next one.
    pub(super) fn request_reload(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        trigger: ReloadTrigger,
        reply: ReloadReply,
    ) {
        if self.shutting_down {
            return;
        }
        self.reloads.waiting.push((trigger, reply));
        if !self.reloads.loading {
            self.start_load(myself);
        }
    }

    fn start_load(&mut self, myself: &ActorRef<SupervisorMsg>) {
        self.reloads.loading = true;
        let askers = std::mem::take(&mut self.reloads.waiting);
        let running = self.settings.clone();
        let myself = myself.clone();
        tokio::spawn(async move {
            let outcome = tokio::task::spawn_blocking(move || load(&running))
                .await
                .unwrap_or_else(|error| Err(ReloadError::Settings(format!("loading the config failed: {error}"))));
            // The Supervisor is gone only when statusd is stopping: nothing left to reload.
            let _ = myself.cast(SupervisorMsg::Loaded(Box::new(Loaded { askers, outcome })));
        });
    }

    /// Applies what a load read, answers everyone who asked for it, and starts the next load if
    /// reloads were asked for meanwhile.
    pub(super) async fn apply_loaded(&mut self, myself: &ActorRef<SupervisorMsg>, loaded: Loaded) {
        self.reloads.loading = false;
        if self.shutting_down {
            return;
        }
        let triggers: Vec<ReloadTrigger> = loaded.askers.iter().map(|(trigger, _)| *trigger).collect();
        // A load is started only for someone who asked.
        let Some(&first) = triggers.first() else { return };
        let outcome = match loaded.outcome {
            // The first asker's trigger; each asker's answer names its own.
            Ok((settings, config)) => Ok(self.reload(myself, first, settings, config).await),
            Err(error) => Err(error),
        };
        self.services.tree.set_reload(outcome.as_ref().err().map(ToString::to_string));
        match &outcome {
            Ok(report) => {
                metrics::counter!(names::CONFIG_RELOADS_TOTAL, "result" => "success").increment(1);
                tracing::info!(trigger = ?first, askers = triggers.len(), changes = ?report.changes, restart_required = ?report.restart_required, "config reloaded");
            }
            Err(error) => {
                metrics::counter!(names::CONFIG_RELOADS_TOTAL, "result" => "error").increment(1);
                tracing::error!(trigger = ?first, askers = triggers.len(), %error, "config reload refused; nothing changed");
            }
        }
        for (trigger, reply) in loaded.askers {
            if let Some(reply) = reply {
                let _ = reply.send(outcome.clone().map(|report| ReloadReport { trigger, ..report }));
            }
        }
        if !self.reloads.waiting.is_empty() {
            self.start_load(myself);
        }
    }

    /// Applies valid new settings and config, and says what changed.
    async fn reload(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        trigger: ReloadTrigger,
        settings: Settings,
        mut config: Config,
    ) -> ReloadReport {
        config.log_warnings();
        let mut restart_required = self.settings.needs_restart(&settings);
        if settings.log_level != self.settings.log_level {
            match crate::telemetry::set_log_level(&settings.log_level) {
                Ok(()) => tracing::info!(level = %settings.log_level, "log level changed"),
                Err(error) => restart_required.push(format!("log_level: {error}")),
            }
        }
        config.manifest.share_unchanged(&self.config.manifest);
        let diff = ConfigDiff::between(&self.config, &config);
        self.apply(myself, &diff, &config).await;
        self.config = config;
        // Only the log level applies live; the rest keeps running as it started.
        self.settings.log_level = settings.log_level;
        let warnings = self.config.warnings.iter().map(ToString::to_string).collect();
        ReloadReport { trigger, changes: diff.summary(), restart_required, warnings }
    }

    /// Applies a diff: only what changed is touched.
    async fn apply(&mut self, myself: &ActorRef<SupervisorMsg>, diff: &ConfigDiff, config: &Config) {
        let directory = &self.services.directory;
        let assets_changed =
            !diff.added_assets.is_empty() || !diff.removed_assets.is_empty() || !diff.changed_assets.is_empty();
        if assets_changed {
            // Queued ahead of the new assets' first results, so their rows exist first.
            // Only the incidents role's holder (alone on the database, that is this instance) says
            // which assets are removed: another replica may run a different config for a while.
            let mark_removed = self.services.cluster.holds_incidents_role();
            directory.persist_change(StoreOp::SyncAssets(Arc::new(config.manifest.assets.clone()), mark_removed));
        }
        if assets_changed {
            self.services.set_template_assets(&config.manifest.assets);
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
            let config = Arc::clone(asset);
            if let Some(child) = self.children.get_mut(&name) {
                if let ChildSpec::Asset { config: spec, .. } = &mut child.spec {
                    *spec = Arc::clone(&config);
                }
                if let Some(ChildRef::Asset(actor)) = &child.running {
                    let _ = actor.cast(AssetMsg::Update(config));
                }
            }
            self.index(&name);
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
            self.services.maintenance.set_channels(policy.on_maintenance.clone());
        }
        if diff.policy.is_some() || assets_changed {
            // Routes match on metadata: a changed asset may move to another route.
            self.services.directory.incidents(IncidentEvent::Policy {
                policy: config.notifiers.policy.clone(),
                metadata: metadata_of(&config.manifest.assets),
            });
        }
        let graph = DependencyGraph::of(&config.manifest.assets);
        self.services.directory.incidents(IncidentEvent::Dependencies(Arc::new(graph)));
        if diff.maintenance.is_some() || assets_changed {
            // Before new assets start: their first result already knows its windows.
            self.services.maintenance.configure(&config.manifest);
        }
        if let Some(members) = &diff.connectivity {
            // Before the new assets start, so that their first failures are judged by it.
            self.services.connectivity.set_members(members.iter().map(String::as_str));
            self.services.directory.incidents(IncidentEvent::Connectivity(members.clone()));
        }
        let added = diff
            .added_assets
            .iter()
            .map(|asset| ChildSpec::Asset { config: Arc::clone(asset), memory: Arc::default() })
            .collect();
        self.start_assets(myself, added).await;
        // Keep the listing in config order.
        let position: HashMap<&str, usize> =
            config.manifest.assets.iter().enumerate().map(|(i, a)| (a.id.as_str(), i)).collect();
        self.order.sort_by_key(|name| match name.strip_prefix("asset:") {
            Some(id) => (1, position.get(id).copied().unwrap_or(usize::MAX)),
            None => (0, 0),
        });
    }
}
