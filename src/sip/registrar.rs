//! A registrar (RFC 3261 §10.3) for the operators' softphones.
//!
//! Owns the bindings (address of record → contacts, each with its expiry, the
//! Call-ID/CSeq that set it and the address the REGISTER came from, which is where
//! requests to a softphone behind NAT must go), REGISTER processing with digest
//! authentication, and expiry. The AOR is the To URI's user part (the extension);
//! who may register which extension is the caller's business, given as a password
//! lookup.
//!
//! Behind a proxy with several nodes, the bindings other nodes registered are
//! mirrored in ([`Registrar::set_remote`]): any node can ring any softphone. They
//! are reached but never trusted as a request's source here (a flow belongs to
//! the node it reached).
//!
//! Sans-IO: time is passed in; [`Registrar::next_expiry`] says when
//! [`Registrar::expire`] must run.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::digest::{DigestAuth, DigestError, DigestSecret};
use super::transport::Target;
use super::wire::{Contact, Method, NameAddr, Request, Response, Uri};

/// One registered contact.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// The Contact as registered (URI kept exactly).
    pub contact: NameAddr,
    /// Where the REGISTER came from (requests go here: NAT keeps this open).
    pub source: Target,
    /// When the binding lapses.
    pub expires_at: Instant,
    /// The Call-ID of the REGISTER that set it.
    pub call_id: String,
    /// Its CSeq.
    pub cseq: u32,
    /// The proxies the REGISTER came through that asked to stay on the way to the
    /// softphone (RFC 3327 Path, in order): requests to the binding are routed
    /// through them.
    pub path: Vec<NameAddr>,
}

impl Binding {
    /// Where requests to this binding go. When the Contact's host is the very IP the
    /// REGISTER came from, nothing rewrote the address on the way and the Contact
    /// (with its port and transport) is used as registered; otherwise a NAT sits in
    /// between and only the REGISTER's source address reaches the softphone.
    pub fn target(&self) -> Target {
        if let Some(first) = self.path.first() {
            // Through the proxy that asked to stay on the path (which alone may
            // reach a softphone behind NAT).
            let ip = first.uri.host().and_then(super::wire::Host::ip);
            if let Some(ip) = ip {
                let transport = first
                    .uri
                    .transport()
                    .and_then(|t| super::transport::TransportKind::from_token(&t))
                    .unwrap_or(super::transport::TransportKind::Udp);
                let addr = std::net::SocketAddr::new(ip, first.uri.port().unwrap_or(5060));
                if addr == self.source.addr && transport == self.source.transport {
                    return self.source;
                }
                return Target {
                    transport,
                    addr,
                    connection: None,
                };
            }
        }
        let uri = &self.contact.uri;
        let contact_ip = uri.host().and_then(super::wire::Host::ip);
        if contact_ip == Some(self.source.addr.ip()) {
            let port = uri.port().unwrap_or(5060);
            let transport = uri
                .transport()
                .and_then(|t| super::transport::TransportKind::from_token(&t))
                .unwrap_or(self.source.transport);
            if transport == self.source.transport && port == self.source.addr.port() {
                return self.source;
            }
            return Target {
                transport,
                addr: std::net::SocketAddr::new(self.source.addr.ip(), port),
                connection: None,
            };
        }
        self.source
    }
}

/// What a REGISTER changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationChange {
    /// The AOR now has at least one binding (it had none).
    Online(String),
    /// The AOR lost its last binding.
    Offline(String),
}

/// What a REGISTER's credentials came to, for the guessing guard
/// ([`crate::guard`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The request was not about credentials (none sent, a stale or replayed
    /// nonce, a malformed request): nothing was checked.
    Unchecked,
    /// The credentials were right.
    Accepted(String),
    /// A wrong password or an unknown user (the same answer), or a try refused
    /// unchecked while the guard makes its source or account wait.
    Refused,
}

