//! Wires a master together: the actor on its own task, gRPC services and HTTP routes on
//! one listening socket. Owns start-up and shutdown only.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use thiserror::Error;
use tokio::net::TcpListener;

use crate::actor::{Command, Master, MasterHandle};
use crate::auth::{Gate, tls};
use crate::clock::Clock;
use crate::config::MasterConfig;
use crate::registry::{FileRegistry, Registry};

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Registry(#[from] crate::registry::RegistryError),
    #[error("the master actor ended unexpectedly: {0}")]
    Actor(String),
    #[error("allocator: {0}")]
    Allocator(#[from] crate::allocator::AllocatorError),
    #[error("serving: {0}")]
    Serve(std::io::Error),
    #[error("{0}")]
    Security(#[from] crate::auth::SecurityError),
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    #[error("{0}")]
    Etcd(#[from] crate::ha::etcd::EtcdError),
    /// This master led and no longer does (lease lost, key replaced, actor stopped): it
    /// must start again as a follower.
    #[error("lost leadership: {0}")]
    LostLeadership(String),
}

/// A master bound to its socket, ready to serve.
pub struct RunningMaster {
    pub addr: SocketAddr,
    pub handle: MasterHandle,
    pub master_id: String,
    listener: TcpListener,
    router: axum::Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// Whether this master acts (always, without etcd).
    leadership: crate::service::Leadership,
    /// The actor's task (with `--etcd-endpoints`: the HA driver's, which runs the actor
    /// while leading): it ends early only when a registry write failed or leadership
    /// ended.
    actor: tokio::task::JoinHandle<Result<(), ServerError>>,
    /// With etcd: tells the HA driver to give up the term (revoke the lease) at shutdown,
    /// so another master is elected at once rather than when the lease expires.
    resign: Option<tokio::sync::oneshot::Sender<()>>,
}

fn flags_of(config: &MasterConfig) -> HashMap<String, String> {
    let mut f = HashMap::new();
    f.insert("listen".into(), config.listen.to_string());
    f.insert("data_dir".into(), config.data_dir.display().to_string());
    f.insert("allocator".into(), config.allocator.clone());
    f.insert(
        "allocation_interval_ms".into(),
        config.allocation_interval.as_millis().to_string(),
    );
    f.insert(
        "framework_heartbeat_seconds".into(),
        config.framework_heartbeat.as_secs_f64().to_string(),
    );
    f.insert(
        "agent_heartbeat_seconds".into(),
        config.agent_heartbeat.as_secs_f64().to_string(),
    );
    f.insert(
        "agent_max_missed_heartbeats".into(),
        config.agent_max_missed_heartbeats.to_string(),
    );
    f.insert(
        "default_refuse_seconds".into(),
        config.default_refuse_seconds.to_string(),
    );
    f.insert(
        "offer_timeout_seconds".into(),
        config
            .offer_timeout
            .map_or("none".to_string(), |d| d.as_secs_f64().to_string()),
    );
    f.insert(
        "max_refuse_seconds".into(),
        config.max_refuse_seconds.to_string(),
    );
    let sec = &config.security;
    for (name, on) in [
        ("authenticate_frameworks", sec.authenticate_frameworks),
        ("authenticate_agents", sec.authenticate_agents),
        ("authenticate_http", sec.authenticate_http),
        ("acls", sec.acls.is_some()),
        ("rate_limits", sec.rate_limits.is_some()),
        ("tls", sec.tls.is_some()),
        (
            "tls_client_certificates",
            sec.tls.as_ref().is_some_and(|t| t.client_ca_pem.is_some()),
        ),
    ] {
        f.insert(name.into(), on.to_string());
    }
    f.insert(
        "agent_reregistration_timeout_seconds".into(),
        config
            .agent_reregistration_timeout
            .as_secs_f64()
            .to_string(),
    );
    f.insert(
        "agent_removal_interval_seconds".into(),
        config
            .agent_removal_interval
            .map_or("none".to_string(), |d| d.as_secs_f64().to_string()),
    );
    f
}

impl RunningMaster {
    /// Bind the socket and start the actor on the file registry in `config.data_dir`.
    /// Serving starts with `serve`.
    pub async fn start(config: MasterConfig, clock: Arc<dyn Clock>) -> Result<Self, ServerError> {
        let registry = Box::new(FileRegistry::new(config.data_dir.clone()));
        Self::start_with_registry(config, clock, registry).await
    }

    /// `start` on a given registry (the seam a replicated store fills; tests pass the
    /// in-memory double).
    pub async fn start_with_registry(
        config: MasterConfig,
        clock: Arc<dyn Clock>,
        registry: Box<dyn Registry>,
    ) -> Result<Self, ServerError> {
        config.security.check()?;
        let tls = match &config.security.tls {
            Some(files) => Some(tokio_rustls::TlsAcceptor::from(tls::server_config(files)?)),
            None => None,
        };
        std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(ServerError::Serve)?;
        let flags = flags_of(&config);
        let gate = Arc::new(Gate::new(config.security.clone(), clock.clone()));
        let recovered = registry.recover().await?;
        let (master, handle, rx) = Master::new(config, clock, registry, recovered)?;
        let master_id = master.master_id().to_string();
        let actor =
            tokio::spawn(async move { master.run(rx).await.map_err(ServerError::Registry) });
        let service = crate::service::Service::new(handle.clone(), gate.clone(), flags);
        let leadership = service.leadership().clone();
        let router = Self::build_router(service, gate);
        Ok(Self {
            addr,
            handle,
            master_id,
            leadership,
            listener,
            router,
            tls,
            actor,
            resign: None,
        })
    }

    /// Bind the socket and serve as a follower at once; the master campaigns through etcd
    /// (`crate::ha`) and acts only once elected, on the registry in etcd. `master_id` is
    /// this process's id until then.
    pub async fn start_ha(
        config: MasterConfig,
        clock: Arc<dyn Clock>,
        ha: crate::ha::HaConfig,
    ) -> Result<Self, ServerError> {
        config.security.check()?;
        let tls = match &config.security.tls {
            Some(files) => Some(tokio_rustls::TlsAcceptor::from(tls::server_config(files)?)),
            None => None,
        };
        // Fail at start on bad endpoints, not in the driver.
        crate::ha::etcd::EtcdClient::with_tls(&ha.endpoints, ha.tls.as_ref())?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(ServerError::Serve)?;
        let mut ha = ha;
        if ha.advertise.is_empty() {
            ha.advertise = addr.to_string();
        }
        let mut flags = flags_of(&config);
        flags.insert("etcd_endpoints".into(), ha.endpoints.join(","));
        flags.insert("etcd_prefix".into(), ha.prefix.clone());
        flags.insert(
            "etcd_lease_ttl_seconds".into(),
            ha.lease_ttl.as_secs().to_string(),
        );
        flags.insert("advertise".into(), ha.advertise.clone());
        let gate = Arc::new(Gate::new(config.security.clone(), clock.clone()));
        let leadership = crate::service::Leadership::new(
            crate::service::Role::Following { leader: None },
            &ha.advertise,
        );
        let (handle, rx) = Master::channel();
        let (resign, resign_rx) = tokio::sync::oneshot::channel();
        let actor = tokio::spawn(crate::ha::run(
            config,
            clock,
            ha,
            leadership.clone(),
            handle.clone(),
            rx,
            resign_rx,
        ));
        let service = crate::service::Service::new(handle.clone(), gate.clone(), flags)
            .with_leadership(leadership.clone());
        let router = Self::build_router(service, gate);
        Ok(Self {
            addr,
            handle,
            master_id: String::new(),
            leadership,
            listener,
            router,
            tls,
            actor,
            resign: Some(resign),
        })
    }

    /// gRPC and HTTP on one router.
    fn build_router(service: crate::service::Service, gate: Arc<Gate>) -> axum::Router {
        let grpc = crate::grpc::router(service.clone());
        let leadership = service.leadership().clone();
        // Followers redirect with the scheme this master serves (masters of one set share
        // their TLS setting).
        let scheme = service.scheme();
        // The auth middleware is the outermost layer: no route, not even the fallback,
        // runs before the caller is authenticated.
        grpc.merge(crate::http::router(service))
            .fallback(crate::http::not_found)
            .layer(axum::middleware::from_fn_with_state(
                (leadership, scheme),
                follow_leader,
            ))
            .layer(axum::middleware::from_fn_with_state(
                gate,
                crate::auth::middleware,
            ))
    }

    /// The router `serve` answers with (HTTP and gRPC behind the auth middleware), for
    /// driving the master in-process, as the fuzz targets do.
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// Serve until `shutdown` resolves. Open event streams are then closed (peers see a lost
    /// master, not an error), and connections still open after `SHUTDOWN_GRACE` are cut.
    ///
    /// Connections are served with hyper directly rather than `axum::serve`, to set what
    /// the latter leaves at defaults that do not fit a master with thousands of long-lived
    /// streams: TCP_NODELAY (small frames waited up to 40 ms for delayed ACKs), large fixed
    /// HTTP/2 flow-control windows (see `HTTP2_CONNECTION_WINDOW`), and stream limits above
    /// hyper's 200 concurrent / 20 pending-reset per connection.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        use hyper_util::server::conn::auto::Builder;
        use hyper_util::server::graceful::GracefulShutdown;
        use hyper_util::service::TowerToHyperService;

        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http2()
            .initial_connection_window_size(HTTP2_CONNECTION_WINDOW)
            .initial_stream_window_size(HTTP2_STREAM_WINDOW)
            .max_concurrent_streams(HTTP2_MAX_CONCURRENT_STREAMS)
            .max_pending_accept_reset_streams(Some(HTTP2_MAX_PENDING_RESETS));
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        let mut actor = self.actor;
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let stream = match accepted {
                        Ok((stream, _)) => stream,
                        Err(e) => {
                            // Out of file descriptors and the like: back off, keep serving.
                            tracing::warn!(error = %e, "accepting a connection failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                    }
                    let service = TowerToHyperService::new(self.router.clone());
                    match &self.tls {
                        None => {
                            let conn = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                .into_owned();
                            let conn = graceful.watch(conn);
                            tokio::spawn(async move {
                                if let Err(e) = conn.await {
                                    tracing::debug!(error = %e, "connection ended with an error");
                                }
                            });
                        }
                        Some(acceptor) => {
                            // The handshake runs on the connection's own task, so a slow or
                            // silent client never holds up the accept loop.
                            let acceptor = acceptor.clone();
                            let builder = builder.clone();
                            let watcher = graceful.watcher();
                            tokio::spawn(async move {
                                let stream = match tokio::time::timeout(
                                    TLS_HANDSHAKE_TIMEOUT,
                                    acceptor.accept(stream),
                                )
                                .await
                                {
                                    Ok(Ok(s)) => s,
                                    Ok(Err(e)) => {
                                        tracing::info!(error = %e, "TLS handshake failed");
                                        return;
                                    }
                                    Err(_) => {
                                        tracing::info!("TLS handshake timed out");
                                        return;
                                    }
                                };
                                let conn = builder
                                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                    .into_owned();
                                if let Err(e) = watcher.watch(conn).await {
                                    tracing::debug!(error = %e, "connection ended with an error");
                                }
                            });
                        }
                    }
                }
                () = &mut shutdown => break,
                ended = &mut actor => {
                    // The actor stops only when a registry write failed or leadership
                    // ended: serving on would answer from memory the registry does not
                    // hold.
                    return Err(match ended {
                        Ok(Err(e)) => e,
                        Ok(Ok(())) => ServerError::Actor("it stopped".into()),
                        Err(e) => ServerError::Actor(e.to_string()),
                    });
                }
            }
        }
        drop(self.listener);
        // A follower has no actor to ask (its queue is held for the election); a wedged
        // actor must not hold up the shutdown either.
        if self.leadership.leading() {
            let _ = tokio::time::timeout(
                SHUTDOWN_GRACE,
                self.handle.ask(|reply| Command::CloseStreams { reply }),
            )
            .await;
        }
        // The streams are closed, so the next leader starts from everything this one
        // wrote: give the term up (every call is refused from now on) so another master
        // is elected now, not a TTL later, while the connections drain.
        if let Some(resign) = self.resign
            && resign.send(()).is_ok()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut actor)
                .await
                .is_err()
        {
            tracing::warn!(
                "the lease was not revoked within {SHUTDOWN_GRACE:?}; it expires by itself"
            );
        }
        if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                "connections still open {SHUTDOWN_GRACE:?} after shutdown; closing them"
            );
        }
        Ok(())
    }
}

