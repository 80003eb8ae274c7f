//! The `ui-overview` scenario: load a real master with emulated agents, frameworks and
//! running tasks, then open the web UI's overview in a real headless chromium (through
//! the browser tests' WebDriver client) again and again, and time it until interactive.
//!
//! "Interactive" is the page's own mark `agora:overview-interactive`: set once the
//! overview rendered its numbers from the master and bound its handlers, measured from
//! navigation start by the browser's clock. The WebDriver round trips are outside it;
//! the wall time around them is reported beside it.
//!
//! Bounded: the load has a step timeout, each page a `PAGE_TIMEOUT`, the runs a count.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use tracing::info;

use crate::Common;
use crate::cluster::Cluster;
use crate::report::ResultsDir;
use crate::webdriver;

/// Longest wait for one overview to become interactive.
const PAGE_TIMEOUT: Duration = Duration::from_secs(60);
/// Most page loads in one run.
const RUNS_MAX: usize = 1000;

#[derive(Args, Debug, Clone)]
pub struct UiArgs {
    #[arg(long, default_value_t = 10_000)]
    pub agents: usize,
    #[arg(long, default_value_t = 10)]
    pub frameworks: usize,
    /// Tasks running while the page is timed.
    #[arg(long, default_value_t = 100_000)]
    pub tasks: usize,
    #[arg(long, default_value = "cpus:0.1;mem:64")]
    pub task_shape: String,
    /// How long each task runs (a long time: a steady load; short: churn, every ended
    /// task replaced, so events keep flowing while the page loads).
    #[arg(long, default_value_t = 86_400.0)]
    pub task_secs: f64,
    #[arg(long, default_value_t = 0.0)]
    pub task_jitter_secs: f64,
    /// Tasks launched per second while building the load (0: all at once).
    #[arg(long, default_value_t = 0.0)]
    pub launch_rate: f64,
    /// Page loads timed.
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    /// Longest wait to reach the load.
    #[arg(long, default_value_t = 600.0)]
    pub step_timeout_secs: f64,
}

/// One timed page load, in milliseconds.
#[derive(Clone, Copy, Debug)]
struct PageTimes {
    /// Navigation start -> the overview interactive (the page's mark).
    interactive_ms: f64,
    /// Navigation start -> DOMContentLoaded handled.
    dom_content_loaded_ms: f64,
    /// Before the WebDriver navigation -> the mark seen by WebDriver.
    wall_ms: f64,
}

const MARK_SCRIPT: &str = "const m = performance.getEntriesByName('agora:overview-interactive'); \
     const n = performance.getEntriesByType('navigation')[0]; \
     return m.length ? [m[0].startTime, n ? n.domContentLoadedEventEnd : -1] : null;";

