//! The split stage's transactions: one per input partition, carrying its
//! batches, a marker to every shard and the input offset; aborted and
//! rewound on failure.
//!
//! A commit waits for the broker (the offsets to the group coordinator,
//! then the commit and its markers), so it runs on a thread of its own
//! while the stage goes on decoding: what arrives meanwhile is batched for
//! the next transaction, which begins once the commit is known. The
//! outcome is collected at the next tick; until then nothing of the
//! partition is sent, and past [`MAX_PENDING_BYTES`] the stage waits.

use super::{marker, settle, Part, Splitter};
use crate::health::health;
use crate::internal_events::{ConsumeFailed, InternalEvent, TransactionAborted};
use crate::kafka::context::Context;
use crate::kafka::offsets;
use crate::kafka::service::produce::{flush, send};
use crate::kafka::service::{Ctx, Stage, TICK};
use crate::kafka::shard::Marker;
use crate::kafka::ServiceError;
use crate::window::guard::Guard;
use rdkafka::consumer::{Consumer, ConsumerGroupMetadata};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, PurgeConfig};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a partition's transaction commits while events flow: the
/// latency the stage adds, against a commit's round trips.
pub(super) const TXN_INTERVAL: Duration = Duration::from_millis(500);
/// A guard holding events for this long decides them (a transaction cannot
/// commit meanwhile).
pub(super) const SETTLE_AFTER: Duration = Duration::from_secs(5);
/// How long a transactional call may take before it is retried or aborted.
pub(super) const TXN_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an abort may take (its records are purged, not sent).
const ABORT_TIMEOUT: Duration = Duration::from_secs(5);
/// Batched bytes of a partition beyond which the stage waits for its
/// commit rather than buffer more (a slow or absent broker).
pub(super) const MAX_PENDING_BYTES: usize = 32 << 20;

/// A commit running on its own thread, and what it commits.
pub(super) struct Committing {
    marker: Marker,
    next_offset: Option<i64>,
    stream_time: Option<u64>,
    done: mpsc::Receiver<Result<(), KafkaError>>,
}

