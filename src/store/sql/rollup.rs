// Queries of `store::rollup`, compiled once per dialect by `per_backend!`.

use sqlx::{Pool, QueryBuilder, Row};

use crate::store::analytics::{AnalyticsSql, offset_case};
use crate::store::backend::{Dialect, push_in, push_scope};

type Conn = <Db as sqlx::Database>::Connection;

/// The joins every ticket figure reads over (as the raw analytics).
const TICKETS: &str = " FROM tickets t JOIN tenants tn ON tn.id = t.tenant_id \
     JOIN houses h ON h.id = t.house_id JOIN cities ci ON ci.id = h.city_id \
     JOIN reasons r ON r.id = t.reason_id";

/// ` AND ...` for a filter; `tenant_id` is the column holding the company id (a
/// call's may be null: company key 0).
fn push_filter(qb: &mut QueryBuilder<Db>, filter: Filter<'_>, tenant_id: &str) {
    match filter {
        Filter::Tenants(ids) => {
            // The plain column, so the (company, time) indexes serve a few companies.
            qb.push(" AND (");
            push_in(qb, tenant_id, ids);
            if ids.contains(&0) {
                qb.push(format_args!(" OR {tenant_id} IS NULL"));
            }
            qb.push(")");
        }
        Filter::Query(scope, q) => {
            push_scope(qb, scope, "tn.code");
            if let Some(tenant) = &q.tenant {
                qb.push(" AND tn.code = ").push_bind(tenant.clone());
            }
            if let Some(city) = &q.city {
                qb.push(" AND ci.code = ").push_bind(city.clone());
            }
        }
    }
}

fn push_window(qb: &mut QueryBuilder<Db>, column: &str, q: &AnalyticsQuery) {
    qb.push(format_args!(" WHERE {column} >= "))
        .push_bind(q.from)
        .push(format_args!(" AND {column} < "))
        .push_bind(q.to);
}

async fn zones(conn: &mut Conn) -> Result<Vec<(i64, String)>, StoreError> {
    let rows = sqlx::query("SELECT id, time_zone FROM cities ORDER BY id")
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("time_zone")?)))
        .collect()
}

fn n(r: &<Db as sqlx::Database>::Row, name: &str) -> Result<i64, StoreError> {
    Ok(r.try_get::<Option<i64>, _>(name)?.unwrap_or(0))
}

