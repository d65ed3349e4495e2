//! The plausibility guard: keeps bit-flipped timestamps from moving time,
//! without losing valid events to them.
//!
//! The watermark follows the highest event time seen, so a single event with
//! a flipped high bit (months or years ahead) would close every open window at
//! once and make all following good events late. The guard decides, per
//! event, whether its time is plausible given the *stream time* `S` (the
//! highest accepted event time):
//!
//! 1. `S - max_behind <= ts <= S + max_ahead`: plausible, accepted.
//! 2. `ts < S - max_behind`: rejected as `ts_out_of_range`. Far-past times are
//!    never followed: re-emitting windows that were closed long ago as new,
//!    partial windows would overwrite their correct counts downstream.
//! 3. `ts > S + max_ahead`, or no `S` yet (the start): *held*. Held events
//!    form *candidate regions* of time: an event joins the first region it
//!    agrees with (within `max_ahead` of the region's events), or opens a new
//!    one. Several regions are held at once, so an event that disagrees with
//!    a pending candidate is held too, not rejected: a duplicated flip at the
//!    start cannot cost valid events. Decisions are by majority:
//!    - A region is **confirmed** (a real jump of the whole stream, or the
//!      start of the input) once it holds `confirm` events, more than `S`
//!      accepted since it opened and more than any other region. `S` moves
//!      to it and its events are released in arrival order.
//!    - It is **abandoned** once `S` accepted `confirm` events since it
//!      opened and at least as many as it holds: its events (isolated flips)
//!      are rejected as `ts_out_of_range`.
//!    - When `S` moves, the regions are judged again: one now within
//!      `max_ahead` of `S` is released (its events are plausible after all),
//!      one entirely behind `S - max_behind` is rejected.
//! 4. When the input ends or goes idle ([`Guard::settle`]) every region is
//!    decided, largest first: with no `S` yet the largest is confirmed (the
//!    input is that region); otherwise a region is confirmed if it holds at
//!    least two events and more than `S` accepted since it opened, else
//!    abandoned.
//!
//! Bounds: at most [`MAX_REGIONS`] regions. A new region replaces the
//! smallest one only if that one holds a single event (which is rejected);
//! otherwise the new event is rejected. A region never holds much more than
//! `confirm` events (by then it is confirmed or abandoned), so the guard holds
//! at most about `MAX_REGIONS × confirm` events.
//!
//! Flips smaller than `max_ahead` (low bits) cannot be told from real data:
//! they are accepted and may make the next events of their window late (still
//! counted, as a correction).

use crate::window::WindowConfig;

/// Most candidate regions held at once per source.
pub const MAX_REGIONS: usize = 8;

/// What the guard decided about one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Plausible: count it now.
    Accept,
    /// Held in quarantine: it will be released or rejected later.
    Held,
    /// Rejected as `ts_out_of_range`.
    Reject,
}

/// A held event: time, hash, source offset, its region, and where its uid
/// (followed by the caller's extra bytes: its group keys) sits in the byte
/// arena.
#[derive(Debug, Clone, Copy)]
pub struct HeldEvent {
    pub ts: u64,
    pub hash: u64,
    pub offset: i64,
    /// Arrival number: released events are counted in arrival order.
    seq: u64,
    region: u32,
    uid_start: usize,
    uid_end: usize,
    /// The uid's length; the bytes after it are the extra ones.
    uid_len: u32,
}

/// Events released by a decision, in arrival order, waiting to be counted.
#[derive(Debug, Default)]
pub struct Released {
    events: Vec<HeldEvent>,
    uids: Vec<u8>,
}

impl Released {
    /// The released events as `(ts, uid, hash, offset)`, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &[u8], u64, i64)> + '_ {
        self.iter_with_extra()
            .map(|(ts, uid, _, hash, offset)| (ts, uid, hash, offset))
    }

    /// The released events as `(ts, uid, extra, hash, offset)` (`extra`: the
    /// bytes given to [`Guard::check_with`]), in arrival order.
    pub fn iter_with_extra(&self) -> impl Iterator<Item = (u64, &[u8], &[u8], u64, i64)> + '_ {
        self.events.iter().map(|e| {
            let blob = &self.uids[e.uid_start..e.uid_end];
            let (uid, extra) = blob.split_at(e.uid_len as usize);
            (e.ts, uid, extra, e.hash, e.offset)
        })
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn clear(&mut self) {
        self.events.clear();
        self.uids.clear();
    }
}

