//! The service layer's error: what a refused call tells its caller, independent of the
//! transport. It is mapped once to gRPC codes (`From<Error> for tonic::Status`) and once
//! to HTTP statuses with a JSON body (`IntoResponse`), so both APIs refuse the same input
//! the same way.
//!
//! Owns the message limits: a message never exceeds `MESSAGE_MAX_BYTES` (gRPC carries it
//! in a header, and a header over the peer's limit kills the stream: the client saw only
//! "Stream removed"), and input is quoted through [`quote`], never whole. It must never
//! decide anything about a call; it only describes the refusal.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tonic::Code;

/// Longest message a refusal carries, in bytes (well under the 8 KiB header lists gRPC
/// peers accept by default).
pub const MESSAGE_MAX_BYTES: usize = 1024;
/// Most characters of an offending input quoted in a message.
pub const QUOTE_MAX_CHARS: usize = 64;

/// Why a call was refused. Each variant is one answer family; the text says what and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Malformed input: the request can never succeed as sent.
    #[error("{0}")]
    InvalidArgument(String),
    /// An unknown framework, agent, offer, task, role or route.
    #[error("{0}")]
    NotFound(String),
    /// The thing to create exists already (e.g. a task id in use).
    #[error("{0}")]
    AlreadyExists(String),
    /// Valid, but not in the current state (not subscribed, already ended, torn down).
    #[error("{0}")]
    FailedPrecondition(String),
    /// Refused by the ACLs or by ownership (another principal's framework or agent).
    #[error("{0}")]
    PermissionDenied(String),
    /// Missing or wrong credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// Over a limit (rate, queue); slow down and retry.
    #[error("{0}")]
    ResourceExhausted(String),
    /// A request larger than the master accepts (HTTP 413; `RESOURCE_EXHAUSTED` on gRPC).
    #[error("{0}")]
    TooLarge(String),
    /// Not now (agent disconnected, master shutting down or busy); retry.
    #[error("{0}")]
    Unavailable(String),
    /// The master did not answer in time.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// Designed but not implemented yet.
    #[error("{0}")]
    Unimplemented(String),
    /// A bug or an unexpected failure inside the master.
    #[error("{0}")]
    Internal(String),
    /// This master is not the elected leader: the caller should go to `leader`
    /// (`HOST:PORT`; `None` while no leader is known). gRPC: `UNAVAILABLE` with the
    /// address in the `agora-leader` metadata; HTTP: 307 to the leader (503 when unknown).
    #[error("{message}")]
    NotLeader {
        leader: Option<String>,
        message: String,
    },
}

/// The metadata key (gRPC) and header (HTTP) that carry the leader's `HOST:PORT` on a
/// "not the leader" refusal.
pub const LEADER_HEADER: &str = "agora-leader";

/// A shortened, escaped form of `input` to quote in a message: at most
/// `QUOTE_MAX_CHARS` characters, control and non-printable characters escaped, and the
/// length in bytes when it was cut.
pub fn quote(input: &str) -> String {
    let mut out = String::new();
    let mut chars = input.chars();
    for c in chars.by_ref().take(QUOTE_MAX_CHARS) {
        out.extend(c.escape_debug());
    }
    if chars.next().is_some() {
        out.push_str(&format!("... ({} bytes)", input.len()));
    }
    out
}

/// `message` cut to `MESSAGE_MAX_BYTES` on a character boundary.
fn capped(mut message: String) -> String {
    if message.len() <= MESSAGE_MAX_BYTES {
        return message;
    }
    const MARK: &str = " [message truncated]";
    let mut end = MESSAGE_MAX_BYTES - MARK.len();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message.truncate(end);
    message.push_str(MARK);
    message
}

