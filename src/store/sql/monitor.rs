// Queries of `store::monitor`, compiled once per dialect by `per_backend!`.

use sqlx::{Pool, QueryBuilder, Row};

use crate::store::backend::push_scope;

const OPEN: &str = "t.status IN ('registered', 'accepted', 'in_progress')";

/// The joins every monitor query filters over.
const FROM: &str = " FROM tickets t JOIN tenants tn ON tn.id = t.tenant_id \
     JOIN reasons r ON r.id = t.reason_id";

fn push_filter(qb: &mut QueryBuilder<Db>, scope: &TenantScope, filter: &MonitorFilter) {
    qb.push(" WHERE ").push(OPEN);
    push_scope(qb, scope, "tn.code");
    if let Some(tenant) = &filter.tenant {
        qb.push(" AND tn.code = ").push_bind(tenant.clone());
    }
    if let Some(category) = filter.category {
        qb.push(" AND t.category = ").push_bind(category.as_str());
    }
    if let Some(work_type) = &filter.work_type {
        qb.push(" AND r.work_type = ").push_bind(work_type.clone());
    }
    if let Some(reason) = filter.reason_id {
        qb.push(" AND t.reason_id = ").push_bind(reason.0);
    }
    if let Some(house) = filter.house_id {
        qb.push(" AND t.house_id = ").push_bind(house.0);
    }
    if let Some(executor) = filter.executor_id {
        qb.push(" AND t.executor_id = ").push_bind(executor.0);
    }
    if let Some(from) = filter.from {
        qb.push(" AND t.created_at >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        qb.push(" AND t.created_at < ").push_bind(to);
    }
}

async fn groups(
    pool: &Pool<Db>,
    scope: &TenantScope,
    filter: &MonitorFilter,
    now: DateTime<Utc>,
    key: &str,
) -> Result<Vec<GroupCount>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(format!("SELECT {key} AS k, COUNT(*) AS open, SUM(CASE WHEN t.deadline_at < "));
    qb.push_bind(now).push(" THEN 1 ELSE 0 END) AS overdue").push(FROM);
    push_filter(&mut qb, scope, filter);
    qb.push(format!(" GROUP BY {key} ORDER BY {key}"));
    qb.build()
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok(GroupCount {
                key: r.try_get("k")?,
                open: r.try_get("open")?,
                overdue: r.try_get::<Option<i64>, _>("overdue")?.unwrap_or(0),
            })
        })
        .collect()
}

async fn tickets(
    pool: &Pool<Db>,
    scope: &TenantScope,
    filter: &MonitorFilter,
    range: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
) -> Result<Vec<Ticket>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(TICKET_SELECT);
    push_filter(&mut qb, scope, filter);
    if let Some(from) = range.0 {
        qb.push(" AND t.deadline_at >= ").push_bind(from);
    }
    if let Some(to) = range.1 {
        qb.push(" AND t.deadline_at < ").push_bind(to);
    }
    qb.push(" ORDER BY t.deadline_at, t.id LIMIT ").push_bind(LIST_LIMIT);
    let rows: Vec<TicketRow> = qb.build_query_as().fetch_all(pool).await?;
    rows.into_iter().map(Ticket::try_from).collect()
}

pub(super) async fn monitor(
    pool: &Pool<Db>,
    scope: &TenantScope,
    filter: &MonitorFilter,
    now: DateTime<Utc>,
    soon: DateTime<Utc>,
    soon_minutes: i64,
) -> Result<Monitor, StoreError> {
    let mut qb = QueryBuilder::<Db>::new("SELECT COUNT(*) AS open, SUM(CASE WHEN t.executor_id IS NULL THEN 1 ELSE 0 END) AS unassigned, SUM(CASE WHEN t.deadline_at < ");
    qb.push_bind(now)
        .push(" THEN 1 ELSE 0 END) AS overdue, SUM(CASE WHEN t.deadline_at >= ")
        .push_bind(now)
        .push(" AND t.deadline_at < ")
        .push_bind(soon)
        .push(" THEN 1 ELSE 0 END) AS due_soon")
        .push(FROM);
    push_filter(&mut qb, scope, filter);
    let totals = qb.build().fetch_one(pool).await?;
    let sum = |name: &str| -> Result<i64, StoreError> {
        Ok(totals.try_get::<Option<i64>, _>(name)?.unwrap_or(0))
    };
    let mut qb = QueryBuilder::<Db>::new("SELECT t.executor_id, e.name, COUNT(*) AS open, SUM(CASE WHEN t.deadline_at < ");
    qb.push_bind(now)
        .push(" THEN 1 ELSE 0 END) AS overdue, SUM(CASE WHEN t.status = 'registered' THEN 1 ELSE 0 END) AS not_accepted")
        .push(FROM)
        .push(" JOIN employees e ON e.id = t.executor_id");
    push_filter(&mut qb, scope, filter);
    qb.push(" GROUP BY t.executor_id, e.name ORDER BY COUNT(*) DESC, e.name LIMIT 500");
    let by_executor = qb
        .build()
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok(ExecutorLoad {
                executor_id: EmployeeId(r.try_get("executor_id")?),
                name: r.try_get("name")?,
                open: r.try_get("open")?,
                overdue: r.try_get::<Option<i64>, _>("overdue")?.unwrap_or(0),
                not_accepted: r.try_get::<Option<i64>, _>("not_accepted")?.unwrap_or(0),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Monitor {
        now,
        soon_minutes,
        open: sum("open")?,
        unassigned: sum("unassigned")?,
        overdue: sum("overdue")?,
        due_soon: sum("due_soon")?,
        by_category: groups(pool, scope, filter, now, "t.category").await?,
        by_work_type: groups(pool, scope, filter, now, "r.work_type").await?,
        by_executor,
        overdue_tickets: tickets(pool, scope, filter, (None, Some(now))).await?,
        due_soon_tickets: tickets(pool, scope, filter, (Some(now), Some(soon))).await?,
        open_tickets: tickets(pool, scope, filter, (Some(soon), None)).await?,
    })
}
