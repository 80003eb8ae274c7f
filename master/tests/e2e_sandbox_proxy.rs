//! The master's sandbox proxy (`/api/v1/tasks/{framework}/{task}/files/...`) against real
//! master, agent and task processes: the `access_sandbox` ACL decides before any agent is
//! reached (the allowed principal reads the task's output, a denied one gets 403 and
//! none of it), and agents that serve `--listen` over TLS are reached over TLS, verified
//! against the master's `--agent-tls-ca`.

#[path = "support/pki.rs"]
mod pki;
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use agora_proto::auth::Credential;
use support::*;

const CREDENTIALS: &str = r#"[
  {"principal": "alice", "secret": "alice-secret"},
  {"principal": "mallory", "secret": "mallory-secret"}
]"#;

fn basic(principal: &str) -> String {
    Credential {
        principal: principal.to_string(),
        secret: format!("{principal}-secret"),
    }
    .to_header()
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write test file");
    p.display().to_string()
}

/// The user this test runs as (the task runs as it: the ACL's object).
fn me() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

/// Launch one task printing `line` then sleeping, as the test's user, and wait until it
/// runs. Returns the framework (kept subscribed).
async fn run_printer(addr: std::net::SocketAddr, task_id: &str, line: &str) -> Framework {
    let mut fw = Framework::subscribe(addr, "proxied").await;
    let offers = fw.wait_offers(1).await;
    let mut task = shell_task(
        task_id,
        "cpus:0.1;mem:16",
        &format!("echo {line}; sleep 60"),
    );
    if let Some(cmd) = task.command.as_mut() {
        cmd.user = me();
    }
    fw.accept(vec![offers[0].id.clone()], vec![launch(vec![task])], None)
        .await
        .expect("launch");
    let id = task_id.to_string();
    fw.wait_for("the task running", move |s| {
        s.get(&id)
            .is_some_and(|s| state_of(s) == agora_proto::TaskState::Running)
    })
    .await;
    fw
}

