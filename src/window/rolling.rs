//! Rolling windows (`DISTINCTLY_ROLLING`): `<length>/<step>`, the distinct
//! users of the last `length / step` steps, emitted at every step boundary.
//!
//! One counter per step *slice*, never one per window: the window ending
//! at `e` is the merge of the `k` slices before `e` (a 30-day window moved
//! daily is 30 merges of day counters). Steps lie on the grid of tumbling
//! windows of the step size (local time for `h` and `d`), so `7d/1d` ends
//! at local midnights. A window is emitted (revision 0) once the watermark
//! reaches its end; a late event still within retention re-emits, at the
//! next tick, every emitted window it falls in, as the next revision.
//! Windows with no event are not emitted, as tumbling ones are not.

use super::size::Grid;
use crate::counter::{AnyCounter, CounterKind};
use crate::group::members::dense_after;
use crate::group::table::{GroupTable, Limits};
use crate::group::{GroupLabel, GroupValue, Keys};
use crate::record::WindowRecord;
use crate::slices::Slice;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub use super::size::{parse_rolling, BadRolling, Rolling, MAX_STEPS};

/// A step: one slice of the step's size.
type Step = Slice;

/// The steps and emitted windows of one rolling setting.
#[derive(Debug)]
pub struct Roll {
    spec: Rolling,
    steps_per_window: usize,
    grid: Grid,
    kind: CounterKind,
    retention: u64,
    groupings: usize,
    limits: Limits,
    /// In start order.
    steps: VecDeque<Step>,
    /// The end of the last window holding the first step (cached).
    front_last_window: Option<u64>,
    /// The end of the next window to emit (`None`: no event yet).
    next_end: Option<u64>,
    /// Emitted windows still within retention: end -> next revision.
    emitted: BTreeMap<u64, u32>,
    /// Emitted windows with events their last record lacks.
    changed: BTreeSet<u64>,
    pub windows_emitted: u64,
    pub corrections_emitted: u64,
    pub late_dropped: u64,
}

impl Roll {
    /// `groupings` groupings of at most `max_groups` groups per step are
    /// counted beside the total.
    pub fn new(
        spec: Rolling,
        grid: Grid,
        kind: CounterKind,
        retention: u64,
        (groupings, max_groups): (usize, usize),
    ) -> Self {
        Roll {
            spec,
            steps_per_window: spec.steps() as usize,
            grid,
            kind,
            retention,
            groupings,
            limits: Limits {
                max_groups,
                dense_after: dense_after(kind),
            },
            steps: VecDeque::new(),
            front_last_window: None,
            next_end: None,
            emitted: BTreeMap::new(),
            changed: BTreeSet::new(),
            windows_emitted: 0,
            corrections_emitted: 0,
            late_dropped: 0,
        }
    }

    pub fn spec(&self) -> Rolling {
        self.spec
    }

    /// The end of the step after the one ending at `end`.
    fn next_boundary(&self, end: u64) -> Option<u64> {
        self.grid.bounds(end).map(|(_, e)| e)
    }

    /// The start of the window ending at `end`: `k` steps back.
    fn window_start(&self, end: u64) -> u64 {
        let mut start = end;
        for _ in 0..self.steps_per_window {
            match start.checked_sub(1).and_then(|t| self.grid.bounds(t)) {
                Some((s, _)) => start = s,
                None => break,
            }
        }
        start
    }

    /// The end of the last window holding the step that ends at `end`.
    fn last_window_of(&self, end: u64) -> u64 {
        let mut e = end;
        for _ in 1..self.steps_per_window {
            match self.next_boundary(e) {
                Some(n) => e = n,
                None => break,
            }
        }
        e
    }

    /// Counts one event accepted by the windower.
    pub fn accept(
        &mut self,
        ts: u64,
        uid: &[u8],
        hash: u64,
        keys: Keys<'_>,
        watermark: Option<u64>,
    ) {
        let wm = watermark.unwrap_or(0);
        let at = self.steps.partition_point(|s| s.start <= ts);
        let idx = match at.checked_sub(1) {
            Some(i) if ts < self.steps[i].end => i,
            _ => {
                let Some((start, end)) = self.grid.bounds(ts) else {
                    return;
                };
                if self.last_window_of(end) + self.retention <= wm {
                    self.late_dropped += 1;
                    return;
                }
                if at == 0 {
                    self.front_last_window = None;
                }
                self.steps
                    .insert(at, Step::new(start, end, self.kind, self.groupings));
                at
            }
        };
        let step = &mut self.steps[idx];
        step.count(uid, hash, keys, self.kind, self.limits);
        let end = step.end;
        let next = *self.next_end.get_or_insert(end);
        if end < next {
            self.late(end, wm);
        }
    }

    /// An event for a step whose first windows the emission has passed:
    /// each of them still within retention is due at the next tick, as a
    /// correction, or as its first record if it was skipped as empty.
    #[cold]
    fn late(&mut self, end: u64, wm: u64) {
        let next = self.next_end.unwrap_or(u64::MAX);
        let last = self.last_window_of(end);
        let mut e = end;
        while e < next {
            if e + self.retention > wm {
                self.emitted.entry(e).or_insert(0);
                self.changed.insert(e);
            }
            if e >= last {
                break;
            }
            match self.next_boundary(e) {
                Some(n) => e = n,
                None => break,
            }
        }
    }

