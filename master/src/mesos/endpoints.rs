//! The read-only endpoints Mesos tools read, in Mesos's JSON shapes, from the same
//! service reads as `/api/v1/state` (so the ACLs' view filter applies the same way).
//!
//! Owns the shapes only: Mesos's names for agents (`slaves`), its resource maps
//! (`{"cpus": 1.0, "mem": 128.0, "ports": "[31000-32000]"}`), task state names and metric
//! names. It must never compute anything the master does not report.

use std::collections::BTreeMap;

use agora_mesos::endpoints::{attributes, command, reserved_by_role, resources};
use agora_mesos::translate::{MESOS_VERSION, role_to_mesos, state_name};
use agora_proto::v1;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{MesosState, host_and_port, refusal_of, refuse};
use crate::actor::queries::ExecutorView;
use crate::auth::Caller;

fn caller_of(c: Option<Extension<Caller>>) -> Caller {
    c.map(|Extension(c)| c).unwrap_or_default()
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn agent(a: &v1::AgentState) -> Value {
    let info = a.info.clone().unwrap_or_default();
    let port = info
        .address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(5051);
    let active = a.status == "registered" || a.status == "draining";
    json!({
        "id": info.id,
        "pid": format!("slave(1)@{}", info.address),
        "hostname": info.hostname,
        "port": port,
        "registered_time": secs(a.registered_at_ms),
        "resources": resources(&a.total),
        "used_resources": resources(&a.allocated),
        "offered_resources": resources(&a.offered),
        "reserved_resources": reserved_by_role(&a.total),
        "unreserved_resources": resources(
            &a.total.iter().filter(|r| r.reservation.is_none()).cloned().collect::<Vec<_>>()
        ),
        "attributes": attributes(&info.attributes),
        "active": active,
        "deactivated": a.status == "deactivated" || a.status == "draining",
        "version": MESOS_VERSION,
        "capabilities": ["MULTI_ROLE", "RESERVATION_REFINEMENT"],
        "agora_status": a.status,
    })
}

fn task(t: &v1::TaskRecord) -> Value {
    let info = t.task.clone().unwrap_or_default();
    let statuses: Vec<Value> = t
        .history
        .iter()
        .map(|s| json!({"state": state_name(s.state), "timestamp": secs(s.timestamp_ms)}))
        .collect();
    agora_mesos::endpoints::task(&info, &t.framework_id, t.state, statuses)
}

/// A live custom executor as Mesos's master lists it under its framework.
fn executor(e: &ExecutorView) -> Value {
    let mut v = json!({
        "executor_id": e.info.executor_id,
        "name": e.info.name,
        "framework_id": e.framework_id,
        "slave_id": e.agent_id,
        "agent_id": e.agent_id,
        "type": if e.info.command.is_some() { "CUSTOM" } else { "DEFAULT" },
        "resources": resources(&e.info.resources),
    });
    if let (Some(c), Some(o)) = (&e.info.command, v.as_object_mut()) {
        o.insert("command".into(), command(c));
    }
    v
}

/// An outstanding offer as Mesos's master lists it under its framework.
fn offer(o: &v1::OfferRecord) -> Option<Value> {
    let x = o.offer.as_ref()?;
    Some(json!({
        "id": x.id,
        "framework_id": x.framework_id,
        "slave_id": x.agent_id,
        "agent_id": x.agent_id,
        "hostname": x.hostname,
        "allocation_info": {"role": role_to_mesos(&x.role)},
        "resources": resources(&x.resources),
        "attributes": attributes(&x.attributes),
        "created_time": secs(o.created_at_ms),
    }))
}

/// What Mesos lists under each framework besides its tasks.
#[derive(Default)]
struct Listed<'a> {
    tasks: Vec<&'a v1::TaskRecord>,
    executors: Vec<&'a ExecutorView>,
    offers: Vec<&'a v1::OfferRecord>,
}

