//! The store: probe history and incidents, in SQLite (embedded default) or PostgreSQL.
//!
//! [`Store`] is the one interface the rest of statusd sees. Its queries are written once, in
//! `sql.rs`, generic over the database; each backend's file holds how it connects and what its
//! SQL does differently, with native types (sqlx's `AnyPool` cannot read timestamps), and the
//! enum forwards to them. The Persistence actor is the only writer; the API only reads.

pub mod claim;
pub mod cluster;
pub mod incident_events;
pub mod locations;
mod postgres;
pub mod rollup;
mod sql;
pub mod sqlite;
pub mod states;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::asset::AssetConfig;
use crate::backoff::Backoff;
use crate::notify::Notification;
use crate::probe::ProbeResult;

pub use postgres::PostgresStore;
pub use rollup::{DayTotal, HourlyRollups, Rollup, Uptime};
pub use sqlite::SqliteStore;

/// A handle to the database; cheap to clone (it is a pool).
#[derive(Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

/// Calls the same method on whichever backend this store is.
macro_rules! forward {
    ($store:expr, $backend:ident => $call:expr) => {
        match $store {
            Store::Sqlite($backend) => $call,
            Store::Postgres(PostgresStore { sql: $backend, .. }) => $call,
        }
    };
}

impl Store {
    /// Opens the database, retrying with backoff while it cannot be reached (it may still be
    /// starting, as in a fresh `docker compose up`); other errors end the start at once.
    pub async fn connect_with_retries(url: &str, patience: Duration) -> Result<Store, StoreError> {
        // Checked: no deadline is the same as one too far away to reach.
        let deadline = tokio::time::Instant::now().checked_add(patience);
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
        loop {
            let delay = backoff.next_delay();
            match Store::connect(url).await {
                Err(StoreError::Connect { url, source })
                    if deadline.is_none_or(|deadline| tokio::time::Instant::now() + delay < deadline) =>
                {
                    tracing::warn!(db = %url, error = %source, retry_in_ms = delay.as_millis() as u64, "database unreachable; retrying");
                    tokio::time::sleep(delay).await;
                }
                outcome => return outcome,
            }
        }
    }

