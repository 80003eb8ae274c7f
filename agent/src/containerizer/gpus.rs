//! GPUs: which devices the agent hands out, which container holds which, and the devices
//! cgroup that keeps every other container away from them.
//!
//! The agent's GPUs are found by [`discover`]: the character devices the operator lists
//! (`--gpu-device`, any character device, which is how the mechanism is tested without a
//! GPU), or NVIDIA's (`--nvidia-gpus`: `nvidia-smi` lists them; `/dev/nvidia<minor>`).
//! Tasks get whole devices: a task's `gpus` resource must be a whole number, and
//! [`GpuPool::allocate`] picks that many free devices (lowest index first).
//!
//! Isolation, when the agent has GPUs: every container gets a cgroup of the v1 `devices`
//! controller (`<devices>/agora/<agent>/<container>`) denying read, write and mknod on
//! each GPU it was not given ([`DevicesCgroup`]); a container with an image also gets the
//! device nodes of its GPUs (and none of the others) in its `/dev`. On a cgroup v2 host
//! (no `devices` controller) a device filter needs a BPF program attached to the
//! container's cgroup, which this module does not do: there, only containers with an image
//! are kept from other GPUs (by their `/dev`), and the agent says so at start.
//!
//! Must never: hand one device to two running containers, deny anything but the pool's
//! devices (a container keeps every other device it could open), or touch a devices
//! cgroup outside the agent's own root.

use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Most GPUs an agent hands out.
pub const MAX_GPUS: usize = 64;

/// One device handed out whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gpu {
    /// Its index in the pool (`NVIDIA_VISIBLE_DEVICES` for NVIDIA GPUs).
    pub index: u32,
    /// Its device node on the agent.
    pub path: PathBuf,
    /// Device major number.
    pub major: u32,
    /// Device minor number.
    pub minor: u32,
}

impl Gpu {
    /// The devices cgroup (v1) rule naming this device.
    pub fn rule(&self) -> String {
        format!("c {}:{} rwm", self.major, self.minor)
    }
}

/// The device at `path`, which must be a character device.
pub fn device(index: u32, path: &Path) -> Result<Gpu, String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.file_type().is_char_device() {
        return Err(format!("{} is not a character device", path.display()));
    }
    let rdev = meta.rdev();
    Ok(Gpu {
        index,
        path: path.to_path_buf(),
        major: libc::major(rdev),
        minor: libc::minor(rdev),
    })
}

/// The minor numbers in `nvidia-smi --query-gpu=index,minor_number --format=csv,noheader`
/// output, by GPU index.
pub fn parse_nvidia_smi(text: &str) -> Result<Vec<(u32, u32)>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (index, minor) = line
                .split_once(',')
                .ok_or_else(|| format!("unexpected nvidia-smi line {line:?}"))?;
            let parse = |s: &str| {
                s.trim()
                    .parse::<u32>()
                    .map_err(|e| format!("unexpected nvidia-smi line {line:?}: {e}"))
            };
            Ok((parse(index)?, parse(minor)?))
        })
        .collect()
}

