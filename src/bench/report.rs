//! The bench's report: a markdown table for people, a CSV for tools.
//!
//! The markdown is what `distinctly bench` prints and what docs/performance.md
//! quotes, so units are human (`13.3 KB`, `4.1 µs`); the CSV keeps raw
//! numbers (bytes, seconds, fractions) for plotting and comparisons.

use super::{Report, Row};
use std::fmt::Write;

/// Column headers of the markdown table, in order.
pub const MARKDOWN_COLUMNS: [&str; 13] = [
    "counter",
    "distinct/window",
    "visits",
    "windows",
    "err mean",
    "err p99",
    "err max",
    "heap/window",
    "serialized",
    "M events/s",
    "estimate",
    "merge",
    "est. RSS 1 h",
];

/// Column headers of the CSV, in order.
pub const CSV_COLUMNS: [&str; 19] = [
    "counter",
    "backend",
    "distinct",
    "visits",
    "skew",
    "windows",
    "err_mean",
    "err_p99",
    "err_max",
    "heap_bytes",
    "reported_heap_bytes",
    "peak_heap_bytes",
    "serialized_bytes",
    "bytes_per_uid",
    "events_per_second",
    "estimate_seconds",
    "merge_seconds",
    "rss_one_hour_bytes",
    "vs_exact_throughput",
];

/// `1.23 %`, or `0` for an exact zero.
pub fn percent(x: f64) -> String {
    if x == 0.0 {
        "0".to_string()
    } else if x >= 0.001 {
        format!("{:.2} %", x * 100.0)
    } else {
        format!("{:.4} %", x * 100.0)
    }
}

/// Decimal units: `812 B`, `13.3 KB`, `25.7 MB`, `2.6 GB`.
pub fn bytes(b: f64) -> String {
    let (v, unit) = match b.abs() {
        x if x >= 1e9 => (b / 1e9, "GB"),
        x if x >= 1e6 => (b / 1e6, "MB"),
        x if x >= 1e3 => (b / 1e3, "KB"),
        _ => return format!("{b:.0} B"),
    };
    format!("{v:.1} {unit}")
}

/// `85 ns`, `4.1 µs`, `2.3 ms`, `1.20 s`.
pub fn duration(s: f64) -> String {
    match s {
        x if x >= 1.0 => format!("{s:.2} s"),
        x if x >= 1e-3 => format!("{:.1} ms", s * 1e3),
        x if x >= 1e-6 => format!("{:.1} µs", s * 1e6),
        _ => format!("{:.0} ns", s * 1e9),
    }
}

/// `10³`-style powers of ten, anything else as digits.
pub fn cardinality(n: u64) -> String {
    const SUP: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    let exp = (n as f64).log10().round() as u32;
    if n > 1 && 10u64.checked_pow(exp) == Some(n) {
        let digits: String = exp
            .to_string()
            .chars()
            .map(|c| SUP[c.to_digit(10).unwrap_or(0) as usize])
            .collect();
        format!("10{digits}")
    } else {
        n.to_string()
    }
}

/// The full markdown: heading, table, then how to read it.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| {} |", MARKDOWN_COLUMNS.join(" | "));
    let _ = writeln!(out, "|---|---:|---|{}", "---:|".repeat(10));
    for row in &report.rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} | {} | {} |",
            row.kind,
            cardinality(row.workload.distinct),
            row.workload.visits_label(),
            row.windows,
            percent(row.err_mean),
            percent(row.err_p99),
            percent(row.err_max),
            bytes(row.heap_bytes),
            bytes(row.serialized_bytes),
            row.events_per_second / 1e6,
            duration(row.estimate_seconds),
            row.merge_seconds.map_or_else(|| "-".to_string(), duration),
            bytes(row.rss_one_hour_bytes),
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Each window: n distinct uids, 3n events (every uid once + 2n repeat visits, uniform \
         or Zipf-skewed), shuffled; error = |estimate - n| / n over independent windows. \
         heap/window: bytes requested from the allocator while the counter was built and first \
         estimated (counting global allocator; malloc overhead excluded). serialized: \
         `to_bytes()` (8-byte header included). M events/s: inserts incl. duplicates per second \
         of insert time, uid hashes precomputed. estimate: first `estimate()` after the fill. \
         merge: merging one window's counter into another's."
    );
    let _ = writeln!(
        out,
        "est. RSS 1 h: estimated, not run: {} resident before any workload (this binary, idle) \
         + {} windows held at once with the default settings ((lateness + retention) / window \
         + 2) x heap/window; a one-hour stream at this rate never holds more windows.",
        bytes(report.baseline_rss_bytes as f64),
        report.held_windows
    );
    for note in &report.notes {
        let _ = writeln!(out, "Note: {note}.");
    }
    let _ = writeln!(
        out,
        "Seed {}; {} available cores; {:.1} s.",
        report.seed,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        report.elapsed.as_secs_f64()
    );
    out
}

fn exact_throughput(report: &Report, row: &Row) -> Option<f64> {
    report
        .rows
        .iter()
        .find(|r| r.kind == crate::counter::CounterKind::Exact && r.workload == row.workload)
        .map(|r| r.events_per_second)
}

/// One header line, one line per row; raw numbers.
pub fn csv(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", CSV_COLUMNS.join(","));
    for row in &report.rows {
        let vs_exact = exact_throughput(report, row)
            .map_or_else(String::new, |e| format!("{:.4}", row.events_per_second / e));
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{:e},{:e},{:e},{:.0},{:.0},{:.0},{:.0},{:.3},{:.0},{:e},{},{:.0},{}",
            row.kind,
            row.kind.backend(),
            row.workload.distinct,
            row.workload.visits_label(),
            row.workload.skew,
            row.windows,
            row.err_mean,
            row.err_p99,
            row.err_max,
            row.heap_bytes,
            row.reported_heap_bytes,
            row.peak_heap_bytes,
            row.serialized_bytes,
            row.heap_bytes / row.workload.distinct as f64,
            row.events_per_second,
            row.estimate_seconds,
            row.merge_seconds
                .map_or_else(String::new, |m| format!("{m:e}")),
            row.rss_one_hour_bytes,
            vs_exact,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_read_well() {
        assert_eq!(percent(0.0), "0");
        assert_eq!(percent(0.0081), "0.81 %");
        assert_eq!(percent(0.000_012), "0.0012 %");
        assert_eq!(bytes(812.0), "812 B");
        assert_eq!(bytes(13_300.0), "13.3 KB");
        assert_eq!(bytes(2.57e8), "257.0 MB");
        assert_eq!(duration(85e-9), "85 ns");
        assert_eq!(duration(4.12e-6), "4.1 µs");
        assert_eq!(cardinality(1000), "10³");
        assert_eq!(cardinality(10_000_000), "10⁷");
        assert_eq!(cardinality(2000), "2000");
    }
}
