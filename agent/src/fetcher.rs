//! The fetcher: a task's URIs downloaded into its sandbox before its command starts.
//!
//! Sources: `http://` (a minimal HTTP/1.1 GET over tokio, following up to
//! [`MAX_REDIRECTS`] redirects to http URLs), `file://` and plain absolute paths (copied).
//! `https://` is refused with a clear error (no TLS client in this agent yet). Each fetched
//! file is named by `output_file` or the URI's last path segment, made executable when
//! asked, and extracted into the sandbox when asked and it is a tar archive (`.tar`,
//! `.tar.gz`, `.tgz`, `.tar.bz2`, `.tar.xz`, by the system `tar`). URIs marked `cache` are
//! kept in `<work-dir>/cache/`, bounded to [`FetchConfig::cache_max_bytes`] (least recently
//! used files evicted first).
//!
//! Owns the cache directory. It must never write outside the sandbox and the cache (output
//! names are single path components; archives are extracted by `tar` inside the sandbox
//! with `--no-same-owner`), and never download more than [`MAX_DOWNLOAD_BYTES`] per URI.

use std::path::{Path, PathBuf};
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

/// Fetcher settings.
#[derive(Clone, Debug)]
pub struct FetchConfig {
    /// The cache directory.
    pub cache_dir: PathBuf,
    /// Most bytes the cache keeps.
    pub cache_max_bytes: u64,
}

impl FetchConfig {
    /// The default cache under `work_dir`.
    pub fn new(work_dir: &Path) -> FetchConfig {
        FetchConfig {
            cache_dir: work_dir.join("cache"),
            cache_max_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

/// Fetches every URI into `sandbox` (created if missing), in order.
pub async fn fetch_all(
    config: &FetchConfig,
    uris: &[FetchUri],
    sandbox: &Path,
) -> Result<(), FetchError> {
    if uris.is_empty() {
        return Ok(());
    }
    tokio::fs::create_dir_all(sandbox)
        .await
        .map_err(|e| FetchError {
            uri: String::new(),
            reason: format!("cannot create sandbox {}: {e}", sandbox.display()),
        })?;
    for uri in uris {
        let err = |reason: String| FetchError {
            uri: uri.value.clone(),
            reason,
        };
        match tokio::time::timeout(FETCH_TIMEOUT, fetch_one(config, uri, sandbox)).await {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(err(reason)),
            Err(_) => return Err(err(format!("timed out after {FETCH_TIMEOUT:?}"))),
        }
    }
    Ok(())
}

async fn fetch_one(config: &FetchConfig, uri: &FetchUri, sandbox: &Path) -> Result<(), String> {
    let target = sandbox.join(&uri.output_file);
    // A link planted by an earlier run of the task must not be written through.
    match tokio::fs::remove_file(&target).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot replace {}: {e}", target.display())),
    }
    if uri.cache {
        let cached = config.cache_dir.join(format!("{:016x}", fnv(&uri.value)));
        if tokio::fs::metadata(&cached).await.is_err() {
            tokio::fs::create_dir_all(&config.cache_dir)
                .await
                .map_err(|e| format!("cannot create cache: {e}"))?;
            let partial = cached.with_extension("partial");
            download(&uri.value, &partial).await?;
            tokio::fs::rename(&partial, &cached)
                .await
                .map_err(|e| format!("cannot fill cache: {e}"))?;
            evict(&config.cache_dir, config.cache_max_bytes, &cached).await;
        } else {
            tracing::debug!(uri = %uri.value, "fetcher cache hit");
            touch(&cached);
        }
        tokio::fs::copy(&cached, &target)
            .await
            .map_err(|e| format!("cannot copy from cache: {e}"))?;
    } else {
        download(&uri.value, &target).await?;
    }
    if uri.executable {
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
            .await
            .map_err(|e| format!("cannot make executable: {e}"))?;
    }
    if uri.extract && uri.is_archive() {
        let out = tokio::process::Command::new("tar")
            .arg("-xf")
            .arg(&target)
            .arg("--no-same-owner")
            .arg("-C")
            .arg(sandbox)
            .output()
            .await
            .map_err(|e| format!("cannot run tar: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "tar failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(())
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

async fn download(source: &str, dest: &Path) -> Result<(), String> {
    if source.starts_with("https://") {
        return Err("https is not supported by this agent yet (no TLS client)".into());
    }
    if let Some(path) = source
        .strip_prefix("file://")
        .or_else(|| source.starts_with('/').then_some(source))
    {
        let meta = tokio::fs::metadata(path).await.map_err(|e| e.to_string())?;
        if meta.len() > MAX_DOWNLOAD_BYTES {
            return Err(format!("larger than {MAX_DOWNLOAD_BYTES} bytes"));
        }
        tokio::fs::copy(path, dest)
            .await
            .map_err(|e| e.to_string())?;
        return Ok(());
    }
    let mut url = source.to_string();
    for _ in 0..=MAX_REDIRECTS {
        match http_get(&url, dest).await? {
            None => return Ok(()),
            Some(next) => url = next,
        }
    }
    Err(format!("more than {MAX_REDIRECTS} redirects"))
}

/// GETs an `http://` URL into `dest`; `Some(location)` on a redirect.
async fn http_get(url: &str, dest: &Path) -> Result<Option<String>, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("redirected to an unsupported URL {url:?}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = path.split('#').next().unwrap_or("/");
    let addr = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let stream = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let mut reader = BufReader::new(stream);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: agora-agent\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n"
    );
    reader
        .get_mut()
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
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
            format!("http://{authority}{loc}")
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
    let mut out = tokio::fs::File::create(dest)
        .await
        .map_err(|e| format!("cannot create {}: {e}", dest.display()))?;
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
            let n = reader.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            written += n as u64;
            if written > MAX_DOWNLOAD_BYTES {
                return Err(format!("larger than {MAX_DOWNLOAD_BYTES} bytes"));
            }
            out.write_all(&buf[..n]).await.map_err(|e| e.to_string())?;
        }
        if let Some(l) = length
            && written != l
        {
            return Err(format!("truncated: got {written} of {l} bytes"));
        }
    }
    out.flush().await.map_err(|e| e.to_string())?;
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
