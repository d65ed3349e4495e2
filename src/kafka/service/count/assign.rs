//! Taking shards over after a rebalance: revoked shards are dropped (their
//! statistics kept), new ones start from the group's committed offset with
//! every input partition's stream time and marker position from its commit
//! metadata, and their windows from the state topic.

use super::{add_stats, Counter, Shard, METADATA_TIMEOUT};
use crate::internal_events::{
    ForeignStateRecords, InternalEvent, PartitionsAssigned, StateRestored,
};
use crate::kafka::offsets::{self, SourceTime};
use crate::kafka::service::assigned;
use crate::kafka::service::checkpoint::{newer_times, read_snapshot};
use crate::kafka::state::StateError;
use crate::kafka::ServiceError;
use crate::window::Windower;
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use std::time::Instant;

impl Counter<'_> {
    /// Drops revoked shards and builds the new ones: stream times from the
    /// commit metadata, windows from the state topic, replay from the
    /// committed offset.
    pub(super) fn on_rebalance(&mut self) -> Result<(), ServiceError> {
        let topic = self.ctx.topology.shards.clone();
        let ids = assigned(&self.consumer, &topic)?;
        for slot in self.shards.iter_mut() {
            if slot.as_ref().is_some_and(|s| !ids.contains(&s.id)) {
                if let Some(gone) = slot.take() {
                    add_stats(&mut self.finished, &gone.windower.stats());
                }
            }
        }
        let new: Vec<i32> = ids
            .iter()
            .copied()
            .filter(|&id| !matches!(self.shards.get(id as usize), Some(Some(_))))
            .collect();
        if !new.is_empty() {
            self.take_shards(&topic, &new)?;
        }
        PartitionsAssigned {
            topic: &topic,
            partitions: &ids,
            total: self.ctx.topology.shard_count,
            input: false,
        }
        .emit();
        Ok(())
    }

    fn take_shards(&mut self, topic: &str, new: &[i32]) -> Result<(), ServiceError> {
        let started = Instant::now();
        let mut tpl = TopicPartitionList::new();
        for &id in new {
            tpl.add_partition(topic, id);
        }
        let committed = self.consumer.committed_offsets(tpl, METADATA_TIMEOUT)?;
        let snapshot = match &self.state {
            Some(state) => {
                let snap = read_snapshot(&self.meta, &state.topic)?;
                let bad = |error: StateError| ServiceError::State {
                    topic: state.topic.clone(),
                    error,
                };
                let (windows, orphans) = snap
                    .windows(self.ctx.kind, &self.ctx.groupings)
                    .map_err(bad)?;
                let foreign = snap.foreign_keys();
                if let Some(first) = foreign.first() {
                    ForeignStateRecords {
                        topic: &state.topic,
                        count: foreign.len(),
                        example: first,
                    }
                    .emit();
                }
                let marks = new
                    .iter()
                    .map(|&id| Ok((id, snap.mark(id).map_err(bad)?)))
                    .collect::<Result<Vec<_>, ServiceError>>()?;
                Some((windows, orphans, marks))
            }
            None => None,
        };
        let sources = self.ctx.topology.input_partitions;
        let mut restored = 0;
        let mut replay = 0;
        for &id in new {
            let mut windower = Windower::new(self.ctx.core.window_config(), self.ctx.kind)
                .map_err(|e| crate::config::invalid("DISTINCTLY_TIMEZONE", e.0))?;
            windower.reset(sources);
            if self.state.is_some() {
                windower.track_freed();
            }
            let elem = committed.find_partition(topic, id);
            let start_offset = elem.as_ref().and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
            let committed_times = elem
                .as_ref()
                .map(|e| offsets::decode_sources(e.metadata()))
                .unwrap_or_default();
            let mark = snapshot
                .as_ref()
                .and_then(|(_, _, marks)| marks.iter().find(|(m, _)| *m == id))
                .and_then(|(_, mark)| mark.as_ref());
            let times = newer_times(start_offset, committed_times, mark);
            let positions = restore_sources(&mut windower, &times, sources);
            if let (Some(state), Some((windows, _, _))) = (&mut self.state, &snapshot) {
                restored += state.restore(
                    id,
                    &mut windower,
                    windows,
                    self.ctx.core.late_retention_seconds,
                );
            }
            let (low, high) = self.meta.fetch_watermarks(topic, id, METADATA_TIMEOUT)?;
            replay += (high - start_offset.unwrap_or(low)).max(0);
            let n = windower.source_count();
            let slot = id as usize;
            if self.shards.len() <= slot {
                self.shards.resize_with(slot + 1, || None);
            }
            self.shards[slot] = Some(Shard {
                id,
                windower,
                next_offset: None,
                start_offset,
                caught_up: false,
                end_at_assignment: high,
                idle_flushed: false,
                positions,
                drained: vec![false; n],
                status_sent: None,
                assigned: Instant::now(),
            });
            if high <= start_offset.unwrap_or(low) {
                self.catch_up(id)?; // nothing to read again
            }
        }
        if let (Some(state), Some((_, orphans, _))) = (&mut self.state, snapshot) {
            state.forget_orphans(orphans, new);
            StateRestored {
                topic: &state.topic,
                windows: restored,
                replay_messages: replay,
                seconds: started.elapsed().as_secs_f64(),
            }
            .emit();
        }
        Ok(())
    }
}

/// Restores each input partition's stream time into a new shard's
/// windower, and returns the positions of their latest markers.
fn restore_sources(windower: &mut Windower, times: &[SourceTime], sources: usize) -> Vec<i64> {
    let mut positions = vec![-1; sources];
    for t in times {
        let p = t.partition as usize;
        if p >= windower.source_count() {
            windower.ensure_sources(p + 1);
            positions.resize(p + 1, -1);
        }
        // Not its idleness: that was the last owner's view, and the input
        // may have a backlog now. A source is active until a marker says
        // otherwise (the splitter renews an idle partition's marker every
        // DISTINCTLY_IDLE_PARTITION_SECONDS), so a partition read later
        // than another is not judged against the other's watermark.
        positions[p] = t.position;
    }
    for t in times {
        if let Some(st) = t.stream_time {
            windower.restore(t.partition as usize, st);
        }
    }
    positions
}
