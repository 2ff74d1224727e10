-- The outbox: every notification the policy decided, written before it is sent and updated when
-- the send ends, so that a restart sends what was pending once and what was sent never again,
-- and GET /api/notifications shows what each channel was told.
CREATE TABLE IF NOT EXISTS notifications (
    -- A UUIDv7 made by statusd when the notification is decided.
    id          UUID PRIMARY KEY,
    -- Text in both databases: many notifications (PANIC, maintenance, network) have no incident.
    incident_id TEXT,
    asset_id    TEXT NOT NULL,
    channel     TEXT NOT NULL,
    event       TEXT NOT NULL,
    tier        BIGINT,
    -- The notification as JSON, as it is sent again after a restart.
    payload     TEXT NOT NULL,
    decided_at  TIMESTAMPTZ NOT NULL,
    -- pending, sent, failed
    status      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    sent_at     TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS idx_notifications_decided_at ON notifications(decided_at);
CREATE INDEX IF NOT EXISTS idx_notifications_pending ON notifications(status) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS idx_notifications_incident_id ON notifications(incident_id);
