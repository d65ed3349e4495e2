use super::rng::{det_exp, det_ln};
use super::*;
use serde_json::Value;

fn run(o: &GenerateOptions, window: u64) -> (Vec<u8>, Truth, Vec<LineKind>) {
    let (mut out, mut kinds) = (Vec::new(), Vec::new());
    let grids = [crate::window::size::Grid::fixed(window)];
    let truth = generate_traced(o, &grids, &mut out, |k| kinds.push(k)).unwrap();
    (out, truth, kinds)
}

fn lines(out: &[u8]) -> Vec<&[u8]> {
    assert_eq!(out.last(), Some(&b'\n'));
    out[..out.len() - 1].split(|&b| b == b'\n').collect()
}

fn noisy(frame: FrameKind) -> GenerateOptions {
    GenerateOptions {
        events: 4000,
        users: 300,
        late_share: 0.05,
        invalid_share: 0.1,
        outlier_share: 0.02,
        wrapped_share: 0.1,
        frame,
        ..Default::default()
    }
}

/// serde_json's verdict plus the root rules: an object (possibly wrapped in a JSON string)
/// with a non-empty string `uid` and a non-negative numeric `ts` (floored).
fn decode(line: &[u8]) -> Option<(Value, String, u64)> {
    let mut v: Value = serde_json::from_slice(line).ok()?;
    if let Value::String(s) = &v {
        v = serde_json::from_str(s).ok()?;
    }
    let uid = v.get("uid")?.as_str().filter(|s| !s.is_empty())?.to_owned();
    let ts = v.get("ts")?;
    let ts = ts
        .as_u64()
        .or_else(|| ts.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))?;
    Some((v, uid, ts))
}

/// Number of objects below the root that have `key`.
fn nested(v: &Value, key: &str, depth: usize) -> usize {
    match v {
        Value::Object(m) => {
            usize::from(depth > 0 && m.contains_key(key))
                + m.values().map(|c| nested(c, key, depth + 1)).sum::<usize>()
        }
        Value::Array(a) => a.iter().map(|c| nested(c, key, depth + 1)).sum(),
        _ => 0,
    }
}

/// Pins the exact bytes: a change here silently changes `data/sample.jsonl.gz`, benchmark
/// inputs and every recorded truth, so it must be deliberate.
#[test]
fn output_is_pinned() {
    let fnv = |b: &[u8]| {
        b.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &x| {
            (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
        })
    };
    let mut hashes = Vec::new();
    for frame in [FrameKind::Realistic, FrameKind::Minimal] {
        let o = GenerateOptions {
            events: 50,
            frame,
            ..Default::default()
        };
        let (a, b) = (run(&o, 60).0, run(&o, 60).0);
        assert_eq!(a, b);
        assert_eq!(lines(&a).len(), 50);
        hashes.push(fnv(&a));
    }
    assert_eq!(
        hashes,
        [12_872_050_997_209_291_210, 16_768_662_866_498_596_995]
    );
}

