//! HTTP endpoints beside gRPC on the master's port: `/health`, `/metrics` (Prometheus
//! text), and the JSON operator views under `/api/v1`. Handlers ask the actor for a
//! snapshot and render it; they never hold or mutate master state. Changes are checked
//! against the ACLs (`Gate::authorize`) before the actor sees them; the state view shows
//! only what the caller may view.

use std::sync::Arc;
use std::time::Duration;

use agora_proto::v1;
use agora_resources::{Attributes, Resources};
use axum::Router;
use axum::extract::Path;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, FromRef, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::actor::{Command, MaintenanceOp, MasterHandle, OpKind};
use crate::auth::{Action, Caller, Gate};
use crate::metrics;

/// An actor that does not answer within this time is reported unhealthy.
const ACTOR_TIMEOUT: Duration = Duration::from_secs(5);

/// What the handlers share: the actor and the security gate.
#[derive(Clone)]
pub struct HttpState {
    pub handle: MasterHandle,
    pub gate: Arc<Gate>,
}

impl FromRef<HttpState> for MasterHandle {
    fn from_ref(s: &HttpState) -> MasterHandle {
        s.handle.clone()
    }
}

impl FromRef<HttpState> for Arc<Gate> {
    fn from_ref(s: &HttpState) -> Arc<Gate> {
        s.gate.clone()
    }
}

/// The caller the auth middleware attached (unauthenticated if it did not run).
fn caller_of(c: Option<Extension<Caller>>) -> Caller {
    c.map(|Extension(c)| c).unwrap_or_default()
}

fn denied(s: tonic::Status) -> Response {
    from_status(s)
}

pub fn router(handle: MasterHandle, gate: Arc<Gate>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route("/api/v1/state", get(state))
        .route("/api/v1/version", get(version))
        .route("/api/v1/usage", get(usage))
        .route("/api/v1/weights", get(get_weights).put(put_weights))
        .route(
            "/api/v1/quota",
            get(get_quota).put(put_quota).delete(delete_quota),
        )
        .route("/api/v1/allocator/explain", get(explain))
        .route("/api/v1/reserve", resource_op_route(OpKind::Reserve))
        .route("/api/v1/unreserve", resource_op_route(OpKind::Unreserve))
        .route("/api/v1/volumes/create", resource_op_route(OpKind::Create))
        .route(
            "/api/v1/volumes/destroy",
            resource_op_route(OpKind::Destroy),
        )
        .route("/api/v1/frameworks/{id}/teardown", post(teardown))
        .route("/api/v1/agents/{id}/deactivate", post(deactivate))
        .route("/api/v1/agents/{id}/reactivate", post(reactivate))
        .route("/api/v1/agents/{id}/drain", post(drain))
        .route("/api/v1/agents/{id}/gone", post(mark_gone))
        .with_state(HttpState { handle, gate })
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

/// The one fallback of the shared port: gRPC callers get UNIMPLEMENTED in gRPC form, HTTP
/// callers a JSON 404.
pub async fn not_found(request: axum::extract::Request) -> Response {
    let path = request.uri().path().to_string();
    let grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if grpc {
        return tonic::Status::unimplemented(format!("no gRPC method at {path}")).into_http();
    }
    error(StatusCode::NOT_FOUND, format!("no endpoint at {path}"))
}

/// Ask the actor, within `ACTOR_TIMEOUT`; a failure or silence is answered 503.
async fn ask_actor<T>(
    handle: &MasterHandle,
    make: impl FnOnce(tokio::sync::oneshot::Sender<T>) -> Command,
) -> Result<T, Response> {
    match tokio::time::timeout(ACTOR_TIMEOUT, handle.ask(make)).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(error(StatusCode::SERVICE_UNAVAILABLE, e.message())),
        Err(_) => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the master did not answer within 5 s",
        )),
    }
}

