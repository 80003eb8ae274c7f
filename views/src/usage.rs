//! The shape of `GET /api/v1/usage` and `agora usage --json`.

use agora_proto::v1::{AgentUsage, ContainerUsage, UsageResponse};
use serde_json::{Value, json};

/// `{"agents": [...]}` for the given reports.
pub fn response_json<'a>(agents: impl IntoIterator<Item = &'a AgentUsage>) -> Value {
    let agents: Vec<Value> = agents.into_iter().map(agent_json).collect();
    json!({ "agents": agents })
}

/// Every report of a `GetUsage` answer.
pub fn usage_json(usage: &UsageResponse) -> Value {
    response_json(&usage.agents)
}

/// One agent's latest report.
pub fn agent_json(a: &AgentUsage) -> Value {
    let containers: Vec<Value> = a.containers.iter().map(container_json).collect();
    json!({
        "agent_id": a.agent_id,
        "hostname": a.hostname,
        "isolation": a.isolation,
        "reported_at_seconds": a.reported_at_seconds,
        "containers": containers,
    })
}

/// One container's counters, named as in `ContainerUsage`.
pub fn container_json(c: &ContainerUsage) -> Value {
    json!({
        "framework_id": c.framework_id,
        "task_id": c.task_id,
        "executor_id": c.executor_id,
        "container_id": c.container_id,
        "cpu_time_ns": c.cpu_time_ns,
        "cpu_user_ns": c.cpu_user_ns,
        "cpu_system_ns": c.cpu_system_ns,
        "cpu_periods": c.cpu_periods,
        "cpu_throttled_periods": c.cpu_throttled_periods,
        "cpu_throttled_ns": c.cpu_throttled_ns,
        "memory_bytes": c.memory_bytes,
        "memory_peak_bytes": c.memory_peak_bytes,
        "memory_limit_bytes": c.memory_limit_bytes,
        "oom_kills": c.oom_kills,
        "pids_current": c.pids_current,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_renders_every_counter_and_a_missing_limit_as_null() {
        let usage = UsageResponse {
            agents: vec![AgentUsage {
                agent_id: "a1".into(),
                hostname: "h1".into(),
                isolation: "linux".into(),
                reported_at_seconds: 1.5,
                containers: vec![ContainerUsage {
                    framework_id: "f".into(),
                    task_id: "t".into(),
                    memory_bytes: 7,
                    cpu_throttled_periods: 3,
                    ..Default::default()
                }],
            }],
        };
        let v = usage_json(&usage);
        let a = &v["agents"][0];
        assert_eq!(a["agent_id"], "a1");
        assert_eq!(a["reported_at_seconds"], 1.5);
        let c = &a["containers"][0];
        assert_eq!(c["memory_bytes"], 7);
        assert_eq!(c["cpu_throttled_periods"], 3);
        assert!(c["memory_limit_bytes"].is_null());
        assert_eq!(c.as_object().map(|o| o.len()), Some(15));
    }
}
