//! Producing: one output record per emitted window (and correction), and
//! dead-letter copies of rejected messages.

use super::assignment::Assignment;
use super::Service;
use crate::internal_events::{DeadLetterFailed, InternalEvent, ProducedTo, RecordProduced};
use crate::kafka::context::Context;
use crate::kafka::ServiceError;
use crate::metrics::Publisher;
use crate::reject::Reject;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord};
use rdkafka::Message;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Bytes of a too-large message copied to the dead-letter topic.
const DLQ_TRUNCATE: usize = 64 << 10;

impl Service<'_> {
    /// Sends every record emitted so far, keyed by window start (none while
    /// the assignment is partial: those counts would be partial).
    pub(super) fn produce_records(&mut self) -> Result<(), ServiceError> {
        if self.assignment != Assignment::Complete {
            self.records.clear();
            return Ok(());
        }
        if let Some(m) = &mut self.metrics {
            m.observe(&self.records, self.windower.sizes().next());
        }
        let topic = &self.kafka.env.service_output_topic;
        for r in self.records.drain(..) {
            self.record_buf.clear();
            r.write_json(&mut self.record_buf);
            let key = r.key();
            send(
                &self.producer,
                BaseRecord::<str, [u8]>::to(topic)
                    .key(&key)
                    .payload(&self.record_buf),
                || end_batch(&mut self.metrics),
            )?;
            self.summary.records_produced += 1;
            RecordProduced {
                to: ProducedTo::Output,
            }
            .emit();
        }
        Ok(())
    }

    /// Copies a rejected message to `KAFKA_SERVICE_DLQ_TOPIC`, if set, with
    /// its origin in headers. A failed copy is logged and counted, not fatal.
    pub(super) fn dead_letter(
        &mut self,
        msg: &BorrowedMessage<'_>,
        payload: &[u8],
        reason: Reject,
    ) {
        let Some(dlq) = &self.kafka.env.service_dlq_topic else {
            return;
        };
        let partition = msg.partition().to_string();
        let offset = msg.offset().to_string();
        let headers = OwnedHeaders::new()
            .insert(header("distinctly.reason", reason.as_str()))
            .insert(header("distinctly.source.topic", msg.topic()))
            .insert(header("distinctly.source.partition", &partition))
            .insert(header("distinctly.source.offset", &offset));
        // A too-large message is not copied whole: its first
        // 64 KiB show what it was.
        let (payload, headers) = if reason == Reject::TooLarge {
            let len = payload.len().to_string();
            let headers = headers.insert(header("distinctly.original.bytes", &len));
            (&payload[..payload.len().min(DLQ_TRUNCATE)], headers)
        } else {
            (payload, headers)
        };
        let mut record = BaseRecord::<[u8], [u8]>::to(dlq)
            .payload(payload)
            .headers(headers);
        if let Some(key) = msg.key() {
            record = record.key(key);
        }
        match send(&self.producer, record, || end_batch(&mut self.metrics)) {
            Ok(()) => {
                self.summary.dlq_produced += 1;
                RecordProduced {
                    to: ProducedTo::DeadLetter,
                }
                .emit();
            }
            Err(e) => {
                self.shared.dlq_failures.fetch_add(1, Ordering::Relaxed);
                DeadLetterFailed {
                    topic: dlq,
                    error: &e,
                }
                .emit();
            }
        }
    }
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

/// Ends the batch being timed (before a wait that is not processing).
fn end_batch(metrics: &mut Option<Publisher>) {
    if let Some(m) = metrics {
        m.batch_end();
    }
}

/// Enqueues a record, waiting while librdkafka's queue is full (`before_wait`
/// runs once before the first wait).
pub(super) fn send<K, P>(
    producer: &BaseProducer<Context>,
    mut record: BaseRecord<'_, K, P>,
    before_wait: impl FnOnce(),
) -> Result<(), ServiceError>
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    let mut before_wait = Some(before_wait);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                if let Some(f) = before_wait.take() {
                    f();
                }
                producer.poll(Duration::from_millis(50));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}
