//! End-to-end: real `agora-master` and `agora-agent` processes, a framework over real
//! gRPC. Covers the walking skeleton: launches across agents, exit codes, kills, refused
//! launches, resources offered again, and bad input on every scheduler call.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use agora_proto::TaskState;
use agora_proto::v1;
use support::*;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_tasks_across_two_agents_all_finish() {
    let cluster = Cluster::start(2);
    let mut fw = Framework::subscribe(cluster.addr, "e2e-twenty").await;
    let mut launched = 0;
    let mut agents_used = HashSet::new();
    while launched < 20 {
        let offers = fw.wait_offers(1).await;
        for offer in offers {
            if launched >= 20 {
                fw.decline(vec![offer.id], 60.0).await;
                continue;
            }
            // 10 tasks of 0.1 cpu per offer: both agents must be used for 20.
            let tasks: Vec<_> = (0..10)
                .map(|i| {
                    shell_task(
                        &format!("t{}", launched + i),
                        "cpus:0.1;mem:16",
                        "echo hello from $AGORA_TASK_ID",
                    )
                })
                .collect();
            agents_used.insert(offer.agent_id.clone());
            let resp = fw
                .accept(vec![offer.id], vec![launch(tasks)], Some(60.0))
                .await
                .expect("accept");
            launched += resp.launched_task_ids.len();
        }
    }
    assert_eq!(agents_used.len(), 2, "tasks spread over both agents");
    fw.wait_for("20 FINISHED", |s| {
        s.len() == 20 && s.values().all(|st| state_of(st) == TaskState::Finished)
    })
    .await;
    // Each task went STARTING -> RUNNING -> FINISHED, in order.
    for i in 0..20 {
        let id = format!("t{i}");
        let states: Vec<_> = fw
            .history
            .iter()
            .filter(|s| s.task_id == id)
            .map(state_of)
            .collect();
        let mut dedup = states.clone();
        dedup.dedup();
        assert_eq!(
            dedup,
            vec![TaskState::Starting, TaskState::Running, TaskState::Finished],
            "task {id}"
        );
    }
    // The sandbox holds the task's stdout.
    let state = cluster.state();
    let tasks = state["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 20);
    assert!(tasks.iter().all(|t| t["state"] == "FINISHED"));
    let mut found = false;
    for entry in walk(&cluster.dir.0) {
        if entry.ends_with("t7/stdout") {
            let out = std::fs::read_to_string(&entry).expect("stdout file");
            assert_eq!(out.trim(), "hello from t7");
            found = true;
        }
    }
    assert!(found, "sandbox stdout for t7");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_code_kill_and_resources_offered_again() {
    let cluster = Cluster::start(1);
    let mut fw = Framework::subscribe(cluster.addr, "e2e-exit").await;
    let offer = fw.wait_offers(1).await.remove(0);
    let offered = v1_resources(&offer);
    assert_eq!(offered, res(AGENT_RESOURCES), "the whole agent is offered");
    assert_eq!(offer.hostname, "e2e-agent-0");
    assert!(offer.attributes.iter().any(|a| a.name == "rack"));

    // All cpus go to two tasks, so nothing is left to offer until they end.
    let tasks = vec![
        shell_task("exit3", "cpus:2;mem:64", "exit 3"),
        shell_task("sleeper", "cpus:2;mem:64", "sleep 60"),
    ];
    fw.accept(vec![offer.id], vec![launch(tasks)], Some(0.0))
        .await
        .expect("accept");
    fw.wait_for("exit3 FAILED and sleeper RUNNING", |s| {
        s.get("exit3")
            .is_some_and(|x| state_of(x) == TaskState::Failed)
            && s.get("sleeper")
                .is_some_and(|x| state_of(x) == TaskState::Running)
    })
    .await;
    let failed = fw.statuses["exit3"].clone();
    assert_eq!(failed.exit_code, Some(3));
    assert!(
        failed.message.contains('3'),
        "message names the exit code: {}",
        failed.message
    );
    assert_eq!(failed.reason, v1::StatusReason::CommandExited as i32);

    // exit3's cpus come back in an offer (the accept's leftovers may arrive separately).
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let cpus: u64 = fw
            .offers
            .iter()
            .map(|o| v1_resources(o).scalar("cpus").thousandths())
            .sum();
        if cpus == 2000 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "exit3's 2 cpus offered again; held {cpus} thousandths"
        );
        fw.pump(Duration::from_millis(100)).await;
    }
    let again = std::mem::take(&mut fw.offers);
    fw.decline(again.into_iter().map(|o| o.id).collect(), 0.0)
        .await;

    // Kill the sleeper: KILLED, and its cpus are offered again.
    fw.client
        .kill(v1::KillRequest {
            framework_id: fw.id.clone(),
            task_id: "sleeper".into(),
            agent_id: String::new(),
            kill_policy: Some(v1::KillPolicy {
                grace_period_seconds: 1.0,
            }),
        })
        .await
        .expect("kill");
    fw.wait_for("sleeper KILLED", |s| {
        s.get("sleeper")
            .is_some_and(|x| state_of(x) == TaskState::Killed)
    })
    .await;
    // The freed cpus arrive as one or more offers; together they are the whole agent.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let cpus: u64 = fw
            .offers
            .iter()
            .map(|o| v1_resources(o).scalar("cpus").thousandths())
            .sum();
        if cpus == 4000 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "all 4 cpus offered again; held {cpus} thousandths"
        );
        fw.pump(Duration::from_millis(200)).await;
    }
    // Killing an ended task is refused precisely.
    let r = fw
        .client
        .kill(v1::KillRequest {
            framework_id: fw.id.clone(),
            task_id: "sleeper".into(),
            ..Default::default()
        })
        .await;
    assert_code(r, Code::FailedPrecondition, "already ended");
}