impl Splitter<'_> {
    /// Commits the transaction of every partition that is due (`force`:
    /// every one that can, as when stopping, and waits for the outcome).
    pub(super) fn commit_all(&mut self, force: bool) -> Result<(), ServiceError> {
        self.collect_commits(force)?;
        let lease = Duration::from_secs(self.ctx.kafka.service.idle_partition_seconds);
        let due: Vec<i32> = self
            .parts
            .iter_mut()
            .flatten()
            .filter_map(|part| {
                if part.committing.is_some() {
                    return None;
                }
                if part.guard.held() == 0 {
                    part.held_since = None;
                } else {
                    if force {
                        return None; // replayed by the next owner
                    }
                    // Held events keep the transaction open (their offsets
                    // are read, but they are in no batch): not for long.
                    let since = *part.held_since.get_or_insert_with(Instant::now);
                    if since.elapsed() < SETTLE_AFTER {
                        return None;
                    }
                    part.guard.settle();
                    part.held_since = None;
                }
                // Stream times travel with the next transaction; a change of
                // idleness is news for the shards at once. Idleness is a
                // lease: renewed while it lasts, because a counter that
                // takes a shard over restores stream times but not
                // idleness (see `count::assign`).
                let idle_changed = part.sent.is_none_or(|s| s.idle != part.idle);
                let renew = part.idle && part.last_commit.elapsed() >= lease;
                let due = force
                    || (part.dirty && part.last_commit.elapsed() >= TXN_INTERVAL)
                    || idle_changed
                    || renew;
                due.then_some(part.id)
            })
            .collect();
        for &id in &due {
            if let Some(Some(part)) = self.parts.get_mut(id as usize) {
                settle(part, &mut self.released, &mut self.stats);
            }
        }
        self.start_commits(&due, false)?;
        if force {
            self.collect_commits(true)?;
            // Stopping: what could not commit is read again by the next
            // owner; abort it now rather than leave readers waiting.
            for part in self.parts.iter_mut().flatten() {
                if part.open.is_some() {
                    abort(&part.producer);
                }
            }
        }
        Ok(())
    }

    /// Sends the batches and markers of partitions `ids` and starts
    /// committing their transactions with the input offsets.
    pub(super) fn start_commits(&mut self, ids: &[i32], drained: bool) -> Result<(), ServiceError> {
        for &id in ids {
            let Some(Some(part)) = self.parts.get_mut(id as usize) else {
                continue;
            };
            let mut m = marker(part);
            m.drained = drained;
            let sent =
                (0..part.writers.len()).try_for_each(|shard| send_batch(self.ctx, part, shard, m));
            if let Err(e) = sent {
                self.fail(id, e)?;
                continue;
            }
            let fingerprint = self.groupings.fingerprint();
            let offsets = part.next_offset.map(|next| {
                let mut tpl = TopicPartitionList::new();
                let mut elem = tpl.add_partition(&self.ctx.topology.input, id);
                let _ = elem.set_offset(Offset::Offset(next));
                elem.set_metadata(offsets::encode(offsets::InputMark {
                    stream_time: part.guard.stream_time(),
                    groupings: fingerprint,
                }));
                tpl
            });
            let group = self.consumer.group_metadata();
            let producer = Arc::clone(&part.producer);
            let stopping = Arc::clone(&self.stopping);
            let (tx, done) = mpsc::channel();
            std::thread::Builder::new()
                .name("split-commit".into())
                .spawn(move || {
                    let _ = tx.send(commit_offsets(&producer, offsets, group, &stopping));
                })
                .map_err(|e| ServiceError::Fatal(format!("starting a commit thread: {e}")))?;
            part.open = None;
            part.dirty = false;
            part.last_commit = Instant::now();
            part.committing = Some(Committing {
                marker: m,
                next_offset: part.next_offset,
                stream_time: part.guard.stream_time(),
                done,
            });
        }
        Ok(())
    }

    /// Takes the outcome of every finished commit (`wait`: of every one
    /// running). Returns how many committed.
    pub(super) fn collect_commits(&mut self, wait: bool) -> Result<usize, ServiceError> {
        let mut committed = 0;
        for id in 0..self.parts.len() as i32 {
            if self.collect_commit(id, wait)? == Some(true) {
                committed += 1;
            }
        }
        Ok(committed)
    }

    /// The outcome of partition `id`'s commit, if one was running and has
    /// finished (`wait`: once it has): whether it committed.
    pub(super) fn collect_commit(
        &mut self,
        id: i32,
        wait: bool,
    ) -> Result<Option<bool>, ServiceError> {
        let Some(Some(part)) = self.parts.get_mut(id as usize) else {
            return Ok(None);
        };
        let Some(c) = &part.committing else {
            return Ok(None);
        };
        let Some(result) = outcome(c, wait, self.ctx, &self.stopping) else {
            return Ok(None);
        };
        let c = part.committing.take().expect("checked above");
        match result {
            Ok(()) => {
                part.sent = Some(c.marker);
                part.committed = c.next_offset.or(part.committed);
                part.committed_st = c.stream_time;
                Ok(Some(true))
            }
            Err(e) => {
                self.fail(id, e)?;
                Ok(Some(false))
            }
        }
    }

    /// A transaction failed: aborted (the partition is read again from its
    /// last commit), or, if this instance was fenced, the partition dropped.
    fn fail(&mut self, id: i32, e: KafkaError) -> Result<(), ServiceError> {
        let Some(Some(part)) = self.parts.get_mut(id as usize) else {
            return Ok(());
        };
        if txn_error(&e).is_some_and(|t| t.code() == RDKafkaErrorCode::FencedInstanceId) {
            // Another live instance took this one's name in the group: the
            // service stops (one line says why), nothing to read again.
            crate::kafka::context::set_fatal(
                &self.shared,
                crate::kafka::context::FatalError::NameTaken(e.to_string()),
            );
            return Ok(());
        }
        let fenced = txn_error(&e).is_some_and(|t| t.is_fatal());
        TransactionAborted {
            partition: id,
            error: &e,
            fenced,
        }
        .emit();
        if fenced {
            // Another instance owns the partition now.
            self.parts[id as usize] = None;
            Ok(())
        } else {
            abort(&part.producer);
            self.rewind(id)
        }
    }

    /// After an abort: back to the last committed offset and stream time.
    pub(super) fn rewind(&mut self, id: i32) -> Result<(), ServiceError> {
        let Some(Some(part)) = self.parts.get_mut(id as usize) else {
            return Ok(());
        };
        debug_assert!(part.committing.is_none(), "a commit is never abandoned");
        part.open = None;
        part.dirty = false;
        part.eof = false;
        part.held_since = None;
        part.guard = Guard::new(&self.window_cfg);
        if let Some(st) = part.committed_st {
            part.guard.restore(st);
        }
        for w in &mut part.writers {
            let _ = w.take(Marker::default());
        }
        let offset = part.committed.map_or(Offset::Beginning, Offset::Offset);
        part.next_offset = part.committed;
        // Asynchronous: the partition may be on its way to another owner
        // (then the seek is moot, and must not wait).
        if let Err(e) = self
            .consumer
            .seek(&self.ctx.topology.input, id, offset, Duration::ZERO)
        {
            ConsumeFailed { error: &e }.emit();
        }
        Ok(())
    }
}