impl Error {
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::InvalidArgument(capped(message.into()))
    }

    /// The same as [`Error::invalid`], under the name of its gRPC code.
    pub fn invalid_argument(message: impl Into<String>) -> Error {
        Error::invalid(message)
    }

    pub fn not_found(message: impl Into<String>) -> Error {
        Error::NotFound(capped(message.into()))
    }

    pub fn already_exists(message: impl Into<String>) -> Error {
        Error::AlreadyExists(capped(message.into()))
    }

    pub fn failed_precondition(message: impl Into<String>) -> Error {
        Error::FailedPrecondition(capped(message.into()))
    }

    pub fn permission_denied(message: impl Into<String>) -> Error {
        Error::PermissionDenied(capped(message.into()))
    }

    pub fn unauthenticated(message: impl Into<String>) -> Error {
        Error::Unauthenticated(capped(message.into()))
    }

    pub fn resource_exhausted(message: impl Into<String>) -> Error {
        Error::ResourceExhausted(capped(message.into()))
    }

    pub fn unimplemented(message: impl Into<String>) -> Error {
        Error::Unimplemented(capped(message.into()))
    }

    pub fn internal(message: impl Into<String>) -> Error {
        Error::Internal(capped(message.into()))
    }

    pub fn unavailable(message: impl Into<String>) -> Error {
        Error::Unavailable(capped(message.into()))
    }

    /// "Not the leader; the leader is ADDR" (or: none is known yet).
    pub fn not_leader(leader: Option<String>) -> Error {
        let message = match &leader {
            Some(addr) => format!("not the leader; the leader is {}", quote(addr)),
            None => "not the leader; no leader is elected yet, retry shortly".to_string(),
        };
        Error::NotLeader { leader, message }
    }

    /// The gRPC code of this refusal.
    pub fn code(&self) -> Code {
        match self {
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::ResourceExhausted(_) | Error::TooLarge(_) => Code::ResourceExhausted,
            Error::Unavailable(_) | Error::NotLeader { .. } => Code::Unavailable,
            Error::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Error::Unimplemented(_) => Code::Unimplemented,
            Error::Internal(_) => Code::Internal,
        }
    }

    /// The HTTP status of this refusal.
    pub fn http_status(&self) -> StatusCode {
        match self {
            Error::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::AlreadyExists(_) | Error::FailedPrecondition(_) => StatusCode::CONFLICT,
            Error::PermissionDenied(_) => StatusCode::FORBIDDEN,
            Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Error::ResourceExhausted(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Unavailable(_) | Error::NotLeader { leader: None, .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::NotLeader {
                leader: Some(_), ..
            } => StatusCode::TEMPORARY_REDIRECT,
            Error::DeadlineExceeded(_) => StatusCode::GATEWAY_TIMEOUT,
            Error::Unimplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Error::InvalidArgument(m)
            | Error::NotFound(m)
            | Error::AlreadyExists(m)
            | Error::FailedPrecondition(m)
            | Error::PermissionDenied(m)
            | Error::Unauthenticated(m)
            | Error::ResourceExhausted(m)
            | Error::TooLarge(m)
            | Error::Unavailable(m)
            | Error::DeadlineExceeded(m)
            | Error::Unimplemented(m)
            | Error::Internal(m)
            | Error::NotLeader { message: m, .. } => m,
        }
    }

    /// The JSON body of an HTTP refusal: `{"error": message, "code": "NOT_FOUND"}`.
    pub fn json(&self) -> serde_json::Value {
        let mut body = serde_json::json!({
            "error": self.message(),
            "code": code_name(self.code()),
        });
        if let Error::NotLeader {
            leader: Some(addr), ..
        } = self
        {
            body["leader"] = serde_json::Value::String(addr.clone());
        }
        body
    }

    /// The refusal for an HTTP status produced outside the service layer (routing, body
    /// limits): the status stays, the body becomes the usual JSON.
    pub fn http_json(status: StatusCode, message: impl Into<String>) -> Response {
        let message = capped(message.into());
        (
            status,
            axum::Json(serde_json::json!({
                "error": message,
                "code": code_name(code_of_http(status)),
            })),
        )
            .into_response()
    }
}

/// The gRPC name of `code` (`INVALID_ARGUMENT`), as docs/api.md and the JSON bodies use.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The code family of an HTTP error status made outside the service layer.
fn code_of_http(status: StatusCode) -> Code {
    match status.as_u16() {
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 | 405 => Code::NotFound,
        408 | 504 => Code::DeadlineExceeded,
        409 => Code::FailedPrecondition,
        413 | 429 => Code::ResourceExhausted,
        501 => Code::Unimplemented,
        503 => Code::Unavailable,
        400..=499 => Code::InvalidArgument,
        _ => Code::Internal,
    }
}

/// The one conversion of the actor's (and the gate's) `tonic::Status` into the domain
/// error, until the actor answers with typed errors itself. Codes without a family of
/// their own (ABORTED, OUT_OF_RANGE, ...) join the nearest one.
impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Error {
        let m = capped(s.message().to_string());
        match s.code() {
            Code::InvalidArgument | Code::OutOfRange => Error::InvalidArgument(m),
            Code::NotFound => Error::NotFound(m),
            Code::AlreadyExists => Error::AlreadyExists(m),
            Code::FailedPrecondition | Code::Aborted => Error::FailedPrecondition(m),
            Code::PermissionDenied => Error::PermissionDenied(m),
            Code::Unauthenticated => Error::Unauthenticated(m),
            Code::ResourceExhausted => Error::ResourceExhausted(m),
            Code::Unavailable | Code::Cancelled => Error::Unavailable(m),
            Code::DeadlineExceeded => Error::DeadlineExceeded(m),
            Code::Unimplemented => Error::Unimplemented(m),
            Code::Ok | Code::Unknown | Code::Internal | Code::DataLoss => Error::Internal(m),
        }
    }
}

