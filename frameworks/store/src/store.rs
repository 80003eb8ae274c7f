//! A small durable key-value store: named tables of string keys and byte values (JSON
//! documents through the `*_json` helpers), changed by batches that commit atomically and
//! durably, on one of two [`Backend`]s: a redb file (one daemon, the default) or etcd
//! (several instances, one leader: `crate::etcd_store`).
//!
//! [`Store`] owns the choice of backend and checks table names; it must never interpret
//! values, never report a batch as committed before it is durable (redb: fsync before
//! `commit` returns; etcd: stored on a quorum), and never hold a transaction across an
//! `.await` (every call is synchronous and short). redb locks the file: a second opener
//! (another daemon on the same data directory) is refused.

use std::path::Path;

use redb::{Database, Durability, ReadableTable, TableDefinition, TableError};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Longest table name accepted (no `/` in it: the etcd backend nests keys under it).
pub const TABLE_NAME_MAX_BYTES: usize = 64;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb refused (I/O error, corruption, the file is locked by another process, ...).
    #[error("store {context}: {message}")]
    Db {
        /// What the store was doing.
        context: &'static str,
        /// redb's explanation.
        message: String,
    },
    /// A stored document does not decode as the type asked for.
    #[error("store: document {table}/{key} does not decode: {message}")]
    Decode {
        /// The table.
        table: String,
        /// The key.
        key: String,
        /// serde's explanation.
        message: String,
    },
    /// A value could not be encoded.
    #[error("store: cannot encode {table}/{key}: {message}")]
    Encode {
        /// The table.
        table: String,
        /// The key.
        key: String,
        /// serde's explanation.
        message: String,
    },
}

fn db<E: std::fmt::Display>(context: &'static str) -> impl Fn(E) -> StoreError {
    move |e| StoreError::Db {
        context,
        message: e.to_string(),
    }
}

/// One change of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Store `value` under `key`, replacing what was there.
    Put {
        table: &'static str,
        key: String,
        value: Vec<u8>,
    },
    /// Remove `key` (nothing if absent).
    Delete { table: &'static str, key: String },
    /// Remove every key starting with `prefix`.
    DeletePrefix { table: &'static str, prefix: String },
}

impl Change {
    /// The table the change is in.
    pub fn table(&self) -> &'static str {
        match self {
            Change::Put { table, .. }
            | Change::Delete { table, .. }
            | Change::DeletePrefix { table, .. } => table,
        }
    }
}

/// Changes that commit together or not at all, in order (a later change of the same key
/// wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    changes: Vec<Change>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Store `value` under `key` in `table`.
    pub fn put_bytes(&mut self, table: &'static str, key: impl Into<String>, value: Vec<u8>) {
        self.changes.push(Change::Put {
            table,
            key: key.into(),
            value,
        });
    }

    /// Store `value` as JSON under `key` in `table`.
    pub fn put_json<T: Serialize + ?Sized>(
        &mut self,
        table: &'static str,
        key: impl Into<String>,
        value: &T,
    ) -> Result<(), StoreError> {
        let key = key.into();
        let value = serde_json::to_vec(value).map_err(|e| StoreError::Encode {
            table: table.to_string(),
            key: key.clone(),
            message: e.to_string(),
        })?;
        self.put_bytes(table, key, value);
        Ok(())
    }

    /// Remove `key` from `table` (nothing if absent).
    pub fn delete(&mut self, table: &'static str, key: impl Into<String>) {
        self.changes.push(Change::Delete {
            table,
            key: key.into(),
        });
    }

    /// Remove every key of `table` starting with `prefix`.
    pub fn delete_prefix(&mut self, table: &'static str, prefix: impl Into<String>) {
        self.changes.push(Change::DeletePrefix {
            table,
            prefix: prefix.into(),
        });
    }

    /// Append every change of `other`, after this batch's own.
    pub fn append(&mut self, other: Batch) {
        self.changes.extend(other.changes);
    }

    /// Whether there is nothing to commit.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// How many changes the batch holds.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// The changes, in order.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }
}

