//! The operator commands over the master's HTTP API: `quota`, `weights`, `reserve`,
//! `unreserve`, `volumes`, `agent`, `task kill`, `framework teardown`, `explain`, and the
//! filtered `tasks` list.
//!
//! Each command resolves the names it is given (`resolve`), makes one call, and returns
//! the text to print: the master's JSON as received with `--json` (so it is the HTTP view
//! by construction), a table or a sentence otherwise. The table functions are pure and
//! unit-tested. This module must never change anything the operator did not name.

use agora_resources::Resources;
use serde_json::{Value, json};
use tonic::codegen::http::Method;

use crate::args::{
    AgentCommand, ExplainArgs, FrameworkCommand, QuotaCommand, ResourceOpArgs, TaskCommand,
    TasksArgs, VolumesCommand, WeightsArgs, validate_masters,
};
use crate::client::{Master, encode};
use crate::output;
use crate::resolve::{self, ResolveError};
use crate::table;

async fn connect(master: &crate::args::MasterArg) -> anyhow::Result<Master> {
    let list = validate_masters(&master.master).map_err(ResolveError)?;
    Master::connect(&list, &master.security, false).await
}

fn s(v: &Value, field: &str) -> String {
    match v.get(field) {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(Value::String(_)) => "-".into(),
        // Numbers as people write them: 2, 0.5 (serde_json writes a float 2 as "2.0").
        Some(Value::Number(n)) => n
            .as_f64()
            .map(|f| f.to_string())
            .unwrap_or_else(|| n.to_string()),
        Some(other) => other.to_string(),
    }
}

/// Resources in the JSON form as flag syntax (`-` when empty).
fn res(v: &Value) -> String {
    match Resources::from_json(&v.to_string()) {
        Ok(r) if r.is_empty() => "-".into(),
        Ok(r) => r.to_string(),
        Err(_) => v.to_string(),
    }
}

// ---- quota and weights ---------------------------------------------------------------

/// The table of `GET /api/v1/quota`.
pub fn quota_table(quotas: &Value) -> String {
    let text = |v: &Value, f: &str| match v.get(f).and_then(Value::as_str) {
        Some(t) if !t.is_empty() => t.to_string(),
        _ => "-".into(),
    };
    let rows: Vec<Vec<String>> = quotas
        .as_array()
        .into_iter()
        .flatten()
        .map(|q| {
            vec![
                text(q, "role"),
                text(q, "guarantee"),
                text(q, "limit"),
                text(q, "consumed"),
            ]
        })
        .collect();
    table::render(&["ROLE", "GUARANTEE", "LIMIT", "CONSUMED"], &rows)
}

/// The table of `GET /api/v1/weights`.
pub fn weights_table(weights: &Value) -> String {
    let rows: Vec<Vec<String>> = weights
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| vec![s(w, "role"), s(w, "weight")])
        .collect();
    table::render(&["ROLE", "WEIGHT"], &rows)
}

pub async fn quota(cmd: QuotaCommand) -> anyhow::Result<String> {
    match cmd {
        QuotaCommand::List(a) => {
            let m = connect(&a.master).await?;
            let v = m.get("/api/v1/quota").await?;
            Ok(if a.json {
                output::json(&v)
            } else {
                quota_table(&v)
            })
        }
        QuotaCommand::Set(a) => {
            for (flag, text) in [
                ("--guarantee", Some(&a.guarantee)),
                ("--limit", a.limit.as_ref()),
            ] {
                if let Some(t) = text {
                    Resources::parse(t).map_err(|e| ResolveError(format!("{flag}: {e}")))?;
                }
            }
            let m = connect(&a.master).await?;
            let body = json!({
                "role": a.role,
                "guarantee": a.guarantee,
                "limit": a.limit,
                "force": a.force,
            });
            m.send(Method::PUT, "/api/v1/quota", Some(&body)).await?;
            Ok(format!("quota of role '{}' set\n", a.role))
        }
        QuotaCommand::Remove(a) => {
            let m = connect(&a.master).await?;
            m.send(
                Method::DELETE,
                &format!("/api/v1/quota?role={}", encode(&a.role)),
                None,
            )
            .await?;
            Ok(format!("quota of role '{}' removed\n", a.role))
        }
    }
}

