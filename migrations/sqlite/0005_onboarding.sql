-- Onboarding and administration, SQLite dialect. Keep in step with migrations/postgres.

-- Console accounts and operators' softphones. The console password is kept only as
-- an argon2id hash (PHC string); the SIP digest credentials are separate and kept
-- only as HA1 = H(extension:realm:password), MD5 and SHA-256, for the realm they
-- were made for (NULL: the account has no softphone). A removed account keeps its
-- row (removed_at set): the journal and the admin log name it, and the TOML
-- bootstrap does not bring it back. tenants and cities are JSON lists of codes
-- (empty: all).
CREATE TABLE users (
    id              INTEGER PRIMARY KEY,
    extension       TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    role            TEXT NOT NULL
        CHECK (role IN ('operator', 'supervisor', 'tenant-admin', 'tenant-viewer')),
    tenants         TEXT NOT NULL DEFAULT '[]',
    cities          TEXT NOT NULL DEFAULT '[]',
    password_hash   TEXT NOT NULL,
    sip_realm       TEXT,
    sip_ha1_md5     TEXT,
    sip_ha1_sha256  TEXT,
    auto_answer     INTEGER NOT NULL DEFAULT 0,
    version         INTEGER NOT NULL DEFAULT 1,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    removed_at      TEXT
);

-- Who changed which reference record or account, when, and what it became.
CREATE TABLE admin_log (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    principal   TEXT NOT NULL,
    tenant_id   INTEGER REFERENCES tenants(id),
    action      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    subject_id  TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX admin_log_at ON admin_log (at, id);
CREATE INDEX admin_log_tenant ON admin_log (tenant_id, id);

-- What operators are told about a house, and how many entrances it has.
ALTER TABLE houses ADD COLUMN entrances INTEGER NOT NULL DEFAULT 0;
ALTER TABLE houses ADD COLUMN notes TEXT NOT NULL DEFAULT '';

-- A house's apartments (number as compared: lower case, no «кв.»).
CREATE TABLE apartments (
    house_id    INTEGER NOT NULL REFERENCES houses(id) ON DELETE CASCADE,
    number      TEXT NOT NULL,
    entrance    INTEGER,
    floor       INTEGER,
    PRIMARY KEY (house_id, number)
);

-- The personnel number a company's questionnaire names an employee by.
ALTER TABLE employees ADD COLUMN code TEXT;
CREATE UNIQUE INDEX employees_tenant_code ON employees (tenant_id, code) WHERE code IS NOT NULL;

-- Whether a ticket for this reason goes on to a resource supplier.
ALTER TABLE reasons ADD COLUMN needs_supplier INTEGER NOT NULL DEFAULT 0;

-- A resource supplier's dispatch phones in the order they are dialled (the first
-- is also kept in suppliers.dispatch_phone).
CREATE TABLE supplier_phones (
    supplier_id INTEGER NOT NULL REFERENCES suppliers(id) ON DELETE CASCADE,
    priority    INTEGER NOT NULL,
    phone       TEXT NOT NULL,
    PRIMARY KEY (supplier_id, priority)
);

-- Ticket labels a tenant offers its operators (tenant_id NULL: offered to all).
CREATE TABLE tags (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER REFERENCES tenants(id),
    code        TEXT NOT NULL,
    name        TEXT NOT NULL
);
CREATE UNIQUE INDEX tags_code ON tags (COALESCE(tenant_id, 0), code);
