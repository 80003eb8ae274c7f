//! The web UI in a real browser: Debian's chromium, headless, driven over WebDriver
//! (chromedriver) against a real master and agent. Every page loads without console
//! errors and is screenshotted under `target/ui-screenshots/`; the overview's numbers
//! equal `/api/v1/state`; a task's live tail shows a line printed after the page
//! opened; a drain started in the UI takes effect on the agent.
//!
//! Named `needs_browser_*`: scripts/test.sh installs chromium and chromium-driver, or
//! filters these out (nextest shows them as skipped) where it cannot. The WebDriver
//! calls are plain JSON over HTTP on loopback (the support module's client), so no
//! WebDriver crate is needed.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use support::*;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// One chromedriver process and one browser session; both end on drop.
struct Browser {
    driver: SocketAddr,
    session: String,
    _proc: Proc,
    _profile: TempDir,
}

impl Browser {
    fn start() -> Browser {
        assert!(
            Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists(),
            "chromium and chromedriver are needed (scripts/test.sh installs them)"
        );
        let profile = TempDir::new("chromium");
        let port = free_port();
        let driver: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let proc = Proc::spawn(
            "chromedriver",
            Path::new(CHROMEDRIVER),
            &[format!("--port={port}")],
            profile.0.join("chromedriver.log"),
        );
        let deadline = Instant::now() + WAIT;
        while !matches!(driver_request(driver, "GET", "/status", None), Ok((200, _))) {
            assert!(Instant::now() < deadline, "chromedriver never answered");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.0.join("profile").display()),
                ],
            },
        }}});
        let v = call(driver, "POST", "/session", Some(caps));
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        Browser {
            driver,
            session,
            _proc: proc,
            _profile: profile,
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        call(
            self.driver,
            method,
            &format!("/session/{}{path}", self.session),
            body,
        )["value"]
            .clone()
    }

    fn open(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    fn eval(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// The text of the first element matching `css` ("" if none).
    fn text(&self, css: &str) -> String {
        let script = format!(
            "const e = document.querySelector({}); return e ? e.textContent : '';",
            json!(css)
        );
        self.eval(&script).as_str().unwrap_or("").to_string()
    }

    fn wait_text(&self, what: &str, css: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let t = self.text(css);
            if pred(&t) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {css} is {t:?}; page: {}",
                self.text("main")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn click(&self, css: &str) {
        let script = format!(
            "document.querySelector({}).click(); return true;",
            json!(css)
        );
        assert_eq!(self.eval(&script), json!(true), "click {css}");
    }

    /// Browser console entries of level SEVERE since the last call.
    fn console_errors(&self) -> Vec<String> {
        let v = self.cmd("POST", "/se/log", Some(json!({ "type": "browser" })));
        v.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .map(|e| e["message"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn screenshot(&self, name: &str) {
        let v = self.cmd("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or(""))
            .expect("a base64 PNG");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("screenshot written");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = driver_request(
            self.driver,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
    }
}

/// `target/ui-screenshots` (the test executable is `target/debug/deps/...`).
fn screenshot_dir() -> PathBuf {
    bin_dir()
        .parent()
        .map(|t| t.join("ui-screenshots"))
        .expect("target dir")
}

fn call(driver: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Value {
    let text = body.map(|b| b.to_string());
    let (code, out) = driver_request(driver, method, path, text.as_deref())
        .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
    let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    assert_eq!(code, 200, "WebDriver {method} {path}: {out}");
    v
}

/// One HTTP/1.1 request to chromedriver, reading the answer by its Content-Length
/// (chromedriver keeps connections open, so reading to the end would wait).
fn driver_request(
    driver: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&driver, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {driver}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if raw.len() >= end + 4 + length {
            let code = head
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let text = String::from_utf8_lossy(&raw[end + 4..end + 4 + length]).to_string();
            return Ok((code, text));
        }
    }
    Err(std::io::Error::other(
        "connection closed before the whole answer",
    ))
}

fn scalar(resources: &Value, name: &str) -> f64 {
    resources
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter(|r| r["name"] == name)
                .filter_map(|r| r["scalar"].as_f64())
                .sum()
        })
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn needs_browser_pages_overview_live_tail_and_drain() {
    let mut cluster = Cluster::start(0);
    let listen = format!("127.0.0.1:{}", free_port());
    cluster.add_agent_with(0, &["--listen", &listen, "--isolation", "process"]);
    cluster.wait_agents(1);
    let go = cluster.dir.0.join("go");
    let script = format!(
        "echo started; while [ ! -e {} ]; do sleep 0.1; done; echo printed-after-open; sleep 600",
        go.display()
    );
    let mut fw = Framework::subscribe(cluster.addr, "ui-browser").await;
    let offer = fw.wait_offers(1).await.remove(0);
    fw.accept(
        vec![offer.id],
        vec![launch(vec![shell_task(
            "tail-me",
            "cpus:1;mem:32",
            &script,
        )])],
        None,
    )
    .await
    .expect("accept");
    fw.wait_for("tail-me RUNNING", |s| {
        s.get("tail-me")
            .is_some_and(|x| state_of(x) == agora_proto::TaskState::Running)
    })
    .await;
    let state = cluster.state();
    let agent_id = state["agents"][0]["id"]
        .as_str()
        .expect("agent")
        .to_string();
    let base = cluster.url();
    let browser = Browser::start();

    // Every page loads without console errors.
    let pages = [
        ("overview", "#/overview".to_string(), "Overview"),
        ("roles", "#/roles".to_string(), "Roles"),
        ("frameworks", "#/frameworks".to_string(), "Frameworks"),
        (
            "framework",
            format!("#/frameworks/{}", fw.id),
            "Framework ui-browser",
        ),
        ("agents", "#/agents".to_string(), "Agents"),
        ("agent", format!("#/agents/{agent_id}"), "Agent e2e-agent-0"),
        ("tasks", "#/tasks".to_string(), "Tasks"),
    ];
    for (name, hash, title) in &pages {
        browser.open(&format!("{base}/{hash}"));
        browser.wait_text(&format!("the {name} page"), "h1", |t| t == *title);
        let errors = browser.console_errors();
        assert!(errors.is_empty(), "{name}: console errors {errors:?}");
        browser.screenshot(name);
    }

    // The overview's numbers are the state's.
    browser.open(&format!("{base}/#/overview"));
    browser.wait_text("the overview", "h1", |t| t == "Overview");
    let state = cluster.state();
    let cpus: f64 = state["agents"]
        .as_array()
        .map(|a| a.iter().map(|x| scalar(&x["resources"], "cpus")).sum())
        .unwrap_or(0.0);
    let allocated: f64 = state["agents"]
        .as_array()
        .map(|a| a.iter().map(|x| scalar(&x["allocated"], "cpus")).sum())
        .unwrap_or(0.0);
    let running = state["tasks"]
        .as_array()
        .map(|t| t.iter().filter(|x| x["state"] == "RUNNING").count())
        .unwrap_or(0);
    let shown = |css: &str| browser.wait_text(css, css, |t| !t.is_empty());
    assert_eq!(shown("#ov-cpus-total").parse::<f64>().ok(), Some(cpus));
    assert_eq!(
        shown("#ov-cpus-allocated").parse::<f64>().ok(),
        Some(allocated)
    );
    assert_eq!(shown("#ov-agents-registered"), "1");
    assert_eq!(shown("#ov-tasks-RUNNING"), running.to_string());
    assert_eq!(shown("#ov-frameworks-connected"), "1");

    // The live tail shows a line printed after the page opened.
    browser.open(&format!("{base}/#/tasks/{}/tail-me", fw.id));
    browser.wait_text("the first line", "#tail-stdout", |t| t.contains("started"));
    assert!(!browser.text("#tail-stdout").contains("printed-after-open"));
    std::fs::write(&go, "").expect("signal the task");
    browser.wait_text("the line printed later", "#tail-stdout", |t| {
        t.contains("printed-after-open")
    });
    browser.wait_text("the sandbox listing", "#sandbox-table", |t| {
        t.contains("stdout")
    });
    browser.screenshot("task");
    let errors = browser.console_errors();
    assert!(errors.is_empty(), "task page: console errors {errors:?}");

    // A drain started in the UI takes effect on the agent.
    browser.open(&format!("{base}/#/agents/{agent_id}"));
    browser.wait_text("the agent page", "#agent-status", |t| t == "registered");
    browser.eval("document.getElementById('grace').value = '1'; return true;");
    browser.click("#drain");
    cluster.wait_until("the agent drained", |s| {
        s["agents"][0]["status"]
            .as_str()
            .is_some_and(|st| st == "draining" || st == "deactivated")
    });
    browser.wait_text("the page showing the drain", "#agent-status", |t| {
        t == "draining" || t == "deactivated"
    });
    fw.wait_for("tail-me killed by the drain", |s| {
        s.get("tail-me")
            .is_some_and(|x| state_of(x) == agora_proto::TaskState::Killed)
    })
    .await;
    browser.screenshot("agent-drained");
    let errors = browser.console_errors();
    assert!(errors.is_empty(), "agent page: console errors {errors:?}");
}
