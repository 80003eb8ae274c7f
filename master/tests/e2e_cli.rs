//! End-to-end tests of the `agora` command against real processes: `agora run` exit codes
//! and messages, the state views, and `agora local` from start to a clean stop.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

fn agora(args: &[&str]) -> std::process::Output {
    Command::new(binary("agora"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run agora")
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn agora_run_exits_zero_only_when_every_task_finished() {
    let cluster = Cluster::start(2);
    let master = cluster.addr.to_string();
    let ok = agora(&[
        "run",
        "--master",
        &master,
        "--instances",
        "3",
        "--timeout",
        "60",
        "--",
        "sh",
        "-c",
        "echo hi",
    ]);
    assert!(ok.status.success(), "agora run failed:\n{}", text(&ok));
    assert!(text(&ok).contains("FINISHED"), "{}", text(&ok));

    let bad = agora(&[
        "run",
        "--master",
        &master,
        "--instances",
        "2",
        "--name",
        "failing",
        "--timeout",
        "60",
        "--",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert!(!bad.status.success(), "a failing command must fail the run");
    let out = text(&bad);
    assert!(
        out.contains("failing-0") && out.contains("failing-1"),
        "{out}"
    );
    assert!(out.contains("FAILED") && out.contains('3'), "{out}");

    // The state views see what ran.
    let tasks = agora(&["tasks", "--master", &master, "--json"]);
    assert!(tasks.status.success(), "{}", text(&tasks));
    let json: serde_json::Value =
        serde_json::from_slice(&tasks.stdout).expect("agora tasks --json prints JSON");
    let s = json.to_string();
    assert!(s.contains("failing-0") && s.contains("FINISHED"), "{s}");
    let agents = agora(&["agents", "--master", &master]);
    assert!(agents.status.success(), "{}", text(&agents));
    assert!(text(&agents).contains("e2e-agent-0"), "{}", text(&agents));

    // Bad flags are refused with a message, and nothing is launched.
    let refused = agora(&["run", "--master", &master, "--instances", "0", "--", "true"]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("instances"), "{}", text(&refused));
    let unreachable = agora(&["state", "--master", "127.0.0.1:1"]);
    assert!(!unreachable.status.success());
    assert!(
        text(&unreachable).contains("cannot reach the master"),
        "{}",
        text(&unreachable)
    );
}

#[test]
fn agora_local_runs_a_cluster_and_stops_cleanly() {
    let dir = TempDir::new("local");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut local = Command::new(binary("agora"))
        .args([
            "local",
            "--agents",
            "2",
            "--data-dir",
            &dir.0.display().to_string(),
            "--listen",
            &listen,
            "--agent-resources",
            "cpus:2;mem:512;disk:512;ports:[32000-32010]",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start agora local");
    let addr = listen.parse().expect("addr");
    let deadline = Instant::now() + WAIT;
    let ready = loop {
        if let Ok((200, body)) = http_get(addr, "/api/v1/state") {
            let s: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            if s["agents"].as_array().is_some_and(|a| a.len() == 2) {
                break true;
            }
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if !ready {
        let _ = local.kill();
        let out = local.wait_with_output().expect("output");
        panic!("agora local never showed 2 agents:\n{}", text(&out));
    }
    let run = agora(&[
        "run",
        "--master",
        &listen,
        "--instances",
        "4",
        "--timeout",
        "60",
        "--",
        "true",
    ]);
    assert!(run.status.success(), "{}", text(&run));

    let _ = Command::new("kill")
        .arg(local.id().to_string())
        .status()
        .expect("send SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Ok(Some(s)) = local.try_wait() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = local.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = local.wait_with_output().expect("output");
    assert!(
        status.is_some_and(|s| s.success()),
        "agora local exit {status:?}:\n{}",
        text(&out)
    );
    assert!(
        text(&out).contains(&listen),
        "prints the master address:\n{}",
        text(&out)
    );
    // The master is gone with it.
    assert!(
        http_get(addr, "/health").is_err(),
        "master still answering after stop"
    );
}

#[test]
fn example_framework_runs_its_tasks_to_completion() {
    let cluster = Cluster::start(1);
    let out = Command::new(binary("agora-example-framework"))
        .args([
            "--master",
            &cluster.addr.to_string(),
            "--tasks",
            "3",
            "--command",
            "echo example $AGORA_TASK_ID",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run the example framework");
    assert!(
        out.status.success(),
        "example framework failed:\n{}",
        text(&out)
    );
    let s = cluster.state();
    let tasks = s["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 3, "{s}");
    assert!(tasks.iter().all(|t| t["state"] == "FINISHED"), "{s}");
}
