//! The offline `count` command: JSON lines in, one JSON record per emitted
//! window out, a summary at the end. No broker needed.
//!
//! Per input block: split lines, decode, hash, window. Counts are kept in
//! locals and plain arrays; records are written as windows close, and the
//! output is flushed after every block that emitted any, so a live pipe
//! shows each window as soon as it closes. A large plain file is decoded on
//! all cores and windowed in file order on this thread ([`parallel`]);
//! stdin and gzip are decoded on this thread (decompression is their
//! bottleneck).
//!
//! How a run ends ([`End`]): every input is opened before the first record
//! is written. After that, nothing already read is lost: a signal, a read
//! error part-way through an input, or a closed output ends reading, and
//! the windows of everything read so far are still emitted and summed up.

mod parallel;
mod summary;

pub use summary::Summary;

use crate::config::CoreConfig;
use crate::decode::Decoder;
use crate::group::{GroupKeys, GroupLabel, Groupings};
use crate::hash::uid_hash;
use crate::input::{Line, Source};
use crate::internal_events::OverflowWatch;
use crate::metrics::{Publisher, Totals};
use crate::record::{Format, WindowRecord};
use crate::reject::Reject;
use crate::slices::serve::Queries;
use crate::slices::Slices;
use crate::stop::{self, Stop};
use crate::window::rolling::Rolling;
use crate::window::size::WindowSize;
use crate::window::Windower;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::ops::ControlFlow;
use std::time::Instant;

/// How long a read of an idle pipe waits before queries are answered.
const QUERY_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// `--emit final`'s records: by (size index, start, group).
type Finals = BTreeMap<(usize, u64, Option<GroupLabel>), WindowRecord>;

/// Which records `count` prints (`--emit`): every window as it closes and
/// every correction, or one record per window at the end of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Emit {
    Updates,
    Final,
}

#[derive(Debug, thiserror::Error)]
pub enum CountError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("reading {path}: {cause}")]
    Read { path: String, cause: io::Error },
    #[error("writing output: {0}")]
    Write(io::Error),
}

/// Why reading stopped.
#[derive(Debug)]
pub enum End {
    /// Every input was read to its end.
    Complete,
    /// A signal (its number) stopped reading.
    Signal(i32),
    /// Whoever read the output went away (`| head`): ended quietly.
    OutputClosed,
    /// Reading an input or writing the output failed part-way.
    Failed(CountError),
}

/// A finished run: what it counted and how it ended.
pub struct Outcome {
    pub summary: Summary,
    pub end: End,
    /// With `--serve`, once the whole input was read: the slices, to keep
    /// answering queries from ([`Serving::until_stopped`]).
    pub serving: Option<Serving>,
}

/// What `count --serve` keeps after its input: the slices and the queue
/// of queries.
pub struct Serving {
    windower: Windower,
    queries: Queries,
}

impl Serving {
    /// Answers queries until a signal; returns its number.
    pub fn until_stopped(self, stop: &Stop) -> i32 {
        loop {
            if let Some(sig) = stop.signal() {
                return sig;
            }
            if let Some(slices) = self.windower.slices() {
                self.queries
                    .answer_next(slices, std::time::Duration::from_millis(100));
            }
        }
    }
}

