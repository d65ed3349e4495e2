//! `GET /v1/status`: the health a person looks at first, as one JSON
//! object read from the exported metrics (so it says what `/metrics`
//! says): events and their rate, rejections by reason, memory, lag per
//! partition, partitions held, and the answer of `/readyz`.

use super::names;
use crate::health::health;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

/// One sample line of the text format: name, labels, value.
#[derive(Debug, PartialEq)]
struct Sample<'a> {
    name: &'a str,
    labels: Vec<(&'a str, String)>,
    value: f64,
}

/// The samples of a rendered exposition (comments and blank lines
/// skipped, histograms' series kept under their own names).
fn samples(text: &str) -> Vec<Sample<'_>> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value: f64 = value.parse().ok()?;
            let (name, labels) = match series.split_once('{') {
                None => (series, Vec::new()),
                Some((name, rest)) => (name, labels(rest.strip_suffix('}')?)?),
            };
            Some(Sample {
                name,
                labels,
                value,
            })
        })
        .collect()
}

/// `a="x",b="y\"z"` as pairs, the values unescaped.
fn labels(mut s: &str) -> Option<Vec<(&str, String)>> {
    let mut out = Vec::new();
    while !s.is_empty() {
        let (key, rest) = s.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        out.push((key.trim_start_matches(','), value));
        s = &rest[end + 1..];
    }
    Some(out)
}

/// The previous events total and when it was read, for the rate.
static LAST: Mutex<Option<(Instant, f64, Option<f64>)>> = Mutex::new(None);

/// Events per second since the previous read at least a second ago.
fn rate(events: f64) -> Option<f64> {
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    match *last {
        Some((at, _, rate)) if now.duration_since(at).as_secs_f64() < 1.0 => rate,
        Some((at, before, _)) => {
            let r = ((events - before) / now.duration_since(at).as_secs_f64()).max(0.0);
            *last = Some((now, events, Some(r)));
            Some(r)
        }
        None => {
            *last = Some((now, events, None));
            None
        }
    }
}

/// The status object of a rendered exposition.
pub fn status_json(rendered: &str) -> String {
    let all = samples(rendered);
    let sum = |name: &str| -> Option<f64> {
        let mut found = all.iter().filter(|s| s.name == name).peekable();
        found.peek()?;
        Some(found.map(|s| s.value).sum())
    };
    let by = |name: &str, label: &str| -> Map<String, Value> {
        let mut m: BTreeMap<String, f64> = BTreeMap::new();
        for s in all.iter().filter(|s| s.name == name) {
            if let Some((_, v)) = s.labels.iter().find(|(k, _)| *k == label) {
                *m.entry(v.clone()).or_default() += s.value;
            }
        }
        m.into_iter().map(|(k, v)| (k, json!(v as u64))).collect()
    };
    let whole = |v: Option<f64>| v.map(|x| x as u64);
    let events = by(names::EVENTS, "outcome");
    let seen: u64 = events.values().filter_map(Value::as_u64).sum();
    let mut lag: Vec<Value> = all
        .iter()
        .filter(|s| s.name == names::CONSUMER_LAG)
        .map(|s| {
            let label = |k: &str| {
                s.labels
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            json!({
                "topic": label("topic"),
                "partition": label("partition").parse::<i64>().unwrap_or(-1),
                "messages": s.value as u64,
            })
        })
        .collect();
    lag.sort_by_key(|v| {
        (
            v["topic"].as_str().map(str::to_string),
            v["partition"].as_i64(),
        )
    });
    let rejected: Map<String, Value> = by(names::EVENTS_REJECTED, "reason")
        .into_iter()
        .filter(|(_, v)| v.as_u64() != Some(0))
        .collect();
    let ready = health().ready();
    json!({
        "live": health().live().is_ok(),
        "ready": ready.is_ok(),
        "ready_reason": ready.err(),
        "events": events,
        "events_total": seen,
        "events_per_second": rate(seen as f64),
        "messages_total": whole(sum(names::MESSAGES)),
        "rejected": rejected,
        "windows_open": whole(sum(names::WINDOWS_OPEN)),
        "windows_heap_bytes": whole(sum(names::COUNTER_HEAP)),
        "slices_heap_bytes": whole(sum(names::SLICES_HEAP)),
        "groups_held": whole(sum(names::GROUPS_HELD)),
        "resident_memory_bytes": whole(sum(names::RESIDENT_MEMORY)),
        "watermark_ts": whole(sum(names::WATERMARK)),
        "lag": lag,
        "assigned_partitions": whole(sum(names::ASSIGNED_PARTITIONS)),
        "broker_reachable": sum(names::BROKER_REACHABLE).map(|v| v > 0.0),
        "output_paused": sum(names::OUTPUT_PAUSED).map(|v| v > 0.0),
        "instances": crate::live::instances(),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_is_read_back() {
        let text = "# HELP x y\n# TYPE x counter\nx 3\n\nlag{topic=\"in\",partition=\"1\"} 7\nq{a=\"s\\\"p\\\\\",b=\"\"} 1.5\n";
        let got = samples(text);
        assert_eq!(
            got,
            vec![
                Sample {
                    name: "x",
                    labels: vec![],
                    value: 3.0
                },
                Sample {
                    name: "lag",
                    labels: vec![("topic", "in".into()), ("partition", "1".into())],
                    value: 7.0
                },
                Sample {
                    name: "q",
                    labels: vec![("a", "s\"p\\".into()), ("b", "".into())],
                    value: 1.5
                },
            ]
        );
    }

    #[test]
    fn the_status_sums_what_the_metrics_say() {
        let text = format!(
            "{e}{{outcome=\"counted\"}} 10\n{e}{{outcome=\"rejected\"}} 2\n{r}{{reason=\"not_json\"}} 2\n{r}{{reason=\"empty\"}} 0\n{h}{{window=\"1m\"}} 100\n{h}{{window=\"1h\"}} 50\n{l}{{topic=\"in\",partition=\"1\"}} 4\n{l}{{topic=\"in\",partition=\"0\"}} 3\n",
            e = names::EVENTS,
            r = names::EVENTS_REJECTED,
            h = names::COUNTER_HEAP,
            l = names::CONSUMER_LAG,
        );
        let v: Value = serde_json::from_str(&status_json(&text)).unwrap();
        assert_eq!(v["events_total"], 12);
        assert_eq!(v["events"]["counted"], 10);
        assert_eq!(v["rejected"], json!({"not_json": 2}));
        assert_eq!(v["windows_heap_bytes"], 150);
        assert_eq!(
            v["lag"][0],
            json!({"topic": "in", "partition": 0, "messages": 3})
        );
        assert_eq!(v["slices_heap_bytes"], Value::Null);
    }
}
