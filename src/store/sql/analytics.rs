// Queries of `store::analytics`, compiled once per dialect by `per_backend!`.

use sqlx::{Pool, QueryBuilder, Row};

use crate::store::backend::push_scope;

/// The joins every ticket aggregate filters over.
const TICKETS: &str = " FROM tickets t JOIN tenants tn ON tn.id = t.tenant_id \
     JOIN houses h ON h.id = t.house_id JOIN cities ci ON ci.id = h.city_id \
     JOIN reasons r ON r.id = t.reason_id";

fn push_tickets_where(qb: &mut QueryBuilder<Db>, scope: &TenantScope, q: &AnalyticsQuery) {
    qb.push(" WHERE t.created_at >= ")
        .push_bind(q.from)
        .push(" AND t.created_at < ")
        .push_bind(q.to);
    push_scope(qb, scope, "tn.code");
    if let Some(tenant) = &q.tenant {
        qb.push(" AND tn.code = ").push_bind(tenant.clone());
    }
    if let Some(city) = &q.city {
        qb.push(" AND ci.code = ").push_bind(city.clone());
    }
}

async fn zones(pool: &Pool<Db>) -> Result<Vec<(i64, String)>, StoreError> {
    let rows = sqlx::query("SELECT id, time_zone FROM cities ORDER BY id")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("time_zone")?)))
        .collect()
}

async fn ticket_counts(
    pool: &Pool<Db>,
    scope: &TenantScope,
    q: &AnalyticsQuery,
    offsets: &str,
) -> Result<Vec<TicketCount>, StoreError> {
    let bucket =
        <Db as AnalyticsSql>::bucket("t.created_at", offsets, q.bucket.unwrap_or(Bucket::Day));
    let mut qb = QueryBuilder::<Db>::new(format!(
        "SELECT {bucket} AS b, t.category, r.work_type, COUNT(*) AS n{TICKETS}"
    ));
    push_tickets_where(&mut qb, scope, q);
    qb.push(" GROUP BY 1, t.category, r.work_type ORDER BY 1, t.category, r.work_type");
    qb.build()
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok(TicketCount {
                bucket: r.try_get("b")?,
                category: r.try_get("category")?,
                work_type: r.try_get("work_type")?,
                tickets: r.try_get("n")?,
            })
        })
        .collect()
}

async fn percentiles(
    pool: &Pool<Db>,
    scope: &TenantScope,
    q: &AnalyticsQuery,
    status: &str,
    key: &str,
) -> Result<Vec<Percentiles>, StoreError> {
    let first = format!(
        "(SELECT MIN(hh.at) FROM ticket_history hh WHERE hh.ticket_id = t.id AND hh.to_status = '{status}')"
    );
    let seconds = <Db as AnalyticsSql>::seconds("t.created_at", &first);
    let mut qb = QueryBuilder::<Db>::new(format!(
        "WITH d AS (SELECT k, s FROM (SELECT {key} AS k, {seconds} AS s{TICKETS}"
    ));
    push_tickets_where(&mut qb, scope, q);
    qb.push(
        ") x WHERE s IS NOT NULL), \
         r AS (SELECT k, s, ROW_NUMBER() OVER (PARTITION BY k ORDER BY s) AS rn, \
         COUNT(*) OVER (PARTITION BY k) AS n FROM d) \
         SELECT k, MAX(n) AS n, MIN(CASE WHEN rn = (n + 1) / 2 THEN s END) AS med, \
         MIN(CASE WHEN rn = (9 * n + 9) / 10 THEN s END) AS p90 FROM r GROUP BY k ORDER BY k",
    );
    qb.build()
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok(Percentiles {
                key: r.try_get("k")?,
                count: r.try_get("n")?,
                median_s: r.try_get("med")?,
                p90_s: r.try_get("p90")?,
            })
        })
        .collect()
}

