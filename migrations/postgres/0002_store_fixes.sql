-- Second ticket-store migration, PostgreSQL dialect. Keep in step with migrations/sqlite.

-- When an import last listed a contact. Re-importing a list no longer touches
-- last_seen_at, which only a call (an operator confirming the address) moves.
ALTER TABLE contacts ADD COLUMN imported_at TIMESTAMPTZ;
UPDATE contacts SET imported_at = last_seen_at WHERE source = 'imported';

-- When a resource-supplier hand-over last changed (status, number, re-check time).
ALTER TABLE supplier_tickets ADD COLUMN updated_at TIMESTAMPTZ;
UPDATE supplier_tickets SET updated_at = COALESCE(handed_over_at, created_at);

-- Listings: contacts newest first within a tenant; tickets newest first overall and
-- by tenant and status; dial jobs found by their call and ticket; the ticket a call
-- was registered on (a journal row written after its ticket links to it).
CREATE INDEX contacts_tenant_seen ON contacts (tenant_id, last_seen_at DESC, id);
CREATE INDEX tickets_created ON tickets (created_at, id);
CREATE INDEX tickets_tenant_status_created ON tickets (tenant_id, status, created_at);
CREATE INDEX dial_jobs_call ON dial_jobs (call_id);
CREATE INDEX dial_jobs_ticket ON dial_jobs (ticket_id);
CREATE INDEX tickets_call ON tickets (call_id);

-- A counter row's key is its tenant's id, never generated.
ALTER TABLE ticket_counters ALTER COLUMN tenant_id DROP IDENTITY IF EXISTS;

-- The values the engine writes, and no others.
ALTER TABLE tickets ADD CONSTRAINT tickets_status_known CHECK
    (status IN ('registered', 'accepted', 'in_progress', 'done', 'closed', 'cancelled'));
ALTER TABLE tickets ADD CONSTRAINT tickets_source_known CHECK
    (source IN ('phone', 'console', 'web', 'message'));
ALTER TABLE supplier_tickets ADD CONSTRAINT supplier_tickets_status_known CHECK
    (status IN ('pending', 'handed_over', 'done', 'cancelled'));
