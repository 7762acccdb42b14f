//! What a follow-up call brought, written and told: the attempt and the party's
//! answer go to the store in one transaction ([`Store::record_follow_up`]), with the
//! line in the ticket's history, the status the executor reported, the resident's
//! ratings, the supplier's next call and the next status check; then the bus hears
//! of it (`status-check.answered`, `survey.answered`, `supplier.called`,
//! `outage.broadcast` with the broadcast's progress, `follow-up.failed` when a
//! party could not be reached in every try).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::follow_up::{self, Answer, WorkStatus};
use crate::config::FollowUpSettings;
use crate::events::EventBus;
use crate::store::{
    DialAttemptOutcome, DialJob, DialKind, FollowUpRecorded, FollowUpResult, Store, StoreError,
};

/// One attempt of a follow-up job, as the call layer reports it.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The job.
    pub job: DialJob,
    /// How the call at the party ended.
    pub outcome: DialAttemptOutcome,
    /// The call.
    pub call_id: Option<String>,
    /// What the party answered, for robot calls that reached them.
    pub answer: Option<Answer>,
}

/// Writes `attempt` (of a job claimed by `node`) and tells the bus.
pub async fn record(
    store: &Store,
    bus: &EventBus,
    settings: &FollowUpSettings,
    attempt_interval: Duration,
    node: &str,
    attempt: Attempt,
    now: DateTime<Utc>,
) -> Result<FollowUpRecorded, StoreError> {
    let Attempt {
        job,
        outcome,
        call_id,
        answer,
    } = attempt;
    let retry = match job.kind {
        DialKind::Broadcast => settings.broadcast_retry,
        _ => attempt_interval,
    };
    let retry_at = now + chrono::Duration::from_std(retry).unwrap_or_default();
    let answered = outcome == DialAttemptOutcome::Answered;
    let last_try = answered || job.attempts_made + 1 >= job.max_attempts;
    let mut result = FollowUpResult::attempt(outcome, call_id.clone(), retry_at);
    let who = match job.kind {
        DialKind::StatusCheck => "исполнитель",
        DialKind::SupplierHandoff | DialKind::SupplierQuery => "РСО",
        _ => "житель",
    };
    if let Some(a) = &answer {
        result = follow_up::result_of(a, who, result);
    } else if answered {
        result.answer = Some("talked".to_owned());
    }
    // Context for the next status check and the supplier's next call.
    let about = match job.ticket_id {
        Some(t) if last_try => store
            .ticket_follow_ups(now, Some(&[t]), 1)
            .await?
            .into_iter()
            .next(),
        _ => None,
    };
    match job.kind {
        DialKind::StatusCheck if last_try => {
            if !answered {
                result.note = Some(format!(
                    "Проверка статуса: исполнитель не ответил ({} попыток, последняя: {})",
                    job.max_attempts,
                    outcome_words(outcome)
                ));
            }
            if let Some(t) = &about {
                let said = match &answer {
                    Some(Answer::Work(w)) => Some(*w),
                    _ => None,
                };
                result.next = follow_up::next_status_check(
                    &job,
                    t.status_checks,
                    t.category,
                    t.time_zone,
                    said,
                    settings,
                    now,
                );
            }
        }
        DialKind::SupplierHandoff | DialKind::SupplierQuery if last_try => {
            let (tenant, category) = match &about {
                Some(t) => (t.tenant.clone(), t.category),
                None => (
                    job.tenant.clone().unwrap_or_default(),
                    crate::store::Category::Emergency,
                ),
            };
            let policy = settings.policy(&tenant, category.as_str());
            result.supplier_recheck_at =
                Some(now + chrono::Duration::from_std(policy.supplier_recheck).unwrap_or_default());
            let what = if job.kind == DialKind::SupplierHandoff {
                "Передача в РСО"
            } else {
                "Запрос статуса в РСО"
            };
            result.note = Some(if answered {
                format!("{what}: разговор с диспетчером РСО состоялся")
            } else {
                format!(
                    "{what}: не дозвонились ({} попыток, последняя: {})",
                    job.max_attempts,
                    outcome_words(outcome)
                )
            });
        }
        DialKind::Survey if last_try && !answered => {
            result.note = Some(format!(
                "Опрос жителя: не дозвонились ({})",
                outcome_words(outcome)
            ));
        }
        _ => {}
    }
    let recorded = store.record_follow_up(job.id, node, &result, now).await?;
    tell(bus, &recorded, &job, &result, answer.as_ref(), store).await;
    Ok(recorded)
}

