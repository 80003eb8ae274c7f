//! End-to-end recovery that never misleads, with real processes: after a master restart,
//! an admitted agent that has not re-registered yet gets no answer for its tasks (not
//! LOST); once `--agent-reregistration-timeout-seconds` passes it is marked unreachable,
//! frameworks hear a FAILURE for it, and reconciliation answers UNREACHABLE.

mod support;

use std::time::{Duration, Instant};

use agora_proto::TaskState;
use agora_proto::v1;
use support::*;

const REREGISTRATION_TIMEOUT_S: u64 = 10;

async fn reconcile(fw: &mut Framework, task: &str, agent: &str) {
    fw.client
        .reconcile(v1::ReconcileRequest {
            framework_id: fw.id.clone(),
            tasks: vec![v1::reconcile_request::Task {
                task_id: task.into(),
                agent_id: agent.into(),
            }],
        })
        .await
        .expect("reconcile");
}

fn agent_status(cluster: &Cluster, id: &str) -> String {
    cluster.state()["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["id"] == id))
        .and_then(|a| a["status"].as_str().map(str::to_string))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_away_after_a_master_restart_is_unknown_until_the_timeout_then_unreachable() {
    let timeout = REREGISTRATION_TIMEOUT_S.to_string();
    let mut cluster = Cluster::start_with(
        2,
        &["--agent-reregistration-timeout-seconds", timeout.as_str()],
    );
    let info = v1::FrameworkInfo {
        name: "e2e-recovery".into(),
        roles: vec!["e2e".into()],
        failover_timeout_seconds: 600.0,
        capabilities: vec![v1::FrameworkCapability::PartitionAware as i32],
        ..Default::default()
    };
    let fw = Framework::subscribe_info(cluster.addr, info.clone()).await;
    let framework_id = fw.id.clone();
    drop(fw);
    let s = cluster.state();
    let away = s["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["hostname"] == "e2e-agent-1"))
        .and_then(|a| a["id"].as_str())
        .expect("agent 1 registered")
        .to_string();

    // Agent 1 dies with the master; only agent 0 comes back.
    cluster.agents[1].kill9();
    cluster.master.kill9();
    let restarted = Instant::now();
    cluster.restart_master();
    let mut fw = Framework::subscribe_info(
        cluster.addr,
        v1::FrameworkInfo {
            id: framework_id.clone(),
            ..info
        },
    )
    .await;
    reconcile(&mut fw, "never-seen", &away).await;
    // Nothing arrives for it while the agent may still come back.
    let quiet_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < quiet_until {
        fw.pump(Duration::from_millis(200)).await;
    }
    let status = agent_status(&cluster, &away);
    assert!(
        restarted.elapsed() < Duration::from_secs(REREGISTRATION_TIMEOUT_S),
        "the machine was too slow to observe the recovery window; status {status}"
    );
    assert_eq!(status, "recovering");
    assert!(
        !fw.statuses.contains_key("never-seen"),
        "answered before the agent could return: {:?}",
        fw.statuses.get("never-seen")
    );

    // After the timeout: unreachable, a FAILURE for the agent, UNREACHABLE on reconcile.
    cluster.wait_until("agent 1 unreachable", |s| {
        s["agents"].as_array().is_some_and(|a| {
            a.iter()
                .any(|a| a["id"] == away.as_str() && a["status"] == "unreachable")
        })
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !fw
        .others
        .iter()
        .any(|e| matches!(e, v1::event::Event::Failure(f) if f.agent_id == away && f.executor_id.is_empty()))
    {
        assert!(Instant::now() < deadline, "no FAILURE for the agent: {:?}", fw.others);
        fw.pump(Duration::from_millis(200)).await;
    }
    reconcile(&mut fw, "never-seen", &away).await;
    fw.wait_for("reconciled UNREACHABLE", |s| {
        s.get("never-seen")
            .is_some_and(|x| state_of(x) == TaskState::Unreachable)
    })
    .await;
    // The agent that came back is registered.
    assert_eq!(
        cluster.state()["agents"]
            .as_array()
            .map(|a| a.iter().filter(|a| a["status"] == "registered").count()),
        Some(1)
    );
}
