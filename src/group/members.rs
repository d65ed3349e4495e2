//! The users of one group in one window, small while they are few.
//!
//! Most groups of a real stream are small (a long tail of pages, campaigns,
//! versions), so a group starts as a handful of ids kept inline in its
//! slot, grows into a list (with a hash index once linear search stops
//! paying), and, for the sketch backends, turns into the backend's sketch
//! once the list would cost more than the sketch:
//!
//! - `exact`: the ids are the uids' offsets in the window's arena (the
//!   window's total counter stores every uid's bytes once; its groups share
//!   them), so a group of one user costs its slot and four bytes.
//! - sketches: the ids are the uids' 64-bit hashes, counted exactly until
//!   [`dense_after`] of them, then fed into a sketch of the configured kind
//!   (every backend but `exact` counts from the hash alone).
//!
//! A checkpoint writes a group's ids whole (see `wire`).

use crate::counter::{AnyCounter, CounterKind};
use hashbrown::HashTable;

/// A member id: a `u32` arena offset or a `u64` uid hash.
pub trait Id: Copy + Eq + Default + std::fmt::Debug {
    /// A well-mixed hash of the id for the index.
    fn mix(self) -> u64;
}

impl Id for u32 {
    #[inline]
    fn mix(self) -> u64 {
        // splitmix64's finalizer: arena offsets are far from random.
        let mut z = u64::from(self).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Id for u64 {
    #[inline]
    fn mix(self) -> u64 {
        self // uid hashes are uniform already
    }
}

/// Beyond this many ids a list gets a hash index (a linear scan of 16
/// ids is one or two cache lines).
const INDEX_AFTER: usize = 16;

/// Ids on the heap: a list searched linearly up to [`INDEX_AFTER`] of
/// them, then a hash set of the ids themselves (one probe, no second
/// array to look in). Iteration order is the same for the same inserts.
#[derive(Debug, Clone, Default)]
pub struct HeapSet<K> {
    /// The ids while they are few (empty once `table` holds them).
    list: Vec<K>,
    table: HashTable<K>,
}

impl<K: Id> HeapSet<K> {
    fn from(items: &[K], id: K) -> Box<Self> {
        let mut list = Vec::with_capacity(4 * items.len().max(1));
        list.extend_from_slice(items);
        list.push(id);
        Box::new(HeapSet {
            list,
            table: HashTable::new(),
        })
    }

    pub fn len(&self) -> usize {
        self.list.len() + self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids (first-seen order while listed).
    pub fn items(&self) -> impl Iterator<Item = K> + '_ {
        self.list.iter().copied().chain(self.table.iter().copied())
    }

    /// A set of distinct `items`, as a checkpoint gives them back.
    pub fn collect(items: Vec<K>) -> Box<Self> {
        let mut set = HeapSet {
            list: items,
            table: HashTable::new(),
        };
        if set.list.len() > INDEX_AFTER {
            set.move_to_table();
        }
        Box::new(set)
    }

    /// Moves the listed ids into the hash set, with room to grow: a group
    /// past [`INDEX_AFTER`] users usually keeps growing.
    #[cold]
    fn move_to_table(&mut self) {
        self.table.reserve(4 * self.list.len(), |&k: &K| k.mix());
        for k in self.list.drain(..) {
            self.table.insert_unique(k.mix(), k, |&k| k.mix());
        }
        self.list = Vec::new();
    }

    /// Adds an id known not to be in the set (no search).
    #[inline]
    fn push_new(&mut self, id: K) {
        if !self.table.is_empty() {
            self.table.insert_unique(id.mix(), id, |&k| k.mix());
            return;
        }
        self.list.push(id);
        if self.list.len() > INDEX_AFTER {
            self.move_to_table();
        }
    }

    #[inline(always)]
    fn insert(&mut self, id: K) -> bool {
        if self.table.is_empty() {
            if self.list.contains(&id) {
                return false;
            }
            self.list.push(id);
            if self.list.len() > INDEX_AFTER {
                self.move_to_table();
            }
            return true;
        }
        match self.table.entry(id.mix(), |&k| k == id, |&k| k.mix()) {
            hashbrown::hash_table::Entry::Occupied(_) => false,
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(id);
                true
            }
        }
    }

    fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.list.capacity() * std::mem::size_of::<K>()
            + table_bytes(self.table.capacity(), std::mem::size_of::<K>())
    }
}

