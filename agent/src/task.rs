//! The task life cycle on the agent: one enum ([`Phase`]) and one transition function
//! ([`transition`]).
//!
//! Owns the rules for which event may happen in which phase and what the agent reports
//! for it. It must never perform effects itself (no I/O, no channels, no clock): it
//! returns [`Effect`]s for the state actor to carry out, so every rule is unit-testable.
//!
//! ```text
//!   (RunTask: STARTING reported)
//!   Launching{kill: None} --Launched--> Running (RUNNING) --Exited--> Terminated (FINISHED/FAILED)
//!        |    \--LaunchFailed--> Terminated (FAILED, CONTAINER_LAUNCH_FAILED|FETCH_FAILED)
//!        |                             Running --KillRequested--> Killing --Exited--> Terminated (KILLED)
//!        \--KillRequested--> Launching{kill: Some} --Launched--> Killing
//!                                               \--LaunchFailed--> Terminated (KILLED)
//! ```

use std::fmt;
use std::time::Duration;

use agora_proto::v1::{StatusReason, TaskState};

use crate::containerizer::Termination;

/// Grace period between SIGTERM and SIGKILL when neither the kill nor the task says.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3);
/// Longest grace period the agent honours.
pub const MAX_GRACE: Duration = Duration::from_secs(3600);

/// The grace period of a kill policy's `grace_period_seconds`: `None` when it is not a
/// usable number (negative, NaN), capped at [`MAX_GRACE`].
pub fn grace_from_seconds(seconds: f64) -> Option<Duration> {
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(seconds).map_or(MAX_GRACE, |d| d.min(MAX_GRACE)))
}

/// Identifies a task on this agent: task ids are unique per framework.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskKey {
    /// The framework's id.
    pub framework_id: String,
    /// The task's id.
    pub task_id: String,
}

impl TaskKey {
    /// Builds a key.
    pub fn new(framework_id: impl Into<String>, task_id: impl Into<String>) -> TaskKey {
        TaskKey {
            framework_id: framework_id.into(),
            task_id: task_id.into(),
        }
    }
}

impl fmt::Display for TaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.framework_id, self.task_id)
    }
}

/// Who asked for a task to be killed; decides the KILLED update's reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillCause {
    /// A `KillTask` from the framework (through the master).
    Framework,
    /// `ShutdownFramework`: the framework is gone.
    FrameworkShutdown,
    /// The operator stopped the agent (SIGINT/SIGTERM).
    AgentStopping,
    /// The master removed the agent (`Shutdown`).
    AgentRemoved,
    /// Its health check failed too many times in a row (the task ends FAILED).
    HealthCheckFailed,
}

impl KillCause {
    fn reason(self) -> StatusReason {
        match self {
            KillCause::Framework => StatusReason::KilledByFramework,
            KillCause::FrameworkShutdown => StatusReason::FrameworkRemoved,
            KillCause::AgentStopping => StatusReason::KilledByOperator,
            KillCause::AgentRemoved => StatusReason::AgentRemoved,
            KillCause::HealthCheckFailed => StatusReason::HealthCheckFailed,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            KillCause::Framework => "killed by the framework",
            KillCause::FrameworkShutdown => "killed because the framework shut down",
            KillCause::AgentStopping => "killed because the agent is stopping",
            KillCause::AgentRemoved => "killed because the master removed the agent",
            KillCause::HealthCheckFailed => "killed because its health check failed",
        }
    }
}

/// A request to kill a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KillRequest {
    /// Who asked.
    pub cause: KillCause,
    /// Time between SIGTERM and SIGKILL.
    pub grace: Duration,
}

