use super::*;
use crate::hash::uid_hash;
use proptest::prelude::*;
use std::collections::HashSet;

const KINDS: [CounterKind; 5] = [
    CounterKind::Exact,
    CounterKind::Roaring,
    CounterKind::Hll { precision: 14 },
    CounterKind::Cpc { lg_k: 12 },
    CounterKind::Hll4 { lg_k: 12 },
];

/// The DataSketches backends switch estimators after a merge (HIP -> ICON
/// or composite), so a merged sketch equals a directly filled one only
/// within the error bound.
fn estimator_changes_on_merge(kind: CounterKind) -> bool {
    matches!(kind, CounterKind::Cpc { .. } | CounterKind::Hll4 { .. })
}

/// Stated error bound: 4 standard errors of the backend's estimator, plus
/// one uid (rounding). CPC: ICON/HIP ~0.6/sqrt(k); HLL_4: composite after a
/// merge, up to ~1.04/sqrt(k).
fn sketch_bound(kind: CounterKind, n: f64) -> f64 {
    let sigma = match kind {
        CounterKind::Cpc { lg_k } => 0.6 / f64::from(1u32 << lg_k).sqrt(),
        CounterKind::Hll4 { lg_k } => 1.04 / f64::from(1u32 << lg_k).sqrt(),
        CounterKind::Hll { precision } => hll_sigma(precision),
        CounterKind::Exact | CounterKind::Roaring => 0.0,
    };
    4.0 * sigma * n + 1.0
}

fn uid(i: u64) -> Vec<u8> {
    format!("user-{i}").into_bytes()
}

fn filled(kind: CounterKind, ids: impl IntoIterator<Item = u64>) -> AnyCounter {
    let mut c = AnyCounter::new(kind);
    for i in ids {
        let u = uid(i);
        c.insert(&u, uid_hash(&u));
    }
    c
}

/// Standard error of HLL++ at precision p.
fn hll_sigma(p: u8) -> f64 {
    1.04 / f64::from(1u32 << p).sqrt()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn exact_equals_model_set(uids in proptest::collection::vec("[a-zä😀]{1,6}", 0..300)) {
        let mut c = AnyCounter::new(CounterKind::Exact);
        let mut model = HashSet::new();
        for u in &uids {
            c.insert(u.as_bytes(), uid_hash(u.as_bytes()));
            model.insert(u.clone());
        }
        prop_assert_eq!(c.count(), model.len() as u64);
        let AnyCounter::Exact(e) = &c else { unreachable!() };
        let stored: HashSet<String> =
            e.uids().map(|b| String::from_utf8(b.to_vec()).unwrap()).collect();
        prop_assert_eq!(stored, model);
    }

    #[test]
    fn merge_is_commutative_and_equals_union(
        a in proptest::collection::vec(0u64..5000, 0..2000),
        b in proptest::collection::vec(0u64..5000, 0..2000),
    ) {
        for kind in KINDS {
            let mut ab = filled(kind, a.iter().copied());
            ab.merge(&filled(kind, b.iter().copied())).unwrap();
            let mut ba = filled(kind, b.iter().copied());
            ba.merge(&filled(kind, a.iter().copied())).unwrap();
            let mut union = filled(kind, a.iter().chain(b.iter()).copied());
            let (x, y, u) = (ab.estimate(), ba.estimate(), union.estimate());
            if estimator_changes_on_merge(kind) {
                prop_assert!((x - y).abs() <= 1e-9 * u.max(1.0), "{kind}: {x} vs {y}");
                let truth = a.iter().chain(b.iter()).collect::<HashSet<_>>().len() as f64;
                prop_assert!((x - truth).abs() <= sketch_bound(kind, truth), "{kind}: {x} vs {truth}");
                prop_assert!((u - truth).abs() <= sketch_bound(kind, truth), "{kind}: union {u} vs {truth}");
            } else {
                prop_assert!((x - y).abs() <= 1e-9 * u.max(1.0), "{kind}: {x} vs {y}");
                prop_assert!((x - u).abs() <= 1e-9 * u.max(1.0), "{kind}: {x} vs union {u}");
            }
            if kind == CounterKind::Exact {
                let truth: HashSet<u64> = a.iter().chain(b.iter()).copied().collect();
                prop_assert_eq!(x as usize, truth.len());
            }
        }
    }

    #[test]
    fn serialization_round_trips(ids in proptest::collection::vec(0u64..100_000, 0..3000)) {
        for kind in KINDS {
            let mut c = filled(kind, ids.iter().copied());
            let bytes = c.to_bytes();
            let mut back = AnyCounter::from_bytes(&bytes).unwrap();
            prop_assert_eq!(back.kind(), kind);
            prop_assert_eq!(back.estimate(), c.estimate());
            if kind == (CounterKind::Hll4 { lg_k: 12 }) {
                // HLL_4's coupon hash set may come back in another slot
                // order: same coupons, same size, same estimate.
                let again = back.to_bytes();
                prop_assert_eq!(again.len(), bytes.len());
                prop_assert_eq!(AnyCounter::from_bytes(&again).unwrap().estimate(), c.estimate());
            } else {
                prop_assert_eq!(back.to_bytes(), bytes);
            }
        }
    }
}

