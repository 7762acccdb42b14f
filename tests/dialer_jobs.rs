//! The dialer's side of the store, on SQLite and PostgreSQL: a call's callbacks are
//! cancelled however many other jobs there are, jobs remember the number their call
//! dialled, a node keeps the jobs it holds (lease renewal) or hands them back, and an
//! answered callback is done in the same transaction as its attempt.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/store_db.rs"]
mod store_db;

use chrono::{Duration, Utc};
use dispatchline::dialer;
use dispatchline::phone::PhoneNumber;
use dispatchline::store::{DialJobState, DialKind, NewDialJob, Store};

fn callback(call: &str, target: &str) -> NewDialJob {
    NewDialJob {
        kind: DialKind::Callback,
        tenant: None,
        target: PhoneNumber::parse(target).unwrap(),
        due_at: Utc::now() - Duration::seconds(1),
        max_attempts: 3,
        ticket_id: None,
        call_id: Some(call.to_owned()),
        deadline_at: None,
        quiet_hours: false,
        reach: None,
        outage_id: None,
        supplier_ticket_id: None,
    }
}

async fn a_calls_callbacks_are_cancelled_past_the_first_page(store: Store) {
    let now = Utc::now();
    // More than a page (50) of other calls' callbacks, created after ours, so a
    // listing newest first never reaches it.
    let ours = store
        .create_dial_job(&callback("c-ours", "+79120000001"), now)
        .await
        .unwrap();
    let staff = NewDialJob {
        kind: DialKind::StaffCallback,
        ..callback("c-ours", "+79120000001")
    };
    let staff = store.create_dial_job(&staff, now).await.unwrap();
    for i in 0..60 {
        store
            .create_dial_job(
                &callback(&format!("c-{i}"), &format!("+791200001{i:02}")),
                now + Duration::seconds(1),
            )
            .await
            .unwrap();
    }
    dialer::cancel_callbacks_of(&store, "c-ours", now)
        .await
        .unwrap();
    let ours = store.dial_job(ours.id).await.unwrap().unwrap();
    assert_eq!(ours.state, DialJobState::Cancelled);
    assert_eq!(ours.outcome.as_deref(), Some("answered-before"));
    let staff = store.dial_job(staff.id).await.unwrap().unwrap();
    assert_eq!(
        staff.state,
        DialJobState::Pending,
        "only resident callbacks"
    );
    let others = store
        .dial_jobs(
            &dispatchline::store::TenantScope::All,
            &dispatchline::store::DialJobFilter {
                state: Some(DialJobState::Pending),
                limit: Some(500),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(others.total, 61);
}

async fn jobs_remember_the_number_dialled_and_leases_are_renewed_or_handed_back(store: Store) {
    let now = Utc::now();
    let origin = PhoneNumber::parse("+73432000100").unwrap();
    let job = store
        .create_dial_job_from(&callback("c-1", "+79120000001"), Some(&origin), now)
        .await
        .unwrap();
    assert_eq!(job.origin_number.as_deref(), Some("+73432000100"));
    let plain = store
        .create_dial_job(&callback("c-2", "+79120000002"), now)
        .await
        .unwrap();
    assert_eq!(plain.origin_number, None);

    let claimed = dialer::claim(&store, "node-a", now, 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(claimed[0].origin_number.as_deref(), Some("+73432000100"));
    let ids: Vec<_> = claimed.iter().map(|j| j.id).collect();
    // Held past the lease: renewed, so nobody claims them again.
    let later = now + chrono::Duration::from_std(dialer::LEASE).unwrap() - Duration::seconds(10);
    dialer::renew(&store, "node-a", &ids, later).await.unwrap();
    let after_lease =
        now + chrono::Duration::from_std(dialer::LEASE).unwrap() + Duration::seconds(10);
    assert!(
        dialer::claim(&store, "node-b", after_lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "renewed leases keep the jobs node-a's"
    );
    // Another node cannot renew what it does not hold.
    assert_eq!(
        store
            .renew_dial_job_leases("node-b", &ids, after_lease, after_lease)
            .await
            .unwrap(),
        0
    );
    // Handed back on shutdown: due at once for anyone.
    dialer::release(&store, "node-a", &ids, after_lease)
        .await
        .unwrap();
    let taken = dialer::claim(&store, "node-b", after_lease, 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 2);
    assert!(
        taken
            .iter()
            .all(|j| j.claimed_by.as_deref() == Some("node-b"))
    );
}

/// An answered callback is written in one transaction with its attempt: the job
/// is done at once and never due again, whatever happens to the node next.
async fn an_answered_callback_is_done_with_its_attempt(store: Store) {
    let now = Utc::now();
    let job = store
        .create_dial_job(&callback("c-answered", "+79120000003"), now)
        .await
        .unwrap();
    let claimed = dialer::claim(&store, "node-a", now, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    dialer::record(
        &store,
        "node-a",
        job.id,
        dispatchline::store::DialAttemptOutcome::Answered,
        Some("c-cb"),
        std::time::Duration::ZERO,
        now,
    )
    .await
    .unwrap();
    let done = store.dial_job(job.id).await.unwrap().unwrap();
    assert_eq!(done.state, DialJobState::Done);
    assert_eq!((done.attempts_made, done.claimed_by), (1, None));
    assert_eq!(done.outcome.as_deref(), Some("answered"));
    // Long after any lease, nobody claims it again.
    let much_later = now + Duration::hours(2);
    assert!(
        dialer::claim(&store, "node-b", much_later, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

on_both_backends!(
    a_calls_callbacks_are_cancelled_past_the_first_page,
    jobs_remember_the_number_dialled_and_leases_are_renewed_or_handed_back,
    an_answered_callback_is_done_with_its_attempt,
);
