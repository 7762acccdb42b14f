// Queries of `store::chains`, compiled once per dialect by `per_backend!`.

use sqlx::{Pool, QueryBuilder, Row};

use crate::store::backend::{push_in, push_scope};

type Conn = <Db as sqlx::Database>::Connection;

const CHAIN_SELECT: &str = "SELECT c.id, c.ticket_id, t.number AS ticket_number, tn.code AS tenant, \
     t.category, t.deadline_at, c.state, c.phase, c.phase_started_at, c.escalation_index, \
     c.escalation_started_at, c.plan, c.policy, c.claimed_by, c.claimed_until, c.created_at, \
     c.updated_at, c.ended_at, c.accepted_by, e.name AS accepted_by_name, c.accepted_via, \
     c.accepted_attempt, c.acknowledged_at, c.acknowledged_by, c.note \
     FROM dial_chains c JOIN tickets t ON t.id = c.ticket_id \
     JOIN tenants tn ON tn.id = t.tenant_id \
     LEFT JOIN employees e ON e.id = c.accepted_by";

const ATTEMPT_SELECT: &str = "SELECT a.chain_id, a.seq, a.stage, a.employee_id, a.person_name, \
     a.phone, a.try_no, a.tries, a.reach, a.state, a.outcome, a.decision, a.call_id, a.operator, \
     a.sip_status, a.placed_at, a.answered_at, a.ended_at, \
     (SELECT MAX(r.id) FROM recordings r WHERE r.call_id = a.call_id) AS recording_id \
     FROM chain_attempts a";

fn json_of(raw: &str, what: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(raw)
        .map_err(|e| StoreError::Corrupt(format!("stored chain {what}: {e}")))
}

fn chain_from(row: &<Db as sqlx::Database>::Row) -> Result<Chain, StoreError> {
    let category: String = row.try_get("category")?;
    let state: String = row.try_get("state")?;
    let plan: String = row.try_get("plan")?;
    let policy: String = row.try_get("policy")?;
    Ok(Chain {
        id: DialChainId(row.try_get("id")?),
        ticket_id: TicketId(row.try_get("ticket_id")?),
        ticket_number: row.try_get("ticket_number")?,
        tenant: row.try_get("tenant")?,
        category: category.parse()?,
        deadline_at: row.try_get("deadline_at")?,
        state: state.parse()?,
        phase: row.try_get("phase")?,
        phase_started_at: row.try_get("phase_started_at")?,
        escalation_index: row.try_get("escalation_index")?,
        escalation_started_at: row.try_get("escalation_started_at")?,
        plan: json_of(&plan, "plan")?,
        policy: json_of(&policy, "policy")?,
        claimed_by: row.try_get("claimed_by")?,
        claimed_until: row.try_get("claimed_until")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        ended_at: row.try_get("ended_at")?,
        accepted_by: row.try_get::<Option<i64>, _>("accepted_by")?.map(EmployeeId),
        accepted_by_name: row.try_get("accepted_by_name")?,
        accepted_via: row.try_get("accepted_via")?,
        accepted_attempt: row.try_get("accepted_attempt")?,
        acknowledged_at: row.try_get("acknowledged_at")?,
        acknowledged_by: row.try_get("acknowledged_by")?,
        note: row.try_get("note")?,
        attempts: Vec::new(),
    })
}

fn attempt_from(row: &<Db as sqlx::Database>::Row) -> Result<(i64, ChainAttempt), StoreError> {
    let state: String = row.try_get("state")?;
    let outcome: Option<String> = row.try_get("outcome")?;
    let decision: Option<String> = row.try_get("decision")?;
    Ok((
        row.try_get("chain_id")?,
        ChainAttempt {
            seq: row.try_get("seq")?,
            stage: row.try_get("stage")?,
            employee_id: row.try_get::<Option<i64>, _>("employee_id")?.map(EmployeeId),
            person_name: row.try_get("person_name")?,
            phone: row.try_get("phone")?,
            try_no: row.try_get("try_no")?,
            tries: row.try_get("tries")?,
            reach: row.try_get("reach")?,
            state: state.parse()?,
            outcome: outcome.map(|o| o.parse()).transpose()?,
            decision: decision.map(|d| d.parse()).transpose()?,
            call_id: row.try_get("call_id")?,
            operator: row.try_get("operator")?,
            sip_status: row.try_get("sip_status")?,
            placed_at: row.try_get("placed_at")?,
            answered_at: row.try_get("answered_at")?,
            ended_at: row.try_get("ended_at")?,
            recording_id: row.try_get::<Option<i64>, _>("recording_id")?.map(RecordingId),
        },
    ))
}

