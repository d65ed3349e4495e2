//! The plausibility guard: keeps bit-flipped timestamps from moving time.
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
//! 3. `ts > S + max_ahead` (or no `S` yet, at the start): *held* in a small
//!    quarantine that collects one candidate region of time. An event agrees
//!    with the candidate when it lies within `max_ahead` of the region's
//!    events seen so far.
//!    - The candidate is **confirmed** (a real jump of the whole stream, e.g.
//!      after a gap in the data) once it holds `confirm` events and more
//!      events than arrived outside it since it opened. `S` moves to it, and
//!      the held events are released in arrival order: nothing is lost.
//!    - It is **abandoned** once `confirm` events arrived outside it and they
//!      are at least as many as it holds: its events (isolated flips) are
//!      rejected as `ts_out_of_range`.
//!    - An event that agrees with neither `S` nor the candidate replaces a
//!      one-event candidate (rejecting that event) or is rejected itself.
//! 4. At the end of the input a pending candidate is confirmed if nothing has
//!    been accepted yet (the whole input is that region), or if it holds at
//!    least two events and the majority since it opened; otherwise it is
//!    abandoned.
//!
//! Flips smaller than `max_ahead` (low bits) cannot be told from real data:
//! they are accepted and may make the next events of their window late (still
//! counted, as a correction). The quarantine holds at most `confirm` events.

use crate::window::WindowConfig;

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

/// A held event: time, hash, source offset and where its uid sits in the
/// byte arena.
#[derive(Debug, Clone, Copy)]
pub struct HeldEvent {
    pub ts: u64,
    pub hash: u64,
    pub offset: i64,
    uid_start: usize,
    uid_end: usize,
}

#[derive(Debug, Default)]
pub struct Guard {
    max_ahead: u64,
    max_behind: u64,
    confirm: u64,
    stream_time: Option<u64>,
    /// Held events of the candidate region, in arrival order.
    held: Vec<HeldEvent>,
    held_uids: Vec<u8>,
    /// Time range of the candidate region.
    cand_min: u64,
    cand_max: u64,
    /// Events that did not join the candidate since it opened.
    others: u64,
    /// Held events rejected since the caller last asked (abandoned candidates).
    rejected_pending: u64,
    /// True when `held` was confirmed and awaits `drain_released`.
    released: bool,
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

    /// Lowest source offset among held events.
    pub fn min_held_offset(&self) -> Option<i64> {
        self.held.iter().map(|e| e.offset).min()
    }

    /// Judges one event. On `Held` the uid is copied into the quarantine.
    #[inline]
    pub fn check(&mut self, ts: u64, uid: &[u8], hash: u64, offset: i64) -> Verdict {
        if let Some(s) = self.stream_time {
            if ts <= s.saturating_add(self.max_ahead) {
                if ts < s.saturating_sub(self.max_behind) {
                    return Verdict::Reject;
                }
                if ts > s {
                    self.stream_time = Some(ts);
                }
                if !self.held.is_empty() {
                    self.others += 1;
                    self.maybe_abandon();
                }
                return Verdict::Accept;
            }
        }
        self.check_outlier(ts, uid, hash, offset)
    }

    #[cold]
    fn check_outlier(&mut self, ts: u64, uid: &[u8], hash: u64, offset: i64) -> Verdict {
        let agrees = !self.held.is_empty()
            && ts >= self.cand_min.saturating_sub(self.max_ahead)
            && ts <= self.cand_max.saturating_add(self.max_ahead);
        if !agrees {
            if self.held.len() >= 2 {
                self.others += 1;
                self.maybe_abandon();
                return Verdict::Reject;
            }
            // Replace a lone (or no) candidate with this event.
            self.rejected_pending += self.held.len() as u64;
            self.held.clear();
            self.held_uids.clear();
            self.others = 0;
            self.cand_min = ts;
            self.cand_max = ts;
        }
        let uid_start = self.held_uids.len();
        self.held_uids.extend_from_slice(uid);
        self.held.push(HeldEvent {
            ts,
            hash,
            offset,
            uid_start,
            uid_end: self.held_uids.len(),
        });
        self.cand_min = self.cand_min.min(ts);
        self.cand_max = self.cand_max.max(ts);
        let count = self.held.len() as u64;
        if count >= self.confirm && count > self.others {
            self.confirm_candidate();
        }
        Verdict::Held
    }

    fn maybe_abandon(&mut self) {
        if self.others >= self.confirm && self.others >= self.held.len() as u64 {
            self.rejected_pending += self.held.len() as u64;
            self.held.clear();
            self.held_uids.clear();
            self.others = 0;
        }
    }

    fn confirm_candidate(&mut self) {
        let s = self.stream_time.unwrap_or(0).max(self.cand_max);
        self.stream_time = Some(s);
        self.released = true;
    }

    /// End of input: settles a pending candidate (rule 4).
    pub fn finish(&mut self) {
        if self.held.is_empty() || self.released {
            return;
        }
        let count = self.held.len() as u64;
        if self.stream_time.is_none() || (count >= 2 && count > self.others) {
            self.confirm_candidate();
        } else {
            self.rejected_pending += count;
            self.held.clear();
            self.held_uids.clear();
        }
    }

    /// Held events rejected since the last call (abandoned candidates).
    pub fn take_rejected(&mut self) -> u64 {
        std::mem::take(&mut self.rejected_pending)
    }

    /// True when a confirmed candidate's events are waiting to be released.
    #[inline]
    pub fn has_released(&self) -> bool {
        self.released
    }

    /// Hands the released events to `f` in arrival order and empties the
    /// quarantine (keeping its buffers).
    pub fn drain_released(&mut self, mut f: impl FnMut(u64, &[u8], u64, i64)) {
        if !self.released {
            return;
        }
        for e in &self.held {
            f(
                e.ts,
                &self.held_uids[e.uid_start..e.uid_end],
                e.hash,
                e.offset,
            );
        }
        self.held.clear();
        self.held_uids.clear();
        self.others = 0;
        self.released = false;
    }

    /// Events currently held.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}
