//! The master's network edge as one fuzz target: every HTTP/JSON route and every gRPC
//! method, driven through the master's real router (authentication middleware, body
//! limits, decoding, validation, the service layer and the actor) on a master started once
//! per process on the in-memory registry.
//!
//! Input: the first byte picks a route; for a route with an id in its path the bytes up to
//! the first newline are the id (percent-encoded); the rest is the request body (wrapped in
//! a gRPC frame for gRPC methods) or the query string (for GET routes with filters).
//!
//! Oracle: an answer comes within `ANSWER_TIMEOUT`; an HTTP answer is never 5xx; a gRPC
//! answer never carries INTERNAL or UNKNOWN. Bad input is the client's fault.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use agora_master::clock::SystemClock;
use agora_master::config::MasterConfig;
use agora_master::registry::MemRegistry;
use agora_master::server::RunningMaster;
use axum::body::Body;
use axum::http::{Method, Request, Response, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// Longest wait for one answer: longer means the call hangs, which is a finding.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// gRPC status codes that blame the server.
const GRPC_SERVER_FAULTS: [&str; 2] = ["2", "13"];

/// How a route is called.
#[derive(Clone, Copy)]
enum Call {
    /// An HTTP request; `{}` in the path is replaced by the id from the input.
    Http(&'static str, &'static str),
    /// A GET whose query string is the input.
    Query(&'static str),
    /// A unary gRPC method, answered whole.
    Unary(&'static str),
    /// A server-streaming gRPC method: only its first answer (headers) is checked.
    Stream(&'static str),
}

const ROUTES: &[Call] = &[
    Call::Http("PUT", "/api/v1/weights"),
    Call::Http("PUT", "/api/v1/quota"),
    Call::Http("DELETE", "/api/v1/quota"),
    Call::Http("POST", "/api/v1/reserve"),
    Call::Http("POST", "/api/v1/unreserve"),
    Call::Http("POST", "/api/v1/volumes/create"),
    Call::Http("POST", "/api/v1/volumes/destroy"),
    Call::Http("POST", "/api/v1/frameworks/{}/teardown"),
    Call::Http("GET", "/api/v1/frameworks/{}"),
    Call::Http("GET", "/api/v1/agents/{}"),
    Call::Http("POST", "/api/v1/agents/{}/deactivate"),
    Call::Http("POST", "/api/v1/agents/{}/reactivate"),
    Call::Http("POST", "/api/v1/agents/{}/drain"),
    Call::Http("POST", "/api/v1/agents/{}/gone"),
    Call::Http("GET", "/{}"),
    Call::Query("/api/v1/tasks"),
    Call::Query("/api/v1/agents"),
    Call::Query("/api/v1/frameworks"),
    Call::Query("/api/v1/allocator/explain"),
    Call::Query("/api/v1/state"),
    Call::Query("/api/v1/roles"),
    Call::Query("/api/v1/usage"),
    Call::Stream("/agora.v1.Scheduler/Subscribe"),
    Call::Unary("/agora.v1.Scheduler/Teardown"),
    Call::Unary("/agora.v1.Scheduler/Accept"),
    Call::Unary("/agora.v1.Scheduler/AcceptBatch"),
    Call::Unary("/agora.v1.Scheduler/Decline"),
    Call::Unary("/agora.v1.Scheduler/Revive"),
    Call::Unary("/agora.v1.Scheduler/Suppress"),
    Call::Unary("/agora.v1.Scheduler/Kill"),
    Call::Unary("/agora.v1.Scheduler/Shutdown"),
    Call::Unary("/agora.v1.Scheduler/Acknowledge"),
    Call::Unary("/agora.v1.Scheduler/AcknowledgeBatch"),
    Call::Unary("/agora.v1.Scheduler/Reconcile"),
    Call::Unary("/agora.v1.Scheduler/Message"),
    Call::Unary("/agora.v1.Scheduler/UpdateFramework"),
    Call::Stream("/agora.v1.AgentApi/Register"),
    Call::Unary("/agora.v1.AgentApi/Heartbeat"),
    Call::Unary("/agora.v1.AgentApi/UpdateStatus"),
    Call::Unary("/agora.v1.AgentApi/UpdateStatuses"),
    Call::Unary("/agora.v1.AgentApi/ExecutorMessage"),
    Call::Unary("/agora.v1.AgentApi/ExecutorExited"),
    Call::Unary("/agora.v1.AgentApi/UpdateUsage"),
    Call::Unary("/agora.v1.Operator/UpdateWeights"),
    Call::Unary("/agora.v1.Operator/SetQuota"),
    Call::Unary("/agora.v1.Operator/RemoveQuota"),
    Call::Unary("/agora.v1.Operator/ReserveResources"),
    Call::Unary("/agora.v1.Operator/UnreserveResources"),
    Call::Unary("/agora.v1.Operator/CreateVolumes"),
    Call::Unary("/agora.v1.Operator/DestroyVolumes"),
    Call::Unary("/agora.v1.Operator/TeardownFramework"),
    Call::Unary("/agora.v1.Operator/DrainAgent"),
    Call::Unary("/agora.v1.Operator/DeactivateAgent"),
    Call::Unary("/agora.v1.Operator/ReactivateAgent"),
    Call::Unary("/agora.v1.Operator/MarkAgentGone"),
    // Added later: new routes go at the end, so the corpus's selector bytes keep their routes.
    Call::Query("/api/v1/events"),
    Call::Query("/master/state"),
    Call::Query("/master/tasks"),
    Call::Query("/metrics/snapshot"),
    Call::Http("POST", "/api/v1/scheduler"),
    Call::Http("GET", "/api/v1/tasks/fw-1/{}/files/tail"),
];

/// How many routes the first byte chooses from.
pub const ROUTE_COUNT: usize = ROUTES.len();

/// The selector byte of the route with `path` (as written in `ROUTES`), for seeding.
pub fn selector(method: &str, path: &str) -> Option<u8> {
    ROUTES
        .iter()
        .position(|call| match call {
            Call::Http(m, p) => *m == method && *p == path,
            Call::Query(p) => method == "GET" && *p == path,
            Call::Unary(p) | Call::Stream(p) => method == "GRPC" && *p == path,
        })
        .and_then(|i| u8::try_from(i).ok())
}

/// The master every input is sent to, and the runtime its actor runs on.
struct Harness {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    crate::once(&HARNESS, || {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => panic!("cannot build the fuzzing runtime: {e}"),
        };
        let config = MasterConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            data_dir: std::env::temp_dir()
                .join(format!("agora-fuzz-master-{}", std::process::id())),
            ..MasterConfig::default()
        };
        let started = runtime.block_on(RunningMaster::start_with_registry(
            config,
            Arc::new(SystemClock),
            Box::new(MemRegistry::new()),
        ));
        let router = match started {
            Ok(master) => master.router(),
            Err(e) => panic!("cannot start the master to fuzz: {e}"),
        };
        Harness { runtime, router }
    })
}

/// Percent-encodes every byte that is neither unreserved nor in `keep`, so any input is a
/// valid path segment (`keep` empty) or query string (`keep` `=&`, so pairs can form).
fn percent_encode(bytes: &[u8], keep: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(message.len() + 5);
    framed.push(0);
    framed.extend_from_slice(
        &u32::try_from(message.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    framed.extend_from_slice(message);
    framed
}

fn request(call: Call, input: &[u8]) -> Option<Request<Body>> {
    let built = match call {
        Call::Http(method, path) => {
            let (path, body) = if path.contains("{}") {
                let (id, rest) = match input.iter().position(|&b| b == b'\n') {
                    Some(at) => (&input[..at], &input[at + 1..]),
                    None => (input, &[][..]),
                };
                (path.replace("{}", &percent_encode(id, b"")), rest)
            } else {
                (path.to_string(), input)
            };
            Request::builder()
                .method(Method::from_bytes(method.as_bytes()).ok()?)
                .uri(path)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_vec()))
        }
        Call::Query(path) => Request::builder()
            .method(Method::GET)
            .uri(format!("{path}?{}", percent_encode(input, b"=&")))
            .body(Body::empty()),
        Call::Unary(path) | Call::Stream(path) => Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/grpc")
            .header("te", "trailers")
            .body(Body::from(grpc_frame(input))),
    };
    built.ok()
}

fn grpc_status(response: &Response<Body>) -> Option<String> {
    response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn check(call: Call, response: Response<Body>) {
    let status = response.status();
    match call {
        Call::Http(..) | Call::Query(_) => {
            assert!(
                !status.is_server_error(),
                "HTTP {status} for bad input: {:?}",
                response.into_body().collect().await.map(|b| b.to_bytes())
            );
        }
        Call::Stream(_) => {
            if let Some(code) = grpc_status(&response) {
                assert!(
                    !GRPC_SERVER_FAULTS.contains(&code.as_str()),
                    "gRPC status {code} ({:?})",
                    response.headers().get("grpc-message")
                );
            }
        }
        Call::Unary(_) => {
            let headers_status = grpc_status(&response);
            let trailers_status = match response.into_body().collect().await {
                Ok(collected) => collected
                    .trailers()
                    .and_then(|t| t.get("grpc-status"))
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                Err(e) => panic!("the answer's body failed: {e}"),
            };
            for code in headers_status.into_iter().chain(trailers_status) {
                assert!(
                    !GRPC_SERVER_FAULTS.contains(&code.as_str()),
                    "gRPC status {code} for bad input"
                );
            }
        }
    }
}

/// The target: see the module comment.
pub fn run(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let call = ROUTES[usize::from(selector) % ROUTES.len()];
    let Some(req) = request(call, input) else {
        return;
    };
    let h = harness();
    h.runtime.block_on(async {
        let answered = tokio::time::timeout(ANSWER_TIMEOUT, async {
            match h.router.clone().oneshot(req).await {
                Ok(response) => check(call, response).await,
                Err(e) => match e {},
            }
        })
        .await;
        assert!(answered.is_ok(), "no answer within {ANSWER_TIMEOUT:?}");
    });
}
