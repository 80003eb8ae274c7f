//! End-to-end: custom executors and task groups with real `agora-master`, `agora-agent`,
//! `agora-example-executor` and `agora-default-executor` processes, a framework over real
//! gRPC and the executor API over the agent's real unix socket.
//!
//! Needs the workspace binaries (`cargo build --workspace --bins`). Agents run with their
//! default isolation (Linux containers when root and cgroups are usable), except where
//! noted.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agora_proto::TaskState;
use agora_proto::v1;
use agora_proto::v1::executor_api_client::ExecutorApiClient;
use support::*;
use tonic::Code;

fn example_executor(id: &str, resources: &str) -> v1::ExecutorInfo {
    v1::ExecutorInfo {
        executor_id: id.to_string(),
        name: format!("example {id}"),
        command: Some(v1::CommandInfo {
            run: Some(v1::command_info::Run::Argv(v1::command_info::Argv {
                args: vec![binary("agora-example-executor").display().to_string()],
            })),
            ..Default::default()
        }),
        resources: res(resources).to_proto(),
        ..Default::default()
    }
}

/// A task for a custom executor: the example executor runs `data` as a shell script.
fn executor_task(id: &str, executor: &v1::ExecutorInfo, script: &str) -> v1::TaskInfo {
    v1::TaskInfo {
        name: id.to_string(),
        task_id: id.to_string(),
        resources: res("cpus:0.1;mem:32").to_proto(),
        executor: Some(executor.clone()),
        data: script.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn group(executor: v1::ExecutorInfo, tasks: Vec<v1::TaskInfo>) -> v1::Operation {
    v1::Operation {
        operation: Some(v1::operation::Operation::LaunchGroup(
            v1::operation::LaunchGroup {
                executor: Some(executor),
                task_group: Some(v1::TaskGroupInfo { tasks }),
            },
        )),
    }
}

fn default_executor(id: &str) -> v1::ExecutorInfo {
    v1::ExecutorInfo {
        executor_id: id.to_string(),
        resources: res("cpus:0.1;mem:32").to_proto(),
        ..Default::default()
    }
}

fn sandbox_file(cluster: &Cluster, agent: usize, fw: &str, executor: &str, task: &str) -> PathBuf {
    cluster
        .dir
        .0
        .join(format!("agent-{agent}"))
        .join("sandboxes")
        .join(fw)
        .join(format!("executor.{executor}"))
        .join("tasks")
        .join(task)
        .join("stdout")
}

fn is(fw: &Framework, task: &str, state: TaskState) -> bool {
    fw.statuses.get(task).is_some_and(|s| state_of(s) == state)
}

/// Pumps events until `pred` holds for the unhandled events (MESSAGE, FAILURE).
async fn wait_event(fw: &mut Framework, what: &str, pred: impl Fn(&v1::event::Event) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !fw.others.iter().any(&pred) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; other events: {:?}",
            fw.others
        );
        fw.pump(Duration::from_millis(200)).await;
    }
}

fn failure_of(executor: &str) -> impl Fn(&v1::event::Event) -> bool + '_ {
    move |e| matches!(e, v1::event::Event::Failure(f) if f.executor_id == executor)
}

