use super::*;
use crate::group::{GroupKeys, GroupValue};
use crate::hash::uid_hash;
use std::collections::{BTreeSet, HashSet};

const DAY: u64 = 86_400;
/// 2026-01-01T00:00:00Z.
const T0: u64 = 1_767_225_600;

fn slices(setting: &str, kind: CounterKind, group_by: &str) -> Slices {
    let groupings = Groupings::parse(group_by, 1000).unwrap();
    Slices::new(
        &parse_slices(setting).unwrap(),
        &jiff::tz::TimeZone::UTC,
        kind,
        &groupings,
    )
}

/// A reproducible stream: (ts, uid, country) over `days` days.
fn events(days: u64, n: usize) -> Vec<(u64, String, Option<&'static str>)> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let countries = [Some("US"), Some("DE"), Some("a,b:\"c\""), None];
    (0..n)
        .map(|_| {
            let ts = T0 + next() % (days * DAY);
            let uid = format!("u{}", next() % 3000);
            (ts, uid, countries[(next() % 4) as usize])
        })
        .collect()
}

fn feed(s: &mut Slices, evs: &[(u64, String, Option<&str>)]) {
    let mut keys = GroupKeys::default();
    for (ts, uid, c) in evs {
        keys.clear();
        keys.push(c.map(str::as_bytes));
        s.insert(*ts, uid.as_bytes(), uid_hash(uid.as_bytes()), keys.view());
    }
}

fn truth(
    evs: &[(u64, String, Option<&str>)],
    from: u64,
    to: u64,
    group: Option<Option<&str>>,
) -> (u64, u64) {
    let picked: Vec<_> = evs
        .iter()
        .filter(|(ts, _, c)| (from..to).contains(ts) && group.is_none_or(|g| g == *c))
        .collect();
    let users: HashSet<&str> = picked.iter().map(|(_, u, _)| u.as_str()).collect();
    (users.len() as u64, picked.len() as u64)
}

fn ask(s: &Slices, from: u64, to: u64, group: Option<GroupValue>) -> Result<Answer, QueryError> {
    s.query(&RangeQuery {
        from,
        to,
        group: group.map(|g| (0, g)),
    })
}

#[test]
fn exact_ranges_equal_the_truth_and_use_the_coarsest_slices() {
    let evs = events(5, 40_000);
    let mut s = slices(DEFAULT_SLICES, CounterKind::Exact, "country");
    feed(&mut s, &evs);
    let ranges = [
        (T0, T0 + 5 * DAY),
        (T0 + 3600 * 5 + 60 * 7, T0 + 3 * DAY + 60 * 13),
        (T0 + 14 * 3600, T0 + 17 * 3600 + 30 * 60),
        (T0 + 60, T0 + 120),
        (T0 + DAY - 60, T0 + DAY + 60),
    ];
    for (from, to) in ranges {
        let a = ask(&s, from, to, None).unwrap();
        assert_eq!(
            (a.unique_users, a.events),
            truth(&evs, from, to, None),
            "[{from}, {to})"
        );
        for (value, c) in [
            (GroupValue::Key(b"US"[..].into()), Some("US")),
            (GroupValue::Key(b"a,b:\"c\""[..].into()), Some("a,b:\"c\"")),
            (GroupValue::None, None),
        ] {
            let a = ask(&s, from, to, Some(value)).unwrap();
            assert_eq!(
                (a.unique_users, a.events),
                truth(&evs, from, to, Some(c)),
                "[{from}, {to}) {c:?}"
            );
        }
    }
    let a = ask(&s, T0 + 3600 * 5 + 60 * 7, T0 + 3 * DAY + 60 * 13, None).unwrap();
    // 53 minutes, 18 hours, 2 days, 13 minutes.
    assert_eq!(
        a.slices,
        [
            ("1m".to_string(), 66),
            ("1h".to_string(), 18),
            ("1d".to_string(), 2)
        ]
    );
    let unseen = ask(&s, T0, T0 + DAY, Some(GroupValue::Key(b"FR"[..].into()))).unwrap();
    assert_eq!((unseen.unique_users, unseen.events), (0, 0));
}