/// The figures of the rows in `[q.from, q.to)` (within one UTC day), local days
/// read with the cities' offsets at `zones_at`.
async fn window(
    conn: &mut Conn,
    q: &AnalyticsQuery,
    filter: Filter<'_>,
    zones_at: DateTime<Utc>,
) -> Result<Figures, StoreError> {
    let mut out = Figures::default();

    // Calls, with the first attempt of each callback job of the window's calls.
    let waited = format!(
        "COALESCE(c.wait_seconds, {})",
        <Db as AnalyticsSql>::seconds("c.offered_at", "c.answered_at")
    );
    let cb_seconds = <Db as AnalyticsSql>::seconds("c.offered_at", "cb.first_at");
    let mut qb = QueryBuilder::<Db>::new(format!(
        "SELECT tk, city, COUNT(*) AS calls, \
         CAST(SUM(CASE WHEN answered THEN 1 ELSE 0 END) AS BIGINT) AS answered, \
         CAST(SUM(CASE WHEN answered OR waited >= 30 THEN 1 ELSE 0 END) AS BIGINT) AS j30, \
         CAST(SUM(CASE WHEN answered AND waited <= 30 THEN 1 ELSE 0 END) AS BIGINT) AS m30, \
         CAST(SUM(CASE WHEN answered OR waited >= 300 THEN 1 ELSE 0 END) AS BIGINT) AS j300, \
         CAST(SUM(CASE WHEN answered AND waited <= 300 THEN 1 ELSE 0 END) AS BIGINT) AS m300, \
         CAST(SUM(due) AS BIGINT) AS due, \
         CAST(SUM(CASE WHEN due = 1 AND cb IS NOT NULL AND cb <= 600 THEN 1 ELSE 0 END) AS BIGINT) AS cb10 \
         FROM (SELECT COALESCE(c.tenant_id, 0) AS tk, tn.city_id AS city, \
         (c.answered_at IS NOT NULL) AS answered, {waited} AS waited, \
         CASE WHEN c.disposition = 'callback-scheduled' OR cb.cid IS NOT NULL THEN 1 ELSE 0 END AS due, \
         {cb_seconds} AS cb \
         FROM calls c LEFT JOIN tenants tn ON tn.id = c.tenant_id LEFT JOIN cities ci ON ci.id = tn.city_id \
         LEFT JOIN (SELECT dj.call_id AS cid, MIN(da.at) AS first_at FROM dial_jobs dj \
         LEFT JOIN dial_attempts da ON da.job_id = dj.id \
         WHERE dj.kind = 'callback' AND dj.call_id IN (SELECT id FROM calls"
    ));
    push_window(&mut qb, "offered_at", q);
    qb.push(") GROUP BY dj.call_id) cb ON cb.cid = c.id");
    push_window(&mut qb, "c.offered_at", q);
    qb.push(" AND c.direction = 'inbound' AND COALESCE(c.disposition, '') <> 'rejected'");
    push_filter(&mut qb, filter, "c.tenant_id");
    qb.push(") x GROUP BY tk, city");
    for r in qb.build().fetch_all(&mut *conn).await? {
        out.calls.push(CallDay {
            tenant: r.try_get("tk")?,
            city: r.try_get("city")?,
            counts: [
                r.try_get("calls")?,
                n(&r, "answered")?,
                n(&r, "j30")?,
                n(&r, "m30")?,
                n(&r, "j300")?,
                n(&r, "m300")?,
                n(&r, "due")?,
                n(&r, "cb10")?,
            ],
        });
    }

    // Tickets by local day.
    let offsets = offset_case("h.city_id", &zones(conn).await?, zones_at);
    let local = <Db as AnalyticsSql>::bucket("t.created_at", &offsets, Bucket::Day);
    let mut qb = QueryBuilder::<Db>::new(format!(
        "SELECT t.tenant_id AS tk, h.city_id AS city, {local} AS ld, t.category, \
         t.reason_id AS rid, COUNT(*) AS n{TICKETS}"
    ));
    push_window(&mut qb, "t.created_at", q);
    push_filter(&mut qb, filter, "t.tenant_id");
    qb.push(" GROUP BY t.tenant_id, h.city_id, 3, t.category, t.reason_id");
    for r in qb.build().fetch_all(&mut *conn).await? {
        out.tickets.push(TicketDay {
            tenant: r.try_get("tk")?,
            city: r.try_get("city")?,
            local_day: r.try_get("ld")?,
            category: r.try_get("category")?,
            reason: r.try_get("rid")?,
            tickets: r.try_get("n")?,
        });
    }

    // Each ticket's time to accept and to complete, binned here.
    let first = |status: &str| {
        <Db as AnalyticsSql>::seconds(
            "t.created_at",
            &format!(
                "(SELECT MIN(hh.at) FROM ticket_history hh WHERE hh.ticket_id = t.id AND hh.to_status = '{status}')"
            ),
        )
    };
    let mut qb = QueryBuilder::<Db>::new(format!(
        "SELECT t.tenant_id AS tk, h.city_id AS city, t.category, {} AS acc, {} AS done{TICKETS}",
        first("accepted"),
        first("done")
    ));
    push_window(&mut qb, "t.created_at", q);
    push_filter(&mut qb, filter, "t.tenant_id");
    let mut rows = Vec::new();
    for r in qb.build().fetch_all(&mut *conn).await? {
        rows.push(TicketTimes {
            tenant: r.try_get("tk")?,
            city: r.try_get("city")?,
            category: r.try_get("category")?,
            accept: r.try_get("acc")?,
            done: r.try_get("done")?,
        });
    }
    out.durations = bin_durations(rows);

    // CSI and CES.
    let mut qb = QueryBuilder::<Db>::new(format!(
        "SELECT t.tenant_id AS tk, h.city_id AS city, sa.metric, COUNT(*) AS n, \
         CAST(SUM(sa.score) AS BIGINT) AS s{TICKETS} JOIN survey_answers sa ON sa.ticket_id = t.id"
    ));
    push_window(&mut qb, "t.created_at", q);
    push_filter(&mut qb, filter, "t.tenant_id");
    qb.push(" AND sa.metric IN ('csi', 'ces') GROUP BY t.tenant_id, h.city_id, sa.metric");
    for r in qb.build().fetch_all(&mut *conn).await? {
        out.ratings.push(RatingDay {
            tenant: r.try_get("tk")?,
            city: r.try_get("city")?,
            metric: r.try_get("metric")?,
            answers: r.try_get("n")?,
            sum: n(&r, "s")?,
        });
    }

    // Per executor: CSI by the executor an answer names, completed tickets.
    let mut executors: BTreeMap<(i64, i64, i64), ExecutorDay> = BTreeMap::new();
    let mut qb = QueryBuilder::<Db>::new(format!(
        "SELECT t.tenant_id AS tk, h.city_id AS city, COALESCE(sa.executor_id, t.executor_id) AS ex, \
         CAST(SUM(CASE WHEN sa.score = 1 THEN 1 ELSE 0 END) AS BIGINT) AS s1, \
         CAST(SUM(CASE WHEN sa.score = 2 THEN 1 ELSE 0 END) AS BIGINT) AS s2, \
         CAST(SUM(CASE WHEN sa.score = 3 THEN 1 ELSE 0 END) AS BIGINT) AS s3, \
         CAST(SUM(CASE WHEN sa.score = 4 THEN 1 ELSE 0 END) AS BIGINT) AS s4, \
         CAST(SUM(CASE WHEN sa.score = 5 THEN 1 ELSE 0 END) AS BIGINT) AS s5, \
         COUNT(*) AS n, CAST(SUM(sa.score) AS BIGINT) AS s, COUNT(DISTINCT sa.ticket_id) AS rated\
         {TICKETS} JOIN survey_answers sa ON sa.ticket_id = t.id"
    ));
    push_window(&mut qb, "t.created_at", q);
    push_filter(&mut qb, filter, "t.tenant_id");
    qb.push(
        " AND sa.metric = 'csi' AND COALESCE(sa.executor_id, t.executor_id) IS NOT NULL \
         GROUP BY t.tenant_id, h.city_id, COALESCE(sa.executor_id, t.executor_id)",
    );
    for r in qb.build().fetch_all(&mut *conn).await? {
        let key = (r.try_get("tk")?, r.try_get("city")?, r.try_get("ex")?);
        let e = executors.entry(key).or_default();
        e.scores = [n(&r, "s1")?, n(&r, "s2")?, n(&r, "s3")?, n(&r, "s4")?, n(&r, "s5")?];
        e.answers = r.try_get("n")?;
        e.sum = n(&r, "s")?;
        e.rated = r.try_get("rated")?;
    }
    let mut qb = QueryBuilder::<Db>::new(format!(
        "SELECT t.tenant_id AS tk, h.city_id AS city, t.executor_id AS ex, COUNT(*) AS n{TICKETS}"
    ));
    push_window(&mut qb, "t.created_at", q);
    push_filter(&mut qb, filter, "t.tenant_id");
    qb.push(
        " AND t.status IN ('done', 'closed') AND t.executor_id IS NOT NULL \
         GROUP BY t.tenant_id, h.city_id, t.executor_id",
    );
    for r in qb.build().fetch_all(&mut *conn).await? {
        let key = (r.try_get("tk")?, r.try_get("city")?, r.try_get("ex")?);
        executors.entry(key).or_default().completed = r.try_get("n")?;
    }
    out.executors = executors
        .into_iter()
        .map(|((tenant, city, executor), e)| ExecutorDay {
            tenant,
            city,
            executor,
            ..e
        })
        .collect();
    Ok(out)
}