/// `ROLE=WEIGHT` pairs, or a usage error naming the bad one.
pub fn parse_weights(items: &[String]) -> Result<Vec<(String, f64)>, ResolveError> {
    items
        .iter()
        .map(|item| {
            let (role, w) = item.split_once('=').ok_or_else(|| {
                ResolveError(format!("'{item}': weights are given as ROLE=WEIGHT"))
            })?;
            let weight: f64 = w
                .trim()
                .parse()
                .map_err(|_| ResolveError(format!("'{item}': the weight '{w}' is not a number")))?;
            Ok((role.trim().to_string(), weight))
        })
        .collect()
}

pub async fn weights(a: WeightsArgs) -> anyhow::Result<String> {
    let set = parse_weights(&a.set)?;
    let m = connect(&a.read.master).await?;
    if set.is_empty() {
        let v = m.get("/api/v1/weights").await?;
        return Ok(if a.read.json {
            output::json(&v)
        } else {
            weights_table(&v)
        });
    }
    let body = Value::Array(
        set.iter()
            .map(|(role, weight)| json!({"role": role, "weight": weight}))
            .collect(),
    );
    m.send(Method::PUT, "/api/v1/weights", Some(&body)).await?;
    let names: Vec<String> = set.iter().map(|(r, w)| format!("{r}={w}")).collect();
    Ok(format!("weights set: {}\n", names.join(" ")))
}

// ---- reservations and volumes --------------------------------------------------------

/// Which resource operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceOp {
    Reserve,
    Unreserve,
    CreateVolumes,
    DestroyVolumes,
}

impl ResourceOp {
    fn path(self) -> &'static str {
        match self {
            ResourceOp::Reserve => "/api/v1/reserve",
            ResourceOp::Unreserve => "/api/v1/unreserve",
            ResourceOp::CreateVolumes => "/api/v1/volumes/create",
            ResourceOp::DestroyVolumes => "/api/v1/volumes/destroy",
        }
    }

    fn field(self) -> &'static str {
        match self {
            ResourceOp::Reserve | ResourceOp::Unreserve => "resources",
            _ => "volumes",
        }
    }

    fn done(self) -> &'static str {
        match self {
            ResourceOp::Reserve => "reserved",
            ResourceOp::Unreserve => "unreserved",
            ResourceOp::CreateVolumes => "volumes created",
            ResourceOp::DestroyVolumes => "volumes destroyed",
        }
    }
}

pub async fn resource_op(op: ResourceOp, a: ResourceOpArgs) -> anyhow::Result<String> {
    let parsed =
        Resources::parse(&a.resources).map_err(|e| ResolveError(format!("{}: {e}", op.field())))?;
    let m = connect(&a.master).await?;
    let agent = resolve::agent_id(&m, &a.agent).await?;
    let body = json!({ "agent_id": agent, op.field(): parsed.to_string() });
    m.send(Method::POST, op.path(), Some(&body)).await?;
    Ok(format!("{} on agent {agent}: {parsed}\n", op.done()))
}

/// Every persistent volume of `GET /api/v1/agents`, a row each.
pub fn volumes_table(agents: &Value) -> String {
    let rows: Vec<Vec<String>> = volume_rows(agents)
        .into_iter()
        .map(|(agent, host, r)| {
            let (role, principal) = match &r.reservation {
                Some(res) => (res.role.clone(), res.principal.clone().unwrap_or_default()),
                None => ("*".into(), String::new()),
            };
            let v = r
                .volume
                .clone()
                .unwrap_or_else(|| agora_resources::Volume::new(String::new(), String::new()));
            vec![
                agent,
                host,
                v.persistence_id,
                v.container_path,
                role,
                if principal.is_empty() {
                    "-".into()
                } else {
                    principal
                },
                r.value.to_string(),
            ]
        })
        .collect();
    table::render(
        &[
            "AGENT",
            "HOSTNAME",
            "VOLUME",
            "PATH",
            "ROLE",
            "PRINCIPAL",
            "DISK_MB",
        ],
        &rows,
    )
}

fn volume_rows(agents: &Value) -> Vec<(String, String, agora_resources::Resource)> {
    let mut out = Vec::new();
    for a in agents.as_array().into_iter().flatten() {
        let Some(r) = a
            .get("resources")
            .and_then(|r| Resources::from_json(&r.to_string()).ok())
        else {
            continue;
        };
        for item in r.iter().filter(|i| i.volume.is_some()) {
            out.push((s(a, "id"), s(a, "hostname"), item.clone()));
        }
    }
    out
}

