//! The status update manager: reliable, ordered delivery of task status updates.
//!
//! One actor ([`StatusUpdates`] is its handle) owns, per task, a FIFO of updates not yet
//! acknowledged ([`UpdateQueues`]) and the re-send schedule of the oldest one. Only the
//! oldest unacknowledged update of a task is ever in flight; it is re-sent with
//! exponential backoff (0.5 s doubling, capped at 10 s) until the master relays the
//! framework's `Acknowledge` with its uuid; then the next one goes out. Once a task's
//! queue is empty (after its terminal update is acknowledged) the task is forgotten.
//!
//! Updates travel in `UpdateStatuses` calls: one call at a time, carrying every update
//! that is due (at most [`MAX_UPDATES_PER_CALL`]); what falls due while a call is out
//! goes in the next one, so calls grow when the master is slow instead of multiplying.
//! The master judges each item as it would a single `UpdateStatus`, so each update keeps
//! its own schedule: taken, refused for now (`UNAVAILABLE`: its framework is behind) or
//! refused otherwise, by index; a failed call counts as a failure of each of its updates.
//!
//! [`UpdateQueues`] keeps the queues in memory and, when given an [`UpdateLog`], appends
//! (and syncs) every update to the log before it can be sent and every acknowledgement
//! after it arrives, so a restarted agent replays the log and re-sends what was not
//! acknowledged ([`StatusUpdates::spawn_with`]).
//!
//! This module must never decide task states (the state actor does) and never block on
//! the network: every RPC runs in its own tokio task with a timeout and reports back.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agora_proto::v1::{
    BatchResponse, StatusReason, StatusSource, StatusUpdateBatch, StatusUpdateRequest, TaskState,
    TaskStatus,
};
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::checkpoint::{COMPACT_AFTER_RECORDS, PendingUpdates, UpdateLog};
use crate::task::{Report, TaskKey};

/// Capacity of the actor's inbox.
pub const INBOX_CAPACITY: usize = 1024;

/// Most updates in one `UpdateStatuses` call (the master refuses larger calls whole).
pub const MAX_UPDATES_PER_CALL: usize = 10_000;
/// Most encoded bytes of updates in one call, well under gRPC's 4 MiB message limit (a
/// call over it would fail whole, every time): more waits for the next call. An update
/// larger than this still goes, alone.
pub const MAX_CALL_BYTES: usize = 1 << 20;

/// The transport to the master: sends one `UpdateStatuses` call.
pub trait StatusSink: Send + Sync + 'static {
    /// Sends the batch. `Ok` is the master's answer: it took every update except those
    /// listed as refused (by index); `Err`: the call failed and nothing was taken.
    fn send(
        &self,
        batch: StatusUpdateBatch,
    ) -> BoxFuture<'static, Result<BatchResponse, tonic::Status>>;
}

/// Each item's outcome of a call of `len` updates: `Ok` for the ones the master took, the
/// refusal for the others; a failed call fails every item. Refusals naming an index the
/// call did not have are ignored.
pub fn item_results(
    len: usize,
    answer: Result<BatchResponse, tonic::Status>,
) -> Vec<Result<(), tonic::Status>> {
    match answer {
        Err(status) => (0..len).map(|_| Err(status.clone())).collect(),
        Ok(response) => {
            let mut out: Vec<Result<(), tonic::Status>> = (0..len).map(|_| Ok(())).collect();
            for r in response.refused {
                if let Some(slot) = usize::try_from(r.index).ok().and_then(|i| out.get_mut(i)) {
                    *slot = Err(tonic::Status::new(tonic::Code::from(r.code), r.message));
                }
            }
            out
        }
    }
}

/// Timing and limits of the manager.
#[derive(Clone, Debug)]
pub struct UpdateConfig {
    /// First re-send delay.
    pub initial_backoff: Duration,
    /// Largest re-send delay.
    pub max_backoff: Duration,
    /// Earliest re-send of an update the master answered OK: the master relays the same
    /// update to the same subscription again only after 5 s anyway, so sooner re-sends
    /// only add load (under a burst they multiplied the master's work). Failed and
    /// refused sends keep the backoff.
    pub taken_resend: Duration,
    /// Timeout of one `UpdateStatuses` call.
    pub rpc_timeout: Duration,
    /// Most updates queued for one task; more are dropped with an error log.
    pub max_queued_per_task: usize,
}

impl Default for UpdateConfig {
    fn default() -> UpdateConfig {
        UpdateConfig {
            initial_backoff: crate::backoff::INITIAL_DELAY,
            max_backoff: crate::backoff::MAX_DELAY,
            taken_resend: Duration::from_secs(5),
            rpc_timeout: Duration::from_secs(5),
            max_queued_per_task: 32,
        }
    }
}

/// A status update of `key` with a fresh uuid, sent by the agent, stamped now.
pub fn new_status(key: &TaskKey, agent_id: &str, report: Report) -> TaskStatus {
    TaskStatus {
        task_id: key.task_id.clone(),
        framework_id: key.framework_id.clone(),
        agent_id: agent_id.to_string(),
        state: report.state as i32,
        reason: report.reason as i32,
        message: report.message,
        source: StatusSource::SourceAgent as i32,
        timestamp_ms: now_ms(),
        uuid: uuid::Uuid::new_v4().to_string(),
        exit_code: report.exit_code,
        healthy: report.healthy,
        ..Default::default()
    }
}

/// Unix time in milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn key_of(status: &TaskStatus) -> TaskKey {
    TaskKey::new(status.framework_id.clone(), status.task_id.clone())
}

fn state_of(status: &TaskStatus) -> TaskState {
    TaskState::try_from(status.state).unwrap_or(TaskState::Unspecified)
}

// ---------------------------------------------------------------------------------------
// Storage
// ---------------------------------------------------------------------------------------

/// A task's queue is at its limit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("status update queue of task {key} is full ({limit} updates)")]
pub struct QueueFull {
    /// The task.
    pub key: TaskKey,
    /// The limit.
    pub limit: usize,
}

/// Result of an acknowledgement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AckOutcome {
    /// The oldest update was acknowledged and removed.
    Acked {
        /// It was a terminal update.
        terminal: bool,
        /// More updates wait for this task.
        more: bool,
    },
    /// No updates are pending for this task.
    UnknownTask,
    /// The uuid is not the oldest pending update's.
    UnknownUuid,
}

