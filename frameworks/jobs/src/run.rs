//! The life cycle of one job run: one enum ([`Phase`]) and one transition function
//! ([`transition`]) every change of a run goes through.
//!
//! ```text
//!  Initial --Launched--> Starting --Running--> Active --Finished--> Success
//!     ^  \--Stop--> Failed(STOPPED)       \          \--Failed/Lost--> RetryWait (attempts left)
//!     |                                    \                       \-> Failed(TASK)
//!     +---- RetryWait --Tick(until)---------+--Stop/Deadline/Replace--> Killing --terminal--> Failed
//!  Starting --LaunchFailed--> Initial (the attempt is not used up)
//!  Skipped: a tick that never ran (missed deadline, FORBID); terminal from birth.
//! ```
//!
//! Owns the rules of which input may happen in which phase and what must then be done. It
//! must never perform effects itself (no I/O, no clock: `now` is an argument): it returns
//! [`Effect`]s for the engine to carry out, after it has recorded the new phase.

use std::fmt;

use agora_sdk::proto::TaskState;
use serde::{Deserialize, Serialize};

use crate::spec::RestartSpec;

/// The task a run's current attempt uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRef {
    pub task_id: String,
    pub agent_id: String,
}

/// Why a run's task is being killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KillCause {
    /// An operator stopped the run.
    Stopped,
    /// The run exceeded its active deadline.
    Deadline,
    /// A newer run replaced it (REPLACE policy).
    Replaced,
}

/// Why a run failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailKind {
    /// The task failed (exit code, lost, error) and no attempts were left.
    Task,
    /// Killed by the active deadline.
    Deadline,
    /// Stopped by an operator.
    Stopped,
    /// Replaced by a newer run.
    Replaced,
}

impl From<KillCause> for FailKind {
    fn from(c: KillCause) -> FailKind {
        match c {
            KillCause::Stopped => FailKind::Stopped,
            KillCause::Deadline => FailKind::Deadline,
            KillCause::Replaced => FailKind::Replaced,
        }
    }
}

/// Where a run is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Phase {
    /// Waiting for an offer to launch its next attempt.
    Initial,
    /// The launch was sent; the task has not reported RUNNING yet.
    Starting { task: TaskRef },
    /// The task is running.
    Active { task: TaskRef },
    /// A kill was sent; waiting for the task's terminal state.
    Killing { task: TaskRef, cause: KillCause },
    /// An attempt failed; the next one waits until `until_ms`.
    RetryWait { until_ms: i64 },
    /// Finished successfully.
    Success,
    /// Failed for good.
    Failed { kind: FailKind, message: String },
    /// Never ran.
    Skipped { reason: String },
}

impl Phase {
    /// Whether the run is over.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Phase::Success | Phase::Failed { .. } | Phase::Skipped { .. }
        )
    }

    /// The task the run currently has at the master, if any.
    pub fn task(&self) -> Option<&TaskRef> {
        match self {
            Phase::Starting { task } | Phase::Active { task } | Phase::Killing { task, .. } => {
                Some(task)
            }
            _ => None,
        }
    }

    /// Metronome's status word.
    pub fn status(&self) -> &'static str {
        match self {
            Phase::Initial => "INITIAL",
            Phase::Starting { .. } => "STARTING",
            Phase::Active { .. } => "ACTIVE",
            Phase::Killing { .. } => "KILLING",
            Phase::RetryWait { .. } => "RETRY_WAIT",
            Phase::Success => "SUCCESS",
            Phase::Failed { .. } => "FAILED",
            Phase::Skipped { .. } => "SKIPPED",
        }
    }
}

/// What happens to a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The engine sent a launch for this task.
    Launched { task: TaskRef },
    /// The master refused the launch (nothing started).
    LaunchFailed { message: String },
    /// A status update for the run's current task.
    Task {
        state: TaskState,
        message: String,
        /// Whether the master answered that it never heard of the task (reconciliation).
        unknown: bool,
    },
    /// Stop the run.
    Stop { cause: KillCause },
    /// Time passed: active deadline and retry waits are checked against `now_ms`.
    Tick,
}

/// What the engine must do after a transition.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// The run wants an offer for its next attempt.
    NeedOffer,
    /// Kill the task.
    Kill { task: TaskRef },
    /// The run started an attempt (first RUNNING of the attempt).
    Running,
    /// The run is over with this phase.
    Finished,
}

