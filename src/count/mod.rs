//! The offline `count` command: JSON lines in, one JSON record per emitted
//! window out, a summary at the end. No broker needed.
//!
//! Per input block: split lines, decode, hash, window. Counts are kept in
//! locals and plain arrays; records are written to a buffered writer as
//! windows close, so output appears while a long input is still being read.
//! A large plain file is decoded on all cores and windowed in file order on
//! this thread ([`parallel`]); stdin and gzip are decoded on this thread
//! (decompression is their bottleneck).

mod parallel;

use crate::config::CoreConfig;
use crate::decode::Decoder;
use crate::hash::uid_hash;
use crate::input::{Line, Source};
use crate::metrics::{Publisher, Totals};
use crate::record::WindowRecord;
use crate::reject::{Reject, RejectCounts};
use crate::window::{WindowStats, Windower};
use std::io::{self, Write};
use std::time::{Duration, Instant};

/// What a `count` run saw and did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Messages (lines) read.
    pub messages: u64,
    /// Input bytes read (after decompression).
    pub bytes: u64,
    /// Messages the decoder accepted (then counted, late or out of range).
    pub decoded: u64,
    pub rejected: RejectCounts,
    pub windows: WindowStats,
    pub elapsed: Duration,
}

impl Summary {
    /// Events that ended up in a window.
    pub fn accepted(&self) -> u64 {
        self.windows.counted + self.windows.late_corrected
    }

    /// Rejections by reason, the window guard's `ts_out_of_range` included.
    pub fn rejections(&self) -> RejectCounts {
        let mut r = self.rejected;
        r.add_n(Reject::TsOutOfRange, self.windows.ts_out_of_range);
        r
    }

