//! Follow-up calls in the store, on SQLite and PostgreSQL: the planner plans each
//! status check, survey and supplier call once whoever plans it; an answer is
//! written with its history line, the status it reports, the ratings and the next
//! check in one transaction; a ticket done cancels its pending check; a resident
//! who pressed 9 is never surveyed again; an outage broadcast calls each number
//! once however often it is started, and its progress adds up.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/store_db.rs"]
mod store_db;
#[path = "common/store_world.rs"]
mod store_world;

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use dispatchline::config::Config;
use dispatchline::dialer::follow_up::{Answer, WorkStatus, result_of};
use dispatchline::dialer::planner::Planner;
use dispatchline::events::EventBus;
use dispatchline::store::notices::NewOutage;
use dispatchline::store::tickets::Channel;
use dispatchline::store::{
    DialAttemptOutcome, DialJob, DialJobState, DialKind, FollowUpResult, NewBroadcast, NewDialJob,
    NewTicket, StatusUpdate, Store, SupplierStatus, SupplierUpdate, SurveyMetric, TicketId,
    TicketStatus,
};
use store_world::{World, build, phone, tuesday_utc};

fn planner(store: &Store) -> Planner {
    let config = Config::parse(
        "[[number]]\nnumber = \"100\"\nkind = \"forward\"\ntarget = \"sip:127.0.0.1:5080\"\n",
        Path::new("t.toml"),
    )
    .unwrap();
    Planner::new(
        store.clone(),
        EventBus::new(std::time::Duration::from_secs(60), 1000, 1000),
        config.follow_ups,
        5,
    )
}

async fn ticket(store: &Store, w: &World, at: DateTime<Utc>) -> TicketId {
    store
        .create_ticket(
            &NewTicket {
                tenant: "etalon".into(),
                house_id: w.ekb_house,
                apartment: Some("12".into()),
                reason_id: w.flooding,
                description: "Топит сверху".into(),
                source: Channel::Phone,
                labels: vec![],
                caller_phone: Some(phone("+79120000099")),
                call_id: None,
                actor: "1001".into(),
            },
            at,
        )
        .await
        .unwrap()
        .ticket
        .id
}

async fn move_to(store: &Store, t: TicketId, to: TicketStatus, at: DateTime<Utc>) {
    store
        .change_status(
            t,
            &StatusUpdate {
                to,
                actor: "1001".into(),
                note: String::new(),
                expected_version: None,
            },
            at,
        )
        .await
        .unwrap();
}

async fn claim(store: &Store, at: DateTime<Utc>) -> Vec<DialJob> {
    store
        .claim_due_dial_jobs("node-a", at, Duration::minutes(10), 100)
        .await
        .unwrap()
}

