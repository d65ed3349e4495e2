//! Decoding a mapped file on several threads, in order.
//!
//! Decoding is ~85 % of `count`'s work and independent per line; windowing
//! depends on the order of events. So the file is cut into chunks of whole
//! lines, worker threads decode chunks into compact event lists (the uid
//! bytes copied into one arena per chunk: no allocation per event), and the
//! calling thread takes the chunks back in file order and windows them. The
//! output is byte-identical to the single-threaded path. The sink can stop
//! the run (a signal, a closed output): the threads then stop at their next
//! chunk instead of decoding the rest of the file. The pages of each chunk
//! are given back once it has been windowed ([`crate::input::release_read`]),
//! so only the chunks in flight are resident.

use crate::decode::Decoder;
use crate::group::{GroupKeys, Groupings, Refusals};
use crate::hash::uid_hash;
use crate::reject::RejectCounts;
use std::collections::BTreeMap;
use std::ops::{ControlFlow, Range};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Mutex;

/// Bytes per chunk (rounded up to the next line end).
const CHUNK: usize = 4 << 20;

/// One decoded event of a chunk; its uid is `uids[uid]`, its group keys
/// `keys.view_of(keys)` (hashed here: not by the windowing thread).
#[derive(Debug, Clone)]
pub struct DecodedEvent {
    pub ts: u64,
    pub hash: u64,
    pub uid: Range<u32>,
    pub keys: Range<u32>,
}

/// A decoded chunk.
#[derive(Debug, Default)]
pub struct Decoded {
    pub events: Vec<DecodedEvent>,
    pub uids: Vec<u8>,
    pub keys: GroupKeys,
    pub rejects: RejectCounts,
    pub refusals: Refusals,
    pub messages: u64,
    /// Input bytes of the chunk (newlines included).
    pub bytes: u64,
}

/// Whether splitting `len` bytes over threads is worth it.
pub fn worth_it(len: usize, workers: usize) -> bool {
    workers > 1 && len >= 4 * CHUNK
}

/// Decodes `map` (JSON lines) on `workers` threads and hands the chunks to
/// `sink`, in order, on the calling thread, until it says `Break`. Without
/// `keep_uids` (a counter that reads only hashes), every event's uid is
/// left empty instead of copied into the chunk's arena.
pub fn decode_in_order(
    map: &memmap2::Mmap,
    max_line: usize,
    workers: usize,
    keep_uids: bool,
    groupings: &Groupings,
    sink: impl FnMut(Decoded) -> ControlFlow<()>,
) {
    let mut released = 0;
    let opts = Opts {
        max_line,
        workers,
        chunk_bytes: CHUNK,
        keep_uids,
        groupings,
    };
    decode_chunks(map, opts, sink, |read| {
        crate::input::release_read(map, &mut released, read)
    });
}

/// Chunks decoded or being decoded at once, at most.
fn in_flight(workers: usize) -> usize {
    3 * workers
}

#[derive(Clone, Copy)]
struct Opts<'g> {
    max_line: usize,
    workers: usize,
    chunk_bytes: usize,
    keep_uids: bool,
    /// Their group keys are worked out here too.
    groupings: &'g Groupings,
}

