//! Helpers shared by the end-to-end tests: the binary, the generator and
//! its truth, `count` on stdin, scratch files, reading output records (with
//! the revision check where the records come from one run), and the real
//! Kafka broker started by `scripts/kafka-local.sh` (each test binary
//! includes this module; not every binary uses every helper).
#![allow(dead_code)]

pub mod browser;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_distinctly");

/// The local broker's PLAINTEXT address: `scripts/kafka-local.sh` listens on
/// `KAFKA_LOCAL_PORT` (default 9092), and so do the tests.
pub fn bootstrap() -> String {
    local_addr("KAFKA_LOCAL_PORT", 9092)
}

/// The SASL_PLAINTEXT listener (`KAFKA_LOCAL_SASL_PORT`, default 9094).
pub fn sasl_bootstrap() -> String {
    local_addr("KAFKA_LOCAL_SASL_PORT", 9094)
}

/// The SASL_SSL listener (`KAFKA_LOCAL_SSL_PORT`, default 9095).
pub fn ssl_bootstrap() -> String {
    local_addr("KAFKA_LOCAL_SSL_PORT", 9095)
}

/// The CA file that signed the local broker's certificate
/// (`scripts/kafka-local.sh ca`).
pub fn local_ca() -> String {
    let out = Command::new(root().join("scripts/kafka-local.sh"))
        .arg("ca")
        .output()
        .expect("run kafka-local.sh ca");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn local_addr(var: &str, default: u16) -> String {
    let port = std::env::var(var).unwrap_or_else(|_| default.to_string());
    format!("127.0.0.1:{port}")
}

pub static SERIAL: Mutex<()> = Mutex::new(());

/// start_ts -> (unique_users, events)
pub type Windows = BTreeMap<u64, (u64, u64)>;

/// (window size, start_ts) -> (unique_users, events); the size is the
/// record's `window` field ("" when it has none: a one-size run).
pub type SizedWindows = BTreeMap<(String, u64), (u64, u64)>;

/// The last record per (size, window) of `records`.
pub fn last_per_sized_window(records: &[serde_json::Value]) -> SizedWindows {
    records
        .iter()
        .map(|v| {
            let size = v.get("window").and_then(|w| w.as_str()).unwrap_or("");
            (
                (size.to_string(), v["start_ts"].as_u64().unwrap()),
                (
                    v["unique_users"].as_u64().unwrap(),
                    v["events"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

/// `distinctly generate ARGS` and its truth for every size (`--windows`).
pub fn generate_sized(args: &[&str]) -> (Vec<u8>, SizedWindows) {
    let (jsonl, truth) = run_generate(args);
    (jsonl, last_per_sized_window(&json_lines(&truth)))
}

/// The arguments of a 30-hour stream of minimal frames with late events,
/// invalid lines and bit flips, and its truth for minutes, hours and days.
pub fn thirty_hours_args(events: u64, users: u64, seed: u64) -> Vec<String> {
    let mut args: Vec<String> = [
        "--frame",
        "minimal",
        "--span-seconds",
        "108000",
        "--late-share",
        "0.02",
        "--invalid-share",
        "0.01",
        "--outlier-share",
        "0.001",
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

/// `distinctly generate ARGS --truth FILE`: what it writes, and the truth
/// file's bytes.
fn run_generate(args: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let truth = std::env::temp_dir().join(unique("truth"));
    let out = Command::new(BIN)
        .arg("generate")
        .args(args)
        .arg("--truth")
        .arg(&truth)
        .output()
        .expect("run generate");
    assert!(
        out.status.success(),
        "generate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&truth).unwrap();
    std::fs::remove_file(truth).unwrap();
    (out.stdout, bytes)
}

/// A consumed message: key, payload, headers.
pub type Consumed = (Option<Vec<u8>>, Vec<u8>, Vec<(String, String)>);

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn script(args: &[&str]) {
    let out = Command::new(root().join("scripts/kafka-local.sh"))
        .args(args)
        .output()
        .expect("run kafka-local.sh");
    assert!(
        out.status.success(),
        "kafka-local.sh {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Serializes the tests and makes sure the broker runs.
pub fn broker() -> MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    script(&["start"]);
    guard
}

pub fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

pub struct Topics {
    pub input: String,
    pub output: String,
    pub group: String,
}

pub fn topics(name: &str, partitions: u32) -> Topics {
    let t = Topics {
        input: unique(&format!("{name}-in")),
        output: unique(&format!("{name}-out")),
        group: unique(&format!("{name}-group")),
    };
    script(&["topic-create", &t.input, &partitions.to_string()]);
    script(&["topic-create", &t.output, "1", "cleanup.policy=compact"]);
    t
}

/// Generated lines and the per-window truth.
pub fn generate(args: &[&str]) -> (Vec<Vec<u8>>, Windows) {
    let (jsonl, truth) = generate_jsonl(args);
    let lines = jsonl
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    (lines, truth)
}

/// `distinctly generate ARGS` as it writes it (JSON lines, each ending in
/// '\n'; the generator writes no empty line) and the per-window truth.
pub fn generate_jsonl(args: &[&str]) -> (Vec<u8>, Windows) {
    let (jsonl, truth) = run_generate(args);
    (jsonl, records(&truth))
}

/// Each non-empty line of `jsonl`, parsed as JSON.
pub fn json_lines(jsonl: &[u8]) -> Vec<serde_json::Value> {
    jsonl
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|line| serde_json::from_slice(line).unwrap())
        .collect()
}

/// start_ts -> (unique_users, events), the last record per window.
///
/// No revision check: a topic written by several runs (a restart, a
/// rebalance) holds windows that the next run rebuilt by replay and emitted
/// again from revision 0, and the generator's truth has no revisions. For
/// records written by one run, in order, see [`records_in_order`].
pub fn records(jsonl: &[u8]) -> Windows {
    last_per_window(&json_lines(jsonl))
}

/// As [`records`], for records in the order one run wrote them (`count`'s
/// output; a one-partition topic written by one run): also checks that each
/// window's revisions only grow (see [`check_revisions_grow`]).
pub fn records_in_order(jsonl: &[u8]) -> Windows {
    let records = json_lines(jsonl);
    check_revisions_grow(&records);
    last_per_window(&records)
}

/// start_ts -> (unique_users, events) of the last of `records` per window.
pub fn last_per_window(records: &[serde_json::Value]) -> Windows {
    records
        .iter()
        .map(|v| {
            (
                v["start_ts"].as_u64().unwrap(),
                (
                    v["unique_users"].as_u64().unwrap(),
                    v["events"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

/// The revision check: in the order given, each window's `revision` is
/// greater than its previous one (records without a `revision`, like the
/// generator's truth, are not checked).
pub fn check_revisions_grow(records: &[serde_json::Value]) {
    let mut revisions = BTreeMap::new();
    for v in records {
        if let Some(rev) = v.get("revision") {
            let rev = rev.as_u64().unwrap();
            let id = record_id(v);
            let prev = revisions.insert(id.clone(), rev);
            assert!(
                prev.is_none_or(|p| rev > p),
                "revisions must grow for {id:?}"
            );
        }
    }
}

/// Produces `lines` round-robin over `partitions` (order kept per partition).
pub fn produce(topic: &str, partitions: i32, lines: &[Vec<u8>]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("linger.ms", "20")
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    for (i, line) in lines.iter().enumerate() {
        let mut rec = BaseRecord::<(), [u8]>::to(topic)
            .payload(line)
            .partition(i as i32 % partitions);
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    rec = r;
                    producer.poll(Duration::from_millis(20));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}

/// Every message of `topic` (all partitions, from the beginning).
pub fn consume_all(topic: &str) -> Vec<Consumed> {
    let mut out = Vec::new();
    read_all(topic, |m| {
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|x| {
                        (
                            x.key.to_string(),
                            String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push((
            m.key().map(<[u8]>::to_vec),
            m.payload().unwrap_or_default().to_vec(),
            headers,
        ));
    });
    out
}

/// When each record of `topic` was written (its create time, ms), in the
/// order read.
pub fn record_times(topic: &str) -> Vec<i64> {
    let mut out = Vec::new();
    read_all(topic, |m| out.push(m.timestamp().to_millis().unwrap_or(0)));
    out
}

/// Calls `f` for every message of `topic` (all partitions, from the
/// beginning to the end).
fn read_all(topic: &str, mut f: impl FnMut(&rdkafka::message::BorrowedMessage<'_>)) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", unique("reader"))
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let parts = md.topics()[0].partitions().len();
    let mut tpl = TopicPartitionList::new();
    for p in 0..parts as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut eof = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while eof < parts && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => f(&m),
            Some(Err(KafkaError::PartitionEOF(_))) => eof += 1,
            _ => {}
        }
    }
    assert_eq!(eof, parts, "did not reach the end of {topic}");
}

/// The records of an output topic as JSON, in the order read (as written,
/// for a one-partition topic); checks keys on the way.
pub fn output_records(topic: &str) -> Vec<serde_json::Value> {
    consume_all(topic)
        .into_iter()
        .map(|(key, payload, _)| {
            let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
            let key = String::from_utf8(key.expect("a key")).unwrap();
            let (window, group) = parse_record_key(&key);
            // `<start_ts>`, or `<size>:<start_ts>` when records name their size.
            let want = match v.get("window").and_then(|w| w.as_str()) {
                Some(size) => format!("{size}:{}", v["start_ts"]),
                None => v["start_ts"].to_string(),
            };
            assert_eq!(
                window, want,
                "records are keyed by size and start_ts: {key}"
            );
            // Then, for a group, its grouping and group as JSON.
            let overflow = v.get("overflow") == Some(&serde_json::Value::Bool(true));
            let want_group = v.get("group_by").map(|g| {
                let value = if overflow {
                    None
                } else {
                    Some(v["group"].clone())
                };
                (g.as_str().unwrap().to_string(), value)
            });
            assert_eq!(
                group, want_group,
                "a group record's key names its group: {key}"
            );
            v
        })
        .collect()
}

/// A record's Kafka key: the window part, and for a group its grouping and
/// group (`None`: the overflow record, `=*`), read as JSON.
pub fn parse_record_key(key: &str) -> (String, Option<(String, Option<serde_json::Value>)>) {
    let Some(at) = key.find(":\"") else {
        return (key.to_string(), None);
    };
    let window = key[..at].to_string();
    let rest = &key[at + 1..];
    let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<String>();
    let grouping = stream.next().expect("a grouping").expect("a JSON string");
    let rest = &rest[stream.byte_offset()..];
    let value = rest.strip_prefix('=').expect("`=` after the grouping");
    let group = if value == "*" {
        None
    } else {
        Some(serde_json::from_str(value).expect("the group as JSON"))
    };
    (window, Some((grouping, group)))
}

/// What identifies a record: (window, start_ts, group_by, group as JSON);
/// `group_by` is empty for a window's total, and the overflow record's
/// group is `*`.
pub type RecordId = (String, u64, String, String);

pub fn record_id(v: &serde_json::Value) -> RecordId {
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    let group = if v.get("overflow") == Some(&serde_json::Value::Bool(true)) {
        "*".to_string()
    } else {
        v.get("group").map_or(String::new(), |g| g.to_string())
    };
    (
        s("window"),
        v["start_ts"].as_u64().unwrap(),
        s("group_by"),
        group,
    )
}

/// Record id -> (unique_users, events): the last record of each.
pub type Grouped = BTreeMap<RecordId, (u64, u64)>;

pub fn grouped(records: &[serde_json::Value]) -> Grouped {
    records
        .iter()
        .map(|v| {
            (
                record_id(v),
                (
                    v["unique_users"].as_u64().unwrap(),
                    v["events"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

/// `scripts/group-truth.py`'s truth of `jsonl` (JSON lines) for
/// `group_by` and `windows`.
pub fn group_truth(jsonl: &[u8], group_by: &str, windows: &str) -> Grouped {
    let mut child = Command::new("python3")
        .arg(root().join("scripts/group-truth.py"))
        .args(["--group-by", group_by, "--windows", windows])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs scripts/group-truth.py");
    let mut stdin = child.stdin.take().unwrap();
    let data = jsonl.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(out.status.success());
    grouped(&json_lines(&out.stdout))
}

/// The last record per window in the output topic; checks keys on the way
/// (no revision check: see [`records`]).
pub fn output_windows(topic: &str) -> Windows {
    last_per_window(&output_records(topic))
}

pub fn service(t: &Topics, extra_env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("run")
        .args(args)
        .env("KAFKA_SERVICE_INTERNAL_HOST", bootstrap())
        .env("KAFKA_SERVICE_INPUT_TOPIC", &t.input)
        // Several instances run at once in some tests; tests/metrics.rs
        // covers the metrics, and tests that need the endpoints set it.
        .env("DISTINCTLY_METRICS_ADDR", "")
        .env("KAFKA_SERVICE_OUTPUT_TOPIC", &t.output)
        .env("KAFKA_SERVICE_GROUP_ID", &t.group)
        .env("DISTINCTLY_COMMIT_INTERVAL_SECONDS", "1")
        // A killed member leaves the group after this (the broker's minimum),
        // not librdkafka's 45 s default; also exercises pass-through settings.
        .env("DISTINCTLY_RDKAFKA_CONSUMER_SESSION_TIMEOUT_MS", "6000")
        .envs(extra_env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

pub fn drain(t: &Topics, extra_env: &[(&str, &str)]) -> Output {
    let out = service(t, extra_env, &["--exit-when-idle"])
        .output()
        .expect("run distinctly");
    assert!(
        out.status.success(),
        "run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// SIGTERM, then the exit status and output.
pub fn terminate(child: Child) -> Output {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    child.wait_with_output().unwrap()
}

/// SIGTERM, then a clean exit is asserted; returns what it logged.
pub fn terminate_ok(child: Child) -> String {
    let out = terminate(child);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

pub fn kill9(mut child: Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

pub fn wait_for_records(topic: &str, at_least: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if consume_all(topic).len() >= at_least {
            return;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!("fewer than {at_least} records in {topic}");
}

/// Waits until the output topic's last record for `start` is `want`;
/// returns every window's last record then (or panics with what it saw).
pub fn wait_for_window(topic: &str, start: u64, want: (u64, u64), timeout: Duration) -> Windows {
    let deadline = Instant::now() + timeout;
    loop {
        let got = output_windows(topic);
        if got.get(&start) == Some(&want) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "window {start}: want {want:?}, last records {got:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Minimal events `{"ts":…,"uid":…}`.
pub fn events(pairs: impl IntoIterator<Item = (u64, String)>) -> Vec<Vec<u8>> {
    pairs
        .into_iter()
        .map(|(ts, uid)| format!(r#"{{"ts":{ts},"uid":"{uid}"}}"#).into_bytes())
        .collect()
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP/1.0 GET (no chunked encoding to undo): status and body.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

/// Polls `http://{addr}{path}`, served by `child`, until it answers
/// `status`; returns the body. If `child` exits meanwhile, fails at once
/// with its exit status and log (its stderr must be piped).
pub fn wait_for_http(
    child: &mut Child,
    addr: &str,
    path: &str,
    status: u16,
    timeout: Duration,
) -> String {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    while Instant::now() < deadline {
        match http_get(addr, path) {
            Ok((s, body)) if s == status => return body,
            other => last = Some(other),
        }
        if let Ok(Some(exit)) = child.try_wait() {
            let mut log = String::new();
            if let Some(mut err) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut err, &mut log);
            }
            panic!("the service exited ({exit}) while waiting for {path}: {log}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{path} never answered {status}; last: {last:?}");
}

/// `distinctly count ARGS` with `input` on its stdin (written from a thread,
/// so a large input cannot block against unread output), `env` added.
pub fn count(input: &[u8], args: &[&str], env: &[(&str, &str)]) -> Output {
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

/// A path named `name` in this test process's own temporary directory
/// (created if needed; the file itself is not).
pub fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("distinctly-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A new, empty directory of its own (a [`unique`] name under the system's
/// temporary directory).
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Messages of the input topic after the group's committed offsets (all of
/// them for a partition without one): what a restart now would replay.
pub fn committed_lag(t: &Topics) -> i64 {
    group_lag(&t.group, &t.input)
}

/// A consumer in `group` (never joining it) with the settings `extra`, and
/// the group's committed offsets of every partition of `topic` (`Invalid`
/// where it has none).
fn committed_by(
    group: &str,
    topic: &str,
    extra: &[(&str, &str)],
) -> (BaseConsumer, TopicPartitionList) {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap())
        .set("group.id", group)
        .set("enable.auto.commit", "false");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    let consumer: BaseConsumer = config.create().unwrap();
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..md.topics()[0].partitions().len() as i32 {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    (consumer, committed)
}

/// Per partition of `topic`: records after `group`'s committed offset
/// (each transaction's commit marker included).
pub fn partition_lags(group: &str, topic: &str) -> Vec<i64> {
    let (consumer, committed) = committed_by(group, topic, &[]);
    committed
        .elements_for_topic(topic)
        .iter()
        .map(|e| {
            let (low, high) = consumer
                .fetch_watermarks(topic, e.partition(), Duration::from_secs(10))
                .unwrap();
            let from = match e.offset() {
                Offset::Offset(o) => o,
                _ => low,
            };
            high - from
        })
        .collect()
}

/// A consumer of another program in `group`, subscribed to `topic` with
/// the service's rebalancing protocol: it takes its share of the
/// partitions, reads nothing it commits, and leaves when dropped.
pub struct Squatter {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    held: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Squatter {
    pub fn join(group: &str, topic: &str) -> Squatter {
        use std::sync::atomic::Ordering;
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "6000")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .create()
            .unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let held = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (s, h) = (stop.clone(), held.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let _ = consumer.poll(Duration::from_millis(100));
                if let Ok(a) = consumer.assignment() {
                    h.store(a.count(), Ordering::Relaxed);
                }
            }
            consumer.unsubscribe();
        });
        Squatter {
            stop,
            held,
            thread: Some(thread),
        }
    }

    /// Waits until it holds exactly `n` partitions.
    pub fn wait_holding(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.held.load(std::sync::atomic::Ordering::Relaxed) != n {
            assert!(Instant::now() < deadline, "the squatter never held {n}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Squatter {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Records of `topic` after `group`'s committed offsets (each transaction's
/// commit marker included).
pub fn group_lag(group: &str, topic: &str) -> i64 {
    partition_lags(group, topic).iter().sum()
}

/// Committed records of `topic` after `group`'s committed offsets, not
/// counting transaction markers: what the group has not yet read and
/// committed past, however the transactions' markers fell.
pub fn unread_records(group: &str, topic: &str) -> usize {
    let (consumer, from) = committed_by(
        group,
        topic,
        &[
            ("enable.partition.eof", "true"),
            ("isolation.level", "read_committed"),
        ],
    );
    for mut e in from.elements() {
        if !matches!(e.offset(), Offset::Offset(_)) {
            e.set_offset(Offset::Beginning).unwrap();
        }
    }
    consumer.assign(&from).unwrap();
    let parts = from.count();
    let (mut unread, mut at_end) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while at_end < parts {
        assert!(Instant::now() < deadline, "{topic}: no end in sight");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(_)) => unread += 1,
            Some(Err(KafkaError::PartitionEOF(_))) => at_end += 1,
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    unread
}

/// SIGKILL, then what the process had written.
pub fn kill9_output(mut child: Child) -> Output {
    child.kill().unwrap();
    child.wait_with_output().unwrap()
}

/// Checks the output records of a one-partition topic, in offset order,
/// as a consumer that keeps the highest revision of each key needs them:
/// per key (size and start), revisions never go down, and a repeated
/// revision (an at-least-once duplicate) carries the same counts. Returns
/// what breaks the rules, one line each.
pub fn revision_problems(records: &[serde_json::Value]) -> Vec<String> {
    let mut seen: BTreeMap<RecordId, (u64, (u64, u64))> = BTreeMap::new();
    let mut problems = Vec::new();
    for (offset, v) in records.iter().enumerate() {
        let key = record_id(v);
        let rev = v["revision"].as_u64().unwrap();
        let counts = (
            v["unique_users"].as_u64().unwrap(),
            v["events"].as_u64().unwrap(),
        );
        if let Some(&(prev_rev, prev_counts)) = seen.get(&key) {
            if rev < prev_rev {
                problems.push(format!(
                    "{key:?} at offset {offset}: revision {rev} {counts:?} after {prev_rev} {prev_counts:?}"
                ));
            } else if rev == prev_rev && counts != prev_counts {
                problems.push(format!(
                    "{key:?} at offset {offset}: revision {rev} repeated with {counts:?}, was {prev_counts:?}"
                ));
            }
        }
        seen.insert(key, (rev, counts));
    }
    problems
}

/// Asserts that the output topic's last record per key by offset (what a
/// compacted topic keeps) equals `truth`, and that its records keep the
/// revision rules of [`revision_problems`] (so the highest revision is
/// the last record, and the truth).
pub fn assert_output_is_truth(topic: &str, truth: &SizedWindows) {
    let records = output_records(topic);
    let got = last_per_sized_window(&records);
    let report = if &got != truth {
        differences(truth, &got, 40)
    } else {
        String::new()
    };
    assert_revisions_rise(&records, report);
}

/// [`assert_output_is_truth`] for records with groups: every window's and
/// every group's last record by offset.
pub fn assert_grouped_output_is_truth(topic: &str, truth: &Grouped) {
    let records = output_records(topic);
    let got = grouped(&records);
    let mut lines = Vec::new();
    for (k, w) in truth {
        match got.get(k) {
            Some(g) if g == w => {}
            g => lines.push(format!("{k:?}: want {w:?}, got {g:?}")),
        }
    }
    for k in got.keys().filter(|k| !truth.contains_key(*k)) {
        lines.push(format!("{k:?}: not in the truth, got {:?}", got[k]));
    }
    let report = if lines.is_empty() {
        String::new()
    } else {
        let n = lines.len();
        lines.truncate(40);
        format!("{n} records differ:\n{}", lines.join("\n"))
    };
    assert_revisions_rise(&records, report);
}

/// Fails with `report` (what differs from the truth) and any break of the
/// revision rules.
fn assert_revisions_rise(records: &[serde_json::Value], mut report: String) {
    let problems = revision_problems(records);
    if !problems.is_empty() {
        report += &format!(
            "\n{} of {} records break the revision rules:\n{}",
            problems.len(),
            records.len(),
            problems[..problems.len().min(40)].join("\n")
        );
    }
    assert!(report.is_empty(), "{report}");
}

/// Where `want` and `got` differ, one line per window (at most `limit`).
pub fn differences(want: &SizedWindows, got: &SizedWindows, limit: usize) -> String {
    let mut lines = Vec::new();
    for (k, w) in want {
        match got.get(k) {
            Some(g) if g == w => {}
            Some(g) => lines.push(format!("{k:?}: want {w:?}, got {g:?}")),
            None => lines.push(format!("{k:?}: want {w:?}, missing")),
        }
    }
    for k in got.keys().filter(|k| !want.contains_key(*k)) {
        lines.push(format!("{k:?}: not in the truth, got {:?}", got[k]));
    }
    let n = lines.len();
    lines.truncate(limit);
    format!("{n} windows differ:\n{}", lines.join("\n"))
}

/// Produces `lines` round-robin over `partitions` in `slices` equal parts
/// spread over `over`, calling `at_slice(i)` before slice `i` (to kill or
/// start instances while the stream is being written).
pub fn produce_paced(
    topic: &str,
    partitions: i32,
    lines: &[Vec<u8>],
    over: Duration,
    slices: usize,
    mut at_slice: impl FnMut(usize),
) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("linger.ms", "20")
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let started = Instant::now();
    let per = lines.len().div_ceil(slices);
    for (i, slice) in lines.chunks(per).enumerate() {
        at_slice(i);
        for (j, line) in slice.iter().enumerate() {
            // Round-robin over the whole stream, not per slice.
            let partition = ((i * per + j) % partitions as usize) as i32;
            let mut rec = BaseRecord::<(), [u8]>::to(topic)
                .payload(line)
                .partition(partition);
            loop {
                match producer.send(rec) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        rec = r;
                        producer.poll(Duration::from_millis(20));
                    }
                }
            }
        }
        producer.flush(Duration::from_secs(60)).unwrap();
        let due = over.mul_f64((i + 1) as f64 / slices as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

/// The lines of a run's log at `level` (text format).
pub fn log_lines<'a>(stderr: &'a str, level: &str) -> Vec<&'a str> {
    stderr
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some(level))
        .collect()
}

/// A field's group value as the README defines it, read with serde_json:
/// a string of at most 256 bytes is itself, a number or boolean its text;
/// missing, `null`, objects, arrays and longer strings make no group.
/// (Numbers come back as serde_json writes them, which is their text for
/// the integers the generator writes.)
pub fn group_value(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) if s.len() > 256 => None,
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null | serde_json::Value::Object(_) | serde_json::Value::Array(_) => {
            None
        }
        other => Some(other.to_string()),
    }
}
