//! `agora-default-executor`: the executor the agent starts for a task group whose
//! `ExecutorInfo` names no program. Runs every task of the group as a process in the
//! executor's own container (one cgroup), with group semantics: one member failing or
//! being killed kills the rest. Configured by the `AGORA_EXECUTOR_*` environment.

use agora_executor::command::{CommandExecutor, CommandOptions};
use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let sandbox = std::env::current_dir().context("cannot read the working directory")?;
    let executor = CommandExecutor::new(CommandOptions::default(), sandbox);
    agora_executor::run(executor)
        .await
        .context("default executor driver failed")?;
    Ok(())
}
