//! Custom executors inside the state actor: launching their containers, their
//! subscriptions, the updates they send, kills, shutdowns, and their end.
//!
//! The state actor stays the single owner: this module only adds the actor's executor
//! methods and the executor bookkeeping ([`ExecEntry`]). Every phase change goes through
//! [`crate::executor::lifecycle::transition`]. An executor's tasks live in its entry (not
//! in the actor's task map): their states come from the executor's updates, which are
//! validated here and handed to the status update manager exactly like the agent's own.
//!
//! It must never await a process or the network: launches, waits, kills, timers and RPCs
//! to the master run in their own tokio tasks and come back as messages.

use std::collections::{BTreeMap, HashSet};

use agora_proto::v1::executor_event::{self, Event as XEvent};
use agora_proto::v1::{
    AgentInfo, ExecutorEvent, ExecutorExitedRequest, ExecutorInfo, ExecutorMessageRequest,
    ExecutorSubscribeRequest, ExecutorToFrameworkMessage, KillPolicy, StatusSource, TaskGroupInfo,
};
use agora_resources::Resources;
use tonic::Status;

use super::*;
use crate::checkpoint::{ExecutorRecord, ExecutorTaskRecord};
use crate::executor::lifecycle::{ExecEffect, ExecEvent, ExecPhase, transition as exec_transition};
use crate::executor::{
    ENV_EXECUTOR_ID, ENV_RECOVERY_TIMEOUT, ENV_SOCKET, ENV_TOKEN, ExecutorConfig, ExecutorKey,
};
use crate::sandbox::{IdKind, validate_id};
use crate::status_update::now_ms;

/// Events buffered per subscribed executor; an executor that lets this fill is
/// disconnected (it re-subscribes and gets its launches again).
pub const EVENT_CAPACITY: usize = 1024;

/// The stream of events of one subscription.
pub type EventTx = mpsc::Sender<Result<ExecutorEvent, Status>>;
/// What the server returns to a subscribing executor.
pub type EventRx = mpsc::Receiver<Result<ExecutorEvent, Status>>;

/// The state actor's calls to the master (executor messages and exits): a port the
/// master link implements, so the core never imports its transport. Both calls are best
/// effort and the returned futures do not borrow `self`.
pub trait MasterOutbox: Send + Sync + 'static {
    /// Relays an executor's message to its framework.
    fn executor_message(
        &self,
        request: ExecutorToFrameworkMessage,
    ) -> futures::future::BoxFuture<'static, Result<(), Status>>;

    /// Tells the master an executor ended.
    fn executor_exited(
        &self,
        request: ExecutorExitedRequest,
    ) -> futures::future::BoxFuture<'static, Result<(), Status>>;
}

/// No master to talk to: every call fails with UNAVAILABLE.
pub struct NoMaster;

impl MasterOutbox for NoMaster {
    fn executor_message(
        &self,
        _: ExecutorToFrameworkMessage,
    ) -> futures::future::BoxFuture<'static, Result<(), Status>> {
        Box::pin(async { Err(Status::unavailable("no master")) })
    }

    fn executor_exited(
        &self,
        _: ExecutorExitedRequest,
    ) -> futures::future::BoxFuture<'static, Result<(), Status>> {
        Box::pin(async { Err(Status::unavailable("no master")) })
    }
}

/// How the state actor runs custom executors.
pub struct ExecutorSupport {
    /// Settings.
    pub config: ExecutorConfig,
    /// Calls to the master (executor messages and exits).
    pub outbox: Arc<dyn MasterOutbox>,
    /// Executors re-attached after an agent restart.
    pub recovered: Vec<RecoveredExecutor>,
}

impl ExecutorSupport {
    /// No executor API: tasks naming an executor are refused.
    pub fn disabled() -> ExecutorSupport {
        ExecutorSupport {
            config: ExecutorConfig::default(),
            outbox: Arc::new(NoMaster),
            recovered: Vec::new(),
        }
    }
}

/// Tasks for a running executor whose URIs were fetched into its sandbox (or not).
pub(super) struct Fetched {
    framework: FrameworkInfo,
    info: ExecutorInfo,
    tasks: Vec<TaskInfo>,
    group: bool,
    result: Result<(), LaunchError>,
}

/// An executor a previous run of the agent launched, re-attached to its container.
pub struct RecoveredExecutor {
    /// The executor.
    pub key: ExecutorKey,
    /// Its checkpoint (framework, executor, tasks).
    pub record: ExecutorRecord,
    /// Its container (possibly already ended).
    pub container: Arc<dyn Container>,
}

pub(super) struct ExecSettings {
    pub(super) config: ExecutorConfig,
    pub(super) outbox: Arc<dyn MasterOutbox>,
}

pub(super) struct ExecTask {
    info: TaskInfo,
    /// 0: launched alone; otherwise the task group it came with.
    group: u64,
    /// Latest state reported (STAGING until the executor reports).
    state: TaskState,
    kill_requested: bool,
    /// The uuid of its terminal update: once the framework acknowledges it the task is
    /// forgotten (its id may be used again). Not checkpointed: after a restart such
    /// tasks stay until their executor ends.
    terminal_uuid: Option<String>,
    /// The agent's health checker of the task (from its first RUNNING to its end), run
    /// inside the executor's container; aborted when dropped.
    checker: Option<AbortOnDrop>,
    /// The task was killed because its health check failed: its KILLED becomes FAILED,
    /// HEALTH_CHECK_FAILED (as for command tasks).
    killed_unhealthy: bool,
}