/// The figures of a partial day of a query's range, read raw.
pub(super) async fn aggregate_window(
    pool: &Pool<Db>,
    q: &AnalyticsQuery,
    filter: Filter<'_>,
    zones_at: DateTime<Utc>,
) -> Result<Figures, StoreError> {
    let mut conn = pool.acquire().await?;
    window(&mut conn, q, filter, zones_at).await
}

/// Rows per multi-row insert.
const CHUNK: usize = 200;

async fn write_day(conn: &mut Conn, day: &str, tenants: &[i64], f: &Figures) -> Result<(), StoreError> {
    for (table, column) in [
        ("journal_day_calls", "tenant_key"),
        ("journal_day_tickets", "tenant_id"),
        ("journal_day_durations", "tenant_id"),
        ("journal_day_ratings", "tenant_id"),
        ("journal_day_executors", "tenant_id"),
    ] {
        let mut qb = QueryBuilder::<Db>::new(format!("DELETE FROM {table} WHERE day = "));
        qb.push_bind(day.to_owned()).push(" AND ");
        push_in(&mut qb, column, tenants);
        qb.build().execute(&mut *conn).await?;
    }
    for rows in f.calls.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO journal_day_calls (day, tenant_key, city_id, calls, answered, j30, m30, j300, m300, due, cb10) ",
        );
        qb.push_values(rows, |mut b, r| {
            b.push_bind(day.to_owned()).push_bind(r.tenant).push_bind(r.city);
            for v in r.counts {
                b.push_bind(v);
            }
        });
        qb.build().execute(&mut *conn).await?;
    }
    for rows in f.tickets.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO journal_day_tickets (day, tenant_id, city_id, local_day, category, reason_id, tickets) ",
        );
        qb.push_values(rows, |mut b, r| {
            b.push_bind(day.to_owned())
                .push_bind(r.tenant)
                .push_bind(r.city)
                .push_bind(r.local_day.clone())
                .push_bind(r.category.clone())
                .push_bind(r.reason)
                .push_bind(r.tickets);
        });
        qb.build().execute(&mut *conn).await?;
    }
    for rows in f.durations.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO journal_day_durations (day, tenant_id, city_id, category, kind, bin, n, min_s, max_s) ",
        );
        qb.push_values(rows, |mut b, r| {
            b.push_bind(day.to_owned())
                .push_bind(r.tenant)
                .push_bind(r.city)
                .push_bind(r.category.clone())
                .push_bind(r.kind.clone())
                .push_bind(r.bin)
                .push_bind(r.n)
                .push_bind(r.min_s)
                .push_bind(r.max_s);
        });
        qb.build().execute(&mut *conn).await?;
    }
    for rows in f.ratings.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO journal_day_ratings (day, tenant_id, city_id, metric, answers, score_sum) ",
        );
        qb.push_values(rows, |mut b, r| {
            b.push_bind(day.to_owned())
                .push_bind(r.tenant)
                .push_bind(r.city)
                .push_bind(r.metric.clone())
                .push_bind(r.answers)
                .push_bind(r.sum);
        });
        qb.build().execute(&mut *conn).await?;
    }
    for rows in f.executors.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO journal_day_executors (day, tenant_id, city_id, executor_id, s1, s2, s3, s4, s5, csi_answers, csi_sum, rated, completed) ",
        );
        qb.push_values(rows, |mut b, r| {
            b.push_bind(day.to_owned())
                .push_bind(r.tenant)
                .push_bind(r.city)
                .push_bind(r.executor);
            for v in r.scores {
                b.push_bind(v);
            }
            b.push_bind(r.answers)
                .push_bind(r.sum)
                .push_bind(r.rated)
                .push_bind(r.completed);
        });
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// The day's figures summed over companies (per city), from its company rows just
/// written: what analytics over every company read (migration 0017).
async fn write_city_day(conn: &mut Conn, day: &str) -> Result<(), StoreError> {
    for (table, sql) in [
        (
            "journal_city_day_tickets",
            "INSERT INTO journal_city_day_tickets (day, city_id, local_day, category, reason_id, tickets) \
             SELECT day, city_id, local_day, category, reason_id, SUM(tickets) FROM journal_day_tickets \
             WHERE day = $1 GROUP BY day, city_id, local_day, category, reason_id",
        ),
        (
            "journal_city_day_durations",
            "INSERT INTO journal_city_day_durations (day, city_id, category, kind, bin, n, min_s, max_s) \
             SELECT day, city_id, category, kind, bin, SUM(n), MIN(min_s), MAX(max_s) FROM journal_day_durations \
             WHERE day = $1 GROUP BY day, city_id, category, kind, bin",
        ),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE day = $1")))
            .bind(day)
            .execute(&mut *conn)
            .await?;
        sqlx::query(sql).bind(day).execute(&mut *conn).await?;
    }
    Ok(())
}

