//! Tumbling event-time windows with a watermark, late corrections and
//! bounded retention.
//!
//! - Windows are `[start, start + W)` with `start % W == 0`: aligned to the
//!   Unix epoch, UTC (`W` = `DISTINCTLY_WINDOW_SECONDS`).
//! - Watermark = stream time − allowed lateness, where stream time is the
//!   highest plausible event time (see [`guard`] for what is plausible). A
//!   window is emitted (revision 0) once the watermark reaches its end.
//! - A late event for an emitted window still counts while the watermark is
//!   less than `end + retention`: the window is marked dirty and emitted again
//!   with the next revision at the next *tick* — whenever the watermark closes
//!   another window, at [`Windower::flush_corrections`], and at the end. So
//!   corrections are coalesced: one record per window per tick, however many
//!   late events arrived. Later than that, the event is `late_dropped`.
//! - Windows are freed once the watermark passes `end + retention`, so memory
//!   is bounded by the open and retained windows: about
//!   `(lateness + retention) / W + 2` of them.

pub mod guard;

use crate::counter::{AnyCounter, CounterKind};
use crate::record::WindowRecord;
use guard::{Guard, Verdict};
use std::collections::VecDeque;

/// Window and time settings (see `config` for the variables and defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowConfig {
    pub window_seconds: u64,
    pub allowed_lateness_seconds: u64,
    pub late_retention_seconds: u64,
    pub max_ahead_seconds: u64,
    pub max_behind_seconds: u64,
    pub jump_confirm_events: u64,
}

/// What happened to accepted-by-decoder events, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowStats {
    /// Counted in a window that was still open.
    pub counted: u64,
    /// Counted in an already emitted window (a correction follows).
    pub late_corrected: u64,
    /// Too late: its window was past retention.
    pub late_dropped: u64,
    /// Implausible time (see [`guard`]).
    pub ts_out_of_range: u64,
    /// Records emitted with revision 0.
    pub windows_emitted: u64,
    /// Records emitted with revision > 0.
    pub corrections_emitted: u64,
}

#[derive(Debug, Clone)]
struct Window {
    start: u64,
    counter: AnyCounter,
    events: u64,
    /// Revision of the last emitted record, if any.
    revision: Option<u32>,
    dirty: bool,
}

pub struct Windower {
    cfg: WindowConfig,
    kind: CounterKind,
    guard: Guard,
    /// Slot `i` holds the window starting at `base + i * W`, if it has events.
    slots: VecDeque<Option<Window>>,
    base: u64,
    watermark: Option<u64>,
    stats: WindowStats,
    corrections_pending: bool,
}

impl Windower {
    pub fn new(cfg: WindowConfig, kind: CounterKind) -> Self {
        Windower {
            guard: Guard::new(&cfg),
            cfg,
            kind,
            slots: VecDeque::new(),
            base: 0,
            watermark: None,
            stats: WindowStats::default(),
            corrections_pending: false,
        }
    }

    pub fn stats(&self) -> WindowStats {
        self.stats
    }

    /// Current watermark (Unix seconds), once any event was accepted.
    pub fn watermark(&self) -> Option<u64> {
        self.watermark
    }

