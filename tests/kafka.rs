//! `distinctly run` against a real Apache Kafka broker, started by the
//! project's own `scripts/kafka-local.sh` (the tests start it when it is not
//! running). Tests take a lock and run one at a time: one of them restarts
//! the broker.

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_distinctly");
const BOOTSTRAP: &str = "127.0.0.1:9092";

static SERIAL: Mutex<()> = Mutex::new(());

/// start_ts -> (unique_users, events)
type Windows = BTreeMap<u64, (u64, u64)>;

/// A consumed message: key, payload, headers.
type Consumed = (Option<Vec<u8>>, Vec<u8>, Vec<(String, String)>);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn script(args: &[&str]) {
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
fn broker() -> MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    script(&["start"]);
    guard
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

struct Topics {
    input: String,
    output: String,
    group: String,
}

fn topics(name: &str, partitions: u32) -> Topics {
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
fn generate(args: &[&str]) -> (Vec<Vec<u8>>, Windows) {
    let truth = std::env::temp_dir().join(unique("truth"));
    let out = Command::new(BIN)
        .arg("generate")
        .args(args)
        .arg("--truth")
        .arg(&truth)
        .output()
        .unwrap();
    assert!(out.status.success());
    let lines = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let t = records(&std::fs::read(&truth).unwrap());
    std::fs::remove_file(truth).unwrap();
    (lines, t)
}

/// start_ts -> (unique_users, events), the last record per window.
fn records(jsonl: &[u8]) -> Windows {
    let mut m = BTreeMap::new();
    for line in jsonl.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_slice(line).unwrap();
        m.insert(
            v["start_ts"].as_u64().unwrap(),
            (
                v["unique_users"].as_u64().unwrap(),
                v["events"].as_u64().unwrap(),
            ),
        );
    }
    m
}

/// Produces `lines` round-robin over `partitions` (order kept per partition).
fn produce(topic: &str, partitions: i32, lines: &[Vec<u8>]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", BOOTSTRAP)
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
fn consume_all(topic: &str) -> Vec<Consumed> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", BOOTSTRAP)
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
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while eof < parts && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| {
                                (
                                    x.key.to_string(),
                                    String::from_utf8_lossy(x.value.unwrap_or_default())
                                        .into_owned(),
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
            }
            Some(Err(KafkaError::PartitionEOF(_))) => eof += 1,
            _ => {}
        }
    }
    assert_eq!(eof, parts, "did not reach the end of {topic}");
    out
}

/// The last record per window in the output topic; checks keys on the way.
fn output_windows(topic: &str) -> Windows {
    let mut jsonl = Vec::new();
    for (key, payload, _) in consume_all(topic) {
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            key.as_deref(),
            Some(v["start_ts"].to_string().as_bytes()),
            "records are keyed by start_ts"
        );
        jsonl.extend_from_slice(&payload);
        jsonl.push(b'\n');
    }
    records(&jsonl)
}