async fn call_compliance(
    pool: &Pool<Db>,
    scope: &TenantScope,
    q: &AnalyticsQuery,
) -> Result<Vec<CallCompliance>, StoreError> {
    let waited = format!(
        "COALESCE(c.wait_seconds, {})",
        <Db as AnalyticsSql>::seconds("c.offered_at", "c.answered_at")
    );
    // The first attempt of each callback job made for a call of the period (jobs
    // are created within minutes of their call), joined once instead of looked up
    // per call.
    let cb_seconds = <Db as AnalyticsSql>::seconds("c.offered_at", "cb.first_at");
    let mut qb = QueryBuilder::<Db>::new(format!(
        "SELECT tenant, city, COUNT(*) AS calls, \
         SUM(CASE WHEN answered THEN 1 ELSE 0 END) AS answered, \
         SUM(CASE WHEN answered OR waited >= 30 THEN 1 ELSE 0 END) AS j30, \
         SUM(CASE WHEN answered AND waited <= 30 THEN 1 ELSE 0 END) AS m30, \
         SUM(CASE WHEN answered OR waited >= 300 THEN 1 ELSE 0 END) AS j300, \
         SUM(CASE WHEN answered AND waited <= 300 THEN 1 ELSE 0 END) AS m300, \
         SUM(due) AS due, SUM(CASE WHEN due = 1 AND cb IS NOT NULL AND cb <= 600 THEN 1 ELSE 0 END) AS cb10 \
         FROM (SELECT tn.code AS tenant, ci.code AS city, (c.answered_at IS NOT NULL) AS answered, \
         {waited} AS waited, \
         CASE WHEN c.disposition = 'callback-scheduled' OR cb.cid IS NOT NULL THEN 1 ELSE 0 END AS due, \
         {cb_seconds} AS cb \
         FROM calls c LEFT JOIN tenants tn ON tn.id = c.tenant_id LEFT JOIN cities ci ON ci.id = tn.city_id \
         LEFT JOIN (SELECT dj.call_id AS cid, MIN(da.at) AS first_at FROM dial_jobs dj \
         LEFT JOIN dial_attempts da ON da.job_id = dj.id \
         WHERE dj.kind = 'callback' AND dj.call_id IS NOT NULL AND dj.created_at >= "
    ));
    qb.push_bind(q.from - chrono::Duration::days(1))
        .push(" AND dj.created_at < ")
        .push_bind(q.to + chrono::Duration::days(1))
        .push(
            " GROUP BY dj.call_id) cb ON cb.cid = c.id \
             WHERE c.direction = 'inbound' AND COALESCE(c.disposition, '') <> 'rejected' AND c.offered_at >= ",
        );
    qb.push_bind(q.from)
        .push(" AND c.offered_at < ")
        .push_bind(q.to);
    push_scope(&mut qb, scope, "tn.code");
    if let Some(tenant) = &q.tenant {
        qb.push(" AND tn.code = ").push_bind(tenant.clone());
    }
    if let Some(city) = &q.city {
        qb.push(" AND ci.code = ").push_bind(city.clone());
    }
    qb.push(") x GROUP BY tenant, city ORDER BY tenant, city");
    let sum = |r: &<Db as sqlx::Database>::Row, name: &str| -> Result<i64, StoreError> {
        Ok(r.try_get::<Option<i64>, _>(name)?.unwrap_or(0))
    };
    qb.build()
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok(CallCompliance {
                tenant: r.try_get("tenant")?,
                city: r.try_get("city")?,
                calls: r.try_get("calls")?,
                answered: sum(r, "answered")?,
                within_30s_of: sum(r, "j30")?,
                within_30s: sum(r, "m30")?,
                within_5min_of: sum(r, "j300")?,
                within_5min: sum(r, "m300")?,
                callbacks_due: sum(r, "due")?,
                callbacks_within_10min: sum(r, "cb10")?,
            })
        })
        .collect()
}

async fn averages(
    pool: &Pool<Db>,
    scope: &TenantScope,
    q: &AnalyticsQuery,
) -> Result<Vec<MetricAverage>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(format!(
        "SELECT sa.metric, COUNT(*) AS n, CAST(AVG(sa.score) AS DOUBLE PRECISION) AS avg \
         {TICKETS} JOIN survey_answers sa ON sa.ticket_id = t.id"
    ));
    push_tickets_where(&mut qb, scope, q);
    qb.push(" AND sa.metric IN ('csi', 'ces') GROUP BY sa.metric ORDER BY sa.metric");
    qb.build()
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok(MetricAverage {
                metric: r.try_get("metric")?,
                answers: r.try_get("n")?,
                average: r.try_get("avg")?,
            })
        })
        .collect()
}

