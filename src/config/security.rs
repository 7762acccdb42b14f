//! The `[security]` section: how password guessing is slowed and banned
//! ([`crate::guard`]), whether the shipped example passwords may be used, the
//! checks `serve` makes of the credentials it starts with, and the callback dial
//! plan (which numbers the engine may call back through the paid trunk, and how
//! often: see [`crate::call::toll`]).
//!
//! Every duration is bounded here, so nothing later can overflow with it.

use std::time::Duration;

use serde::Deserialize;

use super::{Faults, Operator, Trunk};
use crate::guard::GuardPolicy;

/// The passwords the shipped configuration and its comments show. `serve`
/// refuses to start while an account or trunk uses one (unless `--demo` or
/// `allow_example_credentials`).
pub const EXAMPLE_PASSWORDS: &[&str] = &[
    "op1001pass",
    "op1002pass",
    "op1003pass",
    "sup2001pass",
    "change-me",
];

/// Passwords shorter than this draw a warning.
pub const MIN_PASSWORD_LEN: usize = 12;

/// `[security]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct SecuritySettings {
    /// Start even with the shipped example passwords (a lab, a demo).
    pub allow_example_credentials: bool,
    /// Back-off and bans for SIP digest authentication.
    pub sip_auth: GuardPolicy,
    /// Back-off and bans for console logins.
    pub console_auth: GuardPolicy,
    /// The numbers callbacks may go to.
    pub callback_plan: DialPlan,
    /// Callbacks to one number per hour at most.
    pub callbacks_per_number_hour: u32,
    /// Callbacks scheduled per minute at most, all numbers together.
    pub callbacks_per_minute: u32,
    /// Per-source limits at the SIP transport's edge for untrusted sources.
    pub edge: crate::sip::transport::edge::EdgeLimits,
    /// The bearer token `/metrics` asks for (empty: `/metrics` is open).
    pub metrics_token: String,
    /// Calls in progress one address may have (trunks and `[sip] inbound_from`
    /// excepted): a registered softphone, or a stranger who got through.
    pub calls_per_source: usize,
}

/// Which numbers the engine may call back: a number matching a refused pattern
/// never, else one matching an allowed pattern. A pattern is a normalised number
/// (`+7…`) where `X` stands for any digit; it matches numbers of its length only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialPlan {
    /// Patterns a callback may go to.
    pub allow: Vec<String>,
    /// Patterns it never goes to (premium ranges inside an allowed one).
    pub refuse: Vec<String>,
}

impl DialPlan {
    /// Whether `number` (normalised) may be called back.
    pub fn permits(&self, number: &str) -> bool {
        !self.refuse.iter().any(|p| pattern_matches(p, number))
            && self.allow.iter().any(|p| pattern_matches(p, number))
    }
}

fn pattern_matches(pattern: &str, number: &str) -> bool {
    pattern.len() == number.len()
        && pattern
            .bytes()
            .zip(number.bytes())
            .all(|(p, n)| (p == b'X' && n.is_ascii_digit()) || p == n)
}

fn valid_pattern(p: &str) -> bool {
    let body = p.strip_prefix('+').unwrap_or(p);
    !body.is_empty() && body.len() <= 15 && body.bytes().all(|b| b.is_ascii_digit() || b == b'X')
}