    fn rate(&self, n: f64) -> f64 {
        n / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Human-readable summary (for stderr).
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "read {} messages ({:.1} MB) in {:.3} s: {:.1} MB/s, {:.0} events/s\n",
            self.messages,
            self.bytes as f64 / 1e6,
            self.elapsed.as_secs_f64(),
            self.rate(self.bytes as f64) / 1e6,
            self.rate(self.messages as f64),
        );
        let w = &self.windows;
        s += &format!(
            "accepted {} (on time {}, late corrected {}), late dropped {}\n",
            self.accepted(),
            w.counted,
            w.late_corrected,
            w.late_dropped
        );
        let rejections = self.rejections();
        s += &format!("rejected {}", rejections.total());
        let reasons: Vec<String> = rejections
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        if !reasons.is_empty() {
            s += &format!(" ({})", reasons.join(", "));
        }
        s += &format!(
            "\nwindows {} emitted, {} corrections\n",
            w.windows_emitted, w.corrections_emitted
        );
        s
    }

    /// Machine-readable summary: one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let rejected: serde_json::Map<String, serde_json::Value> = self
            .rejections()
            .iter()
            .map(|(r, n)| (r.as_str().to_string(), n.into()))
            .collect();
        let w = &self.windows;
        serde_json::json!({
            "messages": self.messages,
            "bytes": self.bytes,
            "accepted": self.accepted(),
            "counted": w.counted,
            "late_corrected": w.late_corrected,
            "late_dropped": w.late_dropped,
            "rejected_total": self.rejections().total(),
            "rejected": rejected,
            "windows_emitted": w.windows_emitted,
            "corrections_emitted": w.corrections_emitted,
            "elapsed_seconds": self.elapsed.as_secs_f64(),
            "mb_per_second": self.rate(self.bytes as f64) / 1e6,
            "events_per_second": self.rate(self.messages as f64),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CountError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("reading {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("writing output: {0}")]
    Write(io::Error),
}

/// Counts the given inputs (`-` is stdin) as one stream, writing records to
/// `out` as JSON lines.
pub fn count<W: Write>(cfg: &CoreConfig, inputs: &[String], out: W) -> Result<Summary, CountError> {
    cfg.validate()?;
    let mut out = io::BufWriter::with_capacity(1 << 16, out);
    let mut counting = Counting::new(cfg)?;
    let started = Instant::now();
    let default_input = ["-".to_string()];
    let inputs = if inputs.is_empty() {
        &default_input[..]
    } else {
        inputs
    };
    for path in inputs {
        let read_err = |source| CountError::Read {
            path: path.clone(),
            source,
        };
        let mut source = Source::open(path, cfg.max_message_bytes).map_err(read_err)?;
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        if let Source::Mapped { map, .. } = &source {
            if parallel::worth_it(map.len(), workers) {
                let mut write_error = None;
                let mut chunk_started = Instant::now();
                parallel::decode_in_order(map, cfg.max_message_bytes, workers, |decoded| {
                    counting.apply(&decoded);
                    counting.summary.bytes += decoded.bytes;
                    if let Some(m) = &mut counting.metrics {
                        // Decoded on other threads: a chunk's time is the
                        // pipeline's, from the end of the previous chunk's
                        // windowing to the end of this one's (writing
                        // records, which may block on stdout, excluded).
                        m.record_batch(chunk_started.elapsed(), decoded.messages);
                    }
                    if write_error.is_none() {
                        write_error = counting.write_records(&mut out).err();
                    }
                    counting.publish();
                    chunk_started = Instant::now();
                });
                if let Some(e) = write_error {
                    return Err(CountError::Write(e));
                }
                continue;
            }
        }
        let bytes_before = counting.summary.bytes;
        while source
            .next_batch(cfg.max_message_bytes, |line| counting.line(line))
            .map_err(read_err)?
        {
            // The batch's time ends before writing (stdout may block).
            if let Some(m) = &mut counting.metrics {
                m.batch_end();
            }
            counting
                .write_records(&mut out)
                .map_err(CountError::Write)?;
            counting.summary.bytes = bytes_before + source.bytes_read();
            counting.publish();
        }
        counting.summary.bytes = bytes_before + source.bytes_read();
    }
    counting.finish(&mut out).map_err(CountError::Write)?;
    counting.publish();
    out.flush().map_err(CountError::Write)?;
    counting.summary.elapsed = started.elapsed();
    Ok(counting.summary)
}

/// The per-message pipeline state of one run.
struct Counting {
    decoder: Decoder,
    windower: Windower,
    records: Vec<WindowRecord>,
    line_buf: Vec<u8>,
    summary: Summary,
    /// Exported metrics, when `DISTINCTLY_METRICS_ADDR` is set.
    metrics: Option<Publisher>,
}

impl Counting {
    fn new(cfg: &CoreConfig) -> Result<Self, CountError> {
        Ok(Counting {
            decoder: Decoder::new(),
            windower: Windower::new(cfg.window_config(), cfg.counter_kind()?),
            records: Vec::new(),
            line_buf: Vec::with_capacity(256),
            summary: Summary::default(),
            metrics: Publisher::if_enabled(cfg.counter_kind()?),
        })
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
                self.windower
                    .push(event.ts, event.uid, hash, &mut self.records);
            }
            Err(reason) => self.summary.rejected.add(reason),
        }
    }

    /// Windows a chunk decoded by [`parallel`].
    fn apply(&mut self, d: &parallel::Decoded) {
        self.summary.messages += d.messages;
        self.summary.decoded += d.events.len() as u64;
        self.summary.rejected.merge(&d.rejects);
        for e in &d.events {
            let uid = &d.uids[e.uid.start as usize..e.uid.end as usize];
            self.windower.push(e.ts, uid, e.hash, &mut self.records);
        }
    }

    /// Copies the totals into the exported metrics (once per input batch).
    fn publish(&mut self) {
        if let Some(m) = &mut self.metrics {
            m.batch_end();
            m.publish(
                Totals {
                    messages: self.summary.messages,
                    bytes: self.summary.bytes,
                    rejected: &self.summary.rejected,
                },
                &self.windower,
            );
        }
    }

    fn write_records(&mut self, out: &mut impl Write) -> io::Result<()> {
        if let Some(m) = &mut self.metrics {
            m.observe(&self.records);
        }
        for r in self.records.drain(..) {
            self.line_buf.clear();
            r.write_json(&mut self.line_buf);
            self.line_buf.push(b'\n');
            out.write_all(&self.line_buf)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut impl Write) -> io::Result<()> {
        self.windower.finish(&mut self.records);
        self.write_records(out)?;
        self.summary.windows = self.windower.stats();
        Ok(())
    }
}
