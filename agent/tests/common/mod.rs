//! A scripted master for protocol tests: a real tonic `AgentApi` server on a loopback port
//! that records what the agent sends and lets the test push commands down the stream.
//! It implements only the protocol's surface, not a scheduler.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agora_proto::v1::agent_api_server::{AgentApi, AgentApiServer};
use agora_proto::v1::agent_command::{self, Command};
use agora_proto::v1::{
    AgentCommand, AgentHeartbeatRequest, CommandInfo, Empty, ExecutorExitedRequest,
    ExecutorToFrameworkMessage, FrameworkInfo, KillPolicy, RegisterAgentRequest,
    StatusUpdateRequest, TaskInfo, TaskState, TaskStatus, UpdateOversubscribedRequest, UsageReport,
    command_info,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status};

pub const AGENT_ID: &str = "agent-1";

/// A unique directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("agora-agent-it-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

type CommandTx = mpsc::Sender<Result<AgentCommand, Status>>;

#[derive(Default)]
struct Shared {
    stream: Mutex<Option<CommandTx>>,
    heartbeats: AtomicUsize,
    forget_agent: AtomicBool,
    reject_updates: AtomicBool,
    usage: Mutex<Vec<UsageReport>>,
}

struct Service {
    shared: Arc<Shared>,
    registrations: mpsc::UnboundedSender<RegisterAgentRequest>,
    updates: mpsc::UnboundedSender<StatusUpdateRequest>,
    heartbeat_seconds: f64,
}

#[tonic::async_trait]
impl AgentApi for Service {
    type RegisterStream = ReceiverStream<Result<AgentCommand, Status>>;

    async fn register(
        &self,
        request: Request<RegisterAgentRequest>,
    ) -> Result<Response<Self::RegisterStream>, Status> {
        let request = request.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let registered = AgentCommand {
            command: Some(Command::Registered(agent_command::Registered {
                agent_id: AGENT_ID.into(),
                heartbeat_interval_seconds: self.heartbeat_seconds,
                master_id: "test-master".into(),
            })),
        };
        tx.send(Ok(registered))
            .await
            .map_err(|_| Status::internal("stream closed"))?;
        self.shared.forget_agent.store(false, Ordering::SeqCst);
        if let Ok(mut stream) = self.shared.stream.lock() {
            *stream = Some(tx);
        }
        let _ = self.registrations.send(request);
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn heartbeat(
        &self,
        request: Request<AgentHeartbeatRequest>,
    ) -> Result<Response<Empty>, Status> {
        self.shared.heartbeats.fetch_add(1, Ordering::SeqCst);
        if self.shared.forget_agent.load(Ordering::SeqCst) {
            return Err(Status::not_found(format!(
                "unknown agent {}",
                request.into_inner().agent_id
            )));
        }
        Ok(Response::new(Empty {}))
    }

    async fn update_status(
        &self,
        request: Request<StatusUpdateRequest>,
    ) -> Result<Response<Empty>, Status> {
        if self.shared.reject_updates.load(Ordering::SeqCst) {
            return Err(Status::unavailable("not now"));
        }
        let _ = self.updates.send(request.into_inner());
        Ok(Response::new(Empty {}))
    }

    async fn update_statuses(
        &self,
        request: Request<agora_proto::v1::StatusUpdateBatch>,
    ) -> Result<Response<agora_proto::v1::BatchResponse>, Status> {
        if self.shared.reject_updates.load(Ordering::SeqCst) {
            return Err(Status::unavailable("not now"));
        }
        for update in request.into_inner().updates {
            let _ = self.updates.send(update);
        }
        Ok(Response::new(agora_proto::v1::BatchResponse::default()))
    }

    async fn executor_message(
        &self,
        _: Request<ExecutorToFrameworkMessage>,
    ) -> Result<Response<Empty>, Status> {
        Ok(Response::new(Empty {}))
    }

    async fn executor_exited(
        &self,
        _: Request<ExecutorExitedRequest>,
    ) -> Result<Response<Empty>, Status> {
        Ok(Response::new(Empty {}))
    }

    async fn update_usage(&self, request: Request<UsageReport>) -> Result<Response<Empty>, Status> {
        if let Ok(mut reports) = self.shared.usage.lock() {
            reports.push(request.into_inner());
        }
        Ok(Response::new(Empty {}))
    }

    async fn update_oversubscribed(
        &self,
        _: Request<UpdateOversubscribedRequest>,
    ) -> Result<Response<Empty>, Status> {
        Ok(Response::new(Empty {}))
    }
}

/// The test side of the scripted master.
pub struct TestMaster {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    registrations: mpsc::UnboundedReceiver<RegisterAgentRequest>,
    updates: mpsc::UnboundedReceiver<StatusUpdateRequest>,
    server: tokio::task::JoinHandle<()>,
}

impl TestMaster {
    pub async fn start() -> TestMaster {
        TestMaster::start_on(0).await
    }

