//! Checkpoints of a shard's held windows to the state topic (format in
//! `kafka::state`), and their restore when a counter takes the shard.
//!
//! A checkpoint round, once per commit interval: every held window's
//! changes since the last round (new `exact` uids, a changed sketch) and
//! its header, which says up to which offset of the shard partition it
//! includes events (the read position now). Once the producer has flushed
//! them, that position is what a restart must replay from, so the
//! committed offset moves up to it, and the shard's mark (the position and
//! the input partitions' stream times) follows in the state topic. The
//! tombstones of windows freed before a mark go out in the round after it,
//! behind it in the one partition.
//!
//! Restoring: the latest value of every key of the state topic, read from
//! the beginning; the stream times of the shard's mark or of its committed
//! offset, whichever is newer; then each of the shard's windows goes back
//! into its lane with its phase and revision, and its `covered` offset: a
//! replayed event below it is already in the window and is not counted
//! again. A window the topic no longer holds was freed at or below the
//! restored watermark, so its replayed events are too late to re-create it.

use super::produce::send;
use crate::counter::CounterKind;
use crate::kafka::context::Context;
use crate::kafka::offsets::SourceTime;
use crate::kafka::state::{self, Mark, Records, Restored, Snapshot, WindowId};
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
    /// `DISTINCTLY_GROUP_BY` (`Groupings::setting`), in every header with
    /// groups.
    group_by: String,
    /// Checkpoint rounds of this process (generation numbers).
    round: u64,
    /// Tombstones due with the next round (orphaned chunks found at
    /// restore, sizes no longer counted, windows freed before the last mark
    /// sent).
    pending: Records,
    /// Tombstones of windows freed since the last mark was sent: they wait
    /// for a mark that covers their freeing.
    freed: Records,
    /// This round's marks, sent once its records are acknowledged.
    marks: Vec<(i32, Mark)>,
}

impl StateStore {
    pub fn new(topic: String, group_by: String) -> Self {
        StateStore {
            topic,
            group_by,
            round: 0,
            pending: Records::new(),
            freed: Records::new(),
            marks: Vec::new(),
        }
    }

    /// Starts a round: its records begin with what was pending.
    pub fn begin_round(&mut self) -> Records {
        self.round += 1;
        std::mem::take(&mut self.pending)
    }

    /// Adds the records of shard `shard`'s windows (all read up to shard
    /// offset `position`, where the input partitions stand at `sources`)
    /// to `out`; its mark waits for [`StateStore::acknowledged`].
    pub fn checkpoint(
        &mut self,
        shard: i32,
        windower: &mut Windower,
        kind: CounterKind,
        position: i64,
        sources: Vec<SourceTime>,
        out: &mut Records,
    ) {
        for (size, f) in windower.take_freed() {
            let id = WindowId {
                shard,
                size,
                start: f.start,
            };
            state::forget_window(id, f.saved, f.groups, &mut self.freed);
        }
        let covered = [(shard, position)];
        for (size, window) in windower.windows_mut() {
            state::checkpoint_window(
                shard,
                size,
                window,
                kind,
                &self.group_by,
                self.round,
                &covered,
                out,
            );
        }
        self.marks.push((shard, Mark { position, sources }));
    }

    /// The round's records, and every partial count sent before them, are
    /// acknowledged: returns the round's marks, to send now. The tombstones
    /// of windows freed up to now become due with the next round, behind
    /// these marks in the partition.
    pub fn acknowledged(&mut self) -> Records {
        self.pending.append(&mut self.freed);
        self.marks
            .drain(..)
            .map(|(shard, mark)| (state::mark_key(shard), Some(mark.encode())))
            .collect()
    }

