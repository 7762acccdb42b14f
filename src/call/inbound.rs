//! Residents' calls to tenant, citywide and legacy numbers, and staff calling the
//! dispatch line.
//!
//! A resident is answered by the engine at once (greeting naming the company, or the
//! generic citywide one) while the caller is looked up (for at most
//! [`LOOKUP_TIMEOUT`]: then the call goes on as an unknown caller's); then come the
//! notices for their house (outages, debt), the IVR menu if the number has one, and
//! the queue: "please wait" and hold music until the longest-idle ready operator
//! who serves the tenant and city answers. Every registered contact of that
//! operator rings at once; the first to answer takes the call and the others are
//! cancelled. Each operator rings for `ring_timeout`, then the next is tried. The
//! call is recorded from the moment the engine answers.
//!
//! The 5-minute rule (Rules №416 §13), counted from the call's arrival: a caller
//! still waiting `callback_after` after calling, or hanging up from the queue more
//! than `abandon_threshold` after calling, gets a callback job the dialer runs
//! within `callback_deadline` of the call; a caller answered after all has their
//! callback cancelled, in the store and among the jobs held here.
//!
//! A legacy number announces the new number and hangs up; it is never forwarded. A
//! staff member calling the dispatch line is not answered (the call costs them
//! nothing) and is called back as soon as an operator is free.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::announcements::{greeting, notices, number_changed, prompt};
use super::control::{
    Action, AfterPlayback, Call, CallControl, CallTimer, CallerContext, Disposition, Kind,
    MenuState, Stage,
};
use super::leg::{Leg, Note};
use crate::config::{MenuAction, Number, NumberKind};
use crate::phone::PhoneNumber;
use crate::sip::endpoint::ServerTx;
use crate::sip::transport::Target;
use crate::sip::wire::{Method, NameAddr, Request, Uri};
use crate::store::{CallDirection, DialKind, NewDialJob};

/// How long a caller lookup may take before the call goes on without it.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// Why an operator could not be rung.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RingFailure {
    /// The operator has no live contact (or none could be reached): try another.
    NoContact,
    /// No media leg could be opened (RTP ports exhausted): stop trying for now.
    NoMedia,
}

impl CallControl {
    /// A resident calls a tenant, citywide or legacy number: answer, greet, look up.
    pub(crate) fn start_inbound(
        &mut self,
        now: Instant,
        tx: ServerTx,
        invite: Request,
        source: Target,
        number: Number,
        dialled: String,
    ) {
        let caller = invite.headers.from.uri.user_unescaped().unwrap_or_default();
        let prefs = self.sdp.clone();
        let a = match Leg::incoming(
            &mut self.endpoint,
            self.media.as_ref(),
            tx,
            invite,
            source,
            &prefs,
        ) {
            Ok(leg) => leg,
            Err(r) => {
                if let Some(invite) = self.endpoint.server_request(tx).cloned() {
                    self.journal_rejected(now, &invite, Some(&number), r.status, &r.reason);
                }
                return self.refuse_leg(now, tx, r);
            }
        };
        let kind = if number.kind == NumberKind::Legacy {
            Kind::Legacy
        } else {
            Kind::Inbound
        };
        let (key, mut call) = self.new_call(
            now,
            kind,
            Some(number.clone()),
            dialled,
            caller,
            CallDirection::Inbound,
        );
        self.add_leg(key, &mut call, a);
        if let Some(a) = call.legs.get_mut(0) {
            a.answer(&mut self.endpoint, now);
        }
        self.index_dialog(key, &call, 0);
        if kind == Kind::Legacy {
            let new = number
                .new_number
                .clone()
                .or_else(|| self.tenant_number(number.tenant.as_deref()));
            let items = number_changed(&self.config, new.as_ref());
            call.stage = Stage::Leaving;
            self.emit(
                "call.offered",
                call.tenant.clone(),
                self.offered_payload(&call),
            );
            self.play(&mut call, 0, items, false, AfterPlayback::Hangup);
            self.journal(&call);
            if call.playback.is_none() {
                // Nothing to say (prompts missing): the call must still end.
                tracing::warn!(call = %call.id, "legacy number announcement cannot be played; hanging up");
                self.drop_leg(now, key, &mut call, 0);
                self.finish(now, &mut call, Disposition::Rejected, 200);
            }
            self.insert_call(key, call);
            return;
        }
        call.stage = Stage::Announcing;
        // Every resident's call is recorded from the moment the engine answers:
        // what they said and what they heard, the menu choices included.
        self.start_recording(now, &mut call, 0);
        let items = greeting(&self.config, &number);
        self.play(&mut call, 0, items, false, AfterPlayback::Greeting);
        if let Ok(phone) = PhoneNumber::parse(&call.caller) {
            self.act(Action::Lookup {
                call: key,
                phone,
                tenant: call.tenant.clone(),
                city: call.city.clone(),
            });
            // A lookup never holds a caller up for long.
            call.set_timer(CallTimer::Lookup, now + LOOKUP_TIMEOUT);
        } else {
            // An anonymous or odd caller: nothing to look up.
            call.looked_up = true;
            self.emit(
                "call.offered",
                call.tenant.clone(),
                self.offered_payload(&call),
            );
            call.context = None;
            call.stage = Stage::Announcing;
        }
        self.journal(&call);
        if call.playback.is_none() {
            self.greeting_done(now, &mut call);
        }
        self.insert_call(key, call);
    }

