//! Stage 2, count: counts the shard partitions this instance holds, each
//! with its own windower whose sources are the input partitions (their
//! stream times and idleness come from the markers in the batches; the
//! splitter already ran the time guard). A window's count goes to the
//! partials topic when the windower emits it (and again with each
//! correction), then the shard's status (`kafka::partials`).
//!
//! The no-loss rules of `kafka` apply per shard partition: every commit
//! interval the shard's windows are checkpointed to the state topic, the
//! producer is flushed, and the shard offset is committed with every input
//! partition's stream time in the metadata. A counter that takes a shard
//! restores its windows, replays from the committed offset, and holds back
//! windows that were already closed until it has caught up (the end of the
//! partition), so nothing partial overwrites a complete count.

mod assign;

use super::checkpoint::StateStore;
use super::produce::{flush, send};
use super::stage_loop::{self, StageLoop};
use super::{check_fatal, clients, Ctx, Stage};
use crate::group::GroupKeys;
use crate::hash::uid_hash;
use crate::internal_events::{
    BadShardRecord, CommitFailed, InternalEvent, OffsetsCommitted, OutputNotAcknowledged,
    ShardCaughtUp,
};
use crate::kafka::context::{Context, Shared};
use crate::kafka::offsets::{self, SourceTime};
use crate::kafka::partials::{self, Key, Part, Status};
use crate::kafka::shard::Batch;
use crate::kafka::ServiceError;
use crate::metrics::WindowPublisher;
use crate::record::WindowRecord;
use crate::window::size::WindowSize;
use crate::window::{WindowStats, Windower};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{BaseProducer, BaseRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a flush of the partials and checkpoints may take.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for committed offsets and watermarks.
const METADATA_TIMEOUT: Duration = Duration::from_secs(30);

/// What the counter did.
#[derive(Debug, Clone, Default)]
pub(crate) struct CountStats {
    /// Summed over the shards held when the stage ended.
    pub windows: WindowStats,
}

/// One shard partition held by this instance.
struct Shard {
    id: i32,
    windower: Windower,
    /// Next offset to read, once anything was read.
    next_offset: Option<i64>,
    /// The committed offset reading started from, if the group had one.
    start_offset: Option<i64>,
    /// Read what the partition held when it was assigned (see
    /// [`Counter::catch_up`]): held windows are released, and the status
    /// may be written.
    caught_up: bool,
    /// The partition's end (high watermark) when it was assigned.
    end_at_assignment: i64,
    /// The open windows were emitted because every source is idle;
    /// cleared by the next marker of an active source.
    idle_flushed: bool,
    /// Per input partition: the position of its latest marker, and whether
    /// it said the partition is drained.
    positions: Vec<i64>,
    drained: Vec<bool>,
    status_sent: Option<Status>,
    assigned: Instant,
}

impl Shard {
    fn status(&self, drained: Option<&str>) -> Status {
        Status {
            watermark: self.windower.watermark(),
            idle: self.idle_flushed && self.windower.all_idle(),
            sources: self
                .positions
                .iter()
                .enumerate()
                .map(|(p, &pos)| (p as i32, pos))
                .collect(),
            drained: drained.map(str::to_string),
        }
    }

    fn source_times(&self) -> Vec<SourceTime> {
        (0..self.windower.source_count())
            .map(|p| SourceTime {
                partition: p as i32,
                stream_time: self.windower.stream_time(p),
                idle: self.windower.is_idle(p),
                position: self.positions.get(p).copied().unwrap_or(-1),
            })
            .collect()
    }

    /// The next shard offset to read, if known.
    fn position(&self) -> Option<i64> {
        self.next_offset.or(self.start_offset)
    }
}

struct Counter<'a> {
    ctx: &'a Ctx<'a>,
    shared: Arc<Shared>,
    consumer: Arc<BaseConsumer<Context>>,
    /// Watermarks and the state topic, on a connection of their own: the
    /// broker answers a connection's requests in order, so behind the
    /// group consumer's waiting fetch they would wait up to
    /// `fetch.wait.max.ms`.
    meta: BaseConsumer<Context>,
    producer: BaseProducer<Context>,
    /// By shard id.
    shards: Vec<Option<Shard>>,
    records: Vec<WindowRecord>,
    /// The group keys of the event at hand (reused).
    keys: GroupKeys,
    overflow: crate::internal_events::OverflowWatch,
    state: Option<StateStore>,
    /// The sizes counted; the first when records carry no size.
    sizes: Vec<WindowSize>,
    last_commit: Instant,
    metrics: Option<WindowPublisher>,
    drained: bool,
    /// Stats of shards no longer held (so the summary keeps them).
    finished: WindowStats,
}

