//! PostgreSQL backend: for production and for several statusd instances sharing one history.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgQueryResult};
use sqlx::{Connection, PgConnection, Postgres};
use uuid::Uuid;

use super::sql::{Dialect, SqlStore, UPSERT_ASSET};
use super::{Failure, StoreError, StoreOp, redact_url};
use crate::asset::AssetConfig;
use crate::probe::{Mark, ProbeResult, ProbeSpec};

/// A caller waiting longer for a connection is better off failing and retrying (Persistence
/// buffers; the API answers 503) than hanging while the database is away.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_CONNECTIONS: u32 = 10;
/// How long [`PostgresStore::session`] waits for a server whose connection slots are all taken.
const SESSION_PATIENCE: Duration = Duration::from_secs(30);

/// The store on PostgreSQL, following the primary of a multi-host URL.
#[derive(Clone)]
pub struct PostgresStore {
    /// Every query; [`PostgresStore::write`] adds following the primary to its writes.
    pub(super) sql: SqlStore<Postgres>,
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
        let sql = SqlStore::migrate(pool, sqlx::migrate!("./migrations/postgres"), url).await?;
        Ok(PostgresStore { sql, servers, current: Arc::new(AtomicUsize::new(first)) })
    }

    /// A session of its own on the host the pool uses, outside the pool: for what must live
    /// as long as the session does (advisory locks, LISTEN).
    ///
    /// A server with every connection slot taken (SQLSTATE 53300, `max_connections`) or not yet
    /// taking connections (57P03) is asked again with backoff for up to [`SESSION_PATIENCE`]:
    /// the pool's connections were just made, so the server is there, and slots free up as other
    /// clients close theirs. Other errors answer at once.
    pub async fn session(&self) -> Result<PgConnection, StoreError> {
        let deadline = tokio::time::Instant::now() + SESSION_PATIENCE;
        let mut backoff = crate::backoff::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            let options = &self.servers.hosts[self.current.load(Ordering::Relaxed) % self.servers.hosts.len()];
            let delay = backoff.next_delay();
            match PgConnection::connect_with(options).await {
                Ok(session) => return Ok(session),
                Err(sqlx::Error::Database(error))
                    if matches!(error.code().as_deref(), Some("53300" | "57P03"))
                        && tokio::time::Instant::now() + delay < deadline =>
                {
                    tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "no session to be had yet; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(source) => {
                    return Err(StoreError::Connect { url: "(a session of its own, for the claim)".into(), source });
                }
            }
        }
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
                self.sql.pool.set_connect_options(self.servers.hosts[found].clone());
                self.current.store(found, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(actor = "persistence", %error, "no host of the database URL takes writes"),
        }
    }

    /// Writes as [`SqlStore::write`] does, then, if the database was unavailable, looks for the
    /// host that takes writes now.
    pub async fn write(&self, changes: &[StoreOp], results: &[ProbeResult]) -> Result<(), StoreError> {
        let written = self.sql.write(changes, results).await;
        if written.as_ref().is_err_and(|error| error.failure() == Failure::Unavailable) {
            self.follow_the_primary().await;
        }
        written
    }
}

/// Times as `timestamptz`, incident ids as `uuid`, batches as arrays (UNNEST).
impl Dialect for Postgres {
    type Time = DateTime<Utc>;
    type IncidentId = Uuid;

    const HOUR_OF_TIMESTAMP: &'static str = "date_trunc('hour', timestamp AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'";
    const DAY_OF_HOUR: &'static str = "date_trunc('day', hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'";
    const LOCK_SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    const RESULTS_COMMIT_ALONE: bool = false;

    fn time(at: DateTime<Utc>) -> DateTime<Utc> {
        at
    }

    fn from_time(at: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
        Ok(at)
    }

    fn incident_id(id: Uuid) -> Uuid {
        id
    }

    fn from_incident_id(id: Uuid) -> Result<Uuid, String> {
        Ok(id)
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    async fn insert_results(tx: &mut PgConnection, results: &[ProbeResult]) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO probe_events (id, asset_id, timestamp, success, latency_ms, code, message, mark)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::bool[], $5::int8[], $6::int4[], $7::text[], $8::text[])
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(results.iter().map(|r| r.id).collect::<Vec<Uuid>>())
        .bind(results.iter().map(|r| r.asset_id.clone()).collect::<Vec<String>>())
        .bind(results.iter().map(|r| r.timestamp).collect::<Vec<DateTime<Utc>>>())
        .bind(results.iter().map(|r| r.success).collect::<Vec<bool>>())
        .bind(results.iter().map(|r| r.latency_ms).collect::<Vec<i64>>())
        .bind(results.iter().map(|r| r.code).collect::<Vec<Option<i32>>>())
        .bind(results.iter().map(|r| r.message.clone()).collect::<Vec<Option<String>>>())
        .bind(results.iter().map(|r| r.mark.map(Mark::as_str)).collect::<Vec<Option<&str>>>())
        .execute(&mut *tx)
        .await
        .map(drop)
    }

    /// One statement for any number of assets; status codes travel as array literals
    /// ("{200,301}") because UNNEST cannot take arrays of arrays of different lengths.
    async fn sync_assets(
        tx: &mut PgConnection,
        assets: &[Arc<AssetConfig>],
        mark_removed: bool,
    ) -> Result<(), StoreError> {
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
        let sql = format!(
            "INSERT INTO assets (id, name, address, asset_type, interval_seconds, timeout_seconds,
                                 expected_status_codes, metadata, updated_at, removed_at)
             SELECT id, name, address, asset_type, interval_seconds, timeout_seconds, codes::int[], metadata, now(), NULL
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int4[], $6::int4[], $7::text[], $8::jsonb[])
                  AS given(id, name, address, asset_type, interval_seconds, timeout_seconds, codes, metadata)
             ON CONFLICT (id) DO UPDATE SET {UPSERT_ASSET}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(assets.iter().map(|a| a.id.clone()).collect::<Vec<_>>())
            .bind(assets.iter().map(|a| a.name.clone()).collect::<Vec<_>>())
            // As the API shows it: the address as written may hold credentials.
            .bind(assets.iter().map(|asset| asset.shown_address()).collect::<Vec<_>>())
            .bind(assets.iter().map(|a| a.asset_type().to_string()).collect::<Vec<_>>())
            .bind(assets.iter().map(|a| i32::try_from(a.interval_seconds).unwrap_or(i32::MAX)).collect::<Vec<_>>())
            .bind(assets.iter().map(|a| i32::try_from(a.timeout_seconds).unwrap_or(i32::MAX)).collect::<Vec<_>>())
            .bind(codes)
            .bind(assets.iter().map(|a| sqlx::types::Json(a.metadata.clone())).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("syncing assets"))?;
        if !mark_removed {
            return Ok(());
        }
        let ids: Vec<String> = assets.iter().map(|a| a.id.clone()).collect();
        sqlx::query("UPDATE assets SET removed_at = now() WHERE removed_at IS NULL AND id <> ALL($1)")
            .bind(ids)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("marking removed assets"))?;
        Ok(())
    }
}
