//! PostgreSQL backend: for production and for several statusd instances sharing one history.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, PgPool, Row};
use uuid::Uuid;

use super::rollup::{self, Rollup};
use super::{
    CloseReason, EventsQuery, Failure, Incident, IncidentState, IncidentWrite, StoreError, StoreOp, first_id_at,
    pending_hours, redact_url, transaction,
};
use crate::asset::AssetConfig;
use crate::probe::{ProbeDetail, ProbeResult, ProbeSpec};

/// A caller waiting longer for a connection is better off failing and retrying (Persistence
/// buffers; the API answers 503) than hanging while the database is away.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_CONNECTIONS: u32 = 10;

#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    servers: Arc<Servers>,
    /// Which of `servers` new connections go to.
    current: Arc<AtomicUsize>,
}

/// The servers a URL names, and what a session on them must be able to do: libpq's multi-host
/// URLs (`postgres://user@db1:5432,db2:5432/statusd?target_session_attrs=read-write`,
/// <https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-MULTIPLE-HOSTS>), which
/// sqlx does not read itself.
struct Servers {
    /// One set of options per host, in the order the URL gives them.
    hosts: Vec<PgConnectOptions>,
    /// `target_session_attrs=read-write`: a session must take writes (`SHOW
    /// transaction_read_only` is off), as on a primary, never on a standby or a demoted primary.
    read_write: bool,
}

impl Servers {
    /// Splits a URL into one URL per host, with the same user, database and parameters.
    /// Hand-written because no URL crate reads a comma-separated host list; it only splits the
    /// authority, and sqlx parses each resulting URL.
    fn parse(url: &str) -> Result<Servers, String> {
        let (scheme, rest) = url.split_once("://").ok_or("expected postgres://…")?;
        let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
            None => (String::new(), authority),
        };
        let (path, query) = tail.split_once('?').map_or((tail, ""), |(path, query)| (path, query));
        let mut read_write = false;
        let mut kept = Vec::new();
        for param in query.split('&').filter(|p| !p.is_empty()) {
            match param.split_once('=') {
                Some(("target_session_attrs", "read-write")) => read_write = true,
                Some(("target_session_attrs", "any")) => {}
                Some(("target_session_attrs", other)) => {
                    return Err(format!("target_session_attrs={other} is not supported (use read-write or any)"));
                }
                _ => kept.push(param),
            }
        }
        let query = if kept.is_empty() { String::new() } else { format!("?{}", kept.join("&")) };
        let hosts = hosts
            .split(',')
            .map(|host| format!("{scheme}://{userinfo}{host}{path}{query}").parse::<PgConnectOptions>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        Ok(Servers { hosts, read_write })
    }

    /// Whether a new session on `options` is of the kind asked for; the error says why not.
    async fn check(&self, options: &PgConnectOptions) -> Result<(), sqlx::Error> {
        let mut connection = PgConnection::connect_with(options).await?;
        let checked = self.check_session(&mut connection).await;
        let _ = connection.close().await;
        checked
    }

    async fn check_session(&self, connection: &mut PgConnection) -> Result<(), sqlx::Error> {
        if !self.read_write {
            return Ok(());
        }
        let read_only: String = sqlx::query_scalar("SHOW transaction_read_only").fetch_one(&mut *connection).await?;
        if read_only == "on" {
            return Err(sqlx::Error::Protocol(
                "the server takes no writes (transaction_read_only is on) and the URL asks for target_session_attrs=read-write".into(),
            ));
        }
        Ok(())
    }

