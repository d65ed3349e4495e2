//! Headless Chromium driven over the DevTools protocol (a WebSocket of JSON
//! messages): open a page, evaluate JavaScript in it, and keep what the
//! page did on the way (every request it made, console errors, uncaught
//! exceptions). Debian's `chromium` (`.ci/run` installs it).

use serde_json::{json, Value};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

pub struct Browser {
    child: Child,
    /// The browser's own connection: the page lives while it is open.
    _control: Socket,
    page: Socket,
    next_id: u64,
    /// Every event the page sent, in order.
    pub events: Vec<Value>,
    dir: PathBuf,
}

/// The Chromium binary: `CHROMIUM`, else `chromium`.
fn binary() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_string())
}

impl Browser {
    /// Starts Chromium with one blank page, `width` × `height` CSS pixels.
    pub fn launch(name: &str, width: u32, height: u32) -> Browser {
        let dir = super::scratch_dir(&format!("chromium-{name}"));
        let log = dir.join("stderr.log");
        let child = Command::new(binary())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--lang=en-US",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                &format!("--window-size={width},{height}"),
                &format!("--user-data-dir={}", dir.join("profile").display()),
                "about:blank",
            ])
            .env("LANG", "en_US.UTF-8")
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): install Debian's chromium (.ci/run does)",
                    binary()
                )
            });
        let deadline = Instant::now() + Duration::from_secs(30);
        let browser_url = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(url) = text
                .lines()
                .find_map(|l| l.strip_prefix("DevTools listening on "))
            {
                break url.trim().to_string();
            }
            assert!(Instant::now() < deadline, "chromium did not start: {text}");
            std::thread::sleep(Duration::from_millis(100));
        };
        // ws://127.0.0.1:PORT/devtools/browser/ID: a new page target is
        // made there and reached at /devtools/page/TARGET.
        let (mut control, _) = tungstenite::connect(&browser_url).unwrap();
        let create =
            json!({ "id": 1, "method": "Target.createTarget", "params": { "url": "about:blank" } });
        control.send(Message::text(create.to_string())).unwrap();
        let target = loop {
            let Message::Text(t) = control.read().unwrap() else {
                continue;
            };
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["id"] == 1 {
                break v["result"]["targetId"]
                    .as_str()
                    .expect("a target")
                    .to_string();
            }
        };
        let base = browser_url.split("/devtools/").next().unwrap();
        let page_url = format!("{base}/devtools/page/{target}");
        let (page, _) = tungstenite::connect(page_url).unwrap();
        if let MaybeTlsStream::Plain(s) = page.get_ref() {
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
        }
        let mut b = Browser {
            child,
            _control: control,
            page,
            next_id: 0,
            events: Vec::new(),
            dir,
        };
        for domain in ["Runtime", "Network", "Log", "Page"] {
            b.call(&format!("{domain}.enable"), json!({}));
        }
        b
    }

    /// Sends a command and returns its result; events that arrive before it
    /// are kept.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({ "id": id, "method": method, "params": params }).to_string();
        self.page.send(Message::text(msg)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(Instant::now() < deadline, "{method}: no answer");
            let Some(v) = self.read() else { continue };
            if v["id"] == id {
                if let Some(e) = v.get("error") {
                    panic!("{method}: {e}");
                }
                return v["result"].clone();
            }
            self.events.push(v);
        }
    }

    /// One message, or `None` after a short wait.
    fn read(&mut self) -> Option<Value> {
        match self.page.read() {
            Ok(Message::Text(t)) => serde_json::from_str(t.as_str()).ok(),
            Ok(_) => None,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("the DevTools connection failed: {e}"),
        }
    }

    /// Evaluates `expr` in the page (awaiting a promise) and returns its
    /// value; an exception fails the test.
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expr}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Evaluates `expr` until it is neither `null`, `false` nor undefined;
    /// returns that value.
    pub fn wait_for(&mut self, expr: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.eval(expr);
            if !(v.is_null() || v == json!(false)) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{expr}: still {v} after {timeout:?}; errors: {:?}",
                self.errors()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Opens `url` in the page and waits until it has loaded.
    pub fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
        let loaded = format!(
            "document.readyState === 'complete' && location.href.startsWith({}) || null",
            json!(url.split('#').next().unwrap_or(url))
        );
        self.wait_for(&loaded, Duration::from_secs(30));
    }

    /// Sets the viewport: `width` CSS pixels wide, a phone's when `mobile`.
    pub fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        );
    }

    /// Every URL the page requested.
    pub fn requests(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e["method"] == "Network.requestWillBeSent")
            .filter_map(|e| e["params"]["request"]["url"].as_str().map(str::to_string))
            .collect()
    }

    /// Console errors and warnings, uncaught exceptions, and the browser's
    /// own error entries (a refused load, a policy violation).
    pub fn errors(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| {
                let p = &e["params"];
                match e["method"].as_str()? {
                    "Runtime.exceptionThrown" => Some(p["exceptionDetails"].to_string()),
                    "Runtime.consoleAPICalled"
                        if ["error", "warning", "assert"].contains(&p["type"].as_str()?) =>
                    {
                        Some(p["args"].to_string())
                    }
                    "Log.entryAdded"
                        if ["error", "warning"].contains(&p["entry"]["level"].as_str()?) =>
                    {
                        Some(p["entry"].to_string())
                    }
                    _ => None,
                }
            })
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(self.dir.join("profile"));
    }
}
