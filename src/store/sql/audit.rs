// Queries of `store::audit`, compiled once per dialect by `per_backend!`.

use sqlx::{Pool, QueryBuilder, Row};

use crate::store::backend::push_scope;

impl Audited for Db {
    async fn record(
        conn: &mut <Db as sqlx::Database>::Connection,
        actor: Option<&Actor<'_>>,
        entry: Logged<'_>,
    ) -> Result<(), StoreError> {
        let Some(actor) = actor else {
            return Ok(());
        };
        insert(conn, actor, entry).await
    }
}

async fn insert(
    conn: &mut <Db as sqlx::Database>::Connection,
    actor: &Actor<'_>,
    entry: Logged<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO admin_log (at, principal, tenant_id, action, subject, subject_id, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(actor.at)
    .bind(actor.principal)
    .bind(entry.tenant_id)
    .bind(entry.action)
    .bind(entry.subject)
    .bind(entry.subject_id)
    .bind(entry.detail.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

pub(super) async fn admin_log(
    pool: &Pool<Db>,
    scope: &TenantScope,
    filter: &AdminLogFilter,
    limit: i64,
) -> Result<Vec<AdminEntry>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(
        "SELECT l.id, l.at, l.principal, t.code AS tenant, l.action, l.subject, l.subject_id, l.detail \
         FROM admin_log l LEFT JOIN tenants t ON t.id = l.tenant_id WHERE TRUE",
    );
    if let TenantScope::Only(_) = scope {
        qb.push(" AND l.tenant_id IS NOT NULL");
        push_scope(&mut qb, scope, "t.code");
    }
    if let Some(tenant) = &filter.tenant {
        qb.push(" AND t.code = ").push_bind(tenant.clone());
    }
    if let Some(subject) = &filter.subject {
        qb.push(" AND l.subject = ").push_bind(subject.clone());
    }
    if let Some(before) = filter.before {
        qb.push(" AND l.id < ").push_bind(before);
    }
    qb.push(" ORDER BY l.id DESC LIMIT ").push_bind(limit);
    let rows = qb.build().fetch_all(pool).await?;
    rows.iter()
        .map(|r| {
            let detail: String = r.try_get("detail")?;
            Ok(AdminEntry {
                id: r.try_get("id")?,
                at: r.try_get("at")?,
                principal: r.try_get("principal")?,
                tenant: r.try_get("tenant")?,
                action: r.try_get("action")?,
                subject: r.try_get("subject")?,
                subject_id: r.try_get("subject_id")?,
                detail: serde_json::from_str(&detail)
                    .map_err(|e| StoreError::Corrupt(format!("admin log detail: {e}")))?,
            })
        })
        .collect()
}
