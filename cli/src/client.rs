//! The master's HTTP/JSON operator API (`/api/v1/*`) as the CLI reads and changes it.
//!
//! Requests travel over a tonic [`Channel`]: the master serves gRPC and HTTP on one port
//! and speaks HTTP/2 to both, so the CLI's one connection set-up (addresses tried in order,
//! `https://` verified against `--tls-ca`, client certificates) serves both APIs, and the
//! credential goes in the same `authorization` header. The JSON the master answers is the
//! `agora-views` shape: `--json` prints it as received.
//!
//! Owns transport and error mapping only; it must never interpret what it fetches.

use std::time::Duration;

use http_body_util::BodyExt;
use serde_json::Value;
use tonic::body::Body;
use tonic::codegen::http::{self, HeaderValue, Method, Request, StatusCode};
use tonic::transport::Channel;
use tower::ServiceExt;

use crate::args::SecurityArgs;

/// How long to wait for a master to accept a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request may take until its answer starts (not for streams).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer body read, in bytes (the whole state of a big cluster fits).
pub const BODY_MAX_BYTES: usize = 256 * 1024 * 1024;

/// Why a call failed; [`ApiError::exit_code`] maps it to the documented exit codes.
#[derive(Debug)]
pub enum ApiError {
    /// No master answered (exit code 3).
    Unreachable(String),
    /// The master answered with an error status (exit code 1).
    Refused { status: u16, message: String },
    /// The answer was not what the API promises (exit code 1).
    Protocol(String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Unreachable(m) => write!(f, "{m}"),
            ApiError::Refused { status, message } => {
                write!(f, "the master refused ({status}): {message}")
            }
            ApiError::Protocol(m) => write!(f, "unexpected answer from the master: {m}"),
        }
    }
}

impl std::error::Error for ApiError {}

/// A connected master.
#[derive(Clone)]
pub struct Master {
    channel: Channel,
    authorization: Option<HeaderValue>,
    /// The address that answered, for messages.
    pub address: String,
}

impl Master {
    /// Connect to the first of `masters` that accepts a connection. `streaming`: no
    /// per-call timeout (event streams and `logs -f` stay open).
    pub async fn connect(
        masters: &[String],
        security: &SecurityArgs,
        streaming: bool,
    ) -> anyhow::Result<Master> {
        let (credential, tls) = security.load()?;
        let authorization = match &credential {
            Some(c) => Some(
                HeaderValue::from_str(&c.to_header())
                    .map_err(|_| anyhow::anyhow!("the credential cannot be sent as a header"))?,
            ),
            None => None,
        };
        let mut errors = Vec::new();
        for address in masters {
            match connect_one(address, tls.as_ref(), streaming).await {
                Ok(channel) => {
                    return Ok(Master {
                        channel,
                        authorization,
                        address: address.clone(),
                    });
                }
                Err(e) => errors.push(format!("{address}: {e}")),
            }
        }
        Err(ApiError::Unreachable(format!(
            "cannot reach the master ({}); is it running? (`agora local` starts a local cluster)",
            errors.join("; ")
        ))
        .into())
    }

    /// Send a request; the response with a success status, or the master's error.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<http::Response<Body>, ApiError> {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(a) = &self.authorization {
            builder = builder.header(http::header::AUTHORIZATION, a.clone());
        }
        let body = match body {
            Some(v) => {
                builder = builder.header(http::header::CONTENT_TYPE, "application/json");
                Body::new(http_body_util::Full::new(tonic::codegen::Bytes::from(
                    v.to_string(),
                )))
            }
            None => Body::empty(),
        };
        let request = builder
            .body(body)
            .map_err(|e| ApiError::Protocol(format!("cannot build the request for {path}: {e}")))?;
        let response = self.channel.clone().oneshot(request).await.map_err(|e| {
            ApiError::Unreachable(format!(
                "the master at {} did not answer {path}: {}",
                self.address,
                crate::state::error_chain(&e)
            ))
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = read_body(response.into_body()).await.unwrap_or_default();
        Err(refusal(status, &String::from_utf8_lossy(&text)))
    }

    /// `GET path` as JSON.
    pub async fn get(&self, path: &str) -> Result<Value, ApiError> {
        let r = self.request(Method::GET, path, None).await?;
        json_body(r.into_body()).await
    }

    /// A change (`POST`, `PUT`, `DELETE`) with an optional JSON body; the answer as JSON.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let r = self.request(method, path, body).await?;
        json_body(r.into_body()).await
    }
}

async fn connect_one(
    address: &str,
    tls: Option<&agora_sdk::TlsOptions>,
    streaming: bool,
) -> Result<Channel, String> {
    let uri = agora_sdk::master_uri(address).map_err(|e| e.to_string())?;
    let mut endpoint = agora_sdk::connect::endpoint(&uri, tls)
        .map_err(|e| e.to_string())?
        .connect_timeout(CONNECT_TIMEOUT);
    if !streaming {
        endpoint = endpoint.timeout(CALL_TIMEOUT);
    }
    match tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect()).await {
        Err(_) => Err("connection timed out".into()),
        Ok(Err(e)) => Err(crate::state::error_chain(&e)),
        Ok(Ok(c)) => Ok(c),
    }
}

/// The master's error answer `{"error": message}` as an [`ApiError`].
fn refusal(status: StatusCode, text: &str) -> ApiError {
    let message = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| {
            let t = text.trim();
            if t.is_empty() {
                status.canonical_reason().unwrap_or("error").to_string()
            } else {
                t.chars().take(512).collect()
            }
        });
    ApiError::Refused {
        status: status.as_u16(),
        message,
    }
}

/// A whole body, at most [`BODY_MAX_BYTES`].
pub async fn read_body(body: Body) -> Result<Vec<u8>, ApiError> {
    let limited = http_body_util::Limited::new(body, BODY_MAX_BYTES);
    limited
        .collect()
        .await
        .map(|c| c.to_bytes().to_vec())
        .map_err(|e| ApiError::Protocol(format!("reading the answer: {e}")))
}

async fn json_body(body: Body) -> Result<Value, ApiError> {
    let bytes = read_body(body).await?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::Protocol(format!("not JSON: {e}")))
}

/// The next chunk of a streamed body (`None` at its end).
pub async fn next_chunk(body: &mut Body) -> Result<Option<Vec<u8>>, ApiError> {
    loop {
        match body.frame().await {
            None => return Ok(None),
            Some(Err(e)) => {
                return Err(ApiError::Unreachable(format!(
                    "the stream from the master broke: {e}"
                )));
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data.to_vec()));
                }
            }
        }
    }
}

/// Percent-encode a query value or path segment (everything but unreserved characters).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_the_masters_message() {
        let e = refusal(
            StatusCode::NOT_FOUND,
            r#"{"error":"unknown agent id 'x'","code":"NOT_FOUND"}"#,
        );
        assert_eq!(
            e.to_string(),
            "the master refused (404): unknown agent id 'x'"
        );
        let e = refusal(StatusCode::BAD_GATEWAY, "");
        assert_eq!(e.to_string(), "the master refused (502): Bad Gateway");
    }

    #[test]
    fn encoding_keeps_unreserved_characters_only() {
        assert_eq!(encode("eng/ml a&b"), "eng%2Fml%20a%26b");
        assert_eq!(encode("web-1.x_~"), "web-1.x_~");
    }
}
