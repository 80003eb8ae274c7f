//! The cluster watcher: every interval, read the agents and the usage reports from the
//! master's Operator API (`GetState`, `GetUsage`) over the driver's connection, and hand
//! the service a [`ClusterView`]: which agents are draining (their instances are replaced
//! at once), the agents' addresses (for service discovery) and this framework's
//! containers' usage (for autoscaling).
//!
//! An edge: it translates and resolves names, and must never decide anything (the core
//! does). A failed read is logged and skipped; the next interval tries again.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use agora_sdk::Driver;
use agora_sdk::proto::{ClusterState, Empty, UsageResponse};

use crate::autoscale::Sample;
use crate::core::{AgentFacts, ClusterView};
use crate::service::Service;
use crate::time::Millis;

/// How often the cluster is read unless configured.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// How long a hostname lookup may take.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(1);
/// Hostnames whose address is remembered (the cache is emptied when it grows past this).
pub const RESOLVED_MAX: usize = 10_000;

/// The IP of an agent from what it advertises: its address (`ip:port`, `[v6]:port`, or
/// `host:port`) when that holds an IP, else its hostname when that is one. `None`: a name
/// to resolve.
pub fn literal_ip(address: &str, hostname: &str) -> Option<IpAddr> {
    if let Ok(a) = address.parse::<SocketAddr>() {
        return Some(a.ip());
    }
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.trim_matches(|c| c == '[' || c == ']')
        .parse()
        .ok()
        .or_else(|| hostname.parse().ok())
}

/// The view of `state` and `usage` for the framework `framework_id`. `resolved` gives the
/// address of names that are not IPs.
pub fn view(
    framework_id: &str,
    state: &ClusterState,
    usage: &UsageResponse,
    resolved: &HashMap<String, IpAddr>,
) -> ClusterView {
    let agents = state
        .agents
        .iter()
        .filter_map(|a| {
            let info = a.info.as_ref()?;
            let ip = literal_ip(&info.address, &info.hostname).or_else(|| {
                let host = info.address.rsplit_once(':').map_or("", |(h, _)| h);
                resolved
                    .get(host)
                    .or_else(|| resolved.get(&info.hostname))
                    .copied()
            });
            Some(AgentFacts {
                id: info.id.clone(),
                hostname: info.hostname.clone(),
                ip,
                draining: a.status == "draining",
            })
        })
        .collect();
    let mut samples = Vec::new();
    for agent in &usage.agents {
        let at_ms = (agent.reported_at_seconds.max(0.0) * 1000.0).round() as Millis;
        for c in &agent.containers {
            if c.framework_id != framework_id || c.task_id.is_empty() {
                continue;
            }
            samples.push((
                c.task_id.clone(),
                Sample {
                    cpu_time_ns: c.cpu_time_ns,
                    memory_bytes: c.memory_bytes,
                    memory_limit_bytes: c.memory_limit_bytes.unwrap_or(0),
                    at_ms,
                },
            ));
        }
    }
    ClusterView {
        agents,
        usage: samples,
    }
}

/// Names of agents that need a lookup (neither address nor hostname is an IP).
fn names_to_resolve(state: &ClusterState) -> Vec<String> {
    state
        .agents
        .iter()
        .filter_map(|a| a.info.as_ref())
        .filter(|i| literal_ip(&i.address, &i.hostname).is_none())
        .map(|i| match i.address.rsplit_once(':') {
            Some((h, _)) if !h.is_empty() => h.to_string(),
            _ => i.hostname.clone(),
        })
        .filter(|h| !h.is_empty())
        .collect()
}

