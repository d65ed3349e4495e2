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
use std::path::PathBuf;
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
    let panels = d["panels"].as_array().unwrap();
    let mut ids = HashSet::new();
    for p in panels {
        let title = p["title"].as_str().unwrap();
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "duplicate id: {title}"
        );
        let g = &p["gridPos"];
        let (x, w, h) = (
            g["x"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(x + w <= 24 && w > 0 && h > 0, "gridPos of {title}");
        assert!(g["y"].is_u64(), "gridPos.y of {title}");
        if p["type"] == "row" {
            continue;
        }
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
    let titles: Vec<String> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap().to_lowercase())
        .collect();
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
    ] {
        assert!(
            titles.iter().any(|t| t.contains(needed)),
            "no panel for {needed}"
        );
    }

    // Provisioning: the datasource has the uid the panels use, the provider
    // reads the folder the compose file mounts the dashboard into.
    let prov = root().join("dashboards/grafana/provisioning");
    let ds = std::fs::read_to_string(prov.join("datasources/prometheus.yml")).unwrap();
    assert!(ds.contains(&format!("uid: {DATASOURCE_UID}")), "{ds}");
    assert!(ds.contains("type: prometheus"));
    let dp = std::fs::read_to_string(prov.join("dashboards/distinctly.yml")).unwrap();
    assert!(dp.contains("path: /var/lib/grafana/dashboards"), "{dp}");

    // Every exported metric is documented in docs/metrics.md.
    let doc = std::fs::read_to_string(root().join("docs/metrics.md")).unwrap();
    for name in names::ALL {
        assert!(
            doc.contains(&format!("`{name}`")),
            "{name} not in docs/metrics.md"
        );
    }

    // Prometheus' own checks of the shipped configuration and rules.
    if let Some(promtool) = tool("promtool") {
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
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_prometheus(bin: &PathBuf, scrape: &str, dir: &std::path::Path) -> (Killed, String) {
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
    let child = Killed(child);
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
    let dir = std::env::temp_dir().join(unique("metrics-test"));
    std::fs::create_dir_all(&dir).unwrap();

    let scrape = format!("127.0.0.1:{}", free_port());
    let run = service(
        &t,
        &[
            ("DISTINCTLY_METRICS_ADDR", &scrape),
            ("KAFKA_SERVICE_DLQ_TOPIC", &dlq),
            ("DISTINCTLY_IDLE_PARTITION_SECONDS", "3"),
            // Lag gauges every second instead of every 5 s.
            ("DISTINCTLY_RDKAFKA_CONSUMER_STATISTICS_INTERVAL_MS", "1000"),
        ],
        &[],
    )
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(dir.join("distinctly.log")).unwrap())
    .spawn()
    .expect("start distinctly run");
    wait_until("distinctly's /metrics", Duration::from_secs(30), || {
        matches!(http_get(&scrape, "/metrics"), Ok((200, _)))
    });
    let (_prom, web) = start_prometheus(&prometheus, &scrape, &dir);

    // Load: the events arrive over ~12 s, so windows close, records are
    // delivered and every rate has points while Prometheus scrapes.
    let load_start = now_unix();
    for chunk in lines.chunks(2000) {
        produce(&t.input, 3, chunk);
        std::thread::sleep(Duration::from_millis(700));
    }
    let messages = lines.len() as f64;
    wait_until("every message read", Duration::from_secs(90), || {
        http_get(&scrape, "/metrics")
            .map(|(_, body)| parse_scrape(&body).get(names::MESSAGES).copied() == Some(messages))
            .unwrap_or(false)
    });
    // Idle partitions flush the last windows after 3 s; a few more scrapes.
    std::thread::sleep(Duration::from_secs(6));
    let load_end = now_unix();

    // The live scrape passes Prometheus' own linter.
    let (_, body) = http_get(&scrape, "/metrics").unwrap();
    let mut check = Command::new(&promtool)
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
        .write_all(body.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The values are the run's real numbers.
    let m = parse_scrape(&body);
    let bytes: usize = lines.iter().map(Vec::len).sum();
    assert_eq!(value(&m, names::MESSAGES, &[]), messages);
    assert_eq!(value(&m, names::BYTES, &[]), bytes as f64);
    let truth_events: u64 = truth.values().map(|&(_, e)| e).sum();
    let outcome = |o: &str| value(&m, names::EVENTS, &[&format!("outcome=\"{o}\"")]);
    assert_eq!(
        outcome("counted") + outcome("late_corrected"),
        truth_events as f64
    );
    assert_eq!(outcome("late_dropped"), 0.0);
    assert_eq!(
        value(&m, names::WINDOWS_EMITTED, &[]),
        truth.len() as f64,
        "every window emitted once"
    );
    let (&last_start, &(last_unique, _)) = truth.iter().next_back().unwrap();
    assert_eq!(value(&m, names::LAST_WINDOW_START, &[]), last_start as f64);
    assert_eq!(
        value(&m, names::LAST_WINDOW_UNIQUE, &[]),
        last_unique as f64
    );
    assert_eq!(
        value(
            &m,
            names::BUILD_INFO,
            &["counter=\"exact\"", "backend=\"exact\""]
        ),
        1.0
    );
    let heap = value(&m, names::COUNTER_HEAP, &[]);
    let rss = value(&m, names::RESIDENT_MEMORY, &[]);
    assert!(heap > 0.0 && rss > heap, "heap {heap}, rss {rss}");
    for p in 0..3 {
        let part = format!("partition=\"{p}\"");
        assert_eq!(value(&m, names::CONSUMER_LAG, &[&part]), 0.0, "{part}");
    }
    assert_eq!(value(&m, names::ASSIGNED_PARTITIONS, &[]), 3.0);
    assert_eq!(value(&m, names::OUTPUT_PAUSED, &[]), 0.0);

    // Rejections by reason are the decoder's, the same as `count` finds in
    // the same lines (the time guard's `ts_out_of_range` depends on how
    // events are spread over partitions, so it is left out).
    let input = dir.join("input.jsonl");
    std::fs::write(&input, lines.join(&b'\n')).unwrap();
    let counted = Command::new(BIN)
        .args(["count", "--summary", "json"])
        .arg(&input)
        .output()
        .unwrap();
    let summary: Value = serde_json::from_slice(&counted.stderr).unwrap();
    let mut decoder_rejections = 0.0;
    for (reason, n) in summary["rejected"].as_object().unwrap() {
        if reason == "ts_out_of_range" {
            continue;
        }
        let got = value(
            &m,
            names::EVENTS_REJECTED,
            &[&format!("reason=\"{reason}\"")],
        );
        assert_eq!(got, n.as_f64().unwrap(), "{reason}");
        decoder_rejections += got;
    }
    assert!(decoder_rejections > 0.0);

    // Produced records and their delivery latencies match the topics.
    let output_records = consume_all(&t.output).len() as f64;
    let dlq_records = consume_all(&dlq).len() as f64;
    assert_eq!(
        value(&m, names::RECORDS_PRODUCED, &["topic=\"output\""]),
        output_records
    );
    assert_eq!(dlq_records, decoder_rejections);
    assert_eq!(
        value(&m, names::RECORDS_PRODUCED, &["topic=\"dead_letter\""]),
        dlq_records
    );
    let delivered = |topic: &str| {
        value(
            &m,
            &format!("{}_count", names::DELIVERY_LATENCY),
            &[&format!("topic=\"{topic}\"")],
        )
    };
    assert_eq!(delivered("output"), output_records);
    assert_eq!(delivered("dead_letter"), dlq_records);

    // Prometheus scraped it, loaded the alerting rules, and every panel's
    // query returns data over the load, as Grafana would draw it.
    let (_, targets) = http_get(&web, "/api/v1/targets").unwrap();
    assert!(targets.contains("\"health\":\"up\""), "{targets}");
    let (_, rules) = http_get(&web, "/api/v1/rules").unwrap();
    let rules: Value = serde_json::from_str(&rules).unwrap();
    let loaded: usize = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["rules"].as_array().unwrap().len())
        .sum();
    assert!(loaded >= 5, "{rules}");
    let mut empty = BTreeMap::new();
    for (title, expr) in panel_queries(&dashboard()) {
        let q = expr
            .replace("$__rate_interval", RATE_INTERVAL)
            .replace("$instance", ".*");
        let series = query_range(&web, &q, load_start, load_end);
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

    // A clean stop.
    assert!(terminate(run).status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