pub(super) fn run(ctx: &Ctx<'_>) -> Result<CountStats, ServiceError> {
    let mut c = Counter::new(ctx)?;
    let result = stage_loop::run(&mut c, ctx);
    let mut windows = c.finished;
    for shard in c.shards.iter().flatten() {
        add_stats(&mut windows, &shard.windower.stats());
    }
    result.map(|()| CountStats { windows })
}

fn add_stats(into: &mut WindowStats, s: &WindowStats) {
    into.counted += s.counted;
    into.late_corrected += s.late_corrected;
    into.late_dropped += s.late_dropped;
    into.ts_out_of_range += s.ts_out_of_range;
    into.windows_emitted += s.windows_emitted;
    into.corrections_emitted += s.corrections_emitted;
    for (a, b) in into.group_overflow.iter_mut().zip(s.group_overflow) {
        *a += b;
    }
}

impl<'a> Counter<'a> {
    fn new(ctx: &'a Ctx<'a>) -> Result<Self, ServiceError> {
        let shared = Arc::new(Shared::new(None));
        let consumer = Arc::new(clients::stage_consumer(
            ctx.kafka,
            Stage::Count,
            shared.clone(),
        )?);
        consumer.subscribe(&[ctx.topology.shards.as_str()])?;
        let producer = clients::producer(ctx.kafka, shared.clone())?;
        let meta = clients::plain_consumer(ctx.kafka, shared.clone())?;
        Ok(Counter {
            ctx,
            shared,
            consumer,
            meta,
            producer,
            shards: Vec::new(),
            records: Vec::new(),
            keys: GroupKeys::default(),
            overflow: Default::default(),
            state: ctx
                .topology
                .state
                .clone()
                .map(|topic| StateStore::new(topic, ctx.groupings.setting())),
            sizes: ctx.core.window_config().sizes,
            last_commit: Instant::now(),
            metrics: WindowPublisher::if_enabled(),
            drained: false,
            finished: WindowStats::default(),
        })
    }

    fn on_message(&mut self, msg: &BorrowedMessage<'_>) -> Result<(), ServiceError> {
        let Some(Some(shard)) = self.shards.get_mut(msg.partition() as usize) else {
            return Ok(()); // not ours (anymore)
        };
        let offset = msg.offset();
        shard.next_offset = Some(offset + 1);
        let batch = match Batch::parse(msg.payload().unwrap_or(&[])) {
            Ok(b) if b.partition >= 0 => b,
            Ok(_) | Err(_) => {
                BadShardRecord {
                    partition: msg.partition(),
                    offset,
                }
                .emit();
                return Ok(());
            }
        };
        let src = batch.partition as usize;
        if src >= shard.windower.source_count() {
            shard.windower.ensure_sources(src + 1);
            shard.positions.resize(src + 1, -1);
            shard.drained.resize(src + 1, false);
        }
        let groupings = self.ctx.groupings.len();
        if usize::from(batch.groupings) != groupings
            || batch.fingerprint != self.ctx.groupings.fingerprint()
        {
            return Err(ServiceError::OtherGroupBy {
                what: format!(
                    "shard {} holds events of input partition {} split",
                    msg.partition(),
                    batch.partition
                ),
                configured: self.ctx.groupings.setting(),
            });
        }
        let windower = &mut shard.windower;
        let keys = &mut self.keys;
        let mut bad_keys = false;
        let parsed = batch.for_each_grouped(|ts, uid, mut k| {
            if groupings > 0 && !keys.decode(&mut k, groupings) {
                bad_keys = true;
            }
            windower.push_trusted(src, ts, uid, uid_hash(uid), offset, keys.view());
        });
        let parsed = if bad_keys {
            Err(crate::kafka::shard::BadBatch("malformed group keys"))
        } else {
            parsed
        };
        if parsed.is_err() {
            BadShardRecord {
                partition: msg.partition(),
                offset,
            }
            .emit();
        }
        let m = batch.marker;
        // Idleness is news only from a live splitter. A marker read while
        // catching up is the last owner's or the last run's (a drain ends
        // with every partition idle), and its partition may have a backlog
        // now: taking it as idle would let another partition's watermark
        // judge that backlog late. A live splitter renews an idle
        // partition's marker every DISTINCTLY_IDLE_PARTITION_SECONDS.
        let idle = m.idle && shard.caught_up;
        shard
            .windower
            .advance_source(src, m.stream_time, idle, &mut self.records);
        if !idle {
            shard.idle_flushed = false;
        }
        shard.positions[src] = m.position;
        shard.drained[src] = m.drained;
        let id = shard.id;
        // The last record before the end can be a transaction's commit
        // marker, which is no message.
        if !shard.caught_up && offset + 2 >= shard.end_at_assignment {
            self.catch_up(id)?;
        }
        self.produce_partials(id)
    }

