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
    let mut f = loaded_by_connect(events_file());
    check_nothing_more_arrives(&f);
    check_the_worker_stops_cleanly(&mut f);
    check_the_topic_holds_every_line_once_as_a_json_string(&f);
    check_every_partition_got_records(&f);
    check_distinctly_counts_every_window_exactly(&f);
    f.clean_up();
}

/// The generated file, its lines and its truth.
struct EventsFile {
    dir: PathBuf,
    file: PathBuf,
    lines: Vec<String>,
    truth: Windows,
}

/// ~2 KB realistic frames with late events and bit-flipped timestamps. No
/// invalid lines: FileStreamSource decodes lines as UTF-8 with replacement,
/// so a line with a stray 0xff byte would arrive repaired, and counted.
/// No pre-wrapped lines either: Connect would wrap them a second time.
fn events_file() -> EventsFile {
    let dir = scratch_dir("distinctly-connect");
    let file = dir.join("events.jsonl");
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
    let lines: Vec<String> = generated
        .iter()
        .map(|l| {
            std::str::from_utf8(l)
                .expect("generated lines are UTF-8")
                .to_string()
        })
        .collect();
    // Newline-terminated: FileStreamSource holds back an unterminated line.
    let mut text = generated.join(&b'\n');
    text.push(b'\n');
    std::fs::write(&file, text).unwrap();
    assert_eq!(lines.len(), 20_000);
    assert!(truth.len() > 20, "{} windows", truth.len());
    EventsFile {
        dir,
        file,
        lines,
        truth,
    }
}

/// The file loaded into a 3-partition input topic by a running Connect
/// worker, and an empty output topic.
struct Loaded {
    events: EventsFile,
    input: String,
    output: String,
    worker: Worker,
    consumer: BaseConsumer,
}

/// Starts the worker and waits until every line is in the input topic
/// (fails if it exits, overshoots, or takes more than 120 s).
fn loaded_by_connect(events: EventsFile) -> Loaded {
    let input = unique("connect-in");
    let output = unique("connect-out");
    script(&["topic-create", &input, "3"]);
    script(&["topic-create", &output, "1", "cleanup.policy=compact"]);

    let started = Instant::now();
    let mut worker = Worker::start(&events.dir, &events.file, &input);
    let c = consumer();
    let want = events.lines.len() as i64;
    let deadline = started + Duration::from_secs(120);
    loop {
        if let Some(status) = worker.exited() {
            panic!(
                "Kafka Connect exited ({status}):\n{}",
                log_tail(&worker.log)
            );
        }
        let n = record_count(&c, &input);
        assert!(n <= want, "{n} records for {want} lines");
        if n == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {n} of {want} lines loaded after 120 s:\n{}",
            log_tail(&worker.log)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!("Connect loaded {want} lines in {:?}", started.elapsed());
    Loaded {
        events,
        input,
        output,
        worker,
        consumer: c,
    }
}

fn check_nothing_more_arrives(f: &Loaded) {
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        record_count(&f.consumer, &f.input),
        f.events.lines.len() as i64
    );
}

fn check_the_worker_stops_cleanly(f: &mut Loaded) {
    assert!(
        f.worker.stop(),
        "Kafka Connect did not stop cleanly on SIGTERM:\n{}",
        log_tail(&f.worker.log)
    );
}

/// What Connect wrote: every line once, as a JSON string (JsonConverter,
/// schemas disabled), without a key.
fn check_the_topic_holds_every_line_once_as_a_json_string(f: &Loaded) {
    let mut wrapped = Vec::with_capacity(f.events.lines.len());
    for (key, payload, _) in consume_all(&f.input) {
        assert_eq!(key, None);
        assert_eq!(payload.first(), Some(&b'"'), "not JSON-string-wrapped");
        match serde_json::from_slice(&payload).unwrap() {
            serde_json::Value::String(s) => wrapped.push(s),
            other => panic!("not a JSON string: {other}"),
        }
    }
    wrapped.sort_unstable();
    let mut expected = f.events.lines.clone();
    expected.sort_unstable();
    assert!(
        wrapped == expected,
        "the topic does not hold the file's lines"
    );
}

/// Connect spread the lines over the partitions.
fn check_every_partition_got_records(f: &Loaded) {
    for p in 0..3 {
        let (lo, hi) = f
            .consumer
            .fetch_watermarks(&f.input, p, Duration::from_secs(10))
            .unwrap();
        assert!(hi > lo, "partition {p} got no records");
    }
}

/// `distinctly run` counts the topic; every window must equal the truth
/// exactly, and each window's revisions only grow (one run, in order).
fn check_distinctly_counts_every_window_exactly(f: &Loaded) {
    let out = Command::new(BIN)
        .args(["run", "--exit-when-idle"])
        .env("KAFKA_SERVICE_INTERNAL_HOST", bootstrap())
        .env("KAFKA_SERVICE_INPUT_TOPIC", &f.input)
        .env("KAFKA_SERVICE_OUTPUT_TOPIC", &f.output)
        .env("KAFKA_SERVICE_GROUP_ID", unique("connect-group"))
        .env("DISTINCTLY_COUNTER", "exact")
        .env("DISTINCTLY_METRICS_ADDR", "") // no metrics listener
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "run failed: {stderr}");
    let records = output_records(&f.output); // keys checked
    for v in &records {
        assert_eq!(v["counter"], "exact");
    }
    check_revisions_grow(&records);
    assert_eq!(last_per_window(&records), f.events.truth);
}

