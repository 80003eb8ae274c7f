//! Operator event subscribers: who is subscribed, and delivery of each cluster event to
//! them. Every subscriber has a bounded queue; one that falls behind is cut off with
//! RESOURCE_EXHAUSTED (the last slot of its queue is kept for that error) instead of
//! growing the master's memory. This module never builds events from state; the actor
//! does, and only when someone is listening.

use crate::service::Error;
use agora_proto::v1::{self, OperatorEvent};
use tokio::sync::mpsc;
use tracing::info;

type Tx = mpsc::Sender<Result<OperatorEvent, Error>>;

#[derive(Default)]
pub(crate) struct Subscribers {
    txs: Vec<Tx>,
    capacity: usize,
    /// Subscribers cut off for falling behind.
    pub dropped_slow: u64,
}

impl Subscribers {
    pub fn new(capacity: usize) -> Self {
        Self {
            txs: Vec::new(),
            // One slot is reserved for the cut-off error.
            capacity: capacity.max(2),
            dropped_slow: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// A new subscriber whose first event is `snapshot`, if given (without one, it gets
    /// the events from this point of the actor's order on).
    pub fn add(
        &mut self,
        snapshot: Option<v1::ClusterState>,
    ) -> mpsc::Receiver<Result<OperatorEvent, Error>> {
        let (tx, rx) = mpsc::channel(self.capacity);
        if let Some(snapshot) = snapshot {
            let _ = tx.try_send(Ok(OperatorEvent {
                event: Some(v1::operator_event::Event::Snapshot(snapshot)),
            }));
        }
        self.txs.push(tx);
        rx
    }

    /// Deliver `make()` to everyone; builds nothing when nobody listens.
    pub fn publish(&mut self, make: impl FnOnce() -> Option<v1::operator_event::Event>) {
        if self.txs.is_empty() {
            return;
        }
        let Some(event) = make() else {
            return;
        };
        let capacity = self.capacity;
        let mut dropped = 0;
        self.txs.retain(|tx| {
            if tx.is_closed() {
                return false;
            }
            if tx.capacity() <= 1 {
                let _ = tx.try_send(Err(Error::resource_exhausted(format!(
                    "event subscriber too slow: {} events were waiting; subscribe again",
                    capacity - 1
                ))));
                dropped += 1;
                return false;
            }
            tx.try_send(Ok(OperatorEvent {
                event: Some(event.clone()),
            }))
            .is_ok()
        });
        if dropped > 0 {
            info!(dropped, "cut off slow operator event subscribers");
            self.dropped_slow += dropped;
        }
    }

    /// End every stream (master shutdown).
    pub fn close(&mut self) {
        self.txs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn removed(id: &str) -> Option<v1::operator_event::Event> {
        Some(v1::operator_event::Event::AgentRemoved(
            v1::operator_event::AgentRemoved {
                agent_id: id.into(),
            },
        ))
    }

    #[tokio::test]
    async fn snapshot_first_then_events_and_slow_subscribers_are_cut_off() {
        let mut subs = Subscribers::new(4);
        let mut fast = subs.add(Some(v1::ClusterState::default()));
        let mut slow = subs.add(Some(v1::ClusterState::default()));
        assert!(matches!(
            fast.recv().await,
            Some(Ok(OperatorEvent {
                event: Some(v1::operator_event::Event::Snapshot(_))
            }))
        ));
        for i in 0..10 {
            subs.publish(|| removed(&format!("a{i}")));
            // The fast subscriber keeps up.
            assert!(matches!(fast.recv().await, Some(Ok(_))));
        }
        assert_eq!(subs.len(), 1, "the slow one was cut off");
        assert_eq!(subs.dropped_slow, 1);
        // The slow one sees its snapshot, the events that fit, then the error, then the end.
        let mut items = Vec::new();
        while let Some(item) = slow.recv().await {
            items.push(item);
        }
        let last = items.pop().expect("an error at the end");
        let err = last.expect_err("cut off with an error");
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(err.message().contains("too slow"));
        assert!(items.iter().all(Result::is_ok));
        assert_eq!(
            items.len(),
            3,
            "snapshot + 2 events fit before the reserved slot"
        );
    }

    #[tokio::test]
    async fn nothing_is_built_without_subscribers_and_closed_ones_are_dropped() {
        let mut subs = Subscribers::new(8);
        subs.publish(|| panic!("must not build events nobody reads"));
        let rx = subs.add(Some(v1::ClusterState::default()));
        drop(rx);
        subs.publish(|| removed("a"));
        assert!(subs.is_empty());
    }
}
