//! The web UI in a real browser: Debian's chromium, headless, driven over WebDriver
//! (chromedriver) against a real master and agent. Every page loads without console
//! errors and is screenshotted under `target/ui-screenshots/`; the overview's numbers
//! equal `/api/v1/state`; a task's live tail shows a line printed after the page
//! opened; a drain started in the UI takes effect on the agent.
//!
//! Over TLS (a master with a test certificate): the page loads and live updates arrive.
//!
//! Named `needs_browser_*`: scripts/test.sh installs chromium and chromium-driver, or
//! filters these out (nextest shows them as skipped) where it cannot. The WebDriver
//! client is `support/webdriver.rs` (plain JSON over HTTP on loopback, no WebDriver
//! crate), shared with the scale harness's web UI figure.

#[path = "support/pki.rs"]
mod pki;
mod support;
#[path = "support/webdriver.rs"]
mod webdriver;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use support::*;

/// The shared WebDriver client, panicking on errors as a test does; its profile and
/// chromedriver's log live in a temporary directory.
struct Browser {
    inner: webdriver::Browser,
    _profile: TempDir,
}

impl Browser {
    fn start() -> Browser {
        Self::start_with(false)
    }

    /// `accept_insecure_certs`: trust the test CA's certificates (TLS masters).
    fn start_with(accept_insecure_certs: bool) -> Browser {
        let profile = TempDir::new("chromium");
        let inner = webdriver::Browser::start(&profile.0, free_port(), accept_insecure_certs)
            .unwrap_or_else(|e| panic!("browser: {e}"));
        Browser {
            inner,
            _profile: profile,
        }
    }

    fn open(&self, url: &str) {
        self.inner.open(url).expect("open");
    }

    fn eval(&self, script: &str) -> Value {
        self.inner.eval(script).expect("eval")
    }

    fn text(&self, css: &str) -> String {
        self.inner.text(css).expect("text")
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

    fn console_errors(&self) -> Vec<String> {
        self.inner.console_errors().expect("console log")
    }

    fn screenshot(&self, name: &str) {
        let png = base64::engine::general_purpose::STANDARD
            .decode(self.inner.screenshot_base64().expect("screenshot"))
            .expect("a base64 PNG");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("screenshot written");
    }
}

/// `target/ui-screenshots` (the test executable is `target/debug/deps/...`).
fn screenshot_dir() -> PathBuf {
    bin_dir()
        .parent()
        .map(|t| t.join("ui-screenshots"))
        .expect("target dir")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn needs_browser_over_tls_page_loads_and_updates_live() {
    let dir = TempDir::new("ui-tls");
    let pki = pki::make_pki(&dir.0);
    let addr = format!("127.0.0.1:{}", free_port());
    let master_args: Vec<String> = [
        "--listen",
        &addr,
        "--data-dir",
        &dir.0.join("master").display().to_string(),
        "--tls-cert",
        &pki.server_cert,
        "--tls-key",
        &pki.server_key,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let master = Proc::spawn(
        "master",
        &binary("agora-master"),
        &master_args,
        dir.0.join("master.log"),
    );
    let base = format!("https://{addr}");
    let deadline = Instant::now() + WAIT;
    while !master.log_text().contains("agora-master listening") {
        assert!(
            Instant::now() < deadline,
            "master never listened:\n{}",
            master.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let browser = Browser::start_with(true);
    browser.open(&format!("{base}/#/agents"));
    browser.wait_text("the agents page over TLS", "h1", |t| t == "Agents");
    assert_eq!(
        browser.eval("return location.protocol;"),
        json!("https:"),
        "served over TLS"
    );
    browser.wait_text("the event stream over TLS", "#live", |t| t == "live");
    assert!(!browser.text("#agents-table").contains("tls-ui-agent"));

    // An agent registers (over TLS too): the open page shows it without a reload.
    let agent_args: Vec<String> = [
        "--master",
        &base,
        "--tls-ca",
        &pki.ca,
        "--work-dir",
        &dir.0.join("agent-0").display().to_string(),
        "--resources",
        AGENT_RESOURCES,
        "--hostname",
        "tls-ui-agent",
        "--isolation",
        "process",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut agent = Proc::spawn(
        "agent-0",
        &binary("agora-agent"),
        &agent_args,
        dir.0.join("agent-0.log"),
    );
    browser.eval("window.agoraNoReload = true; return true;");
    browser.wait_text("the new agent, live", "#agents-table", |t| {
        t.contains("tls-ui-agent")
    });
    assert_eq!(
        browser.eval("return window.agoraNoReload === true;"),
        json!(true),
        "the page was updated in place, not reloaded"
    );
    browser.screenshot("agents-tls");

    // The overview's live numbers over TLS.
    browser.open(&format!("{base}/#/overview"));
    browser.wait_text("the overview over TLS", "#ov-agents-registered", |t| {
        t == "1"
    });
    assert_eq!(
        browser
            .text("#ov-cpus-total")
            .parse::<f64>()
            .ok()
            .map(|c| c > 0.0),
        Some(true)
    );
    let errors = browser.console_errors();
    assert!(errors.is_empty(), "console errors over TLS: {errors:?}");
    agent.stop();
    drop(master);
}
