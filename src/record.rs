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
//! A group's record (`DISTINCTLY_GROUP_BY`) is the same record of the
//! group's users and events, with its grouping and group last:
//! `…,"group_by":"country","group":"DE"}`; `"group":null` for the events
//! without one, an array for a `+` grouping (`["DE",null]`), and
//! `"group":null,"overflow":true` for the events of groups beyond
//! `DISTINCTLY_MAX_GROUPS`. Its Kafka key adds the grouping and the group
//! as JSON: `1h:1767225600:"country"="DE"`, `…:"country"=null`,
//! `…:"country"=*` for the overflow record (see [`Format::key`]).
//!
//! Written by hand into a reused buffer: the fixed fields are numbers or
//! strings that need no escaping, and this runs once per window (and
//! group), not per event.

use crate::counter::CounterKind;
use crate::group::{json_string, write_group_json, GroupLabel, GroupValue, Groupings};
use crate::window::size::{Rolling, WindowSize};
use jiff::tz::TimeZone;
use std::io::Write;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowRecord {
    /// Window start, Unix seconds.
    pub start_ts: u64,
    /// Window end (exclusive), Unix seconds.
    pub end_ts: u64,
    /// The window's size, when the run counts several (then it is written).
    pub size: Option<WindowSize>,
    /// A rolling window's setting (`DISTINCTLY_ROLLING`), always written
    /// as its `window`.
    pub rolling: Option<Rolling>,
    /// Distinct users (the backend's estimate, rounded).
    pub unique_users: u64,
    /// Accepted events counted in the window, duplicates and late ones included.
    pub events: u64,
    pub counter: CounterKind,
    /// 0 for the first emission, +1 for every correction.
    pub revision: u32,
    /// A group's record: which grouping and group (`None`: the window's
    /// total).
    pub group: Option<GroupLabel>,
}

impl WindowRecord {
    pub fn end_ts(&self) -> u64 {
        self.end_ts
    }

    /// The Kafka key of a total: `start_ts`, or `<size>:<start_ts>` with
    /// several sizes (so a compacted topic keeps the latest record of each
    /// window); a group's adds its group ([`Format::key`]).
    pub fn window_key(&self) -> String {
        match (self.rolling, self.size) {
            (Some(r), _) => format!("{r}:{}", self.start_ts),
            (None, None) => self.start_ts.to_string(),
            (None, Some(size)) => format!("{size}:{}", self.start_ts),
        }
    }

    /// The record as a JSON string (UTC times, no groupings).
    pub fn to_json(&self) -> String {
        let mut v = Vec::with_capacity(200);
        Format::default().write(self, &mut v);
        String::from_utf8(v).expect("valid UTF-8")
    }
}

/// How a run writes its records: local times (in a zone other than UTC)
/// and the names of its groupings.
#[derive(Debug, Clone, Default)]
pub struct Format {
    local: Option<TimeZone>,
    /// Per grouping: its text (JSON-quoted) and how many fields it joins.
    groupings: Vec<(String, usize)>,
}

impl Format {
    /// For records in `timezone`, of `groupings`.
    pub fn new(timezone: &str, groupings: &Groupings) -> Result<Format, String> {
        Ok(Format {
            local: local_zone(timezone)?,
            groupings: groupings
                .list
                .iter()
                .map(|g| {
                    let mut quoted = String::new();
                    json_string(g.text.as_bytes(), &mut quoted);
                    (quoted, g.parts.len())
                })
                .collect(),
        })
    }

    /// The Kafka key: [`WindowRecord::window_key`], and for a group
    /// `:<grouping>=<group>`, the grouping as a JSON string and the group as
    /// JSON (a string, an array, `null`), or `*` for the overflow record.
    /// Unambiguous for any value: window keys have no quotes, and JSON says
    /// where its strings end.
    pub fn key(&self, r: &WindowRecord) -> String {
        let mut key = r.window_key();
        if let Some(label) = &r.group {
            let (quoted, parts) = &self.groupings[usize::from(label.grouping)];
            key.push(':');
            key.push_str(quoted);
            key.push('=');
            match &label.value {
                GroupValue::Overflow => key.push('*'),
                value => write_group_json(value, *parts, &mut key),
            }
        }
        key
    }

