//! Task life cycle: which `TaskState` may follow which.
//!
//! Owns the transition rule only. Terminal states are absorbing; UNREACHABLE may return to a
//! live state when the agent comes back; repeating the current state (a re-sent update) is
//! allowed and changes nothing.

use agora_proto::TaskState;
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("task cannot go from {from:?} to {to:?}")]
pub struct InvalidTransition {
    pub from: TaskState,
    pub to: TaskState,
}

/// The state after `to` is applied to `from`, or why it cannot be.
pub fn transition(from: TaskState, to: TaskState) -> Result<TaskState, InvalidTransition> {
    use TaskState::*;
    let err = Err(InvalidTransition { from, to });
    if to == Unspecified {
        return err;
    }
    if from == to {
        return Ok(to);
    }
    if from.is_terminal() {
        return err;
    }
    let ok = match (from, to) {
        (_, t) if t.is_terminal() => true,
        (Staging, Starting | Running | Killing | Unreachable | Unknown) => true,
        (Starting, Running | Killing | Unreachable | Unknown) => true,
        (Running, Killing | Unreachable | Unknown) => true,
        (Killing, Unreachable | Unknown) => true,
        // The agent came back: the task resumes in whatever live state it reports.
        (Unreachable | Unknown, Staging | Starting | Running | Killing) => true,
        (Unreachable, Unknown) | (Unknown, Unreachable) => true,
        _ => false,
    };
    if ok { Ok(to) } else { err }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskState::*;

    const ALL: [TaskState; 14] = [
        Staging,
        Starting,
        Running,
        Killing,
        Finished,
        Failed,
        Killed,
        Error,
        Lost,
        Dropped,
        Unreachable,
        Gone,
        GoneByOperator,
        Unknown,
    ];

    #[test]
    fn normal_life_cycle() {
        let mut s = Staging;
        for next in [Starting, Running, Killing, Killed] {
            s = transition(s, next).expect("legal");
        }
        assert_eq!(s, Killed);
    }

    #[test]
    fn terminal_states_are_absorbing() {
        for from in ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in ALL.into_iter().filter(|t| *t != from) {
                assert!(transition(from, to).is_err(), "{from:?} -> {to:?}");
            }
            assert_eq!(transition(from, from), Ok(from), "re-sent update");
        }
    }

    #[test]
    fn every_live_state_can_end() {
        for from in ALL.into_iter().filter(|s| !s.is_terminal()) {
            for to in ALL.into_iter().filter(|t| t.is_terminal()) {
                assert_eq!(transition(from, to), Ok(to), "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn no_going_back() {
        assert!(transition(Running, Starting).is_err());
        assert!(transition(Running, Staging).is_err());
        assert!(transition(Killing, Running).is_err());
        assert!(transition(Starting, Staging).is_err());
        assert!(transition(Running, Unspecified).is_err());
    }

    #[test]
    fn unreachable_tasks_resume_when_the_agent_returns() {
        assert_eq!(transition(Running, Unreachable), Ok(Unreachable));
        assert_eq!(transition(Unreachable, Running), Ok(Running));
    }

    #[test]
    fn terminal_set_matches_protocol() {
        let terminal: Vec<_> = ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(
            terminal,
            vec![
                Finished,
                Failed,
                Killed,
                Error,
                Lost,
                Dropped,
                Gone,
                GoneByOperator
            ]
        );
        assert_eq!(Running.as_str_name(), "RUNNING");
    }
}
