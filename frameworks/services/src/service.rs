//! The service actor: the one owner of the scheduler [`Core`] and the durable state. Every
//! input (offers, status updates, API calls, the tick) arrives on one bounded channel and
//! is handled to the end before the next: the core computes an [`Output`], the actor
//! writes its changes durably, then makes the master calls, then publishes the events, and
//! only then answers (so an acknowledged status update or a `201 Created` is on disk).
//! Status updates are the exception that keeps that promise in bulk: the core takes each
//! at once, and their outputs are applied together (one write) at the `flush` the SDK
//! runs before acknowledging a burst of them, or before the next other input.
//!
//! It must never hold service logic of its own (the core decides) and never act on an
//! output it could not persist: a failed write ends the process, and the next start
//! recovers from what is on disk.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agora_sdk::Driver;
use agora_sdk::proto::{Offer, TaskStatus};
use serde_json::Value as Json;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::core::{Action, ClusterView, Core, CoreError, OfferIn, Output, StatusIn};
use crate::discovery::Zone;
use crate::state::ServicesState;
use crate::time::Millis;
use crate::views::{Counters, metrics_text};

/// Commands waiting for the actor.
pub const COMMAND_QUEUE_CAPACITY: usize = 1024;
/// Events buffered per `/v2/events` subscriber before it misses some.
pub const EVENT_BUFFER_CAPACITY: usize = 4096;
/// How often the core's clock advances without other input.
pub const TICK_INTERVAL: Duration = Duration::from_millis(250);
/// How often kills not yet confirmed by a terminal update are sent again.
pub const KILL_RETRY_INTERVAL_MS: Millis = 5_000;
/// Launch refusals handled per input before the rest wait for the next offers (each
/// refusal re-runs the core).
pub const LAUNCH_RETRY_MAX: usize = 64;

/// A read of the core (a consistent snapshot: it runs inside the actor).
pub type ReadFn = Box<dyn FnOnce(&Core, &ServicesState, Millis) -> Json + Send>;
/// A change of the core; its `Output` is applied before the answer is sent.
pub type ChangeFn = Box<dyn FnOnce(&mut Core, Millis) -> Result<(Output, Json), CoreError> + Send>;

enum Command {
    Offers(Vec<Offer>, oneshot::Sender<()>),
    Status(TaskStatus, oneshot::Sender<()>),
    /// A status update whose output is applied with the next flush (or other input).
    StatusDeferred(TaskStatus),
    /// Apply every deferred output; answered once it is durable.
    Flush(oneshot::Sender<()>),
    Subscribed(oneshot::Sender<()>),
    Disconnected,
    KnownTasks(oneshot::Sender<Vec<(String, String)>>),
    Read(ReadFn, oneshot::Sender<Json>),
    Change(ChangeFn, oneshot::Sender<Result<Json, CoreError>>),
    Metrics(oneshot::Sender<String>),
    Cluster(ClusterView, oneshot::Sender<()>),
    Tick,
}

/// The actor has stopped (the process is ending).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the service is not running")]
pub struct Stopped;

/// A handle to the actor. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Service {
    tx: mpsc::Sender<Command>,
    events: broadcast::Sender<Json>,
    zone: watch::Receiver<Arc<Zone>>,
}

fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