/// How often a status update log that a failed write (a full disk) left behind the
/// queues is rewritten, until it succeeds.
pub const LOG_REPAIR_INTERVAL: Duration = Duration::from_secs(1);

/// Per-task FIFOs of unacknowledged updates. A task with no pending update has no entry.
#[derive(Debug)]
pub struct UpdateQueues {
    queues: HashMap<TaskKey, VecDeque<TaskStatus>>,
    limit: usize,
    log: Option<UpdateLog>,
    /// A write to the log failed (a full disk): the log no longer matches the queues
    /// and is rewritten from them before the next record, or by `repair_log`.
    log_stale: bool,
}

impl UpdateQueues {
    /// Empty queues holding at most `limit_per_task` updates per task.
    pub fn new(limit_per_task: usize) -> UpdateQueues {
        UpdateQueues {
            queues: HashMap::new(),
            limit: limit_per_task.max(1),
            log: None,
            log_stale: false,
        }
    }

    /// Queues recovered from a replayed log, which keeps recording every change.
    pub fn recover(log: UpdateLog, pending: PendingUpdates, limit_per_task: usize) -> UpdateQueues {
        let mut queues = UpdateQueues::new(limit_per_task);
        for (key, queue) in pending {
            if !queue.is_empty() {
                queues.queues.insert(key, queue);
            }
        }
        queues.log = Some(log);
        queues
    }

    /// Appends an update; `Ok(true)` when it is now the oldest of its task.
    pub fn push(&mut self, status: TaskStatus) -> Result<bool, QueueFull> {
        let key = key_of(&status);
        if self.queues.get(&key).map_or(0, VecDeque::len) >= self.limit {
            return Err(QueueFull {
                key,
                limit: self.limit,
            });
        }
        let logged = match &mut self.log {
            None => Ok(()),
            // A stale log is rewritten whole, this update included (after its task's
            // older ones: replay keeps each task's order).
            Some(log) if self.log_stale => log.compact(
                self.queues
                    .values()
                    .flat_map(|q| q.iter())
                    .chain(std::iter::once(&status)),
            ),
            Some(log) => log.push(&status),
        };
        match logged {
            Ok(()) => self.log_stale = false,
            Err(e) => {
                // Still deliver it: losing it in memory too would be worse. The log is
                // rewritten from the queues once the disk has room again.
                tracing::error!(task = %key, "status update not checkpointed: {e}");
                self.log_stale = true;
            }
        }
        let queue = self.queues.entry(key).or_default();
        queue.push_back(status);
        Ok(queue.len() == 1)
    }

    /// The oldest pending update of a task.
    pub fn front(&self, key: &TaskKey) -> Option<&TaskStatus> {
        self.queues.get(key).and_then(VecDeque::front)
    }

    /// The newest pending update of a task.
    pub fn latest(&self, key: &TaskKey) -> Option<&TaskStatus> {
        self.queues.get(key).and_then(VecDeque::back)
    }

    /// Removes the oldest update if `uuid` is its uuid.
    pub fn acknowledge(&mut self, key: &TaskKey, uuid: &str) -> AckOutcome {
        match self.front(key) {
            None => AckOutcome::UnknownTask,
            Some(front) if front.uuid != uuid => AckOutcome::UnknownUuid,
            Some(_) => match self.pop_front(key) {
                Some(popped) => AckOutcome::Acked {
                    terminal: state_of(&popped).is_terminal(),
                    more: self.queues.contains_key(key),
                },
                None => AckOutcome::UnknownTask,
            },
        }
    }

    /// Removes and returns the oldest update; forgets the task when none remain.
    pub fn pop_front(&mut self, key: &TaskKey) -> Option<TaskStatus> {
        let queue = self.queues.get_mut(key)?;
        let popped = queue.pop_front();
        if queue.is_empty() {
            self.queues.remove(key);
        }
        if let (Some(log), Some(p)) = (&mut self.log, &popped) {
            let live: usize = self.queues.values().map(VecDeque::len).sum();
            let logged = if self.log_stale || log.records() > COMPACT_AFTER_RECORDS + live {
                log.compact(self.queues.values().flat_map(|q| q.iter()))
            } else {
                log.ack(key, &p.uuid)
            };
            match logged {
                Ok(()) => self.log_stale = false,
                Err(e) => {
                    tracing::error!(task = %key, "acknowledgement not checkpointed: {e}");
                    self.log_stale = true;
                }
            }
        }
        popped
    }

    /// Whether a failed write left the log behind the queues.
    pub fn log_stale(&self) -> bool {
        self.log_stale
    }

    /// Rewrites a stale log from the queues; `true` when the log matches them again.
    pub fn repair_log(&mut self) -> bool {
        if !self.log_stale {
            return true;
        }
        let Some(log) = &mut self.log else {
            self.log_stale = false;
            return true;
        };
        match log.compact(self.queues.values().flat_map(|q| q.iter())) {
            Ok(()) => {
                tracing::info!("status update log rewritten after a failed write");
                self.log_stale = false;
                true
            }
            Err(e) => {
                tracing::debug!("status update log still cannot be rewritten: {e}");
                false
            }
        }
    }

    /// Whether updates are pending for the task.
    pub fn contains(&self, key: &TaskKey) -> bool {
        self.queues.contains_key(key)
    }

    /// Tasks with pending updates.
    pub fn keys(&self) -> impl Iterator<Item = &TaskKey> {
        self.queues.keys()
    }

    /// Number of tasks with pending updates.
    pub fn len(&self) -> usize {
        self.queues.len()
    }

