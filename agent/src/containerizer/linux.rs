//! The Linux containerizer: each task in its own cgroup (cpu, memory, pids limits) and its
//! own pid, mount, uts and ipc namespaces.
//!
//! Owns, per container, a run directory `<work-dir>/containers/<container-id>/` (where the
//! container's init leaves the main process' wait status), the cgroup
//! `<hierarchy>/agora/<agent>/<container-id>` in each hierarchy, and one reaper tokio task
//! that waits (through a pidfd) for the container's init to end, then kills whatever is left
//! in the cgroup, reads its OOM counter and removes the cgroup and run directory.
//!
//! It must never signal a process that is not in one of its own container cgroups (or the
//! init it cloned), never create or remove a cgroup outside `<hierarchy>/agora/<agent>/`,
//! and never leave a cgroup, process or mount behind once a container has ended: mounts
//! live only in the container's mount namespace, which dies with its last process.
//!
//! Containers survive the agent: init runs in its own session and cgroup, so an agent that
//! dies (even by SIGKILL) leaves them running, and [`LinuxContainerizer::recover`] re-attaches
//! to them from their checkpointed pid and start time.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::sync::watch;

use super::cgroups::{CgroupError, Cgroups, ContainerCgroup, Limits, Usage};
use super::gpus::{DevicesCgroup, Gpu, GpuPool};
use super::image::{ImageStore, symlink_on_path};
use super::process::{
    RunAs, check_environment, create_output, give_fd_to, give_to, resolve_user, sandbox_error,
    sandbox_owner,
};
use super::spawn::{self, ChildSetup, RootSetup};
use super::{
    Container, ContainerRef, Containerizer, LaunchError, LaunchSpec, Program, Termination,
};
use crate::sandbox::sandbox_dir;

/// Default most processes per container.
pub const DEFAULT_PIDS_MAX: u64 = 4096;
/// PATH used to find a program when neither the command nor the agent has one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Settings of the Linux containerizer.
#[derive(Clone, Debug)]
pub struct LinuxConfig {
    /// Enforce `cpus` as a hard CFS quota (otherwise only as a weight).
    pub cpu_hard_limit: bool,
    /// Most processes per container (0: unlimited).
    pub pids_max: u64,
    /// Name of the agent's cgroup root below `<hierarchy>/agora/` (default: derived from
    /// the work directory, so agents with different work directories never collide and a
    /// restarted agent finds its containers again).
    pub agent_name: Option<String>,
    /// The containers' network (`--network`).
    pub network: NetworkMode,
    /// Where an isolated container's ports are published on the host (`--publish-address`).
    pub publish_address: std::net::IpAddr,
    /// Directories (canonical) tasks may name images below (`--image-dir`); empty: no
    /// task may name an image.
    pub image_dirs: Vec<PathBuf>,
    /// The devices handed out as `gpus` ([`super::gpus`]); empty: none.
    pub gpus: Vec<Gpu>,
}

/// A container's network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum NetworkMode {
    /// The host's network namespace (ports are only watched, see [`super::limits`]).
    #[default]
    Host,
    /// Its own network namespace with only a loopback interface: no way out, no way in
    /// but its allocated ports, which the agent forwards from the host
    /// ([`super::publish`]).
    Isolated,
}

impl Default for LinuxConfig {
    fn default() -> LinuxConfig {
        LinuxConfig {
            cpu_hard_limit: false,
            pids_max: DEFAULT_PIDS_MAX,
            agent_name: None,
            network: NetworkMode::Host,
            publish_address: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            image_dirs: Vec::new(),
            gpus: Vec::new(),
        }
    }
}

/// The cgroup root name of an agent with this (absolute) work directory: `w` and the
/// 64-bit FNV-1a hash of the path, in hex. Stable across runs and Rust versions.
pub fn agent_cgroup_name(work_dir: &Path) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in work_dir.as_os_str().as_bytes() {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("w{hash:016x}")
}

/// Runs each task in a cgroup and namespaces of its own.
#[derive(Clone, Debug)]
pub struct LinuxContainerizer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    work_dir: PathBuf,
    cgroups: Cgroups,
    agent_name: String,
    config: LinuxConfig,
    images: ImageStore,
    gpus: GpuPool,
    /// The agent's devices cgroup root (v1), when it has GPUs to keep apart.
    devices: Option<DevicesCgroup>,
}

impl LinuxContainerizer {
    /// Detects the host's cgroups and prepares the agent's cgroup root. Fails when cgroups
    /// are unusable (the caller then falls back to the process containerizer, explicitly).
    pub fn new(
        work_dir: impl AsRef<Path>,
        config: LinuxConfig,
    ) -> Result<LinuxContainerizer, CgroupError> {
        let work_dir = std::path::absolute(work_dir.as_ref()).map_err(|error| CgroupError::Io {
            path: work_dir.as_ref().to_path_buf(),
            error,
        })?;
        let cgroups = Cgroups::detect()?;
        let agent_name = config
            .agent_name
            .clone()
            .unwrap_or_else(|| agent_cgroup_name(&work_dir));
        cgroups.prepare(&agent_name)?;
        let images = ImageStore::new(&work_dir, config.image_dirs.clone());
        let devices = if config.gpus.is_empty() {
            None
        } else {
            let devices = DevicesCgroup::detect(&agent_name).map_err(CgroupError::Unavailable)?;
            if devices.is_none() {
                tracing::warn!(
                    "no cgroup v1 devices controller: GPUs are kept apart only for tasks with an image \
                     (their /dev); tasks on the host's file system can open every GPU (a cgroup v2 \
                     device filter needs a BPF program, not implemented)"
                );
            }
            devices
        };
        Ok(LinuxContainerizer {
            inner: Arc::new(Inner {
                gpus: GpuPool::new(config.gpus.clone()),
                devices,
                images,
                work_dir,
                cgroups,
                agent_name,
                config,
            }),
        })
    }

