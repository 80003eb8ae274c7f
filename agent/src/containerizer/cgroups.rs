//! Control groups: detection of the host's cgroup mode and one implementation per mode.
//!
//! [`Cgroups`] is chosen at run time by [`Cgroups::detect`] from `/proc/self/mountinfo`:
//! [`Cgroups::V1`] (one hierarchy per controller, as on this hybrid host) or
//! [`Cgroups::V2`] (one unified hierarchy with the cpu, memory and pids controllers). Both
//! implement the same operations on a container's cgroup ([`ContainerCgroup`]): create it
//! with its limits, list and kill its processes, read its usage, remove it.
//!
//! Everything this module creates or removes lives under `<hierarchy>/agora/<agent>/`, the
//! agent's own root; it must never create, write or remove a cgroup outside it, and never
//! move or signal a process it did not find in one of its own container cgroups. The pure
//! parts (mountinfo parsing, limit arithmetic, stat file parsing) are unit-tested, so the
//! v2 code paths are checked on hosts that only have v1.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Name of the directory holding every Agora agent's cgroups in each hierarchy.
pub const AGORA_ROOT: &str = "agora";
/// cpu.shares of one cpu (v1).
pub const CPU_SHARES_PER_CPU: u64 = 1024;
/// Smallest cpu.shares the kernel accepts (v1).
pub const MIN_CPU_SHARES: u64 = 2;
/// CFS period used with a hard cpu limit, in microseconds.
pub const CFS_PERIOD_US: u64 = 100_000;
/// Smallest CFS quota the kernel accepts, in microseconds.
pub const MIN_CFS_QUOTA_US: u64 = 1_000;
/// Smallest memory limit given to a container, in MB (a shell needs a few).
pub const MIN_MEMORY_MB: u64 = 32;
/// How long removing a cgroup is retried while the kernel still reports it busy.
pub const REMOVE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long killing a cgroup's processes is retried until it is empty.
pub const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// A cgroup operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No usable cgroup hierarchy (neither v1 cpu+memory+pids nor v2 with them).
    #[error("no usable cgroups: {0}")]
    Unavailable(String),
    /// A file or directory operation failed.
    #[error("cgroup {path}: {error}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The cgroup still has processes after killing them for [`KILL_TIMEOUT`].
    #[error("cgroup {path} still has processes after SIGKILL")]
    NotEmpty {
        /// The cgroup directory.
        path: PathBuf,
    },
    /// An agent or container name that is not a single safe path component.
    #[error("invalid cgroup name {0:?}")]
    BadName(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError + '_ {
    move |error| CgroupError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// The cgroup mode of the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Legacy hierarchies, one mount per controller (or co-mounted ones).
    V1,
    /// The unified hierarchy.
    V2,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::V1 => "cgroups-v1",
            Mode::V2 => "cgroups-v2",
        })
    }
}

/// Mount points of the v1 controllers the agent uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V1Mounts {
    /// The `cpu` controller (cpu.shares, CFS quota, throttling).
    pub cpu: PathBuf,
    /// The `cpuacct` controller (cpu time); may be the same mount as `cpu`.
    pub cpuacct: PathBuf,
    /// The `memory` controller.
    pub memory: PathBuf,
    /// The `pids` controller.
    pub pids: PathBuf,
}

impl V1Mounts {
    /// The distinct hierarchies (co-mounted controllers appear once), in a fixed order.
    pub fn hierarchies(&self) -> Vec<&Path> {
        let mut all: Vec<&Path> = Vec::new();
        for p in [&self.cpu, &self.cpuacct, &self.memory, &self.pids] {
            if !all.contains(&p.as_path()) {
                all.push(p);
            }
        }
        all
    }
}

/// One mount line of `/proc/self/mountinfo` that is a cgroup file system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupMount {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// `cgroup` (v1) or `cgroup2`.
    pub fs_type: String,
    /// v1: the controllers named in the super options (`cpu`, `cpuacct`, ...).
    pub options: Vec<String>,
    /// The root of the mount within the hierarchy (`/` for a full mount).
    pub root: String,
}

