//! Stories of the calls the engine makes after a ticket was handed over, over real
//! SIP on loopback: SIPp behind the provider's trunk plays the executor, residents,
//! a supplier's dispatcher and a staff member (tests/sipp/follow_up_people.xml);
//! SIPp softphones play the operator. Keys are RFC 4733 events from SIPp's own
//! captures. Waits of hours (the status check two hours after acceptance, the
//! night in another city) are virtual: the store is told the ticket was accepted
//! two hours ago, and the night is a city whose zone makes it 23:00 now.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use common::chains::login;
use common::engine::{free_port, wait_for_events};
use common::follow_ups::{self, BUSY, EXECUTOR, RESIDENT, TALKER, phone};
use common::sipp;
use dispatchline::store::notices::NewOutage;
use dispatchline::store::{
    DialJob, DialJobFilter, DialJobState, DialKind, SupplierStatus, SurveyMetric, TenantScope,
    TicketId, TicketStatus,
};

async fn jobs(engine: &dispatchline::server::Engine, kind: DialKind) -> Vec<DialJob> {
    engine
        .store
        .dial_jobs(
            &TenantScope::All,
            &DialJobFilter {
                kind: Some(kind),
                limit: Some(500),
                ..DialJobFilter::default()
            },
        )
        .await
        .unwrap()
        .items
}