    /// The tenant's own number, for a legacy number that names none.
    fn tenant_number(&self, tenant: Option<&str>) -> Option<PhoneNumber> {
        let tenant = tenant?;
        self.config
            .numbers
            .iter()
            .find(|n| n.kind == NumberKind::Tenant && n.tenant.as_deref() == Some(tenant))
            .map(|n| n.number.clone())
    }

    /// The screen-pop: everything known about the call, for `call.offered` and
    /// `call.ringing`.
    pub(crate) fn offered_payload(&self, call: &Call) -> Value {
        let info = call.context.as_ref().map(|c| &c.info);
        let errand = call.flow.as_ref().map(|f| f.errand());
        let handoff = match errand {
            Some(super::outbound::Errand::Handoff { order, .. }) => {
                Some(CallControl::handoff_card(order))
            }
            _ => None,
        };
        let tenant_name = info
            .and_then(|i| i.tenant.as_ref())
            .map(|t| t.name.clone())
            .or_else(|| match errand {
                Some(super::outbound::Errand::Handoff { order, .. }) => {
                    Some(order.card.tenant_name.clone())
                }
                _ => None,
            });
        let outbound = call.kind == Kind::Outbound;
        json!({
            "call": call.id,
            "direction": if outbound { "outbound" } else { "inbound" },
            "purpose": errand.map(|e| e.purpose()),
            "from": if outbound { call.record.from_number.clone() } else { call.caller.clone() },
            "to": call.dialled,
            "number_kind": call.number.as_ref().map(|n| n.kind.as_str()),
            "city": call.city,
            "tenant": call.tenant,
            "tenant_name": tenant_name,
            "original_call": errand.and_then(|e| e.job()).and_then(|j| j.call_id.clone()),
            "handoff": handoff,
            "caller": info.map(|i| json!({
                "phone": i.phone,
                "address": i.address,
                "other_addresses": i.other_addresses,
                "open_tickets": i.open_tickets,
                "debtor": i.debtor,
                "outages": i.outages,
                "staff": i.staff,
            })),
        })
    }

    /// The store answered the caller lookup (or could not: then the call goes on
    /// without it — a lookup never holds a caller up).
    pub(crate) fn lookup_done(
        &mut self,
        now: Instant,
        call: &mut Call,
        context: Option<CallerContext>,
    ) {
        if call.looked_up {
            // Too late: the call went on as an unknown caller's.
            tracing::info!(call = %call.id, "caller lookup answered after its timeout; ignored");
            return;
        }
        call.looked_up = true;
        call.clear_timer(CallTimer::Lookup);
        if let Some(ctx) = &context {
            if call.tenant.is_none() {
                call.tenant = ctx.info.tenant.as_ref().map(|t| t.code.clone());
                call.record.tenant = call.tenant.clone();
            }
            if call.city.is_none() {
                call.city = ctx.info.city.clone();
            }
        }
        call.context = context;
        if call.kind == Kind::Outbound {
            return self.outbound_offered(now, call);
        }
        self.emit(
            "call.offered",
            call.tenant.clone(),
            self.offered_payload(call),
        );
        if call.stage == Stage::LookingUp {
            // The greeting ended first and waited for this.
            self.greeting_done(now, call);
        }
    }

