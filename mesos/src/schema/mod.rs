//! Mesos's v1 message schemas (`mesos.v1`, `mesos.v1.scheduler`, `mesos.v1.executor`),
//! each type deriving both its protobuf encoding (prost, with Mesos's field numbers) and
//! its JSON form (serde, with Mesos's field names; see `crate::json`).
//!
//! Holds types only: no behaviour, no I/O.

pub mod executor;
pub mod scheduler;
pub mod v1;
