//! The state topic: checkpoints of the held windows, so that a restart
//! replays about one commit interval of input instead of everything a long
//! window (an hour, a day) still holds.
//!
//! One compacted topic (`KAFKA_SERVICE_STATE_TOPIC`), written to partition 0
//! only, so records stay in the order they were produced. Per window of a
//! shard (the shard partition that counts it):
//!
//! ```text
//! key                                  value
//! <shard>/w/<size>/<start>             header: phase, revision, events, the
//!                                      read position of the shard partition
//!                                      when it was written ("covered"), the
//!                                      counter kind, which chunks hold the
//!                                      counter and, with groupings, which
//!                                      hold the groups and the
//!                                      DISTINCTLY_GROUP_BY they are of
//! <shard>/w/<size>/<start>/<gen>/<i>   chunk i of generation gen
//! <shard>/w/<size>/<start>/<gen>/g<i>  chunk i of generation gen of the
//!                                      window's groups (`group::wire`)
//! <shard>/m                            the shard's mark: the read position
//!                                      and the input partitions' stream
//!                                      times of its last complete round
//! ```
//!
//! A header is written after the chunks it names, so the latest header of a
//! window always finds its chunks. Counters are written in chunks of at most
//! [`CHUNK`] bytes (under the broker's default 1 MB message size):
//!
//! - `exact` incrementally: its uid arena only grows at its end, so each
//!   checkpoint appends the bytes added since the last one as new chunks of
//!   the same generation; after [`MAX_CHUNKS`] chunks a new generation is
//!   written whole and the old one deleted (tombstones).
//! - sketches (and `roaring`) whole, as a new generation, when they changed.
//!
//! A window freed past retention gets tombstones for its header and chunks,
//! but only in the round after the one whose mark covers its freeing: a
//! restart restores the stream times of the newest mark (or of the
//! committed offset, whichever is newer), so a window the topic no longer
//! holds is always past retention at the restored watermark, and replayed
//! events of it are dropped as too late instead of re-creating it from part
//! of its events. The mark is written only once the round's records and
//! every partial count sent before them are acknowledged. Chunks no header
//! names (a crash between writing them and deleting them) are deleted when
//! the topic is next read.

use crate::counter::{AnyCounter, CounterKind, ExactCounter};
use crate::group::Groupings;
use crate::kafka::offsets::{self, SourceTime};
use crate::window::lane::{Phase, Saved, Window};
use crate::window::size::WindowSize;
use std::collections::HashMap;

/// Most bytes of counter per chunk record.
pub const CHUNK: usize = 512 << 10;
/// An `exact` generation grows by appended chunks up to this many, then is
/// rewritten whole.
pub const MAX_CHUNKS: u32 = 64;

const MAGIC: &[u8; 4] = b"DSW1";
/// A header with a group section (`DISTINCTLY_GROUP_BY`).
const MAGIC_GROUPS: &[u8; 4] = b"DSW2";
const MARK_MAGIC: &[u8; 4] = b"DSM1";

/// Why a state record cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error(
        "record {key}: {reason} (written by another program?): that checkpoint cannot be read, so \
         counting cannot resume exactly; delete the key (a tombstone) to resume without it, or \
         use a new KAFKA_SERVICE_STATE_TOPIC and consumer group"
    )]
    Corrupt { key: String, reason: &'static str },
    #[error(
        "the state topic holds windows counted with {found}, this run counts with {configured}: \
         to change the counter, use another KAFKA_SERVICE_STATE_TOPIC (and consumer group)"
    )]
    OtherCounter { found: String, configured: String },
    #[error(
        "the state topic holds checkpoints of a distinctly without shards (key {key}): drain \
         the group with that version first, or use another KAFKA_SERVICE_STATE_TOPIC and \
         consumer group"
    )]
    Unsharded { key: String },
    #[error(
        "the state topic holds windows counted with DISTINCTLY_GROUP_BY={found:?}, this run's is \
         {configured:?}: to change DISTINCTLY_GROUP_BY, use another KAFKA_SERVICE_STATE_TOPIC \
         (and consumer group)"
    )]
    OtherGroupings { found: String, configured: String },
}

/// Which window: the shard that counts it, its size and start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WindowId {
    pub shard: i32,
    pub size: WindowSize,
    pub start: u64,
}

/// The key of a window's header.
pub fn header_key(id: WindowId) -> String {
    format!("{}/w/{}/{}", id.shard, id.size, id.start)
}

