//! The master actor: the one owner of the master's state (agents, frameworks, offers,
//! tasks, the allocator). gRPC and HTTP handlers send it `Command`s over a bounded channel
//! and await a reply; it processes them strictly in order, so no lock guards any of this.
//!
//! It must never block (no file or network I/O inside a handler beyond a non-blocking
//! channel send) and never panic on input: every call is validated first and answered with
//! a precise [`Error`](crate::service::Error), and a failed call changes nothing.
//!
//! Replies after commit: the registry changes a batch of commands makes are written in
//! one `Registry::append` after the batch (`commit`), and every reply from the batch's
//! first registry change on is held until that write has resolved. A failed write fails
//! those calls (UNAVAILABLE, naming the registry error) and stops the actor: its memory
//! holds changes the registry does not, and a restarted master recovers from what is
//! durable (the Mesos master does the same when its registrar fails).

mod agents;
mod events;
mod executors;
mod frameworks;
mod maintenance;
mod operations;
pub mod queries;
#[cfg(test)]
mod queue_tests;
#[cfg(test)]
mod removal_tests;
#[cfg(test)]
mod scenario_tests;
mod snapshot;
pub(crate) mod usage;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use crate::service::Error;
use agora_proto::TaskState;
use agora_proto::v1::{self, AgentCommand, Event, FrameworkInfo, TaskStatus};
use agora_resources::{Attributes, Resources};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::allocator::{self, Allocator, AllocatorConfig};
use crate::clock::{Clock, Millis};
use crate::config::MasterConfig;
use crate::metrics::Metrics;
use crate::registry::{Registry, RegistryError, RegistryOp, RegistryState};
use crate::state::agent::{AgentStatus, Maintenance};
use crate::state::framework::FrameworkStatus;
use crate::state::offer::{OfferEvent, OfferState};
use crate::state::stored::{
    StatusLog, StoredAgentInfo, StoredResources, StoredTaskInfo, StoredUuid,
};

pub use operations::OpKind;
pub use queries::Query;
pub use snapshot::MetricsSnapshot;

/// Capacity of the actor's command queue; senders wait when it is full (backpressure).
pub const COMMAND_QUEUE_CAPACITY: usize = 65_536;
/// Commands handled before an allocation cycle runs under load.
const BATCH: usize = 512;

type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// A reply held until the batch's registry write resolves; called with the error the
/// write failed with, if it did.
type Deferred = Box<dyn FnOnce(Option<&Error>) + Send>;

/// A framework's event stream as handed to the gRPC layer.
pub struct Subscription {
    pub framework_id: String,
    pub epoch: u64,
    pub events: mpsc::Receiver<Result<Event, Error>>,
}

/// An agent's queue of commands. Boxed: the queue's slots are allocated ahead in blocks
/// of 32, and an `AgentCommand` is 944 bytes (a `RunTask` holds a `TaskInfo` and a
/// `FrameworkInfo` inline); a box is 8.
pub type AgentCommands = mpsc::Receiver<Result<Box<AgentCommand>, Error>>;

/// An agent's command stream as handed to the gRPC layer.
pub struct AgentStream {
    pub agent_id: String,
    pub epoch: u64,
    pub commands: AgentCommands,
}

/// Scheduler calls answered with success or an error only (`Command::Scheduler`); the
/// calls with a reply of their own are commands of their own (`Accept`, `AcceptBatch`,
/// `AcknowledgeBatch`).
#[derive(Debug)]
pub enum SchedulerCall {
    Teardown(v1::TeardownRequest),
    Decline(v1::DeclineRequest),
    Revive(v1::ReviveRequest),
    Suppress(v1::SuppressRequest),
    Kill(v1::KillRequest),
    Shutdown(v1::ShutdownRequest),
    Acknowledge(v1::AcknowledgeRequest),
    Reconcile(v1::ReconcileRequest),
    Message(v1::MessageRequest),
    UpdateFramework(Box<v1::UpdateFrameworkRequest>),
}

/// Each accept's outcome, by its index in the caller's request.
pub type AcceptOutcomes = Vec<(usize, Result<v1::AcceptResponse, Error>)>;

pub enum Command {
    Subscribe {
        request: v1::SubscribeRequest,
        reply: Reply<Subscription>,
    },
    Scheduler {
        call: SchedulerCall,
        reply: Reply<()>,
    },
    Accept {
        request: Box<v1::AcceptRequest>,
        reply: Reply<v1::AcceptResponse>,
    },
    /// Accepts of one framework (already checked against the ACLs), with their index in
    /// the caller's request; each is judged as `Accept` judges one.
    AcceptBatch {
        items: Vec<(usize, v1::AcceptRequest)>,
        reply: Reply<AcceptOutcomes>,
    },
    /// Replied with the refused items.
    AcknowledgeBatch {
        request: v1::AcknowledgeBatchRequest,
        reply: Reply<Vec<v1::batch_response::Refused>>,
    },
    FrameworkStreamClosed {
        framework_id: String,
        epoch: u64,
    },
    RegisterAgent {
        request: v1::RegisterAgentRequest,
        reply: Reply<AgentStream>,
    },
    AgentStreamClosed {
        agent_id: String,
        epoch: u64,
    },
    AgentHeartbeat {
        agent_id: String,
        reply: Reply<()>,
    },
    StatusUpdate {
        request: v1::StatusUpdateRequest,
        reply: Reply<()>,
    },
    /// A batch of one agent's updates (each update names the batch's agent).
    StatusUpdates {
        agent_id: String,
        updates: Vec<v1::StatusUpdateRequest>,
        reply: Reply<Vec<v1::batch_response::Refused>>,
    },
    ExecutorMessage {
        request: v1::ExecutorToFrameworkMessage,
        reply: Reply<()>,
    },
    ExecutorExited {
        request: v1::ExecutorExitedRequest,
        reply: Reply<()>,
    },
    State {
        reply: oneshot::Sender<v1::ClusterState>,
    },
    Metrics {
        reply: oneshot::Sender<MetricsSnapshot>,
    },
    /// Liveness: answered with the master id, by the actor (a wedged actor times out).
    Ping {
        reply: oneshot::Sender<String>,
    },
    UpdateUsage {
        report: v1::UsageReport,
        reply: Reply<()>,
    },
    Usage {
        reply: oneshot::Sender<v1::UsageResponse>,
    },
    UpdateWeights {
        weights: Vec<(String, f64)>,
        reply: Reply<()>,
    },
    OperatorTeardown {
        framework_id: String,
        reply: Reply<()>,
    },
    /// An operator's kill of one task: as the framework's KILL, without needing the
    /// framework to be subscribed (an operator cleans up after absent frameworks too).
    OperatorKill {
        framework_id: String,
        task_id: String,
        reply: Reply<()>,
    },
    /// Shutdown: end every framework and agent stream without an ERROR event, so
    /// frameworks and agents treat it as a lost master and fail over or reconnect.
    CloseStreams {
        reply: oneshot::Sender<()>,
    },
    SetQuota {
        role: String,
        guarantee: Resources,
        limit: Option<Resources>,
        force: bool,
        reply: Reply<()>,
    },
    RemoveQuota {
        role: String,
        reply: Reply<()>,
    },
    Quotas {
        reply: oneshot::Sender<Vec<allocator::QuotaStatus>>,
    },
    Explain {
        target: allocator::ExplainTarget,
        reply: Reply<allocator::Explanation>,
    },
    /// Operator event stream: a snapshot, then every change.
    /// Agent maintenance by an operator.
    Maintenance {
        op: MaintenanceOp,
        reply: Reply<()>,
    },
    /// Subscribe to operator events; the first is the whole state when `snapshot`.
    SubscribeEvents {
        snapshot: bool,
        reply: oneshot::Sender<mpsc::Receiver<Result<v1::OperatorEvent, Error>>>,
    },
    /// An operator's RESERVE / UNRESERVE / CREATE / DESTROY on an agent.
    ResourceOp {
        agent_id: String,
        kind: OpKind,
        resources: Vec<v1::Resource>,
        reply: Reply<()>,
    },
    /// A narrow read (one framework, one agent, roles, tasks by filter): `queries.rs`.
    Query(Query),
}

