//! Follow-up calls: which calls a ticket needs after it was handed over, and what
//! a party's answer means. Pure: the store's rows, the policy and the time go in;
//! jobs to plan and results to write come out.
//!
//! - **Status check** ([`DialKind::StatusCheck`]): `status_check_delay` after a
//!   ticket was accepted the executor is asked how the work stands, then every
//!   `status_check_interval` while it is open, at most `status_checks` times. Keypad
//!   (or the operator's form): 1 done (the ticket moves to done), 2 in progress
//!   (accepted moves to in progress), 3 cannot be done (a line in the history and a
//!   supervisor event; no further checks).
//! - **Feedback** ([`DialKind::Survey`]): `feedback_delay` after a ticket was done
//!   the resident who reported it rates the work (CSI 1–5) and how easy it was (CES
//!   1–5); 9 means "do not call me again"; one survey per ticket, never to a resident
//!   who opted out.
//! - **Supplier hand-over** ([`DialKind::SupplierHandoff`]) of a pending supplier
//!   ticket to the supplier's dispatch phone, operator-first; then **status queries**
//!   ([`DialKind::SupplierQuery`]) at the re-check time the operator wrote down (or
//!   `supplier_recheck` after the last call), at most `supplier_queries` times.
//!
//! No call about a ticket that is not an emergency rings in its city's quiet hours:
//! such jobs are due at the end of the night ([`QuietHours::next_allowed`]), and
//! the dialer postpones one that comes due at night anyway (a retry).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::quiet_hours::QuietHours;
use crate::config::{FollowUpSettings, Reach};
use crate::phone::PhoneNumber;
use crate::store::{
    Category, DialKind, FollowUpResult, NewDialJob, SupplierFollowUp, SupplierStatus, SurveyMetric,
    TicketFollowUp, TicketStatus,
};

/// Hand-over calls to a supplier before the dialer stops trying on its own.
pub const SUPPLIER_HANDOFF_CALLS: i64 = 3;

/// Tries of one feedback call: a resident is not chased.
pub const SURVEY_ATTEMPTS: u32 = 3;

/// What the executor said about a ticket's work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkStatus {
    /// Keypad 1: the work is done.
    Done,
    /// Keypad 2: the work goes on.
    InProgress,
    /// Keypad 3: the work cannot be done.
    Cannot,
}

impl WorkStatus {
    /// The keypad answer, if `key` is one.
    pub fn from_key(key: char) -> Option<Self> {
        match key {
            '1' => Some(Self::Done),
            '2' => Some(Self::InProgress),
            '3' => Some(Self::Cannot),
            _ => None,
        }
    }

    /// The stored answer.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::InProgress => "in-progress",
            Self::Cannot => "cannot",
        }
    }

    /// The status the ticket moves to.
    pub fn moves_to(self) -> Option<TicketStatus> {
        match self {
            Self::Done => Some(TicketStatus::Done),
            Self::InProgress => Some(TicketStatus::InProgress),
            Self::Cannot => None,
        }
    }

    /// The line in the ticket's history.
    pub fn note(self, who: &str) -> String {
        match self {
            Self::Done => format!("Проверка статуса: {who} сообщает, что работы выполнены"),
            Self::InProgress => format!("Проверка статуса: {who} сообщает, что работы ведутся"),
            Self::Cannot => format!("Проверка статуса: {who} сообщает, что выполнить невозможно"),
        }
    }
}

/// What the party of a robot call answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Answer {
    /// The executor's keypad answer to a status check.
    Work(WorkStatus),
    /// The resident's ratings (either may be missing when they stopped answering).
    Ratings {
        /// Satisfaction, 1–5.
        csi: Option<u8>,
        /// Effort, 1–5.
        ces: Option<u8>,
        /// Pressed 9: never survey this number again.
        opt_out: bool,
    },
    /// The party answered but pressed nothing, after the retry.
    NoInput,
    /// The notice was played (a broadcast).
    Heard,
}

