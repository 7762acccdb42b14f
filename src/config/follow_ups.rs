//! The follow-up policy: the calls the engine makes after a ticket was handed over.
//!
//! Owns the `[follow_ups]` section and its `[[follow_ups.policy]]` overrides: how
//! often and how the executor is asked for a ticket's status, whether and when the
//! resident is asked for feedback, how often a resource supplier is asked about a
//! ticket handed to them, the quiet hours, how an outage broadcast retries a number,
//! and when a job whose deadline is near raises a supervisor event. The first status
//! check comes `[dialer] status_check_delay_s` after acceptance (the key the file
//! always had); `[dialer] broadcast_rate` and `inbound_reserve` pace broadcasts.
//!
//! An override names a tenant, a ticket category, or both, exactly as a
//! `[[chains.policy]]` does (the most specific one wins, key by key).

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::Faults;
use super::chains::{Scoped, applicable, reach, scope, timer};
pub use crate::config::chains::Reach;
use crate::dialer::quiet_hours::QuietHours;

/// The most status checks or supplier queries a policy may ask for per ticket.
pub const MAX_FOLLOW_UPS: u32 = 48;

/// The resolved follow-up policy of one ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUpPolicy {
    /// Status checks per ticket (0: none).
    pub status_checks: u32,
    /// How the executor is reached for a status check.
    pub status_check_reach: Reach,
    /// From acceptance to the first status check.
    pub status_check_delay: Duration,
    /// Between two status checks.
    pub status_check_interval: Duration,
    /// Whether the resident is asked for feedback when the ticket is done.
    pub feedback: bool,
    /// From `done` to the feedback call.
    pub feedback_delay: Duration,
    /// When a supplier's dispatcher gave no time to call back, how long after a
    /// hand-over or a query the supplier is asked again.
    pub supplier_recheck: Duration,
    /// Status queries to a supplier per hand-over.
    pub supplier_queries: u32,
}

/// `[follow_ups]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct FollowUpSettings {
    /// What applies when no override matches.
    pub defaults: FollowUpPolicy,
    /// Overrides, in file order.
    pub overrides: Vec<FollowUpOverride>,
    /// When no call that is not an emergency rings (each city's own zone).
    pub quiet_hours: QuietHours,
    /// Tries per number of an outage broadcast.
    pub broadcast_attempts: u32,
    /// Pause before a broadcast number that was busy or did not answer is tried again.
    pub broadcast_retry: Duration,
    /// Broadcast calls started per second, at most.
    pub broadcast_rate: f64,
    /// Channels kept free for residents' incoming calls while broadcasting.
    pub inbound_reserve: u32,
    /// A job not yet made when this share of the time to its deadline has passed
    /// raises `dial.deadline-at-risk` for supervisors (0.75: three quarters).
    pub at_risk_share: f64,
}

impl FollowUpSettings {
    /// The policy for a ticket of `tenant` in `category`.
    pub fn policy(&self, tenant: &str, category: &str) -> FollowUpPolicy {
        let mut policy = self.defaults.clone();
        for table in applicable(&self.overrides, tenant, category) {
            table.keys.apply(&mut policy);
        }
        policy
    }
}

/// One `[[follow_ups.policy]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FollowUpOverride {
    /// The tenant it applies to (all when `None`).
    pub tenant: Option<String>,
    /// The ticket category it applies to (all when `None`).
    pub category: Option<String>,
    /// The keys it sets.
    pub keys: FollowUpKeys,
}

impl Scoped for FollowUpOverride {
    fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }
    fn category(&self) -> Option<&str> {
        self.category.as_deref()
    }
}

/// The keys a policy table may set; `None` leaves the key to a less specific table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FollowUpKeys {
    /// See [`FollowUpPolicy::status_checks`].
    pub status_checks: Option<u32>,
    /// See [`FollowUpPolicy::status_check_reach`].
    pub status_check_reach: Option<Reach>,
    /// See [`FollowUpPolicy::status_check_delay`].
    pub status_check_delay: Option<Duration>,
    /// See [`FollowUpPolicy::status_check_interval`].
    pub status_check_interval: Option<Duration>,
    /// See [`FollowUpPolicy::feedback`].
    pub feedback: Option<bool>,
    /// See [`FollowUpPolicy::feedback_delay`].
    pub feedback_delay: Option<Duration>,
    /// See [`FollowUpPolicy::supplier_recheck`].
    pub supplier_recheck: Option<Duration>,
    /// See [`FollowUpPolicy::supplier_queries`].
    pub supplier_queries: Option<u32>,
}

impl FollowUpKeys {
    fn apply(&self, to: &mut FollowUpPolicy) {
        macro_rules! set {
            ($($key:ident),*) => { $( if let Some(v) = self.$key { to.$key = v; } )* };
        }
        set!(
            status_checks,
            status_check_reach,
            status_check_delay,
            status_check_interval,
            feedback,
            feedback_delay,
            supplier_recheck,
            supplier_queries
        );
    }
}

