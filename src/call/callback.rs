//! Calling residents and staff back: the dial jobs the 5-minute rule and the
//! dispatch line create.
//!
//! Operators never dial by hand. A claimed job first rings the first free operator
//! (every registered contact of theirs), which looks to them like an incoming call
//! carrying whom the engine will call and why; when they answer, the engine places
//! the call to the resident from the number the original call dialled (the
//! tenant's own number, or the citywide one for a caller of no known company) and
//! through its trunk, answering a 401/407 challenge with the trunk's credentials,
//! failing over to the next usable trunk on 5xx, 408 or no answer at all, but never
//! on 486, 480 or 603 (those are the resident's answer). An operator who does not
//! answer hands the job to the next one. Busy, no answer, rejected, unreachable and
//! failed are recorded as different outcomes; the store decides when the next
//! attempt is due.

use std::time::Instant;

use serde_json::json;

use super::control::{
    Action, AfterPlayback, Call, CallControl, CallTimer, Disposition, Kind, Stage,
};
use super::inbound::RingFailure;
use super::leg::{Leg, Note};

use crate::config::{Number, NumberKind};
use crate::dialer::{self, Ending};
use crate::phone::PhoneNumber;
use crate::sip::digest;
use crate::sip::endpoint::ClientFailure;
use crate::sip::wire::{Method, NameAddr, Request, Response, Uri};
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
    /// The number a callback goes out from: the number the original call dialled
    /// (so a citywide caller is called back from the citywide number, under no
    /// company until one is known), else the tenant's own number, else a citywide
    /// number. Never another company's number.
    fn callback_number(&self, job: &DialJob) -> Option<Number> {
        let numbers = &self.config.numbers;
        let by_origin = job
            .origin_number
            .as_deref()
            .and_then(|o| self.config.number(o))
            .filter(|n| {
                matches!(
                    n.kind,
                    NumberKind::Tenant | NumberKind::Citywide | NumberKind::Dispatch
                )
            });
        let by_tenant = || {
            job.tenant.as_ref().and_then(|t| {
                numbers
                    .iter()
                    .find(|n| n.kind == NumberKind::Tenant && n.tenant.as_ref() == Some(t))
            })
        };
        let citywide = || numbers.iter().find(|n| n.kind == NumberKind::Citywide);
        by_origin.or_else(by_tenant).or_else(citywide).cloned()
    }

    /// Starts a callback job with a free operator `ext`: their softphones ring
    /// first (every registered contact), as an incoming call. `Err` when the
    /// operator cannot be rung (the job stays the caller's).
    pub(crate) fn start_callback(
        &mut self,
        now: Instant,
        job: &DialJob,
        ext: String,
    ) -> Result<(), RingFailure> {
        let number = self.callback_number(job);
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
            .failover_order(preferred.as_deref(), now)
            .into_iter()
            .map(str::to_owned)
            .collect();
        call.job = Some(job.clone());
        let purpose = [("X-Dispatch-Purpose", job.kind.as_str().to_owned())];
        let legs = match self.ring_contacts(now, &mut call, &ext, &purpose) {
            Ok(legs) => legs,
            Err(failure) => {
                tracing::warn!(operator = %ext, ?failure, "cannot ring the operator for a callback");
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
        if let Ok(phone) = PhoneNumber::parse(&job.target) {
            self.act(Action::Lookup {
                call: key,
                phone,
                tenant: call.tenant.clone(),
                city: None,
            });
        } else {
            self.callback_looked_up(now, &mut call);
        }
        // No journal row yet: the call is only the operator's until they take it
        // and the resident's phone rings.
        self.insert_call(key, call);
        Ok(())
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
            let request = Request::out_of_dialog(
                Method::Invite,
                uri.clone(),
                from,
                NameAddr::new(uri),
                self.endpoint.new_call_id(),
                1,
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
                    let idx = self.add_leg(key, call, leg);
                    call.ringing = Some(idx);
                    call.trunk = Some(trunk.clone());
                    call.auth_tried = false;
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
        // While the operator's contacts ring, their legs are the ringing group;
        // afterwards leg 0 is the operator and `ringing` the resident's leg.
        let operator_ringing = call.stage == Stage::Ringing && call.forks.contains(&idx);
        let resident_leg = !operator_ringing && idx > 0 && Some(idx) == call.ringing;
        match note {
            Note::Answered if operator_ringing => {
                self.cancel_forks(now, call, Some(idx));
                if idx != 0 {
                    self.swap_legs(key, call, 0, idx);
                }
                call.ringing = Some(0);
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
            Note::Failed { status, .. } if operator_ringing => {
                let all_failed = self.fork_failed(now, call, idx, status);
                if all_failed {
                    call.clear_timer(CallTimer::Ring);
                    self.operator_skipped_callback(now, call, true);
                }
            }
            Note::Answered if resident_leg => {
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
            Note::Failed {
                status,
                reason,
                failure,
            } if resident_leg => {
                call.clear_timer(CallTimer::Ring);
                tracing::info!(call = %call.id, status, %reason, trunk = ?call.trunk, "callback leg failed");
                let ending = ending(status, failure);
                if dialer::fail_over(ending) && !call.trunks_left.is_empty() {
                    return self.place_resident(now, key, call);
                }
                self.end_attempt(now, key, call, dialer::outcome(ending), status);
            }
            _ => {}
        }
    }

    /// The resident's trunk challenged the INVITE (401 or 407): it is sent again
    /// once, with a new CSeq on the same Call-ID and the trunk's credentials in
    /// Authorization (401) or Proxy-Authorization (407), RFC 3261 §22.2-22.3. The
    /// client transaction ACKs the challenge itself. `false` when this response is
    /// not such a challenge, or cannot be answered (no credentials, tried already):
    /// it then counts as the leg's final answer.
    pub(crate) fn answer_challenge(
        &mut self,
        now: Instant,
        key: u64,
        call: &mut Call,
        idx: usize,
        response: &Response,
    ) -> bool {
        let resident_leg = call.kind == Kind::Callback
            && idx > 0
            && Some(idx) == call.ringing
            && call.forks.is_empty();
        if !resident_leg || call.auth_tried || !matches!(response.status, 401 | 407) {
            return false;
        }
        let Some(trunk) = call.trunk.clone() else {
            return false;
        };
        let Some((user, password)) = self
            .trunks
            .credentials(&trunk)
            .map(|(u, p)| (u.to_owned(), p.to_owned()))
        else {
            tracing::warn!(%trunk, status = response.status, "trunk challenged a callback but has no credentials");
            return false;
        };
        let proxy = response.status == 407;
        let (asked, answered) = if proxy {
            ("Proxy-Authenticate", "Proxy-Authorization")
        } else {
            ("WWW-Authenticate", "Authorization")
        };
        let Some(challenge) = response.headers.get(asked) else {
            return false;
        };
        let Some(leg) = call.legs.get(idx) else {
            return false;
        };
        let mut request = leg.invite.clone();
        request.headers.via.clear();
        request.headers.cseq.seq = request.headers.cseq.seq.saturating_add(1);
        request.headers.remove("Authorization");
        request.headers.remove("Proxy-Authorization");
        let cnonce = format!("{:08x}", self.endpoint.random_u32());
        let Some(credentials) = digest::answer(
            challenge,
            "INVITE",
            request.uri.as_str(),
            &user,
            &password,
            &cnonce,
        ) else {
            tracing::warn!(%trunk, %challenge, "cannot answer the trunk's challenge");
            return false;
        };
        request.headers.push(answered, credentials);
        call.auth_tried = true;
        tracing::info!(call = %call.id, %trunk, status = response.status, "callback INVITE challenged; sending it again with credentials");
        self.resend_invite(now, key, call, idx, request)
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
        if call.stage == Stage::Ringing && !call.forks.is_empty() {
            // The operator's contacts rang out: the job goes to the next one free.
            self.cancel_forks(now, call, None);
            return self.operator_skipped_callback(now, call, true);
        }
        match call.ringing {
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
        if idx == 0 && call.forks.is_empty() {
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
