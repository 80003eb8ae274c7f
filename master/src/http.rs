//! HTTP endpoints beside gRPC on the master's port: `/health`, `/metrics` (Prometheus
//! text), and the JSON operator API under `/api/v1`. Handlers only translate: they parse
//! the request, call the service layer (`crate::service`, the same functions the gRPC
//! services call) and render its reply with `agora-views` (the shapes the CLI's `--json`
//! prints). They hold no state and no service logic.
//!
//! Every error answer, including routing's (404, 405), the body limit's (413) and the
//! URI limit's (414), is JSON: `{"error": message, "code": "GRPC_CODE_NAME"}`.

use agora_proto::TaskState;
use agora_resources::Resources;
use axum::Router;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Extension, FromRequest, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::actor::queries::{ListFilter, ListPage, TASKS_PAGE_DEFAULT, TaskFilter};
use crate::actor::{MaintenanceOp, OpKind};
use crate::auth::Caller;
use crate::service::{Error, Service};

/// Longest request URI served, in bytes; longer ones are answered 414 with a JSON body.
/// (hyper itself refuses URIs over 64 KiB with an empty 414 before any route runs.)
pub const URI_MAX_BYTES: usize = 8 * 1024;
/// Most bytes of a non-JSON error body kept as the message of its JSON replacement.
const ERROR_BODY_MAX_BYTES: usize = 512;

type Answer = Result<Response, Error>;

fn ok(v: Value) -> Answer {
    Ok(axum::Json(v).into_response())
}

/// The answer to a change: `{}`.
fn done(r: Result<(), Error>) -> Answer {
    r.map(|()| axum::Json(json!({})).into_response())
}

/// The caller the auth middleware attached (unauthenticated if it did not run).
fn caller_of(c: Option<Extension<Caller>>) -> Caller {
    c.map(|Extension(c)| c).unwrap_or_default()
}

/// A request body read as JSON whatever its `Content-Type` says: `curl -d` sends
/// `application/x-www-form-urlencoded` and many scripts send none, and the operator
/// guide's examples must work verbatim. A body that is not the expected JSON is 400, one
/// over the body limit 413, both with the usual JSON error body.
struct JsonBody<T>(T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = Error;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Error> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(bad_bytes)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            // No body: fine where the body is optional (`Option<T>` reads it as null).
            return serde_json::from_str("null").map(JsonBody).map_err(|_| {
                Error::invalid("invalid request body: it is empty; send a JSON document")
            });
        }
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = T::deserialize(&mut de)
            .and_then(|v| de.end().map(|()| v))
            .map_err(|e| Error::invalid(format!("invalid request body: {e}")))?;
        Ok(JsonBody(value))
    }
}

/// A body that could not be read: 413 when it is over the body limit, else 400.
fn bad_bytes(r: BytesRejection) -> Error {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return Error::TooLarge(format!("request body too large: {}", r.body_text()));
    }
    Error::invalid(format!("invalid request body: {}", r.body_text()))
}

fn bad_query(r: QueryRejection) -> Error {
    Error::invalid(format!("invalid query: {}", r.body_text()))
}

pub fn router(service: Service) -> Router {
    // Mesos's routes answer Mesos's errors (plain text), outside the JSON error layer.
    let mesos = crate::mesos::router(service.clone());
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route("/api/v1/state", get(state))
        .route("/api/v1/version", get(version))
        .route("/api/v1/usage", get(usage))
        .route("/api/v1/roles", get(roles))
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
        .route("/api/v1/frameworks", get(frameworks))
        .route("/api/v1/frameworks/{id}", get(framework))
        .route("/api/v1/frameworks/{id}/teardown", post(teardown))
        .route("/api/v1/agents", get(agents))
        .route("/api/v1/agents/{id}", get(agent))
        .route("/api/v1/agents/{id}/deactivate", post(deactivate))
        .route("/api/v1/agents/{id}/reactivate", post(reactivate))
        .route("/api/v1/agents/{id}/drain", post(drain))
        .route("/api/v1/agents/{id}/gone", post(mark_gone))
        .route("/api/v1/tasks", get(tasks))
        .route(
            "/api/v1/tasks/{framework_id}/{task_id}/kill",
            post(kill_task),
        )
        .route("/api/v1/events", get(crate::ui::events::events))
        .route("/", get(crate::ui::assets::index))
        .route("/ui", get(crate::ui::assets::index))
        .route("/ui/", get(crate::ui::assets::index))
        .route("/ui/{*path}", get(crate::ui::assets::file))
        .route(
            "/api/v1/tasks/{framework_id}/{task_id}/files/{op}",
            get(crate::ui::files::files),
        )
        .with_state(service)
        .layer(axum::middleware::from_fn(json_errors))
        .merge(mesos)
}

