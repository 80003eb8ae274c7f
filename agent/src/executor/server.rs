//! The executor API server: `ExecutorApi` over the agent's unix socket.
//!
//! Owns the socket file and the tonic server. Checks the shape of each call (ids present
//! and usable as path components) and forwards it to the state actor, which owns the
//! executors and answers with a precise status. It must never keep executor state or
//! decide anything about tasks itself.

use std::path::{Path, PathBuf};

use agora_proto::v1::executor_api_server::{ExecutorApi, ExecutorApiServer};
use agora_proto::v1::{
    Empty, ExecutorEvent, ExecutorMessageRequest, ExecutorSubscribeRequest, ExecutorUpdateRequest,
};
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::{Request, Response, Status};

use crate::sandbox::{IdKind, validate_id};
use crate::state::AgentState;

pub use super::TOKEN_HEADER;

/// Largest framework message an executor may send (the master bounds it too).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// The socket cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve the executor API on {path}: {error}")]
pub struct ServeError {
    /// The socket path.
    pub path: PathBuf,
    /// The OS error.
    pub error: std::io::Error,
}

/// The `ExecutorApi` service.
#[derive(Clone, Debug)]
pub struct ExecutorService {
    state: AgentState,
}

/// The executor's token from the call's metadata (empty when absent or not text).
fn token_of<T>(request: &Request<T>) -> String {
    request
        .metadata()
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn ids(framework_id: &str, executor_id: &str) -> Result<(), Status> {
    validate_id(IdKind::Framework, framework_id)
        .and_then(|()| validate_id(IdKind::Executor, executor_id))
        .map_err(|e| Status::invalid_argument(e.to_string()))
}

#[tonic::async_trait]
impl ExecutorApi for ExecutorService {
    type SubscribeStream = ReceiverStream<Result<ExecutorEvent, Status>>;

    async fn subscribe(
        &self,
        request: Request<ExecutorSubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let token = token_of(&request);
        let r = request.into_inner();
        ids(&r.framework_id, &r.executor_id)?;
        let rx = self.state.executor_subscribe(r, token).await?;
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn update(
        &self,
        request: Request<ExecutorUpdateRequest>,
    ) -> Result<Response<Empty>, Status> {
        let token = token_of(&request);
        let r = request.into_inner();
        ids(&r.framework_id, &r.executor_id)?;
        if r.status.is_none() {
            return Err(Status::invalid_argument("update carries no status"));
        }
        self.state.executor_update(r, token).await?;
        Ok(Response::new(Empty {}))
    }

    async fn message(
        &self,
        request: Request<ExecutorMessageRequest>,
    ) -> Result<Response<Empty>, Status> {
        let token = token_of(&request);
        let r = request.into_inner();
        ids(&r.framework_id, &r.executor_id)?;
        if r.data.len() > MAX_MESSAGE_BYTES {
            return Err(Status::invalid_argument(format!(
                "message of {} bytes is larger than {MAX_MESSAGE_BYTES}",
                r.data.len()
            )));
        }
        self.state.executor_message(r, token).await?;
        Ok(Response::new(Empty {}))
    }
}

/// Binds the socket, replacing a stale one a previous run left. Anyone may connect
/// (executors can run as the framework's user); every call must carry the token the
/// agent gave the executor it names.
pub fn bind(path: &Path) -> Result<tokio::net::UnixListener, ServeError> {
    let err = |error| ServeError {
        path: path.to_path_buf(),
        error,
    };
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(err)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).map_err(err)?;
    Ok(listener)
}

/// Serves the executor API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::UnixListener,
    state: AgentState,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let service = ExecutorApiServer::new(ExecutorService { state });
    let result = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await;
    if let Err(e) = result {
        tracing::error!("executor API server failed: {e}");
    }
}
