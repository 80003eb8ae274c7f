//! Agora's wire protocol: the generated types and gRPC services of the four APIs
//! (scheduler, agent, executor, operator), plus small helpers on the generated enums.
//!
//! This crate owns only the protocol (including the credential header format in `auth`). It
//! must never hold behaviour: no I/O, no policy.
//! Resource arithmetic lives in `agora-resources`.

#![forbid(unsafe_code)]

pub mod auth;
pub mod codec;

/// Version 1 of the protocol (`package agora.v1`).
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("agora.v1");
}

/// The part of etcd's v3 API (`package etcdserverpb`) the master uses for its registry and
/// leader election (`proto/etcd/etcdserverpb.proto`, wire-compatible with etcd 3.4+).
pub mod etcd {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("etcdserverpb");
}

pub use v1::TaskState;

impl TaskState {
    /// A terminal state never changes again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Finished
                | TaskState::Failed
                | TaskState::Killed
                | TaskState::Error
                | TaskState::Lost
                | TaskState::Dropped
                | TaskState::Gone
                | TaskState::GoneByOperator
        )
    }
}
