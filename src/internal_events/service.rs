//! Events of the service's life: start, pause and resume of the output,
//! shutdown, the end of a drain, rejected messages, settings warnings.

use super::InternalEvent;
use crate::config::CoreConfig;
use crate::metrics::names;
use crate::reject::{Reject, RejectCounts};
use tracing::{debug, error, info, warn};

const TARGET: &str = "distinctly";

/// The Kafka side of the settings `run` starts with, as logged (the
/// `kafka` module fills it in from its configuration).
pub struct KafkaSettings<'a> {
    pub bootstrap: String,
    pub input_topic: &'a str,
    pub output_topic: &'a str,
    pub group: &'a str,
    pub security_protocol: String,
    pub username: &'a str,
    pub password_set: bool,
    pub dlq_topic: &'a str,
    pub auto_offset_reset: &'a str,
    pub idle_partition_seconds: u64,
    pub commit_interval_seconds: u64,
    pub consumer_properties: &'a [(String, String)],
    pub producer_properties: &'a [(String, String)],
}

/// `run` starts: the effective settings, once (secrets redacted).
pub struct ServiceStarted<'a> {
    pub core: &'a CoreConfig,
    pub kafka: &'a KafkaSettings<'a>,
}

impl InternalEvent for ServiceStarted<'_> {
    fn emit(self) {
        let (c, k) = (self.core, self.kafka);
        let counter = c
            .counter_kind()
            .map_or_else(|_| c.counter.clone(), |k| k.to_string());
        info!(
            target: TARGET,
            version = env!("CARGO_PKG_VERSION"),
            bootstrap = %k.bootstrap,
            input_topic = %k.input_topic,
            output_topic = %k.output_topic,
            group = %k.group,
            security_protocol = %k.security_protocol,
            username = k.username,
            password = if k.password_set { "***" } else { "" },
            dlq_topic = k.dlq_topic,
            auto_offset_reset = %k.auto_offset_reset,
            counter = %counter,
            windows = %c.sizes().map_or_else(|_| String::new(), |s| s.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")),
            timezone = %c.timezone,
            allowed_lateness_seconds = c.allowed_lateness_seconds,
            late_retention_seconds = c.late_retention_seconds,
            max_ahead_seconds = c.max_ahead_seconds,
            max_behind_seconds = c.max_behind_seconds,
            jump_confirm_events = c.jump_confirm_events,
            max_message_bytes = c.max_message_bytes,
            idle_partition_seconds = k.idle_partition_seconds,
            commit_interval_seconds = k.commit_interval_seconds,
            consumer_properties = %redacted(k.consumer_properties),
            producer_properties = %redacted(k.producer_properties),
            "starting: {} -> {} via {} (group {}, counter {counter})",
            k.input_topic,
            k.output_topic,
            k.bootstrap,
            k.group,
        );
    }
}

/// `name=value` pairs, values of secret-looking names replaced by `***`.
fn redacted(props: &[(String, String)]) -> String {
    props
        .iter()
        .map(|(k, v)| {
            let secret = ["password", "secret", "pem", "jaas", "token"]
                .iter()
                .any(|s| k.contains(s));
            format!("{k}={}", if secret { "***" } else { v.as_str() })
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Output pauses: this instance sums the shards' counts, but some shard has
/// not reported yet (no counter holds it, or its counter is catching up).
pub struct OutputPaused {
    pub missing: usize,
    pub shards: usize,
}

impl InternalEvent for OutputPaused {
    fn emit(self) {
        metrics::gauge!(names::OUTPUT_PAUSED).set(1.0);
        warn!(target: TARGET, missing = self.missing, shards = self.shards,
            "{} of {} shards have not reported: output paused until they do",
            self.missing, self.shards);
    }
}

/// Output resumes: every shard reports.
pub struct OutputResumed {
    pub shards: usize,
}

impl InternalEvent for OutputResumed {
    fn emit(self) {
        metrics::gauge!(names::OUTPUT_PAUSED).set(0.0);
        info!(target: TARGET, shards = self.shards, "all {} shards report: output resumed",
            self.shards);
    }
}

/// The input topic does not exist (yet): `run` waits for it, not ready.
pub struct InputTopicMissing<'a> {
    pub topic: &'a str,
}

impl InternalEvent for InputTopicMissing<'_> {
    fn emit(self) {
        warn!(target: TARGET, topic = self.topic,
            "input topic {} does not exist: waiting for it (check KAFKA_SERVICE_INPUT_TOPIC)",
            self.topic);
    }
}

/// The held windows came back from the state topic after an assignment.
pub struct StateRestored<'a> {
    pub topic: &'a str,
    pub windows: usize,
    /// Messages between the committed offsets and the partitions' ends:
    /// what is read again, plus what arrived meanwhile.
    pub replay_messages: i64,
    pub seconds: f64,
}

