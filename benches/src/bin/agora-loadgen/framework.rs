//! An emulated framework: speaks the real scheduler protocol (`agora.v1.Scheduler`). It
//! subscribes, packs offered resources with tasks of a configured shape and duration while
//! the run's launch budget lasts (declining what it cannot use), acknowledges every update
//! (gathered: the acknowledgements of all events read in one go travel in one
//! `AcknowledgeBatch` call, with one such call in flight at a time),
//! optionally kills a fraction of its tasks, re-subscribes with its id after losing the
//! master, and measures: ACCEPT sent -> RUNNING received per task, and (through `Shared`)
//! resources freed on an agent -> next offer of that agent.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use agora_proto::TaskState;
use agora_proto::v1::{self, event::Event as Ev, scheduler_client::SchedulerClient};
use agora_resources::Resources;
use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tonic::Streaming;
use tonic::transport::Channel;
use tracing::warn;

use crate::agent::DURATION_LABEL;
use crate::shared::Shared;

const RPC_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct FrameworkSpec {
    pub index: usize,
    pub name: String,
    pub role: String,
    /// Resources of one task (scalars).
    pub shape: Resources,
    pub duration: Duration,
    /// Durations are uniform in `duration +/- jitter`.
    pub jitter: Duration,
    /// Filter for offer resources an accept leaves unused.
    pub refuse_seconds: f64,
    /// Filter when declining for lack of budget (the framework revives when it grows).
    pub idle_refuse_seconds: f64,
    /// Fraction of tasks killed by the framework some time after RUNNING.
    pub kill_fraction: f64,
    pub max_tasks_per_offer: u64,
    /// Ask for all task states after re-subscribing.
    pub reconcile_on_resubscribe: bool,
    pub reconnect_max: Duration,
}

enum Note {
    AcceptFailed(Vec<String>),
    AcksDone,
}

/// Most acknowledgements in one call.
const MAX_ACKS: usize = 5_000;
/// Most accepts in one call.
const MAX_ACCEPTS: usize = 1_000;
/// Most tasks launched by one call (a task here encodes to about 140 bytes).
const MAX_TASKS_PER_CALL: usize = 4_000;

enum SessionEnd {
    Stop,
    Lost,
}

struct Framework {
    spec: FrameworkSpec,
    shared: Arc<Shared>,
    client: SchedulerClient<Channel>,
    id: String,
    /// Scalar needs of one task, thousandths.
    needs: Vec<(String, u64)>,
    shape_proto: Vec<v1::Resource>,
    next_task: u64,
    /// Task id -> when its ACCEPT was sent; removed at RUNNING (or the end).
    accepted_at: HashMap<String, Instant>,
    /// Task id -> agent id, for kills.
    agent_of: HashMap<String, String>,
    kills: BinaryHeap<Reverse<(Instant, String)>>,
    notes_tx: mpsc::UnboundedSender<Note>,
    /// Acknowledgements for the next `AcknowledgeBatch` call.
    acks: Vec<v1::AcknowledgeRequest>,
    acks_in_flight: bool,
}

/// The runtime emulated frameworks run on (see `main`); unset: the caller's.
static RUNTIME: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();

pub fn use_runtime(handle: tokio::runtime::Handle) {
    let _ = RUNTIME.set(handle);
}

/// A channel to the master whose connection is driven on the frameworks' runtime.
pub fn channel(addr: std::net::SocketAddr) -> anyhow::Result<Channel> {
    let _guard = RUNTIME.get().map(|h| h.enter());
    crate::cluster::channel(addr)
}

pub fn spawn(
    spec: FrameworkSpec,
    channel: Channel,
    shared: Arc<Shared>,
) -> tokio::task::JoinHandle<()> {
    let (notes_tx, notes_rx) = mpsc::unbounded_channel();
    let needs = spec
        .shape
        .names()
        .into_iter()
        .map(|n| (n.to_string(), spec.shape.scalar(n).thousandths()))
        .filter(|(_, t)| *t > 0)
        .collect();
    let fw = Framework {
        shape_proto: spec.shape.to_proto(),
        spec,
        shared,
        client: SchedulerClient::new(channel).max_decoding_message_size(256 << 20),
        id: String::new(),
        needs,
        next_task: 0,
        accepted_at: HashMap::new(),
        agent_of: HashMap::new(),
        kills: BinaryHeap::new(),
        notes_tx,
        acks: Vec::new(),
        acks_in_flight: false,
    };
    match RUNTIME.get() {
        Some(h) => h.spawn(fw.run(notes_rx)),
        None => tokio::spawn(fw.run(notes_rx)),
    }
}

