//! The Kafka service, `distinctly run`: consume the input topic, count per
//! window with the core, produce one record per emitted window (and per
//! correction) to the output topic, and commit offsets only when that loses
//! nothing.
//!
//! ```text
//! config.rs   KAFKA_* / DISTINCTLY_* service settings, librdkafka configs
//! context.rs  librdkafka callbacks: errors, rebalances (commit before revoke)
//! offsets.rs  safe offsets and the commit metadata that restores time
//! state.rs    the state topic: checkpoints of held windows
//! service/    the consume -> decode -> window -> produce -> commit loop:
//!             mod.rs (loop, tick), produce.rs (records, dead letters),
//!             commit.rs (safe offsets, flush then commit)
//! ```
//!
//! # The no-loss mechanism
//!
//! Every window remembers, per partition, the offset a restart must replay
//! from to rebuild it: its lowest event offset, or the read position of its
//! last checkpoint. A partition's *safe offset* is the lowest such offset
//! over the held windows (open, or emitted and retained for corrections)
//! and the events held by the time guard; with nothing held, the next
//! offset to read. Every `DISTINCTLY_COMMIT_INTERVAL_SECONDS` every held
//! window is checkpointed to the state topic ([`state`]), the producer is
//! flushed (output, dead letters and checkpoints acknowledged with
//! `acks=all`), the checkpointed windows' replay offsets move up to the read
//! positions, and the safe offsets are committed with the partition's
//! stream time in the commit metadata. After a crash at any moment, the
//! restarted service restores the windows from the state topic and resumes
//! from the safe offsets: a replayed event that a restored window already
//! holds (below its checkpoint's position) is not counted again, and
//! windows the state topic lacks are rebuilt by the replay. The stream time
//! from the metadata restores the watermark, so windows that were already
//! complete are not re-opened as partial ones by replayed late events, and
//! windows closed at the restored watermark are only emitted again once
//! replay has caught up with the end of every partition. A rebalance is
//! handled the same way: commit the safe offsets before the partitions are
//! revoked, forget all state, restore and replay for the new assignment.

pub mod config;
mod context;
pub mod offsets;
mod service;
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
    #[error("fatal kafka error: {0}")]
    Fatal(String),
    #[error("could not deliver a record to {topic}: {reason}")]
    Delivery { topic: String, reason: String },
}

impl From<rdkafka::error::KafkaError> for ServiceError {
    fn from(e: rdkafka::error::KafkaError) -> Self {
        ServiceError::Client(e)
    }
}
