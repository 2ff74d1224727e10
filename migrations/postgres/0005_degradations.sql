-- Assets confirmed degraded (slow, or against degradedConditions) whose end was not yet
-- confirmed: a restart resumes them, so DEGRADED is not sent again and its RECOVERY still is.
CREATE TABLE IF NOT EXISTS degradations (
    asset_id TEXT PRIMARY KEY,
    since    TIMESTAMPTZ NOT NULL
);
