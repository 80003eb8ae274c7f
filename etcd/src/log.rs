//! A fenced, replicated log of opaque entries with snapshots, in etcd: what a leader keeps
//! its state in (the framework daemons' store; the same layout as the master's registry).
//!
//! Layout under `<root>/`: `log/<seq>` (20 digits) holds one entry, written by one put in
//! one transaction, so an entry is atomic; `snap/<generation>/<chunk>` the chunks of a
//! snapshot (cut under etcd's request limit); `meta` names the current snapshot
//! (`{generation, chunks, last_seq}`). A snapshot becomes current in one transaction that
//! also deletes the log it absorbed and the previous snapshot.
//!
//! Every write is fenced: its transaction holds only while the leader key still has the
//! create revision of the term that opened the log ([`Fence`]). A leader whose lease
//! expired, or whose key was replaced by a newer leader's, cannot write: its append fails
//! with [`LogError::Fenced`] and nothing lands. Reads are linearizable ranges, so a new
//! leader sees every entry an old one was answered for.
//!
//! Owns the keys under `<root>` and the order of entries; it must never interpret an
//! entry or a snapshot (the caller folds them into its state).

use std::sync::Arc;

use agora_proto::etcd::{self, TxnRequest};

use crate::client::{self as kv, EtcdClient, EtcdError};

/// Largest snapshot chunk in bytes (etcd refuses requests over 1.5 MiB by default).
pub const SNAPSHOT_CHUNK_MAX_BYTES: usize = 512 * 1024;
/// Largest entry in bytes: one put must stay under etcd's default request limit
/// (1.5 MiB, `--max-request-bytes`) with room for the transaction around it.
pub const ENTRY_MAX_BYTES: usize = 1536 * 1024 - 4096;
/// Keys read per range call while reading the log.
const READ_PAGE_KEYS: i64 = 64;

/// What makes a write this leader's: the leader key and its create revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    pub key: Vec<u8>,
    pub revision: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// etcd did not answer, or an earlier write's outcome is unknown.
    #[error("{0}")]
    Unavailable(String),
    /// This leader's term is over: nothing was written.
    #[error("{0}")]
    Fenced(String),
    /// What is stored does not read back.
    #[error("etcd:{what}: {reason}")]
    Corrupt { what: String, reason: String },
    /// An entry larger than [`ENTRY_MAX_BYTES`]: refused before anything was sent.
    #[error("a log entry of {bytes} bytes is over the limit of {ENTRY_MAX_BYTES} bytes")]
    TooLarge { bytes: usize },
}

impl From<EtcdError> for LogError {
    fn from(e: EtcdError) -> Self {
        LogError::Unavailable(e.to_string())
    }
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Meta {
    generation: u64,
    chunks: u64,
    last_seq: u64,
}

/// What [`FencedLog::read`] found: the current snapshot (if any) and the entries after it,
/// in order.
#[derive(Debug, Default)]
pub struct Stored {
    pub snapshot: Option<Vec<u8>>,
    pub entries: Vec<Vec<u8>>,
}

/// The log of one leader's term. One writer: the leader holds it behind its own lock.
pub struct FencedLog {
    client: Arc<EtcdClient>,
    fence: Fence,
    root: String,
    next_seq: u64,
    /// Entries in the log since the current snapshot.
    logged: u64,
    generation: u64,
    /// Set when a write's outcome is unknown: every later append fails.
    broken: Option<String>,
}

impl FencedLog {
    /// The log under `root` (no trailing `/`), written as the term `fence` names. Call
    /// [`FencedLog::read`] before the first append.
    pub fn new(client: Arc<EtcdClient>, root: String, fence: Fence) -> Self {
        Self {
            client,
            fence,
            root: root.trim_end_matches('/').to_string(),
            next_seq: 1,
            logged: 0,
            generation: 0,
            broken: None,
        }
    }

    /// Entries appended since the last snapshot.
    pub fn logged(&self) -> u64 {
        self.logged
    }

    fn meta_key(&self) -> Vec<u8> {
        format!("{}/meta", self.root).into_bytes()
    }

    fn log_key(&self, seq: u64) -> Vec<u8> {
        format!("{}/log/{seq:020}", self.root).into_bytes()
    }

    fn log_prefix(&self) -> Vec<u8> {
        format!("{}/log/", self.root).into_bytes()
    }

    fn snap_prefix(&self, generation: u64) -> Vec<u8> {
        format!("{}/snap/{generation:020}/", self.root).into_bytes()
    }

    fn fenced(&self) -> etcd::Compare {
        kv::created_at(&self.fence.key, self.fence.revision)
    }

    fn corrupt(&self, what: &str, reason: impl ToString) -> LogError {
        LogError::Corrupt {
            what: format!("{}/{what}", self.root),
            reason: reason.to_string(),
        }
    }

    /// The refusal when a fenced write did not hold: who holds the key now.
    async fn fence_error(&self) -> LogError {
        let holder = match self.client.get(&self.fence.key).await {
            Ok(Some(k)) => format!(
                "the leader key is now held by term {} ({})",
                k.create_revision,
                String::from_utf8_lossy(&k.value)
            ),
            Ok(None) => "no one holds the leader key".to_string(),
            Err(e) => format!("cannot read the leader key: {e}"),
        };
        LogError::Fenced(format!(
            "fenced: this leader's term {} is over ({holder}); the write was not stored",
            self.fence.revision
        ))
    }

