//! What `/healthz` and `/readyz` answer, the Kubernetes conventions:
//!
//! - **live** (`/healthz`): the process runs its loops. Each loop (the
//!   three stages of `run`, `count`'s one) beats every tick; if one has not
//!   beaten for [`STALL_AFTER`] it is stuck, and a restart is the cure. A
//!   command without a loop to watch is live.
//! - **ready** (`/readyz`): worth sending work to: every stage runs and the
//!   broker answers. Otherwise the answer is 503 with a one-line reason
//!   (`starting`, `broker unreachable`, `shutting down`, ...).
//!
//! The state is process-wide: one service runs per process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A loop that has not beaten for this long is reported stalled. Longer
/// than anything the loop waits for on purpose (a sync commit, a flush of
/// the output, a metadata request: seconds to tens of seconds).
pub const STALL_AFTER: Duration = Duration::from_secs(120);

/// Loops a process can run (the three stages of `run`).
const LOOPS: usize = 3;

pub struct Health {
    /// Per loop: milliseconds since [`epoch`] of its last beat, plus one
    /// (0: no such loop).
    beats: [AtomicU64; LOOPS],
    ready: Mutex<Result<(), String>>,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The process's health.
pub fn health() -> &'static Health {
    static HEALTH: OnceLock<Health> = OnceLock::new();
    HEALTH.get_or_init(|| Health {
        beats: [const { AtomicU64::new(0) }; LOOPS],
        ready: Mutex::new(Err("starting".to_string())),
    })
}

impl Health {
    /// The loop is alive (call once per tick).
    pub fn beat(&self) {
        self.beat_stage(0);
    }

    /// Loop `i` (of several) is alive; the process is live while every
    /// loop that ever beat still does.
    pub fn beat_stage(&self, i: usize) {
        let now = epoch().elapsed().as_millis() as u64 + 1;
        self.beats[i % LOOPS].store(now, Ordering::Relaxed);
    }

    /// Ready, or not ready with a one-line reason.
    pub fn set_ready(&self, ready: Result<(), String>) {
        *self.ready.lock().unwrap_or_else(|e| e.into_inner()) = ready;
    }

    /// `/healthz`: `Err(reason)` when the loop stalled.
    pub fn live(&self) -> Result<(), String> {
        self.live_at(epoch().elapsed())
    }

    fn live_at(&self, now: Duration) -> Result<(), String> {
        // The loop that beat least recently.
        let Some(beat) = self
            .beats
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .filter(|&b| b > 0)
            .min()
        else {
            return Ok(());
        };
        let silent = now.saturating_sub(Duration::from_millis(beat - 1));
        if silent > STALL_AFTER {
            Err(format!("service loop stalled for {} s", silent.as_secs()))
        } else {
            Ok(())
        }
    }

    /// `/readyz`.
    pub fn ready(&self) -> Result<(), String> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Asks `http://{addr}{path}` (`/healthz` or `/readyz`) with a plain
/// HTTP/1.0 GET: `Ok(body)` on 200, `Err(one line)` otherwise. For
/// `distinctly healthcheck` in images without an HTTP client.
pub fn probe(addr: &str, path: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    use std::net::{TcpStream, ToSocketAddrs};
    let timeout = Duration::from_secs(5);
    let fail = |e: std::io::Error| format!("{addr}{path}: {e}");
    let sock = addr
        .to_socket_addrs()
        .map_err(fail)?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))?;
    let mut stream = TcpStream::connect_timeout(&sock, timeout).map_err(fail)?;
    stream.set_read_timeout(Some(timeout)).map_err(fail)?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(fail)?;
    let mut raw = Vec::new();
    stream.take(64 << 10).read_to_end(&mut raw).map_err(fail)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap_or("");
    let body = body.trim().to_string();
    if status == "200" {
        Ok(body)
    } else {
        Err(format!("{path}: {status} {body}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_that_stops_beating_is_reported_stalled() {
        let h = Health {
            beats: [const { AtomicU64::new(0) }; LOOPS],
            ready: Mutex::new(Err("starting".into())),
        };
        assert_eq!(h.live_at(Duration::from_secs(999)), Ok(()), "no loop yet");
        h.beats[0].store(1_000 + 1, Ordering::Relaxed); // beat at 1 s
        assert_eq!(h.live_at(Duration::from_secs(60)), Ok(()));
        assert_eq!(
            h.live_at(Duration::from_secs(200)),
            Err("service loop stalled for 199 s".to_string())
        );
        // Two loops: the one that stopped decides, however busy the other.
        h.beats[0].store(150_000 + 1, Ordering::Relaxed);
        h.beats[2].store(20_000 + 1, Ordering::Relaxed);
        assert_eq!(
            h.live_at(Duration::from_secs(160)),
            Err("service loop stalled for 140 s".to_string())
        );
        assert_eq!(h.ready(), Err("starting".to_string()));
        h.set_ready(Ok(()));
        assert_eq!(h.ready(), Ok(()));
    }
}
