//! Stage 1, split: reads the input partitions this instance holds, decodes,
//! judges time (the bit-flip guard, per partition, as `count` does) and
//! sends every event to the shard of its user ([`crate::hash::shard_of`]),
//! in batches ([`crate::kafka::shard`]).
//!
//! Exactly once: each input partition has its own transactional producer.
//! A transaction carries the partition's batches since the last one, a
//! marker to every shard (position, stream time, idle) and the input offset,
//! with the stream time as commit metadata. It commits every
//! [`txn::TXN_INTERVAL`] while events flow, and when the partition's idleness
//! changes. Shard readers read committed records only, so after a crash, a
//! rebalance or an aborted transaction the input is read again from the
//! committed offset and no event reaches a shard twice. A transaction is not
//! committed while the guard holds events (their offsets are read, but they
//! are in no batch yet); a guard that holds them for [`txn::SETTLE_AFTER`]
//! decides.

mod txn;

use super::dead_letter::dead_letter;
use super::stage_loop::{self, StageLoop};
use super::{assigned, clients, Ctx, Stage, EXIT_QUIET};
use crate::decode::Decoder;
use crate::group::{GroupKeys, Groupings, Refusals};
use crate::hash::{shard_of, uid_hash};
use crate::internal_events::{
    InternalEvent, MessageRejected, PartitionsAssigned, ShutdownRequested, TransactionAborted,
};
use crate::kafka::context::{Context, Shared};
use crate::kafka::shard::{BatchWriter, Marker};
use crate::kafka::{offsets, ServiceError};
use crate::metrics::InputPublisher;
use crate::reject::{Reject, RejectCounts};
use crate::window::guard::{Guard, Released, Verdict};
use crate::window::{WindowConfig, Windower};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use txn::{abort, outcome, send_batch, Committing, MAX_PENDING_BYTES, TXN_CALL_TIMEOUT};

/// A shard's batch is sent once it holds this many bytes.
const BATCH_BYTES: usize = 256 << 10;

/// What the splitter did.
#[derive(Debug, Clone, Default)]
pub(crate) struct SplitStats {
    pub messages: u64,
    pub bytes: u64,
    pub rejected: RejectCounts,
    /// Events the time guards refused.
    pub ts_out_of_range: u64,
    pub dlq_produced: u64,
    /// Group values no group was made of, per grouping and reason.
    pub refusals: Refusals,
}

/// One input partition held by this instance.
struct Part {
    id: i32,
    /// Shared with the thread of a running commit.
    producer: Arc<BaseProducer<Context>>,
    guard: Guard,
    /// Per shard, the batch being built.
    writers: Vec<BatchWriter>,
    /// Next offset to read: after the last message handled.
    next_offset: Option<i64>,
    /// The last committed offset and stream time (what an abort rewinds to).
    committed: Option<i64>,
    committed_st: Option<u64>,
    /// A transaction is open, since then.
    open: Option<Instant>,
    /// The previous transaction is being committed.
    committing: Option<Committing>,
    /// The guard has held events at every tick since then.
    held_since: Option<Instant>,
    last_commit: Instant,
    /// Messages handled since the last commit.
    dirty: bool,
    /// A message arrived since the last tick (the clock is read per tick).
    active: bool,
    last_event: Instant,
    idle: bool,
    /// What the markers of the last commit said.
    sent: Option<Marker>,
    eof: bool,
}

struct Splitter<'a> {
    ctx: &'a Ctx<'a>,
    shared: Arc<Shared>,
    consumer: Arc<BaseConsumer<Context>>,
    /// Dead-letter copies (not transactional: a copy may repeat on replay).
    dlq: Option<(String, BaseProducer<Context>)>,
    /// By input partition id.
    parts: Vec<Option<Part>>,
    decoder: Decoder,
    groupings: Groupings,
    /// The group keys of the event at hand, and encoded.
    keys: GroupKeys,
    key_bytes: Vec<u8>,
    released: Released,
    window_cfg: WindowConfig,
    max_ts: u64,
    stats: SplitStats,
    last_message: Instant,
    metrics: Option<InputPublisher>,
    drained: bool,
    /// Tells commit threads to stop retrying.
    stopping: Arc<AtomicBool>,
}

pub(super) fn run(ctx: &Ctx<'_>) -> Result<SplitStats, ServiceError> {
    let mut s = Splitter::new(ctx)?;
    let result = stage_loop::run(&mut s, ctx);
    s.publish();
    result.map(|()| s.stats)
}

