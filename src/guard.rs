//! Guessing resistance for every password check of the engine: SIP digest
//! authentication (REGISTER, and INVITEs from strangers) and console logins.
//!
//! Owns the failure counters, per source address and per account (extension), the
//! exponential back-off they impose and the temporary bans of sources. The rules:
//!
//! - the first [`GuardPolicy::free_failures`] failures cost nothing; each further
//!   one doubles the wait before the next try is looked at (from
//!   [`GuardPolicy::base_backoff`] up to [`GuardPolicy::max_backoff`]);
//! - a source with [`GuardPolicy::ban_after`] failures is banned for
//!   [`GuardPolicy::ban_for`]: everything it sends is dropped unanswered;
//! - an account is only slowed, never banned: a ban would let anybody lock an
//!   operator out by guessing wrong on purpose; and an address the account
//!   logged in from before (within [`GuardPolicy::forget_after`]) is not slowed by
//!   the account's counter, so a softphone keeps refreshing its registration
//!   while somebody elsewhere guesses its password;
//! - a success clears only the counter of the account that succeeded: an attacker
//!   who knows one password cannot reset the count of their source (nor of another
//!   account) by logging in with it. Counters are forgotten
//!   [`GuardPolicy::forget_after`] after their last failure.
//!
//! Sans-IO: time is passed in. The tables are bounded (the oldest entries go
//! first), so a spoofed flood cannot grow them without limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How hard guessing is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardPolicy {
    /// Failures that cost no waiting.
    pub free_failures: u32,
    /// The wait after the first failure beyond the free ones (doubling after).
    pub base_backoff: Duration,
    /// The longest wait between two tries.
    pub max_backoff: Duration,
    /// Failures from one source that ban it.
    pub ban_after: u32,
    /// How long a ban lasts.
    pub ban_for: Duration,
    /// A counter with no failure for this long is forgotten.
    pub forget_after: Duration,
}

impl Default for GuardPolicy {
    fn default() -> Self {
        Self {
            free_failures: 3,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            ban_after: 10,
            ban_for: Duration::from_secs(900),
            forget_after: Duration::from_secs(900),
        }
    }
}

/// What may happen to a try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Check the password.
    Allow,
    /// Too soon after the last failure: refuse without checking, try again after
    /// this long.
    Wait(Duration),
    /// The source is banned for this much longer: drop it unanswered.
    Banned(Duration),
}

/// What a failure led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Counted.
    Counted,
    /// The source is now banned (log it: this is the one line per ban).
    Banned(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    failures: u32,
    last: Instant,
    banned_until: Option<Instant>,
}

impl Counter {
    fn new(now: Instant) -> Self {
        Self {
            failures: 0,
            last: now,
            banned_until: None,
        }
    }
}

/// Counters for one kind of password check (SIP or console).
#[derive(Debug)]
pub struct AuthGuard {
    policy: GuardPolicy,
    sources: HashMap<IpAddr, Counter>,
    accounts: HashMap<String, Counter>,
    /// Where each account last succeeded from, and when.
    known: HashMap<(IpAddr, String), Instant>,
    bans: u64,
    refused: u64,
}

/// Entries each table keeps at most.
const MAX_ENTRIES: usize = 16_384;
/// Account names longer than this are cut (a guesser's junk user names).
const MAX_ACCOUNT_LEN: usize = 64;

