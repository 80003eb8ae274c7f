//! The agent's own HTTP endpoint (on `--listen`): container usage and sandbox files.
//!
//! - `GET /health`: `ok`.
//! - `GET /containers`: JSON array, one object per running task: `framework_id`,
//!   `task_id`, `pid`, `container_id`, `sandbox` and `usage` (cpu time, throttling,
//!   memory, OOM kills, pids from the container's cgroup; `null` without cgroups).
//! - `GET /files/browse?framework_id=F&task_id=T&path=P`: JSON listing of a directory of
//!   the task's sandbox (`path` relative to it, default the sandbox itself).
//! - `GET /files/download?framework_id=F&task_id=T&path=P`: a file's bytes.
//! - `GET /files/tail?framework_id=F&task_id=T&path=P&bytes=N`: the last N bytes
//!   (default 64 KiB, at most 1 MiB), e.g. of `stdout`.
//! - `GET /files/read?framework_id=F&task_id=T&path=P&offset=N&length=L`: Mesos's
//!   `/files/read` shape, `{"offset": N, "data": "...", "next_offset": M}`: up to `L`
//!   bytes (default and at most `READ_MAX_BYTES`) from byte `N` as text; `offset=-1`
//!   answers the file's size as `offset` with empty data, so a client follows a file by
//!   asking again from `next_offset` (an invalid UTF-8 sequence shows as U+FFFD; an
//!   incomplete one at the end is left for the next read).
//!
//! Served over TLS when the agent has `--listen-tls-cert/--listen-tls-key` (`HttpTls`).
//! With `HttpSecurity` (`--http-credentials`, `--authenticate-http`, `--http-acls`) every
//! endpoint but `/health` checks the `authorization: Basic` header, and the file endpoints
//! check the `access_sandbox` ACL (object: the task's user) before touching the disk.
//!
//! Owns nothing: usage comes from the state actor's containers, files from the disk. It
//! must never serve a path outside the task's sandbox: the path must be relative without
//! `..`, and its canonical form (symlinks resolved) must stay inside the canonical sandbox.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::containerizer::Usage;
use crate::sandbox::sandbox_dir;
use crate::state::AgentState;

/// Default and largest `bytes` of `/files/tail`.
pub const TAIL_DEFAULT_BYTES: u64 = 64 * 1024;
/// Largest `bytes` of `/files/tail`.
pub const TAIL_MAX_BYTES: u64 = 1024 * 1024;
/// Default and largest `length` of `/files/read`.
pub const READ_MAX_BYTES: u64 = 64 * 1024;
/// Most entries listed by `/files/browse`.
pub const BROWSE_MAX_ENTRIES: usize = 10_000;

#[derive(Clone)]
struct Ctx {
    state: AgentState,
    work_dir: PathBuf,
    security: Arc<HttpSecurity>,
}

/// Who may use the endpoint. Default: everybody (no credentials, no ACLs).
#[derive(Clone, Debug, Default)]
pub struct HttpSecurity {
    /// Principals and secrets `authorization` headers are checked against.
    pub credentials: Option<agora_auth::Credentials>,
    /// Every request but `/health` must carry valid credentials.
    pub authenticate: bool,
    /// `access_sandbox` decides who may read which task's sandbox (deny by default).
    pub acls: Option<agora_auth::Acls>,
    /// Mesos HTTP executors may call `/api/v1/executor` without their token
    /// (`--mesos-executors-without-token`).
    pub mesos_executors_without_token: bool,
}

impl HttpSecurity {
    /// The verified principal of a request, or the refusal's message.
    fn authenticate(
        &self,
        header: Option<&axum::http::HeaderValue>,
    ) -> Result<Option<String>, String> {
        let how = "send the header 'authorization: Basic base64(principal:secret)'";
        let Some(value) = header else {
            if self.authenticate {
                return Err(format!(
                    "missing credentials: this agent authenticates its HTTP endpoint; {how}"
                ));
            }
            return Ok(None);
        };
        let Some(credentials) = &self.credentials else {
            return Ok(None);
        };
        let text = value
            .to_str()
            .map_err(|_| "the authorization header is not ASCII text".to_string())?;
        let c =
            agora_proto::auth::Credential::from_header(text).map_err(|e| format!("{e}; {how}"))?;
        if credentials.verify(&c) {
            Ok(Some(c.principal))
        } else {
            Err(format!(
                "authentication failed for principal '{}': unknown principal or wrong secret",
                c.principal
            ))
        }
    }
}

