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
        sqlx::query("UPDATE calls SET ticket_id = $2 WHERE id = $1 AND ticket_id IS NULL")
            .bind(call_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(TicketId(id))
}

async fn insert_history(
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
        "SELECT at, author, text FROM ticket_comments WHERE ticket_id = $1 ORDER BY id",
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
        })
    })
    .collect::<Result<Vec<_>, StoreError>>()?;
    let supplier_tickets = sqlx::query(
        "SELECT st.id, s.code, st.supplier_number, st.status, st.handed_over_at, st.recheck_at \
         FROM supplier_tickets st JOIN suppliers s ON s.id = st.supplier_id \
         WHERE st.ticket_id = $1 ORDER BY st.id",
    )
    .bind(id.0)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| {
        Ok(SupplierTicket {
            id: SupplierTicketId(r.try_get("id")?),
            supplier: r.try_get("code")?,
            supplier_number: r.try_get("supplier_number")?,
            status: r.try_get("status")?,
            handed_over_at: r.try_get("handed_over_at")?,
            recheck_at: r.try_get("recheck_at")?,
        })
    })
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

/// Locks a ticket for the rest of the transaction; returns (status, version).
async fn lock(conn: &mut Conn, id: TicketId) -> Result<(TicketStatus, i64), StoreError> {
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

pub(super) async fn change_status(
    pool: &Pool<Db>,
    ids: &[TicketId],
    update: &StatusUpdate,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
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
        let closed = matches!(update.to, TicketStatus::Closed | TicketStatus::Cancelled);
        sqlx::query(
            "UPDATE tickets SET status = $2, version = version + 1, updated_at = $3, \
             closed_at = CASE WHEN $4 THEN $3 ELSE NULL END WHERE id = $1",
        )
        .bind(id.0)
        .bind(update.to.as_str())
        .bind(now)
        .bind(closed)
        .execute(&mut *tx)
        .await?;
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
    tx.commit().await?;
    Ok(())
}

pub(super) async fn comment(
    pool: &Pool<Db>,
    id: TicketId,
    author: &str,
    text: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut tx = Db::begin_write(pool).await?;
    lock(&mut tx, id).await?;
    sqlx::query(
        "INSERT INTO ticket_comments (ticket_id, at, author, text) VALUES ($1, $2, $3, $4)",
    )
    .bind(id.0)
    .bind(now)
    .bind(author)
    .bind(text)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE tickets SET version = version + 1, updated_at = $2 WHERE id = $1")
        .bind(id.0)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
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
    let supplier_id: i64 = sqlx::query_scalar("SELECT id FROM suppliers WHERE code = $1")
        .bind(supplier)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::not_found("supplier", supplier))?;
    let status = if supplier_number.is_some() {
        "handed_over"
    } else {
        "pending"
    };
    let new_id: i64 = sqlx::query_scalar(
        "INSERT INTO supplier_tickets (ticket_id, supplier_id, supplier_number, status, handed_over_at, \
         recheck_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(id.0)
    .bind(supplier_id)
    .bind(supplier_number)
    .bind(status)
    .bind(supplier_number.map(|_| now))
    .bind(recheck_at)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("UPDATE tickets SET version = version + 1, updated_at = $2 WHERE id = $1")
        .bind(id.0)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(SupplierTicketId(new_id))
}
