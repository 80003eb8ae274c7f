//! Bounded bookkeeping in the actor: a framework that leaves `framework_queue_capacity`
//! events unread is disconnected (not grown without bound), one that keeps up is not; the
//! bounded record of ended tasks is looked up through an index that follows eviction.

use std::sync::Arc;

use agora_proto::v1;

use super::{Master, Subscription};
use crate::clock::ManualClock;
use crate::config::MasterConfig;
use crate::registry::{MemRegistry, RegistryState};
use crate::state::framework::FrameworkStatus;

fn master(capacity: usize) -> (Master, std::path::PathBuf) {
    let (m, _clock, dir) = master_with_clock(capacity);
    (m, dir)
}

fn master_with_clock(capacity: usize) -> (Master, ManualClock, std::path::PathBuf) {
    let clock = ManualClock::new(1_000_000);
    let dir = std::env::temp_dir().join(format!("agora-queue-{}", uuid::Uuid::new_v4()));
    let config = MasterConfig {
        data_dir: dir.clone(),
        framework_queue_capacity: capacity,
        ..MasterConfig::default()
    };
    let registry = Box::new(MemRegistry::new());
    let (master, _handle, _rx) = Master::new(
        config,
        Arc::new(clock.clone()),
        registry,
        RegistryState::default(),
    )
    .expect("master");
    (master, clock, dir)
}

fn subscribe(m: &mut Master) -> Subscription {
    m.subscribe(v1::SubscribeRequest {
        framework: Some(v1::FrameworkInfo {
            name: "slow".into(),
            roles: vec!["r".into()],
            ..Default::default()
        }),
        secret: String::new(),
    })
    .expect("subscribe")
}

fn heartbeat() -> v1::Event {
    v1::Event {
        event: Some(v1::event::Event::Heartbeat(v1::event::Heartbeat {})),
    }
}

