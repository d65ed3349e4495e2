//! The partitions this instance holds: rebalances, ends of partitions,
//! idleness, and what that means for readiness.

use super::Service;
use crate::health::health;
use crate::internal_events::{InternalEvent, OutputPaused, OutputResumed, PartitionsAssigned};
use crate::kafka::context::Context;
use crate::kafka::{offsets, ServiceError};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Offset;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What this instance holds of the input topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Assignment {
    /// No partition (starting, or between a revoke and an assign).
    None,
    /// Some partitions: records and commits pause, because a window counted
    /// from some partitions is partial, and committing past its events would
    /// lose the others' share for good.
    Partial { held: usize, total: usize },
    /// Every partition of the topic: the only state that produces and
    /// commits.
    Complete,
}

/// Per assigned partition. Whether it is idle is the windower's to know
/// (an idle source stops holding the watermark back).
pub(super) struct Partition {
    pub id: i32,
    /// Next offset to read, once anything was read since the assignment.
    pub next_offset: Option<i64>,
    pub last_event: Instant,
    /// A message arrived since the last tick (the clock is read per tick,
    /// not per message: on some VMs reading it costs a syscall).
    pub active: bool,
    /// Reached the end of the partition since the last message.
    pub eof: bool,
    /// The committed offset reading started from, if the group had one.
    pub start_offset: Option<i64>,
}

/// How long to wait for metadata and committed offsets after a rebalance.
const METADATA_TIMEOUT: Duration = Duration::from_secs(30);

impl Service<'_> {
    /// Rebuilds all state for the new assignment: windows and guards start
    /// empty, stream times come back from the commit metadata, and replay
    /// from the committed (safe) offsets fills the windows again.
    pub(super) fn on_rebalance(
        &mut self,
        consumer: &BaseConsumer<Context>,
    ) -> Result<(), ServiceError> {
        let topic = &self.kafka.env.service_input_topic;
        let assignment = consumer.assignment()?;
        let mut ids: Vec<i32> = assignment
            .elements_for_topic(topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        ids.sort_unstable();
        self.windower.reset(ids.len());
        self.by_id = ids.iter().enumerate().map(|(i, &p)| (p, i)).collect();
        let now = Instant::now();
        self.partitions = ids
            .iter()
            .map(|&id| Partition {
                id,
                next_offset: None,
                last_event: now,
                active: false,
                eof: false,
                start_offset: None,
            })
            .collect();
        self.idle_flushed = false;
        let total = consumer
            .fetch_metadata(Some(topic), METADATA_TIMEOUT)?
            .topics()
            .iter()
            .find(|t| t.name() == topic.as_str())
            .map_or(0, |t| t.partitions().len());
        let before = self.assignment;
        self.assignment = match ids.len() {
            0 => Assignment::None,
            n if n == total => Assignment::Complete,
            held => Assignment::Partial { held, total },
        };
        match (before, self.assignment) {
            (_, Assignment::Partial { held, total }) => {
                // Nothing is committed or produced until all partitions
                // are back (run one instance per consumer group).
                *self.shared.safe.lock().expect("not poisoned") = None;
                OutputPaused { topic, held, total }.emit();
            }
            (Assignment::Partial { .. }, Assignment::Complete) => {
                OutputResumed { topic, total }.emit();
            }
            _ => {}
        }
        if self.assignment != Assignment::None {
            let committed = consumer.committed_offsets(assignment, METADATA_TIMEOUT)?;
            let mut replay = 0;
            for e in committed.elements_for_topic(topic) {
                let Some(&src) = self.by_id.get(&e.partition()) else {
                    continue;
                };
                if let Offset::Offset(o) = e.offset() {
                    self.partitions[src].start_offset = Some(o);
                }
                if let Some(st) = offsets::decode(e.metadata()) {
                    self.windower.restore(src, st);
                }
                if self.assignment == Assignment::Complete && self.state.is_some() {
                    let (low, high) =
                        consumer.fetch_watermarks(topic, e.partition(), METADATA_TIMEOUT)?;
                    let from = match e.offset() {
                        Offset::Offset(o) => o,
                        _ => low,
                    };
                    replay += (high - from).max(0);
                }
            }
            if self.assignment == Assignment::Complete {
                self.restore_state(consumer, replay)?;
            }
        }
        PartitionsAssigned {
            topic,
            partitions: &ids,
            total,
        }
        .emit();
        Ok(())
    }

    pub(super) fn on_eof(&mut self, partition: i32) {
        if let Some(&src) = self.by_id.get(&partition) {
            self.partitions[src].eof = true;
        }
        self.shared.broker_up();
    }

    /// Marks partitions without events for `DISTINCTLY_IDLE_PARTITION_SECONDS`
    /// idle; once all are, the guards settle and the open windows come out.
    pub(super) fn check_idle(&mut self, now: Instant) {
        let idle_after = Duration::from_secs(self.kafka.service.idle_partition_seconds);
        for (src, part) in self.partitions.iter_mut().enumerate() {
            if std::mem::take(&mut part.active) {
                part.last_event = now;
            }
            if !self.windower.is_idle(src) && part.last_event.elapsed() >= idle_after {
                self.windower.set_idle(src, true, &mut self.records);
            }
        }
        let all_idle = (0..self.partitions.len()).all(|src| self.windower.is_idle(src));
        if !self.idle_flushed && all_idle {
            // The whole input is idle: the last minutes come out now.
            self.windower.flush_idle(&mut self.records);
            self.idle_flushed = true;
        }
    }

    /// Every partition of the topic is ours and at its end (a partial
    /// assignment can be "at its end" with data still elsewhere).
    pub(super) fn caught_up(&self) -> bool {
        self.assignment == Assignment::Complete && self.partitions.iter().all(|p| p.eof)
    }

    /// Tells `/readyz` whether this instance does its work.
    pub(super) fn report_readiness(&self) {
        let topic = &self.kafka.env.service_input_topic;
        let ready = if self.shared.is_broker_down() {
            Err("broker unreachable".to_string())
        } else {
            match self.assignment {
                Assignment::None => Err(format!("no partition of {topic} assigned yet")),
                Assignment::Partial { held, total } => Err(format!(
                    "holding {held} of {total} partitions of {topic}: output paused"
                )),
                Assignment::Complete => Ok(()),
            }
        };
        health().set_ready(ready);
    }

    /// Partition id -> source index, for messages.
    pub(super) fn source_of(&self, partition: i32) -> Option<usize> {
        self.by_id.get(&partition).copied()
    }
}

/// Partition id -> index into `partitions` (the windower's source).
pub(super) type SourceIndex = HashMap<i32, usize>;