impl Service {
    /// Start the actor over `core` and `state`, calling the master through `driver`.
    /// With `dns_domain`, it keeps a service discovery [`Zone`] of that domain up to date
    /// (read it with [`zone`](Self::zone)).
    pub fn start(
        core: Core,
        state: ServicesState,
        driver: Driver,
        dns_domain: Option<String>,
    ) -> Service {
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE_CAPACITY);
        let (events, _) = broadcast::channel(EVENT_BUFFER_CAPACITY);
        let first = dns_domain
            .as_deref()
            .map(|d| crate::discovery::zone(&core, d))
            .unwrap_or_default();
        let (zone_tx, zone) = watch::channel(Arc::new(first));
        let actor = Actor {
            zone: dns_domain.map(|d| (d, zone_tx)),
            core,
            state,
            driver,
            events: events.clone(),
            counters: Counters::default(),
            subscribed: false,
            last_kill_retry: 0,
            deferred: None,
        };
        tokio::spawn(actor.run(rx));
        let ticker = tx.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(TICK_INTERVAL);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                every.tick().await;
                // A full queue already makes the core run; a tick adds nothing then.
                match ticker.try_send(Command::Tick) {
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                    _ => continue,
                }
            }
        });
        Service { tx, events, zone }
    }

    /// The latest service discovery zone (empty without a DNS domain).
    pub fn zone(&self) -> watch::Receiver<Arc<Zone>> {
        self.zone.clone()
    }

    /// Hand a look at the cluster (agents, usage) to the core.
    pub async fn cluster(&self, view: ClusterView) -> Result<(), Stopped> {
        self.ask(|r| Command::Cluster(view, r)).await
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Stopped> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// Hand offers to the core (used or declined before this returns).
    pub async fn offers(&self, offers: Vec<Offer>) -> Result<(), Stopped> {
        self.ask(|r| Command::Offers(offers, r)).await
    }

    /// Hand a status update to the core (persisted before this returns).
    pub async fn status(&self, status: TaskStatus) -> Result<(), Stopped> {
        self.ask(|r| Command::Status(status, r)).await
    }

    /// Hand a status update to the core; it is persisted by the next
    /// [`flush`](Self::flush) (or before the next other input is handled).
    pub async fn status_deferred(&self, status: TaskStatus) -> Result<(), Stopped> {
        self.tx
            .send(Command::StatusDeferred(status))
            .await
            .map_err(|_| Stopped)
    }

    /// Persist and act on every deferred status update (durable when this returns).
    pub async fn flush(&self) -> Result<(), Stopped> {
        self.ask(Command::Flush).await
    }

    /// The driver subscribed.
    pub async fn subscribed(&self) -> Result<(), Stopped> {
        self.ask(Command::Subscribed).await
    }

    /// The driver lost the master.
    pub async fn disconnected(&self) {
        let _ = self.tx.send(Command::Disconnected).await;
    }

    /// `(task id, agent id)` of every instance.
    pub async fn known_tasks(&self) -> Result<Vec<(String, String)>, Stopped> {
        self.ask(Command::KnownTasks).await
    }

    /// Read the core.
    pub async fn read(&self, f: ReadFn) -> Result<Json, Stopped> {
        self.ask(|r| Command::Read(f, r)).await
    }

    /// Change the core; the answer comes once the change is durable.
    pub async fn change(&self, f: ChangeFn) -> Result<Result<Json, CoreError>, Stopped> {
        self.ask(|r| Command::Change(f, r)).await
    }

    /// The Prometheus text.
    pub async fn metrics(&self) -> Result<String, Stopped> {
        self.ask(Command::Metrics).await
    }

    /// A stream of events from now on.
    pub fn events(&self) -> broadcast::Receiver<Json> {
        self.events.subscribe()
    }
}

struct Actor {
    core: Core,
    state: ServicesState,
    driver: Driver,
    events: broadcast::Sender<Json>,
    counters: Counters,
    subscribed: bool,
    last_kill_retry: Millis,
    /// Outputs of deferred status updates, not yet persisted (merged in order).
    deferred: Option<Output>,
    /// Service discovery: the domain and where its zone is published.
    zone: Option<(String, watch::Sender<Arc<Zone>>)>,
}

