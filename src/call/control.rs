//! The call-control core: every call of the engine, on top of one SIP endpoint.
//!
//! Owns the calls and the indices that route SIP and media events to them
//! (transactions, dialogs, media legs, recordings), the per-call timers (armed on
//! the heap whenever a call enters the table, so none is ever lost), call admission
//! (a concurrent call limit and a new-call rate, both answered 503 + Retry-After),
//! the source check (only trunks, `[sip] inbound_from` and registered operators
//! may call in; loopback too when no trunk is configured), the registrar, the
//! trunks, the operators, the journal rows (refused INVITEs that passed the source
//! check included, within a per-second budget) and the events the console is fed
//! with. The call flows themselves live next door: [`super::forward`] (the B2BUA
//! for `forward` numbers), [`super::inbound`] (greetings, notices, IVR, the queue,
//! operators, the 5-minute rule) and [`super::callback`] (calling residents and
//! staff back).
//!
//! Sans-IO: feed [`CallControl::handle_inbound`], [`CallControl::handle_media`],
//! [`CallControl::handle_lookup`], [`CallControl::handle_dial_job`],
//! [`CallControl::handle_query`] and [`CallControl::handle_timeout`]; drain
//! [`CallControl::poll_transmit`], [`CallControl::poll_event`] (for the bus) and
//! [`CallControl::poll_action`] (for the store); sleep until
//! [`CallControl::poll_timeout`]. Media operations go through a [`MediaPort`],
//! whose methods never block.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

use super::handle::{ActiveCall, Answer, Board, CallError, CallTenant, Query, WaitingCall};
use super::handoff::Held;
use super::leg::{Leg, Note, Role};
use super::media_port::MediaPort;
use super::operators::Operators;
use super::outbound::{Flow, Input};
use super::routing::{Route, dialled, route};
use super::trunks::{Purpose, Trunks};
use crate::config::{Config, Number, NumberKind, Operator};
use crate::dialer::briefing::Briefing;
use crate::media::{LegId, MediaEvent, PlaybackId, RecordingId, SdpPreferences};
use crate::phone::PhoneNumber;
use crate::sip::dialog::DialogId;
use crate::sip::digest::DigestAuth;
use crate::sip::endpoint::{ClientFailure, ClientTx, Endpoint, EndpointEvent, ServerTx, Transmit};
use crate::sip::registrar::{Registrar, RegistrarSettings, RegistrationChange};
use crate::sip::transport::Target;
use crate::sip::transport::driver::Inbound;
use crate::sip::wire::{Method, Request};
use crate::store::{CallDirection, CallRecord, CallerInfo, DialJob, DialJobId, NewDialJob};

/// An engine-wide call identifier (also the journal's key).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct CallId(pub String);

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub use crate::store::Disposition;

/// Something to publish on the event bus.
#[derive(Debug, Clone, PartialEq)]
pub struct CallEvent {
    /// Event type (`call.offered`, `operator.state`, ...).
    pub kind: &'static str,
    /// The tenant it concerns.
    pub tenant: Option<String>,
    /// The payload.
    pub payload: Value,
}

/// What the caller's number tells about them, as the store answered.
#[derive(Debug, Clone, PartialEq)]
pub struct CallerContext {
    /// The screen-pop lookup.
    pub info: CallerInfo,
    /// The city's time zone (for saying times).
    pub zone: Option<Tz>,
}

/// Work for the store, done by the driver off the call path.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Action {
    /// Look a caller up; answer with [`CallControl::handle_lookup`].
    Lookup {
        /// Which call asks.
        call: u64,
        /// The phone.
        phone: PhoneNumber,
        /// The tenant of the number dialled.
        tenant: Option<String>,
        /// The city of the number dialled.
        city: Option<String>,
    },
    /// Insert or update a journal row.
    Journal(Box<CallRecord>),
    /// A recording is complete: store it, link it to the call, publish
    /// `recording.ready`.
    Recording {
        /// The call.
        call: CallId,
        /// Its tenant.
        tenant: Option<String>,
        /// The file.
        path: std::path::PathBuf,
        /// Its length.
        duration: Duration,
        /// Its size.
        bytes: u64,
    },
    /// Create a dial job (a callback for the 5-minute rule, a staff callback).
    ScheduleJob {
        /// The job.
        job: Box<NewDialJob>,
        /// The number the original call dialled: the callback goes out from it
        /// (and its trunk), whatever the tenant turns out to be.
        origin: Option<PhoneNumber>,
    },
    /// Hand held jobs back to the store, due now (the engine is stopping).
    ReleaseJobs(Vec<DialJobId>),
    /// The resident got through before their callback: close the call's pending
    /// callback jobs.
    CancelJobs {
        /// The original call.
        call: CallId,
    },
    /// Tell the dialer what happened to a call of a hand-off chain.
    Chain(crate::dialer::order::ChainReport),
    /// Record one attempt of a follow-up job (status check, survey, supplier
    /// call, broadcast) and what the party answered.
    FollowUp {
        /// The job as claimed.
        job: Box<DialJob>,
        /// What the attempt counts as.
        outcome: crate::store::DialAttemptOutcome,
        /// The call made for the attempt.
        call: Option<CallId>,
        /// What the party answered (robot calls).
        answer: Option<crate::dialer::follow_up::Answer>,
    },
    /// Note that supervisors were told these jobs' deadlines are at risk.
    MarkAtRisk(Vec<DialJobId>),
    /// Tell the cluster's shared floor what changed here ([`super::floor`]).
    Floor(super::floor::FloorWrite),
    /// Record the outcome of one attempt of a dial job.
    JobAttempt {
        /// The job.
        job: DialJobId,
        /// What the attempt counts as.
        outcome: crate::store::DialAttemptOutcome,
        /// The call made for the attempt.
        call: Option<CallId>,
        /// When not answered, how long until the next attempt.
        retry_in: Duration,
    },
}

/// Limits on new calls.
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    /// New calls beyond this many concurrent ones get 503.
    pub max_concurrent: usize,
    /// New calls per second beyond which 503 is answered.
    pub max_rate: u32,
    /// Retry-After seconds on those 503s.
    pub retry_after: u32,
}

/// The most journal rows refused INVITEs get per second.
pub const REJECTION_ROWS_PER_SECOND: u32 = 20;

struct RateLimiter {
    tokens: f64,
    last: Option<Instant>,
}

/// What kind of call this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Through the B2BUA to a configured target.
    Forward,
    /// A resident calling a tenant or citywide number.
    Inbound,
    /// A legacy number announcing the new one.
    Legacy,
    /// A call the engine places (a callback, a hand-off, the informer); its
    /// [`Flow`] runs it.
    Outbound,
}

/// Where a call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Waiting for the far leg (forward), or just created.
    Setup,
    /// Waiting for the caller lookup.
    LookingUp,
    /// Greeting and notices playing.
    Announcing,
    /// In an IVR menu.
    Menu,
    /// Waiting for an operator.
    Queued,
    /// An operator's softphone is ringing.
    Ringing,
    /// Two parties talking.
    Connected,
    /// Playing a last prompt before hanging up.
    Leaving,
}

/// What to do when the current playback ends. Each step of a resident's call has
/// its own continuation, so the end of one prompt can never replay an earlier step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterPlayback {
    /// Nothing (looping music, or the queue handles it).
    Nothing,
    /// The greeting ended: the notices come next (once the lookup answered).
    Greeting,
    /// The notices ended: the number's menu, or the queue.
    Notices,
    /// A menu prompt ended: wait for a digit.
    Menu,
    /// Hang up.
    Hangup,
    /// The outbound call's flow decides.
    Flow,
}

/// Per-call timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum CallTimer {
    /// The operator (or the called party) did not answer in time.
    Ring,
    /// Time for the next "please wait" announcement.
    Announce,
    /// The 5-minute rule: schedule a callback now.
    CallbackDue,
    /// No digit came in time.
    Menu,
    /// The caller lookup took too long: go on as an unknown caller.
    Lookup,
    /// The informer's message ended and no key came.
    Input,
    /// A person who pressed 1 waits for the dialer's answer.
    Decision,
}

/// What a tracked client transaction is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pending {
    /// The INVITE of leg n.
    Invite(usize),
    /// A BYE on leg n.
    Bye(usize),
    /// Another request we sent inside the dialog of the leg with this media (a
    /// DTMF INFO). Named by media, which stays with the leg when legs are swapped.
    /// No answer, 408 or 481 to it means the party is gone without a BYE (RFC 3261
    /// §12.2.1.2): the call ends as if it had hung up.
    InDialog(LegId),
}

/// IVR menu progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MenuState {
    pub name: String,
    pub tries: u32,
}

