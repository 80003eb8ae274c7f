//! gRPC front ends of the master: they translate requests into calls of the service layer
//! (`crate::service`) and its replies and errors into responses. They hold no state and no
//! service logic: no gate checks, no validation, no actor commands of their own.

pub mod agent;
pub mod operator;
pub mod scheduler;

use std::pin::Pin;
use std::task::{Context, Poll};

use agora_proto::v1::{
    agent_api_server::AgentApiServer, operator_server::OperatorServer,
    scheduler_server::SchedulerServer,
};
use futures::Stream;
use tokio::sync::mpsc;
use tonic::Status;

use crate::actor::{Command, MasterHandle};
use crate::service::{Error, Service};

pub use crate::service::scheduler::{MAX_BATCH, check_batch};

/// The three gRPC services on one router, behind the layer that answers undecodable
/// requests `INVALID_ARGUMENT`.
pub fn router(service: Service) -> axum::Router {
    tonic::service::Routes::new(SchedulerServer::new(scheduler::SchedulerService::new(
        service.clone(),
    )))
    .add_service(AgentApiServer::new(agent::AgentService::new(
        service.clone(),
    )))
    .add_service(OperatorServer::new(operator::OperatorService::new(service)))
    .into_axum_router()
    .layer(axum::middleware::map_response(
        undecodable_is_invalid_argument,
    ))
}

/// What tonic's protobuf codec says when a request body is not the message it should be.
const DECODE_FAILURE: &str = "failed to decode Protobuf message";

/// tonic answers a request it cannot decode with INTERNAL (its codec maps every decode
/// error so); the fault is the caller's, so the code becomes INVALID_ARGUMENT. The
/// message stays.
async fn undecodable_is_invalid_argument(
    mut response: axum::response::Response,
) -> axum::response::Response {
    let undecodable = Status::from_header_map(response.headers())
        .filter(|s| s.code() == tonic::Code::Internal && s.message().starts_with(DECODE_FAILURE));
    if let Some(s) = undecodable {
        let fixed = Status::invalid_argument(s.message().to_string());
        if fixed.add_header(response.headers_mut()).is_err() {
            tracing::warn!("cannot rewrite the status of an undecodable request");
        }
    }
    response
}

/// A response stream that tells the actor when the peer goes away (tonic drops the stream
/// when the client disconnects), so the actor can mark the framework or agent disconnected.
/// The actor ends a stream with a domain [`Error`]; this is where it becomes a gRPC status.
pub struct ClosingStream<T> {
    rx: Source<T>,
    on_close: Option<(MasterHandle, Command)>,
}

/// Where the items come from: a queue of items, or of boxed items (see `boxed`).
enum Source<T> {
    Plain(mpsc::Receiver<Result<T, Error>>),
    Boxed(mpsc::Receiver<Result<Box<T>, Error>>),
}

impl<T> ClosingStream<T> {
    pub fn new(
        rx: mpsc::Receiver<Result<T, Error>>,
        handle: MasterHandle,
        on_close: Command,
    ) -> Self {
        Self {
            rx: Source::Plain(rx),
            on_close: Some((handle, on_close)),
        }
    }

    /// For queues of boxed items. A bounded tokio queue allocates its slots 32 at a time
    /// when it is created, each the size of the item; a peer queue per agent of 944-byte
    /// `AgentCommand`s cost 30 KiB of address space per agent, touched as commands pass.
    pub fn boxed(
        rx: mpsc::Receiver<Result<Box<T>, Error>>,
        handle: MasterHandle,
        on_close: Command,
    ) -> Self {
        Self {
            rx: Source::Boxed(rx),
            on_close: Some((handle, on_close)),
        }
    }
}

impl<T> Stream for ClosingStream<T> {
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match &mut self.rx {
            Source::Plain(rx) => rx
                .poll_recv(cx)
                .map(|item| item.map(|r| r.map_err(Status::from))),
            Source::Boxed(rx) => rx
                .poll_recv(cx)
                .map(|item| item.map(|r| r.map(|b| *b).map_err(Status::from))),
        }
    }
}

impl<T> Drop for ClosingStream<T> {
    fn drop(&mut self) {
        if let Some((handle, cmd)) = self.on_close.take() {
            handle.notify(cmd);
        }
    }
}
