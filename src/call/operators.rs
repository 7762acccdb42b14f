//! The operators: who can take a call now, and who has waited longest for one.
//!
//! Owns each operator's state (ready, busy, wrap-up, paused with a reason, logged
//! out), when it last changed, whether their softphone is registered, and the
//! automatic moves the engine makes: busy while a call is offered or connected,
//! wrap-up after it, ready again when wrap-up ends. The queue picks the
//! longest-idle ready operator who serves the call's tenant and city.
//!
//! On a cluster's shared floor ([`super::floor`]) the picture is shared: an
//! operator is offered a call only by the node the store granted them to (see
//! [`crate::store::floor`]), and what other nodes changed is mirrored in without
//! being reported again.
//!
//! Sans-IO: time is passed in; [`Operators::next_deadline`] is the end of the
//! earliest wrap-up.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{Operator, Role};
use crate::store::floor::FloorOperator;

/// The pause reason the engine gives an operator who missed an offered call.
pub const MISSED_CALL: &str = "Пропущенный вызов";

/// An operator's state, as the console shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OperatorState {
    /// Waiting for calls.
    Ready,
    /// Being offered a call, or talking.
    Busy,
    /// Finishing the paperwork of the last call.
    WrapUp,
    /// Not taking calls for a while (with a reason).
    Paused,
    /// Not working.
    LoggedOut,
}

impl OperatorState {
    /// The name used in events and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorState::Ready => "ready",
            OperatorState::Busy => "busy",
            OperatorState::WrapUp => "wrap-up",
            OperatorState::Paused => "paused",
            OperatorState::LoggedOut => "logged-out",
        }
    }
}

/// What the console and the board see of an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatorView {
    /// Extension (SIP user).
    pub extension: String,
    /// Display name.
    pub name: String,
    /// Console role.
    pub role: Role,
    /// Current state.
    pub state: OperatorState,
    /// Why paused, if paused.
    pub reason: Option<String>,
    /// When the state last changed (UTC).
    pub since: DateTime<Utc>,
    /// Whether a softphone is registered for the extension.
    pub registered: bool,
    /// The call they are on or being offered, if any.
    pub call: Option<String>,
    /// Tenants served (empty: all).
    pub tenants: Vec<String>,
    /// Cities served (empty: all).
    pub cities: Vec<String>,
    /// On a shared floor: this node holds the operator (may offer them a call, or
    /// holds the call they are on).
    #[serde(skip)]
    pub held: bool,
}

/// Why a state change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OperatorError {
    /// No such extension.
    #[error("no operator with extension {0}")]
    Unknown(String),
    /// Busy and wrap-up are the engine's to set.
    #[error("state {0} is set by the engine, not by hand")]
    NotManual(&'static str),
    /// A pause needs a reason.
    #[error("a pause needs a reason")]
    PauseNeedsReason,
    /// Cannot leave while on a call.
    #[error("operator {0} is on a call")]
    OnCall(String),
}

struct Entry {
    config: Operator,
    state: OperatorState,
    reason: Option<String>,
    changed: Instant,
    changed_wall: DateTime<Utc>,
    registered: bool,
    call: Option<String>,
    wrap_up_until: Option<Instant>,
    /// On a shared floor: the store granted this node the operator.
    granted: bool,
}

impl Entry {
    /// Ready, registered and on no call: free to be offered work.
    fn free(&self) -> bool {
        self.state == OperatorState::Ready && self.registered && self.call.is_none()
    }

    fn view(&self) -> OperatorView {
        OperatorView {
            extension: self.config.extension.clone(),
            name: self.config.name.clone(),
            role: self.config.role,
            state: self.state,
            reason: self.reason.clone(),
            since: self.changed_wall,
            registered: self.registered,
            call: self.call.clone(),
            tenants: self.config.tenants.clone(),
            cities: self.config.cities.clone(),
            held: self.granted,
        }
    }

    fn serves(&self, tenant: Option<&str>, city: Option<&str>) -> bool {
        self.config.serves(tenant, city)
    }
}

/// Every operator of the configuration.
pub struct Operators {
    entries: Vec<Entry>,
    wrap_up: Duration,
    changes: Vec<OperatorView>,
    /// The floor is shared with other nodes: only granted operators are offered calls.
    shared: bool,
    /// Bumped whenever the roster changes (what each operator serves).
    roster_version: u64,
}