impl Answer {
    /// The stored answer.
    pub fn stored(&self) -> String {
        match self {
            Self::Work(w) => w.as_str().to_owned(),
            Self::Ratings { csi, ces, opt_out } => {
                let mut parts = Vec::new();
                if let Some(c) = csi {
                    parts.push(format!("csi={c}"));
                }
                if let Some(c) = ces {
                    parts.push(format!("ces={c}"));
                }
                if *opt_out {
                    parts.push("do-not-call".to_owned());
                }
                if parts.is_empty() {
                    "no-input".to_owned()
                } else {
                    parts.join(" ")
                }
            }
            Self::NoInput => "no-input".to_owned(),
            Self::Heard => "heard".to_owned(),
        }
    }
}

/// `at`, or the end of the quiet hours in `zone` when `quiet` and `at` is at night.
pub fn allowed(
    quiet: bool,
    hours: &QuietHours,
    at: DateTime<Utc>,
    zone: chrono_tz::Tz,
) -> DateTime<Utc> {
    if quiet {
        hours.next_allowed(at, zone)
    } else {
        at
    }
}

/// Whether calls about a ticket of `category` wait out the quiet hours.
pub fn waits_for_morning(category: Category) -> bool {
    category != Category::Emergency
}

/// The follow-up jobs `ticket` needs now that it is in its current state:
/// its first status check, or its feedback survey.
pub fn plan_ticket(
    ticket: &TicketFollowUp,
    settings: &FollowUpSettings,
    attempts: u32,
    now: DateTime<Utc>,
) -> Vec<NewDialJob> {
    let policy = settings.policy(&ticket.tenant, ticket.category.as_str());
    let quiet = waits_for_morning(ticket.category);
    let mut jobs = Vec::new();
    let open = matches!(
        ticket.status,
        TicketStatus::Accepted | TicketStatus::InProgress
    );
    if open && ticket.status_checks == 0 && !ticket.open_status_check && policy.status_checks > 0 {
        let phone = ticket
            .executor_phone
            .as_deref()
            .and_then(|p| PhoneNumber::parse(p).ok());
        if let (Some(phone), Some(accepted)) = (phone, ticket.accepted_at) {
            let due = (accepted + chrono_delta(policy.status_check_delay)).max(now);
            jobs.push(NewDialJob {
                tenant: Some(ticket.tenant.clone()),
                ticket_id: Some(ticket.ticket),
                quiet_hours: quiet,
                reach: Some(policy.status_check_reach),
                ..NewDialJob::new(
                    DialKind::StatusCheck,
                    phone,
                    allowed(quiet, &settings.quiet_hours, due, ticket.time_zone),
                    attempts,
                )
            });
        }
    }
    if ticket.status == TicketStatus::Done
        && policy.feedback
        && !ticket.survey_planned
        && !ticket.caller_opted_out
    {
        let phone = ticket
            .caller_phone
            .as_deref()
            .and_then(|p| PhoneNumber::parse(p).ok());
        if let (Some(phone), Some(done)) = (phone, ticket.done_at) {
            let due = (done + chrono_delta(policy.feedback_delay)).max(now);
            jobs.push(NewDialJob {
                tenant: Some(ticket.tenant.clone()),
                ticket_id: Some(ticket.ticket),
                // Residents are never called at night about feedback, whatever the
                // ticket was.
                quiet_hours: true,
                reach: Some(Reach::Informer),
                ..NewDialJob::new(
                    DialKind::Survey,
                    phone,
                    settings.quiet_hours.next_allowed(due, ticket.time_zone),
                    SURVEY_ATTEMPTS.min(attempts.max(1)),
                )
            });
        }
    }
    jobs
}