/// The outcome in the words of the ticket's history.
fn outcome_words(outcome: DialAttemptOutcome) -> &'static str {
    match outcome {
        DialAttemptOutcome::Answered => "ответили",
        DialAttemptOutcome::Busy => "занято",
        DialAttemptOutcome::NoAnswer => "не ответили",
        DialAttemptOutcome::Rejected => "отклонили",
        DialAttemptOutcome::Unreachable => "недоступен",
        DialAttemptOutcome::Failed => "сбой связи",
    }
}

async fn tell(
    bus: &EventBus,
    recorded: &FollowUpRecorded,
    job: &DialJob,
    result: &FollowUpResult,
    answer: Option<&Answer>,
    store: &Store,
) {
    let tenant = job.tenant.as_deref();
    tracing::info!(
        job = %job.id,
        kind = %job.kind,
        ticket = ?job.ticket_id,
        outcome = %result.outcome,
        answer = ?answer,
        state = %recorded.job.state,
        "follow-up call ended"
    );
    bus.publish(
        "dial.outcome",
        tenant,
        json!({
            "job": job.id,
            "purpose": job.kind,
            "call": result.call_id,
            "outcome": result.outcome,
            "attempt": recorded.job.attempts_made,
            "state": recorded.job.state,
            "ticket": job.ticket_id,
        }),
    );
    match (job.kind, answer) {
        (DialKind::StatusCheck, Some(Answer::Work(w))) => {
            bus.publish(
                "status-check.answered",
                tenant,
                json!({
                    "ticket": job.ticket_id,
                    "job": job.id,
                    "call": result.call_id,
                    "answer": w.as_str(),
                    // "cannot" needs a supervisor's decision.
                    "attention": *w == WorkStatus::Cannot,
                    "next": recorded.next.as_ref().map(|n| n.due_at),
                }),
            );
        }
        (DialKind::Survey, Some(Answer::Ratings { csi, ces, opt_out })) => {
            bus.publish(
                "survey.answered",
                tenant,
                json!({
                    "ticket": job.ticket_id,
                    "job": job.id,
                    "call": result.call_id,
                    "csi": csi,
                    "ces": ces,
                    "do_not_call": opt_out,
                }),
            );
        }
        _ => {}
    }
    if matches!(
        job.kind,
        DialKind::SupplierHandoff | DialKind::SupplierQuery
    ) && recorded.ended
    {
        bus.publish(
            "supplier.called",
            tenant,
            json!({
                "ticket": job.ticket_id,
                "supplier_ticket": job.supplier_ticket_id,
                "job": job.id,
                "purpose": job.kind,
                "call": result.call_id,
                "outcome": result.outcome,
            }),
        );
    }
    if recorded.ended
        && result.outcome != DialAttemptOutcome::Answered
        && job.kind != DialKind::Broadcast
    {
        bus.publish(
            "follow-up.failed",
            tenant,
            json!({
                "ticket": job.ticket_id,
                "job": job.id,
                "purpose": job.kind,
                "target": job.target,
                "outcome": result.outcome,
                "attempts": recorded.job.attempts_made,
            }),
        );
    }
    if let (DialKind::Broadcast, Some(outage)) = (job.kind, job.outage_id) {
        match store.broadcast_progress(outage).await {
            Ok(progress) => {
                bus.publish("outage.broadcast", tenant, json!(progress));
            }
            Err(e) => tracing::warn!(error = %e, %outage, "cannot read the broadcast's progress"),
        }
    }
}
