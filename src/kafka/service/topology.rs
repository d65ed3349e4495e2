//! The topics `run` works with: the input and output topics of the
//! settings, and the internal ones named from the consumer group (as Kafka
//! Streams names them from its application id), created when missing:
//!
//! | topic | partitions | cleanup | holds |
//! |---|---|---|---|
//! | `<group>-shards` | `DISTINCTLY_SHARDS` (default: the input's) | delete | batches of `(ts, uid)` per shard, and watermark markers |
//! | `<group>-partials` | 1 | compact | each shard's count of each window, and each shard's watermark |
//! | `KAFKA_SERVICE_STATE_TOPIC` | 1 | compact | window checkpoints (see `kafka::state`) |

use super::{check_fatal, clients};
use crate::config::CoreConfig;
use crate::health::health;
use crate::internal_events::{InputTopicMissing, InternalEvent};
use crate::kafka::config::KafkaConfig;
use crate::kafka::context::{Context, Shared};
use crate::kafka::ServiceError;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);
/// One attempt to reach the broker at start.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The topics of a run.
#[derive(Debug, Clone)]
pub struct Topology {
    pub input: String,
    pub input_partitions: usize,
    pub shards: String,
    pub shard_count: usize,
    pub partials: String,
    pub output: String,
    pub state: Option<String>,
}

impl Topology {
    /// The topic names these settings give (nothing is asked of Kafka).
    pub fn names(kafka: &KafkaConfig) -> (String, String) {
        let group = &kafka.env.service_group_id;
        (format!("{group}-shards"), format!("{group}-partials"))
    }

    /// Waits for the broker (retrying while it is unreachable, until
    /// `shutdown`), reads the input topic's partition count and creates the
    /// internal topics that are missing. `None`: stopped meanwhile.
    pub fn prepare(
        core: &CoreConfig,
        kafka: &KafkaConfig,
        shutdown: &AtomicBool,
    ) -> Result<Option<Topology>, ServiceError> {
        let _ = core;
        let shared = Arc::new(Shared::new(kafka.env.service_dlq_topic.clone()));
        let probe: BaseConsumer<Context> = clients::plain_consumer(kafka, shared.clone())?;
        let input = kafka.env.service_input_topic.clone();
        let mut said_missing = false;
        let input_partitions = loop {
            if shutdown.load(Ordering::Relaxed) {
                return Ok(None);
            }
            check_fatal(&shared)?;
            // Short attempts, so a refused password or certificate (which
            // the client reports meanwhile) ends the wait at once.
            match partition_count(&probe, &input, PROBE_TIMEOUT) {
                Ok(Some(n)) => break n,
                Ok(None) => {
                    health().set_ready(Err(format!("input topic {input} does not exist")));
                    if !std::mem::replace(&mut said_missing, true) {
                        InputTopicMissing { topic: &input }.emit();
                    }
                }
                Err(_) => health().set_ready(Err("broker unreachable".to_string())),
            }
            // Let librdkafka report (and reconnect) meanwhile.
            probe.poll(PROBE_TIMEOUT);
        };
        shared.broker_up();
        let (shards, partials) = Topology::names(kafka);
        let wanted = kafka
            .service
            .shards
            .map_or(input_partitions, |n| n as usize);
        let shard_count = match partition_count(&probe, &shards, TIMEOUT)? {
            Some(n) if kafka.service.shards.is_some_and(|s| s as usize != n) => {
                return Err(ServiceError::Fatal(format!(
                    "DISTINCTLY_SHARDS is {wanted}, but {shards} has {n} partitions: the shard \
                     count of a group is fixed when its topics are made (see docs/design.md)"
                )));
            }
            Some(n) => n,
            None => {
                create(kafka, &shards, wanted, &[])?;
                wanted
            }
        };
        if partition_count(&probe, &partials, TIMEOUT)?.is_none() {
            create(kafka, &partials, 1, COMPACTED)?;
        }
        let state = kafka.state_topic();
        if let Some(topic) = &state {
            if partition_count(&probe, topic, TIMEOUT)?.is_none() {
                create(kafka, topic, 1, COMPACTED)?;
            }
        }
        Ok(Some(Topology {
            input,
            input_partitions,
            shards,
            shard_count,
            partials,
            output: kafka.env.service_output_topic.clone(),
            state,
        }))
    }
}

/// Compaction keeps the latest value of each key; short segments let the
/// cleaner drop superseded values within minutes.
const COMPACTED: &[(&str, &str)] = &[
    ("cleanup.policy", "compact"),
    ("segment.ms", "600000"),
    ("min.cleanable.dirty.ratio", "0.1"),
];

/// Partitions of `topic`, `None` if it does not exist.
fn partition_count(
    consumer: &BaseConsumer<Context>,
    topic: &str,
    timeout: Duration,
) -> Result<Option<usize>, ServiceError> {
    let md = consumer.fetch_metadata(Some(topic), timeout)?;
    let found = md.topics().iter().find(|t| t.name() == topic);
    Ok(match found {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => Some(t.partitions().len()),
        _ => None,
    })
}

/// Creates `topic` (another instance may create it first: that is fine).
fn create(
    kafka: &KafkaConfig,
    topic: &str,
    partitions: usize,
    config: &[(&str, &str)],
) -> Result<(), ServiceError> {
    let admin: AdminClient<DefaultClientContext> = kafka.admin_config().create()?;
    let mut new = NewTopic::new(topic, partitions as i32, TopicReplication::Fixed(-1));
    for (k, v) in config {
        new = new.set(k, v);
    }
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| ServiceError::Fatal(format!("creating {topic}: {e}")))?;
    for result in runtime.block_on(admin.create_topics(&[new], &options))? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(ServiceError::Fatal(format!(
                "creating the topic {name}: {code} (create it beforehand; see docs/operations.md)"
            )))
            }
        }
    }
    Ok(())
}
