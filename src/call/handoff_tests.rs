//! The calls of tickets' hand-off chains in virtual time: operator first, the
//! informer, the keypad, the operator wait, stops, and what a provider's or a
//! person's answer counts as. The dialer is the test: it sends the orders and reads
//! the reports.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use chrono::TimeZone;

use super::test_harness::*;
use crate::config::Reach;
use crate::dialer::chain::{Stage as ChainStage, StopWhy};
use crate::dialer::order::{AttemptRef, ChainEvent, HandoffOrder, TicketCard, ToCalls};
use crate::store::{AttemptOutcome, Category, DialChainId, EmployeeId, TicketId};

const PERSON: &str = "+79121000001";

fn card() -> Arc<TicketCard> {
    Arc::new(TicketCard {
        ticket: TicketId(7),
        number: "1042".into(),
        tenant: "etalon".into(),
        tenant_name: "УК «Эталон»".into(),
        city: "ekb".into(),
        category: Category::Emergency,
        address: "ул. Ленина, д. 5".into(),
        apartment: Some("12".into()),
        reason: "Затопление сверху".into(),
        description: "Топит сверху".into(),
        deadline: chrono::Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap(),
        caller_phone: None,
        message: vec!["ru/informer-ticket.wav".into(), "ru/num/1.wav".into()],
        address_unsaid: false,
    })
}

fn attempt(seq: u32) -> AttemptRef {
    AttemptRef {
        chain: DialChainId(3),
        seq,
    }
}

fn order(seq: u32, reach: Reach) -> ToCalls {
    ToCalls::Place(Box::new(HandoffOrder {
        attempt: attempt(seq),
        stage: ChainStage::Level1,
        card: card(),
        person: EmployeeId(11),
        person_name: "Дневной Сантехник".into(),
        phone: PhoneNumber::parse(PERSON).unwrap(),
        try_no: 2,
        tries: 5,
        reach,
        operator_wait: Duration::from_secs(60),
        repeats: 2,
    }))
}

impl Harness {
    fn chain(&mut self, message: ToCalls) {
        self.cc.handle_chain(self.now, message);
        self.drain();
    }

    /// The chain events reported so far (taken).
    fn reports(&mut self) -> Vec<(u32, ChainEvent)> {
        let mut out = Vec::new();
        self.actions.retain(|a| match a {
            Action::Chain(r) => {
                out.push((r.attempt.seq, r.event.clone()));
                false
            }
            _ => true,
        });
        out
    }

    /// The live call of attempt `seq`.
    fn call_of_seq(&self, seq: u32) -> u64 {
        self.cc.call_of_attempt(attempt(seq)).expect("a live call")
    }

    fn key(&mut self, seq: u32, digit: char) {
        let k = self.call_of_seq(seq);
        let leg = self.cc.calls[&k].legs[0].media;
        self.cc.handle_media(
            self.now,
            MediaEvent::Dtmf {
                leg,
                digit,
                duration: Duration::from_millis(100),
                at: self.now,
            },
        );
        self.drain();
    }

    /// The prompt playing to the person of attempt `seq` ends.
    fn prompt_ends(&mut self, seq: u32) {
        let k = self.call_of_seq(seq);
        let leg = self.cc.calls[&k].legs[0].media;
        self.finish_playback(leg);
    }

    /// A BYE from a party we called (`invite` as we sent it, `tag` theirs).
    fn bye_from(&mut self, from: SocketAddr, invite: &Request, tag: &str) {
        let our_tag = invite.headers.from.tag().unwrap().to_owned();
        let text = format!(
            "BYE sip:{ENGINE} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKbye{tag}\r\nFrom: <{}>;tag={tag}\r\nTo: <{}>;tag={our_tag}\r\nCall-ID: {}\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            invite.headers.to.uri, invite.headers.from.uri, invite.headers.call_id
        );
        self.deliver_text(from, &text);
    }
}

use std::net::SocketAddr;

fn ended(reports: &[(u32, ChainEvent)]) -> Option<(AttemptOutcome, u16)> {
    reports.iter().find_map(|(_, e)| match e {
        ChainEvent::Ended {
            outcome,
            sip_status,
        } => Some((*outcome, *sip_status)),
        _ => None,
    })
}

fn playing_now(h: &Harness, seq: u32) -> Vec<String> {
    let k = h.call_of_seq(seq);
    let leg = h.cc.calls[&k].legs[0].media;
    h.playing(leg).unwrap_or_default()
}

