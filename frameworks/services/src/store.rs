//! A small durable document store on `redb`: named tables of JSON documents under string
//! keys, written in transactions that are on disk when `commit` returns.
//!
//! Generic on purpose: nothing here knows about apps or instances (see `state.rs` for the
//! services framework's tables), so another framework on redb (the jobs framework) can
//! share it by naming its own tables. Several changes go in one [`Batch`], applied
//! atomically: either all of them are durable or none is.
//!
//! This module owns the database file. It must never be opened twice (redb locks the
//! file; a second daemon on the same data directory fails at start), and never hold a
//! transaction across an `.await` (calls are synchronous and short).

use std::path::Path;

use redb::{Database, Durability, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Longest table name accepted.
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
#[derive(Debug, Clone, PartialEq)]
enum Change {
    Put {
        table: String,
        key: String,
        value: Vec<u8>,
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

/// Changes applied together by [`Store::commit`].
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Batch {
    changes: Vec<Change>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Whether the batch holds no change.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// How many changes the batch holds.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// Store `value` (as JSON) under `key` in `table`, replacing what was there.
    pub fn put<T: Serialize>(
        &mut self,
        table: &str,
        key: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        let value = serde_json::to_vec(value).map_err(|e| StoreError::Encode {
            table: table.to_string(),
            key: key.to_string(),
            message: e.to_string(),
        })?;
        self.changes.push(Change::Put {
            table: table.to_string(),
            key: key.to_string(),
            value,
        });
        Ok(())
    }

    /// Remove `key` from `table` (nothing if absent).
    pub fn delete(&mut self, table: &str, key: &str) {
        self.changes.push(Change::Delete {
            table: table.to_string(),
            key: key.to_string(),
        });
    }

    /// Remove every key of `table` starting with `prefix`.
    pub fn delete_prefix(&mut self, table: &str, prefix: &str) {
        self.changes.push(Change::DeletePrefix {
            table: table.to_string(),
            prefix: prefix.to_string(),
        });
    }
}

/// The database. Cheap to share behind an `Arc`; redb serialises writers itself.
pub struct Store {
    db: Database,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

fn table_def(name: &str) -> TableDefinition<'_, &'static str, &'static [u8]> {
    TableDefinition::new(name)
}

impl Store {
    /// Open (or create) the database file at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = Database::create(path).map_err(|e| StoreError::Db {
            context: "open",
            message: format!("{}: {e}", path.display()),
        })?;
        Ok(Store { db })
    }

    /// Apply `batch` atomically and durably (fsync before returning).
    pub fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.begin_write().map_err(db("begin write"))?;
        tx.set_durability(Durability::Immediate);
        for change in &batch.changes {
            match change {
                Change::Put { table, key, value } => {
                    check_table(table)?;
                    let mut t = tx.open_table(table_def(table)).map_err(db("open table"))?;
                    t.insert(key.as_str(), value.as_slice())
                        .map_err(db("insert"))?;
                }
                Change::Delete { table, key } => {
                    check_table(table)?;
                    let mut t = tx.open_table(table_def(table)).map_err(db("open table"))?;
                    t.remove(key.as_str()).map_err(db("remove"))?;
                }
                Change::DeletePrefix { table, prefix } => {
                    check_table(table)?;
                    let mut t = tx.open_table(table_def(table)).map_err(db("open table"))?;
                    let keys: Vec<String> = {
                        let range = t.range(prefix.as_str()..).map_err(db("range"))?;
                        let mut keys = Vec::new();
                        for item in range {
                            let (k, _) = item.map_err(db("range"))?;
                            let k = k.value();
                            if !k.starts_with(prefix.as_str()) {
                                break;
                            }
                            keys.push(k.to_string());
                        }
                        keys
                    };
                    for k in keys {
                        t.remove(k.as_str()).map_err(db("remove"))?;
                    }
                }
            }
        }
        tx.commit().map_err(db("commit"))?;
        Ok(())
    }

    /// The document under `key` in `table`.
    pub fn get<T: DeserializeOwned>(
        &self,
        table: &str,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        check_table(table)?;
        let tx = self.db.begin_read().map_err(db("begin read"))?;
        let t = match tx.open_table(table_def(table)) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db("open table")(e)),
        };
        let Some(v) = t.get(key).map_err(db("get"))? else {
            return Ok(None);
        };
        decode(table, key, v.value()).map(Some)
    }

    /// Every `(key, document)` of `table` whose key starts with `prefix`, in key order.
    pub fn scan<T: DeserializeOwned>(
        &self,
        table: &str,
        prefix: &str,
    ) -> Result<Vec<(String, T)>, StoreError> {
        check_table(table)?;
        let tx = self.db.begin_read().map_err(db("begin read"))?;
        let t = match tx.open_table(table_def(table)) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(db("open table")(e)),
        };
        let mut out = Vec::new();
        for item in t.range(prefix..).map_err(db("range"))? {
            let (k, v) = item.map_err(db("range"))?;
            let k = k.value();
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_string(), decode(table, k, v.value())?));
        }
        Ok(out)
    }
}

