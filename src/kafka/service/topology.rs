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
        // A broker that has just started answers metadata requests before
        // it can create topics (in KRaft it must first register with its
        // controller: until then creation fails with "invalid replication
        // factor"). Errors that can be that are retried for a while.
        let since = std::time::Instant::now();
        loop {
            match Self::internal_topics(kafka, &probe, &input, input_partitions) {
                Ok(topology) => return Ok(Some(topology)),
                Err(e) if transient(&e) && since.elapsed() < SETTLE => {
                    health().set_ready(Err(format!("preparing the internal topics: {e}")));
                }
                Err(e) => return Err(e),
            }
            if shutdown.load(Ordering::Relaxed) {
                return Ok(None);
            }
            check_fatal(&shared)?;
            probe.poll(PROBE_TIMEOUT);
        }
    }

    /// Checks the internal topics against the settings and creates the
    /// missing ones.
    fn internal_topics(
        kafka: &KafkaConfig,
        probe: &BaseConsumer<Context>,
        input: &str,
        input_partitions: usize,
    ) -> Result<Topology, ServiceError> {
        let (shards, partials) = Topology::names(kafka);
        let wanted = kafka
            .service
            .shards
            .map_or(input_partitions, |n| n as usize);
        let shard_count = match partition_count(probe, &shards, TIMEOUT)? {
            Some(n) if kafka.service.shards.is_some_and(|s| s as usize != n) => {
                return Err(crate::config::invalid(
                    "DISTINCTLY_SHARDS",
                    format!(
                        "{wanted}, but {shards} has {n} partitions: the shard count of a group is \
                         fixed when its topics are made (unset it, or use a new \
                         KAFKA_SERVICE_GROUP_ID; see docs/design.md)"
                    ),
                )
                .into());
            }
            Some(n) => n,
            None => {
                create(kafka, &shards, wanted, &[])?;
                wanted
            }
        };
        if partition_count(probe, &partials, TIMEOUT)?.is_none() {
            create(kafka, &partials, 1, COMPACTED)?;
        }
        let state = kafka.state_topic();
        if let Some(topic) = &state {
            if partition_count(probe, topic, TIMEOUT)?.is_none() {
                create(kafka, topic, 1, COMPACTED)?;
            }
        }
        Ok(Topology {
            input: input.to_string(),
            input_partitions,
            shards,
            shard_count,
            partials,
            output: kafka.env.service_output_topic.clone(),
            state,
        })
    }
}

/// How long checking and creating the internal topics may keep failing
/// with errors a starting broker gives before they are fatal.
const SETTLE: Duration = Duration::from_secs(60);

/// Errors a broker gives while it is still starting (or briefly away):
/// worth another try. Refusals (authorization, policy, bad settings) and
/// the shard-count mismatch are not.
fn transient(e: &ServiceError) -> bool {
    use rdkafka::error::KafkaError;
    let code = match e {
        ServiceError::Client(KafkaError::MetadataFetch(code)) => *code,
        ServiceError::Client(KafkaError::AdminOp(code)) => *code,

        ServiceError::TopicCreation { code, .. } => *code,
        _ => return false,
    };
    matches!(
        code,
        RDKafkaErrorCode::InvalidReplicationFactor
            | RDKafkaErrorCode::NotController
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::BrokerNotAvailable
            | RDKafkaErrorCode::LeaderNotAvailable
            | RDKafkaErrorCode::NetworkException
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::CoordinatorLoadInProgress
            | RDKafkaErrorCode::TimedOutQueue
    )
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
            Err((name, code)) => return Err(ServiceError::TopicCreation { topic: name, code }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::error::KafkaError;

    #[test]
    fn a_starting_broker_is_waited_for_a_refusal_is_not() {
        let creation = |code| ServiceError::TopicCreation {
            topic: "t".into(),
            code,
        };
        for code in [
            RDKafkaErrorCode::InvalidReplicationFactor,
            RDKafkaErrorCode::NotController,
            RDKafkaErrorCode::RequestTimedOut,
        ] {
            assert!(transient(&creation(code)), "{code:?}");
        }
        let timeout = KafkaError::MetadataFetch(RDKafkaErrorCode::OperationTimedOut);
        assert!(transient(&ServiceError::Client(timeout)));
        for code in [
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::PolicyViolation,
            RDKafkaErrorCode::InvalidConfig,
        ] {
            assert!(!transient(&creation(code)), "{code:?}");
        }
        assert!(!transient(&ServiceError::Fatal("shard count".into())));
    }
}
