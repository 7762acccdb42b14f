// Queries of `store::dial_jobs`, compiled once per dialect by `per_backend!`.

use sqlx::{Pool, QueryBuilder, Row};

use crate::store::backend::push_scope;

type Conn = <Db as sqlx::Database>::Connection;

const JOB_SELECT: &str = "SELECT j.id, j.kind, t.code AS tenant, j.target_phone, j.due_at, \
     j.attempts_made, j.max_attempts, j.state, j.claimed_by, j.claimed_until, j.outcome, j.ticket_id, \
     j.call_id, j.origin_number, j.precedence, j.deadline_at, j.quiet_hours, j.reach, j.outage_id, \
     j.supplier_ticket_id, j.answer, j.at_risk_at, j.created_at, j.updated_at \
     FROM dial_jobs j LEFT JOIN tenants t ON t.id = j.tenant_id";

/// A job is due when it is pending and its time has come, or claimed by a node
/// whose lease lapsed or that is known dead (its `nodes` row lapsed).
const DUE: &str = "((j.state = 'pending' AND j.due_at <= $1) OR (j.state = 'claimed' AND \
     (j.claimed_until <= $1 OR j.claimed_by IN (SELECT id FROM nodes WHERE alive_until <= $1))))";

/// [`DUE`] on the unaliased table, for the `UPDATE` that claims: PostgreSQL re-checks
/// these conditions on the newest row version when a concurrent claim got there
/// first, so exactly one node wins.
const DUE_ROW: &str = "((state = 'pending' AND due_at <= $1) OR (state = 'claimed' AND \
     (claimed_until <= $1 OR claimed_by IN (SELECT id FROM nodes WHERE alive_until <= $1))))";

fn job_from(row: &<Db as sqlx::Database>::Row) -> Result<DialJob, StoreError> {
    let kind: String = row.try_get("kind")?;
    let state: String = row.try_get("state")?;
    Ok(DialJob {
        id: DialJobId(row.try_get("id")?),
        kind: kind.parse()?,
        tenant: row.try_get("tenant")?,
        target: row.try_get("target_phone")?,
        due_at: row.try_get("due_at")?,
        attempts_made: row.try_get("attempts_made")?,
        max_attempts: row.try_get("max_attempts")?,
        state: state.parse()?,
        claimed_by: row.try_get("claimed_by")?,
        claimed_until: row.try_get("claimed_until")?,
        outcome: row.try_get("outcome")?,
        ticket_id: row.try_get::<Option<i64>, _>("ticket_id")?.map(TicketId),
        call_id: row.try_get("call_id")?,
        origin_number: row.try_get("origin_number")?,
        precedence: row.try_get("precedence")?,
        deadline_at: row.try_get("deadline_at")?,
        quiet_hours: row.try_get("quiet_hours")?,
        reach: row
            .try_get::<Option<String>, _>("reach")?
            .map(|r| reach_from(&r))
            .transpose()?,
        outage_id: row.try_get::<Option<i64>, _>("outage_id")?.map(OutageId),
        supplier_ticket_id: row
            .try_get::<Option<i64>, _>("supplier_ticket_id")?
            .map(SupplierTicketId),
        answer: row.try_get("answer")?,
        at_risk_at: row.try_get("at_risk_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn reach_from(text: &str) -> Result<crate::config::Reach, StoreError> {
    match text {
        "operator-first" => Ok(crate::config::Reach::OperatorFirst),
        "informer" => Ok(crate::config::Reach::Informer),
        other => Err(StoreError::Corrupt(format!("unknown reach `{other}`"))),
    }
}

pub(in crate::store) async fn load(conn: &mut Conn, id: i64) -> Result<Option<DialJob>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(JOB_SELECT);
    qb.push(" WHERE j.id = ").push_bind(id);
    let row = qb.build().fetch_optional(conn).await?;
    row.as_ref().map(job_from).transpose()
}

pub(super) async fn create_job(
    pool: &Pool<Db>,
    new: &NewDialJob,
    origin: Option<&str>,
    now: DateTime<Utc>,
) -> Result<DialJob, StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let tenant_id: Option<i64> = match &new.tenant {
        Some(code) => Some(
            sqlx::query_scalar("SELECT id FROM tenants WHERE code = $1")
                .bind(code)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::invalid("tenant", format!("unknown tenant `{code}`")))?,
        ),
        None => None,
    };
    let Some(id) = insert_job(&mut tx, new, tenant_id, origin, now).await? else {
        return Err(StoreError::Conflict(format!(
            "a {} job for {} is already planned",
            new.kind,
            new.target.as_str()
        )));
    };
    let job = load(&mut tx, id)
        .await?
        .ok_or_else(|| StoreError::not_found("dial job", id))?;
    tx.commit().await?;
    Ok(job)
}