/// The key of chunk `i` of generation `generation` of a window's counter.
pub fn chunk_key(id: WindowId, generation: u64, i: u32) -> String {
    format!("{}/w/{}/{}/{generation}/{i}", id.shard, id.size, id.start)
}

/// The key of chunk `i` of generation `generation` of a window's groups.
pub fn group_chunk_key(id: WindowId, generation: u64, i: u32) -> String {
    format!("{}/w/{}/{}/{generation}/g{i}", id.shard, id.size, id.start)
}

/// The key of a shard's mark.
pub fn mark_key(shard: i32) -> String {
    format!("{shard}/m")
}

/// What a state key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Header(WindowId),
    Chunk {
        id: WindowId,
        generation: u64,
        index: u32,
    },
    GroupChunk {
        id: WindowId,
        generation: u64,
        index: u32,
    },
    Mark {
        shard: i32,
    },
}

pub fn parse_key(key: &str) -> Option<Key> {
    let mut parts = key.split('/');
    let shard: i32 = parts.next()?.parse().ok()?;
    match parts.next()? {
        "w" => {}
        "m" => return parts.next().is_none().then_some(Key::Mark { shard }),
        _ => return None,
    }
    let id = WindowId {
        shard,
        size: parts.next()?.parse().ok()?,
        start: parts.next()?.parse().ok()?,
    };
    match (parts.next(), parts.next(), parts.next()) {
        (None, _, _) => Some(Key::Header(id)),
        (Some(g), Some(i), None) => match i.strip_prefix('g') {
            Some(i) => Some(Key::GroupChunk {
                id,
                generation: g.parse().ok()?,
                index: i.parse().ok()?,
            }),
            None => Some(Key::Chunk {
                id,
                generation: g.parse().ok()?,
                index: i.parse().ok()?,
            }),
        },
        _ => None,
    }
}

/// A window's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub size: WindowSize,
    pub start: u64,
    pub end: u64,
    pub phase: Phase,
    pub changed: bool,
    pub events: u64,
    /// `(input partition, read position)` when it was written: events of
    /// that partition below the position are in it.
    pub covered: Vec<(i32, i64)>,
    /// The `counter` field of records (`exact`, `hll-p14`, ...).
    pub counter: String,
    /// Which chunks hold the counter.
    pub saved: Saved,
    /// `exact` only: distinct uids in the arena, and uids not stored.
    pub uids: u64,
    pub overflowed: u64,
    /// Which chunks hold the window's groups (`None`: no groupings).
    pub groups: Option<Saved>,
    /// The groupings they are of (`Groupings::setting`; empty without).
    pub group_by: String,
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Reads from the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<String> {
        let n = self.u8()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

impl Header {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(if self.groups.is_some() {
            MAGIC_GROUPS
        } else {
            MAGIC
        });
        let label = self.size.to_string();
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
        put_u64(&mut out, self.start);
        put_u64(&mut out, self.end);
        let (phase, revision) = match self.phase {
            Phase::Open => (0, 0),
            Phase::Provisional { revision } => (1, revision),
            Phase::Closed { revision } => (2, revision),
        };
        out.push(phase);
        out.extend_from_slice(&revision.to_be_bytes());
        out.push(u8::from(self.changed));
        put_u64(&mut out, self.events);
        out.extend_from_slice(&(self.covered.len() as u32).to_be_bytes());
        for &(partition, offset) in &self.covered {
            out.extend_from_slice(&partition.to_be_bytes());
            out.extend_from_slice(&offset.to_be_bytes());
        }
        out.push(self.counter.len() as u8);
        out.extend_from_slice(self.counter.as_bytes());
        put_u64(&mut out, self.saved.generation);
        out.extend_from_slice(&self.saved.chunks.to_be_bytes());
        put_u64(&mut out, self.saved.len);
        put_u64(&mut out, self.uids);
        put_u64(&mut out, self.overflowed);
        if let Some(g) = self.groups {
            put_u64(&mut out, g.generation);
            out.extend_from_slice(&g.chunks.to_be_bytes());
            put_u64(&mut out, g.len);
            out.extend_from_slice(&(self.group_by.len() as u32).to_be_bytes());
            out.extend_from_slice(self.group_by.as_bytes());
        }
        out
    }

    pub fn decode(key: &str, bytes: &[u8]) -> Result<Header, StateError> {
        let corrupt = |reason| StateError::Corrupt {
            key: key.to_string(),
            reason,
        };
        let mut r = Reader(bytes);
        let grouped = match r.take(4) {
            Some(m) if m == MAGIC => false,
            Some(m) if m == MAGIC_GROUPS => true,
            _ => return Err(corrupt("not a distinctly window header")),
        };
        let parse = |r: &mut Reader<'_>| -> Option<Header> {
            let size: WindowSize = r.str()?.parse().ok()?;
            let start = r.u64()?;
            let end = r.u64()?;
            let (phase, revision) = (r.u8()?, r.u32()?);
            let phase = match phase {
                0 => Phase::Open,
                1 => Phase::Provisional { revision },
                2 => Phase::Closed { revision },
                _ => return None,
            };
            let changed = r.u8()? != 0;
            let events = r.u64()?;
            let n = r.u32()? as usize;
            let mut covered = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                let partition = i32::from_be_bytes(r.take(4)?.try_into().ok()?);
                let offset = i64::from_be_bytes(r.take(8)?.try_into().ok()?);
                covered.push((partition, offset));
            }
            let counter = r.str()?;
            let saved = Saved {
                generation: r.u64()?,
                chunks: r.u32()?,
                len: r.u64()?,
            };
            let (uids, overflowed) = (r.u64()?, r.u64()?);
            let (groups, group_by) = if grouped {
                let saved = Saved {
                    generation: r.u64()?,
                    chunks: r.u32()?,
                    len: r.u64()?,
                };
                let n = r.u32()? as usize;
                let group_by = String::from_utf8(r.take(n)?.to_vec()).ok()?;
                (Some(saved), group_by)
            } else {
                (None, String::new())
            };
            (r.0.is_empty() && start < end).then_some(Header {
                size,
                start,
                end,
                phase,
                changed,
                events,
                covered,
                counter,
                saved,
                uids,
                overflowed,
                groups,
                group_by,
            })
        };
        parse(&mut r).ok_or(corrupt("malformed window header"))
    }
}

