//! The call journal, recordings and dial jobs (claims across engine nodes), on SQLite
//! and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/store_db.rs"]
mod store_db;
#[path = "common/store_world.rs"]
mod store_world;

use std::collections::HashSet;

use chrono::Duration;
use dispatchline::store::dial_jobs::AfterAttempt;
use dispatchline::store::directory::TenantScope;
use dispatchline::store::journal::SurveyMetric;
use dispatchline::store::{
    CallDirection, CallFilter, CallRecord, DialAttemptOutcome, DialJobFilter, DialJobState,
    DialKind, Disposition, NewDialJob, Store, StoreError,
};
use store_world::{build, phone, tuesday_utc};

async fn journal_upserts_are_idempotent_and_keep_fields(store: Store) {
    build(&store).await;
    let t0 = tuesday_utc(5, 0);
    let mut call = CallRecord::offered(
        "c-1",
        CallDirection::Inbound,
        "+79120000001",
        "+73432000001",
        t0,
    );
    call.tenant = Some("etalon".into());
    call.number_kind = Some("tenant".into());
    store.upsert_call(&call).await.unwrap();
    store.upsert_call(&call).await.unwrap();
    // A later write that only knows the answer does not erase the tenant.
    let mut answered = CallRecord::offered(
        "c-1",
        CallDirection::Inbound,
        "+79120000001",
        "+73432000001",
        t0,
    );
    answered.answered_at = Some(t0 + Duration::seconds(20));
    answered.wait_seconds = Some(20);
    answered.operator_extension = Some("1001".into());
    store.upsert_call(&answered).await.unwrap();
    let mut ended = answered.clone();
    ended.ended_at = Some(t0 + Duration::seconds(140));
    ended.talk_seconds = Some(120);
    ended.disposition = Some(Disposition::Answered);
    store.upsert_call(&ended).await.unwrap();
    let stored = store.get_call("c-1").await.unwrap().unwrap();
    assert_eq!(stored.tenant.as_deref(), Some("etalon"));
    assert_eq!(stored.number_kind.as_deref(), Some("tenant"));
    assert_eq!(
        (stored.wait_seconds, stored.talk_seconds),
        (Some(20), Some(120))
    );
    assert_eq!(stored.disposition, Some(Disposition::Answered));

    let recording = store
        .insert_recording("c-1", "2026/11/17/c-1.wav", 120_000, 1_920_044)
        .await
        .unwrap();
    let stored = store.get_call("c-1").await.unwrap().unwrap();
    assert_eq!(stored.recording_id, Some(recording));
    let r = store.recording(recording).await.unwrap().unwrap();
    assert_eq!(
        (r.call_id.as_str(), r.duration_ms, r.tenant.as_deref()),
        ("c-1", 120_000, Some("etalon"))
    );

    let mut busy = CallRecord::offered(
        "c-2",
        CallDirection::Outbound,
        "+73432000001",
        "+79121000001",
        t0 + Duration::minutes(1),
    );
    busy.tenant = Some("stolica".into());
    busy.disposition = Some(Disposition::Busy);
    store.upsert_call(&busy).await.unwrap();
    let unknown = CallRecord {
        tenant: Some("nobody".into()),
        ..busy.clone()
    };
    assert!(matches!(
        store.upsert_call(&unknown).await,
        Err(StoreError::Invalid {
            field: "tenant",
            ..
        })
    ));
    let bad_rating = CallRecord {
        rating: Some(9),
        ..busy.clone()
    };
    assert!(store.upsert_call(&bad_rating).await.is_err());

    store
        .record_survey_answer(None, Some("c-1"), SurveyMetric::Csi, 5, t0)
        .await
        .unwrap();
    assert!(matches!(
        store
            .record_survey_answer(None, Some("c-1"), SurveyMetric::Csi, 6, t0)
            .await,
        Err(StoreError::Invalid { field: "score", .. })
    ));
    store
        .record_survey_answer(None, Some("c-1"), SurveyMetric::Nps, 0, t0)
        .await
        .unwrap();

    let all = store
        .calls(&TenantScope::All, &CallFilter::default())
        .await
        .unwrap();
    assert_eq!(
        all.items.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["c-2", "c-1"]
    );
    let etalon = store
        .calls(
            &TenantScope::Only(vec!["etalon".into()]),
            &CallFilter::default(),
        )
        .await
        .unwrap();
    assert_eq!(etalon.total, 1);
    let filter = CallFilter {
        disposition: Some(Disposition::Busy),
        ..Default::default()
    };
    assert_eq!(
        store.calls(&TenantScope::All, &filter).await.unwrap().items[0].id,
        "c-2"
    );
}

