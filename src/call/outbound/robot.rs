//! The robot calls of follow-ups: the engine calls the party directly, plays a
//! message and asks keypad questions, with no operator on the line.
//!
//! - a **feedback survey** of a resident: who is calling and about which ticket,
//!   then "rate the work 1–5" (CSI) and "how easy was it 1–5" (CES); 9 at any
//!   question means "do not call me again"; a question with no key is asked once
//!   more, then the call thanks the resident and ends;
//! - a **status check** by the informer: the ticket's number, then "1 done, 2 in
//!   progress, 3 cannot be done";
//! - an **outage broadcast**: the notice callers hear at the house (what is off,
//!   until when), twice, then goodbye.
//!
//! Keys come as RFC 4733 events or SIP INFO and may interrupt a prompt. The party's
//! side is recorded like every call. When the call ends the answer goes to the
//! dialer with the attempt (`Action::FollowUp`); an attempt that did not reach the
//! party goes there with its outcome (busy, no answer, ...).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::super::announcements;
use super::super::control::{AfterPlayback, Call, CallControl, CallTimer, Disposition, Stage};
use super::super::leg::Note;
use super::dialout::{AfterFailure, Dialout};
use super::{Errand, Flow, Input, disposition};
use crate::dialer::briefing::Briefing;
use crate::dialer::follow_up::{Answer, WorkStatus};
use crate::media::speech;
use crate::store::{DialAttemptOutcome, DialJob, DialKind};

/// How long the robot waits for a key after a question.
pub(crate) const KEY_WAIT: Duration = Duration::from_secs(7);

/// How often a question is asked when no key comes (the first time and one retry).
const ASKS: u32 = 2;

/// How often a broadcast plays its notice.
const NOTICE_PLAYS: u32 = 2;

/// One keypad question.
#[derive(Debug, Clone)]
pub(crate) struct Question {
    /// What is said.
    pub prompt: Vec<String>,
    /// The keys that answer it.
    pub keys: &'static str,
}

/// What the robot says and asks.
#[derive(Debug, Clone, Default)]
pub(crate) struct Script {
    /// Said first.
    pub message: Vec<String>,
    /// Asked in order after the message.
    pub questions: Vec<Question>,
    /// Said when every question is answered.
    pub thanks: Vec<String>,
    /// Said when the party pressed the opt-out key.
    pub opted_out: Vec<String>,
    /// The key that means "do not call me again", at any question.
    pub opt_out: Option<char>,
    /// Plays of the message when there are no questions.
    pub plays: u32,
}

/// Where a robot call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// The party's phone is being dialled.
    Dialling,
    /// A prompt plays (a key interrupts it).
    Speaking,
    /// Waiting for a key after a question.
    Waiting,
    /// The last prompt plays, then the call is hung up.
    Closing,
    /// Over.
    Done,
}

/// A robot call (see the module doc).
#[derive(Debug)]
pub(crate) struct Robot {
    /// The job (and its briefing).
    pub errand: Errand,
    /// Where it stands.
    pub state: State,
    /// The party's leg.
    pub dialout: Dialout,
    script: Script,
    /// The question being asked (`questions.len()` once all are asked).
    question: usize,
    /// How often the current question (or the notice) has been said.
    asked: u32,
    /// The keys pressed, one per question asked.
    keys: Vec<Option<char>>,
    opted_out: bool,
}

impl CallControl {
    /// Calls the party of `job` as a robot (see the module doc).
    pub(crate) fn start_robot(&mut self, now: Instant, job: DialJob, briefing: Arc<Briefing>) {
        let script = self.script(&job, &briefing);
        let city = briefing.ticket.as_ref().map(|t| t.city.clone());
        let (key, mut call, dialout) = self.direct_call(
            now,
            job.tenant.as_deref(),
            city.as_deref(),
            job.ticket_id,
            &job.target,
        );
        let mut robot = Robot {
            dialout,
            errand: Errand::Job(Box::new(job), Some(briefing)),
            state: State::Dialling,
            script,
            question: 0,
            asked: 0,
            keys: Vec::new(),
            opted_out: false,
        };
        if !robot.place(self, now, &mut call) {
            robot.end_attempt(self, now, &mut call, DialAttemptOutcome::Failed, 503);
        }
        call.flow = Some(Flow::Robot(robot));
        self.insert_call(key, call);
    }

