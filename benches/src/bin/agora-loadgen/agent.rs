//! An emulated agent: speaks the real agent protocol (`agora.v1.AgentApi`) to the master,
//! but runs no processes. It registers with configurable resources and attributes,
//! heartbeats at the interval REGISTERED gives, "runs" each task it is sent (STARTING,
//! RUNNING, healthy when it has a health check, then FINISHED after the task's duration,
//! or KILLED when told), sends each
//! task's oldest unacknowledged update and re-sends it with backoff (0.5 s doubling to
//! 10 s; not before 5 s once the master took it, see `TAKEN_RESEND`) until the ACKNOWLEDGE
//! command comes back, and after losing the master re-registers with its id, the tasks it
//! runs and their frameworks.
//!
//! Like agora-agent's status update manager, at most one send of a task's update is in
//! flight: a re-send falls due only after the previous send returned. Updates that fall due
//! are gathered and sent together in one `UpdateStatuses` call, with at most one such call
//! in flight per agent: what falls due meanwhile goes in the next call, so batches grow
//! exactly when the master is slow to answer (one unary call per update cost the master
//! more in call handling than in the updates themselves). The call's timeout is 30 s, not
//! the agent's 5 s: thousands of emulated agents share two threads and a few connections,
//! so on a busy machine a 5 s timeout measured the harness's own backlog and every timeout
//! added a re-send.
//!
//! Thousands of these share a handful of HTTP/2 connections: the `Channel` is handed in.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use agora_proto::TaskState;
use agora_proto::v1::{self, agent_api_client::AgentApiClient, agent_command::Command as Cmd};
use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tonic::transport::Channel;
use tonic::{Code, Streaming};

use crate::shared::Shared;

/// Label carrying a task's run time, set by emulated frameworks.
pub const DURATION_LABEL: &str = "loadgen.duration_ms";

const RESEND_FIRST: Duration = Duration::from_millis(500);
const RESEND_MAX: Duration = Duration::from_secs(10);
const RPC_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of one status update call (see the module doc for why not the agent's 5 s).
const UPDATE_TIMEOUT: Duration = RPC_TIMEOUT;
/// Most updates in one `UpdateStatuses` call.
const MAX_BATCH: usize = 1_000;
/// Earliest re-send of an update the master took: within this long the master relays the
/// same update to the same subscription only once anyway (its RELAY_AGAIN_MS), so sooner
/// re-sends are pure load; under a burst the 0.5 s backoff re-sent most updates five times
/// (1.2 million re-sends for 314,000 tasks). Refused or failed sends keep the backoff.
const TAKEN_RESEND: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct AgentSpec {
    pub index: usize,
    pub hostname: String,
    pub resources: Vec<v1::Resource>,
    pub attributes: Vec<v1::Attribute>,
    /// Run time of tasks that carry no duration label.
    pub default_task: Duration,
    /// Longest wait between registration attempts.
    pub reconnect_max: Duration,
    /// Report RUNNING without STARTING first.
    pub skip_starting: bool,
    /// First registration not before this.
    pub start_at: Instant,
}

type Key = (String, String);

struct TaskRec {
    info: v1::TaskInfo,
    framework_id: String,
    /// The latest state the agent knows.
    state: TaskState,
    /// Updates not yet acknowledged, oldest first; only the first is in flight.
    pending: VecDeque<v1::TaskStatus>,
    backoff: Duration,
    retry_at: Option<Instant>,
    /// Whether the head update has been sent at least once.
    head_sent: bool,
    /// A send of the head update has not returned yet.
    in_flight: bool,
    /// The head update waits in `Agent::due` for the next call.
    queued: bool,
}

#[derive(Clone, Debug)]
enum Timer {
    End(Key),
    Retry(Key),
}

/// Things spawned RPCs report back, tagged with the session they belong to.
enum Note {
    NotRegistered(u64),
    /// A status update call of this session returned (or timed out); it carried these
    /// tasks' updates.
    BatchDone {
        session: u64,
        sent: Vec<(Key, String)>,
        /// Per item of `sent`: what became of it.
        outcomes: Vec<Outcome>,
    },
}

/// What the master did with one update of a batch.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Outcome {
    /// Taken: it will be relayed; no re-send before `TAKEN_RESEND`.
    Taken,
    /// Refused for now because its framework is behind (UNAVAILABLE): flow control, so
    /// re-sent after the first backoff step again, not a growing one (a growing backoff
    /// left updates waiting up to 10 s after the framework had caught up).
    Deferred,
    /// Refused otherwise, or the call failed: the backoff goes on.
    Failed,
}

