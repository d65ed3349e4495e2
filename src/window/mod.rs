//! Tumbling event-time windows with a watermark, late corrections and
//! bounded retention.
//!
//! - Windows are `[start, start + W)` with `start % W == 0`: aligned to the
//!   Unix epoch, UTC (`W` = `DISTINCTLY_WINDOW_SECONDS`).
//! - Watermark = stream time − allowed lateness, where stream time is the
//!   highest plausible event time (see [`guard`] for what is plausible). A
//!   window is emitted (revision 0) once the watermark reaches its end.
//! - A late event for an emitted window still counts while the watermark is
//!   less than `end + retention`: the window is marked changed and emitted
//!   again with the next revision at the next *tick* — whenever the watermark
//!   closes another window, at [`Windower::flush_corrections`], and at the
//!   end. So corrections are coalesced: one record per window per tick,
//!   however many late events arrived. Later than that, the event is
//!   `late_dropped`.
//! - When the whole input goes idle ([`Windower::flush_idle`]) the open
//!   windows are emitted early, as *provisional*: events that still arrive
//!   for them are counted, and such a window is emitted again when it closes
//!   (or at the next idle flush), so its last record is complete.
//! - Windows are freed once the watermark passes `end + retention`, so memory
//!   is bounded by the open and retained windows: about
//!   `(lateness + retention) / W + 2` of them.
//!
//! Several *sources* (Kafka partitions) can feed one windower. Each has its
//! own time guard and stream time; the watermark is the minimum over the
//! sources that are not idle, so a slow partition holds windows open and an
//! idle one stops doing so. Each window remembers, per source, the lowest
//! offset of its events: everything from there on is what a restart must
//! replay to rebuild it (see `kafka::offsets`). `count` uses one source.

pub mod guard;

use crate::counter::{AnyCounter, CounterKind};
use crate::record::WindowRecord;
use guard::{Guard, Released, Verdict};
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

/// Where a window stands in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not emitted yet.
    Open,
    /// Emitted while still open (the whole input was idle); emitted again
    /// when it closes if it changed meanwhile.
    Provisional { revision: u32 },
    /// Emitted at or after its close; any change is a late correction.
    Closed { revision: u32 },
}

#[derive(Debug, Clone)]
struct Window {
    start: u64,
    counter: AnyCounter,
    events: u64,
    phase: Phase,
    /// It has events its last record lacks and is due at the next tick (a
    /// late correction, a changed provisional window, or a window that was
    /// closed when it was created or held back after a restart).
    changed: bool,
    /// Per source: lowest offset of an event in this window (`i64::MAX`: none).
    first_offset: Vec<i64>,
}

impl Window {
    /// A record is due before it may be freed.
    fn unsent(&self) -> bool {
        self.phase == Phase::Open || self.changed
    }
}

/// One input of the windower (a partition).
#[derive(Debug, Default)]
struct Source {
    guard: Guard,
    idle: bool,
}

pub struct Windower {
    cfg: WindowConfig,
    kind: CounterKind,
    sources: Vec<Source>,
    /// Slot `i` holds the window starting at `base + i * W`, if it has events.
    slots: VecDeque<Option<Window>>,
    base: u64,
    watermark: Option<u64>,
    stats: WindowStats,
    corrections_pending: bool,
    /// Windows ending at or before this are not emitted until
    /// [`Windower::release_held`] (catching up after a restart).
    hold_until: Option<u64>,
    /// Highest event time whose window ends by 9999-12-31T23:59:59Z (the
    /// last instant RFC 3339 can write); later ones are `ts_out_of_range`.
    max_ts: u64,
    /// `(start, slot index)` of the last window used: most events hit it,
    /// and it saves two 64-bit divisions per event. Cleared whenever `base`
    /// moves.
    last_slot: Option<(u64, usize)>,
    /// Events a guard released, being counted (buffers reused).
    released: Released,
}

/// The highest event time whose `W`-second window ends by the last instant
/// an RFC 3339 timestamp can hold.
fn max_ts(window_seconds: u64) -> u64 {
    let w = window_seconds.max(1);
    let last_end = crate::decode::MAX_TS;
    // The last window start `s` with `s + w <= last_end`.
    match last_end.checked_sub(w) {
        Some(s) => s - s % w + w - 1,
        None => 0,
    }
}

