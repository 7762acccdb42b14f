//! Calling residents and staff back: the dial jobs the 5-minute rule and the
//! dispatch line create.
//!
//! Operators never dial by hand. A claimed job first rings the first free operator,
//! which looks to them like an incoming call carrying whom the engine will call and
//! why; when they answer, the engine places the call to the resident through the
//! tenant's trunk, failing over to the next trunk on 5xx, 408 or no answer at all,
//! but never on 486, 480 or 603 (those are the resident's answer). Busy, no answer,
//! rejected, unreachable and failed are recorded as different outcomes; the store
//! decides when the next attempt is due.

use std::time::Instant;

use bytes::Bytes;
use serde_json::json;

use super::control::{
    Action, AfterPlayback, Call, CallControl, CallTimer, Disposition, Kind, Stage,
};
use super::leg::{Leg, Note};

use crate::config::NumberKind;
use crate::dialer::{self, Ending};
use crate::phone::PhoneNumber;
use crate::sip::endpoint::ClientFailure;
use crate::sip::wire::{CSeq, Headers, Method, NameAddr, Request, Uri};
use crate::store::{CallDirection, DialAttemptOutcome, DialJob};

/// How a leg that did not answer ended, in the dialer's words.
fn ending(status: u16, failure: Option<ClientFailure>) -> Ending {
    match failure {
        Some(ClientFailure::Timeout) => Ending::Timeout,
        Some(ClientFailure::Transport) => Ending::Unreachable,
        None => Ending::Status(status),
    }
}

/// The journal's word for a dial outcome.
fn disposition(outcome: DialAttemptOutcome) -> Disposition {
    match outcome {
        DialAttemptOutcome::Answered => Disposition::Answered,
        DialAttemptOutcome::Busy => Disposition::Busy,
        DialAttemptOutcome::NoAnswer => Disposition::NoAnswer,
        DialAttemptOutcome::Rejected => Disposition::Rejected,
        DialAttemptOutcome::Unreachable => Disposition::Unreachable,
        DialAttemptOutcome::Failed => Disposition::Failed,
    }
}

impl CallControl {
    /// Starts a callback job with a free operator `ext`.
    pub(crate) fn start_callback(&mut self, now: Instant, job: DialJob, ext: String) {
        let number = self
            .config
            .numbers
            .iter()
            .find(|n| n.kind == NumberKind::Tenant && n.tenant == job.tenant)
            .or_else(|| {
                self.config
                    .numbers
                    .iter()
                    .find(|n| n.kind == NumberKind::Tenant)
            })
            .cloned();
        let from = number
            .as_ref()
            .map(|n| n.number.to_string())
            .unwrap_or_default();
        let (key, mut call) = self.new_call(
            now,
            Kind::Callback,
            number.clone(),
            job.target.clone(),
            job.target.clone(),
            CallDirection::Outbound,
        );
        call.record.from_number = from;
        call.record.to_number = job.target.clone();
        call.tenant = job.tenant.clone().or(call.tenant);
        call.record.tenant = call.tenant.clone();
        let preferred = number.as_ref().and_then(|n| n.trunk.clone());
        call.trunks_left = self
            .trunks
            .failover_order(preferred.as_deref())
            .into_iter()
            .map(str::to_owned)
            .collect();
        call.job = Some(job.clone());
        let Some((mut request, target)) = self.operator_invite(&call, &ext, now) else {
            self.jobs.push_front(job);
            return;
        };
        request.headers.push(
            "X-Dispatch-Purpose",
            format!("{:?}", job.kind).to_lowercase(),
        );
        let prefs = self.sdp.clone();
        match Leg::outgoing(
            &mut self.endpoint,
            self.media.as_ref(),
            now,
            request,
            target,
            &prefs,
        ) {
            Ok(leg) => {
                let idx = self.add_leg(key, &mut call, leg);
                call.ringing = Some(idx);
                call.operator = Some(ext.clone());
                call.stage = Stage::Ringing;
                let wall = self.wall(now);
                self.operators.engage(&ext, &call.id.0, now, wall);
                call.set_timer(CallTimer::Ring, now + self.config.queue.ring_timeout);
                if let Ok(phone) = PhoneNumber::parse(&job.target) {
                    self.act(Action::Lookup {
                        call: key,
                        phone,
                        tenant: call.tenant.clone(),
                        city: None,
                    });
                }
                // No journal row yet: the call is only the operator's until they
                // take it and the resident's phone rings.
                self.insert_call(key, call);
            }
            Err(r) => {
                tracing::warn!(operator = %ext, reason = %r.reason, "cannot ring the operator for a callback");
                self.jobs.push_front(job);
            }
        }
    }

