//! Admission at the transport's edge, before the call core sees a request: a
//! flood from some addresses must leave the calls of the others unharmed.
//!
//! Owns per-source token buckets, one per class of request (new INVITEs,
//! authenticated REGISTERs, OPTIONS, unauthenticated requests, and everything
//! else such as in-dialog requests), a bucket for all untrusted traffic together,
//! and the set of trusted sources: the trunks' and `[sip] inbound_from`
//! addresses, and the flows (address, port, transport) of registered softphones.
//! Trusted sources have their own admission: the untrusted buckets never hold
//! them back, so no flood from elsewhere can exhaust their budget. A request over
//! its budget is dropped unanswered (counted). Responses always pass: they belong
//! to transactions the engine started.
//!
//! Sans-IO: time is passed in. The table of buckets is bounded (idle buckets are
//! forgotten first).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::sip::wire::{Method, Request};

/// A rate with a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Sustained requests per second.
    pub per_second: f64,
    /// How many may come at once.
    pub burst: f64,
}

impl Rate {
    /// `per_second` with a burst of twice that (at least 1).
    pub fn per_second(per_second: u32) -> Self {
        let r = f64::from(per_second.max(1));
        Self {
            per_second: r,
            burst: (2.0 * r).max(1.0),
        }
    }
}

/// The edge's limits for untrusted sources.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeLimits {
    /// New INVITEs per source.
    pub invite: Rate,
    /// REGISTERs with credentials per source.
    pub register: Rate,
    /// OPTIONS per source.
    pub options: Rate,
    /// Requests without credentials that start something (a REGISTER without
    /// Authorization, SUBSCRIBE, MESSAGE, ...) per source.
    pub unauthenticated: Rate,
    /// Everything else (ACK, BYE, CANCEL, in-dialog requests) per source.
    pub other: Rate,
    /// All requests from untrusted sources together.
    pub untrusted_total: Rate,
    /// TCP connections one untrusted address may hold.
    pub tcp_per_source: usize,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        Self {
            invite: Rate::per_second(10),
            register: Rate::per_second(10),
            options: Rate::per_second(2),
            unauthenticated: Rate::per_second(10),
            other: Rate::per_second(200),
            untrusted_total: Rate::per_second(2000),
            tcp_per_source: 32,
        }
    }
}

/// The class a request is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// A new INVITE (no To tag).
    Invite,
    /// A REGISTER with credentials.
    Register,
    /// OPTIONS outside a dialog.
    Options,
    /// A request outside a dialog without credentials.
    Unauthenticated,
    /// Anything else.
    Other,
}

