-- Set while the flap breaker holds the incident open (its asset changes state too often), so
-- that a restarted statusd goes on holding it rather than reporting each change again.
ALTER TABLE incidents ADD COLUMN flapping BOOLEAN NOT NULL DEFAULT FALSE;
