//! The actor's agent-API half: registration and re-registration (with task
//! reconciliation), heartbeats and unreachability, status updates and their relay.
//!
//! Invariant kept here: a task's resources are booked in the allocator exactly while the
//! task is live and its agent is schedulable.

use std::collections::HashSet;

use crate::service::Error;
use agora_proto::TaskState;
use agora_proto::v1::{self, Event, FrameworkCapability};
use agora_resources::{Attributes, Resources};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{AgentEntry, AgentStream, FrameworkEntry, Master, TaskEntry};
use crate::clock::Millis;
use crate::registry::RegistryOp;
use crate::state::agent::{AgentEvent, AgentStatus};
use crate::state::framework::FrameworkStatus;
use crate::state::stored::{StatusLog, StoredResources, StoredUuid};
use crate::validate;

impl Master {
    pub(super) fn register_agent(
        &mut self,
        request: v1::RegisterAgentRequest,
    ) -> Result<AgentStream, Error> {
        let mut info = request
            .info
            .ok_or_else(|| Error::invalid_argument("register needs agent info"))?;
        if info.hostname.trim().is_empty() {
            return Err(Error::invalid_argument("agent hostname is empty"));
        }
        if info.isolation.len() > 64 {
            return Err(Error::invalid_argument(
                "agent isolation name is longer than 64 bytes",
            ));
        }
        let total = Resources::from_proto(&info.resources)
            .map_err(|e| Error::invalid_argument(format!("agent resources: {e}")))?;
        if total.is_empty() {
            return Err(Error::invalid_argument("agent offers no resources"));
        }
        Self::attributes_ok(&info.attributes)?;
        // Reported tasks are validated before anything changes.
        let mut reported = Vec::new();
        for rt in &request.tasks {
            let task = rt
                .task
                .clone()
                .ok_or_else(|| Error::invalid_argument("reported task without task info"))?;
            validate::id("task id", &task.task_id)?;
            validate::id("framework id", &rt.framework_id)?;
            let resources = Resources::from_proto(&task.resources).map_err(|e| {
                Error::invalid_argument(format!("task '{}' resources: {e}", task.task_id))
            })?;
            let state = TaskState::try_from(rt.state)
                .ok()
                .filter(|s| *s != TaskState::Unspecified)
                .ok_or_else(|| {
                    Error::invalid_argument(format!(
                        "task '{}' has an invalid state {}",
                        task.task_id, rt.state
                    ))
                })?;
            reported.push((rt.framework_id.clone(), task, resources, state));
        }

        let now = self.now();
        let epoch = self.fresh_epoch();
        let (tx, rx) = mpsc::channel(self.config.peer_queue_capacity);
        let id = if info.id.is_empty() {
            self.fresh_id('A')
        } else {
            validate::id("agent id", &info.id)?;
            info.id.clone()
        };
        info.id = id.clone();

        let known = self
            .agents
            .get(&id)
            .map(|a| (a.status, a.info.hostname.clone()));
        if known
            .as_ref()
            .is_some_and(|(s, _)| *s == AgentStatus::Removed)
        {
            let _ = tx.try_send(Ok(Box::new(v1::AgentCommand {
                command: Some(v1::agent_command::Command::Shutdown(
                    v1::agent_command::Shutdown {
                        reason: format!("agent '{id}' was removed from the cluster"),
                    },
                )),
            })));
            return Ok(AgentStream {
                agent_id: id,
                epoch,
                commands: rx,
            });
        }

        // The life cycle first: a refused re-registration changes nothing.
        let status = match &known {
            Some((from, _)) => from.on(AgentEvent::Reregister).map_err(|e| {
                Error::failed_precondition(format!("agent '{id}' cannot register: {e}"))
            })?,
            None => AgentStatus::NEW,
        };
        // Admitted agents are in the registry, so a restarted master knows whom to wait for.
        if known
            .as_ref()
            .is_none_or(|(_, host)| *host != info.hostname)
        {
            self.persist(RegistryOp::AdmitAgent {
                id: id.clone(),
                hostname: info.hostname.clone(),
            });
        }
        // A re-registration starts from a clean slate in the allocator: its old offers are
        // void, and live tasks are booked again below.
        let was_in_allocator = self.agent_in_allocator(&id);
        if let Some(old) = self.agents.get(&id) {
            let offers: Vec<String> = old.offers.iter().cloned().collect();
            let keys: Vec<_> = old.tasks.iter().cloned().collect();
            for o in offers {
                self.rescind_offer(&o, "agent re-registered", false);
            }
            for k in &keys {
                if let Some(t) = self.tasks.get_mut(k) {
                    t.booked = false;
                }
            }
            if was_in_allocator && let Err(e) = self.allocator.remove_agent(&id) {
                warn!(error = %e, "removing re-registering agent from allocator");
            }
            // Rebuilt below from the tasks it reports.
            self.forget_agent_executors(&id);
        }
        // The clone is the size of its entries; the bag as built has room for more (a third
        // more for cpus, mem and disk), for as long as the agent stays.
        let total = self.with_checkpointed(&id, total).clone();
        // A deactivated agent stays out of the allocator until an operator reactivates it.
        if status.is_schedulable() {
            let attributes = Attributes::from_proto(&info.attributes).unwrap_or_default();
            self.add_agent_to_allocator(&id, total.clone(), attributes)
                .map_err(|e| Error::internal(e.to_string()))?;
        }

        let known = known.is_some();
        let previous_tasks: HashSet<(String, String)> = self
            .agents
            .get(&id)
            .map(|a| a.tasks.clone())
            .unwrap_or_default();
        let registered_at = self.agents.get(&id).map_or(now, |a| a.registered_at);
        self.agents.insert(
            id.clone(),
            AgentEntry {
                info: info.clone().into(),
                total,
                status,
                tx: Some(tx.clone()),
                epoch,
                registered_at,
                last_heartbeat: now,
                tasks: previous_tasks.clone(),
                offers: HashSet::new(),
                executors: HashSet::new(),
            },
        );

        // REGISTERED goes first on the fresh queue, before any kill the reconciliation sends.
        let _ = tx.try_send(Ok(Box::new(v1::AgentCommand {
            command: Some(v1::agent_command::Command::Registered(
                v1::agent_command::Registered {
                    agent_id: id.clone(),
                    heartbeat_interval_seconds: self.config.agent_heartbeat.as_secs_f64(),
                    master_id: self.master_id.clone(),
                },
            )),
        })));

        self.send_checkpoint(&id);

        // Reconcile: what the agent runs is the truth.
        let frameworks_info = request.frameworks.clone();
        let mut seen = HashSet::new();
        for (fw_id, task, resources, state) in reported {
            let key = (fw_id.clone(), task.task_id.clone());
            seen.insert(key.clone());
            let executor = task.executor.clone();
            if state.is_terminal() {
                // Its terminal update is still on its way through the update manager. A
                // task this master never heard of (it restarted meanwhile) is tracked from
                // here on, ended, so that its updates (and their late retries) are known.
                if !self.tasks.contains_key(&key)
                    && self.completed_task(&key).is_none()
                    && !self.framework_retired(&fw_id)
                {
                    self.ensure_framework_for_recovered_task(&fw_id, &frameworks_info, now);
                    let role = self.recovered_task_role(&fw_id, &task.role, &resources);
                    self.tasks.insert(
                        key.clone(),
                        TaskEntry {
                            info: task.into(),
                            framework_id: fw_id.clone(),
                            agent_id: id.clone(),
                            role,
                            resources: StoredResources::from(&resources),
                            state,
                            booked: false,
                            statuses: StatusLog::default(),
                            relayed: None,
                        },
                    );
                    if let Some(f) = self.frameworks.get_mut(&fw_id) {
                        f.tasks.insert(key.1.clone());
                    }
                    if let Some(a) = self.agents.get_mut(&id) {
                        a.tasks.insert(key.clone());
                    }
                    self.emit_task_added(&key);
                }
                continue;
            }
            if self.framework_retired(&fw_id) {
                self.send_agent(
                    &id,
                    v1::agent_command::Command::ShutdownFramework(
                        v1::agent_command::ShutdownFramework {
                            framework_id: fw_id.clone(),
                        },
                    ),
                );
                continue;
            }
            self.ensure_framework_for_recovered_task(&fw_id, &frameworks_info, now);
            let role = self.recovered_task_role(&fw_id, &task.role, &resources);
            match self.tasks.get_mut(&key) {
                Some(t) if t.state.is_terminal() => {
                    // The master already gave up on it (e.g. LOST while unreachable).
                    let kill = v1::agent_command::Command::KillTask(v1::agent_command::KillTask {
                        framework_id: fw_id.clone(),
                        task_id: task.task_id.clone(),
                        kill_policy: None,
                    });
                    self.send_agent(&id, kill);
                    continue;
                }
                Some(t) => {
                    if let Ok(next) = crate::state::task::transition(t.state, state) {
                        t.state = next;
                    }
                }
                None => {
                    self.tasks.insert(
                        key.clone(),
                        TaskEntry {
                            info: task.into(),
                            framework_id: fw_id.clone(),
                            agent_id: id.clone(),
                            role,
                            resources: StoredResources::from(&resources),
                            state,
                            booked: false,
                            statuses: StatusLog::default(),
                            relayed: None,
                        },
                    );
                    if let Some(f) = self.frameworks.get_mut(&fw_id) {
                        f.tasks.insert(key.1.clone());
                    }
                    if let Some(a) = self.agents.get_mut(&id) {
                        a.tasks.insert(key.clone());
                    }
                    self.emit_task_added(&key);
                }
            }
            self.book_task(&key);
            if let Some(executor) = executor
                && self
                    .live_executor(&id, &fw_id, &executor.executor_id)
                    .is_none()
            {
                match Resources::from_proto(&executor.resources) {
                    Ok(r) => {
                        let role = self
                            .tasks
                            .get(&key)
                            .map(|t| t.role.clone())
                            .unwrap_or_default();
                        self.add_executor(&id, &fw_id, &role, executor, r, false);
                    }
                    Err(e) => warn!(agent = %id, error = %e, "unreadable executor resources"),
                }
            }
        }
        self.book_executors(&id);
        // Live tasks the master knew on this agent that the agent no longer has.
        for key in previous_tasks.difference(&seen) {
            let Some(t) = self.tasks.get(key) else {
                continue;
            };
            if t.state.is_terminal() {
                continue;
            }
            let (state, msg) = if t.state == TaskState::Staging {
                (
                    TaskState::Dropped,
                    "the agent re-registered without this task: the launch was lost",
                )
            } else {
                (TaskState::Lost, "the agent re-registered without this task")
            };
            self.fail_task(key, state, v1::StatusReason::AgentRestarted, msg);
        }

        info!(agent = %id, hostname = %info.hostname, "agent registered");
        self.emit_agent(&id, !known);
        self.needs_allocation = true;
        Ok(AgentStream {
            agent_id: id,
            epoch,
            commands: rx,
        })
    }

