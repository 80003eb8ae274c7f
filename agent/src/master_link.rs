//! The link to the master: registration, heartbeats, the command stream, reconnection.
//!
//! Owns the gRPC channel and the agent id the master assigned. It connects to the first
//! reachable master of the configured list, calls `Register` (with the id and the live
//! tasks when re-registering), expects `Registered` as the first stream message, then
//! forwards commands: acknowledgements to the status update manager, `Shutdown` to the
//! caller, everything else to the state actor. It heartbeats every interval the master
//! asked for; NOT_FOUND (the master forgot the agent), a closed stream or repeated
//! heartbeat failures end the session, and it reconnects with bounded exponential backoff.
//!
//! It must never change task state itself, and never block the command stream on a slow
//! heartbeat (both run concurrently in the same task).

use std::sync::Arc;
use std::time::Duration;

use agora_proto::auth::{AuthInterceptor, Credential};
use agora_proto::v1::agent_api_client::AgentApiClient;
use agora_proto::v1::agent_command::Command;
use agora_proto::v1::{
    AgentCommand, AgentHeartbeatRequest, AgentInfo, BatchResponse, RegisterAgentRequest,
    StatusUpdateBatch,
};
use futures::future::BoxFuture;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// A channel whose every call carries the agent's credential (if any).
pub(crate) type AuthChannel = InterceptedService<Channel, AuthInterceptor>;
use tonic::{Code, Streaming};

use crate::backoff::Backoff;
use crate::master_addr::MasterAddr;
use crate::state::AgentState;
use crate::status_update::{StatusSink, StatusUpdates};
use crate::task::TaskKey;

/// Heartbeat interval used when the master sends none (or nonsense).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);
/// Shortest heartbeat interval accepted from the master.
pub const MIN_HEARTBEAT: Duration = Duration::from_millis(100);
/// Longest heartbeat interval accepted from the master.
pub const MAX_HEARTBEAT: Duration = Duration::from_secs(60);
/// Consecutive failed heartbeats after which the session is considered lost.
pub const MAX_HEARTBEAT_FAILURES: u32 = 3;

/// How often usage goes to the master by default (Mesos' resource estimator polls at
/// the same pace).
pub const DEFAULT_USAGE_INTERVAL: Duration = Duration::from_secs(15);

/// Timing of the link.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// First reconnection delay.
    pub initial_backoff: Duration,
    /// Largest reconnection delay.
    pub max_backoff: Duration,
    /// TCP connect timeout per master.
    pub connect_timeout: Duration,
    /// Timeout of unary calls and of waiting for `Registered`.
    pub rpc_timeout: Duration,
    /// How often container usage is sent to the master; `None`: never.
    pub usage_interval: Option<Duration>,
    /// Principal and secret sent with every call, for masters that authenticate agents.
    pub credential: Option<Credential>,
    /// TLS for `https://` masters.
    pub tls: Option<ClientTls>,
}

/// How the agent verifies a TLS master and, for mutual TLS, proves itself (PEM contents).
#[derive(Clone)]
pub struct ClientTls {
    /// CA certificates the master's certificate must chain to.
    pub ca_pem: Vec<u8>,
    /// Client certificate and key, for masters that require one.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("client_certificate", &self.identity.is_some())
            .finish_non_exhaustive()
    }
}

/// The endpoint of one master: plain, or TLS verified against the configured CA.
fn master_endpoint(master: &MasterAddr, tls: Option<&ClientTls>) -> Result<Endpoint, String> {
    // h2 closes a connection after 1,024 streams it had to reset itself over the
    // connection's lifetime (each answer arriving after a call timed out is one), and an
    // agent's connection lives for days: the lifetime cap is lifted and more reset streams
    // are remembered (the scale harness hit this at 10,000 agents; docs/performance.md).
    let endpoint = Endpoint::from_shared(master.uri())
        .map_err(|e| format!("invalid address: {e}"))?
        .http2_max_concurrent_reset_streams(4096)
        .http2_max_local_error_reset_streams(None);
    match (master.is_tls(), tls) {
        (false, _) => Ok(endpoint),
        (true, None) => Err("an https:// master needs --tls-ca to verify it".into()),
        (true, Some(t)) => {
            let mut config =
                ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&t.ca_pem));
            if let Some((cert, key)) = &t.identity {
                config = config.identity(Identity::from_pem(cert, key));
            }
            endpoint
                .tls_config(config)
                .map_err(|e| format!("TLS set-up: {e}"))
        }
    }
}

