-- The asset whose outage caused this one (`dependsOn`): set for a dependant's incident, which
-- sends no notification of its own while its root cause is down.
ALTER TABLE incidents ADD COLUMN caused_by TEXT;
