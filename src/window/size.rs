//! Window sizes and where each window starts and ends.
//!
//! `DISTINCTLY_WINDOWS` lists sizes: `<n>s` and `<n>m` are fixed lengths
//! aligned to the Unix epoch (so to every time zone's minutes); `<n>h`
//! (`n` dividing 24), `<n>d`, `1w` (ISO weeks, Monday 00:00), `1mo`
//! (calendar months) and `1y` (calendar years) follow the wall clock of
//! `DISTINCTLY_TIMEZONE`: a day
//! is local midnight to local midnight, 23 or 25 hours long on a DST change,
//! and an hour is the time between two local `:00`, so the local hour that
//! repeats when clocks go back lasts two hours.
//!
//! Calendar boundaries are local dates and times turned into instants by the
//! `jiff` time-zone library (its own bundled IANA database): a boundary that
//! falls into a DST gap is the first instant after the gap, one that falls
//! into a repeated hour is its first occurrence. So consecutive windows tile
//! the timeline with no gap and no overlap.

use jiff::civil::{self, Date};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use std::fmt;
use std::str::FromStr;

/// One window size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WindowSize {
    /// A fixed length in seconds, aligned to the Unix epoch.
    Seconds(u64),
    /// `n` local hours, aligned to local midnight (`n` divides 24).
    Hours(u8),
    /// `n` local days, aligned to 1970-01-01 in local dates.
    Days(u32),
    /// An ISO week: local Monday 00:00 to the next.
    Week,
    /// A calendar month: the local 1st 00:00 to the next.
    Month,
    /// A calendar year: local 1 January 00:00 to the next.
    Year,
}

/// Why a list of sizes is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadSize {
    #[error(
        "{0:?} is not a window size (expected <n>s, <n>m, <n>h with n dividing 24, <n>d, 1w, \
         1mo or 1y)"
    )]
    NotASize(String),
    #[error("{0} is listed twice")]
    Twice(String),
    #[error("{0} and {1} are the same size")]
    Same(String, String),
    #[error("no window size given")]
    Empty,
}

impl FromStr for WindowSize {
    type Err = BadSize;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadSize::NotASize(s.to_string());
        let t = s.trim();
        match t {
            "1w" => return Ok(WindowSize::Week),
            "1mo" => return Ok(WindowSize::Month),
            "1y" => return Ok(WindowSize::Year),
            _ => {}
        }
        let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (digits, unit) = t.split_at(split);
        let n: u64 = digits.parse().map_err(|_| bad())?;
        if n == 0 {
            return Err(bad());
        }
        match unit {
            "s" => Ok(WindowSize::Seconds(n)),
            "m" => n.checked_mul(60).map(WindowSize::Seconds).ok_or_else(bad),
            "h" if 24 % n == 0 => Ok(WindowSize::Hours(n as u8)),
            "d" => u32::try_from(n).map(WindowSize::Days).map_err(|_| bad()),
            _ => Err(bad()),
        }
    }
}

/// The canonical label: `30s`, `5m`, `1h`, `1d`, `1w`, `1mo`, `1y` (the
/// `window` field of multi-size records and part of their Kafka key).
impl fmt::Display for WindowSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WindowSize::Seconds(s) if s % 60 == 0 => write!(f, "{}m", s / 60),
            WindowSize::Seconds(s) => write!(f, "{s}s"),
            WindowSize::Hours(n) => write!(f, "{n}h"),
            WindowSize::Days(n) => write!(f, "{n}d"),
            WindowSize::Week => f.write_str("1w"),
            WindowSize::Month => f.write_str("1mo"),
            WindowSize::Year => f.write_str("1y"),
        }
    }
}

impl WindowSize {
    /// Nominal length in seconds (a calendar window can differ by a DST
    /// hour, a month by days): for sizing and bounds checks only.
    pub fn nominal_seconds(self) -> u64 {
        match self {
            WindowSize::Seconds(s) => s,
            WindowSize::Hours(n) => u64::from(n) * 3600,
            WindowSize::Days(n) => u64::from(n) * 86_400,
            WindowSize::Week => 7 * 86_400,
            WindowSize::Month => 31 * 86_400,
            WindowSize::Year => 366 * 86_400,
        }
    }