    /// The detected cgroups.
    pub fn cgroups(&self) -> &Cgroups {
        &self.inner.cgroups
    }

    /// The agent's cgroup root name.
    pub fn agent_name(&self) -> &str {
        &self.inner.agent_name
    }

    /// The cgroup of a container of this agent.
    pub fn container_cgroup(&self, container_id: &str) -> Result<ContainerCgroup, CgroupError> {
        self.inner
            .cgroups
            .container(&self.inner.agent_name, container_id)
    }

    /// Names of the container cgroups that exist under the agent's root.
    pub fn existing_containers(&self) -> Result<Vec<String>, CgroupError> {
        self.inner.cgroups.list_containers(&self.inner.agent_name)
    }

    /// Kills every process of a container cgroup nobody tracks (left by a crashed agent)
    /// and removes it with its run directory.
    pub async fn destroy_orphan(&self, container_id: &str) -> Result<(), CgroupError> {
        let cgroup = self.container_cgroup(container_id)?;
        cgroup.kill_all().await?;
        cgroup.remove().await?;
        if let Some(devices) = &self.inner.devices {
            devices.remove(container_id).await;
        }
        let _ = std::fs::remove_dir_all(run_dir(&self.inner.work_dir, container_id));
        Ok(())
    }
}

/// The file in a container's run directory listing the ports to publish.
const PORTS_FILE: &str = "ports";

/// Publishes the allocated ports of a container in its own network namespace
/// ([`super::publish`]); `None` when it has none or shares the host's network.
fn publish_ports(
    inner: &Inner,
    reference: &ContainerRef,
    pidfd: &std::os::fd::OwnedFd,
) -> Result<Option<super::publish::Published>, String> {
    if inner.config.network != NetworkMode::Isolated {
        return Ok(None);
    }
    let file = run_dir(&inner.work_dir, &reference.container_id).join(PORTS_FILE);
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let ports = text
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| p.trim().parse::<u16>())
        .collect::<Result<Vec<u16>, _>>()
        .map_err(|e| format!("bad port list in {}: {e}", file.display()))?;
    if ports.is_empty() {
        return Ok(None);
    }
    // A container that already ended (a short task) has nothing left to publish: its
    // reaper reports how it ended.
    let ended = || spawn::pidfd_send_signal(pidfd, 0).is_err();
    let path = format!("/proc/{}/ns/net", reference.pid);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        // Gone from /proc (an exited init, possibly not reaped yet: a zombie still takes
        // signals, so only this says it ended).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound || ended() => return Ok(None),
        Err(e) => return Err(format!("cannot open {path}: {e}")),
    };
    // The namespace is the container's only if its init still ran after it was opened.
    if ended() {
        return Ok(None);
    }
    if !super::publish::is_own_namespace(&file) {
        return Err(format!(
            "container {} shares the host's network; its ports are not published",
            reference.container_id
        ));
    }
    super::publish::publish(file.into(), inner.config.publish_address, &ports).map(Some)
}

fn run_dir(work_dir: &Path, container_id: &str) -> PathBuf {
    work_dir.join("containers").join(container_id)
}

impl Containerizer for LinuxContainerizer {
    fn launch(
        &self,
        spec: LaunchSpec,
    ) -> BoxFuture<'static, Result<Arc<dyn Container>, LaunchError>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let blocking_inner = Arc::clone(&inner);
            let started = tokio::task::spawn_blocking(move || start(&blocking_inner, &spec))
                .await
                .map_err(|e| LaunchError::Spawn {
                    program: String::new(),
                    error: std::io::Error::other(format!("launch task failed: {e}")),
                })??;
            let published = match publish_ports(&inner, &started.reference, &started.pidfd) {
                Ok(p) => p,
                Err(e) => {
                    // Not reachable as promised: the container goes, the launch fails.
                    let _ = started.cgroup.kill_all().await;
                    attach(&inner, started, true, None).wait().await;
                    return Err(LaunchError::Spawn {
                        program: "port publishing".into(),
                        error: std::io::Error::other(e),
                    });
                }
            };
            Ok(attach(&inner, started, true, published))
        })
    }

    fn recover(&self, reference: ContainerRef) -> BoxFuture<'static, Option<Arc<dyn Container>>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move { recover(&inner, reference).await })
    }

    fn destroy_orphans(&self, owned: Vec<String>) -> BoxFuture<'static, ()> {
        let this = self.clone();
        Box::pin(async move {
            let existing = match this.existing_containers() {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!("cannot list the agent's containers: {e}");
                    return;
                }
            };
            for id in existing.into_iter().filter(|id| !owned.contains(id)) {
                tracing::warn!(container = %id, "destroying a container no task owns");
                if let Err(e) = this.destroy_orphan(&id).await {
                    tracing::error!(container = %id, "{e}");
                }
            }
        })
    }

    fn release(&self) -> BoxFuture<'static, ()> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            // Only empty directories go: a container still there (a task that could not
            // be killed) keeps its root.
            if let Ok(roots) = inner.cgroups.agent_roots(&inner.agent_name) {
                for root in roots {
                    let _ = std::fs::remove_dir(root);
                }
            }
            if let Some(devices) = &inner.devices {
                devices.release();
            }
        })
    }

    fn isolation(&self) -> &'static str {
        "linux"
    }
}