/// One call.
pub(crate) struct Call {
    /// Its key in the call table.
    pub key: u64,
    pub id: CallId,
    pub kind: Kind,
    pub legs: Vec<Leg>,
    pub stage: Stage,
    pub number: Option<Number>,
    pub tenant: Option<String>,
    pub city: Option<String>,
    pub dialled: String,
    pub caller: String,
    pub context: Option<CallerContext>,
    pub started: Instant,
    pub queued_at: Option<Instant>,
    pub answered_at: Option<Instant>,
    pub operator: Option<String>,
    /// The leg ringing an operator, or the resident's leg of a callback.
    pub ringing: Option<usize>,
    pub tried: Vec<String>,
    pub recording: Option<RecordingId>,
    pub playback: Option<(PlaybackId, AfterPlayback)>,
    pub timers: Vec<(CallTimer, Instant)>,
    /// The timers already on the core's heap (see [`CallControl::put_back`]).
    pub armed: Vec<(CallTimer, Instant)>,
    /// The caller lookup answered (or was given up on).
    pub looked_up: bool,
    /// Legs ringing the operator in parallel (one per registered contact); the
    /// first to answer wins and the others are cancelled.
    pub forks: Vec<usize>,
    /// An operator took this call (an outbound call's operator, before the party
    /// answered): they go to wrap-up when it ends.
    pub operator_connected: bool,
    pub callback_scheduled: bool,
    pub menu: Option<MenuState>,
    /// The flow of a call the engine places.
    pub flow: Option<Flow>,
    pub reported: bool,
    pub outstanding: u32,
    pub record: CallRecord,
}

impl Call {
    pub(crate) fn set_timer(&mut self, timer: CallTimer, at: Instant) {
        self.timers.retain(|(t, _)| *t != timer);
        self.timers.push((timer, at));
    }

    pub(crate) fn clear_timer(&mut self, timer: CallTimer) {
        self.timers.retain(|(t, _)| *t != timer);
    }
}

/// The call-control core.
pub struct CallControl {
    pub(crate) config: Arc<Config>,
    pub(crate) endpoint: Endpoint,
    pub(crate) media: Box<dyn MediaPort>,
    pub(crate) sdp: SdpPreferences,
    pub(crate) registrar: Registrar,
    /// Guessing resistance and the stateless refusal of strangers.
    pub(crate) screening: super::screening::Screening,
    /// Toll-fraud checks of callbacks.
    pub(crate) callbacks: super::toll::CallbackGuard,
    /// New recordings held back: the disk is below the watermark
    /// ([`super::disk`]).
    pub(crate) recordings_paused: bool,
    pub(crate) trunks: Trunks,
    pub(crate) operators: Operators,
    wall_anchor: (Instant, DateTime<Utc>),
    admission: Admission,
    rate: RateLimiter,
    pub(crate) draining: bool,
    refused_overload: u64,
    next_key: u64,
    pub(crate) calls: HashMap<u64, Call>,
    by_server_tx: HashMap<ServerTx, (u64, usize)>,
    by_client_tx: HashMap<ClientTx, (u64, Pending)>,
    trunk_tx: HashMap<ClientTx, (usize, Purpose)>,
    by_dialog: HashMap<DialogId, (u64, usize)>,
    by_media: HashMap<LegId, (u64, usize)>,
    recordings: HashMap<RecordingId, (CallId, Option<String>)>,
    /// Cities' time zones as caller lookups told them (recordings go by the city's
    /// local date).
    city_zones: HashMap<String, Tz>,
    timers: BinaryHeap<Reverse<(Instant, u64, CallTimer)>>,
    /// Calls waiting for an operator, in arrival order.
    pub(crate) waiting: VecDeque<u64>,
    /// Dial jobs claimed from the store that an operator makes (callbacks, supplier
    /// calls, status checks by operator), waiting for a free operator.
    pub(crate) jobs: VecDeque<DialJob>,
    /// What the operator's card says about each held job (see [`super::jobs`]).
    pub(crate) briefings: HashMap<DialJobId, Arc<Briefing>>,
    /// Robot calls claimed from the store (surveys, broadcasts, status checks by
    /// the informer), waiting for pacing and a free channel.
    pub(crate) robots: VecDeque<(DialJob, Arc<Briefing>)>,
    /// How fast robot calls start.
    pub(crate) pacer: super::pacing::Pacer,
    /// The time of the last event handled (for deadlines computed without one).
    now_hint: Instant,
    /// Operator-first hand-offs waiting for a free operator (see
    /// [`super::handoff`]).
    pub(crate) handoffs: VecDeque<Held>,
    /// People the informer put through (keypad 0), waiting for a free operator.
    pub(crate) transfers: VecDeque<u64>,
    /// Calls answered after their callback was scheduled, and when: a job of
    /// theirs that arrives (or is still held) is dropped, never dialled.
    pub(crate) callbacks_cancelled: HashMap<String, Instant>,
    /// INVITEs refused because they came from neither a trunk nor an operator.
    refused_source: u64,
    /// Refused INVITEs that got no journal row (over the per-second budget).
    rejected_unjournaled: u64,
    /// Journal rows for refused INVITEs in the current second.
    rejection_rows: (Option<Instant>, u32),
    /// Something may have freed an operator or queued a call: match them up once
    /// every call is back in the table.
    pub(crate) wants_dispatch: bool,
    /// The cluster's shared floor, when there is one ([`super::floor`]).
    pub(crate) floor: Option<super::floor::FloorState>,
    events: VecDeque<CallEvent>,
    actions: VecDeque<Action>,
}

impl std::fmt::Debug for CallControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallControl")
            .field("calls", &self.calls.len())
            .finish_non_exhaustive()
    }
}