/// A candidate region of time.
#[derive(Debug, Clone, Copy)]
struct Region {
    id: u32,
    min: u64,
    max: u64,
    /// Events held in it.
    len: u64,
    /// Events `S` accepted since it opened (its competition).
    accepted_since: u64,
}

#[derive(Debug, Default)]
pub struct Guard {
    max_ahead: u64,
    max_behind: u64,
    confirm: u64,
    stream_time: Option<u64>,
    /// Pending regions, in opening order.
    regions: Vec<Region>,
    next_region: u32,
    /// Events held so far (the next arrival number).
    arrivals: u64,
    /// Every held event, in arrival order.
    held: Vec<HeldEvent>,
    held_uids: Vec<u8>,
    /// Held events rejected since the caller last asked.
    rejected_pending: u64,
    /// Held events released since the caller last drained them.
    released: Released,
}

/// What a decision does with a region's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Release,
    Reject,
}

impl Guard {
    pub fn new(cfg: &WindowConfig) -> Self {
        Guard {
            max_ahead: cfg.max_ahead_seconds,
            max_behind: cfg.max_behind_seconds,
            confirm: cfg.jump_confirm_events.max(1),
            ..Guard::default()
        }
    }

    /// Highest accepted event time, once anything was accepted.
    pub fn stream_time(&self) -> Option<u64> {
        self.stream_time
    }

    /// Starts from a stream time remembered elsewhere (e.g. in Kafka commit
    /// metadata after a restart).
    pub fn restore(&mut self, stream_time: u64) {
        self.stream_time = Some(stream_time);
    }

    /// Raises the stream time to `stream_time` if it is higher (a marker
    /// from a guard upstream that saw the whole partition).
    pub fn raise_to(&mut self, stream_time: u64) {
        if self.stream_time.is_none_or(|s| stream_time > s) {
            self.stream_time = Some(stream_time);
        }
    }

    /// Lowest source offset among held events.
    pub fn min_held_offset(&self) -> Option<i64> {
        self.held.iter().map(|e| e.offset).min()
    }

    /// Events currently held.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Whether [`Guard::check`] would accept an event at `ts` now without
    /// holding it (plausible against the stream time).
    #[inline]
    pub fn is_plausible(&self, ts: u64) -> bool {
        self.stream_time.is_some_and(|s| {
            ts <= s.saturating_add(self.max_ahead) && ts >= s.saturating_sub(self.max_behind)
        })
    }

    /// Judges one event. On `Held` the uid is copied into the quarantine.
    #[inline]
    pub fn check(&mut self, ts: u64, uid: &[u8], hash: u64, offset: i64) -> Verdict {
        self.check_with(ts, uid, &[], hash, offset)
    }

    /// [`Guard::check`], keeping `extra` bytes (the event's group keys)
    /// with a held event, to come back with it on release.
    #[inline]
    pub fn check_with(
        &mut self,
        ts: u64,
        uid: &[u8],
        extra: &[u8],
        hash: u64,
        offset: i64,
    ) -> Verdict {
        if let Some(s) = self.stream_time {
            if ts <= s.saturating_add(self.max_ahead) {
                if ts < s.saturating_sub(self.max_behind) {
                    return Verdict::Reject;
                }
                if ts > s {
                    self.stream_time = Some(ts);
                }
                if !self.regions.is_empty() {
                    self.on_accepted();
                }
                return Verdict::Accept;
            }
        }
        self.hold(ts, uid, extra, hash, offset)
    }

    /// `S` accepted an event while regions are pending: their competition
    /// grows, and `S` may have moved close to one of them.
    #[cold]
    fn on_accepted(&mut self) {
        for r in &mut self.regions {
            r.accepted_since += 1;
        }
        self.judge_against_stream_time();
    }