    /// The lookup did not answer in [`LOOKUP_TIMEOUT`]: the call goes on as an
    /// unknown caller's (no notices, the tenant of the number dialled).
    pub(crate) fn lookup_timeout(&mut self, now: Instant, call: &mut Call) {
        if call.looked_up {
            return;
        }
        tracing::warn!(call = %call.id, "caller lookup timed out; going on without it");
        call.looked_up = true;
        self.emit(
            "call.offered",
            call.tenant.clone(),
            self.offered_payload(call),
        );
        if call.stage == Stage::LookingUp {
            self.greeting_done(now, call);
        }
    }

    /// After the greeting: the notices for the caller's house, then the menu or
    /// the queue. Waits (stage `LookingUp`) while the lookup has not answered.
    pub(crate) fn greeting_done(&mut self, now: Instant, call: &mut Call) {
        if !matches!(call.stage, Stage::Announcing | Stage::LookingUp) {
            return;
        }
        if !call.looked_up {
            // The lookup has not answered yet: wait for it (it is quick, and
            // bounded by the lookup timer).
            call.stage = Stage::LookingUp;
            return;
        }
        call.stage = Stage::Announcing;
        let said = call
            .context
            .as_ref()
            .map(|c| notices(&self.config, &c.info, c.zone, self.wall(now)))
            .unwrap_or_default();
        call.menu = None;
        if said.is_empty() {
            return self.after_notices(now, call);
        }
        self.play(call, 0, said, false, AfterPlayback::Notices);
        if call.playback.is_none() {
            self.after_notices(now, call);
        }
    }

    /// The notices are over: the number's menu if it has one, else the queue.
    pub(crate) fn after_notices(&mut self, now: Instant, call: &mut Call) {
        if call.stage != Stage::Announcing {
            return;
        }
        if call.number.as_ref().and_then(|n| n.menu.as_ref()).is_some() {
            self.menu_start(now, call, None);
        } else {
            self.enqueue(now, call);
        }
    }

    // -- the IVR menu ------------------------------------------------------------------

    fn menu_start(&mut self, now: Instant, call: &mut Call, name: Option<String>) {
        let name = name.or_else(|| call.number.as_ref().and_then(|n| n.menu.clone()));
        let Some(menu) = name.as_deref().and_then(|n| self.config.menu(n)).cloned() else {
            return self.enqueue(now, call);
        };
        call.stage = Stage::Menu;
        call.menu = Some(MenuState {
            name: menu.name.clone(),
            tries: 0,
        });
        self.play(
            call,
            0,
            vec![menu.prompt.clone()],
            false,
            AfterPlayback::Menu,
        );
        if call.playback.is_none() {
            self.menu_wait(now, call);
        }
    }

    /// A menu prompt ended: wait for a digit.
    pub(crate) fn menu_wait(&mut self, now: Instant, call: &mut Call) {
        if call.stage != Stage::Menu {
            return;
        }
        let timeout = call
            .menu
            .as_ref()
            .and_then(|m| self.config.menu(&m.name))
            .map(|m| m.timeout);
        if let Some(t) = timeout {
            call.set_timer(CallTimer::Menu, now + t);
        }
    }

    pub(crate) fn menu_timeout(&mut self, now: Instant, call: &mut Call) {
        self.menu_retry(now, call, false);
    }

    fn menu_retry(&mut self, now: Instant, call: &mut Call, invalid: bool) {
        let Some(state) = call.menu.as_mut() else {
            return;
        };
        let Some(menu) = self.config.menu(&state.name).cloned() else {
            return;
        };
        state.tries += 1;
        if state.tries > menu.retries {
            return self.menu_action(now, call, &menu.default);
        }
        let mut items = Vec::new();
        if invalid {
            items.push(prompt(&self.config, "invalid-choice"));
        }
        items.push(menu.prompt.clone());
        self.play(call, 0, items, false, AfterPlayback::Menu);
        if call.playback.is_none() {
            self.menu_wait(now, call);
        }
    }

