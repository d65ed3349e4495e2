//! Counter backends: accuracy, memory and insert throughput.
//!
//! Two parts, one binary:
//!
//! 1. The table of `distinctly bench` (the library's `distinctly::bench`:
//!    same workloads, counting allocator and report), printed to stdout
//!    before criterion runs, followed by sanity checks.
//! 2. Criterion benchmarks `insert/<counter>/<distinct>`: one whole fill of a
//!    fresh counter (plus its final `estimate()`) per iteration, throughput in
//!    inserts (duplicates included), on one window of the bench's uniform
//!    workload (uid bytes and hashes precomputed).
//!
//! `cargo bench --bench counters` runs everything (10^3..10^7 distinct).
//! Criterion needs 11 fills per benchmark, so a backend whose single fill
//! took over [`MAX_CRITERION_FILL`] in the table run is measured by the
//! table only. `cargo test --benches` (criterion's test mode) only runs
//! sizes up to 10^4 and fails on broken sanity checks: exact error 0,
//! sketches (hll, cpc, hll4) max error < 5 %, roaring < 0.1 %, and every
//! backend's `heap_bytes()` within 2x of the measured bytes at 10^4.
//! `cargo bench` prints failed checks but does not fail.

use criterion::{black_box, BenchmarkId, Criterion, SamplingMode, Throughput};
use distinctly::bench::workload::Workload;
use distinctly::bench::{self, report, BenchOptions, Row};
use distinctly::counter::{AnyCounter, CounterKind};
use distinctly::memory::alloc::CountingAlloc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Seed of the workloads; criterion's window is one the table does not use.
const SEED: u64 = 42;
const CRITERION_WINDOW: u64 = 4000;

fn run_table(sizes: &[u64], windows: Option<u64>) -> Vec<Row> {
    let opts = BenchOptions {
        cardinalities: sizes.to_vec(),
        windows,
        skews: vec![0.0],
        counters: bench::default_counters(),
        seed: SEED,
        progress: false,
    };
    let report = bench::run(&opts).expect("bench run");
    println!();
    println!("## Counter backends");
    println!();
    print!("{}", report::markdown(&report));
    report.rows
}

/// Sanity checks; returns the failures.
fn check(rows: &[Row]) -> Vec<String> {
    let mut failures = Vec::new();
    for row in rows {
        let limit = match row.kind {
            CounterKind::Exact => 0.0,
            CounterKind::Roaring => 0.001,
            _ => 0.05,
        };
        let ok = if limit == 0.0 {
            row.err_max == 0.0
        } else {
            row.err_max < limit
        };
        let n = row.workload.distinct;
        if !ok {
            failures.push(format!(
                "{} at {n}: max relative error {} (limit {})",
                row.kind,
                report::percent(row.err_max),
                report::percent(limit)
            ));
        }
        let ratio = row.reported_heap_bytes / row.heap_bytes;
        if n == 10_000 && !(0.5..=2.0).contains(&ratio) {
            failures.push(format!(
                "{} at {n}: heap_bytes() / measured bytes = {ratio:.3}, must be within 2x",
                row.kind
            ));
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
fn bench_inserts(
    c: &mut Criterion,
    sizes: &[u64],
    kinds: &[CounterKind],
    slow: &[(CounterKind, u64, Duration)],
) {
    let mut group = c.benchmark_group("insert");
    for &n in sizes {
        let workload = Workload {
            distinct: n,
            skew: 0.0,
        };
        let s = workload.window(SEED, CRITERION_WINDOW).collect_all();
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
        for &kind in kinds {
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
                        s.fill(&mut counter);
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

    let sizes: &[u64] = if test_mode {
        &[1_000, 10_000]
    } else {
        &[1_000, 10_000, 100_000, 1_000_000, 10_000_000]
    };

    let mut failures = Vec::new();
    let mut slow = Vec::new();
    if !list_mode {
        let t = Instant::now();
        let rows = run_table(sizes, test_mode.then_some(8));
        println!("(table computed in {:.1} s)", t.elapsed().as_secs_f64());
        failures = check(&rows);
        slow = rows
            .iter()
            .map(|r| {
                let fill = r.workload.events() as f64 / r.events_per_second;
                (r.kind, r.workload.distinct, Duration::from_secs_f64(fill))
            })
            .filter(|&(_, _, fill)| fill > MAX_CRITERION_FILL)
            .collect();
        for f in &failures {
            println!("SANITY CHECK FAILED: {f}");
        }
    }

    let mut criterion = Criterion::default().configure_from_args();
    bench_inserts(&mut criterion, sizes, &bench::default_counters(), &slow);
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
