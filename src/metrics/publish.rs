//! Copies the pipeline's local totals into the exported metrics.

use super::names;
use crate::counter::CounterKind;
use crate::record::WindowRecord;
use crate::reject::{Reject, RejectCounts};
use crate::window::size::WindowSize;
use crate::window::Windower;
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
    /// Decoder rejections (the windower's `ts_out_of_range` is added here).
    pub rejected: &'a RejectCounts,
}

/// Handles to every hot-path metric, registered once.
pub struct Publisher {
    counted: Counter,
    late_corrected: Counter,
    late_dropped: Counter,
    rejected: Counter,
    by_reason: Vec<(Reject, Counter)>,
    messages: Counter,
    bytes: Counter,
    windows_emitted: Counter,
    corrections: Counter,
    open: Gauge,
    retained: Gauge,
    /// Per window size (label `window`), made on the first publish.
    heap: Vec<(WindowSize, Gauge)>,
    rss: Gauge,
    watermark: Gauge,
    delay: Gauge,
    last_start: Gauge,
    last_unique: Gauge,
    batch_duration: Histogram,
    batch_messages: Histogram,
    /// Newest window seen in the output: (start, unique users).
    last_window: Option<(u64, u64)>,
    last_watermark: Option<u64>,
    rss_read: Option<Instant>,
    batch_started: Option<Instant>,
    batch_len: u64,
}

impl Publisher {
    /// A publisher when an exporter is installed, `None` otherwise (then
    /// nothing is timed or copied at all).
    pub fn if_enabled(kind: CounterKind) -> Option<Self> {
        super::enabled().then(|| Self::new(kind))
    }

    pub fn new(kind: CounterKind) -> Self {
        let precision = kind.precision().map(|p| p.to_string()).unwrap_or_default();
        metrics::gauge!(
            names::BUILD_INFO,
            "version" => env!("CARGO_PKG_VERSION"),
            "counter" => kind.to_string(),
            "backend" => kind.backend(),
            "precision" => precision,
        )
        .set(1.0);
        let outcome = |o: &'static str| metrics::counter!(names::EVENTS, "outcome" => o);
        Publisher {
            counted: outcome("counted"),
            late_corrected: outcome("late_corrected"),
            late_dropped: outcome("late_dropped"),
            rejected: outcome("rejected"),
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
            windows_emitted: metrics::counter!(names::WINDOWS_EMITTED),
            corrections: metrics::counter!(names::CORRECTIONS_EMITTED),
            open: metrics::gauge!(names::WINDOWS_OPEN),
            retained: metrics::gauge!(names::WINDOWS_RETAINED),
            heap: Vec::new(),
            rss: metrics::gauge!(names::RESIDENT_MEMORY),
            watermark: metrics::gauge!(names::WATERMARK),
            delay: metrics::gauge!(names::EVENT_TIME_DELAY),
            last_start: metrics::gauge!(names::LAST_WINDOW_START),
            last_unique: metrics::gauge!(names::LAST_WINDOW_UNIQUE),
            batch_duration: metrics::histogram!(names::BATCH_DURATION),
            batch_messages: metrics::histogram!(names::BATCH_MESSAGES),
            last_window: None,
            last_watermark: None,
            rss_read: None,
            batch_started: None,
            batch_len: 0,
        }
    }

    /// Notes emitted records (the newest window of the first size, `lead`,
    /// and its latest revision).
    pub fn observe(&mut self, records: &[WindowRecord], lead: Option<WindowSize>) {
        for r in records {
            if r.size.is_some() && r.size != lead {
                continue;
            }
            if self
                .last_window
                .is_none_or(|(start, _)| r.start_ts >= start)
            {
                self.last_window = Some((r.start_ts, r.unique_users));
            }
        }
    }

    /// Marks the start of a batch (its first message), if none is open.
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

    /// Copies the current totals and window state.
    pub fn publish(&mut self, totals: Totals<'_>, windower: &Windower) {
        let w = windower.stats();
        self.counted.absolute(w.counted);
        self.late_corrected.absolute(w.late_corrected);
        self.late_dropped.absolute(w.late_dropped);
        self.rejected
            .absolute(totals.rejected.total() + w.ts_out_of_range);
        for (reason, counter) in &self.by_reason {
            let extra = if *reason == Reject::TsOutOfRange {
                w.ts_out_of_range
            } else {
                0
            };
            counter.absolute(totals.rejected.get(*reason) + extra);
        }
        self.messages.absolute(totals.messages);
        self.bytes.absolute(totals.bytes);
        let by_size = windower.stats_by_size();
        self.windows_emitted
            .absolute(by_size.iter().map(|(_, s)| s.windows_emitted).sum());
        self.corrections
            .absolute(by_size.iter().map(|(_, s)| s.corrections_emitted).sum());
        let open = windower.windows_open();
        self.open.set(open as f64);
        self.retained
            .set(windower.windows_held().saturating_sub(open) as f64);
        let heap = windower.heap_bytes_by_size();
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
        // After a rebalance the windower starts without a watermark until
        // replay delivers: keep the last one, so the delay keeps growing.
        if let Some(wm) = windower.watermark() {
            self.last_watermark = Some(wm);
        }
        if let Some(wm) = self.last_watermark {
            self.watermark.set(wm as f64);
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            self.delay.set(now - wm as f64);
        }
        if let Some((start, unique)) = self.last_window {
            self.last_start.set(start as f64);
            self.last_unique.set(unique as f64);
        }
        if self.rss_read.is_none_or(|t| t.elapsed() >= RSS_EVERY) {
            self.rss_read = Some(Instant::now());
            if let Some(rss) = crate::memory::rss_bytes() {
                self.rss.set(rss as f64);
            }
        }
    }
}
