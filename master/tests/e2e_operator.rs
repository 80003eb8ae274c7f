//! End-to-end: the operator event stream against real master and agent processes.

mod support;

use std::time::Duration;

use agora_proto::TaskState;
use agora_proto::v1::{self, operator_event::Event as Ev};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_stream_shows_snapshot_then_every_change() {
    let mut cluster = Cluster::start(0);
    let mut operator = v1::operator_client::OperatorClient::connect(cluster.url())
        .await
        .expect("connect");
    let mut events = operator
        .subscribe(v1::Empty {})
        .await
        .expect("subscribe")
        .into_inner();
    let mut seen: Vec<Ev> = Vec::new();
    assert!(matches!(next(&mut events).await, Ev::Snapshot(s) if s.agents.is_empty()));

    cluster.add_agent_with(0, &["--isolation", "process"]);
    match next(&mut events).await {
        Ev::AgentAdded(a) => {
            let info = a.agent.and_then(|a| a.info).expect("agent info");
            assert_eq!(info.hostname, "e2e-agent-0");
        }
        other => panic!("expected AGENT_ADDED, got {other:?}"),
    }

    let mut fw = Framework::subscribe(cluster.addr, "e2e-events").await;
    let offer = fw.wait_offers(1).await.remove(0);
    fw.accept(
        vec![offer.id],
        vec![launch(vec![shell_task("ev", "cpus:1;mem:32", "true")])],
        None,
    )
    .await
    .expect("accept");
    fw.wait_for("ev FINISHED", |s| {
        s.get("ev")
            .is_some_and(|x| state_of(x) == TaskState::Finished)
    })
    .await;
    fw.client
        .teardown(v1::TeardownRequest {
            framework_id: fw.id.clone(),
        })
        .await
        .expect("teardown");

    // Collect until the framework is removed.
    loop {
        let ev = next(&mut events).await;
        let done = matches!(&ev, Ev::FrameworkRemoved(r) if r.framework_id == fw.id);
        seen.push(ev);
        if done {
            break;
        }
    }
    assert!(matches!(&seen[0], Ev::FrameworkAdded(_)), "{:?}", seen[0]);
    assert!(
        seen.iter().any(|e| matches!(e, Ev::TaskAdded(t)
            if t.task.as_ref().and_then(|t| t.task.as_ref()).is_some_and(|t| t.task_id == "ev"))),
        "TASK_ADDED for ev"
    );
    let states: Vec<TaskState> = seen
        .iter()
        .filter_map(|e| match e {
            Ev::TaskUpdated(u) => u.status.as_ref().map(state_of),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        vec![TaskState::Starting, TaskState::Running, TaskState::Finished]
    );

    // An agent going away shows up as an update of its status.
    cluster.agents[0].kill9();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        assert!(std::time::Instant::now() < deadline, "no AGENT_UPDATED");
        if let Ev::AgentUpdated(a) = next(&mut events).await {
            assert_eq!(a.agent.map(|a| a.status).as_deref(), Some("disconnected"));
            break;
        }
    }
    let (_, metrics) = http_get(cluster.addr, "/metrics").expect("metrics");
    assert!(
        metrics.contains("agora_operator_subscribers 1"),
        "{metrics}"
    );
    tokio::time::sleep(Duration::from_millis(1)).await;
}