impl Windower {
    /// A windower with one source (id 0).
    pub fn new(cfg: WindowConfig, kind: CounterKind) -> Self {
        Windower {
            sources: vec![Source {
                guard: Guard::new(&cfg),
                idle: false,
            }],
            max_ts: max_ts(cfg.window_seconds),
            cfg,
            kind,
            slots: VecDeque::new(),
            base: 0,
            watermark: None,
            stats: WindowStats::default(),
            corrections_pending: false,
            hold_until: None,
            last_slot: None,
            released: Released::default(),
        }
    }

    /// Starts over with `n` sources, forgetting every window and held event
    /// (after a Kafka rebalance, state is rebuilt by replay).
    pub fn reset(&mut self, n: usize) {
        self.sources = (0..n)
            .map(|_| Source {
                guard: Guard::new(&self.cfg),
                idle: false,
            })
            .collect();
        self.slots.clear();
        self.last_slot = None;
        self.watermark = None;
        self.corrections_pending = false;
        self.hold_until = None;
    }

    /// Restores a source's stream time (from commit metadata). The watermark
    /// is raised to what the restored sources allow, and windows that were
    /// already closed then are held back until [`Windower::release_held`]:
    /// while a restart replays them they are partial and must not overwrite
    /// the complete counts emitted before.
    pub fn restore(&mut self, source: usize, stream_time: u64) {
        self.sources[source].guard.restore(stream_time);
        if let Some(wm) = self.global_watermark() {
            if self.watermark.is_none_or(|w| wm > w) {
                self.watermark = Some(wm);
            }
            self.hold_until = Some(self.hold_until.map_or(wm, |h| h.max(wm)));
        }
    }

    /// Ends the hold-back of [`Windower::restore`]: replay has caught up, so
    /// the held windows are complete again and are emitted.
    pub fn release_held(&mut self, out: &mut Vec<WindowRecord>) {
        if self.hold_until.take().is_some() {
            self.corrections_pending = true;
            self.flush_corrections(out);
        }
    }

    /// Whether a source is idle (see [`Windower::set_idle`]); it becomes
    /// active again with its next event.
    pub fn is_idle(&self, source: usize) -> bool {
        self.sources[source].idle
    }

    /// Marks a source idle (it stops holding the watermark back) or active.
    pub fn set_idle(&mut self, source: usize, idle: bool, out: &mut Vec<WindowRecord>) {
        if self.sources[source].idle == idle {
            return;
        }
        self.sources[source].idle = idle;
        self.raise_watermark(out);
    }

    /// The whole input has been idle: the guards decide what they hold (as
    /// at the end of the input), and every open window is emitted now, as a
    /// provisional record. Windows stay open: later events still count, and
    /// a window that changed is emitted again when it closes.
    pub fn flush_idle(&mut self, out: &mut Vec<WindowRecord>) {
        for source in 0..self.sources.len() {
            self.sources[source].guard.settle();
            self.settle_guard(source, out);
        }
        let w = self.cfg.window_seconds;
        let hold = self.hold_until;
        for window in self.slots.iter_mut().flatten() {
            if window.phase == Phase::Open && hold.is_none_or(|h| window.start + w > h) {
                let closed = self.watermark.is_some_and(|wm| window.start + w <= wm);
                out.push(emit(window, self.kind, w, closed, &mut self.stats));
            }
        }
        self.corrections_pending = true;
        self.flush_corrections(out);
    }

    /// Stream time of a source.
    pub fn stream_time(&self, source: usize) -> Option<u64> {
        self.sources[source].guard.stream_time()
    }

