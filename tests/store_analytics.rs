//! Summary analytics in the store, on SQLite and PostgreSQL, against figures
//! computed by hand on a seeded week: tickets by local day, week and month (a
//! ticket registered after midnight in Екатеринбург but before it in Москва lands on
//! each city's own local day), time to accept and to complete (nearest-rank median
//! and 90th percentile), calls against Rules №416 per tenant and city, CSI and CES
//! averages, and the per-executor ratings table; tenant scope.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/store_db.rs"]
mod store_db;
#[path = "common/store_world.rs"]
mod store_world;

use chrono::{DateTime, Duration, TimeZone, Utc};
use dispatchline::store::analytics::{AnalyticsQuery, Bucket, DrillFilter, Percentiles};
use dispatchline::store::tickets::Channel;
use dispatchline::store::{
    AfterAttempt, CallDirection, CallRecord, DialAttemptOutcome, DialKind, Disposition, HouseId,
    NewDialJob, NewTicket, ReasonId, StatusUpdate, Store, SurveyMetric, TenantScope, Ticket,
    TicketStatus,
};
use store_world::{World, build, phone};

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

async fn rate(store: &Store, t: &Ticket, metric: SurveyMetric, score: i64) {
    store
        .record_survey_answer(
            Some(t.id),
            None,
            metric,
            score,
            t.created_at + Duration::hours(5),
        )
        .await
        .unwrap();
}

struct Seeded {
    w: World,
    d: Ticket,
}

async fn seed(store: &Store) -> Seeded {
    let w = build(store).await;
    let a = ticket(store, "etalon", w.ekb_house, w.flooding, at(17, 10, 0)).await;
    // 00:30 on the 18th in Екатеринбург (UTC+5).
    let b = ticket(store, "etalon", w.ekb_house, w.flooding, at(17, 19, 30)).await;
    let c = ticket(store, "etalon", w.ekb_house2, w.intercom, at(17, 5, 0)).await;
    // 23:30 on the 17th in Москва (UTC+3).
    let d = ticket(store, "stolica", w.msk_house, w.roof, at(17, 20, 30)).await;
    let e = ticket(store, "etalon", w.ekb_house2, w.flooding, at(17, 11, 0)).await;
    for (t, accept, done) in [
        (&a, 600, Some(3600)),
        (&b, 1200, Some(7200)),
        (&c, 1800, None),
        (&d, 2400, Some(14400)),
        (&e, 300, Some(1800)),
    ] {
        move_to(store, t, TicketStatus::Accepted, accept).await;
        if let Some(done) = done {
            move_to(store, t, TicketStatus::Done, done).await;
        }
    }
    rate(store, &a, SurveyMetric::Csi, 5).await;
    rate(store, &b, SurveyMetric::Csi, 2).await;
    rate(store, &d, SurveyMetric::Ces, 4).await;
    rate(store, &e, SurveyMetric::Csi, 4).await;
    rate(store, &e, SurveyMetric::Ces, 3).await;
    assert_eq!(a.executor_id, Some(w.day));
    assert_eq!(b.executor_id, Some(w.night));

    // Calls of the line.
    let call = |id: &str,
                tenant: &str,
                offered: DateTime<Utc>,
                wait: i64,
                answered: bool,
                disposition: Disposition| {
        let mut c = CallRecord::offered(
            id,
            CallDirection::Inbound,
            "+79120000001",
            "+73432000001",
            offered,
        );
        c.tenant = Some(tenant.into());
        c.wait_seconds = Some(wait);
        c.answered_at = answered.then(|| offered + Duration::seconds(wait));
        c.ended_at = Some(offered + Duration::seconds(wait + 60));
        c.disposition = Some(disposition);
        c
    };
    let calls = vec![
        call(
            "c1",
            "etalon",
            at(17, 9, 0),
            10,
            true,
            Disposition::Answered,
        ),
        call(
            "c2",
            "etalon",
            at(17, 9, 10),
            100,
            true,
            Disposition::Answered,
        ),
        call(
            "c3",
            "etalon",
            at(17, 9, 20),
            20,
            false,
            Disposition::Abandoned,
        ),
        call(
            "c4",
            "etalon",
            at(17, 9, 30),
            400,
            false,
            Disposition::Abandoned,
        ),
        call(
            "c5",
            "etalon",
            at(17, 9, 40),
            60,
            false,
            Disposition::CallbackScheduled,
        ),
        call(
            "c6",
            "etalon",
            at(17, 9, 50),
            5,
            false,
            Disposition::Rejected,
        ),
        call(
            "m1",
            "stolica",
            at(17, 9, 0),
            40,
            true,
            Disposition::Answered,
        ),
    ];
    store.upsert_calls(&calls).await.unwrap();
    let mut out = CallRecord::offered(
        "o1",
        CallDirection::Outbound,
        "+73432000001",
        "+79120000001",
        at(17, 9, 0),
    );
    out.tenant = Some("etalon".into());
    store.upsert_call(&out).await.unwrap();
    let mut job = NewDialJob::new(DialKind::Callback, phone("+79120000001"), at(17, 9, 37), 3);
    job.tenant = Some("etalon".into());
    job.call_id = Some("c4".into());
    let job = store.create_dial_job(&job, at(17, 9, 37)).await.unwrap();
    store
        .claim_dial_job(job.id, "n1", at(17, 9, 38), Duration::seconds(60))
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
            at(17, 9, 38),
        )
        .await
        .unwrap();
    Seeded { w, d }
}