impl Actor {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(cmd) = rx.recv().await {
            let now = now_ms();
            if let Command::StatusDeferred(status) = cmd {
                self.counters.status_updates += 1;
                let out = self.core.status(StatusIn::from_proto(&status), now);
                let d = self.deferred.get_or_insert_with(Output::default);
                d.persist.extend(out.persist);
                d.actions.extend(out.actions);
                d.events.extend(out.events);
                continue;
            }
            // Whatever comes next sees the deferred updates durable and acted on.
            if let Some(out) = self.deferred.take() {
                self.apply(out, now).await;
            }
            match cmd {
                Command::StatusDeferred(_) => {}
                Command::Flush(reply) => {
                    let _ = reply.send(());
                }
                Command::Offers(offers, reply) => {
                    self.counters.offers_received += offers.len() as u64;
                    let mut usable = Vec::new();
                    for o in &offers {
                        match OfferIn::from_proto(o) {
                            Some(o) => usable.push(o),
                            None => {
                                tracing::warn!(offer = %o.id, "offer with invalid resources declined");
                                let _ = self.driver.decline(vec![o.id.clone()], None).await;
                            }
                        }
                    }
                    let out = self.core.offers(usable, now);
                    self.apply(out, now).await;
                    let _ = reply.send(());
                }
                Command::Status(status, reply) => {
                    self.counters.status_updates += 1;
                    let out = self.core.status(StatusIn::from_proto(&status), now);
                    self.apply(out, now).await;
                    let _ = reply.send(());
                }
                Command::Subscribed(reply) => {
                    self.subscribed = true;
                    let out = self.core.subscribed(now);
                    self.apply(out, now).await;
                    self.retry_kills(now).await;
                    let _ = reply.send(());
                }
                Command::Disconnected => self.subscribed = false,
                Command::KnownTasks(reply) => {
                    let _ = reply.send(self.core.known_tasks());
                }
                Command::Read(f, reply) => {
                    let _ = reply.send(f(&self.core, &self.state, now));
                }
                Command::Change(f, reply) => {
                    let answer = match f(&mut self.core, now) {
                        Ok((out, json)) => {
                            self.apply(out, now).await;
                            Ok(json)
                        }
                        Err(e) => Err(e),
                    };
                    let _ = reply.send(answer);
                }
                Command::Metrics(reply) => {
                    let _ = reply.send(metrics_text(&self.core, &self.counters, self.subscribed));
                }
                Command::Tick => {
                    let out = self.core.tick(now);
                    self.apply(out, now).await;
                    if now >= self.last_kill_retry.saturating_add(KILL_RETRY_INTERVAL_MS) {
                        self.retry_kills(now).await;
                    }
                }
                Command::Cluster(view, reply) => {
                    let out = self.core.cluster(view, now);
                    self.apply(out, now).await;
                    let _ = reply.send(());
                }
            }
            self.publish_zone();
        }
    }

    /// A new discovery zone, when the core's discoverable instances changed.
    fn publish_zone(&mut self) {
        if let Some((domain, tx)) = &self.zone {
            let zone = crate::discovery::zone(&self.core, domain);
            tx.send_if_modified(|current| {
                if **current == zone {
                    return false;
                }
                *current = Arc::new(zone);
                true
            });
        }
    }

    /// Kills not yet confirmed are sent again (a kill sent while disconnected, or lost).
    async fn retry_kills(&mut self, now: Millis) {
        self.last_kill_retry = now;
        if !self.subscribed {
            return;
        }
        let pending: Vec<(String, String, Option<f64>)> = self
            .core
            .instances()
            .values()
            .filter(|i| i.kill_requested)
            .map(|i| {
                let grace = self
                    .core
                    .app(&i.app_id)
                    .and_then(|a| a.def.task_kill_grace_period_seconds);
                (i.task_id.clone(), i.agent_id.clone(), grace)
            })
            .collect();
        for (task, agent, grace) in pending {
            let grace = grace.map(Duration::from_secs_f64);
            if let Err(e) = self.driver.kill(task.clone(), agent, grace).await {
                tracing::debug!(task = %task, error = %e, "kill retry failed");
            }
        }
    }

    /// Persist, then call the master, then publish; launches the master refuses go back
    /// to the core (their instances are dropped and launched again later).
    async fn apply(&mut self, out: Output, now: Millis) {
        let mut pending = vec![out];
        let mut retries = 0usize;
        while let Some(out) = pending.pop() {
            if let Err(e) = self.state.apply(&out.persist) {
                // Memory is ahead of the disk now; the only safe state is the disk's.
                tracing::error!(error = %e, "cannot persist the services state; exiting");
                std::process::exit(70);
            }
            for action in out.actions {
                match action {
                    Action::Launch {
                        offer_id, tasks, ..
                    } => {
                        let ids: Vec<String> = tasks.iter().map(|t| t.task_id.clone()).collect();
                        match self.driver.launch(offer_id, tasks, None).await {
                            Ok(launched) => self.counters.tasks_launched += launched.len() as u64,
                            Err(e) => {
                                tracing::warn!(error = %e, tasks = ?ids, "launch refused");
                                self.counters.launches_refused += ids.len() as u64;
                                retries += 1;
                                if retries <= LAUNCH_RETRY_MAX {
                                    pending.push(self.core.launch_failed(&ids, now));
                                }
                            }
                        }
                    }
                    Action::Decline {
                        offer_ids,
                        refuse_seconds,
                    } => {
                        self.counters.offers_declined += offer_ids.len() as u64;
                        if let Err(e) = self.driver.decline(offer_ids, Some(refuse_seconds)).await {
                            tracing::debug!(error = %e, "decline failed");
                        }
                    }
                    Action::Kill {
                        task_id,
                        agent_id,
                        grace_seconds,
                    } => {
                        self.counters.kills_sent += 1;
                        let grace = grace_seconds.map(Duration::from_secs_f64);
                        if let Err(e) = self.driver.kill(task_id.clone(), agent_id, grace).await {
                            // Retried every KILL_RETRY_INTERVAL_MS until the task ends.
                            tracing::warn!(task = %task_id, error = %e, "kill failed");
                        }
                    }
                    Action::Revive => {
                        if let Err(e) = self.driver.revive(Vec::new()).await {
                            tracing::debug!(error = %e, "revive failed");
                        }
                    }
                }
            }
            for e in out.events {
                self.counters.events_published += 1;
                log_event(&e);
                // No subscriber is fine.
                let _ = self.events.send(e);
            }
        }
    }
}

/// The log line of an event that a human may want to read in the log too: autoscaling's
/// decisions, and above all a bound it reached (the one it calls a human for).
fn log_event(e: &Json) {
    match e["eventType"].as_str() {
        Some("autoscale_event") => tracing::info!(
            app = %e["appId"], from = %e["from"], to = %e["to"],
            utilisation = %e["utilisation"], target = %e["target"],
            "autoscaling changed the instance count"
        ),
        Some("autoscale_bound_event") => tracing::warn!(
            app = %e["appId"], bound = %e["bound"], instances = %e["instances"],
            desired = %e["desired"], utilisation = %e["utilisation"], target = %e["target"],
            "autoscaling reached a bound: the load asks for more than the app's range allows"
        ),
        Some("blue_green_switch_event") => tracing::info!(
            app = %e["appId"], version = %e["version"],
            "blue/green: discovery switched to the new version"
        ),
        _ => {}
    }
}

/// Shared handle type for the HTTP layer.
pub type SharedService = Arc<Service>;
