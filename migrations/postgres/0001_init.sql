-- The seed's schema in the types a PostgreSQL user expects: timestamptz, jsonb metadata,
-- bigint latency, uuid ids. Applied by statusd at start (not by docker-entrypoint-initdb.d).
CREATE TABLE IF NOT EXISTS assets (
    id                    TEXT PRIMARY KEY,
    name                  TEXT NOT NULL,
    address               TEXT NOT NULL,
    asset_type            TEXT NOT NULL DEFAULT 'http',
    interval_seconds      INTEGER NOT NULL DEFAULT 300,
    timeout_seconds       INTEGER NOT NULL DEFAULT 5,
    expected_status_codes INTEGER[],
    metadata              JSONB,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Set when the asset leaves the config; its history stays.
    removed_at            TIMESTAMPTZ
);

CREATE TABLE IF NOT EXISTS probe_events (
    -- A UUIDv7 made by statusd when it probed: a retried write cannot store a result twice,
    -- and the primary key orders events by time (retention prunes along it).
    id         UUID PRIMARY KEY,
    asset_id   TEXT NOT NULL REFERENCES assets(id),
    timestamp  TIMESTAMPTZ NOT NULL,
    success    BOOLEAN NOT NULL,
    latency_ms BIGINT NOT NULL,
    code       INTEGER,
    message    TEXT
);

CREATE TABLE IF NOT EXISTS incidents (
    -- A UUIDv7 made by the asset that went down, so incidents open without waiting for the database.
    id           UUID PRIMARY KEY,
    asset_id     TEXT NOT NULL REFERENCES assets(id),
    severity     TEXT NOT NULL DEFAULT 'INITIAL',
    summary      TEXT,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    ended_at     TIMESTAMPTZ,
    -- Why it closed: 'recovered', or 'removed' when its asset left the config.
    close_reason TEXT
);

CREATE INDEX IF NOT EXISTS idx_probe_events_asset_id_timestamp ON probe_events(asset_id, timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_incidents_asset_id ON incidents(asset_id);
CREATE INDEX IF NOT EXISTS idx_incidents_ended_at ON incidents(ended_at);

-- Hourly rollups per asset, kept long after the raw events are pruned, computed from the raw
-- events of each completed hour. The histogram columns count probes whose latency (ms) falls
-- at or below their bound and above the previous one.
CREATE TABLE IF NOT EXISTS probe_rollups_hourly (
    asset_id    TEXT NOT NULL REFERENCES assets(id),
    hour        TIMESTAMPTZ NOT NULL,
    probes      BIGINT NOT NULL,
    successes   BIGINT NOT NULL,
    latency_sum BIGINT NOT NULL,
    latency_min BIGINT NOT NULL,
    latency_max BIGINT NOT NULL,
    le_10       BIGINT NOT NULL DEFAULT 0,
    le_25       BIGINT NOT NULL DEFAULT 0,
    le_50       BIGINT NOT NULL DEFAULT 0,
    le_100      BIGINT NOT NULL DEFAULT 0,
    le_250      BIGINT NOT NULL DEFAULT 0,
    le_500      BIGINT NOT NULL DEFAULT 0,
    le_1000     BIGINT NOT NULL DEFAULT 0,
    le_2500     BIGINT NOT NULL DEFAULT 0,
    le_5000     BIGINT NOT NULL DEFAULT 0,
    le_10000    BIGINT NOT NULL DEFAULT 0,
    le_inf      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (asset_id, hour)
);

-- Hours whose events changed since they were last rolled up (the current hour, or an old one
-- that got late results): rolled up again by statusd, read from the raw events until then.
CREATE TABLE IF NOT EXISTS rollup_pending (
    hour TIMESTAMPTZ PRIMARY KEY
);
