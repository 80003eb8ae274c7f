//! End-to-end tests of the operator commands of `agora` against a real master and real
//! agents: each command's effect, its `--json` against the master's HTTP view, names by
//! hostname and id prefix, and the bad inputs (unknown and ambiguous names, bad values,
//! an unreachable master, a closed pipe) with their exit codes.

#[path = "../../master/tests/support/mod.rs"]
mod support;

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
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Run `agora ARGS --master M`, expecting exit `code`; the output.
fn expect(cluster: &Cluster, args: &[&str], code: i32) -> String {
    let master = cluster.addr.to_string();
    let mut all = args.to_vec();
    all.extend(["--master", &master]);
    let o = agora(&all);
    assert_eq!(
        o.status.code(),
        Some(code),
        "agora {}: expected exit {code}:\n{}",
        args.join(" "),
        text(&o)
    );
    text(&o)
}

fn json_of(cluster: &Cluster, args: &[&str]) -> Value {
    let out = expect(cluster, args, 0);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn get(cluster: &Cluster, path: &str) -> Value {
    let (code, body) = http_get(cluster.addr, path).expect("GET");
    assert_eq!(code, 200, "GET {path}: {body}");
    serde_json::from_str(&body).expect("JSON")
}

fn agent_named(state: &Value, hostname: &str) -> Value {
    state["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["hostname"] == hostname))
        .cloned()
        .unwrap_or_else(|| panic!("no agent {hostname} in {state}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_change_the_cluster_and_print_the_http_views() {
    let cluster = Cluster::start(2);

    // Weights: set, list as table and as the HTTP view; bad values are usage errors.
    let out = expect(&cluster, &["weights", "eng=2", "ml=0.5"], 0);
    assert!(out.contains("weights set"), "{out}");
    assert_eq!(
        json_of(&cluster, &["weights", "--json"]),
        get(&cluster, "/api/v1/weights")
    );
    let table = expect(&cluster, &["weights"], 0);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("eng") && l.ends_with('2')),
        "{table}"
    );
    expect(&cluster, &["weights", "eng=heavy"], 2);
    let refused = expect(&cluster, &["weights", "eng=-1"], 1);
    assert!(refused.contains("must be a finite number > 0"), "{refused}");

    // Quota: set, list, refuse a bad one, remove.
    expect(
        &cluster,
        &[
            "quota",
            "set",
            "eng",
            "--guarantee",
            "cpus:1;mem:64",
            "--limit",
            "cpus:2;mem:128",
        ],
        0,
    );
    let quota = json_of(&cluster, &["quota", "list", "--json"]);
    assert_eq!(quota, get(&cluster, "/api/v1/quota"));
    assert_eq!(quota[0]["role"], "eng", "{quota}");
    let table = expect(&cluster, &["quota", "list"], 0);
    assert!(
        table.contains("cpus:1;mem:64") && table.contains("cpus:2;mem:128"),
        "{table}"
    );
    let bad = expect(
        &cluster,
        &["quota", "set", "eng", "--guarantee", "cpus:lots"],
        2,
    );
    assert!(bad.contains("--guarantee"), "{bad}");
    let refused = expect(
        &cluster,
        &[
            "quota",
            "set",
            "eng",
            "--guarantee",
            "cpus:4",
            "--limit",
            "cpus:1",
        ],
        1,
    );
    assert!(refused.contains("the master refused"), "{refused}");
    expect(&cluster, &["quota", "remove", "eng"], 0);
    assert_eq!(get(&cluster, "/api/v1/quota"), Value::Array(vec![]));

    // Reservations and volumes on an agent named by its hostname.
    let state = cluster.state();
    let a0 = agent_named(&state, "e2e-agent-0")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let reserved = "cpus(db,dynamic,principal=ops):1;disk(db,dynamic,principal=ops):100";
    let volume = "disk(db,dynamic,principal=ops,volume=pg,path=data):100";
    expect(&cluster, &["reserve", "e2e-agent-0", reserved], 0);
    expect(&cluster, &["volumes", "create", "e2e-agent-0", volume], 0);
    let listed = expect(&cluster, &["volumes", "list"], 0);
    assert!(
        listed
            .lines()
            .any(|l| l.contains(&a0) && l.contains(" pg ") && l.contains("data")),
        "{listed}"
    );
    let vj = json_of(&cluster, &["volumes", "list", "--json"]);
    assert_eq!(vj[0]["agent_id"], a0.as_str(), "{vj}");
    let again = expect(&cluster, &["volumes", "create", "e2e-agent-0", volume], 1);
    assert!(again.contains("the master refused"), "{again}");
    expect(&cluster, &["volumes", "destroy", &a0, volume], 0);
    // Agent ids share all but their last characters: a cut id is ambiguous.
    let cut = &a0[..a0.len() - 1];
    let ambiguous = expect(&cluster, &["unreserve", cut, reserved], 2);
    assert!(
        ambiguous.contains(&format!("agent '{cut}' is ambiguous: it matches 2 agents"))
            && ambiguous.contains("e2e-agent-0")
            && ambiguous.contains("e2e-agent-1"),
        "{ambiguous}"
    );
    expect(&cluster, &["unreserve", &a0, reserved], 0);
    let bad = expect(&cluster, &["reserve", "e2e-agent-0", "cpus(db"], 2);
    assert!(bad.contains("resources"), "{bad}");
    let unknown = expect(&cluster, &["reserve", "no-such-agent", reserved], 2);
    assert!(
        unknown.contains("no agent matches 'no-such-agent'"),
        "{unknown}"
    );

    // Two running tasks of one framework: filters, ambiguous prefixes, kill.
    let mut fw = Framework::subscribe(cluster.addr, "e2e-ops").await;
    let offers = fw.wait_offers(1).await;
    let agent_of_tasks = offers[0].agent_id.clone();
    fw.accept(
        vec![offers[0].id.clone()],
        vec![launch(vec![
            shell_task("sleep-alpha", "cpus:0.5;mem:32", "sleep 120"),
            shell_task("sleep-beta", "cpus:0.5;mem:32", "sleep 120"),
        ])],
        Some(3600.0),
    )
    .await
    .expect("launch");
    fw.wait_for("both running", |s| {
        ["sleep-alpha", "sleep-beta"].iter().all(|t| {
            s.get(*t)
                .is_some_and(|x| x.state == agora_proto::TaskState::Running as i32)
        })
    })
    .await;
    let host = agent_named(&cluster.state(), "e2e-agent-0");
    let host = if host["id"] == agent_of_tasks.as_str() {
        "e2e-agent-0"
    } else {
        "e2e-agent-1"
    };
    for (args, path) in [
        (
            vec!["tasks", "--json", "--state", "running"],
            "/api/v1/tasks?state=RUNNING&limit=1000".to_string(),
        ),
        (
            vec!["tasks", "--json", "--framework", "e2e-ops"],
            format!("/api/v1/tasks?framework_id={}&limit=1000", fw.id),
        ),
        (
            vec!["tasks", "--json", "--agent", host],
            format!("/api/v1/tasks?agent_id={agent_of_tasks}&limit=1000"),
        ),
    ] {
        assert_eq!(
            json_of(&cluster, &args),
            get(&cluster, &path)["tasks"],
            "{args:?}"
        );
    }
    let running = json_of(&cluster, &["tasks", "--json", "--state", "running"]);
    assert_eq!(running.as_array().map(Vec::len), Some(2), "{running}");
    let table = expect(&cluster, &["tasks", "--state", "RUNNING"], 0);
    assert_eq!(table.lines().count(), 3, "{table}");
    let bad = expect(&cluster, &["tasks", "--state", "sleepy"], 2);
    assert!(bad.contains("not a task state"), "{bad}");

    let ambiguous = expect(&cluster, &["task", "kill", "sleep"], 2);
    assert!(
        ambiguous.contains("task 'sleep' is ambiguous: it matches 2 tasks")
            && ambiguous.contains("sleep-alpha")
            && ambiguous.contains("sleep-beta"),
        "{ambiguous}"
    );
    let none = expect(&cluster, &["task", "kill", "short"], 2);
    assert!(none.contains("no task matches 'short'"), "{none}");
    // A unique prefix names the task.
    expect(&cluster, &["task", "kill", "sleep-al"], 0);
    fw.wait_for("sleep-alpha killed", |s| {
        s.get("sleep-alpha")
            .is_some_and(|x| x.state == agora_proto::TaskState::Killed as i32)
    })
    .await;
    let again = expect(&cluster, &["task", "kill", "sleep-alpha"], 1);
    assert!(again.contains("already ended"), "{again}");

    // Explain: words for people, the HTTP view with --json.
    let words = expect(&cluster, &["explain", "e2e-ops"], 0);
    assert!(
        words.contains(&format!("framework {} is subscribed", fw.id)),
        "{words}"
    );
    assert!(words.contains("role 'e2e'"), "{words}");
    let mut printed = json_of(&cluster, &["explain", &fw.id, "--json"]);
    let mut http = get(
        &cluster,
        &format!("/api/v1/allocator/explain?framework={}", fw.id),
    );
    // `at_ms` is when the allocator answered: the one field two reads never share.
    printed["at_ms"] = Value::Null;
    http["at_ms"] = Value::Null;
    assert_eq!(printed, http);
    let role = expect(&cluster, &["explain", "--role", "e2e"], 0);
    assert!(role.contains("role 'e2e': weight 1"), "{role}");
    expect(&cluster, &["explain", "--role", "nobody"], 1);

    // Agent maintenance by hostname and id prefix.
    expect(&cluster, &["agent", "deactivate", "e2e-agent-1"], 0);
    cluster.wait_until("agent 1 deactivated", |s| {
        agent_named(s, "e2e-agent-1")["status"] == "deactivated"
    });
    let a1 = agent_named(&cluster.state(), "e2e-agent-1")["id"]
        .as_str()
        .expect("id")
        .to_string();
    expect(&cluster, &["agent", "reactivate", &a1], 0);
    cluster.wait_until("agent 1 registered", |s| {
        agent_named(s, "e2e-agent-1")["status"] == "registered"
    });
    expect(
        &cluster,
        &["agent", "drain", "e2e-agent-1", "--grace", "-1"],
        2,
    );

    // Teardown by name; the task left is killed with it.
    expect(&cluster, &["framework", "teardown", "e2e-ops"], 0);
    cluster.wait_until("framework torn down", |s| {
        s["frameworks"]
            .as_array()
            .is_some_and(|f| f.iter().all(|x| x["status"] == "torn_down"))
    });
    let gone = expect(&cluster, &["framework", "teardown", "e2e-ops"], 1);
    assert!(gone.contains("torn down"), "{gone}");

    expect(
        &cluster,
        &["agent", "drain", "e2e-agent-1", "--grace", "1"],
        0,
    );
    expect(&cluster, &["agent", "gone", "e2e-agent-1"], 0);
    cluster.wait_until("agent 1 gone", |s| {
        ["gone", "removed"].contains(
            &agent_named(s, "e2e-agent-1")["status"]
                .as_str()
                .unwrap_or(""),
        )
    });

    // No master: exit 3, with the address tried.
    let o = agora(&["quota", "list", "--master", "127.0.0.1:1"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("cannot reach the master"), "{}", text(&o));
}

#[test]
fn a_closed_pipe_ends_the_listing_quietly_and_completions_print() {
    let cluster = Cluster::start(1);
    let master = cluster.addr.to_string();
    for cmd in [
        &["tasks"][..],
        &["agents"],
        &["state", "--json"],
        &["weights"],
    ] {
        let mut child = Command::new(binary("agora"))
            .args(cmd)
            .args(["--master", &master])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn agora");
        // The reader goes away before anything is written.
        drop(child.stdout.take());
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "agora {cmd:?} hangs on a closed pipe"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = child.wait_with_output().expect("output");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "agora {cmd:?} panicked: {err}");
        assert_eq!(status.code(), Some(0), "agora {cmd:?}: {err}");
    }
    for shell in ["bash", "zsh", "fish"] {
        let o = agora(&["completions", shell]);
        assert!(o.status.success(), "{}", text(&o));
        let script = String::from_utf8_lossy(&o.stdout);
        assert!(
            script.contains("agora") && script.contains("quota"),
            "{shell}: {script}"
        );
    }
}

#[test]
fn the_operator_commands_send_credentials_to_a_secured_master() {
    let dir = TempDir::new("ops-auth");
    let creds = dir.0.join("credentials.json");
    std::fs::write(&creds, r#"[{"principal": "ops", "secret": "ops-secret"}]"#).expect("write");
    let secret = dir.0.join("ops.secret");
    std::fs::write(&secret, "ops-secret\n").expect("write");
    let wrong = dir.0.join("wrong.secret");
    std::fs::write(&wrong, "guess\n").expect("write");
    let header = agora_proto::auth::Credential {
        principal: "ops".into(),
        secret: "ops-secret".into(),
    }
    .to_header();
    let cluster = Cluster::start_in(
        dir,
        0,
        &[
            "--credentials",
            &creds.display().to_string(),
            "--authenticate-http",
        ],
        Some(header),
        &[],
    );
    let secret = secret.display().to_string();
    let out = expect(
        &cluster,
        &[
            "weights",
            "eng=3",
            "--principal",
            "ops",
            "--secret-file",
            &secret,
        ],
        0,
    );
    assert!(out.contains("weights set"), "{out}");
    let listed = expect(
        &cluster,
        &["weights", "--principal", "ops", "--secret-file", &secret],
        0,
    );
    assert!(listed.contains("eng"), "{listed}");
    let refused = expect(&cluster, &["weights"], 1);
    assert!(refused.contains("401"), "{refused}");
    let wrong = wrong.display().to_string();
    let refused = expect(
        &cluster,
        &[
            "quota",
            "list",
            "--principal",
            "ops",
            "--secret-file",
            &wrong,
        ],
        1,
    );
    assert!(refused.contains("401"), "{refused}");
}
