//! The call core in virtual time: each test is a flow of issue 5 that once went
//! wrong.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use super::handle::CallError;
use super::test_harness::*;
use crate::store::{ActiveOutage, CallRecord, DialJobState, DialKind, OutageId};

// -- the flows -------------------------------------------------------------------------

#[test]
fn a_callback_for_an_operator_whose_contact_lapsed_goes_to_the_next_without_spinning() {
    returns_within(Duration::from_secs(10), || {
        let mut h = Harness::new("");
        // 1002 shows as registered (a stale flag: no live binding) and has waited
        // longest; 1001 really is on duty.
        let (now, wall) = (h.now, h.cc.wall(h.now));
        h.cc.operators.set_registered("1002", true, now, wall);
        h.ready("1002");
        h.later(Duration::from_secs(1));
        h.on_duty("1001", "pass1001", addr(PHONE_1001));
        h.dial_job(1, "+79120000001", Some("etalon"), None);
        let rung = h.requests_to(addr(PHONE_1001), Method::Invite);
        assert_eq!(
            rung.len(),
            1,
            "the callback rings the operator who can be reached"
        );
        assert_eq!(rung[0].headers.get("X-Dispatch-Purpose"), Some("callback"));
        assert!(h.cc.jobs.is_empty());
    });
}

#[test]
fn with_rtp_ports_exhausted_callback_jobs_wait_instead_of_spinning() {
    returns_within(Duration::from_secs(10), || {
        let mut h = Harness::new("");
        h.on_duty("1001", "pass1001", addr(PHONE_1001));
        h.media.state().no_ports = true;
        h.dial_job(1, "+79120000001", Some("etalon"), None);
        h.dial_job(2, "+79120000002", None, None);
        assert_eq!(h.cc.jobs.len(), 2, "both jobs are kept");
        assert!(h.requests_to(addr(PHONE_1001), Method::Invite).is_empty());
        // Ports free again: the next dispatch serves the first job.
        h.media.state().no_ports = false;
        h.ready("1001");
        h.dial_job(3, "+79120000003", None, None);
        assert_eq!(h.requests_to(addr(PHONE_1001), Method::Invite).len(), 1);
        assert_eq!(h.cc.jobs.len(), 2);
        assert_eq!(h.cc.jobs[0].id, DialJobId(2));
    });
}

#[test]
fn a_callback_the_operator_does_not_answer_rings_out_and_goes_to_the_next_operator() {
    let mut h = Harness::new("");
    h.on_duty("1001", "pass1001", addr(PHONE_1001));
    h.later(Duration::from_secs(1));
    h.on_duty("1002", "pass1002", addr(PHONE_1002));
    h.dial_job(1, "+79120000001", Some("etalon"), None);
    let invite = h.requests_to(addr(PHONE_1001), Method::Invite).remove(0);
    h.respond(addr(PHONE_1001), &invite, 180, "op1");
    // Nobody picks up: after the ring timeout the engine gives up on 1001.
    h.later(Duration::from_secs(21));
    assert!(
        !h.requests_to(addr(PHONE_1001), Method::Cancel).is_empty(),
        "the ring timeout fired"
    );
    h.respond(addr(PHONE_1001), &invite, 487, "op1");
    let v = h.operator_state("1001");
    assert_eq!(v.state, crate::call::OperatorState::Paused, "{v:?}");
    assert!(
        h.events_of("call.ended")
            .iter()
            .any(|e| e.payload["disposition"] == "returned")
    );
    // The job went to 1002; nothing was counted against the resident.
    assert_eq!(h.requests_to(addr(PHONE_1002), Method::Invite).len(), 1);
    assert!(
        !h.actions
            .iter()
            .any(|a| matches!(a, Action::JobAttempt { .. }))
    );
}

#[test]
fn queue_timers_set_before_the_call_is_in_the_table_still_fire() {
    // No greeting, an anonymous caller: the call is queued inside start_inbound.
    let extra = "[[number]]\nnumber = \"+73432000300\"\nkind = \"tenant\"\ntenant = \"etalon\"\n";
    let mut h = Harness::new(extra);
    h.call(addr(RESIDENT), "anonymous", "+73432000300").unwrap();
    let (k, _) = h.call_of("anonymous");
    assert_eq!(h.cc.calls[&k].stage, Stage::Queued);
    let leg = h.caller_leg("anonymous");
    let before = h.media.state().played.len();
    h.later(Duration::from_secs(31));
    let played = h.media.state().played.clone();
    assert!(
        played[before..]
            .iter()
            .any(|(l, items)| *l == leg && items.iter().any(|i| i.contains("queue-wait"))),
        "the announcement came back: {played:?}"
    );
}