impl Default for LinkConfig {
    fn default() -> LinkConfig {
        LinkConfig {
            initial_backoff: crate::backoff::INITIAL_DELAY,
            max_backoff: crate::backoff::MAX_DELAY,
            connect_timeout: Duration::from_secs(2),
            rpc_timeout: Duration::from_secs(5),
            usage_interval: Some(DEFAULT_USAGE_INTERVAL),
            credential: None,
            tls: None,
        }
    }
}

/// The heartbeat interval to use for what the master sent.
pub fn heartbeat_interval(seconds: f64) -> Duration {
    if !seconds.is_finite() || seconds <= 0.0 {
        return DEFAULT_HEARTBEAT;
    }
    Duration::try_from_secs_f64(seconds)
        .map_or(MAX_HEARTBEAT, |d| d.clamp(MIN_HEARTBEAT, MAX_HEARTBEAT))
}

/// Sends status updates through the current connection.
struct GrpcSink {
    client: AgentApiClient<AuthChannel>,
    timeout: Duration,
}

impl StatusSink for GrpcSink {
    fn send(
        &self,
        batch: StatusUpdateBatch,
    ) -> BoxFuture<'static, Result<BatchResponse, tonic::Status>> {
        let mut client = self.client.clone();
        let mut request = tonic::Request::new(batch);
        request.set_timeout(self.timeout);
        Box::pin(async move {
            client
                .update_statuses(request)
                .await
                .map(tonic::Response::into_inner)
        })
    }
}

/// Most "go to the leader" hops one registration round follows.
pub const MAX_LEADER_REDIRECTS: usize = 3;

/// How soon a registration round is tried again when a master said it is not the leader
/// and no master took the agent (an election is under way): about the masters' own poll.
pub const ELECTION_RETRY: Duration = Duration::from_millis(250);

/// Longest the agent keeps retrying at `ELECTION_RETRY` pace while masters answer but none
/// leads. Past it (etcd lost its quorum, or the masters cannot reach it) rounds back off
/// like unreachable masters, and the log says why.
pub const ELECTION_WAIT_MAX_MS: u64 = 30_000;

/// Why registering with one master failed, and the leader it named if it is not one.
struct RegisterFailure {
    message: String,
    leader: Option<MasterAddr>,
    /// The master answered "not the leader" (it is alive; a leader is or will be elected).
    not_leader: bool,
}

/// Why a whole round over the masters failed.
struct RoundFailure {
    errors: String,
    /// Some master answered "not the leader".
    electing: bool,
}

impl From<String> for RegisterFailure {
    fn from(message: String) -> Self {
        RegisterFailure {
            message,
            leader: None,
            not_leader: false,
        }
    }
}