/// Where a [`Store`] keeps its tables. Every call is synchronous; table names are
/// checked by the [`Store`] before they reach a backend.
pub trait Backend: Send + Sync {
    /// Apply `batch` atomically; durable when this returns `Ok`. A refused batch changes
    /// nothing.
    fn commit(&self, batch: &Batch) -> Result<(), StoreError>;
    /// The value under `key` in `table`.
    fn get_bytes(&self, table: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every `(key, value)` of `table` whose key starts with `prefix`, in key order.
    fn scan_bytes(&self, table: &str, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
}

/// The database. Share it behind an `Arc`; the backends serialise writers themselves.
pub struct Store {
    backend: Box<dyn Backend>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// The redb file backend.
struct Redb {
    db: Database,
}

fn table_def(name: &str) -> TableDefinition<'_, &'static str, &'static [u8]> {
    TableDefinition::new(name)
}

fn check_table(table: &str) -> Result<(), StoreError> {
    if table.is_empty() || table.len() > TABLE_NAME_MAX_BYTES || table.contains('/') {
        return Err(StoreError::Db {
            context: "table name",
            message: format!(
                "table name {table:?} must be 1..{TABLE_NAME_MAX_BYTES} bytes, without '/'"
            ),
        });
    }
    Ok(())
}

impl Store {
    /// Open (or create) the redb database file at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = Database::create(path).map_err(|e| StoreError::Db {
            context: "open",
            message: format!("{}: {e}", path.display()),
        })?;
        Ok(Store::on(Box::new(Redb { db })))
    }

    /// A store on `backend` (the etcd one: `crate::etcd_store::open`).
    pub fn on(backend: Box<dyn Backend>) -> Store {
        Store { backend }
    }

    /// Apply `batch` atomically; durable when this returns `Ok`. A refused batch (a bad
    /// table name, an I/O error, a lost term) changes nothing.
    pub fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        for c in &batch.changes {
            check_table(c.table())?;
        }
        self.backend.commit(batch)
    }

    /// The value under `key` in `table`.
    pub fn get_bytes(&self, table: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_table(table)?;
        self.backend.get_bytes(table, key)
    }

    /// Every `(key, value)` of `table` whose key starts with `prefix`, in key order; empty
    /// if the table was never written.
    pub fn scan_bytes(
        &self,
        table: &str,
        prefix: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        check_table(table)?;
        self.backend.scan_bytes(table, prefix)
    }
}

fn decode<T: DeserializeOwned>(table: &str, key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Decode {
        table: table.to_string(),
        key: key.to_string(),
        message: e.to_string(),
    })
}

impl Backend for Redb {
    fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().map_err(db("begin write"))?;
        tx.set_durability(Durability::Immediate);
        // One open per table; within a table the changes keep their order (keys of
        // different tables are independent, so the order across tables does not matter).
        let mut names: Vec<&'static str> = batch.changes.iter().map(Change::table).collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            let mut t = tx.open_table(table_def(name)).map_err(db("open table"))?;
            for change in batch.changes.iter().filter(|c| c.table() == name) {
                match change {
                    Change::Put { key, value, .. } => {
                        t.insert(key.as_str(), value.as_slice())
                            .map_err(db("insert"))?;
                    }
                    Change::Delete { key, .. } => {
                        t.remove(key.as_str()).map_err(db("remove"))?;
                    }
                    Change::DeletePrefix { prefix, .. } => {
                        let mut keys = Vec::new();
                        for item in t.range(prefix.as_str()..).map_err(db("range"))? {
                            let (k, _) = item.map_err(db("range"))?;
                            let k = k.value();
                            if !k.starts_with(prefix.as_str()) {
                                break;
                            }
                            keys.push(k.to_string());
                        }
                        for k in keys {
                            t.remove(k.as_str()).map_err(db("remove"))?;
                        }
                    }
                }
            }
        }
        tx.commit().map_err(db("commit"))?;
        Ok(())
    }

    fn get_bytes(&self, table: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(db("begin read"))?;
        let t = match tx.open_table(table_def(table)) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db("open table")(e)),
        };
        Ok(t.get(key).map_err(db("get"))?.map(|v| v.value().to_vec()))
    }

    fn scan_bytes(&self, table: &str, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let tx = self.db.begin_read().map_err(db("begin read"))?;
        let t = match tx.open_table(table_def(table)) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(db("open table")(e)),
        };
        let mut out = Vec::new();
        for item in t.range(prefix..).map_err(db("range"))? {
            let (k, v) = item.map_err(db("range"))?;
            let k = k.value();
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_string(), v.value().to_vec()));
        }
        Ok(out)
    }
}

impl Store {
    /// The JSON document under `key` in `table`.
    pub fn get_json<T: DeserializeOwned>(
        &self,
        table: &str,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        self.get_bytes(table, key)?
            .map(|v| decode(table, key, &v))
            .transpose()
    }

