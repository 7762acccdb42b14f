// Queries of `store::follow_ups`, compiled once per dialect by `per_backend!`.

use sqlx::{Pool, QueryBuilder, Row};

use crate::store::backend::{push_in, push_scope};
use crate::store::directory::parse_tz;

type Conn = <Db as sqlx::Database>::Connection;

pub(super) async fn ticket_follow_ups(
    pool: &Pool<Db>,
    since: DateTime<Utc>,
    tickets: Option<&[TicketId]>,
    limit: i64,
) -> Result<Vec<TicketFollowUp>, StoreError> {
    // A note in the history keeps the status (from = to): only real moves count.
    let mut qb = QueryBuilder::<Db>::new(
        "SELECT t.id, t.number, tn.code AS tenant, ci.time_zone, t.category, t.status, \
         ex.name AS executor_name, \
         (SELECT p.phone FROM employee_phones p WHERE p.employee_id = t.executor_id \
           ORDER BY p.priority LIMIT 1) AS executor_phone, \
         t.caller_phone, \
         (SELECT MIN(h.at) FROM ticket_history h WHERE h.ticket_id = t.id \
           AND h.to_status IN ('accepted', 'in_progress') \
           AND (h.from_status IS NULL OR h.from_status <> h.to_status)) AS accepted_at, \
         (SELECT MAX(h.at) FROM ticket_history h WHERE h.ticket_id = t.id \
           AND h.to_status = 'done' \
           AND (h.from_status IS NULL OR h.from_status <> h.to_status)) AS done_at, \
         (SELECT COUNT(*) FROM dial_jobs j WHERE j.ticket_id = t.id AND j.kind = 'status-check') \
           AS status_checks, \
         (SELECT COUNT(*) FROM dial_jobs j WHERE j.ticket_id = t.id AND j.kind = 'status-check' \
           AND j.state IN ('pending', 'claimed')) AS open_status_checks, \
         (SELECT COUNT(*) FROM dial_jobs j WHERE j.ticket_id = t.id AND j.kind = 'survey') AS surveys, \
         (SELECT COUNT(*) FROM survey_opt_outs o WHERE o.phone = t.caller_phone) AS opted_out \
         FROM tickets t JOIN tenants tn ON tn.id = t.tenant_id \
         JOIN cities ci ON ci.id = tn.city_id \
         LEFT JOIN employees ex ON ex.id = t.executor_id \
         WHERE t.status IN ('accepted', 'in_progress', 'done') AND ",
    );
    match tickets {
        Some(ids) => {
            let raw: Vec<i64> = ids.iter().map(|t| t.0).collect();
            push_in(&mut qb, "t.id", &raw);
        }
        None => {
            qb.push("t.updated_at >= ").push_bind(since);
        }
    }
    qb.push(" ORDER BY t.updated_at DESC, t.id DESC LIMIT ")
        .push_bind(limit);
    let rows = qb.build().fetch_all(pool).await?;
    rows.iter()
        .map(|r| {
            let category: String = r.try_get("category")?;
            let status: String = r.try_get("status")?;
            let zone: String = r.try_get("time_zone")?;
            Ok(TicketFollowUp {
                ticket: TicketId(r.try_get("id")?),
                number: r.try_get("number")?,
                tenant: r.try_get("tenant")?,
                time_zone: parse_tz(&zone)?,
                category: category.parse()?,
                status: status.parse()?,
                executor_name: r.try_get("executor_name")?,
                executor_phone: r.try_get("executor_phone")?,
                caller_phone: r.try_get("caller_phone")?,
                accepted_at: r.try_get("accepted_at")?,
                done_at: r.try_get("done_at")?,
                status_checks: r.try_get("status_checks")?,
                open_status_check: r.try_get::<i64, _>("open_status_checks")? > 0,
                survey_planned: r.try_get::<i64, _>("surveys")? > 0,
                caller_opted_out: r.try_get::<i64, _>("opted_out")? > 0,
            })
        })
        .collect()
}

