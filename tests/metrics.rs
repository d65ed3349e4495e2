//! The Prometheus metrics and the Grafana dashboard, for real: a real
//! `distinctly run` under load from the local broker, scraped by a real
//! Prometheus (Debian's `prometheus` package), and every panel's PromQL
//! evaluated through Prometheus' HTTP API. Under CI (`CI` set) a missing
//! `prometheus`/`promtool` fails the test; elsewhere it is skipped with a
//! notice.

mod common;

use common::*;
use distinctly::metrics::names;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Stand-ins for Grafana's variables when a panel's query is evaluated.
const RATE_INTERVAL: &str = "10s";
const DATASOURCE_UID: &str = "distinctly-prometheus";

fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is not installed (.ci/run installs Debian's prometheus package)"
        );
        eprintln!("SKIPPED: {name} not installed (apt-get install prometheus)");
    }
    found
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `name{labels}` -> value, from the text exposition format.
fn parse_scrape(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The value of the one series of `name` whose labels include `labels`
/// (`k="v"` strings).
fn value(scrape: &HashMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    let matches: Vec<f64> = scrape
        .iter()
        .filter(|(series, _)| {
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            n == name && labels.iter().all(|l| rest.contains(l))
        })
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(
        matches.len(),
        1,
        "expected one series {name}{labels:?} in the scrape"
    );
    matches[0]
}

fn dashboard() -> Value {
    let path = root().join("dashboards/distinctly.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap()).expect("dashboard JSON parses")
}

/// Every PromQL expression of the dashboard: (panel title, expr).
fn panel_queries(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                p["title"].as_str().unwrap().to_string(),
                t["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

/// Metric names used by an expression (histogram series suffixes removed).
fn metric_names_in(expr: &str) -> Vec<String> {
    let bytes = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(pos) = expr[i..].find("distinctly_") {
        let start = i + pos;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let name = &expr[start..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|b| names::ALL.contains(b))
            .unwrap_or(name);
        out.push(base.to_string());
        i = end;
    }
    out
}

#[test]
fn dashboard_and_provisioning_are_well_formed() {
    let d = dashboard();
    assert_eq!(d["uid"], "distinctly");
    assert!(d["schemaVersion"].as_u64().unwrap() >= 36);
    check_panel_ids_are_unique(&d);
    check_panels_fit_the_grid(&d);
    check_queries_use_the_datasource_and_exported_metrics(&d);
    check_every_needed_panel_is_there(&d);
    check_provisioning_matches_the_panels();
    check_every_metric_is_documented();
    check_promtool_accepts_the_configuration_and_rules();
}

/// The dashboard's panels, rows included.
fn panels(d: &Value) -> &Vec<Value> {
    d["panels"].as_array().unwrap()
}

fn title(p: &Value) -> &str {
    p["title"].as_str().unwrap()
}

fn check_panel_ids_are_unique(d: &Value) {
    let mut ids = HashSet::new();
    for p in panels(d) {
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "duplicate id: {}",
            title(p)
        );
    }
}

/// Every panel (rows too) has a place on Grafana's 24-column grid.
fn check_panels_fit_the_grid(d: &Value) {
    for p in panels(d) {
        let title = title(p);
        let g = &p["gridPos"];
        let (x, w, h) = (
            g["x"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(x + w <= 24 && w > 0 && h > 0, "gridPos of {title}");
        assert!(g["y"].is_u64(), "gridPos.y of {title}");
    }
}

/// Every panel but a row queries the provisioned datasource, with distinct
/// refIds, for metrics that distinctly exports.
fn check_queries_use_the_datasource_and_exported_metrics(d: &Value) {
    for p in panels(d).iter().filter(|p| p["type"] != "row") {
        let title = title(p);
        assert_eq!(p["datasource"]["uid"], DATASOURCE_UID, "{title}");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title} has no query");
        let mut refs = HashSet::new();
        for t in targets {
            assert!(refs.insert(t["refId"].as_str().unwrap()), "{title}: refId");
            assert_eq!(t["datasource"]["uid"], DATASOURCE_UID, "{title}");
            for name in metric_names_in(t["expr"].as_str().unwrap()) {
                assert!(
                    names::ALL.contains(&name.as_str()),
                    "{title} uses {name}, which distinctly does not export"
                );
            }
        }
    }
}

fn check_every_needed_panel_is_there(d: &Value) {
    let titles: Vec<String> = panels(d).iter().map(|p| title(p).to_lowercase()).collect();
    for needed in [
        "throughput",
        "unique users per window",
        "rejections",
        "late events",
        "counter memory vs resident memory",
        "consumer lag",
        "event-time delay",
        "processing latency",
        "delivery latency",
        "groups held",
        "group overflow",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(needed)),
            "no panel for {needed}"
        );
    }
}

/// Provisioning: the datasource has the uid the panels use, the provider
/// reads the folder the compose file mounts the dashboard into.
fn check_provisioning_matches_the_panels() {
    let prov = root().join("dashboards/grafana/provisioning");
    let ds = std::fs::read_to_string(prov.join("datasources/prometheus.yml")).unwrap();
    assert!(ds.contains(&format!("uid: {DATASOURCE_UID}")), "{ds}");
    assert!(ds.contains("type: prometheus"));
    let dp = std::fs::read_to_string(prov.join("dashboards/distinctly.yml")).unwrap();
    assert!(dp.contains("path: /var/lib/grafana/dashboards"), "{dp}");
}

/// Every exported metric is documented in docs/metrics.md.
fn check_every_metric_is_documented() {
    let doc = std::fs::read_to_string(root().join("docs/metrics.md")).unwrap();
    for name in names::ALL {
        assert!(
            doc.contains(&format!("`{name}`")),
            "{name} not in docs/metrics.md"
        );
    }
}

/// Prometheus' own checks of the shipped configuration and rules (skipped
/// with a notice without promtool, except under CI).
fn check_promtool_accepts_the_configuration_and_rules() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    for args in [
        ["check", "rules", "dashboards/alerts.yml"],
        ["check", "config", "dashboards/prometheus.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(args)
            .current_dir(root())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A child process, killed (SIGKILL) when dropped so that a failing
/// assertion leaves nothing running; [`Killed::into_inner`] to stop it
/// otherwise.
struct Killed(Option<Child>);

impl Killed {
    fn into_inner(mut self) -> Child {
        self.0.take().unwrap()
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_prometheus(bin: &Path, scrape: &str, dir: &Path) -> (Killed, String) {
    let web = format!("127.0.0.1:{}", free_port());
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: distinctly\n    static_configs:\n      \
             - targets: [\"{scrape}\"]\n",
            root().join("dashboards/alerts.yml").display()
        ),
    )
    .unwrap();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .spawn()
        .expect("start prometheus");
    let child = Killed(Some(child));
    wait_until("prometheus to be ready", Duration::from_secs(60), || {
        matches!(http_get(&web, "/-/ready"), Ok((200, _)))
    });
    (child, web)
}

/// A range query over `[start, end]`, as Grafana runs it: the series, with
/// their values.
fn query_range(web: &str, expr: &str, start: f64, end: f64) -> Vec<Value> {
    let path = format!(
        "/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step=1",
        urlencode(expr)
    );
    let (status, body) = http_get(web, &path).unwrap();
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert_eq!(
        (status, &v["status"]),
        (200, &Value::from("success")),
        "{expr}: {body}"
    );
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_live_run_scraped_by_prometheus_fills_every_panel() {
    let (Some(prometheus), Some(promtool)) = (tool("prometheus"), tool("promtool")) else {
        return;
    };
    let _b = broker();
    let f = live_run(&prometheus);
    check_the_scrape_passes_promtool(&f, &promtool);
    check_messages_bytes_and_events_are_the_runs(&f);
    check_every_window_is_emitted_once(&f);
    check_build_info_and_memory(&f);
    check_the_consumer_caught_up(&f);
    check_rejections_by_reason_are_the_decoders(&f);
    check_produced_records_match_the_topics(&f);
    check_prometheus_scraped_and_loaded_the_rules(&f);
    check_every_panel_has_data(&f);
    check_a_clean_stop(f);
}

/// A `distinctly run` (3 partitions, a dead-letter topic) that has read a
/// generated load while a Prometheus scraped it, and what it exposed then.
struct LiveRun {
    lines: Vec<Vec<u8>>,
    truth: Windows,
    t: Topics,
    dlq: String,
    dir: PathBuf,
    run: Killed,
    prometheus: Killed,
    /// Prometheus' web address.
    web: String,
    /// When the load started and (a few scrapes after) ended, Unix seconds.
    load_start: f64,
    load_end: f64,
    /// `/metrics` once every message was read, raw and parsed.
    body: String,
    scrape: HashMap<String, f64>,
    /// `count --summary json` of the same lines.
    count_summary: Value,
}

fn live_run(prometheus: &Path) -> LiveRun {
    let (lines, truth) = generate(&[
        "--events",
        "24000",
        "--seed",
        "33",
        "--users",
        "3000",
        "--span-seconds",
        "1200",
        "--late-share",
        "0.03",
        "--invalid-share",
        "0.01",
        "--wrapped-share",
        "0.05",
    ]);
    let t = topics("metrics", 3);
    let dlq = unique("metrics-dlq");
    script(&["topic-create", &dlq, "1"]);
    let dir = scratch_dir("metrics-test");
    let (run, scrape_addr) = start_service(&t, &dlq, &dir);
    let (prometheus, web) = start_prometheus(prometheus, &scrape_addr, &dir);
    let (load_start, load_end) = load(&t, &lines, &scrape_addr);
    let (_, body) = http_get(&scrape_addr, "/metrics").unwrap();
    let scrape = parse_scrape(&body);
    let count_summary = count_summary(&lines, &dir);
    LiveRun {
        lines,
        truth,
        t,
        dlq,
        dir,
        run,
        prometheus,
        web,
        load_start,
        load_end,
        body,
        scrape,
        count_summary,
    }
}

/// `distinctly run` with its metrics on a free port, once `/metrics` answers.
fn start_service(t: &Topics, dlq: &str, dir: &Path) -> (Killed, String) {
    let scrape = format!("127.0.0.1:{}", free_port());
    let run = service(
        t,
        &[
            ("DISTINCTLY_METRICS_ADDR", &scrape),
            ("KAFKA_SERVICE_DLQ_TOPIC", dlq),
            ("DISTINCTLY_IDLE_PARTITION_SECONDS", "3"),
            // Realistic frames have a root `country` about half of the time.
            ("DISTINCTLY_GROUP_BY", "country,/device/type"),
            // Lag gauges every second instead of every 5 s.
            ("DISTINCTLY_RDKAFKA_CONSUMER_STATISTICS_INTERVAL_MS", "1000"),
        ],
        &[],
    )
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(dir.join("distinctly.log")).unwrap())
    .spawn()
    .expect("start distinctly run");
    let run = Killed(Some(run));
    wait_until("distinctly's /metrics", Duration::from_secs(30), || {
        matches!(http_get(&scrape, "/metrics"), Ok((200, _)))
    });
    (run, scrape)
}

/// Produces the lines over ~12 s, so windows close, records are delivered
/// and every rate has points while Prometheus scrapes; waits until every
/// message is read, and the last windows are flushed (idle partitions, 3 s)
/// and scraped. Returns the start and the end of the load.
fn load(t: &Topics, lines: &[Vec<u8>], scrape: &str) -> (f64, f64) {
    let load_start = now_unix();
    for chunk in lines.chunks(2000) {
        produce(&t.input, 3, chunk);
        std::thread::sleep(Duration::from_millis(700));
    }
    let messages = lines.len() as f64;
    wait_until("every message read", Duration::from_secs(90), || {
        http_get(scrape, "/metrics")
            .map(|(_, body)| parse_scrape(&body).get(names::MESSAGES).copied() == Some(messages))
            .unwrap_or(false)
    });
    // Idle partitions flush the last windows after 3 s; a few more scrapes.
    std::thread::sleep(Duration::from_secs(6));
    (load_start, now_unix())
}

/// What `count --summary json` finds in the same lines.
fn count_summary(lines: &[Vec<u8>], dir: &Path) -> Value {
    let input = dir.join("input.jsonl");
    std::fs::write(&input, lines.join(&b'\n')).unwrap();
    let counted = Command::new(BIN)
        .args(["count", "--summary", "json"])
        .arg(&input)
        .output()
        .unwrap();
    serde_json::from_slice(&counted.stderr).unwrap()
}

/// The live scrape passes Prometheus' own linter.
fn check_the_scrape_passes_promtool(f: &LiveRun, promtool: &Path) {
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(f.body.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The values are the run's real numbers: messages and bytes read, events
/// counted (late ones corrected, none dropped) as in the truth.
fn check_messages_bytes_and_events_are_the_runs(f: &LiveRun) {
    let m = &f.scrape;
    let bytes: usize = f.lines.iter().map(Vec::len).sum();
    assert_eq!(value(m, names::MESSAGES, &[]), f.lines.len() as f64);
    assert_eq!(value(m, names::BYTES, &[]), bytes as f64);
    let truth_events: u64 = f.truth.values().map(|&(_, e)| e).sum();
    let outcome = |o: &str| value(m, names::EVENTS, &[&format!("outcome=\"{o}\"")]);
    assert_eq!(
        outcome("counted") + outcome("late_corrected"),
        truth_events as f64
    );
    assert_eq!(outcome("late_dropped"), 0.0);
}

fn check_every_window_is_emitted_once(f: &LiveRun) {
    let m = &f.scrape;
    assert_eq!(
        value(m, names::WINDOWS_EMITTED, &[]),
        f.truth.len() as f64,
        "every window emitted once"
    );
    let (&last_start, &(last_unique, _)) = f.truth.iter().next_back().unwrap();
    assert_eq!(value(m, names::LAST_WINDOW_START, &[]), last_start as f64);
    assert_eq!(value(m, names::LAST_WINDOW_UNIQUE, &[]), last_unique as f64);
}

fn check_build_info_and_memory(f: &LiveRun) {
    let m = &f.scrape;
    assert_eq!(
        value(
            m,
            names::BUILD_INFO,
            &["counter=\"exact\"", "backend=\"exact\""]
        ),
        1.0
    );
    let heap = value(m, names::COUNTER_HEAP, &[]);
    let rss = value(m, names::RESIDENT_MEMORY, &[]);
    assert!(heap > 0.0 && rss > heap, "heap {heap}, rss {rss}");
}

/// No lag on any partition, all three assigned, output not paused.
fn check_the_consumer_caught_up(f: &LiveRun) {
    let m = &f.scrape;
    let input = format!("topic=\"{}\"", f.t.input);
    for p in 0..3 {
        let part = format!("partition=\"{p}\"");
        assert_eq!(
            value(m, names::CONSUMER_LAG, &[&input, &part]),
            0.0,
            "{part}"
        );
    }
    assert_eq!(value(m, names::ASSIGNED_PARTITIONS, &[]), 3.0);
    assert_eq!(value(m, names::OUTPUT_PAUSED, &[]), 0.0);
}

/// The decoder's rejections: (reason, scraped, `count`'s) for every reason
/// `count` found in the same lines, except the time guard's
/// `ts_out_of_range` (it depends on how events are spread over partitions).
fn decoder_rejections(f: &LiveRun) -> Vec<(String, f64, f64)> {
    f.count_summary["rejected"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(reason, _)| *reason != "ts_out_of_range")
        .map(|(reason, n)| {
            let got = value(
                &f.scrape,
                names::EVENTS_REJECTED,
                &[&format!("reason=\"{reason}\"")],
            );
            (reason.clone(), got, n.as_f64().unwrap())
        })
        .collect()
}

/// Rejections by reason are the decoder's, the same as `count` finds.
fn check_rejections_by_reason_are_the_decoders(f: &LiveRun) {
    let mut total = 0.0;
    for (reason, got, want) in decoder_rejections(f) {
        assert_eq!(got, want, "{reason}");
        total += got;
    }
    assert!(total > 0.0);
}

/// Produced records and their delivery latencies match the topics: the
/// output (keyed by window, revisions growing: one run, one partition) and
/// the dead letters (one per decoder rejection).
fn check_produced_records_match_the_topics(f: &LiveRun) {
    let m = &f.scrape;
    let output = output_records(&f.t.output);
    check_revisions_grow(&output);
    let output_records = output.len() as f64;
    let dlq_records = consume_all(&f.dlq).len() as f64;
    assert_eq!(
        value(m, names::RECORDS_PRODUCED, &["topic=\"output\""]),
        output_records
    );
    let rejected: f64 = decoder_rejections(f).iter().map(|(_, got, _)| got).sum();
    assert_eq!(dlq_records, rejected);
    assert_eq!(
        value(m, names::RECORDS_PRODUCED, &["topic=\"dead_letter\""]),
        dlq_records
    );
    let delivered = |topic: &str| {
        value(
            m,
            &format!("{}_count", names::DELIVERY_LATENCY),
            &[&format!("topic=\"{topic}\"")],
        )
    };
    assert_eq!(delivered("output"), output_records);
    assert_eq!(delivered("dead_letter"), dlq_records);
}

/// Prometheus scraped the run (target up) and loaded the alerting rules.
fn check_prometheus_scraped_and_loaded_the_rules(f: &LiveRun) {
    let (_, targets) = http_get(&f.web, "/api/v1/targets").unwrap();
    assert!(targets.contains("\"health\":\"up\""), "{targets}");
    let (_, rules) = http_get(&f.web, "/api/v1/rules").unwrap();
    let rules: Value = serde_json::from_str(&rules).unwrap();
    let loaded: usize = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["rules"].as_array().unwrap().len())
        .sum();
    assert!(loaded >= 5, "{rules}");
}

/// Every panel's query returns data over the load, as Grafana would draw it.
fn check_every_panel_has_data(f: &LiveRun) {
    let mut empty = BTreeMap::new();
    for (title, expr) in panel_queries(&dashboard()) {
        let q = expr
            .replace("$__rate_interval", RATE_INTERVAL)
            .replace("$instance", ".*");
        let series = query_range(&f.web, &q, f.load_start, f.load_end);
        let has_number = series.iter().any(|s| {
            s["values"].as_array().into_iter().flatten().any(|v| {
                v[1].as_str()
                    .and_then(|x| x.parse::<f64>().ok())
                    .is_some_and(f64::is_finite)
            })
        });
        if !has_number {
            empty.insert(format!("{title}: {q}"), series.len());
        }
    }
    assert!(empty.is_empty(), "panels without data: {empty:#?}");
}

/// SIGTERM: the run stops cleanly; then Prometheus goes, and the files.
fn check_a_clean_stop(f: LiveRun) {
    let LiveRun {
        run,
        prometheus,
        dir,
        ..
    } = f;
    assert!(terminate(run.into_inner()).status.success());
    drop(prometheus);
    let _ = std::fs::remove_dir_all(&dir);
}
