-- Hourly rollups per asset, kept long after the raw events are pruned, computed from the raw
-- events of each completed hour. The histogram columns count probes whose latency (ms) falls
-- at or below their bound and above the previous one.
CREATE TABLE IF NOT EXISTS probe_rollups_hourly (
    asset_id    TEXT NOT NULL REFERENCES assets(id),
    hour        INTEGER NOT NULL,
    probes      INTEGER NOT NULL,
    successes   INTEGER NOT NULL,
    latency_sum INTEGER NOT NULL,
    latency_min INTEGER NOT NULL,
    latency_max INTEGER NOT NULL,
    le_10       INTEGER NOT NULL DEFAULT 0,
    le_25       INTEGER NOT NULL DEFAULT 0,
    le_50       INTEGER NOT NULL DEFAULT 0,
    le_100      INTEGER NOT NULL DEFAULT 0,
    le_250      INTEGER NOT NULL DEFAULT 0,
    le_500      INTEGER NOT NULL DEFAULT 0,
    le_1000     INTEGER NOT NULL DEFAULT 0,
    le_2500     INTEGER NOT NULL DEFAULT 0,
    le_5000     INTEGER NOT NULL DEFAULT 0,
    le_10000    INTEGER NOT NULL DEFAULT 0,
    le_inf      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (asset_id, hour)
) WITHOUT ROWID;

-- Hours whose events changed since they were last rolled up (the current hour, or an old one
-- that got late results): rolled up again by statusd, read from the raw events until then.
CREATE TABLE IF NOT EXISTS rollup_pending (
    hour INTEGER PRIMARY KEY
);
