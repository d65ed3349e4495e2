//! The groups of one window for one grouping.
//!
//! Groups live in one hash table keyed by their key's hash; their keys live
//! back to back in one arena of the table, so a group is a 40-byte slot
//! (key position, revision, events, [`Members`]) plus what its members need
//! beyond the slot. Events without a group and events of groups beyond the
//! table's limit (`DISTINCTLY_MAX_GROUPS`) have a slot of their own each.
//!
//! Each group has its own revisions: a window's first record emits every
//! group, and a correction emits only the groups that changed.

use super::members::{table_bytes, Member, Members};
use super::{key_hash, GroupValue};
use crate::counter::varint;
use crate::counter::CounterKind;
use hashbrown::HashTable;

/// One group of a window: 32 bytes.
#[derive(Debug, Clone)]
pub struct Group {
    /// Where its key is in the table's arena (a varint length, then the
    /// bytes).
    key_at: u32,
    /// Records emitted so far (the next one's revision), and in the top
    /// bit whether it has events its last record lacks.
    state: u32,
    pub events: u64,
    pub members: Members,
}

const CHANGED: u32 = 1 << 31;

impl Group {
    fn new(key_at: u32, m: Member) -> Self {
        Group {
            key_at,
            state: CHANGED,
            events: 1,
            members: Members::first(m),
        }
    }

    /// A group restored from a checkpoint (its key already in the arena).
    fn restored(key_at: u32, parts: GroupParts) -> Self {
        let mut g = Group {
            key_at,
            state: parts.emitted.min(CHANGED - 1),
            events: parts.events,
            members: parts.members,
        };
        g.set_changed(parts.changed);
        g
    }

    /// It has events its last record lacks.
    pub fn changed(&self) -> bool {
        self.state & CHANGED != 0
    }

    pub fn set_changed(&mut self, changed: bool) {
        self.state = (self.state & !CHANGED) | if changed { CHANGED } else { 0 };
    }

    /// Records emitted so far.
    pub fn emitted(&self) -> u32 {
        self.state & !CHANGED
    }

    /// Its next record goes out: returns its revision.
    pub fn emit(&mut self) -> u32 {
        let revision = self.emitted();
        self.state = (revision + 1).min(CHANGED - 1);
        revision
    }

    /// Counts one more event of user `m`.
    #[inline]
    fn bump(&mut self, m: Member, kind: CounterKind, dense: usize) {
        self.events += 1;
        self.state |= CHANGED;
        self.members.insert(m, kind, dense);
    }
}

/// The key at `at` of a table's arena.
#[inline]
fn key_of(keys: &[u8], at: u32) -> &[u8] {
    let at = at as usize;
    let (len, n) = match keys[at] {
        b if b < 0x80 => (usize::from(b), 1),
        _ => {
            let mut rest = &keys[at..];
            let len = varint::read(&mut rest).unwrap_or(0) as usize;
            (len, keys.len() - at - rest.len())
        }
    };
    &keys[at + n..at + n + len]
}

/// What a checkpoint says of a group.
#[derive(Debug, Clone)]
pub struct GroupParts {
    pub changed: bool,
    pub emitted: u32,
    pub events: u64,
    pub members: Members,
}

/// What bounds a window's groups.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `DISTINCTLY_MAX_GROUPS`.
    pub max_groups: usize,
    /// [`super::members::dense_after`] of the counter kind.
    pub dense_after: usize,
}

/// Which slot an event counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Group,
    NoGroup,
    /// Its group did not fit the limit.
    Overflow,
}

#[derive(Debug, Clone, Default)]
pub struct GroupTable {
    groups: HashTable<Group>,
    keys: Vec<u8>,
    none: Option<Group>,
    overflow: Option<Group>,
}

