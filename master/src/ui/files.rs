//! `GET /api/v1/tasks/{framework_id}/{task_id}/files/{browse|download|tail|read}`: a
//! task's sandbox through the master. The service layer finds the task's agent and
//! applies the `access_sandbox` ACL (`Service::sandbox_agent`); this module forwards the
//! request to that agent's own file endpoint (`agent/src/http.rs`, on its `--listen`
//! address) and streams the answer back. The caller's `authorization` header goes along,
//! so an agent with `--authenticate-http` and the same credentials accepts it.
//!
//! Query: `path` (relative to the sandbox), `bytes` (tail), `offset` and `length` (read;
//! `offset=-1` answers the file's size). Agent refusals come back with their status and
//! a JSON body; an agent that cannot be reached is 502 (503 after `AGENT_TIMEOUT`).
//!
//! Agents serving `--listen` over TLS are reached over TLS when the master has
//! `--agent-tls-ca` (then every agent is, verified against that CA); plain HTTP otherwise.
//!
//! Owns nothing and holds no connection between requests. It must never serve anything
//! but the agent's answer, and never reach an agent before the ACL check.

use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::Caller;
use crate::auth::tls::ClientTls;
use crate::service::{Error, Service, quote};

/// Connecting to an agent and receiving its answer's head, each.
pub const AGENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest `path` forwarded, in bytes.
const PATH_MAX_BYTES: usize = 4096;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesQuery {
    #[serde(default)]
    path: String,
    bytes: Option<u64>,
    offset: Option<i64>,
    length: Option<u64>,
}

/// The agent's endpoint for `op`, with the query it takes.
fn agent_uri(op: &str, framework_id: &str, task_id: &str, q: &FilesQuery) -> Result<String, Error> {
    let allowed: &[&str] = match op {
        "browse" | "download" => &[],
        "tail" => &["bytes"],
        "read" => &["offset", "length"],
        _ => {
            return Err(Error::not_found(format!(
                "no file operation '{}': use browse, download, tail or read",
                quote(op)
            )));
        }
    };
    if q.path.len() > PATH_MAX_BYTES {
        return Err(Error::invalid(format!(
            "path of {} bytes; at most {PATH_MAX_BYTES}",
            q.path.len()
        )));
    }
    let mut uri = format!(
        "/files/{op}?framework_id={}&task_id={}&path={}",
        encode(framework_id),
        encode(task_id),
        encode(&q.path)
    );
    for (name, value) in [
        ("bytes", q.bytes.map(|v| v.to_string())),
        ("offset", q.offset.map(|v| v.to_string())),
        ("length", q.length.map(|v| v.to_string())),
    ] {
        let Some(value) = value else { continue };
        if !allowed.contains(&name) {
            return Err(Error::invalid(format!("'{name}' does not apply to {op}")));
        }
        uri.push_str(&format!("&{name}={value}"));
    }
    Ok(uri)
}

/// Percent-encoding of a query value (everything but unreserved characters).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET /api/v1/tasks/{framework_id}/{task_id}/files/{op}`.
pub async fn files(
    State(s): State<Service>,
    caller: Option<Extension<Caller>>,
    Path((framework_id, task_id, op)): Path<(String, String, String)>,
    query: Result<Query<FilesQuery>, QueryRejection>,
    headers: axum::http::HeaderMap,
) -> Result<Response, Error> {
    let Query(q) =
        query.map_err(|r| Error::invalid(format!("invalid query: {}", r.body_text())))?;
    let uri = agent_uri(&op, &framework_id, &task_id, &q)?;
    let caller = caller.map(|Extension(c)| c).unwrap_or_default();
    let address = s.sandbox_agent(&caller, &framework_id, &task_id).await?;
    let tls = s.gate().config().agent_tls.clone();
    forward(&address, tls, &uri, headers.get(header::AUTHORIZATION)).await
}

