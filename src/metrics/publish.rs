//! Copies the pipeline's local totals into the exported metrics.

use super::names;
use crate::counter::CounterKind;
use crate::decode::Refusal;
use crate::group::{Groupings, Refusals};
use crate::record::WindowRecord;
use crate::reject::{Reject, RejectCounts};
use crate::window::size::WindowSize;
use crate::window::{WindowStats, Windower};
use metrics::{Counter, Gauge, Histogram};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A batch is closed after this many messages even when more are queued,
/// so the histogram sees steady-state batches, not one per drain.
pub const BATCH_MAX_MESSAGES: u64 = 1024;

/// How often the resident set size is read (one small `/proc` read).
const RSS_EVERY: Duration = Duration::from_secs(1);

/// The totals a pipeline keeps anyway (for its summary).
#[derive(Debug, Clone, Copy)]
pub struct Totals<'a> {
    pub messages: u64,
    pub bytes: u64,
    /// Decoder rejections.
    pub rejected: &'a RejectCounts,
    /// Events refused for their time (added to the `ts_out_of_range` reason).
    pub ts_out_of_range: u64,
    /// Values of `groupings` no group was made of.
    pub refusals: &'a Refusals,
    pub groupings: &'a Groupings,
}

/// Handles to every hot-path metric of `count`, registered once: the three
/// parts below, which `run`'s stages publish separately.
pub struct Publisher {
    input: InputPublisher,
    windows: WindowPublisher,
    output: OutputPublisher,
}

impl Publisher {
    /// A publisher when an exporter is installed, `None` otherwise (then
    /// nothing is timed or copied at all).
    pub fn if_enabled(kind: CounterKind) -> Option<Self> {
        super::enabled().then(|| Self::new(kind))
    }

    pub fn new(kind: CounterKind) -> Self {
        register_build_info(kind);
        Publisher {
            input: InputPublisher::new(),
            windows: WindowPublisher::new(),
            output: OutputPublisher::new(),
        }
    }

    /// See [`OutputPublisher::observe`]; also shows the records on the
    /// live page (`run` reads its output topic back for that instead).
    pub fn observe(&mut self, records: &[WindowRecord], lead: Option<WindowSize>) {
        crate::live::observe(records);
        self.output.observe(records, lead);
    }

    /// See [`InputPublisher::batch_message`].
    #[inline]
    pub fn batch_message(&mut self) -> bool {
        self.input.batch_message()
    }

    pub fn batch_end(&mut self) {
        self.input.batch_end();
    }

    pub fn record_batch(&mut self, took: Duration, messages: u64) {
        self.input.record_batch(took, messages);
    }

    /// Copies the current totals and window state.
    pub fn publish(&mut self, totals: Totals<'_>, windower: &Windower) {
        let ts_out_of_range = totals.ts_out_of_range + windower.stats().ts_out_of_range;
        self.input.publish(&Totals {
            ts_out_of_range,
            ..totals
        });
        self.windows
            .publish(std::iter::once(windower), &WindowStats::default());
        let by_size = windower.stats_by_size();
        self.output.publish_counts(
            by_size.iter().map(|(_, s)| s.windows_emitted).sum(),
            by_size.iter().map(|(_, s)| s.corrections_emitted).sum(),
        );
    }
}

/// `distinctly_build_info`: version, counter, backend, precision.
pub fn register_build_info(kind: CounterKind) {
    let precision = kind.precision().map(|p| p.to_string()).unwrap_or_default();
    metrics::gauge!(
        names::BUILD_INFO,
        "version" => env!("CARGO_PKG_VERSION"),
        "counter" => kind.to_string(),
        "backend" => kind.backend(),
        "precision" => precision,
    )
    .set(1.0);
}

/// What reading the input exports: messages, bytes, rejections, batches.
pub struct InputPublisher {
    rejected: Counter,
    by_reason: Vec<(Reject, Counter)>,
    messages: Counter,
    bytes: Counter,
    batch_duration: Histogram,
    batch_messages: Histogram,
    batch_started: Option<Instant>,
    batch_len: u64,
    /// Per grouping, per refusal reason; made on the first publish.
    refused: Vec<Vec<(Refusal, Counter)>>,
}

