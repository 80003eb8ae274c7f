//! `EtcdRegistry`: the registry in etcd, for masters elected through etcd (`crate::ha`).
//!
//! The registry is a fenced log (`agora_etcd::log::FencedLog`) under `<prefix>/registry/`:
//! `log/<seq>` holds one batch (a JSON array of ops, as a `FileRegistry` log line, one put
//! in one transaction, so a batch is atomic); `snap/<generation>/<chunk>` the chunks of a
//! snapshot (the JSON of `RegistryState`); `meta` names the current snapshot. A snapshot is
//! written at recovery and after [`COMPACT_AFTER_BATCHES`] batches.
//!
//! Every write is fenced: its transaction holds only while the leader key still has the
//! create revision of the term that made this registry (`Fence`). A master whose lease
//! expired, or whose key was replaced by a newer leader's, cannot write: its append
//! fails with `Unavailable` naming the fence and nothing lands. Recovery reads with
//! linearizable ranges, so a new leader sees every write an old one was answered for.
//! This module folds the log into `RegistryState`; it never interprets the state.

use std::sync::Arc;

use agora_etcd::log::{FencedLog, LogError};
use tokio::sync::Mutex;

pub use agora_etcd::log::Fence;

use super::{Registry, RegistryError, RegistryFuture, RegistryOp, RegistryState};
use crate::ha::etcd::EtcdClient;

/// Batches in the log before it is folded into a new snapshot.
pub const COMPACT_AFTER_BATCHES: u64 = 1_000;

pub struct EtcdRegistry {
    root: String,
    inner: Mutex<Inner>,
}

struct Inner {
    log: FencedLog,
    /// The state as stored (recovered, plus every batch since): a snapshot's source.
    state: RegistryState,
}

impl EtcdRegistry {
    /// The registry under `prefix`, writing as the term `fence` names.
    pub fn new(client: Arc<EtcdClient>, prefix: &str, fence: Fence) -> Self {
        let root = format!("{}/registry", prefix.trim_end_matches('/'));
        Self {
            inner: Mutex::new(Inner {
                log: FencedLog::new(client, root.clone(), fence),
                state: RegistryState::default(),
            }),
            root,
        }
    }

    fn corrupt(&self, what: &str, line: usize, reason: impl ToString) -> RegistryError {
        RegistryError::Corrupt {
            path: format!("etcd:{}/{what}", self.root),
            line,
            reason: reason.to_string(),
        }
    }

    fn error(&self, e: LogError) -> RegistryError {
        match e {
            LogError::Corrupt { what, reason } => RegistryError::Corrupt {
                path: format!("etcd:{what}"),
                line: 0,
                reason,
            },
            e => RegistryError::Unavailable(e.to_string()),
        }
    }

    async fn compact(&self, inner: &mut Inner) -> Result<(), RegistryError> {
        let text = serde_json::to_vec(&inner.state).map_err(|e| self.corrupt("snap", 0, e))?;
        inner.log.compact(&text).await.map_err(|e| self.error(e))
    }

    async fn append_batch(&self, ops: Vec<RegistryOp>) -> Result<(), RegistryError> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut inner = self.inner.lock().await;
        let value = serde_json::to_vec(&ops).map_err(|e| self.corrupt("log", 0, e))?;
        inner.log.append(value).await.map_err(|e| self.error(e))?;
        ops.iter().for_each(|op| inner.state.apply(op));
        if inner.log.logged() >= COMPACT_AFTER_BATCHES {
            self.compact(&mut inner).await?;
        }
        Ok(())
    }

    async fn recover_all(&self) -> Result<RegistryState, RegistryError> {
        let mut inner = self.inner.lock().await;
        let stored = inner.log.read().await.map_err(|e| self.error(e))?;
        let mut state = match &stored.snapshot {
            Some(bytes) => {
                serde_json::from_slice(bytes).map_err(|e| self.corrupt("snap", e.line(), e))?
            }
            None => RegistryState::default(),
        };
        for (i, entry) in stored.entries.iter().enumerate() {
            let ops: Vec<RegistryOp> =
                serde_json::from_slice(entry).map_err(|e| self.corrupt("log", i + 1, e))?;
            ops.iter().for_each(|op| state.apply(op));
        }
        inner.state = state;
        if inner.log.logged() > 0 {
            self.compact(&mut inner).await?;
        }
        Ok(inner.state.clone())
    }
}

impl Registry for EtcdRegistry {
    fn recover(&self) -> RegistryFuture<'_, RegistryState> {
        Box::pin(self.recover_all())
    }

    fn append(&self, ops: Vec<RegistryOp>) -> RegistryFuture<'_, ()> {
        Box::pin(self.append_batch(ops))
    }
}
