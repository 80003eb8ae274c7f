//! The Agora agent: runs on every host, registers the host's resources with the master,
//! launches tasks in sandboxes and reports their status until each update is acknowledged.
//!
//! # Code map
//!
//! - [`cli`]: the `agora-agent` command line (clap) and its translation into [`AgentConfig`].
//! - [`detect`]: auto-detection of the host's cpus, mem, disk and ports.
//! - [`agent`]: [`run`], which wires the actors below together and handles shutdown.
//! - [`master_link`]: the connection to the master: registration, heartbeats, the command
//!   stream, reconnection with backoff.
//! - [`state`]: the actor that owns the map of running tasks.
//! - [`task`]: the task life cycle (an enum and its one transition function).
//! - [`status_update`]: the actor that owns the per-task status update queues and their
//!   re-sending until acknowledgement.
//! - [`containerizer`]: the seam between the agent and how a task's processes are run
//!   ([`Containerizer`]), with the plain-process implementation in
//!   [`containerizer::process`].
//! - [`sandbox`]: id validation and sandbox paths.
//! - [`backoff`]: bounded exponential backoff.
//!
//! # Architecture invariants
//!
//! - Each piece of mutable state has exactly one owner task; others talk to it through
//!   bounded channels. No lock is shared between actors.
//! - Nothing the network or a task's input can cause panics the agent: inputs are
//!   validated and errors turned into status updates or log lines.
//! - The agent signals only process groups it created, never a process it did not start.
//! - Time is tokio's (`tokio::time`), so tests can pause and advance it; only status
//!   timestamps read the wall clock.

#![forbid(unsafe_code)]

pub mod agent;
pub mod backoff;
pub mod cli;
pub mod containerizer;
pub mod detect;
pub mod master_link;
pub mod sandbox;
pub mod state;
pub mod status_update;
pub mod task;

pub use agent::{
    AgentConfig, AgentError, AgentExit, MasterAddr, run, run_with_process_containerizer,
};
pub use containerizer::process::ProcessContainerizer;
pub use containerizer::{Container, Containerizer, LaunchError, LaunchSpec, Termination};