impl CallControl {
    /// A call-control core over `endpoint` and `media`; `now` and `wall` anchor
    /// its wall clock.
    pub fn new(
        config: Arc<Config>,
        mut endpoint: Endpoint,
        media: Box<dyn MediaPort>,
        admission: Admission,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Self {
        let burst = f64::from(admission.max_rate.max(1));
        let secret = format!("{:08x}{:08x}", endpoint.random_u32(), endpoint.random_u32());
        let auth = DigestAuth::new(&config.sip.realm, &secret, now)
            .with_algorithms(&config.sip.digest_algorithms);
        let registrar = Registrar::new(auth, RegistrarSettings::default());
        let contact = endpoint.contact_uri(None, crate::sip::transport::TransportKind::Udp);
        let trunks = Trunks::new(&config.trunks, now, contact, &secret);
        let operators = Operators::new(&config.operators, config.queue.wrap_up, now, wall);
        for warning in config.warnings() {
            tracing::warn!("{warning}");
        }
        let rate = config.follow_ups.broadcast_rate;
        let screening = super::screening::Screening::new(config.security.sip_auth);
        Self {
            sdp: SdpPreferences::default(),
            config,
            endpoint,
            media,
            registrar,
            screening,
            callbacks: super::toll::CallbackGuard::default(),
            recordings_paused: false,
            trunks,
            operators,
            wall_anchor: (now, wall),
            admission,
            rate: RateLimiter {
                tokens: burst,
                last: None,
            },
            draining: false,
            refused_overload: 0,
            next_key: 1,
            calls: HashMap::new(),
            by_server_tx: HashMap::new(),
            by_client_tx: HashMap::new(),
            trunk_tx: HashMap::new(),
            by_dialog: HashMap::new(),
            by_media: HashMap::new(),
            recordings: HashMap::new(),
            city_zones: HashMap::new(),
            timers: BinaryHeap::new(),
            waiting: VecDeque::new(),
            jobs: VecDeque::new(),
            briefings: HashMap::new(),
            robots: VecDeque::new(),
            pacer: super::pacing::Pacer::new(rate),
            now_hint: now,
            handoffs: VecDeque::new(),
            transfers: VecDeque::new(),
            callbacks_cancelled: HashMap::new(),
            refused_source: 0,
            rejected_unjournaled: 0,
            rejection_rows: (None, 0),
            wants_dispatch: false,
            floor: None,
            events: VecDeque::new(),
            actions: VecDeque::new(),
        }
    }

    // -- the outside world ----------------------------------------------------------

    /// Stops taking new calls (SIGTERM): they get 503 with Retry-After; calls in
    /// progress go on until they end.
    pub fn set_draining(&mut self, draining: bool) {
        self.draining = draining;
    }

    /// New calls refused with 503 since start (limits or draining).
    pub fn refused_overload(&self) -> u64 {
        self.refused_overload
    }

    /// Calls in progress.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// Calls waiting for an operator.
    pub fn waiting_calls(&self) -> usize {
        self.waiting.len()
    }

    /// Recordings stopped but not yet reported complete by the media engine.
    pub fn pending_recordings(&self) -> usize {
        self.recordings.len()
    }

    /// Ends every call now (the end of a drain that ran out of time): each party
    /// gets a BYE or CANCEL, recordings are closed, the journal is written.
    ///
    /// A resident still waiting for an operator is owed a callback under the
    /// 5-minute rule: it is scheduled before the call ends. Callback jobs held in
    /// memory are handed back to the store, due at once for whichever node runs
    /// next (rather than after their lease lapses).
    pub fn hang_up_all(&mut self, now: Instant) {
        let keys: Vec<u64> = self.calls.keys().copied().collect();
        let mut held: Vec<DialJobId> = Vec::new();
        for key in keys {
            self.with_call(now, key, |cc, call| {
                if call.reported {
                    return;
                }
                if call.answered_at.is_none() {
                    // A callback cut short before the resident answered: the job
                    // goes back to the store with no attempt counted.
                    if let Some(job) = call.flow.as_ref().and_then(|f| f.errand().job()) {
                        held.push(job.id);
                    }
                }
                // A chain's call cut short counts as made (the dialer schedules the
                // next one after the engine is back).
                let attempt = call.flow.take().and_then(|f| f.attempt());
                cc.report(
                    attempt,
                    crate::dialer::order::ChainEvent::Ended {
                        outcome: crate::store::AttemptOutcome::Cancelled,
                        sip_status: 503,
                    },
                );
                let waiting = call.kind == Kind::Inbound
                    && call.answered_at.is_none()
                    && !matches!(call.stage, Stage::Leaving | Stage::Setup);
                if waiting {
                    cc.schedule_callback(now, call, "the engine shut down");
                }
                for idx in 0..call.legs.len() {
                    cc.drop_leg(now, key, call, idx);
                }
                let disposition = if call.answered_at.is_some() {
                    Disposition::Answered
                } else if call.callback_scheduled {
                    Disposition::CallbackScheduled
                } else {
                    Disposition::Abandoned
                };
                cc.finish(now, call, disposition, 503);
            });
        }
        held.extend(self.jobs.drain(..).map(|j| j.id));
        held.extend(self.robots.drain(..).map(|(j, _)| j.id));
        self.briefings.clear();
        for h in std::mem::take(&mut self.handoffs) {
            self.report(
                Some(h.order.attempt),
                crate::dialer::order::ChainEvent::Ended {
                    outcome: crate::store::AttemptOutcome::Cancelled,
                    sip_status: 503,
                },
            );
        }
        if !held.is_empty() {
            self.act(Action::ReleaseJobs(held));
        }
        self.process(now);
    }

    /// The dial jobs this core holds (waiting for an operator, or being dialled):
    /// their leases must be renewed while they are held.
    pub fn held_jobs(&self) -> Vec<DialJobId> {
        let mut ids: Vec<DialJobId> = self.jobs.iter().map(|j| j.id).collect();
        ids.extend(self.robots.iter().map(|(j, _)| j.id));
        ids.extend(
            self.calls
                .values()
                .filter_map(|c| c.flow.as_ref().and_then(|f| f.errand().job()).map(|j| j.id)),
        );
        ids.sort_unstable_by_key(|id| id.0);
        ids.dedup();
        ids
    }

    /// The SIP endpoint (for its statistics).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The wall-clock time at monotonic `now`.
    pub fn wall(&self, now: Instant) -> DateTime<Utc> {
        let (epoch, wall) = self.wall_anchor;
        wall + chrono::Duration::from_std(now.saturating_duration_since(epoch)).unwrap_or_default()
    }

    /// The monotonic instant of wall-clock time `at` (the anchor's instant for a
    /// time before it).
    pub(crate) fn instant_at(&self, at: DateTime<Utc>) -> Instant {
        let (epoch, wall) = self.wall_anchor;
        epoch + (at - wall).to_std().unwrap_or_default()
    }

    /// Re-anchors the wall clock (NTP corrections reach the journal).
    pub fn set_wall_clock(&mut self, now: Instant, wall: DateTime<Utc>) {
        self.wall_anchor = (now, wall);
    }

    /// Something arrived from the transports.
    pub fn handle_inbound(&mut self, now: Instant, inbound: Inbound) {
        match inbound {
            Inbound::Message {
                message: Ok(message),
                source,
                ..
            } => {
                if !self.screen(now, &message, source) {
                    self.endpoint.handle_message(now, message, source);
                }
            }
            Inbound::Message {
                message: Err(err),
                source,
                ..
            } => {
                tracing::debug!(%source, error = %err, "unparseable message");
                self.endpoint.reject_unparseable(&err, source);
            }
            Inbound::Unreachable { target } => self.endpoint.handle_transport_error(target),
        }
        self.process(now);
    }

    /// Something happened in the media engine.
    pub fn handle_media(&mut self, now: Instant, event: MediaEvent) {
        match event {
            MediaEvent::PlaybackFinished { leg, id } => {
                if let Some(&(key, _)) = self.by_media.get(&leg) {
                    self.with_call(now, key, |cc, call| cc.playback_finished(now, call, id));
                }
            }
            MediaEvent::Dtmf {
                leg,
                digit,
                duration,
                ..
            } => {
                if let Some(&(key, idx)) = self.by_media.get(&leg) {
                    self.with_call(now, key, |cc, call| {
                        cc.relay_digit(now, call, idx, digit, duration, true);
                        cc.key_pressed(now, call, idx, digit)
                    });
                }
            }
            MediaEvent::RtpTimeout { leg } => {
                if let Some(&(key, idx)) = self.by_media.get(&leg) {
                    tracing::info!(%leg, "no RTP for the timeout: ending the call");
                    self.with_call(now, key, |cc, call| {
                        // The silent party is hung up too (BYE): the flows only end
                        // the other legs of a leg that is gone.
                        cc.drop_leg(now, key, call, idx);
                        cc.leg_gone(now, call, idx, "rtp-timeout")
                    });
                }
            }
            MediaEvent::LegFailed { leg, error } => {
                if let Some(&(key, idx)) = self.by_media.get(&leg) {
                    tracing::error!(%leg, %error, "media leg failed: ending the call");
                    self.with_call(now, key, |cc, call| {
                        cc.drop_leg(now, key, call, idx);
                        cc.leg_gone(now, call, idx, "media-failed")
                    });
                }
            }
            MediaEvent::RecordingReady {
                id,
                path,
                duration,
                bytes,
            } => {
                if let Some((call, tenant)) = self.recordings.remove(&id) {
                    self.actions.push_back(Action::Recording {
                        call,
                        tenant,
                        path,
                        duration,
                        bytes,
                    });
                }
            }
            MediaEvent::RecordingDiscarded { id } => {
                self.recordings.remove(&id);
            }
            MediaEvent::RecordingFailed { id, path, error } => {
                if let Some((call, tenant)) = self.recordings.remove(&id) {
                    tracing::error!(%call, path = %path.display(), %error, "recording failed");
                    // Supervisors see it at once, not when someone asks for the file.
                    self.emit(
                        "recording.failed",
                        tenant,
                        json!({ "call": call, "file": path.display().to_string(), "error": error }),
                    );
                }
            }
        }
        self.process(now);
    }

    /// The store's answer to an [`Action::Lookup`].
    pub fn handle_lookup(&mut self, now: Instant, call: u64, context: Option<CallerContext>) {
        self.with_call(now, call, |cc, c| {
            if let Some(ctx) = &context {
                let city = ctx.info.city.clone().or_else(|| c.city.clone());
                if let (Some(zone), Some(city)) = (ctx.zone, city) {
                    cc.city_zones.insert(city, zone);
                }
            }
            cc.lookup_done(now, c, context)
        });
        self.process(now);
    }

    /// INVITEs refused since start because they came from an unknown address.
    pub fn refused_source(&self) -> u64 {
        self.refused_source
    }

    /// Refused INVITEs that got no journal row (a flood beyond the budget).
    pub fn rejected_unjournaled(&self) -> u64 {
        self.rejected_unjournaled
    }

    /// Answers a query from the console or the API.
    pub fn handle_query(&mut self, now: Instant, query: Query) -> Answer {
        let answer = match query {
            Query::Operators => Answer::Operators(self.operators.views()),
            Query::SetOperatorState {
                extension,
                state,
                reason,
            } => {
                let wall = self.wall(now);
                let r = self.operators.request(&extension, state, reason, now, wall);
                if r.is_ok() {
                    self.wants_dispatch = true;
                }
                Answer::OperatorState(r)
            }
            Query::Board => Answer::Board(self.board(now)),
            Query::ActiveCalls => Answer::ActiveCalls(self.calls_in_progress()),
            Query::SetCallTenant {
                call,
                tenant,
                scope,
            } => Answer::CallTenant(self.set_call_tenant(now, &call, tenant, &scope)),
            Query::SetOperators(roster) => Answer::OperatorsSet(self.set_operators(now, roster)),
        };
        self.process(now);
        answer
    }

    /// Resident calls and callbacks in progress (not forward or legacy calls).
    fn calls_in_progress(&self) -> Vec<ActiveCall> {
        self.calls
            .values()
            .filter(|c| matches!(c.kind, Kind::Inbound | Kind::Outbound))
            .map(|c| ActiveCall {
                call: c.id.0.clone(),
                tenant: c.tenant.clone(),
                city: c.city.clone(),
                stage: format!("{:?}", c.stage).to_lowercase(),
                operator: c.operator.clone(),
                screen_pop: self.offered_payload(c),
            })
            .collect()
    }

    /// The operator chose the tenant of a live call: the journal row, the
    /// recording and every later event carry it, and the queue serves it as that
    /// tenant's call from now on.
    fn set_call_tenant(
        &mut self,
        now: Instant,
        id: &str,
        tenant: String,
        scope: &[String],
    ) -> Result<CallTenant, CallError> {
        let key = self
            .calls
            .iter()
            .find(|(_, c)| c.id.0 == id && !c.reported)
            .map(|(k, _)| *k)
            .ok_or_else(|| CallError::Unknown(id.to_owned()))?;
        let mut answer = Err(CallError::Unknown(id.to_owned()));
        self.with_call(now, key, |cc, call| {
            if let Some(current) = &call.tenant {
                if !scope.is_empty() && !scope.contains(current) {
                    answer = Err(CallError::OtherTenant(id.to_owned()));
                    return;
                }
            }
            let previous = call.tenant.replace(tenant.clone());
            call.record.tenant = call.tenant.clone();
            cc.journal(call);
            tracing::info!(call = %call.id, %tenant, ?previous, "tenant set by the operator");
            cc.emit(
                "call.tenant",
                Some(tenant.clone()),
                json!({ "call": call.id, "tenant": tenant, "previous": previous }),
            );
            answer = Ok(CallTenant {
                call: call.id.0.clone(),
                tenant: tenant.clone(),
                previous,
            });
            cc.wants_dispatch = true;
        });
        answer
    }

    pub(crate) fn board(&self, now: Instant) -> Board {
        let waiting = self
            .waiting
            .iter()
            .filter_map(|k| self.calls.get(k))
            .map(|c| WaitingCall {
                call: c.id.0.clone(),
                tenant: c.tenant.clone(),
                city: c.city.clone(),
                number_kind: c.number.as_ref().map_or("", |n| n.kind.as_str()).to_owned(),
                caller: c.caller.clone(),
                // From the call's arrival: the 5 minutes run from there.
                waited_s: now.saturating_duration_since(c.started).as_secs(),
            })
            .collect();
        Board {
            waiting,
            operators: self.operators.views(),
            calls_active: self.calls.len(),
            trunks: self.trunks.views(now, self.wall(now)),
        }
    }

    /// Deadlines that have passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.endpoint.handle_timeout(now);
        while let Some((index, purpose, request, target)) = self.trunks.poll_request(now) {
            let tx = self.endpoint.send_request(now, request, target);
            self.trunk_tx.insert(tx, (index, purpose));
        }
        if self.registrar.next_expiry().is_some_and(|at| at <= now) {
            for extension in self.registrar.expire(now) {
                tracing::info!(%extension, "registration expired");
                let wall = self.wall(now);
                self.share_bindings(&extension);
                let anywhere = self.registered_anywhere(&extension, now);
                self.operators
                    .set_registered(&extension, anywhere, now, wall);
                self.emit(
                    "operator.registration",
                    None,
                    json!({ "extension": extension, "online": false }),
                );
            }
        }
        if self.operators.next_deadline().is_some_and(|at| at <= now) {
            let wall = self.wall(now);
            self.operators.handle_timeout(now, wall);
            self.wants_dispatch = true;
        }
        self.expire_held_handoffs(now);
        self.check_deadlines(now);
        self.dispatch_robots(now);
        while let Some(Reverse((at, key, timer))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let due = self
                .calls
                .get(&key)
                .is_some_and(|c| c.timers.contains(&(timer, at)));
            if due {
                self.with_call(now, key, |cc, call| {
                    call.clear_timer(timer);
                    cc.timer_fired(now, call, timer);
                });
            }
        }
        self.process(now);
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.endpoint.poll_transmit()
    }