impl From<&str> for RegisterFailure {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

/// Why a session ended.
#[derive(Debug)]
enum SessionEnd {
    /// The master sent `Shutdown`.
    Shutdown(String),
    /// The stream broke or heartbeats failed: reconnect.
    Lost(String),
    /// The master answered a heartbeat with NOT_FOUND: re-register.
    Unknown,
}

/// A registered session with one master.
struct Session {
    master: MasterAddr,
    client: AgentApiClient<AuthChannel>,
    stream: Streaming<AgentCommand>,
    agent_id: String,
    heartbeat: Duration,
}

/// Everything the link needs.
pub struct MasterLink {
    /// The id to re-register with (a recovered agent); `None`: register as a new agent.
    pub agent_id: Option<String>,
    /// Masters, tried in order.
    pub masters: Vec<MasterAddr>,
    /// The agent's description (its `id` is filled in by the link).
    pub info: AgentInfo,
    /// Timing.
    pub config: LinkConfig,
    /// The state actor (commands go there; the task list for re-registration comes from
    /// there).
    pub state: AgentState,
    /// The status update manager (acknowledgements go there).
    pub updates: StatusUpdates,
    /// Where a master's `Shutdown` reason is reported.
    pub shutdown: mpsc::Sender<String>,
    /// Where `CheckpointResources` is recorded.
    pub volumes: crate::volumes::Volumes,
    /// Where the current connection is published for [`Outbox`] users.
    pub outbox: OutboxPublisher,
}

/// Longest wait for a master connection before an executor's end goes unreported.
pub const EXITED_WAIT: Duration = Duration::from_secs(60);

/// The sending side of [`Outbox`]: only the link writes it.
pub type OutboxPublisher = watch::Sender<Option<OutboxLink>>;

/// The current registered connection.
#[derive(Clone, Debug)]
pub struct OutboxLink {
    client: AgentApiClient<AuthChannel>,
    agent_id: String,
    timeout: Duration,
}

/// Unary calls to the master made by other actors (executor messages and exits), over
/// the link's current connection. Best effort: while the agent is not registered, a call
/// fails at once with UNAVAILABLE; nothing is queued.
#[derive(Clone, Debug)]
pub struct Outbox {
    rx: watch::Receiver<Option<OutboxLink>>,
}

impl Outbox {
    /// A new outbox and the publisher the link keeps.
    pub fn new() -> (OutboxPublisher, Outbox) {
        let (tx, rx) = watch::channel(None);
        (tx, Outbox { rx })
    }

    fn link(&self) -> Result<OutboxLink, tonic::Status> {
        self.rx
            .borrow()
            .clone()
            .ok_or_else(|| tonic::Status::unavailable("the agent is not connected to a master"))
    }

    /// Relays an executor's message to its framework (through the master). The future
    /// does not borrow `self`.
    pub fn executor_message(
        &self,
        mut request: agora_proto::v1::ExecutorToFrameworkMessage,
    ) -> BoxFuture<'static, Result<(), tonic::Status>> {
        let link = self.link();
        Box::pin(async move {
            let mut link = link?;
            request.agent_id = link.agent_id.clone();
            match tokio::time::timeout(link.timeout, link.client.executor_message(request)).await {
                Ok(r) => r.map(|_| ()),
                Err(_) => Err(tonic::Status::deadline_exceeded(
                    "the master did not answer",
                )),
            }
        })
    }

    /// Tells the master an executor ended (it tells the framework with a FAILURE event).
    /// Waits up to [`EXITED_WAIT`] for a connection: an executor found ended at recovery
    /// is reported before the agent has re-registered.
    pub fn executor_exited(
        &self,
        mut request: agora_proto::v1::ExecutorExitedRequest,
    ) -> BoxFuture<'static, Result<(), tonic::Status>> {
        let mut rx = self.rx.clone();
        Box::pin(async move {
            let link = match tokio::time::timeout(EXITED_WAIT, rx.wait_for(Option::is_some)).await {
                Ok(Ok(link)) => link.clone(),
                _ => None,
            };
            let mut link = link.ok_or_else(|| {
                tonic::Status::unavailable("the agent is not connected to a master")
            })?;
            request.agent_id = link.agent_id.clone();
            match tokio::time::timeout(link.timeout, link.client.executor_exited(request)).await {
                Ok(r) => r.map(|_| ()),
                Err(_) => Err(tonic::Status::deadline_exceeded(
                    "the master did not answer",
                )),
            }
        })
    }
}

