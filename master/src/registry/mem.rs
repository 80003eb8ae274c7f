//! `MemRegistry`: the one in-memory test double of the registry, shared by every test
//! that needs one. Clones share one store, so a test can keep a clone, restart a master
//! from what it wrote, and make writes fail on demand. Never used by the binary.

use std::sync::{Arc, Mutex, MutexGuard};

use super::{Registry, RegistryError, RegistryFuture, RegistryOp, RegistryState};

#[derive(Clone, Default)]
pub struct MemRegistry {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    state: RegistryState,
    /// When set, every append fails with this reason and stores nothing.
    failing: Option<String>,
    /// Batches stored so far.
    appends: usize,
}

impl MemRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that already holds `state` (a master restarting on it).
    pub fn with_state(state: RegistryState) -> Self {
        let r = Self::default();
        r.lock().state = state;
        r
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A test that panicked while holding the lock must not hide the data from others.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What is stored now.
    pub fn state(&self) -> RegistryState {
        self.lock().state.clone()
    }

    /// Make every later append fail with `reason` (`None`: succeed again).
    pub fn fail_writes(&self, reason: Option<&str>) {
        self.lock().failing = reason.map(str::to_string);
    }

    /// How many batches were stored.
    pub fn appends(&self) -> usize {
        self.lock().appends
    }
}

impl Registry for MemRegistry {
    fn recover(&self) -> RegistryFuture<'_, RegistryState> {
        let state = self.state();
        Box::pin(async move { Ok(state) })
    }

    fn append(&self, ops: Vec<RegistryOp>) -> RegistryFuture<'_, ()> {
        let result = {
            let mut inner = self.lock();
            match &inner.failing {
                Some(reason) => Err(RegistryError::Unavailable(reason.clone())),
                None => {
                    for op in &ops {
                        inner.state.apply(op);
                    }
                    inner.appends += 1;
                    Ok(())
                }
            }
        };
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn clones_share_the_store_and_a_failed_write_stores_nothing() {
        let r = MemRegistry::new();
        let view = r.clone();
        r.append(vec![RegistryOp::SetWeight {
            role: "a".into(),
            weight: 2.0,
        }])
        .await
        .expect("stored");
        view.fail_writes(Some("disk full"));
        let err = r
            .append(vec![RegistryOp::RemoveAgent { id: "x".into() }])
            .await
            .expect_err("fails");
        assert!(err.to_string().contains("disk full"), "{err}");
        assert!(view.state().removed_agents.is_empty());
        assert_eq!(view.appends(), 1);
        assert_eq!(r.recover().await.expect("recover").weights["a"], 2.0);
    }
}
