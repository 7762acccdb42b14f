//! Operator first: an operator is rung as for an incoming call, and the engine
//! dials the party only when the operator answers.
//!
//! Operators never dial by hand. The first free operator's softphones ring (every
//! registered contact of theirs, the first to answer wins); their card says whom
//! the engine will call and why (a resident's callback, a staff member's, a
//! ticket's hand-off with the ticket on it). When they answer they hear
//! "connecting" and music while the party's phone rings (`Dialout`, [`super::dialout`]); when the
//! party answers both are bridged and the party's side is recorded.
//!
//! An operator who does not take the call (rang out, rejected, unreachable) hands
//! the errand back, to the front of its queue, and no attempt is counted against
//! the party; one who gives up while the party's phone rings ends the attempt as
//! not answered. Every attempt at the party that ends without a conversation is
//! reported with its outcome (busy, no answer, rejected, unreachable, failed) and
//! the operator goes to wrap-up as after any call.

use std::time::Instant;

use serde_json::json;

use super::super::control::{
    Action, AfterPlayback, Call, CallControl, CallTimer, Disposition, Kind, Stage,
};
use super::super::inbound::RingFailure;
use super::super::leg::Note;
use super::dialout::{AfterFailure, Dialout};
use super::{Errand, Flow, Input, disposition};
use crate::config::Reach;
use crate::dialer::chain::StopWhy;
use crate::dialer::order::ChainEvent;
use crate::phone::PhoneNumber;
use crate::store::{AttemptOutcome, CallDirection, DialAttemptOutcome, DialKind};

/// Where an operator-first call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// The operator's contacts ring (the call's ringing group).
    RingingOperator,
    /// The operator answered; the party's phone is being dialled.
    Dialling,
    /// The party (a staff member called back) hears who calls, then is bridged.
    Greeting,
    /// Operator and party talk.
    Talking,
    /// A last prompt plays, then both are hung up.
    Closing,
}

/// An operator-first call (see the module doc).
#[derive(Debug)]
pub(crate) struct OperatorFirst {
    /// What it is for.
    pub errand: Errand,
    /// Where it stands.
    pub state: State,
    /// The party's leg.
    pub dialout: Dialout,
}

impl CallControl {
    /// Starts an operator-first call for `errand` with the free operator `ext`:
    /// their softphones ring first (every registered contact), as an incoming call.
    /// `Err` when the operator cannot be rung (the errand stays the caller's).
    pub(crate) fn start_operator_first(
        &mut self,
        now: Instant,
        errand: Errand,
        ext: String,
    ) -> Result<(), RingFailure> {
        let (origin, city) = match &errand {
            Errand::Job(job, briefing) => (
                job.origin_number.clone(),
                briefing
                    .as_ref()
                    .and_then(|b| b.ticket.as_ref())
                    .map(|t| t.city.clone()),
            ),
            Errand::Handoff { order, .. } => (None, Some(order.card.city.clone())),
        };
        let tenant = errand.tenant();
        let number = self.caller_id_number(origin.as_deref(), tenant.as_deref(), city.as_deref());
        let from = number
            .as_ref()
            .map(|n| n.number.to_string())
            .unwrap_or_default();
        let target = errand.target();
        let (key, mut call) = self.new_call(
            now,
            Kind::Outbound,
            number.clone(),
            target.clone(),
            target.clone(),
            CallDirection::Outbound,
        );
        call.record.from_number = from.clone();
        call.record.to_number = target.clone();
        call.tenant = tenant.or(call.tenant);
        call.record.tenant = call.tenant.clone();
        match &errand {
            Errand::Handoff { order, .. } => {
                call.record.ticket_id = Some(order.card.ticket);
                call.city = Some(order.card.city.clone());
            }
            Errand::Job(job, _) => {
                call.record.ticket_id = job.ticket_id;
                call.city = city.clone().or(call.city);
            }
        }
        let preferred = number.as_ref().and_then(|n| n.trunk.clone());
        let dialout = Dialout::new(self, now, &target, &from, preferred.as_deref());
        let mut headers = vec![("X-Dispatch-Purpose", errand.purpose().to_owned())];
        match &errand {
            Errand::Handoff { order, .. } => {
                headers.push(("X-Dispatch-Ticket", order.card.number.clone()));
            }
            Errand::Job(_, Some(briefing)) => {
                if let Some(card) = &briefing.ticket {
                    headers.push(("X-Dispatch-Ticket", card.number.clone()));
                }
            }
            Errand::Job(_, None) => {}
        }
        let legs = match self.ring_contacts(now, &mut call, &ext, &headers) {
            Ok(legs) => legs,
            Err(failure) => {
                tracing::warn!(operator = %ext, ?failure, purpose = errand.purpose(), "cannot ring the operator");
                return Err(failure);
            }
        };
        call.ringing = legs.first().copied();
        call.forks = legs;
        call.operator = Some(ext.clone());
        call.stage = Stage::Ringing;
        let wall = self.wall(now);
        self.operators.engage(&ext, &call.id.0, now, wall);
        call.set_timer(CallTimer::Ring, now + self.config.queue.ring_timeout);
        let attempt = errand.attempt();
        let lookup = match &errand {
            Errand::Job(job, None) => PhoneNumber::parse(&job.target).ok(),
            Errand::Job(_, Some(_)) | Errand::Handoff { .. } => None,
        };
        call.flow = Some(Flow::OperatorFirst(OperatorFirst {
            errand,
            state: State::RingingOperator,
            dialout,
        }));
        self.report(
            attempt,
            ChainEvent::Started {
                call: call.id.0.clone(),
                reach: Reach::OperatorFirst,
                operator: Some(ext),
            },
        );
        match lookup {
            // A callback's card shows what the store knows of the number.
            Some(phone) => self.act(Action::Lookup {
                call: key,
                phone,
                tenant: call.tenant.clone(),
                city: None,
            }),
            None => self.outbound_offered(now, &mut call),
        }
        // No journal row yet: the call is only the operator's until they take it
        // and the party's phone rings.
        self.insert_call(key, call);
        Ok(())
    }

