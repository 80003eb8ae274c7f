//! The executor driver: connection, subscription, event dispatch and reliable updates.
//!
//! Owns the connection to the agent's unix socket and the executor's *book* (a small actor:
//! updates not yet acknowledged, tasks not yet reported on, the current client). Events are
//! dispatched to the [`Executor`] one at a time, in order. Updates go to the agent one at a
//! time, in the order they were made, so the agent sees each task's states in order.
//!
//! It must never drop an update the agent has not confirmed the framework acknowledged:
//! after a lost connection it reconnects with backoff and re-subscribes carrying them, for
//! at most [`DriverConfig::recovery_timeout`], then gives up ([`DriverError::AgentGone`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agora_proto::v1::executor_api_client::ExecutorApiClient;
use agora_proto::v1::executor_event::Event;
use agora_proto::v1::{
    ExecutorEvent, ExecutorMessageRequest, ExecutorSubscribeRequest, ExecutorUpdateRequest,
    StatusSource, TaskInfo, TaskStatus,
};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Streaming};

use crate::executor::{Executor, Subscribed};

/// Metadata key carrying the executor's token on every call.
pub const TOKEN_HEADER: &str = "x-agora-executor-token";

/// Timeout of one `Update` or `Message` call.
const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and who the executor is, and how patient it is.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// The agent's executor API socket.
    pub socket: PathBuf,
    /// The executor's framework.
    pub framework_id: String,
    /// The executor's id.
    pub executor_id: String,
    /// The secret the agent gave this executor.
    pub token: String,
    /// Longest time without a connection to the agent before the driver gives up.
    pub recovery_timeout: Duration,
    /// First reconnection delay.
    pub backoff_min: Duration,
    /// Largest reconnection delay.
    pub backoff_max: Duration,
}

impl DriverConfig {
    /// The configuration the agent passes in the environment (see [`crate::env`]).
    pub fn from_env() -> Result<DriverConfig, DriverError> {
        let var = |name: &'static str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or(DriverError::MissingEnv(name))
        };
        let recovery_timeout = match std::env::var(crate::env::RECOVERY_TIMEOUT) {
            Ok(text) => text
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e6)
                .map(Duration::from_secs_f64)
                .ok_or(DriverError::BadEnv {
                    name: crate::env::RECOVERY_TIMEOUT,
                    value: text,
                })?,
            Err(_) => Duration::from_secs(900),
        };
        Ok(DriverConfig {
            socket: PathBuf::from(var(crate::env::SOCKET)?),
            framework_id: var(crate::env::FRAMEWORK_ID)?,
            executor_id: var(crate::env::EXECUTOR_ID)?,
            token: var(crate::env::TOKEN)?,
            recovery_timeout,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
        })
    }
}

/// Why the driver stopped.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// A variable the agent should have set is missing.
    #[error("environment variable {0} is not set; is this running under an Agora agent?")]
    MissingEnv(&'static str),
    /// A variable holds something unusable.
    #[error("environment variable {name} has an invalid value {value:?}")]
    BadEnv {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// The agent refused the subscription (e.g. it does not know this executor).
    #[error("the agent refused the subscription: {} ({:?})", .0.message(), .0.code())]
    Refused(tonic::Status),
    /// The agent refused an update or a message.
    #[error("the agent refused the call: {} ({:?})", .0.message(), .0.code())]
    CallRefused(tonic::Status),
    /// No agent answered within the recovery timeout.
    #[error("the agent has been unreachable for {0:?}; giving up")]
    AgentGone(Duration),
    /// The driver has stopped.
    #[error("the executor driver has stopped")]
    Stopped,
}

/// What callbacks (and tasks they spawn) use to talk to the agent. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ExecutorHandle {
    tx: mpsc::Sender<BookMsg>,
    framework_id: String,
    executor_id: String,
}

impl ExecutorHandle {
    /// The executor's id.
    pub fn executor_id(&self) -> &str {
        &self.executor_id
    }

    /// The executor's framework id.
    pub fn framework_id(&self) -> &str {
        &self.framework_id
    }

