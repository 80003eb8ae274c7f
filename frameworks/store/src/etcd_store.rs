//! The store's tables in etcd, for a daemon that runs as several instances with one leader
//! (`crate::ha`): the elected instance opens it with its term's [`Fence`], and every batch
//! it commits is one entry of a fenced log (`agora_etcd::log`), so a deposed leader's
//! commit fails instead of landing and the next leader reads every batch an old one was
//! answered for.
//!
//! The tables are read from etcd once, at open, and kept in memory: the leader is the only
//! writer, so its copy is what etcd holds. Reads are served from that copy; a commit
//! returns once etcd stored the batch (on a quorum) and the copy has it.
//!
//! etcd is spoken asynchronously, the [`Backend`] is synchronous (as redb is): one thread
//! per open store runs its own runtime and client and does every etcd call; a commit waits
//! for it at most [`COMMIT_WAIT_MAX_MS`]. After a commit whose outcome is unknown (timed
//! out, etcd unreachable) every later commit fails: the daemon must stop, and whoever leads
//! next reads what landed. Owns the encoding of batches and snapshots; it must never decide
//! whether this process leads (that is the election's), nor write without the fence.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agora_etcd::log::{Fence, FencedLog, LogError};
use agora_etcd::{EtcdClient, EtcdTls};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::store::{Backend, Batch, Change, Store, StoreError};

/// Longest a commit waits for etcd before it is given up as failed (its outcome unknown):
/// the client's own limit is two seconds per endpoint, tried once on each of three.
pub const COMMIT_WAIT_MAX_MS: u64 = 8_000;
/// Longest opening (reading every table from etcd) may take.
pub const OPEN_WAIT_MAX_MS: u64 = 60_000;
/// Batches in the log before the tables are written as a new snapshot.
pub const COMPACT_AFTER_BATCHES: u64 = 1_000;

type Tables = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// A value as stored in etcd's JSON: text when it is UTF-8 (the documents), else bytes.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Value {
    Text(String),
    Bytes(Vec<u8>),
}

impl Value {
    fn of(bytes: &[u8]) -> Value {
        match std::str::from_utf8(bytes) {
            Ok(s) => Value::Text(s.to_string()),
            Err(_) => Value::Bytes(bytes.to_vec()),
        }
    }

    fn into_bytes(self) -> Vec<u8> {
        match self {
            Value::Text(s) => s.into_bytes(),
            Value::Bytes(b) => b,
        }
    }
}

/// One change of a logged batch.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    Put {
        table: String,
        key: String,
        value: Value,
    },
    Delete {
        table: String,
        key: String,
    },
    DeletePrefix {
        table: String,
        prefix: String,
    },
}

fn ops_of(batch: &Batch) -> Vec<Op> {
    batch
        .changes()
        .iter()
        .map(|c| match c {
            Change::Put { table, key, value } => Op::Put {
                table: table.to_string(),
                key: key.clone(),
                value: Value::of(value),
            },
            Change::Delete { table, key } => Op::Delete {
                table: table.to_string(),
                key: key.clone(),
            },
            Change::DeletePrefix { table, prefix } => Op::DeletePrefix {
                table: table.to_string(),
                prefix: prefix.clone(),
            },
        })
        .collect()
}

fn apply(tables: &mut Tables, op: Op) {
    match op {
        Op::Put { table, key, value } => {
            tables
                .entry(table)
                .or_default()
                .insert(key, value.into_bytes());
        }
        Op::Delete { table, key } => {
            if let Some(t) = tables.get_mut(&table) {
                t.remove(&key);
            }
        }
        Op::DeletePrefix { table, prefix } => {
            if let Some(t) = tables.get_mut(&table) {
                t.retain(|k, _| !k.starts_with(&prefix));
            }
        }
    }
}

fn encode_snapshot(tables: &Tables) -> Vec<u8> {
    let view: BTreeMap<&String, BTreeMap<&String, Value>> = tables
        .iter()
        .map(|(t, kv)| (t, kv.iter().map(|(k, v)| (k, Value::of(v))).collect()))
        .collect();
    serde_json::to_vec(&view).unwrap_or_default()
}

