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

    cluster.add_agent(0);
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
