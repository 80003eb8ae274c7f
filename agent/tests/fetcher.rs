//! The fetcher through the process containerizer: http and file URIs, archives, the
//! executable bit, the cache, and failures.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agora_agent::containerizer::Program;
use agora_agent::fetcher::FetchUri;
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
    let c = ProcessContainerizer::new(dir.0.join("work")).unwrap_or_else(|e| panic!("{e}"));
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

    // Failures end the launch with a fetch error.
    for bad in [
        format!("{base}/missing"),
        "file:///no/such/file".to_string(),
        "https://example.invalid/x".to_string(),
    ] {
        let err = c
            .launch(spec("t4", "true", vec![uri(&bad, false, false, false)]))
            .await
            .err()
            .unwrap_or_else(|| panic!("{bad} fetched"));
        assert!(matches!(err, LaunchError::Fetch(_)), "{err}");
        assert!(err.to_string().contains(&bad), "{err}");
    }
}