    /// Opens the database named by `url` (its scheme picks the backend) and applies migrations.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Store::Sqlite(sqlite::connect(url).await?)),
            "postgres" | "postgresql" => Ok(Store::Postgres(PostgresStore::connect(url).await?)),
            _ => Err(StoreError::UnsupportedScheme(redact_url(url))),
        }
    }

    /// Makes the `assets` table mirror the config: upserts every asset and, with
    /// `mark_removed`, marks the others removed (their history stays). Only an instance alone on
    /// the database, or the cluster's `incidents` role holder, may say what is removed.
    pub async fn sync_assets(&self, assets: &[Arc<AssetConfig>], mark_removed: bool) -> Result<(), StoreError> {
        forward!(self, s => s.sync_assets(assets, mark_removed).await)
    }

    /// Applies changes, in order, then stores probe results, in one transaction (on SQLite the
    /// results commit alone, after the changes: `Dialect::RESULTS_COMMIT_ALONE` in `sql.rs`). Doing
    /// any of it again is harmless, so a batch whose commit was not acknowledged, or that failed
    /// half-way, can be retried whole.
    pub async fn write(&self, changes: &[StoreOp], results: &[ProbeResult]) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(sqlite) => sqlite.write(changes, results).await,
            // Follows the primary of a multi-host URL when the write finds it gone.
            Store::Postgres(postgres) => postgres.write(changes, results).await,
        }
    }

    pub async fn open_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        forward!(self, s => s.incidents(IncidentState::Open, u32::MAX).await)
    }

    /// Assets confirmed degraded and not yet confirmed over: asset id and since when.
    pub async fn degradations(&self) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        forward!(self, s => s.degradations().await)
    }

    /// One incident, open or closed.
    pub async fn incident(&self, id: Uuid) -> Result<Option<Incident>, StoreError> {
        forward!(self, s => s.incident(id).await)
    }

    /// An incident's timeline, oldest first.
    pub async fn timeline(&self, id: Uuid) -> Result<Vec<TimelineEntry>, StoreError> {
        forward!(self, s => s.timeline(id).await)
    }

    /// Incidents newest first.
    pub async fn incidents(&self, state: IncidentState, limit: u32) -> Result<Vec<Incident>, StoreError> {
        forward!(self, s => s.incidents(state, limit).await)
    }

    /// Probe history of one asset, newest first.
    pub async fn probe_events(&self, asset_id: &str, query: &EventsQuery) -> Result<Vec<ProbeResult>, StoreError> {
        forward!(self, s => s.probe_events(asset_id, query).await)
    }

    /// Rolls up the oldest pending hour that ended before `before` (the start of the current
    /// hour) from its raw events; returns it, or None when no completed hour is pending.
    pub async fn roll_up_next(&self, before: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
        forward!(self, s => s.roll_up_next(before).await)
    }

    /// Deletes up to `limit` probe events older than `before`, never from an hour that is not
    /// rolled up yet; returns how many it deleted. Small batches keep each transaction short,
    /// so writers never wait long.
    pub async fn prune_events(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        forward!(self, s => s.prune_events(before, limit).await)
    }

    /// Deletes hourly rollups older than `before`.
    pub async fn prune_rollups(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        forward!(self, s => s.prune_rollups(before).await)
    }

    /// Hourly rollups of one asset with `from <= hour < to`, oldest first; hours not rolled up
    /// yet (the current one among them) are aggregated from the raw events.
    pub async fn rollups(
        &self,
        asset_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Rollup>, StoreError> {
        forward!(self, s => s.rollups(asset_id, from, to).await)
    }

    /// When each incident (of one asset, or of all) that was open at some time in `[from, to)`
    /// began and ended, oldest first: started before `to` and not ended by `from`.
    pub async fn incident_spans(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        asset_id: Option<&str>,
    ) -> Result<Vec<IncidentSpan>, StoreError> {
        forward!(self, s => s.incident_spans(from, to, asset_id).await)
    }

    /// Asset id and time of every result marked `inconclusive` in `[from, to)` (of one asset,
    /// or of all), read through a partial index: they are few. Raw events are kept
    /// `retention.days`, so older ones are gone.
    pub async fn inconclusive_results(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        asset_id: Option<&str>,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        forward!(self, s => s.inconclusive_results(from, to, asset_id).await)
    }

    /// Every asset ever configured, with when it first was.
    pub async fn assets_created(&self) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        forward!(self, s => s.assets_created().await)
    }

    /// Incidents open now, or that started or ended at or after `since`, newest first.
    pub async fn incidents_since(&self, since: DateTime<Utc>) -> Result<Vec<Incident>, StoreError> {
        forward!(self, s => s.incidents_since(since).await)
    }

    /// Probes and successes per asset and UTC day, for every asset, from the hourly rollups
    /// with `from <= hour < to` that are rolled up (one query; pending hours are left out:
    /// [`Store::all_rollups`] reads them from the raw events).
    pub async fn daily_totals(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<DayTotal>, StoreError> {
        forward!(self, s => s.daily_totals(from, to).await)
    }

    /// Hourly rollups of every asset (unordered): the rolled-up hours with `from <= hour < to`
    /// from `probe_rollups_hourly`, and every pending hour before `to` (the current one among
    /// them, even one before `from`) aggregated from the raw events; three queries whatever the
    /// number of assets.
    pub async fn all_rollups(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<HourlyRollups, StoreError> {
        forward!(self, s => s.all_rollups(from, to).await)
    }

    /// Whether the asset is or was ever configured (removed assets keep their history).
    pub async fn asset_exists(&self, asset_id: &str) -> Result<bool, StoreError> {
        forward!(self, s => s.asset_exists(asset_id).await)
    }

    /// Deliveries newest first, filtered as `query` says.
    pub async fn deliveries(&self, query: &DeliveriesQuery) -> Result<Vec<DeliveryRecord>, StoreError> {
        forward!(self, s => s.deliveries(query).await)
    }

    /// The outbox's pending notifications, oldest first: decided, never sent nor given up.
    pub async fn pending_notifications(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        forward!(self, s => s.pending_notifications().await)
    }

    /// The outbox keys of the notifications decided since `since` (unique in the store).
    pub async fn outbox_keys(&self, since: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
        forward!(self, s => s.outbox_keys(since).await)
    }

    /// Deletes the deliveries decided before `before` that are no longer pending.
    pub async fn prune_notifications(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        forward!(self, s => s.prune_notifications(before).await)
    }

    /// Stores a public update on an incident (written at once: the caller is told if it failed).
    pub async fn add_incident_update(&self, update: &IncidentUpdate) -> Result<(), StoreError> {
        forward!(self, s => s.add_incident_update(update).await)
    }

    /// The updates of these incidents, oldest first.
    pub async fn incident_updates(&self, incidents: &[Uuid]) -> Result<Vec<IncidentUpdate>, StoreError> {
        forward!(self, s => s.incident_updates(incidents).await)
    }

    /// The maintenance windows created by the API, oldest first.
    pub async fn maintenance_windows(&self) -> Result<Vec<StoredWindow>, StoreError> {
        forward!(self, s => s.maintenance_windows().await)
    }

    /// Stores a window made by the API; false (and nothing changed) when its id is taken.
    pub async fn add_maintenance_window(&self, window: &StoredWindow) -> Result<bool, StoreError> {
        forward!(self, s => s.add_maintenance_window(window).await)
    }

    /// Deletes a window made by the API; false when there was none with this id.
    pub async fn remove_maintenance_window(&self, id: &str) -> Result<bool, StoreError> {
        forward!(self, s => s.remove_maintenance_window(id).await)
    }

    /// A cheap round trip, for readiness.
    pub async fn ping(&self) -> Result<(), StoreError> {
        forward!(self, s => s.ping().await)
    }

    /// Waits for connections in use to be returned, then closes them.
    pub async fn close(&self) {
        forward!(self, s => s.close().await)
    }
}

/// An outage as stored in `incidents`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Incident {
    pub id: Uuid,
    pub asset_id: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub severity: String,
    pub summary: String,
    pub close_reason: Option<CloseReason>,
    /// The asset whose outage caused this one (through `dependsOn`): this incident sent no
    /// notification of its own while that asset was down.
    pub caused_by: Option<String>,
    /// The flap breaker holds this incident open: its asset changes state too often to report
    /// each change.
    pub flapping: bool,
    /// When someone acknowledged it (`POST /api/incidents/{id}/ack`); the first ack stays.
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub ack_note: Option<String>,
    /// The highest escalation tier notified (0: `onDown` or the first tier); None before any.
    pub tier: Option<u32>,
}

