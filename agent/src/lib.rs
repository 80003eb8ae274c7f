//! The Agora agent: runs on every host, registers the host's resources with the master,
//! launches tasks in sandboxes and reports their status until each update is acknowledged.
//!
//! # Code map
//!
//! - [`cli`]: the `agora-agent` command line (clap) and its translation into [`AgentConfig`].
//! - [`detect`]: auto-detection of the host's cpus, mem, disk and ports.
//! - [`agent`]: [`run`], which wires the actors below together and handles shutdown.
//! - [`master_addr`]: `--master` addresses (`HOST:PORT`, `https://` for TLS).
//! - [`master_link`]: the connection to the master: registration, heartbeats, the command
//!   stream, reconnection with backoff.
//! - [`state`]: the actor that owns the map of running tasks.
//! - [`task`]: the task life cycle (an enum and its one transition function).
//! - [`status_update`]: the actor that owns the per-task status update queues and their
//!   re-sending until acknowledgement.
//! - [`containerizer`]: the seam between the agent and how a task's processes are run
//!   ([`Containerizer`]): the Linux implementation ([`containerizer::linux`]: cgroups
//!   v1/v2 from [`containerizer::cgroups`], namespaces from [`containerizer::spawn`], the
//!   only module allowed `unsafe`) and the plain-process fallback
//!   ([`containerizer::process`]), picked by [`containerizer::select`].
//! - [`executor`]: custom executors: their life cycle and the executor API server on the
//!   agent's unix socket (the state actor owns the executors themselves).
//! - [`sandbox`]: id validation and sandbox paths.
//! - [`prepare`]: what happens before a containerizer starts a task: its user decided
//!   (default user, root only when allowed), its sandbox given to that user, its URIs
//!   fetched as that user.
//! - [`fetcher`]: task URIs (http, https, allowed local files) fetched into the sandbox as
//!   the task's user, archives extracted, a bounded cache.
//! - [`http`]: the agent's HTTP endpoint on `--listen`: container usage, sandbox files.
//! - [`health`]: command, HTTP and TCP health checks of running tasks.
//! - [`backoff`]: bounded exponential backoff.
//! - [`checkpoint`]: the on-disk checkpoint (agent id, launched tasks, the status update
//!   write-ahead log) that lets a restarted agent recover.
//! - [`gc`]: sandbox garbage collection (ended tasks' sandboxes after `--gc-delay`,
//!   sooner above `--gc-disk-watermark`).
//! - [`recovery`]: what a starting agent does with a checkpoint: re-attach, refuse, or
//!   start afresh.
//!
//! # Architecture invariants
//!
//! - Each piece of mutable state has exactly one owner task; others talk to it through
//!   bounded channels. No lock is shared between actors.
//! - Nothing the network or a task's input can cause panics the agent: inputs are
//!   validated and errors turned into status updates or log lines.
//! - Nothing runs with the agent's privileges on a task's behalf: tasks, their command
//!   health checks and their fetches run as the task's user (a root agent's tasks without
//!   a user run as `--default-user`; root only with `--allow-root-tasks`), checks inside
//!   the task's container.
//! - The agent signals only process groups and cgroups it created, never a process it did
//!   not start; it creates and removes cgroups only under `<hierarchy>/agora/<agent>/`.
//! - Tasks do not die with the agent: a restarted agent re-attaches to them from its
//!   checkpoint; every status update is on disk before it is sent.
//! - Time is tokio's (`tokio::time`), so tests can pause and advance it; only status
//!   timestamps and sandbox garbage collection (which compares file modification times,
//!   wall-clock by nature) read the wall clock.

#![deny(unsafe_code)]

pub mod agent;
pub mod backoff;
pub mod checkpoint;
pub mod cli;
pub mod containerizer;
pub mod detect;
pub mod executor;
pub mod fetcher;
pub mod gc;
pub mod health;
pub mod http;
pub mod master_addr;
pub mod master_link;
pub mod mesos_executor;
pub mod mesos_state;
pub mod prepare;
pub mod recovery;
pub mod sandbox;
pub mod state;
pub mod status_update;
pub mod task;
pub mod usage_report;
pub mod volumes;

pub use agent::{
    AgentConfig, AgentError, AgentExit, MasterAddr, run, run_with_process_containerizer,
};
pub use containerizer::linux::{LinuxConfig, LinuxContainerizer};
pub use containerizer::process::ProcessContainerizer;
pub use containerizer::{
    Container, ContainerRef, Containerizer, LaunchError, LaunchSpec, Termination,
};
