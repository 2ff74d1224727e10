//! SQLite backend: the embedded default, one file next to the binary, WAL mode.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use uuid::Uuid;

use super::rollup::{self, Rollup};
use super::{
    CloseReason, EventsQuery, Incident, IncidentState, IncidentWrite, StoreError, StoreOp, first_id_at, pending_hours,
    redact_url, transaction,
};
use crate::asset::AssetConfig;
use crate::probe::{ProbeDetail, ProbeResult};

/// Bytes SQLite has allocated in this process, across every connection (its page caches and
/// prepared statements live outside Rust's view, so they get a metric of their own).
pub fn memory_used() -> i64 {
    // SAFETY: sqlite3_memory_used takes no arguments and only reads SQLite's own counters,
    // which it keeps behind its own mutex; it is safe to call from any thread at any time.
    unsafe { libsqlite3_sys::sqlite3_memory_used() }
}

/// A batch of results as one JSON array of rows, for `json_each`: SQLite has no array binds, so
/// this is how it gets one statement text for every batch size, as PostgreSQL does from UNNEST.
/// The multi-row VALUES insert it replaces was a different statement for each batch size,
/// compiled afresh at every flush (a 500-row one is hundreds of KiB of parse tree and program);
/// this one stays prepared, and the store takes about a quarter more results a second.
fn json_rows(results: &[ProbeResult]) -> String {
    let rows: Vec<_> = results
        .iter()
        .map(|r| {
            (r.id.simple(), &r.asset_id, r.timestamp.timestamp_millis(), r.success, r.latency_ms, r.code, &r.message)
        })
        .collect();
    // Invariant: tuples of strings, integers, booleans and options always serialize.
    serde_json::to_string(&rows).expect("probe results serialize to JSON")
}

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
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
            .foreign_keys(true);
        // An in-memory database exists once per connection: keep exactly one.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = SqlitePoolOptions::new()
            .max_connections(if in_memory { 1 } else { 4 })
            .connect_with(options)
            .await
            .map_err(connect_error)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate { url: redact_url(url), source })?;
        Ok(SqliteStore { pool })
    }

    pub async fn sync_assets(&self, assets: &[AssetConfig]) -> Result<(), StoreError> {
        transaction(&self.pool, "syncing assets", async |tx| sync_assets_in(tx, assets).await).await
    }

    pub async fn write(&self, changes: &[StoreOp], results: &[ProbeResult]) -> Result<(), StoreError> {
        const CONTEXT: &str = "writing probe results and incidents";
        transaction(&self.pool, CONTEXT, async |tx| {
            for change in changes {
                match change {
                    StoreOp::SyncAssets(assets) => sync_assets_in(tx, assets).await?,
                    StoreOp::Incident(IncidentWrite::Open(incident)) => {
                        sqlx::query(
                            "INSERT INTO incidents (id, asset_id, severity, summary, started_at, ended_at, close_reason)
                             VALUES (?, ?, ?, ?, ?, NULL, NULL) ON CONFLICT (id) DO NOTHING",
                        )
                        .bind(incident.id.to_string())
                        .bind(incident.asset_id.clone())
                        .bind(incident.severity.clone())
                        .bind(incident.summary.clone())
                        .bind(incident.started_at.timestamp_millis())
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query(CONTEXT))?;
                    }
                    StoreOp::Incident(IncidentWrite::Close { id, ended_at, reason }) => {
                        sqlx::query(
                            "UPDATE incidents SET ended_at = ?, close_reason = ? WHERE id = ? AND ended_at IS NULL",
                        )
                        .bind(ended_at.timestamp_millis())
                        .bind(reason.as_str())
                        .bind(id.to_string())
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query(CONTEXT))?;
                    }
                }
            }
            if !results.is_empty() {
                sqlx::query(
                    "INSERT INTO probe_events (id, asset_id, timestamp, success, latency_ms, code, message)
                     SELECT unhex(item.value ->> 0), item.value ->> 1, item.value ->> 2, item.value ->> 3,
                            item.value ->> 4, item.value ->> 5, item.value ->> 6
                     -- WHERE true: without it SQLite would read ON CONFLICT as part of the join.
                     FROM json_each(?) AS item WHERE true
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(json_rows(results))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query(CONTEXT))?;
            }
            for hour in pending_hours(results) {
                sqlx::query("INSERT INTO rollup_pending (hour) VALUES (?) ON CONFLICT (hour) DO NOTHING")
                    .bind(hour.timestamp_millis())
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query(CONTEXT))?;
            }
            Ok(())
        })
        .await
    }

    pub async fn incidents(&self, state: IncidentState, limit: u32) -> Result<Vec<Incident>, StoreError> {
        const CONTEXT: &str = "reading incidents";
        let filter = match state {
            IncidentState::Open => "WHERE ended_at IS NULL",
            IncidentState::Closed => "WHERE ended_at IS NOT NULL",
            IncidentState::All => "",
        };
        let sql = format!(
            "SELECT id, asset_id, severity, summary, started_at, ended_at, close_reason
             FROM incidents {filter} ORDER BY started_at DESC LIMIT ?"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(CONTEXT))?;
        rows.iter().map(|row| incident_from_row(row, CONTEXT)).collect()
    }

    pub async fn probe_events(&self, asset_id: &str, query: &EventsQuery) -> Result<Vec<ProbeResult>, StoreError> {
        const CONTEXT: &str = "reading probe events";
        let rows = sqlx::query(
            "SELECT id, asset_id, timestamp, success, latency_ms, code, message FROM probe_events
             WHERE asset_id = ? AND timestamp < ? AND timestamp >= ?
             ORDER BY timestamp DESC LIMIT ?",
        )
        .bind(asset_id.to_string())
        .bind(query.before.map_or(i64::MAX, |t| t.timestamp_millis()))
        .bind(query.since.map_or(i64::MIN, |t| t.timestamp_millis()))
        .bind(i64::from(query.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(CONTEXT))?;
        rows.iter()
            .map(|row| {
                let get = |e| StoreError::Query { context: CONTEXT, source: e };
                Ok(ProbeResult {
                    id: row.try_get("id").map_err(get)?,
                    asset_id: row.try_get("asset_id").map_err(get)?,
                    timestamp: from_millis(row.try_get("timestamp").map_err(get)?, CONTEXT)?,
                    success: row.try_get("success").map_err(get)?,
                    latency_ms: row.try_get("latency_ms").map_err(get)?,
                    code: row.try_get("code").map_err(get)?,
                    message: row.try_get("message").map_err(get)?,
                    detail: ProbeDetail::default(),
                })
            })
            .collect()
    }

    pub async fn roll_up_next(&self, before: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
        const CONTEXT: &str = "rolling up an hour";
        transaction(&self.pool, CONTEXT, async |tx| {
            let hour: Option<i64> =
                sqlx::query_scalar("SELECT hour FROM rollup_pending WHERE hour < ? ORDER BY hour LIMIT 1")
                    .bind(before.timestamp_millis())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(StoreError::query(CONTEXT))?;
            let Some(hour) = hour else { return Ok(None) };
            let start = from_millis(hour, CONTEXT)?;
            sqlx::query("DELETE FROM probe_rollups_hourly WHERE hour = ?")
                .bind(hour)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query(CONTEXT))?;
            let sql = format!(
                "INSERT INTO probe_rollups_hourly ({}) SELECT {} FROM probe_events WHERE id >= ? AND id < ? GROUP BY asset_id",
                rollup::rollup_columns(),
                rollup::aggregate_select("?")
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(hour)
                .bind(first_id_at(start))
                .bind(first_id_at(start + TimeDelta::hours(1)))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query(CONTEXT))?;
            sqlx::query("DELETE FROM rollup_pending WHERE hour = ?")
                .bind(hour)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query(CONTEXT))?;
            Ok(Some(start))
        })
        .await
    }

    pub async fn prune_events(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        const CONTEXT: &str = "pruning probe events";
        transaction(&self.pool, CONTEXT, async |tx| {
            // The primary key is a UUIDv7 of the probe time: pruning walks it, no extra index. Hours
            // not rolled up yet keep their events until they are.
            let pending: Option<i64> = sqlx::query_scalar("SELECT min(hour) FROM rollup_pending")
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::query(CONTEXT))?;
            let cutoff = match pending.map(|ms| from_millis(ms, CONTEXT)).transpose()? {
                Some(pending) => pending.min(before),
                None => before,
            };
            sqlx::query(
                "DELETE FROM probe_events WHERE id IN (SELECT id FROM probe_events WHERE id < ? ORDER BY id LIMIT ?)",
            )
            .bind(first_id_at(cutoff))
            .bind(i64::from(limit))
            .execute(&mut *tx)
            .await
            .map(|done| done.rows_affected())
            .map_err(StoreError::query(CONTEXT))
        })
        .await
    }

    pub async fn prune_rollups(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        transaction(&self.pool, "pruning rollups", async |tx| {
            sqlx::query("DELETE FROM probe_rollups_hourly WHERE hour < ?")
                .bind(before.timestamp_millis())
                .execute(&mut *tx)
                .await
                .map(|done| done.rows_affected())
                .map_err(StoreError::query("pruning rollups"))
        })
        .await
    }

    pub async fn rollups(
        &self,
        asset_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Rollup>, StoreError> {
        const CONTEXT: &str = "reading rollups";
        let (from_ms, to_ms) = (from.timestamp_millis(), to.timestamp_millis());
        let pending: Vec<i64> = sqlx::query_scalar("SELECT hour FROM rollup_pending WHERE hour >= ? AND hour < ?")
            .bind(from_ms)
            .bind(to_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(CONTEXT))?;
        let stored = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM probe_rollups_hourly WHERE asset_id = ? AND hour >= ? AND hour < ? ORDER BY hour",
            rollup::rollup_columns()
        )))
        .bind(asset_id.to_string())
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(CONTEXT))?;
        let mut rollups = Vec::with_capacity(stored.len() + pending.len());
        for row in &stored {
            let hour: i64 = row.try_get("hour").map_err(StoreError::query(CONTEXT))?;
            if !pending.contains(&hour) {
                rollups.push(Rollup::from_row(row, from_millis(hour, CONTEXT)?).map_err(StoreError::query(CONTEXT))?);
            }
        }
        // Pending hours (the current one among them) are read from the raw events.
        if let Some(first) = pending.iter().min() {
            let live = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {} FROM probe_events WHERE asset_id = ? AND timestamp >= ? AND timestamp < ? GROUP BY 1, 2",
                rollup::aggregate_select("(timestamp / 3600000) * 3600000")
            )))
            .bind(asset_id.to_string())
            .bind(*first)
            .bind(to_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(CONTEXT))?;
            for row in &live {
                let hour: i64 = row.try_get("hour").map_err(StoreError::query(CONTEXT))?;
                if pending.contains(&hour) {
                    rollups
                        .push(Rollup::from_row(row, from_millis(hour, CONTEXT)?).map_err(StoreError::query(CONTEXT))?);
                }
            }
        }
        rollups.sort_by_key(|r| r.hour);
        Ok(rollups)
    }

    pub async fn asset_exists(&self, asset_id: &str) -> Result<bool, StoreError> {
        sqlx::query("SELECT 1 FROM assets WHERE id = ?")
            .bind(asset_id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map(|row| row.is_some())
            .map_err(StoreError::query("looking up an asset"))
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop).map_err(StoreError::query("pinging the database"))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Makes `assets` mirror the config inside the caller's transaction.
async fn sync_assets_in(tx: &mut sqlx::SqliteConnection, assets: &[AssetConfig]) -> Result<(), StoreError> {
    let now = Utc::now().timestamp_millis();
    for asset in assets {
        let codes = match &asset.probe {
            crate::probe::ProbeSpec::Http(http) => serde_json::to_string(&http.expected_status_codes).ok(),
            _ => None,
        };
        sqlx::query(
            "INSERT INTO assets (id, name, address, asset_type, interval_seconds, timeout_seconds,
                                 expected_status_codes, metadata, created_at, updated_at, removed_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)
             ON CONFLICT (id) DO UPDATE SET
                name = excluded.name, address = excluded.address, asset_type = excluded.asset_type,
                interval_seconds = excluded.interval_seconds, timeout_seconds = excluded.timeout_seconds,
                expected_status_codes = excluded.expected_status_codes, metadata = excluded.metadata,
                updated_at = excluded.updated_at, removed_at = NULL",
        )
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
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("syncing assets"))?;
    }
    let ids: Vec<String> = assets.iter().map(|a| a.id.clone()).collect();
    sqlx::query(
        "UPDATE assets SET removed_at = ?
         WHERE removed_at IS NULL AND id NOT IN (SELECT value FROM json_each(?))",
    )
    .bind(now)
    .bind(serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into()))
    .execute(&mut *tx)
    .await
    .map_err(StoreError::query("marking removed assets"))?;
    Ok(())
}

fn incident_from_row(row: &SqliteRow, context: &'static str) -> Result<Incident, StoreError> {
    let get = |e| StoreError::Query { context, source: e };
    let id: String = row.try_get("id").map_err(get)?;
    let reason: Option<String> = row.try_get("close_reason").map_err(get)?;
    Ok(Incident {
        id: Uuid::parse_str(&id)
            .map_err(|e| StoreError::Corrupt { context, detail: format!("incident id {id:?}: {e}") })?,
        asset_id: row.try_get("asset_id").map_err(get)?,
        severity: row.try_get("severity").map_err(get)?,
        summary: row.try_get::<Option<String>, _>("summary").map_err(get)?.unwrap_or_default(),
        started_at: from_millis(row.try_get("started_at").map_err(get)?, context)?,
        ended_at: row
            .try_get::<Option<i64>, _>("ended_at")
            .map_err(get)?
            .map(|ms| from_millis(ms, context))
            .transpose()?,
        close_reason: reason.as_deref().and_then(CloseReason::parse),
    })
}

fn from_millis(ms: i64, context: &'static str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt { context, detail: format!("timestamp {ms} out of range") })
}
