//! The scheduler driver: connects to a master, subscribes, feeds events to a [`Scheduler`],
//! acknowledges status updates (those of a burst of events in one `AcknowledgeBatch`
//! call), and reconnects (re-subscribing with the framework id) when
//! the stream is lost. [`Driver`] is also the cheap-to-clone handle callbacks use to make
//! scheduler calls.
//!
//! This module owns the sockets and the timing (connect/subscribe/call timeouts, heartbeat
//! deadline, reconnection backoff). It must never make scheduling decisions (that is the
//! scheduler's job) and never decide protocol questions on its own: event classification,
//! dispatch order and backoff arithmetic live in `session`, where they are unit-tested.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::connect::{AuthChannel, Credential, TlsOptions};
use agora_proto::v1::operation::Launch;
use agora_proto::v1::operator_client::OperatorClient;
use agora_proto::v1::scheduler_client::SchedulerClient;
use agora_proto::v1::{
    AcceptBatchRequest, AcceptRequest, AcknowledgeBatchRequest, AcknowledgeRequest, DeclineRequest,
    Filters, FrameworkInfo, KillPolicy, KillRequest, MessageRequest, Operation, ReconcileRequest,
    ReviveRequest, ShutdownRequest, SubscribeRequest, SuppressRequest, TaskInfo, TeardownRequest,
    UpdateFrameworkRequest, operation, reconcile_request,
};
use tokio::sync::watch;
use tonic::codec::Streaming;

use crate::error::SdkError;
use crate::scheduler::Scheduler;
use crate::session::{
    AckQueue, Backoff, Flow, MAX_ACKS_PER_CALL, Session, Step, dispatch, heartbeat_deadline,
    normalize_address, ready_now, subscribe_error_is_retryable,
};

/// Most accepts in one [`Driver::accept_batch`] call (the master refuses larger calls).
pub const MAX_ACCEPTS_PER_CALL: usize = 10_000;

/// One accept of [`Driver::accept_batch`]: operations on outstanding offers of one agent
/// and one role, exactly as [`Driver::accept`] takes them.
#[derive(Debug, Clone, Default)]
pub struct AcceptItem {
    /// The offers, all on one agent.
    pub offer_ids: Vec<String>,
    /// The operations, applied in order, atomically for this item.
    pub operations: Vec<Operation>,
    /// How long unused resources are filtered from this framework (`None`: the master's
    /// default, 5 s).
    pub refuse_seconds: Option<f64>,
}

/// How the driver connects and retries. Build with [`DriverConfig::new`] and adjust fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DriverConfig {
    /// Master addresses (`host:port` or `http://host:port`), tried in order.
    pub masters: Vec<String>,
    /// Give up after this many consecutive failed rounds over `masters` (a round tries each
    /// master once). `None`: never give up (the default, for long-running frameworks).
    pub max_connect_attempts: Option<u32>,
    /// First reconnection delay; doubles after each failed round. Default 0.5 s.
    pub backoff_min: Duration,
    /// Largest reconnection delay. Default 10 s.
    pub backoff_max: Duration,
    /// TCP/HTTP2 connection timeout per master. Default 5 s.
    pub connect_timeout: Duration,
    /// How long a master may take to answer `Subscribe` with SUBSCRIBED. Default 10 s.
    pub subscribe_timeout: Duration,
    /// Timeout of every unary scheduler call. Default 10 s.
    pub call_timeout: Duration,
    /// Principal and secret sent with every call, for masters that authenticate
    /// frameworks. The framework's principal defaults to this principal.
    pub credential: Option<Credential>,
    /// TLS for `https://` masters: the CA to verify them, and a client certificate for
    /// masters that require one.
    pub tls: Option<TlsOptions>,
}

impl DriverConfig {
    /// Defaults as documented on each field.
    pub fn new(masters: Vec<String>) -> DriverConfig {
        DriverConfig {
            masters,
            max_connect_attempts: None,
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            subscribe_timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(10),
            credential: None,
            tls: None,
        }
    }

    /// Set [`max_connect_attempts`](Self::max_connect_attempts).
    pub fn with_max_connect_attempts(mut self, attempts: Option<u32>) -> DriverConfig {
        self.max_connect_attempts = attempts;
        self
    }
}

