//! End to end: `distinctly generate | distinctly count`, checked against the
//! generator's own exact truth.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_distinctly");

fn generate(args: &[&str], truth_path: &std::path::Path) -> Vec<u8> {
    let out = Command::new(BIN)
        .arg("generate")
        .args(args)
        .arg("--truth")
        .arg(truth_path)
        .output()
        .expect("run generate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn count(input: &[u8], args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(BIN)
        .arg("count")
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run count");
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    out
}

/// start_ts -> (unique_users, events) from JSON lines.
fn per_window(jsonl: &[u8]) -> BTreeMap<u64, (u64, u64)> {
    let mut m = BTreeMap::new();
    let mut revisions = BTreeMap::new();
    for line in jsonl.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_slice(line).unwrap();
        let start = v["start_ts"].as_u64().unwrap();
        if let Some(rev) = v.get("revision") {
            let rev = rev.as_u64().unwrap();
            let prev = revisions.insert(start, rev);
            assert!(
                prev.is_none_or(|p| rev > p),
                "revisions must grow for {start}"
            );
        }
        m.insert(
            start,
            (
                v["unique_users"].as_u64().unwrap(),
                v["events"].as_u64().unwrap(),
            ),
        );
    }
    m
}

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("distinctly-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn realistic_stream_counts_exactly_like_the_truth() {
    let truth_path = tmp("realistic.truth");
    let data = generate(
        &[
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
        ],
        &truth_path,
    );
    let out = count(&data, &["--summary", "json"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let truth = per_window(&std::fs::read(&truth_path).unwrap());
    assert_eq!(per_window(&out.stdout), truth);

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

#[test]
fn sketches_stay_within_bounds_on_a_gzipped_file() {
    let truth_path = tmp("minimal.truth");
    let data = generate(
        &[
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
        ],
        &truth_path,
    );
    let gz_path = tmp("minimal.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&data).unwrap();
    std::fs::write(&gz_path, enc.finish().unwrap()).unwrap();
    let truth = per_window(&std::fs::read(&truth_path).unwrap());

    for (backend, bound) in [
        ("exact", 0.0),
        ("roaring", 1e-4),
        ("hll", 4.0 * 1.04 / 128.0),
        ("cpc", 4.0 * 0.6 / sketch_k_sqrt()),
        ("hll4", 4.0 * 1.04 / sketch_k_sqrt()),
    ] {
        let out = Command::new(BIN)
            .args(["count", "--summary", "none"])
            .arg(&gz_path)
            .env("DISTINCTLY_COUNTER", backend)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = per_window(&out.stdout);
        assert_eq!(got.len(), truth.len(), "{backend}");
        for (start, (users, events)) in &truth {
            let (est, ev) = got[start];
            assert_eq!(ev, *events, "{backend} events in {start}");
            let err = (est as f64 - *users as f64).abs();
            assert!(
                err <= bound * *users as f64 + 1.0,
                "{backend} window {start}: {est} vs {users}"
            );
        }
        let first = out.stdout.split(|&b| b == b'\n').next().unwrap();
        let v: serde_json::Value = serde_json::from_slice(first).unwrap();
        let lg_k = distinctly::config::defaults::SKETCH_LGK;
        let want = match backend {
            "hll" => "hll-p14".to_string(),
            "cpc" | "hll4" => format!("{backend}-lgk{lg_k}"),
            other => other.to_string(),
        };
        assert_eq!(v["counter"], want.as_str());
    }

    // The flags override the variables and name the setting in the output.
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
        .arg(&gz_path)
        .env("DISTINCTLY_COUNTER", "exact")
        .output()
        .unwrap();
    assert!(out.status.success());
    let first = out.stdout.split(|&b| b == b'\n').next().unwrap();
    let v: serde_json::Value = serde_json::from_slice(first).unwrap();
    assert_eq!(v["counter"], "cpc-lgk11");
    let out = Command::new(BIN)
        .args(["count", "--counter", "hll4", "--sketch-lgk", "22"])
        .arg(&gz_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DISTINCTLY_SKETCH_LGK"));
}

/// sqrt(2^lgK) at the default lgK of the DataSketches backends.
fn sketch_k_sqrt() -> f64 {
    f64::from(1u32 << distinctly::config::defaults::SKETCH_LGK).sqrt()
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
    assert_eq!(per_window(&out.stdout), per_window(&truth));
}

#[test]
fn several_files_and_stdin_form_one_stream() {
    let truth_path = tmp("split.truth");
    let data = generate(
        &["--events", "6000", "--frame", "minimal", "--seed", "3"],
        &truth_path,
    );
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
    let truth = per_window(&std::fs::read(&truth_path).unwrap());
    assert_eq!(per_window(&out.stdout), truth);
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
    assert_eq!(per_window(&out.stdout)[&1_767_225_600], (2, 2));
}
