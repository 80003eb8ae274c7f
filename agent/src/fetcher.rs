//! The fetcher: a task's URIs downloaded into its sandbox before its command starts.
//!
//! Sources: `http://` and `https://` (a minimal HTTP/1.1 GET over tokio; TLS by rustls with
//! certificate verification against the CA certificates of [`FetchConfig::tls`], following
//! up to [`MAX_REDIRECTS`] redirects), `file://` and plain absolute paths (copied, only from
//! the directories the operator allows: [`FetchConfig::allowed_dirs`], none by default).
//! Each fetched file is named by `output_file` or the URI's last path segment, made
//! executable when asked, and extracted into the sandbox when asked and it is a tar archive
//! (`.tar`, `.tar.gz`, `.tgz`, `.tar.bz2`, `.tar.xz`, by the system `tar`). http(s) URIs
//! marked `cache` are kept in `<work-dir>/cache/`, bounded to
//! [`FetchConfig::cache_max_bytes`] (least recently used files evicted first); local files
//! are never cached, so every task's access to them is checked.
//!
//! Everything in the sandbox is done **as the task's user** ([`Identity`]): local sources
//! are opened, and sandbox files created, on a thread holding that user's file-system
//! credentials ([`crate::containerizer::spawn::with_fs_identity`]), so the kernel checks
//! the user's access, not the agent's; `tar` runs as that user. A root-readable file the
//! task's user cannot read fails the fetch ("permission denied as user ...").
//!
//! Owns the cache directory. It must never write outside the sandbox and the cache (output
//! names are single path components, files are created exclusively without following
//! links), never read a local file outside the allowed directories (checked on the path
//! the opened descriptor resolves to, so links cannot escape), and never download more
//! than [`MAX_DOWNLOAD_BYTES`] per URI.

use std::io::Read as _;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Largest download accepted per URI.
pub const MAX_DOWNLOAD_BYTES: u64 = 1 << 30;
/// Redirects followed per URI.
pub const MAX_REDIRECTS: usize = 5;
/// Time allowed for one URI.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(300);
/// Default cache bound.
pub const DEFAULT_CACHE_BYTES: u64 = 2 << 30;

/// One URI of a task, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchUri {
    /// `http://...`, `https://...`, `file:///...` or `/abs/path`.
    pub value: String,
    /// chmod 0755 after fetching.
    pub executable: bool,
    /// Extract (tar archives) into the sandbox.
    pub extract: bool,
    /// Keep in (and serve from) the agent's cache.
    pub cache: bool,
    /// The file name in the sandbox (a single path component).
    pub output_file: String,
}

/// A URI that cannot be fetched, refused before launch.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadUri {
    /// An unsupported form.
    #[error("URI {0:?} is not http(s)://, file:// or an absolute path")]
    Scheme(String),
    /// No usable output name.
    #[error("URI {uri:?} has no usable file name ({name:?}); set output_file")]
    Name {
        /// The URI.
        uri: String,
        /// The name derived or given.
        name: String,
    },
}

fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0')
        && name.len() <= 255
}

impl FetchUri {
    /// Validates a URI from a task.
    pub fn from_proto(uri: &agora_proto::v1::Uri) -> Result<FetchUri, BadUri> {
        let value = uri.value.trim().to_string();
        let path_part = if let Some(rest) = value
            .strip_prefix("http://")
            .or_else(|| value.strip_prefix("https://"))
        {
            rest.split(['?', '#']).next().unwrap_or("").to_string()
        } else if let Some(rest) = value.strip_prefix("file://") {
            rest.to_string()
        } else if value.starts_with('/') {
            value.clone()
        } else {
            return Err(BadUri::Scheme(value));
        };
        let name = if uri.output_file.is_empty() {
            path_part.rsplit('/').next().unwrap_or("").to_string()
        } else {
            uri.output_file.clone()
        };
        if !safe_name(&name) || value.contains('\0') {
            return Err(BadUri::Name { uri: value, name });
        }
        Ok(FetchUri {
            value,
            executable: uri.executable,
            extract: uri.extract,
            cache: uri.cache,
            output_file: name,
        })
    }

