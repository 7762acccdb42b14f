//! The informer: the robot call of a ticket's hand-off chain.
//!
//! The engine calls the person directly (`Dialout`, [`super::dialout`]) and, when they answer,
//! records the call and reads the ticket out (the dialer built the message from
//! prompts: the company, "emergency ticket", its number, the work, the address, the
//! deadline), followed by the keypad menu: 1 accepts, 2 declines, 0 puts the person
//! through to the first free operator with the ticket on the operator's card. Keys
//! come as RFC 4733 events or SIP INFO alike and may interrupt the message. With no
//! key the message is repeated (`repeats` times), then the call ends as "no input".
//!
//! Pressing 1 does not accept by itself: the dialer accepts the ticket in one store
//! transaction guarded by its version and answers whether this person won; the
//! person then hears "accepted, thank you", or that another employee accepted it
//! first. Every ending is reported to the dialer.

use std::time::{Duration, Instant};

use serde_json::json;

use super::super::control::{AfterPlayback, Call, CallControl, CallTimer, Disposition, Stage};
use super::super::leg::Note;
use super::dialout::{AfterFailure, Dialout};
use super::{Errand, Flow, Input, disposition};
use crate::config::Reach;
use crate::dialer::chain::StopWhy;
use crate::dialer::order::{ChainEvent, HandoffOrder};
use crate::store::{AttemptOutcome, DialAttemptOutcome};

/// How long the informer waits for a key after its message.
pub(crate) const KEY_WAIT: Duration = Duration::from_secs(6);

/// How long a person who pressed 1 waits for the dialer's answer before the call
/// ends politely (the store is not answering).
pub(crate) const DECISION_WAIT: Duration = Duration::from_secs(10);

/// Where an informer call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// The person's phone is being dialled.
    Dialling,
    /// The message plays (a key interrupts it).
    Message,
    /// The message ended: waiting for a key.
    Waiting,
    /// 1 was pressed: waiting for the dialer to say whose the ticket is.
    Deciding,
    /// Put through: waiting for a free operator, with music.
    Holding,
    /// An operator's contacts ring.
    RingingOperator,
    /// The person talks to the operator.
    Talking,
    /// A last prompt plays, then the call is hung up.
    Closing,
}

/// An informer call (see the module doc).
#[derive(Debug)]
pub(crate) struct Informer {
    /// What it is for (always a hand-off).
    pub errand: Errand,
    /// Where it stands.
    pub state: State,
    /// The person's leg.
    pub dialout: Dialout,
    /// How often the message has been played.
    plays: u32,
}

impl CallControl {
    /// Calls the person of `order` as the informer.
    pub(crate) fn start_informer(&mut self, now: Instant, order: Box<HandoffOrder>) {
        let attempt = order.attempt;
        let (key, mut call, dialout) = self.direct_call(
            now,
            Some(&order.card.tenant),
            Some(&order.card.city),
            Some(order.card.ticket),
            &order.phone.to_string(),
        );
        let mut informer = Informer {
            dialout,
            errand: Errand::Handoff {
                order,
                deadline: now,
            },
            state: State::Dialling,
            plays: 0,
        };
        self.report(
            Some(attempt),
            ChainEvent::Started {
                call: call.id.0.clone(),
                reach: Reach::Informer,
                operator: None,
            },
        );
        if !cc_place(&mut informer, self, now, &mut call) {
            informer.end_attempt(self, now, &mut call, DialAttemptOutcome::Failed, 503);
        }
        call.flow = Some(Flow::Informer(informer));
        self.insert_call(key, call);
    }
}

impl Informer {
    fn order(&self) -> Option<&HandoffOrder> {
        match &self.errand {
            Errand::Handoff { order, .. } => Some(order),
            Errand::Job(..) => None,
        }
    }

    /// Runs one input (see [`Input`]).
    pub(crate) fn handle(
        &mut self,
        cc: &mut CallControl,
        now: Instant,
        call: &mut Call,
        input: Input,
    ) {
        match input {
            Input::Note(idx, note) => self.note(cc, now, call, idx, note),
            Input::Gone(idx) => self.gone(cc, now, call, idx),
            Input::Timer(CallTimer::Ring) => self.ring_timeout(cc, now, call),
            Input::Timer(CallTimer::Input) if self.state == State::Waiting => {
                self.no_key(cc, now, call)
            }
            Input::Timer(CallTimer::Decision) if self.state == State::Deciding => {
                tracing::warn!(call = %call.id, "no answer from the dialer about the acceptance; ending the call politely");
                self.close(cc, now, call, "goodbye");
            }
            Input::Timer(_) => {}
            Input::Digit(0, digit) => self.key(cc, now, call, digit),
            Input::Digit(..) => {}
            Input::PlaybackDone => match self.state {
                State::Message => {
                    self.state = State::Waiting;
                    call.set_timer(CallTimer::Input, now + KEY_WAIT);
                }
                State::Closing => self.hang_up(cc, now, call),
                _ => {}
            },
            Input::Stop(why) => self.stop(cc, now, call, why),
            Input::Decided(won) if self.state == State::Deciding => {
                call.clear_timer(CallTimer::Decision);
                let prompt = if won {
                    "informer-accepted"
                } else {
                    "informer-taken"
                };
                self.close(cc, now, call, prompt);
            }
            Input::Decided(_) => {}
            Input::Operator(ext) if self.state == State::Holding => {
                self.ring_operator(cc, now, call, ext)
            }
            Input::Operator(_) => {}
        }
    }

