use super::*;
use crate::hash::uid_hash;

const START: u64 = 1_767_225_600;

fn window(kind: CounterKind) -> Window {
    Window {
        start: START,
        end: START + 86_400,
        counter: AnyCounter::new(kind),
        events: 0,
        phase: Phase::Open,
        changed: false,
        replay_from: Vec::new(),
        covered: Vec::new(),
        saved: None,
        dirty: false,
        groups: Vec::new(),
        groups_saved: None,
    }
}

fn add(w: &mut Window, from: u64, to: u64) {
    for i in from..to {
        let uid = format!("user-{i}");
        w.counter.insert(uid.as_bytes(), uid_hash(uid.as_bytes()));
        w.events += 1;
    }
    w.dirty = true;
}

/// Checkpoints `w` (round `round`), applies the records to `snap`, and
/// returns the bytes written.
fn round(w: &mut Window, kind: CounterKind, round: u64, snap: &mut Snapshot) -> usize {
    let mut out = Records::new();
    checkpoint_window(
        0,
        WindowSize::Days(1),
        w,
        kind,
        "",
        round,
        &[(0, round as i64 * 100)],
        &mut out,
    );
    w.dirty = false;
    let bytes = out
        .iter()
        .map(|(_, v)| v.as_ref().map_or(0, Vec::len))
        .sum();
    for (k, v) in out {
        snap.apply(k, v);
    }
    bytes
}

#[test]
fn keys_and_headers_round_trip() {
    let size = WindowSize::Hours(1);
    let id = WindowId {
        shard: 3,
        size,
        start: 42,
    };
    assert_eq!(parse_key(&header_key(id)), Some(Key::Header(id)));
    assert_eq!(
        parse_key(&chunk_key(id, 7, 3)),
        Some(Key::Chunk {
            id,
            generation: 7,
            index: 3
        })
    );
    for bad in [
        "",
        "0/w",
        "0/w/1h",
        "w/1h/42",
        "0/x/1h/42",
        "0/w/5h/42",
        "0/w/1h/42/7",
        "0/w/1h/42/7/3/9",
    ] {
        assert_eq!(parse_key(bad), None, "{bad}");
    }
    let header = Header {
        size,
        start: 42,
        end: 3642,
        phase: Phase::Closed { revision: 3 },
        changed: true,
        events: 99,
        covered: vec![(0, 10), (2, -1)],
        counter: "hll4-lgk14".into(),
        saved: Saved {
            generation: 5,
            chunks: 2,
            len: 700_000,
        },
        uids: 0,
        overflowed: 0,
        groups: None,
        group_by: String::new(),
    };
    let bytes = header.encode();
    assert_eq!(Header::decode("k", &bytes), Ok(header));
    assert!(Header::decode("k", &bytes[..bytes.len() - 1]).is_err());
    assert!(Header::decode("k", b"DSW1").is_err());
    assert!(Header::decode("k", b"nope").is_err());
}

#[test]
fn exact_windows_are_checkpointed_incrementally_and_read_back() {
    let kind = CounterKind::Exact;
    let mut w = window(kind);
    let mut snap = Snapshot::default();
    add(&mut w, 0, 50_000);
    let first = round(&mut w, kind, 1, &mut snap);
    assert!(
        first > w.counter.heap_bytes() / 4,
        "the whole arena: {first}"
    );
    add(&mut w, 50_000, 50_100);
    let second = round(&mut w, kind, 2, &mut snap);
    assert!(
        second < 3_000,
        "only the 100 new uids and a header: {second}"
    );
    // Nothing new: the header alone (its covered positions move on).
    assert!(round(&mut w, kind, 3, &mut snap) < 200);
    let (windows, orphans) = snap.windows(kind, &Groupings::none()).unwrap();
    assert!(orphans.is_empty());
    assert_eq!(windows.len(), 1);
    let mut back = windows.into_iter().next().unwrap();
    assert_eq!(back.counter.count(), 50_100);
    assert_eq!(back.header.events, 50_100);
    assert_eq!(back.header.covered, vec![(0, 300)]);
    assert!(
        w.saved.unwrap().chunks > 1,
        "chunks of at most {CHUNK} bytes"
    );
}

#[test]
fn a_generation_full_of_chunks_is_rewritten_and_the_old_one_deleted() {
    let kind = CounterKind::Exact;
    let mut w = window(kind);
    let mut snap = Snapshot::default();
    for r in 0..(MAX_CHUNKS as u64 + 5) {
        add(&mut w, r * 10, r * 10 + 10);
        round(&mut w, kind, r + 1, &mut snap);
    }
    let saved = w.saved.unwrap();
    assert!(
        saved.generation > 1 && saved.chunks < MAX_CHUNKS,
        "{saved:?}"
    );
    let (windows, orphans) = snap.windows(kind, &Groupings::none()).unwrap();
    assert!(orphans.is_empty(), "old chunks deleted: {orphans:?}");
    let chunk_keys = snap
        .values
        .keys()
        .filter(|k| k.matches('/').count() == 5)
        .count();
    assert_eq!(chunk_keys as u32, saved.chunks);
    let mut back = windows.into_iter().next().unwrap();
    assert_eq!(back.counter.count(), (MAX_CHUNKS as u64 + 5) * 10);
}

