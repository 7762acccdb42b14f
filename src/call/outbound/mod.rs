//! Calls the engine places, each flow its own state machine.
//!
//! - [`dialout`]: the party's leg through the trunks (failover, challenges, what
//!   its end counts as), shared by every flow;
//! - [`operator_first`]: an operator is rung first, as for an incoming call, and
//!   the engine dials the party when they answer; callbacks (the 5-minute rule,
//!   staff) and operator-first hand-offs of a ticket chain run on it;
//! - [`informer`]: the robot call of a ticket chain: the ticket is read out and
//!   the person answers by keypad (accept, decline, talk to the dispatcher);
//! - [`robot`]: the robot calls of follow-ups: a resident's feedback survey, a
//!   status check by keypad, an outage broadcast.
//!
//! A call of the engine's own holds its flow in `Call::flow`. The call core routes
//! what happens to such a call (a leg's note, a leg gone, a timer, a key, the end of
//! a prompt) to `Flow`, which takes the flow out of the call for the time it runs
//! so that it can work on the call and the core at once.

pub mod dialout;
pub mod informer;
pub mod operator_first;
pub mod robot;

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use super::control::{Action, Call, CallControl, CallTimer, Disposition};
use super::leg::Note;
use crate::config::{Number, NumberKind};
use crate::dialer::briefing::Briefing;
use crate::dialer::order::{AttemptRef, ChainEvent, ChainReport, HandoffOrder};
use crate::store::{DialAttemptOutcome, DialJob, DialKind};

pub(crate) use informer::Informer;
pub(crate) use operator_first::OperatorFirst;
pub(crate) use robot::Robot;

/// What an outbound call is for.
#[derive(Debug, Clone)]
pub(crate) enum Errand {
    /// A dial job: calling back a resident (the 5-minute rule) or a staff member,
    /// a status check, a feedback survey, a supplier call, a broadcast call; with
    /// what the operator's card says about it (none for callbacks).
    Job(Box<DialJob>, Option<Arc<Briefing>>),
    /// A call of a ticket's hand-off chain; `deadline` is when an operator-first
    /// call stops waiting for an operator and the informer calls instead.
    Handoff {
        /// The order.
        order: Box<HandoffOrder>,
        /// The end of the operator wait.
        deadline: Instant,
    },
}

impl Errand {
    /// The `purpose` the console's card and the dial events show.
    pub(crate) fn purpose(&self) -> &'static str {
        match self {
            Self::Job(job, _) => job.kind.as_str(),
            Self::Handoff { .. } => "handoff",
        }
    }

    /// The number called.
    pub(crate) fn target(&self) -> String {
        match self {
            Self::Job(job, _) => job.target.clone(),
            Self::Handoff { order, .. } => order.phone.to_string(),
        }
    }

    /// The tenant it is for.
    pub(crate) fn tenant(&self) -> Option<String> {
        match self {
            Self::Job(job, _) => job.tenant.clone(),
            Self::Handoff { order, .. } => Some(order.card.tenant.clone()),
        }
    }

    /// The chain attempt, for a hand-off.
    pub(crate) fn attempt(&self) -> Option<AttemptRef> {
        match self {
            Self::Job(..) => None,
            Self::Handoff { order, .. } => Some(order.attempt),
        }
    }

    /// The dial job, for a callback.
    pub(crate) fn job(&self) -> Option<&DialJob> {
        match self {
            Self::Job(job, _) => Some(job),
            Self::Handoff { .. } => None,
        }
    }
}

/// The flow of an outbound call.
#[derive(Debug)]
pub(crate) enum Flow {
    /// Operator first, then the party.
    OperatorFirst(OperatorFirst),
    /// The informer's robot call.
    Informer(Informer),
    /// A follow-up's robot call.
    Robot(Robot),
}

impl Flow {
    /// What the call is for.
    pub(crate) fn errand(&self) -> &Errand {
        match self {
            Self::OperatorFirst(f) => &f.errand,
            Self::Informer(f) => &f.errand,
            Self::Robot(f) => &f.errand,
        }
    }

    /// The chain attempt, for a hand-off.
    pub(crate) fn attempt(&self) -> Option<AttemptRef> {
        self.errand().attempt()
    }
}

