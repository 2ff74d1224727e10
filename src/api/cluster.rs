//! `GET /api/cluster`: the replicas sharing this database, what each probes, and who holds the
//! incidents role. Read from the store, so every replica answers the same.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::error::ErrorBody;
use super::{ApiError, ApiState};
use crate::actors::supervisor::SupervisorMsg;

/// The cluster as the database has it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    /// Whether this instance runs in cluster mode (`--cluster`); alone, it is the only member.
    pub enabled: bool,
    /// The instance that answered.
    pub instance_id: Option<String>,
    pub location: Option<String>,
    pub lease_seconds: Option<u64>,
    /// The live member holding the `incidents` role.
    pub incidents_holder: Option<String>,
    pub members: Vec<Member>,
}

/// One replica (or the instance alone on the database).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub id: String,
    pub host: String,
    pub location: String,
    pub version: String,
    /// `cluster`, or `standalone` for an instance alone on the database.
    pub mode: String,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
    /// Its heartbeat is younger than the lease; a member that is not is taken for dead.
    pub live: bool,
    /// Assets whose leases it holds, while it is live (alone: every asset).
    pub assets_owned: i64,
    /// `incidents` for the holder of that role.
    pub roles: Vec<String>,
}

#[utoipa::path(get, path = "/api/cluster", tag = "cluster",
    responses(
        (status = 200, description = "The members, their assets and roles, and the incidents-role holder", body = ClusterView),
        (status = 503, description = "The database or the supervisor did not answer", body = ErrorBody),
    ))]
pub async fn cluster(State(state): State<ApiState>) -> Result<Json<ClusterView>, ApiError> {
    let view = &state.services.cluster;
    let lease_seconds = if view.enabled { view.lease_seconds } else { 1 };
    let rows = state.store.members(lease_seconds).await?;
    let leases = state.store.leases_by_owner(lease_seconds).await?;
    // Alone, the instance is its own home location: it probes every asset.
    let assets = state.ask(|reply| SupervisorMsg::AssetIds(true, reply)).await?.len() as i64;
    let members: Vec<Member> = rows
        .into_iter()
        .map(|row| {
            let alone = row.mode == "standalone";
            let assets_owned =
                if alone { assets } else { leases.iter().find(|(owner, _)| *owner == row.id).map_or(0, |(_, n)| *n) };
            Member {
                assets_owned,
                // Alone, it holds the database's exclusive lock: alive while its row exists.
                live: row.live || alone,
                roles: if alone { vec!["incidents".into()] } else { row.roles },
                id: row.id,
                host: row.host,
                location: row.location,
                version: row.version,
                mode: row.mode,
                started_at: row.started_at,
                last_heartbeat: row.heartbeat_at,
            }
        })
        .collect();
    let incidents_holder =
        members.iter().find(|m| m.live && m.roles.iter().any(|role| role == "incidents")).map(|m| m.id.clone());
    Ok(Json(ClusterView {
        enabled: view.enabled,
        instance_id: view.enabled.then(|| view.me.clone()),
        location: view.enabled.then(|| view.location.clone()),
        lease_seconds: view.enabled.then_some(view.lease_seconds),
        incidents_holder,
        members,
    }))
}
