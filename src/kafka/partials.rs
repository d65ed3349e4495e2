//! The partials topic's records: what the counters tell the summer.
//!
//! One compacted partition, so every record is read in the order it was
//! written and the latest value of each key survives:
//!
//! ```text
//! key                        value (JSON)
//! p/<size>/<start>/<shard>   one shard's count of one window:
//!                            {"end_ts","unique_users","events"}
//! s/<shard>                  the shard's progress, written after the
//!                            partials it covers: {"watermark","idle",
//!                            "sources":[[partition, position],...],
//!                            "drained"}
//! e/<size>/<start>           what the summer emitted for the window:
//!                            {"end_ts","revision","unique_users","events",
//!                            "sent"}
//! f                          the summer's freed watermark, written before
//!                            the tombstones of the windows it frees:
//!                            {"below"}
//! q/<size>/<start>/<shard>/<g>/<group>
//!                            one shard's count of one group of grouping
//!                            <g> (its index in DISTINCTLY_GROUP_BY): as p/
//! h/<size>/<start>/<g>/<group>
//!                            what the summer emitted for the group: as e/
//! ```
//!
//! `<group>` is the group's key in hex, `-` for the events without a group
//! and `*` for the overflow record. Instances must run the same groupings
//! (as they must the same sizes and counter).
//!
//! A window's total is complete once every shard's watermark passed its end
//! (a shard writes a window's partial when it closes it, before the status
//! that says so). While the whole input is idle, a provisional total is
//! consistent only if every shard read the same markers: `sources` lists
//! the position each input partition's latest marker gave the shard.
//! `drained` is the token of the `--exit-when-idle` run whose counter wrote
//! the status after emitting everything.
//!
//! The summer frees a window (tombstones for its `p/` and `e/` keys) once
//! every shard's watermark passed its end plus the retention: each shard
//! emitted its last count of it. A shard restored from an older checkpoint
//! may send such a window's count again; `f` tells a summer, even one that
//! starts later, that the window was summed, emitted and freed, so the
//! stray count does not start it over from revision 0 with part of its
//! shards.

use crate::group::{GroupLabel, GroupValue};
use crate::window::size::WindowSize;
use serde::{Deserialize, Serialize};

/// What a key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Part {
        size: WindowSize,
        start: u64,
        shard: i32,
    },
    Status {
        shard: i32,
    },
    Emitted {
        size: WindowSize,
        start: u64,
    },
    Freed,
    GroupPart {
        size: WindowSize,
        start: u64,
        shard: i32,
        group: GroupLabel,
    },
    GroupEmitted {
        size: WindowSize,
        start: u64,
        group: GroupLabel,
    },
}

impl Key {
    pub fn parse(key: &str) -> Option<Key> {
        let mut parts = key.split('/');
        let kind = parts.next()?;
        let key = match kind {
            "f" => Key::Freed,
            "q" => Key::GroupPart {
                size: parts.next()?.parse().ok()?,
                start: parts.next()?.parse().ok()?,
                shard: parts.next()?.parse().ok()?,
                group: parse_group(parts.next()?, parts.next()?)?,
            },
            "h" => Key::GroupEmitted {
                size: parts.next()?.parse().ok()?,
                start: parts.next()?.parse().ok()?,
                group: parse_group(parts.next()?, parts.next()?)?,
            },
            "s" => Key::Status {
                shard: parts.next()?.parse().ok()?,
            },
            "p" => Key::Part {
                size: parts.next()?.parse().ok()?,
                start: parts.next()?.parse().ok()?,
                shard: parts.next()?.parse().ok()?,
            },
            "e" => Key::Emitted {
                size: parts.next()?.parse().ok()?,
                start: parts.next()?.parse().ok()?,
            },
            _ => return None,
        };
        parts.next().is_none().then_some(key)
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Part { size, start, shard } => write!(f, "p/{size}/{start}/{shard}"),
            Key::Status { shard } => write!(f, "s/{shard}"),
            Key::Emitted { size, start } => write!(f, "e/{size}/{start}"),
            Key::Freed => f.write_str("f"),
            Key::GroupPart {
                size,
                start,
                shard,
                group,
            } => write!(f, "q/{size}/{start}/{shard}/{}", Group(group)),
            Key::GroupEmitted { size, start, group } => {
                write!(f, "h/{size}/{start}/{}", Group(group))
            }
        }
    }
}

/// `<g>/<group>` of a group key.
struct Group<'a>(&'a GroupLabel);

impl std::fmt::Display for Group<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/", self.0.grouping)?;
        match &self.0.value {
            GroupValue::None => f.write_str("-"),
            GroupValue::Overflow => f.write_str("*"),
            GroupValue::Key(k) => k.iter().try_for_each(|b| write!(f, "{b:02x}")),
        }
    }
}