/// Inserts a pending job; `None` when a unique rule says it is already planned (one
/// open status check per ticket, one survey per ticket, one open call per supplier
/// hand-over, one call per number and outage).
pub(in crate::store) async fn insert_job(
    conn: &mut Conn,
    new: &NewDialJob,
    tenant_id: Option<i64>,
    origin: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO dial_jobs (kind, tenant_id, target_phone, due_at, attempts_made, max_attempts, state, \
         ticket_id, call_id, created_at, updated_at, origin_number, precedence, deadline_at, quiet_hours, \
         reach, outage_id, supplier_ticket_id) \
         VALUES ($1, $2, $3, $4, 0, $5, 'pending', $6, $7, $8, $8, $9, $10, $11, $12, $13, $14, $15) \
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(new.kind.as_str())
    .bind(tenant_id)
    .bind(new.target.as_str())
    .bind(new.due_at)
    .bind(i64::from(new.max_attempts))
    .bind(new.ticket_id.map(|t| t.0))
    .bind(new.call_id.as_deref())
    .bind(now)
    .bind(origin)
    .bind(new.kind.precedence())
    .bind(new.deadline_at)
    .bind(new.quiet_hours)
    .bind(new.reach.map(|r| r.as_str()))
    .bind(new.outage_id.map(|o| o.0))
    .bind(new.supplier_ticket_id.map(|s| s.0))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(id)
}

pub(super) async fn job(pool: &Pool<Db>, id: DialJobId) -> Result<Option<DialJob>, StoreError> {
    let mut conn = pool.acquire().await?;
    load(&mut conn, id.0).await
}

pub(super) async fn due_jobs(
    pool: &Pool<Db>,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<DialJob>, StoreError> {
    let sql = format!("{JOB_SELECT} WHERE {DUE} ORDER BY j.due_at, j.id LIMIT $2");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    rows.iter().map(job_from).collect()
}

pub(super) async fn claim_job(
    pool: &Pool<Db>,
    id: DialJobId,
    node: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Option<DialJob>, StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let sql = format!(
        "UPDATE dial_jobs SET state = 'claimed', claimed_by = $2, claimed_until = $3, updated_at = $1 \
         WHERE id = $4 AND {DUE_ROW} RETURNING id"
    );
    let claimed: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(node)
        .bind(until)
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?;
    let job = match claimed {
        Some(id) => load(&mut tx, id).await?,
        None => None,
    };
    tx.commit().await?;
    Ok(job)
}

pub(super) async fn claim_due(
    pool: &Pool<Db>,
    node: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: i64,
    kinds: &[DialKind],
    whose: Option<ClaimFor<'_>>,
) -> Result<Vec<DialJob>, StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    // The kinds are the enum's fixed spellings and the crew's predicate a constant,
    // never user input.
    let mut kind_filter = if kinds.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = kinds.iter().map(|k| format!("'{}'", k.as_str())).collect();
        format!(" AND j.kind IN ({})", list.join(", "))
    };
    let tenants = whose.map_or(&TenantScope::All, |w| w.tenants);
    if let Some(whose) = whose {
        kind_filter.push_str(" AND ");
        kind_filter.push_str(whose.crew.predicate());
    }
    if let TenantScope::Only(codes) = tenants {
        // Jobs of these tenants, or of none. The codes are looked up as binds; the
        // filter names the tenants' ids, integers the store gave.
        let mut qb = QueryBuilder::<Db>::new("SELECT id FROM tenants WHERE ");
        crate::store::backend::push_in(&mut qb, "code", codes);
        let ids: Vec<i64> = qb.build_query_scalar().fetch_all(&mut *tx).await?;
        if ids.is_empty() {
            kind_filter.push_str(" AND j.tenant_id IS NULL");
        } else {
            let list: Vec<String> = ids.iter().map(i64::to_string).collect();
            kind_filter.push_str(&format!(
                " AND (j.tenant_id IS NULL OR j.tenant_id IN ({}))",
                list.join(", ")
            ));
        }
    }
    // The pick is materialised first: as a plain `IN (subquery)` PostgreSQL may
    // scan it again for each row it updates, and each scan skips the rows already
    // claimed and finds the next ones, so a claim could take more than `limit`.
    let sql = format!(
        "WITH picked AS MATERIALIZED (SELECT j.id FROM dial_jobs j WHERE {DUE}{kind_filter} \
         ORDER BY j.precedence, COALESCE(j.deadline_at, j.due_at), j.id LIMIT $4{}) \
         UPDATE dial_jobs SET state = 'claimed', claimed_by = $2, claimed_until = $3, updated_at = $1 \
         WHERE {DUE_ROW} AND id IN (SELECT id FROM picked) RETURNING id",
        Db::SKIP_LOCKED
    );
    let mut ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(node)
        .bind(until)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
    ids.sort_unstable();
    let mut jobs = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(job) = load(&mut tx, id).await? {
            jobs.push(job);
        }
    }
    tx.commit().await?;
    jobs.sort_by_key(|j| (j.precedence, j.deadline_at.unwrap_or(j.due_at), j.id));
    Ok(jobs)
}