#[test]
fn sketches_are_rewritten_whole_only_when_they_changed() {
    let kind = CounterKind::Hll4 { lg_k: 12 };
    let mut w = window(kind);
    let mut snap = Snapshot::default();
    add(&mut w, 0, 5_000);
    assert!(round(&mut w, kind, 1, &mut snap) > 1_000);
    assert!(
        round(&mut w, kind, 2, &mut snap) < 200,
        "unchanged: header only"
    );
    add(&mut w, 5_000, 6_000);
    round(&mut w, kind, 3, &mut snap);
    let (windows, orphans) = snap.windows(kind, &Groupings::none()).unwrap();
    assert!(orphans.is_empty());
    let mut back = windows.into_iter().next().unwrap();
    assert_eq!(back.counter.count(), w.counter.count());
    // Another counter refuses the state.
    assert!(matches!(
        snap.windows(CounterKind::Exact, &Groupings::none()),
        Err(StateError::OtherCounter { .. })
    ));
}

#[test]
fn a_checkpoint_cut_short_leaves_the_previous_one_readable() {
    for kind in [CounterKind::Exact, CounterKind::Cpc { lg_k: 11 }] {
        let mut w = window(kind);
        let mut snap = Snapshot::default();
        add(&mut w, 0, 3_000);
        round(&mut w, kind, 1, &mut snap);
        let before = snap.windows(kind, &Groupings::none()).unwrap().0[0]
            .header
            .clone();
        let count_before = w.counter.count();
        // The next round: chunks written, then the process dies before
        // the header (and before any tombstone after it).
        add(&mut w, 3_000, 9_000);
        let mut out = Records::new();
        checkpoint_window(
            0,
            WindowSize::Days(1),
            &mut w,
            kind,
            "",
            2,
            &[(0, 200)],
            &mut out,
        );
        let header_at = out
            .iter()
            .position(|(k, _)| parse_key(k).is_some_and(|k| matches!(k, Key::Header(_))))
            .unwrap();
        for (k, v) in out.into_iter().take(header_at) {
            snap.apply(k, v);
        }
        let (windows, orphans) = snap.windows(kind, &Groupings::none()).unwrap();
        let mut back = windows.into_iter().next().unwrap();
        assert_eq!(back.header, before, "{kind}");
        assert_eq!(back.counter.count(), count_before);
        if kind != CounterKind::Exact {
            assert!(
                !orphans.is_empty(),
                "the new generation's chunks are orphans"
            );
        }
    }
}

#[test]
fn a_freed_window_leaves_nothing_behind() {
    let kind = CounterKind::Exact;
    let mut w = window(kind);
    let mut snap = Snapshot::default();
    add(&mut w, 0, 100_000);
    round(&mut w, kind, 1, &mut snap);
    let mut out = Records::new();
    let id = WindowId {
        shard: 0,
        size: WindowSize::Days(1),
        start: w.start,
    };
    forget_window(id, w.saved.unwrap(), None, &mut out);
    for (k, v) in out {
        snap.apply(k, v);
    }
    assert!(snap.values.is_empty(), "{:?}", snap.values.keys());
}

#[test]
fn checkpoints_without_shards_are_refused_not_ignored() {
    let mut snap = Snapshot::default();
    snap.apply("w/1m/60".to_string(), Some(vec![1, 2, 3]));
    let err = snap
        .windows(CounterKind::Exact, &Groupings::none())
        .unwrap_err();
    assert!(matches!(err, StateError::Unsharded { .. }), "{err}");
    assert!(err.to_string().contains("KAFKA_SERVICE_STATE_TOPIC"));
}

#[test]
fn groups_restore_only_under_the_groupings_they_were_counted_with() {
    use crate::group::members::{dense_after, Member};
    use crate::group::table::{GroupTable, Limits};
    use crate::group::{key_hash, GroupValue};
    let kind = CounterKind::Hll { precision: 12 };
    let mut w = window(kind);
    add(&mut w, 0, 10);
    let mut table = GroupTable::new();
    let limits = Limits {
        max_groups: 10,
        dense_after: dense_after(kind),
    };
    for (key, uid) in [("DE", "user-1"), ("DE", "user-2"), ("FR", "user-3")] {
        let m = Member::Hash(uid_hash(uid.as_bytes()));
        table.count(
            Some((key.as_bytes(), key_hash(key.as_bytes()))),
            m,
            kind,
            limits,
        );
    }
    w.groups = vec![table];
    let mut out = Records::new();
    checkpoint_window(
        0,
        WindowSize::Days(1),
        &mut w,
        kind,
        "country",
        1,
        &[(0, 5)],
        &mut out,
    );
    let mut snap = Snapshot::default();
    for (k, v) in out {
        snap.apply(k, v);
    }
    let country = Groupings::parse("country", 10).unwrap();
    let (windows, orphans) = snap.windows(kind, &country).unwrap();
    assert!(orphans.is_empty());
    assert_eq!(windows[0].header.group_by, "country");
    let mut back: Vec<(GroupValue, u64)> = windows[0].groups[0]
        .clone()
        .due(true)
        .into_iter()
        .map(|(v, g)| (v, g.members.count()))
        .collect();
    back.sort();
    assert_eq!(
        back,
        [
            (GroupValue::Key(b"DE"[..].into()), 2),
            (GroupValue::Key(b"FR"[..].into()), 1)
        ]
    );
    // One grouping as well, but another field: refused, naming both.
    let page = Groupings::parse("page", 10).unwrap();
    let err = snap.windows(kind, &page).unwrap_err().to_string();
    assert!(
        err.contains(r#"DISTINCTLY_GROUP_BY="country", this run's is "page""#),
        "{err}"
    );
    let err = snap
        .windows(kind, &Groupings::none())
        .unwrap_err()
        .to_string();
    assert!(err.contains(r#"this run's is """#), "{err}");
}
