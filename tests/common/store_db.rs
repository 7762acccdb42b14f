//! Throwaway ticket stores for tests: a fresh SQLite file, or a fresh PostgreSQL
//! database created on the server named by `DISPATCHLINE_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and dropped when the test ends,
//! even when it fails. With `DISPATCHLINE_SKIP_PG=1` the PostgreSQL variants skip
//! with a notice; otherwise an unreachable server fails them with a clear message.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use dispatchline::store::Store;

/// Which dialect a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A migrated, empty store that cleans up after itself.
pub struct TestDb {
    pub store: Store,
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    File(PathBuf),
    Database { admin: String, name: String },
}

pub fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "dl_test_{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn admin_url() -> String {
    std::env::var("DISPATCHLINE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Whether PostgreSQL variants are to be skipped.
pub fn skip_pg() -> bool {
    std::env::var("DISPATCHLINE_SKIP_PG").is_ok_and(|v| v == "1")
}

impl TestDb {
    /// A fresh store of `dialect`; `None` only when PostgreSQL is skipped on purpose.
    pub async fn new(dialect: Dialect) -> Option<Self> {
        match dialect {
            Dialect::Sqlite => Some(Self::sqlite().await),
            Dialect::Postgres => Self::postgres().await,
        }
    }

    pub async fn sqlite() -> Self {
        let dir = std::env::temp_dir()
            .join("dispatchline-tests")
            .join(unique_name());
        let file = dir.join("store.db");
        let url = format!("sqlite://{}", file.display());
        let store = Store::connect(&url).await.expect("open SQLite test store");
        store.migrate().await.expect("migrate SQLite test store");
        Self {
            store,
            url,
            cleanup: Cleanup::File(dir),
        }
    }

    pub async fn postgres() -> Option<Self> {
        if skip_pg() {
            eprintln!("DISPATCHLINE_SKIP_PG=1: skipping the PostgreSQL variant of this test");
            return None;
        }
        let admin = admin_url();
        let name = unique_name();
        let admin_pool = sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(&admin)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is not reachable at {admin} ({e}). Start one, point \
                 DISPATCHLINE_TEST_PG at a server where this user may CREATE DATABASE, \
                 or set DISPATCHLINE_SKIP_PG=1 to skip the PostgreSQL variants."
                )
            });
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin_pool)
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name} on {admin}: {e}"));
        admin_pool.close().await;
        let url = database_url(&admin, &name);
        let store = Store::connect(&url)
            .await
            .expect("connect to the test database");
        store
            .migrate()
            .await
            .expect("migrate PostgreSQL test store");
        Some(Self {
            store,
            url,
            cleanup: Cleanup::Database { admin, name },
        })
    }

    /// Another handle on the same database (a second engine node).
    pub async fn second_node(&self) -> Store {
        Store::connect(&self.url).await.expect("second connection")
    }
}

/// `admin` with its database name replaced by `name`.
fn database_url(admin: &str, name: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin, None),
    };
    let without_db = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{without_db}/{name}?{q}"),
        None => format!("{without_db}/{name}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::File(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Database { admin, name } => {
                // Drop runs outside async context (and also when the test panicked):
                // a small runtime on its own thread drops the database.
                let admin = admin.clone();
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                let _ = std::thread::spawn(move || {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    else {
                        return;
                    };
                    rt.block_on(async {
                        if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                            let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
                            pool.close().await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

/// Defines `mod $name { sqlite, postgres }` tests running `async fn $name(Store)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::store_db::TestDb::sqlite().await;
                super::$name(db.store.clone()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(db) = $crate::store_db::TestDb::postgres().await else {
                    return;
                };
                super::$name(db.store.clone()).await;
            }
        }
    )*};
}
