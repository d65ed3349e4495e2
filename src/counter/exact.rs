//! `exact`: the set of uids themselves, so the count is exact by construction.
//!
//! Memory is the point of this design. A `HashSet<Box<[u8]>>` costs a 16-byte
//! fat pointer per slot plus a separate heap allocation (with its allocator
//! header and rounding) per uid: ~60 bytes of overhead. Here all uid bytes
//! live back to back in one arena (`len` varint + bytes), and the hash table
//! holds only a `u32` arena offset per uid (4 bytes + 1 control byte per
//! bucket). The table hashes entries with the crate's uid hash, recomputed
//! from the arena when it grows, so no hash is stored either. Measured in
//! `benches/counters.rs`: the uid's bytes + ~12–22 bytes per distinct uid.
//!
//! The arena is addressed with `u32`, so one window holds at most 4 GiB of uid
//! bytes (~10^8 UUIDs); beyond that new uids are counted without being stored
//! and the count becomes an upper bound (`overflowed` > 0). Use `hll` or
//! `roaring` long before that.
//!
//! Payload: varint number of uids, then per uid a varint length and its bytes,
//! in first-seen order; then, only if some uids did not fit the arena, a
//! varint count of them (so a round trip keeps the upper bound, and payloads
//! without overflow are unchanged).

use super::{varint, Counter, CounterError, CounterKind};
use crate::hash::uid_hash;
use hashbrown::HashTable;

#[derive(Debug, Clone, Default)]
pub struct ExactCounter {
    table: HashTable<u32>,
    arena: Vec<u8>,
    /// New uids that did not fit the 4 GiB arena (counted, not stored).
    overflowed: u64,
}

/// Arena growth step: at least this many bytes, else half the current size.
/// 1.5x growth bounds the unused tail to a third of the arena.
const MIN_ARENA_GROWTH: usize = 1024;

impl ExactCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of distinct uids stored.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty() && self.overflowed == 0
    }

    /// The uid arena: per uid, a varint length and its bytes, in first-seen
    /// order. It only ever grows at its end, which is what makes incremental
    /// checkpoints possible (a prefix written once stays valid).
    pub fn arena(&self) -> &[u8] {
        &self.arena
    }

    /// Uids counted but not stored (beyond the 4 GiB arena).
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }

    /// Rebuilds a counter from an [`ExactCounter::arena`] holding `uids`
    /// distinct uids, plus `overflowed` unstored ones.
    pub fn from_arena(arena: &[u8], uids: u64, overflowed: u64) -> Result<Self, CounterError> {
        let mut payload = Vec::with_capacity(arena.len() + 20);
        varint::write(&mut payload, uids);
        payload.extend_from_slice(arena);
        if overflowed > 0 {
            varint::write(&mut payload, overflowed);
        }
        Self::read_payload(CounterKind::Exact, &payload)
    }

    /// The uids, in first-seen order.
    pub fn uids(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut rest = &self.arena[..];
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let (len, n) = read_len(rest);
            let uid = &rest[n..n + len];
            rest = &rest[n + len..];
            Some(uid)
        })
    }

    /// The uid at `offset` (from [`ExactCounter::insert_offset`]), if one
    /// starts there.
    pub fn uid_at(&self, offset: u32) -> Option<&[u8]> {
        let at = self.arena.get(offset as usize..)?;
        let (len, n) = read_len(at.first().map(|_| at)?);
        at.get(n..n + len)
    }

    #[inline]
    fn entry(arena: &[u8], offset: u32) -> &[u8] {
        let at = &arena[offset as usize..];
        let (len, n) = read_len(at);
        &at[n..n + len]
    }
}

/// Length prefix: one byte below 128, else a varint (uids are <= 1 KiB, so
/// at most two bytes).
#[inline(always)]
fn read_len(at: &[u8]) -> (usize, usize) {
    if at[0] < 0x80 {
        (at[0] as usize, 1)
    } else {
        let mut rest = at;
        let len = varint::read(&mut rest).unwrap_or(0) as usize;
        (len, at.len() - rest.len())
    }
}

