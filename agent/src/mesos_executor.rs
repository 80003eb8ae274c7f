//! Mesos's executor HTTP API on the agent's `--listen` endpoint: `POST /api/v1/executor`,
//! and the environment Mesos gives executors (`environment`), so executors written for
//! Mesos run unchanged.
//!
//! Translation only: calls are decoded and translated by `agora-mesos` and handed to the
//! same state-actor calls the `ExecutorApi` socket server makes, which own executors and
//! decide everything. SUBSCRIBE answers `200` with a RecordIO stream of events; UPDATE,
//! MESSAGE and HEARTBEAT answer `202`. Refusals are Mesos's status codes with a plain-text
//! message.
//!
//! A call acts for an executor only with the token the agent gave it, sent as Mesos's
//! authenticated executors send theirs (`Authorization: Bearer
//! $MESOS_EXECUTOR_AUTHENTICATION_TOKEN`); with `--mesos-executors-without-token` a call
//! without one acts as the executor it names (Mesos's default). It must never keep
//! executor state.

use std::time::Duration;

use agora_mesos::schema::executor as x;
use agora_mesos::translate::executor::{ExecutorCall, call_to_agora, event_to_mesos};
use agora_mesos::{Format, Refusal, recordio};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use crate::executor::ExecutorKey;
use crate::executor::server::MAX_MESSAGE_BYTES;
use crate::sandbox::{IdKind, validate_id};
use crate::state::AgentState;

/// Environment variable Mesos's authenticated executors read their token from.
pub const ENV_MESOS_TOKEN: &str = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN";

#[derive(Clone)]
struct Ctx {
    state: AgentState,
    without_token: bool,
}

pub fn router(state: AgentState, without_token: bool) -> Router {
    Router::new()
        .route("/api/v1/executor", post(call))
        .with_state(Ctx {
            state,
            without_token,
        })
}

/// The variables Mesos sets for an executor (besides `MESOS_SANDBOX` and
/// `MESOS_DIRECTORY`, which every task gets).
#[allow(clippy::too_many_arguments)]
pub fn environment(
    endpoint: &str,
    framework_id: &str,
    executor_id: &str,
    agent_id: &str,
    token: &str,
    checkpoint: bool,
    recovery_timeout: Duration,
    shutdown_grace: Duration,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("MESOS_AGENT_ENDPOINT", endpoint.to_string()),
        ("MESOS_FRAMEWORK_ID", framework_id.to_string()),
        ("MESOS_EXECUTOR_ID", executor_id.to_string()),
        ("MESOS_AGENT_ID", agent_id.to_string()),
        ("MESOS_SLAVE_ID", agent_id.to_string()),
        (ENV_MESOS_TOKEN, token.to_string()),
        (
            "MESOS_RECOVERY_TIMEOUT",
            format!("{}secs", recovery_timeout.as_secs()),
        ),
        ("MESOS_SUBSCRIPTION_BACKOFF_MAX", "2secs".to_string()),
        (
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD",
            format!("{}secs", shutdown_grace.as_secs()),
        ),
    ];
    if checkpoint {
        env.push(("MESOS_CHECKPOINT", "1".to_string()));
    }
    env.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn refuse(r: Refusal) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        r.message,
    )
        .into_response()
}

fn refusal(s: tonic::Status) -> Refusal {
    if s.code() == tonic::Code::Unauthenticated {
        // The state actor names Agora's own header; a Mesos executor sends Mesos's.
        return Refusal::new(
            401,
            format!(
                "wrong or missing token: send 'Authorization: Bearer ${ENV_MESOS_TOKEN}' \
                 (or start the agent with --mesos-executors-without-token); {}",
                s.message()
            ),
        );
    }
    Refusal::for_grpc_code(s.code() as i32, s.message())
}

fn text<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

async fn call(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    match answer(&ctx, &headers, &body).await {
        Ok(r) => r,
        Err(r) => refuse(r),
    }
}

async fn answer(ctx: &Ctx, headers: &HeaderMap, body: &[u8]) -> Result<Response, Refusal> {
    let format_in = Format::of_content_type(text(headers, "content-type"))?;
    let format_out = Format::of_accept(text(headers, "accept"))?;
    let c: x::Call = format_in.decode(body)?;
    let c = call_to_agora(&c)?;
    let (framework_id, executor_id) = match &c {
        ExecutorCall::Subscribe(r) => (r.framework_id.clone(), r.executor_id.clone()),
        ExecutorCall::Update(r) => (r.framework_id.clone(), r.executor_id.clone()),
        ExecutorCall::Message(r) => (r.framework_id.clone(), r.executor_id.clone()),
        ExecutorCall::Heartbeat => return Ok(StatusCode::ACCEPTED.into_response()),
    };
    validate_id(IdKind::Framework, &framework_id)
        .and_then(|()| validate_id(IdKind::Executor, &executor_id))
        .map_err(|e| Refusal::bad_request(e.to_string()))?;
    let bearer = text(headers, "authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let token = match bearer {
        Some(t) => t,
        None if ctx.without_token => ctx
            .state
            .executor_token(ExecutorKey::new(&framework_id, &executor_id))
            .await
            .unwrap_or_default(),
        None => String::new(),
    };
    match c {
        ExecutorCall::Subscribe(r) => {
            let rx = ctx
                .state
                .executor_subscribe(r, token)
                .await
                .map_err(refusal)?;
            let events = ReceiverStream::new(rx)
                .take_while(|e| futures::future::ready(e.is_ok()))
                .filter_map(move |e| {
                    let bytes = e
                        .ok()
                        .and_then(|e| event_to_mesos(&e, &framework_id))
                        .map(|m| {
                            Ok::<_, std::convert::Infallible>(recordio::encode(
                                &format_out.encode(&m),
                            ))
                        });
                    futures::future::ready(bytes)
                });
            let mut response = Response::new(Body::from_stream(events));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(format_out.content_type()),
            );
            Ok(response)
        }
        ExecutorCall::Update(r) => {
            ctx.state.executor_update(r, token).await.map_err(refusal)?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        ExecutorCall::Message(r) => {
            if r.data.len() > MAX_MESSAGE_BYTES {
                return Err(Refusal::bad_request(format!(
                    "message of {} bytes is larger than {MAX_MESSAGE_BYTES}",
                    r.data.len()
                )));
            }
            ctx.state
                .executor_message(r, token)
                .await
                .map_err(refusal)?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        ExecutorCall::Heartbeat => Ok(StatusCode::ACCEPTED.into_response()),
    }
}