/// The chunk pipeline over `data`; `done(bytes)` is called once the sink
/// has taken the chunks up to `bytes`, which nothing refers to any more
/// (a chunk's uids are copied out of it).
fn decode_chunks(
    data: &[u8],
    opts: Opts<'_>,
    mut sink: impl FnMut(Decoded) -> ControlFlow<()>,
    mut done: impl FnMut(usize),
) {
    let Opts {
        workers,
        chunk_bytes,
        ..
    } = opts;
    let (job_tx, job_rx) = sync_channel::<(u64, &[u8])>(workers * 2);
    let (done_tx, done_rx) = sync_channel::<(u64, Decoded)>(workers * 2);
    // Chunks handed out and not yet through the sink: a chunk decoded far
    // ahead of a slow one waits, decoded and resident, for its turn, so
    // without a bound a stalled worker would let the others map in the
    // rest of the file.
    let (credit_tx, credit_rx) = sync_channel::<()>(in_flight(workers));
    for _ in 0..in_flight(workers) {
        credit_tx.send(()).expect("capacity");
    }
    let job_rx = Mutex::new(job_rx);
    let stopped = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let stopped = &stopped;
        scope.spawn(move || {
            let mut pos = 0;
            let mut seq = 0;
            while pos < data.len() && !stopped.load(Ordering::Relaxed) {
                if credit_rx.recv().is_err() {
                    return;
                }
                let end = match data.get(pos + chunk_bytes..) {
                    Some(rest) => memchr::memchr(b'\n', rest)
                        .map_or(data.len(), |i| pos + chunk_bytes + i + 1),
                    None => data.len(),
                };
                if job_tx.send((seq, &data[pos..end])).is_err() {
                    return;
                }
                seq += 1;
                pos = end;
            }
        });
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let job_rx = &job_rx;
            scope.spawn(move || worker(job_rx, done_tx, opts, stopped));
        }
        drop(done_tx);
        // Reorder: chunks finish out of order, windows need file order.
        let mut next = 0;
        let mut read = 0;
        let mut pending = BTreeMap::new();
        'chunks: for (seq, decoded) in &done_rx {
            pending.insert(seq, decoded);
            while let Some(d) = pending.remove(&next) {
                read += d.bytes as usize;
                if sink(d).is_break() {
                    break 'chunks;
                }
                done(read);
                let _ = credit_tx.try_send(());
                next += 1;
            }
        }
        // Stopping: workers quit at their next chunk (their sends fail once
        // `done_rx` is gone), and the queued jobs are dropped so that the
        // splitter is not left blocked on a full queue or waiting for a
        // credit.
        stopped.store(true, Ordering::Relaxed);
        drop(credit_tx);
        drop(done_rx);
        while job_rx.lock().expect("not poisoned").try_recv().is_ok() {}
    });
}

