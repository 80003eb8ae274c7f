//! `agora-example-executor`: a custom executor that runs each task's command (or its data
//! as a shell script) as a child process and answers framework messages with `echo:` + the
//! message. Started by the agent; configured by the `AGORA_EXECUTOR_*` environment.

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
    let executor = CommandExecutor::new(
        CommandOptions {
            echo_messages: true,
        },
        sandbox,
    );
    agora_executor::run(executor)
        .await
        .context("executor driver failed")?;
    tracing::info!("executor done");
    Ok(())
}
