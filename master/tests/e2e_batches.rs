//! End-to-end: the batched calls `UpdateStatuses` (agent) and `AcknowledgeBatch`
//! (framework) against a real `agora-master`, driven by a scripted agent over raw gRPC.
//! Each item is judged on its own (refusals come back by index); a malformed batch or an
//! unknown agent fails the whole call and changes nothing.

mod support;

use std::time::Duration;

use agora_proto::TaskState;
use agora_proto::v1;
use support::*;
use tonic::Code;
use tonic::Streaming;

/// The next commands of the given kind, skipping others, until `n` arrived.
async fn next_commands<T>(
    commands: &mut Streaming<v1::AgentCommand>,
    n: usize,
    pick: impl Fn(v1::agent_command::Command) -> Option<T>,
) -> Vec<T> {
    let mut out = Vec::new();
    while out.len() < n {
        let cmd = tokio::time::timeout(Duration::from_secs(10), commands.message())
            .await
            .expect("command in time")
            .expect("stream ok")
            .expect("stream open");
        if let Some(t) = cmd.command.and_then(&pick) {
            out.push(t);
        }
    }
    out
}

/// A batch answer's refusals as (index, code).
fn indices_and_codes(refused: &[v1::batch_response::Refused]) -> Vec<(u32, i32)> {
    refused.iter().map(|r| (r.index, r.code)).collect()
}

fn status(task: &str, framework: &str, state: TaskState, uuid: &str) -> v1::TaskStatus {
    v1::TaskStatus {
        task_id: task.into(),
        framework_id: framework.into(),
        state: state as i32,
        source: v1::StatusSource::SourceAgent as i32,
        uuid: uuid.into(),
        ..Default::default()
    }
}