/// Where a task is in its life on this agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// STARTING reported; the containerizer is starting the command. A kill that arrives
    /// now is remembered and carried out once the launch settles.
    Launching {
        /// A kill requested during the launch.
        kill: Option<KillRequest>,
    },
    /// RUNNING reported; the command runs.
    Running,
    /// A kill was sent to the container; waiting for it to end.
    Killing {
        /// Who asked.
        cause: KillCause,
    },
    /// The terminal update has been produced; the task is forgotten by the state actor.
    Terminated {
        /// The terminal state reported.
        state: TaskState,
    },
}

impl Phase {
    /// The phase of a task that was just accepted (STARTING is reported by the caller).
    pub fn new() -> Phase {
        Phase::Launching { kill: None }
    }

    /// The latest state reported to the master for a task in this phase.
    pub fn reported_state(&self) -> TaskState {
        match self {
            Phase::Launching { .. } => TaskState::Starting,
            Phase::Running | Phase::Killing { .. } => TaskState::Running,
            Phase::Terminated { state } => *state,
        }
    }

    /// Whether the task has ended.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Phase::Terminated { .. })
    }
}

impl Default for Phase {
    fn default() -> Phase {
        Phase::new()
    }
}

/// Something that happened to a task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The container started.
    Launched,
    /// The container could not be started.
    LaunchFailed {
        /// The error, with its OS cause.
        error: String,
        /// CONTAINER_LAUNCH_FAILED, or FETCH_FAILED when a URI could not be fetched.
        reason: StatusReason,
    },
    /// Someone asked to kill the task.
    KillRequested(KillRequest),
    /// The task's command ended.
    Exited(Termination),
}

impl Event {
    fn name(&self) -> &'static str {
        match self {
            Event::Launched => "launched",
            Event::LaunchFailed { .. } => "launch failed",
            Event::KillRequested(_) => "kill requested",
            Event::Exited(_) => "exited",
        }
    }
}

/// A status update to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The new state.
    pub state: TaskState,
    /// Why.
    pub reason: StatusReason,
    /// Human-readable detail.
    pub message: String,
    /// The command's exit status when it exited by itself.
    pub exit_code: Option<i32>,
    /// The latest health check result, for tasks with a health check.
    pub healthy: Option<bool>,
}

impl Report {
    /// A report with no exit code.
    pub fn new(state: TaskState, reason: StatusReason, message: impl Into<String>) -> Report {
        Report {
            state,
            reason,
            message: message.into(),
            exit_code: None,
            healthy: None,
        }
    }

    /// What the agent reports when it accepts a task.
    pub fn starting() -> Report {
        Report::new(TaskState::Starting, StatusReason::Unspecified, "")
    }

    /// A running task's health changed (command tasks and executors' tasks alike).
    pub fn health_changed(healthy: bool) -> Report {
        let message = if healthy {
            "health check passed"
        } else {
            "health check failed"
        };
        let mut report = Report::new(TaskState::Running, StatusReason::Unspecified, message);
        report.healthy = Some(healthy);
        report
    }
}

/// What the state actor must do after a transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Send this status update.
    Report(Report),
    /// Ask the container to stop, SIGKILL after `grace`.
    Kill {
        /// Time between SIGTERM and SIGKILL.
        grace: Duration,
    },
}

/// An event that cannot happen in the task's phase (a bug, or a message about another
/// incarnation of the task).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("task event `{event}` is not allowed in phase {phase:?}")]
pub struct IllegalTransition {
    /// The phase the task was in (it stays there).
    pub phase: Phase,
    /// The event's name.
    pub event: &'static str,
}

