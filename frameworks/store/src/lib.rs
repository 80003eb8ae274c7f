//! The durable state of Agora's frameworks (the jobs and services daemons, and any
//! framework written on `agora-sdk` that wants the same guarantees).
//!
//! - [`Store`]: named tables (string keys, byte values), read at start-up and changed by
//!   [`Batch`]es that commit atomically and are durable when [`Store::commit`] returns, on
//!   a [`Backend`]: one redb file (fsynced), or etcd ([`etcd_store`]: a fenced log on a
//!   quorum, for a daemon run as several instances). JSON helpers for documents.
//! - [`ha`]: several instances of a daemon, one leader elected through etcd; followers
//!   answer REST calls with a redirect to the leader.
//! - [`framework_id`]: the framework id the master assigned, kept in a table of the same
//!   store, and a [`agora_sdk::FrameworkIdStore`] over it for `run_failover`.
//!
//! Architecture invariant: nothing here knows a framework's types or tables; a framework
//! names its own tables. The store never reports a batch as committed before it is durable,
//! so a caller may answer its client or act on the world once `commit` returned `Ok`.

#![forbid(unsafe_code)]

pub mod etcd_store;
pub mod framework_id;
pub mod ha;
mod store;

pub use framework_id::{FRAMEWORK_ID_KEY, StoredFrameworkId};
pub use store::{Backend, Batch, Change, Store, StoreError, TABLE_NAME_MAX_BYTES};
