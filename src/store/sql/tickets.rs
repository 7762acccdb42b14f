// Queries of `store::tickets`, compiled once per dialect by `per_backend!`.

use sqlx::{Pool, QueryBuilder, Row};

use crate::store::backend::push_scope;

type Conn = <Db as sqlx::Database>::Connection;

pub(super) async fn insert(
    pool: &Pool<Db>,
    new: &NewTicket,
    chain: &ExecutorChain,
    now: DateTime<Utc>,
) -> Result<TicketId, StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let house = sqlx::query(
        "SELECT h.tenant_id FROM houses h JOIN tenants t ON t.id = h.tenant_id \
         WHERE h.id = $1 AND t.code = $2",
    )
    .bind(new.house_id.0)
    .bind(&new.tenant)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| StoreError::not_found("house", new.house_id))?;
    let tenant_id: i64 = house.try_get("tenant_id")?;
    // A call of another tenant is not this ticket's to claim.
    if let Some(call_id) = &new.call_id {
        let call_tenant: Option<Option<i64>> =
            sqlx::query_scalar("SELECT tenant_id FROM calls WHERE id = $1")
                .bind(call_id)
                .fetch_optional(&mut *tx)
                .await?;
        if matches!(call_tenant, Some(Some(t)) if t != tenant_id) {
            return Err(StoreError::invalid(
                "call_id",
                "the call belongs to another tenant",
            ));
        }
    }
    let reason = sqlx::query("SELECT category, deadline_minutes FROM reasons WHERE id = $1")
        .bind(new.reason_id.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::not_found("reason", new.reason_id))?;
    let category: String = reason.try_get("category")?;
    let minutes: i64 = reason.try_get("deadline_minutes")?;
    let counter: i64 = sqlx::query_scalar(
        "INSERT INTO ticket_counters (tenant_id, last_number) VALUES ($1, $2) \
         ON CONFLICT (tenant_id) DO UPDATE SET last_number = ticket_counters.last_number + 1 \
         RETURNING last_number",
    )
    .bind(tenant_id)
    .bind(FIRST_NUMBER)
    .fetch_one(&mut *tx)
    .await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO tickets (tenant_id, number, house_id, apartment, reason_id, category, status, \
         description, executor_id, responsible_id, deadline_at, source, labels, caller_phone, call_id, \
         version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 1, $16, $16) \
         RETURNING id",
    )
    .bind(tenant_id)
    .bind(number_text(counter))
    .bind(new.house_id.0)
    .bind(apartment_text(new.apartment.as_deref())?)
    .bind(new.reason_id.0)
    .bind(&category)
    .bind(TicketStatus::Registered.as_str())
    .bind(new.description.trim())
    .bind(chain.executor().map(|p| p.id.0))
    .bind(chain.responsible.as_ref().map(|p| p.id.0))
    .bind(deadline(now, minutes))
    .bind(new.source.as_str())
    .bind(list_text(&new.labels))
    .bind(new.caller_phone.as_ref().map(PhoneNumber::as_str))
    .bind(new.call_id.as_deref())
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    for link in &chain.executors {
        sqlx::query(
            "INSERT INTO ticket_executors (ticket_id, level, matrix_level, employee_id) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(i64::from(link.level))
        .bind(i64::from(link.matrix_level))
        .bind(link.employee.id.0)
        .execute(&mut *tx)
        .await?;
    }
    insert_history(
        &mut tx,
        id,
        now,
        None,
        TicketStatus::Registered,
        &new.actor,
        "",
    )
    .await?;
    if let Some(call_id) = &new.call_id {
        sqlx::query(
            "UPDATE calls SET ticket_id = $2 WHERE id = $1 AND ticket_id IS NULL \
             AND (tenant_id IS NULL OR tenant_id = $3)",
        )
        .bind(call_id)
        .bind(id)
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(TicketId(id))
}

pub(in crate::store) async fn insert_history(
    conn: &mut Conn,
    ticket: i64,
    at: DateTime<Utc>,
    from: Option<TicketStatus>,
    to: TicketStatus,
    actor: &str,
    note: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO ticket_history (ticket_id, at, from_status, to_status, actor, note) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(ticket)
    .bind(at)
    .bind(from.map(TicketStatus::as_str))
    .bind(to.as_str())
    .bind(actor)
    .bind(note)
    .execute(conn)
    .await?;
    Ok(())
}

pub(super) async fn row(pool: &Pool<Db>, id: TicketId) -> Result<Option<Ticket>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(TICKET_SELECT);
    qb.push(" WHERE t.id = ").push_bind(id.0);
    let row: Option<TicketRow> = qb.build_query_as().fetch_optional(pool).await?;
    row.map(Ticket::try_from).transpose()
}