#[test]
fn an_outage_caller_on_a_number_with_a_menu_reaches_the_menu() {
    let mut h = Harness::new("");
    let caller = "+79120000001";
    h.call(addr(RESIDENT), caller, MENU_NUMBER).unwrap();
    let outage = ActiveOutage {
        id: OutageId(1),
        kind: "hot_water".into(),
        text: "нет горячей воды".into(),
        until: "2026-03-02T13:00:00Z".parse().unwrap(),
    };
    h.looked_up(caller, Some(caller_info(caller, vec![outage])));
    let leg = h.caller_leg(caller);
    assert_eq!(h.playing(leg).unwrap(), ["ru/greeting-etalon.wav"]);
    h.finish_playback(leg);
    let notices = h.playing(leg).unwrap();
    assert_eq!(notices[0], "ru/outage-intro.wav", "{notices:?}");
    h.finish_playback(leg);
    assert_eq!(
        h.playing(leg).unwrap(),
        ["ru/menu-main.wav"],
        "after the notices comes the menu, not the notices again"
    );
    let (k, _) = h.call_of(caller);
    assert_eq!(h.cc.calls[&k].stage, Stage::Menu);
    h.finish_playback(leg);
    let d = Dialog {
        from: addr(RESIDENT),
        caller: caller.into(),
        number: MENU_NUMBER.into(),
        call_id: "res-1".into(),
        to_tag: h.cc.calls[&k].legs[0].tag.clone(),
    };
    let body = "Signal=1\r\nDuration=160\r\n";
    let info = h.in_dialog(&d, "INFO", 2).replace(
        "Content-Length: 0\r\n\r\n",
        &format!(
            "Content-Type: application/dtmf-relay\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    h.deliver_text(addr(RESIDENT), &info);
    assert_eq!(
        h.cc.calls[&k].stage,
        Stage::Queued,
        "digit 1 queues the call"
    );
}

#[test]
fn a_caller_who_got_through_is_not_called_back() {
    let mut h = Harness::new("");
    let caller = "+79120000001";
    let d = h.queued(addr(RESIDENT), caller, TENANT);
    let (_, id) = h.call_of(caller);
    // Still waiting at the 4th minute: a callback is scheduled...
    h.at(Duration::from_secs(241));
    assert_eq!(h.events_of("callback.scheduled").len(), 1);
    // ...and claimed into memory while the caller is still on the line.
    h.dial_job(7, caller, Some("etalon"), Some(&id.0));
    assert_eq!(h.cc.jobs.len(), 1);
    // Then an operator answers them.
    h.on_duty("1001", "pass1001", addr(PHONE_1001));
    let invite = h.requests_to(addr(PHONE_1001), Method::Invite).remove(0);
    h.respond(addr(PHONE_1001), &invite, 200, "op1");
    assert!(h.cc.jobs.is_empty(), "the held job is dropped");
    assert!(
        h.actions
            .iter()
            .any(|a| matches!(a, Action::CancelJobs { call } if *call == id))
    );
    h.hang_up(&d);
    // The same job claimed again later is not dialled either.
    h.ready("1001");
    h.dial_job(7, caller, Some("etalon"), Some(&id.0));
    assert!(h.cc.jobs.is_empty());
    assert!(h.requests_to(addr(PHONE_1001), Method::Invite).is_empty());
}

#[test]
fn a_job_claimed_twice_is_held_once_and_its_lease_is_renewed() {
    let mut h = Harness::new("");
    h.dial_job(5, "+79120000001", Some("etalon"), None);
    h.dial_job(5, "+79120000001", Some("etalon"), None);
    assert_eq!(h.cc.jobs.len(), 1);
    assert_eq!(h.cc.held_jobs(), vec![DialJobId(5)]);
    // While it is dialled it is still held (and renewed), and not taken again.
    h.on_duty("1001", "pass1001", addr(PHONE_1001));
    assert!(h.cc.jobs.is_empty());
    assert_eq!(h.cc.held_jobs(), vec![DialJobId(5)]);
    h.dial_job(5, "+79120000001", Some("etalon"), None);
    assert!(h.cc.jobs.is_empty(), "not queued a second time");
}

#[test]
fn staff_calls_and_failed_forwards_leave_no_call_behind() {
    let mut h = Harness::new("");
    h.call(addr(RESIDENT), "+79120000050", "+73432000900");
    assert_eq!(h.cc.active_calls(), 0, "the staff call ended at once");
    assert_eq!(h.events_of("callback.scheduled").len(), 1);
    // The forward target's leg cannot get media.
    h.media.state().limit = Some(1);
    assert!(h.call(addr(RESIDENT_2), "+79120000051", "100").is_none());
    assert_eq!(h.cc.active_calls(), 0, "the failed forward is gone too");
}

#[test]
fn the_five_minutes_run_from_the_calls_arrival_not_from_joining_the_queue() {
    let mut h = Harness::new("[sip]\nmax_call_rate = 1000\n");
    let caller = "+79120000001";
    h.call(addr(RESIDENT), caller, TENANT).unwrap();
    h.unknown(caller);
    // A long greeting: the caller joins the queue 100 s after calling.
    h.at(Duration::from_secs(100));
    let leg = h.caller_leg(caller);
    h.finish_playback(leg);
    let board = h.cc.board(h.now);
    assert_eq!(board.waiting[0].waited_s, 100, "waited since the call");
    // The callback is due 240 s after the call, not after the queue.
    h.at(Duration::from_secs(239));
    assert!(h.events_of("callback.scheduled").is_empty());
    h.at(Duration::from_secs(241));
    assert_eq!(h.events_of("callback.scheduled").len(), 1);
    h.on_duty("1001", "pass1001", addr(PHONE_1001));
    let invite = h.requests_to(addr(PHONE_1001), Method::Invite).remove(0);
    h.respond(addr(PHONE_1001), &invite, 200, "op1");
    let answered = h.events_of("call.answered");
    let wait = answered[0].payload["wait_ms"].as_u64().unwrap();
    assert!(wait >= 241_000, "{wait}");
}

#[test]
fn a_caller_hanging_up_soon_after_joining_the_queue_is_called_back_when_the_wait_from_arrival_is_long()
 {
    let mut h = Harness::new("");
    let caller = "+79120000001";
    let d = h.call(addr(RESIDENT), caller, TENANT).unwrap();
    h.unknown(caller);
    h.at(Duration::from_secs(14));
    let leg = h.caller_leg(caller);
    h.finish_playback(leg);
    // 2 s in the queue, 16 s since the call: over the 15 s threshold.
    h.at(Duration::from_secs(16));
    h.hang_up(&d);
    assert_eq!(h.events_of("callback.scheduled").len(), 1);
    let ended = h.events_of("call.ended");
    assert_eq!(ended[0].payload["disposition"], "callback-scheduled");
}

#[test]
fn every_contact_of_the_operator_rings_and_the_first_to_answer_wins() {
    let mut h = Harness::new("");
    h.register("1001", "pass1001", addr(PHONE_1001));
    h.on_duty("1001", "pass1001", addr(PHONE_1001_B));
    let caller = "+79120000001";
    h.queued(addr(RESIDENT), caller, TENANT);
    let a = h.requests_to(addr(PHONE_1001), Method::Invite);
    let b = h.requests_to(addr(PHONE_1001_B), Method::Invite);
    assert_eq!((a.len(), b.len()), (1, 1), "both contacts ring");
    h.respond(addr(PHONE_1001), &a[0], 180, "a");
    h.respond(addr(PHONE_1001_B), &b[0], 200, "b");
    assert!(
        !h.requests_to(addr(PHONE_1001), Method::Cancel).is_empty(),
        "the other contact is cancelled"
    );
    let (k, _) = h.call_of(caller);
    assert_eq!(h.cc.calls[&k].stage, Stage::Connected);
    // The cancelled one answers anyway (the CANCEL crossed its 200): ACK and BYE.
    h.respond(addr(PHONE_1001), &a[0], 200, "a");
    assert_eq!(h.requests_to(addr(PHONE_1001), Method::Ack).len(), 1);
    assert_eq!(h.requests_to(addr(PHONE_1001), Method::Bye).len(), 1);
    assert_eq!(
        h.cc.calls[&k].stage,
        Stage::Connected,
        "the call is unaffected"
    );
    assert_eq!(h.events_of("call.answered").len(), 1);
}

#[test]
fn a_callback_forks_to_every_contact_and_keeps_the_answering_one() {
    let mut h = Harness::new("");
    h.register("1001", "pass1001", addr(PHONE_1001));
    h.on_duty("1001", "pass1001", addr(PHONE_1001_B));
    h.dial_job(1, "+79120000001", Some("etalon"), None);
    let a = h.requests_to(addr(PHONE_1001), Method::Invite);
    let b = h.requests_to(addr(PHONE_1001_B), Method::Invite);
    assert_eq!((a.len(), b.len()), (1, 1));
    // The second contact (not leg 0) answers: the resident is dialled.
    h.respond(addr(PHONE_1001), &a[0], 180, "a");
    h.respond(addr(PHONE_1001_B), &b[0], 200, "b");
    assert!(!h.requests_to(addr(PHONE_1001), Method::Cancel).is_empty());
    let out = h.requests_to(addr(PROVIDER_X), Method::Invite);
    assert_eq!(
        out.len(),
        1,
        "the resident's phone rings through the tenant's trunk"
    );
    h.respond(addr(PROVIDER_X), &out[0], 200, "res");
    assert_eq!(
        h.events_of("dial.outcome")[0].payload["outcome"],
        "answered"
    );
    // The operator hangs up: the resident gets the BYE.
    let (k, c) =
        h.cc.calls
            .iter()
            .find(|(_, c)| c.kind == Kind::Outbound)
            .map(|(k, c)| (*k, c.legs[0].tag.clone()))
            .unwrap();
    let _ = c;
    assert_eq!(h.cc.calls[&k].legs[0].target.addr, addr(PHONE_1001_B));
}

#[test]
fn shutting_down_schedules_callbacks_for_waiting_callers_and_hands_jobs_back() {
    let mut h = Harness::new("");
    let caller = "+79120000001";
    h.queued(addr(RESIDENT), caller, TENANT);
    h.dial_job(9, "+79120000009", Some("etalon"), None);
    h.dial_job(10, "+79120000010", Some("etalon"), None);
    // Job 9's callback is ringing its operator; job 10 waits in memory.
    h.on_duty("1001", "pass1001", addr(PHONE_1001));
    assert!(h.cc.calls.values().any(|c| c.kind == Kind::Outbound));
    let (_, waiting) = h.call_of(caller);
    h.cc.hang_up_all(h.now);
    h.drain();
    assert!(
        h.actions
            .iter()
            .any(|a| matches!(a, Action::ScheduleJob { job, .. } if job.target.as_str() == caller))
    );
    assert!(h.actions.iter().any(
        |a| matches!(a, Action::ReleaseJobs(ids) if *ids == vec![DialJobId(9), DialJobId(10)])
    ));
    let ended = h
        .events_of("call.ended")
        .into_iter()
        .find(|e| e.payload["call"] == waiting.0.as_str())
        .unwrap();
    assert_eq!(ended.payload["disposition"], "callback-scheduled");
}

#[test]
fn a_callback_invite_challenged_by_the_trunk_is_sent_again_with_credentials() {
    let mut h = Harness::new("");
    h.on_duty("1001", "pass1001", addr(PHONE_1001));
    h.dial_job(1, "+79120000001", Some("etalon"), None);
    let op = h.requests_to(addr(PHONE_1001), Method::Invite).remove(0);
    h.respond(addr(PHONE_1001), &op, 200, "op");
    let first = h.requests_to(addr(PROVIDER_X), Method::Invite).remove(0);
    let mut challenge = first.response(407).with_to_tag("p");
    challenge.headers.push(
        "Proxy-Authenticate",
        "Digest realm=\"provider-x\", nonce=\"n0nce\", qop=\"auth\"",
    );
    h.respond_with(addr(PROVIDER_X), challenge);
    let again = h.requests_to(addr(PROVIDER_X), Method::Invite);
    assert_eq!(again.len(), 1, "sent again");
    let again = &again[0];
    assert_eq!(again.headers.call_id, first.headers.call_id, "same Call-ID");
    assert_eq!(
        again.headers.cseq.seq,
        first.headers.cseq.seq + 1,
        "new CSeq"
    );
    assert_eq!(again.headers.from.tag(), first.headers.from.tag());
    let auth = again.headers.get("Proxy-Authorization").unwrap();
    assert!(auth.contains("username=\"etalon\""), "{auth}");
    assert!(again.headers.get("Authorization").is_none());
    h.respond(addr(PROVIDER_X), again, 200, "res");
    assert_eq!(
        h.events_of("dial.outcome")[0].payload["outcome"],
        "answered"
    );
    // A second challenge on the same trunk is the trunk's final word.
}

#[test]
fn a_callback_for_an_unknown_citywide_caller_goes_out_from_the_citywide_number() {
    let mut h = Harness::new("");
    h.on_duty("1001", "pass1001", addr(PHONE_1001));
    let wall = h.cc.wall(h.now);
    h.deliver_job(DialJob {
        id: DialJobId(3),
        kind: DialKind::Callback,
        tenant: None,
        target: "+79129999999".into(),
        due_at: wall,
        attempts_made: 0,
        max_attempts: 5,
        state: DialJobState::Claimed,
        claimed_by: None,
        claimed_until: None,
        outcome: None,
        ticket_id: None,
        call_id: Some("c-old".into()),
        origin_number: Some(CITYWIDE.into()),
        precedence: 0,
        deadline_at: None,
        quiet_hours: false,
        reach: None,
        outage_id: None,
        supplier_ticket_id: None,
        answer: None,
        at_risk_at: None,
        created_at: wall,
        updated_at: wall,
    });
    let op = h.requests_to(addr(PHONE_1001), Method::Invite).remove(0);
    assert!(
        op.headers.get("X-Dispatch-Tenant").is_none(),
        "no company yet"
    );
    h.respond(addr(PHONE_1001), &op, 200, "op");
    let out = h.requests_to(addr(PROVIDER_Y), Method::Invite);
    assert_eq!(out.len(), 1, "through the citywide number's trunk");
    assert_eq!(out[0].headers.from.uri.user(), Some(CITYWIDE));
    // Without an origin, a job of no tenant still never borrows a company's number.
    assert!(h.requests_to(addr(PROVIDER_X), Method::Invite).is_empty());
}

#[test]
fn with_no_trunk_configured_calls_come_from_loopback_and_inbound_from_only() {
    let text = format!(
        "[sip]\ninbound_from = [\"192.0.2.10\"]\n\n[[number]]\nnumber = \"{TENANT}\"\nkind = \"tenant\"\ntenant = \"etalon\"\ntrunk = \"provider-x\"\n"
    );
    let mut h = Harness::with_config(Config::parse(&text, Path::new("t.toml")).unwrap());
    assert!(h.call(addr(RESIDENT), "+79120000001", TENANT).is_some());
    assert!(
        h.call(addr("192.0.2.10:5060"), "+79120000002", TENANT)
            .is_some()
    );
    assert!(
        h.call(addr("198.51.100.7:5060"), "+79120000003", TENANT)
            .is_none()
    );
    assert_eq!(h.cc.refused_source(), 1);
}

#[test]
fn refused_invites_that_passed_the_source_check_get_a_journal_row() {
    let mut h = Harness::new("");
    // Unknown number from the provider: 404 and a row.
    assert!(
        h.call(addr(PROVIDER_X), "+79120000001", "+73430000000")
            .is_none()
    );
    let rows: Vec<&CallRecord> = h
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Journal(r) => Some(r.as_ref()),
            _ => None,
        })
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].disposition, Some(Disposition::Rejected));
    assert_eq!(h.events_of("call.rejected")[0].payload["sip_status"], 404);
    // A stranger: 403, counted, no row.
    let before = h.actions.len();
    assert!(
        h.call(addr("198.51.100.7:5060"), "+79120000001", TENANT)
            .is_none()
    );
    assert_eq!(h.cc.refused_source(), 1);
    assert!(
        !h.actions[before..]
            .iter()
            .any(|a| matches!(a, Action::Journal(_)))
    );
    // A flood from the provider: rows up to the budget, the rest counted.
    for _ in 0..(REJECTION_ROWS_PER_SECOND + 5) {
        h.call(addr(PROVIDER_X), "+79120000001", "+73430000000");
    }
    assert_eq!(h.cc.rejected_unjournaled(), 6);
}