/// Heap bytes of a hashbrown table of `capacity` entries of `entry` bytes.
pub fn table_bytes(capacity: usize, entry: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = (capacity * 8 / 7).next_power_of_two();
    buckets * (entry + 1) + 16
}

/// One uid as a group sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member {
    /// `exact`: the uid's offset in the window's arena.
    Offset(u32),
    /// `exact`: a uid the window had not seen before, so no group has it.
    NewOffset(u32),
    /// A sketch backend: the uid's hash.
    Hash(u64),
    /// `exact`, a uid beyond the window's 4 GiB arena: counted, not stored
    /// (the group's count becomes an upper bound, as the window's does).
    Unstored,
}

/// The users of a group: 16 bytes in its slot, more only past two users
/// (`exact`) or one (sketches).
#[derive(Debug, Clone)]
pub enum Members {
    /// `exact`: up to two arena offsets.
    Offsets {
        len: u8,
        items: [u32; 2],
    },
    OffsetList(Box<HeapSet<u32>>),
    /// A sketch backend: the one user's hash (a group is made by its first
    /// event, so it has one).
    Hash(u64),
    HashList(Box<HeapSet<u64>>),
    Sketch(Box<AnyCounter>),
}

/// Counts `uid` in a window's (or slice's) total `counter`, and says who it
/// is to the window's groups.
#[inline]
pub fn member_of(counter: &mut AnyCounter, uid: &[u8], hash: u64) -> Member {
    match counter {
        AnyCounter::Exact(e) => match e.insert_offset(uid, hash) {
            Some((o, true)) => Member::NewOffset(o),
            Some((o, false)) => Member::Offset(o),
            None => Member::Unstored,
        },
        other => {
            other.insert(uid, hash);
            Member::Hash(hash)
        }
    }
}

/// How many hashes a group of a sketch backend keeps before it turns into
/// the sketch: about where the list outgrows the sketch.
pub fn dense_after(kind: CounterKind) -> usize {
    let sketch_bytes: usize = match kind {
        CounterKind::Exact => return usize::MAX,
        // A roaring bitmap of few random 32-bit hashes is a container each.
        CounterKind::Roaring => return 8192,
        // HyperLogLog++: 6-bit registers; CPC: about a byte per row; HLL_4:
        // half a byte per register.
        CounterKind::Hll { precision } => (1usize << precision) * 3 / 4,
        CounterKind::Cpc { lg_k } => 1usize << lg_k,
        CounterKind::Hll4 { lg_k } => 1usize << (lg_k - 1),
    };
    // A listed hash costs about 16 bytes (8, and a hash table's slack).
    (sketch_bytes / 16).clamp(64, 8192)
}

impl Members {
    /// The members of a group whose first user is `m`.
    pub fn first(m: Member) -> Self {
        match m {
            Member::Offset(o) | Member::NewOffset(o) => Members::Offsets {
                len: 1,
                items: [o, 0],
            },
            Member::Unstored => Members::Offsets {
                len: 0,
                items: [0, 0],
            },
            Member::Hash(h) => Members::Hash(h),
        }
    }

    /// Adds one user; `dense_after` is [`dense_after`] of `kind`. Returns
    /// whether it was new (a sketch cannot tell: true). A uid the window
    /// could not store (`exact` beyond its 4 GiB arena) is not counted: the
    /// group's count is then a lower bound, as the window's is an upper one.
    #[inline(always)]
    pub fn insert(&mut self, m: Member, kind: CounterKind, dense_after: usize) -> bool {
        match (&mut *self, m) {
            (Members::Offsets { len, items }, Member::Offset(o)) => {
                let n = usize::from(*len);
                if items[..n].contains(&o) {
                    return false;
                }
                if n < items.len() {
                    items[n] = o;
                    *len += 1;
                } else {
                    *self = Members::OffsetList(HeapSet::from(&items[..], o));
                }
                true
            }
            (Members::Offsets { len, items }, Member::NewOffset(o)) => {
                let n = usize::from(*len);
                if n < items.len() {
                    items[n] = o;
                    *len += 1;
                } else {
                    *self = Members::OffsetList(HeapSet::from(&items[..], o));
                }
                true
            }
            (Members::OffsetList(set), Member::Offset(o)) => set.insert(o),
            (Members::OffsetList(set), Member::NewOffset(o)) => {
                set.push_new(o);
                true
            }
            (Members::Hash(h0), Member::Hash(h)) => {
                if *h0 == h {
                    return false;
                }
                *self = Members::HashList(HeapSet::from(&[*h0], h));
                true
            }
            (Members::HashList(set), Member::Hash(h)) => {
                let new = set.insert(h);
                if new && set.len() > dense_after {
                    let mut sketch = AnyCounter::new(kind);
                    for h in set.items() {
                        sketch.insert(&[], h);
                    }
                    *self = Members::Sketch(Box::new(sketch));
                }
                new
            }
            (Members::Sketch(s), Member::Hash(h)) => {
                s.insert(&[], h);
                true
            }
            _ => false,
        }
    }