pub(super) async fn record_attempt(
    pool: &Pool<Db>,
    id: DialJobId,
    node: &str,
    outcome: DialAttemptOutcome,
    call_id: Option<&str>,
    after: AfterAttempt,
    now: DateTime<Utc>,
) -> Result<DialJob, StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let sql = format!(
        "SELECT state, claimed_by, attempts_made, max_attempts FROM dial_jobs WHERE id = $1{}",
        Db::FOR_UPDATE
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::not_found("dial job", id))?;
    let state: String = row.try_get("state")?;
    let holder: Option<String> = row.try_get("claimed_by")?;
    if state != "claimed" || holder.as_deref() != Some(node) {
        return Err(StoreError::Conflict(format!(
            "dial job {id} is not claimed by {node}"
        )));
    }
    let attempts: i64 = row.try_get::<i64, _>("attempts_made")? + 1;
    let max: i64 = row.try_get("max_attempts")?;
    sqlx::query("INSERT INTO dial_attempts (job_id, attempt, at, outcome, call_id) VALUES ($1, $2, $3, $4, $5)")
        .bind(id.0)
        .bind(attempts)
        .bind(now)
        .bind(outcome.as_str())
        .bind(call_id)
        .execute(&mut *tx)
        .await?;
    match after {
        AfterAttempt::RetryAt(due) if attempts < max => {
            sqlx::query(
                "UPDATE dial_jobs SET attempts_made = $2, outcome = $3, state = 'pending', due_at = $4, \
                 claimed_by = NULL, claimed_until = NULL, updated_at = $5 WHERE id = $1",
            )
            .bind(id.0)
            .bind(attempts)
            .bind(outcome.as_str())
            .bind(due)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        AfterAttempt::RetryAt(_) => {
            // The budget is spent: the job fails with the last outcome.
            sqlx::query(
                "UPDATE dial_jobs SET attempts_made = $2, outcome = $3, state = 'failed', \
                 claimed_by = NULL, claimed_until = NULL, updated_at = $4 WHERE id = $1",
            )
            .bind(id.0)
            .bind(attempts)
            .bind(outcome.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        AfterAttempt::Done => {
            sqlx::query(
                "UPDATE dial_jobs SET attempts_made = $2, outcome = $3, state = 'done', \
                 claimed_by = NULL, claimed_until = NULL, updated_at = $4 WHERE id = $1",
            )
            .bind(id.0)
            .bind(attempts)
            .bind(outcome.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        AfterAttempt::Hold => {
            sqlx::query("UPDATE dial_jobs SET attempts_made = $2, outcome = $3, updated_at = $4 WHERE id = $1")
                .bind(id.0)
                .bind(attempts)
                .bind(outcome.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
    }
    let job = load(&mut tx, id.0)
        .await?
        .ok_or_else(|| StoreError::not_found("dial job", id))?;
    tx.commit().await?;
    Ok(job)
}

pub(super) async fn complete_job(
    pool: &Pool<Db>,
    id: DialJobId,
    state: DialJobState,
    outcome: &str,
    now: DateTime<Utc>,
) -> Result<DialJob, StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let done = sqlx::query(
        "UPDATE dial_jobs SET state = $2, outcome = $3, claimed_by = NULL, claimed_until = NULL, \
         updated_at = $4 WHERE id = $1 AND state IN ('pending', 'claimed')",
    )
    .bind(id.0)
    .bind(state.as_str())
    .bind(outcome)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let job = load(&mut tx, id.0)
        .await?
        .ok_or_else(|| StoreError::not_found("dial job", id))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!(
            "dial job {id} is already {}",
            job.state
        )));
    }
    tx.commit().await?;
    Ok(job)
}

pub(super) async fn cancel_of_call(
    pool: &Pool<Db>,
    call_id: &str,
    kind: DialKind,
    outcome: &str,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE dial_jobs SET state = 'cancelled', outcome = $3, claimed_by = NULL, \
         claimed_until = NULL, updated_at = $4 \
         WHERE call_id = $1 AND kind = $2 AND state IN ('pending', 'claimed')",
    )
    .bind(call_id)
    .bind(kind.as_str())
    .bind(outcome)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

pub(super) async fn count_of_call(
    pool: &Pool<Db>,
    call_id: &str,
    kind: DialKind,
) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dial_jobs WHERE call_id = $1 AND kind = $2")
        .bind(call_id)
        .bind(kind.as_str())
        .fetch_one(pool)
        .await?;
    Ok(u64::try_from(n).unwrap_or_default())
}

pub(super) async fn renew_leases(
    pool: &Pool<Db>,
    node: &str,
    ids: &[DialJobId],
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let mut qb = QueryBuilder::<Db>::new("UPDATE dial_jobs SET claimed_until = ");
    qb.push_bind(until)
        .push(", updated_at = ")
        .push_bind(now)
        .push(" WHERE state = 'claimed' AND claimed_by = ")
        .push_bind(node.to_owned())
        .push(" AND id IN (");
    let mut list = qb.separated(", ");
    for id in ids {
        list.push_bind(id.0);
    }
    list.push_unseparated(")");
    let done = qb.build().execute(pool).await?;
    Ok(done.rows_affected())
}

pub(super) async fn release_node(
    pool: &Pool<Db>,
    node: &str,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE dial_jobs SET claimed_until = $1, updated_at = $1 \
         WHERE state = 'claimed' AND claimed_by = $2",
    )
    .bind(now)
    .bind(node.to_owned())
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

pub(super) async fn list_jobs(
    pool: &Pool<Db>,
    scope: &TenantScope,
    filter: &DialJobFilter,
    offset: i64,
    limit: i64,
) -> Result<crate::store::Page<DialJob>, StoreError> {
    let where_clause = |qb: &mut QueryBuilder<Db>| {
        qb.push(" WHERE TRUE");
        push_scope(qb, scope, "t.code");
        if let Some(state) = filter.state {
            qb.push(" AND j.state = ").push_bind(state.as_str());
        }
        if let Some(kind) = filter.kind {
            qb.push(" AND j.kind = ").push_bind(kind.as_str());
        }
        if let Some(ticket) = filter.ticket_id {
            qb.push(" AND j.ticket_id = ").push_bind(ticket.0);
        }
    };
    let mut count = QueryBuilder::<Db>::new(
        "SELECT COUNT(*) FROM dial_jobs j LEFT JOIN tenants t ON t.id = j.tenant_id",
    );
    where_clause(&mut count);
    let total: i64 = count.build_query_scalar().fetch_one(pool).await?;
    let mut qb = QueryBuilder::<Db>::new(JOB_SELECT);
    where_clause(&mut qb);
    qb.push(" ORDER BY j.due_at DESC, j.id DESC LIMIT ")
        .push_bind(limit)
        .push(" OFFSET ")
        .push_bind(offset);
    let rows = qb.build().fetch_all(pool).await?;
    Ok(crate::store::Page {
        items: rows.iter().map(job_from).collect::<Result<_, _>>()?,
        total,
        offset,
        limit,
    })
}