    /// Sends a task status update. The driver fills in the ids, source, timestamp and a
    /// fresh uuid, and keeps the update until the framework acknowledges it (re-sending it
    /// after an agent restart). `Ok` also when the agent is unreachable right now (the
    /// update goes with the next subscription); an error only when the agent refused it.
    pub async fn update(&self, status: TaskStatus) -> Result<(), DriverError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(BookMsg::Update { status, reply })
            .await
            .map_err(|_| DriverError::Stopped)?;
        rx.await.map_err(|_| DriverError::Stopped)?
    }

    /// Sends a message to the framework (best effort: not re-sent).
    pub async fn message(&self, data: Vec<u8>) -> Result<(), DriverError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(BookMsg::Message { data, reply })
            .await
            .map_err(|_| DriverError::Stopped)?;
        rx.await.map_err(|_| DriverError::Stopped)?
    }

    /// Asks the driver to stop after the current callback ([`run`] then returns `Ok`).
    pub async fn stop(&self) {
        let _ = self.tx.send(BookMsg::Stop).await;
    }

    /// Updates not yet acknowledged, oldest first (for tests and diagnostics).
    pub async fn unacknowledged(&self) -> Vec<TaskStatus> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(BookMsg::Snapshot { reply }).await.is_err() {
            return Vec::new();
        }
        rx.await.map(|(u, _)| u).unwrap_or_default()
    }
}

/// Runs `executor` with the configuration from the environment until the agent shuts it
/// down (`Ok`), the executor stops the driver (`Ok`), or the agent is gone (`Err`).
pub async fn run<E: Executor>(executor: E) -> Result<(), DriverError> {
    run_with(executor, DriverConfig::from_env()?).await
}

/// [`run`] with an explicit configuration.
pub async fn run_with<E: Executor>(
    mut executor: E,
    config: DriverConfig,
) -> Result<(), DriverError> {
    let (tx, rx) = mpsc::channel(256);
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let book = Book {
        unacked: Vec::new(),
        unreported: BTreeMap::new(),
        client: None,
        framework_id: config.framework_id.clone(),
        executor_id: config.executor_id.clone(),
        token: config.token.clone(),
        stop: stop_tx,
    };
    let book_task = tokio::spawn(book.run(rx));
    let handle = ExecutorHandle {
        tx,
        framework_id: config.framework_id.clone(),
        executor_id: config.executor_id.clone(),
    };
    let result = drive(&mut executor, &handle, &config, &mut stop_rx).await;
    // Handles the executor keeps (its own tasks may hold clones) would keep the book
    // alive forever; nothing is left for it to do.
    book_task.abort();
    result
}

async fn drive<E: Executor>(
    executor: &mut E,
    handle: &ExecutorHandle,
    config: &DriverConfig,
    stop_rx: &mut watch::Receiver<bool>,
) -> Result<(), DriverError> {
    let mut delay = config.backoff_min;
    let mut unreachable_since = Instant::now();
    let mut subscribed_before = false;
    loop {
        if *stop_rx.borrow() {
            return Ok(());
        }
        match subscribe(config, handle).await {
            Ok((client, stream)) => {
                let _ = handle.tx.send(BookMsg::Connected(client)).await;
                let end = pump(executor, handle, stream, stop_rx, subscribed_before).await;
                subscribed_before = true;
                let _ = handle.tx.send(BookMsg::Disconnected).await;
                match end {
                    End::Done => return Ok(()),
                    End::Lost(why) => {
                        tracing::warn!("lost the agent: {why}; reconnecting");
                        unreachable_since = Instant::now();
                        delay = config.backoff_min;
                    }
                }
            }
            Err(Failure::Refused(status)) => return Err(DriverError::Refused(status)),
            Err(Failure::Unreachable(why)) => {
                tracing::debug!("agent unreachable: {why}");
            }
        }
        if unreachable_since.elapsed() >= config.recovery_timeout {
            return Err(DriverError::AgentGone(config.recovery_timeout));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(config.backoff_max);
    }
}

enum Failure {
    Refused(tonic::Status),
    Unreachable(String),
}

enum End {
    Done,
    Lost(String),
}

/// A transport-level failure (the agent is down or restarting) rather than a refusal.
fn is_transient(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
    )
}

/// A channel to the agent's executor API socket at `path`.
pub async fn connect(path: &Path) -> Result<Channel, tonic::transport::Error> {
    let path = path.to_path_buf();
    // The URI is never resolved: the connector always dials the socket.
    Endpoint::from_static("http://agent.invalid")
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
}

/// A request carrying the executor's token.
pub fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    match tonic::metadata::MetadataValue::try_from(token) {
        Ok(value) => {
            request.metadata_mut().insert(TOKEN_HEADER, value);
        }
        // The agent refuses the call as unauthenticated, which says what is wrong.
        Err(_) => tracing::error!("the executor token is not a valid header value"),
    }
    request
}