pub(super) async fn by_number(
    pool: &Pool<Db>,
    tenant: &str,
    number: &str,
) -> Result<Option<Ticket>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(TICKET_SELECT);
    qb.push(" WHERE tn.code = ").push_bind(tenant.to_owned());
    qb.push(" AND t.number = ").push_bind(number.to_owned());
    let row: Option<TicketRow> = qb.build_query_as().fetch_optional(pool).await?;
    row.map(Ticket::try_from).transpose()
}

pub(super) async fn detail(
    pool: &Pool<Db>,
    id: TicketId,
) -> Result<Option<TicketDetail>, StoreError> {
    let Some(ticket) = row(pool, id).await? else {
        return Ok(None);
    };
    let chain = sqlx::query(
        "SELECT x.level, x.matrix_level, x.employee_id, e.name FROM ticket_executors x \
         JOIN employees e ON e.id = x.employee_id WHERE x.ticket_id = $1 ORDER BY x.level",
    )
    .bind(id.0)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| {
        Ok(ChainLink {
            level: r.try_get("level")?,
            matrix_level: r.try_get("matrix_level")?,
            employee_id: EmployeeId(r.try_get("employee_id")?),
            name: r.try_get("name")?,
        })
    })
    .collect::<Result<Vec<_>, StoreError>>()?;
    let history = sqlx::query(
        "SELECT at, from_status, to_status, actor, note FROM ticket_history WHERE ticket_id = $1 ORDER BY id",
    )
    .bind(id.0)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| {
        let from: Option<String> = r.try_get("from_status")?;
        let to: String = r.try_get("to_status")?;
        Ok(StatusChange {
            at: r.try_get("at")?,
            from: from.map(|s| s.parse()).transpose()?,
            to: to.parse()?,
            actor: r.try_get("actor")?,
            note: r.try_get("note")?,
        })
    })
    .collect::<Result<Vec<_>, StoreError>>()?;
    let comments = sqlx::query(
        "SELECT at, author, text, internal FROM ticket_comments WHERE ticket_id = $1 ORDER BY id",
    )
    .bind(id.0)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| {
        Ok(Comment {
            at: r.try_get("at")?,
            author: r.try_get("author")?,
            text: r.try_get("text")?,
            internal: r.try_get("internal")?,
        })
    })
    .collect::<Result<Vec<_>, StoreError>>()?;
    let mut qb = QueryBuilder::<Db>::new(SUPPLIER_SELECT);
    qb.push(" WHERE st.ticket_id = ").push_bind(id.0).push(" ORDER BY st.id");
    let supplier_tickets = qb
        .build()
        .fetch_all(pool)
        .await?
        .iter()
        .map(supplier_from)
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Some(TicketDetail {
        ticket,
        chain,
        history,
        comments,
        supplier_tickets,
    }))
}

