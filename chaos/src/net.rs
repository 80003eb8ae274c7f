//! The hosts: one network namespace for the master (and the harness, which re-executes
//! itself inside it), one per agent, joined by a bridge in the master's namespace and one
//! veth pair per agent; and one small tmpfs per agent for its work directory.
//!
//! Owns only namespaces, links and mounts it created, all named after this run (the
//! outer process's pid), so concurrent runs never meet. It must never touch the host's own
//! interfaces, addresses or routes: every `ip` command names a namespace of this run
//! (`ip -n NS ...`), and the addresses (`SUBNET`) exist only inside those namespaces.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The private subnet of the run's bridge. It exists only inside the run's namespaces.
pub const SUBNET: &str = "10.213.7";
/// The master's address on the bridge.
pub const MASTER_IP: &str = "10.213.7.1";
/// The port the master listens on.
pub const MASTER_PORT: u16 = 5050;

/// Runs `ip` with `args`; an error carries its stderr.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .with_context(|| format!("running ip {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The namespaces' names for a run.
#[derive(Debug, Clone)]
pub struct Names {
    pub run: String,
    pub agents: usize,
}

impl Names {
    pub fn new(run: &str, agents: usize) -> Names {
        Names {
            run: run.to_string(),
            agents,
        }
    }

    pub fn master_ns(&self) -> String {
        format!("agc{}m", self.run)
    }

    pub fn agent_ns(&self, i: usize) -> String {
        format!("agc{}a{i}", self.run)
    }

    /// The bridge-side end of agent `i`'s veth pair (in the master's namespace).
    pub fn agent_port(i: usize) -> String {
        format!("va{i}")
    }

    pub fn agent_ip(i: usize) -> String {
        format!("{SUBNET}.{}", 10 + i)
    }
}

/// The run's namespaces, bridge, veth pairs and tmpfs work directories. Removed on drop.
pub struct Hosts {
    pub names: Names,
    pub dir: PathBuf,
    mounts: Vec<PathBuf>,
    namespaces: Vec<String>,
}

impl Hosts {
    /// Creates everything; a partial setup is undone by the drop of the half-made value.
    pub fn create(names: Names, dir: &Path, tmpfs_mib: u32) -> anyhow::Result<Hosts> {
        let mut hosts = Hosts {
            names: names.clone(),
            dir: dir.to_path_buf(),
            mounts: Vec::new(),
            namespaces: Vec::new(),
        };
        let m = names.master_ns();
        ip(&["netns", "add", &m])?;
        hosts.namespaces.push(m.clone());
        ip(&["-n", &m, "link", "set", "lo", "up"])?;
        ip(&["-n", &m, "link", "add", "br0", "type", "bridge"])?;
        ip(&[
            "-n",
            &m,
            "addr",
            "add",
            &format!("{MASTER_IP}/24"),
            "dev",
            "br0",
        ])?;
        ip(&["-n", &m, "link", "set", "br0", "up"])?;
        for i in 0..names.agents {
            let a = names.agent_ns(i);
            ip(&["netns", "add", &a])?;
            hosts.namespaces.push(a.clone());
            ip(&["-n", &a, "link", "set", "lo", "up"])?;
            let port = Names::agent_port(i);
            ip(&[
                "-n", &m, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &a,
            ])?;
            ip(&["-n", &m, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &m, "link", "set", &port, "up"])?;
            let addr = format!("{}/24", Names::agent_ip(i));
            ip(&["-n", &a, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &a, "link", "set", "eth0", "up"])?;
            let work = hosts.work_dir(i);
            std::fs::create_dir_all(&work)
                .with_context(|| format!("creating {}", work.display()))?;
            let size = format!("size={tmpfs_mib}m,mode=0755");
            let status = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &size, "tmpfs"])
                .arg(&work)
                .status()
                .context("running mount")?;
            if !status.success() {
                bail!("mounting a tmpfs on {} failed", work.display());
            }
            hosts.mounts.push(work);
        }
        Ok(hosts)
    }

    /// Agent `i`'s work directory (a tmpfs of its own).
    pub fn work_dir(&self, i: usize) -> PathBuf {
        agent_work_dir(&self.dir, i)
    }
}

pub fn agent_work_dir(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("agent-{i}"))
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for m in self.mounts.drain(..).rev() {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
        for ns in self.namespaces.drain(..).rev() {
            let _ = ip(&["netns", "del", &ns]);
        }
    }
}

/// Cuts agent `i` off the bridge (its port goes down: packets are dropped both ways, no
/// reset is sent, as when a cable or a switch fails) or joins it again.
pub fn set_partitioned(names: &Names, i: usize, cut: bool) -> anyhow::Result<()> {
    let state = if cut { "down" } else { "up" };
    ip(&[
        "-n",
        &names.master_ns(),
        "link",
        "set",
        &Names::agent_port(i),
        state,
    ])
}

/// Removes what an earlier run left behind when it was killed before it could clean up
/// (a test runner's timeout): the namespaces named after a run whose process is gone, and
/// the tmpfs mounts in that run's directory. Only names of this module's pattern
/// (`agc<pid>m`, `agc<pid>a<i>`) whose pid no longer runs are touched.
pub fn sweep_stale(tmp: &Path) {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    let listing = String::from_utf8_lossy(&out.stdout);
    for name in listing.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix("agc") else {
            continue;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let tail = &rest[digits.len()..];
        let ours = !digits.is_empty()
            && (tail == "m"
                || tail
                    .strip_prefix('a')
                    .is_some_and(|i| !i.is_empty() && i.chars().all(|c| c.is_ascii_digit())));
        if !ours || Path::new(&format!("/proc/{digits}")).exists() {
            continue;
        }
        let dir = tmp.join(format!("agora-chaos-{digits}"));
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with("agent-") && e.path().is_dir() {
                    let _ = Command::new("umount").arg("-l").arg(e.path()).status();
                }
            }
        }
        let _ = ip(&["netns", "del", name]);
    }
}
