//! The ACL matrix, data-driven, against a real `agora-master` and `agora-agent`: one row
//! per (call, principal), in order. A denied row must answer PERMISSION_DENIED naming the
//! action and object, and change nothing: the master's state view (as an operator who may
//! see everything), its quota and weights, and its registry files on disk are compared
//! before and after. An allowed row must answer OK and show its effect.
//!
//! Every ACL'd action of `agora_auth::Action` that a master call checks has rows here
//! (`access_sandbox` is checked by the agent's own endpoint: e2e_security.rs); the view
//! actions filter reads rather than refuse them and have their own rows.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agora_proto::v1;
use serde_json::Value;
use support::*;
use tonic::Code;

const CREDENTIALS: &str = r#"[
  {"principal": "agent", "secret": "agent-secret"},
  {"principal": "alice", "secret": "alice-secret"},
  {"principal": "mallory", "secret": "mallory-secret"}
]"#;

fn acls() -> String {
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
        "register_agent": [{"principals": ["agent"], "objects": "ANY"}]
    })
    .to_string()
}

/// `text` (one scalar) dynamically reserved for `role` by `principal`, optionally a volume.
fn reserved(text: &str, role: &str, principal: &str, volume: bool) -> v1::Resource {
    let mut r = res(text).to_proto().remove(0);
    r.reservation = Some(v1::Reservation {
        r#type: v1::reservation::Type::Dynamic as i32,
        role: role.into(),
        principal: principal.into(),
        labels: Vec::new(),
    });
    if volume {
        r.disk = Some(v1::DiskInfo {
            persistence_id: "acl-volume".into(),
            principal: principal.into(),
            container_path: "data".into(),
            ..Default::default()
        });
    }
    r
}

