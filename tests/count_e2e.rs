//! End to end: `distinctly generate | distinctly count`, checked against the
//! generator's own exact truth.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

#[test]
fn realistic_stream_counts_exactly_like_the_truth() {
    let (data, truth) = generate_jsonl(&[
        "--events",
        "30000",
        "--users",
        "4000",
        "--span-seconds",
        "1200",
        "--late-share",
        "0.03",
        "--invalid-share",
        "0.01",
        "--outlier-share",
        "0.002",
        "--wrapped-share",
        "0.05",
        "--seed",
        "7",
    ]);
    let out = count(&data, &["--summary", "json"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(records_in_order(&out.stdout), truth);

    // The summary accounts for every line.
    let s: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    let valid: u64 = truth.values().map(|(_, e)| e).sum();
    assert_eq!(s["messages"], 30000);
    assert_eq!(s["accepted"], valid);
    assert_eq!(
        s["accepted"].as_u64().unwrap() + s["rejected_total"].as_u64().unwrap(),
        30000
    );
    assert!(s["rejected"]["ts_out_of_range"].as_u64().unwrap() > 20);
    assert!(s["late_corrected"].as_u64().unwrap() > 0);
    assert_eq!(s["late_dropped"], 0);
}

/// A generated file of minimal frames, gzipped, and its truth.
struct GzippedFile {
    path: PathBuf,
    truth: Windows,
}

/// 400 000 events of 200 000 users over 10 minutes, half of them skewed.
fn gzipped_file() -> GzippedFile {
    let (data, truth) = generate_jsonl(&[
        "--events",
        "400000",
        "--users",
        "200000",
        "--frame",
        "minimal",
        "--skew",
        "0.5",
        "--span-seconds",
        "600",
        "--seed",
        "11",
    ]);
    let path = tmp("minimal.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&data).unwrap();
    std::fs::write(&path, enc.finish().unwrap()).unwrap();
    GzippedFile { path, truth }
}

/// Each backend and its bound on the relative error of a window's count.
fn backends_and_bounds() -> [(&'static str, f64); 5] {
    [
        ("exact", 0.0),
        ("roaring", 1e-4),
        ("hll", 4.0 * 1.04 / 128.0),
        ("cpc", 4.0 * 0.6 / sketch_k_sqrt()),
        ("hll4", 4.0 * 1.04 / sketch_k_sqrt()),
    ]
}

/// sqrt(2^lgK) at the default lgK of the DataSketches backends.
fn sketch_k_sqrt() -> f64 {
    f64::from(1u32 << distinctly::config::defaults::SKETCH_LGK).sqrt()
}

#[test]
fn sketches_stay_within_bounds_on_a_gzipped_file() {
    let f = gzipped_file();
    for (backend, bound) in backends_and_bounds() {
        let out = count_file_with(&f, backend);
        check_every_window_within_the_bound(&f, backend, bound, &out);
        check_the_record_names_the_counter(backend, &out);
    }
    check_flags_override_the_variables_and_name_the_setting(&f);
    check_an_error_about_a_flag_names_the_flag(&f);
}

/// `count --summary none FILE` with `DISTINCTLY_COUNTER=backend`; it succeeds.
fn count_file_with(f: &GzippedFile, backend: &str) -> Output {
    let out = Command::new(BIN)
        .args(["count", "--summary", "none"])
        .arg(&f.path)
        .env("DISTINCTLY_COUNTER", backend)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every window of the truth, events exact, unique users within the bound.
fn check_every_window_within_the_bound(f: &GzippedFile, backend: &str, bound: f64, out: &Output) {
    let got = records_in_order(&out.stdout);
    assert_eq!(got.len(), f.truth.len(), "{backend}");
    for (start, (users, events)) in &f.truth {
        let (est, ev) = got[start];
        assert_eq!(ev, *events, "{backend} events in {start}");
        let err = (est as f64 - *users as f64).abs();
        assert!(
            err <= bound * *users as f64 + 1.0,
            "{backend} window {start}: {est} vs {users}"
        );
    }
}

/// The first record's `counter` names the backend and its setting.
fn check_the_record_names_the_counter(backend: &str, out: &Output) {
    let lg_k = distinctly::config::defaults::SKETCH_LGK;
    let want = match backend {
        "hll" => "hll-p14".to_string(),
        "cpc" | "hll4" => format!("{backend}-lgk{lg_k}"),
        other => other.to_string(),
    };
    assert_eq!(first_record(&out.stdout)["counter"], want.as_str());
}

fn first_record(stdout: &[u8]) -> serde_json::Value {
    let first = stdout.split(|&b| b == b'\n').next().unwrap();
    serde_json::from_slice(first).unwrap()
}

/// The flags override the variables and name the setting in the output.
fn check_flags_override_the_variables_and_name_the_setting(f: &GzippedFile) {
    let out = Command::new(BIN)
        .args([
            "count",
            "--summary",
            "none",
            "--counter",
            "cpc",
            "--sketch-lgk",
            "11",
        ])
        .arg(&f.path)
        .env("DISTINCTLY_COUNTER", "exact")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(first_record(&out.stdout)["counter"], "cpc-lgk11");
}

fn check_an_error_about_a_flag_names_the_flag(f: &GzippedFile) {
    let out = Command::new(BIN)
        .args(["count", "--counter", "hll4", "--sketch-lgk", "22"])
        .arg(&f.path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "distinctly: --sketch-lgk: 22 is outside 4..=21\n",
        "an error about a flag names the flag"
    );
}

#[test]
fn the_shipped_sample_matches_its_truth() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(BIN)
        .args([
            "count",
            "--summary",
            "none",
            &format!("{root}/data/sample.jsonl.gz"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let truth = std::fs::read(format!("{root}/data/sample.truth.jsonl")).unwrap();
    assert_eq!(records_in_order(&out.stdout), records(&truth));
}

#[test]
fn several_files_and_stdin_form_one_stream() {
    let (data, truth) = generate_jsonl(&["--events", "6000", "--frame", "minimal", "--seed", "3"]);
    let cut = data[..data.len() / 2]
        .iter()
        .rposition(|&b| b == b'\n')
        .unwrap()
        + 1;
    let first = tmp("first.jsonl");
    std::fs::write(&first, &data[..cut]).unwrap();
    let out = count(
        &data[cut..],
        &["--summary", "none", first.to_str().unwrap(), "-"],
        &[],
    );
    assert!(out.status.success());
    assert_eq!(records_in_order(&out.stdout), truth);
}

#[test]
fn a_bad_setting_stops_start_up_naming_the_variable() {
    for env in [
        vec![("DISTINCTLY_WINDOW_SECONDS", "sixty")],
        vec![("DISTINCTLY_COUNTER", "bloom")],
        vec![
            ("DISTINCTLY_COUNTER", "hll"),
            ("DISTINCTLY_HLL_PRECISION", "30"),
        ],
    ] {
        let var = env.last().unwrap().0;
        let out = count(b"", &[], &env);
        assert!(!out.status.success(), "{var}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(var), "{var}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(out.stdout.is_empty());
    }
    let missing = Command::new(BIN)
        .args(["count", "/nonexistent/file.jsonl"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/file.jsonl"));
}

#[test]
fn garbage_input_is_counted_never_fatal() {
    let mut input = Vec::new();
    input.extend_from_slice(b"{\"ts\":1767225600,\"uid\":\"a\"}\n");
    input.extend_from_slice(b"\xff\xfe\x00garbage\n\n[]\n{\"ts\":1767225601,\n");
    input.extend(std::iter::repeat_n(b'x', 3 << 20));
    input.extend_from_slice(b"\n{\"ts\":1767225602,\"uid\":\"b\"}");
    let out = count(
        &input,
        &["--summary", "json", "--max-message-bytes", "1048576"],
        &[],
    );
    assert!(out.status.success());
    let s: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(s["accepted"], 2);
    assert_eq!(s["rejected"]["not_utf8"], 1);
    assert_eq!(s["rejected"]["empty"], 1);
    assert_eq!(s["rejected"]["not_object"], 1);
    assert_eq!(s["rejected"]["not_json"], 1);
    assert_eq!(s["rejected"]["too_large"], 1);
    assert_eq!(records_in_order(&out.stdout)[&1_767_225_600], (2, 2));
}

/// `n` in-order minimal events, one per second from 2026-01-01, user `u<i>`.
fn seconds(n: u64) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..n {
        v.extend_from_slice(
            format!("{{\"ts\":{},\"uid\":\"u{i}\"}}\n", 1_767_225_600 + i).as_bytes(),
        );
    }
    v
}

fn spawn_count(args: &[&str]) -> std::process::Child {
    Command::new(BIN)
        .arg("count")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &std::process::Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

/// Reads one line from the child's stdout on a thread, or `None` after
/// `timeout` (the child keeps running).
fn first_line(
    stdout: std::process::ChildStdout,
    timeout: std::time::Duration,
) -> (
    Option<String>,
    std::sync::mpsc::Receiver<std::io::BufReader<std::process::ChildStdout>>,
) {
    use std::io::BufRead;
    let (line_tx, line_rx) = std::sync::mpsc::channel();
    let (rest_tx, rest_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = line_tx.send(line);
        let _ = rest_tx.send(reader);
    });
    (line_rx.recv_timeout(timeout).ok(), rest_rx)
}

#[test]
fn a_repeated_flipped_timestamp_at_the_start_costs_no_valid_event() {
    let mut input = b"{\"ts\":10357160192,\"uid\":\"dup\"}\n".repeat(2);
    input.extend(seconds(3600));
    let out = count(&input, &["--summary", "json"], &[]);
    assert!(out.status.success());
    let windows = records_in_order(&out.stdout);
    assert_eq!(windows.len(), 60);
    assert!(windows.values().all(|&w| w == (60, 60)), "{windows:?}");
    let s: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(s["rejected"]["ts_out_of_range"], 2);

    // One valid event, two copies of a flip to 1970, ten valid events.
    let mut input = seconds(1);
    input.extend(b"{\"ts\":0,\"uid\":\"z\"}\n".repeat(2));
    input.extend_from_slice(&seconds(11)[seconds(1).len()..]);
    let out = count(&input, &["--summary", "none"], &[]);
    assert_eq!(
        records_in_order(&out.stdout),
        BTreeMap::from([(1_767_225_600, (11, 11))])
    );
}

#[test]
fn records_stream_out_as_windows_close_on_a_live_pipe() {
    let mut child = spawn_count(&["--summary", "none"]);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&seconds(600)).unwrap();
    stdin.flush().unwrap();
    // The input stays open: the closed windows must come out anyway.
    let (line, _rest) = first_line(
        child.stdout.take().unwrap(),
        std::time::Duration::from_secs(20),
    );
    let line = line.expect("no record while the input was open");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["start_ts"], 1_767_225_600u64);
    assert_eq!(v["unique_users"], 60);
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn sigint_and_sigterm_finish_what_was_read_then_exit_128_plus_the_signal() {
    for (sig, code, name) in [("-INT", 130, "SIGINT"), ("-TERM", 143, "SIGTERM")] {
        let mut child = spawn_count(&["--summary", "json"]);
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&seconds(150)).unwrap();
        stdin.flush().unwrap();
        // Two windows are closed once their records appear; the third is
        // open, and the process is blocked reading stdin.
        let (line, rest) = first_line(
            child.stdout.take().unwrap(),
            std::time::Duration::from_secs(20),
        );
        assert!(line.is_some());
        signal(&child, sig);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "{name}");
        let mut stdout = line.unwrap().into_bytes();
        std::io::Read::read_to_end(&mut rest.recv().unwrap(), &mut stdout).unwrap();
        let mut stderr = Vec::new();
        std::io::Read::read_to_end(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        // Everything read is counted, the open window included.
        let want: BTreeMap<u64, (u64, u64)> = [(0, 60), (60, 60), (120, 30)]
            .into_iter()
            .map(|(s, n)| (1_767_225_600 + s, (n, n)))
            .collect();
        assert_eq!(records_in_order(&stdout), want, "{name}");
        let s: serde_json::Value = serde_json::from_slice(&stderr).unwrap();
        assert_eq!(s["messages"], 150);
        assert_eq!(s["stopped_by"], name);
        drop(stdin);
    }
}

#[test]
fn a_second_signal_exits_at_once() {
    // Nobody reads the output: the run blocks writing records, so the
    // first SIGINT cannot finish; the second one ends the process.
    let mut child = Command::new(BIN)
        .args(["count", "--window-seconds", "1", "--summary", "none"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&seconds(20_000));
        stdin
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    signal(&child, "-INT");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "blocked on its output");
    signal(&child, "-INT");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "still running");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    drop(feeder);
}

#[test]
fn a_closed_output_pipe_ends_the_run_quietly() {
    let path = tmp("head.jsonl");
    // Large enough for the parallel path.
    std::fs::write(&path, seconds(400_000)).unwrap();
    for stdin_path in [false, true] {
        let mut cmd = Command::new(BIN);
        cmd.arg("count")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if stdin_path {
            cmd.stdin(std::fs::File::open(&path).unwrap());
        } else {
            cmd.arg(&path).stdin(Stdio::null());
        }
        let mut child = cmd.spawn().unwrap();
        let (line, rest) = first_line(
            child.stdout.take().unwrap(),
            std::time::Duration::from_secs(30),
        );
        assert!(line.unwrap().contains("\"start_ts\":1767225600"));
        drop(rest); // like `head -1`: the reader goes away
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "stdin={stdin_path}");
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn diagnostics_never_panic_and_a_closed_stdout_is_an_error() {
    let path = tmp("diag.jsonl");
    std::fs::write(&path, seconds(300)).unwrap();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = Command::new(BIN)
        .arg("count")
        .arg(&path)
        .stderr(full)
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(records_in_order(&out.stdout).len(), 5);

    let out = Command::new("sh")
        .args([
            "-c",
            "exec \"$0\" count \"$1\" >&-",
            BIN,
            path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("distinctly: stdout is closed"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // Discarding the records on purpose is fine, write-only or read-write
    // (`1<>/dev/null`, Python's `subprocess.DEVNULL`).
    for redirect in [">/dev/null", "1<>/dev/null"] {
        let out = Command::new("sh")
            .args([
                "-c",
                &format!("exec \"$0\" count --summary none \"$1\" {redirect}"),
                BIN,
                path.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{redirect}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let devnull = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .unwrap();
    let out = Command::new(BIN)
        .args(["count", "--summary", "json"])
        .arg(&path)
        .stdout(devnull)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(summary["windows_emitted"], 5);
}

#[test]
fn every_input_is_opened_before_the_first_record() {
    let a = tmp("open-a.jsonl");
    std::fs::write(&a, seconds(300)).unwrap();
    let out = Command::new(BIN)
        .args([
            "count",
            a.to_str().unwrap(),
            "/nonexistent",
            a.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "nothing written before every input is open"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "distinctly: reading /nonexistent: No such file or directory (os error 2)\n",
        "one line, each cause once"
    );
}

#[test]
fn a_corrupt_gzip_counts_what_was_read_before_the_fault() {
    use flate2::{write::GzEncoder, Compression};
    let data = seconds(20_000);
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(&data).unwrap();
    let gz = enc.finish().unwrap();
    let cut = &gz[..gz.len() / 2];
    // What the cut stream decompresses to, complete lines only.
    let mut prefix = Vec::new();
    let _ = std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(cut), &mut prefix);
    let complete = &prefix[..=prefix.iter().rposition(|&b| b == b'\n').unwrap()];
    let want = count(complete, &["--summary", "none"], &[]);
    assert!(want.status.success());

    let mut with_garbage = gz.clone();
    with_garbage.extend_from_slice(b"garbage\n");
    for (name, bytes, want) in [
        ("cut.jsonl.gz", cut.to_vec(), records_in_order(&want.stdout)),
        (
            "garbage.jsonl.gz",
            with_garbage,
            records_in_order(&count(&data, &["--summary", "none"], &[]).stdout),
        ),
    ] {
        let path = tmp(name);
        std::fs::write(&path, bytes).unwrap();
        let out = Command::new(BIN)
            .args(["count", "--summary", "json"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert_eq!(records_in_order(&out.stdout), want, "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let (summary, error) = stderr.split_once('\n').unwrap();
        let s: serde_json::Value = serde_json::from_str(summary).unwrap();
        assert!(
            s["error"].as_str().unwrap().contains("corrupt gzip stream"),
            "{s}"
        );
        assert!(
            error.starts_with(&format!(
                "distinctly: reading {}: corrupt gzip stream",
                path.display()
            )),
            "{error}"
        );
    }
}

#[test]
fn flags_win_over_malformed_variables_and_typos_are_reported() {
    let input = seconds(600);
    let out = count(
        &input,
        &["--summary", "none", "--window-seconds", "300"],
        &[
            ("DISTINCTLY_WINDOW_SECONDS", "abc"),
            ("DISTINCTLY_COUNTR", "hll"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(records_in_order(&out.stdout).len(), 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(" WARN "), "{stderr}");
    assert!(
        stderr.contains("DISTINCTLY_COUNTR is not a setting (did you mean DISTINCTLY_COUNTER?)"),
        "{stderr}"
    );
    for (env, flags, name) in [
        (
            vec![("DISTINCTLY_MAX_MESSAGE_BYTES", "2000000000")],
            vec![],
            "DISTINCTLY_MAX_MESSAGE_BYTES: 2000000000 is outside 16..=1073741824",
        ),
        (
            vec![],
            vec!["--max-message-bytes", "2000000000"],
            "--max-message-bytes: 2000000000 is outside 16..=1073741824",
        ),
        (
            vec![("DISTINCTLY_WINDOW_SECONDS", "18446744073709551615")],
            vec![],
            "DISTINCTLY_WINDOW_SECONDS: 18446744073709551615 is outside 1..=31622400",
        ),
    ] {
        let out = count(b"", &flags, &env);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("distinctly: {name}\n")
        );
    }
}

/// A 30-hour stream with late events, invalid lines and bit flips, and its
/// truth for minutes, hours and days.
fn thirty_hours() -> (Vec<u8>, SizedWindows) {
    let args = thirty_hours_args(120_000, 8_000, 41);
    generate_sized(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn several_sizes_in_one_pass_count_what_separate_runs_count() {
    let (data, truth) = thirty_hours();
    assert_eq!(
        truth
            .keys()
            .map(|(s, _)| s.as_str())
            .collect::<std::collections::BTreeSet<_>>(),
        ["1d", "1h", "1m"].into()
    );
    let out = count(&data, &["--windows", "1m,1h,1d", "--summary", "json"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = json_lines(&out.stdout);
    check_revisions_grow(&records);
    let multi = last_per_sized_window(&records);
    assert_eq!(multi, truth);
    // Each size alone (today's one-size records, no `window` field) counts
    // the same.
    for size in ["1m", "1h", "1d"] {
        let single = count(&data, &["--windows", size, "--summary", "none"], &[]);
        let got = records_in_order(&single.stdout);
        let want: Windows = truth
            .iter()
            .filter(|((s, _), _)| s == size)
            .map(|((_, start), w)| (*start, *w))
            .collect();
        assert_eq!(got, want, "{size}");
        assert!(json_lines(&single.stdout)
            .iter()
            .all(|r| r.get("window").is_none()));
    }
    let s: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    for size in ["1m", "1h", "1d"] {
        assert!(
            s["sizes"][size]["windows_emitted"].as_u64().unwrap() > 0,
            "{s}"
        );
    }
    // The one-size forms agree: DISTINCTLY_WINDOW_SECONDS=3600 is 60m, an
    // epoch-aligned hour, which in UTC is the hour.
    let legacy = count(
        &data,
        &["--summary", "none"],
        &[("DISTINCTLY_WINDOW_SECONDS", "3600")],
    );
    let want: Windows = truth
        .iter()
        .filter(|((s, _), _)| s == "1h")
        .map(|((_, start), w)| (*start, *w))
        .collect();
    assert_eq!(records_in_order(&legacy.stdout), want);
}

#[test]
fn emit_final_prints_each_window_once_in_order_per_size() {
    let (data, truth) = thirty_hours();
    let out = count(
        &data,
        &[
            "--windows",
            "1m,1h,1d",
            "--emit",
            "final",
            "--summary",
            "none",
        ],
        &[],
    );
    assert!(out.status.success());
    let records = json_lines(&out.stdout);
    assert_eq!(records.len(), truth.len(), "one record per window");
    assert_eq!(last_per_sized_window(&records), truth);
    // Sizes in the order given, windows in start order within each.
    let order: Vec<(String, u64)> = records
        .iter()
        .map(|r| {
            (
                r["window"].as_str().unwrap().to_string(),
                r["start_ts"].as_u64().unwrap(),
            )
        })
        .collect();
    let rank = |s: &str| ["1m", "1h", "1d"].iter().position(|x| *x == s).unwrap();
    let mut sorted = order.clone();
    sorted.sort_by_key(|(s, start)| (rank(s), *start));
    assert_eq!(order, sorted);
}

#[test]
fn window_settings_that_conflict_or_do_not_parse_are_named() {
    for (env, flags, want) in [
        (
            vec![("DISTINCTLY_WINDOWS", "1m"), ("DISTINCTLY_WINDOW_SECONDS", "60")],
            vec![],
            "DISTINCTLY_WINDOWS: set either it or DISTINCTLY_WINDOW_SECONDS (the one-size form), not both",
        ),
        (
            vec![("DISTINCTLY_WINDOW_SECONDS", "60")],
            vec!["--windows", "1h"],
            "--windows: set either it or DISTINCTLY_WINDOW_SECONDS (the one-size form), not both",
        ),
        (
            vec![],
            vec!["--windows", "1m,5h"],
            "--windows: \"5h\" is not a window size (expected <n>s, <n>m, <n>h with n dividing 24, <n>d, 1w, 1mo or 1y)",
        ),
        (
            vec![("DISTINCTLY_WINDOWS", "1mo,1mo")],
            vec![],
            "DISTINCTLY_WINDOWS: 1mo is listed twice",
        ),
        (
            vec![],
            vec!["--windows", "60s,1h,1m"],
            "--windows: 60s and 1m are the same size",
        ),
        (
            vec![("DISTINCTLY_TIMEZONE", "Mars/Olympus")],
            vec![],
            "DISTINCTLY_TIMEZONE: \"Mars/Olympus\" is not a known IANA time zone",
        ),
    ] {
        let out = count(b"", &flags, &env);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with(&format!("distinctly: {want}")), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn years_and_local_times_follow_the_zone() {
    // Berlin: from 2025-12-31T22:00:00Z (23:00 local, still 2025) for two
    // hours, an event every 30 s; the local year 2026 begins at 23:00Z.
    // Five users in the local 2025, three new ones and one of the five in
    // 2026.
    let new_year = 1_767_222_000;
    let lines = events((0..240).map(|i| {
        let ts = new_year - 3600 + i * 30;
        let uid = match (ts < new_year, i) {
            (true, _) => format!("u{}", i % 5),
            (false, 239) => "u0".to_string(),
            (false, _) => format!("v{}", i % 3),
        };
        (ts, uid)
    }));
    let data: Vec<u8> = lines
        .iter()
        .flat_map(|l| [&l[..], b"\n"].concat())
        .collect();
    let out = count(
        &data,
        &["--windows", "1d,1y", "--emit", "final", "--summary", "none"],
        &[("DISTINCTLY_TIMEZONE", "Europe/Berlin")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = json_lines(&out.stdout);
    let years: Vec<_> = records.iter().filter(|r| r["window"] == "1y").collect();
    assert_eq!(years.len(), 2, "{records:?}");
    assert_eq!(years[0]["window_start"], "2024-12-31T23:00:00Z");
    assert_eq!(years[0]["window_start_local"], "2025-01-01T00:00:00+01:00");
    assert_eq!(years[0]["window_end_local"], "2026-01-01T00:00:00+01:00");
    assert_eq!(years[0]["unique_users"], 5);
    assert_eq!(years[1]["window_start"], "2025-12-31T23:00:00Z");
    assert_eq!(years[1]["window_start_local"], "2026-01-01T00:00:00+01:00");
    assert_eq!(years[1]["unique_users"], 4);
    let days: Vec<_> = records.iter().filter(|r| r["window"] == "1d").collect();
    assert_eq!(days[1]["window_start_local"], "2026-01-01T00:00:00+01:00");
    // In UTC the records have no local times (they are the UTC ones), and
    // all of it is 2025.
    let out = count(&data, &["--windows", "1y", "--summary", "none"], &[]);
    let records = json_lines(&out.stdout);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["window_start"], "2025-01-01T00:00:00Z");
    assert_eq!(records[0]["unique_users"], 8);
    assert!(records[0].get("window_start_local").is_none());
}