impl Incident {
    /// A newly opened incident: not acknowledged, no tier notified yet.
    pub fn opened(id: Uuid, asset_id: String, started_at: DateTime<Utc>, severity: String, summary: String) -> Self {
        Incident {
            id,
            asset_id,
            started_at,
            ended_at: None,
            severity,
            summary,
            close_reason: None,
            caused_by: None,
            flapping: false,
            acknowledged_at: None,
            acknowledged_by: None,
            ack_note: None,
            tier: None,
        }
    }
}

/// An incident's asset and time span: what SLA reports read of it.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentSpan {
    pub asset_id: String,
    pub started_at: DateTime<Utc>,
    /// None while open.
    pub ended_at: Option<DateTime<Utc>>,
}

/// One step in an incident's life, as `GET /api/incidents/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    /// Made by statusd (UUIDv7), so a retried write stores the entry once.
    #[serde(skip)]
    pub id: Uuid,
    #[serde(skip)]
    pub incident_id: Uuid,
    pub at: DateTime<Utc>,
    pub kind: TimelineKind,
    /// For people: the summary, the tier and its channels, who acknowledged and why, how it
    /// closed.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TimelineKind {
    Opened,
    /// A tier was notified.
    Notified,
    Acknowledged,
    /// The flap breaker took hold: the asset changes state too often to report each change.
    Flapping,
    Closed,
}

impl TimelineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TimelineKind::Opened => "opened",
            TimelineKind::Notified => "notified",
            TimelineKind::Acknowledged => "acknowledged",
            TimelineKind::Flapping => "flapping",
            TimelineKind::Closed => "closed",
        }
    }

    fn parse(text: &str) -> Option<TimelineKind> {
        [
            TimelineKind::Opened,
            TimelineKind::Notified,
            TimelineKind::Acknowledged,
            TimelineKind::Flapping,
            TimelineKind::Closed,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }
}

/// A public update on an incident, written by people for the status page and the feed
/// (`POST /api/incidents/{id}/updates`). A message, not a state: `resolved` closes nothing, the
/// probes decide when an incident ends.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncidentUpdate {
    /// Made by statusd (UUIDv7).
    pub id: Uuid,
    pub incident_id: Uuid,
    pub at: DateTime<Utc>,
    pub status: UpdateStatus,
    pub message: String,
}

/// Where the people working on an incident say they are, in the words status pages use
/// (Atlassian Statuspage, Better Stack).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum UpdateStatus {
    Investigating,
    Identified,
    Monitoring,
    Resolved,
}

