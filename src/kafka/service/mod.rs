//! The service loop of `distinctly run` (mechanism in the module docs of
//! `kafka`): consume, decode, window, and the periodic tick.
//!
//! ```text
//! mod.rs      the loop, per-message work, rebalances, the tick
//! produce.rs  output records and dead-letter copies
//! commit.rs   safe offsets, flush-then-commit
//! ```

mod commit;
mod produce;

use super::config::KafkaConfig;
use super::context::{Context, FatalError, Shared};
use super::{offsets, ServiceError};
use crate::config::CoreConfig;
use crate::decode::Decoder;
use crate::hash::uid_hash;
use crate::metrics::events::{self as metric_events, KafkaErrorKind};
use crate::metrics::{names as metric_names, Publisher};
use crate::record::WindowRecord;
use crate::reject::{Reject, RejectCounts};
use crate::window::{WindowStats, Windower};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::BaseProducer;
use rdkafka::Message;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Exit once every assigned partition has been read to its end and the
    /// open windows are emitted and acknowledged (benchmarks, tests, batch
    /// back-fills). Offsets are committed as if the service had stopped,
    /// so a later run continues without loss.
    pub exit_when_idle: bool,
}

/// What a run did (printed on exit).
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub messages: u64,
    pub bytes: u64,
    pub rejected: RejectCounts,
    pub windows: WindowStats,
    pub records_produced: u64,
    pub dlq_produced: u64,
    pub elapsed: Duration,
}

/// Per assigned partition.
struct Partition {
    id: i32,
    /// Next offset to read, once anything was read since the assignment.
    next_offset: Option<i64>,
    last_event: Instant,
    /// A message arrived since the last tick (the clock is read per tick,
    /// not per message: on some VMs reading it costs a syscall).
    active: bool,
    /// Reached the end of the partition since the last message.
    eof: bool,
    idle: bool,
}

/// How long a partition must be at its end before `--exit-when-idle` exits.
const EXIT_QUIET: Duration = Duration::from_millis(500);
const TICK: Duration = Duration::from_millis(100);

struct Service<'a> {
    core: &'a CoreConfig,
    kafka: &'a KafkaConfig,
    shared: Arc<Shared>,
    producer: BaseProducer<Context>,
    decoder: Decoder,
    windower: Windower,
    partitions: Vec<Partition>,
    by_id: HashMap<i32, usize>,
    records: Vec<WindowRecord>,
    record_buf: Vec<u8>,
    summary: RunSummary,
    assigned: bool,
    /// All partitions of the input topic are assigned to this instance.
    /// Only then are records produced and offsets committed: a window
    /// counted from some partitions is partial, and committing past its
    /// events would lose the others' share for good.
    complete: bool,
    open_flushed: bool,
    last_message: Instant,
    /// A message arrived since the last tick.
    active: bool,
    last_commit: Instant,
    /// Exported metrics, when an exporter runs.
    metrics: Option<Publisher>,
}

