//! The REST API, Marathon's v2 subset: `/v2/apps` (+ tasks, versions, restart),
//! `/v2/tasks`, `/v2/deployments`, `/v2/groups`, `/v2/queue`, `/v2/info`, `/v2/leader`,
//! `/v2/events` (server-sent events), `/ping`, `/metrics`.
//!
//! A transport: it parses requests, hands one closure per call to the service actor and
//! formats the answer. It must never change state itself or hold scheduling logic; every
//! check that needs the core's state runs inside the actor, so a refused call changes
//! nothing. Errors are Marathon's shapes: 422 `{"message", "details": [{"path",
//! "errors"}]}`, 404/409 `{"message"}` (409 also lists the blocking deployments).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use futures::Stream;
use serde_json::{Value as Json, json};

use crate::app::{AppDefinition, Violation, normalize_id, parent_groups, parse_app_value};
use crate::core::{Core, CoreError, Output};
use crate::service::{ChangeFn, Service, Stopped};
use crate::time::iso8601;
use crate::views::{
    Embed, app_json, deployments_json, group_json, instance_json, queue_json, task_json,
};

/// Largest request body accepted.
pub const BODY_MAX_BYTES: usize = 1 << 20;

/// What the API needs besides the service.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// The framework name.
    pub name: String,
    /// The master addresses.
    pub masters: Vec<String>,
    /// This API's address (`host:port`).
    pub http_address: String,
    /// The framework's role.
    pub role: String,
}

#[derive(Clone)]
struct Api {
    service: Service,
    config: Arc<ApiConfig>,
    driver: agora_sdk::Driver,
}

/// The router of the whole API.
pub fn router(service: Service, config: ApiConfig, driver: agora_sdk::Driver) -> Router {
    let api = Api {
        service,
        config: Arc::new(config),
        driver,
    };
    Router::new()
        .route("/ping", get(|| async { "pong" }))
        .route("/metrics", get(metrics))
        .route("/v2/info", get(info))
        .route("/v2/leader", get(leader))
        .route("/v2/events", get(events))
        .route("/v2/apps", get(apps_list).post(apps_create))
        .route(
            "/v2/apps/{*rest}",
            get(app_get)
                .put(app_put)
                .patch(app_patch)
                .delete(app_delete)
                .post(app_post),
        )
        .route("/v2/tasks", get(tasks_list))
        .route("/v2/tasks/delete", post(tasks_delete))
        .route("/v2/deployments", get(deployments_list))
        .route("/v2/deployments/{id}", delete(deployment_cancel))
        .route("/v2/groups", get(group_root).post(groups_create))
        .route(
            "/v2/groups/{*id}",
            get(group_get).delete(group_delete).put(group_put),
        )
        .route("/v2/queue", get(queue))
        .route("/v2/queue/{*rest}", delete(queue_delay_reset))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_MAX_BYTES))
        .with_state(api)
}

// ---- helpers -------------------------------------------------------------------------

fn answer(status: StatusCode, body: Json) -> Response {
    (status, axum::Json(body)).into_response()
}

fn unavailable(_: Stopped) -> Response {
    answer(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"message": "the service is shutting down"}),
    )
}

/// Marathon's 422 body.
pub fn invalid(violations: &[Violation]) -> Response {
    let mut by_path: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for v in violations {
        by_path.entry(&v.path).or_default().push(&v.message);
    }
    let details: Vec<Json> = by_path
        .into_iter()
        .map(|(path, errors)| json!({"path": path, "errors": errors}))
        .collect();
    answer(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"message": "Object is not valid", "details": details}),
    )
}

fn core_error(e: CoreError) -> Response {
    match e {
        CoreError::NotFound(m) => answer(StatusCode::NOT_FOUND, json!({"message": m})),
        CoreError::Conflict {
            message,
            deployments,
        } => answer(
            StatusCode::CONFLICT,
            json!({
                "message": message,
                "deployments": deployments.iter().map(|d| json!({"id": d})).collect::<Vec<_>>(),
            }),
        ),
        CoreError::Invalid(v) => invalid(&v),
    }
}

