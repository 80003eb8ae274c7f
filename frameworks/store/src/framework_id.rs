//! The framework id the master assigned, kept in a table of the framework's [`Store`], so
//! a restarted daemon subscribes again as the same framework (and adopts its tasks)
//! rather than as a stranger that would launch duplicates.
//!
//! Owns the key the id lives under and nothing else; the table is the framework's.
//! It must never treat an unreadable id as "no id" (that would register a new framework
//! while the old one's tasks keep running): read errors are errors.

use std::sync::Arc;

use agora_sdk::FrameworkIdStore;

use crate::store::{Batch, Store, StoreError};

/// The key of the framework id in the framework's meta table.
pub const FRAMEWORK_ID_KEY: &str = "framework_id";

/// The saved id in `table`, if any (an empty value counts as none). Accepts both a plain
/// UTF-8 value and a JSON string, so either way of writing it reads back.
pub fn load(store: &Store, table: &str) -> Result<Option<String>, StoreError> {
    let Some(bytes) = store.get_bytes(table, FRAMEWORK_ID_KEY)? else {
        return Ok(None);
    };
    let id = match serde_json::from_slice::<String>(&bytes) {
        Ok(id) => id,
        Err(_) => String::from_utf8(bytes).map_err(|e| StoreError::Decode {
            table: table.to_string(),
            key: FRAMEWORK_ID_KEY.to_string(),
            message: e.to_string(),
        })?,
    };
    Ok(Some(id).filter(|id| !id.is_empty()))
}

/// Add the saving of `framework_id` to `batch` (durable once the batch commits).
pub fn put(batch: &mut Batch, table: &'static str, framework_id: &str) {
    batch.put_bytes(table, FRAMEWORK_ID_KEY, framework_id.as_bytes().to_vec());
}

/// A [`FrameworkIdStore`] over a table of a shared [`Store`], for
/// [`agora_sdk::run_failover`].
#[derive(Debug, Clone)]
pub struct StoredFrameworkId {
    store: Arc<Store>,
    table: &'static str,
}

impl StoredFrameworkId {
    /// The id under [`FRAMEWORK_ID_KEY`] in `table` of `store`.
    pub fn new(store: Arc<Store>, table: &'static str) -> StoredFrameworkId {
        StoredFrameworkId { store, table }
    }
}

impl FrameworkIdStore for StoredFrameworkId {
    fn load(&self) -> Result<Option<String>, String> {
        load(&self.store, self.table).map_err(|e| e.to_string())
    }

    fn save(&self, framework_id: &str) -> Result<(), String> {
        let mut b = Batch::new();
        put(&mut b, self.table, framework_id);
        self.store.commit(&b).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_round_trips_through_a_reopen_and_reads_both_encodings() {
        let dir = std::env::temp_dir().join(format!(
            "agora-framework-store-id-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db.redb");
        {
            let ids = StoredFrameworkId::new(Arc::new(Store::open(&path).unwrap()), "meta");
            assert_eq!(ids.load().unwrap(), None);
            ids.save("F-1").unwrap();
            ids.save("F-2").unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(load(&store, "meta").unwrap(), Some("F-2".into()));
        // Written as a JSON document by an older daemon: still the same id.
        let mut b = Batch::new();
        b.put_json("old", FRAMEWORK_ID_KEY, "F-3").unwrap();
        b.put_bytes("empty", FRAMEWORK_ID_KEY, Vec::new());
        store.commit(&b).unwrap();
        assert_eq!(load(&store, "old").unwrap(), Some("F-3".into()));
        assert_eq!(load(&store, "empty").unwrap(), None, "empty is no id");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unreadable_id_is_an_error_not_a_new_framework() {
        let dir = std::env::temp_dir().join(format!(
            "agora-framework-store-bad-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("db.redb")).unwrap();
        let mut b = Batch::new();
        b.put_bytes("meta", FRAMEWORK_ID_KEY, vec![0xff, 0xfe]);
        store.commit(&b).unwrap();
        assert!(load(&store, "meta").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