/// In front of every HTTP route but `/health`: a master that does not lead answers 307 to
/// the leader, same path and query (the API and any UI page), or 503 while no leader is
/// known; the decision is the service layer's (`Leadership::require`). gRPC calls pass:
/// the service layer refuses them with the leader in the status.
async fn follow_leader(
    axum::extract::State((leadership, scheme)): axum::extract::State<(
        crate::service::Leadership,
        &'static str,
    )>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let grpc = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if grpc || request.uri().path() == "/health" {
        return next.run(request).await;
    }
    let Err(refusal) = leadership.require() else {
        return next.run(request).await;
    };
    let target = match &refusal {
        crate::service::Error::NotLeader {
            leader: Some(addr), ..
        } => {
            let path = request.uri().path();
            if path == "/master/redirect" || path == "/redirect" {
                // Mesos's redirect names the leader itself, not the same path on it (with
                // the scheme served, as the leader's own answer does).
                Some(format!("{scheme}://{addr}"))
            } else {
                let path = request
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string();
                Some(format!("{scheme}://{addr}{path}"))
            }
        }
        _ => None,
    };
    let mut response = refusal.into_response();
    if from_page_script(&request) {
        // A page's own call (fetch, a change): a redirect would reach the leader as a
        // cross-origin request from this follower's page, which the leader refuses (and
        // the browser would not let the page read). Say who leads instead (the
        // `agora-leader` header), so the page moves itself to the leader.
        response.headers_mut().remove(axum::http::header::LOCATION);
        *response.status_mut() = axum::http::StatusCode::SERVICE_UNAVAILABLE;
        return response;
    }
    if let Some(loc) = target.and_then(|t| axum::http::HeaderValue::from_str(&t).ok()) {
        response
            .headers_mut()
            .insert(axum::http::header::LOCATION, loc);
    }
    response
}

