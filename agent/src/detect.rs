//! Detection of the host's resources for kinds the operator did not give in `--resources`.
//!
//! - `cpus`: the number of CPUs this process may use (`available_parallelism`).
//! - `mem` (MB): `MemTotal` from `/proc/meminfo` minus 1024 MB reserved for the system, or
//!   half of it on hosts with less than 2048 MB.
//! - `disk` (MB): the size of the file system holding the work directory (statvfs) minus
//!   5120 MB reserved, or half of it when it is smaller than 10240 MB.
//! - `ports`: `[31000-32000]`.
//!
//! A kind counts as given when any entry of that name is present, reserved or not
//! (`cpus(spark):8` alone means the agent offers exactly those 8 cpus).
//!
//! Owns only arithmetic and read-only probes of the host ([`HostProbe`]); it must never
//! write anything. The pure parts are unit-tested with a fixed probe.

use std::path::{Path, PathBuf};

use agora_resources::{Ranges, Resource, ResourceError, Resources, Scalar, Value};

/// Memory kept for the operating system, in MB.
pub const MEM_RESERVED_MB: u64 = 1024;
/// Disk kept for the operating system, in MB.
pub const DISK_RESERVED_MB: u64 = 5 * 1024;
/// Port range offered when `ports` is not given.
pub const DEFAULT_PORTS: (u64, u64) = (31000, 32000);

/// A probe of the host failed.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The CPU count is unavailable.
    #[error("cannot detect cpus: {0}")]
    Cpus(std::io::Error),
    /// `/proc/meminfo` cannot be read.
    #[error("cannot read /proc/meminfo: {0}")]
    MemInfo(std::io::Error),
    /// `/proc/meminfo` has no usable `MemTotal` line.
    #[error("no MemTotal line in /proc/meminfo")]
    NoMemTotal,
    /// statvfs of the work directory failed.
    #[error("cannot statvfs {path}: {error}")]
    Statvfs {
        /// The path.
        path: PathBuf,
        /// The OS error.
        error: nix::Error,
    },
    /// A detected amount does not fit a resource.
    #[error("detected {name} does not fit: {error}")]
    Resource {
        /// The resource kind.
        name: &'static str,
        /// Why.
        error: ResourceError,
    },
    /// A detected amount overflows a scalar.
    #[error("detected {name} is too large ({value})")]
    Overflow {
        /// The resource kind.
        name: &'static str,
        /// The value.
        value: u64,
    },
}

/// What is left for tasks of `total_mb` after keeping `reserved_mb` for the system: half
/// of it when the total is less than twice the reserve.
pub fn usable_mb(total_mb: u64, reserved_mb: u64) -> u64 {
    if reserved_mb > total_mb / 2 {
        total_mb / 2
    } else {
        total_mb - reserved_mb
    }
}

/// `MemTotal` of a `/proc/meminfo` text, in kB.
pub fn parse_meminfo_total_kb(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix("MemTotal:")?;
        let mut words = rest.split_whitespace();
        let value = words.next()?.parse::<u64>().ok()?;
        match words.next() {
            Some("kB") | None => Some(value),
            Some(_) => None,
        }
    })
}

/// Read-only facts about the host.
pub trait HostProbe {
    /// Number of CPUs usable by the agent.
    fn cpus(&self) -> Result<u64, DetectError>;
    /// Total memory, in MB.
    fn mem_total_mb(&self) -> Result<u64, DetectError>;
    /// Size of the file system of the work directory, in MB.
    fn disk_total_mb(&self) -> Result<u64, DetectError>;
}

/// Probes this Linux host; the disk is the file system holding `work_dir`.
#[derive(Clone, Debug)]
pub struct SystemProbe {
    /// The work directory (must exist).
    pub work_dir: PathBuf,
}

impl HostProbe for SystemProbe {
    fn cpus(&self) -> Result<u64, DetectError> {
        std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .map_err(DetectError::Cpus)
    }

    fn mem_total_mb(&self) -> Result<u64, DetectError> {
        let text = std::fs::read_to_string("/proc/meminfo").map_err(DetectError::MemInfo)?;
        let kb = parse_meminfo_total_kb(&text).ok_or(DetectError::NoMemTotal)?;
        Ok(kb / 1024)
    }

    fn disk_total_mb(&self) -> Result<u64, DetectError> {
        let stat = nix::sys::statvfs::statvfs(self.work_dir.as_path()).map_err(|error| {
            DetectError::Statvfs {
                path: self.work_dir.clone(),
                error,
            }
        })?;
        let bytes = u128::from(stat.blocks()) * u128::from(stat.fragment_size());
        Ok(u64::try_from(bytes / (1024 * 1024)).unwrap_or(u64::MAX))
    }
}

fn scalar(name: &'static str, units: u64) -> Result<Resource, DetectError> {
    let value = Scalar::from_units(units).ok_or(DetectError::Overflow { name, value: units })?;
    Ok(Resource::new(name, Value::Scalar(value)))
}

