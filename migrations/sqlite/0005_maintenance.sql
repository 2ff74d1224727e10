-- Maintenance windows created by the API (POST /api/maintenance); the manifest's own windows
-- live in the manifest. `definition` is the window as it was posted (JSON text), read back and
-- checked again at start.
CREATE TABLE IF NOT EXISTS maintenance_windows (
    id         TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
