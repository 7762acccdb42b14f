//! The hand-off chain policy: which tickets are telephoned and how each step of a
//! chain reaches a person.
//!
//! Owns the `[chains]` section and its `[[chains.policy]]` overrides. The attempt
//! budget and the level and informer timers are the `[dialer]` keys the file always
//! had (`attempts`, `attempt_interval_s`, `level_timeout_s`, `broadcast_window_s`);
//! `[chains]` adds what only chains need. An override names a tenant, a ticket
//! category, or both, and changes any of those keys for the tickets it matches; the
//! most specific one wins (tenant and category, then tenant, then category), and
//! keys it leaves out come from the next less specific one, then from the defaults.
//! [`ChainSettings::policy`] resolves the policy of one ticket; a chain stores the
//! policy it started with, so a restart never changes a running chain's rules.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::Faults;

/// The ticket categories the store knows (`store::Category`).
pub const CATEGORIES: [&str; 3] = ["emergency", "planned", "paid"];

/// The longest timer a chain policy may set (a day): every timer is added to a
/// monotonic instant, and a chain step further away than this is a typo.
pub const MAX_TIMER: Duration = Duration::from_secs(24 * 3600);

/// The most tries per number a policy may ask for.
pub const MAX_ATTEMPTS: u32 = 20;

/// The most times the informer's message may be repeated.
pub const MAX_REPEATS: u32 = 5;

/// How a chain step reaches a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reach {
    /// The first free operator is rung as for an incoming call; the engine dials
    /// the person when the operator answers, and the operator records the result.
    OperatorFirst,
    /// A robot call: the engine calls the person and plays the ticket; keypad 1
    /// accepts, 2 declines, 0 joins the first free operator.
    Informer,
}

impl Reach {
    /// The policy's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OperatorFirst => "operator-first",
            Self::Informer => "informer",
        }
    }
}

/// The resolved policy of one ticket's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainPolicy {
    /// Whether a ticket of this tenant and category starts a chain when registered.
    pub enabled: bool,
    /// Tries per number before the number counts as unreachable.
    pub attempts: u32,
    /// Pause between two tries of the same number, from the end of the first.
    #[serde(with = "seconds")]
    pub attempt_interval: Duration,
    /// A level that has not accepted the ticket in this long hands over to the next
    /// (counted from the level's start).
    #[serde(with = "seconds")]
    pub level_timeout: Duration,
    /// How long the informer round dials every level after the last one, while the
    /// chain escalates.
    #[serde(with = "seconds")]
    pub broadcast_window: Duration,
    /// How long an operator-first step waits for a free operator before the
    /// informer calls the person instead.
    #[serde(with = "seconds")]
    pub operator_wait: Duration,
    /// How long each escalation person (responsible, manager, head) is tried
    /// before the next one up.
    #[serde(with = "seconds")]
    pub escalation_step: Duration,
    /// How levels 1, 2 and 3 are reached.
    pub level_modes: [Reach; 3],
    /// How the responsible person, the manager and the head are reached.
    pub escalation_mode: Reach,
    /// A level whose people are all unreachable (every number tried `attempts`
    /// times) hands over at once instead of waiting out `level_timeout`.
    pub advance_when_unreachable: bool,
    /// After the last level the informer dials every level for
    /// `broadcast_window` while the chain escalates.
    pub informer_round: bool,
    /// How often the informer's message is repeated when no key is pressed.
    pub informer_repeats: u32,
    /// A chain still running this close to the ticket's deadline raises an alarm.
    #[serde(with = "seconds")]
    pub deadline_warning: Duration,
}

impl ChainPolicy {
    /// How level `level` (1-based) is reached.
    pub fn level_mode(&self, level: u8) -> Reach {
        let i = usize::from(level.clamp(1, 3)) - 1;
        self.level_modes
            .get(i)
            .copied()
            .unwrap_or(Reach::OperatorFirst)
    }
}

mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        // A stored policy is as bounded as a configured one.
        let secs = u64::deserialize(d)?.min(super::MAX_TIMER.as_secs());
        Ok(Duration::from_secs(secs))
    }
}

/// The `[chains]` section and its overrides, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSettings {
    /// What applies when no override matches.
    pub defaults: ChainPolicy,
    /// Overrides, in file order.
    pub overrides: Vec<PolicyOverride>,
}

