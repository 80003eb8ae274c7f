//! The services framework's tables in the [`Store`]: apps, their versions, instances,
//! deployments and the framework id; loading them at start and applying the core's
//! [`Persist`] changes as one atomic batch.
//!
//! This module must never decide anything: it writes what the core said, in the order it
//! said it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use agora_framework_store::framework_id;
use agora_sdk::FrameworkIdStore;

use crate::core::{AppRecord, Deployment, Persist, VERSIONS_KEPT_MAX};
use crate::instance::Instance;
use crate::store::{Batch, Store, StoreError};
use crate::time::iso8601;

/// Current app definitions by id.
pub const APPS: &str = "services.apps";
/// Every version of every app, `<app id>@<ISO version>`.
pub const VERSIONS: &str = "services.app_versions";
/// Instances by task id.
pub const INSTANCES: &str = "services.instances";
/// Deployments by id.
pub const DEPLOYMENTS: &str = "services.deployments";
/// Small facts (`framework_id`).
pub const META: &str = "services.meta";

/// What the daemon starts from.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Apps.
    pub apps: Vec<AppRecord>,
    /// Instances.
    pub instances: Vec<Instance>,
    /// Deployments.
    pub deployments: Vec<Deployment>,
}

/// The framework's durable state.
#[derive(Debug, Clone)]
pub struct ServicesState {
    store: Arc<Store>,
}

fn version_prefix(app_id: &str) -> String {
    format!("{app_id}@")
}