    fn menu_action(&mut self, now: Instant, call: &mut Call, action: &MenuAction) {
        call.clear_timer(CallTimer::Menu);
        match action {
            MenuAction::Queue => {
                call.menu = None;
                self.enqueue(now, call);
            }
            MenuAction::Menu(name) => self.menu_start(now, call, Some(name.clone())),
            MenuAction::Announcement(p) => {
                let back = call
                    .menu
                    .as_ref()
                    .and_then(|m| self.config.menu(&m.name))
                    .map(|m| m.prompt.clone());
                let mut items = vec![p.clone()];
                items.extend(back);
                self.play(call, 0, items, false, AfterPlayback::Menu);
                if call.playback.is_none() {
                    self.menu_wait(now, call);
                }
            }
            MenuAction::Hangup => {
                call.menu = None;
                call.stage = Stage::Leaving;
                let bye = prompt(&self.config, "goodbye");
                self.play(call, 0, vec![bye], false, AfterPlayback::Hangup);
                if call.playback.is_none() {
                    let key = call.key;
                    self.drop_leg(now, key, call, 0);
                    self.finish(now, call, Disposition::Rejected, 200);
                }
            }
        }
    }

    /// A key pressed on leg `idx` (RFC 4733 or SIP INFO).
    pub(crate) fn digit(&mut self, now: Instant, call: &mut Call, idx: usize, digit: char) {
        if idx != 0 {
            return;
        }
        self.emit("call.dtmf", call.tenant.clone(), json!({ "call": call.id, "digit": digit.to_string(), "stage": format!("{:?}", call.stage).to_lowercase() }));
        if call.stage != Stage::Menu {
            return;
        }
        let Some(menu) = call
            .menu
            .as_ref()
            .and_then(|m| self.config.menu(&m.name))
            .cloned()
        else {
            return;
        };
        if let Some(caller) = call.legs.first() {
            let _ = self.media.stop_playback(caller.media);
        }
        call.playback = None;
        call.clear_timer(CallTimer::Menu);
        match menu.options.iter().find(|(d, _)| *d == digit) {
            Some((_, action)) => self.menu_action(now, call, action),
            None => self.menu_retry(now, call, true),
        }
    }

    // -- the queue -----------------------------------------------------------------------

    /// Joins the operators' queue.
    pub(crate) fn enqueue(&mut self, now: Instant, call: &mut Call) {
        if call.stage == Stage::Queued
            || call.stage == Stage::Ringing
            || call.stage == Stage::Connected
        {
            return;
        }
        call.stage = Stage::Queued;
        if call.queued_at.is_none() {
            call.queued_at = Some(now);
            call.record.queued_at = Some(self.wall(now));
            // Counted from the call's arrival: the law's minutes run from the call,
            // greeting and menu included.
            call.set_timer(
                CallTimer::CallbackDue,
                (call.started + self.config.queue.callback_after).max(now),
            );
            self.journal(call);
        }
        if !self.waiting.contains(&call.key) {
            self.waiting.push_back(call.key);
        }
        self.wait_music(now, call, true);
        // 1 is next in line (a call back from a missed ring is at the front).
        let position = self
            .waiting
            .iter()
            .position(|k| *k == call.key)
            .map_or(self.waiting.len(), |i| i + 1);
        self.emit(
            "call.queued",
            call.tenant.clone(),
            json!({ "call": call.id, "position": position, "city": call.city }),
        );
        self.wants_dispatch = true;
    }

    /// "Please wait" then hold music, looping; the announcement comes back every
    /// `announce_interval`.
    fn wait_music(&mut self, now: Instant, call: &mut Call, announce: bool) {
        let mut items = Vec::new();
        if announce {
            items.push(self.config.prompts.queue_wait.clone());
        }
        items.push(self.config.prompts.hold_music.clone());
        self.play(call, 0, items, true, AfterPlayback::Nothing);
        call.set_timer(
            CallTimer::Announce,
            now + self.config.queue.announce_interval,
        );
    }