#[test]
fn datasketches_stay_within_their_bounds_and_merge_consistently() {
    for kind in [
        CounterKind::Cpc { lg_k: 11 },
        CounterKind::Cpc { lg_k: 14 },
        CounterKind::Hll4 { lg_k: 11 },
        CounterKind::Hll4 { lg_k: 14 },
    ] {
        for n in [100u64, 3_000, 50_000, 400_000] {
            // Every uid twice; halves overlap by a third.
            let mut whole = filled(kind, (0..n).chain(0..n));
            let mut merged = filled(kind, 0..(2 * n / 3));
            merged.merge(&filled(kind, (n / 3)..n)).unwrap();
            let bound = sketch_bound(kind, n as f64);
            for (what, e) in [("filled", whole.estimate()), ("merged", merged.estimate())] {
                assert!((e - n as f64).abs() <= bound, "{kind} {what} at {n}: {e}");
            }
            // A serialized, deserialized and merged sketch still agrees.
            let back = AnyCounter::from_bytes(&merged.to_bytes()).unwrap();
            let mut again = back.clone();
            again.merge(&back).unwrap();
            assert_eq!(again.estimate(), merged.estimate(), "{kind} at {n}");
        }
    }
}

#[test]
fn heap_bytes_match_a_counting_allocator() {
    use crate::memory::alloc::AllocScope;
    for kind in [
        CounterKind::Roaring,
        CounterKind::Cpc { lg_k: 12 },
        CounterKind::Hll4 { lg_k: 12 },
        CounterKind::Cpc { lg_k: 16 },
        CounterKind::Hll4 { lg_k: 16 },
    ] {
        for n in [0u64, 10, 1_000, 100_000, 1_000_000] {
            let uids: Vec<Vec<u8>> = (0..n).map(uid).collect();
            let scope = AllocScope::start();
            let mut c = AnyCounter::new(kind);
            for u in &uids {
                c.insert(u, uid_hash(u));
            }
            let measured = scope.live_bytes() as f64;
            let reported = c.heap_bytes() as f64;
            assert!(
                (reported - measured).abs() <= 0.05 * measured + 64.0,
                "{kind} at {n}: heap_bytes() {reported} vs measured {measured}"
            );
        }
    }
}

#[test]
fn sketches_stay_within_their_bounds_from_1e3_to_1e6() {
    for n in [1_000u64, 10_000, 100_000, 1_000_000] {
        // Every uid inserted twice: duplicates must not count.
        let mut roaring = filled(CounterKind::Roaring, (0..n).chain(0..n));
        let mut hll = filled(CounterKind::Hll { precision: 14 }, (0..n).chain(0..n));
        let r = (roaring.estimate() - n as f64).abs() / n as f64;
        let h = (hll.estimate() - n as f64).abs() / n as f64;
        // roaring: collision-corrected; residual std error ~1e-5.
        assert!(r <= 1e-4, "roaring at {n}: relative error {r}");
        // hll: within 3 standard errors (deterministic: the hash is fixed).
        assert!(h <= 3.0 * hll_sigma(14), "hll at {n}: relative error {h}");
    }
}