    /// Appends the records of the window ending at `end` (its total, then
    /// every group of every grouping, by value) with `revision`; returns
    /// false, appending nothing, when it holds no event.
    fn records(&self, end: u64, revision: u32, out: &mut Vec<WindowRecord>) -> bool {
        let start = self.window_start(end);
        let first = self.steps.partition_point(|s| s.start < start);
        let steps = || self.steps.range(first..).take_while(|s| s.end <= end);
        let events: u64 = steps().map(|s| s.events).sum();
        if events == 0 {
            return false;
        }
        let mut counter = AnyCounter::merged(self.kind, steps().map(|s| &s.counter));
        let record = |unique_users, events, group| WindowRecord {
            start_ts: start,
            end_ts: end,
            size: None,
            rolling: Some(self.spec),
            unique_users,
            events,
            counter: self.kind,
            revision,
            group,
        };
        out.push(record(counter.count(), events, None));
        for g in 0..self.groupings {
            let mut merged: BTreeMap<GroupValue, (AnyCounter, u64)> = BTreeMap::new();
            for step in steps() {
                for (value, group) in step.groups[g].slots() {
                    let (acc, n) = merged
                        .entry(value)
                        .or_insert_with(|| (AnyCounter::new(self.kind), 0));
                    group.members.add_to(&step.counter, acc);
                    *n += group.events;
                }
            }
            for (value, (mut acc, n)) in merged {
                let label = GroupLabel {
                    grouping: g as u16,
                    value,
                };
                out.push(record(acc.count(), n, Some(label)));
            }
        }
        true
    }

    /// The watermark reached `watermark`: emits the windows that ended by
    /// `until` (the watermark, or at the end of input the end of the last
    /// step), then, if a window was emitted, the corrections due, then
    /// frees what no window needs.
    pub fn advance(&mut self, watermark: u64, until: u64, out: &mut Vec<WindowRecord>) {
        let mut ticked = false;
        while let Some(end) = self.next_end.filter(|&e| e <= until) {
            if self.records(end, 0, out) {
                self.emitted.insert(end, 1);
                self.windows_emitted += 1;
            }
            self.next_end = self.next_after(end);
            ticked = true;
        }
        // Corrections are coalesced: once per tick (a step closed, or the
        // end), however many late events came, as tumbling windows do.
        if ticked {
            self.flush_corrections(out);
        }
        self.free(watermark, out);
    }

    /// Re-emits every changed window, as its next revision.
    pub fn flush_corrections(&mut self, out: &mut Vec<WindowRecord>) {
        for end in std::mem::take(&mut self.changed) {
            self.correct(end, out);
        }
    }

    fn correct(&mut self, end: u64, out: &mut Vec<WindowRecord>) {
        let Some(rev) = self.emitted.get(&end).copied() else {
            return;
        };
        if self.records(end, rev, out) {
            self.emitted.insert(end, rev + 1);
            if rev == 0 {
                self.windows_emitted += 1;
            } else {
                self.corrections_emitted += 1;
            }
        }
    }

    /// Forgets the windows past retention (a pending correction is
    /// emitted first) and the steps no window needs.
    fn free(&mut self, watermark: u64, out: &mut Vec<WindowRecord>) {
        let cut = watermark.saturating_sub(self.retention);
        while let Some(end) = self
            .emitted
            .first_key_value()
            .map(|(&e, _)| e)
            .filter(|&e| e <= cut)
        {
            if self.changed.remove(&end) {
                self.correct(end, out);
            }
            self.emitted.pop_first();
        }
        // A step is needed while a window holding it may still be emitted
        // or corrected. (The watermark rises with nearly every event: the
        // calendar walk is done once per step, not per call.)
        while let Some(first_end) = self.steps.front().map(|s| s.end) {
            let last = match self.front_last_window {
                Some(l) => l,
                None => {
                    let l = self.last_window_of(first_end);
                    self.front_last_window = Some(l);
                    l
                }
            };
            if last <= cut
                && self
                    .next_end
                    .is_none_or(|n| self.window_start(n) >= first_end)
            {
                self.steps.pop_front();
                self.front_last_window = None;
            } else {
                break;
            }
        }
    }

    /// The end of the next window after `end` that holds an event: the next
    /// boundary, or, across a gap, the end of the next step with events.
    fn next_after(&self, end: u64) -> Option<u64> {
        let next = self.next_boundary(end)?;
        let start = self.window_start(next);
        let held = self.steps.iter().any(|s| s.start >= start && s.end <= next);
        if held {
            return Some(next);
        }
        // No step of that window has events: skip to the first later step.
        let later = self.steps.iter().find(|s| s.end > next)?;
        Some(later.end.max(next))
    }

    /// End of input: every window up to the end of the last step with
    /// events, then corrections.
    pub fn finish(&mut self, out: &mut Vec<WindowRecord>) {
        if let Some(last) = self.steps.back().map(|s| s.end) {
            self.advance(0, last, out);
            self.flush_corrections(out);
        }
        self.steps.clear();
        self.front_last_window = None;
        self.emitted.clear();
        self.next_end = None;
    }

