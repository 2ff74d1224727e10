//! The cluster's tables on PostgreSQL: members and their heartbeats, and asset leases. Time is
//! the database's (`now()`), so replicas with skewed clocks still agree on who is alive and
//! which lease has expired. SQLite has no cluster mode (settings refuse it): there these
//! answer as for a cluster of none.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use sqlx::postgres::PgListener;

use super::{Store, StoreError};

/// A replica (or the instance alone on the database) as `cluster_members` has it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberRow {
    pub id: String,
    pub host: String,
    pub location: String,
    pub version: String,
    pub mode: String,
    pub roles: Vec<String>,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    /// Its heartbeat is younger than the lease.
    pub live: bool,
}

/// A lease this round holds, and whose it was before if it changed hands.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldLease {
    pub asset_id: String,
    /// The dead replica whose lease this was, when it was another's (a takeover).
    pub taken_from: Option<String>,
}

fn query(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { context, source }
}

impl Store {
    /// Records that `me` is alive, with its roles; answers every member of the cluster, each
    /// judged live or not by `lease_seconds`.
    pub async fn heartbeat(&self, me: &str, roles: &[&str], lease_seconds: u64) -> Result<Vec<MemberRow>, StoreError> {
        let Store::Postgres(postgres) = self else { return Ok(Vec::new()) };
        let pool = &postgres.sql.pool;
        sqlx::query("UPDATE cluster_members SET heartbeat_at = now(), roles = $2 WHERE id = $1")
            .bind(me)
            .bind(roles.join(","))
            .execute(pool)
            .await
            .map_err(query("recording the heartbeat"))?;
        self.members(lease_seconds).await
    }

    /// Every member of the cluster, each judged live or not by `lease_seconds`.
    pub async fn members(&self, lease_seconds: u64) -> Result<Vec<MemberRow>, StoreError> {
        let Store::Postgres(postgres) = self else { return Ok(Vec::new()) };
        let rows = sqlx::query(
            "SELECT id, host, location, version, mode, roles, started_at, heartbeat_at,
                    heartbeat_at > now() - make_interval(secs => $1) AS live
             FROM cluster_members ORDER BY location, id",
        )
        .bind(lease_seconds as f64)
        .fetch_all(&postgres.sql.pool)
        .await
        .map_err(query("reading the cluster's members"))?;
        Ok(rows
            .iter()
            .map(|row| MemberRow {
                id: row.get("id"),
                host: row.get("host"),
                location: row.get("location"),
                version: row.get("version"),
                mode: row.get("mode"),
                roles: row
                    .get::<String, _>("roles")
                    .split(',')
                    .filter(|role| !role.is_empty())
                    .map(str::to_string)
                    .collect(),
                started_at: row.get("started_at"),
                heartbeat_at: row.get("heartbeat_at"),
                live: row.get("live"),
            })
            .collect())
    }

    /// Gives up `me`'s leases on `assets` (their actors are stopped already), so that their new
    /// owner takes them at once instead of waiting for them to expire.
    pub async fn release_leases(&self, me: &str, location: &str, assets: &[String]) -> Result<(), StoreError> {
        let Store::Postgres(postgres) = self else { return Ok(()) };
        sqlx::query("DELETE FROM asset_leases WHERE owner = $1 AND location = $2 AND asset_id = ANY($3)")
            .bind(me)
            .bind(location)
            .bind(assets)
            .execute(&postgres.sql.pool)
            .await
            .map_err(query("releasing leases"))?;
        Ok(())
    }

