//! Nudges between the nodes that share a PostgreSQL database: `NOTIFY` after a
//! write others should read soon, and a listener that turns notifications into
//! wake-ups. Only a hint: readers still poll, so a notification lost while a
//! connection is re-made delays a read, never loses a row. On SQLite (one node)
//! there is nobody to nudge.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::backend::Backend;
use super::{Store, StoreError};

impl Store {
    /// Notifies `channel` with `payload` (PostgreSQL; nothing on SQLite).
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        if let Backend::Postgres(pool) = &self.backend {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// Wakes `wake` on every notification on `channel`, and after every
    /// (re)connection of the listening connection (whatever was announced while
    /// nobody listened must be read then). A background task keeps the connection,
    /// re-making it a second after it fails, until the pool is closed or nobody
    /// else holds `wake`. Returns `false` on SQLite, where nothing is listened to.
    pub fn listen(&self, channel: &str, wake: Arc<Notify>) -> bool {
        let Backend::Postgres(pool) = &self.backend else {
            return false;
        };
        let (pool, channel) = (pool.clone(), channel.to_owned());
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                let Err(e) = listening(&pool, &channel, &wake, &mut failing).await;
                if pool.is_closed() || Arc::strong_count(&wake) == 1 {
                    return;
                }
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(%channel, error = %e, "cannot listen for notifications; reading on the poll only");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        true
    }
}

/// One `LISTEN` connection, until it fails.
async fn listening(
    pool: &sqlx::PgPool,
    channel: &str,
    wake: &Notify,
    failing: &mut bool,
) -> Result<std::convert::Infallible, sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    wake.notify_one();
    if std::mem::take(failing) {
        tracing::info!(%channel, "listening for notifications again");
    }
    loop {
        if listener.try_recv().await?.is_some() {
            // One wake-up answers every notification already here.
            while listener.next_buffered().is_some() {}
        }
        // `None`: the connection broke and was made again.
        wake.notify_one();
    }
}