/// What a shard's last complete checkpoint round stood on: the shard
/// partition's read position and every input partition's stream time,
/// idleness and marker position then (as in the commit metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub position: i64,
    pub sources: Vec<SourceTime>,
}

impl Mark {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MARK_MAGIC.to_vec();
        out.extend_from_slice(&self.position.to_be_bytes());
        out.extend_from_slice(offsets::encode_sources(self.sources.iter().copied()).as_bytes());
        out
    }

    pub fn decode(key: &str, bytes: &[u8]) -> Result<Mark, StateError> {
        let corrupt = StateError::Corrupt {
            key: key.to_string(),
            reason: "malformed shard mark",
        };
        let mut r = Reader(bytes);
        if r.take(4) != Some(&MARK_MAGIC[..]) {
            return Err(corrupt);
        }
        let position = r.u64().ok_or(corrupt.clone())? as i64;
        let text = std::str::from_utf8(r.0).map_err(|_| corrupt.clone())?;
        let sources = offsets::decode_sources(text);
        if sources.is_empty() && text != offsets::encode_sources([]) {
            return Err(corrupt);
        }
        Ok(Mark { position, sources })
    }
}

/// The records that checkpoint one window: `(key, value)`, a `None` value
/// being a tombstone.
pub type Records = Vec<(String, Option<Vec<u8>>)>;