/// One call of the matrix; who makes it is the row's principal.
#[derive(Debug, Clone, Copy)]
enum Call {
    /// Subscribe a framework with this role (register_framework, object: the role).
    Subscribe(&'static str),
    /// alice's framework launches a task as this user (run_task, object: the user).
    Launch(&'static str),
    /// Reserve this scalar for `web` (reserve_resources, object: the role).
    Reserve(&'static str),
    /// Unreserve alice's reservation of this scalar (object: the reserving principal).
    Unreserve(&'static str),
    /// Create a volume on alice's reserved disk (create_volume, object: the role).
    CreateVolume,
    /// Destroy alice's volume (destroy_volume, object: its creating principal).
    DestroyVolume,
    /// Set `web`'s quota (set_quota, object: the role).
    SetQuota,
    RemoveQuota,
    /// Set `web`'s weight (update_weights, object: the role).
    Weight(f64),
    /// Deactivate / reactivate / drain / mark gone the agent (drain_agent, object: the
    /// agent id).
    Deactivate,
    Reactivate,
    Drain,
    MarkGone,
    /// Tear alice's framework down over gRPC / over HTTP (teardown_framework, object: the
    /// framework's principal).
    Teardown,
    TeardownHttp,
}

/// What a row must see.
#[derive(Clone, Copy)]
enum Expect {
    /// PERMISSION_DENIED naming `action on 'object'`, and nothing changed.
    Denied(&'static str),
    /// OK, and this holds afterwards.
    Allowed(fn(&After) -> Result<(), String>),
}

/// What the master shows after an allowed call.
struct After {
    state: v1::ClusterState,
    quota: v1::QuotaResponse,
    weights: v1::WeightsResponse,
}

struct Ctx {
    addr: std::net::SocketAddr,
    agent_id: String,
    alice_fw: Option<Framework>,
    /// An offer alice's framework holds (a refused launch leaves it outstanding).
    offer: Option<String>,
    ops: BTreeMap<&'static str, SecuredOperator>,
    data_dir: PathBuf,
}

/// The agent's total resources in the master's view.
fn agent_total(a: &After) -> Vec<v1::Resource> {
    a.state
        .agents
        .first()
        .map(|x| x.total.clone())
        .unwrap_or_default()
}

fn has_reservation(a: &After, name: &str) -> bool {
    agent_total(a).iter().any(|r| {
        r.name == name
            && r.reservation
                .as_ref()
                .is_some_and(|x| x.role == "web" && x.principal == "alice")
    })
}

fn has_volume(a: &After) -> bool {
    agent_total(a).iter().any(|r| {
        r.disk
            .as_ref()
            .is_some_and(|d| d.persistence_id == "acl-volume")
    })
}

fn agent_status(a: &After) -> String {
    a.state
        .agents
        .first()
        .map(|x| x.status.clone())
        .unwrap_or_default()
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what()) }
}

/// The rows, in the order they run (each allowed call sets up what the next rows need).
fn rows() -> Vec<(&'static str, Call, Expect)> {
    use Call::*;
    use Expect::*;
    vec![
        (
            "mallory",
            Subscribe("web"),
            Denied("register_framework on 'web'"),
        ),
        (
            "alice",
            Subscribe("db"),
            Denied("register_framework on 'db'"),
        ),
        (
            "alice",
            Subscribe("web"),
            Allowed(|a| {
                check(
                    a.state.frameworks.iter().any(|f| {
                        f.info.as_ref().is_some_and(|i| i.principal == "alice")
                            && f.status == "connected"
                    }),
                    || {
                        format!(
                            "alice's framework is not connected: {:?}",
                            a.state.frameworks
                        )
                    },
                )
            }),
        ),
        ("alice", Launch("root"), Denied("run_task on 'root'")),
        (
            "alice",
            Launch("alice"),
            Allowed(|a| {
                check(
                    // Running: the rows after it then see a task that no longer moves.
                    a.state.tasks.iter().any(|t| {
                        t.task
                            .as_ref()
                            .is_some_and(|i| i.task_id == "acl-task-alice")
                            && (t.state() == agora_proto::TaskState::Running
                                || t.state().is_terminal())
                    }),
                    || "the task is neither running nor ended in the master's state".to_string(),
                )
            }),
        ),
        (
            "mallory",
            Reserve("cpus:1"),
            Denied("reserve_resources on 'web'"),
        ),
        (
            "alice",
            Reserve("cpus:1"),
            Allowed(|a| {
                check(has_reservation(a, "cpus"), || {
                    format!("no cpus reserved for web by alice: {:?}", agent_total(a))
                })
            }),
        ),
        (
            "mallory",
            Unreserve("cpus:1"),
            Denied("unreserve_resources on 'alice'"),
        ),
        (
            "alice",
            Unreserve("cpus:1"),
            Allowed(|a| {
                check(!has_reservation(a, "cpus"), || {
                    format!("the cpus reservation is still there: {:?}", agent_total(a))
                })
            }),
        ),
        (
            "alice",
            Reserve("disk:8"),
            Allowed(|a| {
                check(has_reservation(a, "disk"), || {
                    format!("no disk reserved for web by alice: {:?}", agent_total(a))
                })
            }),
        ),
        ("mallory", CreateVolume, Denied("create_volume on 'web'")),
        (
            "alice",
            CreateVolume,
            Allowed(|a| check(has_volume(a), || format!("no volume: {:?}", agent_total(a)))),
        ),
        (
            "mallory",
            DestroyVolume,
            Denied("destroy_volume on 'alice'"),
        ),
        (
            "alice",
            DestroyVolume,
            Allowed(|a| {
                check(!has_volume(a) && has_reservation(a, "disk"), || {
                    format!(
                        "the volume is still there or its reservation went: {:?}",
                        agent_total(a)
                    )
                })
            }),
        ),
        ("mallory", SetQuota, Denied("set_quota on 'web'")),
        (
            "alice",
            SetQuota,
            Allowed(|a| {
                check(
                    a.quota
                        .quotas
                        .iter()
                        .any(|q| q.role == "web" && !q.guarantee.is_empty()),
                    || format!("no quota for web: {:?}", a.quota),
                )
            }),
        ),
        ("mallory", RemoveQuota, Denied("set_quota on 'web'")),
        (
            "alice",
            RemoveQuota,
            Allowed(|a| {
                check(a.quota.quotas.iter().all(|q| q.role != "web"), || {
                    format!("web's quota is still there: {:?}", a.quota)
                })
            }),
        ),
        ("mallory", Weight(7.0), Denied("update_weights on 'web'")),
        (
            "alice",
            Weight(2.0),
            Allowed(|a| {
                check(
                    a.weights
                        .weights
                        .iter()
                        .any(|w| w.role == "web" && w.weight == 2.0),
                    || format!("web's weight is not 2: {:?}", a.weights),
                )
            }),
        ),
        ("mallory", Deactivate, Denied("drain_agent on")),
        (
            "alice",
            Deactivate,
            Allowed(|a| {
                check(agent_status(a) == "deactivated", || {
                    format!("agent is {}", agent_status(a))
                })
            }),
        ),
        ("mallory", Reactivate, Denied("drain_agent on")),
        (
            "alice",
            Reactivate,
            Allowed(|a| {
                check(agent_status(a) == "registered", || {
                    format!("agent is {}", agent_status(a))
                })
            }),
        ),
        ("mallory", Drain, Denied("drain_agent on")),
        ("mallory", MarkGone, Denied("drain_agent on")),
        ("mallory", Teardown, Denied("teardown_framework on 'alice'")),
        (
            "mallory",
            TeardownHttp,
            Denied("teardown_framework on 'alice'"),
        ),
        (
            "alice",
            Teardown,
            Allowed(|a| {
                check(
                    a.state.frameworks.iter().all(|f| f.status != "connected"),
                    || {
                        format!(
                            "alice's framework is still connected: {:?}",
                            a.state.frameworks
                        )
                    },
                )
            }),
        ),
        (
            "alice",
            MarkGone,
            Allowed(|a| {
                check(
                    matches!(agent_status(a).as_str(), "gone" | "removed"),
                    || format!("agent is {}", agent_status(a)),
                )
            }),
        ),
    ]
}

/// Runs one call as `principal`; the refusal as `Err` (HTTP 403 as PERMISSION_DENIED).
async fn run(ctx: &mut Ctx, principal: &'static str, call: Call) -> Result<(), tonic::Status> {
    let agent = || v1::AgentRequest {
        agent_id: ctx.agent_id.clone(),
    };
    let ops = ctx.ops[principal].clone();
    let volume = || v1::VolumesRequest {
        agent_id: ctx.agent_id.clone(),
        volumes: vec![reserved("disk:8", "web", "alice", true)],
    };
    let quota = || v1::SetQuotaRequest {
        quota: Some(v1::QuotaInfo {
            role: "web".into(),
            guarantee: res("cpus:1").to_proto(),
            limit: Vec::new(),
        }),
        force: true,
    };
    let alice_fw_id = ctx
        .alice_fw
        .as_ref()
        .map(|f| f.id.clone())
        .unwrap_or_default();
    match call {
        Call::Subscribe(role) => {
            let info = v1::FrameworkInfo {
                name: format!("{principal}-fw"),
                principal: principal.into(),
                roles: vec![role.into()],
                failover_timeout_seconds: 60.0,
                ..Default::default()
            };
            let fw =
                Framework::try_subscribe(ctx.addr, info, Some(test_credential(principal))).await?;
            ctx.alice_fw = Some(fw);
            Ok(())
        }
        Call::Launch(user) => {
            let fw = ctx.alice_fw.as_mut().expect("alice's framework");
            // A refused accept leaves its offer outstanding: the next row uses it.
            let offer = match ctx.offer.take() {
                Some(o) => o,
                None => fw.wait_offers(1).await.remove(0).id,
            };
            ctx.offer = Some(offer.clone());
            let mut task = shell_task(&format!("acl-task-{user}"), "cpus:0.1;mem:16", "sleep 600");
            if let Some(cmd) = task.command.as_mut() {
                cmd.user = user.into();
            }
            fw.accept(vec![offer], vec![launch(vec![task])], None)
                .await?;
            ctx.offer = None;
            Ok(())
        }
        Call::Reserve(text) => ops
            .clone()
            .reserve_resources(v1::ReserveResourcesRequest {
                agent_id: ctx.agent_id.clone(),
                resources: vec![reserved(text, "web", principal, false)],
            })
            .await
            .map(|_| ()),
        Call::Unreserve(text) => ops
            .clone()
            .unreserve_resources(v1::UnreserveResourcesRequest {
                agent_id: ctx.agent_id.clone(),
                resources: vec![reserved(text, "web", "alice", false)],
            })
            .await
            .map(|_| ()),
        Call::CreateVolume => ops.clone().create_volumes(volume()).await.map(|_| ()),
        Call::DestroyVolume => ops.clone().destroy_volumes(volume()).await.map(|_| ()),
        Call::SetQuota => ops.clone().set_quota(quota()).await.map(|_| ()),
        Call::RemoveQuota => ops
            .clone()
            .remove_quota(v1::RemoveQuotaRequest { role: "web".into() })
            .await
            .map(|_| ()),
        Call::Weight(weight) => ops
            .clone()
            .update_weights(v1::UpdateWeightsRequest {
                weights: vec![v1::WeightInfo {
                    role: "web".into(),
                    weight,
                }],
            })
            .await
            .map(|_| ()),
        Call::Deactivate => ops.clone().deactivate_agent(agent()).await.map(|_| ()),
        Call::Reactivate => ops.clone().reactivate_agent(agent()).await.map(|_| ()),
        Call::Drain => ops
            .clone()
            .drain_agent(v1::DrainAgentRequest {
                agent_id: ctx.agent_id.clone(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        Call::MarkGone => ops.clone().mark_agent_gone(agent()).await.map(|_| ()),
        Call::Teardown => ops
            .clone()
            .teardown_framework(v1::TeardownRequest {
                framework_id: alice_fw_id,
            })
            .await
            .map(|_| ()),
        Call::TeardownHttp => {
            let (code, body) = http_request_with(
                ctx.addr,
                "POST",
                &format!("/api/v1/frameworks/{alice_fw_id}/teardown"),
                None,
                &[("authorization", &basic_auth(principal))],
            )
            .expect("teardown over HTTP");
            match code {
                200..=299 => Ok(()),
                403 => Err(tonic::Status::permission_denied(body)),
                _ => Err(tonic::Status::unknown(format!("HTTP {code}: {body}"))),
            }
        }
    }
}

/// The registry's files, byte for byte.
fn registry_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_file() {
                files.insert(
                    e.file_name().to_string_lossy().to_string(),
                    std::fs::read(e.path()).unwrap_or_default(),
                );
            }
        }
    }
    files
}

/// The state view without what moves by itself: heartbeat times and the offers the
/// allocator makes and rescinds on its own clock (and the shares and role totals that
/// count them).
fn stable_state(addr: std::net::SocketAddr) -> Value {
    let (code, body) = http_request_with(
        addr,
        "GET",
        "/api/v1/state",
        None,
        &[("authorization", &basic_auth("alice"))],
    )
    .expect("state");
    assert_eq!(code, 200, "{body}");
    let mut v: Value = serde_json::from_str(&body).expect("state json");
    if let Some(o) = v.as_object_mut() {
        o.remove("offers");
    }
    for (list, fields) in [
        ("agents", &["last_heartbeat_ms", "offered"][..]),
        ("frameworks", &["offered"][..]),
        ("roles", &["allocated", "dominant_share"][..]),
    ] {
        if let Some(items) = v[list].as_array_mut() {
            for item in items {
                if let Some(o) = item.as_object_mut() {
                    for f in fields {
                        o.remove(*f);
                    }
                }
            }
        }
    }
    v
}

async fn after(ctx: &Ctx) -> After {
    let mut alice = ctx.ops["alice"].clone();
    After {
        state: alice
            .get_state(v1::Empty {})
            .await
            .expect("state")
            .into_inner(),
        quota: alice
            .get_quota(v1::Empty {})
            .await
            .expect("quota")
            .into_inner(),
        weights: alice
            .get_weights(v1::Empty {})
            .await
            .expect("weights")
            .into_inner(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_matrix_denied_calls_change_nothing_allowed_calls_take_effect() {
    let dir = TempDir::new("acl-matrix");
    let write = |name: &str, text: &str| {
        let p = dir.0.join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    };
    let creds = write("credentials.json", CREDENTIALS);
    let acls = write("acls.json", &acls());
    let secret = write("agent.secret", "agent-secret");
    let data_dir = dir.0.join("master");
    let c = Cluster::start_in(
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
        Some(basic_auth("alice")),
        &["--principal", "agent", "--secret-file", &secret],
    );
    c.wait_agents(1);
    let agent_id = c.state()["agents"][0]["id"]
        .as_str()
        .expect("agent id")
        .to_string();
    let mut ops = BTreeMap::new();
    for p in ["alice", "mallory"] {
        ops.insert(p, secured_operator(c.addr, p).await);
    }
    let mut ctx = Ctx {
        addr: c.addr,
        agent_id,
        alice_fw: None,
        offer: None,
        ops,
        data_dir,
    };
    let mut failures = Vec::new();
    let mut denied = 0;
    let mut allowed = 0;
    for (principal, call, expect) in rows() {
        let state_before = stable_state(ctx.addr);
        let registry_before = registry_files(&ctx.data_dir);
        let before = after(&ctx).await;
        let answer = run(&mut ctx, principal, call).await;
        match expect {
            Expect::Denied(needle) => {
                denied += 1;
                match &answer {
                    Err(e)
                        if e.code() == Code::PermissionDenied
                            && e.message().contains(&format!(
                                "principal '{principal}' is not authorized to {needle}"
                            )) => {}
                    other => failures.push(format!(
                        "{principal} {call:?}: expected PERMISSION_DENIED naming {needle:?}, got {other:?}"
                    )),
                }
                if stable_state(ctx.addr) != state_before {
                    failures.push(format!(
                        "{principal} {call:?}: denied, yet the state changed:\nbefore {state_before}\nafter  {}",
                        stable_state(ctx.addr)
                    ));
                }
                if registry_files(&ctx.data_dir) != registry_before {
                    failures.push(format!(
                        "{principal} {call:?}: denied, yet the registry changed"
                    ));
                }
                let now = after(&ctx).await;
                if now.quota != before.quota || now.weights != before.weights {
                    failures.push(format!(
                        "{principal} {call:?}: denied, yet quota or weights changed"
                    ));
                }
            }
            Expect::Allowed(effect) => {
                allowed += 1;
                if let Err(e) = &answer {
                    failures.push(format!("{principal} {call:?}: expected OK, got {e:?}"));
                    continue;
                }
                // Some effects (teardown, the agent's maintenance) are applied as the
                // call returns; give the view a moment only where it needs one.
                let deadline = std::time::Instant::now() + WAIT;
                loop {
                    // alice's framework reads its events and acknowledges its updates.
                    if let Some(fw) = ctx.alice_fw.as_mut() {
                        fw.pump(std::time::Duration::from_millis(50)).await;
                    }
                    let now = after(&ctx).await;
                    match effect(&now) {
                        Ok(()) => break,
                        Err(e) if std::time::Instant::now() > deadline => {
                            failures.push(format!("{principal} {call:?}: allowed, but {e}"));
                            break;
                        }
                        Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        denied + allowed,
        failures.join("\n")
    );
    assert!(
        denied >= 15 && allowed >= 12,
        "{denied} denied, {allowed} allowed rows"
    );
}
