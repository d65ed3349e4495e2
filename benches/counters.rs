//! Counter backends: accuracy, memory and insert throughput.
//!
//! Two parts, one binary:
//!
//! 1. A markdown table printed to stdout before criterion runs. For every
//!    backend and window size it fills fresh counters from several independent
//!    windows (different uid sets) and reports the relative error of the
//!    estimate, heap bytes **measured** by a counting global allocator against
//!    the bytes the counter reports (`heap_bytes()`), bytes per distinct uid,
//!    serialized size, and insert throughput from a simple timed loop.
//! 2. Criterion benchmarks `insert/<backend>/<distinct>`: one whole fill of a
//!    fresh counter (plus its final `estimate()`) per iteration, throughput in
//!    inserts (duplicates included).
//!
//! Input: uids `u` + 12 hex digits (13 bytes, like `format!("u{:012x}", id)`),
//! ids distinct within and across windows; each distinct uid occurs 1–5 times
//! (mean 3) in shuffled order. Uid bytes and hashes are precomputed, outside
//! every timed region.
//!
//! Measured bytes are the sizes the counter requested from the allocator
//! (live-bytes delta around building it, the input excluded); malloc's own
//! per-chunk overhead and rounding are not included.
//!
//! `cargo bench --bench counters` runs everything (10^3..10^7 distinct, about
//! four minutes on 2 cores). Criterion needs 11 fills per benchmark, so a
//! backend whose single fill took over [`MAX_CRITERION_FILL`] in the table run
//! is measured by the table's timed loop only (roaring at 10^7 today).
//! `cargo test --benches` (criterion's test mode) only runs sizes up to 10^4,
//! still prints the table, and fails on broken sanity checks: exact error 0,
//! hll error < 5 %, roaring error < 0.1 %, and every backend's `heap_bytes()`
//! within 2x of the measured bytes at 10^4. `cargo bench` prints failed
//! checks but does not fail.

use criterion::{black_box, BenchmarkId, Criterion, SamplingMode, Throughput};
use distinctly::counter::{AnyCounter, CounterKind};
use distinctly::hash::uid_hash;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Counting allocator: live and peak requested bytes.
// ---------------------------------------------------------------------------

struct CountingAlloc;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

impl CountingAlloc {
    #[inline(always)]
    fn grew(by: usize) {
        let now = LIVE.fetch_add(by, Relaxed) + by;
        PEAK.fetch_max(now, Relaxed);
    }

