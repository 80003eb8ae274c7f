//! Agent life cycle as the master sees it.
//!
//! Owns the transition rule only. A removed agent never comes back under the same id: when
//! it tries, it is told to shut down.

use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentStatus {
    /// Connected and heartbeating.
    Registered,
    /// Its command stream broke; heartbeats may still arrive. Tasks keep running.
    Disconnected,
    /// Missed too many heartbeats: its tasks are reported unreachable, its resources are
    /// out of the allocator.
    Unreachable,
    /// Gone for good.
    Removed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentEvent {
    Reregister,
    StreamLost,
    HeartbeatsMissed,
    Remove,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("agent is {state:?}: event {event:?} does not apply")]
pub struct AgentTransitionError {
    pub state: AgentStatus,
    pub event: AgentEvent,
}

impl AgentStatus {
    pub fn on(self, event: AgentEvent) -> Result<AgentStatus, AgentTransitionError> {
        use AgentEvent::*;
        use AgentStatus::*;
        match (self, event) {
            (Removed, _) => Err(AgentTransitionError { state: self, event }),
            (_, Reregister) => Ok(Registered),
            (Registered, StreamLost) => Ok(Disconnected),
            (Registered | Disconnected, HeartbeatsMissed) => Ok(Unreachable),
            (_, Remove) => Ok(Removed),
            _ => Err(AgentTransitionError { state: self, event }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AgentStatus::Registered => "registered",
            AgentStatus::Disconnected => "disconnected",
            AgentStatus::Unreachable => "unreachable",
            AgentStatus::Removed => "removed",
        }
    }

    /// Whether its resources are in the allocator.
    pub fn is_schedulable(self) -> bool {
        matches!(self, AgentStatus::Registered | AgentStatus::Disconnected)
    }
}

#[cfg(test)]
mod tests {
    use super::AgentEvent::*;
    use super::AgentStatus::*;

    #[test]
    fn transitions() {
        assert_eq!(Registered.on(StreamLost), Ok(Disconnected));
        assert_eq!(Disconnected.on(Reregister), Ok(Registered));
        assert_eq!(Disconnected.on(HeartbeatsMissed), Ok(Unreachable));
        assert_eq!(Unreachable.on(Reregister), Ok(Registered));
        assert_eq!(Registered.on(Remove), Ok(Removed));
        assert!(Unreachable.on(StreamLost).is_err());
        assert!(Unreachable.on(HeartbeatsMissed).is_err());
        for e in [Reregister, StreamLost, HeartbeatsMissed, Remove] {
            assert!(Removed.on(e).is_err());
        }
        assert!(Registered.is_schedulable() && !Unreachable.is_schedulable());
    }
}
