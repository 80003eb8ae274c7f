//! The REST API, in the shape of Metronome's v1 where it fits, plus dependencies, the
//! graph export, server-sent events and Prometheus metrics. See `docs/jobs.md`.
//!
//! A transport only: it parses paths, queries and bodies (a body that does not parse is a
//! 422 naming the JSON path), sends one [`Request`] to the actor and translates the
//! answer. It must never hold job state or decide anything.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

use crate::daemon::{Handle, Request};
use crate::engine::ApiError;
use crate::schedule::ScheduleSpec;
use crate::spec::{JobSpec, parse_json};

/// The router, serving `handle`.
pub fn router(handle: Handle) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/v1/jobs", get(list_jobs).post(create_job))
        .route(
            "/v1/jobs/{id}",
            get(get_job).put(update_job).delete(delete_job),
        )
        .route("/v1/jobs/{id}/runs", get(list_runs).post(start_run))
        .route("/v1/jobs/{id}/runs/{run}", get(get_run))
        .route("/v1/jobs/{id}/runs/{run}/actions/stop", post(stop_run))
        .route(
            "/v1/jobs/{id}/schedules",
            get(list_schedules).post(create_schedule),
        )
        .route(
            "/v1/jobs/{id}/schedules/{sid}",
            get(get_schedule).put(put_schedule).delete(delete_schedule),
        )
        .route("/v1/jobs/{id}/schedules/{sid}/pause", post(pause_schedule))
        .route(
            "/v1/jobs/{id}/schedules/{sid}/resume",
            post(resume_schedule),
        )
        .route(
            "/v1/jobs/{id}/dependencies",
            get(get_dependencies).put(put_dependencies),
        )
        .route("/v1/graph", get(graph))
        .route("/v1/graph/dot", get(graph_dot))
        .route("/v1/events", get(events))
        .with_state(handle)
}

fn error_response(e: ApiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body = json!({ "message": e.message });
    if let Some(field) = &e.field {
        body["field"] = json!(field);
        body["details"] = json!([{
            "path": format!("/{}", field.replace('.', "/")),
            "errors": [e.message],
        }]);
    }
    (status, axum::Json(body)).into_response()
}

async fn answer(handle: &Handle, req: Request, ok: StatusCode) -> Response {
    match handle.ask(req).await {
        Ok(Value::Null) => StatusCode::NO_CONTENT.into_response(),
        Ok(v) => (ok, axum::Json(v)).into_response(),
        Err(e) => error_response(e),
    }
}

fn flag(q: &HashMap<String, String>, name: &str) -> bool {
    q.get(name)
        .is_some_and(|v| v.is_empty() || v == "true" || v == "1")
}

async fn metrics(State(h): State<Handle>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        h.metrics.render(),
    )
        .into_response()
}

async fn list_jobs(State(h): State<Handle>) -> Response {
    answer(&h, Request::ListJobs, StatusCode::OK).await
}

async fn create_job(State(h): State<Handle>, body: Bytes) -> Response {
    match parse_json::<JobSpec>(&body) {
        Ok(spec) => answer(&h, Request::CreateJob(spec), StatusCode::CREATED).await,
        Err(e) => error_response(e.into()),
    }
}

async fn get_job(State(h): State<Handle>, Path(id): Path<String>) -> Response {
    answer(&h, Request::GetJob(id), StatusCode::OK).await
}

async fn update_job(State(h): State<Handle>, Path(id): Path<String>, body: Bytes) -> Response {
    match parse_json::<JobSpec>(&body) {
        Ok(spec) => answer(&h, Request::UpdateJob(id, spec), StatusCode::OK).await,
        Err(e) => error_response(e.into()),
    }
}

async fn delete_job(State(h): State<Handle>, Path(id): Path<String>) -> Response {
    answer(&h, Request::DeleteJob(id), StatusCode::OK).await
}

async fn list_runs(
    State(h): State<Handle>,
    Path(job): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let all = flag(&q, "all");
    answer(&h, Request::ListRuns { job, all }, StatusCode::OK).await
}

async fn start_run(
    State(h): State<Handle>,
    Path(job): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let descendants = flag(&q, "descendants");
    answer(
        &h,
        Request::StartRun { job, descendants },
        StatusCode::CREATED,
    )
    .await
}