    /// Every key-value in `[start, end)`, a page at a time.
    async fn range_all(&self, start: Vec<u8>, end: &[u8]) -> Result<Vec<etcd::KeyValue>, LogError> {
        let mut out = Vec::new();
        let mut from = start;
        loop {
            let r = self.client.range(&from, end, READ_PAGE_KEYS).await?;
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

    /// Read the current snapshot and the entries after it, and position this log after
    /// them. The caller folds them into its state and then calls [`FencedLog::compact`]
    /// when [`FencedLog::logged`] is not 0, so the next leader reads less.
    pub async fn read(&mut self) -> Result<Stored, LogError> {
        let meta: Meta = match self.client.get(&self.meta_key()).await? {
            Some(k) => serde_json::from_slice(&k.value).map_err(|e| self.corrupt("meta", e))?,
            None => Meta::default(),
        };
        let mut stored = Stored::default();
        if meta.chunks > 0 {
            let prefix = self.snap_prefix(meta.generation);
            let chunks = self
                .range_all(prefix.clone(), &kv::prefix_end(&prefix))
                .await?;
            if chunks.len() as u64 != meta.chunks {
                return Err(self.corrupt(
                    "snap",
                    format!(
                        "snapshot {} has {} of its {} chunks",
                        meta.generation,
                        chunks.len(),
                        meta.chunks
                    ),
                ));
            }
            stored.snapshot = Some(chunks.into_iter().flat_map(|k| k.value).collect());
        }
        let entries = self
            .range_all(
                self.log_key(meta.last_seq + 1),
                &kv::prefix_end(&self.log_prefix()),
            )
            .await?;
        let mut last = meta.last_seq;
        for k in entries {
            let key = String::from_utf8_lossy(&k.key).into_owned();
            let seq: u64 = key
                .rsplit('/')
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| self.corrupt("log", format!("bad key {key}")))?;
            if seq != last + 1 {
                return Err(self.corrupt("log", format!("entry {seq} follows {last}")));
            }
            last = seq;
            stored.entries.push(k.value);
        }
        self.generation = meta.generation;
        self.next_seq = last + 1;
        self.logged = last - meta.last_seq;
        self.broken = None;
        Ok(stored)
    }

    /// A transaction that holds only while this leader's term does.
    async fn fenced_txn(&self, success: Vec<etcd::RequestOp>) -> Result<(), LogError> {
        let r = self
            .client
            .txn(TxnRequest {
                compare: vec![self.fenced()],
                success,
                failure: Vec::new(),
            })
            .await?;
        if r.succeeded {
            Ok(())
        } else {
            Err(self.fence_error().await)
        }
    }

    /// Append one entry; stored (on a quorum of etcd) when this returns `Ok`. After an
    /// error whose outcome is unknown every later append fails: the leader must stop and
    /// its successor read what landed.
    pub async fn append(&mut self, entry: Vec<u8>) -> Result<(), LogError> {
        if let Some(why) = &self.broken {
            return Err(LogError::Unavailable(why.clone()));
        }
        if entry.len() > ENTRY_MAX_BYTES {
            return Err(LogError::TooLarge { bytes: entry.len() });
        }
        let key = self.log_key(self.next_seq);
        let txn = TxnRequest {
            compare: vec![self.fenced(), kv::created_at(&key, 0)],
            success: vec![kv::put(&key, entry.clone(), 0)],
            failure: vec![kv::get_op(&key)],
        };
        let stored = match self.client.txn(txn).await {
            Ok(r) if r.succeeded => true,
            // Tried again on another endpoint after the first attempt landed: the entry
            // is ours if it holds exactly these bytes and the term still holds.
            Ok(r) => {
                kv::first_range_kv(&r).is_some_and(|k| k.value == entry)
                    && matches!(self.client.get(&self.fence.key).await,
                        Ok(Some(k)) if k.create_revision == self.fence.revision)
            }
            Err(e) => {
                let why = format!("an earlier write's outcome is unknown ({e})");
                self.broken = Some(why);
                return Err(e.into());
            }
        };
        if !stored {
            return Err(self.fence_error().await);
        }
        self.next_seq += 1;
        self.logged += 1;
        Ok(())
    }

    /// Write `snapshot` (the state after every entry so far) as the next generation and make
    /// it current, deleting the log it absorbed and the previous snapshot.
    pub async fn compact(&mut self, snapshot: &[u8]) -> Result<(), LogError> {
        if let Some(why) = &self.broken {
            return Err(LogError::Unavailable(why.clone()));
        }
        let generation = self.generation + 1;
        let prefix = self.snap_prefix(generation);
        // Chunks an earlier compaction to this generation left before it was cut short.
        self.fenced_txn(vec![kv::delete_range_op(&prefix, &kv::prefix_end(&prefix))])
            .await?;
        let chunks: Vec<&[u8]> = snapshot.chunks(SNAPSHOT_CHUNK_MAX_BYTES).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let mut key = prefix.clone();
            key.extend(format!("{i:06}").bytes());
            self.fenced_txn(vec![kv::put(&key, chunk.to_vec(), 0)])
                .await?;
        }
        let last_seq = self.next_seq - 1;
        let meta = Meta {
            generation,
            chunks: chunks.len() as u64,
            last_seq,
        };
        let old = self.snap_prefix(self.generation);
        self.fenced_txn(vec![
            kv::put(
                &self.meta_key(),
                serde_json::to_vec(&meta).unwrap_or_default(),
                0,
            ),
            kv::delete_range_op(&self.log_prefix(), &self.log_key(last_seq + 1)),
            kv::delete_range_op(&old, &kv::prefix_end(&old)),
        ])
        .await?;
        self.generation = generation;
        self.logged = 0;
        Ok(())
    }
}