/// Why [`Driver::run`] returned normally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// [`Driver::stop`] was called (by a callback or anyone holding a clone).
    Stopped,
    /// [`Driver::teardown`] succeeded: the master removed the framework.
    TornDown,
    /// The master ended the subscription with an ERROR event (e.g. the framework was torn
    /// down by an operator, or a newer subscription of it replaced this one).
    MasterError(String),
}

/// What [`Driver::run`] hands back when it ends normally.
#[derive(Debug)]
pub struct Finished<S> {
    /// The scheduler, with whatever state it accumulated.
    pub scheduler: S,
    /// Why the driver stopped.
    pub reason: StopReason,
    /// The framework id the master assigned, if the driver ever subscribed.
    pub framework_id: Option<String>,
}

/// Run `scheduler` against the first reachable master of `masters` with the default
/// [`DriverConfig`] (never gives up reconnecting). See [`Driver::run`].
pub async fn run<S: Scheduler>(
    masters: Vec<String>,
    framework: FrameworkInfo,
    scheduler: S,
) -> Result<Finished<S>, SdkError> {
    Driver::new(DriverConfig::new(masters))
        .run(framework, scheduler)
        .await
}

/// The live subscription: a channel to the master that accepted it, and the framework id.
#[derive(Clone)]
struct Conn {
    client: SchedulerClient<AuthChannel>,
    /// The Operator API on the same connection (cluster state, usage reports).
    operator: OperatorClient<AuthChannel>,
    framework_id: String,
}

struct State {
    conn: Option<Conn>,
    /// The framework info to (re-)subscribe with; `id` is filled in once assigned.
    framework: FrameworkInfo,
    torn_down: bool,
}

struct Inner {
    config: DriverConfig,
    state: Mutex<State>,
    stop: watch::Sender<bool>,
    started: AtomicBool,
}

/// Handle to a scheduler driver. Cheap to clone (an `Arc`); every clone controls the same
/// driver. Calls fail with [`SdkError::NotSubscribed`] while there is no live subscription.
#[derive(Clone)]
pub struct Driver {
    inner: Arc<Inner>,
}

impl fmt::Debug for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field("masters", &self.inner.config.masters)
            .field("framework_id", &self.framework_id())
            .field("subscribed", &self.is_subscribed())
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

/// Lost-stream outcome of one subscription.
enum SessionEnd {
    Lost(String),
    Flow(Flow),
}

/// Outcome of trying to subscribe at one master.
enum AttemptError {
    Retry(String),
    /// The master is not the leader and named it (an address in the form `masters` use).
    NotLeader {
        message: String,
        leader: String,
    },
    Fatal(SdkError),
}

/// How soon a round over the masters is tried again when one said it is not the leader
/// and none took the subscription (an election is under way).
pub const ELECTION_RETRY: Duration = Duration::from_millis(250);

/// Longest rounds are retried at `ELECTION_RETRY` pace, uncounted, while masters answer
/// "not the leader" and none leads. Past it (etcd lost its quorum, or the masters cannot
/// reach it) rounds back off and count towards `max_connect_attempts`, with an error that
/// says so.
pub const ELECTION_WAIT_MAX_MS: u64 = 30_000;

/// Most "go to the leader" hops one round over the masters follows (two masters naming
/// each other must not loop).
pub const MAX_LEADER_REDIRECTS: usize = 3;

struct Subscription {
    address: String,
    client: SchedulerClient<AuthChannel>,
    operator: OperatorClient<AuthChannel>,
    stream: Streaming<agora_proto::v1::Event>,
    session: Session,
    first: Step,
}

