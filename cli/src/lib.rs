//! The `agora` operator command line, as a library so its logic is unit-testable; the
//! binary (`src/main.rs`) only parses arguments and maps results to exit codes.
//!
//! - [`args`]: command-line syntax and validation.
//! - [`client`]: the master's HTTP/JSON API over the CLI's connection.
//! - [`resolve`]: which agent, framework or task a name or id prefix means.
//! - [`ops`]: the operator commands (quota, weights, reservations, volumes, maintenance,
//!   kills, teardowns, explain, filtered task lists).
//! - [`logs`]: task output through the master's sandbox proxy, the event stream.
//! - [`output`]: stdout without panics on closed pipes; the exit codes.
//! - [`run`]: `agora run`, a built-in framework on the SDK.
//! - [`local`]: `agora local`, a master and agents as child processes.
//! - [`state`]: `agora state|agents|frameworks|tasks`, reading the Operator API.
//! - [`table`]: text tables.
//!
//! The CLI is a client: it must never reach into master or agent internals, only their
//! public APIs (Scheduler and Operator gRPC, the HTTP operator API) and their command lines.

#![forbid(unsafe_code)]

pub mod args;
pub mod client;
pub mod local;
pub mod logs;
pub mod ops;
pub mod output;
pub mod resolve;
pub mod run;
pub mod state;
pub mod table;
