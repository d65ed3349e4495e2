//! `distinctly run`: three stages, each a thread with its own consumer
//! group, connected only through Kafka topics (design in the module docs of
//! `kafka`).
//!
//! ```text
//! topology.rs  the internal topics, named from the group id, made if missing
//! clients.rs   consumer and producer settings per stage (static membership,
//!              cooperative rebalancing, transactions)
//! split/       stage 1: input -> decode -> time guard -> shard batches
//!   txn.rs       exactly once: a transaction per input partition, committed
//!                on a thread of its own while decoding goes on
//! count/       stage 2: shard partitions -> windows -> partial counts;
//!              checkpoints (checkpoint.rs), commits
//!   assign.rs    shards taken over: offsets, stream times, restored windows
//! sum/         stage 3: partial counts -> one record per window
//!   read.rs      the partials topic read into the summer's windows
//!   windows.rs   a window's per-shard counts and what was emitted
//! stage_loop.rs  the loop the three share: poll, rebalance, tick, stop
//! produce.rs   sending and flushing without rust-rdkafka's 100 ms steps
//! dead_letter.rs  copies of rejected messages
//! page.rs      for the live page: the output topic read back, instances
//! ```

mod checkpoint;
mod clients;
mod count;
mod dead_letter;
mod page;
mod produce;
mod split;
mod stage_loop;
mod sum;
mod topology;

use super::config::KafkaConfig;
use super::context::{Context, FatalError, Shared};
use super::ServiceError;
use crate::config::CoreConfig;
use crate::counter::CounterKind;
use crate::health::health;
use crate::internal_events::{ConsumeFailed, InternalEvent, ServiceStarted};
use crate::reject::RejectCounts;
use crate::window::WindowStats;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
pub use topology::Topology;

#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Exit once this instance holds every partition of every stage, the
    /// input has been read to its end and every window is emitted and
    /// acknowledged (benchmarks, tests, back-fills). Offsets are committed
    /// and windows checkpointed as if the service had stopped, so a later
    /// run continues without loss.
    pub exit_when_idle: bool,
}

/// What a run did (logged on exit).
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub messages: u64,
    pub bytes: u64,
    pub rejected: RejectCounts,
    /// What the counters did with the events (of the shards this instance
    /// held at the end), and what the summer emitted.
    pub windows: WindowStats,
    pub records_produced: u64,
    pub dlq_produced: u64,
    pub elapsed: Duration,
}

/// How long a stage waits for a message before its periodic work.
const TICK: Duration = Duration::from_millis(100);
/// How long the input must be at its end before `--exit-when-idle` drains.
const EXIT_QUIET: Duration = Duration::from_millis(500);

/// The three stages, for readiness and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Split = 0,
    Count = 1,
    Sum = 2,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Split => "split",
            Stage::Count => "count",
            Stage::Sum => "sum",
        }
    }
}

/// What the stages share: settings, the stop request, progress of a drain.
pub(crate) struct Ctx<'a> {
    pub core: &'a CoreConfig,
    pub kafka: &'a KafkaConfig,
    pub topology: Topology,
    pub opts: RunOptions,
    pub kind: CounterKind,
    /// `DISTINCTLY_GROUP_BY`, validated.
    pub groupings: crate::group::Groupings,
    shutdown: &'a AtomicBool,
    /// Set when a stage fails or the drain is done: every stage ends.
    stop: AtomicBool,
    /// `--exit-when-idle`: the splitter sent its last transaction.
    pub split_drained: AtomicBool,
    /// `--exit-when-idle`: the counter emitted and checkpointed everything.
    pub count_drained: AtomicBool,
    /// Names this process's drain in the shards' statuses, so the summer
    /// does not take a status left by an earlier drain for this one's.
    pub drain_token: String,
    /// Per stage: why it is not ready (`None`: ready).
    readiness: Mutex<[Option<String>; 3]>,
}