/// The cgroup mounts of a mountinfo text. Mount points are unescaped (`\040` is a space).
pub fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    let mut mounts = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split_whitespace().collect();
        let right: Vec<&str> = right.split_whitespace().collect();
        let (Some(root), Some(mount_point), Some(fs_type), Some(super_opts)) =
            (left.get(3), left.get(4), right.first(), right.get(2))
        else {
            continue;
        };
        if *fs_type != "cgroup" && *fs_type != "cgroup2" {
            continue;
        }
        mounts.push(CgroupMount {
            mount_point: PathBuf::from(unescape_mount(mount_point)),
            fs_type: fs_type.to_string(),
            options: super_opts.split(',').map(str::to_string).collect(),
            root: root.to_string(),
        });
    }
    mounts
}

/// Undoes mountinfo's octal escapes (`\040`, `\011`, `\012`, `\134`).
fn unescape_mount(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(oct) = bytes.get(i + 1..i + 4)
            && let Ok(oct) = std::str::from_utf8(oct)
            && let Ok(v) = u8::from_str_radix(oct, 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Picks the cgroup mode from the host's cgroup mounts. `v2_controllers` reads
/// `cgroup.controllers` at a cgroup2 mount point. A v2 hierarchy with cpu, memory and pids
/// wins (pure v2 hosts); otherwise v1 mounts of cpu, memory and pids (cpuacct optional,
/// falling back to the cpu mount); otherwise cgroups are unavailable.
pub fn choose(
    mounts: &[CgroupMount],
    v2_controllers: impl Fn(&Path) -> Option<String>,
) -> Result<Cgroups, CgroupError> {
    const NEEDED: [&str; 3] = ["cpu", "memory", "pids"];
    for m in mounts.iter().filter(|m| m.fs_type == "cgroup2") {
        if m.root != "/" {
            continue;
        }
        if let Some(text) = v2_controllers(&m.mount_point) {
            let have: Vec<&str> = text.split_whitespace().collect();
            if NEEDED.iter().all(|c| have.contains(c)) {
                return Ok(Cgroups::V2(m.mount_point.clone()));
            }
        }
    }
    let find = |controller: &str| {
        mounts
            .iter()
            .filter(|m| m.fs_type == "cgroup" && m.root == "/")
            .find(|m| m.options.iter().any(|o| o == controller))
            .map(|m| m.mount_point.clone())
    };
    match (find("cpu"), find("memory"), find("pids")) {
        (Some(cpu), Some(memory), Some(pids)) => {
            let cpuacct = find("cpuacct").unwrap_or_else(|| cpu.clone());
            Ok(Cgroups::V1(V1Mounts {
                cpu,
                cpuacct,
                memory,
                pids,
            }))
        }
        (cpu, memory, pids) => {
            let missing: Vec<&str> = [("cpu", cpu), ("memory", memory), ("pids", pids)]
                .into_iter()
                .filter(|(_, m)| m.is_none())
                .map(|(n, _)| n)
                .collect();
            Err(CgroupError::Unavailable(format!(
                "no cgroup2 hierarchy with cpu, memory and pids, and no cgroup v1 mount of {}",
                missing.join(", ")
            )))
        }
    }
}

/// Resource limits of one container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// cpus in thousandths (0: no cpu limit).
    pub cpus_thousandths: u64,
    /// Enforce `cpus` as a hard CFS quota, not only as a weight.
    pub cpu_hard_limit: bool,
    /// Memory limit in MB (0: none).
    pub mem_mb: u64,
    /// Most processes (0: none).
    pub pids_max: u64,
}

impl Limits {
    /// v1 cpu.shares: 1024 per cpu, at least 2; `None` without cpus.
    pub fn cpu_shares(&self) -> Option<u64> {
        (self.cpus_thousandths > 0)
            .then(|| (self.cpus_thousandths * CPU_SHARES_PER_CPU / 1000).max(MIN_CPU_SHARES))
    }

    /// v2 cpu.weight for the same share of the machine (the kernel's and systemd's
    /// conversion: 2..262144 shares onto 1..10000).
    pub fn cpu_weight(&self) -> Option<u64> {
        self.cpu_shares()
            .map(|s| 1 + (s.clamp(2, 262_144) - 2) * 9_999 / 262_142)
    }

    /// CFS quota in microseconds per [`CFS_PERIOD_US`]; `None` without a hard limit.
    pub fn cfs_quota_us(&self) -> Option<u64> {
        (self.cpu_hard_limit && self.cpus_thousandths > 0)
            .then(|| (self.cpus_thousandths * CFS_PERIOD_US / 1000).max(MIN_CFS_QUOTA_US))
    }

    /// Memory limit in bytes, at least [`MIN_MEMORY_MB`]; `None` without mem.
    pub fn memory_bytes(&self) -> Option<u64> {
        (self.mem_mb > 0).then(|| self.mem_mb.max(MIN_MEMORY_MB).saturating_mul(1024 * 1024))
    }

    /// The v1 files to write, as (controller, file, value), in order.
    pub fn v1_writes(&self) -> Vec<(V1Controller, &'static str, String)> {
        let mut w = Vec::new();
        if let Some(shares) = self.cpu_shares() {
            w.push((V1Controller::Cpu, "cpu.shares", shares.to_string()));
        }
        if let Some(quota) = self.cfs_quota_us() {
            w.push((
                V1Controller::Cpu,
                "cpu.cfs_period_us",
                CFS_PERIOD_US.to_string(),
            ));
            w.push((V1Controller::Cpu, "cpu.cfs_quota_us", quota.to_string()));
        }
        if let Some(bytes) = self.memory_bytes() {
            w.push((
                V1Controller::Memory,
                "memory.limit_in_bytes",
                bytes.to_string(),
            ));
            // With swap accounting, memory+swap gets the same limit: no swapping past it.
            w.push((
                V1Controller::Memory,
                "memory.memsw.limit_in_bytes",
                bytes.to_string(),
            ));
        }
        if self.pids_max > 0 {
            w.push((V1Controller::Pids, "pids.max", self.pids_max.to_string()));
        }
        w
    }

    /// The v2 files to write, as (file, value), in order.
    pub fn v2_writes(&self) -> Vec<(&'static str, String)> {
        let mut w = Vec::new();
        if let Some(weight) = self.cpu_weight() {
            w.push(("cpu.weight", weight.to_string()));
        }
        if let Some(quota) = self.cfs_quota_us() {
            w.push(("cpu.max", format!("{quota} {CFS_PERIOD_US}")));
        }
        if let Some(bytes) = self.memory_bytes() {
            w.push(("memory.max", bytes.to_string()));
            w.push(("memory.swap.max", "0".to_string()));
        }
        if self.pids_max > 0 {
            w.push(("pids.max", self.pids_max.to_string()));
        }
        w
    }
}

/// The v1 controllers the agent uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V1Controller {
    /// cpu.
    Cpu,
    /// cpuacct.
    Cpuacct,
    /// memory.
    Memory,
    /// pids.
    Pids,
}