// ---------------------------------------------------------------------------------
// The file format.

/// `[follow_ups]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawFollowUps {
    status_checks: u32,
    status_check_reach: Spanned<String>,
    status_check_interval_s: Option<u64>,
    feedback: bool,
    feedback_delay_s: u64,
    supplier_recheck_s: u64,
    supplier_queries: u32,
    quiet_hours: Spanned<String>,
    broadcast_attempts: u32,
    broadcast_retry_s: u64,
    at_risk_percent: u32,
    policy: Vec<Spanned<RawPolicy>>,
}

impl Default for RawFollowUps {
    fn default() -> Self {
        Self {
            status_checks: 3,
            status_check_reach: Spanned::new(0..0, "operator-first".into()),
            status_check_interval_s: None,
            feedback: true,
            feedback_delay_s: 1800,
            supplier_recheck_s: 4 * 3600,
            supplier_queries: 6,
            quiet_hours: Spanned::new(0..0, "21:00-09:00".into()),
            broadcast_attempts: 2,
            broadcast_retry_s: 600,
            at_risk_percent: 75,
            policy: Vec::new(),
        }
    }
}

/// `[[follow_ups.policy]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    tenant: Option<String>,
    category: Option<Spanned<String>>,
    status_checks: Option<u32>,
    status_check_reach: Option<Spanned<String>>,
    status_check_delay_s: Option<u64>,
    status_check_interval_s: Option<u64>,
    feedback: Option<bool>,
    feedback_delay_s: Option<u64>,
    supplier_recheck_s: Option<u64>,
    supplier_queries: Option<u32>,
}

/// The `[dialer]` keys follow-ups read.
pub(super) struct DialerKeys {
    pub status_check_delay_s: u64,
    pub broadcast_rate: f64,
    pub inbound_reserve: u32,
}

/// The most broadcast calls per second a configuration may ask for.
pub const MAX_BROADCAST_RATE: f64 = 200.0;

fn count(value: u32, key: &str, faults: &mut Faults<'_>) -> u32 {
    if value > MAX_FOLLOW_UPS {
        faults.at(
            None,
            format!("{key} = {value} must be at most {MAX_FOLLOW_UPS}"),
        );
    }
    value.min(MAX_FOLLOW_UPS)
}