impl GroupTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Groups held (besides the no-group and overflow slots).
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.none.is_none() && self.overflow.is_none()
    }

    /// Counts one event of user `m` in group `key` (`None`: no group), with
    /// at most `limits.max_groups` groups held.
    #[inline]
    pub fn count(
        &mut self,
        key: Option<(&[u8], u64)>,
        m: Member,
        kind: CounterKind,
        limits: Limits,
    ) -> Counted {
        let dense = limits.dense_after;
        let max = limits.max_groups;
        let Some((key, hash)) = key else {
            bump(&mut self.none, m, kind, dense);
            return Counted::NoGroup;
        };
        let keys = &self.keys;
        if let Some(g) = self
            .groups
            .find_mut(hash, |g| same(key_of(keys, g.key_at), key))
        {
            g.bump(m, kind, dense);
            return Counted::Group;
        }
        if self.groups.len() >= max {
            bump(&mut self.overflow, m, kind, dense);
            return Counted::Overflow;
        }
        let at = self.push_key(key);
        let keys = &self.keys;
        self.groups.insert_unique(hash, Group::new(at, m), |g| {
            key_hash(key_of(keys, g.key_at))
        });
        Counted::Group
    }

    /// Appends `key` to the arena; returns where.
    fn push_key(&mut self, key: &[u8]) -> u32 {
        let at = self.keys.len() as u32;
        varint::write(&mut self.keys, key.len() as u64);
        self.keys.extend_from_slice(key);
        at
    }

    /// The slot of `value`, if the table has it.
    pub fn get(&self, value: &GroupValue) -> Option<&Group> {
        match value {
            GroupValue::None => self.none.as_ref(),
            GroupValue::Overflow => self.overflow.as_ref(),
            GroupValue::Key(key) => {
                let keys = &self.keys;
                self.groups
                    .find(key_hash(key), |g| key_of(keys, g.key_at) == &key[..])
            }
        }
    }

    /// Every slot with its value, groups in no particular order.
    pub fn slots_mut(&mut self) -> impl Iterator<Item = (GroupValue, &mut Group)> + '_ {
        let keys = &self.keys;
        let groups = self
            .groups
            .iter_mut()
            .map(move |g| (GroupValue::Key(key_of(keys, g.key_at).into()), g));
        let none = self.none.as_mut().map(|g| (GroupValue::None, g));
        let overflow = self.overflow.as_mut().map(|g| (GroupValue::Overflow, g));
        none.into_iter().chain(groups).chain(overflow)
    }

    /// Every slot with its value (no group, groups in no particular
    /// order, overflow).
    pub fn slots(&self) -> impl Iterator<Item = (GroupValue, &Group)> + '_ {
        let keys = &self.keys;
        let groups = self
            .groups
            .iter()
            .map(move |g| (GroupValue::Key(key_of(keys, g.key_at).into()), g));
        let none = self.none.as_ref().map(|g| (GroupValue::None, g));
        let overflow = self.overflow.as_ref().map(|g| (GroupValue::Overflow, g));
        none.into_iter().chain(groups).chain(overflow)
    }

    /// The slots whose records are due (changed since their last one), with
    /// their values; `all` takes every slot.
    pub fn due(&mut self, all: bool) -> Vec<(GroupValue, &mut Group)> {
        let mut due: Vec<(GroupValue, &mut Group)> = self
            .slots_mut()
            .filter(|(_, g)| all || g.changed())
            .collect();
        // The same output for the same input: by value (none, keys, overflow).
        due.sort_by(|a, b| a.0.cmp(&b.0));
        due
    }

    /// Puts a group back from a checkpoint (a value given twice: the later
    /// wins, as the checkpoint's later entries are newer).
    pub fn restore(&mut self, value: GroupValue, parts: GroupParts) {
        match value {
            GroupValue::None => self.none = Some(Group::restored(0, parts)),
            GroupValue::Overflow => self.overflow = Some(Group::restored(0, parts)),
            GroupValue::Key(key) => {
                let hash = key_hash(&key);
                let keys = &self.keys;
                if let Some(g) = self
                    .groups
                    .find_mut(hash, |g| key_of(keys, g.key_at) == &key[..])
                {
                    *g = Group::restored(g.key_at, parts);
                    return;
                }
                let at = self.push_key(&key);
                let keys = &self.keys;
                self.groups
                    .insert_unique(hash, Group::restored(at, parts), |g| {
                        key_hash(key_of(keys, g.key_at))
                    });
            }
        }
    }

    /// Heap bytes: the table, the key arena, and members beyond the slots.
    pub fn heap_bytes(&self) -> usize {
        let slots = table_bytes(self.groups.capacity(), std::mem::size_of::<Group>());
        let members: usize = self.groups.iter().map(|g| g.members.heap_bytes()).sum();
        let extra: usize = [&self.none, &self.overflow]
            .into_iter()
            .flatten()
            .map(|g| std::mem::size_of::<Group>() + g.members.heap_bytes())
            .sum();
        slots + self.keys.capacity() + members + extra
    }
}

/// Whether the held key `at` is `key`: most keys are a few bytes, compared
/// here with two overlapping loads of each rather than by a call.
#[inline(always)]
fn same(at: &[u8], key: &[u8]) -> bool {
    let n = key.len();
    if at.len() != n {
        return false;
    }
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    match n {
        0 => true,
        1..=3 => at[0] == key[0] && at[n / 2] == key[n / 2] && at[n - 1] == key[n - 1],
        4..=7 => u32_at(at, 0) == u32_at(key, 0) && u32_at(at, n - 4) == u32_at(key, n - 4),
        8..=16 => u64_at(at, 0) == u64_at(key, 0) && u64_at(at, n - 8) == u64_at(key, n - 8),
        _ => at == key,
    }
}

