//! Agora executor SDK: write custom executors that speak the executor API to the agent.
//!
//! An executor is a program the agent starts (in its own container) for a framework. It
//! implements [`Executor`] and hands it to [`run`], which reads the `AGORA_EXECUTOR_*`
//! environment the agent set, dials the agent's unix socket, subscribes, and calls the
//! executor's callbacks one at a time, in event order. Callbacks talk back through the
//! [`ExecutorHandle`] (status updates, messages to the framework).
//!
//! Reliability: every update the executor sends is kept until the agent says the framework
//! acknowledged it (ACKNOWLEDGED). When the agent restarts, the driver reconnects with
//! backoff (for at most [`DriverConfig::recovery_timeout`]) and re-subscribes with those
//! updates and the tasks it has not reported on yet, so nothing is lost.
//!
//! [`command::CommandExecutor`] is a ready executor that runs each task's command as a
//! child process (the example executor and the agent's default executor for task groups).

pub mod command;
pub mod driver;
pub mod executor;

pub use agora_proto::v1 as proto;
pub use driver::{DriverConfig, DriverError, ExecutorHandle, TOKEN_HEADER, run, run_with};
pub use executor::{Executor, Subscribed};

/// Environment variables the agent gives every executor it starts.
pub mod env {
    /// Path of the agent's executor API unix socket.
    pub const SOCKET: &str = "AGORA_EXECUTOR_SOCKET";
    /// The executor's framework.
    pub const FRAMEWORK_ID: &str = "AGORA_FRAMEWORK_ID";
    /// The executor's id.
    pub const EXECUTOR_ID: &str = "AGORA_EXECUTOR_ID";
    /// The executor's secret, sent with every call (never passed on to tasks).
    pub const TOKEN: &str = "AGORA_EXECUTOR_TOKEN";
    /// The agent's id.
    pub const AGENT_ID: &str = "AGORA_AGENT_ID";
    /// How long (seconds) the executor keeps trying to reach a restarted agent.
    pub const RECOVERY_TIMEOUT: &str = "AGORA_EXECUTOR_RECOVERY_TIMEOUT";
    /// The executor's sandbox (its working directory).
    pub const SANDBOX: &str = "AGORA_SANDBOX";
}