async fn ask_state(handle: &MasterHandle) -> Result<v1::ClusterState, Response> {
    ask_actor(handle, |reply| Command::State { reply }).await
}

/// Answered by the actor (a wedged actor shows as unavailable) with a ping: probes and the
/// load harness poll this, and the whole cluster state it used to build is megabytes at
/// 10,000 agents.
async fn health(State(handle): State<MasterHandle>) -> Response {
    match ask_actor(&handle, |reply| Command::Ping { reply }).await {
        Ok(master_id) => {
            axum::Json(json!({ "healthy": true, "master_id": master_id })).into_response()
        }
        Err(r) => r,
    }
}

async fn version() -> Response {
    axum::Json(json!({ "version": crate::grpc::operator::VERSION })).into_response()
}

async fn metrics_text(
    State(handle): State<MasterHandle>,
    State(gate): State<Arc<Gate>>,
) -> Response {
    match ask_actor(&handle, |reply| Command::Metrics { reply }).await {
        Ok(s) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            metrics::render(&s.metrics, &s.gauges) + &gate.render_metrics(),
        )
            .into_response(),
        Err(r) => r,
    }
}

async fn state(
    State(handle): State<MasterHandle>,
    State(gate): State<Arc<Gate>>,
    caller: Option<Extension<Caller>>,
) -> Response {
    let caller = caller_of(caller);
    match ask_state(&handle).await {
        Ok(s) => axum::Json(state_json(&gate.filter_state(&caller, s))).into_response(),
        Err(r) => r,
    }
}

#[derive(serde::Deserialize)]
struct UsageQuery {
    agent_id: Option<String>,
}

async fn usage(
    State(handle): State<MasterHandle>,
    State(gate): State<Arc<Gate>>,
    caller: Option<Extension<Caller>>,
    axum::extract::Query(q): axum::extract::Query<UsageQuery>,
) -> Response {
    let usage = match ask_actor(&handle, |reply| Command::Usage { reply }).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let state = if gate.acls_configured() {
        match ask_state(&handle).await {
            Ok(s) => Some(s),
            Err(r) => return r,
        }
    } else {
        None
    };
    let usage = gate.filter_usage(&caller_of(caller), usage, state);
    let agents: Vec<&v1::AgentUsage> = usage
        .agents
        .iter()
        .filter(|a| q.agent_id.as_ref().is_none_or(|id| *id == a.agent_id))
        .collect();
    if let Some(id) = &q.agent_id
        && agents.is_empty()
    {
        return error(
            StatusCode::NOT_FOUND,
            format!("no usage report from agent '{id}' (unknown, unreachable or not reported yet)"),
        );
    }
    axum::Json(agora_views::usage::response_json(agents)).into_response()
}

fn resources(r: &[v1::Resource]) -> Value {
    match Resources::from_proto(r) {
        Ok(r) => r.to_json(),
        Err(e) => json!({ "invalid": e.to_string() }),
    }
}

fn attributes(a: &[v1::Attribute]) -> Value {
    match Attributes::from_proto(a) {
        Ok(attrs) => Value::Object(
            attrs
                .iter()
                .map(|a| (a.name.clone(), Value::String(a.value.to_string())))
                .collect(),
        ),
        Err(e) => json!({ "invalid": e.to_string() }),
    }
}

fn enum_name<E: TryFrom<i32>>(v: i32, name: impl Fn(E) -> &'static str) -> Value {
    match E::try_from(v) {
        Ok(e) => Value::String(name(e).to_string()),
        Err(_) => Value::Null,
    }
}

fn status_json(s: &v1::TaskStatus) -> Value {
    json!({
        "state": enum_name(s.state, |e: v1::TaskState| e.as_str_name()),
        "reason": enum_name(s.reason, |e: v1::StatusReason| e.as_str_name()),
        "source": enum_name(s.source, |e: v1::StatusSource| e.as_str_name()),
        "message": s.message,
        "exit_code": s.exit_code,
        "healthy": s.healthy,
        "timestamp_ms": s.timestamp_ms,
        "uuid": s.uuid,
    })
}