    /// Whether the size follows the time zone's wall clock.
    pub fn is_calendar(self) -> bool {
        !matches!(self, WindowSize::Seconds(_))
    }
}

/// Parses a comma-separated list of sizes (duplicates refused: `1m,1m`
/// is listed twice, `60s,1m` the same size written twice).
pub fn parse_sizes(list: &str) -> Result<Vec<WindowSize>, BadSize> {
    let mut sizes: Vec<(WindowSize, &str)> = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let size: WindowSize = part.parse()?;
        if let Some(&(_, first)) = sizes.iter().find(|(s, _)| *s == size) {
            return Err(if first == part {
                BadSize::Twice(part.to_string())
            } else {
                BadSize::Same(first.to_string(), part.to_string())
            });
        }
        sizes.push((size, part));
    }
    if sizes.is_empty() {
        return Err(BadSize::Empty);
    }
    Ok(sizes.into_iter().map(|(s, _)| s).collect())
}

/// Looks up an IANA time zone name in the bundled database.
pub fn time_zone(name: &str) -> Result<TimeZone, String> {
    if name == "UTC" {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name).map_err(|e| format!("{name:?} is not a known IANA time zone ({e})"))
}

/// A size in a time zone: the grid of its windows.
#[derive(Debug, Clone)]
pub struct Grid {
    pub size: WindowSize,
    tz: TimeZone,
}

/// 1970-01-01, the origin of `<n>d` windows.
const EPOCH_DATE: Date = civil::date(1970, 1, 1);

impl Grid {
    pub fn new(size: WindowSize, tz: TimeZone) -> Self {
        Grid { size, tz }
    }

    /// Fixed windows of `seconds`, epoch-aligned.
    pub fn fixed(seconds: u64) -> Self {
        Grid::new(WindowSize::Seconds(seconds), TimeZone::UTC)
    }

    /// The grids of `sizes` in the zone called `zone`.
    pub fn all(sizes: &[WindowSize], zone: &str) -> Result<Vec<Grid>, String> {
        let tz = time_zone(zone)?;
        Ok(sizes.iter().map(|&s| Grid::new(s, tz.clone())).collect())
    }

    /// `[start, end)` of the window holding `ts` (Unix seconds), or `None`
    /// beyond the range the time-zone library handles.
    pub fn bounds(&self, ts: u64) -> Option<(u64, u64)> {
        if let WindowSize::Seconds(w) = self.size {
            let start = ts - ts % w;
            return Some((start, start.checked_add(w)?));
        }
        let instant = Timestamp::from_second(i64::try_from(ts).ok()?).ok()?;
        let local = instant.to_zoned(self.tz.clone());
        let date = local.date();
        let (first, next) = match self.size {
            WindowSize::Seconds(_) => unreachable!("handled above"),
            WindowSize::Hours(n) => {
                let n = n as i8;
                let h0 = local.hour() - local.hour() % n;
                let start = date.at(h0, 0, 0, 0).to_zoned(self.tz.clone()).ok()?;
                let end = if h0 + n < 24 {
                    date.at(h0 + n, 0, 0, 0).to_zoned(self.tz.clone()).ok()?
                } else {
                    date.tomorrow().ok()?.to_zoned(self.tz.clone()).ok()?
                };
                return Some((seconds(&start)?, seconds(&end)?));
            }
            WindowSize::Days(n) => {
                let days = i64::from(date.since(EPOCH_DATE).ok()?.get_days());
                let first = days - days.rem_euclid(i64::from(n));
                let start = EPOCH_DATE.checked_add(first.days()).ok()?;
                (start, start.checked_add(i64::from(n).days()).ok()?)
            }
            WindowSize::Week => {
                let back = i64::from(date.weekday().to_monday_zero_offset());
                let monday = date.checked_sub(back.days()).ok()?;
                (monday, monday.checked_add(7.days()).ok()?)
            }
            WindowSize::Month => {
                let first = date.first_of_month();
                (first, first.checked_add(1.month()).ok()?)
            }
            WindowSize::Year => {
                let first = date.first_of_year();
                (first, first.checked_add(1.year()).ok()?)
            }
        };
        let start = first.to_zoned(self.tz.clone()).ok()?;
        let end = next.to_zoned(self.tz.clone()).ok()?;
        Some((seconds(&start)?, seconds(&end)?))
    }