    /// The one place an agent's status changes after registration: `event` is checked
    /// against the life cycle first (refused: nothing changes, FAILED_PRECONDITION), then
    /// what follows from the new state is applied: leaving a schedulable state rescinds
    /// its offers, unbooks its tasks and takes it out of the allocator; entering one puts
    /// it back and books its live tasks. Returns the state it left.
    pub(super) fn agent_event(
        &mut self,
        id: &str,
        event: AgentEvent,
    ) -> Result<AgentStatus, Error> {
        let Some(agent) = self.agents.get_mut(id) else {
            return Err(Error::not_found(format!("unknown agent id '{id}'")));
        };
        let from = agent.status;
        let to = from
            .on(event)
            .map_err(|e| Error::failed_precondition(format!("agent '{id}': {e}")))?;
        agent.status = to;
        if to.drain().is_some() {
            self.draining.insert(id.to_string());
        } else if from.drain().is_some() {
            self.draining.remove(id);
        }
        match (from.is_schedulable(), to.is_schedulable()) {
            (true, false) => {
                let offers: Vec<String> = agent.offers.iter().cloned().collect();
                let keys: Vec<_> = agent.tasks.iter().cloned().collect();
                for o in offers {
                    self.rescind_offer(&o, "agent taken out of scheduling", false);
                }
                for k in keys {
                    if let Some(t) = self.tasks.get_mut(&k) {
                        t.booked = false;
                    }
                }
                self.unbook_executors(id);
                if let Err(e) = self.allocator.remove_agent(id) {
                    warn!(agent = %id, error = %e, "removing an agent from the allocator");
                }
            }
            (false, true) => {
                let total = agent.total.clone();
                let attributes = Attributes::from_proto(&agent.info.attributes).unwrap_or_default();
                let keys: Vec<_> = agent.tasks.iter().cloned().collect();
                if let Err(e) = self.add_agent_to_allocator(id, total, attributes) {
                    warn!(agent = %id, error = %e, "adding an agent to the allocator");
                }
                for k in keys {
                    self.book_task(&k);
                }
                self.book_executors(id);
                self.needs_allocation = true;
            }
            _ => {}
        }
        Ok(from)
    }