/// Whether a request comes from a web page's script rather than from a navigation or a
/// program: browsers mark `fetch` calls with `Sec-Fetch-Mode` other than `navigate`, and
/// send `Origin` on every change.
fn from_page_script(request: &axum::extract::Request) -> bool {
    let headers = request.headers();
    let mode = headers
        .get("sec-fetch-mode")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|m| m != "navigate");
    let change = !matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    mode || (change && headers.contains_key(axum::http::header::ORIGIN))
}

/// HTTP/2 receive window of a whole connection. It also sizes h2's budget against floods
/// of small DATA frames (half the connection window): every small frame received and not
/// yet read by a handler costs about 256 bytes of it, and when it runs out the whole
/// connection is closed with GOAWAY ENHANCE_YOUR_CALM. Every unary gRPC call from tonic
/// is one small DATA frame, and one connection can carry hundreds of agents (the load
/// harness multiplexes 150 per connection; a real agent pool behind a proxy does the
/// same), so a burst of status updates exhausted the 32 KiB budget that the previous
/// adaptive windows left (they start at 64 KiB and grow only with a measured
/// bandwidth-delay product, which stays tiny on a LAN): at 10,000 agents the master
/// closed 59 connections in 45 s ("too_many_data_frames"), dropping 150 agents each. The
/// window is credit, not an allocation; what the peer may buffer in the master is bounded
/// by it either way.
pub const HTTP2_CONNECTION_WINDOW: u32 = 16 << 20;
/// HTTP/2 receive window of one stream (hyper's default: 1 MiB).
pub const HTTP2_STREAM_WINDOW: u32 = 1 << 20;
/// Concurrent HTTP/2 streams per connection (every framework and agent holds one open).
pub const HTTP2_MAX_CONCURRENT_STREAMS: u32 = 10_000;
/// Streams a peer may reset before the master accepts them, per connection.
pub const HTTP2_MAX_PENDING_RESETS: usize = 10_000;

