-- Second ticket-store migration, SQLite dialect. Keep in step with migrations/postgres.

-- When an import last listed a contact. Re-importing a list no longer touches
-- last_seen_at, which only a call (an operator confirming the address) moves.
ALTER TABLE contacts ADD COLUMN imported_at TEXT;
UPDATE contacts SET imported_at = last_seen_at WHERE source = 'imported';

-- When a resource-supplier hand-over last changed (status, number, re-check time).
ALTER TABLE supplier_tickets ADD COLUMN updated_at TEXT;
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

-- SQLite cannot add a CHECK constraint to an existing table; triggers refuse the
-- values the engine never writes, as the PostgreSQL constraints do.
CREATE TRIGGER tickets_status_insert BEFORE INSERT ON tickets
WHEN NEW.status NOT IN ('registered', 'accepted', 'in_progress', 'done', 'closed', 'cancelled')
BEGIN SELECT RAISE(ABORT, 'tickets.status: unknown status'); END;
CREATE TRIGGER tickets_status_update BEFORE UPDATE OF status ON tickets
WHEN NEW.status NOT IN ('registered', 'accepted', 'in_progress', 'done', 'closed', 'cancelled')
BEGIN SELECT RAISE(ABORT, 'tickets.status: unknown status'); END;
CREATE TRIGGER tickets_source_insert BEFORE INSERT ON tickets
WHEN NEW.source NOT IN ('phone', 'console', 'web', 'message')
BEGIN SELECT RAISE(ABORT, 'tickets.source: unknown channel'); END;
CREATE TRIGGER tickets_source_update BEFORE UPDATE OF source ON tickets
WHEN NEW.source NOT IN ('phone', 'console', 'web', 'message')
BEGIN SELECT RAISE(ABORT, 'tickets.source: unknown channel'); END;
CREATE TRIGGER supplier_tickets_status_insert BEFORE INSERT ON supplier_tickets
WHEN NEW.status NOT IN ('pending', 'handed_over', 'done', 'cancelled')
BEGIN SELECT RAISE(ABORT, 'supplier_tickets.status: unknown status'); END;
CREATE TRIGGER supplier_tickets_status_update BEFORE UPDATE OF status ON supplier_tickets
WHEN NEW.status NOT IN ('pending', 'handed_over', 'done', 'cancelled')
BEGIN SELECT RAISE(ABORT, 'supplier_tickets.status: unknown status'); END;
