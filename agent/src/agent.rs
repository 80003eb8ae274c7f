//! Wiring and life of one agent: [`run`] starts the status update manager, the state actor
//! and the master link, waits for a shutdown (the caller's signal or the master's
//! `Shutdown`), kills every task and stops.
//!
//! Owns the agent's configuration ([`AgentConfig`]) and nothing mutable: all run-time state
//! lives in the actors. It must never touch tasks or the network directly.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agora_proto::v1::AgentInfo;
use agora_resources::{Attributes, Resources};
use tokio::sync::mpsc;

use crate::checkpoint::{AgentMeta, Checkpoint, CheckpointError, UpdateLog};
use crate::containerizer::Containerizer;
use crate::containerizer::process::ProcessContainerizer;
use crate::executor::{ExecutorConfig, SOCKET_NAME, server as executor_server};
use crate::master_link::Outbox;
use crate::master_link::{LinkConfig, MasterLink};
use crate::recovery::{self, RecoveryError};
use crate::state::{AgentState, ExecutorSupport, Persistence};
use crate::status_update::{StatusUpdates, UpdateConfig, UpdateQueues, new_status};
use crate::task::{KillCause, MAX_GRACE};

pub use crate::master_addr::{AddrError, MasterAddr};

/// Everything an agent needs to run. Build it with [`AgentConfig::new`] (or from the command
/// line with [`crate::cli::AgentArgs::into_config`]) and adjust the public fields.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Masters, tried in order. Must not be empty.
    pub masters: Vec<MasterAddr>,
    /// Work directory; sandboxes live under `<work_dir>/sandboxes/`.
    pub work_dir: PathBuf,
    /// The agent's total resources (already completed by detection, if wanted).
    pub resources: Resources,
    /// The agent's attributes.
    pub attributes: Attributes,
    /// Hostname reported to the master.
    pub hostname: String,
    /// Address reported to the master as the agent's own endpoint (`AgentInfo.address`);
    /// empty: none.
    pub advertise_address: String,
    /// Where to serve the agent's HTTP endpoint ([`crate::http`]); `None`: not served.
    pub http_listen: Option<String>,
    /// Serve that endpoint over TLS with this certificate and key.
    pub http_tls: Option<crate::http::HttpTls>,
    /// Authentication and sandbox ACLs of that endpoint.
    pub http_security: crate::http::HttpSecurity,
    /// Timing of the master link.
    pub link: LinkConfig,
    /// Timing and limits of the status update manager.
    pub updates: UpdateConfig,
    /// On a local stop (signal), how long to keep delivering the final status updates.
    pub drain_timeout: Duration,
    /// Custom executors (the socket is always `<work_dir>/executor.sock`; the field's
    /// `socket` is filled in by [`run`]).
    pub executors: ExecutorConfig,
    /// Who tasks run as (default user, root allowed or not).
    pub users: crate::prepare::UserPolicy,
    /// The fetcher's cache, allowed local directories and https trust.
    pub fetch: crate::fetcher::FetchConfig,
    /// How ports and disk are watched ([`crate::containerizer::limits`]).
    pub limits: crate::containerizer::limits::LimitPolicy,
    /// Sandbox garbage collection (`--gc-delay`, `--gc-disk-watermark`).
    pub gc: crate::gc::GcConfig,
}

impl AgentConfig {
    /// A configuration with default timing.
    pub fn new(
        masters: Vec<MasterAddr>,
        work_dir: impl Into<PathBuf>,
        resources: Resources,
        attributes: Attributes,
        hostname: impl Into<String>,
    ) -> AgentConfig {
        let work_dir = work_dir.into();
        AgentConfig {
            fetch: crate::fetcher::FetchConfig::new(&work_dir),
            users: crate::prepare::UserPolicy::default(),
            limits: crate::containerizer::limits::LimitPolicy::default(),
            gc: crate::gc::GcConfig::default(),
            masters,
            work_dir,
            resources,
            attributes,
            hostname: hostname.into(),
            advertise_address: String::new(),
            http_listen: None,
            http_tls: None,
            http_security: crate::http::HttpSecurity::default(),
            link: LinkConfig::default(),
            updates: UpdateConfig::default(),
            drain_timeout: Duration::from_secs(2),
            executors: ExecutorConfig::default(),
        }
    }

    /// The `AgentInfo` sent when registering (without an id).
    pub fn agent_info(&self) -> AgentInfo {
        AgentInfo {
            id: String::new(),
            hostname: self.hostname.clone(),
            address: self.advertise_address.clone(),
            resources: self.resources.to_proto(),
            attributes: self.attributes.to_proto(),
            // Known once the containerizer is chosen; `run` fills it in.
            isolation: String::new(),
        }
    }
}

/// How an agent ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentExit {
    /// The caller's shutdown future resolved (e.g. SIGTERM); all tasks were killed.
    Stopped,
    /// The master sent `Shutdown`; all tasks were killed. The binary exits non-zero.
    RemovedByMaster {
        /// The master's reason.
        reason: String,
    },
}

