//! `count --rolling`: every rolling window's last record equals a truth
//! computed here from the generated lines (serde_json, not our decoder),
//! with late events, several settings at once, `--emit final` and updates,
//! and revisions that rise per window.

mod common;

use common::*;
use std::collections::{BTreeMap, HashSet};
use std::process::Command;

/// (window setting, end) -> (unique users, events).
type Rolled = BTreeMap<(String, u64), (u64, u64)>;

fn stream(extra: &[&str]) -> Vec<u8> {
    let out = Command::new(BIN)
        .arg("generate")
        .args(extra)
        .args([
            "--frame",
            "minimal",
            "--events",
            "40000",
            "--users",
            "2000",
            "--span-seconds",
            "14400",
            "--invalid-share",
            "0",
            "--outlier-share",
            "0",
            "--late-share",
            "0.02",
            "--seed",
            "17",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

/// Every window `[e - length, e)` with an event, `e` on the step grid (UTC),
/// up to the end of the last step with events.
fn truth(events: &[(u64, String)], setting: &str, length: u64, step: u64) -> Rolled {
    let tagged: Vec<(u64, String, Option<String>)> =
        events.iter().map(|(t, u)| (*t, u.clone(), None)).collect();
    grouped_truth(&tagged, setting, length, step)
        .into_iter()
        .filter(|((_, _, g), _)| g.is_none())
        .map(|((w, e, _), c)| ((w, e), c))
        .collect()
}

/// (window setting, end, group: `None` for the total, `Some(value as a
/// record's JSON)`) -> (unique users, events).
type RolledGroups = BTreeMap<(String, u64, Option<String>), (u64, u64)>;

/// [`truth`] per group of one grouping as well (the third field of each
/// event, `None`: no group).
fn grouped_truth(
    events: &[(u64, String, Option<String>)],
    setting: &str,
    length: u64,
    step: u64,
) -> RolledGroups {
    let first = events.iter().map(|e| e.0).min().unwrap();
    let last = events.iter().map(|e| e.0).max().unwrap();
    let mut out = RolledGroups::new();
    let mut end = first - first % step + step;
    while end <= last - last % step + step {
        let picked: Vec<_> = events
            .iter()
            .filter(|e| e.0 + length >= end && e.0 < end)
            .collect();
        if !picked.is_empty() {
            let mut by: BTreeMap<Option<String>, (HashSet<&str>, u64)> = BTreeMap::new();
            for e in &picked {
                let json = Some(serde_json::json!(e.2.as_deref().map(same_number)).to_string());
                for key in [None, json] {
                    let (users, n) = by.entry(key).or_default();
                    users.insert(e.1.as_str());
                    *n += 1;
                }
            }
            for (key, (users, n)) in by {
                out.insert((setting.to_string(), end, key), (users.len() as u64, n));
            }
        }
        end += step;
    }
    out
}

/// The last record of every rolling window, checking on the way that
/// revisions rise per window and a repeated one carries the same counts.
fn last_records(stdout: &[u8]) -> Rolled {
    let mut last: BTreeMap<(String, u64), (u64, (u64, u64))> = BTreeMap::new();
    for r in json_lines(stdout) {
        let Some(w) = r["window"].as_str().filter(|w| w.contains('/')) else {
            continue;
        };
        let key = (w.to_string(), r["end_ts"].as_u64().unwrap());
        let rev = r["revision"].as_u64().unwrap();
        let counts = (
            r["unique_users"].as_u64().unwrap(),
            r["events"].as_u64().unwrap(),
        );
        if let Some((prev, _)) = last.get(&key) {
            assert!(rev > *prev, "{key:?}: revision {rev} after {prev}");
        }
        last.insert(key, (rev, counts));
    }
    last.into_iter().map(|(k, (_, c))| (k, c)).collect()
}

/// Where `got` differs from `want`, a line per key (at most 20).
fn differences_of<K: Ord + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
    want: &BTreeMap<K, V>,
    got: &BTreeMap<K, V>,
) -> Vec<String> {
    want.iter()
        .filter(|(k, w)| got.get(*k) != Some(*w))
        .map(|(k, w)| format!("{k:?}: want {w:?}, got {:?}", got.get(k)))
        .chain(
            got.keys()
                .filter(|k| !want.contains_key(*k))
                .map(|k| format!("{k:?}: not in the truth")),
        )
        .take(20)
        .collect()
}

#[test]
fn every_rolling_window_ends_at_its_truth() {
    let jsonl = stream(&[]);
    let events: Vec<(u64, String)> = json_lines(&jsonl)
        .iter()
        .map(|v| {
            (
                v["ts"].as_f64().unwrap().floor() as u64,
                v["uid"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut want = truth(&events, "1h/10m", 3600, 600);
    want.extend(truth(&events, "30m/1m", 1800, 60));
    want.extend(truth(&events, "1h/1h", 3600, 3600));
    let args = ["--rolling", "1h/10m,30m/1m,1h/1h", "--summary", "none"];
    for emit in ["updates", "final"] {
        let out = count(&jsonl, &[&args[..], &["--emit", emit]].concat(), &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = last_records(&out.stdout);
        let diff = differences_of(&want, &got);
        assert!(diff.is_empty(), "--emit {emit}:\n{}", diff.join("\n"));
        // The tumbling windows are still there, unchanged in kind.
        let minute = json_lines(&out.stdout)
            .iter()
            .filter(|r| r.get("window").is_none())
            .count();
        assert!(minute > 0);
    }
}

#[test]
fn bad_rolling_settings_are_refused_naming_the_setting() {
    for (value, says) in [
        ("1h", "expected <length>/<step>"),
        ("1h/7m", "the step must divide the length"),
        ("30d/1m", "at most 1000 steps"),
        ("1mo/1d", "write 7d, 28d or 30d"),
        ("1h/1m,1h/1m", "given twice"),
    ] {
        let out = count(b"", &["--rolling", value], &[]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--rolling") && err.contains(says),
            "{value}: {err}"
        );
    }
    let out = count(b"", &[], &[("DISTINCTLY_ROLLING", "1h/x")]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("DISTINCTLY_ROLLING"));
}

/// A group value that is a number, written one way (`1.5e3` as the
/// stream has it and `1500.0` as serde_json gives it back are one group).
fn same_number(value: &str) -> String {
    match value.parse::<f64>() {
        Ok(x) if x.is_finite() => format!("{x}"),
        _ => value.to_string(),
    }
}

#[test]
fn every_group_of_every_rolling_window_ends_at_its_truth() {
    let jsonl = stream(&["--groups"]);
    let events: Vec<(u64, String, Option<String>)> = json_lines(&jsonl)
        .iter()
        .map(|v| {
            (
                v["ts"].as_f64().unwrap().floor() as u64,
                v["uid"].as_str().unwrap().to_string(),
                group_value(v.get("country")),
            )
        })
        .collect();
    let want = grouped_truth(&events, "1h/10m", 3600, 600);
    let out = count(
        &jsonl,
        &[
            "--rolling",
            "1h/10m",
            "--group-by",
            "country",
            "--emit",
            "final",
            "--summary",
            "none",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: RolledGroups = json_lines(&out.stdout)
        .iter()
        .filter(|r| r["window"] == "1h/10m")
        .map(|r| {
            (
                (
                    "1h/10m".to_string(),
                    r["end_ts"].as_u64().unwrap(),
                    r.get("group").map(|g| {
                        let g = g.as_str().map(same_number);
                        serde_json::json!(g).to_string()
                    }),
                ),
                (
                    r["unique_users"].as_u64().unwrap(),
                    r["events"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    let diff = differences_of(&want, &got);
    assert!(diff.is_empty(), "{}", diff.join("\n"));
    assert!(want.len() > 100, "a stream with groups: {}", want.len());
}
