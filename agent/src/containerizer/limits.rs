//! Limits no cgroup enforces: the ports a container listens on and the disk its sandbox
//! uses, watched from outside the container.
//!
//! [`LimitingContainerizer`] wraps the containerizer the agent runs (tasks and executors
//! alike). For each container it starts one watcher that, every interval, lists the TCP
//! ports the container's processes listen on ([`listening_ports`], from `/proc`) and the
//! bytes its sandbox holds ([`disk_usage`]). A port outside the container's `ports`
//! resource, or a sandbox larger than its `disk` resource, is a *violation*: under
//! [`Enforcement::Report`] it is logged (once per port, once per crossing of the disk
//! limit); under [`Enforcement::Kill`] the container is killed at once and ends with a
//! [`Termination::PortLimit`] / [`Termination::DiskLimit`] that says which port or by how
//! much (reported FAILED, `CONTAINER_LIMITATION_PORTS` / `CONTAINER_LIMITATION_DISK`).
//!
//! What each container may use is checkpointed beside the agent's other state
//! (`<work-dir>/limits/<container-id>`), so a container re-attached after an agent restart
//! is watched again.
//!
//! Must never: kill a container for anything but its own processes' sockets or its own
//! sandbox (the sockets are matched by inode to the container's processes; the sandbox
//! walk never follows a symlink nor leaves the sandbox's file system), or block the
//! agent's runtime (the walks run on blocking threads, bounded by [`DISK_WALK_MAX_ENTRIES`]).
//! The watch is periodic: a task may use a port or disk between two checks. Only TCP
//! listening sockets count (UDP is not watched).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agora_resources::Resources;
use futures::future::BoxFuture;

use super::{Container, ContainerRef, Containerizer, LaunchError, LaunchSpec, Termination};

/// Most directory entries one disk check walks; beyond it the check gives up (logged), so a
/// sandbox of millions of files cannot hold a blocking thread for long.
pub const DISK_WALK_MAX_ENTRIES: usize = 1_000_000;
/// Most processes of one container whose sockets one port check reads.
pub const PORT_SCAN_MAX_PIDS: usize = 4096;

/// What happens on a violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Enforcement {
    /// Not watched.
    Off,
    /// Logged as a warning; the container runs on.
    Report,
    /// The container is killed and its task fails, saying why.
    Kill,
}

/// How containers are watched (`--ports-enforcement`, `--disk-enforcement` and intervals).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitPolicy {
    /// Ports outside the `ports` resource.
    pub ports: Enforcement,
    /// Sandbox bytes beyond the `disk` resource.
    pub disk: Enforcement,
    /// Time between two port checks.
    pub ports_interval: Duration,
    /// Time between two disk checks.
    pub disk_interval: Duration,
}

impl Default for LimitPolicy {
    fn default() -> LimitPolicy {
        LimitPolicy {
            ports: Enforcement::Report,
            disk: Enforcement::Kill,
            ports_interval: Duration::from_secs(1),
            disk_interval: Duration::from_secs(15),
        }
    }
}

impl LimitPolicy {
    fn watches(&self) -> bool {
        self.ports != Enforcement::Off || self.disk != Enforcement::Off
    }
}

/// What one container may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowance {
    /// Ports it may listen on.
    pub ports: BTreeSet<u64>,
    /// Bytes its sandbox may hold; `None`: no `disk` resource, not limited.
    pub disk_bytes: Option<u64>,
}

impl Allowance {
    /// From a container's resources (`disk` is in MB).
    pub fn of(resources: &Resources) -> Allowance {
        let ports = resources
            .ranges("ports")
            .iter()
            .flat_map(|(lo, hi)| lo..=hi)
            .collect();
        // thousandths of a MB -> bytes, exactly.
        let disk = resources.scalar("disk").thousandths();
        Allowance {
            ports,
            disk_bytes: (disk > 0).then(|| disk.saturating_mul(1024 * 1024) / 1000),
        }
    }