    /// The end of a shard partition: ends a catch-up.
    fn on_eof(&mut self, partition: i32) -> Result<(), ServiceError> {
        self.catch_up(partition)
    }

    /// Shard `partition` was read up to where it ended when it was assigned
    /// (or to its end): the windows held back since come out. Not the end
    /// of the partition alone: while splitters write, a fetch is seldom
    /// empty, and librdkafka reports the end only then.
    fn catch_up(&mut self, partition: i32) -> Result<(), ServiceError> {
        let Some(Some(shard)) = self.shards.get_mut(partition as usize) else {
            return Ok(());
        };
        if !shard.caught_up {
            shard.caught_up = true;
            ShardCaughtUp {
                shard: partition,
                seconds: shard.assigned.elapsed().as_secs_f64(),
            }
            .emit();
            shard.windower.release_held(&mut self.records);
            self.produce_partials(partition)?;
        }
        Ok(())
    }

    /// Sends the records the windower of shard `id` emitted as partials.
    fn produce_partials(&mut self, id: i32) -> Result<(), ServiceError> {
        if self.records.is_empty() {
            return Ok(());
        }
        let lead = self.sizes[0];
        for r in self.records.drain(..) {
            let size = r.size.unwrap_or(lead);
            let key = match r.group {
                None => Key::Part {
                    size,
                    start: r.start_ts,
                    shard: id,
                },
                Some(group) => Key::GroupPart {
                    size,
                    start: r.start_ts,
                    shard: id,
                    group,
                },
            };
            let value = partials::encode(&Part {
                end_ts: r.end_ts,
                unique_users: r.unique_users,
                events: r.events,
            });
            send(
                &self.producer,
                BaseRecord::<str, [u8]>::to(&self.ctx.topology.partials)
                    .key(&key.to_string())
                    .partition(0)
                    .payload(&value),
            )?;
        }
        Ok(())
    }

    /// Periodic work: idle flushes, statuses, commits, the end of a drain.
    fn tick(&mut self) -> Result<(), ServiceError> {
        self.ctx.tick_stage(Stage::Count, &self.shared)?;
        self.producer.poll(Duration::ZERO);
        let ids: Vec<i32> = self.shards.iter().flatten().map(|s| s.id).collect();
        for &id in &ids {
            let Some(Some(shard)) = self.shards.get_mut(id as usize) else {
                continue;
            };
            if shard.caught_up && !shard.idle_flushed && shard.windower.all_idle() {
                // The whole input is idle: the last windows come out now.
                shard.windower.flush_idle(&mut self.records);
                shard.idle_flushed = true;
            }
            self.produce_partials(id)?;
            let token = self.drained.then(|| self.ctx.drain_token.clone());
            self.write_status(id, token.as_deref())?;
        }
        self.publish();
        if self.ctx.opts.exit_when_idle && !self.drained && self.input_drained() {
            return self.drain();
        }
        if self.last_commit.elapsed()
            >= Duration::from_secs(self.ctx.kafka.service.commit_interval_seconds)
        {
            self.checkpoint_and_commit(CommitMode::Async)?;
        }
        Ok(())
    }

