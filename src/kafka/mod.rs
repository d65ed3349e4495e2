//! The Kafka service, `distinctly run`: any number of identical instances
//! share the work through Kafka. Each runs three stages (see `service`):
//! split the input by user into the shard topic, count the shards it
//! holds, and, in the one instance that holds the partials topic, sum the
//! shards' counts into one record per window (and per correction).
//!
//! ```text
//! config.rs    KAFKA_* / DISTINCTLY_* service settings, librdkafka configs
//! context.rs   librdkafka callbacks: errors, rebalances (commit before
//!              revoke), deliveries
//! offsets.rs   commit metadata: stream times that restore the watermark
//! shard.rs     the shard topic: batches of (ts, uid) ending in a marker
//! partials.rs  the partials topic: per-shard counts, statuses, emissions
//! state.rs     the state topic: checkpoints of each shard's windows
//! service/     the stages
//! ```
//!
//! # The no-loss mechanism
//!
//! Into the shards, exactly once: each input partition's batches and its
//! offset commit in one transaction, and shard readers read committed
//! records only. Per shard, as a single instance did per input: every
//! window remembers the shard offset a restart must replay from to rebuild
//! it (its lowest event offset, or the read position of its last
//! checkpoint), and a shard's *safe offset* is the lowest over its held
//! windows. Every `DISTINCTLY_COMMIT_INTERVAL_SECONDS` every held window is
//! checkpointed to the state topic ([`state`]), the producer is flushed
//! (partial counts and checkpoints acknowledged with `acks=all`), the
//! checkpointed windows' replay offsets move up to the read position, and
//! the safe offsets are committed with every input partition's stream time
//! in the metadata. A counter that takes a shard (restart, rebalance)
//! restores its windows, replays from the safe offset without counting an
//! event twice (events below a window's checkpoint position are in it),
//! and holds back windows that were already closed until it has caught
//! up. Partial counts and output records are values keyed by window, so
//! writing one twice is harmless. The full argument: `docs/design.md`.

pub mod config;
mod context;
pub mod offsets;
pub mod partials;
mod service;
pub mod shard;
pub mod state;

pub use service::{run, RunOptions, RunSummary};

/// Errors that end `distinctly run`.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The client's own message; its cause is not chained, so that it is
    /// printed once.
    #[error("kafka client: {0}")]
    Client(rdkafka::error::KafkaError),
    #[error("authentication failed: {0} (check KAFKA_SERVICE_USERNAME / KAFKA_SERVICE_PASSWORD)")]
    Authentication(String),
    #[error(
        "TLS: the broker's certificate was refused: {0} (check DISTINCTLY_RDKAFKA_SSL_CA_LOCATION)"
    )]
    Tls(String),
    #[error(
        "another running instance has the same name (DISTINCTLY_INSTANCE_ID, or the host name in \
         a container) and took this one's place in the consumer group: give every instance a \
         name of its own ({0})"
    )]
    NameTaken(String),
    #[error("fatal kafka error: {0}")]
    Fatal(String),
    /// Events split under other groupings cannot be counted under these.
    #[error(
        "{what} by an instance with another DISTINCTLY_GROUP_BY than this one's {configured:?}: \
         every instance of a consumer group must run the same (to change it, use another \
         KAFKA_SERVICE_GROUP_ID and KAFKA_SERVICE_STATE_TOPIC)"
    )]
    OtherGroupBy { what: String, configured: String },
    #[error("state topic {topic}: {error}")]
    State {
        topic: String,
        error: state::StateError,
    },
    #[error("creating the topic {topic}: {code} (create it beforehand; see docs/operations.md)")]
    TopicCreation {
        topic: String,
        code: rdkafka::types::RDKafkaErrorCode,
    },
    #[error("could not deliver a record to {topic}: {reason}")]
    Delivery { topic: String, reason: String },
}

impl ServiceError {
    /// A cause the user can act on, rather than a client's report of
    /// its consequence.
    fn names_cause(&self) -> bool {
        !matches!(self, ServiceError::Client(_) | ServiceError::Fatal(_))
    }
}

impl From<rdkafka::error::KafkaError> for ServiceError {
    fn from(e: rdkafka::error::KafkaError) -> Self {
        ServiceError::Client(e)
    }
}
