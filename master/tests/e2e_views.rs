//! End-to-end: one JSON shape. The master's HTTP API and the CLI's `--json` print the same
//! document for the same cluster (both render with `agora-views`), and the narrow HTTP
//! reads (`/api/v1/agents`, `/frameworks`, `/tasks`, `/roles`, one agent, one framework)
//! are exactly the matching parts of `/api/v1/state`.

mod support;

use std::process::{Command, Stdio};

use serde_json::Value;
use support::*;

fn get(cluster: &Cluster, path: &str) -> Value {
    let (code, body) = http_get(cluster.addr, path).expect("GET");
    assert_eq!(code, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path} is not JSON ({e}): {body}"))
}

fn cli_json(cluster: &Cluster, view: &str) -> Value {
    let out = Command::new(binary("agora"))
        .args([view, "--master", &cluster.addr.to_string(), "--json"])
        .stdin(Stdio::null())
        .output()
        .expect("run agora");
    assert!(
        out.status.success(),
        "agora {view} --json: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("agora prints JSON")
}

/// `cli()` equals `http()` whenever the state held still around it: the HTTP document is
/// read before and after the CLI's, and compared when both reads agree (heartbeats change
/// `last_heartbeat_ms` now and then).
fn same_document(what: &str, http: impl Fn() -> Value, cli: impl Fn() -> Value) {
    for _ in 0..20 {
        let before = http();
        let printed = cli();
        let after = http();
        if before == after {
            assert_eq!(
                printed, before,
                "{what}: the CLI's --json differs from HTTP"
            );
            return;
        }
    }
    panic!("{what}: the state never held still for one CLI call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_and_the_http_api_print_the_same_json() {
    let cluster = Cluster::start(2);
    let mut fw = Framework::subscribe(cluster.addr, "e2e-views").await;
    let offers = fw.wait_offers(2).await;
    fw.accept(
        vec![offers[0].id.clone()],
        vec![launch(vec![
            shell_task("done", "cpus:0.5;mem:32", "true"),
            shell_task("long", "cpus:0.5;mem:32", "sleep 120"),
        ])],
        Some(3600.0),
    )
    .await
    .expect("launch");
    fw.wait_for("one task finished, one running", |s| {
        s.get("done")
            .is_some_and(|x| x.state == agora_proto::TaskState::Finished as i32)
            && s.get("long")
                .is_some_and(|x| x.state == agora_proto::TaskState::Running as i32)
    })
    .await;
    // Let the master record the acknowledgement of the last update.
    cluster.wait_until("both tasks in the state", |s| {
        s["tasks"].as_array().is_some_and(|t| t.len() == 2)
    });

    let state = || get(&cluster, "/api/v1/state");
    same_document("state", state, || cli_json(&cluster, "state"));
    same_document(
        "agents",
        || get(&cluster, "/api/v1/agents"),
        || cli_json(&cluster, "agents"),
    );
    same_document(
        "frameworks",
        || get(&cluster, "/api/v1/frameworks"),
        || cli_json(&cluster, "frameworks"),
    );
    same_document(
        "tasks",
        || get(&cluster, "/api/v1/tasks?limit=1000")["tasks"].clone(),
        || cli_json(&cluster, "tasks"),
    );

    // The narrow reads are the parts of the whole state.
    let s = state();
    let agent_id = s["agents"][0]["id"].as_str().expect("agent id").to_string();
    let one = get(&cluster, &format!("/api/v1/agents/{agent_id}"));
    assert_eq!(one["id"], s["agents"][0]["id"]);
    assert_eq!(one["resources"], s["agents"][0]["resources"]);
    let fw_view = get(&cluster, &format!("/api/v1/frameworks/{}", fw.id));
    assert_eq!(fw_view, s["frameworks"][0]);
    assert_eq!(get(&cluster, "/api/v1/roles"), s["roles"]);

    // Tasks filtered by state, framework and agent, with paging.
    let running = get(&cluster, "/api/v1/tasks?state=RUNNING");
    assert_eq!(running["total"], 1, "{running}");
    assert_eq!(running["tasks"][0]["id"], "long");
    let finished = get(
        &cluster,
        &format!("/api/v1/tasks?state=finished&framework_id={}", fw.id),
    );
    assert_eq!(finished["tasks"][0]["id"], "done", "{finished}");
    let on_agent = get(
        &cluster,
        &format!("/api/v1/tasks?agent_id={}", offers[0].agent_id),
    );
    assert_eq!(on_agent["total"], 2, "{on_agent}");
    let other = offers
        .iter()
        .map(|o| o.agent_id.clone())
        .find(|a| *a != offers[0].agent_id)
        .expect("two agents");
    assert_eq!(
        get(&cluster, &format!("/api/v1/tasks?agent_id={other}"))["total"],
        0
    );
    let page = get(&cluster, "/api/v1/tasks?offset=1&limit=1");
    assert_eq!(page["total"], 2, "{page}");
    assert_eq!(page["offset"], 1);
    assert_eq!(page["tasks"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        page["tasks"][0]["id"], "long",
        "tasks are ordered by id: {page}"
    );
}