impl UpdateStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A maintenance window made by the API, as `maintenance_windows` keeps it. The store does not
/// read the definition: the maintenance module checks it again when it is loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredWindow {
    pub id: String,
    /// The window as JSON (`{"id", "assets" | "match", "start", "end" | "cron", ...}`).
    pub definition: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CloseReason {
    Recovered,
    /// The asset left the config while down: closed without a recovery.
    Removed,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Recovered => "recovered",
            CloseReason::Removed => "removed",
        }
    }

    fn parse(text: &str) -> Option<CloseReason> {
        match text {
            "recovered" => Some(CloseReason::Recovered),
            "removed" => Some(CloseReason::Removed),
            _ => None,
        }
    }
}

/// A change queued by the Persistence actor ahead of probe results.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreOp {
    /// Make `assets` mirror a (reloaded) config; before the results of any new asset. The flag
    /// says whether assets left out are marked removed (see [`Store::sync_assets`]).
    SyncAssets(std::sync::Arc<Vec<std::sync::Arc<AssetConfig>>>, bool),
    Incident(IncidentWrite),
    Degradation(DegradationWrite),
    Notification(NotificationWrite),
}

/// A change to `notifications`, the outbox.
#[derive(Debug, Clone, PartialEq)]
pub enum NotificationWrite {
    /// The policy decided it: written before it is sent, as `pending`.
    Decided(OutboxEntry),
    /// The channel took it.
    Sent { id: Uuid, at: DateTime<Utc>, attempts: u32 },
    /// It was given up: every attempt failed, or it waited too long (`error` says which).
    Failed { id: Uuid, at: DateTime<Utc>, attempts: u32, error: String },
}

/// A notification for one channel, as the outbox keeps it until it is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// Made by statusd (UUIDv7) when the notification is decided.
    pub id: Uuid,
    pub channel: String,
    pub notification: Notification,
    pub decided_at: DateTime<Utc>,
}

/// Where a notification is: waiting or being sent, sent, or given up.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Sent,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One notification for one channel, as `GET /api/notifications` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRecord {
    pub id: Uuid,
    pub incident_id: Option<Uuid>,
    pub asset_id: String,
    pub channel: String,
    /// `DOWN`, `RECOVERY`, … (see the README's list of events).
    pub event: String,
    pub tier: Option<u32>,
    pub decided_at: DateTime<Utc>,
    pub status: DeliveryStatus,
    /// Sends tried (a rate limit's refusal is not one).
    pub attempts: u32,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// Which deliveries to read, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveriesQuery {
    pub incident: Option<Uuid>,
    pub asset: Option<String>,
    pub channel: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub limit: u32,
}

/// A change to `degradations`: the assets confirmed degraded.
#[derive(Debug, Clone, PartialEq)]
pub enum DegradationWrite {
    /// Confirmed degraded since `since` (its first degraded result).
    Start { asset_id: String, since: DateTime<Utc> },
    /// No longer degraded, or no longer configured.
    End { asset_id: String },
}

/// A change to `incidents`.
#[derive(Debug, Clone, PartialEq)]
pub enum IncidentWrite {
    Open(Incident),
    /// The flap breaker began (true) or stopped (false) holding the incident open.
    Flapping {
        id: Uuid,
        flapping: bool,
    },
    /// The outage was attributed to another asset's (or, with None, no longer is).
    CausedBy {
        id: Uuid,
        caused_by: Option<String>,
    },
    Close {
        id: Uuid,
        ended_at: DateTime<Utc>,
        reason: CloseReason,
    },
    /// A tier was notified: the incident's tier rises to it (never falls).
    Tier {
        id: Uuid,
        tier: u32,
    },
    /// The first acknowledgement; a later one changes nothing.
    Ack {
        id: Uuid,
        at: DateTime<Utc>,
        by: String,
        note: Option<String>,
    },
    Timeline(TimelineEntry),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentState {
    Open,
    Closed,
    All,
}

/// Which page of an asset's history to read.
#[derive(Debug, Clone, PartialEq)]
pub struct EventsQuery {
    pub limit: u32,
    /// Only events strictly older than this (the cursor for the next page).
    pub before: Option<DateTime<Utc>>,
    /// Only events at or after this.
    pub since: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: use sqlite://FILE or postgres://…")]
    UnsupportedScheme(String),
    #[error("cannot open the database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("cannot migrate the database {url}: {source}")]
    Migrate { url: String, source: sqlx::migrate::MigrateError },
    #[error("{context}: {source}")]
    Query { context: &'static str, source: sqlx::Error },
    #[error("{context}: unexpected value in the database: {detail}")]
    Corrupt { context: &'static str, detail: String },
}

/// What a failed store operation means for whoever asked: a decision, not a description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Failure {
    /// The database cannot be reached or cannot take this now (connection refused or reset, no
    /// free connection, locked, disk full, read-only, shutting down, a deadlock): the same
    /// request may well succeed later.
    Unavailable,
    /// The database refused the data itself (a constraint, an encoding, a value out of range):
    /// asking again changes nothing; only leaving the offending row out does.
    Rejected,
    /// Anything else: a statement the database does not understand (a schema that does not
    /// match), a value statusd cannot read back. Neither the data's fault nor passing.
    Internal,
}

impl StoreError {
    fn query(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError::Query { context, source }
    }