/// The parts of the job definition the life cycle reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub restart: RestartSpec,
    /// Absolute time the run must be over by (ms); `None`: no deadline.
    pub deadline_ms: Option<i64>,
}

/// An input that is not allowed in a phase.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input} is not allowed while the run is {phase}")]
pub struct Illegal {
    pub phase: &'static str,
    pub input: String,
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Launched { task } => write!(f, "launch of {}", task.task_id),
            Input::LaunchFailed { .. } => f.write_str("a refused launch"),
            Input::Task { state, .. } => write!(f, "task state {}", state.as_str_name()),
            Input::Stop { cause } => write!(f, "stop ({cause:?})"),
            Input::Tick => f.write_str("tick"),
        }
    }
}

fn is_success(state: TaskState) -> bool {
    state == TaskState::Finished
}

fn is_task_terminal(state: TaskState) -> bool {
    state.is_terminal()
}

/// After a failed attempt `attempt` (1-based): retry or fail.
fn after_failure(
    attempt: u32,
    policy: &Policy,
    now_ms: i64,
    message: String,
) -> (Phase, Vec<Effect>) {
    if attempt < policy.restart.max_attempts() {
        let until_ms = now_ms.saturating_add(policy.restart.backoff_ms(attempt + 1));
        let past_deadline = policy.deadline_ms.is_some_and(|d| until_ms >= d);
        if !past_deadline {
            return (Phase::RetryWait { until_ms }, Vec::new());
        }
    }
    (
        Phase::Failed {
            kind: FailKind::Task,
            message,
        },
        vec![Effect::Finished],
    )
}