#[test]
fn the_operator_sets_the_tenant_of_a_citywide_call() {
    let mut h = Harness::new("");
    let caller = "+79129999999";
    h.queued(addr(RESIDENT), caller, CITYWIDE);
    let (k, id) = h.call_of(caller);
    assert_eq!(h.cc.calls[&k].tenant, None);
    let answer = h.cc.handle_query(
        h.now,
        Query::SetCallTenant {
            call: id.0.clone(),
            tenant: "etalon".into(),
            scope: vec!["uyut".into()],
        },
    );
    let Answer::CallTenant(Ok(set)) = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(set.previous, None);
    h.drain();
    assert_eq!(h.cc.calls[&k].record.tenant.as_deref(), Some("etalon"));
    assert_eq!(h.events_of("call.tenant")[0].payload["tenant"], "etalon");
    // Someone serving only uyut cannot take an etalon call away.
    let again = h.cc.handle_query(
        h.now,
        Query::SetCallTenant {
            call: id.0.clone(),
            tenant: "uyut".into(),
            scope: vec!["uyut".into()],
        },
    );
    assert!(matches!(
        again,
        Answer::CallTenant(Err(CallError::OtherTenant(_)))
    ));
    let missing = h.cc.handle_query(
        h.now,
        Query::SetCallTenant {
            call: "c-none".into(),
            tenant: "uyut".into(),
            scope: Vec::new(),
        },
    );
    assert!(matches!(
        missing,
        Answer::CallTenant(Err(CallError::Unknown(_)))
    ));
}

