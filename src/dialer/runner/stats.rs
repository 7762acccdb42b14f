//! What the chains of a node have done, for `/metrics` and the benchmark.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Figures for `/metrics` and the benchmark, shared with whoever reads them.
#[derive(Debug, Default)]
pub struct ChainStats {
    /// Chains running on this node now.
    pub running: AtomicU64,
    /// Attempts written and ordered since start.
    pub placed: AtomicU64,
    /// Store statements issued since start.
    pub queries: AtomicU64,
    /// Chains accepted since start (through this node).
    pub accepted: AtomicU64,
    /// Chains exhausted since start.
    pub exhausted: AtomicU64,
    /// How late attempts were ordered after they became due (the newest
    /// [`LATENESS_SAMPLES`]).
    lateness: Mutex<VecDeque<Duration>>,
}

/// How many lateness samples [`ChainStats`] keeps.
pub const LATENESS_SAMPLES: usize = 100_000;

impl ChainStats {
    pub(super) fn late(&self, by: Duration) {
        let mut samples = self.lateness.lock().unwrap_or_else(|p| p.into_inner());
        if samples.len() >= LATENESS_SAMPLES {
            samples.pop_front();
        }
        samples.push_back(by);
    }

    /// The `q`-quantile (0..=1) of the lateness samples, if there are any.
    pub fn lateness(&self, q: f64) -> Option<Duration> {
        let samples = self.lateness.lock().unwrap_or_else(|p| p.into_inner());
        let mut sorted: Vec<Duration> = samples.iter().copied().collect();
        drop(samples);
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_unstable();
        let i = ((sorted.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
        sorted.get(i).copied()
    }

    pub(super) fn count(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