/// The one transition function. `attempt`: the number of the current attempt (1-based,
/// the attempt a task belongs to). Returns the next phase and the effects to carry out.
pub fn transition(
    phase: &Phase,
    input: &Input,
    attempt: u32,
    policy: &Policy,
    now_ms: i64,
) -> Result<(Phase, Vec<Effect>), Illegal> {
    use Phase::*;
    let deadline_passed = policy.deadline_ms.is_some_and(|d| now_ms >= d);
    let illegal = || Illegal {
        phase: phase.status(),
        input: input.to_string(),
    };
    let next = match (phase, input) {
        (Initial, Input::Launched { task }) => (Starting { task: task.clone() }, Vec::new()),
        (Starting { .. }, Input::LaunchFailed { .. }) => (Initial, vec![Effect::NeedOffer]),

        (
            Starting { task } | Active { task },
            Input::Task {
                state,
                message,
                unknown,
            },
        ) => {
            match *state {
                TaskState::Running => (Active { task: task.clone() }, {
                    if matches!(phase, Starting { .. }) {
                        vec![Effect::Running]
                    } else {
                        Vec::new()
                    }
                }),
                // A launch the master never heard of (lost before it arrived, e.g. a
                // crash between recording and sending): launch the attempt again.
                _ if *unknown && matches!(phase, Starting { .. }) => {
                    (Initial, vec![Effect::NeedOffer])
                }
                s if is_success(s) => (Success, vec![Effect::Finished]),
                s if is_task_terminal(s) => {
                    let why = if message.is_empty() {
                        format!("task {} ended {}", task.task_id, s.as_str_name())
                    } else {
                        format!("task {} ended {}: {message}", task.task_id, s.as_str_name())
                    };
                    after_failure(attempt, policy, now_ms, why)
                }
                _ => (phase.clone(), Vec::new()),
            }
        }
        (Killing { task, cause }, Input::Task { state, message, .. }) => {
            if is_task_terminal(*state) {
                let what = match cause {
                    KillCause::Deadline => "exceeded its active deadline".to_string(),
                    KillCause::Stopped => "stopped".to_string(),
                    KillCause::Replaced => "replaced by a newer run".to_string(),
                };
                let message = if message.is_empty() {
                    what
                } else {
                    format!("{what} ({}: {message})", state.as_str_name())
                };
                (
                    Failed {
                        kind: (*cause).into(),
                        message,
                    },
                    vec![Effect::Finished],
                )
            } else {
                let _ = task;
                (phase.clone(), Vec::new())
            }
        }

        (Starting { task } | Active { task }, Input::Stop { cause }) => (
            Killing {
                task: task.clone(),
                cause: *cause,
            },
            vec![Effect::Kill { task: task.clone() }],
        ),
        (Initial | RetryWait { .. }, Input::Stop { cause }) => (
            Failed {
                kind: (*cause).into(),
                message: "stopped before it started".into(),
            },
            vec![Effect::Finished],
        ),
        // A second stop, or a stop of a finished run, changes nothing.
        (Killing { .. }, Input::Stop { .. }) => (phase.clone(), Vec::new()),

        (Starting { task } | Active { task }, Input::Tick) if deadline_passed => (
            Killing {
                task: task.clone(),
                cause: KillCause::Deadline,
            },
            vec![Effect::Kill { task: task.clone() }],
        ),
        (Initial | RetryWait { .. }, Input::Tick) if deadline_passed => (
            Failed {
                kind: FailKind::Deadline,
                message: "exceeded its active deadline before it could run".into(),
            },
            vec![Effect::Finished],
        ),
        (RetryWait { until_ms }, Input::Tick) if now_ms >= *until_ms => {
            (Initial, vec![Effect::NeedOffer])
        }
        (_, Input::Tick) => (phase.clone(), Vec::new()),

        _ => return Err(illegal()),
    };
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::RestartPolicyKind;

    fn task() -> TaskRef {
        TaskRef {
            task_id: "t1".into(),
            agent_id: "a1".into(),
        }
    }

    fn never() -> Policy {
        Policy {
            restart: RestartSpec::default(),
            deadline_ms: None,
        }
    }

    fn retrying(retries: u32) -> Policy {
        Policy {
            restart: RestartSpec {
                policy: RestartPolicyKind::OnFailure,
                retries,
                backoff_seconds: 1.0,
                backoff_factor: 2.0,
                max_backoff_seconds: 60.0,
            },
            deadline_ms: None,
        }
    }

    fn update(state: TaskState) -> Input {
        Input::Task {
            state,
            message: String::new(),
            unknown: false,
        }
    }

    fn step(
        phase: &Phase,
        input: Input,
        attempt: u32,
        p: &Policy,
        now: i64,
    ) -> (Phase, Vec<Effect>) {
        transition(phase, &input, attempt, p, now).unwrap()
    }

    #[test]
    fn the_happy_path() {
        let p = never();
        let (ph, fx) = step(&Phase::Initial, Input::Launched { task: task() }, 1, &p, 0);
        assert_eq!(ph, Phase::Starting { task: task() });
        assert!(fx.is_empty());
        let (ph, fx) = step(&ph, update(TaskState::Starting), 1, &p, 1);
        assert!(fx.is_empty());
        let (ph, fx) = step(&ph, update(TaskState::Running), 1, &p, 2);
        assert_eq!(ph, Phase::Active { task: task() });
        assert_eq!(fx, vec![Effect::Running]);
        let (ph, fx) = step(&ph, update(TaskState::Running), 1, &p, 3);
        assert!(
            fx.is_empty(),
            "a repeated RUNNING (reconciliation) is not a new start"
        );
        let (ph, fx) = step(&ph, update(TaskState::Finished), 1, &p, 4);
        assert_eq!(ph, Phase::Success);
        assert_eq!(fx, vec![Effect::Finished]);
        assert!(transition(&ph, &update(TaskState::Running), 1, &p, 5).is_err());
    }

    #[test]
    fn failures_retry_with_backoff_until_attempts_run_out() {
        let p = retrying(2);
        let active = Phase::Active { task: task() };
        let (ph, _) = step(&active, update(TaskState::Failed), 1, &p, 10_000);
        assert_eq!(ph, Phase::RetryWait { until_ms: 11_000 });
        let (same, fx) = step(&ph, Input::Tick, 2, &p, 10_999);
        assert_eq!(same, ph);
        assert!(fx.is_empty());
        let (ph, fx) = step(&ph, Input::Tick, 2, &p, 11_000);
        assert_eq!(ph, Phase::Initial);
        assert_eq!(fx, vec![Effect::NeedOffer]);
        let (ph, _) = step(&active, update(TaskState::Lost), 2, &p, 20_000);
        assert_eq!(ph, Phase::RetryWait { until_ms: 22_000 }, "backoff doubles");
        let (ph, fx) = step(&active, update(TaskState::Failed), 3, &p, 30_000);
        assert!(
            matches!(
                ph,
                Phase::Failed {
                    kind: FailKind::Task,
                    ..
                }
            ),
            "{ph:?}"
        );
        assert_eq!(fx, vec![Effect::Finished]);
    }

    #[test]
    fn the_deadline_kills_and_fails_by_deadline() {
        let p = Policy {
            deadline_ms: Some(5_000),
            ..retrying(3)
        };
        let active = Phase::Active { task: task() };
        let (ph, fx) = step(&active, Input::Tick, 1, &p, 4_999);
        assert_eq!(ph, active);
        assert!(fx.is_empty());
        let (ph, fx) = step(&active, Input::Tick, 1, &p, 5_000);
        assert_eq!(
            ph,
            Phase::Killing {
                task: task(),
                cause: KillCause::Deadline
            }
        );
        assert_eq!(fx, vec![Effect::Kill { task: task() }]);
        let (ph, fx) = step(&ph, update(TaskState::Killed), 1, &p, 6_000);
        assert!(
            matches!(&ph, Phase::Failed { kind: FailKind::Deadline, message } if message.contains("deadline")),
            "{ph:?}"
        );
        assert_eq!(fx, vec![Effect::Finished]);
        // A retry that would start after the deadline is not waited for.
        let (ph, _) = step(&active, update(TaskState::Failed), 1, &p, 4_500);
        assert!(
            matches!(
                ph,
                Phase::Failed {
                    kind: FailKind::Task,
                    ..
                }
            ),
            "{ph:?}"
        );
    }

    #[test]
    fn stops_before_and_after_launch() {
        let p = never();
        let (ph, fx) = step(
            &Phase::Initial,
            Input::Stop {
                cause: KillCause::Stopped,
            },
            1,
            &p,
            0,
        );
        assert!(matches!(
            ph,
            Phase::Failed {
                kind: FailKind::Stopped,
                ..
            }
        ));
        assert_eq!(fx, vec![Effect::Finished]);
        let (ph, fx) = step(
            &Phase::Starting { task: task() },
            Input::Stop {
                cause: KillCause::Replaced,
            },
            1,
            &p,
            0,
        );
        assert_eq!(fx, vec![Effect::Kill { task: task() }]);
        let (again, fx) = step(
            &ph,
            Input::Stop {
                cause: KillCause::Stopped,
            },
            1,
            &p,
            0,
        );
        assert_eq!(again, ph);
        assert!(fx.is_empty());
        let (ph, _) = step(&ph, update(TaskState::Finished), 1, &p, 1);
        assert!(
            matches!(
                ph,
                Phase::Failed {
                    kind: FailKind::Replaced,
                    ..
                }
            ),
            "a replaced run is not a success even if its task finished first"
        );
    }

    #[test]
    fn refused_or_unknown_launches_go_back_to_waiting_for_an_offer() {
        let p = never();
        let starting = Phase::Starting { task: task() };
        let (ph, fx) = step(
            &starting,
            Input::LaunchFailed {
                message: "gone".into(),
            },
            1,
            &p,
            0,
        );
        assert_eq!((ph, fx), (Phase::Initial, vec![Effect::NeedOffer]));
        let unknown = Input::Task {
            state: TaskState::Lost,
            message: "the master does not know this task".into(),
            unknown: true,
        };
        let (ph, _) = step(&starting, unknown.clone(), 1, &p, 0);
        assert_eq!(ph, Phase::Initial);
        // Once running, a lost task is a failed attempt.
        let (ph, _) = step(&Phase::Active { task: task() }, unknown, 1, &p, 0);
        assert!(matches!(ph, Phase::Failed { .. }));
    }

    #[test]
    fn terminal_phases_accept_nothing_but_ticks() {
        for ph in [
            Phase::Success,
            Phase::Failed {
                kind: FailKind::Task,
                message: String::new(),
            },
            Phase::Skipped {
                reason: String::new(),
            },
        ] {
            assert!(ph.is_terminal());
            assert!(transition(&ph, &Input::Launched { task: task() }, 1, &never(), 0).is_err());
            assert!(transition(&ph, &update(TaskState::Running), 1, &never(), 0).is_err());
            assert!(
                transition(
                    &ph,
                    &Input::Stop {
                        cause: KillCause::Stopped
                    },
                    1,
                    &never(),
                    0
                )
                .is_err()
            );
            assert_eq!(step(&ph, Input::Tick, 1, &never(), 0).0, ph);
        }
    }
}