    /// No update is pending.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// All pending updates, per task, oldest first.
    pub fn snapshot(&self) -> Vec<(TaskKey, Vec<TaskStatus>)> {
        let mut all: Vec<_> = self
            .queues
            .iter()
            .map(|(k, q)| (k.clone(), q.iter().cloned().collect()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

// ---------------------------------------------------------------------------------------
// Actor
// ---------------------------------------------------------------------------------------

/// Which tasks a reconciliation asks about.
#[derive(Clone, Debug)]
pub enum ReconcileScope {
    /// Every task with a pending terminal update.
    AllEnded,
    /// These task ids (any framework); ids with no pending update are only logged.
    Ids(Vec<String>),
}

enum Msg {
    Enqueue {
        status: TaskStatus,
        unless_pending: bool,
    },
    SendOnce(TaskStatus),
    Acknowledge {
        key: TaskKey,
        uuid: String,
    },
    Reconcile(ReconcileScope),
    Connected {
        sink: Arc<dyn StatusSink>,
        agent_id: String,
    },
    Disconnected,
    CallDone {
        /// The call's updates, in order.
        sent: Vec<(TaskKey, String)>,
        epoch: u64,
        answer: Result<BatchResponse, tonic::Status>,
    },
    Drain {
        timeout: Duration,
        reply: oneshot::Sender<usize>,
    },
    Pending {
        reply: oneshot::Sender<Vec<(TaskKey, Vec<TaskStatus>)>>,
    },
}

/// Handle of the status update manager actor. Cheap to clone; the actor stops when every
/// handle is dropped.
#[derive(Clone, Debug)]
pub struct StatusUpdates {
    tx: mpsc::Sender<Msg>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("status update message")
    }
}

impl StatusUpdates {
    /// Starts the actor with empty, in-memory queues.
    pub fn spawn(config: UpdateConfig) -> (StatusUpdates, JoinHandle<()>) {
        let queues = UpdateQueues::new(config.max_queued_per_task);
        StatusUpdates::spawn_with(config, queues)
    }

    /// Starts the actor with these queues (e.g. recovered from the log); their pending
    /// updates are sent once connected.
    pub fn spawn_with(
        config: UpdateConfig,
        queues: UpdateQueues,
    ) -> (StatusUpdates, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
        let keys: Vec<TaskKey> = queues.keys().cloned().collect();
        let mut manager = Manager {
            queues,
            flights: HashMap::new(),
            timers: BinaryHeap::new(),
            link: None,
            due: VecDeque::new(),
            call_out: false,
            epoch: 0,
            draining: false,
            drain_reply: None,
            drain_deadline: None,
            self_tx: tx.downgrade(),
            config,
        };
        let now = Instant::now();
        for key in keys {
            manager.start_flight(key, now);
        }
        let handle = tokio::spawn(manager.run(rx));
        (StatusUpdates { tx }, handle)
    }

    async fn send(&self, msg: Msg) {
        if self.tx.send(msg).await.is_err() {
            tracing::warn!("status update manager has stopped; message dropped");
        }
    }

    /// Queues an update for reliable delivery.
    pub async fn enqueue(&self, status: TaskStatus) {
        self.send(Msg::Enqueue {
            status,
            unless_pending: false,
        })
        .await;
    }

    /// Queues an update unless updates of the same task are still pending (used for LOST
    /// answers, which must not follow a task's own terminal update).
    pub async fn enqueue_unless_pending(&self, status: TaskStatus) {
        self.send(Msg::Enqueue {
            status,
            unless_pending: true,
        })
        .await;
    }

    /// Sends an update once, without queueing or re-sending it (answers to
    /// reconciliation).
    pub async fn send_once(&self, status: TaskStatus) {
        self.send(Msg::SendOnce(status)).await;
    }

    /// The framework acknowledged the update `uuid` of a task.
    pub async fn acknowledge(&self, key: TaskKey, uuid: String) {
        self.send(Msg::Acknowledge { key, uuid }).await;
    }

    /// Answers a reconciliation for tasks the state actor no longer runs.
    pub async fn reconcile(&self, scope: ReconcileScope) {
        self.send(Msg::Reconcile(scope)).await;
    }

    /// A (new) connection to the master: (re-)send the oldest update of every task now.
    pub async fn connected(&self, sink: Arc<dyn StatusSink>, agent_id: String) {
        self.send(Msg::Connected { sink, agent_id }).await;
    }

    /// The connection is gone: stop sending until the next [`StatusUpdates::connected`].
    pub async fn disconnected(&self) {
        self.send(Msg::Disconnected).await;
    }

    /// Shutdown: from now on an update the master accepted counts as delivered. Resolves
    /// when nothing is pending or after `timeout`, with the number of tasks still pending.
    pub async fn drain(&self, timeout: Duration) -> usize {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Drain { timeout, reply }).await;
        rx.await.unwrap_or(0)
    }

    /// All pending updates, per task (sorted), oldest first.
    pub async fn pending(&self) -> Vec<(TaskKey, Vec<TaskStatus>)> {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Pending { reply }).await;
        rx.await.unwrap_or_default()
    }
}

struct Link {
    sink: Arc<dyn StatusSink>,
    agent_id: String,
}

/// Re-send schedule of a task's oldest update.
struct Flight {
    uuid: String,
    backoff: Backoff,
    next_attempt: Instant,
    in_flight: bool,
    /// Waiting in `Manager::due` for the next call.
    queued: bool,
}

struct Manager {
    queues: UpdateQueues,
    flights: HashMap<TaskKey, Flight>,
    /// Wake-ups; entries whose instant no longer matches their flight are stale.
    timers: BinaryHeap<Reverse<(Instant, TaskKey)>>,
    link: Option<Link>,
    /// Updates due for sending (task, uuid), oldest first; entries whose flight has moved
    /// on (acknowledged, re-queued) are skipped when the call is built.
    due: VecDeque<(TaskKey, String)>,
    /// An `UpdateStatuses` call of this epoch is out: the next one waits for its answer.
    call_out: bool,
    /// Bumped on every (dis)connection; answers of older RPCs are ignored.
    epoch: u64,
    draining: bool,
    drain_reply: Option<oneshot::Sender<usize>>,
    drain_deadline: Option<Instant>,
    self_tx: mpsc::WeakSender<Msg>,
    config: UpdateConfig,
}

impl Manager {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        loop {
            let next_timer = self.timers.peek().map(|Reverse((at, _))| *at);
            let wake = match (next_timer, self.drain_deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            // A log a failed write left behind is retried even when nothing else happens.
            let repair = self
                .queues
                .log_stale()
                .then(|| Instant::now() + LOG_REPAIR_INTERVAL);
            let wake = match (wake, repair) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                biased;
                msg = rx.recv() => match msg {
                    Some(msg) => self.handle(msg),
                    None => break,
                },
                () = sleep_until(wake), if wake.is_some() => {}
            }
            let now = Instant::now();
            self.queues.repair_log();
            self.fire_due(now);
            self.check_drain(now);
        }
        tracing::debug!("status update manager stopped");
    }