/// One `[[chains.policy]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyOverride {
    /// The tenant it applies to (all when `None`).
    pub tenant: Option<String>,
    /// The ticket category it applies to (all when `None`).
    pub category: Option<String>,
    /// The keys it sets.
    pub keys: PolicyKeys,
}

/// The keys a policy table may set; `None` leaves the key to a less specific table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyKeys {
    /// See [`ChainPolicy::enabled`].
    pub enabled: Option<bool>,
    /// See [`ChainPolicy::attempts`].
    pub attempts: Option<u32>,
    /// See [`ChainPolicy::attempt_interval`].
    pub attempt_interval: Option<Duration>,
    /// See [`ChainPolicy::level_timeout`].
    pub level_timeout: Option<Duration>,
    /// See [`ChainPolicy::broadcast_window`].
    pub broadcast_window: Option<Duration>,
    /// See [`ChainPolicy::operator_wait`].
    pub operator_wait: Option<Duration>,
    /// See [`ChainPolicy::escalation_step`].
    pub escalation_step: Option<Duration>,
    /// See [`ChainPolicy::level_modes`].
    pub level_modes: Option<[Reach; 3]>,
    /// See [`ChainPolicy::escalation_mode`].
    pub escalation_mode: Option<Reach>,
    /// See [`ChainPolicy::advance_when_unreachable`].
    pub advance_when_unreachable: Option<bool>,
    /// See [`ChainPolicy::informer_round`].
    pub informer_round: Option<bool>,
    /// See [`ChainPolicy::informer_repeats`].
    pub informer_repeats: Option<u32>,
    /// See [`ChainPolicy::deadline_warning`].
    pub deadline_warning: Option<Duration>,
}

impl PolicyKeys {
    fn apply(&self, to: &mut ChainPolicy) {
        macro_rules! set {
            ($($key:ident),*) => { $( if let Some(v) = self.$key { to.$key = v; } )* };
        }
        set!(
            enabled,
            attempts,
            attempt_interval,
            level_timeout,
            broadcast_window,
            operator_wait,
            escalation_step,
            level_modes,
            escalation_mode,
            advance_when_unreachable,
            informer_round,
            informer_repeats,
            deadline_warning
        );
    }
}

impl ChainSettings {
    /// The policy for a ticket of `tenant` in `category` (`emergency`, ...).
    pub fn policy(&self, tenant: &str, category: &str) -> ChainPolicy {
        let mut policy = self.defaults.clone();
        for table in applicable(&self.overrides, tenant, category) {
            table.keys.apply(&mut policy);
        }
        policy
    }
}

/// A policy table that names a tenant, a category, or both.
pub(super) trait Scoped {
    /// The tenant it applies to (all when `None`).
    fn tenant(&self) -> Option<&str>;
    /// The category it applies to (all when `None`).
    fn category(&self) -> Option<&str>;
}

impl Scoped for PolicyOverride {
    fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }
    fn category(&self) -> Option<&str> {
        self.category.as_deref()
    }
}

/// The tables of `overrides` that apply to a ticket of `tenant` in `category`,
/// least specific first (so the most specific has the last word; equal
/// specificity keeps file order).
pub(super) fn applicable<'a, O: Scoped>(
    overrides: &'a [O],
    tenant: &str,
    category: &str,
) -> Vec<&'a O> {
    let mut tables: Vec<&O> = overrides
        .iter()
        .filter(|o| {
            o.tenant().is_none_or(|t| t == tenant) && o.category().is_none_or(|c| c == category)
        })
        .collect();
    tables.sort_by_key(|o| u8::from(o.tenant().is_some()) * 2 + u8::from(o.category().is_some()));
    tables
}

// ---------------------------------------------------------------------------------
// The file format.

/// `[chains]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawChains {
    categories: Vec<Spanned<String>>,
    level_modes: Vec<Spanned<String>>,
    escalation_mode: Spanned<String>,
    operator_wait_s: u64,
    escalation_step_s: Option<u64>,
    advance_when_unreachable: bool,
    informer_round: bool,
    informer_repeats: u32,
    deadline_warning_s: u64,
    policy: Vec<Spanned<RawPolicy>>,
}

