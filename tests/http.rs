//! The HTTP port under curious and hostile clients (`count --serve`): the
//! bearer token guards the data endpoints and only them; thousands of idle
//! or slow connections cost little memory, are closed on time and do not
//! keep others from an answer; huge, malformed and absurd requests get a
//! status, never a crash.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "s3cret-token-0123456789";

/// `count --serve` of a small generated file with `env`, once its input
/// is read; and its address.
fn serving(name: &str, env: &[(&str, &str)]) -> (Child, String) {
    let (jsonl, _) = generate_jsonl(&["--events", "2000", "--users", "300", "--seed", "5"]);
    let path = tmp(&format!("{name}.jsonl"));
    std::fs::write(&path, jsonl).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(BIN)
        .arg("count")
        .arg(&path)
        .args([
            "--serve",
            &addr,
            "--group-by",
            "country",
            "--summary",
            "json",
        ])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.starts_with('{') {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no summary");
    }
    (child, addr)
}

/// Sends `raw` as it is; the status of the answer (0: none) and its text.
fn raw(addr: &str, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = s.write_all(request);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn get(addr: &str, path: &str, headers: &str) -> (u16, String) {
    raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}\r\n")
            .as_bytes(),
    )
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn the_token_guards_the_data_endpoints_and_only_them() {
    let (child, addr) = serving("http-token", &[("DISTINCTLY_HTTP_TOKEN", TOKEN)]);
    let bearer = format!("Authorization: Bearer {TOKEN}\r\n");
    for path in [
        "/v1/info",
        "/v1/windows",
        "/v1/status",
        "/v1/uniques?from=0&to=60",
    ] {
        let (status, text) = get(&addr, path, "");
        assert_eq!(status, 401, "{path}: {text}");
        assert!(text.contains("www-authenticate: Bearer"), "{text}");
        assert!(text.contains("DISTINCTLY_HTTP_TOKEN"), "{text}");
        let (status, _) = get(
            &addr,
            path,
            "Authorization: Bearer wrong-token-0123456789\r\n",
        );
        assert_eq!(status, 401, "{path}");
        let (status, text) = get(&addr, path, &bearer);
        assert_ne!(status, 401, "{path}: {text}");
    }
    for path in [
        "/",
        "/page.js",
        "/page.css",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert_eq!(get(&addr, path, "").0, 200, "{path}");
    }
    terminate_ok(child);

    // Told so, /metrics asks for it too.
    let (child, addr) = serving(
        "http-token-metrics",
        &[
            ("DISTINCTLY_HTTP_TOKEN", TOKEN),
            ("DISTINCTLY_HTTP_TOKEN_METRICS", "true"),
        ],
    );
    assert_eq!(get(&addr, "/metrics", "").0, 401);
    assert_eq!(get(&addr, "/metrics", &bearer).0, 200);
    assert_eq!(get(&addr, "/healthz", "").0, 200);
    terminate_ok(child);

    // A token too short to guess slowly is refused by name.
    let out = Command::new(BIN)
        .args(["count", "--serve", "127.0.0.1:0"])
        .env("DISTINCTLY_HTTP_TOKEN", "short")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("DISTINCTLY_HTTP_TOKEN: expected 16 to"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn two_thousand_idle_connections_cost_little_and_are_closed_on_time() {
    let (child, addr) = serving("http-idle", &[]);
    let before = rss_kib(child.id());
    let idle: Vec<TcpStream> = (0..2000)
        .map(|i| {
            let s = TcpStream::connect(&addr).unwrap_or_else(|e| panic!("connection {i}: {e}"));
            // Half of them start a request and never finish it.
            if i % 2 == 0 {
                let _ = (&s).write_all(b"GET /v1/info HTTP/1.1\r\nHost: x\r\n");
            }
            s
        })
        .collect();
    // Someone else still gets an answer: once the idle ones taken while
    // the server was busy time out (1 s), they cycle, and its turn comes.
    let asked = Instant::now();
    let (status, _) = get(&addr, "/healthz", "");
    assert_eq!(status, 200);
    assert!(
        asked.elapsed() < Duration::from_secs(4),
        "{:?}",
        asked.elapsed()
    );
    let during = rss_kib(child.id());
    assert!(
        during < before + 64 * 1024,
        "2000 idle connections took {} KiB",
        during - before
    );
    // Every one of them is closed by the server: the first half after 5 s,
    // the others within a second of being served.
    std::thread::sleep(Duration::from_secs(16));
    let mut open = 0;
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut buf = [0u8; 512];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,    // closed
                Ok(_) => continue, // an error answer, then the close
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(_) => {
                    open += 1;
                    break;
                }
            }
        }
    }
    assert_eq!(open, 0, "connections still open after 16 s");
    assert_eq!(get(&addr, "/healthz", "").0, 200);
    terminate_ok(child);
}