    /// The script of a robot call for `job`.
    fn script(&self, job: &DialJob, briefing: &Briefing) -> Script {
        let lang = self.config.media.language.clone();
        let p = |name: &str| announcements::prompt(&self.config, name);
        let mut message = Vec::new();
        if let Some(tenant) = &job.tenant {
            let company = format!(
                "{lang}/tenant/{}.wav",
                crate::dialer::message::file_safe(tenant)
            );
            if self.media.has_prompt(&company) {
                message.push(company);
            }
        }
        let number = |message: &mut Vec<String>| {
            if let Some(card) = &briefing.ticket {
                if let Ok(said) = speech::ticket_number(&lang, &card.number) {
                    message.extend(said);
                }
            }
        };
        match job.kind {
            DialKind::Survey => {
                message.push(p("survey-intro"));
                number(&mut message);
                Script {
                    message,
                    questions: vec![
                        Question {
                            prompt: vec![p("survey-rate"), p("survey-opt-out")],
                            keys: "12345",
                        },
                        Question {
                            prompt: vec![p("survey-effort")],
                            keys: "12345",
                        },
                    ],
                    thanks: vec![p("survey-thanks")],
                    opted_out: vec![p("survey-opted-out")],
                    opt_out: Some('9'),
                    plays: 1,
                }
            }
            DialKind::StatusCheck => {
                message.push(p("status-check-intro"));
                number(&mut message);
                Script {
                    message,
                    questions: vec![Question {
                        prompt: vec![p("status-check-menu")],
                        keys: "123",
                    }],
                    thanks: vec![p("status-check-thanks")],
                    ..Script::default()
                }
            }
            _ => {
                if let Some(outage) = &briefing.outage {
                    message.push(p("broadcast-intro"));
                    let wall = chrono::Utc::now();
                    message.extend(announcements::outage_notice(
                        &self.config,
                        &outage.kind,
                        outage.ends_at,
                        outage.zone,
                        wall,
                    ));
                }
                Script {
                    message,
                    thanks: vec![p("goodbye")],
                    plays: NOTICE_PLAYS,
                    ..Script::default()
                }
            }
        }
    }
}

impl Robot {
    fn job(&self) -> Option<&DialJob> {
        self.errand.job()
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
            Input::Gone(_) => {
                if matches!(
                    self.state,
                    State::Speaking | State::Waiting | State::Closing
                ) {
                    self.hang_up(cc, now, call);
                }
            }
            Input::Timer(CallTimer::Ring) if self.state == State::Dialling => {
                let key = call.key;
                if let Some(idx) = self.dialout.leg {
                    cc.drop_leg(now, key, call, idx);
                }
                self.end_attempt(cc, now, call, DialAttemptOutcome::NoAnswer, 487);
            }
            Input::Timer(CallTimer::Input) if self.state == State::Waiting => {
                self.no_key(cc, now, call)
            }
            Input::Digit(0, digit) => self.key(cc, now, call, digit),
            Input::PlaybackDone => match self.state {
                State::Speaking => self.spoken(cc, now, call),
                State::Closing => self.hang_up(cc, now, call),
                _ => {}
            },
            Input::Stop(_) => {
                // A follow-up is not stopped mid-call: it ends by itself.
            }
            Input::Timer(_) | Input::Digit(..) | Input::Decided(_) | Input::Operator(_) => {}
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
        if !self.dialout.is_leg(idx) || self.state != State::Dialling {
            return;
        }
        match note {
            Note::Ringing => self.dialout.rang = true,
            Note::Answered => {
                call.clear_timer(CallTimer::Ring);
                if idx != 0 {
                    cc.swap_legs(key, call, 0, idx);
                }
                self.dialout.leg = Some(0);
                call.ringing = None;
                call.answered_at = Some(now);
                call.record.answered_at = Some(cc.wall(now));
                cc.start_recording(now, call, 0);
                cc.journal(call);
                let purpose = self.errand.purpose();
                cc.emit(
                    "call.answered",
                    call.tenant.clone(),
                    json!({ "call": call.id, "operator": null, "direction": "outbound", "purpose": purpose }),
                );
                cc.dial_outcome_event(call, &self.errand, "answered");
                self.asked = 1;
                let mut items = self.script.message.clone();
                if let Some(q) = self.script.questions.first() {
                    items.extend(q.prompt.iter().cloned());
                }
                self.say(cc, now, call, items);
            }
            Note::Failed {
                status,
                reason,
                failure,
            } => {
                call.clear_timer(CallTimer::Ring);
                tracing::info!(call = %call.id, status, %reason, trunk = ?self.dialout.trunk, "the robot's call failed");
                match self.dialout.failed(status, failure) {
                    AfterFailure::NextTrunk => {
                        if !self.place(cc, now, call) {
                            self.end_attempt(cc, now, call, DialAttemptOutcome::Failed, 503);
                        }
                    }
                    AfterFailure::Over(outcome) => self.end_attempt(cc, now, call, outcome, status),
                }
            }
            _ => {}
        }
    }

    /// Plays `items` to the party; a prompt that cannot play counts as played.
    fn say(&mut self, cc: &mut CallControl, now: Instant, call: &mut Call, items: Vec<String>) {
        self.state = State::Speaking;
        call.stage = Stage::Menu;
        cc.play(call, 0, items, false, AfterPlayback::Flow);
        if call.playback.is_none() {
            self.spoken(cc, now, call);
        }
    }

    /// A prompt ended: wait for a key after a question; after a notice, play it
    /// again or close.
    fn spoken(&mut self, cc: &mut CallControl, now: Instant, call: &mut Call) {
        if self.question < self.script.questions.len() {
            self.state = State::Waiting;
            call.set_timer(CallTimer::Input, now + KEY_WAIT);
        } else if self.asked < self.script.plays {
            self.asked += 1;
            let items = self.script.message.clone();
            self.say(cc, now, call, items);
        } else {
            let thanks = self.script.thanks.clone();
            self.close(cc, now, call, thanks);
        }
    }

