//! Reproducible workloads: the events of one window, generated in chunks.
//!
//! A window with `n` distinct users has [`VISITS_PER_USER`]` × n` events:
//! every user once, plus `(VISITS_PER_USER - 1) × n` repeat visits drawn
//! uniformly (skew 0) or Zipf-skewed (skew s: user of rank r visits about
//! r^-s as often; the generator's own platform-independent sampler), all
//! shuffled. So the true distinct count is exactly `n` without keeping a
//! set, and repeat visits (duplicates) make up two thirds of the inserts.
//!
//! Uids are the generator's (`crate::generate::push_uid`): `u` + 12 hex
//! digits, and every 7th a non-ASCII one (Cyrillic, Latin-1, emoji), hashed
//! with the crate's uid hash as the service does. Window `w` uses users
//! `w·2^32 + i`, so windows never share a uid and their errors are
//! independent samples.
//!
//! Generation is stateless per event (a keyed Feistel permutation of event
//! positions, a fresh seeded PRNG per repeat visit), so a window of 10^8
//! users is produced chunk by chunk in constant memory, and the same seed
//! gives the same events on every machine.

use crate::counter::AnyCounter;
use crate::generate::rng::{Rng, Zipf};
use crate::generate::{mix64, push_uid};
use crate::hash::uid_hash;

/// Events per distinct user (1 first visit + 2 repeats on average).
pub const VISITS_PER_USER: u64 = 3;

/// Events per generated chunk: small enough to stay in cache while every
/// backend consumes it, large enough that timing overhead is negligible.
pub const CHUNK_EVENTS: usize = 1 << 16;

/// One kind of window: distinct users and the skew of repeat visits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Workload {
    pub distinct: u64,
    /// Zipf exponent of repeat visits; 0 = uniform.
    pub skew: f64,
}

impl Workload {
    pub fn events(&self) -> u64 {
        self.distinct * VISITS_PER_USER
    }

    /// `uniform` or `zipf-1` style label.
    pub fn visits_label(&self) -> String {
        if self.skew == 0.0 {
            "uniform".to_string()
        } else {
            format!("zipf-{}", self.skew)
        }
    }

    /// The event stream of window `window` under `seed`.
    pub fn window(&self, seed: u64, window: u64) -> WindowStream {
        assert!(self.distinct > 0 && self.distinct < 1 << 32 && window < 1 << 31);
        let key = mix64(seed ^ mix64(window.wrapping_add(0x6265_6e63_6800_0000)));
        WindowStream {
            distinct: self.distinct,
            window,
            key,
            zipf: Zipf::new(self.distinct, self.skew),
            perm: Feistel::new(self.events(), key),
            next: 0,
        }
    }
}

/// A batch of events: uid bytes back to back, their ends, their hashes.
#[derive(Debug, Default, Clone)]
pub struct Chunk {
    bytes: Vec<u8>,
    ends: Vec<u32>,
    hashes: Vec<u64>,
}

impl Chunk {
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Inserts every event into `counter`: the unit of work that insert
    /// throughput measures (the hashes are computed beforehand, as the
    /// service computes each once for all uses).
    #[inline(never)]
    pub fn fill(&self, counter: &mut AnyCounter) {
        let mut start = 0usize;
        for (&end, &h) in self.ends.iter().zip(&self.hashes) {
            let end = end as usize;
            counter.insert(&self.bytes[start..end], h);
            start = end;
        }
    }

    /// The uids, in event order.
    pub fn uids(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut start = 0usize;
        self.ends.iter().map(move |&end| {
            let uid = &self.bytes[start..end as usize];
            start = end as usize;
            uid
        })
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        self.hashes.clear();
    }
}

/// The events of one window, in arrival order.
pub struct WindowStream {
    distinct: u64,
    window: u64,
    key: u64,
    zipf: Zipf,
    perm: Feistel,
    next: u64,
}

impl WindowStream {
    pub fn remaining(&self) -> u64 {
        self.perm.n - self.next
    }