    pub(crate) fn announce_in_queue(&mut self, now: Instant, call: &mut Call) {
        if call.stage == Stage::Queued {
            let mut items = vec![self.config.prompts.queue_wait.clone()];
            if call.callback_scheduled {
                items.push(self.config.prompts.callback_promise.clone());
            }
            items.push(self.config.prompts.hold_music.clone());
            self.play(call, 0, items, true, AfterPlayback::Nothing);
            call.set_timer(
                CallTimer::Announce,
                now + self.config.queue.announce_interval,
            );
        }
    }

    /// Offers work to free operators, most urgent first: residents' callbacks (the
    /// 10-minute rule), callers in the order they joined the queue, people the
    /// informer put through, emergency hand-offs, staff callbacks, hand-offs that
    /// are not emergencies, then the other calls the dialer wants made by an
    /// operator (supplier hand-overs, status checks and supplier queries), each
    /// class by its deadline ([`super::jobs`], [`super::handoff`]).
    ///
    /// Runs in bounded time whatever fails: each job and each caller is looked at
    /// once per round; an operator whose softphone cannot be rung now (the binding
    /// lapsed under a stale registered flag) is skipped for the rest of the round,
    /// and when media cannot be opened (RTP ports exhausted) the round stops — the
    /// next event that frees something runs it again.
    pub(crate) fn dispatch(&mut self, now: Instant) {
        self.wants_dispatch = false;
        let mut unreachable: Vec<String> = Vec::new();
        if !self.dispatch_jobs(now, &mut unreachable, 0..=0) {
            return;
        }
        let keys: Vec<u64> = self.waiting.iter().copied().collect();
        for key in keys {
            let Some(call) = self.calls.get(&key) else {
                continue;
            };
            if call.stage != Stage::Queued {
                continue;
            }
            let mut outcome = Ok(());
            self.with_call(now, key, |cc, call| {
                outcome = cc.offer_to_an_operator(now, call, &mut unreachable);
            });
            if outcome.is_err() {
                return;
            }
        }
        // Then the tickets' hand-offs: the people the informer put through, who are
        // on the line, before the calls the engine has yet to place.
        self.dispatch_transfers(now, &unreachable);
        if !self.dispatch_handoffs(now, &mut unreachable, true) {
            return;
        }
        if !self.dispatch_jobs(now, &mut unreachable, 1..=1) {
            return;
        }
        if !self.dispatch_handoffs(now, &mut unreachable, false) {
            return;
        }
        self.dispatch_jobs(now, &mut unreachable, 2..=i64::MAX);
    }

    /// Rings the best operator free for a queued call, trying the next one while a
    /// softphone cannot be reached; `Err` when media ran out.
    fn offer_to_an_operator(
        &mut self,
        now: Instant,
        call: &mut Call,
        unreachable: &mut Vec<String>,
    ) -> Result<(), RingFailure> {
        loop {
            let mut skip = call.tried.clone();
            skip.extend(unreachable.iter().cloned());
            let Some(ext) =
                self.operators
                    .pick(call.tenant.as_deref(), call.city.as_deref(), &skip)
            else {
                // Nobody for this call; a later caller of another tenant may still
                // find someone.
                return Ok(());
            };
            match self.ring_operator(now, call, ext.clone()) {
                Ok(()) => return Ok(()),
                Err(RingFailure::NoContact) => unreachable.push(ext),
                Err(RingFailure::NoMedia) => return Err(RingFailure::NoMedia),
            }
        }
    }

    pub(crate) fn original_still_waiting(&self, call_id: &str) -> bool {
        self.calls.values().any(|c| {
            c.id.0 == call_id
                && matches!(
                    c.stage,
                    Stage::Queued
                        | Stage::Ringing
                        | Stage::Announcing
                        | Stage::LookingUp
                        | Stage::Menu
                )
        })
    }