/// GET `path` on the master as `who` until `pred` holds for the answer (the task's
/// output appears shortly after it runs); the last answer.
fn wait_get(
    c: &Cluster,
    path: &str,
    who: Option<&str>,
    pred: impl Fn(u16, &str) -> bool,
) -> (u16, String) {
    let auth = who.map(basic);
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| ("authorization", a))
        .into_iter()
        .collect();
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, body) = http_request_with(c.addr, "GET", path, None, &headers).expect("GET");
        if pred(code, &body) {
            return (code, body);
        }
        assert!(
            Instant::now() < deadline,
            "GET {path} as {who:?}: last answer {code} {body}\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_proxy_applies_access_sandbox() {
    let dir = TempDir::new("proxy-acl");
    let me = me();
    let creds = write(&dir.0, "credentials.json", CREDENTIALS);
    // Everything else is allowed; the sandbox only to alice, for tasks running as `me`.
    let acls = write(
        &dir.0,
        "acls.json",
        &serde_json::json!({
            "permissive": true,
            "access_sandbox": [
                {"principals": ["alice"], "objects": [me]},
                {"principals": "ANY", "objects": "NONE"}
            ]
        })
        .to_string(),
    );
    let mut c = Cluster::start_in(
        dir,
        0,
        &[
            "--credentials",
            &creds,
            "--authenticate-http",
            "--acls",
            &acls,
        ],
        Some(basic("alice")),
        &[],
    );
    let listen = format!("127.0.0.1:{}", free_port());
    c.add_agent_with(
        0,
        &[
            "--listen",
            &listen,
            "--isolation",
            "process",
            "--allow-root-tasks",
        ],
    );
    c.wait_agents(1);
    let fw = run_printer(c.addr, "secret-task", "the-secret-output").await;
    let files = format!("/api/v1/tasks/{}/secret-task/files", fw.id);
    let read = format!("{files}/read?path=stdout&offset=0");

    // Alice may read it: the output, the listing, the download.
    let (_, body) = wait_get(&c, &read, Some("alice"), |code, body| {
        code == 200 && body.contains("the-secret-output")
    });
    assert!(body.contains("\"offset\":0"), "{body}");
    let (code, body) = wait_get(
        &c,
        &format!("{files}/browse?path="),
        Some("alice"),
        |_, _| true,
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"stdout\""), "{body}");
    let (code, body) = wait_get(
        &c,
        &format!("{files}/download?path=stdout"),
        Some("alice"),
        |_, _| true,
    );
    assert_eq!((code, body.trim()), (200, "the-secret-output"));

    // Mallory gets 403 naming the rule, and nothing of the sandbox, for every operation.
    for op in [
        "read?path=stdout&offset=0",
        "browse?path=",
        "download?path=stdout",
        "tail?path=stdout",
    ] {
        let (code, body) = wait_get(&c, &format!("{files}/{op}"), Some("mallory"), |_, _| true);
        assert_eq!(code, 403, "{op}: {body}");
        assert!(
            body.contains(&format!(
                "principal 'mallory' is not authorized to access_sandbox on '{me}'"
            )),
            "{op}: {body}"
        );
        assert!(
            !body.contains("the-secret-output") && !body.contains("stdout\""),
            "{op}: a refusal carries nothing of the sandbox: {body}"
        );
    }
    // No credentials: 401 (the browser asks), a wrong secret too; nothing either.
    let (code, body) = wait_get(&c, &read, None, |_, _| true);
    assert_eq!(code, 401, "{body}");
    assert!(!body.contains("the-secret-output"), "{body}");
    let (code, body) = http_request_with(
        c.addr,
        "GET",
        &read,
        None,
        &[("authorization", &basic("nobody"))],
    )
    .expect("GET");
    assert_eq!(code, 401, "{body}");
    // An unknown task is 404 for alice; the ACL is not a way to probe task ids either.
    let (code, body) = wait_get(
        &c,
        &format!(
            "/api/v1/tasks/{}/nope/files/read?path=stdout&offset=0",
            fw.id
        ),
        Some("alice"),
        |_, _| true,
    );
    assert_eq!(code, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_proxy_reaches_agents_over_tls() {
    let dir = TempDir::new("proxy-tls");
    let pki = pki::make_pki(&dir.0);
    let mut c = Cluster::start_in(dir, 0, &["--agent-tls-ca", &pki.ca], None, &[]);
    let listen = format!("127.0.0.1:{}", free_port());
    c.add_agent_with(
        0,
        &[
            "--listen",
            &listen,
            "--listen-tls-cert",
            &pki.server_cert,
            "--listen-tls-key",
            &pki.server_key,
            "--isolation",
            "process",
            "--allow-root-tasks",
        ],
    );
    c.wait_agents(1);
    let fw = run_printer(c.addr, "tls-task", "over-tls").await;
    let read = format!(
        "/api/v1/tasks/{}/tls-task/files/read?path=stdout&offset=0",
        fw.id
    );
    let (_, body) = wait_get(&c, &read, None, |code, body| {
        code == 200 && body.contains("over-tls")
    });
    assert!(body.contains("over-tls"), "{body}");

    // A master that trusts another CA refuses the agent's certificate: 502 saying so,
    // and nothing of the file.
    let other_dir = c.dir.0.join("other-ca");
    std::fs::create_dir_all(&other_dir).expect("dir");
    let other = pki::make_pki(&other_dir);
    let at = c
        .master_args
        .iter()
        .position(|a| a == "--agent-tls-ca")
        .expect("flag");
    c.master_args[at + 1] = other.ca.clone();
    c.master.stop();
    c.restart_master();
    c.wait_agents(1);
    let (code, body) = wait_get(&c, &read, None, |code, _| code != 404 && code != 400);
    assert_eq!(code, 502, "{body}");
    assert!(body.contains("TLS handshake failed"), "{body}");
    assert!(!body.contains("over-tls"), "{body}");
}