    /// The next event for the bus.
    pub fn poll_event(&mut self) -> Option<CallEvent> {
        self.events.pop_front()
    }

    /// The next piece of store work.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`CallControl::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.endpoint.poll_timeout(),
            self.registrar.next_expiry(),
            self.trunks.next_deadline(),
            self.operators.next_deadline(),
            self.next_held_deadline(),
            self.next_deadline_check(),
            self.next_robot_start(self.now_hint),
            self.timers.peek().map(|Reverse((at, _, _))| *at),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // -- plumbing shared by the flows ------------------------------------------------------

    pub(crate) fn emit(&mut self, kind: &'static str, tenant: Option<String>, payload: Value) {
        self.events.push_back(CallEvent {
            kind,
            tenant,
            payload,
        });
    }

    pub(crate) fn act(&mut self, action: Action) {
        self.actions.push_back(action);
    }

    /// Runs what the endpoint reported, then offers waiting calls to free
    /// operators, then reports operator and trunk changes.
    pub(crate) fn process(&mut self, now: Instant) {
        while let Some(event) = self.endpoint.poll_event() {
            match event {
                EndpointEvent::Request {
                    tx,
                    request,
                    source,
                } => self.on_request(now, tx, request, source),
                EndpointEvent::Ack { request, .. } => self.on_ack(now, &request),
                EndpointEvent::Cancelled { tx } => self.on_cancelled(now, tx),
                EndpointEvent::AckTimeout { tx, dialog } => self.on_ack_timeout(now, tx, &dialog),
                EndpointEvent::Response { tx, response } => self.on_response(now, tx, &response),
                EndpointEvent::Failed { tx, reason } => self.on_failed(now, tx, reason),
            }
        }
        self.now_hint = now;
        if self.wants_dispatch {
            self.dispatch(now);
        }
        if !self.robots.is_empty() {
            self.dispatch_robots(now);
        }
        self.floor_after_dispatch(now);
        for view in self.operators.take_changes() {
            let payload = serde_json::to_value(&view).unwrap_or_default();
            self.emit("operator.state", None, payload);
            if self.floor.is_some() {
                self.act(Action::Floor(super::floor::FloorWrite::Operator(view)));
            }
        }
        for change in self.trunks.take_changes() {
            tracing::info!(trunk = %change.trunk, health = ?change.health, reason = %change.reason, "trunk health changed");
            self.emit(
                "trunk.health",
                None,
                json!({ "trunk": change.trunk, "health": change.health, "reason": change.reason }),
            );
        }
    }

    /// Takes a call out of the table, runs `f`, and puts it back (or drops it when
    /// it is over and nothing of it runs any more).
    pub(crate) fn with_call(
        &mut self,
        now: Instant,
        key: u64,
        f: impl FnOnce(&mut Self, &mut Call),
    ) {
        let Some(mut call) = self.calls.remove(&key) else {
            return;
        };
        f(self, &mut call);
        let _ = now;
        self.put_back(key, call);
    }

    /// Puts a call (new, or taken out by [`with_call`](Self::with_call)) into the
    /// table: every timer it holds that is not yet on the heap goes there, so no
    /// path can set a timer that never fires; a call that is over and has nothing
    /// in flight is dropped with its index entries instead.
    fn put_back(&mut self, key: u64, mut call: Call) {
        for t in &call.timers {
            if !call.armed.contains(t) {
                self.timers.push(Reverse((t.1, key, t.0)));
            }
        }
        call.armed.clone_from(&call.timers);
        if call.reported && call.outstanding == 0 {
            for (i, leg) in call.legs.iter().enumerate() {
                if let Role::Uas(tx) = leg.role {
                    self.by_server_tx.remove(&tx);
                }
                if let Some(d) = &leg.dialog {
                    self.by_dialog.remove(d.id());
                }
                if self.by_media.get(&leg.media) == Some(&(key, i)) {
                    self.by_media.remove(&leg.media);
                }
            }
            self.waiting.retain(|k| *k != key);
            self.transfers.retain(|k| *k != key);
            return;
        }
        self.calls.insert(key, call);
    }

    pub(crate) fn new_key(&mut self) -> u64 {
        let k = self.next_key;
        self.next_key += 1;
        k
    }

    pub(crate) fn new_call_id(&mut self) -> CallId {
        CallId(format!(
            "c{:08x}{:08x}",
            self.endpoint.random_u32(),
            self.endpoint.random_u32()
        ))
    }