/// Counts the given inputs (`-` is stdin) as one stream, writing records to
/// `out` as JSON lines. Fails before writing anything if the settings are
/// invalid or an input cannot be opened; after that, always returns what
/// was counted, with the reason reading ended.
/// With `queries` (`--serve`), every counted event is also kept in the
/// slices of `DISTINCTLY_SLICES`, and range queries are answered between
/// input batches, then from [`Outcome::serving`].
pub fn count<W: Write>(
    cfg: &CoreConfig,
    inputs: &[String],
    emit: Emit,
    out: W,
    stop: &Stop,
    queries: Option<Queries>,
) -> Result<Outcome, CountError> {
    cfg.validate()?;
    if crate::metrics::enabled() {
        crate::live::configure(crate::live::Info::new("count", cfg)?);
    }
    let started = Instant::now();
    let default_input = ["-".to_string()];
    let inputs = if inputs.is_empty() {
        &default_input[..]
    } else {
        inputs
    };
    // Serving: a read of an idle pipe gives up now and then, so that
    // queries are answered while no lines come.
    let read_stop = match queries {
        Some(_) => stop.with_pause(QUERY_PAUSE),
        None => stop.clone(),
    };
    let mut sources = Vec::with_capacity(inputs.len());
    for path in inputs {
        let source = Source::open(path, cfg.max_message_bytes, &read_stop).map_err(|cause| {
            CountError::Read {
                path: display_name(path),
                cause,
            }
        })?;
        sources.push((path, source));
    }
    let mut counting = Counting::new(cfg, emit, io::BufWriter::with_capacity(1 << 16, out))?;
    if queries.is_some() {
        let tz = crate::window::size::time_zone(&cfg.timezone)
            .map_err(|e| crate::config::invalid("DISTINCTLY_TIMEZONE", e))?;
        let slices = Slices::new(
            &cfg.slices()?,
            &tz,
            cfg.counter_kind()?,
            &counting.groupings,
        );
        counting.windower.keep_slices(slices);
    }
    counting.queries = queries;
    let mut end = End::Complete;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (path, mut source) in sources {
        let step = match &source {
            Source::Mapped { map, .. } if parallel::worth_it(map.len(), workers) => {
                counting.parallel(map, workers, stop)
            }
            _ => counting.sequential(path, &mut source, stop),
        };
        if let ControlFlow::Break(e) = step {
            end = e;
            break;
        }
    }
    counting.finish(&mut end);
    let mut summary = counting.summary;
    summary.elapsed = started.elapsed();
    summary.by_size = counting.windower.stats_by_size();
    summary.groupings = counting
        .groupings
        .list
        .iter()
        .map(|g| g.text.clone())
        .collect();
    summary.overflowed = counting.windower.group_overflow()[..counting.groupings.len()].to_vec();
    let serving = match (counting.queries, &end) {
        (Some(queries), End::Complete) => Some(Serving {
            windower: counting.windower,
            queries,
        }),
        _ => None,
    };
    Ok(Outcome {
        summary,
        end,
        serving,
    })
}

/// How messages name an input (`-` is stdin).
fn display_name(path: &str) -> String {
    if path == "-" {
        "stdin".to_string()
    } else {
        path.to_string()
    }
}

/// What a failed write means: a reader that went away, or a real failure.
fn write_failed(e: io::Error) -> End {
    if e.kind() == io::ErrorKind::BrokenPipe {
        End::OutputClosed
    } else {
        End::Failed(CountError::Write(e))
    }
}

/// The per-message pipeline state of one run.
struct Counting<W: Write> {
    cfg: CoreConfig,
    decoder: Decoder,
    windower: Windower,
    records: Vec<WindowRecord>,
    line_buf: Vec<u8>,
    out: W,
    summary: Summary,
    /// Exported metrics, when `DISTINCTLY_METRICS_ADDR` is set.
    metrics: Option<Publisher>,
    /// With `--emit final`: the latest record of every window and group,
    /// by (size index, start, group), written at the end.
    finals: Option<Finals>,
    sizes: Vec<WindowSize>,
    rolling: Vec<Rolling>,
    /// How records are written (local times, groupings).
    format: Format,
    groupings: Groupings,
    /// The group keys of the event at hand (reused).
    keys: GroupKeys,
    overflow: OverflowWatch,
    /// `--serve`: range queries, answered after every batch.
    queries: Option<Queries>,
}

impl<W: Write> Counting<W> {
    fn new(cfg: &CoreConfig, emit: Emit, out: W) -> Result<Self, CountError> {
        Ok(Counting {
            finals: (emit == Emit::Final).then(BTreeMap::new),
            sizes: cfg.sizes()?,
            rolling: cfg.rolling()?,
            cfg: cfg.clone(),
            decoder: Decoder::with_fields(&cfg.groupings()?.paths),
            windower: Windower::new(cfg.window_config(), cfg.counter_kind()?)
                .map_err(|e| crate::config::invalid("DISTINCTLY_TIMEZONE", e.0))?,
            records: Vec::new(),
            line_buf: Vec::with_capacity(256),
            out,
            summary: Summary::default(),
            metrics: Publisher::if_enabled(cfg.counter_kind()?),
            format: Format::new(&cfg.timezone, &cfg.groupings()?)
                .map_err(|e| crate::config::invalid("DISTINCTLY_TIMEZONE", e))?,
            groupings: cfg.groupings()?,
            keys: GroupKeys::default(),
            overflow: OverflowWatch::default(),
            queries: None,
        })
    }