impl MasterLink {
    /// Runs until the master sends `Shutdown` (reported on `shutdown`), or forever.
    pub async fn run(self) {
        let mut agent_id: Option<String> = self.agent_id.clone();
        let mut backoff = Backoff::new(self.config.initial_backoff, self.config.max_backoff);
        // Since when every round met masters that answer but none that leads.
        let mut electing_since: Option<Instant> = None;
        loop {
            match self.register(agent_id.as_deref()).await {
                Ok(mut session) => {
                    electing_since = None;
                    let started = Instant::now();
                    tracing::info!(master = %session.master, agent_id = %session.agent_id, heartbeat_ms = session.heartbeat.as_millis(), "registered with master");
                    agent_id = Some(session.agent_id.clone());
                    self.state.registered(session.agent_id.clone()).await;
                    let sink = GrpcSink {
                        client: session.client.clone(),
                        timeout: self.config.rpc_timeout,
                    };
                    self.updates
                        .connected(Arc::new(sink), session.agent_id.clone())
                        .await;
                    self.outbox.send_replace(Some(OutboxLink {
                        client: session.client.clone(),
                        agent_id: session.agent_id.clone(),
                        timeout: self.config.rpc_timeout,
                    }));
                    let end = self.drive(&mut session).await;
                    self.outbox.send_replace(None);
                    self.updates.disconnected().await;
                    match end {
                        SessionEnd::Shutdown(reason) => {
                            let _ = self.shutdown.send(reason).await;
                            return;
                        }
                        SessionEnd::Lost(why) => {
                            tracing::warn!(master = %session.master, "lost the master: {why}");
                        }
                        SessionEnd::Unknown => {
                            tracing::warn!(master = %session.master, "master does not know this agent; re-registering");
                        }
                    }
                    // A session that lasted is a fresh start; one that died at once is
                    // not, so a master that keeps dropping us is not hammered.
                    if started.elapsed() >= self.config.max_backoff {
                        backoff.reset();
                    }
                }
                Err(RoundFailure {
                    errors,
                    electing: true,
                }) => {
                    let since = *electing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() < Duration::from_millis(ELECTION_WAIT_MAX_MS) {
                        // A master answered but none leads yet (a failover is under way):
                        // look again soon instead of backing off for seconds.
                        tracing::info!("no leader yet: {errors}");
                        tokio::time::sleep(ELECTION_RETRY).await;
                        continue;
                    }
                    tracing::error!(
                        "no master has led for {} ms (they answer, but none is elected: is \
                         their etcd reachable and in quorum?); backing off: {errors}",
                        since.elapsed().as_millis()
                    );
                }
                Err(RoundFailure { errors, .. }) => {
                    electing_since = None;
                    tracing::warn!("no master reachable: {errors}");
                }
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// Tries each master in order; the first that registers the agent wins. A master
    /// that is not the leader names the leader, which is tried next (at most
    /// `MAX_LEADER_REDIRECTS` times per round, so two masters naming each other cannot
    /// loop).
    async fn register(&self, agent_id: Option<&str>) -> Result<Session, RoundFailure> {
        let mut errors = Vec::new();
        let mut electing = false;
        let mut queue: std::collections::VecDeque<MasterAddr> =
            self.masters.iter().cloned().collect();
        let mut redirects = 0;
        while let Some(master) = queue.pop_front() {
            match self.register_with(&master, agent_id).await {
                Ok(session) => return Ok(session),
                Err(RegisterFailure {
                    message,
                    leader,
                    not_leader,
                }) => {
                    errors.push(format!("{master}: {message}"));
                    electing |= not_leader;
                    if let Some(leader) = leader
                        && leader != master
                        && redirects < MAX_LEADER_REDIRECTS
                    {
                        redirects += 1;
                        tracing::info!(from = %master, leader = %leader, "not the leader; going to the leader it named");
                        queue.push_front(leader);
                    }
                }
            }
        }
        Err(RoundFailure {
            errors: errors.join("; "),
            electing,
        })
    }

    async fn register_with(
        &self,
        master: &MasterAddr,
        agent_id: Option<&str>,
    ) -> Result<Session, RegisterFailure> {
        let endpoint = master_endpoint(master, self.config.tls.as_ref())?
            .connect_timeout(self.config.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(20))
            .keep_alive_while_idle(true);
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot connect: {}", error_chain(&e)))?;
        let interceptor = AuthInterceptor::new(self.config.credential.as_ref())
            .map_err(|e| format!("unusable credential: {e}"))?;
        let mut client = AgentApiClient::with_interceptor(channel, interceptor);

        let mut info = self.info.clone();
        let snapshot = match agent_id {
            Some(id) => {
                info.id = id.to_string();
                let mut snapshot = self.state.snapshot().await;
                // Asked after the state actor answered, so the terminal updates it produced
                // before answering are queued by now.
                add_ended_tasks(&mut snapshot, self.updates.pending().await);
                snapshot
            }
            None => Default::default(),
        };
        let request = RegisterAgentRequest {
            info: Some(info),
            tasks: snapshot.tasks,
            frameworks: snapshot.frameworks,
            version: env!("CARGO_PKG_VERSION").to_string(),
            secret: String::new(),
        };
        let timeout = self.config.rpc_timeout;
        let response = tokio::time::timeout(timeout, client.register(request))
            .await
            .map_err(|_| "Register timed out".to_string())?
            .map_err(|s| RegisterFailure {
                message: format!("Register failed: {} ({:?})", s.message(), s.code()),
                leader: MasterAddr::leader_named_by(&s, master),
                not_leader: s.message().starts_with("not the leader"),
            })?;
        let mut stream = response.into_inner();
        let first = tokio::time::timeout(timeout, stream.message())
            .await
            .map_err(|_| "no Registered message in time".to_string())?
            .map_err(|s| format!("stream failed: {} ({:?})", s.message(), s.code()))?;
        let registered = match first.and_then(|c| c.command) {
            Some(Command::Registered(r)) => r,
            Some(other) => {
                return Err(format!(
                    "first message was not Registered but {}",
                    command_name(&other)
                )
                .into());
            }
            None => return Err("stream ended before Registered".into()),
        };
        if registered.agent_id.is_empty() {
            return Err("Registered carried an empty agent id".into());
        }
        Ok(Session {
            master: master.clone(),
            client,
            stream,
            agent_id: registered.agent_id,
            heartbeat: heartbeat_interval(registered.heartbeat_interval_seconds),
        })
    }

    /// Reads commands and heartbeats until the session ends.
    async fn drive(&self, session: &mut Session) -> SessionEnd {
        let heartbeats = heartbeat_loop(
            session.client.clone(),
            session.agent_id.clone(),
            session.heartbeat,
            self.config.rpc_timeout,
        );
        let usage = async {
            match self.config.usage_interval {
                Some(interval) => {
                    crate::usage_report::report_loop(
                        session.client.clone(),
                        session.agent_id.clone(),
                        self.info.isolation.clone(),
                        self.state.clone(),
                        interval,
                        self.config.rpc_timeout,
                    )
                    .await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            end = self.read_commands(&mut session.stream) => end,
            end = heartbeats => end,
            () = usage => SessionEnd::Lost("the usage reporter stopped".into()),
        }
    }

    async fn read_commands(&self, stream: &mut Streaming<AgentCommand>) -> SessionEnd {
        loop {
            let command = match stream.message().await {
                Ok(Some(AgentCommand { command: Some(c) })) => c,
                Ok(Some(AgentCommand { command: None })) => {
                    tracing::warn!("empty command from master; ignored");
                    continue;
                }
                Ok(None) => return SessionEnd::Lost("the master closed the stream".into()),
                Err(s) => {
                    return SessionEnd::Lost(format!(
                        "stream failed: {} ({:?})",
                        s.message(),
                        s.code()
                    ));
                }
            };
            tracing::debug!("command from master: {}", command_name(&command));
            match command {
                Command::Registered(r) => {
                    tracing::warn!(agent_id = %r.agent_id, "unexpected second Registered; ignored");
                }
                Command::Acknowledge(ack) => {
                    let key = TaskKey::new(ack.framework_id, ack.task_id);
                    self.updates
                        .acknowledge(key.clone(), ack.uuid.clone())
                        .await;
                    // An executor's task: the executor hears of the acknowledgement too.
                    self.state.acknowledged(key, ack.uuid).await;
                }
                Command::Shutdown(s) => return SessionEnd::Shutdown(s.reason),
                Command::CheckpointResources(c) => {
                    // Awaited here, so a RunTask that follows finds its volumes on disk.
                    let volumes = self.volumes.clone();
                    match tokio::task::spawn_blocking(move || volumes.checkpoint(&c.resources))
                        .await
                    {
                        Ok(Ok(r)) => tracing::info!(resources = %r, "checkpointed resources"),
                        Ok(Err(e)) => tracing::error!(error = %e, "cannot checkpoint resources"),
                        Err(e) => tracing::error!(error = %e, "checkpointing resources panicked"),
                    }
                }
                other => self.state.command(other).await,
            }
        }
    }
}

async fn heartbeat_loop(
    mut client: AgentApiClient<AuthChannel>,
    agent_id: String,
    interval: Duration,
    rpc_timeout: Duration,
) -> SessionEnd {
    let mut failures = 0;
    let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let timeout = rpc_timeout.min(interval.max(Duration::from_secs(1)));
        let mut request = tonic::Request::new(AgentHeartbeatRequest {
            agent_id: agent_id.clone(),
        });
        request.set_timeout(timeout);
        let result = match tokio::time::timeout(timeout, client.heartbeat(request)).await {
            Ok(r) => r.map(|_| ()),
            Err(_) => Err(tonic::Status::deadline_exceeded("heartbeat timed out")),
        };
        match result {
            Ok(()) => failures = 0,
            Err(s) if s.code() == Code::NotFound => return SessionEnd::Unknown,
            Err(s) => {
                failures += 1;
                tracing::warn!(
                    failures,
                    "heartbeat failed: {} ({:?})",
                    s.message(),
                    s.code()
                );
                if failures >= MAX_HEARTBEAT_FAILURES {
                    return SessionEnd::Lost(format!("{failures} heartbeats in a row failed"));
                }
            }
        }
    }
}

/// Tasks that ended (e.g. while the agent was down) but whose terminal update still waits
/// for acknowledgement are listed with that terminal state, so the master does not take
/// them for lost; the update itself follows through the update manager.
fn add_ended_tasks(
    snapshot: &mut crate::state::Snapshot,
    pending: Vec<(TaskKey, Vec<agora_proto::v1::TaskStatus>)>,
) {
    for (key, statuses) in pending {
        let Some(last) = statuses.last() else {
            continue;
        };
        let terminal = agora_proto::TaskState::try_from(last.state).is_ok_and(|s| s.is_terminal());
        let listed = snapshot.tasks.iter().any(|t| {
            t.framework_id == key.framework_id
                && t.task.as_ref().is_some_and(|i| i.task_id == key.task_id)
        });
        if terminal && !listed {
            snapshot.tasks.push(agora_proto::v1::RunningTask {
                task: Some(agora_proto::v1::TaskInfo {
                    task_id: key.task_id,
                    ..Default::default()
                }),
                framework_id: key.framework_id,
                state: last.state,
            });
        }
    }
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Registered(_) => "Registered",
        Command::RunTask(_) => "RunTask",
        Command::RunTaskGroup(_) => "RunTaskGroup",
        Command::KillTask(_) => "KillTask",
        Command::ShutdownFramework(_) => "ShutdownFramework",
        Command::ShutdownExecutor(_) => "ShutdownExecutor",
        Command::Acknowledge(_) => "Acknowledge",
        Command::FrameworkMessage(_) => "FrameworkMessage",
        Command::ApplyOperation(_) => "ApplyOperation",
        Command::ReconcileTasks(_) => "ReconcileTasks",
        Command::Shutdown(_) => "Shutdown",
        Command::CheckpointResources(_) => "CheckpointResources",
    }
}

/// An error with its sources ("transport error: tcp connect error: Connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        // tonic repeats its sources in its messages; keep each part once.
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_interval_is_sane() {
        assert_eq!(heartbeat_interval(2.5), Duration::from_millis(2500));
        assert_eq!(heartbeat_interval(0.0), DEFAULT_HEARTBEAT);
        assert_eq!(heartbeat_interval(-3.0), DEFAULT_HEARTBEAT);
        assert_eq!(heartbeat_interval(f64::NAN), DEFAULT_HEARTBEAT);
        assert_eq!(heartbeat_interval(0.001), MIN_HEARTBEAT);
        assert_eq!(heartbeat_interval(1e9), MAX_HEARTBEAT);
        assert_eq!(heartbeat_interval(1e300), MAX_HEARTBEAT);
    }
}