/// Around every HTTP route: refuse URIs over `URI_MAX_BYTES`, and give every error that
/// routing or a body limit made without a JSON body (405, 413, ...) the usual one.
async fn json_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let uri_bytes = request.uri().to_string().len();
    if uri_bytes > URI_MAX_BYTES {
        return Error::http_json(
            StatusCode::URI_TOO_LONG,
            format!("request URI of {uri_bytes} bytes; at most {URI_MAX_BYTES}"),
        );
    }
    if let Some(refusal) = cross_origin_change(&request) {
        return refusal;
    }
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, ERROR_BODY_MAX_BYTES)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    let mut fixed = Error::http_json(status, message);
    // Keep what the status needs (405's Allow, 401's WWW-Authenticate).
    for name in [header::ALLOW, header::WWW_AUTHENTICATE] {
        if let Some(v) = parts.headers.get(&name) {
            fixed.headers_mut().insert(name, v.clone());
        }
    }
    fixed
}

/// A change (any method but GET, HEAD, OPTIONS) sent by a web page of another origin is
/// refused (403): bodies are read as JSON whatever their `Content-Type`, so without this a
/// page elsewhere could post a plain form to the master with the browser's credentials.
/// Browsers always send `Origin` on such requests; curl, the CLI and the SDK send none.
fn cross_origin_change(request: &axum::extract::Request) -> Option<Response> {
    use axum::http::Method;
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return None;
    }
    let origin = request
        .headers()
        .get(header::ORIGIN)?
        .to_str()
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    if !host.is_empty() && origin_host.eq_ignore_ascii_case(&host) {
        return None;
    }
    Some(Error::http_json(
        StatusCode::FORBIDDEN,
        format!(
            "cross-origin change refused: the request comes from a page of '{}', not of this master",
            crate::service::quote(origin)
        ),
    ))
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
    let shown = crate::service::quote(&path);
    if grpc {
        return tonic::Status::unimplemented(format!("no gRPC method at {shown}")).into_http();
    }
    Error::not_found(format!("no endpoint at {shown}")).into_response()
}

/// Answered by the actor (a wedged actor shows as unavailable) with a ping.
async fn health(State(s): State<Service>) -> Answer {
    let h = s.health().await?;
    ok(json!({
        "healthy": true,
        "master_id": h.master_id,
        "leading": h.leading,
        "leader": h.leader,
    }))
}

async fn version(State(s): State<Service>) -> Answer {
    ok(json!({ "version": s.version().0 }))
}