/// Read the cluster every `interval` and hand each view to `service`, until the service
/// stops.
pub async fn watch(driver: Driver, service: Service, interval: Duration) {
    let mut every = tokio::time::interval(interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut resolved: HashMap<String, IpAddr> = HashMap::new();
    let mut warned = false;
    loop {
        every.tick().await;
        let (Some(framework_id), Ok(mut operator)) = (driver.framework_id(), driver.operator())
        else {
            continue;
        };
        let timeout = driver.call_timeout();
        let state = tokio::time::timeout(timeout, operator.get_state(Empty {})).await;
        let usage = tokio::time::timeout(timeout, operator.get_usage(Empty {})).await;
        let (state, usage) = match (state, usage) {
            (Ok(Ok(s)), Ok(Ok(u))) => (s.into_inner(), u.into_inner()),
            (s, u) => {
                let why = |r: Result<Result<_, tonic::Status>, _>| match r {
                    Err(_) => "timed out".to_string(),
                    Ok(Err(status)) => format!("{:?}: {}", status.code(), status.message()),
                    Ok(Ok(_)) => "ok".to_string(),
                };
                let (s, u) = (why(s.map(|r| r.map(|_| ()))), why(u.map(|r| r.map(|_| ()))));
                if warned {
                    tracing::debug!(state = %s, usage = %u, "cannot read the cluster");
                } else {
                    // Once: without it there is no autoscaling, no early drain replacement
                    // and no agent addresses for DNS; everything else works.
                    tracing::warn!(state = %s, usage = %u,
                        "cannot read the cluster from the master's Operator API \
                         (GetState, GetUsage); retrying every interval");
                    warned = true;
                }
                continue;
            }
        };
        for name in names_to_resolve(&state) {
            if resolved.contains_key(&name) {
                continue;
            }
            if resolved.len() >= RESOLVED_MAX {
                resolved.clear();
            }
            let lookup = tokio::net::lookup_host((name.clone(), 0));
            if let Ok(Ok(mut addrs)) = tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await
                && let Some(a) = addrs.next()
            {
                resolved.insert(name, a.ip());
            }
        }
        if service
            .cluster(view(&framework_id, &state, &usage, &resolved))
            .await
            .is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_sdk::proto::{AgentInfo, AgentState, AgentUsage, ContainerUsage};

    #[test]
    fn literal_addresses() {
        let cases = [
            ("127.0.0.5:5051", "h", Some("127.0.0.5")),
            ("[::1]:5051", "h", Some("::1")),
            ("h1:7000", "10.0.0.1", Some("10.0.0.1")),
            ("", "10.0.0.2", Some("10.0.0.2")),
            ("h1:7000", "h1", None),
            ("", "e2e-agent-0", None),
        ];
        for (address, host, want) in cases {
            assert_eq!(
                literal_ip(address, host),
                want.map(|w| w.parse().unwrap()),
                "{address} {host}"
            );
        }
    }

    #[test]
    fn a_view_keeps_this_framework_and_names_draining_agents() {
        let agent = |id: &str, address: &str, host: &str, status: &str| AgentState {
            info: Some(AgentInfo {
                id: id.into(),
                hostname: host.into(),
                address: address.into(),
                ..Default::default()
            }),
            status: status.into(),
            ..Default::default()
        };
        let state = ClusterState {
            agents: vec![
                agent("A1", "127.0.0.7:1", "x", "registered"),
                agent("A2", "", "named", "draining"),
            ],
            ..Default::default()
        };
        let c = |fw: &str, task: &str, cpu: u64| ContainerUsage {
            framework_id: fw.into(),
            task_id: task.into(),
            cpu_time_ns: cpu,
            memory_bytes: 5,
            memory_limit_bytes: Some(10),
            ..Default::default()
        };
        let usage = UsageResponse {
            agents: vec![AgentUsage {
                agent_id: "A1".into(),
                reported_at_seconds: 12.5,
                containers: vec![c("F", "t1", 100), c("other", "t2", 1), c("F", "", 3)],
                ..Default::default()
            }],
        };
        assert_eq!(names_to_resolve(&state), vec!["named".to_string()]);
        let resolved = HashMap::from([("named".to_string(), "127.0.0.9".parse().unwrap())]);
        let v = view("F", &state, &usage, &resolved);
        assert_eq!(v.agents.len(), 2);
        assert_eq!(v.agents[0].ip, Some("127.0.0.7".parse().unwrap()));
        assert!(!v.agents[0].draining);
        assert_eq!(v.agents[1].ip, Some("127.0.0.9".parse().unwrap()));
        assert!(v.agents[1].draining);
        assert_eq!(
            v.usage,
            vec![(
                "t1".to_string(),
                Sample {
                    cpu_time_ns: 100,
                    memory_bytes: 5,
                    memory_limit_bytes: 10,
                    at_ms: 12_500
                }
            )]
        );
    }
}