/// Adds the records that bring the state topic's copy of `window` (of
/// `size`, counted by shard `shard`) up to date: new chunks, then the
/// header, then tombstones of a replaced generation; notes what is saved in
/// the window. `round` numbers checkpoints of this process; `covered` is the
/// read position of the partitions the window is counted from; `group_by`
/// the groupings its groups are of.
#[allow(clippy::too_many_arguments)]
pub fn checkpoint_window(
    shard: i32,
    size: WindowSize,
    window: &mut Window,
    kind: CounterKind,
    group_by: &str,
    round: u64,
    covered: &[(i32, i64)],
    out: &mut Records,
) {
    let id = WindowId {
        shard,
        size,
        start: window.start,
    };
    let mut uids = 0;
    let mut overflowed = 0;
    // Tombstones of a replaced generation go after the new header: until
    // it is written, the old header still needs them.
    let mut replaced = None;
    let saved = match &window.counter {
        AnyCounter::Exact(exact) => {
            uids = exact.len() as u64;
            overflowed = exact.overflowed();
            let saved = append_arena(id, window.saved, exact, round, out);
            if window
                .saved
                .is_some_and(|s| s.generation != saved.generation)
            {
                replaced = window.saved;
            }
            saved
        }
        other => match window.saved {
            Some(saved) if !window.dirty => saved,
            previous => {
                let bytes = other.to_bytes();
                let generation = next_generation(previous, round);
                let chunks = write_chunks(id, generation, 0, &bytes, out);
                replaced = previous;
                Saved {
                    generation,
                    chunks,
                    len: bytes.len() as u64,
                }
            }
        },
    };
    window.saved = Some(saved);
    let mut replaced_groups = None;
    let groups = (!window.groups.is_empty()).then(|| match window.groups_saved {
        Some(saved) if !window.dirty => saved,
        previous => {
            let mut bytes = Vec::new();
            crate::group::wire::write(&mut window.groups, &mut bytes);
            let generation = next_generation(previous, round);
            let mut chunks = 0;
            for piece in bytes.chunks(CHUNK) {
                out.push((
                    group_chunk_key(id, generation, chunks),
                    Some(piece.to_vec()),
                ));
                chunks += 1;
            }
            replaced_groups = previous;
            Saved {
                generation,
                chunks,
                len: bytes.len() as u64,
            }
        }
    });
    window.groups_saved = groups;
    let header = Header {
        size,
        start: window.start,
        end: window.end,
        phase: window.phase,
        changed: window.changed,
        events: window.events,
        covered: covered.to_vec(),
        counter: kind.to_string(),
        saved,
        uids,
        overflowed,
        group_by: if groups.is_some() {
            group_by.to_string()
        } else {
            String::new()
        },
        groups,
    };
    out.push((header_key(id), Some(header.encode())));
    delete_chunks(id, replaced, out);
    delete_group_chunks(id, replaced_groups, out);
}

/// A generation number above the previous one (numbers restart with each
/// process, saved ones do not).
fn next_generation(previous: Option<Saved>, round: u64) -> u64 {
    previous.map_or(round, |p| round.max(p.generation + 1))
}

/// The exact counter's arena: the bytes added since `saved` as new chunks,
/// or the whole arena as a new generation.
fn append_arena(
    id: WindowId,
    saved: Option<Saved>,
    exact: &ExactCounter,
    round: u64,
    out: &mut Records,
) -> Saved {
    let arena = exact.arena();
    match saved {
        Some(s) if (s.len as usize) <= arena.len() && s.chunks < MAX_CHUNKS => {
            let added = &arena[s.len as usize..];
            let chunks = write_chunks(id, s.generation, s.chunks, added, out);
            Saved {
                generation: s.generation,
                chunks: s.chunks + chunks,
                len: arena.len() as u64,
            }
        }
        previous => {
            let generation = next_generation(previous, round);
            let chunks = write_chunks(id, generation, 0, arena, out);
            Saved {
                generation,
                chunks,
                len: arena.len() as u64,
            }
        }
    }
}

/// Writes `bytes` as chunks `first..` of `generation`; returns how many.
fn write_chunks(id: WindowId, generation: u64, first: u32, bytes: &[u8], out: &mut Records) -> u32 {
    let mut n = 0;
    for piece in bytes.chunks(CHUNK) {
        out.push((chunk_key(id, generation, first + n), Some(piece.to_vec())));
        n += 1;
    }
    n
}

/// Tombstones for every chunk of `saved`.
fn delete_chunks(id: WindowId, saved: Option<Saved>, out: &mut Records) {
    if let Some(s) = saved {
        for i in 0..s.chunks {
            out.push((chunk_key(id, s.generation, i), None));
        }
    }
}

/// Tombstones for every chunk of the groups of `saved`.
fn delete_group_chunks(id: WindowId, saved: Option<Saved>, out: &mut Records) {
    if let Some(s) = saved {
        for i in 0..s.chunks {
            out.push((group_chunk_key(id, s.generation, i), None));
        }
    }
}

/// Tombstones for a freed window: its header, its counter's and its
/// groups' chunks.
pub fn forget_window(id: WindowId, saved: Saved, groups: Option<Saved>, out: &mut Records) {
    out.push((header_key(id), None));
    delete_chunks(id, Some(saved), out);
    delete_group_chunks(id, groups, out);
}

/// The latest value of every key of the state topic.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub values: HashMap<String, Vec<u8>>,
}

/// A window read back from a snapshot.
#[derive(Debug)]
pub struct Restored {
    pub shard: i32,
    pub header: Header,
    pub counter: AnyCounter,
    /// One table per grouping (empty without groupings).
    pub groups: Vec<crate::group::table::GroupTable>,
}