/// `key value` lines (cpu.stat, memory.events, memory.oom_control, memory.stat) as a map;
/// lines that do not parse are skipped.
pub fn parse_flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let key = words.next()?;
            let value = words.next()?.parse().ok()?;
            Some((key.to_string(), value))
        })
        .collect()
}

/// A single number file (`memory.usage_in_bytes`, `cpuacct.usage`); `max` is `None`.
pub fn parse_single(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

pub use super::Usage;

/// Turns v1 file contents into [`Usage`] (`USER_HZ` ticks of cpuacct.stat are 10 ms).
pub fn usage_from_v1(files: &BTreeMap<&str, String>) -> Usage {
    let get = |name: &str| files.get(name).map(String::as_str).unwrap_or("");
    let cpu_stat = parse_flat_keyed(get("cpu.stat"));
    let acct = parse_flat_keyed(get("cpuacct.stat"));
    let oom = parse_flat_keyed(get("memory.oom_control"));
    let tick_ns = 10_000_000;
    let limit = parse_single(get("memory.limit_in_bytes"));
    Usage {
        cpu_time_ns: parse_single(get("cpuacct.usage")).unwrap_or(0),
        cpu_user_ns: acct.get("user").copied().unwrap_or(0) * tick_ns,
        cpu_system_ns: acct.get("system").copied().unwrap_or(0) * tick_ns,
        cpu_periods: cpu_stat.get("nr_periods").copied().unwrap_or(0),
        cpu_throttled_periods: cpu_stat.get("nr_throttled").copied().unwrap_or(0),
        cpu_throttled_ns: cpu_stat.get("throttled_time").copied().unwrap_or(0),
        memory_bytes: parse_single(get("memory.usage_in_bytes")).unwrap_or(0),
        memory_peak_bytes: parse_single(get("memory.max_usage_in_bytes")).unwrap_or(0),
        // The kernel reports "no limit" as a huge page-aligned number.
        memory_limit_bytes: limit.filter(|&l| l < (1 << 62)),
        oom_kills: oom.get("oom_kill").copied().unwrap_or(0),
        pids_current: parse_single(get("pids.current")).unwrap_or(0),
    }
}

/// Turns v2 file contents into [`Usage`].
pub fn usage_from_v2(files: &BTreeMap<&str, String>) -> Usage {
    let get = |name: &str| files.get(name).map(String::as_str).unwrap_or("");
    let cpu = parse_flat_keyed(get("cpu.stat"));
    let events = parse_flat_keyed(get("memory.events"));
    let us = |k: &str| cpu.get(k).copied().unwrap_or(0) * 1000;
    Usage {
        cpu_time_ns: us("usage_usec"),
        cpu_user_ns: us("user_usec"),
        cpu_system_ns: us("system_usec"),
        cpu_periods: cpu.get("nr_periods").copied().unwrap_or(0),
        cpu_throttled_periods: cpu.get("nr_throttled").copied().unwrap_or(0),
        cpu_throttled_ns: us("throttled_usec"),
        memory_bytes: parse_single(get("memory.current")).unwrap_or(0),
        memory_peak_bytes: parse_single(get("memory.peak")).unwrap_or(0),
        memory_limit_bytes: parse_single(get("memory.max")),
        oom_kills: events.get("oom_kill").copied().unwrap_or(0),
        pids_current: parse_single(get("pids.current")).unwrap_or(0),
    }
}

/// Accepts a name that is one safe path component.
fn check_name(name: &str) -> Result<(), CgroupError> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(CgroupError::BadName(name.chars().take(64).collect()))
    }
}

