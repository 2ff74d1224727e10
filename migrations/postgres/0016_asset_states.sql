-- Cluster mode: each asset's live state as the replica probing it last wrote it (see
-- src/actors/states.rs), so that every replica answers the API for every asset. Coordination,
-- not history: one row per asset, overwritten, written by its lease's owner only.
CREATE TABLE IF NOT EXISTS asset_states (
    asset_id              TEXT PRIMARY KEY,
    -- The replica that wrote it (its `cluster_members.id`).
    owner                 TEXT NOT NULL,
    -- As the API spells it: up, down, degraded, flapping, maintenance, inconclusive, unknown, crashed.
    status                TEXT NOT NULL,
    since                 TIMESTAMPTZ NULL,
    -- The latest probe result as the API shows it (`lastProbe`).
    last_probe            JSONB NULL,
    consecutive_failures  INT NOT NULL,
    consecutive_successes INT NOT NULL,
    open_incident_id      UUID NULL,
    skipped_ticks         BIGINT NOT NULL,
    -- The database's time of the write: what the replicas' incremental reads follow.
    reported_at           TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_asset_states_reported_at ON asset_states(reported_at);
