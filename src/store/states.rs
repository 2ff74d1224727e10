//! Cluster mode: every asset's live state (`asset_states`), written by the replica probing it and
//! read by every other one, so that any replica answers the API for every asset (see
//! `actors/states.rs`). Like the other cluster tables this is coordination, written straight
//! from the states loop rather than through Persistence, and PostgreSQL only: on SQLite there is
//! no cluster mode, and these write nothing and read nothing.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use uuid::Uuid;

use super::{Store, StoreError};

/// One asset's live state on its way to `asset_states`, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateWrite {
    pub asset_id: String,
    /// As the API spells it (`up`, `down`, …).
    pub status: String,
    pub since: Option<DateTime<Utc>>,
    /// The `lastProbe` the API shows, as JSON.
    pub last_probe: Option<serde_json::Value>,
    pub consecutive_failures: i32,
    pub consecutive_successes: i32,
    pub open_incident_id: Option<Uuid>,
    pub skipped_ticks: i64,
}

/// One row of `asset_states`: a [`StateWrite`], who wrote it and when (the database's time).
#[derive(Debug, Clone, PartialEq)]
pub struct StateRow {
    pub state: StateWrite,
    pub owner: String,
    pub reported_at: DateTime<Utc>,
}

/// What one read answers: the rows, and the database's time taken before they were read (the
/// point the next incremental read starts from, less its margin).
#[derive(Debug, Clone, Default)]
pub struct StatesRead {
    pub rows: Vec<StateRow>,
    pub now: DateTime<Utc>,
}

fn query(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { context, source }
}

impl Store {
    /// Writes `me`'s `states` in one statement whatever their number (a JSON array, unpacked by
    /// the database), each stamped with the database's `now()`. Only the states of assets whose
    /// lease `me` holds in `location` are written: a replica that lost an asset a moment ago
    /// cannot overwrite what its new owner wrote. Answers the assets written and their stamp.
    ///
    /// Errors: [`StoreError::Query`] when the database refuses or cannot be reached (nothing
    /// is written).
    pub async fn write_states(
        &self,
        me: &str,
        location: &str,
        states: &[StateWrite],
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        let Store::Postgres(postgres) = self else { return Ok(Vec::new()) };
        if states.is_empty() {
            return Ok(Vec::new());
        }
        let batch = serde_json::to_value(states)
            .map_err(|error| StoreError::Corrupt { context: "writing live states", detail: error.to_string() })?;
        // Each id appears once in `states` (the caller keeps one per asset): ON CONFLICT may not
        // touch a row twice in one statement. The lease is looked up per row through its primary
        // key (LATERAL ... LIMIT 1): as a plain join, with the leases' statistics stale after a
        // takeover (estimated 1 row for the owner's 10,000), PostgreSQL 15 chose a nested loop
        // that unpacked the whole batch once per lease: 66 s for 10,000 states of 30,000, against
        // 0.36 s this way (EXPLAIN ANALYZE, found by `statusd-load --replicas 3`).
        let rows = sqlx::query(
            "INSERT INTO asset_states (asset_id, owner, status, since, last_probe, consecutive_failures,
                                       consecutive_successes, open_incident_id, skipped_ticks, reported_at)
             SELECT v.asset_id, $1, v.status, v.since, v.last_probe, v.consecutive_failures,
                    v.consecutive_successes, v.open_incident_id, v.skipped_ticks, now()
             FROM jsonb_to_recordset($3) AS v(asset_id text, status text, since timestamptz, last_probe jsonb,
                                              consecutive_failures int, consecutive_successes int,
                                              open_incident_id uuid, skipped_ticks bigint)
             CROSS JOIN LATERAL (SELECT 1 FROM asset_leases l
                                 WHERE l.asset_id = v.asset_id AND l.location = $2 AND l.owner = $1 LIMIT 1) AS held
             ON CONFLICT (asset_id) DO UPDATE SET
                 owner = excluded.owner, status = excluded.status, since = excluded.since,
                 last_probe = excluded.last_probe, consecutive_failures = excluded.consecutive_failures,
                 consecutive_successes = excluded.consecutive_successes,
                 open_incident_id = excluded.open_incident_id, skipped_ticks = excluded.skipped_ticks,
                 reported_at = excluded.reported_at
             RETURNING asset_id, reported_at",
        )
        .bind(me)
        .bind(location)
        .bind(batch)
        .fetch_all(&postgres.sql.pool)
        .await
        .map_err(query("writing live states"))?;
        Ok(rows.iter().map(|row| (row.get("asset_id"), row.get("reported_at"))).collect())
    }

    /// The rows of `asset_states`: every one with `after` None; with `after`, those stamped
    /// later than it and written by another replica than `me` (its own it knows). Answers them
    /// with the database's time, taken before they are read.
    ///
    /// Errors: [`StoreError::Query`] when the database cannot be read.
    pub async fn read_states(&self, me: &str, after: Option<DateTime<Utc>>) -> Result<StatesRead, StoreError> {
        let Store::Postgres(postgres) = self else { return Ok(StatesRead { rows: Vec::new(), now: Utc::now() }) };
        let pool = &postgres.sql.pool;
        // Taken first: a row committed between the two statements is read now and again next
        // time, never missed.
        let now: DateTime<Utc> =
            sqlx::query_scalar("SELECT now()").fetch_one(pool).await.map_err(query("reading the time"))?;
        let columns = "SELECT asset_id, owner, status, since, last_probe, consecutive_failures, consecutive_successes,
                              open_incident_id, skipped_ticks, reported_at FROM asset_states";
        let rows = match after {
            None => sqlx::query(columns).fetch_all(pool).await,
            Some(after) => {
                // Two constant strings: nothing of the caller's is in the statement.
                sqlx::query(sqlx::AssertSqlSafe(format!("{columns} WHERE reported_at > $1 AND owner <> $2")))
                    .bind(after)
                    .bind(me)
                    .fetch_all(pool)
                    .await
            }
        }
        .map_err(query("reading live states"))?;
        let rows = rows
            .iter()
            .map(|row| StateRow {
                state: StateWrite {
                    asset_id: row.get("asset_id"),
                    status: row.get("status"),
                    since: row.get("since"),
                    last_probe: row.get("last_probe"),
                    consecutive_failures: row.get("consecutive_failures"),
                    consecutive_successes: row.get("consecutive_successes"),
                    open_incident_id: row.get("open_incident_id"),
                    skipped_ticks: row.get("skipped_ticks"),
                },
                owner: row.get("owner"),
                reported_at: row.get("reported_at"),
            })
            .collect();
        Ok(StatesRead { rows, now })
    }
}