async fn history(engine: &dispatchline::server::Engine, t: TicketId) -> Vec<String> {
    let detail = engine.store.ticket(t).await.unwrap().unwrap();
    detail
        .history
        .iter()
        .map(|h| format!("{} {}", h.to, h.note))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_executor_is_asked_two_hours_after_accepting_presses_2_and_a_closed_ticket_is_not_asked_again()
 {
    let policy =
        "status_checks = 3\nstatus_check_reach = \"informer\"\nquiet_hours = \"00:00-00:00\"";
    let follow_ups::Story {
        dir,
        people,
        engine,
        world: w,
        ..
    } = follow_ups::story("status-check-story", 2000, policy).await;

    // The ticket was registered and accepted two hours ago (virtual time: the store
    // takes the instant); its first status check is due two hours after the
    // acceptance, which is now.
    let accepted = Utc::now() - chrono::Duration::minutes(120);
    let t = follow_ups::ticket(
        &engine.store,
        &w,
        None,
        accepted - chrono::Duration::minutes(5),
    )
    .await;
    follow_ups::move_to(&engine.store, t, TicketStatus::Accepted, accepted).await;
    let planned = wait_for_events(&engine, "dial.planned", 1, Duration::from_secs(10)).await;
    assert_eq!(planned[0].payload["kind"], "status-check");
    let due: DateTime<Utc> = serde_json::from_value(planned[0].payload["due"].clone()).unwrap();
    assert!(
        (due - (accepted + chrono::Duration::hours(2)))
            .num_seconds()
            .abs()
            <= 1,
        "due {due}, accepted {accepted}"
    );

    // The informer calls the executor; he presses 2: the work is in progress.
    let answered =
        wait_for_events(&engine, "status-check.answered", 1, Duration::from_secs(60)).await;
    assert_eq!(answered[0].payload["answer"], "in-progress");
    assert_eq!(answered[0].payload["ticket"], t.0);
    let detail = engine.store.ticket(t).await.unwrap().unwrap();
    assert_eq!(detail.ticket.status, TicketStatus::InProgress);
    assert!(
        history(&engine, t)
            .await
            .iter()
            .any(|h| h.contains("in_progress")),
        "{:?}",
        history(&engine, t).await
    );
    // The next check is planned two hours after this one.
    let next: DateTime<Utc> =
        serde_json::from_value(answered[0].payload["next"].clone()).expect("a next check");
    assert!(next > Utc::now() + chrono::Duration::minutes(119));
    let checks = jobs(&engine, DialKind::StatusCheck).await;
    assert_eq!(checks.len(), 2, "{checks:?}");
    assert_eq!(
        checks
            .iter()
            .filter(|j| j.state == DialJobState::Done)
            .count(),
        1
    );

    // The ticket is done before the next check: the check is cancelled.
    follow_ups::move_to(&engine.store, t, TicketStatus::Done, Utc::now()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let checks = jobs(&engine, DialKind::StatusCheck).await;
        if checks.iter().any(|j| j.state == DialJobState::Cancelled) {
            assert!(
                checks
                    .iter()
                    .all(|j| matches!(j.state, DialJobState::Done | DialJobState::Cancelled))
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{checks:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let invites = common::chains::invites_by_number(&dir.join("people.log"));
    assert_eq!(invites.get(EXECUTOR), Some(&1), "{invites:?}");

    engine.shutdown(Duration::from_secs(5)).await;
    drop(people);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_rates_the_work_4_and_a_resident_where_it_is_night_waits_for_9_am() {
    let policy = "feedback_delay_s = 0\nquiet_hours = \"21:00-09:00\"";
    let follow_ups::Story {
        dir,
        people,
        engine,
        world: w,
        ..
    } = follow_ups::story("survey-story", 2000, policy).await;
    let night = follow_ups::zone_where_it_is(23);

    // A ticket done in the day city: its resident is called at once.
    let now = Utc::now();
    let t = follow_ups::ticket(&engine.store, &w, Some(RESIDENT), now).await;
    follow_ups::move_to(&engine.store, t, TicketStatus::Accepted, now).await;
    follow_ups::move_to(&engine.store, t, TicketStatus::Done, now).await;
    let answered = wait_for_events(&engine, "survey.answered", 1, Duration::from_secs(60)).await;
    assert_eq!(answered[0].payload["ticket"], t.0);
    assert_eq!(answered[0].payload["csi"], 4);
    assert_eq!(answered[0].payload["ces"], 5);
    assert_eq!(answered[0].payload["do_not_call"], false);
    let scores = engine.store.survey_scores(t).await.unwrap();
    assert!(scores.contains(&(SurveyMetric::Csi, 4)), "{scores:?}");
    assert!(scores.contains(&(SurveyMetric::Ces, 5)), "{scores:?}");
    let detail = engine.store.ticket(t).await.unwrap().unwrap();
    assert_eq!(detail.ticket.executor_id, Some(w.executor));
    let executor = engine.store.executor_scores(w.executor).await.unwrap();
    assert_eq!(executor, scores, "the ratings are the executor's too");

    // A second company in a city where it is 23:00: its resident's survey waits
    // for 09:00 there, and nobody is called meanwhile.
    engine
        .store
        .create_city("night", "Ночной город", &night)
        .await
        .unwrap();
    engine
        .store
        .create_tenant("noch", "УК «Ночь»", "night")
        .await
        .unwrap();
    let house = engine
        .store
        .create_house("noch", None, "ул. Звёздная, д. 1", 5, 1)
        .await
        .unwrap();
    let late = engine
        .store
        .create_ticket(
            &dispatchline::store::NewTicket {
                tenant: "noch".into(),
                house_id: house,
                apartment: Some("1".into()),
                reason_id: w.intercom,
                description: "Домофон".into(),
                source: dispatchline::store::tickets::Channel::Phone,
                labels: vec![],
                caller_phone: Some(phone("+79140000055")),
                call_id: None,
                actor: "1001".into(),
            },
            now,
        )
        .await
        .unwrap()
        .ticket
        .id;
    follow_ups::move_to(&engine.store, late, TicketStatus::Accepted, now).await;
    follow_ups::move_to(&engine.store, late, TicketStatus::Done, now).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let survey = loop {
        let found: Vec<DialJob> = jobs(&engine, DialKind::Survey)
            .await
            .into_iter()
            .filter(|j| j.ticket_id == Some(late))
            .collect();
        if let Some(j) = found.into_iter().next() {
            break j;
        }
        assert!(tokio::time::Instant::now() < deadline, "no survey planned");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let tz: chrono_tz::Tz = night.parse().unwrap();
    let local = survey.due_at.with_timezone(&tz);
    assert_eq!(
        local.time(),
        NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        "{local}"
    );
    assert!(survey.due_at > now + chrono::Duration::hours(9));
    assert!(survey.due_at < now + chrono::Duration::hours(11));
    assert_eq!(survey.state, DialJobState::Pending);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let invites = common::chains::invites_by_number(&dir.join("people.log"));
    assert_eq!(invites.get("+79140000055"), None, "{invites:?}");
    assert_eq!(invites.get(RESIDENT), Some(&1), "{invites:?}");

    engine.shutdown(Duration::from_secs(5)).await;
    drop(people);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_is_handed_to_the_supplier_by_phone_and_the_supplier_is_asked_again_at_the_set_time()
 {
    let policy = "quiet_hours = \"00:00-00:00\"\nsupplier_recheck_s = 3600";
    let follow_ups::Story {
        dir,
        people,
        engine,
        world: w,
        ..
    } = follow_ups::story("supplier-story", 2000, policy).await;
    // The operator's softphone answers each call and hangs up after 4 s (the
    // supplier's dispatcher stays on the line until the engine hangs up).
    let operator = sipp::operator_on_duty(
        &engine,
        &dir,
        "operator_hangs_up.xml",
        4000,
        "1001",
        "op1001pass-long",
        2,
    )
    .await;
    let token = login(engine.http_addr, "1001", "op1001pass-long").await;

    let t = follow_ups::ticket(&engine.store, &w, None, Utc::now()).await;
    let st = engine
        .store
        .derive_supplier_ticket(t, "teplo", None, None, Utc::now())
        .await
        .unwrap();

    // The operator is rung first; the card says why and has the hand-over.
    let offered = wait_for_events(&engine, "call.offered", 1, Duration::from_secs(20)).await;
    let card = &offered[0].payload["follow_up"];
    assert_eq!(card["purpose"], "supplier-handoff");
    assert_eq!(card["supplier"]["id"], st.0);
    assert_eq!(card["ticket"]["ticket"], t.0);
    // Once the supplier answers, the operator reads the ticket and records the
    // supplier's reference and when to ask again.
    wait_for_events(&engine, "call.answered", 1, Duration::from_secs(20)).await;
    let recheck = Utc::now() + chrono::Duration::seconds(6);
    let patched: serde_json::Value = reqwest::Client::new()
        .patch(format!(
            "http://{}/api/v1/supplier-tickets/{}",
            engine.http_addr, st.0
        ))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "supplier_number": "ТС-4417", "recheck_at": recheck }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(patched["supplier_number"], "ТС-4417");
    assert_eq!(patched["status"], "handed_over");
    let called = wait_for_events(&engine, "supplier.called", 1, Duration::from_secs(30)).await;
    assert_eq!(called[0].payload["purpose"], "supplier-handoff");
    assert_eq!(called[0].payload["outcome"], "answered");

    // At the set time the supplier is asked how it stands, through the operator.
    let called = wait_for_events(&engine, "supplier.called", 2, Duration::from_secs(40)).await;
    assert_eq!(called[1].payload["purpose"], "supplier-query");
    assert_eq!(called[1].payload["outcome"], "answered");
    let query_offered = wait_for_events(&engine, "call.offered", 2, Duration::from_secs(1)).await;
    assert!(query_offered[1].ts >= recheck - chrono::Duration::milliseconds(500));
    assert_eq!(
        query_offered[1].payload["follow_up"]["purpose"],
        "supplier-query"
    );
    assert_eq!(
        query_offered[1].payload["follow_up"]["supplier"]["reference"],
        "ТС-4417"
    );

    // Both tickets say so.
    let detail = engine.store.ticket(t).await.unwrap().unwrap();
    let supplier = &detail.supplier_tickets[0];
    assert_eq!(supplier.status, SupplierStatus::HandedOver);
    assert_eq!(supplier.supplier_number.as_deref(), Some("ТС-4417"));
    let lines = history(&engine, t).await;
    assert!(lines.len() >= 2, "{lines:?}");
    let invites = common::chains::invites_by_number(&dir.join("people.log"));
    assert_eq!(invites.get(TALKER), Some(&2), "{invites:?}");

    engine.shutdown(Duration::from_secs(5)).await;
    drop((people, operator));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_at_two_houses_is_told_to_50_residents_once_each_paced_and_busy_retried() {
    let policy = "quiet_hours = \"21:00-09:00\"\nbroadcast_attempts = 2\nbroadcast_retry_s = 2";
    let follow_ups::Story {
        dir,
        people,
        engine,
        world: w,
        ..
    } = follow_ups::story("broadcast-story", 1500, policy).await;
    let now = Utc::now();
    let mut numbers = vec![BUSY.to_owned()];
    numbers.extend((1..50).map(|i| format!("+791500000{i:02}")));
    for (i, n) in numbers.iter().enumerate() {
        let house = if i % 2 == 0 { w.house } else { w.house2 };
        engine
            .store
            .learn_contact(&phone(n), "etalon", house, Some(&(i + 1).to_string()), now)
            .await
            .unwrap();
    }
    let outage = engine
        .store
        .create_outage(
            &NewOutage {
                tenant: "etalon".into(),
                kind: "hot_water".into(),
                text: "Нет горячей воды: ремонт теплосети".into(),
                starts_at: now,
                ends_at: now + chrono::Duration::hours(6),
                house_ids: vec![w.house, w.house2],
            },
            now,
        )
        .await
        .unwrap();
    let token = login(engine.http_addr, "2001", "sup2001pass-long").await;
    let client = reqwest::Client::new();
    let started = client
        .post(format!(
            "http://{}/api/v1/outages/{}/broadcast",
            engine.http_addr, outage.id.0
        ))
        .bearer_auth(&token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let started: serde_json::Value = started.json().await.unwrap();
    assert_eq!(started["total"], 50);
    // Starting it again adds nobody.
    let again: serde_json::Value = client
        .post(format!(
            "http://{}/api/v1/outages/{}/broadcast",
            engine.http_addr, outage.id.0
        ))
        .bearer_auth(&token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["total"], 50);

    // Progress comes as events until nobody is waiting.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let last = loop {
        let progress: Vec<serde_json::Value> = engine
            .events
            .replay(0)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "outage.broadcast")
            .map(|e| e.payload.clone())
            .collect();
        if let Some(last) = progress.last().filter(|p| p["waiting"] == 0) {
            break last.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            progress.last()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(last["total"], 50);
    assert_eq!(last["called"], 50);
    assert_eq!(last["answered"], 49);
    assert_eq!(last["busy"], 1);
    let api: serde_json::Value = client
        .get(format!(
            "http://{}/api/v1/outages/{}/broadcast",
            engine.http_addr, outage.id.0
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(api["answered"], 49);

    // Each number once; the busy one once more after the retry interval.
    let invites = common::chains::invites_by_number(&dir.join("people.log"));
    assert_eq!(invites.get(BUSY), Some(&2), "{invites:?}");
    for n in &numbers[1..] {
        assert_eq!(invites.get(n.as_str()), Some(&1), "{n}: {invites:?}");
    }
    // Paced: never more than the rate (10/s) in any second, give or take one.
    let mut placed: Vec<DateTime<Utc>> = engine
        .events
        .replay(0)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "dial.attempt" && e.payload["purpose"] == "broadcast")
        .map(|e| e.ts)
        .collect();
    placed.sort();
    assert!(placed.len() >= 51, "{}", placed.len());
    for (i, at) in placed.iter().enumerate() {
        let within = placed[i..]
            .iter()
            .take_while(|t| **t < *at + chrono::Duration::seconds(1))
            .count();
        assert!(
            within <= 11,
            "{within} calls placed within a second of {at}"
        );
    }
    let span = *placed.last().unwrap() - placed[0];
    assert!(span >= chrono::Duration::seconds(4), "{span}");

    engine.shutdown(Duration::from_secs(5)).await;
    drop(people);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_member_calling_three_times_is_called_back_once_in_time_and_compliance_is_unchanged()
 {
    let policy = "quiet_hours = \"00:00-00:00\"";
    let follow_ups::Story {
        dir,
        people,
        engine,
        ..
    } = follow_ups::story("staff-story", 2000, policy).await;

    // Three calls to the dispatch line in a row, each refused with 486.
    let calls = sipp::args(&[
        "-sf",
        &sipp::scenario("staff_calls_dispatch.xml"),
        &engine.sip_addr.to_string(),
        "-i",
        "127.0.0.1",
        "-p",
        &free_port().to_string(),
        "-s",
        "+73432000900",
        "-key",
        "caller",
        TALKER,
        "-m",
        "3",
        "-l",
        "1",
    ]);
    sipp::spawn("staff", &dir, &calls)
        .finish(Duration::from_secs(30))
        .await
        .assert_success("staff calls");
    let staff_jobs = jobs(&engine, DialKind::StaffCallback).await;
    assert_eq!(staff_jobs.len(), 1, "{staff_jobs:?}");

    // An operator comes on duty: the staff member is called back once, within the
    // target.
    let operator = sipp::operator_on_duty(
        &engine,
        &dir,
        "operator_hangs_up.xml",
        3000,
        "1001",
        "op1001pass-long",
        1,
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let job = loop {
        let j = jobs(&engine, DialKind::StaffCallback).await.remove(0);
        if j.state == DialJobState::Done {
            break j;
        }
        assert!(tokio::time::Instant::now() < deadline, "{j:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(job.updated_at <= job.deadline_at.expect("a target"));
    assert_eq!(jobs(&engine, DialKind::StaffCallback).await.len(), 1);
    let invites = common::chains::invites_by_number(&dir.join("people.log"));
    assert_eq!(invites.get(TALKER), Some(&1), "{invites:?}");

    // The day's compliance tiles count residents' calls only: nothing here.
    let day = engine
        .store
        .compliance_day(&TenantScope::All, "ekb", None, Utc::now())
        .await
        .unwrap();
    assert_eq!(day.answered_30s.total, 0);
    assert_eq!(day.answered_5m.total, 0);
    assert_eq!(day.callbacks_10m.total, 0);
    assert!(day.hourly.iter().all(|h| h.offered == 0));

    engine.shutdown(Duration::from_secs(5)).await;
    drop((people, operator));
}
