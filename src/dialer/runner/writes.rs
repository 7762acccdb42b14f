//! Store writes that must not be lost: performed at once, or kept in order and
//! tried again while the database cannot take them.

use super::*;

/// A write the store could not take yet.
#[derive(Debug, Clone)]
pub(super) enum Write {
    Attempt(AttemptRef, AttemptUpdate, DateTime<Utc>),
    Progress(DialChainId, ChainProgress, DateTime<Utc>),
    End(DialChainId, ChainState, String, DateTime<Utc>),
    Note(TicketId, String, DateTime<Utc>),
}

impl ChainRunner {
    pub(super) async fn note(&mut self, ticket: TicketId, text: String, wall: DateTime<Utc>) {
        self.write(Write::Note(ticket, text, wall)).await;
    }

    /// Performs a write, or keeps it (in order) when the store cannot take it now.
    pub(super) async fn write(&mut self, w: Write) {
        if !self.backlog.is_empty() {
            self.backlog.push_back(w);
            return;
        }
        if let Err(e) = self.perform(&w).await {
            if is_transient(&e) {
                tracing::warn!(error = %e, "store write kept for later");
                self.backlog.push_back(w);
            } else {
                tracing::error!(error = %e, write = ?w, "store write refused");
            }
        }
    }

    pub(super) async fn perform(&mut self, w: &Write) -> Result<(), StoreError> {
        self.stats.count(&self.stats.queries, 1);
        match w {
            Write::Attempt(a, u, wall) => self.store.update_attempt(a.chain, a.seq, u, *wall).await,
            Write::Progress(id, p, wall) => {
                self.store
                    .record_chain_progress(*id, &self.settings.node, p, *wall)
                    .await
            }
            Write::End(id, state, note, wall) => self
                .store
                .end_chain(*id, *state, note, *wall)
                .await
                .map(|_| ()),
            Write::Note(ticket, text, wall) => {
                self.store.ticket_note(*ticket, ACTOR, text, *wall).await
            }
        }
    }

    /// Tries the writes kept for later again, in order.
    pub async fn retry_writes(&mut self) {
        while let Some(w) = self.backlog.front().cloned() {
            match self.perform(&w).await {
                Ok(()) => {
                    self.backlog.pop_front();
                }
                Err(e) if is_transient(&e) => return,
                Err(e) => {
                    tracing::error!(error = %e, write = ?w, "store write refused");
                    self.backlog.pop_front();
                }
            }
        }
    }

    /// Retries attempts that could not be written.
    pub async fn retry_attempts(&mut self, now: Instant) {
        self.place_pending(now).await;
    }
}

/// Whether a store error may pass if the write is tried again later.
pub(super) fn is_transient(e: &StoreError) -> bool {
    // The store's own judgement (busy, unreachable, restarting, disk full), and a
    // pool closed under us.
    e.is_transient() || matches!(e, StoreError::Database(sqlx::Error::PoolClosed))
}