#[test]
fn a_lookup_that_never_answers_does_not_hold_the_caller() {
    let extra = "[[number]]\nnumber = \"+73432000301\"\nkind = \"tenant\"\ntenant = \"etalon\"\ngreeting = \"ru/connecting.wav\"\n";
    let mut h = Harness::new(extra);
    let caller = "+79120000001";
    h.call(addr(RESIDENT), caller, "+73432000301").unwrap();
    let leg = h.caller_leg(caller);
    h.finish_playback(leg);
    let (k, _) = h.call_of(caller);
    assert_eq!(h.cc.calls[&k].stage, Stage::LookingUp);
    assert!(h.events_of("call.offered").is_empty());
    h.later(crate::call::inbound::LOOKUP_TIMEOUT);
    assert_eq!(h.cc.calls[&k].stage, Stage::Queued);
    assert_eq!(h.events_of("call.offered").len(), 1);
    // The late answer changes nothing.
    h.unknown(caller);
    assert_eq!(h.events_of("call.offered").len(), 1);
}

#[test]
fn a_legacy_number_without_its_prompts_still_hangs_up() {
    let extra = "[[number]]\nnumber = \"+73432999001\"\nkind = \"legacy\"\ntenant = \"etalon\"\n";
    let mut h = Harness::new(extra);
    h.media.state().no_prompts = true;
    let d = h
        .call(addr(RESIDENT), "+79120000001", "+73432999001")
        .unwrap();
    let _ = d;
    assert_eq!(
        h.requests_to(addr(RESIDENT), Method::Bye).len(),
        1,
        "BYE after the ACK"
    );
    assert_eq!(
        h.events_of("call.ended")[0].payload["disposition"],
        "rejected"
    );
}

