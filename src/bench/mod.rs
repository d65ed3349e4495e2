//! `distinctly bench`: every backend over reproducible workloads, measured.
//!
//! Why in the binary rather than only under `cargo bench`: the question
//! "which backend for my cardinality, at what cost" is asked by the people
//! who deploy, on their machines, with the build they run. So one command
//! prints a markdown table (and with `--out`, CSV and SVG charts).
//!
//! For every workload (distinct users per window × visit skew) and window,
//! one event stream is generated chunk by chunk and fed to a fresh counter of
//! every backend, chunk after chunk (so every backend sees the same events,
//! and generation stays outside the timed regions). Per backend it records:
//! relative error of the estimate, heap bytes measured by the counting
//! allocator around the fill and the first estimate, serialized bytes,
//! insert time, first-estimate time, and the time to merge the window into
//! the previous one. Rows aggregate over the windows, so error is a
//! distribution (mean, p99, max), not one sample.
//!
//! The estimated resident memory for a one-hour stream at the workload's
//! rate is derived, not run: the resident set of this process before any
//! workload (the same binary, idle) + the windows the service holds at once
//! with the default settings × the measured heap bytes per window.

pub mod chart;
pub mod groups;
pub mod report;
pub mod workload;

use crate::config::CoreConfig;
use crate::counter::{hll, AnyCounter, CounterKind};
use crate::memory::alloc;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use workload::{Chunk, Workload, CHUNK_EVENTS};

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub cardinalities: Vec<u64>,
    /// Windows per workload; `None`: [`default_windows`] per cardinality.
    pub windows: Option<u64>,
    /// Zipf exponents of repeat visits; 0 = uniform.
    pub skews: Vec<f64>,
    pub counters: Vec<CounterKind>,
    pub seed: u64,
    /// Draw a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
}

/// The default distinct users per window: 10^3 … 10^7.
pub const DEFAULT_CARDINALITIES: [u64; 5] = [1_000, 10_000, 100_000, 1_000_000, 10_000_000];

/// The backends and settings measured by default: every backend, the
/// DataSketches ones at three lgK to show the size/error trade-off.
pub fn default_counters() -> Vec<CounterKind> {
    let mut kinds = vec![
        CounterKind::Exact,
        CounterKind::Roaring,
        CounterKind::Hll {
            precision: hll::DEFAULT_PRECISION,
        },
    ];
    for lg_k in [11, 12, 14] {
        kinds.push(CounterKind::Cpc { lg_k });
    }
    for lg_k in [11, 12, 14] {
        kinds.push(CounterKind::Hll4 { lg_k });
    }
    kinds
}

/// Windows per workload: many where they are cheap (error is a
/// distribution; over 100 windows, p99 is not just the maximum), few where
/// one window is tens of millions of events, so the default run takes
/// minutes on 2 cores in a release build.
pub fn default_windows(distinct: u64) -> u64 {
    match distinct {
        0..=1_000 => 256,
        1_001..=10_000 => 128,
        10_001..=100_000 => 24,
        100_001..=1_000_000 => 8,
        1_000_001..=10_000_000 => 3,
        _ => 2,
    }
}

/// Windows the service holds at once with the default settings: open ones
/// plus emitted ones kept for corrections (`(lateness + retention) / W + 2`).
pub fn held_windows() -> u64 {
    let d = CoreConfig::default();
    let window = d.sizes().expect("default sizes")[0].nominal_seconds();
    (d.allowed_lateness_seconds + d.late_retention_seconds) / window + 2
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(
        "heap bytes cannot be measured: the counting allocator \
         (distinctly::memory::alloc::CountingAlloc) is not the global allocator"
    )]
    NotCounting,
    #[error("{0}")]
    InvalidOption(String),
    #[error("writing {}: {cause}", path.display())]
    Write {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("drawing {path}: {reason}")]
    Chart { path: PathBuf, reason: String },
}

