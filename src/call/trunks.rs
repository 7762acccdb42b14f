//! SIP trunks: the providers residents' calls arrive from and callbacks leave by.
//!
//! Owns, per `[[trunk]]`: outbound registration (REGISTER with digest credentials,
//! refreshed before expiry, retried with exponential backoff after a failure, a
//! 401 answered in Authorization and a 407 in Proxy-Authorization), the OPTIONS
//! keepalive, the up/down state both feed (a trunk that answers nothing, or answers
//! 5xx, is down), which trunks callbacks may use (not down, and registered when it
//! must register), and which source addresses count as the trunk's (calls from
//! anywhere else are refused, so the engine never routes a stranger's call out —
//! no toll fraud).
//!
//! Sans-IO: [`Trunks::poll_request`] yields requests to send when their time has
//! come, [`Trunks::handle_response`] takes what came back, and
//! [`Trunks::next_deadline`] says when to poll again.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::config::{Trunk, TrunkTransport};
use crate::sip::digest;
use crate::sip::transport::{Target, TransportKind};
use crate::sip::wire::{Contact, Method, NameAddr, Request, Response, Uri};

/// What a trunk request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Registration (or its refresh).
    Register,
    /// OPTIONS keepalive.
    Keepalive,
}

/// A trunk's health as the engine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Not yet probed.
    Unknown,
    /// Answering.
    Up,
    /// Not answering, or refusing with 5xx.
    Down,
}

#[derive(Debug)]
struct State {
    config: Trunk,
    health: Health,
    /// When `health` last changed (none while it is still `Unknown`).
    health_since: Option<Instant>,
    /// Why it last changed (`OPTIONS got no answer`, ...).
    health_reason: Option<String>,
    registered_until: Option<Instant>,
    next_register: Option<Instant>,
    next_keepalive: Option<Instant>,
    register_backoff: Duration,
    register_cseq: u32,
    register_call_id: String,
    keepalive_cseq: u32,
    /// The last challenge, and whether it came in a 407 (answered with
    /// Proxy-Authorization) rather than a 401 (Authorization).
    challenge: Option<(String, bool)>,
    auth_tried: bool,
    /// Why the last registration failed, for the board.
    register_error: Option<String>,
}

/// What the board shows of a trunk.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TrunkView {
    /// Trunk name.
    pub name: String,
    /// Its health.
    pub health: Health,
    /// Whether it is registered; `None` when it does not register.
    pub registered: Option<bool>,
    /// Whether callbacks may use it now (not down, registered when it must be).
    pub usable: bool,
    /// The last registration failure, if the registration is not in place.
    pub register_error: Option<String>,
    /// When its health last changed, on the wall clock; `None` while it is
    /// still `unknown`.
    pub since: Option<DateTime<Utc>>,
    /// Why its health last changed (`OPTIONS answered 503 Service Unavailable`,
    /// ...), as in `trunk.health`.
    pub reason: Option<String>,
}

/// A health change to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthChange {
    /// Trunk name.
    pub trunk: String,
    /// New health.
    pub health: Health,
    /// Why, for the log and the console.
    pub reason: String,
}

/// All trunks.
#[derive(Debug)]
pub struct Trunks {
    trunks: Vec<State>,
    local_contact: Uri,
    changes: Vec<HealthChange>,
}

const MIN_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

impl Trunks {
    /// Trunks from the configuration; registrations and keepalives start at `now`.
    /// `call_id_seed` makes each trunk's REGISTER Call-ID unique and stable.
    pub fn new(config: &[Trunk], now: Instant, local_contact: Uri, call_id_seed: &str) -> Self {
        let trunks = config
            .iter()
            .map(|t| State {
                health: Health::Unknown,
                health_since: None,
                health_reason: None,
                registered_until: None,
                next_register: t.register.then_some(now),
                next_keepalive: (!t.options_interval.is_zero()).then_some(now),
                register_backoff: MIN_BACKOFF,
                register_cseq: 0,
                register_call_id: format!("reg-{}-{call_id_seed}", t.name),
                keepalive_cseq: 0,
                challenge: None,
                auth_tried: false,
                register_error: None,
                config: t.clone(),
            })
            .collect();
        Self {
            trunks,
            local_contact,
            changes: Vec::new(),
        }
    }

