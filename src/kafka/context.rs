//! librdkafka callbacks. They run inside `poll`, on the service thread, and
//! only touch the small [`Shared`] state.

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Message, TopicPartitionList};
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
                set_fatal(&self.shared, FatalError::Authentication(reason.to_string()));
            }
            // Also delivered per partition through `poll`; not an error.
            Some(RDKafkaErrorCode::PartitionEOF) => {}
            Some(RDKafkaErrorCode::Fatal) => {
                set_fatal(&self.shared, FatalError::Other(reason.to_string()));
            }
            Some(
                RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::MessageTimedOut,
            ) => {
                if !self.shared.broker_down.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "distinctly: {}: broker unreachable, retrying: {reason}",
                        self.role
                    );
                }
            }
            _ => eprintln!("distinctly: {}: {error}: {reason}", self.role),
        }
    }

    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, _fac: &str, _msg: &str) {
        // librdkafka's own logs are noisy; errors arrive through `error`.
    }
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
                        eprintln!("distinctly: commit before revoke failed: {e}");
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
            Rebalance::Error(e) => eprintln!("distinctly: rebalance error: {e}"),
        }
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _opaque: ()) {
        if let Err((err, msg)) = result {
            if msg.topic() != self.shared.output_topic {
                self.shared.dlq_failures.fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "distinctly: dead-letter copy to {} failed: {err}",
                    msg.topic()
                );
                return;
            }
            self.shared.delivery_failures.fetch_add(1, Ordering::SeqCst);
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
        } else if self.shared.broker_down.swap(false, Ordering::Relaxed) {
            eprintln!("distinctly: broker reachable again");
        }
    }
}
