//! `count --group-by` and `run` with groups against a truth computed apart
//! from the code under test (`scripts/group-truth.py`, Python's json
//! module): every window and group of a stream with missing, null,
//! numeric, nested and awkward values (quotes, commas, `:`, `=`, tabs, CJK,
//! escapes, string-wrapped frames); for `run`, across `kill -9` of two of
//! three instances, by the last record of each key.

mod common;

use common::*;
use std::process::{Child, Command};
use std::time::Duration;

const GROUP_BY: &str = "country,page,/ctx/device,country+/ctx/device";

fn truth(jsonl: &[u8], windows: &str) -> Grouped {
    group_truth(jsonl, GROUP_BY, windows)
}

fn stream(frame: &str, events: &str, seed: &str) -> Vec<u8> {
    let out = Command::new(BIN)
        .args([
            "generate",
            "--groups",
            "--frame",
            frame,
            "--events",
            events,
            "--users",
            "4000",
            "--span-seconds",
            "10800",
            "--invalid-share",
            "0",
            "--outlier-share",
            "0",
            "--wrapped-share",
            "0.05",
            "--late-share",
            "0.02",
            "--seed",
            seed,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

fn counted(jsonl: &[u8], counter: &str) -> Grouped {
    let out = count(
        jsonl,
        &[
            "--group-by",
            GROUP_BY,
            "--windows",
            "1m,1h",
            "--emit",
            "final",
            "--summary",
            "none",
            "--counter",
            counter,
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = json_lines(&out.stdout);
    assert_eq!(
        records.len(),
        grouped(&records).len(),
        "--emit final: one record per window and group"
    );
    grouped(&records)
}

#[test]
fn every_group_of_every_window_is_exact() {
    for (frame, events) in [("minimal", "160000"), ("realistic", "20000")] {
        let jsonl = stream(frame, events, "71");
        let want = truth(&jsonl, "1m,1h");
        let got = counted(&jsonl, "exact");
        // A file large enough to be decoded on every core gives the same.
        let path = tmp(&format!("groups-{frame}.jsonl"));
        std::fs::write(&path, &jsonl).unwrap();
        let out = Command::new(BIN)
            .args([
                "count",
                "--group-by",
                GROUP_BY,
                "--windows",
                "1m,1h",
                "--emit",
                "final",
                "--summary",
                "none",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(
            grouped(&json_lines(&out.stdout)),
            got,
            "{frame}: from a file"
        );
        let differ: Vec<_> = want
            .iter()
            .filter(|(k, v)| got.get(*k) != Some(v))
            .take(10)
            .map(|(k, v)| format!("{k:?}: want {v:?}, got {:?}", got.get(k)))
            .collect();
        assert!(differ.is_empty(), "{frame}: {}", differ.join("\n"));
        assert_eq!(got.len(), want.len(), "{frame}: no record the truth lacks");
        // The awkward values are there, as distinctly writes them.
        for group in [
            r#""a \"quoted\" one""#,
            r#""comma,separated""#,
            r#""tab\there""#,
            r#""日本""#,
            r#""1.5e3""#,
            r#""true""#,
            r#""""#,
            "null",
            r#"["DE","mobile"]"#,
            r#"[null,"tv"]"#,
        ] {
            assert!(
                got.keys().any(|k| k.3 == group),
                "{frame}: no group {group}"
            );
        }
    }
}

#[test]
fn sketches_count_each_group_within_their_bounds() {
    let jsonl = stream("minimal", "120000", "72");
    let want = truth(&jsonl, "1m,1h");
    for (counter, sigma) in [
        ("roaring", 2.5e-5),
        ("hll", 1.04 / 128.0),
        ("cpc", 0.6 / 128.0),
        ("hll4", 0.84 / 128.0),
    ] {
        let got = counted(&jsonl, counter);
        assert_eq!(got.len(), want.len(), "{counter}");
        for (k, &(users, events)) in &want {
            let (est, ev) = got[k];
            assert_eq!(ev, events, "{counter} {k:?}: events are exact");
            let n = users as f64;
            assert!(
                (est as f64 - n).abs() <= 4.0 * sigma * n + 1.0,
                "{counter} {k:?}: {est} vs {users}"
            );
        }
    }
}

#[test]
fn every_group_survives_kill_9_of_two_of_three_instances() {
    let _b = broker();
    let jsonl = stream("minimal", "90000", "73");
    let want = truth(&jsonl, "1m,1h");
    let lines: Vec<Vec<u8>> = jsonl
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let t = topics("groups", 6);
    let env = [
        ("DISTINCTLY_WINDOWS", "1m,1h"),
        ("DISTINCTLY_GROUP_BY", GROUP_BY),
        ("DISTINCTLY_IDLE_PARTITION_SECONDS", "3"),
    ];
    let start = |name: &str| -> Child {
        let mut env = env.to_vec();
        env.push(("DISTINCTLY_INSTANCE_ID", name));
        let log = std::fs::File::create(tmp(&format!("{}-{name}.log", t.group))).unwrap();
        service(&t, &env, &[]).stderr(log).spawn().unwrap()
    };
    let mut running: Vec<(&str, Child)> = ["a", "b", "c"].iter().map(|&n| (n, start(n))).collect();
    produce_paced(&t.input, 6, &lines, Duration::from_secs(40), 100, |i| {
        // Two of the three die, late in the stream, and come back.
        let victim = match i {
            40 => "a",
            70 => "b",
            _ => return,
        };
        let at = running.iter().position(|(n, _)| *n == victim).unwrap();
        let (name, child) = running.remove(at);
        kill9(child);
        running.push((name, start(name)));
    });
    for (_, child) in running {
        terminate_ok(child);
    }
    drain(&t, &env);
    assert_grouped_output_is_truth(&t.output, &want);
}

/// Waits up to `timeout` for one of `children` to exit; returns its index
/// and output (the others keep running).
fn first_to_exit(
    children: &mut Vec<Child>,
    timeout: Duration,
) -> Option<(usize, std::process::Output)> {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        for i in 0..children.len() {
            if children[i].try_wait().unwrap().is_some() {
                let child = children.remove(i);
                return Some((i, child.wait_with_output().unwrap()));
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[test]
fn another_group_by_is_refused_by_other_instances_and_by_the_state_topic() {
    let _b = broker();
    let jsonl = stream("minimal", "4000", "74");
    let lines: Vec<Vec<u8>> = jsonl
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();

    // Two instances at once, one grouping each but of other fields: the
    // counts of one must not be named by the other. One of them stops,
    // naming the variable, before anything of theirs is written.
    let t = topics("groupby-mixed", 2);
    produce(&t.input, 2, &lines);
    let mut running: Vec<Child> = ["country", "page"]
        .iter()
        .map(|g| {
            service(&t, &[("DISTINCTLY_GROUP_BY", g)], &[])
                .spawn()
                .unwrap()
        })
        .collect();
    let exited = first_to_exit(&mut running, Duration::from_secs(90));
    for child in running {
        kill9(child);
    }
    let (_, out) = exited.expect("an instance with another DISTINCTLY_GROUP_BY kept running");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors = log_lines(&stderr, "ERROR");
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("DISTINCTLY_GROUP_BY"), "{}", errors[0]);
    let group_records: Vec<_> = output_records(&t.output)
        .into_iter()
        .filter(|r| r.get("group_by").is_some())
        .collect();
    let named: std::collections::BTreeSet<&str> = group_records
        .iter()
        .map(|r| r["group_by"].as_str().unwrap())
        .collect();
    assert!(named.len() <= 1, "records of both settings: {named:?}");

    // One setting drained; a rerun with another is refused (by the input
    // partitions' commits or by the state topic) before it writes anything.
    let t = topics("groupby-state", 2);
    let (first, rest) = lines.split_at(lines.len() - 10);
    produce(&t.input, 2, first);
    drain(
        &t,
        &[
            ("DISTINCTLY_GROUP_BY", "country"),
            ("DISTINCTLY_WINDOWS", "1m,1h"),
        ],
    );
    produce(&t.input, 2, rest);
    let out = service(
        &t,
        &[
            ("DISTINCTLY_GROUP_BY", "page"),
            ("DISTINCTLY_WINDOWS", "1m,1h"),
        ],
        &["--exit-when-idle"],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors = log_lines(&stderr, "ERROR");
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("DISTINCTLY_GROUP_BY") && errors[0].contains(r#""page""#),
        "{}",
        errors[0]
    );
    // The same setting carries on, every event counted once.
    drain(
        &t,
        &[
            ("DISTINCTLY_GROUP_BY", "country"),
            ("DISTINCTLY_WINDOWS", "1m,1h"),
        ],
    );
    let all: Vec<u8> = lines
        .iter()
        .flat_map(|l| [l.as_slice(), b"\n"].concat())
        .collect();
    assert_grouped_output_is_truth(&t.output, &group_truth(&all, "country", "1m,1h"));
}