/// The one mapping to gRPC.
impl From<Error> for tonic::Status {
    fn from(e: Error) -> tonic::Status {
        let code = e.code();
        let mut status = tonic::Status::new(code, capped(e.message().to_string()));
        if let Error::NotLeader {
            leader: Some(addr), ..
        } = &e
            && let Ok(v) = addr.parse()
        {
            status.metadata_mut().insert(LEADER_HEADER, v);
        }
        status
    }
}

/// The one mapping to HTTP: the status, and `{"error": ..., "code": ...}`.
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut response = (self.http_status(), axum::Json(self.json())).into_response();
        if let Error::NotLeader {
            leader: Some(addr), ..
        } = &self
        {
            // The path is added by the transport (`crate::http::leader_location`), which
            // knows the request; this says where to.
            if let Ok(v) = axum::http::HeaderValue::from_str(addr) {
                response.headers_mut().insert(LEADER_HEADER, v.clone());
                if let Ok(loc) = axum::http::HeaderValue::from_str(&format!("http://{addr}/")) {
                    response
                        .headers_mut()
                        .insert(axum::http::header::LOCATION, loc);
                }
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_cuts_and_escapes() {
        assert_eq!(quote("spark"), "spark");
        assert_eq!(quote("a\nb\u{7}"), "a\\nb\\u{7}");
        let long = "x".repeat(20_000);
        let q = quote(&long);
        assert!(q.starts_with(&"x".repeat(QUOTE_MAX_CHARS)), "{q}");
        assert!(q.ends_with("... (20000 bytes)"), "{q}");
        assert!(q.len() < 100, "{q}");
    }

    #[test]
    fn messages_are_capped_on_a_char_boundary() {
        let e = Error::invalid("é".repeat(5000));
        assert!(
            e.message().len() <= MESSAGE_MAX_BYTES,
            "{}",
            e.message().len()
        );
        assert!(e.message().ends_with("[message truncated]"));
        let s: tonic::Status = Error::from(tonic::Status::internal("y".repeat(50_000))).into();
        assert!(s.message().len() <= MESSAGE_MAX_BYTES);
        assert_eq!(s.code(), Code::Internal);
    }

    #[test]
    fn one_mapping_per_transport() {
        for (status, code, http) in [
            (
                tonic::Status::invalid_argument("x"),
                Code::InvalidArgument,
                400,
            ),
            (tonic::Status::not_found("x"), Code::NotFound, 404),
            (tonic::Status::already_exists("x"), Code::AlreadyExists, 409),
            (
                tonic::Status::failed_precondition("x"),
                Code::FailedPrecondition,
                409,
            ),
            (
                tonic::Status::permission_denied("x"),
                Code::PermissionDenied,
                403,
            ),
            (
                tonic::Status::unauthenticated("x"),
                Code::Unauthenticated,
                401,
            ),
            (
                tonic::Status::resource_exhausted("x"),
                Code::ResourceExhausted,
                429,
            ),
            (tonic::Status::unavailable("x"), Code::Unavailable, 503),
            (
                tonic::Status::deadline_exceeded("x"),
                Code::DeadlineExceeded,
                504,
            ),
            (tonic::Status::unimplemented("x"), Code::Unimplemented, 501),
            (tonic::Status::internal("x"), Code::Internal, 500),
            (tonic::Status::out_of_range("x"), Code::InvalidArgument, 400),
            (tonic::Status::aborted("x"), Code::FailedPrecondition, 409),
        ] {
            let e = Error::from(status);
            assert_eq!(e.code(), code, "{e:?}");
            assert_eq!(e.http_status().as_u16(), http, "{e:?}");
            assert_eq!(tonic::Status::from(e.clone()).code(), code);
            assert_eq!(e.json()["error"], "x");
            assert_eq!(e.json()["code"], code_name(code));
        }
        let big = Error::TooLarge("x".into());
        assert_eq!(big.http_status().as_u16(), 413);
        assert_eq!(big.code(), Code::ResourceExhausted);
    }
}