    fn key(&mut self, cc: &mut CallControl, now: Instant, call: &mut Call, digit: char) {
        if !matches!(self.state, State::Speaking | State::Waiting) {
            return;
        }
        let Some(question) = self.script.questions.get(self.question) else {
            return;
        };
        if let Some(leg) = call.legs.first() {
            let _ = cc.media.stop_playback(leg.media);
        }
        call.playback = None;
        call.clear_timer(CallTimer::Input);
        if self.script.opt_out == Some(digit) {
            self.opted_out = true;
            let said = self.script.opted_out.clone();
            return self.close(cc, now, call, said);
        }
        if question.keys.contains(digit) {
            self.keys.push(Some(digit));
            self.next_question(cc, now, call);
        } else {
            let mut items = vec![announcements::prompt(&cc.config, "invalid-choice")];
            items.extend(question.prompt.iter().cloned());
            self.say(cc, now, call, items);
        }
    }

    /// No key after a question: asked once more, then the call moves on (a survey
    /// that lost the resident's attention ends politely).
    fn no_key(&mut self, cc: &mut CallControl, now: Instant, call: &mut Call) {
        let Some(question) = self.script.questions.get(self.question) else {
            return;
        };
        if self.asked < ASKS {
            self.asked += 1;
            let items = question.prompt.clone();
            return self.say(cc, now, call, items);
        }
        self.keys.push(None);
        let thanks = if self.keys.iter().any(Option::is_some) {
            self.script.thanks.clone()
        } else {
            vec![announcements::prompt(&cc.config, "goodbye")]
        };
        self.question = self.script.questions.len();
        self.close(cc, now, call, thanks);
    }

    fn next_question(&mut self, cc: &mut CallControl, now: Instant, call: &mut Call) {
        self.question += 1;
        self.asked = 1;
        match self.script.questions.get(self.question) {
            Some(q) => {
                let items = q.prompt.clone();
                self.say(cc, now, call, items);
            }
            None => {
                let thanks = self.script.thanks.clone();
                self.close(cc, now, call, thanks);
            }
        }
    }

    fn close(&mut self, cc: &mut CallControl, now: Instant, call: &mut Call, items: Vec<String>) {
        self.state = State::Closing;
        call.stage = Stage::Leaving;
        cc.play(call, 0, items, false, AfterPlayback::Flow);
        if call.playback.is_none() {
            self.hang_up(cc, now, call);
        }
    }

    fn hang_up(&mut self, cc: &mut CallControl, now: Instant, call: &mut Call) {
        if self.state == State::Done {
            return;
        }
        let key = call.key;
        for idx in 0..call.legs.len() {
            cc.drop_leg(now, key, call, idx);
        }
        call.clear_timer(CallTimer::Input);
        self.state = State::Done;
        cc.finish(now, call, Disposition::Answered, 200);
        let answer = self.answer();
        if let Some(job) = self.job().cloned() {
            cc.job_attempt(&job, DialAttemptOutcome::Answered, call, Some(answer));
        }
    }

    /// What the party said, in the terms of the job.
    pub(crate) fn answer(&self) -> Answer {
        let key = |i: usize| self.keys.get(i).copied().flatten();
        let digit = |i: usize| {
            key(i)
                .and_then(|c| c.to_digit(10))
                .and_then(|d| u8::try_from(d).ok())
        };
        match self.job().map(|j| j.kind) {
            Some(DialKind::Survey) => {
                let (csi, ces) = (digit(0), digit(1));
                if csi.is_none() && ces.is_none() && !self.opted_out {
                    Answer::NoInput
                } else {
                    Answer::Ratings {
                        csi,
                        ces,
                        opt_out: self.opted_out,
                    }
                }
            }
            Some(DialKind::StatusCheck) => key(0)
                .and_then(WorkStatus::from_key)
                .map_or(Answer::NoInput, Answer::Work),
            _ => Answer::Heard,
        }
    }

    /// Places the party's leg on the next trunk and reports the dial attempt.
    fn place(&mut self, cc: &mut CallControl, now: Instant, call: &mut Call) -> bool {
        if !self.dialout.place(cc, now, call) {
            return false;
        }
        cc.journal(call);
        let trunk = self.dialout.trunk.clone().unwrap_or_default();
        cc.dial_attempt_event(call, &self.errand, &trunk);
        true
    }

    fn end_attempt(
        &mut self,
        cc: &mut CallControl,
        now: Instant,
        call: &mut Call,
        outcome: DialAttemptOutcome,
        status: u16,
    ) {
        self.state = State::Done;
        cc.dial_outcome_event(call, &self.errand, outcome.as_str());
        if let Some(job) = self.job().cloned() {
            cc.job_attempt(&job, outcome, call, None);
        }
        cc.finish(now, call, disposition(outcome), status);
    }
}
