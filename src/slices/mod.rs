//! Held slices: distinct users between any two instants.
//!
//! ```text
//! mod.rs     the slices of each resolution, fed with every counted event
//! setting.rs DISTINCTLY_SLICES: resolutions and how long each is held
//! query.rs   a range: tiled by the coarsest held slices, merged
//! serve.rs   queries from the HTTP thread, answered between batches
//! ```
//!
//! A *resolution* is a size in the syntax of `DISTINCTLY_WINDOWS` (`1m`,
//! `1h`, `1d`; hours and days follow `DISTINCTLY_TIMEZONE`'s wall clock),
//! held for a retention (`1m:48h`: minute slices for the last 48 hours).
//! Every event the windows count is also counted in its slice of each
//! resolution: a counter of the run's backend, with the window's groups
//! (`group::table`), so a slice costs what a window of its size costs.
//! Counters merge, so the distinct users of `[from, to)` are the merge of
//! slices that tile it: the coarsest that fit, so a 30-day range is 30 day
//! slices, and minute slices are only used at the ragged ends. `exact`
//! answers exactly, sketches within their bound.
//!
//! A slice is freed once the watermark passes its end plus its
//! resolution's retention; an event for a freed slice is not in that
//! resolution (it may still be in a coarser one). What is held of each
//! resolution is therefore `[watermark − retention, …)`, rounded to its
//! slices; a range a held resolution cannot tile is refused, never
//! answered for a different range.

mod query;
pub mod serve;
mod setting;

pub use query::{Answer, QueryError, RangeQuery};
pub use setting::{parse_slices, BadSlices, Resolution, DEFAULT_SLICES};

use crate::counter::{AnyCounter, CounterKind};
use crate::group::members::{dense_after, member_of};
use crate::group::table::{GroupTable, Limits};
use crate::group::{Groupings, Keys};
use crate::window::size::Grid;
use jiff::tz::TimeZone;
use std::collections::VecDeque;

/// One slice: a window that is never emitted, only asked (and a step of a
/// rolling window, `window::rolling`).
#[derive(Debug, Clone)]
pub struct Slice {
    pub start: u64,
    pub end: u64,
    pub counter: AnyCounter,
    pub events: u64,
    /// Per grouping, the slice's groups.
    pub groups: Vec<GroupTable>,
}

impl Slice {
    pub fn new(start: u64, end: u64, kind: CounterKind, groupings: usize) -> Self {
        Slice {
            start,
            end,
            counter: AnyCounter::new(kind),
            events: 0,
            groups: vec![GroupTable::new(); groupings],
        }
    }

    /// Counts one event in the total and in its group of every grouping.
    #[inline]
    pub fn count(
        &mut self,
        uid: &[u8],
        hash: u64,
        keys: Keys<'_>,
        kind: CounterKind,
        limits: Limits,
    ) {
        self.events += 1;
        if self.groups.is_empty() {
            self.counter.insert(uid, hash);
            return;
        }
        let member = member_of(&mut self.counter, uid, hash);
        for (g, table) in self.groups.iter_mut().enumerate() {
            table.count(keys.get(g), member, kind, limits);
        }
    }
}

/// The slices of one resolution, in start order.
#[derive(Debug)]
struct Level {
    resolution: Resolution,
    grid: Grid,
    slices: VecDeque<Slice>,
    /// Slices that end at or before this are freed (0: none yet).
    freed_until: u64,
    /// Events too old for this resolution's retention.
    dropped: u64,
}

/// Every resolution's slices (see the module docs).
#[derive(Debug)]
pub struct Slices {
    kind: CounterKind,
    levels: Vec<Level>,
    groupings: Groupings,
    limits: Limits,
    /// The highest event time counted (what the answers cover so far).
    latest: Option<u64>,
}

impl Slices {
    /// Slices of `resolutions` (finest first) in the zone `tz`, of
    /// counters of `kind`, with the groups of `groupings`.
    pub fn new(
        resolutions: &[Resolution],
        tz: &TimeZone,
        kind: CounterKind,
        groupings: &Groupings,
    ) -> Self {
        Slices {
            kind,
            levels: resolutions
                .iter()
                .map(|&resolution| Level {
                    resolution,
                    grid: Grid::new(resolution.size, tz.clone()),
                    slices: VecDeque::new(),
                    freed_until: 0,
                    dropped: 0,
                })
                .collect(),
            groupings: groupings.clone(),
            limits: Limits {
                max_groups: groupings.max_groups,
                dense_after: dense_after(kind),
            },
            latest: None,
        }
    }

    /// Counts one event (accepted by the windows' time guard) in its slice
    /// of every resolution that still holds its time.
    #[inline]
    pub fn insert(&mut self, ts: u64, uid: &[u8], hash: u64, keys: Keys<'_>) {
        self.latest = Some(self.latest.map_or(ts, |l| l.max(ts)));
        let groupings = self.groupings.len();
        for level in &mut self.levels {
            if let Some(slice) = level.slice_for(ts, self.kind, groupings) {
                slice.count(uid, hash, keys, self.kind, self.limits);
            }
        }
    }

    /// The watermark reached `watermark`: frees the slices past their
    /// resolution's retention.
    pub fn advance(&mut self, watermark: u64) {
        for level in &mut self.levels {
            let until = watermark.saturating_sub(level.resolution.retention);
            if until <= level.freed_until {
                continue;
            }
            level.freed_until = until;
            while level.slices.front().is_some_and(|s| s.end <= until) {
                level.slices.pop_front();
            }
        }
    }

    /// Per resolution: slices held and their heap bytes.
    pub fn memory(&self) -> Vec<(Resolution, usize, usize)> {
        self.levels
            .iter()
            .map(|l| {
                let bytes = l
                    .slices
                    .iter()
                    .map(|s| {
                        std::mem::size_of::<Slice>()
                            + s.counter.heap_bytes()
                            + s.groups.iter().map(GroupTable::heap_bytes).sum::<usize>()
                    })
                    .sum();
                (l.resolution, l.slices.len(), bytes)
            })
            .collect()
    }

    /// Events not held by a resolution (older than its retention when
    /// they came), per resolution.
    pub fn dropped(&self) -> Vec<(Resolution, u64)> {
        self.levels
            .iter()
            .map(|l| (l.resolution, l.dropped))
            .collect()
    }

    pub fn groupings(&self) -> &Groupings {
        &self.groupings
    }
}

impl Level {
    /// The slice holding `ts`, made if missing; `None` if its time is no
    /// longer held (or beyond the time-zone library's range).
    #[inline]
    fn slice_for(&mut self, ts: u64, kind: CounterKind, groupings: usize) -> Option<&mut Slice> {
        // Most events are in the newest slice.
        if let Some(last) = self.slices.back() {
            if last.start <= ts && ts < last.end {
                return self.slices.back_mut();
            }
        }
        let at = self.slices.partition_point(|s| s.start <= ts);
        if let Some(i) = at.checked_sub(1) {
            if ts < self.slices[i].end {
                return self.slices.get_mut(i);
            }
        }
        let (start, end) = self.grid.bounds(ts)?;
        if end <= self.freed_until {
            self.dropped += 1;
            return None;
        }
        self.slices
            .insert(at, Slice::new(start, end, kind, groupings));
        self.slices.get_mut(at)
    }
}

#[cfg(test)]
mod tests;