#[derive(Deserialize)]
struct TaskQuery {
    framework_id: Option<String>,
    task_id: Option<String>,
    #[serde(default)]
    path: String,
}

fn refuse(status: StatusCode, message: String) -> Response {
    let mut r = (status, axum::Json(serde_json::json!({ "error": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Basic realm=\"agora-agent\""),
        );
    }
    r
}

/// Authentication for every route but `/health`; `access_sandbox` for the file routes.
async fn guard(
    State(ctx): State<Ctx>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path().to_string();
    if path == "/health" {
        return next.run(request).await;
    }
    let principal = match ctx
        .security
        .authenticate(request.headers().get(header::AUTHORIZATION))
    {
        Ok(p) => p,
        Err(message) => return refuse(StatusCode::UNAUTHORIZED, message),
    };
    let mut request = request;
    request
        .extensions_mut()
        .insert(crate::mesos_state::Principal(principal.clone()));
    if let (Some(acls), true) = (&ctx.security.acls, path.starts_with("/files/")) {
        let q = Query::<TaskQuery>::try_from_uri(request.uri())
            .map(|Query(q)| q)
            .unwrap_or(TaskQuery {
                framework_id: None,
                task_id: None,
                path: String::new(),
            });
        // A Mesos-style absolute path names its sandbox inside the path.
        let q = match file_target(
            &ctx.work_dir,
            q.framework_id.as_deref(),
            q.task_id.as_deref(),
            &q.path,
        ) {
            Ok(t) => TaskQuery {
                framework_id: Some(t.framework_id),
                task_id: Some(t.sandbox),
                path: t.relative,
            },
            Err(_) => q,
        };
        // The sandbox's owner among the tasks that still run; an ended task's sandbox has
        // no known user and is readable only where the ACLs allow the object "".
        let snapshot = ctx.state.snapshot().await;
        let user = snapshot
            .tasks
            .iter()
            .filter(|t| Some(&t.framework_id) == q.framework_id.as_ref())
            .filter_map(|t| t.task.as_ref().map(|task| (t, task)))
            .find(|(_, task)| Some(&task.task_id) == q.task_id.as_ref())
            .map(|(t, task)| {
                let fw_user = snapshot
                    .frameworks
                    .iter()
                    .find(|f| f.id == t.framework_id)
                    .map(|f| f.user.as_str())
                    .unwrap_or("");
                agora_auth::task_user(task, fw_user).to_string()
            })
            .unwrap_or_default();
        let action = agora_auth::Action::AccessSandbox;
        let d = acls.decide(principal.as_deref(), action, &user);
        if !d.allowed() {
            let message = agora_auth::acl::denial_message(principal.as_deref(), action, &user, &d);
            return refuse(StatusCode::FORBIDDEN, message);
        }
    }
    next.run(request).await
}

/// The router serving the endpoints above and Mesos's agent `/state`
/// ([`crate::mesos_state`]).
pub fn router(
    state: AgentState,
    work_dir: PathBuf,
    security: Arc<HttpSecurity>,
    facts: Arc<crate::mesos_state::AgentFacts>,
) -> Router {
    // Mesos executors authenticate with their own token, not operator credentials.
    let mesos =
        crate::mesos_executor::router(state.clone(), security.mesos_executors_without_token);
    // Canonical, so Mesos-style absolute paths compare with the `directory` `/state` shows.
    let work_dir = std::fs::canonicalize(&work_dir).unwrap_or(work_dir);
    let mesos_state = crate::mesos_state::Ctx {
        state: state.clone(),
        work_dir: work_dir.clone(),
        facts,
        acls: security.acls.clone(),
    };
    let ctx = Ctx {
        state,
        work_dir,
        security,
    };
    let state_routes = Router::new()
        .route("/state", get(crate::mesos_state::state))
        .route("/slave(1)/state", get(crate::mesos_state::state))
        .with_state(mesos_state);
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/containers", get(containers))
        .route("/files/browse", get(browse))
        .route("/files/download", get(download))
        .route("/files/tail", get(tail))
        .route("/files/read", get(read))
        .merge(state_routes)
        .layer(axum::middleware::from_fn_with_state(ctx.clone(), guard))
        .with_state(ctx)
        .merge(mesos)
}

/// PEM certificate (chain) and private key for serving the endpoint over TLS.
#[derive(Clone)]
pub struct HttpTls {
    /// The certificate chain.
    pub cert_pem: Vec<u8>,
    /// Its private key.
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for HttpTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("HttpTls").finish_non_exhaustive()
    }
}

