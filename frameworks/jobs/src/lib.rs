//! `agora-jobs`: a Chronos-style framework for scheduled and dependent batch jobs on the
//! Agora scheduler SDK. See `docs/jobs.md` for the guide and the REST API.
//!
//! Layers, pure first:
//! - [`spec`]: job definitions and their validation.
//! - [`schedule`]: cron and ISO 8601 schedules, starting deadlines (time is an argument).
//! - [`dag`]: the dependency graph on petgraph.
//! - [`run`]: the run life cycle (one enum, one transition function).
//! - [`engine`]: all of the above as one synchronous state machine that emits store
//!   batches and effects.
//! - [`store`]: the durable key-value store (redb), shared with the services framework
//!   (`agora-framework-store`).
//! - [`clock`], [`metrics`]: time and counters.
//! - [`daemon`]: the actor owning the engine and the store, the SDK scheduler, and the
//!   HTTP API ([`api`]).

#![forbid(unsafe_code)]

pub mod api;
pub mod clock;
pub mod daemon;
pub mod dag;
pub mod engine;
pub mod metrics;
pub mod run;
pub mod schedule;
pub mod spec;
pub use agora_framework_store as store;
