//! The shard topic's records: the events one input partition sends one
//! shard, batched, with that partition's stream time (the in-band watermark
//! marker) and whether it is idle.
//!
//! ```text
//! magic "DSB1" | input partition i32 | position i64 | stream time i64
//! (-1: none yet) | flags u8 (1: idle, 2: drained) | events u32 | per
//! event: zigzag varint of ts minus the previous ts (0 before the first),
//! varint uid length, uid bytes
//! ```
//!
//! With groupings (`DISTINCTLY_GROUP_BY`) the magic is "DSB2", the header
//! ends with the number of groupings (u8) and the setting's fingerprint
//! (u64, `Groupings::fingerprint`), and each event's uid is followed
//! by its group keys (`group::GroupKeys::encode`: per grouping, varint 0 or
//! the key's length plus one, and the key).
//!
//! All integers big-endian. The header is the *marker*: where the splitter
//! stood in the input partition (the next offset it reads) and that
//! partition's stream time after the batch's events. A batch without events
//! is a marker alone: every input partition's splitter sends one to every
//! shard at the end of each transaction, so a shard's watermark moves even
//! when the partition sent it no event, and shards that read all of a
//! transaction agree on every partition's position. An event costs about
//! its uid's length plus 2–4 bytes.

const MAGIC: &[u8; 4] = b"DSB1";
const MAGIC_GROUPED: &[u8; 4] = b"DSB2";
const HEADER: usize = 4 + 4 + 8 + 8 + 1 + 4;
/// The group section of a "DSB2" header: groupings and fingerprint.
const GROUP_HEADER: usize = 1 + 8;

/// What a batch says about its input partition, after its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Marker {
    /// The next offset the splitter reads in the input partition.
    pub position: i64,
    pub stream_time: Option<u64>,
    /// The partition had no event for `DISTINCTLY_IDLE_PARTITION_SECONDS`:
    /// it stops holding the watermark back.
    pub idle: bool,
    /// `--exit-when-idle`: the partition was read to its end; nothing
    /// follows.
    pub drained: bool,
}

/// Why a shard record cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shard record: {0}")]
pub struct BadBatch(pub &'static str);

/// A batch being built (its buffer is reused after [`BatchWriter::take`]).
#[derive(Debug)]
pub struct BatchWriter {
    buf: Vec<u8>,
    events: u32,
    last_ts: u64,
    header: usize,
}

impl BatchWriter {
    pub fn new(partition: i32) -> Self {
        Self::grouped(partition, 0, 0)
    }

    /// A writer whose events carry the keys of `groupings` groupings of the
    /// setting whose fingerprint is `fingerprint`.
    pub fn grouped(partition: i32, groupings: u8, fingerprint: u64) -> Self {
        let mut buf = Vec::with_capacity(1024);
        buf.extend_from_slice(if groupings == 0 { MAGIC } else { MAGIC_GROUPED });
        buf.extend_from_slice(&partition.to_be_bytes());
        buf.resize(HEADER, 0);
        if groupings > 0 {
            buf.push(groupings);
            buf.extend_from_slice(&fingerprint.to_be_bytes());
        }
        BatchWriter {
            header: buf.len(),
            buf,
            events: 0,
            last_ts: 0,
        }
    }

    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn events(&self) -> u32 {
        self.events
    }

    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    #[inline]
    pub fn push(&mut self, ts: u64, uid: &[u8]) {
        self.push_grouped(ts, uid, &[]);
    }

    /// An event with its encoded group keys (empty for a writer without
    /// groupings).
    #[inline]
    pub fn push_grouped(&mut self, ts: u64, uid: &[u8], keys: &[u8]) {
        let delta = ts.wrapping_sub(self.last_ts) as i64;
        self.last_ts = ts;
        write_varint(&mut self.buf, ((delta << 1) ^ (delta >> 63)) as u64);
        write_varint(&mut self.buf, uid.len() as u64);
        self.buf.extend_from_slice(uid);
        self.buf.extend_from_slice(keys);
        self.events += 1;
    }

    /// The finished record, ending with `marker`; the writer is empty
    /// again afterwards.
    pub fn take(&mut self, marker: Marker) -> Vec<u8> {
        let st = marker.stream_time.map_or(-1, |t| t as i64);
        self.buf[8..16].copy_from_slice(&marker.position.to_be_bytes());
        self.buf[16..24].copy_from_slice(&st.to_be_bytes());
        self.buf[24] = u8::from(marker.idle) | (u8::from(marker.drained) << 1);
        self.buf[25..29].copy_from_slice(&self.events.to_be_bytes());
        let mut record = Vec::with_capacity(self.buf.len());
        record.extend_from_slice(&self.buf);
        self.buf.truncate(self.header);
        self.events = 0;
        self.last_ts = 0;
        record
    }
}

/// A batch read back.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    pub partition: i32,
    pub marker: Marker,
    pub events: u32,
    /// Groupings whose keys each event carries.
    pub groupings: u8,
    /// Their setting's fingerprint (0 without groupings).
    pub fingerprint: u64,
    body: &'a [u8],
}

