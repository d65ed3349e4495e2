//! Reproducible synthetic event stream for tests, benchmarks and `data/sample.jsonl.gz`.
//!
//! All randomness comes from a self-contained xoshiro256** generator seeded by SplitMix64, and the
//! Zipf sampler uses its own `ln`/`exp` built from IEEE basic operations instead of the platform
//! libm, so the same [`GenerateOptions`] give byte-identical output on every machine and with every
//! dependency version, forever. Alongside the lines, [`generate`] returns the exact [`Truth`] that a
//! correct counter must report, so tests never need a second implementation of the counting rules.

use crate::window::size::{Grid, WindowSize};
use std::collections::{BTreeMap, HashSet};

use std::fmt::{self, Write as _};
use std::io::{self, Write};
use std::str::FromStr;

mod frame;
mod groups;
pub(crate) mod rng;

use frame::Gen;
pub(crate) use rng::{Rng, Zipf};

/// Shape of the JSON object written for each event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// `{"ts":N,"uid":"..."}` and nothing else (~40 bytes): stresses the counting core.
    Minimal,
    /// ~2 KB analytics-style object with nested decoys, escapes and mixed number forms: stresses
    /// the decoder the way production traffic does.
    Realistic,
}

impl FromStr for FrameKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "minimal" => Ok(Self::Minimal),
            "realistic" => Ok(Self::Realistic),
            _ => Err(format!(
                "unknown frame kind {s:?} (expected minimal or realistic)"
            )),
        }
    }
}

impl fmt::Display for FrameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Minimal => "minimal",
            Self::Realistic => "realistic",
        })
    }
}

/// Knobs of the generated stream; every field is part of the reproducibility contract.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// PRNG seed: same options and seed give the same bytes.
    pub seed: u64,
    /// Number of lines written, all kinds included.
    pub events: u64,
    /// Size of the user population; user `k` always has the uid [`uid_for`]`(k)`.
    pub users: u64,
    /// Event time ("now") of the first line.
    pub start_ts: u64,
    /// "Now" advances linearly from `start_ts` to `start_ts + span_seconds` over the run.
    pub span_seconds: u64,
    /// Zipf exponent of visit frequency over users (0 = uniform; user 0 is the most active).
    pub skew: f64,
    /// On-time events get `ts = now - U[0, disorder_seconds]`; keep it below the counter's
    /// allowed lateness (5 s) so that on-time events are never dropped.
    pub disorder_seconds: u64,
    /// Share of valid events that are late: `ts = now - U[disorder_seconds + 1, late_max_seconds]`.
    pub late_share: f64,
    /// Largest lateness of a late event.
    pub late_max_seconds: u64,
    /// Share of lines that a correct decoder rejects.
    pub invalid_share: f64,
    /// Share of lines whose ts has one bit in 20..=33 flipped (months to centuries off).
    pub outlier_share: f64,
    /// Share of valid frames written as a JSON string holding the object (Kafka Connect style).
    pub wrapped_share: f64,
    /// Frame shape.
    pub frame: FrameKind,
    /// Fields to group by in every valid frame: `country`, `page`,
    /// `ctx.device` (see `groups.rs`).
    pub groups: bool,
    /// Distinct `page` values with `groups`.
    pub group_pages: u64,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            seed: 42,
            events: 100_000,
            users: 10_000,
            start_ts: 1_767_225_600,
            span_seconds: 3600,
            skew: 1.0,
            disorder_seconds: 3,
            late_share: 0.01,
            late_max_seconds: 300,
            invalid_share: 0.001,
            outlier_share: 0.0001,
            wrapped_share: 0.0,
            frame: FrameKind::Realistic,
            groups: false,
            group_pages: 1000,
        }
    }
}

/// Window start (unix seconds) -> (distinct users, accepted events).
pub type TruthWindows = BTreeMap<u64, (u64, u64)>;

