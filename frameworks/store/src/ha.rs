//! Several instances of a framework daemon, one leader elected through etcd (as Marathon and
//! Chronos ran with ZooKeeper): the flags, the campaign, the HTTP front that answers for a
//! follower, and the step-down.
//!
//! A daemon started with `--etcd-endpoints` serves its REST port at once through a
//! [`Front`]: while it follows, every call is answered `307 Temporary Redirect` to the
//! leader (same path and query; the body names the leader), or `503` while none is known;
//! `GET /leader` says who leads on every instance. It campaigns ([`campaign`]: the
//! election of `agora_etcd::election` under `<prefix>/leader`); once elected it opens its
//! [`Store`] in etcd under `<prefix>/store` fenced by its term ([`Leader::open_store`]),
//! builds its engine from it, hands its router to the front ([`Front::lead`]) and holds the
//! term ([`Leader::hold`]). When the term ends the daemon must stop acting at once: it
//! replaces itself with a fresh process ([`restart_as_follower`]), which starts as a
//! follower; at shutdown it gives the term up ([`Leader::resign`]) so another instance
//! leads at once.
//!
//! Owns the protocol between instances; it must never decide anything about apps or jobs,
//! and never let a follower act on the store (a follower has none).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use agora_etcd::election::{Election, LeaderRecord, Outcome, Term, poll_interval};
use agora_etcd::log::Fence;
use agora_etcd::{EtcdClient, EtcdError, EtcdTls};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;
use tower::ServiceExt;

use crate::store::{Store, StoreError};

/// Shortest lease etcd grants with its default timing.
pub const LEASE_TTL_MIN_SECONDS: u64 = 2;
/// Pause before a deposed leader starts again (a daemon cut off from etcd must not spin).
pub const RESTART_DELAY_MS: u64 = 500;

/// The flags of a daemon's high-availability mode (flattened into its command line).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct EtcdFlags {
    /// etcd client URLs, comma separated (e.g. `http://10.0.0.1:2379,http://10.0.0.2:2379`):
    /// keep the state in etcd and run as one of several instances, one leader elected
    /// through etcd. Without it: one instance, the state in --data-dir.
    #[arg(long, value_delimiter = ',', env = "AGORA_ETCD_ENDPOINTS")]
    pub etcd_endpoints: Vec<String>,
    /// Prefix of every etcd key of this daemon's instances (default: `/<framework name>`).
    #[arg(long)]
    pub etcd_prefix: Option<String>,
    /// The leader's lease in seconds: a dead leader is replaced about this long after it
    /// stopped; a leader cut off from etcd steps down before it ends.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(LEASE_TTL_MIN_SECONDS..=300))]
    pub etcd_lease_ttl_seconds: u64,
    /// HOST:PORT followers send REST clients to when this instance leads (default: the
    /// bound --listen address).
    #[arg(long)]
    pub advertise: Option<String>,
    /// CA certificate (PEM) of etcd's members, for `https://` etcd endpoints.
    #[arg(long)]
    pub etcd_ca_file: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for etcd members started with --client-cert-auth (with
    /// --etcd-key-file).
    #[arg(long, requires = "etcd_key_file", requires = "etcd_ca_file")]
    pub etcd_cert_file: Option<std::path::PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, requires = "etcd_cert_file")]
    pub etcd_key_file: Option<std::path::PathBuf>,
}

/// How an instance finds etcd and tells the others where it is (`advertise`: its REST
/// API).
pub use agora_etcd::HaConfig;

impl EtcdFlags {
    /// The HA configuration, or `None` without `--etcd-endpoints`. `name` is the default
    /// prefix (`/<name>`), `bound` the default advertised address. Errors on unreadable
    /// TLS files.
    pub fn config(
        &self,
        name: &str,
        bound: std::net::SocketAddr,
    ) -> Result<Option<HaConfig>, EtcdError> {
        if self.etcd_endpoints.is_empty() {
            return Ok(None);
        }
        let tls = match &self.etcd_ca_file {
            Some(ca) => Some(EtcdTls::from_files(
                ca,
                self.etcd_cert_file.as_deref(),
                self.etcd_key_file.as_deref(),
            )?),
            None => None,
        };
        Ok(Some(HaConfig {
            tls,
            endpoints: self.etcd_endpoints.clone(),
            prefix: self
                .etcd_prefix
                .clone()
                .unwrap_or_else(|| format!("/{}", name.trim_matches('/'))),
            lease_ttl: Duration::from_secs(self.etcd_lease_ttl_seconds),
            advertise: self.advertise.clone().unwrap_or_else(|| bound.to_string()),
        }))
    }
}

