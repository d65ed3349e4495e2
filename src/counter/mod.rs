//! Distinct-count backends behind one trait, dispatched through one enum.
//!
//! | backend | file | what it stores | error |
//! |---|---|---|---|
//! | `exact` | [`exact`] | the uids themselves | none |
//! | `roaring` | [`roaring`] | a bitmap of 32-bit uid hashes | hash collisions, corrected in expectation |
//! | `hll` | [`hll`] | HyperLogLog++ registers | ~1.04/sqrt(2^p) standard error |
//! | `cpc` | [`cpc`] | DataSketches CPC (compressed probabilistic counting) | ~0.6/sqrt(2^lgK) |
//! | `hll4` | [`hll4`] | DataSketches HLL with 4-bit registers | ~0.84/sqrt(2^lgK) |
//!
//! Every backend can merge with another of the same kind and settings (which
//! is how partial counts from several instances combine) and serialize to a
//! versioned binary form ([`AnyCounter::to_bytes`]):
//!
//! ```text
//! offset size  field
//! 0      4     magic "DSTC"
//! 4      1     format version (1)
//! 5      1     kind: 1 exact, 2 roaring, 3 hll, 4 cpc, 5 hll4
//! 6      1     setting: HLL precision, lgK of cpc/hll4, else 0
//! 7      1     uid hash: 1 = XXH3-64, seed "distinct" (see crate::hash)
//! 8      ..    payload, kind-specific (documented in each file)
//! ```

pub mod cpc;
pub mod exact;
pub mod hll;
pub mod hll4;
pub mod roaring;

use std::fmt;
use std::str::FromStr;

pub use cpc::CpcCounter;
pub use exact::ExactCounter;
pub use hll::HllCounter;
pub use hll4::Hll4Counter;
pub use roaring::RoaringCounter;

/// The operations every backend provides.
pub trait Counter: Sized {
    /// Adds one uid. `hash` is `crate::hash::uid_hash(uid)`, computed once by
    /// the caller so that no backend hashes twice.
    fn insert(&mut self, uid: &[u8], hash: u64);

    /// The distinct count. `&mut` because sketches fold buffered inserts in
    /// first (HyperLogLog++'s `count` needs it too).
    fn estimate(&mut self) -> f64;

    /// Adds everything `other` has seen. Kinds and settings are checked by
    /// [`AnyCounter::merge`] before this is called.
    fn merge_from(&mut self, other: &Self);

    /// Heap bytes held, buffers included.
    fn heap_bytes(&self) -> usize;

    /// Appends the kind-specific payload.
    fn write_payload(&self, out: &mut Vec<u8>);

    /// Reads a payload written by `write_payload` with the same settings.
    fn read_payload(kind: CounterKind, payload: &[u8]) -> Result<Self, CounterError>;
}

/// A backend and its settings: what must match for two counters to merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CounterKind {
    Exact,
    Roaring,
    Hll { precision: u8 },
    Cpc { lg_k: u8 },
    Hll4 { lg_k: u8 },
}

/// Backend names accepted by `DISTINCTLY_COUNTER`, for messages.
pub const BACKENDS: &str = "exact, roaring, hll, cpc, hll4";
/// Default lgK of `cpc` and `hll4` (`DISTINCTLY_SKETCH_LGK`); see
/// docs/performance.md for the measurements behind it.
pub const DEFAULT_SKETCH_LG_K: u8 = 14;

impl CounterKind {
    /// Whether [`Counter::insert`] reads the uid's bytes: only `exact`
    /// stores uids, every other backend counts the hash alone. Callers that
    /// would copy uids just to pass them on can skip the copy.
    pub fn reads_uid_bytes(self) -> bool {
        matches!(self, CounterKind::Exact)
    }

