//! Persistent volumes and checkpointed resources on the agent.
//!
//! Owns: `<work_dir>/meta/resources.json` (the dynamic reservations and volumes the master
//! last told this agent, as `CheckpointResources`), the volume directories
//! `<work_dir>/volumes/roles/<role>/<persistence_id>`, and making a volume visible in a
//! task's sandbox at its container path.
//!
//! A volume is shown to a task as a **symlink** `<sandbox>/<container_path>` ->
//! `<volume dir>`, created before the containerizer starts the task. The link resolves
//! for both containerizers: the plain-process one shares the host's file system, and the
//! Linux one gives the task a private mount namespace without changing its root, so the
//! volume directory is reachable at the same path. A task with an image of its own has
//! another root, where the link's target does not exist: the Linux containerizer replaces
//! the link by a directory and bind-mounts the volume there inside the container's mount
//! namespace ([`VolumeMount`]). Data written through the link or the mount lives in the
//! volume directory, so it outlives the task and the next task using the volume sees it.
//!
//! Must never: create or remove anything outside the volume root and the task's sandbox
//! (roles and persistence ids are validated by `agora-resources` before they reach a
//! path), remove a volume directory the master still lists, or decide anything about
//! reservations (the master owns them; this only records what it was told).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use agora_proto::v1;
use agora_resources::{Resource, Resources};
use futures::future::BoxFuture;

use crate::containerizer::{
    Container, ContainerRef, Containerizer, LaunchError, LaunchSpec, VolumeMount,
};
use crate::sandbox::sandbox_dir;

/// Why checkpointed resources could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The master sent resources this agent cannot read.
    #[error("invalid checkpointed resources: {0}")]
    Invalid(#[from] agora_resources::ResourceError),
    /// A file or directory operation failed.
    #[error("{path}: {error}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VolumeError + '_ {
    move |error| VolumeError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// The agent's volumes under one work directory. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Volumes {
    work_dir: PathBuf,
}

impl Volumes {
    /// Volumes under `work_dir`.
    pub fn new(work_dir: impl Into<PathBuf>) -> Volumes {
        Volumes {
            work_dir: work_dir.into(),
        }
    }

    fn record_path(&self) -> PathBuf {
        self.work_dir.join("meta").join("resources.json")
    }

    /// The directory of a volume (`role` and `persistence_id` are validated names).
    pub fn dir(&self, role: &str, persistence_id: &str) -> PathBuf {
        self.work_dir
            .join("volumes")
            .join("roles")
            .join(role)
            .join(persistence_id)
    }

    fn dir_of(&self, r: &Resource) -> Option<PathBuf> {
        let v = r.volume.as_ref()?;
        let role = &r.reservation.as_ref()?.role;
        Some(self.dir(role, &v.persistence_id))
    }

