//! The end-to-end suite: statusd started as a user starts it, against real servers on
//! loopback. `tests/e2e_sqlite.rs` runs it on SQLite and `tests/e2e_postgres.rs` on
//! PostgreSQL, each in its own process, so that the process-wide metrics of one run never
//! mix with the other's.

// Each binary uses a different part of the shared helpers.
#![allow(dead_code)]

pub mod databases;
pub mod harness;

mod api;
mod channels;
mod chaos;
mod degraded;
mod escalation;
mod faults;
mod incident_updates;
mod incidents;
mod inputs;
mod lifecycle;
mod maintenance;
mod metrics_modes;
mod network;
mod notifications;
mod outbox;
mod paging;
mod push;
mod reload;
mod retention;
mod secrets;
mod sla;
mod statuspage;
mod store;
