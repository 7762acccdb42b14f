-- The ticket store, SQLite dialect. Keep in step with migrations/postgres.
-- Timestamps are UTC, written by the engine as RFC 3339 text (never SQL defaults, so
-- they compare as text); dates are YYYY-MM-DD; money is integer kopecks.

CREATE TABLE cities (
    id          INTEGER PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    time_zone   TEXT NOT NULL
);

CREATE TABLE tenants (
    id          INTEGER PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    city_id     INTEGER NOT NULL REFERENCES cities(id)
);

-- Resource suppliers (РСО): water, heat, power companies that take tickets by phone.
CREATE TABLE suppliers (
    id              INTEGER PRIMARY KEY,
    code            TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    city_id         INTEGER NOT NULL REFERENCES cities(id),
    dispatch_phone  TEXT
);

CREATE TABLE house_groups (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenants(id),
    code        TEXT NOT NULL,
    name        TEXT NOT NULL,
    UNIQUE (tenant_id, code)
);

CREATE TABLE houses (
    id              INTEGER PRIMARY KEY,
    tenant_id       INTEGER NOT NULL REFERENCES tenants(id),
    city_id         INTEGER NOT NULL REFERENCES cities(id),
    house_group_id  INTEGER REFERENCES house_groups(id),
    address         TEXT NOT NULL,
    address_key     TEXT NOT NULL,
    floors          INTEGER NOT NULL DEFAULT 0,
    lifts           INTEGER NOT NULL DEFAULT 0,
    UNIQUE (tenant_id, address_key)
);

CREATE TABLE work_types (
    code        TEXT PRIMARY KEY,
    name        TEXT NOT NULL
);

CREATE TABLE employees (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER REFERENCES tenants(id),
    supplier_id INTEGER REFERENCES suppliers(id),
    name        TEXT NOT NULL,
    position    TEXT NOT NULL DEFAULT '',
    active      INTEGER NOT NULL DEFAULT 1,
    CHECK (tenant_id IS NOT NULL OR supplier_id IS NOT NULL)
);
CREATE INDEX employees_tenant ON employees (tenant_id);

-- Phones in the order they are dialled (priority 1 first).
CREATE TABLE employee_phones (
    employee_id INTEGER NOT NULL REFERENCES employees(id) ON DELETE CASCADE,
    priority    INTEGER NOT NULL,
    phone       TEXT NOT NULL,
    PRIMARY KEY (employee_id, priority)
);
CREATE INDEX employee_phones_phone ON employee_phones (phone);

CREATE TABLE employee_work_types (
    employee_id INTEGER NOT NULL REFERENCES employees(id) ON DELETE CASCADE,
    work_type   TEXT NOT NULL REFERENCES work_types(code),
    PRIMARY KEY (employee_id, work_type)
);

-- Weekly schedule in the city's local time. weekday is ISO (1 = Monday); minutes are
-- from local midnight. ends_min <= starts_min means the shift ends the next day
-- (equal: a 24-hour shift).
CREATE TABLE employee_shifts (
    id          INTEGER PRIMARY KEY,
    employee_id INTEGER NOT NULL REFERENCES employees(id) ON DELETE CASCADE,
    weekday     INTEGER NOT NULL CHECK (weekday BETWEEN 1 AND 7),
    starts_min  INTEGER NOT NULL CHECK (starts_min BETWEEN 0 AND 1439),
    ends_min    INTEGER NOT NULL CHECK (ends_min BETWEEN 0 AND 1439)
);
CREATE INDEX employee_shifts_employee ON employee_shifts (employee_id);

-- Vacations and sick leave, local dates, both ends inclusive.
CREATE TABLE employee_absences (
    id          INTEGER PRIMARY KEY,
    employee_id INTEGER NOT NULL REFERENCES employees(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('vacation', 'sick_leave', 'other')),
    starts_on   TEXT NOT NULL,
    ends_on     TEXT NOT NULL
);
CREATE INDEX employee_absences_employee ON employee_absences (employee_id);