    /// What the master last told this agent (empty if never).
    pub fn recorded(&self) -> Result<Resources, VolumeError> {
        let path = self.record_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Resources::from_json(&text)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Resources::new()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Record `resources` (the master's full list): create the directory of every
    /// volume listed, remove those of volumes recorded before and no longer listed
    /// (destroyed), then write the record (atomically: temporary file, fsync, rename).
    pub fn checkpoint(&self, resources: &[v1::Resource]) -> Result<Resources, VolumeError> {
        let new = Resources::from_proto(resources)?;
        let old = self.recorded().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "unreadable resources record; replacing it");
            Resources::new()
        });
        let keep: Vec<PathBuf> = new.iter().filter_map(|r| self.dir_of(r)).collect();
        for dir in &keep {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        for dir in old.iter().filter_map(|r| self.dir_of(r)) {
            if keep.contains(&dir) {
                continue;
            }
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => tracing::info!(dir = %dir.display(), "removed a destroyed volume"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&dir)(e)),
            }
        }
        let path = self.record_path();
        let tmp = path.with_extension("json.tmp");
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(new.to_json().to_string().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        Ok(new)
    }

    /// Make every volume among a task's resources visible in its sandbox (see the module
    /// documentation). A volume this agent does not hold fails the launch. Returns the
    /// volumes' mounts, which a container with an image of its own bind-mounts (its root
    /// does not hold the host paths the links point to).
    pub fn prepare_sandbox(&self, spec: &LaunchSpec) -> Result<Vec<VolumeMount>, LaunchError> {
        let volumes: Vec<&Resource> = spec
            .resources
            .iter()
            .filter(|r| r.volume.is_some())
            .collect();
        let mut mounts = Vec::new();
        if volumes.is_empty() {
            return Ok(mounts);
        }
        let sandbox = sandbox_dir(&self.work_dir, &spec.framework_id, &spec.task_id)?;
        let fail = |path: &Path, error: std::io::Error| LaunchError::Sandbox {
            path: path.to_path_buf(),
            error,
        };
        for r in volumes {
            let (Some(dir), Some(v)) = (self.dir_of(r), r.volume.as_ref()) else {
                continue;
            };
            if !dir.is_dir() {
                return Err(fail(
                    &dir,
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("volume '{}' is not on this agent", v.persistence_id),
                    ),
                ));
            }
            let link = sandbox.join(&v.container_path);
            if let Some(parent) = link.parent() {
                std::fs::create_dir_all(parent).map_err(|e| fail(parent, e))?;
            }
            // A link left by an earlier run of the same task id is replaced; anything
            // else at the container path is the task's own data and is not touched.
            if let Ok(meta) = std::fs::symlink_metadata(&link) {
                if !meta.file_type().is_symlink() {
                    return Err(fail(
                        &link,
                        std::io::Error::new(
                            std::io::ErrorKind::AlreadyExists,
                            "the volume's container path exists in the sandbox",
                        ),
                    ));
                }
                std::fs::remove_file(&link).map_err(|e| fail(&link, e))?;
            }
            std::os::unix::fs::symlink(&dir, &link).map_err(|e| fail(&link, e))?;
            give_to_user(&dir, spec.user.as_deref())?;
            mounts.push(VolumeMount {
                host_path: dir,
                container_path: PathBuf::from(&v.container_path),
            });
        }
        Ok(mounts)
    }
}

/// A task running as another user must be able to write its volume: the volume's
/// directory (not its contents) is given to that user, as Mesos does on first use. An
/// unknown user is left for the containerizer to refuse with its own error.
fn give_to_user(dir: &Path, user: Option<&str>) -> Result<(), LaunchError> {
    use nix::unistd::{Uid, User, chown};
    let Some(name) = user else {
        return Ok(());
    };
    let Ok(Some(entry)) = User::from_name(name) else {
        return Ok(());
    };
    if entry.uid == Uid::current() || !Uid::current().is_root() {
        return Ok(());
    }
    chown(dir, Some(entry.uid), Some(entry.gid)).map_err(|error| LaunchError::Chown {
        path: dir.to_path_buf(),
        user: name.to_string(),
        error,
    })
}

/// A containerizer that makes volumes visible in the sandbox before the one it wraps
/// starts the task; everything else is passed through.
pub struct VolumeContainerizer {
    inner: Arc<dyn Containerizer>,
    volumes: Volumes,
}

impl VolumeContainerizer {
    /// Wrap `inner`.
    pub fn new(inner: Arc<dyn Containerizer>, volumes: Volumes) -> VolumeContainerizer {
        VolumeContainerizer { inner, volumes }
    }
}

impl Containerizer for VolumeContainerizer {
    fn launch(
        &self,
        spec: LaunchSpec,
    ) -> BoxFuture<'static, Result<Arc<dyn Container>, LaunchError>> {
        match self.volumes.prepare_sandbox(&spec) {
            Ok(mounts) => {
                let mut spec = spec;
                spec.volumes = mounts;
                self.inner.launch(spec)
            }
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }

    fn recover(&self, reference: ContainerRef) -> BoxFuture<'static, Option<Arc<dyn Container>>> {
        self.inner.recover(reference)
    }

    fn destroy_orphans(&self, owned: Vec<String>) -> BoxFuture<'static, ()> {
        self.inner.destroy_orphans(owned)
    }

    fn release(&self) -> BoxFuture<'static, ()> {
        self.inner.release()
    }

    fn isolation(&self) -> &'static str {
        self.inner.isolation()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(text: &str) -> Resources {
        Resources::parse(text).unwrap()
    }

    /// A fresh directory of this test process.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("agora-volumes-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn spec(resources: Resources) -> LaunchSpec {
        LaunchSpec {
            framework_id: "f".into(),
            task_id: "t".into(),
            agent_id: "a".into(),
            program: crate::containerizer::Program::Shell("true".into()),
            environment: Vec::new(),
            ports: Vec::new(),
            user: None,
            resources,
            uris: Vec::new(),
            image: None,
            volumes: Vec::new(),
        }
    }

    #[test]
    fn checkpoint_creates_and_removes_volume_directories() {
        let tmp = scratch("checkpoint");
        let v = Volumes::new(&tmp);
        let both = res(
            "disk(db,volume=v1,path=d):1;disk(eng/ml,dynamic,volume=v2,path=e):1;cpus(db,dynamic):1",
        );
        v.checkpoint(&both.to_proto()).unwrap();
        assert!(v.dir("db", "v1").is_dir());
        assert!(v.dir("eng/ml", "v2").is_dir());
        std::fs::write(v.dir("db", "v1").join("data"), "kept").unwrap();
        assert_eq!(v.recorded().unwrap(), both);
        // v2 destroyed: its directory goes, v1 and its data stay.
        let one = res("disk(db,volume=v1,path=d):1");
        v.checkpoint(&one.to_proto()).unwrap();
        assert!(!v.dir("eng/ml", "v2").exists());
        assert_eq!(
            std::fs::read_to_string(v.dir("db", "v1").join("data")).unwrap(),
            "kept"
        );
        assert_eq!(Volumes::new(&tmp).recorded().unwrap(), one);
        // Unreadable input changes nothing.
        let mut bad = one.to_proto();
        bad[0].name = "a b".into();
        assert!(v.checkpoint(&bad).is_err());
        assert_eq!(v.recorded().unwrap(), one);
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn a_volume_appears_in_the_sandbox_at_its_container_path() {
        let tmp = scratch("sandbox");
        let v = Volumes::new(&tmp);
        let vol = res("disk(db,volume=v1,path=data/db):1");
        // Not checkpointed yet: the launch fails.
        let e = v.prepare_sandbox(&spec(vol.clone())).unwrap_err();
        assert!(e.to_string().contains("not on this agent"), "{e}");
        v.checkpoint(&vol.to_proto()).unwrap();
        v.prepare_sandbox(&spec(vol.clone())).unwrap();
        let link = tmp.join("sandboxes/f/t/data/db");
        std::fs::write(link.join("x"), "1").unwrap();
        assert!(v.dir("db", "v1").join("x").is_file());
        // Again (same task id re-run): the link is replaced.
        v.prepare_sandbox(&spec(vol.clone())).unwrap();
        assert!(link.join("x").is_file());
        // As root, a task of another user gets the volume's directory.
        if nix::unistd::Uid::current().is_root() {
            use std::os::unix::fs::MetadataExt as _;
            let mut as_nobody = spec(vol);
            as_nobody.user = Some("nobody".into());
            if let Ok(Some(nobody)) = nix::unistd::User::from_name("nobody") {
                v.prepare_sandbox(&as_nobody).unwrap();
                let meta = std::fs::metadata(v.dir("db", "v1")).unwrap();
                assert_eq!(meta.uid(), nobody.uid.as_raw());
            }
        }
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