#[test]
fn operator_first_rings_the_operator_with_the_ticket_then_dials_the_executor() {
    let mut h = Harness::new("");
    h.on_duty("1001", "pass1001", addr(PHONE_1001));
    h.chain(order(1, Reach::OperatorFirst));
    let rung = h.requests_to(addr(PHONE_1001), Method::Invite);
    assert_eq!(rung.len(), 1, "the operator is rung first");
    assert_eq!(rung[0].headers.get("X-Dispatch-Purpose"), Some("handoff"));
    assert_eq!(rung[0].headers.get("X-Dispatch-Ticket"), Some("1042"));
    assert!(
        h.requests_to(addr(PROVIDER_X), Method::Invite).is_empty(),
        "nobody is dialled before the operator answers"
    );
    let card = &h.events_of("call.offered")[0].payload["handoff"];
    assert_eq!(card["ticket"]["number"], "1042");
    assert_eq!(card["person_name"], "Дневной Сантехник");
    assert_eq!(
        (card["attempt"].as_u64(), card["tries"].as_u64()),
        (Some(2), Some(5))
    );
    let reports = h.reports();
    assert!(
        matches!(&reports[0].1, ChainEvent::Started { reach: Reach::OperatorFirst, operator: Some(op), .. } if op == "1001")
    );

    h.respond(addr(PHONE_1001), &rung[0], 200, "op");
    let out = h.requests_to(addr(PROVIDER_X), Method::Invite);
    assert_eq!(out.len(), 1);
    assert!(out[0].uri.to_string().contains("+79121000001"));
    assert!(
        out[0].headers.from.uri.to_string().contains("+73432000001"),
        "from the tenant's own number"
    );
    h.respond(addr(PROVIDER_X), &out[0], 180, "ex");
    h.respond(addr(PROVIDER_X), &out[0], 200, "ex");
    let reports = h.reports();
    assert_eq!(
        reports.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>(),
        [ChainEvent::Ringing, ChainEvent::Answered]
    );
    let k = h.call_of_seq(1);
    assert_eq!(h.cc.calls[&k].stage, Stage::Connected);
    assert_eq!(h.cc.calls[&k].record.ticket_id, Some(TicketId(7)));
    assert_eq!(
        h.media.state().recordings.len(),
        1,
        "the executor's side is recorded"
    );

    // The executor hangs up: the operator gets a BYE and goes to wrap-up.
    h.bye_from(addr(PROVIDER_X), &out[0], "ex");
    assert_eq!(h.requests_to(addr(PHONE_1001), Method::Bye).len(), 1);
    assert_eq!(ended(&h.reports()), Some((AttemptOutcome::Answered, 200)));
}

#[test]
fn with_no_operator_free_in_time_the_informer_calls_instead() {
    let mut h = Harness::new("");
    h.chain(order(1, Reach::OperatorFirst));
    assert!(h.sent.is_empty(), "the order waits for an operator");
    h.later(Duration::from_secs(59));
    assert!(h.requests_to(addr(PROVIDER_X), Method::Invite).is_empty());
    h.later(Duration::from_secs(1));
    let out = h.requests_to(addr(PROVIDER_X), Method::Invite);
    assert_eq!(out.len(), 1, "the informer calls the person");
    let reports = h.reports();
    assert!(matches!(
        &reports[0].1,
        ChainEvent::Started {
            reach: Reach::Informer,
            operator: None,
            ..
        }
    ));
}

#[test]
fn residents_in_the_queue_get_the_free_operator_before_a_hand_off() {
    let mut h = Harness::new("");
    h.chain(order(1, Reach::OperatorFirst));
    let _resident = h.call(addr(RESIDENT), "+79120000009", TENANT).unwrap();
    h.unknown("+79120000009");
    let leg = h.caller_leg("+79120000009");
    h.finish_playback(leg);
    h.on_duty("1001", "pass1001", addr(PHONE_1001));
    let rung = h.requests_to(addr(PHONE_1001), Method::Invite);
    assert_eq!(rung.len(), 1);
    assert_eq!(
        rung[0].headers.get("X-Dispatch-Purpose"),
        None,
        "the resident's call, not the hand-off"
    );
}

fn informer_answered(h: &mut Harness) -> Request {
    h.chain(order(1, Reach::Informer));
    let out = h.requests_to(addr(PROVIDER_X), Method::Invite);
    assert_eq!(out.len(), 1);
    h.respond(addr(PROVIDER_X), &out[0], 180, "p");
    h.respond(addr(PROVIDER_X), &out[0], 200, "p");
    out[0].clone()
}