    /// The trunk a source address belongs to.
    pub fn trunk_of_source(&self, ip: IpAddr) -> Option<&str> {
        self.trunks
            .iter()
            .find(|t| t.config.inbound_from.contains(&ip))
            .map(|t| t.config.name.as_str())
    }

    /// A trunk's health.
    pub fn health(&self, name: &str) -> Health {
        self.trunks
            .iter()
            .find(|t| t.config.name == name)
            .map_or(Health::Unknown, |t| t.health)
    }

    /// Whether a trunk is registered (or does not need to be).
    pub fn is_registered(&self, name: &str, now: Instant) -> bool {
        self.trunks
            .iter()
            .find(|t| t.config.name == name)
            .is_some_and(|t| !t.config.register || registered(t, now))
    }

    /// Where requests for a trunk go.
    pub fn target(&self, name: &str) -> Option<Target> {
        let t = self.trunks.iter().find(|t| t.config.name == name)?;
        Some(target_of(&t.config))
    }

    /// The trunk configuration by name.
    pub fn config(&self, name: &str) -> Option<&Trunk> {
        self.trunks
            .iter()
            .find(|t| t.config.name == name)
            .map(|t| &t.config)
    }

    /// Trunks in configuration order, usable ones first for failover:
    /// `preferred` first unless it is unusable, then the other usable ones, then
    /// the unusable ones (a last resort: a trunk's state may be stale). A trunk is
    /// unusable when it is down, or when it must register and is not registered
    /// (the provider refused the REGISTER, or it has not answered yet).
    pub fn failover_order(&self, preferred: Option<&str>, now: Instant) -> Vec<&str> {
        let mut names: Vec<&State> = self.trunks.iter().collect();
        names.sort_by_key(|t| (!usable(t, now), Some(t.config.name.as_str()) != preferred));
        names.into_iter().map(|t| t.config.name.as_str()).collect()
    }

    /// Every trunk as the board shows it; `wall` is the wall-clock time at `now`
    /// (the core keeps no wall clock of its own).
    pub fn views(&self, now: Instant, wall: DateTime<Utc>) -> Vec<TrunkView> {
        self.trunks
            .iter()
            .map(|t| {
                let registered = registered(t, now);
                let since = t.health_since.map(|at| {
                    wall - chrono::Duration::from_std(now.saturating_duration_since(at))
                        .unwrap_or_default()
                });
                TrunkView {
                    name: t.config.name.clone(),
                    health: t.health,
                    registered: t.config.register.then_some(registered),
                    usable: usable(t, now),
                    register_error: (t.config.register && !registered)
                        .then(|| t.register_error.clone())
                        .flatten(),
                    since,
                    reason: t.health_reason.clone(),
                }
            })
            .collect()
    }

    /// The digest credentials of a trunk (user name, password), when it has them.
    pub fn credentials(&self, name: &str) -> Option<(&str, &str)> {
        let t = self.config(name)?;
        Some((t.username.as_deref()?, t.password.as_deref()?))
    }

