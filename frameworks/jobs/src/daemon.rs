//! The daemon's moving parts: the actor that owns the engine and the store, and the SDK
//! scheduler that forwards the master's events to it.
//!
//! Owns the order of effects: every engine change is committed to the store *before*
//! anything leaves the process (a launch, a kill, an API answer, an event), and a status
//! update is committed before the SDK acknowledges it. Status updates are applied as they
//! come and committed together: the SDK acknowledges a burst of them after
//! [`Scheduler::before_acknowledge`], which waits for that one commit (one fsync per
//! burst, not per update). It must never decide anything the
//! engine decides, never hold the engine anywhere but in the actor, and never keep running
//! on a store it could not write (that would let memory and disk disagree: it stops, and a
//! restart recovers from disk).

use std::sync::Arc;
use std::time::Duration;

use agora_sdk::proto::operation::{self, Launch};
use agora_sdk::proto::{Offer, Operation, StatusReason, TaskStatus};
use agora_sdk::resources::{Attributes, Resources};
use agora_sdk::{AcceptItem, Driver, MAX_ACCEPTS_PER_CALL, Scheduler, Subscribed};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::clock::Clock;
use crate::engine::{ApiError, Engine, Event, LaunchPlan, OfferView, Out, T_META};
use crate::metrics::Metrics;
use crate::schedule::ScheduleSpec;
use crate::spec::JobSpec;
use crate::store::{Batch, Store, StoreError};

/// Messages the actor's queue holds at most.
pub const QUEUE_LIMIT: usize = 1024;
/// Subscriber events buffered per SSE client before it skips.
pub const EVENTS_LIMIT: usize = 1024;
/// How often the actor evaluates run deadlines and retry waits at the latest (schedule
/// ticks are evaluated when they fall due, see [`Engine::next_due_ms`]).
pub const TICK_MS: u64 = 100;
/// How long an API call waits for the actor.
pub const API_TIMEOUT: Duration = Duration::from_secs(10);
/// Offers not needed are declined for this long (revive clears it when runs wait).
pub const DECLINE_IDLE_SECONDS: f64 = 30.0;
/// Offers that fit nothing waiting are declined for this long while runs wait.
pub const DECLINE_BUSY_SECONDS: f64 = 1.0;

/// An API request to the engine.
#[derive(Debug)]
pub enum Request {
    ListJobs,
    CreateJob(JobSpec),
    GetJob(String),
    UpdateJob(String, JobSpec),
    DeleteJob(String),
    StartRun {
        job: String,
        descendants: bool,
    },
    ListRuns {
        job: String,
        all: bool,
    },
    GetRun {
        job: String,
        run: String,
    },
    StopRun {
        job: String,
        run: String,
    },
    Schedules(String),
    Schedule(String, String),
    PutSchedule {
        job: String,
        sid: Option<String>,
        spec: ScheduleSpec,
    },
    DeleteSchedule(String, String),
    EnableSchedule {
        job: String,
        sid: String,
        enabled: bool,
    },
    Dependencies(String),
    SetDependencies(String, Vec<String>),
    Graph,
    GraphDot,
}

enum Msg {
    Api(Box<Request>, oneshot::Sender<Result<Value, ApiError>>),
    Subscribed(Subscribed, oneshot::Sender<()>),
    Offers(Vec<Offer>, oneshot::Sender<()>),
    /// Applied at once, committed with the next batch (at the latest on `Flush`).
    Status(TaskStatus),
    /// Commit everything applied so far; answered once it is durable.
    Flush(oneshot::Sender<()>),
    Disconnected,
}

/// How the API reaches the actor. Cheap to clone.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Msg>,
    /// Events for SSE subscribers.
    pub events: broadcast::Sender<Event>,
    pub metrics: Arc<Metrics>,
}

