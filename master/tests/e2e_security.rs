//! End-to-end security tests against real `agora-master`, `agora-agent` and `agora`
//! processes: authentication of frameworks, agents and operators; ACLs over real gRPC
//! calls (each action: allowed principal succeeds, denied principal gets
//! PERMISSION_DENIED and nothing changes); per-principal rate limits; TLS and mutual TLS
//! with certificates made at run time.

#[path = "support/pki.rs"]
mod pki;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agora_proto::auth::{AuthInterceptor, Credential};
use agora_proto::v1::{self, operator_client::OperatorClient};
use pki::make_pki;
use support::*;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const CREDENTIALS: &str = r#"[
  {"principal": "fw", "secret": "fw-secret"},
  {"principal": "fw2", "secret": "fw2-secret"},
  {"principal": "agent", "secret": "agent-secret"},
  {"principal": "ops", "secret": "ops-secret"},
  {"principal": "alice", "secret": "alice-secret"},
  {"principal": "mallory", "secret": "mallory-secret"}
]"#;

fn cred(principal: &str) -> Credential {
    Credential {
        principal: principal.to_string(),
        secret: format!("{principal}-secret"),
    }
}

fn basic(principal: &str) -> String {
    cred(principal).to_header()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write test file");
    p.display().to_string()
}

type Operator = OperatorClient<InterceptedService<Channel, AuthInterceptor>>;

async fn operator(addr: std::net::SocketAddr, as_: Option<&str>) -> Operator {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let c = as_.map(cred);
    OperatorClient::with_interceptor(channel, AuthInterceptor::new(c.as_ref()).expect("cred"))
}