    fn handle(&mut self, msg: Msg) {
        let now = Instant::now();
        match msg {
            Msg::Enqueue {
                status,
                unless_pending,
            } => self.enqueue(status, unless_pending, now),
            Msg::SendOnce(status) => self.send_once(status),
            Msg::Acknowledge { key, uuid } => self.acknowledge(&key, &uuid, now),
            Msg::Reconcile(scope) => self.reconcile(scope),
            Msg::Connected { sink, agent_id } => {
                self.link = Some(Link { sink, agent_id });
                self.new_epoch();
                let keys: Vec<TaskKey> = self.flights.keys().cloned().collect();
                for key in keys {
                    if let Some(f) = self.flights.get_mut(&key) {
                        f.backoff.reset();
                        f.next_attempt = now;
                    }
                    self.timers.push(Reverse((now, key)));
                }
            }
            Msg::Disconnected => {
                self.link = None;
                self.new_epoch();
            }
            Msg::CallDone {
                sent,
                epoch,
                answer,
            } => self.call_done(sent, epoch, answer, now),
            Msg::Drain { timeout, reply } => {
                self.draining = true;
                self.drain_deadline = Some(later(now, timeout));
                self.drain_reply = Some(reply);
            }
            Msg::Pending { reply } => {
                let _ = reply.send(self.queues.snapshot());
            }
        }
    }

    fn enqueue(&mut self, status: TaskStatus, unless_pending: bool, now: Instant) {
        let key = key_of(&status);
        if unless_pending && self.queues.contains(&key) {
            tracing::debug!(task = %key, "updates pending; not queueing {:?}", state_of(&status));
            return;
        }
        tracing::debug!(task = %key, state = ?state_of(&status), uuid = %status.uuid, "status update queued");
        match self.queues.push(status) {
            Ok(true) => self.start_flight(key, now),
            Ok(false) => {}
            Err(e) => tracing::error!("{e}; update dropped"),
        }
    }

    fn start_flight(&mut self, key: TaskKey, now: Instant) {
        let Some(front) = self.queues.front(&key) else {
            return;
        };
        self.flights.insert(
            key.clone(),
            Flight {
                uuid: front.uuid.clone(),
                backoff: Backoff::new(self.config.initial_backoff, self.config.max_backoff),
                next_attempt: now,
                in_flight: false,
                queued: false,
            },
        );
        self.timers.push(Reverse((now, key)));
    }

    /// A new connection or none: calls out belong to the old one (their answers are
    /// ignored), and what was due is due again on the next connection.
    fn new_epoch(&mut self) {
        self.epoch += 1;
        self.call_out = false;
        self.due.clear();
        for f in self.flights.values_mut() {
            f.in_flight = false;
            f.queued = false;
        }
    }

    fn acknowledge(&mut self, key: &TaskKey, uuid: &str, now: Instant) {
        match self.queues.acknowledge(key, uuid) {
            AckOutcome::Acked { terminal, more } => {
                tracing::debug!(task = %key, uuid, terminal, "status update acknowledged");
                self.flights.remove(key);
                if more {
                    self.start_flight(key.clone(), now);
                }
            }
            AckOutcome::UnknownTask => {
                tracing::info!(task = %key, uuid, "acknowledgement for a task with no pending update; ignored");
            }
            AckOutcome::UnknownUuid => {
                tracing::info!(task = %key, uuid, "acknowledgement for an unknown update; ignored");
            }
        }
    }

