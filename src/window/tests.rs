use super::*;
use crate::hash::uid_hash;
use std::collections::{BTreeMap, HashSet};

const T0: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z, a window boundary

fn cfg() -> WindowConfig {
    WindowConfig {
        sizes: vec![size::WindowSize::Seconds(60)],
        timezone: "UTC".into(),
        allowed_lateness_seconds: 5,
        late_retention_seconds: 600,
        max_ahead_seconds: 300,
        max_behind_seconds: 86_400,
        jump_confirm_events: 16,
        groupings: crate::group::Groupings::none(),
        rolling: Vec::new(),
    }
}

struct Run {
    w: Windower,
    out: Vec<WindowRecord>,
}

impl Run {
    fn new() -> Self {
        Run {
            w: Windower::new(cfg(), CounterKind::Exact).unwrap(),
            out: Vec::new(),
        }
    }
    fn push(&mut self, ts: u64, uid: &str) {
        self.w
            .push(ts, uid.as_bytes(), uid_hash(uid.as_bytes()), &mut self.out);
    }
    fn finish(mut self) -> (Vec<WindowRecord>, WindowStats) {
        self.w.finish(&mut self.out);
        (self.out, self.w.stats())
    }
}

/// Last record per window start.
fn latest(records: &[WindowRecord]) -> BTreeMap<u64, WindowRecord> {
    let mut m = BTreeMap::new();
    for r in records {
        let prev = m.insert(r.start_ts, r.clone());
        if let Some(p) = prev {
            assert!(
                r.revision > p.revision,
                "revisions must grow: {p:?} then {r:?}"
            );
        }
    }
    m
}

/// A steady stream: `per_sec` events per second from T0 for `secs` seconds,
/// users cycling through `users`, ts jittered back by up to 3 s.
fn steady(secs: u64, per_sec: u64, users: u64) -> Vec<(u64, String)> {
    let mut v = Vec::new();
    for s in 0..secs {
        for k in 0..per_sec {
            let i = s * per_sec + k;
            let jitter = (i * 7919) % 4;
            v.push((
                (T0 + s).saturating_sub(jitter).max(T0),
                format!("u{}", i % users),
            ));
        }
    }
    v
}

fn truth(events: &[(u64, String)]) -> BTreeMap<u64, (u64, u64)> {
    let mut sets: BTreeMap<u64, (HashSet<&str>, u64)> = BTreeMap::new();
    for (ts, uid) in events {
        let e = sets.entry(ts - ts % 60).or_default();
        e.0.insert(uid);
        e.1 += 1;
    }
    sets.into_iter()
        .map(|(k, (s, n))| (k, (s.len() as u64, n)))
        .collect()
}

fn assert_matches_truth(records: &[WindowRecord], events: &[(u64, String)]) {
    let got: BTreeMap<u64, (u64, u64)> = latest(records)
        .into_iter()
        .map(|(k, r)| (k, (r.unique_users, r.events)))
        .collect();
    assert_eq!(got, truth(events));
}

#[test]
fn out_of_order_within_lateness_is_exact_with_one_record_per_window() {
    let events = steady(600, 5, 400);
    let mut run = Run::new();
    for (ts, uid) in &events {
        run.push(*ts, uid);
    }
    let (records, stats) = run.finish();
    assert_matches_truth(&records, &events);
    assert_eq!(records.len(), 10);
    assert!(records.iter().all(|r| r.revision == 0));
    assert_eq!(stats.counted, events.len() as u64);
    assert_eq!(
        stats.late_corrected + stats.late_dropped + stats.ts_out_of_range,
        0
    );
    // Windows are emitted in order, each as soon as the watermark passes it.
    let starts: Vec<u64> = records.iter().map(|r| r.start_ts).collect();
    assert_eq!(starts, (0..10).map(|i| T0 + 60 * i).collect::<Vec<_>>());
}

