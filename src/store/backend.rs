//! The two database dialects behind [`Store`](super::Store).
//!
//! Owns the connection pools, connecting (the SQLite file and its directory are
//! created, WAL mode, `synchronous = FULL` and a busy timeout are set), the embedded migrations of each
//! dialect, and the few points where SQLite and PostgreSQL differ: how a write
//! transaction starts and whether rows can be locked.
//!
//! The SQL itself is written once. Each concept module keeps its queries in a file
//! under `src/store/sql/` that is compiled twice through [`per_backend!`], once with
//! `Db = Sqlite` and once with `Db = Postgres`, so every query is plain, monomorphic
//! sqlx code with `$N` placeholders (both drivers accept them) and no generic bounds.

use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Pool, Postgres, Sqlite, Transaction};

use super::StoreError;

/// A connected pool of one dialect.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    /// The embedded default of `serve`.
    Sqlite(SqlitePool),
    /// Production: several engine nodes share one database.
    Postgres(PgPool),
}

/// What differs between the dialects, looked up by the queries compiled for each.
pub(crate) trait Dialect: sqlx::Database {
    /// `FOR UPDATE` where rows can be locked; SQLite's write transaction already holds
    /// the database lock, so there it is empty.
    const FOR_UPDATE: &'static str;
    /// `FOR UPDATE SKIP LOCKED` where several nodes compete for rows; empty on SQLite.
    const SKIP_LOCKED: &'static str;

    /// Starts a transaction that will write. On SQLite this takes the write lock up
    /// front (`BEGIN IMMEDIATE`), so two writers queue on the busy timeout instead of
    /// one failing when it upgrades a read lock.
    fn begin_write(
        pool: &Pool<Self>,
    ) -> impl Future<Output = Result<Transaction<'static, Self>, sqlx::Error>> + Send;

    /// [`begin_write`](Self::begin_write) on a connection the caller holds (one that
    /// has filled a temporary staging table, say).
    fn begin_write_on(
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<Transaction<'_, Self>, sqlx::Error>> + Send;

    /// The column type of a calendar date (SQLite keeps `YYYY-MM-DD` text).
    const DATE_TYPE: &'static str;
}

impl Dialect for Sqlite {
    const FOR_UPDATE: &'static str = "";
    const SKIP_LOCKED: &'static str = "";

    const DATE_TYPE: &'static str = "TEXT";

    async fn begin_write(pool: &Pool<Self>) -> Result<Transaction<'static, Self>, sqlx::Error> {
        pool.begin_with("BEGIN IMMEDIATE").await
    }

    async fn begin_write_on(
        conn: &mut Self::Connection,
    ) -> Result<Transaction<'_, Self>, sqlx::Error> {
        use sqlx::Connection as _;
        conn.begin_with("BEGIN IMMEDIATE").await
    }
}

impl Dialect for Postgres {
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";

    const DATE_TYPE: &'static str = "DATE";

    async fn begin_write(pool: &Pool<Self>) -> Result<Transaction<'static, Self>, sqlx::Error> {
        pool.begin().await
    }

    async fn begin_write_on(
        conn: &mut Self::Connection,
    ) -> Result<Transaction<'_, Self>, sqlx::Error> {
        use sqlx::Connection as _;
        conn.begin().await
    }
}

/// Compiles a file of queries once per dialect, as modules `sqlite` and `postgres`
/// in which `Db` names the dialect. The file sees its parent module's items.
macro_rules! per_backend {
    ($file:literal) => {
        pub(in crate::store) mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use $crate::store::backend::Dialect as _;
            #[allow(unused_imports)]
            use $crate::store::backend::peers::sqlite as peers;
            type Db = sqlx::Sqlite;
            include!($file);
        }
        pub(in crate::store) mod postgres {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use $crate::store::backend::Dialect as _;
            #[allow(unused_imports)]
            use $crate::store::backend::peers::postgres as peers;
            type Db = sqlx::Postgres;
            include!($file);
        }
    };
}
pub(crate) use per_backend;