pub(super) async fn supplier_follow_ups(
    pool: &Pool<Db>,
    tickets: Option<&[TicketId]>,
    limit: i64,
) -> Result<Vec<SupplierFollowUp>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(
        "SELECT st.id, st.ticket_id, t.number, tn.code AS tenant, ci.time_zone, t.category, \
         t.status AS ticket_status, s.name AS supplier_name, s.dispatch_phone, st.status, st.recheck_at, \
         (SELECT COUNT(*) FROM dial_jobs j WHERE j.supplier_ticket_id = st.id \
           AND j.kind = 'supplier-handoff') AS handoff_calls, \
         (SELECT COUNT(*) FROM dial_jobs j WHERE j.supplier_ticket_id = st.id \
           AND j.kind = 'supplier-handoff' AND j.state = 'done') AS handoff_answered, \
         (SELECT COUNT(*) FROM dial_jobs j WHERE j.supplier_ticket_id = st.id \
           AND j.kind = 'supplier-query') AS queries, \
         (SELECT MIN(j.id) FROM dial_jobs j WHERE j.supplier_ticket_id = st.id \
           AND j.state IN ('pending', 'claimed')) AS open_id, \
         (SELECT MIN(j.due_at) FROM dial_jobs j WHERE j.supplier_ticket_id = st.id \
           AND j.state IN ('pending', 'claimed')) AS open_due \
         FROM supplier_tickets st JOIN suppliers s ON s.id = st.supplier_id \
         JOIN tickets t ON t.id = st.ticket_id JOIN tenants tn ON tn.id = t.tenant_id \
         JOIN cities ci ON ci.id = tn.city_id \
         WHERE st.status IN ('pending', 'handed_over')",
    );
    if let Some(ids) = tickets {
        let raw: Vec<i64> = ids.iter().map(|t| t.0).collect();
        qb.push(" AND ");
        push_in(&mut qb, "st.ticket_id", &raw);
    }
    qb.push(" ORDER BY st.id LIMIT ").push_bind(limit);
    let rows = qb.build().fetch_all(pool).await?;
    rows.iter()
        .map(|r| {
            let category: String = r.try_get("category")?;
            let ticket_status: String = r.try_get("ticket_status")?;
            let status: String = r.try_get("status")?;
            let zone: String = r.try_get("time_zone")?;
            let open_id: Option<i64> = r.try_get("open_id")?;
            let open_due: Option<DateTime<Utc>> = r.try_get("open_due")?;
            Ok(SupplierFollowUp {
                supplier_ticket: SupplierTicketId(r.try_get("id")?),
                ticket: TicketId(r.try_get("ticket_id")?),
                number: r.try_get("number")?,
                tenant: r.try_get("tenant")?,
                time_zone: parse_tz(&zone)?,
                category: category.parse()?,
                ticket_status: ticket_status.parse()?,
                supplier_name: r.try_get("supplier_name")?,
                dispatch_phone: r.try_get("dispatch_phone")?,
                status: status.parse()?,
                recheck_at: r.try_get("recheck_at")?,
                handoff_calls: r.try_get("handoff_calls")?,
                handoff_answered: r.try_get("handoff_answered")?,
                queries: r.try_get("queries")?,
                open_call: open_id.zip(open_due).map(|(id, due)| (DialJobId(id), due)),
            })
        })
        .collect()
}

/// A ticket read inside the transaction that changed it.
async fn ticket_in(conn: &mut Conn, id: TicketId) -> Result<Ticket, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(crate::store::tickets::TICKET_SELECT);
    qb.push(" WHERE t.id = ").push_bind(id.0);
    let row: crate::store::tickets::TicketRow = qb.build_query_as().fetch_one(conn).await?;
    Ticket::try_from(row)
}

async fn tenant_id(conn: &mut Conn, code: Option<&str>) -> Result<Option<i64>, StoreError> {
    let Some(code) = code else {
        return Ok(None);
    };
    sqlx::query_scalar("SELECT id FROM tenants WHERE code = $1")
        .bind(code)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| StoreError::invalid("tenant", format!("unknown tenant `{code}`")))
        .map(Some)
}

