//! Checkpoints of a shard's held windows to the state topic (format in
//! `kafka::state`), and their restore when a counter takes the shard.
//!
//! A checkpoint round, once per commit interval: every held window's
//! changes since the last round (new `exact` uids, a changed sketch) and
//! its header, which says up to which offset of the shard partition it
//! includes events (the read position now). Once the producer has flushed
//! them, that position is what a restart must replay from, so the
//! committed offset moves up to it.
//!
//! Restoring: the latest value of every key of the state topic, read from
//! the beginning; each of the shard's windows goes back into its lane with
//! its phase and revision, and its `covered` offset: a replayed event below
//! it is already in the window and is not counted again.

use super::produce::send;
use crate::counter::CounterKind;
use crate::kafka::context::Context;
use crate::kafka::state::{self, Records, Restored, Snapshot, WindowId};
use crate::kafka::ServiceError;
use crate::window::lane::{Phase, Window};
use crate::window::Windower;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// How long to wait for the state topic to be read.
const STATE_TIMEOUT: Duration = Duration::from_secs(60);

/// The state topic and what is due to it.
pub(super) struct StateStore {
    pub topic: String,
    /// Checkpoint rounds of this process (generation numbers).
    round: u64,
    /// Tombstones not written yet (orphaned chunks found at restore, sizes
    /// no longer counted).
    pending: Records,
}

impl StateStore {
    pub fn new(topic: String) -> Self {
        StateStore {
            topic,
            round: 0,
            pending: Records::new(),
        }
    }

    /// Starts a round: its records begin with what was pending.
    pub fn begin_round(&mut self) -> Records {
        self.round += 1;
        std::mem::take(&mut self.pending)
    }

    /// Adds the records of shard `shard`'s windows (all read up to shard
    /// offset `position`) to `out`.
    pub fn checkpoint(
        &self,
        shard: i32,
        windower: &mut Windower,
        kind: CounterKind,
        position: i64,
        out: &mut Records,
    ) {
        for (size, start, saved) in windower.take_freed() {
            state::forget_window(WindowId { shard, size, start }, saved, out);
        }
        let covered = [(shard, position)];
        for (size, window) in windower.windows_mut() {
            state::checkpoint_window(shard, size, window, kind, self.round, &covered, out);
        }
    }

    /// Sends `records` to the state topic (partition 0, in order).
    pub fn send(
        &self,
        producer: &BaseProducer<Context>,
        records: &Records,
    ) -> Result<(), ServiceError> {
        for (key, value) in records {
            let mut record = BaseRecord::<str, [u8]>::to(&self.topic)
                .key(key)
                .partition(0);
            if let Some(v) = value {
                record = record.payload(v);
            }
            send(producer, record)?;
        }
        Ok(())
    }

    /// Puts shard `shard`'s windows of `restored` back into `windower`
    /// (just made, its stream times restored); returns how many. Windows
    /// past `retention` at the restored watermark are deleted instead: the
    /// summer has forgotten them.
    pub fn restore(
        &mut self,
        shard: i32,
        windower: &mut Windower,
        restored: &[Restored],
        retention: u64,
    ) -> usize {
        let sources = windower.source_count();
        let mut count = 0;
        for w in restored.iter().filter(|w| w.shard == shard) {
            let h = &w.header;
            let id = WindowId {
                shard,
                size: h.size,
                start: h.start,
            };
            if windower
                .watermark()
                .is_some_and(|wm| h.end.saturating_add(retention) <= wm)
            {
                state::forget_window(id, h.saved, &mut self.pending);
                continue;
            }
            let position = h
                .covered
                .iter()
                .find(|(id, _)| *id == shard)
                .map_or(i64::MAX, |&(_, o)| o);
            let window = Window {
                start: h.start,
                end: h.end,
                counter: w.counter.clone(),
                events: h.events,
                phase: h.phase,
                // Emitted before? Emit its count again once replay caught
                // up: the crash may have come before that record was sent.
                changed: h.changed || h.phase != Phase::Open,
                replay_from: vec![position; sources],
                covered: vec![position; sources],
                saved: Some(h.saved),
                dirty: false,
            };
            if windower.restore_window(h.size, window) {
                count += 1;
            } else {
                // A size no longer counted.
                state::forget_window(id, h.saved, &mut self.pending);
            }
        }
        count
    }

    /// Tombstones for orphaned keys of the shards in `shards`.
    pub fn forget_orphans(&mut self, orphans: Vec<String>, shards: &[i32]) {
        for key in orphans {
            let shard = key.split('/').next().and_then(|s| s.parse::<i32>().ok());
            if shard.is_some_and(|s| shards.contains(&s)) {
                self.pending.push((key, None));
            }
        }
    }
}

/// The latest value of every key of `topic`, read from its beginning.
pub(super) fn read_snapshot(
    reader: &BaseConsumer<Context>,
    topic: &str,
) -> Result<Snapshot, ServiceError> {
    let result = read_whole(reader, topic);
    let _ = reader.unassign();
    result
}

fn read_whole(reader: &BaseConsumer<Context>, topic: &str) -> Result<Snapshot, ServiceError> {
    let mut snapshot = Snapshot::default();
    let (low, high) = reader.fetch_watermarks(topic, 0, STATE_TIMEOUT)?;
    if high <= low {
        return Ok(snapshot);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    reader.assign(&tpl)?;
    let deadline = Instant::now() + STATE_TIMEOUT;
    loop {
        if Instant::now() > deadline {
            return Err(ServiceError::Fatal(format!(
                "reading the state topic {topic}: not done within {} s",
                STATE_TIMEOUT.as_secs()
            )));
        }
        match reader.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
                snapshot.apply(key, m.payload().map(<[u8]>::to_vec));
                if m.offset() + 1 >= high {
                    return Ok(snapshot);
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(snapshot),
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
}
