-- SLA reports leave out the time covered by inconclusive results (statusd's own network down):
-- they read those few rows among millions through this partial index.
CREATE INDEX IF NOT EXISTS idx_probe_events_inconclusive ON probe_events(timestamp, asset_id) WHERE mark = 'inconclusive';
-- SLA reports read the incidents that overlap a period.
CREATE INDEX IF NOT EXISTS idx_incidents_started_at ON incidents(started_at);
