-- The engine nodes that share this store, and until when each is known alive: a
-- node renews its row every few seconds. A node whose row lapsed is dead; the
-- dial jobs and hand-off chains it held are taken by the others at once instead
-- of when their leases run out.
CREATE TABLE nodes (
    id           TEXT PRIMARY KEY,
    started_at   TIMESTAMPTZ NOT NULL,
    alive_until  TIMESTAMPTZ NOT NULL
);
