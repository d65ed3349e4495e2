//! Committing: the safe offsets (see `kafka::offsets`), committed only
//! after the producer has flushed every record emitted so far.

use super::assignment::Assignment;
use super::Service;
use crate::internal_events::{
    CommitFailed, InternalEvent, OffsetsCommitted, OutputNotAcknowledged,
};
use crate::kafka::context::Context;
use crate::kafka::{offsets, ServiceError};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

impl Service<'_> {
    /// Safe offset and metadata of every partition read since the assignment.
    pub(super) fn safe_offsets(&self) -> TopicPartitionList {
        let topic = &self.kafka.env.service_input_topic;
        let mut tpl = TopicPartitionList::new();
        for (src, part) in self.partitions.iter().enumerate() {
            let Some(next) = part.next_offset else {
                continue;
            };
            let safe = self
                .windower
                .min_offset_needed(src)
                .map_or(next, |o| o.min(next));
            let mut elem = tpl.add_partition(topic, part.id);
            let _ = elem.set_offset(Offset::Offset(safe));
            elem.set_metadata(offsets::encode(self.windower.stream_time(src)));
        }
        tpl
    }

    /// Flushes the producer (every emitted record acknowledged), then commits
    /// the safe offsets (`precomputed` or computed now; after a checkpoint
    /// that covers the read positions `covered`, those). Returns whether the
    /// output was acknowledged (nothing is committed otherwise).
    pub(super) fn commit(
        &mut self,
        consumer: &BaseConsumer<Context>,
        mode: CommitMode,
        precomputed: Option<TopicPartitionList>,
        covered: Option<Vec<i64>>,
    ) -> Result<bool, ServiceError> {
        self.last_commit = Instant::now();
        if self.assignment != Assignment::Complete {
            return Ok(false);
        }
        if !self.flush_output() {
            return Ok(false);
        }
        if let Some(positions) = covered {
            // The checkpoint is durable: replay can start where it stands.
            self.windower.checkpointed(&positions);
        }
        self.check_delivered()?;
        let tpl = precomputed.unwrap_or_else(|| self.safe_offsets());
        if tpl.count() == 0 {
            return Ok(true);
        }
        self.commit_offsets(consumer, mode, tpl)
    }

    /// Flushes the producer; false (and logged) if it did not finish in time.
    pub(super) fn flush_output(&mut self) -> bool {
        match self.producer.flush(FLUSH_TIMEOUT) {
            Ok(()) => true,
            Err(e) => {
                OutputNotAcknowledged { error: &e }.emit();
                false
            }
        }
    }

    /// Fails if a record was lost for good or the client failed.
    fn check_delivered(&self) -> Result<(), ServiceError> {
        if self.shared.delivery_failures.load(Ordering::SeqCst) > 0 {
            let (topic, reason) = self
                .shared
                .last_delivery_error
                .lock()
                .expect("not poisoned")
                .clone()
                .unwrap_or_default();
            return Err(ServiceError::Delivery { topic, reason });
        }
        self.check_fatal()
    }

    fn commit_offsets(
        &mut self,
        consumer: &BaseConsumer<Context>,
        mode: CommitMode,
        tpl: TopicPartitionList,
    ) -> Result<bool, ServiceError> {
        match consumer.commit(&tpl, mode) {
            Ok(()) => OffsetsCommitted {
                partitions: tpl.count(),
            }
            .emit(),
            Err(error) => {
                let retried = matches!(mode, CommitMode::Async);
                CommitFailed {
                    error: &error,
                    retried,
                    before_revoke: false,
                }
                .emit();
                if !retried {
                    return Err(error.into());
                }
            }
        }
        *self.shared.safe.lock().expect("not poisoned") = Some(tpl);
        Ok(true)
    }
}