    /// Lowest offset of `source` that a restart must replay to rebuild every
    /// held window and held event; `None` if nothing of it is held.
    pub fn min_offset_needed(&self, source: usize) -> Option<i64> {
        let windows = self
            .slots
            .iter()
            .flatten()
            .filter_map(|w| w.first_offset.get(source).copied())
            .filter(|&o| o != i64::MAX)
            .min();
        let held = self.sources[source].guard.min_held_offset();
        match (windows, held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Watermark: the minimum over the sources that are not idle. A source
    /// without a stream time yet (nothing read, or its first events still
    /// held by the guard) holds it back until it delivers or goes idle.
    fn global_watermark(&self) -> Option<u64> {
        let mut min: Option<u64> = None;
        for s in self.sources.iter().filter(|s| !s.idle) {
            let t = s.guard.stream_time()?;
            min = Some(min.map_or(t, |m| m.min(t)));
        }
        min.map(|t| t.saturating_sub(self.cfg.allowed_lateness_seconds))
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

    /// Windows not closed yet (provisional ones included).
    pub fn windows_open(&self) -> usize {
        self.slots
            .iter()
            .flatten()
            .filter(|w| !matches!(w.phase, Phase::Closed { .. }))
            .count()
    }

    /// Heap bytes of all held counters.
    pub fn counter_heap_bytes(&self) -> usize {
        self.slots
            .iter()
            .flatten()
            .map(|w| w.counter.heap_bytes())
            .sum()
    }

    /// Feeds one decoded event of source 0; emitted records are appended
    /// to `out`.
    #[inline]
    pub fn push(&mut self, ts: u64, uid: &[u8], hash: u64, out: &mut Vec<WindowRecord>) {
        self.push_from(0, ts, uid, hash, 0, out);
    }

    /// Feeds one decoded event of `source`, at `offset` in it.
    #[inline]
    pub fn push_from(
        &mut self,
        source: usize,
        ts: u64,
        uid: &[u8],
        hash: u64,
        offset: i64,
        out: &mut Vec<WindowRecord>,
    ) {
        if ts > self.max_ts {
            self.stats.ts_out_of_range += 1;
            return;
        }
        let src = &mut self.sources[source];
        src.idle = false;
        let before = src.guard.stream_time();
        let verdict = src.guard.check(ts, uid, hash, offset);
        // The watermark can only move when a stream time did.
        let moved = src.guard.stream_time() != before;
        let decided = src.guard.has_decisions();
        match verdict {
            Verdict::Accept => {
                if moved {
                    self.raise_watermark(out);
                }
                self.accept(source, ts, uid, hash, offset);
            }
            Verdict::Reject => self.stats.ts_out_of_range += 1,
            Verdict::Held => {}
        }
        if decided {
            self.settle_guard(source, out);
        }
    }

    /// Moves a guard's decisions about held events into the windows. The
    /// released events are counted against the watermark they were held
    /// under (so holding an event never makes it late), then the watermark
    /// catches up with the guard's new stream time.
    #[cold]
    fn settle_guard(&mut self, source: usize, out: &mut Vec<WindowRecord>) {
        let guard = &mut self.sources[source].guard;
        self.stats.ts_out_of_range += guard.take_rejected();
        if !guard.has_released() {
            return;
        }
        let mut released = std::mem::take(&mut self.released);
        self.sources[source].guard.swap_released(&mut released);
        for (ts, uid, hash, offset) in released.iter() {
            self.accept(source, ts, uid, hash, offset);
        }
        released.clear();
        self.released = released;
        self.raise_watermark(out);
    }

    /// Advances to the sources' watermark if it rose (it never goes back).
    fn raise_watermark(&mut self, out: &mut Vec<WindowRecord>) {
        if let Some(wm) = self.global_watermark() {
            if self.watermark.is_none_or(|w| wm > w) {
                self.advance(wm, out);
            }
        }
    }

    fn accept(&mut self, source: usize, ts: u64, uid: &[u8], hash: u64, offset: i64) {
        let watermark = self.watermark.unwrap_or(0);
        let w = self.cfg.window_seconds;
        let cached = self.last_slot.filter(|&(s, _)| ts >= s && ts - s < w);
        let start = cached.map_or_else(|| ts - ts % w, |(s, _)| s);
        let end = start + w;
        if end + self.cfg.late_retention_seconds <= watermark {
            self.stats.late_dropped += 1;
            return;
        }
        let closed = self.watermark.is_some() && end <= watermark;
        let window = self.slot(start, cached.map(|(_, i)| i));
        window.counter.insert(uid, hash);
        window.events += 1;
        if window.first_offset.len() <= source {
            window.first_offset.resize(source + 1, i64::MAX);
        }
        let first = &mut window.first_offset[source];
        *first = (*first).min(offset);
        if closed {
            window.changed = true;
            self.corrections_pending = true;
            self.stats.late_corrected += 1;
        } else {
            if let Phase::Provisional { .. } = window.phase {
                // Emitted early: its final record must include this event.
                window.changed = true;
            }
            self.stats.counted += 1;
        }
    }

    /// The window starting at `start` (at slot `cached_idx` if known),
    /// created if needed.
    fn slot(&mut self, start: u64, cached_idx: Option<usize>) -> &mut Window {
        let w = self.cfg.window_seconds;
        let idx = match cached_idx {
            Some(idx) => idx,
            None => {
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
                self.last_slot = Some((start, idx));
                idx
            }
        };
        let kind = self.kind;
        self.slots[idx].get_or_insert_with(|| Window {
            start,
            counter: AnyCounter::new(kind),
            events: 0,
            phase: Phase::Open,
            changed: false,
            first_offset: Vec::new(),
        })
    }

    /// Raises the watermark: emits windows that closed (a provisional one
    /// again only if it changed), then pending corrections (a tick), then
    /// frees windows past retention.
    fn advance(&mut self, watermark: u64, out: &mut Vec<WindowRecord>) {
        self.watermark = Some(watermark);
        let w = self.cfg.window_seconds;
        let hold = self.hold_until;
        let mut ticked = false;
        for window in self.slots.iter_mut().flatten() {
            if window.start + w > watermark {
                continue;
            }
            match window.phase {
                Phase::Open => {
                    if hold.is_some_and(|h| window.start + w <= h) {
                        window.changed = true; // emitted on release
                        self.corrections_pending = true;
                        continue;
                    }
                    out.push(emit(window, self.kind, w, true, &mut self.stats));
                    ticked = true;
                }
                Phase::Provisional { revision } => {
                    if window.changed {
                        out.push(emit(window, self.kind, w, true, &mut self.stats));
                    } else {
                        window.phase = Phase::Closed { revision };
                    }
                    ticked = true;
                }
                Phase::Closed { .. } => {}
            }
        }
        if ticked {
            self.flush_corrections(out);
        }
        while let Some(front) = self.slots.front() {
            let expired = self.base + w + self.cfg.late_retention_seconds <= watermark;
            // A window stays until its last record has been emitted.
            let unsent = front.as_ref().is_some_and(Window::unsent);
            if !expired || unsent {
                break;
            }
            self.slots.pop_front();
            self.base += w;
            self.last_slot = None;
        }
    }

    /// Emits a new revision of every window that changed since it was last
    /// emitted (except those held back after a restart).
    pub fn flush_corrections(&mut self, out: &mut Vec<WindowRecord>) {
        if !self.corrections_pending {
            return;
        }
        let w = self.cfg.window_seconds;
        let hold = self.hold_until;
        let watermark = self.watermark;
        let mut held_back = false;
        for window in self.slots.iter_mut().flatten() {
            if !window.changed {
                continue;
            }
            if hold.is_some_and(|h| window.start + w <= h) {
                held_back = true;
                continue;
            }
            let closed = watermark.is_some_and(|wm| window.start + w <= wm);
            out.push(emit(window, self.kind, w, closed, &mut self.stats));
        }
        self.corrections_pending = held_back;
    }

    /// End of input: settles held events, emits every open window and every
    /// pending correction, and forgets all windows.
    pub fn finish(&mut self, out: &mut Vec<WindowRecord>) {
        for source in 0..self.sources.len() {
            self.sources[source].guard.settle();
            self.settle_guard(source, out);
        }
        self.release_held(out);
        let w = self.cfg.window_seconds;
        for window in self.slots.iter_mut().flatten() {
            if window.phase == Phase::Open || window.changed {
                out.push(emit(window, self.kind, w, true, &mut self.stats));
            }
        }
        self.corrections_pending = false;
        self.slots.clear();
        self.last_slot = None;
    }
}

/// Builds the record for a window's next revision, counts it, and moves the
/// window to its next phase (`closed`: the watermark has passed its end).
fn emit(
    window: &mut Window,
    kind: CounterKind,
    window_seconds: u64,
    closed: bool,
    stats: &mut WindowStats,
) -> WindowRecord {
    let revision = match window.phase {
        Phase::Open => {
            stats.windows_emitted += 1;
            0
        }
        Phase::Provisional { revision } | Phase::Closed { revision } => {
            stats.corrections_emitted += 1;
            revision + 1
        }
    };
    window.phase = if closed {
        Phase::Closed { revision }
    } else {
        Phase::Provisional { revision }
    };
    window.changed = false;
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
