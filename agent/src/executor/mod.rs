//! Custom executors on the agent: their life cycle and the executor API server.
//!
//! - [`lifecycle`]: the executor life cycle (an enum and its one transition function).
//! - [`server`]: the `ExecutorApi` gRPC service on the agent's unix socket; it validates
//!   the shape of every call and hands it to the state actor, which owns the executors.
//!
//! This module must never own executor state: the state actor ([`crate::state`]) is the
//! single owner of executors and their tasks; the server only translates calls into
//! messages for it.

pub mod lifecycle;
pub mod server;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Environment variable naming the agent's executor API socket.
pub const ENV_SOCKET: &str = "AGORA_EXECUTOR_SOCKET";
/// Environment variable holding the executor's secret token (sent with every call).
pub const ENV_TOKEN: &str = "AGORA_EXECUTOR_TOKEN";
/// Environment variable holding the executor's id.
pub const ENV_EXECUTOR_ID: &str = "AGORA_EXECUTOR_ID";
/// Environment variable: seconds the executor keeps trying to reach a restarted agent.
pub const ENV_RECOVERY_TIMEOUT: &str = "AGORA_EXECUTOR_RECOVERY_TIMEOUT";
/// File name of the socket in the agent's work directory.
pub const SOCKET_NAME: &str = "executor.sock";
/// Metadata key carrying the executor's token (`AGORA_EXECUTOR_TOKEN`) on every call.
pub const TOKEN_HEADER: &str = "x-agora-executor-token";
/// Name of the default executor program, looked up next to the agent's binary.
pub const DEFAULT_EXECUTOR_NAME: &str = "agora-default-executor";

/// An executor on this agent: its framework and its id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExecutorKey {
    /// The framework.
    pub framework_id: String,
    /// The executor id (unique within the framework).
    pub executor_id: String,
}

impl ExecutorKey {
    /// A key.
    pub fn new(framework_id: impl Into<String>, executor_id: impl Into<String>) -> ExecutorKey {
        ExecutorKey {
            framework_id: framework_id.into(),
            executor_id: executor_id.into(),
        }
    }
}

impl fmt::Display for ExecutorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.framework_id, self.executor_id)
    }
}

/// How the agent runs custom executors.
#[derive(Clone, Debug)]
pub struct ExecutorConfig {
    /// The executor API socket; `None`: executors are not supported (tasks naming one are
    /// refused).
    pub socket: Option<PathBuf>,
    /// The default executor program (task groups whose executor names no command).
    pub default_executor: PathBuf,
    /// An executor that has not subscribed this long after its start (or after losing its
    /// connection) is killed and its tasks fail.
    pub subscribe_timeout: Duration,
    /// Time between SHUTDOWN and killing the executor's container.
    pub shutdown_grace: Duration,
    /// How long executors keep trying to reach a restarted agent (passed to them).
    pub recovery_timeout: Duration,
    /// `host:port` of the agent's HTTP endpoint, where Mesos HTTP executors find
    /// `/api/v1/executor`; given, executors also get Mesos's environment
    /// (`MESOS_AGENT_ENDPOINT`, ...). `None`: no --listen.
    pub mesos_endpoint: Option<String>,
}

impl Default for ExecutorConfig {
    fn default() -> ExecutorConfig {
        ExecutorConfig {
            socket: None,
            default_executor: default_executor_path(),
            subscribe_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(5),
            recovery_timeout: Duration::from_secs(900),
            mesos_endpoint: None,
        }
    }
}

/// `agora-default-executor` next to the running binary (or just the name, for PATH).
pub fn default_executor_path() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(DEFAULT_EXECUTOR_NAME)))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_EXECUTOR_NAME))
}