    /// The latest event time whose window ends by `last_end` (the last
    /// instant an RFC 3339 timestamp can hold).
    pub fn max_ts(&self, last_end: u64) -> u64 {
        // Window ends grow with `ts`, so "its window ends in time" holds up
        // to some `ts` and not after: binary search (near the end of year
        // 9999 a local time can also fall outside what the time-zone library
        // represents, which counts as not in time).
        let fits = |ts: u64| self.bounds(ts).is_some_and(|(_, end)| end <= last_end);
        // (Windows that would start before 1970 cannot be placed either, and
        // east of UTC the local year 1970 does: begin the search in 1972,
        // whose windows of every size start after the epoch.)
        let (mut lo, mut hi) = (800 * 86_400, last_end);
        if !fits(lo) {
            return 0;
        }
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }
}

fn seconds(z: &jiff::Zoned) -> Option<u64> {
    u64::try_from(z.timestamp().as_second()).ok()
}

/// Most steps in one rolling window (merges per emission).
pub const MAX_STEPS: u64 = 1000;

/// One setting of `DISTINCTLY_ROLLING`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rolling {
    pub length: WindowSize,
    pub step: WindowSize,
}

impl fmt::Display for Rolling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.length, self.step)
    }
}

impl Rolling {
    /// Steps per window.
    pub fn steps(self) -> u64 {
        self.length.nominal_seconds() / self.step.nominal_seconds()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadRolling {
    #[error("{0:?}: expected <length>/<step> such as 1h/1m or 30d/1d")]
    Form(String),
    #[error("{entry:?}: {reason}")]
    Size { entry: String, reason: String },
    #[error("{0:?}: weeks, months and years have no fixed length here; write 7d, 28d or 30d")]
    Calendar(String),
    #[error("{0:?}: the step must divide the length")]
    Divide(String),
    #[error("{0:?}: at most {MAX_STEPS} steps per window")]
    TooManySteps(String),
    #[error("{0:?} is given twice")]
    Twice(String),
}

/// The rolling windows of a setting (empty for an empty one).
pub fn parse_rolling(setting: &str) -> Result<Vec<Rolling>, BadRolling> {
    let mut out: Vec<Rolling> = Vec::new();
    for entry in setting.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (length, step) = entry
            .split_once('/')
            .ok_or_else(|| BadRolling::Form(entry.to_string()))?;
        let size = |s: &str| -> Result<WindowSize, BadRolling> {
            let size: WindowSize = s.trim().parse().map_err(|e| BadRolling::Size {
                entry: entry.to_string(),
                reason: format!("{e}"),
            })?;
            match size {
                WindowSize::Week | WindowSize::Month | WindowSize::Year => {
                    Err(BadRolling::Calendar(entry.to_string()))
                }
                s => Ok(s),
            }
        };
        let r = Rolling {
            length: size(length)?,
            step: size(step)?,
        };
        let (len, step) = (r.length.nominal_seconds(), r.step.nominal_seconds());
        if len % step != 0 {
            return Err(BadRolling::Divide(entry.to_string()));
        }
        if len / step > MAX_STEPS {
            return Err(BadRolling::TooManySteps(entry.to_string()));
        }
        if out.contains(&r) {
            return Err(BadRolling::Twice(entry.to_string()));
        }
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
