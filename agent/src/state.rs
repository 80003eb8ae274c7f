//! The agent state actor: the single owner of the map of tasks this agent runs.
//!
//! [`AgentState`] is the handle. The master link forwards the master's commands here;
//! per-task runner tasks report launches and exits here; everything that changes a task
//! goes through [`crate::task::transition`], and the resulting reports go to the status
//! update manager. A task leaves the map when its terminal update has been produced (the
//! update manager keeps delivering it).
//!
//! The actor is split by what it runs: `tasks.rs` holds its methods for command tasks
//! (launch, health checks, kills, reconciliation, the phase transition), `executors.rs`
//! those for custom executors and their tasks; this file holds the handle, the messages,
//! the actor's state and its dispatch.
//!
//! This actor must never await the network or a process: launches, waits and kills run
//! in their own tokio tasks and come back as messages, so a slow container or a slow
//! master never stalls the others.

mod executors;
mod tasks;
#[cfg(test)]
mod tests;

pub use executors::{
    EVENT_CAPACITY, EventRx, ExecutorSupport, MasterOutbox, NoMaster, RecoveredExecutor,
};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agora_proto::v1::agent_command::{self, Command};
use agora_proto::v1::{
    ExecutorMessageRequest, ExecutorSubscribeRequest, ExecutorUpdateRequest, FrameworkInfo,
    RunningTask, StatusReason, TaskInfo, TaskState,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::checkpoint::{AgentMeta, Checkpoint, TaskRecord};
use crate::containerizer::{Container, Containerizer, LaunchError, LaunchSpec, Termination};
use crate::executor::ExecutorKey;
use crate::health::{self, HealthEvent, HealthSpec};
use crate::status_update::{ReconcileScope, StatusUpdates, new_status};
use crate::task::{
    DEFAULT_GRACE, Effect, Event, KillCause, KillRequest, Phase, Report, TaskKey,
    grace_from_seconds, transition,
};

/// Capacity of the actor's inbox.
pub const INBOX_CAPACITY: usize = 1024;

/// What the agent tells the master about its tasks when (re-)registering.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Every task not yet ended, with its latest reported state.
    pub tasks: Vec<RunningTask>,
    /// The frameworks of those tasks.
    pub frameworks: Vec<FrameworkInfo>,
}

/// What the agent runs now, for its Mesos-shaped `/state`: its id, the live tasks of the
/// built-in executor (a [`Snapshot`]) and every custom executor with its tasks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Description {
    /// Empty until the master registered the agent.
    pub agent_id: String,
    /// Every task not yet ended and the frameworks of tasks and executors.
    pub snapshot: Snapshot,
    /// The custom executors, in (framework, executor id) order.
    pub executors: Vec<DescribedExecutor>,
}

/// One custom executor in a [`Description`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DescribedExecutor {
    pub framework_id: String,
    pub info: agora_proto::v1::ExecutorInfo,
    /// Its tasks with their latest states, ended ones included until they are forgotten.
    pub tasks: Vec<(TaskInfo, TaskState)>,
}

enum Msg {
    Registered {
        agent_id: String,
    },
    Command(Box<Command>),
    Launched {
        key: TaskKey,
        instance: u64,
        result: Result<Arc<dyn Container>, LaunchError>,
    },
    Exited {
        key: TaskKey,
        instance: u64,
        termination: Termination,
    },
    Snapshot {
        reply: oneshot::Sender<Snapshot>,
    },
    Describe {
        reply: oneshot::Sender<Description>,
    },
    KillAll {
        cause: KillCause,
        reply: oneshot::Sender<()>,
    },
    Containers {
        reply: oneshot::Sender<Vec<(TaskKey, Arc<dyn Container>)>>,
    },
    Health {
        key: TaskKey,
        instance: u64,
        event: HealthEvent,
    },
    Acknowledged {
        key: TaskKey,
        uuid: String,
    },
    /// The token of an executor, for the Mesos executor endpoint when the agent lets
    /// Mesos executors call without theirs (`--mesos-executors-without-token`).
    ExecToken {
        key: ExecutorKey,
        reply: oneshot::Sender<Option<String>>,
    },
    ExecSubscribe {
        request: ExecutorSubscribeRequest,
        token: String,
        reply: oneshot::Sender<Result<EventRx, tonic::Status>>,
    },
    ExecUpdate {
        request: ExecutorUpdateRequest,
        token: String,
        reply: oneshot::Sender<Result<(), tonic::Status>>,
    },
    ExecMessage {
        request: ExecutorMessageRequest,
        token: String,
        reply: oneshot::Sender<Result<(), tonic::Status>>,
    },
    ExecLaunched {
        key: ExecutorKey,
        instance: u64,
        result: Result<Arc<dyn Container>, LaunchError>,
    },
    /// The URIs of tasks for a running executor were fetched into its sandbox (or not).
    ExecFetched(Box<executors::Fetched>),
    ExecExited {
        key: ExecutorKey,
        instance: u64,
        termination: Termination,
    },
    ExecTimer {
        key: ExecutorKey,
        instance: u64,
        generation: u64,
    },
    ExecStreamClosed {
        key: ExecutorKey,
        instance: u64,
        connection: u64,
    },
    /// A health result of a task run by an executor (instance: the executor's).
    ExecHealth {
        key: TaskKey,
        instance: u64,
        event: HealthEvent,
    },
}