async fn jobs_of(store: &Store, t: TicketId, kind: DialKind) -> Vec<DialJob> {
    store
        .dial_jobs(
            &dispatchline::store::TenantScope::All,
            &dispatchline::store::DialJobFilter {
                ticket_id: Some(t),
                kind: Some(kind),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .items
}

/// 10:00 local in Yekaterinburg (UTC+5).
fn morning() -> DateTime<Utc> {
    tuesday_utc(5, 0)
}

async fn status_checks_follow_a_ticket_until_it_is_done(store: Store) {
    let w = build(&store).await;
    let p = planner(&store);
    let t = ticket(&store, &w, morning()).await;
    // Accepted: one check, two hours later, to the executor on duty.
    move_to(&store, t, TicketStatus::Accepted, morning()).await;
    let planned = p.plan(Some(&[t]), morning()).await.unwrap();
    assert_eq!(planned.made.len(), 1);
    // Planning again (another node, a lost event) makes nothing new.
    assert!(p.plan(None, morning()).await.unwrap().made.is_empty());
    let checks = jobs_of(&store, t, DialKind::StatusCheck).await;
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].due_at, morning() + Duration::hours(2));
    assert_eq!(checks[0].target, "+79121000001", "the day plumber's phone");
    assert!(claim(&store, morning()).await.is_empty(), "not due yet");

    // Two hours later the executor answers "in progress": the ticket moves, the
    // history says so, and the next check is planned in the same transaction.
    let at = morning() + Duration::hours(2);
    let claimed = claim(&store, at).await;
    assert_eq!(claimed.len(), 1);
    let job = &claimed[0];
    let result = result_of(
        &Answer::Work(WorkStatus::InProgress),
        "исполнитель",
        FollowUpResult {
            next: Some(dispatchline::store::NewDialJob {
                tenant: Some("etalon".into()),
                ticket_id: Some(t),
                ..dispatchline::store::NewDialJob::new(
                    DialKind::StatusCheck,
                    phone(&job.target),
                    at + Duration::hours(2),
                    5,
                )
            }),
            ..FollowUpResult::attempt(DialAttemptOutcome::Answered, Some("c-check".into()), at)
        },
    );
    let recorded = store
        .record_follow_up(job.id, "node-a", &result, at)
        .await
        .unwrap();
    assert!(recorded.ended);
    assert_eq!(recorded.job.state, DialJobState::Done);
    assert_eq!(recorded.job.answer.as_deref(), Some("in-progress"));
    assert_eq!(
        recorded.moved.as_ref().map(|t| t.status),
        Some(TicketStatus::InProgress)
    );
    let next = recorded.next.expect("the next check");
    assert_eq!(next.due_at, at + Duration::hours(2));
    let detail = store.ticket(t).await.unwrap().unwrap();
    let last = detail.history.last().unwrap();
    assert_eq!(last.to, TicketStatus::InProgress);
    assert!(last.note.contains("ведутся"), "{}", last.note);
    // Writing the same attempt twice is refused: the job is no longer claimed.
    assert!(
        store
            .record_follow_up(job.id, "node-a", &result, at)
            .await
            .is_err()
    );

    // The ticket is closed before the next check: the check is cancelled.
    move_to(&store, t, TicketStatus::Done, at + Duration::minutes(30)).await;
    move_to(&store, t, TicketStatus::Closed, at + Duration::minutes(31)).await;
    let planned = p
        .plan(Some(&[t]), at + Duration::minutes(31))
        .await
        .unwrap();
    assert_eq!(planned.cancelled, vec![next.id]);
    assert!(claim(&store, at + Duration::hours(3)).await.is_empty());
}

async fn a_done_ticket_is_rated_once_and_a_resident_can_opt_out(store: Store) {
    let w = build(&store).await;
    let p = planner(&store);
    let t = ticket(&store, &w, morning()).await;
    move_to(&store, t, TicketStatus::Accepted, morning()).await;
    p.plan(Some(&[t]), morning()).await.unwrap();
    move_to(
        &store,
        t,
        TicketStatus::Done,
        morning() + Duration::hours(1),
    )
    .await;
    p.plan(Some(&[t]), morning() + Duration::hours(1))
        .await
        .unwrap();
    let surveys = jobs_of(&store, t, DialKind::Survey).await;
    assert_eq!(surveys.len(), 1);
    assert_eq!(surveys[0].target, "+79120000099");
    assert!(surveys[0].quiet_hours);
    assert_eq!(
        jobs_of(&store, t, DialKind::StatusCheck).await[0].state,
        DialJobState::Cancelled,
        "the check planned at acceptance is cancelled once the ticket is done"
    );
    let due = surveys[0].due_at;
    let claimed = claim(&store, due).await;
    let job = claimed.iter().find(|j| j.kind == DialKind::Survey).unwrap();
    let result = result_of(
        &Answer::Ratings {
            csi: Some(4),
            ces: Some(5),
            opt_out: true,
        },
        "житель",
        FollowUpResult::attempt(DialAttemptOutcome::Answered, Some("c-survey".into()), due),
    );
    store
        .record_follow_up(job.id, "node-a", &result, due)
        .await
        .unwrap();
    assert!(
        store
            .opted_out_of_surveys(&phone("+79120000099"))
            .await
            .unwrap()
    );
    // A second ticket of the same resident, done: no survey.
    let t2 = ticket(&store, &w, due).await;
    move_to(&store, t2, TicketStatus::Accepted, due).await;
    move_to(&store, t2, TicketStatus::Done, due + Duration::minutes(5)).await;
    p.plan(Some(&[t2]), due + Duration::minutes(5))
        .await
        .unwrap();
    assert!(jobs_of(&store, t2, DialKind::Survey).await.is_empty());
    // The ratings are the ticket's, and its executor's.
    let scores = store.survey_scores(t).await.unwrap();
    assert_eq!(scores, vec![(SurveyMetric::Csi, 4), (SurveyMetric::Ces, 5)]);
    let executor = store
        .ticket(t)
        .await
        .unwrap()
        .unwrap()
        .ticket
        .executor_id
        .expect("an executor");
    assert_eq!(store.executor_scores(executor).await.unwrap(), scores);
    // Out-of-range ratings are refused before anything is written.
    let bad = FollowUpResult {
        ratings: vec![(SurveyMetric::Csi, 7)],
        ..FollowUpResult::attempt(DialAttemptOutcome::Answered, None, due)
    };
    assert!(
        store
            .record_follow_up(job.id, "node-a", &bad, due)
            .await
            .is_err()
    );
}