fn week(bucket: Bucket) -> AnalyticsQuery {
    AnalyticsQuery {
        from: at(16, 0, 0),
        to: at(23, 0, 0),
        bucket: Some(bucket),
        tenant: None,
        city: None,
    }
}

fn p(key: &str, count: i64, median: i64, p90: i64) -> Percentiles {
    Percentiles {
        key: key.into(),
        count,
        median_s: Some(median),
        p90_s: Some(p90),
    }
}

async fn figures_match_the_hand_count(store: Store) {
    let Seeded { w, d } = seed(&store).await;
    let all = TenantScope::All;
    let s = store.analytics(&all, &week(Bucket::Day)).await.unwrap();
    let counts: Vec<(&str, &str, &str, i64)> = s
        .tickets
        .iter()
        .map(|c| {
            (
                c.bucket.as_str(),
                c.category.as_str(),
                c.work_type.as_str(),
                c.tickets,
            )
        })
        .collect();
    assert_eq!(
        counts,
        vec![
            ("2026-11-17", "emergency", "plumbing", 2),
            ("2026-11-17", "emergency", "roof", 1),
            ("2026-11-17", "planned", "intercom", 1),
            ("2026-11-18", "emergency", "plumbing", 1),
        ]
    );
    assert_eq!(
        s.time_to_accept,
        vec![
            p("all", 5, 1200, 2400),
            p("emergency", 4, 600, 2400),
            p("planned", 1, 1800, 1800)
        ]
    );
    assert_eq!(
        s.time_to_complete,
        vec![p("all", 4, 3600, 14400), p("emergency", 4, 3600, 14400)]
    );
    let ratings: Vec<(&str, i64, i64)> = s
        .ratings
        .iter()
        .map(|r| {
            (
                r.metric.as_str(),
                r.answers,
                (r.average.unwrap() * 1000.0).round() as i64,
            )
        })
        .collect();
    assert_eq!(ratings, vec![("ces", 2, 3500), ("csi", 3, 3667)]);
    let night = &s.executors[0];
    assert_eq!(night.executor_id, w.night, "worst average first");
    assert_eq!(
        (
            night.scores,
            night.average,
            night.completed,
            night.rated,
            night.share_rated
        ),
        ([0, 1, 0, 0, 0], Some(2.0), 1, 1, Some(1.0))
    );
    let day = s.executors.iter().find(|e| e.executor_id == w.day).unwrap();
    assert_eq!(
        (day.scores, day.average, day.completed, day.rated),
        ([0, 0, 0, 1, 1], Some(4.5), 2, 2)
    );
    if let Some(ex) = d.executor_id {
        let dx = s.executors.iter().find(|e| e.executor_id == ex).unwrap();
        assert_eq!((dx.completed, dx.rated, dx.share_rated), (1, 0, Some(0.0)));
    }
    let calls: Vec<(Option<&str>, Option<&str>, [i64; 8])> = s
        .calls
        .iter()
        .map(|c| {
            (
                c.tenant.as_deref(),
                c.city.as_deref(),
                [
                    c.calls,
                    c.answered,
                    c.within_30s_of,
                    c.within_30s,
                    c.within_5min_of,
                    c.within_5min,
                    c.callbacks_due,
                    c.callbacks_within_10min,
                ],
            )
        })
        .collect();
    assert_eq!(
        calls,
        vec![
            (Some("etalon"), Some("ekb"), [5, 2, 4, 1, 3, 2, 2, 1]),
            (Some("stolica"), Some("msk"), [1, 1, 1, 0, 1, 1, 0, 0]),
        ]
    );

    // Weeks start on Monday the 16th; months on the 1st.
    let s = store.analytics(&all, &week(Bucket::Week)).await.unwrap();
    let weeks: Vec<(&str, i64)> = s
        .tickets
        .iter()
        .map(|c| (c.bucket.as_str(), c.tickets))
        .collect();
    assert_eq!(
        weeks,
        vec![("2026-11-16", 3), ("2026-11-16", 1), ("2026-11-16", 1)]
    );
    let s = store.analytics(&all, &week(Bucket::Month)).await.unwrap();
    assert!(s.tickets.iter().all(|c| c.bucket == "2026-11-01"));

    // One company sees its own figures only.
    let etalon = TenantScope::Only(vec!["etalon".into()]);
    let s = store.analytics(&etalon, &week(Bucket::Day)).await.unwrap();
    assert_eq!(s.tickets.iter().map(|c| c.tickets).sum::<i64>(), 4);
    assert_eq!(s.time_to_accept[0], p("all", 4, 600, 1800));
    assert_eq!(s.calls.len(), 1);
    assert_eq!(
        s.ratings
            .iter()
            .find(|r| r.metric == "ces")
            .unwrap()
            .answers,
        1
    );
    let msk = AnalyticsQuery {
        city: Some("msk".into()),
        ..week(Bucket::Day)
    };
    let s = store.analytics(&all, &msk).await.unwrap();
    let only: Vec<(&str, i64)> = s
        .tickets
        .iter()
        .map(|c| (c.bucket.as_str(), c.tickets))
        .collect();
    assert_eq!(
        only,
        vec![("2026-11-17", 1)],
        "23:30 in Москва is still the 17th"
    );
    // Drill-down: the tickets behind a figure.
    let drill = |executor: Option<dispatchline::store::EmployeeId>,
                 csi: Option<i64>,
                 work_type: Option<&str>| DrillFilter {
        from: at(16, 0, 0),
        to: at(23, 0, 0),
        tenant: None,
        city: None,
        category: None,
        work_type: work_type.map(str::to_owned),
        executor_id: executor,
        csi,
        offset: None,
        limit: None,
    };
    assert_eq!(
        store
            .analytics_tickets(&all, &drill(Some(w.night), None, None))
            .await
            .unwrap()
            .total,
        1
    );
    assert_eq!(
        store
            .analytics_tickets(&all, &drill(None, Some(5), None))
            .await
            .unwrap()
            .total,
        1
    );
    assert_eq!(
        store
            .analytics_tickets(&all, &drill(None, None, Some("plumbing")))
            .await
            .unwrap()
            .total,
        3
    );
    assert_eq!(
        store
            .analytics_tickets(&etalon, &drill(None, None, Some("roof")))
            .await
            .unwrap()
            .total,
        0
    );
    // A reversed range is refused.
    assert!(
        store
            .analytics(
                &all,
                &AnalyticsQuery {
                    from: at(20, 0, 0),
                    to: at(19, 0, 0),
                    ..week(Bucket::Day)
                }
            )
            .await
            .is_err()
    );
}

on_both_backends!(figures_match_the_hand_count);
