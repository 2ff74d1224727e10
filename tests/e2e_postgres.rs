//! The end-to-end suite on PostgreSQL, plus real database outages on a throwaway server.
//! Where PostgreSQL is not reachable the tests say so loudly and skip, unless
//! `STATUSD_REQUIRE_POSTGRES` is set (as CI does), in which case they fail.

#[path = "e2e/mod.rs"]
mod e2e;
use e2e::databases::{Backend, postgres_available};

/// The backend every scenario of this binary runs on; None skips the scenario.
async fn backend() -> Option<Backend> {
    postgres_available().await.then_some(Backend::Postgres)
}

#[path = "e2e/cluster.rs"]
mod cluster;
#[path = "e2e/failover.rs"]
mod failover;
#[path = "e2e/outage.rs"]
mod outage;
