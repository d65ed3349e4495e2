//! `count --serve`: range queries over HTTP against a truth computed here
//! from the generated lines with serde_json (not our decoder): a file read
//! to its end, then asked; a pipe asked while it is still being written;
//! bad queries refused with a status and a reason; SIGTERM ends serving.

mod common;

use common::*;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// 2026-01-01T00:00:00Z, where generated streams start.
const T0: u64 = 1_767_225_600;
const DAY: u64 = 86_400;
const GROUP_BY: &str = "country,country+/ctx/device";

/// (ts, uid, country, device) of every line.
type Event = (u64, String, Option<String>, Option<String>);

fn stream(events: &str) -> Vec<u8> {
    stream_over(events, "259200")
}

fn stream_over(events: &str, span_seconds: &str) -> Vec<u8> {
    let out = Command::new(BIN)
        .args([
            "generate",
            "--groups",
            "--frame",
            "minimal",
            "--events",
            events,
            "--users",
            "3000",
            "--span-seconds",
            span_seconds,
            "--invalid-share",
            "0",
            "--outlier-share",
            "0",
            "--wrapped-share",
            "0",
            "--late-share",
            "0.01",
            "--seed",
            "91",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

fn parse(jsonl: &[u8]) -> Vec<Event> {
    let scalar = group_value;
    json_lines(jsonl)
        .iter()
        .map(|v| {
            (
                v["ts"].as_f64().unwrap().floor() as u64,
                v["uid"].as_str().unwrap().to_string(),
                scalar(v.get("country")),
                scalar(v.pointer("/ctx/device")),
            )
        })
        .collect()
}

/// (unique users, events) of `[from, to)` among the events `keep` takes.
fn truth(events: &[Event], from: u64, to: u64, keep: impl Fn(&Event) -> bool) -> (u64, u64) {
    let picked: Vec<&Event> = events
        .iter()
        .filter(|e| (from..to).contains(&e.0) && keep(e))
        .collect();
    let users: HashSet<&str> = picked.iter().map(|e| e.1.as_str()).collect();
    (users.len() as u64, picked.len() as u64)
}

fn serve(addr: &str, stdin: Stdio, files: &[&str]) -> Child {
    Command::new(BIN)
        .arg("count")
        .args(files)
        .args(["--serve", addr, "--group-by", GROUP_BY, "--summary", "json"])
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn uniques(addr: &str, query: &str) -> (u16, serde_json::Value) {
    let (status, body) = http_get(addr, &format!("/v1/uniques?{query}")).unwrap();
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    (status, v)
}

fn counts(v: &serde_json::Value) -> (u64, u64) {
    (
        v["unique_users"].as_u64().unwrap(),
        v["events"].as_u64().unwrap(),
    )
}

/// Waits for the JSON summary `count` prints once its input is read (it
/// serves on afterwards) and returns it.
fn summary_line(child: &mut Child) -> String {
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.starts_with('{') {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no summary");
    }
    line
}

/// Lets the process go on, and exit, with a SIGTERM; returns its status.
fn terminate_serving(mut child: Child) -> std::process::ExitStatus {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap()
}

#[test]
fn a_file_read_to_its_end_answers_every_range_exactly() {
    let jsonl = stream("60000");
    let events = parse(&jsonl);
    let path = tmp("serve-input.jsonl");
    std::fs::write(&path, &jsonl).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = serve(&addr, Stdio::null(), &[path.to_str().unwrap()]);
    // The summary comes once the whole input is read; serving goes on.
    let line = summary_line(&mut child);
    let summary: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(summary["accepted"], events.len() as u64);

    // Minute slices are held for the last 48 hours of the 3-day stream,
    // hours and days for all of it.
    let ranges = [
        (T0, T0 + 3 * DAY),
        (T0 + 5 * 3600, T0 + 2 * DAY + 13 * 3600),
        (T0 + DAY + 5 * 3600 + 7 * 60, T0 + 2 * DAY + 13 * 60),
        (T0 + DAY + 3600 - 60, T0 + DAY + 3 * 3600),
        (T0 + 2 * DAY + 600, T0 + 2 * DAY + 660),
    ];
    for (from, to) in ranges {
        let q = format!("from={from}&to={to}");
        let (status, v) = uniques(&addr, &q);
        assert_eq!(status, 200, "{v}");
        assert_eq!(counts(&v), truth(&events, from, to, |_| true), "{q}");
        assert_eq!(v["counter"], "exact");
        let (_, v) = uniques(&addr, &format!("{q}&group_by=country&group=US"));
        let us = truth(&events, from, to, |e| e.2.as_deref() == Some("US"));
        assert_eq!(counts(&v), us, "{q} US");
        let (_, v) = uniques(&addr, &format!("{q}&group_by=country&group=null"));
        assert_eq!(
            counts(&v),
            truth(&events, from, to, |e| e.2.is_none()),
            "{q} null"
        );
    }
    // A + grouping's group, given as its record writes it (URL-encoded).
    let (device, country) = events
        .iter()
        .filter(|e| e.2.as_deref() == Some("US"))
        .find_map(|e| Some((e.3.clone()?, e.2.clone()?)))
        .unwrap();
    let group = serde_json::json!([country, device]).to_string();
    let encoded: String = group.bytes().map(|b| format!("%{b:02X}")).collect();
    let (status, v) = uniques(
        &addr,
        &format!(
            "from=2026-01-01T00:00:00Z&to=2026-01-04T00:00:00Z&group_by=country%2B%2Fctx%2Fdevice&group={encoded}"
        ),
    );
    assert_eq!(status, 200, "{v}");
    let want = truth(&events, T0, T0 + 3 * DAY, |e| {
        e.2.as_deref() == Some(&country) && e.3.as_deref() == Some(&device)
    });
    assert_eq!(counts(&v), want);
    assert_eq!(v["group"], serde_json::json!([country, device]));
    assert_eq!(v["slices"]["1d"], 3);

    // Refused, with a reason.
    for (query, status, says) in [
        ("to=10", 400, "from: missing"),
        ("from=10&to=5", 400, "after from"),
        (
            &format!("from={}&to={}", T0 + 1, T0 + 61)[..],
            422,
            "cannot be tiled",
        ),
        (
            &format!("from={}&to={}", T0 + 600, T0 + 660)[..],
            422,
            "1m slices (held 2d) from",
        ),
        (
            "from=1&to=2&group_by=page&group=x",
            400,
            "the groupings are",
        ),
        ("from=1&to=2&group=%FF", 400, "not UTF-8"),
        ("from=1&to=2&frm=3", 400, "unknown parameter"),
    ] {
        let (got, v) = uniques(&addr, query);
        assert_eq!(got, status, "{query}: {v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{query}: {v}");
    }
    // Over the 8 KB of a query string, within the 16 KB of a request head
    // (beyond it, tests/http.rs).
    let long = format!("from=1&to=2&group_by=country&group={}", "x".repeat(10_000));
    let (status, body) = http_get(&addr, &format!("/v1/uniques?{long}")).unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("over 8192 bytes"), "{body}");

    let (status, metrics) = http_get(&addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains("distinctly_slices_held{resolution=\"1d\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("distinctly_slices_heap_bytes{resolution=\"1m\"}"));

    let status = terminate_serving(child);
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_pipe_is_answered_while_it_is_written() {
    let jsonl = stream("20000");
    let events = parse(&jsonl);
    let lines: Vec<&[u8]> = jsonl.split_inclusive(|&b| b == b'\n').collect();
    let half = lines.len() / 2;
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = serve(&addr, Stdio::piped(), &[]);
    let mut stdin = child.stdin.take().unwrap();
    for l in &lines[..half] {
        stdin.write_all(l).unwrap();
    }
    stdin.flush().unwrap();
    let (from, to) = (T0, T0 + 3 * DAY);
    let want_half = truth(&events[..half], from, to, |_| true);
    let ask = |want: (u64, u64)| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = http_get(&addr, &format!("/v1/uniques?from={from}&to={to}"));
            if let Ok((200, body)) = &got {
                let v: serde_json::Value = serde_json::from_str(body).unwrap();
                if counts(&v) == want {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "never {want:?}; last {got:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // Nothing more is written for now: the answer must not wait for it.
    ask(want_half);
    for l in &lines[half..] {
        stdin.write_all(l).unwrap();
    }
    drop(stdin);
    ask(truth(&events, from, to, |_| true));
    let status = terminate_serving(child);
    assert_eq!(status.code(), Some(0));
}

#[test]
fn forty_random_minute_ranges_of_a_three_hour_file_equal_the_truth() {
    let jsonl = stream_over("30000", "10800");
    let events = parse(&jsonl);
    let path = tmp("serve-random.jsonl");
    std::fs::write(&path, &jsonl).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = serve(&addr, Stdio::null(), &[path.to_str().unwrap()]);
    summary_line(&mut child);
    let rfc3339 = |t: u64| {
        let s = t - T0;
        format!("2026-01-01T{:02}:{:02}:00Z", s / 3600, s / 60 % 60)
    };
    let countries = ["US", "DE", "FR", "JP"];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for i in 0..40 {
        let from = T0 + 60 * next(179);
        let to = from + 60 * (1 + next((T0 + 10800 - from) / 60));
        let (f, t) = if i % 2 == 0 {
            (from.to_string(), to.to_string())
        } else {
            (rfc3339(from), rfc3339(to))
        };
        let mut q = format!("from={f}&to={t}");
        let want = if i % 3 == 0 {
            let c = countries[next(4) as usize];
            q += &format!("&group_by=country&group={c}");
            truth(&events, from, to, |e| e.2.as_deref() == Some(c))
        } else {
            truth(&events, from, to, |_| true)
        };
        let (status, v) = uniques(&addr, &q);
        assert_eq!(status, 200, "{q}: {v}");
        assert_eq!(counts(&v), want, "{q}");
    }
    assert_eq!(terminate_serving(child).code(), Some(0));
}
