//! What a `count` run saw and did, for people (text) and programs (JSON).

use crate::decode::Refusal;
use crate::group::Refusals;
use crate::reject::{Reject, RejectCounts};
use crate::window::size::WindowSize;
use crate::window::WindowStats;
use std::time::Duration;

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
    /// Outcomes of the first window size (and the shared `ts_out_of_range`).
    pub windows: WindowStats,
    /// Outcomes per size, when the run counted several (else empty or one).
    pub by_size: Vec<(WindowSize, WindowStats)>,
    /// Per size: the most heap bytes its held counters took at once
    /// (sampled after every input block).
    pub peak_heap: Vec<(WindowSize, usize)>,
    pub elapsed: Duration,
    /// Per grouping (`DISTINCTLY_GROUP_BY`), as written.
    pub groupings: Vec<String>,
    /// Values no group was made of, per grouping and reason.
    pub refusals: Refusals,
    /// Per grouping: events counted in overflow records (every size).
    pub overflowed: Vec<u64>,
    /// Per grouping: the most groups one size's held windows had at once
    /// (sampled after every input block).
    pub peak_groups: Vec<usize>,
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
        if self.by_size.len() > 1 {
            let sizes: Vec<String> = self
                .by_size
                .iter()
                .map(|(size, w)| {
                    format!(
                        "{size}: {} emitted, {} corrections, {} late dropped",
                        w.windows_emitted, w.corrections_emitted, w.late_dropped
                    )
                })
                .collect();
            s += &format!("\nwindows {}\n", sizes.join("; "));
        } else {
            s += &format!(
                "\nwindows {} emitted, {} corrections\n",
                w.windows_emitted, w.corrections_emitted
            );
        }
        if !self.groupings.is_empty() {
            let groups: Vec<String> = self
                .groupings
                .iter()
                .enumerate()
                .map(|(g, name)| {
                    let refused: Vec<String> = Refusal::ALL
                        .iter()
                        .map(|&r| (r, self.refusals.get(g, r)))
                        .filter(|(_, n)| *n > 0)
                        .map(|(r, n)| format!("{} {n}", r.as_str()))
                        .collect();
                    let refused = if refused.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", refused.join(", "))
                    };
                    let total: u64 = Refusal::ALL.iter().map(|&r| self.refusals.get(g, r)).sum();
                    format!(
                        "{name}: {} groups held at most, {total} values refused{refused}, {} \
                         events overflowed",
                        self.peak_groups.get(g).copied().unwrap_or(0),
                        self.overflowed.get(g).copied().unwrap_or(0)
                    )
                })
                .collect();
            s += &format!("groups {}\n", groups.join("; "));
        }
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
        let sizes: serde_json::Map<String, serde_json::Value> = self
            .by_size
            .iter()
            .map(|(size, s)| {
                (
                    size.to_string(),
                    serde_json::json!({
                        "counted": s.counted,
                        "late_corrected": s.late_corrected,
                        "late_dropped": s.late_dropped,
                        "windows_emitted": s.windows_emitted,
                        "corrections_emitted": s.corrections_emitted,
                    }),
                )
            })
            .collect();
        let mut json = serde_json::json!({
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
        });
        if sizes.len() > 1 {
            json["sizes"] = sizes.into();
        }
        let heap: serde_json::Map<String, serde_json::Value> = self
            .peak_heap
            .iter()
            .map(|(size, bytes)| (size.to_string(), (*bytes).into()))
            .collect();
        json["peak_heap_bytes"] = heap.into();
        if !self.groupings.is_empty() {
            let groups: serde_json::Map<String, serde_json::Value> = self
                .groupings
                .iter()
                .enumerate()
                .map(|(g, name)| {
                    let refused: serde_json::Map<String, serde_json::Value> = Refusal::ALL
                        .iter()
                        .map(|&r| (r.as_str().to_string(), self.refusals.get(g, r).into()))
                        .collect();
                    (
                        name.clone(),
                        serde_json::json!({
                            "peak_groups_held": self.peak_groups.get(g).copied().unwrap_or(0),
                            "refused": refused,
                            "overflowed": self.overflowed.get(g).copied().unwrap_or(0),
                        }),
                    )
                })
                .collect();
            json["groups"] = groups.into();
        }
        json
    }
}