#[test]
fn late_events_are_corrected_with_coalesced_higher_revisions() {
    let mut events = steady(300, 2, 1000);
    // 50 late events (distinct new users) for the first window, arriving
    // around t = T0+200, i.e. 140 s after that window closed.
    let late: Vec<(u64, String)> = (0..50).map(|i| (T0 + 10, format!("late{i}"))).collect();
    events.splice(400..400, late);
    let mut run = Run::new();
    for (ts, uid) in &events {
        run.push(*ts, uid);
    }
    let (records, stats) = run.finish();
    assert_matches_truth(&records, &events);
    assert_eq!(stats.late_corrected, 50);
    let first: Vec<&WindowRecord> = records.iter().filter(|r| r.start_ts == T0).collect();
    // Revision 0 at close, then exactly one coalesced correction.
    assert_eq!(first.len(), 2, "{first:?}");
    assert_eq!((first[0].revision, first[1].revision), (0, 1));
    assert_eq!(first[1].unique_users, first[0].unique_users + 50);
    assert_eq!(stats.corrections_emitted, 1);
}

#[test]
fn events_later_than_retention_are_dropped() {
    let mut run = Run::new();
    for s in 0..900 {
        run.push(T0 + s, "a");
    }
    // Watermark is T0+894: window [T0, T0+60) expired at T0+660.
    run.push(T0 + 5, "late-beyond-retention");
    // Window [T0+240, T0+300) is within retention (300 + 600 > 894).
    run.push(T0 + 250, "late-within-retention");
    let (records, stats) = run.finish();
    assert_eq!(stats.late_dropped, 1);
    assert_eq!(stats.late_corrected, 1);
    let l = latest(&records);
    assert_eq!(l[&T0].unique_users, 1);
    assert_eq!(l[&(T0 + 240)].unique_users, 2);
    assert_eq!(l[&(T0 + 240)].revision, 1);
}

#[test]
fn bit_flipped_timestamps_neither_make_events_late_nor_open_windows() {
    let events = steady(600, 5, 300);
    let mut run = Run::new();
    let mut flips = 0;
    for (i, (ts, uid)) in events.iter().enumerate() {
        run.push(*ts, uid);
        if i % 97 == 50 {
            // Flip bits 20..33: 12 days to 272 years, both directions.
            let bit = 20 + (i / 97) % 14;
            run.push(ts ^ (1 << bit), "flipped");
            flips += 1;
        }
    }
    let (records, stats) = run.finish();
    assert_matches_truth(&records, &events);
    assert_eq!(stats.ts_out_of_range, flips);
    assert_eq!(stats.late_corrected, 0, "no good event became late");
    assert!(records.iter().all(|r| r.revision == 0));
}

#[test]
fn a_flip_ahead_of_the_stream_but_behind_the_wall_clock_is_rejected() {
    // Replaying data from 2020: a flip into 2024 is in the past of any wall
    // clock, and must still be refused.
    let base = 1_577_836_800; // 2020-01-01
    let mut run = Run::new();
    for s in 0..300 {
        run.push(base + s, "u");
        if s == 100 {
            run.push(base + s + (1 << 27), "flip"); // +4.25 years
        }
    }
    let (records, stats) = run.finish();
    assert_eq!(stats.ts_out_of_range, 1);
    assert_eq!(records.len(), 5);
    assert!(records.iter().all(|r| r.start_ts < base + 300));
}

#[test]
fn a_flip_in_the_very_first_event_does_not_anchor_the_stream() {
    let events = steady(180, 3, 50);
    let mut run = Run::new();
    run.push(T0 ^ (1 << 31), "flip-first");
    for (ts, uid) in &events {
        run.push(*ts, uid);
    }
    let (records, stats) = run.finish();
    assert_matches_truth(&records, &events);
    assert_eq!(stats.ts_out_of_range, 1);
}

#[test]
fn a_real_jump_of_the_whole_stream_is_followed_without_loss() {
    let mut events = steady(180, 3, 50);
    // A one-day gap in the data, then the stream continues.
    let after: Vec<(u64, String)> = steady(180, 3, 50)
        .into_iter()
        .map(|(ts, u)| (ts + 86_400, u))
        .collect();
    events.extend(after);
    let mut run = Run::new();
    for (ts, uid) in &events {
        run.push(*ts, uid);
    }
    let (records, stats) = run.finish();
    assert_matches_truth(&records, &events);
    assert_eq!(stats.ts_out_of_range + stats.late_dropped, 0);
    assert_eq!(records.len(), 6);
}

#[test]
fn a_short_jump_at_the_end_of_input_is_kept() {
    let mut events = steady(120, 3, 50);
    events.extend((0..5).map(|i| (T0 + 7200 + i, format!("tail{i}"))));
    let mut run = Run::new();
    for (ts, uid) in &events {
        run.push(*ts, uid);
    }
    let (records, stats) = run.finish();
    assert_matches_truth(&records, &events);
    assert_eq!(stats.ts_out_of_range, 0);
}