/// A container whose init runs.
struct Started {
    reference: ContainerRef,
    cgroup: ContainerCgroup,
    pidfd: std::os::fd::OwnedFd,
}

/// The container's limits from the task's resources.
fn limits(inner: &Inner, spec: &LaunchSpec) -> Limits {
    limits_of(base_limits(inner), &spec.resources)
}

fn base_limits(inner: &Inner) -> Limits {
    Limits {
        cpu_hard_limit: inner.config.cpu_hard_limit,
        pids_max: inner.config.pids_max,
        ..Limits::default()
    }
}

fn limits_of(base: Limits, resources: &agora_resources::Resources) -> Limits {
    Limits {
        cpus_thousandths: resources.scalar("cpus").thousandths(),
        mem_mb: resources.scalar("mem").thousandths() / 1000,
        ..base
    }
}

fn cstring(what: &str, bytes: impl Into<Vec<u8>>) -> Result<CString, LaunchError> {
    CString::new(bytes).map_err(|_| LaunchError::Spawn {
        program: what.to_string(),
        error: std::io::Error::new(std::io::ErrorKind::InvalidInput, "contains a NUL byte"),
    })
}

/// Finds `name` in `path` (or takes it as is when it has a '/').
pub(super) fn find_program(name: &str, path: &OsStr) -> Result<PathBuf, LaunchError> {
    let not_found = || LaunchError::Spawn {
        program: name.to_string(),
        error: std::io::Error::from_raw_os_error(libc::ENOENT),
    };
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    for dir in std::env::split_paths(path) {
        let candidate = dir.join(name);
        if let Ok(meta) = std::fs::metadata(&candidate)
            && meta.is_file()
            && meta.permissions().mode() & 0o111 != 0
        {
            return Ok(candidate);
        }
    }
    Err(not_found())
}

/// The task's full environment: `base` (the agent's, or an image's), then the command's,
/// then the user's and Agora's variables (later entries override earlier ones). `sandbox`
/// is the sandbox as the task sees it.
fn environment(
    base: Vec<(OsString, OsString)>,
    spec: &LaunchSpec,
    sandbox: &Path,
    run_as: Option<&RunAs>,
) -> Vec<(OsString, OsString)> {
    let mut env = base;
    let mut set = |k: OsString, v: OsString| {
        if let Some(slot) = env.iter_mut().find(|(n, _)| *n == k) {
            slot.1 = v;
        } else {
            env.push((k, v));
        }
    };
    for (k, v) in &spec.environment {
        set(k.into(), v.into());
    }
    if let Some(r) = run_as {
        set("USER".into(), r.name.clone().into());
        set("LOGNAME".into(), r.name.clone().into());
        set("HOME".into(), r.home.clone().into_os_string());
    }
    for (k, v) in spec.agora_environment(sandbox) {
        set(k.into(), v.into());
    }
    env
}

/// The file in a container's run directory listing the indices of its GPUs.
const GPUS_FILE: &str = "gpus";

/// Starts a container with the GPUs its resources ask for; they are free again when the
/// launch fails.
fn start(inner: &Inner, spec: &LaunchSpec) -> Result<Started, LaunchError> {
    let container_id = uuid::Uuid::new_v4().simple().to_string();
    let gpus = inner
        .gpus
        .allocate(&container_id, spec.resources.scalar("gpus").thousandths())?;
    let started = start_with(inner, spec, container_id.clone(), &gpus);
    if started.is_err() {
        inner.gpus.release(&container_id);
    }
    started
}

/// Character devices a container with GPUs also needs (NVIDIA's control devices), when
/// the host has them: name in `/dev`, major, minor.
fn gpu_control_devices() -> Vec<(String, u32, u32)> {
    ["nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"]
        .iter()
        .filter_map(|name| {
            let g = super::gpus::device(0, &Path::new("/dev").join(name)).ok()?;
            Some((name.to_string(), g.major, g.minor))
        })
        .collect()
}

