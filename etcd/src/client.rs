//! A small etcd v3 client over tonic (the subset in `agora_proto::etcd`): KV reads and
//! transactions, leases and their keep-alives, against a list of endpoints.
//!
//! Owns the connection to one endpoint at a time: a call that fails at the transport
//! (endpoint down, partitioned, not answering within the call timeout) moves to the next
//! endpoint and is tried once more on each, so the loss of one member of a three-member
//! cluster costs a reconnect, not an error. It must never interpret keys or values:
//! what they mean belongs to the registry and the election.

use std::sync::Mutex;
use std::time::Duration;

use agora_proto::etcd::{
    self, compare, kv_client::KvClient, lease_client::LeaseClient, request_op, response_op,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// How long one call may take before the endpoint is given up for the next.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting to one endpoint may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Largest etcd response accepted (a range of registry chunks or log entries).
pub const RESPONSE_MAX_BYTES: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("etcd endpoint '{0}' is not a valid URL (expected http://HOST:PORT)")]
    BadEndpoint(String),
    #[error("etcd TLS: {0}")]
    Tls(String),
    #[error("no etcd endpoint given")]
    NoEndpoints,
    #[error("etcd unreachable (tried {tried}): {last}")]
    Unreachable { tried: String, last: String },
    #[error("etcd refused the call: {0}")]
    Refused(String),
}

/// TLS to etcd (`https://` endpoints): the CA that signed the members' certificates, and
/// a client certificate and key (PEM) for members started with `--client-cert-auth`.
#[derive(Clone, Debug, Default)]
pub struct EtcdTls {
    pub ca_pem: Vec<u8>,
    pub client_pem: Option<(Vec<u8>, Vec<u8>)>,
}

impl EtcdTls {
    /// Read the PEM files (`cert` and `key` together or neither).
    pub fn from_files(
        ca: &std::path::Path,
        cert: Option<&std::path::Path>,
        key: Option<&std::path::Path>,
    ) -> Result<EtcdTls, EtcdError> {
        let read = |p: &std::path::Path| {
            std::fs::read(p)
                .map_err(|e| EtcdError::Tls(format!("cannot read {}: {e}", p.display())))
        };
        let client_pem = match (cert, key) {
            (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
            (None, None) => None,
            _ => {
                return Err(EtcdError::Tls(
                    "a client certificate needs its key, and a key its certificate".into(),
                ));
            }
        };
        Ok(EtcdTls {
            ca_pem: read(ca)?,
            client_pem,
        })
    }

    fn config(&self) -> ClientTlsConfig {
        let mut c = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca_pem));
        if let Some((cert, key)) = &self.client_pem {
            c = c.identity(Identity::from_pem(cert, key));
        }
        c
    }
}

pub struct EtcdClient {
    endpoints: Vec<Endpoint>,
    names: Vec<String>,
    current: Mutex<Current>,
}

struct Current {
    index: usize,
    channel: Option<Channel>,
}

/// Whether a failed call should be tried on another endpoint (the request may not have
/// reached etcd, or this member cannot serve it now) rather than returned.
fn transient(s: &tonic::Status) -> bool {
    matches!(
        s.code(),
        tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Unknown
            | tonic::Code::Cancelled
            | tonic::Code::Aborted
    )
}

impl EtcdClient {
    /// `endpoints`: `http://HOST:PORT` (or bare `HOST:PORT`). Nothing is dialled yet.
    pub fn new(endpoints: &[String]) -> Result<Self, EtcdError> {
        Self::with_tls(endpoints, None)
    }