#[test]
fn far_past_events_are_out_of_range_not_late() {
    let mut run = Run::new();
    for s in 0..120 {
        run.push(T0 + s, "u");
    }
    run.push(T0 - 2 * 86_400, "two-days-old");
    run.push(T0 - 3_600, "an-hour-old");
    let (_, stats) = run.finish();
    assert_eq!(stats.ts_out_of_range, 1);
    assert_eq!(stats.late_dropped, 1);
}

#[test]
fn eof_flushes_every_open_window() {
    let mut run = Run::new();
    run.push(T0 + 1, "a");
    run.push(T0 + 61, "b");
    run.push(T0 + 62, "a");
    let (records, _) = run.finish();
    let l = latest(&records);
    assert_eq!(l.len(), 2);
    assert_eq!((l[&T0].unique_users, l[&(T0 + 60)].unique_users), (1, 2));
}

#[test]
fn memory_is_bounded_by_open_and_retained_windows() {
    let mut w = Windower::new(cfg(), CounterKind::Exact).unwrap();
    let mut out = Vec::new();
    let mut max_held = 0;
    for s in 0..20_000u64 {
        let uid = format!("u{}", s % 100);
        w.push(T0 + s, uid.as_bytes(), uid_hash(uid.as_bytes()), &mut out);
        max_held = max_held.max(w.windows_held());
    }
    // (5 + 600) / 60 + 2 = 12
    assert!(max_held <= 12, "held {max_held} windows");
    assert_eq!(out.len(), 20_000 / 60);
}

fn push_src(
    w: &mut Windower,
    src: usize,
    ts: u64,
    uid: &str,
    offset: i64,
    out: &mut Vec<WindowRecord>,
) {
    w.push_from(
        src,
        ts,
        uid.as_bytes(),
        uid_hash(uid.as_bytes()),
        offset,
        crate::group::Keys::NONE,
        out,
    );
}

fn multi(n: usize) -> Windower {
    let mut w = Windower::new(cfg(), CounterKind::Exact).unwrap();
    w.reset(n);
    w
}

#[test]
fn a_slow_source_holds_windows_open_until_it_catches_up_or_idles() {
    let mut w = multi(2);
    let mut out = Vec::new();
    for s in 0..200 {
        push_src(&mut w, 0, T0 + s, "fast", s as i64, &mut out);
    }
    // (A source's time counts once its guard has seen enough agreeing events.)
    for i in 0..20 {
        push_src(&mut w, 1, T0 + 10, "slow", i, &mut out);
    }
    assert!(out.is_empty(), "source 1 is at T0+10: nothing may close");
    // The slow source catches up: windows up to its watermark close.
    push_src(&mut w, 1, T0 + 130, "slow", 20, &mut out);
    let starts: Vec<u64> = out.iter().map(|r| r.start_ts).collect();
    assert_eq!(starts, [T0, T0 + 60]);
    assert_eq!(out[0].unique_users, 2);
    // It goes idle: the fast source alone drives the watermark.
    w.set_idle(1, true, &mut out);
    assert_eq!(out.last().unwrap().start_ts, T0 + 120);
}

#[test]
fn min_offset_needed_covers_every_held_window_and_held_event() {
    let mut w = multi(2);
    let mut out = Vec::new();
    for s in 0..100 {
        push_src(&mut w, 0, T0 + s, "a", 1000 + s as i64, &mut out);
        push_src(&mut w, 1, T0 + s, "b", 50 + s as i64, &mut out);
    }
    assert_eq!(w.min_offset_needed(0), Some(1000));
    assert_eq!(w.min_offset_needed(1), Some(50));
    // Long after retention, only the recent windows pin offsets.
    for s in 100..1000 {
        push_src(&mut w, 0, T0 + s, "a", 1000 + s as i64, &mut out);
        push_src(&mut w, 1, T0 + s, "b", 50 + s as i64, &mut out);
    }
    let wm = w.watermark().unwrap();
    let oldest_held = (wm - 600 - 60) / 60 * 60 + 60;
    let needed = w.min_offset_needed(0).unwrap();
    assert!(needed >= 1000 + (oldest_held - T0) as i64 - 60, "{needed}");
    assert!(needed <= 1000 + (oldest_held - T0) as i64 + 60, "{needed}");
    // A held (quarantined) event pins its own offset.
    push_src(&mut w, 0, T0 + 90_000, "jump", 5, &mut out);
    assert_eq!(w.min_offset_needed(0), Some(5));
}

