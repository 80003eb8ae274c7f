//! Framework failover done once for every framework: persist the framework id the master
//! assigned and subscribe with it again after a restart, and reconcile after every
//! (re-)subscription.
//!
//! - [`FrameworkIdStore`]: where the id lives (a framework with its own database implements
//!   it there; [`FileIdStore`] is a durable one-file store).
//! - [`Reconciling`]: a scheduler that can name the tasks it believes exist.
//! - [`Failover`]: wraps such a scheduler. On SUBSCRIBED it saves the id (before anything
//!   else: a framework that could not save its id would come back as a stranger and launch
//!   duplicates, so it stops instead), asks the master for the state of every known task
//!   (explicit reconciliation: tasks the master lost come back LOST or UNKNOWN) and of every
//!   task it has (implicit: tasks the framework forgot come back too), then calls the
//!   wrapped scheduler's `subscribed`.
//! - [`run_failover`]: load the id, run the driver with the wrapper.
//!
//! This module must never interpret task states (the scheduler does) and never retry a
//! failed save silently.

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use agora_proto::v1::{FrameworkInfo, Offer, TaskStatus};

use crate::driver::{Driver, Finished};
use crate::error::SdkError;
use crate::scheduler::{Scheduler, Subscribed};

/// Most tasks named in one explicit reconciliation call; more are sent in several calls.
pub const RECONCILE_BATCH_MAX_TASKS: usize = 1000;

/// Where a framework keeps its id between runs. Calls are short and synchronous (a file
/// write, a database transaction); `save` must be durable when it returns.
pub trait FrameworkIdStore: Send + Sync + 'static {
    /// The saved id, if any.
    fn load(&self) -> Result<Option<String>, String>;
    /// Save `framework_id`, durably.
    fn save(&self, framework_id: &str) -> Result<(), String>;
}

/// A [`FrameworkIdStore`] in one file, replaced atomically (write, fsync, rename, fsync
/// of the directory).
#[derive(Debug, Clone)]
pub struct FileIdStore {
    path: PathBuf,
}

impl FileIdStore {
    /// A store in `path` (created on the first save).
    pub fn new(path: impl Into<PathBuf>) -> FileIdStore {
        FileIdStore { path: path.into() }
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl FrameworkIdStore for FileIdStore {
    fn load(&self) -> Result<Option<String>, String> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => Ok(Some(text.trim().to_string()).filter(|id| !id.is_empty())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", self.path.display())),
        }
    }

    fn save(&self, framework_id: &str) -> Result<(), String> {
        let tmp = self.path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(framework_id.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                sync_dir(dir)?;
            }
            Ok(())
        };
        write().map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}

/// A scheduler that can name the tasks it believes exist, for explicit reconciliation.
pub trait Reconciling: Scheduler {
    /// `(task_id, agent_id)` of every task the framework believes is not finished (agent
    /// id may be empty when unknown).
    fn known_tasks(&mut self) -> impl Future<Output = Vec<(String, String)>> + Send;
}

/// Wraps a scheduler with id persistence and reconciliation on every subscription. See
/// the [module documentation](self).
pub struct Failover<S> {
    inner: S,
    store: Arc<dyn FrameworkIdStore>,
    saved: Option<String>,
    save_error: Option<String>,
}

impl<S> Failover<S> {
    /// Wrap `inner`; `saved` is the id the store held when the driver started.
    pub fn new(inner: S, store: Arc<dyn FrameworkIdStore>, saved: Option<String>) -> Failover<S> {
        Failover {
            inner,
            store,
            saved,
            save_error: None,
        }
    }