/// The agent's GPUs: the devices listed (`--gpu-device`), else with `nvidia` the NVIDIA
/// GPUs `nvidia-smi` reports, else none.
pub fn discover(devices: &[PathBuf], nvidia: bool) -> Result<Vec<Gpu>, String> {
    let gpus: Vec<Gpu> = if !devices.is_empty() {
        devices
            .iter()
            .enumerate()
            .map(|(i, path)| device(u32::try_from(i).unwrap_or(u32::MAX), path))
            .collect::<Result<_, _>>()?
    } else if nvidia {
        let out = std::process::Command::new("nvidia-smi")
            .args(["--query-gpu=index,minor_number", "--format=csv,noheader"])
            .output()
            .map_err(|e| format!("--nvidia-gpus: cannot run nvidia-smi: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "--nvidia-gpus: nvidia-smi failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        parse_nvidia_smi(&String::from_utf8_lossy(&out.stdout))?
            .into_iter()
            .map(|(index, minor)| device(index, &PathBuf::from(format!("/dev/nvidia{minor}"))))
            .collect::<Result<_, _>>()?
    } else {
        Vec::new()
    };
    if gpus.len() > MAX_GPUS {
        return Err(format!(
            "{} GPUs; at most {MAX_GPUS} are supported",
            gpus.len()
        ));
    }
    let mut seen = Vec::new();
    for g in &gpus {
        if seen.contains(&(g.major, g.minor)) {
            return Err(format!(
                "{} is the same device ({}:{}) as another GPU",
                g.path.display(),
                g.major,
                g.minor
            ));
        }
        seen.push((g.major, g.minor));
    }
    Ok(gpus)
}

/// Why a container cannot get the GPUs it asks for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GpuError {
    /// A fraction of a GPU.
    #[error("gpus must be a whole number, not {0}")]
    Fraction(String),
    /// More than are free.
    #[error("{wanted} GPU(s) asked for, {free} free of {total} on this agent")]
    NotEnough {
        /// Asked for.
        wanted: u64,
        /// Free now.
        free: usize,
        /// The agent's GPUs.
        total: usize,
    },
}

/// The agent's GPUs and which container holds each. Shared by the containerizer's
/// launches and reapers; the lock is never held across an await.
#[derive(Debug, Default)]
pub struct GpuPool {
    gpus: Vec<Gpu>,
    held: Mutex<BTreeMap<u32, String>>,
}

impl GpuPool {
    /// A pool of `gpus`, none held.
    pub fn new(gpus: Vec<Gpu>) -> GpuPool {
        GpuPool {
            gpus,
            held: Mutex::new(BTreeMap::new()),
        }
    }

    /// Every GPU of the agent.
    pub fn all(&self) -> &[Gpu] {
        &self.gpus
    }

    fn held(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, String>> {
        // A panic while holding it cannot leave the map half-changed (single inserts and
        // removes): take it anyway.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives `container` `thousandths / 1000` free GPUs (lowest index first).
    pub fn allocate(&self, container: &str, thousandths: u64) -> Result<Vec<Gpu>, GpuError> {
        if !thousandths.is_multiple_of(1000) {
            return Err(GpuError::Fraction(format!(
                "{}.{:03}",
                thousandths / 1000,
                thousandths % 1000
            )));
        }
        let wanted = thousandths / 1000;
        if wanted == 0 {
            return Ok(Vec::new());
        }
        let mut held = self.held();
        let free: Vec<&Gpu> = self
            .gpus
            .iter()
            .filter(|g| !held.contains_key(&g.index))
            .collect();
        if (free.len() as u64) < wanted {
            return Err(GpuError::NotEnough {
                wanted,
                free: free.len(),
                total: self.gpus.len(),
            });
        }
        let given: Vec<Gpu> = free
            .into_iter()
            .take(usize::try_from(wanted).unwrap_or(usize::MAX))
            .cloned()
            .collect();
        for g in &given {
            held.insert(g.index, container.to_string());
        }
        Ok(given)
    }

    /// Marks `indices` as held by `container` (a container re-attached after a restart).
    pub fn hold(&self, container: &str, indices: &[u32]) {
        let mut held = self.held();
        for i in indices {
            held.insert(*i, container.to_string());
        }
    }

    /// Frees what `container` holds.
    pub fn release(&self, container: &str) {
        self.held().retain(|_, c| c != container);
    }

    /// The GPUs `container` does not hold (what its devices cgroup denies).
    pub fn denied_to(&self, given: &[Gpu]) -> Vec<Gpu> {
        self.gpus
            .iter()
            .filter(|g| !given.iter().any(|h| h.index == g.index))
            .cloned()
            .collect()
    }
}

/// The agent's root in the v1 `devices` hierarchy, when the host has one.
#[derive(Clone, Debug)]
pub struct DevicesCgroup {
    root: PathBuf,
}

impl DevicesCgroup {
    /// The agent's devices root (`<devices mount>/agora/<agent>`, created), or `None`
    /// when no v1 `devices` hierarchy is mounted (pure cgroup v2).
    pub fn detect(agent: &str) -> Result<Option<DevicesCgroup>, String> {
        let text = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
        let mount = super::cgroups::parse_mountinfo(&text)
            .into_iter()
            .find(|m| {
                m.fs_type == "cgroup" && m.root == "/" && m.options.iter().any(|o| o == "devices")
            });
        let Some(mount) = mount else {
            return Ok(None);
        };
        let root = mount
            .mount_point
            .join(super::cgroups::AGORA_ROOT)
            .join(agent);
        std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
        Ok(Some(DevicesCgroup { root }))
    }

    fn dir(&self, container: &str) -> PathBuf {
        self.root.join(container)
    }

    /// Creates the container's devices cgroup denying `deny`; its `cgroup.procs`.
    pub fn create(&self, container: &str, deny: &[Gpu]) -> Result<PathBuf, String> {
        let dir = self.dir(container);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        }
        let file = dir.join("devices.deny");
        for g in deny {
            if let Err(e) = std::fs::write(&file, g.rule()) {
                let _ = std::fs::remove_dir(&dir);
                return Err(format!("{} ({}): {e}", file.display(), g.rule()));
            }
        }
        Ok(dir.join("cgroup.procs"))
    }

    /// The container's `cgroup.procs`, when its devices cgroup exists.
    pub fn procs(&self, container: &str) -> Option<PathBuf> {
        let dir = self.dir(container);
        dir.is_dir().then(|| dir.join("cgroup.procs"))
    }

    /// Removes the container's devices cgroup (its processes are gone; the kernel may
    /// report it busy for a moment after the last one exits).
    pub async fn remove(&self, container: &str) {
        let dir = self.dir(container);
        for _ in 0..100 {
            match std::fs::remove_dir(&dir) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
        tracing::warn!(container, "cannot remove devices cgroup {}", dir.display());
    }

    /// Removes the agent's devices root when empty.
    pub fn release(&self) {
        let _ = std::fs::remove_dir(&self.root);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(index: u32, minor: u32) -> Gpu {
        Gpu {
            index,
            path: PathBuf::from(format!("/dev/nvidia{minor}")),
            major: 195,
            minor,
        }
    }

    #[test]
    fn whole_devices_lowest_first_never_twice() {
        let pool = GpuPool::new(vec![gpu(0, 0), gpu(1, 1), gpu(2, 2)]);
        assert_eq!(pool.allocate("a", 2000), Ok(vec![gpu(0, 0), gpu(1, 1)]));
        assert_eq!(
            pool.allocate("b", 2000),
            Err(GpuError::NotEnough {
                wanted: 2,
                free: 1,
                total: 3
            })
        );
        assert_eq!(pool.allocate("b", 1000), Ok(vec![gpu(2, 2)]));
        assert_eq!(pool.allocate("c", 0), Ok(vec![]));
        assert_eq!(
            pool.allocate("c", 1500).map_err(|e| e.to_string()),
            Err("gpus must be a whole number, not 1.500".into())
        );
        pool.release("a");
        assert_eq!(pool.allocate("c", 1000), Ok(vec![gpu(0, 0)]));
        assert_eq!(pool.denied_to(&[gpu(0, 0)]), vec![gpu(1, 1), gpu(2, 2)]);
        // Re-attached holders count as holders.
        let pool = GpuPool::new(vec![gpu(0, 0), gpu(1, 1)]);
        pool.hold("old", &[0]);
        assert_eq!(pool.allocate("new", 1000), Ok(vec![gpu(1, 1)]));
    }

    #[test]
    fn nvidia_smi_output() {
        assert_eq!(parse_nvidia_smi("0, 0\n1, 3\n\n"), Ok(vec![(0, 0), (1, 3)]));
        assert!(parse_nvidia_smi("No devices were found").is_err());
        assert_eq!(gpu(1, 3).rule(), "c 195:3 rwm");
    }

    #[test]
    fn listed_devices_must_be_distinct_character_devices() {
        let gpus = discover(
            &[PathBuf::from("/dev/null"), PathBuf::from("/dev/zero")],
            false,
        )
        .expect("two character devices");
        assert_eq!((gpus[0].major, gpus[0].minor, gpus[1].minor), (1, 3, 5));
        assert_eq!(gpus[1].index, 1);
        let err = discover(
            &[PathBuf::from("/dev/null"), PathBuf::from("/dev/null")],
            false,
        )
        .expect_err("same device twice");
        assert!(err.contains("same device"), "{err}");
        let err = discover(&[PathBuf::from("/etc/hostname")], false).expect_err("a file");
        assert!(err.contains("not a character device"), "{err}");
        assert_eq!(discover(&[], false), Ok(vec![]));
    }
}