impl InputPublisher {
    pub fn if_enabled() -> Option<Self> {
        super::enabled().then(Self::new)
    }

    pub fn new() -> Self {
        InputPublisher {
            rejected: metrics::counter!(names::EVENTS, "outcome" => "rejected"),
            by_reason: Reject::ALL
                .iter()
                .map(|&r| {
                    (
                        r,
                        metrics::counter!(names::EVENTS_REJECTED, "reason" => r.as_str()),
                    )
                })
                .collect(),
            messages: metrics::counter!(names::MESSAGES),
            bytes: metrics::counter!(names::BYTES),
            batch_duration: metrics::histogram!(names::BATCH_DURATION),
            batch_messages: metrics::histogram!(names::BATCH_MESSAGES),
            batch_started: None,
            batch_len: 0,
            refused: Vec::new(),
        }
    }

    /// Marks the start of a batch (its first message), if none is open;
    /// true when the batch is full.
    #[inline]
    pub fn batch_message(&mut self) -> bool {
        if self.batch_started.is_none() {
            self.batch_started = Some(Instant::now());
        }
        self.batch_len += 1;
        self.batch_len >= BATCH_MAX_MESSAGES
    }

    /// Closes the open batch, if any, and records its duration and size.
    pub fn batch_end(&mut self) {
        if let Some(started) = self.batch_started.take() {
            let messages = std::mem::take(&mut self.batch_len);
            self.record_batch(started.elapsed(), messages);
        }
    }

    /// Records one batch measured by the caller.
    pub fn record_batch(&mut self, took: Duration, messages: u64) {
        self.batch_duration.record(took.as_secs_f64());
        self.batch_messages.record(messages as f64);
    }

    pub fn publish(&mut self, totals: &Totals<'_>) {
        self.rejected
            .absolute(totals.rejected.total() + totals.ts_out_of_range);
        for (reason, counter) in &self.by_reason {
            let extra = if *reason == Reject::TsOutOfRange {
                totals.ts_out_of_range
            } else {
                0
            };
            counter.absolute(totals.rejected.get(*reason) + extra);
        }
        self.messages.absolute(totals.messages);
        self.bytes.absolute(totals.bytes);
        if self.refused.len() != totals.groupings.len() {
            self.refused = totals
                .groupings
                .list
                .iter()
                .map(|g| {
                    Refusal::ALL
                        .iter()
                        .map(|&r| {
                            let c = metrics::counter!(names::GROUP_REFUSED,
                                "group_by" => g.text.clone(), "reason" => r.as_str());
                            (r, c)
                        })
                        .collect()
                })
                .collect();
        }
        for (g, counters) in self.refused.iter().enumerate() {
            for (r, c) in counters {
                c.absolute(totals.refusals.get(g, *r));
            }
        }
    }
}

impl Default for InputPublisher {
    fn default() -> Self {
        Self::new()
    }
}

/// What counting exports: outcomes, windows held, memory, watermark.
pub struct WindowPublisher {
    counted: Counter,
    late_corrected: Counter,
    late_dropped: Counter,
    open: Gauge,
    retained: Gauge,
    /// Per window size (label `window`), made on the first publish.
    heap: Vec<(WindowSize, Gauge)>,
    rss: Gauge,
    watermark: Gauge,
    delay: Gauge,
    last_watermark: Option<u64>,
    rss_read: Option<Instant>,
    /// Per grouping: per size, groups held; and events overflowed. Made on
    /// the first publish with groupings.
    groups_held: Vec<Vec<Gauge>>,
    overflow: Vec<Counter>,
    /// Per resolution of the range-query slices: heap, held, dropped.
    slices: Vec<(Gauge, Gauge, Counter)>,
    slices_read: Option<Instant>,
}