impl Snapshot {
    /// Applies one record of the topic, in order (`None`: a tombstone).
    pub fn apply(&mut self, key: String, value: Option<Vec<u8>>) {
        match value {
            Some(v) => {
                self.values.insert(key, v);
            }
            None => {
                self.values.remove(&key);
            }
        }
    }

    /// Shard `shard`'s mark, if one was written.
    pub fn mark(&self, shard: i32) -> Result<Option<Mark>, StateError> {
        let key = mark_key(shard);
        self.values
            .get(&key)
            .map(|v| Mark::decode(&key, v))
            .transpose()
    }

    /// Keys distinctly does not write (another program's records): ignored
    /// by a restore, which says how many there were.
    pub fn foreign_keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self
            .values
            .keys()
            .filter(|k| parse_key(k).is_none() && !k.starts_with("w/"))
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        keys
    }

    /// Every window with a header, its counter assembled from its chunks,
    /// and the keys of chunks no header names (to delete). Windows of
    /// another counter or other groupings than this run's are refused.
    pub fn windows(
        &self,
        kind: CounterKind,
        groupings: &Groupings,
    ) -> Result<(Vec<Restored>, Vec<String>), StateError> {
        let group_by = groupings.setting();
        let groupings = groupings.len();
        let mut windows = Vec::new();
        let mut named = std::collections::HashSet::new();
        for (key, value) in &self.values {
            if key.starts_with("w/") {
                return Err(StateError::Unsharded { key: key.clone() });
            }
            let Some(Key::Header(id)) = parse_key(key) else {
                continue;
            };
            let header = Header::decode(key, value)?;
            if header.counter != kind.to_string() {
                return Err(StateError::OtherCounter {
                    found: header.counter,
                    configured: kind.to_string(),
                });
            }
            let corrupt = |reason| StateError::Corrupt {
                key: key.clone(),
                reason,
            };
            let bytes = self.assemble(header.saved, |g, i| chunk_key(id, g, i), &mut named)?;
            let counter = match kind {
                CounterKind::Exact => AnyCounter::Exact(
                    ExactCounter::from_arena(&bytes, header.uids, header.overflowed)
                        .map_err(|_| corrupt("exact arena"))?,
                ),
                _ => AnyCounter::from_bytes(&bytes).map_err(|_| corrupt("counter"))?,
            };
            if header.group_by != group_by {
                return Err(StateError::OtherGroupings {
                    found: header.group_by,
                    configured: group_by,
                });
            }
            let groups = match header.groups {
                None if groupings == 0 => Vec::new(),
                Some(saved) if groupings > 0 => {
                    let bytes =
                        self.assemble(saved, |g, i| group_chunk_key(id, g, i), &mut named)?;
                    crate::group::wire::read(&bytes, groupings, kind)
                        .map_err(|_| corrupt("groups"))?
                }
                _ => return Err(corrupt("group section")),
            };
            windows.push(Restored {
                shard: id.shard,
                header,
                counter,
                groups,
            });
        }
        let orphans = self
            .values
            .keys()
            .filter(|k| {
                matches!(
                    parse_key(k),
                    Some(Key::Chunk { .. } | Key::GroupChunk { .. })
                ) && !named.contains(*k)
            })
            .cloned()
            .collect();
        windows.sort_by_key(|w| (w.shard, w.header.size, w.header.start));
        Ok((windows, orphans))
    }

    /// The bytes of the chunks `saved` names (keys from `key(generation,
    /// i)`), noted in `named`.
    fn assemble(
        &self,
        saved: Saved,
        key: impl Fn(u64, u32) -> String,
        named: &mut std::collections::HashSet<String>,
    ) -> Result<Vec<u8>, StateError> {
        let mut bytes = Vec::with_capacity(saved.len as usize);
        for i in 0..saved.chunks {
            let ck = key(saved.generation, i);
            let chunk = self.values.get(&ck).ok_or(StateError::Corrupt {
                key: ck.clone(),
                reason: "a chunk named by its header is missing",
            })?;
            bytes.extend_from_slice(chunk);
            named.insert(ck);
        }
        if bytes.len() < saved.len as usize {
            return Err(StateError::Corrupt {
                key: key(saved.generation, 0),
                reason: "chunks shorter than the header says",
            });
        }
        bytes.truncate(saved.len as usize);
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests;
