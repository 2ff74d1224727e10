//! The HTTP API: axum handlers, one file per resource, and the whole surface in `routes.rs`.
//!
//! Live state comes straight from the actors (asked with a timeout, so one slow or dead actor
//! never hangs a request); history comes from the store.

mod actors;
mod assets;
mod debug;
mod demo;
mod error;
mod health;
mod incidents;
mod log_level;
mod metrics;
mod middleware;
pub mod openapi;
mod push;
mod reload;
pub mod routes;
pub mod server;
mod version;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use metrics_exporter_prometheus::PrometheusHandle;
use ractor::ActorRef;

use crate::actors::Services;
use crate::actors::supervisor::SupervisorMsg;
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
