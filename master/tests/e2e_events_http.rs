//! End-to-end: `GET /api/v1/events`, the operator event stream as server-sent events,
//! against real master and agent processes: the snapshot first, then stats, framework,
//! task and agent (maintenance) events; filters; bad filters answered 400.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use agora_views::events::{SseDecoder, SseFrame};
use serde_json::Value;
use support::*;

/// A blocking SSE reader over HTTP/1.0 (no chunked encoding: the body runs to the close).
struct SseClient {
    stream: TcpStream,
    decoder: SseDecoder,
    pending: std::collections::VecDeque<SseFrame>,
}

impl SseClient {
    fn open(addr: SocketAddr, path: &str) -> (u16, SseClient, String) {
        let mut stream =
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("request");
        let mut head = Vec::new();
        let deadline = Instant::now() + WAIT;
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert!(Instant::now() < deadline, "no response head");
            match stream.read(&mut byte) {
                Ok(0) => break,
                Ok(_) => head.push(byte[0]),
                Err(_) => continue,
            }
        }
        let head = String::from_utf8_lossy(&head).to_string();
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (
            code,
            SseClient {
                stream,
                decoder: SseDecoder::default(),
                pending: Default::default(),
            },
            head,
        )
    }

    /// The next frame, or `None` at the end of the stream or after `WAIT` without one.
    fn next(&mut self) -> Option<SseFrame> {
        let deadline = Instant::now() + WAIT;
        let mut buf = [0u8; 16 * 1024];
        while self.pending.is_empty() {
            if Instant::now() > deadline {
                return None;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self
                    .pending
                    .extend(self.decoder.push(&buf[..n]).expect("decodable")),
                Err(_) => continue,
            }
        }
        self.pending.pop_front()
    }

    /// Read until `pred` holds for a frame; returns it and the frames read before it.
    fn until(
        &mut self,
        cluster: &Cluster,
        what: &str,
        pred: impl Fn(&str, &Value) -> bool,
    ) -> (Value, Vec<SseFrame>) {
        let mut before = Vec::new();
        let deadline = Instant::now() + WAIT;
        loop {
            let frame = self.next().filter(|_| Instant::now() < deadline);
            let Some(frame) = frame else {
                panic!(
                    "stream ended or silent before {what}; read {before:?}\n{}",
                    cluster.logs()
                );
            };
            let v: Value = serde_json::from_str(&frame.data).expect("JSON data");
            if pred(&frame.event, &v) {
                return (v, before);
            }
            before.push(frame);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_stats_then_framework_task_and_maintenance_events() {
    let cluster = Cluster::start_with(1, &[]);
    let agent_id = cluster.state()["agents"][0]["id"]
        .as_str()
        .expect("agent id")
        .to_string();
    let addr = cluster.addr;
    let (code, mut all, head) = SseClient::open(addr, "/api/v1/events?stats_interval_ms=500");
    assert_eq!(code, 200, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("text/event-stream"),
        "{head}"
    );
    let first = all.next().expect("a first event");
    assert_eq!(first.event, "snapshot");
    let snapshot: Value = serde_json::from_str(&first.data).expect("JSON");
    assert_eq!(snapshot["agents"][0]["id"], agent_id.as_str());
    let stats = all.next().expect("stats");
    assert_eq!(stats.event, "stats");
    let stats: Value = serde_json::from_str(&stats.data).expect("JSON");
    assert_eq!(stats["agents"]["registered"], 1, "{stats}");
    assert_eq!(stats["resources"]["cpus"]["total"], 4.0, "{stats}");

    // A filtered stream: tasks only, no snapshot, no periodic stats.
    let (code, mut tasks_only, _) = SseClient::open(
        addr,
        "/api/v1/events?snapshot=false&types=task_added,task_updated&stats_interval_ms=0",
    );
    assert_eq!(code, 200);

    let mut fw = Framework::subscribe(addr, "sse-events").await;
    let offer = fw.wait_offers(1).await.remove(0);
    fw.accept(
        vec![offer.id],
        vec![launch(vec![shell_task(
            "sse",
            "cpus:1;mem:32",
            "sleep 600",
        )])],
        None,
    )
    .await
    .expect("accept");
    // The framework acknowledges STARTING before the agent sends RUNNING.
    fw.wait_for("sse RUNNING", |s| {
        s.get("sse")
            .is_some_and(|x| state_of(x) == agora_proto::TaskState::Running)
    })
    .await;
    // Blocking reads from here on: the framework is only driven by its awaits.
    let (added, _) = all.until(&cluster, "framework_added", |e, v| {
        e == "framework_added" && v["id"] == fw.id.as_str()
    });
    assert_eq!(added["name"], "sse-events");
    let (running, before) = tasks_only.until(&cluster, "the task running", |e, v| {
        e == "task_updated" && v["task_id"] == "sse" && v["state"] == "RUNNING"
    });
    assert_eq!(running["agent_id"], agent_id.as_str());
    assert_eq!(running["status"]["state"], "RUNNING");
    assert_eq!(
        before.first().map(|f| f.event.as_str()),
        Some("task_added"),
        "the task's addition comes first: {before:?}"
    );
    assert!(
        before.iter().all(|f| f.event.starts_with("task_")),
        "only the chosen types: {before:?}"
    );

    // A drain shows on the stream as the agent's update.
    let (code, body) = http_request(
        addr,
        "POST",
        &format!("/api/v1/agents/{agent_id}/drain"),
        Some(r#"{"grace_period_seconds": 30}"#),
    )
    .expect("drain");
    assert_eq!(code, 200, "{body}");
    let (draining, seen) = all.until(&cluster, "the agent draining", |e, v| {
        e == "agent_updated" && v["id"] == agent_id.as_str() && v["status"] == "draining"
    });
    assert_eq!(draining["hostname"], "e2e-agent-0");
    assert!(
        seen.iter().all(|f| f.event != "snapshot"),
        "one snapshot only"
    );
    // The periodic stats follow: draining, or drained (deactivated) once its task ended.
    all.until(&cluster, "stats showing the drain", |e, v| {
        e == "stats"
            && v["agents"]["registered"].is_null()
            && !v["agents"].as_object().is_some_and(|a| a.is_empty())
    });
    drop(tasks_only);
    drop(fw);
}

#[test]
fn bad_filters_are_refused_with_json() {
    let cluster = Cluster::start(0);
    for (query, needle) in [
        ("types=tasks", "unknown event type 'tasks'"),
        ("stats_interval_ms=1", "stats_interval_ms 1"),
        ("snapshot=perhaps", "invalid query"),
        ("colour=blue", "invalid query"),
        ("agent_id=..%2F", "agent id"),
    ] {
        let (code, body) = http_get(cluster.addr, &format!("/api/v1/events?{query}")).expect("GET");
        assert_eq!(code, 400, "{query}: {body}");
        let v: Value = serde_json::from_str(&body).expect("JSON");
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains(needle)),
            "{query}: {body}"
        );
        assert_eq!(v["code"], "INVALID_ARGUMENT");
    }
}

/// The master's sandbox proxy: browse, tail, read and download a task's files on its
/// agent; refusals for unknown tasks, bad operations and agents without `--listen`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_files_through_the_master() {
    let mut cluster = Cluster::start(0);
    let listen = format!("127.0.0.1:{}", free_port());
    cluster.add_agent_with(0, &["--listen", &listen, "--isolation", "process"]);
    cluster.wait_agents(1);
    let mut fw = Framework::subscribe(cluster.addr, "sandbox-proxy").await;
    let offer = fw.wait_offers(1).await.remove(0);
    fw.accept(
        vec![offer.id],
        vec![launch(vec![shell_task(
            "out",
            // The whole agent: the second task can only go to the second agent.
            "cpus:4;mem:32",
            "echo hello; echo line2; sleep 600",
        )])],
        None,
    )
    .await
    .expect("accept");
    fw.wait_for("out RUNNING", |s| {
        s.get("out")
            .is_some_and(|x| state_of(x) == agora_proto::TaskState::Running)
    })
    .await;
    let base = format!("/api/v1/tasks/{}/out/files", fw.id);
    let master = cluster.addr;
    let get = |path: String| {
        let (code, body) = http_get(master, &path).expect("GET");
        (code, body)
    };
    // The output is written by then or moments later.
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, body) = get(format!("{base}/tail?path=stdout&bytes=6"));
        if (code, body.as_str()) == (200, "line2\n") {
            break;
        }
        assert!(Instant::now() < deadline, "tail: {code} {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, body) = get(format!("{base}/browse"));
    assert_eq!(code, 200, "{body}");
    let listing: Value = serde_json::from_str(&body).expect("JSON");
    assert!(
        listing
            .as_array()
            .is_some_and(|l| l.iter().any(|e| e["name"] == "stdout")),
        "{body}"
    );
    let (code, body) = get(format!("{base}/read?path=stdout&offset=-1"));
    assert_eq!(code, 200, "{body}");
    let size: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(size["offset"], 12);
    let (_, body) = get(format!("{base}/read?path=stdout&offset=0&length=5"));
    let part: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        (part["data"].as_str(), part["next_offset"].as_u64()),
        (Some("hello"), Some(5))
    );
    let (code, body) = get(format!("{base}/download?path=stdout"));
    assert_eq!((code, body.as_str()), (200, "hello\nline2\n"));

    for (path, want, needle) in [
        (
            format!("{base}/download?path=../../etc/passwd"),
            403,
            "agent:",
        ),
        (format!("{base}/download?path=missing"), 404, "agent:"),
        (
            format!("{base}/delete?path=stdout"),
            404,
            "no file operation",
        ),
        (format!("{base}/browse?bytes=3"), 400, "does not apply"),
        (format!("{base}/read?offset=x"), 400, "invalid query"),
        (
            format!("/api/v1/tasks/{}/nope/files/browse", fw.id),
            404,
            "unknown task",
        ),
    ] {
        let (code, body) = get(path.clone());
        assert_eq!(code, want, "{path}: {body}");
        let v: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains(needle)),
            "{path}: {body}"
        );
    }

    // An agent without --listen serves no files: the master says so.
    cluster.add_agent_with(1, &["--isolation", "process"]);
    cluster.wait_agents(2);
    let offer = fw.wait_offers(1).await.remove(0);
    fw.accept(
        vec![offer.id],
        vec![launch(vec![shell_task(
            "quiet",
            "cpus:1;mem:32",
            "sleep 600",
        )])],
        None,
    )
    .await
    .expect("accept");
    fw.wait_for("quiet RUNNING", |s| {
        s.get("quiet")
            .is_some_and(|x| state_of(x) == agora_proto::TaskState::Running)
    })
    .await;
    let (code, body) = get(format!("/api/v1/tasks/{}/quiet/files/browse", fw.id));
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("--listen"), "{body}");
}

