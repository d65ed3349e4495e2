//! The groups of a window as bytes, for checkpoints (`kafka::state`).
//!
//! ```text
//! per grouping, in order:
//!   varint slots
//!   per slot: kind u8 (0 no group, 1 a group, 2 overflow)
//!             [a group: varint key length, key]
//!             varint events, varint records emitted, changed u8
//!             members: tag u8, then
//!               0 `exact` offsets: varint count, varint offsets
//!               1 uid hashes:      varint count, u64 little-endian each
//!               2 a sketch:        varint length, the counter's bytes
//! ```
//!
//! `exact` offsets point into the window's uid arena, which the same
//! checkpoint holds byte for byte.

use super::members::{HeapSet, Members};
use super::table::{GroupParts, GroupTable};
use super::GroupValue;
use crate::counter::{varint, AnyCounter, CounterKind};

/// Why a group section cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("groups: {0}")]
pub struct BadGroups(pub &'static str);

/// Appends the groups of `tables` (one per grouping).
pub fn write(tables: &mut [GroupTable], out: &mut Vec<u8>) {
    for table in tables {
        let slots: Vec<(GroupValue, &mut super::table::Group)> = table.slots_mut().collect();
        varint::write(out, slots.len() as u64);
        for (value, g) in slots {
            match &value {
                GroupValue::None => out.push(0),
                GroupValue::Key(k) => {
                    out.push(1);
                    varint::write(out, k.len() as u64);
                    out.extend_from_slice(k);
                }
                GroupValue::Overflow => out.push(2),
            }
            varint::write(out, g.events);
            varint::write(out, u64::from(g.emitted()));
            out.push(u8::from(g.changed()));
            write_members(&g.members, out);
        }
    }
}

fn write_members(m: &Members, out: &mut Vec<u8>) {
    fn offsets(n: usize, items: impl Iterator<Item = u32>, out: &mut Vec<u8>) {
        out.push(0);
        varint::write(out, n as u64);
        for o in items {
            varint::write(out, u64::from(o));
        }
    }
    fn hashes(n: usize, items: impl Iterator<Item = u64>, out: &mut Vec<u8>) {
        out.push(1);
        varint::write(out, n as u64);
        for h in items {
            out.extend_from_slice(&h.to_le_bytes());
        }
    }
    match m {
        Members::Offsets { len, items } => offsets(
            usize::from(*len),
            items[..usize::from(*len)].iter().copied(),
            out,
        ),
        Members::OffsetList(set) => offsets(set.len(), set.items(), out),
        Members::Hash(h) => hashes(1, std::iter::once(*h), out),
        Members::HashList(set) => hashes(set.len(), set.items(), out),
        Members::Sketch(s) => {
            out.push(2);
            let bytes = s.to_bytes();
            varint::write(out, bytes.len() as u64);
            out.extend_from_slice(&bytes);
        }
    }
}

/// Reads `groupings` tables of a window counted with `kind`.
pub fn read(
    bytes: &[u8],
    groupings: usize,
    kind: CounterKind,
) -> Result<Vec<GroupTable>, BadGroups> {
    let mut rest = bytes;
    let mut tables = Vec::with_capacity(groupings);
    for _ in 0..groupings {
        let mut table = GroupTable::new();
        let slots = read_varint(&mut rest)?;
        for _ in 0..slots {
            let value = match take(&mut rest, 1)?[0] {
                0 => GroupValue::None,
                1 => {
                    let len = read_varint(&mut rest)? as usize;
                    GroupValue::Key(take(&mut rest, len)?.into())
                }
                2 => GroupValue::Overflow,
                _ => return Err(BadGroups("slot kind")),
            };
            let events = read_varint(&mut rest)?;
            let emitted =
                u32::try_from(read_varint(&mut rest)?).map_err(|_| BadGroups("revision"))?;
            let changed = take(&mut rest, 1)?[0] != 0;
            let members = read_members(&mut rest, kind)?;
            table.restore(
                value,
                GroupParts {
                    changed,
                    emitted,
                    events,
                    members,
                },
            );
        }
        tables.push(table);
    }
    if !rest.is_empty() {
        return Err(BadGroups("bytes after the last grouping"));
    }
    Ok(tables)
}

fn read_members(rest: &mut &[u8], kind: CounterKind) -> Result<Members, BadGroups> {
    match take(rest, 1)?[0] {
        0 => {
            let n = read_varint(rest)? as usize;
            let mut items = Vec::with_capacity(n.min(1 << 20));
            for _ in 0..n {
                let o = u32::try_from(read_varint(rest)?).map_err(|_| BadGroups("offset"))?;
                items.push(o);
            }
            Ok(match items[..] {
                [] => Members::Offsets {
                    len: 0,
                    items: [0, 0],
                },
                [a] => Members::Offsets {
                    len: 1,
                    items: [a, 0],
                },
                [a, b] => Members::Offsets {
                    len: 2,
                    items: [a, b],
                },
                _ => Members::OffsetList(HeapSet::collect(items)),
            })
        }
        1 => {
            let n = read_varint(rest)? as usize;
            let mut items = Vec::with_capacity(n.min(1 << 20));
            for _ in 0..n {
                let b = take(rest, 8)?;
                items.push(u64::from_le_bytes(b.try_into().expect("8 bytes")));
            }
            Ok(match items[..] {
                [h] => Members::Hash(h),
                _ => Members::HashList(HeapSet::collect(items)),
            })
        }
        2 => {
            let len = read_varint(rest)? as usize;
            let counter =
                AnyCounter::from_bytes(take(rest, len)?).map_err(|_| BadGroups("sketch"))?;
            if counter.kind() != kind {
                return Err(BadGroups("a sketch of another kind"));
            }
            Ok(Members::Sketch(Box::new(counter)))
        }
        _ => Err(BadGroups("members tag")),
    }
}

fn read_varint(rest: &mut &[u8]) -> Result<u64, BadGroups> {
    varint::read(rest).map_err(|_| BadGroups("truncated"))
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], BadGroups> {
    if rest.len() < n {
        return Err(BadGroups("truncated"));
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::key_hash;
    use crate::group::members::Member;
    use crate::hash::uid_hash;

    /// Per table: (value, users, events, emitted, changed) by value.
    type Counts = Vec<Vec<(GroupValue, u64, u64, u32, bool)>>;

    fn counts(tables: &mut [GroupTable]) -> Counts {
        tables
            .iter_mut()
            .map(|t| {
                let mut v: Vec<_> = t
                    .slots_mut()
                    .map(|(value, g)| {
                        (value, g.members.count(), g.events, g.emitted(), g.changed())
                    })
                    .collect();
                v.sort_by(|a, b| a.0.cmp(&b.0));
                v
            })
            .collect()
    }

    #[test]
    fn groups_round_trip_for_every_kind_of_members() {
        for kind in [CounterKind::Exact, CounterKind::Hll4 { lg_k: 8 }] {
            let mut tables = vec![GroupTable::new(), GroupTable::new()];
            for i in 0..3000u32 {
                let uid = format!("u{}", i % 700);
                let m = match kind {
                    CounterKind::Exact => Member::Offset((i % 700) * 5),
                    _ => Member::Hash(uid_hash(uid.as_bytes())),
                };
                let key = format!("k{}", i % 5);
                let big = (i % 3 == 0).then(|| (b"big".as_slice(), key_hash(b"big")));
                let limits = |max_groups| crate::group::table::Limits {
                    max_groups,
                    dense_after: crate::group::members::dense_after(kind),
                };
                let key = Some((key.as_bytes(), key_hash(key.as_bytes())));
                tables[0].count(key, m, kind, limits(4));
                tables[1].count(big, m, kind, limits(10));
            }
            // Emitted once, then changed again.
            for (_, g) in tables[0].due(true) {
                g.emit();
            }
            let mut bytes = Vec::new();
            write(&mut tables, &mut bytes);
            let mut back = read(&bytes, 2, kind).unwrap();
            assert_eq!(counts(&mut back), counts(&mut tables), "{kind}");
            assert!(read(&bytes[..bytes.len() - 1], 2, kind).is_err());
            assert!(read(&[bytes.clone(), vec![0]].concat(), 2, kind).is_err());
        }
    }
}