    fn note(
        &mut self,
        cc: &mut CallControl,
        now: Instant,
        call: &mut Call,
        idx: usize,
        note: Note,
    ) {
        let key = call.key;
        let person = self.dialout.is_leg(idx);
        let operator_ringing = self.state == State::RingingOperator && call.forks.contains(&idx);
        match note {
            Note::Ringing if person => {
                self.dialout.rang = true;
                cc.report(self.errand.attempt(), ChainEvent::Ringing);
            }
            Note::Answered if person && self.state == State::Dialling => {
                call.clear_timer(CallTimer::Ring);
                // The person is leg 0 from now on (another trunk may have taken the
                // call after the first failed).
                if idx != 0 {
                    cc.swap_legs(key, call, 0, idx);
                }
                self.dialout.leg = Some(0);
                call.ringing = None;
                call.answered_at = Some(now);
                call.record.answered_at = Some(cc.wall(now));
                cc.start_recording(now, call, 0);
                cc.journal(call);
                cc.emit(
                    "call.answered",
                    call.tenant.clone(),
                    json!({ "call": call.id, "operator": null, "direction": "outbound", "purpose": "informer" }),
                );
                cc.dial_outcome_event(call, &self.errand, "answered");
                cc.report(self.errand.attempt(), ChainEvent::Answered);
                self.play_message(cc, now, call);
            }
            Note::Failed {
                status,
                reason,
                failure,
            } if person && self.state == State::Dialling => {
                call.clear_timer(CallTimer::Ring);
                tracing::info!(call = %call.id, status, %reason, trunk = ?self.dialout.trunk, "the informer's call failed");
                match self.dialout.failed(status, failure) {
                    AfterFailure::NextTrunk => {
                        if cc_place(self, cc, now, call) {
                            return;
                        }
                        self.end_attempt(cc, now, call, DialAttemptOutcome::Failed, 503);
                    }
                    AfterFailure::Over(outcome) => self.end_attempt(cc, now, call, outcome, status),
                }
            }
            Note::Answered if operator_ringing => {
                cc.cancel_forks(now, call, Some(idx));
                call.clear_timer(CallTimer::Ring);
                call.operator_connected = true;
                let (Some(a), Some(b)) = (
                    call.legs.first().map(|l| l.media),
                    call.legs.get(idx).map(|l| l.media),
                ) else {
                    return;
                };
                let _ = cc.media.stop_playback(a);
                call.playback = None;
                let _ = cc.media.bridge(a, b);
                call.ringing = Some(idx);
                call.stage = Stage::Connected;
                self.state = State::Talking;
                call.record.operator_extension = call.operator.clone();
                cc.journal(call);
                cc.emit(
                    "call.answered",
                    call.tenant.clone(),
                    json!({ "call": call.id, "operator": call.operator, "direction": "outbound", "purpose": "handoff" }),
                );
                if let Some(ext) = call.operator.clone() {
                    cc.report(
                        self.errand.attempt(),
                        ChainEvent::OperatorJoined { operator: ext },
                    );
                }
            }
            Note::Failed { status, .. }
                if operator_ringing && cc.fork_failed(now, call, idx, status) =>
            {
                call.clear_timer(CallTimer::Ring);
                self.operator_missed(cc, now, call);
            }
            _ => {}
        }
    }

    /// The message, then the keypad menu.
    fn play_message(&mut self, cc: &mut CallControl, now: Instant, call: &mut Call) {
        let Some(order) = self.order() else { return };
        let mut items = order.card.message.clone();
        items.extend(menu(cc, order.card.address_unsaid));
        self.plays += 1;
        self.state = State::Message;
        call.stage = Stage::Menu;
        cc.play(call, 0, items, false, AfterPlayback::Flow);
        if call.playback.is_none() {
            // Nothing could be played: wait for a key all the same.
            self.state = State::Waiting;
            call.set_timer(CallTimer::Input, now + KEY_WAIT);
        }
    }

