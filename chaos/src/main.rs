//! `agora-chaos`: a bounded chaos soak on real processes (see the crate documentation).
//!
//! ```text
//! sudo agora-chaos --seconds 60 --seed 1
//! ```
//!
//! As root it creates the run's namespaces, bridge and tmpfs work directories, re-executes
//! itself inside the master's namespace to run the harness, removes everything it created
//! and exits 0 only when no invariant broke.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use agora_chaos::net::{Hosts, Names};
use agora_chaos::{Config, run_inner};
use anyhow::Context;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    about = "Chaos on a real Agora cluster across network namespaces; checks nothing is lost"
)]
struct Args {
    /// Seconds of faults under load (the settle phase comes after).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Seed of the fault schedule and of the framework's tasks.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Agents, each in its own network namespace.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=16))]
    agents: u64,
    /// Directory holding agora-master and agora-agent (default: this binary's).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Size of each agent's tmpfs work directory, in MiB.
    #[arg(long, default_value_t = 16)]
    tmpfs_mib: u32,
    /// Keep the run's directory (logs, the master's data) afterwards.
    #[arg(long)]
    keep: bool,
    /// Internal: the harness half, run inside the master's namespace.
    #[arg(long, hide = true)]
    inner: Option<String>,
    /// Internal: the run's directory.
    #[arg(long, hide = true)]
    dir: Option<PathBuf>,
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let exe = std::env::current_exe().context("this binary's path")?;
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => exe
            .parent()
            .map(PathBuf::from)
            .context("this binary's directory")?,
    };
    if let (Some(run), Some(dir)) = (&args.inner, &args.dir) {
        let config = Config {
            seed: args.seed,
            seconds: args.seconds,
            agents: args.agents as usize,
            bin_dir,
            dir: dir.clone(),
            run: run.clone(),
        };
        let runtime = tokio::runtime::Runtime::new()?;
        let report = runtime.block_on(run_inner(config))?;
        print!("{report}");
        return Ok(if report.violations.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }

    anyhow::ensure!(
        nix::unistd::Uid::effective().is_root(),
        "agora-chaos needs root (network namespaces, tmpfs mounts)"
    );
    agora_chaos::net::sweep_stale(&std::env::temp_dir());
    let run = std::process::id().to_string();
    let dir = std::env::temp_dir().join(format!("agora-chaos-{run}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let names = Names::new(&run, args.agents as usize);
    let status = {
        let hosts = Hosts::create(names.clone(), &dir, args.tmpfs_mib)?;
        let status = Command::new("ip")
            .args(["netns", "exec", &hosts.names.master_ns()])
            .arg(&exe)
            .args(["--inner", &run, "--dir"])
            .arg(&dir)
            .args(["--seed", &args.seed.to_string()])
            .args(["--seconds", &args.seconds.to_string()])
            .args(["--agents", &args.agents.to_string()])
            .arg("--bin-dir")
            .arg(&bin_dir)
            .status()
            .context("running the harness in the master's namespace")?;
        drop(hosts);
        status
    };
    if args.keep || !status.success() {
        eprintln!("the run's logs and data: {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
