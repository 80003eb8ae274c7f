//! A minimal WebDriver client for Debian's chromium driven by chromedriver: one
//! chromedriver process and one headless browser session, both ended on drop. The calls
//! are plain JSON over HTTP/1.1 on loopback, so no WebDriver crate is needed.
//!
//! Shared by the browser tests (`master/tests/e2e_ui_browser.rs`) and the scale harness's
//! web UI figure (`agora-loadgen ui-overview`), which include this file by path; it uses
//! only `std` and `serde_json`.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// How long chromedriver may take to start answering.
const DRIVER_START: Duration = Duration::from_secs(30);

/// Whether chromium and chromedriver are installed where this client looks.
pub fn available() -> bool {
    Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists()
}

pub struct Browser {
    driver: SocketAddr,
    session: String,
    child: Child,
}

impl Browser {
    /// Start chromedriver on `port` and a headless chromium session with its profile
    /// under `dir`. `accept_insecure_certs`: TLS certificates the browser cannot verify
    /// (a test CA) are accepted.
    pub fn start(dir: &Path, port: u16, accept_insecure_certs: bool) -> Result<Browser, String> {
        if !available() {
            return Err(format!(
                "{CHROMIUM} and {CHROMEDRIVER} are needed (Debian: apt-get install chromium chromium-driver)"
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let log = std::fs::File::create(dir.join("chromedriver.log"))
            .map_err(|e| format!("chromedriver log: {e}"))?;
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {CHROMEDRIVER}: {e}"))?;
        let driver: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut browser = Browser {
            driver,
            session: String::new(),
            child,
        };
        let deadline = Instant::now() + DRIVER_START;
        while !matches!(request(driver, "GET", "/status", None), Ok((200, _))) {
            if Instant::now() > deadline {
                return Err("chromedriver never answered".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": accept_insecure_certs,
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", dir.join("profile").display()),
                ],
            },
        }}});
        let v = call(driver, "POST", "/session", Some(caps))?;
        browser.session = v["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session: {v}"))?
            .to_string();
        Ok(browser)
    }

    /// One command of this session; its `value`.
    pub fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let v = call(
            self.driver,
            method,
            &format!("/session/{}{path}", self.session),
            body,
        )?;
        Ok(v["value"].clone())
    }

    /// Navigate to `url` (returns once the page's load event fired).
    pub fn open(&self, url: &str) -> Result<(), String> {
        self.cmd("POST", "/url", Some(json!({ "url": url })))
            .map(|_| ())
    }

    /// Run `script` (a function body) in the page; what it returns.
    pub fn eval(&self, script: &str) -> Result<Value, String> {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// The text of the first element matching `css` ("" if none).
    pub fn text(&self, css: &str) -> Result<String, String> {
        let script = format!(
            "const e = document.querySelector({}); return e ? e.textContent : '';",
            json!(css)
        );
        Ok(self.eval(&script)?.as_str().unwrap_or("").to_string())
    }

    /// Browser console entries of level SEVERE since the last call.
    pub fn console_errors(&self) -> Result<Vec<String>, String> {
        let v = self.cmd("POST", "/se/log", Some(json!({ "type": "browser" })))?;
        Ok(v.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .map(|e| e["message"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default())
    }

    /// A screenshot of the window, as base64 PNG.
    pub fn screenshot_base64(&self) -> Result<String, String> {
        Ok(self
            .cmd("GET", "/screenshot", None)?
            .as_str()
            .unwrap_or("")
            .to_string())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = request(
                self.driver,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebDriver call that must answer 200; its JSON.
fn call(
    driver: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let text = body.map(|b| b.to_string());
    let (code, out) = request(driver, method, path, text.as_deref())
        .map_err(|e| format!("WebDriver {method} {path}: {e}"))?;
    if code != 200 {
        return Err(format!("WebDriver {method} {path}: {code} {out}"));
    }
    serde_json::from_str(&out).map_err(|e| format!("WebDriver {method} {path}: {e}: {out}"))
}

/// One HTTP/1.1 request to chromedriver, reading the answer by its Content-Length
/// (chromedriver keeps connections open, so reading to the end would wait).
fn request(
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
