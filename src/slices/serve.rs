//! Queries from the HTTP thread to the thread that owns the slices.
//!
//! The slices are the counting thread's alone (no lock on the hot path):
//! the HTTP handler sends the query's parameters over a bounded channel
//! and waits for the answer, and the counting thread answers whatever is
//! waiting between two input batches, and after the input until it stops.
//! A full channel or a slow answer is a 503, never a queue that grows.

use super::{QueryError, RangeQuery, Slices};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
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

/// Where the owner of the slices takes queries from.
pub struct Queries(Receiver<Request>);

/// Makes this process answer range queries (once: `None` the second
/// time).
pub fn register() -> Option<Queries> {
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    QUERIES.set(tx).ok()?;
    Some(Queries(rx))
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
    /// Answers every query waiting now.
    pub fn answer_waiting(&self, slices: &Slices) {
        loop {
            match self.0.try_recv() {
                Ok(r) => {
                    let _ = r.reply.send(answer(&r.params, slices));
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            }
        }
    }

    /// Waits up to `timeout` for a query and answers it (and any others
    /// waiting).
    pub fn answer_next(&self, slices: &Slices, timeout: Duration) {
        if let Ok(r) = self.0.recv_timeout(timeout) {
            let _ = r.reply.send(answer(&r.params, slices));
            self.answer_waiting(slices);
        }
    }
}
