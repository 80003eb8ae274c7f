//! A simulated agent: it follows the agent protocol the real one follows (register with
//! its id and tasks, run what `RunTask` names, report every change through a status
//! update queue that re-sends the head until acknowledged, heartbeat), keeps a
//! "checkpoint" that survives its crashes, and records every update it generates so the
//! checks can compare them with what frameworks received.
//!
//! Owns only its own simulated state; it never touches the master except through the
//! messages the world delivers.

use std::collections::{BTreeMap, VecDeque};

use agora_master::actor::AgentStream;
use agora_proto::TaskState;
use agora_proto::v1::{self, agent_command::Command as AgentCmd};
use agora_resources::Resources;
use rand::Rng;
use rand::rngs::SmallRng;

/// Steps between re-sends of an unacknowledged update (the real agent: about 1 s).
pub const RESEND_STEPS: u64 = 10;
/// Steps between heartbeats.
pub const HEARTBEAT_STEPS: u64 = 50;

/// (framework id, task id).
pub type TaskKey = (String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    Up,
    /// Process dead until the step; its checkpoint survives.
    Crashed {
        until: u64,
    },
    /// Cut off from the master until the step: sends nothing, reads nothing.
    Partitioned {
        until: u64,
    },
    /// Told to shut down by the master: gone for good.
    Removed,
}

pub struct SimTask {
    pub info: v1::TaskInfo,
    pub framework: v1::FrameworkInfo,
    pub state: TaskState,
    pub ends_at: u64,
    pub fails: bool,
}

pub struct SimAgent {
    pub hostname: String,
    pub resources: Resources,
    pub id: Option<String>,
    pub stream: Option<AgentStream>,
    pub life: Life,
    /// A registration is in flight (its reply not read yet).
    pub registering: bool,
    /// Next step a (re-)registration may be tried.
    pub register_at: u64,
    pub tasks: BTreeMap<TaskKey, SimTask>,
    /// The status update manager: per task, updates not yet acknowledged, in order.
    pub updates: BTreeMap<TaskKey, VecDeque<v1::TaskStatus>>,
    pub resend_at: BTreeMap<TaskKey, u64>,
    pub last_heartbeat: u64,
    next_uuid: u64,
    /// Every update generated, by task, in order (uuids).
    pub generated: BTreeMap<TaskKey, Vec<String>>,
}

/// What an agent wants sent to the master this step.
pub enum Outgoing {
    Register(v1::RegisterAgentRequest),
    Updates {
        agent_id: String,
        updates: Vec<v1::StatusUpdateRequest>,
    },
    Heartbeat(String),
    StreamClosed {
        agent_id: String,
        epoch: u64,
    },
}

impl SimAgent {
    pub fn new(index: usize, resources: Resources) -> Self {
        SimAgent {
            hostname: format!("sim-agent-{index}"),
            resources,
            id: None,
            stream: None,
            life: Life::Up,
            registering: false,
            register_at: 0,
            tasks: BTreeMap::new(),
            updates: BTreeMap::new(),
            resend_at: BTreeMap::new(),
            last_heartbeat: 0,
            next_uuid: 0,
            generated: BTreeMap::new(),
        }
    }

    pub fn is_up(&self) -> bool {
        self.life == Life::Up
    }

    /// Unacknowledged updates in all.
    pub fn unacknowledged(&self) -> usize {
        self.updates.values().map(VecDeque::len).sum()
    }

    fn report(&mut self, key: &TaskKey, state: TaskState, step: u64) {
        self.next_uuid += 1;
        let uuid = format!("{}-u{}", self.hostname, self.next_uuid);
        let status = v1::TaskStatus {
            task_id: key.1.clone(),
            framework_id: key.0.clone(),
            agent_id: self.id.clone().unwrap_or_default(),
            state: state as i32,
            source: v1::StatusSource::SourceAgent as i32,
            uuid: uuid.clone(),
            ..Default::default()
        };
        self.generated.entry(key.clone()).or_default().push(uuid);
        let queue = self.updates.entry(key.clone()).or_default();
        if queue.is_empty() {
            self.resend_at.insert(key.clone(), step);
        }
        queue.push_back(status);
    }