fn start_with(
    inner: &Inner,
    spec: &LaunchSpec,
    container_id: String,
    gpus: &[Gpu],
) -> Result<Started, LaunchError> {
    let sandbox = sandbox_dir(&inner.work_dir, &spec.framework_id, &spec.task_id)?;
    let run_as = resolve_user(spec.user.as_deref())?;
    std::fs::create_dir_all(&sandbox).map_err(sandbox_error(&sandbox))?;
    let stdout_path = sandbox.join("stdout");
    let stderr_path = sandbox.join("stderr");
    let stdout = create_output(&stdout_path)?;
    let stderr = create_output(&stderr_path)?;
    if let Some(run_as) = &run_as {
        give_to(&sandbox, run_as)?;
        give_fd_to(&stdout, &stdout_path, run_as)?;
        give_fd_to(&stderr, &stderr_path, run_as)?;
    }
    let stdin = std::fs::File::open("/dev/null").map_err(sandbox_error(Path::new("/dev/null")))?;

    let image = match &spec.image {
        Some(path) => Some(inner.images.provision(path)?),
        None => None,
    };
    let env = match &image {
        Some(image) => {
            let mut base: Vec<(OsString, OsString)> = image
                .env
                .iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect();
            if !base.iter().any(|(k, _)| k == "PATH") {
                base.push(("PATH".into(), DEFAULT_PATH.into()));
            }
            environment(base, spec, Path::new(CONTAINER_SANDBOX), run_as.as_ref())
        }
        None => environment(
            std::env::vars_os().collect(),
            spec,
            &sandbox,
            run_as.as_ref(),
        ),
    };
    let mut env = env;
    if !gpus.is_empty() {
        let join = |f: &dyn Fn(&Gpu) -> String| gpus.iter().map(f).collect::<Vec<_>>().join(",");
        let given = [
            ("AGORA_GPUS", join(&|g| g.path.display().to_string())),
            ("NVIDIA_VISIBLE_DEVICES", join(&|g| g.index.to_string())),
        ];
        for (k, v) in given {
            env.retain(|(name, _)| name != k);
            env.push((k.into(), v.into()));
        }
    }
    let path_var = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map_or_else(|| OsString::from(DEFAULT_PATH), |(_, v)| v.clone());
    let (program, argv) = match &spec.program {
        Program::Shell(script) => (
            PathBuf::from("/bin/sh"),
            vec![
                cstring("/bin/sh", "/bin/sh")?,
                cstring("/bin/sh", "-c")?,
                cstring("shell command", script.as_bytes())?,
            ],
        ),
        Program::Argv(args) => {
            // In an image, the lookup happens inside its root (see `programs` below).
            let program = if image.is_some() {
                PathBuf::from(spec.program.executable())
            } else {
                find_program(spec.program.executable(), &path_var)?
            };
            let argv = args
                .iter()
                .map(|a| cstring(spec.program.executable(), a.as_bytes()))
                .collect::<Result<Vec<_>, _>>()?;
            (program, argv)
        }
    };
    let envp = env
        .into_iter()
        .map(|(k, v)| {
            let mut entry = k.into_vec();
            entry.push(b'=');
            entry.extend(v.into_vec());
            cstring("environment", entry)
        })
        .collect::<Result<Vec<_>, _>>()?;

    let programs = match &image {
        Some(_) => program_candidates(&program, &path_var),
        None => vec![program.clone()],
    }
    .into_iter()
    .map(|p| cstring(spec.program.executable(), p.into_os_string().into_vec()))
    .collect::<Result<Vec<_>, _>>()?;

    let run = run_dir(&inner.work_dir, &container_id);
    std::fs::create_dir_all(&run).map_err(sandbox_error(&run))?;
    if !gpus.is_empty() {
        // Read again when a restarted agent re-attaches, to hold the same GPUs.
        let indices: Vec<String> = gpus.iter().map(|g| g.index.to_string()).collect();
        let file = run.join(GPUS_FILE);
        std::fs::write(&file, indices.join(",")).map_err(sandbox_error(&file))?;
    }
    // A device the container is denied is not created in its /dev either (the devices
    // cgroup would refuse the mknod).
    let denied = inner.gpus.denied_to(gpus);
    let mut devices: Vec<(String, u32, u32)> = DEVICES
        .iter()
        .filter(|(_, major, minor)| {
            !denied
                .iter()
                .any(|g| (g.major, g.minor) == (*major, *minor))
        })
        .map(|(name, major, minor)| (name.to_string(), *major, *minor))
        .collect();
    if !gpus.is_empty() {
        for g in gpus {
            let name = g
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| format!("gpu{}", g.index));
            devices.push((name, g.major, g.minor));
        }
        devices.extend(gpu_control_devices());
    }
    let root = match &image {
        Some(image) => match root_setup(&run, &image.layers, &sandbox, &spec.volumes, &devices) {
            Ok(root) => Some(root),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&run);
                return Err(e);
            }
        },
        None => None,
    };
    let cwd = if image.is_some() {
        PathBuf::from(CONTAINER_SANDBOX)
    } else {
        sandbox.clone()
    };
    if inner.config.network == NetworkMode::Isolated {
        // Read again when a restarted agent re-attaches, to publish the same ports.
        let ports: Vec<String> = spec.ports.iter().map(u64::to_string).collect();
        let file = run.join(PORTS_FILE);
        std::fs::write(&file, ports.join(",")).map_err(sandbox_error(&file))?;
    }
    let cgroup = match inner.cgroups.container(&inner.agent_name, &container_id) {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&run);
            return Err(e.into());
        }
    };
    let devices_cgroup = match &inner.devices {
        Some(d) => match d.create(&container_id, &inner.gpus.denied_to(gpus)) {
            Ok(procs) => Some(procs),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&run);
                return Err(LaunchError::Cgroup(CgroupError::Unavailable(format!(
                    "devices cgroup: {e}"
                ))));
            }
        },
        None => None,
    };
    let result = (|| {
        cgroup.create(&limits(inner, spec))?;
        let mut procs = Vec::new();
        for file in cgroup
            .procs_files()
            .into_iter()
            .chain(devices_cgroup.clone())
        {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&file)
                .map_err(|error| CgroupError::Io { path: file, error })?;
            procs.push(std::os::fd::OwnedFd::from(f));
        }
        let setup = ChildSetup {
            programs,
            argv,
            envp,
            cwd: cstring("sandbox path", cwd.as_os_str().as_bytes())?,
            hostname: None,
            stdin: stdin.into(),
            stdout: stdout.into(),
            stderr: stderr.into(),
            cgroup_procs: procs,
            status_path: Some(cstring(
                "run path",
                run.join("status").as_os_str().as_bytes(),
            )?),
            run_as: run_as.as_ref().map(|r| (r.uid, r.gid)),
            enter: Vec::new(),
            new_network: inner.config.network == NetworkMode::Isolated,
            root,
        };
        let pid = spawn::spawn(&setup).map_err(|e| LaunchError::Spawn {
            program: spec.program.executable().to_string(),
            error: match e {
                spawn::SpawnError::Parent { error, .. } => error,
                spawn::SpawnError::Child { stage, error } => {
                    if stage == spawn::Stage::Exec {
                        error
                    } else {
                        std::io::Error::new(error.kind(), format!("{stage}: {error}"))
                    }
                }
            },
        })?;
        let pidfd = spawn::pidfd_open(pid).map_err(|error| LaunchError::Spawn {
            program: "pidfd_open".into(),
            error,
        })?;
        Ok::<_, LaunchError>((pid, pidfd))
    })();
    let (pid, pidfd) = match result {
        Ok(v) => v,
        Err(e) => {
            // Nothing runs in it (spawn reaps a failed init): remove it now.
            if let Err(re) = cgroup.remove_now() {
                tracing::warn!(error = %re, "cannot remove the cgroup of a failed launch");
            }
            if let Some(procs) = &devices_cgroup
                && let Some(dir) = procs.parent()
            {
                let _ = std::fs::remove_dir(dir);
            }
            let _ = std::fs::remove_dir_all(&run);
            return Err(e);
        }
    };
    let reference = ContainerRef {
        container_id,
        pid: pid as u32,
        start_time: process_start_time(pid).unwrap_or(0),
        sandbox,
    };
    tracing::debug!(pid, container = %reference.container_id, "container started");
    Ok(Started {
        reference,
        cgroup,
        pidfd,
    })
}

