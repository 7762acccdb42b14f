-- Hand-off chains that run. Fourth ticket-store migration, SQLite dialect; keep in
-- step with migrations/postgres.
--
-- A chain row holds what the dialer needs to resume it after a restart: who it may
-- call (plan) and by which rules (policy), both fixed when it started; the phase it
-- is in and since when; the node running it and until when (a lease, so another
-- node takes it over when that node dies); and how it ended.

ALTER TABLE dial_chains ADD COLUMN tenant_id INTEGER REFERENCES tenants(id);
ALTER TABLE dial_chains ADD COLUMN phase TEXT NOT NULL DEFAULT 'level-1';
ALTER TABLE dial_chains ADD COLUMN phase_started_at TEXT;
ALTER TABLE dial_chains ADD COLUMN escalation_index INTEGER NOT NULL DEFAULT 0;
ALTER TABLE dial_chains ADD COLUMN escalation_started_at TEXT;
ALTER TABLE dial_chains ADD COLUMN plan TEXT NOT NULL DEFAULT '{}';
ALTER TABLE dial_chains ADD COLUMN policy TEXT NOT NULL DEFAULT '{}';
ALTER TABLE dial_chains ADD COLUMN claimed_by TEXT;
ALTER TABLE dial_chains ADD COLUMN claimed_until TEXT;
ALTER TABLE dial_chains ADD COLUMN ended_at TEXT;
ALTER TABLE dial_chains ADD COLUMN accepted_by INTEGER REFERENCES employees(id);
ALTER TABLE dial_chains ADD COLUMN accepted_via TEXT;
ALTER TABLE dial_chains ADD COLUMN accepted_attempt INTEGER;
ALTER TABLE dial_chains ADD COLUMN acknowledged_at TEXT;
ALTER TABLE dial_chains ADD COLUMN acknowledged_by TEXT;
ALTER TABLE dial_chains ADD COLUMN note TEXT NOT NULL DEFAULT '';

-- One running chain per ticket, whichever node starts it.
CREATE UNIQUE INDEX dial_chains_running_ticket ON dial_chains (ticket_id) WHERE state = 'running';
-- The board: running chains and exhausted ones nobody has acted on yet.
CREATE INDEX dial_chains_open ON dial_chains (state, acknowledged_at);

-- Every call a chain placed, written before its INVITE is sent (state 'placing').
-- outcome: answered, busy, no-answer, rejected, unreachable, failed, cancelled, or
-- unknown (the engine stopped before the call reported back: it counts as made).
-- decision: what the person said when reached: accepted, declined, taken (another
-- employee had accepted first), no-input (no key pressed).
CREATE TABLE chain_attempts (
    id              INTEGER PRIMARY KEY,
    chain_id        INTEGER NOT NULL REFERENCES dial_chains(id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    stage           TEXT NOT NULL,
    employee_id     INTEGER REFERENCES employees(id),
    person_name     TEXT NOT NULL,
    phone           TEXT NOT NULL,
    try_no          INTEGER NOT NULL,
    tries           INTEGER NOT NULL,
    reach           TEXT NOT NULL,
    state           TEXT NOT NULL,
    outcome         TEXT,
    decision        TEXT,
    call_id         TEXT,
    operator        TEXT,
    sip_status      INTEGER,
    placed_at       TEXT NOT NULL,
    answered_at     TEXT,
    ended_at        TEXT,
    UNIQUE (chain_id, seq)
);
CREATE INDEX chain_attempts_call ON chain_attempts (call_id);

-- Dial jobs of kinds 'handoff' and 'informer' were never created: chains keep their
-- own attempts above.
