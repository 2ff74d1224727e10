-- Escalation and acknowledgement: the highest tier an incident notified, who acknowledged it,
-- and each incident's timeline (opened, each tier notified, acknowledged, closed).
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS acknowledged_at TIMESTAMPTZ;
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS acknowledged_by TEXT;
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS ack_note TEXT;
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS tier BIGINT;
-- Incidents open across the upgrade already sent their DOWN to onDown: tier 0.
UPDATE incidents SET tier = 0 WHERE ended_at IS NULL AND tier IS NULL;

CREATE TABLE IF NOT EXISTS incident_timeline (
    -- A UUIDv7 made by statusd, so a retried write cannot store an entry twice.
    id          UUID PRIMARY KEY,
    incident_id UUID NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    -- opened, notified, acknowledged, closed
    kind        TEXT NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_incident_timeline_incident_id ON incident_timeline(incident_id, at);