    /// The screen-pop for the operator about to call someone back.
    pub(crate) fn callback_looked_up(&mut self, _now: Instant, call: &mut Call) {
        let mut payload = self.offered_payload(call);
        payload["operator"] = json!(call.operator);
        self.emit("call.offered", call.tenant.clone(), payload.clone());
        self.emit("call.ringing", call.tenant.clone(), payload);
    }

    /// Places the resident's leg on the next trunk left.
    fn place_resident(&mut self, now: Instant, key: u64, call: &mut Call) {
        let Some(job) = call.job.clone() else { return };
        while let Some(trunk) = (!call.trunks_left.is_empty()).then(|| call.trunks_left.remove(0)) {
            let Some(config) = self.trunks.config(&trunk).cloned() else {
                continue;
            };
            let Some(target) = self.trunks.target(&trunk) else {
                continue;
            };
            let Ok(uri) = Uri::parse(&format!(
                "sip:{}@{}",
                super::inbound::escape_user(&job.target),
                config.domain
            )) else {
                continue;
            };
            let from_number = call.record.from_number.clone();
            let from_uri = Uri::parse(&format!(
                "sip:{}@{}",
                super::inbound::escape_user(&from_number),
                config.domain
            ))
            .unwrap_or_else(|_| uri.clone());
            let mut from = NameAddr::new(from_uri);
            from.set_tag(&self.endpoint.new_tag());
            let headers = Headers {
                via: Vec::new(),
                from,
                to: NameAddr::new(uri.clone()),
                call_id: self.endpoint.new_call_id(),
                cseq: CSeq {
                    seq: 1,
                    method: Method::Invite,
                },
                max_forwards: Some(70),
                contact: Vec::new(),
                route: Vec::new(),
                record_route: Vec::new(),
                other: Vec::new(),
            };
            let request = Request {
                method: Method::Invite,
                uri,
                headers,
                body: Bytes::new(),
            };

            let prefs = self.sdp.clone();
            match Leg::outgoing(
                &mut self.endpoint,
                self.media.as_ref(),
                now,
                request,
                target,
                &prefs,
            ) {
                Ok(leg) => {
                    let idx = self.add_leg(key, call, leg);
                    call.ringing = Some(idx);
                    call.set_timer(CallTimer::Ring, now + self.config.dialer.ring_timeout);
                    let attempt = job.attempts_made + 1;
                    self.journal(call);
                    self.emit(
                        "dial.attempt",
                        call.tenant.clone(),
                        json!({ "job": job.id, "call": call.id, "target": job.target, "trunk": trunk, "attempt": attempt, "purpose": job.kind }),
                    );
                    return;
                }
                Err(r) => {
                    tracing::warn!(%trunk, reason = %r.reason, "cannot place the callback on this trunk")
                }
            }
        }
        // No trunk would take the call.
        self.end_attempt(now, key, call, DialAttemptOutcome::Failed, 503);
    }

    /// What a callback's legs report.
    pub(crate) fn callback_note(
        &mut self,
        now: Instant,
        key: u64,
        call: &mut Call,
        idx: usize,
        note: Note,
    ) {
        let operator_leg = idx == 0;
        match (operator_leg, note) {
            (true, Note::Answered) => {
                call.clear_timer(CallTimer::Ring);
                // The operator hears "connecting" while the resident's phone rings.
                let connecting = super::announcements::prompt(&self.config, "connecting");
                let music = self.config.prompts.hold_music.clone();
                self.play(
                    call,
                    0,
                    vec![connecting, music],
                    true,
                    AfterPlayback::Nothing,
                );
                self.place_resident(now, key, call);
            }
            (true, Note::Failed { .. }) => {
                call.clear_timer(CallTimer::Ring);
                self.operator_skipped_callback(now, call, true);
            }
            (false, Note::Answered) if Some(idx) == call.ringing => {
                call.clear_timer(CallTimer::Ring);
                let (Some(op), Some(resident)) = (
                    call.legs.first().map(|l| l.media),
                    call.legs.get(idx).map(|l| l.media),
                ) else {
                    return;
                };
                let _ = self.media.stop_playback(op);
                call.playback = None;
                let _ = self.media.bridge(op, resident);
                self.start_recording(now, call, idx);
                call.stage = Stage::Connected;
                call.answered_at = Some(now);
                call.record.answered_at = Some(self.wall(now));
                call.record.operator_extension = call.operator.clone();
                self.emit(
                    "call.answered",
                    call.tenant.clone(),
                    json!({ "call": call.id, "operator": call.operator, "direction": "outbound" }),
                );
                self.journal(call);
                if let Some(job) = &call.job {
                    self.emit(
                        "dial.outcome",
                        call.tenant.clone(),
                        json!({ "job": job.id, "call": call.id, "outcome": "answered" }),
                    );
                    self.act(Action::JobAttempt {
                        job: job.id,
                        outcome: DialAttemptOutcome::Answered,
                        call: Some(call.id.clone()),
                        retry_in: std::time::Duration::ZERO,
                    });
                }
            }
            (
                false,
                Note::Failed {
                    status,
                    reason,
                    failure,
                },
            ) if Some(idx) == call.ringing => {
                call.clear_timer(CallTimer::Ring);
                tracing::info!(call = %call.id, status, %reason, "callback leg failed");
                let ending = ending(status, failure);
                if dialer::fail_over(ending) && !call.trunks_left.is_empty() {
                    return self.place_resident(now, key, call);
                }
                self.end_attempt(now, key, call, dialer::outcome(ending), status);
            }
            _ => {}
        }
    }