/// An agent that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No master address was configured.
    #[error("no master address given")]
    NoMasters,
    /// The work directory cannot be created.
    #[error("cannot create work directory {path}: {error}")]
    WorkDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The checkpoint in the work directory forbids this start (e.g. changed resources).
    #[error("cannot recover: {0}")]
    Recovery(#[from] RecoveryError),
    /// The HTTP endpoint cannot listen.
    #[error("cannot listen on {addr}: {error}")]
    Listen {
        /// The address.
        addr: String,
        /// The OS error.
        error: std::io::Error,
    },
    /// The HTTP endpoint's TLS certificate or key is unusable.
    #[error("agent HTTP endpoint TLS: {0}")]
    HttpTls(String),
    /// The executor API socket cannot be served.
    #[error(transparent)]
    ExecutorSocket(#[from] executor_server::ServeError),
    /// The host's boot id cannot be read.
    #[error("cannot read the boot id from {path}: {error}")]
    BootId {
        /// Where it was read.
        path: &'static str,
        /// The OS error.
        error: std::io::Error,
    },
}

impl From<CheckpointError> for AgentError {
    fn from(e: CheckpointError) -> AgentError {
        AgentError::Recovery(RecoveryError::Checkpoint(e))
    }
}

/// Runs an agent until `shutdown` resolves or the master removes it; then kills every
/// task and returns. Must be called inside a tokio runtime.
///
/// `agora local` can start several agents in one process by spawning this future once per
/// agent, each with its own work directory (sandbox paths are per work directory).
pub async fn run(
    config: AgentConfig,
    containerizer: Arc<dyn Containerizer>,
    shutdown: impl Future<Output = ()>,
) -> Result<AgentExit, AgentError> {
    if config.masters.is_empty() {
        return Err(AgentError::NoMasters);
    }
    tokio::fs::create_dir_all(&config.work_dir)
        .await
        .map_err(|error| AgentError::WorkDir {
            path: config.work_dir.clone(),
            error,
        })?;

    // Volumes are made visible in sandboxes before whichever containerizer starts a task;
    // before that, the task's user is decided and its URIs fetched as that user.
    let containerizer: Arc<dyn Containerizer> =
        Arc::new(crate::containerizer::limits::LimitingContainerizer::new(
            containerizer,
            &config.work_dir,
            config.limits.clone(),
        ));
    let volumes = crate::volumes::Volumes::new(&config.work_dir);
    let containerizer: Arc<dyn Containerizer> = Arc::new(crate::volumes::VolumeContainerizer::new(
        containerizer,
        volumes.clone(),
    ));
    let containerizer: Arc<dyn Containerizer> =
        Arc::new(crate::prepare::PreparingContainerizer::new(
            containerizer,
            &config.work_dir,
            config.users.clone(),
            config.fetch.clone(),
        ));
    if nix::unistd::Uid::effective().is_root() {
        tracing::info!(
            default_user = %config.users.default_user,
            allow_root = config.users.allow_root,
            "tasks naming no user run as the default user"
        );
    }
    let http_tls = match &config.http_tls {
        Some(t) => Some(t.server_config().map_err(AgentError::HttpTls)?),
        None => None,
    };
    let listener = match &config.http_listen {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr.as_str()).await.map_err(
            |error| AgentError::Listen {
                addr: addr.clone(),
                error,
            },
        )?),
        None => None,
    };
    // Recovery: the checkpoint decides whether this is a new agent, the same agent after
    // a restart (re-attach to its containers), or a refused configuration change.
    let checkpoint = Checkpoint::new(&config.work_dir);
    let boot_id = crate::checkpoint::boot_id().map_err(|error| AgentError::BootId {
        path: crate::checkpoint::BOOT_ID_PATH,
        error,
    })?;
    let meta = AgentMeta {
        agent_id: String::new(),
        boot_id,
        resources: config.resources.to_proto(),
        attributes: config.attributes.to_proto(),
        isolation: containerizer.isolation().to_string(),
    };
    let recovered = recovery::recover(&checkpoint, &meta, &containerizer).await?;
    let (log, pending) = UpdateLog::open(&checkpoint.update_log_path())?;
    if !pending.is_empty() {
        tracing::info!(
            tasks = pending.len(),
            "re-sending unacknowledged status updates"
        );
    }
    let queues = UpdateQueues::recover(log, pending, config.updates.max_queued_per_task);
    let (updates, updates_task) = StatusUpdates::spawn_with(config.updates.clone(), queues);
    let agent_id = recovered.agent_id.clone().unwrap_or_default();
    for (key, report) in recovered.lost {
        tracing::info!(task = %key, state = ?report.state, "{}", report.message);
        updates.enqueue(new_status(&key, &agent_id, report)).await;
    }
    let persistence = Persistence {
        checkpoint: checkpoint.clone(),
        meta,
    };
    // The socket path is handed to executors; an absolute path keeps it valid whatever
    // their working directory.
    let work_dir = std::path::absolute(&config.work_dir).map_err(|error| AgentError::WorkDir {
        path: config.work_dir.clone(),
        error,
    })?;
    let socket = work_dir.join(SOCKET_NAME);
    let executor_listener = executor_server::bind(&socket)?;
    let (outbox_tx, outbox) = Outbox::new();
    let outbox: Arc<dyn crate::state::MasterOutbox> = Arc::new(outbox);
    let mut executor_config = config.executors.clone();
    executor_config.socket = Some(socket);
    executor_config.mesos_endpoint = listener
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map(|a| {
            // An unspecified address is reached on loopback from the same host.
            let ip = if a.ip().is_unspecified() {
                std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
            } else {
                a.ip()
            };
            std::net::SocketAddr::new(ip, a.port()).to_string()
        });
    let (state, state_task) = AgentState::spawn_with(
        Arc::clone(&containerizer),
        updates.clone(),
        Some(persistence),
        agent_id,
        recovered.tasks,
        ExecutorSupport {
            config: executor_config,
            outbox,
            recovered: recovered.executors,
        },
    );
    let (executor_stop, executor_stopped) = tokio::sync::oneshot::channel::<()>();
    let executor_task = tokio::spawn(executor_server::serve(
        executor_listener,
        state.clone(),
        async move {
            let _ = executor_stopped.await;
        },
    ));
    let (gc_stop, gc_stopped) = tokio::sync::oneshot::channel::<()>();
    let gc_task = tokio::spawn(crate::gc::run(
        config.gc.clone(),
        work_dir.clone(),
        Box::new(|p: &std::path::Path| crate::gc::disk_usage(p)),
        async move {
            let _ = gc_stopped.await;
        },
    ));
    let (shutdown_tx, mut shutdown_rx) = mpsc::channel(1);
    let link = MasterLink {
        agent_id: recovered.agent_id,
        masters: config.masters.clone(),
        info: AgentInfo {
            isolation: containerizer.isolation().to_string(),
            ..config.agent_info()
        },
        config: config.link.clone(),
        state: state.clone(),
        updates: updates.clone(),
        shutdown: shutdown_tx,
        volumes,
        outbox: outbox_tx,
    };
    tracing::info!(
        masters = %config.masters.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
        work_dir = %config.work_dir.display(),
        hostname = %config.hostname,
        resources = %config.resources,
        "agent starting"
    );
    let link_task = tokio::spawn(link.run());
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http_task = listener.map(|l| {
        tracing::info!(addr = ?l.local_addr().ok(), "serving the agent HTTP endpoint");
        let facts = crate::mesos_state::AgentFacts::of(&config, containerizer.isolation());
        tokio::spawn(crate::http::serve(
            l,
            state.clone(),
            config.work_dir.clone(),
            http_tls,
            Arc::new(config.http_security.clone()),
            Arc::new(facts),
            async move {
                let _ = http_stopped.await;
            },
        ))
    });

    let exit = tokio::select! {
        () = shutdown => AgentExit::Stopped,
        reason = shutdown_rx.recv() => AgentExit::RemovedByMaster {
            reason: reason.unwrap_or_else(|| "the master link stopped unexpectedly".into()),
        },
    };
    let cause = match &exit {
        AgentExit::Stopped => KillCause::AgentStopping,
        AgentExit::RemovedByMaster { .. } => KillCause::AgentRemoved,
    };
    tracing::info!("agent stopping: killing all tasks");
    if tokio::time::timeout(MAX_GRACE + Duration::from_secs(30), state.kill_all(cause))
        .await
        .is_err()
    {
        tracing::error!("tasks did not end in time; stopping anyway");
    } else {
        containerizer.release().await;
    }
    if exit == AgentExit::Stopped {
        let left = updates.drain(config.drain_timeout).await;
        if left > 0 {
            tracing::warn!(tasks = left, "stopping with undelivered status updates");
        }
    }
    link_task.abort();
    let _ = link_task.await;
    let _ = gc_stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(2), gc_task).await;
    let _ = executor_stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(2), executor_task).await;
    let _ = http_stop.send(());
    if let Some(t) = http_task {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
    drop(state);
    drop(updates);
    // The actors stop once their handles are gone; give them a moment to finish logging.
    let _ = tokio::time::timeout(Duration::from_secs(1), state_task).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), updates_task).await;
    Ok(exit)
}

/// [`run`] with the plain-process containerizer keeping sandboxes in `config.work_dir`.
pub async fn run_with_process_containerizer(
    config: AgentConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<AgentExit, AgentError> {
    let containerizer =
        ProcessContainerizer::new(&config.work_dir).map_err(|error| AgentError::WorkDir {
            path: config.work_dir.clone(),
            error,
        })?;
    run(config, Arc::new(containerizer), shutdown).await
}

/// The master link's outbox is the state actor's way to the master.
impl crate::state::MasterOutbox for Outbox {
    fn executor_message(
        &self,
        request: agora_proto::v1::ExecutorToFrameworkMessage,
    ) -> futures::future::BoxFuture<'static, Result<(), tonic::Status>> {
        Outbox::executor_message(self, request)
    }

    fn executor_exited(
        &self,
        request: agora_proto::v1::ExecutorExitedRequest,
    ) -> futures::future::BoxFuture<'static, Result<(), tonic::Status>> {
        Outbox::executor_exited(self, request)
    }
}
