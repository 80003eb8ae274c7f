//! The shape of the cluster state and its parts: `GET /api/v1/state` (and
//! `/api/v1/agents`, `/frameworks`, `/tasks`, `/roles`) on the master, and `agora state`,
//! `agents`, `frameworks`, `tasks` with `--json`. Fields are documented in docs/api.md.

use agora_proto::v1::{
    AgentState, Attribute, ClusterState, FrameworkCapability, FrameworkState, OfferRecord,
    Resource, RoleState, StatusReason, StatusSource, TaskRecord, TaskState, TaskStatus,
    command_info,
};
use agora_resources::{Attributes, Resources};
use serde_json::{Map, Value, json};

/// Resources in the JSON form of `agora-resources`, or `{"invalid": reason}`.
pub fn resources_json(items: &[Resource]) -> Value {
    match Resources::from_proto(items) {
        Ok(r) => r.to_json(),
        Err(e) => json!({ "invalid": e.to_string() }),
    }
}

/// Attributes as `{"name": "value"}`, or `{"invalid": reason}`.
pub fn attributes_json(items: &[Attribute]) -> Value {
    match Attributes::from_proto(items) {
        Ok(a) => Value::Object(
            a.iter()
                .map(|attr| (attr.name.clone(), Value::String(attr.value.to_string())))
                .collect(),
        ),
        Err(e) => json!({ "invalid": e.to_string() }),
    }
}

/// An enum's protocol name, or null for a number the protocol does not define.
fn enum_name<E: TryFrom<i32>>(v: i32, name: impl Fn(E) -> &'static str) -> Value {
    match E::try_from(v) {
        Ok(e) => Value::String(name(e).to_string()),
        Err(_) => Value::Null,
    }
}

/// The whole state: `{"master_id", "agents", "frameworks", "tasks", "offers", "roles"}`.
pub fn state_json(s: &ClusterState) -> Value {
    json!({
        "master_id": s.master_id,
        "agents": s.agents.iter().map(agent_json).collect::<Vec<_>>(),
        "frameworks": s.frameworks.iter().map(framework_json).collect::<Vec<_>>(),
        "tasks": s.tasks.iter().map(task_json).collect::<Vec<_>>(),
        "offers": s.offers.iter().map(offer_json).collect::<Vec<_>>(),
        "roles": s.roles.iter().map(role_json).collect::<Vec<_>>(),
    })
}

pub fn agent_json(a: &AgentState) -> Value {
    let info = a.info.clone().unwrap_or_default();
    json!({
        "id": info.id,
        "hostname": info.hostname,
        "address": info.address,
        "isolation": info.isolation,
        "status": a.status,
        "resources": resources_json(&a.total),
        "allocated": resources_json(&a.allocated),
        "offered": resources_json(&a.offered),
        "attributes": attributes_json(&info.attributes),
        "registered_at_ms": a.registered_at_ms,
        "last_heartbeat_ms": a.last_heartbeat_ms,
    })
}

pub fn framework_json(f: &FrameworkState) -> Value {
    let info = f.info.clone().unwrap_or_default();
    let capabilities: Vec<Value> = info
        .capabilities
        .iter()
        .map(|c| enum_name(*c, |e: FrameworkCapability| e.as_str_name()))
        .collect();
    let labels: Map<String, Value> = info
        .labels
        .iter()
        .map(|l| (l.key.clone(), Value::String(l.value.clone())))
        .collect();
    json!({
        "id": info.id,
        "name": info.name,
        "roles": info.roles,
        "principal": info.principal,
        "user": info.user,
        "hostname": info.hostname,
        "webui_url": info.webui_url,
        "status": f.status,
        "capabilities": capabilities,
        "checkpoint": info.checkpoint,
        "labels": labels,
        "failover_timeout_seconds": info.failover_timeout_seconds,
        "active_tasks": f.active_tasks,
        "allocated": resources_json(&f.allocated),
        "offered": resources_json(&f.offered),
        "registered_at_ms": f.registered_at_ms,
    })
}

pub fn status_json(s: &TaskStatus) -> Value {
    json!({
        "state": enum_name(s.state, |e: TaskState| e.as_str_name()),
        "reason": enum_name(s.reason, |e: StatusReason| e.as_str_name()),
        "source": enum_name(s.source, |e: StatusSource| e.as_str_name()),
        "message": s.message,
        "exit_code": s.exit_code,
        "healthy": s.healthy,
        "timestamp_ms": s.timestamp_ms,
        "uuid": s.uuid,
    })
}

/// The task's agent: from its `TaskInfo`, else from its latest status ("" if neither).
pub fn task_agent(t: &TaskRecord) -> &str {
    match t.task.as_ref().map(|i| i.agent_id.as_str()) {
        Some(a) if !a.is_empty() => a,
        _ => t
            .latest_status
            .as_ref()
            .map(|s| s.agent_id.as_str())
            .unwrap_or(""),
    }
}

