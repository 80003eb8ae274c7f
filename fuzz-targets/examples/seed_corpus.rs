//! Writes the starting corpus of every fuzz target under `fuzz/corpus/<target>/`, built with
//! the product's own types so each seed is a valid input the fuzzers then bend.
//!
//! Run: `cargo run -p agora-fuzz-targets --example seed_corpus` (or
//! `scripts/fuzz.sh --seed-corpus`). Existing files of the same name are replaced; inputs
//! the fuzzers added are kept.

use std::path::{Path, PathBuf};

use agora_agent::checkpoint::{AgentMeta, ExecutorRecord, TaskRecord, UpdateRecord};
use agora_fuzz_targets::master_api;
use agora_master::registry::{RegistryOp, RegistryState};
use agora_proto::v1;
use agora_resources::Resources;
use prost::Message;

/// A Mesos v1 SUBSCRIBE call in JSON, as a Mesos framework sends it.
const MESOS_SUBSCRIBE: &str = r#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"nobody","name":"seed","roles":["web"],"capabilities":[{"type":"MULTI_ROLE"}]}}}"#;
/// Mesos v1 calls in JSON, each framed as one RecordIO record in the corpus.
const MESOS_CALLS: &[&str] = &[
    MESOS_SUBSCRIBE,
    r#"{"framework_id":{"value":"fw-1"},"type":"DECLINE","decline":{"offer_ids":[{"value":"o-1"}],"filters":{"refuse_seconds":5.0}}}"#,
    r#"{"framework_id":{"value":"fw-1"},"type":"ACKNOWLEDGE","acknowledge":{"agent_id":{"value":"a-1"},"task_id":{"value":"t-1"},"uuid":"AAECAwQFBgcICQoLDA0ODw=="}}"#,
    r#"{"framework_id":{"value":"fw-1"},"type":"RECONCILE","reconcile":{"tasks":[]}}"#,
];

const RESOURCE_TEXTS: &[&str] = &[
    "cpus:2;mem:1024;disk:4096",
    "cpus:0.5;mem:256;ports:[31000-31005,32000-32000]",
    "cpus(web):4;mem(web/prod):512",
    "disk(ops,ops-admin):100:vol-1:/data",
    "gpus:1;cpus:1.125",
    "labels:{a,b,c}",
    "cpus:1e2",
    "rack:r1;zone:eu-1;slots:4;ssd:true",
    "",
];

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    if let Err(e) = std::fs::create_dir_all(dir) {
        panic!("{}: {e}", dir.display());
    }
    let path = dir.join(name);
    if let Err(e) = std::fs::write(&path, bytes) {
        panic!("{}: {e}", path.display());
    }
}

fn resources(text: &str) -> Vec<v1::Resource> {
    Resources::parse(text)
        .map(|r| r.to_proto())
        .unwrap_or_else(|e| panic!("seed {text:?}: {e}"))
}

