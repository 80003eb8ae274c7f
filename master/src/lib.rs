//! Agora master: the allocator, the master actor that owns all cluster state, and the
//! scheduler, agent and operator APIs (gRPC) plus HTTP endpoints, served on one port.
//!
//! Invariants: only the actor mutates master state; the allocator core does no I/O and
//! reads no clock; every API input is validated at the edge and a refused call changes
//! nothing.

#![forbid(unsafe_code)]

pub mod actor;
pub mod auth;
pub mod clock;
pub mod config;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod registry;
pub mod server;
pub mod service;
pub mod state;
pub mod tally;
pub mod ui;
pub mod validate;

/// The allocator lives in its own crate (`agora-allocator`, pure by its dependencies); the
/// re-export keeps every `crate::allocator::...` path of the master unchanged.
pub use agora_allocator as allocator;

pub use config::MasterConfig;
pub use server::RunningMaster;