    /// The process died: its stream is gone; tasks may die with it (`kill_tasks`).
    pub fn crash(&mut self, until: u64, kill_tasks: bool, step: u64) -> Option<Outgoing> {
        let closed = self.close_stream();
        self.life = Life::Crashed { until };
        self.registering = false;
        if kill_tasks {
            // Reported on restart, as the real agent does for tasks it cannot re-attach.
            let keys: Vec<TaskKey> = self
                .tasks
                .iter()
                .filter(|(_, t)| !t.state.is_terminal())
                .map(|(k, _)| k.clone())
                .collect();
            for key in keys {
                if let Some(t) = self.tasks.get_mut(&key) {
                    t.state = TaskState::Failed;
                }
                self.report(&key, TaskState::Failed, step);
            }
        }
        closed
    }

    fn close_stream(&mut self) -> Option<Outgoing> {
        let stream = self.stream.take()?;
        Some(Outgoing::StreamClosed {
            agent_id: stream.agent_id,
            epoch: stream.epoch,
        })
    }

    /// Back from a crash or a partition: register again with what it runs.
    pub fn recover(&mut self, step: u64) -> Option<Outgoing> {
        let closed = if matches!(self.life, Life::Partitioned { .. }) {
            // A partition long enough breaks the connection; a short one may not, but the
            // agent cannot tell which side noticed: it reconnects either way.
            self.close_stream()
        } else {
            None
        };
        self.life = Life::Up;
        self.register_at = step;
        closed
    }

    pub fn registration(&self) -> v1::RegisterAgentRequest {
        let mut frameworks: BTreeMap<String, v1::FrameworkInfo> = BTreeMap::new();
        let tasks = self
            .tasks
            .iter()
            .map(|((fw, _), t)| {
                frameworks.insert(fw.clone(), t.framework.clone());
                v1::RunningTask {
                    task: Some(t.info.clone()),
                    framework_id: fw.clone(),
                    state: t.state as i32,
                }
            })
            .collect();
        v1::RegisterAgentRequest {
            info: Some(v1::AgentInfo {
                id: self.id.clone().unwrap_or_default(),
                hostname: self.hostname.clone(),
                resources: self.resources.to_proto(),
                isolation: "process".to_string(),
                ..Default::default()
            }),
            tasks,
            frameworks: frameworks.into_values().collect(),
            ..Default::default()
        }
    }