fn framework(f: &v1::FrameworkState, listed: &Listed) -> Value {
    let tasks = &listed.tasks;
    let info = f.info.clone().unwrap_or_default();
    let roles: Vec<String> = info.roles.iter().map(|r| role_to_mesos(r)).collect();
    let (done, live): (Vec<&&v1::TaskRecord>, Vec<&&v1::TaskRecord>) = tasks
        .iter()
        .partition(|t| v1::TaskState::try_from(t.state).is_ok_and(|s| s.is_terminal()));
    json!({
        "id": info.id,
        "name": info.name,
        "user": info.user,
        "principal": info.principal,
        "hostname": info.hostname,
        "webui_url": info.webui_url,
        "role": roles.first().cloned().unwrap_or_else(|| "*".into()),
        "roles": roles,
        "failover_timeout": info.failover_timeout_seconds,
        "checkpoint": info.checkpoint,
        "active": f.status == "connected",
        "connected": f.status == "connected",
        "recovered": false,
        "registered_time": secs(f.registered_at_ms),
        "used_resources": resources(&f.allocated),
        "offered_resources": resources(&f.offered),
        "resources": resources(&f.allocated),
        "capabilities": agora_mesos::translate::framework_info_to_mesos(&info)
            .capabilities
            .iter()
            .filter_map(|c| c.r#type.and_then(<agora_mesos::schema::v1::CapabilityType as agora_mesos::json::MesosEnum>::name_of))
            .collect::<Vec<_>>(),
        "tasks": live.iter().map(|t| task(t)).collect::<Vec<_>>(),
        "completed_tasks": done.iter().map(|t| task(t)).collect::<Vec<_>>(),
        "unreachable_tasks": [],
        "offers": listed.offers.iter().filter_map(|o| offer(o)).collect::<Vec<_>>(),
        "executors": listed.executors.iter().map(|e| executor(e)).collect::<Vec<_>>(),
        "agora_status": f.status,
    })
}

fn by_framework<'a>(
    s: &'a v1::ClusterState,
    executors: &'a [ExecutorView],
) -> BTreeMap<&'a str, Listed<'a>> {
    let mut by: BTreeMap<&str, Listed> = BTreeMap::new();
    for t in &s.tasks {
        by.entry(t.framework_id.as_str()).or_default().tasks.push(t);
    }
    for e in executors {
        by.entry(e.framework_id.as_str())
            .or_default()
            .executors
            .push(e);
    }
    for o in &s.offers {
        if let Some(x) = &o.offer {
            by.entry(x.framework_id.as_str())
                .or_default()
                .offers
                .push(o);
        }
    }
    by
}

/// Active and completed frameworks with their tasks, executors and offers.
fn frameworks_of(s: &v1::ClusterState, executors: &[ExecutorView]) -> (Vec<Value>, Vec<Value>) {
    let by = by_framework(s, executors);
    let none = Listed::default();
    let mut active = Vec::new();
    let mut completed = Vec::new();
    for f in &s.frameworks {
        let id = f.info.as_ref().map(|i| i.id.as_str()).unwrap_or("");
        let v = framework(f, by.get(id).unwrap_or(&none));
        if f.status == "torn_down" {
            completed.push(v);
        } else {
            active.push(v);
        }
    }
    (active, completed)
}

fn pid(headers: &HeaderMap) -> String {
    let (host, port) = host_and_port(headers);
    format!("master@{host}:{port}")
}

async fn cluster(st: &MesosState, caller: &Caller) -> Result<v1::ClusterState, Response> {
    st.service
        .state(caller)
        .await
        .map_err(|e| refuse(refusal_of(&e)))
}

/// The cluster state and the live custom executors `caller` may view.
async fn cluster_and_executors(
    st: &MesosState,
    caller: &Caller,
) -> Result<(v1::ClusterState, Vec<ExecutorView>), Response> {
    let s = cluster(st, caller).await?;
    let executors = st
        .service
        .executors(caller)
        .await
        .map_err(|e| refuse(refusal_of(&e)))?;
    Ok((s, executors))
}

fn ok(v: Value) -> Response {
    axum::Json(v).into_response()
}

pub async fn state(
    State(st): State<MesosState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
) -> Response {
    let (s, executors) = match cluster_and_executors(&st, &caller_of(caller)).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (hostname, port) = host_and_port(&headers);
    let (frameworks, completed) = frameworks_of(&s, &executors);
    let count = |status: &str| s.agents.iter().filter(|a| a.status == status).count();
    json_state(
        &s,
        json!({
            "version": MESOS_VERSION,
            "agora_version": st.service.version().0,
            "id": s.master_id,
            "pid": pid(&headers),
            "hostname": hostname,
            "leader": pid(&headers),
            "leader_info": {"id": s.master_id, "hostname": hostname, "port": port},
            "activated_slaves": count("registered") + count("draining"),
            "deactivated_slaves": count("deactivated"),
            "unreachable_slaves": count("unreachable"),
            "flags": st.service.flags(),
            "frameworks": frameworks,
            "completed_frameworks": completed,
            "orphan_tasks": [],
            "unregistered_frameworks": [],
        }),
    )
}

fn json_state(s: &v1::ClusterState, mut v: Value) -> Response {
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "slaves".into(),
            Value::Array(
                s.agents
                    .iter()
                    .filter(|a| a.status != "removed" && a.status != "gone")
                    .map(agent)
                    .collect(),
            ),
        );
    }
    ok(v)
}