    /// The round was not acknowledged: its marks are not sent (the next
    /// round makes new ones), and the freed windows keep waiting.
    pub fn not_acknowledged(&mut self) {
        self.marks.clear();
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
                state::forget_window(id, h.saved, h.groups, &mut self.pending);
                continue;
            }
            let position = h
                .covered
                .iter()
                .find(|(id, _)| *id == shard)
                .map_or(i64::MAX, |&(_, o)| o);
            let emitted_before = h.phase != Phase::Open;
            let mut groups = w.groups.clone();
            if emitted_before {
                // Every group's count goes out again with the window's.
                for table in &mut groups {
                    table.slots_mut().for_each(|(_, g)| g.set_changed(true));
                }
            }
            let window = Window {
                start: h.start,
                end: h.end,
                counter: w.counter.clone(),
                events: h.events,
                phase: h.phase,
                // Emitted before? Emit its count again once replay caught
                // up: the crash may have come before that record was sent.
                changed: h.changed || emitted_before,
                replay_from: vec![position; sources],
                covered: vec![position; sources],
                saved: Some(h.saved),
                dirty: false,
                groups,
                groups_saved: h.groups,
            };
            if windower.restore_window(h.size, window) {
                count += 1;
            } else {
                // A size no longer counted.
                state::forget_window(id, h.saved, h.groups, &mut self.pending);
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

/// The stream times to restore a shard with: those of its mark in the
/// state topic when the mark is at least as new as the committed offset
/// (it is written after the round's records are acknowledged, before the
/// commit), else the commit's metadata. The windows of the state topic were
/// freed at or below the mark's watermark; the committed offset's
/// metadata, when newer, is of a round whose records were acknowledged too.
pub(super) fn newer_times(
    committed: Option<i64>,
    committed_times: Vec<SourceTime>,
    mark: Option<&Mark>,
) -> Vec<SourceTime> {
    match mark {
        Some(m) if committed.is_none_or(|c| m.position >= c) => m.sources.clone(),
        _ => committed_times,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::uid_hash;
    use crate::window::size::WindowSize;
    use crate::window::WindowConfig;

    const T0: u64 = 1_767_225_600;

    fn windower() -> Windower {
        let cfg = WindowConfig {
            sizes: vec![WindowSize::Seconds(60)],
            timezone: "UTC".into(),
            allowed_lateness_seconds: 0,
            late_retention_seconds: 60,
            max_ahead_seconds: 300,
            max_behind_seconds: 86_400,
            jump_confirm_events: 16,
            groupings: crate::group::Groupings::none(),
            rolling: Vec::new(),
        };
        let mut w = Windower::new(cfg, CounterKind::Exact).unwrap();
        w.track_freed();
        w
    }

    fn push(w: &mut Windower, ts: u64, offset: i64, out: &mut Vec<crate::record::WindowRecord>) {
        let uid = format!("u{offset}");
        w.push_trusted(
            0,
            ts,
            uid.as_bytes(),
            uid_hash(uid.as_bytes()),
            offset,
            crate::group::Keys::NONE,
        );
        w.advance_source(0, Some(ts), false, out);
    }

    fn sources(w: &Windower) -> Vec<SourceTime> {
        vec![SourceTime {
            partition: 0,
            stream_time: w.stream_time(0),
            idle: false,
            position: 0,
        }]
    }

    fn tombstones(records: &Records) -> Vec<&str> {
        records
            .iter()
            .filter(|(k, v)| v.is_none() && k.matches('/').count() == 3)
            .map(|(k, _)| k.as_str())
            .collect()
    }

    #[test]
    fn a_freed_window_is_deleted_only_behind_a_mark_past_its_freeing() {
        let mut store = StateStore::new("state".into(), String::new());
        let mut w = windower();
        let mut out = Vec::new();
        let kind = CounterKind::Exact;
        // Round 1: the first minute is held and checkpointed.
        push(&mut w, T0 + 10, 0, &mut out);
        let mut r1 = store.begin_round();
        let src = sources(&w);
        store.checkpoint(0, &mut w, kind, 1, src, &mut r1);
        assert!(r1.iter().any(|(k, _)| k == "0/w/1m/1767225600"));
        let marks = store.acknowledged();
        assert_eq!(marks.len(), 1);
        let mark = Mark::decode(&marks[0].0, marks[0].1.as_ref().unwrap()).unwrap();
        assert_eq!(mark.position, 1);
        assert_eq!(mark.sources[0].stream_time, Some(T0 + 10));
        // The stream moves past its end plus retention: freed.
        push(&mut w, T0 + 200, 1, &mut out);
        // Round 2 writes no tombstone for it: the mark of round 1 says a
        // watermark at which it was still held.
        let mut r2 = store.begin_round();
        let src = sources(&w);
        store.checkpoint(0, &mut w, kind, 2, src, &mut r2);
        assert!(tombstones(&r2).is_empty(), "{:?}", tombstones(&r2));
        // A round that is not acknowledged sends no mark and keeps the
        // tombstone waiting.
        store.not_acknowledged();
        let mut r3 = store.begin_round();
        let src = sources(&w);
        store.checkpoint(0, &mut w, kind, 2, src, &mut r3);
        assert!(tombstones(&r3).is_empty());
        let marks = store.acknowledged();
        let mark = Mark::decode(&marks[0].0, marks[0].1.as_ref().unwrap()).unwrap();
        assert_eq!(mark.sources[0].stream_time, Some(T0 + 200));
        // The round after the mark that covers the freeing deletes it.
        let r4 = store.begin_round();
        assert_eq!(tombstones(&r4), ["0/w/1m/1767225600"]);
    }

    #[test]
    fn a_restore_takes_the_stream_times_of_the_newer_of_mark_and_commit() {
        let st = |t| {
            vec![SourceTime {
                partition: 0,
                stream_time: Some(t),
                idle: false,
                position: 7,
            }]
        };
        let mark = Mark {
            position: 100,
            sources: st(T0 + 500),
        };
        // The commit of the mark's round, or an older one: the mark.
        assert_eq!(
            newer_times(Some(100), st(T0 + 500), Some(&mark)),
            st(T0 + 500)
        );
        assert_eq!(
            newer_times(Some(40), st(T0 + 100), Some(&mark)),
            st(T0 + 500)
        );
        assert_eq!(newer_times(None, Vec::new(), Some(&mark)), st(T0 + 500));
        // A commit newer than the mark (the mark not acknowledged yet).
        assert_eq!(
            newer_times(Some(150), st(T0 + 900), Some(&mark)),
            st(T0 + 900)
        );
        assert_eq!(newer_times(Some(150), st(T0 + 900), None), st(T0 + 900));
    }
}
