//! End-to-end failure paths with real processes: a master killed with SIGKILL and
//! restarted (agents re-register with their ids and running tasks, frameworks resume and
//! reconcile, nothing running is lost), an agent that dies (unreachable after the
//! configured missed heartbeats, its tasks reported once), and framework failover.

mod support;

use std::time::Duration;

use agora_proto::TaskState;
use agora_proto::v1;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_restart_keeps_running_tasks_and_agent_ids() {
    let mut cluster = Cluster::start(1);
    let mut fw = Framework::subscribe(cluster.addr, "e2e-restart").await;
    let offer = fw.wait_offers(1).await.remove(0);
    fw.accept(
        vec![offer.id.clone()],
        vec![launch(vec![shell_task(
            "long",
            "cpus:1;mem:32",
            "sleep 60",
        )])],
        Some(60.0),
    )
    .await
    .expect("accept");
    fw.wait_for("long RUNNING", |s| {
        s.get("long")
            .is_some_and(|x| state_of(x) == TaskState::Running)
    })
    .await;
    let framework_id = fw.id.clone();
    drop(fw);

    cluster.master.kill9();
    cluster.restart_master();
    // The agent re-registers under its old id and reports the task.
    let s = cluster.wait_until("agent re-registered with its task", |s| {
        s["agents"].as_array().is_some_and(|a| {
            a.len() == 1 && a[0]["id"] == offer.agent_id.as_str() && a[0]["status"] == "registered"
        }) && s["tasks"].as_array().is_some_and(|t| {
            t.iter()
                .any(|t| t["id"] == "long" && t["state"] == "RUNNING")
        })
    });
    assert_eq!(s["frameworks"][0]["id"], framework_id.as_str());
    assert_eq!(s["frameworks"][0]["status"], "inactive");

    // The framework resumes under its id and reconciles: the task is still running.
    let mut fw = Framework::subscribe_info(
        cluster.addr,
        v1::FrameworkInfo {
            id: framework_id.clone(),
            name: "e2e-restart".into(),
            roles: vec!["e2e".into()],
            failover_timeout_seconds: 60.0,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(fw.id, framework_id);
    fw.client
        .reconcile(v1::ReconcileRequest {
            framework_id: fw.id.clone(),
            tasks: vec![],
        })
        .await
        .expect("reconcile");
    fw.wait_for("reconciled RUNNING", |s| {
        s.get("long").is_some_and(|x| {
            state_of(x) == TaskState::Running && x.reason == v1::StatusReason::Reconciliation as i32
        })
    })
    .await;
    // Its resources are still counted: the next offer lacks the task's cpu.
    let offers = fw.wait_offers(1).await;
    let cpus: u64 = offers
        .iter()
        .map(|o| {
            agora_resources::Resources::from_proto(&o.resources)
                .expect("offer resources")
                .scalar("cpus")
                .thousandths()
        })
        .sum();
    assert_eq!(cpus, 3000, "4 cpus minus the running task's 1");
    // And it can still be killed through the new master.
    fw.client
        .kill(v1::KillRequest {
            framework_id: fw.id.clone(),
            task_id: "long".into(),
            ..Default::default()
        })
        .await
        .expect("kill after restart");
    fw.wait_for("long KILLED", |s| {
        s.get("long")
            .is_some_and(|x| state_of(x) == TaskState::Killed)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_agent_is_marked_unreachable_once() {
    let mut cluster = Cluster::start_with(
        0,
        &[
            "--agent-heartbeat-seconds",
            "0.3",
            "--agent-max-missed-heartbeats",
            "3",
        ],
    );
    cluster.add_agent_with(0, &["--isolation", "process"]);
    cluster.wait_agents(1);
    let mut fw = Framework::subscribe(cluster.addr, "e2e-unreachable").await;
    let offer = fw.wait_offers(1).await.remove(0);
    fw.accept(
        vec![offer.id],
        vec![launch(vec![shell_task(
            "orphan",
            "cpus:1;mem:32",
            "sleep 3",
        )])],
        Some(60.0),
    )
    .await
    .expect("accept");
    fw.wait_for("orphan RUNNING", |s| {
        s.get("orphan")
            .is_some_and(|x| state_of(x) == TaskState::Running)
    })
    .await;
    cluster.agents[0].kill9();
    fw.wait_for("orphan LOST", |s| {
        s.get("orphan")
            .is_some_and(|x| state_of(x) == TaskState::Lost)
    })
    .await;
    let lost = fw.statuses["orphan"].clone();
    assert_eq!(lost.reason, v1::StatusReason::AgentUnreachable as i32);
    assert_eq!(lost.source, v1::StatusSource::SourceMaster as i32);
    // Exactly once, even after more heartbeat periods pass.
    for _ in 0..10 {
        fw.pump(Duration::from_millis(100)).await;
    }
    let lost_updates = fw
        .history
        .iter()
        .filter(|s| s.task_id == "orphan" && state_of(s) == TaskState::Lost)
        .count();
    assert_eq!(lost_updates, 1);
    let s = cluster.state();
    assert_eq!(s["agents"][0]["status"], "unreachable");
    let (_, metrics) = http_get(cluster.addr, "/metrics").expect("metrics");
    assert!(
        metrics.contains("agora_agents{status=\"unreachable\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framework_failover_within_timeout_loses_nothing_and_expiry_kills() {
    let cluster = Cluster::start(1);
    let info = |name: &str, timeout: f64| v1::FrameworkInfo {
        name: name.into(),
        roles: vec!["e2e".into()],
        failover_timeout_seconds: timeout,
        ..Default::default()
    };
    // Framework A: long failover timeout; drops its connection and comes back.
    let mut a = Framework::subscribe_info(cluster.addr, info("e2e-a", 60.0)).await;
    let offer = a.wait_offers(1).await.remove(0);
    a.accept(
        vec![offer.id],
        vec![launch(vec![shell_task("a1", "cpus:1;mem:32", "sleep 60")])],
        Some(0.0),
    )
    .await
    .expect("accept a1");
    a.wait_for("a1 RUNNING", |s| {
        s.get("a1")
            .is_some_and(|x| state_of(x) == TaskState::Running)
    })
    .await;
    let a_id = a.id.clone();
    drop(a);
    cluster.wait_until("a disconnected", |s| {
        s["frameworks"].as_array().is_some_and(|f| {
            f.iter()
                .any(|f| f["id"] == a_id.as_str() && f["status"] == "disconnected")
        })
    });
    let mut a = Framework::subscribe_info(
        cluster.addr,
        v1::FrameworkInfo {
            id: a_id.clone(),
            ..info("e2e-a", 60.0)
        },
    )
    .await;
    a.client
        .reconcile(v1::ReconcileRequest {
            framework_id: a_id.clone(),
            tasks: vec![v1::reconcile_request::Task {
                task_id: "a1".into(),
                agent_id: String::new(),
            }],
        })
        .await
        .expect("reconcile");
    a.wait_for("a1 still RUNNING", |s| {
        s.get("a1").is_some_and(|x| {
            state_of(x) == TaskState::Running && x.reason == v1::StatusReason::Reconciliation as i32
        })
    })
    .await;

    // A stops taking offers so B gets the rest of the agent.
    a.client
        .suppress(v1::SuppressRequest {
            framework_id: a_id.clone(),
            roles: vec![],
        })
        .await
        .expect("suppress");
    for _ in 0..5 {
        a.pump(Duration::from_millis(100)).await;
    }
    let held: Vec<String> = a.offers.drain(..).map(|o| o.id).collect();
    if !held.is_empty() {
        a.decline(held, 60.0).await;
    }

    // Framework B: a short failover timeout; its task is killed when it expires.
    let mut b = Framework::subscribe_info(cluster.addr, info("e2e-b", 0.5)).await;
    let offer = b.wait_offers(1).await.remove(0);
    b.accept(
        vec![offer.id],
        vec![launch(vec![shell_task("b1", "cpus:1;mem:32", "sleep 60")])],
        Some(0.0),
    )
    .await
    .expect("accept b1");
    b.wait_for("b1 RUNNING", |s| {
        s.get("b1")
            .is_some_and(|x| state_of(x) == TaskState::Running)
    })
    .await;
    let b_id = b.id.clone();
    drop(b);
    cluster.wait_until("b1 killed after failover timeout", |s| {
        s["tasks"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["id"] == "b1" && t["state"] == "KILLED"))
            && s["frameworks"]
                .as_array()
                .is_some_and(|f| f.iter().all(|f| f["id"] != b_id.as_str()))
    });
    // A's task was untouched by all of this.
    let s = cluster.state();
    assert!(
        s["tasks"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["id"] == "a1" && t["state"] == "RUNNING"))
    );
    // B's id is retired.
    let mut client = v1::scheduler_client::SchedulerClient::connect(cluster.url())
        .await
        .expect("connect");
    let r = client
        .subscribe(v1::SubscribeRequest {
            framework: Some(v1::FrameworkInfo {
                id: b_id,
                ..info("e2e-b", 0.5)
            }),
            secret: String::new(),
        })
        .await;
    assert_code(
        r.map(|_| ()),
        tonic::Code::FailedPrecondition,
        "did not re-subscribe within its failover timeout",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_offers_are_rescinded_after_the_offer_timeout() {
    let cluster = Cluster::start_with(1, &["--offer-timeout-seconds", "0.5"]);
    let mut fw = Framework::subscribe(cluster.addr, "e2e-greedy").await;
    // Take the offer and sit on it.
    while fw.offers.is_empty() {
        fw.pump(Duration::from_millis(100)).await;
    }
    let held = fw.offers[0].id.clone();
    let deadline = std::time::Instant::now() + WAIT;
    while !fw.rescinded.contains(&held) {
        assert!(
            std::time::Instant::now() < deadline,
            "offer {held} never rescinded"
        );
        fw.pump(Duration::from_millis(100)).await;
    }
    // Accepting it now is refused: it is no longer outstanding.
    let r = fw
        .accept(
            vec![held.clone()],
            vec![launch(vec![shell_task("late", "cpus:1", "true")])],
            None,
        )
        .await;
    assert_code(r, tonic::Code::NotFound, "is not outstanding");
    let (_, metrics) = http_get(cluster.addr, "/metrics").expect("metrics");
    assert!(
        metrics.contains("agora_offers_timed_out_total 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_stops_promptly_on_sigterm_with_streams_open() {
    let mut cluster = Cluster::start(1);
    let _fw = Framework::subscribe(cluster.addr, "e2e-sigterm").await;
    let started = std::time::Instant::now();
    let status = cluster.master.stop();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_keeps_frameworks_retired_ids_and_weights_across_sigkill() {
    let mut cluster = Cluster::start(0);
    let info = |name: &str| v1::FrameworkInfo {
        name: name.into(),
        roles: vec!["e2e".into()],
        failover_timeout_seconds: 60.0,
        ..Default::default()
    };
    let idle = Framework::subscribe_info(cluster.addr, info("e2e-idle")).await;
    let idle_id = idle.id.clone();
    let mut gone = Framework::subscribe_info(cluster.addr, info("e2e-gone")).await;
    let gone_id = gone.id.clone();
    gone.client
        .teardown(v1::TeardownRequest {
            framework_id: gone_id.clone(),
        })
        .await
        .expect("teardown");
    let mut operator = v1::operator_client::OperatorClient::connect(cluster.url())
        .await
        .expect("operator connect");
    operator
        .update_weights(v1::UpdateWeightsRequest {
            weights: vec![v1::WeightInfo {
                role: "e2e".into(),
                weight: 3.5,
            }],
        })
        .await
        .expect("update weights");
    let r = operator
        .update_weights(v1::UpdateWeightsRequest {
            weights: vec![v1::WeightInfo {
                role: "e2e".into(),
                weight: -1.0,
            }],
        })
        .await;
    assert_code(
        r,
        tonic::Code::InvalidArgument,
        "must be a finite number > 0",
    );
    cluster.wait_until("one framework left", |s| {
        s["frameworks"].as_array().is_some_and(|f| f.len() == 1)
    });
    drop(idle);
    drop(gone);

    cluster.master.kill9();
    cluster.restart_master();
    let s = cluster.state();
    let fws = s["frameworks"].as_array().expect("frameworks");
    assert_eq!(fws.len(), 1, "{s}");
    assert_eq!(fws[0]["id"], idle_id.as_str());
    assert_eq!(fws[0]["name"], "e2e-idle");
    assert_eq!(fws[0]["status"], "inactive");
    let weights = v1::operator_client::OperatorClient::connect(cluster.url())
        .await
        .expect("operator connect")
        .get_weights(v1::Empty {})
        .await
        .expect("weights")
        .into_inner();
    assert!(
        weights
            .weights
            .iter()
            .any(|w| w.role == "e2e" && w.weight == 3.5),
        "{weights:?}"
    );
    // The idle framework resumes; the torn-down one stays retired.
    let resumed = Framework::subscribe_info(
        cluster.addr,
        v1::FrameworkInfo {
            id: idle_id.clone(),
            ..info("e2e-idle")
        },
    )
    .await;
    assert_eq!(resumed.id, idle_id);
    let mut client = v1::scheduler_client::SchedulerClient::connect(cluster.url())
        .await
        .expect("connect");
    let r = client
        .subscribe(v1::SubscribeRequest {
            framework: Some(v1::FrameworkInfo {
                id: gone_id,
                ..info("e2e-gone")
            }),
            secret: String::new(),
        })
        .await;
    assert_code(
        r.map(|_| ()),
        tonic::Code::FailedPrecondition,
        "was torn down",
    );
}
