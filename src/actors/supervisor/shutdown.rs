//! Shutdown: the children stop in order, each stage within its own time.

use std::time::Duration;

use ractor::ActorCell;

use super::SupervisorState;
use super::children::ChildRef;
use crate::actors::incidents::IncidentEvent;

/// How long each stage of shutdown may take; together they stay under the 10 s promise.
const STOP_ASSETS: Duration = Duration::from_secs(1);
const STOP_INCIDENTS: Duration = Duration::from_secs(1);
pub(super) const STOP_NOTIFIERS: Duration = Duration::from_millis(2500);
const STOP_PERSISTENCE: Duration = Duration::from_millis(4500);

impl SupervisorState {
    pub(super) async fn shutdown(&mut self) {
        self.shutting_down = true;
        // No probe starts from here on; probes waiting for a slot give up.
        self.services.workers.close();
        let running = |kind: &'static str| -> Vec<ActorCell> {
            self.order
                .iter()
                .filter_map(|name| self.children.get(name))
                .filter(|child| child.spec.kind() == kind)
                .filter_map(|child| child.running.as_ref().map(ChildRef::cell))
                .collect()
        };
        for cell in running("config") {
            cell.stop(None);
        }
        let assets = running("asset");
        futures::future::join_all(assets.iter().map(|cell| cell.stop_and_wait(None, Some(STOP_ASSETS)))).await;
        // Drain, not stop: what is already queued (the last state changes, notifications and
        // results) is handled before each actor exits; the last event sends what waits to be
        // grouped.
        self.services.directory.incidents(IncidentEvent::Stopping);
        for cell in running("incidents") {
            let _ = cell.drain_and_wait(Some(STOP_INCIDENTS)).await;
        }
        let notifiers = running("notifier");
        futures::future::join_all(notifiers.iter().map(|cell| cell.drain_and_wait(Some(STOP_NOTIFIERS)))).await;
        for cell in running("persistence") {
            if cell.drain_and_wait(Some(STOP_PERSISTENCE)).await.is_err() {
                tracing::error!(actor = "persistence", "did not finish writing in time");
            }
        }
    }
}