/// The queries of other store modules in the same dialect, for a transaction that
/// spans concepts (a follow-up call's answer moves its ticket and plans the next
/// call): `peers::tickets::lock(...)` inside a file of [`per_backend!`].
pub(crate) mod peers {
    /// SQLite.
    pub(crate) mod sqlite {
        pub(in crate::store) use crate::store::dial_jobs::sqlite as dial_jobs;
        pub(in crate::store) use crate::store::journal::sqlite as journal;
        pub(in crate::store) use crate::store::tickets::sqlite as tickets;
    }
    /// PostgreSQL.
    pub(crate) mod postgres {
        pub(in crate::store) use crate::store::dial_jobs::postgres as dial_jobs;
        pub(in crate::store) use crate::store::journal::postgres as journal;
        pub(in crate::store) use crate::store::tickets::postgres as tickets;
    }
}

/// Calls `{sqlite,postgres}::function(pool, args...)` of the current module (made by
/// [`per_backend!`]) for the store's dialect.
macro_rules! dispatch {
    ($store:expr, $function:ident ( $($arg:expr),* $(,)? )) => {
        match &$store.backend {
            $crate::store::backend::Backend::Sqlite(pool) => {
                sqlite::$function(pool $(, $arg)*).await
            }
            $crate::store::backend::Backend::Postgres(pool) => {
                postgres::$function(pool $(, $arg)*).await
            }
        }
    };
}
pub(crate) use dispatch;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Backend {
    /// Connects to `url` (`sqlite://path`, `sqlite::memory:`, `postgres://...`).
    pub(crate) async fn connect(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Self::connect_sqlite(url).await
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?;
            Ok(Self::Postgres(pool))
        } else {
            Err(StoreError::UnsupportedUrl(url.to_owned()))
        }
    }

    async fn connect_sqlite(url: &str) -> Result<Self, StoreError> {
        let (url, synchronous) = sqlite_synchronous(url)?;
        let options = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let path = options.get_filename();
        let in_memory = path.as_os_str().is_empty() || path == Path::new(":memory:");
        if !in_memory {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                    path: dir.to_owned(),
                    source,
                })?;
            }
        }
        // An in-memory database lives in one connection; a file is shared by several
        // readers (WAL) and one writer at a time.
        let max = if in_memory { 1 } else { 8 };
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(Self::Sqlite(pool))
    }

    /// Applies the dialect's pending migrations.
    pub(crate) async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await?,
            Self::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// `sqlite` or `postgres`.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// Closes every connection (waits for those in use to be returned).
    pub(crate) async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

/// Takes `synchronous=full|normal` out of a SQLite URL's query (sqlx does not know
/// it). The default is FULL: a ticket whose number the resident was told survives a
/// power loss, which NORMAL does not promise in WAL mode (the last commits may go).
/// NORMAL is there for benchmarks and for whoever accepts that risk.
fn sqlite_synchronous(url: &str) -> Result<(String, SqliteSynchronous), StoreError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), SqliteSynchronous::Full));
    };
    let mut synchronous = SqliteSynchronous::Full;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("synchronous", value)) => {
                synchronous = match value.to_ascii_lowercase().as_str() {
                    "full" => SqliteSynchronous::Full,
                    "normal" => SqliteSynchronous::Normal,
                    _ => return Err(StoreError::UnsupportedUrl(url.to_owned())),
                }
            }
            _ => rest.push(pair),
        }
    }
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, synchronous))
}

/// Appends `AND <column> IN (...)` for a restricted scope (nothing for all tenants).
pub(crate) fn push_scope<DB>(
    qb: &mut sqlx::QueryBuilder<DB>,
    scope: &super::directory::TenantScope,
    column: &str,
) where
    DB: sqlx::Database,
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    if let super::directory::TenantScope::Only(codes) = scope {
        if codes.is_empty() {
            qb.push(" AND FALSE");
            return;
        }
        qb.push(format_args!(" AND {column} IN ("));
        let mut list = qb.separated(", ");
        for code in codes {
            list.push_bind(code.clone());
        }
        qb.push(")");
    }
}

/// Appends `column IN ($n, ...)` over `values`; an empty list matches nothing.
pub(crate) fn push_in<DB, T>(qb: &mut sqlx::QueryBuilder<DB>, column: &str, values: &[T])
where
    DB: sqlx::Database,
    T: Clone + for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB> + 'static,
{
    if values.is_empty() {
        qb.push("FALSE");
        return;
    }
    qb.push(format_args!("{column} IN ("));
    let mut list = qb.separated(", ");
    for value in values {
        list.push_bind(value.clone());
    }
    qb.push(")");
}