    /// The operator did not take the callback (`missed`: their softphone rang out,
    /// rejected it or was unreachable) or hung up before the resident's phone was
    /// dialled: the job goes back to the front of the queue for the next free
    /// operator and no attempt is counted against the resident. The operator's card
    /// closes with `call.ended`, disposition `returned`.
    fn operator_skipped_callback(&mut self, now: Instant, call: &mut Call, missed: bool) {
        if let Some(job) = call.job.take() {
            self.jobs.push_front(job);
        }
        self.emit(
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
            let wall = self.wall(now);
            let pause = missed && self.config.queue.pause_after_missed;
            self.operators.missed(&ext, pause, now, wall);
        }
        call.reported = true; // no journal row was opened
        for leg in &call.legs {
            leg.close_media(self.media.as_ref());
        }
        self.wants_dispatch = true;
    }

    /// One attempt at the resident ended without a conversation; `status` is the
    /// SIP status that ended it (0 when no response came at all).
    fn end_attempt(
        &mut self,
        now: Instant,
        key: u64,
        call: &mut Call,
        outcome: DialAttemptOutcome,
        status: u16,
    ) {
        if let Some(job) = &call.job {
            self.emit(
                "dial.outcome",
                call.tenant.clone(),
                json!({ "job": job.id, "call": call.id, "outcome": outcome.as_str() }),
            );
            self.act(Action::JobAttempt {
                job: job.id,
                outcome,
                call: Some(call.id.clone()),
                retry_in: self.config.dialer.attempt_interval,
            });
        }
        let disposition = disposition(outcome);
        self.drop_leg(now, key, call, 0);
        self.finish(now, call, disposition, status);
    }

    pub(crate) fn callback_ring_timeout(&mut self, now: Instant, key: u64, call: &mut Call) {
        match call.ringing {
            Some(0)
                if call.stage == Stage::Ringing
                    && call.answered_at.is_none()
                    && call.legs.len() == 1 =>
            {
                self.drop_leg(now, key, call, 0);
                self.operator_skipped_callback(now, call, true);
            }
            Some(idx) if idx > 0 && call.stage != Stage::Connected => {
                self.drop_leg(now, key, call, idx);
                // Our ring timer ran out: we cancelled it.
                self.end_attempt(now, key, call, DialAttemptOutcome::NoAnswer, 487);
            }
            _ => {}
        }
    }

    /// A party of a callback hung up.
    pub(crate) fn callback_gone(
        &mut self,
        now: Instant,
        key: u64,
        call: &mut Call,
        idx: usize,
        _why: &str,
    ) {
        if call.stage == Stage::Connected {
            let other = if idx == 0 {
                call.ringing.unwrap_or(1)
            } else {
                0
            };
            self.drop_leg(now, key, call, other);
            return self.finish(now, call, Disposition::Answered, 200);
        }
        if idx == 0 {
            match call.ringing.filter(|r| *r > 0) {
                // The operator gave up while the resident's phone rang: the attempt
                // counts as not answered and the dialer's interval applies (putting
                // the job straight back would ring the same operator again).
                Some(r) => {
                    self.drop_leg(now, key, call, r);
                    self.end_attempt(now, key, call, DialAttemptOutcome::NoAnswer, 487);
                }
                None => self.operator_skipped_callback(now, call, false),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_endings_become_dial_outcomes() {
        assert_eq!(ending(0, Some(ClientFailure::Timeout)), Ending::Timeout);
        assert_eq!(
            ending(0, Some(ClientFailure::Transport)),
            Ending::Unreachable
        );
        assert_eq!(ending(486, None), Ending::Status(486));
        assert_eq!(disposition(DialAttemptOutcome::Busy), Disposition::Busy);
    }
}