    /// Writes shard `id`'s status if it changed (only once caught up: a
    /// replaying shard's windows are not complete yet).
    fn write_status(&mut self, id: i32, drained: Option<&str>) -> Result<(), ServiceError> {
        let Some(Some(shard)) = self.shards.get_mut(id as usize) else {
            return Ok(());
        };
        if !shard.caught_up {
            return Ok(());
        }
        let status = shard.status(drained);
        if shard.status_sent.as_ref() == Some(&status) {
            return Ok(());
        }
        send(
            &self.producer,
            BaseRecord::<str, [u8]>::to(&self.ctx.topology.partials)
                .key(&Key::Status { shard: id }.to_string())
                .partition(0)
                .payload(&partials::encode(&status)),
        )?;
        shard.status_sent = Some(status);
        Ok(())
    }

    /// `--exit-when-idle`: every shard is ours, caught up, and every input
    /// partition's splitter said it is drained.
    fn input_drained(&self) -> bool {
        let held: Vec<&Shard> = self.shards.iter().flatten().collect();
        self.ctx.split_drained.load(Ordering::SeqCst)
            && held.len() == self.ctx.topology.shard_count
            && held.iter().all(|s| {
                s.caught_up
                    && s.drained.len() >= self.ctx.topology.input_partitions
                    && s.drained.iter().all(|&d| d)
            })
    }