/// The JSON of `agora volumes list --json`: the volumes of `GET /api/v1/agents`, each
/// with its agent.
pub fn volumes_json(agents: &Value) -> Value {
    Value::Array(
        volume_rows(agents)
            .into_iter()
            .map(|(agent, hostname, r)| {
                json!({
                    "agent_id": agent,
                    "hostname": hostname,
                    "volume": one(r),
                })
            })
            .collect(),
    )
}

fn one(r: agora_resources::Resource) -> Value {
    let mut all = Resources::new();
    match all.push(r) {
        Ok(()) => all.to_json(),
        Err(_) => Value::Null,
    }
}

pub async fn volumes(cmd: VolumesCommand) -> anyhow::Result<String> {
    match cmd {
        VolumesCommand::List(a) => {
            let m = connect(&a.master).await?;
            let agents = m.get("/api/v1/agents").await?;
            Ok(if a.json {
                output::json(&volumes_json(&agents))
            } else {
                volumes_table(&agents)
            })
        }
        VolumesCommand::Create(a) => resource_op(ResourceOp::CreateVolumes, a).await,
        VolumesCommand::Destroy(a) => resource_op(ResourceOp::DestroyVolumes, a).await,
    }
}

// ---- agents, tasks, frameworks -------------------------------------------------------

pub async fn agent(cmd: AgentCommand) -> anyhow::Result<String> {
    let (arg, action, body, done) = match cmd {
        AgentCommand::Deactivate(a) => (
            a,
            "deactivate",
            None,
            "deactivated: no more offers from it; its tasks keep running",
        ),
        AgentCommand::Reactivate(a) => (
            a,
            "reactivate",
            None,
            "reactivated: its resources are offered again",
        ),
        AgentCommand::Gone(a) => (
            a,
            "gone",
            None,
            "marked gone: its tasks are reported GONE_BY_OPERATOR",
        ),
        AgentCommand::Drain(d) => {
            if !(d.grace.is_finite() && d.grace >= 0.0) {
                return Err(ResolveError(format!(
                    "--grace must be a number of seconds >= 0, got {}",
                    d.grace
                ))
                .into());
            }
            (
                d.agent,
                "drain",
                Some(json!({"grace_period_seconds": d.grace, "mark_gone": d.mark_gone})),
                "draining: deactivated, its tasks are being stopped",
            )
        }
    };
    let m = connect(&arg.master).await?;
    let id = resolve::agent_id(&m, &arg.agent).await?;
    m.send(
        Method::POST,
        &format!("/api/v1/agents/{}/{action}", encode(&id)),
        body.as_ref(),
    )
    .await?;
    Ok(format!("agent {id} {done}\n"))
}

pub async fn task(cmd: TaskCommand) -> anyhow::Result<String> {
    match cmd {
        TaskCommand::Kill(a) => {
            let m = connect(&a.master).await?;
            let (framework, task) = resolve::task(&m, &a.task, a.framework.as_deref()).await?;
            m.send(
                Method::POST,
                &format!(
                    "/api/v1/tasks/{}/{}/kill",
                    encode(&framework),
                    encode(&task)
                ),
                None,
            )
            .await?;
            Ok(format!(
                "kill of task {task} (framework {framework}) sent to its agent\n"
            ))
        }
    }
}

pub async fn framework(cmd: FrameworkCommand) -> anyhow::Result<String> {
    match cmd {
        FrameworkCommand::Teardown(a) => {
            let m = connect(&a.master).await?;
            let id = resolve::framework_id(&m, &a.framework).await?;
            m.send(
                Method::POST,
                &format!("/api/v1/frameworks/{}/teardown", encode(&id)),
                None,
            )
            .await?;
            Ok(format!(
                "framework {id} torn down: its tasks are killed, its offers rescinded\n"
            ))
        }
    }
}

pub async fn explain(a: ExplainArgs) -> anyhow::Result<String> {
    let m = connect(&a.read.master).await?;
    let query = match (&a.role, &a.framework) {
        (Some(role), _) => format!("role={}", encode(role)),
        (None, Some(f)) => format!("framework={}", encode(&resolve::framework_id(&m, f).await?)),
        (None, None) => {
            return Err(ResolveError("give a framework or --role ROLE".into()).into());
        }
    };
    let v = m.get(&format!("/api/v1/allocator/explain?{query}")).await?;
    if a.read.json {
        return Ok(output::json(&v));
    }
    let e: agora_views::explain::Explanation = serde_json::from_value(v).map_err(|e| {
        crate::client::ApiError::Protocol(format!("the explanation does not read: {e}"))
    })?;
    Ok(agora_views::explain::describe(&e))
}

