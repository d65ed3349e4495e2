//! Copies of rejected messages to `KAFKA_SERVICE_DLQ_TOPIC`, with their
//! reason and origin in headers (at-least-once: a replay may copy again).

use super::produce::send;
use crate::internal_events::{DeadLetterFailed, InternalEvent, ProducedTo, RecordProduced};
use crate::kafka::context::Context;
use crate::reject::Reject;
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord};
use rdkafka::Message;

/// Bytes of a too-large message copied to the dead-letter topic.
const DLQ_TRUNCATE: usize = 64 << 10;

/// Copies `msg` (whose payload is `payload`) to `dlq`; returns whether the
/// copy was queued. A failed copy is logged and counted, not fatal.
pub(super) fn dead_letter(
    producer: &BaseProducer<Context>,
    dlq: &str,
    msg: &BorrowedMessage<'_>,
    payload: &[u8],
    reason: Reject,
) -> bool {
    let partition = msg.partition().to_string();
    let offset = msg.offset().to_string();
    let headers = OwnedHeaders::new()
        .insert(header("distinctly.reason", reason.as_str()))
        .insert(header("distinctly.source.topic", msg.topic()))
        .insert(header("distinctly.source.partition", &partition))
        .insert(header("distinctly.source.offset", &offset));
    // A too-large message is not copied whole: its first 64 KiB show what
    // it was.
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
    match send(producer, record) {
        Ok(()) => {
            RecordProduced {
                to: ProducedTo::DeadLetter,
            }
            .emit();
            true
        }
        Err(e) => {
            DeadLetterFailed {
                topic: dlq,
                error: &e,
            }
            .emit();
            false
        }
    }
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}
