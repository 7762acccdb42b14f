-- The journal's daily roll-up (issue 14), SQLite dialect. Keep in step with
-- migrations/postgres.
--
-- Analytics over many companies read these per-day figures instead of every call
-- and ticket (see src/store/rollup.rs). A row is keyed by the UTC day of the call's
-- offer or the ticket's registration and by the company (`tenant_key` 0: a call no
-- company claimed). Triggers mark a (company, UTC day) dirty whenever a row that
-- feeds it is written; the roll-up recomputes only the dirty days, before every
-- analytics query that reads it. Everything already stored is marked dirty here.

CREATE TABLE journal_dirty_days (
    tenant_key  INTEGER NOT NULL,
    day         TEXT NOT NULL,
    PRIMARY KEY (tenant_key, day)
) WITHOUT ROWID;

-- (The triggers check for an existing mark rather than INSERT OR IGNORE: an upsert's
-- conflict policy overrides the one of a statement in a trigger it fires.)

-- Inbound calls against Rules №416 (the city is the company's).
CREATE TABLE journal_day_calls (
    day         TEXT NOT NULL,
    tenant_key  INTEGER NOT NULL,
    city_id     INTEGER,
    calls       INTEGER NOT NULL,
    answered    INTEGER NOT NULL,
    j30         INTEGER NOT NULL,
    m30         INTEGER NOT NULL,
    j300        INTEGER NOT NULL,
    m300        INTEGER NOT NULL,
    due         INTEGER NOT NULL,
    cb10        INTEGER NOT NULL,
    PRIMARY KEY (day, tenant_key)
) WITHOUT ROWID;

-- Tickets registered, by the house's city and its local day.
CREATE TABLE journal_day_tickets (
    day         TEXT NOT NULL,
    tenant_id   INTEGER NOT NULL,
    city_id     INTEGER NOT NULL,
    local_day   TEXT NOT NULL,
    category    TEXT NOT NULL,
    reason_id   INTEGER NOT NULL,
    tickets     INTEGER NOT NULL,
    PRIMARY KEY (day, tenant_id, city_id, local_day, category, reason_id)
) WITHOUT ROWID;

-- Time to accept / complete in fixed bins (with the smallest and largest value).
CREATE TABLE journal_day_durations (
    day         TEXT NOT NULL,
    tenant_id   INTEGER NOT NULL,
    city_id     INTEGER NOT NULL,
    category    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    bin         INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    min_s       INTEGER NOT NULL,
    max_s       INTEGER NOT NULL,
    PRIMARY KEY (day, tenant_id, city_id, category, kind, bin)
) WITHOUT ROWID;

-- CSI / CES answers of the day's tickets.
CREATE TABLE journal_day_ratings (
    day         TEXT NOT NULL,
    tenant_id   INTEGER NOT NULL,
    city_id     INTEGER NOT NULL,
    metric      TEXT NOT NULL,
    answers     INTEGER NOT NULL,
    score_sum   INTEGER NOT NULL,
    PRIMARY KEY (day, tenant_id, city_id, metric)
) WITHOUT ROWID;

-- Per executor: CSI scores, tickets rated and completed.
CREATE TABLE journal_day_executors (
    day         TEXT NOT NULL,
    tenant_id   INTEGER NOT NULL,
    city_id     INTEGER NOT NULL,
    executor_id INTEGER NOT NULL,
    s1          INTEGER NOT NULL,
    s2          INTEGER NOT NULL,
    s3          INTEGER NOT NULL,
    s4          INTEGER NOT NULL,
    s5          INTEGER NOT NULL,
    csi_answers INTEGER NOT NULL,
    csi_sum     INTEGER NOT NULL,
    rated       INTEGER NOT NULL,
    completed   INTEGER NOT NULL,
    PRIMARY KEY (day, tenant_id, city_id, executor_id)
) WITHOUT ROWID;

CREATE TRIGGER journal_dirty_calls_ins AFTER INSERT ON calls BEGIN
    INSERT INTO journal_dirty_days SELECT k, d FROM (SELECT COALESCE(NEW.tenant_id, 0) AS k, date(NEW.offered_at) AS d) s
        WHERE NOT EXISTS (SELECT 1 FROM journal_dirty_days x WHERE x.tenant_key = s.k AND x.day = s.d);
END;
CREATE TRIGGER journal_dirty_calls_upd AFTER UPDATE ON calls BEGIN
    INSERT INTO journal_dirty_days SELECT k, d FROM (SELECT COALESCE(OLD.tenant_id, 0) AS k, date(OLD.offered_at) AS d) s
        WHERE NOT EXISTS (SELECT 1 FROM journal_dirty_days x WHERE x.tenant_key = s.k AND x.day = s.d);
    INSERT INTO journal_dirty_days SELECT k, d FROM (SELECT COALESCE(NEW.tenant_id, 0) AS k, date(NEW.offered_at) AS d) s
        WHERE NOT EXISTS (SELECT 1 FROM journal_dirty_days x WHERE x.tenant_key = s.k AND x.day = s.d);
END;
CREATE TRIGGER journal_dirty_calls_del AFTER DELETE ON calls BEGIN
    INSERT INTO journal_dirty_days SELECT k, d FROM (SELECT COALESCE(OLD.tenant_id, 0) AS k, date(OLD.offered_at) AS d) s
        WHERE NOT EXISTS (SELECT 1 FROM journal_dirty_days x WHERE x.tenant_key = s.k AND x.day = s.d);
END;

CREATE TRIGGER journal_dirty_tickets_ins AFTER INSERT ON tickets BEGIN
    INSERT INTO journal_dirty_days SELECT k, d FROM (SELECT NEW.tenant_id AS k, date(NEW.created_at) AS d) s
        WHERE NOT EXISTS (SELECT 1 FROM journal_dirty_days x WHERE x.tenant_key = s.k AND x.day = s.d);
END;
CREATE TRIGGER journal_dirty_tickets_upd AFTER UPDATE ON tickets BEGIN
    INSERT INTO journal_dirty_days SELECT k, d FROM (SELECT OLD.tenant_id AS k, date(OLD.created_at) AS d) s
        WHERE NOT EXISTS (SELECT 1 FROM journal_dirty_days x WHERE x.tenant_key = s.k AND x.day = s.d);
    INSERT INTO journal_dirty_days SELECT k, d FROM (SELECT NEW.tenant_id AS k, date(NEW.created_at) AS d) s
        WHERE NOT EXISTS (SELECT 1 FROM journal_dirty_days x WHERE x.tenant_key = s.k AND x.day = s.d);
END;
CREATE TRIGGER journal_dirty_tickets_del AFTER DELETE ON tickets BEGIN
    INSERT INTO journal_dirty_days SELECT k, d FROM (SELECT OLD.tenant_id AS k, date(OLD.created_at) AS d) s
        WHERE NOT EXISTS (SELECT 1 FROM journal_dirty_days x WHERE x.tenant_key = s.k AND x.day = s.d);
END;

-- Rows that count for their ticket's day.
CREATE TRIGGER journal_dirty_history_ins AFTER INSERT ON ticket_history BEGIN
    INSERT INTO journal_dirty_days SELECT k, d FROM (
        SELECT DISTINCT tenant_id AS k, date(created_at) AS d FROM tickets WHERE id = NEW.ticket_id) s
        WHERE NOT EXISTS (SELECT 1 FROM journal_dirty_days x WHERE x.tenant_key = s.k AND x.day = s.d);
END;
CREATE TRIGGER journal_dirty_history_upd AFTER UPDATE ON ticket_history BEGIN
    INSERT INTO journal_dirty_days SELECT k, d FROM (
        SELECT DISTINCT tenant_id AS k, date(created_at) AS d FROM tickets WHERE id IN (OLD.ticket_id, NEW.ticket_id)) s
        WHERE NOT EXISTS (SELECT 1 FROM journal_dirty_days x WHERE x.tenant_key = s.k AND x.day = s.d);
END;
CREATE TRIGGER journal_dirty_history_del AFTER DELETE ON ticket_history BEGIN
    INSERT INTO journal_dirty_days SELECT k, d FROM (
        SELECT DISTINCT tenant_id AS k, date(created_at) AS d FROM tickets WHERE id = OLD.ticket_id) s
        WHERE NOT EXISTS (SELECT 1 FROM journal_dirty_days x WHERE x.tenant_key = s.k AND x.day = s.d);
END;
CREATE TRIGGER journal_dirty_survey_ins AFTER INSERT ON survey_answers BEGIN
    INSERT INTO journal_dirty_days SELECT k, d FROM (
        SELECT DISTINCT tenant_id AS k, date(created_at) AS d FROM tickets WHERE id = NEW.ticket_id) s
        WHERE NOT EXISTS (SELECT 1 FROM journal_dirty_days x WHERE x.tenant_key = s.k AND x.day = s.d);
END;
CREATE TRIGGER journal_dirty_survey_upd AFTER UPDATE ON survey_answers BEGIN
    INSERT INTO journal_dirty_days SELECT k, d FROM (
        SELECT DISTINCT tenant_id AS k, date(created_at) AS d FROM tickets WHERE id IN (OLD.ticket_id, NEW.ticket_id)) s
        WHERE NOT EXISTS (SELECT 1 FROM journal_dirty_days x WHERE x.tenant_key = s.k AND x.day = s.d);
END;
CREATE TRIGGER journal_dirty_survey_del AFTER DELETE ON survey_answers BEGIN
    INSERT INTO journal_dirty_days SELECT k, d FROM (
        SELECT DISTINCT tenant_id AS k, date(created_at) AS d FROM tickets WHERE id = OLD.ticket_id) s
        WHERE NOT EXISTS (SELECT 1 FROM journal_dirty_days x WHERE x.tenant_key = s.k AND x.day = s.d);
END;

-- Callbacks count for their call's day.
CREATE TRIGGER journal_dirty_jobs_ins AFTER INSERT ON dial_jobs
    WHEN NEW.kind = 'callback' AND NEW.call_id IS NOT NULL BEGIN
    INSERT INTO journal_dirty_days SELECT k, d FROM (
        SELECT DISTINCT COALESCE(tenant_id, 0) AS k, date(offered_at) AS d FROM calls WHERE id = NEW.call_id) s
        WHERE NOT EXISTS (SELECT 1 FROM journal_dirty_days x WHERE x.tenant_key = s.k AND x.day = s.d);
END;
CREATE TRIGGER journal_dirty_jobs_upd AFTER UPDATE OF kind, call_id ON dial_jobs BEGIN
    INSERT INTO journal_dirty_days SELECT k, d FROM (
        SELECT DISTINCT COALESCE(tenant_id, 0) AS k, date(offered_at) AS d FROM calls WHERE id IN (OLD.call_id, NEW.call_id)) s
        WHERE NOT EXISTS (SELECT 1 FROM journal_dirty_days x WHERE x.tenant_key = s.k AND x.day = s.d);
END;
CREATE TRIGGER journal_dirty_attempts_ins AFTER INSERT ON dial_attempts BEGIN
    INSERT INTO journal_dirty_days SELECT k, d FROM (
        SELECT DISTINCT COALESCE(c.tenant_id, 0) AS k, date(c.offered_at) AS d FROM dial_jobs dj JOIN calls c ON c.id = dj.call_id
        WHERE dj.id = NEW.job_id AND dj.kind = 'callback') s
        WHERE NOT EXISTS (SELECT 1 FROM journal_dirty_days x WHERE x.tenant_key = s.k AND x.day = s.d);
END;
CREATE TRIGGER journal_dirty_attempts_upd AFTER UPDATE ON dial_attempts BEGIN
    INSERT INTO journal_dirty_days SELECT k, d FROM (
        SELECT DISTINCT COALESCE(c.tenant_id, 0) AS k, date(c.offered_at) AS d FROM dial_jobs dj JOIN calls c ON c.id = dj.call_id
        WHERE dj.id IN (OLD.job_id, NEW.job_id) AND dj.kind = 'callback') s
        WHERE NOT EXISTS (SELECT 1 FROM journal_dirty_days x WHERE x.tenant_key = s.k AND x.day = s.d);
END;

-- Reference data the roll-up copied: a house's or company's city, a city's zone.
CREATE TRIGGER journal_dirty_houses_city AFTER UPDATE OF city_id ON houses BEGIN
    INSERT INTO journal_dirty_days SELECT k, d FROM (
        SELECT DISTINCT tenant_id AS k, day AS d FROM journal_day_tickets WHERE tenant_id = NEW.tenant_id) s
        WHERE NOT EXISTS (SELECT 1 FROM journal_dirty_days x WHERE x.tenant_key = s.k AND x.day = s.d);
END;
CREATE TRIGGER journal_dirty_tenants_city AFTER UPDATE OF city_id ON tenants BEGIN
    INSERT INTO journal_dirty_days SELECT k, d FROM (
        SELECT DISTINCT tenant_key AS k, day AS d FROM journal_day_calls WHERE tenant_key = NEW.id) s
        WHERE NOT EXISTS (SELECT 1 FROM journal_dirty_days x WHERE x.tenant_key = s.k AND x.day = s.d);
END;
CREATE TRIGGER journal_dirty_cities_zone AFTER UPDATE OF time_zone ON cities BEGIN
    INSERT INTO journal_dirty_days SELECT k, d FROM (
        SELECT DISTINCT tenant_id AS k, day AS d FROM journal_day_tickets WHERE city_id = NEW.id) s
        WHERE NOT EXISTS (SELECT 1 FROM journal_dirty_days x WHERE x.tenant_key = s.k AND x.day = s.d);
END;

INSERT OR IGNORE INTO journal_dirty_days SELECT DISTINCT tenant_id, date(created_at) FROM tickets;
INSERT OR IGNORE INTO journal_dirty_days SELECT DISTINCT COALESCE(tenant_id, 0), date(offered_at) FROM calls;
