//! The service loop of `distinctly run` (mechanism in the module docs of
//! `kafka`): consume, decode, window, and the periodic tick.
//!
//! ```text
//! mod.rs         construction, the loop, per-message work, the tick
//! assignment.rs  the partitions held: rebalances, idleness, readiness
//! produce.rs     output records and dead-letter copies
//! checkpoint.rs  window checkpoints to the state topic, and their restore
//! commit.rs      safe offsets, flush-then-commit
//! ```

mod assignment;
mod checkpoint;
mod commit;
mod produce;

use super::config::KafkaConfig;
use super::context::{Context, FatalError, Shared};
use super::ServiceError;
use crate::config::CoreConfig;
use crate::counter::CounterKind;
use crate::decode::Decoder;
use crate::hash::uid_hash;
use crate::health::health;
use crate::internal_events::{
    register_kafka, ConsumeFailed, InputDrained, InternalEvent, MessageRejected, ServiceStarted,
    ShutdownRequested,
};
use crate::metrics::Publisher;
use crate::record::WindowRecord;
use crate::reject::{Reject, RejectCounts};
use crate::window::{WindowStats, Windower};
use assignment::{Assignment, Partition, SourceIndex};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::BaseProducer;
use rdkafka::Message;
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

/// What a run did (logged on exit).
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
    by_id: SourceIndex,
    records: Vec<WindowRecord>,
    record_buf: Vec<u8>,
    summary: RunSummary,
    assignment: Assignment,
    /// The open windows were emitted because the whole input went idle;
    /// cleared by the next message.
    idle_flushed: bool,
    last_message: Instant,
    /// A message arrived since the last tick.
    active: bool,
    last_commit: Instant,
    /// Exported metrics, when an exporter runs.
    metrics: Option<Publisher>,
    /// Checkpoints, unless `KAFKA_SERVICE_STATE_TOPIC` is empty.
    state: Option<checkpoint::StateStore>,
    kind: CounterKind,
}

/// Runs until `shutdown` is set (SIGTERM/SIGINT), a fatal error, or, with
/// `exit_when_idle`, the end of the input.
pub fn run(
    core: &CoreConfig,
    kafka: &KafkaConfig,
    opts: RunOptions,
    shutdown: &AtomicBool,
) -> Result<RunSummary, ServiceError> {
    let started = Instant::now();
    let (mut svc, consumer) = Service::new(core, kafka)?;
    svc.run(&consumer, opts, shutdown)?;
    svc.publish();
    svc.summary.windows = svc.windower.stats();
    svc.summary.elapsed = started.elapsed();
    Ok(svc.summary)
}

impl<'a> Service<'a> {
    /// Creates both clients and subscribes; nothing is read yet.
    fn new(
        core: &'a CoreConfig,
        kafka: &'a KafkaConfig,
    ) -> Result<(Self, BaseConsumer<Context>), ServiceError> {
        core.validate()?;
        let kind = core.counter_kind()?;
        let state_topic = kafka.state_topic();
        let shared = Arc::new(Shared::new(
            &kafka.env.service_output_topic,
            state_topic.clone(),
        ));
        let consumer: BaseConsumer<Context> =
            kafka.consumer_config().create_with_context(Context {
                shared: shared.clone(),
                role: "consumer",
            })?;
        let producer: BaseProducer<Context> =
            kafka.producer_config().create_with_context(Context {
                shared: shared.clone(),
                role: "producer",
            })?;
        consumer.subscribe(&[kafka.env.service_input_topic.as_str()])?;
        ServiceStarted { core, kafka }.emit();
        let metrics = Publisher::if_enabled(kind);
        if metrics.is_some() {
            register_kafka();
        }
        let mut windower = Windower::new(core.window_config(), kind)
            .map_err(|e| crate::config::invalid("DISTINCTLY_TIMEZONE", e.0))?;
        if state_topic.is_some() {
            windower.track_freed();
        }
        let svc = Service {
            core,
            kafka,
            shared,
            producer,
            decoder: Decoder::new(),
            windower,
            partitions: Vec::new(),
            by_id: SourceIndex::new(),
            records: Vec::new(),
            record_buf: Vec::with_capacity(256),
            summary: RunSummary::default(),
            assignment: Assignment::None,
            idle_flushed: false,
            last_message: Instant::now(),
            active: false,
            last_commit: Instant::now(),
            metrics,
            state: state_topic.map(checkpoint::StateStore::new),
            kind,
        };
        Ok((svc, consumer))
    }