    fn is_archive(&self) -> bool {
        [".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz"]
            .iter()
            .any(|ext| self.output_file.ends_with(ext))
    }
}

/// Fetching failed (the task ends FAILED with reason FETCH_FAILED).
#[derive(Debug, thiserror::Error)]
#[error("cannot fetch {uri}: {reason}")]
pub struct FetchError {
    /// The URI.
    pub uri: String,
    /// Why.
    pub reason: String,
}

/// The user a task's URIs are fetched as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Its name (for messages).
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid (supplementary groups are dropped, as for the task).
    pub gid: u32,
}

/// How `https://` URIs are verified.
#[derive(Clone)]
pub enum FetchTls {
    /// A client configuration with the operator's CA certificates.
    Ready(Arc<rustls::ClientConfig>),
    /// No CA certificates: https URIs fail with this reason.
    Unavailable(String),
}

impl std::fmt::Debug for FetchTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchTls::Ready(_) => f.write_str("FetchTls::Ready"),
            FetchTls::Unavailable(why) => write!(f, "FetchTls::Unavailable({why:?})"),
        }
    }
}

/// The system's CA bundle (Debian's `ca-certificates`), the default of `--fetcher-ca-file`.
pub const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

impl FetchTls {
    /// A verifying client configuration trusting the PEM certificates in `pem`.
    pub fn from_pem(pem: &[u8]) -> Result<FetchTls, String> {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("bad PEM certificate: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("unusable CA certificate: {e}"))?;
        }
        if roots.is_empty() {
            return Err("no CA certificate in the file".into());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(FetchTls::Ready(Arc::new(config)))
    }

    /// From a CA file (`--fetcher-ca-file`).
    pub fn from_file(path: &Path) -> Result<FetchTls, String> {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        FetchTls::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Fetcher settings.
#[derive(Clone, Debug)]
pub struct FetchConfig {
    /// The cache directory.
    pub cache_dir: PathBuf,
    /// Most bytes the cache keeps.
    pub cache_max_bytes: u64,
    /// Directories (absolute, links resolved) local URIs may be read from; empty: local
    /// URIs are refused.
    pub allowed_dirs: Vec<PathBuf>,
    /// How https URIs are verified.
    pub tls: FetchTls,
}

impl FetchConfig {
    /// The default cache under `work_dir`, no local URIs, no https.
    pub fn new(work_dir: &Path) -> FetchConfig {
        FetchConfig {
            cache_dir: work_dir.join("cache"),
            cache_max_bytes: DEFAULT_CACHE_BYTES,
            allowed_dirs: Vec::new(),
            tls: FetchTls::Unavailable(
                "no CA certificates to verify https with (--fetcher-ca-file)".into(),
            ),
        }
    }
}

/// Fetches every URI into `sandbox` (which exists and belongs to `identity`), in order,
/// as `identity` (`None`: as the agent, when it cannot switch users).
pub async fn fetch_all(
    config: &FetchConfig,
    uris: &[FetchUri],
    sandbox: &Path,
    identity: Option<&Identity>,
) -> Result<(), FetchError> {
    for uri in uris {
        let err = |reason: String| FetchError {
            uri: uri.value.clone(),
            reason,
        };
        match tokio::time::timeout(FETCH_TIMEOUT, fetch_one(config, uri, sandbox, identity)).await {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(err(reason)),
            Err(_) => return Err(err(format!("timed out after {FETCH_TIMEOUT:?}"))),
        }
    }
    Ok(())
}

fn ids(identity: Option<&Identity>) -> Option<(u32, u32)> {
    identity.map(|i| (i.uid, i.gid))
}

fn as_whom(identity: Option<&Identity>) -> String {
    identity.map_or_else(
        || "as the agent".to_string(),
        |i| format!("as user {:?}", i.name),
    )
}

/// Runs blocking file work as `identity` (see [`crate::containerizer::spawn::with_fs_identity`]).
async fn as_user<T: Send + 'static>(
    identity: Option<&Identity>,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let ids = ids(identity);
    tokio::task::spawn_blocking(move || crate::containerizer::spawn::with_fs_identity(ids, work))
        .await
        .map_err(|e| std::io::Error::other(format!("file access task failed: {e}")))?
}

/// Creates `target` afresh as the task's user: whatever is there (possibly a link the
/// task planted) is removed first, and the new file is created exclusively, never through
/// a link.
async fn create_target(
    target: &Path,
    identity: Option<&Identity>,
) -> Result<std::fs::File, String> {
    let path = target.to_path_buf();
    as_user(identity, move || {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(0o644)
            .open(&path)
    })
    .await
    .map_err(|e| {
        format!(
            "cannot create {} {}: {e}",
            target.display(),
            as_whom(identity)
        )
    })
}

async fn fetch_one(
    config: &FetchConfig,
    uri: &FetchUri,
    sandbox: &Path,
    identity: Option<&Identity>,
) -> Result<(), String> {
    let target = sandbox.join(&uri.output_file);
    if let Some(path) = local_path(&uri.value) {
        copy_local(
            &config.allowed_dirs,
            Path::new(path),
            &target,
            uri.executable,
            identity,
        )
        .await?;
    } else {
        let out = create_target(&target, identity).await?;
        let mut out = tokio::fs::File::from_std(out);
        if uri.cache {
            let cached = config.cache_dir.join(format!("{:016x}", fnv(&uri.value)));
            if tokio::fs::metadata(&cached).await.is_err() {
                tokio::fs::create_dir_all(&config.cache_dir)
                    .await
                    .map_err(|e| format!("cannot create cache: {e}"))?;
                let partial = cached.with_extension("partial");
                let mut file = tokio::fs::File::create(&partial)
                    .await
                    .map_err(|e| format!("cannot fill cache: {e}"))?;
                download(&config.tls, &uri.value, &mut file).await?;
                tokio::fs::rename(&partial, &cached)
                    .await
                    .map_err(|e| format!("cannot fill cache: {e}"))?;
                evict(&config.cache_dir, config.cache_max_bytes, &cached).await;
            } else {
                tracing::debug!(uri = %uri.value, "fetcher cache hit");
                touch(&cached);
            }
            let mut from = tokio::fs::File::open(&cached)
                .await
                .map_err(|e| format!("cannot read from cache: {e}"))?;
            tokio::io::copy(&mut from, &mut out)
                .await
                .map_err(|e| format!("cannot copy from cache: {e}"))?;
        } else {
            download(&config.tls, &uri.value, &mut out).await?;
        }
        out.flush().await.map_err(|e| e.to_string())?;
        if uri.executable {
            out.set_permissions(std::fs::Permissions::from_mode(0o755))
                .await
                .map_err(|e| format!("cannot make executable: {e}"))?;
        }
    }
    if uri.extract && uri.is_archive() {
        let mut tar = tokio::process::Command::new("tar");
        tar.arg("-xf")
            .arg(&target)
            .arg("--no-same-owner")
            .arg("--no-same-permissions")
            .arg("-C")
            .arg(sandbox)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Some(i) = identity {
            // std drops supplementary groups when root sets a uid.
            tar.uid(i.uid).gid(i.gid);
        }
        let out = tar
            .output()
            .await
            .map_err(|e| format!("cannot run tar: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "tar failed ({}) {}: {}",
                out.status,
                as_whom(identity),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(())
}

/// The path of a `file://` URI or an absolute path.
fn local_path(source: &str) -> Option<&str> {
    source
        .strip_prefix("file://")
        .or_else(|| source.starts_with('/').then_some(source))
}

/// Whether `path` lies in one of `allowed` (both absolute, links resolved).
fn under_allowed(allowed: &[PathBuf], path: &Path) -> bool {
    allowed.iter().any(|dir| path.starts_with(dir))
}

/// Copies a local file into `target` as the task's user, if it lies in an allowed
/// directory and that user can read it.
async fn copy_local(
    allowed: &[PathBuf],
    source: &Path,
    target: &Path,
    executable: bool,
    identity: Option<&Identity>,
) -> Result<(), String> {
    if allowed.is_empty() {
        return Err(
            "local files may not be fetched: the operator allows no directory (--fetcher-allowed-dir)"
                .into(),
        );
    }
    // A lexical check first, for a clear answer without touching the file system; the
    // real check is on what the opened descriptor resolves to.
    let lexical = std::path::absolute(source).map_err(|e| e.to_string())?;
    if lexical
        .components()
        .any(|c| c == std::path::Component::ParentDir)
        || !under_allowed(allowed, &lexical)
    {
        return Err(format!(
            "{} is not under a directory the operator allows (--fetcher-allowed-dir)",
            source.display()
        ));
    }
    let allowed = allowed.to_vec();
    let (source, target) = (source.to_path_buf(), target.to_path_buf());
    let whom = as_whom(identity);
    let result = as_user(identity, move || {
        let mut from = std::fs::File::open(&source)?;
        let real = std::fs::read_link(format!("/proc/self/fd/{}", from.as_raw_fd()))?;
        if !under_allowed(&allowed, &real) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "it resolves to {}, which is not under a directory the operator allows (--fetcher-allowed-dir)",
                    real.display()
                ),
            ));
        }
        let meta = from.metadata()?;
        if !meta.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        if meta.len() > MAX_DOWNLOAD_BYTES {
            return Err(std::io::Error::other(format!(
                "larger than {MAX_DOWNLOAD_BYTES} bytes"
            )));
        }
        match std::fs::remove_file(&target) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut to = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(0o600)
            .open(&target)?;
        std::io::copy(&mut (&mut from).take(MAX_DOWNLOAD_BYTES), &mut to)?;
        let mode = if executable {
            0o755
        } else {
            meta.permissions().mode() & 0o755 | 0o600
        };
        to.set_permissions(std::fs::Permissions::from_mode(mode))?;
        Ok(())
    })
    .await;
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(format!("permission denied {whom}: {e}"))
        }
        Err(e) => Err(format!("{e} ({whom})")),
    }
}