#[test]
fn every_line_matches_its_kind() {
    for frame in [FrameKind::Realistic, FrameKind::Minimal] {
        let (out, truth, kinds) = run(&noisy(frame), 60);
        let lines = lines(&out);
        assert_eq!(lines.len(), kinds.len());
        for (line, kind) in lines.iter().zip(&kinds) {
            let text = String::from_utf8_lossy(line);
            assert!(!line.is_empty());
            let decoded = decode(line);
            if *kind == LineKind::Invalid {
                assert!(decoded.is_none(), "accepted invalid line {text}");
                continue;
            }
            let (v, _, _) = decoded.unwrap_or_else(|| panic!("rejected {kind:?} line {text}"));
            if line[0] == b'"' {
                let inner: String = serde_json::from_slice(line).unwrap();
                assert_eq!(
                    serde_json::to_vec(&inner).unwrap(),
                    *line,
                    "escaped as serde_json does"
                );
            } else if frame == FrameKind::Minimal {
                assert!(line.starts_with(b"{\"ts\":") && line.len() < 60, "{text}");
            } else {
                assert!((1500..=2500).contains(&line.len()), "{} bytes", line.len());
                assert!((19..=31).contains(&v.as_object().unwrap().len()), "{text}");
                assert!(
                    nested(&v, "uid", 0) > 0 && nested(&v, "ts", 0) > 0,
                    "{text}"
                );
            }
        }
        let has = |needle: &[u8]| out.windows(needle.len()).any(|w| w == needle);
        let count = |k| kinds.iter().filter(|&&x| x == k).count() as u64;
        assert!(std::str::from_utf8(&out).is_err() && has(b"\x01") && has(br"\x41"));
        if frame == FrameKind::Realistic {
            // The same Cyrillic uids, both raw and `\u`-escaped; `/` both raw and as `\/`.
            assert!(has("\"uid\":\"пол".as_bytes()) && has(br#""uid":"\u043"#));
            assert!(has(br#""uid":"zo\u00eb\/"#) && has("\"uid\":\"zoë/".as_bytes()));
        }
        assert_eq!(truth.invalid, count(LineKind::Invalid));
        assert_eq!(truth.outliers, count(LineKind::Outlier));
        assert_eq!(truth.late, count(LineKind::Late));
    }
}

#[test]
fn truth_equals_recount_of_output() {
    let edge = |skew, users, start_ts, span_seconds, disorder_seconds, late_max_seconds| {
        let o = noisy(FrameKind::Minimal);
        (
            GenerateOptions {
                skew,
                users,
                start_ts,
                span_seconds,
                disorder_seconds,
                late_max_seconds,
                ..o
            },
            7,
        )
    };
    let cases = [
        (noisy(FrameKind::Realistic), 60),
        (noisy(FrameKind::Minimal), 10),
        edge(2.5, 100_000_000, 0, 0, 0, 0),
        edge(0.5, 1, 100, 86_400, 4, 2),
        edge(0.0, 50, 1 << 40, 10, 0, 1000),
    ];
    for (o, window) in cases {
        let (out, truth, _) = run(&o, window);
        let mut want: BTreeMap<u64, (HashSet<String>, u64)> = BTreeMap::new();
        for (i, line) in lines(&out).into_iter().enumerate() {
            let now = o.start_ts + i as u64 * o.span_seconds / o.events;
            if let Some((_, uid, ts)) = decode(line).filter(|d| d.2.abs_diff(now) <= 86_400) {
                let w = want.entry(ts - ts % window).or_default();
                w.0.insert(uid);
                w.1 += 1;
            }
        }
        let want: BTreeMap<u64, (u64, u64)> = want
            .into_iter()
            .map(|(k, (u, n))| (k, (u.len() as u64, n)))
            .collect();
        assert_eq!(truth.windows, want);
        assert_eq!(truth.valid, want.values().map(|w| w.1).sum::<u64>());
        assert_eq!(truth.lines, truth.valid + truth.invalid + truth.outliers);
        assert!(truth.late > 0 && truth.outliers > 0 && truth.invalid > 0);
    }
    let o = GenerateOptions {
        events: 0,
        ..Default::default()
    };
    let (out, truth, kinds) = run(&o, 60);
    assert!(out.is_empty() && kinds.is_empty());
    assert!(truth.windows.is_empty() && truth.valid == 0);
    let grids = [crate::window::size::Grid::fixed(60)];
    assert!(generate(&GenerateOptions { users: 0, ..o }, &grids, &mut io::sink()).is_err());
}

#[test]
fn skew_concentrates_visits() {
    for (skew, lo, hi) in [(1.0, 20.0, f64::MAX), (0.0, 0.0, 3.0)] {
        let o = GenerateOptions {
            events: 20_000,
            users: 1000,
            skew,
            frame: FrameKind::Minimal,
            ..Default::default()
        };
        let mut counts: std::collections::HashMap<String, u64> = Default::default();
        for line in lines(&run(&o, 60).0) {
            if let Some((_, uid, _)) = decode(line) {
                *counts.entry(uid).or_default() += 1;
            }
        }
        let mut c: Vec<u64> = counts.into_values().collect();
        c.resize(1000, 0);
        c.sort_unstable();
        let ratio = c[999] as f64 / c[500].max(1) as f64;
        assert!(
            ratio > lo && ratio < hi,
            "skew {skew}: top/median = {ratio}"
        );
    }
}

#[test]
fn helpers() {
    for x in [1.0, 1.5, 2.0, 10.0, 1e8, 0.3, 1e-30] {
        assert!(
            (det_ln(x) - x.ln()).abs() <= 1e-14 * x.ln().abs().max(1.0),
            "ln {x}"
        );
    }
    for x in [0.0, 0.5, -3.0, 18.4, 200.0] {
        assert!((det_exp(x) / x.exp() - 1.0).abs() < 1e-14, "exp {x}");
    }
    let uids: HashSet<String> = (0..10_000).map(uid_for).collect();
    assert_eq!(uids.len(), 10_000);
    assert_eq!("Minimal".parse::<FrameKind>(), Ok(FrameKind::Minimal));
    assert_eq!(
        FrameKind::Realistic.to_string().parse(),
        Ok(FrameKind::Realistic)
    );
    assert!("x".parse::<FrameKind>().is_err());
    use crate::window::size::WindowSize;
    let mut t = Truth {
        by_size: vec![(WindowSize::Seconds(60), [(60, (2, 3))].into())],
        ..Default::default()
    };
    assert_eq!(
        t.to_json_lines(),
        "{\"start_ts\":60,\"unique_users\":2,\"events\":3}\n"
    );
    t.by_size.push((WindowSize::Hours(1), [(0, (2, 3))].into()));
    assert_eq!(
        t.to_json_lines(),
        "{\"start_ts\":60,\"unique_users\":2,\"events\":3,\"window\":\"1m\"}\n\
         {\"start_ts\":0,\"unique_users\":2,\"events\":3,\"window\":\"1h\"}\n"
    );
}