    /// The checkpoint text (`disk_bytes=N` and `ports=a,b,..` lines).
    fn to_text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(b) = self.disk_bytes {
            parts.push(format!("disk_bytes={b}"));
        }
        let ports: Vec<String> = self.ports.iter().map(u64::to_string).collect();
        parts.push(format!("ports={}", ports.join(",")));
        parts.join("\n") + "\n"
    }

    fn from_text(text: &str) -> Option<Allowance> {
        let mut allowance = Allowance {
            ports: BTreeSet::new(),
            disk_bytes: None,
        };
        for line in text.lines() {
            match line.split_once('=')? {
                ("disk_bytes", v) => allowance.disk_bytes = Some(v.parse().ok()?),
                ("ports", "") => {}
                ("ports", v) => {
                    for p in v.split(',') {
                        allowance.ports.insert(p.parse().ok()?);
                    }
                }
                _ => return None,
            }
        }
        Some(allowance)
    }
}

/// The ports of `listening` (port -> socket inode) not in `allowed`, ascending.
pub fn unallowed_ports(listening: &BTreeMap<u16, u64>, allowed: &BTreeSet<u64>) -> Vec<u16> {
    listening
        .keys()
        .filter(|p| !allowed.contains(&u64::from(**p)))
        .copied()
        .collect()
}

/// Listening sockets of a `/proc/net/tcp` or `tcp6` table: port -> socket inode.
pub fn parse_tcp_listeners(table: &str) -> Vec<(u16, u64)> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            if *fields.get(3)? != LISTEN {
                return None;
            }
            let (_, port) = local.rsplit_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            let inode = fields.get(9)?.parse().ok()?;
            Some((port, inode))
        })
        .collect()
}

/// The socket inodes process `pid` holds open (its `/proc/<pid>/fd` links `socket:[N]`).
fn socket_inodes(pid: u32, into: &mut HashSet<u64>) {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return;
    };
    for entry in entries.flatten() {
        if let Ok(target) = std::fs::read_link(entry.path())
            && let Some(inode) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse().ok())
        {
            into.insert(inode);
        }
    }
}

/// TCP ports the processes `pids` listen on (port -> socket inode), read in the network
/// namespace of the first of them: a socket counts only if one of `pids` holds it.
pub fn listening_ports(pids: &[u32]) -> BTreeMap<u16, u64> {
    let mut inodes = HashSet::new();
    for pid in pids.iter().take(PORT_SCAN_MAX_PIDS) {
        socket_inodes(*pid, &mut inodes);
    }
    let mut ports = BTreeMap::new();
    let Some(first) = pids.first() else {
        return ports;
    };
    if inodes.is_empty() {
        return ports;
    }
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{first}/net/{table}")) else {
            continue;
        };
        for (port, inode) in parse_tcp_listeners(&text) {
            if inodes.contains(&inode) {
                ports.insert(port, inode);
            }
        }
    }
    ports
}

/// Bytes allocated to the files under `root` (blocks, so sparse files count what they
/// use), each inode once; symlinks are not followed and other file systems not entered.
/// `Err` when the walk passes [`DISK_WALK_MAX_ENTRIES`] or `root` cannot be read.
pub fn disk_usage(root: &Path) -> Result<u64, String> {
    let meta = std::fs::symlink_metadata(root)
        .map_err(|e| format!("cannot read {}: {e}", root.display()))?;
    let dev = meta.dev();
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut total = meta.blocks() * 512;
    let mut stack = vec![root.to_path_buf()];
    let mut entries_walked = 0usize;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            entries_walked += 1;
            if entries_walked > DISK_WALK_MAX_ENTRIES {
                return Err(format!(
                    "{} holds more than {DISK_WALK_MAX_ENTRIES} entries",
                    root.display()
                ));
            }
            let Ok(m) = entry.metadata() else { continue };
            if m.dev() != dev {
                continue;
            }
            if m.nlink() > 1 && !m.is_dir() && !seen.insert((m.dev(), m.ino())) {
                continue;
            }
            total += m.blocks() * 512;
            if m.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok(total)
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
}

/// Wraps a containerizer: every container it starts or re-attaches is watched.
pub struct LimitingContainerizer {
    inner: Arc<dyn Containerizer>,
    policy: LimitPolicy,
    /// `<work-dir>/limits`: one file per watched container.
    dir: PathBuf,
}