fn decode_snapshot(bytes: &[u8]) -> Result<Tables, String> {
    let view: BTreeMap<String, BTreeMap<String, Value>> =
        serde_json::from_slice(bytes).map_err(|e| format!("snapshot: {e}"))?;
    Ok(view
        .into_iter()
        .map(|(t, kv)| {
            (
                t,
                kv.into_iter().map(|(k, v)| (k, v.into_bytes())).collect(),
            )
        })
        .collect())
}

fn log_error(context: &'static str) -> impl Fn(LogError) -> StoreError {
    move |e| StoreError::Db {
        context,
        message: e.to_string(),
    }
}

/// One commit for the etcd thread: the log entry, its changes, where to answer.
struct Job {
    entry: Vec<u8>,
    ops: Vec<Op>,
    reply: std::sync::mpsc::SyncSender<Result<(), StoreError>>,
}

struct EtcdBackend {
    tables: Arc<Mutex<Tables>>,
    jobs: mpsc::Sender<Job>,
    /// One commit at a time (the etcd thread's queue holds one job).
    commit_lock: Mutex<()>,
    /// Why commits fail from now on (an earlier commit's outcome is unknown).
    broken: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Open the tables under `<root>/` in etcd, as the leader whose term `fence` names: read
/// them (snapshot and log), fold the log into a new snapshot, and serve from memory.
/// Blocks for the reads (call it through `spawn_blocking` from async code).
pub fn open(
    endpoints: &[String],
    tls: Option<&EtcdTls>,
    root: String,
    fence: Fence,
) -> Result<Store, StoreError> {
    let client = EtcdClient::with_tls(endpoints, tls).map_err(|e| StoreError::Db {
        context: "etcd endpoints",
        message: e.to_string(),
    })?;
    let tables: Arc<Mutex<Tables>> = Arc::default();
    let (jobs, rx) = mpsc::channel::<Job>(1);
    let (opened_tx, opened) = std::sync::mpsc::sync_channel::<Result<(), StoreError>>(1);
    let thread_tables = tables.clone();
    std::thread::Builder::new()
        .name("store-etcd".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = opened_tx.send(Err(StoreError::Db {
                        context: "etcd runtime",
                        message: e.to_string(),
                    }));
                    return;
                }
            };
            rt.block_on(async move {
                let mut log = FencedLog::new(Arc::new(client), root, fence);
                match recover(&mut log, &thread_tables).await {
                    Ok(()) => {
                        let _ = opened_tx.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                }
                writer(log, thread_tables, rx).await;
            });
        })
        .map_err(|e| StoreError::Db {
            context: "etcd thread",
            message: e.to_string(),
        })?;
    match opened.recv_timeout(Duration::from_millis(OPEN_WAIT_MAX_MS)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            return Err(StoreError::Db {
                context: "open in etcd",
                message: format!("the tables were not read within {OPEN_WAIT_MAX_MS} ms"),
            });
        }
    }
    Ok(Store::on(Box::new(EtcdBackend {
        tables,
        jobs,
        commit_lock: Mutex::new(()),
        broken: Mutex::new(None),
    })))
}

/// Read the snapshot and the log into `tables`; fold the log into a new snapshot.
async fn recover(log: &mut FencedLog, tables: &Mutex<Tables>) -> Result<(), StoreError> {
    let stored = log.read().await.map_err(log_error("read from etcd"))?;
    let mut t = match &stored.snapshot {
        Some(bytes) => decode_snapshot(bytes).map_err(|message| StoreError::Db {
            context: "read from etcd",
            message,
        })?,
        None => Tables::new(),
    };
    for (i, entry) in stored.entries.iter().enumerate() {
        let ops: Vec<Op> = serde_json::from_slice(entry).map_err(|e| StoreError::Db {
            context: "read from etcd",
            message: format!("log entry {} after the snapshot: {e}", i + 1),
        })?;
        ops.into_iter().for_each(|op| apply(&mut t, op));
    }
    if log.logged() > 0 {
        log.compact(&encode_snapshot(&t))
            .await
            .map_err(log_error("snapshot to etcd"))?;
    }
    *lock(tables) = t;
    Ok(())
}