    /// Registers a leg in the indices; returns its index in the call.
    pub(crate) fn add_leg(&mut self, key: u64, call: &mut Call, leg: Leg) -> usize {
        let idx = call.legs.len();
        match leg.role {
            Role::Uas(tx) => {
                self.by_server_tx.insert(tx, (key, idx));
            }
            Role::Uac(tx) => {
                call.outstanding += 1;
                self.by_client_tx.insert(tx, (key, Pending::Invite(idx)));
            }
        }
        self.by_media.insert(leg.media, (key, idx));
        call.legs.push(leg);
        idx
    }

    /// Indexes a leg's dialog once it exists.
    pub(crate) fn index_dialog(&mut self, key: u64, call: &Call, idx: usize) {
        if let Some(d) = call.legs.get(idx).and_then(|l| l.dialog.as_ref()) {
            self.by_dialog.insert(d.id().clone(), (key, idx));
        }
    }

    /// Swaps legs `a` and `b` of a call and fixes every index that names them
    /// (media, dialog, INVITE transaction), so a flow that expects a party at a
    /// fixed place (the operator of a callback at 0) keeps working when another
    /// fork answered.
    pub(crate) fn swap_legs(&mut self, key: u64, call: &mut Call, a: usize, b: usize) {
        if a == b || a >= call.legs.len() || b >= call.legs.len() {
            return;
        }
        call.legs.swap(a, b);
        for idx in [a, b] {
            let Some(leg) = call.legs.get(idx) else {
                continue;
            };
            self.by_media.insert(leg.media, (key, idx));
            if let Some(d) = &leg.dialog {
                self.by_dialog.insert(d.id().clone(), (key, idx));
            }
            match leg.role {
                Role::Uac(tx) => {
                    if let Some(entry) = self.by_client_tx.get_mut(&tx) {
                        if matches!(entry.1, Pending::Invite(_)) {
                            entry.1 = Pending::Invite(idx);
                        }
                    }
                }
                Role::Uas(tx) => {
                    if self.by_server_tx.contains_key(&tx) {
                        self.by_server_tx.insert(tx, (key, idx));
                    }
                }
            }
        }
        for slot in call.forks.iter_mut().chain(call.ringing.iter_mut()) {
            if *slot == a {
                *slot = b;
            } else if *slot == b {
                *slot = a;
            }
        }
    }

    /// Sends `request` (an INVITE built from leg `idx`'s, with a new CSeq) in a new
    /// client transaction that takes the place of the leg's: its responses reach
    /// the leg as the first INVITE's would have.
    pub(crate) fn resend_invite(
        &mut self,
        now: Instant,
        key: u64,
        call: &mut Call,
        idx: usize,
        request: Request,
    ) -> bool {
        let Some(target) = call.legs.get(idx).map(|l| l.target) else {
            return false;
        };
        let tx = self.endpoint.send_request(now, request, target);
        let Some(sent) = self.endpoint.client_request(tx).cloned() else {
            return false;
        };
        let Some(leg) = call.legs.get_mut(idx) else {
            return false;
        };
        leg.role = Role::Uac(tx);
        leg.invite = sent;
        leg.dialog = None;
        leg.state = super::leg::LegState::Offering;
        call.outstanding += 1;
        self.by_client_tx.insert(tx, (key, Pending::Invite(idx)));
        true
    }

    /// Hangs up a leg: BYE if answered, CANCEL if still ringing, nothing if over.
    pub(crate) fn drop_leg(&mut self, now: Instant, key: u64, call: &mut Call, idx: usize) {
        let Some(leg) = call.legs.get_mut(idx) else {
            return;
        };
        match leg.state {
            super::leg::LegState::Answered => {
                let waiting_for_ack = leg.bye_after_ack;
                if let Some(tx) = leg.bye(&mut self.endpoint, now) {
                    call.outstanding += 1;
                    self.by_client_tx.insert(tx, (key, Pending::Bye(idx)));
                } else if leg.bye_after_ack && !waiting_for_ack {
                    // The BYE waits for the caller's ACK: the call must stay in the
                    // table (and its dialog indexed) until then.
                    call.outstanding += 1;
                }
            }
            super::leg::LegState::Offering | super::leg::LegState::Ringing => match leg.role {
                Role::Uac(_) => leg.cancel(&mut self.endpoint, now),
                Role::Uas(_) => leg.reject(&mut self.endpoint, now, 480, "Temporarily Unavailable"),
            },
            super::leg::LegState::Ended => {}
        }
        let _ = self.media.stop_playback(leg.media);
    }

    /// Plays prompts on a leg; `after` says what happens when they end.
    pub(crate) fn play(
        &mut self,
        call: &mut Call,
        idx: usize,
        items: Vec<String>,
        looped: bool,
        after: AfterPlayback,
    ) {
        let Some(leg) = call.legs.get(idx) else {
            return;
        };
        let (items, missing): (Vec<String>, Vec<String>) =
            items.into_iter().partition(|p| self.media.has_prompt(p));
        if !missing.is_empty() {
            // `serve` refuses to start without them, so this is a prompt named at
            // run time (a greeting added since): said, not silently skipped.
            tracing::warn!(call = %call.id, ?missing, "prompts not in the library are skipped");
        }
        if items.is_empty() {
            call.playback = None;
            return;
        }
        let mut playlist = crate::media::Playlist::sequence(items);
        if looped {
            playlist = playlist.looping();
        }
        match self.media.play(leg.media, &playlist) {
            Ok(id) => call.playback = Some((id, after)),
            Err(e) => {
                tracing::warn!(call = %call.id, error = %e, "cannot play prompts");
                call.playback = None;
            }
        }
    }

    /// Starts recording the caller's leg (if recording is on).
    pub(crate) fn start_recording(&mut self, now: Instant, call: &mut Call, caller_leg: usize) {
        if !self.config.media.record_calls || call.recording.is_some() {
            return;
        }
        if self.recordings_paused {
            return self.recording_refused(call);
        }
        let Some(leg) = call.legs.get(caller_leg) else {
            return;
        };
        let _ = now;
        let path = self.recording_file(call);
        match self.media.start_recording(leg.media, &path) {
            Ok(id) => {
                call.recording = Some(id);
                self.recordings
                    .insert(id, (call.id.clone(), call.tenant.clone()));
            }
            Err(e) => tracing::error!(call = %call.id, error = %e, "cannot start recording"),
        }
    }

    pub(crate) fn stop_recording(&mut self, call: &mut Call) {
        if let Some(id) = call.recording.take() {
            // The tenant may have become known since the recording started (a
            // citywide caller's address): `recording.ready` carries it.
            if let Some(entry) = self.recordings.get_mut(&id) {
                entry.1 = call.tenant.clone();
            }
            // ... and the file moves to the tenant's directory (and the city's
            // date, once the lookup told its zone); `recording.ready` has the path.
            let path = self.recording_file(call);
            let _ = self.media.stop_recording(id, Some(&path));
        }
    }

    /// Where a call's recording belongs: under the date the call was offered, in
    /// its city's time zone when known (UTC otherwise), and its tenant
    /// (`no-tenant` while unknown).
    fn recording_file(&self, call: &Call) -> std::path::PathBuf {
        let zone = call.context.as_ref().and_then(|c| c.zone).or_else(|| {
            call.city
                .as_ref()
                .and_then(|c| self.city_zones.get(c).copied())
        });
        let started = call.record.offered_at;
        let day = zone.map_or(started.date_naive(), |z| {
            started.with_timezone(&z).date_naive()
        });
        let tenant = call.tenant.clone().unwrap_or_else(|| "no-tenant".into());
        crate::media::recording::recording_path(
            &self.config.recordings_dir(),
            day,
            &tenant,
            &call.id.to_string(),
        )
    }

    // -- DTMF relay between bridged legs (media, issue 4) ------------------------------

    /// Passes a key pressed on leg `from` to the party on the other leg of a
    /// connected call, the way that party negotiated: RFC 4733 events when it has
    /// telephone-event (for keys that came as events the engine relays them itself,
    /// with their timing), SIP INFO `application/dtmf-relay` otherwise.
    fn relay_digit(
        &mut self,
        now: Instant,
        call: &mut Call,
        from: usize,
        digit: char,
        duration: Duration,
        as_event: bool,
    ) {
        if call.stage != Stage::Connected || call.legs.len() < 2 {
            return;
        }
        let to = if from == 0 {
            call.ringing.unwrap_or(1)
        } else {
            0
        };
        let Some(target) = call.legs.get(to).filter(|_| to != from).map(|l| l.media) else {
            return;
        };
        let events = self.media.telephone_event(target);
        if as_event && events {
            return;
        }
        if events {
            if let Err(e) = self.media.send_dtmf(target, digit, duration) {
                tracing::warn!(call = %call.id, error = %e, "cannot relay a DTMF key");
            }
            return;
        }
        if let Some(leg) = call.legs.get_mut(to) {
            if let Some(tx) = leg.send_info_dtmf(&mut self.endpoint, now, digit, duration) {
                // Tracked: a party that stops answering in its dialog is gone.
                call.outstanding += 1;
                self.by_client_tx
                    .insert(tx, (call.key, Pending::InDialog(target)));
            }
        }
    }

