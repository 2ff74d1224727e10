//! SQLite backend: the embedded default, one file next to the binary, WAL mode.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection};
use uuid::Uuid;

use super::sql::{Dialect, SqlStore, UPSERT_ASSET};
use super::{StoreError, redact_url};
use crate::asset::AssetConfig;
use crate::probe::{Mark, ProbeResult, ProbeSpec};

/// Bytes SQLite has allocated in this process, across every connection (its page caches and
/// prepared statements live outside Rust's view, so they get a metric of their own).
pub fn memory_used() -> i64 {
    // SAFETY: sqlite3_memory_used takes no arguments and only reads SQLite's own counters,
    // which it keeps behind its own mutex; it is safe to call from any thread at any time.
    unsafe { libsqlite3_sys::sqlite3_memory_used() }
}

/// A batch of results as one JSON array of rows, for `jsonb_each`: SQLite has no array binds, so
/// this is how it gets one statement text for every batch size, as PostgreSQL does from UNNEST.
/// The multi-row VALUES insert it replaces was a different statement for each batch size,
/// compiled afresh at every flush (a 500-row one is hundreds of KiB of parse tree and program);
/// this one stays prepared, and the store takes about a quarter more results a second.
/// `jsonb_each`, not `json_each`: json_each hands each row back as JSON text, which every
/// `->>` parses again (eight times a row); jsonb_each hands it back in SQLite's binary form,
/// which `->>` reads as it is (callgrind: 22.9k instructions in `sqlite3_step` per stored
/// result instead of 31.8k).
///
/// The rows go in the order of the `(asset_id, timestamp)` index: each asset's results in a batch
/// then land on its leaf page one after another, read and dirtied once, where in the order they
/// came (by time, every asset in turn) a page cache smaller than the leaves a batch touches
/// would evict and read each leaf again for the asset's next result.
fn json_rows(results: &[ProbeResult]) -> String {
    let mut ordered: Vec<&ProbeResult> = results.iter().collect();
    ordered.sort_unstable_by(|a, b| (&a.asset_id, a.timestamp).cmp(&(&b.asset_id, b.timestamp)));
    let rows: Vec<_> = ordered
        .into_iter()
        .map(|r| {
            (
                r.id.simple(),
                &r.asset_id,
                r.timestamp.timestamp_millis(),
                r.success,
                r.latency_ms,
                r.code,
                &r.message,
                r.mark.map(Mark::as_str),
            )
        })
        .collect();
    // Invariant: tuples of strings, integers, booleans and options always serialize.
    serde_json::to_string(&rows).expect("probe results serialize to JSON")
}

/// Each connection's page cache (`PRAGMA cache_size`, negative: KiB): 256 KiB instead of
/// SQLite's 2 MiB. The writes are what reads most pages here, one leaf of the (asset, time)
/// index per asset probed, so past a few hundred assets their pages outgrow either cache and
/// come from the OS's page cache anyway; the API reads an asset's latest few. SQLite allocates
/// it with the C library's `malloc`, in one arena per connection's thread. Measured with the
/// load tool at 1,000 assets (README, Benchmarks: "A 512 KiB page cache per SQLite connection"
/// and "A 256 KiB …"): 512 KiB instead of 2 MiB took 0.8 to 2.8 MiB off what statusd allocated,
/// 256 KiB about 1 MiB more, at the same CPU, SQLite's threads' included.
const PAGE_CACHE: &str = "-256";

/// The store on SQLite.
pub type SqliteStore = SqlStore<Sqlite>;

/// Opens (creating it if need be) and migrates the SQLite database at `url` (`sqlite://FILE`).
pub async fn connect(url: &str) -> Result<SqliteStore, StoreError> {
    let connect_error = |source| StoreError::Connect { url: redact_url(url), source };
    let options = SqliteConnectOptions::from_str(url)
        .map_err(connect_error)?
        .create_if_missing(true)
        // WAL lets the API read while the Persistence actor writes; NORMAL is durable
        // across application crashes, which is what a monitor needs.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .pragma("cache_size", PAGE_CACHE)
        .foreign_keys(true);
    // An in-memory database exists once per connection: keep exactly one.
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let pool = SqlitePoolOptions::new()
        .max_connections(if in_memory { 1 } else { 4 })
        .connect_with(options)
        .await
        .map_err(connect_error)?;
    SqlStore::migrate(pool, sqlx::migrate!("./migrations/sqlite"), url).await
}

/// Times as Unix milliseconds (INTEGER), incident ids as text, batches as JSON.
impl Dialect for Sqlite {
    type Time = i64;
    type IncidentId = String;