#[test]
fn restored_time_holds_back_every_window_until_released() {
    let mut w = multi(1);
    let mut out = Vec::new();
    // Stream time restored to T0+300: the watermark is T0+295, so windows
    // ending by then (here [T0+180, T0+240)) were closed before the restart.
    w.restore(0, T0 + 300);
    for s in 200..300 {
        push_src(&mut w, 0, T0 + s, "u", s as i64, &mut out);
    }
    assert!(out.is_empty(), "replayed closed windows must wait: {out:?}");
    // Replay goes on past the restored time: windows that close now wait
    // too (what was emitted before the restart may include corrections
    // the replay has not reached yet)...
    for s in 300..400 {
        push_src(&mut w, 0, T0 + s, "u", s as i64, &mut out);
    }
    assert!(out.is_empty(), "windows closed in the replay wait: {out:?}");
    // ...and all come out once replay has caught up, in order.
    w.release_held(&mut out);
    let released: Vec<(u64, u64)> = out.iter().map(|r| (r.start_ts, r.events)).collect();
    assert_eq!(released, [(T0 + 180, 40), (T0 + 240, 60), (T0 + 300, 60)]);
    // Then windows close as usual.
    out.clear();
    push_src(&mut w, 0, T0 + 500, "u", 500, &mut out);
    let starts: Vec<u64> = out.iter().map(|r| r.start_ts).collect();
    assert_eq!(starts, [T0 + 360]);
}

#[test]
fn a_correction_still_due_goes_out_when_its_window_expires() {
    let mut c = cfg();
    c.sizes = vec![size::WindowSize::Hours(1)];
    let mut w = Windower::new(c, CounterKind::Exact).unwrap();
    let mut out = Vec::new();
    let push = |w: &mut Windower, ts: u64, uid: &str, out: &mut Vec<WindowRecord>| {
        w.push(ts, uid.as_bytes(), uid_hash(uid.as_bytes()), out)
    };
    for s in 0..3700 {
        push(&mut w, T0 + s, &format!("u{}", s % 50), &mut out);
    }
    assert_eq!(out.len(), 1, "the first hour closed");
    // A late event for it, then the stream moves past its retention (600 s)
    // long before the next hour closes (the hour size's next tick).
    push(&mut w, T0 + 10, "late", &mut out);
    for s in 3700..4300 {
        push(&mut w, T0 + s, &format!("u{}", s % 50), &mut out);
    }
    assert!(w.watermark().unwrap() >= T0 + 3600 + 600);
    let last = out.last().unwrap();
    assert_eq!(
        (last.start_ts, last.revision, last.unique_users),
        (T0, 1, 51)
    );
    assert_eq!(w.windows_held(), 1, "the first hour is freed");
}

#[test]
fn a_window_emitted_while_idle_gets_its_final_count() {
    let mut run = Run::new();
    let mut events = Vec::new();
    // The first half of a minute, then the input goes idle.
    for i in 0..40 {
        events.push((T0 + i % 30, format!("early{i}")));
    }
    for (ts, uid) in &events {
        run.push(*ts, uid);
    }
    run.w.flush_idle(&mut run.out);
    let provisional: Vec<(u64, u64, u32)> = run
        .out
        .iter()
        .map(|r| (r.start_ts, r.unique_users, r.revision))
        .collect();
    assert_eq!(provisional, [(T0, 40, 0)]);
    // 30 new users in the second half of the same minute, then the stream
    // moves on and closes it.
    for i in 0..30 {
        events.push((T0 + 30 + i, format!("late{i}")));
    }
    events.push((T0 + 70, "next".to_string()));
    for (ts, uid) in &events[40..] {
        run.push(*ts, uid);
    }
    assert_eq!(
        latest(&run.out)[&T0].unique_users,
        70,
        "emitted again when it closes: {:?}",
        run.out
    );
    let (records, stats) = run.finish();
    assert_matches_truth(&records, &events);
    assert_eq!(stats.late_corrected, 0, "nothing here was late");
}

