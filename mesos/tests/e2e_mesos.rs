//! End-to-end: Mesos's v1 scheduler API and read-only endpoints against a real
//! `agora-master` and real agents.
//!
//! Tests named `needs_python` run a framework written with pymesos (a third-party Mesos
//! client library from PyPI, installed by `scripts/mesos-py-env.sh` into a venv whose
//! python `AGORA_MESOS_PYTHON` names); `scripts/test.sh` filters them out, so they show as
//! skipped, where that venv cannot be built. They assert, never return early.

#[path = "../../master/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use agora_mesos::schema::scheduler::{self as s, CallType, EventType};
use agora_mesos::schema::v1 as m;
use agora_mesos::translate::Id;
use agora_mesos::{Format, recordio};
use serde_json::Value;
use support::{Cluster, WAIT, get_raw, http_get, http_request_with};

/// One HTTP/1.1 request; answers the status, the headers (lowercase names) and a reader
/// positioned at the body.
fn request(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, BufReader<TcpStream>) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .expect("write");
    s.write_all(body).expect("write body");
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let code = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut hs = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).expect("header");
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            hs.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    (code, hs, r)
}

fn header<'a>(hs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    hs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The whole (non-streaming) body as text.
fn body_text(hs: &[(String, String)], mut r: BufReader<TcpStream>) -> String {
    let mut raw = Vec::new();
    if header(hs, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        while let Some(chunk) = read_chunk(&mut r) {
            raw.extend(chunk);
        }
    } else {
        let _ = r.read_to_end(&mut raw);
    }
    String::from_utf8_lossy(&raw).to_string()
}

fn read_chunk(r: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let n = usize::from_str_radix(line.trim(), 16).ok()?;
    if n == 0 {
        return None;
    }
    let mut buf = vec![0; n + 2];
    r.read_exact(&mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// A subscription's event stream, decoded from RecordIO.
struct Events {
    r: BufReader<TcpStream>,
    decoder: recordio::Decoder,
    pending: std::collections::VecDeque<Vec<u8>>,
    format: Format,
}

impl Events {
    fn next(&mut self) -> s::Event {
        loop {
            if let Some(rec) = self.pending.pop_front() {
                return self.format.decode(&rec).expect("an event");
            }
            let chunk = read_chunk(&mut self.r).expect("the stream goes on");
            self.pending
                .extend(self.decoder.feed(&chunk).expect("RecordIO"));
        }
    }

    fn next_of(&mut self, t: EventType) -> s::Event {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let e = self.next();
            if e.r#type == Some(t as i32) {
                return e;
            }
        }
        panic!("no {t:?} event");
    }
}

fn subscribe(addr: SocketAddr, format: Format, name: &str) -> (String, String, Events) {
    let call = s::Call {
        r#type: CallType::SUBSCRIBE.n(),
        subscribe: Some(s::Subscribe {
            framework_info: Some(m::FrameworkInfo {
                user: Some(String::new()),
                name: Some(name.into()),
                ..Default::default()
            }),
            suppressed_roles: vec![],
        }),
        ..Default::default()
    };
    let ct = format.content_type();
    let (code, hs, r) = request(
        addr,
        "/api/v1/scheduler",
        &[("Content-Type", ct), ("Accept", ct)],
        &format.encode(&call),
    );
    assert_eq!(code, 200, "{}", body_text(&hs, r));
    assert_eq!(header(&hs, "content-type"), Some(ct));
    let stream_id = header(&hs, "mesos-stream-id")
        .expect("Mesos-Stream-Id")
        .to_string();
    let mut events = Events {
        r,
        decoder: recordio::Decoder::new(),
        pending: Default::default(),
        format,
    };
    let first = events.next();
    assert_eq!(
        first.r#type,
        Some(EventType::SUBSCRIBED as i32),
        "{first:?}"
    );
    let sub = first.subscribed.expect("subscribed");
    assert!(sub.heartbeat_interval_seconds.unwrap_or(0.0) > 0.0);
    let id = sub.framework_id.expect("framework id").text().to_string();
    (id, stream_id, events)
}

fn call(addr: SocketAddr, format: Format, stream: &str, c: &s::Call) -> (u16, String) {
    let ct = format.content_type();
    let (code, hs, r) = request(
        addr,
        "/api/v1/scheduler",
        &[("Content-Type", ct), ("Mesos-Stream-Id", stream)],
        &format.encode(c),
    );
    (code, body_text(&hs, r))
}

fn framework_call(fid: &str, t: CallType) -> s::Call {
    s::Call {
        framework_id: Some(m::FrameworkId::of(fid)),
        r#type: t.n(),
        ..Default::default()
    }
}