impl InternalEvent for StateRestored<'_> {
    fn emit(self) {
        info!(target: TARGET, topic = self.topic, windows = self.windows,
            replay_messages = self.replay_messages, seconds = self.seconds,
            "restored {} windows from {}; replaying {} messages", self.windows, self.topic,
            self.replay_messages);
    }
}

/// The state topic holds records under keys distinctly does not write
/// (another program's): they are ignored, once per restore.
pub struct ForeignStateRecords<'a> {
    pub topic: &'a str,
    pub count: usize,
    pub example: &'a str,
}

impl InternalEvent for ForeignStateRecords<'_> {
    fn emit(self) {
        warn!(target: TARGET, topic = self.topic, count = self.count, example = self.example,
            "ignored {} records of {} that distinctly did not write (keys such as {:?})",
            self.count, self.topic, self.example);
    }
}

/// Events of groups beyond `DISTINCTLY_MAX_GROUPS` went to overflow
/// records (counted in `distinctly_group_overflow_events_total` with the
/// hot path's totals); logged at most once per [`super::RATE_LIMIT`].
pub struct GroupsOverflowed<'a> {
    pub group_by: &'a str,
    pub max_groups: usize,
    /// Since the last time this was emitted for the grouping.
    pub events: u64,
}

impl InternalEvent for GroupsOverflowed<'_> {
    fn emit(self) {
        static LIMIT: super::RateLimit = super::RateLimit::new();
        if let Some(suppressed) = LIMIT.allow() {
            warn!(target: TARGET, group_by = self.group_by, max_groups = self.max_groups,
                events = self.events, suppressed,
                "{}: {} events of groups beyond DISTINCTLY_MAX_GROUPS={} counted in overflow \
                 records", self.group_by, self.events, self.max_groups);
        }
    }
}

/// Watches the overflow counts of a windower (or several) and says when
/// they grow ([`GroupsOverflowed`]).
#[derive(Debug, Default)]
pub struct OverflowWatch {
    seen: [u64; crate::group::MAX_GROUPINGS],
}

impl OverflowWatch {
    /// `now`: the overflow counts per grouping (as in `WindowStats`).
    pub fn check(&mut self, groupings: &crate::group::Groupings, now: &[u64]) {
        for (g, grouping) in groupings.list.iter().enumerate() {
            let n = now.get(g).copied().unwrap_or(0);
            if n > self.seen[g] {
                GroupsOverflowed {
                    group_by: &grouping.text,
                    max_groups: groupings.max_groups,
                    events: n - self.seen[g],
                }
                .emit();
                self.seen[g] = n;
            }
        }
    }
}

/// SIGTERM or SIGINT: the service stops after committing what is safe.
pub struct ShutdownRequested;

impl InternalEvent for ShutdownRequested {
    fn emit(self) {
        info!(target: TARGET, "stopping: committing what is safe");
    }
}

/// `--exit-when-idle`: every partition was read to its end.
pub struct InputDrained;

impl InternalEvent for InputDrained {
    fn emit(self) {
        info!(target: TARGET, "input drained, exiting");
    }
}