    fn fire_due(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, key))) = self.timers.pop() else {
                break;
            };
            if self.link.is_none() {
                continue;
            }
            if let Some(f) = self.flights.get_mut(&key)
                && f.next_attempt == at
                && !f.in_flight
                && !f.queued
            {
                f.queued = true;
                self.due.push_back((key, f.uuid.clone()));
            }
        }
        self.send_due(now);
    }

    /// Sends everything due (up to [`MAX_UPDATES_PER_CALL`]) in one call, unless a call
    /// is already out: then it goes when that one is answered.
    fn send_due(&mut self, now: Instant) {
        if self.call_out || self.due.is_empty() {
            return;
        }
        let Some(link) = self.link.as_ref() else {
            return;
        };
        let mut updates = Vec::new();
        let mut sent = Vec::new();
        let mut bytes = 0usize;
        while updates.len() < MAX_UPDATES_PER_CALL {
            let Some((key, uuid)) = self.due.pop_front() else {
                break;
            };
            let (Some(flight), Some(front)) = (self.flights.get_mut(&key), self.queues.front(&key))
            else {
                continue;
            };
            if flight.uuid != uuid || !flight.queued || flight.in_flight {
                continue;
            }
            let latest_state = self
                .queues
                .latest(&key)
                .map_or(front.state, |latest| latest.state);
            let update = StatusUpdateRequest {
                agent_id: link.agent_id.clone(),
                status: Some(front.clone()),
                latest_state,
            };
            let len = prost::Message::encoded_len(&update);
            if !updates.is_empty() && bytes.saturating_add(len) > MAX_CALL_BYTES {
                // The next call takes it.
                self.due.push_front((key, uuid));
                break;
            }
            bytes = bytes.saturating_add(len);
            updates.push(update);
            flight.queued = false;
            flight.in_flight = true;
            flight.next_attempt = later(now, flight.backoff.next_delay());
            sent.push((key, uuid));
        }
        if sent.is_empty() {
            return;
        }
        let Some(tx) = self.self_tx.upgrade() else {
            return;
        };
        tracing::debug!(updates = sent.len(), "sending status updates");
        let batch = StatusUpdateBatch {
            agent_id: link.agent_id.clone(),
            updates,
        };
        let sink = Arc::clone(&link.sink);
        let timeout = self.config.rpc_timeout;
        let epoch = self.epoch;
        self.call_out = true;
        tokio::spawn(async move {
            let answer = match tokio::time::timeout(timeout, sink.send(batch)).await {
                Ok(r) => r,
                Err(_) => Err(tonic::Status::deadline_exceeded("UpdateStatuses timed out")),
            };
            let _ = tx
                .send(Msg::CallDone {
                    sent,
                    epoch,
                    answer,
                })
                .await;
        });
    }

    fn call_done(
        &mut self,
        sent: Vec<(TaskKey, String)>,
        epoch: u64,
        answer: Result<BatchResponse, tonic::Status>,
        now: Instant,
    ) {
        if epoch != self.epoch {
            return;
        }
        self.call_out = false;
        // A failed call is one event, however many updates it carried: log it once.
        let whole_call_failed = answer.is_err();
        if let Err(status) = &answer
            && status.code() != tonic::Code::Unavailable
        {
            tracing::warn!(updates = sent.len(), code = ?status.code(), "status updates not delivered: {}", status.message());
        }
        let results = item_results(sent.len(), answer);
        for ((key, uuid), result) in sent.into_iter().zip(results) {
            self.send_done(key, &uuid, result, !whole_call_failed, now);
        }
        // What fell due while the call was out.
        self.send_due(now);
    }

    /// One update's outcome: schedule its re-send (or, when draining, move on).
    /// `log_failure`: a refusal of this update alone (a failed call is logged once).
    fn send_done(
        &mut self,
        key: TaskKey,
        uuid: &str,
        result: Result<(), tonic::Status>,
        log_failure: bool,
        now: Instant,
    ) {
        let Some(flight) = self.flights.get_mut(&key) else {
            return;
        };
        if flight.uuid != uuid {
            return;
        }
        flight.in_flight = false;
        match result {
            Ok(()) if self.draining => {
                // Shutting down: the master has it; move on without waiting for the ack.
                self.flights.remove(&key);
                self.queues.pop_front(&key);
                self.start_flight(key, now);
            }
            Ok(()) => {
                let at = flight
                    .next_attempt
                    .max(later(now, self.config.taken_resend));
                flight.next_attempt = at;
                self.timers.push(Reverse((at, key)));
            }
            Err(status) if status.code() == tonic::Code::Unavailable => {
                // Flow control (the framework is behind) or a master going away: routine,
                // and no reason to back off further (a growing backoff left updates
                // waiting up to 10 s after the framework had caught up).
                tracing::debug!(task = %key, uuid, "status update deferred: {}", status.message());
                flight.backoff.reset();
                let at = later(now, flight.backoff.next_delay());
                flight.next_attempt = at;
                self.timers.push(Reverse((at, key)));
            }
            Err(status) => {
                if log_failure {
                    tracing::warn!(task = %key, uuid, code = ?status.code(), "status update not delivered: {}", status.message());
                }
                let at = flight.next_attempt.max(now);
                self.timers.push(Reverse((at, key)));
            }
        }
    }

    fn send_once(&self, status: TaskStatus) {
        self.send_unqueued(vec![status]);
    }

    /// Sends updates once, without queueing or re-sending them (answers to
    /// reconciliation), in as few calls as the per-call limit allows.
    fn send_unqueued(&self, mut statuses: Vec<TaskStatus>) {
        let Some(link) = &self.link else {
            tracing::debug!(
                updates = statuses.len(),
                "not connected; reconciliation answers dropped"
            );
            return;
        };
        while !statuses.is_empty() {
            let rest = statuses.split_off(statuses.len().min(MAX_UPDATES_PER_CALL));
            let batch = StatusUpdateBatch {
                agent_id: link.agent_id.clone(),
                updates: statuses
                    .into_iter()
                    .map(|status| StatusUpdateRequest {
                        agent_id: link.agent_id.clone(),
                        latest_state: status.state,
                        status: Some(status),
                    })
                    .collect(),
            };
            statuses = rest;
            let sink = Arc::clone(&link.sink);
            let timeout = self.config.rpc_timeout;
            tokio::spawn(async move {
                match tokio::time::timeout(timeout, sink.send(batch)).await {
                    Ok(Ok(r)) if r.refused.is_empty() => {}
                    Ok(Ok(r)) => tracing::debug!(
                        refused = r.refused.len(),
                        "one-shot status updates refused"
                    ),
                    Ok(Err(status)) => tracing::debug!("one-shot status updates failed: {status}"),
                    Err(_) => tracing::debug!("one-shot status updates timed out"),
                }
            });
        }
    }

    fn reconcile(&self, scope: ReconcileScope) {
        // Answers are fresh updates (new uuid: the master refuses empty ones) sent once;
        // their acknowledgements find no pending update and are ignored.
        let reconciled = |latest: &TaskStatus| TaskStatus {
            uuid: uuid::Uuid::new_v4().to_string(),
            reason: StatusReason::Reconciliation as i32,
            timestamp_ms: now_ms(),
            ..latest.clone()
        };
        let mut answers = Vec::new();
        match scope {
            ReconcileScope::AllEnded => {
                for key in self.queues.keys() {
                    if let Some(latest) = self.queues.latest(key)
                        && state_of(latest).is_terminal()
                    {
                        answers.push(reconciled(latest));
                    }
                }
            }
            ReconcileScope::Ids(ids) => {
                for id in ids {
                    let before = answers.len();
                    for key in self.queues.keys().filter(|k| k.task_id == id) {
                        if let Some(latest) = self.queues.latest(key) {
                            answers.push(reconciled(latest));
                        }
                    }
                    if answers.len() == before {
                        // Without a framework id there is no valid update to send; the
                        // master knows the agent does not list the task.
                        tracing::info!(task_id = %id, "reconciliation for a task unknown to the agent");
                    }
                }
            }
        }
        self.send_unqueued(answers);
    }

    fn check_drain(&mut self, now: Instant) {
        if !self.draining {
            return;
        }
        let expired = self.drain_deadline.is_some_and(|d| now >= d);
        if self.queues.is_empty() || expired {
            if let Some(reply) = self.drain_reply.take() {
                let _ = reply.send(self.queues.len());
            }
            self.drain_deadline = None;
        }
    }
}

