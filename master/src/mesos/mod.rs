//! Mesos v1 API on the master's port: `/api/v1/scheduler` (`scheduler.rs`) and the
//! read-only endpoints Mesos tools read (`endpoints.rs`: `/master/state`, `/state`,
//! `/master/state-summary`, `/master/frameworks`, `/master/slaves`, `/master/tasks`,
//! `/master/roles`, `/metrics/snapshot`, `/master/redirect`, `/redirect`, `/version`).
//!
//! Translation only: the message schemas, RecordIO and the Mesos <-> Agora mapping live in
//! the `agora-mesos` crate, and every call goes to the same `service::Service` function
//! as its gRPC and JSON twins. Owns the one piece of protocol state Mesos has beyond
//! Agora's: which `Mesos-Stream-Id` each framework's current stream carries. It must
//! never check, decide or change anything the service layer decides.
//!
//! Errors are Mesos's: a status code (400, 401, 403, 406, 415, 501, 503, ...) with a
//! plain-text message, outside the JSON error layer of Agora's own routes.

pub mod endpoints;
pub mod scheduler;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use agora_mesos::Refusal;
use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::service::{Error, Service};

/// What the Mesos routes share.
#[derive(Clone)]
pub struct MesosState {
    service: Service,
    /// Framework id -> the `Mesos-Stream-Id` of its current subscription. A plain mutex:
    /// never held across an `.await`.
    streams: Arc<Mutex<HashMap<String, String>>>,
}

/// The Mesos routes, to be merged into the master's router.
pub fn router(service: Service) -> Router {
    let state = MesosState {
        service,
        streams: Arc::default(),
    };
    Router::new()
        .route("/api/v1/scheduler", post(scheduler::call))
        .route("/master/state", get(endpoints::state))
        .route("/state", get(endpoints::state))
        .route("/master/state-summary", get(endpoints::state_summary))
        .route("/master/frameworks", get(endpoints::frameworks))
        .route("/master/slaves", get(endpoints::slaves))
        .route("/master/tasks", get(endpoints::tasks))
        .route("/master/roles", get(endpoints::roles))
        .route("/metrics/snapshot", get(endpoints::metrics_snapshot))
        .route("/master/redirect", get(endpoints::redirect))
        .route("/redirect", get(endpoints::redirect))
        .route("/version", get(endpoints::version))
        .with_state(state)
}

/// A refusal as Mesos answers it: the status with a plain-text body.
pub fn refuse(r: Refusal) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        r.message,
    )
        .into_response()
}

/// A service error in Mesos's status codes.
pub fn refusal_of(e: &Error) -> Refusal {
    match e {
        Error::TooLarge(m) => Refusal::new(413, m.clone()),
        _ => Refusal::for_grpc_code(e.code() as i32, e.message()),
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The host and port the caller reached the master on (the `Host` header), for
/// `MasterInfo` and redirects.
fn host_and_port(headers: &HeaderMap) -> (String, u16) {
    let host = header_text(headers, "host").unwrap_or("localhost");
    match host.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            h.trim_matches(|c| c == '[' || c == ']').to_string(),
            p.parse().unwrap_or(5050),
        ),
        _ => (host.to_string(), 5050),
    }
}
