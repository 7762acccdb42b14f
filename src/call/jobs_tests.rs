//! The dialer's jobs in the call core, in virtual time: which job a free operator
//! is offered first, the deadline alarm of a callback nobody takes, and robot
//! calls kept within the pacer and the channels left for residents.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use super::test_harness::*;
use crate::config::Reach;
use crate::dialer::briefing::{Briefing, OutageBrief};
use crate::store::{DialJobState, DialKind, OutageId};

/// A claimed job of `kind` for `target`, due now, with `deadline` from now.
fn job(h: &Harness, id: i64, kind: DialKind, target: &str, deadline: Option<Duration>) -> DialJob {
    let wall = h.cc.wall(h.now);
    DialJob {
        id: DialJobId(id),
        kind,
        tenant: Some("etalon".into()),
        target: target.into(),
        due_at: wall,
        attempts_made: 0,
        max_attempts: 5,
        state: DialJobState::Claimed,
        claimed_by: Some("node".into()),
        claimed_until: None,
        outcome: None,
        ticket_id: None,
        call_id: None,
        origin_number: None,
        precedence: kind.precedence(),
        deadline_at: deadline.map(|d| wall + chrono::Duration::from_std(d).unwrap()),
        quiet_hours: false,
        reach: None,
        outage_id: None,
        supplier_ticket_id: None,
        answer: None,
        at_risk_at: None,
        created_at: wall,
        updated_at: wall,
    }
}

fn broadcast_briefing() -> Arc<Briefing> {
    Arc::new(Briefing {
        ticket: None,
        party: "житель".into(),
        why: "Оповещение об отключении".into(),
        ask: Vec::new(),
        supplier: None,
        outage: Some(OutageBrief {
            id: OutageId(1),
            kind: "hot_water".into(),
            text: "Нет горячей воды".into(),
            ends_at: "2026-03-02T15:00:00Z".parse().unwrap(),
            zone: chrono_tz::Asia::Yekaterinburg,
        }),
    })
}

#[test]
fn a_free_operator_is_offered_the_residents_callback_before_a_staff_callback() {
    let mut h = Harness::new("");
    // The staff callback was claimed first and its target is nearer, but the
    // resident's callback has the law's deadline: it goes first.
    let staff = job(
        &h,
        1,
        DialKind::StaffCallback,
        "+79122000100",
        Some(Duration::from_secs(120)),
    );
    let resident = job(
        &h,
        2,
        DialKind::Callback,
        "+79120000001",
        Some(Duration::from_secs(600)),
    );
    h.deliver_job(staff);
    h.deliver_job(resident);
    assert!(h.requests_to(addr(PHONE_1001), Method::Invite).is_empty());
    h.on_duty("1001", "pass1001", addr(PHONE_1001));
    let rung = h.requests_to(addr(PHONE_1001), Method::Invite);
    assert_eq!(rung.len(), 1);
    assert_eq!(rung[0].headers.get("X-Dispatch-Purpose"), Some("callback"));
    assert_eq!(h.cc.jobs.len(), 1);
    assert_eq!(
        h.cc.jobs[0].kind,
        DialKind::StaffCallback,
        "the staff callback waits"
    );
}

#[test]
fn a_callback_nobody_takes_raises_the_deadline_alarm_once_three_quarters_in() {
    let mut h = Harness::new("");
    let callback = job(
        &h,
        5,
        DialKind::Callback,
        "+79120000001",
        Some(Duration::from_secs(600)),
    );
    h.deliver_job(callback);
    // 7 minutes of 10: not yet (the alarm comes at 7.5 by default).
    h.later(Duration::from_secs(7 * 60));
    assert!(h.events_of("dial.deadline-at-risk").is_empty());
    h.later(Duration::from_secs(31));
    let alarms = h.events_of("dial.deadline-at-risk");
    assert_eq!(alarms.len(), 1);
    assert_eq!(alarms[0].payload["job"], 5);
    assert_eq!(alarms[0].payload["purpose"], "callback");
    assert_eq!(alarms[0].payload["operator_ready"], false);
    assert!(
        h.actions
            .iter()
            .any(|a| matches!(a, Action::MarkAtRisk(ids) if ids == &[DialJobId(5)]))
    );
    // Once only, however long it still waits.
    h.later(Duration::from_secs(10 * 60));
    assert_eq!(h.events_of("dial.deadline-at-risk").len(), 1);
}

