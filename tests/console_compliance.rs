//! The board's compliance figures from the journal and the callback dial jobs, on
//! SQLite and PostgreSQL: answered within 30 s and 5 min, callbacks within 10 min,
//! by local hour, scoped by tenant, in the city's time zone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/store_db.rs"]
mod store_db;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use dispatchline::phone::PhoneNumber;
use dispatchline::store::dial_jobs::AfterAttempt;
use dispatchline::store::{
    CallDirection, CallRecord, DialAttemptOutcome, DialKind, Disposition, NewDialJob, Store,
    TenantScope,
};

/// 2025-03-10 at `h:m:s` in Yekaterinburg (UTC+5).
fn local(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Yekaterinburg
        .with_ymd_and_hms(2025, 3, 10, h, m, s)
        .unwrap()
        .with_timezone(&Utc)
}

async fn call(
    store: &Store,
    id: &str,
    tenant: &str,
    offered: DateTime<Utc>,
    answered_after: Option<i64>,
    ended_after: i64,
    disposition: Disposition,
) {
    let mut c = CallRecord::offered(
        id,
        CallDirection::Inbound,
        "+79120000001",
        "+73432000001",
        offered,
    );
    c.tenant = Some(tenant.into());
    c.answered_at = answered_after.map(|s| offered + Duration::seconds(s));
    c.wait_seconds = Some(answered_after.unwrap_or(ended_after));
    c.ended_at = Some(offered + Duration::seconds(ended_after));
    c.disposition = Some(disposition);
    store.upsert_call(&c).await.unwrap();
}

/// A staff member's call to the dispatch line: refused at once and called back
/// (a staff callback, with its own target, not the residents' 10 minutes).
async fn staff_call(store: &Store, id: &str, tenant: &str, offered: DateTime<Utc>) {
    let mut c = CallRecord::offered(
        id,
        CallDirection::Inbound,
        "+79120000077",
        "+73432000099",
        offered,
    );
    c.tenant = Some(tenant.into());
    c.number_kind = Some("dispatch".into());
    c.wait_seconds = Some(0);
    c.ended_at = Some(offered);
    c.disposition = Some(Disposition::CallbackScheduled);
    store.upsert_call(&c).await.unwrap();
}

async fn callback(store: &Store, call_id: &str, first_attempt: Option<DateTime<Utc>>) {
    callback_ending(store, call_id, first_attempt, DialAttemptOutcome::Answered).await;
}

/// A callback job for `call_id` whose first attempt (if any) ended with `outcome`.
async fn callback_ending(
    store: &Store,
    call_id: &str,
    first_attempt: Option<DateTime<Utc>>,
    outcome: DialAttemptOutcome,
) {
    let due = first_attempt.unwrap_or_else(|| local(0, 0, 0));
    let job = store
        .create_dial_job(
            &NewDialJob {
                kind: DialKind::Callback,
                tenant: Some("etalon".into()),
                target: PhoneNumber::parse("+79120000001").unwrap(),
                due_at: due,
                max_attempts: 3,
                ticket_id: None,
                call_id: Some(call_id.into()),
                deadline_at: None,
                quiet_hours: false,
                reach: None,
                outage_id: None,
                supplier_ticket_id: None,
            },
            due - Duration::minutes(1),
        )
        .await
        .unwrap();
    if let Some(at) = first_attempt {
        store
            .claim_dial_job(job.id, "node-a", at, Duration::minutes(2))
            .await
            .unwrap()
            .expect("claimed");
        store
            .record_dial_attempt(job.id, "node-a", outcome, None, AfterAttempt::Hold, at)
            .await
            .unwrap();
    }
}

