//! Groups: distinct users per window *per* value of a field (a page, a
//! country, a campaign), for the groupings of `DISTINCTLY_GROUP_BY`.
//!
//! ```text
//! mod.rs      the groupings of the setting, and each event's group keys
//! members.rs  the users of one group: inline, a list, then a sketch
//! table.rs    the groups of one window and grouping; overflow, no group
//! wire.rs     a window's groups as bytes, for checkpoints
//! ```
//!
//! A grouping is a field (`country`, `/ctx/device`) or several joined by
//! `+` (`country+/ctx/device`, one group per combination of values). Every
//! grouping is counted in the same pass as the window's total, in the same
//! windows, with the same lateness, corrections and checkpoints.
//!
//! A group's key is its value's bytes (see [`crate::decode::fields`] for
//! what a value is); for a `+` grouping, each part as `0x00` (no value) or
//! `0x01`, a varint length and the bytes. An event whose value is missing
//! (or refused: an object, an array, too long) for a single-field
//! grouping, or for every part of a `+` grouping, has no group: it is
//! counted in the grouping's no-group record, and, unless merely missing,
//! in [`Refusals`].

pub mod members;
pub mod table;
pub mod wire;

use crate::counter::varint;
use crate::decode::fields::{BadPath, FieldPath, FieldValue, FieldValues, Refusal};
use std::fmt::Write;

/// Most groupings in `DISTINCTLY_GROUP_BY`.
pub const MAX_GROUPINGS: usize = 16;
/// Most fields joined by `+` in one grouping.
pub const MAX_PARTS: usize = 4;

/// One grouping of the setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouping {
    /// As written in the setting (`country+/ctx/device`): the `group_by` of
    /// its records.
    pub text: String,
    /// Its fields, as indices into [`Groupings::paths`].
    pub parts: Vec<usize>,
}

/// Every grouping of the setting, and the distinct fields they read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Groupings {
    pub list: Vec<Grouping>,
    /// What the decoder captures, each field once.
    pub paths: Vec<FieldPath>,
    /// `DISTINCTLY_MAX_GROUPS`: groups per grouping and window; events of
    /// further groups are counted in the window's overflow record.
    pub max_groups: usize,
    /// [`Groupings::fingerprint`], computed once.
    fingerprint: u64,
}

/// Why a `DISTINCTLY_GROUP_BY` list is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadGrouping {
    #[error("{0}")]
    Path(#[from] BadPath),
    #[error("{0} is listed twice")]
    Twice(String),
    #[error("{0:?}: an empty field before or after `+`")]
    EmptyPart(String),
    #[error("{0:?}: at most {MAX_PARTS} fields joined by `+`")]
    TooManyParts(String),
    #[error("{0} groupings; at most {MAX_GROUPINGS}")]
    TooMany(usize),
    #[error("{0:?}: the same field twice in one grouping")]
    SameField(String),
    #[error("{0:?} and {1:?} are the same grouping")]
    SameGrouping(String, String),
}

impl Groupings {
    /// No grouping: only the window's total is counted.
    pub fn none() -> Self {
        Groupings::default()
    }