    /// Distinct users.
    pub fn count(&mut self) -> u64 {
        match self {
            Members::Offsets { len, .. } => u64::from(*len),
            Members::OffsetList(set) => set.len() as u64,
            Members::Hash(_) => 1,
            Members::HashList(set) => set.len() as u64,
            Members::Sketch(s) => s.count(),
        }
    }

    /// Adds these users to `into` (a counter of the group's backend);
    /// `total` is the counter of the window the group belongs to (`exact`
    /// members are offsets into its arena).
    pub fn add_to(&self, total: &AnyCounter, into: &mut AnyCounter) {
        let uid_at = |o: u32| match total {
            AnyCounter::Exact(e) => e.uid_at(o),
            _ => None,
        };
        let mut offset = |o: u32| {
            if let Some(uid) = uid_at(o) {
                into.insert(uid, crate::hash::uid_hash(uid));
            }
        };
        match self {
            Members::Offsets { len, items } => {
                items[..usize::from(*len)].iter().for_each(|&o| offset(o))
            }
            Members::OffsetList(set) => set.items().for_each(offset),
            Members::Hash(h) => into.insert(&[], *h),
            Members::HashList(set) => set.items().for_each(|h| into.insert(&[], h)),
            Members::Sketch(s) => {
                let _ = into.merge(s);
            }
        }
    }

    /// Heap bytes held beyond the slot.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Members::Offsets { .. } | Members::Hash(_) => 0,
            Members::OffsetList(set) => set.heap_bytes(),
            Members::HashList(set) => set.heap_bytes(),
            Members::Sketch(s) => std::mem::size_of::<AnyCounter>() + s.heap_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn members_count_like_a_hash_set_in_first_seen_order() {
        let mut m = Members::first(Member::Offset(0));
        let mut truth = HashSet::from([0u32]);
        let mut order = vec![0u32];
        let mut x: u64 = 7;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = (x % 700) as u32 * 12; // offsets: multiples, not random
            let new = truth.insert(id);
            assert_eq!(
                m.insert(Member::Offset(id), CounterKind::Exact, usize::MAX),
                new
            );
            if new {
                order.push(id);
            }
            assert_eq!(m.count(), truth.len() as u64);
        }
        let Members::OffsetList(set) = &m else {
            panic!("a list")
        };
        let mut got: Vec<u32> = set.items().collect();
        got.sort_unstable();
        order.sort_unstable();
        assert_eq!(got, order);
    }

    #[test]
    fn a_small_group_stays_in_its_slot_and_a_large_sketch_group_turns_dense() {
        assert_eq!(std::mem::size_of::<Members>(), 16);
        let kind = CounterKind::Hll { precision: 10 };
        let limit = dense_after(kind);
        let mut m = Members::first(Member::Hash(1));
        assert!(!m.insert(Member::Hash(1), kind, limit));
        assert_eq!(m.count(), 1);
        assert_eq!(m.heap_bytes(), 0, "one user: in the slot");
        for i in 0..limit as u64 * 4 {
            m.insert(
                Member::Hash(crate::hash::uid_hash(&i.to_le_bytes())),
                kind,
                limit,
            );
        }
        assert!(matches!(m, Members::Sketch(_)));
        let n = limit as f64 * 4.0 + 1.0;
        let est = m.count() as f64;
        assert!((est - n).abs() < n * 0.15, "{est} vs {n}");
        // Two exact users stay in the slot; unstored ones are not counted.
        let mut e = Members::first(Member::Offset(3));
        assert!(e.insert(Member::Offset(9), CounterKind::Exact, usize::MAX));
        assert!(!e.insert(Member::Unstored, CounterKind::Exact, usize::MAX));
        assert_eq!((e.count(), e.heap_bytes()), (2, 0));
    }
}