/// Validates `[follow_ups]` with the `[dialer]` keys it reads.
pub(super) fn validate(
    raw: RawFollowUps,
    dialer: &DialerKeys,
    faults: &mut Faults<'_>,
) -> FollowUpSettings {
    let delay = timer(
        dialer.status_check_delay_s,
        "[dialer] status_check_delay_s",
        1,
        faults,
    );
    let defaults = FollowUpPolicy {
        status_checks: count(raw.status_checks, "[follow_ups] status_checks", faults),
        status_check_reach: reach(
            &raw.status_check_reach,
            "[follow_ups] status_check_reach",
            faults,
        )
        .unwrap_or(Reach::OperatorFirst),
        status_check_delay: delay,
        status_check_interval: raw
            .status_check_interval_s
            .map(|v| timer(v, "[follow_ups] status_check_interval_s", 60, faults))
            .unwrap_or(delay),
        feedback: raw.feedback,
        feedback_delay: timer(
            raw.feedback_delay_s,
            "[follow_ups] feedback_delay_s",
            0,
            faults,
        ),
        supplier_recheck: timer(
            raw.supplier_recheck_s,
            "[follow_ups] supplier_recheck_s",
            60,
            faults,
        ),
        supplier_queries: count(
            raw.supplier_queries,
            "[follow_ups] supplier_queries",
            faults,
        ),
    };
    let quiet_hours = raw
        .quiet_hours
        .get_ref()
        .parse::<QuietHours>()
        .unwrap_or_else(|e| {
            faults.at(
                Some(&raw.quiet_hours.span()),
                format!("[follow_ups] quiet_hours: {e}"),
            );
            QuietHours::night()
        });
    if !(1..=super::chains::MAX_ATTEMPTS).contains(&raw.broadcast_attempts) {
        faults.at(
            None,
            format!(
                "[follow_ups] broadcast_attempts = {} must be between 1 and {}",
                raw.broadcast_attempts,
                super::chains::MAX_ATTEMPTS
            ),
        );
    }
    let rate = dialer.broadcast_rate;
    if !rate.is_finite() || !(0.1..=MAX_BROADCAST_RATE).contains(&rate) {
        faults.at(
            None,
            format!("[dialer] broadcast_rate = {rate} must be between 0.1 and {MAX_BROADCAST_RATE} calls per second"),
        );
    }
    if !(1..=100).contains(&raw.at_risk_percent) {
        faults.at(
            None,
            format!(
                "[follow_ups] at_risk_percent = {} must be between 1 and 100",
                raw.at_risk_percent
            ),
        );
    }
    let mut overrides = Vec::new();
    for entry in &raw.policy {
        let p = entry.get_ref();
        let key = |k: &str| format!("[[follow_ups.policy]] {k}");
        let (tenant, category) = scope(
            entry,
            p.tenant.as_deref(),
            p.category.as_ref(),
            "[[follow_ups.policy]]",
            "[follow_ups]",
            faults,
        );
        let keys = FollowUpKeys {
            status_checks: p
                .status_checks
                .map(|v| count(v, &key("status_checks"), faults)),
            status_check_reach: p
                .status_check_reach
                .as_ref()
                .and_then(|r| reach(r, &key("status_check_reach"), faults)),
            status_check_delay: p
                .status_check_delay_s
                .map(|v| timer(v, &key("status_check_delay_s"), 1, faults)),
            status_check_interval: p
                .status_check_interval_s
                .map(|v| timer(v, &key("status_check_interval_s"), 60, faults)),
            feedback: p.feedback,
            feedback_delay: p
                .feedback_delay_s
                .map(|v| timer(v, &key("feedback_delay_s"), 0, faults)),
            supplier_recheck: p
                .supplier_recheck_s
                .map(|v| timer(v, &key("supplier_recheck_s"), 60, faults)),
            supplier_queries: p
                .supplier_queries
                .map(|v| count(v, &key("supplier_queries"), faults)),
        };
        overrides.push(FollowUpOverride {
            tenant,
            category,
            keys,
        });
    }
    FollowUpSettings {
        defaults,
        overrides,
        quiet_hours,
        broadcast_attempts: raw.broadcast_attempts.clamp(1, super::chains::MAX_ATTEMPTS),
        broadcast_retry: timer(
            raw.broadcast_retry_s,
            "[follow_ups] broadcast_retry_s",
            0,
            faults,
        ),
        broadcast_rate: if rate.is_finite() {
            rate.clamp(0.1, MAX_BROADCAST_RATE)
        } else {
            1.0
        },
        inbound_reserve: dialer.inbound_reserve,
        at_risk_share: f64::from(raw.at_risk_percent.clamp(1, 100)) / 100.0,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn parse(extra: &str) -> Result<Config, String> {
        let text = format!(
            "[[number]]\nnumber = \"100\"\nkind = \"forward\"\ntarget = \"sip:127.0.0.1:5080\"\n{extra}"
        );
        Config::parse(&text, Path::new("t.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_law_gives_the_defaults() {
        let config = parse("").unwrap();
        let f = &config.follow_ups;
        let p = f.policy("etalon", "emergency");
        assert_eq!(p.status_checks, 3);
        assert_eq!(p.status_check_reach, Reach::OperatorFirst);
        assert_eq!(p.status_check_delay, Duration::from_secs(7200));
        assert_eq!(p.status_check_interval, Duration::from_secs(7200));
        assert!(p.feedback);
        assert_eq!(f.quiet_hours.to_string(), "21:00-09:00");
        assert_eq!(f.broadcast_rate, 5.0);
        assert_eq!(f.inbound_reserve, 4);
        assert_eq!(f.at_risk_share, 0.75);
    }

    #[test]
    fn overrides_and_bad_keys() {
        let config = parse(
            r#"
[dialer]
status_check_delay_s = 600
[follow_ups]
quiet_hours = "22:00-08:00"
[[follow_ups.policy]]
category = "planned"
status_check_reach = "informer"
status_checks = 1
[[follow_ups.policy]]
tenant = "uyut"
category = "planned"
feedback = false
"#,
        )
        .unwrap();
        let f = &config.follow_ups;
        let p = f.policy("uyut", "planned");
        assert_eq!(
            (p.status_check_reach, p.status_checks, p.feedback),
            (Reach::Informer, 1, false)
        );
        assert_eq!(p.status_check_delay, Duration::from_secs(600));
        assert!(f.policy("etalon", "planned").feedback);
        assert_eq!(
            f.policy("etalon", "emergency").status_check_reach,
            Reach::OperatorFirst
        );
        let err = parse(
            r#"
[dialer]
broadcast_rate = 0
[follow_ups]
quiet_hours = "night"
status_checks = 1000
at_risk_percent = 0
[[follow_ups.policy]]
status_check_reach = "carrier-pigeon"
"#,
        )
        .unwrap_err();
        for needle in [
            "broadcast_rate = 0",
            "quiet_hours",
            "status_checks = 1000",
            "at_risk_percent",
            "needs a tenant, a category",
            "carrier-pigeon",
        ] {
            assert!(err.contains(needle), "{needle} in {err}");
        }
    }
}