    /// Heap bytes of the step counters and their groups.
    pub fn heap_bytes(&self) -> usize {
        self.steps
            .iter()
            .map(|s| {
                s.counter.heap_bytes() + s.groups.iter().map(GroupTable::heap_bytes).sum::<usize>()
            })
            .sum()
    }

    /// Steps held.
    pub fn steps_held(&self) -> usize {
        self.steps.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::uid_hash;
    use crate::window::size::time_zone;

    fn roll(setting: &str, zone: &str) -> Roll {
        let spec = parse_rolling(setting).unwrap()[0];
        Roll::new(
            spec,
            Grid::new(spec.step, time_zone(zone).unwrap()),
            CounterKind::Exact,
            600,
            (0, 1),
        )
    }

    fn feed(r: &mut Roll, events: &[(u64, &str)]) -> Vec<WindowRecord> {
        let mut out = Vec::new();
        for &(ts, uid) in events {
            r.accept(
                ts,
                uid.as_bytes(),
                crate::hash::uid_hash(uid.as_bytes()),
                Keys::NONE,
                None,
            );
        }
        r.finish(&mut out);
        out
    }

    /// 2026-03-29T00:00:00+01:00 in Berlin: the day of 23 hours.
    const BERLIN_SHORT_DAY: u64 = 1_774_738_800;

    #[test]
    fn local_day_steps_end_at_local_midnights_and_count_steps_not_seconds() {
        let mut r = roll("2d/1d", "Europe/Berlin");
        let day = 86_400;
        let out = feed(
            &mut r,
            &[
                (BERLIN_SHORT_DAY - 3600, "a"),
                (BERLIN_SHORT_DAY + 3600, "b"),
                (BERLIN_SHORT_DAY + 23 * 3600 + 60, "c"),
            ],
        );
        let ends: Vec<(u64, u64, u64)> = out
            .iter()
            .map(|w| (w.start_ts, w.end_ts, w.unique_users))
            .collect();
        let next_midnight = BERLIN_SHORT_DAY + 23 * 3600;
        assert_eq!(
            ends,
            [
                (BERLIN_SHORT_DAY - 2 * day, BERLIN_SHORT_DAY, 1),
                (BERLIN_SHORT_DAY - day, next_midnight, 2),
                (BERLIN_SHORT_DAY, next_midnight + day, 2),
            ]
        );
    }

    #[test]
    fn a_gap_longer_than_the_window_emits_nothing_for_it() {
        let mut r = roll("1h/10m", "UTC");
        let t0 = 1_767_225_600;
        let out = feed(&mut r, &[(t0, "a"), (t0 + 10 * 3600, "b")]);
        // Six windows hold the first event, one the last.
        assert_eq!(out.len(), 7);
        assert!(out[..6]
            .iter()
            .all(|w| w.unique_users == 1 && w.end_ts <= t0 + 3600));
        assert_eq!(out[6].end_ts, t0 + 10 * 3600 + 600);
    }

    #[test]
    fn a_late_event_re_emits_every_window_it_falls_in_and_only_those() {
        let spec = parse_rolling("30m/10m").unwrap()[0];
        let mut r = Roll::new(spec, Grid::fixed(600), CounterKind::Exact, 2000, (0, 1));
        let t0 = 1_767_225_600;
        let mut out = Vec::new();
        for m in 0..12 {
            r.accept(t0 + m * 300, b"u", uid_hash(b"u"), Keys::NONE, None);
        }
        r.advance(t0 + 3600, t0 + 3600, &mut out);
        assert_eq!(out.len(), 6);
        out.clear();
        r.accept(
            t0 + 1200 + 5,
            b"late",
            uid_hash(b"late"),
            Keys::NONE,
            Some(t0 + 3600),
        );
        r.advance(t0 + 3600, t0 + 3600, &mut out);
        assert!(out.is_empty(), "corrections wait for the next tick");
        r.advance(t0 + 4200, t0 + 4200, &mut out);
        let ends: Vec<(u64, u32, u64)> = out
            .iter()
            .filter(|w| w.revision > 0)
            .map(|w| (w.end_ts, w.revision, w.unique_users))
            .collect();
        // The windows ending at 30, 40 and 50 minutes hold it.
        assert_eq!(
            ends,
            [(t0 + 1800, 1, 2), (t0 + 2400, 1, 2), (t0 + 3000, 1, 2)]
        );
        // Later, the window ending at 30 minutes is past its retention
        // (end + 2000 s): only the others are corrected.
        out.clear();
        r.accept(
            t0 + 1200 + 6,
            b"later",
            uid_hash(b"later"),
            Keys::NONE,
            Some(t0 + 4300),
        );
        r.advance(t0 + 4800, t0 + 4800, &mut out);
        let ends: Vec<u64> = out
            .iter()
            .filter(|w| w.revision > 0)
            .map(|w| w.end_ts)
            .collect();
        assert_eq!(ends, [t0 + 2400, t0 + 3000]);
    }
}
