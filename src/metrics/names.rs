//! Every metric distinctly exports: name, type, unit and help text, in one
//! place (docs/metrics.md's table is this list). Names follow Prometheus
//! conventions: `distinctly_` prefix, base units (seconds, bytes), `_total`
//! on counters. Labels are closed sets (outcome, reason, kind, partition):
//! never a user or uid.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

/// Gauge, always 1; labels `version`, `counter` (e.g. `hll-p14`),
/// `backend`, `precision` (empty for exact backends).
pub const BUILD_INFO: &str = "distinctly_build_info";
/// Counter; label `outcome`: `counted`, `late_corrected`, `late_dropped`,
/// `rejected`.
pub const EVENTS: &str = "distinctly_events_total";
/// Counter; label `reason`: one of the rejection reasons.
pub const EVENTS_REJECTED: &str = "distinctly_events_rejected_total";
/// Counter: messages (lines) read.
pub const MESSAGES: &str = "distinctly_messages_total";
/// Counter: message bytes read (after decompression).
pub const BYTES: &str = "distinctly_consumed_bytes_total";
/// Counter: windows emitted for the first time (revision 0).
pub const WINDOWS_EMITTED: &str = "distinctly_windows_emitted_total";
/// Counter: corrections emitted (revision > 0).
pub const CORRECTIONS_EMITTED: &str = "distinctly_window_corrections_total";
/// Gauge: windows not closed yet (those emitted early, provisionally,
/// while the input was idle included).
pub const WINDOWS_OPEN: &str = "distinctly_windows_open";
/// Gauge: windows closed and kept for late corrections.
pub const WINDOWS_RETAINED: &str = "distinctly_windows_retained";
/// Gauge: start (Unix seconds) of the newest window emitted.
pub const LAST_WINDOW_START: &str = "distinctly_last_window_start_seconds";
/// Gauge: unique users of the newest window emitted (latest revision).
pub const LAST_WINDOW_UNIQUE: &str = "distinctly_last_window_unique_users";
/// Gauge; label `window` (a window size, e.g. `1h`): heap bytes of the held
/// counters (open and retained windows) of that size.
pub const COUNTER_HEAP: &str = "distinctly_windows_heap_bytes";
/// Gauge; labels `group_by` (a grouping of `DISTINCTLY_GROUP_BY`, as
/// written) and `window` (a size): groups held by the open and retained
/// windows.
pub const GROUPS_HELD: &str = "distinctly_groups_held";
/// Counter; label `group_by`: events counted in a window's overflow record
/// (their group did not fit `DISTINCTLY_MAX_GROUPS`), over every size.
pub const GROUP_OVERFLOW: &str = "distinctly_group_overflow_events_total";
/// Counter; labels `group_by`, `reason` (`not_scalar`, `too_long`,
/// `duplicate`, `bad_escape`): events whose value made no group.
pub const GROUP_REFUSED: &str = "distinctly_group_values_refused_total";
/// Gauge; label `resolution` (a slice size of `DISTINCTLY_SLICES`, e.g.
/// `1h`): heap bytes of the range-query slices held of it.
pub const SLICES_HEAP: &str = "distinctly_slices_heap_bytes";
/// Gauge; label `resolution`: range-query slices held of it.
pub const SLICES_HELD: &str = "distinctly_slices_held";
/// Counter; label `resolution`: events older than its retention when they
/// came (in no slice of it).
pub const SLICES_DROPPED: &str = "distinctly_slices_dropped_events_total";
/// Gauge: resident set size of the process.
pub const RESIDENT_MEMORY: &str = "distinctly_process_resident_memory_bytes";
/// Gauge: the watermark, Unix seconds.
pub const WATERMARK: &str = "distinctly_watermark_seconds";
/// Gauge: wall clock minus watermark.
pub const EVENT_TIME_DELAY: &str = "distinctly_event_time_delay_seconds";
/// Histogram: time to process one batch of messages.
pub const BATCH_DURATION: &str = "distinctly_batch_processing_seconds";
/// Histogram: messages per batch.
pub const BATCH_MESSAGES: &str = "distinctly_batch_messages";
/// Gauge; labels `topic`, `partition`: high watermark minus the next offset
/// the service will read (librdkafka statistics).
pub const CONSUMER_LAG: &str = "distinctly_consumer_lag_messages";
/// Gauge; labels `topic`, `partition`: high watermark minus the committed
/// (safe) offset: what a restart replays.
pub const COMMITTED_LAG: &str = "distinctly_consumer_committed_lag_messages";
/// Gauge: input partitions assigned to this instance.
pub const ASSIGNED_PARTITIONS: &str = "distinctly_assigned_partitions";
/// Gauge: 1 while output and commits are paused (partial assignment).
pub const OUTPUT_PAUSED: &str = "distinctly_output_paused";
/// Counter; label `topic`: `output` or `dead_letter`.
pub const RECORDS_PRODUCED: &str = "distinctly_records_produced_total";
/// Histogram; label `topic`: `output` or `dead_letter`. From enqueueing a
/// record to its acknowledgement by the broker.
pub const DELIVERY_LATENCY: &str = "distinctly_delivery_latency_seconds";
/// Counter: offset commits.
pub const COMMITS: &str = "distinctly_commits_total";
/// Counter; label `kind`: see
/// [`KafkaErrorKind`](crate::internal_events::KafkaErrorKind).
pub const KAFKA_ERRORS: &str = "distinctly_kafka_errors_total";
/// Gauge: 1 while a broker answers, 0 from "all brokers down" (not a single
/// dropped connection) until one answers again.
pub const BROKER_REACHABLE: &str = "distinctly_kafka_broker_reachable";