    /// Appends the record's JSON object (no newline). By hand, with `itoa`
    /// for the numbers: a run with groups writes a record per group and
    /// window.
    pub fn write(&self, r: &WindowRecord, out: &mut Vec<u8>) {
        let mut n = itoa::Buffer::new();
        out.extend_from_slice(b"{\"window_start\":\"");
        push_rfc3339(out, r.start_ts);
        out.extend_from_slice(b"\",\"window_end\":\"");
        push_rfc3339(out, r.end_ts);
        out.extend_from_slice(b"\",");
        if let Some(tz) = &self.local {
            // Writing to a Vec cannot fail.
            let _ = write!(
                out,
                "\"window_start_local\":\"{}\",\"window_end_local\":\"{}\",",
                Local(r.start_ts, tz),
                Local(r.end_ts, tz),
            );
        }
        for (name, value) in [
            ("\"start_ts\":", r.start_ts),
            (",\"end_ts\":", r.end_ts),
            (",\"unique_users\":", r.unique_users),
            (",\"events\":", r.events),
        ] {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(n.format(value).as_bytes());
        }
        let _ = write!(out, ",\"counter\":\"{}\",\"revision\":", r.counter);
        out.extend_from_slice(n.format(r.revision).as_bytes());
        if let Some(rolling) = r.rolling {
            let _ = write!(out, ",\"window\":\"{rolling}\"");
        } else if let Some(size) = r.size {
            let _ = write!(out, ",\"window\":\"{size}\"");
        }
        if let Some(label) = &r.group {
            let (quoted, parts) = &self.groupings[usize::from(label.grouping)];
            let mut group = String::new();
            write_group_json(&label.value, *parts, &mut group);
            out.extend_from_slice(b",\"group_by\":");
            out.extend_from_slice(quoted.as_bytes());
            out.extend_from_slice(b",\"group\":");
            out.extend_from_slice(group.as_bytes());
            if label.value == GroupValue::Overflow {
                out.extend_from_slice(b",\"overflow\":true");
            }
        }
        out.push(b'}');
    }
}

