//! The public status page: `GET /` (HTML), `GET /api/status` (the same as JSON) and
//! `/feed.atom` (the incidents), served by `api/status.rs` and `api/feed.rs`.
//!
//! - `history`: uptime, day bars and response times of every asset, computed in bulk from the
//!   hourly rollups and cached (they change at most hourly), so a request only adds live state;
//! - `model`: what the page shows, as data, from live statuses, history, incidents and
//!   maintenance (pure; public assets only, addresses masked out of summaries);
//! - `render`: HTML (askama), the SVG sparkline and the Atom feed.
//!
//! Two more caches keep a request cheap with thousands of assets: each asset's numbers as shown
//! (and their HTML) are made once per computation of the history ([`StatusPage::views`]), and
//! the page's compressed bytes are kept while the page stays the same byte for byte
//! ([`StatusPage::encoded`]): compressing megabytes of markup costs more than making them.

pub mod history;
pub mod model;
pub mod render;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;

use crate::asset::AssetConfig;
use crate::settings::StatusPageSettings;
use history::History;
use model::HistoryView;

/// What the status page routes share: its settings and the caches.
pub struct StatusPage {
    pub settings: StatusPageSettings,
    pub history: Arc<history::HistoryCache>,
    views: Mutex<Option<Views>>,
    page: Mutex<Option<Arc<EncodedPage>>>,
    json: Mutex<Option<Arc<EncodedPage>>>,
}

/// Which of the two documents made from the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    /// `GET /`
    Html,
    /// `GET /api/status`
    Json,
}

/// The views made from one computation of the history.
struct Views {
    computed_at: DateTime<Utc>,
    by_asset: Arc<HashMap<String, Arc<HistoryView>>>,
}

/// How the page travels, as the client's `Accept-Encoding` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Brotli,
    Gzip,
    Identity,
}

impl Encoding {
    /// Brotli when accepted, else gzip, else none (a `q=0` refuses).
    pub fn preferred(accept_encoding: &str) -> Encoding {
        if Encoding::accepts(accept_encoding, "br") {
            Encoding::Brotli
        } else if Encoding::accepts(accept_encoding, "gzip") {
            Encoding::Gzip
        } else {
            Encoding::Identity
        }
    }

    /// Whether an `Accept-Encoding` value (RFC 9110, section 12.5.3) accepts the coding `name`,
    /// by name or `*`, and not with `q=0`.
    pub fn accepts(accept_encoding: &str, name: &str) -> bool {
        accept_encoding.split(',').any(|part| {
            let mut pieces = part.split(';').map(str::trim);
            let coding = pieces.next().unwrap_or_default();
            let refused =
                pieces.any(|p| p.replace(' ', "").strip_prefix("q=").and_then(|q| q.parse::<f64>().ok()) == Some(0.0));
            (coding.eq_ignore_ascii_case(name) || coding == "*") && !refused
        })
    }

    /// The `Content-Encoding` value; None for identity.
    pub fn header(self) -> Option<&'static str> {
        match self {
            Encoding::Brotli => Some("br"),
            Encoding::Gzip => Some("gzip"),
            Encoding::Identity => None,
        }
    }
}

/// One rendering of the page and its compressed forms, made when first asked for.
pub struct EncodedPage {
    fingerprint: u64,
    html: Bytes,
    brotli: OnceLock<Bytes>,
    gzip: OnceLock<Bytes>,
}

impl EncodedPage {
    /// The page in `encoding`, compressing it the first time (CPU work: call off the runtime).
    pub fn body(&self, encoding: Encoding) -> Bytes {
        match encoding {
            Encoding::Identity => self.html.clone(),
            Encoding::Brotli => self.brotli.get_or_init(|| brotli(&self.html)).clone(),
            Encoding::Gzip => self.gzip.get_or_init(|| gzip(&self.html, flate2::Compression::best()).into()).clone(),
        }
    }
}

/// Brotli quality 5, a 4 MiB window: about a fortieth of the page's size in some 40 ms for the
/// page of 1,000 assets (the window reaches back over many nearly identical assets).
fn brotli(input: &[u8]) -> Bytes {
    let mut output = Vec::with_capacity(input.len() / 20);
    let params = brotli::enc::BrotliEncoderParams { quality: 5, lgwin: 22, ..Default::default() };
    // Writing into a Vec cannot fail.
    let _ = brotli::BrotliCompress(&mut &input[..], &mut output, &params);
    output.into()
}

