//! `cpc`: Apache DataSketches' Compressed Probabilistic Counting sketch
//! (`datasketches` crate), lgK from `DISTINCTLY_SKETCH_LGK`.
//!
//! Why CPC: for the same error it serializes smaller than any HyperLogLog
//! (its compressed form is below HLL's entropy; ~0.6/sqrt(2^lgK) standard
//! error with the HIP estimator), which matters when windows are stored or
//! shipped between instances. In memory it is a pair table while sparse,
//! then a 2^lgK-byte sliding window plus a small table of surprising values.
//!
//! Hashing: the sketch is fed the crate-wide uid hash
//! ([`crate::hash::uid_hash`]) as its 8 little-endian bytes, which the crate
//! hashes again with its own MurmurHash3 (seed 9001, the DataSketches
//! default). Feeding our stable hash rather than the uid keeps every
//! instance consistent with the other backends; feeding it as raw bytes
//! (not through Rust's `Hash` for `u64`, which is native-endian) makes the
//! result the same on every platform.
//!
//! Interoperability (tests/sketch_interop.rs, against images made by
//! DataSketches C++ 5.2.0 with scripts/golden-sketches.py): a reference CPC
//! sketch updated with the same 64-bit values is byte-for-byte our sketch,
//! with the same estimate, and a union of the two counts each uid once. On
//! the reference side "the same 64-bit value" means the same 8 bytes: C++
//! `update(uint64_t)` or `update(int64_t)` (little-endian machines), Java
//! `update(long)`, or any API hashing those 8 bytes. In Python,
//! `cpc_sketch.update(h)` takes `h` as an *unsigned* int (0 ≤ h < 2^64): the
//! binding has a `uint64` and a `float` overload, and a negative int (the
//! signed reading of a hash ≥ 2^63) silently goes through `float`, hashing a
//! double's bytes instead. Half the hashes then become other values; the
//! union with ours reads ~1.5 n (the test keeps that image as a witness).
//! `hll_sketch.update` is the opposite: it takes a *signed* int (`int64`).
//!
//! Estimate: HIP while the sketch has only seen inserts; after a merge the
//! crate switches to its ICON estimator (HIP does not survive unions), so a
//! merged sketch and a sketch fed the union directly agree within the error
//! bound, not to the last digit.
//!
//! Payload: the crate's own serialized image (the DataSketches CPC format,
//! readable by the Java, C++ and Python libraries).

use super::{Counter, CounterError, CounterKind};
use datasketches::cpc::{CpcSketch, CpcUnion};
use datasketches::hash::value::raw_bytes;

/// Smallest and largest lgK accepted by `DISTINCTLY_SKETCH_LGK` for both
/// DataSketches backends (the crate's HLL accepts 4..=21, CPC 4..=26).
pub const MIN_LG_K: u8 = 4;
pub const MAX_LG_K: u8 = 21;

#[derive(Debug, Clone)]
pub struct CpcCounter {
    /// Boxed: the sketch's inline state (~100 bytes) would otherwise grow
    /// every `AnyCounter`, whatever its kind.
    sketch: Box<CpcSketch>,
}

impl CpcCounter {
    /// # Panics
    /// If `lg_k` is outside [`MIN_LG_K`]..=[`MAX_LG_K`] (validated with the
    /// configuration).
    pub fn new(lg_k: u8) -> Self {
        assert!((MIN_LG_K..=MAX_LG_K).contains(&lg_k));
        CpcCounter {
            sketch: Box::new(CpcSketch::new(lg_k).expect("lgK in range")),
        }
    }

    pub fn lg_k(&self) -> u8 {
        self.sketch.lg_k()
    }
}

impl Counter for CpcCounter {
    #[inline]
    fn insert(&mut self, _uid: &[u8], hash: u64) {
        self.sketch
            .update(raw_bytes::from_slice(&hash.to_le_bytes()));
    }

    fn estimate(&mut self) -> f64 {
        self.sketch.estimate()
    }

    fn merge_from(&mut self, other: &Self) {
        let lg_k = self.lg_k();
        let mut union = CpcUnion::new(lg_k).expect("lgK in range");
        union.update(&self.sketch).expect("same (default) seed");
        union.update(&other.sketch).expect("same (default) seed");
        *self.sketch = union.to_sketch();
    }

    /// The crate's own account (sliding window capacity + pair table slots)
    /// plus the box. A test checks it against a counting allocator.
    fn heap_bytes(&self) -> usize {
        std::mem::size_of::<CpcSketch>() + self.sketch.estimated_size()
    }

    fn write_payload(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.sketch.serialize());
    }

    fn read_payload(kind: CounterKind, payload: &[u8]) -> Result<Self, CounterError> {
        let CounterKind::Cpc { lg_k } = kind else {
            return Err(CounterError::Corrupt("not a cpc kind"));
        };
        let sketch =
            CpcSketch::deserialize(payload).map_err(|_| CounterError::Corrupt("cpc payload"))?;
        if sketch.lg_k() != lg_k {
            return Err(CounterError::Corrupt("cpc lgK differs from header"));
        }
        // The image carries its own lengths; anything after it is corruption.
        if sketch.serialize().len() != payload.len() {
            return Err(CounterError::Corrupt("trailing bytes after cpc"));
        }
        Ok(CpcCounter {
            sketch: Box::new(sketch),
        })
    }
}

impl CpcCounter {
    /// The union of `parts` (all of lgK `lg_k`), in one union (see
    /// `Hll4Counter::union_of`).
    pub fn union_of<'a>(lg_k: u8, parts: impl Iterator<Item = &'a CpcCounter>) -> CpcCounter {
        let mut union = CpcUnion::new(lg_k).expect("lgK in range");
        for p in parts {
            union.update(&p.sketch).expect("same (default) seed");
        }
        CpcCounter {
            sketch: Box::new(union.to_sketch()),
        }
    }
}