pub(super) async fn plan_jobs(
    pool: &Pool<Db>,
    jobs: &[NewDialJob],
    now: DateTime<Utc>,
) -> Result<Vec<DialJob>, StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let mut made = Vec::new();
    for new in jobs {
        let tenant = tenant_id(&mut tx, new.tenant.as_deref()).await?;
        let id = peers::dial_jobs::insert_job(&mut tx, new, tenant, None, now)
            .await?;
        if let Some(id) = id {
            if let Some(job) = peers::dial_jobs::load(&mut tx, id).await? {
                made.push(job);
            }
        }
    }
    tx.commit().await?;
    Ok(made)
}

pub(super) async fn cancel_stale(
    pool: &Pool<Db>,
    now: DateTime<Utc>,
) -> Result<Vec<DialJobId>, StoreError> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "UPDATE dial_jobs SET state = 'cancelled', outcome = 'not-needed', claimed_by = NULL, \
         claimed_until = NULL, updated_at = $1 \
         WHERE state IN ('pending', 'claimed') AND (\
           (kind = 'status-check' AND ticket_id IN \
             (SELECT id FROM tickets WHERE status IN ('done', 'closed', 'cancelled'))) \
           OR (kind IN ('supplier-handoff', 'supplier-query') AND (\
             supplier_ticket_id IN (SELECT id FROM supplier_tickets WHERE status IN ('done', 'cancelled')) \
             OR ticket_id IN (SELECT id FROM tickets WHERE status IN ('closed', 'cancelled')))) \
           OR (kind = 'supplier-handoff' AND state = 'pending' AND supplier_ticket_id IN \
             (SELECT id FROM supplier_tickets WHERE status <> 'pending'))) \
         RETURNING id",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    Ok(ids.into_iter().map(DialJobId).collect())
}

pub(super) async fn postpone(
    pool: &Pool<Db>,
    id: DialJobId,
    node: &str,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE dial_jobs SET state = 'pending', due_at = $3, claimed_by = NULL, claimed_until = NULL, \
         updated_at = $4 WHERE id = $1 AND state = 'claimed' AND claimed_by = $2",
    )
    .bind(id.0)
    .bind(node)
    .bind(until)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn mark_at_risk(
    pool: &Pool<Db>,
    jobs: &[DialJobId],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut qb = QueryBuilder::<Db>::new("UPDATE dial_jobs SET at_risk_at = ");
    qb.push_bind(now).push(" WHERE at_risk_at IS NULL AND ");
    let raw: Vec<i64> = jobs.iter().map(|j| j.0).collect();
    push_in(&mut qb, "id", &raw);
    qb.build().execute(pool).await?;
    Ok(())
}

pub(super) async fn mark_unclaimed_at_risk(
    pool: &Pool<Db>,
    share: f64,
    now: DateTime<Utc>,
) -> Result<Vec<UnclaimedAtRisk>, StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    // Waiting in the store for a node that can make it: never claimed since its
    // deadline was set, or handed back.
    // (A deadline more than a day gone is history, not an alarm.)
    let rows = sqlx::query(
        "SELECT j.id, t.code AS tenant, j.kind, j.target_phone, j.created_at, j.deadline_at, j.call_id \
         FROM dial_jobs j LEFT JOIN tenants t ON t.id = j.tenant_id \
         WHERE j.state = 'pending' AND j.deadline_at IS NOT NULL AND j.at_risk_at IS NULL \
         AND j.deadline_at > $1 ORDER BY j.deadline_at, j.id LIMIT 500",
    )
    .bind(now - chrono::Duration::days(1))
        .fetch_all(&mut *tx)
        .await?;
    let mut due = Vec::new();
    for row in rows {
        let created: DateTime<Utc> = row.try_get("created_at")?;
        let deadline: DateTime<Utc> = row.try_get("deadline_at")?;
        if now < crate::store::dial_jobs::at_risk_from(created, deadline, share) {
            continue;
        }
        let id = DialJobId(row.try_get("id")?);
        // Conditional: of several nodes sweeping at once, one marks (and tells).
        let marked = sqlx::query(
            "UPDATE dial_jobs SET at_risk_at = $1 WHERE id = $2 AND at_risk_at IS NULL AND state = 'pending'",
        )
        .bind(now)
        .bind(id.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if marked == 1 {
            let kind: String = row.try_get("kind")?;
            due.push(UnclaimedAtRisk {
                job: id,
                tenant: row.try_get("tenant")?,
                kind: kind.parse()?,
                target: row.try_get("target_phone")?,
                deadline,
                call_id: row.try_get("call_id")?,
            });
        }
    }
    tx.commit().await?;
    Ok(due)
}