pub(super) async fn list(
    pool: &Pool<Db>,
    scope: &TenantScope,
    filter: &TicketFilter,
    offset: i64,
    limit: i64,
) -> Result<Page<Ticket>, StoreError> {
    let where_clause = |qb: &mut QueryBuilder<Db>| {
        qb.push(" WHERE TRUE");
        push_scope(qb, scope, "tn.code");
        if let Some(status) = filter.status {
            qb.push(" AND t.status = ").push_bind(status.as_str());
        }
        if filter.open == Some(true) {
            qb.push(" AND t.status IN ('registered', 'accepted', 'in_progress')");
        }
        if let Some(category) = filter.category {
            qb.push(" AND t.category = ").push_bind(category.as_str());
        }
        if let Some(tenant) = &filter.tenant {
            qb.push(" AND tn.code = ").push_bind(tenant.clone());
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
        if let Some(number) = &filter.number {
            qb.push(" AND t.number = ").push_bind(number.clone());
        }
    };
    let mut count = QueryBuilder::<Db>::new(
        "SELECT COUNT(*) FROM tickets t JOIN tenants tn ON tn.id = t.tenant_id",
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

/// Moves a locked ticket to `to`: the version goes up, a closed or cancelled one
/// gets its closing time (cleared when it reopens). The caller checked the move
/// and writes the history.
pub(in crate::store) async fn move_ticket(
    conn: &mut Conn,
    id: TicketId,
    to: TicketStatus,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let closed = matches!(to, TicketStatus::Closed | TicketStatus::Cancelled);
    sqlx::query(
        "UPDATE tickets SET status = $2, version = version + 1, updated_at = $3, \
         closed_at = CASE WHEN $4 THEN $3 ELSE NULL END WHERE id = $1",
    )
    .bind(id.0)
    .bind(to.as_str())
    .bind(now)
    .bind(closed)
    .execute(conn)
    .await?;
    Ok(())
}

/// Locks a ticket for the rest of the transaction; returns (status, version).
pub(in crate::store) async fn lock(conn: &mut Conn, id: TicketId) -> Result<(TicketStatus, i64), StoreError> {
    let sql = format!(
        "SELECT status, version FROM tickets WHERE id = $1{}",
        Db::FOR_UPDATE
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.0)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| StoreError::not_found("ticket", id))?;
    let status: String = row.try_get("status")?;
    Ok((status.parse()?, row.try_get("version")?))
}

pub(super) async fn tenants_of(
    pool: &Pool<Db>,
    ids: &[TicketId],
) -> Result<std::collections::HashMap<TicketId, String>, StoreError> {
    let mut out = std::collections::HashMap::with_capacity(ids.len());
    let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
    for chunk in ids.chunks(500) {
        let mut qb = QueryBuilder::<Db>::new(
            "SELECT t.id, tn.code FROM tickets t JOIN tenants tn ON tn.id = t.tenant_id WHERE ",
        );
        crate::store::backend::push_in(&mut qb, "t.id", chunk);
        for row in qb.build().fetch_all(pool).await? {
            out.insert(TicketId(row.try_get("id")?), row.try_get("code")?);
        }
    }
    Ok(out)
}

/// Changes the status of `ids` (distinct) and returns them as changed, in that
/// order, read inside the transaction.
pub(super) async fn change_status(
    pool: &Pool<Db>,
    ids: &[TicketId],
    update: &StatusUpdate,
    now: DateTime<Utc>,
) -> Result<Vec<Ticket>, StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    // Lock in id order so two bulk changes over overlapping sets cannot deadlock.
    let mut ordered = ids.to_vec();
    ordered.sort_unstable();
    ordered.dedup();
    for id in ordered {
        let (status, version) = lock(&mut tx, id).await?;
        if let Some(expected) = update.expected_version {
            if expected != version {
                return Err(StoreError::Conflict(format!(
                    "ticket {id} is at version {version}, not {expected}: reload it"
                )));
            }
        }
        if !status.can_move_to(update.to) {
            return Err(StoreError::Conflict(format!(
                "ticket {id} cannot move from {status} to {}",
                update.to
            )));
        }
        move_ticket(&mut tx, id, update.to, now).await?;
        insert_history(
            &mut tx,
            id.0,
            now,
            Some(status),
            update.to,
            &update.actor,
            &update.note,
        )
        .await?;
    }
    let mut changed = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let mut qb = QueryBuilder::<Db>::new(TICKET_SELECT);
        qb.push(" WHERE ");
        let raw: Vec<i64> = chunk.iter().map(|id| id.0).collect();
        crate::store::backend::push_in(&mut qb, "t.id", &raw);
        let rows: Vec<TicketRow> = qb.build_query_as().fetch_all(&mut *tx).await?;
        for row in rows {
            changed.push(Ticket::try_from(row)?);
        }
    }
    tx.commit().await?;
    changed.sort_by_key(|t| ids.iter().position(|id| *id == t.id));
    Ok(changed)
}

