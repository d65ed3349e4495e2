//! Tumbling event-time windows of one or several sizes, with a watermark,
//! late corrections and bounded retention.
//!
//! - Sizes (`DISTINCTLY_WINDOWS`, [`size`]): fixed seconds and minutes
//!   aligned to the Unix epoch; hours, days, ISO weeks and calendar months
//!   aligned to the wall clock of `DISTINCTLY_TIMEZONE`. Each size is a
//!   [`lane`] of its own windows and counters; an event is judged once (time
//!   guard, watermark) and inserted once per size.
//! - Watermark = stream time − allowed lateness, where stream time is the
//!   highest plausible event time (see [`guard`] for what is plausible). A
//!   window is emitted (revision 0) once the watermark reaches its end.
//! - A late event for an emitted window still counts while the watermark is
//!   less than `end + retention`: the window is marked changed and emitted
//!   again with the next revision at the next *tick* — whenever the watermark
//!   closes another window of its size, at [`Windower::flush_corrections`],
//!   and at the end. So corrections are coalesced: one record per window per
//!   tick, however many late events arrived. Later than that, the event is
//!   `late_dropped` (for that size).
//! - When the whole input goes idle ([`Windower::flush_idle`]) the open
//!   windows are emitted early, as *provisional*: events that still arrive
//!   for them are counted, and such a window is emitted again when it closes
//!   (or at the next idle flush), so its last record is complete.
//! - Windows are freed once the watermark passes `end + retention`, so memory
//!   is bounded by the open and retained windows: about
//!   `(lateness + retention) / W + 2` of them per size.
//!
//! Several *sources* (Kafka partitions) can feed one windower. Each has its
//! own time guard and stream time; the watermark is the minimum over the
//! sources that are not idle, so a slow partition holds windows open and an
//! idle one stops doing so. Each window remembers, per source, the lowest
//! offset of its events: everything from there on is what a restart must
//! replay to rebuild it (see `kafka::offsets`). `count` uses one source.

pub mod guard;
pub mod lane;
pub mod rolling;
pub mod size;
mod stats;

use crate::counter::CounterKind;
use crate::group::{GroupKeys, Groupings, Keys};
use crate::record::WindowRecord;
use crate::slices::Slices;
use guard::{Guard, Released, Verdict};
use lane::{Lane, Outcome};
use size::{Grid, WindowSize};

/// Window and time settings (see `config` for the variables and defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowConfig {
    /// One or more sizes, in the order records and summaries list them.
    pub sizes: Vec<WindowSize>,
    /// IANA name of the zone calendar sizes follow.
    pub timezone: String,
    pub allowed_lateness_seconds: u64,
    pub late_retention_seconds: u64,
    pub max_ahead_seconds: u64,
    pub max_behind_seconds: u64,
    pub jump_confirm_events: u64,
    /// `DISTINCTLY_GROUP_BY`: counted in every window beside its total.
    pub groupings: Groupings,
    /// `DISTINCTLY_ROLLING`: rolling windows, emitted after the tumbling
    /// ones of the same tick.
    pub rolling: Vec<rolling::Rolling>,
}

impl WindowConfig {
    /// One fixed size of `seconds`, UTC, the other settings at `base`'s.
    pub fn single(seconds: u64, base: &WindowConfig) -> Self {
        WindowConfig {
            sizes: vec![WindowSize::Seconds(seconds)],
            timezone: "UTC".to_string(),
            ..base.clone()
        }
    }
}

/// What happened to accepted-by-decoder events, by outcome (per size: an
/// event on time for the hour can be late for its minute).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowStats {
    /// Counted in a window that was still open.
    pub counted: u64,
    /// Counted in an already emitted window (a correction follows).
    pub late_corrected: u64,
    /// Too late: its window was past retention.
    pub late_dropped: u64,
    /// Implausible time (see [`guard`]); the same for every size.
    pub ts_out_of_range: u64,
    /// Records emitted with revision 0.
    pub windows_emitted: u64,
    /// Records emitted with revision > 0.
    pub corrections_emitted: u64,
    /// Per grouping (by index): events counted in a window's overflow
    /// record (`DISTINCTLY_MAX_GROUPS`), for this size.
    pub group_overflow: [u64; crate::group::MAX_GROUPINGS],
}

/// One input of the windower (a partition).
#[derive(Debug, Default)]
struct Source {
    guard: Guard,
    idle: bool,
}

