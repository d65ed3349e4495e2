//! Deterministic randomness: xoshiro256** and a Zipf sampler with platform-independent math.

use super::mix64;
use std::f64::consts::{LN_2, LOG2_E, SQRT_2};
/// xoshiro256** seeded through SplitMix64: tiny, fast and fully specified, so the stream never
/// changes underneath the pinned tests.
#[derive(Default)]
pub(crate) struct Rng([u64; 4]);

impl Rng {
    pub(crate) fn new(mut x: u64) -> Self {
        Self([0; 4].map(|_| {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            mix64(x)
        }))
    }
    pub(crate) fn next(&mut self) -> u64 {
        let s = &mut self.0;
        let out = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }
    /// Uniform in `[0, n)` by multiply-shift (bias < n / 2^64, irrelevant here).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
    /// Uniform in `[lo, hi]`.
    pub(super) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below((hi - lo).saturating_add(1))
    }
    /// Uniform in `[0, 1)` with 53 random bits.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    pub(super) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    pub(super) fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// O(1) Zipf-like sampler: inverse CDF of the continuous power law `x^-s` on `[1, n + 1)`,
/// floored to a user index. Not an exact Zipf, but fast, monotone in rank and deterministic.
pub(crate) enum Zipf {
    Uniform(u64),
    /// `s == 1`: `x = (n + 1)^u`, stored as `ln(n + 1)`.
    Harmonic(u64, f64),
    /// `x = (a u + 1)^(1 / (1 - s))` with `a = (n + 1)^(1 - s) - 1`.
    Power(u64, f64, f64),
}

impl Zipf {
    pub(crate) fn new(n: u64, s: f64) -> Self {
        let ln_n1 = det_ln(n as f64 + 1.0);
        if s == 0.0 {
            Self::Uniform(n)
        } else if (1.0 - s).abs() < 1e-9 {
            Self::Harmonic(n, ln_n1)
        } else {
            Self::Power(n, det_exp((1.0 - s) * ln_n1) - 1.0, 1.0 / (1.0 - s))
        }
    }
    pub(crate) fn sample(&self, r: &mut Rng) -> u64 {
        let (n, x) = match *self {
            Self::Uniform(n) => return r.below(n),
            Self::Harmonic(n, ln_n1) => (n, det_exp(r.unit() * ln_n1)),
            Self::Power(n, a, inv) => (
                n,
                det_exp(inv * det_ln((a * r.unit() + 1.0).max(f64::MIN_POSITIVE))),
            ),
        };
        (x as u64).saturating_sub(1).min(n - 1)
    }
}

/// Natural log of a positive normal number using only IEEE basic operations (platform
/// independent, unlike libm): `ln(m 2^e) = e ln2 + 2 atanh((m - 1) / (m + 1))`.
pub(super) fn det_ln(x: f64) -> f64 {
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52));
    if m > SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let z = (m - 1.0) / (m + 1.0);
    let (mut term, mut sum) = (z, 0.0);
    for i in 0..14 {
        sum += term / f64::from(2 * i + 1);
        term *= z * z;
    }
    e as f64 * LN_2 + 2.0 * sum
}

/// `e^x` using only IEEE basic operations: range reduction by ln 2 and a Taylor series.
pub(super) fn det_exp(x: f64) -> f64 {
    if x.is_nan() || x > 709.0 {
        return f64::INFINITY;
    }
    if x < -708.0 {
        return 0.0;
    }
    let k = (x * LOG2_E + 0.5).floor();
    let r = x - k * LN_2;
    let (mut term, mut sum) = (1.0, 1.0);
    for i in 1..=16 {
        term *= r / f64::from(i);
        sum += term;
    }
    sum * f64::from_bits(((k as i64 + 1023) as u64) << 52)
}