#[test]
fn idle_flushes_repeat_while_the_window_stays_open() {
    let mut run = Run::new();
    run.push(T0, "a");
    run.w.flush_idle(&mut run.out);
    run.push(T0 + 1, "b");
    run.w.flush_idle(&mut run.out);
    run.w.flush_idle(&mut run.out); // nothing changed: no record
    let seen: Vec<(u64, u32)> = run
        .out
        .iter()
        .map(|r| (r.unique_users, r.revision))
        .collect();
    assert_eq!(seen, [(1, 0), (2, 1)]);
    let (records, _) = run.finish();
    assert_eq!(records.len(), 2, "unchanged since the last idle flush");
}

#[test]
fn idle_settles_a_quiet_start_held_by_the_guards() {
    let mut w = multi(2);
    let mut out = Vec::new();
    for i in 0..10 {
        push_src(
            &mut w,
            i % 2,
            T0 + i as u64,
            &format!("u{i}"),
            i as i64,
            &mut out,
        );
    }
    assert!(out.is_empty(), "fewer than confirm events: still held");
    w.set_idle(0, true, &mut out);
    w.set_idle(1, true, &mut out);
    w.flush_idle(&mut out);
    let l = latest(&out);
    assert_eq!(l[&T0].unique_users, 10);
    assert_eq!(l[&T0].events, 10);
    assert_eq!(w.min_offset_needed(0), Some(0));
}

#[test]
fn a_repeated_flip_before_valid_events_loses_none_of_them() {
    let mut events: Vec<(u64, String)> = Vec::new();
    let mut run = Run::new();
    run.push(10_357_160_192, "dup");
    run.push(10_357_160_192, "dup");
    for i in 0..3600 {
        let e = (T0 + i, format!("u{i}"));
        run.push(e.0, &e.1);
        events.push(e);
    }
    let (records, stats) = run.finish();
    assert_matches_truth(&records, &events);
    assert_eq!(stats.ts_out_of_range, 2);
    // One valid event, then two copies of a flip to 1970, then ten more.
    let mut run = Run::new();
    let mut events = vec![(T0, "v0".to_string())];
    run.push(T0, "v0");
    run.push(0, "z");
    run.push(0, "z");
    for i in 1..11 {
        let e = (T0 + i, format!("v{i}"));
        run.push(e.0, &e.1);
        events.push(e);
    }
    let (records, stats) = run.finish();
    assert_matches_truth(&records, &events);
    assert_eq!(stats.ts_out_of_range, 2);
}

#[test]
fn windows_that_would_end_after_year_9999_are_out_of_range() {
    let last_end = crate::decode::MAX_TS; // 9999-12-31T23:59:59
    let mut run = Run::new();
    // The last whole minute that ends by then, and one event after it.
    let last_start = (last_end - 60) / 60 * 60;
    for ts in [last_start, last_start + 59, last_start + 60, last_end] {
        run.push(ts, "u");
    }
    let (records, stats) = run.finish();
    assert_eq!(stats.ts_out_of_range, 2);
    assert_eq!(records.len(), 1);
    assert!(records[0].end_ts() <= last_end);
}

mod laws {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whenever the input goes idle, and however often, the last record
        /// of every window equals the exact count of its events, and
        /// revisions only grow.
        #[test]
        fn idle_flushes_never_change_the_final_counts(
            jitter in proptest::collection::vec(0u64..4, 200..600),
            users in 1u64..80,
            flushes in proptest::collection::vec(any::<u16>(), 0..12),
            flips in proptest::collection::vec((any::<u16>(), 30u32..40), 0..4),
        ) {
            let events: Vec<(u64, String)> = jitter
                .iter()
                .enumerate()
                .map(|(i, j)| ((T0 + i as u64 / 2).saturating_sub(*j).max(T0), format!("u{}", i as u64 % users)))
                .collect();
            let flush_at: HashSet<usize> = flushes.iter().map(|&f| f as usize % events.len()).collect();
            let flip_at: BTreeMap<usize, u32> = flips.iter().map(|&(at, bit)| (at as usize % events.len(), bit)).collect();
            let mut run = Run::new();
            for (i, (ts, uid)) in events.iter().enumerate() {
                if let Some(bit) = flip_at.get(&i) {
                    run.push(ts ^ (1 << bit), "flipped");
                }
                run.push(*ts, uid);
                if flush_at.contains(&i) {
                    run.w.flush_idle(&mut run.out);
                }
            }
            let (records, stats) = run.finish();
            assert_matches_truth(&records, &events);
            prop_assert_eq!(stats.ts_out_of_range, flip_at.len() as u64);
        }
    }
}