async fn the_day_is_tallied_from_the_journal_and_the_callbacks(store: Store) {
    dispatchline::store::demo::seed_at(&store, local(0, 0, 0))
        .await
        .unwrap();
    use Disposition::*;
    // 09:xx: one fast, one within 5 min, one late, one quick hang-up.
    call(
        &store,
        "a",
        "etalon",
        local(9, 0, 0),
        Some(12),
        200,
        Answered,
    )
    .await;
    call(
        &store,
        "b",
        "etalon",
        local(9, 10, 0),
        Some(95),
        300,
        Answered,
    )
    .await;
    call(
        &store,
        "c",
        "etalon",
        local(9, 20, 0),
        Some(420),
        600,
        Answered,
    )
    .await;
    call(&store, "d", "etalon", local(9, 30, 0), None, 8, Abandoned).await;
    // 14:xx: two long waits given up, called back in time and too late; a staff
    // member's call (not counted); another tenant's fast call.
    call(
        &store,
        "e",
        "etalon",
        local(14, 0, 0),
        None,
        330,
        CallbackScheduled,
    )
    .await;
    callback(&store, "e", Some(local(14, 7, 0))).await;
    call(
        &store,
        "f",
        "etalon",
        local(14, 5, 0),
        None,
        310,
        CallbackScheduled,
    )
    .await;
    callback(&store, "f", Some(local(14, 16, 0))).await;
    staff_call(&store, "g", "etalon", local(14, 6, 0)).await;
    // 15:00: called back in time, but nobody answered: not called back yet.
    call(
        &store,
        "i",
        "etalon",
        local(15, 0, 0),
        None,
        20,
        CallbackScheduled,
    )
    .await;
    callback_ending(
        &store,
        "i",
        Some(local(15, 3, 0)),
        DialAttemptOutcome::NoAnswer,
    )
    .await;
    call(&store, "h", "uyut", local(14, 30, 0), Some(5), 60, Answered).await;
    // The day before and the day after (local) are not today.
    call(
        &store,
        "y",
        "etalon",
        local(0, 0, 0) - Duration::seconds(1),
        Some(1),
        9,
        Answered,
    )
    .await;
    call(
        &store,
        "z",
        "etalon",
        local(23, 59, 59) + Duration::seconds(1),
        Some(1),
        9,
        Answered,
    )
    .await;

    let date = NaiveDate::from_ymd_opt(2025, 3, 10).unwrap();
    let now = local(23, 0, 0);
    let all = store
        .compliance_day(&TenantScope::All, "ekb", Some(date), now)
        .await
        .unwrap();
    assert_eq!(all.from, local(0, 0, 0));
    assert_eq!(all.time_zone.name(), "Asia/Yekaterinburg");
    // 30 s: a, h met; b, c, e, f missed; d (8 s) not counted.
    assert_eq!((all.answered_30s.met, all.answered_30s.total), (2, 6));
    // 5 min: a, b, h met; c, e, f missed.
    assert_eq!((all.answered_5m.met, all.answered_5m.total), (3, 6));
    assert_eq!(all.answered_5m.share, Some(0.5));
    assert_eq!((all.callbacks_10m.met, all.callbacks_10m.total), (1, 3));
    let nine = all.hourly[9];
    assert_eq!(
        (
            nine.offered,
            nine.answered_30s,
            nine.answered_5m,
            nine.missed_5m
        ),
        (4, 1, 2, 1)
    );
    let two = all.hourly[14];
    assert_eq!(
        (two.offered, two.callbacks_due, two.callbacks_in_time),
        (3, 2, 1)
    );
    assert_eq!(all.hourly.iter().map(|h| h.offered).sum::<i64>(), 8);

    // A supervisor of uyut sees uyut's call only.
    let uyut = store
        .compliance_day(
            &TenantScope::Only(vec!["uyut".into()]),
            "ekb",
            Some(date),
            now,
        )
        .await
        .unwrap();
    assert_eq!((uyut.answered_30s.met, uyut.answered_30s.total), (1, 1));
    assert_eq!(uyut.callbacks_10m.share, None);

    // A callback still pending: not counted until its 10 minutes are over.
    call(
        &store,
        "p",
        "etalon",
        local(22, 55, 0),
        None,
        310,
        CallbackScheduled,
    )
    .await;
    callback(&store, "p", None).await;
    let early = store
        .compliance_day(&TenantScope::All, "ekb", Some(date), local(23, 4, 0))
        .await
        .unwrap();
    assert_eq!(early.callbacks_10m.total, 3);
    let late = store
        .compliance_day(&TenantScope::All, "ekb", Some(date), local(23, 6, 0))
        .await
        .unwrap();
    assert_eq!((late.callbacks_10m.met, late.callbacks_10m.total), (1, 4));

    // An unknown city is reported as such.
    assert!(
        store
            .compliance_day(&TenantScope::All, "msk", Some(date), now)
            .await
            .is_err()
    );
}

on_both_backends!(the_day_is_tallied_from_the_journal_and_the_callbacks);