pub(super) async fn refresh(pool: &Pool<Db>) -> Result<u64, StoreError> {
    let any: Option<i64> = sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM journal_dirty_days LIMIT 1")
        .fetch_optional(pool)
        .await?;
    if any.is_none() {
        return Ok(0);
    }
    let mut tx = <Db as Dialect>::begin_write(pool).await?;
    if let Some(lock) = <Db as RollupSql>::LOCK {
        sqlx::query(lock).execute(&mut *tx).await?;
    }
    let marks: Vec<(i64, String)> =
        sqlx::query_as("DELETE FROM journal_dirty_days RETURNING tenant_key, day")
            .fetch_all(&mut *tx)
            .await?;
    let mut days: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (tenant, day) in marks {
        days.entry(day).or_default().push(tenant);
    }
    let mut done = 0u64;
    for (day, mut tenants) in days {
        tenants.sort_unstable();
        tenants.dedup();
        // A mark names a UTC day; one that is not a date (no such row) is dropped.
        let Ok(date) = chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d") else {
            continue;
        };
        let from = date.and_time(chrono::NaiveTime::MIN).and_utc();
        for chunk in tenants.chunks(500) {
            let q = AnalyticsQuery {
                from,
                to: from + chrono::Duration::days(1),
                bucket: None,
                tenant: None,
                city: None,
            };
            let figures = window(&mut tx, &q, Filter::Tenants(chunk), from).await?;
            write_day(&mut tx, &day, chunk, &figures).await?;
            done += chunk.len() as u64;
        }
        write_city_day(&mut tx, &day).await?;
    }
    tx.commit().await?;
    // Upkeep: the figures are written; a vacuum that fails only waits for the
    // next refresh (or autovacuum), it does not fail the query that refreshed.
    if let Err(e) = shrink_marks(pool).await {
        tracing::warn!(error = %e, "cannot vacuum the roll-up's dirty marks now");
    }
    Ok(done)
}

