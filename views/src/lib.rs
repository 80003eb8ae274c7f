//! JSON views of protocol messages, shared by the master's HTTP API (`/api/v1/*`) and the
//! CLI's `--json` output, so both print the same shape by construction.
//!
//! Pure rendering: it must never fetch, validate or interpret data beyond formatting it.

pub mod events;
pub mod explain;
pub mod operator;
pub mod state;
pub mod usage;