impl LimitingContainerizer {
    /// Wraps `inner`; checkpoints go under `<work_dir>/limits`.
    pub fn new(
        inner: Arc<dyn Containerizer>,
        work_dir: &Path,
        policy: LimitPolicy,
    ) -> LimitingContainerizer {
        LimitingContainerizer {
            inner,
            policy,
            dir: work_dir.join("limits"),
        }
    }
}

/// A checkpoint file name for a container id (ids are the containerizers' own, but are
/// checked anyway: a file name, never a path).
fn checkpoint_path(dir: &Path, container_id: &str) -> Option<PathBuf> {
    let safe = !container_id.is_empty()
        && container_id != "."
        && container_id != ".."
        && !container_id.contains('/')
        && !container_id.contains('\0');
    safe.then(|| dir.join(container_id))
}

impl Containerizer for LimitingContainerizer {
    fn launch(
        &self,
        spec: LaunchSpec,
    ) -> BoxFuture<'static, Result<Arc<dyn Container>, LaunchError>> {
        let inner = Arc::clone(&self.inner);
        let policy = self.policy.clone();
        let dir = self.dir.clone();
        Box::pin(async move {
            let allowance = Allowance::of(&spec.resources);
            let container = inner.launch(spec).await?;
            if !policy.watches() {
                return Ok(container);
            }
            let checkpoint = container
                .reference()
                .and_then(|r| checkpoint_path(&dir, &r.container_id));
            if let Some(path) = &checkpoint {
                let write = std::fs::create_dir_all(&dir)
                    .and_then(|()| std::fs::write(path, allowance.to_text()));
                if let Err(e) = write {
                    tracing::warn!(path = %path.display(), "cannot checkpoint a container's limits (not watched after an agent restart): {e}");
                }
            }
            Ok(watch(container, allowance, policy, checkpoint))
        })
    }

    fn recover(&self, reference: ContainerRef) -> BoxFuture<'static, Option<Arc<dyn Container>>> {
        let policy = self.policy.clone();
        let checkpoint = checkpoint_path(&self.dir, &reference.container_id);
        let recovered = self.inner.recover(reference);
        Box::pin(async move {
            let container = recovered.await?;
            let allowance = checkpoint
                .as_ref()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .and_then(|t| Allowance::from_text(&t));
            match allowance {
                Some(a) if policy.watches() => Some(watch(container, a, policy, checkpoint)),
                _ => Some(container),
            }
        })
    }

    fn destroy_orphans(&self, owned: Vec<String>) -> BoxFuture<'static, ()> {
        let dir = self.dir.clone();
        let keep: HashSet<String> = owned.iter().cloned().collect();
        let inner = self.inner.destroy_orphans(owned);
        Box::pin(async move {
            inner.await;
            // Checkpoints of containers no task owns any more.
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.flatten() {
                    if !keep.contains(e.file_name().to_string_lossy().as_ref()) {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
        })
    }

    fn release(&self) -> BoxFuture<'static, ()> {
        self.inner.release()
    }

    fn isolation(&self) -> &'static str {
        self.inner.isolation()
    }
}

/// Starts the watcher of `inner` and returns the container the agent holds instead.
fn watch(
    inner: Arc<dyn Container>,
    allowance: Allowance,
    policy: LimitPolicy,
    checkpoint: Option<PathBuf>,
) -> Arc<dyn Container> {
    let container = Arc::new(Limited {
        inner,
        violation: Arc::new(Mutex::new(None)),
    });
    let watched = Arc::clone(&container);
    tokio::spawn(async move {
        watched.run(allowance, policy).await;
        if let Some(path) = checkpoint {
            let _ = std::fs::remove_file(path);
        }
    });
    container
}

/// A watched container: the inner one, and the violation that killed it, if any.
struct Limited {
    inner: Arc<dyn Container>,
    violation: Arc<Mutex<Option<Termination>>>,
}