fn worker(
    jobs: &Mutex<Receiver<(u64, &[u8])>>,
    done: std::sync::mpsc::SyncSender<(u64, Decoded)>,
    opts: Opts<'_>,
    stopped: &AtomicBool,
) {
    let mut decoder = Decoder::with_fields(&opts.groupings.paths);
    loop {
        let job = jobs.lock().expect("not poisoned").recv();
        let Ok((seq, chunk)) = job else {
            return;
        };
        if stopped.load(Ordering::Relaxed) {
            continue; // drain the queue without decoding
        }
        let mut d = Decoded {
            bytes: chunk.len() as u64,
            ..Decoded::default()
        };
        decoder.decode_lines(chunk, opts.max_line, |result| {
            d.messages += 1;
            match result {
                Ok(e) => {
                    let start = d.uids.len() as u32;
                    if opts.keep_uids {
                        d.uids.extend_from_slice(e.uid);
                    }
                    let keys_start = d.keys.len() as u32;
                    if !opts.groupings.is_empty() {
                        opts.groupings
                            .append_keys(&e.fields, &mut d.keys, &mut d.refusals);
                    }
                    d.events.push(DecodedEvent {
                        ts: e.ts,
                        hash: uid_hash(e.uid),
                        uid: start..d.uids.len() as u32,
                        keys: keys_start..d.keys.len() as u32,
                    });
                }
                Err(r) => d.rejects.add(r),
            }
        });
        if done.send((seq, d)).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{generate, FrameKind, GenerateOptions};

    #[test]
    fn chunks_come_back_in_order_and_match_one_thread() {
        let opts = GenerateOptions {
            events: 60_000,
            frame: FrameKind::Minimal,
            invalid_share: 0.02,
            ..GenerateOptions::default()
        };
        let mut data = Vec::new();
        generate(&opts, &[crate::window::size::Grid::fixed(60)], &mut data).unwrap();
        data.extend_from_slice(b"\n\n{\"ts\":5,\"uid\":\"no newline at the end\"}");

        // One thread, one line at a time.
        let mut decoder = Decoder::new();
        let mut want = Vec::new();
        let mut want_rejects = RejectCounts::default();
        let mut messages = 0;
        for line in data.split(|&b| b == b'\n') {
            messages += 1;
            match decoder.decode(line) {
                Ok(e) => want.push((e.ts, e.uid.to_vec())),
                Err(r) => want_rejects.add(r),
            }
        }

        for workers in [1, 2, 3] {
            let mut got = Vec::new();
            let mut rejects = RejectCounts::default();
            let mut got_messages = 0;
            let mut chunks = 0;
            let mut done_upto = 0;
            let none = Groupings::none();
            let opts = Opts {
                groupings: &none,
                max_line: 1 << 20,
                workers,
                chunk_bytes: 8 << 10,
                keep_uids: true,
            };
            decode_chunks(
                &data,
                opts,
                |d| {
                    chunks += 1;
                    got_messages += d.messages;
                    rejects.merge(&d.rejects);
                    for e in &d.events {
                        let uid = d.uids[e.uid.start as usize..e.uid.end as usize].to_vec();
                        assert_eq!(e.hash, uid_hash(&uid));
                        got.push((e.ts, uid));
                    }
                    ControlFlow::Continue(())
                },
                |upto| {
                    assert!(upto > done_upto);
                    done_upto = upto;
                },
            );
            assert_eq!(done_upto, data.len(), "every chunk reported done");
            assert!(chunks > 100, "{chunks} chunks");
            assert_eq!(got_messages, messages);
            assert_eq!(rejects, want_rejects);
            assert_eq!(got, want, "{workers} workers");

            // A sink that stops after three chunks gets exactly three, and
            // every thread ends (the scope returns).
            let mut seen = 0;
            decode_chunks(
                &data,
                opts,
                |_| {
                    seen += 1;
                    if seen == 3 {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                },
                |_| {},
            );
            assert_eq!(seen, 3);

            // Without uids: the same events and hashes, every uid empty.
            let mut hashes = Vec::new();
            let none = Groupings::none();
            let opts = Opts {
                groupings: &none,
                keep_uids: false,
                ..opts
            };
            decode_chunks(
                &data,
                opts,
                |d| {
                    assert!(d.uids.is_empty());
                    hashes.extend(d.events.iter().map(|e| (e.ts, e.hash, e.uid.len())));
                    ControlFlow::Continue(())
                },
                |_| {},
            );
            let want_hashes: Vec<_> = want.iter().map(|(ts, u)| (*ts, uid_hash(u), 0)).collect();
            assert_eq!(hashes, want_hashes);
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn windowed_chunks_leave_the_resident_set() {
        let dir = std::env::temp_dir().join(format!("distinctly-prss-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big.jsonl");
        let mut line = br#"{"ts":1,"uid":"a"}"#.to_vec();
        line.resize(999, b' ');
        line.push(b'\n');
        let lines = 24 * CHUNK / line.len();
        std::fs::write(&path, line.repeat(lines)).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: a private file of this test, not changed while mapped.
        let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
        let addr = map.as_ptr() as usize;
        let (mut events, mut most) = (0, 0);
        decode_in_order(&map, 1 << 20, 2, true, &Groupings::none(), |d| {
            events += d.events.len();
            most = most.max(crate::input::tests::mapping_rss(addr));
            ControlFlow::Continue(())
        });
        assert_eq!(events, lines);
        // Chunks in flight: two queued jobs and two results per worker, one
        // being decoded by each, the one in the sink.
        assert!(
            most <= 8 * CHUNK,
            "{most} bytes of a {} byte map resident",
            map.len()
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