    /// Windows held: open plus emitted-and-retained.
    pub fn windows_held(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// Heap bytes of all held counters.
    pub fn counter_heap_bytes(&self) -> usize {
        self.slots
            .iter()
            .flatten()
            .map(|w| w.counter.heap_bytes())
            .sum()
    }

    /// Feeds one decoded event; emitted records are appended to `out`.
    #[inline]
    pub fn push(&mut self, ts: u64, uid: &[u8], hash: u64, out: &mut Vec<WindowRecord>) {
        match self.guard.check(ts, uid, hash) {
            Verdict::Accept => self.accept(ts, uid, hash, out),
            Verdict::Reject => self.stats.ts_out_of_range += 1,
            Verdict::Held => {}
        }
        self.settle_guard(out);
    }

    /// Moves the guard's decisions about held events into the windows.
    fn settle_guard(&mut self, out: &mut Vec<WindowRecord>) {
        self.stats.ts_out_of_range += self.guard.take_rejected();
        if self.guard.has_released() {
            let mut guard = std::mem::take(&mut self.guard);
            guard.drain_released(|ts, uid, hash| self.accept(ts, uid, hash, out));
            self.guard = guard;
        }
    }

    fn accept(&mut self, ts: u64, uid: &[u8], hash: u64, out: &mut Vec<WindowRecord>) {
        let stream_time = self.guard.stream_time().unwrap_or(ts).max(ts);
        let watermark = stream_time.saturating_sub(self.cfg.allowed_lateness_seconds);
        if self.watermark.is_none_or(|w| watermark > w) {
            self.advance(watermark, out);
        }
        let w = self.cfg.window_seconds;
        let start = ts - ts % w;
        let end = start + w;
        if end + self.cfg.late_retention_seconds <= watermark {
            self.stats.late_dropped += 1;
            return;
        }
        let closed = end <= watermark;
        let window = self.slot(start);
        window.counter.insert(uid, hash);
        window.events += 1;
        if closed {
            window.dirty = true;
            self.corrections_pending = true;
            self.stats.late_corrected += 1;
        } else {
            self.stats.counted += 1;
        }
    }

    /// The window starting at `start`, created if needed.
    fn slot(&mut self, start: u64) -> &mut Window {
        let w = self.cfg.window_seconds;
        if self.slots.is_empty() {
            self.base = start;
        }
        while start < self.base {
            self.slots.push_front(None);
            self.base -= w;
        }
        let idx = ((start - self.base) / w) as usize;
        while self.slots.len() <= idx {
            self.slots.push_back(None);
        }
        let kind = self.kind;
        self.slots[idx].get_or_insert_with(|| Window {
            start,
            counter: AnyCounter::new(kind),
            events: 0,
            revision: None,
            dirty: false,
        })
    }

    /// Raises the watermark: emits windows that closed, then pending
    /// corrections (a tick), then frees windows past retention.
    fn advance(&mut self, watermark: u64, out: &mut Vec<WindowRecord>) {
        self.watermark = Some(watermark);
        let w = self.cfg.window_seconds;
        let mut ticked = false;
        for window in self.slots.iter_mut().flatten() {
            if window.revision.is_none() && window.start + w <= watermark {
                out.push(emit(window, self.kind, w));
                self.stats.windows_emitted += 1;
                ticked = true;
            }
        }
        if ticked {
            self.flush_corrections(out);
        }
        while let Some(front) = self.slots.front() {
            let expired = self.base + w + self.cfg.late_retention_seconds <= watermark;
            if !expired {
                break;
            }
            if let Some(window) = front {
                debug_assert!(window.revision.is_some() && !window.dirty);
            }
            self.slots.pop_front();
            self.base += w;
        }
    }

    /// Emits a new revision of every window that changed since it was last
    /// emitted.
    pub fn flush_corrections(&mut self, out: &mut Vec<WindowRecord>) {
        if !self.corrections_pending {
            return;
        }
        let w = self.cfg.window_seconds;
        for window in self.slots.iter_mut().flatten() {
            if window.dirty {
                // A late event can also create a window that was never open.
                if window.revision.is_none() {
                    self.stats.windows_emitted += 1;
                } else {
                    self.stats.corrections_emitted += 1;
                }
                out.push(emit(window, self.kind, w));
            }
        }
        self.corrections_pending = false;
    }

    /// End of input: settles held events, emits every open window and every
    /// pending correction, and forgets all windows.
    pub fn finish(&mut self, out: &mut Vec<WindowRecord>) {
        self.guard.finish();
        self.settle_guard(out);
        let w = self.cfg.window_seconds;
        for window in self.slots.iter_mut().flatten() {
            if window.revision.is_none() {
                out.push(emit(window, self.kind, w));
                self.stats.windows_emitted += 1;
            }
        }
        self.flush_corrections(out);
        self.slots.clear();
    }
}

/// Builds the record for a window's next revision and marks it clean.
fn emit(window: &mut Window, kind: CounterKind, window_seconds: u64) -> WindowRecord {
    let revision = window.revision.map_or(0, |r| r + 1);
    window.revision = Some(revision);
    window.dirty = false;
    WindowRecord {
        start_ts: window.start,
        window_seconds,
        unique_users: window.counter.count(),
        events: window.events,
        counter: kind,
        revision,
    }
}

#[cfg(test)]
mod tests;
