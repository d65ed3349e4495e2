//! Events of the Kafka clients: the broker, the group, commits, deliveries.

use super::{InternalEvent, RateLimit};
use crate::metrics::names;
use std::fmt::Display;
use tracing::{debug, error, info, warn};

const TARGET: &str = "distinctly::kafka";

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
    /// A splitter's transaction was aborted (its input is read again).
    Transaction,
    /// Any other client error.
    Other,
}

impl KafkaErrorKind {
    pub const ALL: [KafkaErrorKind; 9] = [
        KafkaErrorKind::BrokerUnreachable,
        KafkaErrorKind::Authentication,
        KafkaErrorKind::Fatal,
        KafkaErrorKind::Consume,
        KafkaErrorKind::Delivery,
        KafkaErrorKind::DeadLetterDelivery,
        KafkaErrorKind::Commit,
        KafkaErrorKind::Transaction,
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
            KafkaErrorKind::Transaction => "transaction",
            KafkaErrorKind::Other => "other",
        }
    }

    fn count(self) {
        metrics::counter!(names::KAFKA_ERRORS, "kind" => self.as_str()).increment(1);
    }
}

/// Which topic a produced record went to (`topic` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducedTo {
    Output,
    DeadLetter,
    /// The internal topics: shards, partial counts, checkpoints.
    Internal,
}

impl ProducedTo {
    pub fn as_str(self) -> &'static str {
        match self {
            ProducedTo::Output => "output",
            ProducedTo::DeadLetter => "dead_letter",
            ProducedTo::Internal => "internal",
        }
    }
}

/// Creates every Kafka series at its resting value, so dashboards and
/// `rate()` see them before the first error, record, commit or rebalance.
pub fn register_kafka() {
    for kind in KafkaErrorKind::ALL {
        metrics::counter!(names::KAFKA_ERRORS, "kind" => kind.as_str()).increment(0);
    }
    for to in [
        ProducedTo::Output,
        ProducedTo::DeadLetter,
        ProducedTo::Internal,
    ] {
        metrics::counter!(names::RECORDS_PRODUCED, "topic" => to.as_str()).increment(0);
    }
    metrics::counter!(names::COMMITS).increment(0);
    metrics::gauge!(names::BROKER_REACHABLE).set(1.0);
    metrics::gauge!(names::ASSIGNED_PARTITIONS).set(0.0);
    metrics::gauge!(names::OUTPUT_PAUSED).set(0.0);
}

/// A connection to the broker failed (refused, name resolution, TLS, a
/// dropped connection); the client keeps retrying.
pub struct BrokerUnreachable<'a> {
    /// `consumer` or `producer`.
    pub client: &'static str,
    pub reason: &'a str,
    /// No broker is reachable at all (an outage), rather than one dropped
    /// connection (managed brokers close idle ones now and then).
    pub outage: bool,
}

impl InternalEvent for BrokerUnreachable<'_> {
    fn emit(self) {
        static LIMIT: RateLimit = RateLimit::new();
        KafkaErrorKind::BrokerUnreachable.count();
        if self.outage {
            metrics::gauge!(names::BROKER_REACHABLE).set(0.0);
        }
        if let Some(suppressed) = LIMIT.allow() {
            warn!(target: TARGET, client = self.client, reason = self.reason, suppressed,
                "broker unreachable, retrying");
        }
    }
}

/// The broker answers again after [`BrokerUnreachable`].
pub struct BrokerReachable;

impl InternalEvent for BrokerReachable {
    fn emit(self) {
        metrics::gauge!(names::BROKER_REACHABLE).set(1.0);
        info!(target: TARGET, "broker reachable again");
    }
}

/// SASL or TLS authentication was refused: fatal. Logged at `debug`: the
/// service stops at its next tick, and [`super::ServiceFailed`] says why in
/// one line.
pub struct AuthenticationFailed<'a> {
    pub client: &'static str,
    pub reason: &'a str,
}

impl InternalEvent for AuthenticationFailed<'_> {
    fn emit(self) {
        KafkaErrorKind::Authentication.count();
        debug!(target: TARGET, client = self.client, reason = self.reason, "authentication failed");
    }
}