async fn metrics_text(State(s): State<Service>) -> Answer {
    let text = s.metrics_text().await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

async fn state(State(s): State<Service>, caller: Option<Extension<Caller>>) -> Answer {
    let state = s.state(&caller_of(caller)).await?;
    ok(agora_views::state::state_json(&state))
}

/// Filters and paging of `/api/v1/agents` and `/api/v1/frameworks`. The answer stays the
/// array it always was, in id order; `X-Total-Count` says how many matched in all.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only items with this status (e.g. `registered`, `draining`, `connected`).
    status: Option<String>,
    /// Agents whose hostname, frameworks whose name, contains this text.
    #[serde(alias = "name")]
    hostname: Option<String>,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

impl ListQuery {
    fn filter(self) -> ListFilter {
        ListFilter {
            status: self.status.filter(|s| !s.is_empty()),
            text: self.hostname.filter(|h| !h.is_empty()),
            offset: self.offset,
            limit: self.limit.unwrap_or(usize::MAX),
        }
    }
}

/// A page as the JSON array it always was, with `X-Total-Count`: how many matched in all.
fn list_page<T>(page: ListPage<T>, render: impl Fn(&T) -> Value) -> Response {
    let items: Vec<Value> = page.items.iter().map(render).collect();
    let mut r = axum::Json(Value::Array(items)).into_response();
    r.headers_mut()
        .insert("x-total-count", axum::http::HeaderValue::from(page.total));
    r
}

async fn frameworks(
    State(s): State<Service>,
    caller: Option<Extension<Caller>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Answer {
    let Query(q) = query.map_err(bad_query)?;
    let page = s.framework_page(&caller_of(caller), q.filter()).await?;
    Ok(list_page(page, agora_views::state::framework_json))
}

async fn framework(
    State(s): State<Service>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> Answer {
    let f = s.framework(&caller_of(caller), &id).await?;
    ok(agora_views::state::framework_json(&f))
}

async fn agents(
    State(s): State<Service>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Answer {
    let Query(q) = query.map_err(bad_query)?;
    let page = s.agent_page(q.filter()).await?;
    Ok(list_page(page, agora_views::state::agent_json))
}

async fn agent(State(s): State<Service>, Path(id): Path<String>) -> Answer {
    let a = s.agent(&id).await?;
    ok(agora_views::state::agent_json(&a))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TasksQuery {
    framework_id: Option<String>,
    agent_id: Option<String>,
    /// A task state by its protocol name, e.g. `RUNNING`.
    state: Option<String>,
    /// Tasks whose id or name contains this text.
    name: Option<String>,
    /// The one task with this id (with `framework_id`).
    task_id: Option<String>,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

async fn tasks(
    State(s): State<Service>,
    caller: Option<Extension<Caller>>,
    query: Result<Query<TasksQuery>, QueryRejection>,
) -> Answer {
    let Query(q) = query.map_err(bad_query)?;
    let state = match &q.state {
        None => None,
        Some(name) => Some(
            TaskState::from_str_name(&name.to_ascii_uppercase()).ok_or_else(|| {
                Error::invalid(format!(
                    "unknown task state '{}'",
                    crate::service::quote(name)
                ))
            })?,
        ),
    };
    let filter = TaskFilter {
        framework_id: q.framework_id,
        agent_id: q.agent_id,
        state,
        task_id: q.task_id,
        name: q.name.filter(|n| !n.is_empty()),
        offset: q.offset,
        limit: q.limit.unwrap_or(TASKS_PAGE_DEFAULT),
    };
    let offset = filter.offset;
    let page = s.tasks(&caller_of(caller), filter).await?;
    ok(agora_views::state::task_page_json(
        &page.tasks,
        page.total,
        offset,
    ))
}

async fn roles(State(s): State<Service>, caller: Option<Extension<Caller>>) -> Answer {
    let roles = s.roles(&caller_of(caller)).await?;
    ok(agora_views::operator::roles_json(&roles))
}

#[derive(serde::Deserialize)]
struct UsageQuery {
    agent_id: Option<String>,
}

async fn usage(
    State(s): State<Service>,
    caller: Option<Extension<Caller>>,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> Answer {
    let Query(q) = query.map_err(bad_query)?;
    let usage = s.usage_of(&caller_of(caller), q.agent_id.clone()).await?;
    if let Some(id) = &q.agent_id
        && usage.agents.is_empty()
    {
        // A known agent that has not reported yet has no containers to show; only an
        // unknown one is not found.
        if let Err(Error::NotFound(_)) = s.agent(id).await {
            return Err(Error::not_found(format!(
                "no usage report from agent '{}' (unknown agent id)",
                crate::service::quote(id)
            )));
        }
    }
    ok(agora_views::usage::response_json(usage.agents.iter()))
}

async fn get_weights(State(s): State<Service>) -> Answer {
    let weights = s.weights().await?;
    ok(agora_views::operator::weights_json(
        weights.iter().map(|(r, w)| (r.as_str(), *w)),
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WeightBody {
    role: String,
    weight: f64,
}

async fn put_weights(
    State(s): State<Service>,
    caller: Option<Extension<Caller>>,
    JsonBody(w): JsonBody<Vec<WeightBody>>,
) -> Answer {
    let weights = w.into_iter().map(|w| (w.role, w.weight)).collect();
    done(s.update_weights(&caller_of(caller), weights).await)
}

async fn teardown(
    State(s): State<Service>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> Answer {
    done(s.teardown_framework(&caller_of(caller), id).await)
}

async fn kill_task(
    State(s): State<Service>,
    caller: Option<Extension<Caller>>,
    Path((framework_id, task_id)): Path<(String, String)>,
) -> Answer {
    done(s.kill_task(&caller_of(caller), framework_id, task_id).await)
}

async fn maintenance(s: &Service, caller: Option<Extension<Caller>>, op: MaintenanceOp) -> Answer {
    done(s.maintenance(&caller_of(caller), op).await)
}

async fn deactivate(
    State(s): State<Service>,
    caller: Option<Extension<Caller>>,
    Path(agent_id): Path<String>,
) -> Answer {
    maintenance(&s, caller, MaintenanceOp::Deactivate { agent_id }).await
}

async fn reactivate(
    State(s): State<Service>,
    caller: Option<Extension<Caller>>,
    Path(agent_id): Path<String>,
) -> Answer {
    maintenance(&s, caller, MaintenanceOp::Reactivate { agent_id }).await
}

async fn mark_gone(
    State(s): State<Service>,
    caller: Option<Extension<Caller>>,
    Path(agent_id): Path<String>,
) -> Answer {
    maintenance(&s, caller, MaintenanceOp::MarkGone { agent_id }).await
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DrainBody {
    #[serde(default)]
    grace_period_seconds: f64,
    #[serde(default)]
    mark_gone: bool,
}

async fn drain(
    State(s): State<Service>,
    caller: Option<Extension<Caller>>,
    Path(agent_id): Path<String>,
    JsonBody(body): JsonBody<Option<DrainBody>>,
) -> Answer {
    let b = body.unwrap_or_default();
    let op = MaintenanceOp::Drain {
        agent_id,
        grace_period_seconds: b.grace_period_seconds,
        mark_gone: b.mark_gone,
    };
    maintenance(&s, caller, op).await
}

async fn get_quota(State(s): State<Service>) -> Answer {
    let quotas = s.quotas().await?;
    ok(Value::Array(
        quotas
            .iter()
            .map(|q| {
                agora_views::operator::quota_json(
                    &q.role,
                    &q.guarantee,
                    q.limit.as_ref(),
                    &q.consumed,
                )
            })
            .collect(),
    ))
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
    State(s): State<Service>,
    caller: Option<Extension<Caller>>,
    JsonBody(body): JsonBody<QuotaBody>,
) -> Answer {
    let b = body;
    let guarantee = Resources::parse(&b.guarantee)
        .map_err(|e| Error::invalid(format!("quota guarantee: {e}")))?;
    let limit = b
        .limit
        .as_deref()
        .map(Resources::parse)
        .transpose()
        .map_err(|e| Error::invalid(format!("quota limit: {e}")))?;
    done(
        s.set_quota(&caller_of(caller), b.role, guarantee, limit, b.force)
            .await,
    )
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleQuery {
    role: String,
}

async fn delete_quota(
    State(s): State<Service>,
    caller: Option<Extension<Caller>>,
    query: Result<Query<RoleQuery>, QueryRejection>,
) -> Answer {
    let Query(q) = query.map_err(bad_query)?;
    done(s.remove_quota(&caller_of(caller), q.role).await)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainQuery {
    role: Option<String>,
    framework: Option<String>,
}

async fn explain(
    State(s): State<Service>,
    caller: Option<Extension<Caller>>,
    query: Result<Query<ExplainQuery>, QueryRejection>,
) -> Answer {
    use crate::allocator::ExplainTarget;
    let target = match query.map_err(bad_query)?.0 {
        ExplainQuery {
            role: Some(r),
            framework: None,
        } => ExplainTarget::Role(r),
        ExplainQuery {
            role: None,
            framework: Some(f),
        } => ExplainTarget::Framework(f),
        _ => {
            return Err(Error::invalid(
                "give exactly one of ?role=ROLE or ?framework=FRAMEWORK_ID",
            ));
        }
    };
    let e = s.explain(&caller_of(caller), target).await?;
    serde_json::to_value(agora_views::explain::Explanation::from(&e))
        .map_err(|e| Error::Internal(format!("cannot render the explanation: {e}")))
        .and_then(ok)
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

/// The resources of a resource operation's body, in the field `kind` reads.
fn op_resources(
    kind: OpKind,
    body: ResourceOpBody,
) -> Result<(String, Vec<agora_proto::v1::Resource>), Error> {
    let (field, given, other) = match kind {
        OpKind::Reserve | OpKind::Unreserve => ("resources", body.resources, body.volumes),
        OpKind::Create | OpKind::Destroy => ("volumes", body.volumes, body.resources),
    };
    if other.is_some() {
        let wrong = if field == "resources" {
            "volumes"
        } else {
            "resources"
        };
        return Err(Error::invalid(format!(
            "unknown field '{wrong}' for {}; use '{field}'",
            kind.name()
        )));
    }
    let parsed = match given {
        None => return Err(Error::invalid(format!("missing field '{field}'"))),
        Some(Value::String(text)) => Resources::parse(&text),
        Some(v @ Value::Array(_)) => Resources::from_json(&v.to_string()),
        Some(_) => {
            return Err(Error::invalid(format!(
                "'{field}' must be an array of resource objects or a string in the resource flag syntax"
            )));
        }
    };
    let resources = parsed.map_err(|e| Error::invalid(format!("{field}: {e}")))?;
    Ok((body.agent_id, resources.to_proto()))
}

/// The POST route of one resource operation; the four differ only in their kind.
fn resource_op_route(kind: OpKind) -> axum::routing::MethodRouter<Service> {
    post(
        move |State(s): State<Service>,
              caller: Option<Extension<Caller>>,
              JsonBody(body): JsonBody<ResourceOpBody>| async move {
            let (agent_id, resources) = op_resources(kind, body)?;
            done(
                s.resource_op(&caller_of(caller), agent_id, kind, resources)
                    .await,
            )
        },
    )
}
