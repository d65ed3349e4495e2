//! What the live page needs from the broker, on a thread of its own: the
//! output topic read back (so every instance shows every window, whichever
//! sums them, and only what was committed), and how many instances count
//! (the members of the count stage's group).

use super::{clients, Ctx, Stage};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// How often the group is described and the topic's partitions listed.
const EVERY: Duration = Duration::from_secs(10);
/// Longest wait for one metadata answer: short, so that a stop while the
/// broker is away is not held up by this thread (it asks again later).
const TIMEOUT: Duration = Duration::from_secs(1);
/// Records read back per partition at start (the latest windows').
const TAIL: i64 = 20_000;

/// Follows the output topic until the service stops. A failed ask keeps
/// the last answer; the stages' own clients report the broker's errors.
pub fn follow(ctx: &Ctx<'_>) {
    let mut config = ctx.kafka.consumer_config();
    config.set("statistics.interval.ms", "0");
    config.set(
        "group.id",
        format!("{}-page", ctx.kafka.env.service_group_id),
    );
    let Ok(consumer) = config.create_with_context::<_, BaseConsumer<Quiet>>(Quiet) else {
        return;
    };
    let group = clients::group(ctx.kafka, Stage::Count);
    let output = ctx.kafka.env.service_output_topic.clone();
    let mut assigned = 0usize;
    let mut next = Instant::now();
    while !ctx.stopping() {
        if Instant::now() >= next {
            next = Instant::now() + EVERY;
            if let Ok(list) = consumer.fetch_group_list(Some(&group), TIMEOUT) {
                if let Some(g) = list.groups().iter().find(|g| g.name() == group) {
                    crate::live::set_instances(g.members().len());
                }
            }
            assigned = assign_new(&consumer, &output, assigned);
        }
        // A record, or nothing within the poll (also when nothing is
        // assigned yet).
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            if let Some(payload) = m.payload() {
                crate::live::observe_json(payload);
            }
        }
    }
}

/// Assigns the partitions of `topic` beyond the first `had`, each from its
/// last [`TAIL`] records; returns how many are assigned now.
fn assign_new(consumer: &BaseConsumer<Quiet>, topic: &str, had: usize) -> usize {
    let Ok(md) = consumer.fetch_metadata(Some(topic), TIMEOUT) else {
        return had;
    };
    let count = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len());
    if count <= had {
        return had;
    }
    let mut list = TopicPartitionList::new();
    for p in 0..count {
        // Partitions are numbered from 0, fewer than i32::MAX.
        let _ = list.add_partition_offset(topic, p as i32, Offset::OffsetTail(TAIL));
    }
    match consumer.assign(&list) {
        Ok(()) => count,
        Err(_) => had,
    }
}

/// A client that logs nothing.
struct Quiet;

impl ClientContext for Quiet {
    fn log(&self, _: rdkafka::config::RDKafkaLogLevel, _: &str, _: &str) {}
    fn error(&self, _: rdkafka::error::KafkaError, _: &str) {}
}

impl ConsumerContext for Quiet {}
