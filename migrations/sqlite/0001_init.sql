-- The seed's schema in SQLite's types. Timestamps are Unix milliseconds (INTEGER): compact, and
-- compared as plain numbers by the (asset_id, timestamp) index that history queries use.
CREATE TABLE IF NOT EXISTS assets (
    id                    TEXT PRIMARY KEY,
    name                  TEXT NOT NULL,
    address               TEXT NOT NULL,
    asset_type            TEXT NOT NULL DEFAULT 'http',
    interval_seconds      INTEGER NOT NULL DEFAULT 300,
    timeout_seconds       INTEGER NOT NULL DEFAULT 5,
    expected_status_codes TEXT,
    metadata              TEXT,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    -- Set when the asset leaves the config; its history stays.
    removed_at            INTEGER
);

CREATE TABLE IF NOT EXISTS probe_events (
    -- A UUIDv7 made by statusd, so a retried write cannot store a result twice.
    id         BLOB PRIMARY KEY,
    asset_id   TEXT NOT NULL REFERENCES assets(id),
    timestamp  INTEGER NOT NULL,
    success    BOOLEAN NOT NULL,
    latency_ms INTEGER NOT NULL,
    code       INTEGER,
    message    TEXT
);

CREATE TABLE IF NOT EXISTS incidents (
    -- A UUIDv7 made by the asset that went down, so incidents open without waiting for the database.
    id           TEXT PRIMARY KEY,
    asset_id     TEXT NOT NULL REFERENCES assets(id),
    severity     TEXT NOT NULL DEFAULT 'INITIAL',
    summary      TEXT,
    started_at   INTEGER NOT NULL,
    ended_at     INTEGER,
    -- Why it closed: 'recovered', or 'removed' when its asset left the config.
    close_reason TEXT
);

CREATE INDEX IF NOT EXISTS idx_probe_events_asset_id_timestamp ON probe_events(asset_id, timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_incidents_asset_id ON incidents(asset_id);
CREATE INDEX IF NOT EXISTS idx_incidents_ended_at ON incidents(ended_at);