/// One request to the agent on a fresh connection (TLS, verified against
/// `--agent-tls-ca`, when the master has it), its answer streamed back.
async fn forward(
    address: &str,
    tls: Option<ClientTls>,
    uri: &str,
    authorization: Option<&HeaderValue>,
) -> Result<Response, Error> {
    let unreachable = |e: String| {
        Error::http_json(
            StatusCode::BAD_GATEWAY,
            format!("agent at {} unreachable: {e}", quote(address)),
        )
    };
    let stream =
        match tokio::time::timeout(AGENT_TIMEOUT, tokio::net::TcpStream::connect(address)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Ok(unreachable(e.to_string())),
            Err(_) => return Ok(unreachable("connect timed out".into())),
        };
    let _ = stream.set_nodelay(true);
    let sender = match tls {
        None => handshake(stream).await,
        Some(ClientTls(config)) => {
            let host = address
                .rsplit_once(':')
                .map_or(address, |(h, _)| h)
                .trim_start_matches('[')
                .trim_end_matches(']');
            let name = match rustls_pki_types::ServerName::try_from(host.to_string()) {
                Ok(n) => n,
                Err(e) => return Ok(unreachable(format!("not a TLS server name: {e}"))),
            };
            let connector = tokio_rustls::TlsConnector::from(config);
            match tokio::time::timeout(AGENT_TIMEOUT, connector.connect(name, stream)).await {
                Ok(Ok(s)) => handshake(s).await,
                Ok(Err(e)) => Err(format!(
                    "TLS handshake failed (the master verifies agents against --agent-tls-ca): {e}"
                )),
                Err(_) => Err("TLS handshake timed out".into()),
            }
        }
    };
    let mut sender = match sender {
        Ok(s) => s,
        Err(e) => return Ok(unreachable(e)),
    };
    let mut request = Request::get(uri)
        .header(header::HOST, address)
        .body(Body::empty())
        .map_err(|e| Error::invalid(format!("cannot build the agent request: {e}")))?;
    if let Some(a) = authorization {
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, a.clone());
    }
    let response = match tokio::time::timeout(AGENT_TIMEOUT, sender.send_request(request)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Ok(unreachable(e.to_string())),
        Err(_) => {
            return Ok(Error::http_json(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "agent at {} did not answer within {} s",
                    quote(address),
                    AGENT_TIMEOUT.as_secs()
                ),
            ));
        }
    };
    let (parts, body) = response.into_parts();
    if parts.status.is_success() {
        let mut out = Response::new(Body::new(body));
        *out.status_mut() = parts.status;
        for name in [header::CONTENT_TYPE, header::CONTENT_LENGTH] {
            if let Some(v) = parts.headers.get(&name) {
                out.headers_mut().insert(name, v.clone());
            }
        }
        return Ok(out);
    }
    // The agent's refusals are short text or JSON; pass the message on as ours.
    let bytes = axum::body::to_bytes(Body::new(body), 4096)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or(text);
    let status = if parts.status == StatusCode::UNAUTHORIZED {
        // The master's caller is not the one the agent refused: keep the browser from
        // asking for the agent's credentials.
        StatusCode::BAD_GATEWAY
    } else {
        parts.status
    };
    Ok(Error::http_json(status, format!("agent: {message}")).into_response())
}

/// An HTTP/1.1 client connection over `io`, driven by a task of its own.
async fn handshake<I>(io: I) -> Result<hyper::client::conn::http1::SendRequest<Body>, String>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = hyper_util::rt::TokioIo::new(io);
    let (sender, conn) = hyper::client::conn::http1::handshake::<_, Body>(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "agent file connection ended with an error");
        }
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(path: &str, bytes: Option<u64>, offset: Option<i64>, length: Option<u64>) -> FilesQuery {
        FilesQuery {
            path: path.into(),
            bytes,
            offset,
            length,
        }
    }

    #[test]
    fn agent_uris_are_encoded_and_checked() {
        assert_eq!(
            agent_uri(
                "tail",
                "f 1",
                "t&2",
                &q("dir/std out", Some(10), None, None)
            )
            .expect("ok"),
            "/files/tail?framework_id=f%201&task_id=t%262&path=dir%2Fstd%20out&bytes=10"
        );
        assert_eq!(
            agent_uri("read", "f", "t", &q("stdout", None, Some(-1), None)).expect("ok"),
            "/files/read?framework_id=f&task_id=t&path=stdout&offset=-1"
        );
        assert!(matches!(
            agent_uri("delete", "f", "t", &q("", None, None, None)),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            agent_uri("browse", "f", "t", &q("", Some(3), None, None)),
            Err(Error::InvalidArgument(_))
        ));
        let long = "a".repeat(PATH_MAX_BYTES + 1);
        assert!(agent_uri("download", "f", "t", &q(&long, None, None, None)).is_err());
    }
}
