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
//! with one size both are as above (key: `start_ts`).
//!
//! Written by hand into a reused buffer: every field is a number or a string
//! that needs no escaping, and this runs once per window, not per event.

use crate::counter::CounterKind;
use crate::window::size::WindowSize;
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

    /// Appends the JSON object (no newline).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // Writing to a Vec cannot fail.
        let _ = write!(
            out,
            "{{\"window_start\":\"{}\",\"window_end\":\"{}\",\"start_ts\":{},\"end_ts\":{},\
             \"unique_users\":{},\"events\":{},\"counter\":\"{}\",\"revision\":{}",
            Rfc3339(self.start_ts),
            Rfc3339(self.end_ts),
            self.start_ts,
            self.end_ts,
            self.unique_users,
            self.events,
            self.counter,
            self.revision
        );
        let _ = match self.size {
            Some(size) => write!(out, ",\"window\":\"{size}\"}}"),
            None => write!(out, "}}"),
        };
    }

    /// The record as a JSON string.
    pub fn to_json(&self) -> String {
        let mut v = Vec::with_capacity(200);
        self.write_json(&mut v);
        String::from_utf8(v).expect("ASCII")
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
    }
}