/// Whether this instance leads, and whom it follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Another instance leads (its advertised address), or none is known yet.
    Following { leader: Option<String> },
    /// Elected, with its store open and its router handed to the front.
    Leading,
}

/// The HTTP face of an instance: a follower's answers until [`Front::lead`], then the
/// daemon's own router. Cheap to clone.
#[derive(Clone)]
pub struct Front {
    role: watch::Sender<Role>,
    router: Arc<OnceLock<Router>>,
    advertise: String,
}

impl Front {
    /// A front that follows until told otherwise.
    pub fn new(advertise: &str) -> Front {
        Front {
            role: watch::Sender::new(Role::Following { leader: None }),
            router: Arc::default(),
            advertise: advertise.to_string(),
        }
    }

    /// The router to serve on the daemon's listener.
    pub fn router(&self) -> Router {
        Router::new().fallback(answer).with_state(self.clone())
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.role.borrow().clone()
    }

    fn follow(&self, leader: Option<String>) {
        self.role.send_if_modified(|r| {
            let next = Role::Following { leader };
            let changed = *r != next;
            *r = next;
            changed
        });
    }

    /// Serve `router` from now on: this instance leads.
    pub fn lead(&self, router: Router) {
        let _ = self.router.set(router);
        self.role.send_replace(Role::Leading);
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Every request: `/leader` here, the leader's router when leading, else a redirect to it.
async fn answer(State(front): State<Front>, request: Request) -> Response {
    let role = front.role();
    if request.uri().path() == "/leader" {
        let leader = match &role {
            Role::Leading => Some(front.advertise.clone()),
            Role::Following { leader } => leader.clone(),
        };
        return json(
            StatusCode::OK,
            serde_json::json!({ "leading": role == Role::Leading, "leader": leader }),
        );
    }
    match (role, front.router.get()) {
        (Role::Leading, Some(router)) => match router.clone().oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        },
        (
            Role::Following {
                leader: Some(leader),
            },
            _,
        ) => {
            let path = request
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let location = format!("http://{leader}{path}");
            let mut r = json(
                StatusCode::TEMPORARY_REDIRECT,
                serde_json::json!({
                    "message": format!("not the leader; the leader is {leader}"),
                    "leader": leader,
                }),
            );
            if let Ok(v) = header::HeaderValue::from_str(&location) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        _ => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({
                "message": "not the leader, and no leader is elected yet; try again shortly",
                "leader": null,
            }),
        ),
    }
}

/// This instance's term of leadership.
pub struct Leader {
    config: HaConfig,
    election: Election,
    term: Term,
}

/// Campaign until elected, telling `front` whom this instance follows meanwhile. Errors
/// only on bad endpoints; an unreachable etcd is retried (and logged).
pub async fn campaign(config: &HaConfig, front: &Front) -> Result<Leader, EtcdError> {
    let client = Arc::new(EtcdClient::with_tls(
        &config.endpoints,
        config.tls.as_ref(),
    )?);
    let me = LeaderRecord {
        id: uuid::Uuid::new_v4().to_string(),
        addr: config.advertise.clone(),
    };
    let election = Election::new(client, &config.prefix, me, config.lease_ttl);
    let mut unreachable_logged = false;
    loop {
        match election.try_lead().await {
            Ok(Outcome::Elected(term)) => {
                tracing::info!(term = term.revision, "elected leader");
                return Ok(Leader {
                    config: config.clone(),
                    election,
                    term,
                });
            }
            Ok(Outcome::Following(leader)) => {
                let leader = leader.map(|r| r.addr);
                if front.role()
                    != (Role::Following {
                        leader: leader.clone(),
                    })
                {
                    tracing::info!(leader = ?leader, "following");
                }
                front.follow(leader);
                unreachable_logged = false;
            }
            Err(e) => {
                if !unreachable_logged {
                    tracing::warn!(error = %e, "cannot reach etcd to find the leader; retrying");
                    unreachable_logged = true;
                }
                front.follow(None);
            }
        }
        tokio::time::sleep(poll_interval(config.lease_ttl)).await;
    }
}

impl Leader {
    /// The fence of this term's writes.
    pub fn fence(&self) -> Fence {
        Fence {
            key: self.election.key().to_vec(),
            revision: self.term.revision,
        }
    }