pub struct Windower {
    cfg: WindowConfig,
    sources: Vec<Source>,
    lanes: Vec<Lane>,
    watermark: Option<u64>,
    /// Events refused before reaching any lane (guard, year 9999).
    ts_out_of_range: u64,
    /// Windows ending at or before this are not emitted until
    /// [`Windower::release_held`] (catching up after a restart: every
    /// window, `u64::MAX`).
    hold_until: Option<u64>,
    /// Highest event time whose windows, of every size, end by
    /// 9999-12-31T23:59:59Z (the last instant RFC 3339 can write); later
    /// ones are `ts_out_of_range`.
    max_ts: u64,
    /// Events a guard released, being counted (buffers reused).
    released: Released,
    /// See [`Windower::replayed_covered`].
    replayed_covered: u64,
    /// Keys of a released event.
    released_keys: GroupKeys,
    /// Held events' keys, encoded (scratch).
    held_extra: Vec<u8>,
    /// Range-query slices fed with every counted event (`count --serve`).
    slices: Option<Slices>,
    /// One per rolling setting.
    rolls: Vec<rolling::Roll>,
}

/// Why the settings cannot make a windower.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadZone(pub String);

impl Windower {
    /// A windower with one source (id 0). Fails only for an unknown time
    /// zone (validated with the configuration).
    pub fn new(cfg: WindowConfig, kind: CounterKind) -> Result<Self, BadZone> {
        let tz = size::time_zone(&cfg.timezone).map_err(BadZone)?;
        let labelled = cfg.sizes.len() > 1;
        let lanes: Vec<Lane> = cfg
            .sizes
            .iter()
            .map(|&s| {
                Lane::new(
                    Grid::new(s, tz.clone()),
                    labelled,
                    kind,
                    cfg.late_retention_seconds,
                    (cfg.groupings.len(), cfg.groupings.max_groups),
                )
            })
            .collect();
        let max_ts = Self::max_ts_of(&lanes);
        let rolls = cfg
            .rolling
            .iter()
            .map(|&r| {
                rolling::Roll::new(
                    r,
                    Grid::new(r.step, tz.clone()),
                    kind,
                    cfg.late_retention_seconds,
                    (cfg.groupings.len(), cfg.groupings.max_groups),
                )
            })
            .collect();
        Ok(Windower {
            sources: vec![Source {
                guard: Guard::new(&cfg),
                idle: false,
            }],
            cfg,
            lanes,
            watermark: None,
            ts_out_of_range: 0,
            hold_until: None,
            max_ts,
            released: Released::default(),
            replayed_covered: 0,
            released_keys: GroupKeys::default(),
            held_extra: Vec::new(),
            slices: None,
            rolls,
        })
    }

    /// Groupings counted in every window.
    pub fn groupings(&self) -> &Groupings {
        &self.cfg.groupings
    }

    fn max_ts_of(lanes: &[Lane]) -> u64 {
        lanes
            .iter()
            .map(|l| l.grid.max_ts(crate::decode::MAX_TS))
            .min()
            .unwrap_or(0)
    }

    /// Highest event time whose windows, of every size, can be written;
    /// later ones are `ts_out_of_range`.
    pub fn max_event_ts(&self) -> u64 {
        self.max_ts
    }

