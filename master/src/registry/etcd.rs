//! `EtcdRegistry`: the registry in etcd, for masters elected through etcd (`crate::ha`).
//!
//! Layout under `<prefix>/registry/`: `log/<seq>` (20 digits) holds one batch (a JSON
//! array of ops, as a `FileRegistry` log line); `snap/<generation>/<chunk>` the chunks of a
//! snapshot (the JSON of `RegistryState`, cut in pieces under etcd's request limit);
//! `meta` names the current snapshot (`{generation, chunks, last_seq}`). A batch is one put in
//! one transaction, so it is atomic; a snapshot becomes current in one transaction that
//! also deletes the log it absorbed and the previous snapshot.
//!
//! Every write is fenced: its transaction holds only while the leader key still has the
//! create revision of the term that made this registry (`Fence`). A master whose lease
//! expired, or whose key was replaced by a newer leader's, cannot write: its append
//! fails with `Unavailable` naming the fence and nothing lands. Recovery reads with
//! linearizable ranges, so a new leader sees every write an old one was answered for.
//! This module only stores; it never interprets the state.

use std::sync::Arc;

use agora_proto::etcd::TxnRequest;
use tokio::sync::Mutex;

use super::{Registry, RegistryError, RegistryFuture, RegistryOp, RegistryState};
use crate::ha::etcd::{self as kv, EtcdClient, EtcdError};

/// Largest snapshot chunk in bytes (etcd refuses requests over 1.5 MiB by default).
pub const SNAPSHOT_CHUNK_MAX_BYTES: usize = 512 * 1024;
/// Batches in the log before it is folded into a new snapshot.
pub const COMPACT_AFTER_BATCHES: u64 = 1_000;
/// Keys read per range call while recovering.
const RECOVER_PAGE_KEYS: i64 = 64;

/// What makes a write this leader's: the leader key and its create revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    pub key: Vec<u8>,
    pub revision: i64,
}