impl std::fmt::Debug for Operators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operators")
            .field("count", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl Operators {
    /// The configured operators, all logged out.
    pub fn new(config: &[Operator], wrap_up: Duration, now: Instant, wall: DateTime<Utc>) -> Self {
        let entries = config
            .iter()
            .filter(|o| o.role == Role::Operator)
            .map(|o| Entry {
                config: o.clone(),
                state: OperatorState::LoggedOut,
                reason: None,
                changed: now,
                changed_wall: wall,
                registered: false,
                call: None,
                wrap_up_until: None,
                granted: false,
            })
            .collect();
        Self {
            entries,
            wrap_up,
            changes: Vec::new(),
            shared: false,
            roster_version: 0,
        }
    }

    /// Follows a new roster: entries are updated (name, tenants, cities), new
    /// operators join logged out, and those no longer in it (removed, or no longer
    /// operators) leave at once, reported logged out. Returns the extensions that
    /// left.
    pub(crate) fn set_roster(
        &mut self,
        roster: &[Operator],
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Vec<String> {
        self.roster_version += 1;
        let wanted: Vec<&Operator> = roster.iter().filter(|o| o.role == Role::Operator).collect();
        let mut removed = Vec::new();
        self.entries.retain_mut(|e| {
            match wanted.iter().find(|o| o.extension == e.config.extension) {
                Some(o) => {
                    e.config = (*o).clone();
                    true
                }
                None => {
                    removed.push(e.config.extension.clone());
                    false
                }
            }
        });
        for ext in &removed {
            self.changes.push(OperatorView {
                extension: ext.clone(),
                name: ext.clone(),
                role: Role::Operator,
                state: OperatorState::LoggedOut,
                reason: None,
                since: wall,
                registered: false,
                call: None,
                tenants: Vec::new(),
                cities: Vec::new(),
                held: false,
            });
        }
        for o in wanted {
            if !self
                .entries
                .iter()
                .any(|e| e.config.extension == o.extension)
            {
                self.entries.push(Entry {
                    config: o.clone(),
                    state: OperatorState::LoggedOut,
                    reason: None,
                    changed: now,
                    changed_wall: wall,
                    registered: false,
                    call: None,
                    wrap_up_until: None,
                    granted: false,
                });
            }
        }
        removed
    }

    fn entry(&mut self, extension: &str) -> Option<&mut Entry> {
        self.entries
            .iter_mut()
            .find(|e| e.config.extension == extension)
    }

    fn set(
        &mut self,
        extension: &str,
        state: OperatorState,
        reason: Option<String>,
        now: Instant,
        wall: DateTime<Utc>,
    ) {
        let Some(e) = self.entry(extension) else {
            return;
        };
        if e.state == state && e.reason == reason {
            return;
        }
        e.state = state;
        e.reason = reason;
        e.changed = now;
        e.changed_wall = wall;
        if state != OperatorState::WrapUp {
            e.wrap_up_until = None;
        }
        let view = e.view();
        self.changes.push(view);
    }

    /// Every operator.
    pub fn views(&self) -> Vec<OperatorView> {
        self.entries.iter().map(Entry::view).collect()
    }

    /// One operator.
    pub fn view(&self, extension: &str) -> Option<OperatorView> {
        self.entries
            .iter()
            .find(|e| e.config.extension == extension)
            .map(Entry::view)
    }

    /// Changes to report since the last call.
    pub fn take_changes(&mut self) -> Vec<OperatorView> {
        std::mem::take(&mut self.changes)
    }

    /// A change asked for from the console: ready, paused (with a reason) or logged
    /// out.
    pub fn request(
        &mut self,
        extension: &str,
        state: OperatorState,
        reason: Option<String>,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Result<OperatorView, OperatorError> {
        let current = self
            .entry(extension)
            .ok_or_else(|| OperatorError::Unknown(extension.to_owned()))?;
        match state {
            OperatorState::Busy | OperatorState::WrapUp => {
                return Err(OperatorError::NotManual(state.as_str()));
            }
            OperatorState::Paused if reason.as_deref().is_none_or(|r| r.trim().is_empty()) => {
                return Err(OperatorError::PauseNeedsReason);
            }
            OperatorState::LoggedOut if current.call.is_some() => {
                return Err(OperatorError::OnCall(extension.to_owned()));
            }
            _ => {}
        }
        // While busy or in wrap-up, a requested pause or ready takes effect after
        // the call: remember it as the state to return to.
        let keep_reason = if state == OperatorState::Paused {
            reason
        } else {
            None
        };
        if current.call.is_some() {
            current.reason = keep_reason;
            let view = current.view();
            if self.shared {
                // The node holding the call must learn the pause to take after it.
                self.changes.push(view.clone());
            }
            return Ok(view);
        }
        self.set(extension, state, keep_reason, now, wall);
        self.view(extension)
            .ok_or_else(|| OperatorError::Unknown(extension.to_owned()))
    }

    /// The softphone registered or lost its registration.
    pub fn set_registered(
        &mut self,
        extension: &str,
        registered: bool,
        now: Instant,
        wall: DateTime<Utc>,
    ) {
        let Some(e) = self.entry(extension) else {
            return;
        };
        if e.registered == registered {
            return;
        }
        e.registered = registered;
        e.changed_wall = wall;
        let view = e.view();
        self.changes.push(view);
        let _ = now;
    }

    /// The longest-idle ready, registered operator serving `tenant` and `city`,
    /// other than those in `skip` (already tried for this call).
    pub fn pick(
        &self,
        tenant: Option<&str>,
        city: Option<&str>,
        skip: &[String],
    ) -> Option<String> {
        self.entries
            .iter()
            .filter(|e| e.free() && (!self.shared || e.granted))
            .filter(|e| e.serves(tenant, city) && !skip.contains(&e.config.extension))
            .min_by_key(|e| e.changed)
            .map(|e| e.config.extension.clone())
    }

    /// How many ready, registered operators are off calls, and the tenants they
    /// serve between them: what a node may claim operators' dial jobs for.
    pub(crate) fn free_for_jobs(&self) -> (usize, crate::store::TenantScope) {
        use crate::store::TenantScope;
        let free: Vec<&Entry> = self.entries.iter().filter(|e| e.free()).collect();
        // One free operator who serves every company opens the claim to all.
        if free.is_empty() || free.iter().any(|e| e.config.tenants.is_empty()) {
            return (free.len(), TenantScope::All);
        }
        let mut tenants: Vec<String> = free
            .iter()
            .flat_map(|e| e.config.tenants.iter().cloned())
            .collect();
        tenants.sort_unstable();
        tenants.dedup();
        (free.len(), TenantScope::Only(tenants))
    }

    /// Whether anyone at all could take a call for `tenant`/`city` now.
    pub fn any_ready(&self, tenant: Option<&str>, city: Option<&str>) -> bool {
        self.pick(tenant, city, &[]).is_some()
    }

    /// The operator is being offered (or is on) `call`.
    pub fn engage(&mut self, extension: &str, call: &str, now: Instant, wall: DateTime<Utc>) {
        if let Some(e) = self.entry(extension) {
            e.call = Some(call.to_owned());
        }
        self.set(extension, OperatorState::Busy, None, now, wall);
    }

    /// The offer was not taken (no answer, rejected): back to ready without
    /// wrap-up, but with the idle clock restarted so the next call goes to
    /// someone else first.
    pub fn release(&mut self, extension: &str, now: Instant, wall: DateTime<Utc>) {
        let shared = self.shared;
        let Some(e) = self.entry(extension) else {
            return;
        };
        e.call = None;
        // On a shared floor the operator goes back to the floor with their call.
        e.granted &= !shared;
        let back_to = if e.reason.is_some() {
            OperatorState::Paused
        } else {
            OperatorState::Ready
        };
        let reason = e.reason.clone();
        self.set(extension, back_to, reason, now, wall);
    }

    /// The operator's softphone did not take an offered call (rang out, rejected,
    /// unreachable). With `pause` they are paused with [`MISSED_CALL`] until they
    /// press ready (an ACD's auto-pause: an empty desk must not keep getting
    /// calls, nor an unplugged softphone be rung in a loop); otherwise as
    /// [`release`](Self::release).
    pub fn missed(&mut self, extension: &str, pause: bool, now: Instant, wall: DateTime<Utc>) {
        if !pause {
            return self.release(extension, now, wall);
        }
        let shared = self.shared;
        let Some(e) = self.entry(extension) else {
            return;
        };
        e.call = None;
        e.granted &= !shared;
        self.set(
            extension,
            OperatorState::Paused,
            Some(MISSED_CALL.to_owned()),
            now,
            wall,
        );
    }

    /// The call ended: wrap-up, then back to ready (or to the pause asked for
    /// meanwhile).
    pub fn finish_call(&mut self, extension: &str, now: Instant, wall: DateTime<Utc>) {
        let (wrap_up, shared) = (self.wrap_up, self.shared);
        let Some(e) = self.entry(extension) else {
            return;
        };
        e.call = None;
        // The grant is kept through wrap-up (so a node that dies meanwhile frees
        // the operator) and given back when they are ready again.
        let _ = shared;
        if wrap_up.is_zero() {
            return self.release(extension, now, wall);
        }
        let reason = e.reason.clone();
        self.set(extension, OperatorState::WrapUp, reason, now, wall);
        if let Some(e) = self.entry(extension) {
            e.wrap_up_until = Some(now + wrap_up);
        }
    }

    /// Shares the floor with other nodes from now on: only operators the store
    /// grants this node are offered calls.
    pub(crate) fn share(&mut self) {
        self.shared = true;
    }

    /// Whether the floor is shared.
    /// Every operator's configuration (what each serves).
    pub(crate) fn roster(&self) -> Vec<Operator> {
        self.entries.iter().map(|e| e.config.clone()).collect()
    }

    /// The roster's version (changes whenever [`Self::roster`] would).
    pub(crate) fn roster_version(&self) -> u64 {
        self.roster_version
    }

    /// The store granted this node `extension`: they may be offered a call here.
    pub(crate) fn grant(&mut self, extension: &str) {
        if let Some(e) = self.entry(extension) {
            e.granted = true;
        }
    }

    /// The store granted `extension` to this node while this node still shows
    /// her on a call that is not one of its own: another node's call, mirrored
    /// before this node read that it ended or that the node died (the grant came
    /// first; the store grants only operators free on the floor). She is free:
    /// ready, or paused if she asked for a pause after that call. Reported like
    /// any change of hers. (Left as it was, the next read would keep her on that
    /// call for good: an operator on a call here keeps it.)
    pub(crate) fn release_mirrored_call(
        &mut self,
        extension: &str,
        now: Instant,
        wall: DateTime<Utc>,
    ) {
        let Some(e) = self.entry(extension) else {
            return;
        };
        e.call = None;
        if matches!(e.state, OperatorState::Busy | OperatorState::WrapUp) {
            let reason = e.reason.clone();
            let state = if reason.is_some() {
                OperatorState::Paused
            } else {
                OperatorState::Ready
            };
            self.set(extension, state, reason, now, wall);
        }
    }

    /// Gives back the granted operators no call here needs now (after a dispatch
    /// found nothing for them); their views, to write back to the floor.
    pub(crate) fn take_idle_grants(&mut self) -> Vec<OperatorView> {
        self.entries
            .iter_mut()
            .filter(|e| e.granted && e.call.is_none() && e.state == OperatorState::Ready)
            .map(|e| {
                e.granted = false;
                e.view()
            })
            .collect()
    }

    /// Takes in what another node wrote of an operator, without reporting it again.
    /// An operator on a call here keeps it: only the pause to take after it comes
    /// from elsewhere. A call held by a dead node is over.
    pub(crate) fn mirror(&mut self, row: &FloorOperator, me: &str, changed: Instant) {
        let Some(e) = self.entry(&row.extension) else {
            return;
        };
        if e.granted && (e.call.is_some() || e.state == OperatorState::WrapUp) {
            if e.state != OperatorState::Ready {
                e.reason.clone_from(&row.reason);
            }
            return;
        }
        let mut state = match row.state.as_str() {
            "ready" => OperatorState::Ready,
            "busy" => OperatorState::Busy,
            "wrap-up" => OperatorState::WrapUp,
            "paused" => OperatorState::Paused,
            _ => OperatorState::LoggedOut,
        };
        let mut call = row.call_id.clone();
        if !row.holder_alive && matches!(state, OperatorState::Busy | OperatorState::WrapUp) {
            // Their node died with the call: back to what they asked to be after it.
            call = None;
            state = if row.reason.is_some() {
                OperatorState::Paused
            } else {
                OperatorState::Ready
            };
        }
        // A grant stands only while the store says this node holds it.
        e.granted &= row.holder.as_deref() == Some(me) && row.holder_alive;
        e.wrap_up_until = None;
        if e.state != state || e.reason != row.reason || e.call != call {
            e.state = state;
            e.reason.clone_from(&row.reason);
            e.call = call;
            e.changed = changed;
            e.changed_wall = row.since;
        }
    }

    /// Whether any node has a live binding for each operator, as `registered`
    /// says (not reported: the node that took the REGISTER did).
    pub(crate) fn mirror_registered(&mut self, registered: impl Fn(&str) -> bool) {
        for e in &mut self.entries {
            e.registered = registered(&e.config.extension);
        }
    }

    /// The earliest end of a wrap-up.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries.iter().filter_map(|e| e.wrap_up_until).min()
    }

    /// Ends the wrap-ups due at `now`.
    pub fn handle_timeout(&mut self, now: Instant, wall: DateTime<Utc>) {
        let due: Vec<String> = self
            .entries
            .iter()
            .filter(|e| e.wrap_up_until.is_some_and(|t| t <= now))
            .map(|e| e.config.extension.clone())
            .collect();
        for extension in due {
            self.release(&extension, now, wall);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn ops(now: Instant) -> Operators {
        let c = Config::parse(
            "[[operator]]\nextension=\"1001\"\npassword=\"pass1\"\n[[operator]]\nextension=\"1002\"\npassword=\"pass2\"\ntenants=[\"uyut\"]\n[[operator]]\nextension=\"2001\"\npassword=\"pass3\"\nrole=\"supervisor\"\n",
            Path::new("t"),
        )
        .unwrap();
        Operators::new(&c.operators, Duration::from_secs(10), now, Utc::now())
    }

    #[test]
    fn longest_idle_ready_and_registered_operator_is_picked() {
        let t0 = Instant::now();
        let w = Utc::now();
        let mut o = ops(t0);
        assert_eq!(o.views().len(), 2, "supervisors take no calls");
        o.request("1001", OperatorState::Ready, None, t0, w)
            .unwrap();
        o.request(
            "1002",
            OperatorState::Ready,
            None,
            t0 + Duration::from_secs(1),
            w,
        )
        .unwrap();
        assert_eq!(o.pick(None, None, &[]), None, "nobody registered");
        o.set_registered("1001", true, t0, w);
        o.set_registered("1002", true, t0, w);
        assert_eq!(o.pick(None, None, &[]).as_deref(), Some("1001"));
        assert_eq!(
            o.pick(Some("etalon"), None, &[]).as_deref(),
            Some("1001"),
            "1002 serves uyut only"
        );
        assert_eq!(
            o.pick(None, None, &["1001".into()]).as_deref(),
            Some("1002")
        );
    }

    #[test]
    fn a_missed_offer_pauses_the_operator_unless_the_policy_says_otherwise() {
        let t0 = Instant::now();
        let w = Utc::now();
        let mut o = ops(t0);
        o.set_registered("1001", true, t0, w);
        o.request("1001", OperatorState::Ready, None, t0, w)
            .unwrap();
        o.engage("1001", "c1", t0, w);
        o.missed("1001", true, t0, w);
        let v = o.view("1001").unwrap();
        assert_eq!(
            (v.state, v.reason.as_deref()),
            (OperatorState::Paused, Some(MISSED_CALL))
        );
        assert_eq!(
            o.pick(None, None, &[]),
            None,
            "a paused operator is not rung"
        );
        o.request("1001", OperatorState::Ready, None, t0, w)
            .unwrap();
        o.engage("1001", "c2", t0, w);
        o.missed("1001", false, t0, w);
        assert_eq!(o.view("1001").unwrap().state, OperatorState::Ready);
    }

    #[test]
    fn busy_then_wrap_up_then_ready_with_a_pause_asked_meanwhile() {
        let t0 = Instant::now();
        let w = Utc::now();
        let mut o = ops(t0);
        o.set_registered("1001", true, t0, w);
        o.request("1001", OperatorState::Ready, None, t0, w)
            .unwrap();
        o.engage("1001", "c1", t0, w);
        assert_eq!(o.view("1001").unwrap().state, OperatorState::Busy);
        assert_eq!(
            o.request("1001", OperatorState::LoggedOut, None, t0, w),
            Err(OperatorError::OnCall("1001".into()))
        );
        assert_eq!(
            o.request("1001", OperatorState::Busy, None, t0, w),
            Err(OperatorError::NotManual("busy"))
        );
        o.request("1001", OperatorState::Paused, Some("lunch".into()), t0, w)
            .unwrap();
        o.finish_call("1001", t0 + Duration::from_secs(60), w);
        assert_eq!(o.view("1001").unwrap().state, OperatorState::WrapUp);
        assert_eq!(o.next_deadline(), Some(t0 + Duration::from_secs(70)));
        o.handle_timeout(t0 + Duration::from_secs(70), w);
        let v = o.view("1001").unwrap();
        assert_eq!(
            (v.state, v.reason.as_deref()),
            (OperatorState::Paused, Some("lunch"))
        );
        assert!(o.take_changes().len() >= 4);
    }

    fn row(state: &str, call: Option<&str>, holder: Option<&str>, alive: bool) -> FloorOperator {
        FloorOperator {
            extension: "1001".into(),
            state: state.into(),
            reason: None,
            since: Utc::now(),
            call_id: call.map(str::to_owned),
            holder: holder.map(str::to_owned),
            holder_alive: alive,
            node: "node-b".into(),
        }
    }

    #[test]
    fn on_a_shared_floor_only_granted_operators_are_offered_calls_and_grants_go_back_with_the_call()
    {
        let t0 = Instant::now();
        let w = Utc::now();
        let mut o = ops(t0);
        o.share();
        o.set_registered("1001", true, t0, w);
        o.request("1001", OperatorState::Ready, None, t0, w)
            .unwrap();
        assert_eq!(o.pick(None, None, &[]), None, "not granted to this node");
        o.grant("1001");
        assert_eq!(o.pick(None, None, &[]).as_deref(), Some("1001"));
        assert!(o.view("1001").unwrap().held);
        o.engage("1001", "c1", t0, w);
        o.release("1001", t0, w);
        let v = o.view("1001").unwrap();
        assert_eq!((v.state, v.held), (OperatorState::Ready, false));
        assert_eq!(o.pick(None, None, &[]), None, "back on the floor");
        // A grant nothing here used is given back.
        o.grant("1001");
        assert_eq!(o.take_idle_grants().len(), 1);
        assert!(!o.view("1001").unwrap().held);
    }

    #[test]
    fn what_other_nodes_wrote_is_mirrored_and_a_dead_nodes_call_is_over() {
        let t0 = Instant::now();
        let mut o = ops(t0);
        o.share();
        o.take_changes();
        // Busy on node B's call.
        o.mirror(&row("busy", Some("cb"), Some("node-b"), true), "node-a", t0);
        let v = o.view("1001").unwrap();
        assert_eq!(
            (v.state, v.call.as_deref()),
            (OperatorState::Busy, Some("cb"))
        );
        assert!(o.take_changes().is_empty(), "mirrored, not reported again");
        // Node B died with the call: she is free again.
        o.mirror(
            &row("busy", Some("cb"), Some("node-b"), false),
            "node-a",
            t0,
        );
        let v = o.view("1001").unwrap();
        assert_eq!((v.state, v.call), (OperatorState::Ready, None));
        // A grant stands only while the store says this node holds it.
        o.grant("1001");
        o.mirror(&row("ready", None, Some("node-a"), true), "node-a", t0);
        assert!(o.view("1001").unwrap().held);
        o.mirror(&row("paused", None, None, false), "node-a", t0);
        let v = o.view("1001").unwrap();
        assert_eq!((v.state, v.held), (OperatorState::Paused, false));
    }

    #[test]
    fn a_grant_that_overtakes_the_news_of_a_dead_node_frees_the_operator() {
        let t0 = Instant::now();
        let mut o = ops(t0);
        o.share();
        o.request("1001", OperatorState::Ready, None, t0, Utc::now())
            .unwrap();
        o.mirror_registered(|_| true);
        // Last read: busy on node B's call, node B still alive.
        o.mirror(&row("busy", Some("cb"), Some("node-b"), true), "node-a", t0);
        o.take_changes();
        // Node B died (or her call there ended); the store grants her here
        // before the next read says so.
        o.grant("1001");
        o.release_mirrored_call("1001", t0, Utc::now());
        let v = o.view("1001").unwrap();
        assert_eq!(
            (v.state, v.call.as_deref(), v.held),
            (OperatorState::Ready, None, true)
        );
        assert_eq!(o.pick(None, None, &[]).as_deref(), Some("1001"));
        let written = o.take_changes();
        assert!(
            written.len() == 1 && written[0].held,
            "written back as this node's: {written:?}"
        );
        // The next read (granted here, ready) keeps her so.
        o.mirror(&row("ready", None, Some("node-a"), true), "node-a", t0);
        assert_eq!(o.pick(None, None, &[]).as_deref(), Some("1001"));
    }
}