    /// The earliest moment a request is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.trunks
            .iter()
            .flat_map(|t| [t.next_register, t.next_keepalive])
            .flatten()
            .min()
    }

    /// Health changes since the last call.
    pub fn take_changes(&mut self) -> Vec<HealthChange> {
        std::mem::take(&mut self.changes)
    }

    /// The next request due at `now`: (trunk index, purpose, request, target).
    pub fn poll_request(&mut self, now: Instant) -> Option<(usize, Purpose, Request, Target)> {
        for (i, t) in self.trunks.iter_mut().enumerate() {
            if t.next_register.is_some_and(|at| at <= now) {
                t.next_register = None;
                t.register_cseq += 1;
                let req = register_request(t, &self.local_contact);
                return Some((i, Purpose::Register, req, target_of(&t.config)));
            }
            if t.next_keepalive.is_some_and(|at| at <= now) {
                t.next_keepalive = None;
                t.keepalive_cseq += 1;
                let req = options_request(&t.config, t.keepalive_cseq);
                return Some((i, Purpose::Keepalive, req, target_of(&t.config)));
            }
        }
        None
    }

    /// The outcome of a trunk request: a final response, or `None` when it timed
    /// out or could not be sent.
    pub fn handle_response(
        &mut self,
        now: Instant,
        index: usize,
        purpose: Purpose,
        response: Option<&Response>,
    ) {
        let Some(t) = self.trunks.get_mut(index) else {
            return;
        };
        let reachable = response.is_some_and(|r| r.status < 500 || r.status >= 600);
        let reason = match response {
            Some(r) => format!(
                "{} answered {} {}",
                purpose_name(purpose),
                r.status,
                r.reason
            ),
            None => format!("{} got no answer", purpose_name(purpose)),
        };
        let health = if reachable { Health::Up } else { Health::Down };
        if health != t.health {
            t.health = health;
            t.health_since = Some(now);
            t.health_reason = Some(reason.clone());
            self.changes.push(HealthChange {
                trunk: t.config.name.clone(),
                health,
                reason: reason.clone(),
            });
        }
        match purpose {
            Purpose::Keepalive => {
                t.next_keepalive = Some(now + t.config.options_interval);
            }
            Purpose::Register => match response {
                Some(r) if r.is_success() => {
                    let granted = granted_expiry(r).unwrap_or(t.config.register_expires);
                    t.registered_until = now.checked_add(granted);
                    // Refresh at 80% of the lifetime (at least 10 s before expiry).
                    let refresh = (granted * 4 / 5)
                        .min(granted.saturating_sub(Duration::from_secs(10)))
                        .max(Duration::from_secs(5));
                    t.next_register = Some(now + refresh);
                    t.register_backoff = MIN_BACKOFF;
                    t.auth_tried = false;
                    t.register_error = None;
                }
                Some(r) if (r.status == 401 || r.status == 407) && !t.auth_tried => {
                    let proxy = r.status == 407;
                    let header = if proxy {
                        "Proxy-Authenticate"
                    } else {
                        "WWW-Authenticate"
                    };
                    t.challenge = r.headers.get(header).map(|c| (c.to_owned(), proxy));
                    t.auth_tried = true;
                    t.next_register = Some(now);
                }
                _ => {
                    tracing::warn!(trunk = %t.config.name, %reason, backoff = ?t.register_backoff, "trunk registration failed");
                    t.register_error = Some(reason.clone());
                    t.registered_until = None;
                    t.auth_tried = false;
                    t.challenge = None;
                    t.next_register = Some(now + t.register_backoff);
                    t.register_backoff = (t.register_backoff * 2).min(MAX_BACKOFF);
                }
            },
        }
    }
}

fn registered(t: &State, now: Instant) -> bool {
    t.registered_until.is_some_and(|u| u > now)
}

fn usable(t: &State, now: Instant) -> bool {
    t.health != Health::Down && (!t.config.register || registered(t, now))
}

fn purpose_name(p: Purpose) -> &'static str {
    match p {
        Purpose::Register => "REGISTER",
        Purpose::Keepalive => "OPTIONS",
    }
}

fn target_of(t: &Trunk) -> Target {
    match t.transport {
        TrunkTransport::Udp => Target::udp(t.proxy),
        TrunkTransport::Tcp => Target {
            transport: TransportKind::Tcp,
            addr: t.proxy,
            connection: None,
        },
    }
}

fn granted_expiry(r: &Response) -> Option<Duration> {
    let from_contact = r
        .headers
        .contact
        .iter()
        .filter_map(Contact::address)
        .find_map(|c| {
            c.param("expires")
                .flatten()
                .and_then(|e| e.parse::<u64>().ok())
        });
    let from_header = r
        .headers
        .get("Expires")
        .and_then(|e| e.trim().parse::<u64>().ok());
    // A provider's grant is bounded: a huge one (a bug, or a hostile peer) must
    // not overflow the clock arithmetic of the refresh.
    from_contact
        .or(from_header)
        .filter(|e| *e > 0)
        .map(|e| Duration::from_secs(e.min(MAX_GRANT_S)))
}

/// The longest registration a provider's grant is taken for (a day).
const MAX_GRANT_S: u64 = 24 * 3600;

fn aor(t: &Trunk) -> Option<Uri> {
    let user = t.username.as_deref().unwrap_or("dispatchline");
    Uri::parse(&format!("sip:{user}@{}", t.domain)).ok()
}