    /// Backend name as used by `DISTINCTLY_COUNTER`.
    pub fn backend(self) -> &'static str {
        match self {
            CounterKind::Exact => "exact",
            CounterKind::Roaring => "roaring",
            CounterKind::Hll { .. } => "hll",
            CounterKind::Cpc { .. } => "cpc",
            CounterKind::Hll4 { .. } => "hll4",
        }
    }

    /// The backend's precision setting (HLL precision or lgK), if it has
    /// one (`distinctly_build_info`).
    pub fn precision(self) -> Option<u8> {
        match self {
            CounterKind::Exact | CounterKind::Roaring => None,
            CounterKind::Hll { precision } => Some(precision),
            CounterKind::Cpc { lg_k } | CounterKind::Hll4 { lg_k } => Some(lg_k),
        }
    }

    /// Builds a kind from a backend name, the HLL precision and the lgK of
    /// the DataSketches backends (each used only by its backend).
    pub fn from_backend(
        name: &str,
        hll_precision: u8,
        sketch_lg_k: u8,
    ) -> Result<Self, CounterError> {
        let lg_k = || {
            if (cpc::MIN_LG_K..=cpc::MAX_LG_K).contains(&sketch_lg_k) {
                Ok(sketch_lg_k)
            } else {
                Err(CounterError::InvalidLgK(sketch_lg_k))
            }
        };
        match name {
            "exact" => Ok(CounterKind::Exact),
            "roaring" => Ok(CounterKind::Roaring),
            "hll" => {
                if !(hll::MIN_PRECISION..=hll::MAX_PRECISION).contains(&hll_precision) {
                    return Err(CounterError::InvalidPrecision(hll_precision));
                }
                Ok(CounterKind::Hll {
                    precision: hll_precision,
                })
            }
            "cpc" => Ok(CounterKind::Cpc { lg_k: lg_k()? }),
            "hll4" => Ok(CounterKind::Hll4 { lg_k: lg_k()? }),
            other => Err(CounterError::UnknownBackend(other.to_string())),
        }
    }

    fn tag(self) -> (u8, u8) {
        match self {
            CounterKind::Exact => (1, 0),
            CounterKind::Roaring => (2, 0),
            CounterKind::Hll { precision } => (3, precision),
            CounterKind::Cpc { lg_k } => (4, lg_k),
            CounterKind::Hll4 { lg_k } => (5, lg_k),
        }
    }
}

/// `exact`, `roaring`, `hll-p14`, `cpc-lgk12` or `hll4-lgk12`: the `counter`
/// field of output records (kind and the setting that must match to merge).
impl fmt::Display for CounterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CounterKind::Hll { precision } => write!(f, "hll-p{precision}"),
            CounterKind::Cpc { lg_k } => write!(f, "cpc-lgk{lg_k}"),
            CounterKind::Hll4 { lg_k } => write!(f, "hll4-lgk{lg_k}"),
            other => f.write_str(other.backend()),
        }
    }
}

impl FromStr for CounterKind {
    type Err = CounterError;