#[test]
fn sketches_answer_within_their_bound() {
    let evs = events(3, 60_000);
    for kind in [
        CounterKind::Hll { precision: 14 },
        CounterKind::Cpc { lg_k: 12 },
        CounterKind::Hll4 { lg_k: 12 },
        CounterKind::Roaring,
    ] {
        let mut s = slices(DEFAULT_SLICES, kind, "country");
        feed(&mut s, &evs);
        for group in [None, Some(GroupValue::Key(b"DE"[..].into()))] {
            let c = group.as_ref().map(|_| Some("DE"));
            let (want, events) = truth(&evs, T0 + 3600, T0 + 2 * DAY + 120, c);
            let a = ask(&s, T0 + 3600, T0 + 2 * DAY + 120, group).unwrap();
            assert_eq!(a.events, events);
            let err = (a.unique_users as f64 - want as f64).abs() / want as f64;
            assert!(err < 0.05, "{kind}: {} vs {want}", a.unique_users);
        }
    }
}

#[test]
fn freed_slices_are_refused_by_resolution_and_the_message_says_what_is_held() {
    let mut s = slices("1m:2h,1h:1d", CounterKind::Exact, "");
    let evs: Vec<_> = (0..3 * DAY / 60)
        .map(|i| (T0 + i * 60, format!("u{}", i % 500), None))
        .collect();
    feed(&mut s, &evs);
    let now = T0 + 3 * DAY;
    s.advance(now);
    // Hours of the last day are held, minutes of the last two hours.
    let a = ask(&s, now - DAY, now, None).unwrap();
    assert_eq!(
        (a.unique_users, a.events),
        truth(&evs, now - DAY, now, None)
    );
    assert!(ask(&s, now - 90 * 60 - 60, now - 30, None).is_err());
    let a = ask(&s, now - 90 * 60, now - 60, None).unwrap();
    assert_eq!(a.events, 89);
    let e = ask(&s, now - 2 * DAY, now, None).unwrap_err();
    assert_eq!(e.status(), 422);
    let msg = e.to_string();
    assert!(msg.contains("2026-01-02T00:00:00Z"), "{msg}");
    assert!(
        msg.contains("1m slices (held 2h) from 2026-01-03T22:00:00Z"),
        "{msg}"
    );
    assert!(
        msg.contains("1h slices (held 1d) from 2026-01-03T00:00:00Z"),
        "{msg}"
    );
    // An event for a freed slice is in no resolution that freed it.
    let before = s.dropped();
    feed(&mut s, &[(now - 2 * DAY, "late".to_string(), None)]);
    let after = s.dropped();
    assert_eq!(after[0].1 - before[0].1, 1);
    assert_eq!(after[1].1 - before[1].1, 1);
}