impl ExactCounter {
    /// Adds one uid (as [`Counter::insert`]) and returns its offset in the
    /// arena, a stable id of the uid within this counter (which groups of a
    /// window hold instead of the uid's bytes), and whether it is new.
    /// `None` for a new uid that did not fit the arena (counted, not
    /// stored).
    #[inline]
    pub fn insert_offset(&mut self, uid: &[u8], hash: u64) -> Option<(u32, bool)> {
        let arena = &self.arena;
        if let Some(&off) = self.table.find(hash, |&off| Self::entry(arena, off) == uid) {
            return Some((off, false));
        }
        let offset = self.arena.len();
        let needed = uid.len() + 3;
        if offset + needed > u32::MAX as usize {
            self.overflowed += 1;
            return None;
        }
        if self.arena.capacity() - offset < needed {
            let grow = (self.arena.len() / 2).max(MIN_ARENA_GROWTH).max(needed);
            self.arena.reserve_exact(grow);
        }
        varint::write(&mut self.arena, uid.len() as u64);
        self.arena.extend_from_slice(uid);
        let arena = &self.arena;
        self.table.insert_unique(hash, offset as u32, |&off| {
            uid_hash(Self::entry(arena, off))
        });
        Some((offset as u32, true))
    }
}

impl Counter for ExactCounter {
    #[inline]
    fn insert(&mut self, uid: &[u8], hash: u64) {
        self.insert_offset(uid, hash);
    }

    fn estimate(&mut self) -> f64 {
        (self.table.len() as u64 + self.overflowed) as f64
    }

    fn merge_from(&mut self, other: &Self) {
        for uid in other.uids() {
            self.insert(uid, uid_hash(uid));
        }
        self.overflowed += other.overflowed;
    }

    fn heap_bytes(&self) -> usize {
        // hashbrown allocates buckets * (entry + 1 control byte) + one group
        // of trailing control bytes.
        let buckets = if self.table.capacity() == 0 {
            0
        } else {
            (self.table.capacity() * 8 / 7).next_power_of_two()
        };
        let table = if buckets == 0 {
            0
        } else {
            buckets * (std::mem::size_of::<u32>() + 1) + 16
        };
        table + self.arena.capacity()
    }

    fn write_payload(&self, out: &mut Vec<u8>) {
        varint::write(out, self.table.len() as u64);
        out.extend_from_slice(&self.arena);
        if self.overflowed > 0 {
            varint::write(out, self.overflowed);
        }
    }

    fn read_payload(_kind: CounterKind, payload: &[u8]) -> Result<Self, CounterError> {
        let mut rest = payload;
        let n = varint::read(&mut rest)?;
        let mut c = ExactCounter::new();
        for _ in 0..n {
            if rest.is_empty() {
                return Err(CounterError::Corrupt("fewer uids than announced"));
            }
            let len = varint::read(&mut rest)? as usize;
            if len == 0 || len > rest.len() {
                return Err(CounterError::Corrupt("uid length"));
            }
            let (uid, tail) = rest.split_at(len);
            c.insert(uid, uid_hash(uid));
            rest = tail;
        }
        if !rest.is_empty() {
            c.overflowed = varint::read(&mut rest)?;
            if c.overflowed == 0 || !rest.is_empty() {
                return Err(CounterError::Corrupt("trailing bytes after uids"));
            }
        }
        if c.len() as u64 != n {
            return Err(CounterError::Corrupt("duplicate uids"));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(uids: &[&str]) -> ExactCounter {
        let mut c = ExactCounter::new();
        for u in uids {
            c.insert(u.as_bytes(), uid_hash(u.as_bytes()));
        }
        c
    }

    #[test]
    fn the_overflow_count_survives_a_round_trip() {
        // Filling 4 GiB is not a unit test: set what the arena limit does.
        let mut c = counter(&["a", "b", "c"]);
        c.overflowed = 7;
        assert_eq!(c.estimate(), 10.0);
        let mut payload = Vec::new();
        c.write_payload(&mut payload);
        let mut back = ExactCounter::read_payload(CounterKind::Exact, &payload).unwrap();
        assert_eq!(back.estimate(), 10.0);
        assert_eq!(back.uids().collect::<Vec<_>>(), [b"a", b"b", b"c"]);
        // Without overflow the payload has no trailer.
        let plain = counter(&["a", "b", "c"]);
        let mut short = Vec::new();
        plain.write_payload(&mut short);
        assert_eq!(short.len() + 1, payload.len());
    }

    #[test]
    fn corrupt_payloads_are_refused() {
        let mut payload = Vec::new();
        counter(&["a"]).write_payload(&mut payload);
        for bad in [
            [&payload[..], &[0u8][..]].concat(),  // a zero overflow trailer
            [&payload[..], &[5, 1][..]].concat(), // bytes after the trailer
            vec![2, 1, b'a'],                     // fewer uids than announced
        ] {
            assert!(
                ExactCounter::read_payload(CounterKind::Exact, &bad).is_err(),
                "{bad:?}"
            );
        }
    }
}