fn update(s: v1::TaskStatus) -> v1::StatusUpdateRequest {
    v1::StatusUpdateRequest {
        agent_id: String::new(),
        latest_state: s.state,
        status: Some(s),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_updates_and_acknowledgements_are_judged_one_by_one() {
    let cluster = Cluster::start(0);
    let (mut agent, mut commands, agent_id) = scripted_agent(&cluster, "cpus:4;mem:1024").await;
    let mut fw = Framework::subscribe(cluster.addr, "e2e-batches").await;
    fw.auto_ack = false;
    let offer = fw.wait_offers(1).await.remove(0);
    fw.accept(
        vec![offer.id],
        vec![launch(vec![
            shell_task("a", "cpus:1", "true"),
            shell_task("b", "cpus:1", "true"),
        ])],
        None,
    )
    .await
    .expect("accept");
    let launched = next_commands(&mut commands, 2, |c| match c {
        v1::agent_command::Command::RunTask(r) => r.task.map(|t| t.task_id),
        _ => None,
    })
    .await;
    assert_eq!(launched, vec!["a", "b"]);
    let fid = fw.id.clone();

    // A batch naming another agent in one of its updates is refused whole.
    let mut foreign = update(status("a", &fid, TaskState::Starting, "u-x"));
    foreign.agent_id = "someone-else".into();
    let err = agent
        .update_statuses(v1::StatusUpdateBatch {
            agent_id: agent_id.clone(),
            updates: vec![
                update(status("b", &fid, TaskState::Starting, "u-y")),
                foreign,
            ],
        })
        .await
        .expect_err("foreign agent id");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("update"), "{}", err.message());

    // A batch from an agent the master does not know: register again.
    let err = agent
        .update_statuses(v1::StatusUpdateBatch {
            agent_id: "no-such-agent".into(),
            updates: vec![update(status("a", &fid, TaskState::Starting, "u-z"))],
        })
        .await
        .expect_err("unknown agent");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(
        err.message().contains("register again"),
        "{}",
        err.message()
    );

    // Too many at once.
    let many = (0..10_001)
        .map(|i| update(status("a", &fid, TaskState::Starting, &format!("u-{i}"))))
        .collect();
    let err = agent
        .update_statuses(v1::StatusUpdateBatch {
            agent_id: agent_id.clone(),
            updates: many,
        })
        .await
        .expect_err("oversized batch");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("at most 10000"), "{}", err.message());

    // Nothing of the refused batches reached the framework.
    fw.pump(Duration::from_millis(300)).await;
    assert!(fw.history.is_empty(), "{:?}", fw.history);

    // Good and bad updates in one batch: the good ones are relayed, the bad ones named.
    let mut no_status = update(status("a", &fid, TaskState::Starting, "u-n"));
    no_status.status = None;
    let reply = agent
        .update_statuses(v1::StatusUpdateBatch {
            agent_id: agent_id.clone(),
            updates: vec![
                update(status("a", &fid, TaskState::Starting, "u-a1")),
                update(status("a", &fid, TaskState::Starting, "")),
                update(status("b", &fid, TaskState::Starting, "u-b1")),
                no_status,
                update(status("b", &fid, TaskState::Unspecified, "u-b0")),
            ],
        })
        .await
        .expect("batch")
        .into_inner();
    let refused = indices_and_codes(&reply.refused);
    assert_eq!(
        refused,
        vec![
            (1, Code::InvalidArgument as i32),
            (3, Code::InvalidArgument as i32),
            (4, Code::InvalidArgument as i32),
        ],
        "{:?}",
        reply.refused
    );
    assert!(
        reply.refused[0].message.contains("no uuid"),
        "{:?}",
        reply.refused
    );
    fw.wait_for("both STARTING", |s| {
        ["a", "b"].iter().all(|t| {
            s.get(*t)
                .is_some_and(|x| x.state == TaskState::Starting as i32)
        })
    })
    .await;

    // Acknowledgements: two good, one without uuid, one for a task nobody knows (and no
    // agent named to pass it on to).
    let ack = |task: &str, uuid: &str| v1::AcknowledgeRequest {
        framework_id: String::new(),
        agent_id: agent_id.clone(),
        task_id: task.into(),
        uuid: uuid.into(),
    };
    let reply = fw
        .client
        .acknowledge_batch(v1::AcknowledgeBatchRequest {
            framework_id: fid.clone(),
            acks: vec![
                ack("a", "u-a1"),
                ack("a", ""),
                v1::AcknowledgeRequest {
                    agent_id: String::new(),
                    ..ack("ghost", "u-g")
                },
                ack("b", "u-b1"),
            ],
        })
        .await
        .expect("ack batch")
        .into_inner();
    let refused = indices_and_codes(&reply.refused);
    assert_eq!(
        refused,
        vec![
            (1, Code::InvalidArgument as i32),
            (2, Code::NotFound as i32)
        ],
        "{:?}",
        reply.refused
    );
    let acked = next_commands(&mut commands, 2, |c| match c {
        v1::agent_command::Command::Acknowledge(a) => Some((a.task_id, a.uuid)),
        _ => None,
    })
    .await;
    assert_eq!(
        acked,
        vec![
            ("a".to_string(), "u-a1".to_string()),
            ("b".into(), "u-b1".into())
        ]
    );

    // A batch whose item names another framework is refused whole.
    let mut other = ack("b", "u-b1");
    other.framework_id = "not-me".into();
    let err = fw
        .client
        .acknowledge_batch(v1::AcknowledgeBatchRequest {
            framework_id: fid.clone(),
            acks: vec![ack("a", "u-a1"), other],
        })
        .await
        .expect_err("foreign framework id");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("not-me"), "{}", err.message());

    // A batch for a framework that is not subscribed.
    let err = fw
        .client
        .acknowledge_batch(v1::AcknowledgeBatchRequest {
            framework_id: "no-such-framework".into(),
            acks: vec![ack("a", "u-a1")],
        })
        .await
        .expect_err("unknown framework");
    assert_ne!(err.code(), Code::Ok);

    // The tasks end through a batch too; the master's view follows.
    let reply = agent
        .update_statuses(v1::StatusUpdateBatch {
            agent_id: agent_id.clone(),
            updates: vec![
                update(status("a", &fid, TaskState::Finished, "u-a2")),
                update(status("b", &fid, TaskState::Finished, "u-b2")),
            ],
        })
        .await
        .expect("final batch")
        .into_inner();
    assert!(reply.refused.is_empty(), "{:?}", reply.refused);
    fw.wait_for("both FINISHED", |s| {
        ["a", "b"].iter().all(|t| {
            s.get(*t)
                .is_some_and(|x| x.state == TaskState::Finished as i32)
        })
    })
    .await;
    cluster.wait_until("tasks finished in the master's state", |s| {
        s["tasks"]
            .as_array()
            .is_some_and(|t| t.len() == 2 && t.iter().all(|t| t["state"] == "FINISHED"))
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_accepts_are_applied_one_by_one() {
    let cluster = Cluster::start(0);
    let (_agent, mut commands, _agent_id) = scripted_agent(&cluster, "cpus:4;mem:1024").await;
    let mut fw = Framework::subscribe(cluster.addr, "e2e-accept-batch").await;
    let offer = fw.wait_offers(1).await.remove(0);
    let accept = |offer_id: &str, task: &str| v1::AcceptRequest {
        framework_id: String::new(),
        offer_ids: vec![offer_id.to_string()],
        operations: vec![launch(vec![shell_task(task, "cpus:1", "true")])],
        filters: None,
    };

    // An item naming another framework: the whole call is refused, nothing launched.
    let mut foreign = accept(&offer.id, "x");
    foreign.framework_id = "not-me".into();
    let err = fw
        .client
        .accept_batch(v1::AcceptBatchRequest {
            framework_id: fw.id.clone(),
            accepts: vec![accept(&offer.id, "x"), foreign],
        })
        .await
        .expect_err("foreign framework id");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // A good accept, one of an unknown offer, and the good offer again (no longer
    // outstanding): the first applies, the others are named.
    let reply = fw
        .client
        .accept_batch(v1::AcceptBatchRequest {
            framework_id: fw.id.clone(),
            accepts: vec![
                accept(&offer.id, "c"),
                accept("no-such-offer", "d"),
                accept(&offer.id, "e"),
            ],
        })
        .await
        .expect("accept batch")
        .into_inner();
    assert_eq!(reply.responses.len(), 3);
    assert_eq!(reply.responses[0].launched_task_ids, vec!["c"]);
    assert!(reply.responses[1].launched_task_ids.is_empty());
    let refused = indices_and_codes(&reply.refused);
    assert_eq!(
        refused,
        vec![(1, Code::NotFound as i32), (2, Code::NotFound as i32)],
        "{:?}",
        reply.refused
    );
    let launched = next_commands(&mut commands, 1, |c| match c {
        v1::agent_command::Command::RunTask(r) => r.task.map(|t| t.task_id),
        _ => None,
    })
    .await;
    assert_eq!(launched, vec!["c"]);
    let (_, metrics) = http_get(cluster.addr, "/metrics").expect("metrics");
    assert!(
        metrics.contains("agora_tasks_launched_total 1"),
        "{metrics}"
    );
}