#[test]
fn a_callback_fails_over_to_the_next_trunk_on_503() {
    let mut h = Harness::new("");
    h.on_duty("1001", "pass1001", addr(PHONE_1001));
    h.dial_job(1, "+79120000001", Some("etalon"), None);
    let op = h.requests_to(addr(PHONE_1001), Method::Invite).remove(0);
    h.respond(addr(PHONE_1001), &op, 200, "op");
    let x = h.requests_to(addr(PROVIDER_X), Method::Invite).remove(0);
    h.respond(addr(PROVIDER_X), &x, 503, "px");
    let y = h.requests_to(addr(PROVIDER_Y), Method::Invite);
    assert_eq!(y.len(), 1, "provider Y takes over");
    h.respond(addr(PROVIDER_Y), &y[0], 486, "py");
    // Busy is the resident's answer: no third try, the attempt counts as busy.
    assert!(h.requests_to(addr(PROVIDER_X), Method::Invite).is_empty());
    assert_eq!(h.events_of("dial.outcome")[0].payload["outcome"], "busy");
}

#[test]
fn a_callback_nobody_can_take_does_not_hold_up_the_jobs_behind_it() {
    let extra =
        "[[operator]]\nextension = \"1003\"\npassword = \"pass1003\"\ntenants = [\"uyut\"]\n";
    let mut h = Harness::new(extra);
    h.on_duty("1003", "pass1003", addr(PHONE_1002));
    h.dial_job(1, "+79120000001", Some("etalon"), None);
    h.dial_job(2, "+79120000002", Some("uyut"), None);
    let rung = h.requests_to(addr(PHONE_1002), Method::Invite);
    assert_eq!(rung.len(), 1, "uyut's callback goes out past etalon's");
    assert!(rung[0].headers.get("X-Dispatch-Tenant") == Some("uyut"));
    assert_eq!(h.cc.jobs.len(), 1);
    assert_eq!(
        h.cc.jobs[0].id,
        DialJobId(1),
        "etalon's waits for its operator"
    );
}

