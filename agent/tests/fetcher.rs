//! The fetcher through the agent's launch preparation and the process containerizer:
//! http, https and local URIs, archives, the executable bit, the cache, failures, and the
//! limits on what a task may fetch (allowed directories, the task user's own access, TLS
//! verification).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agora_agent::containerizer::Program;
use agora_agent::fetcher::{FetchConfig, FetchTls, FetchUri};
use agora_agent::prepare::{PreparingContainerizer, UserPolicy};
use agora_agent::{Containerizer, LaunchError, LaunchSpec, ProcessContainerizer, Termination};
use agora_resources::Resources;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Serves `body` for `/tool.sh`, 404 otherwise; counts requests.
async fn server(body: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("addr: {e}"));
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            let resp = if req.starts_with("GET /tool.sh ") {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
            } else if req.starts_with("GET /moved ") {
                "HTTP/1.1 302 Found\r\nLocation: /tool.sh\r\nContent-Length: 0\r\n\r\n".to_string()
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string()
            };
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    (format!("http://{addr}"), hits)
}

fn uri(value: &str, executable: bool, extract: bool, cache: bool) -> FetchUri {
    let proto = agora_proto::v1::Uri {
        value: value.into(),
        executable,
        extract,
        cache,
        output_file: String::new(),
    };
    FetchUri::from_proto(&proto).unwrap_or_else(|e| panic!("{e}"))
}

fn spec(task: &str, script: &str, uris: Vec<FetchUri>) -> LaunchSpec {
    LaunchSpec {
        framework_id: "fw".into(),
        task_id: task.into(),
        agent_id: "a".into(),
        program: Program::Shell(script.into()),
        environment: vec![],
        ports: vec![],
        user: None,
        resources: Resources::new(),
        uris,
        image: None,
        volumes: Vec::new(),
    }
}