async fn next(events: &mut tonic::Streaming<v1::OperatorEvent>) -> Ev {
    tokio::time::timeout(WAIT, events.message())
        .await
        .expect("an event in time")
        .expect("stream ok")
        .and_then(|e| e.event)
        .expect("an event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_deactivate_reactivate_drain_and_mark_gone() {
    let mut cluster = Cluster::start(1);
    let mut operator = v1::operator_client::OperatorClient::connect(cluster.url())
        .await
        .expect("connect");
    let mut fw = Framework::subscribe(cluster.addr, "e2e-maint").await;
    let offer = fw.wait_offers(1).await.remove(0);
    let agent_id = offer.agent_id.clone();
    fw.accept(
        vec![offer.id],
        vec![launch(vec![shell_task("svc", "cpus:1;mem:32", "sleep 60")])],
        Some(0.0),
    )
    .await
    .expect("accept");
    fw.wait_for("svc RUNNING", |s| {
        s.get("svc")
            .is_some_and(|x| state_of(x) == TaskState::Running)
    })
    .await;
    // The rest of the agent comes back as an offer; deactivation rescinds it.
    while fw.offers.is_empty() {
        fw.pump(Duration::from_millis(100)).await;
    }
    let held = fw.offers[0].id.clone();
    operator
        .deactivate_agent(v1::AgentRequest {
            agent_id: agent_id.clone(),
        })
        .await
        .expect("deactivate");
    let deadline = std::time::Instant::now() + WAIT;
    while !fw.rescinded.contains(&held) {
        assert!(std::time::Instant::now() < deadline, "offer not rescinded");
        fw.pump(Duration::from_millis(100)).await;
    }
    for _ in 0..10 {
        fw.pump(Duration::from_millis(100)).await;
    }
    assert!(fw.offers.is_empty(), "no offers from a deactivated agent");
    assert_eq!(cluster.state()["agents"][0]["status"], "deactivated");
    assert_eq!(
        fw.statuses["svc"].state,
        TaskState::Running as i32,
        "tasks keep running"
    );
    // Bad input is refused precisely.
    let r = operator
        .reactivate_agent(v1::AgentRequest {
            agent_id: "nope".into(),
        })
        .await;
    assert_code(r, tonic::Code::NotFound, "unknown agent id 'nope'");
    let r = operator
        .drain_agent(v1::DrainAgentRequest {
            agent_id: agent_id.clone(),
            grace_period_seconds: f64::NAN,
            mark_gone: false,
        })
        .await;
    assert_code(r, tonic::Code::InvalidArgument, "grace_period_seconds");

    operator
        .reactivate_agent(v1::AgentRequest {
            agent_id: agent_id.clone(),
        })
        .await
        .expect("reactivate");
    fw.wait_offers(1).await;
    let r = operator
        .reactivate_agent(v1::AgentRequest {
            agent_id: agent_id.clone(),
        })
        .await;
    assert_code(r, tonic::Code::FailedPrecondition, "is not deactivated");

    // Drain with a grace period and mark gone: the task is killed, the agent retired and
    // told to shut down.
    operator
        .drain_agent(v1::DrainAgentRequest {
            agent_id: agent_id.clone(),
            grace_period_seconds: 1.0,
            mark_gone: true,
        })
        .await
        .expect("drain");
    fw.wait_for("svc KILLED", |s| {
        s.get("svc")
            .is_some_and(|x| state_of(x) == TaskState::Killed)
    })
    .await;
    cluster.wait_until("agent removed", |s| s["agents"][0]["status"] == "removed");
    let deadline = std::time::Instant::now() + WAIT;
    let status = loop {
        if let Ok(Some(st)) = cluster.agents[0].child.try_wait() {
            break st;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "agent process still running"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success(), "a removed agent exits non-zero");
    let r = operator
        .deactivate_agent(v1::AgentRequest { agent_id })
        .await;
    assert_code(r, tonic::Code::FailedPrecondition, "was removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marking_a_busy_agent_gone_reports_its_tasks_once() {
    let cluster = Cluster::start(1);
    let mut fw = Framework::subscribe(cluster.addr, "e2e-gone").await;
    let offer = fw.wait_offers(1).await.remove(0);
    let agent_id = offer.agent_id.clone();
    fw.accept(
        vec![offer.id],
        vec![launch(vec![shell_task("g", "cpus:1;mem:32", "sleep 60")])],
        None,
    )
    .await
    .expect("accept");
    fw.wait_for("g RUNNING", |s| {
        s.get("g")
            .is_some_and(|x| state_of(x) == TaskState::Running)
    })
    .await;
    v1::operator_client::OperatorClient::connect(cluster.url())
        .await
        .expect("connect")
        .mark_agent_gone(v1::AgentRequest { agent_id })
        .await
        .expect("mark gone");
    fw.wait_for("g GONE_BY_OPERATOR", |s| {
        s.get("g")
            .is_some_and(|x| state_of(x) == TaskState::GoneByOperator)
    })
    .await;
    for _ in 0..10 {
        fw.pump(Duration::from_millis(100)).await;
    }
    let gone = fw
        .history
        .iter()
        .filter(|s| s.task_id == "g" && state_of(s) == TaskState::GoneByOperator)
        .count();
    assert_eq!(gone, 1);
}

/// `KillTask` over gRPC is the HTTP kill: the task is killed and the framework hears it;
/// the same refusals for an ended task, an unknown task or framework and a bad id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_kill_task_over_grpc() {
    let cluster = Cluster::start(1);
    let mut operator = v1::operator_client::OperatorClient::connect(cluster.url())
        .await
        .expect("connect");
    let mut fw = Framework::subscribe(cluster.addr, "e2e-kill").await;
    let offer = fw.wait_offers(1).await.remove(0);
    fw.accept(
        vec![offer.id],
        vec![launch(vec![
            shell_task("k1", "cpus:1;mem:32", "sleep 60"),
            shell_task("k2", "cpus:1;mem:32", "sleep 60"),
        ])],
        None,
    )
    .await
    .expect("accept");
    fw.wait_for("k1 and k2 RUNNING", |s| {
        ["k1", "k2"]
            .iter()
            .all(|t| s.get(*t).is_some_and(|x| state_of(x) == TaskState::Running))
    })
    .await;
    let kill = |framework_id: &str, task_id: &str| v1::KillTaskRequest {
        framework_id: framework_id.into(),
        task_id: task_id.into(),
    };
    operator
        .kill_task(kill(&fw.id, "k1"))
        .await
        .expect("kill k1");
    fw.wait_for("k1 KILLED", |s| {
        s.get("k1")
            .is_some_and(|x| state_of(x) == TaskState::Killed)
    })
    .await;
    assert_eq!(
        fw.statuses["k2"].state,
        TaskState::Running as i32,
        "only the named task is killed"
    );
    let r = operator.kill_task(kill(&fw.id, "k1")).await;
    assert_code(r, tonic::Code::FailedPrecondition, "already ended");
    let r = operator.kill_task(kill(&fw.id, "nope")).await;
    assert_code(r, tonic::Code::NotFound, "unknown task 'nope'");
    let r = operator.kill_task(kill("no-such-framework", "k2")).await;
    assert_code(r, tonic::Code::NotFound, "unknown framework id");
    let r = operator.kill_task(kill(&fw.id, "")).await;
    assert_code(r, tonic::Code::InvalidArgument, "task id");
    assert_eq!(
        fw.statuses["k2"].state,
        TaskState::Running as i32,
        "refused kills change nothing"
    );
}

#[test]
fn http_operator_endpoints_change_state_and_refuse_bad_input() {
    let cluster = Cluster::start(1);
    let a = cluster.addr;
    let (code, body) = http_request(
        a,
        "PUT",
        "/api/v1/weights",
        Some(r#"[{"role":"spark","weight":2.5}]"#),
    )
    .expect("put weights");
    assert_eq!(code, 200, "{body}");
    let (code, body) = http_get(a, "/api/v1/weights").expect("get weights");
    assert_eq!(code, 200);
    assert!(
        body.contains(r#""role":"spark""#) && body.contains("2.5"),
        "{body}"
    );
    for (payload, needle) in [
        (
            r#"[{"role":"spark","weight":-1}]"#,
            "must be a finite number > 0",
        ),
        (r#"[{"role":"*","weight":1}]"#, "weight"),
        (r#"[{"role":"spark"}]"#, "invalid request body"),
        ("not json", "invalid request body"),
        (
            r#"[{"role":"a","weight":1,"extra":true}]"#,
            "invalid request body",
        ),
    ] {
        let (code, body) = http_request(a, "PUT", "/api/v1/weights", Some(payload)).expect("put");
        assert_eq!(code, 400, "{payload}: {body}");
        assert!(body.contains(needle), "{payload}: {body}");
    }
    let (code, body) =
        http_request(a, "POST", "/api/v1/frameworks/nope/teardown", None).expect("teardown");
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("unknown framework id 'nope'"), "{body}");
    let (code, _) =
        http_request(a, "POST", "/api/v1/agents/nope/deactivate", None).expect("deactivate");
    assert_eq!(code, 404);

    let agent = cluster.state()["agents"][0]["id"]
        .as_str()
        .expect("agent id")
        .to_string();
    let post = |path: String, body: Option<&str>| http_request(a, "POST", &path, body);
    let (code, body) = post(format!("/api/v1/agents/{agent}/deactivate"), None).expect("post");
    assert_eq!(code, 200, "{body}");
    assert_eq!(cluster.state()["agents"][0]["status"], "deactivated");
    let (code, _) = post(format!("/api/v1/agents/{agent}/reactivate"), None).expect("post");
    assert_eq!(code, 200);
    let (code, body) = post(format!("/api/v1/agents/{agent}/reactivate"), None).expect("post");
    assert_eq!(code, 409, "{body}");
    let (code, body) = post(
        format!("/api/v1/agents/{agent}/drain"),
        Some(r#"{"grace_period_seconds":"soon"}"#),
    )
    .expect("post");
    assert_eq!(code, 400, "{body}");
    let (code, body) = post(
        format!("/api/v1/agents/{agent}/drain"),
        Some(r#"{"grace_period_seconds":0.5}"#),
    )
    .expect("post");
    assert_eq!(code, 200, "{body}");
    cluster.wait_until("drained agent deactivated", |s| {
        s["agents"][0]["status"] == "deactivated"
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_explain_and_constraints_through_the_apis() {
    let mut cluster = Cluster::start(1);
    let a = cluster.addr;
    let mut operator = v1::operator_client::OperatorClient::connect(cluster.url())
        .await
        .expect("connect");
    let quota = |role: &str, g: &str, l: Option<&str>, force| v1::SetQuotaRequest {
        quota: Some(v1::QuotaInfo {
            role: role.into(),
            guarantee: res(g).to_proto(),
            limit: l.map(|l| res(l).to_proto()).unwrap_or_default(),
        }),
        force,
    };
    // More than the cluster holds (one agent of 4 cpus) is refused unless forced.
    let r = operator
        .set_quota(quota("e2e", "cpus:100", None, false))
        .await;
    assert_eq!(r.expect_err("too big").code(), tonic::Code::InvalidArgument);
    let r = operator
        .set_quota(quota("e2e", "cpus:2", Some("cpus:1"), false))
        .await;
    assert_eq!(
        r.expect_err("guarantee above limit").code(),
        tonic::Code::InvalidArgument
    );
    operator
        .set_quota(quota("e2e", "cpus:2;mem:64", Some("cpus:3;mem:512"), false))
        .await
        .expect("a valid quota");
    let q = operator
        .get_quota(v1::Empty {})
        .await
        .expect("get quota")
        .into_inner();
    assert_eq!(q.quotas.len(), 1);
    assert_eq!(q.quotas[0].role, "e2e");

    // HTTP views of the same, and its bad inputs.
    let (code, body) = http_get(a, "/api/v1/quota").expect("quota");
    assert_eq!(code, 200);
    assert!(body.contains(r#""role":"e2e""#), "{body}");
    let (code, body) = http_request(
        a,
        "PUT",
        "/api/v1/quota",
        Some(r#"{"role":"batch","guarantee":"cpus:-1"}"#),
    )
    .expect("put");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("quota guarantee"), "{body}");

    // A framework under the quota'd role; the limit caps what it is offered.
    let mut fw = Framework::subscribe(a, "e2e-quota").await;
    let offers = fw.wait_offers(1).await;
    let cpus: u64 = offers
        .iter()
        .map(|o| {
            agora_resources::Resources::from_proto(&o.resources)
                .expect("offer")
                .scalar("cpus")
                .thousandths()
        })
        .sum();
    assert!(cpus <= 3000, "limit cpus:3 caps offers, got {cpus}");

    // Explain the role and the framework.
    let (code, body) = http_get(a, "/api/v1/allocator/explain?role=e2e").expect("explain");
    assert_eq!(code, 200, "{body}");
    let e: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(e["kind"], "role");
    assert!(e["roles"][0]["quota"].is_object(), "{e}");
    let (code, body) = http_get(a, &format!("/api/v1/allocator/explain?framework={}", fw.id))
        .expect("explain framework");
    assert_eq!(code, 200, "{body}");
    let e: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(e["kind"], "framework");
    let (code, _) = http_get(a, "/api/v1/allocator/explain?role=nope").expect("explain");
    assert_eq!(code, 404);
    let (code, body) = http_get(a, "/api/v1/allocator/explain").expect("explain");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("exactly one"), "{body}");

    // An offer constraint whose pattern does not compile is refused at subscribe.
    let mut client = v1::scheduler_client::SchedulerClient::connect(cluster.url())
        .await
        .expect("connect");
    let r = client
        .subscribe(v1::SubscribeRequest {
            framework: Some(v1::FrameworkInfo {
                name: "bad-constraint".into(),
                roles: vec!["e2e".into()],
                offer_constraints: vec![v1::RoleConstraints {
                    role: "e2e".into(),
                    groups: vec![v1::ConstraintGroup {
                        constraints: vec![v1::AttributeConstraint {
                            attribute: "rack".into(),
                            predicate: v1::attribute_constraint::Predicate::Matches as i32,
                            value: "r[".into(),
                        }],
                    }],
                }],
                ..Default::default()
            }),
            secret: String::new(),
        })
        .await;
    assert_code(
        r.map(|_| ()),
        tonic::Code::InvalidArgument,
        "offer constraint",
    );

    // Quota survives a master restart; removal works and is refused for unknown roles.
    drop(fw);
    cluster.master.kill9();
    cluster.restart_master();
    let mut operator = v1::operator_client::OperatorClient::connect(cluster.url())
        .await
        .expect("connect");
    let q = operator
        .get_quota(v1::Empty {})
        .await
        .expect("get quota")
        .into_inner();
    assert_eq!(q.quotas.len(), 1, "quota restored from the registry");
    operator
        .remove_quota(v1::RemoveQuotaRequest { role: "e2e".into() })
        .await
        .expect("remove");
    let (code, _) = http_request(a, "DELETE", "/api/v1/quota?role=e2e", None).expect("delete");
    assert_ne!(code, 200, "removing a quota twice is refused");
}