impl Ctx<'_> {
    /// SIGTERM/SIGINT, a failed stage, or the end of a drain.
    pub fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed) || self.stop.load(Ordering::Relaxed)
    }

    pub fn shutdown_requested(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }

    /// Ends every stage (a drain is complete, or a stage failed).
    pub fn stop_all(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// A stage's result; an error ends the other stages too.
    fn stop_all_on_error<T>(&self, r: Result<T, ServiceError>) -> Result<T, ServiceError> {
        if r.is_err() {
            self.stop_all();
        }
        r
    }

    /// A stage's periodic check: its heartbeat for `/healthz`, a fatal
    /// client error ends it, and it is ready while the broker answers.
    pub fn tick_stage(&self, stage: Stage, shared: &Shared) -> Result<(), ServiceError> {
        health().beat_stage(stage as usize);
        check_fatal(shared)?;
        self.set_ready(
            stage,
            if shared.is_broker_down() {
                Err("broker unreachable".to_string())
            } else {
                Ok(())
            },
        );
        Ok(())
    }

    /// A stage's readiness; `/readyz` is ready when all three are.
    pub fn set_ready(&self, stage: Stage, ready: Result<(), String>) {
        let mut r = self.readiness.lock().unwrap_or_else(|e| e.into_inner());
        r[stage as usize] = ready.err();
        let overall = r
            .iter()
            .flatten()
            .next()
            .map_or(Ok(()), |reason| Err(reason.clone()));
        health().set_ready(overall);
    }
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
    let kind = core.counter_kind()?;
    ServiceStarted {
        core,
        kafka: &kafka.settings(),
    }
    .emit();
    if crate::metrics::enabled() {
        crate::metrics::register_build_info(kind);
        crate::internal_events::register_kafka();
    }
    if !core.rolling()?.is_empty() {
        return Err(crate::config::invalid(
            "DISTINCTLY_ROLLING",
            "`run` does not count rolling windows yet (`count` does)",
        )
        .into());
    }
    let Some(topology) = Topology::prepare(core, kafka, shutdown)? else {
        return Ok(RunSummary::default()); // stopped while the broker was away
    };
    if crate::metrics::enabled() {
        let mut info = crate::live::Info::new("run", core)?;
        info.shards = Some(topology.shard_count);
        crate::live::configure(info);
    }
    let ctx = Ctx {
        core,
        kafka,
        topology,
        opts,
        kind,
        groupings: core.groupings()?,
        shutdown,
        stop: AtomicBool::new(false),
        split_drained: AtomicBool::new(false),
        count_drained: AtomicBool::new(false),
        drain_token: format!(
            "{}-{}",
            clients::instance_id(kafka).0,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ),
        readiness: Mutex::new([
            Some("starting".to_string()),
            Some("starting".to_string()),
            Some("starting".to_string()),
        ]),
    };
    let results = std::thread::scope(|scope| {
        // Named threads: per-stage CPU shows in /proc (scripts/bench-scale.sh).
        let ctx = &ctx;
        let spawn = |stage: Stage| {
            std::thread::Builder::new()
                .name(stage.name().to_string())
                .spawn_scoped(scope, move || match stage {
                    Stage::Split => ctx
                        .stop_all_on_error(split::run(ctx))
                        .map(|s| (Some(s), None, None)),
                    Stage::Count => ctx
                        .stop_all_on_error(count::run(ctx))
                        .map(|c| (None, Some(c), None)),
                    Stage::Sum => ctx
                        .stop_all_on_error(sum::run(ctx))
                        .map(|s| (None, None, Some(s))),
                })
                .expect("a thread can be spawned")
        };
        if crate::metrics::enabled() {
            std::thread::Builder::new()
                .name("page".to_string())
                .spawn_scoped(scope, move || page::follow(ctx))
                .expect("a thread can be spawned");
        }
        let threads = [spawn(Stage::Split), spawn(Stage::Count), spawn(Stage::Sum)];
        threads.map(|t| t.join().expect("a stage does not panic"))
    });
    let (mut split, mut count, mut sum) = (None, None, None);
    let mut failed: Option<ServiceError> = None;
    for result in results {
        match result {
            Ok((s, c, m)) => {
                split = split.or(s);
                count = count.or(c);
                sum = sum.or(m);
            }
            // A stage stopped by another's failure may fail in its own
            // words (a fenced commit); the cause is the one to print.
            Err(e)
                if failed
                    .as_ref()
                    .is_none_or(|f| !f.names_cause() && e.names_cause()) =>
            {
                failed = Some(e)
            }
            Err(_) => {}
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    let (split, count, sum): (split::SplitStats, count::CountStats, sum::SumStats) = (
        split.unwrap_or_default(),
        count.unwrap_or_default(),
        sum.unwrap_or_default(),
    );
    let mut windows = count.windows;
    windows.ts_out_of_range += split.ts_out_of_range;
    windows.windows_emitted = sum.windows_emitted;
    windows.corrections_emitted = sum.corrections_emitted;
    Ok(RunSummary {
        messages: split.messages,
        bytes: split.bytes,
        rejected: split.rejected,
        windows,
        records_produced: sum.records_produced,
        dlq_produced: split.dlq_produced,
        elapsed: started.elapsed(),
    })
}

/// Fails if a client reported an error that retrying does not heal.
pub(super) fn check_fatal(shared: &Shared) -> Result<(), ServiceError> {
    match shared.fatal.lock().expect("not poisoned").clone() {
        None => Ok(()),
        Some(FatalError::Authentication(m)) => Err(ServiceError::Authentication(m)),
        Some(FatalError::Tls(m)) => Err(ServiceError::Tls(m)),
        Some(FatalError::NameTaken(m)) => Err(ServiceError::NameTaken(m)),
        Some(FatalError::Other(m)) => Err(ServiceError::Fatal(m)),
    }
}

/// A consume error: outages go to the shared broker state, others are
/// logged (rate-limited).
fn on_consume_error(shared: &Shared, e: KafkaError) {
    if let KafkaError::MessageConsumptionFatal(_) = e {
        // The client is unusable; the error callback says why, and the
        // stage stops at its next tick.
        return super::context::set_fatal(shared, FatalError::Other(e.to_string()));
    }
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
            shared.broker_down("consumer", &e.to_string())
        }
        Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::SSL) => {
            shared.connection_failed("consumer", &e.to_string())
        }
        _ => ConsumeFailed { error: &e }.emit(),
    }
}

/// The partitions of `topic` assigned to `consumer`, in order.
fn assigned(consumer: &BaseConsumer<Context>, topic: &str) -> Result<Vec<i32>, KafkaError> {
    let mut ids: Vec<i32> = consumer
        .assignment()?
        .elements_for_topic(topic)
        .iter()
        .map(|e| e.partition())
        .collect();
    ids.sort_unstable();
    Ok(ids)
}