/// `given` plus a detected entry for each of cpus, mem, disk, ports it does not name.
/// Zero amounts (a tiny disk) are left out.
pub fn complete(given: Resources, probe: &impl HostProbe) -> Result<Resources, DetectError> {
    let names: Vec<String> = given.names().into_iter().map(str::to_string).collect();
    let has = |name: &str| names.iter().any(|n| n == name);
    let mut detected: Vec<(&'static str, Resource)> = Vec::new();
    if !has("cpus") {
        detected.push(("cpus", scalar("cpus", probe.cpus()?)?));
    }
    if !has("mem") {
        let mb = usable_mb(probe.mem_total_mb()?, MEM_RESERVED_MB);
        detected.push(("mem", scalar("mem", mb)?));
    }
    if !has("disk") {
        let mb = usable_mb(probe.disk_total_mb()?, DISK_RESERVED_MB);
        detected.push(("disk", scalar("disk", mb)?));
    }
    if !has("ports") {
        let ranges = Ranges::new([DEFAULT_PORTS]).map_err(|error| DetectError::Resource {
            name: "ports",
            error,
        })?;
        let ports = Resource::new("ports", Value::Ranges(ranges));
        detected.push(("ports", ports));
    }
    let mut all = given;
    for (name, resource) in detected {
        if matches!(&resource.value, Value::Scalar(s) if s.is_zero()) {
            continue;
        }
        all.push(resource)
            .map_err(|error| DetectError::Resource { name, error })?;
    }
    Ok(all)
}

/// The host's name as the kernel knows it (`gethostname`), or `localhost`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Where [`SystemProbe`] looks for the disk.
pub fn probe_for(work_dir: &Path) -> SystemProbe {
    SystemProbe {
        work_dir: work_dir.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed {
        cpus: u64,
        mem_mb: u64,
        disk_mb: u64,
    }

    impl HostProbe for Fixed {
        fn cpus(&self) -> Result<u64, DetectError> {
            Ok(self.cpus)
        }
        fn mem_total_mb(&self) -> Result<u64, DetectError> {
            Ok(self.mem_mb)
        }
        fn disk_total_mb(&self) -> Result<u64, DetectError> {
            Ok(self.disk_mb)
        }
    }

    /// A probe that must not be asked.
    struct Untouchable;

    impl HostProbe for Untouchable {
        fn cpus(&self) -> Result<u64, DetectError> {
            Err(DetectError::NoMemTotal)
        }
        fn mem_total_mb(&self) -> Result<u64, DetectError> {
            Err(DetectError::NoMemTotal)
        }
        fn disk_total_mb(&self) -> Result<u64, DetectError> {
            Err(DetectError::NoMemTotal)
        }
    }

    #[test]
    fn memory_reserve() {
        assert_eq!(usable_mb(16 * 1024, MEM_RESERVED_MB), 15 * 1024);
        assert_eq!(usable_mb(2048, MEM_RESERVED_MB), 1024);
        assert_eq!(usable_mb(2047, MEM_RESERVED_MB), 1023);
        assert_eq!(usable_mb(1024, MEM_RESERVED_MB), 512);
        assert_eq!(usable_mb(0, MEM_RESERVED_MB), 0);
    }

    #[test]
    fn disk_reserve() {
        assert_eq!(usable_mb(100 * 1024, DISK_RESERVED_MB), 95 * 1024);
        assert_eq!(usable_mb(10 * 1024, DISK_RESERVED_MB), 5 * 1024);
        assert_eq!(usable_mb(8 * 1024, DISK_RESERVED_MB), 4 * 1024);
        assert_eq!(usable_mb(1, DISK_RESERVED_MB), 0);
        assert_eq!(usable_mb(u64::MAX, u64::MAX), u64::MAX / 2);
    }

    #[test]
    fn meminfo_parsing() {
        let text = "MemTotal:       24684092 kB\nMemFree:        1 kB\n";
        assert_eq!(parse_meminfo_total_kb(text), Some(24_684_092));
        assert_eq!(parse_meminfo_total_kb("MemFree: 3 kB\n"), None);
        assert_eq!(parse_meminfo_total_kb("MemTotal: lots kB\n"), None);
        assert_eq!(parse_meminfo_total_kb("MemTotal: 5 MB\n"), None);
        assert_eq!(parse_meminfo_total_kb(""), None);
    }

    fn parse(text: &str) -> Resources {
        match Resources::parse(text) {
            Ok(r) => r,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    #[test]
    fn detects_everything_missing() {
        let probe = Fixed {
            cpus: 8,
            mem_mb: 16 * 1024,
            disk_mb: 100 * 1024,
        };
        let got = complete(Resources::new(), &probe).expect("detect");
        assert_eq!(
            got,
            parse("cpus:8;mem:15360;disk:97280;ports:[31000-32000]")
        );
    }

    #[test]
    fn given_kinds_are_kept_and_not_probed() {
        let given = parse("cpus(spark):4;mem:2048;disk:10;ports:[80];gpus:1");
        let got = complete(given.clone(), &Untouchable).expect("nothing to detect");
        assert_eq!(got, given);
    }

    #[test]
    fn only_missing_kinds_are_added() {
        let probe = Fixed {
            cpus: 2,
            mem_mb: 1024,
            disk_mb: 1,
        };
        let got = complete(parse("cpus:0.5;bugs:{a}"), &probe).expect("detect");
        // Half of 1024 MB; a 1 MB disk leaves nothing, so no disk entry.
        assert_eq!(got, parse("cpus:0.5;bugs:{a};mem:512;ports:[31000-32000]"));
    }

    #[test]
    fn system_probe_reads_this_host() {
        let probe = probe_for(&std::env::temp_dir());
        assert!(probe.cpus().expect("cpus") >= 1);
        assert!(probe.mem_total_mb().expect("mem") > 0);
        assert!(probe.disk_total_mb().expect("disk") > 0);
        assert!(!hostname().is_empty());
    }
}
