//! Why an input message was not counted.
//!
//! A malformed message is a normal event on the hot path, so a rejection is a
//! one-byte `Copy` enum: no allocation, no formatting, no backtrace. Counts are
//! kept in a plain array indexed by the enum ([`RejectCounts`]) and turned into
//! metrics or a summary only at batch boundaries.

use std::fmt;

/// The fixed set of reasons a message is skipped. The snake_case names are part
/// of the public interface (summary output, metric labels, DLQ headers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Reject {
    /// Empty message, or only JSON whitespace.
    Empty,
    /// Longer than `DISTINCTLY_MAX_MESSAGE_BYTES`; not even looked at.
    TooLarge,
    /// Not valid UTF-8 (JSON text must be UTF-8).
    NotUtf8,
    /// Not exactly one JSON value: syntax error, truncation, trailing garbage.
    NotJson,
    /// Valid JSON, but neither an object nor a string holding one.
    NotObject,
    /// The root object has no `uid` key (nested ones do not count).
    MissingUid,
    /// The root object has no `ts` key (nested ones do not count).
    MissingTs,
    /// The root object has `uid` or `ts` more than once (ambiguous, so refused).
    DuplicateKey,
    /// `uid` is not a string, is empty, is too long, or holds an unpaired
    /// UTF-16 surrogate escape.
    BadUid,
    /// `ts` is not a JSON number, or is negative.
    BadTs,
    /// `ts` cannot be a real event time: beyond year 9999, or rejected by the
    /// stream's plausibility guard (a bit-flipped timestamp, see `window::guard`).
    TsOutOfRange,
}

impl Reject {
    /// Every reason, in index order.
    pub const ALL: [Reject; 11] = [
        Reject::Empty,
        Reject::TooLarge,
        Reject::NotUtf8,
        Reject::NotJson,
        Reject::NotObject,
        Reject::MissingUid,
        Reject::MissingTs,
        Reject::DuplicateKey,
        Reject::BadUid,
        Reject::BadTs,
        Reject::TsOutOfRange,
    ];

    /// Stable snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reject::Empty => "empty",
            Reject::TooLarge => "too_large",
            Reject::NotUtf8 => "not_utf8",
            Reject::NotJson => "not_json",
            Reject::NotObject => "not_object",
            Reject::MissingUid => "missing_uid",
            Reject::MissingTs => "missing_ts",
            Reject::DuplicateKey => "duplicate_key",
            Reject::BadUid => "bad_uid",
            Reject::BadTs => "bad_ts",
            Reject::TsOutOfRange => "ts_out_of_range",
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for Reject {}

/// Rejections counted by reason; a plain array so the hot loop only does an
/// indexed increment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RejectCounts([u64; Reject::ALL.len()]);

impl RejectCounts {
    #[inline]
    pub fn add(&mut self, reason: Reject) {
        self.0[reason as usize] += 1;
    }

    #[inline]
    pub fn add_n(&mut self, reason: Reject, n: u64) {
        self.0[reason as usize] += n;
    }

    pub fn get(&self, reason: Reject) -> u64 {
        self.0[reason as usize]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Adds another set of counts (e.g. a batch's local counts) into this one.
    pub fn merge(&mut self, other: &RejectCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += b;
        }
    }

    /// `(reason, count)` for every reason, zeros included.
    pub fn iter(&self) -> impl Iterator<Item = (Reject, u64)> + '_ {
        Reject::ALL.iter().map(|&r| (r, self.get(r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order_and_names_are_unique() {
        for (i, r) in Reject::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let mut names: Vec<_> = Reject::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Reject::ALL.len());
    }

    #[test]
    fn counts_add_and_merge() {
        let mut a = RejectCounts::default();
        a.add(Reject::NotJson);
        a.add(Reject::NotJson);
        let mut b = RejectCounts::default();
        b.add(Reject::BadTs);
        a.merge(&b);
        assert_eq!(a.get(Reject::NotJson), 2);
        assert_eq!(a.get(Reject::BadTs), 1);
        assert_eq!(a.total(), 3);
    }
}