impl Class {
    /// The class of `request`.
    pub fn of(request: &Request) -> Self {
        let in_dialog = request.headers.to.tag().is_some();
        let credentials = request.headers.get("Authorization").is_some()
            || request.headers.get("Proxy-Authorization").is_some();
        match request.method {
            Method::Invite if !in_dialog => Class::Invite,
            Method::Register if credentials => Class::Register,
            Method::Options if !in_dialog => Class::Options,
            Method::Ack | Method::Bye | Method::Cancel => Class::Other,
            _ if in_dialog => Class::Other,
            _ => Class::Unauthenticated,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Self {
        Self {
            tokens: rate.burst,
            last: now,
        }
    }

    fn take(&mut self, rate: Rate, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Buckets remembered at most.
const MAX_BUCKETS: usize = 65_536;

/// The edge's state.
#[derive(Debug)]
pub struct Edge {
    limits: EdgeLimits,
    trusted_ips: HashSet<IpAddr>,
    trusted_flows: HashSet<SocketAddr>,
    buckets: HashMap<(IpAddr, Class), Bucket>,
    total: Option<Bucket>,
    dropped: u64,
}

impl Edge {
    /// An edge with `limits`, trusting `trusted` addresses.
    pub fn new(limits: EdgeLimits, trusted: impl IntoIterator<Item = IpAddr>) -> Self {
        Self {
            limits,
            trusted_ips: trusted.into_iter().collect(),
            trusted_flows: HashSet::new(),
            buckets: HashMap::new(),
            total: None,
            dropped: 0,
        }
    }

    /// The limits.
    pub fn limits(&self) -> &EdgeLimits {
        &self.limits
    }

    /// Replaces the trusted flows (registered softphones).
    pub fn set_trusted_flows(&mut self, flows: impl IntoIterator<Item = SocketAddr>) {
        self.trusted_flows = flows.into_iter().collect();
    }

    /// Whether `source` is trusted (its address, or its very flow).
    pub fn is_trusted(&self, source: SocketAddr) -> bool {
        self.trusted_ips.contains(&source.ip()) || self.trusted_flows.contains(&source)
    }

    /// Whether the address is trusted as a whole (a trunk, `inbound_from`).
    pub fn is_trusted_ip(&self, ip: IpAddr) -> bool {
        self.trusted_ips.contains(&ip)
    }

    /// Requests dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether a request of `class` from `source` may pass now.
    pub fn admit(&mut self, now: Instant, source: SocketAddr, class: Class) -> bool {
        if self.is_trusted(source) {
            return true;
        }
        let rate = match class {
            Class::Invite => self.limits.invite,
            Class::Register => self.limits.register,
            Class::Options => self.limits.options,
            Class::Unauthenticated => self.limits.unauthenticated,
            Class::Other => self.limits.other,
        };
        if self.buckets.len() >= MAX_BUCKETS {
            self.buckets
                .retain(|_, b| now.saturating_duration_since(b.last) < Duration::from_secs(10));
            if self.buckets.len() >= MAX_BUCKETS {
                self.buckets.clear();
            }
        }
        let own = self
            .buckets
            .entry((source.ip(), class))
            .or_insert_with(|| Bucket::full(rate, now))
            .take(rate, now);
        let total_rate = self.limits.untrusted_total;
        let total = own
            && self
                .total
                .get_or_insert_with(|| Bucket::full(total_rate, now))
                .take(total_rate, now);
        if !total {
            self.dropped = self.dropped.saturating_add(1);
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(last: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, last], port))
    }

    #[test]
    fn a_flooding_source_is_held_to_its_rate_and_trusted_ones_never() {
        let limits = EdgeLimits::default();
        let mut edge = Edge::new(limits.clone(), [IpAddr::from([127, 0, 0, 1])]);
        let t0 = Instant::now();
        let passed = (0..1000)
            .filter(|_| edge.admit(t0, addr(9, 5060), Class::Invite))
            .count();
        assert_eq!(passed, limits.invite.burst as usize);
        assert!(edge.admit(t0, addr(8, 5060), Class::Invite), "per source");
        assert!((0..1000).all(|_| edge.admit(t0, addr(1, 5060), Class::Invite)));
        // A second later the flooder has a second's worth again.
        let t1 = t0 + Duration::from_secs(1);
        let passed = (0..1000)
            .filter(|_| edge.admit(t1, addr(9, 5060), Class::Invite))
            .count();
        assert_eq!(passed, limits.invite.per_second as usize);
        // A registered softphone's flow is trusted; its address's other ports not.
        edge.set_trusted_flows([addr(7, 5062)]);
        assert!((0..100).all(|_| edge.admit(t1, addr(7, 5062), Class::Options)));
        let other = (0..100)
            .filter(|_| edge.admit(t1, addr(7, 5063), Class::Options))
            .count();
        assert_eq!(other, limits.options.burst as usize);
        assert!(edge.dropped() > 0);
    }

    #[test]
    fn many_sources_together_are_held_to_the_total() {
        let limits = EdgeLimits {
            untrusted_total: Rate::per_second(100),
            ..EdgeLimits::default()
        };
        let mut edge = Edge::new(limits, []);
        let t0 = Instant::now();
        let passed = (0..250u8)
            .filter(|i| edge.admit(t0, addr(*i, 5060), Class::Invite))
            .count();
        assert_eq!(passed, 200);
    }
}