/// Gives back the pages of the marks a refresh deleted, once they are many (see
/// [`RollupSql::SHRINK`]); a vacuum another session is running is not waited for.
async fn shrink_marks(pool: &Pool<Db>) -> Result<(), StoreError> {
    let Some((size, vacuum)) = <Db as RollupSql>::SHRINK else {
        return Ok(());
    };
    let bytes: i64 = sqlx::query_scalar(size).fetch_one(pool).await?;
    if bytes > SHRINK_ABOVE_BYTES {
        sqlx::raw_sql(vacuum).execute(pool).await?;
    }
    Ok(())
}

/// The whole days `[first, end)` of the roll-up, summed over companies (and cities
/// for everything but the calls).
pub(super) async fn read(
    pool: &Pool<Db>,
    scope: &TenantScope,
    q: &AnalyticsQuery,
    first: &str,
    end: &str,
) -> Result<Figures, StoreError> {
    let mut out = Figures::default();
    let filter = Filter::Query(scope, q);
    // Every company: the tickets and durations summed over companies are read.
    let every_company = matches!(scope, TenantScope::All) && q.tenant.is_none();
    // Every company and city: no join needed to filter.
    let unfiltered = every_company && q.city.is_none();
    // A table kept per company and summed per city: the sums for every company.
    let summed = |per_company: &'static str, per_city: &'static str| {
        if every_company {
            (per_city, None)
        } else {
            (per_company, Some("tenant_id"))
        }
    };
    // `tenant`: the table's company column (none: a table summed over companies,
    // read only for every company).
    let from = |qb: &mut QueryBuilder<Db>, table: &str, tenant: Option<&str>| {
        qb.push(format_args!(" FROM {table} j"));
        if !unfiltered {
            if let Some(tenant) = tenant {
                qb.push(format_args!(" LEFT JOIN tenants tn ON tn.id = j.{tenant}"));
            }
            qb.push(" LEFT JOIN cities ci ON ci.id = j.city_id");
        }
        qb.push(" WHERE j.day >= ")
            .push_bind(first.to_owned())
            .push(" AND j.day < ")
            .push_bind(end.to_owned());
        if !unfiltered {
            push_filter(qb, filter, "");
        }
    };

    let mut qb = QueryBuilder::<Db>::new(
        "SELECT j.tenant_key AS tk, j.city_id AS city, CAST(SUM(j.calls) AS BIGINT) AS calls, \
         CAST(SUM(j.answered) AS BIGINT) AS answered, CAST(SUM(j.j30) AS BIGINT) AS j30, \
         CAST(SUM(j.m30) AS BIGINT) AS m30, CAST(SUM(j.j300) AS BIGINT) AS j300, \
         CAST(SUM(j.m300) AS BIGINT) AS m300, CAST(SUM(j.due) AS BIGINT) AS due, \
         CAST(SUM(j.cb10) AS BIGINT) AS cb10",
    );
    from(&mut qb, "journal_day_calls", Some("tenant_key"));
    qb.push(" GROUP BY j.tenant_key, j.city_id");
    for r in qb.build().fetch_all(pool).await? {
        out.calls.push(CallDay {
            tenant: r.try_get("tk")?,
            city: r.try_get("city")?,
            counts: [
                n(&r, "calls")?,
                n(&r, "answered")?,
                n(&r, "j30")?,
                n(&r, "m30")?,
                n(&r, "j300")?,
                n(&r, "m300")?,
                n(&r, "due")?,
                n(&r, "cb10")?,
            ],
        });
    }

    let mut qb = QueryBuilder::<Db>::new(
        "SELECT j.local_day AS ld, j.category, j.reason_id AS rid, CAST(SUM(j.tickets) AS BIGINT) AS n",
    );
    let (table, tenant) = summed("journal_day_tickets", "journal_city_day_tickets");
    from(&mut qb, table, tenant);
    qb.push(" GROUP BY j.local_day, j.category, j.reason_id");
    for r in qb.build().fetch_all(pool).await? {
        out.tickets.push(TicketDay {
            tenant: 0,
            city: 0,
            local_day: r.try_get("ld")?,
            category: r.try_get("category")?,
            reason: r.try_get("rid")?,
            tickets: n(&r, "n")?,
        });
    }

    let mut qb = QueryBuilder::<Db>::new(
        "SELECT j.category, j.kind, j.bin, CAST(SUM(j.n) AS BIGINT) AS n, MIN(j.min_s) AS lo, MAX(j.max_s) AS hi",
    );
    let (table, tenant) = summed("journal_day_durations", "journal_city_day_durations");
    from(&mut qb, table, tenant);
    qb.push(" GROUP BY j.category, j.kind, j.bin");
    for r in qb.build().fetch_all(pool).await? {
        out.durations.push(BinDay {
            tenant: 0,
            city: 0,
            category: r.try_get("category")?,
            kind: r.try_get("kind")?,
            bin: r.try_get("bin")?,
            n: n(&r, "n")?,
            min_s: r.try_get("lo")?,
            max_s: r.try_get("hi")?,
        });
    }

    let mut qb = QueryBuilder::<Db>::new(
        "SELECT j.metric, CAST(SUM(j.answers) AS BIGINT) AS n, CAST(SUM(j.score_sum) AS BIGINT) AS s",
    );
    from(&mut qb, "journal_day_ratings", Some("tenant_id"));
    qb.push(" GROUP BY j.metric");
    for r in qb.build().fetch_all(pool).await? {
        out.ratings.push(RatingDay {
            tenant: 0,
            city: 0,
            metric: r.try_get("metric")?,
            answers: n(&r, "n")?,
            sum: n(&r, "s")?,
        });
    }

    let mut qb = QueryBuilder::<Db>::new(
        "SELECT j.executor_id AS ex, CAST(SUM(j.s1) AS BIGINT) AS s1, CAST(SUM(j.s2) AS BIGINT) AS s2, \
         CAST(SUM(j.s3) AS BIGINT) AS s3, CAST(SUM(j.s4) AS BIGINT) AS s4, CAST(SUM(j.s5) AS BIGINT) AS s5, \
         CAST(SUM(j.csi_answers) AS BIGINT) AS n, CAST(SUM(j.csi_sum) AS BIGINT) AS s, \
         CAST(SUM(j.rated) AS BIGINT) AS rated, CAST(SUM(j.completed) AS BIGINT) AS completed",
    );
    from(&mut qb, "journal_day_executors", Some("tenant_id"));
    qb.push(" GROUP BY j.executor_id");
    for r in qb.build().fetch_all(pool).await? {
        out.executors.push(ExecutorDay {
            tenant: 0,
            city: 0,
            executor: r.try_get("ex")?,
            scores: [n(&r, "s1")?, n(&r, "s2")?, n(&r, "s3")?, n(&r, "s4")?, n(&r, "s5")?],
            answers: n(&r, "n")?,
            sum: n(&r, "s")?,
            rated: n(&r, "rated")?,
            completed: n(&r, "completed")?,
        });
    }
    Ok(out)
}

