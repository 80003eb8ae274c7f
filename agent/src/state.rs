//! The agent state actor: the single owner of the map of tasks this agent runs.
//!
//! [`AgentState`] is the handle. The master link forwards the master's commands here;
//! per-task runner tasks report launches and exits here; everything that changes a task
//! goes through [`crate::task::transition`], and the resulting reports go to the status
//! update manager. A task leaves the map when its terminal update has been produced (the
//! update manager keeps delivering it).
//!
//! This actor must never await the network or a process: launches, waits and kills run
//! in their own tokio tasks and come back as messages, so a slow container or a slow
//! master never stalls the others.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agora_proto::v1::agent_command::{self, Command};
use agora_proto::v1::{FrameworkInfo, RunningTask, StatusReason, TaskInfo, TaskState};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::containerizer::{Container, Containerizer, LaunchError, LaunchSpec, Termination};
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
    KillAll {
        cause: KillCause,
        reply: oneshot::Sender<()>,
    },
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
    /// Starts the actor.
    pub fn spawn(
        containerizer: Arc<dyn Containerizer>,
        updates: StatusUpdates,
    ) -> (AgentState, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
        let actor = Actor {
            agent_id: String::new(),
            tasks: HashMap::new(),
            containerizer,
            updates,
            self_tx: tx.downgrade(),
            next_instance: 0,
            stopping: None,
            kill_all_waiters: Vec::new(),
        };
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

    /// The tasks not yet ended, for re-registration.
    pub async fn snapshot(&self) -> Snapshot {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Snapshot { reply }).await;
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
}

