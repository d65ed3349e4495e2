//! The Kafka Connect path: a JSON-lines file loaded by a real Kafka Connect
//! worker (standalone, FileStreamSource, JsonConverter without schemas) into a
//! real broker, counted by `distinctly run`. The worker runs the very
//! configuration files the compose stack uses (`connect/*.properties`),
//! through `scripts/kafka-connect.sh`; the broker is `scripts/kafka-local.sh`'s.
//! Also checks that `docker-compose-kafka-connect.yml` and the `Dockerfile`
//! are well-formed and wired up as documented.

mod common;

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const COMPOSE_FILE: &str = "docker-compose-kafka-connect.yml";

/// Runs one of the project's scripts (here: `kafka-connect.sh`).
fn run_script(script: &str, args: &[&str]) {
    let out = Command::new(root().join("scripts").join(script))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn consumer() -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", unique("connect-reader"))
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}

/// Sum of the high watermarks of `topic`: the number of records in it.
fn record_count(c: &BaseConsumer, topic: &str) -> i64 {
    let parts = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap()
        .topics()[0]
        .partitions()
        .len() as i32;
    (0..parts)
        .map(|p| {
            c.fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap()
                .1
        })
        .sum()
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The Connect worker; stopped (SIGTERM, then SIGKILL) when dropped, so a
/// failing assertion leaves no JVM behind.
struct Worker {
    child: Option<Child>,
    log: PathBuf,
}

impl Worker {
    fn start(dir: &Path, file: &Path, topic: &str) -> Worker {
        let log = dir.join("connect.log");
        let child = Command::new(root().join("scripts/kafka-connect.sh"))
            .arg("run") // connect/worker.properties connect/file-source.properties
            .env("CONNECT_BOOTSTRAP_SERVERS", bootstrap())
            .env("CONNECT_LISTENERS", "http://127.0.0.1:0") // any free port
            .env("CONNECT_OFFSET_FILE", dir.join("connect.offsets"))
            .env("CONNECT_EVENTS_FILE", file)
            .env("CONNECT_TOPIC", topic)
            .env("KAFKA_CONNECT_LOG_FILE", &log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start scripts/kafka-connect.sh");
        Worker {
            child: Some(child),
            log,
        }
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }

    /// SIGTERM (the script execs the JVM, so this is the worker's pid), then
    /// up to 30 s for a clean stop before SIGKILL. Returns whether it stopped
    /// cleanly.
    fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn a_file_loaded_by_kafka_connect_is_counted_exactly() {
    let _b = broker();
    // Before the clock starts: fetches the jars on a fresh machine.
    run_script("kafka-connect.sh", &["fetch"]);

    let dir = std::env::temp_dir().join(unique("distinctly-connect"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("events.jsonl");
    // ~2 KB realistic frames with late events and bit-flipped timestamps. No
    // invalid lines: FileStreamSource decodes lines as UTF-8 with replacement,
    // so a line with a stray 0xff byte would arrive repaired, and counted.
    // No pre-wrapped lines either: Connect would wrap them a second time.
    let (generated, truth) = generate(&[
        "--events",
        "20000",
        "--frame",
        "realistic",
        "--users",
        "3000",
        "--span-seconds",
        "1500",
        "--seed",
        "41",
        "--late-share",
        "0.03",
        "--outlier-share",
        "0.001",
        "--invalid-share",
        "0",
        "--wrapped-share",
        "0",
    ]);
    let lines: Vec<&str> = generated
        .iter()
        .map(|l| std::str::from_utf8(l).expect("generated lines are UTF-8"))
        .collect();
    // Newline-terminated: FileStreamSource holds back an unterminated line.
    let mut text = generated.join(&b'\n');
    text.push(b'\n');
    std::fs::write(&file, text).unwrap();
    assert_eq!(lines.len(), 20_000);
    assert!(truth.len() > 20, "{} windows", truth.len());

    let input = unique("connect-in");
    let output = unique("connect-out");
    script(&["topic-create", &input, "3"]);
    script(&["topic-create", &output, "1", "cleanup.policy=compact"]);

    // Load the file with Connect until every line is in the topic.
    let started = Instant::now();
    let mut worker = Worker::start(&dir, &file, &input);
    let c = consumer();
    let deadline = started + Duration::from_secs(120);
    loop {
        if let Some(status) = worker.exited() {
            panic!(
                "Kafka Connect exited ({status}):\n{}",
                log_tail(&worker.log)
            );
        }
        let n = record_count(&c, &input);
        assert!(
            n <= lines.len() as i64,
            "{n} records for {} lines",
            lines.len()
        );
        if n == lines.len() as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {n} of {} lines loaded after 120 s:\n{}",
            lines.len(),
            log_tail(&worker.log)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!(
        "Connect loaded {} lines in {:?}",
        lines.len(),
        started.elapsed()
    );
    std::thread::sleep(Duration::from_millis(500)); // nothing more arrives
    assert_eq!(record_count(&c, &input), lines.len() as i64);
    assert!(
        worker.stop(),
        "Kafka Connect did not stop cleanly on SIGTERM:\n{}",
        log_tail(&worker.log)
    );

    // What Connect wrote: every line once, as a JSON string (JsonConverter,
    // schemas disabled), without a key; spread over the partitions.
    let mut wrapped = Vec::with_capacity(lines.len());
    for (key, payload, _) in consume_all(&input) {
        assert_eq!(key, None);
        assert_eq!(payload.first(), Some(&b'"'), "not JSON-string-wrapped");
        match serde_json::from_slice(&payload).unwrap() {
            serde_json::Value::String(s) => wrapped.push(s),
            other => panic!("not a JSON string: {other}"),
        }
    }
    wrapped.sort_unstable();
    let mut expected: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    expected.sort_unstable();
    assert!(
        wrapped == expected,
        "the topic does not hold the file's lines"
    );
    for p in 0..3 {
        let (lo, hi) = c
            .fetch_watermarks(&input, p, Duration::from_secs(10))
            .unwrap();
        assert!(hi > lo, "partition {p} got no records");
    }

    // distinctly counts them; every window must equal the truth exactly.
    let out = Command::new(BIN)
        .args(["run", "--exit-when-idle"])
        .env("KAFKA_SERVICE_INTERNAL_HOST", bootstrap())
        .env("KAFKA_SERVICE_INPUT_TOPIC", &input)
        .env("KAFKA_SERVICE_OUTPUT_TOPIC", &output)
        .env("KAFKA_SERVICE_GROUP_ID", unique("connect-group"))
        .env("DISTINCTLY_COUNTER", "exact")
        .env("DISTINCTLY_METRICS_ADDR", "") // no metrics listener
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "run failed: {stderr}");
    let mut jsonl = Vec::new();
    for (key, payload, _) in consume_all(&output) {
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(key.as_deref(), Some(v["start_ts"].to_string().as_bytes()));
        assert_eq!(v["counter"], "exact");
        jsonl.extend_from_slice(&payload);
        jsonl.push(b'\n');
    }
    assert_eq!(records(&jsonl), truth);
    std::fs::remove_dir_all(&dir).unwrap();
    // The input is ~40 MB; the broker keeps data for ever.
    script(&[
        "tool",
        "org.apache.kafka.tools.TopicCommand",
        "--bootstrap-server",
        &bootstrap(),
        "--delete",
        "--topic",
        &format!("{input}|{output}"),
    ]);
}

/// The blocks of a normalized YAML mapping (as `docker-compose config`
/// prints it) at `indent`: key -> the lines below it.
fn yaml_blocks<'a>(lines: &[&'a str], indent: usize) -> BTreeMap<String, Vec<&'a str>> {
    let mut blocks: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in lines {
        let depth = line.len() - line.trim_start().len();
        if depth == indent && !line.trim_start().starts_with('-') && line.ends_with(':') {
            let key = line.trim().trim_end_matches(':').to_string();
            blocks.insert(key.clone(), Vec::new());
            current = Some(key);
        } else if depth <= indent && !line.trim().is_empty() {
            current = None;
        } else if let Some(k) = &current {
            blocks.get_mut(k).unwrap().push(line);
        }
    }
    blocks
}

#[test]
fn compose_file_is_valid() {
    let compose = |args: &[&str]| {
        Command::new("docker-compose")
            .current_dir(root())
            .args(["-f", COMPOSE_FILE])
            .args(args)
            .stdin(Stdio::null())
            .output()
    };
    let out = match compose(&["config", "-q"]) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os("CI").is_none(),
                "docker-compose is not installed (.ci/run installs it)"
            );
            eprintln!("NOTICE: docker-compose not installed; skipping compose_file_is_valid");
            return;
        }
        other => other.unwrap(),
    };
    assert!(
        out.status.success(),
        "docker-compose config -q: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The normalized configuration.
    let out = compose(&["config"]).unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let top = yaml_blocks(&lines, 0);
    let services = yaml_blocks(&top["services"], 2);
    let names: Vec<&str> = services.keys().map(String::as_str).collect();
    for name in [
        "kafka",
        "topics",
        "events-file",
        "connect",
        "distinctly",
        "prometheus",
        "grafana",
    ] {
        assert!(names.contains(&name), "service {name} missing: {names:?}");
    }
    let service = |name: &str| services[name].join("\n");
    let has = |name: &str, needle: &str| {
        assert!(
            service(name).contains(needle),
            "service {name} lacks {needle:?}:\n{}",
            service(name)
        )
    };
    // distinctly: built from this repository's Dockerfile, wired to Kafka.
    has("distinctly", "build:");
    has("distinctly", &format!("context: {}", root().display()));
    assert!(
        services["distinctly"]
            .iter()
            .any(|l| l.trim() == "dockerfile: Dockerfile"),
        "distinctly is not built from ./Dockerfile"
    );
    has("distinctly", "KAFKA_SERVICE_INTERNAL_HOST: kafka:9092");
    has("distinctly", "KAFKA_SERVICE_INPUT_TOPIC: events");
    has("distinctly", "KAFKA_SERVICE_OUTPUT_TOPIC: uniques");
    has("distinctly", "DISTINCTLY_METRICS_ADDR: 0.0.0.0:9464");
    has("distinctly", "condition: service_completed_successfully");
    // Kafka: KRaft, healthy before anything uses it.
    has("kafka", "KAFKA_PROCESS_ROLES: broker,controller");
    has("kafka", "healthcheck:");
    has("topics", "condition: service_healthy");
    has("topics", "cleanup.policy=compact");
    // Bind mounts, checked as source and target (docker-compose 1.x prints
    // `source:target:ro`, 2.x a mapping with `source:` and `target:`).
    let mount = |name: &str, source: &Path, target: &str| {
        assert!(
            source.exists(),
            "{name} mounts {}, which is missing",
            source.display()
        );
        has(name, &source.display().to_string());
        has(name, target);
    };
    // Connect: the repository's worker and connector files, JSON-lines input.
    let connect_dir = root().join("connect");
    mount("connect", &connect_dir, "/etc/distinctly/connect");
    has("connect", "connect-standalone.sh");
    has("connect", "CONNECT_BOOTSTRAP_SERVERS: kafka:9092");
    has("connect", "CONNECT_TOPIC: events");
    mount(
        "events-file",
        &root().join("data/sample.jsonl.gz"),
        "/input/events",
    );
    for f in ["worker.properties", "file-source.properties"] {
        assert!(connect_dir.join(f).is_file(), "connect/{f} missing");
    }
    let worker = std::fs::read_to_string(connect_dir.join("worker.properties")).unwrap();
    assert!(worker.contains("value.converter=org.apache.kafka.connect.json.JsonConverter"));
    assert!(worker.contains("value.converter.schemas.enable=false"));
    // Prometheus and Grafana: the dashboards/ files, at the documented paths.
    let dash = root().join("dashboards");
    mount(
        "prometheus",
        &dash.join("prometheus.yml"),
        "/etc/prometheus/prometheus.yml",
    );
    mount(
        "prometheus",
        &dash.join("alerts.yml"),
        "/etc/prometheus/alerts.yml",
    );
    mount(
        "grafana",
        &dash.join("grafana/provisioning"),
        "/etc/grafana/provisioning",
    );
    mount(
        "grafana",
        &dash.join("distinctly.json"),
        "/var/lib/grafana/dashboards/distinctly.json",
    );
    has("grafana", "GF_AUTH_ANONYMOUS_ENABLED");

    // The Dockerfile: a build stage and a runtime stage; the runtime stage
    // runs as a non-root user.
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let instructions: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let froms: Vec<usize> = (0..instructions.len())
        .filter(|&i| instructions[i].to_ascii_uppercase().starts_with("FROM "))
        .collect();
    assert_eq!(froms.len(), 2, "expected two stages: {froms:?}");
    let last_stage = &instructions[froms[1]..];
    let user = last_stage
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("no USER in the final stage");
    let user = user.trim().split(':').next().unwrap();
    assert!(user != "root" && user != "0", "runs as {user}");
    assert!(last_stage.contains(&r#"ENTRYPOINT ["distinctly"]"#));
    assert!(last_stage.contains(&r#"CMD ["run"]"#));
    assert!(last_stage.contains(&"EXPOSE 9464"));
    assert!(
        last_stage.iter().any(|l| l.contains("--from=build")),
        "the runtime stage copies the binary from the build stage"
    );
}