/// Runs until `shutdown` is set (SIGTERM/SIGINT), a fatal error, or, with
/// `exit_when_idle`, the end of the input.
pub fn run(
    core: &CoreConfig,
    kafka: &KafkaConfig,
    opts: RunOptions,
    shutdown: &AtomicBool,
) -> Result<RunSummary, ServiceError> {
    core.validate()?;
    let started = Instant::now();
    let shared = Arc::new(Shared {
        output_topic: kafka.env.service_output_topic.clone(),
        ..Shared::default()
    });
    let consumer: BaseConsumer<Context> = kafka.consumer_config().create_with_context(Context {
        shared: shared.clone(),
        role: "consumer",
    })?;
    let producer: BaseProducer<Context> = kafka.producer_config().create_with_context(Context {
        shared: shared.clone(),
        role: "producer",
    })?;
    consumer.subscribe(&[kafka.env.service_input_topic.as_str()])?;
    crate::diag!(
        "run: {} -> {} via {} (group {}, counter {})",
        kafka.env.service_input_topic,
        kafka.env.service_output_topic,
        kafka.bootstrap_servers(),
        kafka.env.service_group_id,
        core.counter_kind()?,
    );
    let mut svc = Service {
        core,
        kafka,
        shared,
        producer,
        decoder: Decoder::new(),
        windower: Windower::new(core.window_config(), core.counter_kind()?),
        partitions: Vec::new(),
        by_id: HashMap::new(),
        records: Vec::new(),
        record_buf: Vec::with_capacity(256),
        summary: RunSummary::default(),
        assigned: false,
        complete: false,
        open_flushed: false,
        last_message: Instant::now(),
        active: false,
        last_commit: Instant::now(),
        metrics: Publisher::if_enabled(core.counter_kind()?),
    };
    if svc.metrics.is_some() {
        metric_events::register_kafka();
    }
    let mut last_tick = Instant::now();
    let mut polls: u32 = 0;
    loop {
        if shutdown.load(Ordering::Relaxed) {
            crate::diag!("stopping: committing what is safe");
            svc.produce_records()?;
            svc.commit(&consumer, CommitMode::Sync, None)?;
            break;
        }
        // A batch is what the consumer hands over without waiting: once
        // its queue is empty the batch ends, before blocking for more.
        let polled = match consumer.poll(Duration::ZERO) {
            Some(m) => Some(m),
            None => {
                if let Some(m) = &mut svc.metrics {
                    m.batch_end();
                }
                consumer.poll(TICK)
            }
        };
        // Rebalance callbacks run inside `poll`: rebuild state before
        // handling a message that may belong to the new assignment.
        if svc.shared.rebalanced.swap(false, Ordering::SeqCst) {
            svc.on_rebalance(&consumer)?;
        }
        let mut was_message = false;
        match polled {
            None => {}
            Some(Ok(msg)) => {
                svc.on_message(&consumer, &msg)?;
                was_message = true;
            }
            Some(Err(KafkaError::PartitionEOF(p))) => svc.on_eof(p),
            Some(Err(e)) => svc.on_consume_error(e),
        }
        // Per message only what is needed; the rest once per tick.
        if !svc.records.is_empty() {
            svc.produce_records()?;
            svc.producer.poll(Duration::ZERO);
        }
        polls = polls.wrapping_add(1);
        if (!was_message || polls % 16 == 0) && last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            svc.check_fatal()?;
            svc.producer.poll(Duration::ZERO);
            if svc.tick(&consumer, opts)? {
                break;
            }
        }
    }
    svc.publish();
    svc.summary.windows = svc.windower.stats();
    svc.summary.elapsed = started.elapsed();
    Ok(svc.summary)
}

