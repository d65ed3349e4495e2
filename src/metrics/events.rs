//! Internal events that are counted where they happen (rare paths: errors,
//! deliveries), as opposed to the hot-path counts that [`super::Publisher`]
//! copies from local counters once per tick.

use super::names;
use std::sync::OnceLock;
use std::time::Instant;

/// The closed set of `kind` labels of `distinctly_kafka_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaErrorKind {
    /// No broker reachable (connection refused, DNS, all brokers down).
    BrokerUnreachable,
    /// SASL/TLS authentication failed (fatal).
    Authentication,
    /// librdkafka reported a fatal error (e.g. idempotence violated).
    Fatal,
    /// A consumer error other than the above.
    Consume,
    /// An output record could not be delivered (fatal: a window lost).
    Delivery,
    /// A dead-letter copy could not be delivered (logged, not fatal).
    DeadLetterDelivery,
    /// An offset commit failed (retried at the next interval).
    Commit,
    /// Any other client error.
    Other,
}

impl KafkaErrorKind {
    pub const ALL: [KafkaErrorKind; 8] = [
        KafkaErrorKind::BrokerUnreachable,
        KafkaErrorKind::Authentication,
        KafkaErrorKind::Fatal,
        KafkaErrorKind::Consume,
        KafkaErrorKind::Delivery,
        KafkaErrorKind::DeadLetterDelivery,
        KafkaErrorKind::Commit,
        KafkaErrorKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KafkaErrorKind::BrokerUnreachable => "broker_unreachable",
            KafkaErrorKind::Authentication => "authentication",
            KafkaErrorKind::Fatal => "fatal",
            KafkaErrorKind::Consume => "consume",
            KafkaErrorKind::Delivery => "delivery",
            KafkaErrorKind::DeadLetterDelivery => "dead_letter_delivery",
            KafkaErrorKind::Commit => "commit",
            KafkaErrorKind::Other => "other",
        }
    }
}

/// Counts one Kafka error.
pub fn kafka_error(kind: KafkaErrorKind) {
    metrics::counter!(names::KAFKA_ERRORS, "kind" => kind.as_str()).increment(1);
}

/// Which topic a produced record went to (`topic` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducedTo {
    Output,
    DeadLetter,
}

impl ProducedTo {
    pub fn as_str(self) -> &'static str {
        match self {
            ProducedTo::Output => "output",
            ProducedTo::DeadLetter => "dead_letter",
        }
    }
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// A timestamp that fits librdkafka's per-record opaque (no allocation per
/// record): nanoseconds since the first call, never 0 (0 means "not
/// stamped").
pub fn delivery_stamp() -> usize {
    let base = epoch();
    (base.elapsed().as_nanos() as usize).max(1)
}

/// Records one acknowledged delivery stamped with [`delivery_stamp`].
pub fn delivered(to: ProducedTo, stamp: usize) {
    if stamp == 0 {
        return;
    }
    let now = epoch().elapsed().as_nanos() as usize;
    let seconds = now.saturating_sub(stamp) as f64 / 1e9;
    metrics::histogram!(names::DELIVERY_LATENCY, "topic" => to.as_str()).record(seconds);
}

/// Counts one record enqueued for `to`.
pub fn produced(to: ProducedTo) {
    metrics::counter!(names::RECORDS_PRODUCED, "topic" => to.as_str()).increment(1);
}

/// Creates every Kafka series at zero, so dashboards and `rate()` see them
/// (as 0) before the first error, record or commit.
pub fn register_kafka() {
    for kind in KafkaErrorKind::ALL {
        metrics::counter!(names::KAFKA_ERRORS, "kind" => kind.as_str()).increment(0);
    }
    for to in [ProducedTo::Output, ProducedTo::DeadLetter] {
        metrics::counter!(names::RECORDS_PRODUCED, "topic" => to.as_str()).increment(0);
    }
    metrics::counter!(names::COMMITS).increment(0);
}