pub async fn state_summary(
    State(st): State<MesosState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
) -> Response {
    let s = match cluster(&st, &caller_of(caller)).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let counts = |tasks: &mut dyn Iterator<Item = &v1::TaskRecord>| {
        let mut m = Map::new();
        for t in tasks {
            let k = state_name(t.state).to_string();
            let n = m.get(&k).and_then(Value::as_u64).unwrap_or(0);
            m.insert(k, json!(n + 1));
        }
        m
    };
    let slaves: Vec<Value> = s
        .agents
        .iter()
        .filter(|a| a.status != "removed" && a.status != "gone")
        .map(|a| {
            let mut v = agent(a);
            let id = a.info.as_ref().map(|i| i.id.clone()).unwrap_or_default();
            let mut it = s
                .tasks
                .iter()
                .filter(|t| t.task.as_ref().is_some_and(|x| x.agent_id == id));
            if let Some(o) = v.as_object_mut() {
                o.extend(counts(&mut it));
            }
            v
        })
        .collect();
    let frameworks: Vec<Value> = s
        .frameworks
        .iter()
        .filter(|f| f.status != "torn_down")
        .map(|f| {
            let info = f.info.clone().unwrap_or_default();
            let mut v = json!({
                "id": info.id,
                "name": info.name,
                "hostname": info.hostname,
                "webui_url": info.webui_url,
                "active": f.status == "connected",
                "used_resources": resources(&f.allocated),
                "offered_resources": resources(&f.offered),
            });
            let mut it = s.tasks.iter().filter(|t| t.framework_id == info.id);
            if let Some(o) = v.as_object_mut() {
                o.extend(counts(&mut it));
            }
            v
        })
        .collect();
    let (hostname, _) = host_and_port(&headers);
    ok(json!({"hostname": hostname, "slaves": slaves, "frameworks": frameworks}))
}

pub async fn frameworks(
    State(st): State<MesosState>,
    caller: Option<Extension<Caller>>,
) -> Response {
    match cluster_and_executors(&st, &caller_of(caller)).await {
        Ok((s, executors)) => {
            let (frameworks, completed) = frameworks_of(&s, &executors);
            ok(json!({
                "frameworks": frameworks,
                "completed_frameworks": completed,
                "unregistered_frameworks": [],
            }))
        }
        Err(r) => r,
    }
}

pub async fn slaves(State(st): State<MesosState>, caller: Option<Extension<Caller>>) -> Response {
    match cluster(&st, &caller_of(caller)).await {
        Ok(s) => json_state(&s, json!({"recovered_slaves": []})),
        Err(r) => r,
    }
}

/// `/master/tasks` query: Mesos's paging and filters.
#[derive(serde::Deserialize)]
pub struct TasksQuery {
    limit: Option<usize>,
    offset: Option<usize>,
    order: Option<String>,
    framework_id: Option<String>,
    task_id: Option<String>,
}

/// Mesos's default and largest page of `/master/tasks`.
const TASKS_LIMIT_DEFAULT: usize = 100;

pub async fn tasks(
    State(st): State<MesosState>,
    caller: Option<Extension<Caller>>,
    query: Result<Query<TasksQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return refuse(agora_mesos::Refusal::bad_request(
            "'limit' and 'offset' must be non-negative integers, 'order' asc or des",
        ));
    };
    let s = match cluster(&st, &caller_of(caller)).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut tasks: Vec<&v1::TaskRecord> = s
        .tasks
        .iter()
        .filter(|t| q.framework_id.as_ref().is_none_or(|f| &t.framework_id == f))
        .filter(|t| {
            q.task_id
                .as_ref()
                .is_none_or(|id| t.task.as_ref().is_some_and(|x| &x.task_id == id))
        })
        .collect();
    let started = |t: &v1::TaskRecord| t.history.first().map_or(0, |s| s.timestamp_ms);
    tasks.sort_by_key(|t| started(t));
    match q.order.as_deref() {
        None | Some("des") => tasks.reverse(),
        Some("asc") => {}
        Some(_) => {
            return refuse(agora_mesos::Refusal::bad_request(
                "'order' must be 'asc' or 'des'",
            ));
        }
    }
    let page: Vec<Value> = tasks
        .into_iter()
        .skip(q.offset.unwrap_or(0))
        .take(q.limit.unwrap_or(TASKS_LIMIT_DEFAULT))
        .map(task)
        .collect();
    ok(json!({ "tasks": page }))
}