fn check_table(table: &str) -> Result<(), StoreError> {
    if table.is_empty() || table.len() > TABLE_NAME_MAX_BYTES {
        return Err(StoreError::Db {
            context: "table name",
            message: format!("table name {table:?} must be 1..{TABLE_NAME_MAX_BYTES} bytes"),
        });
    }
    Ok(())
}

fn decode<T: DeserializeOwned>(table: &str, key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Decode {
        table: table.to_string(),
        key: key.to_string(),
        message: e.to_string(),
    })
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
            "agora-services-store-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }

    #[test]
    fn put_get_scan_delete_and_survive_reopen() {
        let d = dir("basic");
        let path = d.0.join("db.redb");
        {
            let s = Store::open(&path).unwrap();
            assert_eq!(s.get::<u32>("t", "a").unwrap(), None);
            assert!(s.scan::<u32>("t", "").unwrap().is_empty());
            let mut b = Batch::new();
            b.put("t", "a/1", &1u32).unwrap();
            b.put("t", "a/2", &2u32).unwrap();
            b.put("t", "b/1", &3u32).unwrap();
            b.put("u", "x", &"text").unwrap();
            s.commit(b).unwrap();
            assert_eq!(s.get::<u32>("t", "a/2").unwrap(), Some(2));
            let a: Vec<(String, u32)> = s.scan("t", "a/").unwrap();
            assert_eq!(a, vec![("a/1".into(), 1), ("a/2".into(), 2)]);
            let mut b = Batch::new();
            b.delete("t", "b/1");
            b.delete_prefix("t", "a/");
            b.put("t", "c", &4u32).unwrap();
            s.commit(b).unwrap();
        }
        let s = Store::open(&path).unwrap();
        let all: Vec<(String, u32)> = s.scan("t", "").unwrap();
        assert_eq!(all, vec![("c".into(), 4)]);
        assert_eq!(s.get::<String>("u", "x").unwrap(), Some("text".into()));
    }

    #[test]
    fn a_failed_batch_changes_nothing() {
        let d = dir("atomic");
        let s = Store::open(&d.0.join("db.redb")).unwrap();
        let mut b = Batch::new();
        b.put("t", "a", &1u32).unwrap();
        s.commit(b).unwrap();
        let mut b = Batch::new();
        b.put("t", "a", &2u32).unwrap();
        b.put("", "bad", &3u32).unwrap();
        assert!(s.commit(b).is_err());
        assert_eq!(s.get::<u32>("t", "a").unwrap(), Some(1));
    }

    #[test]
    fn wrong_type_is_a_decode_error_naming_the_document() {
        let d = dir("decode");
        let s = Store::open(&d.0.join("db.redb")).unwrap();
        let mut b = Batch::new();
        b.put("t", "k", &"text").unwrap();
        s.commit(b).unwrap();
        let e = s.get::<u32>("t", "k").unwrap_err().to_string();
        assert!(e.contains("t/k"), "{e}");
    }

    #[test]
    fn the_file_is_locked_against_a_second_opener() {
        let d = dir("lock");
        let path = d.0.join("db.redb");
        let _first = Store::open(&path).unwrap();
        assert!(Store::open(&path).is_err());
    }
}