impl Handle {
    /// Ask the engine; 503 when the actor is gone or too slow.
    pub async fn ask(&self, request: Request) -> Result<Value, ApiError> {
        let (reply, rx) = oneshot::channel();
        let unavailable = |m: &str| ApiError {
            status: 503,
            field: None,
            message: m.to_string(),
        };
        tokio::time::timeout(
            API_TIMEOUT,
            self.tx.send(Msg::Api(Box::new(request), reply)),
        )
        .await
        .map_err(|_| unavailable("the daemon is busy; try again"))?
        .map_err(|_| unavailable("the daemon is stopping"))?;
        tokio::time::timeout(API_TIMEOUT, rx)
            .await
            .map_err(|_| unavailable("the daemon did not answer in time"))?
            .map_err(|_| unavailable("the daemon is stopping"))?
    }
}

/// The SDK side: forwards events to the actor and waits until each is handled (and
/// committed); status updates are only queued, and `before_acknowledge` waits until they
/// are committed, so the SDK acknowledges a status update only once it is durable.
pub struct JobsScheduler {
    tx: mpsc::Sender<Msg>,
}

impl JobsScheduler {
    async fn call(&self, make: impl FnOnce(oneshot::Sender<()>) -> Msg) {
        let (done, rx) = oneshot::channel();
        if self.tx.send(make(done)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

impl Scheduler for JobsScheduler {
    async fn subscribed(&mut self, _driver: &Driver, info: Subscribed) {
        self.call(|d| Msg::Subscribed(info, d)).await;
    }

    async fn offers(&mut self, _driver: &Driver, offers: Vec<Offer>) {
        self.call(|d| Msg::Offers(offers, d)).await;
    }

    async fn status_update(&mut self, driver: &Driver, status: TaskStatus) {
        // The queue is ordered: whatever comes next (offers, the flush) sees this applied.
        if self.tx.send(Msg::Status(status)).await.is_err() {
            driver.stop();
        }
    }

    async fn before_acknowledge(&mut self, driver: &Driver) {
        let (done, rx) = oneshot::channel();
        let committed = self.tx.send(Msg::Flush(done)).await.is_ok() && rx.await.is_ok();
        if !committed {
            // The actor stopped (its store failed): these updates are not durable, so
            // they must not be acknowledged.
            driver.stop();
        }
    }

    async fn disconnected(&mut self, _driver: &Driver) {
        let _ = self.tx.send(Msg::Disconnected).await;
    }

    async fn error(&mut self, _driver: &Driver, message: String) {
        tracing::error!(%message, "the master ended the framework");
    }
}

/// The actor: the one owner of the engine and the store.
pub struct Actor {
    rx: mpsc::Receiver<Msg>,
    engine: Engine,
    store: Store,
    driver: Driver,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    events: broadcast::Sender<Event>,
    framework_id: Option<String>,
    /// Offers were declined for long: revive before waiting runs can get any.
    offers_parked: bool,
}

/// Build the actor, its API handle and the SDK scheduler.
pub fn start(
    engine: Engine,
    store: Store,
    driver: Driver,
    clock: Arc<dyn Clock>,
    framework_id: Option<String>,
) -> (Actor, Handle, JobsScheduler) {
    let (tx, rx) = mpsc::channel(QUEUE_LIMIT);
    let (events, _) = broadcast::channel(EVENTS_LIMIT);
    let metrics = Arc::new(Metrics::default());
    metrics.set_jobs(engine.job_count());
    let actor = Actor {
        rx,
        engine,
        store,
        driver,
        clock,
        metrics: metrics.clone(),
        events: events.clone(),
        framework_id,
        offers_parked: true,
    };
    let handle = Handle {
        tx: tx.clone(),
        events,
        metrics,
    };
    (actor, handle, JobsScheduler { tx })
}

fn json<T: serde::Serialize>(v: Result<T, ApiError>) -> Result<Value, ApiError> {
    v.map(|x| serde_json::to_value(x).unwrap_or(Value::Null))
}

/// Load the engine and the framework id from `store`.
pub fn load(
    store: &Store,
    config: crate::engine::EngineConfig,
    now_ms: i64,
) -> Result<(Engine, Option<String>), StoreError> {
    use crate::engine::{Loaded, T_JOBS, T_RUNS, T_SCHEDULES};
    let seq = store
        .get_bytes(T_META, "seq")?
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let framework_id = agora_framework_store::framework_id::load(store, T_META)?;
    let loaded = Loaded {
        jobs: store.scan_bytes(T_JOBS, "")?,
        schedules: store.scan_bytes(T_SCHEDULES, "")?,
        runs: store.scan_bytes(T_RUNS, "")?,
        seq,
    };
    let (engine, warnings) = Engine::restore(config, loaded, now_ms);
    for w in warnings {
        tracing::warn!("{w}");
    }
    Ok((engine, framework_id))
}

fn offer_view(o: &Offer) -> Option<OfferView> {
    Some(OfferView {
        id: o.id.clone(),
        agent_id: o.agent_id.clone(),
        role: o.role.clone(),
        resources: Resources::from_proto(&o.resources).ok()?,
        attributes: Attributes::from_proto(&o.attributes).ok()?,
    })
}

impl Actor {
    /// Run until every sender is gone. `Err`: the store failed; the process must stop.
    pub async fn run(mut self) -> Result<(), StoreError> {
        // Whatever recovery queued (revive for waiting runs) goes out first.
        self.commit_and_act().await?;
        let mut last_tick_ms = self.clock.now_ms();
        loop {
            // Wake for the next schedule tick when it falls due, and every TICK_MS at the
            // latest for deadlines and retry waits.
            let now = self.clock.now_ms();
            let next =
                (last_tick_ms + TICK_MS as i64).min(self.engine.next_due_ms().unwrap_or(i64::MAX));
            let wait = Duration::from_millis(next.saturating_sub(now).max(0) as u64);
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    None => return Ok(()),
                    Some(m) => self.handle(m).await?,
                },
                _ = tokio::time::sleep(wait) => {
                    let now = self.clock.now_ms();
                    last_tick_ms = now;
                    self.engine.tick(now);
                    self.commit_and_act().await?;
                }
            }
        }
    }

    async fn handle(&mut self, msg: Msg) -> Result<(), StoreError> {
        match msg {
            Msg::Api(req, reply) => {
                let answer = self.api(*req);
                // A refused call made no change; an accepted one is durable before the
                // answer leaves.
                self.commit_and_act().await?;
                self.metrics.set_jobs(self.engine.job_count());
                let _ = reply.send(answer);
            }
            Msg::Subscribed(info, done) => {
                self.subscribed(info).await?;
                let _ = done.send(());
            }
            Msg::Offers(offers, done) => {
                self.offers(offers).await?;
                let _ = done.send(());
            }
            Msg::Status(status) => {
                let now = self.clock.now_ms();
                let unknown = status.reason() == StatusReason::TaskUnknown;
                self.engine.status(
                    &status.task_id,
                    &status.agent_id,
                    status.state(),
                    &status.message,
                    unknown,
                    now,
                );
                // Not acknowledged yet: committed (and acted on) by the flush that precedes
                // the acknowledgement, or by the next tick or call, whichever comes first.
            }
            Msg::Flush(done) => {
                self.commit_and_act().await?;
                let _ = done.send(());
            }
            Msg::Disconnected => {
                tracing::warn!("lost the master; runs keep their state until reconciled");
                self.offers_parked = true;
            }
        }
        Ok(())
    }

    fn api(&mut self, req: Request) -> Result<Value, ApiError> {
        let now = self.clock.now_ms();
        let e = &mut self.engine;
        match req {
            Request::ListJobs => Ok(serde_json::to_value(e.list_jobs()).unwrap_or(Value::Null)),
            Request::CreateJob(spec) => json(e.create_job(spec, now)),
            Request::GetJob(id) => json(e.job_view(&id)),
            Request::UpdateJob(id, spec) => json(e.update_job(&id, spec, now)),
            Request::DeleteJob(id) => e.delete_job(&id).map(|_| Value::Null),
            Request::StartRun { job, descendants } => json(e.start_manual(&job, descendants, now)),
            Request::ListRuns { job, all } => json(e.list_runs(&job, all)),
            Request::GetRun { job, run } => json(e.run_view(&job, &run)),
            Request::StopRun { job, run } => json(e.stop_run(&job, &run, now)),
            Request::Schedules(job) => json(e.schedules(&job)),
            Request::Schedule(job, sid) => json(e.schedule(&job, &sid)),
            Request::PutSchedule { job, sid, spec } => {
                json(e.put_schedule(&job, sid.as_deref(), spec, now))
            }
            Request::DeleteSchedule(job, sid) => e.delete_schedule(&job, &sid).map(|_| Value::Null),
            Request::EnableSchedule { job, sid, enabled } => {
                json(e.set_schedule_enabled(&job, &sid, enabled, now))
            }
            Request::Dependencies(job) => json(e.dependencies(&job)),
            Request::SetDependencies(job, parents) => json(e.set_dependencies(&job, parents, now)),
            Request::Graph => Ok(serde_json::to_value(e.graph()).unwrap_or(Value::Null)),
            Request::GraphDot => Ok(Value::String(e.graph_dot())),
        }
    }

    /// Commit what the engine wrote, then carry out its effects.
    async fn commit_and_act(&mut self) -> Result<(), StoreError> {
        let batch = self.engine.take_batch();
        self.commit(&batch)?;
        let outs = self.engine.take_out();
        self.act(outs, 0).await;
        Ok(())
    }

    /// Carry out effects whose batch is committed. `launch_delay_ms` is added to the
    /// start lateness of launches: the time from placing them to the launch call's answer.
    async fn act(&mut self, outs: Vec<Out>, launch_delay_ms: i64) {
        for out in outs {
            match out {
                Out::Event(mut ev) => {
                    if let Event::RunLaunched {
                        lateness_ms: Some(ms),
                        ..
                    } = &mut ev
                    {
                        *ms += launch_delay_ms;
                    }
                    self.metrics.observe(&ev);
                    let _ = self.events.send(ev);
                }
                Out::Revive => {
                    if self.offers_parked && self.driver.is_subscribed() {
                        match self.driver.revive(Vec::new()).await {
                            Ok(()) => self.offers_parked = false,
                            Err(e) => tracing::warn!(error = %e, "revive failed"),
                        }
                    }
                }
                Out::Kill {
                    task,
                    grace_seconds,
                } => {
                    let grace = grace_seconds.and_then(|g| Duration::try_from_secs_f64(g).ok());
                    if let Err(e) = self.driver.kill(&task.task_id, &task.agent_id, grace).await {
                        // Re-sent after the next subscription (kills_to_resend).
                        tracing::warn!(task = %task.task_id, error = %e, "kill failed");
                    }
                }
            }
        }
    }

    fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        self.store.commit(batch).inspect_err(|e| {
            tracing::error!(error = %e, "cannot write the store; stopping");
        })
    }