    #[cold]
    fn hold(&mut self, ts: u64, uid: &[u8], extra: &[u8], hash: u64, offset: i64) -> Verdict {
        let ahead = self.max_ahead;
        let joined = self
            .regions
            .iter()
            .position(|r| ts >= r.min.saturating_sub(ahead) && ts <= r.max.saturating_add(ahead));
        let idx = match joined {
            Some(i) => i,
            None => {
                if self.regions.len() >= MAX_REGIONS {
                    // The smallest region, the oldest among equals.
                    let (i, smallest) = self
                        .regions
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, r)| r.len)
                        .map(|(i, r)| (i, *r))
                        .expect("regions are full");
                    if smallest.len > 1 {
                        return Verdict::Reject;
                    }
                    self.decide(smallest.id, Fate::Reject);
                    self.regions.remove(i);
                }
                self.next_region = self.next_region.wrapping_add(1);
                self.regions.push(Region {
                    id: self.next_region,
                    min: ts,
                    max: ts,
                    len: 0,
                    accepted_since: 0,
                });
                self.regions.len() - 1
            }
        };
        let region = &mut self.regions[idx];
        region.min = region.min.min(ts);
        region.max = region.max.max(ts);
        region.len += 1;
        let id = region.id;
        let uid_start = self.held_uids.len();
        self.held_uids.extend_from_slice(uid);
        self.held_uids.extend_from_slice(extra);
        self.arrivals += 1;
        self.held.push(HeldEvent {
            ts,
            hash,
            offset,
            seq: self.arrivals,
            region: id,
            uid_start,
            uid_end: self.held_uids.len(),
            uid_len: uid.len() as u32,
        });
        let r = self.regions[idx];
        let leads = self
            .regions
            .iter()
            .all(|other| other.id == id || other.len < r.len);
        if r.len >= self.confirm && r.len > r.accepted_since && leads {
            self.confirm_region(idx);
        }
        Verdict::Held
    }

    /// `S` follows the region at `idx`; its events are released, and the
    /// other regions are judged against the new `S`.
    fn confirm_region(&mut self, idx: usize) {
        let r = self.regions.remove(idx);
        self.stream_time = Some(self.stream_time.map_or(r.max, |s| s.max(r.max)));
        self.decide(r.id, Fate::Release);
        for other in &mut self.regions {
            // The confirmed region's events now count for `S`.
            other.accepted_since += r.len;
        }
        self.judge_against_stream_time();
    }

    /// Releases regions that `S` has come close to, rejects those left far
    /// behind, and abandons those that `S` has matched in number.
    fn judge_against_stream_time(&mut self) {
        let Some(s) = self.stream_time else {
            return;
        };
        let mut i = 0;
        while i < self.regions.len() {
            let r = self.regions[i];
            let fate = if r.max <= s.saturating_add(self.max_ahead) {
                // Plausible now (events behind `S - max_behind` are dropped
                // by `decide`).
                Some(Fate::Release)
            } else if r.accepted_since >= self.confirm && r.accepted_since >= r.len {
                Some(Fate::Reject)
            } else {
                None
            };
            match fate {
                Some(f) => {
                    self.regions.remove(i);
                    self.decide(r.id, f);
                }
                None => i += 1,
            }
        }
    }

    /// Moves the events of region `id` out of the quarantine: released (in
    /// arrival order; those behind `S - max_behind` rejected) or rejected.
    fn decide(&mut self, id: u32, fate: Fate) {
        let floor = self
            .stream_time
            .map_or(0, |s| s.saturating_sub(self.max_behind));
        let mut kept_uids = 0;
        let mut kept = 0;
        for j in 0..self.held.len() {
            let e = self.held[j];
            if e.region != id {
                // Compact the survivors (buffers are reused).
                let len = e.uid_end - e.uid_start;
                self.held_uids
                    .copy_within(e.uid_start..e.uid_end, kept_uids);
                self.held[kept] = HeldEvent {
                    uid_start: kept_uids,
                    uid_end: kept_uids + len,
                    ..e
                };
                kept_uids += len;
                kept += 1;
                continue;
            }
            if fate == Fate::Release && e.ts >= floor {
                let start = self.released.uids.len();
                self.released
                    .uids
                    .extend_from_slice(&self.held_uids[e.uid_start..e.uid_end]);
                self.released.events.push(HeldEvent {
                    uid_start: start,
                    uid_end: self.released.uids.len(),
                    ..e
                });
            } else {
                self.rejected_pending += 1;
            }
        }
        self.held.truncate(kept);
        self.held_uids.truncate(kept_uids);
    }

    /// Decides every pending region (end of input, or the input went idle):
    /// largest first, with no `S` the largest is confirmed; otherwise a
    /// region with at least two events and the majority since it opened is
    /// confirmed, any other is abandoned.
    pub fn settle(&mut self) {
        while !self.regions.is_empty() {
            let (idx, r) = self
                .regions
                .iter()
                .enumerate()
                .max_by(|(ia, a), (ib, b)| a.len.cmp(&b.len).then(ib.cmp(ia)))
                .map(|(i, r)| (i, *r))
                .expect("not empty");
            if self.stream_time.is_none() || (r.len >= 2 && r.len > r.accepted_since) {
                self.confirm_region(idx);
            } else {
                self.regions.remove(idx);
                self.decide(r.id, Fate::Reject);
            }
        }
    }

    /// Held events rejected since the last call.
    pub fn take_rejected(&mut self) -> u64 {
        std::mem::take(&mut self.rejected_pending)
    }

    /// True when released events wait for [`Guard::swap_released`].
    #[inline]
    pub fn has_released(&self) -> bool {
        !self.released.is_empty()
    }

    /// True when held events were released or rejected since the caller
    /// last took them.
    #[inline]
    pub fn has_decisions(&self) -> bool {
        self.rejected_pending > 0 || !self.released.is_empty()
    }

    /// Swaps the released events with `into` (which should be empty): the
    /// caller counts them, clears the buffer and keeps it for the next time.
    pub fn swap_released(&mut self, into: &mut Released) {
        // One decision can release several regions: back to arrival order.
        self.released.events.sort_unstable_by_key(|e| e.seq);
        std::mem::swap(&mut self.released, into);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(confirm: u64) -> Guard {
        Guard::new(&WindowConfig {
            sizes: vec![crate::window::size::WindowSize::Seconds(60)],
            timezone: "UTC".into(),
            allowed_lateness_seconds: 5,
            late_retention_seconds: 600,
            max_ahead_seconds: 300,
            max_behind_seconds: 86_400,
            jump_confirm_events: confirm,
            groupings: crate::group::Groupings::none(),
            rolling: Vec::new(),
        })
    }

    /// Feeds `ts` values; returns (accepted in order, rejected count).
    fn run(g: &mut Guard, events: &[u64], settle: bool) -> (Vec<u64>, u64) {
        let mut accepted = Vec::new();
        let mut rejected = 0;
        let mut released = Released::default();
        let mut drain = |g: &mut Guard, accepted: &mut Vec<u64>, rejected: &mut u64| {
            *rejected += g.take_rejected();
            g.swap_released(&mut released);
            accepted.extend(released.iter().map(|(ts, ..)| ts));
            released.clear();
        };
        for (i, &ts) in events.iter().enumerate() {
            match g.check(ts, b"u", ts, i as i64) {
                Verdict::Accept => accepted.push(ts),
                Verdict::Reject => rejected += 1,
                Verdict::Held => {}
            }
            drain(g, &mut accepted, &mut rejected);
        }
        if settle {
            g.settle();
            drain(g, &mut accepted, &mut rejected);
        }
        (accepted, rejected)
    }

    const T0: u64 = 1_767_225_600;
    const FLIP: u64 = 10_357_160_192;

    #[test]
    fn a_duplicated_flip_at_the_start_costs_no_valid_event() {
        let mut events = vec![FLIP, FLIP];
        events.extend(T0..T0 + 16);
        let (accepted, rejected) = run(&mut guard(16), &events, true);
        assert_eq!(accepted, (T0..T0 + 16).collect::<Vec<_>>());
        assert_eq!(rejected, 2);
    }

    #[test]
    fn a_flipped_pair_after_the_first_event_costs_no_valid_event() {
        let mut events = vec![T0, 0, 0];
        events.extend(T0 + 1..T0 + 11);
        let (accepted, rejected) = run(&mut guard(16), &events, true);
        let mut want = vec![T0];
        want.extend(T0 + 1..T0 + 11);
        assert_eq!(accepted, want);
        assert_eq!(rejected, 2);
    }

    #[test]
    fn regions_are_bounded_and_a_singleton_gives_way() {
        let mut g = guard(16);
        // Eight pairs of distinct flips fill every region...
        let mut events = Vec::new();
        for k in 1..=8u64 {
            events.extend([T0 + k * 1_000_000, T0 + k * 1_000_000]);
        }
        // ...so a ninth lone flip is refused rather than held.
        events.push(T0 + 50_000_000);
        let (accepted, rejected) = run(&mut g, &events, false);
        assert!(accepted.is_empty());
        assert_eq!(rejected, 1);
        assert_eq!(g.held(), 16);
        // Singletons give way to newcomers: the valid stream still forms.
        let mut g = guard(4);
        let mut events: Vec<u64> = (1..=8).map(|k| T0 + k * 1_000_000).collect();
        events.extend(T0..T0 + 4);
        let (accepted, rejected) = run(&mut g, &events, true);
        assert_eq!(accepted, (T0..T0 + 4).collect::<Vec<_>>());
        assert_eq!(rejected, 8);
    }

    #[test]
    fn a_held_event_that_becomes_plausible_is_released() {
        let mut g = guard(16);
        g.restore(T0);
        let mut events = vec![T0];
        // Not yet plausible: 400 s ahead.
        events.push(T0 + 400);
        // The stream reaches it before 16 events passed.
        events.extend([T0 + 50, T0 + 150]);
        let (accepted, rejected) = run(&mut g, &events, false);
        assert_eq!(accepted, vec![T0, T0 + 50, T0 + 150, T0 + 400]);
        assert_eq!(rejected, 0);
    }

    #[test]
    fn a_real_jump_is_followed_after_confirm_events() {
        let mut g = guard(4);
        let mut events: Vec<u64> = (T0..T0 + 10).collect();
        events.extend(T0 + 86_400..T0 + 86_404);
        let (accepted, rejected) = run(&mut g, &events, false);
        assert_eq!(accepted, events);
        assert_eq!(rejected, 0);
        assert_eq!(g.stream_time(), Some(T0 + 86_403));
    }

    #[test]
    fn isolated_flips_are_abandoned_once_outnumbered() {
        let mut g = guard(4);
        let mut events: Vec<u64> = (T0..T0 + 4).collect();
        events.push(FLIP);
        events.extend(T0 + 4..T0 + 8);
        let (accepted, rejected) = run(&mut g, &events, false);
        assert_eq!(accepted.len(), 8);
        assert_eq!(rejected, 1);
        assert_eq!(g.held(), 0);
    }

    #[test]
    fn settle_confirms_the_start_and_drops_lone_flips() {
        // A quiet start: fewer than `confirm` events, then idle.
        let (accepted, rejected) = run(&mut guard(16), &[T0, T0 + 1, T0 + 2], true);
        assert_eq!(accepted, vec![T0, T0 + 1, T0 + 2]);
        assert_eq!(rejected, 0);
        // A lone flip after established time is abandoned when settled.
        let mut g = guard(16);
        let (_, rejected) = run(&mut g, &[T0, T0 + 1, FLIP], true);
        assert_eq!(rejected, 1);
        // Two agreeing events ahead, with the majority since: a real jump.
        let mut g = guard(16);
        let (accepted, _) = run(&mut g, &[T0, T0 + 9_000, T0 + 9_001], true);
        assert_eq!(accepted, vec![T0, T0 + 9_000, T0 + 9_001]);
    }
}
