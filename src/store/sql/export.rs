// Queries of `store::export`, compiled once per dialect by `per_backend!`.

use sqlx::{Pool, QueryBuilder, Row};

use crate::store::backend::push_scope;

pub(super) async fn tickets(
    pool: &Pool<Db>,
    scope: &TenantScope,
    q: &ExportQuery,
    after: Option<(DateTime<Utc>, i64)>,
    limit: i64,
) -> Result<Vec<JournalTicket>, StoreError> {
    let select = TICKET_SELECT.replacen(
        " FROM tickets t",
        ", (SELECT MIN(hh.at) FROM ticket_history hh WHERE hh.ticket_id = t.id AND hh.to_status = 'accepted') AS first_accepted, \
         (SELECT MIN(hh.at) FROM ticket_history hh WHERE hh.ticket_id = t.id AND hh.to_status = 'done') AS first_done \
         FROM tickets t",
        1,
    );
    let mut qb = QueryBuilder::<Db>::new(select);
    qb.push(" WHERE t.created_at >= ")
        .push_bind(q.from)
        .push(" AND t.created_at < ")
        .push_bind(q.to);
    push_scope(&mut qb, scope, "tn.code");
    if let Some(tenant) = &q.tenant {
        qb.push(" AND tn.code = ").push_bind(tenant.clone());
    }
    if let Some((at, id)) = after {
        qb.push(" AND (t.created_at > ")
            .push_bind(at)
            .push(" OR (t.created_at = ")
            .push_bind(at)
            .push(" AND t.id > ")
            .push_bind(id)
            .push("))");
    }
    qb.push(" ORDER BY t.created_at, t.id LIMIT ").push_bind(limit);
    let rows = qb.build().fetch_all(pool).await?;
    rows.iter()
        .map(|r| {
            let row = <TicketRow as sqlx::FromRow<'_, _>>::from_row(r)?;
            Ok(JournalTicket {
                ticket: Ticket::try_from(row)?,
                accepted_at: r.try_get("first_accepted")?,
                done_at: r.try_get("first_done")?,
            })
        })
        .collect()
}

pub(super) async fn calls(
    pool: &Pool<Db>,
    scope: &TenantScope,
    q: &ExportQuery,
    after: Option<(DateTime<Utc>, String)>,
    limit: i64,
) -> Result<Vec<CallRecord>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(peers::journal::CALL_SELECT);
    qb.push(" WHERE c.offered_at >= ")
        .push_bind(q.from)
        .push(" AND c.offered_at < ")
        .push_bind(q.to);
    push_scope(&mut qb, scope, "t.code");
    if let Some(tenant) = &q.tenant {
        qb.push(" AND t.code = ").push_bind(tenant.clone());
    }
    if let Some((at, id)) = after {
        qb.push(" AND (c.offered_at > ")
            .push_bind(at)
            .push(" OR (c.offered_at = ")
            .push_bind(at)
            .push(" AND c.id > ")
            .push_bind(id)
            .push("))");
    }
    qb.push(" ORDER BY c.offered_at, c.id LIMIT ").push_bind(limit);
    let rows = qb.build().fetch_all(pool).await?;
    rows.iter().map(peers::journal::call_from).collect()
}