    /// Parses `country,/ctx/device,country+page` (empty: none).
    pub fn parse(setting: &str, max_groups: usize) -> Result<Self, BadGrouping> {
        let mut g = Groupings {
            max_groups,
            ..Groupings::default()
        };
        for text in setting.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if g.list.iter().any(|x| x.text == text) {
                return Err(BadGrouping::Twice(text.to_string()));
            }
            let mut parts = Vec::new();
            for part in text.split('+') {
                if part.is_empty() {
                    return Err(BadGrouping::EmptyPart(text.to_string()));
                }
                let path = FieldPath::parse(part)?;
                let index = match g.paths.iter().position(|p| *p == path) {
                    Some(i) => i,
                    None => {
                        g.paths.push(path);
                        g.paths.len() - 1
                    }
                };
                if parts.contains(&index) {
                    return Err(BadGrouping::SameField(text.to_string()));
                }
                parts.push(index);
            }
            if parts.len() > MAX_PARTS {
                return Err(BadGrouping::TooManyParts(text.to_string()));
            }
            // `country` and `/country`, `a+b` and `b+a`: the same counts twice.
            let same_fields = |other: &[usize]| {
                other.len() == parts.len() && other.iter().all(|i| parts.contains(i))
            };
            if let Some(other) = g.list.iter().find(|x| same_fields(&x.parts)) {
                return Err(BadGrouping::SameGrouping(
                    other.text.clone(),
                    text.to_string(),
                ));
            }
            g.list.push(Grouping {
                text: text.to_string(),
                parts,
            });
        }
        if g.list.len() > MAX_GROUPINGS {
            return Err(BadGrouping::TooMany(g.list.len()));
        }
        if !g.list.is_empty() {
            g.fingerprint = crate::hash::uid_hash(g.setting().as_bytes());
        }
        Ok(g)
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The groupings as the records name them, comma-separated (empty
    /// without any): what every instance of a group and every checkpoint
    /// it restores must agree on.
    pub fn setting(&self) -> String {
        let texts: Vec<&str> = self.list.iter().map(|g| g.text.as_str()).collect();
        texts.join(",")
    }

    /// A fixed hash of [`Groupings::setting`] (0 without groupings), carried
    /// by every shard batch: groups of one setting are never counted under
    /// another's names.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// The keys of one event's groups, one per grouping, into `keys`
    /// (reused); refused values are counted in `refusals`.
    #[inline]
    pub fn keys_of(&self, fields: &FieldValues<'_>, keys: &mut GroupKeys, refusals: &mut Refusals) {
        keys.clear();
        self.append_keys(fields, keys, refusals);
    }

    /// [`Groupings::keys_of`] appended after the keys already in `keys`
    /// (the events of a chunk, one after the other: see
    /// [`GroupKeys::view_of`]).
    #[inline]
    pub fn append_keys(
        &self,
        fields: &FieldValues<'_>,
        keys: &mut GroupKeys,
        refusals: &mut Refusals,
    ) {
        for (g, grouping) in self.list.iter().enumerate() {
            if let [part] = grouping.parts[..] {
                match fields.get(part) {
                    FieldValue::Value(v) => keys.push(Some(v)),
                    FieldValue::Missing => keys.push(None),
                    FieldValue::Refused(r) => {
                        refusals.add(g, r);
                        keys.push(None);
                    }
                }
                continue;
            }
            keys.begin();
            let mut any = false;
            for &part in &grouping.parts {
                match fields.get(part) {
                    FieldValue::Value(v) => {
                        any = true;
                        keys.buf.push(1);
                        varint::write(&mut keys.buf, v.len() as u64);
                        keys.buf.extend_from_slice(v);
                    }
                    FieldValue::Missing => keys.buf.push(0),
                    FieldValue::Refused(r) => {
                        refusals.add(g, r);
                        keys.buf.push(0);
                    }
                }
            }
            keys.end(any);
        }
    }
}

/// The group keys of one event: per grouping, a key or none, with its
/// hash (computed once, used by every window size).
#[derive(Debug, Clone, Default)]
pub struct GroupKeys {
    buf: Vec<u8>,
    /// `(start, end, hash)` in `buf`; `start == u32::MAX`: no group.
    keys: Vec<(u32, u32, u64)>,
    begun: usize,
}

const NO_GROUP: u32 = u32::MAX;

impl GroupKeys {
    pub fn clear(&mut self) {
        self.buf.clear();
        self.keys.clear();
    }

    /// Appends a key (copied), or no group.
    #[inline]
    pub fn push(&mut self, key: Option<&[u8]>) {
        match key {
            Some(k) => {
                let start = self.buf.len() as u32;
                self.buf.extend_from_slice(k);
                self.keys.push((start, self.buf.len() as u32, key_hash(k)));
            }
            None => self.keys.push((NO_GROUP, 0, 0)),
        }
    }

    fn begin(&mut self) {
        self.begun = self.buf.len();
    }

    fn end(&mut self, any: bool) {
        if any {
            let k = &self.buf[self.begun..];
            self.keys
                .push((self.begun as u32, self.buf.len() as u32, key_hash(k)));
        } else {
            self.buf.truncate(self.begun);
            self.keys.push((NO_GROUP, 0, 0));
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Grouping `g`'s key and its hash, or `None` (no group).
    #[inline]
    pub fn get(&self, g: usize) -> Option<(&[u8], u64)> {
        self.view().get(g)
    }

    /// The keys, borrowed.
    #[inline]
    pub fn view(&self) -> Keys<'_> {
        Keys {
            buf: &self.buf,
            spans: &self.keys,
        }
    }

    /// The keys as bytes (for an event the time guard holds, or a shard
    /// batch): per grouping, varint 0 for no group, else the key's length
    /// plus one and the key.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.view().encode(out);
    }