#[test]
fn huge_malformed_and_absurd_requests_get_a_status_never_a_crash() {
    let (child, addr) = serving("http-hostile", &[]);
    let huge = format!("/v1/uniques?from=0&to=60&x={}", "a".repeat(1 << 20));
    let (status, _) = get(&addr, &huge, "");
    assert!(
        [400, 414, 431].contains(&status) || status == 0,
        "1 MB query string: {status}"
    );
    let long_but_served = format!("/v1/uniques?from=0&to=60&group_by={}", "a".repeat(9000));
    assert!([400, 414, 431].contains(&get(&addr, &long_but_served, "").0));
    let cases: &[(&str, &[u16])] = &[
        ("/v1/uniques?from=%FF%FE&to=1", &[400]),
        ("/v1/uniques?from=0&to=18446744073709551615", &[400, 422]),
        ("/v1/uniques?from=-1&to=60", &[400]),
        (
            "/v1/uniques?from=9999-12-31T23:59:00Z&to=9999-12-31T23:59:59Z",
            &[400, 422],
        ),
        ("/v1/uniques?from=60&to=0", &[400]),
        ("/v1/windows?limit=99999999999999999999999", &[400]),
        ("/v1/groups?start=-5", &[400]),
        ("/v1/windows?group_by=nope&group=x", &[404]),
        ("/v1/windows?group_by=country", &[400]),
        ("/../../etc/passwd", &[404]),
        ("/v1/windows?window=%00", &[404]),
    ];
    for (path, want) in cases {
        let (status, text) = get(&addr, path, "");
        assert!(want.contains(&status), "{path}: {status} {text}");
        if status != 404 || path.starts_with("/v1") {
            assert!(text.contains("\"error\""), "{path}: {text}");
        }
    }
    // Not HTTP at all, a method nothing answers, a head over the limit.
    assert_eq!(
        raw(&addr, b"\x00\xff\x16\x03\x01 garbage\r\n\r\n").0 / 100,
        4
    );
    assert_eq!(
        raw(
            &addr,
            b"POST /v1/info HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        )
        .0,
        405
    );
    let big_head = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(64 * 1024)
    );
    assert!([0, 400, 431].contains(&raw(&addr, big_head.as_bytes()).0));
    // A client that drips its request a byte at a time is cut off.
    let mut drip = TcpStream::connect(&addr).unwrap();
    let started = Instant::now();
    let mut closed = false;
    for b in b"GET /v1/info HTTP/1.1\r\nHost: x\r\nX-Slow: yes\r\n\r\n".iter() {
        if drip.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        if started.elapsed() > Duration::from_secs(8) {
            break;
        }
    }
    drip.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = Vec::new();
    let _ = drip.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(
        closed || !text.starts_with("HTTP/1.1 200"),
        "a head dripped over 8 s was served: {text}"
    );
    assert_eq!(get(&addr, "/healthz", "").0, 200, "still serving");
    terminate_ok(child);
}

#[test]
fn a_flood_of_requests_gets_429_while_the_probes_pass() {
    let (child, addr) = serving("http-flood", &[]);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                for _ in 0..250 {
                    statuses.push(get(&addr, "/v1/info", "").0);
                }
                statuses
            })
        })
        .collect();
    let probe = get(&addr, "/healthz", "").0;
    let statuses: Vec<u16> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(probe, 200);
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    let served = statuses.iter().filter(|&&s| s == 200).count();
    assert_eq!(limited + served, statuses.len(), "{statuses:?}");
    assert!(served >= 400, "the burst is served: {served}");
    assert!(limited > 0, "2000 requests at once are not all served");
    assert_eq!(get(&addr, "/readyz", "").0, 200);
    let (status, text) = get(&addr, "/v1/info", "");
    assert!(status == 200 || text.contains("retry-after: 1"), "{text}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        get(&addr, "/v1/info", "").0,
        200,
        "served again after a second"
    );
    terminate_ok(child);
}