#[test]
fn a_framework_that_does_not_read_is_cut_off_at_its_queue_capacity() {
    let (mut m, dir) = master(16);
    let mut sub = subscribe(&mut m);
    // SUBSCRIBED is already queued; fill the rest.
    for _ in 0..15 {
        m.send_event(&sub.framework_id, heartbeat());
    }
    assert_eq!(
        m.frameworks[&sub.framework_id].status,
        FrameworkStatus::Active
    );
    m.send_event(&sub.framework_id, heartbeat());
    assert_eq!(
        m.frameworks[&sub.framework_id].status,
        FrameworkStatus::Disconnected,
        "one event over the capacity disconnects"
    );
    assert_eq!(m.metrics.frameworks_disconnected_slow, 1);
    // What was queued is still delivered; nothing more is.
    let mut got = 0;
    while sub.events.try_recv().is_ok() {
        got += 1;
    }
    assert_eq!(got, 16);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_framework_that_reads_is_never_cut_off_and_a_larger_queue_holds_a_burst() {
    let (mut m, dir) = master(MasterConfig::default().framework_queue_capacity);
    let mut sub = subscribe(&mut m);
    for _ in 0..100_000 {
        m.send_event(&sub.framework_id, heartbeat());
        let _ = sub.events.try_recv();
    }
    assert_eq!(
        m.frameworks[&sub.framework_id].status,
        FrameworkStatus::Active
    );
    let _ = std::fs::remove_dir_all(&dir);
    // Three updates per task of a 10,000-task burst fit a 65,536-event queue unread.
    let (mut m, dir) = master(65_536);
    let sub = subscribe(&mut m);
    for _ in 0..30_000 {
        m.send_event(&sub.framework_id, heartbeat());
    }
    assert_eq!(
        m.frameworks[&sub.framework_id].status,
        FrameworkStatus::Active
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Ended tasks are found through the index, which follows the bounded deque: evicted
/// entries are gone, a reused task id finds its latest record.
#[test]
fn ended_tasks_are_looked_up_through_an_index_that_follows_eviction() {
    use agora_proto::TaskState;
    use agora_resources::Resources;

    use super::TaskEntry;

    let dir = std::env::temp_dir().join(format!("agora-completed-{}", uuid::Uuid::new_v4()));
    let config = MasterConfig {
        data_dir: dir.clone(),
        max_completed_tasks: 3,
        ..MasterConfig::default()
    };
    let (mut m, _handle, _rx) = Master::new(
        config,
        Arc::new(ManualClock::new(1_000_000)),
        Box::new(MemRegistry::new()),
        RegistryState::default(),
    )
    .expect("master");
    let end = |m: &mut Master, task: &str, state: TaskState| {
        let key = ("fw".to_string(), task.to_string());
        m.tasks.insert(
            key.clone(),
            TaskEntry {
                info: v1::TaskInfo {
                    task_id: task.into(),
                    ..Default::default()
                }
                .into(),
                framework_id: "fw".into(),
                agent_id: "a".into(),
                role: "r".into(),
                resources: (&Resources::new()).into(),
                state,
                booked: false,
                statuses: Default::default(),
                relayed: None,
            },
        );
        m.complete_task(&key);
    };
    for t in ["t0", "t1", "t2", "t3"] {
        end(&mut m, t, TaskState::Finished);
    }
    let key = |t: &str| ("fw".to_string(), t.to_string());
    assert!(m.completed_task(&key("t0")).is_none(), "evicted");
    for t in ["t1", "t2", "t3"] {
        assert_eq!(
            m.completed_task(&key(t)).map(|e| e.info.task_id.clone()),
            Some(t.to_string())
        );
    }
    // t1 runs again and fails: the lookup finds the newer record; when the older one is
    // evicted the index still points at the newer.
    end(&mut m, "t1", TaskState::Failed);
    assert!(
        m.completed_task(&key("t1"))
            .is_some_and(|e| e.state == TaskState::Failed)
    );
    end(&mut m, "t4", TaskState::Finished);
    assert!(
        m.completed_task(&key("t1"))
            .is_some_and(|e| e.state == TaskState::Failed)
    );
    assert!(m.completed_task(&key("t2")).is_none());
    assert_eq!(m.completed.len(), 3);
    assert_eq!(m.completed_index.len(), 3);
    let _ = std::fs::remove_dir_all(dir);
}

/// A framework with less than a quarter of its queue free gets no more status updates:
/// they are refused as UNAVAILABLE before anything changes (the agent re-sends), and taken
/// once the framework has read on. It is cut off only if it stays behind for a minute.
#[test]
fn updates_for_a_backlogged_framework_are_deferred_not_dropped() {
    use agora_proto::TaskState;
    use agora_resources::Resources;

    let (mut m, clock, dir) = master_with_clock(16);
    let mut sub = subscribe(&mut m);
    let agent = m
        .register_agent(v1::RegisterAgentRequest {
            info: Some(v1::AgentInfo {
                hostname: "h".into(),
                resources: Resources::parse("cpus:2;mem:64").expect("res").to_proto(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .expect("register");
    m.allocate();
    let mut offer = None;
    while let Ok(Ok(ev)) = sub.events.try_recv() {
        if let Some(v1::event::Event::Offers(o)) = ev.event {
            offer = o.offers.into_iter().next();
        }
    }
    let offer = offer.expect("an offer");
    let task = v1::TaskInfo {
        task_id: "t".into(),
        name: "t".into(),
        resources: Resources::parse("cpus:1").expect("res").to_proto(),
        command: Some(v1::CommandInfo {
            run: Some(v1::command_info::Run::Shell("true".into())),
            ..Default::default()
        }),
        ..Default::default()
    };
    let r = m.accept(v1::AcceptRequest {
        framework_id: sub.framework_id.clone(),
        offer_ids: vec![offer.id],
        operations: vec![v1::Operation {
            operation: Some(v1::operation::Operation::Launch(v1::operation::Launch {
                tasks: vec![task],
            })),
        }],
        filters: None,
    });
    assert!(r.is_ok(), "{r:?}");
    // 13 of 16 slots taken: 3 free, under a quarter.
    for _ in 0..13 {
        m.send_event(&sub.framework_id, heartbeat());
    }
    let update_to = |state: TaskState, uuid: &str| v1::StatusUpdateRequest {
        agent_id: agent.agent_id.clone(),
        status: Some(v1::TaskStatus {
            task_id: "t".into(),
            framework_id: sub.framework_id.clone(),
            state: state as i32,
            uuid: uuid.into(),
            ..Default::default()
        }),
        latest_state: state as i32,
    };
    let update = |uuid: &str| update_to(TaskState::Starting, uuid);
    let running = |uuid: &str| update_to(TaskState::Running, uuid);
    let key = (sub.framework_id.clone(), "t".to_string());
    let err = m.status_update(update("u1")).expect_err("deferred");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(err.message().contains("behind on its events"), "{err:?}");
    assert_eq!(m.tasks[&key].state, TaskState::Staging, "nothing changed");
    assert_eq!(m.metrics.status_updates_deferred, 1);
    assert_eq!(
        m.frameworks[&sub.framework_id].status,
        FrameworkStatus::Active
    );
    // The framework reads on; the re-sent update is taken and relayed.
    while sub.events.try_recv().is_ok() {}
    m.status_update(update("u1")).expect("taken");
    assert_eq!(m.tasks[&key].state, TaskState::Starting);
    let relayed = std::iter::from_fn(|| sub.events.try_recv().ok())
        .filter_map(|e| e.ok()?.event)
        .any(|e| matches!(e, v1::event::Event::Update(u) if u.status.as_ref().is_some_and(|s| s.uuid == "u1")));
    assert!(relayed);

    // The agent re-sends (the ack is slow). Long after the relay, but with the framework
    // still behind (2 events unread), the update is not relayed again: the first relay may
    // still be in the queue.
    m.send_event(&sub.framework_id, heartbeat());
    m.send_event(&sub.framework_id, heartbeat());
    clock.advance_ms(10_000);
    m.status_update(update("u1")).expect("re-send taken");
    assert_eq!(m.metrics.duplicate_status_updates, 1);
    // Once it has read its queue, a re-send that late is relayed again (its event or
    // acknowledgement may have been lost).
    while sub.events.try_recv().is_ok() {}
    m.status_update(update("u1")).expect("re-send taken");
    assert_eq!(m.metrics.duplicate_status_updates, 1);
    let relayed = std::iter::from_fn(|| sub.events.try_recv().ok())
        .filter_map(|e| e.ok()?.event)
        .any(|e| matches!(e, v1::event::Event::Update(u) if u.status.as_ref().is_some_and(|s| s.uuid == "u1")));
    assert!(relayed, "relayed again");

    // A framework that stays behind: deferred for a minute, then cut off like one whose
    // queue is full; the update is then taken (the framework reconciles when it is back).
    while sub.events.try_recv().is_ok() {}
    for _ in 0..13 {
        m.send_event(&sub.framework_id, heartbeat());
    }
    m.status_update(running("u2")).expect_err("deferred");
    // A backlog that cleared long ago does not count towards this one.
    clock.advance_ms(120_000);
    m.status_update(running("u2"))
        .expect_err("deferred, a new backlog");
    for _ in 0..59 {
        clock.advance_ms(1_000);
        m.status_update(running("u2")).expect_err("still deferred");
    }
    assert_eq!(m.metrics.frameworks_disconnected_slow, 0);
    clock.advance_ms(1_000);
    m.status_update(running("u2"))
        .expect("taken once the framework is cut off");
    assert_eq!(m.metrics.frameworks_disconnected_slow, 1);
    assert_eq!(
        m.frameworks[&sub.framework_id].status,
        FrameworkStatus::Disconnected
    );
    assert_eq!(m.tasks[&key].state, TaskState::Running);
    let _ = std::fs::remove_dir_all(dir);
}
