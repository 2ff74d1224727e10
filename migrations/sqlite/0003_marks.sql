-- Why a result is not a plain up or down: 'degraded' (counts as up), 'maintenance' or
-- 'inconclusive' (left out of uptime). NULL for the rest.
ALTER TABLE probe_events ADD COLUMN mark TEXT;