impl<'a> Splitter<'a> {
    fn new(ctx: &'a Ctx<'a>) -> Result<Self, ServiceError> {
        let shared = Arc::new(Shared::new(ctx.kafka.env.service_dlq_topic.clone()));
        let consumer = Arc::new(clients::stage_consumer(
            ctx.kafka,
            Stage::Split,
            shared.clone(),
        )?);
        consumer.subscribe(&[ctx.topology.input.as_str()])?;
        let dlq = match &ctx.kafka.env.service_dlq_topic {
            Some(topic) => Some((topic.clone(), clients::producer(ctx.kafka, shared.clone())?)),
            None => None,
        };
        // Only for its bound on event times (the same for every stage).
        let window_cfg = ctx.core.window_config();
        let max_ts = Windower::new(window_cfg.clone(), ctx.kind)
            .map_err(|e| crate::config::invalid("DISTINCTLY_TIMEZONE", e.0))?
            .max_event_ts();
        Ok(Splitter {
            ctx,
            shared,
            consumer,
            dlq,
            parts: Vec::new(),
            decoder: Decoder::with_fields(&ctx.groupings.paths),
            groupings: ctx.groupings.clone(),
            keys: GroupKeys::default(),
            key_bytes: Vec::new(),
            released: Released::default(),
            window_cfg,
            max_ts,
            stats: SplitStats::default(),
            last_message: Instant::now(),
            metrics: InputPublisher::if_enabled(),
            drained: false,
            stopping: Arc::new(AtomicBool::new(false)),
        })
    }

