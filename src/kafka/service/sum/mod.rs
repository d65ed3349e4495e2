//! Stage 3, sum: the instance holding the partials topic (one partition)
//! reads it whole, then follows it, and writes one record per window to the
//! output topic: the sum of the shards' counts (shards see disjoint users,
//! so the sum is the distinct count), once every shard's watermark passed
//! the window's end, and a new revision whenever a shard corrects it.
//!
//! While the whole input is idle a window is emitted early (provisional,
//! as `count` does) if every shard read the same markers, so the shards'
//! counts are of the same events. What was emitted goes to the partials
//! topic too (`e/` keys), before the record (`sent: false`) and after it
//! (`sent: true`): a summer that takes over continues the revisions, and
//! re-sends what may not have gone out. Once it holds the partition, those
//! keys are its own: read back, they are ignored.
//!
//! Windows past retention at every shard's watermark are freed, behind the
//! freed watermark (`f`). A count that arrives later for a window below it
//! is a restored shard's copy of one already summed and emitted: it is
//! ignored, never summed again from part of the shards.
//!
//! A window's groups (`DISTINCTLY_GROUP_BY`) are summed the same way, each
//! with its own revisions (`q/` and `h/` keys), complete when the window
//! is ([`windows`] holds both).

mod read;
mod windows;

use super::produce::{flush, send};
use super::stage_loop::{self, StageLoop};
use super::{assigned, clients, Ctx, Stage};
use crate::group::GroupLabel;
use crate::internal_events::{
    InputDrained, InternalEvent, OutputNotAcknowledged, OutputPaused, OutputResumed,
    PartitionsAssigned, ProducedTo, RecordProduced,
};
use crate::kafka::context::{Context, Shared};
use crate::kafka::partials::{self, Emitted, Freed, Key, Status};
use crate::kafka::ServiceError;
use crate::metrics::OutputPublisher;
use crate::record::{Format, WindowRecord};
use crate::window::size::WindowSize;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{BaseProducer, BaseRecord};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use windows::SumWindow;

const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// A shard that has not reported for this long pauses the output visibly
/// (log, `distinctly_output_paused`); shorter is a start or a take-over,
/// while the counters catch up.
const PAUSE_REPORT_AFTER: Duration = Duration::from_secs(10);

/// What the summer did.
#[derive(Debug, Clone, Default)]
pub(crate) struct SumStats {
    pub records_produced: u64,
    pub windows_emitted: u64,
    pub corrections_emitted: u64,
}

/// What the shards' statuses allow.
#[derive(Debug, Clone, Copy)]
struct Completion {
    /// Windows ending by this are complete in every shard.
    watermark: Option<u64>,
    /// The input is idle and every shard counted the same events.
    idle: bool,
    /// Every shard emitted everything for this process's drain.
    drained: bool,
}

struct Summer<'a> {
    ctx: &'a Ctx<'a>,
    shared: Arc<Shared>,
    consumer: Arc<BaseConsumer<Context>>,
    /// Watermarks, on a connection of their own (see the counter's).
    meta: BaseConsumer<Context>,
    producer: BaseProducer<Context>,
    /// The partials partition is ours.
    held: bool,
    /// Read up to where it ended when it was assigned, or to its end.
    caught_up: bool,
    /// The partition's end when it was assigned.
    end_at_assignment: i64,
    /// Something changed since the last evaluation.
    dirty: bool,
    sizes: Vec<WindowSize>,
    /// By (index into `sizes`, start).
    windows: BTreeMap<(usize, u64), SumWindow>,
    statuses: Vec<Option<Status>>,
    /// Windows that ended at least the retention before this were emitted
    /// and freed (from `f`, and raised as windows are freed): a count for
    /// one is a stray.
    freed_below: u64,
    buf: Vec<u8>,
    /// Some shard has not reported since the partials were read, since
    /// then; reported as paused after [`PAUSE_REPORT_AFTER`].
    missing_since: Option<Instant>,
    paused: bool,
    stats: SumStats,
    metrics: Option<OutputPublisher>,
    /// How records are written (local times, groupings).
    format: Format,
}

