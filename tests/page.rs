//! The live page (`GET /`) in headless Chromium: over `count --serve` of the
//! sample, its charts plot the records' counts, its numbers are the latest
//! windows', its tables the groups', its form the range query's answer; it
//! loads nothing from elsewhere, logs no error, fits a phone, and does not
//! shift on update. Over `run` on the real broker, the open page gains a
//! point when a new minute closes.

mod common;

use common::browser::Browser;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// `1234567` as `1,234,567` (the page's en-US numbers).
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Per start: (unique users, revision).
type Points = BTreeMap<u64, (u64, u64)>;

/// Per series (`window`), per start: the last record's (unique users,
/// revision); totals only, or one group's.
fn latest(records: &[Value], group: Option<&str>) -> BTreeMap<String, Points> {
    let mut out: BTreeMap<String, Points> = BTreeMap::new();
    for r in records {
        let wanted = match group {
            None => r.get("group_by").is_none(),
            Some(g) => r.get("group").and_then(Value::as_str) == Some(g),
        };
        if !wanted {
            continue;
        }
        let window = r["window"].as_str().unwrap_or("1m").to_string();
        out.entry(window).or_default().insert(
            r["start_ts"].as_u64().unwrap(),
            (
                r["unique_users"].as_u64().unwrap(),
                r["revision"].as_u64().unwrap(),
            ),
        );
    }
    out
}

/// The plotted points of the chart in element `id`: per start, (users,
/// revision), and their heights (`cy`) in the same order.
fn plotted(b: &mut Browser, id: &str) -> (Points, Vec<(u64, f64)>) {
    let v = b.eval(&format!(
        "[...document.querySelectorAll('#{id} circle.point')].map(c => \
         [+c.dataset.start, +c.dataset.users, +c.dataset.revision, +c.getAttribute('cy')])"
    ));
    let mut points = BTreeMap::new();
    let mut heights = Vec::new();
    for p in v.as_array().unwrap() {
        let start = p[0].as_u64().unwrap();
        let users = p[1].as_u64().unwrap();
        points.insert(start, (users, p[2].as_u64().unwrap()));
        heights.push((users, p[3].as_f64().unwrap()));
    }
    (points, heights)
}

/// More users are drawn higher (a smaller `cy`): the points are plotted by
/// their counts, not only labelled with them.
fn assert_drawn_to_scale(heights: &[(u64, f64)]) {
    for a in heights {
        for b in heights {
            if a.0 > b.0 {
                assert!(a.1 < b.1, "{a:?} is not above {b:?}");
            }
        }
    }
}

/// Waits until the page has drawn `n` points in the chart `id`.
fn wait_for_points(b: &mut Browser, id: &str, n: usize) {
    b.wait_for(
        &format!("document.querySelectorAll('#{id} circle.point').length === {n} || null"),
        WAIT,
    );
}

/// Waits for `count --summary json`'s summary: the input is read, every
/// record written.
fn wait_for_summary(child: &mut Child) {
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.starts_with('{') {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no summary");
    }
}