    /// The sizes counted, in order.
    pub fn sizes(&self) -> impl Iterator<Item = WindowSize> + '_ {
        self.lanes.iter().map(|l| l.grid.size)
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
        for lane in &mut self.lanes {
            lane.clear();
        }
        self.watermark = None;
        self.hold_until = None;
    }

    /// Restores a source's stream time (from a checkpoint or commit
    /// metadata). The watermark is raised to what the restored sources
    /// allow, and every window is held back until
    /// [`Windower::release_held`]: while a restart replays, a window closed
    /// before the restart is partial, and one that closes during the replay
    /// has a count older than what was emitted before the restart (later
    /// corrections are still ahead in the replay). Neither may overwrite
    /// the newer counts emitted before.
    pub fn restore(&mut self, source: usize, stream_time: u64) {
        self.sources[source].guard.restore(stream_time);
        if let Some(wm) = self.global_watermark() {
            if self.watermark.is_none_or(|w| wm > w) {
                self.watermark = Some(wm);
            }
        }
        self.hold_until = Some(u64::MAX);
    }

    /// Ends the hold-back of [`Windower::restore`]: replay has caught up, so
    /// the held windows are complete again and are emitted.
    pub fn release_held(&mut self, out: &mut Vec<WindowRecord>) {
        if self.hold_until.take().is_some() {
            for lane in &mut self.lanes {
                lane.corrections_due();
            }
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
        for lane in &mut self.lanes {
            lane.flush_idle(self.watermark, self.hold_until, out);
        }
    }

    /// Stream time of a source.
    pub fn stream_time(&self, source: usize) -> Option<u64> {
        self.sources[source].guard.stream_time()
    }

    /// Lowest offset of `source` that a restart must replay to rebuild every
    /// held window and held event; `None` if nothing of it is held.
    pub fn min_offset_needed(&self, source: usize) -> Option<i64> {
        let windows = self.lanes.iter().filter_map(|l| l.min_offset(source)).min();
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

    /// Feeds one decoded event of source 0; emitted records are appended
    /// to `out`.
    #[inline]
    pub fn push(&mut self, ts: u64, uid: &[u8], hash: u64, out: &mut Vec<WindowRecord>) {
        self.push_from(0, ts, uid, hash, 0, Keys::NONE, out);
    }

    /// Feeds one decoded event of source 0 with its group keys (one per
    /// grouping).
    #[inline]
    pub fn push_grouped(
        &mut self,
        ts: u64,
        uid: &[u8],
        hash: u64,
        keys: Keys<'_>,
        out: &mut Vec<WindowRecord>,
    ) {
        self.push_from(0, ts, uid, hash, 0, keys, out);
    }

    /// Feeds one decoded event of `source`, at `offset` in it.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn push_from(
        &mut self,
        source: usize,
        ts: u64,
        uid: &[u8],
        hash: u64,
        offset: i64,
        keys: Keys<'_>,
        out: &mut Vec<WindowRecord>,
    ) {
        if ts > self.max_ts {
            self.ts_out_of_range += 1;
            return;
        }
        let src = &mut self.sources[source];
        src.idle = false;
        let before = src.guard.stream_time();
        let verdict = if keys.is_empty() || src.guard.is_plausible(ts) {
            src.guard.check(ts, uid, hash, offset)
        } else {
            // It may be held: its keys go with it.
            self.held_extra.clear();
            keys.encode(&mut self.held_extra);
            src.guard
                .check_with(ts, uid, &self.held_extra, hash, offset)
        };
        // The watermark can only move when a stream time did.
        let moved = src.guard.stream_time() != before;
        let decided = src.guard.has_decisions();
        match verdict {
            Verdict::Accept => {
                if moved {
                    self.raise_watermark(out);
                }
                self.accept(source, ts, uid, hash, offset, keys);
            }
            Verdict::Reject => self.ts_out_of_range += 1,
            Verdict::Held => {}
        }
        if decided {
            self.settle_guard(source, out);
        }
    }

    /// Counts an event whose time a guard upstream already judged (the
    /// shard counter of `run`: the splitter that read the whole input
    /// partition `source` ran the guard). Stream times come from
    /// [`Windower::advance_source`], not from events.
    #[inline]
    pub fn push_trusted(
        &mut self,
        source: usize,
        ts: u64,
        uid: &[u8],
        hash: u64,
        offset: i64,
        keys: Keys<'_>,
    ) {
        if ts > self.max_ts {
            self.ts_out_of_range += 1;
            return;
        }
        self.accept(source, ts, uid, hash, offset, keys);
    }

    /// A source's stream time reached `stream_time` (an in-band marker);
    /// `idle` says whether it currently holds the watermark back.
    pub fn advance_source(
        &mut self,
        source: usize,
        stream_time: Option<u64>,
        idle: bool,
        out: &mut Vec<WindowRecord>,
    ) {
        if let Some(st) = stream_time {
            self.sources[source].guard.raise_to(st);
        }
        self.sources[source].idle = idle;
        self.raise_watermark(out);
    }

    /// Whether every source is idle (the whole input paused).
    pub fn all_idle(&self) -> bool {
        self.sources.iter().all(|s| s.idle)
    }

    /// Sources there are.
    pub fn source_count(&self) -> usize {
        self.sources.len()
    }

    /// Adds sources up to `n` (an input topic that grew partitions); each
    /// holds the watermark back until it delivers or goes idle.
    pub fn ensure_sources(&mut self, n: usize) {
        while self.sources.len() < n {
            self.sources.push(Source {
                guard: Guard::new(&self.cfg),
                idle: false,
            });
        }
    }

    /// Moves a guard's decisions about held events into the windows. The
    /// released events are counted against the watermark they were held
    /// under (so holding an event never makes it late), then the watermark
    /// catches up with the guard's new stream time.
    #[cold]
    fn settle_guard(&mut self, source: usize, out: &mut Vec<WindowRecord>) {
        let guard = &mut self.sources[source].guard;
        self.ts_out_of_range += guard.take_rejected();
        if !guard.has_released() {
            return;
        }
        let mut released = std::mem::take(&mut self.released);
        self.sources[source].guard.swap_released(&mut released);
        let mut keys = std::mem::take(&mut self.released_keys);
        let groupings = self.cfg.groupings.len();
        for (ts, uid, mut extra, hash, offset) in released.iter_with_extra() {
            // Held with its keys (see `push_from`); none if held without.
            if !keys.decode(&mut extra, groupings) {
                keys.clear();
                (0..groupings).for_each(|_| keys.push(None));
            }
            self.accept(source, ts, uid, hash, offset, keys.view());
        }
        self.released_keys = keys;
        released.clear();
        self.released = released;
        self.raise_watermark(out);
    }

    /// Advances to the sources' watermark if it rose (it never goes back).
    fn raise_watermark(&mut self, out: &mut Vec<WindowRecord>) {
        if let Some(wm) = self.global_watermark() {
            if self.watermark.is_none_or(|w| wm > w) {
                self.watermark = Some(wm);
                for lane in &mut self.lanes {
                    lane.advance(wm, self.hold_until, out);
                }
                for roll in &mut self.rolls {
                    roll.advance(wm, wm, out);
                }
                if let Some(slices) = &mut self.slices {
                    slices.advance(wm);
                }
            }
        }
    }

    /// One insert per size.
    #[inline]
    fn accept(
        &mut self,
        source: usize,
        ts: u64,
        uid: &[u8],
        hash: u64,
        offset: i64,
        keys: Keys<'_>,
    ) {
        let mut refused = false;
        let mut covered = true;
        for lane in &mut self.lanes {
            let outcome = lane.accept(source, ts, uid, hash, offset, self.watermark, keys);
            refused |= outcome == Outcome::OutOfRange;
            covered &= outcome == Outcome::Covered;
        }
        if refused {
            self.ts_out_of_range += 1;
        } else if covered {
            self.replayed_covered += 1;
        } else {
            for roll in &mut self.rolls {
                roll.accept(ts, uid, hash, keys, self.watermark);
            }
            if let Some(slices) = &mut self.slices {
                slices.insert(ts, uid, hash, keys);
            }
        }
    }

    /// From now on, also count every event in `slices`.
    pub fn keep_slices(&mut self, slices: Slices) {
        self.slices = Some(slices);
    }

    /// The range-query slices, if kept.
    pub fn slices(&self) -> Option<&Slices> {
        self.slices.as_ref()
    }

    /// Replayed events that every size already had from its checkpoint.
    pub fn replayed_covered(&self) -> u64 {
        self.replayed_covered
    }

    /// Whether a time guard holds events (their offsets are not in any
    /// window yet, so a checkpoint now could not say what it covers).
    pub fn holds_events(&self) -> bool {
        self.sources.iter().any(|s| s.guard.held() > 0)
    }

    /// Remembers, from now on, the checkpointed windows that are freed
    /// (see [`Windower::take_freed`]).
    pub fn track_freed(&mut self) {
        for lane in &mut self.lanes {
            lane.track_freed();
        }
    }

    /// Checkpointed windows freed since the last call, with their size:
    /// what the state topic may delete.
    pub fn take_freed(&mut self) -> Vec<(WindowSize, lane::Freed)> {
        self.lanes
            .iter_mut()
            .flat_map(|l| {
                let size = l.grid.size;
                l.take_freed().into_iter().map(move |f| (size, f))
            })
            .collect()
    }

    /// Every held window, with its size, for a checkpoint.
    pub fn windows_mut(&mut self) -> impl Iterator<Item = (WindowSize, &mut lane::Window)> {
        self.lanes.iter_mut().flat_map(|l| {
            let size = l.grid.size;
            l.windows.iter_mut().map(move |w| (size, w))
        })
    }

    /// After a checkpoint of every held window at read positions `positions`
    /// (per source) is durable: a restart replays from there.
    pub fn checkpointed(&mut self, positions: &[i64]) {
        for (_, window) in self.windows_mut() {
            window.replay_from = positions.to_vec();
            window.dirty = false;
        }
    }

    /// A window restored from a checkpoint, if its size is counted.
    pub fn restore_window(&mut self, size: WindowSize, window: lane::Window) -> bool {
        match self.lanes.iter_mut().find(|l| l.grid.size == size) {
            Some(lane) => {
                lane.restore(window);
                true
            }
            None => false,
        }
    }

    /// Emits a new revision of every window that changed since it was last
    /// emitted.
    pub fn flush_corrections(&mut self, out: &mut Vec<WindowRecord>) {
        for lane in &mut self.lanes {
            lane.flush_corrections(self.watermark, self.hold_until, out);
        }
    }

    /// End of input: settles held events, emits every open window and every
    /// pending correction, and forgets all windows.
    pub fn finish(&mut self, out: &mut Vec<WindowRecord>) {
        for source in 0..self.sources.len() {
            self.sources[source].guard.settle();
            self.settle_guard(source, out);
        }
        self.release_held(out);
        for lane in &mut self.lanes {
            lane.finish(out);
        }
        for roll in &mut self.rolls {
            roll.finish(out);
        }
    }

    /// The rolling windows' states, in setting order.
    pub fn rolls(&self) -> &[rolling::Roll] {
        &self.rolls
    }
}

#[cfg(test)]
mod tests;
