-- One row per outbox key: a notification decided twice (incident, event, channel, tier) is kept
-- and sent once. The key is written by statusd as `<incident>/<EVENT>/<channel>/<tier or ->`;
-- a REMINDER repeats by design, so its key ends with `/<its decision time, unix seconds>`:
-- reminders of one channel are at least repeatIntervalSeconds (>= 1 s) apart, so two reminders
-- never share a key, while the same reminder decided twice does, and no counter has to survive
-- a restart. Notifications outside an incident (PANIC, grouped storms, NETWORK_*, DEGRADED,
-- maintenance, TEST) have no key (NULL): never constrained. Rows written before this migration
-- have none either.
ALTER TABLE notifications ADD COLUMN dedup_key TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS idx_notifications_dedup_key ON notifications(dedup_key);
