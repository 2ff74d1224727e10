//! The SQL of the store, written once for both databases. [`SqlStore`] is generic over a
//! [`Dialect`]: the few things SQLite and PostgreSQL really do differently (how a time and an
//! incident id are stored, the hour of a timestamp, row locks, and the two statements that take a
//! whole batch at once) live in `sqlite.rs` and `postgres.rs`; everything else is here.
//!
//! Statements number their parameters `$1`, `$2`, …: PostgreSQL's syntax, which SQLite reads as
//! named parameters and sqlx binds by their number.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use sqlx::migrate::{Migrate, Migrator};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};
use uuid::Uuid;

use super::rollup::{self, DayTotal, HourlyRollups, Rollup};
use super::{
    CloseReason, DegradationWrite, DeliveriesQuery, DeliveryRecord, EventsQuery, Incident, IncidentSpan, IncidentState,
    IncidentUpdate, IncidentWrite, NotificationWrite, OutboxEntry, StoreError, StoreOp, StoredWindow, TimelineEntry,
    TimelineKind, first_id_at, in_transaction, on_connection, pending_hours, redact_url, transaction,
};
use crate::asset::AssetConfig;
use crate::probe::{ProbeDetail, ProbeResult};

/// What one database does its own way. Implemented by `sqlx::Sqlite` and `sqlx::Postgres`.
pub trait Dialect: Database {
    /// A point in time as a column holds it: Unix milliseconds in SQLite, `timestamptz` in
    /// PostgreSQL.
    type Time: for<'t> Encode<'t, Self> + for<'r> Decode<'r, Self> + Type<Self> + Send + Unpin;
    /// An incident id as its column holds it: text in SQLite, `uuid` in PostgreSQL.
    type IncidentId: for<'t> Encode<'t, Self> + for<'r> Decode<'r, Self> + Type<Self> + Send;

    /// The SQL of the hour (a [`Self::Time`]) a `probe_events` row falls in.
    const HOUR_OF_TIMESTAMP: &'static str;
    /// The SQL of the UTC day (a [`Self::Time`]) a `probe_rollups_hourly` row's `hour` falls in.
    const DAY_OF_HOUR: &'static str;
    /// Ends the statement that picks the next hour to roll up: a lock where the database has
    /// row locks, so that two instances never roll up the same hour at once.
    const LOCK_SKIP_LOCKED: &'static str;
    /// Whether a flush stores its probe results in a statement of their own, committed alone,
    /// rather than in the transaction of the batch's other writes. SQLite keeps a statement
    /// journal for every statement of many rows inside a transaction (so that it can undo that
    /// statement alone); for a batch of results it outgrows its 64 KiB in memory and is written
    /// to a temporary file, ≈ 5 % of statusd's CPU at 10,000 probes/s. A statement that is its
    /// own transaction needs none. PostgreSQL pays a commit (a WAL flush) per transaction, so
    /// it keeps one.
    const RESULTS_COMMIT_ALONE: bool;

    /// `at` as its column holds it.
    fn time(at: DateTime<Utc>) -> Self::Time;
    /// The stored time back, or what is wrong with it.
    fn from_time(stored: Self::Time) -> Result<DateTime<Utc>, String>;
    /// `id` as its column holds it.
    fn incident_id(id: Uuid) -> Self::IncidentId;
    /// The stored incident id back, or what is wrong with it.
    fn from_incident_id(stored: Self::IncidentId) -> Result<Uuid, String>;
    /// How many rows a statement inserted, updated or deleted (sqlx has no common way to ask).
    fn rows_affected(done: &Self::QueryResult) -> u64;

    /// A stored time read back; [`StoreError::Corrupt`] when it is out of range.
    fn read_time(stored: Self::Time, context: &'static str) -> Result<DateTime<Utc>, StoreError> {
        Self::from_time(stored).map_err(|detail| StoreError::Corrupt { context, detail })
    }

