//! Bounded bookkeeping in the actor: a framework that leaves `framework_queue_capacity`
//! events unread is disconnected (not grown without bound), one that keeps up is not; the
//! bounded record of ended tasks is looked up through an index that follows eviction.

use std::sync::Arc;

use agora_proto::v1;

use super::{Master, Subscription};
use crate::clock::ManualClock;
use crate::config::MasterConfig;
use crate::registry::{FileRegistry, RegistryState};
use crate::state::framework::FrameworkStatus;

fn master(capacity: usize) -> (Master, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("agora-queue-{}", uuid::Uuid::new_v4()));
    let config = MasterConfig {
        data_dir: dir.clone(),
        framework_queue_capacity: capacity,
        ..MasterConfig::default()
    };
    let registry = Box::new(FileRegistry::new(dir.clone()));
    let (master, _handle, _rx) = Master::new(
        config,
        Arc::new(ManualClock::new(1_000_000)),
        registry,
        RegistryState::default(),
    )
    .expect("master");
    (master, dir)
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
        FrameworkStatus::Connected
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
        FrameworkStatus::Connected
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
        FrameworkStatus::Connected
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
        Box::new(FileRegistry::new(dir.clone())),
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
