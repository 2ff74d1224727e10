//! Cluster mode, assets with `locations`: each location's verdict (`asset_location_states`),
//! written by the replica probing the asset there and read by every replica, the incidents
//! role's holder to decide (see `actors/quorum.rs`), the others to answer the API. Like the
//! other cluster tables these are coordination, written straight from the quorum loop rather
//! than through Persistence, and PostgreSQL only: on SQLite there is no cluster mode, and
//! these answer as for a cluster of none.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Store, StoreError};
use crate::quorum::{Heartbeat, LocationReport, LocationState};

/// The channel on which a replica says it reported verdicts, so the decider acts at once.
pub const CHANNEL: &str = "statusd_locations";

/// One verdict a replica reports for its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    pub asset_id: String,
    pub state: LocationState,
    pub changed_at: DateTime<Utc>,
}

/// Everything the decider reads in one go: every location's verdict on every asset, the
/// members' heartbeats, and the database's clock to judge them by.
#[derive(Debug, Clone, Default)]
pub struct Board {
    pub reports: Vec<(String, LocationReport)>,
    pub members: Vec<Heartbeat>,
    pub now: DateTime<Utc>,
}

fn query(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { context, source }
}

impl Store {
    /// Records `me`'s verdicts for `location`, in one statement whatever their number, and
    /// tells the others on [`CHANNEL`]. A verdict that repeats the location's stored one (a new
    /// owner in the location confirming it again) keeps the stored `changed_at`: the outage is
    /// dated from when the location first saw it.
    pub async fn report_locations(&self, me: &str, location: &str, verdicts: &[Reported]) -> Result<(), StoreError> {
        let Store::Postgres(postgres) = self else { return Ok(()) };
        let pool = &postgres.sql.pool;
        let ids: Vec<&str> = verdicts.iter().map(|v| v.asset_id.as_str()).collect();
        let states: Vec<&str> = verdicts.iter().map(|v| v.state.as_str()).collect();
        let changed: Vec<DateTime<Utc>> = verdicts.iter().map(|v| v.changed_at).collect();
        sqlx::query(
            "INSERT INTO asset_location_states (asset_id, location, state, reporter, changed_at, reported_at)
             SELECT asset_id, $1, state, $2, changed_at, now()
             FROM unnest($3::text[], $4::text[], $5::timestamptz[]) AS v(asset_id, state, changed_at)
             ON CONFLICT (asset_id, location) DO UPDATE SET
                 state = excluded.state, reporter = excluded.reporter, reported_at = excluded.reported_at,
                 changed_at = CASE WHEN asset_location_states.state = excluded.state
                                   THEN asset_location_states.changed_at ELSE excluded.changed_at END",
        )
        .bind(location)
        .bind(me)
        .bind(&ids)
        .bind(&states)
        .bind(&changed)
        .execute(pool)
        .await
        .map_err(query("reporting location verdicts"))?;
        let _ = sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(me).execute(pool).await;
        Ok(())
    }

    /// Every location's verdict on every asset, with the members' heartbeats and the time.
    pub async fn location_board(&self) -> Result<Board, StoreError> {
        let Store::Postgres(postgres) = self else { return Ok(Board { now: Utc::now(), ..Board::default() }) };
        let pool = &postgres.sql.pool;
        let now: DateTime<Utc> =
            sqlx::query_scalar("SELECT now()").fetch_one(pool).await.map_err(query("reading the time"))?;
        let rows = sqlx::query("SELECT asset_id, location, state, changed_at FROM asset_location_states")
            .fetch_all(pool)
            .await
            .map_err(query("reading location verdicts"))?;
        let reports = rows
            .iter()
            .map(|row| {
                let report = LocationReport {
                    location: row.get("location"),
                    state: LocationState::parse(row.get("state")),
                    changed_at: row.get("changed_at"),
                };
                (row.get("asset_id"), report)
            })
            .collect();
        let rows = sqlx::query("SELECT location, heartbeat_at FROM cluster_members WHERE mode = 'cluster'")
            .fetch_all(pool)
            .await
            .map_err(query("reading the members' heartbeats"))?;
        let members =
            rows.iter().map(|row| Heartbeat { location: row.get("location"), at: row.get("heartbeat_at") }).collect();
        Ok(Board { reports, members, now })
    }

    /// A listener on [`CHANNEL`], on PostgreSQL.
    pub async fn locations_listener(&self) -> Result<Option<sqlx::postgres::PgListener>, StoreError> {
        self.listener(CHANNEL, "listening for location verdicts").await
    }
}