fn v1_resources(o: &v1::Offer) -> agora_resources::Resources {
    agora_resources::Resources::from_proto(&o.resources).expect("offer resources")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_precisely_and_changes_nothing() {
    let cluster = Cluster::start(1);
    let mut fw = Framework::subscribe(cluster.addr, "e2e-bad").await;
    let offer = fw.wait_offers(1).await.remove(0);
    let ok_task = || shell_task("ok", "cpus:1;mem:32", "true");

    // Unknown framework id.
    let r = fw
        .client
        .accept(v1::AcceptRequest {
            framework_id: "no-such-framework".into(),
            offer_ids: vec![offer.id.clone()],
            operations: vec![launch(vec![ok_task()])],
            filters: None,
        })
        .await;
    assert_code(
        r,
        Code::NotFound,
        "unknown framework id 'no-such-framework'",
    );

    // An offer that is not outstanding.
    let r = fw
        .accept(
            vec!["not-an-offer".into()],
            vec![launch(vec![ok_task()])],
            None,
        )
        .await;
    assert_code(r, Code::NotFound, "offer 'not-an-offer' is not outstanding");

    // Task larger than the offer.
    let r = fw
        .accept(
            vec![offer.id.clone()],
            vec![launch(vec![shell_task("big", "cpus:100;mem:32", "true")])],
            None,
        )
        .await;
    assert_code(r, Code::InvalidArgument, "task 'big' does not fit");

    // Resources the offer does not hold at all.
    let r = fw
        .accept(
            vec![offer.id.clone()],
            vec![launch(vec![shell_task("gpu", "cpus:1;gpus:1", "true")])],
            None,
        )
        .await;
    assert_code(r, Code::InvalidArgument, "task 'gpu' does not fit");
    let r = fw
        .accept(
            vec![offer.id.clone()],
            vec![launch(vec![shell_task(
                "port",
                "cpus:1;ports:[80-80]",
                "true",
            )])],
            None,
        )
        .await;
    assert_code(r, Code::InvalidArgument, "task 'port' does not fit");

    // Empty and duplicate task ids; an empty command.
    let r = fw
        .accept(
            vec![offer.id.clone()],
            vec![launch(vec![shell_task("", "cpus:1", "true")])],
            None,
        )
        .await;
    assert_code(r, Code::InvalidArgument, "task id is empty");
    let r = fw
        .accept(
            vec![offer.id.clone()],
            vec![launch(vec![ok_task(), ok_task()])],
            None,
        )
        .await;
    assert_code(r, Code::InvalidArgument, "duplicate task id 'ok'");
    let r = fw
        .accept(
            vec![offer.id.clone()],
            vec![launch(vec![shell_task("blank", "cpus:1", "  ")])],
            None,
        )
        .await;
    assert_code(r, Code::InvalidArgument, "shell string is empty");
    let r = fw
        .accept(
            vec![offer.id.clone()],
            vec![v1::Operation { operation: None }],
            None,
        )
        .await;
    assert_code(r, Code::InvalidArgument, "operation 0 is empty");
    let r = fw
        .accept(vec![offer.id.clone(), offer.id.clone()], vec![], None)
        .await;
    assert_code(r, Code::InvalidArgument, "listed twice");

    // Nothing was launched by any of that; the offer is still outstanding.
    let s = cluster.state();
    assert_eq!(s["tasks"].as_array().map(Vec::len), Some(0));
    assert_eq!(s["offers"].as_array().map(Vec::len), Some(1));

    // Now a valid launch works with the same offer, and its id cannot be reused.
    fw.accept(vec![offer.id.clone()], vec![launch(vec![ok_task()])], None)
        .await
        .expect("valid accept after refused ones");
    let r = fw
        .accept(vec![offer.id.clone()], vec![launch(vec![ok_task()])], None)
        .await;
    assert_code(r, Code::NotFound, "is not outstanding");
    let more = fw.wait_offers(1).await;
    let r = fw
        .accept(
            vec![more[0].id.clone()],
            vec![launch(vec![ok_task()])],
            None,
        )
        .await;
    if let Err(s) = &r {
        // Either still live (ALREADY_EXISTS) or, if it finished already, accepted anew.
        assert_eq!(s.code(), Code::AlreadyExists, "{s:?}");
    }

    // Other calls with bad input.
    let r = fw
        .client
        .decline(v1::DeclineRequest {
            framework_id: fw.id.clone(),
            offer_ids: vec!["nope".into()],
            filters: None,
        })
        .await;
    assert_code(r, Code::NotFound, "offer 'nope' is not outstanding");
    let r = fw
        .client
        .decline(v1::DeclineRequest {
            framework_id: fw.id.clone(),
            offer_ids: vec![],
            filters: None,
        })
        .await;
    assert_code(r, Code::InvalidArgument, "no offer ids");
    let r = fw
        .client
        .kill(v1::KillRequest {
            framework_id: fw.id.clone(),
            task_id: "ghost".into(),
            ..Default::default()
        })
        .await;
    assert_code(r, Code::NotFound, "unknown task 'ghost'");
    let r = fw
        .client
        .kill(v1::KillRequest {
            framework_id: String::new(),
            task_id: "x".into(),
            ..Default::default()
        })
        .await;
    assert_code(r, Code::InvalidArgument, "framework_id is empty");
    let r = fw
        .client
        .acknowledge(v1::AcknowledgeRequest {
            framework_id: fw.id.clone(),
            task_id: "ok".into(),
            uuid: String::new(),
            ..Default::default()
        })
        .await;
    assert_code(r, Code::InvalidArgument, "uuid is empty");
    let r = fw
        .client
        .suppress(v1::SuppressRequest {
            framework_id: fw.id.clone(),
            roles: vec!["not-mine".into()],
        })
        .await;
    assert_code(
        r,
        Code::InvalidArgument,
        "not subscribed to role 'not-mine'",
    );
    let r = fw
        .client
        .decline(v1::DeclineRequest {
            framework_id: fw.id.clone(),
            offer_ids: vec!["x".into()],
            filters: Some(v1::Filters {
                refuse_seconds: Some(-1.0),
            }),
        })
        .await;
    assert_code(r, Code::NotFound, "offer 'x'");

    // Subscribing with bad framework info.
    let mut client = v1::scheduler_client::SchedulerClient::connect(cluster.url())
        .await
        .expect("connect");
    let r = client
        .subscribe(v1::SubscribeRequest {
            framework: Some(v1::FrameworkInfo::default()),
            secret: String::new(),
        })
        .await;
    assert_code(
        r.map(|_| ()),
        Code::InvalidArgument,
        "framework name is empty",
    );
    let r = client
        .subscribe(v1::SubscribeRequest {
            framework: None,
            secret: String::new(),
        })
        .await;
    assert_code(r.map(|_| ()), Code::InvalidArgument, "needs a framework");

    // The master is alive and well after all of it.
    let (code, _) = http_get(cluster.addr, "/health").expect("health");
    assert_eq!(code, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_bad_input_is_refused() {
    let cluster = Cluster::start(0);
    let mut client = v1::agent_api_client::AgentApiClient::connect(cluster.url())
        .await
        .expect("connect");
    let r = client
        .register(v1::RegisterAgentRequest {
            info: Some(v1::AgentInfo {
                hostname: "h".into(),
                resources: vec![v1::Resource {
                    name: "gpus".into(),
                    value: Some(v1::resource::Value::Scalar(v1::Scalar {
                        thousandths: 1500,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    assert_code(r.map(|_| ()), Code::InvalidArgument, "gpus");
    let r = client
        .register(v1::RegisterAgentRequest {
            info: Some(v1::AgentInfo::default()),
            ..Default::default()
        })
        .await;
    assert_code(r.map(|_| ()), Code::InvalidArgument, "hostname is empty");
    let r = client
        .heartbeat(v1::AgentHeartbeatRequest {
            agent_id: "never-registered".into(),
        })
        .await;
    assert_code(r, Code::NotFound, "not registered");
    let r = client
        .update_status(v1::StatusUpdateRequest {
            agent_id: "never-registered".into(),
            status: Some(v1::TaskStatus {
                task_id: "t".into(),
                framework_id: "f".into(),
                state: TaskState::Running as i32,
                uuid: "u".into(),
                ..Default::default()
            }),
            latest_state: 0,
        })
        .await;
    assert_code(r, Code::NotFound, "not registered");
    let r = client
        .update_status(v1::StatusUpdateRequest {
            agent_id: "a".into(),
            status: Some(v1::TaskStatus {
                task_id: "t".into(),
                framework_id: "f".into(),
                state: 99,
                uuid: "u".into(),
                ..Default::default()
            }),
            latest_state: 0,
        })
        .await;
    assert_code(r, Code::InvalidArgument, "invalid state 99");
    let (code, _) = http_get(cluster.addr, "/health").expect("health");
    assert_eq!(code, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_endpoints_report_state_and_metrics() {
    let cluster = Cluster::start(2);
    let mut fw = Framework::subscribe(cluster.addr, "e2e-http").await;
    let offers = fw.wait_offers(1).await;
    let offer = offers[0].clone();
    fw.accept(
        vec![offer.id.clone()],
        vec![launch(vec![shell_task("s1", "cpus:1;mem:64", "sleep 30")])],
        Some(60.0),
    )
    .await
    .expect("accept");
    fw.wait_for("s1 RUNNING", |s| {
        s.get("s1")
            .is_some_and(|x| state_of(x) == TaskState::Running)
    })
    .await;
    let s = cluster.state();
    let agents = s["agents"].as_array().expect("agents array");
    assert_eq!(agents.len(), 2);
    for a in agents {
        assert_eq!(a["status"], "registered");
        assert!(a["id"].as_str().is_some_and(|x| !x.is_empty()));
        assert!(
            a["hostname"]
                .as_str()
                .is_some_and(|h| h.starts_with("e2e-agent-"))
        );
        assert_eq!(a["attributes"]["zone"], "test");
    }
    let fws = s["frameworks"].as_array().expect("frameworks array");
    assert_eq!(fws.len(), 1);
    assert_eq!(fws[0]["name"], "e2e-http");
    assert_eq!(fws[0]["status"], "connected");
    assert_eq!(fws[0]["active_tasks"], 1);
    let tasks = s["tasks"].as_array().expect("tasks array");
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["id"], "s1");
    assert_eq!(tasks[0]["state"], "RUNNING");
    assert_eq!(tasks[0]["agent_id"], offer.agent_id);

    let (code, metrics) = http_get(cluster.addr, "/metrics").expect("metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("agora_agents{status=\"registered\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("agora_tasks{state=\"RUNNING\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("agora_tasks_launched_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("agora_resources{kind=\"cpus\",use=\"total\"} 8"),
        "{metrics}"
    );
    assert!(
        metrics.contains("agora_resources{kind=\"cpus\",use=\"allocated\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("agora_allocation_cycle_seconds_count"));

    let (code, body) = http_get(cluster.addr, "/no/such/thing").expect("404");
    assert_eq!(code, 404);
    assert!(body.contains("no endpoint at /no/such/thing"));
    // Teardown kills the task and releases its resources.
    fw.client
        .teardown(v1::TeardownRequest {
            framework_id: fw.id.clone(),
        })
        .await
        .expect("teardown");
    cluster.wait_until("task killed after teardown", |s| {
        s["tasks"]
            .as_array()
            .is_some_and(|t| t.iter().all(|t| t["state"] == "KILLED"))
            && s["frameworks"].as_array().is_some_and(Vec::is_empty)
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// A scripted agent over raw gRPC re-sends an update after a newer one was relayed (a retry
/// that overtook the acknowledgement): the master must not relay the stale one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_resent_update_is_not_relayed() {
    let cluster = Cluster::start(0);
    let (mut agent, mut commands, agent_id) = scripted_agent(&cluster, "cpus:2;mem:256").await;
    let mut fw = Framework::subscribe(cluster.addr, "e2e-stale").await;
    let offer = fw.wait_offers(1).await.remove(0);
    fw.accept(
        vec![offer.id],
        vec![launch(vec![shell_task("t", "cpus:1", "true")])],
        None,
    )
    .await
    .expect("accept");
    let task = loop {
        match commands.message().await.expect("stream").map(|c| c.command) {
            Some(Some(v1::agent_command::Command::RunTask(r))) => break r.task.expect("task"),
            Some(_) => continue,
            None => panic!("agent stream ended"),
        }
    };
    let framework_id = fw.id.clone();
    let update = |state: TaskState, uuid: &str| v1::StatusUpdateRequest {
        agent_id: agent_id.clone(),
        status: Some(v1::TaskStatus {
            task_id: task.task_id.clone(),
            framework_id: framework_id.clone(),
            state: state as i32,
            source: v1::StatusSource::SourceAgent as i32,
            uuid: uuid.into(),
            ..Default::default()
        }),
        latest_state: state as i32,
    };
    agent
        .update_status(update(TaskState::Starting, "u-starting"))
        .await
        .expect("starting");
    fw.wait_for("STARTING", |s| {
        s.get("t")
            .is_some_and(|x| state_of(x) == TaskState::Starting)
    })
    .await;
    agent
        .update_status(update(TaskState::Running, "u-running"))
        .await
        .expect("running");
    fw.wait_for("RUNNING", |s| {
        s.get("t")
            .is_some_and(|x| state_of(x) == TaskState::Running)
    })
    .await;
    // The stale re-send is answered OK (the agent can let it go) but not relayed.
    agent
        .update_status(update(TaskState::Starting, "u-starting"))
        .await
        .expect("stale re-send accepted");
    // The latest update re-sent at once (its ack is merely slow) is not relayed twice...
    agent
        .update_status(update(TaskState::Running, "u-running"))
        .await
        .expect("latest re-send");
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while std::time::Instant::now() < deadline {
        fw.pump(Duration::from_millis(100)).await;
    }
    let seen: Vec<_> = fw.history.iter().map(|s| s.uuid.clone()).collect();
    assert_eq!(seen, vec!["u-starting", "u-running"]);
    let (_, metrics) = http_get(cluster.addr, "/metrics").expect("metrics");
    assert!(
        metrics.contains("agora_stale_status_updates_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("agora_duplicate_status_updates_total 1"),
        "{metrics}"
    );

    // ...but a re-subscribed framework (a new stream that never saw it) gets it again.
    let id = fw.id.clone();
    drop(fw);
    let mut fw = Framework::subscribe_info(
        cluster.addr,
        v1::FrameworkInfo {
            id,
            name: "e2e-stale".into(),
            roles: vec!["e2e".into()],
            failover_timeout_seconds: 60.0,
            ..Default::default()
        },
    )
    .await;
    agent
        .update_status(update(TaskState::Running, "u-running"))
        .await
        .expect("re-send after failover");
    fw.wait_for("RUNNING relayed to the new subscription", |s| {
        s.get("t").is_some_and(|x| x.uuid == "u-running")
    })
    .await;
}