/// A tokio task aborted when its handle is dropped.
pub(super) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One open event stream. Dropping it ends the stream for the executor (its watcher,
/// which holds a sender to notice the executor going away, is aborted with it), so a
/// replaced subscription does not hang open.
pub(super) struct Subscription {
    connection: u64,
    tx: EventTx,
    watcher: JoinHandle<()>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

pub(super) struct ExecEntry {
    instance: u64,
    framework: FrameworkInfo,
    info: ExecutorInfo,
    phase: ExecPhase,
    container: Option<Arc<dyn Container>>,
    /// The open subscription.
    stream: Option<Subscription>,
    /// Task ids the (re-)subscribing executor said it already has.
    known: HashSet<String>,
    /// Re-attached from a previous agent run's checkpoint (not launched by this run).
    recovered: bool,
    /// Subscriptions accepted on this agent run. A subscription is a re-subscription when
    /// the executor was recovered or subscribed before; what it carries may be empty (all
    /// its updates acknowledged), so that is never the test.
    subscriptions: u32,
    tasks: BTreeMap<String, ExecTask>,
    /// Bumped whenever a subscription timer starts; older timers are stale.
    timer_generation: u64,
    /// Why the agent is killing the executor (names its tasks' failure).
    kill_reason: Option<String>,
    /// Why its tasks fail when it could not start (default: `EXECUTOR_TERMINATED`).
    launch_failure: Option<StatusReason>,
    termination: Option<Termination>,
    /// The secret the executor got in `AGORA_EXECUTOR_TOKEN`; every call must carry it.
    token: String,
}

impl ExecEntry {
    fn record(&self) -> ExecutorRecord {
        let mut record = ExecutorRecord {
            framework: Some(self.framework.clone()),
            executor: Some(self.info.clone()),
            tasks: self
                .tasks
                .values()
                .map(|t| ExecutorTaskRecord {
                    task: Some(t.info.clone()),
                    group: t.group,
                    state: t.state as i32,
                    kill_requested: t.kill_requested,
                })
                .collect(),
            token: self.token.clone(),
            ..Default::default()
        };
        if let Some(reference) = self.container.as_ref().and_then(|c| c.reference()) {
            record.container_id = reference.container_id;
            record.pid = reference.pid;
            record.start_time = reference.start_time;
            record.sandbox = reference.sandbox.to_string_lossy().into_owned();
        }
        record
    }

    fn all_terminal(&self) -> bool {
        self.tasks.values().all(|t| t.state.is_terminal())
    }

    /// Sends an event on the open subscription; a full or closed stream is dropped (the
    /// executor re-subscribes and gets its undelivered launches again).
    fn send(&mut self, event: XEvent) -> bool {
        let Some(Subscription { tx, .. }) = &self.stream else {
            return false;
        };
        match tx.try_send(Ok(ExecutorEvent { event: Some(event) })) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(executor = %self.info.executor_id, "cannot send an executor event ({e}); closing its stream");
                self.stream = None;
                false
            }
        }
    }
}

impl Actor {
    /// The token of executor `key` (`Msg::ExecToken`).
    pub(super) fn exec_token(&self, key: &ExecutorKey) -> Option<String> {
        self.executors.get(key).map(|e| e.token.clone())
    }
}

/// The executor named by a call, if the call proves it is that executor.
fn authenticated<'a>(
    executors: &'a HashMap<ExecutorKey, ExecEntry>,
    key: &ExecutorKey,
    token: &str,
) -> Result<&'a ExecEntry, Status> {
    let entry = executors.get(key).ok_or_else(|| not_found(key))?;
    // No early exit on the first differing byte.
    let same = entry.token.len() == token.len()
        && entry
            .token
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(entry)
    } else {
        Err(Status::unauthenticated(format!(
            "wrong or missing token for executor '{}' (send AGORA_EXECUTOR_TOKEN as {})",
            key.executor_id,
            crate::executor::TOKEN_HEADER
        )))
    }
}

fn not_found(key: &ExecutorKey) -> Status {
    Status::not_found(format!(
        "executor '{}' of framework '{}' is not known to this agent",
        key.executor_id, key.framework_id
    ))
}

fn launch_events(tasks: Vec<(u64, TaskInfo)>) -> Vec<XEvent> {
    let mut events = Vec::new();
    let mut groups: BTreeMap<u64, Vec<TaskInfo>> = BTreeMap::new();
    for (group, task) in tasks {
        if group == 0 {
            events.push(XEvent::Launch(executor_event::Launch { task: Some(task) }));
        } else {
            groups.entry(group).or_default().push(task);
        }
    }
    for (_, tasks) in groups {
        events.push(XEvent::LaunchGroup(executor_event::LaunchGroup {
            task_group: Some(TaskGroupInfo { tasks }),
        }));
    }
    events
}

impl Actor {
    /// Sets the executor's container limits to its own resources plus those of its tasks
    /// that have not ended (done off the actor: it writes cgroup files).
    fn resize(&self, key: &ExecutorKey) {
        let Some(entry) = self.executors.get(key) else {
            return;
        };
        let Some(container) = entry.container.clone() else {
            return;
        };
        let mut total = Resources::from_proto(&entry.info.resources).unwrap_or_default();
        for task in entry.tasks.values().filter(|t| !t.state.is_terminal()) {
            if let Ok(r) = Resources::from_proto(&task.info.resources)
                && let Ok(sum) = total.checked_add(&r)
            {
                total = sum;
            }
        }
        let key = key.clone();
        tokio::task::spawn_blocking(move || match container.update_resources(&total) {
            Ok(()) => {
                tracing::debug!(executor = %key, resources = %total, "executor container resized")
            }
            Err(e) => {
                tracing::warn!(executor = %key, resources = %total, "cannot resize the executor's container: {e}")
            }
        });
    }

    pub(super) fn recover_executors(&mut self, recovered: Vec<RecoveredExecutor>) {
        for r in recovered {
            let (Some(framework), Some(info)) =
                (r.record.framework.clone(), r.record.executor.clone())
            else {
                continue;
            };
            self.next_instance += 1;
            let instance = self.next_instance;
            let mut tasks = BTreeMap::new();
            for t in &r.record.tasks {
                let Some(task) = t.task.clone() else { continue };
                tasks.insert(
                    task.task_id.clone(),
                    ExecTask {
                        info: task,
                        group: t.group,
                        state: TaskState::try_from(t.state).unwrap_or(TaskState::Staging),
                        kill_requested: t.kill_requested,
                        terminal_uuid: None,
                        checker: None,
                        killed_unhealthy: false,
                    },
                );
            }
            for id in tasks.keys() {
                self.task_executors.insert(
                    TaskKey::new(r.key.framework_id.clone(), id.clone()),
                    r.key.clone(),
                );
            }
            tracing::info!(executor = %r.key, pid = r.container.pid(), tasks = tasks.len(), "re-attached to executor; waiting for it to re-subscribe");
            self.executors.insert(
                r.key.clone(),
                ExecEntry {
                    instance,
                    framework,
                    info,
                    phase: ExecPhase::Registering,
                    container: Some(Arc::clone(&r.container)),
                    stream: None,
                    known: HashSet::new(),
                    recovered: true,
                    subscriptions: 0,
                    tasks,
                    timer_generation: 0,
                    kill_reason: None,
                    launch_failure: None,
                    termination: None,
                    token: r.record.token.clone(),
                },
            );
            self.start_subscribe_timer(&r.key);
            self.watch_executor(r.key, instance, r.container);
        }
    }