/// Time `runs` loads of the overview at `url` (blocking: WebDriver calls are plain
/// synchronous HTTP; the caller runs this off the harness's runtime).
fn time_overview(dir: &std::path::Path, url: &str, runs: usize) -> anyhow::Result<Vec<PageTimes>> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("a free port for chromedriver")?
        .port();
    let browser = webdriver::Browser::start(dir, port, false).map_err(anyhow::Error::msg)?;
    let mut out = Vec::new();
    // Between loads the browser shows a page of the same master (`/health`), so each load
    // is a fresh navigation to the overview without a new renderer process each time.
    let between = url
        .split_once("/#")
        .map_or(url.to_string(), |(origin, _)| format!("{origin}/health"));
    for i in 0..runs {
        browser.open(&between).map_err(anyhow::Error::msg)?;
        // That page's own console lines (its favicon's 404) are not the overview's.
        browser.console_errors().map_err(anyhow::Error::msg)?;
        let t0 = Instant::now();
        browser.open(url).map_err(anyhow::Error::msg)?;
        let times = loop {
            let v = browser.eval(MARK_SCRIPT).map_err(anyhow::Error::msg)?;
            if let Some([a, b]) = v.as_array().map(|a| [a[0].as_f64(), a[1].as_f64()]) {
                break (a.unwrap_or(f64::NAN), b.unwrap_or(f64::NAN));
            }
            if t0.elapsed() > PAGE_TIMEOUT {
                let main = browser.text("main").unwrap_or_default();
                bail!("load {i}: the overview was not interactive within {PAGE_TIMEOUT:?}: {main}");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let errors = browser.console_errors().map_err(anyhow::Error::msg)?;
        if !errors.is_empty() {
            bail!("load {i}: console errors: {errors:?}");
        }
        out.push(PageTimes {
            interactive_ms: times.0,
            dom_content_loaded_ms: times.1,
            wall_ms: t0.elapsed().as_secs_f64() * 1000.0,
        });
    }
    Ok(out)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

pub async fn ui_overview(common: &Common, a: &UiArgs, dir: &ResultsDir) -> anyhow::Result<Value> {
    if !webdriver::available() {
        bail!(
            "ui-overview needs {} and {} (Debian: apt-get install chromium chromium-driver)",
            webdriver::CHROMIUM,
            webdriver::CHROMEDRIVER
        );
    }
    if a.runs == 0 || a.runs > RUNS_MAX {
        bail!("--runs must be 1 to {RUNS_MAX}");
    }
    let shape = crate::scenarios::shape(&a.task_shape)?;
    let per = crate::scenarios::per_agent(&common.agent_resources, &shape)?;
    if a.tasks as u64 > per * a.agents as u64 {
        bail!(
            "{} tasks do not fit on {} agents ({per} each)",
            a.tasks,
            a.agents
        );
    }
    let step_timeout = Duration::from_secs_f64(a.step_timeout_secs);
    let paced = a.launch_rate > 0.0;
    let mut c = Cluster::start(
        common,
        &dir.path.join("cluster"),
        if paced { 0 } else { a.tasks as i64 },
    )
    .await?;
    c.default_task = Duration::from_secs_f64(a.task_secs.max(1.0));
    c.add_agents(a.agents)?;
    c.wait_registered(a.agents, 0, step_timeout).await?;
    let spec = crate::scenarios::fw_spec(shape, a.task_secs, a.task_jitter_secs, 0.0, false);
    for _ in 0..a.frameworks {
        c.add_framework(spec.clone())?;
    }
    let pacer = paced
        .then(|| crate::scenarios::pace_budget(c.shared.clone(), a.tasks as u64, a.launch_rate));
    let load = crate::scenarios::wait_running(&mut c, a.tasks as u64, step_timeout).await;
    if let Some(p) = pacer {
        p.abort();
    }
    let load = load?;
    info!(
        "ui-overview: {} agents, {} tasks RUNNING after {:.1}s; timing the overview",
        a.agents,
        a.tasks,
        load.as_secs_f64()
    );
    let url = format!("http://{}/#/overview", c.master.addr);
    let browser_dir = dir.path.join("browser");
    let runs = a.runs;
    let timed = tokio::task::spawn_blocking(move || time_overview(&browser_dir, &url, runs))
        .await
        .context("the browser task failed")?;
    let running = c.shared.counters.running.load(Ordering::Relaxed);
    let samples = c.sampler.take();
    c.stop().await;
    let times = timed?;
    let interactive: Vec<f64> = times.iter().map(|t| t.interactive_ms).collect();
    let dcl: Vec<f64> = times.iter().map(|t| t.dom_content_loaded_ms).collect();
    let wall: Vec<f64> = times.iter().map(|t| t.wall_ms).collect();
    let round1 = |v: f64| (v * 10.0).round() / 10.0;
    let summary = json!({
        "agents": a.agents,
        "frameworks": a.frameworks,
        "tasks": a.tasks,
        "task_secs": a.task_secs,
        "runs": times.len(),
        "load_running_secs": round1(load.as_secs_f64()),
        "tasks_running_counter": running,
        "overview_interactive_ms_median": round1(median(interactive.clone())),
        "overview_interactive_ms_max": round1(max(&interactive)),
        "dom_content_loaded_ms_median": round1(median(dcl)),
        "wall_ms_median": round1(median(wall.clone())),
        "wall_ms_max": round1(max(&wall)),
        "within_1s": interactive.iter().all(|&ms| ms <= 1000.0),
    });
    info!("ui-overview: {summary}");
    Ok(json!({
        "summary": summary,
        "interactive_ms": interactive,
        "wall_ms": wall,
        "samples": serde_json::to_value(&samples).unwrap_or(Value::Null),
    }))
}