/// Loads chains by a filter appended to [`CHAIN_SELECT`], with their attempts.
async fn load_where(
    conn: &mut Conn,
    mut qb: QueryBuilder<Db>,
) -> Result<Vec<Chain>, StoreError> {
    let rows = qb.build().fetch_all(&mut *conn).await?;
    let mut chains: Vec<Chain> = rows.iter().map(chain_from).collect::<Result<_, _>>()?;
    let ids: Vec<i64> = chains.iter().map(|c| c.id.0).collect();
    for chunk in ids.chunks(500) {
        let mut aq = QueryBuilder::<Db>::new(ATTEMPT_SELECT);
        aq.push(" WHERE ");
        push_in(&mut aq, "a.chain_id", chunk);
        aq.push(" ORDER BY a.chain_id, a.seq");
        for row in aq.build().fetch_all(&mut *conn).await? {
            let (chain, attempt) = attempt_from(&row)?;
            if let Some(c) = chains.iter_mut().find(|c| c.id.0 == chain) {
                c.attempts.push(attempt);
            }
        }
    }
    Ok(chains)
}

async fn load_ids(conn: &mut Conn, ids: &[i64]) -> Result<Vec<Chain>, StoreError> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let mut qb = QueryBuilder::<Db>::new(CHAIN_SELECT);
        qb.push(" WHERE ");
        push_in(&mut qb, "c.id", chunk);
        qb.push(" ORDER BY c.id");
        out.extend(load_where(conn, qb).await?);
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn start(
    pool: &Pool<Db>,
    ticket: TicketId,
    plan: &str,
    policy: &str,
    phase: &str,
    node: &str,
    lease_until: DateTime<Utc>,
    restart: bool,
    now: DateTime<Utc>,
) -> Result<ChainStart, StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    // The ticket row is the lock two nodes starting the same chain meet on.
    let sql = format!("SELECT status FROM tickets WHERE id = $1{}", Db::FOR_UPDATE);
    let status: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(ticket.0)
        .fetch_optional(&mut *tx)
        .await?;
    let status = status.ok_or_else(|| StoreError::not_found("ticket", ticket))?;
    if status != "registered" {
        return Ok(ChainStart::NotRegistered);
    }
    let running: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM dial_chains WHERE ticket_id = $1 AND state = 'running'",
    )
    .bind(ticket.0)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(id) = running {
        return Ok(ChainStart::Running(DialChainId(id)));
    }
    if !restart {
        let earlier: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM dial_chains WHERE ticket_id = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(ticket.0)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = earlier {
            return Ok(ChainStart::HadOne(DialChainId(id)));
        }
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO dial_chains (ticket_id, tenant_id, current_level, state, phase, \
         phase_started_at, escalation_index, plan, policy, claimed_by, claimed_until, \
         created_at, updated_at) \
         SELECT t.id, t.tenant_id, 1, 'running', $2, $3, 0, $4, $5, $6, $7, $3, $3 \
         FROM tickets t WHERE t.id = $1 RETURNING id",
    )
    .bind(ticket.0)
    .bind(phase)
    .bind(now)
    .bind(plan)
    .bind(policy)
    .bind(node)
    .bind(lease_until)
    .fetch_one(&mut *tx)
    .await?;
    let chain = load_ids(&mut tx, &[id])
        .await?
        .pop()
        .ok_or_else(|| StoreError::not_found("chain", id))?;
    tx.commit().await?;
    Ok(ChainStart::Started(Box::new(chain)))
}

