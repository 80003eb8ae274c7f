//! The executor life cycle: one enum, one transition function.
//!
//! Owns the rules of how an executor moves between launching, waiting for its
//! subscription, subscribed, shutting down and terminated, and which effects each move
//! has. It must never do I/O: the state actor carries out the effects.

use std::fmt;

/// Where an executor is in its life on this agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecPhase {
    /// The containerizer is starting the executor's container.
    Launching,
    /// The container runs; the executor has not subscribed (yet, or again after losing
    /// its connection or an agent restart). A subscription timer runs.
    Registering,
    /// The executor holds an open event stream.
    Subscribed,
    /// SHUTDOWN was sent (or the executor is being killed); waiting for it to end.
    ShuttingDown,
    /// The container ended; the executor's tasks have their terminal updates.
    Terminated,
}

/// What happens to an executor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecEvent {
    /// The container started.
    Launched,
    /// The container could not be started.
    LaunchFailed,
    /// The executor (re-)subscribed.
    Subscribed,
    /// Its event stream closed.
    Disconnected,
    /// The subscription timer fired.
    SubscribeTimeout,
    /// The agent wants the executor gone (master's ShutdownExecutor, no task left, the
    /// framework or the agent shutting down).
    Shutdown,
    /// The container ended.
    Exited,
}

/// What the state actor must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecEffect {
    /// Start the subscription timer.
    StartSubscribeTimer,
    /// Send SUBSCRIBED and every launch the executor has not seen.
    DeliverLaunches,
    /// Send SHUTDOWN and kill the container after the grace period.
    SendShutdown,
    /// Kill the container now.
    KillContainer,
    /// Give every task of the executor that is not terminal a terminal update, report
    /// the executor's end to the master, forget the executor.
    FailTasksAndForget,
}

/// An event that makes no sense in the current phase.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct IllegalExecTransition {
    /// The phase.
    pub phase: ExecPhase,
    /// The event.
    pub event: ExecEvent,
}

impl fmt::Display for IllegalExecTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "executor event {:?} in phase {:?}",
            self.event, self.phase
        )
    }
}