pub(super) fn run(ctx: &Ctx<'_>) -> Result<SumStats, ServiceError> {
    let mut s = Summer::new(ctx)?;
    let result = stage_loop::run(&mut s, ctx);
    result.map(|()| s.stats)
}

impl<'a> Summer<'a> {
    fn new(ctx: &'a Ctx<'a>) -> Result<Self, ServiceError> {
        let shared = Arc::new(Shared::with_output(
            None,
            &ctx.kafka.env.service_output_topic,
        ));
        let consumer = Arc::new(clients::stage_consumer(
            ctx.kafka,
            Stage::Sum,
            shared.clone(),
        )?);
        consumer.subscribe(&[ctx.topology.partials.as_str()])?;
        let producer = clients::producer(ctx.kafka, shared.clone())?;
        let meta = clients::plain_consumer(ctx.kafka, shared.clone())?;
        Ok(Summer {
            ctx,
            shared,
            consumer,
            meta,
            producer,
            held: false,
            caught_up: false,
            end_at_assignment: 0,
            dirty: false,
            sizes: ctx.core.window_config().sizes,
            windows: BTreeMap::new(),
            statuses: vec![None; ctx.topology.shard_count],
            freed_below: 0,
            buf: Vec::with_capacity(256),
            missing_since: None,
            paused: false,
            stats: SumStats::default(),
            metrics: OutputPublisher::if_enabled(),
            format: Format::new(&ctx.core.timezone, &ctx.groupings)
                .map_err(|e| crate::config::invalid("DISTINCTLY_TIMEZONE", e))?,
        })
    }

    fn on_rebalance(&mut self) -> Result<(), ServiceError> {
        let topic = &self.ctx.topology.partials;
        let ids = assigned(&self.consumer, topic)?;
        let held = !ids.is_empty();
        if held != self.held {
            // Taken or lost: either way, start over from the beginning.
            self.held = held;
            let (low, high) = if held {
                self.meta.fetch_watermarks(topic, 0, FLUSH_TIMEOUT)?
            } else {
                (0, 0)
            };
            self.end_at_assignment = high;
            self.caught_up = held && high <= low;
            self.dirty = true;
            self.windows.clear();
            self.statuses.iter_mut().for_each(|s| *s = None);
            self.freed_below = 0;
        }
        PartitionsAssigned {
            topic,
            partitions: &ids,
            total: 1,
            input: false,
        }
        .emit();
        Ok(())
    }

    /// Forgets windows below the freed watermark that were never emitted
    /// (by this summer or one before it): counts that restored shards sent
    /// again after the window was freed, read before the `f` record that
    /// says so (compaction keeps only the latest `f`). Their keys are
    /// deleted again.
    fn drop_strays(&mut self) -> Result<(), ServiceError> {
        let strays: Vec<(usize, u64)> = self
            .windows
            .iter()
            .filter(|(_, w)| !w.emitted() && self.is_freed(w.end))
            .map(|(&k, _)| k)
            .collect();
        for (i, start) in strays {
            if let Some(w) = self.windows.remove(&(i, start)) {
                self.delete_parts(i, start, &w)?;
            }
        }
        Ok(())
    }