    fn watch_executor(&self, key: ExecutorKey, instance: u64, container: Arc<dyn Container>) {
        let Some(tx) = self.self_tx.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            let termination = container.wait().await;
            let _ = tx
                .send(Msg::ExecExited {
                    key,
                    instance,
                    termination,
                })
                .await;
        });
    }

    fn persist_executor(&self, key: &ExecutorKey) {
        let (Some(p), Some(entry)) = (&self.persistence, self.executors.get(key)) else {
            return;
        };
        if let Err(e) = p.checkpoint.write_executor(key, &entry.record()) {
            tracing::error!(executor = %key, "cannot checkpoint the executor: {e}");
        }
    }

    fn forget_executor(&self, key: &ExecutorKey) {
        if let Some(p) = &self.persistence
            && let Err(e) = p.checkpoint.remove_executor(key)
        {
            tracing::error!(executor = %key, "cannot remove the executor's checkpoint: {e}");
        }
    }

    /// The executor running `key`'s task, if any (an index lookup: acknowledgements and
    /// kills never scan the executors).
    pub(super) fn executor_of(&self, key: &TaskKey) -> Option<ExecutorKey> {
        self.task_executors.get(key).cloned()
    }

    /// Indexes tasks just given to executor `ek`.
    fn index_tasks<'a>(&mut self, ek: &ExecutorKey, task_ids: impl Iterator<Item = &'a String>) {
        for id in task_ids {
            self.task_executors.insert(
                TaskKey::new(ek.framework_id.clone(), id.clone()),
                ek.clone(),
            );
        }
    }

    /// Executor tasks not yet terminal, for re-registration and reconciliation.
    pub(super) fn executor_tasks(&self) -> Vec<(TaskKey, &FrameworkInfo, &TaskInfo, TaskState)> {
        let mut out = Vec::new();
        for (key, entry) in &self.executors {
            for task in entry.tasks.values() {
                if !task.state.is_terminal() {
                    out.push((
                        TaskKey::new(key.framework_id.clone(), task.info.task_id.clone()),
                        &entry.framework,
                        &task.info,
                        task.state,
                    ));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Every custom executor with its tasks, for [`AgentState::describe`].
    pub(super) fn executor_descriptions(&self) -> Vec<super::DescribedExecutor> {
        let mut out: Vec<super::DescribedExecutor> = self
            .executors
            .iter()
            .map(|(key, entry)| super::DescribedExecutor {
                framework_id: key.framework_id.clone(),
                info: entry.info.clone(),
                tasks: entry
                    .tasks
                    .values()
                    .map(|t| (t.info.clone(), t.state))
                    .collect(),
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.framework_id, &a.info.executor_id).cmp(&(&b.framework_id, &b.info.executor_id))
        });
        out
    }

    /// The framework of every custom executor (executors without live tasks included).
    pub(super) fn executor_frameworks(&self) -> Vec<(&FrameworkInfo, &ExecutorKey)> {
        self.executors
            .iter()
            .map(|(key, entry)| (&entry.framework, key))
            .collect()
    }

    pub(super) fn executor_containers(&self) -> Vec<(TaskKey, Arc<dyn Container>)> {
        self.executors
            .iter()
            .filter_map(|(k, e)| {
                e.container.clone().map(|c| {
                    let name = crate::containerizer::executor_sandbox_name(&k.executor_id);
                    (TaskKey::new(k.framework_id.clone(), name), c)
                })
            })
            .collect()
    }

    async fn fail_new_tasks(
        &self,
        framework_id: &str,
        tasks: &[TaskInfo],
        state: TaskState,
        reason: StatusReason,
        message: &str,
    ) {
        for task in tasks {
            let key = TaskKey::new(framework_id.to_string(), task.task_id.clone());
            self.report(&key, Report::new(state, reason, message)).await;
        }
    }

    /// RunTask with an executor (`group` false) or RunTaskGroup (`group` true).
    pub(super) async fn launch_on_executor(
        &mut self,
        framework: FrameworkInfo,
        info: ExecutorInfo,
        tasks: Vec<TaskInfo>,
        group: bool,
    ) {
        let fid = framework.id.clone();
        let invalid = |m: String| (TaskState::Failed, StatusReason::TaskInvalid, m);
        let refusal: Option<(TaskState, StatusReason, String)> = if tasks.is_empty() {
            tracing::warn!(framework = %fid, "executor launch without tasks; ignored");
            return;
        } else if self.exec.config.socket.is_none() {
            Some(invalid(
                "custom executors are not enabled on this agent".into(),
            ))
        } else if self.stopping.is_some() {
            Some((
                TaskState::Failed,
                StatusReason::ContainerLaunchFailed,
                "agent is shutting down".into(),
            ))
        } else {
            self.check_executor_launch(&framework, &info, &tasks, group)
                .err()
                .map(invalid)
        };
        if let Some((state, reason, message)) = refusal {
            tracing::warn!(framework = %fid, executor = %info.executor_id, "executor launch refused: {message}");
            self.fail_new_tasks(&fid, &tasks, state, reason, &message)
                .await;
            return;
        }
        let key = ExecutorKey::new(fid.clone(), info.executor_id.clone());
        let uris: Vec<crate::fetcher::FetchUri> = tasks
            .iter()
            .filter_map(|t| t.command.as_ref())
            .flat_map(|c| &c.uris)
            .filter_map(|u| crate::fetcher::FetchUri::from_proto(u).ok())
            .collect();
        let running_sandbox = self
            .executors
            .get(&key)
            .and_then(|e| e.container.as_ref())
            .map(|c| c.sandbox().to_path_buf());
        if !uris.is_empty() && running_sandbox.is_none() && self.executors.contains_key(&key) {
            // Still starting: its sandbox is being prepared with its first tasks' URIs.
            tracing::warn!(framework = %fid, executor = %info.executor_id, "the executor is still starting: the URIs of the tasks handed to it now are not fetched (it gets them in its TaskInfo)");
        }
        if let (false, Some(sandbox), Some(tx)) =
            (uris.is_empty(), running_sandbox, self.self_tx.upgrade())
        {
            // A running executor: its tasks' URIs are fetched into its sandbox first, then
            // the tasks are handed over (exec_fetched).
            let fetch = self.containerizer.fetch_into(sandbox, uris);
            tokio::spawn(async move {
                let result = fetch.await;
                let _ = tx
                    .send(Msg::ExecFetched(Box::new(Fetched {
                        framework,
                        info,
                        tasks,
                        group,
                        result,
                    })))
                    .await;
            });
            return;
        }
        self.hand_over(framework, info, tasks, group).await;
    }

    /// The URIs of tasks for a running executor have been fetched (or not): hand the
    /// tasks over, or fail them.
    pub(super) async fn exec_fetched(&mut self, fetched: Fetched) {
        let Fetched {
            framework,
            info,
            tasks,
            group,
            result,
        } = fetched;
        if let Err(e) = result {
            let message = format!("executor '{}': {e}", info.executor_id);
            tracing::warn!(framework = %framework.id, "{message}");
            self.fail_new_tasks(
                &framework.id,
                &tasks,
                TaskState::Failed,
                StatusReason::FetchFailed,
                &message,
            )
            .await;
            return;
        }
        // Checked again: the executor may have ended, or the ids been taken, meanwhile.
        if let Err(message) = self.check_executor_launch(&framework, &info, &tasks, group) {
            self.fail_new_tasks(
                &framework.id,
                &tasks,
                TaskState::Failed,
                StatusReason::TaskInvalid,
                &message,
            )
            .await;
            return;
        }
        self.hand_over(framework, info, tasks, group).await;
    }

    /// Hands validated tasks to their executor: a running one gets them at once, else the
    /// executor is launched with them.
    async fn hand_over(
        &mut self,
        framework: FrameworkInfo,
        info: ExecutorInfo,
        tasks: Vec<TaskInfo>,
        group: bool,
    ) {
        let fid = framework.id.clone();
        let key = ExecutorKey::new(fid.clone(), info.executor_id.clone());
        let group_id = if group {
            self.next_instance += 1;
            self.next_instance
        } else {
            0
        };
        let new_tasks = || {
            tasks.iter().map(|t| {
                let mut info = t.clone();
                info.executor = None;
                (
                    t.task_id.clone(),
                    ExecTask {
                        info,
                        group: group_id,
                        state: TaskState::Staging,
                        kill_requested: false,
                        terminal_uuid: None,
                        checker: None,
                        killed_unhealthy: false,
                    },
                )
            })
        };
        if let Some(entry) = self.executors.get_mut(&key) {
            if matches!(entry.phase, ExecPhase::ShuttingDown | ExecPhase::Terminated) {
                let message = format!("executor '{}' is shutting down", info.executor_id);
                self.fail_new_tasks(
                    &fid,
                    &tasks,
                    TaskState::Failed,
                    StatusReason::ExecutorTerminated,
                    &message,
                )
                .await;
                return;
            }
            entry.tasks.extend(new_tasks());
            self.index_tasks(&key, tasks.iter().map(|t| &t.task_id));
            let Some(entry) = self.executors.get_mut(&key) else {
                return;
            };
            if entry.phase == ExecPhase::Subscribed {
                let events = launch_events(tasks.iter().map(|t| (group_id, t.clone())).collect());
                for event in events {
                    entry.send(event);
                }
            }
            tracing::info!(executor = %key, tasks = tasks.len(), "tasks handed to a running executor");
            self.persist_executor(&key);
            self.resize(&key);
            return;
        }
        // A new executor: its container gets the executor's and the tasks' resources.
        let mut resources = Resources::from_proto(&info.resources).unwrap_or_default();
        for t in &tasks {
            if let Ok(r) = Resources::from_proto(&t.resources)
                && let Ok(sum) = resources.checked_add(&r)
            {
                resources = sum;
            }
        }
        let config = &self.exec.config;
        let Some(socket) = config.socket.clone() else {
            return;
        };
        let token = uuid::Uuid::new_v4().simple().to_string();
        let mut env = vec![
            (
                ENV_SOCKET.to_string(),
                socket.to_string_lossy().into_owned(),
            ),
            (ENV_TOKEN.to_string(), token.clone()),
            (ENV_EXECUTOR_ID.to_string(), info.executor_id.clone()),
            (
                ENV_RECOVERY_TIMEOUT.to_string(),
                config.recovery_timeout.as_secs_f64().to_string(),
            ),
        ];
        if let Some(endpoint) = &config.mesos_endpoint {
            env.extend(crate::mesos_executor::environment(
                endpoint,
                &fid,
                &info.executor_id,
                &self.agent_id,
                &token,
                framework.checkpoint,
                config.recovery_timeout,
                config.shutdown_grace,
            ));
        }
        let mut spec = match LaunchSpec::for_executor(
            &framework,
            &info,
            &config.default_executor,
            resources,
            &self.agent_id,
            env,
        ) {
            Ok(spec) => spec,
            Err(e) => {
                let message = format!("executor '{}': {e}", info.executor_id);
                self.fail_new_tasks(
                    &fid,
                    &tasks,
                    TaskState::Failed,
                    StatusReason::TaskInvalid,
                    &message,
                )
                .await;
                return;
            }
        };
        // The tasks' URIs are fetched into the executor's sandbox, as the executor's user,
        // before it starts (validated by check_executor_launch).
        for t in &tasks {
            if let Some(command) = &t.command {
                spec.uris.extend(
                    command
                        .uris
                        .iter()
                        .filter_map(|u| crate::fetcher::FetchUri::from_proto(u).ok()),
                );
            }
        }
        let Some(tx) = self.self_tx.upgrade() else {
            return;
        };
        self.next_instance += 1;
        let instance = self.next_instance;
        tracing::info!(executor = %key, tasks = tasks.len(), group, default = info.command.is_none(), "launching executor");
        self.executors.insert(
            key.clone(),
            ExecEntry {
                instance,
                framework,
                info,
                phase: ExecPhase::Launching,
                container: None,
                stream: None,
                known: HashSet::new(),
                recovered: false,
                subscriptions: 0,
                tasks: new_tasks().collect(),
                timer_generation: 0,
                kill_reason: None,
                launch_failure: None,
                termination: None,
                token,
            },
        );
        self.index_tasks(&key, tasks.iter().map(|t| &t.task_id));
        self.persist_executor(&key);
        let launch = self.containerizer.launch(spec);
        tokio::spawn(async move {
            let result = launch.await;
            let _ = tx
                .send(Msg::ExecLaunched {
                    key,
                    instance,
                    result,
                })
                .await;
        });
    }

    /// Everything about an executor launch that can be refused before anything starts.
    fn check_executor_launch(
        &self,
        framework: &FrameworkInfo,
        info: &ExecutorInfo,
        tasks: &[TaskInfo],
        group: bool,
    ) -> Result<(), String> {
        validate_id(IdKind::Framework, &framework.id).map_err(|e| e.to_string())?;
        validate_id(IdKind::Executor, &info.executor_id).map_err(|e| e.to_string())?;
        if !info.framework_id.is_empty() && info.framework_id != framework.id {
            return Err(format!(
                "executor '{}' names framework '{}' but is launched for '{}'",
                info.executor_id, info.framework_id, framework.id
            ));
        }
        Resources::from_proto(&info.resources)
            .map_err(|e| format!("executor '{}' resources: {e}", info.executor_id))?;
        let key = ExecutorKey::new(framework.id.clone(), info.executor_id.clone());
        let running = self.executors.get(&key);
        if running.is_none() && info.command.is_none() && !group {
            return Err(format!(
                "executor '{}' has no command (the default executor runs task groups only)",
                info.executor_id
            ));
        }
        let mut seen = HashSet::new();
        for t in tasks {
            validate_id(IdKind::Task, &t.task_id).map_err(|e| e.to_string())?;
            if !seen.insert(t.task_id.as_str()) {
                return Err(format!("task id '{}' appears twice", t.task_id));
            }
            let tkey = TaskKey::new(framework.id.clone(), t.task_id.clone());
            if self.tasks.contains_key(&tkey) || self.executor_of(&tkey).is_some() {
                return Err(format!("task id '{}' already running", t.task_id));
            }
            if let Some(own) = &t.executor
                && own.executor_id != info.executor_id
            {
                return Err(format!(
                    "task '{}' names executor '{}' but is launched on '{}'",
                    t.task_id, own.executor_id, info.executor_id
                ));
            }
            Resources::from_proto(&t.resources)
                .map_err(|e| format!("task '{}' resources: {e}", t.task_id))?;
            if let Some(h) = &t.health_check {
                HealthSpec::from_proto(h)
                    .map_err(|e| format!("task '{}' health check: {e}", t.task_id))?;
            }
            for uri in t.command.iter().flat_map(|c| &c.uris) {
                crate::fetcher::FetchUri::from_proto(uri)
                    .map_err(|e| format!("task '{}': {e}", t.task_id))?;
            }
            let default = running.map_or(info.command.is_none(), |e| e.info.command.is_none());
            if default && t.command.is_none() {
                return Err(format!(
                    "task '{}' has no command for the default executor to run",
                    t.task_id
                ));
            }
        }
        Ok(())
    }

    pub(super) async fn exec_launched(
        &mut self,
        key: ExecutorKey,
        instance: u64,
        result: Result<Arc<dyn Container>, LaunchError>,
    ) {
        let Some(entry) = self
            .executors
            .get_mut(&key)
            .filter(|e| e.instance == instance)
        else {
            if let Ok(container) = result {
                tracing::error!(executor = %key, "launch result for an unknown executor; killing it");
                tokio::spawn(container.kill(Duration::ZERO));
            }
            return;
        };
        match result {
            Ok(container) => {
                tracing::info!(executor = %key, pid = container.pid(), "executor started");
                entry.container = Some(Arc::clone(&container));
                self.persist_executor(&key);
                // Tasks handed over while it was starting count too.
                self.resize(&key);
                self.watch_executor(key.clone(), instance, container);
                self.exec_apply(&key, ExecEvent::Launched).await;
            }
            Err(e) => {
                entry.kill_reason = Some(format!("executor could not be started: {e}"));
                if matches!(e, LaunchError::Fetch(_)) {
                    entry.launch_failure = Some(StatusReason::FetchFailed);
                }
                self.exec_apply(&key, ExecEvent::LaunchFailed).await;
            }
        }
    }

    pub(super) async fn exec_exited(&mut self, key: ExecutorKey, instance: u64, t: Termination) {
        let Some(entry) = self
            .executors
            .get_mut(&key)
            .filter(|e| e.instance == instance)
        else {
            return;
        };
        tracing::info!(executor = %key, "executor ended: {t}");
        entry.termination = Some(t);
        self.exec_apply(&key, ExecEvent::Exited).await;
    }

    pub(super) async fn exec_timer(&mut self, key: ExecutorKey, instance: u64, generation: u64) {
        let timeout = self.exec.config.subscribe_timeout;
        let Some(entry) = self
            .executors
            .get_mut(&key)
            .filter(|e| e.instance == instance && e.timer_generation == generation)
        else {
            return;
        };
        if entry.phase != ExecPhase::Registering {
            return;
        }
        tracing::warn!(executor = %key, "executor did not subscribe within {timeout:?}; killing it");
        entry.kill_reason = Some(format!(
            "executor did not subscribe within {} s; it was killed",
            timeout.as_secs_f64()
        ));
        self.exec_apply(&key, ExecEvent::SubscribeTimeout).await;
    }

    pub(super) async fn exec_stream_closed(
        &mut self,
        key: ExecutorKey,
        instance: u64,
        connection: u64,
    ) {
        let Some(entry) = self
            .executors
            .get_mut(&key)
            .filter(|e| e.instance == instance)
        else {
            return;
        };
        if entry
            .stream
            .as_ref()
            .is_some_and(|s| s.connection == connection)
        {
            entry.stream = None;
            tracing::info!(executor = %key, "executor disconnected");
            self.exec_apply(&key, ExecEvent::Disconnected).await;
        }
    }

    fn start_subscribe_timer(&mut self, key: &ExecutorKey) {
        let timeout = self.exec.config.subscribe_timeout;
        let Some(tx) = self.self_tx.upgrade() else {
            return;
        };
        let Some(entry) = self.executors.get_mut(key) else {
            return;
        };
        entry.timer_generation += 1;
        let (key, instance, generation) = (key.clone(), entry.instance, entry.timer_generation);
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let _ = tx
                .send(Msg::ExecTimer {
                    key,
                    instance,
                    generation,
                })
                .await;
        });
    }

    /// Runs one event through the executor life cycle and carries out its effects.
    pub(super) async fn exec_apply(&mut self, key: &ExecutorKey, event: ExecEvent) {
        let grace = self.exec.config.shutdown_grace;
        let Some(entry) = self.executors.get_mut(key) else {
            return;
        };
        let (next, effects) = match exec_transition(entry.phase, event) {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(executor = %key, "{e}");
                return;
            }
        };
        entry.phase = next;
        for effect in effects {
            match effect {
                ExecEffect::StartSubscribeTimer => self.start_subscribe_timer(key),
                ExecEffect::DeliverLaunches => self.deliver_launches(key),
                ExecEffect::SendShutdown => {
                    let Some(entry) = self.executors.get_mut(key) else {
                        continue;
                    };
                    entry.send(XEvent::Shutdown(executor_event::Shutdown {
                        grace_period_seconds: grace.as_secs_f64(),
                    }));
                    if let Some(container) = entry.container.clone() {
                        tokio::spawn(async move {
                            tokio::time::sleep(grace).await;
                            container.kill(Duration::from_secs(1)).await;
                        });
                    }
                }
                ExecEffect::KillContainer => {
                    if let Some(container) =
                        self.executors.get(key).and_then(|e| e.container.clone())
                    {
                        tokio::spawn(container.kill(Duration::from_secs(1)));
                    }
                }
                ExecEffect::FailTasksAndForget => self.fail_and_forget(key).await,
            }
        }
    }

    fn deliver_launches(&mut self, key: &ExecutorKey) {
        let agent = AgentInfo {
            id: self.agent_id.clone(),
            ..Default::default()
        };
        let Some(entry) = self.executors.get_mut(key) else {
            return;
        };
        let subscribed = XEvent::Subscribed(executor_event::Subscribed {
            executor: Some(entry.info.clone()),
            framework: Some(entry.framework.clone()),
            agent: Some(agent),
        });
        if !entry.send(subscribed) {
            return;
        }
        let undelivered: Vec<(u64, TaskInfo)> = entry
            .tasks
            .values()
            .filter(|t| t.state == TaskState::Staging && !entry.known.contains(&t.info.task_id))
            .map(|t| (t.group, t.info.clone()))
            .collect();
        for event in launch_events(undelivered) {
            entry.send(event);
        }
        let kills: Vec<String> = entry
            .tasks
            .values()
            .filter(|t| t.kill_requested && !t.state.is_terminal())
            .map(|t| t.info.task_id.clone())
            .collect();
        for task_id in kills {
            entry.send(XEvent::Kill(executor_event::Kill {
                task_id,
                kill_policy: None,
            }));
        }
    }

    async fn fail_and_forget(&mut self, key: &ExecutorKey) {
        let Some(entry) = self.executors.remove(key) else {
            return;
        };
        for id in entry.tasks.keys() {
            self.task_executors
                .remove(&TaskKey::new(key.framework_id.clone(), id.clone()));
        }
        let exit_code = match &entry.termination {
            Some(Termination::Exited(code)) => Some(*code),
            _ => None,
        };
        let why = match (&entry.kill_reason, &entry.termination) {
            (Some(reason), _) => reason.clone(),
            (None, Some(Termination::Exited(code))) => {
                format!("executor exited with code {code} before reporting the task")
            }
            (None, Some(t)) => format!("executor ended before reporting the task: {t}"),
            (None, None) => "executor ended before reporting the task".to_string(),
        };
        for task in entry.tasks.values().filter(|t| !t.state.is_terminal()) {
            let tkey = TaskKey::new(key.framework_id.clone(), task.info.task_id.clone());
            let state = if task.kill_requested {
                TaskState::Killed
            } else {
                TaskState::Failed
            };
            let reason = entry
                .launch_failure
                .unwrap_or(StatusReason::ExecutorTerminated);
            let report = Report::new(state, reason, why.clone());
            tracing::info!(task = %tkey, state = ?state, "{why}");
            let mut status = new_status(&tkey, &self.agent_id, report);
            status.executor_id = key.executor_id.clone();
            self.updates.enqueue(status).await;
        }
        self.forget_executor(key);
        // Only executors that ran are reported; one that never started has nothing for
        // the framework beyond its tasks' updates.
        if entry.container.is_some() {
            let exited = self.exec.outbox.executor_exited(ExecutorExitedRequest {
                agent_id: String::new(),
                framework_id: key.framework_id.clone(),
                executor_id: key.executor_id.clone(),
                exit_code,
            });
            let key = key.clone();
            tokio::spawn(async move {
                if let Err(e) = exited.await {
                    tracing::warn!(executor = %key, "cannot report the executor's end to the master: {}", e.message());
                }
            });
        }
        self.notify_if_empty();
    }

    pub(super) async fn exec_subscribe(
        &mut self,
        request: ExecutorSubscribeRequest,
        token: &str,
    ) -> Result<EventRx, Status> {
        let key = ExecutorKey::new(request.framework_id.clone(), request.executor_id.clone());
        let entry = authenticated(&self.executors, &key, token)?;
        if matches!(entry.phase, ExecPhase::ShuttingDown | ExecPhase::Terminated) {
            return Err(Status::failed_precondition(format!(
                "executor '{}' is shutting down",
                key.executor_id
            )));
        }
        // Tasks the agent no longer has were forgotten after their terminal update was
        // acknowledged (the ACKNOWLEDGED was lost with the previous agent): their updates
        // are acknowledged now, and their processes, if any still run, are killed.
        let foreign_updates: Vec<(String, String)> = request
            .unacknowledged_updates
            .iter()
            .filter(|s| !entry.tasks.contains_key(&s.task_id))
            .map(|s| (s.task_id.clone(), s.uuid.clone()))
            .collect();
        let foreign_tasks: Vec<String> = request
            .unacknowledged_tasks
            .iter()
            .filter(|t| !entry.tasks.contains_key(&t.task_id))
            .map(|t| t.task_id.clone())
            .collect();
        // Updates sent before an agent restart: the ones already in the update log are
        // pending there; the rest never reached it and are taken now, in order.
        if !request.unacknowledged_updates.is_empty() {
            let pending: HashSet<String> = self
                .updates
                .pending()
                .await
                .into_iter()
                .flat_map(|(_, statuses)| statuses.into_iter().map(|s| s.uuid))
                .collect();
            for status in request.unacknowledged_updates.iter() {
                if pending.contains(&status.uuid)
                    || foreign_updates.iter().any(|(_, u)| *u == status.uuid)
                {
                    continue;
                }
                if let Err(e) = self.accept_update(&key, status.clone(), true).await {
                    tracing::info!(executor = %key, task = %status.task_id, "re-sent update dropped: {}", e.message());
                }
            }
        }
        let Some(tx) = self.self_tx.upgrade() else {
            return Err(Status::unavailable("the agent is stopping"));
        };
        self.next_instance += 1;
        let connection = self.next_instance;
        let (events_tx, events_rx) = mpsc::channel(EVENT_CAPACITY);
        let Some(entry) = self.executors.get_mut(&key) else {
            return Err(not_found(&key));
        };
        entry.known = request
            .unacknowledged_tasks
            .iter()
            .map(|t| t.task_id.clone())
            .chain(
                request
                    .unacknowledged_updates
                    .iter()
                    .map(|s| s.task_id.clone()),
            )
            .collect();
        let closed = events_tx.clone();
        let instance = entry.instance;
        let watcher = {
            let key = key.clone();
            tokio::spawn(async move {
                closed.closed().await;
                let _ = tx
                    .send(Msg::ExecStreamClosed {
                        key,
                        instance,
                        connection,
                    })
                    .await;
            })
        };
        // Replacing an older subscription ends its stream.
        entry.stream = Some(Subscription {
            connection,
            tx: events_tx,
            watcher,
        });
        let resubscribed = entry.recovered || entry.subscriptions > 0;
        entry.subscriptions = entry.subscriptions.saturating_add(1);
        tracing::info!(
            executor = %key,
            resubscribed,
            recovered = entry.recovered,
            resent_updates = request.unacknowledged_updates.len(),
            unacknowledged_tasks = request.unacknowledged_tasks.len(),
            "executor subscribed"
        );
        self.exec_apply(&key, ExecEvent::Subscribed).await;
        if let Some(entry) = self.executors.get_mut(&key) {
            for (task_id, uuid) in foreign_updates {
                tracing::info!(executor = %key, task = %task_id, "update of a forgotten task: acknowledging it");
                entry.send(XEvent::Acknowledged(executor_event::Acknowledged {
                    task_id,
                    uuid,
                }));
            }
            for task_id in foreign_tasks {
                tracing::warn!(executor = %key, task = %task_id, "executor runs a task this agent does not know; killing it");
                entry.send(XEvent::Kill(executor_event::Kill {
                    task_id,
                    kill_policy: None,
                }));
            }
        }
        // Its last updates may have come with the re-subscription: nothing left to run.
        if self
            .executors
            .get(&key)
            .is_some_and(ExecEntry::all_terminal)
        {
            tracing::info!(executor = %key, "executor has no task left; shutting it down");
            self.exec_apply(&key, ExecEvent::Shutdown).await;
        }
        Ok(events_rx)
    }

    pub(super) async fn exec_update(
        &mut self,
        request: agora_proto::v1::ExecutorUpdateRequest,
        token: &str,
    ) -> Result<(), Status> {
        let key = ExecutorKey::new(request.framework_id, request.executor_id);
        authenticated(&self.executors, &key, token)?;
        let status = request
            .status
            .ok_or_else(|| Status::invalid_argument("update carries no status"))?;
        self.accept_update(&key, status, false).await
    }

    /// Validates an executor's update, records the task's new state and queues the update
    /// for reliable delivery. `resent`: part of a re-subscription (the executor is not
    /// subscribed yet).
    async fn accept_update(
        &mut self,
        key: &ExecutorKey,
        mut status: agora_proto::v1::TaskStatus,
        resent: bool,
    ) -> Result<(), Status> {
        let agent_id = self.agent_id.clone();
        let entry = self.executors.get_mut(key).ok_or_else(|| not_found(key))?;
        if !resent && !matches!(entry.phase, ExecPhase::Subscribed | ExecPhase::ShuttingDown) {
            return Err(Status::failed_precondition(format!(
                "executor '{}' has not subscribed",
                key.executor_id
            )));
        }
        if !status.framework_id.is_empty() && status.framework_id != key.framework_id {
            return Err(Status::invalid_argument(format!(
                "status names framework '{}' but the executor belongs to '{}'",
                status.framework_id, key.framework_id
            )));
        }
        let Some(task) = entry.tasks.get_mut(&status.task_id) else {
            return Err(Status::not_found(format!(
                "task '{}' does not belong to executor '{}'",
                status.task_id, key.executor_id
            )));
        };
        let state = match TaskState::try_from(status.state) {
            Ok(TaskState::Unspecified | TaskState::Staging) | Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "state {} is not a state an executor may report",
                    status.state
                )));
            }
            Ok(s) => s,
        };
        if task.state.is_terminal() {
            return Err(Status::failed_precondition(format!(
                "task '{}' is already {}; no update may follow a terminal one",
                status.task_id,
                task.state.as_str_name()
            )));
        }
        if uuid::Uuid::parse_str(&status.uuid).is_err() {
            return Err(Status::invalid_argument(format!(
                "status uuid '{}' is not a UUID",
                status.uuid.escape_debug()
            )));
        }
        let first_running = state == TaskState::Running && task.state != TaskState::Running;
        task.state = state;
        if state.is_terminal() {
            task.terminal_uuid = Some(status.uuid.clone());
            task.checker = None;
            if task.killed_unhealthy && state == TaskState::Killed {
                status.state = TaskState::Failed as i32;
                status.reason = StatusReason::HealthCheckFailed as i32;
                status.message = format!(
                    "killed because its health check failed ({})",
                    status.message
                );
            }
        }
        let check = if first_running {
            task.info
                .health_check
                .as_ref()
                .and_then(|h| HealthSpec::from_proto(h).ok())
        } else {
            None
        };
        let (instance, container) = (entry.instance, entry.container.clone());
        if let (Some(spec), Some(container), Some(tx)) = (check, container, self.self_tx.upgrade())
        {
            let tkey = TaskKey::new(key.framework_id.clone(), status.task_id.clone());
            let checker = tokio::spawn(async move {
                health::run(spec, container, move |event| {
                    let tx = tx.clone();
                    let key = tkey.clone();
                    async move {
                        tx.send(Msg::ExecHealth {
                            key,
                            instance,
                            event,
                        })
                        .await
                        .is_ok()
                    }
                })
                .await;
            });
            if let Some(task) = entry.tasks.get_mut(&status.task_id) {
                task.checker = Some(AbortOnDrop(checker));
            }
        }
        let Some(task) = entry.tasks.get(&status.task_id) else {
            return Ok(());
        };
        let state = task.state;
        status.framework_id = key.framework_id.clone();
        status.executor_id = key.executor_id.clone();
        status.agent_id = agent_id;
        status.source = StatusSource::SourceExecutor as i32;
        if status.timestamp_ms <= 0 {
            status.timestamp_ms = now_ms();
        }
        let idle = entry.all_terminal();
        tracing::info!(executor = %key, task = %status.task_id, state = ?state, "{}", status.message);
        self.persist_executor(key);
        if state.is_terminal() && !idle {
            self.resize(key);
        }
        self.updates.enqueue(status).await;
        if idle && !resent {
            tracing::info!(executor = %key, "executor has no task left; shutting it down");
            self.exec_apply(key, ExecEvent::Shutdown).await;
        }
        Ok(())
    }

    pub(super) fn exec_message(
        &mut self,
        request: ExecutorMessageRequest,
        token: &str,
        reply: oneshot::Sender<Result<(), Status>>,
    ) {
        let key = ExecutorKey::new(request.framework_id.clone(), request.executor_id.clone());
        let entry = match authenticated(&self.executors, &key, token) {
            Ok(entry) => entry,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        if !matches!(entry.phase, ExecPhase::Subscribed | ExecPhase::ShuttingDown) {
            let _ = reply.send(Err(Status::failed_precondition(format!(
                "executor '{}' has not subscribed",
                key.executor_id
            ))));
            return;
        }
        let send = self
            .exec
            .outbox
            .executor_message(ExecutorToFrameworkMessage {
                agent_id: String::new(),
                framework_id: request.framework_id,
                executor_id: request.executor_id,
                data: request.data,
            });
        tokio::spawn(async move {
            let _ = reply.send(send.await);
        });
    }

    /// A health result of an executor's task (its checker runs in the executor's
    /// container): a change is reported as an agent update (RUNNING, `healthy`); too many
    /// failures kill the task through its executor, and its end is reported FAILED,
    /// HEALTH_CHECK_FAILED.
    pub(super) async fn exec_health(&mut self, key: TaskKey, instance: u64, event: HealthEvent) {
        let Some(ek) = self.executor_of(&key) else {
            return;
        };
        let agent_id = self.agent_id.clone();
        let Some(entry) = self.executors.get_mut(&ek) else {
            return;
        };
        let subscribed = entry.phase == ExecPhase::Subscribed;
        if entry.instance != instance {
            return;
        }
        let Some(task) = entry.tasks.get_mut(&key.task_id) else {
            return;
        };
        if task.state != TaskState::Running {
            return;
        }
        match event {
            HealthEvent::Changed { healthy } => {
                let report = Report::health_changed(healthy);
                tracing::info!(task = %key, executor = %ek, healthy, "{}", report.message);
                let mut status = new_status(&key, &agent_id, report);
                status.executor_id = ek.executor_id.clone();
                self.updates.enqueue(status).await;
            }
            HealthEvent::Failed => {
                if task.kill_requested {
                    return;
                }
                task.kill_requested = true;
                task.killed_unhealthy = true;
                task.checker = None;
                tracing::info!(task = %key, executor = %ek, "health check failed too often; killing the task");
                if subscribed {
                    entry.send(XEvent::Kill(executor_event::Kill {
                        task_id: key.task_id.clone(),
                        kill_policy: None,
                    }));
                }
                self.persist_executor(&ek);
            }
        }
    }

    pub(super) fn exec_acknowledged(&mut self, key: TaskKey, uuid: String) {
        let Some(ek) = self.executor_of(&key) else {
            return;
        };
        let Some(entry) = self.executors.get_mut(&ek) else {
            return;
        };
        let done = entry
            .tasks
            .get(&key.task_id)
            .is_some_and(|t| t.terminal_uuid.as_deref() == Some(uuid.as_str()));
        entry.send(XEvent::Acknowledged(executor_event::Acknowledged {
            task_id: key.task_id.clone(),
            uuid,
        }));
        if done {
            entry.tasks.remove(&key.task_id);
            self.task_executors.remove(&key);
            self.persist_executor(&ek);
        }
    }

    /// KillTask for an executor's task: KILL to the executor (the executor reports
    /// KILLED). An executor not subscribed gets it when it subscribes.
    pub(super) async fn exec_kill_task(
        &mut self,
        ek: ExecutorKey,
        key: TaskKey,
        kill_policy: Option<KillPolicy>,
    ) {
        let Some(entry) = self.executors.get_mut(&ek) else {
            return;
        };
        let Some(task) = entry.tasks.get_mut(&key.task_id) else {
            return;
        };
        if task.state.is_terminal() {
            tracing::info!(task = %key, "kill for a task that already ended; ignored");
            return;
        }
        task.kill_requested = true;
        if entry.phase == ExecPhase::Subscribed {
            entry.send(XEvent::Kill(executor_event::Kill {
                task_id: key.task_id.clone(),
                kill_policy,
            }));
        }
        tracing::info!(task = %key, executor = %ek, "kill forwarded to the executor");
        self.persist_executor(&ek);
    }

    pub(super) async fn exec_shutdown(&mut self, key: &ExecutorKey) {
        if self.executors.contains_key(key) {
            tracing::info!(executor = %key, "shutting down executor");
            self.exec_apply(key, ExecEvent::Shutdown).await;
        } else {
            tracing::info!(executor = %key, "shutdown for an unknown executor; ignored");
        }
    }

    pub(super) fn exec_framework_message(&mut self, fw: &str, executor_id: &str, data: Vec<u8>) {
        let key = ExecutorKey::new(fw, executor_id);
        match self.executors.get_mut(&key) {
            Some(entry) if entry.phase == ExecPhase::Subscribed => {
                entry.send(XEvent::Message(executor_event::Message { data }));
            }
            Some(_) => {
                tracing::warn!(executor = %key, "framework message dropped: executor not subscribed")
            }
            None => {
                tracing::warn!(executor = %key, "framework message for an unknown executor dropped")
            }
        }
    }

    /// Every executor (of `framework`, or all) is shut down.
    pub(super) async fn exec_shutdown_all(&mut self, framework: Option<&str>) {
        let keys: Vec<ExecutorKey> = self
            .executors
            .keys()
            .filter(|k| framework.is_none_or(|f| k.framework_id == f))
            .cloned()
            .collect();
        for key in keys {
            self.exec_apply(&key, ExecEvent::Shutdown).await;
        }
    }
}
