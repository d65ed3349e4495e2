//! `hll`: HyperLogLog++ from the `hyperloglogplus` crate.
//!
//! Precision `p` (`DISTINCTLY_HLL_PRECISION`, 4..=18) gives 2^p registers and a
//! standard error of about 1.04/sqrt(2^p): 0.81 % at the default 14. Small
//! cardinalities use the crate's sparse mode (25-bit precision, linear
//! counting), which is near-exact below a few thousand.
//!
//! How the crate's known weaknesses are handled:
//! - It hashes values itself with a `BuildHasher`. We feed it the crate-wide
//!   uid hash through [`PassThrough`], a hasher that returns the `u64` it is
//!   given, so sketches from different instances agree on every register,
//!   and `PassThrough` is serializable, which the crate's serde support needs.
//! - `count` takes `&mut self` and walks every register: the estimate is
//!   cached until the next insert or merge.
//! - Its sparse-mode merge is reported to keep duplicate indices (its issue
//!   #19). Merges are tested against a sketch built from the union and
//!   against a dense reference implementation in `counter::tests`.
//!
//! Payload: the crate's serde form encoded with `postcard`. It is tied to
//! `hyperloglogplus` 0.4; a layout change there means a new format version.

use super::{Counter, CounterError, CounterKind};
use hyperloglogplus::{HyperLogLog, HyperLogLogPlus};
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};

pub const MIN_PRECISION: u8 = 4;
pub const MAX_PRECISION: u8 = 18;
pub const DEFAULT_PRECISION: u8 = 14;

/// Hands the crate the uid hash unchanged.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct PassThrough;

#[derive(Debug, Default)]
pub struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    #[inline(always)]
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; anything else still hashes deterministically.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    #[inline(always)]
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

impl BuildHasher for PassThrough {
    type Hasher = PassThroughHasher;

    #[inline(always)]
    fn build_hasher(&self) -> PassThroughHasher {
        PassThroughHasher(0)
    }
}

type Sketch = HyperLogLogPlus<u64, PassThrough>;

#[derive(Debug, Clone)]
pub struct HllCounter {
    sketch: Sketch,
    precision: u8,
    /// Estimate since the last change (`count` is a full register walk).
    cached: Option<f64>,
    /// Heap size since the last change (measured through the serde form).
    heap: Cell<Option<usize>>,
}

impl HllCounter {
    /// # Panics
    /// If `precision` is outside 4..=18 (validated with the configuration).
    pub fn new(precision: u8) -> Self {
        let sketch = Sketch::new(precision, PassThrough).expect("precision validated by config");
        HllCounter {
            sketch,
            precision,
            cached: None,
            heap: Cell::new(None),
        }
    }

    pub fn precision(&self) -> u8 {
        self.precision
    }

    fn changed(&mut self) {
        self.cached = None;
        self.heap.set(None);
    }
}

/// The crate's serde layout, read back to learn how much it holds.
#[derive(Deserialize)]
struct Layout {
    _builder: PassThrough,
    _precision: u8,
    _counts: (usize, usize, usize),
    tmpset: Vec<u32>,
    sparse: SparseLayout,
    registers: Option<RegistersLayout>,
}

#[derive(Deserialize)]
struct SparseLayout {
    _count: usize,
    _last: u32,
    buf: Vec<u8>,
}

#[derive(Deserialize)]
struct RegistersLayout {
    buf: Vec<u32>,
    _count: usize,
    _zeros: usize,
}

impl Counter for HllCounter {
    #[inline]
    fn insert(&mut self, _uid: &[u8], hash: u64) {
        self.sketch.insert(&hash);
        self.changed();
    }

    fn estimate(&mut self) -> f64 {
        if let Some(v) = self.cached {
            return v;
        }
        let v = self.sketch.count();
        self.cached = Some(v);
        v
    }

    fn merge_from(&mut self, other: &Self) {
        self.sketch
            .merge(&other.sketch)
            .expect("precision checked by AnyCounter::merge");
        self.changed();
    }

    fn heap_bytes(&self) -> usize {
        if let Some(h) = self.heap.get() {
            return h;
        }
        let bytes = postcard::to_allocvec(&self.sketch).expect("serializable");
        let layout: Layout = postcard::from_bytes(&bytes).expect("own layout");
        // tmpset: a std HashSet<u32> (4-byte slots + 1 control byte, load 7/8).
        let tmp_buckets = if layout.tmpset.is_empty() {
            0
        } else {
            (layout.tmpset.len() * 8 / 7 + 1).next_power_of_two()
        };
        let h = tmp_buckets * 5
            + layout.sparse.buf.len()
            + layout.registers.map_or(0, |r| r.buf.len() * 4);
        self.heap.set(Some(h));
        h
    }

    fn write_payload(&self, out: &mut Vec<u8>) {
        let bytes = postcard::to_allocvec(&self.sketch).expect("serializable");
        out.extend_from_slice(&bytes);
    }

    fn read_payload(kind: CounterKind, payload: &[u8]) -> Result<Self, CounterError> {
        let CounterKind::Hll { precision } = kind else {
            return Err(CounterError::Corrupt("not an hll kind"));
        };
        let (sketch, rest): (Sketch, &[u8]) =
            postcard::take_from_bytes(payload).map_err(|_| CounterError::Corrupt("hll payload"))?;
        if !rest.is_empty() {
            return Err(CounterError::Corrupt("trailing bytes after hll"));
        }
        let layout: Layout =
            postcard::from_bytes(payload).map_err(|_| CounterError::Corrupt("hll payload"))?;
        if layout._precision != precision {
            return Err(CounterError::Corrupt("hll precision differs from header"));
        }
        Ok(HllCounter {
            sketch,
            precision,
            cached: None,
            heap: Cell::new(None),
        })
    }
}