pub fn task_json(t: &TaskRecord) -> Value {
    let info = t.task.clone().unwrap_or_default();
    let command = match info.command.as_ref() {
        None => Value::Null,
        Some(c) => {
            let mut m = Map::new();
            match &c.run {
                Some(command_info::Run::Shell(s)) => {
                    m.insert("shell".into(), json!(s));
                }
                Some(command_info::Run::Argv(a)) => {
                    m.insert("argv".into(), json!(a.args));
                }
                None => {}
            }
            m.insert("user".into(), json!(c.user));
            Value::Object(m)
        }
    };
    json!({
        "id": info.task_id,
        "name": info.name,
        "framework_id": t.framework_id,
        "agent_id": task_agent(t),
        "executor_id": info.executor.as_ref().map(|e| e.executor_id.clone()),
        "state": enum_name(t.state, |e: TaskState| e.as_str_name()),
        "resources": resources_json(&info.resources),
        "command": command,
        "status": t.latest_status.as_ref().map(status_json),
        "statuses": t.history.iter().map(status_json).collect::<Vec<_>>(),
    })
}

pub fn offer_json(o: &OfferRecord) -> Value {
    let offer = o.offer.clone().unwrap_or_default();
    json!({
        "id": offer.id,
        "framework_id": offer.framework_id,
        "agent_id": offer.agent_id,
        "hostname": offer.hostname,
        "role": offer.role,
        "resources": resources_json(&offer.resources),
        "attributes": attributes_json(&offer.attributes),
        "created_at_ms": o.created_at_ms,
    })
}

pub fn role_json(r: &RoleState) -> Value {
    json!({
        "name": r.name,
        "weight": r.weight,
        "dominant_share": r.dominant_share,
        "allocated": resources_json(&r.allocated),
        "frameworks": r.frameworks,
    })
}

/// One page of `GET /api/v1/tasks`: `{"tasks": [...], "total": N, "offset": K}`.
pub fn task_page_json<'a>(
    tasks: impl IntoIterator<Item = &'a TaskRecord>,
    total: usize,
    offset: usize,
) -> Value {
    json!({
        "tasks": tasks.into_iter().map(task_json).collect::<Vec<_>>(),
        "total": total,
        "offset": offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_proto::v1::{AgentInfo, CommandInfo, FrameworkInfo, TaskInfo};

    fn res(text: &str) -> Vec<Resource> {
        Resources::parse(text).expect("valid").to_proto()
    }

    #[test]
    fn every_part_has_its_fields() {
        let s = ClusterState {
            master_id: "m".into(),
            agents: vec![AgentState {
                info: Some(AgentInfo {
                    id: "a1".into(),
                    attributes: Attributes::parse("rack:r1").expect("valid").to_proto(),
                    ..Default::default()
                }),
                status: "registered".into(),
                total: res("cpus:4"),
                ..Default::default()
            }],
            frameworks: vec![FrameworkState {
                info: Some(FrameworkInfo {
                    id: "f1".into(),
                    capabilities: vec![FrameworkCapability::PartitionAware as i32, 999],
                    ..Default::default()
                }),
                status: "connected".into(),
                ..Default::default()
            }],
            tasks: vec![TaskRecord {
                task: Some(TaskInfo {
                    task_id: "t1".into(),
                    command: Some(CommandInfo {
                        run: Some(command_info::Run::Shell("true".into())),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                framework_id: "f1".into(),
                state: TaskState::Running as i32,
                latest_status: Some(TaskStatus {
                    agent_id: "a1".into(),
                    exit_code: Some(3),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            offers: vec![],
            roles: vec![RoleState {
                name: "eng".into(),
                weight: 2.5,
                ..Default::default()
            }],
        };
        let v = state_json(&s);
        assert_eq!(
            v["agents"][0]["resources"],
            Resources::parse("cpus:4").expect("valid").to_json()
        );
        assert_eq!(v["agents"][0]["attributes"]["rack"], "r1");
        assert_eq!(v["frameworks"][0]["capabilities"][0], "PARTITION_AWARE");
        assert!(v["frameworks"][0]["capabilities"][1].is_null());
        let t = &v["tasks"][0];
        assert_eq!(t["id"], "t1");
        assert_eq!(t["agent_id"], "a1", "the agent comes from the status");
        assert_eq!(t["state"], "RUNNING");
        assert_eq!(t["command"]["shell"], "true");
        assert_eq!(t["status"]["exit_code"], 3);
        assert_eq!(v["roles"][0]["weight"], 2.5);
        assert!(
            resources_json(&[Resource::default()])
                .get("invalid")
                .is_some()
        );
    }
}