impl Default for RawChains {
    fn default() -> Self {
        Self {
            categories: vec![Spanned::new(0..0, "emergency".into())],
            level_modes: vec![Spanned::new(0..0, "operator-first".into())],
            escalation_mode: Spanned::new(0..0, "operator-first".into()),
            operator_wait_s: 60,
            escalation_step_s: None,
            advance_when_unreachable: true,
            informer_round: true,
            informer_repeats: 2,
            deadline_warning_s: 1800,
            policy: Vec::new(),
        }
    }
}

/// `[[chains.policy]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    tenant: Option<String>,
    category: Option<Spanned<String>>,
    enabled: Option<bool>,
    attempts: Option<u32>,
    attempt_interval_s: Option<u64>,
    level_timeout_s: Option<u64>,
    broadcast_window_s: Option<u64>,
    operator_wait_s: Option<u64>,
    escalation_step_s: Option<u64>,
    level_modes: Option<Vec<Spanned<String>>>,
    escalation_mode: Option<Spanned<String>>,
    advance_when_unreachable: Option<bool>,
    informer_round: Option<bool>,
    informer_repeats: Option<u32>,
    deadline_warning_s: Option<u64>,
}

/// The `[dialer]` keys chains share with callbacks.
pub(super) struct DialerKeys {
    pub attempts: u32,
    pub attempt_interval_s: u64,
    pub level_timeout_s: u64,
    pub broadcast_window_s: u64,
}

pub(super) fn reach(text: &Spanned<String>, key: &str, faults: &mut Faults<'_>) -> Option<Reach> {
    match text.get_ref().trim() {
        "operator-first" => Some(Reach::OperatorFirst),
        "informer" => Some(Reach::Informer),
        other => {
            faults.at(
                Some(&text.span()),
                format!("{key} `{other}` is not operator-first or informer"),
            );
            None
        }
    }
}

fn modes(list: &[Spanned<String>], key: &str, faults: &mut Faults<'_>) -> Option<[Reach; 3]> {
    if list.is_empty() || list.len() > 3 {
        faults.at(
            list.first().map(|s| s.span()).as_ref(),
            format!("{key} names how levels 1-3 are reached: one to three of operator-first, informer (the last repeats)"),
        );
        return None;
    }
    let parsed: Vec<Reach> = list.iter().filter_map(|m| reach(m, key, faults)).collect();
    if parsed.len() != list.len() {
        return None;
    }
    let last = *parsed.last()?;
    let at = |i: usize| parsed.get(i).copied().unwrap_or(last);
    Some([at(0), at(1), at(2)])
}

/// A timer key: at least `min` seconds, at most [`MAX_TIMER`].
pub(super) fn timer(value: u64, key: &str, min: u64, faults: &mut Faults<'_>) -> Duration {
    if value < min || value > MAX_TIMER.as_secs() {
        faults.at(
            None,
            format!(
                "{key} = {value} must be between {min} and {} (a day)",
                MAX_TIMER.as_secs()
            ),
        );
    }
    Duration::from_secs(value.clamp(min, MAX_TIMER.as_secs()))
}

fn attempts(value: u32, key: &str, faults: &mut Faults<'_>) -> u32 {
    if !(1..=MAX_ATTEMPTS).contains(&value) {
        faults.at(
            None,
            format!("{key} = {value} must be between 1 and {MAX_ATTEMPTS}"),
        );
    }
    value.clamp(1, MAX_ATTEMPTS)
}

fn repeats(value: u32, key: &str, faults: &mut Faults<'_>) -> u32 {
    if value > MAX_REPEATS {
        faults.at(
            None,
            format!("{key} = {value} must be at most {MAX_REPEATS}"),
        );
    }
    value.min(MAX_REPEATS)
}

pub(super) fn category(
    text: &Spanned<String>,
    key: &str,
    faults: &mut Faults<'_>,
) -> Option<String> {
    let name = text.get_ref().trim();
    if CATEGORIES.contains(&name) {
        Some(name.to_owned())
    } else {
        faults.at(
            Some(&text.span()),
            format!("{key} `{name}` is not one of emergency, planned, paid"),
        );
        None
    }
}