/// A task a previous run of the agent launched, re-attached to its container.
pub struct RecoveredTask {
    /// The task's key.
    pub key: TaskKey,
    /// Its framework.
    pub framework: FrameworkInfo,
    /// The task.
    pub task: TaskInfo,
    /// Its container (possibly already ended: its wait then resolves at once).
    pub container: Arc<dyn Container>,
}

/// What the state actor persists, when the agent checkpoints.
#[derive(Clone, Debug)]
pub struct Persistence {
    /// Where.
    pub checkpoint: Checkpoint,
    /// The agent meta to write (with the current agent id) on every registration.
    pub meta: AgentMeta,
}

/// Handle of the agent state actor. The actor stops when every handle and every task's
/// runner is gone.
#[derive(Clone, Debug)]
pub struct AgentState {
    tx: mpsc::Sender<Msg>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("agent state message")
    }
}

impl AgentState {
    /// Starts the actor with no task and no checkpoint.
    pub fn spawn(
        containerizer: Arc<dyn Containerizer>,
        updates: StatusUpdates,
    ) -> (AgentState, JoinHandle<()>) {
        AgentState::spawn_with(
            containerizer,
            updates,
            None,
            String::new(),
            Vec::new(),
            ExecutorSupport::disabled(),
        )
    }

    /// Starts the actor with the tasks recovered from a checkpoint (reported RUNNING; each
    /// one's end is reported as usual), persisting launches and registrations to
    /// `persistence`.
    pub fn spawn_with(
        containerizer: Arc<dyn Containerizer>,
        updates: StatusUpdates,
        persistence: Option<Persistence>,
        agent_id: String,
        recovered: Vec<RecoveredTask>,
        executors: ExecutorSupport,
    ) -> (AgentState, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
        let ExecutorSupport {
            config,
            outbox,
            recovered: recovered_executors,
        } = executors;
        let mut actor = Actor {
            executors: HashMap::new(),
            task_executors: HashMap::new(),
            exec: executors::ExecSettings { config, outbox },
            agent_id,
            tasks: HashMap::new(),
            containerizer,
            updates,
            self_tx: tx.downgrade(),
            next_instance: 0,
            stopping: None,
            kill_all_waiters: Vec::new(),
            persistence,
        };
        for r in recovered {
            actor.next_instance += 1;
            let instance = actor.next_instance;
            tracing::info!(task = %r.key, pid = r.container.pid(), "re-attached to task");
            actor.tasks.insert(
                r.key.clone(),
                Entry {
                    instance,
                    framework: r.framework,
                    task: r.task.clone(),
                    phase: Phase::Running,
                    container: Some(Arc::clone(&r.container)),
                    health: None,
                    checker: None,
                    healthy: None,
                },
            );
            if let Some(h) = r.task.health_check.as_ref() {
                match HealthSpec::from_proto(h) {
                    Ok(spec) => {
                        if let Some(e) = actor.tasks.get_mut(&r.key) {
                            e.health = Some(spec);
                        }
                        actor.start_checker(&r.key);
                    }
                    Err(e) => tracing::warn!(task = %r.key, "health check dropped: {e}"),
                }
            }
            let tx = tx.clone();
            tokio::spawn(async move {
                let termination = r.container.wait().await;
                let _ = tx
                    .send(Msg::Exited {
                        key: r.key,
                        instance,
                        termination,
                    })
                    .await;
            });
        }
        actor.recover_executors(recovered_executors);
        (AgentState { tx }, tokio::spawn(actor.run(rx)))
    }