/// `agora tasks` with its filters: every page of `GET /api/v1/tasks`.
pub async fn tasks(a: TasksArgs) -> anyhow::Result<String> {
    let m = connect(&a.read.master).await?;
    let mut query = Vec::new();
    if let Some(state) = &a.state {
        let upper = state.to_ascii_uppercase();
        let name = upper.strip_prefix("TASK_").unwrap_or(&upper);
        let known = agora_proto::v1::TaskState::from_str_name(name)
            .filter(|s| *s != agora_proto::v1::TaskState::Unspecified);
        let Some(st) = known else {
            return Err(ResolveError(format!(
                "--state '{state}' is not a task state (e.g. running, finished, failed, killed, lost)"
            ))
            .into());
        };
        query.push(format!("state={}", st.as_str_name()));
    }
    if let Some(f) = &a.framework {
        query.push(format!(
            "framework_id={}",
            encode(&resolve::framework_id(&m, f).await?)
        ));
    }
    if let Some(g) = &a.agent {
        query.push(format!(
            "agent_id={}",
            encode(&resolve::agent_id(&m, g).await?)
        ));
    }
    let tasks = resolve::all_tasks(&m, &query.join("&")).await?;
    Ok(if a.read.json {
        output::json(&Value::Array(tasks))
    } else {
        task_rows_table(&tasks)
    })
}

/// The task table from task views (the same columns as `agora state`'s).
pub fn task_rows_table(tasks: &[Value]) -> String {
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            let message = t
                .get("status")
                .map(|st| s(st, "message"))
                .unwrap_or_else(|| "-".into());
            vec![
                s(t, "id"),
                s(t, "name"),
                s(t, "framework_id"),
                s(t, "agent_id"),
                s(t, "state"),
                t.get("resources").map(res).unwrap_or_else(|| "-".into()),
                message,
            ]
        })
        .collect();
    table::render(
        &[
            "ID",
            "NAME",
            "FRAMEWORK",
            "AGENT",
            "STATE",
            "RESOURCES",
            "MESSAGE",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_role_equals_number() {
        assert_eq!(
            parse_weights(&["eng=2".into(), "ml = 0.5".into()]).unwrap(),
            vec![("eng".to_string(), 2.0), ("ml".to_string(), 0.5)]
        );
        let e = parse_weights(&["eng".into()]).unwrap_err();
        assert!(e.0.contains("ROLE=WEIGHT"), "{e}");
        let e = parse_weights(&["eng=heavy".into()]).unwrap_err();
        assert!(e.0.contains("not a number"), "{e}");
    }

    #[test]
    fn quota_and_weight_tables() {
        let q = json!([{"role": "eng", "guarantee": "cpus:2", "limit": null, "consumed": ""}]);
        let t = quota_table(&q);
        assert_eq!(
            t.lines()
                .nth(1)
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>(),
            ["eng", "cpus:2", "-", "-"]
        );
        let w = weights_table(&json!([{"role": "eng", "weight": 2.5}]));
        assert_eq!(w, "ROLE  WEIGHT\neng   2.5\n");
    }

    #[test]
    fn volumes_are_found_in_agent_resources() {
        let r = Resources::parse(
            "cpus:4;disk(db,dynamic,principal=ops):100;disk(db,dynamic,principal=ops,volume=pg,path=data):1024",
        )
        .unwrap();
        let agents = json!([{"id": "a1", "hostname": "h1", "resources": r.to_json()}]);
        let t = volumes_table(&agents);
        let row: Vec<&str> = t.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(row, ["a1", "h1", "pg", "data", "db", "ops", "1024"]);
        assert_eq!(t.lines().count(), 2, "{t}");
        let j = volumes_json(&agents);
        assert_eq!(j[0]["agent_id"], "a1");
        assert_eq!(j[0]["volume"][0]["volume"]["persistence_id"], "pg");
    }

    #[test]
    fn task_rows_show_state_and_message() {
        let t = task_rows_table(&[json!({
            "id": "web-0", "name": "web", "framework_id": "f1", "agent_id": "a1",
            "state": "FAILED", "resources": Resources::parse("cpus:1").unwrap().to_json(),
            "status": {"message": "exit 3"}
        })]);
        let row = t.lines().nth(1).unwrap();
        assert!(
            row.contains("FAILED") && row.contains("cpus:1") && row.contains("exit 3"),
            "{t}"
        );
    }
}