/// librdkafka reported a fatal error, or the broker's certificate was
/// refused: the service stops, and [`super::ServiceFailed`] says why.
pub struct FatalClientError<'a> {
    pub client: &'static str,
    pub reason: &'a str,
}

impl InternalEvent for FatalClientError<'_> {
    fn emit(self) {
        KafkaErrorKind::Fatal.count();
        debug!(target: TARGET, client = self.client, reason = self.reason, "fatal kafka error");
    }
}

/// Any other client error (librdkafka retries by itself).
pub struct ClientError<'a> {
    pub client: &'static str,
    pub error: &'a dyn Display,
    pub reason: &'a str,
}

impl InternalEvent for ClientError<'_> {
    fn emit(self) {
        static LIMIT: RateLimit = RateLimit::new();
        KafkaErrorKind::Other.count();
        if let Some(suppressed) = LIMIT.allow() {
            warn!(target: TARGET, client = self.client, error = %self.error,
                reason = self.reason, suppressed, "kafka client error");
        }
    }
}

/// The consumer handed over an error instead of a message.
pub struct ConsumeFailed<'a> {
    pub error: &'a dyn Display,
}

impl InternalEvent for ConsumeFailed<'_> {
    fn emit(self) {
        static LIMIT: RateLimit = RateLimit::new();
        KafkaErrorKind::Consume.count();
        if let Some(suppressed) = LIMIT.allow() {
            warn!(target: TARGET, error = %self.error, suppressed, "consume error");
        }
    }
}

/// A rebalance gave this instance its (new) partitions of a topic.
pub struct PartitionsAssigned<'a> {
    pub topic: &'a str,
    pub partitions: &'a [i32],
    /// Partitions of the topic.
    pub total: usize,
    /// The input topic (the gauge counts its partitions only).
    pub input: bool,
}

impl InternalEvent for PartitionsAssigned<'_> {
    fn emit(self) {
        if self.input {
            metrics::gauge!(names::ASSIGNED_PARTITIONS).set(self.partitions.len() as f64);
        }
        info!(target: TARGET, topic = self.topic, total = self.total,
            "assigned partitions {:?} of {}", self.partitions, self.topic);
    }
}

/// librdkafka reported a failed rebalance.
pub struct RebalanceFailed<'a> {
    pub error: &'a dyn Display,
}

impl InternalEvent for RebalanceFailed<'_> {
    fn emit(self) {
        KafkaErrorKind::Other.count();
        warn!(target: TARGET, error = %self.error, "rebalance error");
    }
}

/// Safe offsets were committed.
pub struct OffsetsCommitted {
    pub partitions: usize,
}

impl InternalEvent for OffsetsCommitted {
    fn emit(self) {
        metrics::counter!(names::COMMITS).increment(1);
        debug!(target: TARGET, partitions = self.partitions, "offsets committed");
    }
}

/// An offset commit failed.
pub struct CommitFailed<'a> {
    pub error: &'a dyn Display,
    /// The next commit interval tries again (else the service stops).
    pub retried: bool,
    /// Before partitions were revoked.
    pub before_revoke: bool,
}

impl InternalEvent for CommitFailed<'_> {
    fn emit(self) {
        KafkaErrorKind::Commit.count();
        if self.retried {
            warn!(target: TARGET, error = %self.error, before_revoke = self.before_revoke,
                "commit failed, will retry");
        } else {
            // The error ends the stage and is printed once where the
            // service stops.
            debug!(target: TARGET, error = %self.error, before_revoke = self.before_revoke,
                "commit failed");
        }
    }
}

/// The producer did not get every record acknowledged within the flush
/// timeout, so nothing is committed this time.
pub struct OutputNotAcknowledged<'a> {
    pub error: &'a dyn Display,
}

impl InternalEvent for OutputNotAcknowledged<'_> {
    fn emit(self) {
        static LIMIT: RateLimit = RateLimit::new();
        if let Some(suppressed) = LIMIT.allow() {
            warn!(target: TARGET, error = %self.error, suppressed,
                "output not acknowledged yet; not committing");
        }
    }
}