/// The one transition function of the task life cycle.
pub fn transition(phase: &Phase, event: Event) -> Result<(Phase, Vec<Effect>), IllegalTransition> {
    use Phase::*;
    let next = match (phase, event) {
        (Launching { kill: None }, Event::Launched) => (
            Running,
            vec![Effect::Report(Report::new(
                TaskState::Running,
                StatusReason::Unspecified,
                "",
            ))],
        ),
        (Launching { kill: Some(k) }, Event::Launched) => (
            Killing { cause: k.cause },
            vec![Effect::Kill { grace: k.grace }],
        ),
        (Launching { kill: None }, Event::LaunchFailed { error, reason }) => (
            Terminated {
                state: TaskState::Failed,
            },
            vec![Effect::Report(Report::new(
                TaskState::Failed,
                reason,
                error,
            ))],
        ),
        (Launching { kill: Some(k) }, Event::LaunchFailed { error, .. }) => (
            Terminated {
                state: TaskState::Killed,
            },
            vec![Effect::Report(Report::new(
                TaskState::Killed,
                k.cause.reason(),
                format!(
                    "{} before it started (launch failed: {error})",
                    k.cause.describe()
                ),
            ))],
        ),
        (Launching { kill: None }, Event::KillRequested(k)) => {
            (Launching { kill: Some(k) }, vec![])
        }
        // A second kill changes nothing: the first one is already under way.
        (Launching { kill: Some(_) }, Event::KillRequested(_))
        | (Killing { .. }, Event::KillRequested(_)) => (phase.clone(), vec![]),
        (Running, Event::KillRequested(k)) => (
            Killing { cause: k.cause },
            vec![Effect::Kill { grace: k.grace }],
        ),
        (Running, Event::Exited(t)) => {
            let report = exit_report(&t);
            (
                Terminated {
                    state: report.state,
                },
                vec![Effect::Report(report)],
            )
        }
        (Killing { cause }, Event::Exited(t)) => {
            // A task killed for failing its health check failed; others were killed.
            let state = match cause {
                KillCause::HealthCheckFailed => TaskState::Failed,
                _ => TaskState::Killed,
            };
            let mut report =
                Report::new(state, cause.reason(), format!("{} ({t})", cause.describe()));
            if let Termination::Exited(code) = t {
                report.exit_code = Some(code);
            }
            (Terminated { state }, vec![Effect::Report(report)])
        }
        (phase, event) => {
            return Err(IllegalTransition {
                phase: phase.clone(),
                event: event.name(),
            });
        }
    };
    Ok(next)
}