/// The host's cgroups, one variant per mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cgroups {
    /// cgroup v1.
    V1(V1Mounts),
    /// cgroup v2, mounted at this path.
    V2(PathBuf),
}

impl Cgroups {
    /// Detects the host's cgroups from `/proc/self/mountinfo`.
    pub fn detect() -> Result<Cgroups, CgroupError> {
        let text = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(io_err(Path::new("/proc/self/mountinfo")))?;
        choose(&parse_mountinfo(&text), |mount| {
            std::fs::read_to_string(mount.join("cgroup.controllers")).ok()
        })
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        match self {
            Cgroups::V1(_) => Mode::V1,
            Cgroups::V2(_) => Mode::V2,
        }
    }

    /// The agent's own root in every hierarchy: `<hierarchy>/agora/<agent>`.
    pub fn agent_roots(&self, agent: &str) -> Result<Vec<PathBuf>, CgroupError> {
        check_name(agent)?;
        Ok(match self {
            Cgroups::V1(m) => m
                .hierarchies()
                .into_iter()
                .map(|h| h.join(AGORA_ROOT).join(agent))
                .collect(),
            Cgroups::V2(root) => vec![root.join(AGORA_ROOT).join(agent)],
        })
    }

    /// Creates the agent's root (and, on v2, enables cpu, memory and pids for the
    /// cgroups below it). Idempotent.
    pub fn prepare(&self, agent: &str) -> Result<(), CgroupError> {
        for root in self.agent_roots(agent)? {
            std::fs::create_dir_all(&root).map_err(io_err(&root))?;
        }
        if let Cgroups::V2(mount) = self {
            let agora = mount.join(AGORA_ROOT);
            let own = agora.join(agent);
            for dir in [mount.as_path(), agora.as_path(), own.as_path()] {
                enable_v2_controllers(dir)?;
            }
        }
        Ok(())
    }

    /// The cgroup of container `name` of agent `agent` (not created).
    pub fn container(&self, agent: &str, name: &str) -> Result<ContainerCgroup, CgroupError> {
        check_name(name)?;
        let roots = self.agent_roots(agent)?;
        Ok(match self {
            Cgroups::V1(m) => {
                let dir = |h: &Path| h.join(AGORA_ROOT).join(agent).join(name);
                ContainerCgroup::V1 {
                    cpu: dir(&m.cpu),
                    cpuacct: dir(&m.cpuacct),
                    memory: dir(&m.memory),
                    pids: dir(&m.pids),
                }
            }
            Cgroups::V2(_) => ContainerCgroup::V2 {
                dir: roots
                    .into_iter()
                    .next()
                    .map(|r| r.join(name))
                    .unwrap_or_default(),
            },
        })
    }