async fn subscribe(
    config: &DriverConfig,
    handle: &ExecutorHandle,
) -> Result<(ExecutorApiClient<Channel>, Streaming<ExecutorEvent>), Failure> {
    let channel = connect(&config.socket)
        .await
        .map_err(|e| Failure::Unreachable(format!("{}: {e:?}", config.socket.display())))?;
    let mut client = ExecutorApiClient::new(channel);
    let (reply, rx) = oneshot::channel();
    handle
        .tx
        .send(BookMsg::Snapshot { reply })
        .await
        .map_err(|_| Failure::Unreachable("driver stopped".into()))?;
    let (unacknowledged_updates, unacknowledged_tasks) = rx.await.unwrap_or_default();
    let request = ExecutorSubscribeRequest {
        framework_id: config.framework_id.clone(),
        executor_id: config.executor_id.clone(),
        unacknowledged_updates,
        unacknowledged_tasks,
    };
    match client.subscribe(with_token(request, &config.token)).await {
        Ok(response) => Ok((client, response.into_inner())),
        Err(status) if is_transient(&status) => {
            Err(Failure::Unreachable(status.message().to_string()))
        }
        Err(status) => Err(Failure::Refused(status)),
    }
}

async fn pump<E: Executor>(
    executor: &mut E,
    handle: &ExecutorHandle,
    mut stream: Streaming<ExecutorEvent>,
    stop_rx: &mut watch::Receiver<bool>,
    resubscribed: bool,
) -> End {
    loop {
        let event = tokio::select! {
            changed = stop_rx.changed() => {
                if changed.is_err() || *stop_rx.borrow() {
                    return End::Done;
                }
                continue;
            }
            message = stream.message() => match message {
                Ok(Some(ExecutorEvent { event: Some(e) })) => e,
                Ok(Some(ExecutorEvent { event: None })) => continue,
                Ok(None) => return End::Lost("the agent closed the event stream".into()),
                Err(s) => return End::Lost(format!("event stream failed: {}", s.message())),
            },
        };
        match event {
            Event::Subscribed(s) => {
                let subscribed = Subscribed {
                    executor: s.executor.unwrap_or_default(),
                    framework: s.framework.unwrap_or_default(),
                    agent: s.agent.unwrap_or_default(),
                    resubscribed,
                };
                executor.registered(handle, subscribed).await;
            }
            Event::Launch(launch) => {
                let Some(task) = launch.task else { continue };
                let _ = handle.tx.send(BookMsg::Launched(vec![task.clone()])).await;
                executor.launch_task(handle, task).await;
            }
            Event::LaunchGroup(group) => {
                let Some(group) = group.task_group else {
                    continue;
                };
                let _ = handle.tx.send(BookMsg::Launched(group.tasks.clone())).await;
                executor.launch_group(handle, group).await;
            }
            Event::Kill(kill) => {
                executor
                    .kill_task(handle, kill.task_id, kill.kill_policy)
                    .await;
            }
            Event::Acknowledged(ack) => {
                let _ = handle
                    .tx
                    .send(BookMsg::Acked {
                        uuid: ack.uuid.clone(),
                    })
                    .await;
                executor.acknowledged(handle, ack.task_id, ack.uuid).await;
            }
            Event::Message(m) => executor.message(handle, m.data).await,
            Event::Shutdown(s) => {
                let grace = if s.grace_period_seconds.is_finite() && s.grace_period_seconds > 0.0 {
                    Duration::from_secs_f64(s.grace_period_seconds.min(3600.0))
                } else {
                    Duration::ZERO
                };
                executor.shutdown(handle, grace).await;
                return End::Done;
            }
            Event::Error(e) => executor.error(handle, e.message).await,
        }
    }
}

enum BookMsg {
    Update {
        status: TaskStatus,
        reply: oneshot::Sender<Result<(), DriverError>>,
    },
    Message {
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), DriverError>>,
    },
    Launched(Vec<TaskInfo>),
    Acked {
        uuid: String,
    },
    Connected(ExecutorApiClient<Channel>),
    Disconnected,
    Snapshot {
        reply: oneshot::Sender<(Vec<TaskStatus>, Vec<TaskInfo>)>,
    },
    Stop,
}

impl std::fmt::Debug for BookMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("executor book message")
    }
}