    async fn send(&self, msg: Msg) {
        if self.tx.send(msg).await.is_err() {
            tracing::warn!("agent state actor has stopped; message dropped");
        }
    }

    /// The master (re-)registered the agent under `agent_id`.
    pub async fn registered(&self, agent_id: String) {
        self.send(Msg::Registered { agent_id }).await;
    }

    /// A command from the master (everything but `Registered`, `Acknowledge`, `Shutdown`).
    pub async fn command(&self, command: Command) {
        self.send(Msg::Command(Box::new(command))).await;
    }

    /// The framework acknowledged update `uuid` of a task (forwarded to its executor, if
    /// it has one).
    pub async fn acknowledged(&self, key: TaskKey, uuid: String) {
        self.send(Msg::Acknowledged { key, uuid }).await;
    }

    /// An executor subscribes (with its token): the stream of its events, or why it is
    /// refused.
    pub async fn executor_subscribe(
        &self,
        request: ExecutorSubscribeRequest,
        token: String,
    ) -> Result<EventRx, tonic::Status> {
        self.executor_call(|reply| Msg::ExecSubscribe {
            request,
            token,
            reply,
        })
        .await
    }

    /// A status update from an executor.
    pub async fn executor_update(
        &self,
        request: ExecutorUpdateRequest,
        token: String,
    ) -> Result<(), tonic::Status> {
        self.executor_call(|reply| Msg::ExecUpdate {
            request,
            token,
            reply,
        })
        .await
    }

    /// A message from an executor to its framework.
    pub async fn executor_message(
        &self,
        request: ExecutorMessageRequest,
        token: String,
    ) -> Result<(), tonic::Status> {
        self.executor_call(|reply| Msg::ExecMessage {
            request,
            token,
            reply,
        })
        .await
    }

    /// Sends an executor call to the actor and waits for its answer.
    /// The token the agent gave executor `key`, if it has one (see `Msg::ExecToken`).
    pub async fn executor_token(&self, key: ExecutorKey) -> Option<String> {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::ExecToken { key, reply }).await;
        rx.await.ok().flatten()
    }

    async fn executor_call<T>(
        &self,
        msg: impl FnOnce(oneshot::Sender<Result<T, tonic::Status>>) -> Msg,
    ) -> Result<T, tonic::Status> {
        let (reply, rx) = oneshot::channel();
        self.send(msg(reply)).await;
        rx.await
            .unwrap_or_else(|_| Err(tonic::Status::unavailable("the agent is stopping")))
    }

    /// The tasks not yet ended, for re-registration.
    pub async fn snapshot(&self) -> Snapshot {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Snapshot { reply }).await;
        rx.await.unwrap_or_default()
    }

    /// The agent's id, tasks and executors (the Mesos `/state` view).
    pub async fn describe(&self) -> Description {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Describe { reply }).await;
        rx.await.unwrap_or_default()
    }

    /// The containers of the tasks that run now, sorted by task.
    pub async fn containers(&self) -> Vec<(TaskKey, Arc<dyn Container>)> {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Containers { reply }).await;
        rx.await.unwrap_or_default()
    }

    /// Kills every task (SIGTERM, its grace period, SIGKILL), refuses new ones, and
    /// resolves once no task is left.
    pub async fn kill_all(&self, cause: KillCause) {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::KillAll { cause, reply }).await;
        let _ = rx.await;
    }
}

struct Entry {
    /// Distinguishes incarnations of a task id launched again after it ended.
    instance: u64,
    framework: FrameworkInfo,
    task: TaskInfo,
    phase: Phase,
    container: Option<Arc<dyn Container>>,
    /// The task's health check, validated.
    health: Option<HealthSpec>,
    /// The running checker; aborted when the entry goes.
    checker: Option<JoinHandle<()>>,
    /// The latest health result reported.
    healthy: Option<bool>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        if let Some(checker) = self.checker.take() {
            checker.abort();
        }
    }
}

impl Entry {
    /// The task's own kill policy grace period, or the default.
    fn grace(&self) -> Duration {
        self.task
            .kill_policy
            .and_then(|p| grace_from_seconds(p.grace_period_seconds))
            .unwrap_or(DEFAULT_GRACE)
    }
}