#[test]
fn robot_calls_follow_the_pacer_and_leave_the_reserved_channels_to_residents() {
    let mut config = Config::parse(&config_text(""), std::path::Path::new("t.toml")).unwrap();
    for trunk in &mut config.trunks {
        trunk.channels = Some(3);
    }
    config.follow_ups.broadcast_rate = 1.0;
    config.follow_ups.inbound_reserve = 4;
    let mut h = Harness::with_config(config);
    for id in 1..=5 {
        let mut j = job(
            &h,
            id,
            DialKind::Broadcast,
            &format!("+7915000000{id}"),
            None,
        );
        j.outage_id = Some(OutageId(1));
        h.cc.handle_claimed_job(h.now, j, Some(broadcast_briefing()));
        h.drain();
    }
    // Calls placed so far (distinct Call-IDs: INVITEs are retransmitted).
    let mut seen = std::collections::HashSet::new();
    let mut placed = |h: &mut Harness| {
        for to in [PROVIDER_X, PROVIDER_Y] {
            for r in h.requests_to(addr(to), Method::Invite) {
                seen.insert(format!("{:?}", r.headers.call_id));
            }
        }
        seen.len()
    };
    // One call a second...
    assert_eq!(placed(&mut h), 1);
    h.later(Duration::from_millis(500));
    assert_eq!(placed(&mut h), 1);
    h.later(Duration::from_millis(600));
    assert_eq!(placed(&mut h), 2);
    // ...and never more than 6 channels less the 4 kept for residents: the third
    // waits while two are ringing.
    h.later(Duration::from_secs(3));
    assert_eq!(h.cc.active_calls(), 2);
    assert_eq!(placed(&mut h), 2);
    assert_eq!(h.cc.robots.len(), 3);
}

#[test]
fn an_informer_status_check_is_a_robot_call_and_an_operator_first_one_waits_for_an_operator() {
    let mut h = Harness::new("");
    let mut by_robot = job(&h, 7, DialKind::StatusCheck, "+79121000001", None);
    by_robot.reach = Some(Reach::Informer);
    let mut by_operator = job(&h, 8, DialKind::StatusCheck, "+79121000002", None);
    by_operator.reach = Some(Reach::OperatorFirst);
    let briefing = Arc::new(Briefing {
        ticket: None,
        party: "исполнитель".into(),
        why: "Проверка выполнения заявки".into(),
        ask: vec!["Спросите, как идут работы по заявке.".into()],
        supplier: None,
        outage: None,
    });
    h.cc.handle_claimed_job(h.now, by_robot, Some(briefing.clone()));
    h.cc.handle_claimed_job(h.now, by_operator, Some(briefing));
    h.drain();
    let out = h.requests_to(addr(PROVIDER_X), Method::Invite);
    assert_eq!(out.len(), 1, "the robot dials the executor itself");
    assert!(out[0].uri.to_string().contains("+79121000001"));
    assert_eq!(h.cc.jobs.len(), 1, "the other waits for an operator");
    h.on_duty("1001", "pass1001", addr(PHONE_1001));
    let rung = h.requests_to(addr(PHONE_1001), Method::Invite);
    assert_eq!(rung.len(), 1);
    assert_eq!(
        rung[0].headers.get("X-Dispatch-Purpose"),
        Some("status-check")
    );
    let card = &h.events_of("call.offered")[0].payload["follow_up"];
    assert_eq!(card["purpose"], "status-check");
    assert_eq!(card["why"], "Проверка выполнения заявки");
}