    /// Names of the container cgroups under the agent's root (for recovery and for
    /// cleaning up after a crash).
    pub fn list_containers(&self, agent: &str) -> Result<Vec<String>, CgroupError> {
        let mut names = Vec::new();
        for root in self.agent_roots(agent)? {
            let entries = match std::fs::read_dir(&root) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&root)(e)),
            };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir())
                    && let Some(name) = entry.file_name().to_str()
                    && !names.iter().any(|n| n == name)
                {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        Ok(names)
    }
}

impl Cgroups {
    /// Kills every process in the agent's container cgroups and removes them and the
    /// agent's root, blocking (for drop guards of tests and benchmarks, and for operators
    /// cleaning up an agent that is gone). Only `<hierarchy>/agora/<agent>` is touched.
    pub fn purge_agent(&self, agent: &str) -> Result<(), CgroupError> {
        let containers = self.list_containers(agent)?;
        for name in containers {
            let cg = self.container(agent, &name)?;
            let deadline = std::time::Instant::now() + KILL_TIMEOUT;
            loop {
                cg.signal_all(Signal::SIGKILL);
                if cg.remove_now().is_ok() {
                    break;
                }
                if std::time::Instant::now() >= deadline {
                    return cg.remove_now();
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        for root in self.agent_roots(agent)? {
            match std::fs::remove_dir(&root) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&root)(e)),
            }
        }
        Ok(())
    }
}