impl WindowPublisher {
    /// Walks every slice and group: at most once per `RSS_EVERY`.
    fn publish_slices(&mut self, slices: &crate::slices::Slices) {
        if self.slices_read.is_some_and(|t| t.elapsed() < RSS_EVERY) {
            return;
        }
        self.slices_read = Some(Instant::now());
        let memory = slices.memory();
        if self.slices.len() != memory.len() {
            self.slices = memory
                .iter()
                .map(|(r, _, _)| {
                    let label = r.size.to_string();
                    (
                        metrics::gauge!(names::SLICES_HEAP, "resolution" => label.clone()),
                        metrics::gauge!(names::SLICES_HELD, "resolution" => label.clone()),
                        metrics::counter!(names::SLICES_DROPPED, "resolution" => label),
                    )
                })
                .collect();
        }
        for ((heap, held, dropped), ((_, n, bytes), (_, d))) in self
            .slices
            .iter()
            .zip(memory.into_iter().zip(slices.dropped()))
        {
            heap.set(bytes as f64);
            held.set(n as f64);
            dropped.absolute(d);
        }
    }

    pub fn if_enabled() -> Option<Self> {
        super::enabled().then(Self::new)
    }

    pub fn new() -> Self {
        let outcome = |o: &'static str| metrics::counter!(names::EVENTS, "outcome" => o);
        WindowPublisher {
            counted: outcome("counted"),
            late_corrected: outcome("late_corrected"),
            late_dropped: outcome("late_dropped"),
            open: metrics::gauge!(names::WINDOWS_OPEN),
            retained: metrics::gauge!(names::WINDOWS_RETAINED),
            heap: Vec::new(),
            rss: metrics::gauge!(names::RESIDENT_MEMORY),
            watermark: metrics::gauge!(names::WATERMARK),
            delay: metrics::gauge!(names::EVENT_TIME_DELAY),
            last_watermark: None,
            rss_read: None,
            groups_held: Vec::new(),
            overflow: Vec::new(),
            slices: Vec::new(),
            slices_read: None,
        }
    }

    /// Copies the state of the windowers held now (one for `count`, one per
    /// shard for `run`); `gone` adds the outcomes of windowers no longer
    /// held (shards that moved away), so the counters never go back.
    pub fn publish<'w>(
        &mut self,
        windowers: impl Iterator<Item = &'w Windower>,
        gone: &WindowStats,
    ) {
        let mut sum = [0u64; 3];
        let (mut open, mut held) = (0, 0);
        let mut heap: Vec<(WindowSize, usize)> = Vec::new();
        let mut watermark: Option<u64> = None;
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut overflow = gone.group_overflow;
        let mut names: Option<(Vec<String>, Vec<WindowSize>)> = None;
        let mut first_slices = None;
        for w in windowers {
            first_slices = first_slices.or(w.slices());
            if !w.groupings().is_empty() {
                let by_size = w.groups_by_size();
                if groups.is_empty() {
                    groups = vec![vec![0; by_size.len()]; w.groupings().len()];
                    names = Some((
                        w.groupings().list.iter().map(|g| g.text.clone()).collect(),
                        by_size.iter().map(|(s, _)| *s).collect(),
                    ));
                }
                for (i, (_, held)) in by_size.into_iter().enumerate() {
                    for (g, n) in held.into_iter().enumerate() {
                        groups[g][i] += n;
                    }
                }
                for (o, n) in overflow.iter_mut().zip(w.group_overflow()) {
                    *o += n;
                }
            }
            let s = w.stats();
            sum[0] += s.counted;
            sum[1] += s.late_corrected;
            sum[2] += s.late_dropped;
            open += w.windows_open();
            held += w.windows_held();
            let by_size = w.heap_bytes_by_size();
            if heap.is_empty() {
                heap = by_size;
            } else {
                for ((_, total), (_, b)) in heap.iter_mut().zip(by_size) {
                    *total += b;
                }
            }
            if let Some(wm) = w.watermark() {
                watermark = Some(watermark.map_or(wm, |m: u64| m.min(wm)));
            }
        }
        // A windower that went away (or was rebuilt) takes its counts with
        // it: carry what was published before, so the counters only grow.
        self.counted.absolute(gone.counted + sum[0]);
        self.late_corrected.absolute(gone.late_corrected + sum[1]);
        self.late_dropped.absolute(gone.late_dropped + sum[2]);
        self.open.set(open as f64);
        self.retained.set(held.saturating_sub(open) as f64);
        if self.heap.len() != heap.len() {
            self.heap = heap
                .iter()
                .map(|(size, _)| {
                    let label = size.to_string();
                    (
                        *size,
                        metrics::gauge!(names::COUNTER_HEAP, "window" => label),
                    )
                })
                .collect();
        }
        for ((_, gauge), (_, bytes)) in self.heap.iter().zip(&heap) {
            gauge.set(*bytes as f64);
        }
        if let Some((groupings, sizes)) = names {
            if self.groups_held.len() != groupings.len() {
                self.groups_held = groupings
                    .iter()
                    .map(|g| {
                        sizes
                            .iter()
                            .map(|s| {
                                metrics::gauge!(names::GROUPS_HELD,
                                    "group_by" => g.clone(), "window" => s.to_string())
                            })
                            .collect()
                    })
                    .collect();
                self.overflow = groupings
                    .iter()
                    .map(|g| metrics::counter!(names::GROUP_OVERFLOW, "group_by" => g.clone()))
                    .collect();
            }
        }
        for (gauges, held) in self.groups_held.iter().zip(&groups) {
            for (gauge, n) in gauges.iter().zip(held) {
                gauge.set(*n as f64);
            }
        }
        for (counter, n) in self.overflow.iter().zip(overflow) {
            counter.absolute(n);
        }
        if let Some(slices) = first_slices {
            self.publish_slices(slices);
        }
        // After a rebalance a windower starts without a watermark until
        // replay delivers: keep the last one, so the delay keeps growing.
        if let Some(wm) = watermark {
            self.last_watermark = Some(wm);
        }
        if let Some(wm) = self.last_watermark {
            self.watermark.set(wm as f64);
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            self.delay.set(now - wm as f64);
        }
        if self.rss_read.is_none_or(|t| t.elapsed() >= RSS_EVERY) {
            self.rss_read = Some(Instant::now());
            if let Some(rss) = crate::memory::rss_bytes() {
                self.rss.set(rss as f64);
            }
        }
    }
}