fn job(due_in_minutes: i64) -> NewDialJob {
    NewDialJob {
        kind: DialKind::Callback,
        tenant: Some("etalon".into()),
        target: phone("+79120000001"),
        due_at: tuesday_utc(5, 0) + Duration::minutes(due_in_minutes),
        max_attempts: 3,
        ticket_id: None,
        call_id: Some("c-1".into()),
        deadline_at: None,
        quiet_hours: false,
        reach: None,
        outage_id: None,
        supplier_ticket_id: None,
    }
}

async fn dial_jobs_survive_and_are_claimed_once(store: Store) {
    build(&store).await;
    let now = tuesday_utc(5, 0);
    let a = store.create_dial_job(&job(0), now).await.unwrap();
    let later = store.create_dial_job(&job(10), now).await.unwrap();
    let due = store.due_dial_jobs(now, 10).await.unwrap();
    assert_eq!(due.iter().map(|j| j.id).collect::<Vec<_>>(), vec![a.id]);
    // Two nodes race for the same job: one gets it.
    let (x, y) = tokio::join!(
        store.claim_dial_job(a.id, "node-a", now, Duration::seconds(60)),
        store.claim_dial_job(a.id, "node-b", now, Duration::seconds(60)),
    );
    let winners: Vec<_> = [x.unwrap(), y.unwrap()].into_iter().flatten().collect();
    assert_eq!(winners.len(), 1);
    let holder = winners[0].claimed_by.clone().unwrap();
    let other = if holder == "node-a" {
        "node-b"
    } else {
        "node-a"
    };
    assert!(store.due_dial_jobs(now, 10).await.unwrap().is_empty());
    // Only the holder may record attempts.
    let refused = store
        .record_dial_attempt(
            a.id,
            other,
            DialAttemptOutcome::Busy,
            None,
            AfterAttempt::Hold,
            now,
        )
        .await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))));
    let retry_at = now + Duration::minutes(2);
    let after = store
        .record_dial_attempt(
            a.id,
            &holder,
            DialAttemptOutcome::Busy,
            Some("o-1"),
            AfterAttempt::RetryAt(retry_at),
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        (after.state, after.attempts_made, after.due_at),
        (DialJobState::Pending, 1, retry_at)
    );
    assert_eq!(after.outcome.as_deref(), Some("busy"));
    // The holder dies mid-call: after its lease the job is due again for another node.
    let t = retry_at;
    let claimed = store
        .claim_dial_job(a.id, "node-a", t, Duration::seconds(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.claimed_by.as_deref(), Some("node-a"));
    assert!(
        store
            .claim_dial_job(
                a.id,
                "node-b",
                t + Duration::seconds(10),
                Duration::seconds(30)
            )
            .await
            .unwrap()
            .is_none()
    );
    let stolen = store
        .claim_dial_job(
            a.id,
            "node-b",
            t + Duration::seconds(31),
            Duration::seconds(30),
        )
        .await
        .unwrap();
    assert_eq!(stolen.unwrap().claimed_by.as_deref(), Some("node-b"));
    let t = t + Duration::seconds(40);
    let after = store
        .record_dial_attempt(
            a.id,
            "node-b",
            DialAttemptOutcome::NoAnswer,
            None,
            AfterAttempt::RetryAt(t),
            t,
        )
        .await
        .unwrap();
    assert_eq!(after.attempts_made, 2);
    store
        .claim_dial_job(a.id, "node-b", t, Duration::seconds(30))
        .await
        .unwrap()
        .unwrap();
    // The third and last attempt: the budget is spent and the job fails.
    let after = store
        .record_dial_attempt(
            a.id,
            "node-b",
            DialAttemptOutcome::Unreachable,
            None,
            AfterAttempt::RetryAt(t),
            t,
        )
        .await
        .unwrap();
    assert_eq!(
        (after.state, after.outcome.as_deref()),
        (DialJobState::Failed, Some("unreachable"))
    );
    // Completing and listing.
    let done = store
        .complete_dial_job(later.id, DialJobState::Cancelled, "ticket accepted", now)
        .await
        .unwrap();
    assert_eq!(done.state, DialJobState::Cancelled);
    assert!(matches!(
        store
            .complete_dial_job(later.id, DialJobState::Done, "x", now)
            .await,
        Err(StoreError::Conflict(_))
    ));
    let page = store
        .dial_jobs(&TenantScope::All, &DialJobFilter::default())
        .await
        .unwrap();
    assert_eq!(page.total, 2);
    let stolica = store
        .dial_jobs(
            &TenantScope::Only(vec!["stolica".into()]),
            &DialJobFilter::default(),
        )
        .await
        .unwrap();
    assert_eq!(stolica.total, 0);
}