#[test]
fn roaring_collision_correction_inverts_expected_occupancy() {
    let m = 4_294_967_296.0f64;
    for n in [1e3, 1e6, 1e8, 1e9] {
        let expected_occupied = m * (1.0 - (-n / m).exp());
        let back = RoaringCounter::correct_collisions(expected_occupied.round() as u64);
        assert!((back - n).abs() / n < 1e-6, "{n}: {back}");
    }
    // Without correction 10^8 distinct hashes lose ~1.2 % to collisions.
    let occupied_1e8 = m * (1.0 - (-1e8 / m).exp());
    assert!((1e8 - occupied_1e8) / 1e8 > 0.011);
}

/// A dense HyperLogLog reference: same index/rank split as HLL++, registers
/// merged by max, raw estimate with linear counting for small ranges.
struct DenseReference {
    p: u8,
    regs: Vec<u8>,
}

impl DenseReference {
    fn new(p: u8) -> Self {
        DenseReference {
            p,
            regs: vec![0; 1 << p],
        }
    }
    fn insert(&mut self, hash: u64) {
        let idx = (hash >> (64 - self.p)) as usize;
        let rank = ((hash << self.p) | (1 << (self.p - 1))).leading_zeros() as u8 + 1;
        self.regs[idx] = self.regs[idx].max(rank);
    }
    fn estimate(&self) -> f64 {
        let m = self.regs.len() as f64;
        let sum: f64 = self.regs.iter().map(|&r| 2f64.powi(-i32::from(r))).sum();
        let raw = 0.7213 / (1.0 + 1.079 / m) * m * m / sum;
        let zeros = self.regs.iter().filter(|&&r| r == 0).count();
        if zeros > 0 && raw <= 2.5 * m {
            m * (m / zeros as f64).ln()
        } else {
            raw
        }
    }
}

#[test]
fn hll_merges_agree_with_the_union_and_a_dense_reference() {
    // Sizes straddle the sparse/dense switch; halves overlap by a third.
    for n in [300u64, 3_000, 12_000, 60_000, 400_000] {
        let a = 0..(2 * n / 3);
        let b = (n / 3)..n;
        let kind = CounterKind::Hll { precision: 14 };
        let mut merged = filled(kind, a.clone());
        merged.merge(&filled(kind, b.clone())).unwrap();
        // Merging the same data twice changes nothing (idempotence).
        merged.merge(&filled(kind, b.clone())).unwrap();
        let mut union = filled(kind, 0..n);
        let mut reference = DenseReference::new(14);
        for i in 0..n {
            reference.insert(uid_hash(&uid(i)));
        }
        let (m, u, r) = (merged.estimate(), union.estimate(), reference.estimate());
        let bound = 3.0 * hll_sigma(14) * n as f64;
        assert!((m - n as f64).abs() <= bound, "n={n}: merged {m}");
        assert!((r - n as f64).abs() <= bound, "n={n}: reference {r}");
        assert!(
            (m - u).abs() <= 0.002 * n as f64,
            "n={n}: merged {m} vs union {u}"
        );
    }
}

#[test]
fn merging_different_kinds_is_a_typed_error() {
    let mut exact = AnyCounter::new(CounterKind::Exact);
    let err = exact
        .merge(&AnyCounter::new(CounterKind::Roaring))
        .unwrap_err();
    assert_eq!(
        err,
        CounterError::KindMismatch {
            ours: CounterKind::Exact,
            theirs: CounterKind::Roaring
        }
    );
    let mut p14 = AnyCounter::new(CounterKind::Hll { precision: 14 });
    let err = p14
        .merge(&AnyCounter::new(CounterKind::Hll { precision: 12 }))
        .unwrap_err();
    assert!(err.to_string().contains("hll-p12"), "{err}");
    let mut cpc = AnyCounter::new(CounterKind::Cpc { lg_k: 12 });
    let err = cpc
        .merge(&AnyCounter::new(CounterKind::Cpc { lg_k: 11 }))
        .unwrap_err();
    assert!(err.to_string().contains("cpc-lgk11"), "{err}");
    assert!(cpc
        .merge(&AnyCounter::new(CounterKind::Hll4 { lg_k: 12 }))
        .is_err());
}