fn fnv(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

/// Removes the least recently used cache files until the cache fits `max` (`keep` stays).
async fn evict(dir: &Path, max: u64, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            if !m.is_file() {
                return None;
            }
            Some((m.modified().ok()?, m.len(), e.path()))
        })
        .collect();
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    files.sort();
    for (_, len, path) in files {
        if total <= max {
            break;
        }
        if path == keep {
            continue;
        }
        if std::fs::remove_file(&path).is_ok() {
            total = total.saturating_sub(len);
        }
    }
}

/// GETs an http(s) URL into `out`, following redirects.
async fn download(tls: &FetchTls, source: &str, out: &mut tokio::fs::File) -> Result<(), String> {
    let mut url = source.to_string();
    for _ in 0..=MAX_REDIRECTS {
        match http_get(tls, &url, out).await? {
            None => return Ok(()),
            Some(next) => url = next,
        }
    }
    Err(format!("more than {MAX_REDIRECTS} redirects"))
}

/// The host of an authority (brackets of an IPv6 address removed) and the address to
/// connect to (`default_port` added when it names none).
fn host_and_addr(authority: &str, default_port: u16) -> (String, String) {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, tail)) => (h, tail.strip_prefix(':')),
            None => (rest, None),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    match port.and_then(|p| p.parse::<u16>().ok()) {
        Some(_) => (host.to_string(), authority.to_string()),
        None if authority.starts_with('[') => {
            (host.to_string(), format!("[{host}]:{default_port}"))
        }
        None => (host.to_string(), format!("{host}:{default_port}")),
    }
}

