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
//!
//! Owns nothing: usage comes from the state actor's containers, files from the disk. It
//! must never serve a path outside the task's sandbox: the path must be relative without
//! `..`, and its canonical form (symlinks resolved) must stay inside the canonical sandbox.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::containerizer::cgroups::Usage;
use crate::sandbox::sandbox_dir;
use crate::state::AgentState;

/// Default and largest `bytes` of `/files/tail`.
pub const TAIL_DEFAULT_BYTES: u64 = 64 * 1024;
/// Largest `bytes` of `/files/tail`.
pub const TAIL_MAX_BYTES: u64 = 1024 * 1024;
/// Most entries listed by `/files/browse`.
pub const BROWSE_MAX_ENTRIES: usize = 10_000;

#[derive(Clone)]
struct Ctx {
    state: AgentState,
    work_dir: PathBuf,
}

/// The router serving the endpoints above.
pub fn router(state: AgentState, work_dir: PathBuf) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/containers", get(containers))
        .route("/files/browse", get(browse))
        .route("/files/download", get(download))
        .route("/files/tail", get(tail))
        .with_state(Ctx { state, work_dir })
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AgentState,
    work_dir: PathBuf,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    if let Err(e) = axum::serve(listener, router(state, work_dir))
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!("agent HTTP endpoint failed: {e}");
    }
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
    framework_id: String,
    task_id: String,
    #[serde(default)]
    path: String,
    bytes: Option<u64>,
}

/// Why a path is not served.
#[derive(Debug, PartialEq, Eq)]
pub enum PathRefusal {
    /// Bad ids, an absolute path, `..`, or a path resolving outside the sandbox.
    Forbidden(String),
    /// No such file.
    NotFound,
}

fn refusal_response(r: PathRefusal) -> Response {
    match r {
        PathRefusal::Forbidden(why) => (StatusCode::FORBIDDEN, why).into_response(),
        PathRefusal::NotFound => (StatusCode::NOT_FOUND, "no such file").into_response(),
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

fn file_of(ctx: &Ctx, q: &FileQuery) -> Result<PathBuf, PathRefusal> {
    let sandbox = sandbox_dir(&ctx.work_dir, &q.framework_id, &q.task_id)
        .map_err(|e| PathRefusal::Forbidden(e.to_string()))?;
    resolve_in_sandbox(&sandbox, &q.path)
}

#[derive(Serialize)]
struct Entry {
    name: String,
    is_dir: bool,
    size: u64,
    modified_unix_s: u64,
}

async fn browse(State(ctx): State<Ctx>, Query(q): Query<FileQuery>) -> Response {
    let dir = match file_of(&ctx, &q) {
        Ok(d) => d,
        Err(r) => return refusal_response(r),
    };
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
    let file = match file_of(&ctx, &q) {
        Ok(f) => f,
        Err(r) => return refusal_response(r),
    };
    match tokio::fs::File::open(&file).await {
        Ok(f) => {
            if f.metadata().await.is_ok_and(|m| m.is_dir()) {
                return (StatusCode::BAD_REQUEST, "a directory").into_response();
            }
            let body = axum::body::Body::from_stream(tokio_util_stream(f));
            ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response()
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
    let file = match file_of(&ctx, &q) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