    /// The wrapped scheduler.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Reconciling> Scheduler for Failover<S> {
    async fn subscribed(&mut self, driver: &Driver, info: Subscribed) {
        if self.saved.as_deref() != Some(info.framework_id.as_str()) {
            if let Err(e) = self.store.save(&info.framework_id) {
                tracing::error!(error = %e, "cannot save the framework id; stopping");
                self.save_error = Some(e);
                driver.stop();
                return;
            }
            self.saved = Some(info.framework_id.clone());
        }
        let known = self.inner.known_tasks().await;
        for chunk in known.chunks(RECONCILE_BATCH_MAX_TASKS) {
            if let Err(e) = driver.reconcile(chunk.to_vec()).await {
                tracing::warn!(error = %e, "explicit reconciliation failed");
            }
        }
        if let Err(e) = driver.reconcile(Vec::new()).await {
            tracing::warn!(error = %e, "implicit reconciliation failed");
        }
        self.inner.subscribed(driver, info).await;
    }

    async fn offers(&mut self, driver: &Driver, offers: Vec<Offer>) {
        self.inner.offers(driver, offers).await;
    }

    async fn rescinded(&mut self, driver: &Driver, offer_id: String, reason: String) {
        self.inner.rescinded(driver, offer_id, reason).await;
    }

    async fn status_update(&mut self, driver: &Driver, status: TaskStatus) {
        self.inner.status_update(driver, status).await;
    }

    async fn before_acknowledge(&mut self, driver: &Driver) {
        self.inner.before_acknowledge(driver).await;
    }

    async fn message(
        &mut self,
        driver: &Driver,
        agent_id: String,
        executor_id: String,
        data: Vec<u8>,
    ) {
        self.inner
            .message(driver, agent_id, executor_id, data)
            .await;
    }

    async fn failure(
        &mut self,
        driver: &Driver,
        agent_id: String,
        executor_id: String,
        exit_code: Option<i32>,
    ) {
        self.inner
            .failure(driver, agent_id, executor_id, exit_code)
            .await;
    }

    async fn error(&mut self, driver: &Driver, message: String) {
        self.inner.error(driver, message).await;
    }

    async fn disconnected(&mut self, driver: &Driver) {
        self.inner.disconnected(driver).await;
    }
}

/// Why [`run_failover`] failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FailoverError {
    /// The id store could not be read or written.
    #[error("framework id store: {0}")]
    Store(String),
    /// The driver failed.
    #[error(transparent)]
    Sdk(#[from] SdkError),
}

/// Subscribe with the id `store` holds (a new framework when it holds none), save the id
/// the master confirms, reconcile after every subscription, and run until the driver
/// stops. A failed save stops the driver and is returned as [`FailoverError::Store`].
pub async fn run_failover<S: Reconciling>(
    driver: Driver,
    mut framework: FrameworkInfo,
    store: Arc<dyn FrameworkIdStore>,
    scheduler: S,
) -> Result<Finished<S>, FailoverError> {
    let saved = store.load().map_err(FailoverError::Store)?;
    if let Some(id) = &saved {
        framework.id = id.clone();
    }
    let finished = driver
        .run(framework, Failover::new(scheduler, store, saved))
        .await?;
    if let Some(e) = finished.scheduler.save_error.clone() {
        return Err(FailoverError::Store(e));
    }
    Ok(Finished {
        scheduler: finished.scheduler.into_inner(),
        reason: finished.reason,
        framework_id: finished.framework_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_store_round_trips_and_replaces() {
        let dir = std::env::temp_dir().join(format!("agora-sdk-idstore-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = FileIdStore::new(dir.join("framework-id"));
        assert_eq!(store.load().unwrap(), None);
        store.save("F-1").unwrap();
        assert_eq!(store.load().unwrap(), Some("F-1".to_string()));
        store.save("F-2").unwrap();
        assert_eq!(store.load().unwrap(), Some("F-2".to_string()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unreadable_store_is_an_error_not_a_new_framework() {
        // A directory where the file should be: reading fails with an error, not `None`.
        let dir =
            std::env::temp_dir().join(format!("agora-sdk-idstore-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(FileIdStore::new(&dir).load().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
