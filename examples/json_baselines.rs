//! Baselines for `distinctly count` built on maintained JSON parsers:
//! `serde_json`, `sonic-rs` and `simd-json`, each with full validation
//! (UTF-8 and the whole grammar of every line, ignored keys included). The
//! same block reading as `count` (4 MiB blocks split on '\n' with memchr),
//! then the parser into a borrowed struct, then a `HashMap<window, HashSet<uid
//! bytes>>`. One thread.
//!
//! ```text
//! cargo run --release --example json_baselines -- serde_json|sonic-rs|sonic-rs-value|simd-json FILE [WINDOW_SECONDS]
//! ```
//!
//! Prints `{"start_ts":N,"unique_users":N,"events":N}` per window (in order)
//! on stdout and a JSON summary with the keys of `distinctly count --summary
//! json` on stderr. No lateness or outlier rules: compare counts on clean data
//! (`generate --invalid-share 0 --outlier-share 0`).
//!
//! Validation: `serde_json` does not check the UTF-8 of strings it skips, so
//! its lines are checked first with `simdutf8` (as `count` does); `sonic-rs`
//! and `simd-json` validate UTF-8 themselves. `sonic-rs` into the struct
//! does not check the escapes of the strings it skips, so it runs twice:
//! into the struct (`sonic-rs`) and into its DOM (`sonic-rs-value`, which
//! unescapes, hence checks, every string). `scripts/bench-count.sh`
//! checks each of them against hostile lines that must all be rejected.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::time::Instant;

use serde::Deserialize;

const BLOCK: usize = 4 << 20;

/// The parser skips (but validates) every other key, nested decoys
/// included; `Cow` borrows the uid unless it has escapes.
#[derive(Deserialize)]
struct Frame<'a> {
    ts: f64,
    #[serde(borrow)]
    uid: Cow<'a, str>,
}

#[derive(Clone, Copy)]
enum Parser {
    SerdeJson,
    /// Into the struct: skipped strings are not checked for bad `\u`
    /// escapes (the validation probe shows it).
    SonicRs,
    /// Into a `sonic_rs::Value`: every string unescaped, so fully validated.
    SonicRsValue,
    SimdJson,
}

/// Window start -> (distinct uids, events).
type Windows = HashMap<u64, (HashSet<Vec<u8>>, u64)>;

struct Tally {
    window_seconds: u64,
    windows: Windows,
    rejected: u64,
}

impl Tally {
    fn frame(&mut self, frame: Option<Frame<'_>>) {
        match frame {
            Some(f) => self.add(f.ts, &f.uid),
            None => self.rejected += 1,
        }
    }

    fn add(&mut self, ts: f64, uid: &str) {
        if !(ts >= 0.0 && ts.is_finite() && !uid.is_empty()) {
            self.rejected += 1;
            return;
        }
        let ts = ts.floor() as u64;
        let start = ts - ts % self.window_seconds;
        let (users, events) = self.windows.entry(start).or_default();
        *events += 1;
        // Allocate only for a uid not yet seen in this window.
        if !users.contains(uid.as_bytes()) {
            users.insert(uid.as_bytes().to_vec());
        }
    }
}

struct Counts {
    parser: Parser,
    tally: Tally,
    messages: u64,
    /// simd-json parses in place: each line is copied here first.
    scratch: Vec<u8>,
    buffers: simd_json::Buffers,
}

impl Counts {
    fn line(&mut self, line: &[u8]) {
        self.messages += 1;
        let tally = &mut self.tally;
        match self.parser {
            Parser::SerdeJson => tally.frame(
                simdutf8::basic::from_utf8(line)
                    .ok()
                    .and_then(|s| serde_json::from_str::<Frame>(s).ok()),
            ),
            Parser::SonicRs => tally.frame(sonic_rs::from_slice::<Frame>(line).ok()),
            Parser::SonicRsValue => {
                use sonic_rs::{JsonContainerTrait, JsonValueTrait};
                let value = sonic_rs::from_slice::<sonic_rs::Value>(line).ok();
                let fields = value
                    .as_ref()
                    .and_then(|v| v.as_object())
                    .and_then(|o| Some((o.get(&"ts")?.as_f64()?, o.get(&"uid")?.as_str()?)));
                match fields {
                    Some((ts, uid)) => tally.add(ts, uid),
                    None => tally.rejected += 1,
                }
            }
            Parser::SimdJson => {
                self.scratch.clear();
                self.scratch.extend_from_slice(line);
                tally.frame(
                    simd_json::serde::from_slice_with_buffers::<Frame>(
                        &mut self.scratch,
                        &mut self.buffers,
                    )
                    .ok(),
                );
            }
        }
    }
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage =
        "usage: json_baselines serde_json|sonic-rs|sonic-rs-value|simd-json FILE [WINDOW_SECONDS]";
    let (Some(parser), Some(path)) = (args.next(), args.next()) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let parser = match parser.as_str() {
        "serde_json" => Parser::SerdeJson,
        "sonic-rs" => Parser::SonicRs,
        "sonic-rs-value" => Parser::SonicRsValue,
        "simd-json" => Parser::SimdJson,
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let window_seconds: u64 = args
        .next()
        .map_or(60, |s| s.parse().expect("WINDOW_SECONDS"));
    let started = Instant::now();
    let mut file = File::open(&path)?;
    let mut counts = Counts {
        parser,
        tally: Tally {
            window_seconds,
            windows: Windows::default(),
            rejected: 0,
        },
        messages: 0,
        scratch: Vec::new(),
        buffers: simd_json::Buffers::default(),
    };
    let mut buf: Vec<u8> = Vec::with_capacity(2 * BLOCK);
    let mut bytes = 0u64;
    loop {
        // Append one block after the incomplete line carried over.
        let n = (&mut file).take(BLOCK as u64).read_to_end(&mut buf)?;
        bytes += n as u64;
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', &buf) {
            counts.line(&buf[start..nl]);
            start = nl + 1;
        }
        if n == 0 {
            if start < buf.len() {
                counts.line(&buf[start..]);
            }
            break;
        }
        buf.drain(..start);
    }
    let ordered: BTreeMap<_, _> = counts.tally.windows.iter().collect();
    let mut out = io::BufWriter::new(io::stdout().lock());
    for (start, (users, events)) in ordered {
        let users = users.len();
        writeln!(
            out,
            r#"{{"start_ts":{start},"unique_users":{users},"events":{events}}}"#
        )?;
    }
    out.flush()?;
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    let summary = serde_json::json!({
        "bytes": bytes,
        "messages": counts.messages,
        "rejected": counts.tally.rejected,
        "windows": counts.tally.windows.len(),
        "elapsed_seconds": secs,
        "mb_per_second": bytes as f64 / 1e6 / secs,
        "events_per_second": counts.messages as f64 / secs,
    });
    eprintln!("{summary}");
    Ok(())
}