/// Registrar limits.
#[derive(Debug, Clone, Copy)]
pub struct RegistrarSettings {
    /// Shortest expiry accepted (shorter gets 423 with Min-Expires).
    pub min_expires: u32,
    /// Longest expiry granted.
    pub max_expires: u32,
    /// Expiry when the request names none.
    pub default_expires: u32,
}

impl Default for RegistrarSettings {
    fn default() -> Self {
        Self {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
        }
    }
}

/// The registrar.
#[derive(Debug)]
pub struct Registrar {
    auth: DigestAuth,
    settings: RegistrarSettings,
    bindings: HashMap<String, Vec<Binding>>,
    /// Bindings other nodes registered: AOR → (node, binding).
    remote: HashMap<String, Vec<(String, Binding)>>,
}

impl Registrar {
    /// A registrar authenticating with `auth`.
    pub fn new(auth: DigestAuth, settings: RegistrarSettings) -> Self {
        Self {
            auth,
            settings,
            bindings: HashMap::new(),
            remote: HashMap::new(),
        }
    }

    /// The live bindings of an AOR, most recent first: this node's, then those
    /// other nodes registered for contacts this node has none for (a softphone
    /// that re-registered through another node after a failover is rung once).
    pub fn bindings(&self, aor: &str, now: Instant) -> Vec<&Binding> {
        let mut live: Vec<&Binding> = self
            .bindings
            .get(aor)
            .map(|b| b.iter().filter(|b| b.expires_at > now).collect())
            .unwrap_or_default();
        let mut remote: Vec<&Binding> = self
            .remote
            .get(aor)
            .map(|b| {
                b.iter()
                    .map(|(_, b)| b)
                    .filter(|b| b.expires_at > now)
                    .collect()
            })
            .unwrap_or_default();
        remote.sort_by_key(|b| std::cmp::Reverse(b.expires_at));
        for b in remote {
            if !live
                .iter()
                .any(|l| l.contact.uri.same_address(&b.contact.uri))
            {
                live.push(b);
            }
        }
        live.sort_by_key(|b| std::cmp::Reverse(b.expires_at));
        live
    }

    /// The bindings this node registered for an AOR (what it shares).
    pub fn local_bindings(&self, aor: &str) -> &[Binding] {
        self.bindings.get(aor).map_or(&[], Vec::as_slice)
    }

    /// What `node` registered for `aor` (replacing what it had).
    pub fn set_remote(&mut self, aor: &str, node: &str, bindings: Vec<Binding>) {
        let list = self.remote.entry(aor.to_owned()).or_default();
        list.retain(|(n, _)| n != node);
        list.extend(bindings.into_iter().map(|b| (node.to_owned(), b)));
        if list.is_empty() {
            self.remote.remove(aor);
        }
    }

    /// Keeps only the remote bindings `keep(aor, node)` says are still shared.
    pub fn retain_remote(&mut self, keep: impl Fn(&str, &str) -> bool) {
        self.remote.retain(|aor, list| {
            list.retain(|(node, _)| keep(aor, node));
            !list.is_empty()
        });
    }