/// An output record could not be delivered: fatal (a window's count
/// lost); the service stops at its next commit, and
/// [`super::ServiceFailed`] says why.
pub struct DeliveryFailed<'a> {
    pub topic: &'a str,
    pub error: &'a dyn Display,
}

impl InternalEvent for DeliveryFailed<'_> {
    fn emit(self) {
        KafkaErrorKind::Delivery.count();
        debug!(target: TARGET, topic = self.topic, error = %self.error,
            "could not deliver a record");
    }
}

/// A dead-letter copy could not be delivered (logged and counted only).
pub struct DeadLetterFailed<'a> {
    pub topic: &'a str,
    pub error: &'a dyn Display,
}

impl InternalEvent for DeadLetterFailed<'_> {
    fn emit(self) {
        static LIMIT: RateLimit = RateLimit::new();
        KafkaErrorKind::DeadLetterDelivery.count();
        if let Some(suppressed) = LIMIT.allow() {
            warn!(target: TARGET, topic = self.topic, error = %self.error, suppressed,
                "dead-letter copy failed");
        }
    }
}

/// A record was enqueued for a topic.
pub struct RecordProduced {
    pub to: ProducedTo,
}

impl InternalEvent for RecordProduced {
    fn emit(self) {
        metrics::counter!(names::RECORDS_PRODUCED, "topic" => self.to.as_str()).increment(1);
    }
}

/// The broker acknowledged a record; `micros` is librdkafka's own
/// measurement from `produce()` to the acknowledgement (-1: not measured).
pub struct RecordDelivered {
    pub to: ProducedTo,
    pub micros: i64,
}

impl InternalEvent for RecordDelivered {
    fn emit(self) {
        if self.micros >= 0 {
            metrics::histogram!(names::DELIVERY_LATENCY, "topic" => self.to.as_str())
                .record(self.micros as f64 / 1e6);
        }
    }
}

/// A splitter's transaction could not commit: aborted, and the input
/// partition is read again from its committed offset (`fenced`: another
/// instance took the partition over, this one drops it).
pub struct TransactionAborted<'a> {
    pub partition: i32,
    pub error: &'a dyn Display,
    pub fenced: bool,
}

impl InternalEvent for TransactionAborted<'_> {
    fn emit(self) {
        KafkaErrorKind::Transaction.count();
        if self.fenced {
            info!(target: TARGET, partition = self.partition, error = %self.error,
                "input partition {} taken over by another instance", self.partition);
        } else {
            warn!(target: TARGET, partition = self.partition, error = %self.error,
                "transaction of input partition {} aborted; reading it again", self.partition);
        }
    }
}

/// A record of the partials topic whose value this version cannot read
/// (written by something else, or by a later version): skipped, keeping
/// what its key held before.
pub struct UnreadablePartialsRecord<'a> {
    pub topic: &'a str,
    pub key: &'a str,
    pub offset: i64,
}

impl InternalEvent for UnreadablePartialsRecord<'_> {
    fn emit(self) {
        static LIMIT: RateLimit = RateLimit::new();
        KafkaErrorKind::Other.count();
        if let Some(suppressed) = LIMIT.allow() {
            warn!(target: TARGET, topic = self.topic, key = self.key, offset = self.offset,
                suppressed, "partials topic {}: skipped record {} at offset {}: not a value this version reads (another program's, or a later version's)",
                self.topic, self.key, self.offset);
        }
    }
}

/// A record of the shard topic is not a batch this version can read
/// (written by something else): skipped.
pub struct BadShardRecord {
    pub partition: i32,
    pub offset: i64,
}

impl InternalEvent for BadShardRecord {
    fn emit(self) {
        static LIMIT: RateLimit = RateLimit::new();
        KafkaErrorKind::Other.count();
        if let Some(suppressed) = LIMIT.allow() {
            error!(target: TARGET, partition = self.partition, offset = self.offset, suppressed,
                "skipped an unreadable record of the shard topic");
        }
    }
}
