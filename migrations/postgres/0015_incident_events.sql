-- Cluster mode: the confirmed changes of state (DOWN, RECOVERY, DEGRADED, its end, an actor's
-- PANIC) that replicas without the incidents role hand to the one that holds it, in the order
-- they were reported. The holder takes them off the table (DELETE ... RETURNING) and decides
-- them with its one Incidents actor, so that storm grouping, dependsOn and flapping see the
-- whole cluster's assets (see src/actors/relay.rs).
CREATE TABLE IF NOT EXISTS incident_events (
    seq         BIGSERIAL PRIMARY KEY,
    -- The replica that reported it.
    reporter    TEXT NOT NULL,
    -- The event (src/actors/relay.rs `Relayed`), as JSON.
    event       JSONB NOT NULL,
    reported_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