#[test]
fn the_informer_reads_the_ticket_and_keypad_1_accepts_it_when_the_dialer_says_so() {
    let mut h = Harness::new("");
    let invite = informer_answered(&mut h);
    let played = playing_now(&h, 1);
    assert_eq!(played[0], "ru/informer-ticket.wav", "the ticket first");
    assert!(played.ends_with(&[
        "ru/informer-accept.wav".to_owned(),
        "ru/informer-decline.wav".to_owned(),
        "ru/informer-operator.wav".to_owned()
    ]));
    assert_eq!(
        h.media.state().recordings.len(),
        1,
        "informer calls are recorded"
    );
    h.reports();
    h.key(1, '1');
    assert_eq!(
        h.reports().last().map(|r| r.1.clone()),
        Some(ChainEvent::AcceptPressed)
    );
    h.chain(ToCalls::Decided {
        attempt: attempt(1),
        won: true,
    });
    assert_eq!(playing_now(&h, 1), ["ru/informer-accepted.wav"]);
    h.prompt_ends(1);
    assert_eq!(h.requests_to(addr(PROVIDER_X), Method::Bye).len(), 1);
    let _ = invite;
    assert_eq!(ended(&h.reports()), Some((AttemptOutcome::Answered, 200)));
}

#[test]
fn a_person_who_pressed_1_second_hears_that_another_employee_accepted() {
    let mut h = Harness::new("");
    informer_answered(&mut h);
    h.key(1, '1');
    h.chain(ToCalls::Decided {
        attempt: attempt(1),
        won: false,
    });
    assert_eq!(playing_now(&h, 1), ["ru/informer-taken.wav"]);
}

#[test]
fn keypad_2_declines_and_the_call_ends_politely() {
    let mut h = Harness::new("");
    informer_answered(&mut h);
    h.reports();
    h.key(1, '2');
    assert_eq!(h.reports()[0].1, ChainEvent::Declined);
    assert_eq!(playing_now(&h, 1), ["ru/informer-declined.wav"]);
    h.prompt_ends(1);
    assert_eq!(h.requests_to(addr(PROVIDER_X), Method::Bye).len(), 1);
}

#[test]
fn with_no_key_the_message_is_repeated_twice_then_the_call_ends_as_no_input() {
    let mut h = Harness::new("");
    informer_answered(&mut h);
    h.reports();
    for round in 0..3 {
        assert_eq!(
            playing_now(&h, 1)[0],
            "ru/informer-ticket.wav",
            "round {round}"
        );
        h.prompt_ends(1);
        h.later(Duration::from_secs(6));
    }
    let reports = h.reports();
    assert_eq!(reports[0].1, ChainEvent::NoInput);
    assert_eq!(playing_now(&h, 1), ["ru/goodbye.wav"]);
}

#[test]
fn keypad_0_puts_the_person_through_to_the_first_free_operator_with_the_ticket() {
    let mut h = Harness::new("");
    informer_answered(&mut h);
    h.key(1, '0');
    assert_eq!(
        playing_now(&h, 1),
        ["ru/connecting.wav", "ru/hold-music.wav"]
    );
    h.on_duty("1001", "pass1001", addr(PHONE_1001));
    let rung = h.requests_to(addr(PHONE_1001), Method::Invite);
    assert_eq!(rung.len(), 1);
    let offered = h.events_of("call.offered");
    let card = &offered.last().unwrap().payload["handoff"];
    assert_eq!(card["transfer"], true);
    assert_eq!(card["ticket"]["number"], "1042");
    h.reports();
    h.respond(addr(PHONE_1001), &rung[0], 200, "op");
    assert_eq!(
        h.reports()[0].1,
        ChainEvent::OperatorJoined {
            operator: "1001".into()
        }
    );
    let k = h.call_of_seq(1);
    assert_eq!(h.cc.calls[&k].stage, Stage::Connected);
}

#[test]
fn busy_counts_as_an_attempt_and_never_fails_over() {
    let mut h = Harness::new("");
    h.chain(order(1, Reach::Informer));
    let x = h.requests_to(addr(PROVIDER_X), Method::Invite).remove(0);
    h.respond(addr(PROVIDER_X), &x, 486, "p");
    assert!(h.requests_to(addr(PROVIDER_Y), Method::Invite).is_empty());
    assert_eq!(ended(&h.reports()), Some((AttemptOutcome::Busy, 486)));
}