/// Where the sandbox appears inside a container with an image (as in Mesos).
pub const CONTAINER_SANDBOX: &str = "/mnt/mesos/sandbox";

/// Where an executable named `program` may be: itself when it has a '/', else each
/// absolute directory of `path` joined with it (looked up inside the container's root,
/// which the agent cannot see before the container exists).
fn program_candidates(program: &Path, path: &OsStr) -> Vec<PathBuf> {
    if program.as_os_str().as_bytes().contains(&b'/') {
        return vec![program.to_path_buf()];
    }
    let found: Vec<PathBuf> = std::env::split_paths(path)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(program))
        .collect();
    if found.is_empty() {
        vec![program.to_path_buf()]
    } else {
        found
    }
}

/// Character devices of a container's `/dev` (what every program expects, nothing of
/// the host's hardware): name, major, minor.
const DEVICES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// The root of a container with an image: an overlay of `layers` (bottom first) with its
/// upper and work directories in the run directory `run`, `/proc`, `/dev` (with
/// `devices`: name, major, minor), `/tmp`, the
/// sandbox at [`CONTAINER_SANDBOX`] and each volume bind-mounted at its path in the
/// sandbox. Mount points that are symlinks in the image are refused (mounting on one would
/// follow it outside the root).
fn root_setup(
    run: &Path,
    layers: &[PathBuf],
    sandbox: &Path,
    volumes: &[super::VolumeMount],
    devices: &[(String, u32, u32)],
) -> Result<RootSetup, LaunchError> {
    let image_error = |why: String| LaunchError::Spawn {
        program: "image".into(),
        error: std::io::Error::new(std::io::ErrorKind::InvalidData, why),
    };
    let target = run.join("rootfs");
    let upper = run.join("upper");
    let work = run.join("work");
    for dir in [&target, &upper, &work] {
        std::fs::create_dir_all(dir).map_err(sandbox_error(dir))?;
    }
    let mut lower = Vec::with_capacity(layers.len());
    for layer in layers.iter().rev() {
        let text = layer.to_string_lossy();
        if text.contains([',', ':', '\\']) || text != layer.as_os_str().to_str().unwrap_or("") {
            return Err(image_error(format!(
                "layer path {} cannot be an overlay option (',', ':' or '\\')",
                layer.display()
            )));
        }
        lower.push(text.into_owned());
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    // The kernel takes one page of mount options.
    if options.len() >= 4000 {
        return Err(image_error(format!(
            "{} layers make overlay options of {} bytes; at most 4000 fit",
            layers.len(),
            options.len()
        )));
    }
    let sandbox_in_root = Path::new(CONTAINER_SANDBOX.trim_start_matches('/'));
    let mut points: Vec<PathBuf> = vec!["proc".into(), "dev".into(), "tmp".into()];
    for p in sandbox_in_root
        .ancestors()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        if !p.as_os_str().is_empty() {
            points.push(p.to_path_buf());
        }
    }
    for point in &points {
        if let Some(link) = symlink_on_path(layers, point) {
            return Err(image_error(format!(
                "/{} is a symlink in the image; the container's mounts need a directory there",
                link.display()
            )));
        }
    }
    let c = |p: &Path| cstring("image root", p.as_os_str().as_bytes());
    let dev = target.join("dev");
    let mut binds = vec![(c(sandbox)?, c(&target.join(sandbox_in_root))?)];
    let mut mkdirs: Vec<CString> = points
        .iter()
        .map(|p| c(&target.join(p)))
        .collect::<Result<_, _>>()?;
    for volume in volumes {
        // The volume's mount point: a directory in the (bind-mounted) sandbox, where the
        // host view holds the volume's symlink; the agent replaces it with a directory.
        let point = sandbox.join(&volume.container_path);
        if std::fs::symlink_metadata(&point).is_ok_and(|m| m.file_type().is_symlink()) {
            std::fs::remove_file(&point).map_err(sandbox_error(&point))?;
        }
        std::fs::create_dir_all(&point).map_err(sandbox_error(&point))?;
        binds.push((
            c(&volume.host_path)?,
            c(&target.join(sandbox_in_root).join(&volume.container_path))?,
        ));
    }
    mkdirs.dedup();
    Ok(RootSetup {
        target: c(&target)?,
        overlay_options: cstring("image root", options)?,
        mkdirs,
        proc_dir: c(&target.join("proc"))?,
        dev_dir: c(&dev)?,
        devices: devices
            .iter()
            .map(|(name, major, minor)| Ok((c(&dev.join(name))?, *major, *minor)))
            .collect::<Result<_, LaunchError>>()?,
        symlinks: [
            ("/proc/self/fd", "fd"),
            ("/proc/self/fd/0", "stdin"),
            ("/proc/self/fd/1", "stdout"),
            ("/proc/self/fd/2", "stderr"),
        ]
        .iter()
        .map(|(to, name)| Ok((c(Path::new(to))?, c(&dev.join(name))?)))
        .collect::<Result<_, LaunchError>>()?,
        tmp_dir: c(&target.join("tmp"))?,
        binds,
    })
}

