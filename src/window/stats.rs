//! What a windower holds and has done, read for metrics and summaries:
//! outcomes per size, the watermark, windows, groups and heap held.

use super::lane::Lane;
use super::size::WindowSize;
use super::{WindowStats, Windower};

impl Windower {
    /// Outcomes of the first size (the one summaries lead with), plus the
    /// events refused before any size and the group overflow of every
    /// size.
    pub fn stats(&self) -> WindowStats {
        let mut s = self.lanes.first().map(|l| l.stats).unwrap_or_default();
        s.ts_out_of_range = self.ts_out_of_range;
        s.group_overflow = self.group_overflow();
        s
    }

    /// Outcomes per size, in order (each with the shared `ts_out_of_range`).
    pub fn stats_by_size(&self) -> Vec<(WindowSize, WindowStats)> {
        self.lanes
            .iter()
            .map(|l| {
                let mut s = l.stats;
                s.ts_out_of_range = self.ts_out_of_range;
                (l.grid.size, s)
            })
            .collect()
    }

    /// Current watermark (Unix seconds), once any event was accepted.
    pub fn watermark(&self) -> Option<u64> {
        self.watermark
    }

    /// Windows held, every size: open plus emitted-and-retained.
    pub fn windows_held(&self) -> usize {
        self.lanes.iter().map(|l| l.windows.len()).sum()
    }

    /// Windows not closed yet, every size (provisional ones included).
    pub fn windows_open(&self) -> usize {
        self.lanes.iter().map(Lane::open).sum()
    }

    /// Heap bytes of all held counters.
    pub fn counter_heap_bytes(&self) -> usize {
        self.lanes.iter().map(Lane::heap_bytes).sum()
    }

    /// Groups held per size and grouping (over the held windows).
    pub fn groups_by_size(&self) -> Vec<(WindowSize, Vec<usize>)> {
        self.lanes
            .iter()
            .map(|l| (l.grid.size, l.groups_held()))
            .collect()
    }

    /// Events counted in overflow records, per grouping, of every size.
    pub fn group_overflow(&self) -> [u64; crate::group::MAX_GROUPINGS] {
        let mut sum = [0; crate::group::MAX_GROUPINGS];
        for lane in &self.lanes {
            for (s, n) in sum.iter_mut().zip(lane.stats.group_overflow) {
                *s += n;
            }
        }
        sum
    }

    /// Heap bytes of the held counters of each size.
    pub fn heap_bytes_by_size(&self) -> Vec<(WindowSize, usize)> {
        self.lanes
            .iter()
            .map(|l| (l.grid.size, l.heap_bytes()))
            .collect()
    }
}