/// Every name, for the docs/metrics.md check and the dashboard test.
pub const ALL: &[&str] = &[
    BUILD_INFO,
    EVENTS,
    EVENTS_REJECTED,
    MESSAGES,
    BYTES,
    WINDOWS_EMITTED,
    CORRECTIONS_EMITTED,
    WINDOWS_OPEN,
    WINDOWS_RETAINED,
    LAST_WINDOW_START,
    LAST_WINDOW_UNIQUE,
    COUNTER_HEAP,
    GROUPS_HELD,
    GROUP_OVERFLOW,
    GROUP_REFUSED,
    SLICES_HEAP,
    SLICES_HELD,
    SLICES_DROPPED,
    RESIDENT_MEMORY,
    WATERMARK,
    EVENT_TIME_DELAY,
    BATCH_DURATION,
    BATCH_MESSAGES,
    CONSUMER_LAG,
    COMMITTED_LAG,
    ASSIGNED_PARTITIONS,
    OUTPUT_PAUSED,
    RECORDS_PRODUCED,
    DELIVERY_LATENCY,
    COMMITS,
    KAFKA_ERRORS,
    BROKER_REACHABLE,
];

/// Histogram buckets, seconds: 50 µs … 2.5 s (a batch is up to
/// [`BATCH_MAX_MESSAGES`](super::BATCH_MAX_MESSAGES) messages, or a 4 MiB
/// chunk of a large file in `count`).
pub const BATCH_DURATION_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];
/// Up to 1024 in `run` and in `count` on a stream; `count` on a large file
/// reports its 4 MiB chunks (thousands to ~100 000 messages).
pub const BATCH_MESSAGES_BUCKETS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0,
];
/// Histogram buckets, seconds: 1 ms … 60 s (`linger.ms` is 5; `acks=all`
/// and an outage stretch it).
pub const DELIVERY_LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Registers help text and units (shown as `# HELP` in the scrape).
pub fn describe() {
    describe_gauge!(
        BUILD_INFO,
        "Always 1; labels carry the version and the counter backend"
    );
    describe_counter!(EVENTS, "Decoded or rejected events, by outcome");
    describe_counter!(EVENTS_REJECTED, "Rejected messages, by reason");
    describe_counter!(MESSAGES, "Messages read");
    describe_counter!(
        BYTES,
        Unit::Bytes,
        "Message bytes read (after decompression)"
    );
    describe_counter!(WINDOWS_EMITTED, "Windows emitted for the first time");
    describe_counter!(
        CORRECTIONS_EMITTED,
        "Corrections of already emitted windows"
    );
    describe_gauge!(
        WINDOWS_OPEN,
        "Windows not yet closed (provisional ones included)"
    );
    describe_gauge!(
        WINDOWS_RETAINED,
        "Windows closed and kept for late corrections"
    );
    describe_gauge!(
        LAST_WINDOW_START,
        Unit::Seconds,
        "Start of the newest emitted window, Unix seconds"
    );
    describe_gauge!(
        LAST_WINDOW_UNIQUE,
        "Unique users of the newest emitted window (latest revision)"
    );
    describe_gauge!(
        COUNTER_HEAP,
        Unit::Bytes,
        "Heap bytes held by the counters of all open and retained windows"
    );
    describe_gauge!(
        GROUPS_HELD,
        "Groups held by the open and retained windows, by grouping and window size"
    );
    describe_counter!(
        GROUP_OVERFLOW,
        "Events counted in overflow records: their group did not fit DISTINCTLY_MAX_GROUPS"
    );
    describe_counter!(
        GROUP_REFUSED,
        "Events whose value for a grouping made no group, by reason"
    );
    describe_gauge!(
        SLICES_HEAP,
        Unit::Bytes,
        "Heap bytes of the range-query slices held, by resolution"
    );
    describe_gauge!(SLICES_HELD, "Range-query slices held, by resolution");
    describe_counter!(
        SLICES_DROPPED,
        "Events older than a resolution's retention when they came, by resolution"
    );
    describe_gauge!(
        RESIDENT_MEMORY,
        Unit::Bytes,
        "Resident set size of the process"
    );
    describe_gauge!(
        WATERMARK,
        Unit::Seconds,
        "Event-time watermark, Unix seconds"
    );
    describe_gauge!(
        EVENT_TIME_DELAY,
        Unit::Seconds,
        "Wall clock minus the watermark"
    );
    describe_histogram!(
        BATCH_DURATION,
        Unit::Seconds,
        "Time to decode, count and window one batch of messages"
    );
    describe_histogram!(BATCH_MESSAGES, "Messages per processed batch");
    describe_gauge!(
        CONSUMER_LAG,
        "Messages in the partition not yet read by this instance"
    );
    describe_gauge!(
        COMMITTED_LAG,
        "Messages in the partition after the committed (safe) offset"
    );
    describe_gauge!(ASSIGNED_PARTITIONS, "Input partitions assigned");
    describe_gauge!(
        OUTPUT_PAUSED,
        "1 while output and commits are paused: not every partition is assigned here"
    );
    describe_counter!(RECORDS_PRODUCED, "Records enqueued to Kafka, by topic");
    describe_histogram!(
        DELIVERY_LATENCY,
        Unit::Seconds,
        "From enqueueing a record to the broker's acknowledgement"
    );
    describe_counter!(COMMITS, "Offset commits");
    describe_counter!(KAFKA_ERRORS, "Kafka client errors, by kind");
    describe_gauge!(
        BROKER_REACHABLE,
        "1 while the Kafka broker answers, 0 during an outage"
    );
}