    fn key(&mut self, cc: &mut CallControl, now: Instant, call: &mut Call, digit: char) {
        if !matches!(self.state, State::Message | State::Waiting) {
            return;
        }
        if let Some(leg) = call.legs.first() {
            let _ = cc.media.stop_playback(leg.media);
        }
        call.playback = None;
        call.clear_timer(CallTimer::Input);
        let attempt = self.errand.attempt();
        match digit {
            '1' => {
                self.state = State::Deciding;
                call.set_timer(CallTimer::Decision, now + DECISION_WAIT);
                cc.report(attempt, ChainEvent::AcceptPressed);
            }
            '2' => {
                cc.report(attempt, ChainEvent::Declined);
                self.close(cc, now, call, "informer-declined");
            }
            '0' => {
                // "Connecting", then music until an operator is free.
                let connecting = super::super::announcements::prompt(&cc.config, "connecting");
                let music = cc.config.prompts.hold_music.clone();
                cc.play(
                    call,
                    0,
                    vec![connecting, music],
                    true,
                    AfterPlayback::Nothing,
                );
                self.state = State::Holding;
                call.stage = Stage::Queued;
                cc.transfers.push_back(call.key);
                cc.wants_dispatch = true;
            }
            _ => {
                let Some(order) = self.order() else { return };
                let mut items = vec![super::super::announcements::prompt(
                    &cc.config,
                    "invalid-choice",
                )];
                items.extend(menu(cc, order.card.address_unsaid));
                self.state = State::Message;
                cc.play(call, 0, items, false, AfterPlayback::Flow);
            }
        }
    }

    /// The message ended and no key came.
    fn no_key(&mut self, cc: &mut CallControl, now: Instant, call: &mut Call) {
        let repeats = self.order().map_or(0, |o| o.repeats);
        if self.plays <= repeats {
            return self.play_message(cc, now, call);
        }
        cc.report(self.errand.attempt(), ChainEvent::NoInput);
        self.close(cc, now, call, "goodbye");
    }

    /// Plays a last prompt, then hangs up.
    fn close(&mut self, cc: &mut CallControl, now: Instant, call: &mut Call, prompt: &str) {
        let prompt = super::super::announcements::prompt(&cc.config, prompt);
        self.state = State::Closing;
        call.stage = Stage::Leaving;
        cc.play(call, 0, vec![prompt], false, AfterPlayback::Flow);
        if call.playback.is_none() {
            self.hang_up(cc, now, call);
        }
    }

    fn hang_up(&mut self, cc: &mut CallControl, now: Instant, call: &mut Call) {
        let key = call.key;
        for idx in 0..call.legs.len() {
            cc.drop_leg(now, key, call, idx);
        }
        self.over(cc, now, call);
    }

    /// The person was reached and the call is over.
    fn over(&mut self, cc: &mut CallControl, now: Instant, call: &mut Call) {
        cc.transfers.retain(|k| *k != call.key);
        cc.finish(now, call, Disposition::Answered, 200);
        cc.report(
            self.errand.attempt(),
            ChainEvent::Ended {
                outcome: AttemptOutcome::Answered,
                sip_status: 200,
            },
        );
    }

    fn end_attempt(
        &mut self,
        cc: &mut CallControl,
        now: Instant,
        call: &mut Call,
        outcome: DialAttemptOutcome,
        status: u16,
    ) {
        cc.dial_outcome_event(call, &self.errand, outcome.as_str());
        cc.report(
            self.errand.attempt(),
            ChainEvent::Ended {
                outcome: outcome.into(),
                sip_status: status,
            },
        );
        cc.finish(now, call, disposition(outcome), status);
    }

    fn ring_timeout(&mut self, cc: &mut CallControl, now: Instant, call: &mut Call) {
        let key = call.key;
        match self.state {
            State::Dialling => {
                if let Some(idx) = self.dialout.leg {
                    cc.drop_leg(now, key, call, idx);
                }
                self.end_attempt(cc, now, call, DialAttemptOutcome::NoAnswer, 487);
            }
            State::RingingOperator => {
                cc.cancel_forks(now, call, None);
                self.operator_missed(cc, now, call);
            }
            _ => {}
        }
    }

    fn gone(&mut self, cc: &mut CallControl, now: Instant, call: &mut Call, idx: usize) {
        let key = call.key;
        match self.state {
            State::Dialling => {}
            State::RingingOperator if idx != 0 => {
                // One of the operator's contacts hung up before answering.
                if cc.fork_failed(now, call, idx, 0) {
                    call.clear_timer(CallTimer::Ring);
                    self.operator_missed(cc, now, call);
                }
            }
            _ => {
                // Either side hung up: the other is hung up too.
                cc.cancel_forks(now, call, None);
                for other in 0..call.legs.len() {
                    if other != idx {
                        cc.drop_leg(now, key, call, other);
                    }
                }
                self.over(cc, now, call);
            }
        }
    }