pub(super) async fn record_follow_up(
    pool: &Pool<Db>,
    id: DialJobId,
    node: &str,
    result: &FollowUpResult,
    now: DateTime<Utc>,
) -> Result<FollowUpRecorded, StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let sql = format!(
        "SELECT state, claimed_by, attempts_made, max_attempts, ticket_id, supplier_ticket_id, target_phone \
         FROM dial_jobs WHERE id = $1{}",
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
    let ticket: Option<i64> = row.try_get("ticket_id")?;
    let supplier_ticket: Option<i64> = row.try_get("supplier_ticket_id")?;
    let target: String = row.try_get("target_phone")?;
    sqlx::query(
        "INSERT INTO dial_attempts (job_id, attempt, at, outcome, call_id) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.0)
    .bind(attempts)
    .bind(now)
    .bind(result.outcome.as_str())
    .bind(result.call_id.as_deref())
    .execute(&mut *tx)
    .await?;
    let answered = result.outcome == DialAttemptOutcome::Answered;
    let ended = answered || attempts >= max;
    let (state, due) = if answered {
        ("done", None)
    } else if ended {
        ("failed", None)
    } else {
        ("pending", Some(result.retry_at))
    };
    sqlx::query(
        "UPDATE dial_jobs SET attempts_made = $2, outcome = $3, state = $4, \
         due_at = COALESCE($5, due_at), answer = COALESCE($6, answer), \
         claimed_by = NULL, claimed_until = NULL, updated_at = $7 WHERE id = $1",
    )
    .bind(id.0)
    .bind(attempts)
    .bind(result.outcome.as_str())
    .bind(state)
    .bind(due)
    .bind(result.answer.as_deref())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let mut moved = None;
    if let Some(ticket) = ticket {
        let ticket = TicketId(ticket);
        let (status, _) = peers::tickets::lock(&mut tx, ticket).await?;
        let to = result.move_to.filter(|to| status.can_move_to(*to));
        if let Some(to) = to {
            peers::tickets::move_ticket(&mut tx, ticket, to, now).await?;
        }
        if let Some(note) = &result.note {
            peers::tickets::insert_history(
                &mut tx,
                ticket.0,
                now,
                Some(status),
                to.unwrap_or(status),
                "engine",
                note,
            )
            .await?;
        }
        for (metric, score) in &result.ratings {
            sqlx::query(
                "INSERT INTO survey_answers (ticket_id, call_id, metric, score, answered_at, executor_id) \
                 VALUES ($1, $2, $3, $4, $5, (SELECT executor_id FROM tickets WHERE id = $1))",
            )
            .bind(ticket.0)
            .bind(result.call_id.as_deref())
            .bind(metric.as_str())
            .bind(*score)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        if to.is_some() {
            moved = Some(ticket_in(&mut tx, ticket).await?);
        }
    }
    if result.opt_out {
        sqlx::query(
            "INSERT INTO survey_opt_outs (phone, call_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&target)
        .bind(result.call_id.as_deref())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(st) = supplier_ticket {
        sqlx::query(
            "UPDATE supplier_tickets SET last_call_id = COALESCE($2, last_call_id), \
             last_call_outcome = $3, last_call_at = $4, updated_at = $4 WHERE id = $1",
        )
        .bind(st)
        .bind(result.call_id.as_deref())
        .bind(result.answer.as_deref().unwrap_or(result.outcome.as_str()))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if let (true, Some(at)) = (ended, result.supplier_recheck_at) {
            sqlx::query(
                "UPDATE supplier_tickets SET recheck_at = $2 WHERE id = $1 \
                 AND status IN ('pending', 'handed_over') AND (recheck_at IS NULL OR recheck_at <= $3)",
            )
            .bind(st)
            .bind(at)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
    }
    let mut next = None;
    if let (true, Some(new)) = (ended, &result.next) {
        let tenant = tenant_id(&mut tx, new.tenant.as_deref()).await?;
        if let Some(id) =
            peers::dial_jobs::insert_job(&mut tx, new, tenant, None, now).await?
        {
            next = peers::dial_jobs::load(&mut tx, id).await?;
        }
    }
    let job = peers::dial_jobs::load(&mut tx, id.0)
        .await?
        .ok_or_else(|| StoreError::not_found("dial job", id))?;
    tx.commit().await?;
    Ok(FollowUpRecorded {
        job,
        ended,
        moved,
        next,
    })
}

pub(super) async fn answer_follow_up(
    pool: &Pool<Db>,
    id: DialJobId,
    answer: &str,
    move_to: Option<TicketStatus>,
    actor: &str,
    note: &str,
    now: DateTime<Utc>,
) -> Result<(DialJob, Option<Ticket>, bool), StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let done = sqlx::query(
        "UPDATE dial_jobs SET answer = $2, updated_at = $3 WHERE id = $1 AND state IN ('claimed', 'done')",
    )
    .bind(id.0)
    .bind(answer)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let job = peers::dial_jobs::load(&mut tx, id.0)
        .await?
        .ok_or_else(|| StoreError::not_found("dial job", id))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!(
            "dial job {id} is {}: its call was not made",
            job.state
        )));
    }
    let Some(ticket) = job.ticket_id else {
        tx.commit().await?;
        return Ok((job, None, false));
    };
    let (status, _) = peers::tickets::lock(&mut tx, ticket).await?;
    let to = move_to.filter(|to| status.can_move_to(*to));
    if let Some(to) = to {
        peers::tickets::move_ticket(&mut tx, ticket, to, now).await?;
    }
    peers::tickets::insert_history(
        &mut tx,
        ticket.0,
        now,
        Some(status),
        to.unwrap_or(status),
        actor,
        note,
    )
    .await?;
    let ticket = ticket_in(&mut tx, ticket).await?;
    tx.commit().await?;
    Ok((job, Some(ticket), to.is_some()))
}

pub(super) async fn survey_scores(
    pool: &Pool<Db>,
    of: RatingsOf,
) -> Result<Vec<(SurveyMetric, i64)>, StoreError> {
    let (sql, id) = match of {
        RatingsOf::Ticket(t) => (
            "SELECT metric, score FROM survey_answers WHERE ticket_id = $1 ORDER BY id",
            t.0,
        ),
        RatingsOf::Executor(e) => (
            "SELECT metric, score FROM survey_answers WHERE executor_id = $1 ORDER BY id",
            e.0,
        ),
    };
    let rows = sqlx::query(sql).bind(id).fetch_all(pool).await?;
    rows.iter()
        .map(|r| {
            let metric: String = r.try_get("metric")?;
            Ok((metric.parse()?, r.try_get("score")?))
        })
        .collect()
}

pub(super) async fn opted_out(pool: &Pool<Db>, phone: &str) -> Result<bool, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM survey_opt_outs WHERE phone = $1")
        .bind(phone)
        .fetch_one(pool)
        .await?;
    Ok(n > 0)
}

