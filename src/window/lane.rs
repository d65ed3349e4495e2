//! The windows of one size: where an event goes, when a window is emitted,
//! corrected and freed. The [`super::Windower`] runs one lane per size over
//! a shared watermark.

use super::size::{Grid, WindowSize};
use super::WindowStats;
use crate::counter::{AnyCounter, CounterKind};
use crate::group::members::{dense_after, member_of};
use crate::group::table::{Counted, GroupTable, Limits};
use crate::group::{GroupLabel, Keys};
use crate::record::WindowRecord;
use std::collections::VecDeque;

/// Where a window stands in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not emitted yet.
    Open,
    /// Emitted while still open (the whole input was idle); emitted again
    /// when it closes if it changed meanwhile.
    Provisional { revision: u32 },
    /// Emitted at or after its close; any change is a late correction.
    Closed { revision: u32 },
}

#[derive(Debug, Clone)]
pub struct Window {
    pub start: u64,
    pub end: u64,
    pub counter: AnyCounter,
    pub events: u64,
    pub phase: Phase,
    /// It has events its last record lacks and is due at the next tick (a
    /// late correction, a changed provisional window, or a window that was
    /// closed when it was created or held back after a restart).
    pub changed: bool,
    /// Per source: the offset a restart must replay from to rebuild this
    /// window: its lowest event offset, or, once it is checkpointed, the
    /// read position of the checkpoint (`i64::MAX`: nothing needed).
    pub replay_from: Vec<i64>,
    /// Per source: events below this offset are already in the window
    /// (restored from a checkpoint); replayed ones are not counted again.
    pub covered: Vec<i64>,
    /// What the state topic holds of this window (`None`: nothing yet).
    pub saved: Option<Saved>,
    /// Counted events since the last checkpoint.
    pub dirty: bool,
    /// Per grouping of `DISTINCTLY_GROUP_BY`, the window's groups.
    pub groups: Vec<GroupTable>,
    /// What the state topic holds of its groups.
    pub groups_saved: Option<Saved>,
}

/// What a checkpoint of a window wrote (see `kafka::state`): the chunks of
/// generation `generation` hold its counter's first `len` bytes (`exact`:
/// the arena with `uids` uids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saved {
    pub generation: u64,
    pub chunks: u32,
    pub len: u64,
}

fn front_unsent(windows: &VecDeque<Window>) -> bool {
    windows.front().is_some_and(Window::unsent)
}

impl Window {
    /// A record is due before it may be freed.
    fn unsent(&self) -> bool {
        self.phase == Phase::Open || self.changed
    }

    fn is_closed(&self, watermark: Option<u64>) -> bool {
        watermark.is_some_and(|wm| self.end <= wm)
    }
}

/// A checkpointed window that was freed: what the state topic may delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freed {
    pub start: u64,
    pub saved: Saved,
    pub groups: Option<Saved>,
}

/// What became of one event in one lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Counted,
    LateCorrected,
    LateDropped,
    /// The time-zone library cannot place it (far outside any real time).
    OutOfRange,
    /// Replayed after a restart, and already in the window's checkpoint.
    Covered,
}

pub struct Lane {
    pub grid: Grid,
    /// The size as written in records, when the run has several.
    label: Option<WindowSize>,
    kind: CounterKind,
    retention: u64,
    /// Non-overlapping, in start order.
    pub windows: VecDeque<Window>,
    /// Index of the window used last: most events hit it again.
    last: usize,
    pub stats: WindowStats,
    corrections_pending: bool,
    /// Windows freed since the caller last asked, when it asked to know
    /// (checkpoints delete what the state topic holds of them).
    freed: Option<Vec<Freed>>,
    /// Groupings counted in every window, and the limits of their groups.
    groupings: usize,
    limits: Limits,
}

impl Lane {
    /// A lane of `grid`'s windows, each counting `groupings` groupings of
    /// at most `max_groups` groups.
    pub fn new(
        grid: Grid,
        labelled: bool,
        kind: CounterKind,
        retention: u64,
        (groupings, max_groups): (usize, usize),
    ) -> Self {
        Lane {
            label: labelled.then_some(grid.size),
            grid,
            kind,
            retention,
            windows: VecDeque::new(),
            last: 0,
            stats: WindowStats::default(),
            corrections_pending: false,
            freed: None,
            groupings,
            limits: Limits {
                max_groups,
                dense_after: dense_after(kind),
            },
        }
    }

    /// From now on, remember the checkpointed windows that are freed.
    pub fn track_freed(&mut self) {
        self.freed.get_or_insert_with(Vec::new);
    }

