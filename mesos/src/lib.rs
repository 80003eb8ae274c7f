//! Mesos v1 API compatibility, the pure half: Mesos's message schemas (`schema`), their
//! JSON form (`json`), RecordIO framing (`recordio`), content negotiation and decoding
//! with Mesos's status codes (`codec`), the JSON shapes of the read-only endpoints
//! (`endpoints`), and the translation of Mesos's calls, events, ids,
//! types and errors to and from Agora's (`translate`).
//!
//! The HTTP handlers that serve `/api/v1/scheduler` (master) and `/api/v1/executor`
//! (agent) live in those crates and call their service layers; this crate sits below them
//! both (so neither depends on the other through it).
//!
//! **Invariants:** pure: no I/O, no clock, no async, no state. A Mesos input that cannot
//! be translated exactly is refused with a [`Refusal`] naming the field, never guessed at.
//! Translation holds no service logic: what a call means is decided by the service layer
//! it is handed to.

#![forbid(unsafe_code)]

pub mod codec;
pub mod endpoints;
pub mod json;
pub mod recordio;
pub mod schema;
pub mod translate;

pub use codec::Format;

/// A refused Mesos call: the HTTP status Mesos answers with and the plain-text message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

/// Longest message a refusal carries, in bytes.
pub const MESSAGE_MAX_BYTES: usize = 1024;

impl Refusal {
    pub fn new(status: u16, message: impl Into<String>) -> Refusal {
        let mut message = message.into();
        if message.len() > MESSAGE_MAX_BYTES {
            let mut end = MESSAGE_MAX_BYTES;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        Refusal { status, message }
    }

    /// 400: the call is malformed.
    pub fn bad_request(message: impl Into<String>) -> Refusal {
        Refusal::new(400, message)
    }

    /// 403: the call is well formed but not allowed now (e.g. not subscribed).
    pub fn forbidden(message: impl Into<String>) -> Refusal {
        Refusal::new(403, message)
    }

    /// Status of the refusal of a service error with gRPC code `code` (the numbers of
    /// `tonic::Code`): how Agora's answer families read in Mesos's status codes.
    pub fn for_grpc_code(code: i32, message: impl Into<String>) -> Refusal {
        let status = match code {
            3 | 5 | 6 | 11 => 400, // invalid argument, not found, already exists, out of range
            9 | 7 => 403,          // failed precondition (not subscribed), permission denied
            16 => 401,             // unauthenticated
            8 => 429,              // resource exhausted
            12 => 501,             // unimplemented
            14 | 4 => 503,         // unavailable, deadline exceeded
            10 => 409,             // aborted
            _ => 500,
        };
        Refusal::new(status, message)
    }
}
