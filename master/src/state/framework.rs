//! Framework life cycle as the master sees it: one enum, one transition function.
//!
//! Owns the transition rule only; the actor checks every change here before it touches
//! anything else. A framework that is torn down or whose failover timeout expired is
//! retired: the actor keeps its entry in that state (so the retired ids are read from
//! the enum, not from a side set) and it can never subscribe again under its id.

use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameworkStatus {
    /// Subscribed: its event stream is open and it is offered resources.
    Active,
    /// Its stream ended; its tasks keep running until the failover timeout expires.
    Disconnected,
    /// Known from the registry or from an agent's report after a master restart, not
    /// subscribed to this master yet (Mesos: inactive); the failover timeout runs from
    /// the restart.
    Inactive,
    /// Torn down by itself or an operator. Retired.
    TornDown,
    /// Its failover timeout expired before it came back. Retired.
    FailoverExpired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameworkEvent {
    Subscribe,
    StreamLost,
    Teardown,
    FailoverExpired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("framework is {}: {event:?} does not apply", state.name())]
pub struct FrameworkTransitionError {
    pub state: FrameworkStatus,
    pub event: FrameworkEvent,
}

impl FrameworkStatus {
    /// The state after `event`, or why it does not apply (nothing may change then).
    pub fn on(self, event: FrameworkEvent) -> Result<FrameworkStatus, FrameworkTransitionError> {
        use FrameworkEvent as E;
        use FrameworkStatus::*;
        match (self, event) {
            (TornDown | FailoverExpired, _) => Err(FrameworkTransitionError { state: self, event }),
            (_, E::Subscribe) => Ok(Active),
            (Active, E::StreamLost) => Ok(Disconnected),
            (Disconnected | Inactive, E::FailoverExpired) => Ok(FailoverExpired),
            (_, E::Teardown) => Ok(TornDown),
            _ => Err(FrameworkTransitionError { state: self, event }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FrameworkStatus::Active => "connected",
            FrameworkStatus::Disconnected => "disconnected",
            FrameworkStatus::Inactive => "inactive",
            FrameworkStatus::TornDown => "torn_down",
            FrameworkStatus::FailoverExpired => "failover_expired",
        }
    }

    /// Torn down or expired: its id is never used again.
    pub fn is_retired(self) -> bool {
        matches!(
            self,
            FrameworkStatus::TornDown | FrameworkStatus::FailoverExpired
        )
    }

    /// Waiting for its scheduler, with the failover timeout running.
    pub fn is_failing_over(self) -> bool {
        matches!(
            self,
            FrameworkStatus::Disconnected | FrameworkStatus::Inactive
        )
    }
}

#[cfg(test)]
mod tests {
    use super::FrameworkEvent as E;
    use super::FrameworkStatus::*;
    use super::*;

    const ALL: [FrameworkStatus; 5] = [Active, Disconnected, Inactive, TornDown, FailoverExpired];
    const EVENTS: [FrameworkEvent; 4] =
        [E::Subscribe, E::StreamLost, E::Teardown, E::FailoverExpired];

    /// The whole table: (from, event) -> to, or refused.
    #[test]
    fn transition_table() {
        let expect = |from: FrameworkStatus, e: FrameworkEvent| -> Option<FrameworkStatus> {
            match (from, e) {
                (Active | Disconnected | Inactive, E::Subscribe) => Some(Active),
                (Active, E::StreamLost) => Some(Disconnected),
                (Disconnected | Inactive, E::FailoverExpired) => Some(FailoverExpired),
                (Active | Disconnected | Inactive, E::Teardown) => Some(TornDown),
                _ => None,
            }
        };
        for from in ALL {
            for e in EVENTS {
                assert_eq!(from.on(e).ok(), expect(from, e), "{from:?} on {e:?}");
            }
        }
    }

    #[test]
    fn retired_states_are_absorbing_and_named() {
        for s in [TornDown, FailoverExpired] {
            assert!(s.is_retired());
            for e in EVENTS {
                let err = s.on(e).expect_err("retired");
                assert!(err.to_string().starts_with("framework is "), "{err}");
            }
        }
        assert!(Inactive.is_failing_over() && Disconnected.is_failing_over());
        assert!(!Active.is_failing_over() && !Active.is_retired());
    }
}
