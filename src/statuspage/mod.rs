//! The public status page: `GET /` (HTML), `GET /api/status` (the same as JSON) and
//! `/feed.atom` (the incidents), served by `api/status.rs` and `api/feed.rs`.
//!
//! - `history`: uptime, day bars and response times of every asset, computed in bulk from the
//!   hourly rollups and cached (they change at most hourly), so a request only adds live state;
//! - `model`: what the page shows, as data, from live statuses, history, incidents and
//!   maintenance (pure; public assets only, addresses masked out of summaries);
//! - `render`: HTML (askama), the SVG sparkline and the Atom feed.

pub mod history;
pub mod model;
pub mod render;

use std::sync::Arc;

use crate::settings::StatusPageSettings;

/// What the status page routes share: its settings and the cached history.
pub struct StatusPage {
    pub settings: StatusPageSettings,
    pub history: Arc<history::HistoryCache>,
}

impl StatusPage {
    pub fn new(settings: StatusPageSettings) -> StatusPage {
        StatusPage { settings, history: Arc::default() }
    }
}
