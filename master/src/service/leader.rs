//! Leadership as the service layer sees it: whether this master may act, and if not, who
//! does. Every call that reaches the actor passes [`Leadership::require`] first (in
//! `Service::call`, `read` and `query`), so a follower or a master that lost its lease
//! answers "not the leader; the leader is ADDR" on every transport from one place.
//!
//! Owns only the current role. The HA driver (`crate::ha`) is its one writer; it must
//! never decide anything about the election itself.

use std::sync::Arc;

use tokio::sync::watch;

use super::Error;

/// This master's role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// The only master (no election): always acting.
    Single,
    /// Elected through etcd and acting.
    Leading,
    /// Another master leads (its `HOST:PORT`, when known) or none is elected yet.
    Following { leader: Option<String> },
    /// Lost its lease or leader key: refuses everything until the process restarts as a
    /// follower.
    SteppedDown,
}

/// The shared, watchable role. Cheap to clone.
#[derive(Clone)]
pub struct Leadership {
    tx: Arc<watch::Sender<Role>>,
    /// This master's own advertised `HOST:PORT` (named when it leads).
    advertise: Arc<str>,
}

impl Leadership {
    /// A single master: always leading.
    pub fn single() -> Self {
        Self::new(Role::Single, "")
    }

    pub fn new(role: Role, advertise: &str) -> Self {
        Self {
            tx: Arc::new(watch::Sender::new(role)),
            advertise: advertise.into(),
        }
    }

    pub fn role(&self) -> Role {
        self.tx.borrow().clone()
    }

    pub fn set(&self, role: Role) {
        self.tx.send_replace(role);
    }

    pub fn watch(&self) -> watch::Receiver<Role> {
        self.tx.subscribe()
    }

    /// Whether this master acts now.
    pub fn leading(&self) -> bool {
        matches!(self.role(), Role::Single | Role::Leading)
    }

    /// The leader's `HOST:PORT` as far as this master knows.
    pub fn leader(&self) -> Option<String> {
        match self.role() {
            Role::Single | Role::Leading => {
                Some(self.advertise.to_string()).filter(|a| !a.is_empty())
            }
            Role::Following { leader } => leader,
            Role::SteppedDown => None,
        }
    }

    /// `Ok` while this master acts; otherwise the refusal naming the leader.
    pub fn require(&self) -> Result<(), Error> {
        match self.role() {
            Role::Single | Role::Leading => Ok(()),
            Role::Following { leader } => Err(Error::not_leader(leader)),
            Role::SteppedDown => Err(Error::not_leader(None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_single_or_elected_master_acts() {
        let l = Leadership::new(Role::Following { leader: None }, "10.0.0.1:5050");
        assert!(matches!(
            l.require(),
            Err(Error::NotLeader { leader: None, .. })
        ));
        l.set(Role::Following {
            leader: Some("10.0.0.2:5050".into()),
        });
        let e = l.require().expect_err("follower");
        assert!(e.message().contains("the leader is 10.0.0.2:5050"), "{e}");
        assert_eq!(l.leader().as_deref(), Some("10.0.0.2:5050"));
        l.set(Role::Leading);
        assert!(l.require().is_ok());
        assert_eq!(l.leader().as_deref(), Some("10.0.0.1:5050"));
        l.set(Role::SteppedDown);
        assert!(l.require().is_err() && !l.leading());
        assert!(Leadership::single().require().is_ok());
    }
}