/// The call a supplier hand-over needs now: the hand-over itself while it is
/// pending, a status query at its re-check time once handed over.
pub fn plan_supplier(
    supplier: &SupplierFollowUp,
    settings: &FollowUpSettings,
    attempts: u32,
    now: DateTime<Utc>,
) -> Option<NewDialJob> {
    if supplier.open_call.is_some()
        || matches!(
            supplier.ticket_status,
            TicketStatus::Closed | TicketStatus::Cancelled
        )
    {
        return None;
    }
    let phone = PhoneNumber::parse(supplier.dispatch_phone.as_deref()?).ok()?;
    let policy = settings.policy(&supplier.tenant, supplier.category.as_str());
    let quiet = waits_for_morning(supplier.category);
    let (kind, due) = match supplier.status {
        SupplierStatus::Pending
            if supplier.handoff_answered == 0
                && supplier.handoff_calls < SUPPLIER_HANDOFF_CALLS =>
        {
            (DialKind::SupplierHandoff, now)
        }
        SupplierStatus::HandedOver if supplier.queries < i64::from(policy.supplier_queries) => {
            // Nobody wrote down when to call back: the policy says.
            let at = supplier
                .recheck_at
                .unwrap_or(now + chrono_delta(policy.supplier_recheck));
            (DialKind::SupplierQuery, at.max(now))
        }
        _ => return None,
    };
    let due = allowed(quiet, &settings.quiet_hours, due, supplier.time_zone);
    Some(NewDialJob {
        tenant: Some(supplier.tenant.clone()),
        ticket_id: Some(supplier.ticket),
        supplier_ticket_id: Some(supplier.supplier_ticket),
        quiet_hours: quiet,
        reach: Some(Reach::OperatorFirst),
        ..NewDialJob::new(kind, phone, due, attempts)
    })
}

/// The next status check after one that ended (`answer` when the executor said
/// something), if the ticket still needs one: while it is open, not reported
/// impossible, and under the policy's count.
pub fn next_status_check(
    job: &crate::store::DialJob,
    checks_so_far: i64,
    category: Category,
    zone: chrono_tz::Tz,
    answer: Option<WorkStatus>,
    settings: &FollowUpSettings,
    now: DateTime<Utc>,
) -> Option<NewDialJob> {
    if matches!(answer, Some(WorkStatus::Done | WorkStatus::Cannot)) {
        return None;
    }
    let tenant = job.tenant.clone()?;
    let policy = settings.policy(&tenant, category.as_str());
    if checks_so_far >= i64::from(policy.status_checks) {
        return None;
    }
    let phone = PhoneNumber::parse(&job.target).ok()?;
    let quiet = waits_for_morning(category);
    let due = allowed(
        quiet,
        &settings.quiet_hours,
        now + chrono_delta(policy.status_check_interval),
        zone,
    );
    Some(NewDialJob {
        tenant: Some(tenant),
        ticket_id: job.ticket_id,
        quiet_hours: quiet,
        reach: job.reach.or(Some(policy.status_check_reach)),
        ..NewDialJob::new(
            DialKind::StatusCheck,
            phone,
            due,
            u32::try_from(job.max_attempts).unwrap_or(1),
        )
    })
}

/// What a robot call's answer writes: the stored answer, the history line, the
/// status it moves the ticket to and the ratings. `who` names the party in the
/// history.
pub fn result_of(answer: &Answer, who: &str, base: FollowUpResult) -> FollowUpResult {
    let mut r = base;
    r.answer = Some(answer.stored());
    match answer {
        Answer::Work(w) => {
            r.move_to = w.moves_to();
            r.note = Some(w.note(who));
        }
        Answer::Ratings { csi, ces, opt_out } => {
            if let Some(c) = csi {
                r.ratings.push((SurveyMetric::Csi, i64::from(*c)));
            }
            if let Some(c) = ces {
                r.ratings.push((SurveyMetric::Ces, i64::from(*c)));
            }
            r.opt_out = *opt_out;
            let mut said = Vec::new();
            if let Some(c) = csi {
                said.push(format!("качество {c} из 5"));
            }
            if let Some(c) = ces {
                said.push(format!("удобство {c} из 5"));
            }
            if *opt_out {
                said.push("просит больше не звонить".to_owned());
            }
            r.note = Some(if said.is_empty() {
                "Опрос жителя: оценки не получены".to_owned()
            } else {
                format!("Опрос жителя: {}", said.join(", "))
            });
        }
        Answer::NoInput => {
            r.note = Some(format!(
                "Звонок {who}: ответили, но не нажали ни одной клавиши"
            ));
        }
        Answer::Heard => {}
    }
    r
}