#[tokio::test]
async fn http_file_archive_executable_cache_and_failure() {
    let dir = Dir(std::env::temp_dir().join(format!("agora-fetch-it-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(dir.0.join("src/pkg")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.0.join("src/pkg/data.txt"), "inside\n").unwrap_or_else(|e| panic!("{e}"));
    let tar = std::process::Command::new("tar")
        .arg("-czf")
        .arg(dir.0.join("src/pkg.tar.gz"))
        .arg("-C")
        .arg(dir.0.join("src"))
        .arg("pkg")
        .status()
        .unwrap_or_else(|e| panic!("tar: {e}"));
    assert!(tar.success());

    let (base, hits) = server("#!/bin/sh\necho fetched-tool\n").await;
    let c = preparing(&dir.0.join("work"), vec![dir.0.join("src")], None);
    let archive = format!("file://{}", dir.0.join("src/pkg.tar.gz").display());
    let uris = vec![
        uri(&format!("{base}/tool.sh"), true, false, true),
        uri(&archive, false, true, false),
    ];
    let t = c
        .launch(spec("t1", "./tool.sh && cat pkg/data.txt", uris.clone()))
        .await
        .unwrap_or_else(|e| panic!("launch: {e}"));
    let term = tokio::time::timeout(Duration::from_secs(10), t.wait())
        .await
        .unwrap_or_else(|_| panic!("timeout"));
    assert_eq!(term, Termination::Exited(0));
    let out = std::fs::read_to_string(t.sandbox().join("stdout")).unwrap_or_default();
    assert_eq!(out, "fetched-tool\ninside\n");
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // Cached: no second request. A redirect is followed.
    let t = c
        .launch(spec("t2", "./tool.sh", uris))
        .await
        .unwrap_or_else(|e| panic!("launch: {e}"));
    assert_eq!(t.wait().await, Termination::Exited(0));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let mut moved = uri(&format!("{base}/moved"), true, false, false);
    moved.output_file = "tool.sh".into();
    let t = c
        .launch(spec("t3", "./tool.sh", vec![moved]))
        .await
        .unwrap_or_else(|e| panic!("launch: {e}"));
    assert_eq!(t.wait().await, Termination::Exited(0));

    // Failures end the launch with a fetch error that says why.
    let missing_local = format!("file://{}", dir.0.join("src/nope").display());
    for (bad, why) in [
        (format!("{base}/missing"), "HTTP status 404"),
        (missing_local, "No such file"),
        (
            "file:///etc/hostname".to_string(),
            "/etc/hostname is not under a directory the operator allows (--fetcher-allowed-dir)",
        ),
        (
            "https://example.invalid/x".to_string(),
            "https refused: no CA certificates",
        ),
    ] {
        let err = fetch_error(&c, &bad).await;
        assert!(err.contains(&bad), "{err}");
        assert!(err.contains(why), "{bad}: {err}");
    }
}

/// The agent's launch preparation (default user policy) around a process containerizer.
fn preparing(
    work: &std::path::Path,
    allowed: Vec<PathBuf>,
    tls: Option<FetchTls>,
) -> PreparingContainerizer {
    let process = ProcessContainerizer::new(work).unwrap_or_else(|e| panic!("{e}"));
    let mut fetch = FetchConfig::new(work);
    for dir in allowed {
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        fetch
            .allowed_dirs
            .push(std::fs::canonicalize(&dir).unwrap_or_else(|e| panic!("{e}")));
    }
    if let Some(tls) = tls {
        fetch.tls = tls;
    }
    PreparingContainerizer::new(Arc::new(process), work, UserPolicy::default(), fetch)
}

/// The fetch error of launching a task with the one URI `value`.
async fn fetch_error(c: &PreparingContainerizer, value: &str) -> String {
    let err = c
        .launch(spec("bad", "true", vec![uri(value, false, false, false)]))
        .await
        .err()
        .unwrap_or_else(|| panic!("{value} fetched"));
    assert!(matches!(err, LaunchError::Fetch(_)), "{err}");
    err.to_string()
}

#[tokio::test]
async fn local_files_only_from_allowed_directories() {
    let dir = Dir(std::env::temp_dir().join(format!("agora-fetch-allow-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    let allowed = dir.0.join("allowed");
    std::fs::create_dir_all(&allowed).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(allowed.join("ok.txt"), "ok\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.0.join("outside.txt"), "secret\n").unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(dir.0.join("outside.txt"), allowed.join("link.txt"))
        .unwrap_or_else(|e| panic!("{e}"));

    // The default: no directory is allowed, local URIs fail.
    let none = preparing(&dir.0.join("work"), vec![], None);
    let ok = allowed.join("ok.txt").display().to_string();
    let err = fetch_error(&none, &ok).await;
    assert!(
        err.contains("local files may not be fetched: the operator allows no directory (--fetcher-allowed-dir)"),
        "{err}"
    );

    let c = preparing(&dir.0.join("work"), vec![allowed.clone()], None);
    let t = c
        .launch(spec(
            "ok",
            "cat ok.txt",
            vec![uri(&ok, false, false, false)],
        ))
        .await
        .unwrap_or_else(|e| panic!("launch: {e}"));
    assert_eq!(t.wait().await, Termination::Exited(0));
    assert_eq!(
        std::fs::read_to_string(t.sandbox().join("stdout")).unwrap_or_default(),
        "ok\n"
    );
    // Outside, through `..`, or through a link out of the allowed directory: refused.
    let outside = dir.0.join("outside.txt").display().to_string();
    let err = fetch_error(&c, &outside).await;
    assert!(
        err.contains("is not under a directory the operator allows"),
        "{err}"
    );
    let dotdot = format!("{}/../outside.txt", allowed.display());
    let err = fetch_error(&c, &dotdot).await;
    assert!(
        err.contains("is not under a directory the operator allows"),
        "{err}"
    );
    let link = format!("file://{}", allowed.join("link.txt").display());
    let err = fetch_error(&c, &link).await;
    assert!(err.contains("resolves to"), "{err}");
    assert!(
        err.contains("outside.txt, which is not under a directory"),
        "{err}"
    );
}

#[tokio::test]
async fn needs_root_fetches_as_the_task_user() {
    assert!(nix::unistd::Uid::effective().is_root(), "run as root");
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = Dir(std::env::temp_dir().join(format!("agora-fetch-user-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    let allowed = dir.0.join("allowed");
    std::fs::create_dir_all(&allowed).unwrap_or_else(|e| panic!("{e}"));
    let secret = allowed.join("root-only.txt");
    std::fs::write(&secret, "secret\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(allowed.join("public.txt"), "public\n").unwrap_or_else(|e| panic!("{e}"));
    let c = preparing(&dir.0.join("work"), vec![allowed.clone()], None);

    // Readable by root (the agent), not by the task's user: refused, saying so.
    let err = fetch_error(&c, &secret.display().to_string()).await;
    assert!(
        err.contains("permission denied as user \"nobody\""),
        "{err}"
    );

    // A task naming no user runs as the default user, which owns its sandbox and files.
    let public = allowed.join("public.txt").display().to_string();
    let t = c
        .launch(spec(
            "who",
            "id -u; cat public.txt",
            vec![uri(&public, false, false, false)],
        ))
        .await
        .unwrap_or_else(|e| panic!("launch: {e}"));
    assert_eq!(t.wait().await, Termination::Exited(0));
    let out = std::fs::read_to_string(t.sandbox().join("stdout")).unwrap_or_default();
    assert_eq!(out, "65534\npublic\n");
    for path in [t.sandbox().to_path_buf(), t.sandbox().join("public.txt")] {
        let meta = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(meta.uid(), 65534, "{}", path.display());
    }

    // Root needs the operator's flag.
    let mut as_root = spec("root", "true", vec![]);
    as_root.user = Some("root".into());
    let err = c
        .launch(as_root)
        .await
        .err()
        .unwrap_or_else(|| panic!("ran as root"));
    assert!(matches!(err, LaunchError::RootRefused { .. }), "{err}");
    assert!(err.to_string().contains("--allow-root-tasks"), "{err}");
}

/// A CA and a server certificate for 127.0.0.1 signed by it (PEM).
fn pki() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("{e}"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap_or_else(|e| panic!("{e}"));
    let key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap_or_else(|e| panic!("{e}"))
        .signed_by(&key, &ca, &ca_key)
        .unwrap_or_else(|e| panic!("{e}"));
    (ca.pem(), leaf.pem(), key.serialize_pem())
}

/// An https server answering every request with `body`.
async fn https_server(cert: &str, key: &str, body: &'static str) -> String {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("{e}"));
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| panic!("{e}"))
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap_or_else(|e| panic!("{e}"));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    format!("https://{addr}")
}

#[tokio::test]
async fn https_is_verified_against_the_ca_file() {
    let dir = Dir(std::env::temp_dir().join(format!("agora-fetch-tls-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    let (ca, cert, key) = pki();
    let base = https_server(&cert, &key, "over tls\n").await;
    let url = format!("{base}/file.txt");
    let trusted = FetchTls::from_pem(ca.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let c = preparing(&dir.0.join("work"), vec![], Some(trusted));
    let t = c
        .launch(spec(
            "tls",
            "cat file.txt",
            vec![uri(&url, false, false, false)],
        ))
        .await
        .unwrap_or_else(|e| panic!("launch: {e}"));
    assert_eq!(t.wait().await, Termination::Exited(0));
    assert_eq!(
        std::fs::read_to_string(t.sandbox().join("stdout")).unwrap_or_default(),
        "over tls\n"
    );

    // Another CA: the server is not trusted, nothing is fetched.
    let (other_ca, _, _) = pki();
    let untrusted = FetchTls::from_pem(other_ca.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let c = preparing(&dir.0.join("work2"), vec![], Some(untrusted));
    let err = fetch_error(&c, &url).await;
    assert!(err.contains("TLS handshake"), "{err}");
    assert!(err.contains("certificate"), "{err}");
    assert!(FetchTls::from_pem(b"not a certificate").is_err());
}