    /// A request inside the dialog of the leg with `media` got no answer, 408 or
    /// 481: its party is gone without a BYE (a phone that lost its network). The
    /// leg is hung up too (BYE, so the phone is left with no live dialog should it
    /// come back) and the call reacts as to a hang-up: the other legs get their BYE
    /// and the journal row its disposition.
    fn party_lost(&mut self, now: Instant, key: u64, call: &mut Call, media: LegId, why: &str) {
        // A leg already over (hung up meanwhile) needs nothing more.
        let Some(idx) = call
            .legs
            .iter()
            .position(|l| l.media == media && l.state == super::leg::LegState::Answered)
        else {
            return;
        };
        tracing::info!(call = %call.id, leg = idx, why, "party gone without a BYE: ending the call");
        self.drop_leg(now, key, call, idx);
        self.leg_gone(now, call, idx, why);
    }

    /// Writes the journal row as it stands.
    pub(crate) fn journal(&mut self, call: &Call) {
        self.act(Action::Journal(Box::new(call.record.clone())));
    }

    /// The end of a call: recording stopped, media freed, journal and event written
    /// once. Legs still up must have been dropped by the caller.
    pub(crate) fn finish(
        &mut self,
        now: Instant,
        call: &mut Call,
        disposition: Disposition,
        status: u16,
    ) {
        if call.reported {
            return;
        }
        call.reported = true;
        self.stop_recording(call);
        for leg in &call.legs {
            leg.close_media(self.media.as_ref());
        }
        if let Some(ext) = call.operator.clone() {
            let wall = self.wall(now);
            if call.answered_at.is_some() || call.operator_connected {
                self.operators.finish_call(&ext, now, wall);
            } else {
                self.operators.release(&ext, now, wall);
            }
        }
        // The law's clock runs from the call's arrival, not from joining the queue.
        let wait = call
            .answered_at
            .unwrap_or(now)
            .saturating_duration_since(call.started);
        let talk = call
            .answered_at
            .map_or(Duration::ZERO, |a| now.saturating_duration_since(a));
        let wall = self.wall(now);
        call.record.ended_at = Some(wall);
        call.record.wait_seconds = Some(wait.as_secs() as i64);
        call.record.talk_seconds = Some(talk.as_secs() as i64);
        call.record.disposition = Some(disposition);
        call.record.operator_extension = call.operator.clone();
        self.journal(call);
        call.timers.clear();
        self.waiting.retain(|k| self.calls.contains_key(k));
        let disposition_text = serde_json::to_value(disposition).unwrap_or_default();
        self.emit(
            "call.ended",
            call.tenant.clone(),
            json!({
                "call": call.id,
                "disposition": disposition_text,
                "sip_status": status,
                "wait_ms": wait.as_millis() as u64,
                "talk_ms": talk.as_millis() as u64,
                "operator": call.operator,
            }),
        );
        self.wants_dispatch = true;
    }

    // -- SIP events ------------------------------------------------------------------

    fn reply(
        &mut self,
        now: Instant,
        tx: ServerTx,
        request: &Request,
        status: u16,
        reason: Option<&str>,
    ) {
        let mut response = match reason {
            Some(r) => request.response_with_reason(status, r),
            None => request.response(status),
        };
        if response.headers.to.tag().is_none() {
            let tag = self.endpoint.new_tag();
            response.headers.to.set_tag(&tag);
        }
        self.endpoint.respond(now, tx, response);
    }

