//! The Kafka clients of each stage.
//!
//! - Consumers: one group per stage (`<group>` reads the input, so offsets
//!   committed before stages existed carry on; `<group>-count` the shard
//!   topic; `<group>-sum` the partials), static membership with
//!   `group.instance.id = <instance>-<stage>` when the instance's name is
//!   stable (see [`instance_id`]) so a restarted instance gets its
//!   partitions back without a rebalance, cooperative-sticky assignment and
//!   a 6 s session (set in `KafkaConfig::consumer_config`).
//! - The splitter's producers are transactional, one per input partition
//!   (`transactional.id = <group>-split-<partition>`): whoever takes a
//!   partition over fences the previous owner and aborts its open
//!   transaction at once, instead of readers waiting for it to time out.
//! - Everything else goes through one idempotent producer per stage.

use super::Stage;
use crate::kafka::config::KafkaConfig;
use crate::kafka::context::{Context, Shared};
use crate::kafka::ServiceError;
use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::BaseProducer;
use std::sync::Arc;

/// A transaction that cannot finish in this long is aborted by the broker
/// (and our delivery timeout must not exceed it).
const TRANSACTION_TIMEOUT_MS: &str = "60000";

/// This instance's name in the consumer groups, and whether it is stable
/// across restarts: `DISTINCTLY_INSTANCE_ID`, else the host name in a
/// container (the process is pid 1 there, and the name is the
/// container's), else `<host name>-<pid>`, which is not.
pub fn instance_id(kafka: &KafkaConfig) -> (String, bool) {
    if let Some(id) = &kafka.service.instance_id {
        return (id.clone(), true);
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "distinctly".to_string());
    match std::process::id() {
        1 => (host, true),
        pid => (format!("{host}-{pid}"), false),
    }
}

/// The consumer group of a stage.
pub fn group(kafka: &KafkaConfig, stage: Stage) -> String {
    let base = &kafka.env.service_group_id;
    match stage {
        Stage::Split => base.clone(),
        Stage::Count => format!("{base}-count"),
        Stage::Sum => format!("{base}-sum"),
    }
}

/// A consumer that is in no group (metadata, reading a topic whole).
pub fn plain_consumer(
    kafka: &KafkaConfig,
    shared: Arc<Shared>,
) -> Result<BaseConsumer<Context>, ServiceError> {
    let mut c = kafka.consumer_config();
    c.set("group.id", format!("{}-reader", kafka.env.service_group_id));
    Ok(c.create_with_context(Context {
        shared,
        role: "consumer",
    })?)
}

/// The consumer of a stage, in its group.
pub fn stage_consumer(
    kafka: &KafkaConfig,
    stage: Stage,
    shared: Arc<Shared>,
) -> Result<BaseConsumer<Context>, ServiceError> {
    let mut c = kafka.consumer_config();
    c.set("group.id", group(kafka, stage));
    // Static membership only under a stable name: a restarted member then
    // gets its partitions back at once, without a rebalance. Under a name
    // that changes with every start, a stopping member must leave its
    // group instead (static members do not), or its partitions would wait
    // out the session timeout.
    if let (id, true) = instance_id(kafka) {
        c.set("group.instance.id", format!("{id}-{}", stage.name()));
    }
    if stage != Stage::Split {
        // Internal topics: every record counts, from the first (the sum
        // stage commits nothing and reads the compacted partials whole on
        // every assignment).
        c.set("auto.offset.reset", "earliest");
    }
    Ok(c.create_with_context(Context {
        shared,
        role: "consumer",
    })?)
}

/// An idempotent producer that retries for ever.
pub fn producer(
    kafka: &KafkaConfig,
    shared: Arc<Shared>,
) -> Result<BaseProducer<Context>, ServiceError> {
    Ok(kafka.producer_config().create_with_context(Context {
        shared,
        role: "producer",
    })?)
}

/// The transactional producer of one input partition.
pub fn transactional_producer(
    kafka: &KafkaConfig,
    shared: Arc<Shared>,
    partition: i32,
) -> Result<BaseProducer<Context>, ServiceError> {
    let mut c = kafka.producer_config();
    c.set(
        "transactional.id",
        format!("{}-split-{partition}", kafka.env.service_group_id),
    );
    c.set("transaction.timeout.ms", TRANSACTION_TIMEOUT_MS);
    // A transaction that starts right after the previous one committed is
    // refused (CONCURRENT_TRANSACTIONS) until the coordinator has written
    // the previous one's markers, a few ms; librdkafka retries after
    // `retry.backoff.ms`, 100 ms by default, which would make every commit
    // take 100 ms.
    c.set("retry.backoff.ms", "5");
    c.set("retry.backoff.max.ms", "100");
    c.set("message.timeout.ms", TRANSACTION_TIMEOUT_MS);
    Ok(c.create_with_context(Context {
        shared,
        role: "producer",
    })?)
}