fn register_request(t: &mut State, contact: &Uri) -> Request {
    let config = &t.config;
    let aor = aor(config).unwrap_or_else(|| contact.clone());
    let registrar = Uri::parse(&format!("sip:{}", config.domain)).unwrap_or_else(|_| aor.clone());
    let mut request = Request::out_of_dialog(
        Method::Register,
        registrar.clone(),
        NameAddr::new(aor.clone()).with_tag(&format!("r{}", t.register_cseq)),
        NameAddr::new(aor),
        t.register_call_id.clone(),
        t.register_cseq,
    );
    let headers = &mut request.headers;
    headers.contact = vec![Contact::Address(NameAddr::new(contact.clone()))];
    headers.push("Expires", config.register_expires.as_secs().to_string());
    if let (Some((challenge, proxy)), Some(user), Some(password)) =
        (&t.challenge, &config.username, &config.password)
    {
        let cnonce = format!("{:x}", t.register_cseq.wrapping_mul(2_654_435_761));
        if let Some(auth) = digest::answer(
            challenge,
            "REGISTER",
            registrar.as_str(),
            user,
            password,
            &cnonce,
        ) {
            // RFC 3261 §22.3: a proxy's 407 is answered in Proxy-Authorization.
            let header = if *proxy {
                "Proxy-Authorization"
            } else {
                "Authorization"
            };
            headers.push(header, auth);
        }
    }
    request
}