/// Exact truth of what a correct counter must report per window.
///
/// Every valid line counts, late ones included (`late` is a subset of `valid`); invalid and
/// outlier lines never count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Truth {
    /// Of the first size: window start (unix seconds) -> (distinct users, accepted events).
    pub windows: TruthWindows,
    /// Every size, in order, with its windows (the first is `windows` again).
    pub by_size: Vec<(WindowSize, TruthWindows)>,
    /// Lines written.
    pub lines: u64,
    /// Lines counted into `windows` (on-time and late).
    pub valid: u64,
    /// Lines a correct decoder rejects.
    pub invalid: u64,
    /// Well-formed lines whose ts is far from "now" (bit-flipped).
    pub outliers: u64,
    /// Valid lines older than `disorder_seconds`.
    pub late: u64,
}

impl Truth {
    /// One `{"start_ts":N,"unique_users":N,"events":N}` line per window, in window order
    /// per size; with several sizes each line ends with `"window":"<size>"`, as records do.
    pub fn to_json_lines(&self) -> String {
        let mut s = String::new();
        let labelled = self.by_size.len() > 1;
        for (size, windows) in &self.by_size {
            for (start, (users, events)) in windows {
                let _ = write!(
                    s,
                    r#"{{"start_ts":{start},"unique_users":{users},"events":{events}"#
                );
                if labelled {
                    let _ = write!(s, r#","window":"{size}""#);
                }
                s.push_str("}\n");
            }
        }
        s
    }
}

/// What one generated line is, for tests that check lines one by one ([`generate_traced`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind {
    /// Valid, `ts` within `disorder_seconds` of "now".
    OnTime,
    /// Valid, older than `disorder_seconds`; still counted in the truth.
    Late,
    /// Well-formed but with a bit-flipped `ts`; not counted.
    Outlier,
    /// Rejected by a correct decoder; not counted.
    Invalid,
}

/// Writes `opts.events` JSON lines (each terminated by '\n') to `out` and returns the truth.
/// Memory: O(distinct (window, user) pairs) for the truth, never O(events).
pub fn generate<W: Write>(
    opts: &GenerateOptions,
    grids: &[Grid],
    out: &mut W,
) -> io::Result<Truth> {
    generate_traced(opts, grids, out, |_| {})
}

