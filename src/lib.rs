//! distinctly counts unique users per event-time window from a stream of JSON
//! events, exactly or approximately, in little memory.
//!
//! # Layout
//!
//! ```text
//! decode/     message bytes -> Event { ts, uid } or a Reject reason
//!   index.rs     stage 1: SIMD structural index, 64 bytes at a time
//!   walk.rs      stage 2: grammar walk over the index; root uid/ts
//!   lines.rs     line mode: many JSON lines through both stages at once
//!   ts.rs        JSON number -> floored Unix seconds, exactly
//!   unescape.rs  JSON string unescaping into a reused buffer
//! reject.rs   the fixed set of rejection reasons and their counts
//! hash.rs     the stable, seeded uid hash shared by every backend
//! counter/    Counter trait, AnyCounter enum, serialized form
//!   exact.rs     uids in an arena + u32 hash table
//!   roaring.rs   RoaringBitmap over 32-bit hashes, batched, collision-corrected
//!   hll.rs       HyperLogLog++ (hyperloglogplus)
//!   cpc.rs       DataSketches CPC (datasketches)
//!   hll4.rs      DataSketches HLL with 4-bit registers (datasketches)
//! group/      distinct users per value of a field (DISTINCTLY_GROUP_BY);
//!             its own layout in group/mod.rs
//! window/     tumbling event-time windows of one or several sizes
//!   mod.rs       Windower: sources, watermark, one lane per size
//!   lane.rs      the windows of one size: emission, corrections, retention
//!   rolling.rs   rolling windows: a counter per step, a window the merge
//!   size.rs      sizes (s, m, h, d, w, mo) and their bounds in a time zone
//!   stats.rs     what a windower holds and did (metrics, summaries)
//!   guard.rs     plausibility guard against bit-flipped timestamps
//! slices/     distinct users between any two instants: slices that merge
//!   setting.rs   DISTINCTLY_SLICES: resolutions and their retentions
//!   query.rs     a range tiled by the coarsest held slices, merged
//!   serve.rs     queries from the HTTP thread, answered between batches
//! record.rs   the output record (one JSON object per emitted window)
//! config/     DISTINCTLY_* settings
//!   mod.rs       defaults, bounds, validation; flags applied over variables
//!   vars.rs      reading variables; the ones no setting reads
//! cli.rs      command-line definitions (flags mirror the variables, and win
//!             over them); every variable a setting reads
//! input/      JSON-lines input, in batches
//!   mod.rs       sources; mapped files split in place, read pages given back
//!   stream.rs    stdin, pipes, gzip: blocks split into lines
//! count/      the offline `count` command: input -> decode -> windows -> stdout
//!   mod.rs       the run, its end (signal, closed output, read error)
//!   parallel.rs  large files decoded on all cores, windowed in file order
//!   summary.rs   what a run saw, as text or JSON
//! kafka/      the `run` service: split by user, count per shard, sum
//!   config.rs    KAFKA_* settings (the old app's names), librdkafka configs
//!   context.rs   librdkafka callbacks: errors, rebalances, deliveries
//!   offsets.rs   commit metadata (stream times) for restarts
//!   shard.rs     the shard topic's batches of (ts, uid) and markers
//!   partials.rs  the partials topic: per-shard counts, statuses
//!   state.rs     the state topic's format: window checkpoints in chunks
//!   service/     the three stages: split/ (and its transactions, txn.rs),
//!                count/, sum.rs; their topics, clients and checkpoints
//!                (the layout is in service/mod.rs)
//! bench/      the `bench` command: every backend over reproducible workloads
//!   mod.rs       options, the run loop, aggregation into rows
//!   workload.rs  windows of n distinct uids, uniform or Zipf repeat visits
//!   report.rs    markdown table and CSV
//!   chart.rs     SVG charts (plotters)
//! memory/     process memory from /proc (metrics, bench)
//!   alloc.rs     counting global allocator (heap bytes, per thread)
//! stop.rs     SIGINT/SIGTERM for `count`: finish what was read, then exit
//! diag.rs     one-line diagnostics on stderr that never panic
//! metrics/    Prometheus metrics and the HTTP endpoints (DISTINCTLY_METRICS_ADDR)
//!   names.rs     every metric name, unit, help text, histogram buckets
//!   publish.rs   hot-path totals copied into metrics once per tick/batch
//!   status.rs    /v1/status: health, rates and lag read from the metrics
//!   http.rs      /metrics, /healthz, /readyz, /v1/* and the page (axum,
//!                its own thread)
//! live/       the live page (GET /) and the JSON it reads
//!   recent.rs    the latest emitted windows per series, their top groups
//!   page/        index.html, page.js, page.css, compiled into the binary
//! internal_events/  one type per operational event: logs and counts it
//!   kafka.rs     broker, group, commits, deliveries, dead letters
//!   service.rs   start (settings), output paused/resumed, shutdown
//! health.rs   what /healthz (loops alive) and /readyz (stages, broker) say
//! logging.rs  tracing to stderr: DISTINCTLY_LOG filter, text or JSON
//! generate/   reproducible event generator (tests, benches, sample data)
//!   mod.rs       options, the line loop, the exact truth
//!   frame.rs     minimal / realistic / wrapped / invalid frames
//!   rng.rs       xoshiro256** and a platform-independent Zipf sampler
//! ```
//!
//! `main.rs` only parses the command line and calls into this crate.
//!
//! # Layers
//!
//! A module imports only from its own layer and the ones below, and no two
//! files import each other, however indirectly (`tests/layers.rs` reads
//! this list and the sources, and fails on a new cycle or upward import):
//!
//! 0. foundations: hash, reject, diag, memory, stop, health
//! 1. engine: decode, counter, group, slices, window, record, input, generate
//! 2. settings and telemetry: config, logging, metrics, live, internal_events
//! 3. commands: count, kafka, bench
//! 4. interface: cli, main

pub mod bench;
pub mod cli;
pub mod config;
pub mod count;
pub mod counter;
pub mod decode;
pub mod diag;
pub mod generate;
pub mod group;
pub mod hash;
pub mod health;
pub mod input;
pub mod internal_events;
pub mod kafka;
pub mod live;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod record;
pub mod reject;
pub mod slices;
pub mod stop;
pub mod window;

/// The unit tests measure heap bytes (counter tests, bench tests), so their
/// binary counts allocations like the `distinctly` binary does.
#[cfg(test)]
#[global_allocator]
static TEST_ALLOC: memory::alloc::CountingAlloc = memory::alloc::CountingAlloc;
