//! librdkafka callbacks. They run inside `poll`, on the service thread, and
//! only touch the small [`Shared`] state.

use crate::internal_events::{
    AuthenticationFailed, BrokerReachable, BrokerUnreachable, ClientError, CommitFailed,
    DeadLetterFailed, DeliveryFailed, FatalClientError, InternalEvent, ProducedTo, RebalanceFailed,
    RecordDelivered,
};
use crate::metrics::names as metric_names;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Message, TopicPartitionList};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// State shared between the callbacks and the service loop.
#[derive(Default)]
pub struct Shared {
    /// Set by a rebalance; the loop then rebuilds its state.
    pub rebalanced: AtomicBool,
    /// Offsets known safe to commit (see `kafka::offsets`), committed again
    /// before partitions are revoked.
    pub safe: Mutex<Option<TopicPartitionList>>,
    /// An error that must stop the service (authentication, fatal).
    pub fatal: Mutex<Option<FatalError>>,
    /// Whether the broker currently looks unreachable (see
    /// [`Shared::broker_down`] and [`Shared::broker_up`]).
    broker_down: AtomicBool,
    /// Output records whose delivery failed for good (fatal: a window lost).
    pub delivery_failures: AtomicU64,
    pub last_delivery_error: Mutex<Option<(String, String)>>,
    /// Dead-letter copies that could not be delivered (logged, counted).
    pub dlq_failures: AtomicU64,
    /// The dead-letter topic: the one topic whose failed deliveries are not
    /// fatal.
    pub dlq_topic: Option<String>,
    /// The output topic (for the metrics' `topic` label).
    pub output_topic: Option<String>,
}

#[derive(Debug, Clone)]
pub enum FatalError {
    Authentication(String),
    /// The broker's certificate was refused (wrong CA, wrong host name).
    Tls(String),
    /// Another instance uses this one's static member name.
    NameTaken(String),
    Other(String),
}

impl Shared {
    /// State for a client whose failed deliveries are fatal, except to
    /// `dlq_topic`.
    pub fn new(dlq_topic: Option<String>) -> Self {
        Shared {
            dlq_topic,
            ..Shared::default()
        }
    }

    /// The same, for the client that writes the output topic.
    pub fn with_output(dlq_topic: Option<String>, output_topic: &str) -> Self {
        Shared {
            output_topic: Some(output_topic.to_string()),
            ..Shared::new(dlq_topic)
        }
    }

    /// Which kind of topic `topic` is.
    fn produced_to(&self, topic: &str) -> ProducedTo {
        if self.dlq_topic.as_deref() == Some(topic) {
            ProducedTo::DeadLetter
        } else if self.output_topic.as_deref() == Some(topic) {
            ProducedTo::Output
        } else {
            ProducedTo::Internal
        }
    }

    /// A client could not reach any broker: counted every time, logged
    /// (rate-limited) while the outage lasts; `/readyz` says so.
    pub fn broker_down(&self, client: &'static str, reason: &str) {
        self.broker_down.store(true, Ordering::Relaxed);
        BrokerUnreachable {
            client,
            reason,
            outage: true,
        }
        .emit();
    }

    /// One connection failed (a broker restarting, or closing an idle
    /// connection): counted and logged, but not an outage until no broker
    /// is left (librdkafka then reports all brokers down).
    pub fn connection_failed(&self, client: &'static str, reason: &str) {
        BrokerUnreachable {
            client,
            reason,
            outage: false,
        }
        .emit();
    }

    /// The broker answered (a message, an end of partition, a delivery, a
    /// broker `UP` in the statistics): logged once per outage.
    #[inline]
    pub fn broker_up(&self) {
        if self.broker_down.load(Ordering::Relaxed)
            && self.broker_down.swap(false, Ordering::Relaxed)
        {
            BrokerReachable.emit();
        }
    }

    pub fn is_broker_down(&self) -> bool {
        self.broker_down.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
pub struct Context {
    pub shared: Arc<Shared>,
    pub role: &'static str,
}

impl ClientContext for Context {
    fn error(&self, error: KafkaError, reason: &str) {
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed) => {
                AuthenticationFailed {
                    client: self.role,
                    reason,
                }
                .emit();
                set_fatal(&self.shared, FatalError::Authentication(reason.to_string()));
            }
            // A refused certificate does not heal by retrying.
            Some(RDKafkaErrorCode::SSL) if reason.contains("certificate") => {
                FatalClientError {
                    client: self.role,
                    reason,
                }
                .emit();
                set_fatal(&self.shared, FatalError::Tls(reason.to_string()));
            }
            // Also delivered per partition through `poll`; not an error.
            Some(RDKafkaErrorCode::PartitionEOF) => {}
            // A transactional producer fenced by the instance that took its
            // input partition over: the transaction's own result says so
            // (the splitter logs the take-over).
            Some(RDKafkaErrorCode::Fenced) => {}
            // Another live member joined with this member's static name
            // (`group.instance.id`): this one is out of the group for good.
            Some(RDKafkaErrorCode::FencedInstanceId) => {
                FatalClientError {
                    client: self.role,
                    reason,
                }
                .emit();
                set_fatal(&self.shared, FatalError::NameTaken(reason.to_string()));
            }
            Some(RDKafkaErrorCode::Fatal) => {
                FatalClientError {
                    client: self.role,
                    reason,
                }
                .emit();
                set_fatal(&self.shared, FatalError::Other(reason.to_string()));
            }
            Some(RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::Resolve) => {
                self.shared.broker_down(self.role, reason)
            }
            Some(
                RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::MessageTimedOut
                | RDKafkaErrorCode::SSL,
            ) => self.shared.connection_failed(self.role, reason),
            _ => ClientError {
                client: self.role,
                error: &error,
                reason,
            }
            .emit(),
        }
    }