    const HOUR_OF_TIMESTAMP: &'static str = "(timestamp / 3600000) * 3600000";
    const DAY_OF_HOUR: &'static str = "(hour / 86400000) * 86400000";
    // SQLite has no row locks: its writers take turns on the whole database.
    const LOCK_SKIP_LOCKED: &'static str = "";
    const RESULTS_COMMIT_ALONE: bool = true;

    fn time(at: DateTime<Utc>) -> i64 {
        at.timestamp_millis()
    }

    fn from_time(ms: i64) -> Result<DateTime<Utc>, String> {
        DateTime::from_timestamp_millis(ms).ok_or_else(|| format!("timestamp {ms} out of range"))
    }

    fn incident_id(id: Uuid) -> String {
        id.to_string()
    }

    fn from_incident_id(id: String) -> Result<Uuid, String> {
        Uuid::parse_str(&id).map_err(|e| format!("incident id {id:?}: {e}"))
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    async fn insert_results(tx: &mut SqliteConnection, results: &[ProbeResult]) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO probe_events (id, asset_id, timestamp, success, latency_ms, code, message, mark)
             SELECT unhex(item.value ->> 0), item.value ->> 1, item.value ->> 2, item.value ->> 3,
                    item.value ->> 4, item.value ->> 5, item.value ->> 6, item.value ->> 7
             -- WHERE true: without it SQLite would read ON CONFLICT as part of the join.
             FROM jsonb_each($1) AS item WHERE true
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(json_rows(results))
        .execute(&mut *tx)
        .await
        .map(drop)
    }

    async fn sync_assets(
        tx: &mut SqliteConnection,
        assets: &[Arc<AssetConfig>],
        mark_removed: bool,
    ) -> Result<(), StoreError> {
        let now = Utc::now().timestamp_millis();
        for asset in assets {
            let codes = match &asset.probe {
                ProbeSpec::Http(http) => serde_json::to_string(&http.expected_status_codes).ok(),
                _ => None,
            };
            let sql = format!(
                "INSERT INTO assets (id, name, address, asset_type, interval_seconds, timeout_seconds,
                                     expected_status_codes, metadata, created_at, updated_at, removed_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, NULL)
                 ON CONFLICT (id) DO UPDATE SET {UPSERT_ASSET}"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(asset.id.clone())
                .bind(asset.name.clone())
                // As the API shows it: the address as written may hold credentials.
                .bind(asset.shown_address())
                .bind(asset.asset_type())
                .bind(i64::try_from(asset.interval_seconds).unwrap_or(i64::MAX))
                .bind(i64::try_from(asset.timeout_seconds).unwrap_or(i64::MAX))
                .bind(codes)
                .bind(serde_json::to_string(&asset.metadata).ok())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query("syncing assets"))?;
        }
        if !mark_removed {
            return Ok(());
        }
        let ids: Vec<String> = assets.iter().map(|a| a.id.clone()).collect();
        sqlx::query(
            "UPDATE assets SET removed_at = $1
             WHERE removed_at IS NULL AND id NOT IN (SELECT value FROM json_each($2))",
        )
        .bind(now)
        .bind(serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into()))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("marking removed assets"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    #[test]
    fn a_batch_goes_to_sqlite_in_the_order_of_the_asset_and_time_index() {
        let start = Utc::now();
        // As the results come: by time, every asset in turn.
        let results: Vec<ProbeResult> = (0..6)
            .map(|n| {
                let mut result = ProbeResult::unmeasured(["b", "a", "c"][n % 3], true, None);
                result.timestamp = start + TimeDelta::seconds(i64::try_from(n).expect("small"));
                result
            })
            .collect();
        let rows: Vec<serde_json::Value> = serde_json::from_str(&json_rows(&results)).expect("a JSON array");
        let order: Vec<(&str, i64)> =
            rows.iter().map(|row| (row[1].as_str().expect("asset id"), row[2].as_i64().expect("time"))).collect();
        let ms = |n: i64| start.timestamp_millis() + n * 1000;
        assert_eq!(order, [("a", ms(1)), ("a", ms(4)), ("b", ms(0)), ("b", ms(3)), ("c", ms(2)), ("c", ms(5))]);
    }

    #[tokio::test]
    async fn every_connection_keeps_a_page_cache_of_256_kib() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("statusd.db").display());
        let store = connect(&url).await.expect("the database opens");
        // Two connections at once, so that the pool's second is asked too, not only the first.
        let mut first = store.pool.acquire().await.expect("a connection");
        let mut second = store.pool.acquire().await.expect("another connection");
        for connection in [&mut first, &mut second] {
            let cache: i64 =
                sqlx::query_scalar("PRAGMA cache_size").fetch_one(&mut **connection).await.expect("the pragma");
            assert_eq!(cache, -256, "the page cache in KiB, negative as SQLite reports it");
        }
    }
}