fn states_of(fw: &Framework, task: &str) -> Vec<TaskState> {
    let mut states: Vec<TaskState> = fw
        .history
        .iter()
        .filter(|s| s.task_id == task)
        .map(state_of)
        .collect();
    states.dedup();
    states
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_executor_runs_kills_and_relays_messages() {
    let cluster = Cluster::start(1);
    let mut fw = Framework::subscribe(cluster.addr, "e2e-executor").await;
    let offer = fw.wait_offers(1).await.remove(0);
    let ex = example_executor("ex1", "cpus:0.1;mem:32");
    let tasks = vec![
        executor_task(
            "t1",
            &ex,
            "echo hi from $AGORA_TASK_ID ${AGORA_EXECUTOR_TOKEN:-no-token}",
        ),
        executor_task("t2", &ex, "sleep 60"),
    ];
    let accepted = Instant::now();
    // No decline filter: what is left comes back in a new offer for the relaunch below.
    let resp = fw
        .accept(vec![offer.id.clone()], vec![launch(tasks)], Some(0.0))
        .await
        .expect("accept");
    assert_eq!(resp.launched_task_ids, vec!["t1", "t2"]);
    fw.wait_for("t1 FINISHED, t2 RUNNING", |s| {
        s.get("t1")
            .is_some_and(|x| state_of(x) == TaskState::Finished)
            && s.get("t2")
                .is_some_and(|x| state_of(x) == TaskState::Running)
    })
    .await;
    eprintln!(
        "accept -> t1 FINISHED through a new custom executor: {:?}",
        accepted.elapsed()
    );
    assert_eq!(
        states_of(&fw, "t1"),
        vec![TaskState::Starting, TaskState::Running, TaskState::Finished]
    );
    let t1 = &fw.statuses["t1"];
    assert_eq!(t1.executor_id, "ex1");
    assert_eq!(t1.source, v1::StatusSource::SourceExecutor as i32);
    let out = std::fs::read_to_string(sandbox_file(&cluster, 0, &fw.id, "ex1", "t1"))
        .expect("t1 stdout in the executor's sandbox");
    // The executor's secret is not passed on to its tasks.
    assert_eq!(out.trim(), "hi from t1 no-token");

    // Once its FINISHED is acknowledged, t1's id may run again on the same executor.
    let again = fw.wait_offers(1).await.remove(0);
    fw.accept(
        vec![again.id],
        vec![launch(vec![executor_task("t1", &ex, "echo again")])],
        Some(60.0),
    )
    .await
    .expect("relaunch t1");
    let finished = |fw: &Framework| {
        fw.history
            .iter()
            .filter(|s| s.task_id == "t1" && state_of(s) == TaskState::Finished)
            .count()
    };
    let deadline = Instant::now() + WAIT;
    while finished(&fw) < 2 {
        assert!(
            Instant::now() < deadline,
            "t1 did not finish twice: {:?}",
            fw.statuses.get("t1")
        );
        fw.pump(Duration::from_millis(200)).await;
    }
    let out =
        std::fs::read_to_string(sandbox_file(&cluster, 0, &fw.id, "ex1", "t1")).expect("t1 stdout");
    assert_eq!(out.trim(), "again");

    // Framework -> executor -> framework.
    fw.client
        .message(v1::MessageRequest {
            framework_id: fw.id.clone(),
            agent_id: offer.agent_id.clone(),
            executor_id: "ex1".into(),
            data: b"ping".to_vec(),
        })
        .await
        .expect("message");
    wait_event(&mut fw, "the executor's echo", |e| {
        matches!(e, v1::event::Event::Message(m)
            if m.executor_id == "ex1" && m.data == b"echo:ping" && m.agent_id == offer.agent_id)
    })
    .await;

    // Kill goes through the executor; with no task left the executor is shut down and the
    // framework hears of its end.
    fw.client
        .kill(v1::KillRequest {
            framework_id: fw.id.clone(),
            task_id: "t2".into(),
            agent_id: offer.agent_id.clone(),
            kill_policy: Some(v1::KillPolicy {
                grace_period_seconds: 1.0,
            }),
        })
        .await
        .expect("kill");
    fw.wait_for("t2 KILLED", |s| {
        s.get("t2")
            .is_some_and(|x| state_of(x) == TaskState::Killed)
    })
    .await;
    assert_eq!(
        fw.statuses["t2"].reason,
        v1::StatusReason::KilledByFramework as i32
    );
    wait_event(&mut fw, "FAILURE for ex1", |e| {
        matches!(e, v1::event::Event::Failure(f) if f.executor_id == "ex1" && f.exit_code == Some(0))
    })
    .await;
    // The framework's acknowledgements reached the executor (ACKNOWLEDGED events).
    let stderr = std::fs::read_to_string(
        cluster
            .dir
            .0
            .join("agent-0/sandboxes")
            .join(&fw.id)
            .join("executor.ex1/stderr"),
    )
    .expect("executor stderr");
    let acked = stderr.matches("update acknowledged").count();
    assert!(
        acked >= 3,
        "{acked} acknowledgements seen by the executor:\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framework_shuts_an_executor_down() {
    let cluster = Cluster::start(1);
    let mut fw = Framework::subscribe(cluster.addr, "e2e-executor-shutdown").await;
    let offer = fw.wait_offers(1).await.remove(0);
    let ex = example_executor("sd", "cpus:0.1;mem:32");
    fw.accept(
        vec![offer.id],
        vec![launch(vec![
            executor_task("s1", &ex, "sleep 60"),
            executor_task("s2", &ex, "sleep 60"),
        ])],
        Some(60.0),
    )
    .await
    .expect("accept");
    fw.wait_for("s1 and s2 RUNNING", |s| {
        ["s1", "s2"]
            .iter()
            .all(|t| s.get(*t).is_some_and(|x| state_of(x) == TaskState::Running))
    })
    .await;
    let started = Instant::now();
    fw.client
        .shutdown(v1::ShutdownRequest {
            framework_id: fw.id.clone(),
            executor_id: "sd".into(),
            agent_id: offer.agent_id.clone(),
        })
        .await
        .expect("shutdown");
    fw.wait_for("s1 and s2 KILLED", |s| {
        ["s1", "s2"]
            .iter()
            .all(|t| s.get(*t).is_some_and(|x| state_of(x) == TaskState::Killed))
    })
    .await;
    for t in ["s1", "s2"] {
        let s = &fw.statuses[t];
        assert_eq!(
            s.reason,
            v1::StatusReason::ExecutorTerminated as i32,
            "{s:?}"
        );
        assert_eq!(s.message, "killed because the executor shut down");
    }
    wait_event(&mut fw, "FAILURE for sd", failure_of("sd")).await;
    // The executor ended by itself well within the 5 s shutdown grace.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_crash_fails_its_tasks() {
    let cluster = Cluster::start(1);
    let mut fw = Framework::subscribe(cluster.addr, "e2e-executor-crash").await;
    let offer = fw.wait_offers(1).await.remove(0);
    // An executor program that exits at once with code 3 (never subscribes).
    let mut broken = example_executor("broken", "cpus:0.1;mem:32");
    broken.command = Some(v1::CommandInfo {
        run: Some(v1::command_info::Run::Shell("exit 3".into())),
        ..Default::default()
    });
    // A working executor whose task kills it (the task's parent is the executor).
    let ex = example_executor("victim", "cpus:0.1;mem:32");
    let tasks = vec![
        executor_task("b1", &broken, "sleep 60"),
        executor_task("v1", &ex, "sleep 1; kill -9 $PPID; sleep 60"),
    ];
    fw.accept(vec![offer.id], vec![launch(tasks)], Some(60.0))
        .await
        .expect("accept");
    fw.wait_for("b1 and v1 FAILED", |s| {
        ["b1", "v1"]
            .iter()
            .all(|t| s.get(*t).is_some_and(|x| state_of(x) == TaskState::Failed))
    })
    .await;
    let b1 = &fw.statuses["b1"];
    assert_eq!(b1.reason, v1::StatusReason::ExecutorTerminated as i32);
    assert_eq!(b1.executor_id, "broken");
    assert_eq!(b1.source, v1::StatusSource::SourceAgent as i32);
    assert_eq!(
        b1.message, "executor exited with code 3 before reporting the task",
        "{b1:?}"
    );
    let v1s = &fw.statuses["v1"];
    assert_eq!(v1s.reason, v1::StatusReason::ExecutorTerminated as i32);
    assert!(v1s.message.contains("SIGKILL"), "{v1s:?}");
    assert_eq!(
        states_of(&fw, "v1"),
        vec![TaskState::Starting, TaskState::Running, TaskState::Failed]
    );
    wait_event(&mut fw, "FAILURE for broken", |e| {
        matches!(e, v1::event::Event::Failure(f) if f.executor_id == "broken" && f.exit_code == Some(3))
    })
    .await;
    wait_event(&mut fw, "FAILURE for victim", failure_of("victim")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_that_never_subscribes_is_killed() {
    let mut cluster = Cluster::start(0);
    cluster.add_agent_with(0, &["--executor-subscribe-timeout", "2"]);
    cluster.wait_agents(1);
    let mut fw = Framework::subscribe(cluster.addr, "e2e-executor-silent").await;
    let offer = fw.wait_offers(1).await.remove(0);
    let mut silent = example_executor("silent", "cpus:0.1;mem:32");
    silent.command = Some(v1::CommandInfo {
        run: Some(v1::command_info::Run::Shell("sleep 60".into())),
        ..Default::default()
    });
    let started = Instant::now();
    fw.accept(
        vec![offer.id],
        vec![launch(vec![executor_task("s1", &silent, "true")])],
        Some(60.0),
    )
    .await
    .expect("accept");
    fw.wait_for("s1 FAILED", |s| {
        s.get("s1")
            .is_some_and(|x| state_of(x) == TaskState::Failed)
    })
    .await;
    assert!(started.elapsed() >= Duration::from_secs(2));
    let s1 = &fw.statuses["s1"];
    assert_eq!(
        s1.message, "executor did not subscribe within 2 s; it was killed",
        "{s1:?}"
    );
    wait_event(&mut fw, "FAILURE for silent", failure_of("silent")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_group_runs_in_one_container() {
    let cluster = Cluster::start(1);
    let mut fw = Framework::subscribe(cluster.addr, "e2e-group").await;
    let offer = fw.wait_offers(1).await.remove(0);
    let tasks = vec![
        shell_task("g1", "cpus:0.1;mem:32", "cat /proc/self/cgroup; sleep 1"),
        shell_task("g2", "cpus:0.1;mem:32", "cat /proc/self/cgroup; sleep 1"),
    ];
    let resp = fw
        .accept(
            vec![offer.id],
            vec![group(default_executor("grp"), tasks)],
            Some(60.0),
        )
        .await
        .expect("accept");
    assert_eq!(resp.launched_task_ids, vec!["g1", "g2"]);
    fw.wait_for("g1 and g2 FINISHED", |s| {
        ["g1", "g2"].iter().all(|t| {
            s.get(*t)
                .is_some_and(|x| state_of(x) == TaskState::Finished)
        })
    })
    .await;
    for t in ["g1", "g2"] {
        assert_eq!(
            states_of(&fw, t),
            vec![TaskState::Starting, TaskState::Running, TaskState::Finished],
            "{t}"
        );
    }
    let read = |t: &str| {
        std::fs::read_to_string(sandbox_file(&cluster, 0, &fw.id, "grp", t)).expect("stdout")
    };
    let (a, b) = (read("g1"), read("g2"));
    assert!(!a.trim().is_empty());
    assert_eq!(a, b, "both tasks of the group share one cgroup");
    // With Linux isolation the shared cgroup is the executor's container, not the agent's.
    let agent_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    assert_ne!(a, agent_cgroup);
    wait_event(&mut fw, "FAILURE for grp", failure_of("grp")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_group_member_failure_or_kill_takes_the_group_down() {
    let cluster = Cluster::start(1);
    let mut fw = Framework::subscribe(cluster.addr, "e2e-group-fail").await;
    let offer = fw.wait_offers(1).await.remove(0);
    let failing = vec![
        shell_task("a", "cpus:0.1;mem:32", "sleep 1; exit 4"),
        shell_task("b", "cpus:0.1;mem:32", "sleep 60"),
        shell_task("c", "cpus:0.1;mem:32", "sleep 60"),
    ];
    let killed = vec![
        shell_task("x", "cpus:0.1;mem:32", "sleep 60"),
        shell_task("y", "cpus:0.1;mem:32", "sleep 60"),
    ];
    fw.accept(
        vec![offer.id.clone()],
        vec![
            group(default_executor("g-fail"), failing),
            group(default_executor("g-kill"), killed),
        ],
        Some(60.0),
    )
    .await
    .expect("accept");
    fw.wait_for("a FAILED, b and c KILLED", |s| {
        s.get("a").is_some_and(|x| state_of(x) == TaskState::Failed)
            && ["b", "c"]
                .iter()
                .all(|t| s.get(*t).is_some_and(|x| state_of(x) == TaskState::Killed))
    })
    .await;
    assert_eq!(fw.statuses["a"].exit_code, Some(4));
    for t in ["b", "c"] {
        let m = &fw.statuses[t].message;
        assert!(m.contains("task a of its group"), "{t}: {m}");
    }
    fw.wait_for("x and y RUNNING", |s| {
        ["x", "y"]
            .iter()
            .all(|t| s.get(*t).is_some_and(|x| state_of(x) == TaskState::Running))
    })
    .await;
    fw.client
        .kill(v1::KillRequest {
            framework_id: fw.id.clone(),
            task_id: "x".into(),
            agent_id: offer.agent_id.clone(),
            kill_policy: None,
        })
        .await
        .expect("kill");
    fw.wait_for("x and y KILLED", |s| {
        ["x", "y"]
            .iter()
            .all(|t| s.get(*t).is_some_and(|x| state_of(x) == TaskState::Killed))
    })
    .await;
    assert!(is(&fw, "y", TaskState::Killed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_launch_groups_are_refused_and_change_nothing() {
    let cluster = Cluster::start(1);
    let mut fw = Framework::subscribe(cluster.addr, "e2e-group-bad").await;
    let offer = fw.wait_offers(1).await.remove(0);
    let ok_task = |id: &str| shell_task(id, "cpus:0.1;mem:32", "true");
    let cases: Vec<(v1::Operation, Code, &str)> = vec![
        (
            group(default_executor("e"), vec![]),
            Code::InvalidArgument,
            "has no tasks",
        ),
        (
            group(default_executor("e"), vec![ok_task("d"), ok_task("d")]),
            Code::InvalidArgument,
            "duplicate task id 'd'",
        ),
        (
            group(
                default_executor("e"),
                vec![shell_task("big", "cpus:100;mem:32", "true")],
            ),
            Code::InvalidArgument,
            "does not fit",
        ),
        (
            group(default_executor(""), vec![ok_task("t")]),
            Code::InvalidArgument,
            "executor has no executor_id",
        ),
        (
            v1::Operation {
                operation: Some(v1::operation::Operation::LaunchGroup(
                    v1::operation::LaunchGroup {
                        executor: None,
                        task_group: Some(v1::TaskGroupInfo {
                            tasks: vec![ok_task("t")],
                        }),
                    },
                )),
            },
            Code::InvalidArgument,
            "has no executor",
        ),
        (
            group(
                default_executor("e"),
                vec![v1::TaskInfo {
                    command: None,
                    ..ok_task("nocmd")
                }],
            ),
            Code::InvalidArgument,
            "task 'nocmd' of a task group has no command",
        ),
        (
            {
                let mut e = default_executor("e");
                e.resources = res("cpus:100").to_proto();
                group(e, vec![ok_task("t")])
            },
            Code::InvalidArgument,
            "executor 'e' does not fit",
        ),
        (
            // A LAUNCH naming an executor without a program.
            launch(vec![executor_task("l", &default_executor("e"), "true")]),
            Code::InvalidArgument,
            "has no command",
        ),
        (
            // The same executor id described two ways in one call.
            launch(vec![
                executor_task("l1", &example_executor("e", "cpus:0.1"), "true"),
                executor_task("l2", &example_executor("e", "cpus:0.2"), "true"),
            ]),
            Code::InvalidArgument,
            "described differently",
        ),
    ];
    for (op, code, needle) in cases {
        let r = fw.accept(vec![offer.id.clone()], vec![op], None).await;
        assert_code(r, code, needle);
    }
    // All-or-nothing: a valid group next to a bad one launches nothing.
    let r = fw
        .accept(
            vec![offer.id.clone()],
            vec![
                group(default_executor("g1"), vec![ok_task("ok1")]),
                group(default_executor("g2"), vec![ok_task("ok1")]),
            ],
            None,
        )
        .await;
    assert_code(r, Code::InvalidArgument, "duplicate task id 'ok1'");
    let state = cluster.state();
    assert_eq!(state["tasks"].as_array().map(Vec::len), Some(0), "{state}");
    // The offer is still good.
    let resp = fw
        .accept(
            vec![offer.id],
            vec![group(default_executor("g1"), vec![ok_task("ok1")])],
            Some(60.0),
        )
        .await
        .expect("valid group");
    assert_eq!(resp.launched_task_ids, vec!["ok1"]);
    fw.wait_for("ok1 FINISHED", |s| {
        s.get("ok1")
            .is_some_and(|x| state_of(x) == TaskState::Finished)
    })
    .await;
}

async fn socket_client(path: &Path) -> ExecutorApiClient<tonic::transport::Channel> {
    let channel = agora_executor::driver::connect(path)
        .await
        .expect("connect to the executor socket");
    ExecutorApiClient::new(channel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_api_refuses_bad_calls() {
    let cluster = Cluster::start(1);
    let mut fw = Framework::subscribe(cluster.addr, "e2e-executor-api").await;
    let offer = fw.wait_offers(1).await.remove(0);
    let socket = cluster.dir.0.join("agent-0").join("executor.sock");
    let mut client = socket_client(&socket).await;

    let subscribe = |fw: &str, ex: &str| v1::ExecutorSubscribeRequest {
        framework_id: fw.into(),
        executor_id: ex.into(),
        ..Default::default()
    };
    let r = client.subscribe(subscribe(&fw.id, "nope")).await;
    assert_code(
        r.map(|_| ()),
        Code::NotFound,
        "executor 'nope' of framework",
    );
    let r = client.subscribe(subscribe("", "x")).await;
    assert_code(r.map(|_| ()), Code::InvalidArgument, "framework id");
    let r = client.subscribe(subscribe(&fw.id, "a/b")).await;
    assert_code(r.map(|_| ()), Code::InvalidArgument, "invalid executor id");

    let ex = example_executor("api", "cpus:0.1;mem:32");
    fw.accept(
        vec![offer.id],
        vec![launch(vec![
            executor_task("quick", &ex, "true"),
            executor_task("slow", &ex, "sleep 60"),
        ])],
        Some(60.0),
    )
    .await
    .expect("accept");
    fw.wait_for("quick FINISHED, slow RUNNING", |s| {
        s.get("quick")
            .is_some_and(|x| state_of(x) == TaskState::Finished)
            && s.get("slow")
                .is_some_and(|x| state_of(x) == TaskState::Running)
    })
    .await;
    // Calls must prove they come from the executor: its token is in the agent's
    // checkpoint (and in the executor's environment).
    let record_path = cluster
        .dir
        .0
        .join("agent-0/meta/executors")
        .join(&fw.id)
        .join("api.pb");
    let record: agora_agent::checkpoint::ExecutorRecord = prost::Message::decode(
        std::fs::read(&record_path)
            .expect("executor record")
            .as_slice(),
    )
    .expect("record decodes");
    let token = record.token.clone();
    assert_eq!(token.len(), 32, "{token:?}");
    macro_rules! authed {
        ($m:expr) => {
            agora_executor::driver::with_token($m, &token)
        };
    }
    macro_rules! impostor {
        ($m:expr) => {
            agora_executor::driver::with_token($m, "not-the-token")
        };
    }
    let r = client.subscribe(subscribe(&fw.id, "api")).await;
    assert_code(
        r.map(|_| ()),
        Code::Unauthenticated,
        "wrong or missing token for executor 'api'",
    );
    let r = client.subscribe(impostor!(subscribe(&fw.id, "api"))).await;
    assert_code(
        r.map(|_| ()),
        Code::Unauthenticated,
        "wrong or missing token",
    );
    let r = client
        .message(impostor!(v1::ExecutorMessageRequest {
            framework_id: fw.id.clone(),
            executor_id: "api".into(),
            data: b"x".to_vec(),
        }))
        .await;
    assert_code(r, Code::Unauthenticated, "wrong or missing token");
    let update = |task: &str, state: TaskState, uuid: &str| v1::ExecutorUpdateRequest {
        framework_id: fw.id.clone(),
        executor_id: "api".into(),
        status: Some(v1::TaskStatus {
            task_id: task.into(),
            state: state as i32,
            uuid: uuid.into(),
            ..Default::default()
        }),
    };
    let uuid = uuid::Uuid::new_v4().to_string();
    assert_code(
        client
            .update(impostor!(update("slow", TaskState::Finished, &uuid)))
            .await,
        Code::Unauthenticated,
        "wrong or missing token",
    );
    assert_code(
        client
            .update(authed!(update("other", TaskState::Running, &uuid)))
            .await,
        Code::NotFound,
        "task 'other' does not belong to executor 'api'",
    );
    assert_code(
        client
            .update(authed!(update("slow", TaskState::Staging, &uuid)))
            .await,
        Code::InvalidArgument,
        "not a state an executor may report",
    );
    assert_code(
        client
            .update(authed!(update("slow", TaskState::Running, "not-a-uuid")))
            .await,
        Code::InvalidArgument,
        "not a UUID",
    );
    let mut no_status = update("slow", TaskState::Running, &uuid);
    no_status.status = None;
    assert_code(
        client.update(authed!(no_status)).await,
        Code::InvalidArgument,
        "no status",
    );
    let mut unknown = update("slow", TaskState::Running, &uuid);
    unknown.executor_id = "ghost".into();
    assert_code(
        client.update(unknown).await,
        Code::NotFound,
        "executor 'ghost'",
    );
    let r = client
        .message(v1::ExecutorMessageRequest {
            framework_id: fw.id.clone(),
            executor_id: "ghost".into(),
            data: b"x".to_vec(),
        })
        .await;
    assert_code(r, Code::NotFound, "executor 'ghost'");
    // None of that disturbed the real task.
    assert!(is(&fw, "slow", TaskState::Running));
    // A re-subscription (here: taking the executor's place) carrying an update of a task
    // the agent has forgotten and a task it never heard of: the update is acknowledged,
    // the stranger killed; the subscription itself is accepted.
    let forgotten_uuid = uuid::Uuid::new_v4().to_string();
    let mut events = client
        .subscribe(authed!(v1::ExecutorSubscribeRequest {
            framework_id: fw.id.clone(),
            executor_id: "api".into(),
            unacknowledged_updates: vec![v1::TaskStatus {
                task_id: "forgotten".into(),
                state: TaskState::Finished as i32,
                uuid: forgotten_uuid.clone(),
                ..Default::default()
            }],
            unacknowledged_tasks: vec![v1::TaskInfo {
                task_id: "stranger".into(),
                ..Default::default()
            }],
        }))
        .await
        .expect("re-subscription accepted")
        .into_inner();
    let (mut acked, mut killed, mut subscribed) = (false, false, false);
    while !(acked && killed && subscribed) {
        let event = tokio::time::timeout(WAIT, events.message())
            .await
            .expect("events in time")
            .expect("stream ok")
            .expect("an event");
        use v1::executor_event::Event as X;
        match event.event {
            Some(X::Subscribed(_)) => subscribed = true,
            Some(X::Acknowledged(a)) => {
                assert_eq!(
                    (a.task_id.as_str(), a.uuid.as_str()),
                    ("forgotten", forgotten_uuid.as_str())
                );
                acked = true;
            }
            Some(X::Kill(k)) => {
                assert_eq!(k.task_id, "stranger");
                killed = true;
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    drop(events);
    // The executor's own stream was replaced, so it ended: the executor noticed and
    // reconnects (a replaced stream left hanging open would leave it deaf forever).
    let stderr = cluster
        .dir
        .0
        .join("agent-0/sandboxes")
        .join(&fw.id)
        .join("executor.api/stderr");
    let deadline = Instant::now() + WAIT;
    while !std::fs::read_to_string(&stderr).is_ok_and(|t| t.contains("lost the agent")) {
        assert!(
            Instant::now() < deadline,
            "the replaced executor never noticed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A terminal update, then anything after it: refused. (The framework cannot have
    // acknowledged the terminal one in between: this test is not pumping its events.)
    // (The real executor re-subscribes within its backoff after losing its stream above.)
    let finished = uuid::Uuid::new_v4().to_string();
    let deadline = Instant::now() + WAIT;
    loop {
        match client
            .update(authed!(update("slow", TaskState::Finished, &finished)))
            .await
        {
            Ok(_) => break,
            Err(s) if s.message().contains("has not subscribed") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(s) => panic!("terminal update refused: {s:?}"),
        }
    }
    assert_code(
        client
            .update(authed!(update("slow", TaskState::Running, &uuid)))
            .await,
        Code::FailedPrecondition,
        "task 'slow' is already FINISHED; no update may follow a terminal one",
    );
    fw.wait_for("slow FINISHED", |s| {
        s.get("slow")
            .is_some_and(|x| state_of(x) == TaskState::Finished)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn needs_root_executor_survives_agent_kill9_and_no_update_is_lost() {
    assert!(
        nix_root(),
        "re-attaching to an executor with Linux containers needs root"
    );
    let mut cluster = Cluster::start(0);
    cluster.add_agent_with(0, &["--isolation", "linux"]);
    cluster.wait_agents(1);
    let mut fw = Framework::subscribe(cluster.addr, "e2e-executor-recovery").await;
    let offer = fw.wait_offers(1).await.remove(0);
    let ex = example_executor("durable", "cpus:0.1;mem:32");
    fw.accept(
        vec![offer.id],
        vec![launch(vec![executor_task(
            "r1",
            &ex,
            "while [ ! -e release ]; do sleep 0.1; done; echo survived",
        )])],
        Some(60.0),
    )
    .await
    .expect("accept");
    fw.wait_for("r1 RUNNING", |s| {
        s.get("r1")
            .is_some_and(|x| state_of(x) == TaskState::Running)
    })
    .await;
    cluster.agents[0].kill9();
    // The task ends while the agent is down (the test lets it go only now: a timed task
    // could end before the kill on a loaded machine): the executor keeps its FINISHED
    // update and brings it along when it re-subscribes to the restarted agent.
    let stdout = sandbox_file(&cluster, 0, &fw.id, "durable", "r1");
    let release = stdout.with_file_name("release");
    std::fs::write(&release, b"").expect("release the task");
    let deadline = Instant::now() + WAIT;
    while std::fs::read_to_string(&stdout).unwrap_or_default().trim() != "survived" {
        assert!(
            Instant::now() < deadline,
            "the task did not end while the agent was down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!is(&fw, "r1", TaskState::Finished));
    cluster.add_agent_with(0, &["--isolation", "linux"]);
    fw.wait_for("r1 FINISHED", |s| {
        s.get("r1")
            .is_some_and(|x| state_of(x) == TaskState::Finished)
    })
    .await;
    assert_eq!(
        states_of(&fw, "r1"),
        vec![TaskState::Starting, TaskState::Running, TaskState::Finished]
    );
    let log = cluster.agents[1].log_text();
    assert!(log.contains("re-attached to executor"), "{log}");
    assert!(log.contains("resubscribed=true"), "{log}");
    // With its last task done, the re-subscribed executor is shut down as usual.
    wait_event(&mut fw, "FAILURE for durable", failure_of("durable")).await;
}

fn nix_root() -> bool {
    // SAFETY-free: reading the effective uid through /proc avoids a libc dependency.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn needs_root_executor_that_ends_while_the_agent_is_down_fails_its_tasks() {
    assert!(
        nix_root(),
        "re-attaching to an executor with Linux containers needs root"
    );
    let mut cluster = Cluster::start(0);
    cluster.add_agent_with(0, &["--isolation", "linux"]);
    cluster.wait_agents(1);
    let mut fw = Framework::subscribe(cluster.addr, "e2e-executor-gone").await;
    let offer = fw.wait_offers(1).await.remove(0);
    let ex = example_executor("doomed", "cpus:0.1;mem:32");
    // The task's parent is the executor: it kills it while the agent is down.
    fw.accept(
        vec![offer.id],
        vec![launch(vec![executor_task(
            "d1",
            &ex,
            "sleep 2; kill -9 $PPID; sleep 60",
        )])],
        Some(60.0),
    )
    .await
    .expect("accept");
    fw.wait_for("d1 RUNNING", |s| {
        s.get("d1")
            .is_some_and(|x| state_of(x) == TaskState::Running)
    })
    .await;
    cluster.agents[0].kill9();
    tokio::time::sleep(Duration::from_secs(4)).await;
    cluster.add_agent_with(0, &["--isolation", "linux"]);
    fw.wait_for("d1 FAILED", |s| {
        s.get("d1")
            .is_some_and(|x| state_of(x) == TaskState::Failed)
    })
    .await;
    let d1 = &fw.statuses["d1"];
    assert_eq!(
        d1.reason,
        v1::StatusReason::ExecutorTerminated as i32,
        "{d1:?}"
    );
    assert!(d1.message.contains("SIGKILL"), "{d1:?}");
    wait_event(&mut fw, "FAILURE for doomed", failure_of("doomed")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_executor_and_group_with_process_isolation() {
    let mut cluster = Cluster::start(0);
    cluster.add_agent_with(0, &["--isolation", "process"]);
    cluster.wait_agents(1);
    let mut fw = Framework::subscribe(cluster.addr, "e2e-executor-process").await;
    let offer = fw.wait_offers(1).await.remove(0);
    let ex = example_executor("px", "cpus:0.1;mem:32");
    fw.accept(
        vec![offer.id],
        vec![
            launch(vec![executor_task("p1", &ex, "echo p1")]),
            group(
                default_executor("pg"),
                vec![
                    shell_task("q1", "cpus:0.1;mem:32", "true"),
                    shell_task("q2", "cpus:0.1;mem:32", "exit 2"),
                ],
            ),
        ],
        Some(60.0),
    )
    .await
    .expect("accept");
    fw.wait_for("p1 FINISHED, q2 FAILED", |s| {
        s.get("p1")
            .is_some_and(|x| state_of(x) == TaskState::Finished)
            && s.get("q2")
                .is_some_and(|x| state_of(x) == TaskState::Failed)
            && s.get("q1").is_some_and(|x| state_of(x).is_terminal())
    })
    .await;
    assert_eq!(fw.statuses["q2"].exit_code, Some(2));
    wait_event(&mut fw, "FAILURE for px", failure_of("px")).await;
    wait_event(&mut fw, "FAILURE for pg", failure_of("pg")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_isolation_restart_reattaches_the_executor() {
    // Issue 17: with --isolation process a restarted agent re-attaches to its executors'
    // processes (checkpointed pid and start time) instead of failing tasks that still run.
    let mut cluster = Cluster::start(0);
    cluster.add_agent_with(0, &["--isolation", "process"]);
    cluster.wait_agents(1);
    let mut fw = Framework::subscribe(cluster.addr, "e2e-executor-process-restart").await;
    let offer = fw.wait_offers(1).await.remove(0);
    let agent_id = offer.agent_id.clone();
    let ex = example_executor("orphan", "cpus:0.1;mem:32");
    fw.accept(
        vec![offer.id],
        vec![launch(vec![executor_task(
            "o1",
            &ex,
            "echo $$; exec sleep 300",
        )])],
        Some(60.0),
    )
    .await
    .expect("accept");
    fw.wait_for("o1 RUNNING", |s| {
        s.get("o1")
            .is_some_and(|x| state_of(x) == TaskState::Running)
    })
    .await;
    let stdout = sandbox_file(&cluster, 0, &fw.id, "orphan", "o1");
    let deadline = Instant::now() + WAIT;
    let pid: u32 = loop {
        if let Some(pid) = std::fs::read_to_string(&stdout)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "the task never wrote its pid");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
    };
    assert!(alive(pid));
    // The executor has every update acknowledged before the agent goes (STARTING and
    // RUNNING): it re-subscribes carrying nothing, and is still a re-subscription. (On a
    // loaded machine this was the usual order, and the agent then logged it as a first
    // subscription: the test waited for a line that never came.)
    let executor_log = stdout
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(|d| d.join("stderr"))
        .expect("executor sandbox");
    let deadline = Instant::now() + WAIT;
    while std::fs::read_to_string(&executor_log)
        .unwrap_or_default()
        .matches("update acknowledged")
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "the executor never heard its updates acknowledged"
        );
        fw.pump(Duration::from_millis(100)).await;
    }
    cluster.agents[0].kill9();
    cluster.add_agent_with(0, &["--isolation", "process"]);
    // The executor re-subscribes to the restarted agent; its task keeps running and is
    // never reported ended.
    let deadline = Instant::now() + WAIT;
    while !cluster.agents[1].log_text().contains("resubscribed=true") {
        assert!(
            Instant::now() < deadline,
            "the executor never re-subscribed"
        );
        fw.pump(Duration::from_millis(100)).await;
    }
    assert!(alive(pid));
    assert_eq!(state_of(&fw.statuses["o1"]), TaskState::Running);
    // It can still be killed, and its process goes.
    fw.client
        .kill(v1::KillRequest {
            framework_id: fw.id.clone(),
            task_id: "o1".into(),
            agent_id,
            kill_policy: Some(v1::KillPolicy {
                grace_period_seconds: 1.0,
            }),
        })
        .await
        .expect("kill");
    fw.wait_for("o1 KILLED", |s| {
        s.get("o1")
            .is_some_and(|x| state_of(x) == TaskState::Killed)
    })
    .await;
    let deadline = Instant::now() + WAIT;
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "task process {pid} outlived its kill"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Issue 17 item 7: the agent runs the health checks of tasks run by custom executors,
/// inside the executor's container: a change is reported (RUNNING, `healthy`), and too
/// many failures kill the task through its executor, reported FAILED, HEALTH_CHECK_FAILED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_task_health_check_reports_and_kills() {
    let mut cluster = Cluster::start(0);
    cluster.add_agent_with(0, &["--isolation", "process"]);
    cluster.wait_agents(1);
    let mut fw = Framework::subscribe(cluster.addr, "e2e-executor-health").await;
    let offer = fw.wait_offers(1).await.remove(0);
    let ex = example_executor("checked", "cpus:0.1;mem:32");
    let mut task = executor_task("h1", &ex, "touch ok; exec sleep 300");
    // Run in the executor's sandbox: the task's directory is tasks/h1.
    task.health_check = Some(v1::HealthCheck {
        r#type: v1::health_check::Type::Command as i32,
        command: Some(v1::CommandInfo {
            run: Some(v1::command_info::Run::Shell("test -e tasks/h1/ok".into())),
            ..Default::default()
        }),
        interval_seconds: 0.2,
        timeout_seconds: 5.0,
        consecutive_failures: 2,
        ..Default::default()
    });
    fw.accept(vec![offer.id], vec![launch(vec![task])], Some(60.0))
        .await
        .expect("accept");
    fw.wait_for("h1 RUNNING and healthy", |s| {
        s.get("h1")
            .is_some_and(|x| state_of(x) == TaskState::Running && x.healthy == Some(true))
    })
    .await;
    let marker = sandbox_file(&cluster, 0, &fw.id, "checked", "h1").with_file_name("ok");
    std::fs::remove_file(&marker).expect("remove the health marker");
    fw.wait_for("h1 FAILED", |s| {
        s.get("h1")
            .is_some_and(|x| state_of(x) == TaskState::Failed)
    })
    .await;
    let h1 = &fw.statuses["h1"];
    assert_eq!(
        h1.reason,
        v1::StatusReason::HealthCheckFailed as i32,
        "{h1:?}"
    );
    assert!(
        fw.history
            .iter()
            .any(|s| s.task_id == "h1" && s.healthy == Some(false)),
        "no unhealthy report before the kill: {:?}",
        fw.history
    );
    wait_event(&mut fw, "FAILURE for checked", failure_of("checked")).await;
}
