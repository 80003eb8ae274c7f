//! Offer life cycle: outstanding until accepted, declined, rescinded or timed out.
//!
//! Owns the transition rule only; the actor owns the offers themselves.

use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OfferState {
    Outstanding,
    Accepted,
    Declined,
    Rescinded,
    TimedOut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferEvent {
    Accept,
    Decline,
    Rescind,
    Timeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("offer is {state:?}: it cannot be {event:?}ed")]
pub struct OfferClosed {
    pub state: OfferState,
    pub event: OfferEvent,
}

impl OfferState {
    pub fn on(self, event: OfferEvent) -> Result<OfferState, OfferClosed> {
        match self {
            OfferState::Outstanding => Ok(match event {
                OfferEvent::Accept => OfferState::Accepted,
                OfferEvent::Decline => OfferState::Declined,
                OfferEvent::Rescind => OfferState::Rescinded,
                OfferEvent::Timeout => OfferState::TimedOut,
            }),
            state => Err(OfferClosed { state, event }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_outstanding_offers_move() {
        let events = [
            OfferEvent::Accept,
            OfferEvent::Decline,
            OfferEvent::Rescind,
            OfferEvent::Timeout,
        ];
        let ends = [
            OfferState::Accepted,
            OfferState::Declined,
            OfferState::Rescinded,
            OfferState::TimedOut,
        ];
        for (e, end) in events.iter().zip(ends) {
            assert_eq!(OfferState::Outstanding.on(*e), Ok(end));
            for e2 in events {
                assert!(end.on(e2).is_err(), "{end:?} then {e2:?}");
            }
        }
    }
}