    /// `new`, speaking TLS to `https://` endpoints (bare `HOST:PORT` ones too when `tls` is
    /// given). An `https://` endpoint without `tls` is refused.
    pub fn with_tls(endpoints: &[String], tls: Option<&EtcdTls>) -> Result<Self, EtcdError> {
        if endpoints.is_empty() {
            return Err(EtcdError::NoEndpoints);
        }
        let mut parsed = Vec::new();
        let mut names = Vec::new();
        for e in endpoints {
            let e = e.trim();
            let url = if e.contains("://") {
                e.to_string()
            } else if tls.is_some() {
                format!("https://{e}")
            } else {
                format!("http://{e}")
            };
            let mut ep = Endpoint::from_shared(url.clone())
                .map_err(|_| EtcdError::BadEndpoint(e.to_string()))?;
            if url.starts_with("https://") {
                let tls = tls.ok_or_else(|| {
                    EtcdError::Tls(format!(
                        "{url} needs the CA of etcd's certificates (--etcd-ca-file)"
                    ))
                })?;
                ep = ep
                    .tls_config(tls.config())
                    .map_err(|e| EtcdError::Tls(format!("{url}: {e}")))?;
            }
            let ep = ep
                .connect_timeout(CONNECT_TIMEOUT)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(1))
                .keep_alive_timeout(Duration::from_secs(1))
                .keep_alive_while_idle(true);
            parsed.push(ep);
            names.push(url);
        }
        Ok(Self {
            endpoints: parsed,
            names,
            current: Mutex::new(Current {
                index: 0,
                channel: None,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The channel to the current endpoint (connected lazily: tonic dials on first use).
    fn channel(&self) -> (usize, Channel) {
        let mut c = self.lock();
        let index = c.index;
        let endpoint = &self.endpoints[index % self.endpoints.len()];
        let channel = c
            .channel
            .get_or_insert_with(|| endpoint.connect_lazy())
            .clone();
        (index, channel)
    }

    /// Give up endpoint `index` (if it is still the current one) for the next.
    fn failed(&self, index: usize) {
        let mut c = self.lock();
        if c.index == index {
            c.index = (index + 1) % self.endpoints.len();
            c.channel = None;
        }
    }

    /// Run `call` on the current endpoint, moving on to the next on a transport failure,
    /// once per endpoint.
    async fn with<T, F, Fut>(&self, mut call: F) -> Result<T, EtcdError>
    where
        F: FnMut(Channel) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let mut last = String::new();
        for _ in 0..self.endpoints.len() {
            let (index, channel) = self.channel();
            match tokio::time::timeout(CALL_TIMEOUT, call(channel)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(s)) if !transient(&s) => {
                    return Err(EtcdError::Refused(format!(
                        "{}: {}",
                        self.names[index],
                        s.message()
                    )));
                }
                Ok(Err(s)) => {
                    last = format!("{}: {}", self.names[index], s.message());
                }
                Err(_) => {
                    last = format!(
                        "{}: no answer within {} ms",
                        self.names[index],
                        CALL_TIMEOUT.as_millis()
                    );
                }
            }
            tracing::debug!(endpoint = %self.names[index], error = %last, "etcd call failed; trying the next endpoint");
            self.failed(index);
        }
        Err(EtcdError::Unreachable {
            tried: self.names.join(","),
            last,
        })
    }

    fn kv(channel: Channel) -> KvClient<Channel> {
        KvClient::new(channel).max_decoding_message_size(RESPONSE_MAX_BYTES)
    }

    /// Keys in `[key, range_end)` (`range_end` empty: `key` alone), at most `limit`
    /// (0: all), in key order. Linearizable.
    pub async fn range(
        &self,
        key: &[u8],
        range_end: &[u8],
        limit: i64,
    ) -> Result<etcd::RangeResponse, EtcdError> {
        let req = etcd::RangeRequest {
            key: key.to_vec(),
            range_end: range_end.to_vec(),
            limit,
            ..Default::default()
        };
        self.with(|ch| {
            let req = req.clone();
            async move { Ok(Self::kv(ch).range(req).await?.into_inner()) }
        })
        .await
    }

    /// One key's current value and revisions.
    pub async fn get(&self, key: &[u8]) -> Result<Option<etcd::KeyValue>, EtcdError> {
        Ok(self.range(key, &[], 1).await?.kvs.into_iter().next())
    }

    pub async fn txn(&self, req: etcd::TxnRequest) -> Result<etcd::TxnResponse, EtcdError> {
        self.with(|ch| {
            let req = req.clone();
            async move { Ok(Self::kv(ch).txn(req).await?.into_inner()) }
        })
        .await
    }

    pub async fn delete(&self, key: &[u8]) -> Result<(), EtcdError> {
        let req = etcd::DeleteRangeRequest {
            key: key.to_vec(),
            range_end: Vec::new(),
        };
        self.with(|ch| {
            let req = req.clone();
            async move { Self::kv(ch).delete_range(req).await.map(|_| ()) }
        })
        .await
    }

    /// A new lease of `ttl_seconds`; its id.
    pub async fn grant(&self, ttl_seconds: i64) -> Result<i64, EtcdError> {
        let r = self
            .with(|ch| async move {
                Ok(LeaseClient::new(ch)
                    .lease_grant(etcd::LeaseGrantRequest {
                        ttl: ttl_seconds,
                        id: 0,
                    })
                    .await?
                    .into_inner())
            })
            .await?;
        if !r.error.is_empty() {
            return Err(EtcdError::Refused(r.error));
        }
        Ok(r.id)
    }

    /// Revoke a lease: its keys go at once.
    pub async fn revoke(&self, id: i64) -> Result<(), EtcdError> {
        self.with(|ch| async move {
            LeaseClient::new(ch)
                .lease_revoke(etcd::LeaseRevokeRequest { id })
                .await
                .map(|_| ())
        })
        .await
    }

    /// Refresh a lease once; its remaining TTL in seconds (0: it has expired).
    pub async fn keep_alive(&self, id: i64) -> Result<i64, EtcdError> {
        self.with(|ch| async move {
            let request = tokio_stream::once(etcd::LeaseKeepAliveRequest { id });
            let mut answers = LeaseClient::new(ch)
                .lease_keep_alive(request)
                .await?
                .into_inner();
            match answers.message().await? {
                Some(r) => Ok(r.ttl),
                None => Err(tonic::Status::unavailable(
                    "keep-alive stream ended without an answer",
                )),
            }
        })
        .await
    }
}

/// The end of the range of every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff: to the end of the key space.
    vec![0]
}

/// Compare: `key` was created at revision `rev` (0: `key` does not exist).
pub fn created_at(key: &[u8], rev: i64) -> etcd::Compare {
    etcd::Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Create as i32,
        key: key.to_vec(),
        target_union: Some(compare::TargetUnion::CreateRevision(rev)),
    }
}