/// Updates seen so far (each poll that drew the page sets the time).
fn updated(b: &mut Browser) -> u64 {
    b.eval("+(document.body.dataset.updated || 0)")
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn the_page_over_count_serve_shows_the_records() {
    let addr = format!("127.0.0.1:{}", free_port());
    let out_path = tmp("page-count.jsonl");
    let sample = root().join("data/sample.jsonl.gz");
    let mut child = Command::new(BIN)
        .arg("count")
        .arg(&sample)
        .args([
            "--serve",
            &addr,
            "--windows",
            "1m,1h",
            "--rolling",
            "1h/10m",
        ])
        .args(["--group-by", "country", "--summary", "json"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_summary(&mut child);
    let records = json_lines(&std::fs::read(&out_path).unwrap());
    let truth = latest(&records, None);
    assert_eq!(truth.keys().collect::<Vec<_>>(), ["1h", "1h/10m", "1m"]);

    let mut b = Browser::launch("page-count", 1280, 900);
    let url = format!("http://{addr}/");
    b.open(&url);
    for (series, id) in [
        ("1m", "chart-1m"),
        ("1h", "chart-1h"),
        ("1h/10m", "chart-1h_10m"),
    ] {
        let want = &truth[series];
        wait_for_points(&mut b, id, want.len());
        let (got, heights) = plotted(&mut b, id);
        assert_eq!(&got, want, "{series}");
        assert_drawn_to_scale(&heights);
    }
    // Corrections are drawn as such: every window whose last record is a
    // later revision, and only those.
    let rings = b.eval("document.querySelectorAll('#chart-1m circle.corrected').length");
    let corrected = truth["1m"].values().filter(|(_, rev)| *rev > 0).count();
    assert!(corrected > 0);
    assert_eq!(rings.as_u64(), Some(corrected as u64));

    // The latest windows' counts as text, with thousands separators.
    for (series, id) in [("1m", "latest-1m"), ("1h", "latest-1h")] {
        let (_, &(users, _)) = truth[series].last_key_value().unwrap();
        let text = b.eval(&format!("document.getElementById('{id}').textContent"));
        assert_eq!(text.as_str(), Some(thousands(users).as_str()), "{series}");
    }
    assert!(
        truth["1h"].values().any(|(u, _)| *u >= 1000),
        "a number with a separator"
    );

    check_top_groups(&mut b, &records);
    check_one_group_charted(&mut b, &records);
    check_the_range_form(&mut b, &addr);
    check_no_layout_shift(&mut b);

    // A phone's width: nothing wider than the screen, the same points.
    b.viewport(390, 844, true);
    b.open(&url);
    wait_for_points(&mut b, "chart-1m", truth["1m"].len());
    let wide = b.eval("document.documentElement.scrollWidth");
    assert!(wide.as_u64().unwrap() <= 390, "the page is {wide} px wide");

    // Only its own address, and no error on the way.
    let requests = b.requests();
    assert!(requests.iter().any(|r| r.ends_with("/page.js")));
    assert!(requests.iter().any(|r| r.contains("/v1/windows")));
    let outside: Vec<&String> = requests
        .iter()
        .filter(|r| !r.starts_with(&url) && !r.starts_with("data:"))
        .collect();
    assert!(outside.is_empty(), "requests elsewhere: {outside:?}");
    // The one refusal the form was sent for is the browser's only complaint.
    let errors = b.errors();
    let unexpected: Vec<&String> = errors
        .iter()
        .filter(|e| !(e.contains("status of 422") && e.contains("from=1767225630")))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    assert_eq!(errors.len(), 1, "{errors:?}");
    drop(b);
    terminate_ok(child);
}

/// The table and the bars are the latest 1m window's groups, most users
/// first.
fn check_top_groups(b: &mut Browser, records: &[Value]) {
    let last = records
        .iter()
        .filter(|r| r["window"] == "1m" && r.get("group_by").is_some())
        .map(|r| r["start_ts"].as_u64().unwrap())
        .max()
        .unwrap();
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r["window"] == "1m" && r["start_ts"] == last && r.get("group_by").is_some())
    {
        let name = r["group"].as_str().unwrap_or("(no value)").to_string();
        want.insert(name, r["unique_users"].as_u64().unwrap());
    }
    let rows = b.wait_for(
        &format!(
            "(() => {{ const rows = [...document.querySelectorAll('#groups-table tbody tr')]\
             .map(tr => [...tr.children].map(td => td.textContent)); \
             return rows.length === {} ? rows : null; }})()",
            want.len()
        ),
        WAIT,
    );
    let mut previous = u64::MAX;
    let mut got = BTreeMap::new();
    for row in rows.as_array().unwrap() {
        let users: u64 = row[2].as_str().unwrap().replace(',', "").parse().unwrap();
        assert!(users <= previous, "most users first: {rows}");
        previous = users;
        got.insert(row[1].as_str().unwrap().to_string(), users);
    }
    assert_eq!(got, want);
    let bars = b
        .eval("[...document.querySelectorAll('#groups-bars rect.bar')].map(r => +r.dataset.users)");
    let mut sorted: Vec<u64> = want.values().copied().collect();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(bars, serde_json::json!(sorted));
}

/// Picking a group charts its windows.
fn check_one_group_charted(b: &mut Browser, records: &[Value]) {
    let want = &latest(records, Some("DE"))["1m"];
    b.eval(
        "document.getElementById('group-value').value = 'DE'; \
         document.getElementById('group-pick').requestSubmit(); true",
    );
    wait_for_points(b, "group-chart", want.len());
    let (got, heights) = plotted(b, "group-chart");
    assert_eq!(&got, want);
    assert_drawn_to_scale(&heights);
}

/// The form shows what `/v1/uniques` answers, and its refusals.
fn check_the_range_form(b: &mut Browser, addr: &str) {
    let (status, body) = http_get(
        addr,
        "/v1/uniques?from=1767225600&to=1767226800&group_by=country&group=DE",
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let want: Value = serde_json::from_str(&body).unwrap();
    let ask = |b: &mut Browser, from: &str, to: &str| {
        b.eval(&format!(
            "document.getElementById('q-answer').textContent = ''; \
             document.getElementById('q-from').value = '{from}'; \
             document.getElementById('q-to').value = '{to}'; \
             document.getElementById('q-by').value = 'country'; \
             document.getElementById('q-group').value = 'DE'; \
             document.getElementById('query').requestSubmit(); true"
        ));
        b.wait_for(
            "(() => { const t = document.getElementById('q-answer').textContent; \
             return t && t !== 'asking…' ? t : null; })()",
            WAIT,
        )
    };
    // Unix seconds, then RFC 3339 (the browser runs in UTC here).
    for (from, to) in [
        ("1767225600", "1767226800"),
        ("2026-01-01T00:00:00Z", "2026-01-01T00:20"),
    ] {
        ask(b, from, to);
        let got = b.eval("+document.getElementById('q-users').dataset.users");
        assert_eq!(got, want["unique_users"], "{from} {to}");
    }
    let refused = ask(b, "1767225630", "1767226800");
    assert!(
        refused.as_str().unwrap().contains("slices"),
        "a range off the slices says what is held: {refused}"
    );
}

/// After the first drawing, updates move nothing on the page.
fn check_no_layout_shift(b: &mut Browser) {
    b.eval(
        "window.shifts = 0; new PerformanceObserver(list => { \
         for (const e of list.getEntries()) window.shifts += e.value; \
         }).observe({ type: 'layout-shift' }); true",
    );
    let seen = updated(b);
    b.wait_for(
        &format!("+(document.body.dataset.updated || 0) > {seen} || null"),
        WAIT,
    );
    let again = updated(b);
    b.wait_for(
        &format!("+(document.body.dataset.updated || 0) > {again} || null"),
        WAIT,
    );
    let shifts = b.eval("window.shifts").as_f64().unwrap();
    assert!(shifts < 0.001, "layout shifted by {shifts} on update");
}

#[test]
fn the_page_over_run_gains_a_point_when_a_minute_closes() {
    let _b = broker();
    let t = topics("page", 2);
    const T0: u64 = 1_767_225_600;
    let minute = |m: u64, users: u64| {
        events((0..users).map(move |u| (T0 + m * 60 + u % 60, format!("u{m}-{u}"))))
    };
    produce(&t.input, 2, &[minute(0, 30), minute(1, 40)].concat());
    // Two instances: only one sums (holds the partials topic), and both
    // pages show every window.
    let start = || {
        let addr = format!("127.0.0.1:{}", free_port());
        let env = [
            ("DISTINCTLY_METRICS_ADDR", addr.as_str()),
            ("DISTINCTLY_IDLE_PARTITION_SECONDS", "2"),
        ];
        let child = service(&t, &env, &[]).spawn().unwrap();
        (child, addr)
    };
    let (mut one, one_addr) = start();
    let (mut two, two_addr) = start();
    wait_for_http(&mut one, &one_addr, "/readyz", 200, WAIT);
    wait_for_http(&mut two, &two_addr, "/readyz", 200, WAIT);
    wait_for_window(&t.output, T0 + 60, (40, 40), WAIT);

    let mut b = Browser::launch("page-run", 1280, 900);
    b.open(&format!("http://{one_addr}/"));
    wait_for_points(&mut b, "chart-1m", 2);
    let latest = b.eval("document.getElementById('latest-1m').textContent");
    assert_eq!(latest.as_str(), Some("40"));

    // A new minute: the open page draws it without a reload.
    produce(&t.input, 2, &minute(2, 1234));
    wait_for_points(&mut b, "chart-1m", 3);
    let (got, _) = plotted(&mut b, "chart-1m");
    let want: Points = [(T0, (30, 0)), (T0 + 60, (40, 0)), (T0 + 120, (1234, 0))].into();
    assert_eq!(got, want);
    b.wait_for(
        "document.getElementById('latest-1m').textContent === '1,234' || null",
        WAIT,
    );
    assert_eq!(output_windows(&t.output).len(), 3);

    // Health from the service: lag per input partition, both instances,
    // the shards, ready.
    let health = b.wait_for(
        "(() => { const t = document.getElementById('health').textContent; \
         return t.includes('Instances2') ? t : null; })()",
        WAIT,
    );
    assert!(health.as_str().unwrap().contains("Shards"), "{health}");
    let lag = b.wait_for(
        "(() => { const t = document.getElementById('lag').textContent; \
         return t.includes('0') && !t.includes('no partitions') ? t : null; })()",
        WAIT,
    );
    assert!(lag.as_str().unwrap().contains(&t.input), "{lag}");
    let ready = b.eval("document.getElementById('ready').textContent");
    assert_eq!(ready.as_str(), Some("ready"));

    // The other instance's page shows the same windows.
    b.open(&format!("http://{two_addr}/"));
    wait_for_points(&mut b, "chart-1m", 3);
    assert_eq!(plotted(&mut b, "chart-1m").0, want);
    assert_eq!(b.errors(), Vec::<String>::new());
    drop(b);
    terminate_ok(one);
    terminate_ok(two);
}

#[test]
fn the_page_asks_for_the_token_once_and_then_shows_the_counts() {
    const TOKEN: &str = "page-token-0123456789abcdef";
    let addr = format!("127.0.0.1:{}", free_port());
    let sample = root().join("data/sample.jsonl.gz");
    let mut child = Command::new(BIN)
        .arg("count")
        .arg(&sample)
        .args(["--serve", &addr, "--summary", "json"])
        .env("DISTINCTLY_HTTP_TOKEN", TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_summary(&mut child);
    let mut b = Browser::launch("page-token", 1280, 900);
    b.open(&format!("http://{addr}/"));
    b.wait_for(
        "!document.getElementById('token-form').hidden || null",
        WAIT,
    );
    assert_eq!(
        b.eval("document.querySelectorAll('#chart-1m circle.point').length"),
        serde_json::json!(0)
    );
    b.eval(&format!(
        "document.getElementById('token').value = '{TOKEN}'; \
         document.getElementById('token-form').requestSubmit(); true"
    ));
    b.wait_for(
        "document.querySelectorAll('#chart-1m circle.point').length > 0 || null",
        WAIT,
    );
    assert_eq!(
        b.eval("document.getElementById('token-form').hidden"),
        serde_json::json!(true)
    );
    // The token never goes into an address.
    assert!(b.requests().iter().all(|r| !r.contains(TOKEN)));
    drop(b);
    terminate_ok(child);
}