impl Loaded {
    /// Removes the files and the topics (the input is ~40 MB; the broker
    /// keeps data for ever).
    fn clean_up(self) {
        std::fs::remove_dir_all(&self.events.dir).unwrap();
        script(&[
            "tool",
            "org.apache.kafka.tools.TopicCommand",
            "--bootstrap-server",
            &bootstrap(),
            "--delete",
            "--topic",
            &format!("{}|{}", self.input, self.output),
        ]);
    }
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
    let Some(c) = compose_config() else {
        return;
    };
    check_every_service_is_there(&c);
    check_distinctly_is_built_here_and_wired_to_kafka(&c);
    check_kafka_is_kraft_and_healthy_before_use(&c);
    check_connect_runs_the_repository_files(&c);
    check_prometheus_and_grafana_get_the_dashboards(&c);
    check_the_dockerfile_builds_then_runs_as_non_root();
}

/// `docker-compose config` of the compose file: its services' blocks.
struct Compose {
    /// service name -> the lines of its block.
    services: BTreeMap<String, Vec<String>>,
}

/// Validates the compose file (`config -q`) and reads it normalized
/// (`config`); `None` with a notice when docker-compose is not installed
/// (fails under CI).
fn compose_config() -> Option<Compose> {
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
            return None;
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
    let services = yaml_blocks(&top["services"], 2)
        .into_iter()
        .map(|(name, block)| (name, block.into_iter().map(String::from).collect()))
        .collect();
    Some(Compose { services })
}

impl Compose {
    fn service(&self, name: &str) -> String {
        self.services[name].join("\n")
    }

    fn has(&self, name: &str, needle: &str) {
        assert!(
            self.service(name).contains(needle),
            "service {name} lacks {needle:?}:\n{}",
            self.service(name)
        )
    }

    /// A bind mount, checked as source and target (docker-compose 1.x
    /// prints `source:target:ro`, 2.x a mapping with `source:` and
    /// `target:`); the source must exist.
    fn mounts(&self, name: &str, source: &Path, target: &str) {
        assert!(
            source.exists(),
            "{name} mounts {}, which is missing",
            source.display()
        );
        self.has(name, &source.display().to_string());
        self.has(name, target);
    }
}

fn check_every_service_is_there(c: &Compose) {
    let names: Vec<&str> = c.services.keys().map(String::as_str).collect();
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
}

/// distinctly: built from this repository's Dockerfile, wired to Kafka.
fn check_distinctly_is_built_here_and_wired_to_kafka(c: &Compose) {
    c.has("distinctly", "build:");
    c.has("distinctly", &format!("context: {}", root().display()));
    assert!(
        c.services["distinctly"]
            .iter()
            .any(|l| l.trim() == "dockerfile: Dockerfile"),
        "distinctly is not built from ./Dockerfile"
    );
    c.has("distinctly", "KAFKA_SERVICE_INTERNAL_HOST: kafka:9092");
    c.has("distinctly", "KAFKA_SERVICE_INPUT_TOPIC: events");
    c.has("distinctly", "KAFKA_SERVICE_OUTPUT_TOPIC: uniques");
    c.has("distinctly", "DISTINCTLY_METRICS_ADDR: 0.0.0.0:9464");
    c.has("distinctly", "condition: service_completed_successfully");
    // Healthy = ready, asked by the binary itself (no curl in the image).
    c.has("distinctly", "healthcheck:");
    c.has("distinctly", "- healthcheck");
    c.has("distinctly", "- --ready");
}

/// Kafka: KRaft, healthy before anything uses it.
fn check_kafka_is_kraft_and_healthy_before_use(c: &Compose) {
    c.has("kafka", "KAFKA_PROCESS_ROLES: broker,controller");
    c.has("kafka", "healthcheck:");
    c.has("topics", "condition: service_healthy");
    c.has("topics", "cleanup.policy=compact");
}

/// Connect: the repository's worker and connector files, JSON-lines input.
fn check_connect_runs_the_repository_files(c: &Compose) {
    let connect_dir = root().join("connect");
    c.mounts("connect", &connect_dir, "/etc/distinctly/connect");
    c.has("connect", "connect-standalone.sh");
    c.has("connect", "CONNECT_BOOTSTRAP_SERVERS: kafka:9092");
    c.has("connect", "CONNECT_TOPIC: events");
    c.mounts(
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
}

/// Prometheus and Grafana: the dashboards/ files, at the documented paths.
fn check_prometheus_and_grafana_get_the_dashboards(c: &Compose) {
    let dash = root().join("dashboards");
    c.mounts(
        "prometheus",
        &dash.join("prometheus.yml"),
        "/etc/prometheus/prometheus.yml",
    );
    c.mounts(
        "prometheus",
        &dash.join("alerts.yml"),
        "/etc/prometheus/alerts.yml",
    );
    c.mounts(
        "grafana",
        &dash.join("grafana/provisioning"),
        "/etc/grafana/provisioning",
    );
    c.mounts(
        "grafana",
        &dash.join("distinctly.json"),
        "/var/lib/grafana/dashboards/distinctly.json",
    );
    c.has("grafana", "GF_AUTH_ANONYMOUS_ENABLED");
}

/// The Dockerfile: a build stage and a runtime stage; the runtime stage
/// runs as a non-root user.
fn check_the_dockerfile_builds_then_runs_as_non_root() {
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
    // The health check runs the binary (`distinctly healthcheck`), which
    // tests/kafka.rs exercises against a live /healthz and /readyz.
    let health = last_stage
        .iter()
        .position(|l| l.starts_with("HEALTHCHECK "))
        .expect("no HEALTHCHECK in the final stage");
    assert!(
        last_stage[health..]
            .iter()
            .take(2)
            .any(|l| l.contains(r#"CMD ["distinctly", "healthcheck"]"#)),
        "{:?}",
        &last_stage[health..]
    );
    assert!(
        last_stage.iter().any(|l| l.contains("--from=build")),
        "the runtime stage copies the binary from the build stage"
    );
}