impl Actor {
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
            Msg::KillAll { cause, reply } => {
                self.stopping = Some(cause);
                self.kill_all_waiters.push(reply);
                let keys: Vec<TaskKey> = self.tasks.keys().cloned().collect();
                for key in keys {
                    let grace = self.tasks.get(&key).map_or(DEFAULT_GRACE, Entry::grace);
                    self.apply(&key, Event::KillRequested(KillRequest { cause, grace }))
                        .await;
                }
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
            Command::RunTask(run) => self.run_task(run).await,
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
            }
            Command::ReconcileTasks(reconcile) => self.reconcile(reconcile.task_ids).await,
            Command::RunTaskGroup(group) => {
                let framework_id = group.framework.map(|f| f.id).unwrap_or_default();
                for task in group.task_group.map(|g| g.tasks).unwrap_or_default() {
                    let key = TaskKey::new(framework_id.clone(), task.task_id);
                    self.report(
                        &key,
                        Report::new(
                            TaskState::Failed,
                            StatusReason::TaskInvalid,
                            "task groups are not supported by this agent yet",
                        ),
                    )
                    .await;
                }
            }
            Command::ShutdownExecutor(_) => {
                tracing::warn!("ShutdownExecutor ignored: this agent runs no custom executors");
            }
            Command::FrameworkMessage(_) => {
                tracing::warn!("FrameworkMessage dropped: this agent runs no custom executors");
            }
            Command::ApplyOperation(_) => {
                tracing::warn!("ApplyOperation ignored: not supported by this agent yet");
            }
            Command::Registered(_) | Command::Acknowledge(_) | Command::Shutdown(_) => {
                tracing::warn!("command routed to the state actor by mistake; ignored");
            }
        }
    }

    async fn run_task(&mut self, run: agent_command::RunTask) {
        let framework = run.framework.unwrap_or_default();
        let Some(task) = run.task else {
            tracing::warn!(framework = %framework.id, "RunTask without a task; ignored");
            return;
        };
        let key = TaskKey::new(framework.id.clone(), task.task_id.clone());
        if self.stopping.is_some() {
            let report = Report::new(
                TaskState::Failed,
                StatusReason::ContainerLaunchFailed,
                "agent is shutting down",
            );
            self.report(&key, report).await;
            return;
        }
        if self.tasks.contains_key(&key) {
            let report = Report::new(
                TaskState::Failed,
                StatusReason::TaskInvalid,
                "task id already running",
            );
            self.report(&key, report).await;
            return;
        }
        let spec = match LaunchSpec::from_task(&framework, &task, &self.agent_id) {
            Ok(spec) => spec,
            Err(e) => {
                let report =
                    Report::new(TaskState::Failed, StatusReason::TaskInvalid, e.to_string());
                self.report(&key, report).await;
                return;
            }
        };
        let Some(tx) = self.self_tx.upgrade() else {
            return;
        };
        self.next_instance += 1;
        let instance = self.next_instance;
        self.tasks.insert(
            key.clone(),
            Entry {
                instance,
                framework,
                task,
                phase: Phase::new(),
                container: None,
            },
        );
        self.report(&key, Report::starting()).await;
        let launch = self.containerizer.launch(spec);
        tokio::spawn(async move {
            let result = launch.await;
            let container = result.as_ref().ok().cloned();
            let launched = Msg::Launched {
                key: key.clone(),
                instance,
                result,
            };
            if tx.send(launched).await.is_err() {
                return;
            }
            if let Some(container) = container {
                let termination = container.wait().await;
                let _ = tx
                    .send(Msg::Exited {
                        key,
                        instance,
                        termination,
                    })
                    .await;
            }
        });
    }

    async fn launched(
        &mut self,
        key: TaskKey,
        instance: u64,
        result: Result<Arc<dyn Container>, LaunchError>,
    ) {
        if !self.is_current(&key, instance) {
            // Cannot happen (a task leaves the map only after its launch settled), but a
            // container nobody tracks must not live on.
            if let Ok(container) = result {
                tracing::error!(task = %key, "launch result for an unknown task; killing it");
                tokio::spawn(container.kill(Duration::ZERO));
            }
            return;
        }
        let event = match result {
            Ok(container) => {
                tracing::debug!(task = %key, pid = container.pid(), "task launched");
                if let Some(entry) = self.tasks.get_mut(&key) {
                    entry.container = Some(container);
                }
                Event::Launched
            }
            Err(e) => Event::LaunchFailed {
                error: e.to_string(),
            },
        };
        self.apply(&key, event).await;
    }

    async fn kill_task(&mut self, kill: agent_command::KillTask) {
        let key = TaskKey::new(kill.framework_id, kill.task_id);
        let Some(entry) = self.tasks.get(&key) else {
            tracing::info!(task = %key, "kill for an unknown task; answering LOST");
            let report = Report::new(
                TaskState::Lost,
                StatusReason::TaskUnknown,
                "task unknown to the agent",
            );
            self.updates
                .enqueue_unless_pending(new_status(&key, &self.agent_id, report))
                .await;
            return;
        };
        let grace = kill
            .kill_policy
            .and_then(|p| grace_from_seconds(p.grace_period_seconds))
            .unwrap_or_else(|| entry.grace());
        let cause = KillCause::Framework;
        self.apply(&key, Event::KillRequested(KillRequest { cause, grace }))
            .await;
    }

    async fn reconcile(&self, task_ids: Vec<String>) {
        let mut answers = Vec::new();
        let mut unknown = Vec::new();
        if task_ids.is_empty() {
            answers.extend(self.tasks.iter());
        } else {
            for id in &task_ids {
                let before = answers.len();
                answers.extend(self.tasks.iter().filter(|(k, _)| &k.task_id == id));
                if answers.len() == before {
                    unknown.push(id.clone());
                }
            }
        }
        let statuses: Vec<_> = answers
            .into_iter()
            .map(|(key, entry)| {
                let state = entry.phase.reported_state();
                let report = Report::new(state, StatusReason::Reconciliation, "");
                new_status(key, &self.agent_id, report)
            })
            .collect();
        for status in statuses {
            self.updates.send_once(status).await;
        }
        let scope = if task_ids.is_empty() {
            ReconcileScope::AllEnded
        } else {
            ReconcileScope::Ids(unknown)
        };
        if !matches!(&scope, ReconcileScope::Ids(ids) if ids.is_empty()) {
            self.updates.reconcile(scope).await;
        }
    }

    /// Runs one event through the transition function and carries out its effects.
    async fn apply(&mut self, key: &TaskKey, event: Event) {
        let Some(entry) = self.tasks.get_mut(key) else {
            tracing::error!(task = %key, "event for an unknown task: {event:?}");
            return;
        };
        let (next, effects) = match transition(&entry.phase, event) {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(task = %key, "{e}");
                return;
            }
        };
        entry.phase = next;
        let container = entry.container.clone();
        let terminal = entry.phase.is_terminal();
        for effect in effects {
            match effect {
                Effect::Report(report) => self.report(key, report).await,
                Effect::Kill { grace } => match &container {
                    Some(container) => {
                        tracing::info!(task = %key, grace_ms = grace.as_millis(), "killing task");
                        // The runner task's wait reports the exit.
                        tokio::spawn(container.kill(grace));
                    }
                    None => tracing::error!(task = %key, "kill requested but no container"),
                },
            }
        }
        if terminal {
            self.tasks.remove(key);
            self.notify_if_empty();
        }
    }

    fn notify_if_empty(&mut self) {
        if self.tasks.is_empty() {
            for waiter in self.kill_all_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}
