//! Who may use the database. An instance running alone claims it exclusively, so that a second
//! one started on the same database by mistake is refused instead of marking the first one's
//! assets removed and closing its incidents (it would: each believes its manifest is the whole
//! truth). The replicas of a cluster share it.
//!
//! On PostgreSQL the claim is a session advisory lock on a connection of its own: exclusive
//! alone, shared in a cluster, so the two modes exclude each other, and the lock goes the moment
//! its process dies (the server sees the connection close), with no lease to wait out after a
//! crash. On SQLite it is an exclusive lock on a file next to the database, released by the
//! kernel the same way. Whoever holds it writes who they are, for the refused one to name.

use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, Row};

use super::{PostgresStore, Store, StoreError};

/// The advisory lock on the database as a whole: "statusd" and a 1.
const DATABASE_LOCK: i64 = 0x7374_6174_7573_6401;
/// The advisory lock of the `incidents` role: one replica of a cluster at a time.
const INCIDENTS_LOCK: i64 = 0x7374_6174_7573_6402;

/// The instance that claims the database, as the others see it.
#[derive(Debug, Clone)]
pub struct Claimant {
    pub id: String,
    pub host: String,
    pub location: String,
    pub version: String,
    /// A replica of a cluster (shares the database) or alone on it.
    pub cluster: bool,
}

/// Why this instance may not use the database.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error(
        "the database is in use by statusd instance {id} (host {host}, since {since}), which runs alone on it: \
         two instances on one database would each close the other's incidents; stop it, or run every \
         instance with --cluster"
    )]
    HeldAlone { id: String, host: String, since: String },
    #[error(
        "the database is in use by a cluster of statusd replicas ({ids}): start this instance with --cluster \
         to join them, or give it a database of its own"
    )]
    HeldByCluster { ids: String },
    #[error(
        "the database is in use by another statusd instance that has not named itself yet; stop it, or run \
         every instance with --cluster"
    )]
    HeldUnnamed,
    #[error(
        "the session holding this instance's claim on the database was lost, and another instance took the \
         database meanwhile"
    )]
    Lost,
    #[error("cannot claim the database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot claim the database's lock file {path}: {source}")]
    LockFile { path: String, source: std::io::Error },
}

/// The claim, held as long as this value lives.
pub struct Claim {
    holder: Holder,
    /// Shared (a cluster's replica) or exclusive (alone).
    cluster: bool,
}

enum Holder {
    /// The session that holds the advisory locks; queried by the cluster's heartbeat.
    Postgres(tokio::sync::Mutex<PgConnection>),
    /// The locked file (the kernel releases it when the process ends).
    File(#[allow(dead_code)] std::fs::File),
    /// An in-memory SQLite database: nobody else can open it.
    Nothing,
}

impl Claim {
    /// Claims `store`'s database for `me`: exclusively when alone, shared in a cluster.
    pub async fn take(store: &Store, me: &Claimant, url: &str) -> Result<Claim, ClaimError> {
        match store {
            Store::Postgres(postgres) => claim_postgres(postgres, me).await,
            Store::Sqlite(_) => claim_file(url, me),
        }
    }

    /// Tries to take the `incidents` role (held until this process ends or its session drops);
    /// whether this instance holds it now.
    pub async fn try_incidents_role(&self) -> Result<bool, StoreError> {
        let Holder::Postgres(session) = &self.holder else { return Ok(true) };
        let mut session = session.lock().await;
        sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(INCIDENTS_LOCK)
            .fetch_one(&mut *session)
            .await
            .map_err(|source| StoreError::Query { context: "taking the incidents role", source })
    }

    /// Checks that the session holding the claim is alive; if it died (the server restarted,
    /// the network dropped it), opens a new one and takes the claim again. Answers whether the
    /// session was replaced: its other locks (the incidents role) are gone then. An error says
    /// the claim could not be taken again: another instance took the database meanwhile, or
    /// the database is still away.
    pub async fn keep(&self, store: &Store) -> Result<bool, ClaimError> {
        let (Holder::Postgres(session), Store::Postgres(postgres)) = (&self.holder, store) else { return Ok(false) };
        let mut session = session.lock().await;
        if sqlx::query("SELECT 1").execute(&mut *session).await.is_ok() {
            return Ok(false);
        }
        let mut fresh = postgres.session().await?;
        let got: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(lock_statement(self.cluster)))
            .bind(DATABASE_LOCK)
            .fetch_one(&mut fresh)
            .await
            .map_err(|source| StoreError::Query { context: "claiming the database again", source })?;
        if !got {
            let _ = fresh.close().await;
            return Err(ClaimError::Lost);
        }
        *session = fresh;
        Ok(true)
    }

    /// Ends the claim now rather than when the value drops, closing the session cleanly.
    pub async fn release(self) {
        if let Holder::Postgres(session) = self.holder {
            let _ = session.into_inner().close().await;
        }
    }
}