    /// Tombstones for the shards' counts of window `start` of size `i`.
    fn delete_parts(&self, i: usize, start: u64, w: &SumWindow) -> Result<(), ServiceError> {
        let size = self.sizes[i];
        for (group, summed) in w.slots() {
            for shard in summed.shards() {
                let key = match &group {
                    None => Key::Part { size, start, shard },
                    Some(g) => Key::GroupPart {
                        size,
                        start,
                        shard,
                        group: g.clone(),
                    },
                };
                self.send_key(&key.to_string(), None)?;
            }
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<(), ServiceError> {
        self.ctx.tick_stage(Stage::Sum, &self.shared)?;
        self.producer.poll(Duration::ZERO);
        if self.held && self.caught_up {
            self.report_pause();
        }
        if !(self.held && self.caught_up && self.dirty) {
            return Ok(());
        }
        self.dirty = false;
        let done = self.completion();
        self.drop_strays()?;
        if self.emit(done)? {
            self.free(done)?;
        }
        if let Some(m) = &mut self.metrics {
            m.publish_counts(self.stats.windows_emitted, self.stats.corrections_emitted);
        }
        if done.drained {
            // `--exit-when-idle`: everything is out once acknowledged.
            if let Err(e) = flush(&self.producer, FLUSH_TIMEOUT) {
                OutputNotAcknowledged { error: &e }.emit();
                return Err(ServiceError::Fatal(
                    "input drained, but the output was not acknowledged in time; a rerun \
                     resumes"
                        .into(),
                ));
            }
            InputDrained.emit();
            self.ctx.stop_all();
        }
        Ok(())
    }

    /// Says when output pauses because some shard has not reported for
    /// [`PAUSE_REPORT_AFTER`] (no counter holds it), and when it resumes.
    fn report_pause(&mut self) {
        let shards = self.statuses.len();
        let missing = self.statuses.iter().filter(|s| s.is_none()).count();
        if missing == 0 {
            self.missing_since = None;
            if self.paused {
                self.paused = false;
                OutputResumed { shards }.emit();
            }
            return;
        }
        let since = *self.missing_since.get_or_insert_with(Instant::now);
        if !self.paused && since.elapsed() >= PAUSE_REPORT_AFTER {
            self.paused = true;
            OutputPaused { missing, shards }.emit();
        }
    }

    /// What the shards' latest statuses say.
    fn completion(&self) -> Completion {
        let all: Option<Vec<&Status>> = self.statuses.iter().map(Option::as_ref).collect();
        let Some(all) = all else {
            return Completion {
                watermark: None,
                idle: false,
                drained: false,
            };
        };
        let watermark = all
            .iter()
            .map(|s| s.watermark)
            .collect::<Option<Vec<u64>>>()
            .and_then(|w| w.into_iter().min());
        let idle =
            all.iter().all(|s| s.idle) && all.windows(2).all(|w| w[0].sources == w[1].sources);
        let drained = self.ctx.opts.exit_when_idle
            && all
                .iter()
                .all(|s| s.drained.as_deref() == Some(self.ctx.drain_token.as_str()));
        Completion {
            watermark,
            idle,
            drained,
        }
    }

    /// Emits every window that is complete (or may be emitted early), and
    /// each of its groups, whose sum differs from what was last emitted.
    /// Returns whether everything due went out (a failed flush retries at
    /// the next tick).
    fn emit(&mut self, done: Completion) -> Result<bool, ServiceError> {
        type Due = ((usize, u64), Option<GroupLabel>, Emitted);
        let mut due: Vec<Due> = Vec::new();
        for (&(i, start), w) in &self.windows {
            let ready = done.drained || done.idle || done.watermark.is_some_and(|wm| w.end <= wm);
            if !ready || !w.total.has_parts() {
                continue;
            }
            due.extend(w.due().into_iter().map(|(g, e)| ((i, start), g, e)));
        }
        if due.is_empty() {
            return Ok(true);
        }
        // First what is about to be sent, acknowledged: a summer taking
        // over after a crash then knows the revision may be out.
        for ((i, start), group, e) in &due {
            self.send_emitted(*i, *start, group.as_ref(), Some(*e))?;
        }
        if let Err(e) = flush(&self.producer, FLUSH_TIMEOUT) {
            OutputNotAcknowledged { error: &e }.emit();
            self.dirty = true; // tried again at the next tick
            return Ok(false);
        }
        let labelled = self.sizes.len() > 1;
        let mut records = Vec::with_capacity(due.len());
        for ((i, start), group, e) in due {
            let r = WindowRecord {
                rolling: None,
                start_ts: start,
                end_ts: e.end_ts,
                size: labelled.then_some(self.sizes[i]),
                unique_users: e.unique_users,
                events: e.events,
                counter: self.ctx.kind,
                revision: e.revision,
                group,
            };
            self.buf.clear();
            self.format.write(&r, &mut self.buf);
            send(
                &self.producer,
                BaseRecord::<str, [u8]>::to(&self.ctx.topology.output)
                    .key(&self.format.key(&r))
                    .payload(&self.buf),
            )?;
            self.stats.records_produced += 1;
            if r.group.is_none() {
                if e.revision == 0 {
                    self.stats.windows_emitted += 1;
                } else {
                    self.stats.corrections_emitted += 1;
                }
            }
            RecordProduced {
                to: ProducedTo::Output,
            }
            .emit();
            let sent = Emitted { sent: true, ..e };
            self.send_emitted(i, start, r.group.as_ref(), Some(sent))?;
            if let Some(w) = self.windows.get_mut(&(i, start)) {
                w.slot(r.group.as_ref()).emitted = Some(sent);
            }
            records.push(r);
        }
        if let Some(m) = &mut self.metrics {
            m.observe(&records, self.sizes.first().copied().filter(|_| labelled));
        }
        Ok(true)
    }

    /// Forgets windows every shard has freed (past retention) once their
    /// last records went out: the freed watermark first, then tombstones
    /// for their keys in the partials topic (the total's emitted key last).
    fn free(&mut self, done: Completion) -> Result<(), ServiceError> {
        let Some(wm) = done.watermark else {
            return Ok(());
        };
        let retention = self.ctx.core.late_retention_seconds;
        let expired: Vec<(usize, u64)> = self
            .windows
            .iter()
            .filter(|(_, w)| w.end.saturating_add(retention) <= wm && w.settled())
            .map(|(&k, _)| k)
            .collect();
        if wm > self.freed_below && !expired.is_empty() {
            self.send_key(
                &Key::Freed.to_string(),
                Some(&partials::encode(&Freed { below: wm })),
            )?;
        }
        self.freed_below = self.freed_below.max(wm);
        for (i, start) in expired {
            let Some(w) = self.windows.remove(&(i, start)) else {
                continue;
            };
            self.delete_parts(i, start, &w)?;
            for (group, _) in w.slots().filter(|(g, _)| g.is_some()) {
                self.send_emitted(i, start, group.as_ref(), None)?;
            }
            self.send_emitted(i, start, None, None)?;
        }
        Ok(())
    }

    /// What was emitted for the total (`group: None`) or a group of window
    /// `start` of size `i` (`None`: a tombstone).
    fn send_emitted(
        &self,
        i: usize,
        start: u64,
        group: Option<&GroupLabel>,
        e: Option<Emitted>,
    ) -> Result<(), ServiceError> {
        let size = self.sizes[i];
        let key = match group {
            None => Key::Emitted { size, start },
            Some(g) => Key::GroupEmitted {
                size,
                start,
                group: g.clone(),
            },
        }
        .to_string();
        self.send_key(&key, e.map(|e| partials::encode(&e)).as_deref())
    }

    fn send_key(&self, key: &str, value: Option<&[u8]>) -> Result<(), ServiceError> {
        let mut record = BaseRecord::<str, [u8]>::to(&self.ctx.topology.partials)
            .key(key)
            .partition(0);
        if let Some(v) = value {
            record = record.payload(v);
        }
        Ok(send(&self.producer, record)?)
    }
}

impl StageLoop for Summer<'_> {
    const STAGE: Stage = Stage::Sum;

    fn consumer(&self) -> Arc<BaseConsumer<Context>> {
        Arc::clone(&self.consumer)
    }

    fn shared(&self) -> &Shared {
        &self.shared
    }

    fn on_stop(&mut self) -> Result<(), ServiceError> {
        if let Err(e) = flush(&self.producer, FLUSH_TIMEOUT) {
            OutputNotAcknowledged { error: &e }.emit();
        }
        Ok(())
    }

    fn on_rebalance(&mut self) -> Result<(), ServiceError> {
        Summer::on_rebalance(self)
    }

    fn on_message(&mut self, msg: &BorrowedMessage<'_>) -> Result<(), ServiceError> {
        Summer::on_message(self, msg);
        Ok(())
    }

    fn on_eof(&mut self, _partition: i32) -> Result<(), ServiceError> {
        if self.held && !self.caught_up {
            self.caught_up = true;
            self.dirty = true;
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<(), ServiceError> {
        Summer::tick(self)
    }
}