pub(super) async fn claim(
    pool: &Pool<Db>,
    node: &str,
    own: bool,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Chain>, StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    // A node's own chains come back to it at once after a restart; while it runs
    // it takes only chains nobody holds (a dead node's, once their lease lapsed).
    // A chain of a node known dead (its `nodes` row lapsed) is free at once.
    let whose = if own {
        "(claimed_by IS NULL OR claimed_by = $1 OR claimed_until <= $2 \
         OR claimed_by IN (SELECT id FROM nodes WHERE alive_until <= $2))"
    } else {
        "((claimed_by IS NULL OR claimed_until <= $2 \
           OR claimed_by IN (SELECT id FROM nodes WHERE alive_until <= $2)) \
          AND (claimed_by IS NULL OR claimed_by <> $1))"
    };
    let sql = format!(
        "SELECT id FROM dial_chains WHERE state = 'running' AND {whose} ORDER BY id LIMIT $3{}",
        Db::SKIP_LOCKED
    );
    let ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(node)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
    for chunk in ids.chunks(500) {
        let mut qb = QueryBuilder::<Db>::new("UPDATE dial_chains SET claimed_by = ");
        qb.push_bind(node);
        qb.push(", claimed_until = ").push_bind(lease_until);
        qb.push(" WHERE ");
        push_in(&mut qb, "id", chunk);
        qb.build().execute(&mut *tx).await?;
        // Calls placed by whoever held these chains before never reported back:
        // they count as made, with an unknown outcome.
        let mut qb = QueryBuilder::<Db>::new(
            "UPDATE chain_attempts SET state = 'ended', outcome = COALESCE(outcome, 'unknown'), ended_at = ",
        );
        qb.push_bind(now);
        qb.push(" WHERE state <> 'ended' AND ");
        push_in(&mut qb, "chain_id", chunk);
        qb.build().execute(&mut *tx).await?;
    }
    let chains = load_ids(&mut tx, &ids).await?;
    tx.commit().await?;
    Ok(chains)
}

pub(super) async fn renew(
    pool: &Pool<Db>,
    node: &str,
    chains: &[DialChainId],
    lease_until: DateTime<Utc>,
    _now: DateTime<Utc>,
) -> Result<Vec<DialChainId>, StoreError> {
    let mut held = Vec::with_capacity(chains.len());
    let ids: Vec<i64> = chains.iter().map(|c| c.0).collect();
    let mut tx = Db::begin_write(pool).await?;
    for chunk in ids.chunks(500) {
        let mut qb = QueryBuilder::<Db>::new("UPDATE dial_chains SET claimed_until = ");
        qb.push_bind(lease_until);
        qb.push(" WHERE state = 'running' AND claimed_by = ").push_bind(node);
        qb.push(" AND ");
        push_in(&mut qb, "id", chunk);
        qb.push(" RETURNING id");
        for row in qb.build().fetch_all(&mut *tx).await? {
            held.push(DialChainId(row.try_get("id")?));
        }
    }
    tx.commit().await?;
    Ok(held)
}

pub(super) async fn progress(
    pool: &Pool<Db>,
    chain: DialChainId,
    node: &str,
    p: &ChainProgress,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE dial_chains SET phase = $3, phase_started_at = $4, current_level = $5, \
         escalation_index = $6, escalation_started_at = $7, updated_at = $8 \
         WHERE id = $1 AND claimed_by = $2 AND state = 'running'",
    )
    .bind(chain.0)
    .bind(node)
    .bind(&p.phase)
    .bind(p.phase_started_at)
    .bind(p.level)
    .bind(p.escalation_index)
    .bind(p.escalation_started_at)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn begin_attempts(
    pool: &Pool<Db>,
    node: &str,
    attempts: &[NewAttempt],
    now: DateTime<Utc>,
) -> Result<Vec<bool>, StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let mut written = Vec::with_capacity(attempts.len());
    for a in attempts {
        // Written only while the chain runs and this node holds it: a node that
        // lost its lease places nothing.
        let done = sqlx::query(
            "INSERT INTO chain_attempts (chain_id, seq, stage, employee_id, person_name, phone, \
             try_no, tries, reach, state, placed_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, 'placing', $10 \
             WHERE EXISTS (SELECT 1 FROM dial_chains WHERE id = $1 AND state = 'running' \
                           AND claimed_by = $11) \
             ON CONFLICT (chain_id, seq) DO NOTHING",
        )
        .bind(a.chain.0)
        .bind(i64::from(a.seq))
        .bind(&a.stage)
        .bind(a.employee_id.map(|e| e.0))
        .bind(&a.person_name)
        .bind(&a.phone)
        .bind(i64::from(a.try_no))
        .bind(i64::from(a.tries))
        .bind(&a.reach)
        .bind(now)
        .bind(node)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        written.push(done == 1);
    }
    tx.commit().await?;
    Ok(written)
}