    /// The INVITEs to an operator's softphones for `call`: one per live contact
    /// (most recent first), each its own dialog.
    pub(crate) fn operator_invites(
        &mut self,
        call: &Call,
        ext: &str,
        now: Instant,
    ) -> Vec<(Request, Target)> {
        let bindings: Vec<_> = self
            .registrar
            .bindings(ext, now)
            .into_iter()
            .cloned()
            .collect();
        let host = self.endpoint.config().advertised.clone();
        let mut out = Vec::with_capacity(bindings.len());
        for binding in bindings {
            let caller_uri = Uri::sip(Some(&escape_user(&call.caller)), &host, None);
            let mut from = NameAddr::new(caller_uri);
            from.display_name = Some(crate::sip::wire::auth::quote(&call.caller));
            from.set_tag(&self.endpoint.new_tag());
            let mut request = Request::out_of_dialog(
                Method::Invite,
                binding.contact.uri.clone(),
                from,
                NameAddr::new(Uri::sip(Some(ext), &host, None)),
                self.endpoint.new_call_id(),
                1,
            );
            let headers = &mut request.headers;
            headers.push("X-Dispatch-Call", call.id.0.clone());
            if let Some(t) = &call.tenant {
                headers.push("X-Dispatch-Tenant", t.clone());
            }
            if self.config.operator(ext).is_some_and(|o| o.auto_answer) {
                // What softphones understand as "answer at once" (RFC 5373 is rarely
                // implemented; these two are).
                headers.push("Call-Info", format!("<sip:{host}>;answer-after=0"));
                headers.push(
                    "Alert-Info",
                    "<http://127.0.0.1/auto-answer>;info=alert-autoanswer;delay=0",
                );
            }
            // Through the proxies on the binding's Path, loose-routed (RFC 3327).
            request.headers.route.clone_from(&binding.path);
            out.push((request, binding.target()));
        }
        out
    }

    /// Rings every contact of operator `ext` at once (their desk phone and their
    /// softphone, say); the legs are the call's ringing group. `Err` when no leg
    /// could be placed.
    pub(crate) fn ring_contacts(
        &mut self,
        now: Instant,
        call: &mut Call,
        ext: &str,
        extra: &[(&str, String)],
    ) -> Result<Vec<usize>, RingFailure> {
        let invites = self.operator_invites(call, ext, now);
        if invites.is_empty() {
            return Err(RingFailure::NoContact);
        }
        let prefs = self.sdp.clone();
        let key = call.key;
        let mut legs = Vec::new();
        let mut failure = RingFailure::NoContact;
        for (mut request, target) in invites {
            for (name, value) in extra {
                request.headers.push(name, value.clone());
            }
            match Leg::outgoing(
                &mut self.endpoint,
                self.media.as_ref(),
                now,
                request,
                target,
                &prefs,
            ) {
                Ok(leg) => legs.push(self.add_leg(key, call, leg)),
                Err(r) => {
                    tracing::warn!(call = %call.id, operator = %ext, reason = %r.reason, "cannot ring an operator's contact");
                    if r.status == 503 {
                        failure = RingFailure::NoMedia;
                    }
                }
            }
        }
        if legs.is_empty() {
            return Err(failure);
        }
        Ok(legs)
    }

    /// Rings an operator for a queued call.
    fn ring_operator(
        &mut self,
        now: Instant,
        call: &mut Call,
        ext: String,
    ) -> Result<(), RingFailure> {
        let legs = self.ring_contacts(now, call, &ext, &[])?;
        let key = call.key;
        call.ringing = legs.first().copied();
        call.forks = legs;
        call.operator = Some(ext.clone());
        call.stage = Stage::Ringing;
        let wall = self.wall(now);
        self.operators.engage(&ext, &call.id.0, now, wall);
        self.waiting.retain(|k| *k != key);
        call.set_timer(CallTimer::Ring, now + self.config.queue.ring_timeout);
        let mut payload = self.offered_payload(call);
        payload["operator"] = json!(ext);
        self.emit("call.ringing", call.tenant.clone(), payload);
        Ok(())
    }

    /// Cancels every leg of the ringing group but `keep`.
    pub(crate) fn cancel_forks(&mut self, now: Instant, call: &mut Call, keep: Option<usize>) {
        let key = call.key;
        let group = std::mem::take(&mut call.forks);
        for idx in group.into_iter().filter(|i| Some(*i) != keep) {
            self.drop_leg(now, key, call, idx);
        }
    }