fn chrono_delta(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or_else(|_| chrono::Duration::days(1))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;
    use crate::store::{DialAttemptOutcome, SupplierTicketId, TicketId};

    fn settings() -> FollowUpSettings {
        Config::parse(
            "[[number]]\nnumber = \"100\"\nkind = \"forward\"\ntarget = \"sip:127.0.0.1:5080\"\n",
            Path::new("t.toml"),
        )
        .unwrap()
        .follow_ups
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn ticket(status: TicketStatus, category: Category) -> TicketFollowUp {
        TicketFollowUp {
            ticket: TicketId(7),
            number: "Э-7".into(),
            tenant: "etalon".into(),
            time_zone: "Asia/Yekaterinburg".parse().unwrap(),
            category,
            status,
            executor_name: Some("Иванов".into()),
            executor_phone: Some("+79120000001".into()),
            caller_phone: Some("+79120000099".into()),
            accepted_at: Some(utc("2026-12-07T05:00:00Z")),
            done_at: Some(utc("2026-12-07T06:00:00Z")),
            status_checks: 0,
            open_status_check: false,
            survey_planned: false,
            caller_opted_out: false,
        }
    }

    #[test]
    fn an_accepted_ticket_is_checked_two_hours_after_acceptance() {
        let s = settings();
        let t = ticket(TicketStatus::Accepted, Category::Emergency);
        let jobs = plan_ticket(&t, &s, 5, utc("2026-12-07T05:01:00Z"));
        assert_eq!(jobs.len(), 1);
        let j = &jobs[0];
        assert_eq!(j.kind, DialKind::StatusCheck);
        assert_eq!(j.due_at, utc("2026-12-07T07:00:00Z"));
        assert_eq!(j.target.as_str(), "+79120000001");
        assert_eq!(j.reach, Some(Reach::OperatorFirst));
        assert!(!j.quiet_hours, "an emergency's check rings at night too");
        // Already planned once: nothing more (the next comes when this one ends).
        let planned = TicketFollowUp {
            status_checks: 1,
            ..t
        };
        assert!(plan_ticket(&planned, &s, 5, utc("2026-12-07T05:01:00Z")).is_empty());
    }

    #[test]
    fn a_planned_tickets_check_waits_for_the_morning() {
        let s = settings();
        let t = TicketFollowUp {
            // Accepted at 20:00 local; two hours later is 22:00, at night.
            accepted_at: Some(utc("2026-12-07T15:00:00Z")),
            ..ticket(TicketStatus::InProgress, Category::Planned)
        };
        let jobs = plan_ticket(&t, &s, 5, utc("2026-12-07T15:00:00Z"));
        assert_eq!(jobs[0].due_at, utc("2026-12-08T04:00:00Z"), "09:00 local");
        assert!(jobs[0].quiet_hours);
    }

    #[test]
    fn a_done_ticket_gets_one_survey_unless_the_resident_opted_out() {
        let s = settings();
        let t = ticket(TicketStatus::Done, Category::Emergency);
        let jobs = plan_ticket(&t, &s, 5, utc("2026-12-07T06:00:00Z"));
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].kind, DialKind::Survey);
        assert_eq!(jobs[0].target.as_str(), "+79120000099");
        assert_eq!(jobs[0].due_at, utc("2026-12-07T06:30:00Z"));
        assert!(jobs[0].quiet_hours, "feedback never rings at night");
        assert_eq!(jobs[0].max_attempts, SURVEY_ATTEMPTS);
        for t in [
            TicketFollowUp {
                caller_opted_out: true,
                ..t.clone()
            },
            TicketFollowUp {
                survey_planned: true,
                ..t.clone()
            },
            TicketFollowUp {
                caller_phone: None,
                ..t.clone()
            },
        ] {
            assert!(plan_ticket(&t, &s, 5, utc("2026-12-07T06:00:00Z")).is_empty());
        }
        // Done at 22:30 local: called at 09:00 the next morning.
        let late = TicketFollowUp {
            done_at: Some(utc("2026-12-07T17:30:00Z")),
            ..t
        };
        let jobs = plan_ticket(&late, &s, 5, utc("2026-12-07T17:30:00Z"));
        assert_eq!(jobs[0].due_at, utc("2026-12-08T04:00:00Z"));
    }

    fn supplier(status: SupplierStatus) -> SupplierFollowUp {
        SupplierFollowUp {
            supplier_ticket: SupplierTicketId(3),
            ticket: TicketId(7),
            number: "Э-7".into(),
            tenant: "etalon".into(),
            time_zone: "Asia/Yekaterinburg".parse().unwrap(),
            category: Category::Emergency,
            ticket_status: TicketStatus::Accepted,
            supplier_name: "Водоканал".into(),
            dispatch_phone: Some("+73432000000".into()),
            status,
            recheck_at: Some(utc("2026-12-07T09:00:00Z")),
            handoff_calls: 0,
            handoff_answered: 0,
            queries: 0,
            open_call: None,
        }
    }

    #[test]
    fn a_supplier_gets_the_ticket_then_is_asked_at_the_recheck_time() {
        let s = settings();
        let now = utc("2026-12-07T06:00:00Z");
        let j = plan_supplier(&supplier(SupplierStatus::Pending), &s, 5, now).unwrap();
        assert_eq!((j.kind, j.due_at), (DialKind::SupplierHandoff, now));
        assert_eq!(j.supplier_ticket_id, Some(SupplierTicketId(3)));
        let j = plan_supplier(&supplier(SupplierStatus::HandedOver), &s, 5, now).unwrap();
        assert_eq!(
            (j.kind, j.due_at),
            (DialKind::SupplierQuery, utc("2026-12-07T09:00:00Z"))
        );
        let answered = SupplierFollowUp {
            handoff_answered: 1,
            handoff_calls: 1,
            ..supplier(SupplierStatus::Pending)
        };
        assert!(
            plan_supplier(&answered, &s, 5, now).is_none(),
            "the operator records the answer"
        );
        let busy = SupplierFollowUp {
            open_call: Some((crate::store::DialJobId(1), now)),
            ..supplier(SupplierStatus::Pending)
        };
        assert!(plan_supplier(&busy, &s, 5, now).is_none());
        let asked_enough = SupplierFollowUp {
            queries: 6,
            ..supplier(SupplierStatus::HandedOver)
        };
        assert!(plan_supplier(&asked_enough, &s, 5, now).is_none());
    }

    #[test]
    fn answers_write_what_they_mean() {
        let base = || FollowUpResult::attempt(DialAttemptOutcome::Answered, None, Utc::now());
        let r = result_of(&Answer::Work(WorkStatus::InProgress), "Иванов", base());
        assert_eq!(r.answer.as_deref(), Some("in-progress"));
        assert_eq!(r.move_to, Some(TicketStatus::InProgress));
        assert!(r.note.unwrap().contains("ведутся"));
        let r = result_of(
            &Answer::Ratings {
                csi: Some(4),
                ces: Some(5),
                opt_out: false,
            },
            "жителя",
            base(),
        );
        assert_eq!(r.answer.as_deref(), Some("csi=4 ces=5"));
        assert_eq!(
            r.ratings,
            vec![(SurveyMetric::Csi, 4), (SurveyMetric::Ces, 5)]
        );
        let r = result_of(
            &Answer::Ratings {
                csi: None,
                ces: None,
                opt_out: true,
            },
            "жителя",
            base(),
        );
        assert!(r.opt_out);
        assert_eq!(r.answer.as_deref(), Some("do-not-call"));
        assert_eq!(WorkStatus::from_key('3'), Some(WorkStatus::Cannot));
        assert_eq!(WorkStatus::from_key('4'), None);
    }
}