fn service(t: &Topics, extra_env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("run")
        .args(args)
        .env("KAFKA_SERVICE_INTERNAL_HOST", BOOTSTRAP)
        .env("KAFKA_SERVICE_INPUT_TOPIC", &t.input)
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

fn drain(t: &Topics, extra_env: &[(&str, &str)]) -> Output {
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
fn terminate(child: Child) -> Output {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    child.wait_with_output().unwrap()
}

fn kill9(mut child: Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

fn wait_for_records(topic: &str, at_least: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if consume_all(topic).len() >= at_least {
            return;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!("fewer than {at_least} records in {topic}");
}

const GEN: &[&str] = &[
    "--users",
    "3000",
    "--span-seconds",
    "1500",
    "--late-share",
    "0.03",
    "--invalid-share",
    "0.01",
    "--outlier-share",
    "0.001",
    "--wrapped-share",
    "0.05",
];

#[test]
fn end_to_end_with_three_partitions_matches_the_truth() {
    let _b = broker();
    let mut args = GEN.to_vec();
    args.extend(["--events", "30000", "--seed", "21"]);
    let (lines, truth) = generate(&args);
    let t = topics("e2e", 3);
    produce(&t.input, 3, &lines);
    drain(&t, &[]);
    assert_eq!(output_windows(&t.output), truth);

    // The sketches, each from its own group into its own output topic.
    for (backend, bound) in [("roaring", 1e-4), ("hll", 4.0 * 1.04 / 128.0)] {
        let s = Topics {
            input: t.input.clone(),
            output: unique(&format!("e2e-{backend}-out")),
            group: unique(&format!("e2e-{backend}")),
        };
        script(&["topic-create", &s.output, "1", "cleanup.policy=compact"]);
        drain(&s, &[("DISTINCTLY_COUNTER", backend)]);
        let got = output_windows(&s.output);
        assert_eq!(got.len(), truth.len(), "{backend}");
        for (start, (users, events)) in &truth {
            let (est, ev) = got[start];
            assert_eq!(ev, *events, "{backend}");
            let err = (est as f64 - *users as f64).abs();
            assert!(
                err <= bound * *users as f64 + 1.0,
                "{backend} {start}: {est} vs {users}"
            );
        }
    }
}

#[test]
fn kill_9_at_several_points_loses_nothing() {
    let _b = broker();
    let mut args = GEN.to_vec();
    args.extend(["--events", "45000", "--seed", "22"]);
    let (lines, truth) = generate(&args);
    let t = topics("crash", 3);
    let third = lines.len() / 3;
    produce(&t.input, 3, &lines[..third]);
    let first = service(&t, &[], &[]).spawn().unwrap();
    wait_for_records(&t.output, 5, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(1500)); // let a commit happen
    kill9(first);
    produce(&t.input, 3, &lines[third..2 * third]);
    let second = service(&t, &[], &[]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700)); // mid-replay
    kill9(second);
    let third_run = service(&t, &[], &[]).spawn().unwrap();
    produce(&t.input, 3, &lines[2 * third..]);
    std::thread::sleep(Duration::from_millis(2500));
    kill9(third_run);
    drain(&t, &[]);
    assert_eq!(output_windows(&t.output), truth);
}

#[test]
fn sigterm_exits_cleanly_and_the_next_run_resumes() {
    let _b = broker();
    let mut args = GEN.to_vec();
    args.extend(["--events", "20000", "--seed", "23"]);
    let (lines, truth) = generate(&args);
    let t = topics("term", 2);
    let half = lines.len() / 2;
    produce(&t.input, 2, &lines[..half]);
    let child = service(&t, &[], &[]).spawn().unwrap();
    wait_for_records(&t.output, 3, Duration::from_secs(60));
    let sent = Instant::now();
    let out = terminate(child);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        sent.elapsed() < Duration::from_secs(15),
        "took {:?}",
        sent.elapsed()
    );
    produce(&t.input, 2, &lines[half..]);
    drain(&t, &[]);
    assert_eq!(output_windows(&t.output), truth);
}

#[test]
fn a_broker_restart_mid_stream_loses_nothing() {
    let _b = broker();
    let mut args = GEN.to_vec();
    args.extend(["--events", "20000", "--seed", "24"]);
    let (lines, truth) = generate(&args);
    let t = topics("restart", 3);
    let half = lines.len() / 2;
    produce(&t.input, 3, &lines[..half]);
    let child = service(&t, &[], &[]).spawn().unwrap();
    wait_for_records(&t.output, 3, Duration::from_secs(60));
    script(&["stop"]);
    std::thread::sleep(Duration::from_secs(4));
    script(&["start"]);
    produce(&t.input, 3, &lines[half..]);
    std::thread::sleep(Duration::from_secs(3));
    let out = terminate(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("broker unreachable"), "{stderr}");
    drain(&t, &[]);
    assert_eq!(output_windows(&t.output), truth);
}

#[test]
fn wrong_password_fails_fast_with_a_clear_message() {
    let _b = broker();
    let t = topics("sasl", 1);
    let sasl = [
        ("KAFKA_SERVICE_INTERNAL_HOST", "127.0.0.1:9094"),
        ("KAFKA_SERVICE_USERNAME", "distinctly"),
        ("KAFKA_SERVICE_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
    ];
    let mut wrong = sasl.to_vec();
    wrong.push(("KAFKA_SERVICE_PASSWORD", "not-the-password"));
    let started = Instant::now();
    let out = service(&t, &wrong, &["--exit-when-idle"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.to_lowercase().contains("authentication"), "{stderr}");
    assert!(
        !stderr.contains("not-the-password"),
        "password printed: {stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));

    // The right password works.
    let (lines, truth) = generate(&["--events", "2000", "--frame", "minimal", "--seed", "25"]);
    produce(&t.input, 1, &lines);
    let mut right = sasl.to_vec();
    right.push(("KAFKA_SERVICE_PASSWORD", "distinctly-secret"));
    drain(&t, &right);
    assert_eq!(output_windows(&t.output), truth);
}

#[test]
fn rejected_messages_go_to_the_dead_letter_topic_with_their_origin() {
    let _b = broker();
    let t = Topics {
        input: unique("dlq-in"),
        output: unique("dlq-out"),
        group: unique("dlq-group"),
    };
    script(&["topic-create", &t.input, "1", "max.message.bytes=12000000"]);
    script(&["topic-create", &t.output, "1", "cleanup.policy=compact"]);
    let dlq = unique("dlq");
    script(&["topic-create", &dlq, "1"]);
    let mut lines: Vec<Vec<u8>> = vec![
        br#"{"ts":1767225600,"uid":"a"}"#.to_vec(),
        b"\xff\xfe not utf-8".to_vec(),
        br#"{"ts":1767225601,"uid":"b""#.to_vec(),
        br#"{"ts":"soon","uid":"c"}"#.to_vec(),
        Vec::new(),
    ];
    lines.push(vec![b'x'; 10 << 20]); // 10 MB
    lines.push(br#"{"ts":1767225602,"uid":"a"}"#.to_vec());
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", BOOTSTRAP)
        .set("message.max.bytes", "12000000")
        .create()
        .unwrap();
    for line in &lines {
        producer
            .send(
                BaseRecord::<(), [u8]>::to(&t.input)
                    .payload(line)
                    .partition(0),
            )
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    drain(
        &t,
        &[
            ("KAFKA_SERVICE_DLQ_TOPIC", dlq.as_str()),
            ("DISTINCTLY_MAX_MESSAGE_BYTES", "1048576"),
        ],
    );
    let dead = consume_all(&dlq);
    let reasons: Vec<&str> = dead
        .iter()
        .map(|(_, _, h)| {
            h.iter()
                .find(|(k, _)| k == "distinctly.reason")
                .unwrap()
                .1
                .as_str()
        })
        .collect();
    assert_eq!(
        reasons,
        ["not_utf8", "not_json", "bad_ts", "empty", "too_large"]
    );
    for ((_, payload, headers), offset) in dead.iter().zip([1, 2, 3, 4, 5]) {
        if offset == 5 {
            // Too large: the first 64 KiB, and the original length.
            assert_eq!(payload[..], lines[5][..64 << 10]);
            let len = headers
                .iter()
                .find(|(k, _)| k == "distinctly.original.bytes");
            assert_eq!(len.unwrap().1, (10 << 20).to_string());
        } else {
            assert_eq!(payload, &lines[offset]);
        }
        let h = |k: &str| headers.iter().find(|(key, _)| key == k).unwrap().1.clone();
        assert_eq!(h("distinctly.source.topic"), t.input);
        assert_eq!(h("distinctly.source.partition"), "0");
        assert_eq!(h("distinctly.source.offset"), offset.to_string());
    }
    assert_eq!(output_windows(&t.output)[&1_767_225_600], (1, 2)); // "a" twice
}

#[test]
fn a_rebalance_mid_stream_loses_and_double_counts_nothing() {
    let _b = broker();
    let mut args = GEN.to_vec();
    args.extend(["--events", "30000", "--seed", "26"]);
    let (lines, truth) = generate(&args);
    let t = topics("rebalance", 3);
    let half = lines.len() / 2;
    produce(&t.input, 3, &lines[..half]);
    let child = service(&t, &[], &[]).spawn().unwrap();
    wait_for_records(&t.output, 3, Duration::from_secs(60));
    // Another member joins the group, takes partitions away, then leaves:
    // distinctly is revoked and assigned twice while data keeps coming.
    let intruder: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", BOOTSTRAP)
        .set("group.id", &t.group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    intruder.subscribe(&[t.input.as_str()]).unwrap();
    let joined = Instant::now();
    while joined.elapsed() < Duration::from_secs(8) {
        intruder.poll(Duration::from_millis(100)); // reads, commits nothing
    }
    produce(&t.input, 3, &lines[half..]);
    drop(intruder); // leaves the group
    std::thread::sleep(Duration::from_secs(6));
    let out = terminate(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.matches("assigned partitions").count() >= 3,
        "{stderr}"
    );
    drain(&t, &[]);
    assert_eq!(output_windows(&t.output), truth);
}