    /// Reads one input on this thread, batch by batch.
    fn sequential(&mut self, path: &str, source: &mut Source, stop: &Stop) -> ControlFlow<End> {
        let max = self.cfg.max_message_bytes;
        let bytes_before = self.summary.bytes;
        loop {
            if let Some(sig) = stop.signal() {
                return ControlFlow::Break(End::Signal(sig));
            }
            let read = source.next_batch(max, |line| self.line(line));
            // The batch's time ends before writing (stdout may block).
            if let Some(m) = &mut self.metrics {
                m.batch_end();
            }
            self.summary.bytes = bytes_before + source.bytes_read();
            self.write_records()?;
            self.publish();
            match read {
                Ok(true) => {}
                Ok(false) => return ControlFlow::Continue(()),
                Err(_) if stop.signal().is_some() => {
                    return ControlFlow::Break(End::Signal(stop.signal().unwrap_or_default()))
                }
                Err(cause) if stop::is_stopped(&cause) => {
                    return ControlFlow::Break(End::Signal(stop.signal().unwrap_or_default()))
                }
                Err(cause) => {
                    return ControlFlow::Break(End::Failed(CountError::Read {
                        path: display_name(path),
                        cause,
                    }))
                }
            }
        }
    }

    /// Decodes a mapped file on `workers` threads, windowing it here.
    fn parallel(&mut self, map: &memmap2::Mmap, workers: usize, stop: &Stop) -> ControlFlow<End> {
        let mut end = None;
        let mut chunk_started = Instant::now();
        let keep_uids = self
            .cfg
            .counter_kind()
            .map_or(true, |k| k.reads_uid_bytes());
        let groupings = self.groupings.clone();
        parallel::decode_in_order(
            map,
            self.cfg.max_message_bytes,
            workers,
            keep_uids,
            &groupings,
            |decoded| {
                self.apply(&decoded);
                self.summary.bytes += decoded.bytes;
                if let Some(m) = &mut self.metrics {
                    // Decoded on other threads: a chunk's time is the
                    // pipeline's, from the end of the previous chunk's
                    // windowing to the end of this one's (writing records,
                    // which may block on stdout, excluded).
                    m.record_batch(chunk_started.elapsed(), decoded.messages);
                }
                if let ControlFlow::Break(e) = self.write_records() {
                    end = Some(e);
                }
                self.publish();
                chunk_started = Instant::now();
                if end.is_none() {
                    end = stop.signal().map(End::Signal);
                }
                if end.is_some() {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        match end {
            Some(e) => ControlFlow::Break(e),
            None => ControlFlow::Continue(()),
        }
    }

    #[inline]
    fn line(&mut self, line: Line<'_>) {
        self.summary.messages += 1;
        if let Some(m) = &mut self.metrics {
            if m.batch_message() {
                m.batch_end();
            }
        }
        let msg = match line {
            Line::Message(m) => m,
            Line::TooLarge => {
                self.summary.rejected.add(Reject::TooLarge);
                return;
            }
        };
        match self.decoder.decode(msg) {
            Ok(event) => {
                self.summary.decoded += 1;
                let hash = uid_hash(event.uid);
                if self.groupings.is_empty() {
                    self.windower
                        .push(event.ts, event.uid, hash, &mut self.records);
                } else {
                    self.groupings.keys_of(
                        &event.fields,
                        &mut self.keys,
                        &mut self.summary.refusals,
                    );
                    self.windower.push_grouped(
                        event.ts,
                        event.uid,
                        hash,
                        self.keys.view(),
                        &mut self.records,
                    );
                }
            }
            Err(reason) => self.summary.rejected.add(reason),
        }
    }

    /// Windows a chunk decoded by [`parallel`].
    fn apply(&mut self, d: &parallel::Decoded) {
        self.summary.messages += d.messages;
        self.summary.decoded += d.events.len() as u64;
        self.summary.rejected.merge(&d.rejects);
        self.summary.refusals.merge(&d.refusals);
        for e in &d.events {
            let uid = &d.uids[e.uid.start as usize..e.uid.end as usize];
            let keys = d.keys.view_of(e.keys.start as usize..e.keys.end as usize);
            self.windower
                .push_grouped(e.ts, uid, e.hash, keys, &mut self.records);
        }
    }

    /// Copies the totals into the exported metrics, and notes the heap of
    /// each size (once per input batch).
    fn publish(&mut self) {
        if let (Some(q), Some(slices)) = (&self.queries, self.windower.slices()) {
            q.answer_waiting(slices);
        }
        let heap = self.windower.heap_bytes_by_size();
        if self.summary.peak_heap.len() != heap.len() {
            self.summary.peak_heap = heap.iter().map(|&(s, _)| (s, 0)).collect();
        }
        for ((_, peak), (_, bytes)) in self.summary.peak_heap.iter_mut().zip(heap) {
            *peak = (*peak).max(bytes);
        }
        if !self.groupings.is_empty() {
            self.overflow
                .check(&self.groupings, &self.windower.group_overflow());
            let peak = &mut self.summary.peak_groups;
            peak.resize(self.groupings.len(), 0);
            for (_, held) in self.windower.groups_by_size() {
                for (g, n) in held.into_iter().enumerate() {
                    peak[g] = peak[g].max(n);
                }
            }
        }
        if let Some(m) = &mut self.metrics {
            m.batch_end();
            m.publish(
                Totals {
                    messages: self.summary.messages,
                    bytes: self.summary.bytes,
                    rejected: &self.summary.rejected,
                    ts_out_of_range: 0,
                    refusals: &self.summary.refusals,
                    groupings: &self.groupings,
                },
                &self.windower,
            );
        }
    }

    /// Writes the records emitted so far and, if there were any, flushes:
    /// a window is visible downstream as soon as it closes.
    fn write_records(&mut self) -> ControlFlow<End> {
        if self.records.is_empty() {
            return ControlFlow::Continue(());
        }
        if let Some(m) = &mut self.metrics {
            m.observe(&self.records, self.windower.sizes().next());
        }
        if self.finals.is_some() {
            self.stash_finals();
            return ControlFlow::Continue(());
        }
        self.write_now()
    }

    /// `--emit final`: keeps the latest record of each window for the end.
    fn stash_finals(&mut self) {
        let Some(finals) = &mut self.finals else {
            return;
        };
        for r in self.records.drain(..) {
            // Rolling windows after the sizes, in setting order.
            let lane = match r.rolling {
                Some(roll) => {
                    self.sizes.len() + self.rolling.iter().position(|&x| x == roll).unwrap_or(0)
                }
                None => r
                    .size
                    .and_then(|s| self.sizes.iter().position(|&x| x == s))
                    .unwrap_or(0),
            };
            finals.insert((lane, r.start_ts, r.group.clone()), r);
        }
    }

    /// Writes the pending records (one JSON line each) and flushes.
    fn write_now(&mut self) -> ControlFlow<End> {
        for r in self.records.drain(..) {
            self.line_buf.clear();
            self.format.write(&r, &mut self.line_buf);
            self.line_buf.push(b'\n');
            if let Err(e) = self.out.write_all(&self.line_buf) {
                return ControlFlow::Break(write_failed(e));
            }
        }
        match self.out.flush() {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(write_failed(e)),
        }
    }

    /// End of reading: emits every open window (unless the output is gone)
    /// and completes the summary. A write failure here becomes the end.
    fn finish(&mut self, end: &mut End) {
        self.windower.finish(&mut self.records);
        if let Some(m) = &mut self.metrics {
            m.observe(&self.records, self.windower.sizes().next());
        }
        self.stash_finals();
        if let Some(finals) = self.finals.take() {
            // `--emit final`: every window once, in order per size.
            self.records.extend(finals.into_values());
        }
        if matches!(end, End::OutputClosed) {
            self.records.clear();
        } else if let ControlFlow::Break(e) = self.write_now() {
            if !matches!(end, End::Failed(_)) {
                *end = e;
            }
        }
        self.publish();
        self.summary.windows = self.windower.stats();
    }
}

/// Whether descriptor 1 was closed when the process started (see
/// [`note_stdout_at_start`]).
static STDOUT_CLOSED_AT_START: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Looks at descriptor 1 before Rust's runtime does: the binary calls this
/// from a constructor that runs before `main`. The runtime puts `/dev/null`,
/// opened read-write, in place of a closed standard descriptor, so after it
/// a closed stdout (`>&-`) cannot be told from a read-write `/dev/null`
/// that a parent passed on purpose (`1<>/dev/null`, Python's
/// `subprocess.DEVNULL`, supervisors). Only a descriptor that is not open
/// at all counts as closed.
pub extern "C" fn note_stdout_at_start() {
    // SAFETY: F_GETFD only reads the flags of descriptor 1; it takes no
    // memory arguments and is async-signal-safe, so it may run before the
    // runtime is set up.
    let closed = unsafe { libc::fcntl(libc::STDOUT_FILENO, libc::F_GETFD) } == -1
        && io::Error::last_os_error().raw_os_error() == Some(libc::EBADF);
    STDOUT_CLOSED_AT_START.store(closed, std::sync::atomic::Ordering::Relaxed);
}

/// True when the process started with stdout closed (`>&-`): every record
/// would silently go nowhere. Known only where the binary calls
/// [`note_stdout_at_start`] before `main` (Linux); elsewhere, false.
pub fn stdout_was_closed() -> bool {
    STDOUT_CLOSED_AT_START.load(std::sync::atomic::Ordering::Relaxed)
}
