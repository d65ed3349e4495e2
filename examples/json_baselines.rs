//! The straightforward Rust baseline for `distinctly count`: the same block
//! reading (4 MiB blocks split on '\n' with memchr), then `serde_json` into a
//! borrowed struct and a `HashMap<window, HashSet<uid bytes>>`.
//!
//! ```text
//! cargo run --release --example serde_baseline -- FILE [WINDOW_SECONDS]
//! ```
//!
//! Prints `{"start_ts":N,"unique_users":N,"events":N}` per window (in order)
//! on stdout and a JSON summary with the keys of `distinctly count --summary
//! json` on stderr. No lateness or outlier rules: compare counts on clean data
//! (`generate --invalid-share 0 --outlier-share 0`).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::time::Instant;

use serde::Deserialize;

const BLOCK: usize = 4 << 20;

/// serde skips (but still validates) every other key, nested decoys included;
/// `Cow` borrows the uid unless it has escapes.
#[derive(Deserialize)]
struct Frame<'a> {
    ts: f64,
    #[serde(borrow)]
    uid: Cow<'a, str>,
}

/// Window start -> (distinct uids, events).
type Windows = HashMap<u64, (HashSet<Vec<u8>>, u64)>;

#[derive(Default)]
struct Counts {
    windows: Windows,
    messages: u64,
    rejected: u64,
}

impl Counts {
    fn line(&mut self, line: &[u8], window_seconds: u64) {
        self.messages += 1;
        match serde_json::from_slice::<Frame>(line) {
            Ok(f) if f.ts >= 0.0 && f.ts.is_finite() && !f.uid.is_empty() => {
                let ts = f.ts.floor() as u64;
                let (users, events) = self.windows.entry(ts - ts % window_seconds).or_default();
                *events += 1;
                // Allocate only for a uid not yet seen in this window.
                if !users.contains(f.uid.as_bytes()) {
                    users.insert(f.uid.as_bytes().to_vec());
                }
            }
            _ => self.rejected += 1,
        }
    }
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: serde_baseline FILE [WINDOW_SECONDS]");
        std::process::exit(2);
    };
    let window_seconds: u64 = args
        .next()
        .map_or(60, |s| s.parse().expect("WINDOW_SECONDS"));
    let started = Instant::now();
    let mut file = File::open(&path)?;
    let mut counts = Counts::default();
    let mut buf: Vec<u8> = Vec::with_capacity(2 * BLOCK);
    let mut bytes = 0u64;
    loop {
        // Append one block after the incomplete line carried over.
        let n = (&mut file).take(BLOCK as u64).read_to_end(&mut buf)?;
        bytes += n as u64;
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', &buf) {
            counts.line(&buf[start..nl], window_seconds);
            start = nl + 1;
        }
        if n == 0 {
            if start < buf.len() {
                counts.line(&buf[start..], window_seconds);
            }
            break;
        }
        buf.drain(..start);
    }
    let ordered: BTreeMap<_, _> = counts.windows.iter().collect();
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
        "rejected": counts.rejected,
        "windows": counts.windows.len(),
        "elapsed_seconds": secs,
        "mb_per_second": bytes as f64 / 1e6 / secs,
        "events_per_second": counts.messages as f64 / secs,
    });
    eprintln!("{summary}");
    Ok(())
}