pub(super) async fn start_broadcast(
    pool: &Pool<Db>,
    new: &NewBroadcast,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let tenant: Option<i64> =
        sqlx::query_scalar("UPDATE outages SET urgent = $2, broadcast_at = $3 WHERE id = $1 RETURNING tenant_id")
            .bind(new.outage.0)
            .bind(new.urgent)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
    let tenant = tenant.ok_or_else(|| StoreError::not_found("outage", new.outage))?;
    // Pending calls of an earlier request follow the new urgency.
    sqlx::query("UPDATE dial_jobs SET quiet_hours = $2 WHERE outage_id = $1 AND state = 'pending'")
        .bind(new.outage.0)
        .bind(!new.urgent)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO dial_jobs (kind, tenant_id, target_phone, due_at, attempts_made, max_attempts, state, \
         created_at, updated_at, precedence, quiet_hours, outage_id) \
         SELECT DISTINCT 'broadcast', $2, c.phone, $3, 0, $4, 'pending', $5, $5, $6, $7, $1 \
         FROM contacts c JOIN outage_houses oh ON oh.house_id = c.house_id \
         WHERE oh.outage_id = $1 AND c.tenant_id = $2 \
         ON CONFLICT DO NOTHING",
    )
    .bind(new.outage.0)
    .bind(tenant)
    .bind(new.due_at)
    .bind(i64::from(new.attempts))
    .bind(now)
    .bind(crate::store::DialKind::Broadcast.precedence())
    .bind(!new.urgent)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