    /// Every AOR with bindings (live or not yet expired away).
    pub fn aors(&self) -> impl Iterator<Item = String> + '_ {
        self.bindings.keys().cloned()
    }

    /// Drops every binding of an AOR (its account was removed); whether it had any.
    pub fn forget(&mut self, aor: &str) -> bool {
        self.remote.remove(aor);
        self.bindings.remove(aor).is_some()
    }

    /// Whether an AOR has a live binding.
    pub fn is_registered(&self, aor: &str, now: Instant) -> bool {
        !self.bindings(aor, now).is_empty()
    }

    /// Whether a request came over the very flow (address, port and transport)
    /// a live binding was registered from: a softphone is trusted by its flow for
    /// as long as its binding lives, never by its IP address alone (anyone behind
    /// the same NAT, or spoofing it, would be trusted too).
    pub fn registered_source(&self, source: &Target, now: Instant) -> Option<&str> {
        self.bindings.iter().find_map(|(aor, list)| {
            list.iter()
                .any(|b| {
                    b.expires_at > now
                        && b.source.addr == source.addr
                        && b.source.transport == source.transport
                })
                .then_some(aor.as_str())
        })
    }

    /// The flows live bindings were registered from.
    pub fn flows(&self, now: Instant) -> Vec<std::net::SocketAddr> {
        self.bindings
            .values()
            .flatten()
            .filter(|b| b.expires_at > now)
            .map(|b| b.source.addr)
            .collect()
    }

    /// Handles a REGISTER; returns the response (the caller adds the To tag) and
    /// what changed. `secret_of` gives an extension's digest secret (its password or
    /// stored HA1s), if it may register.
    pub fn handle(
        &mut self,
        now: Instant,
        request: &Request,
        source: Target,
        secret_of: impl Fn(&str) -> Option<DigestSecret>,
    ) -> (Response, Option<RegistrationChange>) {
        let (response, change, _) = self.handle_guarded(now, request, source, secret_of, false);
        (response, change)
    }

    /// Like [`handle`](Self::handle), and says what the credentials came to. With
    /// `hold_off` (the guard makes the source or account wait), credentials are
    /// not checked at all: the answer is the very 401 a wrong password gets, so a
    /// guesser cannot tell a refused try from a wrong one.
    pub fn handle_guarded(
        &mut self,
        now: Instant,
        request: &Request,
        source: Target,
        secret_of: impl Fn(&str) -> Option<DigestSecret>,
        hold_off: bool,
    ) -> (Response, Option<RegistrationChange>, AuthOutcome) {
        debug_assert_eq!(request.method, Method::Register);
        let to = &request.headers.to.uri;
        // A To that is not a SIP AOR cannot be registered (RFC 4475 §3.3.4).
        if !to.is_sip() {
            return (
                request.response_with_reason(400, "Bad Request: To is not a SIP or SIPS AOR"),
                None,
                AuthOutcome::Unchecked,
            );
        }
        let Some(aor) = to.user_unescaped() else {
            return (
                request.response_with_reason(400, "Bad Request: To has no user part"),
                None,
                AuthOutcome::Unchecked,
            );
        };
        let authorization = request.headers.get("Authorization");
        let verified = if hold_off && authorization.is_some() {
            Err(DigestError::Mismatch)
        } else {
            self.auth.verify(
                now,
                "REGISTER",
                request.uri.as_str(),
                authorization,
                &secret_of,
            )
        };
        let outcome = match verified {
            Ok(user) if user == aor => AuthOutcome::Accepted(user),
            Ok(user) => {
                tracing::warn!(%user, %aor, "REGISTER for someone else's extension");
                return (
                    request
                        .response_with_reason(403, "Forbidden: credentials do not match the AOR"),
                    None,
                    AuthOutcome::Accepted(user),
                );
            }
            Err(e) => {
                if !matches!(e, DigestError::Missing | DigestError::Stale) && !hold_off {
                    tracing::info!(%aor, source = %source, error = %e, "REGISTER refused");
                }
                // A replayed nonce-count is re-challenged like a stale nonce: an
                // honest UA retries with the fresh one, a replayer gets nothing.
                let stale = matches!(e, DigestError::Stale | DigestError::Replay);
                let mut r = request.response(401);
                for challenge in self.auth.challenges(now, stale) {
                    r.headers.push("WWW-Authenticate", challenge);
                }
                // Only a compared password counts as a guess.
                let outcome = if e == DigestError::Mismatch {
                    AuthOutcome::Refused
                } else {
                    AuthOutcome::Unchecked
                };
                return (r, None, outcome);
            }
        };
        let was_online = self.is_registered(&aor, now);
        // Saturated, never wrapped: a huge Expires is the longest grant.
        let header_expires: Option<u32> = request
            .headers
            .get("Expires")
            .and_then(|e| e.trim().parse::<u64>().ok())
            .map(|e| u32::try_from(e).unwrap_or(u32::MAX));
        // All or nothing: the request is applied to a copy, which replaces the
        // bindings only when every Contact was accepted (RFC 3261 §10.3 step 7).
        let mut list: Vec<Binding> = self
            .bindings
            .get(&aor)
            .map(|l| l.iter().filter(|b| b.expires_at > now).cloned().collect())
            .unwrap_or_default();

        let call_id = &request.headers.call_id;
        let cseq = request.headers.cseq.seq;
        let path = path_of(request);
        if request
            .headers
            .contact
            .iter()
            .any(|c| matches!(c, Contact::Wildcard))
        {
            if request.headers.contact.len() != 1 || header_expires != Some(0) {
                return (
                    request.response_with_reason(
                        400,
                        "Bad Request: Contact * needs Expires: 0 and no other Contact",
                    ),
                    None,
                    outcome,
                );
            }
            list.clear();
        }
        for contact in request.headers.contact.iter().filter_map(Contact::address) {
            let expires = contact
                .param("expires")
                .flatten()
                .and_then(|e| e.parse::<u64>().ok())
                .map(|e| e.min(u64::from(u32::MAX)) as u32)
                .or(header_expires)
                .unwrap_or(self.settings.default_expires);
            if expires > 0 && expires < self.settings.min_expires {
                let mut r = request.response(423);
                r.headers
                    .push("Min-Expires", self.settings.min_expires.to_string());
                return (r, None, outcome);
            }
            let existing = list
                .iter()
                .position(|b| b.contact.uri.same_address(&contact.uri));
            if let Some((i, b)) = existing.and_then(|i| list.get(i).map(|b| (i, b))) {
                if b.call_id == *call_id && cseq <= b.cseq {
                    return (
                        request.response_with_reason(
                            500,
                            "Server Internal Error: CSeq not above the binding's",
                        ),
                        None,
                        outcome,
                    );
                }
                list.remove(i);
            }
            if expires > 0 {
                let granted = expires.min(self.settings.max_expires);
                let mut stored = contact.clone();
                stored
                    .params
                    .retain(|p| !p.name.eq_ignore_ascii_case("expires"));
                list.push(Binding {
                    contact: stored,
                    source,
                    expires_at: now + Duration::from_secs(u64::from(granted)),
                    call_id: call_id.clone(),
                    cseq,
                    path: path.clone(),
                });
            }
        }
        let mut r = request.response(200);
        if !path.is_empty()
            && request
                .headers
                .tokens("Supported")
                .any(|t| t.eq_ignore_ascii_case("path"))
        {
            // RFC 3327 §5.3: the path stored is echoed to a UA that supports it.
            for hop in &path {
                r.headers.push("Path", hop.to_string());
            }
        }
        for b in list.iter() {
            let remaining = b.expires_at.saturating_duration_since(now).as_secs();
            let mut c = b.contact.clone();
            c.params.push(super::wire::Param {
                name: "expires".into(),
                value: Some(remaining.to_string()),
            });
            r.headers.contact.push(Contact::Address(c));
        }
        let online = !list.is_empty();
        if online {
            self.bindings.insert(aor.clone(), list);
        } else {
            self.bindings.remove(&aor);
        }
        let change = match (was_online, online) {
            (false, true) => Some(RegistrationChange::Online(aor)),
            (true, false) => Some(RegistrationChange::Offline(aor)),
            _ => None,
        };
        (r, change, outcome)
    }

    /// Drops lapsed bindings; returns the AORs that went offline.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let mut gone = Vec::new();
        self.bindings.retain(|aor, list| {
            list.retain(|b| b.expires_at > now);
            if list.is_empty() {
                gone.push(aor.clone());
                false
            } else {
                true
            }
        });
        gone
    }

    /// The next moment a binding lapses.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.bindings.values().flatten().map(|b| b.expires_at).min()
    }

    /// The URI to put in a request to a binding.
    pub fn request_uri(binding: &Binding) -> &Uri {
        &binding.contact.uri
    }
}

