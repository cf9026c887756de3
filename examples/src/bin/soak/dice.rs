//! A small seeded random number source (SplitMix64): the plan of a run is reproducible from its
//! seed, and chaos timing needs no dependency.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

/// SplitMix64.
#[derive(Debug, Clone)]
pub(crate) struct Dice(u64);

impl Dice {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A seed from the process's hash randomness.
    pub(crate) fn random_seed() -> u64 {
        RandomState::new().hash_one(std::process::id())
    }

    /// An independent source for another user (a device, a thread).
    pub(crate) fn fork(&mut self) -> Self {
        Self(self.next())
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next().checked_rem(n).unwrap_or(0)
    }

    /// True with probability `percent` / 100.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A duration between `min_ms` and `max_ms` milliseconds.
    pub(crate) fn millis(&mut self, min_ms: u64, max_ms: u64) -> Duration {
        let span = max_ms.saturating_sub(min_ms).saturating_add(1);
        Duration::from_millis(min_ms.saturating_add(self.below(span)))
    }
}
