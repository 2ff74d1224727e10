-- Cluster mode, assets with `locations`: each location's verdict on the asset, as the replica
-- probing it there last confirmed it (after its own failureThreshold). The replica holding the
-- incidents role combines them into one verdict per asset (see src/actors/quorum.rs).
CREATE TABLE IF NOT EXISTS asset_location_states (
    asset_id    TEXT NOT NULL,
    location    TEXT NOT NULL,
    -- up or down (degraded counts as up)
    state       TEXT NOT NULL,
    -- The replica that reported it.
    reporter    TEXT NOT NULL,
    -- When this location's verdict became `state` (the first result of the streak that confirmed it).
    changed_at  TIMESTAMPTZ NOT NULL,
    reported_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (asset_id, location)
);