    /// Every `(key, document)` of `table` whose key starts with `prefix`, in key order.
    pub fn scan_json<T: DeserializeOwned>(
        &self,
        table: &str,
        prefix: &str,
    ) -> Result<Vec<(String, T)>, StoreError> {
        self.scan_bytes(table, prefix)?
            .into_iter()
            .map(|(k, v)| decode(table, &k, &v).map(|d| (k, d)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn dir(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!(
            "agora-framework-store-{tag}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }

    #[test]
    fn batches_commit_together_and_survive_reopening() {
        let d = dir("reopen");
        let path = d.0.join("state.redb");
        {
            let s = Store::open(&path).unwrap();
            assert!(
                s.scan_bytes("jobs", "").unwrap().is_empty(),
                "unknown table reads empty"
            );
            let mut b = Batch::new();
            b.put_bytes("jobs", "a", b"1".to_vec());
            b.put_bytes("jobs", "b", b"2".to_vec());
            b.put_bytes("meta", "id", b"fw".to_vec());
            b.put_bytes("jobs", "a", b"3".to_vec());
            s.commit(&b).unwrap();
            let mut d = Batch::new();
            d.delete("jobs", "b");
            d.delete("jobs", "never-there");
            s.commit(&d).unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(
            s.scan_bytes("jobs", "").unwrap(),
            vec![("a".into(), b"3".to_vec())]
        );
        assert_eq!(s.get_bytes("meta", "id").unwrap(), Some(b"fw".to_vec()));
        assert_eq!(s.get_bytes("meta", "nope").unwrap(), None);
        assert_eq!(s.get_bytes("nosuch", "x").unwrap(), None);
    }

    #[test]
    fn json_documents_by_prefix_and_delete_prefix() {
        let d = dir("json");
        let path = d.0.join("db.redb");
        {
            let s = Store::open(&path).unwrap();
            assert_eq!(s.get_json::<u32>("t", "a").unwrap(), None);
            let mut b = Batch::new();
            b.put_json("t", "a/1", &1u32).unwrap();
            b.put_json("t", "a/2", &2u32).unwrap();
            b.put_json("t", "b/1", &3u32).unwrap();
            b.put_json("u", "x", "text").unwrap();
            s.commit(&b).unwrap();
            assert_eq!(s.get_json::<u32>("t", "a/2").unwrap(), Some(2));
            let a: Vec<(String, u32)> = s.scan_json("t", "a/").unwrap();
            assert_eq!(a, vec![("a/1".into(), 1), ("a/2".into(), 2)]);
            let mut b = Batch::new();
            b.delete("t", "b/1");
            b.delete_prefix("t", "a/");
            b.put_json("t", "c", &4u32).unwrap();
            s.commit(&b).unwrap();
        }
        let s = Store::open(&path).unwrap();
        let all: Vec<(String, u32)> = s.scan_json("t", "").unwrap();
        assert_eq!(all, vec![("c".into(), 4)]);
        assert_eq!(s.get_json::<String>("u", "x").unwrap(), Some("text".into()));
    }

    #[test]
    fn a_refused_batch_changes_nothing() {
        let d = dir("atomic");
        let s = Store::open(&d.0.join("db.redb")).unwrap();
        let mut b = Batch::new();
        b.put_json("t", "a", &1u32).unwrap();
        s.commit(&b).unwrap();
        let mut b = Batch::new();
        b.put_json("t", "a", &2u32).unwrap();
        b.put_json("", "bad", &3u32).unwrap();
        assert!(s.commit(&b).is_err());
        assert_eq!(s.get_json::<u32>("t", "a").unwrap(), Some(1));
    }

    #[test]
    fn wrong_type_is_a_decode_error_naming_the_document() {
        let d = dir("decode");
        let s = Store::open(&d.0.join("db.redb")).unwrap();
        let mut b = Batch::new();
        b.put_json("t", "k", "text").unwrap();
        s.commit(&b).unwrap();
        let e = s.get_json::<u32>("t", "k").unwrap_err().to_string();
        assert!(e.contains("t/k"), "{e}");
    }

    #[test]
    fn a_second_open_of_the_same_file_is_refused() {
        let d = dir("lock");
        let path = d.0.join("state.redb");
        let _first = Store::open(&path).unwrap();
        assert!(
            Store::open(&path).is_err(),
            "two daemons must not share a store"
        );
    }
}