async fn get_run(State(h): State<Handle>, Path((job, run)): Path<(String, String)>) -> Response {
    answer(&h, Request::GetRun { job, run }, StatusCode::OK).await
}

async fn stop_run(State(h): State<Handle>, Path((job, run)): Path<(String, String)>) -> Response {
    answer(&h, Request::StopRun { job, run }, StatusCode::OK).await
}

async fn list_schedules(State(h): State<Handle>, Path(job): Path<String>) -> Response {
    answer(&h, Request::Schedules(job), StatusCode::OK).await
}

async fn create_schedule(
    State(h): State<Handle>,
    Path(job): Path<String>,
    body: Bytes,
) -> Response {
    match parse_json::<ScheduleSpec>(&body) {
        Ok(spec) => {
            let req = Request::PutSchedule {
                job,
                sid: None,
                spec,
            };
            answer(&h, req, StatusCode::CREATED).await
        }
        Err(e) => error_response(e.into()),
    }
}

async fn get_schedule(
    State(h): State<Handle>,
    Path((job, sid)): Path<(String, String)>,
) -> Response {
    answer(&h, Request::Schedule(job, sid), StatusCode::OK).await
}

async fn put_schedule(
    State(h): State<Handle>,
    Path((job, sid)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    match parse_json::<ScheduleSpec>(&body) {
        Ok(spec) => {
            let req = Request::PutSchedule {
                job,
                sid: Some(sid),
                spec,
            };
            answer(&h, req, StatusCode::OK).await
        }
        Err(e) => error_response(e.into()),
    }
}

async fn delete_schedule(
    State(h): State<Handle>,
    Path((job, sid)): Path<(String, String)>,
) -> Response {
    answer(&h, Request::DeleteSchedule(job, sid), StatusCode::OK).await
}

async fn pause_schedule(
    State(h): State<Handle>,
    Path((job, sid)): Path<(String, String)>,
) -> Response {
    let req = Request::EnableSchedule {
        job,
        sid,
        enabled: false,
    };
    answer(&h, req, StatusCode::OK).await
}

async fn resume_schedule(
    State(h): State<Handle>,
    Path((job, sid)): Path<(String, String)>,
) -> Response {
    let req = Request::EnableSchedule {
        job,
        sid,
        enabled: true,
    };
    answer(&h, req, StatusCode::OK).await
}

async fn get_dependencies(State(h): State<Handle>, Path(job): Path<String>) -> Response {
    answer(&h, Request::Dependencies(job), StatusCode::OK).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Parents {
    parents: Vec<String>,
}

async fn put_dependencies(
    State(h): State<Handle>,
    Path(job): Path<String>,
    body: Bytes,
) -> Response {
    match parse_json::<Parents>(&body) {
        Ok(p) => answer(&h, Request::SetDependencies(job, p.parents), StatusCode::OK).await,
        Err(e) => error_response(e.into()),
    }
}

async fn graph(State(h): State<Handle>, Query(q): Query<HashMap<String, String>>) -> Response {
    if q.get("format").is_some_and(|f| f == "dot") {
        return graph_dot(State(h)).await;
    }
    answer(&h, Request::Graph, StatusCode::OK).await
}

async fn graph_dot(State(h): State<Handle>) -> Response {
    match h.ask(Request::GraphDot).await {
        Ok(Value::String(dot)) => {
            ([(header::CONTENT_TYPE, "text/vnd.graphviz")], dot).into_response()
        }
        Ok(other) => (StatusCode::INTERNAL_SERVER_ERROR, other.to_string()).into_response(),
        Err(e) => error_response(e),
    }
}

async fn events(
    State(h): State<Handle>,
) -> Sse<impl tokio_stream::Stream<Item = Result<SseEvent, Infallible>>> {
    let stream = BroadcastStream::new(h.events.subscribe()).filter_map(|item| {
        // A client too slow to keep up skips what it missed (Lagged) instead of
        // holding the daemon's memory.
        let ev = item.ok()?;
        let kind = serde_json::to_value(&ev)
            .ok()
            .and_then(|v| v["type"].as_str().map(str::to_string))
            .unwrap_or_default();
        SseEvent::default().event(kind).json_data(&ev).ok().map(Ok)
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