    /// The role a task an agent reports after a master restart was launched under: the
    /// role the master wrote into its `TaskInfo` at launch (`reported`), when that is one
    /// of the framework's roles and fits the task's reservations. Tasks launched by a
    /// master before that field existed fall back to the framework's role whose
    /// reservations the task uses, else its first role that can hold the resources.
    pub(super) fn recovered_task_role(
        &self,
        fw_id: &str,
        reported: &str,
        resources: &Resources,
    ) -> String {
        let roles = self
            .frameworks
            .get(fw_id)
            .map(|f| f.info.roles.as_slice())
            .unwrap_or(&[]);
        let holds = resources.allocatable_to(reported).iter().count() == resources.iter().count();
        // Before the framework re-subscribes its roles are unknown here: the agent's
        // report is then the only witness, and it came from this master's own launch.
        if !reported.is_empty()
            && holds
            && (roles.is_empty() || roles.iter().any(|r| r == reported))
        {
            return reported.to_string();
        }
        let fits =
            |r: &&String| resources.allocatable_to(r).iter().count() == resources.iter().count();
        roles
            .iter()
            .filter(fits)
            .find(|r| !resources.reserved_for(r).is_empty())
            .or_else(|| roles.iter().find(fits))
            .or_else(|| roles.first())
            .cloned()
            .unwrap_or_else(|| validate::DEFAULT_ROLE.to_string())
    }