/// The tenant and category an override table names (`table`, e.g.
/// `[[chains.policy]]`), checked: a tenant is not blank, a category is known, and
/// at least one of them is there (`defaults` names the tables for everything else).
pub(super) fn scope<T>(
    entry: &Spanned<T>,
    tenant: Option<&str>,
    category_text: Option<&Spanned<String>>,
    table: &str,
    defaults: &str,
    faults: &mut Faults<'_>,
) -> (Option<String>, Option<String>) {
    let tenant = tenant.map(|t| t.trim().to_owned());
    if tenant.as_deref().is_some_and(str::is_empty) {
        faults.at(
            Some(&entry.span()),
            format!("{table} tenant must not be empty"),
        );
    }
    let category = category_text.and_then(|c| category(c, &format!("{table} category"), faults));
    if tenant.is_none() && category_text.is_none() {
        faults.at(
            Some(&entry.span()),
            format!(
                "{table} needs a tenant, a category or both (use {defaults} for everything else)"
            ),
        );
    }
    (tenant, category)
}

/// Validates `[chains]` with the `[dialer]` keys it shares.
pub(super) fn validate(
    raw: RawChains,
    dialer: &DialerKeys,
    faults: &mut Faults<'_>,
) -> ChainSettings {
    let mut enabled_for = Vec::new();
    for c in &raw.categories {
        if let Some(name) = category(c, "[chains] categories", faults) {
            enabled_for.push(name);
        }
    }
    let window = timer(
        dialer.broadcast_window_s,
        "[dialer] broadcast_window_s",
        1,
        faults,
    );
    // Three escalation people share the informer's window by default.
    let step_default = (dialer.broadcast_window_s / 3).max(1);
    let defaults = ChainPolicy {
        // Categories not listed get a chain only through an override.
        enabled: false,
        attempts: attempts(dialer.attempts, "[dialer] attempts", faults),
        attempt_interval: timer(
            dialer.attempt_interval_s,
            "[dialer] attempt_interval_s",
            0,
            faults,
        ),
        level_timeout: timer(
            dialer.level_timeout_s,
            "[dialer] level_timeout_s",
            1,
            faults,
        ),
        broadcast_window: window,
        operator_wait: timer(raw.operator_wait_s, "[chains] operator_wait_s", 0, faults),
        escalation_step: timer(
            raw.escalation_step_s.unwrap_or(step_default),
            "[chains] escalation_step_s",
            1,
            faults,
        ),
        level_modes: modes(&raw.level_modes, "[chains] level_modes", faults)
            .unwrap_or([Reach::OperatorFirst; 3]),
        escalation_mode: reach(&raw.escalation_mode, "[chains] escalation_mode", faults)
            .unwrap_or(Reach::OperatorFirst),
        advance_when_unreachable: raw.advance_when_unreachable,
        informer_round: raw.informer_round,
        informer_repeats: repeats(raw.informer_repeats, "[chains] informer_repeats", faults),
        deadline_warning: timer(
            raw.deadline_warning_s,
            "[chains] deadline_warning_s",
            0,
            faults,
        ),
    };
    let mut overrides = Vec::new();
    // The categories list is the least specific override of all: one per category.
    for name in enabled_for {
        overrides.push(PolicyOverride {
            tenant: None,
            category: Some(name),
            keys: PolicyKeys {
                enabled: Some(true),
                ..PolicyKeys::default()
            },
        });
    }
    for entry in &raw.policy {
        let p = entry.get_ref();
        let key = |k: &str| format!("[[chains.policy]] {k}");
        let (tenant, category) = scope(
            entry,
            p.tenant.as_deref(),
            p.category.as_ref(),
            "[[chains.policy]]",
            "[chains] and [dialer]",
            faults,
        );
        let keys = PolicyKeys {
            enabled: p.enabled,
            attempts: p.attempts.map(|v| attempts(v, &key("attempts"), faults)),
            attempt_interval: p
                .attempt_interval_s
                .map(|v| timer(v, &key("attempt_interval_s"), 0, faults)),
            level_timeout: p
                .level_timeout_s
                .map(|v| timer(v, &key("level_timeout_s"), 1, faults)),
            broadcast_window: p
                .broadcast_window_s
                .map(|v| timer(v, &key("broadcast_window_s"), 1, faults)),
            operator_wait: p
                .operator_wait_s
                .map(|v| timer(v, &key("operator_wait_s"), 0, faults)),
            escalation_step: p
                .escalation_step_s
                .map(|v| timer(v, &key("escalation_step_s"), 1, faults)),
            level_modes: p
                .level_modes
                .as_ref()
                .and_then(|m| modes(m, &key("level_modes"), faults)),
            escalation_mode: p
                .escalation_mode
                .as_ref()
                .and_then(|m| reach(m, &key("escalation_mode"), faults)),
            advance_when_unreachable: p.advance_when_unreachable,
            informer_round: p.informer_round,
            informer_repeats: p
                .informer_repeats
                .map(|v| repeats(v, &key("informer_repeats"), faults)),
            deadline_warning: p
                .deadline_warning_s
                .map(|v| timer(v, &key("deadline_warning_s"), 0, faults)),
        };
        overrides.push(PolicyOverride {
            tenant,
            category,
            keys,
        });
    }
    ChainSettings {
        defaults,
        overrides,
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
    fn emergency_tickets_get_an_operator_first_chain_by_default() {
        let config = parse("").unwrap();
        let p = config.chains.policy("etalon", "emergency");
        assert!(p.enabled);
        assert_eq!(p.attempts, 5);
        assert_eq!(p.attempt_interval, Duration::from_secs(60));
        assert_eq!(p.level_timeout, Duration::from_secs(600));
        assert_eq!(p.broadcast_window, Duration::from_secs(600));
        assert_eq!(p.operator_wait, Duration::from_secs(60));
        assert_eq!(p.escalation_step, Duration::from_secs(200));
        assert_eq!(p.level_modes, [Reach::OperatorFirst; 3]);
        assert!(p.informer_round && p.advance_when_unreachable);
        assert!(!config.chains.policy("etalon", "planned").enabled);
        assert!(!config.chains.policy("etalon", "paid").enabled);
    }

    #[test]
    fn the_most_specific_override_wins_key_by_key() {
        let config = parse(
            r#"
[dialer]
attempts = 4
[chains]
level_modes = ["operator-first", "operator-first", "informer"]
[[chains.policy]]
tenant = "uyut"
attempts = 3
level_modes = ["informer"]
[[chains.policy]]
tenant = "uyut"
category = "planned"
enabled = true
attempt_interval_s = 120
[[chains.policy]]
category = "planned"
attempts = 2
"#,
        )
        .unwrap();
        let c = &config.chains;
        let p = c.policy("etalon", "emergency");
        assert_eq!(p.attempts, 4);
        assert_eq!(p.level_mode(3), Reach::Informer);
        assert_eq!(p.level_mode(1), Reach::OperatorFirst);
        let p = c.policy("uyut", "emergency");
        assert_eq!((p.attempts, p.level_modes), (3, [Reach::Informer; 3]));
        let p = c.policy("uyut", "planned");
        assert!(p.enabled, "tenant and category beat the planned default");
        assert_eq!(p.attempt_interval, Duration::from_secs(120));
        assert_eq!(p.attempts, 3, "tenant beats category");
        let p = c.policy("etalon", "planned");
        assert!(!p.enabled);
        assert_eq!(p.attempts, 2);
    }

    #[test]
    fn bad_chain_keys_are_each_reported() {
        let err = parse(
            r#"
[dialer]
attempts = 50
level_timeout_s = 0
broadcast_window_s = 999999
[chains]
categories = ["urgent"]
level_modes = ["robot"]
informer_repeats = 9
[[chains.policy]]
attempts = 2
[[chains.policy]]
tenant = "uyut"
escalation_mode = "fax"
"#,
        )
        .unwrap_err();
        for needle in [
            "[dialer] attempts = 50",
            "[dialer] level_timeout_s = 0",
            "[dialer] broadcast_window_s = 999999",
            "categories `urgent`",
            "level_modes `robot`",
            "informer_repeats = 9",
            "needs a tenant, a category or both",
            "escalation_mode `fax`",
        ] {
            assert!(err.contains(needle), "{needle} missing from:\n{err}");
        }
    }

    #[test]
    fn a_stored_policy_reads_back_the_same() {
        let config = parse("").unwrap();
        let p = config.chains.policy("etalon", "emergency");
        let text = serde_json::to_string(&p).unwrap();
        assert!(
            text.contains("\"level_modes\":[\"operator-first\""),
            "{text}"
        );
        let back: ChainPolicy = serde_json::from_str(&text).unwrap();
        assert_eq!(back, p);
    }
}