// -- a party gone without a BYE (RTP timeout, no answer in its dialog) --------------

/// A resident of the tenant number talking to operator 1001: the resident's dialog
/// and the INVITE the operator answered.
fn bridged(h: &mut Harness, caller: &str) -> (Dialog, Request) {
    h.on_duty("1001", "pass1001", addr(PHONE_1001));
    let d = h.queued(addr(RESIDENT), caller, TENANT);
    let rung = h.requests_to(addr(PHONE_1001), Method::Invite);
    assert_eq!(rung.len(), 1);
    h.respond(addr(PHONE_1001), &rung[0], 200, "op");
    let (k, _) = h.call_of(caller);
    assert_eq!(h.cc.calls[&k].stage, Stage::Connected);
    h.sent.clear();
    (d, rung[0].clone())
}

/// Both phones got a BYE, the call ended answered, its journal row says so, and
/// once the BYEs are answered nothing of the call is left.
fn both_hung_up(h: &mut Harness, caller: &str) {
    let to_resident = h.requests_to(addr(RESIDENT), Method::Bye);
    let to_operator = h.requests_to(addr(PHONE_1001), Method::Bye);
    assert_eq!(
        (to_resident.len(), to_operator.len()),
        (1, 1),
        "neither phone keeps a live dialog"
    );
    let ended = h.events_of("call.ended");
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].payload["disposition"], "answered");
    let row = h
        .actions
        .iter()
        .rev()
        .find_map(|a| match a {
            Action::Journal(r) if r.from_number == caller => Some(r.as_ref()),
            _ => None,
        })
        .expect("a journal row");
    assert_eq!(row.disposition, Some(Disposition::Answered));
    assert!(row.ended_at.is_some());
    assert_eq!(row.operator_extension.as_deref(), Some("1001"));
    for (to, bye) in [(RESIDENT, &to_resident[0]), (PHONE_1001, &to_operator[0])] {
        h.respond_with(addr(to), bye.response(200));
    }
    assert_eq!(h.cc.active_calls(), 0, "nothing of the call is left");
}