impl Default for WindowPublisher {
    fn default() -> Self {
        Self::new()
    }
}

/// What emitting exports: records by revision, the newest window.
pub struct OutputPublisher {
    windows_emitted: Counter,
    corrections: Counter,
    last_start: Gauge,
    last_unique: Gauge,
    /// Newest window seen in the output: (start, unique users).
    last_window: Option<(u64, u64)>,
}

impl OutputPublisher {
    pub fn if_enabled() -> Option<Self> {
        super::enabled().then(Self::new)
    }

    pub fn new() -> Self {
        OutputPublisher {
            windows_emitted: metrics::counter!(names::WINDOWS_EMITTED),
            corrections: metrics::counter!(names::CORRECTIONS_EMITTED),
            last_start: metrics::gauge!(names::LAST_WINDOW_START),
            last_unique: metrics::gauge!(names::LAST_WINDOW_UNIQUE),
            last_window: None,
        }
    }

    /// Notes emitted records (the newest window of the first size, `lead`,
    /// and its latest revision).
    pub fn observe(&mut self, records: &[WindowRecord], lead: Option<WindowSize>) {
        for r in records {
            if (r.size.is_some() && r.size != lead) || r.group.is_some() {
                continue;
            }
            if self
                .last_window
                .is_none_or(|(start, _)| r.start_ts >= start)
            {
                self.last_window = Some((r.start_ts, r.unique_users));
            }
        }
        if let Some((start, unique)) = self.last_window {
            self.last_start.set(start as f64);
            self.last_unique.set(unique as f64);
        }
    }

    /// Records emitted so far: first revisions and corrections.
    pub fn publish_counts(&mut self, windows: u64, corrections: u64) {
        self.windows_emitted.absolute(windows);
        self.corrections.absolute(corrections);
    }
}

impl Default for OutputPublisher {
    fn default() -> Self {
        Self::new()
    }
}