async fn names(pool: &Pool<Db>, sql: &str, mut ids: Vec<i64>) -> Result<HashMap<i64, String>, StoreError> {
    ids.sort_unstable();
    ids.dedup();
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let mut qb = QueryBuilder::<Db>::new(sql);
        push_in(&mut qb, "id", chunk);
        for r in qb.build().fetch_all(pool).await? {
            out.insert(r.try_get("id")?, r.try_get("v")?);
        }
    }
    Ok(out)
}

pub(super) async fn labels(pool: &Pool<Db>, f: &Figures) -> Result<Labels, StoreError> {
    Ok(Labels {
        tenants: names(
            pool,
            "SELECT id, code AS v FROM tenants WHERE ",
            f.calls.iter().map(|c| c.tenant).collect(),
        )
        .await?,
        cities: names(
            pool,
            "SELECT id, code AS v FROM cities WHERE ",
            f.calls.iter().filter_map(|c| c.city).collect(),
        )
        .await?,
        work_types: names(
            pool,
            "SELECT id, work_type AS v FROM reasons WHERE ",
            f.tickets.iter().map(|t| t.reason).collect(),
        )
        .await?,
        employees: names(
            pool,
            "SELECT id, name AS v FROM employees WHERE ",
            f.executors.iter().map(|e| e.executor).collect(),
        )
        .await?,
    })
}