#[derive(Debug)]
pub enum MaintenanceOp {
    Deactivate {
        agent_id: String,
    },
    Reactivate {
        agent_id: String,
    },
    Drain {
        agent_id: String,
        grace_period_seconds: f64,
        mark_gone: bool,
    },
    MarkGone {
        agent_id: String,
    },
}

/// Cheap, cloneable way to talk to the actor.
#[derive(Clone)]
pub struct MasterHandle {
    tx: mpsc::Sender<Command>,
}

impl MasterHandle {
    /// Send a command built around a reply channel and await the answer.
    pub async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| Error::unavailable("master is shutting down"))?;
        rx.await
            .map_err(|_| Error::unavailable("master is shutting down"))
    }

    /// Fire-and-forget, for notifications from `Drop` where awaiting is impossible.
    pub fn notify(&self, cmd: Command) {
        match self.tx.try_send(cmd) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(cmd)) => {
                let tx = self.tx.clone();
                // The notification must not be lost: a stream closing unnoticed would leave
                // a framework or agent marked connected forever.
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(async move {
                        let _ = tx.send(cmd).await;
                    });
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

pub(crate) struct AgentEntry {
    pub info: StoredAgentInfo,
    /// Kept at its exact size: a bag built entry by entry has room for more.
    pub total: Resources,
    pub status: AgentStatus,
    pub tx: Option<mpsc::Sender<Result<Box<AgentCommand>, Error>>>,
    pub epoch: u64,
    pub registered_at: Millis,
    pub last_heartbeat: Millis,
    /// (framework, task) keys of tasks on this agent.
    pub tasks: HashSet<(String, String)>,
    pub offers: HashSet<String>,
    /// (framework, executor id) of the custom executors on this agent.
    pub executors: HashSet<(String, String)>,
}

pub(crate) struct FrameworkEntry {
    pub info: FrameworkInfo,
    pub status: FrameworkStatus,
    pub tx: Option<mpsc::Sender<Result<Event, Error>>>,
    pub epoch: u64,
    pub registered_at: Millis,
    pub disconnected_at: Option<Millis>,
    pub offers: HashSet<String>,
    pub tasks: HashSet<String>,
}

impl AgentEntry {
    /// An agent known only by id (and hostname) from the registry: recovering or removed.
    fn placeholder(id: &str, hostname: &str, status: AgentStatus, now: Millis) -> AgentEntry {
        AgentEntry {
            info: v1::AgentInfo {
                id: id.to_string(),
                hostname: hostname.to_string(),
                ..v1::AgentInfo::default()
            }
            .into(),
            total: Resources::new(),
            status,
            tx: None,
            epoch: 0,
            registered_at: now,
            last_heartbeat: now,
            tasks: HashSet::new(),
            offers: HashSet::new(),
            executors: HashSet::new(),
        }
    }
}

impl FrameworkEntry {
    /// A framework known only by id from the registry (a retired one).
    fn placeholder(id: &str, status: FrameworkStatus, now: Millis) -> FrameworkEntry {
        FrameworkEntry {
            info: FrameworkInfo {
                id: id.to_string(),
                ..FrameworkInfo::default()
            },
            status,
            tx: None,
            epoch: 0,
            registered_at: now,
            disconnected_at: None,
            offers: HashSet::new(),
            tasks: HashSet::new(),
        }
    }
}

pub(crate) struct OfferEntry {
    pub offer: v1::Offer,
    pub resources: Resources,
    pub state: OfferState,
    pub created_at: Millis,
}

#[derive(Clone)]
pub(crate) struct TaskEntry {
    pub info: StoredTaskInfo,
    pub framework_id: String,
    pub agent_id: String,
    pub role: String,
    pub resources: StoredResources,
    pub state: TaskState,
    /// Whether the allocator counts this task's resources as used.
    pub booked: bool,
    /// The latest status and the history, kept without the task's own ids;
    /// `snapshot::task_record` puts them back.
    pub statuses: StatusLog,
    /// The last update relayed to the framework: (uuid, subscription epoch, when).
    pub relayed: Option<(StoredUuid, u64, Millis)>,
}

/// How long a framework may stay behind on its events (its status updates deferred)
/// before it is cut off like one whose queue is full: one that stopped reading but keeps
/// its connection would otherwise have its agents re-send its updates every half second
/// for good.
const BACKLOG_LIMIT_MS: Millis = 60_000;
/// Deferrals further apart than this belong to separate backlogs (while one lasts, agents
/// re-send the deferred updates every half second).
const BACKLOG_GAP_MS: Millis = 5_000;
/// Status updates kept per task for the state endpoint.
const MAX_TASK_HISTORY: usize = 16;
/// A re-send of the update last relayed to the same subscription is relayed again only
/// after this long (its event or acknowledgement may have been lost).
const RELAY_AGAIN_MS: Millis = 5_000;

pub struct Master {
    config: MasterConfig,
    clock: Arc<dyn Clock>,
    master_id: String,
    allocator: Box<dyn Allocator>,
    /// Every agent this master knows, removed ones included (their status says so).
    agents: crate::tally::TalliedMap<String, snapshot::AgentTally>,
    /// Every framework this master knows, retired ones included (their status says so).
    frameworks: crate::tally::TalliedMap<String, snapshot::FrameworkTally>,
    offers: crate::tally::TalliedMap<String, snapshot::OfferTally>,
    tasks: crate::tally::TalliedMap<(String, String), snapshot::TaskTally>,
    /// Live custom executors (`executors.rs`).
    executors: HashMap<executors::ExecutorKey, executors::ExecutorEntry>,
    completed: VecDeque<TaskEntry>,
    /// Where each key's latest entry of `completed` is: its sequence number (the front's
    /// is `completed_front_seq`). Looking an ended task up must not scan the deque: every
    /// acknowledgement of a terminal update does it.
    completed_index: HashMap<(String, String), u64>,
    completed_front_seq: u64,
    /// Frameworks whose status updates are being deferred (`status_update`): subscription
    /// epoch, since when, and the latest deferral.
    backlogged_since: HashMap<String, (u64, Millis, Millis)>,
    metrics: Metrics,
    needs_allocation: bool,
    next_id: u64,
    next_epoch: u64,
    last_framework_heartbeat: Millis,
    handle: MasterHandle,
    registry: Box<dyn Registry>,
    /// Changes made in the current batch, written with one sync at its end.
    registry_pending: Vec<RegistryOp>,
    /// Replies waiting for `registry_pending` to be durable.
    deferred: Vec<Deferred>,
    subscribers: events::Subscribers,
    /// Index of the agents whose status is draining, so finished drains are found
    /// without a scan. Kept by `agent_event` alone; the statuses are the truth.
    draining: BTreeSet<String>,
    /// Until when agents admitted before this master started may re-register before
    /// they are marked unreachable; `None` once that has passed (or none was admitted).
    reregistration_deadline: Option<Millis>,
    /// The latest usage report per reachable agent.
    usage: HashMap<String, usage::UsageEntry>,
    /// Per agent id: its dynamic reservations and volumes (persisted; applied to what the
    /// agent reports when it registers). Owned by `operations`.
    checkpointed: HashMap<String, Resources>,
    /// When the last agent was marked unreachable, for `agent_removal_interval`.
    last_agent_removal: Option<Millis>,
}

impl Master {
    /// Build the actor and the handle to reach it; `run` it on a task.
    /// `recovered` is what `registry` held at start; the master resumes from it.
    pub fn new(
        config: MasterConfig,
        clock: Arc<dyn Clock>,
        registry: Box<dyn Registry>,
        recovered: RegistryState,
    ) -> Result<(Master, MasterHandle, mpsc::Receiver<Command>), allocator::AllocatorError> {
        let (handle, rx) = Self::channel();
        let master = Self::on_channel(config, clock, registry, recovered, handle.clone())?;
        Ok((master, handle, rx))
    }

    /// The actor's command queue, made before the actor itself: a master that waits to
    /// be elected serves (and refuses) calls with the handle before it has any state.
    pub fn channel() -> (MasterHandle, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE_CAPACITY);
        (MasterHandle { tx }, rx)
    }

    /// `new` on a queue made by `channel`.
    pub fn on_channel(
        config: MasterConfig,
        clock: Arc<dyn Clock>,
        registry: Box<dyn Registry>,
        recovered: RegistryState,
        handle: MasterHandle,
    ) -> Result<Master, allocator::AllocatorError> {
        let mut alloc = allocator::by_name(
            &config.allocator,
            AllocatorConfig {
                seed: config.allocator_seed,
                min_allocatable: config.min_allocatable.clone(),
                holds: config.holds,
                ..AllocatorConfig::default()
            },
        )?;
        // Start-up flags first; weights an operator set at run time (persisted) win.
        let persisted = recovered.weights.iter().map(|(r, w)| (r.clone(), *w));
        for (role, w) in config.weights.iter().cloned().chain(persisted) {
            alloc.set_weight(&role, w)?;
        }
        let peer_queue_capacity = config.peer_queue_capacity;
        let now = clock.now_ms();
        let mut master = Master {
            config,
            clock,
            master_id: uuid::Uuid::new_v4().to_string(),
            allocator: alloc,
            agents: crate::tally::TalliedMap::new(),
            frameworks: crate::tally::TalliedMap::new(),
            offers: crate::tally::TalliedMap::new(),
            tasks: crate::tally::TalliedMap::new(),
            executors: HashMap::new(),
            completed: VecDeque::new(),
            completed_index: HashMap::new(),
            completed_front_seq: 0,
            backlogged_since: HashMap::new(),
            metrics: Metrics::default(),
            needs_allocation: false,
            next_id: 0,
            next_epoch: 0,
            last_framework_heartbeat: now,
            handle,
            registry,
            registry_pending: Vec::new(),
            deferred: Vec::new(),
            subscribers: events::Subscribers::new(peer_queue_capacity),
            draining: BTreeSet::new(),
            reregistration_deadline: None,
            usage: HashMap::new(),
            checkpointed: HashMap::new(),
            last_agent_removal: None,
        };
        master.resume(recovered);
        Ok(master)
    }

    pub fn master_id(&self) -> &str {
        &self.master_id
    }

    /// Process commands until every handle is dropped, or until a registry write fails
    /// (the error is returned; every stream is closed and the master must restart).
    pub async fn run(mut self, mut rx: mpsc::Receiver<Command>) -> Result<(), RegistryError> {
        info!(master_id = %self.master_id, allocator = self.allocator.policy(), "master actor started");
        let mut tick = tokio::time::interval(self.config.allocation_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
                _ = tick.tick() => self.on_tick(),
            }
            // Under load, handle a bounded batch before allocating, so one cycle serves many
            // freed resources instead of one cycle per event.
            for _ in 0..BATCH {
                match rx.try_recv() {
                    Ok(cmd) => self.handle(cmd),
                    Err(_) => break,
                }
            }
            if let Err(e) = self.end_batch().await {
                tracing::error!(error = %e, "registry write failed; the master stops");
                self.close_streams();
                return Err(e);
            }
        }
        self.commit().await?;
        info!("master actor stopped");
        Ok(())
    }

    /// What `run` does after each batch of commands: drain deadlines, the batch's commit
    /// (and its held replies), then an allocation cycle if one is due. A deterministic
    /// simulation drives the actor with `handle`, `end_batch` and `tick` on its own clock.
    pub async fn end_batch(&mut self) -> Result<(), RegistryError> {
        if !self.draining.is_empty() {
            self.check_drains();
        }
        self.commit().await?;
        if self.needs_allocation {
            self.allocate();
        }
        Ok(())
    }

    /// The periodic work `run` does on its interval (timeouts, heartbeats, filter expiry).
    pub fn tick(&mut self) {
        self.on_tick();
    }

    /// Make the batch's registry changes durable in one write, then send the replies that
    /// waited for it: as they are if the write succeeded, else every call that would have
    /// succeeded fails with UNAVAILABLE.
    pub async fn commit(&mut self) -> Result<(), RegistryError> {
        let ops = std::mem::take(&mut self.registry_pending);
        let result = if ops.is_empty() {
            Ok(())
        } else {
            let n = ops.len();
            let r = self.registry.append(ops).await;
            if r.is_err() {
                self.metrics.registry_write_errors += 1;
                tracing::error!(changes = n, "registry write failed");
            }
            r
        };
        let failed = result.as_ref().err().map(|e| {
            Error::unavailable(format!(
                "registry write failed ({e}): the change was not stored; the master is restarting, retry against it"
            ))
        });
        for reply in std::mem::take(&mut self.deferred) {
            reply(failed.as_ref());
        }
        result
    }

    /// Answer a call, or hold the answer until the batch's registry write resolves if
    /// anything in the batch changed the registry (this call, or one it may depend on).
    fn answer<T: Send + 'static>(&mut self, reply: Reply<T>, result: Result<T, Error>) {
        if self.registry_pending.is_empty() {
            let _ = reply.send(result);
            return;
        }
        self.deferred.push(Box::new(move |failed| {
            let _ = reply.send(match (failed, result) {
                (Some(e), Ok(_)) => Err(e.clone()),
                (_, r) => r,
            });
        }));
    }

    /// `answer` for queries that cannot fail: dropped (the asker sees the master
    /// stopping) if the write fails.
    fn answer_query<T: Send + 'static>(&mut self, reply: oneshot::Sender<T>, value: T) {
        if self.registry_pending.is_empty() {
            let _ = reply.send(value);
            return;
        }
        self.deferred.push(Box::new(move |failed| {
            if failed.is_none() {
                let _ = reply.send(value);
            }
        }));
    }

    /// End every framework, agent and operator stream without an ERROR event: peers
    /// treat it as a lost master.
    fn close_streams(&mut self) {
        self.subscribers.close();
        for fw in self.frameworks.values_mut() {
            fw.tx = None;
        }
        for agent in self.agents.values_mut() {
            agent.tx = None;
        }
    }

    /// Take up what the registry held: retired framework ids, removed agents, the
    /// admitted agents (recovering until they re-register or the re-registration timeout
    /// passes), and the frameworks, which wait inactive (their failover timeout running
    /// from now) for their schedulers to re-subscribe.
    fn resume(&mut self, recovered: RegistryState) {
        let now = self.now();
        for id in &recovered.torn_down {
            self.frameworks.insert(
                id.clone(),
                FrameworkEntry::placeholder(id, FrameworkStatus::TornDown, now),
            );
        }
        for id in &recovered.removed_agents {
            self.agents.insert(
                id.clone(),
                AgentEntry::placeholder(id, "", AgentStatus::Removed, now),
            );
        }
        for (id, hostname) in &recovered.admitted_agents {
            if recovered.removed_agents.contains(id) {
                continue;
            }
            let maintenance = if recovered.deactivated_agents.contains(id) {
                Maintenance::Deactivated
            } else {
                Maintenance::Active
            };
            self.agents.insert(
                id.clone(),
                AgentEntry::placeholder(id, hostname, AgentStatus::Recovering(maintenance), now),
            );
        }
        if self
            .agents
            .values()
            .any(|a| matches!(a.status, AgentStatus::Recovering(_)))
        {
            self.reregistration_deadline = Some(
                now.saturating_add(self.config.agent_reregistration_timeout.as_millis() as Millis),
            );
        }
        for (agent, text) in &recovered.agent_resources {
            match Resources::parse(text) {
                Ok(r) => {
                    self.checkpointed.insert(agent.clone(), r);
                }
                Err(e) => {
                    warn!(agent = %agent, error = %e, "unreadable agent reservations in the registry")
                }
            }
        }
        // Quota comes back forced: agents re-register after the master starts, so the
        // cluster looks empty at this point.
        for (role, (guarantee, limit)) in &recovered.quotas {
            let parsed = Resources::parse(guarantee).and_then(|g| {
                limit
                    .as_deref()
                    .map(Resources::parse)
                    .transpose()
                    .map(|l| (g, l))
            });
            match parsed {
                Ok((g, l)) => {
                    if let Err(e) = self.allocator.set_quota(role, g, l, true) {
                        warn!(role = %role, error = %e, "cannot restore quota from the registry");
                    }
                }
                Err(e) => warn!(role = %role, error = %e, "unreadable quota in the registry"),
            }
        }
        let mut infos = Vec::new();
        for (id, hex) in &recovered.frameworks {
            match crate::registry::from_hex(hex)
                .and_then(|b| <FrameworkInfo as prost::Message>::decode(b.as_slice()).ok())
            {
                Some(info) if info.id == *id => infos.push(info),
                _ => warn!(framework = %id, "unreadable framework in the registry; skipping it"),
            }
        }
        for info in &infos {
            self.ensure_framework_for_recovered_task(&info.id, &infos, now);
        }
        if !infos.is_empty()
            || !recovered.torn_down.is_empty()
            || !recovered.admitted_agents.is_empty()
        {
            info!(
                frameworks = infos.len(),
                torn_down = recovered.torn_down.len(),
                agents = recovered.admitted_agents.len(),
                "recovered the registry"
            );
        }
    }

    fn set_quota(
        &mut self,
        role: String,
        guarantee: Resources,
        limit: Option<Resources>,
        force: bool,
    ) -> Result<(), Error> {
        agora_resources::validate_role(&role)
            .map_err(|e| Error::invalid_argument(format!("quota: {e}")))?;
        self.allocator
            .set_quota(&role, guarantee.clone(), limit.clone(), force)
            .map_err(allocator_status)?;
        self.persist(RegistryOp::SetQuota {
            role,
            guarantee: guarantee.to_string(),
            limit: limit.map(|l| l.to_string()),
        });
        self.needs_allocation = true;
        Ok(())
    }

    /// Publish an operator event built from current state, if anyone listens.
    fn emit(&mut self, make: impl FnOnce(&Self) -> Option<v1::operator_event::Event>) {
        if self.subscribers.is_empty() {
            return;
        }
        let event = make(self);
        self.subscribers.publish(|| event);
    }

    fn emit_agent(&mut self, id: &str, added: bool) {
        self.emit(|m| {
            m.agent_state(id).map(|agent| {
                if added {
                    v1::operator_event::Event::AgentAdded(v1::operator_event::AgentAdded {
                        agent: Some(agent),
                    })
                } else {
                    v1::operator_event::Event::AgentUpdated(v1::operator_event::AgentUpdated {
                        agent: Some(agent),
                    })
                }
            })
        });
    }

    fn emit_framework(&mut self, id: &str, added: bool) {
        self.emit(|m| {
            m.framework_state(id).map(|fw| {
                if added {
                    v1::operator_event::Event::FrameworkAdded(v1::operator_event::FrameworkAdded {
                        framework: Some(fw),
                    })
                } else {
                    v1::operator_event::Event::FrameworkUpdated(
                        v1::operator_event::FrameworkUpdated {
                            framework: Some(fw),
                        },
                    )
                }
            })
        });
    }

    fn emit_task_added(&mut self, key: &(String, String)) {
        self.emit(|m| {
            m.task_record(key).map(|task| {
                v1::operator_event::Event::TaskAdded(v1::operator_event::TaskAdded {
                    task: Some(task),
                })
            })
        });
    }

    /// The one place agents enter the allocator.
    fn add_agent_to_allocator(
        &mut self,
        id: &str,
        total: Resources,
        attributes: Attributes,
    ) -> Result<(), allocator::AllocatorError> {
        self.allocator
            .add_agent_with_attributes(id, total, attributes)
    }

    fn persist(&mut self, op: RegistryOp) {
        self.registry_pending.push(op);
    }

    fn persist_framework(&mut self, info: &FrameworkInfo) {
        let bytes = prost::Message::encode_to_vec(info);
        self.persist(RegistryOp::PutFramework {
            id: info.id.clone(),
            info: crate::registry::to_hex(&bytes),
        });
    }

    fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    fn fresh_id(&mut self, kind: char) -> String {
        self.next_id += 1;
        format!("{}-{kind}{:06}", self.master_id, self.next_id)
    }

    fn fresh_epoch(&mut self) -> u64 {
        self.next_epoch += 1;
        self.next_epoch
    }

    /// Handle one command. Synchronous: its reply is sent at once, or after `commit` if
    /// the batch changed the registry.
    pub fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Subscribe { request, reply } => {
                let r = self.subscribe(request);
                self.answer(reply, r);
            }
            Command::Scheduler { call, reply } => {
                let r = self.scheduler_call(call);
                self.count_invalid(&r);
                self.answer(reply, r);
            }
            Command::Accept { request, reply } => {
                let r = self.accept(*request);
                self.count_invalid(&r);
                self.answer(reply, r);
            }
            Command::AcceptBatch { items, reply } => {
                let results: AcceptOutcomes = items
                    .into_iter()
                    .map(|(i, r)| (i, self.accept(r)))
                    .collect();
                self.metrics.invalid_calls +=
                    results.iter().filter(|(_, r)| r.is_err()).count() as u64;
                self.answer(reply, Ok(results));
            }
            Command::AcknowledgeBatch { request, reply } => {
                let r = self.acknowledge_batch(request);
                self.count_invalid(&r);
                self.answer(reply, r);
            }
            Command::FrameworkStreamClosed {
                framework_id,
                epoch,
            } => self.framework_stream_closed(&framework_id, epoch),
            Command::RegisterAgent { request, reply } => {
                let r = self.register_agent(request);
                self.answer(reply, r);
            }
            Command::AgentStreamClosed { agent_id, epoch } => {
                self.agent_stream_closed(&agent_id, epoch)
            }
            Command::AgentHeartbeat { agent_id, reply } => {
                let r = self.agent_heartbeat(&agent_id);
                self.answer(reply, r);
            }
            Command::StatusUpdate { request, reply } => {
                let r = self.status_update(request);
                self.answer(reply, r);
            }
            Command::StatusUpdates {
                agent_id,
                updates,
                reply,
            } => {
                let r = self.status_updates(&agent_id, updates);
                self.answer(reply, r);
            }
            Command::ExecutorMessage { request, reply } => {
                let r = self.executor_message(request);
                self.answer(reply, r);
            }
            Command::ExecutorExited { request, reply } => {
                let r = self.executor_exited(request);
                self.answer(reply, r);
            }
            Command::State { reply } => {
                self.answer_query(reply, self.cluster_state());
            }
            Command::Query(query) => self.answer_read(query),
            Command::Metrics { reply } => {
                let snapshot = self.metrics_snapshot();
                self.answer_query(reply, snapshot);
            }
            Command::Ping { reply } => {
                self.answer_query(reply, self.master_id.clone());
            }
            Command::UpdateUsage { report, reply } => {
                let r = self.update_usage(report);
                self.answer(reply, r);
            }
            Command::Usage { reply } => {
                self.answer_query(reply, self.usage_view());
            }
            Command::UpdateWeights { weights, reply } => {
                let r = self.update_weights(weights);
                self.answer(reply, r);
            }
            Command::Maintenance { op, reply } => {
                let r = match op {
                    MaintenanceOp::Deactivate { agent_id } => self.deactivate_agent(&agent_id),
                    MaintenanceOp::Reactivate { agent_id } => self.reactivate_agent(&agent_id),
                    MaintenanceOp::Drain {
                        agent_id,
                        grace_period_seconds,
                        mark_gone,
                    } => self.drain_agent(&agent_id, grace_period_seconds, mark_gone),
                    MaintenanceOp::MarkGone { agent_id } => self.operator_mark_gone(&agent_id),
                };
                self.answer(reply, r);
            }
            Command::SetQuota {
                role,
                guarantee,
                limit,
                force,
                reply,
            } => {
                let r = self.set_quota(role, guarantee, limit, force);
                self.answer(reply, r);
            }
            Command::RemoveQuota { role, reply } => {
                let r = self
                    .allocator
                    .remove_quota(&role)
                    .map_err(allocator_status)
                    .map(|()| {
                        self.persist(RegistryOp::RemoveQuota { role });
                        self.needs_allocation = true;
                    });
                self.answer(reply, r);
            }
            Command::Quotas { reply } => {
                self.answer_query(reply, self.allocator.quotas());
            }
            Command::Explain { target, reply } => {
                let now = self.now();
                let r = self
                    .allocator
                    .explain(&target, now)
                    .map_err(allocator_status);
                self.answer(reply, r);
            }
            Command::SubscribeEvents { snapshot, reply } => {
                let snapshot = snapshot.then(|| self.cluster_state());
                let events = self.subscribers.add(snapshot);
                self.answer_query(reply, events);
            }
            Command::CloseStreams { reply } => {
                self.close_streams();
                self.answer_query(reply, ());
            }
            Command::ResourceOp {
                agent_id,
                kind,
                resources,
                reply,
            } => {
                let r = self.operator_resource_op(&agent_id, kind, &resources);
                self.answer(reply, r);
            }
            Command::OperatorKill {
                framework_id,
                task_id,
                reply,
            } => {
                let r = self.operator_kill(framework_id, task_id);
                self.answer(reply, r);
            }
            Command::OperatorTeardown {
                framework_id,
                reply,
            } => {
                let r = match self.frameworks.get(&framework_id) {
                    None => Err(Error::not_found(format!(
                        "unknown framework id '{framework_id}'"
                    ))),
                    Some(f) if f.status.is_retired() => {
                        Err(frameworks::retired_error(&framework_id, f.status))
                    }
                    Some(_) => {
                        self.remove_framework(
                            &framework_id,
                            crate::state::framework::FrameworkEvent::Teardown,
                            "torn down by an operator",
                        );
                        Ok(())
                    }
                };
                self.answer(reply, r);
            }
        }
    }

    fn count_invalid<T>(&mut self, r: &Result<T, Error>) {
        if r.is_err() {
            self.metrics.invalid_calls += 1;
        }
    }

    fn on_tick(&mut self) {
        let now = self.now();
        self.check_reregistration_timeout(now);
        self.check_agent_timeouts(now);
        self.check_failover_timeouts(now);
        self.check_offer_timeouts(now);
        let hb = self.config.framework_heartbeat.as_millis() as Millis;
        if now.saturating_sub(self.last_framework_heartbeat) >= hb {
            self.last_framework_heartbeat = now;
            let ids: Vec<String> = self.frameworks.keys().cloned().collect();
            for id in ids {
                self.send_event(
                    &id,
                    Event {
                        event: Some(v1::event::Event::Heartbeat(v1::event::Heartbeat {})),
                    },
                );
            }
        }
        // Filters expire with time; a periodic cycle picks up what they release.
        self.needs_allocation = true;
    }

    fn update_weights(&mut self, weights: Vec<(String, f64)>) -> Result<(), Error> {
        for (role, w) in &weights {
            agora_resources::validate_role(role)
                .map_err(|e| Error::invalid_argument(format!("weight: {e}")))?;
            if !w.is_finite() || *w <= 0.0 {
                return Err(Error::invalid_argument(format!(
                    "weight of role '{role}' must be a finite number > 0, got {w}"
                )));
            }
        }
        for (role, w) in weights {
            self.allocator
                .set_weight(&role, w)
                .map_err(|e| Error::invalid_argument(e.to_string()))?;
            self.persist(RegistryOp::SetWeight { role, weight: w });
        }
        self.needs_allocation = true;
        Ok(())
    }

    // ---------------------------------------------------------------------------------
    // Allocation and offers
    // ---------------------------------------------------------------------------------

    fn allocate(&mut self) {
        self.needs_allocation = false;
        let now = self.now();
        let started = Instant::now();
        let allocations = self.allocator.allocate(now);
        self.metrics.observe_cycle(started.elapsed());
        if allocations.is_empty() {
            return;
        }
        let mut by_framework: BTreeMap<String, Vec<v1::Offer>> = BTreeMap::new();
        for a in allocations {
            let (Some(agent), true) = (
                self.agents.get(&a.agent),
                self.frameworks
                    .get(&a.framework)
                    .is_some_and(|f| f.status == FrameworkStatus::Active),
            ) else {
                // The allocator and the actor disagree; give the resources back at once.
                warn!(agent = %a.agent, framework = %a.framework, "allocation for an unknown or inactive peer");
                let _ = self
                    .allocator
                    .recover(&a.agent, &a.framework, &a.role, &a.resources, None);
                continue;
            };
            let offer = v1::Offer {
                id: String::new(),
                framework_id: a.framework.clone(),
                agent_id: a.agent.clone(),
                hostname: agent.info.hostname.clone(),
                role: a.role.clone(),
                resources: a.resources.to_proto(),
                attributes: agent.info.attributes.clone(),
            };
            let id = self.fresh_id('O');
            let offer = v1::Offer {
                id: id.clone(),
                ..offer
            };
            self.offers.insert(
                id.clone(),
                OfferEntry {
                    offer: offer.clone(),
                    resources: a.resources,
                    state: OfferState::Outstanding,
                    created_at: now,
                },
            );
            if let Some(agent) = self.agents.get_mut(&a.agent) {
                agent.offers.insert(id.clone());
            }
            if let Some(fw) = self.frameworks.get_mut(&a.framework) {
                fw.offers.insert(id);
            }
            by_framework.entry(a.framework).or_default().push(offer);
        }
        for (fw, offers) in by_framework {
            self.metrics.offers_sent += offers.len() as u64;
            debug!(framework = %fw, count = offers.len(), "sending offers");
            self.send_event(
                &fw,
                Event {
                    event: Some(v1::event::Event::Offers(v1::event::Offers { offers })),
                },
            );
        }
    }

    /// Take an offer out of the books through its life cycle (`None`: unknown, or the
    /// event does not apply, and nothing changed); the caller decides what happens to
    /// its resources.
    fn close_offer(&mut self, offer_id: &str, event: OfferEvent) -> Option<OfferEntry> {
        let to = self.offers.get(offer_id)?.state.on(event).ok()?;
        let mut entry = self.offers.remove(offer_id)?;
        entry.state = to;
        if let Some(agent) = self.agents.get_mut(&entry.offer.agent_id) {
            agent.offers.remove(offer_id);
        }
        if let Some(fw) = self.frameworks.get_mut(&entry.offer.framework_id) {
            fw.offers.remove(offer_id);
        }
        Some(entry)
    }

    /// Rescind an offer: resources back to the allocator (unless `recover` is false because
    /// the agent left the allocator already) and a RESCIND to the framework.
    fn rescind_offer(&mut self, offer_id: &str, reason: &str, recover: bool) {
        let Some(entry) = self.close_offer(offer_id, OfferEvent::Rescind) else {
            return;
        };
        self.metrics.offers_rescinded += 1;
        if recover {
            if let Err(e) = self.allocator.recover(
                &entry.offer.agent_id,
                &entry.offer.framework_id,
                &entry.offer.role,
                &entry.resources,
                None,
            ) {
                warn!(error = %e, "recovering a rescinded offer");
            }
            self.needs_allocation = true;
        }
        self.send_event(&entry.offer.framework_id, rescind_event(offer_id, reason));
    }

    /// Greed: an offer nobody answers is taken back, and its framework does not see the
    /// same resources again for the default filter time.
    fn check_offer_timeouts(&mut self, now: Millis) {
        let Some(timeout) = self.config.offer_timeout else {
            return;
        };
        let timeout = timeout.as_millis() as Millis;
        let expired: Vec<String> = self
            .offers
            .iter()
            .filter(|(_, o)| now.saturating_sub(o.created_at) >= timeout)
            .map(|(id, _)| id.clone())
            .collect();
        let refuse = (self.config.default_refuse_seconds * 1000.0) as Millis;
        for id in expired {
            let Some(entry) = self.close_offer(&id, OfferEvent::Timeout) else {
                continue;
            };
            self.metrics.offers_rescinded += 1;
            self.metrics.offers_timed_out += 1;
            if let Err(e) = self.allocator.recover_rescinded(
                &entry.offer.agent_id,
                &entry.offer.framework_id,
                &entry.offer.role,
                &entry.resources,
                now.saturating_add(refuse),
            ) {
                warn!(error = %e, "recovering a timed-out offer");
            }
            self.needs_allocation = true;
            self.send_event(
                &entry.offer.framework_id,
                rescind_event(&id, "offer timed out"),
            );
        }
    }

    // ---------------------------------------------------------------------------------
    // Sending to peers

    /// Queue a command a scheduler call asked for; a disconnected agent is UNAVAILABLE
    /// ("agent 'a' is not connected; <retry>").
    fn command_agent(
        &mut self,
        agent_id: &str,
        command: v1::agent_command::Command,
        retry: &str,
    ) -> Result<(), Error> {
        if self.send_agent(agent_id, command) {
            Ok(())
        } else {
            Err(Error::unavailable(format!(
                "agent '{agent_id}' is not connected; {retry}"
            )))
        }
    }
    // ---------------------------------------------------------------------------------

    /// Queue an event for a connected framework. A framework whose queue is full is cut
    /// off: its stream ends and its offers are rescinded; it re-subscribes and reconciles.
    fn send_event(&mut self, framework_id: &str, event: Event) {
        let Some(fw) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        let Some(tx) = &fw.tx else {
            return;
        };
        match tx.try_send(Ok(event)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                warn!(
                    framework = framework_id,
                    "event queue full; disconnecting the framework"
                );
                self.metrics.frameworks_disconnected_slow += 1;
                let epoch = fw.epoch;
                self.framework_stream_closed(framework_id, epoch);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                let epoch = fw.epoch;
                self.framework_stream_closed(framework_id, epoch);
            }
        }
    }

    /// A connected framework's event queue: (events waiting, capacity).
    fn framework_queue(&self, framework_id: &str) -> Option<(usize, usize)> {
        let tx = self.frameworks.get(framework_id)?.tx.as_ref()?;
        Some((tx.max_capacity() - tx.capacity(), tx.max_capacity()))
    }

    /// Whether a connected framework has less than a quarter of its event queue free.
    /// That quarter is kept for what cannot wait (offers, rescinds, errors); status updates
    /// for it are deferred to the agents until it reads on (`status_update`).
    fn framework_backlogged(&self, framework_id: &str) -> bool {
        self.framework_queue(framework_id)
            .is_some_and(|(waiting, cap)| cap - waiting < cap / 4)
    }

    /// Whether a connected framework has read all but a sixteenth of its event queue.
    fn framework_caught_up(&self, framework_id: &str) -> bool {
        self.framework_queue(framework_id)
            .is_some_and(|(waiting, cap)| waiting <= cap / 16)
    }

    /// A batched call's items judged one by one by `judge`; the refused ones, by index.
    fn judge_each<T>(
        &mut self,
        items: Vec<T>,
        mut judge: impl FnMut(&mut Self, T) -> Result<(), Error>,
    ) -> Vec<v1::batch_response::Refused> {
        let mut refused = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            if let Err(s) = judge(self, item) {
                refused.push(crate::service::scheduler::refusal(i, &s));
            }
        }
        refused
    }

    /// Queue a command for a connected agent. Returns false if it could not be queued (the
    /// agent is disconnected, or its queue was full and it has been disconnected).
    fn send_agent(&mut self, agent_id: &str, command: v1::agent_command::Command) -> bool {
        let Some(agent) = self.agents.get_mut(agent_id) else {
            return false;
        };
        let Some(tx) = &agent.tx else {
            return false;
        };
        match tx.try_send(Ok(Box::new(AgentCommand {
            command: Some(command),
        }))) {
            Ok(()) => true,
            Err(e) => {
                if matches!(e, mpsc::error::TrySendError::Full(_)) {
                    warn!(
                        agent = agent_id,
                        "agent command queue full; disconnecting the agent"
                    );
                }
                let epoch = agent.epoch;
                self.agent_stream_closed(agent_id, epoch);
                false
            }
        }
    }

    // ---------------------------------------------------------------------------------
    // Task bookkeeping shared by framework and agent paths
    // ---------------------------------------------------------------------------------

    /// Return a task's resources to the allocator if they are still booked.
    fn unbook_task(&mut self, key: &(String, String)) {
        let Some(task) = self.tasks.get_mut(key) else {
            return;
        };
        if !task.booked {
            return;
        }
        task.booked = false;
        let (agent, fw, role, res) = (
            task.agent_id.clone(),
            task.framework_id.clone(),
            task.role.clone(),
            task.resources.to_resources(),
        );
        if let Err(e) = self.allocator.recover(&agent, &fw, &role, &res, None) {
            debug!(error = %e, "recovering task resources");
        }
        self.needs_allocation = true;
    }

    /// Record a status update for a task the master tracks: its state moves (see
    /// `advance_task`) and the update becomes the task's latest. Returns false if the
    /// transition is not allowed (nothing changes).
    fn apply_task_state(&mut self, key: &(String, String), status: &TaskStatus) -> bool {
        let Ok(to) = TaskState::try_from(status.state) else {
            return false;
        };
        if !self.advance_task(key, to) {
            return false;
        }
        if let Some(task) = self.tasks.get_mut(key) {
            // A re-sent update is recorded once.
            task.statuses.record(status, MAX_TASK_HISTORY);
        }
        let framework_id = key.0.clone();
        self.emit(|_| {
            Some(v1::operator_event::Event::TaskUpdated(
                v1::operator_event::TaskUpdated {
                    framework_id,
                    status: Some(status.clone()),
                },
            ))
        });
        true
    }

    /// Move a task's state: transition check, metrics, and its resources returned to the
    /// allocator when it ends. Records no status. Returns false if not allowed.
    fn advance_task(&mut self, key: &(String, String), to: TaskState) -> bool {
        let Some(task) = self.tasks.get_mut(key) else {
            return false;
        };
        let from = task.state;
        match crate::state::task::transition(from, to) {
            Ok(next) => {
                task.state = next;
                if next.is_terminal() && !from.is_terminal() {
                    *self
                        .metrics
                        .tasks_terminal
                        .entry(next.as_str_name())
                        .or_default() += 1;
                    self.unbook_task(key);
                }
                true
            }
            Err(e) => {
                debug!(task = %key.1, error = %e, "ignoring state change");
                false
            }
        }
    }

    /// Forget an ended task, keeping a bounded record for the state endpoint.
    fn complete_task(&mut self, key: &(String, String)) {
        let Some(task) = self.tasks.remove(key) else {
            return;
        };
        if let Some(agent) = self.agents.get_mut(&task.agent_id) {
            agent.tasks.remove(key);
        }
        if let Some(fw) = self.frameworks.get_mut(&task.framework_id) {
            fw.tasks.remove(&key.1);
        }
        if self.completed.len() >= self.config.max_completed_tasks
            && let Some(old) = self.completed.pop_front()
        {
            let old_key = (old.framework_id, old.info.task_id.clone());
            if self.completed_index.get(&old_key) == Some(&self.completed_front_seq) {
                self.completed_index.remove(&old_key);
            }
            self.completed_front_seq += 1;
        }
        let seq = self.completed_front_seq + self.completed.len() as u64;
        self.completed_index.insert(key.clone(), seq);
        self.completed.push_back(task);
    }

    /// The latest record of an ended task still kept for the state endpoint.
    fn completed_task(&self, key: &(String, String)) -> Option<&TaskEntry> {
        let seq = *self.completed_index.get(key)?;
        let entry = self
            .completed
            .get(usize::try_from(seq.checked_sub(self.completed_front_seq)?).ok()?)?;
        // The index is kept in step with the deque; the check guards against a slip.
        (entry.framework_id == key.0 && entry.info.task_id == key.1).then_some(entry)
    }

    fn master_status(
        &self,
        task: &TaskEntry,
        state: TaskState,
        reason: v1::StatusReason,
        message: &str,
    ) -> TaskStatus {
        TaskStatus {
            task_id: task.info.task_id.clone(),
            framework_id: task.framework_id.clone(),
            agent_id: task.agent_id.clone(),
            state: state as i32,
            reason: reason as i32,
            message: message.to_string(),
            source: v1::StatusSource::SourceMaster as i32,
            timestamp_ms: self.now() as i64,
            ..TaskStatus::default()
        }
    }

    /// Mark a live task with a master-generated state (agent lost, framework gone, ...),
    /// tell its framework, and complete it if the state is terminal.
    fn fail_task(
        &mut self,
        key: &(String, String),
        state: TaskState,
        reason: v1::StatusReason,
        message: &str,
    ) {
        let Some(task) = self.tasks.get(key) else {
            return;
        };
        if task.state.is_terminal() {
            return;
        }
        let status = self.master_status(task, state, reason, message);
        let fw = task.framework_id.clone();
        self.apply_task_state(key, &status);
        self.send_event(&fw, update_event(status));
        if state.is_terminal() {
            self.complete_task(key);
        }
    }

    fn attributes_ok(attrs: &[v1::Attribute]) -> Result<(), Error> {
        Attributes::from_proto(attrs)
            .map(|_| ())
            .map_err(|e| Error::invalid_argument(format!("agent attributes: {e}")))
    }
}

/// The refusal an operator sees for an allocator refusal.
fn allocator_status(e: allocator::AllocatorError) -> Error {
    use allocator::AllocatorError as E;
    match e {
        E::UnknownRole(_) | E::UnknownFramework(_) | E::UnknownAgent(_) => {
            Error::not_found(e.to_string())
        }
        E::Unsupported { .. } => Error::unimplemented(e.to_string()),
        E::InvalidQuota { .. }
        | E::InvalidRole { .. }
        | E::InvalidWeight { .. }
        | E::InvalidConstraint { .. }
        | E::RoleNotSubscribed { .. } => Error::invalid_argument(e.to_string()),
        _ => Error::internal(e.to_string()),
    }
}

/// An UPDATE event carrying `status`.
fn update_event(status: TaskStatus) -> Event {
    Event {
        event: Some(v1::event::Event::Update(v1::event::Update {
            status: Some(status),
        })),
    }
}

/// A RESCIND event for `offer_id`.
fn rescind_event(offer_id: &str, reason: &str) -> Event {
    Event {
        event: Some(v1::event::Event::Rescind(v1::event::Rescind {
            offer_id: offer_id.to_string(),
            reason: reason.to_string(),
        })),
    }
}