impl Default for SecuritySettings {
    fn default() -> Self {
        validate(RawSecurity::default(), None)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSecurity {
    allow_example_credentials: bool,
    auth_free_failures: u32,
    auth_backoff_max_s: u64,
    auth_ban_after: u32,
    auth_ban_s: u64,
    login_ban_after: u32,
    callback_numbers: Vec<String>,
    callback_refused: Vec<String>,
    callbacks_per_number_hour: u32,
    callbacks_per_minute: u32,
    source_invite_rate: u32,
    source_register_rate: u32,
    source_options_rate: u32,
    source_unauthenticated_rate: u32,
    untrusted_rate: u32,
    tcp_per_source: u32,
    metrics_token: String,
    calls_per_source: u32,
}

impl Default for RawSecurity {
    fn default() -> Self {
        Self {
            allow_example_credentials: false,
            auth_free_failures: 3,
            auth_backoff_max_s: 60,
            auth_ban_after: 10,
            auth_ban_s: 900,
            login_ban_after: 10,
            // Russian geographic (3xx, 4xx, 8xx) and mobile (9xx) numbers.
            callback_numbers: ["+73", "+74", "+78", "+79"]
                .map(|p| format!("{p}XXXXXXXXX"))
                .to_vec(),
            // Premium-rate ranges inside 8xx.
            callback_refused: ["+7809", "+7803"].map(|p| format!("{p}XXXXXXX")).to_vec(),
            callbacks_per_number_hour: 3,
            callbacks_per_minute: 60,
            source_invite_rate: 10,
            source_register_rate: 10,
            source_options_rate: 2,
            source_unauthenticated_rate: 10,
            untrusted_rate: 2000,
            tcp_per_source: 32,
            metrics_token: String::new(),
            calls_per_source: 8,
        }
    }
}

/// Bounds: (key, value, lowest, highest).
fn bounded(key: &str, value: u64, lo: u64, hi: u64, faults: &mut Option<&mut Faults<'_>>) -> u64 {
    if (lo..=hi).contains(&value) {
        return value;
    }
    if let Some(f) = faults.as_deref_mut() {
        f.at(None, format!("[security] {key} must be {lo} to {hi}"));
    }
    value.clamp(lo, hi)
}

pub(super) fn validate(raw: RawSecurity, mut faults: Option<&mut Faults<'_>>) -> SecuritySettings {
    let free = bounded(
        "auth_free_failures",
        u64::from(raw.auth_free_failures),
        0,
        100,
        &mut faults,
    ) as u32;
    let max_backoff = bounded(
        "auth_backoff_max_s",
        raw.auth_backoff_max_s,
        1,
        3600,
        &mut faults,
    );
    let ban_after = bounded(
        "auth_ban_after",
        u64::from(raw.auth_ban_after),
        1,
        10_000,
        &mut faults,
    ) as u32;
    let ban_s = bounded("auth_ban_s", raw.auth_ban_s, 1, 86_400, &mut faults);
    let login_ban_after = bounded(
        "login_ban_after",
        u64::from(raw.login_ban_after),
        1,
        10_000,
        &mut faults,
    ) as u32;
    let sip_auth = GuardPolicy {
        free_failures: free,
        base_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(max_backoff),
        ban_after,
        ban_for: Duration::from_secs(ban_s),
        forget_after: Duration::from_secs(ban_s.max(900)),
    };
    for p in raw.callback_numbers.iter().chain(&raw.callback_refused) {
        if !valid_pattern(p) {
            if let Some(f) = faults.as_deref_mut() {
                f.at(
                    None,
                    format!(
                        "[security] callback pattern `{p}` is not digits and X after an optional +"
                    ),
                );
            }
        }
    }
    let per_number = bounded(
        "callbacks_per_number_hour",
        u64::from(raw.callbacks_per_number_hour),
        1,
        100,
        &mut faults,
    ) as u32;
    let per_minute = bounded(
        "callbacks_per_minute",
        u64::from(raw.callbacks_per_minute),
        1,
        100_000,
        &mut faults,
    ) as u32;
    let mut rate = |key: &str, value: u32| {
        crate::sip::transport::edge::Rate::per_second(bounded(
            key,
            u64::from(value),
            1,
            1_000_000,
            &mut faults,
        ) as u32)
    };
    let edge = crate::sip::transport::edge::EdgeLimits {
        invite: rate("source_invite_rate", raw.source_invite_rate),
        register: rate("source_register_rate", raw.source_register_rate),
        options: rate("source_options_rate", raw.source_options_rate),
        unauthenticated: rate(
            "source_unauthenticated_rate",
            raw.source_unauthenticated_rate,
        ),
        untrusted_total: rate("untrusted_rate", raw.untrusted_rate),
        tcp_per_source: bounded(
            "tcp_per_source",
            u64::from(raw.tcp_per_source),
            1,
            100_000,
            &mut faults,
        ) as usize,
        ..crate::sip::transport::edge::EdgeLimits::default()
    };
    SecuritySettings {
        edge,
        metrics_token: raw.metrics_token,
        calls_per_source: bounded(
            "calls_per_source",
            u64::from(raw.calls_per_source),
            1,
            100_000,
            &mut faults,
        ) as usize,
        allow_example_credentials: raw.allow_example_credentials,
        sip_auth,
        console_auth: GuardPolicy {
            ban_after: login_ban_after,
            ..sip_auth
        },
        callback_plan: DialPlan {
            allow: raw.callback_numbers,
            refuse: raw.callback_refused,
        },
        callbacks_per_number_hour: per_number,
        callbacks_per_minute: per_minute,
    }
}

impl super::Config {
    /// The addresses the SIP edge trusts as a whole: every trunk's, `[sip]
    /// inbound_from`, and loopback when no trunk is configured (as the call core
    /// lets it call in).
    pub fn edge_trusted(&self) -> Vec<std::net::IpAddr> {
        let mut out: Vec<std::net::IpAddr> = self
            .trunks
            .iter()
            .flat_map(|t| t.inbound_from.iter().copied())
            .chain(self.sip.inbound_from.iter().copied())
            .collect();
        if self.trunks.is_empty() {
            out.extend([
                std::net::IpAddr::from([127, 0, 0, 1]),
                std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ]);
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// What is wrong with the credentials a configuration starts with: `(refusals,
/// warnings)`. A refusal is a shipped example password; a warning a password
/// shorter than [`MIN_PASSWORD_LEN`].
pub fn credential_faults(operators: &[Operator], trunks: &[Trunk]) -> (Vec<String>, Vec<String>) {
    let mut refusals = Vec::new();
    let mut warnings = Vec::new();
    let mut check = |who: String, password: &str| {
        if password.is_empty() {
            return;
        }
        if EXAMPLE_PASSWORDS.contains(&password) {
            refusals.push(format!("{who} uses the shipped example password"));
        } else if password.chars().count() < MIN_PASSWORD_LEN {
            warnings.push(format!(
                "{who} has a password shorter than {MIN_PASSWORD_LEN} characters"
            ));
        }
    };
    for o in operators {
        check(format!("[[operator]] {}", o.extension), &o.password);
    }
    for t in trunks {
        if let Some(password) = &t.password {
            check(format!("[[trunk]] {}", t.name), password);
        }
    }
    (refusals, warnings)
}

/// Whether stored softphone credentials (HA1s of `realm`) are those of a shipped
/// example password.
pub fn is_example_secret(
    extension: &str,
    realm: &str,
    secret: &crate::sip::digest::DigestSecret,
) -> bool {
    use crate::sip::digest::{Algorithm, DigestSecret};
    match secret {
        DigestSecret::Password(p) => EXAMPLE_PASSWORDS.contains(&p.as_str()),
        DigestSecret::Ha1 { realm: r, md5, .. } => {
            r == realm
                && EXAMPLE_PASSWORDS.iter().any(|p| {
                    Algorithm::Md5
                        .hex(&format!("{extension}:{realm}:{p}"))
                        .eq_ignore_ascii_case(md5)
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_and_short_passwords_are_found() {
        let op = |ext: &str, pw: &str| Operator {
            extension: ext.into(),
            name: String::new(),
            password: pw.into(),
            sip: None,
            role: crate::config::Role::Operator,
            tenants: vec![],
            cities: vec![],
            auto_answer: false,
        };
        let (refusals, warnings) = credential_faults(
            &[
                op("1001", "op1001pass"),
                op("1002", "short-pw"),
                op("1003", "a long enough passphrase"),
            ],
            &[],
        );
        assert_eq!(refusals.len(), 1, "{refusals:?}");
        assert!(refusals[0].contains("1001"));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("1002"));
        let ha1 = crate::sip::digest::DigestSecret::Ha1 {
            realm: "r".into(),
            md5: crate::sip::digest::Algorithm::Md5.hex("1001:r:op1001pass"),
            sha256: String::new(),
        };
        assert!(is_example_secret("1001", "r", &ha1));
        assert!(!is_example_secret("1002", "r", &ha1));
    }

    #[test]
    fn the_default_plan_calls_russian_numbers_only() {
        let plan = SecuritySettings::default().callback_plan;
        for ok in [
            "+79120000001",
            "+73432000001",
            "+74951234567",
            "+78001234567",
        ] {
            assert!(plan.permits(ok), "{ok}");
        }
        for refused in [
            "+78091234567",
            "+78031234567",
            "+441632960961",
            "+7912000000",
            "+791200000012",
            "100",
            "+75001234567",
            "+76001234567",
        ] {
            assert!(!plan.permits(refused), "{refused}");
        }
    }

    #[test]
    fn durations_are_bounded() {
        let s = validate(
            RawSecurity {
                auth_ban_s: u64::MAX,
                auth_backoff_max_s: 0,
                ..RawSecurity::default()
            },
            None,
        );
        assert_eq!(s.sip_auth.ban_for, Duration::from_secs(86_400));
        assert_eq!(s.sip_auth.max_backoff, Duration::from_secs(1));
    }
}