impl<'a> Batch<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Batch<'a>, BadBatch> {
        let (groupings, fingerprint, header) = match bytes.get(..4) {
            Some(m) if m == MAGIC && bytes.len() >= HEADER => (0, 0, HEADER),
            Some(m) if m == MAGIC_GROUPED && bytes.len() >= HEADER + GROUP_HEADER => (
                bytes[HEADER],
                u64::from_be_bytes(bytes[HEADER + 1..HEADER + 9].try_into().expect("8 bytes")),
                HEADER + GROUP_HEADER,
            ),
            _ => return Err(BadBatch("not a distinctly shard batch")),
        };
        let i64_at = |at: usize| i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let st = i64_at(16);
        Ok(Batch {
            partition: i32::from_be_bytes(bytes[4..8].try_into().expect("4 bytes")),
            marker: Marker {
                position: i64_at(8),
                stream_time: (st >= 0).then_some(st as u64),
                idle: bytes[24] & 1 == 1,
                drained: bytes[24] & 2 == 2,
            },
            events: u32::from_be_bytes(bytes[25..29].try_into().expect("4 bytes")),
            groupings,
            fingerprint,
            body: &bytes[header..],
        })
    }

    /// Calls `f(ts, uid)` for every event, in order.
    pub fn for_each(&self, mut f: impl FnMut(u64, &[u8])) -> Result<(), BadBatch> {
        self.for_each_grouped(|ts, uid, _| f(ts, uid))
    }

    /// Calls `f(ts, uid, keys)` for every event, in order; `keys` are its
    /// encoded group keys (empty without groupings).
    pub fn for_each_grouped(&self, mut f: impl FnMut(u64, &[u8], &[u8])) -> Result<(), BadBatch> {
        let mut rest = self.body;
        let mut ts: u64 = 0;
        for _ in 0..self.events {
            let zz = read_varint(&mut rest).ok_or(BadBatch("truncated event"))?;
            let delta = ((zz >> 1) as i64) ^ -((zz & 1) as i64);
            ts = ts.wrapping_add(delta as u64);
            let len = read_varint(&mut rest).ok_or(BadBatch("truncated event"))? as usize;
            if len > rest.len() {
                return Err(BadBatch("truncated uid"));
            }
            let (uid, tail) = rest.split_at(len);
            rest = tail;
            let keys_start = rest;
            for _ in 0..self.groupings {
                let len = read_varint(&mut rest).ok_or(BadBatch("truncated group key"))?;
                let len = len.saturating_sub(1) as usize;
                if len > rest.len() {
                    return Err(BadBatch("truncated group key"));
                }
                rest = &rest[len..];
            }
            let keys = &keys_start[..keys_start.len() - rest.len()];
            f(ts, uid, keys);
        }
        if rest.is_empty() {
            Ok(())
        } else {
            Err(BadBatch("bytes after the last event"))
        }
    }
}

#[inline]
fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
fn read_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_and_reuse_their_buffer() {
        let mut w = BatchWriter::new(5);
        let events: Vec<(u64, String)> = (0..1000u64)
            .map(|i| {
                (
                    1_767_225_600 + i * 7 % 300 - 150 + 1_000,
                    format!("user-{i}"),
                )
            })
            .chain([(0, "epoch".to_string()), (u64::MAX / 2, "far".to_string())])
            .collect();
        for (ts, uid) in &events {
            w.push(*ts, uid.as_bytes());
        }
        let marker = Marker {
            position: 1 << 40,
            stream_time: Some(1_767_225_900),
            idle: false,
            drained: false,
        };
        let bytes = w.take(marker);
        assert!(
            bytes.len() < HEADER + events.len() * 14,
            "{} bytes",
            bytes.len()
        );
        let b = Batch::parse(&bytes).unwrap();
        assert_eq!((b.partition, b.marker, b.events), (5, marker, 1002));
        let mut back = Vec::new();
        b.for_each(|ts, uid| back.push((ts, String::from_utf8(uid.to_vec()).unwrap())))
            .unwrap();
        assert_eq!(back, events);
        // A marker alone, after reuse.
        let idle = Marker {
            position: 7,
            stream_time: None,
            idle: true,
            drained: true,
        };
        let marker_only = w.take(idle);
        let m = Batch::parse(&marker_only).unwrap();
        assert_eq!((m.partition, m.marker, m.events), (5, idle, 0));
        assert!(Batch::parse(b"DSB1").is_err());
        // With group keys: each event's keys come back as written.
        let mut g = BatchWriter::grouped(2, 2, 0xfeed_f00d_dead_beef);
        g.push_grouped(10, b"u", &[3, b'D', b'E', 0]);
        g.push_grouped(11, b"v", &[0, 1]);
        let bytes = g.take(marker);
        let b = Batch::parse(&bytes).unwrap();
        assert_eq!(
            (b.groupings, b.fingerprint, b.events),
            (2, 0xfeed_f00d_dead_beef, 2)
        );
        let mut back = Vec::new();
        b.for_each_grouped(|ts, uid, keys| back.push((ts, uid.to_vec(), keys.to_vec())))
            .unwrap();
        assert_eq!(
            back,
            [
                (10, b"u".to_vec(), vec![3, b'D', b'E', 0]),
                (11, b"v".to_vec(), vec![0, 1])
            ]
        );
        assert_eq!(Batch::parse(&g.take(marker)).unwrap().groupings, 2);
        assert!(Batch::parse(&bytes[..bytes.len() - 1])
            .unwrap()
            .for_each(|_, _| {})
            .is_err());
    }
}
