-- The management company's journal (issue 14), SQLite dialect. Keep in step with
-- migrations/postgres.
--
-- Comments may be internal (never read to residents); management companies rate
-- the dispatch line's calls 1-5 with a comment; executors attach photos to
-- tickets (the files live under the data directory). The indexes
-- serve the monitor (open tickets by deadline) and the analytics (first time a
-- ticket reached a status; ratings by executor).

ALTER TABLE ticket_comments ADD COLUMN internal INTEGER NOT NULL DEFAULT 0;

CREATE TABLE call_reviews (
    id          INTEGER PRIMARY KEY,
    call_id     TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    tenant_id   INTEGER REFERENCES tenants(id),
    reviewer    TEXT NOT NULL,
    score       INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
    comment     TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    UNIQUE (call_id, reviewer)
);
CREATE INDEX call_reviews_tenant ON call_reviews (tenant_id, created_at);

CREATE TABLE ticket_attachments (
    id              INTEGER PRIMARY KEY,
    ticket_id       INTEGER NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
    file_name       TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    bytes           INTEGER NOT NULL,
    path            TEXT NOT NULL,
    uploaded_by     TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX ticket_attachments_ticket ON ticket_attachments (ticket_id);

CREATE INDEX tickets_open_deadline ON tickets (deadline_at)
    WHERE status IN ('registered', 'accepted', 'in_progress');
CREATE INDEX ticket_history_first ON ticket_history (ticket_id, to_status, at);
-- Callbacks of a call, for the compliance figures.
CREATE INDEX dial_jobs_callback_call ON dial_jobs (call_id) WHERE kind = 'callback';