/// Counts one event in a no-group or overflow slot.
#[inline]
fn bump(slot: &mut Option<Group>, m: Member, kind: CounterKind, dense: usize) {
    match slot {
        Some(g) => g.bump(m, kind, dense),
        None => *slot = Some(Group::new(0, m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::uid_hash;

    #[test]
    fn groups_count_their_users_and_events_and_the_limit_overflows() {
        let kind = CounterKind::Hll { precision: 12 };
        let mut t = GroupTable::new();
        let count = |t: &mut GroupTable, key: Option<&str>, uid: &str| {
            let key = key.map(|k| (k.as_bytes(), key_hash(k.as_bytes())));
            let limits = Limits {
                max_groups: 2,
                dense_after: crate::group::members::dense_after(kind),
            };
            t.count(key, Member::Hash(uid_hash(uid.as_bytes())), kind, limits)
        };
        assert_eq!(count(&mut t, Some("DE"), "a"), Counted::Group);
        assert_eq!(count(&mut t, Some("DE"), "a"), Counted::Group);
        assert_eq!(count(&mut t, Some("FR"), "b"), Counted::Group);
        assert_eq!(count(&mut t, None, "c"), Counted::NoGroup);
        assert_eq!(count(&mut t, Some("IT"), "d"), Counted::Overflow);
        assert_eq!(count(&mut t, Some("ES"), "d"), Counted::Overflow);
        assert_eq!(
            count(&mut t, Some("DE"), "e"),
            Counted::Group,
            "held: counted"
        );
        let mut got: Vec<(GroupValue, u64, u64)> = t
            .due(true)
            .into_iter()
            .map(|(v, g)| (v, g.members.count(), g.events))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                (GroupValue::None, 1, 1),
                (GroupValue::Key(b"DE"[..].into()), 2, 3),
                (GroupValue::Key(b"FR"[..].into()), 1, 1),
                (GroupValue::Overflow, 1, 2),
            ]
        );
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn keys_that_start_alike_and_share_a_hash_are_two_groups() {
        let kind = CounterKind::Exact;
        let limits = Limits {
            max_groups: 10,
            dense_after: crate::group::members::dense_after(kind),
        };
        let mut t = GroupTable::new();
        for (key, uid) in [
            ("/p/2", "a"),
            ("/p/259", "b"),
            ("/p/2", "c"),
            ("/p/25", "d"),
        ] {
            let m = Member::Hash(uid_hash(uid.as_bytes()));
            t.count(Some((key.as_bytes(), 7)), m, kind, limits);
        }
        let mut got: Vec<(GroupValue, u64)> = t
            .due(true)
            .into_iter()
            .map(|(v, g)| (v, g.members.count()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                (GroupValue::Key(b"/p/2"[..].into()), 2),
                (GroupValue::Key(b"/p/25"[..].into()), 1),
                (GroupValue::Key(b"/p/259"[..].into()), 1),
            ]
        );
    }

    #[test]
    fn keys_compare_at_every_length() {
        for n in 0..40 {
            let key: Vec<u8> = (0..n as u8).collect();
            assert!(same(&key.clone(), &key), "{n}");
            for i in 0..n {
                let mut other = key.clone();
                other[i] ^= 1;
                assert!(!same(&other, &key), "{n} {i}");
            }
            // A key is not any key it starts with, nor one that starts with it.
            let mut longer = key.clone();
            longer.push(b'9');
            assert!(!same(&longer, &key), "{n}: longer");
            assert!(!same(&key, &longer), "{n}: shorter");
        }
    }

    #[test]
    fn a_slot_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Group>(), 32);
    }

    #[test]
    fn a_group_counts_its_revisions_and_changes() {
        let mut g = Group::new(0, Member::Hash(1));
        assert!(g.changed() && g.emitted() == 0);
        assert_eq!(g.emit(), 0);
        assert!(!g.changed());
        g.set_changed(true);
        assert_eq!((g.emit(), g.emit(), g.emitted()), (1, 2, 3));
        let r = Group::restored(
            0,
            GroupParts {
                changed: true,
                emitted: 7,
                events: 3,
                members: Members::first(Member::Hash(2)),
            },
        );
        assert!(r.changed() && r.emitted() == 7 && r.events == 3);
    }
}
