//! The journal's daily roll-up agrees with the raw rows, on SQLite and PostgreSQL:
//! analytics over every company (read from the roll-up, with the partial days at a
//! range's ends read raw) equal the same analytics computed from the raw rows, for
//! ranges on and off UTC midnight, before and after inserts and updates: a ticket
//! registered after midnight in Екатеринбург but before it in UTC, a status change,
//! a survey answer, a call answered late, a callback attempt, a citywide call no
//! company claimed. Only the days written are recomputed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/store_db.rs"]
mod store_db;
#[path = "common/store_world.rs"]
mod store_world;

use chrono::{DateTime, Duration, TimeZone, Utc};
use dispatchline::store::analytics::{AnalyticsQuery, Bucket};
use dispatchline::store::tickets::Channel;
use dispatchline::store::{
    AfterAttempt, CallDirection, CallRecord, DialAttemptOutcome, DialKind, Disposition, HouseId,
    NewDialJob, NewTicket, ReasonId, StatusUpdate, Store, SurveyMetric, TenantScope, Ticket,
    TicketStatus,
};
use serde_json::Value;
use store_world::{build, phone};

fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap()
}

async fn ticket(
    store: &Store,
    tenant: &str,
    house: HouseId,
    reason: ReasonId,
    when: DateTime<Utc>,
) -> Ticket {
    store
        .create_ticket(
            &NewTicket {
                tenant: tenant.into(),
                house_id: house,
                apartment: None,
                reason_id: reason,
                description: String::new(),
                source: Channel::Phone,
                labels: vec![],
                caller_phone: None,
                call_id: None,
                actor: "1001".into(),
            },
            when,
        )
        .await
        .unwrap()
        .ticket
}

async fn move_to(store: &Store, t: &Ticket, to: TicketStatus, after_s: i64) {
    store
        .change_status(
            t.id,
            &StatusUpdate {
                to,
                actor: "1001".into(),
                note: String::new(),
                expected_version: None,
            },
            t.created_at + Duration::seconds(after_s),
        )
        .await
        .unwrap();
}

fn call(
    id: &str,
    tenant: Option<&str>,
    offered: DateTime<Utc>,
    wait: i64,
    answered: bool,
) -> CallRecord {
    let mut c = CallRecord::offered(
        id,
        CallDirection::Inbound,
        "+79120000001",
        "+73432000001",
        offered,
    );
    c.tenant = tenant.map(str::to_owned);
    c.wait_seconds = Some(wait);
    c.answered_at = answered.then(|| offered + Duration::seconds(wait));
    c.ended_at = Some(offered + Duration::seconds(wait + 60));
    c.disposition = Some(if answered {
        Disposition::Answered
    } else {
        Disposition::Abandoned
    });
    c
}

/// The report as JSON with the averages rounded and the calls in one order (the
/// raw query sorts a call with no company first on SQLite, last on PostgreSQL).
fn normalised(a: &dispatchline::store::analytics::Analytics) -> Value {
    let mut v = serde_json::to_value(a).unwrap();
    fn round(v: &mut Value) {
        match v {
            Value::Number(n) if n.is_f64() => {
                let x = (n.as_f64().unwrap() * 1e9).round() / 1e9;
                *v = serde_json::json!(x);
            }
            Value::Array(items) => items.iter_mut().for_each(round),
            Value::Object(map) => map.values_mut().for_each(round),
            _ => {}
        }
    }
    round(&mut v);
    if let Some(Value::Array(calls)) = v.get_mut("calls") {
        calls.sort_by_key(|c| c.to_string());
    }
    v
}

async fn agree(store: &Store, what: &str) {
    let all = TenantScope::All;
    let two = TenantScope::Only(vec!["etalon".into(), "stolica".into()]);
    for (from, to) in [
        (at(15, 0, 0), at(22, 0, 0)),
        (at(16, 7, 15), at(19, 13, 40)),
        (at(17, 18, 0), at(18, 2, 0)),
        (at(17, 1, 0), at(17, 23, 0)),
    ] {
        for bucket in [Bucket::Day, Bucket::Week] {
            for (scope, city) in [(&all, None), (&two, None), (&all, Some("ekb"))] {
                let q = AnalyticsQuery {
                    from,
                    to,
                    bucket: Some(bucket),
                    tenant: None,
                    city: city.map(str::to_owned),
                };
                let rolled = store.analytics(scope, &q).await.unwrap();
                let raw = store.analytics_from_raw_rows(scope, &q).await.unwrap();
                assert_eq!(
                    normalised(&rolled),
                    normalised(&raw),
                    "{what}: {from}..{to} {bucket:?} {scope:?} {city:?}"
                );
            }
        }
    }
}

