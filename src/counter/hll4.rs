//! `hll4`: Apache DataSketches' HyperLogLog in its HLL_4 form
//! (`datasketches` crate), lgK from `DISTINCTLY_SKETCH_LGK`.
//!
//! Why next to `hll`: 4-bit registers (with an exception table for the rare
//! large values) hold 2^lgK registers in 2^(lgK-1) bytes, half of the 6-bit
//! packing `hll` uses, and the HIP estimator gives ~0.84/sqrt(2^lgK)
//! standard error instead of HLL++'s 1.04/sqrt(2^p). Small windows stay in
//! the crate's coupon list/set modes (near-exact, a few bytes per uid).
//!
//! Hashing: like [`super::cpc`], the sketch gets the crate-wide uid hash as
//! 8 little-endian bytes (hashed again by the crate's MurmurHash3, seed
//! 9001), so every instance and platform agrees, and a reference HLL_4
//! sketch fed the same 8 bytes is byte-for-byte ours (compact image), with
//! the same estimate, and merges with ours (tests/sketch_interop.rs, against
//! DataSketches C++ 5.2.0 images from scripts/golden-sketches.py). The same 8
//! bytes: C++ `update(int64_t)`/`update(uint64_t)`, Java `update(long)`, and
//! in Python `hll_sketch.update(h)` with `h` as a *signed* int (the binding
//! takes an `int64`; an int ≥ 2^63 silently goes through its `float`
//! overload), unlike `cpc_sketch.update`, which takes it unsigned.
//!
//! Merge: through an `HllUnion` (an 8-bit register gadget), converted back to
//! HLL_4. A merged sketch uses the composite estimator (HIP does not survive
//! unions), so it agrees with a sketch fed the union within the error bound.
//!
//! Payload: the crate's own serialized image (the DataSketches HLL format,
//! compact form, readable by the Java, C++ and Python libraries). It equals
//! the C++ library's compact image of the same sketch except, when there are
//! exceptions, byte 4 (lgArr): the crate writes 0, C++ its exception table's
//! size; every reader ignores that byte in compact images.

use super::{Counter, CounterError, CounterKind};
use datasketches::hash::value::raw_bytes;
use datasketches::hll::{HllSketch, HllType, HllUnion};

pub use super::cpc::{MAX_LG_K, MIN_LG_K};

#[derive(Debug, Clone)]
pub struct Hll4Counter {
    /// Boxed to keep `AnyCounter` small (see [`super::cpc::CpcCounter`]).
    sketch: Box<HllSketch>,
}

impl Hll4Counter {
    /// # Panics
    /// If `lg_k` is outside [`MIN_LG_K`]..=[`MAX_LG_K`] (validated with the
    /// configuration).
    pub fn new(lg_k: u8) -> Self {
        assert!((MIN_LG_K..=MAX_LG_K).contains(&lg_k));
        Hll4Counter {
            sketch: Box::new(HllSketch::new(lg_k, HllType::Hll4).expect("lgK in range")),
        }
    }

    pub fn lg_k(&self) -> u8 {
        self.sketch.lg_config_k()
    }
}

impl Counter for Hll4Counter {
    #[inline]
    fn insert(&mut self, _uid: &[u8], hash: u64) {
        self.sketch
            .update(raw_bytes::from_slice(&hash.to_le_bytes()));
    }

    fn estimate(&mut self) -> f64 {
        self.sketch.estimate()
    }

    /// The union replays a sketch still in coupon (list/set) mode as
    /// inserts, and HIP depends on insert order, so `a ∪ b` and `b ∪ a`
    /// could differ in the last digits. Feeding the union in a canonical
    /// order (by estimate, then serialized image) makes merge commutative.
    fn merge_from(&mut self, other: &Self) {
        let (mine, theirs) = (&*self.sketch, &*other.sketch);
        let order = mine
            .estimate()
            .total_cmp(&theirs.estimate())
            .then_with(|| mine.serialize().cmp(&theirs.serialize()));
        let (first, second) = if order.is_le() {
            (mine, theirs)
        } else {
            (theirs, mine)
        };
        let mut union = HllUnion::new(self.lg_k()).expect("lgK in range");
        union.update(first);
        union.update(second);
        *self.sketch = union.to_sketch(HllType::Hll4);
    }

    /// The crate's own account (packed registers + exception table, or the
    /// coupon list/set) plus the box. A test checks it against a counting
    /// allocator.
    fn heap_bytes(&self) -> usize {
        std::mem::size_of::<HllSketch>() + self.sketch.estimated_size()
    }

    fn write_payload(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.sketch.serialize());
    }

    fn read_payload(kind: CounterKind, payload: &[u8]) -> Result<Self, CounterError> {
        let CounterKind::Hll4 { lg_k } = kind else {
            return Err(CounterError::Corrupt("not an hll4 kind"));
        };
        let sketch =
            HllSketch::deserialize(payload).map_err(|_| CounterError::Corrupt("hll4 payload"))?;
        if sketch.lg_config_k() != lg_k || sketch.target_type() != HllType::Hll4 {
            return Err(CounterError::Corrupt("hll4 sketch differs from header"));
        }
        if sketch.serialize().len() != payload.len() {
            return Err(CounterError::Corrupt("trailing bytes after hll4"));
        }
        Ok(Hll4Counter {
            sketch: Box::new(sketch),
        })
    }
}

impl Hll4Counter {
    /// The union of `parts` (all of lgK `lg_k`), in one union: a fold of
    /// [`Counter::merge_from`] converts back to a sketch at every step.
    pub fn union_of<'a>(lg_k: u8, parts: impl Iterator<Item = &'a Hll4Counter>) -> Hll4Counter {
        let mut union = HllUnion::new(lg_k).expect("lgK in range");
        for p in parts {
            union.update(&p.sketch);
        }
        Hll4Counter {
            sketch: Box::new(union.to_sketch(HllType::Hll4)),
        }
    }
}
