//! SVG charts of a bench report (`plotters`, SVG backend only: no fonts or
//! bitmap libraries needed; text is laid out by the viewer).
//!
//! Two pictures answer the two questions people ask: what does accuracy
//! cost in memory (error vs heap bytes per window, one point per backend and
//! workload), and how fast is each backend as windows grow (insert
//! throughput vs distinct users per window).

use super::{BenchError, Report, Row};
use plotters::prelude::*;
use std::path::Path;

/// One line (and its points) of a chart.
struct Series {
    label: String,
    points: Vec<(f64, f64)>,
}

struct Spec<'a> {
    title: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
}

/// Groups rows by counter (in first-seen order) into (x, y) points, in row
/// order: by cardinality, so a line follows a backend as windows grow.
fn series(rows: &[Row], x: impl Fn(&Row) -> f64, y: impl Fn(&Row) -> f64) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for row in rows {
        let label = format!("{} ({})", row.kind, row.workload.visits_label());
        let point = (x(row), y(row));
        match out.iter_mut().find(|s| s.label == label) {
            Some(s) => s.points.push(point),
            None => out.push(Series {
                label,
                points: vec![point],
            }),
        }
    }
    out
}

/// Relative error (mean over windows, %) against measured heap bytes per
/// window; uniform visits only, so each backend is one line over the
/// cardinalities.
pub fn error_vs_bytes(report: &Report, path: &Path) -> Result<(), BenchError> {
    let rows = first_skew_rows(report);
    let s = series(&rows, |r| r.heap_bytes.max(1.0), |r| r.err_mean * 100.0);
    draw(
        path,
        &Spec {
            title: "Relative error vs heap bytes per window",
            x_desc: "heap bytes per window (measured, log scale)",
            y_desc: "mean relative error (%)",
        },
        &s,
    )
}

/// Insert throughput (million events per second, duplicates included)
/// against distinct users per window.
pub fn throughput_vs_cardinality(report: &Report, path: &Path) -> Result<(), BenchError> {
    let rows = first_skew_rows(report);
    let s = series(
        &rows,
        |r| r.workload.distinct as f64,
        |r| r.events_per_second / 1e6,
    );
    draw(
        path,
        &Spec {
            title: "Insert throughput vs distinct users per window",
            x_desc: "distinct users per window (log scale)",
            y_desc: "million events per second",
        },
        &s,
    )
}

/// Rows of the first visit skew measured (uniform by default): one line per
/// backend keeps the charts readable; the CSV has all rows.
fn first_skew_rows(report: &Report) -> Vec<Row> {
    let Some(first) = report.rows.first() else {
        return Vec::new();
    };
    let skew = first.workload.skew;
    report
        .rows
        .iter()
        .filter(|r| r.workload.skew == skew)
        .cloned()
        .collect()
}

/// `500`, `2k`, `10k`, `1.5M`, `3G`: short axis labels.
fn si(x: f64) -> String {
    let (v, unit) = match x.abs() {
        a if a >= 1e9 => (x / 1e9, "G"),
        a if a >= 1e6 => (x / 1e6, "M"),
        a if a >= 1e3 => (x / 1e3, "k"),
        _ => (x, ""),
    };
    if (v - v.round()).abs() < 0.05 {
        format!("{v:.0}{unit}")
    } else {
        format!("{v:.1}{unit}")
    }
}

fn draw(path: &Path, spec: &Spec<'_>, series: &[Series]) -> Result<(), BenchError> {
    let mut svg = String::new();
    render(&mut svg, spec, series).map_err(|reason| BenchError::Chart {
        path: path.to_path_buf(),
        reason,
    })?;
    std::fs::write(path, svg).map_err(|cause| BenchError::Write {
        path: path.to_path_buf(),
        cause,
    })
}

fn render(svg: &mut String, spec: &Spec<'_>, series: &[Series]) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Debug| format!("{e:?}");
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y1) = (f64::INFINITY, 0.0f64, 0.0f64);
    for &(x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        (x0, x1) = (1.0, 10.0);
    }
    let (x0, x1) = (x0 / 2.0, x1 * 2.0);
    let y1 = if y1 > 0.0 { y1 * 1.1 } else { 1.0 };

    let root = SVGBackend::with_string(svg, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(spec.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d((x0..x1).log_scale(), 0.0..y1)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(spec.x_desc)
        .y_desc(spec.y_desc)
        .x_label_formatter(&|x| si(*x))
        .y_label_formatter(&|y| {
            if y1 >= 20.0 {
                format!("{y:.0}")
            } else {
                format!("{y:.1}")
            }
        })
        .draw()
        .map_err(|e| err(&e))?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label(s.label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
