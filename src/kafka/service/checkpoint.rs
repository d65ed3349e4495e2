//! Checkpoints of the held windows to the state topic (format in
//! `kafka::state`), and their restore when this instance gets the whole
//! input topic.
//!
//! A checkpoint round, once per commit interval: every held window's
//! changes since the last round (new `exact` uids, a changed sketch) and
//! its header, which says up to which offset of every partition it
//! includes events (the read positions now). Once the producer has flushed
//! them, those positions are what a restart must replay from, so the
//! committed offsets move up to them. A round is skipped while a time guard
//! holds events (their offsets are read but in no window yet).
//!
//! Restoring: the latest value of every key of the state topic, read from
//! the beginning; each window goes back into its lane with its phase and
//! revision, and its `covered` offsets: a replayed event below them is
//! already in the window and is not counted again.

use super::assignment::Assignment;
use super::produce::send;
use super::Service;
use crate::internal_events::{InternalEvent, StateRestored};
use crate::kafka::context::Context;
use crate::kafka::state::{self, Records, Snapshot};
use crate::kafka::ServiceError;
use crate::window::lane::{Phase, Window};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::BaseRecord;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// How long to wait for the state topic to be created or read.
const STATE_TIMEOUT: Duration = Duration::from_secs(60);

/// The state topic and what is due to it.
pub(super) struct StateStore {
    pub topic: String,
    /// The topic is known to exist (made when missing, at the first
    /// complete assignment: the broker answers then).
    ready: bool,
    /// Checkpoint rounds of this process (generation numbers).
    round: u64,
    /// Tombstones not written yet (orphaned chunks found at restore, sizes
    /// no longer counted).
    pending: Records,
}

impl StateStore {
    pub fn new(topic: String) -> Self {
        StateStore {
            topic,
            ready: false,
            round: 0,
            pending: Records::new(),
        }
    }
}

/// Creates the state topic, compacted, unless it exists.
fn ensure_state_topic(
    consumer: &BaseConsumer<Context>,
    admin_config: rdkafka::ClientConfig,
    topic: &str,
) -> Result<(), ServiceError> {
    let metadata = consumer.fetch_metadata(Some(topic), STATE_TIMEOUT)?;
    let exists = metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && !t.partitions().is_empty() && t.error().is_none());
    if exists {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = admin_config.create()?;
    // Compaction keeps the latest value of each key; short segments let the
    // cleaner drop the superseded headers of busy windows soon.
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(-1))
        .set("cleanup.policy", "compact")
        .set("segment.ms", "600000")
        .set("min.cleanable.dirty.ratio", "0.1");
    let options = AdminOptions::new().operation_timeout(Some(STATE_TIMEOUT));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| ServiceError::Fatal(format!("creating the state topic: {e}")))?;
    let results = runtime.block_on(admin.create_topics(&[new], &options))?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(ServiceError::Fatal(format!(
                    "creating the state topic {name}: {code} (create it compacted, or set \
                     KAFKA_SERVICE_STATE_TOPIC)"
                )))
            }
        }
    }
    Ok(())
}