    /// Parses the `Display` form (`hll`, `cpc`, `hll4` alone mean the
    /// default setting).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let setting = |v: &str| {
            v.parse::<u8>()
                .map_err(|_| CounterError::UnknownBackend(s.to_string()))
        };
        let (hll_p, lg_k) = (hll::DEFAULT_PRECISION, DEFAULT_SKETCH_LG_K);
        if let Some(p) = s.strip_prefix("hll-p") {
            CounterKind::from_backend("hll", setting(p)?, lg_k)
        } else if let Some(k) = s.strip_prefix("cpc-lgk") {
            CounterKind::from_backend("cpc", hll_p, setting(k)?)
        } else if let Some(k) = s.strip_prefix("hll4-lgk") {
            CounterKind::from_backend("hll4", hll_p, setting(k)?)
        } else {
            CounterKind::from_backend(s, hll_p, lg_k)
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CounterError {
    #[error("unknown counter backend {0:?} (expected exact, roaring, hll, cpc or hll4)")]
    UnknownBackend(String),
    #[error("HLL precision {0} is outside 4..=18")]
    InvalidPrecision(u8),
    #[error("sketch lgK {0} is outside 4..=21")]
    InvalidLgK(u8),
    #[error("cannot merge a {theirs} counter into a {ours} counter")]
    KindMismatch {
        ours: CounterKind,
        theirs: CounterKind,
    },
    #[error("not a serialized counter (bad magic)")]
    BadMagic,
    #[error("serialized counter format version {0} is not supported (this build reads 1)")]
    UnsupportedVersion(u8),
    #[error("serialized counter uses uid hash {0}, this build uses 1")]
    UnsupportedHash(u8),
    #[error("serialized counter kind {0}/{1} is unknown")]
    UnknownKind(u8, u8),
    #[error("serialized counter is corrupt: {0}")]
    Corrupt(&'static str),
}

const MAGIC: &[u8; 4] = b"DSTC";
const FORMAT_VERSION: u8 = 1;
const HASH_XXH3_DISTINCT: u8 = 1;
const HEADER_LEN: usize = 8;

/// The closed set of backends. An enum rather than `Box<dyn Counter>`: one
/// predictable branch per call, no vtable, no allocation per window.
#[derive(Debug, Clone)]
pub enum AnyCounter {
    Exact(ExactCounter),
    Roaring(RoaringCounter),
    Hll(HllCounter),
    Cpc(CpcCounter),
    Hll4(Hll4Counter),
}

macro_rules! dispatch {
    ($self:expr, $c:ident => $body:expr) => {
        match $self {
            AnyCounter::Exact($c) => $body,
            AnyCounter::Roaring($c) => $body,
            AnyCounter::Hll($c) => $body,
            AnyCounter::Cpc($c) => $body,
            AnyCounter::Hll4($c) => $body,
        }
    };
}

impl AnyCounter {
    pub fn new(kind: CounterKind) -> Self {
        match kind {
            CounterKind::Exact => AnyCounter::Exact(ExactCounter::new()),
            CounterKind::Roaring => AnyCounter::Roaring(RoaringCounter::new()),
            CounterKind::Hll { precision } => AnyCounter::Hll(HllCounter::new(precision)),
            CounterKind::Cpc { lg_k } => AnyCounter::Cpc(CpcCounter::new(lg_k)),
            CounterKind::Hll4 { lg_k } => AnyCounter::Hll4(Hll4Counter::new(lg_k)),
        }
    }

    pub fn kind(&self) -> CounterKind {
        match self {
            AnyCounter::Exact(_) => CounterKind::Exact,
            AnyCounter::Roaring(_) => CounterKind::Roaring,
            AnyCounter::Hll(c) => CounterKind::Hll {
                precision: c.precision(),
            },
            AnyCounter::Cpc(c) => CounterKind::Cpc { lg_k: c.lg_k() },
            AnyCounter::Hll4(c) => CounterKind::Hll4 { lg_k: c.lg_k() },
        }
    }

    #[inline]
    pub fn insert(&mut self, uid: &[u8], hash: u64) {
        dispatch!(self, c => c.insert(uid, hash))
    }

    pub fn estimate(&mut self) -> f64 {
        dispatch!(self, c => c.estimate())
    }

    /// The estimate rounded to a whole number of users.
    pub fn count(&mut self) -> u64 {
        self.estimate().round() as u64
    }

    pub fn heap_bytes(&self) -> usize {
        dispatch!(self, c => c.heap_bytes())
    }

    /// The union of `parts`, all of `kind` (others are skipped): one
    /// union for the DataSketches backends, a fold of [`AnyCounter::merge`]
    /// for the rest.
    pub fn merged<'a>(kind: CounterKind, parts: impl Iterator<Item = &'a AnyCounter>) -> Self {
        match kind {
            CounterKind::Hll4 { lg_k } => AnyCounter::Hll4(Hll4Counter::union_of(
                lg_k,
                parts.filter_map(|p| match p {
                    AnyCounter::Hll4(c) if c.lg_k() == lg_k => Some(c),
                    _ => None,
                }),
            )),
            CounterKind::Cpc { lg_k } => AnyCounter::Cpc(CpcCounter::union_of(
                lg_k,
                parts.filter_map(|p| match p {
                    AnyCounter::Cpc(c) if c.lg_k() == lg_k => Some(c),
                    _ => None,
                }),
            )),
            CounterKind::Roaring => {
                AnyCounter::Roaring(RoaringCounter::union_of(parts.filter_map(|p| match p {
                    AnyCounter::Roaring(c) => Some(c),
                    _ => None,
                })))
            }
            _ => {
                // From a copy of the largest part: the others are added to
                // a table that is already about its final size.
                let parts: Vec<&AnyCounter> = parts.filter(|p| p.kind() == kind).collect();
                let Some(largest) = (0..parts.len()).max_by_key(|&i| parts[i].heap_bytes()) else {
                    return AnyCounter::new(kind);
                };
                let mut acc = parts[largest].clone();
                for (i, p) in parts.iter().enumerate() {
                    if i != largest {
                        let _ = acc.merge(p);
                    }
                }
                acc
            }
        }
    }

    /// Merges `other` into `self`; both must have the same kind and settings.
    pub fn merge(&mut self, other: &AnyCounter) -> Result<(), CounterError> {
        match (self, other) {
            (AnyCounter::Exact(a), AnyCounter::Exact(b)) => a.merge_from(b),
            (AnyCounter::Roaring(a), AnyCounter::Roaring(b)) => a.merge_from(b),
            (AnyCounter::Hll(a), AnyCounter::Hll(b)) if a.precision() == b.precision() => {
                a.merge_from(b)
            }
            (AnyCounter::Cpc(a), AnyCounter::Cpc(b)) if a.lg_k() == b.lg_k() => a.merge_from(b),
            (AnyCounter::Hll4(a), AnyCounter::Hll4(b)) if a.lg_k() == b.lg_k() => a.merge_from(b),
            (a, b) => {
                return Err(CounterError::KindMismatch {
                    ours: a.kind(),
                    theirs: b.kind(),
                })
            }
        }
        Ok(())
    }

    /// The versioned binary form (header layout in the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let (kind, setting) = self.kind().tag();
        let mut out = Vec::with_capacity(HEADER_LEN + 64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[FORMAT_VERSION, kind, setting, HASH_XXH3_DISTINCT]);
        dispatch!(self, c => c.write_payload(&mut out));
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CounterError> {
        if bytes.len() < HEADER_LEN || &bytes[..4] != MAGIC {
            return Err(CounterError::BadMagic);
        }
        let [version, kind, setting, hash] = [bytes[4], bytes[5], bytes[6], bytes[7]];
        if version != FORMAT_VERSION {
            return Err(CounterError::UnsupportedVersion(version));
        }
        if hash != HASH_XXH3_DISTINCT {
            return Err(CounterError::UnsupportedHash(hash));
        }
        let payload = &bytes[HEADER_LEN..];
        let kind = match (kind, setting) {
            (1, 0) => CounterKind::Exact,
            (2, 0) => CounterKind::Roaring,
            (3, p) if (hll::MIN_PRECISION..=hll::MAX_PRECISION).contains(&p) => {
                CounterKind::Hll { precision: p }
            }
            (4, k) if (cpc::MIN_LG_K..=cpc::MAX_LG_K).contains(&k) => CounterKind::Cpc { lg_k: k },
            (5, k) if (cpc::MIN_LG_K..=cpc::MAX_LG_K).contains(&k) => CounterKind::Hll4 { lg_k: k },
            (k, s) => return Err(CounterError::UnknownKind(k, s)),
        };
        Ok(match kind {
            CounterKind::Exact => AnyCounter::Exact(ExactCounter::read_payload(kind, payload)?),
            CounterKind::Roaring => {
                AnyCounter::Roaring(RoaringCounter::read_payload(kind, payload)?)
            }
            CounterKind::Hll { .. } => AnyCounter::Hll(HllCounter::read_payload(kind, payload)?),
            CounterKind::Cpc { .. } => AnyCounter::Cpc(CpcCounter::read_payload(kind, payload)?),
            CounterKind::Hll4 { .. } => AnyCounter::Hll4(Hll4Counter::read_payload(kind, payload)?),
        })
    }
}

/// LEB128 varint helpers shared by the payload formats.
pub(crate) mod varint {
    use super::CounterError;

    pub fn write(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// Reads one varint from the front of `buf`, advancing it.
    pub fn read(buf: &mut &[u8]) -> Result<u64, CounterError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = buf
                .split_first()
                .ok_or(CounterError::Corrupt("truncated varint"))?;
            *buf = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(CounterError::Corrupt("varint too long"))
    }
}

#[cfg(test)]
mod tests;
