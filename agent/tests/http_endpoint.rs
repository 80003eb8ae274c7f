//! The agent's HTTP endpoint (`--listen`) against the real binary: container usage from
//! cgroups and sandbox files, with paths outside the sandbox refused.

mod common;

use std::process::Stdio;
use std::time::Duration;

use agora_agent::containerizer::cgroups::Cgroups;
use agora_agent::containerizer::linux::agent_cgroup_name;
use agora_proto::v1::TaskState;
use common::{TempDir, TestMaster, shell_task};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_agora-agent");

/// Purges the agent's cgroups on drop, also when the test fails.
struct Purge(Option<std::path::PathBuf>);

impl Drop for Purge {
    fn drop(&mut self) {
        if let (Some(work), Ok(cg)) = (&self.0, Cgroups::detect()) {
            let _ = cg.purge_agent(&agent_cgroup_name(work));
        }
    }
}

/// A plain HTTP/1.1 GET; (status, body).
async fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("port: {e}"))
}

#[tokio::test]
async fn usage_and_sandbox_files() {
    let linux = nix::unistd::Uid::effective().is_root() && Cgroups::detect().is_ok();
    let mut master = TestMaster::start().await;
    let dir = TempDir::new("http");
    std::fs::create_dir_all(&dir.0).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let work = std::path::absolute(&dir.0).unwrap_or_else(|e| panic!("abs: {e}"));
    let listen = format!("127.0.0.1:{}", free_port());
    let isolation = if linux { "linux" } else { "process" };
    let _purge = Purge(linux.then(|| work.clone()));
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "--master",
            &master.address(),
            "--work-dir",
            &work.to_string_lossy(),
            "--resources",
            "cpus:1;mem:128;disk:64;ports:[31000-31001]",
            "--listen",
            &listen,
            "--isolation",
            isolation,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    master.next_registration().await;
    let mut seen = Vec::new();
    master
        .run_task(
            "fw-1",
            shell_task("t", "echo hello; echo line2; exec sleep 30"),
        )
        .await;
    master
        .expect_and_ack(&mut seen, "t", TaskState::Starting)
        .await;
    master
        .expect_and_ack(&mut seen, "t", TaskState::Running)
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (status, body) = get(&listen, "/containers").await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(json[0]["task_id"], "t", "{json}");
    if linux {
        assert!(
            json[0]["usage"]["memory_bytes"].as_u64().unwrap_or(0) > 0,
            "{json}"
        );
        assert!(json[0]["usage"]["cpu_time_ns"].as_u64().is_some(), "{json}");
        assert!(
            json[0]["usage"]["pids_current"].as_u64().unwrap_or(0) >= 2,
            "{json}"
        );
    }

    let q = "framework_id=fw-1&task_id=t";
    let (status, body) = get(&listen, &format!("/files/browse?{q}")).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"stdout\""), "{body}");
    // Streamed (chunked): the content is in the body.
    let (status, body) = get(&listen, &format!("/files/download?{q}&path=stdout")).await;
    assert_eq!(status, 200);
    assert!(body.contains("hello\nline2\n"), "{body:?}");
    let (status, body) = get(&listen, &format!("/files/tail?{q}&path=stdout&bytes=6")).await;
    assert_eq!((status, body.as_str()), (200, "line2\n"));
    // Mesos's /files/read: the size with offset -1, then the bytes from an offset.
    let read = |extra: &str| format!("/files/read?{q}&path=stdout&{extra}");
    let (status, body) = get(&listen, &read("offset=-1")).await;
    assert_eq!(status, 200, "{body}");
    let size: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        (size["offset"].as_u64(), size["data"].as_str()),
        (Some(12), Some(""))
    );
    let (_, body) = get(&listen, &read("offset=6&length=4")).await;
    let part: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(part["data"], "line", "{body}");
    assert_eq!(part["next_offset"], 10, "{body}");
    let (_, body) = get(&listen, &read("offset=99")).await;
    let end: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        (end["offset"].as_u64(), end["data"].as_str()),
        (Some(12), Some(""))
    );
    let (status, _) = get(&listen, &read("offset=-2")).await;
    assert_eq!(status, 400);
    for bad in [
        format!("/files/download?{q}&path=../../../../etc/passwd"),
        format!("/files/download?{q}&path=/etc/passwd"),
        "/files/browse?framework_id=..&task_id=t".to_string(),
    ] {
        let (status, _) = get(&listen, &bad).await;
        assert_eq!(status, 403, "{bad}");
    }

    master.kill_task("fw-1", "t", 0.5).await;
    master
        .expect_and_ack(&mut seen, "t", TaskState::Killed)
        .await;
    let _ = child.kill().await;
}
