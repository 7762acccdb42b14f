-- The cluster's event stream (several engine nodes on this database): every event
-- any node publishes, under one sequence. `event_counter` is one row: the last seq
-- given and the stream's epoch. A writer takes its seqs by updating that row in
-- the statement that inserts the events, so the row lock orders the writers and a
-- reader never sees seq N+1 committed before N; its `pg_notify` wakes the other
-- nodes' readers. Rows older than the retention are pruned.
CREATE TABLE event_counter (
    id     SMALLINT PRIMARY KEY CHECK (id = 1),
    last   BIGINT NOT NULL,
    epoch  TEXT NOT NULL
);
INSERT INTO event_counter (id, last, epoch) VALUES (
    1,
    0,
    to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint)
        || '-' || substr(md5(random()::text), 1, 8)
);

CREATE TABLE events (
    seq     BIGINT PRIMARY KEY,
    ts      TIMESTAMPTZ NOT NULL,
    type    TEXT NOT NULL,
    tenant  TEXT,
    -- Which node run wrote it, and in which batch (a writer whose commit's answer
    -- was lost looks for its batch before writing it again).
    writer  TEXT NOT NULL,
    batch   BIGINT NOT NULL,
    -- The event as every node sends it, without its seq: `{"ts":..,"type":..,...}`.
    body    TEXT NOT NULL
);
CREATE INDEX events_ts ON events (ts);
