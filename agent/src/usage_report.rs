//! Forwards container usage to the master every usage interval (`UpdateUsage`).
//!
//! Owns nothing: it reads the state actor's containers and their cgroup counters, and sends
//! one report per interval over the current master session. It must never end a session:
//! usage is advisory, so a failed report is logged and the next interval tries again,
//! while liveness stays the heartbeat's business.

use std::time::Duration;

use agora_proto::v1::{self, agent_api_client::AgentApiClient};
use tokio::time::Instant;

use crate::containerizer::Usage;
use crate::state::AgentState;

/// The wire form of one container's usage.
pub fn to_proto(
    framework_id: &str,
    task_id: &str,
    container_id: &str,
    u: &Usage,
) -> v1::ContainerUsage {
    v1::ContainerUsage {
        framework_id: framework_id.to_string(),
        task_id: task_id.to_string(),
        executor_id: String::new(),
        container_id: container_id.to_string(),
        cpu_time_ns: u.cpu_time_ns,
        cpu_user_ns: u.cpu_user_ns,
        cpu_system_ns: u.cpu_system_ns,
        cpu_periods: u.cpu_periods,
        cpu_throttled_periods: u.cpu_throttled_periods,
        cpu_throttled_ns: u.cpu_throttled_ns,
        memory_bytes: u.memory_bytes,
        memory_peak_bytes: u.memory_peak_bytes,
        memory_limit_bytes: u.memory_limit_bytes,
        oom_kills: u.oom_kills,
        pids_current: u.pids_current,
    }
}

/// Usage of every running container that measures it (reading cgroup files blocks, so it
/// runs on the blocking pool).
pub async fn collect(state: &AgentState) -> Vec<v1::ContainerUsage> {
    let containers = state.containers().await;
    tokio::task::spawn_blocking(move || {
        containers
            .into_iter()
            .filter_map(|(key, c)| {
                let usage = c.usage()?;
                let container_id = c.reference().map(|r| r.container_id).unwrap_or_default();
                Some(to_proto(
                    &key.framework_id,
                    &key.task_id,
                    &container_id,
                    &usage,
                ))
            })
            .collect()
    })
    .await
    .unwrap_or_default()
}

/// Sends a report every `interval` until the session ends (the caller drops this future).
pub async fn report_loop(
    mut client: AgentApiClient<crate::master_link::AuthChannel>,
    agent_id: String,
    isolation: String,
    state: AgentState,
    interval: Duration,
    rpc_timeout: Duration,
) {
    let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let report = v1::UsageReport {
            agent_id: agent_id.clone(),
            containers: collect(&state).await,
            isolation: isolation.clone(),
        };
        let count = report.containers.len();
        let mut request = tonic::Request::new(report);
        request.set_timeout(rpc_timeout);
        match tokio::time::timeout(rpc_timeout, client.update_usage(request)).await {
            Ok(Ok(_)) => tracing::debug!(containers = count, "usage reported"),
            Ok(Err(s)) => {
                tracing::warn!("usage report refused: {} ({:?})", s.message(), s.code())
            }
            Err(_) => tracing::warn!("usage report timed out"),
        }
    }
}
