-- Assets confirmed degraded (slow, or against degradedConditions) whose end was not yet
-- confirmed: a restart resumes them, so DEGRADED is not sent again and its RECOVERY still is.
-- `since` is Unix milliseconds, like every time in this schema.
CREATE TABLE IF NOT EXISTS degradations (
    asset_id TEXT PRIMARY KEY,
    since    INTEGER NOT NULL
);