    /// Consumer lag per partition from librdkafka's statistics (every
    /// `statistics.interval.ms`). Parsed into a small struct of its own:
    /// the full statistics object is large and only four offsets matter.
    fn stats_raw(&self, statistics: &[u8]) {
        let Ok(stats) = serde_json::from_slice::<Stats>(statistics) else {
            return;
        };
        // A real broker (not a bootstrap address, node id -1) is connected.
        if stats
            .brokers
            .values()
            .any(|b| b.nodeid >= 0 && b.state == "UP")
        {
            self.shared.broker_up();
        }
        for (topic, t) in &stats.topics {
            for p in t.partitions.values() {
                // The end a consumer can reach: the last stable offset under
                // read_committed (librdkafka's default isolation level; a
                // transaction's markers and open transactions lie beyond it),
                // else the high watermark.
                let end = if p.ls_offset >= 0 {
                    p.ls_offset
                } else {
                    p.hi_offset
                };
                if p.partition < 0 || !p.desired || end < 0 {
                    continue;
                }
                let partition = p.partition.to_string();
                if p.app_offset >= 0 {
                    metrics::gauge!(metric_names::CONSUMER_LAG,
                        "topic" => topic.clone(), "partition" => partition.clone())
                    .set((end - p.app_offset).max(0) as f64);
                }
                if p.committed_offset >= 0 {
                    metrics::gauge!(metric_names::COMMITTED_LAG,
                        "topic" => topic.clone(), "partition" => partition)
                    .set((end - p.committed_offset).max(0) as f64);
                }
            }
        }
    }

    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, _fac: &str, _msg: &str) {
        // librdkafka's own logs are noisy; errors arrive through `error`.
    }
}

/// The part of librdkafka's statistics JSON that the lag gauges need.
#[derive(Deserialize)]
struct Stats {
    #[serde(default)]
    topics: HashMap<String, TopicStats>,
    #[serde(default)]
    brokers: HashMap<String, BrokerStats>,
}

#[derive(Deserialize)]
struct BrokerStats {
    /// `UP`, `DOWN`, `CONNECT`, `AUTH`, ...
    #[serde(default)]
    state: String,
    /// -1 for bootstrap addresses.
    #[serde(default = "unknown_offset")]
    nodeid: i64,
}

#[derive(Deserialize)]
struct TopicStats {
    #[serde(default)]
    partitions: HashMap<String, PartitionStats>,
}

#[derive(Deserialize)]
struct PartitionStats {
    partition: i32,
    #[serde(default)]
    desired: bool,
    /// High watermark (end of the partition).
    hi_offset: i64,
    /// Last stable offset (read_committed end; negative: unknown).
    #[serde(default = "unknown_offset")]
    ls_offset: i64,
    /// Next offset handed to the application (negative: none yet).
    app_offset: i64,
    /// Last committed offset (negative: none).
    committed_offset: i64,
}

fn unknown_offset() -> i64 {
    -1
}

/// Records the error that stops the service: the first one, unless a more
/// specific one follows a generic one (a fatal consume error comes through
/// `poll` as well as through the error callback, in either order).
pub(crate) fn set_fatal(shared: &Shared, err: FatalError) {
    let mut fatal = shared.fatal.lock().expect("not poisoned");
    let replace = match (&*fatal, &err) {
        (None, _) => true,
        (Some(FatalError::Other(_)), FatalError::Other(_)) => false,
        (Some(FatalError::Other(_)), _) => true,
        _ => false,
    };
    if replace {
        *fatal = Some(err);
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            // Commit what is safe while the partitions are still ours.
            if let Some(safe) = self.shared.safe.lock().expect("not poisoned").take() {
                if safe.count() > 0 {
                    if let Err(error) = consumer.commit(&safe, CommitMode::Sync) {
                        CommitFailed {
                            error: &error,
                            retried: false,
                            before_revoke: true,
                        }
                        .emit();
                    }
                }
            }
            self.shared.rebalanced.store(true, Ordering::SeqCst);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(_) | Rebalance::Revoke(_) => {
                self.shared.rebalanced.store(true, Ordering::SeqCst);
            }
            Rebalance::Error(error) => RebalanceFailed { error }.emit(),
        }
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _opaque: ()) {
        if let Err((err, msg)) = result {
            if let Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight) =
                err.rdkafka_error_code()
            {
                // Purged on purpose: a splitter's aborted transaction, read
                // again from its input.
                return;
            }
            if self.shared.produced_to(msg.topic()) == ProducedTo::DeadLetter {
                self.shared.dlq_failures.fetch_add(1, Ordering::Relaxed);
                DeadLetterFailed {
                    topic: msg.topic(),
                    error: err,
                }
                .emit();
                return;
            }
            self.shared.delivery_failures.fetch_add(1, Ordering::SeqCst);
            DeliveryFailed {
                topic: msg.topic(),
                error: err,
            }
            .emit();
            *self
                .shared
                .last_delivery_error
                .lock()
                .expect("not poisoned") = Some((msg.topic().to_string(), err.to_string()));
            if let Some(
                RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed,
            ) = err.rdkafka_error_code()
            {
                set_fatal(&self.shared, FatalError::Authentication(err.to_string()));
            }
        } else {
            if let Ok(msg) = result {
                let to = self.shared.produced_to(msg.topic());
                // SAFETY: the message is valid for the duration of the
                // callback; the call only reads its timestamps.
                let micros = unsafe { rdkafka::bindings::rd_kafka_message_latency(msg.ptr()) };
                RecordDelivered { to, micros }.emit();
            }
            self.shared.broker_up();
        }
    }
}
