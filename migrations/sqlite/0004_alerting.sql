-- Escalation and acknowledgement: the highest tier an incident notified, who acknowledged it,
-- and each incident's timeline (opened, each tier notified, acknowledged, closed).
ALTER TABLE incidents ADD COLUMN acknowledged_at INTEGER;
ALTER TABLE incidents ADD COLUMN acknowledged_by TEXT;
ALTER TABLE incidents ADD COLUMN ack_note TEXT;
ALTER TABLE incidents ADD COLUMN tier INTEGER;
-- Incidents open across the upgrade already sent their DOWN to onDown: tier 0.
UPDATE incidents SET tier = 0 WHERE ended_at IS NULL;

CREATE TABLE IF NOT EXISTS incident_timeline (
    -- A UUIDv7 made by statusd, so a retried write cannot store an entry twice.
    id          BLOB PRIMARY KEY,
    incident_id TEXT NOT NULL,
    at          INTEGER NOT NULL,
    -- opened, notified, acknowledged, closed
    kind        TEXT NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_incident_timeline_incident_id ON incident_timeline(incident_id, at);
