//! The invariants, checked once the cluster has settled, against the master's state, the
//! agents' checkpoints and what the framework received; `agora_sim::check::cluster` (no
//! resource booked twice) also runs on the master's state every second of the run.
//!
//! Pure functions of their inputs, except `read_checkpoint`, which reads an agent's work
//! directory; each violation is one line naming what broke.

use std::path::Path;

use agora_agent::checkpoint::{Checkpoint, replay};
use agora_proto::TaskState;
use agora_proto::v1;

use crate::load::{Seen, reported_end};

/// What an agent's checkpoint still holds.
#[derive(Debug, Default, Clone)]
pub struct AgentCheckpoint {
    pub name: String,
    /// Updates written to the status update log and not acknowledged.
    pub pending_updates: usize,
    /// Task records (tasks the agent still considers live).
    pub task_records: usize,
    pub errors: Vec<String>,
}

pub fn read_checkpoint(name: &str, work_dir: &Path) -> AgentCheckpoint {
    let checkpoint = Checkpoint::new(work_dir);
    let (tasks, errors) = checkpoint.read_tasks();
    let mut found = AgentCheckpoint {
        name: name.to_string(),
        task_records: tasks.len(),
        errors: errors.iter().map(ToString::to_string).collect(),
        ..Default::default()
    };
    match std::fs::read(checkpoint.update_log_path()) {
        Ok(bytes) => {
            let (pending, _, _) = replay(&bytes);
            found.pending_updates = pending.iter().map(|(_, q)| q.len()).sum();
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => found.errors.push(format!("update log: {e}")),
    }
    found
}

/// A task's place in its life: updates of one task must never go back.
fn rank(state: TaskState) -> u8 {
    match state {
        TaskState::Staging => 0,
        TaskState::Starting => 1,
        TaskState::Running => 2,
        _ => 3,
    }
}

/// Final: the task never runs again (LOST is not: the agent may come back with the task).
fn is_final(state: TaskState) -> bool {
    state.is_terminal() && state != TaskState::Lost
}

/// What the framework received: per task, nothing but repeats after a final state, the
/// agents' updates in the order a task lives them, and every task the framework launched
/// (or may have launched) ended or reported LOST / UNREACHABLE / UNKNOWN.
pub fn histories(seen: &Seen) -> Vec<String> {
    let mut violations = Vec::new();
    for (task, received) in &seen.received {
        let history = || {
            received
                .iter()
                .map(|u| format!("{:?}{}", u.state, if u.uuid.is_empty() { "?" } else { "" }))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut final_state: Option<TaskState> = None;
        let mut last_rank = 0;
        // Reconciliation answers (no uuid) are the master's advisory view, not part of the
        // ordered stream.
        for update in received.iter().filter(|u| !u.uuid.is_empty()) {
            if let Some(f) = final_state
                && update.state != f
            {
                violations.push(format!(
                    "task {task}: {:?} after its final state {f:?} (history {})",
                    update.state,
                    history()
                ));
                break;
            }
            if is_final(update.state) {
                final_state = Some(update.state);
            }
            if update.from_master {
                continue;
            }
            let r = rank(update.state);
            if r < last_rank {
                violations.push(format!(
                    "task {task}: agent update {:?} arrived after a later one (history {})",
                    update.state,
                    history()
                ));
                break;
            }
            last_rank = r;
        }
    }
    for task in seen.launched.keys().chain(seen.uncertain.keys()) {
        let last = seen.last_state(task);
        if !last.is_some_and(reported_end) {
            violations.push(format!(
                "task {task}: launched, but its last state is {last:?}: neither ended nor reported LOST / UNREACHABLE / UNKNOWN"
            ));
        }
    }
    violations
}

/// The master's state once settled: nothing booked twice (the simulator's check), no
/// live task, and every task's final state known to the framework.
pub fn master(state: &v1::ClusterState, seen: &Seen) -> Vec<String> {
    let mut violations = Vec::new();
    if let Err(v) = agora_sim::check::cluster(state) {
        violations.push(format!("master state: {v}"));
    }
    for task in &state.tasks {
        let id = task.task.as_ref().map_or("", |t| t.task_id.as_str());
        let s = task.state();
        if !s.is_terminal() {
            violations.push(format!("master: task {id} still {s:?} after settling"));
            continue;
        }
        let heard = seen
            .received
            .get(id)
            .is_some_and(|r| r.iter().any(|u| u.state == s));
        if !heard {
            violations.push(format!(
                "master: task {id} ended {s:?}, which its framework never received"
            ));
        }
    }
    for agent in &state.agents {
        let id = agent.info.as_ref().map_or("", |i| i.id.as_str());
        if !agent.allocated.is_empty() {
            violations.push(format!(
                "master: agent {id} still has resources allocated after every task ended"
            ));
        }
    }
    violations
}

/// Every agent's checkpoint once settled: no unacknowledged update, no live task record.
pub fn checkpoints(found: &[AgentCheckpoint]) -> Vec<String> {
    let mut violations = Vec::new();
    for c in found {
        if c.pending_updates > 0 {
            violations.push(format!(
                "{}: {} status updates never acknowledged",
                c.name, c.pending_updates
            ));
        }
        if c.task_records > 0 {
            violations.push(format!(
                "{}: {} task records left after every task ended",
                c.name, c.task_records
            ));
        }
        for e in &c.errors {
            violations.push(format!("{}: checkpoint unreadable: {e}", c.name));
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Received;

    fn update(state: TaskState, uuid: &str, from_master: bool) -> Received {
        Received {
            state,
            uuid: uuid.to_string(),
            from_master,
            message: String::new(),
        }
    }

    fn seen(history: Vec<Received>) -> Seen {
        let mut s = Seen::default();
        s.launched.insert("t".into(), "a".into());
        s.received.insert("t".into(), history);
        s
    }

    #[test]
    fn a_clean_history_passes() {
        let s = seen(vec![
            update(TaskState::Starting, "u1", false),
            update(TaskState::Running, "u2", false),
            update(TaskState::Running, "u2", false),
            update(TaskState::Finished, "u3", false),
            update(TaskState::Finished, "u3", false),
            update(TaskState::Finished, "", true),
        ]);
        assert_eq!(histories(&s), Vec::<String>::new());
    }

    #[test]
    fn lost_followed_by_the_real_end_passes() {
        let s = seen(vec![
            update(TaskState::Running, "u2", false),
            update(TaskState::Lost, "m1", true),
            update(TaskState::Finished, "u3", false),
        ]);
        assert_eq!(histories(&s), Vec::<String>::new());
    }

    #[test]
    fn anything_after_a_final_state_fails() {
        let s = seen(vec![
            update(TaskState::Finished, "u3", false),
            update(TaskState::Running, "u2", false),
        ]);
        let v = histories(&s);
        assert!(v[0].contains("after its final state Finished"), "{v:?}");
    }

    #[test]
    fn an_agent_update_going_back_fails() {
        let s = seen(vec![
            update(TaskState::Running, "u2", false),
            update(TaskState::Starting, "u1", false),
        ]);
        let v = histories(&s);
        assert!(v[0].contains("arrived after a later one"), "{v:?}");
    }

    #[test]
    fn a_task_that_never_ended_fails() {
        let s = seen(vec![update(TaskState::Running, "u2", false)]);
        let v = histories(&s);
        assert!(v[0].contains("neither ended nor reported"), "{v:?}");
        let mut silent = Seen::default();
        silent.uncertain.insert("t2".into(), "a".into());
        assert_eq!(histories(&silent).len(), 1);
    }

    #[test]
    fn leftovers_in_a_checkpoint_fail() {
        let c = AgentCheckpoint {
            name: "agent-0".into(),
            pending_updates: 1,
            task_records: 2,
            errors: Vec::new(),
        };
        assert_eq!(checkpoints(&[c]).len(), 2);
    }
}