impl Service<'_> {
    /// Copies the loop's totals into the exported metrics.
    fn publish(&mut self) {
        if let Some(m) = &mut self.metrics {
            m.batch_end();
            m.publish(
                crate::metrics::Totals {
                    messages: self.summary.messages,
                    bytes: self.summary.bytes,
                    rejected: &self.summary.rejected,
                },
                &self.windower,
            );
            metrics::gauge!(metric_names::ASSIGNED_PARTITIONS).set(self.partitions.len() as f64);
            let paused = self.assigned && !self.complete;
            metrics::gauge!(metric_names::OUTPUT_PAUSED).set(if paused { 1.0 } else { 0.0 });
        }
    }

    fn check_fatal(&self) -> Result<(), ServiceError> {
        match self.shared.fatal.lock().expect("not poisoned").clone() {
            None => Ok(()),
            Some(FatalError::Authentication(m)) => Err(ServiceError::Authentication(m)),
            Some(FatalError::Other(m)) => Err(ServiceError::Fatal(m)),
        }
    }

    /// Rebuilds all state for the new assignment: windows and guards start
    /// empty, stream times come back from the commit metadata, and replay
    /// from the committed (safe) offsets fills the windows again.
    fn on_rebalance(&mut self, consumer: &BaseConsumer<Context>) -> Result<(), ServiceError> {
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
                idle: false,
            })
            .collect();
        self.assigned = !ids.is_empty();
        self.open_flushed = false;
        let total = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(30))?
            .topics()
            .iter()
            .find(|t| t.name() == topic.as_str())
            .map_or(0, |t| t.partitions().len());
        self.complete = self.assigned && ids.len() == total;
        if self.assigned && !self.complete {
            // Nothing is committed or produced until all partitions are back
            // (run one instance per consumer group).
            *self.shared.safe.lock().expect("not poisoned") = None;
            crate::diag!(
                "holding {} of {total} partitions of {topic}: output and commits \
                 paused until all are assigned (run one instance per consumer group)",
                ids.len()
            );
        }
        if self.assigned {
            let committed = consumer.committed_offsets(assignment, Duration::from_secs(30))?;
            for e in committed.elements_for_topic(topic) {
                if let (Some(&src), Some(st)) = (
                    self.by_id.get(&e.partition()),
                    offsets::decode(e.metadata()),
                ) {
                    self.windower.restore(src, st);
                }
            }
        }
        crate::diag!("assigned partitions {ids:?} of {topic}");
        Ok(())
    }

    fn on_message(
        &mut self,
        consumer: &BaseConsumer<Context>,
        msg: &BorrowedMessage<'_>,
    ) -> Result<(), ServiceError> {
        let src = match self.by_id.get(&msg.partition()) {
            Some(&src) => src,
            None => {
                // A partition we were not told about yet: rebuild from the
                // current assignment, which includes it.
                self.on_rebalance(consumer)?;
                match self.by_id.get(&msg.partition()) {
                    Some(&src) => src,
                    None => return Ok(()), // not ours (anymore): not counted
                }
            }
        };
        self.active = true;
        self.open_flushed = false;
        if let Some(m) = &mut self.metrics {
            if m.batch_message() {
                m.batch_end();
            }
        }
        let part = &mut self.partitions[src];
        part.next_offset = Some(msg.offset() + 1);
        part.active = true;
        part.eof = false;
        part.idle = false;
        self.broker_back();
        let payload = msg.payload().unwrap_or(&[]);
        self.summary.messages += 1;
        self.summary.bytes += payload.len() as u64;
        let result = if payload.len() > self.core.max_message_bytes {
            Err(Reject::TooLarge)
        } else {
            match self.decoder.decode(payload) {
                Ok(event) => {
                    let hash = uid_hash(event.uid);
                    self.windower.push_from(
                        src,
                        event.ts,
                        event.uid,
                        hash,
                        msg.offset(),
                        &mut self.records,
                    );
                    Ok(())
                }
                Err(reason) => Err(reason),
            }
        };
        if let Err(reason) = result {
            self.summary.rejected.add(reason);
            self.dead_letter(msg, payload, reason);
        }
        Ok(())
    }

    fn on_eof(&mut self, partition: i32) {
        if let Some(&src) = self.by_id.get(&partition) {
            self.partitions[src].eof = true;
        }
        self.broker_back();
    }

    /// Logs the end of an outage once (a plain load per message otherwise).
    #[inline]
    fn broker_back(&self) {
        if self.shared.broker_down.load(Ordering::Relaxed)
            && self.shared.broker_down.swap(false, Ordering::Relaxed)
        {
            crate::diag!("broker reachable again");
        }
    }

    fn on_consume_error(&mut self, e: KafkaError) {
        match e.rdkafka_error_code() {
            // Also reported per partition as `KafkaError::PartitionEOF`.
            Some(RDKafkaErrorCode::PartitionEOF) => {}
            Some(
                RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::Resolve,
            ) => {
                metric_events::kafka_error(KafkaErrorKind::BrokerUnreachable);
                if !self.shared.broker_down.swap(true, Ordering::Relaxed) {
                    crate::diag!("consumer: broker unreachable, retrying: {e}");
                }
            }
            _ => {
                metric_events::kafka_error(KafkaErrorKind::Consume);
                crate::diag!("consumer: {e}");
            }
        }
    }

    /// Periodic work; returns true when the service should exit.
    fn tick(
        &mut self,
        consumer: &BaseConsumer<Context>,
        opts: RunOptions,
    ) -> Result<bool, ServiceError> {
        self.publish();
        if !self.assigned {
            return Ok(false);
        }
        let now = Instant::now();
        if std::mem::take(&mut self.active) {
            self.last_message = now;
        }
        let idle_after = Duration::from_secs(self.kafka.service.idle_partition_seconds);
        for (src, part) in self.partitions.iter_mut().enumerate() {
            if std::mem::take(&mut part.active) {
                part.last_event = now;
            }
            if !part.idle && part.last_event.elapsed() >= idle_after {
                part.idle = true;
                self.windower.set_idle(src, true, &mut self.records);
            }
        }
        if !self.open_flushed && self.partitions.iter().all(|p| p.idle) {
            // The whole input is idle: the last minutes come out now.
            self.windower.flush_idle(&mut self.records);
            self.open_flushed = true;
        }
        // Caught up: every partition of the topic is ours and at its end (a
        // partial assignment can be "at its end" with data still elsewhere).
        let caught_up = self.complete && self.partitions.iter().all(|p| p.eof);
        if caught_up {
            self.windower.release_held(&mut self.records);
        }
        self.produce_records()?;
        if opts.exit_when_idle && caught_up && self.last_message.elapsed() >= EXIT_QUIET {
            // Commit as if stopping (open windows stay replayable), then
            // emit everything.
            let safe = self.safe_offsets();
            self.windower.finish(&mut self.records);
            self.produce_records()?;
            if !self.commit(consumer, CommitMode::Sync, Some(safe))? {
                return Err(ServiceError::Fatal(
                    "input drained, but the output was not acknowledged in time; \
                     nothing committed, a rerun resumes"
                        .into(),
                ));
            }
            crate::diag!("input drained, exiting");
            return Ok(true);
        }
        if self.last_commit.elapsed()
            >= Duration::from_secs(self.kafka.service.commit_interval_seconds)
        {
            self.commit(consumer, CommitMode::Async, None)?;
        }
        Ok(false)
    }
}
