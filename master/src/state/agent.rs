//! Agent life cycle as the master sees it: one enum, one transition function.
//!
//! Owns the transition rule only; the actor checks every change here before it touches
//! anything else, and derives from the state whether the agent's resources are in the
//! allocator (`is_schedulable`), so deactivated, draining and removed agents are read
//! from the enum, never from side sets. A removed agent never comes back under the same
//! id: when it tries, it is told to shut down.

use thiserror::Error;

use crate::clock::Millis;

/// What an operator asked of an agent; kept across reconnections and restarts
/// (`Draining` comes back `Deactivated` after a master restart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Maintenance {
    Active,
    /// Nothing on it is offered; its tasks keep running.
    Deactivated,
    /// Deactivated, its tasks told to stop; when none is left it is marked gone if asked.
    Draining {
        mark_gone: bool,
        started: Millis,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentStatus {
    /// Admitted before this master started and not re-registered yet: its tasks are
    /// unknown, so nothing is said about them until it returns or the re-registration
    /// timeout passes.
    Recovering(Maintenance),
    /// Registered with this master; `connected` while its command stream is open
    /// (heartbeats may still arrive while it is not). Tasks keep running either way.
    Registered {
        connected: bool,
        maintenance: Maintenance,
    },
    /// Missed too many heartbeats, or never came back after a master restart: its tasks
    /// are reported unreachable, its resources are out of the allocator.
    Unreachable(Maintenance),
    /// Gone for good (marked gone by an operator, or drained with `mark_gone`).
    Removed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentEvent {
    /// It registered again (after a disconnection, unreachability or a master restart).
    Reregister,
    StreamLost,
    HeartbeatsMissed,
    /// It did not re-register within the timeout after a master restart.
    ReregistrationTimedOut,
    Deactivate,
    Reactivate,
    Drain {
        mark_gone: bool,
        started: Millis,
    },
    /// A drained agent runs nothing any more (a drain asked to mark it gone is then
    /// followed by `MarkGone`).
    Drained,
    MarkGone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("agent is {}: {event:?} does not apply", state.name())]
pub struct AgentTransitionError {
    pub state: AgentStatus,
    pub event: AgentEvent,
}

impl AgentStatus {
    /// A newly admitted agent.
    pub const NEW: AgentStatus = AgentStatus::Registered {
        connected: true,
        maintenance: Maintenance::Active,
    };

    /// The state after `event`, or why it does not apply (nothing may change then).
    pub fn on(self, event: AgentEvent) -> Result<AgentStatus, AgentTransitionError> {
        use AgentEvent as E;
        use AgentStatus::*;
        let refuse = Err(AgentTransitionError { state: self, event });
        let Some(m) = self.maintenance() else {
            return refuse;
        };
        let next = match (self, event) {
            (_, E::Reregister) => Registered {
                connected: true,
                maintenance: m,
            },
            (
                Registered {
                    connected: true, ..
                },
                E::StreamLost,
            ) => Registered {
                connected: false,
                maintenance: m,
            },
            (Registered { .. }, E::HeartbeatsMissed) => Unreachable(m),
            (Recovering(_), E::ReregistrationTimedOut) => Unreachable(m),
            (_, E::Deactivate) => self.with(match m {
                Maintenance::Active => Maintenance::Deactivated,
                // Already out of the allocator: nothing to change.
                other => other,
            }),
            (_, E::Reactivate) if m != Maintenance::Active => self.with(Maintenance::Active),
            (_, E::Drain { mark_gone, started }) => {
                self.with(Maintenance::Draining { mark_gone, started })
            }
            (_, E::Drained) if matches!(m, Maintenance::Draining { .. }) => {
                self.with(Maintenance::Deactivated)
            }
            (_, E::MarkGone) => Removed,
            _ => return refuse,
        };
        Ok(next)
    }

    /// The same connectivity with other maintenance.
    fn with(self, maintenance: Maintenance) -> AgentStatus {
        match self {
            AgentStatus::Recovering(_) => AgentStatus::Recovering(maintenance),
            AgentStatus::Registered { connected, .. } => AgentStatus::Registered {
                connected,
                maintenance,
            },
            AgentStatus::Unreachable(_) => AgentStatus::Unreachable(maintenance),
            AgentStatus::Removed => AgentStatus::Removed,
        }
    }

    /// What an operator asked of it; `None` once removed.
    pub fn maintenance(self) -> Option<Maintenance> {
        match self {
            AgentStatus::Recovering(m)
            | AgentStatus::Registered { maintenance: m, .. }
            | AgentStatus::Unreachable(m) => Some(m),
            AgentStatus::Removed => None,
        }
    }

    /// The name views show: maintenance first, then connectivity.
    pub fn name(self) -> &'static str {
        match self {
            AgentStatus::Removed => "removed",
            _ => match self.maintenance() {
                Some(Maintenance::Draining { .. }) => "draining",
                Some(Maintenance::Deactivated) => "deactivated",
                _ => match self {
                    AgentStatus::Recovering(_) => "recovering",
                    AgentStatus::Registered {
                        connected: true, ..
                    } => "registered",
                    AgentStatus::Registered { .. } => "disconnected",
                    _ => "unreachable",
                },
            },
        }
    }

    /// Whether its resources are in the allocator: registered (connected or not) and
    /// not in maintenance.
    pub fn is_schedulable(self) -> bool {
        matches!(
            self,
            AgentStatus::Registered {
                maintenance: Maintenance::Active,
                ..
            }
        )
    }

    /// Registered with this master (connected or not), whatever its maintenance: its
    /// heartbeats are watched.
    pub fn is_registered(self) -> bool {
        matches!(self, AgentStatus::Registered { .. })
    }

    pub fn is_connected(self) -> bool {
        matches!(
            self,
            AgentStatus::Registered {
                connected: true,
                ..
            }
        )
    }

    pub fn is_deactivated(self) -> bool {
        self.maintenance().is_some_and(|m| m != Maintenance::Active)
    }

    /// The drain in progress, if any.
    pub fn drain(self) -> Option<(bool, Millis)> {
        match self.maintenance() {
            Some(Maintenance::Draining { mark_gone, started }) => Some((mark_gone, started)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AgentEvent as E;
    use super::AgentStatus::*;
    use super::Maintenance::*;
    use super::*;

    const DRAIN: Maintenance = Draining {
        mark_gone: true,
        started: 7,
    };

    fn reg(connected: bool, maintenance: Maintenance) -> AgentStatus {
        Registered {
            connected,
            maintenance,
        }
    }

    /// Data-driven: (from, event, expected next or None for refused).
    #[test]
    fn transition_table() {
        let drain = E::Drain {
            mark_gone: true,
            started: 7,
        };
        let rows: &[(AgentStatus, AgentEvent, Option<AgentStatus>)] = &[
            (reg(true, Active), E::StreamLost, Some(reg(false, Active))),
            (reg(false, Active), E::StreamLost, None),
            (reg(false, Active), E::Reregister, Some(reg(true, Active))),
            (
                reg(false, Active),
                E::HeartbeatsMissed,
                Some(Unreachable(Active)),
            ),
            (Unreachable(Active), E::HeartbeatsMissed, None),
            (Unreachable(Active), E::StreamLost, None),
            (
                Unreachable(Deactivated),
                E::Reregister,
                Some(reg(true, Deactivated)),
            ),
            (Recovering(Active), E::Reregister, Some(reg(true, Active))),
            (
                Recovering(Deactivated),
                E::ReregistrationTimedOut,
                Some(Unreachable(Deactivated)),
            ),
            (reg(true, Active), E::ReregistrationTimedOut, None),
            (Recovering(Active), E::HeartbeatsMissed, None),
            (
                reg(true, Active),
                E::Deactivate,
                Some(reg(true, Deactivated)),
            ),
            (reg(true, DRAIN), E::Deactivate, Some(reg(true, DRAIN))),
            (reg(true, Active), E::Reactivate, None),
            (reg(true, DRAIN), E::Reactivate, Some(reg(true, Active))),
            (Recovering(Active), drain, Some(Recovering(DRAIN))),
            (reg(true, DRAIN), E::Drained, Some(reg(true, Deactivated))),
            (reg(true, Deactivated), E::Drained, None),
            (Unreachable(Active), E::MarkGone, Some(Removed)),
        ];
        for (from, event, to) in rows {
            assert_eq!(from.on(*event).ok(), *to, "{from:?} on {event:?}");
        }
    }

    #[test]
    fn removed_is_absorbing() {
        for e in [
            E::Reregister,
            E::StreamLost,
            E::HeartbeatsMissed,
            E::ReregistrationTimedOut,
            E::Deactivate,
            E::Reactivate,
            E::Drained,
            E::MarkGone,
        ] {
            let err = Removed.on(e).expect_err("removed");
            assert!(err.to_string().contains("agent is removed"), "{err}");
        }
    }

    #[test]
    fn derived_views() {
        assert!(reg(false, Active).is_schedulable());
        assert!(!reg(true, Deactivated).is_schedulable());
        assert!(!Unreachable(Active).is_schedulable() && !Recovering(Active).is_schedulable());
        assert_eq!(reg(true, DRAIN).name(), "draining");
        assert_eq!(reg(false, Deactivated).name(), "deactivated");
        assert_eq!(reg(false, Active).name(), "disconnected");
        assert_eq!(Recovering(Active).name(), "recovering");
        assert_eq!(Unreachable(Active).name(), "unreachable");
        assert_eq!(reg(true, DRAIN).drain(), Some((true, 7)));
        assert!(Unreachable(Deactivated).is_deactivated());
    }
}