const PROGRESS: &str = "SELECT COUNT(*) AS total, \
     COALESCE(SUM(CASE WHEN j.attempts_made > 0 THEN 1 ELSE 0 END), 0) AS called, \
     COALESCE(SUM(CASE WHEN j.state = 'done' THEN 1 ELSE 0 END), 0) AS answered, \
     COALESCE(SUM(CASE WHEN j.state <> 'done' AND j.outcome = 'busy' THEN 1 ELSE 0 END), 0) AS busy, \
     COALESCE(SUM(CASE WHEN j.state <> 'done' AND j.outcome = 'no-answer' THEN 1 ELSE 0 END), 0) AS no_answer, \
     COALESCE(SUM(CASE WHEN j.state = 'failed' THEN 1 ELSE 0 END), 0) AS failed, \
     COALESCE(SUM(CASE WHEN j.state IN ('pending', 'claimed') THEN 1 ELSE 0 END), 0) AS waiting, \
     COALESCE(SUM(CASE WHEN j.state = 'cancelled' THEN 1 ELSE 0 END), 0) AS cancelled \
     FROM dial_jobs j";

fn progress_from(
    outage: OutageId,
    r: &<Db as sqlx::Database>::Row,
) -> Result<BroadcastProgress, StoreError> {
    Ok(BroadcastProgress {
        outage,
        total: r.try_get("total")?,
        called: r.try_get("called")?,
        answered: r.try_get("answered")?,
        busy: r.try_get("busy")?,
        no_answer: r.try_get("no_answer")?,
        failed: r.try_get("failed")?,
        waiting: r.try_get("waiting")?,
        cancelled: r.try_get("cancelled")?,
    })
}

pub(super) async fn broadcast_progress(
    pool: &Pool<Db>,
    outage: OutageId,
) -> Result<BroadcastProgress, StoreError> {
    let sql = format!("{PROGRESS} WHERE j.outage_id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(outage.0)
        .fetch_one(pool)
        .await?;
    progress_from(outage, &row)
}

pub(super) async fn broadcasts(
    pool: &Pool<Db>,
    scope: &crate::store::TenantScope,
    since: DateTime<Utc>,
) -> Result<Vec<(BroadcastProgress, String)>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(
        "SELECT o.id, tn.code AS tenant FROM outages o JOIN tenants tn ON tn.id = o.tenant_id \
         WHERE o.broadcast_at IS NOT NULL AND (o.broadcast_at >= ",
    );
    qb.push_bind(since).push(
        " OR EXISTS (SELECT 1 FROM dial_jobs j WHERE j.outage_id = o.id \
         AND j.state IN ('pending', 'claimed')))",
    );
    push_scope(&mut qb, scope, "tn.code");
    qb.push(" ORDER BY o.broadcast_at DESC LIMIT 50");
    let rows = qb.build().fetch_all(pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let outage = OutageId(r.try_get("id")?);
        let tenant: String = r.try_get("tenant")?;
        out.push((broadcast_progress(pool, outage).await?, tenant));
    }
    Ok(out)
}
