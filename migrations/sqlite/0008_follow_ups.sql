-- Follow-up calls (issue 11), SQLite dialect. Keep in step with migrations/postgres.
--
-- Dial jobs now run every follow-up: status checks, feedback surveys, hand-overs to
-- resource suppliers and their status queries, and outage broadcasts, besides the
-- callbacks they always ran. A job carries what the scheduler orders by
-- (precedence: residents' callbacks 0, staff callbacks 1, supplier hand-overs 2,
-- status checks and supplier queries 3, surveys 4, broadcasts 5; then its deadline),
-- whether it waits out the city's quiet hours, how the party is reached, what the
-- party answered, and when supervisors were told its deadline was at risk.

ALTER TABLE dial_jobs ADD COLUMN precedence INTEGER NOT NULL DEFAULT 0;
ALTER TABLE dial_jobs ADD COLUMN deadline_at TEXT;
ALTER TABLE dial_jobs ADD COLUMN quiet_hours INTEGER NOT NULL DEFAULT 0;
ALTER TABLE dial_jobs ADD COLUMN reach TEXT;
ALTER TABLE dial_jobs ADD COLUMN outage_id INTEGER REFERENCES outages(id) ON DELETE SET NULL;
ALTER TABLE dial_jobs ADD COLUMN supplier_ticket_id INTEGER REFERENCES supplier_tickets(id) ON DELETE CASCADE;
ALTER TABLE dial_jobs ADD COLUMN answer TEXT;
ALTER TABLE dial_jobs ADD COLUMN at_risk_at TEXT;

-- What the dialer claims first.
CREATE INDEX dial_jobs_by_precedence ON dial_jobs (precedence, due_at)
    WHERE state IN ('pending', 'claimed');
CREATE INDEX dial_jobs_ticket_kind ON dial_jobs (ticket_id, kind);
-- One status check at a time per ticket, one survey per ticket ever, one open call
-- per supplier hand-over, never one number twice for one outage, and one open staff
-- callback per number, whichever node plans them.
CREATE UNIQUE INDEX dial_jobs_open_status_check ON dial_jobs (ticket_id)
    WHERE kind = 'status-check' AND state IN ('pending', 'claimed');
CREATE UNIQUE INDEX dial_jobs_one_survey ON dial_jobs (ticket_id) WHERE kind = 'survey';
CREATE UNIQUE INDEX dial_jobs_open_supplier_call ON dial_jobs (supplier_ticket_id)
    WHERE supplier_ticket_id IS NOT NULL AND state IN ('pending', 'claimed');
CREATE UNIQUE INDEX dial_jobs_outage_number ON dial_jobs (outage_id, target_phone)
    WHERE outage_id IS NOT NULL;
-- A staff member who calls the dispatch line again before being called back is
-- still called back once: older duplicates are merged into the first one.
UPDATE dial_jobs SET state = 'cancelled', outcome = 'merged', updated_at = created_at
    WHERE kind = 'staff-callback' AND state IN ('pending', 'claimed')
      AND id NOT IN (SELECT MIN(id) FROM dial_jobs WHERE kind = 'staff-callback'
                     AND state IN ('pending', 'claimed') GROUP BY target_phone);
CREATE UNIQUE INDEX dial_jobs_open_staff_callback ON dial_jobs (target_phone)
    WHERE kind = 'staff-callback' AND state IN ('pending', 'claimed');

-- An outage may be urgent (its broadcast ignores quiet hours) and broadcast.
ALTER TABLE outages ADD COLUMN urgent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outages ADD COLUMN broadcast_at TEXT;

-- The last call about a supplier hand-over, written with the ticket's history.
ALTER TABLE supplier_tickets ADD COLUMN last_call_id TEXT;
ALTER TABLE supplier_tickets ADD COLUMN last_call_outcome TEXT;
ALTER TABLE supplier_tickets ADD COLUMN last_call_at TEXT;

-- Residents who pressed 9 ("do not call me") in a feedback call.
CREATE TABLE survey_opt_outs (
    phone       TEXT PRIMARY KEY,
    call_id     TEXT,
    created_at  TEXT NOT NULL
);

-- The planner looks for tickets that moved recently.
CREATE INDEX tickets_status_updated ON tickets (status, updated_at);

-- A resident's rating is the work's: it is kept against the ticket's executor too
-- (the executor when the rating was given), so analytics rate people, not tickets.
ALTER TABLE survey_answers ADD COLUMN executor_id INTEGER REFERENCES employees(id) ON DELETE SET NULL;
UPDATE survey_answers SET executor_id = (SELECT t.executor_id FROM tickets t WHERE t.id = survey_answers.ticket_id);
CREATE INDEX survey_answers_executor ON survey_answers (executor_id);