    /// Emits everything (the input is idle), checkpoints and commits, then
    /// writes each shard's drained status for the summer.
    fn drain(&mut self) -> Result<(), ServiceError> {
        let ids: Vec<i32> = self.shards.iter().flatten().map(|s| s.id).collect();
        for &id in &ids {
            if let Some(Some(shard)) = self.shards.get_mut(id as usize) {
                if !shard.idle_flushed {
                    shard.windower.flush_idle(&mut self.records);
                    shard.idle_flushed = true;
                }
            }
            self.produce_partials(id)?;
        }
        if !self.checkpoint_and_commit(CommitMode::Sync)? {
            return Err(ServiceError::Fatal(
                "input drained, but the partial counts were not acknowledged in time; a rerun \
                 resumes"
                    .into(),
            ));
        }
        let token = self.ctx.drain_token.clone();
        for &id in &ids {
            self.write_status(id, Some(&token))?;
        }
        self.drained = true;
        self.ctx.count_drained.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// A checkpoint round of every held shard, a flush, then the commit of
    /// the shard offsets. Returns whether the output was acknowledged.
    fn checkpoint_and_commit(&mut self, mode: CommitMode) -> Result<bool, ServiceError> {
        self.last_commit = Instant::now();
        if self.shards.iter().flatten().next().is_none() {
            return Ok(true);
        }
        let mut checkpointed: Vec<(i32, i64)> = Vec::new();
        if let Some(state) = &mut self.state {
            let mut records = state.begin_round();
            for shard in self.shards.iter_mut().flatten() {
                if let Some(pos) = shard.position() {
                    let sources = shard.source_times();
                    state.checkpoint(
                        shard.id,
                        &mut shard.windower,
                        self.ctx.kind,
                        pos,
                        sources,
                        &mut records,
                    );
                    checkpointed.push((shard.id, pos));
                }
            }
            state.send(&self.producer, &records)?;
        }
        if let Err(e) = flush(&self.producer, FLUSH_TIMEOUT) {
            OutputNotAcknowledged { error: &e }.emit();
            if let Some(state) = &mut self.state {
                state.not_acknowledged();
            }
            return Ok(false);
        }
        self.check_delivered()?;
        if let Some(state) = &mut self.state {
            let marks = state.acknowledged();
            state.send(&self.producer, &marks)?;
            if matches!(mode, CommitMode::Sync) {
                // Stopping or drained: the marks are what the next owner
                // restores from.
                if let Err(e) = flush(&self.producer, FLUSH_TIMEOUT) {
                    OutputNotAcknowledged { error: &e }.emit();
                }
            }
        }
        let mut tpl = TopicPartitionList::new();
        for shard in self.shards.iter_mut().flatten() {
            if let Some(&(_, pos)) = checkpointed.iter().find(|(id, _)| *id == shard.id) {
                // The checkpoint is durable: replay can start where it stands.
                let n = shard.windower.source_count();
                shard.windower.checkpointed(&vec![pos; n]);
            }
            let Some(next) = shard.position() else {
                continue;
            };
            let safe = (0..shard.windower.source_count())
                .filter_map(|p| shard.windower.min_offset_needed(p))
                .fold(next, i64::min);
            let mut elem = tpl.add_partition(&self.ctx.topology.shards, shard.id);
            let _ = elem.set_offset(Offset::Offset(safe));
            elem.set_metadata(offsets::encode_sources(shard.source_times()));
        }
        if tpl.count() == 0 {
            return Ok(true);
        }
        match self.consumer.commit(&tpl, mode) {
            Ok(()) => OffsetsCommitted {
                partitions: tpl.count(),
            }
            .emit(),
            Err(error) => {
                let retried = matches!(mode, CommitMode::Async);
                CommitFailed {
                    error: &error,
                    retried,
                    before_revoke: false,
                }
                .emit();
                if !retried {
                    return Err(error.into());
                }
            }
        }
        // What to commit if the shards are revoked before the next round.
        *self.shared.safe.lock().expect("not poisoned") = Some(tpl);
        Ok(true)
    }

    /// Fails if a partial or checkpoint was lost for good.
    fn check_delivered(&self) -> Result<(), ServiceError> {
        if self.shared.delivery_failures.load(Ordering::SeqCst) > 0 {
            let (topic, reason) = self
                .shared
                .last_delivery_error
                .lock()
                .expect("not poisoned")
                .clone()
                .unwrap_or_default();
            return Err(ServiceError::Delivery { topic, reason });
        }
        check_fatal(&self.shared)
    }

    fn publish(&mut self) {
        if !self.ctx.groupings.is_empty() {
            let mut overflow = self.finished.group_overflow;
            for shard in self.shards.iter().flatten() {
                for (o, n) in overflow.iter_mut().zip(shard.windower.group_overflow()) {
                    *o += n;
                }
            }
            self.overflow.check(&self.ctx.groupings, &overflow);
        }
        if let Some(m) = &mut self.metrics {
            m.publish(
                self.shards.iter().flatten().map(|s| &s.windower),
                &self.finished,
            );
        }
    }
}

impl StageLoop for Counter<'_> {
    const STAGE: Stage = Stage::Count;

    fn consumer(&self) -> Arc<BaseConsumer<Context>> {
        Arc::clone(&self.consumer)
    }

    fn shared(&self) -> &Shared {
        &self.shared
    }

    fn on_stop(&mut self) -> Result<(), ServiceError> {
        if self.drained {
            return Ok(());
        }
        // A stop that cannot checkpoint or commit (the group expired this
        // member while the broker was away, say) costs the next owner a
        // longer replay, never a count.
        match self.checkpoint_and_commit(CommitMode::Sync) {
            // Logged as `CommitFailed`.
            Ok(_) | Err(ServiceError::Client(KafkaError::ConsumerCommit(_))) => Ok(()),
            Err(ServiceError::Client(error)) => {
                OutputNotAcknowledged { error: &error }.emit();
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn on_rebalance(&mut self) -> Result<(), ServiceError> {
        Counter::on_rebalance(self)
    }

    fn on_message(&mut self, msg: &BorrowedMessage<'_>) -> Result<(), ServiceError> {
        Counter::on_message(self, msg)
    }

    fn on_eof(&mut self, partition: i32) -> Result<(), ServiceError> {
        Counter::on_eof(self, partition)
    }

    fn tick(&mut self) -> Result<(), ServiceError> {
        Counter::tick(self)
    }
}
