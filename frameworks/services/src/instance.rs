//! One running copy of an app (one task): where it runs, which version it runs, and its
//! life cycle [`Phase`] with the one [`transition`] every status update goes through.
//!
//! Pure data and the transition; this module must never decide whether an instance is
//! replaced or killed (the core does, from what the transition returns).

use std::collections::BTreeMap;

use agora_sdk::proto::TaskState;
use serde::{Deserialize, Serialize};

use crate::time::Millis;

/// Where an instance is in its life. Terminal task states are not phases: the instance is
/// gone once one arrives (see [`Step::Gone`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Recorded durably, the launch not yet confirmed by the master.
    Launching,
    /// The master took the launch.
    Staging,
    /// The agent is starting it.
    Starting,
    /// Its command runs.
    Running,
    /// Being killed (by us or by the agent).
    Killing,
    /// Its agent is unreachable; it may come back.
    Unreachable,
}

/// What a status update does to an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// It is now in this phase.
    Phase(Phase),
    /// It ended; `failed` when it ended by itself (not because we killed it).
    Gone {
        /// Ended by itself: counts for the app's launch backoff.
        failed: bool,
    },
    /// Nothing to change (an unspecified state).
    Ignore,
}

/// The transition: `state` arriving for an instance in `phase` whose kill we did (or did
/// not) request. Every state is accepted in every phase (updates may be re-sent or
/// re-ordered by reconciliation), so the result never refuses.
pub fn transition(phase: Phase, state: TaskState, kill_requested: bool) -> Step {
    use TaskState as S;
    match state {
        S::Unspecified => Step::Ignore,
        S::Staging => Step::Phase(match phase {
            // A late STAGING (reconciliation) never moves an instance backwards.
            Phase::Launching | Phase::Unreachable => Phase::Staging,
            p => p,
        }),
        S::Starting => Step::Phase(match phase {
            Phase::Running | Phase::Killing => phase,
            _ => Phase::Starting,
        }),
        S::Running => Step::Phase(if phase == Phase::Killing {
            Phase::Killing
        } else {
            Phase::Running
        }),
        S::Killing => Step::Phase(Phase::Killing),
        S::Unreachable => Step::Phase(Phase::Unreachable),
        S::Killed => Step::Gone {
            failed: !kill_requested,
        },
        S::Finished
        | S::Failed
        | S::Error
        | S::Lost
        | S::Dropped
        | S::Gone
        | S::GoneByOperator
        | S::Unknown => Step::Gone {
            // A service is meant to run forever: ending by itself is a failure, and so is
            // a loss, unless we asked for the end.
            failed: !kill_requested,
        },
    }
}

/// One instance of an app.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    /// The task id (`<app path with _>.<hex ms>-<seq>`).
    pub task_id: String,
    /// The app.
    pub app_id: String,
    /// The app version it was launched from (milliseconds).
    pub version_ms: Millis,
    /// The configuration version it runs (rolling deployments replace other ones).
    pub config_ms: Millis,
    /// The agent.
    pub agent_id: String,
    /// The agent's hostname.
    pub host: String,
    /// The agent's placement facts when launched (hostname and attributes).
    pub placement: BTreeMap<String, String>,
    /// Host ports, in `portDefinitions` order.
    pub ports: Vec<u16>,
    /// Life cycle phase.
    pub phase: Phase,
    /// The latest health check result, if the app has one and a result came.
    pub healthy: Option<bool>,
    /// When the launch was recorded.
    pub staged_at: Millis,
    /// When it was first seen RUNNING.
    pub started_at: Option<Millis>,
    /// When its agent became unreachable (while [`Phase::Unreachable`]).
    pub unreachable_since: Option<Millis>,
    /// We asked for its end (scale down, replacement, delete).
    pub kill_requested: bool,
    /// The latest status' task state name (`TASK_RUNNING`, ...).
    pub last_state: String,
    /// The latest status' message.
    pub message: String,
}

impl Instance {
    /// Running and, when the app checks health, healthy: what deployments wait for and
    /// what minimumHealthCapacity counts.
    pub fn ready(&self, has_health_checks: bool) -> bool {
        self.phase == Phase::Running
            && !self.kill_requested
            && (!has_health_checks || self.healthy == Some(true))
    }

    /// Counts towards the app's instances: not on its way out, and not unreachable for
    /// longer than `inactive_after_ms` (`None`: never replaced while unreachable).
    pub fn live(&self, now: Millis, inactive_after_ms: Option<Millis>) -> bool {
        if self.kill_requested {
            return false;
        }
        match self.phase {
            Phase::Killing => false,
            Phase::Unreachable => match (inactive_after_ms, self.unreachable_since) {
                (Some(after), Some(since)) => now < since.saturating_add(after),
                _ => true,
            },
            _ => true,
        }
    }
}

/// Marathon's text for a task state (`TASK_RUNNING`).
pub fn state_text(state: TaskState) -> String {
    format!("TASK_{}", state.as_str_name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_moves_and_no_backward_ones() {
        assert_eq!(
            transition(Phase::Launching, TaskState::Staging, false),
            Step::Phase(Phase::Staging)
        );
        assert_eq!(
            transition(Phase::Running, TaskState::Staging, false),
            Step::Phase(Phase::Running)
        );
        assert_eq!(
            transition(Phase::Running, TaskState::Starting, false),
            Step::Phase(Phase::Running)
        );
        assert_eq!(
            transition(Phase::Killing, TaskState::Running, true),
            Step::Phase(Phase::Killing)
        );
        assert_eq!(
            transition(Phase::Unreachable, TaskState::Running, false),
            Step::Phase(Phase::Running)
        );
        assert_eq!(
            transition(Phase::Running, TaskState::Unspecified, false),
            Step::Ignore
        );
    }

    #[test]
    fn ends_count_as_failures_unless_requested() {
        for s in [
            TaskState::Finished,
            TaskState::Failed,
            TaskState::Killed,
            TaskState::Lost,
            TaskState::Gone,
        ] {
            assert_eq!(
                transition(Phase::Running, s, false),
                Step::Gone { failed: true }
            );
            assert_eq!(
                transition(Phase::Running, s, true),
                Step::Gone { failed: false }
            );
        }
    }

    #[test]
    fn unreachable_instances_stop_counting_after_the_inactive_time() {
        let i = Instance {
            task_id: "t".into(),
            app_id: "/a".into(),
            version_ms: 1,
            config_ms: 1,
            agent_id: "a".into(),
            host: "h".into(),
            placement: BTreeMap::new(),
            ports: vec![],
            phase: Phase::Unreachable,
            healthy: None,
            staged_at: 0,
            started_at: Some(1),
            unreachable_since: Some(1000),
            kill_requested: false,
            last_state: String::new(),
            message: String::new(),
        };
        assert!(i.live(1500, Some(1000)));
        assert!(!i.live(2000, Some(1000)));
        assert!(i.live(1_000_000, None));
        assert!(!i.ready(false));
    }
}
