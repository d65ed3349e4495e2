//! `distinctly bench` on a tiny workload: the table's shape, exact's zero
//! error, and the files `--out` writes (CSV rows, SVG that parses as XML
//! far enough to have a root `<svg>` element and balanced `<text>` tags).

mod common;

use common::*;
use std::process::Command;

const COUNTERS: &str = "exact,roaring,hll-p14,cpc-lgk11,hll4-lgk12";
const CARDINALITIES: [&str; 2] = ["1000", "10000"];
const SKEWS: usize = 2;

fn bench(extra: &[&str]) -> (String, String) {
    let out = Command::new(BIN)
        .args([
            "bench",
            "--cardinalities",
            &CARDINALITIES.join(","),
            "--windows",
            "4",
        ])
        .args(["--counters", COUNTERS, "--skews", "0,1"])
        .args(extra)
        .output()
        .expect("run bench");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The table's rows, split into trimmed cells (header and rule included).
fn table(markdown: &str) -> Vec<Vec<String>> {
    markdown
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

#[test]
fn the_table_has_one_row_per_backend_and_workload() {
    let (stdout, stderr) = bench(&[]);
    // No terminal here, so no progress bar on stderr.
    assert!(stderr.is_empty(), "{stderr}");
    let rows = table(&stdout);
    let header = &rows[0];
    assert_eq!(
        header,
        &distinctly::bench::report::MARKDOWN_COLUMNS
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
    );
    for col in [
        "counter",
        "err mean",
        "err p99",
        "err max",
        "heap/window",
        "serialized",
    ] {
        assert!(header.iter().any(|h| h == col), "missing {col}");
    }
    let body = &rows[2..];
    let counters: Vec<&str> = COUNTERS.split(',').collect();
    assert_eq!(body.len(), counters.len() * CARDINALITIES.len() * SKEWS);
    for row in body {
        assert_eq!(row.len(), header.len(), "{row:?}");
        assert!(counters.contains(&row[0].as_str()), "{row:?}");
        assert_eq!(row[3], "4", "windows: {row:?}");
        if row[0] == "exact" {
            assert_eq!(&row[4..7], ["0", "0", "0"], "exact must be exact: {row:?}");
        } else {
            assert!(row[6].ends_with('%'), "{row:?}");
        }
    }
    for counter in &counters {
        for n in ["10³", "10⁴"] {
            for visits in ["uniform", "zipf-1"] {
                assert!(
                    body.iter()
                        .any(|r| r[0] == *counter && r[1] == n && r[2] == visits),
                    "no row for {counter} {n} {visits}"
                );
            }
        }
    }
    assert!(stdout.contains("est. RSS 1 h: estimated"), "{stdout}");
}

#[test]
fn out_writes_markdown_csv_and_svg_charts() {
    // Not created: `--out` makes it.
    let dir = std::env::temp_dir().join(unique("distinctly-bench"));
    let (stdout, _) = bench(&["--out", dir.to_str().unwrap(), "--seed", "9"]);

    let md = std::fs::read_to_string(dir.join("bench.md")).unwrap();
    assert_eq!(md, stdout);

    let csv = std::fs::read_to_string(dir.join("bench.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header, distinctly::bench::report::CSV_COLUMNS);
    let records: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(records.len(), 5 * CARDINALITIES.len() * SKEWS);
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    for r in &records {
        assert_eq!(r.len(), header.len(), "{r:?}");
        let err_max: f64 = r[col("err_max")].parse().unwrap();
        let heap: f64 = r[col("heap_bytes")].parse().unwrap();
        let eps: f64 = r[col("events_per_second")].parse().unwrap();
        assert!(heap > 0.0 && eps > 0.0, "{r:?}");
        if r[col("counter")] == "exact" {
            assert_eq!(err_max, 0.0);
        }
    }

    for name in ["error-vs-bytes.svg", "throughput-vs-cardinality.svg"] {
        let svg = std::fs::read_to_string(dir.join(name)).unwrap();
        let svg = svg.trim();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{name}");
        assert_eq!(
            svg.matches("<text").count(),
            svg.matches("</text>").count(),
            "{name}"
        );
        assert!(
            svg.contains("<polyline") && svg.contains("<circle"),
            "{name}"
        );
        // One legend entry per counter (uniform visits are charted).
        for counter in COUNTERS.split(',') {
            assert!(
                svg.contains(&format!("{counter} (uniform)")),
                "{name}: {counter}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_options_are_refused_with_a_message() {
    let out = Command::new(BIN)
        .args(["bench", "--quick", "--counters", "exact,bloom"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--counters"));
}