pub(super) async fn accept_in_chain(
    pool: &Pool<Db>,
    id: TicketId,
    how: &ChainAcceptance,
    now: DateTime<Utc>,
) -> Result<Acceptance, StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let (status, version) = lock(&mut tx, id).await?;
    if status != TicketStatus::Registered {
        return Ok(Acceptance::Lost(status));
    }
    let changed = sqlx::query(
        "UPDATE tickets SET status = 'accepted', executor_id = COALESCE($3, executor_id), \
         version = version + 1, updated_at = $4 WHERE id = $1 AND version = $2",
    )
    .bind(id.0)
    .bind(version)
    .bind(how.employee.map(|e| e.0))
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed != 1 {
        // Cannot happen under the row lock; said rather than assumed.
        return Err(StoreError::Conflict(format!("ticket {id} changed under its lock")));
    }
    insert_history(
        &mut tx,
        id.0,
        now,
        Some(status),
        TicketStatus::Accepted,
        &how.actor,
        &how.note,
    )
    .await?;
    sqlx::query(
        "UPDATE dial_chains SET state = 'accepted', accepted_by = $2, accepted_via = $3, \
         accepted_attempt = $4, note = $5, ended_at = $6, updated_at = $6, claimed_by = NULL, \
         claimed_until = NULL WHERE id = $1 AND state = 'running'",
    )
    .bind(how.chain.0)
    .bind(how.employee.map(|e| e.0))
    .bind(&how.via)
    .bind(how.seq.map(i64::from))
    .bind(&how.note)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if let Some(seq) = how.seq {
        sqlx::query("UPDATE chain_attempts SET decision = 'accepted' WHERE chain_id = $1 AND seq = $2")
            .bind(how.chain.0)
            .bind(i64::from(seq))
            .execute(&mut *tx)
            .await?;
    }
    let mut qb = QueryBuilder::<Db>::new(TICKET_SELECT);
    qb.push(" WHERE t.id = ").push_bind(id.0);
    let row: TicketRow = qb.build_query_as().fetch_one(&mut *tx).await?;
    let ticket = Ticket::try_from(row)?;
    tx.commit().await?;
    Ok(Acceptance::Won(Box::new(ticket)))
}

pub(super) async fn note(
    pool: &Pool<Db>,
    id: TicketId,
    actor: &str,
    note: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "INSERT INTO ticket_history (ticket_id, at, from_status, to_status, actor, note) \
         SELECT id, $2, status, status, $3, $4 FROM tickets WHERE id = $1",
    )
    .bind(id.0)
    .bind(now)
    .bind(actor)
    .bind(note)
    .execute(pool)
    .await?
    .rows_affected();
    if done == 0 {
        return Err(StoreError::not_found("ticket", id));
    }
    Ok(())
}

