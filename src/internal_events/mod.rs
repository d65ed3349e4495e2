//! Operational events, one type each (as Vector's `internal_events`).
//!
//! An event's [`InternalEvent::emit`] logs it at its level and updates its
//! metric in the same place, so a call site is one line, and nothing is
//! logged without being counted or counted without being logged. Metric
//! names stay in [`crate::metrics::names`].
//!
//! ```text
//! kafka.rs    the broker, the client and the group: outages, rebalances,
//!             commits, deliveries, dead letters
//! service.rs  the service's life: settings at start, pause and resume of
//!             output, shutdown, the end of a drain, rejected messages
//! ```
//!
//! Events that can repeat in a burst (consume errors, an unreachable
//! broker, failed dead-letter copies) are rate-limited in the log: at most
//! one line per [`RATE_LIMIT`] per event type, which says how many were
//! left out; their metrics count every one.
//!
//! The hot path (one event per message) does not come through here:
//! per-message outcomes are counted in plain fields and published once per
//! tick (see `metrics::Publisher`); [`MessageRejected`] only adds to such a
//! local count and logs at `debug`.

mod kafka;
mod service;

pub use kafka::*;
pub use service::*;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One operational event.
pub trait InternalEvent {
    /// Logs the event and updates its metric.
    fn emit(self);
}

/// Repeats of one rate-limited event type within this window are counted,
/// not logged.
pub const RATE_LIMIT: Duration = Duration::from_secs(10);

/// Rate limit of one event type (a `static` per type).
pub struct RateLimit {
    /// Milliseconds since [`epoch`] of the last logged line, plus one (0:
    /// never logged).
    last: AtomicU64,
    suppressed: AtomicU64,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl RateLimit {
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        RateLimit {
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be logged now (`n` lines were left out
    /// since the last one); `None` when this one is left out.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(epoch().elapsed())
    }

    fn allow_at(&self, now: Duration) -> Option<u64> {
        let now_ms = now.as_millis() as u64 + 1;
        let last = self.last.load(Ordering::Relaxed);
        let window = RATE_LIMIT.as_millis() as u64;
        if last != 0 && now_ms < last + window {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if self
            .last
            .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            // Another thread logged this very moment.
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_one_line_per_window_that_counts_the_rest() {
        let limit = RateLimit::new();
        let at = |ms: u64| limit.allow_at(Duration::from_millis(ms));
        assert_eq!(at(0), Some(0));
        assert_eq!(at(10), None);
        assert_eq!(at(9_998), None);
        assert_eq!(at(10_001), Some(2));
        assert_eq!(at(10_002), None);
        assert_eq!(at(30_000), Some(1));
    }
}
