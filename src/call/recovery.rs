//! What a node does at start about the calls a crash (a SIGKILL) cut off: its
//! unfinished journal rows are closed with their last known state, and every
//! caller who was waiting in its queue gets the callback the 5-minute rule
//! promises (through the same dial plan as any callback: a number outside it is
//! logged and left). See [`crate::store::recovery`].

use chrono::Utc;

use crate::config::Config;
use crate::phone::PhoneNumber;
use crate::store::{DialKind, NewDialJob, Store, StoreError};

/// Closes this node's unfinished calls and schedules the callbacks of the callers
/// who were waiting. Returns how many callbacks were scheduled.
pub async fn recover_calls(
    store: &Store,
    config: &Config,
    node: &str,
) -> Result<usize, StoreError> {
    let now = Utc::now();
    let (closed, waiting) = store.close_unfinished_calls(node, now).await?;
    if closed == 0 {
        return Ok(0);
    }
    tracing::warn!(%node, calls = closed, waiting = waiting.len(), "calls a crash cut off are closed in the journal");
    let mut scheduled = 0;
    for caller in waiting {
        let Ok(phone) = PhoneNumber::parse(&caller.from_number) else {
            continue;
        };
        if !config.security.callback_plan.permits(phone.as_str()) {
            tracing::warn!(%phone, call = %caller.call_id, "no callback after the crash: the number is outside the callback dial plan");
            continue;
        }
        let deadline = caller.offered_at
            + chrono::Duration::from_std(config.queue.callback_deadline).unwrap_or_default();
        let job = NewDialJob {
            tenant: caller.tenant.clone(),
            call_id: Some(caller.call_id.clone()),
            deadline_at: Some(deadline),
            ..NewDialJob::new(DialKind::Callback, phone, now, config.dialer.attempts)
        };
        let origin = PhoneNumber::parse(&caller.to_number).ok();
        store
            .create_dial_job_from(&job, origin.as_ref(), now)
            .await?;
        scheduled += 1;
    }
    Ok(scheduled)
}