pub async fn roles(State(st): State<MesosState>, caller: Option<Extension<Caller>>) -> Response {
    match st.service.roles(&caller_of(caller)).await {
        Ok(roles) => ok(json!({
            "roles": roles.iter().map(|r| json!({
                "name": role_to_mesos(&r.name),
                "weight": r.weight,
                "frameworks": r.frameworks,
                "resources": resources(&r.allocated),
                "allocated": resources(&r.allocated),
            })).collect::<Vec<_>>()
        })),
        Err(e) => refuse(refusal_of(&e)),
    }
}

/// `/metrics/snapshot` with Mesos's metric names, from the cluster state.
pub async fn metrics_snapshot(
    State(st): State<MesosState>,
    caller: Option<Extension<Caller>>,
) -> Response {
    let s = match cluster(&st, &caller_of(caller)).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut m = Map::new();
    let live: Vec<&v1::AgentState> = s
        .agents
        .iter()
        .filter(|a| a.status != "removed" && a.status != "gone")
        .collect();
    for (name, key) in [
        ("cpus", "cpus"),
        ("mem", "mem"),
        ("disk", "disk"),
        ("gpus", "gpus"),
    ] {
        let sum = |pick: &dyn Fn(&v1::AgentState) -> &Vec<v1::Resource>| {
            live.iter()
                .map(|a| resources(pick(a))[key].as_f64().unwrap_or(0.0))
                .sum::<f64>()
        };
        let total = sum(&|a| &a.total);
        let used = sum(&|a| &a.allocated);
        m.insert(format!("master/{name}_total"), json!(total));
        m.insert(format!("master/{name}_used"), json!(used));
        m.insert(
            format!("master/{name}_percent"),
            json!(if total > 0.0 { used / total } else { 0.0 }),
        );
    }
    let agents = |status: &[&str]| {
        live.iter()
            .filter(|a| status.contains(&a.status.as_str()))
            .count()
    };
    m.insert(
        "master/slaves_active".into(),
        json!(agents(&["registered", "draining"])),
    );
    m.insert(
        "master/slaves_inactive".into(),
        json!(agents(&["deactivated"])),
    );
    m.insert(
        "master/slaves_connected".into(),
        json!(agents(&["registered", "draining", "deactivated"])),
    );
    m.insert(
        "master/slaves_disconnected".into(),
        json!(agents(&["disconnected"])),
    );
    m.insert(
        "master/slaves_unreachable".into(),
        json!(agents(&["unreachable"])),
    );
    let fws = |status: &str| s.frameworks.iter().filter(|f| f.status == status).count();
    m.insert("master/frameworks_active".into(), json!(fws("connected")));
    m.insert(
        "master/frameworks_connected".into(),
        json!(fws("connected")),
    );
    m.insert(
        "master/frameworks_disconnected".into(),
        json!(fws("disconnected")),
    );
    m.insert(
        "master/frameworks_inactive".into(),
        json!(fws("disconnected")),
    );
    let mut by_state: BTreeMap<&'static str, u64> = BTreeMap::new();
    for t in &s.tasks {
        *by_state.entry(state_name(t.state)).or_default() += 1;
    }
    for state in [
        "TASK_STAGING",
        "TASK_STARTING",
        "TASK_RUNNING",
        "TASK_KILLING",
        "TASK_FINISHED",
        "TASK_FAILED",
        "TASK_KILLED",
        "TASK_ERROR",
        "TASK_LOST",
        "TASK_DROPPED",
        "TASK_UNREACHABLE",
        "TASK_GONE",
        "TASK_GONE_BY_OPERATOR",
    ] {
        let name = state.trim_start_matches("TASK_").to_lowercase();
        m.insert(
            format!("master/tasks_{name}"),
            json!(by_state.get(state).copied().unwrap_or(0)),
        );
    }
    m.insert("master/outstanding_offers".into(), json!(s.offers.len()));
    m.insert("master/elected".into(), json!(1));
    ok(Value::Object(m))
}

/// `/master/redirect` and `/redirect`: 307 to the leading master, with the scheme it
/// serves (Mesos answers `//host:port`, which a client resolves against the scheme it
/// used; naming it also serves clients that do not resolve relative locations). Only the
/// leader gets here (a follower's HTTP routes answer 307 to the leader first,
/// `server::follow_leader`), so the leader is the master that was asked.
pub async fn redirect(State(st): State<MesosState>, headers: HeaderMap) -> Response {
    let (host, port) = host_and_port(&headers);
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let scheme = st.service.scheme();
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, format!("{scheme}://{host}:{port}"))],
    )
        .into_response()
}

pub async fn version(State(st): State<MesosState>) -> Response {
    let (agora, sha) = st.service.version();
    ok(json!({
        "version": MESOS_VERSION,
        "git_sha": sha,
        "build_date": "",
        "build_time": 0,
        "build_user": "",
        "agora_version": agora,
    }))
}