impl Limited {
    /// Checks until the container ends (or was killed for a violation).
    async fn run(&self, allowance: Allowance, policy: LimitPolicy) {
        let mut reported_ports: BTreeSet<u16> = BTreeSet::new();
        let mut disk_over = false;
        let ports_on = policy.ports != Enforcement::Off;
        let disk_on = policy.disk != Enforcement::Off && allowance.disk_bytes.is_some();
        if !ports_on && !disk_on {
            self.inner.wait().await;
            return;
        }
        let mut ports_tick = tokio::time::interval(policy.ports_interval);
        let mut disk_tick = tokio::time::interval(policy.disk_interval);
        ports_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        disk_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let ended = self.inner.wait();
        tokio::pin!(ended);
        loop {
            let violation = tokio::select! {
                _ = &mut ended => return,
                _ = ports_tick.tick(), if ports_on => {
                    let pids = self.inner.pids();
                    let listening = tokio::task::spawn_blocking(move || listening_ports(&pids))
                        .await
                        .unwrap_or_default();
                    let bad: Vec<u16> = unallowed_ports(&listening, &allowance.ports)
                        .into_iter()
                        .filter(|p| !reported_ports.contains(p))
                        .collect();
                    if bad.is_empty() {
                        continue;
                    }
                    reported_ports.extend(&bad);
                    let message = port_message(&bad, &allowance.ports);
                    if policy.ports == Enforcement::Kill {
                        Termination::PortLimit(message)
                    } else {
                        tracing::warn!(pid = self.inner.pid(), sandbox = %self.inner.sandbox().display(), "{message} (reported only: --ports-enforcement report)");
                        continue;
                    }
                }
                _ = disk_tick.tick(), if disk_on => {
                    let limit = allowance.disk_bytes.unwrap_or(u64::MAX);
                    let sandbox = self.inner.sandbox().to_path_buf();
                    let used = match tokio::task::spawn_blocking(move || disk_usage(&sandbox)).await {
                        Ok(Ok(used)) => used,
                        Ok(Err(e)) => {
                            tracing::warn!("disk check skipped: {e}");
                            continue;
                        }
                        Err(_) => continue,
                    };
                    if used <= limit {
                        disk_over = false;
                        continue;
                    }
                    let message = format!(
                        "disk limit exceeded: the sandbox uses {}, {} over its limit of {}",
                        mb(used),
                        mb(used - limit),
                        mb(limit)
                    );
                    if policy.disk == Enforcement::Kill {
                        Termination::DiskLimit(message)
                    } else {
                        if !disk_over {
                            tracing::warn!(sandbox = %self.inner.sandbox().display(), "{message} (reported only: --disk-enforcement report)");
                        }
                        disk_over = true;
                        continue;
                    }
                }
            };
            tracing::warn!(pid = self.inner.pid(), sandbox = %self.inner.sandbox().display(), "{violation}; killing the container");
            if let Ok(mut v) = self.violation.lock() {
                v.get_or_insert(violation);
            }
            self.inner.kill(Duration::ZERO).await;
            return;
        }
    }

    fn outcome(violation: &Mutex<Option<Termination>>, ended: Termination) -> Termination {
        violation
            .lock()
            .ok()
            .and_then(|v| v.clone())
            .unwrap_or(ended)
    }
}

fn port_message(bad: &[u16], allowed: &BTreeSet<u64>) -> String {
    let bad: Vec<String> = bad.iter().map(u16::to_string).collect();
    let allowed = if allowed.is_empty() {
        "none".to_string()
    } else {
        allowed
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "listening on unallocated port {} (allocated: {allowed})",
        bad.join(",")
    )
}

impl Container for Limited {
    fn pid(&self) -> u32 {
        self.inner.pid()
    }

    fn sandbox(&self) -> &Path {
        self.inner.sandbox()
    }