async fn a_supplier_gets_the_ticket_then_is_asked_back(store: Store) {
    let w = build(&store).await;
    let p = planner(&store);
    let t = ticket(&store, &w, morning()).await;
    move_to(&store, t, TicketStatus::Accepted, morning()).await;
    let st = store
        .derive_supplier_ticket(t, "vodokanal", None, None, morning())
        .await
        .unwrap();
    p.plan(Some(&[t]), morning()).await.unwrap();
    let calls = jobs_of(&store, t, DialKind::SupplierHandoff).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].target, "+73432000901");
    assert_eq!(calls[0].supplier_ticket_id, Some(st));
    let job = claim(&store, morning())
        .await
        .into_iter()
        .find(|j| j.kind == DialKind::SupplierHandoff)
        .unwrap();
    let at = morning() + Duration::minutes(3);
    store
        .record_follow_up(
            job.id,
            "node-a",
            &FollowUpResult {
                answer: Some("talked".into()),
                note: Some("Передача в РСО: разговор состоялся".into()),
                supplier_recheck_at: Some(at + Duration::hours(4)),
                ..FollowUpResult::attempt(DialAttemptOutcome::Answered, Some("c-rso".into()), at)
            },
            at,
        )
        .await
        .unwrap();
    // The operator writes down the supplier's number and when to call back.
    let recheck = at + Duration::hours(1);
    store
        .update_supplier_ticket(
            st,
            &SupplierUpdate {
                status: None,
                supplier_number: Some("ВК-2211".into()),
                recheck_at: Some(recheck),
            },
            at,
        )
        .await
        .unwrap();
    let s = store.supplier_ticket(st).await.unwrap().unwrap();
    assert_eq!(s.status, SupplierStatus::HandedOver);
    p.plan(Some(&[t]), at).await.unwrap();
    let queries = jobs_of(&store, t, DialKind::SupplierQuery).await;
    assert_eq!(queries.len(), 1);
    assert_eq!(queries[0].due_at, recheck);
    // The time moves: the old query gives way to one at the new time.
    store
        .update_supplier_ticket(
            st,
            &SupplierUpdate {
                recheck_at: Some(recheck + Duration::hours(1)),
                ..Default::default()
            },
            at,
        )
        .await
        .unwrap();
    p.plan(Some(&[t]), at).await.unwrap();
    let queries = jobs_of(&store, t, DialKind::SupplierQuery).await;
    let open: Vec<_> = queries
        .iter()
        .filter(|j| j.state == DialJobState::Pending)
        .collect();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].due_at, recheck + Duration::hours(1));
    // Both tickets carry the call: the ticket's history and the hand-over.
    let detail = store.ticket(t).await.unwrap().unwrap();
    assert!(detail.history.iter().any(|h| h.note.contains("РСО")));
}

