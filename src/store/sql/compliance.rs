// Queries of `store::compliance`, compiled once per dialect by `per_backend!`.

use sqlx::{Pool, QueryBuilder, Row};

use crate::store::backend::push_scope;
use crate::store::directory::parse_tz;

/// The city's time zone, and whether it is the only city in the store.
pub(super) async fn city_zone(pool: &Pool<Db>, city: &str) -> Result<(Tz, bool), StoreError> {
    let zone: Option<String> = sqlx::query_scalar("SELECT time_zone FROM cities WHERE code = $1")
        .bind(city)
        .fetch_optional(pool)
        .await?;
    let zone = zone.ok_or_else(|| StoreError::not_found("city", city))?;
    let cities: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cities")
        .fetch_one(pool)
        .await?;
    Ok((parse_tz(&zone)?, cities == 1))
}

/// Inbound calls of `city`'s tenants (in `scope`) offered in `from..to`, with their
/// callback jobs and when a callback was first answered; with `tenantless`, also the calls whose tenant is unknown.
pub(super) async fn day_calls(
    pool: &Pool<Db>,
    scope: &TenantScope,
    city: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    tenantless: bool,
) -> Result<Vec<ComplianceCall>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(
        "SELECT c.offered_at, c.answered_at, c.ended_at, c.wait_seconds, c.disposition, c.number_kind, \
         (SELECT COUNT(*) FROM dial_jobs j WHERE j.kind = 'callback' AND j.call_id = c.id) \
           AS callback_jobs, \
         (SELECT MIN(a.at) FROM dial_jobs j JOIN dial_attempts a ON a.job_id = j.id \
           WHERE j.kind = 'callback' AND j.call_id = c.id AND a.outcome = 'answered') \
           AS first_callback_at \
         FROM calls c LEFT JOIN tenants t ON t.id = c.tenant_id \
         LEFT JOIN cities ci ON ci.id = t.city_id \
         WHERE c.direction = 'inbound' AND c.offered_at >= ",
    );
    qb.push_bind(from)
        .push(" AND c.offered_at < ")
        .push_bind(to)
        .push(" AND ((ci.code = ")
        .push_bind(city.to_owned());
    push_scope(&mut qb, scope, "t.code");
    qb.push(")");
    if tenantless {
        qb.push(" OR c.tenant_id IS NULL");
    }
    qb.push(") ORDER BY c.offered_at");
    let rows = qb.build().fetch_all(pool).await?;
    rows.iter()
        .map(|row| {
            let jobs: i64 = row.try_get("callback_jobs")?;
            Ok(ComplianceCall {
                offered_at: row.try_get("offered_at")?,
                answered_at: row.try_get("answered_at")?,
                ended_at: row.try_get("ended_at")?,
                wait_seconds: row.try_get("wait_seconds")?,
                disposition: row.try_get("disposition")?,
                number_kind: row.try_get("number_kind")?,
                has_callback: jobs > 0,
                first_callback_at: row.try_get("first_callback_at")?,
            })
        })
        .collect()
}