    fn wait(&self) -> BoxFuture<'static, Termination> {
        let ended = self.inner.wait();
        let violation = Arc::clone(&self.violation);
        Box::pin(async move { Limited::outcome(&violation, ended.await) })
    }

    fn kill(&self, grace: Duration) -> BoxFuture<'static, Termination> {
        let ended = self.inner.kill(grace);
        let violation = Arc::clone(&self.violation);
        Box::pin(async move { Limited::outcome(&violation, ended.await) })
    }

    fn update_resources(&self, resources: &Resources) -> Result<(), String> {
        self.inner.update_resources(resources)
    }

    fn run_check(
        &self,
        argv: Vec<String>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(), String>> {
        self.inner.run_check(argv, timeout)
    }

    fn usage(&self) -> Option<super::Usage> {
        self.inner.usage()
    }

    fn reference(&self) -> Option<ContainerRef> {
        self.inner.reference()
    }

    fn pids(&self) -> Vec<u32> {
        self.inner.pids()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F91 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 20 4 30 10 -1
   2: 00000000:7A69 00000000:0000 0A 00000000:00000000 00:00000000 00000000    65534        0 77 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn tcp_table_listeners() {
        // 0x1F90 = 8080 listening; 0x1F91 established (not a listener); 0x7A69 = 31337.
        assert_eq!(parse_tcp_listeners(TCP), vec![(8080, 4242), (31337, 77)]);
        assert_eq!(parse_tcp_listeners(""), vec![]);
        assert_eq!(parse_tcp_listeners("header\ngarbage line\n"), vec![]);
    }

    #[test]
    fn unallowed_ports_are_the_rest() {
        let listening: BTreeMap<u16, u64> = [(8080, 1), (31000, 2), (31001, 3)].into();
        let allowed: BTreeSet<u64> = [31000, 31001].into();
        assert_eq!(unallowed_ports(&listening, &allowed), vec![8080]);
        assert_eq!(
            unallowed_ports(&listening, &BTreeSet::new()),
            vec![8080, 31000, 31001]
        );
        assert_eq!(
            port_message(&[8080], &allowed),
            "listening on unallocated port 8080 (allocated: 31000,31001)"
        );
        assert_eq!(
            port_message(&[80, 81], &BTreeSet::new()),
            "listening on unallocated port 80,81 (allocated: none)"
        );
    }

    #[test]
    fn allowance_from_resources_and_checkpoint() {
        let r = Resources::parse("cpus:1;disk:2;ports:[31000-31002,31005-31005]")
            .unwrap_or_else(|e| panic!("{e}"));
        let a = Allowance::of(&r);
        assert_eq!(a.ports, [31000, 31001, 31002, 31005].into());
        assert_eq!(a.disk_bytes, Some(2 << 20));
        assert_eq!(Allowance::from_text(&a.to_text()), Some(a));
        let none = Allowance::of(&Resources::new());
        assert_eq!(none.disk_bytes, None);
        assert_eq!(Allowance::from_text(&none.to_text()), Some(none));
        assert_eq!(Allowance::from_text("ports=x"), None);
        assert_eq!(Allowance::from_text("other=1"), None);
    }

    #[test]
    fn checkpoint_names_are_file_names() {
        let d = Path::new("/w/limits");
        assert_eq!(
            checkpoint_path(d, "process-7-99"),
            Some(d.join("process-7-99"))
        );
        assert_eq!(checkpoint_path(d, "../x"), None);
        assert_eq!(checkpoint_path(d, ".."), None);
        assert_eq!(checkpoint_path(d, ""), None);
    }

    #[test]
    fn disk_usage_counts_files_once_and_skips_links() {
        let dir = std::env::temp_dir().join(format!("agora-disk-usage-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap_or_else(|e| panic!("{e}"));
        let empty = disk_usage(&dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("sub/a"), vec![1u8; 1 << 20]).unwrap_or_else(|e| panic!("{e}"));
        let one = disk_usage(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(one - empty >= 1 << 20, "{empty} -> {one}");
        // A hard link is the same data; a symlink to a big file outside is not the sandbox's.
        std::fs::hard_link(dir.join("sub/a"), dir.join("b")).unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink("/usr", dir.join("usr")).unwrap_or_else(|e| panic!("{e}"));
        let linked = disk_usage(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(linked - one < 64 << 10, "{one} -> {linked}");
        assert!(disk_usage(&dir.join("missing")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn own_listening_port_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let ports = listening_ports(&[std::process::id()]);
        assert!(ports.contains_key(&port), "{port} not in {ports:?}");
        // Another process's view: not ours.
        assert!(!listening_ports(&[1]).contains_key(&port));
        drop(listener);
    }
}