impl Driver {
    /// A driver that has not run yet. Keep a clone to stop it or make calls from outside
    /// the callbacks (e.g. a timer task), then call [`run`](Self::run).
    pub fn new(config: DriverConfig) -> Driver {
        let (stop, _) = watch::channel(false);
        Driver {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(State {
                    conn: None,
                    framework: FrameworkInfo::default(),
                    torn_down: false,
                }),
                stop,
                started: AtomicBool::new(false),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a few plain fields; a panic elsewhere cannot leave it inconsistent.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Subscribe and dispatch events to `scheduler` until stopped.
    ///
    /// `framework.id` empty registers a new framework; set it to fail over to an existing
    /// one. Masters are tried in order; on a lost stream the driver calls
    /// [`Scheduler::disconnected`], waits (0.5 s doubling to 10 s by default), and
    /// re-subscribes with the framework id it was given, so the master treats it as a
    /// failover of the same framework.
    ///
    /// Returns `Ok` when [`stop`](Self::stop) or [`teardown`](Self::teardown) was called or
    /// the master sent an ERROR event; `Err` when the master list is unusable, the master
    /// refused the subscription for good, or `max_connect_attempts` rounds failed in a row.
    pub async fn run<S: Scheduler>(
        self,
        framework: FrameworkInfo,
        mut scheduler: S,
    ) -> Result<Finished<S>, SdkError> {
        if self.inner.started.swap(true, Ordering::SeqCst) {
            return Err(SdkError::AlreadyRun);
        }
        let addresses = self.addresses()?;
        let mut framework = framework;
        if let Some(c) = &self.inner.config.credential
            && framework.principal.is_empty()
        {
            framework.principal = c.principal.clone();
        }
        self.state().framework = framework;
        let result = self.run_loop(&addresses, &mut scheduler).await;
        self.state().conn = None;
        self.inner.stop.send_replace(true);
        let reason = result?;
        let reason = if self.state().torn_down {
            StopReason::TornDown
        } else {
            reason
        };
        Ok(Finished {
            scheduler,
            reason,
            framework_id: self.framework_id(),
        })
    }

    fn addresses(&self) -> Result<Vec<String>, SdkError> {
        if self.inner.config.masters.is_empty() {
            return Err(SdkError::NoMasters);
        }
        self.inner
            .config
            .masters
            .iter()
            .map(|a| {
                normalize_address(a).map_err(|reason| SdkError::InvalidAddress {
                    address: a.clone(),
                    reason,
                })
            })
            .collect()
    }

    async fn run_loop<S: Scheduler>(
        &self,
        addresses: &[String],
        scheduler: &mut S,
    ) -> Result<StopReason, SdkError> {
        let cfg = &self.inner.config;
        let mut stop_rx = self.inner.stop.subscribe();
        let mut backoff = Backoff::new(cfg.backoff_min, cfg.backoff_max);
        let mut failed_rounds: u32 = 0;
        // Since when every round met masters that answer but none that leads.
        let mut electing_since: Option<Instant> = None;
        loop {
            if self.is_stopped() {
                return Ok(StopReason::Stopped);
            }
            let mut last_error = String::new();
            let mut subscription = None;
            let mut queue: std::collections::VecDeque<String> = addresses.iter().cloned().collect();
            let mut redirects = 0;
            let mut electing = false;
            while let Some(address) = queue.pop_front() {
                let attempt = tokio::select! {
                    biased;
                    _ = stop_rx.wait_for(|stopped| *stopped) => return Ok(StopReason::Stopped),
                    a = self.subscribe_at(&address) => a,
                };
                match attempt {
                    Ok(s) => {
                        subscription = Some(s);
                        break;
                    }
                    Err(AttemptError::Fatal(e)) => return Err(e),
                    Err(AttemptError::Retry(e)) => {
                        tracing::warn!("cannot subscribe: {e}");
                        // A follower that knows no leader yet names none.
                        electing |= e.contains("not the leader");
                        last_error = e;
                    }
                    Err(AttemptError::NotLeader { message, leader }) => {
                        electing = true;
                        tracing::info!(from = %address, leader = %leader, "not the leader; going to the leader it named");
                        if leader != address && redirects < MAX_LEADER_REDIRECTS {
                            redirects += 1;
                            queue.push_front(leader);
                        }
                        last_error = message;
                    }
                }
            }
            let Some(sub) = subscription else {
                // Rounds in which a master said it is not the leader do not count: the
                // masters are there, electing (each such round is 250 ms apart), for at
                // most ELECTION_WAIT_MAX_MS.
                if electing {
                    let since = *electing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= Duration::from_millis(ELECTION_WAIT_MAX_MS) {
                        electing = false;
                        last_error = format!(
                            "no master has led for {} ms (they answer, but none is elected: \
                             is their etcd reachable and in quorum?): {last_error}",
                            since.elapsed().as_millis()
                        );
                        tracing::error!("{last_error}");
                    }
                } else {
                    electing_since = None;
                }
                if !electing {
                    failed_rounds = failed_rounds.saturating_add(1);
                }
                if let Some(max) = cfg.max_connect_attempts
                    && failed_rounds >= max.max(1)
                {
                    return Err(SdkError::GaveUp {
                        attempts: failed_rounds,
                        last_error,
                    });
                }
                // A master answered "not the leader" and none took the subscription: a
                // failover is under way; look again soon instead of backing off.
                let delay = if electing {
                    ELECTION_RETRY
                } else {
                    backoff.next_delay()
                };
                tokio::select! {
                    biased;
                    _ = stop_rx.wait_for(|stopped| *stopped) => return Ok(StopReason::Stopped),
                    _ = tokio::time::sleep(delay) => {}
                }
                continue;
            };

            failed_rounds = 0;
            electing_since = None;
            let started = Instant::now();
            let address = sub.address.clone();
            let end = self.drive(sub, scheduler, &mut stop_rx).await;
            self.state().conn = None;
            match end {
                SessionEnd::Flow(Flow::Continue) | SessionEnd::Flow(Flow::Stopped) => {
                    return Ok(StopReason::Stopped);
                }
                SessionEnd::Flow(Flow::MasterError(message)) => {
                    return Ok(StopReason::MasterError(message));
                }
                SessionEnd::Lost(why) => {
                    tracing::warn!(master = %address, reason = %why, "lost the master");
                    scheduler.disconnected(self).await;
                    if self.is_stopped() {
                        return Ok(StopReason::Stopped);
                    }
                    // A subscription that lived a while earns a fresh, short backoff; one
                    // that dies at once keeps growing it, so a flapping master is not
                    // hammered.
                    if started.elapsed() >= cfg.backoff_max {
                        backoff.reset();
                    }
                    let delay = backoff.next_delay();
                    tokio::select! {
                        biased;
                        _ = stop_rx.wait_for(|stopped| *stopped) => return Ok(StopReason::Stopped),
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Connect to one master and wait for SUBSCRIBED (or an ERROR).
    async fn subscribe_at(&self, address: &str) -> Result<Subscription, AttemptError> {
        let cfg = &self.inner.config;
        let endpoint = crate::connect::endpoint(address, cfg.tls.as_ref())
            .map_err(AttemptError::Fatal)?
            .connect_timeout(cfg.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(20))
            .keep_alive_while_idle(true);
        let channel = match tokio::time::timeout(cfg.connect_timeout, endpoint.connect()).await {
            Err(_) => return Err(AttemptError::Retry(format!("{address}: connect timed out"))),
            Ok(Err(e)) => {
                return Err(AttemptError::Retry(format!(
                    "{address}: cannot connect: {}",
                    error_chain(&e)
                )));
            }
            Ok(Ok(c)) => c,
        };
        let interceptor =
            crate::connect::interceptor(cfg.credential.as_ref()).map_err(AttemptError::Fatal)?;
        let operator = OperatorClient::with_interceptor(channel.clone(), interceptor.clone());
        let mut client = SchedulerClient::with_interceptor(channel, interceptor);
        let framework = self.state().framework.clone();
        let requested_id = Some(framework.id.clone()).filter(|id| !id.is_empty());
        let request = SubscribeRequest {
            framework: Some(framework),
            secret: String::new(),
        };
        let refused = |status: tonic::Status| {
            if let Some(leader) = crate::session::leader_named_by(&status, address) {
                return AttemptError::NotLeader {
                    message: format!("{address}: {}", status.message()),
                    leader,
                };
            }
            if subscribe_error_is_retryable(status.code()) {
                AttemptError::Retry(format!(
                    "{address}: subscribe failed: {:?}: {}",
                    status.code(),
                    status.message()
                ))
            } else {
                AttemptError::Fatal(SdkError::SubscribeRefused {
                    address: address.to_string(),
                    code: status.code(),
                    message: status.message().to_string(),
                })
            }
        };
        let mut stream =
            match tokio::time::timeout(cfg.subscribe_timeout, client.subscribe(request)).await {
                Err(_) => {
                    return Err(AttemptError::Retry(format!(
                        "{address}: subscribe timed out"
                    )));
                }
                Ok(Err(status)) => return Err(refused(status)),
                Ok(Ok(response)) => response.into_inner(),
            };
        let mut session = Session::new(address, requested_id);
        let first = match tokio::time::timeout(cfg.subscribe_timeout, stream.message()).await {
            Err(_) => {
                return Err(AttemptError::Retry(format!(
                    "{address}: no SUBSCRIBED event within {:?}",
                    cfg.subscribe_timeout
                )));
            }
            Ok(Err(status)) => return Err(refused(status)),
            Ok(Ok(None)) => {
                return Err(AttemptError::Retry(format!(
                    "{address}: stream closed before SUBSCRIBED"
                )));
            }
            Ok(Ok(Some(event))) => session
                .handle(event)
                .map_err(|e| AttemptError::Retry(format!("{address}: {}", e.0)))?,
        };
        Ok(Subscription {
            address: address.to_string(),
            client,
            operator,
            stream,
            session,
            first,
        })
    }

    /// Dispatch events of one subscription until it ends.
    async fn drive<S: Scheduler>(
        &self,
        sub: Subscription,
        scheduler: &mut S,
        stop_rx: &mut watch::Receiver<bool>,
    ) -> SessionEnd {
        let Subscription {
            client,
            operator,
            mut stream,
            mut session,
            first,
            ..
        } = sub;
        let mut deadline = None;
        if let (Step::Subscribed(info), Some(id)) = (&first, session.framework_id()) {
            deadline = heartbeat_deadline(info.heartbeat_interval);
            let mut state = self.state();
            state.framework.id = id.to_string();
            state.conn = Some(Conn {
                client,
                operator,
                framework_id: id.to_string(),
            });
        }
        let acks = AckQueue::default();
        let mut step = first;
        loop {
            match dispatch(scheduler, self, &acks, step).await {
                Flow::Continue => {}
                flow => {
                    self.acknowledge_dispatched(scheduler, &acks).await;
                    return SessionEnd::Flow(flow);
                }
            }
            // Another event is already here: dispatch it before acknowledging, so a burst
            // of updates is acknowledged in one call. Otherwise (nothing ready, the end of
            // the stream, an error) acknowledge first, then go on with what was read.
            let ready = if acks.len() > 0 && !acks.is_full() {
                ready_now(stream.message()).await
            } else {
                None
            };
            if let Some(Ok(Some(event))) = ready {
                step = match session.handle(event) {
                    Ok(step) => step,
                    Err(e) => {
                        self.acknowledge_dispatched(scheduler, &acks).await;
                        return SessionEnd::Lost(e.0);
                    }
                };
                continue;
            }
            self.acknowledge_dispatched(scheduler, &acks).await;
            let received = match ready {
                Some(r) => Ok(r),
                None => {
                    let next = async {
                        match deadline {
                            None => Ok(stream.message().await),
                            Some(d) => tokio::time::timeout(d, stream.message())
                                .await
                                .map_err(|_| d),
                        }
                    };
                    tokio::select! {
                        biased;
                        _ = stop_rx.wait_for(|stopped| *stopped) => return SessionEnd::Flow(Flow::Stopped),
                        r = next => r,
                    }
                }
            };
            step = match received {
                Err(d) => {
                    return SessionEnd::Lost(format!("no event for {d:?} (missed heartbeats)"));
                }
                Ok(Err(status)) => {
                    return SessionEnd::Lost(format!(
                        "stream failed: {:?}: {}",
                        status.code(),
                        status.message()
                    ));
                }
                Ok(Ok(None)) => return SessionEnd::Lost("the master closed the stream".into()),
                Ok(Ok(Some(event))) => match session.handle(event) {
                    Ok(step) => step,
                    Err(e) => return SessionEnd::Lost(e.0),
                },
            };
        }
    }

    // ---- control ---------------------------------------------------------------------

    /// End the driver: `run` returns [`StopReason::Stopped`] after the current callback.
    /// The framework stays registered at the master (its tasks keep running until its
    /// failover timeout); use [`teardown`](Self::teardown) to remove it.
    pub fn stop(&self) {
        self.inner.stop.send_replace(true);
    }

    /// Whether [`stop`](Self::stop) was called or the driver has finished.
    pub fn is_stopped(&self) -> bool {
        *self.inner.stop.borrow()
    }

    /// Whether there is a live subscription right now.
    pub fn is_subscribed(&self) -> bool {
        self.state().conn.is_some()
    }

    /// The framework id, once a master assigned one (or the one `run` was given).
    pub fn framework_id(&self) -> Option<String> {
        Some(self.state().framework.id.clone()).filter(|id| !id.is_empty())
    }

    /// A client of the Operator API of the master this driver is subscribed to, on the
    /// same connection and with the same credential (what the framework's principal may
    /// read there is up to the master's ACLs). Fails with [`SdkError::NotSubscribed`] while
    /// there is no subscription; callers bound each call with their own timeout
    /// ([`call_timeout`](Self::call_timeout) is the driver's).
    pub fn operator(&self) -> Result<OperatorClient<AuthChannel>, SdkError> {
        self.state()
            .conn
            .as_ref()
            .map(|c| c.operator.clone())
            .ok_or(SdkError::NotSubscribed)
    }

    /// The timeout of every unary call the driver makes.
    pub fn call_timeout(&self) -> Duration {
        self.inner.config.call_timeout
    }

    // ---- scheduler calls -------------------------------------------------------------

    async fn call<T, F, Fut>(&self, name: &'static str, f: F) -> Result<T, SdkError>
    where
        F: FnOnce(SchedulerClient<AuthChannel>, String) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let conn = self.state().conn.clone().ok_or(SdkError::NotSubscribed)?;
        let timeout = self.inner.config.call_timeout;
        match tokio::time::timeout(timeout, f(conn.client, conn.framework_id)).await {
            Err(_) => Err(SdkError::Timeout {
                call: name,
                seconds: timeout.as_secs_f64(),
            }),
            Ok(Err(status)) => Err(SdkError::rpc(name, status)),
            Ok(Ok(response)) => Ok(response.into_inner()),
        }
    }

    /// Apply `operations` to outstanding offers (all on one agent). Atomic: on error nothing
    /// was applied and the offers stay outstanding. Unused resources are filtered from this
    /// framework for `refuse_seconds` (`None`: the master's default, 5 s). Returns the ids
    /// of the launched tasks.
    pub async fn accept(
        &self,
        offer_ids: Vec<String>,
        operations: Vec<Operation>,
        refuse_seconds: Option<f64>,
    ) -> Result<Vec<String>, SdkError> {
        let response = self
            .call("accept", |mut c, framework_id| async move {
                c.accept(AcceptRequest {
                    framework_id,
                    offer_ids,
                    operations,
                    filters: Some(Filters { refuse_seconds }),
                })
                .await
            })
            .await?;
        Ok(response.launched_task_ids)
    }

    /// Launch `tasks` on one offer (a single LAUNCH operation); see [`accept`](Self::accept).
    pub async fn launch(
        &self,
        offer_id: impl Into<String>,
        tasks: Vec<TaskInfo>,
        refuse_seconds: Option<f64>,
    ) -> Result<Vec<String>, SdkError> {
        let offer_id = offer_id.into();
        let launch = Operation {
            operation: Some(operation::Operation::Launch(Launch { tasks })),
        };
        self.accept(vec![offer_id], vec![launch], refuse_seconds)
            .await
    }

    /// Several accepts in one `AcceptBatch` call, typically the answers to one OFFERS
    /// event (offers on different agents). Each item is checked and applied exactly as
    /// [`accept`](Self::accept) applies one, atomically per item, in order. `Ok` holds,
    /// per item in order, the launched task ids or why the master refused that item (its
    /// offers then stay outstanding); `Err`: the whole call was refused or failed, and
    /// nothing was applied (a timeout leaves that open, as with `accept`). At most
    /// [`MAX_ACCEPTS_PER_CALL`] items.
    pub async fn accept_batch(
        &self,
        items: Vec<AcceptItem>,
    ) -> Result<Vec<Result<Vec<String>, SdkError>>, SdkError> {
        if items.len() > MAX_ACCEPTS_PER_CALL {
            return Err(SdkError::TooManyItems {
                call: "accept_batch",
                items: items.len(),
                max: MAX_ACCEPTS_PER_CALL,
            });
        }
        let len = items.len();
        let response = self
            .call("accept_batch", |mut c, framework_id| async move {
                let accepts = items
                    .into_iter()
                    .map(|item| AcceptRequest {
                        framework_id: framework_id.clone(),
                        offer_ids: item.offer_ids,
                        operations: item.operations,
                        filters: Some(Filters {
                            refuse_seconds: item.refuse_seconds,
                        }),
                    })
                    .collect();
                c.accept_batch(AcceptBatchRequest {
                    framework_id,
                    accepts,
                })
                .await
            })
            .await?;
        let mut out: Vec<Result<Vec<String>, SdkError>> = (0..len)
            .map(|i| {
                Ok(response
                    .responses
                    .get(i)
                    .map(|r| r.launched_task_ids.clone())
                    .unwrap_or_default())
            })
            .collect();
        for r in response.refused {
            if let Some(slot) = usize::try_from(r.index).ok().and_then(|i| out.get_mut(i)) {
                *slot = Err(SdkError::Rpc {
                    call: "accept_batch",
                    code: tonic::Code::from(r.code),
                    message: r.message,
                });
            }
        }
        Ok(out)
    }

    /// Return offers unused; their resources are not re-offered to this framework for
    /// `refuse_seconds` (`None`: the master's default, 5 s).
    pub async fn decline(
        &self,
        offer_ids: Vec<String>,
        refuse_seconds: Option<f64>,
    ) -> Result<(), SdkError> {
        self.call("decline", |mut c, framework_id| async move {
            c.decline(DeclineRequest {
                framework_id,
                offer_ids,
                filters: Some(Filters { refuse_seconds }),
            })
            .await
        })
        .await?;
        Ok(())
    }

    /// Clear all decline filters and resume offers for `roles` (all roles if empty).
    pub async fn revive(&self, roles: Vec<String>) -> Result<(), SdkError> {
        self.call("revive", |mut c, framework_id| async move {
            c.revive(ReviveRequest {
                framework_id,
                roles,
            })
            .await
        })
        .await?;
        Ok(())
    }

    /// Stop offers for `roles` (all roles if empty) until [`revive`](Self::revive).
    pub async fn suppress(&self, roles: Vec<String>) -> Result<(), SdkError> {
        self.call("suppress", |mut c, framework_id| async move {
            c.suppress(SuppressRequest {
                framework_id,
                roles,
            })
            .await
        })
        .await?;
        Ok(())
    }

    /// Kill a task. `agent_id` may be empty if unknown; `grace` overrides the task's kill
    /// policy (time between SIGTERM and SIGKILL). The terminal state arrives as an update.
    pub async fn kill(
        &self,
        task_id: impl Into<String>,
        agent_id: impl Into<String>,
        grace: Option<Duration>,
    ) -> Result<(), SdkError> {
        let task_id = task_id.into();
        let agent_id = agent_id.into();
        self.call("kill", |mut c, framework_id| async move {
            c.kill(KillRequest {
                framework_id,
                task_id,
                agent_id,
                kill_policy: grace.map(|g| KillPolicy {
                    grace_period_seconds: g.as_secs_f64(),
                }),
            })
            .await
        })
        .await?;
        Ok(())
    }

    /// Shut down an executor and all its tasks.
    pub async fn shutdown(
        &self,
        executor_id: impl Into<String>,
        agent_id: impl Into<String>,
    ) -> Result<(), SdkError> {
        let executor_id = executor_id.into();
        let agent_id = agent_id.into();
        self.call("shutdown", |mut c, framework_id| async move {
            c.shutdown(ShutdownRequest {
                framework_id,
                executor_id,
                agent_id,
            })
            .await
        })
        .await?;
        Ok(())
    }

    /// Acknowledge a status update. The driver already does this for every update with a
    /// uuid after [`Scheduler::status_update`] returns; call it only for updates you
    /// received some other way.
    pub async fn acknowledge(
        &self,
        agent_id: impl Into<String>,
        task_id: impl Into<String>,
        uuid: impl Into<String>,
    ) -> Result<(), SdkError> {
        let agent_id = agent_id.into();
        let task_id = task_id.into();
        let uuid = uuid.into();
        self.call("acknowledge", |mut c, framework_id| async move {
            c.acknowledge(AcknowledgeRequest {
                framework_id,
                agent_id,
                task_id,
                uuid,
            })
            .await
        })
        .await?;
        Ok(())
    }

    /// Ask for the latest state of `tasks` as `(task_id, agent_id)` pairs (agent id may be
    /// empty), or of every task of the framework when `tasks` is empty. Answers arrive as
    /// updates with reason RECONCILIATION.
    pub async fn reconcile(&self, tasks: Vec<(String, String)>) -> Result<(), SdkError> {
        let tasks = tasks
            .into_iter()
            .map(|(task_id, agent_id)| reconcile_request::Task { task_id, agent_id })
            .collect();
        self.call("reconcile", |mut c, framework_id| async move {
            c.reconcile(ReconcileRequest {
                framework_id,
                tasks,
            })
            .await
        })
        .await?;
        Ok(())
    }

    /// Send opaque bytes to an executor.
    pub async fn message(
        &self,
        agent_id: impl Into<String>,
        executor_id: impl Into<String>,
        data: Vec<u8>,
    ) -> Result<(), SdkError> {
        let agent_id = agent_id.into();
        let executor_id = executor_id.into();
        self.call("message", |mut c, framework_id| async move {
            c.message(MessageRequest {
                framework_id,
                agent_id,
                executor_id,
                data,
            })
            .await
        })
        .await?;
        Ok(())
    }

    /// Change the framework's info (roles, capabilities, constraints, demands, ...). The id
    /// is filled in by the driver. On success the new info is also used for every later
    /// re-subscription.
    pub async fn update_framework(&self, mut framework: FrameworkInfo) -> Result<(), SdkError> {
        let id = self.framework_id().ok_or(SdkError::NotSubscribed)?;
        framework.id = id;
        let sent = framework.clone();
        self.call("update_framework", |mut c, _| async move {
            c.update_framework(UpdateFrameworkRequest {
                framework: Some(sent),
            })
            .await
        })
        .await?;
        self.state().framework = framework;
        Ok(())
    }

    /// Remove the framework from the master (its tasks are killed, its offers rescinded),
    /// then stop the driver: `run` returns [`StopReason::TornDown`].
    pub async fn teardown(&self) -> Result<(), SdkError> {
        self.call("teardown", |mut c, framework_id| async move {
            c.teardown(TeardownRequest { framework_id }).await
        })
        .await?;
        self.state().torn_down = true;
        self.stop();
        Ok(())
    }
}

impl Driver {
    /// Let the scheduler finish what the dispatched updates need
    /// ([`Scheduler::before_acknowledge`]), then acknowledge them.
    async fn acknowledge_dispatched<S: Scheduler>(&self, scheduler: &mut S, acks: &AckQueue) {
        let acks = acks.take();
        if !acks.is_empty() {
            let stopped_before = self.is_stopped();
            scheduler.before_acknowledge(self).await;
            if self.is_stopped() && !stopped_before {
                // The scheduler could not make them durable: the agent sends them again.
                tracing::warn!(
                    updates = acks.len(),
                    "not acknowledged: the scheduler stopped"
                );
                return;
            }
        }
        self.send_acks(acks).await;
    }

    /// Send the acknowledgements of the events just dispatched in one `AcknowledgeBatch`
    /// call (more than [`MAX_ACKS_PER_CALL`] in several). A failure is only logged: the
    /// agent re-sends every update until it is acknowledged, so nothing is lost.
    async fn send_acks(&self, acks: Vec<AcknowledgeRequest>) {
        if acks.is_empty() || self.state().torn_down {
            // Torn down (e.g. by the callback just run): the master acknowledges the
            // framework's remaining updates itself.
            return;
        }
        let mut rest = acks;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(MAX_ACKS_PER_CALL));
            let acks = std::mem::replace(&mut rest, tail);
            let request_acks = acks.clone();
            let result = self
                .call("acknowledge_batch", |mut c, framework_id| async move {
                    c.acknowledge_batch(AcknowledgeBatchRequest {
                        framework_id,
                        acks: request_acks,
                    })
                    .await
                })
                .await;
            match result {
                Ok(response) => {
                    for r in response.refused {
                        let task = usize::try_from(r.index)
                            .ok()
                            .and_then(|i| acks.get(i))
                            .map_or("?", |a| a.task_id.as_str());
                        tracing::warn!(task, code = r.code, message = %r.message, "acknowledgement refused");
                    }
                }
                Err(e) if e.code() == Some(tonic::Code::Unimplemented) => {
                    // A master without the batch call: one call per acknowledgement.
                    for ack in acks {
                        let task_id = ack.task_id.clone();
                        let result = self
                            .call(
                                "acknowledge",
                                |mut c, _| async move { c.acknowledge(ack).await },
                            )
                            .await;
                        if let Err(e) = result {
                            tracing::warn!(task = %task_id, error = %e, "acknowledgement failed");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(acknowledgements = acks.len(), error = %e, "acknowledgements failed");
                }
            }
        }
    }
}

/// An error and its sources, joined by ": " (tonic's transport errors say little at the top).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
