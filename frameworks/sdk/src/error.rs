//! The SDK's error type.
//!
//! Owns [`SdkError`], the one error every fallible SDK function returns. It must never carry
//! a whole `tonic::Status` (large, and holds metadata nobody needs): a status is reduced to its
//! code and message.

use agora_resources::ResourceError;

/// Everything that can go wrong in the SDK.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SdkError {
    /// `run` was given an empty master list.
    #[error("no master address given")]
    NoMasters,

    /// A master address could not be turned into a gRPC endpoint.
    #[error("invalid master address {address:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        address: String,
        /// Why it was refused.
        reason: String,
    },

    /// The master refused the subscription in a way retrying cannot fix (bad framework
    /// info, unknown framework id, not authorised, ...).
    #[error("master {address} refused the subscription: {code:?}: {message}")]
    SubscribeRefused {
        /// The master that refused.
        address: String,
        /// gRPC status code.
        code: tonic::Code,
        /// The master's explanation.
        message: String,
    },

    /// `max_connect_attempts` consecutive rounds over the master list all failed.
    #[error("gave up after {attempts} failed connection attempt(s); last error: {last_error}")]
    GaveUp {
        /// Rounds tried.
        attempts: u32,
        /// What went wrong the last time.
        last_error: String,
    },

    /// A scheduler call was rejected by the master.
    #[error("{call} failed: {code:?}: {message}")]
    Rpc {
        /// The call, e.g. `"accept"`.
        call: &'static str,
        /// gRPC status code (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, UNAVAILABLE, ...).
        code: tonic::Code,
        /// The master's explanation.
        message: String,
    },

    /// A scheduler call did not complete within the configured call timeout.
    #[error("{call} timed out after {seconds:.1} s")]
    Timeout {
        /// The call, e.g. `"decline"`.
        call: &'static str,
        /// The timeout that expired.
        seconds: f64,
    },

    /// A batch call was given more items than one call may carry; nothing was sent.
    #[error("{call}: {items} items in one call; at most {max}")]
    TooManyItems {
        /// The call, e.g. `"accept_batch"`.
        call: &'static str,
        /// Items given.
        items: usize,
        /// The limit.
        max: usize,
    },

    /// A call was made while the driver holds no live subscription (not yet subscribed,
    /// reconnecting, or stopped).
    #[error("not subscribed to a master (not yet subscribed, reconnecting, or stopped)")]
    NotSubscribed,

    /// `run` was called on a driver that is already running or has run.
    #[error("this driver has already been run; create a new one")]
    AlreadyRun,

    /// The credential or TLS settings are unusable (unreadable file, empty secret, a
    /// certificate without its key, ...).
    #[error("security settings: {reason}")]
    Security {
        /// What is wrong.
        reason: String,
    },

    /// A task description is unusable (e.g. an empty argv).
    #[error("invalid task: {0}")]
    InvalidTask(String),

    /// Resource arithmetic or validation failed (e.g. an offer carried malformed resources).
    #[error(transparent)]
    Resources(#[from] ResourceError),
}

impl SdkError {
    /// The gRPC status code, when the error came from the master.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            SdkError::Rpc { code, .. } | SdkError::SubscribeRefused { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub(crate) fn rpc(call: &'static str, status: tonic::Status) -> SdkError {
        SdkError::Rpc {
            call,
            code: status.code(),
            message: status.message().to_string(),
        }
    }
}