/// Shared for a cluster's replicas, exclusive for an instance alone.
fn lock_statement(cluster: bool) -> &'static str {
    if cluster { "SELECT pg_try_advisory_lock_shared($1)" } else { "SELECT pg_try_advisory_lock($1)" }
}

async fn claim_postgres(store: &PostgresStore, me: &Claimant) -> Result<Claim, ClaimError> {
    let query = |context| move |source| ClaimError::Store(StoreError::Query { context, source });
    let mut session = store.session().await?;
    let got: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(lock_statement(me.cluster)))
        .bind(DATABASE_LOCK)
        .fetch_one(&mut session)
        .await
        .map_err(query("claiming the database"))?;
    if !got {
        let holders = sqlx::query(
            "SELECT id, host, mode, started_at FROM cluster_members ORDER BY (mode = 'standalone') DESC, heartbeat_at DESC",
        )
        .fetch_all(&mut session)
        .await
        .map_err(query("reading who holds the database"))?;
        let _ = session.close().await;
        let standalone = holders.iter().find(|row| row.get::<String, _>("mode") == "standalone");
        return Err(match (standalone, me.cluster) {
            (Some(row), _) => ClaimError::HeldAlone {
                id: row.get("id"),
                host: row.get("host"),
                since: row.get::<DateTime<Utc>, _>("started_at").to_rfc3339_opts(SecondsFormat::Secs, true),
            },
            (None, false) if !holders.is_empty() => ClaimError::HeldByCluster {
                ids: holders.iter().take(5).map(|row| row.get::<String, _>("id")).collect::<Vec<_>>().join(", "),
            },
            (None, _) => ClaimError::HeldUnnamed,
        });
    }
    if !me.cluster {
        // Alone on the database: every row left is from an instance that is gone.
        sqlx::query("DELETE FROM cluster_members")
            .execute(&mut session)
            .await
            .map_err(query("clearing the members of old runs"))?;
        sqlx::query("DELETE FROM asset_leases").execute(&mut session).await.map_err(query("clearing old leases"))?;
    } else {
        // A replica that ran alone before and died left its row: no one runs alone now.
        sqlx::query("DELETE FROM cluster_members WHERE mode = 'standalone'")
            .execute(&mut session)
            .await
            .map_err(query("clearing the members of old runs"))?;
    }
    sqlx::query(
        "INSERT INTO cluster_members (id, host, location, version, mode, roles, started_at, heartbeat_at)
         VALUES ($1, $2, $3, $4, $5, '', now(), now())
         ON CONFLICT (id) DO UPDATE SET host = excluded.host, location = excluded.location,
             version = excluded.version, mode = excluded.mode, roles = '', started_at = now(), heartbeat_at = now()",
    )
    .bind(&me.id)
    .bind(&me.host)
    .bind(&me.location)
    .bind(&me.version)
    .bind(if me.cluster { "cluster" } else { "standalone" })
    .execute(&mut session)
    .await
    .map_err(query("naming this instance"))?;
    Ok(Claim { holder: Holder::Postgres(tokio::sync::Mutex::new(session)), cluster: me.cluster })
}

/// What the lock file holds: who has it.
#[derive(serde::Serialize, serde::Deserialize)]
struct FileHolder {
    id: String,
    host: String,
    since: String,
}

fn claim_file(url: &str, me: &Claimant) -> Result<Claim, ClaimError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|source| StoreError::Connect { url: super::redact_url(url), source })?;
    let database = options.get_filename();
    if url.contains(":memory:") || url.contains("mode=memory") || database.as_os_str().is_empty() {
        return Ok(Claim { holder: Holder::Nothing, cluster: false });
    }
    let mut path = PathBuf::from(database).into_os_string();
    path.push(".lock");
    let path = PathBuf::from(path);
    let io = |source| ClaimError::LockFile { path: path.display().to_string(), source };
    let mut file =
        std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut written = String::new();
            let _ = file.read_to_string(&mut written);
            return Err(match serde_json::from_str::<FileHolder>(&written) {
                Ok(holder) => ClaimError::HeldAlone { id: holder.id, host: holder.host, since: holder.since },
                Err(_) => ClaimError::HeldUnnamed,
            });
        }
        Err(std::fs::TryLockError::Error(error)) => return Err(io(error)),
    }
    let holder = FileHolder {
        id: me.id.clone(),
        host: me.host.clone(),
        since: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
    };
    // Invariant: three strings always serialize.
    let written = serde_json::to_vec(&holder).expect("strings serialize");
    file.set_len(0).and_then(|()| file.rewind()).and_then(|()| file.write_all(&written)).map_err(io)?;
    Ok(Claim { holder: Holder::File(file), cluster: false })
}