impl AuthGuard {
    /// A guard with `policy`.
    pub fn new(policy: GuardPolicy) -> Self {
        Self {
            policy,
            sources: HashMap::new(),
            accounts: HashMap::new(),
            known: HashMap::new(),
            bans: 0,
            refused: 0,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &GuardPolicy {
        &self.policy
    }

    /// Bans imposed since start.
    pub fn bans(&self) -> u64 {
        self.bans
    }

    /// Tries refused unchecked (waits and bans) since start.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Sources banned now.
    pub fn banned_now(&self, now: Instant) -> usize {
        self.sources
            .values()
            .filter(|c| c.banned_until.is_some_and(|t| t > now))
            .count()
    }

    /// Whether `source` is banned now, and for how much longer.
    pub fn ban_of(&self, now: Instant, source: IpAddr) -> Option<Duration> {
        self.sources
            .get(&source)
            .and_then(|c| c.banned_until)
            .filter(|t| *t > now)
            .map(|t| t.saturating_duration_since(now))
    }

    /// Whether a try from `source` for `account` may be checked now. A refusal is
    /// counted (see [`refused`](Self::refused)).
    pub fn check(&mut self, now: Instant, source: IpAddr, account: Option<&str>) -> Verdict {
        let verdict = self.peek(now, source, account);
        if verdict != Verdict::Allow {
            self.refused = self.refused.saturating_add(1);
        }
        verdict
    }

    /// Like [`check`](Self::check), counting nothing.
    pub fn peek(&self, now: Instant, source: IpAddr, account: Option<&str>) -> Verdict {
        if let Some(left) = self.ban_of(now, source) {
            return Verdict::Banned(left);
        }
        let wait = |c: Option<&Counter>| {
            c.and_then(|c| {
                let until = c.last.checked_add(self.backoff(c.failures))?;
                (until > now).then(|| until.saturating_duration_since(now))
            })
        };
        let by_source = wait(self.sources.get(&source));
        let by_account = account
            .filter(|a| !self.is_known(now, source, a))
            .and_then(|a| wait(self.accounts.get(clip(a))));
        match by_source.max(by_account) {
            Some(w) if !w.is_zero() => Verdict::Wait(w),
            _ => Verdict::Allow,
        }
    }

    fn is_known(&self, now: Instant, source: IpAddr, account: &str) -> bool {
        self.known
            .get(&(source, clip(account).to_owned()))
            .is_some_and(|at| now.saturating_duration_since(*at) < self.policy.forget_after)
    }

    /// The wait imposed after `failures` failures.
    fn backoff(&self, failures: u32) -> Duration {
        let over = failures.saturating_sub(self.policy.free_failures);
        if over == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(over - 1).unwrap_or(u32::MAX);
        self.policy
            .base_backoff
            .saturating_mul(factor)
            .min(self.policy.max_backoff)
    }

    /// Counts a failed try from `source` for `account`.
    pub fn failed(&mut self, now: Instant, source: IpAddr, account: Option<&str>) -> Failure {
        let forget = self.policy.forget_after;
        let fresh = |c: &mut Counter| {
            if now.saturating_duration_since(c.last) > forget
                && c.banned_until.is_none_or(|t| t <= now)
            {
                *c = Counter::new(now);
            }
            c.failures = c.failures.saturating_add(1);
            c.last = now;
        };
        if let Some(account) = account {
            make_room(&mut self.accounts, now);
            fresh(
                self.accounts
                    .entry(clip(account).to_owned())
                    .or_insert_with(|| Counter::new(now)),
            );
        }
        make_room(&mut self.sources, now);
        let counter = self
            .sources
            .entry(source)
            .or_insert_with(|| Counter::new(now));
        fresh(counter);
        let already = counter.banned_until.is_some_and(|t| t > now);
        if !already && counter.failures >= self.policy.ban_after {
            counter.banned_until = now.checked_add(self.policy.ban_for);
            self.bans = self.bans.saturating_add(1);
            return Failure::Banned(source);
        }
        Failure::Counted
    }

    /// Bans `source` at once (a stranger probing for calls), counting the ban.
    pub fn ban(&mut self, now: Instant, source: IpAddr) -> Failure {
        if self.ban_of(now, source).is_some() {
            return Failure::Counted;
        }
        make_room(&mut self.sources, now);
        let counter = self
            .sources
            .entry(source)
            .or_insert_with(|| Counter::new(now));
        counter.last = now;
        counter.failures = counter.failures.max(self.policy.ban_after);
        counter.banned_until = now.checked_add(self.policy.ban_for);
        self.bans = self.bans.saturating_add(1);
        Failure::Banned(source)
    }

    /// A successful try for `account` from `source`: the account's counter is
    /// cleared and the pair remembered. The source's counter is not cleared (see
    /// the module doc).
    pub fn succeeded(&mut self, now: Instant, source: IpAddr, account: &str) {
        let account = clip(account);
        self.accounts.remove(account);
        if self.known.len() >= MAX_ENTRIES {
            let forget = self.policy.forget_after;
            self.known
                .retain(|_, at| now.saturating_duration_since(*at) < forget);
            if self.known.len() >= MAX_ENTRIES {
                self.known.clear();
            }
        }
        self.known.insert((source, account.to_owned()), now);
    }
}

fn clip(account: &str) -> &str {
    match account.char_indices().nth(MAX_ACCOUNT_LEN) {
        Some((i, _)) => &account[..i],
        None => account,
    }
}

/// Keeps a table below [`MAX_ENTRIES`]: forgets what has lapsed, then the oldest.
fn make_room<K: Clone + Eq + std::hash::Hash>(table: &mut HashMap<K, Counter>, now: Instant) {
    if table.len() < MAX_ENTRIES {
        return;
    }
    table.retain(|_, c| {
        c.banned_until.is_some_and(|t| t > now)
            || now.saturating_duration_since(c.last) < Duration::from_secs(60)
    });
    while table.len() >= MAX_ENTRIES {
        let oldest = table
            .iter()
            .min_by_key(|(_, c)| c.last)
            .map(|(k, _)| k.clone());
        match oldest {
            Some(k) => table.remove(&k),
            None => break,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn failures_back_off_exponentially_then_ban_the_source() {
        let mut g = AuthGuard::new(GuardPolicy::default());
        let mut now = Instant::now();
        for i in 1..=9u32 {
            assert_eq!(g.check(now, ip(2), Some("1001")), Verdict::Allow, "try {i}");
            assert_eq!(g.failed(now, ip(2), Some("1001")), Failure::Counted);
            let expected = match i {
                0..=3 => Duration::ZERO,
                n => Duration::from_secs(1 << (n - 4)).min(Duration::from_secs(60)),
            };
            if expected.is_zero() {
                assert_eq!(g.check(now, ip(2), Some("1001")), Verdict::Allow);
            } else {
                assert_eq!(g.check(now, ip(2), Some("1001")), Verdict::Wait(expected));
                now += expected;
            }
        }
        assert_eq!(g.failed(now, ip(2), Some("1001")), Failure::Banned(ip(2)));
        assert!(matches!(g.check(now, ip(2), None), Verdict::Banned(_)));
        assert_eq!(g.bans(), 1);
        assert_eq!(g.banned_now(now), 1);
        // Another source guessing the same account is slowed, not banned.
        assert!(matches!(
            g.check(now, ip(3), Some("1001")),
            Verdict::Wait(_)
        ));
        assert_eq!(g.check(now, ip(3), Some("1002")), Verdict::Allow);
        let later = now + GuardPolicy::default().ban_for;
        assert!(!matches!(g.check(later, ip(2), None), Verdict::Banned(_)));
    }

    #[test]
    fn succeeding_with_another_account_does_not_reset_the_source() {
        let mut g = AuthGuard::new(GuardPolicy::default());
        let now = Instant::now();
        for _ in 0..3 {
            g.failed(now, ip(2), Some("1001"));
        }
        g.succeeded(now, ip(2), "1002");
        g.failed(now, ip(2), Some("1001"));
        assert!(matches!(
            g.check(now, ip(2), Some("1002")),
            Verdict::Wait(_)
        ));
        // The account that succeeds is cleared; the source still waits.
        g.succeeded(now, ip(2), "1001");
        assert!(matches!(
            g.check(now, ip(2), Some("1001")),
            Verdict::Wait(_)
        ));
        assert_eq!(g.check(now, ip(9), Some("1001")), Verdict::Allow);
    }

    #[test]
    fn an_accounts_own_address_is_not_slowed_by_guessing_elsewhere() {
        let mut g = AuthGuard::new(GuardPolicy::default());
        let now = Instant::now();
        g.succeeded(now, ip(1), "1001");
        for _ in 0..8 {
            g.failed(now, ip(2), Some("1001"));
        }
        assert!(matches!(
            g.check(now, ip(3), Some("1001")),
            Verdict::Wait(_)
        ));
        assert_eq!(g.check(now, ip(1), Some("1001")), Verdict::Allow);
    }

    #[test]
    fn old_failures_are_forgotten_and_tables_stay_bounded() {
        let mut g = AuthGuard::new(GuardPolicy::default());
        let now = Instant::now();
        for _ in 0..5 {
            g.failed(now, ip(2), Some("1001"));
        }
        let later = now + Duration::from_secs(901);
        g.failed(later, ip(2), Some("1001"));
        assert_eq!(g.check(later, ip(2), Some("1001")), Verdict::Allow);
        for i in 0..(MAX_ENTRIES as u32 + 10) {
            g.failed(now, IpAddr::from(i.to_be_bytes()), Some(&i.to_string()));
        }
        assert!(g.sources.len() <= MAX_ENTRIES);
        assert!(g.accounts.len() <= MAX_ENTRIES);
    }

    #[test]
    fn an_explicit_ban_is_counted_once() {
        let mut g = AuthGuard::new(GuardPolicy::default());
        let now = Instant::now();
        assert_eq!(g.ban(now, ip(5)), Failure::Banned(ip(5)));
        assert_eq!(g.ban(now, ip(5)), Failure::Counted);
        assert_eq!(g.bans(), 1);
    }
}