    pub async fn start_on(port: u16) -> TestMaster {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local_addr: {e}"));
        let shared = Arc::new(Shared::default());
        let (reg_tx, registrations) = mpsc::unbounded_channel();
        let (upd_tx, updates) = mpsc::unbounded_channel();
        let service = Service {
            shared: Arc::clone(&shared),
            registrations: reg_tx,
            updates: upd_tx,
            heartbeat_seconds: 0.2,
        };
        let server = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(AgentApiServer::new(service))
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
        });
        TestMaster {
            addr,
            shared,
            registrations,
            updates,
            server,
        }
    }

    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The next Register call.
    pub async fn next_registration(&mut self) -> RegisterAgentRequest {
        match tokio::time::timeout(Duration::from_secs(10), self.registrations.recv()).await {
            Ok(Some(r)) => r,
            _ => panic!("no registration within 10 s"),
        }
    }

    /// The next UpdateStatus call.
    pub async fn next_update(&mut self) -> TaskStatus {
        match tokio::time::timeout(Duration::from_secs(10), self.updates.recv()).await {
            Ok(Some(StatusUpdateRequest {
                status: Some(s),
                agent_id,
                ..
            })) => {
                assert_eq!(agent_id, AGENT_ID);
                s
            }
            Ok(Some(other)) => panic!("update without status: {other:?}"),
            _ => panic!("no status update within 10 s"),
        }
    }

    /// The next update whose state differs from the ones re-sent so far, skipping
    /// re-sends of already seen uuids.
    pub async fn next_new_update(&mut self, seen: &mut Vec<String>) -> TaskStatus {
        loop {
            let s = self.next_update().await;
            if !seen.contains(&s.uuid) {
                seen.push(s.uuid.clone());
                return s;
            }
        }
    }

    /// Expects the next new update to be `state` for `task_id`, acknowledges it and
    /// returns it.
    pub async fn expect_and_ack(
        &mut self,
        seen: &mut Vec<String>,
        task_id: &str,
        state: TaskState,
    ) -> TaskStatus {
        let s = self.next_new_update(seen).await;
        assert_eq!(s.task_id, task_id, "{s:?}");
        assert_eq!(
            TaskState::try_from(s.state).ok(),
            Some(state),
            "expected {state:?}, got {s:?}"
        );
        self.ack(&s).await;
        s
    }

    pub async fn send(&self, command: Command) {
        let tx = self.shared.stream.lock().ok().and_then(|s| s.clone());
        let Some(tx) = tx else {
            panic!("no agent stream open");
        };
        if tx
            .send(Ok(AgentCommand {
                command: Some(command),
            }))
            .await
            .is_err()
        {
            panic!("agent stream closed");
        }
    }

    pub async fn ack(&self, status: &TaskStatus) {
        self.send(Command::Acknowledge(agent_command::Acknowledge {
            framework_id: status.framework_id.clone(),
            task_id: status.task_id.clone(),
            uuid: status.uuid.clone(),
        }))
        .await;
    }

    pub async fn run_task(&self, framework_id: &str, task: TaskInfo) {
        self.send(Command::RunTask(agent_command::RunTask {
            framework: Some(FrameworkInfo {
                id: framework_id.into(),
                name: "test".into(),
                ..Default::default()
            }),
            task: Some(task),
        }))
        .await;
    }

    pub async fn kill_task(&self, framework_id: &str, task_id: &str, grace_seconds: f64) {
        self.send(Command::KillTask(agent_command::KillTask {
            framework_id: framework_id.into(),
            task_id: task_id.into(),
            kill_policy: Some(KillPolicy {
                grace_period_seconds: grace_seconds,
            }),
        }))
        .await;
    }

    /// Ends the current command stream (the agent sees a closed stream).
    pub fn drop_stream(&self) {
        if let Ok(mut s) = self.shared.stream.lock() {
            s.take();
        }
    }

    /// From now on heartbeats answer NOT_FOUND until the agent registers again.
    pub fn forget_agent(&self) {
        self.shared.forget_agent.store(true, Ordering::SeqCst);
    }

    pub fn reject_updates(&self, reject: bool) {
        self.shared.reject_updates.store(reject, Ordering::SeqCst);
    }

    /// Usage reports received so far.
    pub fn usage_reports(&self) -> Vec<UsageReport> {
        self.shared
            .usage
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    pub fn heartbeats(&self) -> usize {
        self.shared.heartbeats.load(Ordering::SeqCst)
    }
}

impl Drop for TestMaster {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub fn shell_task(task_id: &str, script: &str) -> TaskInfo {
    TaskInfo {
        name: task_id.into(),
        task_id: task_id.into(),
        command: Some(CommandInfo {
            run: Some(command_info::Run::Shell(script.into())),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn state_of(status: &TaskStatus) -> TaskState {
    TaskState::try_from(status.state).unwrap_or(TaskState::Unspecified)
}
