//! Push (heartbeat) assets: what cannot be probed reports in. A cron job or batch task calls
//! `POST|GET /api/push/{id}?token=…` (optionally `&status=down&msg=…`); the asset is down when
//! no push arrived within `intervalSeconds` plus `graceSeconds`. The asset actor keeps the
//! deadline (see `actors/asset.rs`); this file holds the settings and the token check.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::MAX_INTERVAL_SECONDS;
use crate::redact::Secret;
use crate::report::{Bound, Report};

/// Shortest token accepted: a push URL is often pasted into crontabs and CI settings, so it
/// must not be guessable.
const MIN_TOKEN_CHARS: usize = 16;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushSpec {
    pub token: Secret,
    /// How late a push may be before the asset counts as missing it.
    #[serde(default = "default_grace_seconds")]
    pub grace_seconds: u64,
}

fn default_grace_seconds() -> u64 {
    5
}

impl PushSpec {
    /// A push may be as late as the longest interval.
    pub const BOUNDS: &'static [Bound] = &[Bound::new("graceSeconds", 0, MAX_INTERVAL_SECONDS)];

    pub(super) fn validate(&self, address: &str, path: &str, report: &mut Report<'_>) {
        if !address.is_empty() {
            report.problem(format!("{path}.address"), "a push asset has no address: it is called, it does not call");
        }
        let chars = self.token.expose().chars().count();
        if chars < MIN_TOKEN_CHARS {
            report.problem(
                format!("{path}.token"),
                format!(
                    "must be at least {MIN_TOKEN_CHARS} characters (has {chars}): the push URL must not be guessable"
                ),
            );
        }
    }

    /// Compares in constant time, so the answer's timing tells nothing about the token.
    pub fn accepts(&self, token: &str) -> bool {
        self.token.expose().as_bytes().ct_eq(token.as_bytes()).into()
    }

    /// How long after a push (or the start) the next one must arrive.
    pub fn deadline(&self, interval_seconds: u64) -> std::time::Duration {
        std::time::Duration::from_secs(interval_seconds.saturating_add(self.grace_seconds))
    }
}