    fn admit(&mut self, now: Instant) -> Result<(), &'static str> {
        if self.draining {
            return Err("Service Unavailable: shutting down");
        }
        if self.calls.len() >= self.admission.max_concurrent {
            return Err("Service Unavailable: too many calls");
        }
        // Every call needs two legs (the caller's, and the callee's or operator's):
        // refusing it now is cleaner than failing it half set up.
        if self.media.free_legs() < 2 {
            return Err("Service Unavailable: RTP ports exhausted");
        }
        let rate = f64::from(self.admission.max_rate.max(1));
        let elapsed = self
            .rate
            .last
            .map_or(0.0, |l| now.saturating_duration_since(l).as_secs_f64());
        self.rate.last = Some(now);
        self.rate.tokens = (self.rate.tokens + elapsed * rate).min(rate);
        if self.rate.tokens < 1.0 {
            return Err("Service Unavailable: call rate limit");
        }
        self.rate.tokens -= 1.0;
        Ok(())
    }

    fn on_request(&mut self, now: Instant, tx: ServerTx, request: Request, source: Target) {
        if request.headers.to.tag().is_some() {
            return self.on_in_dialog(now, tx, request);
        }
        match request.method {
            Method::Invite => self.on_invite(now, tx, request, source),
            Method::Options => {
                let mut r = request.response(200);
                let tag = self.endpoint.new_tag();
                r.headers.to.set_tag(&tag);
                r.headers.push("Allow", self.endpoint.allow_header());
                r.headers.push("Accept", "application/sdp");
                r.headers
                    .push("Supported", self.endpoint.supported_header());
                self.endpoint.respond(now, tx, r);
            }
            Method::Register => self.on_register(now, tx, &request, source),
            _ => self.reply(now, tx, &request, 481, None),
        }
    }

    /// Takes a new roster: the operators' queue follows it, and softphones of
    /// extensions no longer in it lose their registrations.
    fn set_operators(&mut self, now: Instant, roster: Vec<Operator>) -> Vec<String> {
        let mut config = (*self.config).clone();
        config.operators = roster;
        self.config = Arc::new(config);
        let wall = self.wall(now);
        let removed = self.operators.set_roster(&self.config.operators, now, wall);
        let gone: Vec<String> = self
            .registrar
            .aors()
            .filter(|a| self.config.operator(a).is_none())
            .collect();
        for aor in gone {
            self.registrar.forget(&aor);
        }
        self.wants_dispatch = true;
        removed
    }

    fn on_register(&mut self, now: Instant, tx: ServerTx, request: &Request, source: Target) {
        let config = self.config.clone();
        let secret_of = |ext: &str| config.operator(ext).map(Operator::digest_secret);
        let extension = request.headers.to.uri.user_unescaped().unwrap_or_default();
        let hold_off = self.register_hold_off(now, source, &extension);
        let (mut response, change, outcome) = self
            .registrar
            .handle_guarded(now, request, source, secret_of, hold_off);
        self.note_register(now, source, &extension, &outcome);
        let tag = self.endpoint.new_tag();
        response.headers.to.set_tag(&tag);
        let accepted = response.status == 200;
        self.endpoint.respond(now, tx, response);
        if accepted {
            // Refreshes too: the other nodes keep a binding until the expiry shared.
            self.share_bindings(&extension);
        }
        let (extension, online) = match change {
            Some(RegistrationChange::Online(e)) => (e, true),
            Some(RegistrationChange::Offline(e)) => (e, false),
            None => return,
        };
        tracing::info!(%extension, %source, online, "operator softphone registration changed");
        let wall = self.wall(now);
        let anywhere = self.registered_anywhere(&extension, now);
        self.operators
            .set_registered(&extension, anywhere, now, wall);
        self.emit(
            "operator.registration",
            None,
            json!({ "extension": extension, "online": online }),
        );
        if online {
            self.wants_dispatch = true;
        }
    }

    fn on_invite(&mut self, now: Instant, tx: ServerTx, invite: Request, source: Target) {
        // Calls come from the providers' trunks or from registered operators, never
        // from anyone else: a stranger's INVITE must not become a paid outbound call.
        if !self.trusted_source(&source, now) {
            // Counted, not journalled: a flood of junk must not fill the database.
            self.refused_source += 1;
            tracing::warn!(%source, uri = %invite.uri, from = %invite.headers.from.uri, "INVITE from an unknown address refused");
            return self.reply(
                now,
                tx,
                &invite,
                403,
                Some("Forbidden: not a trunk or a registered operator"),
            );
        }
        if self.over_call_cap(&source) {
            self.refused_overload += 1;
            tracing::info!(%source, "INVITE refused: the address has as many calls as it may");
            let mut r = invite
                .response_with_reason(503, "Service Unavailable: too many calls from your address");
            let tag = self.endpoint.new_tag();
            r.headers.to.set_tag(&tag);
            r.headers
                .push("Retry-After", self.admission.retry_after.to_string());
            return self.endpoint.respond(now, tx, r);
        }
        let config = self.config.clone();
        let number = match route(&config, &invite) {
            Route::Number(n) => n.clone(),
            Route::Unknown => {
                tracing::info!(uri = %invite.uri, from = %invite.headers.from.uri, "INVITE for an unknown number");
                self.journal_rejected(now, &invite, None, 404, "number not served here");
                return self.reply(
                    now,
                    tx,
                    &invite,
                    404,
                    Some("Not Found: number not served here"),
                );
            }
        };
        if invite.headers.max_forwards == Some(0) {
            self.journal_rejected(now, &invite, Some(&number), 483, "too many hops");
            return self.reply(now, tx, &invite, 483, None);
        }
        if let Err(reason) = self.admit(now) {
            self.refused_overload += 1;
            self.journal_rejected(now, &invite, Some(&number), 503, reason);
            let mut r = invite.response_with_reason(503, reason);
            let tag = self.endpoint.new_tag();
            r.headers.to.set_tag(&tag);
            r.headers
                .push("Retry-After", self.admission.retry_after.to_string());
            return self.endpoint.respond(now, tx, r);
        }
        let dialled = dialled(&invite).unwrap_or_default();
        match number.kind {
            NumberKind::Forward => self.start_forward(now, tx, invite, source, number, dialled),
            NumberKind::Dispatch => self.staff_called(now, tx, invite, number),
            NumberKind::Tenant | NumberKind::Citywide | NumberKind::Legacy => {
                self.start_inbound(now, tx, invite, source, number, dialled)
            }
        }
    }

    /// Whether an INVITE from `source` may be served: it comes from a trunk, from
    /// an address in `[sip] inbound_from`, from a registered operator's softphone,
    /// or — when no trunk is configured at all (a file of `[[number]]` tables
    /// only) — from loopback.
    pub(crate) fn trusted_source(&self, source: &Target, now: Instant) -> bool {
        let ip = source.addr.ip();
        self.trunks.trunk_of_source(ip).is_some()
            || self.config.sip.inbound_from.contains(&ip)
            || (self.config.trunks.is_empty() && ip.is_loopback())
            || self.registrar.registered_source(source, now).is_some()
    }

    /// Counts an INVITE refused for its source.
    pub(crate) fn count_refused_source(&mut self) {
        self.refused_source = self.refused_source.saturating_add(1);
    }

    /// Keys the digest nonces with `key` (the driver draws it from the OS's
    /// cryptographic RNG: [`crate::sip::digest::random_key`]). Call before any
    /// message is handled.
    pub fn with_auth_key(mut self, key: &str, now: Instant) -> Self {
        let auth = DigestAuth::new(&self.config.sip.realm, key, now)
            .with_algorithms(&self.config.sip.digest_algorithms);
        self.registrar = Registrar::new(auth, RegistrarSettings::default());
        self
    }

    /// A journal row (disposition `rejected`) and a `call.rejected` event for an
    /// INVITE that passed the source check but was refused with `status`. At most
    /// [`REJECTION_ROWS_PER_SECOND`] rows a second are written; the rest are only
    /// counted ([`rejected_unjournaled`](Self::rejected_unjournaled)).
    pub(crate) fn journal_rejected(
        &mut self,
        now: Instant,
        invite: &Request,
        number: Option<&Number>,
        status: u16,
        reason: &str,
    ) {
        let window_over = self
            .rejection_rows
            .0
            .is_none_or(|start| now.saturating_duration_since(start) >= Duration::from_secs(1));
        if window_over {
            self.rejection_rows = (Some(now), 0);
        }
        if self.rejection_rows.1 >= REJECTION_ROWS_PER_SECOND {
            self.rejected_unjournaled += 1;
            return;
        }
        self.rejection_rows.1 += 1;
        let clip = |s: String| s.chars().take(64).collect::<String>();
        let caller = clip(invite.headers.from.uri.user_unescaped().unwrap_or_default());
        let to = clip(dialled(invite).unwrap_or_default());
        let id = self.new_call_id();
        let wall = self.wall(now);
        let mut record =
            CallRecord::offered(id.0.clone(), CallDirection::Inbound, &caller, &to, wall);
        record.tenant = number.and_then(|n| n.tenant.clone());
        record.number_kind = number.map(|n| n.kind.as_str().to_owned());
        record.ended_at = Some(wall);
        record.wait_seconds = Some(0);
        record.talk_seconds = Some(0);
        record.disposition = Some(Disposition::Rejected);
        let tenant = record.tenant.clone();
        self.act(Action::Journal(Box::new(record)));
        self.emit(
            "call.rejected",
            tenant,
            json!({
                "call": id,
                "from": caller,
                "to": to,
                "number_kind": number.map(|n| n.kind.as_str()),
                "sip_status": status,
                "reason": reason,
            }),
        );
    }

    /// A new call record for the journal and its in-memory state.
    pub(crate) fn new_call(
        &mut self,
        now: Instant,
        kind: Kind,
        number: Option<Number>,
        dialled: String,
        caller: String,
        direction: CallDirection,
    ) -> (u64, Call) {
        let key = self.new_key();
        let id = self.new_call_id();
        let wall = self.wall(now);
        let mut record = CallRecord::offered(
            id.0.clone(),
            direction,
            caller.clone(),
            dialled.clone(),
            wall,
        );
        record.tenant = number.as_ref().and_then(|n| n.tenant.clone());
        record.number_kind = number.as_ref().map(|n| n.kind.as_str().to_owned());
        let call = Call {
            key,
            id,
            kind,
            legs: Vec::new(),
            stage: Stage::Setup,
            tenant: number.as_ref().and_then(|n| n.tenant.clone()),
            city: number.as_ref().and_then(|n| n.city.clone()),
            number,
            dialled,
            caller,
            context: None,
            started: now,
            queued_at: None,
            answered_at: None,
            operator: None,
            ringing: None,
            tried: Vec::new(),
            recording: None,
            playback: None,
            timers: Vec::new(),
            armed: Vec::new(),
            looked_up: false,
            forks: Vec::new(),
            operator_connected: false,
            callback_scheduled: false,
            menu: None,
            flow: None,
            reported: false,
            outstanding: 0,
            record,
        };
        (key, call)
    }

    /// Adds a new call to the table (see [`put_back`](Self::put_back): its timers
    /// are armed, and a call that already ended is not kept).
    pub(crate) fn insert_call(&mut self, key: u64, call: Call) {
        self.put_back(key, call);
    }

    fn on_in_dialog(&mut self, now: Instant, tx: ServerTx, request: Request) {
        let Some(id) = DialogId::of_request(&request) else {
            return;
        };
        let Some(&(key, idx)) = self.by_dialog.get(&id) else {
            return self.reply(now, tx, &request, 481, None);
        };
        if !self.calls.contains_key(&key) {
            return self.reply(now, tx, &request, 481, None);
        }
        self.with_call(now, key, |cc, call| {
            let Some(leg) = call.legs.get_mut(idx) else {
                return;
            };
            let prefs = cc.sdp.clone();
            let note = leg.on_request(
                &mut cc.endpoint,
                cc.media.as_ref(),
                now,
                tx,
                &request,
                &prefs,
            );
            cc.note(now, key, call, idx, note);
        });
    }

    fn on_ack(&mut self, now: Instant, ack: &Request) {
        let Some(id) = DialogId::of_request(ack) else {
            return;
        };
        let Some(&(key, idx)) = self.by_dialog.get(&id) else {
            return;
        };
        self.with_call(now, key, |cc, call| {
            let Some(leg) = call.legs.get_mut(idx) else {
                return;
            };
            let usable = leg.on_ack(cc.media.as_ref(), ack);
            if leg.bye_after_ack {
                leg.bye_after_ack = false;
                call.outstanding = call.outstanding.saturating_sub(1);
                cc.drop_leg(now, key, call, idx);
            }
            if !usable {
                // Late offer answered badly (or not at all) in the ACK: no media can
                // flow and no RTP timeout would end it. RFC 3261 §13.2.1: BYE.
                tracing::info!(call = %call.id, "unusable SDP answer in the ACK; ending the call");
                cc.drop_leg(now, key, call, idx);
                cc.leg_gone(now, call, idx, "bad-sdp");
            }
        });
    }

    fn on_cancelled(&mut self, now: Instant, tx: ServerTx) {
        let Some(&(key, idx)) = self.by_server_tx.get(&tx) else {
            return;
        };
        self.with_call(now, key, |cc, call| {
            if let Some(leg) = call.legs.get_mut(idx) {
                leg.reject(&mut cc.endpoint, now, 487, "Request Terminated");
            }
            cc.leg_gone(now, call, idx, "cancelled");
        });
    }

    fn on_ack_timeout(&mut self, now: Instant, tx: ServerTx, dialog: &DialogId) {
        // The initial INVITE's transaction; for a re-INVITE's 2xx, its dialog.
        let found = self
            .by_server_tx
            .get(&tx)
            .or_else(|| self.by_dialog.get(dialog));
        let Some(&(key, idx)) = found else {
            return;
        };
        self.with_call(now, key, |cc, call| {
            tracing::info!(call = %call.id, "no ACK for our 2xx; ending the call");
            if let Some(leg) = call.legs.get_mut(idx) {
                leg.acked = true;
                if leg.bye_after_ack {
                    leg.bye_after_ack = false;
                    call.outstanding = call.outstanding.saturating_sub(1);
                }
            }
            cc.drop_leg(now, key, call, idx);
            cc.leg_gone(now, call, idx, "no-ack");
        });
    }

    fn on_response(&mut self, now: Instant, tx: ClientTx, response: &crate::sip::wire::Response) {
        if let Some(&(index, purpose)) = self.trunk_tx.get(&tx) {
            if !response.is_provisional() {
                self.trunk_tx.remove(&tx);
                self.trunks
                    .handle_response(now, index, purpose, Some(response));
            }
            return;
        }
        let Some(&(key, pending)) = self.by_client_tx.get(&tx) else {
            return;
        };
        let over = !response.is_provisional();
        if over {
            self.by_client_tx.remove(&tx);
        }
        self.with_call(now, key, |cc, call| {
            if over {
                call.outstanding = call.outstanding.saturating_sub(1);
            }
            match pending {
                Pending::Invite(idx) => {
                    if cc.answer_challenge(now, call, idx, response) {
                        return;
                    }
                    let Some(leg) = call.legs.get_mut(idx) else {
                        return;
                    };
                    let note =
                        leg.on_invite_response(&mut cc.endpoint, cc.media.as_ref(), now, response);
                    cc.index_dialog(key, call, idx);
                    cc.note(now, key, call, idx, note);
                }
                Pending::InDialog(media) => {
                    if over && matches!(response.status, 408 | 481) {
                        cc.party_lost(now, key, call, media, "no-dialog");
                    }
                }
                Pending::Bye(_) => {}
            }
        });
    }

    fn on_failed(&mut self, now: Instant, tx: ClientTx, reason: ClientFailure) {
        if let Some((index, purpose)) = self.trunk_tx.remove(&tx) {
            self.trunks.handle_response(now, index, purpose, None);
            return;
        }
        let Some((key, pending)) = self.by_client_tx.remove(&tx) else {
            return;
        };
        self.with_call(now, key, |cc, call| {
            call.outstanding = call.outstanding.saturating_sub(1);
            match pending {
                Pending::Invite(idx) => {
                    if let Some(leg) = call.legs.get_mut(idx) {
                        let note = leg.on_invite_failure(reason);
                        cc.note(now, key, call, idx, note);
                    }
                }
                Pending::InDialog(media) => cc.party_lost(now, key, call, media, "no-answer"),
                Pending::Bye(_) => {}
            }
        });
    }

    /// Routes a leg's note to the flow the call follows.
    fn note(&mut self, now: Instant, key: u64, call: &mut Call, idx: usize, note: Note) {
        match note {
            Note::Nothing => {}
            Note::HungUp => self.leg_gone(now, call, idx, "hangup"),
            Note::Dtmf(d, duration) => {
                self.relay_digit(now, call, idx, d, duration, false);
                self.key_pressed(now, call, idx, d)
            }
            Note::Hold(held) => self.hold(call, idx, held),
            other => match call.kind {
                Kind::Forward => self.forward_note(now, key, call, idx, other),
                Kind::Inbound | Kind::Legacy => self.operator_note(now, key, call, idx, other),
                Kind::Outbound => self.run_flow(now, call, Input::Note(idx, other)),
            },
        }
    }

    /// A party put the other on hold (or resumed): the other hears hold music
    /// instead of silence, and the bridge comes back on resume.
    fn hold(&mut self, call: &mut Call, idx: usize, held: bool) {
        if call.stage != Stage::Connected || call.legs.len() < 2 {
            return;
        }
        let other = if idx == 0 {
            call.ringing.unwrap_or(1)
        } else {
            0
        };
        let (Some(a), Some(b)) = (
            call.legs.get(idx).map(|l| l.media),
            call.legs.get(other).map(|l| l.media),
        ) else {
            return;
        };
        if held {
            let _ = self.media.unbridge(a);
            let music = self.config.prompts.hold_music.clone();
            self.play(call, other, vec![music], true, AfterPlayback::Nothing);
        } else {
            let _ = self.media.stop_playback(b);
            let _ = self.media.bridge(a, b);
        }
        self.emit(
            "call.hold",
            call.tenant.clone(),
            json!({ "call": call.id, "held": held, "by_leg": idx }),
        );
    }

    /// A party is gone (hung up, cancelled, no ACK, no RTP): the call reacts by kind.
    pub(crate) fn leg_gone(&mut self, now: Instant, call: &mut Call, idx: usize, why: &str) {
        let key = call.key;
        match call.kind {
            Kind::Forward => self.forward_gone(now, key, call, idx, why),
            Kind::Inbound | Kind::Legacy => self.inbound_gone(now, key, call, idx, why),
            Kind::Outbound => self.run_flow(now, call, Input::Gone(idx)),
        }
    }

    /// A key pressed on leg `idx` (RFC 4733 or SIP INFO): the IVR menu of a
    /// resident's call, or the flow of an outbound one.
    fn key_pressed(&mut self, now: Instant, call: &mut Call, idx: usize, digit: char) {
        match call.kind {
            Kind::Outbound => {
                self.emit(
                    "call.dtmf",
                    call.tenant.clone(),
                    json!({ "call": call.id, "digit": digit.to_string(), "stage": format!("{:?}", call.stage).to_lowercase() }),
                );
                self.run_flow(now, call, Input::Digit(idx, digit));
            }
            _ => self.digit(now, call, idx, digit),
        }
    }

    fn playback_finished(&mut self, now: Instant, call: &mut Call, id: PlaybackId) {
        let Some((playing, after)) = call.playback else {
            return;
        };
        if playing != id {
            return;
        }
        call.playback = None;
        match after {
            AfterPlayback::Nothing => {}
            AfterPlayback::Greeting => self.greeting_done(now, call),
            AfterPlayback::Notices => self.after_notices(now, call),
            AfterPlayback::Menu => self.menu_wait(now, call),
            AfterPlayback::Hangup => {
                let key = call.key;
                self.drop_leg(now, key, call, 0);
                self.finish(now, call, Disposition::Rejected, 200);
            }
            AfterPlayback::Flow => self.run_flow(now, call, Input::PlaybackDone),
        }
    }

    fn timer_fired(&mut self, now: Instant, call: &mut Call, timer: CallTimer) {
        let key = call.key;
        if call.kind == Kind::Outbound {
            return self.run_flow(now, call, Input::Timer(timer));
        }
        match timer {
            // Forward calls: the target's no-answer limit (see forward.rs).
            CallTimer::Ring if call.kind == Kind::Forward => self.forward_no_answer(now, key, call),
            CallTimer::Ring => self.ring_timeout(now, key, call),
            CallTimer::Announce => self.announce_in_queue(now, call),
            CallTimer::CallbackDue => self.schedule_callback(now, call, "waited too long"),
            CallTimer::Menu => self.menu_timeout(now, call),
            CallTimer::Lookup => self.lookup_timeout(now, call),
            CallTimer::Input | CallTimer::Decision => {}
        }
    }

    /// A caller waiting longer than `callback_after`, or hanging up after waiting
    /// longer than `abandon_threshold`, gets a callback job due at once and no
    /// later than `callback_deadline` after the call (Rules №416 §13).
    pub(crate) fn schedule_callback(&mut self, now: Instant, call: &mut Call, why: &str) {
        if call.callback_scheduled {
            return;
        }
        let Ok(phone) = PhoneNumber::parse(&call.caller) else {
            tracing::warn!(call = %call.id, caller = %call.caller, "cannot call back: the caller's number is not a phone number");
            return;
        };
        if !self.callback_permitted(
            now,
            &phone,
            crate::store::DialKind::Callback,
            call.tenant.clone(),
        ) {
            return;
        }
        call.callback_scheduled = true;
        let wall = self.wall(now);
        let deadline = self.wall(call.started)
            + chrono::Duration::from_std(self.config.queue.callback_deadline).unwrap_or_default();
        let job = NewDialJob {
            tenant: call.tenant.clone(),
            call_id: Some(call.id.0.clone()),
            deadline_at: Some(deadline),
            ..NewDialJob::new(
                crate::store::DialKind::Callback,
                phone.clone(),
                wall,
                self.config.dialer.attempts,
            )
        };
        tracing::info!(call = %call.id, %phone, why, "callback scheduled");
        let origin = call.number.as_ref().map(|n| n.number.clone());
        self.act(Action::ScheduleJob {
            job: Box::new(job),
            origin,
        });
        self.emit(
            "callback.scheduled",
            call.tenant.clone(),
            json!({ "call": call.id, "phone": phone, "reason": why, "due": wall, "deadline": deadline }),
        );
    }
}