    /// The operator's card: `call.offered` and `call.ringing` for the operator
    /// about to call someone (a follow-up's card says why and what to ask).
    pub(crate) fn outbound_offered(&mut self, _now: Instant, call: &mut Call) {
        let mut payload = self.offered_payload(call);
        payload["operator"] = json!(call.operator);
        if let Some(Flow::OperatorFirst(f)) = &call.flow {
            if let Errand::Job(job, Some(briefing)) = &f.errand {
                payload["follow_up"] = CallControl::follow_up_card(job, briefing);
            }
        }
        self.emit("call.offered", call.tenant.clone(), payload.clone());
        self.emit("call.ringing", call.tenant.clone(), payload);
    }
}

impl OperatorFirst {
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
            Input::PlaybackDone if self.state == State::Greeting => {
                if let Some(idx) = self.dialout.leg {
                    self.bridge(cc, call, idx);
                }
            }
            Input::PlaybackDone if self.state == State::Closing => {
                let key = call.key;
                for idx in 0..call.legs.len() {
                    cc.drop_leg(now, key, call, idx);
                }
                cc.finish(now, call, Disposition::Answered, 200);
                cc.report(
                    self.errand.attempt(),
                    ChainEvent::Ended {
                        outcome: AttemptOutcome::Answered,
                        sip_status: 200,
                    },
                );
            }
            Input::Stop(why) => self.stop(cc, now, call, why),
            Input::Timer(_)
            | Input::Digit(..)
            | Input::PlaybackDone
            | Input::Decided(_)
            | Input::Operator(_) => {}
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
        let operator_ringing = self.state == State::RingingOperator && call.forks.contains(&idx);
        let party = self.dialout.is_leg(idx);
        match note {
            Note::Answered if operator_ringing => {
                cc.cancel_forks(now, call, Some(idx));
                if idx != 0 {
                    cc.swap_legs(key, call, 0, idx);
                }
                call.ringing = Some(0);
                call.clear_timer(CallTimer::Ring);
                call.operator_connected = true;
                // The operator hears "connecting" while the party's phone rings.
                let connecting = super::super::announcements::prompt(&cc.config, "connecting");
                let music = cc.config.prompts.hold_music.clone();
                cc.play(
                    call,
                    0,
                    vec![connecting, music],
                    true,
                    AfterPlayback::Nothing,
                );
                self.state = State::Dialling;
                self.place(cc, now, call);
            }
            Note::Failed { status, .. }
                if operator_ringing && cc.fork_failed(now, call, idx, status) =>
            {
                call.clear_timer(CallTimer::Ring);
                self.operator_skipped(cc, now, call, true);
            }
            Note::Ringing if party => {
                self.dialout.rang = true;
                cc.report(self.errand.attempt(), ChainEvent::Ringing);
            }
            Note::Answered if party && self.state == State::Dialling => {
                call.clear_timer(CallTimer::Ring);
                self.answered(cc, now, call, idx);
            }
            Note::Failed {
                status,
                reason,
                failure,
            } if party => {
                call.clear_timer(CallTimer::Ring);
                tracing::info!(call = %call.id, status, %reason, trunk = ?self.dialout.trunk, "the party's leg failed");
                match self.dialout.failed(status, failure) {
                    AfterFailure::NextTrunk => self.place(cc, now, call),
                    AfterFailure::Over(outcome) => self.end_attempt(cc, now, call, outcome, status),
                }
            }
            _ => {}
        }
    }

    /// The party answered: the call counts as made and is recorded; both are
    /// bridged, after a staff member has heard who calls them back.
    fn answered(&mut self, cc: &mut CallControl, now: Instant, call: &mut Call, idx: usize) {
        cc.start_recording(now, call, idx);
        call.stage = Stage::Connected;
        call.answered_at = Some(now);
        call.record.answered_at = Some(cc.wall(now));
        call.record.operator_extension = call.operator.clone();
        cc.emit(
            "call.answered",
            call.tenant.clone(),
            json!({ "call": call.id, "operator": call.operator, "direction": "outbound", "purpose": self.errand.purpose() }),
        );
        cc.journal(call);
        cc.dial_outcome_event(call, &self.errand, "answered");
        match &self.errand {
            Errand::Job(job, _) => {
                let job = job.clone();
                cc.job_attempt(&job, DialAttemptOutcome::Answered, call, None);
            }
            Errand::Handoff { order, .. } => {
                cc.report(Some(order.attempt), ChainEvent::Answered);
            }
        }
        self.state = State::Talking;
        if self
            .errand
            .job()
            .is_some_and(|j| j.kind == DialKind::StaffCallback)
        {
            // The staff member hears who calls back before the operator speaks;
            // the operator hears music meanwhile.
            let intro = super::super::announcements::prompt(&cc.config, "staff-callback-intro");
            cc.play(call, idx, vec![intro], false, AfterPlayback::Flow);
            if call.playback.is_some() {
                self.state = State::Greeting;
                return;
            }
        }
        self.bridge(cc, call, idx);
    }

    /// Operator and party hear each other.
    fn bridge(&mut self, cc: &mut CallControl, call: &mut Call, idx: usize) {
        let (Some(op), Some(other)) = (
            call.legs.first().map(|l| l.media),
            call.legs.get(idx).map(|l| l.media),
        ) else {
            return;
        };
        let _ = cc.media.stop_playback(op);
        let _ = cc.media.stop_playback(other);
        call.playback = None;
        let _ = cc.media.bridge(op, other);
        self.state = State::Talking;
    }

    /// Places the party's leg on the next trunk, or ends the attempt as failed.
    fn place(&mut self, cc: &mut CallControl, now: Instant, call: &mut Call) {
        if !self.dialout.place(cc, now, call) {
            return self.end_attempt(cc, now, call, DialAttemptOutcome::Failed, 503);
        }
        cc.journal(call);
        let trunk = self.dialout.trunk.clone().unwrap_or_default();
        cc.dial_attempt_event(call, &self.errand, &trunk);
    }

    /// The operator did not take the call (`missed`: their softphone rang out,
    /// rejected it or was unreachable) or hung up before the party was dialled:
    /// the errand goes back to the front of its queue for the next free operator
    /// and no attempt is counted against the party. The card closes with
    /// `call.ended`, disposition `returned`.
    fn operator_skipped(
        &mut self,
        cc: &mut CallControl,
        now: Instant,
        call: &mut Call,
        missed: bool,
    ) {
        match self.errand.clone() {
            Errand::Job(job, _) => cc.jobs.push_front(*job),
            Errand::Handoff { order, deadline } => {
                cc.handoffs
                    .push_front(super::super::handoff::Held { order, deadline });
            }
        }
        cc.emit(
            "call.ended",
            call.tenant.clone(),
            json!({
                "call": call.id,
                "disposition": "returned",
                "sip_status": 0,
                "wait_ms": 0,
                "talk_ms": 0,
                "operator": call.operator,
            }),
        );
        if let Some(ext) = call.operator.take() {
            let wall = cc.wall(now);
            let pause = missed && cc.config.queue.pause_after_missed;
            cc.operators.missed(&ext, pause, now, wall);
        }
        call.reported = true; // no journal row was opened
        for leg in &call.legs {
            leg.close_media(cc.media.as_ref());
        }
        cc.wants_dispatch = true;
    }

    /// One attempt at the party ended without a conversation; `status` is the SIP
    /// status that ended it (0 when no response came at all).
    fn end_attempt(
        &mut self,
        cc: &mut CallControl,
        now: Instant,
        call: &mut Call,
        outcome: DialAttemptOutcome,
        status: u16,
    ) {
        cc.dial_outcome_event(call, &self.errand, outcome.as_str());
        match &self.errand {
            Errand::Job(job, _) => {
                let job = job.clone();
                cc.job_attempt(&job, outcome, call, None);
            }
            Errand::Handoff { order, .. } => cc.report(
                Some(order.attempt),
                ChainEvent::Ended {
                    outcome: outcome.into(),
                    sip_status: status,
                },
            ),
        }
        let key = call.key;
        cc.drop_leg(now, key, call, 0);
        cc.finish(now, call, disposition(outcome), status);
    }

    fn ring_timeout(&mut self, cc: &mut CallControl, now: Instant, call: &mut Call) {
        let key = call.key;
        match self.state {
            State::RingingOperator => {
                // The operator's contacts rang out: the errand goes to the next one free.
                cc.cancel_forks(now, call, None);
                self.operator_skipped(cc, now, call, true);
            }
            State::Dialling => {
                if let Some(idx) = self.dialout.leg {
                    cc.drop_leg(now, key, call, idx);
                }
                // Our ring timer ran out: we cancelled it.
                self.end_attempt(cc, now, call, DialAttemptOutcome::NoAnswer, 487);
            }
            State::Greeting | State::Talking | State::Closing => {}
        }
    }

    fn gone(&mut self, cc: &mut CallControl, now: Instant, call: &mut Call, idx: usize) {
        let key = call.key;
        match self.state {
            State::Greeting | State::Talking | State::Closing => {
                for other in 0..call.legs.len() {
                    if other != idx {
                        cc.drop_leg(now, key, call, other);
                    }
                }
                cc.finish(now, call, Disposition::Answered, 200);
                cc.report(
                    self.errand.attempt(),
                    ChainEvent::Ended {
                        outcome: AttemptOutcome::Answered,
                        sip_status: 200,
                    },
                );
            }
            // The operator gave up while the party's phone rang: the attempt counts
            // as not answered and the dialer's interval applies (putting the errand
            // straight back would ring the same operator again).
            State::Dialling if idx == 0 => match self.dialout.leg {
                Some(party) => {
                    cc.drop_leg(now, key, call, party);
                    self.end_attempt(cc, now, call, DialAttemptOutcome::NoAnswer, 487);
                }
                None => self.operator_skipped(cc, now, call, false),
            },
            State::Dialling | State::RingingOperator => {}
        }
    }

    /// The dialer stops this attempt: somebody accepted the ticket, or it closed.
    fn stop(&mut self, cc: &mut CallControl, now: Instant, call: &mut Call, why: StopWhy) {
        let key = call.key;
        match self.state {
            State::RingingOperator => {
                cc.cancel_forks(now, call, None);
                if let Some(ext) = call.operator.take() {
                    let wall = cc.wall(now);
                    cc.operators.release(&ext, now, wall);
                }
                cc.emit(
                    "call.ended",
                    call.tenant.clone(),
                    json!({ "call": call.id, "disposition": "cancelled", "sip_status": 487, "wait_ms": 0, "talk_ms": 0, "operator": null }),
                );
                call.reported = true;
                for leg in &call.legs {
                    leg.close_media(cc.media.as_ref());
                }
                cc.wants_dispatch = true;
                cc.report(
                    self.errand.attempt(),
                    ChainEvent::Ended {
                        outcome: AttemptOutcome::Cancelled,
                        sip_status: 487,
                    },
                );
            }
            State::Dialling => {
                if let Some(idx) = self.dialout.leg {
                    cc.drop_leg(now, key, call, idx);
                }
                cc.drop_leg(now, key, call, 0);
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
            State::Greeting | State::Talking => {
                // Both hear why the call ends, then both are hung up.
                let Some(party) = self.dialout.leg.or(call.ringing) else {
                    return;
                };
                if let Some(leg) = call.legs.get(party) {
                    let _ = cc.media.unbridge(leg.media);
                }
                let prompt = match why {
                    StopWhy::Accepted => "informer-taken",
                    StopWhy::TicketClosed => "goodbye",
                };
                let prompt = super::super::announcements::prompt(&cc.config, prompt);
                cc.play(call, 0, vec![prompt.clone()], false, AfterPlayback::Nothing);
                cc.play(call, party, vec![prompt], false, AfterPlayback::Flow);
                self.state = State::Closing;
                if call.playback.is_none() {
                    self.handle(cc, now, call, Input::PlaybackDone);
                }
            }
            State::Closing => {}
        }
    }
}
