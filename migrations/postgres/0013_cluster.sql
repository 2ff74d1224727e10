-- Who uses this database. An instance running alone writes its row here so that a second one,
-- refused, can name it; the replicas of a cluster write theirs and keep `heartbeat_at` fresh:
-- a replica whose heartbeat is older than the lease is taken for dead.
CREATE TABLE IF NOT EXISTS cluster_members (
    id           TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    location     TEXT NOT NULL,
    version      TEXT NOT NULL,
    -- standalone (alone on the database) or cluster
    mode         TEXT NOT NULL,
    -- Comma-separated: incidents
    roles        TEXT NOT NULL DEFAULT '',
    started_at   TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL
);

-- Which replica of a location probes an asset. A lease lasts as long as its owner's heartbeat is
-- younger than the lease: renewing every lease is one heartbeat, and only a change of owner
-- writes here. A lease whose owner is dead (or gone) may be taken by another replica.
CREATE TABLE IF NOT EXISTS asset_leases (
    asset_id   TEXT NOT NULL,
    location   TEXT NOT NULL,
    owner      TEXT NOT NULL,
    taken_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (asset_id, location)
);
CREATE INDEX IF NOT EXISTS idx_asset_leases_owner ON asset_leases(owner);
