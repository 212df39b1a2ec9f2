//! A small seeded random number generator: the demo needs reproducible variety, not
//! cryptographic randomness.

use std::fmt::Write as _;

/// The Kubernetes name-suffix alphabet (`k8s.io/apimachinery` `rand.SafeEncodeString`).
pub(crate) const K8S_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// SplitMix64 (Steele, Lea and Flood, 2014): tiny and well mixed. The fleet needs reproducible
/// variety, not cryptographic randomness.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    pub(crate) state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Returns a uniform integer in `0..n`; `n` must be positive.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Returns a uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, probability: f64) -> bool {
        self.unit() < probability
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Returns nanoseconds between `lo_ms` and `hi_ms`, uniformly.
    pub fn uniform_ms(&mut self, lo_ms: f64, hi_ms: f64) -> i64 {
        ((lo_ms + (hi_ms - lo_ms) * self.unit()) * 1e6) as i64
    }

    /// Returns nanoseconds between `lo_ms` and `hi_ms`, skewed towards `lo_ms`: most calls are
    /// fast, a few are slow.
    pub fn latency_ms(&mut self, lo_ms: f64, hi_ms: f64) -> i64 {
        let u = self.unit();
        ((lo_ms + (hi_ms - lo_ms) * u * u * u) * 1e6) as i64
    }

    /// Returns `digits` lowercase hex digits.
    pub fn hex(&mut self, digits: usize) -> String {
        let mut out = String::with_capacity(digits);
        while out.len() < digits {
            let _ = write!(out, "{:016x}", self.next_u64());
        }
        out.truncate(digits);
        out
    }

    /// Returns `len` characters of the Kubernetes name-suffix alphabet.
    pub fn k8s_suffix(&mut self, len: usize) -> String {
        (0..len).map(|_| char::from(*self.pick(K8S_ALPHABET))).collect()
    }
}