async fn rollup_agrees_with_the_raw_rows(store: Store) {
    let w = build(&store).await;
    let a = ticket(&store, "etalon", w.ekb_house, w.flooding, at(17, 10, 0)).await;
    let b = ticket(&store, "etalon", w.ekb_house2, w.intercom, at(16, 8, 0)).await;
    let c = ticket(&store, "stolica", w.msk_house, w.roof, at(18, 12, 0)).await;
    let d = ticket(&store, "etalon", w.ekb_house, w.flooding, at(18, 3, 0)).await;
    for (t, accept, done) in [
        (&a, 600, Some(3600)),
        (&b, 1200, Some(7200)),
        (&c, 2400, None),
        (&d, 900, Some(1000)),
    ] {
        move_to(&store, t, TicketStatus::Accepted, accept).await;
        if let Some(done) = done {
            move_to(&store, t, TicketStatus::Done, done).await;
        }
    }
    store
        .record_survey_answer(
            Some(a.id),
            None,
            SurveyMetric::Csi,
            5,
            a.created_at + Duration::hours(5),
        )
        .await
        .unwrap();
    store
        .upsert_calls(&[
            call("c1", Some("etalon"), at(17, 9, 0), 10, true),
            call("c2", Some("etalon"), at(16, 23, 59), 100, true),
            call("c3", Some("stolica"), at(18, 0, 1), 400, false),
            call("c4", None, at(17, 12, 0), 40, true),
        ])
        .await
        .unwrap();
    let built = store.refresh_journal_rollup().await.unwrap();
    assert!(built > 0, "the first refresh builds the written days");
    assert_eq!(
        store.refresh_journal_rollup().await.unwrap(),
        0,
        "nothing written, nothing recomputed"
    );
    agree(&store, "as seeded").await;

    // 00:30 on the 18th in Екатеринбург (UTC+5), still the 17th in UTC.
    let late = ticket(&store, "etalon", w.ekb_house, w.flooding, at(17, 19, 30)).await;
    move_to(&store, &late, TicketStatus::Accepted, 300).await;
    // A ticket of the 16th is completed now; a CES answer for the 18th's.
    move_to(&store, &c, TicketStatus::Done, 9000).await;
    store
        .record_survey_answer(
            Some(d.id),
            None,
            SurveyMetric::Ces,
            2,
            d.created_at + Duration::hours(2),
        )
        .await
        .unwrap();
    // A call answered after all, and a callback of an abandoned one.
    store
        .upsert_call(&call("c3", Some("stolica"), at(18, 0, 1), 250, true))
        .await
        .unwrap();
    store
        .upsert_call(&call("c5", Some("etalon"), at(18, 23, 58), 90, false))
        .await
        .unwrap();
    let mut job = NewDialJob::new(DialKind::Callback, phone("+79120000001"), at(19, 0, 3), 3);
    job.tenant = Some("etalon".into());
    job.call_id = Some("c5".into());
    let job = store.create_dial_job(&job, at(19, 0, 2)).await.unwrap();
    store
        .claim_dial_job(job.id, "n1", at(19, 0, 3), Duration::seconds(60))
        .await
        .unwrap()
        .unwrap();
    store
        .record_dial_attempt(
            job.id,
            "n1",
            DialAttemptOutcome::Answered,
            Some("cb-1"),
            AfterAttempt::Hold,
            at(19, 0, 4),
        )
        .await
        .unwrap();
    agree(&store, "after writes").await;

    // The late ticket counts on Екатеринбург's 18th, from the roll-up.
    let q = AnalyticsQuery {
        from: at(15, 0, 0),
        to: at(22, 0, 0),
        bucket: Some(Bucket::Day),
        tenant: None,
        city: Some("ekb".into()),
    };
    let s = store.analytics(&TenantScope::All, &q).await.unwrap();
    let on_18th: i64 = s
        .tickets
        .iter()
        .filter(|t| t.bucket == "2026-11-18")
        .map(|t| t.tickets)
        .sum();
    assert_eq!(on_18th, 2, "ticket d (08:00 local) and the late one");
    let etalon = s
        .calls
        .iter()
        .find(|c| c.tenant.as_deref() == Some("etalon"))
        .unwrap();
    assert_eq!(
        (
            etalon.calls,
            etalon.callbacks_due,
            etalon.callbacks_within_10min
        ),
        (3, 1, 1)
    );
}

on_both_backends!(rollup_agrees_with_the_raw_rows);