-- The reasons catalogue; tenant_id NULL is the catalogue shared by every tenant.
CREATE TABLE reasons (
    id                  INTEGER PRIMARY KEY,
    tenant_id           INTEGER REFERENCES tenants(id),
    code                TEXT NOT NULL,
    category            TEXT NOT NULL CHECK (category IN ('emergency', 'planned', 'paid')),
    title               TEXT NOT NULL,
    work_type           TEXT NOT NULL REFERENCES work_types(code),
    deadline_minutes    INTEGER NOT NULL,
    operator_text       TEXT NOT NULL,
    search_key          TEXT NOT NULL,
    active              INTEGER NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX reasons_code ON reasons (COALESCE(tenant_id, 0), code);

-- Responsibility matrix: house group x work type.
CREATE TABLE responsibilities (
    id              INTEGER PRIMARY KEY,
    house_group_id  INTEGER NOT NULL REFERENCES house_groups(id),
    work_type       TEXT NOT NULL REFERENCES work_types(code),
    responsible_id  INTEGER REFERENCES employees(id),
    manager_id      INTEGER REFERENCES employees(id),
    head_id         INTEGER REFERENCES employees(id),
    UNIQUE (house_group_id, work_type)
);

CREATE TABLE responsibility_executors (
    responsibility_id   INTEGER NOT NULL REFERENCES responsibilities(id) ON DELETE CASCADE,
    level               INTEGER NOT NULL CHECK (level BETWEEN 1 AND 3),
    position            INTEGER NOT NULL,
    employee_id         INTEGER NOT NULL REFERENCES employees(id),
    PRIMARY KEY (responsibility_id, level, position)
);

CREATE TABLE ticket_counters (
    tenant_id   INTEGER PRIMARY KEY REFERENCES tenants(id),
    last_number INTEGER NOT NULL
);

CREATE TABLE tickets (
    id              INTEGER PRIMARY KEY,
    tenant_id       INTEGER NOT NULL REFERENCES tenants(id),
    number          TEXT NOT NULL,
    house_id        INTEGER NOT NULL REFERENCES houses(id),
    apartment       TEXT NOT NULL DEFAULT '',
    reason_id       INTEGER NOT NULL REFERENCES reasons(id),
    category        TEXT NOT NULL CHECK (category IN ('emergency', 'planned', 'paid')),
    status          TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    executor_id     INTEGER REFERENCES employees(id),
    responsible_id  INTEGER REFERENCES employees(id),
    deadline_at     TEXT NOT NULL,
    source          TEXT NOT NULL,
    labels          TEXT NOT NULL DEFAULT '[]',
    caller_phone    TEXT,
    call_id         TEXT,
    version         INTEGER NOT NULL DEFAULT 1,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    closed_at       TEXT,
    UNIQUE (tenant_id, number)
);
CREATE INDEX tickets_open_by_house ON tickets (house_id, apartment)
    WHERE status IN ('registered', 'accepted', 'in_progress');
CREATE INDEX tickets_tenant_created ON tickets (tenant_id, created_at);
CREATE INDEX tickets_executor ON tickets (executor_id);

-- The executor chain chosen at registration: chain level 1..3 and the matrix level
-- it came from (a higher matrix level fills a gap).
CREATE TABLE ticket_executors (
    ticket_id       INTEGER NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
    level           INTEGER NOT NULL,
    matrix_level    INTEGER NOT NULL,
    employee_id     INTEGER NOT NULL REFERENCES employees(id),
    PRIMARY KEY (ticket_id, level)
);

CREATE TABLE ticket_history (
    id          INTEGER PRIMARY KEY,
    ticket_id   INTEGER NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
    at          TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    actor       TEXT NOT NULL,
    note        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX ticket_history_ticket ON ticket_history (ticket_id);

CREATE TABLE ticket_comments (
    id          INTEGER PRIMARY KEY,
    ticket_id   INTEGER NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
    at          TEXT NOT NULL,
    author      TEXT NOT NULL,
    text        TEXT NOT NULL
);
CREATE INDEX ticket_comments_ticket ON ticket_comments (ticket_id);

-- A ticket handed over to a resource supplier, with its own number and re-check time.
CREATE TABLE supplier_tickets (
    id              INTEGER PRIMARY KEY,
    ticket_id       INTEGER NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
    supplier_id     INTEGER NOT NULL REFERENCES suppliers(id),
    supplier_number TEXT,
    status          TEXT NOT NULL,
    handed_over_at  TEXT,
    recheck_at      TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX supplier_tickets_ticket ON supplier_tickets (ticket_id);

-- Phone -> address. No names: 152-ФЗ. apartment '' means a private house.
CREATE TABLE contacts (
    id              INTEGER PRIMARY KEY,
    phone           TEXT NOT NULL,
    tenant_id       INTEGER NOT NULL REFERENCES tenants(id),
    house_id        INTEGER NOT NULL REFERENCES houses(id),
    apartment       TEXT NOT NULL DEFAULT '',
    source          TEXT NOT NULL CHECK (source IN ('learnt', 'imported')),
    created_at      TEXT NOT NULL,
    last_seen_at    TEXT NOT NULL,
    UNIQUE (phone, house_id, apartment)
);
CREATE INDEX contacts_house ON contacts (house_id, apartment);

CREATE TABLE recordings (
    id          INTEGER PRIMARY KEY,
    call_id     TEXT NOT NULL,
    path        TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    bytes       INTEGER NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX recordings_call ON recordings (call_id);

-- The call journal; id is assigned by the engine.
CREATE TABLE calls (
    id                  TEXT PRIMARY KEY,
    direction           TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    from_number         TEXT NOT NULL,
    to_number           TEXT NOT NULL,
    tenant_id           INTEGER REFERENCES tenants(id),
    number_kind         TEXT,
    offered_at          TEXT NOT NULL,
    queued_at           TEXT,
    answered_at         TEXT,
    ended_at            TEXT,
    wait_seconds        INTEGER,
    talk_seconds        INTEGER,
    disposition         TEXT,
    operator_extension  TEXT,
    recording_id        INTEGER REFERENCES recordings(id),
    ticket_id           INTEGER REFERENCES tickets(id),
    rating              INTEGER,
    updated_at          TEXT NOT NULL
);
CREATE INDEX calls_offered ON calls (offered_at);
CREATE INDEX calls_tenant_offered ON calls (tenant_id, offered_at);
CREATE INDEX calls_ticket ON calls (ticket_id);

-- Escalation chains (one per ticket hand-off) and the dial jobs the dialer runs.
CREATE TABLE dial_chains (
    id              INTEGER PRIMARY KEY,
    ticket_id       INTEGER NOT NULL REFERENCES tickets(id),
    current_level   INTEGER NOT NULL DEFAULT 1,
    state           TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX dial_chains_ticket ON dial_chains (ticket_id);

CREATE TABLE dial_jobs (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL,
    tenant_id       INTEGER REFERENCES tenants(id),
    target_phone    TEXT NOT NULL,
    due_at          TEXT NOT NULL,
    attempts_made   INTEGER NOT NULL DEFAULT 0,
    max_attempts    INTEGER NOT NULL,
    state           TEXT NOT NULL,
    claimed_by      TEXT,
    claimed_until   TEXT,
    outcome         TEXT,
    ticket_id       INTEGER REFERENCES tickets(id),
    call_id         TEXT,
    chain_id        INTEGER REFERENCES dial_chains(id),
    chain_level     INTEGER,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX dial_jobs_due ON dial_jobs (due_at) WHERE state IN ('pending', 'claimed');

CREATE TABLE dial_attempts (
    id          INTEGER PRIMARY KEY,
    job_id      INTEGER NOT NULL REFERENCES dial_jobs(id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    at          TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    call_id     TEXT
);
CREATE INDEX dial_attempts_job ON dial_attempts (job_id);

CREATE TABLE outages (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenants(id),
    kind        TEXT NOT NULL,
    text        TEXT NOT NULL,
    starts_at   TEXT NOT NULL,
    ends_at     TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE outage_houses (
    outage_id   INTEGER NOT NULL REFERENCES outages(id) ON DELETE CASCADE,
    house_id    INTEGER NOT NULL REFERENCES houses(id),
    PRIMARY KEY (outage_id, house_id)
);
CREATE INDEX outage_houses_house ON outage_houses (house_id);

CREATE TABLE debtors (
    id              INTEGER PRIMARY KEY,
    tenant_id       INTEGER NOT NULL REFERENCES tenants(id),
    house_id        INTEGER NOT NULL REFERENCES houses(id),
    apartment       TEXT NOT NULL DEFAULT '',
    amount_kopecks  INTEGER NOT NULL,
    valid_from      TEXT NOT NULL,
    valid_until     TEXT NOT NULL,
    imported_at     TEXT NOT NULL,
    UNIQUE (house_id, apartment)
);

CREATE TABLE survey_answers (
    id          INTEGER PRIMARY KEY,
    ticket_id   INTEGER REFERENCES tickets(id),
    call_id     TEXT,
    metric      TEXT NOT NULL CHECK (metric IN ('csi', 'ces', 'nps')),
    score       INTEGER NOT NULL,
    answered_at TEXT NOT NULL
);
CREATE INDEX survey_answers_ticket ON survey_answers (ticket_id);

-- 152-ФЗ: who read which phone or address, when.
CREATE TABLE pd_access_log (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    principal   TEXT NOT NULL,
    tenant_id   INTEGER REFERENCES tenants(id),
    subject     TEXT NOT NULL,
    subject_id  TEXT NOT NULL,
    purpose     TEXT NOT NULL
);
CREATE INDEX pd_access_log_at ON pd_access_log (at);

-- Console bearer tokens; only the SHA-256 (hex) of a token is kept.
CREATE TABLE console_tokens (
    token_hash  TEXT PRIMARY KEY,
    extension   TEXT NOT NULL,
    role        TEXT NOT NULL,
    tenants     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
