-- The journal's daily roll-up (issue 14), PostgreSQL dialect. Keep in step
-- with migrations/sqlite.
--
-- Analytics over many companies read these per-day figures instead of every call
-- and ticket (see src/store/rollup.rs). A row is keyed by the UTC day of the call's
-- offer or the ticket's registration and by the company (`tenant_key` 0: a call no
-- company claimed). Triggers mark a (company, UTC day) dirty whenever a row that
-- feeds it is written; the roll-up recomputes only the dirty days, before every
-- analytics query that reads it. Everything already stored is marked dirty here.

-- No key: a writer appends its marks (one per statement and day) and never waits
-- on a refresh, which takes the marks it can see with DELETE ... RETURNING; marks of
-- transactions still open survive it and are taken by the next refresh.
CREATE TABLE journal_dirty_days (
    tenant_key  BIGINT NOT NULL,
    day         TEXT NOT NULL
);

-- Inbound calls against Rules №416 (the city is the company's).
CREATE TABLE journal_day_calls (
    day         TEXT NOT NULL,
    tenant_key  BIGINT NOT NULL,
    city_id     BIGINT,
    calls       BIGINT NOT NULL,
    answered    BIGINT NOT NULL,
    j30         BIGINT NOT NULL,
    m30         BIGINT NOT NULL,
    j300        BIGINT NOT NULL,
    m300        BIGINT NOT NULL,
    due         BIGINT NOT NULL,
    cb10        BIGINT NOT NULL,
    PRIMARY KEY (day, tenant_key)
);

-- Tickets registered, by the house's city and its local day.
CREATE TABLE journal_day_tickets (
    day         TEXT NOT NULL,
    tenant_id   BIGINT NOT NULL,
    city_id     BIGINT NOT NULL,
    local_day   TEXT NOT NULL,
    category    TEXT NOT NULL,
    reason_id   BIGINT NOT NULL,
    tickets     BIGINT NOT NULL,
    PRIMARY KEY (day, tenant_id, city_id, local_day, category, reason_id)
);

-- Time to accept / complete in fixed bins (with the smallest and largest value).
CREATE TABLE journal_day_durations (
    day         TEXT NOT NULL,
    tenant_id   BIGINT NOT NULL,
    city_id     BIGINT NOT NULL,
    category    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    bin         BIGINT NOT NULL,
    n           BIGINT NOT NULL,
    min_s       BIGINT NOT NULL,
    max_s       BIGINT NOT NULL,
    PRIMARY KEY (day, tenant_id, city_id, category, kind, bin)
);

-- CSI / CES answers of the day's tickets.
CREATE TABLE journal_day_ratings (
    day         TEXT NOT NULL,
    tenant_id   BIGINT NOT NULL,
    city_id     BIGINT NOT NULL,
    metric      TEXT NOT NULL,
    answers     BIGINT NOT NULL,
    score_sum   BIGINT NOT NULL,
    PRIMARY KEY (day, tenant_id, city_id, metric)
);

-- Per executor: CSI scores, tickets rated and completed.
CREATE TABLE journal_day_executors (
    day         TEXT NOT NULL,
    tenant_id   BIGINT NOT NULL,
    city_id     BIGINT NOT NULL,
    executor_id BIGINT NOT NULL,
    s1          BIGINT NOT NULL,
    s2          BIGINT NOT NULL,
    s3          BIGINT NOT NULL,
    s4          BIGINT NOT NULL,
    s5          BIGINT NOT NULL,
    csi_answers BIGINT NOT NULL,
    csi_sum     BIGINT NOT NULL,
    rated       BIGINT NOT NULL,
    completed   BIGINT NOT NULL,
    PRIMARY KEY (day, tenant_id, city_id, executor_id)
);

-- Statement-level triggers: one mark per company and day a statement touched.
CREATE FUNCTION journal_dirty_calls() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO journal_dirty_days (tenant_key, day) SELECT DISTINCT COALESCE(tenant_id, 0), to_char(offered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM old_rows;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO journal_dirty_days (tenant_key, day) SELECT DISTINCT COALESCE(tenant_id, 0), to_char(offered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM new_rows;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER journal_dirty_calls_ins AFTER INSERT ON calls REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_dirty_calls();
CREATE TRIGGER journal_dirty_calls_upd AFTER UPDATE ON calls REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_dirty_calls();
CREATE TRIGGER journal_dirty_calls_del AFTER DELETE ON calls REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_dirty_calls();
CREATE FUNCTION journal_dirty_tickets() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO journal_dirty_days (tenant_key, day) SELECT DISTINCT tenant_id, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM old_rows;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO journal_dirty_days (tenant_key, day) SELECT DISTINCT tenant_id, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM new_rows;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER journal_dirty_tickets_ins AFTER INSERT ON tickets REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_dirty_tickets();
CREATE TRIGGER journal_dirty_tickets_upd AFTER UPDATE ON tickets REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_dirty_tickets();
CREATE TRIGGER journal_dirty_tickets_del AFTER DELETE ON tickets REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_dirty_tickets();

-- Rows that count for their ticket's day.
CREATE FUNCTION journal_dirty_of_ticket() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO journal_dirty_days (tenant_key, day) SELECT DISTINCT t.tenant_id, to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM old_rows x JOIN tickets t ON t.id = x.ticket_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO journal_dirty_days (tenant_key, day) SELECT DISTINCT t.tenant_id, to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM new_rows x JOIN tickets t ON t.id = x.ticket_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER journal_dirty_history_ins AFTER INSERT ON ticket_history REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_dirty_of_ticket();
CREATE TRIGGER journal_dirty_history_upd AFTER UPDATE ON ticket_history REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_dirty_of_ticket();
CREATE TRIGGER journal_dirty_history_del AFTER DELETE ON ticket_history REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_dirty_of_ticket();
CREATE TRIGGER journal_dirty_survey_ins AFTER INSERT ON survey_answers REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_dirty_of_ticket();
CREATE TRIGGER journal_dirty_survey_upd AFTER UPDATE ON survey_answers REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_dirty_of_ticket();
CREATE TRIGGER journal_dirty_survey_del AFTER DELETE ON survey_answers REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_dirty_of_ticket();

-- Callbacks count for their call's day.
CREATE FUNCTION journal_dirty_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO journal_dirty_days (tenant_key, day) SELECT DISTINCT COALESCE(c.tenant_id, 0), to_char(c.offered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM old_rows x JOIN calls c ON c.id = x.call_id WHERE x.kind = 'callback';
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO journal_dirty_days (tenant_key, day) SELECT DISTINCT COALESCE(c.tenant_id, 0), to_char(c.offered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM new_rows x JOIN calls c ON c.id = x.call_id WHERE x.kind = 'callback';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER journal_dirty_jobs_ins AFTER INSERT ON dial_jobs REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_dirty_jobs();
CREATE TRIGGER journal_dirty_jobs_upd AFTER UPDATE ON dial_jobs REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_dirty_jobs();
CREATE TRIGGER journal_dirty_jobs_del AFTER DELETE ON dial_jobs REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_dirty_jobs();
CREATE FUNCTION journal_dirty_attempts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO journal_dirty_days (tenant_key, day) SELECT DISTINCT COALESCE(c.tenant_id, 0), to_char(c.offered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM old_rows x JOIN dial_jobs dj ON dj.id = x.job_id JOIN calls c ON c.id = dj.call_id WHERE dj.kind = 'callback';
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO journal_dirty_days (tenant_key, day) SELECT DISTINCT COALESCE(c.tenant_id, 0), to_char(c.offered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM new_rows x JOIN dial_jobs dj ON dj.id = x.job_id JOIN calls c ON c.id = dj.call_id WHERE dj.kind = 'callback';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER journal_dirty_attempts_ins AFTER INSERT ON dial_attempts REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_dirty_attempts();
CREATE TRIGGER journal_dirty_attempts_upd AFTER UPDATE ON dial_attempts REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_dirty_attempts();
CREATE TRIGGER journal_dirty_attempts_del AFTER DELETE ON dial_attempts REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_dirty_attempts();

-- Reference data the roll-up copied: a house's or company's city, a city's zone.
CREATE FUNCTION journal_dirty_reference() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'houses' THEN
        INSERT INTO journal_dirty_days (tenant_key, day)
            SELECT DISTINCT tenant_id, day FROM journal_day_tickets WHERE tenant_id = NEW.tenant_id;
    ELSIF TG_TABLE_NAME = 'tenants' THEN
        INSERT INTO journal_dirty_days (tenant_key, day)
            SELECT DISTINCT tenant_key, day FROM journal_day_calls WHERE tenant_key = NEW.id;
    ELSE
        INSERT INTO journal_dirty_days (tenant_key, day)
            SELECT DISTINCT tenant_id, day FROM journal_day_tickets WHERE city_id = NEW.id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER journal_dirty_houses_city AFTER UPDATE OF city_id ON houses
    FOR EACH ROW WHEN (OLD.city_id IS DISTINCT FROM NEW.city_id) EXECUTE FUNCTION journal_dirty_reference();
CREATE TRIGGER journal_dirty_tenants_city AFTER UPDATE OF city_id ON tenants
    FOR EACH ROW WHEN (OLD.city_id IS DISTINCT FROM NEW.city_id) EXECUTE FUNCTION journal_dirty_reference();
CREATE TRIGGER journal_dirty_cities_zone AFTER UPDATE OF time_zone ON cities
    FOR EACH ROW WHEN (OLD.time_zone IS DISTINCT FROM NEW.time_zone) EXECUTE FUNCTION journal_dirty_reference();

INSERT INTO journal_dirty_days (tenant_key, day)
    SELECT DISTINCT tenant_id, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM tickets;
INSERT INTO journal_dirty_days (tenant_key, day)
    SELECT DISTINCT COALESCE(tenant_id, 0), to_char(offered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM calls;