pub(super) async fn comment(
    pool: &Pool<Db>,
    id: TicketId,
    author: &str,
    text: &str,
    internal: bool,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    lock(&mut tx, id).await?;
    sqlx::query(
        "INSERT INTO ticket_comments (ticket_id, at, author, text, internal) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.0)
    .bind(now)
    .bind(author)
    .bind(text)
    .bind(internal)
    .execute(&mut *tx)
    .await?;
    // A comment is not a change of the ticket's state: `version` stays.
    sqlx::query("UPDATE tickets SET updated_at = $2 WHERE id = $1")
        .bind(id.0)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

const SUPPLIER_SELECT: &str = "SELECT st.id, st.ticket_id, tn.code AS tenant, s.code, \
     st.supplier_number, st.status, st.handed_over_at, st.recheck_at, st.created_at, st.updated_at \
     FROM supplier_tickets st JOIN suppliers s ON s.id = st.supplier_id \
     JOIN tickets t ON t.id = st.ticket_id JOIN tenants tn ON tn.id = t.tenant_id";

fn supplier_from(r: &<Db as sqlx::Database>::Row) -> Result<SupplierTicket, StoreError> {
    let status: String = r.try_get("status")?;
    Ok(SupplierTicket {
        id: SupplierTicketId(r.try_get("id")?),
        ticket_id: TicketId(r.try_get("ticket_id")?),
        tenant: r.try_get("tenant")?,
        supplier: r.try_get("code")?,
        supplier_number: r.try_get("supplier_number")?,
        status: status.parse()?,
        handed_over_at: r.try_get("handed_over_at")?,
        recheck_at: r.try_get("recheck_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

pub(super) async fn supplier_ticket(
    pool: &Pool<Db>,
    id: SupplierTicketId,
) -> Result<Option<SupplierTicket>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(SUPPLIER_SELECT);
    qb.push(" WHERE st.id = ").push_bind(id.0);
    qb.build()
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(supplier_from)
        .transpose()
}

pub(super) async fn supplier_rechecks_due(
    pool: &Pool<Db>,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<SupplierTicket>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(SUPPLIER_SELECT);
    qb.push(" WHERE st.status IN ('pending', 'handed_over') AND st.recheck_at <= ")
        .push_bind(now)
        .push(" ORDER BY st.recheck_at, st.id LIMIT ")
        .push_bind(limit);
    qb.build()
        .fetch_all(pool)
        .await?
        .iter()
        .map(supplier_from)
        .collect()
}

pub(super) async fn derive_supplier_ticket(
    pool: &Pool<Db>,
    id: TicketId,
    supplier: &str,
    supplier_number: Option<&str>,
    recheck_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<SupplierTicketId, StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    lock(&mut tx, id).await?;
    let row = sqlx::query("SELECT id, city_id FROM suppliers WHERE code = $1")
        .bind(supplier)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::not_found("supplier", supplier))?;
    let supplier_id: i64 = row.try_get("id")?;
    let supplier_city: i64 = row.try_get("city_id")?;
    let ticket_city: i64 = sqlx::query_scalar(
        "SELECT h.city_id FROM tickets t JOIN houses h ON h.id = t.house_id WHERE t.id = $1",
    )
    .bind(id.0)
    .fetch_one(&mut *tx)
    .await?;
    if supplier_city != ticket_city {
        return Err(StoreError::invalid(
            "supplier",
            format!("{supplier} does not serve the ticket's city"),
        ));
    }
    let status = if supplier_number.is_some() {
        SupplierStatus::HandedOver
    } else {
        SupplierStatus::Pending
    };
    let new_id: i64 = sqlx::query_scalar(
        "INSERT INTO supplier_tickets (ticket_id, supplier_id, supplier_number, status, handed_over_at, \
         recheck_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
    )
    .bind(id.0)
    .bind(supplier_id)
    .bind(supplier_number)
    .bind(status.as_str())
    .bind(supplier_number.map(|_| now))
    .bind(recheck_at)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    // A hand-over is added beside the ticket: `version` stays.
    sqlx::query("UPDATE tickets SET updated_at = $2 WHERE id = $1")
        .bind(id.0)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(SupplierTicketId(new_id))
}

pub(super) async fn update_supplier_ticket(
    pool: &Pool<Db>,
    id: SupplierTicketId,
    update: &SupplierUpdate,
    now: DateTime<Utc>,
) -> Result<SupplierTicket, StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    let sql = format!(
        "SELECT status, supplier_number, recheck_at, handed_over_at FROM supplier_tickets WHERE id = $1{}",
        Db::FOR_UPDATE
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::not_found("supplier ticket", id))?;
    let current: SupplierStatus = row.try_get::<String, _>("status")?.parse()?;
    let mut number: Option<String> = row.try_get("supplier_number")?;
    let mut recheck: Option<DateTime<Utc>> = row.try_get("recheck_at")?;
    let mut handed_over: Option<DateTime<Utc>> = row.try_get("handed_over_at")?;
    if !current.is_open() {
        return Err(StoreError::Conflict(format!(
            "supplier ticket {id} is {current}: it cannot change any more"
        )));
    }
    let mut status = current;
    if let Some(n) = &update.supplier_number {
        number = Some(n.trim().to_owned());
        if status == SupplierStatus::Pending && update.status.is_none() {
            status = SupplierStatus::HandedOver;
        }
    }
    if let Some(to) = update.status {
        if to != current && !current.can_move_to(to) {
            return Err(StoreError::Conflict(format!(
                "supplier ticket {id} cannot move from {current} to {to}"
            )));
        }
        status = to;
    }
    if update.recheck_at.is_some() {
        recheck = update.recheck_at;
    }
    if status == SupplierStatus::HandedOver && handed_over.is_none() {
        handed_over = Some(now);
    }
    if !status.is_open() {
        recheck = None;
    }
    sqlx::query(
        "UPDATE supplier_tickets SET status = $2, supplier_number = $3, recheck_at = $4, \
         handed_over_at = $5, updated_at = $6 WHERE id = $1",
    )
    .bind(id.0)
    .bind(status.as_str())
    .bind(number)
    .bind(recheck)
    .bind(handed_over)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if update.recheck_at.is_some() || status != current {
        // The calls planned for the old state or time give way; the follow-up
        // planner plans what the new one needs.
        sqlx::query(
            "UPDATE dial_jobs SET state = 'cancelled', outcome = 'rescheduled', updated_at = $2 \
             WHERE supplier_ticket_id = $1 AND state = 'pending'",
        )
        .bind(id.0)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    let mut qb = QueryBuilder::<Db>::new(SUPPLIER_SELECT);
    qb.push(" WHERE st.id = ").push_bind(id.0);
    let changed = supplier_from(&qb.build().fetch_one(&mut *tx).await?)?;
    tx.commit().await?;
    Ok(changed)
}