    /// Inserts a batch of results, skipping those stored already, in one statement whatever the
    /// batch size, so that it stays prepared.
    fn insert_results(
        tx: &mut Self::Connection,
        results: &[ProbeResult],
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Makes `assets` mirror the config inside the caller's transaction: upserts every asset
    /// (setting [`UPSERT_ASSET`]) and, with `mark_removed`, marks the others removed.
    fn sync_assets(
        tx: &mut Self::Connection,
        assets: &[Arc<AssetConfig>],
        mark_removed: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What an asset already in `assets` takes from its config again: the `DO UPDATE SET` of both
/// dialects' upserts.
pub(super) const UPSERT_ASSET: &str = "name = excluded.name, address = excluded.address,
    asset_type = excluded.asset_type, interval_seconds = excluded.interval_seconds,
    timeout_seconds = excluded.timeout_seconds, expected_status_codes = excluded.expected_status_codes,
    metadata = excluded.metadata, updated_at = excluded.updated_at, removed_at = NULL";

/// What a failed [`SqlStore::write`] was doing, in its error.
const WRITE_CONTEXT: &str = "writing probe results and incidents";

/// The columns [`SqlStore::incident_from_row`] reads.
const INCIDENT_COLUMNS: &str = "id, asset_id, severity, summary, started_at, ended_at, close_reason, \
    caused_by, flapping, acknowledged_at, acknowledged_by, ack_note, tier";

/// The store on one database; cheap to clone (it is a pool).
pub struct SqlStore<DB: Dialect> {
    pub(super) pool: Pool<DB>,
}

// Derived Clone would ask DB: Clone.
impl<DB: Dialect> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        SqlStore { pool: self.pool.clone() }
    }
}

impl<DB: Dialect> SqlStore<DB>
where
    DB::Connection: Migrate,
{
    /// The store on `pool`, once `migrations` (the backend's own) are applied; `url` names the
    /// database in the error.
    pub(super) async fn migrate(pool: Pool<DB>, migrations: Migrator, url: &str) -> Result<Self, StoreError> {
        migrations.run(&pool).await.map_err(|source| StoreError::Migrate { url: redact_url(url), source })?;
        Ok(SqlStore { pool })
    }
}

/// Bounds for an open end of a time range: before and after any probe, and within what both
/// databases store (PostgreSQL's timestamps start in 4713 BC), so one statement serves with and
/// without a bound and the (asset_id, timestamp) index always narrows the range.
fn open_range() -> (DateTime<Utc>, DateTime<Utc>) {
    let earliest = NaiveDate::from_ymd_opt(-4000, 1, 1).and_then(|day| day.and_hms_opt(0, 0, 0));
    // Invariant: 4001 BC is a valid date.
    (earliest.expect("a valid date").and_utc(), DateTime::<Utc>::MAX_UTC)
}

/// The methods of [`super::Store`], which documents them.
impl<DB: Dialect> SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'s> &'s str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB>,
    for<'r> i32: Decode<'r, DB> + Type<DB>,
    for<'r> bool: Decode<'r, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB>,
    for<'t> Option<i64>: Encode<'t, DB>,
    for<'r> String: Decode<'r, DB>,
    for<'t> &'static str: Encode<'t, DB> + Type<DB>,
    for<'t> Uuid: Encode<'t, DB> + Type<DB>,
    for<'r> Uuid: Decode<'r, DB>,
{
    pub async fn sync_assets(&self, assets: &[Arc<AssetConfig>], mark_removed: bool) -> Result<(), StoreError> {
        transaction(&self.pool, "syncing assets", async |tx| DB::sync_assets(tx, assets, mark_removed).await).await
    }

    pub async fn write(&self, changes: &[StoreOp], results: &[ProbeResult]) -> Result<(), StoreError> {
        if !DB::RESULTS_COMMIT_ALONE {
            return transaction(&self.pool, WRITE_CONTEXT, async |tx| {
                Self::apply_changes(tx, changes).await?;
                Self::store_results(tx, results).await
            })
            .await;
        }
        // The results after the changes, on the same connection: a result may need the asset
        // they add. A flush that fails between the two is retried whole, and every write of it
        // skips what is stored already.
        on_connection(&self.pool, WRITE_CONTEXT, async |connection| {
            if !changes.is_empty() {
                in_transaction::<DB, _>(connection, WRITE_CONTEXT, async |tx| Self::apply_changes(tx, changes).await)
                    .await?;
            }
            Self::store_results(connection, results).await
        })
        .await
    }

    /// Applies `changes`, in order, inside the caller's transaction.
    async fn apply_changes(tx: &mut DB::Connection, changes: &[StoreOp]) -> Result<(), StoreError> {
        const CONTEXT: &str = WRITE_CONTEXT;
        for change in changes {
            match change {
                StoreOp::SyncAssets(assets, mark_removed) => DB::sync_assets(tx, assets, *mark_removed).await?,
                StoreOp::Incident(IncidentWrite::Open(incident)) => {
                    sqlx::query(
                        "INSERT INTO incidents (id, asset_id, severity, summary, started_at, caused_by)
                             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(DB::incident_id(incident.id))
                    .bind(incident.asset_id.clone())
                    .bind(incident.severity.clone())
                    .bind(incident.summary.clone())
                    .bind(DB::time(incident.started_at))
                    .bind(incident.caused_by.clone())
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query(CONTEXT))?;
                }
                StoreOp::Incident(IncidentWrite::Flapping { id, flapping }) => {
                    sqlx::query("UPDATE incidents SET flapping = $1 WHERE id = $2")
                        .bind(*flapping)
                        .bind(DB::incident_id(*id))
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query(CONTEXT))?;
                }
                StoreOp::Incident(IncidentWrite::Tier { id, tier }) => {
                    sqlx::query("UPDATE incidents SET tier = $1 WHERE id = $2 AND (tier IS NULL OR tier < $1)")
                        .bind(i64::from(*tier))
                        .bind(DB::incident_id(*id))
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query(CONTEXT))?;
                }
                StoreOp::Incident(IncidentWrite::Ack { id, at, by, note }) => {
                    sqlx::query(
                        "UPDATE incidents SET acknowledged_at = $1, acknowledged_by = $2, ack_note = $3
                             WHERE id = $4 AND acknowledged_at IS NULL",
                    )
                    .bind(DB::time(*at))
                    .bind(by.clone())
                    .bind(note.clone())
                    .bind(DB::incident_id(*id))
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query(CONTEXT))?;
                }
                StoreOp::Incident(IncidentWrite::Timeline(entry)) => {
                    sqlx::query(
                        "INSERT INTO incident_timeline (id, incident_id, at, kind, detail)
                             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(entry.id)
                    .bind(DB::incident_id(entry.incident_id))
                    .bind(DB::time(entry.at))
                    .bind(entry.kind.as_str())
                    .bind(entry.detail.clone())
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query(CONTEXT))?;
                }
                StoreOp::Degradation(DegradationWrite::Start { asset_id, since }) => {
                    sqlx::query(
                        "INSERT INTO degradations (asset_id, since) VALUES ($1, $2)
                             ON CONFLICT (asset_id) DO UPDATE SET since = excluded.since",
                    )
                    .bind(asset_id.clone())
                    .bind(DB::time(*since))
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query(CONTEXT))?;
                }
                StoreOp::Degradation(DegradationWrite::End { asset_id }) => {
                    sqlx::query("DELETE FROM degradations WHERE asset_id = $1")
                        .bind(asset_id.clone())
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query(CONTEXT))?;
                }
                StoreOp::Notification(NotificationWrite::Decided(entry)) => {
                    let notification = &entry.notification;
                    // Invariant: a Notification is strings, numbers and a timestamp; turning
                    // it into JSON cannot fail.
                    let payload = serde_json::to_string(notification).expect("a notification serializes");
                    // No conflict target: a retried batch (same id) and a second decision
                    // of the same outbox key (`dedup_key`, unique) both leave one row.
                    sqlx::query(
                            "INSERT INTO notifications (id, incident_id, asset_id, channel, event, tier, payload, decided_at, status, dedup_key)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9) ON CONFLICT DO NOTHING",
                        )
                        .bind(entry.id)
                        .bind(notification.incident_id.map(|id| id.to_string()))
                        .bind(notification.asset_id.clone())
                        .bind(entry.channel.clone())
                        .bind(notification.event.as_str())
                        .bind(notification.tier.map(i64::from))
                        .bind(payload)
                        .bind(DB::time(entry.decided_at))
                        .bind(notification.outbox_key(&entry.channel))
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query(CONTEXT))?;
                }
                StoreOp::Notification(NotificationWrite::Sent { id, at, attempts }) => {
                    sqlx::query(
                        "UPDATE notifications SET status = 'sent', attempts = $1, sent_at = $2, last_error = NULL
                             WHERE id = $3",
                    )
                    .bind(i64::from(*attempts))
                    .bind(DB::time(*at))
                    .bind(*id)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query(CONTEXT))?;
                }
                StoreOp::Notification(NotificationWrite::Failed { id, at: _, attempts, error }) => {
                    sqlx::query(
                        "UPDATE notifications SET status = 'failed', attempts = $1, last_error = $2 WHERE id = $3",
                    )
                    .bind(i64::from(*attempts))
                    .bind(error.clone())
                    .bind(*id)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query(CONTEXT))?;
                }
                StoreOp::Incident(IncidentWrite::CausedBy { id, caused_by }) => {
                    sqlx::query("UPDATE incidents SET caused_by = $1 WHERE id = $2")
                        .bind(caused_by.clone())
                        .bind(DB::incident_id(*id))
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query(CONTEXT))?;
                }
                StoreOp::Incident(IncidentWrite::Close { id, ended_at, reason }) => {
                    sqlx::query(
                        "UPDATE incidents SET ended_at = $1, close_reason = $2 WHERE id = $3 AND ended_at IS NULL",
                    )
                    .bind(DB::time(*ended_at))
                    .bind(reason.as_str())
                    .bind(DB::incident_id(*id))
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query(CONTEXT))?;
                }
            }
        }
        Ok(())
    }

    /// Stores `results` and marks their hours pending for the rollup (the marks first: a result
    /// stored is never left out of its hour's rollup).
    async fn store_results(connection: &mut DB::Connection, results: &[ProbeResult]) -> Result<(), StoreError> {
        const CONTEXT: &str = WRITE_CONTEXT;
        for hour in pending_hours(results) {
            sqlx::query("INSERT INTO rollup_pending (hour) VALUES ($1) ON CONFLICT (hour) DO NOTHING")
                .bind(DB::time(hour))
                .execute(&mut *connection)
                .await
                .map_err(StoreError::query(CONTEXT))?;
        }
        if !results.is_empty() {
            DB::insert_results(connection, results).await.map_err(StoreError::query(CONTEXT))?;
        }
        Ok(())
    }

    pub async fn degradations(&self) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        const CONTEXT: &str = "reading degradations";
        let rows = sqlx::query("SELECT asset_id, since FROM degradations")
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(CONTEXT))?;
        Self::ids_and_times(&rows, ("asset_id", "since"), CONTEXT)
    }

    /// Rows of (an id, a time), read from the columns named.
    fn ids_and_times(
        rows: &[DB::Row],
        (id, time): (&'static str, &'static str),
        context: &'static str,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        rows.iter()
            .map(|row| {
                let id: String = row.try_get(id).map_err(StoreError::query(context))?;
                let at = DB::read_time(row.try_get(time).map_err(StoreError::query(context))?, context)?;
                Ok((id, at))
            })
            .collect()
    }

    pub async fn incidents(&self, state: IncidentState, limit: u32) -> Result<Vec<Incident>, StoreError> {
        const CONTEXT: &str = "reading incidents";
        let filter = match state {
            IncidentState::Open => "WHERE ended_at IS NULL",
            IncidentState::Closed => "WHERE ended_at IS NOT NULL",
            IncidentState::All => "",
        };
        let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents {filter} ORDER BY started_at DESC LIMIT $1");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(CONTEXT))?;
        rows.iter().map(|row| Self::incident_from_row(row, CONTEXT)).collect()
    }

    pub async fn incident(&self, id: Uuid) -> Result<Option<Incident>, StoreError> {
        const CONTEXT: &str = "reading an incident";
        let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(DB::incident_id(id))
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query(CONTEXT))?;
        row.as_ref().map(|row| Self::incident_from_row(row, CONTEXT)).transpose()
    }

    pub async fn timeline(&self, id: Uuid) -> Result<Vec<TimelineEntry>, StoreError> {
        const CONTEXT: &str = "reading an incident's timeline";
        let rows =
            sqlx::query("SELECT id, at, kind, detail FROM incident_timeline WHERE incident_id = $1 ORDER BY at, id")
                .bind(DB::incident_id(id))
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::query(CONTEXT))?;
        rows.iter()
            .map(|row| {
                let get = |e| StoreError::Query { context: CONTEXT, source: e };
                let kind: String = row.try_get("kind").map_err(get)?;
                Ok(TimelineEntry {
                    id: row.try_get("id").map_err(get)?,
                    incident_id: id,
                    at: DB::read_time(row.try_get("at").map_err(get)?, CONTEXT)?,
                    kind: TimelineKind::parse(&kind).ok_or_else(|| StoreError::Corrupt {
                        context: CONTEXT,
                        detail: format!("timeline kind {kind:?}"),
                    })?,
                    detail: row.try_get("detail").map_err(get)?,
                })
            })
            .collect()
    }

    pub async fn probe_events(&self, asset_id: &str, query: &EventsQuery) -> Result<Vec<ProbeResult>, StoreError> {
        const CONTEXT: &str = "reading probe events";
        let (earliest, latest) = open_range();
        let rows = sqlx::query(
            "SELECT id, asset_id, timestamp, success, latency_ms, code, message, mark FROM probe_events
             WHERE asset_id = $1 AND timestamp < $2 AND timestamp >= $3
             ORDER BY timestamp DESC LIMIT $4",
        )
        .bind(asset_id.to_string())
        .bind(DB::time(query.before.unwrap_or(latest)))
        .bind(DB::time(query.since.unwrap_or(earliest)))
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
                    timestamp: DB::read_time(row.try_get("timestamp").map_err(get)?, CONTEXT)?,
                    success: row.try_get("success").map_err(get)?,
                    latency_ms: row.try_get("latency_ms").map_err(get)?,
                    code: row.try_get("code").map_err(get)?,
                    message: row.try_get("message").map_err(get)?,
                    mark: row
                        .try_get::<Option<String>, _>("mark")
                        .map_err(get)?
                        // A mark this version does not know reads as none rather than failing the page.
                        .and_then(|mark| mark.parse().ok()),
                    detail: ProbeDetail::default(),
                })
            })
            .collect()
    }

    pub async fn roll_up_next(&self, before: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
        const CONTEXT: &str = "rolling up an hour";
        transaction(&self.pool, CONTEXT, async |tx| {
            // Locked where the database can, so that a write marking the hour pending again waits
            // for this roll-up and its mark survives it; skipped by another instance rolling up at
            // the same time.
            let sql = format!(
                "SELECT hour FROM rollup_pending WHERE hour < $1 ORDER BY hour LIMIT 1{}",
                DB::LOCK_SKIP_LOCKED
            );
            let hour: Option<DB::Time> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(DB::time(before))
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::query(CONTEXT))?;
            let Some(hour) = hour else { return Ok(None) };
            let start = DB::read_time(hour, CONTEXT)?;
            sqlx::query("DELETE FROM probe_rollups_hourly WHERE hour = $1")
                .bind(DB::time(start))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query(CONTEXT))?;
            let sql = format!(
                "INSERT INTO probe_rollups_hourly ({}) SELECT {} FROM probe_events WHERE id >= $2 AND id < $3 AND {} GROUP BY asset_id",
                rollup::rollup_columns(),
                rollup::aggregate_select("$1"),
                rollup::COUNTED
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(DB::time(start))
                .bind(first_id_at(start))
                .bind(first_id_at(start + TimeDelta::hours(1)))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query(CONTEXT))?;
            sqlx::query("DELETE FROM rollup_pending WHERE hour = $1")
                .bind(DB::time(start))
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
            let pending: Option<DB::Time> = sqlx::query_scalar("SELECT min(hour) FROM rollup_pending")
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::query(CONTEXT))?;
            let cutoff = match pending.map(|stored| DB::read_time(stored, CONTEXT)).transpose()? {
                Some(pending) => pending.min(before),
                None => before,
            };
            sqlx::query(
                "DELETE FROM probe_events WHERE id IN (SELECT id FROM probe_events WHERE id < $1 ORDER BY id LIMIT $2)",
            )
            .bind(first_id_at(cutoff))
            .bind(i64::from(limit))
            .execute(&mut *tx)
            .await
            .map(|done| DB::rows_affected(&done))
            .map_err(StoreError::query(CONTEXT))
        })
        .await
    }

    pub async fn prune_rollups(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        const CONTEXT: &str = "pruning rollups";
        transaction(&self.pool, CONTEXT, async |tx| {
            sqlx::query("DELETE FROM probe_rollups_hourly WHERE hour < $1")
                .bind(DB::time(before))
                .execute(&mut *tx)
                .await
                .map(|done| DB::rows_affected(&done))
                .map_err(StoreError::query(CONTEXT))
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
        let pending: Vec<DB::Time> =
            sqlx::query_scalar("SELECT hour FROM rollup_pending WHERE hour >= $1 AND hour < $2")
                .bind(DB::time(from))
                .bind(DB::time(to))
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::query(CONTEXT))?;
        let pending = pending
            .into_iter()
            .map(|stored| DB::read_time(stored, CONTEXT))
            .collect::<Result<Vec<DateTime<Utc>>, _>>()?;
        let stored = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM probe_rollups_hourly WHERE asset_id = $1 AND hour >= $2 AND hour < $3 ORDER BY hour",
            rollup::rollup_columns()
        )))
        .bind(asset_id.to_string())
        .bind(DB::time(from))
        .bind(DB::time(to))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(CONTEXT))?;
        let mut rollups = Vec::with_capacity(stored.len() + pending.len());
        for row in &stored {
            let hour = DB::read_time(row.try_get("hour").map_err(StoreError::query(CONTEXT))?, CONTEXT)?;
            if !pending.contains(&hour) {
                rollups.push(Rollup::from_row(row, hour).map_err(StoreError::query(CONTEXT))?);
            }
        }
        // Pending hours (the current one among them) are read from the raw events.
        if let Some(first) = pending.iter().min() {
            let live = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {} FROM probe_events WHERE asset_id = $1 AND timestamp >= $2 AND timestamp < $3 AND {} GROUP BY 1, 2",
                rollup::aggregate_select(DB::HOUR_OF_TIMESTAMP),
                rollup::COUNTED
            )))
            .bind(asset_id.to_string())
            .bind(DB::time(*first))
            .bind(DB::time(to))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(CONTEXT))?;
            for row in &live {
                let hour = DB::read_time(row.try_get("hour").map_err(StoreError::query(CONTEXT))?, CONTEXT)?;
                if pending.contains(&hour) {
                    rollups.push(Rollup::from_row(row, hour).map_err(StoreError::query(CONTEXT))?);
                }
            }
        }
        rollups.sort_by_key(|r| r.hour);
        Ok(rollups)
    }

    pub async fn incident_spans(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        asset_id: Option<&str>,
    ) -> Result<Vec<IncidentSpan>, StoreError> {
        const CONTEXT: &str = "reading the incidents of a period";
        let filter = if asset_id.is_some() { "AND asset_id = $3" } else { "" };
        let sql = format!(
            "SELECT asset_id, started_at, ended_at FROM incidents WHERE started_at < $2 AND (ended_at IS NULL OR ended_at > $1) {filter} ORDER BY started_at"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(DB::time(from)).bind(DB::time(to));
        if let Some(asset_id) = asset_id {
            query = query.bind(asset_id.to_string());
        }
        let rows = query.fetch_all(&self.pool).await.map_err(StoreError::query(CONTEXT))?;
        rows.iter()
            .map(|row| {
                let get = |e| StoreError::Query { context: CONTEXT, source: e };
                let ended_at: Option<DB::Time> = row.try_get("ended_at").map_err(get)?;
                Ok(IncidentSpan {
                    asset_id: row.try_get("asset_id").map_err(get)?,
                    started_at: DB::read_time(row.try_get("started_at").map_err(get)?, CONTEXT)?,
                    ended_at: ended_at.map(|stored| DB::read_time(stored, CONTEXT)).transpose()?,
                })
            })
            .collect()
    }

    pub async fn inconclusive_results(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        asset_id: Option<&str>,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        const CONTEXT: &str = "reading inconclusive results";
        // Spelled as the partial index's condition, so that the index is used.
        let filter = if asset_id.is_some() { "AND asset_id = $3" } else { "" };
        let sql = format!(
            "SELECT asset_id, timestamp FROM probe_events WHERE mark = 'inconclusive' AND timestamp >= $1 AND timestamp < $2 {filter}"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(DB::time(from)).bind(DB::time(to));
        if let Some(asset_id) = asset_id {
            query = query.bind(asset_id.to_string());
        }
        let rows = query.fetch_all(&self.pool).await.map_err(StoreError::query(CONTEXT))?;
        Self::ids_and_times(&rows, ("asset_id", "timestamp"), CONTEXT)
    }

    pub async fn assets_created(&self) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        const CONTEXT: &str = "reading when assets were created";
        let rows = sqlx::query("SELECT id, created_at FROM assets")
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(CONTEXT))?;
        Self::ids_and_times(&rows, ("id", "created_at"), CONTEXT)
    }

    pub async fn incidents_since(&self, since: DateTime<Utc>) -> Result<Vec<Incident>, StoreError> {
        const CONTEXT: &str = "reading recent incidents";
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE ended_at IS NULL OR ended_at >= $1 OR started_at >= $1
             ORDER BY started_at DESC"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(DB::time(since))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(CONTEXT))?;
        rows.iter().map(|row| Self::incident_from_row(row, CONTEXT)).collect()
    }

    pub async fn daily_totals(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<DayTotal>, StoreError> {
        const CONTEXT: &str = "reading daily totals";
        let sql = format!(
            "SELECT asset_id, {day} AS day, CAST(sum(probes) AS BIGINT) AS probes,
                    CAST(sum(successes) AS BIGINT) AS successes
             FROM probe_rollups_hourly
             WHERE hour >= $1 AND hour < $2 AND hour NOT IN (SELECT hour FROM rollup_pending)
             GROUP BY asset_id, {day}",
            day = DB::DAY_OF_HOUR
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(DB::time(from))
            .bind(DB::time(to))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(CONTEXT))?;
        rows.iter()
            .map(|row| {
                let get = |e| StoreError::Query { context: CONTEXT, source: e };
                Ok(DayTotal {
                    asset_id: row.try_get("asset_id").map_err(get)?,
                    day: DB::read_time(row.try_get("day").map_err(get)?, CONTEXT)?,
                    probes: row.try_get("probes").map_err(get)?,
                    successes: row.try_get("successes").map_err(get)?,
                })
            })
            .collect()
    }

    pub async fn all_rollups(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<HourlyRollups, StoreError> {
        const CONTEXT: &str = "reading the rollups of every asset";
        let pending: Vec<DB::Time> = sqlx::query_scalar("SELECT hour FROM rollup_pending WHERE hour < $1")
            .bind(DB::time(to))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(CONTEXT))?;
        let pending = pending
            .into_iter()
            .map(|stored| DB::read_time(stored, CONTEXT))
            .collect::<Result<Vec<DateTime<Utc>>, _>>()?;
        let stored = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM probe_rollups_hourly
             WHERE hour >= $1 AND hour < $2 AND hour NOT IN (SELECT hour FROM rollup_pending)",
            rollup::rollup_columns()
        )))
        .bind(DB::time(from))
        .bind(DB::time(to))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(CONTEXT))?;
        let mut rollups = HourlyRollups { stored: Vec::with_capacity(stored.len()), pending: Vec::new() };
        for row in &stored {
            let hour = DB::read_time(row.try_get("hour").map_err(StoreError::query(CONTEXT))?, CONTEXT)?;
            rollups.stored.push(Rollup::from_row(row, hour).map_err(StoreError::query(CONTEXT))?);
        }
        // Pending hours (the current one among them) are read from the raw events, even those
        // before `from`: the caller adds them to their days.
        if let Some(first) = pending.iter().min() {
            let live = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {} FROM probe_events WHERE timestamp >= $1 AND timestamp < $2 AND {} GROUP BY 1, 2",
                rollup::aggregate_select(DB::HOUR_OF_TIMESTAMP),
                rollup::COUNTED
            )))
            .bind(DB::time(*first))
            .bind(DB::time(to))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(CONTEXT))?;
            for row in &live {
                let hour = DB::read_time(row.try_get("hour").map_err(StoreError::query(CONTEXT))?, CONTEXT)?;
                if pending.contains(&hour) {
                    rollups.pending.push(Rollup::from_row(row, hour).map_err(StoreError::query(CONTEXT))?);
                }
            }
        }
        Ok(rollups)
    }

    pub async fn asset_exists(&self, asset_id: &str) -> Result<bool, StoreError> {
        sqlx::query("SELECT 1 FROM assets WHERE id = $1")
            .bind(asset_id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map(|row| row.is_some())
            .map_err(StoreError::query("looking up an asset"))
    }

    pub async fn maintenance_windows(&self) -> Result<Vec<StoredWindow>, StoreError> {
        const CONTEXT: &str = "reading maintenance windows";
        let rows = sqlx::query("SELECT id, definition, created_at FROM maintenance_windows ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(CONTEXT))?;
        rows.iter()
            .map(|row| {
                let get = |e| StoreError::Query { context: CONTEXT, source: e };
                Ok(StoredWindow {
                    id: row.try_get("id").map_err(get)?,
                    definition: row.try_get("definition").map_err(get)?,
                    created_at: DB::read_time(row.try_get("created_at").map_err(get)?, CONTEXT)?,
                })
            })
            .collect()
    }

    pub async fn deliveries(&self, query: &DeliveriesQuery) -> Result<Vec<DeliveryRecord>, StoreError> {
        const CONTEXT: &str = "reading notifications";
        // Each filter is either its value or NULL, so one statement serves every combination.
        let rows = sqlx::query(
            "SELECT id, incident_id, asset_id, channel, event, tier, decided_at, status, attempts, last_error, sent_at
             FROM notifications
             WHERE ($1 IS NULL OR incident_id = $1) AND ($2 IS NULL OR asset_id = $2)
               AND ($3 IS NULL OR channel = $3) AND ($4 IS NULL OR status = $4)
             ORDER BY decided_at DESC, id DESC LIMIT $5",
        )
        .bind(query.incident.map(|id| id.to_string()))
        .bind(query.asset.clone())
        .bind(query.channel.clone())
        .bind(query.status.map(|status| status.as_str().to_string()))
        .bind(i64::from(query.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(CONTEXT))?;
        rows.iter()
            .map(|row| {
                let get = |e| StoreError::Query { context: CONTEXT, source: e };
                let corrupt = |detail: String| StoreError::Corrupt { context: CONTEXT, detail };
                let incident_id: Option<String> = row.try_get("incident_id").map_err(get)?;
                let status: String = row.try_get("status").map_err(get)?;
                let sent_at: Option<DB::Time> = row.try_get("sent_at").map_err(get)?;
                Ok(DeliveryRecord {
                    id: row.try_get("id").map_err(get)?,
                    incident_id: incident_id
                        .map(|id| Uuid::parse_str(&id).map_err(|e| corrupt(format!("incident id {id:?}: {e}"))))
                        .transpose()?,
                    asset_id: row.try_get("asset_id").map_err(get)?,
                    channel: row.try_get("channel").map_err(get)?,
                    event: row.try_get("event").map_err(get)?,
                    tier: row
                        .try_get::<Option<i64>, _>("tier")
                        .map_err(get)?
                        .map(|tier| u32::try_from(tier).unwrap_or(u32::MAX)),
                    decided_at: DB::read_time(row.try_get("decided_at").map_err(get)?, CONTEXT)?,
                    status: status.parse().map_err(|_| corrupt(format!("notification status {status:?}")))?,
                    attempts: u32::try_from(row.try_get::<i32, _>("attempts").map_err(get)?).unwrap_or(0),
                    last_error: row.try_get("last_error").map_err(get)?,
                    sent_at: sent_at.map(|stored| DB::read_time(stored, CONTEXT)).transpose()?,
                })
            })
            .collect()
    }

    pub async fn pending_notifications(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        const CONTEXT: &str = "reading the pending notifications";
        let rows = sqlx::query(
            "SELECT id, channel, payload, decided_at FROM notifications WHERE status = 'pending'
             ORDER BY decided_at, id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(CONTEXT))?;
        rows.iter()
            .map(|row| {
                let get = |e| StoreError::Query { context: CONTEXT, source: e };
                let payload: String = row.try_get("payload").map_err(get)?;
                Ok(OutboxEntry {
                    id: row.try_get("id").map_err(get)?,
                    channel: row.try_get("channel").map_err(get)?,
                    notification: serde_json::from_str(&payload).map_err(|e| StoreError::Corrupt {
                        context: CONTEXT,
                        detail: format!("notification payload: {e}"),
                    })?,
                    decided_at: DB::read_time(row.try_get("decided_at").map_err(get)?, CONTEXT)?,
                })
            })
            .collect()
    }

    /// The outbox keys of notifications decided at or after `since` (see
    /// `Notification::outbox_key`), for the start-up to refuse deciding one again.
    pub async fn outbox_keys(&self, since: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
        const CONTEXT: &str = "reading the outbox keys";
        let rows = sqlx::query("SELECT dedup_key FROM notifications WHERE dedup_key IS NOT NULL AND decided_at >= $1")
            .bind(DB::time(since))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(CONTEXT))?;
        rows.iter()
            .map(|row| row.try_get("dedup_key").map_err(|e| StoreError::Query { context: CONTEXT, source: e }))
            .collect()
    }

    pub async fn prune_notifications(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM notifications WHERE decided_at < $1 AND status <> 'pending'")
            .bind(DB::time(before))
            .execute(&self.pool)
            .await
            .map(|done| DB::rows_affected(&done))
            .map_err(StoreError::query("pruning notifications"))
    }

    pub async fn add_incident_update(&self, update: &IncidentUpdate) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO incident_updates (id, incident_id, at, status, message) VALUES ($1, $2, $3, $4, $5)")
            .bind(update.id)
            .bind(DB::incident_id(update.incident_id))
            .bind(DB::time(update.at))
            .bind(update.status.as_str())
            .bind(update.message.clone())
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(StoreError::query("storing an incident update"))
    }

    pub async fn incident_updates(&self, incidents: &[Uuid]) -> Result<Vec<IncidentUpdate>, StoreError> {
        const CONTEXT: &str = "reading incident updates";
        // `IN ($1, …)` rather than an array parameter, which SQLite does not have; in chunks,
        // under both databases' limits on parameters.
        let mut updates = Vec::new();
        for chunk in incidents.chunks(500) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
            let sql = format!(
                "SELECT id, incident_id, at, status, message FROM incident_updates WHERE incident_id IN ({})
                 ORDER BY at, id",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(DB::incident_id(*id));
            }
            let rows = query.fetch_all(&self.pool).await.map_err(StoreError::query(CONTEXT))?;
            for row in &rows {
                let get = |e| StoreError::Query { context: CONTEXT, source: e };
                let status: String = row.try_get("status").map_err(get)?;
                updates.push(IncidentUpdate {
                    id: row.try_get("id").map_err(get)?,
                    incident_id: DB::from_incident_id(row.try_get("incident_id").map_err(get)?)
                        .map_err(|detail| StoreError::Corrupt { context: CONTEXT, detail })?,
                    at: DB::read_time(row.try_get("at").map_err(get)?, CONTEXT)?,
                    status: status.parse().map_err(|_| StoreError::Corrupt {
                        context: CONTEXT,
                        detail: format!("update status {status:?}"),
                    })?,
                    message: row.try_get("message").map_err(get)?,
                });
            }
        }
        updates.sort_by_key(|update| (update.at, update.id));
        Ok(updates)
    }

    pub async fn add_maintenance_window(&self, window: &StoredWindow) -> Result<bool, StoreError> {
        const CONTEXT: &str = "storing a maintenance window";
        sqlx::query(
            "INSERT INTO maintenance_windows (id, definition, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
        )
        .bind(window.id.clone())
        .bind(window.definition.clone())
        .bind(DB::time(window.created_at))
        .execute(&self.pool)
        .await
        .map(|done| DB::rows_affected(&done) == 1)
        .map_err(StoreError::query(CONTEXT))
    }

    pub async fn remove_maintenance_window(&self, id: &str) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM maintenance_windows WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map(|done| DB::rows_affected(&done) == 1)
            .map_err(StoreError::query("deleting a maintenance window"))
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop).map_err(StoreError::query("pinging the database"))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn incident_from_row(row: &DB::Row, context: &'static str) -> Result<Incident, StoreError> {
        let get = |e| StoreError::Query { context, source: e };
        let reason: Option<String> = row.try_get("close_reason").map_err(get)?;
        let ended_at: Option<DB::Time> = row.try_get("ended_at").map_err(get)?;
        let acknowledged_at: Option<DB::Time> = row.try_get("acknowledged_at").map_err(get)?;
        Ok(Incident {
            id: DB::from_incident_id(row.try_get("id").map_err(get)?)
                .map_err(|detail| StoreError::Corrupt { context, detail })?,
            asset_id: row.try_get("asset_id").map_err(get)?,
            severity: row.try_get("severity").map_err(get)?,
            summary: row.try_get::<Option<String>, _>("summary").map_err(get)?.unwrap_or_default(),
            started_at: DB::read_time(row.try_get("started_at").map_err(get)?, context)?,
            ended_at: ended_at.map(|stored| DB::read_time(stored, context)).transpose()?,
            close_reason: reason.as_deref().and_then(CloseReason::parse),
            caused_by: row.try_get("caused_by").map_err(get)?,
            flapping: row.try_get("flapping").map_err(get)?,
            acknowledged_at: acknowledged_at.map(|stored| DB::read_time(stored, context)).transpose()?,
            acknowledged_by: row.try_get("acknowledged_by").map_err(get)?,
            ack_note: row.try_get("ack_note").map_err(get)?,
            tier: row
                .try_get::<Option<i64>, _>("tier")
                .map_err(get)?
                .map(|tier| u32::try_from(tier).unwrap_or(u32::MAX)),
        })
    }
}