impl ServicesState {
    /// Open `<dir>/services.redb` (the directory is created).
    pub fn open(dir: &Path) -> Result<ServicesState, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Db {
            context: "create data directory",
            message: format!("{}: {e}", dir.display()),
        })?;
        Ok(ServicesState::on(Store::open(&dir.join("services.redb"))?))
    }

    /// The state in an open store (the etcd one when the daemon runs as several
    /// instances).
    pub fn on(store: Store) -> ServicesState {
        ServicesState {
            store: Arc::new(store),
        }
    }

    /// Everything stored.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        Ok(Loaded {
            apps: self
                .store
                .scan_json(APPS, "")?
                .into_iter()
                .map(|(_, v)| v)
                .collect(),
            instances: self
                .store
                .scan_json(INSTANCES, "")?
                .into_iter()
                .map(|(_, v)| v)
                .collect(),
            deployments: self
                .store
                .scan_json(DEPLOYMENTS, "")?
                .into_iter()
                .map(|(_, v)| v)
                .collect(),
        })
    }

    /// The stored versions of an app, oldest first.
    pub fn versions(&self, app_id: &str) -> Result<Vec<AppRecord>, StoreError> {
        Ok(self
            .store
            .scan_json(VERSIONS, &version_prefix(app_id))?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// One stored version of an app (`version` in ISO 8601 as shown).
    pub fn version(&self, app_id: &str, version: &str) -> Result<Option<AppRecord>, StoreError> {
        self.store
            .get_json(VERSIONS, &format!("{}{version}", version_prefix(app_id)))
    }

    /// Write the core's changes, atomically and durably. Versions beyond
    /// [`VERSIONS_KEPT_MAX`] per app are dropped, oldest first, in the same batch.
    pub fn apply(&self, changes: &[Persist]) -> Result<(), StoreError> {
        let mut batch = Batch::new();
        // Per app touched by this batch: its version keys as they will be after the batch,
        // oldest first (the store's keys, then this batch's additions and deletions), so two
        // versions of one app in one batch prune as two.
        let mut kept: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for c in changes {
            match c {
                Persist::App(a) => {
                    batch.put_json(APPS, &a.def.id, a)?;
                    let prefix = version_prefix(&a.def.id);
                    let key = format!("{prefix}{}", iso8601(a.version_ms));
                    batch.put_json(VERSIONS, &key, a)?;
                    let keys = match kept.entry(a.def.id.clone()) {
                        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::btree_map::Entry::Vacant(e) => e.insert(
                            self.store
                                .scan_bytes(VERSIONS, &prefix)?
                                .into_iter()
                                .map(|(k, _)| k)
                                .collect(),
                        ),
                    };
                    if !keys.contains(&key) {
                        keys.push(key);
                        keys.sort();
                    }
                    let extra = keys.len().saturating_sub(VERSIONS_KEPT_MAX);
                    for k in keys.drain(..extra) {
                        batch.delete(VERSIONS, &k);
                    }
                }
                Persist::DeleteApp(id) => {
                    batch.delete(APPS, id);
                    batch.delete_prefix(VERSIONS, version_prefix(id));
                    kept.insert(id.clone(), Vec::new());
                }
                Persist::Instance(i) => batch.put_json(INSTANCES, &i.task_id, i)?,
                Persist::DeleteInstance(id) => batch.delete(INSTANCES, id),
                Persist::Deployment(d) => batch.put_json(DEPLOYMENTS, &d.id, d)?,
                Persist::DeleteDeployment(id) => batch.delete(DEPLOYMENTS, id),
            }
        }
        self.store.commit(&batch)
    }
}

impl FrameworkIdStore for ServicesState {
    fn load(&self) -> Result<Option<String>, String> {
        framework_id::load(&self.store, META).map_err(|e| e.to_string())
    }

    fn save(&self, id: &str) -> Result<(), String> {
        let mut b = Batch::new();
        framework_id::put(&mut b, META, id);
        self.store.commit(&b).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::parse_app_value;
    use crate::core::Core;

    #[test]
    fn core_changes_survive_a_reopen_and_versions_are_capped() {
        let dir = std::env::temp_dir().join(format!("agora-services-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let state = ServicesState::open(&dir).unwrap();
            assert_eq!(FrameworkIdStore::load(&state).unwrap(), None);
            state.save("F-9").unwrap();
            let mut core = Core::new("*");
            let def = parse_app_value(serde_json::json!({"id": "/a", "cmd": "x"}), None).unwrap();
            let (out, _) = core.create_app(def.clone(), 1000).unwrap();
            state.apply(&out.persist).unwrap();
            for n in 0..(VERSIONS_KEPT_MAX as u32 + 5) {
                let mut d = def.clone();
                d.instances = n;
                let (out, _) = core.put_app(d, 2000 + u64::from(n), true).unwrap();
                state.apply(&out.persist).unwrap();
            }
            assert_eq!(state.versions("/a").unwrap().len(), VERSIONS_KEPT_MAX);
        }
        let state = ServicesState::open(&dir).unwrap();
        assert_eq!(FrameworkIdStore::load(&state).unwrap(), Some("F-9".into()));
        let loaded = state.load().unwrap();
        assert_eq!(loaded.apps.len(), 1);
        assert_eq!(loaded.apps[0].def.instances, VERSIONS_KEPT_MAX as u32 + 4);
        assert_eq!(
            loaded.deployments.len(),
            1,
            "only the latest (forced) deployment"
        );
        let last = state.versions("/a").unwrap().pop().unwrap();
        assert_eq!(
            state.version("/a", &iso8601(last.version_ms)).unwrap(),
            Some(last)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Two versions of one app in one batch (a burst) prune as two: exactly
    /// VERSIONS_KEPT_MAX stay, the newest.
    #[test]
    fn two_versions_in_one_batch_keep_exactly_the_maximum() {
        let dir = std::env::temp_dir().join(format!("agora-services-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = ServicesState::open(&dir).unwrap();
        let mut core = Core::new("*");
        let def = parse_app_value(serde_json::json!({"id": "/a", "cmd": "x"}), None).unwrap();
        let (out, _) = core.create_app(def.clone(), 1000).unwrap();
        state.apply(&out.persist).unwrap();
        let mut n = 0u32;
        while state.versions("/a").unwrap().len() < VERSIONS_KEPT_MAX {
            n += 1;
            let mut d = def.clone();
            d.instances = n;
            let (out, _) = core.put_app(d, 2000 + u64::from(n), true).unwrap();
            state.apply(&out.persist).unwrap();
        }
        let mut burst = Vec::new();
        for k in 1..=2u32 {
            let mut d = def.clone();
            d.instances = n + k;
            let (out, _) = core.put_app(d, 9000 + u64::from(k), true).unwrap();
            burst.extend(out.persist);
        }
        state.apply(&burst).unwrap();
        let versions = state.versions("/a").unwrap();
        assert_eq!(versions.len(), VERSIONS_KEPT_MAX);
        assert_eq!(versions.last().unwrap().def.instances, n + 2);
        // The two oldest went: the first kept is the third version ever written.
        assert_eq!(versions[0].def.instances, 2);
        // Deleting and re-creating in one batch starts the count over.
        let (mut out, _) = core.delete_app("/a", 9100, true).unwrap();
        let (again, _) = core.create_app(def.clone(), 9200).unwrap();
        out.extend(again);
        state.apply(&out.persist).unwrap();
        assert_eq!(state.versions("/a").unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