    /// Reads the master's commands; returns whether the stream ended.
    pub fn read_commands(&mut self, step: u64, rng: &mut SmallRng) -> bool {
        let mut commands = Vec::new();
        let mut ended = false;
        if let Some(stream) = self.stream.as_mut() {
            loop {
                match stream.commands.try_recv() {
                    Ok(Ok(cmd)) => commands.push(*cmd),
                    Ok(Err(_)) => {
                        ended = true;
                        break;
                    }
                    Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                    Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                        ended = true;
                        break;
                    }
                }
            }
        }
        for cmd in commands {
            self.command(cmd, step, rng);
        }
        if ended {
            self.stream = None;
            self.register_at = step + 2;
        }
        ended
    }

    fn command(&mut self, cmd: v1::AgentCommand, step: u64, rng: &mut SmallRng) {
        match cmd.command {
            Some(AgentCmd::Registered(r)) => self.id = Some(r.agent_id),
            Some(AgentCmd::RunTask(run)) => {
                let (Some(framework), Some(task)) = (run.framework, run.task) else {
                    return;
                };
                let key = (framework.id.clone(), task.task_id.clone());
                if self.tasks.contains_key(&key) {
                    return;
                }
                let ends_at = step + rng.random_range(5..150);
                let fails = rng.random_bool(0.1);
                self.tasks.insert(
                    key.clone(),
                    SimTask {
                        info: task,
                        framework,
                        state: TaskState::Running,
                        ends_at,
                        fails,
                    },
                );
                self.report(&key, TaskState::Running, step);
            }
            Some(AgentCmd::KillTask(kill)) => {
                let key = (kill.framework_id, kill.task_id);
                self.kill(&key, step);
            }
            Some(AgentCmd::ShutdownFramework(s)) => {
                let keys: Vec<TaskKey> = self
                    .tasks
                    .keys()
                    .filter(|k| k.0 == s.framework_id)
                    .cloned()
                    .collect();
                for key in keys {
                    self.kill(&key, step);
                }
            }
            Some(AgentCmd::Acknowledge(ack)) => {
                let key = (ack.framework_id, ack.task_id);
                let Some(queue) = self.updates.get_mut(&key) else {
                    return;
                };
                if queue.front().is_some_and(|s| s.uuid == ack.uuid) {
                    queue.pop_front();
                    self.resend_at.insert(key.clone(), step);
                    if queue.is_empty() {
                        self.updates.remove(&key);
                        self.resend_at.remove(&key);
                        if self.tasks.get(&key).is_some_and(|t| t.state.is_terminal()) {
                            self.tasks.remove(&key);
                        }
                    }
                }
            }
            Some(AgentCmd::Shutdown(_)) => {
                self.life = Life::Removed;
                self.stream = None;
                self.tasks.clear();
                self.updates.clear();
                self.resend_at.clear();
            }
            _ => {}
        }
    }

    fn kill(&mut self, key: &TaskKey, step: u64) {
        if let Some(t) = self.tasks.get_mut(key)
            && !t.state.is_terminal()
        {
            t.state = TaskState::Killed;
            self.report(key, TaskState::Killed, step);
        }
    }

    /// Tasks whose time has come end.
    pub fn run_tasks(&mut self, step: u64) {
        let due: Vec<(TaskKey, bool)> = self
            .tasks
            .iter()
            .filter(|(_, t)| !t.state.is_terminal() && t.ends_at <= step)
            .map(|(k, t)| (k.clone(), t.fails))
            .collect();
        for (key, fails) in due {
            let state = if fails {
                TaskState::Failed
            } else {
                TaskState::Finished
            };
            if let Some(t) = self.tasks.get_mut(&key) {
                t.state = state;
            }
            self.report(&key, state, step);
        }
    }

    /// The updates due this step (each task's queue head, on its re-send timer) and a
    /// heartbeat when one is due.
    pub fn outgoing(&mut self, step: u64) -> Vec<Outgoing> {
        let mut out = Vec::new();
        let Some(agent_id) = self.stream.as_ref().map(|s| s.agent_id.clone()) else {
            return out;
        };
        let mut updates = Vec::new();
        for (key, queue) in &self.updates {
            let due = self.resend_at.get(key).is_none_or(|at| *at <= step);
            if let (true, Some(head)) = (due, queue.front()) {
                let mut status = head.clone();
                status.agent_id = agent_id.clone();
                updates.push(v1::StatusUpdateRequest {
                    agent_id: agent_id.clone(),
                    latest_state: self.tasks.get(key).map_or(status.state, |t| t.state as i32),
                    status: Some(status),
                });
            }
        }
        for key in self.updates.keys() {
            let due = self.resend_at.get(key).is_none_or(|at| *at <= step);
            if due {
                self.resend_at.insert(key.clone(), step + RESEND_STEPS);
            }
        }
        if !updates.is_empty() {
            out.push(Outgoing::Updates {
                agent_id: agent_id.clone(),
                updates,
            });
        }
        if step >= self.last_heartbeat + HEARTBEAT_STEPS {
            self.last_heartbeat = step;
            out.push(Outgoing::Heartbeat(agent_id));
        }
        out
    }

    /// Tasks not ended, for the end-of-run check.
    pub fn active_tasks(&self) -> usize {
        self.tasks
            .values()
            .filter(|t| !t.state.is_terminal())
            .count()
    }
}
