//! librdkafka callbacks. They run inside `poll`, on the service thread, and
//! only touch the small [`Shared`] state.

use crate::metrics::events::{self as metric_events, KafkaErrorKind, ProducedTo};
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
    /// Whether the broker currently looks unreachable (for state-change logs).
    pub broker_down: AtomicBool,
    /// Output records whose delivery failed for good (fatal: a window lost).
    pub delivery_failures: AtomicU64,
    pub last_delivery_error: Mutex<Option<(String, String)>>,
    /// Dead-letter copies that could not be delivered (logged, counted).
    pub dlq_failures: AtomicU64,
    pub output_topic: String,
}

#[derive(Debug, Clone)]
pub enum FatalError {
    Authentication(String),
    Other(String),
}

#[derive(Clone)]
pub struct Context {
    pub shared: Arc<Shared>,
    pub role: &'static str,
}

impl ClientContext for Context {
    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        match code {
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed) => {
                metric_events::kafka_error(KafkaErrorKind::Authentication);
                set_fatal(&self.shared, FatalError::Authentication(reason.to_string()));
            }
            // Also delivered per partition through `poll`; not an error.
            Some(RDKafkaErrorCode::PartitionEOF) => {}
            Some(RDKafkaErrorCode::Fatal) => {
                metric_events::kafka_error(KafkaErrorKind::Fatal);
                set_fatal(&self.shared, FatalError::Other(reason.to_string()));
            }
            Some(
                RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::MessageTimedOut,
            ) => {
                metric_events::kafka_error(KafkaErrorKind::BrokerUnreachable);
                if !self.shared.broker_down.swap(true, Ordering::Relaxed) {
                    crate::diag!("{}: broker unreachable, retrying: {reason}", self.role);
                }
            }
            _ => {
                metric_events::kafka_error(KafkaErrorKind::Other);
                crate::diag!("{}: {error}: {reason}", self.role);
            }
        }
    }

    /// Consumer lag per partition from librdkafka's statistics (every
    /// `statistics.interval.ms`). Parsed into a small struct of its own:
    /// the full statistics object is large and only four offsets matter.
    fn stats_raw(&self, statistics: &[u8]) {
        let Ok(stats) = serde_json::from_slice::<Stats>(statistics) else {
            return;
        };
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

fn set_fatal(shared: &Shared, err: FatalError) {
    let mut fatal = shared.fatal.lock().expect("not poisoned");
    if fatal.is_none() {
        *fatal = Some(err);
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            // Commit what is safe while the partitions are still ours.
            if let Some(safe) = self.shared.safe.lock().expect("not poisoned").take() {
                if safe.count() > 0 {
                    if let Err(e) = consumer.commit(&safe, CommitMode::Sync) {
                        crate::diag!("commit before revoke failed: {e}");
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
            Rebalance::Error(e) => crate::diag!("rebalance error: {e}"),
        }
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _opaque: ()) {
        if let Err((err, msg)) = result {
            if msg.topic() != self.shared.output_topic {
                self.shared.dlq_failures.fetch_add(1, Ordering::Relaxed);
                metric_events::kafka_error(KafkaErrorKind::DeadLetterDelivery);
                crate::diag!("dead-letter copy to {} failed: {err}", msg.topic());
                return;
            }
            self.shared.delivery_failures.fetch_add(1, Ordering::SeqCst);
            metric_events::kafka_error(KafkaErrorKind::Delivery);
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
                let to = if msg.topic() == self.shared.output_topic {
                    ProducedTo::Output
                } else {
                    ProducedTo::DeadLetter
                };
                // SAFETY: the message is valid for the duration of the
                // callback; the call only reads its timestamps.
                let micros = unsafe { rdkafka::bindings::rd_kafka_message_latency(msg.ptr()) };
                metric_events::delivered(to, micros);
            }
            if self.shared.broker_down.swap(false, Ordering::Relaxed) {
                crate::diag!("broker reachable again");
            }
        }
    }
}