/// What `/master/frameworks` says of framework `fid`: "active", "inactive", or "gone"
/// (torn down frameworks are not listed).
fn framework_status(c: &Cluster, fid: &str) -> String {
    let (code, body) = http_get(c.addr, "/master/frameworks").expect("GET /master/frameworks");
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    v["frameworks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["id"] == fid)
        .map(|f| {
            if f["active"] == true {
                "active"
            } else {
                "inactive"
            }
        })
        .unwrap_or("gone")
        .to_string()
}

#[test]
fn protobuf_scheduler_subscribes_declines_launches_and_tears_down() {
    let c = Cluster::start(1);
    let f = Format::Protobuf;
    let (fid, stream, mut events) = subscribe(c.addr, f, "proto-fw");
    let offers = events
        .next_of(EventType::OFFERS)
        .offers
        .expect("offers")
        .offers;
    let offer = &offers[0];
    assert!(
        offer
            .resources
            .iter()
            .any(|r| r.name.as_deref() == Some("cpus")
                && r.scalar.as_ref().and_then(|s| s.value) == Some(4.0))
    );
    assert_eq!(
        offer
            .allocation_info
            .as_ref()
            .and_then(|a| a.role.as_deref()),
        Some("*")
    );
    // Launch a task in protobuf, see it run and finish, acknowledging each update.
    let task = m::TaskInfo {
        name: Some("p".into()),
        task_id: Some(m::TaskId::of("proto-task")),
        agent_id: offer.agent_id.clone(),
        resources: vec![m::Resource {
            name: Some("cpus".into()),
            r#type: m::ValueType::SCALAR.n(),
            scalar: Some(m::Scalar { value: Some(0.5) }),
            ..Default::default()
        }],
        command: Some(m::CommandInfo {
            value: Some("true".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let accept = s::Call {
        accept: Some(s::Accept {
            offer_ids: vec![offer.id.clone().expect("offer id")],
            operations: vec![m::Operation {
                r#type: m::OperationType::LAUNCH.n(),
                launch: Some(m::Launch {
                    task_infos: vec![task],
                }),
                ..Default::default()
            }],
            filters: None,
        }),
        ..framework_call(&fid, CallType::ACCEPT)
    };
    assert_eq!(call(c.addr, f, &stream, &accept), (202, String::new()));
    let mut seen = Vec::new();
    while !seen.contains(&(m::TaskState::TASK_FINISHED as i32)) {
        let e = events.next_of(EventType::UPDATE);
        let st = e.update.and_then(|u| u.status).expect("status");
        seen.push(st.state.expect("state"));
        let ack = s::Call {
            acknowledge: Some(s::Acknowledge {
                agent_id: st.agent_id.clone(),
                task_id: st.task_id.clone(),
                uuid: st.uuid.clone(),
            }),
            ..framework_call(&fid, CallType::ACKNOWLEDGE)
        };
        assert_eq!(call(c.addr, f, &stream, &ack).0, 202);
    }
    assert!(
        seen.contains(&(m::TaskState::TASK_RUNNING as i32)),
        "{seen:?}"
    );
    // Calls with nothing to change are accepted; operation feedback is not supported.
    let req = framework_call(&fid, CallType::REQUEST);
    assert_eq!(call(c.addr, f, &stream, &req).0, 202);
    let (code, msg) = call(
        c.addr,
        f,
        &stream,
        &framework_call(&fid, CallType::RECONCILE_OPERATIONS),
    );
    assert_eq!(code, 501, "{msg}");
    // TEARDOWN removes the framework.
    assert_eq!(
        call(
            c.addr,
            f,
            &stream,
            &framework_call(&fid, CallType::TEARDOWN)
        )
        .0,
        202
    );
    c.wait_until("framework torn down", |_| {
        framework_status(&c, &fid) == "gone"
    });
}

#[test]
fn bad_input_gets_mesos_status_codes_and_changes_nothing() {
    let c = Cluster::start(1);
    let (fid, stream, mut events) = subscribe(c.addr, Format::Json, "bad-input-fw");
    let offer = events
        .next_of(EventType::OFFERS)
        .offers
        .expect("offers")
        .offers[0]
        .clone();
    let oid = offer.id.expect("offer id").text().to_string();
    let post = |headers: &[(&str, &str)], body: &str| {
        let (code, hs, r) = request(c.addr, "/api/v1/scheduler", headers, body.as_bytes());
        (code, body_text(&hs, r))
    };
    let json = ("Content-Type", "application/json");
    let sid = ("Mesos-Stream-Id", stream.as_str());
    let launch = format!(
        r#"{{"type":"ACCEPT","framework_id":{{"value":"{fid}"}},"accept":{{"offer_ids":[{{"value":"{oid}"}}],
        "operations":[{{"type":"LAUNCH","launch":{{"task_infos":[{{"name":"t","task_id":{{"value":"bad-1"}},
        "agent_id":{{"value":"{}"}},"resources":[{{"name":"cpus","type":"SCALAR","scalar":{{"value":0.1}}}}],
        "command":{{"value":"sleep 30"}}}}]}}}}]}}}}"#,
        offer.agent_id.expect("agent").text()
    );
    // (headers, body, expected status, a part of the expected message)
    type Case<'a> = (Vec<(&'a str, &'a str)>, String, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![json, sid],
            "{not json".into(),
            400,
            "Failed to parse body into JSON",
        ),
        (
            vec![json, sid],
            launch.replace("RecordIO", "").replacen('{', "[", 1),
            400,
            "JSON",
        ),
        (
            vec![("Content-Type", "text/plain"), sid],
            launch.clone(),
            415,
            "Content-Type",
        ),
        (
            vec![json, sid, ("Accept", "text/html")],
            launch.clone(),
            406,
            "Accept",
        ),
        (vec![json], launch.clone(), 400, "Mesos-Stream-Id"),
        (
            vec![json, ("Mesos-Stream-Id", "not-the-stream")],
            launch.clone(),
            400,
            "didn't match",
        ),
        (
            vec![json, sid],
            launch.replace("\"ACCEPT\"", "\"LAUNCH_ROCKETS\""),
            400,
            "unknown CallType value 'LAUNCH_ROCKETS'",
        ),
        (
            vec![json, sid],
            launch.replace("{\"value\":0.1}", "{\"value\":\"lots\"}"),
            400,
            "scalar.value",
        ),
        (
            vec![json, sid],
            launch.replace("\"cpus\"", "7"),
            400,
            "resources[0].name",
        ),
        (
            vec![json, sid],
            launch.replace(
                &format!("\"value\":\"{fid}\""),
                "\"value\":\"someone-else\"",
            ),
            403,
            "not subscribed",
        ),
        (
            vec![json, sid],
            r#"{"framework_id":{"value":"x"}}"#.into(),
            400,
            "Expecting 'type'",
        ),
    ];
    for (headers, body, code, needle) in cases {
        let (got, msg) = post(&headers, &body);
        assert_eq!(got, code, "{headers:?} {body}: {msg}");
        assert!(
            msg.contains(needle),
            "{headers:?}: '{msg}' lacks '{needle}'"
        );
    }
    // A protobuf body that does not decode.
    let (got, msg) = post(
        &[("Content-Type", "application/x-protobuf"), sid],
        "\u{7f}\u{7f}\u{7f}",
    );
    assert_eq!(got, 400, "{msg}");
    // Nothing changed: no task, the offer is still good, the framework still subscribed.
    assert!(
        c.state()["tasks"].as_array().is_none_or(|t| t.is_empty()),
        "{}",
        c.state()
    );
    assert_eq!(framework_status(&c, &fid), "active");
    assert_eq!(post(&[json, sid], &launch).0, 202);
    c.wait_until("the launch after the refusals", |s| {
        s["tasks"].as_array().is_some_and(|t| t.len() == 1)
    });
}

fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (code, body) = http_get(addr, path).expect("GET");
    assert_eq!(code, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

#[test]
fn read_only_endpoints_answer_in_mesos_shapes() {
    let c = Cluster::start(2);
    let (fid, _stream, mut events) = subscribe(c.addr, Format::Json, "endpoints-fw");
    events.next_of(EventType::OFFERS);
    for path in ["/master/state", "/state"] {
        let st = get_json(c.addr, path);
        let slaves = st["slaves"].as_array().expect("slaves");
        assert_eq!(slaves.len(), 2, "{st}");
        assert_eq!(slaves[0]["resources"]["cpus"], 4.0, "{st}");
        assert_eq!(slaves[0]["resources"]["ports"], "[31000-31099]", "{st}");
        assert_eq!(slaves[0]["active"], true);
        assert_eq!(st["frameworks"][0]["id"], fid.as_str());
        assert_eq!(st["frameworks"][0]["roles"][0], "*");
        assert_eq!(st["activated_slaves"], 2);
    }
    let summary = get_json(c.addr, "/master/state-summary");
    assert_eq!(summary["slaves"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        get_json(c.addr, "/master/frameworks")["frameworks"][0]["name"],
        "endpoints-fw"
    );
    assert_eq!(
        get_json(c.addr, "/master/slaves")["slaves"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert!(
        get_json(c.addr, "/master/tasks")["tasks"]
            .as_array()
            .is_some()
    );
    assert!(
        get_json(c.addr, "/master/roles")["roles"]
            .as_array()
            .is_some()
    );
    let metrics = get_json(c.addr, "/metrics/snapshot");
    assert_eq!(metrics["master/cpus_total"], 8.0, "{metrics}");
    assert_eq!(metrics["master/slaves_active"], 2, "{metrics}");
    assert_eq!(metrics["master/frameworks_active"], 1, "{metrics}");
    assert_eq!(get_json(c.addr, "/version")["version"], "1.11.0");
    for path in ["/master/redirect", "/redirect"] {
        let (code, hs, _) = get_raw(c.addr, path);
        assert_eq!(code, 307, "{hs}");
        assert!(
            hs.to_ascii_lowercase()
                .contains(&format!("location: http://{}", c.addr)),
            "{hs}"
        );
    }
    let (code, body) =
        http_request_with(c.addr, "GET", "/master/tasks?order=sideways", None, &[]).expect("GET");
    assert_eq!(code, 400, "{body}");
}

/// pymesos tore the framework of `report` down when it stopped.
fn wait_torn_down(c: &Cluster, report: &Value) {
    let fid = report["framework_id"].as_str().expect("framework id");
    c.wait_until("framework torn down", |_| {
        framework_status(c, fid) == "gone"
    });
}

/// The venv python `scripts/mesos-py-env.sh` made (`AGORA_MESOS_PYTHON`, or the default
/// place under `target/`).
fn python() -> PathBuf {
    let p = std::env::var_os("AGORA_MESOS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/mesos-py/bin/python")
        });
    assert!(
        p.exists(),
        "{} is missing: run scripts/mesos-py-env.sh (scripts/test.sh does)",
        p.display()
    );
    p
}

fn py_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(name)
}

/// Runs `framework.py` against the cluster; answers its report.
fn run_pymesos_framework(c: &Cluster, args: &[&str]) -> Value {
    let out = Command::new(python())
        .arg(py_script("framework.py"))
        .arg(c.addr.to_string())
        .args(args)
        .output()
        .expect("run framework.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "framework.py failed ({}):\n{stdout}\n{stderr}\n{}",
        out.status,
        c.logs()
    );
    let last = stdout.lines().last().unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("report {e}: {stdout}\n{stderr}"))
}

#[test]
fn needs_python_pymesos_framework_runs_tasks_to_finished() {
    let c = Cluster::start(2);
    let report = run_pymesos_framework(&c, &["--tasks", "3"]);
    let states = report["states"].as_object().expect("states");
    assert_eq!(states.len(), 3, "{report}");
    for (task, seen) in states {
        let seen: Vec<&str> = seen
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        assert!(seen.contains(&"TASK_RUNNING"), "{task}: {seen:?}");
        assert_eq!(seen.last(), Some(&"TASK_FINISHED"), "{task}: {seen:?}");
    }
    assert_eq!(
        report["reconciled"].as_array().map(Vec::len),
        Some(3),
        "{report}"
    );
    // pymesos acknowledged every update (the agents forget them) and tore the framework down.
    wait_torn_down(&c, &report);
}

