//! Queries from the HTTP thread to the thread that owns the slices.
//!
//! The slices are the counting thread's alone (no lock on the hot path):
//! the HTTP handler sends the query's parameters over a bounded channel
//! and waits for the answer, and the counting thread answers whatever is
//! waiting between two input batches, and after the input until it stops.
//! A full channel or a slow answer is a 503, never a queue that grows.

use super::{QueryError, RangeQuery, Slices};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::OnceLock;
use std::time::Duration;

/// Queries waiting at most; more are refused as busy.
const QUEUE: usize = 64;
/// How long a query waits for the counting thread.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A status and a JSON body.
pub type Reply = (u16, String);

/// One query on its way to the counting thread.
pub struct Request {
    params: Vec<(String, String)>,
    reply: tokio::sync::oneshot::Sender<Reply>,
}

static QUERIES: OnceLock<SyncSender<Request>> = OnceLock::new();

/// Share of the counting thread's time that queries may take while it
/// counts: a flood of queries slows counting by this much at most (the
/// rest wait, and time out as `503` if they wait too long).
const QUERY_SHARE: f64 = 0.1;
/// Query time saved up while none come, at most (one burst).
const MAX_SAVED: Duration = Duration::from_millis(200);

/// Where the owner of the slices takes queries from.
pub struct Queries {
    rx: Receiver<Request>,
    budget: std::cell::Cell<Budget>,
}

/// Time the counting thread may spend on queries, in seconds: earned at
/// [`QUERY_SHARE`] of the wall clock, spent by answering. A query that
/// takes longer than what was saved leaves a debt, paid off before the
/// next is answered (else each batch would answer one, however long).
#[derive(Clone, Copy)]
struct Budget {
    saved: f64,
    at: std::time::Instant,
}

impl Budget {
    fn full() -> Budget {
        Budget {
            saved: MAX_SAVED.as_secs_f64(),
            at: std::time::Instant::now(),
        }
    }

    /// What is saved up (or owed) now.
    fn now(self) -> Budget {
        let at = std::time::Instant::now();
        let earned = at.duration_since(self.at).as_secs_f64() * QUERY_SHARE;
        Budget {
            saved: (self.saved + earned).min(MAX_SAVED.as_secs_f64()),
            at,
        }
    }
}

/// Makes this process answer range queries (once: `None` the second
/// time).
pub fn register() -> Option<Queries> {
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    QUERIES.set(tx).ok()?;
    Some(Queries {
        rx,
        budget: std::cell::Cell::new(Budget::full()),
    })
}

/// Asks the owner of the slices (from the HTTP thread).
pub async fn ask(params: Vec<(String, String)>) -> Reply {
    let Some(tx) = QUERIES.get() else {
        return error(&QueryError::NotServed);
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    if tx.try_send(Request { params, reply }).is_err() {
        return error(&QueryError::Busy);
    }
    match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
        Ok(Ok(reply)) => reply,
        _ => error(&QueryError::Busy),
    }
}

fn error(e: &QueryError) -> Reply {
    (e.status(), e.to_json())
}

/// Answers one query's parameters from `slices`.
pub fn answer(params: &[(String, String)], slices: &Slices) -> Reply {
    let answered = RangeQuery::from_params(params, slices.groupings())
        .and_then(|q| slices.query(&q))
        .map(|a| a.to_json(slices.groupings()));
    match answered {
        Ok(json) => (200, json),
        Err(e) => error(&e),
    }
}

impl Queries {
    /// Answers the queries waiting now, as long as the budget lasts (the
    /// counting thread, between input batches).
    pub fn answer_waiting(&self, slices: &Slices) {
        let mut budget = self.budget.get().now();
        while budget.saved > 0.0 {
            let Ok(r) = self.rx.try_recv() else { break };
            let started = std::time::Instant::now();
            let _ = r.reply.send(answer(&r.params, slices));
            budget.saved -= started.elapsed().as_secs_f64();
        }
        self.budget.set(budget);
    }

    /// Waits up to `timeout` for a query and answers it and any others
    /// waiting, with no budget: nothing else is being counted.
    pub fn answer_next(&self, slices: &Slices, timeout: Duration) {
        if let Ok(r) = self.rx.recv_timeout(timeout) {
            let _ = r.reply.send(answer(&r.params, slices));
            while let Ok(r) = self.rx.try_recv() {
                let _ = r.reply.send(answer(&r.params, slices));
            }
        }
    }
}