impl HttpTls {
    /// The rustls server configuration (ring provider, ALPN http/1.1), or why the PEM
    /// files are unusable.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, String> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_slice_iter(&self.cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("--listen-tls-cert: {e}"))?;
        if chain.is_empty() {
            return Err("--listen-tls-cert holds no PEM certificate".into());
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem)
            .map_err(|e| format!("--listen-tls-key holds no PEM private key: {e}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| {
                format!("--listen-tls-cert and --listen-tls-key do not fit together: {e}")
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// How long a client may take to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` (over TLS with `tls`) until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AgentState,
    work_dir: PathBuf,
    tls: Option<Arc<rustls::ServerConfig>>,
    security: Arc<HttpSecurity>,
    facts: Arc<crate::mesos_state::AgentFacts>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let app = router(state, work_dir, security, facts);
    let Some(tls) = tls else {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!("agent HTTP endpoint failed: {e}");
        }
        return;
    };
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let builder = Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                let service = TowerToHyperService::new(app.clone());
                // The handshake runs on the connection's task so a silent client never
                // holds up the accept loop.
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(
                        TLS_HANDSHAKE_TIMEOUT,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(2), graceful.shutdown()).await;
}

#[derive(Serialize)]
struct ContainerView {
    framework_id: String,
    task_id: String,
    pid: u32,
    container_id: Option<String>,
    sandbox: String,
    usage: Option<Usage>,
}

async fn containers(State(ctx): State<Ctx>) -> Response {
    let all = ctx.state.containers().await;
    let views = tokio::task::spawn_blocking(move || {
        all.into_iter()
            .map(|(key, c)| ContainerView {
                framework_id: key.framework_id,
                task_id: key.task_id,
                pid: c.pid(),
                container_id: c.reference().map(|r| r.container_id),
                sandbox: c.sandbox().to_string_lossy().into_owned(),
                usage: c.usage(),
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    axum::Json(views).into_response()
}

#[derive(Deserialize)]
struct FileQuery {
    framework_id: Option<String>,
    task_id: Option<String>,
    #[serde(default)]
    path: String,
    bytes: Option<u64>,
    offset: Option<i64>,
    length: Option<u64>,
}

/// The file a request names: a sandbox (framework id and the sandbox's name, a task id or
/// `executor.<id>`) and a path relative to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileTarget {
    pub framework_id: String,
    pub sandbox: String,
    pub relative: String,
    /// Named Mesos's way (an absolute `path`): answers take Mesos's shapes.
    pub mesos: bool,
}

/// What a query names: with `framework_id` and `task_id`, Agora's form (`path` relative
/// to that task's sandbox); without them, Mesos's form: `path` absolute, either inside
/// `<work_dir>/sandboxes/` (the `directory` the agent's `/state` shows) or Mesos's
/// virtual `/frameworks/<F>/executors/<E>/runs/latest[/...]`.
pub fn file_target(
    work_dir: &Path,
    framework_id: Option<&str>,
    task_id: Option<&str>,
    path: &str,
) -> Result<FileTarget, PathRefusal> {
    match (framework_id, task_id) {
        (Some(f), Some(t)) => {
            return Ok(FileTarget {
                framework_id: f.to_string(),
                sandbox: t.to_string(),
                relative: path.to_string(),
                mesos: false,
            });
        }
        (None, None) => {}
        _ => {
            return Err(PathRefusal::BadRequest(
                "give both framework_id and task_id, or neither with an absolute path".into(),
            ));
        }
    }
    let forbidden = |why: &str| PathRefusal::Forbidden(why.to_string());
    if path.is_empty() {
        return Err(PathRefusal::BadRequest(
            "expecting 'path' in the query".into(),
        ));
    }
    let p = Path::new(path);
    if !p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(forbidden("path must be absolute, without '..'"));
    }
    let names = |rest: &Path| -> Vec<String> {
        rest.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect()
    };
    let sandboxes = work_dir.join("sandboxes");
    let (framework_id, sandbox, rest) = if let Ok(rest) = p.strip_prefix(&sandboxes) {
        let mut n = names(rest);
        if n.len() < 2 {
            return Err(forbidden(
                "path must name a sandbox under the agent's work dir",
            ));
        }
        let rest = n.split_off(2);
        (n[0].clone(), n[1].clone(), rest)
    } else {
        let n = names(p);
        match n.as_slice() {
            [f, fw, e, x, r, l, ..]
                if f == "frameworks" && e == "executors" && r == "runs" && l == "latest" =>
            {
                let executor = crate::containerizer::executor_sandbox_name(x);
                let is_executor =
                    crate::sandbox::sandbox_dir(work_dir, fw, &executor).is_ok_and(|d| d.is_dir());
                let name = if is_executor { executor } else { x.clone() };
                (fw.clone(), name, n[6..].to_vec())
            }
            _ => {
                return Err(forbidden(
                    "path must be inside a sandbox of this agent (the 'directory' of its /state)",
                ));
            }
        }
    };
    Ok(FileTarget {
        framework_id,
        sandbox,
        relative: rest.join("/"),
        mesos: true,
    })
}

/// Why a path is not served.
#[derive(Debug, PartialEq, Eq)]
pub enum PathRefusal {
    /// Bad ids, an absolute path, `..`, or a path resolving outside the sandbox.
    Forbidden(String),
    /// No such file.
    NotFound,
    /// The query names no file (no `path`, or only one of the two ids).
    BadRequest(String),
}

fn refusal_response(r: PathRefusal) -> Response {
    match r {
        PathRefusal::Forbidden(why) => (StatusCode::FORBIDDEN, why).into_response(),
        PathRefusal::NotFound => (StatusCode::NOT_FOUND, "no such file").into_response(),
        PathRefusal::BadRequest(why) => (StatusCode::BAD_REQUEST, why).into_response(),
    }
}

/// The file `relative` inside `sandbox`, refusing anything that could leave it.
pub fn resolve_in_sandbox(sandbox: &Path, relative: &str) -> Result<PathBuf, PathRefusal> {
    let rel = Path::new(relative);
    if relative.contains('\0') {
        return Err(PathRefusal::Forbidden("path contains NUL".into()));
    }
    for c in rel.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            _ => {
                return Err(PathRefusal::Forbidden(
                    "path must be relative to the sandbox, without '..'".into(),
                ));
            }
        }
    }
    let root = std::fs::canonicalize(sandbox).map_err(|_| PathRefusal::NotFound)?;
    let target = std::fs::canonicalize(root.join(rel)).map_err(|_| PathRefusal::NotFound)?;
    if !target.starts_with(&root) {
        return Err(PathRefusal::Forbidden(
            "path resolves outside the sandbox".into(),
        ));
    }
    Ok(target)
}

fn target_of(ctx: &Ctx, q: &FileQuery) -> Result<FileTarget, PathRefusal> {
    file_target(
        &ctx.work_dir,
        q.framework_id.as_deref(),
        q.task_id.as_deref(),
        &q.path,
    )
}

fn file_of(ctx: &Ctx, t: &FileTarget) -> Result<PathBuf, PathRefusal> {
    let sandbox = sandbox_dir(&ctx.work_dir, &t.framework_id, &t.sandbox)
        .map_err(|e| PathRefusal::Forbidden(e.to_string()))?;
    resolve_in_sandbox(&sandbox, &t.relative)
}

/// `ls -l`'s mode text of a file (`drwxr-xr-x`), as Mesos's `/files/browse` shows it.
fn mode_text(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::PermissionsExt;
    let kind = if meta.is_dir() {
        'd'
    } else if meta.file_type().is_symlink() {
        'l'
    } else {
        '-'
    };
    let mode = meta.permissions().mode();
    let mut out = String::with_capacity(10);
    out.push(kind);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 0o7;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        out.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    out
}

/// One entry of Mesos's `/files/browse`: `path` (the requested path joined with the
/// name), `nlink`, `size`, `mtime` (seconds), `mode`, `uid` and `gid` (user and group
/// names, numbers when unknown).
fn mesos_entry(requested: &str, name: &str, meta: &std::fs::Metadata) -> serde_json::Value {
    use std::os::unix::fs::MetadataExt;
    let uid = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(meta.uid()))
        .ok()
        .flatten()
        .map_or_else(|| meta.uid().to_string(), |u| u.name);
    let gid = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(meta.gid()))
        .ok()
        .flatten()
        .map_or_else(|| meta.gid().to_string(), |g| g.name);
    serde_json::json!({
        "path": format!("{}/{name}", requested.trim_end_matches('/')),
        "nlink": meta.nlink(),
        "size": meta.len(),
        "mtime": meta.mtime(),
        "mode": mode_text(meta),
        "uid": uid,
        "gid": gid,
    })
}