/// Aggregated measurements of one backend on one workload.
#[derive(Debug, Clone)]
pub struct Row {
    pub kind: CounterKind,
    pub workload: Workload,
    pub windows: u64,
    /// Relative error |estimate − n| / n over the windows.
    pub err_mean: f64,
    pub err_p99: f64,
    pub err_max: f64,
    /// Mean measured heap bytes of one window's counter (after its first
    /// estimate), and what `heap_bytes()` reports then.
    pub heap_bytes: f64,
    pub reported_heap_bytes: f64,
    /// Mean highest heap bytes while filling (transient buffers included).
    pub peak_heap_bytes: f64,
    pub serialized_bytes: f64,
    /// Events (duplicates included) per second of insert time.
    pub events_per_second: f64,
    /// Mean time of the first `estimate()` after a fill.
    pub estimate_seconds: f64,
    /// Mean time to merge one window into another (`None`: one window).
    pub merge_seconds: Option<f64>,
    /// Estimated resident memory of a one-hour stream at this rate.
    pub rss_one_hour_bytes: f64,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct Report {
    pub rows: Vec<Row>,
    /// Resident set of this process before the first workload.
    pub baseline_rss_bytes: u64,
    pub held_windows: u64,
    /// Things the reader must know (skipped backends, debug build, ...).
    pub notes: Vec<String>,
    pub seed: u64,
    pub elapsed: Duration,
}

/// Per-window samples of one backend on one workload.
#[derive(Default)]
struct Samples {
    errors: Vec<f64>,
    heap: Vec<f64>,
    reported: Vec<f64>,
    peak: Vec<f64>,
    serialized: Vec<f64>,
    insert: Duration,
    events: u64,
    estimate: Vec<f64>,
    merge: Vec<f64>,
}

/// A counter being filled, with what the allocator has seen of it so far.
struct Probe {
    kind: CounterKind,
    counter: AnyCounter,
    heap: isize,
    peak: isize,
    insert: Duration,
}

/// Bytes `exact` needs per distinct uid, generously (uid ~14 B + ~13 B of
/// table, doubled while its table grows), to decide whether 10^8 fits.
const EXACT_BYTES_PER_UID: u64 = 60;

/// Runs the benchmark. Heap bytes need [`alloc::CountingAlloc`] installed
/// as the global allocator (the `distinctly` binary does).
pub fn run(opts: &BenchOptions) -> Result<Report, BenchError> {
    if !alloc::is_counting() {
        return Err(BenchError::NotCounting);
    }
    if opts.cardinalities.is_empty() || opts.counters.is_empty() || opts.skews.is_empty() {
        return Err(BenchError::InvalidOption(
            "need at least one cardinality, skew and counter".into(),
        ));
    }
    if let Some(&bad) = opts.cardinalities.iter().find(|&&n| n == 0 || n >= 1 << 32) {
        return Err(BenchError::InvalidOption(format!(
            "cardinality {bad} is outside 1..2^32"
        )));
    }
    if let Some(&bad) = opts.skews.iter().find(|s| !(0.0..=4.0).contains(*s)) {
        return Err(BenchError::InvalidOption(format!(
            "skew {bad} is outside 0..=4"
        )));
    }
    let started = Instant::now();
    let baseline_rss_bytes = crate::memory::rss_bytes().unwrap_or(0);
    let mut notes = Vec::new();
    if cfg!(debug_assertions) {
        notes.push("debug build: times are not meaningful, use `--release`".to_string());
    }

    let plan: Vec<(Workload, u64)> = opts
        .cardinalities
        .iter()
        .flat_map(|&distinct| {
            opts.skews
                .iter()
                .map(move |&skew| (Workload { distinct, skew }, 0))
        })
        .map(|(w, _)| {
            (
                w,
                opts.windows.unwrap_or_else(|| default_windows(w.distinct)),
            )
        })
        .collect();
    let bar = progress_bar(
        opts.progress,
        plan.iter().map(|(w, n)| w.events() * n).sum(),
    );

    let mut rows = Vec::new();
    for (workload, windows) in plan {
        let kinds = runnable_kinds(
            &opts.counters,
            workload.distinct,
            crate::memory::mem_available_bytes(),
            &mut notes,
        );
        bar.set_message(format!(
            "{} distinct, {}",
            workload.distinct,
            workload.visits_label()
        ));
        let samples = run_workload(workload, windows, &kinds, opts.seed, &bar);
        for (kind, s) in kinds.iter().zip(samples) {
            rows.push(aggregate(*kind, workload, windows, s, baseline_rss_bytes));
        }
    }
    bar.finish_and_clear();
    Ok(Report {
        rows,
        baseline_rss_bytes,
        held_windows: held_windows(),
        notes,
        seed: opts.seed,
        elapsed: started.elapsed(),
    })
}

/// Writes `bench.md`, `bench.csv`, `error-vs-bytes.svg` and
/// `throughput-vs-cardinality.svg` into `dir` (created if missing); returns
/// the paths written.
pub fn write_outputs(report: &Report, dir: &std::path::Path) -> Result<Vec<PathBuf>, BenchError> {
    let io = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |cause| BenchError::Write { path, cause }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let md = dir.join("bench.md");
    std::fs::write(&md, report::markdown(report)).map_err(io(&md))?;
    let csv = dir.join("bench.csv");
    std::fs::write(&csv, report::csv(report)).map_err(io(&csv))?;
    let err = dir.join("error-vs-bytes.svg");
    chart::error_vs_bytes(report, &err)?;
    let tput = dir.join("throughput-vs-cardinality.svg");
    chart::throughput_vs_cardinality(report, &tput)?;
    Ok(vec![md, csv, err, tput])
}

fn progress_bar(wanted: bool, total: u64) -> ProgressBar {
    if !wanted || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {percent:>3}% {human_pos}/{human_len} events, ETA {eta} ({msg})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// The requested kinds that fit in `available` memory at this cardinality;
/// `exact` (at 10^8, say) is skipped with a note when two windows of it (the
/// merge needs both) would not fit.
fn runnable_kinds(
    kinds: &[CounterKind],
    distinct: u64,
    available: Option<u64>,
    notes: &mut Vec<String>,
) -> Vec<CounterKind> {
    kinds
        .iter()
        .copied()
        .filter(|&kind| {
            if kind != CounterKind::Exact {
                return true;
            }
            let need = 2 * distinct * EXACT_BYTES_PER_UID;
            match available {
                Some(avail) if need > avail => {
                    notes.push(format!(
                        "exact skipped at {distinct} distinct: two windows need ~{:.1} GB, \
                         {:.1} GB available",
                        need as f64 / 1e9,
                        avail as f64 / 1e9
                    ));
                    false
                }
                _ => true,
            }
        })
        .collect()
}

fn run_workload(
    workload: Workload,
    windows: u64,
    kinds: &[CounterKind],
    seed: u64,
    bar: &ProgressBar,
) -> Vec<Samples> {
    let mut samples: Vec<Samples> = kinds.iter().map(|_| Samples::default()).collect();
    let mut previous: Vec<Option<AnyCounter>> = kinds.iter().map(|_| None).collect();
    let mut chunk = Chunk::default();
    for w in 0..windows {
        let mut stream = workload.window(seed, w);
        let mut probes: Vec<Probe> = kinds
            .iter()
            .map(|&kind| {
                let scope = alloc::AllocScope::start();
                let counter = AnyCounter::new(kind);
                let heap = scope.live_bytes();
                Probe {
                    kind,
                    counter,
                    heap,
                    peak: heap,
                    insert: Duration::ZERO,
                }
            })
            .collect();
        while stream.next_chunk(&mut chunk, CHUNK_EVENTS) {
            for p in &mut probes {
                let scope = alloc::AllocScope::start();
                let t = Instant::now();
                chunk.fill(&mut p.counter);
                p.insert += t.elapsed();
                p.peak = p.peak.max(p.heap + scope.peak_bytes());
                p.heap += scope.live_bytes();
            }
            bar.inc(chunk.len() as u64);
        }
        for ((p, s), prev) in probes.into_iter().zip(&mut samples).zip(&mut previous) {
            let Probe {
                kind,
                mut counter,
                mut heap,
                peak,
                insert,
            } = p;
            let scope = alloc::AllocScope::start();
            let t = Instant::now();
            let estimate = std::hint::black_box(counter.estimate());
            s.estimate.push(t.elapsed().as_secs_f64());
            heap += scope.live_bytes();
            let n = workload.distinct as f64;
            s.errors.push((estimate - n).abs() / n);
            s.heap.push(heap as f64);
            s.peak.push(peak.max(heap) as f64);
            s.reported.push(counter.heap_bytes() as f64);
            s.serialized.push(counter.to_bytes().len() as f64);
            s.insert += insert;
            s.events += workload.events();
            if let Some(mut earlier) = prev.take() {
                let t = Instant::now();
                earlier.merge(&counter).expect("same kind");
                s.merge.push(t.elapsed().as_secs_f64());
            }
            debug_assert_eq!(counter.kind(), kind);
            *prev = Some(counter);
        }
    }
    samples
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Nearest-rank percentile (`q` in 0..=1) of unsorted samples.
pub fn percentile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut sorted = v.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn aggregate(
    kind: CounterKind,
    workload: Workload,
    windows: u64,
    s: Samples,
    baseline: u64,
) -> Row {
    let heap = mean(&s.heap);
    Row {
        kind,
        workload,
        windows,
        err_mean: mean(&s.errors),
        err_p99: percentile(&s.errors, 0.99),
        err_max: s.errors.iter().copied().fold(0.0, f64::max),
        heap_bytes: heap,
        reported_heap_bytes: mean(&s.reported),
        peak_heap_bytes: mean(&s.peak),
        serialized_bytes: mean(&s.serialized),
        events_per_second: s.events as f64 / s.insert.as_secs_f64().max(1e-9),
        estimate_seconds: mean(&s.estimate),
        merge_seconds: (!s.merge.is_empty()).then(|| mean(&s.merge)),
        rss_one_hour_bytes: baseline as f64 + held_windows() as f64 * heap,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[3.0, 1.0], 0.99), 3.0);
    }

    #[test]
    fn exact_is_skipped_with_a_note_when_it_does_not_fit() {
        let kinds = [CounterKind::Exact, CounterKind::Cpc { lg_k: 14 }];
        let mut notes = Vec::new();
        let gb = 1_000_000_000;
        let fits = runnable_kinds(&kinds, 100_000_000, Some(24 * gb), &mut notes);
        assert_eq!(fits, kinds);
        assert!(notes.is_empty());
        let fits = runnable_kinds(&kinds, 100_000_000, Some(8 * gb), &mut notes);
        assert_eq!(fits, [CounterKind::Cpc { lg_k: 14 }]);
        assert!(
            notes[0].starts_with("exact skipped at 100000000 distinct"),
            "{notes:?}"
        );
    }

    #[test]
    fn held_windows_match_the_readme() {
        assert_eq!(held_windows(), 12);
    }

    #[test]
    fn a_tiny_run_measures_every_backend() {
        let opts = BenchOptions {
            cardinalities: vec![2_000],
            windows: Some(3),
            skews: vec![0.0, 1.0],
            counters: default_counters(),
            seed: 7,
            progress: false,
        };
        let report = run(&opts).unwrap();
        assert_eq!(report.rows.len(), 2 * default_counters().len());
        for row in &report.rows {
            assert!(row.heap_bytes > 0.0, "{row:?}");
            assert!(row.serialized_bytes > 8.0, "{row:?}");
            assert!(row.merge_seconds.is_some());
            match row.kind {
                CounterKind::Exact => assert_eq!(row.err_max, 0.0),
                _ => assert!(row.err_max < 0.05, "{row:?}"),
            }
        }
    }
}