fn jitter(max: Duration) -> Duration {
    let ms = max.as_millis().max(1) as u64;
    Duration::from_millis(rand::rng().random_range(0..ms))
}

impl Framework {
    async fn run(mut self, mut notes: mpsc::UnboundedReceiver<Note>) {
        let mut stop = self.shared.stop.subscribe();
        let mut backoff = Duration::from_millis(200);
        loop {
            if self.shared.stopped() {
                return;
            }
            match self.subscribe().await {
                Ok(stream) => {
                    backoff = Duration::from_millis(200);
                    match self.session(stream, &mut notes).await {
                        SessionEnd::Stop => return,
                        SessionEnd::Lost => {
                            self.shared
                                .counters
                                .framework_streams_lost
                                .fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Err(s) => {
                    if s.code() == tonic::Code::FailedPrecondition {
                        warn!(framework = %self.id, "subscription refused: {}", s.message());
                        return;
                    }
                }
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(jitter(backoff)) => {}
            }
            backoff = (backoff * 2).min(self.spec.reconnect_max);
        }
    }

    async fn subscribe(&mut self) -> Result<Streaming<v1::Event>, tonic::Status> {
        let resubscribe = !self.id.is_empty();
        let request = v1::SubscribeRequest {
            framework: Some(v1::FrameworkInfo {
                id: self.id.clone(),
                name: self.spec.name.clone(),
                roles: vec![self.spec.role.clone()],
                failover_timeout_seconds: 3600.0,
                hostname: "agora-loadgen".into(),
                ..v1::FrameworkInfo::default()
            }),
            secret: String::new(),
        };
        let mut stream = tokio::time::timeout(RPC_TIMEOUT, self.client.subscribe(request))
            .await
            .map_err(|_| tonic::Status::deadline_exceeded("subscribe"))??
            .into_inner();
        let first = tokio::time::timeout(RPC_TIMEOUT, stream.message())
            .await
            .map_err(|_| tonic::Status::deadline_exceeded("subscribed"))??;
        let Some(Ev::Subscribed(s)) = first.and_then(|e| e.event) else {
            return Err(tonic::Status::internal("first event is not SUBSCRIBED"));
        };
        let now = Instant::now();
        self.id = s.framework_id;
        let c = &self.shared.counters;
        if resubscribe {
            c.resubscriptions.fetch_add(1, Ordering::Relaxed);
        } else {
            c.subscriptions.fetch_add(1, Ordering::Relaxed);
        }
        self.shared
            .framework_subscribed(&s.master_id, self.spec.index, now.into_std());
        if resubscribe && self.spec.reconcile_on_resubscribe {
            let mut client = self.client.clone();
            let request = v1::ReconcileRequest {
                framework_id: self.id.clone(),
                tasks: Vec::new(),
            };
            tokio::spawn(async move {
                let _ = tokio::time::timeout(RPC_TIMEOUT, client.reconcile(request)).await;
            });
        }
        Ok(stream)
    }

    async fn session(
        &mut self,
        mut stream: Streaming<v1::Event>,
        notes: &mut mpsc::UnboundedReceiver<Note>,
    ) -> SessionEnd {
        let mut stop = self.shared.stop.subscribe();
        let mut budget = self.shared.budget_epoch.subscribe();
        budget.mark_unchanged();
        // Acknowledgements of an earlier session were for another subscription.
        self.acks.clear();
        self.acks_in_flight = false;
        loop {
            let next_kill = self.kills.peek().map(|k| k.0.0);
            let flush = !self.acks.is_empty() && !self.acks_in_flight;
            tokio::select! {
                // In this order, so the acknowledgements go only once no event is ready:
                // everything read in one go is acknowledged in one call.
                biased;
                _ = stop.wait_for(|s| *s) => return SessionEnd::Stop,
                ev = stream.message() => match ev {
                    Ok(Some(ev)) => {
                        if let Some(end) = self.event(ev) {
                            return end;
                        }
                        // Under a steady stream of events, do not wait for a pause.
                        if self.acks.len() >= MAX_ACKS && !self.acks_in_flight {
                            self.flush_acks();
                        }
                    }
                    Ok(None) => {
                        self.shared.note_error("framework stream", &tonic::Status::ok("ended by the master"));
                        return SessionEnd::Lost;
                    }
                    Err(s) => {
                        self.shared.note_error("framework stream", &s);
                        return SessionEnd::Lost;
                    }
                },
                Ok(()) = budget.changed() => self.revive(),
                Some(note) = notes.recv() => match note {
                    Note::AcceptFailed(ids) => {
                        for id in ids {
                            self.accepted_at.remove(&id);
                            self.agent_of.remove(&id);
                        }
                    }
                    Note::AcksDone => self.acks_in_flight = false,
                },
                _ = async {
                    match next_kill {
                        Some(t) => sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                } => self.fire_kills(),
                _ = std::future::ready(()), if flush => self.flush_acks(),
            }
        }
    }

    fn revive(&self) {
        let mut client = self.client.clone();
        let request = v1::ReviveRequest {
            framework_id: self.id.clone(),
            roles: Vec::new(),
        };
        tokio::spawn(async move {
            let _ = tokio::time::timeout(RPC_TIMEOUT, client.revive(request)).await;
        });
    }

    fn event(&mut self, ev: v1::Event) -> Option<SessionEnd> {
        match ev.event? {
            Ev::Offers(o) => self.offers(o.offers),
            Ev::Update(u) => {
                if let Some(s) = u.status {
                    self.update(s);
                }
            }
            Ev::Rescind(_) => {
                self.shared
                    .counters
                    .rescinds
                    .fetch_add(1, Ordering::Relaxed);
            }
            Ev::Error(e) => {
                warn!(framework = %self.id, "master ended the subscription: {}", e.message);
                return Some(SessionEnd::Lost);
            }
            Ev::Subscribed(_) | Ev::Message(_) | Ev::Failure(_) | Ev::Heartbeat(_) => {}
        }
        None
    }

    /// How many tasks of the shape fit in an offer.
    fn fits(&self, offer: &v1::Offer) -> u64 {
        let Ok(res) = Resources::from_proto(&offer.resources) else {
            return 0;
        };
        self.needs
            .iter()
            .map(|(name, need)| res.scalar(name).thousandths() / need)
            .min()
            .unwrap_or(0)
            .min(self.spec.max_tasks_per_offer)
    }

    fn duration(&self) -> Duration {
        let j = self.spec.jitter.as_millis() as i64;
        let base = self.spec.duration.as_millis() as i64;
        let d = if j > 0 {
            base + rand::rng().random_range(-j..=j)
        } else {
            base
        };
        Duration::from_millis(d.max(0) as u64)
    }

    fn offers(&mut self, offers: Vec<v1::Offer>) {
        let now = Instant::now();
        let c = &self.shared.counters;
        c.offers.fetch_add(offers.len() as u64, Ordering::Relaxed);
        let mut decline = Vec::new();
        let mut accepts = Vec::new();
        for offer in offers {
            self.shared.offer_received(&offer.agent_id, now.into_std());
            let n = self.shared.take_budget(self.fits(&offer));
            if n == 0 {
                decline.push(offer.id);
                continue;
            }
            let mut tasks = Vec::with_capacity(n as usize);
            for _ in 0..n {
                self.next_task += 1;
                let task_id = format!("lg{}-{}", self.spec.index, self.next_task);
                let d = self.duration();
                tasks.push(v1::TaskInfo {
                    name: "loadgen".into(),
                    task_id: task_id.clone(),
                    agent_id: offer.agent_id.clone(),
                    resources: self.shape_proto.clone(),
                    command: Some(v1::CommandInfo {
                        run: Some(v1::command_info::Run::Shell(format!(
                            "sleep {:.3}",
                            d.as_secs_f64()
                        ))),
                        ..v1::CommandInfo::default()
                    }),
                    labels: vec![v1::Label {
                        key: DURATION_LABEL.into(),
                        value: d.as_millis().to_string(),
                    }],
                    ..v1::TaskInfo::default()
                });
                self.accepted_at.insert(task_id.clone(), now);
                self.agent_of.insert(task_id, offer.agent_id.clone());
            }
            accepts.push((offer.id, tasks));
        }
        // One event's accepts in few calls (10,000 offers of a 50,000-agent cluster as one
        // call each flooded the frameworks' thread and the master's queue), each call under
        // the master's 4 MiB message limit (1,000 offers of 32 tasks were 4.5 MB).
        let mut call = Vec::new();
        let mut tasks_in_call = 0;
        for (offer_id, tasks) in accepts {
            if !call.is_empty()
                && (call.len() >= MAX_ACCEPTS || tasks_in_call + tasks.len() > MAX_TASKS_PER_CALL)
            {
                self.accept(std::mem::take(&mut call));
                tasks_in_call = 0;
            }
            tasks_in_call += tasks.len();
            call.push((offer_id, tasks));
        }
        if !call.is_empty() {
            self.accept(call);
        }
        if !decline.is_empty() {
            c.offers_declined
                .fetch_add(decline.len() as u64, Ordering::Relaxed);
            let mut client = self.client.clone();
            let request = v1::DeclineRequest {
                framework_id: self.id.clone(),
                offer_ids: decline,
                filters: Some(v1::Filters {
                    refuse_seconds: Some(self.spec.idle_refuse_seconds),
                }),
            };
            tokio::spawn(async move {
                let _ = tokio::time::timeout(RPC_TIMEOUT, client.decline(request)).await;
            });
        }
    }

    /// Accept offers, each with its tasks, in one `AcceptBatch` call.
    fn accept(&self, offers: Vec<(String, Vec<v1::TaskInfo>)>) {
        let per_item: Vec<(u64, Vec<String>)> = offers
            .iter()
            .map(|(_, tasks)| {
                (
                    tasks.len() as u64,
                    tasks.iter().map(|t| t.task_id.clone()).collect(),
                )
            })
            .collect();
        let accepts = offers
            .into_iter()
            .map(|(offer_id, tasks)| v1::AcceptRequest {
                framework_id: String::new(),
                offer_ids: vec![offer_id],
                operations: vec![v1::Operation {
                    operation: Some(v1::operation::Operation::Launch(v1::operation::Launch {
                        tasks,
                    })),
                }],
                filters: Some(v1::Filters {
                    refuse_seconds: Some(self.spec.refuse_seconds),
                }),
            })
            .collect();
        let request = v1::AcceptBatchRequest {
            framework_id: self.id.clone(),
            accepts,
        };
        let mut client = self.client.clone();
        let shared = self.shared.clone();
        let notes = self.notes_tx.clone();
        tokio::spawn(async move {
            shared
                .counters
                .accepts
                .fetch_add(per_item.len() as u64, Ordering::Relaxed);
            let result = tokio::time::timeout(RPC_TIMEOUT, client.accept_batch(request)).await;
            let mut failed = vec![true; per_item.len()];
            match &result {
                Ok(Ok(r)) => {
                    failed.iter_mut().for_each(|f| *f = false);
                    for x in &r.get_ref().refused {
                        if let Some(f) = failed.get_mut(x.index as usize) {
                            *f = true;
                        }
                    }
                    if let Some(first) = r.get_ref().refused.first() {
                        let s = tonic::Status::new(
                            tonic::Code::from(first.code),
                            first.message.clone(),
                        );
                        tracing::debug!("accept refused: {s}");
                        shared.note_error("accept", &s);
                    }
                }
                Ok(Err(s)) => shared.note_error("accept", s),
                Err(_) => shared.note_error(
                    "accept",
                    &tonic::Status::deadline_exceeded("harness timeout"),
                ),
            }
            let now = std::time::Instant::now();
            let mut lost_ids = Vec::new();
            for ((n, ids), failed) in per_item.into_iter().zip(failed) {
                if failed {
                    shared
                        .counters
                        .accept_errors
                        .fetch_add(1, Ordering::Relaxed);
                    shared.give_back_budget(n);
                    lost_ids.extend(ids);
                } else {
                    shared.launched(n, now);
                }
            }
            if !lost_ids.is_empty() {
                let _ = notes.send(Note::AcceptFailed(lost_ids));
            }
        });
    }

    fn update(&mut self, s: v1::TaskStatus) {
        let now = Instant::now();
        let c = &self.shared.counters;
        c.updates_received.fetch_add(1, Ordering::Relaxed);
        if !s.uuid.is_empty() {
            self.acks.push(v1::AcknowledgeRequest {
                framework_id: String::new(),
                agent_id: s.agent_id.clone(),
                task_id: s.task_id.clone(),
                uuid: s.uuid.clone(),
            });
        }
        if s.reason == v1::StatusReason::Reconciliation as i32 {
            c.reconcile_answers.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let state = TaskState::try_from(s.state).unwrap_or(TaskState::Unspecified);
        match state {
            TaskState::Running => {
                if let Some(sent) = self.accepted_at.remove(&s.task_id) {
                    self.shared
                        .running(Some(now.duration_since(sent)), now.into_std());
                    if self.spec.kill_fraction > 0.0
                        && rand::rng().random_bool(self.spec.kill_fraction.clamp(0.0, 1.0))
                    {
                        let at = now + jitter(self.spec.duration / 2);
                        self.kills.push(Reverse((at, s.task_id.clone())));
                    }
                }
            }
            st if st.is_terminal() => {
                self.accepted_at.remove(&s.task_id);
                // Count each task's end once: a re-sent terminal update may be relayed
                // again (its first relay's acknowledgement was slow).
                if self.agent_of.remove(&s.task_id).is_none() {
                    c.duplicate_ends.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                self.shared.ended(now.into_std());
                match st {
                    TaskState::Finished => c.finished.fetch_add(1, Ordering::Relaxed),
                    TaskState::Killed => c.killed.fetch_add(1, Ordering::Relaxed),
                    _ => {
                        let n = c.lost_or_failed.fetch_add(1, Ordering::Relaxed);
                        if n < 5 {
                            warn!(task = %s.task_id, state = st.as_str_name(), reason = s.reason, "task ended unexpectedly: {}", s.message);
                        }
                        n
                    }
                };
            }
            _ => {}
        }
    }

    /// Send the gathered acknowledgements in one call.
    fn flush_acks(&mut self) {
        let take = self.acks.len().min(MAX_ACKS);
        let acks: Vec<v1::AcknowledgeRequest> = self.acks.drain(..take).collect();
        let n = acks.len() as u64;
        let request = v1::AcknowledgeBatchRequest {
            framework_id: self.id.clone(),
            acks,
        };
        self.acks_in_flight = true;
        let mut client = self.client.clone();
        let shared = self.shared.clone();
        let notes = self.notes_tx.clone();
        tokio::spawn(async move {
            let result = tokio::time::timeout(RPC_TIMEOUT, client.acknowledge_batch(request)).await;
            let _ = notes.send(Note::AcksDone);
            let c = &shared.counters;
            match result {
                Ok(Ok(r)) => {
                    let refused = r.into_inner().refused;
                    c.acks_sent
                        .fetch_add(n - refused.len() as u64, Ordering::Relaxed);
                    if let Some(first) = refused.first() {
                        let s = tonic::Status::new(
                            tonic::Code::from(first.code),
                            first.message.clone(),
                        );
                        shared.note_error("acknowledge", &s);
                        c.ack_errors
                            .fetch_add(refused.len() as u64, Ordering::Relaxed);
                    }
                }
                Ok(Err(s)) => {
                    shared.note_error("acknowledge", &s);
                    c.ack_errors.fetch_add(n, Ordering::Relaxed);
                }
                Err(_) => {
                    shared.note_error(
                        "acknowledge",
                        &tonic::Status::deadline_exceeded("harness timeout"),
                    );
                    c.ack_errors.fetch_add(n, Ordering::Relaxed);
                }
            }
        });
    }

    fn fire_kills(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, _))) = self.kills.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, task_id))) = self.kills.pop() else {
                break;
            };
            let Some(agent_id) = self.agent_of.get(&task_id).cloned() else {
                continue;
            };
            self.shared
                .counters
                .kills_sent
                .fetch_add(1, Ordering::Relaxed);
            let mut client = self.client.clone();
            let request = v1::KillRequest {
                framework_id: self.id.clone(),
                task_id,
                agent_id,
                kill_policy: None,
            };
            tokio::spawn(async move {
                let _ = tokio::time::timeout(RPC_TIMEOUT, client.kill(request)).await;
            });
        }
    }
}