/// What happened to an outbound call, for its flow.
#[derive(Debug, Clone)]
pub(crate) enum Input {
    /// A leg's note.
    Note(usize, Note),
    /// A party is gone (hung up, no ACK, no RTP).
    Gone(usize),
    /// A timer of the call fired.
    Timer(CallTimer),
    /// A key was pressed on a leg.
    Digit(usize, char),
    /// The prompt playing ended.
    PlaybackDone,
    /// The dialer stops the attempt.
    Stop(crate::dialer::chain::StopWhy),
    /// The dialer's answer to a keypad acceptance.
    Decided(bool),
    /// An operator is free for a person waiting to be put through.
    Operator(String),
}

impl CallControl {
    /// Runs `input` through the flow of `call` (an outbound call).
    pub(crate) fn run_flow(&mut self, now: Instant, call: &mut Call, input: Input) {
        let Some(mut flow) = call.flow.take() else {
            return;
        };
        match &mut flow {
            Flow::OperatorFirst(f) => f.handle(self, now, call, input),
            Flow::Informer(f) => f.handle(self, now, call, input),
            Flow::Robot(f) => f.handle(self, now, call, input),
        }
        call.flow = Some(flow);
    }

    /// The trunk challenged the INVITE of leg `idx` of an outbound call: answered
    /// with the trunk's credentials (see [`dialout::Dialout::answer_challenge`]).
    pub(crate) fn answer_challenge(
        &mut self,
        now: Instant,
        call: &mut Call,
        idx: usize,
        response: &crate::sip::wire::Response,
    ) -> bool {
        let Some(mut flow) = call.flow.take() else {
            return false;
        };
        let dialout = match &mut flow {
            Flow::OperatorFirst(f) => &mut f.dialout,
            Flow::Informer(f) => &mut f.dialout,
            Flow::Robot(f) => &mut f.dialout,
        };
        let answered = dialout.answer_challenge(self, now, call, idx, response);
        call.flow = Some(flow);
        answered
    }

    /// The number an outbound call goes out from: the number the original call
    /// dialled (`origin`: a callback goes back out where the resident called), else
    /// the tenant's own number, else the citywide number of the city, else any
    /// citywide one. Never another company's number.
    pub(crate) fn caller_id_number(
        &self,
        origin: Option<&str>,
        tenant: Option<&str>,
        city: Option<&str>,
    ) -> Option<Number> {
        let numbers = &self.config.numbers;
        let by_origin = origin.and_then(|o| self.config.number(o)).filter(|n| {
            matches!(
                n.kind,
                NumberKind::Tenant | NumberKind::Citywide | NumberKind::Dispatch
            )
        });
        let by_tenant = || {
            tenant.and_then(|t| {
                numbers
                    .iter()
                    .find(|n| n.kind == NumberKind::Tenant && n.tenant.as_deref() == Some(t))
            })
        };
        let citywide_here = || {
            city.and_then(|c| {
                numbers
                    .iter()
                    .find(|n| n.kind == NumberKind::Citywide && n.city.as_deref() == Some(c))
            })
        };
        let citywide = || numbers.iter().find(|n| n.kind == NumberKind::Citywide);
        by_origin
            .or_else(by_tenant)
            .or_else(citywide_here)
            .or_else(citywide)
            .cloned()
    }

    /// Reports one attempt of a dial job: a callback's to the dialer's callback
    /// path, a follow-up's with what the party answered (robot calls).
    pub(crate) fn job_attempt(
        &mut self,
        job: &DialJob,
        outcome: DialAttemptOutcome,
        call: &Call,
        answer: Option<crate::dialer::follow_up::Answer>,
    ) {
        if matches!(job.kind, DialKind::Callback | DialKind::StaffCallback) {
            let retry_in = if outcome == DialAttemptOutcome::Answered {
                std::time::Duration::ZERO
            } else {
                self.config.dialer.attempt_interval
            };
            self.act(Action::JobAttempt {
                job: job.id,
                outcome,
                call: Some(call.id.clone()),
                retry_in,
            });
        } else {
            self.briefings.remove(&job.id);
            self.act(Action::FollowUp {
                job: Box::new(job.clone()),
                outcome,
                call: Some(call.id.clone()),
                answer,
            });
        }
    }