/// `now + delay`, saturating at a year from now instead of overflowing.
fn later(now: Instant, delay: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    now.checked_add(delay.min(YEAR)).unwrap_or(now)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn status(fw: &str, task: &str, state: TaskState) -> TaskStatus {
        new_status(
            &TaskKey::new(fw, task),
            "agent",
            Report::new(state, StatusReason::Unspecified, ""),
        )
    }

    #[test]
    fn queue_is_fifo_and_forgets_after_last_ack() {
        let mut q = UpdateQueues::new(8);
        let key = TaskKey::new("fw", "t");
        let s1 = status("fw", "t", TaskState::Starting);
        let s2 = status("fw", "t", TaskState::Running);
        let s3 = status("fw", "t", TaskState::Finished);
        assert_eq!(q.push(s1.clone()), Ok(true));
        assert_eq!(q.push(s2.clone()), Ok(false));
        assert_eq!(q.push(s3.clone()), Ok(false));
        assert_eq!(q.front(&key), Some(&s1));
        assert_eq!(q.latest(&key), Some(&s3));

        // Only the oldest can be acknowledged.
        assert_eq!(q.acknowledge(&key, &s2.uuid), AckOutcome::UnknownUuid);
        assert_eq!(
            q.acknowledge(&key, &s1.uuid),
            AckOutcome::Acked {
                terminal: false,
                more: true
            }
        );
        // A duplicate acknowledgement is unknown.
        assert_eq!(q.acknowledge(&key, &s1.uuid), AckOutcome::UnknownUuid);
        assert_eq!(
            q.acknowledge(&key, &s2.uuid),
            AckOutcome::Acked {
                terminal: false,
                more: true
            }
        );
        assert_eq!(
            q.acknowledge(&key, &s3.uuid),
            AckOutcome::Acked {
                terminal: true,
                more: false
            }
        );
        assert!(!q.contains(&key));
        assert!(q.is_empty());
        assert_eq!(q.acknowledge(&key, &s3.uuid), AckOutcome::UnknownTask);
    }

    #[test]
    fn queues_are_per_task_and_bounded() {
        let mut q = UpdateQueues::new(2);
        assert_eq!(q.push(status("fw", "a", TaskState::Starting)), Ok(true));
        assert_eq!(q.push(status("fw", "b", TaskState::Starting)), Ok(true));
        assert_eq!(q.push(status("other", "a", TaskState::Starting)), Ok(true));
        assert_eq!(q.push(status("fw", "a", TaskState::Running)), Ok(false));
        let err = q
            .push(status("fw", "a", TaskState::Finished))
            .expect_err("limit");
        assert_eq!(err.limit, 2);
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn new_status_fields() {
        let s = new_status(
            &TaskKey::new("fw", "t"),
            "a1",
            Report {
                state: TaskState::Failed,
                reason: StatusReason::CommandExited,
                message: "command exited with status 3".into(),
                exit_code: Some(3),
                healthy: None,
            },
        );
        assert_eq!(s.framework_id, "fw");
        assert_eq!(s.task_id, "t");
        assert_eq!(s.agent_id, "a1");
        assert_eq!(s.state, TaskState::Failed as i32);
        assert_eq!(s.source, StatusSource::SourceAgent as i32);
        assert_eq!(s.exit_code, Some(3));
        assert!(uuid::Uuid::parse_str(&s.uuid).is_ok());
        assert!(s.timestamp_ms > 1_600_000_000_000);
    }

    /// How the recording sink answers a call.
    type Answer =
        Box<dyn Fn(&StatusUpdateBatch) -> Result<BatchResponse, tonic::Status> + Send + Sync>;

    /// Records every call with the time it arrived; answers with `answer` (default: all
    /// taken), after `gate` lets the call through when one is set.
    struct Recorder {
        calls: Mutex<Vec<(Instant, StatusUpdateBatch)>>,
        tx: mpsc::UnboundedSender<()>,
        answer: Mutex<Option<Answer>>,
        gate: Option<Arc<tokio::sync::Semaphore>>,
    }

    impl StatusSink for Recorder {
        fn send(
            &self,
            batch: StatusUpdateBatch,
        ) -> BoxFuture<'static, Result<BatchResponse, tonic::Status>> {
            let answer = match self.answer.lock() {
                Ok(a) => a
                    .as_ref()
                    .map_or(Ok(BatchResponse::default()), |f| f(&batch)),
                Err(_) => Ok(BatchResponse::default()),
            };
            if let Ok(mut calls) = self.calls.lock() {
                calls.push((Instant::now(), batch));
            }
            let _ = self.tx.send(());
            let gate = self.gate.clone();
            Box::pin(async move {
                if let Some(gate) = gate
                    && let Ok(permit) = gate.acquire().await
                {
                    permit.forget();
                }
                answer
            })
        }
    }

    fn fast() -> UpdateConfig {
        UpdateConfig {
            initial_backoff: Duration::from_millis(40),
            max_backoff: Duration::from_millis(160),
            taken_resend: Duration::from_millis(40),
            rpc_timeout: Duration::from_secs(1),
            max_queued_per_task: 8,
        }
    }

    fn recorder_with(
        gate: Option<Arc<tokio::sync::Semaphore>>,
    ) -> (Arc<Recorder>, mpsc::UnboundedReceiver<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Arc::new(Recorder {
                calls: Mutex::new(Vec::new()),
                tx,
                answer: Mutex::new(None),
                gate,
            }),
            rx,
        )
    }

    fn recorder() -> (Arc<Recorder>, mpsc::UnboundedReceiver<()>) {
        recorder_with(None)
    }

    fn calls(r: &Recorder) -> Vec<(Instant, StatusUpdateBatch)> {
        r.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Every update sent, with the time of its call.
    fn sent(r: &Recorder) -> Vec<(Instant, StatusUpdateRequest)> {
        calls(r)
            .into_iter()
            .flat_map(|(at, b)| b.updates.into_iter().map(move |u| (at, u)))
            .collect()
    }

    fn uuid_of(req: &StatusUpdateRequest) -> String {
        req.status
            .as_ref()
            .map(|s| s.uuid.clone())
            .unwrap_or_default()
    }

    async fn next_send(rx: &mut mpsc::UnboundedReceiver<()>) {
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert!(matches!(got, Ok(Some(()))), "no status update sent in time");
    }

    #[tokio::test]
    async fn resends_with_backoff_until_acked_then_sends_next() {
        let (updates, _task) = StatusUpdates::spawn(fast());
        let (rec, mut rx) = recorder();
        updates.connected(rec.clone(), "a1".into()).await;
        let s1 = status("fw", "t", TaskState::Starting);
        let s2 = status("fw", "t", TaskState::Running);
        updates.enqueue(s1.clone()).await;
        updates.enqueue(s2.clone()).await;
        for _ in 0..4 {
            next_send(&mut rx).await;
        }
        let log = sent(&rec);
        // Only the oldest update was sent, 4 times, with growing gaps.
        assert!(log.iter().all(|(_, r)| uuid_of(r) == s1.uuid));
        assert!(log.iter().all(|(_, r)| r.agent_id == "a1"));
        // The first send may precede the second enqueue; later ones know RUNNING is next.
        assert!(
            log[1..]
                .iter()
                .all(|(_, r)| r.latest_state == TaskState::Running as i32)
        );
        let gaps: Vec<Duration> = log.windows(2).map(|w| w[1].0 - w[0].0).collect();
        assert!(gaps[0] >= Duration::from_millis(40), "{gaps:?}");
        assert!(gaps[1] >= Duration::from_millis(80), "{gaps:?}");
        assert!(gaps[2] >= Duration::from_millis(160), "{gaps:?}");

        // An unknown uuid changes nothing; the right one releases the next update.
        updates
            .acknowledge(TaskKey::new("fw", "t"), "nonsense".into())
            .await;
        updates
            .acknowledge(TaskKey::new("fw", "t"), s1.uuid.clone())
            .await;
        loop {
            next_send(&mut rx).await;
            let last = sent(&rec).last().map(|(_, r)| uuid_of(r));
            if last.as_deref() == Some(s2.uuid.as_str()) {
                break;
            }
        }
        updates
            .acknowledge(TaskKey::new("fw", "t"), s2.uuid.clone())
            .await;
        assert!(updates.pending().await.is_empty());
    }

    #[tokio::test]
    async fn nothing_is_sent_while_disconnected() {
        let (updates, _task) = StatusUpdates::spawn(fast());
        let s1 = status("fw", "t", TaskState::Starting);
        updates.enqueue(s1.clone()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (rec, mut rx) = recorder();
        updates.connected(rec.clone(), "a1".into()).await;
        next_send(&mut rx).await;
        updates.disconnected().await;
        let before = sent(&rec).len();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(sent(&rec).len(), before);
        assert_eq!(updates.pending().await.len(), 1);
    }

    #[tokio::test]
    async fn unless_pending_does_not_follow_a_pending_update() {
        let (updates, _task) = StatusUpdates::spawn(fast());
        updates
            .enqueue(status("fw", "t", TaskState::Finished))
            .await;
        updates
            .enqueue_unless_pending(status("fw", "t", TaskState::Lost))
            .await;
        updates
            .enqueue_unless_pending(status("fw", "u", TaskState::Lost))
            .await;
        let pending = updates.pending().await;
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[0].1.len(), 1);
        assert_eq!(pending[0].1[0].state, TaskState::Finished as i32);
        assert_eq!(pending[1].0, TaskKey::new("fw", "u"));
    }

    #[tokio::test]
    async fn drain_counts_accepted_updates_as_delivered() {
        let (updates, _task) = StatusUpdates::spawn(fast());
        let (rec, _rx) = recorder();
        updates.connected(rec.clone(), "a1".into()).await;
        updates.enqueue(status("fw", "t", TaskState::Running)).await;
        updates.enqueue(status("fw", "t", TaskState::Killed)).await;
        let left = updates.drain(Duration::from_secs(5)).await;
        assert_eq!(left, 0);
        let states: Vec<i32> = sent(&rec)
            .iter()
            .filter_map(|(_, r)| r.status.as_ref().map(|s| s.state))
            .collect();
        assert!(states.contains(&(TaskState::Killed as i32)), "{states:?}");
    }

    #[tokio::test]
    async fn drain_gives_up_at_its_deadline() {
        let (updates, _task) = StatusUpdates::spawn(fast());
        updates.enqueue(status("fw", "t", TaskState::Running)).await;
        let left = updates.drain(Duration::from_millis(100)).await;
        assert_eq!(left, 1);
    }

    #[test]
    fn item_results_follow_the_refusals_by_index() {
        use agora_proto::v1::batch_response::Refused;
        let answer = BatchResponse {
            refused: vec![
                Refused {
                    index: 1,
                    code: tonic::Code::Unavailable as i32,
                    message: "behind".into(),
                },
                Refused {
                    index: 7,
                    code: tonic::Code::InvalidArgument as i32,
                    message: "no such item".into(),
                },
            ],
        };
        let r = item_results(3, Ok(answer));
        assert!(r[0].is_ok() && r[2].is_ok());
        let refused = r[1].as_ref().expect_err("refused");
        assert_eq!(refused.code(), tonic::Code::Unavailable);
        assert_eq!(refused.message(), "behind");
        let failed = item_results(2, Err(tonic::Status::not_found("unknown agent")));
        assert!(
            failed
                .iter()
                .all(|r| r.as_ref().is_err_and(|e| e.code() == tonic::Code::NotFound))
        );
        assert!(item_results(0, Ok(BatchResponse::default())).is_empty());
    }

    fn tasks_of(batch: &StatusUpdateBatch) -> Vec<String> {
        let mut ids: Vec<String> = batch
            .updates
            .iter()
            .filter_map(|u| u.status.as_ref().map(|s| s.task_id.clone()))
            .collect();
        ids.sort();
        ids
    }

    #[tokio::test]
    async fn due_updates_of_many_tasks_go_in_one_call() {
        let (updates, _task) = StatusUpdates::spawn(fast());
        let mut want = Vec::new();
        for i in 0..50 {
            let id = format!("t{i:02}");
            updates
                .enqueue(status("fw", &id, TaskState::Starting))
                .await;
            want.push(id);
        }
        let (rec, mut rx) = recorder();
        updates.connected(rec.clone(), "a1".into()).await;
        next_send(&mut rx).await;
        let first = calls(&rec).remove(0).1;
        assert_eq!(first.agent_id, "a1");
        assert!(first.updates.iter().all(|u| u.agent_id == "a1"));
        assert_eq!(tasks_of(&first), want);
    }

    #[tokio::test]
    async fn one_call_at_a_time_and_the_next_carries_what_fell_due() {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let (updates, _task) = StatusUpdates::spawn(UpdateConfig {
            taken_resend: Duration::from_secs(30),
            ..fast()
        });
        let (rec, mut rx) = recorder_with(Some(Arc::clone(&gate)));
        updates.connected(rec.clone(), "a1".into()).await;
        updates
            .enqueue(status("fw", "t1", TaskState::Running))
            .await;
        next_send(&mut rx).await;
        updates
            .enqueue(status("fw", "t2", TaskState::Running))
            .await;
        updates
            .enqueue(status("fw", "t3", TaskState::Running))
            .await;
        // The first call is still out: the new updates wait for its answer.
        assert_eq!(updates.pending().await.len(), 3);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(
            calls(&rec).len(),
            1,
            "a second call while the first was out"
        );
        gate.add_permits(1);
        next_send(&mut rx).await;
        let all = calls(&rec);
        assert_eq!(tasks_of(&all[0].1), ["t1"]);
        assert_eq!(tasks_of(&all[1].1), ["t2", "t3"]);
        gate.add_permits(100);
    }

    #[tokio::test]
    async fn refusals_by_index_keep_their_own_schedule() {
        let (updates, _task) = StatusUpdates::spawn(UpdateConfig {
            taken_resend: Duration::from_secs(30),
            ..fast()
        });
        let (rec, mut rx) = recorder();
        if let Ok(mut answer) = rec.answer.lock() {
            *answer = Some(Box::new(|batch: &StatusUpdateBatch| {
                use agora_proto::v1::batch_response::Refused;
                let refused = batch
                    .updates
                    .iter()
                    .enumerate()
                    .filter_map(|(i, u)| {
                        let code = match u.status.as_ref()?.task_id.as_str() {
                            "slow" => tonic::Code::Unavailable,
                            "bad" => tonic::Code::FailedPrecondition,
                            _ => return None,
                        };
                        Some(Refused {
                            index: i as u32,
                            code: code as i32,
                            message: "refused".into(),
                        })
                    })
                    .collect();
                Ok(BatchResponse { refused })
            }));
        }
        let ok = status("fw", "ok", TaskState::Running);
        updates.enqueue(ok.clone()).await;
        updates
            .enqueue(status("fw", "slow", TaskState::Running))
            .await;
        updates
            .enqueue(status("fw", "bad", TaskState::Running))
            .await;
        updates.connected(rec.clone(), "a1".into()).await;
        for _ in 0..4 {
            next_send(&mut rx).await;
        }
        let all = calls(&rec);
        assert_eq!(tasks_of(&all[0].1), ["bad", "ok", "slow"]);
        // The taken update waits for its acknowledgement; the refused ones are re-sent.
        for (_, later_call) in &all[1..] {
            let tasks = tasks_of(later_call);
            assert!(!tasks.contains(&"ok".to_string()), "{tasks:?}");
            assert!(!tasks.is_empty());
        }
        let resent: Vec<String> = all[1..].iter().flat_map(|(_, b)| tasks_of(b)).collect();
        assert!(resent.contains(&"slow".to_string()) && resent.contains(&"bad".to_string()));
        updates
            .acknowledge(TaskKey::new("fw", "ok"), ok.uuid.clone())
            .await;
        let pending: Vec<String> = updates
            .pending()
            .await
            .into_iter()
            .map(|(k, _)| k.task_id)
            .collect();
        assert_eq!(pending, ["bad", "slow"]);
    }

    #[tokio::test]
    async fn a_failed_call_fails_every_update_in_it() {
        let (updates, _task) = StatusUpdates::spawn(UpdateConfig {
            taken_resend: Duration::from_secs(30),
            ..fast()
        });
        let (rec, mut rx) = recorder();
        if let Ok(mut answer) = rec.answer.lock() {
            *answer = Some(Box::new(|_: &StatusUpdateBatch| {
                Err(tonic::Status::internal("master broke"))
            }));
        }
        updates.enqueue(status("fw", "a", TaskState::Running)).await;
        updates.enqueue(status("fw", "b", TaskState::Running)).await;
        updates.connected(rec.clone(), "a1".into()).await;
        next_send(&mut rx).await;
        next_send(&mut rx).await;
        let all = calls(&rec);
        assert_eq!(tasks_of(&all[0].1), ["a", "b"]);
        assert_eq!(tasks_of(&all[1].1), ["a", "b"], "both re-sent together");
        // Taken now: nothing more is sent before the (long) re-send delay.
        if let Ok(mut answer) = rec.answer.lock() {
            *answer = None;
        }
        next_send(&mut rx).await;
        let taken = calls(&rec).len();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(calls(&rec).len(), taken);
        assert_eq!(
            updates.pending().await.len(),
            2,
            "taken is not acknowledged"
        );
    }

    #[tokio::test]
    async fn a_call_stays_under_its_byte_bound_and_the_rest_follows() {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let (updates, _task) = StatusUpdates::spawn(UpdateConfig {
            taken_resend: Duration::from_secs(30),
            ..fast()
        });
        // Five updates of 300 KB each: three fit under 1 MiB, the rest go next.
        for i in 0..5 {
            let mut s = status("fw", &format!("t{i}"), TaskState::Running);
            s.message = "x".repeat(300 * 1024);
            updates.enqueue(s).await;
        }
        let (rec, mut rx) = recorder_with(Some(Arc::clone(&gate)));
        updates.connected(rec.clone(), "a1".into()).await;
        next_send(&mut rx).await;
        gate.add_permits(1);
        next_send(&mut rx).await;
        gate.add_permits(100);
        let all = calls(&rec);
        let sizes: Vec<usize> = all
            .iter()
            .map(|(_, b)| prost::Message::encoded_len(b))
            .collect();
        assert_eq!(all[0].1.updates.len(), 3, "{sizes:?}");
        assert_eq!(all[1].1.updates.len(), 2, "{sizes:?}");
        assert!(sizes.iter().all(|s| *s <= MAX_CALL_BYTES + 64), "{sizes:?}");
    }
}
