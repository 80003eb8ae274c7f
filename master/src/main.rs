//! `agora-master`: runs one master.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agora_master::{MasterConfig, RunningMaster, clock::SystemClock};
use anyhow::{Context, bail};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "agora-master",
    version,
    about = "Agora master: allocates cluster resources to frameworks"
)]
struct Flags {
    /// Address for gRPC and HTTP.
    #[arg(long, default_value = "127.0.0.1:5050")]
    listen: SocketAddr,
    /// Directory for the master's persistent data.
    #[arg(long, default_value = "/tmp/agora-master")]
    data_dir: PathBuf,
    /// Allocation policy.
    #[arg(long, default_value = "drf")]
    allocator: String,
    /// Seed for the allocator's tie-breaking.
    #[arg(long, default_value_t = 0)]
    allocator_seed: u64,
    /// Period of the allocation cycle that expires filters (events allocate at once).
    #[arg(long, default_value_t = 1000)]
    allocation_interval_ms: u64,
    /// Heartbeat interval agents must keep.
    #[arg(long, default_value_t = 15.0)]
    agent_heartbeat_seconds: f64,
    /// Missed heartbeats before an agent is unreachable.
    #[arg(long, default_value_t = 5)]
    agent_max_missed_heartbeats: u32,
    /// HEARTBEAT events to frameworks.
    #[arg(long, default_value_t = 15.0)]
    framework_heartbeat_seconds: f64,
    /// Seconds before an unanswered offer is rescinded (0 disables).
    #[arg(long, default_value_t = 60.0)]
    offer_timeout_seconds: f64,
    /// Role weights, e.g. `spark=2.5,marathon=1.5`.
    #[arg(long, default_value = "")]
    weights: String,
}

fn parse_weights(text: &str) -> anyhow::Result<Vec<(String, f64)>> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((role, w)) = item.split_once('=') else {
            bail!("weight '{item}' is not ROLE=WEIGHT");
        };
        let w: f64 = w
            .trim()
            .parse()
            .with_context(|| format!("weight '{item}': not a number"))?;
        if !w.is_finite() || w <= 0.0 {
            bail!("weight '{item}': must be > 0");
        }
        agora_resources::validate_role(role.trim()).with_context(|| format!("weight '{item}'"))?;
        out.push((role.trim().to_string(), w));
    }
    Ok(out)
}

fn seconds(flag: &str, v: f64) -> anyhow::Result<Duration> {
    if !v.is_finite() || v <= 0.0 {
        bail!("--{flag} must be a positive number of seconds, got {v}");
    }
    Ok(Duration::from_secs_f64(v))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let flags = Flags::parse();
    if flags.allocation_interval_ms == 0 {
        bail!("--allocation-interval-ms must be > 0");
    }
    if flags.agent_max_missed_heartbeats == 0 {
        bail!("--agent-max-missed-heartbeats must be > 0");
    }
    let config = MasterConfig {
        listen: flags.listen,
        data_dir: flags.data_dir,
        allocator: flags.allocator,
        allocator_seed: flags.allocator_seed,
        allocation_interval: Duration::from_millis(flags.allocation_interval_ms),
        agent_heartbeat: seconds("agent-heartbeat-seconds", flags.agent_heartbeat_seconds)?,
        agent_max_missed_heartbeats: flags.agent_max_missed_heartbeats,
        framework_heartbeat: seconds(
            "framework-heartbeat-seconds",
            flags.framework_heartbeat_seconds,
        )?,
        offer_timeout: match flags.offer_timeout_seconds {
            0.0 => None,
            s => Some(seconds("offer-timeout-seconds", s)?),
        },
        weights: parse_weights(&flags.weights)?,
        ..MasterConfig::default()
    };
    let master = RunningMaster::start(config, Arc::new(SystemClock))
        .await
        .context("starting the master")?;
    tracing::info!(addr = %master.addr, master_id = %master.master_id, "agora-master listening (gRPC and HTTP)");
    println!(
        "agora-master listening on {} (gRPC, and HTTP at http://{}/)",
        master.addr, master.addr
    );
    master.serve(shutdown_signal()).await.context("serving")?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; stopping only on Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_parse() {
        assert_eq!(
            parse_weights("spark=2.5, marathon=1.5").expect("ok"),
            vec![("spark".into(), 2.5), ("marathon".into(), 1.5)]
        );
        assert!(parse_weights("").expect("ok").is_empty());
        assert!(parse_weights("spark").is_err());
        assert!(parse_weights("spark=0").is_err());
        assert!(parse_weights("spark=x").is_err());
    }
}