async fn nodes_polling_together_split_the_work(store: Store) {
    build(&store).await;
    let now = tuesday_utc(5, 0);
    for i in 0..40 {
        store.create_dial_job(&job(-i), now).await.unwrap();
    }
    let mut tasks = Vec::new();
    for node in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store
                    .claim_due_dial_jobs(&format!("node-{node}"), now, Duration::seconds(60), 3)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    break mine;
                }
                mine.extend(batch.into_iter().map(|j| j.id));
            }
        }));
    }
    let mut seen = HashSet::new();
    for task in tasks {
        for id in task.await.unwrap() {
            assert!(seen.insert(id), "job {id} claimed twice");
        }
    }
    assert_eq!(seen.len(), 40);
}

/// What the engine's journal writer retries on: a write lock another connection
/// holds (a big import, say) is reported busy, on both dialects; a plain error is
/// not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_sqlite_write_lock_is_reported_busy() {
    use sqlx::Connection as _;
    use std::str::FromStr as _;
    let db = store_db::TestDb::sqlite().await;
    let mut holder = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .unwrap();
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(&db.url)
        .unwrap()
        .busy_timeout(std::time::Duration::ZERO);
    let mut writer = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    let locked = sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut writer)
        .await
        .unwrap_err();
    let locked = StoreError::from(locked);
    assert!(locked.is_busy(), "{locked}");
    let wrong = sqlx::query("SELECT nothing FROM nowhere")
        .execute(&mut writer)
        .await
        .unwrap_err();
    assert!(!StoreError::from(wrong).is_busy());
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_postgres_lock_is_reported_busy() {
    use sqlx::Connection as _;
    let Some(db) = store_db::TestDb::postgres().await else {
        return;
    };
    let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("LOCK TABLE calls IN ACCESS EXCLUSIVE MODE")
        .execute(&mut holder)
        .await
        .unwrap();
    let mut writer = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("SET lock_timeout = '20ms'")
        .execute(&mut writer)
        .await
        .unwrap();
    let locked = sqlx::query("DELETE FROM calls")
        .execute(&mut writer)
        .await
        .unwrap_err();
    let locked = StoreError::from(locked);
    assert!(locked.is_busy(), "{locked}");
    let wrong = sqlx::query("SELECT nothing FROM nowhere")
        .execute(&mut writer)
        .await
        .unwrap_err();
    assert!(!StoreError::from(wrong).is_busy());
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
}

on_both_backends!(
    journal_upserts_are_idempotent_and_keep_fields,
    dial_jobs_survive_and_are_claimed_once,
    nodes_polling_together_split_the_work,
);