/// Sends shard `shard`'s batch of `part` (possibly a marker alone) in the
/// partition's transaction, beginning one if none is open.
pub(super) fn send_batch(
    ctx: &Ctx<'_>,
    part: &mut Part,
    shard: usize,
    m: Marker,
) -> Result<(), KafkaError> {
    if part.open.is_none() {
        part.producer.begin_transaction()?;
        part.open = Some(Instant::now());
    }
    let record = part.writers[shard].take(m);
    send(
        &part.producer,
        BaseRecord::<(), [u8]>::to(&ctx.topology.shards)
            .partition(shard as i32)
            .payload(&record),
    )
}

/// Aborts the open transaction. Its queued and in-flight records are purged
/// first, and their delivery reports served: librdkafka's abort waits for
/// them, and nothing else polls this producer meanwhile.
pub(super) fn abort(producer: &BaseProducer<Context>) {
    producer.purge(PurgeConfig::default().queue().inflight());
    let deadline = Instant::now() + ABORT_TIMEOUT;
    while producer.in_flight_count() > 0 && Instant::now() < deadline {
        producer.poll(Duration::from_millis(10));
    }
    // Fails when fenced or when nothing is open: either way nothing of it
    // becomes readable.
    let _ = producer.abort_transaction(ABORT_TIMEOUT);
}

/// The outcome of a commit, once it has finished (`wait`: waits for it).
pub(super) fn outcome(
    c: &Committing,
    wait: bool,
    ctx: &Ctx<'_>,
    stopping: &AtomicBool,
) -> Option<Result<(), KafkaError>> {
    loop {
        match c
            .done
            .recv_timeout(if wait { TICK } else { Duration::ZERO })
        {
            Ok(r) => return Some(r),
            Err(RecvTimeoutError::Timeout) if wait => {
                // Waiting out a broker that is away: a stop still ends the
                // commit's retries.
                health().beat_stage(Stage::Split as usize);
                if ctx.stopping() {
                    stopping.store(true, Ordering::Relaxed);
                }
            }
            Err(RecvTimeoutError::Timeout) => return None,
            Err(RecvTimeoutError::Disconnected) => {
                return Some(Err(KafkaError::MessageProduction(RDKafkaErrorCode::Fail)))
            }
        }
    }
}

/// Adds the input offsets to the open transaction and commits it,
/// retrying what librdkafka says is retriable (a broker briefly away) until
/// the stage stops. Runs on a commit thread.
fn commit_offsets(
    producer: &BaseProducer<Context>,
    offsets: Option<TopicPartitionList>,
    group: Option<ConsumerGroupMetadata>,
    stopping: &AtomicBool,
) -> Result<(), KafkaError> {
    if let Some(tpl) = offsets {
        let group = group.ok_or(KafkaError::MessageProduction(RDKafkaErrorCode::State))?;
        producer.send_offsets_to_transaction(&tpl, &group, TXN_CALL_TIMEOUT)?;
    }
    // Flushed here, so that the commit's own flush finds nothing to wait for.
    flush(producer, TXN_CALL_TIMEOUT)?;
    loop {
        match producer.commit_transaction(TXN_CALL_TIMEOUT) {
            Ok(()) => return Ok(()),
            Err(e)
                if txn_error(&e).is_some_and(|t| t.is_retriable())
                    && !stopping.load(Ordering::Relaxed) =>
            {
                continue
            }
            Err(e) => return Err(e),
        }
    }
}

fn txn_error(e: &KafkaError) -> Option<&rdkafka::error::RDKafkaError> {
    match e {
        KafkaError::Transaction(t) => Some(t),
        _ => None,
    }
}