#[test]
fn needs_python_pymesos_executor_runs_tasks_over_the_executor_api() {
    let dir = support::TempDir::new("mesos-exec");
    let listen = format!("127.0.0.1:{}", support::free_port());
    let agent_flags = [
        "--listen",
        listen.as_str(),
        "--mesos-executors-without-token",
        "--allow-root-tasks",
    ];
    let c = Cluster::start_in(dir, 1, &[], None, &agent_flags);
    let executor = py_script("executor.py");
    let executor = executor.to_str().expect("utf-8 path");
    let report = run_pymesos_framework(&c, &["--tasks", "2", "--executor", executor]);
    let states = report["states"].as_object().expect("states");
    assert_eq!(states.len(), 2, "{report}");
    for (task, seen) in states {
        let seen: Vec<&str> = seen
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(seen, ["TASK_RUNNING", "TASK_FINISHED"], "{task}: {report}");
    }
    // The executor's framework messages came through the agent and the master.
    let mut messages: Vec<&str> = report["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    messages.sort();
    assert_eq!(
        messages,
        ["aGVsbG8gZnJvbSB0YXNrIDA=", "aGVsbG8gZnJvbSB0YXNrIDE="],
        "{report}"
    );
    assert_eq!(
        report["reconciled"].as_array().map(Vec::len),
        Some(2),
        "{report}"
    );
    // The executor wrote into its MESOS_SANDBOX; it is shut down with the framework.
    wait_torn_down(&c, &report);
    let sandboxes = c.dir.0.join("agent-0");
    let found = find_file(&sandboxes, "py-task-1.out").unwrap_or_else(|| {
        panic!(
            "no py-task-1.out under {}\n{}",
            sandboxes.display(),
            c.logs()
        )
    });
    assert_eq!(std::fs::read(found).expect("read"), b"hello from task 1");
}

fn find_file(dir: &std::path::Path, name: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
        if p.is_dir()
            && !p.is_symlink()
            && let Some(f) = find_file(&p, name)
        {
            return Some(f);
        }
    }
    None
}

fn json_call(c: &Cluster, stream: &str, body: &str) -> (u16, String) {
    let (code, hs, r) = request(
        c.addr,
        "/api/v1/scheduler",
        &[
            ("Content-Type", "application/json"),
            ("Mesos-Stream-Id", stream),
        ],
        body.as_bytes(),
    );
    (code, body_text(&hs, r))
}

fn next_update(events: &mut Events) -> m::TaskStatus {
    events
        .next_of(EventType::UPDATE)
        .update
        .and_then(|u| u.status)
        .expect("status")
}