    /// Tells the dialer what happened to a chain's call.
    pub(crate) fn report(&mut self, attempt: Option<AttemptRef>, event: ChainEvent) {
        if let Some(attempt) = attempt {
            self.act(Action::Chain(ChainReport { attempt, event }));
        }
    }

    /// The card of a hand-off for the console (`handoff` in `call.offered`).
    pub(crate) fn handoff_card(order: &HandoffOrder) -> Value {
        json!({
            "ticket": order.card.as_ref(),
            "chain": order.attempt.chain,
            "seq": order.attempt.seq,
            "stage": order.stage.as_str(),
            "person": order.person,
            "person_name": order.person_name,
            "phone": order.phone,
            "attempt": order.try_no,
            "tries": order.tries,
        })
    }

    /// The card of a follow-up for the console (`follow_up` in `call.offered`):
    /// why the engine calls, whom, what to ask, the ticket and the supplier
    /// hand-over.
    pub(crate) fn follow_up_card(job: &DialJob, briefing: &Briefing) -> Value {
        json!({
            "job": job.id,
            "purpose": job.kind,
            "why": briefing.why,
            "party": briefing.party,
            "ask": briefing.ask,
            "ticket": briefing.ticket.as_deref(),
            "supplier": briefing.supplier,
            "attempt": job.attempts_made + 1,
            "tries": job.max_attempts,
        })
    }

    /// `dial.attempt`: the party's phone is being dialled. The dialer publishes
    /// those of chain calls itself (when it writes the attempt).
    pub(crate) fn dial_attempt_event(&mut self, call: &Call, errand: &Errand, trunk: &str) {
        if matches!(errand, Errand::Handoff { .. }) {
            return;
        }
        let mut payload = json!({
            "call": call.id,
            "target": errand.target(),
            "trunk": trunk,
            "purpose": errand.purpose(),
        });
        match errand {
            Errand::Job(job, _) => {
                payload["job"] = json!(job.id);
                payload["attempt"] = json!(job.attempts_made + 1);
                payload["ticket"] = json!(job.ticket_id);
            }
            Errand::Handoff { order, .. } => {
                payload["ticket"] = json!(order.card.ticket);
                payload["chain"] = json!(order.attempt.chain);
                payload["seq"] = json!(order.attempt.seq);
                payload["stage"] = json!(order.stage.as_str());
                payload["person"] = json!(order.person_name);
                payload["attempt"] = json!(order.try_no);
                payload["tries"] = json!(order.tries);
            }
        }
        self.emit("dial.attempt", call.tenant.clone(), payload);
    }

    /// `dial.outcome`: how the attempt at the party ended (the dialer publishes
    /// those of chain calls itself, with the outcome it stored).
    pub(crate) fn dial_outcome_event(&mut self, call: &Call, errand: &Errand, outcome: &str) {
        if matches!(errand, Errand::Handoff { .. }) {
            return;
        }
        let mut payload =
            json!({ "call": call.id, "outcome": outcome, "purpose": errand.purpose() });
        match errand {
            Errand::Job(job, _) => payload["job"] = json!(job.id),
            Errand::Handoff { order, .. } => {
                payload["ticket"] = json!(order.card.ticket);
                payload["chain"] = json!(order.attempt.chain);
                payload["seq"] = json!(order.attempt.seq);
            }
        }
        self.emit("dial.outcome", call.tenant.clone(), payload);
    }
}

/// The journal's word for a dial outcome.
pub(crate) fn disposition(outcome: DialAttemptOutcome) -> Disposition {
    match outcome {
        DialAttemptOutcome::Answered => Disposition::Answered,
        DialAttemptOutcome::Busy => Disposition::Busy,
        DialAttemptOutcome::NoAnswer => Disposition::NoAnswer,
        DialAttemptOutcome::Rejected => Disposition::Rejected,
        DialAttemptOutcome::Unreachable => Disposition::Unreachable,
        DialAttemptOutcome::Failed => Disposition::Failed,
    }
}