    /// Classifies the error by its cause: the SQLSTATE of PostgreSQL
    /// (<https://www.postgresql.org/docs/current/errcodes-appendix.html>) or the result code of
    /// SQLite (<https://www.sqlite.org/rescode.html>), and sqlx's own error kinds.
    pub fn failure(&self) -> Failure {
        match self {
            StoreError::Connect { .. } => Failure::Unavailable,
            StoreError::Query { source, .. } => sqlx_failure(source),
            StoreError::UnsupportedScheme(_) | StoreError::Migrate { .. } | StoreError::Corrupt { .. } => {
                Failure::Internal
            }
        }
    }
}

fn sqlx_failure(error: &sqlx::Error) -> Failure {
    use sqlx::Error as E;
    match error {
        E::Io(_) | E::Tls(_) | E::Protocol(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed | E::BeginFailed => {
            Failure::Unavailable
        }
        E::Encode(_) | E::InvalidArgument(_) => Failure::Rejected,
        E::Database(database) => {
            let code = database.code().map(|c| c.into_owned()).unwrap_or_default();
            match database.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                Some(_) => sqlite_failure(code.parse().unwrap_or(0)),
                None => postgres_failure(&code),
            }
        }
        _ => Failure::Internal,
    }
}

/// By SQLSTATE class (the first two characters) and a few codes of their own.
fn postgres_failure(sqlstate: &str) -> Failure {
    match sqlstate {
        // read_only_sql_transaction: a primary that failed over to standby.
        "25006" => Failure::Unavailable,
        // lock_not_available
        "55P03" => Failure::Unavailable,
        _ => match sqlstate.get(..2).unwrap_or_default() {
            // connection exception, transaction rollback (serialization, deadlock), insufficient
            // resources (disk full, out of memory), operator intervention (admin shutdown,
            // cannot connect now, query canceled), system error (I/O).
            "08" | "40" | "53" | "57" | "58" => Failure::Unavailable,
            // data exception (out of range, bad encoding), integrity constraint violation, and
            // an exception raised by a trigger (PL/pgSQL).
            "22" | "23" | "P0" => Failure::Rejected,
            _ => Failure::Internal,
        },
    }
}

/// By the primary result code (the low byte of the extended code sqlx reports).
fn sqlite_failure(extended_code: i32) -> Failure {
    match extended_code & 0xff {
        // PERM, BUSY, LOCKED, NOMEM, READONLY, INTERRUPT, IOERR, FULL, CANTOPEN, PROTOCOL,
        // SCHEMA (the schema changed under a prepared statement: preparing again works), NOLFS, AUTH
        3 | 5 | 6 | 7 | 8 | 9 | 10 | 13 | 14 | 15 | 17 | 22 | 23 => Failure::Unavailable,
        // TOOBIG, CONSTRAINT (a RAISE(ABORT) in a trigger included), MISMATCH, RANGE
        18 | 19 | 20 | 25 => Failure::Rejected,
        _ => Failure::Internal,
    }
}

/// Runs `work` in a transaction on a connection of its own and commits it. If it fails for any
/// reason but refused data, the connection is closed instead of going back to the pool (a row the
/// database refuses leaves the connection as good as it was): a failed COMMIT may leave
/// the database's transaction open (SQLite does, on a full disk, while sqlx counts it as still
/// open or as ended), and a connection left like that holds the write lock for good ("database is
/// locked" for every other writer) while its own later writes become savepoints that never
/// commit. A PostgreSQL connection whose server turned read-only or is shutting down is of no
/// further use either. Closing it ends whatever it held; the pool opens a fresh one.
async fn transaction<DB, T>(
    pool: &sqlx::Pool<DB>,
    context: &'static str,
    work: impl AsyncFnOnce(&mut DB::Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError>
where
    DB: sqlx::Database,
{
    on_connection(pool, context, async |connection| in_transaction::<DB, T>(connection, context, work).await).await
}

/// Runs `work` in a transaction on `connection` and commits it.
async fn in_transaction<DB, T>(
    connection: &mut DB::Connection,
    context: &'static str,
    work: impl AsyncFnOnce(&mut DB::Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError>
where
    DB: sqlx::Database,
{
    use sqlx::Connection;
    let mut tx = connection.begin().await.map_err(StoreError::query(context))?;
    let value = work(&mut tx).await?;
    tx.commit().await.map_err(StoreError::query(context))?;
    Ok(value)
}

/// Runs `work` on a connection of its own, each statement committing alone (autocommit); a
/// connection that failed for any reason but refused data is closed, as in [`transaction`].
async fn on_connection<DB, T>(
    pool: &sqlx::Pool<DB>,
    context: &'static str,
    work: impl AsyncFnOnce(&mut DB::Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError>
where
    DB: sqlx::Database,
{
    let mut connection = pool.acquire().await.map_err(StoreError::query(context))?;
    let outcome = work(&mut connection).await;
    if outcome.as_ref().is_err_and(|error: &StoreError| error.failure() != Failure::Rejected) {
        connection.close_on_drop();
    }
    outcome
}

/// The distinct hours of a batch of results: the hours a write makes pending.
fn pending_hours(results: &[ProbeResult]) -> Vec<DateTime<Utc>> {
    let mut hours: Vec<DateTime<Utc>> = results.iter().map(|r| rollup::hour_of(r.timestamp)).collect();
    hours.sort_unstable();
    hours.dedup();
    hours
}

/// The smallest UUIDv7 of the millisecond `at`: every event probed before `at` has a smaller id.
fn first_id_at(at: DateTime<Utc>) -> Uuid {
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    bytes[6] = 0x70; // version 7
    bytes[8] = 0x80; // RFC 4122 variant
    Uuid::from_bytes(bytes)
}

/// Database URLs are masked as every address is: `postgres://user:***@db/x?password=***`.
pub use crate::redact::url as redact_url;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_id_of_a_millisecond_splits_ids_made_before_it_from_ids_made_at_or_after() {
        let at = DateTime::from_timestamp_millis(1_790_000_000_123).expect("valid");
        let made = |ms: i64| {
            let t = DateTime::from_timestamp_millis(ms).expect("valid");
            let stamp = uuid::Timestamp::from_unix(uuid::NoContext, t.timestamp() as u64, t.timestamp_subsec_nanos());
            Uuid::new_v7(stamp)
        };
        let cutoff = first_id_at(at);
        assert_eq!(cutoff.get_version_num(), 7);
        for _ in 0..100 {
            assert!(made(at.timestamp_millis() - 1) < cutoff);
            assert!(made(at.timestamp_millis()) >= cutoff);
        }
    }

    #[test]
    fn database_errors_are_classified_by_their_codes() {
        for (code, failure) in [
            ("25006", Failure::Unavailable), // read-only transaction: a failed-over primary
            ("08006", Failure::Unavailable), // connection failure
            ("57P01", Failure::Unavailable), // admin shutdown
            ("53100", Failure::Unavailable), // disk full
            ("40P01", Failure::Unavailable), // deadlock
            ("23514", Failure::Rejected),    // check violation
            ("22003", Failure::Rejected),    // numeric value out of range
            ("P0001", Failure::Rejected),    // raised by a trigger
            ("42P01", Failure::Internal),    // undefined table
        ] {
            assert_eq!(postgres_failure(code), failure, "{code}");
        }
        for (code, failure) in [
            (5, Failure::Unavailable),   // SQLITE_BUSY
            (517, Failure::Unavailable), // SQLITE_BUSY_SNAPSHOT
            (13, Failure::Unavailable),  // SQLITE_FULL
            (1811, Failure::Rejected),   // SQLITE_CONSTRAINT_TRIGGER
            (275, Failure::Rejected),    // SQLITE_CONSTRAINT_CHECK
            (1, Failure::Internal),      // SQLITE_ERROR: no such table
        ] {
            assert_eq!(sqlite_failure(code), failure, "{code}");
        }
    }
}