enum SessionEnd {
    Stop,
    Lost,
    Shutdown,
}

struct Agent {
    spec: AgentSpec,
    shared: Arc<Shared>,
    client: AgentApiClient<Channel>,
    id: String,
    session: u64,
    tasks: HashMap<Key, TaskRec>,
    frameworks: HashMap<String, v1::FrameworkInfo>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    timer_kinds: HashMap<u64, Timer>,
    next_timer: u64,
    notes_tx: mpsc::UnboundedSender<Note>,
    heartbeat_interval: Duration,
    /// Tasks whose head update goes in the next call, in the order they fell due.
    due: Vec<Key>,
    /// An `UpdateStatuses` call of this session has not returned yet.
    batch_in_flight: bool,
}

/// Start an emulated agent on the runtime; it ends when the run stops or the master shuts
/// it down.
pub fn spawn(
    spec: AgentSpec,
    channel: Channel,
    shared: Arc<Shared>,
) -> tokio::task::JoinHandle<()> {
    let (notes_tx, notes_rx) = mpsc::unbounded_channel();
    let agent = Agent {
        spec,
        shared,
        client: AgentApiClient::new(channel).max_decoding_message_size(64 << 20),
        id: String::new(),
        session: 0,
        tasks: HashMap::new(),
        frameworks: HashMap::new(),
        timers: BinaryHeap::new(),
        timer_kinds: HashMap::new(),
        next_timer: 0,
        notes_tx,
        heartbeat_interval: Duration::from_secs(15),
        due: Vec::new(),
        batch_in_flight: false,
    };
    tokio::spawn(agent.run(notes_rx))
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn jitter(max: Duration) -> Duration {
    let ms = max.as_millis().max(1) as u64;
    Duration::from_millis(rand::rng().random_range(0..ms))
}

impl Agent {
    async fn run(mut self, mut notes: mpsc::UnboundedReceiver<Note>) {
        let mut stop = self.shared.stop.subscribe();
        tokio::select! {
            _ = sleep_until(self.spec.start_at) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let mut backoff = Duration::from_millis(200);
        loop {
            if self.shared.stopped() {
                return;
            }
            match self.register().await {
                Ok(Some(stream)) => {
                    backoff = Duration::from_millis(200);
                    match self.session(stream, &mut notes).await {
                        SessionEnd::Stop | SessionEnd::Shutdown => return,
                        SessionEnd::Lost => {
                            self.shared
                                .counters
                                .agent_streams_lost
                                .fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Ok(None) => return,
                Err(s) => {
                    self.shared.note_error("agent register", &s);
                    self.shared
                        .counters
                        .agent_register_errors
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            // Wait before trying again; tasks keep running (and ending) meanwhile.
            let until = Instant::now() + jitter(backoff);
            backoff = (backoff * 2).min(self.spec.reconnect_max);
            loop {
                let next = self.timers.peek().map(|r| r.0.0).filter(|t| *t < until);
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = sleep_until(next.unwrap_or(until)) => {
                        if next.is_none() {
                            break;
                        }
                        self.fire_timers();
                    }
                }
            }
        }
    }

    /// Register (or re-register with id, tasks and frameworks). `Ok(None)`: the master
    /// shut this agent down.
    async fn register(&mut self) -> Result<Option<Streaming<v1::AgentCommand>>, tonic::Status> {
        let reregister = !self.id.is_empty();
        let request = v1::RegisterAgentRequest {
            info: Some(v1::AgentInfo {
                id: self.id.clone(),
                hostname: self.spec.hostname.clone(),
                address: format!("{}:5051", self.spec.hostname),
                resources: self.spec.resources.clone(),
                attributes: self.spec.attributes.clone(),
                isolation: "emulated".into(),
            }),
            tasks: self
                .tasks
                .values()
                .filter(|t| !t.state.is_terminal())
                .map(|t| v1::RunningTask {
                    task: Some(t.info.clone()),
                    framework_id: t.framework_id.clone(),
                    state: t.state as i32,
                })
                .collect(),
            frameworks: self.frameworks.values().cloned().collect(),
            version: "agora-loadgen".into(),
            secret: String::new(),
        };
        let mut stream = tokio::time::timeout(RPC_TIMEOUT, self.client.register(request))
            .await
            .map_err(|_| tonic::Status::deadline_exceeded("register"))??
            .into_inner();
        let first = tokio::time::timeout(RPC_TIMEOUT, stream.message())
            .await
            .map_err(|_| tonic::Status::deadline_exceeded("registered"))??;
        match first.and_then(|c| c.command) {
            Some(Cmd::Registered(r)) => {
                let now = Instant::now();
                self.id = r.agent_id;
                self.session += 1;
                let c = &self.shared.counters;
                if reregister {
                    c.agent_reregistrations.fetch_add(1, Ordering::Relaxed);
                } else {
                    c.agent_registrations.fetch_add(1, Ordering::Relaxed);
                }
                self.shared
                    .agent_registered(&r.master_id, self.spec.index, now.into_std());
                self.heartbeat_interval =
                    Duration::from_secs_f64(r.heartbeat_interval_seconds.clamp(0.05, 3600.0));
                // A new master knows none of our pending updates: send them now. A call of
                // the previous session may still be out; it no longer holds the next back.
                self.batch_in_flight = false;
                let keys: Vec<Key> = self
                    .tasks
                    .iter()
                    .filter(|(_, t)| !t.pending.is_empty())
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in keys {
                    if let Some(t) = self.tasks.get_mut(&k) {
                        t.backoff = RESEND_FIRST;
                        // Sends of the previous session no longer count.
                        t.in_flight = false;
                    }
                    self.send_head(&k);
                }
                Ok(Some(stream))
            }
            Some(Cmd::Shutdown(_)) => Ok(None),
            other => Err(tonic::Status::internal(format!(
                "first command is not REGISTERED: {other:?}"
            ))),
        }
    }
}

impl Agent {
    async fn session(
        &mut self,
        mut stream: Streaming<v1::AgentCommand>,
        notes: &mut mpsc::UnboundedReceiver<Note>,
    ) -> SessionEnd {
        let mut stop = self.shared.stop.subscribe();
        let interval = self.heartbeat_interval;
        // Spread heartbeats over the interval so thousands of agents do not beat at once.
        let mut hb = tokio::time::interval_at(Instant::now() + jitter(interval), interval);
        hb.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.flush();
            let next = self.timers.peek().map(|r| r.0.0);
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return SessionEnd::Stop,
                msg = stream.message() => match msg {
                    Ok(Some(cmd)) => {
                        if let Some(end) = self.command(cmd) {
                            return end;
                        }
                    }
                    Ok(None) => {
                        self.shared.note_error("agent stream", &tonic::Status::ok("ended by the master"));
                        return SessionEnd::Lost;
                    }
                    Err(s) => {
                        self.shared.note_error("agent stream", &s);
                        return SessionEnd::Lost;
                    }
                },
                _ = async {
                    match next {
                        Some(t) => sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                } => self.fire_timers(),
                _ = hb.tick() => self.heartbeat(),
                Some(note) = notes.recv() => match note {
                    Note::NotRegistered(s) if s == self.session => return SessionEnd::Lost,
                    Note::NotRegistered(_) => {}
                    Note::BatchDone { session, sent, outcomes } if session == self.session => {
                        self.batch_in_flight = false;
                        for ((key, uuid), outcome) in sent.into_iter().zip(outcomes) {
                            self.send_done(&key, &uuid, outcome);
                        }
                    }
                    Note::BatchDone { .. } => {}
                },
            }
        }
    }

    fn heartbeat(&self) {
        let mut client = self.client.clone();
        let request = v1::AgentHeartbeatRequest {
            agent_id: self.id.clone(),
        };
        let shared = self.shared.clone();
        let notes = self.notes_tx.clone();
        let session = self.session;
        tokio::spawn(async move {
            match tokio::time::timeout(RPC_TIMEOUT, client.heartbeat(request)).await {
                Ok(Ok(_)) => {
                    shared.counters.heartbeats.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Err(s)) => {
                    shared.note_error("heartbeat", &s);
                    shared
                        .counters
                        .heartbeat_errors
                        .fetch_add(1, Ordering::Relaxed);
                    if s.code() == Code::NotFound {
                        let _ = notes.send(Note::NotRegistered(session));
                    }
                }
                Err(_) => {
                    shared.note_error(
                        "heartbeat",
                        &tonic::Status::deadline_exceeded("harness timeout"),
                    );
                    shared
                        .counters
                        .heartbeat_errors
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }

    /// Handle one command; `Some` ends the session.
    fn command(&mut self, cmd: v1::AgentCommand) -> Option<SessionEnd> {
        let c = &self.shared.counters;
        match cmd.command? {
            Cmd::RunTask(r) => {
                c.run_task.fetch_add(1, Ordering::Relaxed);
                let (Some(fw), Some(task)) = (r.framework, r.task) else {
                    return None;
                };
                self.run_task(fw, task);
            }
            Cmd::KillTask(k) => {
                c.kill_task.fetch_add(1, Ordering::Relaxed);
                self.kill_task(k.framework_id, k.task_id);
            }
            Cmd::ShutdownFramework(s) => {
                let keys: Vec<Key> = self
                    .tasks
                    .keys()
                    .filter(|k| k.0 == s.framework_id)
                    .cloned()
                    .collect();
                for k in keys {
                    self.kill_task(k.0, k.1);
                }
            }
            Cmd::Acknowledge(a) => {
                c.acks_to_agents.fetch_add(1, Ordering::Relaxed);
                self.acknowledge((a.framework_id, a.task_id), &a.uuid);
            }
            Cmd::Shutdown(_) => return Some(SessionEnd::Shutdown),
            // Nothing of these concerns an agent without executors.
            Cmd::Registered(_)
            | Cmd::RunTaskGroup(_)
            | Cmd::ShutdownExecutor(_)
            | Cmd::FrameworkMessage(_)
            | Cmd::ApplyOperation(_)
            | Cmd::CheckpointResources(_)
            | Cmd::ReconcileTasks(_) => {}
        }
        None
    }

    fn status(
        &self,
        key: &Key,
        state: TaskState,
        reason: v1::StatusReason,
        message: &str,
    ) -> v1::TaskStatus {
        v1::TaskStatus {
            task_id: key.1.clone(),
            framework_id: key.0.clone(),
            agent_id: self.id.clone(),
            state: state as i32,
            reason: reason as i32,
            message: message.to_string(),
            source: v1::StatusSource::SourceAgent as i32,
            timestamp_ms: unix_ms(),
            uuid: uuid::Uuid::new_v4().to_string(),
            exit_code: (state == TaskState::Finished).then_some(0),
            ..v1::TaskStatus::default()
        }
    }

    fn run_task(&mut self, framework: v1::FrameworkInfo, task: v1::TaskInfo) {
        let key = (framework.id.clone(), task.task_id.clone());
        if self.tasks.contains_key(&key) {
            return;
        }
        let duration = task
            .labels
            .iter()
            .find(|l| l.key == DURATION_LABEL)
            .and_then(|l| l.value.parse::<u64>().ok())
            .map_or(self.spec.default_task, Duration::from_millis);
        self.frameworks.insert(framework.id.clone(), framework);
        let starting = self.status(&key, TaskState::Starting, v1::StatusReason::Unspecified, "");
        // No process to wait for: the task runs at once, and a task with a health check
        // passes it at once (RUNNING carries the result, as the real agent's first one).
        let mut running = self.status(&key, TaskState::Running, v1::StatusReason::Unspecified, "");
        if task.health_check.is_some() {
            running.healthy = Some(true);
        }
        self.tasks.insert(
            key.clone(),
            TaskRec {
                info: task,
                framework_id: key.0.clone(),
                state: TaskState::Running,
                pending: if self.spec.skip_starting {
                    VecDeque::from([running])
                } else {
                    VecDeque::from([starting, running])
                },
                backoff: RESEND_FIRST,
                retry_at: None,
                head_sent: false,
                in_flight: false,
                queued: false,
            },
        );
        self.shared.task_started(key.clone());
        self.add_timer(Instant::now() + duration, Timer::End(key.clone()));
        self.send_head(&key);
    }

    fn kill_task(&mut self, framework_id: String, task_id: String) {
        let key = (framework_id, task_id);
        match self.tasks.get(&key) {
            Some(t) if t.state.is_terminal() => {}
            Some(_) => self.end_task(
                &key,
                TaskState::Killed,
                v1::StatusReason::KilledByFramework,
                "killed by the framework",
            ),
            None => {
                self.shared
                    .counters
                    .kills_of_unknown
                    .fetch_add(1, Ordering::Relaxed);
                let lost = self.status(
                    &key,
                    TaskState::Lost,
                    v1::StatusReason::TaskUnknown,
                    "the agent does not know this task",
                );
                self.tasks.insert(
                    key.clone(),
                    TaskRec {
                        info: v1::TaskInfo {
                            task_id: key.1.clone(),
                            ..v1::TaskInfo::default()
                        },
                        framework_id: key.0.clone(),
                        state: TaskState::Lost,
                        pending: VecDeque::from([lost]),
                        backoff: RESEND_FIRST,
                        retry_at: None,
                        head_sent: false,
                        in_flight: false,
                        queued: false,
                    },
                );
                self.send_head(&key);
            }
        }
    }

    /// The task reaches a terminal state: its resources are free from now on.
    fn end_task(&mut self, key: &Key, state: TaskState, reason: v1::StatusReason, message: &str) {
        let status = self.status(key, state, reason, message);
        let Some(t) = self.tasks.get_mut(key) else {
            return;
        };
        t.state = state;
        t.pending.push_back(status);
        let send_now = t.pending.len() == 1;
        self.shared
            .task_ended(key, &self.id, std::time::Instant::now());
        if send_now {
            t.backoff = RESEND_FIRST;
            self.send_head(key);
        }
    }

    fn acknowledge(&mut self, key: Key, uuid: &str) {
        let Some(t) = self.tasks.get_mut(&key) else {
            return;
        };
        if t.pending.front().is_none_or(|h| h.uuid != uuid) {
            return;
        }
        t.pending.pop_front();
        t.retry_at = None;
        t.head_sent = false;
        t.in_flight = false;
        if t.pending.is_empty() {
            if t.state.is_terminal() {
                self.tasks.remove(&key);
            }
            return;
        }
        t.backoff = RESEND_FIRST;
        self.send_head(&key);
    }

    /// Mark a task's oldest unacknowledged update for the next call (`flush`).
    fn send_head(&mut self, key: &Key) {
        let Some(t) = self.tasks.get_mut(key) else {
            return;
        };
        if t.pending.is_empty() || t.queued {
            return;
        }
        t.queued = true;
        self.due.push(key.clone());
    }

    /// Send the due head updates in one call, unless a call is still out; arm each one's
    /// retry.
    fn flush(&mut self) {
        if self.batch_in_flight || self.due.is_empty() {
            return;
        }
        let take = self.due.len().min(MAX_BATCH);
        let keys: Vec<Key> = self.due.drain(..take).collect();
        let mut updates = Vec::with_capacity(keys.len());
        let mut sent = Vec::with_capacity(keys.len());
        let now = Instant::now();
        for key in keys {
            let Some(t) = self.tasks.get_mut(&key) else {
                continue;
            };
            t.queued = false;
            let Some(head) = t.pending.front() else {
                continue;
            };
            let mut status = head.clone();
            // The id may have been unknown when the update was made (never, for emulated
            // agents, but keep the master's check satisfied).
            status.agent_id.clone_from(&self.id);
            let c = &self.shared.counters;
            if t.head_sent {
                c.update_resends.fetch_add(1, Ordering::Relaxed);
            }
            c.updates_sent.fetch_add(1, Ordering::Relaxed);
            t.head_sent = true;
            t.in_flight = true;
            let uuid = head.uuid.clone();
            updates.push(v1::StatusUpdateRequest {
                agent_id: String::new(),
                status: Some(status),
                latest_state: t.state as i32,
            });
            let at = now + t.backoff;
            t.retry_at = Some(at);
            t.backoff = (t.backoff * 2).min(RESEND_MAX);
            self.add_timer(at, Timer::Retry(key.clone()));
            sent.push((key, uuid));
        }
        if updates.is_empty() {
            return;
        }
        self.batch_in_flight = true;
        let request = v1::StatusUpdateBatch {
            agent_id: self.id.clone(),
            updates,
        };
        let mut client = self.client.clone();
        let shared = self.shared.clone();
        let notes = self.notes_tx.clone();
        let session = self.session;
        tokio::spawn(async move {
            let result =
                tokio::time::timeout(UPDATE_TIMEOUT, client.update_statuses(request)).await;
            let c = &shared.counters;
            let mut outcomes = vec![Outcome::Failed; sent.len()];
            let mut not_registered = false;
            match result {
                Ok(Ok(r)) => {
                    outcomes.fill(Outcome::Taken);
                    let mut errors = 0;
                    for x in r.into_inner().refused {
                        // Deferred updates (their framework is behind) are flow control,
                        // not errors: they go again at their retry.
                        let deferred = x.code == Code::Unavailable as i32;
                        if let Some(o) = outcomes.get_mut(x.index as usize) {
                            *o = if deferred {
                                Outcome::Deferred
                            } else {
                                Outcome::Failed
                            };
                        }
                        if deferred {
                            c.updates_deferred.fetch_add(1, Ordering::Relaxed);
                        } else {
                            if errors == 0 {
                                let s = tonic::Status::new(Code::from(x.code), x.message);
                                shared.note_error("status update", &s);
                            }
                            errors += 1;
                        }
                    }
                    c.update_errors.fetch_add(errors, Ordering::Relaxed);
                }
                Ok(Err(s)) => {
                    shared.note_error("status update", &s);
                    c.update_errors.fetch_add(1, Ordering::Relaxed);
                    not_registered =
                        s.code() == Code::NotFound && s.message().contains("register again");
                }
                Err(_) => {
                    shared.note_error(
                        "status update",
                        &tonic::Status::deadline_exceeded("harness timeout"),
                    );
                    c.update_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            let _ = notes.send(Note::BatchDone {
                session,
                sent,
                outcomes,
            });
            if not_registered {
                let _ = notes.send(Note::NotRegistered(session));
            }
        });
    }

    /// A send of `key`'s update `uuid` returned: a re-send that fell due meanwhile goes now;
    /// see `Outcome` for the exceptions.
    fn send_done(&mut self, key: &Key, uuid: &str, outcome: Outcome) {
        let Some(t) = self.tasks.get_mut(key) else {
            return;
        };
        if !t.in_flight || t.pending.front().is_none_or(|h| h.uuid != uuid) {
            return;
        }
        t.in_flight = false;
        match outcome {
            Outcome::Taken => {
                let earliest = Instant::now() + TAKEN_RESEND;
                t.retry_at = Some(t.retry_at.map_or(earliest, |at| at.max(earliest)));
            }
            Outcome::Deferred => {
                t.backoff = RESEND_FIRST;
                t.retry_at = Some(Instant::now() + RESEND_FIRST);
            }
            Outcome::Failed => {}
        }
        if let Some(at) = t.retry_at {
            // Re-arm at the same instant, so `fire_timers` recognises it as the live retry.
            self.add_timer(at, Timer::Retry(key.clone()));
        }
    }

    fn add_timer(&mut self, at: Instant, timer: Timer) {
        self.next_timer += 1;
        self.timers.push(Reverse((at, self.next_timer)));
        self.timer_kinds.insert(self.next_timer, timer);
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, seq))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(timer) = self.timer_kinds.remove(&seq) else {
                continue;
            };
            match timer {
                Timer::End(key) => {
                    if self.tasks.get(&key).is_some_and(|t| !t.state.is_terminal()) {
                        self.end_task(
                            &key,
                            TaskState::Finished,
                            v1::StatusReason::CommandExited,
                            "command exited with status 0",
                        );
                    }
                }
                Timer::Retry(key) => {
                    // Only the retry armed last for this head counts, and only once the
                    // previous send returned (`send_done` re-arms it then).
                    if self
                        .tasks
                        .get(&key)
                        .is_some_and(|t| t.retry_at == Some(at) && !t.in_flight)
                    {
                        self.send_head(&key);
                    }
                }
            }
        }
    }
}