    /// Tell every subscribed framework the agent is lost (a FAILURE event naming the
    /// agent and no executor), as Mesos does when it removes an agent or marks it
    /// unreachable.
    pub(super) fn send_agent_lost(&mut self, agent_id: &str) {
        let ids: Vec<String> = self
            .frameworks
            .iter()
            .filter(|(_, f)| f.tx.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        for fw in ids {
            self.send_event(
                &fw,
                Event {
                    event: Some(v1::event::Event::Failure(v1::event::Failure {
                        agent_id: agent_id.to_string(),
                        executor_id: String::new(),
                        exit_code: None,
                    })),
                },
            );
        }
    }

    /// After a master restart: once the re-registration timeout has passed, agents
    /// admitted before it that have not come back are marked unreachable (their tasks
    /// are then answered UNREACHABLE or LOST by reconciliation, and every framework
    /// hears a FAILURE for the agent).
    pub(super) fn check_reregistration_timeout(&mut self, now: Millis) {
        let Some(deadline) = self.reregistration_deadline else {
            return;
        };
        if now < deadline {
            return;
        }
        self.reregistration_deadline = None;
        let away: Vec<String> = self
            .agents
            .iter()
            .filter(|(_, a)| matches!(a.status, AgentStatus::Recovering(_)))
            .map(|(id, _)| id.clone())
            .collect();
        for id in away {
            if self
                .agent_event(&id, AgentEvent::ReregistrationTimedOut)
                .is_ok()
            {
                warn!(agent = %id, "agent did not re-register after the master restart; marking it unreachable");
                self.emit_agent(&id, false);
                self.send_agent_lost(&id);
            }
        }
    }

    /// Whether agents admitted before this master started may still re-register (their
    /// tasks are then unknown, not lost).
    pub(super) fn agents_recovering(&self) -> bool {
        self.reregistration_deadline.is_some()
            && self
                .agents
                .values()
                .any(|a| matches!(a.status, AgentStatus::Recovering(_)))
    }

    /// Book a live task's resources if its agent is schedulable.
    pub(super) fn book_task(&mut self, key: &(String, String)) {
        let Some(task) = self.tasks.get(key) else {
            return;
        };
        if task.booked || task.state.is_terminal() {
            return;
        }
        if !self.agent_in_allocator(&task.agent_id) {
            return;
        }
        let (agent, fw, role, res) = (
            task.agent_id.clone(),
            task.framework_id.clone(),
            task.role.clone(),
            task.resources.to_resources(),
        );
        match self.allocator.add_allocated(&agent, &fw, &role, &res) {
            Ok(()) => {
                if let Some(t) = self.tasks.get_mut(key) {
                    t.booked = true;
                }
            }
            Err(e) => warn!(error = %e, task = %key.1, "booking recovered task"),
        }
    }

    /// After a master restart, agents report tasks of frameworks that have not
    /// re-subscribed yet: keep a disconnected entry so the framework can resume.
    pub(super) fn ensure_framework_for_recovered_task(
        &mut self,
        fw_id: &str,
        infos: &[v1::FrameworkInfo],
        now: Millis,
    ) {
        if self.frameworks.contains_key(fw_id) {
            return;
        }
        let mut info = infos
            .iter()
            .find(|f| f.id == fw_id)
            .cloned()
            .unwrap_or_else(|| v1::FrameworkInfo {
                id: fw_id.to_string(),
                name: format!("recovered-{fw_id}"),
                ..v1::FrameworkInfo::default()
            });
        if validate::framework_info(&mut info).is_err() {
            info = v1::FrameworkInfo {
                id: fw_id.to_string(),
                name: format!("recovered-{fw_id}"),
                roles: vec![validate::DEFAULT_ROLE.to_string()],
                ..v1::FrameworkInfo::default()
            };
        }
        let spec = super::frameworks::spec_of(&info);
        if self.allocator.add_framework(fw_id, spec).is_ok() {
            let _ = self.allocator.set_framework_active(fw_id, false);
        }
        self.frameworks.insert(
            fw_id.to_string(),
            FrameworkEntry {
                info,
                status: FrameworkStatus::Inactive,
                tx: None,
                epoch: 0,
                registered_at: now,
                disconnected_at: Some(now),
                offers: HashSet::new(),
                tasks: HashSet::new(),
            },
        );
    }

    pub(super) fn agent_stream_closed(&mut self, id: &str, epoch: u64) {
        let Some(agent) = self.agents.get_mut(id) else {
            return;
        };
        if agent.epoch != epoch || agent.tx.is_none() {
            return;
        }
        agent.tx = None;
        let offers: Vec<String> = agent.offers.iter().cloned().collect();
        if let Err(e) = self.agent_event(id, AgentEvent::StreamLost) {
            debug!(error = %e, "agent stream closed");
        }
        info!(agent = %id, "agent disconnected");
        // Offers on an agent that cannot be reached would only fail on accept.
        for o in offers {
            self.rescind_offer(&o, "agent disconnected", true);
        }
        self.emit_agent(id, false);
    }

    pub(super) fn agent_heartbeat(&mut self, id: &str) -> Result<(), Error> {
        validate::id("agent id", id)?;
        let now = self.now();
        match self.agents.get_mut(id) {
            Some(a) if a.status.is_registered() && a.tx.is_some() => {
                a.last_heartbeat = now;
                Ok(())
            }
            _ => Err(Error::not_found(format!(
                "agent '{id}' is not registered with this master; register again"
            ))),
        }
    }

    pub(super) fn check_agent_timeouts(&mut self, now: Millis) {
        let limit = self.config.agent_heartbeat.as_millis() as Millis
            * self.config.agent_max_missed_heartbeats as Millis;
        let mut late: Vec<(Millis, String)> = self
            .agents
            .iter()
            .filter(|(_, a)| {
                a.status.is_registered() && now.saturating_sub(a.last_heartbeat) > limit
            })
            .map(|(id, a)| (a.last_heartbeat, id.clone()))
            .collect();
        // Longest silent first; the rest wait their turn under a removal rate limit, so a
        // network split cannot take the whole cluster's tasks down at once, and agents
        // that come back meanwhile are never marked.
        late.sort();
        for (_, id) in late {
            if let Some(interval) = self.config.agent_removal_interval {
                let interval = interval.as_millis() as Millis;
                if self
                    .last_agent_removal
                    .is_some_and(|at| now.saturating_sub(at) < interval)
                {
                    break;
                }
                self.last_agent_removal = Some(now);
            }
            self.mark_unreachable(&id);
        }
    }

    /// Missed too many heartbeats: offers rescinded, resources out of the allocator, live
    /// tasks reported UNREACHABLE (partition-aware frameworks) or LOST, once.
    fn mark_unreachable(&mut self, id: &str) {
        if self.agent_event(id, AgentEvent::HeartbeatsMissed).is_err() {
            return;
        }
        warn!(agent = %id, "agent missed its heartbeats; marking it unreachable");
        let Some(agent) = self.agents.get_mut(id) else {
            return;
        };
        agent.tx = None;
        let tasks: Vec<(String, String)> = agent.tasks.iter().cloned().collect();
        self.forget_usage(id);
        self.emit_agent(id, false);
        self.send_agent_lost(id);
        for key in tasks {
            let partition_aware = self.frameworks.get(&key.0).is_some_and(|f| {
                validate::has_capability(&f.info, FrameworkCapability::PartitionAware)
            });
            let state = if partition_aware {
                TaskState::Unreachable
            } else {
                TaskState::Lost
            };
            self.fail_task(
                &key,
                state,
                v1::StatusReason::AgentUnreachable,
                "the agent stopped answering",
            );
        }
    }

    pub(super) fn status_update(&mut self, r: v1::StatusUpdateRequest) -> Result<(), Error> {
        validate::id("agent id", &r.agent_id)?;
        let mut status = r
            .status
            .ok_or_else(|| Error::invalid_argument("status update without a status"))?;
        validate::id("task id", &status.task_id)?;
        validate::id("framework id", &status.framework_id)?;
        match TaskState::try_from(status.state) {
            Ok(TaskState::Unspecified) | Err(_) => {
                return Err(Error::invalid_argument(format!(
                    "status update for task '{}' has an invalid state {}",
                    status.task_id, status.state
                )));
            }
            Ok(_) => {}
        }
        if status.uuid.is_empty() {
            return Err(Error::invalid_argument(format!(
                "status update for task '{}' has no uuid",
                status.task_id
            )));
        }
        let now = self.now();
        match self.agents.get_mut(&r.agent_id) {
            Some(a) if a.tx.is_some() => a.last_heartbeat = now,
            _ => {
                return Err(Error::not_found(format!(
                    "agent '{}' is not registered with this master; register again",
                    r.agent_id
                )));
            }
        }
        self.metrics.status_updates += 1;
        status.agent_id = r.agent_id.clone();
        let key = (status.framework_id.clone(), status.task_id.clone());
        if let Some(task) = self.tasks.get(&key)
            && task.agent_id != r.agent_id
        {
            return Err(Error::invalid_argument(format!(
                "task '{}' runs on agent '{}', not on '{}'",
                status.task_id, task.agent_id, r.agent_id
            )));
        }
        // A re-send of an update that a newer one has already followed is stale: the agent
        // only sends the next update after this one was acknowledged, but a retry that was
        // in flight can overtake it. Relaying it would show the framework an older state
        // after a newer one.
        // It is acknowledged on the framework's behalf: the framework already has a newer
        // state, and an agent whose queue head is this update (a task the master gave up on
        // as LOST while the agent was away) would otherwise re-send it for good, with every
        // later update of the task stuck behind it. An agent ignores an acknowledgement
        // that is not for its queue's head, so acknowledging an overtaken retry is harmless.
        if self.is_superseded(&key, &status.uuid) {
            self.metrics.stale_status_updates += 1;
            self.send_agent(
                &r.agent_id,
                v1::agent_command::Command::Acknowledge(v1::agent_command::Acknowledge {
                    framework_id: status.framework_id.clone(),
                    task_id: status.task_id.clone(),
                    uuid: status.uuid.clone(),
                }),
            );
            return Ok(());
        }
        // A framework falling behind on its events is sent no more updates until it
        // catches up: the update is refused before anything changes, and the agent keeps
        // it and sends it again after its backoff. Cutting the framework off instead (what
        // a full queue does) costs a re-subscription and a reconciliation; a longer queue
        // only lets the delay grow until agents re-send everything.
        // The framework's current subscription, for the backlog and the relay checks.
        let epoch = self
            .frameworks
            .get(&status.framework_id)
            .map_or(0, |f| f.epoch);
        if self.framework_backlogged(&status.framework_id) {
            let entry = self
                .backlogged_since
                .entry(status.framework_id.clone())
                .or_insert((epoch, now, now));
            // A new subscription, or no deferral for a while (the backlog cleared and
            // this is a new one): the clock starts again.
            if entry.0 != epoch || now.saturating_sub(entry.2) > super::BACKLOG_GAP_MS {
                *entry = (epoch, now, now);
            }
            entry.2 = now;
            let since = entry.1;
            if now.saturating_sub(since) < super::BACKLOG_LIMIT_MS {
                self.metrics.status_updates_deferred += 1;
                return Err(Error::unavailable(format!(
                    "framework '{}' is behind on its events; send the update again later",
                    status.framework_id
                )));
            }
            // Behind for too long: cut off. The update is then taken below like any for a
            // disconnected framework.
            warn!(
                framework = %status.framework_id,
                "framework behind on its events for {} s; disconnecting it",
                super::BACKLOG_LIMIT_MS / 1000
            );
            self.backlogged_since.remove(&status.framework_id);
            self.metrics.frameworks_disconnected_slow += 1;
            self.framework_stream_closed(&status.framework_id, epoch);
        } else if !self.backlogged_since.is_empty() {
            self.backlogged_since.remove(&status.framework_id);
        }
        if !self.apply_task_state(&key, &status) {
            // The master's view is already past this state (an agent's `latest_state` moved
            // it on), yet the update still goes to the framework: record it all the same, so
            // that a retry of it arriving after a newer update is known as superseded.
            if let Some(task) = self.tasks.get_mut(&key) {
                task.statuses.record(&status, super::MAX_TASK_HISTORY);
            }
        }
        // The agent may already know a newer state while older updates await their
        // acknowledgement; the master's view moves ahead (and frees resources) at once, but
        // the task's latest status stays the last one actually received.
        if let Ok(latest) = TaskState::try_from(r.latest_state)
            && latest != TaskState::Unspecified
            && latest as i32 != status.state
        {
            self.advance_task(&key, latest);
        }

        let framework_live = self.frameworks.get(&status.framework_id).map(|f| f.status);
        match framework_live {
            Some(FrameworkStatus::Active) => {
                // The agent re-sends until the acknowledgement comes back; when acks lag
                // under load, relaying every re-send multiplies the load (the load harness
                // saw 3 re-sends per update). Relay the same update to the same
                // subscription again only after RELAY_AGAIN_MS, and only once the
                // framework has read nearly all its queue: before, the first relay may
                // still be waiting in it (relaying again then fed a collapse: a backlog
                // past RELAY_AGAIN_MS doubled itself).
                let caught_up = self.framework_caught_up(&status.framework_id);
                if let Some(task) = self.tasks.get_mut(&key) {
                    if task.relayed.as_ref().is_some_and(|(uuid, e, at)| {
                        *uuid == status.uuid
                            && *e == epoch
                            && (now.saturating_sub(*at) < super::RELAY_AGAIN_MS || !caught_up)
                    }) {
                        self.metrics.duplicate_status_updates += 1;
                        return Ok(());
                    }
                    task.relayed = Some((StoredUuid::new(&status.uuid), epoch, now));
                }
                let framework_id = status.framework_id.clone();
                self.send_event(&framework_id, super::update_event(status));
            }
            Some(s) if !s.is_retired() => {
                // Failing over: the agent keeps re-sending until the framework is back.
            }
            _ => {
                // Nobody will ever acknowledge this (framework torn down or unknown): the
                // master does, so the agent can let the task go.
                let terminal = TaskState::try_from(status.state).is_ok_and(|s| s.is_terminal());
                self.send_agent(
                    &r.agent_id,
                    v1::agent_command::Command::Acknowledge(v1::agent_command::Acknowledge {
                        framework_id: status.framework_id.clone(),
                        task_id: status.task_id.clone(),
                        uuid: status.uuid.clone(),
                    }),
                );
                if terminal {
                    self.complete_task(&key);
                }
            }
        }
        Ok(())
    }

    /// A batch of one agent's updates, each judged as `status_update` judges one; only an
    /// unregistered agent fails the whole batch (it must register again first).
    pub(super) fn status_updates(
        &mut self,
        agent_id: &str,
        updates: Vec<v1::StatusUpdateRequest>,
    ) -> Result<Vec<v1::batch_response::Refused>, Error> {
        validate::id("agent id", agent_id)?;
        if self.agents.get(agent_id).is_none_or(|a| a.tx.is_none()) {
            return Err(Error::not_found(format!(
                "agent '{agent_id}' is not registered with this master; register again"
            )));
        }
        Ok(self.judge_each(updates, Self::status_update))
    }

    /// Whether an update with this uuid was received before and a newer one has followed.
    fn is_superseded(&self, key: &(String, String), uuid: &str) -> bool {
        match self.tasks.get(key) {
            Some(task) => task.statuses.superseded(uuid),
            None => self
                .completed_task(key)
                .is_some_and(|t| t.statuses.superseded(uuid)),
        }
    }

    pub(super) fn executor_message(
        &mut self,
        r: v1::ExecutorToFrameworkMessage,
    ) -> Result<(), Error> {
        validate::id("agent id", &r.agent_id)?;
        validate::id("framework id", &r.framework_id)?;
        if !self.agents.contains_key(&r.agent_id) {
            return Err(Error::not_found(format!(
                "unknown agent id '{}'",
                r.agent_id
            )));
        }
        if self
            .frameworks
            .get(&r.framework_id)
            .is_none_or(|f| f.status.is_retired())
        {
            return Err(Error::not_found(format!(
                "unknown framework id '{}'",
                r.framework_id
            )));
        }
        self.send_event(
            &r.framework_id,
            Event {
                event: Some(v1::event::Event::Message(v1::event::Message {
                    agent_id: r.agent_id,
                    executor_id: r.executor_id,
                    data: r.data,
                })),
            },
        );
        Ok(())
    }

    pub(super) fn executor_exited(&mut self, r: v1::ExecutorExitedRequest) -> Result<(), Error> {
        validate::id("agent id", &r.agent_id)?;
        validate::id("framework id", &r.framework_id)?;
        if !self.agents.contains_key(&r.agent_id) {
            return Err(Error::not_found(format!(
                "unknown agent id '{}'",
                r.agent_id
            )));
        }
        // Its resources are free again: they were booked for as long as it lived.
        self.release_executor(&r.agent_id, &r.framework_id, &r.executor_id);
        self.send_event(
            &r.framework_id,
            Event {
                event: Some(v1::event::Event::Failure(v1::event::Failure {
                    agent_id: r.agent_id,
                    executor_id: r.executor_id,
                    exit_code: r.exit_code,
                })),
            },
        );
        Ok(())
    }
}