async fn a_broadcast_calls_each_number_once(store: Store) {
    let w = build(&store).await;
    let now = morning();
    // Three numbers over two houses; one of them is a contact of both.
    for (p, house) in [
        ("+79120000001", w.ekb_house),
        ("+79120000002", w.ekb_house),
        ("+79120000001", w.ekb_house2),
        ("+79120000003", w.ekb_house2),
    ] {
        store
            .learn_contact(&phone(p), "etalon", house, None, now)
            .await
            .unwrap();
    }
    let outage = store
        .create_outage(
            &NewOutage {
                tenant: "etalon".into(),
                kind: "hot_water".into(),
                text: "Отключение горячей воды".into(),
                starts_at: now,
                ends_at: now + Duration::hours(6),
                house_ids: vec![w.ekb_house, w.ekb_house2],
            },
            now,
        )
        .await
        .unwrap();
    let new = NewBroadcast {
        outage: outage.id,
        urgent: false,
        due_at: now,
        attempts: 2,
    };
    let progress = store.start_broadcast(&new, now).await.unwrap();
    assert_eq!((progress.total, progress.waiting), (3, 3));
    // Started again: nobody is called twice.
    let progress = store.start_broadcast(&new, now).await.unwrap();
    assert_eq!(progress.total, 3);
    let jobs = claim(&store, now).await;
    assert_eq!(jobs.len(), 3);
    assert!(
        jobs.iter()
            .all(|j| j.kind == DialKind::Broadcast && j.quiet_hours)
    );
    let outcomes = [
        DialAttemptOutcome::Answered,
        DialAttemptOutcome::Busy,
        DialAttemptOutcome::NoAnswer,
    ];
    for (job, outcome) in jobs.iter().zip(outcomes) {
        store
            .record_follow_up(
                job.id,
                "node-a",
                &FollowUpResult::attempt(outcome, None, now + Duration::minutes(10)),
                now,
            )
            .await
            .unwrap();
    }
    let p = store.broadcast_progress(outage.id).await.unwrap();
    assert_eq!(
        (
            p.total,
            p.called,
            p.answered,
            p.busy,
            p.no_answer,
            p.waiting
        ),
        (3, 3, 1, 1, 1, 2)
    );
    // The busy and silent numbers are tried once more, then given up.
    let again = claim(&store, now + Duration::minutes(10)).await;
    assert_eq!(again.len(), 2);
    for job in &again {
        store
            .record_follow_up(
                job.id,
                "node-a",
                &FollowUpResult::attempt(DialAttemptOutcome::Busy, None, now),
                now + Duration::minutes(10),
            )
            .await
            .unwrap();
    }
    let p = store.broadcast_progress(outage.id).await.unwrap();
    assert_eq!((p.failed, p.waiting, p.answered), (2, 0, 1));
    assert!(p.finished());
    // A postponed job is handed back without an attempt counted.
    let t = ticket(&store, &w, now).await;
    move_to(&store, t, TicketStatus::Accepted, now).await;
    planner(&store).plan(Some(&[t]), now).await.unwrap();
    let due = jobs_of(&store, t, DialKind::StatusCheck).await[0].due_at;
    let job = claim(&store, due).await.remove(0);
    assert!(
        store
            .postpone_dial_job(job.id, "node-a", due + Duration::hours(12), due)
            .await
            .unwrap()
    );
    let job = store.dial_job(job.id).await.unwrap().unwrap();
    assert_eq!(
        (job.state, job.attempts_made, job.due_at),
        (DialJobState::Pending, 0, due + Duration::hours(12))
    );
}

/// A callback nobody claims (no node has a free operator) still warns
/// supervisors when its deadline comes at risk: once, whichever nodes sweep.
async fn an_unclaimed_callback_at_risk_is_flagged_once(store: Store) {
    let created = morning();
    let mut callback = NewDialJob::new(
        DialKind::Callback,
        dispatchline::phone::PhoneNumber::parse("+79120000001").unwrap(),
        created,
        3,
    );
    callback.deadline_at = Some(created + Duration::minutes(10));
    let job = store.create_dial_job(&callback, created).await.unwrap();
    // Half the time to the deadline gone: not yet at risk at 75 %.
    let half = created + Duration::minutes(5);
    assert!(
        store
            .mark_unclaimed_at_risk(0.75, half)
            .await
            .unwrap()
            .is_empty()
    );
    let late = created + Duration::minutes(8);
    let flagged = store.mark_unclaimed_at_risk(0.75, late).await.unwrap();
    assert_eq!(flagged.len(), 1);
    assert_eq!(
        (flagged[0].job, flagged[0].kind),
        (job.id, DialKind::Callback)
    );
    // A second node sweeping finds nothing more to say.
    assert!(
        store
            .mark_unclaimed_at_risk(0.75, late)
            .await
            .unwrap()
            .is_empty()
    );
    let job = store.dial_job(job.id).await.unwrap().unwrap();
    assert_eq!(job.at_risk_at, Some(late));
}

on_both_backends!(
    an_unclaimed_callback_at_risk_is_flagged_once,
    status_checks_follow_a_ticket_until_it_is_done,
    a_done_ticket_is_rated_once_and_a_resident_can_opt_out,
    a_supplier_gets_the_ticket_then_is_asked_back,
    a_broadcast_calls_each_number_once,
);