    /// The loop: one message at a time, the periodic work once per tick.
    fn run(
        &mut self,
        consumer: &BaseConsumer<Context>,
        opts: RunOptions,
        shutdown: &AtomicBool,
    ) -> Result<(), ServiceError> {
        let mut last_tick = Instant::now();
        let mut polls: u32 = 0;
        loop {
            if shutdown.load(Ordering::Relaxed) {
                ShutdownRequested.emit();
                health().set_ready(Err("shutting down".into()));
                self.produce_records()?;
                self.checkpoint_and_commit(consumer, CommitMode::Sync)?;
                return Ok(());
            }
            // A batch is what the consumer hands over without waiting: once
            // its queue is empty the batch ends, before blocking for more.
            let polled = match consumer.poll(Duration::ZERO) {
                Some(m) => Some(m),
                None => {
                    if let Some(m) = &mut self.metrics {
                        m.batch_end();
                    }
                    consumer.poll(TICK)
                }
            };
            // Rebalance callbacks run inside `poll`: rebuild state before
            // handling a message that may belong to the new assignment.
            if self.shared.rebalanced.swap(false, Ordering::SeqCst) {
                self.on_rebalance(consumer)?;
            }
            let mut was_message = false;
            match polled {
                None => {}
                Some(Ok(msg)) => {
                    self.on_message(consumer, &msg)?;
                    was_message = true;
                }
                Some(Err(KafkaError::PartitionEOF(p))) => self.on_eof(p),
                Some(Err(e)) => self.on_consume_error(e),
            }
            // Per message only what is needed; the rest once per tick.
            if !self.records.is_empty() {
                self.produce_records()?;
                self.producer.poll(Duration::ZERO);
            }
            polls = polls.wrapping_add(1);
            if (!was_message || polls % 16 == 0) && last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                self.check_fatal()?;
                self.producer.poll(Duration::ZERO);
                if self.tick(consumer, opts)? {
                    return Ok(());
                }
            }
        }
    }

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
        }
    }

    fn check_fatal(&self) -> Result<(), ServiceError> {
        match self.shared.fatal.lock().expect("not poisoned").clone() {
            None => Ok(()),
            Some(FatalError::Authentication(m)) => Err(ServiceError::Authentication(m)),
            Some(FatalError::Tls(m)) => Err(ServiceError::Tls(m)),
            Some(FatalError::Other(m)) => Err(ServiceError::Fatal(m)),
        }
    }

    fn on_message(
        &mut self,
        consumer: &BaseConsumer<Context>,
        msg: &BorrowedMessage<'_>,
    ) -> Result<(), ServiceError> {
        let src = match self.source_of(msg.partition()) {
            Some(src) => src,
            None => {
                // A partition we were not told about yet: rebuild from the
                // current assignment, which includes it.
                self.on_rebalance(consumer)?;
                match self.source_of(msg.partition()) {
                    Some(src) => src,
                    None => return Ok(()), // not ours (anymore): not counted
                }
            }
        };
        self.active = true;
        self.idle_flushed = false;
        if let Some(m) = &mut self.metrics {
            if m.batch_message() {
                m.batch_end();
            }
        }
        let part = &mut self.partitions[src];
        part.next_offset = Some(msg.offset() + 1);
        part.active = true;
        part.eof = false;
        self.shared.broker_up();
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
            MessageRejected {
                reason,
                partition: msg.partition(),
                offset: msg.offset(),
                counts: &mut self.summary.rejected,
            }
            .emit();
            self.dead_letter(msg, payload, reason);
        }
        Ok(())
    }

    fn on_consume_error(&mut self, e: KafkaError) {
        match e.rdkafka_error_code() {
            // Also reported per partition as `KafkaError::PartitionEOF`;
            // authentication and certificate failures come through the
            // client's error callback, which stops the service.
            Some(
                RDKafkaErrorCode::PartitionEOF
                | RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::SaslAuthenticationFailed,
            ) => {}
            Some(RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::Resolve) => {
                self.shared.broker_down("consumer", &e.to_string())
            }
            Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::SSL) => {
                self.shared.connection_failed("consumer", &e.to_string())
            }
            _ => ConsumeFailed { error: &e }.emit(),
        }
    }

    /// Periodic work; returns true when the service should exit.
    fn tick(
        &mut self,
        consumer: &BaseConsumer<Context>,
        opts: RunOptions,
    ) -> Result<bool, ServiceError> {
        health().beat();
        self.report_readiness();
        self.publish();
        if self.assignment == Assignment::None {
            return Ok(false);
        }
        let now = Instant::now();
        if std::mem::take(&mut self.active) {
            self.last_message = now;
        }
        self.check_idle(now);
        let caught_up = self.caught_up();
        if caught_up {
            self.windower.release_held(&mut self.records);
        }
        self.produce_records()?;
        if opts.exit_when_idle && caught_up && self.last_message.elapsed() >= EXIT_QUIET {
            self.drain_and_commit(consumer)?;
            InputDrained.emit();
            return Ok(true);
        }
        if self.last_commit.elapsed()
            >= Duration::from_secs(self.kafka.service.commit_interval_seconds)
        {
            self.checkpoint_and_commit(consumer, CommitMode::Async)?;
        }
        Ok(false)
    }

    /// A checkpoint round (if one can be taken now), then the commit: once
    /// the producer has flushed it, the offsets move up to what it covers.
    fn checkpoint_and_commit(
        &mut self,
        consumer: &BaseConsumer<Context>,
        mode: CommitMode,
    ) -> Result<bool, ServiceError> {
        let covered = self.write_checkpoint(consumer)?;
        self.commit(consumer, mode, None, covered)
    }

    /// `--exit-when-idle` at the end of the input: commit as if stopping
    /// (open windows stay replayable), then emit everything.
    fn drain_and_commit(&mut self, consumer: &BaseConsumer<Context>) -> Result<(), ServiceError> {
        if let Some(covered) = self.write_checkpoint(consumer)? {
            // The held windows are in the state topic: commit up to them,
            // then emit everything (a later run restores and continues).
            if self.commit(consumer, CommitMode::Sync, None, Some(covered))? {
                self.windower.finish(&mut self.records);
                self.produce_records()?;
                if self.flush_output() {
                    return Ok(());
                }
            }
            return Err(ServiceError::Fatal(
                "input drained, but the output was not acknowledged in time; a rerun resumes"
                    .into(),
            ));
        }
        let safe = self.safe_offsets();
        self.windower.finish(&mut self.records);
        self.produce_records()?;
        if !self.commit(consumer, CommitMode::Sync, Some(safe), None)? {
            return Err(ServiceError::Fatal(
                "input drained, but the output was not acknowledged in time; \
                 nothing committed, a rerun resumes"
                    .into(),
            ));
        }
        Ok(())
    }
}
