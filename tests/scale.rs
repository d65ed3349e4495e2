//! Several `distinctly run` instances sharing one consumer group against
//! the real broker: instances die (`kill -9`), join and leave (SIGTERM)
//! while events stream in real time, and every window's last record still
//! equals the truth, with revisions that never go down per window; the
//! longest silence of the output is measured.

mod common;

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::collections::{BTreeMap, HashSet};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PARTITIONS: i32 = 6;

/// Per one-second window: the distinct users and the events sent.
type Truth = BTreeMap<u64, (HashSet<String>, u64)>;

/// Produces events stamped with the wall clock, `per_tick` every 50 ms over
/// all partitions, until `stop`; returns the truth.
fn stream(topic: String, stop: Arc<AtomicBool>, per_tick: u64) -> Truth {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let mut truth = Truth::new();
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut i: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        for _ in 0..per_tick {
            // xorshift: 3000 users, some far more active than others.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let uid = format!("u{}", (state % 3000) * (state >> 60) % 3000);
            let line = format!(r#"{{"ts":{ts},"uid":"{uid}"}}"#);
            let mut rec = BaseRecord::<(), str>::to(&topic)
                .payload(&line)
                .partition((i % PARTITIONS as u64) as i32);
            loop {
                match producer.send(rec) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        rec = r;
                        producer.poll(Duration::from_millis(10));
                    }
                }
            }
            let w = truth.entry(ts).or_default();
            w.0.insert(uid);
            w.1 += 1;
            i += 1;
        }
        producer.poll(Duration::ZERO);
        std::thread::sleep(Duration::from_millis(50));
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    truth
}

/// An instance with a stable name (static membership, as in a container);
/// its log goes to a file named after the test and the instance.
fn instance(t: &Topics, name: &str, counter: &str) -> Child {
    let log = std::fs::File::create(tmp(&format!("{}-{name}.log", t.group))).unwrap();
    service(
        t,
        &[
            ("DISTINCTLY_INSTANCE_ID", name),
            ("DISTINCTLY_COUNTER", counter),
            ("DISTINCTLY_WINDOWS", "1s"),
            ("DISTINCTLY_ALLOWED_LATENESS_SECONDS", "1"),
            ("DISTINCTLY_IDLE_PARTITION_SECONDS", "3"),
        ],
        &[],
    )
    .stderr(log)
    .spawn()
    .unwrap()
}

/// The longest time between consecutive output records written within
/// `[from, to]` (ms since the epoch).
fn longest_gap(times: &[i64], from: i64, to: i64) -> Duration {
    let mut inside: Vec<i64> = times
        .iter()
        .copied()
        .filter(|&t| t >= from && t <= to)
        .collect();
    inside.sort_unstable();
    let gap = inside
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or(i64::MAX);
    Duration::from_millis(gap as u64)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Three instances on a six-partition input; while events stream, one is
/// killed, then another, a fourth joins, and one leaves with SIGTERM.
/// Returns the truth, what the output says, and the longest output gap.
fn chaos(name: &str, counter: &str) -> (Truth, Windows, Duration) {
    let t = topics(name, PARTITIONS as u32);
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (topic, stop) = (t.input.clone(), stop.clone());
        std::thread::spawn(move || stream(topic, stop, 30))
    };
    let a = instance(&t, "a", counter);
    let b = instance(&t, "b", counter);
    let c = instance(&t, "c", counter);
    wait_for_records(&t.output, 3, Duration::from_secs(90));
    let from = now_ms();
    std::thread::sleep(Duration::from_secs(8));
    kill9(a);
    std::thread::sleep(Duration::from_secs(12));
    kill9(b);
    std::thread::sleep(Duration::from_secs(10));
    let d = instance(&t, "d", counter);
    std::thread::sleep(Duration::from_secs(10));
    let out = terminate(c);
    assert!(out.status.success(), "see the logs in {:?}", tmp(""));
    std::thread::sleep(Duration::from_secs(10));
    let to = now_ms();
    stop.store(true, Ordering::Relaxed);
    let truth = producer.join().unwrap();
    // The stream stopped: the last windows come out once the input is idle.
    let last = *truth.keys().next_back().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut got = output_windows(&t.output);
    while got.get(&last).map(|w| w.1) != Some(truth[&last].1) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        got = output_windows(&t.output);
    }
    let out = terminate(d);
    assert!(out.status.success(), "see the logs in {:?}", tmp(""));
    let gap = longest_gap(&record_times(&t.output), from, to);
    eprintln!("{name}: longest output gap {gap:?} across kill -9 (twice), a join and a SIGTERM");
    let records = output_records(&t.output);
    let problems = revision_problems(&records);
    assert!(
        problems.is_empty(),
        "revisions across kill -9, a join and a SIGTERM:\n{}",
        problems.join("\n")
    );
    (truth, last_per_window(&records), gap)
}

/// Output resumes this soon after an instance dies (the 6 s session
/// timeout, a rebalance, the restore and replay of its shards).
const MAX_GAP: Duration = Duration::from_secs(10);

#[test]
fn instances_die_join_and_leave_and_every_window_stays_exact() {
    let _b = broker();
    let (truth, got, gap) = chaos("scale-exact", "exact");
    let want: Windows = truth
        .iter()
        .map(|(&ts, (users, events))| (ts, (users.len() as u64, *events)))
        .collect();
    assert_eq!(got, want);
    assert!(gap <= MAX_GAP, "output stopped for {gap:?}");
}

#[test]
fn instances_die_join_and_leave_and_hll_stays_within_its_bound() {
    let _b = broker();
    let (truth, got, gap) = chaos("scale-hll", "hll");
    assert_eq!(got.len(), truth.len());
    for (ts, (users, events)) in &truth {
        let (est, ev) = got[ts];
        assert_eq!(ev, *events, "events are exact: {ts}");
        // Below 2^p / 32 distinct hashes a shard counts exactly (see
        // counter::hll); the bound holds for the sum of the shards too.
        let n = users.len() as f64;
        assert!(
            (est as f64 - n).abs() <= 4.0 * 1.04 / 128.0 * n + 1.0,
            "{ts}: {est} vs {n}"
        );
    }
    assert!(gap <= MAX_GAP, "output stopped for {gap:?}");
}
