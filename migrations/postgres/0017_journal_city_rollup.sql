-- The journal's roll-up summed over companies (issue 14), PostgreSQL dialect. Keep
-- in step with migrations/sqlite.
--
-- Per company and day, time to accept/complete holds about one histogram row per
-- ticket, so a month over every company read as many roll-up rows as it had
-- tickets. These tables keep the same figures per UTC day and city only; the
-- refresh rebuilds a day's rows here from its company rows whenever it recomputes
-- that day (see src/store/rollup.rs), and analytics over every company (a city or
-- all) read them instead.
CREATE TABLE journal_city_day_tickets (
    day         TEXT NOT NULL,
    city_id     BIGINT NOT NULL,
    local_day   TEXT NOT NULL,
    category    TEXT NOT NULL,
    reason_id   BIGINT NOT NULL,
    tickets     BIGINT NOT NULL,
    PRIMARY KEY (day, city_id, local_day, category, reason_id)
);

CREATE TABLE journal_city_day_durations (
    day         TEXT NOT NULL,
    city_id     BIGINT NOT NULL,
    category    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    bin         BIGINT NOT NULL,
    n           BIGINT NOT NULL,
    min_s       BIGINT NOT NULL,
    max_s       BIGINT NOT NULL,
    PRIMARY KEY (day, city_id, category, kind, bin)
);

INSERT INTO journal_city_day_tickets (day, city_id, local_day, category, reason_id, tickets)
    SELECT day, city_id, local_day, category, reason_id, SUM(tickets)
    FROM journal_day_tickets GROUP BY day, city_id, local_day, category, reason_id;
INSERT INTO journal_city_day_durations (day, city_id, category, kind, bin, n, min_s, max_s)
    SELECT day, city_id, category, kind, bin, SUM(n), MIN(min_s), MAX(max_s)
    FROM journal_day_durations GROUP BY day, city_id, category, kind, bin;

-- The dirty marks are a queue: every write appends, every refresh deletes them all.
-- Vacuum it after a fixed number of dead marks rather than a fifth of its size, so
-- the refresh's "anything dirty?" check does not read pages of dead marks. (The
-- refresh also vacuums it itself after taking many marks at once.)
ALTER TABLE journal_dirty_days SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);
