-- The journal's roll-up summed over companies (issue 14), SQLite dialect. Keep in
-- step with migrations/postgres.
--
-- Per company and day, time to accept/complete holds about one histogram row per
-- ticket, so a month over every company read as many roll-up rows as it had
-- tickets. These tables keep the same figures per UTC day and city only; the
-- refresh rebuilds a day's rows here from its company rows whenever it recomputes
-- that day (see src/store/rollup.rs), and analytics over every company (a city or
-- all) read them instead.
CREATE TABLE journal_city_day_tickets (
    day         TEXT NOT NULL,
    city_id     INTEGER NOT NULL,
    local_day   TEXT NOT NULL,
    category    TEXT NOT NULL,
    reason_id   INTEGER NOT NULL,
    tickets     INTEGER NOT NULL,
    PRIMARY KEY (day, city_id, local_day, category, reason_id)
) WITHOUT ROWID;

CREATE TABLE journal_city_day_durations (
    day         TEXT NOT NULL,
    city_id     INTEGER NOT NULL,
    category    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    bin         INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    min_s       INTEGER NOT NULL,
    max_s       INTEGER NOT NULL,
    PRIMARY KEY (day, city_id, category, kind, bin)
) WITHOUT ROWID;

INSERT INTO journal_city_day_tickets (day, city_id, local_day, category, reason_id, tickets)
    SELECT day, city_id, local_day, category, reason_id, SUM(tickets)
    FROM journal_day_tickets GROUP BY day, city_id, local_day, category, reason_id;
INSERT INTO journal_city_day_durations (day, city_id, category, kind, bin, n, min_s, max_s)
    SELECT day, city_id, category, kind, bin, SUM(n), MIN(min_s), MAX(max_s)
    FROM journal_day_durations GROUP BY day, city_id, category, kind, bin;
