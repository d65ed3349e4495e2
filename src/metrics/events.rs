//! Internal events that are counted where they happen (rare paths: errors,
//! deliveries), as opposed to the hot-path counts that [`super::Publisher`]
//! copies from local counters once per tick.

use super::names;

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

/// Records one acknowledged delivery: `micros` is librdkafka's own
/// measurement, from `produce()` to the broker's acknowledgement (so it does
/// not include how long the delivery report waited for the next poll).
pub fn delivered(to: ProducedTo, micros: i64) {
    if micros < 0 {
        return; // not measured (librdkafka reports -1)
    }
    metrics::histogram!(names::DELIVERY_LATENCY, "topic" => to.as_str())
        .record(micros as f64 / 1e6);
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