/// Whether process `pid` has a root of its own (a container with an image).
fn has_own_root(pid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::metadata(format!("/proc/{pid}/root/")),
        std::fs::metadata("/"),
    ) {
        (Ok(theirs), Ok(ours)) => (theirs.dev(), theirs.ino()) != (ours.dev(), ours.ino()),
        _ => false,
    }
}

/// Namespaces a command check joins, in the order it joins them.
const CHECK_NAMESPACES: [&str; 5] = ["net", "ipc", "uts", "pid", "mnt"];

/// Starts a command check inside a running container: its namespaces (opened from its
/// init, which `init_pidfd` proves is still the same process), its cgroups, as the
/// sandbox's owner. Returns the pid of the check's session leader (see
/// [`spawn::ChildSetup::enter`]).
fn start_check(
    init_pid: u32,
    init_pidfd: &std::os::fd::OwnedFd,
    cgroup: &ContainerCgroup,
    devices_procs: Option<PathBuf>,
    sandbox: &Path,
    argv: &[String],
) -> Result<i32, String> {
    let mut enter = Vec::new();
    for ns in CHECK_NAMESPACES {
        let path = format!("/proc/{init_pid}/ns/{ns}");
        let f = std::fs::File::open(&path).map_err(|e| format!("cannot open {path}: {e}"))?;
        enter.push(std::os::fd::OwnedFd::from(f));
    }
    // The namespaces are the container's only if its init still runs now (a pid reused
    // after it ended would make them another process').
    spawn::pidfd_send_signal(init_pidfd, 0).map_err(|_| "the container has ended".to_string())?;
    let run_as = sandbox_owner(sandbox)?;
    let (name, args) = argv.split_first().ok_or("empty command")?;
    let own_root = has_own_root(init_pid);
    let c = |what: &str, b: &[u8]| cstring(what, b).map_err(|e| e.to_string());
    let programs = if own_root {
        program_candidates(Path::new(name), OsStr::new(DEFAULT_PATH))
    } else {
        vec![find_program(name, OsStr::new(DEFAULT_PATH)).map_err(|e| e.to_string())?]
    }
    .into_iter()
    .map(|p| c("program", p.as_os_str().as_bytes()))
    .collect::<Result<Vec<_>, _>>()?;
    let cwd = if own_root {
        Path::new(CONTAINER_SANDBOX)
    } else {
        sandbox
    };
    let mut cargv = vec![c("argv", name.as_bytes())?];
    for a in args {
        cargv.push(c("argv", a.as_bytes())?);
    }
    let envp = check_environment(cwd, run_as.as_ref())
        .into_iter()
        .map(|(k, v)| c("environment", format!("{k}={v}").as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let null = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map(std::os::fd::OwnedFd::from)
            .map_err(|e| format!("cannot open /dev/null: {e}"))
    };
    let mut procs = Vec::new();
    for file in cgroup.procs_files().into_iter().chain(devices_procs) {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .map_err(|e| format!("cannot open {}: {e}", file.display()))?;
        procs.push(std::os::fd::OwnedFd::from(f));
    }
    let setup = ChildSetup {
        programs,
        argv: cargv,
        envp,
        cwd: c("sandbox path", cwd.as_os_str().as_bytes())?,
        hostname: None,
        stdin: null()?,
        stdout: null()?,
        stderr: null()?,
        cgroup_procs: procs,
        status_path: None,
        run_as: run_as.as_ref().map(|r| (r.uid, r.gid)),
        enter,
        new_network: false,
        root: None,
    };
    spawn::spawn(&setup).map_err(|e| format!("cannot run {name:?} in the container: {e}"))
}

/// Waits for a started check (our child) to end, killing its process group after
/// `timeout`; its exit status.
async fn wait_check(pid: i32, timeout: Duration) -> Result<(), String> {
    let pidfd = Arc::new(spawn::pidfd_open(pid).map_err(|e| format!("pidfd_open: {e}"))?);
    let timed_out = tokio::time::timeout(timeout, spawn::pidfd_exited(Arc::clone(&pidfd)))
        .await
        .is_err();
    if timed_out {
        // The leader of the check's session is our unreaped child, so its group id cannot
        // have been reused.
        let _ = nix::sys::signal::killpg(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = spawn::pidfd_exited(pidfd).await;
    }
    let status = tokio::task::spawn_blocking(move || waitpid(Pid::from_raw(pid), None))
        .await
        .map_err(|e| e.to_string())?;
    if timed_out {
        return Err(format!("timed out after {timeout:?}"));
    }
    match status {
        Ok(WaitStatus::Exited(_, 0)) => Ok(()),
        Ok(WaitStatus::Exited(_, code)) if code > 128 => Err(format!(
            "command terminated by {}",
            super::signal_name(code - 128)
        )),
        Ok(WaitStatus::Exited(_, code)) => Err(format!("command exited with status {code}")),
        Ok(other) => Err(format!("command ended: {other:?}")),
        Err(e) => Err(format!("cannot reap the command: {e}")),
    }
}

/// Field 22 of `/proc/<pid>/stat` (start time in clock ticks since boot): with the pid, it
/// identifies a process across pid reuse.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // After the name: state is field 3, so start time (22) is the 20th field here.
    rest.split_whitespace().nth(19)?.parse().ok()
}

async fn recover(inner: &Arc<Inner>, reference: ContainerRef) -> Option<Arc<dyn Container>> {
    let cgroup = inner
        .cgroups
        .container(&inner.agent_name, &reference.container_id)
        .ok()?;
    let pid = i32::try_from(reference.pid).ok()?;
    let alive = process_start_time(pid).is_some_and(|t| t == reference.start_time)
        && cgroup.pids().contains(&pid);
    let pidfd = if alive {
        spawn::pidfd_open(pid).ok()
    } else {
        None
    };
    match pidfd {
        Some(pidfd) => {
            let gpus_file = run_dir(&inner.work_dir, &reference.container_id).join(GPUS_FILE);
            if let Ok(text) = std::fs::read_to_string(&gpus_file) {
                let indices: Vec<u32> = text
                    .split(',')
                    .filter_map(|i| i.trim().parse().ok())
                    .collect();
                inner.gpus.hold(&reference.container_id, &indices);
            }
            let published = publish_ports(inner, &reference, &pidfd).unwrap_or_else(|e| {
                tracing::error!(container = %reference.container_id, "re-attached, but its ports are not reachable: {e}");
                None
            });
            Some(attach(
                inner,
                Started {
                    reference,
                    cgroup,
                    pidfd,
                },
                false,
                published,
            ))
        }
        None => {
            // It ended while the agent was away: report how, from init's status file.
            let termination = finish(inner, &reference, &cgroup, None).await;
            let (tx, rx) = watch::channel(Some(termination));
            drop(tx);
            Some(Arc::new(LinuxContainer {
                reference,
                cgroup,
                base_limits: base_limits(inner),
                pidfd: None,
                devices_procs: None,
                rx,
            }))
        }
    }
}

/// Starts the reaper of a running container; `published` ports are forwarded until it ends.
fn attach(
    inner: &Arc<Inner>,
    started: Started,
    own_child: bool,
    published: Option<super::publish::Published>,
) -> Arc<dyn Container> {
    let Started {
        reference,
        cgroup,
        pidfd,
    } = started;
    let pidfd = Arc::new(pidfd);
    let (tx, rx) = watch::channel(None);
    let container = Arc::new(LinuxContainer {
        reference: reference.clone(),
        cgroup: cgroup.clone(),
        base_limits: base_limits(inner),
        pidfd: Some(Arc::clone(&pidfd)),
        devices_procs: inner
            .devices
            .as_ref()
            .and_then(|d| d.procs(&reference.container_id)),
        rx,
    });
    let inner = Arc::clone(inner);
    tokio::spawn(async move {
        let waited = spawn::pidfd_exited(Arc::clone(&pidfd)).await;
        let init_status = if own_child { reap(reference.pid) } else { None };
        let termination = match waited {
            Ok(()) => finish(&inner, &reference, &cgroup, init_status).await,
            Err(e) => {
                // Cannot watch it: destroy it so nothing runs untracked.
                let _ = cgroup.kill_all().await;
                let t = finish(&inner, &reference, &cgroup, reap(reference.pid)).await;
                tracing::error!(container = %reference.container_id, "cannot wait for the container: {e}");
                match t {
                    Termination::Unknown(_) => Termination::Unknown(format!("waiting failed: {e}")),
                    other => other,
                }
            }
        };
        drop(published);
        tx.send_replace(Some(termination));
    });
    container
}

/// Reaps init (our child); its wait status.
fn reap(pid: u32) -> Option<WaitStatus> {
    let pid = Pid::from_raw(i32::try_from(pid).ok()?);
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return None,
            Ok(status) => return Some(status),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
}

/// After init ended: what the main process did (init's status file, else init's own
/// status), any remaining process killed, OOM kills checked, cgroup and run dir removed.
async fn finish(
    inner: &Inner,
    reference: &ContainerRef,
    cgroup: &ContainerCgroup,
    init_status: Option<WaitStatus>,
) -> Termination {
    let run = run_dir(&inner.work_dir, &reference.container_id);
    let main = std::fs::read(run.join("status"))
        .ok()
        .and_then(|b| <[u8; 4]>::try_from(b.as_slice()).ok())
        .map(i32::from_ne_bytes);
    let termination = match (main, init_status) {
        (Some(raw), _) => termination_of_raw(raw),
        (None, Some(WaitStatus::Exited(_, code))) => Termination::Exited(code),
        (None, Some(WaitStatus::Signaled(_, sig, _))) => Termination::Signaled(sig as i32),
        (None, _) => Termination::Unknown(
            "the container ended without recording its main process' status".into(),
        ),
    };
    if let Err(e) = cgroup.kill_all().await {
        tracing::error!(container = %reference.container_id, "{e}");
    }
    let usage = cgroup.usage();
    if let Err(e) = cgroup.remove().await {
        tracing::error!(container = %reference.container_id, "cannot remove cgroup: {e}");
    }
    if let Some(devices) = &inner.devices {
        devices.remove(&reference.container_id).await;
    }
    inner.gpus.release(&reference.container_id);
    let _ = std::fs::remove_dir_all(&run);
    if usage.oom_kills > 0 {
        let limit_mb = usage.memory_limit_bytes.map(|b| b / (1024 * 1024));
        return Termination::MemoryLimit(format!(
            "memory limit{} reached: {} process(es) OOM-killed; {termination}",
            limit_mb.map(|m| format!(" of {m} MB")).unwrap_or_default(),
            usage.oom_kills
        ));
    }
    termination
}

fn termination_of_raw(raw: i32) -> Termination {
    if libc::WIFEXITED(raw) {
        Termination::Exited(libc::WEXITSTATUS(raw))
    } else if libc::WIFSIGNALED(raw) {
        Termination::Signaled(libc::WTERMSIG(raw))
    } else {
        Termination::Unknown(format!("unexpected wait status {raw:#x}"))
    }
}

/// One container.
struct LinuxContainer {
    reference: ContainerRef,
    cgroup: ContainerCgroup,
    /// The limits not derived from resources (cpu hard limit, pids).
    base_limits: Limits,
    /// `None` for a container found ended at recovery.
    pidfd: Option<Arc<std::os::fd::OwnedFd>>,
    /// Its devices cgroup's `cgroup.procs` (agents with GPUs), which checks join too.
    devices_procs: Option<PathBuf>,
    rx: watch::Receiver<Option<Termination>>,
}

impl Container for LinuxContainer {
    fn pid(&self) -> u32 {
        self.reference.pid
    }

    fn pids(&self) -> Vec<u32> {
        // The main process first: its network namespace is the container's.
        let mut pids = vec![self.reference.pid];
        pids.extend(
            self.cgroup
                .pids()
                .into_iter()
                .filter_map(|p| u32::try_from(p).ok())
                .filter(|p| *p != self.reference.pid),
        );
        pids
    }

    fn run_check(
        &self,
        argv: Vec<String>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(), String>> {
        let pidfd = self.pidfd.clone();
        let cgroup = self.cgroup.clone();
        let reference = self.reference.clone();
        let devices_procs = self.devices_procs.clone();
        Box::pin(async move {
            let pidfd = pidfd.ok_or("the container has ended")?;
            let pid = tokio::task::spawn_blocking(move || {
                start_check(
                    reference.pid,
                    &pidfd,
                    &cgroup,
                    devices_procs,
                    &reference.sandbox,
                    &argv,
                )
            })
            .await
            .map_err(|e| e.to_string())??;
            wait_check(pid, timeout).await
        })
    }

    fn update_resources(&self, resources: &agora_resources::Resources) -> Result<(), String> {
        let limits = limits_of(self.base_limits.clone(), resources);
        self.cgroup.write_limits(&limits).map_err(|e| e.to_string())
    }

    fn sandbox(&self) -> &Path {
        &self.reference.sandbox
    }

    fn wait(&self) -> BoxFuture<'static, Termination> {
        let mut rx = self.rx.clone();
        Box::pin(async move { super::wait_termination(&mut rx).await })
    }

    fn kill(&self, grace: Duration) -> BoxFuture<'static, Termination> {
        let mut rx = self.rx.clone();
        let cgroup = self.cgroup.clone();
        let pidfd = self.pidfd.clone();
        let id = self.reference.container_id.clone();
        Box::pin(async move {
            let ended = rx.borrow().clone();
            if let Some(t) = ended {
                return t;
            }
            // Init ignores SIGTERM (pid 1 without a handler); every other process gets it.
            cgroup.signal_all(Signal::SIGTERM);
            if let Ok(t) = tokio::time::timeout(grace, super::wait_termination(&mut rx)).await {
                return t;
            }
            tracing::info!(container = %id, grace_ms = grace.as_millis(), "container outlived its grace period; sending SIGKILL");
            // Killing init makes the kernel kill the whole pid namespace.
            if let Some(fd) = &pidfd
                && let Err(e) = spawn::pidfd_send_signal(fd, libc::SIGKILL)
                && e.raw_os_error() != Some(libc::ESRCH)
            {
                tracing::warn!(container = %id, "cannot SIGKILL init: {e}");
            }
            if let Err(e) = cgroup.kill_all().await {
                tracing::error!(container = %id, "{e}");
            }
            super::wait_termination(&mut rx).await
        })
    }

    fn usage(&self) -> Option<Usage> {
        self.cgroup.exists().then(|| self.cgroup.usage())
    }

    fn reference(&self) -> Option<ContainerRef> {
        Some(self.reference.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_name_is_stable_and_safe() {
        let a = agent_cgroup_name(Path::new("/tmp/agora-agent"));
        assert_eq!(a, agent_cgroup_name(Path::new("/tmp/agora-agent")));
        assert_ne!(a, agent_cgroup_name(Path::new("/tmp/agora-agent2")));
        assert_eq!(a.len(), 17);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn raw_status_decoding() {
        assert_eq!(termination_of_raw(3 << 8), Termination::Exited(3));
        assert_eq!(termination_of_raw(9), Termination::Signaled(9));
    }

    #[test]
    fn program_lookup() {
        let found = find_program("sh", OsStr::new("/nonexistent:/bin:/usr/bin")).expect("sh");
        assert!(found.ends_with("sh"));
        assert!(find_program("no-such-program-xyz", OsStr::new("/bin")).is_err());
        assert_eq!(
            find_program("./x", OsStr::new("")).expect("path"),
            PathBuf::from("./x")
        );
    }

    #[test]
    fn own_start_time_is_readable() {
        let me = i32::try_from(std::process::id()).expect("pid fits");
        assert!(process_start_time(me).is_some());
    }
}
