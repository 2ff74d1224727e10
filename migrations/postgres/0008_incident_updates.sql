-- Public updates on an incident, written by people (POST /api/incidents/{id}/updates) for the
-- status page and the feed: investigating, identified, monitoring, resolved, with a message.
CREATE TABLE IF NOT EXISTS incident_updates (
    -- A UUIDv7 made by statusd.
    id          UUID PRIMARY KEY,
    incident_id UUID NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    -- investigating, identified, monitoring, resolved
    status      TEXT NOT NULL,
    message     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_incident_updates_incident_id ON incident_updates(incident_id, at);
