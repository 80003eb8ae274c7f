//! `agora-services`: a Marathon-compatible framework for long-running services on Agora.
//!
//! Layers, inner to outer (each module's header says what it owns and must never do):
//! - [`app`]: the app model in Marathon's v2 field names and its validation (pure).
//! - [`autoscale`]: the autoscaling policy (pure: usage samples in, a decision out).
//! - [`instance`], [`launch`], [`core`]: the scheduler core, a pure deterministic state
//!   machine (offers, statuses, API changes and the time in; persistence, master calls and
//!   events out).
//! - [`store`]: the generic durable store on redb shared with the jobs framework
//!   (`agora-framework-store`); [`state`]: the framework's tables in it.
//! - [`views`]: Marathon's JSON shapes of the core's state (pure formatting).
//! - [`service`]: the one actor owning the core and the store, applying outputs (persist,
//!   then call the master, then publish events).
//! - [`api`]: the REST API (`/v2/...`), translating HTTP to service calls.
//! - [`discovery`]: the service discovery zone of the core (pure); [`dns`]: its DNS
//!   answers (pure) and the UDP/TCP server.
//! - [`cluster`]: reads agents and usage from the master's Operator API for the core.
//! - [`daemon`]: wiring: store, actor, HTTP server, SDK driver with framework-id failover.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod app;
pub mod autoscale;
pub mod cluster;
pub mod core;
pub mod daemon;
pub mod discovery;
pub mod dns;
pub mod instance;
pub mod launch;
pub mod service;
pub mod state;
pub use agora_framework_store as store;
pub mod time;
pub mod views;