/// How long a client may take to complete the TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long open connections may take to finish after shutdown began.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;
    use agora_proto::v1::{self, agent_api_client::AgentApiClient};
    use tonic::transport::Endpoint;

    use crate::clock::SystemClock;

    /// A data directory that is removed when the test ends.
    struct TempDir(std::path::PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Thousands of unary calls at once on one HTTP/2 connection (many agents behind one
    /// connection) must all be answered: none may fail because the master closed the
    /// connection. With the adaptive windows the master used before, h2's budget against
    /// small DATA frames was 32 KiB per connection and a burst like this one ended in
    /// GOAWAY ENHANCE_YOUR_CALM ("too_many_data_frames"), failing every call on it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_small_calls_on_one_connection_is_served() {
        let dir = TempDir(
            std::env::temp_dir().join(format!("agora-server-test-{}", uuid::Uuid::new_v4())),
        );
        let config = MasterConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: dir.0.clone(),
            ..MasterConfig::default()
        };
        let master = RunningMaster::start(config, Arc::new(SystemClock))
            .await
            .expect("master starts");
        let addr = master.addr;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(master.serve(async {
            let _ = stop_rx.await;
        }));

        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("address")
            .buffer_size(8192)
            .connect()
            .await
            .expect("connects");
        const CALLS: usize = 4000;
        let calls: Vec<_> = (0..CALLS)
            .map(|i| {
                let mut client = AgentApiClient::new(channel.clone());
                tokio::spawn(async move {
                    client
                        .heartbeat(v1::AgentHeartbeatRequest {
                            agent_id: format!("no-such-agent-{i}"),
                        })
                        .await
                })
            })
            .collect();
        let mut codes = std::collections::BTreeMap::new();
        for c in calls {
            let code = match c.await.expect("call task") {
                Ok(_) => tonic::Code::Ok,
                Err(s) => s.code(),
            };
            *codes.entry(format!("{code:?}")).or_insert(0usize) += 1;
        }
        // Every agent is unknown: the master itself answers each call with NOT_FOUND.
        assert_eq!(
            codes,
            std::collections::BTreeMap::from([("NotFound".to_string(), CALLS)])
        );
        let _ = stop_tx.send(());
        served.await.expect("serve task").expect("serves");
    }
}