    /// Takes `me`'s leases on `assets` that are free or whose owner is dead (its heartbeat older
    /// than `lease_seconds`, or its row gone), in one statement whatever their number; answers
    /// the leases `me` holds now (one a live replica holds is not among them). Leases `me`
    /// holds already are only read: they live as long as its heartbeat, so a round writes
    /// nothing here unless an asset changes hands.
    pub async fn claim_leases(
        &self,
        me: &str,
        location: &str,
        assets: &[String],
        lease_seconds: u64,
    ) -> Result<Vec<HeldLease>, StoreError> {
        let Store::Postgres(postgres) = self else { return Ok(Vec::new()) };
        // The CTEs read the snapshot from before the upsert: `kept`, the leases `me` holds;
        // `dead`, whose lease each one taken was. A lease released while this statement waited
        // on its row is taken, but is no takeover.
        let rows = sqlx::query(
            "WITH wanted AS (SELECT unnest($3::text[]) AS asset_id),
                  live AS (SELECT id FROM cluster_members WHERE heartbeat_at >= now() - make_interval(secs => $4)),
                  kept AS (SELECT l.asset_id FROM asset_leases l JOIN wanted USING (asset_id)
                           WHERE l.location = $2 AND l.owner = $1),
                  dead AS (SELECT l.asset_id, l.owner FROM asset_leases l JOIN wanted USING (asset_id)
                           WHERE l.location = $2 AND l.owner <> $1 AND l.owner NOT IN (SELECT id FROM live)),
                  taken AS (
                      INSERT INTO asset_leases (asset_id, location, owner, taken_at)
                      SELECT asset_id, $2, $1, now() FROM wanted WHERE asset_id NOT IN (SELECT asset_id FROM kept)
                      ON CONFLICT (asset_id, location) DO UPDATE SET owner = excluded.owner, taken_at = excluded.taken_at
                      WHERE asset_leases.owner NOT IN (SELECT id FROM live)
                      RETURNING asset_id)
             SELECT taken.asset_id, dead.owner FROM taken LEFT JOIN dead USING (asset_id)
             UNION ALL SELECT asset_id, NULL FROM kept",
        )
        .bind(me)
        .bind(location)
        .bind(assets)
        .bind(lease_seconds as f64)
        .fetch_all(&postgres.sql.pool)
        .await
        .map_err(query("taking leases"))?;
        Ok(rows
            .iter()
            .map(|row| {
                let before: Option<String> = row.get("owner");
                HeldLease { asset_id: row.get("asset_id"), taken_from: before.filter(|owner| owner != me) }
            })
            .collect())
    }

    /// How many leases each live replica holds.
    pub async fn leases_by_owner(&self, lease_seconds: u64) -> Result<Vec<(String, i64)>, StoreError> {
        let Store::Postgres(postgres) = self else { return Ok(Vec::new()) };
        let rows = sqlx::query(
            "SELECT owner, count(*) AS n FROM asset_leases
             WHERE owner IN (SELECT id FROM cluster_members WHERE heartbeat_at >= now() - make_interval(secs => $1))
             GROUP BY owner",
        )
        .bind(lease_seconds as f64)
        .fetch_all(&postgres.sql.pool)
        .await
        .map_err(query("counting leases"))?;
        Ok(rows.iter().map(|row| (row.get("owner"), row.get("n"))).collect())
    }

    /// `me` leaves the cluster (a clean stop): its leases and its row go, so the others take
    /// its assets at their next round instead of after the lease.
    pub async fn leave_cluster(&self, me: &str) -> Result<(), StoreError> {
        let Store::Postgres(postgres) = self else { return Ok(()) };
        let pool = &postgres.sql.pool;
        sqlx::query("DELETE FROM asset_leases WHERE owner = $1")
            .bind(me)
            .execute(pool)
            .await
            .map_err(query("releasing leases"))?;
        sqlx::query("DELETE FROM cluster_members WHERE id = $1")
            .bind(me)
            .execute(pool)
            .await
            .map_err(query("leaving the cluster"))?;
        let _ = sqlx::query("SELECT pg_notify('statusd_cluster', $1)").bind(me).execute(pool).await;
        Ok(())
    }

    /// Tells the other replicas that membership or leases changed, so they act now.
    pub async fn notify_cluster(&self, me: &str) {
        let Store::Postgres(postgres) = self else { return };
        let _ = sqlx::query("SELECT pg_notify('statusd_cluster', $1)").bind(me).execute(&postgres.sql.pool).await;
    }

    /// A listener on the cluster's channel, on PostgreSQL.
    pub async fn cluster_listener(&self) -> Result<Option<PgListener>, StoreError> {
        self.listener("statusd_cluster", "listening for the cluster").await
    }

    /// A connection of its own that listens on `channel` (`LISTEN`), on PostgreSQL; None on
    /// SQLite, which has no cluster mode. `context` names it in errors.
    pub(super) async fn listener(
        &self,
        channel: &str,
        context: &'static str,
    ) -> Result<Option<PgListener>, StoreError> {
        let Store::Postgres(postgres) = self else { return Ok(None) };
        let mut listener = PgListener::connect_with(&postgres.sql.pool).await.map_err(query(context))?;
        listener.listen(channel).await.map_err(query(context))?;
        Ok(Some(listener))
    }
}

/// Waits for the next notification on `listener` (forever without one), and drops those that
/// came with it: several replicas notify at once in an outage, and one pass serves them all.
/// Answers whether receiving failed (the listener then reconnects at its next use).
pub async fn next_notification(listener: &mut Option<PgListener>) -> bool {
    match listener {
        Some(listener) => {
            let failed = listener.recv().await.is_err();
            while listener.next_buffered().is_some() {}
            failed
        }
        None => std::future::pending().await,
    }
}
