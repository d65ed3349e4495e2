//! Producer helpers shared by the stages.
//!
//! rust-rdkafka's `BaseProducer::poll(t)` serves events until `t` has passed,
//! even once there are none left (busy, in a loop of clock reads), and its
//! `flush` polls in 100 ms steps: a flush (and a transaction commit, which
//! flushes first) would take at least 100 ms. These serve what is there
//! and sleep 1 ms steps instead.

use crate::kafka::context::Context;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::time::{Duration, Instant};

/// How long one wait for the producer's queue lasts.
const STEP: Duration = Duration::from_millis(1);

/// Enqueues a record, waiting while librdkafka's queue is full.
pub(super) fn send<K, P>(
    producer: &BaseProducer<Context>,
    mut record: BaseRecord<'_, K, P>,
) -> Result<(), KafkaError>
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                producer.poll(Duration::ZERO);
                std::thread::sleep(STEP);
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Waits until every record sent so far is acknowledged (or failed) and its
/// delivery report served, for at most `timeout`.
pub(super) fn flush(producer: &BaseProducer<Context>, timeout: Duration) -> Result<(), KafkaError> {
    let deadline = Instant::now() + timeout;
    loop {
        producer.poll(Duration::ZERO);
        if producer.in_flight_count() == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
        }
        std::thread::sleep(STEP);
    }
}