fn enable_v2_controllers(dir: &Path) -> Result<(), CgroupError> {
    let file = dir.join("cgroup.subtree_control");
    let current = std::fs::read_to_string(&file).map_err(io_err(&file))?;
    let missing: Vec<String> = ["cpu", "memory", "pids"]
        .into_iter()
        .filter(|c| !current.split_whitespace().any(|w| w == *c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    std::fs::write(&file, missing.join(" ")).map_err(io_err(&file))
}

/// One container's cgroup (a directory per v1 hierarchy, or one v2 directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerCgroup {
    /// v1 directories (cpu and cpuacct may be the same).
    V1 {
        /// In the cpu hierarchy.
        cpu: PathBuf,
        /// In the cpuacct hierarchy.
        cpuacct: PathBuf,
        /// In the memory hierarchy.
        memory: PathBuf,
        /// In the pids hierarchy.
        pids: PathBuf,
    },
    /// The v2 directory.
    V2 {
        /// The directory.
        dir: PathBuf,
    },
}

impl ContainerCgroup {
    /// Every distinct directory of this cgroup.
    pub fn dirs(&self) -> Vec<&Path> {
        match self {
            ContainerCgroup::V1 {
                cpu,
                cpuacct,
                memory,
                pids,
            } => {
                let mut all: Vec<&Path> = Vec::new();
                for p in [cpu, cpuacct, memory, pids] {
                    if !all.contains(&p.as_path()) {
                        all.push(p);
                    }
                }
                all
            }
            ContainerCgroup::V2 { dir } => vec![dir],
        }
    }

    fn v1_dir(&self, controller: V1Controller) -> Option<&Path> {
        match self {
            ContainerCgroup::V1 {
                cpu,
                cpuacct,
                memory,
                pids,
            } => Some(match controller {
                V1Controller::Cpu => cpu,
                V1Controller::Cpuacct => cpuacct,
                V1Controller::Memory => memory,
                V1Controller::Pids => pids,
            }),
            ContainerCgroup::V2 { .. } => None,
        }
    }

    /// Creates the directories and writes the limits. On error, whatever was created is
    /// removed again.
    pub fn create(&self, limits: &Limits) -> Result<(), CgroupError> {
        let result = self.create_inner(limits);
        if result.is_err() {
            let _ = self.remove_now();
        }
        result
    }

    fn create_inner(&self, limits: &Limits) -> Result<(), CgroupError> {
        for dir in self.dirs() {
            match std::fs::create_dir(dir) {
                Ok(()) => {}
                // Left over from a crash: reuse it (its processes are gone or ours).
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(dir)(e)),
            }
        }
        self.write_limits(limits)
    }

    /// Rewrites the limits of an existing container cgroup (an executor's container grows
    /// and shrinks with its tasks). Lowering memory below what is in use fails on cgroup
    /// v1 with the kernel's error; the old limit then stays.
    pub fn write_limits(&self, limits: &Limits) -> Result<(), CgroupError> {
        match self {
            ContainerCgroup::V1 { .. } => {
                // v1 wants memory <= memory+swap at every step: growing needs memsw
                // first, shrinking memory first. A write refused in the first pass is
                // retried once after the others.
                let mut retry = Vec::new();
                for (controller, file, value) in limits.v1_writes() {
                    let Some(dir) = self.v1_dir(controller) else {
                        continue;
                    };
                    let path = dir.join(file);
                    match std::fs::write(&path, &value) {
                        Ok(()) => {}
                        // No swap accounting on this kernel: nothing to limit.
                        Err(e)
                            if file == "memory.memsw.limit_in_bytes"
                                && e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                            retry.push((path, value));
                        }
                        Err(e) => return Err(io_err(&path)(e)),
                    }
                }
                for (path, value) in retry {
                    std::fs::write(&path, &value).map_err(io_err(&path))?;
                }
            }
            ContainerCgroup::V2 { dir } => {
                for (file, value) in limits.v2_writes() {
                    let path = dir.join(file);
                    match std::fs::write(&path, &value) {
                        Ok(()) => {}
                        Err(e)
                            if file == "memory.swap.max"
                                && e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io_err(&path)(e)),
                    }
                }
            }
        }
        Ok(())
    }

    /// The `cgroup.procs` files a new process writes itself into, one per directory.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs()
            .into_iter()
            .map(|d| d.join("cgroup.procs"))
            .collect()
    }

    /// Pids in the cgroup (as seen from the agent's pid namespace).
    pub fn pids(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for file in self.procs_files() {
            if let Ok(text) = std::fs::read_to_string(&file) {
                for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    if !pids.contains(&pid) {
                        pids.push(pid);
                    }
                }
            }
        }
        pids
    }

    /// Whether the cgroup still exists.
    pub fn exists(&self) -> bool {
        self.dirs().iter().any(|d| d.is_dir())
    }

    /// Sends `signal` to every process in the cgroup. Only pids listed in this cgroup's
    /// own `cgroup.procs` are signalled.
    pub fn signal_all(&self, signal: Signal) {
        for pid in self.pids() {
            if pid <= 1 {
                continue;
            }
            match kill(Pid::from_raw(pid), signal) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => tracing::warn!(pid, %signal, error = %e, "cannot signal process"),
            }
        }
    }

    /// SIGKILLs every process until the cgroup is empty (v2: `cgroup.kill` when the kernel
    /// has it). Zombies waiting for their parent count as gone only once the kernel drops
    /// them from `cgroup.procs`.
    pub async fn kill_all(&self) -> Result<(), CgroupError> {
        if let ContainerCgroup::V2 { dir } = self {
            let kill_file = dir.join("cgroup.kill");
            if kill_file.exists() {
                let _ = std::fs::write(&kill_file, "1");
            }
        }
        let deadline = tokio::time::Instant::now() + KILL_TIMEOUT;
        loop {
            if self.pids().is_empty() {
                return Ok(());
            }
            self.signal_all(Signal::SIGKILL);
            if tokio::time::Instant::now() >= deadline {
                let path = self
                    .dirs()
                    .first()
                    .map(|p| p.to_path_buf())
                    .unwrap_or_default();
                return Err(CgroupError::NotEmpty { path });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Removes the directories, retrying while the kernel reports them busy (processes
    /// just killed are still being torn down), for at most [`REMOVE_TIMEOUT`].
    pub async fn remove(&self) -> Result<(), CgroupError> {
        let deadline = tokio::time::Instant::now() + REMOVE_TIMEOUT;
        let mut delay = Duration::from_millis(1);
        loop {
            match self.remove_now() {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(100));
                }
            }
        }
    }

    /// One attempt at removing every directory; a missing one counts as removed.
    pub fn remove_now(&self) -> Result<(), CgroupError> {
        let mut first_error = None;
        for dir in self.dirs() {
            match std::fs::remove_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    if first_error.is_none() {
                        first_error = Some(io_err(dir)(e));
                    }
                }
            }
        }
        match first_error {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Reads the usage counters. Files that cannot be read count as zero.
    pub fn usage(&self) -> Usage {
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        match self {
            ContainerCgroup::V1 {
                cpu,
                cpuacct,
                memory,
                pids,
            } => {
                let mut files = BTreeMap::new();
                files.insert("cpu.stat", read(cpu.join("cpu.stat")));
                files.insert("cpuacct.usage", read(cpuacct.join("cpuacct.usage")));
                files.insert("cpuacct.stat", read(cpuacct.join("cpuacct.stat")));
                for f in [
                    "memory.usage_in_bytes",
                    "memory.max_usage_in_bytes",
                    "memory.limit_in_bytes",
                    "memory.oom_control",
                ] {
                    files.insert(f, read(memory.join(f)));
                }
                files.insert("pids.current", read(pids.join("pids.current")));
                usage_from_v1(&files)
            }
            ContainerCgroup::V2 { dir } => {
                let mut files = BTreeMap::new();
                for f in [
                    "cpu.stat",
                    "memory.current",
                    "memory.peak",
                    "memory.max",
                    "memory.events",
                    "pids.current",
                ] {
                    files.insert(f, read(dir.join(f)));
                }
                usage_from_v2(&files)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const PURE_V2: &str = "\
25 20 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    const COMOUNTED: &str = "\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
";

    fn none(_: &Path) -> Option<String> {
        None
    }

    #[test]
    fn hybrid_host_is_v1() {
        let mounts = parse_mountinfo(HYBRID);
        assert_eq!(mounts.len(), 6);
        // The unified hierarchy has no controllers here.
        let got = choose(&mounts, |_| Some(String::new())).expect("v1");
        assert_eq!(
            got,
            Cgroups::V1(V1Mounts {
                cpu: "/sys/fs/cgroup/cpu".into(),
                cpuacct: "/sys/fs/cgroup/cpuacct".into(),
                memory: "/sys/fs/cgroup/memory".into(),
                pids: "/sys/fs/cgroup/pids".into(),
            })
        );
        assert_eq!(got.mode(), Mode::V1);
    }

    #[test]
    fn pure_v2_host_is_v2() {
        let mounts = parse_mountinfo(PURE_V2);
        let got = choose(&mounts, |p| {
            (p == Path::new("/sys/fs/cgroup")).then(|| "cpuset cpu io memory hugetlb pids\n".into())
        })
        .expect("v2");
        assert_eq!(got, Cgroups::V2("/sys/fs/cgroup".into()));
        // Without the pids controller, v2 is not usable and there is no v1 either.
        let err = choose(&mounts, |_| Some("cpu memory".into())).expect_err("no pids");
        assert!(err.to_string().contains("pids"), "{err}");
    }

    #[test]
    fn comounted_cpu_cpuacct() {
        let got = choose(&parse_mountinfo(COMOUNTED), none).expect("v1");
        let Cgroups::V1(m) = &got else {
            panic!("expected v1: {got:?}");
        };
        assert_eq!(m.cpu, m.cpuacct);
        assert_eq!(m.hierarchies().len(), 3);
        let c = got.container("a", "c1").expect("names");
        assert_eq!(c.dirs().len(), 3);
        assert_eq!(
            c.procs_files()[0],
            Path::new("/sys/fs/cgroup/cpu,cpuacct/agora/a/c1/cgroup.procs")
        );
    }

    #[test]
    fn no_cgroups_at_all() {
        let err = choose(
            &parse_mountinfo("1 0 0:1 / / rw - ext4 /dev/sda rw\n"),
            none,
        )
        .expect_err("none");
        assert!(err.to_string().contains("cpu, memory, pids"), "{err}");
    }

    #[test]
    fn escaped_mount_points() {
        let m = parse_mountinfo("1 0 0:1 / /a\\040b rw - cgroup2 cgroup2 rw\n");
        assert_eq!(m[0].mount_point, Path::new("/a b"));
    }

    #[test]
    fn v2_container_paths_and_names() {
        let cg = Cgroups::V2("/sys/fs/cgroup".into());
        let c = cg.container("agent-1", "c1").expect("valid");
        assert_eq!(
            c,
            ContainerCgroup::V2 {
                dir: "/sys/fs/cgroup/agora/agent-1/c1".into()
            }
        );
        assert_eq!(
            c.procs_files(),
            vec![PathBuf::from(
                "/sys/fs/cgroup/agora/agent-1/c1/cgroup.procs"
            )]
        );
        for bad in ["", "..", "a/b", "x y", "."] {
            assert!(cg.container("agent", bad).is_err(), "{bad:?}");
            assert!(cg.agent_roots(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn limit_arithmetic() {
        let l = Limits {
            cpus_thousandths: 500,
            cpu_hard_limit: true,
            mem_mb: 64,
            pids_max: 100,
        };
        assert_eq!(l.cpu_shares(), Some(512));
        assert_eq!(l.cfs_quota_us(), Some(50_000));
        assert_eq!(l.memory_bytes(), Some(64 << 20));
        assert_eq!(
            l.v2_writes(),
            vec![
                ("cpu.weight", "20".to_string()),
                ("cpu.max", "50000 100000".to_string()),
                ("memory.max", (64u64 << 20).to_string()),
                ("memory.swap.max", "0".to_string()),
                ("pids.max", "100".to_string()),
            ]
        );
        let v1: Vec<(&str, String)> = l.v1_writes().into_iter().map(|(_, f, v)| (f, v)).collect();
        assert_eq!(v1[0], ("cpu.shares", "512".to_string()));
        assert_eq!(v1[2], ("cpu.cfs_quota_us", "50000".to_string()));
        // One cpu is the kernel's default weight of 100 (v2) and 1024 shares (v1).
        let one = Limits {
            cpus_thousandths: 1000,
            ..Default::default()
        };
        assert_eq!(one.cpu_weight(), Some(39));
        assert_eq!(one.cpu_shares(), Some(1024));
        assert_eq!(one.cfs_quota_us(), None);
        // Tiny values are raised to what the kernel accepts.
        let tiny = Limits {
            cpus_thousandths: 1,
            cpu_hard_limit: true,
            mem_mb: 1,
            pids_max: 0,
        };
        assert_eq!(tiny.cpu_shares(), Some(2));
        assert_eq!(tiny.cpu_weight(), Some(1));
        assert_eq!(tiny.cfs_quota_us(), Some(1000));
        assert_eq!(tiny.memory_bytes(), Some(32 << 20));
        assert!(Limits::default().v1_writes().is_empty());
        assert!(Limits::default().v2_writes().is_empty());
    }

    #[test]
    fn usage_parsing() {
        let mut v2 = BTreeMap::new();
        v2.insert(
            "cpu.stat",
            "usage_usec 2000\nuser_usec 1500\nsystem_usec 500\nnr_periods 10\nnr_throttled 4\nthrottled_usec 300\n"
                .to_string(),
        );
        v2.insert("memory.current", "4096\n".to_string());
        v2.insert("memory.max", "max\n".to_string());
        v2.insert(
            "memory.events",
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n".to_string(),
        );
        let u = usage_from_v2(&v2);
        assert_eq!(u.cpu_time_ns, 2_000_000);
        assert_eq!(u.cpu_throttled_periods, 4);
        assert_eq!(u.cpu_throttled_ns, 300_000);
        assert_eq!(u.memory_bytes, 4096);
        assert_eq!(u.memory_limit_bytes, None);
        assert_eq!(u.oom_kills, 1);

        let mut v1 = BTreeMap::new();
        v1.insert("cpuacct.usage", "123456\n".to_string());
        v1.insert("cpuacct.stat", "user 3\nsystem 1\n".to_string());
        v1.insert(
            "cpu.stat",
            "nr_periods 7\nnr_throttled 2\nthrottled_time 99\n".to_string(),
        );
        v1.insert(
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n".to_string(),
        );
        v1.insert("memory.limit_in_bytes", "9223372036854771712\n".to_string());
        let u = usage_from_v1(&v1);
        assert_eq!(u.cpu_time_ns, 123_456);
        assert_eq!(u.cpu_user_ns, 30_000_000);
        assert_eq!(u.cpu_periods, 7);
        assert_eq!(u.cpu_throttled_ns, 99);
        assert_eq!(u.oom_kills, 2);
        assert_eq!(u.memory_limit_bytes, None);
    }
}