#[test]
fn a_provider_failing_with_503_hands_the_attempt_to_the_other_trunk() {
    let mut h = Harness::new("");
    h.chain(order(1, Reach::Informer));
    let x = h.requests_to(addr(PROVIDER_X), Method::Invite).remove(0);
    h.respond(addr(PROVIDER_X), &x, 503, "p");
    let y = h.requests_to(addr(PROVIDER_Y), Method::Invite);
    assert_eq!(y.len(), 1, "same attempt, other provider");
    assert_eq!(ended(&h.reports()), None, "still the same attempt");
    h.respond(addr(PROVIDER_Y), &y[0], 480, "py");
    assert_eq!(
        ended(&h.reports()),
        Some((AttemptOutcome::Unreachable, 480))
    );
}

#[test]
fn a_480_after_ringing_is_no_answer() {
    let mut h = Harness::new("");
    h.chain(order(1, Reach::Informer));
    let x = h.requests_to(addr(PROVIDER_X), Method::Invite).remove(0);
    h.respond(addr(PROVIDER_X), &x, 180, "p");
    h.respond(addr(PROVIDER_X), &x, 480, "p");
    assert_eq!(ended(&h.reports()), Some((AttemptOutcome::NoAnswer, 480)));
}

#[test]
fn a_call_that_only_rings_is_cancelled_at_the_ring_timeout_as_no_answer() {
    let mut h = Harness::new("");
    h.chain(order(1, Reach::Informer));
    let x = h.requests_to(addr(PROVIDER_X), Method::Invite).remove(0);
    h.respond(addr(PROVIDER_X), &x, 180, "p");
    h.later(Duration::from_secs(30));
    assert_eq!(h.requests_to(addr(PROVIDER_X), Method::Cancel).len(), 1);
    assert_eq!(ended(&h.reports()), Some((AttemptOutcome::NoAnswer, 487)));
}

#[test]
fn stopping_a_ringing_call_cancels_it_and_a_waiting_order_is_dropped() {
    let mut h = Harness::new("");
    h.chain(order(1, Reach::Informer));
    h.chain(order(2, Reach::OperatorFirst));
    let x = h.requests_to(addr(PROVIDER_X), Method::Invite).remove(0);
    h.respond(addr(PROVIDER_X), &x, 180, "p");
    h.reports();
    for seq in [1, 2] {
        h.chain(ToCalls::Stop {
            attempt: attempt(seq),
            why: StopWhy::Accepted,
        });
    }
    assert_eq!(h.requests_to(addr(PROVIDER_X), Method::Cancel).len(), 1);
    let reports = h.reports();
    let cancelled: Vec<u32> = reports
        .iter()
        .filter(|(_, e)| {
            matches!(
                e,
                ChainEvent::Ended {
                    outcome: AttemptOutcome::Cancelled,
                    ..
                }
            )
        })
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(cancelled, [1, 2]);
    // The waiting order is gone: a free operator later gets nothing.
    h.on_duty("1001", "pass1001", addr(PHONE_1001));
    assert!(h.requests_to(addr(PHONE_1001), Method::Invite).is_empty());
}

#[test]
fn stopping_an_answered_informer_call_says_why_then_hangs_up() {
    let mut h = Harness::new("");
    informer_answered(&mut h);
    h.chain(ToCalls::Stop {
        attempt: attempt(1),
        why: StopWhy::Accepted,
    });
    assert_eq!(playing_now(&h, 1), ["ru/informer-taken.wav"]);
    h.prompt_ends(1);
    assert_eq!(h.requests_to(addr(PROVIDER_X), Method::Bye).len(), 1);
}

#[test]
fn an_operator_who_misses_the_hand_off_hands_it_to_the_next_one() {
    let mut h = Harness::new("");
    h.on_duty("1001", "pass1001", addr(PHONE_1001));
    h.on_duty("1002", "pass1002", addr(PHONE_1002));
    h.chain(order(1, Reach::OperatorFirst));
    let mut rung: Vec<(&str, Request)> = Vec::new();
    for phone in [PHONE_1001, PHONE_1002] {
        for r in h.requests_to(addr(phone), Method::Invite) {
            rung.push((phone, r));
        }
    }
    assert_eq!(rung.len(), 1, "one operator at a time");
    let (missed, invite) = rung.remove(0);
    h.respond(addr(missed), &invite, 486, "busy");
    let other = if missed == PHONE_1001 {
        PHONE_1002
    } else {
        PHONE_1001
    };
    assert_eq!(
        h.requests_to(addr(other), Method::Invite).len(),
        1,
        "the next operator is rung"
    );
    assert!(
        ended(&h.reports()).is_none(),
        "no attempt counted against the executor"
    );
}