struct Actor {
    agent_id: String,
    tasks: HashMap<TaskKey, Entry>,
    containerizer: Arc<dyn Containerizer>,
    updates: StatusUpdates,
    self_tx: mpsc::WeakSender<Msg>,
    next_instance: u64,
    /// Set once the agent is shutting down: new tasks are refused.
    stopping: Option<KillCause>,
    kill_all_waiters: Vec<oneshot::Sender<()>>,
    persistence: Option<Persistence>,
    /// Custom executors and their tasks.
    executors: HashMap<ExecutorKey, executors::ExecEntry>,
    /// Which executor runs each of the executors' tasks (kept in step with `executors`).
    task_executors: HashMap<TaskKey, ExecutorKey>,
    exec: executors::ExecSettings,
}

impl Actor {
    fn persist_agent(&self) {
        if let Some(p) = &self.persistence {
            let meta = AgentMeta {
                agent_id: self.agent_id.clone(),
                ..p.meta.clone()
            };
            if let Err(e) = p.checkpoint.write_agent(&meta) {
                tracing::error!("cannot checkpoint the agent id: {e}");
            }
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        while let Some(msg) = rx.recv().await {
            self.handle(msg).await;
        }
        tracing::debug!("agent state actor stopped");
    }

    async fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Registered { agent_id } => {
                if !self.agent_id.is_empty() && self.agent_id != agent_id {
                    tracing::warn!(old = %self.agent_id, new = %agent_id, "master assigned a new agent id");
                }
                self.agent_id = agent_id;
                self.persist_agent();
            }
            Msg::Command(command) => self.command(*command).await,
            Msg::Launched {
                key,
                instance,
                result,
            } => self.launched(key, instance, result).await,
            Msg::Exited {
                key,
                instance,
                termination,
            } => {
                if self.is_current(&key, instance) {
                    self.apply(&key, Event::Exited(termination)).await;
                }
            }
            Msg::Snapshot { reply } => {
                let _ = reply.send(self.snapshot());
            }
            Msg::Describe { reply } => {
                let mut snapshot = self.snapshot();
                let executors = self.executor_descriptions();
                for (framework, _) in self.executor_frameworks() {
                    if !snapshot.frameworks.iter().any(|f| f.id == framework.id) {
                        snapshot.frameworks.push(framework.clone());
                    }
                }
                let _ = reply.send(Description {
                    agent_id: self.agent_id.clone(),
                    snapshot,
                    executors,
                });
            }
            Msg::Health {
                key,
                instance,
                event,
            } => self.health(key, instance, event).await,
            Msg::Acknowledged { key, uuid } => self.exec_acknowledged(key, uuid),
            Msg::ExecToken { key, reply } => {
                let _ = reply.send(self.exec_token(&key));
            }
            Msg::ExecSubscribe {
                request,
                token,
                reply,
            } => {
                let _ = reply.send(self.exec_subscribe(request, &token).await);
            }
            Msg::ExecUpdate {
                request,
                token,
                reply,
            } => {
                let _ = reply.send(self.exec_update(request, &token).await);
            }
            Msg::ExecMessage {
                request,
                token,
                reply,
            } => self.exec_message(request, &token, reply),
            Msg::ExecLaunched {
                key,
                instance,
                result,
            } => self.exec_launched(key, instance, result).await,
            Msg::ExecFetched(fetched) => self.exec_fetched(*fetched).await,
            Msg::ExecExited {
                key,
                instance,
                termination,
            } => self.exec_exited(key, instance, termination).await,
            Msg::ExecTimer {
                key,
                instance,
                generation,
            } => self.exec_timer(key, instance, generation).await,
            Msg::ExecStreamClosed {
                key,
                instance,
                connection,
            } => self.exec_stream_closed(key, instance, connection).await,
            Msg::ExecHealth {
                key,
                instance,
                event,
            } => self.exec_health(key, instance, event).await,
            Msg::Containers { reply } => {
                let mut all: Vec<(TaskKey, Arc<dyn Container>)> = self
                    .tasks
                    .iter()
                    .filter_map(|(k, e)| e.container.clone().map(|c| (k.clone(), c)))
                    .collect();
                all.extend(self.executor_containers());
                all.sort_by(|a, b| a.0.cmp(&b.0));
                let _ = reply.send(all);
            }
            Msg::KillAll { cause, reply } => {
                self.stopping = Some(cause);
                self.kill_all_waiters.push(reply);
                let keys: Vec<TaskKey> = self.tasks.keys().cloned().collect();
                for key in keys {
                    let grace = self.tasks.get(&key).map_or(DEFAULT_GRACE, Entry::grace);
                    self.apply(&key, Event::KillRequested(KillRequest { cause, grace }))
                        .await;
                }
                self.exec_shutdown_all(None).await;
                self.notify_if_empty();
            }
        }
    }

    fn is_current(&self, key: &TaskKey, instance: u64) -> bool {
        self.tasks.get(key).is_some_and(|e| e.instance == instance)
    }

    fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot::default();
        let mut entries: Vec<(&TaskKey, &Entry)> = self.tasks.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        for (key, entry) in entries {
            snapshot.tasks.push(RunningTask {
                task: Some(entry.task.clone()),
                framework_id: key.framework_id.clone(),
                state: entry.phase.reported_state() as i32,
            });
            if !snapshot
                .frameworks
                .iter()
                .any(|f| f.id == entry.framework.id)
            {
                snapshot.frameworks.push(entry.framework.clone());
            }
        }
        for (key, framework, task, state) in self.executor_tasks() {
            snapshot.tasks.push(RunningTask {
                task: Some(task.clone()),
                framework_id: key.framework_id.clone(),
                state: state as i32,
            });
            if !snapshot.frameworks.iter().any(|f| f.id == framework.id) {
                snapshot.frameworks.push(framework.clone());
            }
        }
        snapshot
    }

    async fn report(&self, key: &TaskKey, report: Report) {
        tracing::info!(task = %key, state = ?report.state, reason = ?report.reason, "{}", report.message);
        self.updates
            .enqueue(new_status(key, &self.agent_id, report))
            .await;
    }

    async fn command(&mut self, command: Command) {
        match command {
            Command::RunTask(run) => {
                let executor = run.task.as_ref().and_then(|t| t.executor.clone());
                match (executor, run.task) {
                    (Some(executor), Some(task)) => {
                        let framework = run.framework.unwrap_or_default();
                        self.launch_on_executor(framework, executor, vec![task], false)
                            .await;
                    }
                    (_, task) => {
                        self.run_task(agent_command::RunTask {
                            framework: run.framework,
                            task,
                        })
                        .await;
                    }
                }
            }
            Command::KillTask(kill) => self.kill_task(kill).await,
            Command::ShutdownFramework(shutdown) => {
                let keys: Vec<TaskKey> = self
                    .tasks
                    .keys()
                    .filter(|k| k.framework_id == shutdown.framework_id)
                    .cloned()
                    .collect();
                tracing::info!(framework = %shutdown.framework_id, tasks = keys.len(), "shutting down framework");
                for key in keys {
                    let grace = self.tasks.get(&key).map_or(DEFAULT_GRACE, Entry::grace);
                    let cause = KillCause::FrameworkShutdown;
                    self.apply(&key, Event::KillRequested(KillRequest { cause, grace }))
                        .await;
                }
                self.exec_shutdown_all(Some(&shutdown.framework_id)).await;
            }
            Command::ReconcileTasks(reconcile) => self.reconcile(reconcile.task_ids).await,
            Command::RunTaskGroup(group) => {
                let framework = group.framework.unwrap_or_default();
                let tasks = group.task_group.map(|g| g.tasks).unwrap_or_default();
                match group.executor {
                    Some(executor) => {
                        self.launch_on_executor(framework, executor, tasks, true)
                            .await;
                    }
                    None => {
                        for task in tasks {
                            let key = TaskKey::new(framework.id.clone(), task.task_id);
                            let report = Report::new(
                                TaskState::Failed,
                                StatusReason::TaskInvalid,
                                "task group without an executor",
                            );
                            self.report(&key, report).await;
                        }
                    }
                }
            }
            Command::ShutdownExecutor(shutdown) => {
                let key = ExecutorKey::new(shutdown.framework_id, shutdown.executor_id);
                self.exec_shutdown(&key).await;
            }
            Command::FrameworkMessage(m) => {
                self.exec_framework_message(&m.framework_id, &m.executor_id, m.data);
            }
            Command::ApplyOperation(_) => {
                tracing::warn!("ApplyOperation ignored: not supported by this agent yet");
            }
            Command::Registered(_)
            | Command::Acknowledge(_)
            | Command::Shutdown(_)
            | Command::CheckpointResources(_) => {
                tracing::warn!("command routed to the state actor by mistake; ignored");
            }
        }
    }

    fn notify_if_empty(&mut self) {
        if self.tasks.is_empty() && self.executors.is_empty() {
            for waiter in self.kill_all_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}