    /// Replaces `chunk` with the next up to `max` events; false at the end.
    pub fn next_chunk(&mut self, chunk: &mut Chunk, max: usize) -> bool {
        chunk.clear();
        let mut uid = String::with_capacity(32);
        let end = self.perm.n.min(self.next + max as u64);
        for pos in self.next..end {
            let k = self.perm.apply(pos);
            let user = if k < self.distinct {
                k
            } else {
                self.zipf.sample(&mut Rng::new(self.key ^ k))
            };
            uid.clear();
            push_uid(&mut uid, (self.window << 32) | user);
            chunk.bytes.extend_from_slice(uid.as_bytes());
            chunk.ends.push(chunk.bytes.len() as u32);
            chunk.hashes.push(uid_hash(uid.as_bytes()));
        }
        self.next = end;
        !chunk.is_empty()
    }

    /// The whole remaining window as one chunk (for repeated fills).
    pub fn collect_all(mut self) -> Chunk {
        let mut all = Chunk::default();
        let mut part = Chunk::default();
        while self.next_chunk(&mut part, CHUNK_EVENTS) {
            let base = all.bytes.len() as u32;
            all.bytes.extend_from_slice(&part.bytes);
            all.ends.extend(part.ends.iter().map(|e| base + e));
            all.hashes.extend_from_slice(&part.hashes);
        }
        all
    }
}

/// A keyed pseudo-random permutation of `0..n`: a 4-round Feistel network on
/// the smallest even number of bits covering `n`, cycle-walking past `n`
/// (fewer than 4 steps on average). Shuffles billions of positions without
/// storing them.
struct Feistel {
    n: u64,
    half_bits: u32,
    keys: [u64; 4],
}

impl Feistel {
    fn new(n: u64, key: u64) -> Self {
        let bits = (64 - n.saturating_sub(1).leading_zeros()).max(2);
        let keys = [1u64, 2, 3, 4].map(|i| mix64(key ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        Feistel {
            n,
            half_bits: bits.div_ceil(2),
            keys,
        }
    }

    fn apply(&self, mut x: u64) -> u64 {
        loop {
            x = self.round_trip(x);
            if x < self.n {
                return x;
            }
        }
    }

    fn round_trip(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let (mut l, mut r) = (x >> self.half_bits, x & mask);
        for k in self.keys {
            let f = mix64(r ^ k) & mask;
            (l, r) = (r, l ^ f);
        }
        (l << self.half_bits) | r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn feistel_is_a_permutation() {
        for n in [1u64, 2, 3, 17, 1000, 4096, 5000] {
            let p = Feistel::new(n, 7);
            let seen: HashSet<u64> = (0..n).map(|x| p.apply(x)).collect();
            assert_eq!(seen.len() as u64, n);
            assert!(seen.iter().all(|&x| x < n));
        }
    }

    #[test]
    fn windows_have_exactly_n_users_and_3n_events() {
        for skew in [0.0, 1.0] {
            let w = Workload {
                distinct: 5000,
                skew,
            };
            let all = w.window(42, 3).collect_all();
            assert_eq!(all.len() as u64, 15_000);
            let users: HashSet<&[u8]> = all.uids().collect();
            assert_eq!(users.len(), 5000);
            // Other windows share no uid; the same seed repeats exactly.
            let other = w.window(42, 4).collect_all();
            assert!(other.uids().all(|u| !users.contains(u)));
            assert_eq!(w.window(42, 3).collect_all().hashes, all.hashes);
        }
    }

    #[test]
    fn zipf_repeats_concentrate_on_few_users() {
        let top_share = |skew| {
            let w = Workload {
                distinct: 10_000,
                skew,
            };
            let all = w.window(1, 0).collect_all();
            let mut counts = std::collections::HashMap::new();
            for h in &all.hashes {
                *counts.entry(*h).or_insert(0u64) += 1;
            }
            let mut v: Vec<u64> = counts.into_values().collect();
            v.sort_unstable_by(|a, b| b.cmp(a));
            v[..100].iter().sum::<u64>() as f64 / all.len() as f64
        };
        let (uniform, zipf) = (top_share(0.0), top_share(1.0));
        assert!(uniform < 0.05, "{uniform}");
        assert!(zipf > 0.25, "{zipf}");
    }
}
