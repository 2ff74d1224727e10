//! Cluster mode: the queue of confirmed changes of state that replicas hand to the holder of
//! the incidents role (`incident_events`, see `actors/relay.rs`). Like the other cluster tables
//! this is coordination, written straight from the relay rather than through Persistence, and
//! PostgreSQL only: on SQLite there is no cluster mode, and these answer as for a cluster of one.

use sqlx::Row;

use super::{Store, StoreError};

/// The channel on which a replica says it queued events, so that the holder takes them at once.
pub const CHANNEL: &str = "statusd_incident_events";

fn query(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { context, source }
}

impl Store {
    /// Queues `events` (JSON documents, in order) from `me`, in one statement whatever their
    /// number, and tells the holder on [`CHANNEL`].
    pub async fn queue_incident_events(&self, me: &str, events: &[String]) -> Result<(), StoreError> {
        let Store::Postgres(postgres) = self else { return Ok(()) };
        let pool = &postgres.sql.pool;
        // WITH ORDINALITY ... ORDER BY: the sequence numbers follow the order they were reported in.
        sqlx::query(
            "INSERT INTO incident_events (reporter, event)
             SELECT $1, e::jsonb FROM unnest($2::text[]) WITH ORDINALITY AS t(e, n) ORDER BY n",
        )
        .bind(me)
        .bind(events)
        .execute(pool)
        .await
        .map_err(query("queueing incident events"))?;
        let _ = sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(me).execute(pool).await;
        Ok(())
    }

    /// Takes up to `limit` queued events off the queue, oldest first: (reporter, JSON).
    ///
    /// Taken is gone: an event is deleted as it is read, so two holders for a moment (one whose
    /// session is being lost) never both decide it. One that a holder read and then died before
    /// deciding is lost; the asset's next confirmed change (or the next holder's resume from the
    /// open incidents) puts the cluster right.
    pub async fn take_incident_events(&self, limit: i64) -> Result<Vec<(String, String)>, StoreError> {
        let Store::Postgres(postgres) = self else { return Ok(Vec::new()) };
        let rows = sqlx::query(
            "DELETE FROM incident_events WHERE seq IN (SELECT seq FROM incident_events ORDER BY seq LIMIT $1)
             RETURNING seq, reporter, event::text AS event",
        )
        .bind(limit)
        .fetch_all(&postgres.sql.pool)
        .await
        .map_err(query("taking incident events"))?;
        let mut events: Vec<(i64, String, String)> =
            rows.iter().map(|row| (row.get("seq"), row.get("reporter"), row.get("event"))).collect();
        // RETURNING follows no order.
        events.sort_by_key(|(seq, _, _)| *seq);
        Ok(events.into_iter().map(|(_, reporter, event)| (reporter, event)).collect())
    }

    /// A listener on [`CHANNEL`], on PostgreSQL.
    pub async fn incident_events_listener(&self) -> Result<Option<sqlx::postgres::PgListener>, StoreError> {
        self.listener(CHANNEL, "listening for incident events").await
    }
}