    /// The first host from `start` on (wrapping) that gives a session of the kind asked, or the
    /// last error.
    async fn find(&self, start: usize) -> Result<usize, sqlx::Error> {
        if self.hosts.len() == 1 && !self.read_write {
            // Nothing to choose: the pool's own connect reports an unreachable server.
            return Ok(0);
        }
        let mut last = None;
        for step in 0..self.hosts.len() {
            let index = (start + step) % self.hosts.len();
            match self.check(&self.hosts[index]).await {
                Ok(()) => return Ok(index),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or(sqlx::Error::PoolClosed))
    }
}

impl PostgresStore {
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let connect_error = |source| StoreError::Connect { url: redact_url(url), source };
        let servers =
            Arc::new(Servers::parse(url).map_err(|reason| connect_error(sqlx::Error::Configuration(reason.into())))?);
        let first = servers.find(0).await.map_err(connect_error)?;
        let checker = Arc::clone(&servers);
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // A session that cannot write (a standby, a demoted primary) is closed at once.
            .after_connect(move |connection, _| {
                let checker = Arc::clone(&checker);
                Box::pin(async move { checker.check_session(connection).await })
            })
            .connect_with(servers.hosts[first].clone())
            .await
            .map_err(connect_error)?;
        // Concurrent instances migrating at once are serialised by sqlx's advisory lock.
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate { url: redact_url(url), source })?;
        Ok(PostgresStore { pool, servers, current: Arc::new(AtomicUsize::new(first)) })
    }

    /// After a write failed because the database is unavailable: with several hosts, new
    /// connections go to the first one (from the next on) that gives a session of the kind
    /// asked, so writes follow the primary through a failover. Connections to the old one are
    /// closed as their writes fail.
    async fn follow_the_primary(&self) {
        if self.servers.hosts.len() < 2 {
            return;
        }
        let current = self.current.load(Ordering::Relaxed);
        match self.servers.find((current + 1) % self.servers.hosts.len()).await {
            Ok(found) if found != current => {
                tracing::warn!(
                    actor = "persistence",
                    from = current,
                    to = found,
                    "database failover: new connections go to another host of the URL"
                );
                self.pool.set_connect_options(self.servers.hosts[found].clone());
                self.current.store(found, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(actor = "persistence", %error, "no host of the database URL takes writes"),
        }
    }

    pub async fn sync_assets(&self, assets: &[AssetConfig]) -> Result<(), StoreError> {
        transaction(&self.pool, "syncing assets", async |tx| sync_assets_in(tx, assets).await).await
    }

    pub async fn write(&self, changes: &[StoreOp], results: &[ProbeResult]) -> Result<(), StoreError> {
        let written = self.write_once(changes, results).await;
        if written.as_ref().is_err_and(|error| error.failure() == Failure::Unavailable) {
            self.follow_the_primary().await;
        }
        written
    }

    async fn write_once(&self, changes: &[StoreOp], results: &[ProbeResult]) -> Result<(), StoreError> {
        const CONTEXT: &str = "writing probe results and incidents";
        transaction(&self.pool, CONTEXT, async |tx| {
            for change in changes {
                match change {
                    StoreOp::SyncAssets(assets) => sync_assets_in(tx, assets).await?,
                    StoreOp::Incident(IncidentWrite::Open(incident)) => {
                        sqlx::query(
                            "INSERT INTO incidents (id, asset_id, severity, summary, started_at)
                             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                        )
                        .bind(incident.id)
                        .bind(incident.asset_id.clone())
                        .bind(incident.severity.clone())
                        .bind(incident.summary.clone())
                        .bind(incident.started_at)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query(CONTEXT))?;
                    }
                    StoreOp::Incident(IncidentWrite::Close { id, ended_at, reason }) => {
                        sqlx::query(
                            "UPDATE incidents SET ended_at = $1, close_reason = $2 WHERE id = $3 AND ended_at IS NULL",
                        )
                        .bind(*ended_at)
                        .bind(reason.as_str())
                        .bind(*id)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query(CONTEXT))?;
                    }
                }
            }
            if !results.is_empty() {
                // One statement per batch, whatever its size: columns travel as arrays.
                sqlx::query(
                    "INSERT INTO probe_events (id, asset_id, timestamp, success, latency_ms, code, message)
                     SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::bool[], $5::int8[], $6::int4[], $7::text[])
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(results.iter().map(|r| r.id).collect::<Vec<Uuid>>())
                .bind(results.iter().map(|r| r.asset_id.clone()).collect::<Vec<String>>())
                .bind(results.iter().map(|r| r.timestamp).collect::<Vec<DateTime<Utc>>>())
                .bind(results.iter().map(|r| r.success).collect::<Vec<bool>>())
                .bind(results.iter().map(|r| r.latency_ms).collect::<Vec<i64>>())
                .bind(results.iter().map(|r| r.code).collect::<Vec<Option<i32>>>())
                .bind(results.iter().map(|r| r.message.clone()).collect::<Vec<Option<String>>>())
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query(CONTEXT))?;
                sqlx::query("INSERT INTO rollup_pending (hour) SELECT * FROM UNNEST($1::timestamptz[]) ON CONFLICT (hour) DO NOTHING")
                    .bind(pending_hours(results))
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
             FROM incidents {filter} ORDER BY started_at DESC LIMIT $1"
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
             WHERE asset_id = $1 AND ($2::timestamptz IS NULL OR timestamp < $2)
                                 AND ($3::timestamptz IS NULL OR timestamp >= $3)
             ORDER BY timestamp DESC LIMIT $4",
        )
        .bind(asset_id.to_string())
        .bind(query.before)
        .bind(query.since)
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
                    timestamp: row.try_get("timestamp").map_err(get)?,
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
            // Locked, so that a write marking the hour pending again waits for this roll-up and its
            // mark survives it; skipped by another instance rolling up at the same time.
            let hour: Option<DateTime<Utc>> = sqlx::query_scalar(
                "SELECT hour FROM rollup_pending WHERE hour < $1 ORDER BY hour LIMIT 1 FOR UPDATE SKIP LOCKED",
            )
            .bind(before)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::query(CONTEXT))?;
            let Some(hour) = hour else { return Ok(None) };
            sqlx::query("DELETE FROM probe_rollups_hourly WHERE hour = $1")
                .bind(hour)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query(CONTEXT))?;
            let sql = format!(
                "INSERT INTO probe_rollups_hourly ({}) SELECT {} FROM probe_events WHERE id >= $2 AND id < $3 GROUP BY asset_id",
                rollup::rollup_columns(),
                rollup::aggregate_select("$1::timestamptz")
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(hour)
                .bind(first_id_at(hour))
                .bind(first_id_at(hour + TimeDelta::hours(1)))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query(CONTEXT))?;
            sqlx::query("DELETE FROM rollup_pending WHERE hour = $1")
                .bind(hour)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query(CONTEXT))?;
            Ok(Some(hour))
        })
        .await
    }

    pub async fn prune_events(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        const CONTEXT: &str = "pruning probe events";
        transaction(&self.pool, CONTEXT, async |tx| {
            // The primary key is a UUIDv7 of the probe time: pruning walks it, no extra index. Hours
            // not rolled up yet keep their events until they are.
            let pending: Option<DateTime<Utc>> = sqlx::query_scalar("SELECT min(hour) FROM rollup_pending")
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::query(CONTEXT))?;
            let cutoff = pending.map_or(before, |pending| pending.min(before));
            sqlx::query(
                "DELETE FROM probe_events WHERE id IN (SELECT id FROM probe_events WHERE id < $1 ORDER BY id LIMIT $2)",
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
            sqlx::query("DELETE FROM probe_rollups_hourly WHERE hour < $1")
                .bind(before)
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
        let pending: Vec<DateTime<Utc>> =
            sqlx::query_scalar("SELECT hour FROM rollup_pending WHERE hour >= $1 AND hour < $2")
                .bind(from)
                .bind(to)
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::query(CONTEXT))?;
        let stored = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM probe_rollups_hourly WHERE asset_id = $1 AND hour >= $2 AND hour < $3 ORDER BY hour",
            rollup::rollup_columns()
        )))
        .bind(asset_id.to_string())
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(CONTEXT))?;
        let mut rollups = Vec::with_capacity(stored.len() + pending.len());
        for row in &stored {
            let hour: DateTime<Utc> = row.try_get("hour").map_err(StoreError::query(CONTEXT))?;
            if !pending.contains(&hour) {
                rollups.push(Rollup::from_row(row, hour).map_err(StoreError::query(CONTEXT))?);
            }
        }
        // Pending hours (the current one among them) are read from the raw events.
        if let Some(first) = pending.iter().min() {
            let live = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {} FROM probe_events WHERE asset_id = $1 AND timestamp >= $2 AND timestamp < $3 GROUP BY 1, 2",
                rollup::aggregate_select("date_trunc('hour', timestamp AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'")
            )))
            .bind(asset_id.to_string())
            .bind(*first)
            .bind(to)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(CONTEXT))?;
            for row in &live {
                let hour: DateTime<Utc> = row.try_get("hour").map_err(StoreError::query(CONTEXT))?;
                if pending.contains(&hour) {
                    rollups.push(Rollup::from_row(row, hour).map_err(StoreError::query(CONTEXT))?);
                }
            }
        }
        rollups.sort_by_key(|r| r.hour);
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

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop).map_err(StoreError::query("pinging the database"))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Makes `assets` mirror the config inside the caller's transaction.
async fn sync_assets_in(tx: &mut sqlx::PgConnection, assets: &[AssetConfig]) -> Result<(), StoreError> {
    const CONTEXT: &str = "syncing assets";
    // One statement for any number of assets; status codes travel as array literals
    // ("{200,301}") because UNNEST cannot take arrays of arrays of different lengths.
    let codes: Vec<Option<String>> = assets
        .iter()
        .map(|asset| match &asset.probe {
            ProbeSpec::Http(http) => Some(format!(
                "{{{}}}",
                http.expected_status_codes.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
            )),
            _ => None,
        })
        .collect();
    sqlx::query(
        "INSERT INTO assets (id, name, address, asset_type, interval_seconds, timeout_seconds,
                             expected_status_codes, metadata, updated_at, removed_at)
         SELECT id, name, address, asset_type, interval_seconds, timeout_seconds, codes::int[], metadata, now(), NULL
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int4[], $6::int4[], $7::text[], $8::jsonb[])
              AS given(id, name, address, asset_type, interval_seconds, timeout_seconds, codes, metadata)
         ON CONFLICT (id) DO UPDATE SET
            name = excluded.name, address = excluded.address, asset_type = excluded.asset_type,
            interval_seconds = excluded.interval_seconds, timeout_seconds = excluded.timeout_seconds,
            expected_status_codes = excluded.expected_status_codes, metadata = excluded.metadata,
            updated_at = now(), removed_at = NULL",
    )
    .bind(assets.iter().map(|a| a.id.clone()).collect::<Vec<_>>())
    .bind(assets.iter().map(|a| a.name.clone()).collect::<Vec<_>>())
    // As the API shows it: the address as written may hold credentials.
    .bind(assets.iter().map(AssetConfig::shown_address).collect::<Vec<_>>())
    .bind(assets.iter().map(|a| a.asset_type().to_string()).collect::<Vec<_>>())
    .bind(assets.iter().map(|a| i32::try_from(a.interval_seconds).unwrap_or(i32::MAX)).collect::<Vec<_>>())
    .bind(assets.iter().map(|a| i32::try_from(a.timeout_seconds).unwrap_or(i32::MAX)).collect::<Vec<_>>())
    .bind(codes)
    .bind(assets.iter().map(|a| sqlx::types::Json(a.metadata.clone())).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await
    .map_err(StoreError::query(CONTEXT))?;
    let ids: Vec<String> = assets.iter().map(|a| a.id.clone()).collect();
    sqlx::query("UPDATE assets SET removed_at = now() WHERE removed_at IS NULL AND id <> ALL($1)")
        .bind(ids)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("marking removed assets"))?;
    Ok(())
}

fn incident_from_row(row: &PgRow, context: &'static str) -> Result<Incident, StoreError> {
    let get = |e| StoreError::Query { context, source: e };
    let reason: Option<String> = row.try_get("close_reason").map_err(get)?;
    Ok(Incident {
        id: row.try_get("id").map_err(get)?,
        asset_id: row.try_get("asset_id").map_err(get)?,
        severity: row.try_get("severity").map_err(get)?,
        summary: row.try_get::<Option<String>, _>("summary").map_err(get)?.unwrap_or_default(),
        started_at: row.try_get("started_at").map_err(get)?,
        ended_at: row.try_get("ended_at").map_err(get)?,
        close_reason: reason.as_deref().and_then(CloseReason::parse),
    })
}