#[derive(Serialize)]
struct Entry {
    name: String,
    is_dir: bool,
    size: u64,
    modified_unix_s: u64,
}

async fn browse(State(ctx): State<Ctx>, Query(q): Query<FileQuery>) -> Response {
    let target = match target_of(&ctx, &q) {
        Ok(t) => t,
        Err(r) => return refusal_response(r),
    };
    let dir = match file_of(&ctx, &target) {
        Ok(d) => d,
        Err(r) => return refusal_response(r),
    };
    if target.mesos {
        let requested = q.path.clone();
        let listed = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for e in std::fs::read_dir(&dir)?.flatten().take(BROWSE_MAX_ENTRIES) {
                let Ok(meta) = e.metadata() else { continue };
                let name = e.file_name().to_string_lossy().into_owned();
                out.push((name.clone(), mesos_entry(&requested, &name, &meta)));
            }
            out.sort_by(|a, b| a.0.cmp(&b.0));
            Ok::<_, std::io::Error>(out.into_iter().map(|(_, v)| v).collect::<Vec<_>>())
        })
        .await;
        return match listed {
            Ok(Ok(list)) => axum::Json(list).into_response(),
            Ok(Err(e)) => (StatusCode::BAD_REQUEST, format!("cannot list: {e}")).into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        };
    }
    let entries = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir)?.flatten().take(BROWSE_MAX_ENTRIES) {
            let Ok(meta) = e.metadata() else { continue };
            out.push(Entry {
                name: e.file_name().to_string_lossy().into_owned(),
                is_dir: meta.is_dir(),
                size: meta.len(),
                modified_unix_s: meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs()),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok::<_, std::io::Error>(out)
    })
    .await;
    match entries {
        Ok(Ok(list)) => axum::Json(list).into_response(),
        Ok(Err(e)) => (StatusCode::BAD_REQUEST, format!("cannot list: {e}")).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn download(State(ctx): State<Ctx>, Query(q): Query<FileQuery>) -> Response {
    let target = match target_of(&ctx, &q) {
        Ok(t) => t,
        Err(r) => return refusal_response(r),
    };
    let file = match file_of(&ctx, &target) {
        Ok(f) => f,
        Err(r) => return refusal_response(r),
    };
    match tokio::fs::File::open(&file).await {
        Ok(f) => {
            if f.metadata().await.is_ok_and(|m| m.is_dir()) {
                return (StatusCode::BAD_REQUEST, "a directory").into_response();
            }
            let body = axum::body::Body::from_stream(tokio_util_stream(f));
            let mut r =
                ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response();
            // Mesos's download names the file for the browser saving it.
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().replace(['"', '\\', '\r', '\n'], "_"));
            if let Some(v) = name.filter(|_| target.mesos).and_then(|n| {
                axum::http::HeaderValue::from_str(&format!("attachment; filename=\"{n}\"")).ok()
            }) {
                r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            r
        }
        Err(e) => (StatusCode::NOT_FOUND, format!("cannot open: {e}")).into_response(),
    }
}

/// The file's bytes as a stream of chunks (no extra crate: a small unfold).
fn tokio_util_stream(
    file: tokio::fs::File,
) -> impl futures::Stream<Item = std::io::Result<Vec<u8>>> + Send {
    use tokio::io::AsyncReadExt;
    futures::stream::unfold(Some(file), |state| async move {
        let mut file = state?;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(buf), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

async fn tail(State(ctx): State<Ctx>, Query(q): Query<FileQuery>) -> Response {
    let file = match target_of(&ctx, &q).and_then(|t| file_of(&ctx, &t)) {
        Ok(f) => f,
        Err(r) => return refusal_response(r),
    };
    let want = q.bytes.unwrap_or(TAIL_DEFAULT_BYTES).min(TAIL_MAX_BYTES);
    let read = tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::open(&file)?;
        let len = f.metadata()?.len();
        let start = len.saturating_sub(want);
        f.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::new();
        f.take(want).read_to_end(&mut buf)?;
        Ok::<_, std::io::Error>(buf)
    })
    .await;
    match read {
        Ok(Ok(bytes)) => {
            ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
        }
        Ok(Err(e)) => (StatusCode::BAD_REQUEST, format!("cannot read: {e}")).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `len` bytes of `buf` that end on a UTF-8 character boundary: an incomplete sequence
/// at the end (cut by the read's length) is left for the next read.
fn complete_utf8_prefix(buf: &[u8]) -> usize {
    let start = buf.len().saturating_sub(3);
    for i in (start..buf.len()).rev() {
        let b = buf[i];
        if b & 0b1100_0000 == 0b1000_0000 {
            continue; // a continuation byte: look further back for the lead byte
        }
        let needed = if b & 0b1000_0000 == 0 {
            1
        } else if b & 0b1110_0000 == 0b1100_0000 {
            2
        } else if b & 0b1111_0000 == 0b1110_0000 {
            3
        } else if b & 0b1111_1000 == 0b1111_0000 {
            4
        } else {
            1 // not a lead byte: invalid, shown as U+FFFD, never completed later
        };
        return if buf.len() - i >= needed {
            buf.len()
        } else {
            i
        };
    }
    buf.len()
}

async fn read(State(ctx): State<Ctx>, Query(q): Query<FileQuery>) -> Response {
    let file = match target_of(&ctx, &q).and_then(|t| file_of(&ctx, &t)) {
        Ok(f) => f,
        Err(r) => return refusal_response(r),
    };
    let offset = q.offset.unwrap_or(0);
    if offset < -1 {
        return (
            StatusCode::BAD_REQUEST,
            "offset must be -1 (the file's size) or a byte position",
        )
            .into_response();
    }
    let want = q.length.unwrap_or(READ_MAX_BYTES).min(READ_MAX_BYTES);
    let read = tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::open(&file)?;
        let meta = f.metadata()?;
        if meta.is_dir() {
            return Err(std::io::Error::other("a directory"));
        }
        let len = meta.len();
        if offset < 0 {
            return Ok((len, Vec::new()));
        }
        let start = (offset as u64).min(len);
        f.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::new();
        f.take(want).read_to_end(&mut buf)?;
        Ok((start, buf))
    })
    .await;
    match read {
        Ok(Ok((start, mut bytes))) => {
            let keep = if offset < 0 {
                0
            } else {
                complete_utf8_prefix(&bytes)
            };
            bytes.truncate(keep);
            axum::Json(serde_json::json!({
                "offset": start,
                "data": String::from_utf8_lossy(&bytes),
                "next_offset": start + keep as u64,
            }))
            .into_response()
        }
        Ok(Err(e)) => (StatusCode::BAD_REQUEST, format!("cannot read: {e}")).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_end_on_whole_characters() {
        use super::complete_utf8_prefix as p;
        assert_eq!(p(b"abc"), 3);
        assert_eq!(p(b""), 0);
        let e = "é".as_bytes(); // 2 bytes
        assert_eq!(p(&[b'a', e[0]]), 1, "a cut 2-byte character waits");
        assert_eq!(p(&[b'a', e[0], e[1]]), 3);
        let euro = "€".as_bytes(); // 3 bytes
        assert_eq!(p(&[b'x', euro[0], euro[1]]), 1);
        assert_eq!(p(&[b'x', 0xff]), 2, "invalid bytes are passed on");
    }

    #[test]
    fn http_security_authenticates_like_the_master() {
        use axum::http::HeaderValue;
        let creds = agora_auth::Credentials::parse(r#"[{"principal": "alice", "secret": "pw"}]"#)
            .expect("valid");
        let header = |p: &str, s: &str| {
            HeaderValue::from_str(
                &agora_proto::auth::Credential {
                    principal: p.into(),
                    secret: s.into(),
                }
                .to_header(),
            )
            .expect("ascii")
        };
        let on = HttpSecurity {
            credentials: Some(creds.clone()),
            authenticate: true,
            acls: None,
            ..HttpSecurity::default()
        };
        assert_eq!(
            on.authenticate(Some(&header("alice", "pw"))),
            Ok(Some("alice".into()))
        );
        assert!(
            on.authenticate(None)
                .expect_err("required")
                .starts_with("missing credentials")
        );
        assert!(on.authenticate(Some(&header("alice", "no"))).is_err());
        let optional = HttpSecurity {
            authenticate: false,
            ..on
        };
        assert_eq!(optional.authenticate(None), Ok(None));
        assert!(optional.authenticate(Some(&header("bob", "pw"))).is_err());
        assert_eq!(
            HttpSecurity::default().authenticate(Some(&header("x", "y"))),
            Ok(None)
        );
    }

    use super::*;

    #[test]
    fn mesos_paths_name_their_sandbox() {
        let work = Path::new("/w");
        let t = |f: Option<&str>, id: Option<&str>, p: &str| file_target(work, f, id, p);
        let target = |f: &str, sb: &str, rel: &str, mesos: bool| FileTarget {
            framework_id: f.into(),
            sandbox: sb.into(),
            relative: rel.into(),
            mesos,
        };
        assert_eq!(
            t(Some("f"), Some("t"), "stdout"),
            Ok(target("f", "t", "stdout", false))
        );
        assert_eq!(
            t(None, None, "/w/sandboxes/f/t/sub/stdout"),
            Ok(target("f", "t", "sub/stdout", true))
        );
        assert_eq!(
            t(None, None, "/w/sandboxes/f/executor.e/"),
            Ok(target("f", "executor.e", "", true))
        );
        // No `executor.t` sandbox under /w: the virtual path names the task's.
        assert_eq!(
            t(None, None, "/frameworks/f/executors/t/runs/latest/stdout"),
            Ok(target("f", "t", "stdout", true))
        );
        for bad in [
            "/w/sandboxes/f/t/../../g/t/stdout",
            "/w/sandboxes/f",
            "/w/other/f/t",
            "/etc/passwd",
            "stdout",
            "/frameworks/f/executors/t/runs/1/stdout",
        ] {
            assert!(
                matches!(t(None, None, bad), Err(PathRefusal::Forbidden(_))),
                "{bad}: {:?}",
                t(None, None, bad)
            );
        }
        assert!(matches!(t(None, None, ""), Err(PathRefusal::BadRequest(_))));
        assert!(matches!(
            t(Some("f"), None, "/w/sandboxes/f/t"),
            Err(PathRefusal::BadRequest(_))
        ));
    }

    #[test]
    fn paths_outside_the_sandbox_are_refused() {
        let dir = std::env::temp_dir().join(format!("agora-http-{}", std::process::id()));
        let sandbox = dir.join("sb");
        std::fs::create_dir_all(sandbox.join("sub")).expect("mkdir");
        std::fs::write(sandbox.join("stdout"), "hi").expect("write");
        std::fs::write(dir.join("secret"), "no").expect("write");
        std::os::unix::fs::symlink(dir.join("secret"), sandbox.join("link")).expect("symlink");
        std::os::unix::fs::symlink("sub", sandbox.join("inner")).expect("symlink");

        assert!(resolve_in_sandbox(&sandbox, "stdout").is_ok());
        assert!(resolve_in_sandbox(&sandbox, "").is_ok());
        assert!(resolve_in_sandbox(&sandbox, "inner").is_ok());
        assert_eq!(
            resolve_in_sandbox(&sandbox, "missing"),
            Err(PathRefusal::NotFound)
        );
        for bad in ["../secret", "/etc/passwd", "sub/../../secret", "link"] {
            assert!(
                matches!(
                    resolve_in_sandbox(&sandbox, bad),
                    Err(PathRefusal::Forbidden(_))
                ),
                "{bad} was served"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