fn command_json(c: &Option<v1::CommandInfo>) -> Value {
    match c.as_ref().and_then(|c| c.run.as_ref()) {
        Some(v1::command_info::Run::Shell(s)) => json!({ "shell": s }),
        Some(v1::command_info::Run::Argv(a)) => json!({ "argv": a.args }),
        None => Value::Null,
    }
}

/// The `/api/v1/state` document (fields documented in docs/api.md).
pub fn state_json(s: &v1::ClusterState) -> Value {
    let agents: Vec<Value> = s
        .agents
        .iter()
        .map(|a| {
            let info = a.info.clone().unwrap_or_default();
            json!({
                "id": info.id,
                "hostname": info.hostname,
                "address": info.address,
                "isolation": info.isolation,
                "status": a.status,
                "resources": resources(&a.total),
                "allocated": resources(&a.allocated),
                "offered": resources(&a.offered),
                "attributes": attributes(&info.attributes),
                "registered_at_ms": a.registered_at_ms,
                "last_heartbeat_ms": a.last_heartbeat_ms,
            })
        })
        .collect();
    let frameworks: Vec<Value> = s
        .frameworks
        .iter()
        .map(|f| {
            let info = f.info.clone().unwrap_or_default();
            let caps: Vec<Value> = info
                .capabilities
                .iter()
                .map(|c| enum_name(*c, |e: v1::FrameworkCapability| e.as_str_name()))
                .collect();
            json!({
                "id": info.id,
                "name": info.name,
                "roles": info.roles,
                "principal": info.principal,
                "user": info.user,
                "status": f.status,
                "capabilities": caps,
                "failover_timeout_seconds": info.failover_timeout_seconds,
                "active_tasks": f.active_tasks,
                "allocated": resources(&f.allocated),
                "offered": resources(&f.offered),
                "registered_at_ms": f.registered_at_ms,
            })
        })
        .collect();
    let tasks: Vec<Value> = s
        .tasks
        .iter()
        .map(|t| {
            let info = t.task.clone().unwrap_or_default();
            json!({
                "id": info.task_id,
                "name": info.name,
                "framework_id": t.framework_id,
                "agent_id": info.agent_id,
                "state": enum_name(t.state, |e: v1::TaskState| e.as_str_name()),
                "resources": resources(&info.resources),
                "command": command_json(&info.command),
                "status": t.latest_status.as_ref().map(status_json),
                "statuses": t.history.iter().map(status_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    let offers: Vec<Value> = s
        .offers
        .iter()
        .filter_map(|o| o.offer.as_ref().map(|offer| (offer, o.created_at_ms)))
        .map(|(o, created)| {
            json!({
                "id": o.id,
                "framework_id": o.framework_id,
                "agent_id": o.agent_id,
                "hostname": o.hostname,
                "role": o.role,
                "resources": resources(&o.resources),
                "created_at_ms": created,
            })
        })
        .collect();
    let roles: Vec<Value> = s
        .roles
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "weight": r.weight,
                "dominant_share": r.dominant_share,
                "allocated": resources(&r.allocated),
                "frameworks": r.frameworks,
            })
        })
        .collect();
    json!({
        "master_id": s.master_id,
        "agents": agents,
        "frameworks": frameworks,
        "tasks": tasks,
        "offers": offers,
        "roles": roles,
    })
}

/// HTTP status for a gRPC status, so both APIs refuse the same input the same way.
fn http_status(code: tonic::Code) -> StatusCode {
    use tonic::Code;
    match code {
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn from_status(s: tonic::Status) -> Response {
    error(http_status(s.code()), s.message())
}

fn bad_body(r: JsonRejection) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        format!("invalid request body: {}", r.body_text()),
    )
}

fn done(r: Result<(), tonic::Status>) -> Response {
    match r {
        Ok(()) => axum::Json(json!({})).into_response(),
        Err(s) => from_status(s),
    }
}

async fn get_weights(State(handle): State<MasterHandle>) -> Response {
    match ask_state(&handle).await {
        Ok(s) => axum::Json(
            s.roles
                .iter()
                .map(|r| json!({ "role": r.name, "weight": r.weight }))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(r) => r,
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WeightBody {
    role: String,
    weight: f64,
}

async fn put_weights(
    State(handle): State<MasterHandle>,
    State(gate): State<Arc<Gate>>,
    caller: Option<Extension<Caller>>,
    body: Result<axum::Json<Vec<WeightBody>>, JsonRejection>,
) -> Response {
    let weights: Vec<(String, f64)> = match body {
        Ok(axum::Json(w)) => w.into_iter().map(|w| (w.role, w.weight)).collect(),
        Err(r) => return bad_body(r),
    };
    let caller = caller_of(caller);
    for (role, _) in &weights {
        if let Err(s) = gate.authorize(&caller, Action::UpdateWeights, role) {
            return denied(s);
        }
    }
    done(
        handle
            .ask(|reply| Command::UpdateWeights { weights, reply })
            .await
            .and_then(|r| r),
    )
}

async fn teardown(
    State(handle): State<MasterHandle>,
    State(gate): State<Arc<Gate>>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> Response {
    if gate.acls_configured() {
        let principal = match crate::grpc::operator::framework_principal(&handle, &id).await {
            Ok(p) => p,
            Err(s) => return from_status(s),
        };
        if let Err(s) = gate.authorize(&caller_of(caller), Action::TeardownFramework, &principal) {
            return denied(s);
        }
    }
    let r = handle
        .ask(|reply| Command::OperatorTeardown {
            framework_id: id.clone(),
            reply,
        })
        .await
        .and_then(|r| r);
    if r.is_ok() {
        gate.forget_framework(&id);
    }
    done(r)
}

async fn maintenance(
    handle: &MasterHandle,
    gate: &Gate,
    caller: Option<Extension<Caller>>,
    op: MaintenanceOp,
) -> Response {
    let agent_id = match &op {
        MaintenanceOp::Deactivate { agent_id }
        | MaintenanceOp::Reactivate { agent_id }
        | MaintenanceOp::Drain { agent_id, .. }
        | MaintenanceOp::MarkGone { agent_id } => agent_id.clone(),
    };
    if let Err(s) = gate.authorize(&caller_of(caller), Action::DrainAgent, &agent_id) {
        return denied(s);
    }
    done(
        handle
            .ask(|reply| Command::Maintenance { op, reply })
            .await
            .and_then(|r| r),
    )
}

async fn deactivate(
    State(handle): State<MasterHandle>,
    State(gate): State<Arc<Gate>>,
    caller: Option<Extension<Caller>>,
    Path(agent_id): Path<String>,
) -> Response {
    maintenance(
        &handle,
        &gate,
        caller,
        MaintenanceOp::Deactivate { agent_id },
    )
    .await
}

async fn reactivate(
    State(handle): State<MasterHandle>,
    State(gate): State<Arc<Gate>>,
    caller: Option<Extension<Caller>>,
    Path(agent_id): Path<String>,
) -> Response {
    maintenance(
        &handle,
        &gate,
        caller,
        MaintenanceOp::Reactivate { agent_id },
    )
    .await
}

async fn mark_gone(
    State(handle): State<MasterHandle>,
    State(gate): State<Arc<Gate>>,
    caller: Option<Extension<Caller>>,
    Path(agent_id): Path<String>,
) -> Response {
    maintenance(&handle, &gate, caller, MaintenanceOp::MarkGone { agent_id }).await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DrainBody {
    #[serde(default)]
    grace_period_seconds: f64,
    #[serde(default)]
    mark_gone: bool,
}

async fn drain(
    State(handle): State<MasterHandle>,
    State(gate): State<Arc<Gate>>,
    caller: Option<Extension<Caller>>,
    Path(agent_id): Path<String>,
    body: Result<axum::Json<DrainBody>, JsonRejection>,
) -> Response {
    let body = match body {
        Ok(axum::Json(b)) => b,
        Err(r) => return bad_body(r),
    };
    maintenance(
        &handle,
        &gate,
        caller,
        MaintenanceOp::Drain {
            agent_id,
            grace_period_seconds: body.grace_period_seconds,
            mark_gone: body.mark_gone,
        },
    )
    .await
}

async fn get_quota(State(handle): State<MasterHandle>) -> Response {
    match handle.ask(|reply| Command::Quotas { reply }).await {
        Ok(quotas) => axum::Json(
            quotas
                .iter()
                .map(|q| {
                    json!({
                        "role": q.role,
                        "guarantee": q.guarantee.to_string(),
                        "limit": q.limit.as_ref().map(ToString::to_string),
                        "consumed": q.consumed.to_string(),
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(s) => from_status(s),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaBody {
    role: String,
    /// Resource flag syntax, e.g. `cpus:10;mem:4096`.
    guarantee: String,
    #[serde(default)]
    limit: Option<String>,
    #[serde(default)]
    force: bool,
}

async fn put_quota(
    State(handle): State<MasterHandle>,
    State(gate): State<Arc<Gate>>,
    caller: Option<Extension<Caller>>,
    body: Result<axum::Json<QuotaBody>, JsonRejection>,
) -> Response {
    let body = match body {
        Ok(axum::Json(b)) => b,
        Err(r) => return bad_body(r),
    };
    if let Err(s) = gate.authorize(&caller_of(caller), Action::SetQuota, &body.role) {
        return denied(s);
    }
    let guarantee = match Resources::parse(&body.guarantee) {
        Ok(g) => g,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("quota guarantee: {e}")),
    };
    let limit = match body.limit.as_deref().map(Resources::parse).transpose() {
        Ok(l) => l,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("quota limit: {e}")),
    };
    done(
        handle
            .ask(|reply| Command::SetQuota {
                role: body.role,
                guarantee,
                limit,
                force: body.force,
                reply,
            })
            .await
            .and_then(|r| r),
    )
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleQuery {
    role: String,
}

async fn delete_quota(
    State(handle): State<MasterHandle>,
    State(gate): State<Arc<Gate>>,
    caller: Option<Extension<Caller>>,
    query: Result<axum::extract::Query<RoleQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let role = match query {
        Ok(q) => q.0.role,
        Err(r) => return error(StatusCode::BAD_REQUEST, r.body_text()),
    };
    if let Err(s) = gate.authorize(&caller_of(caller), Action::SetQuota, &role) {
        return denied(s);
    }
    done(
        handle
            .ask(|reply| Command::RemoveQuota { role, reply })
            .await
            .and_then(|r| r),
    )
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainQuery {
    role: Option<String>,
    framework: Option<String>,
}

async fn explain(
    State(handle): State<MasterHandle>,
    State(gate): State<Arc<Gate>>,
    caller: Option<Extension<Caller>>,
    query: Result<axum::extract::Query<ExplainQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    use crate::allocator::ExplainTarget;
    let target = match query {
        Ok(axum::extract::Query(ExplainQuery {
            role: Some(r),
            framework: None,
        })) => ExplainTarget::Role(r),
        Ok(axum::extract::Query(ExplainQuery {
            role: None,
            framework: Some(f),
        })) => ExplainTarget::Framework(f),
        Ok(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "give exactly one of ?role=ROLE or ?framework=FRAMEWORK_ID",
            );
        }
        Err(r) => return error(StatusCode::BAD_REQUEST, r.body_text()),
    };
    // Explaining a framework shows its allocation: only for callers who may view it.
    if let ExplainTarget::Framework(id) = &target
        && gate.acls_configured()
    {
        let caller = caller_of(caller);
        let visible = match ask_state(&handle).await {
            Ok(s) => gate
                .filter_state(&caller, s)
                .frameworks
                .iter()
                .any(|f| f.info.as_ref().is_some_and(|i| &i.id == id)),
            Err(r) => return r,
        };
        if !visible {
            return error(
                StatusCode::FORBIDDEN,
                format!(
                    "{} is not authorized to view_frameworks on framework '{id}'",
                    caller
                        .principal()
                        .map_or("an unauthenticated caller".to_string(), |p| format!(
                            "principal '{p}'"
                        ))
                ),
            );
        }
    }
    match handle
        .ask(|reply| Command::Explain { target, reply })
        .await
        .and_then(|r| r)
    {
        Ok(e) => match serde_json::to_value(&e) {
            Ok(v) => axum::Json(v).into_response(),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        Err(s) => from_status(s),
    }
}

/// Body of `/api/v1/reserve` and `/api/v1/unreserve` (`resources`) and of
/// `/api/v1/volumes/{create,destroy}` (`volumes`): the resources as the JSON array form or
/// as a string in the flag syntax.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceOpBody {
    agent_id: String,
    #[serde(default)]
    resources: Option<Value>,
    #[serde(default)]
    volumes: Option<Value>,
}

async fn resource_op(
    handle: MasterHandle,
    gate: &Gate,
    caller: Caller,
    kind: OpKind,
    body: Result<axum::Json<ResourceOpBody>, JsonRejection>,
) -> Response {
    let body = match body {
        Ok(axum::Json(b)) => b,
        Err(r) => return bad_body(r),
    };
    let field = match kind {
        OpKind::Reserve | OpKind::Unreserve => "resources",
        OpKind::Create | OpKind::Destroy => "volumes",
    };
    let (given, other) = match kind {
        OpKind::Reserve | OpKind::Unreserve => (body.resources, body.volumes),
        OpKind::Create | OpKind::Destroy => (body.volumes, body.resources),
    };
    if other.is_some() {
        let wrong = if field == "resources" {
            "volumes"
        } else {
            "resources"
        };
        return error(
            StatusCode::BAD_REQUEST,
            format!("unknown field '{wrong}' for {}; use '{field}'", kind.name()),
        );
    }
    let parsed = match given {
        None => return error(StatusCode::BAD_REQUEST, format!("missing field '{field}'")),
        Some(Value::String(text)) => Resources::parse(&text),
        Some(v @ Value::Array(_)) => Resources::from_json(&v.to_string()),
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "'{field}' must be an array of resource objects or a string in the resource flag syntax"
                ),
            );
        }
    };
    let resources = match parsed {
        Ok(r) => r.to_proto(),
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("{field}: {e}")),
    };
    let action = match kind {
        OpKind::Reserve => Action::ReserveResources,
        OpKind::Unreserve => Action::UnreserveResources,
        OpKind::Create => Action::CreateVolume,
        OpKind::Destroy => Action::DestroyVolume,
    };
    if let Err(s) = gate.authorize_resources(&caller, action, &resources) {
        return denied(s);
    }
    done(
        handle
            .ask(|reply| Command::ResourceOp {
                agent_id: body.agent_id,
                kind,
                resources,
                reply,
            })
            .await
            .and_then(|r| r),
    )
}

/// The POST route of one resource operation; the four differ only in their kind.
fn resource_op_route(kind: OpKind) -> axum::routing::MethodRouter<HttpState> {
    post(
        move |State(handle): State<MasterHandle>,
              State(gate): State<Arc<Gate>>,
              caller: Option<Extension<Caller>>,
              body: Result<axum::Json<ResourceOpBody>, JsonRejection>| async move {
            resource_op(handle, &gate, caller_of(caller), kind, body).await
        },
    )
}