    async fn subscribed(&mut self, info: Subscribed) -> Result<(), StoreError> {
        tracing::info!(framework = %info.framework_id, master = %info.master_address, resubscribed = info.resubscribed, "subscribed");
        if self.framework_id.as_deref() != Some(info.framework_id.as_str()) {
            let mut b = Batch::new();
            agora_framework_store::framework_id::put(&mut b, T_META, &info.framework_id);
            self.commit(&b)?;
            self.framework_id = Some(info.framework_id.clone());
        }
        // Learn the fate of every task we think we have (unknown ones come back
        // TASK_UNKNOWN), and of any task of ours we forgot (answered by the implicit call).
        let known = self.engine.tasks_to_reconcile();
        if !known.is_empty()
            && let Err(e) = self.driver.reconcile(known).await
        {
            tracing::warn!(error = %e, "explicit reconciliation failed");
        }
        if let Err(e) = self.driver.reconcile(Vec::new()).await {
            tracing::warn!(error = %e, "implicit reconciliation failed");
        }
        for (task, grace) in self.engine.kills_to_resend() {
            let grace = grace.and_then(|g| Duration::try_from_secs_f64(g).ok());
            if let Err(e) = self.driver.kill(&task.task_id, &task.agent_id, grace).await {
                tracing::warn!(task = %task.task_id, error = %e, "kill failed");
            }
        }
        self.offers_parked = true;
        if self.engine.wants_offers() {
            match self.driver.revive(Vec::new()).await {
                Ok(()) => self.offers_parked = false,
                Err(e) => tracing::warn!(error = %e, "revive failed"),
            }
        }
        Ok(())
    }

