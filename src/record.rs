//! The output record: one JSON object per emitted window (revision).
//!
//! ```json
//! {"window_start":"2026-01-01T00:00:00Z","window_end":"2026-01-01T00:01:00Z",
//!  "start_ts":1767225600,"end_ts":1767225660,"unique_users":1234,"events":5678,
//!  "counter":"hll-p14","revision":0}
//! ```
//!
//! With several window sizes the record also says its size, last:
//! `…,"revision":0,"window":"1h"}`, and its Kafka key is `1h:<start_ts>`;
//! with one size both are as above (key: `start_ts`). In a time zone other
//! than UTC, the start and end also come as local times with their offset,
//! after the UTC ones: `"window_start_local":"2026-01-01T00:00:00+01:00",
//! "window_end_local":…` (the local date a person reads the window by).
//!
//! Written by hand into a reused buffer: every field is a number or a string
//! that needs no escaping, and this runs once per window, not per event.

use crate::counter::CounterKind;
use crate::window::size::WindowSize;
use jiff::tz::TimeZone;
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowRecord {
    /// Window start, Unix seconds.
    pub start_ts: u64,
    /// Window end (exclusive), Unix seconds.
    pub end_ts: u64,
    /// The window's size, when the run counts several (then it is written).
    pub size: Option<WindowSize>,
    /// Distinct users (the backend's estimate, rounded).
    pub unique_users: u64,
    /// Accepted events counted in the window, duplicates and late ones included.
    pub events: u64,
    pub counter: CounterKind,
    /// 0 for the first emission, +1 for every correction.
    pub revision: u32,
}

impl WindowRecord {
    pub fn end_ts(&self) -> u64 {
        self.end_ts
    }

    /// The Kafka key: `start_ts`, or `<size>:<start_ts>` with several sizes
    /// (so a compacted topic keeps the latest record of each window).
    pub fn key(&self) -> String {
        match self.size {
            None => self.start_ts.to_string(),
            Some(size) => format!("{size}:{}", self.start_ts),
        }
    }

    /// Appends the JSON object (no newline); with `local`, the local start
    /// and end in that zone too.
    pub fn write_json(&self, out: &mut Vec<u8>, local: Option<&TimeZone>) {
        // Writing to a Vec cannot fail.
        let _ = write!(
            out,
            "{{\"window_start\":\"{}\",\"window_end\":\"{}\",",
            Rfc3339(self.start_ts),
            Rfc3339(self.end_ts),
        );
        if let Some(tz) = local {
            let _ = write!(
                out,
                "\"window_start_local\":\"{}\",\"window_end_local\":\"{}\",",
                Local(self.start_ts, tz),
                Local(self.end_ts, tz),
            );
        }
        let _ = write!(
            out,
            "\"start_ts\":{},\"end_ts\":{},\
             \"unique_users\":{},\"events\":{},\"counter\":\"{}\",\"revision\":{}",
            self.start_ts, self.end_ts, self.unique_users, self.events, self.counter, self.revision
        );
        let _ = match self.size {
            Some(size) => write!(out, ",\"window\":\"{size}\"}}"),
            None => write!(out, "}}"),
        };
    }

    /// The record as a JSON string (UTC times only).
    pub fn to_json(&self) -> String {
        let mut v = Vec::with_capacity(200);
        self.write_json(&mut v, None);
        String::from_utf8(v).expect("ASCII")
    }
}

/// The zone whose local times records carry: `None` for UTC, whose local
/// times are the UTC ones already written.
pub fn local_zone(name: &str) -> Result<Option<TimeZone>, String> {
    if name == "UTC" {
        return Ok(None);
    }
    crate::window::size::time_zone(name).map(Some)
}

/// Unix seconds as local RFC 3339 time with its UTC offset in a zone:
/// `2026-01-01T00:00:00+01:00`.
struct Local<'a>(u64, &'a TimeZone);