fn parse_group(grouping: &str, value: &str) -> Option<GroupLabel> {
    let value = match value {
        "-" => GroupValue::None,
        "*" => GroupValue::Overflow,
        hex if hex.len() % 2 == 0 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            let bytes: Option<Vec<u8>> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
                .collect();
            GroupValue::Key(bytes?.into())
        }
        _ => return None,
    };
    Some(GroupLabel {
        grouping: grouping.parse().ok()?,
        value,
    })
}

/// One shard's count of one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub end_ts: u64,
    pub unique_users: u64,
    pub events: u64,
}

/// A shard's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Every window ending at or before this has its partial written.
    pub watermark: Option<u64>,
    /// Every input partition is idle and every open window was written.
    pub idle: bool,
    /// `[input partition, position of its latest marker]`, by partition.
    pub sources: Vec<(i32, i64)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drained: Option<String>,
}

/// What the summer emitted for a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Emitted {
    pub end_ts: u64,
    pub revision: u32,
    pub unique_users: u64,
    pub events: u64,
    /// The output record was acknowledged (written as `false` before the
    /// record is sent, `true` after: a summer taking over after a crash
    /// between the two sends the next revision).
    pub sent: bool,
}

/// The summer's freed watermark: every window that ended at least the
/// retention before `below` was emitted and freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freed {
    pub below: u64,
}

/// JSON of a value (none of them can fail to serialize).
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("plain data serializes")
}

/// A record's value as the summer reads it: absent (a tombstone: the key
/// is deleted), one it can read, or bytes it cannot (another program's, or
/// a later version's). Unreadable is not a tombstone: taking it for one
/// would drop a shard's count, or what was emitted, of a live window.
#[derive(Debug, PartialEq)]
pub enum Value<T> {
    Tombstone,
    Read(T),
    Unreadable,
}

impl<T: serde::de::DeserializeOwned> Value<T> {
    pub fn of(payload: Option<&[u8]>) -> Value<T> {
        match payload {
            None => Value::Tombstone,
            Some(p) => serde_json::from_slice(p).map_or(Value::Unreadable, Value::Read),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let size: WindowSize = "1h".parse().unwrap();
        for key in [
            Key::Part {
                size,
                start: 1_767_225_600,
                shard: 3,
            },
            Key::Status { shard: 11 },
            Key::Emitted { size, start: 60 },
            Key::Freed,
            Key::GroupPart {
                size,
                start: 60,
                shard: 2,
                group: GroupLabel {
                    grouping: 3,
                    value: GroupValue::Key(b"a/b\x00\xff"[..].into()),
                },
            },
            Key::GroupPart {
                size,
                start: 60,
                shard: 2,
                group: GroupLabel {
                    grouping: 0,
                    value: GroupValue::None,
                },
            },
            Key::GroupEmitted {
                size,
                start: 60,
                group: GroupLabel {
                    grouping: 1,
                    value: GroupValue::Overflow,
                },
            },
            Key::GroupEmitted {
                size,
                start: 60,
                group: GroupLabel {
                    grouping: 1,
                    value: GroupValue::Key(b""[..].into()),
                },
            },
        ] {
            assert_eq!(Key::parse(&key.to_string()), Some(key));
        }
        assert_eq!(
            Key::parse("p/1h/60/3"),
            Some(Key::Part {
                size,
                start: 60,
                shard: 3
            })
        );
        for bad in [
            "",
            "p/1h/60",
            "p/1h/60/3/4",
            "x/1",
            "s/",
            "e/1q/5",
            "f/1",
            "q/1h/60/2/0",
            "q/1h/60/2/0/abc",
            "q/1h/60/2/0/zz",
            "h/1h/60/0/-/x",
            "0/w/1m/60",
        ] {
            assert_eq!(Key::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn values_round_trip() {
        let s = Status {
            watermark: Some(5),
            idle: true,
            sources: vec![(0, 10), (1, 0)],
            drained: None,
        };
        let json = encode(&s);
        assert_eq!(
            String::from_utf8_lossy(&json),
            r#"{"watermark":5,"idle":true,"sources":[[0,10],[1,0]]}"#
        );
        assert_eq!(serde_json::from_slice::<Status>(&json).unwrap(), s);
        let e = Emitted {
            end_ts: 9,
            revision: 2,
            unique_users: 3,
            events: 4,
            sent: false,
        };
        assert_eq!(serde_json::from_slice::<Emitted>(&encode(&e)).unwrap(), e);
    }

    #[test]
    fn an_unreadable_value_is_not_a_tombstone() {
        assert_eq!(Value::<Freed>::of(None), Value::Tombstone);
        assert_eq!(Value::<Freed>::of(Some(b"\xff garbage")), Value::Unreadable);
        assert_eq!(Value::<Freed>::of(Some(b"")), Value::Unreadable);
        assert!(matches!(
            Value::<Freed>::of(Some(br#"{"below":60}"#)),
            Value::Read(Freed { below: 60 })
        ));
    }
}