    async fn offers(&mut self, offers: Vec<Offer>) -> Result<(), StoreError> {
        let placed_ms = self.clock.now_ms();
        let mut unused: Vec<String> = Vec::new();
        let mut views = Vec::new();
        for o in &offers {
            match offer_view(o) {
                Some(v) => views.push(v),
                None => {
                    tracing::warn!(offer = %o.id, "offer with unreadable resources or attributes");
                    unused.push(o.id.clone());
                }
            }
        }
        let plans = self.engine.place(views, placed_ms);
        // The runs are STARTING on disk before any launch leaves.
        let batch = self.engine.take_batch();
        self.commit(&batch)?;
        let placed = self.engine.take_out();
        let used: std::collections::BTreeSet<&str> =
            plans.iter().map(|p| p.offer_id.as_str()).collect();
        unused.extend(
            offers
                .iter()
                .filter(|o| !used.contains(o.id.as_str()))
                .map(|o| o.id.clone()),
        );
        // Every launch of this event in one call (one round trip, one commit at the master).
        let mut failed: Vec<(LaunchPlan, String)> = Vec::new();
        let mut plans = plans.into_iter().peekable();
        while plans.peek().is_some() {
            let chunk: Vec<LaunchPlan> = plans.by_ref().take(MAX_ACCEPTS_PER_CALL).collect();
            let items = chunk
                .iter()
                .map(|p| AcceptItem {
                    offer_ids: vec![p.offer_id.clone()],
                    operations: vec![Operation {
                        operation: Some(operation::Operation::Launch(Launch {
                            tasks: p.tasks.clone(),
                        })),
                    }],
                    refuse_seconds: Some(DECLINE_BUSY_SECONDS),
                })
                .collect();
            match self.driver.accept_batch(items).await {
                Ok(results) => {
                    for (plan, result) in chunk.into_iter().zip(results) {
                        if let Err(e) = result {
                            failed.push((plan, e.to_string()));
                        }
                    }
                }
                Err(e) => failed.extend(chunk.into_iter().map(|p| (p, e.to_string()))),
            }
        }
        let launch_delay_ms = self.clock.now_ms() - placed_ms;
        self.act(placed, launch_delay_ms).await;
        for (plan, error) in failed {
            tracing::warn!(offer = %plan.offer_id, %error, "launch refused");
            let now = self.clock.now_ms();
            self.engine.launch_failed(&plan.run_ids, &error, now);
            self.commit_and_act().await?;
            unused.push(plan.offer_id);
        }
        if !unused.is_empty() {
            let busy = self.engine.wants_offers();
            let refuse = if busy {
                DECLINE_BUSY_SECONDS
            } else {
                DECLINE_IDLE_SECONDS
            };
            if !busy {
                self.offers_parked = true;
            }
            if let Err(e) = self.driver.decline(unused, Some(refuse)).await {
                tracing::debug!(error = %e, "decline failed");
            }
        }
        Ok(())
    }
}
