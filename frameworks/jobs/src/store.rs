//! A small durable key-value store on redb: named tables of string keys and byte values,
//! read whole at start-up and changed by batches that commit atomically and durably
//! (fsync'd before `commit` returns).
//!
//! Owns the database file and nothing else. Generic on purpose (no job types here), so
//! another framework can keep its state the same way. It must never interpret values,
//! and never report a batch as committed before it is on disk: a caller may answer its
//! client or act on the world once `commit` returned `Ok`.

use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition, TableError};

/// A store failure (opening, reading or committing).
#[derive(Debug, thiserror::Error)]
#[error("store {what}: {source}")]
pub struct StoreError {
    what: &'static str,
    #[source]
    source: Box<redb::Error>,
}

fn err<E: Into<redb::Error>>(what: &'static str) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError {
        what,
        source: Box::new(e.into()),
    }
}

/// One change: put `value` under `key` in `table`, or delete the key (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub table: &'static str,
    pub key: String,
    pub value: Option<Vec<u8>>,
}

/// Changes that commit together or not at all. Later ops on the same key win.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    ops: Vec<Op>,
}

impl Batch {
    /// Put `value` under `key`.
    pub fn put(&mut self, table: &'static str, key: impl Into<String>, value: Vec<u8>) {
        self.ops.push(Op {
            table,
            key: key.into(),
            value: Some(value),
        });
    }

    /// Delete `key`.
    pub fn delete(&mut self, table: &'static str, key: impl Into<String>) {
        self.ops.push(Op {
            table,
            key: key.into(),
            value: None,
        });
    }

    /// Whether there is nothing to commit.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Number of ops.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// The ops, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }
}

/// The database.
pub struct Store {
    db: Database,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

fn table(name: &str) -> TableDefinition<'_, &'static str, &'static [u8]> {
    TableDefinition::new(name)
}

impl Store {
    /// Open (or create) the database file at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = Database::create(path).map_err(err("open"))?;
        Ok(Store { db })
    }

    /// Every `(key, value)` of `table`, sorted by key; empty if the table was never written.
    pub fn scan(&self, name: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read().map_err(err("read"))?;
        let t = match txn.open_table(table(name)) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(err("read")(e)),
        };
        let mut out = Vec::new();
        for item in t.iter().map_err(err("read"))? {
            let (k, v) = item.map_err(err("read"))?;
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// The value of `key` in `table`.
    pub fn get(&self, name: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(err("read"))?;
        let t = match txn.open_table(table(name)) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(err("read")(e)),
        };
        Ok(t.get(key).map_err(err("read"))?.map(|v| v.value().to_vec()))
    }

    /// Apply `batch` atomically; durable when this returns `Ok`.
    pub fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(err("commit"))?;
        {
            let mut names: Vec<&'static str> = batch.ops.iter().map(|o| o.table).collect();
            names.sort_unstable();
            names.dedup();
            for name in names {
                let mut t = txn.open_table(table(name)).map_err(err("commit"))?;
                for op in batch.ops.iter().filter(|o| o.table == name) {
                    match &op.value {
                        Some(v) => {
                            t.insert(op.key.as_str(), v.as_slice())
                                .map_err(err("commit"))?;
                        }
                        None => {
                            t.remove(op.key.as_str()).map_err(err("commit"))?;
                        }
                    }
                }
            }
        }
        txn.commit().map_err(err("commit"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "agora-jobs-store-{tag}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn batches_commit_together_and_survive_reopening() {
        let dir = temp("reopen");
        let path = dir.join("state.redb");
        {
            let s = Store::open(&path).unwrap();
            assert!(
                s.scan("jobs").unwrap().is_empty(),
                "unknown table reads empty"
            );
            let mut b = Batch::default();
            b.put("jobs", "a", b"1".to_vec());
            b.put("jobs", "b", b"2".to_vec());
            b.put("meta", "id", b"fw".to_vec());
            b.put("jobs", "a", b"3".to_vec());
            s.commit(&b).unwrap();
            let mut d = Batch::default();
            d.delete("jobs", "b");
            d.delete("jobs", "never-there");
            s.commit(&d).unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.scan("jobs").unwrap(), vec![("a".into(), b"3".to_vec())]);
        assert_eq!(s.get("meta", "id").unwrap(), Some(b"fw".to_vec()));
        assert_eq!(s.get("meta", "nope").unwrap(), None);
        assert_eq!(s.get("nosuch", "x").unwrap(), None);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_second_open_of_the_same_file_is_refused() {
        let dir = temp("lock");
        let path = dir.join("state.redb");
        let _first = Store::open(&path).unwrap();
        assert!(
            Store::open(&path).is_err(),
            "two daemons must not share a store"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
