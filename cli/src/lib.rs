//! The `agora` operator command line, as a library so its logic is unit-testable; the
//! binary (`src/main.rs`) only parses arguments and maps results to exit codes.
//!
//! - [`args`]: command-line syntax and validation.
//! - [`run`]: `agora run`, a built-in framework on the SDK.
//! - [`local`]: `agora local`, a master and agents as child processes.
//! - [`state`]: `agora state|agents|frameworks|tasks`, reading the Operator API.
//! - [`table`]: text tables.
//!
//! The CLI is a client: it must never reach into master or agent internals, only their
//! public APIs (Scheduler and Operator gRPC) and their command lines.

#![forbid(unsafe_code)]

pub mod args;
pub mod local;
pub mod run;
pub mod state;
pub mod table;