/// A byte stream to a server, plain or TLS.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// GETs one http(s) URL into `out`; `Some(location)` on a redirect.
async fn http_get(
    tls: &FetchTls,
    url: &str,
    out: &mut tokio::fs::File,
) -> Result<Option<String>, String> {
    let (secure, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else {
        return Err(format!("redirected to an unsupported URL {url:?}"));
    };
    let scheme = if secure { "https" } else { "http" };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = path.split('#').next().unwrap_or("/");
    let (host, addr) = host_and_addr(authority, if secure { 443 } else { 80 });
    let tls_config = match (secure, tls) {
        (false, _) => None,
        (true, FetchTls::Ready(c)) => Some(Arc::clone(c)),
        (true, FetchTls::Unavailable(why)) => return Err(format!("https refused: {why}")),
    };
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let stream: Box<dyn Stream> = if let Some(config) = tls_config {
        let name = rustls_pki_types::ServerName::try_from(host.clone())
            .map_err(|e| format!("invalid server name {host:?}: {e}"))?;
        let connector = tokio_rustls::TlsConnector::from(config);
        Box::new(
            connector
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake with {addr} failed: {e}"))?,
        )
    } else {
        Box::new(tcp)
    };
    let mut reader = BufReader::new(stream);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: agora-agent\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n"
    );
    reader
        .get_mut()
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    reader.get_mut().flush().await.map_err(|e| e.to_string())?;
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .await
        .map_err(|e| e.to_string())?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad HTTP status line {:?}", line.trim()))?;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut location = None;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.parse().ok(),
                "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                "location" => location = Some(v.to_string()),
                _ => {}
            }
        }
    }
    if (300..400).contains(&status) {
        let loc = location.ok_or("redirect without Location")?;
        let next = if loc.starts_with('/') {
            format!("{scheme}://{authority}{loc}")
        } else {
            loc
        };
        return Ok(Some(next));
    }
    if status != 200 {
        return Err(format!("HTTP status {status}"));
    }
    if length.is_some_and(|l| l > MAX_DOWNLOAD_BYTES) {
        return Err(format!("larger than {MAX_DOWNLOAD_BYTES} bytes"));
    }
    let mut written: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    if chunked {
        loop {
            line.clear();
            reader
                .read_line(&mut line)
                .await
                .map_err(|e| e.to_string())?;
            let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| format!("bad chunk size {:?}", line.trim()))?;
            if size == 0 {
                break;
            }
            written = written.saturating_add(size);
            if written > MAX_DOWNLOAD_BYTES {
                return Err(format!("larger than {MAX_DOWNLOAD_BYTES} bytes"));
            }
            let mut left = size;
            while left > 0 {
                let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
                let n = reader
                    .read(&mut buf[..want])
                    .await
                    .map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("connection closed mid-chunk".into());
                }
                out.write_all(&buf[..n]).await.map_err(|e| e.to_string())?;
                left -= n as u64;
            }
            line.clear();
            reader
                .read_line(&mut line)
                .await
                .map_err(|e| e.to_string())?;
        }
    } else {
        loop {
            let n = match reader.read(&mut buf).await {
                Ok(n) => n,
                // Servers that close without TLS close_notify after a Content-Length body.
                Err(e)
                    if e.kind() == std::io::ErrorKind::UnexpectedEof
                        && length.is_some_and(|l| written == l) =>
                {
                    0
                }
                Err(e) => return Err(e.to_string()),
            };
            if n == 0 {
                break;
            }
            written += n as u64;
            if written > MAX_DOWNLOAD_BYTES {
                return Err(format!("larger than {MAX_DOWNLOAD_BYTES} bytes"));
            }
            out.write_all(&buf[..n]).await.map_err(|e| e.to_string())?;
            if length.is_some_and(|l| written == l) {
                break;
            }
        }
        if let Some(l) = length
            && written != l
        {
            return Err(format!("truncated: got {written} of {l} bytes"));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_proto::v1::Uri;

    fn uri(value: &str, output: &str) -> Uri {
        Uri {
            value: value.into(),
            output_file: output.into(),
            ..Default::default()
        }
    }

    #[test]
    fn uri_validation() {
        let u = FetchUri::from_proto(&uri("http://h:8/a/b/tool.tgz?x=1", "")).expect("ok");
        assert_eq!(u.output_file, "tool.tgz");
        assert!(u.is_archive());
        assert_eq!(
            FetchUri::from_proto(&uri("file:///etc/hosts", ""))
                .expect("ok")
                .output_file,
            "hosts"
        );
        assert_eq!(
            FetchUri::from_proto(&uri("/x/y", "z"))
                .expect("ok")
                .output_file,
            "z"
        );
        assert!(matches!(
            FetchUri::from_proto(&uri("ftp://h/x", "")),
            Err(BadUri::Scheme(_))
        ));
        assert!(matches!(
            FetchUri::from_proto(&uri("relative/x", "")),
            Err(BadUri::Scheme(_))
        ));
        for bad in ["..", "a/b", ""] {
            assert!(
                matches!(
                    FetchUri::from_proto(&uri("http://h/dir/", bad)),
                    Err(BadUri::Name { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