async fn executors(
    pool: &Pool<Db>,
    scope: &TenantScope,
    q: &AnalyticsQuery,
) -> Result<Vec<ExecutorRatings>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(format!(
        "SELECT e.id AS ex, e.name, \
         SUM(CASE WHEN sa.score = 1 THEN 1 ELSE 0 END) AS s1, SUM(CASE WHEN sa.score = 2 THEN 1 ELSE 0 END) AS s2, \
         SUM(CASE WHEN sa.score = 3 THEN 1 ELSE 0 END) AS s3, SUM(CASE WHEN sa.score = 4 THEN 1 ELSE 0 END) AS s4, \
         SUM(CASE WHEN sa.score = 5 THEN 1 ELSE 0 END) AS s5, \
         CAST(AVG(sa.score) AS DOUBLE PRECISION) AS avg, COUNT(DISTINCT sa.ticket_id) AS rated \
         {TICKETS} JOIN survey_answers sa ON sa.ticket_id = t.id \
         JOIN employees e ON e.id = COALESCE(sa.executor_id, t.executor_id)"
    ));
    push_tickets_where(&mut qb, scope, q);
    qb.push(" AND sa.metric = 'csi' GROUP BY e.id, e.name");
    let rated = qb
        .build()
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            let n = |name: &str| -> Result<i64, StoreError> {
                Ok(r.try_get::<Option<i64>, _>(name)?.unwrap_or(0))
            };
            Ok(ExecutorRatings {
                executor_id: EmployeeId(r.try_get("ex")?),
                name: r.try_get("name")?,
                scores: [n("s1")?, n("s2")?, n("s3")?, n("s4")?, n("s5")?],
                average: r.try_get("avg")?,
                completed: 0,
                rated: r.try_get("rated")?,
                share_rated: None,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let mut qb = QueryBuilder::<Db>::new(format!(
        "SELECT e.id AS ex, e.name, COUNT(*) AS n{TICKETS} JOIN employees e ON e.id = t.executor_id"
    ));
    push_tickets_where(&mut qb, scope, q);
    qb.push(" AND t.status IN ('done', 'closed') GROUP BY e.id, e.name");
    let mut completed = HashMap::new();
    for r in qb.build().fetch_all(pool).await? {
        completed.insert(
            r.try_get::<i64, _>("ex")?,
            (r.try_get::<String, _>("name")?, r.try_get::<i64, _>("n")?),
        );
    }
    Ok(executor_table(rated, completed))
}

pub(super) async fn analytics(
    pool: &Pool<Db>,
    scope: &TenantScope,
    q: &AnalyticsQuery,
) -> Result<Analytics, StoreError> {
    let offsets = offset_case("h.city_id", &zones(pool).await?, q.from);
    let mut time_to_accept = percentiles(pool, scope, q, "accepted", "'all'").await?;
    time_to_accept.extend(percentiles(pool, scope, q, "accepted", "t.category").await?);
    let mut time_to_complete = percentiles(pool, scope, q, "done", "'all'").await?;
    time_to_complete.extend(percentiles(pool, scope, q, "done", "t.category").await?);
    Ok(Analytics {
        tickets: ticket_counts(pool, scope, q, &offsets).await?,
        time_to_accept,
        time_to_complete,
        calls: call_compliance(pool, scope, q).await?,
        ratings: averages(pool, scope, q).await?,
        executors: executors(pool, scope, q).await?,
    })
}

pub(super) async fn drill(
    pool: &Pool<Db>,
    scope: &TenantScope,
    f: &DrillFilter,
    offset: i64,
    limit: i64,
) -> Result<Page<Ticket>, StoreError> {
    let where_clause = |qb: &mut QueryBuilder<Db>| {
        qb.push(" WHERE t.created_at >= ")
            .push_bind(f.from)
            .push(" AND t.created_at < ")
            .push_bind(f.to);
        push_scope(qb, scope, "tn.code");
        if let Some(tenant) = &f.tenant {
            qb.push(" AND tn.code = ").push_bind(tenant.clone());
        }
        if let Some(city) = &f.city {
            qb.push(" AND h.city_id IN (SELECT id FROM cities WHERE code = ")
                .push_bind(city.clone())
                .push(")");
        }
        if let Some(category) = &f.category {
            qb.push(" AND t.category = ").push_bind(category.clone());
        }
        if let Some(work_type) = &f.work_type {
            qb.push(" AND r.work_type = ").push_bind(work_type.clone());
        }
        if let Some(executor) = f.executor_id {
            qb.push(" AND t.executor_id = ").push_bind(executor.0);
        }
        if let Some(score) = f.csi {
            qb.push(" AND EXISTS (SELECT 1 FROM survey_answers sa WHERE sa.ticket_id = t.id AND sa.metric = 'csi' AND sa.score = ")
                .push_bind(score)
                .push(")");
        }
    };
    let mut count = QueryBuilder::<Db>::new(
        "SELECT COUNT(*) FROM tickets t JOIN tenants tn ON tn.id = t.tenant_id \
         JOIN houses h ON h.id = t.house_id JOIN reasons r ON r.id = t.reason_id",
    );
    where_clause(&mut count);
    let total: i64 = count.build_query_scalar().fetch_one(pool).await?;
    let mut qb = QueryBuilder::<Db>::new(TICKET_SELECT);
    where_clause(&mut qb);
    qb.push(" ORDER BY t.created_at DESC, t.id DESC LIMIT ")
        .push_bind(limit)
        .push(" OFFSET ")
        .push_bind(offset);
    let rows: Vec<TicketRow> = qb.build_query_as().fetch_all(pool).await?;
    Ok(Page {
        items: rows
            .into_iter()
            .map(Ticket::try_from)
            .collect::<Result<_, _>>()?,
        total,
        offset,
        limit,
    })
}