/// `/api/v1/agents` filters and pages, with the total in `X-Total-Count`; the UI page and
/// the event stream ask a master with `--authenticate-http` for Basic credentials.
#[test]
fn agent_pages_and_the_ui_behind_authentication() {
    let dir = TempDir::new("ui-auth");
    let creds = dir.0.join("credentials.json");
    std::fs::write(&creds, r#"[{"principal": "ops", "secret": "pw"}]"#).expect("write");
    let auth = agora_proto::auth::Credential {
        principal: "ops".into(),
        secret: "pw".into(),
    }
    .to_header();
    let creds_flag = creds.display().to_string();
    let cluster = Cluster::start_in(
        dir,
        2,
        &["--credentials", &creds_flag, "--authenticate-http"],
        Some(auth.clone()),
        &["--isolation", "process"],
    );
    let with = [("authorization", auth.as_str())];
    let get = |path: &str, headers: &[(&str, &str)]| {
        http_request_with(cluster.addr, "GET", path, None, headers).expect("GET")
    };
    for path in ["/", "/ui/app.js", "/api/v1/events"] {
        let (code, body) = get(path, &[]);
        assert_eq!(code, 401, "{path}: {body}");
    }
    // The header that makes a browser ask.
    let mut s = TcpStream::connect(cluster.addr).expect("connect");
    write!(s, "GET / HTTP/1.0\r\n\r\n").expect("request");
    let mut head = String::new();
    let _ = s.read_to_string(&mut head);
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: basic"),
        "{head}"
    );
    let (code, page) = get("/", &with);
    assert_eq!(code, 200);
    assert!(page.contains("/ui/app.js"), "{page}");
    let (code, body) = get("/ui/nope.js", &with);
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("no UI file"), "{body}");

    let (code, body) = get("/api/v1/agents?limit=1&offset=1", &with);
    assert_eq!(code, 200, "{body}");
    let page: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(page.as_array().map(Vec::len), Some(1), "{body}");
    let (_, all) = get("/api/v1/agents", &with);
    let all: Value = serde_json::from_str(&all).expect("JSON");
    assert_eq!(page[0], all[1], "the second agent in id order");
    let (_, one) = get("/api/v1/agents?hostname=agent-1&status=registered", &with);
    let one: Value = serde_json::from_str(&one).expect("JSON");
    assert_eq!(one.as_array().map(Vec::len), Some(1));
    assert_eq!(one[0]["hostname"], "e2e-agent-1");
    let (code, body) = get("/api/v1/agents?colour=red", &with);
    assert_eq!(code, 400, "{body}");
}