/// `input` gzipped (RFC 1952) at `level`: the page at the best level, made once and served
/// many times; `/metrics` at the fastest, made for one scrape.
pub fn gzip(input: &[u8], level: flate2::Compression) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(input.len() / 10), level);
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(input);
    encoder.finish().unwrap_or_default()
}

impl StatusPage {
    pub fn new(settings: StatusPageSettings) -> StatusPage {
        StatusPage {
            settings,
            history: Arc::default(),
            views: Mutex::new(None),
            page: Mutex::new(None),
            json: Mutex::new(None),
        }
    }

    /// Each asset's numbers as shown (with their HTML), made once per computation of `history`
    /// for the assets it is asked about; made again when the history is newer or an asset is new.
    pub fn views(&self, history: &History, configs: &[&AssetConfig]) -> Arc<HashMap<String, Arc<HistoryView>>> {
        if let Some(views) = &*self.views.lock()
            && views.computed_at == history.computed_at
            && configs.iter().all(|config| views.by_asset.contains_key(&config.id))
        {
            return Arc::clone(&views.by_asset);
        }
        let started = std::time::Instant::now();
        let by_asset: HashMap<String, Arc<HistoryView>> = model::history_views(configs.iter().copied(), history)
            .into_iter()
            .map(|(id, mut view)| {
                view.html = render::history_fragment(&view).unwrap_or_else(|error| {
                    tracing::error!(asset_id = %id, %error, "an asset's history did not render");
                    String::new()
                });
                (id, Arc::new(view))
            })
            .collect();
        let by_asset = Arc::new(by_asset);
        tracing::debug!(
            assets = by_asset.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "status page views made"
        );
        *self.views.lock() = Some(Views { computed_at: history.computed_at, by_asset: Arc::clone(&by_asset) });
        by_asset
    }

    /// The `document` (`text`) ready to send: the same bytes (and their compressed forms) as
    /// last time when nothing in it changed, else a new entry.
    pub fn encoded(&self, document: Document, text: String) -> Arc<EncodedPage> {
        let html = text;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        html.hash(&mut hasher);
        let fingerprint = hasher.finish();
        let mut last = match document {
            Document::Html => self.page.lock(),
            Document::Json => self.json.lock(),
        };
        if let Some(page) = &*last
            && page.fingerprint == fingerprint
            && page.html.len() == html.len()
        {
            return Arc::clone(page);
        }
        let page =
            Arc::new(EncodedPage { fingerprint, html: html.into(), brotli: OnceLock::new(), gzip: OnceLock::new() });
        *last = Some(Arc::clone(&page));
        page
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn the_encoding_follows_accept_encoding() {
        assert_eq!(Encoding::preferred("gzip, deflate, br, zstd"), Encoding::Brotli);
        assert_eq!(Encoding::preferred("gzip"), Encoding::Gzip);
        assert_eq!(Encoding::preferred("br;q=0, gzip;q=0.8"), Encoding::Gzip);
        assert_eq!(Encoding::preferred("br; q=0.0"), Encoding::Identity);
        assert_eq!(Encoding::preferred(""), Encoding::Identity);
        assert_eq!(Encoding::preferred("identity"), Encoding::Identity);
        assert_eq!(Encoding::preferred("*"), Encoding::Brotli);
    }

    #[test]
    fn the_same_page_is_compressed_once_and_decompresses_to_itself() {
        let page = StatusPage::new(StatusPageSettings::default());
        let html = "<p>up</p>".repeat(1000);
        let first = page.encoded(Document::Html, html.clone());
        let again = page.encoded(Document::Html, html.clone());
        assert!(Arc::ptr_eq(&first, &again));
        assert!(!Arc::ptr_eq(&first, &page.encoded(Document::Json, html.clone())));
        assert!(!Arc::ptr_eq(&first, &page.encoded(Document::Html, format!("{html}!"))));
        let mut unzipped = String::new();
        flate2::read::GzDecoder::new(&first.body(Encoding::Gzip)[..]).read_to_string(&mut unzipped).expect("gzip");
        assert_eq!(unzipped, html);
        let mut unbrotli = Vec::new();
        brotli::BrotliDecompress(&mut &first.body(Encoding::Brotli)[..], &mut unbrotli).expect("brotli");
        assert_eq!(unbrotli, html.as_bytes());
        assert!(first.body(Encoding::Brotli).len() < 200);
    }
}
