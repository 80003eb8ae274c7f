//! Command tasks inside the state actor: launching them, their health checks, kills,
//! reconciliation, and every change of a task's phase.
//!
//! The state actor stays the single owner: this module only adds the actor's task methods
//! (the task map and its [`Entry`] live in the actor). Every phase change goes through
//! [`crate::task::transition`] in [`Actor::apply`], whose effects are applied there and
//! nowhere else.
//!
//! It must never await a process or the network: launches, waits and kills run in their
//! own tokio tasks and come back as messages.

use super::*;

impl Actor {
    pub(super) fn persist_task(&self, key: &TaskKey) {
        let (Some(p), Some(entry)) = (&self.persistence, self.tasks.get(key)) else {
            return;
        };
        // Before the launch settles there is no container yet: a restart then reports the
        // task as failed instead of forgetting it.
        let mut record = TaskRecord {
            framework: Some(entry.framework.clone()),
            task: Some(entry.task.clone()),
            ..Default::default()
        };
        if let Some(reference) = entry.container.as_ref().and_then(|c| c.reference()) {
            record.container_id = reference.container_id;
            record.pid = reference.pid;
            record.start_time = reference.start_time;
            record.sandbox = reference.sandbox.to_string_lossy().into_owned();
        }
        if let Err(e) = p.checkpoint.write_task(key, &record) {
            tracing::error!(task = %key, "cannot checkpoint the task: {e}");
        }
    }

    /// Starts the health checker of a running task that has a health check.
    pub(super) fn start_checker(&mut self, key: &TaskKey) {
        let Some(tx) = self.self_tx.upgrade() else {
            return;
        };
        let Some(entry) = self.tasks.get_mut(key) else {
            return;
        };
        let (Some(spec), Some(container)) = (entry.health.clone(), entry.container.clone()) else {
            return;
        };
        let (key, instance) = (key.clone(), entry.instance);
        entry.checker = Some(tokio::spawn(health::run(spec, container, move |event| {
            let tx = tx.clone();
            let key = key.clone();
            async move {
                tx.send(Msg::Health {
                    key,
                    instance,
                    event,
                })
                .await
                .is_ok()
            }
        })));
    }

    pub(super) async fn health(&mut self, key: TaskKey, instance: u64, event: HealthEvent) {
        if !self.is_current(&key, instance) {
            return;
        }
        let Some(entry) = self.tasks.get_mut(&key) else {
            return;
        };
        if entry.phase != Phase::Running {
            return;
        }
        match event {
            HealthEvent::Changed { healthy } => {
                entry.healthy = Some(healthy);
                self.report(&key, Report::health_changed(healthy)).await;
            }
            HealthEvent::Failed => {
                let grace = entry.grace();
                let cause = KillCause::HealthCheckFailed;
                self.apply(&key, Event::KillRequested(KillRequest { cause, grace }))
                    .await;
            }
        }
    }

    pub(super) fn forget_task(&self, key: &TaskKey) {
        if let Some(p) = &self.persistence
            && let Err(e) = p.checkpoint.remove_task(key)
        {
            tracing::error!(task = %key, "cannot remove the task's checkpoint: {e}");
        }
    }

    pub(super) async fn run_task(&mut self, run: agent_command::RunTask) {
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
        if self.tasks.contains_key(&key) || self.executor_of(&key).is_some() {
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
        let health = match task.health_check.as_ref().map(HealthSpec::from_proto) {
            None => None,
            Some(Ok(spec)) => Some(spec),
            Some(Err(e)) => {
                let report = Report::new(TaskState::Failed, StatusReason::TaskInvalid, e);
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
                health,
                checker: None,
                healthy: None,
            },
        );
        self.persist_task(&key);
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

    pub(super) async fn launched(
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
                self.persist_task(&key);
                Event::Launched
            }
            Err(e) => Event::LaunchFailed {
                reason: match &e {
                    LaunchError::Fetch(_) => StatusReason::FetchFailed,
                    _ => StatusReason::ContainerLaunchFailed,
                },
                error: e.to_string(),
            },
        };
        self.apply(&key, event).await;
    }

    pub(super) async fn kill_task(&mut self, kill: agent_command::KillTask) {
        let key = TaskKey::new(kill.framework_id, kill.task_id);
        if let Some(executor) = self.executor_of(&key) {
            self.exec_kill_task(executor, key, kill.kill_policy).await;
            return;
        }
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

    pub(super) async fn reconcile(&self, task_ids: Vec<String>) {
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
        let mut statuses: Vec<_> = answers
            .into_iter()
            .map(|(key, entry)| {
                let state = entry.phase.reported_state();
                let report = Report::new(state, StatusReason::Reconciliation, "");
                new_status(key, &self.agent_id, report)
            })
            .collect();
        for (key, _, _, state) in self.executor_tasks() {
            if task_ids.is_empty() || task_ids.contains(&key.task_id) {
                unknown.retain(|id| id != &key.task_id);
                let report = Report::new(state, StatusReason::Reconciliation, "");
                statuses.push(new_status(&key, &self.agent_id, report));
            }
        }
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
    pub(super) async fn apply(&mut self, key: &TaskKey, event: Event) {
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
        let started = entry.phase != Phase::Running && next == Phase::Running;
        entry.phase = next;
        let container = entry.container.clone();
        let terminal = entry.phase.is_terminal();
        if started {
            self.start_checker(key);
        }
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
            self.forget_task(key);
            self.notify_if_empty();
        }
    }
}