fn task(id: &str) -> v1::TaskInfo {
    v1::TaskInfo {
        task_id: id.to_string(),
        name: format!("task {id}"),
        agent_id: "agent-1".to_string(),
        resources: resources("cpus:0.5;mem:64"),
        command: Some(v1::CommandInfo {
            run: Some(v1::command_info::Run::Shell("echo hello".to_string())),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn framework() -> v1::FrameworkInfo {
    v1::FrameworkInfo {
        id: "fw-1".to_string(),
        name: "seed".to_string(),
        roles: vec!["web".to_string()],
        ..Default::default()
    }
}

fn status(task: &str, state: v1::TaskState) -> v1::TaskStatus {
    v1::TaskStatus {
        task_id: task.to_string(),
        framework_id: "fw-1".to_string(),
        agent_id: "agent-1".to_string(),
        state: state as i32,
        uuid: format!("uuid-{task}"),
        ..Default::default()
    }
}

fn log(records: &[UpdateRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        let body = r.encode_to_vec();
        out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&body);
    }
    out
}

fn with_kind(kind: u8, bytes: Vec<u8>) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend(bytes);
    out
}

fn main() {
    let root: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");

    let dir = root.join("resources_text");
    for (i, text) in RESOURCE_TEXTS.iter().enumerate() {
        write(&dir, &format!("seed-{i}"), text.as_bytes());
    }

    let dir = root.join("resources_json");
    for (i, text) in RESOURCE_TEXTS.iter().enumerate() {
        if let Ok(r) = Resources::parse(text)
            && let Ok(json) = serde_json::to_vec(&r)
        {
            write(&dir, &format!("seed-{i}"), &json);
        }
    }

    let dir = root.join("registry_log");
    let ops = vec![
        RegistryOp::PutFramework {
            id: "fw-1".into(),
            info: agora_master::registry::to_hex(&framework().encode_to_vec()),
        },
        RegistryOp::TearDownFramework { id: "fw-1".into() },
        RegistryOp::AdmitAgent {
            id: "agent-1".into(),
            hostname: "host-1".into(),
        },
        RegistryOp::RemoveAgent {
            id: "agent-1".into(),
        },
        RegistryOp::DeactivateAgent {
            id: "agent-1".into(),
        },
        RegistryOp::ReactivateAgent {
            id: "agent-1".into(),
        },
        RegistryOp::SetQuota {
            role: "web".into(),
            guarantee: "cpus:2".into(),
            limit: Some("cpus:4".into()),
        },
        RegistryOp::RemoveQuota { role: "web".into() },
        RegistryOp::SetWeight {
            role: "web".into(),
            weight: 2.5,
        },
        RegistryOp::SetAgentResources {
            id: "agent-1".into(),
            resources: "cpus(web):1;disk(web):10:vol-1:/data".into(),
        },
    ];
    for (i, op) in ops.iter().enumerate() {
        match serde_json::to_vec(op) {
            Ok(line) => write(&dir, &format!("op-{i}"), &line),
            Err(e) => panic!("{op:?}: {e}"),
        }
    }
    let mut state = RegistryState::default();
    ops.iter().for_each(|op| state.apply(op));
    match (serde_json::to_vec(&ops), serde_json::to_vec(&state)) {
        (Ok(batch), Ok(snapshot)) => {
            write(&dir, "batch", &batch);
            write(&dir, "snapshot", &snapshot);
        }
        (Err(e), _) | (_, Err(e)) => panic!("registry seeds: {e}"),
    }

    let dir = root.join("agent_checkpoint");
    let updates = log(&[
        UpdateRecord {
            kind: 1,
            status: Some(status("t1", v1::TaskState::Running)),
            ..Default::default()
        },
        UpdateRecord {
            kind: 1,
            status: Some(status("t1", v1::TaskState::Finished)),
            ..Default::default()
        },
        UpdateRecord {
            kind: 2,
            framework_id: "fw-1".into(),
            task_id: "t1".into(),
            uuid: "uuid-t1".into(),
            ..Default::default()
        },
    ]);
    write(&dir, "update-log", &with_kind(0, updates));
    let record = TaskRecord {
        framework: Some(framework()),
        task: Some(task("t1")),
        ..Default::default()
    };
    write(&dir, "task-record", &with_kind(1, record.encode_to_vec()));
    let record = ExecutorRecord {
        framework: Some(framework()),
        executor: Some(v1::ExecutorInfo {
            executor_id: "exec-1".into(),
            resources: resources("cpus:0.1;mem:32"),
            ..Default::default()
        }),
        ..Default::default()
    };
    write(
        &dir,
        "executor-record",
        &with_kind(2, record.encode_to_vec()),
    );
    let meta = AgentMeta {
        agent_id: "agent-1".into(),
        boot_id: "boot".into(),
        resources: resources("cpus:4;mem:4096;ports:[31000-32000]"),
        ..Default::default()
    };
    write(&dir, "agent-meta", &with_kind(3, meta.encode_to_vec()));

    let dir = root.join("agent_command");
    use v1::agent_command::{Command, KillTask, RunTask};
    let commands = [
        Command::RunTask(RunTask {
            framework: Some(framework()),
            task: Some(task("t1")),
        }),
        Command::KillTask(KillTask {
            framework_id: "fw-1".into(),
            task_id: "t1".into(),
            ..Default::default()
        }),
    ];
    for (i, c) in commands.into_iter().enumerate() {
        let command = v1::AgentCommand { command: Some(c) };
        write(&dir, &format!("command-{i}"), &command.encode_to_vec());
    }

    // master_api: the first byte picks the route (`master_api::selector`).
    let dir = root.join("master_api");
    let route = |method: &str, path: &str| {
        master_api::selector(method, path).unwrap_or_else(|| panic!("no route {method} {path}"))
    };
    let http: &[(&str, &str, &str)] = &[
        ("PUT", "/api/v1/weights", r#"[{"role":"web","weight":2}]"#),
        (
            "PUT",
            "/api/v1/quota",
            r#"{"role":"web","guarantee":"cpus:1;mem:128","limit":"cpus:2"}"#,
        ),
        ("DELETE", "/api/v1/quota", r#"{"role":"web"}"#),
        (
            "POST",
            "/api/v1/reserve",
            r#"{"agent_id":"agent-1","resources":"cpus(web):1"}"#,
        ),
        (
            "POST",
            "/api/v1/unreserve",
            r#"{"agent_id":"agent-1","resources":[{"name":"cpus","scalar":1,"reservation":{"role":"web"}}]}"#,
        ),
        (
            "POST",
            "/api/v1/volumes/create",
            r#"{"agent_id":"agent-1","volumes":"disk(web):10:vol-1:/data"}"#,
        ),
        (
            "POST",
            "/api/v1/volumes/destroy",
            r#"{"agent_id":"agent-1","volumes":"disk(web):10:vol-1:/data"}"#,
        ),
        ("POST", "/api/v1/frameworks/{}/teardown", "fw-1\n"),
        ("GET", "/api/v1/frameworks/{}", "fw-1\n"),
        ("GET", "/api/v1/agents/{}", "agent-1\n"),
        (
            "POST",
            "/api/v1/agents/{}/drain",
            "agent-1\n{\"grace_period_seconds\":5,\"mark_gone\":false}",
        ),
        ("GET", "/{}", "ui\n"),
        (
            "GET",
            "/api/v1/tasks",
            "state=TASK_RUNNING&limit=10&offset=0&framework_id=fw-1",
        ),
        ("GET", "/api/v1/agents", "limit=5"),
        ("GET", "/api/v1/allocator/explain", "framework_id=fw-1"),
        (
            "GET",
            "/api/v1/events",
            "snapshot=false&types=task_updated&stats_interval_ms=0",
        ),
        ("GET", "/master/state", ""),
        ("POST", "/api/v1/scheduler", MESOS_SUBSCRIBE),
        (
            "GET",
            "/api/v1/tasks/fw-1/{}/files/tail",
            "t1\npath=stdout&bytes=100",
        ),
    ];
    for (method, path, body) in http {
        let selector = route(method, path);
        write(
            &dir,
            &format!("route-{selector}"),
            &with_kind(selector, body.as_bytes().to_vec()),
        );
    }
    let grpc: Vec<(&str, Vec<u8>)> = vec![
        (
            "/agora.v1.Scheduler/Subscribe",
            v1::SubscribeRequest {
                framework: Some(framework()),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "/agora.v1.Scheduler/Accept",
            v1::AcceptRequest {
                framework_id: "fw-1".into(),
                offer_ids: vec!["offer-1".into()],
                operations: vec![v1::Operation {
                    operation: Some(v1::operation::Operation::Launch(v1::operation::Launch {
                        tasks: vec![task("t1")],
                    })),
                }],
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "/agora.v1.AgentApi/UpdateStatuses",
            v1::StatusUpdateBatch {
                agent_id: "agent-1".into(),
                updates: vec![v1::StatusUpdateRequest {
                    status: Some(status("t1", v1::TaskState::Running)),
                    ..Default::default()
                }],
            }
            .encode_to_vec(),
        ),
        (
            "/agora.v1.AgentApi/Register",
            v1::RegisterAgentRequest {
                info: Some(v1::AgentInfo {
                    hostname: "host-1".into(),
                    resources: resources("cpus:2;mem:1024"),
                    ..Default::default()
                }),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "/agora.v1.Operator/SetQuota",
            v1::SetQuotaRequest {
                quota: Some(v1::QuotaInfo {
                    role: "web".into(),
                    guarantee: resources("cpus:1"),
                    limit: resources("cpus:2"),
                }),
                force: false,
            }
            .encode_to_vec(),
        ),
    ];
    for (path, body) in grpc {
        let selector = route("GRPC", path);
        write(
            &dir,
            &format!("route-{selector}"),
            &with_kind(selector, body),
        );
    }
    for selector in 0..master_api::ROUTE_COUNT {
        let selector = u8::try_from(selector).unwrap_or(u8::MAX);
        write(&dir, &format!("route-{selector}-empty"), &[selector]);
    }
    let dir = root.join("mesos_recordio");
    let mut stream = Vec::new();
    for (i, call) in MESOS_CALLS.iter().enumerate() {
        let framed = agora_mesos::recordio::encode(call.as_bytes());
        write(&dir, &format!("json-{i}"), &with_kind(128, framed.clone()));
        stream.extend(framed);
        if let Ok(decoded) = agora_mesos::Format::Json
            .decode::<agora_mesos::schema::scheduler::Call>(call.as_bytes())
        {
            let pb = agora_mesos::recordio::encode(&agora_mesos::Format::Protobuf.encode(&decoded));
            write(&dir, &format!("protobuf-{i}"), &with_kind(64, pb));
        }
    }
    write(&dir, "stream", &with_kind(200, stream));

    println!("corpus written under {}", root.display());
}