/// The etcd thread's loop: append each job's entry, then apply it to the tables.
async fn writer(mut log: FencedLog, tables: Arc<Mutex<Tables>>, mut rx: mpsc::Receiver<Job>) {
    while let Some(job) = rx.recv().await {
        let result = match log.append(job.entry).await {
            Ok(()) => {
                let snapshot = {
                    let mut t = lock(&tables);
                    job.ops.into_iter().for_each(|op| apply(&mut t, op));
                    (log.logged() >= COMPACT_AFTER_BATCHES).then(|| encode_snapshot(&t))
                };
                if let Some(s) = snapshot
                    && let Err(e) = log.compact(&s).await
                {
                    // The batch is stored; the log is folded at the next try or by the
                    // next leader.
                    tracing::warn!(error = %e, "cannot write a snapshot to etcd");
                }
                Ok(())
            }
            Err(e) => Err(log_error("commit to etcd")(e)),
        };
        let _ = job.reply.send(result);
    }
}

impl Backend for EtcdBackend {
    fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        let _one = lock(&self.commit_lock);
        if let Some(why) = lock(&self.broken).clone() {
            return Err(StoreError::Db {
                context: "commit to etcd",
                message: why,
            });
        }
        let ops = ops_of(batch);
        let entry = serde_json::to_vec(&ops).map_err(|e| StoreError::Db {
            context: "encode batch",
            message: e.to_string(),
        })?;
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let gone = || StoreError::Db {
            context: "commit to etcd",
            message: "the etcd writer stopped".into(),
        };
        self.jobs
            .try_send(Job { entry, ops, reply })
            .map_err(|_| gone())?;
        match answer.recv_timeout(Duration::from_millis(COMMIT_WAIT_MAX_MS)) {
            Ok(r) => r,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let why = format!(
                    "etcd did not confirm a commit within {COMMIT_WAIT_MAX_MS} ms; its outcome is unknown"
                );
                *lock(&self.broken) = Some(why.clone());
                Err(StoreError::Db {
                    context: "commit to etcd",
                    message: why,
                })
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(gone()),
        }
    }

    fn get_bytes(&self, table: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(lock(&self.tables)
            .get(table)
            .and_then(|t| t.get(key))
            .cloned())
    }

    fn scan_bytes(&self, table: &str, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let tables = lock(&self.tables);
        let Some(t) = tables.get(table) else {
            return Ok(Vec::new());
        };
        Ok(t.range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_and_snapshots_round_trip_text_and_bytes() {
        let mut b = Batch::new();
        b.put_bytes("t", "a/1", b"{\"x\":1}".to_vec());
        b.put_bytes("t", "a/2", vec![0xff, 0x00]);
        b.put_bytes("t", "b", b"plain".to_vec());
        b.put_bytes("u", "k", Vec::new());
        b.delete("t", "b");
        let entry = serde_json::to_vec(&ops_of(&b)).unwrap();
        let mut t = Tables::new();
        for op in serde_json::from_slice::<Vec<Op>>(&entry).unwrap() {
            apply(&mut t, op);
        }
        assert_eq!(t["t"]["a/2"], vec![0xff, 0x00]);
        assert_eq!(t["t"]["a/1"], b"{\"x\":1}".to_vec());
        assert!(!t["t"].contains_key("b"));
        assert_eq!(decode_snapshot(&encode_snapshot(&t)).unwrap(), t);
        let mut d = Batch::new();
        d.delete_prefix("t", "a/");
        for op in ops_of(&d) {
            apply(&mut t, op);
        }
        assert!(t["t"].is_empty());
        assert_eq!(t["u"]["k"], Vec::<u8>::new());
    }
}