    /// The keys `range` of the keys held (one event's, of a chunk that
    /// appended many: [`Groupings::append_keys`]).
    #[inline]
    pub fn view_of(&self, range: std::ops::Range<usize>) -> Keys<'_> {
        Keys {
            buf: &self.buf,
            spans: &self.keys[range],
        }
    }

    /// The keys of `n` groupings from the front of `bytes` (as [`encode`]
    /// wrote them), moving it past them; `false` if they are malformed.
    ///
    /// [`encode`]: GroupKeys::encode
    pub fn decode(&mut self, bytes: &mut &[u8], n: usize) -> bool {
        self.clear();
        for _ in 0..n {
            let Ok(len) = varint::read(bytes) else {
                return false;
            };
            if len == 0 {
                self.push(None);
                continue;
            }
            let len = (len - 1) as usize;
            if len > bytes.len() || len > u16::MAX as usize {
                return false;
            }
            let (key, rest) = bytes.split_at(len);
            self.push(Some(key));
            *bytes = rest;
        }
        true
    }
}

/// One event's group keys, borrowed: from a [`GroupKeys`], or from a chunk
/// of decoded events ([`GroupKeys::append_to`]), with their hashes.
#[derive(Debug, Clone, Copy)]
pub struct Keys<'a> {
    buf: &'a [u8],
    /// `(start, end, hash)` in `buf`; `start == u32::MAX`: no group.
    spans: &'a [(u32, u32, u64)],
}

impl<'a> Keys<'a> {
    /// No keys (a run without groupings).
    pub const NONE: Keys<'static> = Keys {
        buf: &[],
        spans: &[],
    };

    /// The keys of `spans` over `buf` (as [`GroupKeys::append_to`] wrote
    /// them).
    pub fn new(buf: &'a [u8], spans: &'a [(u32, u32, u64)]) -> Self {
        Keys { buf, spans }
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Grouping `g`'s key and its hash, or `None` (no group).
    #[inline]
    pub fn get(&self, g: usize) -> Option<(&'a [u8], u64)> {
        let (start, end, hash) = self.spans[g];
        (start != NO_GROUP).then(|| (&self.buf[start as usize..end as usize], hash))
    }

    /// See [`GroupKeys::encode`].
    pub fn encode(&self, out: &mut Vec<u8>) {
        for g in 0..self.spans.len() {
            match self.get(g) {
                Some((key, _)) => {
                    varint::write(out, key.len() as u64 + 1);
                    out.extend_from_slice(key);
                }
                None => out.push(0),
            }
        }
    }
}