#[test]
fn json_kill_reconcile_suppress_revive_and_update_framework() {
    let c = Cluster::start(1);
    let (fid, stream, mut events) = subscribe(c.addr, Format::Json, "calls-fw");
    let offer = events
        .next_of(EventType::OFFERS)
        .offers
        .expect("offers")
        .offers[0]
        .clone();
    let aid = offer.agent_id.expect("agent").text().to_string();
    let oid = offer.id.expect("offer").text().to_string();
    let launch = format!(
        r#"{{"type":"ACCEPT","framework_id":{{"value":"{fid}"}},"accept":{{"offer_ids":[{{"value":"{oid}"}}],
        "operations":[{{"type":"LAUNCH","launch":{{"task_infos":[{{"name":"sleeper","task_id":{{"value":"sleeper"}},
        "agent_id":{{"value":"{aid}"}},"resources":[{{"name":"cpus","type":"SCALAR","scalar":{{"value":0.2}}}}],
        "command":{{"shell":false,"value":"sleep","arguments":["sleep","60"]}}}}]}}}}]}}}}"#
    );
    assert_eq!(json_call(&c, &stream, &launch), (202, String::new()));
    let ack = |c: &Cluster, st: &m::TaskStatus| {
        let Some(uuid) = &st.uuid else { return };
        let body = serde_json::json!({
            "type": "ACKNOWLEDGE", "framework_id": {"value": fid},
            "acknowledge": {"agent_id": {"value": aid}, "task_id": {"value": "sleeper"},
                "uuid": base64_of(uuid)}
        });
        assert_eq!(json_call(c, &stream, &body.to_string()).0, 202);
    };
    loop {
        let st = next_update(&mut events);
        ack(&c, &st);
        if st.state == Some(m::TaskState::TASK_RUNNING as i32) {
            break;
        }
    }
    // Implicit reconciliation answers with the task's latest state, no uuid to acknowledge.
    let reconcile =
        format!(r#"{{"type":"RECONCILE","framework_id":{{"value":"{fid}"}},"reconcile":{{}}}}"#);
    assert_eq!(json_call(&c, &stream, &reconcile).0, 202);
    let st = next_update(&mut events);
    assert_eq!(
        st.reason,
        Some(m::TaskStatusReason::REASON_RECONCILIATION as i32),
        "{st:?}"
    );
    assert_eq!(st.state, Some(m::TaskState::TASK_RUNNING as i32));
    assert!(st.uuid.is_none());
    // SUPPRESS, REVIVE and UPDATE_FRAMEWORK reach the service layer.
    for t in ["SUPPRESS", "REVIVE"] {
        let body = format!(r#"{{"type":"{t}","framework_id":{{"value":"{fid}"}}}}"#);
        assert_eq!(json_call(&c, &stream, &body).0, 202, "{t}");
    }
    let update = format!(
        r#"{{"type":"UPDATE_FRAMEWORK","framework_id":{{"value":"{fid}"}},"update_framework":{{
        "framework_info":{{"id":{{"value":"{fid}"}},"name":"renamed-fw","user":""}}}}}}"#
    );
    assert_eq!(json_call(&c, &stream, &update), (202, String::new()));
    c.wait_until("the new name", |_| {
        get_json(c.addr, "/master/frameworks")["frameworks"][0]["name"] == "renamed-fw"
    });
    // A kill for an unknown task is answered as Mesos does, with an update; KILL ends ours.
    let kill = format!(
        r#"{{"type":"KILL","framework_id":{{"value":"{fid}"}},"kill":{{"task_id":{{"value":"sleeper"}},"agent_id":{{"value":"{aid}"}}}}}}"#
    );
    assert_eq!(json_call(&c, &stream, &kill).0, 202);
    loop {
        let st = next_update(&mut events);
        ack(&c, &st);
        let s = st.state.unwrap_or(-1);
        if s == m::TaskState::TASK_KILLED as i32 {
            break;
        }
        assert!(
            [
                m::TaskState::TASK_KILLING as i32,
                m::TaskState::TASK_RUNNING as i32
            ]
            .contains(&s),
            "{st:?}"
        );
    }
    // MESSAGE is fire-and-forget, as in Mesos (accepted, then dropped by the agent);
    // SHUTDOWN on an agent that does not exist is refused.
    let msg = format!(
        r#"{{"type":"MESSAGE","framework_id":{{"value":"{fid}"}},"message":{{"agent_id":{{"value":"{aid}"}},"executor_id":{{"value":"nope"}},"data":"aGk="}}}}"#
    );
    assert_eq!(json_call(&c, &stream, &msg).0, 202);
    let shutdown = format!(
        r#"{{"type":"SHUTDOWN","framework_id":{{"value":"{fid}"}},"shutdown":{{"agent_id":{{"value":"no-such-agent"}},"executor_id":{{"value":"nope"}}}}}}"#
    );
    let (code, text) = json_call(&c, &stream, &shutdown);
    assert!((400..500).contains(&code), "{code} {text}");
    assert!(!text.is_empty());
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn executor_api_refuses_bad_calls_with_mesos_codes() {
    let dir = support::TempDir::new("mesos-exec-bad");
    let listen: SocketAddr = format!("127.0.0.1:{}", support::free_port())
        .parse()
        .expect("addr");
    let listen_text = listen.to_string();
    let c = Cluster::start_in(dir, 1, &[], None, &["--listen", listen_text.as_str()]);
    let post = |headers: &[(&str, &str)], body: &str| {
        let (code, hs, r) = request(listen, "/api/v1/executor", headers, body.as_bytes());
        (code, body_text(&hs, r))
    };
    let json = ("Content-Type", "application/json");
    let subscribe = r#"{"type":"SUBSCRIBE","framework_id":{"value":"f1"},"executor_id":{"value":"e1"},"subscribe":{}}"#;
    let cases = [
        (vec![json], "{oops".to_string(), 400, "JSON"),
        (vec![("Content-Type", "text/plain")], subscribe.to_string(), 415, "Content-Type"),
        (vec![json, ("Accept", "image/png")], subscribe.to_string(), 406, "Accept"),
        (vec![json], subscribe.replace("SUBSCRIBE", "DANCE"), 400, "unknown CallType value 'DANCE'"),
        (vec![json], r#"{"type":"SUBSCRIBE","framework_id":{"value":"f1"}}"#.to_string(), 400, "executor_id"),
        (vec![json], r#"{"type":"UPDATE","framework_id":{"value":"f1"},"executor_id":{"value":"e1"},"update":{"status":{"task_id":{"value":"t"},"state":"TASK_RUNNING","uuid":"not base64!"}}}"#.to_string(), 400, "base64"),
        // An executor the agent does not run, without a token: refused before anything changes.
        (vec![json], subscribe.to_string(), 400, "not known to this agent"),
        (vec![json, ("Authorization", "Bearer wrong")], subscribe.to_string(), 400, "not known"),
    ];
    for (headers, body, code, needle) in cases {
        let (got, msg) = post(&headers, &body);
        assert_eq!(got, code, "{headers:?} {body}: {msg}");
        assert!(msg.contains(needle), "'{msg}' lacks '{needle}'");
    }
    drop(c);
}

/// A cluster of one agent serving `--listen`, a JSON framework subscribed to it, and the
/// framework's first offer.
struct OfferedAgent {
    c: Cluster,
    listen: SocketAddr,
    fid: String,
    stream: String,
    events: Events,
    aid: String,
    oid: String,
}

fn offered_agent(tag: &str, framework: &str) -> OfferedAgent {
    let dir = support::TempDir::new(tag);
    let listen: SocketAddr = format!("127.0.0.1:{}", support::free_port())
        .parse()
        .expect("addr");
    let listen_text = listen.to_string();
    let c = Cluster::start_in(dir, 1, &[], None, &["--listen", listen_text.as_str()]);
    let (fid, stream, mut events) = subscribe(c.addr, Format::Json, framework);
    let offer = events
        .next_of(EventType::OFFERS)
        .offers
        .expect("offers")
        .offers[0]
        .clone();
    OfferedAgent {
        aid: offer.agent_id.expect("agent").text().to_string(),
        oid: offer.id.expect("offer").text().to_string(),
        c,
        listen,
        fid,
        stream,
        events,
    }
}

/// A custom executor that only records its environment and waits: the test itself then
/// speaks the executor API for it, with and without its token.
#[test]
fn executor_gets_mesos_environment_and_needs_its_token() {
    let OfferedAgent {
        c,
        listen,
        fid,
        stream,
        mut events,
        aid,
        oid,
    } = offered_agent("mesos-exec-env", "env-fw");
    let listen_text = listen.to_string();
    let launch = format!(
        r#"{{"type":"ACCEPT","framework_id":{{"value":"{fid}"}},"accept":{{"offer_ids":[{{"value":"{oid}"}}],
        "operations":[{{"type":"LAUNCH","launch":{{"task_infos":[{{"name":"t","task_id":{{"value":"env-task"}},
        "agent_id":{{"value":"{aid}"}},"data":"aGk=","resources":[{{"name":"cpus","type":"SCALAR","scalar":{{"value":0.1}}}}],
        "executor":{{"type":"CUSTOM","executor_id":{{"value":"env-exec"}},
          "command":{{"value":"env > $MESOS_SANDBOX/env.txt.tmp && mv $MESOS_SANDBOX/env.txt.tmp $MESOS_SANDBOX/env.txt; sleep 60"}},
          "resources":[{{"name":"cpus","type":"SCALAR","scalar":{{"value":0.1}}}}]}}}}]}}}}]}}}}"#
    );
    assert_eq!(json_call(&c, &stream, &launch), (202, String::new()));
    let deadline = Instant::now() + WAIT;
    let env_file = loop {
        if let Some(f) = find_file(&c.dir.0.join("agent-0"), "env.txt") {
            break f;
        }
        assert!(
            Instant::now() < deadline,
            "the executor never wrote its environment\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let env: std::collections::HashMap<String, String> = std::fs::read_to_string(&env_file)
        .expect("env.txt")
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    assert_eq!(
        env.get("MESOS_AGENT_ENDPOINT"),
        Some(&listen_text),
        "{env:?}"
    );
    assert_eq!(env.get("MESOS_FRAMEWORK_ID"), Some(&fid));
    assert_eq!(
        env.get("MESOS_EXECUTOR_ID").map(String::as_str),
        Some("env-exec")
    );
    assert_eq!(env.get("MESOS_AGENT_ID"), Some(&aid));
    let sandbox = env.get("MESOS_SANDBOX").expect("MESOS_SANDBOX");
    assert_eq!(env.get("MESOS_DIRECTORY"), Some(sandbox));
    assert!(
        env_file.starts_with(sandbox),
        "{} vs {sandbox}",
        env_file.display()
    );
    let token = env
        .get("MESOS_EXECUTOR_AUTHENTICATION_TOKEN")
        .expect("token")
        .clone();
    let subscribe = format!(
        r#"{{"type":"SUBSCRIBE","framework_id":{{"value":"{fid}"}},"executor_id":{{"value":"env-exec"}},"subscribe":{{}}}}"#
    );
    let json = ("Content-Type", "application/json");
    // Without its token (the agent was not started with --mesos-executors-without-token).
    let (code, hs, r) = request(listen, "/api/v1/executor", &[json], subscribe.as_bytes());
    let text = body_text(&hs, r);
    assert_eq!(code, 401, "{text}");
    assert!(
        text.contains("MESOS_EXECUTOR_AUTHENTICATION_TOKEN"),
        "{text}"
    );
    // With another token: refused the same way.
    let (code, hs, r) = request(
        listen,
        "/api/v1/executor",
        &[json, ("Authorization", "Bearer not-the-token")],
        subscribe.as_bytes(),
    );
    let text = body_text(&hs, r);
    assert_eq!(code, 401, "{text}");
    assert!(text.contains("wrong or missing token"), "{text}");
    // With it: SUBSCRIBED, then the task.
    let bearer = format!("Bearer {token}");
    let (code, hs, r) = request(
        listen,
        "/api/v1/executor",
        &[json, ("Authorization", bearer.as_str())],
        subscribe.as_bytes(),
    );
    assert_eq!(code, 200, "{}", body_text(&hs, r));
    let mut decoder = recordio::Decoder::new();
    let mut r = r;
    let mut got: Vec<agora_mesos::schema::executor::Event> = Vec::new();
    while got.len() < 2 {
        let chunk = read_chunk(&mut r).expect("executor events");
        for rec in decoder.feed(&chunk).expect("RecordIO") {
            got.push(Format::Json.decode(&rec).expect("event"));
        }
    }
    use agora_mesos::schema::executor::EventType as X;
    assert_eq!(got[0].r#type, Some(X::SUBSCRIBED as i32), "{got:?}");
    let sub = got[0].subscribed.clone().expect("subscribed");
    assert_eq!(
        sub.framework_info
            .and_then(|f| f.id)
            .map(|i| i.text().to_string()),
        Some(fid.clone())
    );
    assert_eq!(got[1].r#type, Some(X::LAUNCH as i32), "{got:?}");
    let task = got[1].launch.clone().and_then(|l| l.task).expect("task");
    assert_eq!(
        task.task_id.map(|t| t.text().to_string()).as_deref(),
        Some("env-task")
    );
    assert_eq!(task.data.as_deref(), Some(&b"hi"[..]));
    // An update with the token reaches the framework.
    let update = format!(
        r#"{{"type":"UPDATE","framework_id":{{"value":"{fid}"}},"executor_id":{{"value":"env-exec"}},
        "update":{{"status":{{"task_id":{{"value":"env-task"}},"state":"TASK_RUNNING","source":"SOURCE_EXECUTOR",
        "uuid":"{}"}}}}}}"#,
        base64_of(uuid::Uuid::new_v4().as_bytes())
    );
    let (code, hs, r) = request(
        listen,
        "/api/v1/executor",
        &[json, ("Authorization", bearer.as_str())],
        update.as_bytes(),
    );
    assert_eq!(code, 202, "{}", body_text(&hs, r));
    let st = next_update(&mut events);
    assert_eq!(st.state, Some(m::TaskState::TASK_RUNNING as i32), "{st:?}");
    assert_eq!(st.source, Some(m::TaskStatusSource::SOURCE_EXECUTOR as i32));
}

/// `--authenticate-frameworks` covers Mesos's scheduler API: Basic credentials as Mesos
/// frameworks send them, and the framework's principal must be the caller's.
#[test]
fn mesos_schedulers_authenticate_with_basic_credentials() {
    use base64::Engine;
    let dir = support::TempDir::new("mesos-auth");
    let creds = dir.0.join("credentials.json");
    std::fs::write(
        &creds,
        r#"[{"principal": "fw", "secret": "fw-secret"}, {"principal": "other", "secret": "other-secret"}]"#,
    )
    .expect("credentials");
    let creds = creds.display().to_string();
    let c = Cluster::start_in(
        dir,
        0,
        &["--credentials", &creds, "--authenticate-frameworks"],
        None,
        &[],
    );
    let basic = |p: &str, s: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{p}:{s}"))
        )
    };
    let subscribe = r#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"","name":"auth-fw","principal":"fw"}}}"#;
    let json = ("Content-Type", "application/json");
    let (code, hs, r) = request(c.addr, "/api/v1/scheduler", &[json], subscribe.as_bytes());
    assert_eq!(code, 401, "{}", body_text(&hs, r));
    let wrong = basic("fw", "nope");
    let (code, hs, r) = request(
        c.addr,
        "/api/v1/scheduler",
        &[json, ("Authorization", wrong.as_str())],
        subscribe.as_bytes(),
    );
    assert_eq!(code, 401, "{}", body_text(&hs, r));
    let other = basic("other", "other-secret");
    let (code, hs, r) = request(
        c.addr,
        "/api/v1/scheduler",
        &[json, ("Authorization", other.as_str())],
        subscribe.as_bytes(),
    );
    assert_eq!(
        code,
        403,
        "another principal's framework: {}",
        body_text(&hs, r)
    );
    let good = basic("fw", "fw-secret");
    let (code, hs, r) = request(
        c.addr,
        "/api/v1/scheduler",
        &[json, ("Authorization", good.as_str())],
        subscribe.as_bytes(),
    );
    assert_eq!(code, 200, "{}", body_text(&hs, r));
    assert!(header(&hs, "mesos-stream-id").is_some());
    drop(r);
}