impl Service<'_> {
    /// Produces a checkpoint of every held window; returns the read
    /// positions it covers (per source), or `None` when no checkpoint can
    /// be taken now.
    pub(super) fn write_checkpoint(
        &mut self,
        consumer: &BaseConsumer<Context>,
    ) -> Result<Option<Vec<i64>>, ServiceError> {
        if self.state.is_none()
            || self.assignment != Assignment::Complete
            || self.windower.holds_events()
        {
            return Ok(None);
        }
        let Some(positions) = self.read_positions(consumer)? else {
            return Ok(None);
        };
        let covered: Vec<(i32, i64)> = self
            .partitions
            .iter()
            .zip(&positions)
            .map(|(p, &o)| (p.id, o))
            .collect();
        let kind = self.kind;
        let Some(state) = &mut self.state else {
            return Ok(None);
        };
        state.round += 1;
        let mut records = std::mem::take(&mut state.pending);
        for (size, start, saved) in self.windower.take_freed() {
            state::forget_window(size, start, saved, &mut records);
        }
        for (size, window) in self.windower.windows_mut() {
            state::checkpoint_window(size, window, kind, state.round, &covered, &mut records);
        }
        let topic = state.topic.clone();
        for (key, value) in &records {
            let mut record = BaseRecord::<str, [u8]>::to(&topic).key(key).partition(0);
            if let Some(v) = value {
                record = record.payload(v);
            }
            send(&self.producer, record, || {})?;
        }
        Ok(Some(positions))
    }

    /// The next offset to read of every partition: read so far, else where
    /// the consumer stands; `None` if one is not known yet.
    fn read_positions(
        &self,
        consumer: &BaseConsumer<Context>,
    ) -> Result<Option<Vec<i64>>, ServiceError> {
        let mut positions = Vec::with_capacity(self.partitions.len());
        let mut known: Option<TopicPartitionList> = None;
        for part in &self.partitions {
            let offset = match part.next_offset.or(part.start_offset) {
                Some(o) => o,
                None => {
                    let list = match &known {
                        Some(l) => l,
                        None => known.insert(consumer.position()?),
                    };
                    let topic = &self.kafka.env.service_input_topic;
                    match list.find_partition(topic, part.id).map(|e| e.offset()) {
                        Some(Offset::Offset(o)) => o,
                        _ => return Ok(None),
                    }
                }
            };
            positions.push(offset);
        }
        Ok(Some(positions))
    }

    /// Reads the state topic and puts every window back (the assignment is
    /// complete and the windower was just reset). `replay` is how many
    /// messages lie between the committed offsets and the partitions' ends.
    pub(super) fn restore_state(
        &mut self,
        consumer: &BaseConsumer<Context>,
        replay: i64,
    ) -> Result<(), ServiceError> {
        let Some(state) = &mut self.state else {
            return Ok(());
        };
        if !state.ready {
            ensure_state_topic(consumer, self.kafka.admin_config(), &state.topic)?;
            state.ready = true;
        }
        let started = Instant::now();
        let snapshot = read_snapshot(self.kafka, &state.topic)?;
        let (windows, orphans) = snapshot
            .windows(self.kind)
            .map_err(|e| ServiceError::Fatal(format!("state topic {}: {e}", state.topic)))?;
        for key in orphans {
            state.pending.push((key, None));
        }
        let mut restored = 0;
        for w in windows {
            let h = w.header;
            let covered: Vec<i64> = self
                .partitions
                .iter()
                .map(|p| {
                    h.covered
                        .iter()
                        .find(|(id, _)| *id == p.id)
                        .map_or(i64::MIN, |&(_, o)| o)
                })
                .collect();
            let window = Window {
                start: h.start,
                end: h.end,
                counter: w.counter,
                events: h.events,
                phase: h.phase,
                // Emitted before? Emit its count again once replay caught
                // up: the crash may have come before that record was sent.
                changed: h.changed || h.phase != Phase::Open,
                // A partition the checkpoint did not know gave it no event.
                replay_from: covered
                    .iter()
                    .map(|&c| if c == i64::MIN { i64::MAX } else { c })
                    .collect(),
                covered,
                saved: Some(h.saved),
                dirty: false,
            };
            if self.windower.restore_window(h.size, window) {
                restored += 1;
            } else {
                // A size no longer counted.
                state::forget_window(h.size, h.start, h.saved, &mut state.pending);
            }
        }
        StateRestored {
            topic: &state.topic,
            windows: restored,
            replay_messages: replay,
            seconds: started.elapsed().as_secs_f64(),
        }
        .emit();
        Ok(())
    }
}

/// The latest value of every key of `topic`, read from its beginning.
fn read_snapshot(
    kafka: &crate::kafka::config::KafkaConfig,
    topic: &str,
) -> Result<Snapshot, ServiceError> {
    let mut config = kafka.consumer_config();
    config.set(
        "group.id",
        format!("{}-state-reader", kafka.env.service_group_id),
    );
    config.set("enable.partition.eof", "true");
    let reader: BaseConsumer = config.create()?;
    let mut snapshot = Snapshot::default();
    let (low, high) = reader.fetch_watermarks(topic, 0, STATE_TIMEOUT)?;
    if high <= low {
        return Ok(snapshot);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    reader.assign(&tpl)?;
    let deadline = Instant::now() + STATE_TIMEOUT;
    loop {
        if Instant::now() > deadline {
            return Err(ServiceError::Fatal(format!(
                "reading the state topic {topic}: not done within {} s",
                STATE_TIMEOUT.as_secs()
            )));
        }
        match reader.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
                snapshot.apply(key, m.payload().map(<[u8]>::to_vec));
                if m.offset() + 1 >= high {
                    return Ok(snapshot);
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(snapshot),
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
}
