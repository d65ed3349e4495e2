//! `distinctly run` killed late in a long stream against the real broker:
//! windows of several sizes, long closed and freed before a `kill -9`,
//! must never come back from the replay with part of their events, and
//! every key's revisions must keep rising across the restarts.

mod common;

use common::*;
use std::process::Child;
use std::time::Duration;

/// A 30-hour stream squeezed into `over` of wall time: each second of
/// wall time is half an hour of event time, so one commit interval spans
/// hours of windows that close, are emitted and freed between two
/// checkpoints.
fn thirty_hours(events: u64, users: u64, seed: u64) -> Vec<String> {
    let mut args: Vec<String> = [
        "--frame",
        "minimal",
        "--span-seconds",
        "108000",
        "--late-share",
        "0.005",
        "--late-max-seconds",
        "300",
        "--invalid-share",
        "0.001",
        "--outlier-share",
        "0.0002",
        "--windows",
        "1m,1h,1d",
    ]
    .map(String::from)
    .to_vec();
    for (flag, value) in [("--events", events), ("--users", users), ("--seed", seed)] {
        args.extend([flag.to_string(), value.to_string()]);
    }
    args
}

#[test]
fn kill_9_late_in_the_stream_never_brings_back_a_freed_window() {
    let _b = broker();
    let args = thirty_hours(600_000, 80_000, 61);
    let (jsonl, truth) = generate_sized(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let lines: Vec<Vec<u8>> = jsonl
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let t = topics("late-kill", 3);
    let env = [
        ("DISTINCTLY_WINDOWS", "1m,1h,1d"),
        // The default: hours of this stream between two checkpoints.
        ("DISTINCTLY_COMMIT_INTERVAL_SECONDS", "5"),
    ];
    let start = || service(&t, &env, &[]).spawn().unwrap();
    let mut running: Option<Child> = None;
    produce_paced(&t.input, 3, &lines, Duration::from_secs(60), 100, |i| {
        match i {
            0 => running = Some(start()),
            // Late in the stream: many windows of every size long closed.
            55 | 80 => {
                kill9(running.take().unwrap());
                running = Some(start());
            }
            _ => {}
        }
    });
    terminate_ok(running.take().unwrap());
    drain(&t, &env);
    assert_output_is_truth(&t.output, &truth);
}