    fn on_message(&mut self, msg: &BorrowedMessage<'_>) -> Result<(), ServiceError> {
        let Some(Some(part)) = self.parts.get_mut(msg.partition() as usize) else {
            // Not (or no longer) ours: read again by its owner.
            return Ok(());
        };
        if let Some(m) = &mut self.metrics {
            if m.batch_message() {
                m.batch_end();
            }
        }
        part.next_offset = Some(msg.offset() + 1);
        part.active = true;
        part.dirty = true;
        part.eof = false;
        part.idle = false;
        let payload = msg.payload().unwrap_or(&[]);
        self.stats.messages += 1;
        self.stats.bytes += payload.len() as u64;
        let result = if payload.len() > self.ctx.core.max_message_bytes {
            Err(Reject::TooLarge)
        } else {
            self.decoder.decode(payload)
        };
        match result {
            Ok(event) => {
                let (ts, uid) = (event.ts, event.uid);
                if ts > self.max_ts {
                    self.stats.ts_out_of_range += 1;
                    return Ok(());
                }
                self.key_bytes.clear();
                if !self.groupings.is_empty() {
                    self.groupings
                        .keys_of(&event.fields, &mut self.keys, &mut self.stats.refusals);
                    self.keys.encode(&mut self.key_bytes);
                }
                let hash = uid_hash(uid);
                match part
                    .guard
                    .check_with(ts, uid, &self.key_bytes, hash, msg.offset())
                {
                    Verdict::Accept => {
                        let shards = part.writers.len() as u32;
                        part.writers[shard_of(hash, shards) as usize].push_grouped(
                            ts,
                            uid,
                            &self.key_bytes,
                        );
                    }
                    Verdict::Held => {}
                    Verdict::Reject => self.stats.ts_out_of_range += 1,
                }
                if part.guard.has_decisions() {
                    settle(part, &mut self.released, &mut self.stats);
                }
                let part_id = part.id;
                self.send_full_batches(part_id)?;
            }
            Err(reason) => {
                MessageRejected {
                    reason,
                    partition: msg.partition(),
                    offset: msg.offset(),
                    counts: &mut self.stats.rejected,
                }
                .emit();
                if let Some((topic, producer)) = &self.dlq {
                    if dead_letter(producer, topic, msg, payload, reason) {
                        self.stats.dlq_produced += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// Sends the batches of partition `id` that reached [`BATCH_BYTES`].
    fn send_full_batches(&mut self, id: i32) -> Result<(), ServiceError> {
        let Some(Some(part)) = self.parts.get(id as usize) else {
            return Ok(());
        };
        if part.writers.iter().all(|w| w.len() < BATCH_BYTES) {
            return Ok(());
        }
        if part.committing.is_some() {
            // The next transaction begins once this commit is known.
            if part.writers.iter().map(BatchWriter::len).sum::<usize>() < MAX_PENDING_BYTES {
                return Ok(());
            }
            self.collect_commit(id, true)?;
        }
        let Some(Some(part)) = self.parts.get_mut(id as usize) else {
            return Ok(());
        };
        let marker = marker(part);
        for shard in 0..part.writers.len() {
            if part.writers[shard].len() >= BATCH_BYTES {
                if let Err(e) = send_batch(self.ctx, part, shard, marker) {
                    // The transaction cannot go on: abort it, read again.
                    TransactionAborted {
                        partition: id,
                        error: &e,
                        fenced: false,
                    }
                    .emit();
                    abort(&part.producer);
                    return self.rewind(id);
                }
            }
        }
        Ok(())
    }

    /// Periodic work: health, idleness, transactions, the end of a drain.
    fn tick(&mut self) -> Result<(), ServiceError> {
        self.ctx.tick_stage(Stage::Split, &self.shared)?;
        if let Some((_, p)) = &self.dlq {
            p.poll(Duration::ZERO);
        }
        let now = Instant::now();
        let idle_after = Duration::from_secs(self.ctx.kafka.service.idle_partition_seconds);
        let mut any_active = false;
        for part in self.parts.iter_mut().flatten() {
            part.producer.poll(Duration::ZERO);
            if std::mem::take(&mut part.active) {
                part.last_event = now;
                any_active = true;
            }
            if !part.idle && part.last_event.elapsed() >= idle_after {
                // Quiet for long enough: what the guard holds is decided
                // (as at the end of the input), and the shards stop waiting
                // for this partition.
                part.guard.settle();
                settle(part, &mut self.released, &mut self.stats);
                part.idle = true;
            }
        }
        if any_active {
            self.last_message = now;
        }
        self.commit_all(false)?;
        self.publish();
        if self.ctx.opts.exit_when_idle && self.input_read() {
            self.drain()?;
        }
        Ok(())
    }

    /// Every input partition is ours, read to its end, and quiet.
    fn input_read(&self) -> bool {
        let held: Vec<&Part> = self.parts.iter().flatten().collect();
        held.len() == self.ctx.topology.input_partitions
            && held.iter().all(|p| p.eof)
            && self.last_message.elapsed() >= EXIT_QUIET
    }

    /// `--exit-when-idle`: settles every guard and commits a last
    /// transaction per partition whose markers say it is drained.
    fn drain(&mut self) -> Result<(), ServiceError> {
        // A commit that failed meanwhile means reading again.
        self.collect_commits(true)?;
        if !self.input_read() {
            return Ok(());
        }
        for part in self.parts.iter_mut().flatten() {
            part.guard.settle();
            settle(part, &mut self.released, &mut self.stats);
            part.idle = true;
        }
        let ids: Vec<i32> = self.parts.iter().flatten().map(|p| p.id).collect();
        self.start_commits(&ids, true)?;
        if self.collect_commits(true)? < ids.len() {
            return Err(ServiceError::Fatal(
                "input drained, but its last transactions did not commit; a rerun resumes".into(),
            ));
        }
        self.drained = true;
        self.ctx.split_drained.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Takes the new assignment: a transactional producer per new partition
    /// (fencing its previous owner), its guard restored from the commit
    /// metadata; revoked partitions' open transactions are aborted.
    fn on_rebalance(&mut self) -> Result<(), ServiceError> {
        let topic = self.ctx.topology.input.clone();
        let ids = assigned(&self.consumer, &topic)?;
        let revoked: Vec<i32> = (self.parts.iter().flatten())
            .map(|p| p.id)
            .filter(|id| !ids.contains(id))
            .collect();
        for id in revoked {
            let Some(part) = self.parts[id as usize].take() else {
                continue;
            };
            // A running commit finishes first, never left running; its
            // outcome is the new owner's starting point either way.
            let failed = (part.committing.as_ref())
                .and_then(|c| outcome(c, true, self.ctx, &self.stopping))
                .is_some_and(|r| r.is_err());
            if part.open.is_some() || failed {
                abort(&part.producer);
            }
        }
        let new: Vec<i32> = ids
            .iter()
            .copied()
            .filter(|&id| !matches!(self.parts.get(id as usize), Some(Some(_))))
            .collect();
        if !new.is_empty() {
            let mut producers = Vec::with_capacity(new.len());
            for &id in &new {
                producers.push(clients::transactional_producer(
                    self.ctx.kafka,
                    self.shared.clone(),
                    id,
                )?);
            }
            // Each fences the partition's previous owner: a round trip or
            // two to the coordinator, so all at once.
            std::thread::scope(|scope| {
                let inits: Vec<_> = producers
                    .iter()
                    .map(|p| scope.spawn(move || p.init_transactions(TXN_CALL_TIMEOUT)))
                    .collect();
                inits.into_iter().try_for_each(|h| {
                    h.join()
                        .unwrap_or(Err(KafkaError::MessageProduction(RDKafkaErrorCode::Fail)))
                })
            })?;
            let mut tpl = TopicPartitionList::new();
            for &id in &new {
                tpl.add_partition(&topic, id);
            }
            let committed = self.consumer.committed_offsets(tpl, TXN_CALL_TIMEOUT)?;
            let shards = self.ctx.topology.shard_count;
            for (&id, producer) in new.iter().zip(producers) {
                let elem = committed.find_partition(&topic, id);
                let offset = elem.as_ref().and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
                let mark = elem.as_ref().and_then(|e| offsets::decode(e.metadata()));
                if offset.is_some() {
                    self.check_split_alike(id, mark)?;
                }
                let st = mark.and_then(|m| m.stream_time);
                let mut guard = Guard::new(&self.window_cfg);
                if let Some(st) = st {
                    guard.restore(st);
                }
                let now = Instant::now();
                let part = Part {
                    id,
                    producer: Arc::new(producer),
                    guard,
                    writers: (0..shards)
                        .map(|_| {
                            BatchWriter::grouped(
                                id,
                                self.groupings.len() as u8,
                                self.groupings.fingerprint(),
                            )
                        })
                        .collect(),
                    next_offset: None,
                    committed: offset,
                    committed_st: st,
                    open: None,
                    committing: None,
                    held_since: None,
                    last_commit: now,
                    dirty: false,
                    active: false,
                    last_event: now,
                    idle: false,
                    sent: None,
                    eof: false,
                };
                let slot = id as usize;
                if self.parts.len() <= slot {
                    self.parts.resize_with(slot + 1, || None);
                }
                self.parts[slot] = Some(part);
            }
        }
        PartitionsAssigned {
            topic: &topic,
            partitions: &ids,
            total: self.ctx.topology.input_partitions,
            input: true,
        }
        .emit();
        Ok(())
    }

    /// Refuses an input partition whose last commit was made by a
    /// splitter with other groupings, before a batch of this one's lands
    /// in the shards behind the other's (no counter could read both).
    /// Another tool's commit is not checked.
    fn check_split_alike(
        &self,
        id: i32,
        mark: Option<offsets::InputMark>,
    ) -> Result<(), ServiceError> {
        match mark {
            Some(m) if m.groupings != self.groupings.fingerprint() => {
                Err(ServiceError::OtherGroupBy {
                    what: format!("input partition {id} was split"),
                    configured: self.groupings.setting(),
                })
            }
            _ => Ok(()),
        }
    }

    fn publish(&mut self) {
        if let Some(m) = &mut self.metrics {
            m.batch_end();
            m.publish(&crate::metrics::Totals {
                messages: self.stats.messages,
                bytes: self.stats.bytes,
                rejected: &self.stats.rejected,
                ts_out_of_range: self.stats.ts_out_of_range,
                refusals: &self.stats.refusals,
                groupings: &self.groupings,
            });
        }
    }
}

/// The marker a partition's batches carry now.
fn marker(part: &Part) -> Marker {
    Marker {
        position: part.next_offset.or(part.committed).unwrap_or(0),
        stream_time: part.guard.stream_time(),
        idle: part.idle,
        drained: false,
    }
}

/// Moves a guard's decisions into the batches.
#[cold]
fn settle(part: &mut Part, released: &mut Released, stats: &mut SplitStats) {
    stats.ts_out_of_range += part.guard.take_rejected();
    if !part.guard.has_released() {
        return;
    }
    part.guard.swap_released(released);
    let shards = part.writers.len() as u32;
    for (ts, uid, keys, hash, _) in released.iter_with_extra() {
        part.writers[shard_of(hash, shards) as usize].push_grouped(ts, uid, keys);
    }
    released.clear();
}

impl StageLoop for Splitter<'_> {
    const STAGE: Stage = Stage::Split;

    fn consumer(&self) -> Arc<BaseConsumer<Context>> {
        Arc::clone(&self.consumer)
    }

    fn shared(&self) -> &Shared {
        &self.shared
    }

    fn on_stop(&mut self) -> Result<(), ServiceError> {
        if self.ctx.shutdown_requested() {
            ShutdownRequested.emit();
        }
        self.stopping.store(true, Ordering::Relaxed);
        self.commit_all(true)
    }

    fn done(&self) -> bool {
        // Everything is in the shards; the other stages finish.
        self.drained
    }

    fn on_wait(&mut self) {
        if let Some(m) = &mut self.metrics {
            m.batch_end();
        }
    }

    fn on_rebalance(&mut self) -> Result<(), ServiceError> {
        Splitter::on_rebalance(self)
    }

    fn on_message(&mut self, msg: &BorrowedMessage<'_>) -> Result<(), ServiceError> {
        Splitter::on_message(self, msg)
    }

    fn on_eof(&mut self, partition: i32) -> Result<(), ServiceError> {
        if let Some(Some(part)) = self.parts.get_mut(partition as usize) {
            part.eof = true;
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<(), ServiceError> {
        Splitter::tick(self)
    }
}