fn options_request(t: &Trunk, cseq: u32) -> Request {
    let uri = Uri::parse(&format!("sip:{}", t.domain)).unwrap_or_else(|_| {
        Uri::sip(
            None,
            &crate::sip::wire::Host::Ip(t.proxy.ip()),
            Some(t.proxy.port()),
        )
    });
    let from = aor(t).unwrap_or_else(|| uri.clone());
    Request::out_of_dialog(
        Method::Options,
        uri.clone(),
        NameAddr::new(from).with_tag(&format!("k{cseq}")),
        NameAddr::new(uri),
        format!("keepalive-{}-{cseq}", t.name),
        cseq,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn trunks(now: Instant) -> Trunks {
        let config = Config::parse(
            "[[trunk]]\nname = \"x\"\nproxy = \"192.0.2.1:5060\"\nregister = true\nusername = \"u\"\npassword = \"p\"\nregister_expires_s = 300\n\n[[trunk]]\nname = \"y\"\nproxy = \"192.0.2.2:5060\"\ninbound_from = [\"192.0.2.3\"]\n",
            Path::new("t"),
        )
        .unwrap();
        Trunks::new(
            &config.trunks,
            now,
            Uri::parse("sip:127.0.0.1:5060").unwrap(),
            "seed",
        )
    }

    #[test]
    fn registers_with_credentials_after_a_challenge_and_refreshes() {
        let t0 = Instant::now();
        let mut t = trunks(t0);
        let (i, p, req, target) = t.poll_request(t0).unwrap();
        assert_eq!((i, p), (0, Purpose::Register));
        assert_eq!(target, Target::udp("192.0.2.1:5060".parse().unwrap()));
        assert!(req.headers.get("Authorization").is_none());
        let mut challenge = req.response(401);
        challenge.headers.push(
            "WWW-Authenticate",
            "Digest realm=\"prov\", nonce=\"n1\", qop=\"auth\"",
        );
        t.handle_response(t0, 0, Purpose::Register, Some(&challenge));
        let (_, _, again, _) = t.poll_request(t0).unwrap();
        let auth = again.headers.get("Authorization").unwrap();
        assert!(
            auth.starts_with("Digest username=\"u\", realm=\"prov\""),
            "{auth}"
        );
        assert_eq!(again.headers.cseq.seq, 2);
        assert_eq!(
            again.headers.call_id, req.headers.call_id,
            "one Call-ID per registration"
        );
        t.handle_response(t0, 0, Purpose::Register, Some(&again.response(200)));
        assert!(t.is_registered("x", t0));
        // 300 s granted: refresh at 240 s.
        let next = t.trunks[0].next_register.unwrap();
        assert_eq!(next - t0, Duration::from_secs(240));
    }

    #[test]
    fn a_huge_grant_is_taken_for_a_day_and_panics_nothing() {
        let t0 = Instant::now();
        let mut t = trunks(t0);
        let (_, _, req, _) = t.poll_request(t0).unwrap();
        let mut ok = req.response(200);
        ok.headers.push("Expires", u64::MAX.to_string());
        t.handle_response(t0, 0, Purpose::Register, Some(&ok));
        assert!(t.is_registered("x", t0));
        let next = t.trunks[0].next_register.unwrap();
        assert_eq!(next - t0, Duration::from_secs(24 * 3600 * 4 / 5));
    }

    #[test]
    fn failures_back_off_and_mark_the_trunk_down() {
        let t0 = Instant::now();
        let mut t = trunks(t0);
        t.poll_request(t0);
        t.handle_response(t0, 0, Purpose::Register, None);
        assert_eq!(t.health("x"), Health::Down);
        assert_eq!(t.take_changes()[0].health, Health::Down);
        assert_eq!(t.trunks[0].next_register, Some(t0 + Duration::from_secs(5)));
        t.poll_request(t0 + Duration::from_secs(5));
        t.handle_response(t0 + Duration::from_secs(5), 0, Purpose::Register, None);
        assert_eq!(
            t.trunks[0].next_register,
            Some(t0 + Duration::from_secs(15)),
            "backoff doubles"
        );
        assert_eq!(
            t.failover_order(Some("x"), t0),
            vec!["y", "x"],
            "a down trunk goes last"
        );
    }

    #[test]
    fn a_proxy_challenge_is_answered_in_proxy_authorization() {
        let t0 = Instant::now();
        let mut t = trunks(t0);
        let (_, _, req, _) = t.poll_request(t0).unwrap();
        let mut challenge = req.response(407);
        challenge.headers.push(
            "Proxy-Authenticate",
            "Digest realm=\"prov\", nonce=\"n1\", qop=\"auth\"",
        );
        t.handle_response(t0, 0, Purpose::Register, Some(&challenge));
        let (_, _, again, _) = t.poll_request(t0).unwrap();
        assert!(again.headers.get("Authorization").is_none());
        let auth = again.headers.get("Proxy-Authorization").unwrap();
        assert!(auth.starts_with("Digest username=\"u\""), "{auth}");
    }

    #[test]
    fn a_trunk_whose_registration_is_refused_is_not_used_first() {
        let t0 = Instant::now();
        let mut t = trunks(t0);
        assert_eq!(
            t.failover_order(Some("x"), t0),
            vec!["y", "x"],
            "not registered yet"
        );
        let (_, _, req, _) = t.poll_request(t0).unwrap();
        // The provider answers (so the trunk is up) but refuses the credentials.
        t.handle_response(t0, 0, Purpose::Register, Some(&req.response(403)));
        assert_eq!(t.health("x"), Health::Up);
        assert_eq!(t.failover_order(Some("x"), t0), vec!["y", "x"]);
        let wall = Utc::now();
        let x = &t.views(t0, wall)[0];
        assert_eq!(x.since, Some(wall), "up since the first answer");
        assert_eq!((x.registered, x.usable), (Some(false), false));
        assert!(
            x.register_error.as_deref().unwrap().contains("403"),
            "{x:?}"
        );
        // Registered: preferred again.
        let at = t0 + Duration::from_secs(5);
        let (_, _, req, _) = t.poll_request(at).unwrap();
        t.handle_response(at, 0, Purpose::Register, Some(&req.response(200)));
        assert_eq!(t.failover_order(Some("x"), at), vec!["x", "y"]);
        assert_eq!(t.views(at, wall)[0].registered, Some(true));
        let later = t.views(at, wall);
        assert_eq!(later[1].registered, None, "y does not register");
        assert_eq!(later[1].since, None, "y was never probed");
        assert_eq!(
            later[0].since,
            Some(wall - chrono::Duration::seconds(5)),
            "x has been up since t0"
        );
    }

    #[test]
    fn keepalives_and_sources() {
        let t0 = Instant::now();
        let mut t = trunks(t0);
        let mut kinds = Vec::new();
        while let Some((i, p, _, _)) = t.poll_request(t0) {
            kinds.push((i, p));
        }
        assert_eq!(
            kinds,
            vec![
                (0, Purpose::Register),
                (0, Purpose::Keepalive),
                (1, Purpose::Keepalive)
            ]
        );
        t.handle_response(t0, 1, Purpose::Keepalive, None);
        assert_eq!(t.health("y"), Health::Down);
        assert_eq!(t.trunk_of_source("192.0.2.3".parse().unwrap()), Some("y"));
        assert_eq!(t.trunk_of_source("192.0.2.2".parse().unwrap()), Some("y"));
        assert_eq!(t.trunk_of_source("198.51.100.1".parse().unwrap()), None);
    }
}