    /// The operator did not answer in time: ring the next one.
    pub(crate) fn ring_timeout(&mut self, now: Instant, key: u64, call: &mut Call) {
        if call.stage != Stage::Ringing {
            return;
        }
        self.cancel_forks(now, call, None);
        if let Some(idx) = call.ringing.take() {
            self.drop_leg(now, key, call, idx);
        }
        self.operator_missed(now, call);
    }

    fn operator_missed(&mut self, now: Instant, call: &mut Call) {
        if let Some(ext) = call.operator.take() {
            let wall = self.wall(now);
            let pause = self.config.queue.pause_after_missed;
            self.operators.missed(&ext, pause, now, wall);
            call.tried.push(ext);
        }
        call.ringing = None;
        call.forks.clear();
        call.stage = Stage::Setup;
        // Back to the queue at the front, since it waited longest (queued_at is kept).
        if !self.waiting.contains(&call.key) {
            self.waiting.push_front(call.key);
        }
        self.enqueue(now, call);
        // Everyone tried: start again from the top.
        let all = self.operators.views().len();
        if call.tried.len() >= all {
            call.tried.clear();
        }
    }

    /// One leg of the ringing group failed: `true` when the whole group has now
    /// failed (a 6xx from any contact is the operator's answer for all of them,
    /// RFC 3261 §16.7).
    pub(crate) fn fork_failed(
        &mut self,
        now: Instant,
        call: &mut Call,
        idx: usize,
        status: u16,
    ) -> bool {
        call.forks.retain(|i| *i != idx);
        if (600..700).contains(&status) {
            self.cancel_forks(now, call, None);
        }
        if call.ringing == Some(idx) {
            call.ringing = call.forks.first().copied();
        }
        call.forks.is_empty()
    }

    /// What an operator's leg reports.
    pub(crate) fn operator_note(
        &mut self,
        now: Instant,
        _key: u64,
        call: &mut Call,
        idx: usize,
        note: Note,
    ) {
        let ringing_now = call.stage == Stage::Ringing && call.forks.contains(&idx);
        if !ringing_now && Some(idx) != call.ringing {
            return;
        }
        match note {
            Note::Answered if ringing_now => {
                // The first contact to answer takes the call.
                self.cancel_forks(now, call, Some(idx));
                call.ringing = Some(idx);
                call.clear_timer(CallTimer::Ring);
                call.clear_timer(CallTimer::Announce);
                call.clear_timer(CallTimer::CallbackDue);
                let caller = call.legs.first().map(|l| l.media);
                let operator = call.legs.get(idx).map(|l| l.media);
                if let (Some(a), Some(b)) = (caller, operator) {
                    let _ = self.media.stop_playback(a);
                    let _ = self.media.bridge(a, b);
                }
                call.playback = None;
                self.start_recording(now, call, 0);
                call.stage = Stage::Connected;
                call.answered_at = Some(now);
                call.record.answered_at = Some(self.wall(now));
                call.record.operator_extension = call.operator.clone();
                let wait = now.saturating_duration_since(call.started);
                self.emit(
                    "call.answered",
                    call.tenant.clone(),
                    json!({ "call": call.id, "operator": call.operator, "wait_ms": wait.as_millis() as u64 }),
                );
                self.journal(call);
                if call.callback_scheduled {
                    // Reached after all: the callback is no longer needed, neither
                    // in the store nor among the jobs held here.
                    let id = call.id.clone();
                    self.cancel_callbacks(now, &id);
                }
            }
            Note::Failed { status, reason, .. } if ringing_now => {
                tracing::info!(call = %call.id, operator = ?call.operator, status, %reason, "operator's contact did not take the call");
                if self.fork_failed(now, call, idx, status) {
                    call.clear_timer(CallTimer::Ring);
                    self.operator_missed(now, call);
                }
            }
            _ => {}
        }
    }