/// The terminal report of a command that ended on its own.
pub fn exit_report(termination: &Termination) -> Report {
    match termination {
        Termination::Exited(0) => Report {
            state: TaskState::Finished,
            reason: StatusReason::CommandExited,
            message: termination.to_string(),
            exit_code: Some(0),
            healthy: None,
        },
        Termination::Exited(code) => Report {
            state: TaskState::Failed,
            reason: StatusReason::CommandExited,
            message: termination.to_string(),
            exit_code: Some(*code),
            healthy: None,
        },
        Termination::Signaled(_) => Report::new(
            TaskState::Failed,
            StatusReason::CommandSignaled,
            termination.to_string(),
        ),
        Termination::Unknown(_) => Report::new(
            TaskState::Failed,
            StatusReason::ExecutorTerminated,
            termination.to_string(),
        ),
        Termination::MemoryLimit(_) => Report::new(
            TaskState::Failed,
            StatusReason::ContainerLimitationMemory,
            termination.to_string(),
        ),
        Termination::PortLimit(_) => Report::new(
            TaskState::Failed,
            StatusReason::ContainerLimitationPorts,
            termination.to_string(),
        ),
        Termination::DiskLimit(_) => Report::new(
            TaskState::Failed,
            StatusReason::ContainerLimitationDisk,
            termination.to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kill(cause: KillCause) -> KillRequest {
        KillRequest {
            cause,
            grace: Duration::from_secs(2),
        }
    }

    fn step(phase: &Phase, event: Event) -> (Phase, Vec<Effect>) {
        match transition(phase, event) {
            Ok(next) => next,
            Err(e) => panic!("unexpected illegal transition: {e}"),
        }
    }

    fn only_report(effects: &[Effect]) -> &Report {
        match effects {
            [Effect::Report(r)] => r,
            other => panic!("expected one report, got {other:?}"),
        }
    }

    #[test]
    fn happy_path_reports_running_then_finished() {
        let (p, fx) = step(&Phase::new(), Event::Launched);
        assert_eq!(p, Phase::Running);
        assert_eq!(only_report(&fx).state, TaskState::Running);
        assert_eq!(p.reported_state(), TaskState::Running);

        let (p, fx) = step(&p, Event::Exited(Termination::Exited(0)));
        assert_eq!(
            p,
            Phase::Terminated {
                state: TaskState::Finished
            }
        );
        let r = only_report(&fx);
        assert_eq!(r.state, TaskState::Finished);
        assert_eq!(r.exit_code, Some(0));
        assert!(p.is_terminal());
    }

    #[test]
    fn nonzero_exit_is_failed_command_exited() {
        let (_, fx) = step(&Phase::Running, Event::Exited(Termination::Exited(3)));
        let r = only_report(&fx);
        assert_eq!(r.state, TaskState::Failed);
        assert_eq!(r.reason, StatusReason::CommandExited);
        assert_eq!(r.exit_code, Some(3));
        assert_eq!(r.message, "command exited with status 3");
    }

    #[test]
    fn signal_is_failed_command_signaled() {
        let (_, fx) = step(&Phase::Running, Event::Exited(Termination::Signaled(11)));
        let r = only_report(&fx);
        assert_eq!(r.state, TaskState::Failed);
        assert_eq!(r.reason, StatusReason::CommandSignaled);
        assert_eq!(r.exit_code, None);
        assert_eq!(r.message, "terminated by signal SIGSEGV");
    }

    #[test]
    fn launch_failure_is_container_launch_failed() {
        let (p, fx) = step(
            &Phase::new(),
            Event::LaunchFailed {
                error: "cannot start \"nope\": No such file or directory (os error 2)".into(),
                reason: StatusReason::ContainerLaunchFailed,
            },
        );
        assert_eq!(p.reported_state(), TaskState::Failed);
        let r = only_report(&fx);
        assert_eq!(r.reason, StatusReason::ContainerLaunchFailed);
        assert!(r.message.contains("os error 2"), "{}", r.message);
    }

    #[test]
    fn health_check_kill_ends_failed() {
        let (p, fx) = step(
            &Phase::Running,
            Event::KillRequested(kill(KillCause::HealthCheckFailed)),
        );
        assert_eq!(fx.len(), 1);
        let (p, fx) = step(&p, Event::Exited(Termination::Signaled(15)));
        assert_eq!(p.reported_state(), TaskState::Failed);
        assert_eq!(only_report(&fx).reason, StatusReason::HealthCheckFailed);
    }

    #[test]
    fn fetch_failure_is_fetch_failed() {
        let (p, fx) = step(
            &Phase::new(),
            Event::LaunchFailed {
                error: "cannot fetch http://h/x: HTTP status 404".into(),
                reason: StatusReason::FetchFailed,
            },
        );
        assert_eq!(p.reported_state(), TaskState::Failed);
        assert_eq!(only_report(&fx).reason, StatusReason::FetchFailed);
    }

    #[test]
    fn kill_while_running_ends_killed() {
        let (p, fx) = step(
            &Phase::Running,
            Event::KillRequested(kill(KillCause::Framework)),
        );
        assert_eq!(
            p,
            Phase::Killing {
                cause: KillCause::Framework
            }
        );
        assert_eq!(
            fx,
            vec![Effect::Kill {
                grace: Duration::from_secs(2)
            }]
        );
        // Even a clean exit after a kill is KILLED.
        let (p, fx) = step(&p, Event::Exited(Termination::Exited(0)));
        assert_eq!(p.reported_state(), TaskState::Killed);
        let r = only_report(&fx);
        assert_eq!(r.reason, StatusReason::KilledByFramework);
        assert_eq!(r.exit_code, Some(0));
    }

    #[test]
    fn kill_during_launch_is_deferred() {
        let (p, fx) = step(
            &Phase::new(),
            Event::KillRequested(kill(KillCause::AgentStopping)),
        );
        assert!(fx.is_empty());
        assert_eq!(p.reported_state(), TaskState::Starting);
        // A second kill is idempotent.
        let (p2, fx) = step(&p, Event::KillRequested(kill(KillCause::Framework)));
        assert_eq!(p2, p);
        assert!(fx.is_empty());
        // Once launched, the deferred kill is carried out without reporting RUNNING.
        let (p3, fx) = step(&p2, Event::Launched);
        assert_eq!(
            p3,
            Phase::Killing {
                cause: KillCause::AgentStopping
            }
        );
        assert_eq!(
            fx,
            vec![Effect::Kill {
                grace: Duration::from_secs(2)
            }]
        );
        let (_, fx) = step(&p3, Event::Exited(Termination::Signaled(15)));
        let r = only_report(&fx);
        assert_eq!(r.state, TaskState::Killed);
        assert_eq!(r.reason, StatusReason::KilledByOperator);
        assert!(r.message.contains("SIGTERM"), "{}", r.message);
    }

    #[test]
    fn kill_then_launch_failure_is_killed() {
        let (p, _) = step(
            &Phase::new(),
            Event::KillRequested(kill(KillCause::FrameworkShutdown)),
        );
        let (p, fx) = step(
            &p,
            Event::LaunchFailed {
                error: "boom".into(),
                reason: StatusReason::ContainerLaunchFailed,
            },
        );
        assert_eq!(p.reported_state(), TaskState::Killed);
        assert_eq!(only_report(&fx).reason, StatusReason::FrameworkRemoved);
    }

    #[test]
    fn repeated_kill_while_killing_is_noop() {
        let p = Phase::Killing {
            cause: KillCause::Framework,
        };
        let (p2, fx) = step(&p, Event::KillRequested(kill(KillCause::AgentRemoved)));
        assert_eq!(p2, p);
        assert!(fx.is_empty());
    }

    #[test]
    fn illegal_transitions_are_refused() {
        let terminated = Phase::Terminated {
            state: TaskState::Finished,
        };
        let killing = Phase::Killing {
            cause: KillCause::Framework,
        };
        let cases = [
            (Phase::new(), Event::Exited(Termination::Exited(0))),
            (Phase::Running, Event::Launched),
            (
                Phase::Running,
                Event::LaunchFailed {
                    error: "x".into(),
                    reason: StatusReason::ContainerLaunchFailed,
                },
            ),
            (killing.clone(), Event::Launched),
            (
                killing,
                Event::LaunchFailed {
                    error: "x".into(),
                    reason: StatusReason::ContainerLaunchFailed,
                },
            ),
            (terminated.clone(), Event::Launched),
            (terminated.clone(), Event::Exited(Termination::Exited(0))),
            (
                terminated.clone(),
                Event::KillRequested(kill(KillCause::Framework)),
            ),
            (
                terminated,
                Event::LaunchFailed {
                    error: "x".into(),
                    reason: StatusReason::ContainerLaunchFailed,
                },
            ),
        ];
        for (phase, event) in cases {
            let name = event.name();
            let err = transition(&phase, event).expect_err("must be illegal");
            assert_eq!(err.phase, phase);
            assert_eq!(err.event, name);
        }
    }

    #[test]
    fn grace_parsing() {
        assert_eq!(grace_from_seconds(1.5), Some(Duration::from_millis(1500)));
        assert_eq!(grace_from_seconds(0.0), Some(Duration::ZERO));
        assert_eq!(grace_from_seconds(-1.0), None);
        assert_eq!(grace_from_seconds(f64::NAN), None);
        assert_eq!(grace_from_seconds(1e300), Some(MAX_GRACE));
        assert_eq!(grace_from_seconds(f64::INFINITY), None);
    }
}