fn info(name: &str, principal: &str, roles: &[&str]) -> v1::FrameworkInfo {
    v1::FrameworkInfo {
        name: name.to_string(),
        principal: principal.to_string(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        failover_timeout_seconds: 60.0,
        ..Default::default()
    }
}

fn framework_names(state: &serde_json::Value) -> Vec<String> {
    state["frameworks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

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

/// Wait until `proc`'s log contains `needle`.
fn wait_log(proc: &Proc, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let log = proc.log_text();
        if log.contains(needle) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "{} log never said {needle:?}:\n{log}",
            proc.name
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frameworks_agents_and_operators_must_authenticate() {
    let dir = TempDir::new("auth");
    let creds = write(&dir.0, "credentials.json", CREDENTIALS);
    let secret = write(&dir.0, "agent.secret", "agent-secret\n");
    let cluster = Cluster::start_in(
        dir,
        1,
        &[
            "--credentials",
            &creds,
            "--authenticate-frameworks",
            "--authenticate-agents",
            "--authenticate-http",
        ],
        Some(basic("ops")),
        &["--principal", "agent", "--secret-file", &secret],
    );
    let addr = cluster.addr;

    // The SDK driver (agora run) with and without credentials; it tears its framework
    // down when done, so it does not hold the agent's resources later.
    let fw_secret = write(&cluster.dir.0, "fw.secret", "fw-secret");
    let master = addr.to_string();
    let ok = agora(&[
        "run",
        "--master",
        &master,
        "--principal",
        "fw",
        "--secret-file",
        &fw_secret,
        "--timeout",
        "60",
        "--",
        "true",
    ]);
    assert!(
        ok.status.success(),
        "agora run with credentials:\n{}",
        text(&ok)
    );
    let refused = agora(&["run", "--master", &master, "--timeout", "60", "--", "true"]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("missing credentials"),
        "{}",
        text(&refused)
    );
    // The right secret subscribes.
    let mut fw = Framework::try_subscribe(addr, info("good", "fw", &["e2e"]), Some(cred("fw")))
        .await
        .expect("valid credentials subscribe");
    fw.wait_offers(1).await;

    // Wrong and missing secrets are UNAUTHENTICATED; a principal that is not the
    // authenticated one is PERMISSION_DENIED.
    let wrong = Credential {
        principal: "fw".into(),
        secret: "nope".into(),
    };
    let e = Framework::try_subscribe(addr, info("wrong", "fw", &["e2e"]), Some(wrong))
        .await
        .err()
        .expect("wrong secret refused");
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert!(
        e.message()
            .contains("authentication failed for principal 'fw'"),
        "{}",
        e.message()
    );
    let e = Framework::try_subscribe(addr, info("missing", "fw", &["e2e"]), None)
        .await
        .err()
        .expect("no credentials refused");
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(
        e.message().starts_with("missing credentials"),
        "{}",
        e.message()
    );
    let e = Framework::try_subscribe(addr, info("spoof", "fw2", &["e2e"]), Some(cred("fw")))
        .await
        .err()
        .expect("principal mismatch refused");
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(
        e.message()
            .contains("does not match the authenticated principal 'fw'")
    );
    assert_eq!(framework_names(&cluster.state()), vec!["good".to_string()]);

    // Another principal cannot drive fw's framework.
    let mut other =
        Framework::try_subscribe(addr, info("other", "fw2", &["e2e"]), Some(cred("fw2")))
            .await
            .expect("fw2 subscribes");
    let e = other
        .client
        .teardown(v1::TeardownRequest {
            framework_id: fw.id.clone(),
        })
        .await
        .expect_err("not the owner");
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(
        e.message().contains("belongs to principal 'fw'"),
        "{}",
        e.message()
    );
    let mut names = framework_names(&cluster.state());
    names.sort();
    assert_eq!(names, vec!["good".to_string(), "other".to_string()]);

    // Another principal cannot speak for a registered agent.
    let agent_id = cluster.state()["agents"][0]["id"]
        .as_str()
        .expect("agent id")
        .to_string();
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut impostor = v1::agent_api_client::AgentApiClient::with_interceptor(
        channel,
        AuthInterceptor::new(Some(&cred("fw2"))).expect("cred"),
    );
    let e = impostor
        .heartbeat(v1::AgentHeartbeatRequest {
            agent_id: agent_id.clone(),
        })
        .await
        .expect_err("not the agent's principal");
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(
        e.message().contains("belongs to principal 'agent'"),
        "{}",
        e.message()
    );

    // An agent without credentials is refused and does not join.
    let mut c = cluster;
    c.add_agent_with(1, &[]);
    wait_log(&c.agents[1], "missing credentials");
    let agents = c.state()["agents"].as_array().map_or(0, Vec::len);
    assert_eq!(agents, 1, "the unauthenticated agent must not register");

    // HTTP: /health is open; everything else needs credentials.
    let (code, _) = http_get(addr, "/health").expect("health");
    assert_eq!(code, 200);
    let (code, body) = http_get(addr, "/api/v1/state").expect("state");
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("missing credentials"), "{body}");
    let (code, _) = http_get(addr, "/metrics").expect("metrics");
    assert_eq!(code, 401);
    let bad = Credential {
        principal: "ops".into(),
        secret: "wrong".into(),
    }
    .to_header();
    let (code, body) = http_request_with(
        addr,
        "GET",
        "/api/v1/state",
        None,
        &[("authorization", &bad)],
    )
    .expect("state");
    assert_eq!(code, 401, "{body}");
    let (code, _) = http_request_with(
        addr,
        "PUT",
        "/api/v1/weights",
        Some(r#"[{"role": "e2e", "weight": 3}]"#),
        &[],
    )
    .expect("weights");
    assert_eq!(code, 401);
    assert!(
        c.state()["roles"]
            .as_array()
            .is_some_and(|r| r.iter().all(|r| r["weight"] != 3.0)),
        "a refused call changed the weights"
    );
    let (code, body) = http_request_with(
        addr,
        "GET",
        "/api/v1/state",
        None,
        &[("authorization", &basic("ops"))],
    )
    .expect("state");
    assert_eq!(code, 200, "{body}");

    let ops_secret = write(&c.dir.0, "ops.secret", "ops-secret\n");
    let view = agora(&[
        "frameworks",
        "--master",
        &master,
        "--principal",
        "ops",
        "--secret-file",
        &ops_secret,
    ]);
    assert!(view.status.success(), "{}", text(&view));
    let view = agora(&["frameworks", "--master", &master]);
    assert!(!view.status.success());
    assert!(text(&view).contains("Unauthenticated"), "{}", text(&view));

    // Operator gRPC the same.
    let e = operator(addr, None)
        .await
        .get_state(v1::Empty {})
        .await
        .expect_err("unauthenticated operator");
    assert_eq!(e.code(), Code::Unauthenticated);
    operator(addr, Some("ops"))
        .await
        .get_state(v1::Empty {})
        .await
        .expect("authenticated operator");
    drop(c);
}

/// One ACL rule set: for every action `alice` may act on one object and nobody else may.
fn matrix_acls(agent_host: &str) -> String {
    serde_json::json!({
        "register_framework": [{"principals": ["alice"], "objects": ["web"]}],
        "run_task": [{"principals": ["alice"], "objects": ["alice"]}],
        "reserve_resources": [{"principals": ["alice"], "objects": ["web"]}],
        "unreserve_resources": [{"principals": ["alice"], "objects": ["alice"]}],
        "create_volume": [{"principals": ["alice"], "objects": ["web"]}],
        "destroy_volume": [{"principals": ["alice"], "objects": ["alice"]}],
        "set_quota": [{"principals": ["alice"], "objects": ["web"]}],
        "update_weights": [{"principals": ["alice"], "objects": ["web"]}],
        "teardown_framework": [{"principals": ["alice"], "objects": ["alice"]}],
        "view_frameworks": [{"principals": ["alice"], "objects": "ANY"}],
        "view_tasks": [{"principals": ["alice"], "objects": "ANY"}],
        "drain_agent": [{"principals": ["alice"], "objects": "ANY"}],
        "register_agent": [{"principals": ["agent"], "objects": [agent_host]}],
        // Deny by default, and an explicit NONE for mallory.
        "access_sandbox": [{"principals": ["mallory"], "objects": "NONE"}]
    })
    .to_string()
}

fn reserved(role: &str, principal: &str) -> v1::Resource {
    let mut r = res("cpus:1").to_proto().remove(0);
    r.reservation = Some(v1::Reservation {
        r#type: v1::reservation::Type::Dynamic as i32,
        role: role.into(),
        principal: principal.into(),
        labels: Vec::new(),
    });
    r
}

fn volume(role: &str, principal: &str) -> v1::Resource {
    let mut r = reserved(role, principal);
    r.name = "disk".into();
    r.disk = Some(v1::DiskInfo {
        persistence_id: "v1".into(),
        principal: principal.into(),
        ..Default::default()
    });
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_matrix_over_grpc() {
    let dir = TempDir::new("acl");
    let creds = write(&dir.0, "credentials.json", CREDENTIALS);
    let acls = write(&dir.0, "acls.json", &matrix_acls("e2e-agent-0"));
    let secret = write(&dir.0, "agent.secret", "agent-secret");
    let mut c = Cluster::start_in(
        dir,
        1,
        &[
            "--credentials",
            &creds,
            "--authenticate-frameworks",
            "--authenticate-agents",
            "--authenticate-http",
            "--acls",
            &acls,
        ],
        Some(basic("alice")),
        &["--principal", "agent", "--secret-file", &secret],
    );
    let addr = c.addr;
    let denied = |e: tonic::Status, needle: &str| {
        assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
        assert!(
            e.message()
                .starts_with("principal 'mallory' is not authorized to ")
                || e.message()
                    .starts_with("principal 'agent' is not authorized to "),
            "{}",
            e.message()
        );
        assert!(e.message().contains(needle), "{}", e.message());
    };

    // register_agent: a second agent (hostname e2e-agent-1) is refused.
    c.add_agent_with(1, &["--principal", "agent", "--secret-file", &secret]);
    wait_log(
        &c.agents[1],
        "not authorized to register_agent on 'e2e-agent-1'",
    );
    assert_eq!(c.state()["agents"].as_array().map_or(0, Vec::len), 1);

    // register_framework.
    let mut alice = Framework::try_subscribe(
        addr,
        info("alice-fw", "alice", &["web"]),
        Some(cred("alice")),
    )
    .await
    .expect("alice registers with role web");
    let e = Framework::try_subscribe(
        addr,
        info("mallory-fw", "mallory", &["web"]),
        Some(cred("mallory")),
    )
    .await
    .err()
    .expect("mallory refused");
    denied(e, "register_framework on 'web'");
    assert_eq!(framework_names(&c.state()), vec!["alice-fw".to_string()]);

    // run_task: a task as root is refused and its offer stays outstanding; as alice it runs.
    let offers = alice.wait_offers(1).await;
    let offer = offers[0].id.clone();
    let mut root_task = shell_task("t-root", "cpus:0.1;mem:16", "true");
    if let Some(cmd) = root_task.command.as_mut() {
        cmd.user = "root".into();
    }
    let e = alice
        .accept(vec![offer.clone()], vec![launch(vec![root_task])], None)
        .await
        .expect_err("root refused");
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(
        e.message()
            .contains("principal 'alice' is not authorized to run_task on 'root'"),
        "{}",
        e.message()
    );
    // The same task through AcceptBatch: the ACL refuses the item, not the call.
    let mut root_task = shell_task("t-root", "cpus:0.1;mem:16", "true");
    if let Some(cmd) = root_task.command.as_mut() {
        cmd.user = "root".into();
    }
    let reply = alice
        .client
        .accept_batch(v1::AcceptBatchRequest {
            framework_id: alice.id.clone(),
            accepts: vec![v1::AcceptRequest {
                framework_id: String::new(),
                offer_ids: vec![offer.clone()],
                operations: vec![launch(vec![root_task])],
                filters: None,
            }],
        })
        .await
        .expect("the batch call itself is allowed")
        .into_inner();
    assert_eq!(reply.refused.len(), 1, "{:?}", reply.refused);
    assert_eq!(reply.refused[0].index, 0);
    assert_eq!(reply.refused[0].code, Code::PermissionDenied as i32);
    assert!(
        reply.refused[0]
            .message
            .contains("not authorized to run_task on 'root'"),
        "{:?}",
        reply.refused
    );
    assert!(reply.responses[0].launched_task_ids.is_empty());
    let s = c.state();
    assert!(s["tasks"].as_array().is_some_and(Vec::is_empty), "{s}");
    assert!(
        s["offers"]
            .as_array()
            .is_some_and(|o| o.iter().any(|o| o["id"] == offer.as_str())),
        "the refused accept must leave the offer outstanding: {s}"
    );
    let mut alice_task = shell_task("t-alice", "cpus:0.1;mem:16", "true");
    if let Some(cmd) = alice_task.command.as_mut() {
        cmd.user = "alice".into();
    }
    let launched = alice
        .accept(vec![offer], vec![launch(vec![alice_task])], None)
        .await
        .expect("alice's own user is allowed");
    assert_eq!(launched.launched_task_ids, vec!["t-alice".to_string()]);

    let ops_alice = operator(addr, Some("alice")).await;
    let ops_mallory = operator(addr, Some("mallory")).await;

    // set_quota (and removing it).
    let quota = |role: &str| v1::SetQuotaRequest {
        quota: Some(v1::QuotaInfo {
            role: role.into(),
            guarantee: res("cpus:1").to_proto(),
            limit: Vec::new(),
        }),
        force: true,
    };
    let e = ops_mallory
        .clone()
        .set_quota(quota("web"))
        .await
        .expect_err("mallory");
    denied(e, "set_quota on 'web'");
    let q = ops_alice
        .clone()
        .get_quota(v1::Empty {})
        .await
        .expect("quota")
        .into_inner();
    assert!(
        q.quotas.is_empty(),
        "refused set_quota changed quota: {q:?}"
    );
    ops_alice
        .clone()
        .set_quota(quota("web"))
        .await
        .expect("alice sets quota");
    let e = ops_mallory
        .clone()
        .remove_quota(v1::RemoveQuotaRequest { role: "web".into() })
        .await
        .expect_err("mallory");
    denied(e, "set_quota on 'web'");
    let q = ops_alice
        .clone()
        .get_quota(v1::Empty {})
        .await
        .expect("quota")
        .into_inner();
    assert_eq!(q.quotas.len(), 1);

    // update_weights.
    let weights = |w: f64| v1::UpdateWeightsRequest {
        weights: vec![v1::WeightInfo {
            role: "web".into(),
            weight: w,
        }],
    };
    let e = ops_mallory
        .clone()
        .update_weights(weights(7.0))
        .await
        .expect_err("mallory");
    denied(e, "update_weights on 'web'");
    let w = ops_alice
        .clone()
        .get_weights(v1::Empty {})
        .await
        .expect("w")
        .into_inner();
    assert!(w.weights.iter().all(|w| w.weight != 7.0), "{w:?}");
    ops_alice
        .clone()
        .update_weights(weights(2.0))
        .await
        .expect("alice");
    let w = ops_alice
        .clone()
        .get_weights(v1::Empty {})
        .await
        .expect("w")
        .into_inner();
    assert!(
        w.weights.iter().any(|w| w.role == "web" && w.weight == 2.0),
        "{w:?}"
    );

    // Reservations and volumes: the ACL check comes first (what happens after it is the
    // reservation code's business, so the allowed case only must not be PERMISSION_DENIED).
    let agent_id = c.state()["agents"][0]["id"]
        .as_str()
        .expect("agent id")
        .to_string();
    let reserve = |role: &str, principal: &str| v1::ReserveResourcesRequest {
        agent_id: agent_id.clone(),
        resources: vec![reserved(role, principal)],
    };
    let e = ops_mallory
        .clone()
        .reserve_resources(reserve("web", "mallory"))
        .await
        .expect_err("m");
    denied(e, "reserve_resources on 'web'");
    let r = ops_alice
        .clone()
        .reserve_resources(reserve("web", "alice"))
        .await;
    assert!(
        r.as_ref()
            .err()
            .is_none_or(|e| e.code() != Code::PermissionDenied),
        "{r:?}"
    );
    let unreserve = v1::UnreserveResourcesRequest {
        agent_id: agent_id.clone(),
        resources: vec![reserved("web", "alice")],
    };
    let e = ops_mallory
        .clone()
        .unreserve_resources(unreserve.clone())
        .await
        .expect_err("m");
    denied(e, "unreserve_resources on 'alice'");
    let r = ops_alice.clone().unreserve_resources(unreserve).await;
    assert!(
        r.as_ref()
            .err()
            .is_none_or(|e| e.code() != Code::PermissionDenied),
        "{r:?}"
    );
    let volumes = v1::VolumesRequest {
        agent_id: agent_id.clone(),
        volumes: vec![volume("web", "alice")],
    };
    let e = ops_mallory
        .clone()
        .create_volumes(volumes.clone())
        .await
        .expect_err("m");
    denied(e, "create_volume on 'web'");
    let r = ops_alice.clone().create_volumes(volumes.clone()).await;
    assert!(
        r.as_ref()
            .err()
            .is_none_or(|e| e.code() != Code::PermissionDenied),
        "{r:?}"
    );
    let e = ops_mallory
        .clone()
        .destroy_volumes(volumes.clone())
        .await
        .expect_err("m");
    denied(e, "destroy_volume on 'alice'");
    let r = ops_alice.clone().destroy_volumes(volumes).await;
    assert!(
        r.as_ref()
            .err()
            .is_none_or(|e| e.code() != Code::PermissionDenied),
        "{r:?}"
    );

    // drain_agent (deactivate/reactivate as the harmless maintenance calls).
    let agent = || v1::AgentRequest {
        agent_id: agent_id.clone(),
    };
    let e = ops_mallory
        .clone()
        .deactivate_agent(agent())
        .await
        .expect_err("m");
    denied(e, &format!("drain_agent on '{agent_id}'"));
    assert_eq!(c.state()["agents"][0]["status"], "registered");
    ops_alice
        .clone()
        .deactivate_agent(agent())
        .await
        .expect("alice deactivates");
    ops_alice
        .clone()
        .reactivate_agent(agent())
        .await
        .expect("alice reactivates");

    // view_frameworks / view_tasks: mallory sees neither frameworks nor tasks.
    let seen = ops_mallory
        .clone()
        .get_state(v1::Empty {})
        .await
        .expect("state")
        .into_inner();
    assert!(
        seen.frameworks.is_empty() && seen.tasks.is_empty(),
        "{seen:?}"
    );
    assert_eq!(seen.agents.len(), 1);
    let seen = ops_alice
        .clone()
        .get_state(v1::Empty {})
        .await
        .expect("state")
        .into_inner();
    assert_eq!(seen.frameworks.len(), 1);
    assert!(!seen.tasks.is_empty());
    let (code, body) = http_request_with(
        addr,
        "GET",
        "/api/v1/state",
        None,
        &[("authorization", &basic("mallory"))],
    )
    .expect("state");
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert!(framework_names(&v).is_empty(), "{v}");

    // teardown_framework (object: the framework's principal), gRPC and HTTP.
    let e = ops_mallory
        .clone()
        .teardown_framework(v1::TeardownRequest {
            framework_id: alice.id.clone(),
        })
        .await
        .expect_err("mallory");
    denied(e, "teardown_framework on 'alice'");
    let (code, body) = http_request_with(
        addr,
        "POST",
        &format!("/api/v1/frameworks/{}/teardown", alice.id),
        None,
        &[("authorization", &basic("mallory"))],
    )
    .expect("teardown");
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("teardown_framework on 'alice'"), "{body}");
    // The operator's task kill is gated the same way, over gRPC and HTTP.
    let e = ops_mallory
        .clone()
        .kill_task(v1::KillTaskRequest {
            framework_id: alice.id.clone(),
            task_id: "t-alice".into(),
        })
        .await
        .expect_err("mallory");
    denied(e, "teardown_framework on 'alice'");
    let (code, body) = http_request_with(
        addr,
        "POST",
        &format!("/api/v1/tasks/{}/t-alice/kill", alice.id),
        None,
        &[("authorization", &basic("mallory"))],
    )
    .expect("kill");
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("teardown_framework on 'alice'"), "{body}");
    assert_eq!(framework_names(&c.state()), vec!["alice-fw".to_string()]);
    ops_alice
        .clone()
        .teardown_framework(v1::TeardownRequest {
            framework_id: alice.id.clone(),
        })
        .await
        .expect("alice tears down her framework");
    c.wait_until("framework gone", |s| {
        s["frameworks"]
            .as_array()
            .is_some_and(|f| f.iter().all(|f| f["status"] != "connected"))
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_calls_over_the_rate_limit_are_refused() {
    let dir = TempDir::new("rate");
    let creds = write(&dir.0, "credentials.json", CREDENTIALS);
    let limits = write(
        &dir.0,
        "limits.json",
        r#"{"limits": [{"principal": "fw", "qps": 0.1, "burst": 3}]}"#,
    );
    let c = Cluster::start_in(
        dir,
        0,
        &[
            "--credentials",
            &creds,
            "--authenticate-frameworks",
            "--rate-limits",
            &limits,
        ],
        None,
        &[],
    );
    // Subscribe takes one token, two revives the rest; the next call is refused.
    let mut fw =
        Framework::try_subscribe(c.addr, info("limited", "fw", &["e2e"]), Some(cred("fw")))
            .await
            .expect("subscribe");
    let revive = v1::ReviveRequest {
        framework_id: fw.id.clone(),
        roles: Vec::new(),
    };
    fw.client.revive(revive.clone()).await.expect("2nd call");
    fw.client.revive(revive.clone()).await.expect("3rd call");
    let e = fw.client.revive(revive).await.expect_err("over the limit");
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert_eq!(
        e.message(),
        "rate limit exceeded for principal 'fw': 0.1 calls/s (burst 3); slow down and retry"
    );
    // Other principals are not limited.
    let mut other =
        Framework::try_subscribe(c.addr, info("free", "fw2", &["e2e"]), Some(cred("fw2")))
            .await
            .expect("fw2");
    for _ in 0..10 {
        other
            .client
            .revive(v1::ReviveRequest {
                framework_id: other.id.clone(),
                roles: Vec::new(),
            })
            .await
            .expect("no limit for fw2");
    }
    let (code, metrics) = http_get(c.addr, "/metrics").expect("metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("agora_rate_limited_calls_total{principal=\"fw\"} 1"),
        "{metrics}"
    );
}

/// A TLS master (the support cluster speaks plain HTTP to it, so it is started here).
fn start_tls_master(dir: &Path, extra: &[&str]) -> (std::net::SocketAddr, Proc) {
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let mut args = vec![
        "--listen".to_string(),
        addr.to_string(),
        "--data-dir".to_string(),
        dir.join("master").display().to_string(),
        "--allocation-interval-ms".to_string(),
        "200".to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let master = Proc::spawn(
        "master",
        &binary("agora-master"),
        &args,
        dir.join("master.log"),
    );
    wait_log(&master, "agora-master listening");
    (addr, master)
}

fn plain_http_fails(addr: std::net::SocketAddr) {
    let r = http_get(addr, "/health");
    assert!(
        !matches!(r, Ok((200, _))),
        "a plain-text request to the TLS port must fail: {r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_sdk_agent_and_cli_and_refuses_plain_text() {
    let dir = TempDir::new("tls");
    let pki = make_pki(&dir.0);
    let (addr, mut master) = start_tls_master(
        &dir.0,
        &["--tls-cert", &pki.server_cert, "--tls-key", &pki.server_key],
    );
    let https = format!("https://{addr}");
    plain_http_fails(addr);
    // A plain-text gRPC client fails too.
    let plain = match Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
    {
        Err(e) => Err(e.to_string()),
        Ok(ch) => OperatorClient::new(ch)
            .get_health(v1::Empty {})
            .await
            .map_err(|e| e.to_string()),
    };
    assert!(
        plain.is_err(),
        "plain gRPC to a TLS port must fail: {plain:?}"
    );

    // CLI (SDK endpoint) with the CA; without it, it refuses to connect.
    let ok = agora(&["state", "--master", &https, "--tls-ca", &pki.ca, "--json"]);
    assert!(ok.status.success(), "{}", text(&ok));
    let no_ca = agora(&["state", "--master", &https]);
    assert!(!no_ca.status.success());
    assert!(
        text(&no_ca).contains("needs a CA certificate"),
        "{}",
        text(&no_ca)
    );

    // An agent over https with the CA registers.
    let agent_dir = dir.0.join("agent-0");
    let agent_args: Vec<String> = [
        "--master",
        &https,
        "--tls-ca",
        &pki.ca,
        "--work-dir",
        &agent_dir.display().to_string(),
        "--resources",
        AGENT_RESOURCES,
        "--hostname",
        "tls-agent",
        "--isolation",
        "process",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut agent = Proc::spawn(
        "agent-0",
        &binary("agora-agent"),
        &agent_args,
        dir.0.join("agent-0.log"),
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let out = agora(&["agents", "--master", &https, "--tls-ca", &pki.ca, "--json"]);
        if text(&out).contains("tls-agent") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "agent never registered over TLS:\n{}\n{}",
            agent.log_text(),
            master.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The SDK driver (agora run) over TLS runs a task to completion.
    let run = agora(&[
        "run",
        "--master",
        &https,
        "--tls-ca",
        &pki.ca,
        "--timeout",
        "60",
        "--",
        "true",
    ]);
    assert!(run.status.success(), "agora run over TLS:\n{}", text(&run));
    agent.stop();
    master.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesos_redirect_names_https_on_a_tls_master() {
    let dir = TempDir::new("tls-redirect");
    let pki = make_pki(&dir.0);
    let (addr, mut master) = start_tls_master(
        &dir.0,
        &["--tls-cert", &pki.server_cert, "--tls-key", &pki.server_key],
    );
    let ca = std::fs::read(&pki.ca).expect("ca");
    for path in ["/master/redirect", "/redirect"] {
        let response = https_get(addr, &ca, path).await.expect("https GET");
        let head = response.to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 307"), "{path}: {response}");
        assert!(
            head.contains(&format!("location: https://{addr}\r\n")),
            "{path}: {response}"
        );
    }
    master.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_requires_a_client_certificate() {
    let dir = TempDir::new("mtls");
    let pki = make_pki(&dir.0);
    let (addr, mut master) = start_tls_master(
        &dir.0,
        &[
            "--tls-cert",
            &pki.server_cert,
            "--tls-key",
            &pki.server_key,
            "--tls-client-ca",
            &pki.ca,
        ],
    );
    let https = format!("https://{addr}");
    plain_http_fails(addr);
    let without = agora(&["state", "--master", &https, "--tls-ca", &pki.ca]);
    assert!(!without.status.success(), "no client certificate must fail");
    // A certificate from another CA is refused as well.
    let other_dir = dir.0.join("other");
    std::fs::create_dir_all(&other_dir).expect("dir");
    let other = make_pki(&other_dir);
    let foreign = agora(&[
        "state",
        "--master",
        &https,
        "--tls-ca",
        &pki.ca,
        "--tls-cert",
        &other.client_cert,
        "--tls-key",
        &other.client_key,
    ]);
    assert!(
        !foreign.status.success(),
        "a foreign client certificate must fail"
    );
    let with = agora(&[
        "state",
        "--master",
        &https,
        "--tls-ca",
        &pki.ca,
        "--tls-cert",
        &pki.client_cert,
        "--tls-key",
        &pki.client_key,
        "--json",
    ]);
    assert!(
        with.status.success(),
        "{}\n{}",
        text(&with),
        master.log_text()
    );
    master.stop();
}

#[test]
fn master_refuses_bad_security_files_at_start() {
    let dir = TempDir::new("badsec");
    let run = |args: &[&str]| {
        let out = Command::new(binary("agora-master"))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.0.join("m"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run master");
        assert!(!out.status.success(), "{args:?} started");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let empty = write(
        &dir.0,
        "empty-secret.json",
        r#"[{"principal": "a", "secret": ""}]"#,
    );
    assert!(run(&["--credentials", &empty]).contains("principal 'a' has an empty secret"));
    let missing: PathBuf = dir.0.join("nope.json");
    assert!(run(&["--credentials", &missing.display().to_string()]).contains("cannot read"));
    assert!(run(&["--authenticate-frameworks"]).contains("needs --credentials"));
    let acls = write(&dir.0, "acls.json", r#"{"launch": []}"#);
    assert!(run(&["--acls", &acls]).contains("unknown action 'launch'"));
    let limits = write(
        &dir.0,
        "limits.json",
        r#"{"limits": [{"principal": "a", "qps": 0}]}"#,
    );
    assert!(run(&["--rate-limits", &limits]).contains("qps must be a finite number > 0"));
    let junk = write(&dir.0, "junk.pem", "junk");
    assert!(run(&["--tls-cert", &junk, "--tls-key", &junk]).contains("holds no PEM certificate"));
    assert!(run(&["--agent-removal-rate", "5/min"]).contains("expected 1/<number><unit>"));
}

/// GET `path` over TLS, verifying the server against `ca_pem`; the status line and body.
async fn https_get(
    addr: std::net::SocketAddr,
    ca_pem: &[u8],
    path: &str,
) -> Result<String, String> {
    use rustls_pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    // A peer closing without close_notify is fine for this check.
    let _ = tls.read_to_end(&mut out).await;
    Ok(String::from_utf8_lossy(&out).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_http_endpoint_serves_tls() {
    let dir = TempDir::new("agent-tls");
    let pki = make_pki(&dir.0);
    let mut c = Cluster::start_in(dir, 0, &[], None, &[]);
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
        ],
    );
    c.wait_agents(1);
    let addr: std::net::SocketAddr = listen.parse().expect("addr");
    let ca = std::fs::read(&pki.ca).expect("ca");
    let deadline = Instant::now() + WAIT;
    let reply = loop {
        match https_get(addr, &ca, "/health").await {
            Ok(r) if r.starts_with("HTTP/1.1 200") => break r,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "no TLS answer: {other:?}\n{}",
                    c.logs()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert!(reply.ends_with("ok"), "{reply}");
    plain_http_fails(addr);
    // A client that does not trust the agent's CA is refused.
    let other_dir = c.dir.0.join("other");
    std::fs::create_dir_all(&other_dir).expect("dir");
    let other = make_pki(&other_dir);
    let foreign = std::fs::read(&other.ca).expect("ca");
    assert!(https_get(addr, &foreign, "/health").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_sandbox_endpoints_need_credentials_and_access_sandbox() {
    let dir = TempDir::new("sandbox-acl");
    let me = String::from_utf8(
        Command::new("id")
            .arg("-un")
            .output()
            .expect("id -un")
            .stdout,
    )
    .expect("utf-8")
    .trim()
    .to_string();
    let creds = write(&dir.0, "credentials.json", CREDENTIALS);
    let acls = write(
        &dir.0,
        "acls.json",
        &serde_json::json!({
            "access_sandbox": [{"principals": ["alice"], "objects": [me]}],
            "view_frameworks": [{"principals": ["alice"], "objects": "ANY"}],
            "view_tasks": [{"principals": ["alice"], "objects": "ANY"}]
        })
        .to_string(),
    );
    let mut c = Cluster::start_in(dir, 0, &[], None, &[]);
    let listen = format!("127.0.0.1:{}", free_port());
    c.add_agent_with(
        0,
        &[
            "--listen",
            &listen,
            "--http-credentials",
            &creds,
            "--authenticate-http",
            "--http-acls",
            &acls,
            "--isolation",
            "process",
            // The task runs as this test's user, root on CI: the operator must allow it.
            "--allow-root-tasks",
        ],
    );
    c.wait_agents(1);
    let agent: std::net::SocketAddr = listen.parse().expect("addr");

    let mut fw = Framework::subscribe(c.addr, "sandboxed").await;
    let offers = fw.wait_offers(1).await;
    let mut task = shell_task("sleeper", "cpus:0.1;mem:16", "echo hello; sleep 30");
    if let Some(cmd) = task.command.as_mut() {
        cmd.user = me.clone();
    }
    fw.accept(vec![offers[0].id.clone()], vec![launch(vec![task])], None)
        .await
        .expect("launch");
    fw.wait_for("sleeper running", |s| {
        s.get("sleeper")
            .is_some_and(|s| state_of(s) == agora_proto::TaskState::Running)
    })
    .await;

    let tail = format!(
        "/files/tail?framework_id={}&task_id=sleeper&path=stdout",
        fw.id
    );
    let get = |path: &str, who: Option<&str>| {
        let auth = who.map(basic);
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| ("authorization", a))
            .into_iter()
            .collect();
        http_request_with(agent, "GET", path, None, &headers).expect("agent http")
    };
    assert_eq!(get("/health", None).0, 200);
    let (code, body) = get(&tail, None);
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("missing credentials"), "{body}");
    assert_eq!(get("/containers", None).0, 401);
    let (code, body) = get(&tail, Some("mallory"));
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains(&format!(
            "principal 'mallory' is not authorized to access_sandbox on '{me}'"
        )),
        "{body}"
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, body) = get(&tail, Some("alice"));
        assert_eq!(code, 200, "{body}");
        if body.contains("hello") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stdout never showed hello: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A sandbox the agent cannot attribute to a running task has no user: denied.
    let (code, body) = get(
        "/files/tail?framework_id=nope&task_id=nope&path=stdout",
        Some("alice"),
    );
    assert_eq!(code, 403, "{body}");
    assert_eq!(get("/containers", Some("mallory")).0, 200);

    // Mesos's agent /state: authenticated, and showing only what the caller may view.
    assert_eq!(get("/state", None).0, 401);
    let (code, body) = get("/state", Some("mallory"));
    assert_eq!(code, 200, "{body}");
    let hidden: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(hidden["frameworks"], serde_json::json!([]), "{body}");
    let (code, body) = get("/slave(1)/state", Some("alice"));
    assert_eq!(code, 200, "{body}");
    let shown: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let executor = &shown["frameworks"][0]["executors"][0];
    assert_eq!(executor["id"], "sleeper", "{body}");
    // Mesos-style paths are held to the same access_sandbox rule as Agora's.
    let read = format!(
        "/files/read?path={}/stdout&offset=0",
        executor["directory"].as_str().expect("directory")
    );
    let (code, body) = get(&read, Some("mallory"));
    assert_eq!(code, 403, "{body}");
    let (code, body) = get(&read, Some("alice"));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("hello"), "{body}");
}
