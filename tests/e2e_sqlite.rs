//! The end-to-end suite on SQLite, statusd's embedded default, plus the tests that do not
//! depend on the database (probes, config errors, extreme values).

#[path = "e2e/browser.rs"]
mod browser;
#[path = "e2e/config_errors.rs"]
mod config_errors;
#[path = "e2e/dependencies.rs"]
mod dependencies;
#[path = "e2e/disk_full.rs"]
mod disk_full;
#[path = "e2e/mod.rs"]
mod e2e;
#[path = "e2e/extremes.rs"]
mod extremes;
#[path = "e2e/flapping.rs"]
mod flapping;
#[path = "e2e/grouping.rs"]
mod grouping;
#[path = "e2e/http_probe.rs"]
mod http_probe;
#[path = "e2e/ops.rs"]
mod ops;
#[path = "e2e/rate_limits.rs"]
mod rate_limits;

use e2e::databases::Backend;

/// The backend every scenario of this binary runs on.
async fn backend() -> Option<Backend> {
    Some(Backend::Sqlite)
}