    /// The checkpointed windows freed since the last call.
    pub fn take_freed(&mut self) -> Vec<Freed> {
        self.freed.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Puts a window restored from a checkpoint in its place (in start
    /// order; a window already there is kept).
    pub fn restore(&mut self, window: Window) {
        match self.find(window.start) {
            Ok(_) => {}
            Err(at) => self.windows.insert(at, window),
        }
    }

    pub fn clear(&mut self) {
        self.windows.clear();
        self.last = 0;
        self.corrections_pending = false;
    }

    /// Index of the held window containing `ts`, or where one would go.
    #[inline]
    fn find(&self, ts: u64) -> Result<usize, usize> {
        if let Some(w) = self.windows.get(self.last) {
            if w.start <= ts && ts < w.end {
                return Ok(self.last);
            }
        }
        let i = self.windows.partition_point(|w| w.start <= ts);
        match i.checked_sub(1) {
            Some(j) if ts < self.windows[j].end => Ok(j),
            _ => Err(i),
        }
    }

    /// Counts one accepted event, in its window and in its groups (`keys`:
    /// one per grouping; ignored without groupings).
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn accept(
        &mut self,
        source: usize,
        ts: u64,
        uid: &[u8],
        hash: u64,
        offset: i64,
        watermark: Option<u64>,
        keys: Keys<'_>,
    ) -> Outcome {
        let wm = watermark.unwrap_or(0);
        let idx = match self.find(ts) {
            Ok(i) => {
                if self.windows[i].end + self.retention <= wm {
                    self.stats.late_dropped += 1;
                    return Outcome::LateDropped;
                }
                i
            }
            Err(at) => {
                let Some((start, end)) = self.grid.bounds(ts) else {
                    return Outcome::OutOfRange;
                };
                if end + self.retention <= wm {
                    self.stats.late_dropped += 1;
                    return Outcome::LateDropped;
                }
                self.windows.insert(
                    at,
                    Window {
                        start,
                        end,
                        counter: AnyCounter::new(self.kind),
                        events: 0,
                        phase: Phase::Open,
                        changed: false,
                        replay_from: Vec::new(),
                        covered: Vec::new(),
                        saved: None,
                        dirty: false,
                        groups: vec![GroupTable::new(); self.groupings],
                        groups_saved: None,
                    },
                );
                at
            }
        };
        self.last = idx;
        let window = &mut self.windows[idx];
        if window.covered.get(source).is_some_and(|&c| offset < c) {
            return Outcome::Covered;
        }
        if self.groupings == 0 {
            window.counter.insert(uid, hash);
        } else {
            let member = member_of(&mut window.counter, uid, hash);
            for (g, table) in window.groups.iter_mut().enumerate() {
                let counted = table.count(keys.get(g), member, self.kind, self.limits);
                if counted == Counted::Overflow {
                    self.stats.group_overflow[g] += 1;
                }
            }
        }
        window.events += 1;
        window.dirty = true;
        if window.replay_from.len() <= source {
            window.replay_from.resize(source + 1, i64::MAX);
        }
        let first = &mut window.replay_from[source];
        *first = (*first).min(offset);
        if window.is_closed(watermark) {
            window.changed = true;
            self.corrections_pending = true;
            self.stats.late_corrected += 1;
            Outcome::LateCorrected
        } else {
            if let Phase::Provisional { .. } = window.phase {
                // Emitted early: its final record must include this event.
                window.changed = true;
            }
            self.stats.counted += 1;
            Outcome::Counted
        }
    }

    /// The watermark rose: emits windows that closed (a provisional one
    /// again only if it changed), then pending corrections (a tick), then
    /// frees windows past retention.
    pub fn advance(&mut self, watermark: u64, hold: Option<u64>, out: &mut Vec<WindowRecord>) {
        let mut ticked = false;
        for i in 0..self.windows.len() {
            let (end, phase, changed) = {
                let w = &self.windows[i];
                (w.end, w.phase, w.changed)
            };
            if end > watermark {
                break; // ends grow with starts: the rest are open
            }
            match phase {
                Phase::Open => {
                    if hold.is_some_and(|h| end <= h) {
                        self.windows[i].changed = true; // emitted on release
                        self.corrections_pending = true;
                        continue;
                    }
                    self.emit(i, true, out);
                    ticked = true;
                }
                Phase::Provisional { revision } => {
                    if changed {
                        if hold.is_some_and(|h| end <= h) {
                            self.corrections_pending = true; // emitted on release
                            continue;
                        }
                        self.emit(i, true, out);
                    } else {
                        self.windows[i].phase = Phase::Closed { revision };
                    }
                    ticked = true;
                }
                Phase::Closed { .. } => {}
            }
        }
        if ticked {
            self.flush_corrections(Some(watermark), hold, out);
        }
        let mut freed = false;
        while let Some(front) = self.windows.front() {
            if front.end + self.retention > watermark {
                break;
            }
            // Past retention it takes no more events: a correction still
            // due goes out now rather than at the size's next tick, so that
            // whoever sees the watermark past `end + retention` (the summer
            // of `run`) has seen the window's last count.
            if front.changed && front.phase != Phase::Open && hold.is_none_or(|h| front.end > h) {
                self.emit(0, true, out);
            }
            // A window stays until its last record has been emitted.
            if front_unsent(&self.windows) {
                break;
            }
            if let Some(w) = self.windows.pop_front() {
                if let (Some(list), Some(saved)) = (&mut self.freed, w.saved) {
                    list.push(Freed {
                        start: w.start,
                        saved,
                        groups: w.groups_saved,
                    });
                }
            }
            freed = true;
        }
        if freed {
            self.last = 0;
        }
    }

    /// Emits a new revision of every window that changed since it was last
    /// emitted (except those held back after a restart).
    pub fn flush_corrections(
        &mut self,
        watermark: Option<u64>,
        hold: Option<u64>,
        out: &mut Vec<WindowRecord>,
    ) {
        if !self.corrections_pending {
            return;
        }
        let mut held_back = false;
        for i in 0..self.windows.len() {
            let (changed, end, closed) = {
                let w = &self.windows[i];
                (w.changed, w.end, w.is_closed(watermark))
            };
            if !changed {
                continue;
            }
            if hold.is_some_and(|h| end <= h) {
                held_back = true;
                continue;
            }
            self.emit(i, closed, out);
        }
        self.corrections_pending = held_back;
    }

    /// Marks corrections due (after a hold-back ends).
    pub fn corrections_due(&mut self) {
        self.corrections_pending = true;
    }

    /// The input is idle: every open window is emitted now, provisionally,
    /// then every changed one.
    pub fn flush_idle(
        &mut self,
        watermark: Option<u64>,
        hold: Option<u64>,
        out: &mut Vec<WindowRecord>,
    ) {
        for i in 0..self.windows.len() {
            let (open, end, closed) = {
                let w = &self.windows[i];
                (w.phase == Phase::Open, w.end, w.is_closed(watermark))
            };
            if open && hold.is_none_or(|h| end > h) {
                self.emit(i, closed, out);
            }
        }
        self.corrections_pending = true;
        self.flush_corrections(watermark, hold, out);
    }

    /// End of input: every open window and pending correction, then none
    /// are held.
    pub fn finish(&mut self, out: &mut Vec<WindowRecord>) {
        for i in 0..self.windows.len() {
            if self.windows[i].unsent() {
                self.emit(i, true, out);
            }
        }
        self.clear();
    }

    /// Emits the records of window `i`'s next revision into `out`: the
    /// window's, then one per group whose count changed since its last
    /// record (every group, at the window's first). Counts it, and moves
    /// the window to its next phase (`closed`: the watermark passed its end).
    fn emit(&mut self, i: usize, closed: bool, out: &mut Vec<WindowRecord>) {
        let window = &mut self.windows[i];
        let revision = match window.phase {
            Phase::Open => {
                self.stats.windows_emitted += 1;
                0
            }
            Phase::Provisional { revision } | Phase::Closed { revision } => {
                self.stats.corrections_emitted += 1;
                revision + 1
            }
        };
        window.phase = if closed {
            Phase::Closed { revision }
        } else {
            Phase::Provisional { revision }
        };
        window.changed = false;
        out.push(WindowRecord {
            rolling: None,
            start_ts: window.start,
            end_ts: window.end,
            size: self.label,
            unique_users: window.counter.count(),
            events: window.events,
            counter: self.kind,
            revision,
            group: None,
        });
        for (g, table) in window.groups.iter_mut().enumerate() {
            for (value, group) in table.due(false) {
                let revision = group.emit();
                out.push(WindowRecord {
                    rolling: None,
                    start_ts: window.start,
                    end_ts: window.end,
                    size: self.label,
                    unique_users: group.members.count(),
                    events: group.events,
                    counter: self.kind,
                    revision,
                    group: Some(GroupLabel {
                        grouping: g as u16,
                        value,
                    }),
                });
            }
        }
    }

    /// Lowest offset of `source` in a held window.
    pub fn min_offset(&self, source: usize) -> Option<i64> {
        self.windows
            .iter()
            .filter_map(|w| w.replay_from.get(source).copied())
            .filter(|&o| o != i64::MAX)
            .min()
    }

    /// Heap bytes of the windows' counters and groups.
    pub fn heap_bytes(&self) -> usize {
        self.windows
            .iter()
            .map(|w| {
                w.counter.heap_bytes() + w.groups.iter().map(GroupTable::heap_bytes).sum::<usize>()
            })
            .sum()
    }

    /// Groups held, per grouping, over the held windows.
    pub fn groups_held(&self) -> Vec<usize> {
        let mut held = vec![0; self.groupings];
        for w in &self.windows {
            for (g, t) in w.groups.iter().enumerate() {
                held[g] += t.len();
            }
        }
        held
    }

    pub fn open(&self) -> usize {
        self.windows
            .iter()
            .filter(|w| !matches!(w.phase, Phase::Closed { .. }))
            .count()
    }
}