    /// A party of a resident's call is gone.
    pub(crate) fn inbound_gone(
        &mut self,
        now: Instant,
        key: u64,
        call: &mut Call,
        idx: usize,
        why: &str,
    ) {
        if idx != 0 {
            // The operator's side.
            if call.stage == Stage::Connected && Some(idx) == call.ringing {
                self.drop_leg(now, key, call, 0);
                return self.finish(now, call, Disposition::Answered, 200);
            }
            if call.stage == Stage::Ringing && call.forks.contains(&idx) {
                self.drop_leg(now, key, call, idx);
                if self.fork_failed(now, call, idx, 0) {
                    call.clear_timer(CallTimer::Ring);
                    self.operator_missed(now, call);
                }
            }
            return;
        }
        // The caller hung up.
        self.waiting.retain(|k| *k != key);
        self.cancel_forks(now, call, None);
        if let Some(op) = call.ringing {
            self.drop_leg(now, key, call, op);
        }
        let disposition = if call.answered_at.is_some() {
            Disposition::Answered
        } else if call.kind == Kind::Legacy {
            Disposition::Rejected
        } else {
            // Waited since the call arrived (greeting and menu included), if it
            // got as far as the queue.
            let waited = now.saturating_duration_since(call.started);
            if call.queued_at.is_some() && waited > self.config.queue.abandon_threshold {
                self.schedule_callback(now, call, "hung up while waiting");
            }
            if call.callback_scheduled {
                Disposition::CallbackScheduled
            } else {
                Disposition::Abandoned
            }
        };
        let status = if why == "cancelled" { 487 } else { 200 };
        self.finish(now, call, disposition, status);
    }

    /// A staff member called the dispatch line: refused without an answer (so it
    /// costs them nothing) and called back as soon as an operator is free.
    pub(crate) fn staff_called(
        &mut self,
        now: Instant,
        tx: ServerTx,
        invite: Request,
        number: Number,
    ) {
        let caller = invite.headers.from.uri.user_unescaped().unwrap_or_default();
        self.refuse(
            now,
            tx,
            &invite,
            486,
            "Busy Here: the dispatcher will call you back",
        );
        let dialled = number.number.to_string();
        let (key, mut call) = self.new_call(
            now,
            Kind::Inbound,
            Some(number),
            dialled,
            caller.clone(),
            CallDirection::Inbound,
        );
        let phone = PhoneNumber::parse(&caller).ok().filter(|phone| {
            self.callback_permitted(now, phone, DialKind::StaffCallback, call.tenant.clone())
        });
        match phone.ok_or(()) {
            Ok(phone) => {
                let wall = self.wall(now);
                let origin = call.number.as_ref().map(|n| n.number.clone());
                self.act(Action::ScheduleJob {
                    job: Box::new(NewDialJob {
                        tenant: call.tenant.clone(),
                        call_id: Some(call.id.0.clone()),
                        deadline_at: Some(
                            wall + chrono::Duration::from_std(
                                self.config.dialer.staff_callback_target,
                            )
                            .unwrap_or_default(),
                        ),
                        ..NewDialJob::new(
                            DialKind::StaffCallback,
                            phone.clone(),
                            wall,
                            self.config.dialer.attempts,
                        )
                    }),
                    origin,
                });
                call.callback_scheduled = true;
                self.emit("callback.scheduled", call.tenant.clone(), json!({ "call": call.id, "phone": phone, "reason": "staff called the dispatch line", "due": wall }));
                self.finish(now, &mut call, Disposition::CallbackScheduled, 486);
            }
            Err(()) => {
                tracing::warn!(caller = %caller, "a call to the dispatch line from a number that cannot be called back");
                self.finish(now, &mut call, Disposition::Rejected, 486);
            }
        }
        self.insert_call(key, call);
    }
}

/// A phone number as a SIP user part (only `+` and digits are expected; anything
/// else is %-escaped).
pub(crate) fn escape_user(user: &str) -> String {
    user.chars()
        .flat_map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_' | '~' | '*' | '#') {
                vec![c]
            } else {
                format!("%{:02X}", c as u32 & 0xff).chars().collect()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_are_safe_user_parts() {
        assert_eq!(escape_user("+79120000001"), "+79120000001");
        assert_eq!(escape_user("a b"), "a%20b");
    }
}