/// What a run did, as it ends.
pub struct ServiceStopped {
    pub messages: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub rejected: u64,
    pub records_produced: u64,
    pub dlq_produced: u64,
    pub windows_emitted: u64,
    pub corrections_emitted: u64,
}

impl InternalEvent for ServiceStopped {
    fn emit(self) {
        info!(
            target: TARGET,
            messages = self.messages,
            bytes = self.bytes,
            seconds = self.seconds,
            rejected = self.rejected,
            records_produced = self.records_produced,
            dlq_produced = self.dlq_produced,
            windows_emitted = self.windows_emitted,
            corrections_emitted = self.corrections_emitted,
            "stopped: read {} messages ({:.1} MB) in {:.1} s; rejected {}; {} records and {} \
             DLQ messages produced; windows {} emitted, {} corrections",
            self.messages,
            self.bytes as f64 / 1e6,
            self.seconds,
            self.rejected,
            self.records_produced,
            self.dlq_produced,
            self.windows_emitted,
            self.corrections_emitted,
        );
    }
}

/// A message was rejected. Counted into the caller's local counts (the hot
/// path publishes them once per tick), logged at `debug` with its origin.
pub struct MessageRejected<'a> {
    pub reason: Reject,
    pub partition: i32,
    pub offset: i64,
    pub counts: &'a mut RejectCounts,
}

impl InternalEvent for MessageRejected<'_> {
    #[inline]
    fn emit(self) {
        self.counts.add(self.reason);
        debug!(target: TARGET, reason = self.reason.as_str(), partition = self.partition,
            offset = self.offset, "message rejected");
    }
}

/// A `DISTINCTLY_*` variable that no setting reads (a typo).
pub struct UnknownVariable<'a> {
    pub name: &'a str,
    pub closest: Option<&'a str>,
}

impl InternalEvent for UnknownVariable<'_> {
    fn emit(self) {
        match self.closest {
            Some(known) => warn!(target: TARGET, variable = self.name,
                "{} is not a setting (did you mean {known}?)", self.name),
            None => warn!(target: TARGET, variable = self.name,
                "{} is not a setting; it is ignored", self.name),
        }
    }
}

/// The HTTP endpoints (`/metrics`, `/healthz`, `/readyz`) listen.
pub struct HttpServing {
    pub addr: std::net::SocketAddr,
}

impl InternalEvent for HttpServing {
    fn emit(self) {
        if self.addr.port() == 0 {
            // Port 0: the system picked a free port (benchmarks).
            info!(target: TARGET, address = %self.addr,
                "serving /metrics, /healthz and /readyz on {} (any free port)", self.addr.ip());
        } else {
            info!(target: TARGET, address = %self.addr,
                "serving /metrics, /healthz and /readyz on http://{}", self.addr);
        }
    }
}

/// `run` cannot go on (a setting, authentication, a refused certificate, a
/// lost record): the one line that says why, as the process exits.
pub struct ServiceFailed<'a> {
    pub error: &'a (dyn std::error::Error + 'static),
}

impl InternalEvent for ServiceFailed<'_> {
    fn emit(self) {
        error!(target: TARGET, "{}", crate::diag::one_line(self.error));
    }
}

/// A counter that took a shard read it up to its end: the windows it held
/// back are emitted, and the shard reports to the summer again.
pub struct ShardCaughtUp {
    pub shard: i32,
    pub seconds: f64,
}

impl InternalEvent for ShardCaughtUp {
    fn emit(self) {
        info!(target: TARGET, shard = self.shard, seconds = self.seconds,
            "shard {} caught up after {:.1} s", self.shard, self.seconds);
    }
}

/// `count --serve` read its whole input and keeps answering queries.
pub struct ServingQueries;

impl InternalEvent for ServingQueries {
    fn emit(self) {
        info!(target: TARGET,
            "input read: answering /v1/uniques until SIGINT or SIGTERM");
    }
}