#[test]
fn a_range_off_every_slice_boundary_or_too_long_is_refused() {
    let s = slices(DEFAULT_SLICES, CounterKind::Exact, "");
    assert_eq!(ask(&s, T0 + 1, T0 + 61, None).unwrap_err().status(), 422);
    let e = slices("1m:48h", CounterKind::Exact, "");
    let long = ask(&e, T0, T0 + 30 * DAY, None).unwrap_err().to_string();
    assert!(long.contains("more than"), "{long}");
    let off = slices("", CounterKind::Exact, "");
    assert_eq!(ask(&off, T0, T0 + 60, None).unwrap_err(), QueryError::Off);
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn parameters_parse_as_documented() {
    let g = Groupings::parse("country,country+/ctx/device", 10).unwrap();
    let q = |pairs: &[(&str, &str)]| RangeQuery::from_params(&params(pairs), &g);
    let ok = q(&[("from", "1767225600"), ("to", "2026-01-01T01:00:00Z")]).unwrap();
    assert_eq!((ok.from, ok.to, ok.group), (T0, T0 + 3600, None));
    let offset = q(&[("from", "2026-01-01T02:00:00+02:00"), ("to", "1767229200")]).unwrap();
    assert_eq!(offset.from, T0);
    let plain = q(&[
        ("from", "1"),
        ("to", "2"),
        ("group_by", "country"),
        ("group", "São Paulo"),
    ])
    .unwrap();
    assert_eq!(
        plain.group,
        Some((0, GroupValue::Key("São Paulo".as_bytes().into())))
    );
    let json = q(&[
        ("from", "1"),
        ("to", "2"),
        ("group_by", "country"),
        ("group", "\"null\""),
    ])
    .unwrap();
    assert_eq!(json.group, Some((0, GroupValue::Key(b"null"[..].into()))));
    let none = q(&[
        ("from", "1"),
        ("to", "2"),
        ("group_by", "country"),
        ("group", "null"),
    ])
    .unwrap();
    assert_eq!(none.group, Some((0, GroupValue::None)));
    let combo = q(&[
        ("from", "1"),
        ("to", "2"),
        ("group_by", "country+/ctx/device"),
        ("group", "[\"US\",null]"),
    ])
    .unwrap();
    assert_eq!(
        combo.group,
        Some((1, GroupValue::Key(vec![1, 2, b'U', b'S', 0].into())))
    );
    let err = |pairs: &[(&str, &str)]| q(pairs).unwrap_err().to_string();
    assert!(err(&[("to", "2")]).contains("from: missing"));
    assert!(err(&[("from", "2"), ("to", "2")]).contains("after from"));
    assert!(err(&[("from", "yesterday"), ("to", "2")]).contains("neither Unix seconds"));
    assert!(
        err(&[("from", "2026-01-01T00:00:00.5Z"), ("to", "1767229200")]).contains("whole second")
    );
    assert!(err(&[("from", "99999999999999999999999"), ("to", "2")]).contains("too large"));
    assert!(err(&[("from", "1"), ("from", "1"), ("to", "2")]).contains("given twice"));
    assert!(err(&[("from", "1"), ("to", "2"), ("groupby", "x")]).contains("unknown parameter"));
    assert!(err(&[
        ("from", "1"),
        ("to", "2"),
        ("group_by", "page"),
        ("group", "x")
    ])
    .contains("the groupings are: country, country+/ctx/device"));
    assert!(err(&[
        ("from", "1"),
        ("to", "2"),
        ("group_by", "country+/ctx/device"),
        ("group", "US")
    ])
    .contains("JSON array"));
    assert!(err(&[("from", "1"), ("to", "2"), ("group", "US")]).contains("needs group_by"));
}

#[test]
fn answers_are_json_with_the_documented_fields() {
    let evs = events(1, 500);
    let mut s = slices(DEFAULT_SLICES, CounterKind::Exact, "country");
    feed(&mut s, &evs);
    let a = ask(
        &s,
        T0,
        T0 + DAY,
        Some(GroupValue::Key(b"a,b:\"c\""[..].into())),
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&a.to_json(s.groupings())).unwrap();
    assert_eq!(v["from_ts"], T0);
    assert_eq!(v["to_ts"], T0 + DAY);
    assert_eq!(v["from"], "2026-01-01T00:00:00Z");
    assert_eq!(v["unique_users"], a.unique_users);
    assert_eq!(v["counter"], "exact");
    assert_eq!(v["group_by"], "country");
    assert_eq!(v["group"], "a,b:\"c\"");
    assert_eq!(v["slices"]["1d"], 1);
    let latest: BTreeSet<u64> = evs.iter().map(|e| e.0).collect();
    assert_eq!(v["latest_ts"], *latest.last().unwrap());
}