#[test]
fn corrupt_serialized_forms_are_refused() {
    let good = filled(CounterKind::Exact, 0..10).to_bytes();
    assert_eq!(&good[..8], b"DSTC\x01\x01\x00\x01");
    assert_eq!(
        AnyCounter::from_bytes(b"nope").unwrap_err(),
        CounterError::BadMagic
    );
    let mut v2 = good.clone();
    v2[4] = 2;
    assert_eq!(
        AnyCounter::from_bytes(&v2).unwrap_err(),
        CounterError::UnsupportedVersion(2)
    );
    let mut other_hash = good.clone();
    other_hash[7] = 9;
    assert_eq!(
        AnyCounter::from_bytes(&other_hash).unwrap_err(),
        CounterError::UnsupportedHash(9)
    );
    let mut unknown = good.clone();
    unknown[5] = 7;
    assert_eq!(
        AnyCounter::from_bytes(&unknown).unwrap_err(),
        CounterError::UnknownKind(7, 0)
    );
    assert!(AnyCounter::from_bytes(&good[..good.len() - 1]).is_err());
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(AnyCounter::from_bytes(&trailing).is_err());
    for kind in [
        CounterKind::Roaring,
        CounterKind::Hll { precision: 14 },
        CounterKind::Cpc { lg_k: 12 },
        CounterKind::Hll4 { lg_k: 12 },
    ] {
        let bytes = filled(kind, 0..5000).to_bytes();
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(AnyCounter::from_bytes(&trailing).is_err(), "{kind}");
        assert!(
            AnyCounter::from_bytes(&bytes[..bytes.len() / 2]).is_err(),
            "{kind}"
        );
    }
}

#[test]
fn kind_names_round_trip() {
    for kind in KINDS.iter().copied().chain([
        CounterKind::Hll { precision: 4 },
        CounterKind::Cpc { lg_k: 21 },
        CounterKind::Hll4 { lg_k: 4 },
    ]) {
        assert_eq!(kind.to_string().parse::<CounterKind>().unwrap(), kind);
    }
    assert_eq!(CounterKind::Cpc { lg_k: 11 }.to_string(), "cpc-lgk11");
    assert_eq!(CounterKind::Hll4 { lg_k: 12 }.to_string(), "hll4-lgk12");
    assert_eq!(
        "cpc".parse::<CounterKind>().unwrap(),
        CounterKind::Cpc {
            lg_k: DEFAULT_SKETCH_LG_K
        }
    );
    assert!("cpc-lgk22".parse::<CounterKind>().is_err());
    assert!("hll4-lgk3".parse::<CounterKind>().is_err());
    assert_eq!(
        "hll".parse::<CounterKind>().unwrap(),
        CounterKind::Hll { precision: 14 }
    );
    assert!("hll-p19".parse::<CounterKind>().is_err());
    assert!("bloom".parse::<CounterKind>().is_err());
}

#[test]
fn exact_memory_is_uid_bytes_plus_at_most_24_per_uid() {
    for n in [1_000u64, 100_000] {
        let c = filled(CounterKind::Exact, 0..n);
        let uid_bytes: usize = (0..n).map(|i| uid(i).len()).sum();
        let overhead = (c.heap_bytes() - uid_bytes) as f64 / n as f64;
        assert!(overhead <= 24.0, "n={n}: {overhead:.1} bytes/uid overhead");
    }
}

#[test]
fn merged_is_the_fold_of_merges() {
    let kinds = [
        CounterKind::Exact,
        CounterKind::Roaring,
        CounterKind::Hll { precision: 12 },
        CounterKind::Cpc { lg_k: 11 },
        CounterKind::Hll4 { lg_k: 11 },
    ];
    for kind in kinds {
        // Overlapping parts, one empty, one with unflushed hashes.
        let parts: Vec<AnyCounter> = (0..6u64)
            .map(|i| filled(kind, (i * 700)..(i * 700 + if i == 3 { 0 } else { 1500 })))
            .collect();
        let mut fold = AnyCounter::new(kind);
        for p in &parts {
            fold.merge(p).unwrap();
        }
        let mut merged = AnyCounter::merged(kind, parts.iter());
        let (a, b) = (fold.count() as f64, merged.count() as f64);
        if matches!(kind, CounterKind::Exact | CounterKind::Roaring) {
            assert_eq!(a, b, "{kind}");
            assert_eq!(b, 5000.0, "{kind}");
        } else {
            assert!((a - b).abs() / a < 0.02, "{kind}: {a} vs {b}");
        }
        assert_eq!(AnyCounter::merged(kind, std::iter::empty()).count(), 0);
    }
}