/// Newer Mesos clients accept `application/recordio` and name the records' format in
/// `Message-Accept`.
#[test]
fn recordio_accept_with_message_accept() {
    let c = Cluster::start(0);
    let subscribe =
        r#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"","name":"rio"}}}"#;
    let (code, hs, r) = request(
        c.addr,
        "/api/v1/scheduler",
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/recordio"),
            ("Message-Accept", "application/x-protobuf"),
        ],
        subscribe.as_bytes(),
    );
    assert_eq!(code, 200);
    assert_eq!(header(&hs, "content-type"), Some("application/recordio"));
    assert_eq!(
        header(&hs, "message-content-type"),
        Some("application/x-protobuf")
    );
    let mut events = Events {
        r,
        decoder: recordio::Decoder::new(),
        pending: Default::default(),
        format: Format::Protobuf,
    };
    assert_eq!(events.next().r#type, Some(EventType::SUBSCRIBED as i32));
}

/// Percent-encodes a query value.
fn q(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The executor of `id` among `framework`'s `executors` (or `completed_executors`).
fn executor_of<'a>(framework: &'a Value, list: &str, id: &str) -> Option<&'a Value> {
    framework[list]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["id"] == id)
}

#[test]
fn agent_state_files_and_master_executors_offers_in_mesos_shapes() {
    let OfferedAgent {
        c,
        listen,
        fid,
        stream,
        aid,
        oid,
        // Held: the framework stays subscribed (and keeps its offers) while it is open.
        events: _events,
    } = offered_agent("mesos-agent-state", "agent-state-fw");

    // The outstanding offer is listed under its framework.
    let st = get_json(c.addr, "/master/state");
    let offers = &st["frameworks"][0]["offers"];
    assert_eq!(offers[0]["id"], oid.as_str(), "{st}");
    assert_eq!(offers[0]["slave_id"], aid.as_str(), "{st}");
    assert_eq!(offers[0]["resources"]["cpus"], 4.0, "{st}");
    assert_eq!(offers[0]["allocation_info"]["role"], "*", "{st}");

    // A command task and a custom executor with a task.
    let launch = format!(
        r#"{{"type":"ACCEPT","framework_id":{{"value":"{fid}"}},"accept":{{"offer_ids":[{{"value":"{oid}"}}],
        "operations":[{{"type":"LAUNCH","launch":{{"task_infos":[
          {{"name":"cmd","task_id":{{"value":"st-cmd"}},"agent_id":{{"value":"{aid}"}},
            "resources":[{{"name":"cpus","type":"SCALAR","scalar":{{"value":0.1}}}}],
            "command":{{"value":"echo hello-out; sleep 60"}}}},
          {{"name":"x","task_id":{{"value":"st-task"}},"agent_id":{{"value":"{aid}"}},
            "resources":[{{"name":"cpus","type":"SCALAR","scalar":{{"value":0.1}}}}],
            "executor":{{"type":"CUSTOM","executor_id":{{"value":"st-exec"}},"name":"sleepy",
              "command":{{"value":"sleep 60"}},
              "resources":[{{"name":"cpus","type":"SCALAR","scalar":{{"value":0.1}}}}]}}}}]}}}}]}}}}"#
    );
    assert_eq!(json_call(&c, &stream, &launch), (202, String::new()));

    // The agent's /state shows both, with their sandboxes' directories.
    let agent_state = |path: &str| get_json(listen, path);
    let deadline = Instant::now() + WAIT;
    let st = loop {
        let st = agent_state("/state");
        let f = &st["frameworks"][0];
        if executor_of(f, "executors", "st-cmd").is_some()
            && executor_of(f, "executors", "st-exec").is_some()
        {
            break st;
        }
        assert!(Instant::now() < deadline, "{st}\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(st["id"], aid.as_str(), "{st}");
    assert_eq!(st["pid"], format!("slave(1)@{listen}"), "{st}");
    assert_eq!(st["resources"]["cpus"], 4.0, "{st}");
    assert_eq!(st["version"], "1.11.0");
    assert!(st["flags"]["work_dir"].as_str().is_some(), "{st}");
    assert_eq!(st["completed_frameworks"], serde_json::json!([]), "{st}");
    let f = &st["frameworks"][0];
    assert_eq!(f["id"], fid.as_str(), "{st}");
    assert_eq!(f["name"], "agent-state-fw");
    let cmd = executor_of(f, "executors", "st-cmd").expect("command executor");
    assert_eq!(cmd["tasks"][0]["id"], "st-cmd", "{cmd}");
    assert_eq!(cmd["tasks"][0]["framework_id"], fid.as_str());
    let directory = cmd["directory"].as_str().expect("directory").to_string();
    assert!(directory.starts_with('/'), "{directory}");
    let custom = executor_of(f, "executors", "st-exec").expect("custom executor");
    assert_eq!(custom["name"], "sleepy", "{custom}");
    assert_eq!(custom["type"], "CUSTOM", "{custom}");
    assert_eq!(custom["tasks"][0]["id"], "st-task", "{custom}");
    let custom_directory = custom["directory"].as_str().expect("directory").to_string();
    // Mesos tools also read it at /slave(1)/state.
    assert_eq!(agent_state("/slave(1)/state")["id"], aid.as_str());

    // The master lists the custom executor under its framework.
    let st = get_json(c.addr, "/master/state");
    let ex = &st["frameworks"][0]["executors"];
    assert_eq!(ex.as_array().map(Vec::len), Some(1), "{st}");
    assert_eq!(ex[0]["executor_id"], "st-exec", "{st}");
    assert_eq!(ex[0]["slave_id"], aid.as_str(), "{st}");
    assert_eq!(ex[0]["command"]["value"], "sleep 60", "{st}");
    assert_eq!(ex[0]["resources"]["cpus"], 0.1, "{st}");
    assert_eq!(
        get_json(c.addr, "/master/frameworks")["frameworks"][0]["executors"][0]["executor_id"],
        "st-exec"
    );

    // The sandbox through /files/* with Mesos's absolute paths.
    let stdout = format!("{directory}/stdout");
    let deadline = Instant::now() + WAIT;
    loop {
        let r = get_json(listen, &format!("/files/read?path={}&offset=0", q(&stdout)));
        if r["data"].as_str().is_some_and(|d| d.contains("hello-out")) {
            assert_eq!(r["offset"], 0, "{r}");
            break;
        }
        assert!(Instant::now() < deadline, "{r}\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The executor's sandbox is where /state says (its container started by now: the
    // command task's did).
    let deadline = Instant::now() + WAIT;
    while !std::path::Path::new(&custom_directory).is_dir() {
        assert!(
            Instant::now() < deadline,
            "{custom_directory}\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let listing = get_json(listen, &format!("/files/browse?path={}", q(&directory)));
    let entry = listing
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["path"] == stdout.as_str())
        .unwrap_or_else(|| panic!("no stdout in {listing}"));
    assert!(
        entry["mode"].as_str().is_some_and(|m| m.starts_with("-r")),
        "{entry}"
    );
    assert!(entry["size"].as_u64().is_some_and(|n| n >= 10), "{entry}");
    assert_eq!(entry["nlink"], 1, "{entry}");
    assert!(entry["mtime"].as_i64().is_some_and(|t| t > 0), "{entry}");
    assert!(entry["uid"].as_str().is_some() && entry["gid"].as_str().is_some());
    let (code, head, body) = get_raw(listen, &format!("/files/download?path={}", q(&stdout)));
    assert_eq!(code, 200, "{head}");
    assert!(body.contains("hello-out"), "{body}");
    assert!(
        head.contains("content-disposition: attachment; filename=\"stdout\""),
        "{head}"
    );
    // Mesos's virtual path of an executor's latest run.
    let virtual_path = format!("/frameworks/{fid}/executors/st-cmd/runs/latest/stdout");
    let r = get_json(
        listen,
        &format!("/files/read?path={}&offset=0", q(&virtual_path)),
    );
    assert!(
        r["data"].as_str().is_some_and(|d| d.contains("hello-out")),
        "{r}"
    );
    // Agora's own form still answers Agora's shape.
    let own = get_json(
        listen,
        &format!("/files/browse?framework_id={}&task_id=st-cmd", q(&fid)),
    );
    assert!(own[0]["name"].as_str().is_some(), "{own}");

    // Bad paths: refused with a message, nothing served.
    for (path, want) in [
        (
            format!(
                "/files/read?path={}",
                q(&format!("{directory}/../../../../etc/passwd"))
            ),
            403,
        ),
        ("/files/browse?path=/etc".to_string(), 403),
        ("/files/read?path=stdout".to_string(), 403),
        ("/files/read".to_string(), 400),
        (format!("/files/read?framework_id={}", q(&fid)), 400),
        (
            format!("/files/read?path={}", q(&format!("{directory}/missing"))),
            404,
        ),
        (format!("/files/read?path={}&offset=-5", q(&stdout)), 400),
        (format!("/files/read?path={}&offset=x", q(&stdout)), 400),
    ] {
        let (code, head, body) = get_raw(listen, &path);
        assert_eq!(code, want, "{path}: {head}\n{body}");
        assert!(!body.contains("root:"), "{path} served {body}");
    }

    // A killed command task's sandbox is listed among the completed executors.
    let kill = format!(
        r#"{{"type":"KILL","framework_id":{{"value":"{fid}"}},"kill":{{"task_id":{{"value":"st-cmd"}},"agent_id":{{"value":"{aid}"}}}}}}"#
    );
    assert_eq!(json_call(&c, &stream, &kill), (202, String::new()));
    let deadline = Instant::now() + WAIT;
    loop {
        let st = agent_state("/state");
        let f = &st["frameworks"][0];
        if let Some(done) = executor_of(f, "completed_executors", "st-cmd") {
            assert_eq!(done["directory"], directory.as_str(), "{st}");
            assert!(executor_of(f, "executors", "st-cmd").is_none(), "{st}");
            assert!(executor_of(f, "executors", "st-exec").is_some(), "{st}");
            break;
        }
        assert!(Instant::now() < deadline, "{st}\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}
