//! Nudges between the nodes that share a PostgreSQL database: `NOTIFY` after a
//! write others should read soon, and a listener that turns notifications into
//! wake-ups. Only a hint: readers still poll, so a notification lost while a
//! connection is re-made delays a read, never loses a row. On SQLite (one node)
//! there is nobody to nudge.

use std::time::Duration;

use tokio::sync::mpsc;

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

    /// Wake-ups for notifications on `channel`, coalesced (one pending at most);
    /// `None` on SQLite. The listening task re-connects after an error and ends
    /// when the receiver is dropped.
    pub async fn listen(&self, channel: &str) -> Option<mpsc::Receiver<()>> {
        let Backend::Postgres(pool) = &self.backend else {
            return None;
        };
        let (tx, rx) = mpsc::channel(1);
        let (pool, channel) = (pool.clone(), channel.to_owned());
        tokio::spawn(async move {
            let mut pause = Duration::from_millis(100);
            loop {
                match sqlx::postgres::PgListener::connect_with(&pool).await {
                    Ok(mut listener) => {
                        if let Err(e) = listener.listen(&channel).await {
                            tracing::warn!(%channel, error = %e, "cannot listen for notifications");
                        } else {
                            pause = Duration::from_millis(100);
                            loop {
                                match listener.try_recv().await {
                                    Ok(Some(_)) => {}
                                    // The connection was re-made: something may
                                    // have been missed; wake the reader anyway.
                                    Ok(None) => {}
                                    Err(e) => {
                                        tracing::warn!(%channel, error = %e, "notification listener failed");
                                        break;
                                    }
                                }
                                match tx.try_send(()) {
                                    Ok(()) | Err(mpsc::error::TrySendError::Full(())) => {}
                                    Err(mpsc::error::TrySendError::Closed(())) => return,
                                }
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(%channel, error = %e, "cannot connect a notification listener");
                    }
                }
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        });
        Some(rx)
    }
}