async fn change(api: &Api, ok: StatusCode, f: ChangeFn) -> Response {
    match api.service.change(f).await {
        Err(e) => unavailable(e),
        Ok(Err(e)) => core_error(e),
        Ok(Ok(body)) => answer(ok, body),
    }
}

async fn read(api: &Api, f: crate::service::ReadFn) -> Response {
    match api.service.read(f).await {
        Err(e) => unavailable(e),
        Ok(Json::Null) => answer(StatusCode::NOT_FOUND, json!({"message": "not found"})),
        Ok(body) => answer(StatusCode::OK, body),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a=1&b&embed=x&embed=y` as pairs, decoded (repeated keys kept, which serde's query
/// extractor cannot do).
fn query_pairs(raw: &Option<String>) -> Vec<(String, String)> {
    raw.as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn flag(raw: &Option<String>, name: &str, default: bool) -> bool {
    query_pairs(raw)
        .into_iter()
        .rev()
        .find(|(k, _)| k == name)
        .map_or(default, |(_, v)| v.is_empty() || v == "true" || v == "1")
}

fn embed(raw: &Option<String>, prefix: &str) -> Embed {
    let pairs = query_pairs(raw);
    let has = |what: &str| {
        pairs
            .iter()
            .any(|(k, v)| k == "embed" && v == &format!("{prefix}{what}"))
    };
    Embed {
        tasks: has("tasks"),
        counts: true,
    }
}

fn deployment_answer(d: &crate::core::Deployment) -> Json {
    json!({"deploymentId": d.id, "version": iso8601(d.version_ms)})
}

fn body_json(body: &Bytes) -> Result<Json, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(invalid(&[Violation {
            path: "/".into(),
            message: format!("invalid JSON: {e}"),
        }]))
    })
}

/// The role an app uses must be the framework's (the daemon subscribes with one role).
fn check_role(def: &AppDefinition, role: &str) -> Result<(), CoreError> {
    match &def.role {
        Some(r) if r != role => Err(CoreError::Invalid(vec![Violation {
            path: "/role".into(),
            message: format!("this framework runs apps in role {role:?} only, not {r:?}"),
        }])),
        _ => Ok(()),
    }
}

/// A definition with `patch`'s top-level fields laid over `base`.
fn merged(base: Option<Json>, patch: Json) -> Json {
    match (base, patch) {
        (Some(Json::Object(mut b)), Json::Object(p)) => {
            for (k, v) in p {
                b.insert(k, v);
            }
            Json::Object(b)
        }
        (_, p) => p,
    }
}

// ---- /v2/apps ------------------------------------------------------------------------

enum AppPath {
    App(String),
    Restart(String),
    Tasks(String),
    Task(String, String),
    Versions(String),
    Version(String, String),
}

fn app_path(rest: &str) -> AppPath {
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let id = |n: usize| normalize_id(&segs[..segs.len().saturating_sub(n)].join("/"));
    let n = segs.len();
    match (segs.last().copied(), n.checked_sub(2).map(|i| segs[i])) {
        (Some("restart"), _) if n > 1 => AppPath::Restart(id(1)),
        (Some("tasks"), _) if n > 1 => AppPath::Tasks(id(1)),
        (Some("versions"), _) if n > 1 => AppPath::Versions(id(1)),
        (Some(t), Some("tasks")) if n > 2 => AppPath::Task(id(2), t.to_string()),
        (Some(v), Some("versions")) if n > 2 => AppPath::Version(id(2), v.to_string()),
        _ => AppPath::App(id(0)),
    }
}

async fn apps_list(State(api): State<Api>, RawQuery(q): RawQuery) -> Response {
    let e = embed(&q, "apps.");
    let filter = query_pairs(&q)
        .into_iter()
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v);
    read(
        &api,
        Box::new(move |core: &Core, _, _| {
            let apps: Vec<Json> = core
                .apps()
                .values()
                .filter(|a| filter.as_deref().is_none_or(|f| a.def.id.contains(f)))
                .map(|a| app_json(core, a, e))
                .collect();
            json!({ "apps": apps })
        }),
    )
    .await
}

async fn apps_create(State(api): State<Api>, body: Bytes) -> Response {
    let value = match body_json(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let def = match parse_app_value(value, None) {
        Ok(d) => d,
        Err(v) => return invalid(&v),
    };
    let role = api.config.role.clone();
    let id = def.id.clone();
    let mut response = change(
        &api,
        StatusCode::CREATED,
        Box::new(move |core: &mut Core, now| {
            check_role(&def, &role)?;
            let (out, _) = core.create_app(def, now)?;
            let body = core
                .app(&id)
                .map(|a| app_json(core, a, Embed::default()))
                .unwrap_or(Json::Null);
            Ok((out, body))
        }),
    )
    .await;
    if response.status() == StatusCode::CREATED
        && let Ok(v) =
            header::HeaderValue::from_str(&format!("/v2/apps{}", normalize_id(&def_id_of(&body))))
    {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

fn def_id_of(body: &Bytes) -> String {
    serde_json::from_slice::<Json>(body)
        .ok()
        .and_then(|v| v.get("id").and_then(Json::as_str).map(str::to_string))
        .unwrap_or_default()
}

async fn app_get(
    State(api): State<Api>,
    Path(rest): Path<String>,
    RawQuery(_q): RawQuery,
) -> Response {
    match app_path(&rest) {
        AppPath::App(id) => {
            read(
                &api,
                Box::new(move |core: &Core, _, _| match core.app(&id) {
                    Some(a) => {
                        json!({"app": app_json(core, a, Embed { tasks: true, counts: true })})
                    }
                    None => Json::Null,
                }),
            )
            .await
        }
        AppPath::Tasks(id) => {
            read(
                &api,
                Box::new(move |core: &Core, _, _| match core.app(&id) {
                    Some(_) => {
                        json!({"tasks": core.instances_of(&id).map(|i| instance_json(core, i)).collect::<Vec<_>>()})
                    }
                    None => Json::Null,
                }),
            )
            .await
        }
        AppPath::Versions(id) => {
            read(
                &api,
                Box::new(move |core: &Core, state, _| {
                    let versions = state.versions(&id).unwrap_or_default();
                    if versions.is_empty() && core.app(&id).is_none() {
                        return Json::Null;
                    }
                    let mut v: Vec<String> =
                        versions.iter().map(|a| iso8601(a.version_ms)).collect();
                    v.reverse();
                    json!({ "versions": v })
                }),
            )
            .await
        }
        AppPath::Version(id, version) => {
            read(
                &api,
                Box::new(
                    move |_core: &Core, state, _| match state.version(&id, &version) {
                        Ok(Some(a)) => {
                            let mut v = serde_json::to_value(&a.def).unwrap_or(Json::Null);
                            v["version"] = json!(iso8601(a.version_ms));
                            v
                        }
                        _ => Json::Null,
                    },
                ),
            )
            .await
        }
        AppPath::Restart(_) | AppPath::Task(..) => answer(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"message": "use POST for restart, DELETE for a task"}),
        ),
    }
}

async fn app_update(
    api: Api,
    rest: String,
    q: Option<String>,
    body: Bytes,
    partial: bool,
) -> Response {
    let AppPath::App(id) = app_path(&rest) else {
        return answer(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"message": "only an app can be updated"}),
        );
    };
    let patch = match body_json(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let force = flag(&q, "force", false);
    // Rollback: a body naming only an earlier version puts that version back.
    let rollback_to = patch
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get("version"))
        .and_then(Json::as_str)
        .map(str::to_string);
    let mut old_def = None;
    if let Some(v) = rollback_to {
        let (id2, v2) = (id.clone(), v.clone());
        let found = api
            .service
            .read(Box::new(move |_, state, _| {
                match state.version(&id2, &v2) {
                    Ok(Some(a)) => serde_json::to_value(&a.def).unwrap_or(Json::Null),
                    _ => Json::Null,
                }
            }))
            .await;
        match found {
            Err(e) => return unavailable(e),
            Ok(Json::Null) => {
                return answer(
                    StatusCode::NOT_FOUND,
                    json!({"message": format!("App '{id}' has no version {v}")}),
                );
            }
            Ok(def) => old_def = Some(def),
        }
    }
    let role = api.config.role.clone();
    change(
        &api,
        StatusCode::OK,
        Box::new(move |core: &mut Core, now| {
            let value = match old_def {
                Some(def) => def,
                None => {
                    let base = partial
                        .then(|| {
                            core.app(&id)
                                .and_then(|a| serde_json::to_value(&a.def).ok())
                        })
                        .flatten();
                    merged(base, patch)
                }
            };
            let def = parse_app_value(value, Some(&id)).map_err(CoreError::Invalid)?;
            check_role(&def, &role)?;
            let (out, d) = core.put_app(def, now, force)?;
            Ok((out, deployment_answer(&d)))
        }),
    )
    .await
}

async fn app_put(
    State(api): State<Api>,
    Path(rest): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let partial = flag(&q, "partialUpdate", true);
    app_update(api, rest, q, body, partial).await
}

async fn app_patch(
    State(api): State<Api>,
    Path(rest): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    app_update(api, rest, q, body, true).await
}

async fn app_post(
    State(api): State<Api>,
    Path(rest): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let AppPath::Restart(id) = app_path(&rest) else {
        return answer(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"message": "POST /v2/apps/{id}/restart only"}),
        );
    };
    let force = flag(&q, "force", false);
    change(
        &api,
        StatusCode::OK,
        Box::new(move |core: &mut Core, now| {
            let (out, d) = core.restart_app(&id, now, force)?;
            Ok((out, deployment_answer(&d)))
        }),
    )
    .await
}

async fn app_delete(
    State(api): State<Api>,
    Path(rest): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let force = flag(&q, "force", false);
    let scale = flag(&q, "scale", false);
    let host = query_pairs(&q)
        .into_iter()
        .find(|(k, _)| k == "host")
        .map(|(_, v)| v);
    let (id, one_task) = match app_path(&rest) {
        AppPath::App(id) => {
            return change(
                &api,
                StatusCode::OK,
                Box::new(move |core: &mut Core, now| {
                    let (out, d) = core.delete_app(&id, now, force)?;
                    Ok((out, deployment_answer(&d)))
                }),
            )
            .await;
        }
        AppPath::Tasks(id) => (id, None),
        AppPath::Task(id, task) => (id, Some(task)),
        _ => {
            return answer(
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"message": "DELETE an app, its tasks or one task"}),
            );
        }
    };
    change(
        &api,
        StatusCode::OK,
        Box::new(move |core: &mut Core, now| {
            let ids: Vec<String> = match &one_task {
                Some(t) => {
                    if core.instances().get(t).is_none_or(|i| i.app_id != id) {
                        return Err(CoreError::NotFound(format!("Task '{t}' does not exist")));
                    }
                    vec![t.clone()]
                }
                None => core
                    .instances_of(&id)
                    .filter(|i| host.as_deref().is_none_or(|h| i.host == h))
                    .map(|i| i.task_id.clone())
                    .collect(),
            };
            let (out, killed, deployment) = core.kill_tasks(Some(&id), &ids, scale, force, now)?;
            let body = match (deployment, one_task.is_some()) {
                (Some(d), _) => deployment_answer(&d),
                (None, true) => json!({"task": killed.first().map(task_json)}),
                (None, false) => json!({"tasks": killed.iter().map(task_json).collect::<Vec<_>>()}),
            };
            Ok((out, body))
        }),
    )
    .await
}

// ---- /v2/tasks, /v2/deployments, /v2/queue --------------------------------------------

async fn tasks_list(State(api): State<Api>) -> Response {
    read(
        &api,
        Box::new(|core: &Core, _, _| {
            json!({"tasks": core.instances().values().map(|i| instance_json(core, i)).collect::<Vec<_>>()})
        }),
    )
    .await
}

async fn tasks_delete(State(api): State<Api>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let value = match body_json(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let ids: Vec<String> = match value.get("ids").and_then(Json::as_array) {
        Some(a) if a.iter().all(Json::is_string) => a
            .iter()
            .filter_map(Json::as_str)
            .map(str::to_string)
            .collect(),
        _ => {
            return invalid(&[Violation {
                path: "/ids".into(),
                message: "expected a list of task ids".into(),
            }]);
        }
    };
    let scale = flag(&q, "scale", false);
    let force = flag(&q, "force", false);
    change(
        &api,
        StatusCode::OK,
        Box::new(move |core: &mut Core, now| {
            let (out, killed, d) = core.kill_tasks(None, &ids, scale, force, now)?;
            Ok((
                out,
                match d {
                    Some(d) => deployment_answer(&d),
                    None => json!({"tasks": killed.iter().map(task_json).collect::<Vec<_>>()}),
                },
            ))
        }),
    )
    .await
}

async fn deployments_list(State(api): State<Api>) -> Response {
    read(&api, Box::new(|core: &Core, _, _| deployments_json(core))).await
}

async fn deployment_cancel(
    State(api): State<Api>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let force = flag(&q, "force", false);
    let response = change(
        &api,
        StatusCode::OK,
        Box::new(move |core: &mut Core, now| {
            let (out, rollback) = core.cancel_deployment(&id, force, now)?;
            Ok((
                out,
                rollback.map(|d| deployment_answer(&d)).unwrap_or(json!({})),
            ))
        }),
    )
    .await;
    if force && response.status() == StatusCode::OK {
        return answer(StatusCode::ACCEPTED, json!({}));
    }
    response
}

async fn queue(State(api): State<Api>) -> Response {
    read(&api, Box::new(|core: &Core, _, now| queue_json(core, now))).await
}

async fn queue_delay_reset(State(api): State<Api>, Path(rest): Path<String>) -> Response {
    let Some(app) = rest.strip_suffix("/delay") else {
        return answer(
            StatusCode::NOT_FOUND,
            json!({"message": "DELETE /v2/queue/{app}/delay"}),
        );
    };
    let id = normalize_id(app);
    let response = change(
        &api,
        StatusCode::NO_CONTENT,
        Box::new(move |core: &mut Core, now| Ok((core.reset_delay(&id, now)?, Json::Null))),
    )
    .await;
    if response.status() == StatusCode::NO_CONTENT {
        return StatusCode::NO_CONTENT.into_response();
    }
    response
}

// ---- /v2/groups ----------------------------------------------------------------------

async fn group_root(State(api): State<Api>, RawQuery(q): RawQuery) -> Response {
    let e = embed(&q, "group.apps.");
    read(
        &api,
        Box::new(move |core: &Core, _, _| group_json(core, "/", e).unwrap_or(Json::Null)),
    )
    .await
}

async fn group_get(
    State(api): State<Api>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let e = embed(&q, "group.apps.");
    let id = normalize_id(&id);
    read(
        &api,
        Box::new(move |core: &Core, _, _| group_json(core, &id, e).unwrap_or(Json::Null)),
    )
    .await
}

/// The apps of a group definition, ids made absolute, with the JSON path of each.
fn group_apps(
    group: &Json,
    base: &str,
    path: &str,
    out: &mut Vec<(String, Json)>,
    errors: &mut Vec<Violation>,
) {
    let gid = match group.get("id").and_then(Json::as_str) {
        Some(g) if g.starts_with('/') => normalize_id(g),
        Some(g) => normalize_id(&format!("{base}/{g}")),
        None => normalize_id(base),
    };
    if let Some(apps) = group.get("apps") {
        match apps.as_array() {
            Some(list) => {
                for (i, a) in list.iter().enumerate() {
                    let mut a = a.clone();
                    let aid = a.get("id").and_then(Json::as_str).unwrap_or("").to_string();
                    let abs = if aid.starts_with('/') {
                        normalize_id(&aid)
                    } else {
                        normalize_id(&format!("{gid}/{aid}"))
                    };
                    if let Some(o) = a.as_object_mut() {
                        o.insert("id".into(), json!(abs));
                    }
                    out.push((format!("{path}/apps/{i}"), a));
                }
            }
            None => errors.push(Violation {
                path: format!("{path}/apps"),
                message: "expected a list of apps".into(),
            }),
        }
    }
    if let Some(groups) = group.get("groups") {
        match groups.as_array() {
            Some(list) => {
                for (i, g) in list.iter().enumerate() {
                    group_apps(g, &gid, &format!("{path}/groups/{i}"), out, errors);
                }
            }
            None => errors.push(Violation {
                path: format!("{path}/groups"),
                message: "expected a list of groups".into(),
            }),
        }
    }
}

async fn groups_create(State(api): State<Api>, body: Bytes) -> Response {
    let value = match body_json(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let mut raw = Vec::new();
    let mut errors = Vec::new();
    group_apps(&value, "/", "", &mut raw, &mut errors);
    let mut defs = Vec::new();
    for (path, a) in raw {
        match parse_app_value(a, None) {
            Ok(d) => defs.push(d),
            Err(v) => errors.extend(v.into_iter().map(|v| Violation {
                path: format!(
                    "{path}{}",
                    if v.path == "/" { String::new() } else { v.path }
                ),
                message: v.message,
            })),
        }
    }
    if !errors.is_empty() {
        return invalid(&errors);
    }
    if defs.is_empty() {
        return invalid(&[Violation {
            path: "/apps".into(),
            message: "a group needs at least one app".into(),
        }]);
    }
    let role = api.config.role.clone();
    change(
        &api,
        StatusCode::CREATED,
        Box::new(move |core: &mut Core, now| {
            // Check every app before creating any, so a refused group changes nothing.
            for (i, d) in defs.iter().enumerate() {
                check_role(d, &role)?;
                if core.app(&d.id).is_some() {
                    return Err(CoreError::Conflict {
                        message: format!("An app with id [{}] already exists.", d.id),
                        deployments: Vec::new(),
                    });
                }
                let clash =
                    defs.iter().enumerate().any(|(j, o)| {
                        i != j && (o.id == d.id || parent_groups(&o.id).contains(&d.id))
                    }) || core.apps().keys().any(|o| {
                        parent_groups(o).contains(&d.id) || parent_groups(&d.id).contains(o)
                    });
                if clash {
                    return Err(CoreError::Conflict {
                        message: format!("{} clashes with another app's path", d.id),
                        deployments: Vec::new(),
                    });
                }
            }
            let mut out = Output::default();
            let mut first = None;
            for d in defs {
                let (o, dep) = core.create_app(d, now)?;
                out.extend(o);
                first.get_or_insert(dep);
            }
            Ok((
                out,
                first.map(|d| deployment_answer(&d)).unwrap_or(json!({})),
            ))
        }),
    )
    .await
}

async fn group_delete(State(api): State<Api>, Path(id): Path<String>) -> Response {
    let id = normalize_id(&id);
    change(
        &api,
        StatusCode::OK,
        Box::new(move |core: &mut Core, now| {
            let apps: Vec<String> = core
                .apps()
                .keys()
                .filter(|a| id == "/" || parent_groups(a).contains(&id))
                .cloned()
                .collect();
            if apps.is_empty() {
                return Err(CoreError::NotFound(format!("Group '{id}' does not exist")));
            }
            let mut out = Output::default();
            let mut last = None;
            for a in apps {
                let (o, d) = core.delete_app(&a, now, true)?;
                out.extend(o);
                last = Some(d);
            }
            Ok((
                out,
                last.map(|d| deployment_answer(&d)).unwrap_or(json!({})),
            ))
        }),
    )
    .await
}

async fn group_put(
    State(api): State<Api>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let id = normalize_id(&id);
    let value = match body_json(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Some(factor) = value
        .get("scaleBy")
        .and_then(Json::as_f64)
        .filter(|f| f.is_finite() && *f >= 0.0)
    else {
        return invalid(&[Violation {
            path: "/scaleBy".into(),
            message: "only scaling a group is supported: give scaleBy, a non-negative number"
                .into(),
        }]);
    };
    let force = flag(&q, "force", false);
    change(
        &api,
        StatusCode::OK,
        Box::new(move |core: &mut Core, now| {
            let apps: Vec<AppDefinition> = core
                .apps()
                .values()
                .filter(|a| parent_groups(&a.def.id).contains(&id))
                .map(|a| a.def.clone())
                .collect();
            if apps.is_empty() {
                return Err(CoreError::NotFound(format!("Group '{id}' does not exist")));
            }
            let mut scaled = Vec::new();
            for mut def in apps {
                let n = (f64::from(def.instances) * factor).round();
                def.instances = n.min(f64::from(crate::app::MAX_INSTANCES)) as u32;
                if !force && let Some(d) = core.deployment_of(&def.id) {
                    return Err(CoreError::Conflict {
                        message: format!("App {} is locked by deployment {}", def.id, d.id),
                        deployments: vec![d.id.clone()],
                    });
                }
                scaled.push(def);
            }
            let mut out = Output::default();
            let mut last = None;
            for def in scaled {
                let (o, d) = core.put_app(def, now, force)?;
                out.extend(o);
                last = Some(d);
            }
            Ok((
                out,
                last.map(|d| deployment_answer(&d)).unwrap_or(json!({})),
            ))
        }),
    )
    .await
}

// ---- info, events, metrics -------------------------------------------------------------

async fn info(State(api): State<Api>) -> Response {
    let c = &api.config;
    let port = c
        .http_address
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .unwrap_or(0);
    answer(
        StatusCode::OK,
        json!({
            "name": "agora-services",
            "version": env!("CARGO_PKG_VERSION"),
            "frameworkId": api.driver.framework_id(),
            "leader": c.http_address,
            "elected": true,
            "subscribed": api.driver.is_subscribed(),
            "http_config": {"http_port": port},
            "marathon_config": {
                "master": c.masters.join(","),
                "mesos_role": c.role,
                "framework_name": c.name,
            },
        }),
    )
}

async fn leader(State(api): State<Api>) -> Response {
    answer(StatusCode::OK, json!({"leader": api.config.http_address}))
}

async fn metrics(State(api): State<Api>) -> Response {
    match api.service.metrics().await {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => unavailable(e),
    }
}

async fn events(
    State(api): State<Api>,
    RawQuery(q): RawQuery,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let wanted: Vec<String> = query_pairs(&q)
        .into_iter()
        .filter(|(k, _)| k == "event_type")
        .map(|(_, v)| v)
        .collect();
    let rx = api.service.events();
    let stream = futures::stream::unfold(rx, move |mut rx| {
        let wanted = wanted.clone();
        async move {
            loop {
                match rx.recv().await {
                    Ok(e) => {
                        let kind = e["eventType"].as_str().unwrap_or("event").to_string();
                        if !wanted.is_empty() && !wanted.contains(&kind) {
                            continue;
                        }
                        let ev = Event::default().event(kind).data(e.to_string());
                        return Some((Ok(ev), rx));
                    }
                    // A slow reader misses events rather than holding memory.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_paths() {
        assert!(matches!(app_path("a/b"), AppPath::App(id) if id == "/a/b"));
        assert!(matches!(app_path("/a/b/restart"), AppPath::Restart(id) if id == "/a/b"));
        assert!(matches!(app_path("a/tasks"), AppPath::Tasks(id) if id == "/a"));
        assert!(
            matches!(app_path("a/b/tasks/t1"), AppPath::Task(id, t) if id == "/a/b" && t == "t1")
        );
        assert!(matches!(app_path("a/versions"), AppPath::Versions(id) if id == "/a"));
        assert!(
            matches!(app_path("a/versions/v1"), AppPath::Version(id, v) if id == "/a" && v == "v1")
        );
        assert!(matches!(app_path("tasks"), AppPath::App(id) if id == "/tasks"));
    }

    #[test]
    fn queries_keep_repeated_keys_and_decode() {
        let q = Some("embed=apps.tasks&embed=apps.counts&force&id=%2Fa%2Fb&x=a+b".to_string());
        let pairs = query_pairs(&q);
        assert_eq!(pairs.len(), 5);
        assert_eq!(pairs[3], ("id".into(), "/a/b".into()));
        assert_eq!(pairs[4], ("x".into(), "a b".into()));
        assert!(flag(&q, "force", false));
        assert!(!flag(&q, "scale", false));
        assert!(embed(&q, "apps.").tasks);
        assert_eq!(percent_decode("%zz%2"), "%zz%2");
    }

    #[test]
    fn patches_lay_fields_over_the_base() {
        let m = merged(Some(json!({"a": 1, "b": 2})), json!({"b": 3, "c": 4}));
        assert_eq!(m, json!({"a": 1, "b": 3, "c": 4}));
        assert_eq!(merged(None, json!({"x": 1})), json!({"x": 1}));
    }
}
