//! `distinctly bench --groups`: what groups cost per backend.
//!
//! - *Heap per group* at 1, 10, 100 and 1000 users: one window of a
//!   lane with one grouping is filled with groups of exactly that many
//!   users, then measured by the counting allocator; the same events
//!   without the grouping are measured too, and the difference is the
//!   groups' cost (so an `exact` window's uid bytes, which its groups
//!   share, are not counted again).
//! - *Error, inserts per second*: one window of 10^5 groups whose sizes
//!   follow Zipf (1.0) over 10^6 events of uniformly drawn users; every
//!   group's count against its truth (mean, p99, max relative error) and
//!   the rate of events through the window's total and groups.

use super::{percentile, BenchError};
use crate::counter::CounterKind;
use crate::group::{GroupKeys, Groupings};
use crate::hash::uid_hash;
use crate::memory::alloc;
use crate::window::size::WindowSize;
use crate::window::{WindowConfig, Windower};
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// Users per group whose heap is measured.
pub const SIZES: [u64; 4] = [1, 10, 100, 1000];
/// Groups of the Zipf workload.
pub const ZIPF_GROUPS: u64 = 100_000;
/// Events of the Zipf workload (users drawn from as many).
pub const ZIPF_EVENTS: u64 = 1_000_000;

/// One backend's measurements.
#[derive(Debug, Clone)]
pub struct GroupRow {
    pub kind: CounterKind,
    /// Heap bytes per group at each of [`SIZES`].
    pub heap_per_group: Vec<f64>,
    pub err_mean: f64,
    pub err_p99: f64,
    pub err_max: f64,
    /// Groups the Zipf window held.
    pub groups: usize,
    pub events_per_second: f64,
}

/// A lane of minute windows counting one grouping, unlimited.
fn windower(kind: CounterKind, grouped: bool) -> Windower {
    let groupings = if grouped {
        Groupings::parse("g", usize::MAX).expect("a grouping")
    } else {
        Groupings::none()
    };
    let cfg = WindowConfig {
        sizes: vec![WindowSize::Seconds(60)],
        timezone: "UTC".into(),
        allowed_lateness_seconds: 0,
        late_retention_seconds: 0,
        max_ahead_seconds: 300,
        max_behind_seconds: 86_400,
        jump_confirm_events: 1,
        groupings,
        rolling: Vec::new(),
    };
    Windower::new(cfg, kind).expect("UTC")
}

const T0: u64 = 1_767_225_600;

/// Heap bytes of a window of `groups` groups of `users` users each, with
/// the grouping counted or not.
fn window_heap(kind: CounterKind, groups: u64, users: u64, grouped: bool) -> isize {
    let mut keys = GroupKeys::default();
    let mut out = Vec::new();
    let scope = alloc::AllocScope::start();
    let mut w = windower(kind, grouped);
    for g in 0..groups {
        let key = format!("group-{g}");
        keys.clear();
        keys.push(Some(key.as_bytes()));
        for u in 0..users {
            let uid = format!("u{g}-{u}");
            let keys = if grouped {
                keys.view()
            } else {
                crate::group::Keys::NONE
            };
            w.push_grouped(T0, uid.as_bytes(), uid_hash(uid.as_bytes()), keys, &mut out);
        }
    }
    let live = scope.live_bytes();
    drop(w);
    live
}

/// Runs the groups workloads for every backend of `kinds`.
pub fn run(kinds: &[CounterKind], seed: u64) -> Result<Vec<GroupRow>, BenchError> {
    if !alloc::is_counting() {
        return Err(BenchError::NotCounting);
    }
    let mut rows = Vec::new();
    for &kind in kinds {
        let heap_per_group = SIZES
            .iter()
            .map(|&users| {
                // Fewer groups for large ones: 10^7 members at most.
                let groups = (10_000_000 / users).min(100_000);
                let with = window_heap(kind, groups, users, true);
                let without = window_heap(kind, groups, users, false);
                (with - without) as f64 / groups as f64
            })
            .collect();
        let (err, groups, rate) = zipf(kind, seed);
        rows.push(GroupRow {
            kind,
            heap_per_group,
            err_mean: err.iter().sum::<f64>() / err.len().max(1) as f64,
            err_p99: percentile(&err, 0.99),
            err_max: err.iter().copied().fold(0.0, f64::max),
            groups,
            events_per_second: rate,
        });
    }
    Ok(rows)
}

/// The Zipf window: relative errors per group, groups held, events/s.
fn zipf(kind: CounterKind, seed: u64) -> (Vec<f64>, usize, f64) {
    let zipf = crate::generate::Zipf::new(ZIPF_GROUPS, 1.0);
    let mut rng = crate::generate::Rng::new(seed);
    // The events first (outside the timed part), with their truth.
    let mut events: Vec<(u64, String)> = Vec::with_capacity(ZIPF_EVENTS as usize);
    let mut truth: HashMap<u64, HashSet<u64>> = HashMap::new();
    for _ in 0..ZIPF_EVENTS {
        let group = zipf.sample(&mut rng);
        let user = rng.below(ZIPF_EVENTS);
        truth.entry(group).or_default().insert(user);
        events.push((group, format!("u{user}")));
    }
    // Every event's key, ready before the timed part.
    let mut keys = GroupKeys::default();
    for (group, _) in &events {
        keys.push(Some(format!("g{group}").as_bytes()));
    }
    let mut w = windower(kind, true);
    let mut out = Vec::new();
    let started = Instant::now();
    for (i, (_, uid)) in events.iter().enumerate() {
        let key = keys.view_of(i..i + 1);
        w.push_grouped(T0, uid.as_bytes(), uid_hash(uid.as_bytes()), key, &mut out);
    }
    let seconds = started.elapsed().as_secs_f64();
    let held = w.groups_by_size()[0].1[0];
    w.finish(&mut out);
    let mut err = Vec::with_capacity(truth.len());
    for r in out.iter().filter(|r| r.group.is_some()) {
        let Some(crate::group::GroupLabel {
            value: crate::group::GroupValue::Key(k),
            ..
        }) = &r.group
        else {
            continue;
        };
        let group: u64 = std::str::from_utf8(&k[1..])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(u64::MAX);
        let n = truth.get(&group).map_or(0, HashSet::len) as f64;
        err.push((r.unique_users as f64 - n).abs() / n.max(1.0));
    }
    (err, held, ZIPF_EVENTS as f64 / seconds.max(1e-9))
}

/// The rows as a markdown table.
pub fn markdown(rows: &[GroupRow]) -> String {
    use super::report::{bytes, percent};
    let mut s = String::from(
        "| counter | heap/group @1 | @10 | @100 | @1000 | groups | err mean | err p99 | err max | events/s |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let h: Vec<String> = r.heap_per_group.iter().map(|&b| bytes(b)).collect();
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} M |\n",
            r.kind,
            h[0],
            h[1],
            h[2],
            h[3],
            r.groups,
            percent(r.err_mean),
            percent(r.err_p99),
            percent(r.err_max),
            r.events_per_second / 1e6
        );
    }
    s
}