/// [`generate`], also reporting the kind of each line, in order, to `trace`.
pub fn generate_traced<W: Write, F: FnMut(LineKind)>(
    opts: &GenerateOptions,
    grids: &[Grid],
    out: &mut W,
    mut trace: F,
) -> io::Result<Truth> {
    if grids.is_empty() || opts.users == 0 || !(opts.skew.is_finite() && opts.skew >= 0.0) {
        let msg = "window sizes and users must be given, skew finite and >= 0";
        return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    }
    let zipf = Zipf::new(opts.users, opts.skew);
    let late_min = opts.disorder_seconds.saturating_add(1);
    let late_max = opts.late_max_seconds.max(late_min);
    let realistic = opts.frame == FrameKind::Realistic;
    let mut g = Gen {
        r: Rng::new(opts.seed),
        realistic,
        groups: opts
            .groups
            .then(|| groups::GroupFields::new(opts.group_pages)),
        ..Gen::default()
    };
    let truth = Truth {
        lines: opts.events,
        ..Truth::default()
    };
    let mut tally = Tally {
        grids: grids.to_vec(),
        horizon: late_max,
        open: vec![BTreeMap::new(); grids.len()],
        done: vec![BTreeMap::new(); grids.len()],
        truth,
    };
    let mut buf = Vec::with_capacity(1 << 17);
    for i in 0..opts.events {
        let step = u128::from(i) * u128::from(opts.span_seconds) / u128::from(opts.events);
        let now = opts.start_ts.saturating_add(step as u64);
        tally.close_before(now);
        let user = zipf.sample(&mut g.r);
        let on_time = now.saturating_sub(g.r.range(0, opts.disorder_seconds));
        let roll = g.r.unit();
        let (kind, ts) = if roll < opts.invalid_share {
            (LineKind::Invalid, on_time)
        } else if roll < opts.invalid_share + opts.outlier_share {
            (LineKind::Outlier, on_time ^ (1 << g.r.range(20, 33)))
        } else if g.r.chance(opts.late_share) {
            (
                LineKind::Late,
                now.saturating_sub(g.r.range(late_min, late_max)),
            )
        } else {
            (LineKind::OnTime, on_time)
        };
        g.roots(ts, user);
        if kind == LineKind::Invalid {
            g.invalid(ts, user, &mut buf);
            tally.truth.invalid += 1;
        } else {
            g.frame(true, true, b"");
            if kind != LineKind::Outlier && g.r.chance(opts.wrapped_share) {
                // Valid frames hold no control bytes, so escaping `"` and `\` makes a proper
                // JSON string (what serde_json would write, but fixed here forever).
                buf.push(b'"');
                for &b in &g.frame {
                    if b == b'"' || b == b'\\' {
                        buf.push(b'\\');
                    }
                    buf.push(b);
                }
                buf.push(b'"');
            } else {
                buf.extend_from_slice(&g.frame);
            }
            match kind {
                LineKind::Outlier => tally.truth.outliers += 1,
                _ => tally.add(ts, user, kind == LineKind::Late),
            }
        }
        buf.push(b'\n');
        trace(kind);
        if buf.len() >= 1 << 16 {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)?;
    tally.close_before(u64::MAX);
    Ok(tally.finish())
}

/// Bijective 64-bit mixer (SplitMix64 finalizer): distinct inputs give distinct outputs.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The uid of user `k`, unique per `k` (whatever the seed): `u` + hex of a bijective mix of `k`,
/// except that every 7th user (`k % 7 == 3`) gets a non-ASCII uid (Cyrillic, Latin-1 with a `/`,
/// or an astral-plane emoji that needs a surrogate pair when escaped).
pub fn uid_for(k: u64) -> String {
    let mut s = String::new();
    push_uid(&mut s, k);
    s
}

pub(crate) fn push_uid(s: &mut String, k: u64) {
    if k % 7 == 3 {
        s.push_str(["пользователь-", "zoë/ä-", "🦀crab-"][(k / 7 % 3) as usize]);
        let _ = write!(s, "{k}");
    } else {
        let _ = write!(s, "u{:012x}", mix64(k.wrapping_add(0x9E37_79B9_7F4A_7C15)));
    }
}

/// Truth builder that finalizes windows as soon as no later event can reach them, so memory is
/// bounded by the (window, user) pairs of the windows still open.
/// A truth window that later events can still reach: end, users, events.
type OpenWindow = (u64, HashSet<u64>, u64);

struct Tally {
    grids: Vec<Grid>,
    /// Largest distance of a valid ts below "now".
    horizon: u64,
    /// Per size: start -> the window still open.
    open: Vec<BTreeMap<u64, OpenWindow>>,
    /// Per size: finished windows.
    done: Vec<TruthWindows>,
    truth: Truth,
}

impl Tally {
    fn add(&mut self, ts: u64, user: u64, late: bool) {
        for (grid, open) in self.grids.iter().zip(&mut self.open) {
            let (start, end) = grid.bounds(ts).expect("generated times are in range");
            let w = open
                .entry(start)
                .or_insert_with(|| (end, HashSet::new(), 0));
            w.1.insert(user);
            w.2 += 1;
        }
        self.truth.valid += 1;
        self.truth.late += u64::from(late);
    }
    /// Every later valid ts is `>= now - horizon`, so windows ending at or before it are final.
    fn close_before(&mut self, now: u64) {
        let limit = now.saturating_sub(self.horizon);
        for (open, done) in self.open.iter_mut().zip(&mut self.done) {
            while let Some(entry) = open.first_entry() {
                if entry.get().0 > limit {
                    break;
                }
                let (start, (_, users, events)) = entry.remove_entry();
                done.insert(start, (users.len() as u64, events));
            }
        }
    }
    fn finish(mut self) -> Truth {
        self.truth.by_size = self.grids.iter().map(|g| g.size).zip(self.done).collect();
        self.truth.windows = self.truth.by_size[0].1.clone();
        self.truth
    }
}

#[cfg(test)]
mod tests;