impl std::fmt::Display for Local<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let zoned = i64::try_from(self.0)
            .ok()
            .and_then(|s| jiff::Timestamp::from_second(s).ok())
            .map(|t| t.to_zoned(self.1.clone()));
        match zoned {
            Some(z) => write!(f, "{}", z.strftime("%Y-%m-%dT%H:%M:%S%:z")),
            // Beyond what the time-zone library places: the UTC time.
            None => write!(f, "{}", Rfc3339(self.0)),
        }
    }
}

/// Unix seconds formatted as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub struct Rfc3339(pub u64);

impl std::fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let days = self.0 / 86_400;
        let secs = self.0 % 86_400;
        let (y, m, d) = civil_from_days(days as i64);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        for (ts, want) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_767_225_600, "2026-01-01T00:00:00Z"),
            (1_767_225_659, "2026-01-01T00:00:59Z"),
            (4_107_542_400, "2100-03-01T00:00:00Z"),
            (crate::decode::MAX_TS, "9999-12-31T23:59:59Z"),
        ] {
            assert_eq!(Rfc3339(ts).to_string(), want);
        }
    }

    #[test]
    fn record_json_parses_back() {
        let mut r = WindowRecord {
            start_ts: 1_767_225_600,
            end_ts: 1_767_225_660,
            size: None,
            unique_users: 12,
            events: 30,
            counter: CounterKind::Hll { precision: 14 },
            revision: 2,
        };
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["window_start"], "2026-01-01T00:00:00Z");
        assert_eq!(v["window_end"], "2026-01-01T00:01:00Z");
        assert_eq!(v["start_ts"], 1_767_225_600u64);
        assert_eq!(v["end_ts"], 1_767_225_660u64);
        assert_eq!(v["unique_users"], 12);
        assert_eq!(v["events"], 30);
        assert_eq!(v["counter"], "hll-p14");
        assert_eq!(v["revision"], 2);
        assert!(v.get("window").is_none(), "one size: today's record");
        assert_eq!(r.key(), "1767225600");
        r.size = Some(WindowSize::Hours(1));
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["window"], "1h");
        assert_eq!(r.key(), "1h:1767225600");
        assert!(v.get("window_start_local").is_none(), "UTC: no local times");
        assert_eq!(local_zone("UTC"), Ok(None));
    }

    #[test]
    fn local_times_say_the_local_date_with_its_offset() {
        // Berlin's 1 January 2026 and the day it changes to summer time.
        let berlin = local_zone("Europe/Berlin").unwrap();
        let write = |start_ts, end_ts| {
            let r = WindowRecord {
                start_ts,
                end_ts,
                size: Some(WindowSize::Days(1)),
                unique_users: 1,
                events: 1,
                counter: CounterKind::Exact,
                revision: 0,
            };
            let mut out = Vec::new();
            r.write_json(&mut out, berlin.as_ref());
            serde_json::from_slice::<serde_json::Value>(&out).unwrap()
        };
        let v = write(1_767_222_000, 1_767_308_400);
        assert_eq!(v["window_start"], "2025-12-31T23:00:00Z");
        assert_eq!(v["window_start_local"], "2026-01-01T00:00:00+01:00");
        assert_eq!(v["window_end_local"], "2026-01-02T00:00:00+01:00");
        let v = write(1_774_738_800, 1_774_821_600);
        assert_eq!(v["window_start_local"], "2026-03-29T00:00:00+01:00");
        assert_eq!(v["window_end_local"], "2026-03-30T00:00:00+02:00");
        let kolkata = local_zone("Asia/Kolkata").unwrap();
        let r = WindowRecord {
            start_ts: 1_767_225_600,
            end_ts: 1_767_225_660,
            size: None,
            unique_users: 1,
            events: 1,
            counter: CounterKind::Exact,
            revision: 0,
        };
        let mut out = Vec::new();
        r.write_json(&mut out, kolkata.as_ref());
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["window_start_local"], "2026-01-01T05:30:00+05:30");
        assert!(local_zone("Mars/Olympus").is_err());
    }
}
