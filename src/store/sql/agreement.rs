// Queries of `store::agreement`, compiled once per dialect by `per_backend!`.

use sqlx::{Pool, Row};

pub(super) async fn known(pool: &Pool<Db>) -> Result<Known, StoreError> {
    let mut known = Known::default();
    for row in sqlx::query("SELECT t.code, c.code AS city FROM tenants t JOIN cities c ON c.id = t.city_id")
        .fetch_all(pool)
        .await?
    {
        known
            .tenants
            .insert(row.try_get("code")?, row.try_get("city")?);
    }
    known.cities = sqlx::query_scalar("SELECT code FROM cities ORDER BY code")
        .fetch_all(pool)
        .await?;
    Ok(known)
}