/// The one transition function of the executor life cycle.
pub fn transition(
    phase: ExecPhase,
    event: ExecEvent,
) -> Result<(ExecPhase, Vec<ExecEffect>), IllegalExecTransition> {
    use ExecEffect as F;
    use ExecEvent as E;
    use ExecPhase as P;
    let next = match (phase, event) {
        (P::Terminated, _) => return Err(IllegalExecTransition { phase, event }),
        (_, E::Exited) => (P::Terminated, vec![F::FailTasksAndForget]),
        (P::Launching, E::Launched) => (P::Registering, vec![F::StartSubscribeTimer]),
        (P::Launching, E::LaunchFailed) => (P::Terminated, vec![F::FailTasksAndForget]),
        // A fast executor may subscribe before the agent has processed its launch.
        (P::Launching | P::Registering | P::Subscribed, E::Subscribed) => {
            (P::Subscribed, vec![F::DeliverLaunches])
        }
        (P::Subscribed, E::Launched) => (P::Subscribed, vec![]),
        (P::Subscribed, E::Disconnected) => (P::Registering, vec![F::StartSubscribeTimer]),
        (P::Registering, E::SubscribeTimeout) => (P::ShuttingDown, vec![F::KillContainer]),
        // A timer from an earlier wait, or a stream closing that was already replaced.
        (P::Launching | P::Subscribed | P::ShuttingDown, E::SubscribeTimeout) => (phase, vec![]),
        (P::Registering | P::Launching | P::ShuttingDown, E::Disconnected) => (phase, vec![]),
        (P::Subscribed, E::Shutdown) => (P::ShuttingDown, vec![F::SendShutdown]),
        // Not connected: nobody to tell; the container goes now.
        (P::Registering, E::Shutdown) => (P::ShuttingDown, vec![F::KillContainer]),
        // The launch settles later; the container is killed then.
        (P::Launching, E::Shutdown) => (P::ShuttingDown, vec![]),
        (P::ShuttingDown, E::Launched) => (P::ShuttingDown, vec![F::KillContainer]),
        (P::ShuttingDown, E::LaunchFailed) => (P::Terminated, vec![F::FailTasksAndForget]),
        (P::ShuttingDown, E::Shutdown) => (P::ShuttingDown, vec![]),
        (P::ShuttingDown, E::Subscribed)
        | (P::Registering, E::Launched | E::LaunchFailed)
        | (P::Subscribed, E::LaunchFailed) => return Err(IllegalExecTransition { phase, event }),
    };
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ExecEffect as F;
    use ExecEvent as E;
    use ExecPhase as P;

    fn run(events: &[ExecEvent]) -> (ExecPhase, Vec<ExecEffect>) {
        let mut phase = P::Launching;
        let mut all = Vec::new();
        for e in events {
            let (next, effects) = transition(phase, *e).expect("legal");
            phase = next;
            all.extend(effects);
        }
        (phase, all)
    }

    #[test]
    fn normal_life() {
        let (phase, effects) = run(&[E::Launched, E::Subscribed, E::Shutdown, E::Exited]);
        assert_eq!(phase, P::Terminated);
        assert_eq!(
            effects,
            vec![
                F::StartSubscribeTimer,
                F::DeliverLaunches,
                F::SendShutdown,
                F::FailTasksAndForget
            ]
        );
    }

    #[test]
    fn subscribe_before_launch_settles() {
        let (phase, effects) = run(&[E::Subscribed, E::Launched]);
        assert_eq!(phase, P::Subscribed);
        assert_eq!(effects, vec![F::DeliverLaunches]);
    }

    #[test]
    fn no_subscription_kills() {
        let (phase, effects) = run(&[E::Launched, E::SubscribeTimeout]);
        assert_eq!(phase, P::ShuttingDown);
        assert_eq!(effects, vec![F::StartSubscribeTimer, F::KillContainer]);
        // A timer after a successful subscription is stale.
        let (phase, _) = run(&[E::Launched, E::Subscribed, E::SubscribeTimeout]);
        assert_eq!(phase, P::Subscribed);
    }

    #[test]
    fn reconnection_restarts_the_timer() {
        let (phase, effects) = run(&[E::Launched, E::Subscribed, E::Disconnected, E::Subscribed]);
        assert_eq!(phase, P::Subscribed);
        assert_eq!(
            effects,
            vec![
                F::StartSubscribeTimer,
                F::DeliverLaunches,
                F::StartSubscribeTimer,
                F::DeliverLaunches
            ]
        );
    }

    #[test]
    fn shutdown_during_launch_kills_once_launched() {
        let (phase, effects) = run(&[E::Shutdown, E::Launched]);
        assert_eq!(phase, P::ShuttingDown);
        assert_eq!(effects, vec![F::KillContainer]);
        let (phase, effects) = run(&[E::Shutdown, E::LaunchFailed]);
        assert_eq!(phase, P::Terminated);
        assert_eq!(effects, vec![F::FailTasksAndForget]);
    }

    #[test]
    fn crash_at_any_point_fails_tasks() {
        for prefix in [
            &[][..],
            &[E::Launched][..],
            &[E::Launched, E::Subscribed][..],
            &[E::Launched, E::Subscribed, E::Shutdown][..],
        ] {
            let mut events = prefix.to_vec();
            events.push(E::Exited);
            let (phase, effects) = run(&events);
            assert_eq!(phase, P::Terminated);
            assert_eq!(effects.last(), Some(&F::FailTasksAndForget));
        }
    }

    #[test]
    fn illegal_moves_refused() {
        assert!(transition(P::Terminated, E::Subscribed).is_err());
        assert!(transition(P::Terminated, E::Exited).is_err());
        assert!(transition(P::ShuttingDown, E::Subscribed).is_err());
        assert!(transition(P::Registering, E::Launched).is_err());
        let err = transition(P::Subscribed, E::LaunchFailed).expect_err("illegal");
        assert_eq!(
            err.to_string(),
            "executor event LaunchFailed in phase Subscribed"
        );
    }
}