/// The hash of a group key, for the tables of groups only (nothing stores
/// it). Keys are mostly a few bytes: up to 16 are folded from two
/// overlapping word loads and mixed (splitmix64's finalizer), several
/// times faster than a general hash there; longer ones go to XXH3.
#[inline]
pub fn key_hash(key: &[u8]) -> u64 {
    let n = key.len();
    let word = |i: usize, w: usize| -> u64 {
        let mut b = [0u8; 8];
        b[..w].copy_from_slice(&key[i..i + w]);
        u64::from_le_bytes(b)
    };
    let (a, b) = match n {
        0 => (0, 0),
        1..=3 => (
            u64::from(key[0]) | u64::from(key[n / 2]) << 8 | u64::from(key[n - 1]) << 16,
            0,
        ),
        4..=7 => (word(0, 4), word(n - 4, 4)),
        8..=16 => (word(0, 8), word(n - 8, 8)),
        _ => return xxhash_rust::xxh3::xxh3_64_with_seed(key, 0x6772_6f75_7073), // "groups"
    };
    let mut z = (a ^ 0x9e37_79b9_7f4a_7c15)
        .wrapping_mul(0xbf58_476d_1ce4_e5b9)
        .wrapping_add(b.rotate_left(29) ^ (n as u64) << 56);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Refused values per grouping and reason (see [`Refusal`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refusals {
    counts: Vec<[u64; 4]>,
}

impl Refusals {
    #[inline]
    pub fn add(&mut self, grouping: usize, r: Refusal) {
        if self.counts.len() <= grouping {
            self.counts.resize(grouping + 1, [0; 4]);
        }
        self.counts[grouping][r as usize] += 1;
    }

    /// Grouping `g`'s count for `r`.
    pub fn get(&self, g: usize, r: Refusal) -> u64 {
        self.counts.get(g).map_or(0, |c| c[r as usize])
    }

    pub fn merge(&mut self, other: &Refusals) {
        for (g, c) in other.counts.iter().enumerate() {
            for r in Refusal::ALL {
                if c[r as usize] > 0 {
                    if self.counts.len() <= g {
                        self.counts.resize(g + 1, [0; 4]);
                    }
                    self.counts[g][r as usize] += c[r as usize];
                }
            }
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }
}

/// What a group record says its group is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupValue {
    /// Events without a value for the grouping.
    None,
    /// A group's key (see the module docs).
    Key(Box<[u8]>),
    /// Events of groups beyond `DISTINCTLY_MAX_GROUPS` in the window.
    Overflow,
}

/// A record's group: which grouping, which group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupLabel {
    /// Index into [`Groupings::list`].
    pub grouping: u16,
    pub value: GroupValue,
}

/// Appends the `group` of a record as JSON: a string, `null`, or for a
/// `+` grouping an array of strings and `null`s. Overflow is `null` too;
/// its record says `"overflow":true`.
pub fn write_group_json(value: &GroupValue, parts: usize, out: &mut String) {
    match value {
        GroupValue::None | GroupValue::Overflow => out.push_str("null"),
        GroupValue::Key(k) if parts <= 1 => json_string(k, out),
        GroupValue::Key(k) => {
            out.push('[');
            let mut rest = &k[..];
            for i in 0..parts {
                if i > 0 {
                    out.push(',');
                }
                match rest.split_first() {
                    Some((1, tail)) => {
                        rest = tail;
                        let len = varint::read(&mut rest).unwrap_or(0) as usize;
                        let len = len.min(rest.len());
                        json_string(&rest[..len], out);
                        rest = &rest[len..];
                    }
                    Some((_, tail)) => {
                        rest = tail;
                        out.push_str("null");
                    }
                    None => out.push_str("null"),
                }
            }
            out.push(']');
        }
    }
}

/// A group as a query parameter gives it: as a record writes it (a JSON
/// string, `null`, an array for a `+` grouping), or a plain value that is
/// not JSON taken as a string. The error says what was expected.
pub fn group_param(value: &str, parts: usize) -> Result<GroupValue, String> {
    let json: Option<serde_json::Value> = serde_json::from_str(value).ok();
    let parsed = match json {
        Some(v) => group_from_json(&v, parts),
        None if parts <= 1 => Some(GroupValue::Key(value.as_bytes().into())),
        None => None,
    };
    parsed.ok_or_else(|| {
        if parts <= 1 {
            "expected a string (or null for no group)".to_string()
        } else {
            "expected a JSON array of one string or null per part, such as [\"US\",null]"
                .to_string()
        }
    })
}

/// The group a record's `group` names (the inverse of
/// [`write_group_json`]): a string for a single-field grouping, an array of
/// `parts` strings and `null`s for a `+` grouping, `null` for no group.
/// `None` if `json` has another shape.
pub fn group_from_json(json: &serde_json::Value, parts: usize) -> Option<GroupValue> {
    use serde_json::Value;
    match json {
        Value::Null => Some(GroupValue::None),
        Value::String(s) if parts <= 1 => Some(GroupValue::Key(s.as_bytes().into())),
        Value::Array(items) if parts > 1 && items.len() == parts => {
            let mut key = Vec::new();
            for item in items {
                match item {
                    Value::Null => key.push(0),
                    Value::String(s) => {
                        key.push(1);
                        varint::write(&mut key, s.len() as u64);
                        key.extend_from_slice(s.as_bytes());
                    }
                    _ => return None,
                }
            }
            if key.iter().all(|&b| b == 0) && key.len() == parts {
                return Some(GroupValue::None);
            }
            Some(GroupValue::Key(key.into()))
        }
        _ => None,
    }
}

/// `bytes` (UTF-8: decoded field values are) as a JSON string.
pub fn json_string(bytes: &[u8], out: &mut String) {
    let s = String::from_utf8_lossy(bytes);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests;