    /// The store under `<prefix>/store` in etcd, written as this term.
    pub async fn open_store(&self) -> Result<Store, StoreError> {
        let endpoints = self.config.endpoints.clone();
        let tls = self.config.tls.clone();
        let root = format!("{}/store", self.config.prefix.trim_end_matches('/'));
        let fence = self.fence();
        tokio::task::spawn_blocking(move || {
            crate::etcd_store::open(&endpoints, tls.as_ref(), root, fence)
        })
        .await
        .map_err(|e| StoreError::Db {
            context: "open in etcd",
            message: e.to_string(),
        })?
    }

    /// Keep the term; returns why it ended (never while etcd confirms it).
    pub async fn hold(&self) -> String {
        self.election.hold(self.term).await
    }

    /// Give the term up (shutdown): another instance can lead at once.
    pub async fn resign(&self) {
        self.election.resign(self.term).await;
    }
}

/// Replace this process with a fresh one with the same arguments (same pid: supervisors
/// keep tracking it), which starts as a follower. Every socket closes on exec. Returns
/// only on failure.
pub fn restart_as_follower() -> std::io::Error {
    use std::os::unix::process::CommandExt;
    std::thread::sleep(Duration::from_millis(RESTART_DELAY_MS));
    match std::env::current_exe() {
        Ok(exe) => std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .exec(),
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;

    async fn call(front: &Front, path: &str) -> (StatusCode, Option<String>, String) {
        let r = front
            .router()
            .oneshot(Request::builder().uri(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = r.status();
        let location = r
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_string());
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (
            status,
            location,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    #[tokio::test]
    async fn a_follower_redirects_to_the_leader_and_a_leader_serves() {
        let front = Front::new("10.0.0.2:8080");
        let (s, _, body) = call(&front, "/v2/apps").await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        front.follow(Some("10.0.0.1:8080".into()));
        let (s, loc, body) = call(&front, "/v2/apps?embed=x").await;
        assert_eq!(s, StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(loc.as_deref(), Some("http://10.0.0.1:8080/v2/apps?embed=x"));
        assert!(body.contains("the leader is 10.0.0.1:8080"), "{body}");
        let (s, _, body) = call(&front, "/leader").await;
        assert_eq!(s, StatusCode::OK);
        assert!(body.contains("\"leading\":false") && body.contains("10.0.0.1:8080"));
        front.lead(Router::new().route("/v2/apps", get(|| async { "apps" })));
        let (s, loc, body) = call(&front, "/v2/apps").await;
        assert_eq!((s, loc, body.as_str()), (StatusCode::OK, None, "apps"));
        let (_, _, body) = call(&front, "/leader").await;
        assert!(body.contains("\"leading\":true") && body.contains("10.0.0.2:8080"));
    }

    #[test]
    fn flags_default_to_the_framework_name_and_the_bound_address() {
        let bound: std::net::SocketAddr = "127.0.0.1:9000".parse().unwrap();
        assert!(
            EtcdFlags::default()
                .config("agora-jobs", bound)
                .unwrap()
                .is_none()
        );
        let f = EtcdFlags {
            etcd_endpoints: vec!["http://127.0.0.1:2379".into()],
            etcd_lease_ttl_seconds: 3,
            ..EtcdFlags::default()
        };
        let c = f.config("agora-jobs", bound).unwrap().unwrap();
        assert_eq!(c.prefix, "/agora-jobs");
        assert_eq!(c.advertise, "127.0.0.1:9000");
        assert_eq!(c.lease_ttl, Duration::from_secs(3));
    }
}