#[test]
fn a_recording_that_cannot_be_written_is_announced_and_the_call_goes_on() {
    let mut h = Harness::new("");
    let caller = "+79120000001";
    bridged(&mut h, caller);
    let (id, path) = h
        .media
        .state()
        .recordings
        .last()
        .cloned()
        .expect("recording");
    h.cc.handle_media(
        h.now,
        MediaEvent::RecordingFailed {
            id,
            path: path.clone(),
            error: "No space left on device (os error 28)".into(),
        },
    );
    h.drain();
    let failed = h.events_of("recording.failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].tenant.as_deref(), Some("etalon"));
    let (k, _) = h.call_of(caller);
    assert_eq!(failed[0].payload["call"], h.cc.calls[&k].id.0.as_str());
    assert_eq!(failed[0].payload["file"], path.display().to_string());
    assert!(h.events_of("call.ended").is_empty(), "the call goes on");
}

#[test]
fn when_the_residents_rtp_stops_both_phones_are_hung_up() {
    let mut h = Harness::new("");
    let caller = "+79120000001";
    bridged(&mut h, caller);
    let leg = h.caller_leg(caller);
    h.cc.handle_media(h.now, MediaEvent::RtpTimeout { leg });
    h.drain();
    both_hung_up(&mut h, caller);
}

#[test]
fn when_the_operators_rtp_stops_both_phones_are_hung_up() {
    let mut h = Harness::new("");
    let caller = "+79120000001";
    bridged(&mut h, caller);
    let (k, _) = h.call_of(caller);
    let call = &h.cc.calls[&k];
    let leg = call.legs[call.ringing.unwrap()].media;
    h.cc.handle_media(h.now, MediaEvent::RtpTimeout { leg });
    h.drain();
    both_hung_up(&mut h, caller);
}

/// The resident presses a key; the operator's phone has no telephone-event, so
/// the key goes to it as SIP INFO.
fn key_relayed_as_info(h: &mut Harness, caller: &str) -> Request {
    let leg = h.caller_leg(caller);
    let at = h.now;
    h.cc.handle_media(
        h.now,
        MediaEvent::Dtmf {
            leg,
            digit: '5',
            duration: Duration::from_millis(160),
            at,
        },
    );
    h.drain();
    let info = h.requests_to(addr(PHONE_1001), Method::Info);
    assert_eq!(info.len(), 1, "the key is relayed as INFO");
    info[0].clone()
}

#[test]
fn an_operator_whose_phone_stops_answering_in_its_dialog_is_hung_up_with_the_resident() {
    let mut h = Harness::new("");
    let caller = "+79120000001";
    bridged(&mut h, caller);
    key_relayed_as_info(&mut h, caller);
    // The operator's phone lost its network: the INFO is never answered (Timer F).
    h.later(Duration::from_secs(40));
    h.requests_to(addr(PHONE_1001), Method::Info);
    both_hung_up(&mut h, caller);
}

#[test]
fn an_operator_whose_phone_no_longer_knows_the_dialog_is_hung_up_with_the_resident() {
    for status in [481, 408] {
        let mut h = Harness::new("");
        let caller = "+79120000001";
        bridged(&mut h, caller);
        let info = key_relayed_as_info(&mut h, caller);
        h.respond_with(addr(PHONE_1001), info.response(status));
        both_hung_up(&mut h, caller);
    }
}

#[test]
fn an_in_dialog_request_answered_normally_changes_nothing() {
    let mut h = Harness::new("");
    let caller = "+79120000001";
    bridged(&mut h, caller);
    let info = key_relayed_as_info(&mut h, caller);
    h.respond_with(addr(PHONE_1001), info.response(200));
    h.later(Duration::from_secs(40));
    assert!(h.requests_to(addr(RESIDENT), Method::Bye).is_empty());
    assert!(h.requests_to(addr(PHONE_1001), Method::Bye).is_empty());
    assert!(h.events_of("call.ended").is_empty());
}

#[test]
fn a_key_sent_as_info_reaches_a_party_with_telephone_event_as_rfc_4733() {
    let mut h = Harness::new("");
    let caller = "+79120000001";
    let (d, _) = bridged(&mut h, caller);
    let (k, _) = h.call_of(caller);
    let call = &h.cc.calls[&k];
    let operator = call.legs[call.ringing.unwrap()].media;
    h.media.state().telephone_event.insert(operator);
    let body = "Signal=5\r\nDuration=160\r\n";
    let info = h.in_dialog(&d, "INFO", 2).replace(
        "Content-Length: 0\r\n\r\n",
        &format!(
            "Content-Type: application/dtmf-relay\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    h.deliver_text(addr(RESIDENT), &info);
    assert_eq!(h.media.state().dtmf, [(operator, '5')]);
    assert!(h.requests_to(addr(PHONE_1001), Method::Info).is_empty());
}
