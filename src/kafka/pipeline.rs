//! Decoding on a second thread while the service thread polls and windows.
//!
//! On ~2 KB frames decoding is two thirds of the per-message work, so the
//! service thread copies each polled message into a batch (one reused byte
//! arena, no allocation per message) and hands full batches to a decoder
//! thread; decoded batches come back in order and are applied (windows, dead
//! letters, offsets) on the service thread. Batches are tagged with the
//! assignment generation so that a rebalance discards what was in flight.

use crate::decode::Decoder;
use crate::hash::uid_hash;
use crate::reject::Reject;
use std::ops::Range;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

/// Messages per batch, and arena bytes that also close a batch.
const BATCH_ITEMS: usize = 512;
const BATCH_BYTES: usize = 4 << 20;
/// Batches at the decoder at once.
pub const MAX_IN_FLIGHT: usize = 2;

/// One polled input, in poll order.
#[derive(Debug, Clone)]
pub enum Item {
    Message {
        src: usize,
        partition: i32,
        offset: i64,
        payload: Range<usize>,
        key: Option<Range<usize>>,
    },
    /// The partition of source `src` was read to its end.
    Eof { src: usize },
}

/// What the decoder made of a message.
#[derive(Debug, Clone)]
pub enum Outcome {
    Event {
        ts: u64,
        hash: u64,
        uid: Range<usize>,
    },
    Rejected(Reject),
}

#[derive(Debug, Default)]
pub struct Batch {
    pub generation: u64,
    pub arena: Vec<u8>,
    pub items: Vec<Item>,
    /// One per `Item::Message`, in order (filled by the decoder).
    pub outcomes: Vec<Outcome>,
    pub uids: Vec<u8>,
}

impl Batch {
    fn clear(&mut self) {
        self.arena.clear();
        self.items.clear();
        self.outcomes.clear();
        self.uids.clear();
    }

    pub fn push_message(
        &mut self,
        src: usize,
        partition: i32,
        offset: i64,
        payload: &[u8],
        key: Option<&[u8]>,
    ) {
        let start = self.arena.len();
        self.arena.extend_from_slice(payload);
        let payload = start..self.arena.len();
        let key = key.map(|k| {
            let start = self.arena.len();
            self.arena.extend_from_slice(k);
            start..self.arena.len()
        });
        self.items.push(Item::Message {
            src,
            partition,
            offset,
            payload,
            key,
        });
    }

    pub fn push_eof(&mut self, src: usize) {
        self.items.push(Item::Eof { src });
    }

    pub fn is_full(&self) -> bool {
        self.items.len() >= BATCH_ITEMS || self.arena.len() >= BATCH_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// The decoder thread and its two channels.
pub struct Pipeline {
    jobs: Option<SyncSender<Batch>>,
    done: Receiver<Batch>,
    thread: Option<JoinHandle<()>>,
    in_flight: usize,
    spare: Vec<Batch>,
}

impl Pipeline {
    pub fn start(max_message_bytes: usize) -> Self {
        let (jobs, job_rx) = sync_channel::<Batch>(MAX_IN_FLIGHT);
        let (done_tx, done) = sync_channel::<Batch>(MAX_IN_FLIGHT);
        let thread = std::thread::Builder::new()
            .name("distinctly-decode".into())
            .spawn(move || {
                let mut decoder = Decoder::new();
                for mut batch in job_rx {
                    decode_batch(&mut decoder, &mut batch, max_message_bytes);
                    if done_tx.send(batch).is_err() {
                        return;
                    }
                }
            })
            .expect("spawn decoder thread");
        Pipeline {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
            in_flight: 0,
            spare: Vec::new(),
        }
    }

    /// An empty batch (recycled when possible).
    pub fn fresh(&mut self, generation: u64) -> Batch {
        let mut b = self.spare.pop().unwrap_or_default();
        b.clear();
        b.generation = generation;
        b
    }

    /// Returns a batch's buffers for reuse.
    pub fn recycle(&mut self, batch: Batch) {
        if self.spare.len() < MAX_IN_FLIGHT + 2 {
            self.spare.push(batch);
        }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Sends a batch to the decoder. The caller makes room first (at most
    /// [`MAX_IN_FLIGHT`] batches out).
    pub fn dispatch(&mut self, batch: Batch) {
        debug_assert!(self.in_flight < MAX_IN_FLIGHT);
        self.jobs
            .as_ref()
            .expect("running")
            .send(batch)
            .expect("decoder thread alive");
        self.in_flight += 1;
    }

    /// The next decoded batch, waiting for it when `block`.
    pub fn receive(&mut self, block: bool) -> Option<Batch> {
        if self.in_flight == 0 {
            return None;
        }
        let b = if block {
            self.done.recv().ok()
        } else {
            self.done.try_recv().ok()
        };
        if b.is_some() {
            self.in_flight -= 1;
        }
        b
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.jobs.take(); // closes the channel: the thread ends
        while self.done.try_recv().is_ok() {}
        if let Some(t) = self.thread.take() {
            // Unblock a thread waiting to hand back a batch.
            while !t.is_finished() {
                let _ = self.done.recv_timeout(std::time::Duration::from_millis(10));
            }
            let _ = t.join();
        }
    }
}

fn decode_batch(decoder: &mut Decoder, batch: &mut Batch, max_message_bytes: usize) {
    let Batch {
        arena,
        items,
        outcomes,
        uids,
        ..
    } = batch;
    for item in items.iter() {
        let Item::Message { payload, .. } = item else {
            continue;
        };
        let payload = &arena[payload.clone()];
        let outcome = if payload.len() > max_message_bytes {
            Outcome::Rejected(Reject::TooLarge)
        } else {
            match decoder.decode(payload) {
                Ok(e) => {
                    let start = uids.len();
                    uids.extend_from_slice(e.uid);
                    Outcome::Event {
                        ts: e.ts,
                        hash: uid_hash(e.uid),
                        uid: start..uids.len(),
                    }
                }
                Err(r) => Outcome::Rejected(r),
            }
        };
        outcomes.push(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_come_back_decoded_in_order() {
        let mut p = Pipeline::start(1 << 20);
        let mut sent = 0;
        let mut got = Vec::new();
        for round in 0..10u64 {
            let mut b = p.fresh(round);
            for i in 0..100u64 {
                let ts = 1_767_225_600 + round * 100 + i;
                let msg = format!(r#"{{"ts":{ts},"uid":"u{i}"}}"#);
                b.push_message(0, 0, i as i64, msg.as_bytes(), None);
            }
            b.push_message(0, 0, 100, b"not json", Some(b"k"));
            b.push_eof(0);
            if p.in_flight() == MAX_IN_FLIGHT {
                got.push(p.receive(true).unwrap());
            }
            p.dispatch(b);
            sent += 1;
        }
        while let Some(b) = p.receive(true) {
            got.push(b);
        }
        assert_eq!(got.len(), sent);
        for (round, b) in got.iter().enumerate() {
            assert_eq!(b.generation, round as u64);
            assert_eq!(b.outcomes.len(), 101);
            let Outcome::Event { ts, uid, hash } = &b.outcomes[7] else {
                panic!("{:?}", b.outcomes[7]);
            };
            assert_eq!(*ts, 1_767_225_600 + round as u64 * 100 + 7);
            assert_eq!(&b.uids[uid.clone()], b"u7");
            assert_eq!(*hash, uid_hash(b"u7"));
            assert!(matches!(
                b.outcomes[100],
                Outcome::Rejected(Reject::NotJson)
            ));
            assert!(matches!(b.items[101], Item::Eof { src: 0 }));
        }
    }
}
