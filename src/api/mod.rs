//! The HTTP API: axum handlers, one file per resource, and the whole surface in `routes.rs`.
//!
//! Live state comes straight from the actors (asked with a timeout, so one slow or dead actor
//! never hangs a request); history comes from the store.

mod actors;
mod assets;
mod badges;
mod cluster;
mod debug;
mod demo;
mod error;
mod feed;
mod health;
mod incidents;
mod log_level;
mod maintenance;
mod metrics;
mod middleware;
mod notifications;
mod notifiers;
pub mod openapi;
mod push;
mod query;
mod reload;
pub mod routes;
pub mod server;
pub mod sla;
mod status;
mod version;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use ractor::rpc::CallResult;
use ractor::{ActorRef, RactorErr, RpcReplyPort};

use crate::actors::Services;
use crate::actors::supervisor::SupervisorMsg;
use crate::statuspage::StatusPage;
use crate::store::Store;

pub use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    pub supervisor: ActorRef<SupervisorMsg>,
    pub store: Store,
    pub services: Arc<Services>,
    pub metrics: PrometheusHandle,
    pub lifecycle: Arc<Lifecycle>,
    /// Required as a bearer token by mutating routes, when set.
    pub api_token: Option<Arc<str>>,
    pub enable_chaos: bool,
    /// Origins allowed to call the API from a browser; empty: no CORS headers.
    pub cors_origins: Vec<String>,
    /// Serve the demo target and webhook (see `api/demo.rs`).
    pub demo: bool,
    /// The status page's settings and cached history (`api/status.rs`, `api/feed.rs`).
    pub statuspage: Arc<StatusPage>,
    /// `[sla] default_target`: the SLA target, in percent, of assets without `slaTarget`.
    pub sla_default_target: f64,
}

/// How long a handler waits for the Supervisor. It answers from its own state at once; this
/// only bounds a stuck or flooded tree, so that the route still answers (503).
const SUPERVISOR_TIMEOUT: Duration = Duration::from_secs(2);

impl ApiState {
    /// Asks the Supervisor, e.g. `state.ask(SupervisorMsg::Actors)` or
    /// `state.ask(|reply| SupervisorMsg::Asset(id, reply))`; 503 when it does not answer within
    /// [`SUPERVISOR_TIMEOUT`].
    async fn ask<R: Send + 'static>(
        &self,
        message: impl FnOnce(RpcReplyPort<R>) -> SupervisorMsg,
    ) -> Result<R, ApiError> {
        ask(&self.supervisor, message).await
    }
}

async fn ask<R: Send + 'static>(
    supervisor: &ActorRef<SupervisorMsg>,
    message: impl FnOnce(RpcReplyPort<R>) -> SupervisorMsg,
) -> Result<R, ApiError> {
    let error = match supervisor.call(message, Some(SUPERVISOR_TIMEOUT)).await {
        Ok(CallResult::Success(answer)) => return Ok(answer),
        Ok(failed) => RactorErr::<SupervisorMsg>::from(failed),
        Err(error) => RactorErr::from(error),
    };
    Err(ApiError::Unavailable(format!("the supervisor did not answer: {error}")))
}

/// Whether the process is on its way out; readiness reports 503 from then on.
#[derive(Debug, Default)]
pub struct Lifecycle {
    stopping: AtomicBool,
}

impl Lifecycle {
    pub fn begin_shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;
    use ractor::{Actor, ActorProcessingErr};

    use super::*;

    /// A supervisor that takes every message and never answers.
    struct Silent;

    impl Actor for Silent {
        type Msg = SupervisorMsg;
        type State = Vec<SupervisorMsg>;
        type Arguments = ();

        async fn pre_start(&self, _: ActorRef<SupervisorMsg>, _: ()) -> Result<Self::State, ActorProcessingErr> {
            Ok(Vec::new())
        }

        async fn handle(
            &self,
            _: ActorRef<SupervisorMsg>,
            message: SupervisorMsg,
            held: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            held.push(message);
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_supervisor_that_does_not_answer_in_time_is_a_503_json_answer() {
        let (supervisor, handle) = Actor::spawn(None, Silent, ()).await.expect("spawns");
        let started = tokio::time::Instant::now();
        let error = ask(&supervisor, SupervisorMsg::Actors).await.expect_err("no answer");
        assert_eq!(started.elapsed(), SUPERVISOR_TIMEOUT);
        let response = error.into_response();
        assert_eq!(response.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(response.into_body(), 4096).await.expect("body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert!(body["error"].as_str().is_some_and(|e| e.starts_with("the supervisor did not answer")), "{body}");
        supervisor.stop(None);
        handle.await.expect("stops");
    }
}