pub struct EtcdRegistry {
    client: Arc<EtcdClient>,
    fence: Fence,
    root: String,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The state as stored (recovered, plus every batch since): a snapshot's source.
    state: RegistryState,
    /// The next batch's sequence number.
    next_seq: u64,
    /// Batches in the log since the current snapshot.
    logged: u64,
    generation: u64,
    /// Set when a write's outcome is unknown: every later append fails.
    broken: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Meta {
    generation: u64,
    chunks: u64,
    last_seq: u64,
}

fn unavailable(e: EtcdError) -> RegistryError {
    RegistryError::Unavailable(e.to_string())
}

impl EtcdRegistry {
    /// The registry under `prefix`, writing as the term `fence` names.
    pub fn new(client: Arc<EtcdClient>, prefix: &str, fence: Fence) -> Self {
        Self {
            client,
            fence,
            root: format!("{}/registry", prefix.trim_end_matches('/')),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn meta_key(&self) -> Vec<u8> {
        format!("{}/meta", self.root).into_bytes()
    }

    fn log_key(&self, seq: u64) -> Vec<u8> {
        format!("{}/log/{seq:020}", self.root).into_bytes()
    }

    fn snap_prefix(&self, generation: u64) -> Vec<u8> {
        format!("{}/snap/{generation:020}/", self.root).into_bytes()
    }

    fn fenced(&self) -> agora_proto::etcd::Compare {
        kv::created_at(&self.fence.key, self.fence.revision)
    }

    /// The refusal when a fenced write did not hold: who holds the key now.
    async fn fence_error(&self) -> RegistryError {
        let holder = match self.client.get(&self.fence.key).await {
            Ok(Some(k)) => format!(
                "the leader key is now held by term {} ({})",
                k.create_revision,
                String::from_utf8_lossy(&k.value)
            ),
            Ok(None) => "no master holds the leader key".to_string(),
            Err(e) => format!("cannot read the leader key: {e}"),
        };
        RegistryError::Unavailable(format!(
            "fenced: this master's term {} is over ({holder}); the write was not stored",
            self.fence.revision
        ))
    }

    /// Every key-value in `[start, end)`, a page at a time.
    async fn range_all(
        &self,
        start: Vec<u8>,
        end: &[u8],
    ) -> Result<Vec<agora_proto::etcd::KeyValue>, RegistryError> {
        let mut out = Vec::new();
        let mut from = start;
        loop {
            let r = self
                .client
                .range(&from, end, RECOVER_PAGE_KEYS)
                .await
                .map_err(unavailable)?;
            let more = r.more;
            if let Some(last) = r.kvs.last() {
                from = last.key.clone();
                from.push(0);
            }
            out.extend(r.kvs);
            if !more {
                return Ok(out);
            }
        }
    }

    fn corrupt(&self, what: &str, line: usize, reason: impl ToString) -> RegistryError {
        RegistryError::Corrupt {
            path: format!("etcd:{}/{what}", self.root),
            line,
            reason: reason.to_string(),
        }
    }

    async fn read(&self) -> Result<(RegistryState, Meta, u64), RegistryError> {
        let meta: Meta = match self
            .client
            .get(&self.meta_key())
            .await
            .map_err(unavailable)?
        {
            Some(k) => serde_json::from_slice(&k.value).map_err(|e| self.corrupt("meta", 0, e))?,
            None => Meta::default(),
        };
        let mut state = RegistryState::default();
        if meta.chunks > 0 {
            let prefix = self.snap_prefix(meta.generation);
            let chunks = self
                .range_all(prefix.clone(), &kv::prefix_end(&prefix))
                .await?;
            if chunks.len() as u64 != meta.chunks {
                return Err(self.corrupt(
                    "snap",
                    0,
                    format!(
                        "snapshot {} has {} of its {} chunks",
                        meta.generation,
                        chunks.len(),
                        meta.chunks
                    ),
                ));
            }
            let bytes: Vec<u8> = chunks.into_iter().flat_map(|k| k.value).collect();
            state =
                serde_json::from_slice(&bytes).map_err(|e| self.corrupt("snap", e.line(), e))?;
        }
        let log_prefix = format!("{}/log/", self.root).into_bytes();
        let entries = self
            .range_all(
                self.log_key(meta.last_seq + 1),
                &kv::prefix_end(&log_prefix),
            )
            .await?;
        let mut last = meta.last_seq;
        for (i, k) in entries.iter().enumerate() {
            let ops: Vec<RegistryOp> =
                serde_json::from_slice(&k.value).map_err(|e| self.corrupt("log", i + 1, e))?;
            ops.iter().for_each(|op| state.apply(op));
            let key = String::from_utf8_lossy(&k.key);
            last = key
                .rsplit('/')
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| self.corrupt("log", i + 1, format!("bad key {key}")))?;
        }
        let logged = last - meta.last_seq;
        Ok((state, meta, logged))
    }

    /// Write `inner.state` as snapshot `generation + 1` and make it current, deleting the log
    /// it absorbed and the previous snapshot.
    async fn compact(&self, inner: &mut Inner) -> Result<(), RegistryError> {
        let text = serde_json::to_vec(&inner.state).map_err(|e| self.corrupt("snap", 0, e))?;
        let generation = inner.generation + 1;
        let prefix = self.snap_prefix(generation);
        let chunks: Vec<&[u8]> = text.chunks(SNAPSHOT_CHUNK_MAX_BYTES).collect();
        // Chunks an earlier compaction to this generation left before it was cut short.
        self.fenced_txn(
            vec![kv::delete_range_op(&prefix, &kv::prefix_end(&prefix))],
            Vec::new(),
        )
        .await?;
        for (i, chunk) in chunks.iter().enumerate() {
            let mut key = prefix.clone();
            key.extend(format!("{i:06}").bytes());
            self.fenced_txn(vec![kv::put(&key, chunk.to_vec(), 0)], Vec::new())
                .await?;
        }
        let last_seq = inner.next_seq - 1;
        let meta = Meta {
            generation,
            chunks: chunks.len() as u64,
            last_seq,
        };
        let old = self.snap_prefix(inner.generation);
        let log_prefix = format!("{}/log/", self.root).into_bytes();
        self.fenced_txn(
            vec![
                kv::put(
                    &self.meta_key(),
                    serde_json::to_vec(&meta).unwrap_or_default(),
                    0,
                ),
                kv::delete_range_op(&log_prefix, &self.log_key(last_seq + 1)),
                kv::delete_range_op(&old, &kv::prefix_end(&old)),
            ],
            Vec::new(),
        )
        .await?;
        inner.generation = generation;
        inner.logged = 0;
        Ok(())
    }

    /// A transaction that holds only while this master's term does.
    async fn fenced_txn(
        &self,
        success: Vec<agora_proto::etcd::RequestOp>,
        mut compare: Vec<agora_proto::etcd::Compare>,
    ) -> Result<(), RegistryError> {
        compare.insert(0, self.fenced());
        let r = self
            .client
            .txn(TxnRequest {
                compare,
                success,
                failure: Vec::new(),
            })
            .await
            .map_err(unavailable)?;
        if r.succeeded {
            Ok(())
        } else {
            Err(self.fence_error().await)
        }
    }

    async fn append_batch(&self, ops: Vec<RegistryOp>) -> Result<(), RegistryError> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut inner = self.inner.lock().await;
        if let Some(why) = &inner.broken {
            return Err(RegistryError::Unavailable(why.clone()));
        }
        let value = serde_json::to_vec(&ops).map_err(|e| self.corrupt("log", 0, e))?;
        let key = self.log_key(inner.next_seq);
        let txn = TxnRequest {
            compare: vec![self.fenced(), kv::created_at(&key, 0)],
            success: vec![kv::put(&key, value.clone(), 0)],
            failure: vec![kv::get_op(&key)],
        };
        let stored = match self.client.txn(txn).await {
            Ok(r) if r.succeeded => true,
            // Tried again on another endpoint after the first attempt landed: the entry
            // is ours if it holds exactly this batch and the term still holds.
            Ok(r) => {
                kv::first_range_kv(&r).is_some_and(|k| k.value == value)
                    && matches!(self.client.get(&self.fence.key).await,
                        Ok(Some(k)) if k.create_revision == self.fence.revision)
            }
            Err(e) => {
                // Unknown whether it landed: the master stops on this error, and a later
                // append here would guess.
                let why = format!("an earlier registry write's outcome is unknown ({e})");
                inner.broken = Some(why);
                return Err(unavailable(e));
            }
        };
        if !stored {
            return Err(self.fence_error().await);
        }
        ops.iter().for_each(|op| inner.state.apply(op));
        inner.next_seq += 1;
        inner.logged += 1;
        if inner.logged >= COMPACT_AFTER_BATCHES {
            self.compact(&mut inner).await?;
        }
        Ok(())
    }

    async fn recover_all(&self) -> Result<RegistryState, RegistryError> {
        let mut inner = self.inner.lock().await;
        let (state, meta, logged) = self.read().await?;
        inner.state = state;
        inner.generation = meta.generation;
        inner.next_seq = meta.last_seq + logged + 1;
        inner.logged = logged;
        inner.broken = None;
        if logged > 0 {
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