/// The single owner of what must survive a reconnection.
struct Book {
    /// Updates sent (or to send) and not acknowledged, oldest first.
    unacked: Vec<TaskStatus>,
    /// Tasks launched that no update has been made for yet.
    unreported: BTreeMap<String, TaskInfo>,
    client: Option<ExecutorApiClient<Channel>>,
    framework_id: String,
    executor_id: String,
    token: String,
    stop: watch::Sender<bool>,
}

impl Book {
    async fn run(mut self, mut rx: mpsc::Receiver<BookMsg>) {
        while let Some(msg) = rx.recv().await {
            match msg {
                BookMsg::Update { status, reply } => {
                    let _ = reply.send(self.update(status).await);
                }
                BookMsg::Message { data, reply } => {
                    let _ = reply.send(self.message(data).await);
                }
                BookMsg::Launched(tasks) => {
                    for task in tasks {
                        self.unreported.insert(task.task_id.clone(), task);
                    }
                }
                BookMsg::Acked { uuid } => {
                    tracing::info!(%uuid, "update acknowledged");
                    self.unacked.retain(|u| u.uuid != uuid);
                }
                BookMsg::Connected(client) => self.client = Some(client),
                BookMsg::Disconnected => self.client = None,
                BookMsg::Snapshot { reply } => {
                    let _ = reply.send((
                        self.unacked.clone(),
                        self.unreported.values().cloned().collect(),
                    ));
                }
                BookMsg::Stop => {
                    let _ = self.stop.send(true);
                }
            }
        }
    }

    async fn update(&mut self, mut status: TaskStatus) -> Result<(), DriverError> {
        status.framework_id = self.framework_id.clone();
        status.executor_id = self.executor_id.clone();
        status.source = StatusSource::SourceExecutor as i32;
        status.uuid = uuid::Uuid::new_v4().to_string();
        if status.timestamp_ms == 0 {
            status.timestamp_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        }
        self.unreported.remove(&status.task_id);
        self.unacked.push(status.clone());
        let Some(client) = self.client.as_mut() else {
            return Ok(());
        };
        let request = ExecutorUpdateRequest {
            framework_id: self.framework_id.clone(),
            executor_id: self.executor_id.clone(),
            status: Some(status.clone()),
        };
        match tokio::time::timeout(RPC_TIMEOUT, client.update(with_token(request, &self.token)))
            .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(s)) if !is_transient(&s) => {
                self.unacked.retain(|u| u.uuid != status.uuid);
                Err(DriverError::CallRefused(s))
            }
            // Kept: it goes with the next subscription.
            Ok(Err(_)) | Err(_) => Ok(()),
        }
    }

    async fn message(&mut self, data: Vec<u8>) -> Result<(), DriverError> {
        let Some(client) = self.client.as_mut() else {
            return Err(DriverError::CallRefused(tonic::Status::unavailable(
                "not connected to the agent",
            )));
        };
        let request = ExecutorMessageRequest {
            framework_id: self.framework_id.clone(),
            executor_id: self.executor_id.clone(),
            data,
        };
        match tokio::time::timeout(
            RPC_TIMEOUT,
            client.message(with_token(request, &self.token)),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(s)) => Err(DriverError::CallRefused(s)),
            Err(_) => Err(DriverError::CallRefused(tonic::Status::deadline_exceeded(
                "message timed out",
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_proto::v1::KillPolicy;

    struct Idle;

    impl Executor for Idle {
        async fn launch_task(&mut self, _: &ExecutorHandle, _: TaskInfo) {}
        async fn kill_task(&mut self, _: &ExecutorHandle, _: String, _: Option<KillPolicy>) {}
    }

    #[tokio::test]
    async fn gives_up_after_the_recovery_timeout_without_an_agent() {
        let config = DriverConfig {
            socket: std::env::temp_dir()
                .join(format!("agora-no-agent-{}.sock", std::process::id())),
            framework_id: "fw".into(),
            executor_id: "e".into(),
            token: "t".into(),
            recovery_timeout: Duration::from_millis(300),
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_millis(100),
        };
        let started = Instant::now();
        let result = tokio::time::timeout(Duration::from_secs(10), run_with(Idle, config)).await;
        let elapsed = started.elapsed();
        match result {
            Ok(Err(DriverError::AgentGone(t))) => assert_eq!(t, Duration::from_millis(300)),
            other => panic!("expected AgentGone, got {other:?}"),
        }
        assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    }
}
