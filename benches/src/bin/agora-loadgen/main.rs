//! `agora-loadgen`: the scale harness. Emulated agents and frameworks speak the real gRPC
//! protocols to a real `agora-master` process over loopback and measure launch throughput
//! and latency, offer latency, master memory and failover recovery. Every run is bounded in
//! time and count, writes `report.json` and SVG charts to a results directory, and kills the
//! master it started on the way out (also on error and Ctrl-C).
//!
//! Modules: `agent` and `framework` (the emulators), `cluster` (master + emulators of one
//! run), `scenarios`, `ui` (the web UI's overview timed in a browser), `stats`, `report`,
//! `master` (process control and sampling).

#![deny(unsafe_code)]

mod agent;
mod cluster;
mod framework;
mod master;
mod report;
mod scenarios;
mod shared;
mod stats;
mod ui;
/// The browser tests' WebDriver client (std + serde_json only), for `ui-overview`.
#[path = "../../../../master/tests/support/webdriver.rs"]
mod webdriver;

/// glibc's allocator spent a quarter of the harness's time under load in its own bookkeeping
/// (free-list consolidation and chunk unlinking); mimalloc's per-thread pages do not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "agora-loadgen",
    about = "Scale harness: emulated agents and frameworks against a real agora-master"
)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// Flags shared by every scenario.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Use a running master at this address instead of spawning one (no memory figures,
    /// no failover; sizes lists run against the same master).
    #[arg(long, global = true)]
    pub master: Option<SocketAddr>,
    /// The agora-master binary to spawn [default: agora-master beside this executable].
    #[arg(long, global = true)]
    pub master_bin: Option<PathBuf>,
    /// Extra flag for the spawned master, repeatable (e.g. --master-arg=--allocation-interval-ms=1000).
    #[arg(long = "master-arg", global = true, allow_hyphen_values = true)]
    pub master_args: Vec<String>,
    /// RUST_LOG of the spawned master (its log goes to the results directory).
    #[arg(long, global = true, default_value = "warn")]
    pub master_log: String,
    /// Results directory [default: target/loadgen/<scenario>-<unix time>].
    #[arg(long, global = true)]
    pub results: Option<PathBuf>,
    /// Worker threads of the harness's one tokio runtime.
    #[arg(long, global = true, default_value_t = 2)]
    pub threads: usize,
    /// Emulated agents per HTTP/2 connection. Each agent holds one stream open (its
    /// command stream) plus its calls in flight; the master allows 10,000 concurrent
    /// streams per connection.
    #[arg(long, global = true, default_value_t = 150)]
    pub agents_per_channel: usize,
    /// Agents registering per second (staggered start).
    #[arg(long, global = true, default_value_t = 5000.0)]
    pub register_rate: f64,
    /// Seconds between reads of the master's `/metrics` and CPU. Each read walks every
    /// agent and task on the master's actor (a few ms at 10,000 agents), so it shows in
    /// latency tails; a longer interval measures the master with fewer probes.
    #[arg(long, global = true, default_value_t = 1.0,
          value_parser = positive_secs)]
    pub sample_secs: f64,
    /// Resources of every emulated agent.
    #[arg(long, global = true, default_value = "cpus:8;mem:16384;disk:65536")]
    pub agent_resources: String,
    /// Emulated agents report RUNNING only, without STARTING first (STARTING is optional
    /// in the protocol). Halves the status updates and acknowledgements per task; launch
    /// latency then lacks one acknowledgement round trip.
    #[arg(long, global = true)]
    pub skip_starting: bool,
    /// Longest wait between an emulator's reconnection attempts, ms.
    #[arg(long, global = true, default_value_t = 1000)]
    pub reconnect_max_ms: u64,
    /// Hard cap on the whole command, seconds; the run aborts (and kills the master) after it.
    #[arg(long, global = true, default_value_t = 3600)]
    pub max_seconds: u64,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Scenario {
    /// N agents, F frameworks, tasks of 30 s +/- 10 s: tasks reaching RUNNING per second and
    /// ACCEPT -> RUNNING latency. `--agents` takes a list: one fresh master per size.
    Launch(scenarios::LaunchArgs),
    /// Resources freed on an agent -> offer received, p50/p99, per cluster size.
    OfferLatency(scenarios::OfferArgs),
    /// Master resident memory against agents and against tasks; slopes KiB/agent, KiB/task.
    Memory(scenarios::MemoryArgs),
    /// kill -9 the master under load, restart it on the same data dir and address; time until
    /// every agent re-registered and every framework re-subscribed; no task lost.
    Failover(scenarios::FailoverArgs),
    /// Load the master (agents, frameworks, running tasks), then time the web UI's
    /// overview in headless chromium until interactive, page load after page load.
    UiOverview(ui::UiArgs),
}

impl Scenario {
    fn name(&self) -> &'static str {
        match self {
            Scenario::Launch(_) => "launch",
            Scenario::OfferLatency(_) => "offer-latency",
            Scenario::Memory(_) => "memory",
            Scenario::Failover(_) => "failover",
            Scenario::UiOverview(_) => "ui-overview",
        }
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "agora_loadgen=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.common.threads.max(1))
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    // Emulated frameworks get a thread of their own, as the separate processes they are in
    // production: on the agents' runtime each framework was one task among thousands of
    // agents, polled too rarely to keep up with the updates of all of them.
    let framework_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("frameworks")
        .enable_all()
        .build()
        .context("building the frameworks' tokio runtime")?;
    framework::use_runtime(framework_runtime.handle().clone());
    let results = match &cli.common.results {
        Some(p) => p.clone(),
        None => report::default_dir(&target_dir(), cli.scenario.name()),
    };
    let cap = Duration::from_secs(cli.common.max_seconds);
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = scenarios::run(&cli, results) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
            _ = tokio::time::sleep(cap) => Err(anyhow::anyhow!("hit --max-seconds {}", cap.as_secs())),
        }
    });
    // The scenario future (and the master it owned) is dropped by now; emulator tasks end
    // with the runtime.
    runtime.shutdown_timeout(Duration::from_secs(2));
    framework_runtime.shutdown_timeout(Duration::from_secs(2));
    let dir = outcome?;
    println!("results: {}", dir.display());
    Ok(())
}

/// `target/` of the workspace this executable was built in (target/<profile>/agora-loadgen).
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent()?.parent().map(|t| t.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("target"))
}

fn positive_secs(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() && (0.05..=3600.0).contains(&x) => Ok(x),
        _ => Err(format!(
            "'{v}' is not a number of seconds from 0.05 to 3600"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
        let cli =
            Cli::try_parse_from(["agora-loadgen", "launch", "--agents", "10,20"]).expect("parses");
        match cli.scenario {
            Scenario::Launch(a) => assert_eq!(a.agents, vec![10, 20]),
            other => panic!("{other:?}"),
        }
    }
}
