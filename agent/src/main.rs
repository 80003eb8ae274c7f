//! `agora-agent`: the agent binary. Parses flags, picks the containerizer (`--isolation`),
//! installs signal handlers and runs [`agora_agent::run`].
//!
//! Exit status: 0 after SIGINT/SIGTERM (all tasks killed); non-zero when the flags are
//! invalid, the agent cannot start (e.g. its checkpoint forbids the configuration), or the
//! master shut the agent down. A SIGKILLed agent leaves its tasks running; started again
//! with the same work directory it re-attaches to them.

use std::io::IsTerminal;

use agora_agent::AgentExit;
use agora_agent::cli::AgentArgs;
use anyhow::Context;
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let args = AgentArgs::parse();
    let isolation = args.isolation;
    let linux_config = args.linux_config().context("invalid agent configuration")?;
    let config = args.into_config().context("invalid agent configuration")?;
    let containerizer =
        agora_agent::containerizer::select(isolation, &config.work_dir, linux_config)?;

    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let shutdown = async move {
        tokio::select! {
            _ = sigterm.recv() => tracing::info!("SIGTERM received"),
            _ = sigint.recv() => tracing::info!("SIGINT received"),
        }
    };

    match agora_agent::run(config, containerizer, shutdown).await? {
        AgentExit::Stopped => {
            tracing::info!("agent stopped");
            Ok(())
        }
        AgentExit::RemovedByMaster { reason } => {
            tracing::error!(%reason, "the master shut this agent down");
            anyhow::bail!("shut down by the master: {reason}")
        }
    }
}