    #[inline(always)]
    fn shrank(by: usize) {
        LIVE.fetch_sub(by, Relaxed);
    }
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            Self::grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            Self::grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        Self::shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                Self::grew(new_size - layout.size());
            } else {
                Self::shrank(layout.size() - new_size);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn live() -> usize {
    LIVE.load(Relaxed)
}

/// Starts a new peak measurement at the current live bytes.
fn reset_peak() -> usize {
    let now = live();
    PEAK.store(now, Relaxed);
    now
}

fn peak() -> usize {
    PEAK.load(Relaxed)
}

// ---------------------------------------------------------------------------
// Input.
// ---------------------------------------------------------------------------

const UID_LEN: usize = 13;

/// Window ids used by criterion (the table uses 0, 1, 2, ...).
const CRITERION_WINDOW: u64 = 4000;

/// One window's events, in arrival order.
struct Stream {
    distinct: usize,
    /// `len() * UID_LEN` bytes, uid after uid.
    uids: Vec<u8>,
    hashes: Vec<u64>,
}

impl Stream {
    fn len(&self) -> usize {
        self.hashes.len()
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A bijection on 48-bit values (xorshifts and odd multipliers mod 2^48):
/// distinct inputs give distinct, random-looking uids.
fn mix48(mut x: u64) -> u64 {
    const MASK: u64 = (1 << 48) - 1;
    x &= MASK;
    x ^= x >> 23;
    x = x.wrapping_mul(0x9e37_79b9_7f4b) & MASK;
    x ^= x >> 21;
    x = x.wrapping_mul(0xc2b2_ae3d_27d5) & MASK;
    x ^= x >> 24;
    x
}

/// `format!("u{:012x}", id)` without allocating.
fn uid_bytes(id: u64) -> [u8; UID_LEN] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'u'; UID_LEN];
    for (k, b) in out[1..].iter_mut().enumerate() {
        *b = HEX[((id >> (44 - 4 * k)) & 0xf) as usize];
    }
    out
}

/// `distinct` uids unique to `window`, each 1–5 times (mean 3), shuffled.
fn make_stream(distinct: usize, window: u64) -> Stream {
    assert!(distinct < 1 << 24 && window < 1 << 24);
    let mut rng = 0x5eed_0000_0000_0000 ^ (window << 24) ^ distinct as u64;
    let ids: Vec<[u8; UID_LEN]> = (0..distinct as u64)
        .map(|i| uid_bytes(mix48((window << 24) | i)))
        .collect();
    let id_hashes: Vec<u64> = ids.iter().map(|u| uid_hash(u)).collect();

    let mut order: Vec<u32> = Vec::with_capacity(distinct * 3 + 8);
    for i in 0..distinct as u32 {
        let copies = 1 + splitmix64(&mut rng) % 5;
        for _ in 0..copies {
            order.push(i);
        }
    }
    for i in (1..order.len()).rev() {
        let j = (splitmix64(&mut rng) % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }

    let mut uids = Vec::with_capacity(order.len() * UID_LEN);
    let mut hashes = Vec::with_capacity(order.len());
    for &i in &order {
        uids.extend_from_slice(&ids[i as usize]);
        hashes.push(id_hashes[i as usize]);
    }
    Stream {
        distinct,
        uids,
        hashes,
    }
}

/// Inserts the whole stream. With the final `estimate()` this is the unit of
/// work that both the table's timed loop and criterion measure.
#[inline(never)]
fn fill(counter: &mut AnyCounter, s: &Stream) {
    for (uid, &h) in s.uids.chunks_exact(UID_LEN).zip(&s.hashes) {
        counter.insert(uid, h);
    }
}

// ---------------------------------------------------------------------------
// Table.
// ---------------------------------------------------------------------------

const KINDS: [CounterKind; 3] = [
    CounterKind::Exact,
    CounterKind::Roaring,
    CounterKind::Hll { precision: 14 },
];

/// One counter built from one window.
struct Probe {
    rel_err: f64,
    /// Fill + estimate.
    time: Duration,
    /// Live bytes after the fill (before `estimate`), and `heap_bytes()` then.
    measured_fill: usize,
    reported_fill: usize,
    /// Same after `estimate` (which folds buffers in).
    measured_est: usize,
    reported_est: usize,
    /// Highest live bytes during fill or estimate.
    peak: usize,
    serialized: usize,
}

fn probe(kind: CounterKind, s: &Stream) -> Probe {
    let base = reset_peak();
    let t = Instant::now();
    let mut c = AnyCounter::new(kind);
    fill(&mut c, s);
    let fill_time = t.elapsed();
    let measured_fill = live().saturating_sub(base);
    let peak_fill = peak().saturating_sub(base);
    // heap_bytes() may allocate temporarily (hll); measure before it.
    let reported_fill = c.heap_bytes();

    reset_peak();
    let t = Instant::now();
    let est = black_box(c.estimate());
    let est_time = t.elapsed();
    let measured_est = live().saturating_sub(base);
    let peak_est = peak().saturating_sub(base);
    let reported_est = c.heap_bytes();
    let serialized = c.to_bytes().len();
    drop(c);

    Probe {
        rel_err: (est - s.distinct as f64).abs() / s.distinct as f64,
        time: fill_time + est_time,
        measured_fill,
        reported_fill,
        measured_est,
        reported_est,
        peak: peak_fill.max(peak_est),
        serialized,
    }
}

struct Row {
    kind: CounterKind,
    distinct: usize,
    windows: usize,
    inserts: usize,
    probes: Vec<Probe>,
}

impl Row {
    fn mean(&self, f: impl Fn(&Probe) -> f64) -> f64 {
        self.probes.iter().map(f).sum::<f64>() / self.probes.len() as f64
    }

    fn max(&self, f: impl Fn(&Probe) -> f64) -> f64 {
        self.probes.iter().map(f).fold(0.0, f64::max)
    }

    /// Mean time of one fill (+ estimate).
    fn fill_time(&self) -> Duration {
        self.probes.iter().map(|p| p.time).sum::<Duration>() / self.probes.len() as u32
    }

    /// Million inserts per second over all windows.
    fn mips(&self) -> f64 {
        let secs: f64 = self.probes.iter().map(|p| p.time.as_secs_f64()).sum();
        self.inserts as f64 / secs / 1e6
    }
}

fn windows_for(distinct: usize) -> usize {
    match distinct {
        0..=100_000 => 20,
        100_001..=1_000_000 => 5,
        _ => 2,
    }
}

fn run_table(sizes: &[usize]) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    for &n in sizes {
        let windows = windows_for(n);
        let mut size_rows: Vec<Row> = KINDS
            .iter()
            .map(|&kind| Row {
                kind,
                distinct: n,
                windows,
                inserts: 0,
                probes: Vec::with_capacity(windows),
            })
            .collect();
        for w in 0..windows {
            let s = make_stream(n, w as u64);
            for row in &mut size_rows {
                row.inserts += s.len();
                row.probes.push(probe(row.kind, &s));
            }
        }
        rows.extend(size_rows);
    }
    rows
}

fn pct(x: f64) -> String {
    format!("{:.4} %", x * 100.0)
}

fn print_table(rows: &[Row], test_mode: bool) {
    println!();
    println!(
        "## Counter backends{}",
        if test_mode {
            " (test mode: sizes <= 10^4, debug build, throughput not meaningful)"
        } else {
            ""
        }
    );
    println!();
    println!(
        "uids: 13 bytes, each distinct uid 1-5x (mean 3), shuffled; error over independent \
         windows (different uid sets). Bytes: live heap bytes requested from the allocator \
         by the counter (counting #[global_allocator]) after the fill (`meas`) and after \
         `estimate()` (`meas est`), vs `heap_bytes()` at the same points (`rep`). Throughput: \
         fill + final estimate of a fresh counter, all windows, inserts incl. duplicates."
    );
    println!();
    println!(
        "| backend | distinct | windows | err mean | err max | meas B | rep B | rep/meas \
         | meas est B | rep est B | rep/meas est | peak B | B/uid | exact overhead B/uid \
         | serialized B | ser B/uid | M ins/s | vs exact |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let n = row.distinct as f64;
        let meas = row.mean(|p| p.measured_fill as f64);
        let rep = row.mean(|p| p.reported_fill as f64);
        let meas_est = row.mean(|p| p.measured_est as f64);
        let rep_est = row.mean(|p| p.reported_est as f64);
        let peak = row.mean(|p| p.peak as f64);
        let ser = row.mean(|p| p.serialized as f64);
        let overhead = if row.kind == CounterKind::Exact {
            format!("{:.1}", (meas - (row.distinct * UID_LEN) as f64) / n)
        } else {
            "-".to_string()
        };
        let exact_mips = rows
            .iter()
            .find(|r| r.kind == CounterKind::Exact && r.distinct == row.distinct)
            .map_or(f64::NAN, Row::mips);
        println!(
            "| {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.3} | {:.0} | {:.0} | {:.3} | {:.0} \
             | {:.2} | {} | {:.0} | {:.2} | {:.1} | {:.2} |",
            row.kind,
            row.distinct,
            row.windows,
            pct(row.mean(|p| p.rel_err)),
            pct(row.max(|p| p.rel_err)),
            meas,
            rep,
            rep / meas,
            meas_est,
            rep_est,
            rep_est / meas_est,
            peak,
            meas / n,
            overhead,
            ser,
            ser / n,
            row.mips(),
            row.mips() / exact_mips,
        );
    }
    println!();
}

/// Sanity checks; returns the failures.
fn check(rows: &[Row]) -> Vec<String> {
    let mut failures = Vec::new();
    for row in rows {
        let max_err = row.max(|p| p.rel_err);
        let limit = match row.kind {
            CounterKind::Exact => 0.0,
            CounterKind::Roaring => 0.001,
            CounterKind::Hll { .. } => 0.05,
        };
        let ok = if limit == 0.0 {
            max_err == 0.0
        } else {
            max_err < limit
        };
        if !ok {
            failures.push(format!(
                "{} at {}: max relative error {} (limit {})",
                row.kind,
                row.distinct,
                pct(max_err),
                pct(limit)
            ));
        }
        if row.distinct == 10_000 {
            // Worst window, both after the fill and after `estimate()`.
            let ratios = row.probes.iter().flat_map(|p| {
                [
                    p.reported_fill as f64 / p.measured_fill as f64,
                    p.reported_est as f64 / p.measured_est as f64,
                ]
            });
            let (lo, hi) = ratios.fold((f64::INFINITY, 0.0f64), |(lo, hi), r| {
                (lo.min(r), hi.max(r))
            });
            if lo < 0.5 || hi > 2.0 {
                failures.push(format!(
                    "{} at {}: heap_bytes() / measured bytes ranges {lo:.3}..{hi:.3} over the \
                     windows, must be within 2x (0.5..2.0)",
                    row.kind, row.distinct
                ));
            }
        }
    }
    failures
}

// ---------------------------------------------------------------------------
// Criterion.
// ---------------------------------------------------------------------------

/// Criterion needs at least 11 fills per benchmark (warm-up + 10 samples).
/// Backends whose fill took longer than this in the table run are left to
/// the table's timed loop (its `M ins/s` column) to bound the run time.
const MAX_CRITERION_FILL: Duration = Duration::from_secs(8);

/// `slow`: (backend, distinct, time of one fill) measured by the table.
fn bench_inserts(c: &mut Criterion, sizes: &[usize], slow: &[(CounterKind, usize, Duration)]) {
    let mut group = c.benchmark_group("insert");
    for &n in sizes {
        let s = make_stream(n, CRITERION_WINDOW);
        group.throughput(Throughput::Elements(s.len() as u64));
        match n {
            0..=10_000 => {
                group
                    .sample_size(20)
                    .warm_up_time(Duration::from_millis(500))
                    .measurement_time(Duration::from_millis(1500))
                    .sampling_mode(SamplingMode::Flat);
            }
            // One fill takes milliseconds (10^5) to seconds (10^7): the
            // minimum of 10 samples, one fill each once it is that slow.
            _ => {
                group
                    .sample_size(10)
                    .warm_up_time(Duration::from_millis(300))
                    .measurement_time(Duration::from_secs(3))
                    .sampling_mode(SamplingMode::Flat);
            }
        }
        for kind in KINDS {
            if let Some((_, _, t)) = slow.iter().find(|&&(k, d, _)| k == kind && d == n) {
                println!(
                    "insert/{kind}/{n}: not run under criterion, one fill took {:.1} s in the \
                     table run (limit {} s); see the table's M ins/s",
                    t.as_secs_f64(),
                    MAX_CRITERION_FILL.as_secs()
                );
                continue;
            }
            group.bench_with_input(BenchmarkId::new(kind.to_string(), n), &s, |b, s| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let t = Instant::now();
                        let mut counter = AnyCounter::new(kind);
                        fill(&mut counter, s);
                        black_box(counter.estimate());
                        total += t.elapsed();
                        drop(counter);
                    }
                    total
                })
            });
        }
    }
    group.finish();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    // Criterion's rule: test mode unless run with `--bench` (cargo bench)
    // or when `--test` is given.
    let test_mode = has("--test") || !has("--bench");
    let list_mode = has("--list");

    let sizes: &[usize] = if test_mode {
        &[1_000, 10_000]
    } else {
        &[1_000, 10_000, 100_000, 1_000_000, 10_000_000]
    };

    let mut failures = Vec::new();
    let mut slow = Vec::new();
    if !list_mode {
        let t = Instant::now();
        let rows = run_table(sizes);
        print_table(&rows, test_mode);
        println!("(table computed in {:.1} s)", t.elapsed().as_secs_f64());
        failures = check(&rows);
        slow = rows
            .iter()
            .filter(|r| r.fill_time() > MAX_CRITERION_FILL)
            .map(|r| (r.kind, r.distinct, r.fill_time()))
            .collect();
        for f in &failures {
            println!("SANITY CHECK FAILED: {f}");
        }
    }

    let mut criterion = Criterion::default().configure_from_args();
    bench_inserts(&mut criterion, sizes, &slow);
    criterion.final_summary();

    // Benchmarks measure, tests check: only `cargo test --benches` fails.
    if test_mode {
        assert!(
            failures.is_empty(),
            "{} sanity check(s) failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    } else if !failures.is_empty() {
        println!("\n{} sanity check(s) failed (see above):", failures.len());
        for f in &failures {
            println!("  {f}");
        }
    }
}