/// Appends Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (what [`Rfc3339`]
/// displays), digit by digit.
fn push_rfc3339(out: &mut Vec<u8>, ts: u64) {
    fn digits(out: &mut Vec<u8>, v: u64, width: u32) {
        for i in (0..width).rev() {
            out.push(b'0' + (v / 10u64.pow(i) % 10) as u8);
        }
    }
    let days = ts / 86_400;
    let secs = ts % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    digits(out, y as u64, 4);
    out.push(b'-');
    digits(out, u64::from(m), 2);
    out.push(b'-');
    digits(out, u64::from(d), 2);
    out.push(b'T');
    digits(out, secs / 3600, 2);
    out.push(b':');
    digits(out, secs / 60 % 60, 2);
    out.push(b':');
    digits(out, secs % 60, 2);
    out.push(b'Z');
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
    fn rfc3339_by_hand_is_the_displayed_one() {
        for ts in [
            0,
            59,
            86_399,
            951_782_400,
            1_767_225_659,
            crate::decode::MAX_TS,
        ] {
            let mut out = Vec::new();
            push_rfc3339(&mut out, ts);
            assert_eq!(String::from_utf8(out).unwrap(), Rfc3339(ts).to_string());
        }
    }

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
            rolling: None,
            start_ts: 1_767_225_600,
            end_ts: 1_767_225_660,
            size: None,
            unique_users: 12,
            events: 30,
            counter: CounterKind::Hll { precision: 14 },
            revision: 2,
            group: None,
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
        assert_eq!(r.window_key(), "1767225600");
        r.size = Some(WindowSize::Hours(1));
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["window"], "1h");
        assert_eq!(r.window_key(), "1h:1767225600");
        assert!(v.get("window_start_local").is_none(), "UTC: no local times");
        assert_eq!(local_zone("UTC"), Ok(None));
    }

    #[test]
    fn local_times_say_the_local_date_with_its_offset() {
        // Berlin's 1 January 2026 and the day it changes to summer time.
        let write = |start_ts, end_ts| {
            let r = WindowRecord {
                rolling: None,
                start_ts,
                end_ts,
                size: Some(WindowSize::Days(1)),
                unique_users: 1,
                events: 1,
                counter: CounterKind::Exact,
                revision: 0,
                group: None,
            };
            let mut out = Vec::new();
            Format::new("Europe/Berlin", &Groupings::none())
                .unwrap()
                .write(&r, &mut out);
            serde_json::from_slice::<serde_json::Value>(&out).unwrap()
        };
        let v = write(1_767_222_000, 1_767_308_400);
        assert_eq!(v["window_start"], "2025-12-31T23:00:00Z");
        assert_eq!(v["window_start_local"], "2026-01-01T00:00:00+01:00");
        assert_eq!(v["window_end_local"], "2026-01-02T00:00:00+01:00");
        let v = write(1_774_738_800, 1_774_821_600);
        assert_eq!(v["window_start_local"], "2026-03-29T00:00:00+01:00");
        assert_eq!(v["window_end_local"], "2026-03-30T00:00:00+02:00");
        let r = WindowRecord {
            rolling: None,
            start_ts: 1_767_225_600,
            end_ts: 1_767_225_660,
            size: None,
            unique_users: 1,
            events: 1,
            counter: CounterKind::Exact,
            revision: 0,
            group: None,
        };
        let mut out = Vec::new();
        Format::new("Asia/Kolkata", &Groupings::none())
            .unwrap()
            .write(&r, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["window_start_local"], "2026-01-01T05:30:00+05:30");
        assert!(local_zone("Mars/Olympus").is_err());
    }
}

#[cfg(test)]
mod group_tests {
    use super::*;

    #[test]
    fn group_records_and_keys_say_their_grouping_and_group() {
        let g = Groupings::parse("country,country+/ctx/device,a\"b=c:d", 10).unwrap();
        let f = Format::new("UTC", &g).unwrap();
        let record = |grouping: u16, value: GroupValue| WindowRecord {
            rolling: None,
            start_ts: 1_767_225_600,
            end_ts: 1_767_229_200,
            size: Some(WindowSize::Hours(1)),
            unique_users: 3,
            events: 4,
            counter: CounterKind::Exact,
            revision: 1,
            group: Some(GroupLabel { grouping, value }),
        };
        let show = |r: &WindowRecord| {
            let mut out = Vec::new();
            f.write(r, &mut out);
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            (v, f.key(r))
        };
        let (v, key) = show(&record(0, GroupValue::Key(b"D\"E,=:/"[..].into())));
        assert_eq!(v["group_by"], "country");
        assert_eq!(v["group"], "D\"E,=:/");
        assert!(v.get("overflow").is_none());
        assert_eq!(key, r#"1h:1767225600:"country"="D\"E,=:/""#);
        let mut combo = vec![1u8];
        crate::counter::varint::write(&mut combo, 2);
        combo.extend_from_slice(b"DE");
        combo.push(0);
        let (v, key) = show(&record(1, GroupValue::Key(combo.into())));
        assert_eq!(v["group"], serde_json::json!(["DE", null]));
        assert_eq!(key, r#"1h:1767225600:"country+/ctx/device"=["DE",null]"#);
        let (v, key) = show(&record(2, GroupValue::None));
        assert_eq!(v["group_by"], "a\"b=c:d");
        assert_eq!(v["group"], serde_json::Value::Null);
        assert_eq!(key, r#"1h:1767225600:"a\"b=c:d"=null"#);
        let (v, key) = show(&record(0, GroupValue::Overflow));
        assert_eq!(
            (v["group"].clone(), v["overflow"].clone()),
            (serde_json::Value::Null, true.into())
        );
        assert_eq!(key, r#"1h:1767225600:"country"=*"#);
    }
}