pub fn put(key: &[u8], value: Vec<u8>, lease: i64) -> etcd::RequestOp {
    etcd::RequestOp {
        request: Some(request_op::Request::RequestPut(etcd::PutRequest {
            key: key.to_vec(),
            value,
            lease,
        })),
    }
}

pub fn get_op(key: &[u8]) -> etcd::RequestOp {
    etcd::RequestOp {
        request: Some(request_op::Request::RequestRange(etcd::RangeRequest {
            key: key.to_vec(),
            ..Default::default()
        })),
    }
}

pub fn delete_range_op(key: &[u8], range_end: &[u8]) -> etcd::RequestOp {
    etcd::RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            etcd::DeleteRangeRequest {
                key: key.to_vec(),
                range_end: range_end.to_vec(),
            },
        )),
    }
}

/// The first key-value of a transaction's range answers.
pub fn first_range_kv(r: &etcd::TxnResponse) -> Option<&etcd::KeyValue> {
    r.responses.iter().find_map(|op| match &op.response {
        Some(response_op::Response::ResponseRange(rr)) => rr.kvs.first(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key_after_every_key_with_the_prefix() {
        assert_eq!(prefix_end(b"/agora/"), b"/agora0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }

    #[test]
    fn endpoints_are_checked_and_named() {
        assert!(matches!(EtcdClient::new(&[]), Err(EtcdError::NoEndpoints)));
        let c = EtcdClient::new(&["127.0.0.1:2379".into(), "http://h:1".into()]).expect("ok");
        assert_eq!(c.names, ["http://127.0.0.1:2379", "http://h:1"]);
        assert!(EtcdClient::new(&["bad url with spaces".into()]).is_err());
    }
}