/// The Path a REGISTER carries (RFC 3327), every value of every Path header in
/// order; a value that does not parse is left out.
fn path_of(request: &Request) -> Vec<NameAddr> {
    request
        .headers
        .get_all("Path")
        .filter_map(|v| super::wire::text::split_top_level(v, ','))
        .flatten()
        .filter_map(|hop| NameAddr::parse(hop.trim()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::digest::answer;
    use crate::sip::wire::{Framing, Message, parse};
    use bytes::Bytes;

    fn register(contact: &str, expires: &str, cseq: u32, auth: Option<String>) -> Request {
        let mut text = format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.5:5062;branch=z9hG4bK{cseq}\r\nFrom: <sip:1001@127.0.0.1>;tag=r\r\nTo: <sip:1001@127.0.0.1>\r\nCall-ID: reg-1\r\nCSeq: {cseq} REGISTER\r\nContact: {contact}\r\nExpires: {expires}\r\n"
        );
        if let Some(a) = auth {
            text.push_str(&format!("Authorization: {a}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        match parse(Bytes::from(text), Framing::Datagram) {
            Ok(Message::Request(r)) => r,
            e => panic!("{e:?}"),
        }
    }

    fn registrar(t0: Instant) -> Registrar {
        Registrar::new(
            DigestAuth::new("dispatchline", "k", t0),
            RegistrarSettings::default(),
        )
    }

    fn pw(user: &str) -> Option<DigestSecret> {
        (user == "1001").then(|| DigestSecret::Password("pa55".into()))
    }

    fn src() -> Target {
        Target::udp("192.0.2.5:40000".parse().unwrap())
    }

    fn authed(
        reg: &mut Registrar,
        t: Instant,
        contact: &str,
        expires: &str,
        cseq: u32,
        password: &str,
    ) -> (Response, Option<RegistrationChange>) {
        let (challenge, _) = reg.handle(t, &register(contact, expires, cseq, None), src(), pw);
        assert_eq!(challenge.status, 401);
        let www = challenge
            .headers
            .get("WWW-Authenticate")
            .unwrap()
            .to_owned();
        let cnonce = format!("c{cseq}");
        let a = answer(&www, "REGISTER", "sip:127.0.0.1", "1001", password, &cnonce).unwrap();
        reg.handle(t, &register(contact, expires, cseq + 1, Some(a)), src(), pw)
    }

    #[test]
    fn challenge_then_bind_then_expire() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let (ok, change) = authed(
            &mut reg,
            t0,
            "<sip:1001@192.0.2.5:5062;ob>",
            "120",
            1,
            "pa55",
        );
        assert_eq!(ok.status, 200);
        assert_eq!(change, Some(RegistrationChange::Online("1001".into())));
        assert!(ok.headers.contact[0].to_string().contains("expires=120"));
        let b = &reg.bindings("1001", t0)[0];
        assert_eq!(b.contact.uri.as_str(), "sip:1001@192.0.2.5:5062;ob");
        assert_eq!(b.source, src());
        // The Contact's host (192.0.2.5) is the source's: its port is trusted.
        assert_eq!(b.target(), Target::udp("192.0.2.5:5062".parse().unwrap()));
        assert_eq!(reg.next_expiry(), Some(t0 + Duration::from_secs(120)));
        assert_eq!(
            reg.expire(t0 + Duration::from_secs(121)),
            vec!["1001".to_owned()]
        );
        assert!(!reg.is_registered("1001", t0 + Duration::from_secs(121)));
    }

    #[test]
    fn a_softphone_is_trusted_by_its_flow_and_a_huge_expiry_saturates() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let (ok, _) = authed(
            &mut reg,
            t0,
            "<sip:1001@192.0.2.5:5062>",
            "4294967295",
            1,
            "pa55",
        );
        assert_eq!(ok.status, 200);
        assert_eq!(reg.next_expiry(), Some(t0 + Duration::from_secs(3600)));
        assert_eq!(reg.registered_source(&src(), t0), Some("1001"));
        let other_port = Target::udp("192.0.2.5:40001".parse().unwrap());
        assert_eq!(reg.registered_source(&other_port, t0), None);
        let mut tcp = src();
        tcp.transport = crate::sip::transport::TransportKind::Tcp;
        assert_eq!(reg.registered_source(&tcp, t0), None);
        let lapsed = t0 + Duration::from_secs(3601);
        assert_eq!(reg.registered_source(&src(), lapsed), None);
    }

    #[test]
    fn wrong_password_too_short_and_unregister() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let (r, _) = authed(&mut reg, t0, "<sip:1001@192.0.2.5>", "120", 1, "wrong");
        assert_eq!(r.status, 401);
        let (r, _) = authed(&mut reg, t0, "<sip:1001@192.0.2.5>", "10", 3, "pa55");
        assert_eq!(r.status, 423);
        assert_eq!(r.headers.get("Min-Expires"), Some("60"));
        authed(&mut reg, t0, "<sip:1001@192.0.2.5>", "120", 5, "pa55");
        authed(&mut reg, t0, "<sip:1001@192.0.2.6>", "120", 7, "pa55");
        assert_eq!(reg.bindings("1001", t0).len(), 2, "several contacts");
        let (r, change) = authed(&mut reg, t0, "*", "0", 9, "pa55");
        assert_eq!(r.status, 200);
        assert_eq!(change, Some(RegistrationChange::Offline("1001".into())));
    }

    #[test]
    fn a_register_refused_half_way_changes_nothing() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        // The second Contact asks for too short a lifetime: 423, and the first
        // is not bound either; no empty entry is left behind.
        let (r, change) = authed(
            &mut reg,
            t0,
            "<sip:1001@192.0.2.5:5062>, <sip:1001@192.0.2.5:5064>;expires=10",
            "120",
            1,
            "pa55",
        );
        assert_eq!(r.status, 423);
        assert_eq!(change, None);
        assert!(!reg.is_registered("1001", t0));
        assert!(reg.bindings.is_empty(), "{:?}", reg.bindings);
        // Bound, then a stale CSeq for one of two contacts: the other keeps its
        // old lifetime.
        authed(&mut reg, t0, "<sip:1001@192.0.2.5:5062>", "120", 10, "pa55");
        let later = t0 + Duration::from_secs(30);
        let (r, _) = authed(
            &mut reg,
            later,
            "<sip:1001@192.0.2.5:5064>, <sip:1001@192.0.2.5:5062>",
            "600",
            5,
            "pa55",
        );
        assert_eq!(r.status, 500, "CSeq 6 is below the binding's 11");
        let live = reg.bindings("1001", later);
        assert_eq!(live.len(), 1, "the new contact was not added");
        assert_eq!(live[0].expires_at, t0 + Duration::from_secs(120));
    }

    #[test]
    fn a_contact_behind_nat_is_reached_at_the_source() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        authed(&mut reg, t0, "<sip:1001@10.0.0.7:5062>", "120", 1, "pa55");
        assert_eq!(
            reg.bindings("1001", t0)[0].target(),
            src(),
            "private Contact: use where it came from"
        );
    }

    /// An RFC 4475 torture REGISTER from tests/data, answered once without and
    /// once with credentials for its AOR; returns both answers.
    fn torture_register(reg: &mut Registrar, t: Instant, file: &str, user: &str) -> (u16, u16) {
        let path = format!(
            "{}/tests/data/rfc4475/{file}.dat",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let Ok(Message::Request(request)) = parse(Bytes::from(bytes), Framing::Datagram) else {
            panic!("{file} parses");
        };
        let password = |u: &str| (u == user).then(|| DigestSecret::Password("pw".to_owned()));
        let (challenge, _) = reg.handle(t, &request, src(), password);
        let www = challenge
            .headers
            .get("WWW-Authenticate")
            .unwrap_or_else(|| panic!("{file}: {}", challenge.status))
            .to_owned();
        let mut authed = request.clone();
        let a = answer(&www, "REGISTER", &request.uri.to_string(), user, "pw", "c").unwrap();
        authed.headers.push("Authorization", a);
        let (ok, _) = reg.handle(t, &authed, src(), password);
        (challenge.status, ok.status)
    }

    #[test]
    fn torture_registers_bind_as_rfc_4475_asks_once_authenticated() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        // §3.3.12: a bare Contact's ;unknownparam is a contact parameter: the
        // binding is the bare URI, the parameter kept beside it.
        assert_eq!(
            torture_register(&mut reg, t0, "cparam01", "watson"),
            (401, 200)
        );
        let b = reg.bindings("watson", t0);
        assert_eq!(b.len(), 1);
        assert_eq!(
            b[0].contact.uri.as_str(),
            "sip:+19725552222@gw1.example.net"
        );
        assert_eq!(b[0].contact.param("unknownparam"), Some(None));
        // §3.3.13: inside <> it is a URI parameter, and the stored URI keeps it.
        let mut reg = registrar(t0);
        assert_eq!(
            torture_register(&mut reg, t0, "cparam02", "watson"),
            (401, 200)
        );
        let b = reg.bindings("watson", t0);
        assert_eq!(b.len(), 1);
        assert_eq!(
            b[0].contact.uri.as_str(),
            "sip:+19725552222@gw1.example.net;unknownparam"
        );
        assert_eq!(b[0].contact.param("unknownparam"), None);
        // §3.3.14: the escaped Route header stays in the stored URI.
        let mut reg = registrar(t0);
        assert_eq!(
            torture_register(&mut reg, t0, "regescrt", "user"),
            (401, 200)
        );
        let b = reg.bindings("user", t0);
        assert_eq!(
            b[0].contact.uri.as_str(),
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
        );
        assert_eq!(
            b[0].contact.uri.headers(),
            Some("Route=%3Csip:sip.example.com%3E")
        );
        // §3.1.1.4: %00 is not a terminator; two distinct Contacts, two bindings.
        let mut reg = registrar(t0);
        assert_eq!(
            torture_register(&mut reg, t0, "escnull", "null-\0-null"),
            (401, 200)
        );
        let b = reg.bindings("null-\0-null", t0);
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn a_softphone_registered_through_a_proxy_is_reached_through_it() {
        let t0 = Instant::now();
        let mut reg = registrar(t0);
        let with_path = |cseq: u32, auth: Option<String>| {
            let mut r = register("<sip:1001@10.0.0.7:5060>", "300", cseq, auth);
            r.headers.push(
                "Path",
                "<sip:198.51.100.1:5060;lr;received=sip:203.0.113.9:41000>",
            );
            r.headers.push("Supported", "path");
            r
        };
        let proxy = Target::udp("198.51.100.1:5060".parse().unwrap());
        let (challenge, _) = reg.handle(t0, &with_path(1, None), proxy, pw);
        let www = challenge
            .headers
            .get("WWW-Authenticate")
            .unwrap()
            .to_owned();
        let a = answer(&www, "REGISTER", "sip:127.0.0.1", "1001", "pa55", "c1").unwrap();
        let (ok, _) = reg.handle(t0, &with_path(2, Some(a)), proxy, pw);
        assert_eq!(ok.status, 200);
        assert_eq!(
            ok.headers.get("Path"),
            Some("<sip:198.51.100.1:5060;lr;received=sip:203.0.113.9:41000>"),
            "echoed to a UA that supports path"
        );
        let b = reg.bindings("1001", t0)[0].clone();
        assert_eq!(b.path.len(), 1);
        assert_eq!(b.target(), proxy, "requests go through the proxy");
    }
}
