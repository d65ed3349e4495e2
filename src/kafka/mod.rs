//! The Kafka service, `distinctly run`: consume the input topic, count per
//! window with the core, produce one record per emitted window (and per
//! correction) to the output topic, and commit offsets only when that loses
//! nothing.
//!
//! ```text
//! config.rs   KAFKA_* / DISTINCTLY_* service settings, librdkafka configs
//! context.rs  librdkafka callbacks: errors, rebalances (commit before revoke)
//! offsets.rs  safe offsets and the commit metadata that restores time
//! service/    the consume -> decode -> window -> produce -> commit loop:
//!             mod.rs (loop, tick), produce.rs (records, dead letters),
//!             commit.rs (safe offsets, flush then commit)
//! ```
//!
//! # The no-loss mechanism
//!
//! Every window remembers, per partition, the lowest offset of its events.
//! A partition's *safe offset* is the lowest offset still needed by a window
//! held in memory (open, or emitted and retained for corrections), or by an
//! event held by the time guard; with nothing held, the next offset to read.
//! Every `DISTINCTLY_COMMIT_INTERVAL_SECONDS` the producer is flushed (so every
//! record emitted so far, output and DLQ, is acknowledged by the broker with
//! `acks=all`), then the safe offsets are committed with the partition's
//! stream time in the commit metadata. After a crash at any moment, the
//! restarted service resumes from the safe offsets and so replays every event
//! of every window it had not finished: each is rebuilt complete. The stream
//! time from the metadata restores the watermark, so windows that were
//! already complete before the commit are not re-opened as partial ones by
//! replayed late events, and windows that were closed at the restored
//! watermark are only emitted again once replay has caught up with the end
//! of every partition. A rebalance is handled the same way: commit the safe
//! offsets before the partitions are revoked, forget all state, rebuild by
//! replay from the new assignment.

pub mod config;
mod context;
pub mod offsets;
mod service;

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
