//! Framework life cycle as the master sees it.
//!
//! Owns the transition rule only. A torn-down framework can never subscribe again under
//! its id.

use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameworkStatus {
    Connected,
    /// Its stream ended; its tasks keep running until the failover timeout expires.
    Disconnected,
    TornDown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameworkEvent {
    Subscribe,
    StreamLost,
    Teardown,
    FailoverExpired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("framework is {state:?}: event {event:?} does not apply")]
pub struct FrameworkTransitionError {
    pub state: FrameworkStatus,
    pub event: FrameworkEvent,
}

impl FrameworkStatus {
    pub fn on(self, event: FrameworkEvent) -> Result<FrameworkStatus, FrameworkTransitionError> {
        use FrameworkEvent::*;
        use FrameworkStatus::*;
        match (self, event) {
            (TornDown, _) => Err(FrameworkTransitionError { state: self, event }),
            (_, Subscribe) => Ok(Connected),
            (Connected, StreamLost) => Ok(Disconnected),
            (Disconnected, FailoverExpired) => Ok(TornDown),
            (_, Teardown) => Ok(TornDown),
            _ => Err(FrameworkTransitionError { state: self, event }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FrameworkStatus::Connected => "connected",
            FrameworkStatus::Disconnected => "disconnected",
            FrameworkStatus::TornDown => "torn_down",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FrameworkEvent::*;
    use super::FrameworkStatus::*;

    #[test]
    fn transitions() {
        assert_eq!(Connected.on(StreamLost), Ok(Disconnected));
        assert_eq!(Disconnected.on(Subscribe), Ok(Connected));
        assert_eq!(Connected.on(Subscribe), Ok(Connected));
        assert_eq!(Disconnected.on(FailoverExpired), Ok(TornDown));
        assert!(Connected.on(FailoverExpired).is_err());
        assert_eq!(Connected.on(Teardown), Ok(TornDown));
        for e in [Subscribe, StreamLost, Teardown, FailoverExpired] {
            assert!(TornDown.on(e).is_err());
        }
    }
}