pub(super) async fn update_attempt(
    pool: &Pool<Db>,
    chain: DialChainId,
    seq: u32,
    u: &AttemptUpdate,
    _now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE chain_attempts SET state = COALESCE($3, state), outcome = COALESCE($4, outcome), \
         decision = COALESCE($5, decision), call_id = COALESCE($6, call_id), \
         operator = COALESCE($7, operator), sip_status = COALESCE($8, sip_status), \
         reach = COALESCE($9, reach), answered_at = COALESCE($10, answered_at), \
         ended_at = COALESCE($11, ended_at) \
         WHERE chain_id = $1 AND seq = $2",
    )
    .bind(chain.0)
    .bind(i64::from(seq))
    .bind(u.state.map(AttemptState::as_str))
    .bind(u.outcome.map(AttemptOutcome::as_str))
    .bind(u.decision.map(AttemptDecision::as_str))
    .bind(u.call_id.as_deref())
    .bind(u.operator.as_deref())
    .bind(u.sip_status.map(i64::from))
    .bind(u.reach.as_deref())
    .bind(u.answered_at)
    .bind(u.ended_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn end(
    pool: &Pool<Db>,
    chain: DialChainId,
    state: ChainState,
    note: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE dial_chains SET state = $2, note = $3, ended_at = $4, updated_at = $4, \
         claimed_by = NULL, claimed_until = NULL WHERE id = $1 AND state = 'running'",
    )
    .bind(chain.0)
    .bind(state.as_str())
    .bind(note)
    .bind(now)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(done == 1)
}

pub(super) async fn acknowledge(
    pool: &Pool<Db>,
    chain: DialChainId,
    who: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM dial_chains WHERE id = $1")
        .bind(chain.0)
        .fetch_optional(pool)
        .await?;
    match state.as_deref() {
        None => return Err(StoreError::not_found("chain", chain)),
        Some("running") => {
            return Err(StoreError::Conflict(format!(
                "chain {chain} is still running: stop it by accepting or cancelling the ticket"
            )));
        }
        Some(_) => {}
    }
    sqlx::query(
        "UPDATE dial_chains SET acknowledged_at = $3, acknowledged_by = $2, updated_at = $3 \
         WHERE id = $1 AND acknowledged_at IS NULL",
    )
    .bind(chain.0)
    .bind(who)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn chain(pool: &Pool<Db>, chain: DialChainId) -> Result<Option<Chain>, StoreError> {
    let mut conn = pool.acquire().await?;
    Ok(load_ids(&mut conn, &[chain.0]).await?.pop())
}

pub(super) async fn of_ticket(pool: &Pool<Db>, ticket: TicketId) -> Result<Vec<Chain>, StoreError> {
    let mut conn = pool.acquire().await?;
    let mut qb = QueryBuilder::<Db>::new(CHAIN_SELECT);
    qb.push(" WHERE c.ticket_id = ").push_bind(ticket.0);
    qb.push(" ORDER BY c.id DESC");
    load_where(&mut conn, qb).await
}

pub(super) async fn open(pool: &Pool<Db>, scope: &TenantScope) -> Result<Vec<Chain>, StoreError> {
    let mut conn = pool.acquire().await?;
    let mut qb = QueryBuilder::<Db>::new(CHAIN_SELECT);
    qb.push(
        " WHERE (c.state = 'running' OR (c.state = 'exhausted' AND c.acknowledged_at IS NULL))",
    );
    push_scope(&mut qb, scope, "tn.code");
    qb.push(" ORDER BY c.created_at, c.id LIMIT 1000");
    load_where(&mut conn, qb).await
}

pub(super) async fn unchained(
    pool: &Pool<Db>,
    since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<UnchainedTicket>, StoreError> {
    let rows = sqlx::query(
        "SELECT t.id, tn.code, t.category FROM tickets t JOIN tenants tn ON tn.id = t.tenant_id \
         WHERE t.status = 'registered' AND t.created_at >= $1 \
         AND NOT EXISTS (SELECT 1 FROM dial_chains c WHERE c.ticket_id = t.id) \
         ORDER BY t.created_at, t.id LIMIT $2",
    )
    .bind(since)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let category: String = r.try_get("category")?;
            Ok(UnchainedTicket {
                id: TicketId(r.try_get("id")?),
                tenant: r.try_get("code")?,
                category: category.parse()?,
            })
        })
        .collect()
}

pub(super) async fn moved(
    pool: &Pool<Db>,
    chains: &[DialChainId],
) -> Result<Vec<(DialChainId, crate::store::TicketStatus)>, StoreError> {
    let ids: Vec<i64> = chains.iter().map(|c| c.0).collect();
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        let mut qb = QueryBuilder::<Db>::new(
            "SELECT c.id, t.status FROM dial_chains c JOIN tickets t ON t.id = c.ticket_id \
             WHERE c.state = 'running' AND t.status <> 'registered' AND ",
        );
        push_in(&mut qb, "c.id", chunk);
        for row in qb.build().fetch_all(pool).await? {
            let status: String = row.try_get("status")?;
            out.push((DialChainId(row.try_get("id")?), status.parse()?));
        }
    }
    Ok(out)
}
