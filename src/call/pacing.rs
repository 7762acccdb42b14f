//! Pacing of the engine's robot calls: a token bucket that lets at most `rate`
//! calls start per second (a burst of at most one second's worth), on the time the
//! caller passes in.
//!
//! The call core asks [`Pacer::take`] before it starts a broadcast, survey or
//! robot status check, and wakes up at [`Pacer::next_token`] when it had to wait.
//! Capacity is asked separately: a token never lets a call take a channel kept
//! for residents' incoming calls.

use std::time::{Duration, Instant};

/// A token bucket (see the module doc).
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl Pacer {
    /// At most `rate` starts per second (at least one token fits in the bucket).
    pub(crate) fn new(rate: f64) -> Self {
        let rate = if rate.is_finite() && rate > 0.0 { rate } else { 1.0 };
        let burst = rate.max(1.0);
        Self {
            rate,
            burst,
            tokens: 1.0,
            last: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        }
        self.last = Some(now);
    }

    /// Takes a token if one is there.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the next token will be there (now when one is).
    pub(crate) fn next_token(&self, now: Instant) -> Instant {
        let elapsed = self
            .last
            .map(|l| now.saturating_duration_since(l).as_secs_f64())
            .unwrap_or(0.0);
        let have = (self.tokens + elapsed * self.rate).min(self.burst);
        if have >= 1.0 {
            return now;
        }
        let wait = (1.0 - have) / self.rate;
        now + Duration::from_secs_f64(wait.clamp(0.0, 3600.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_are_held_to_the_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::new(5.0);
        // Over ten seconds of asking every millisecond, about 5 per second start.
        let mut started = 0;
        for ms in 0..10_000u64 {
            if p.take(t0 + Duration::from_millis(ms)) {
                started += 1;
            }
        }
        assert!((50..=52).contains(&started), "{started}");
    }

    #[test]
    fn a_quiet_spell_allows_a_burst_of_one_second_only() {
        let t0 = Instant::now();
        let mut p = Pacer::new(4.0);
        assert!(p.take(t0));
        let later = t0 + Duration::from_secs(60);
        let burst = (0..100).filter(|_| p.take(later)).count();
        assert_eq!(burst, 4);
        let next = p.next_token(later);
        assert_eq!(next, later + Duration::from_millis(250));
        assert!(p.take(next));
    }

    #[test]
    fn a_slow_rate_waits_seconds() {
        let t0 = Instant::now();
        let mut p = Pacer::new(0.5);
        assert!(p.take(t0));
        assert!(!p.take(t0 + Duration::from_secs(1)));
        assert_eq!(p.next_token(t0 + Duration::from_secs(1)), t0 + Duration::from_secs(2));
        assert!(p.take(t0 + Duration::from_secs(2)));
    }
}