    /// A free operator for the person who pressed 0.
    fn ring_operator(&mut self, cc: &mut CallControl, now: Instant, call: &mut Call, ext: String) {
        let Some(order) = self.order() else { return };
        let mut card = CallControl::handoff_card(order);
        card["transfer"] = json!(true);
        let number = order.card.number.clone();
        let headers = [
            ("X-Dispatch-Purpose", "handoff".to_owned()),
            ("X-Dispatch-Ticket", number),
        ];
        let Ok(legs) = cc.ring_contacts(now, call, &ext, &headers) else {
            // Stays in line for the next operator.
            cc.transfers.push_front(call.key);
            return;
        };
        call.forks = legs;
        call.operator = Some(ext.clone());
        self.state = State::RingingOperator;
        call.stage = Stage::Ringing;
        let wall = cc.wall(now);
        cc.operators.engage(&ext, &call.id.0, now, wall);
        call.set_timer(CallTimer::Ring, now + cc.config.queue.ring_timeout);
        let mut payload = cc.offered_payload(call);
        payload["operator"] = json!(ext);
        payload["handoff"] = card;
        cc.emit("call.offered", call.tenant.clone(), payload.clone());
        cc.emit("call.ringing", call.tenant.clone(), payload);
    }

    /// The operator rung for a person on hold did not take the call: the person
    /// waits for the next one, first in line.
    fn operator_missed(&mut self, cc: &mut CallControl, now: Instant, call: &mut Call) {
        if let Some(ext) = call.operator.take() {
            let wall = cc.wall(now);
            let pause = cc.config.queue.pause_after_missed;
            cc.operators.missed(&ext, pause, now, wall);
        }
        call.forks.clear();
        self.state = State::Holding;
        call.stage = Stage::Queued;
        cc.transfers.push_front(call.key);
        cc.wants_dispatch = true;
    }

    fn stop(&mut self, cc: &mut CallControl, now: Instant, call: &mut Call, why: StopWhy) {
        let key = call.key;
        let prompt = match why {
            StopWhy::Accepted => "informer-taken",
            StopWhy::TicketClosed => "goodbye",
        };
        match self.state {
            State::Dialling => {
                if let Some(idx) = self.dialout.leg {
                    cc.drop_leg(now, key, call, idx);
                }
                call.clear_timer(CallTimer::Ring);
                cc.finish(now, call, Disposition::Cancelled, 487);
                cc.report(
                    self.errand.attempt(),
                    ChainEvent::Ended {
                        outcome: AttemptOutcome::Cancelled,
                        sip_status: 487,
                    },
                );
            }
            State::Message | State::Waiting | State::Holding => {
                cc.transfers.retain(|k| *k != key);
                call.clear_timer(CallTimer::Input);
                self.close(cc, now, call, prompt);
            }
            State::RingingOperator => {
                cc.cancel_forks(now, call, None);
                call.clear_timer(CallTimer::Ring);
                if let Some(ext) = call.operator.take() {
                    let wall = cc.wall(now);
                    cc.operators.release(&ext, now, wall);
                }
                self.close(cc, now, call, prompt);
            }
            State::Talking => {
                if let Some(op) = call.ringing {
                    if let Some(leg) = call.legs.get(op) {
                        let _ = cc.media.unbridge(leg.media);
                    }
                    let p = super::super::announcements::prompt(&cc.config, prompt);
                    cc.play(call, op, vec![p], false, AfterPlayback::Nothing);
                }
                self.close(cc, now, call, prompt);
            }
            // The decision is the store's: pressing 1 raced this stop, and the
            // dialer's answer says who won.
            State::Deciding | State::Closing => {}
        }
    }
}

/// Places the person's leg on the next trunk and reports the dial attempt.
fn cc_place(informer: &mut Informer, cc: &mut CallControl, now: Instant, call: &mut Call) -> bool {
    if !informer.dialout.place(cc, now, call) {
        return false;
    }
    cc.journal(call);
    let trunk = informer.dialout.trunk.clone().unwrap_or_default();
    cc.dial_attempt_event(call, &informer.errand, &trunk);
    true
}

/// The keypad menu after the message: accept, decline, the dispatcher (stressed
/// first when the message could not say the address).
fn menu(cc: &CallControl, address_unsaid: bool) -> Vec<String> {
    let p = |name: &str| super::super::announcements::prompt(&cc.config, name);
    let mut items = Vec::with_capacity(4);
    if address_unsaid {
        items.push(p("informer-address-ask"));
    }
    items.push(p("informer-accept"));
    items.push(p("informer-decline"));
    items.push(p("informer-operator"));
    items
}
