//! End-to-end tests of the commands that read task output and events through the master
//! (its sandbox proxy and its event stream) from real agents serving `--listen`:
//! `agora run` streaming its tasks' output while they run, `agora logs` (with `--stderr` and `-f`) and
//! `agora events`.

#[path = "../../master/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

fn agora(args: &[&str]) -> Output {
    Command::new(binary("agora"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run agora")
}

fn text(o: &Output) -> String {
    format!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A master and two agents that serve their sandbox HTTP endpoint.
fn cluster() -> Cluster {
    let mut c = Cluster::start_in(TempDir::new("logs"), 0, &[], None, &[]);
    for i in 0..2 {
        let listen = format!("127.0.0.1:{}", free_port());
        c.add_agent_with(i, &["--listen", &listen]);
    }
    c.wait_agents(2);
    c
}

#[test]
fn agora_run_prints_what_its_tasks_wrote() {
    let c = cluster();
    let m = c.addr.to_string();
    // The README's first example shows its hello.
    let o = agora(&["run", "--master", &m, "--", "echo", "hello"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.lines().any(|l| l == "hello"), "{}", text(&o));

    // Several tasks: each line prefixed with its task; stderr to stderr.
    let o = agora(&[
        "run",
        "--master",
        &m,
        "--instances",
        "2",
        "--",
        "sh",
        "-c",
        "echo out-$AGORA_TASK_ID; echo err-$AGORA_TASK_ID >&2",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    for k in 0..2 {
        assert!(
            out.contains(&format!("[agora-run-{k}] out-agora-run-{k}")),
            "{}",
            text(&o)
        );
        assert!(
            err.contains(&format!("[agora-run-{k}] err-agora-run-{k}")),
            "{}",
            text(&o)
        );
    }

    // --quiet: only the output.
    let o = agora(&["run", "--master", &m, "--quiet", "--", "echo", "just this"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "just this\n",
        "{}",
        text(&o)
    );
    // ... and a failure still says which task and why.
    let o = agora(&["run", "--master", &m, "--quiet", "--", "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("FAILED"), "{}", text(&o));

    // Output streams while the task runs: the first line shows while the task still
    // waits for a file only the test creates, the second after it.
    let go = c.dir.0.join("go-stream");
    let script = format!(
        "echo first-line; while [ ! -e {} ]; do sleep 0.1; done; echo second-line",
        go.display()
    );
    let mut child = Command::new(binary("agora"))
        .args(["run", "--master", &m, "--quiet", "--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("agora run");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(WAIT)
        .expect("the first line while the task runs");
    assert_eq!(first, "first-line");
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "agora run is still running: the line was streamed, not printed at the end"
    );
    assert!(
        !go.exists(),
        "the task cannot have ended: it waits for {}",
        go.display()
    );
    std::fs::write(&go, "").expect("let the task go on");
    let second = rx.recv_timeout(WAIT).expect("the second line");
    assert_eq!(second, "second-line");
    let status = child.wait().expect("agora run ends");
    reader.join().expect("reader");
    assert!(status.success(), "agora run exited {status:?}");
    assert!(rx.try_recv().is_err(), "nothing printed twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agora_logs_prints_and_follows_a_tasks_output_and_events_follow_the_cluster() {
    let c = cluster();
    let m = c.addr.to_string();

    // Events first, so they see the launch.
    let mut events = Command::new(binary("agora"))
        .args([
            "events",
            "--master",
            &m,
            "--json",
            "--types",
            "task_added,task_updated",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("agora events");
    let lines = events.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(lines).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Give the stream a moment to be open before anything happens.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut fw = Framework::subscribe(c.addr, "e2e-logs").await;
    let offers = fw.wait_offers(1).await;
    fw.accept(
        vec![offers[0].id.clone()],
        vec![launch(vec![
            shell_task(
                "talker",
                "cpus:0.5;mem:32",
                "for i in 1 2 3 4 5; do echo line-$i; echo warn-$i >&2; sleep 0.4; done",
            ),
            shell_task("sleeper", "cpus:0.5;mem:32", "echo started; sleep 300"),
        ])],
        Some(3600.0),
    )
    .await
    .expect("launch");
    fw.wait_for("the talker runs", |s| {
        s.get("talker")
            .is_some_and(|x| x.state == agora_proto::TaskState::Running as i32)
    })
    .await;

    // -f prints everything, including what comes after it started, and ends with the task.
    let follow = agora(&["logs", "talker", "-f", "--master", &m]);
    assert!(follow.status.success(), "{}", text(&follow));
    let out = String::from_utf8_lossy(&follow.stdout);
    let printed: Vec<&str> = out.lines().collect();
    assert_eq!(
        printed,
        ["line-1", "line-2", "line-3", "line-4", "line-5"],
        "{}",
        text(&follow)
    );
    let err = agora(&["logs", "talk", "--stderr", "--master", &m]);
    assert!(err.status.success(), "{}", text(&err));
    assert!(
        String::from_utf8_lossy(&err.stdout).starts_with("warn-1\nwarn-2\n"),
        "{}",
        text(&err)
    );
    // Without -f: what is there now, while the task goes on running.
    let now = agora(&["logs", "sleeper", "--master", &m]);
    assert!(now.status.success(), "{}", text(&now));
    assert_eq!(String::from_utf8_lossy(&now.stdout), "started\n");
    let none = agora(&["logs", "nobody", "--master", &m]);
    assert_eq!(none.status.code(), Some(2), "{}", text(&none));

    // The event stream saw both tasks added and the talker finish.
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    let finished = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            break false;
        };
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        seen.push(v.clone());
        let s = v.to_string();
        if v["event"] == "task_updated" && s.contains("talker") && s.contains("FINISHED") {
            break true;
        }
    };
    let _ = events.kill();
    let _ = events.wait();
    assert!(finished, "no FINISHED for the talker in: {seen:?}");
    assert!(
        seen.iter()
            .any(|v| v["event"] == "task_added" && v.to_string().contains("sleeper")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .all(|v| ["task_added", "task_updated"].contains(&v["event"].as_str().unwrap_or(""))),
        "only the kinds asked for: {seen:?}"
    );
}
