//! `agora local`: a whole cluster on this machine — one `agora-master`, N `agora-agent`
//! and (when built) the jobs and services frameworks as child processes — supervised
//! until Ctrl-C/SIGTERM or until the master dies.
//!
//! Like a real cluster: the agents split the host between them (cpus, memory, disk and
//! the port range, [`split_host`]) instead of each claiming all of it, each serves its
//! sandbox HTTP endpoint (`--listen`, [`agent_listen`]) so files and logs are reachable,
//! and an agent that dies is reported and restarted (up to [`AGENT_RESTARTS_MAX`] times
//! in [`AGENT_RESTART_WINDOW`]; then left down while the rest keep running). A restarted
//! agent recovers its checkpoint and re-attaches to its tasks. With `--masters N` a master
//! that dies is restarted the same way (it rejoins as a follower while another leads);
//! only the death of the local etcd, or of every master, ends the cluster.
//!
//! Owns the child processes it starts and nothing else: it signals only the pids it
//! spawned (agents first, then the master; SIGTERM, then SIGKILL after a grace period).
//! It must never kill processes it did not start, and never talk to the cluster's APIs
//! beyond checking that the master's port accepts connections. Children run in their own
//! process group so a terminal Ctrl-C reaches only this supervisor, which then stops them
//! in order.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};

use crate::args::LocalArgs;

pub const MASTER_BIN: &str = "agora-master";
pub const AGENT_BIN: &str = "agora-agent";
/// The jobs framework, started too when it is found (`docs/jobs.md`).
pub const JOBS_BIN: &str = "agora-jobs";
/// The services framework (Marathon-compatible API); started when it is found.
pub const SERVICES_BIN: &str = "agora-services";
/// How long the master may take to accept connections.
pub const MASTER_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a child may take to exit after SIGTERM before it gets SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// Lines of a dead child's log to show.
const LOG_TAIL_LINES: usize = 20;
/// Restarts of one agent allowed within [`AGENT_RESTART_WINDOW`]; one more death and it
/// is left down.
pub const AGENT_RESTARTS_MAX: usize = 3;
pub const AGENT_RESTART_WINDOW: Duration = Duration::from_secs(300);
/// Wait before restarting a dead agent (its old process group may still be ending).
const AGENT_RESTART_DELAY: Duration = Duration::from_millis(500);
/// Memory and disk kept for the system, as the agent's own detection keeps them (MB).
const MEM_RESERVED_MB: u64 = 1024;
const DISK_RESERVED_MB: u64 = 5 * 1024;
/// The port range the agents split between them (the agent's own default).
const PORTS: (u64, u64) = (31000, 32000);

/// What the host has, as the agent's detection would see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Host {
    pub cpus: u64,
    pub mem_mb: u64,
    pub disk_mb: u64,
}

/// What is left for tasks of `total_mb` after keeping `reserved_mb`: half of it when the
/// total is less than twice the reserve (the agent's rule).
fn usable_mb(total_mb: u64, reserved_mb: u64) -> u64 {
    if reserved_mb > total_mb / 2 {
        total_mb / 2
    } else {
        total_mb - reserved_mb
    }
}

/// The `--resources` of each of `agents` agents sharing `host`: an equal share of the
/// cpus, of the usable memory and disk, and a slice of the port range each. Pure.
pub fn split_host(host: Host, agents: u32) -> Vec<String> {
    let n = u64::from(agents.max(1));
    // Thousandths of a cpu, the resource model's unit.
    let cpus_milli = host.cpus * 1000 / n;
    let mem = usable_mb(host.mem_mb, MEM_RESERVED_MB) / n;
    let disk = usable_mb(host.disk_mb, DISK_RESERVED_MB) / n;
    let width = (PORTS.1 - PORTS.0 + 1) / n;
    (0..n)
        .map(|k| {
            let first = PORTS.0 + k * width;
            let last = first + width.max(1) - 1;
            format!(
                "cpus:{};mem:{mem};disk:{disk};ports:[{first}-{last}]",
                agora_resources::Scalar::from_f64(cpus_milli as f64 / 1000.0)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "0.001".into())
            )
        })
        .collect()
}

/// This host's cpus, memory and the disk holding `dir`.
pub fn probe_host(dir: &Path) -> anyhow::Result<Host> {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .context("cannot count this host's cpus")?;
    let meminfo = std::fs::read_to_string("/proc/meminfo").context("cannot read /proc/meminfo")?;
    let mem_kb = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .context("no MemTotal in /proc/meminfo")?;
    let stat = nix::sys::statvfs::statvfs(dir)
        .with_context(|| format!("cannot read the disk size of {}", dir.display()))?;
    let disk_bytes = u128::from(stat.blocks()) * u128::from(stat.fragment_size());
    Ok(Host {
        cpus,
        mem_mb: mem_kb / 1024,
        disk_mb: u64::try_from(disk_bytes / (1024 * 1024)).unwrap_or(u64::MAX),
    })
}

/// Where agent `k` (1-based) serves its HTTP endpoint: the master's host, its port + k
/// for the first agents (5051, 5052, ... with the default 5050) when that port is free,
/// else a free port (an agent given a taken port would die at start, again on each
/// restart).
pub fn agent_listen(master_listen: &str, k: u32) -> Option<String> {
    let addr: std::net::SocketAddr = master_listen.parse().ok()?;
    let port = addr.port().checked_add(u16::try_from(k).ok()?)?;
    let preferred = std::net::SocketAddr::new(addr.ip(), port);
    if k < 10 && std::net::TcpListener::bind(preferred).is_ok() {
        return Some(preferred.to_string());
    }
    let free = std::net::TcpListener::bind(std::net::SocketAddr::new(addr.ip(), 0))
        .and_then(|l| l.local_addr())
        .ok()?;
    Some(free.to_string())
}

/// Find `name` next to `exe_dir` (the directory of the running `agora`) first, then in the
/// directories of `path` (a PATH-style list).
pub fn find_binary(name: &str, exe_dir: Option<&Path>, path: Option<&OsStr>) -> Option<PathBuf> {
    let beside = exe_dir.map(|d| d.join(name));
    let in_path = path
        .map(|p| std::env::split_paths(p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|d| !d.as_os_str().is_empty())
        .map(|d| d.join(name));
    beside.into_iter().chain(in_path).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn locate(name: &str) -> anyhow::Result<PathBuf> {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf));
    let path = std::env::var_os("PATH");
    find_binary(name, exe_dir.as_deref(), path.as_deref()).with_context(|| {
        format!(
            "cannot find the `{name}` binary next to this `agora` ({}) or on PATH; \
             build it with `cargo build -p {name}` or put it on PATH",
            exe_dir
                .as_deref()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|| "unknown directory".into())
        )
    })
}

/// Arguments of the master process.
pub fn master_args(listen: &str, data_dir: &Path) -> Vec<OsString> {
    vec![
        "--listen".into(),
        listen.into(),
        "--data-dir".into(),
        data_dir.join("master").into(),
    ]
}

/// `HOST:PORT` of master `i` (0-based) of a local group: --listen's port plus `i`.
pub fn nth_master(listen: &str, i: u32) -> anyhow::Result<String> {
    let (host, port) = listen
        .rsplit_once(':')
        .with_context(|| format!("--listen {listen}: expected HOST:PORT"))?;
    let port: u32 = port
        .parse()
        .with_context(|| format!("--listen {listen}: bad port"))?;
    anyhow::ensure!(
        port + i <= 65535,
        "--listen {listen}: no room for {i} more ports"
    );
    Ok(format!("{host}:{}", port + i))
}

/// Arguments of master `i` of a group elected through the local etcd at `etcd`.
pub fn ha_master_args(listen: &str, i: u32, data_dir: &Path, etcd: &str) -> Vec<OsString> {
    vec![
        "--listen".into(),
        listen.into(),
        "--data-dir".into(),
        data_dir.join(format!("master-{i}")).into(),
        "--etcd-endpoints".into(),
        etcd.into(),
    ]
}

/// Arguments of the local one-member etcd (client URL `http://{client}`).
pub fn etcd_args(data_dir: &Path, client: &str, peer: &str) -> Vec<OsString> {
    vec![
        "--name".into(),
        "agora-local".into(),
        "--data-dir".into(),
        data_dir.join("etcd").into(),
        "--listen-client-urls".into(),
        format!("http://{client}").into(),
        "--advertise-client-urls".into(),
        format!("http://{client}").into(),
        "--listen-peer-urls".into(),
        format!("http://{peer}").into(),
        "--initial-advertise-peer-urls".into(),
        format!("http://{peer}").into(),
        "--initial-cluster".into(),
        format!("agora-local=http://{peer}").into(),
    ]
}

/// A free loopback `HOST:PORT`.
fn free_loopback() -> anyhow::Result<String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr().context("finding a free port")?.to_string())
}

/// Arguments of agent `k` (1-based).
pub fn agent_args(
    k: u32,
    master: &str,
    data_dir: &Path,
    resources: Option<&str>,
    listen: Option<&str>,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "--master".into(),
        master.into(),
        "--work-dir".into(),
        data_dir.join(format!("agent-{k}")).into(),
        "--hostname".into(),
        format!("local-agent-{k}").into(),
    ];
    if let Some(r) = resources {
        args.push("--resources".into());
        args.push(r.into());
    }
    if let Some(l) = listen {
        args.push("--listen".into());
        args.push(l.into());
    }
    args
}

/// Where the jobs framework's API listens: the master's host, its port + 10 (5060 for
/// the default 5050). `None` when the master address is not `ip:port`.
pub fn jobs_listen(master_listen: &str) -> Option<String> {
    let addr: std::net::SocketAddr = master_listen.parse().ok()?;
    let port = addr.port().checked_add(10)?;
    Some(std::net::SocketAddr::new(addr.ip(), port).to_string())
}

/// Arguments of the jobs framework.
pub fn jobs_args(master: &str, listen: &str, data_dir: &Path) -> Vec<OsString> {
    vec![
        "--master".into(),
        master.into(),
        "--listen".into(),
        listen.into(),
        "--data-dir".into(),
        data_dir.join("jobs").into(),
    ]
}

/// Where the services daemon's API listens: the master's host, its port + 30 (5080 for
/// the default 5050). `None` when the master address is not `ip:port`.
pub fn services_listen(master_listen: &str) -> Option<String> {
    let addr: std::net::SocketAddr = master_listen.parse().ok()?;
    let port = addr.port().checked_add(30)?;
    Some(std::net::SocketAddr::new(addr.ip(), port).to_string())
}

/// Arguments of the services daemon: the master, its API address, its state directory.
pub fn services_args(master: &str, api: &str, data_dir: &Path) -> Vec<OsString> {
    vec![
        "--master".into(),
        master.into(),
        "--listen".into(),
        api.into(),
        "--data-dir".into(),
        data_dir.join("services").into(),
    ]
}

/// A started child and what to say about it.
struct Proc {
    label: String,
    child: Child,
    pid: Option<u32>,
    log: PathBuf,
}

impl Proc {
    /// Start a child writing to `log` (appended to: a restarted agent's log continues).
    fn spawn(label: String, bin: &Path, args: &[OsString], log: PathBuf) -> anyhow::Result<Proc> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let err = out
            .try_clone()
            .with_context(|| format!("cannot open {}", log.display()))?;
        let child = Command::new(bin)
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {label} ({})", bin.display()))?;
        let pid = child.id();
        Ok(Proc {
            label,
            child,
            pid,
            log,
        })
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn raw_pid(&self) -> Option<Pid> {
        self.pid
            .and_then(|p| i32::try_from(p).ok())
            .filter(|p| *p > 0)
            .map(Pid::from_raw)
    }

    /// Signal the child itself (it may shut down gracefully and stop its helpers).
    fn signal(&self, sig: Signal) {
        if let Some(pid) = self.raw_pid() {
            // ESRCH (already gone) is fine.
            let _ = kill(pid, sig);
        }
    }

    /// Signal the child's whole process group: the child was started as the leader of a
    /// new group, so this reaches it and any helper it left behind, and nothing else.
    fn signal_group(&self, sig: Signal) {
        if let Some(pid) = self.raw_pid() {
            let _ = killpg(pid, sig);
        }
    }

    fn describe_death(&self, status: ExitStatus) -> String {
        let mut s = format!(
            "{} (pid {}) exited unexpectedly: {status}\n  log: {}",
            self.label,
            self.pid
                .map(|p| p.to_string())
                .unwrap_or_else(|| "?".into()),
            self.log.display()
        );
        let tail = log_tail(&self.log, LOG_TAIL_LINES);
        if !tail.is_empty() {
            s.push_str("\n  last lines:\n");
            for line in tail {
                s.push_str("    ");
                s.push_str(&line);
                s.push('\n');
            }
        }
        s
    }
}

/// The most useful lines of a dead child's log (empty if unreadable): a panic message if
/// there is one (without the backtrace), otherwise the last `n` lines. ANSI colour codes
/// are removed.
pub fn log_tail(path: &Path, n: usize) -> Vec<String> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let text = strip_ansi(&String::from_utf8_lossy(&bytes));
    let lines: Vec<&str> = text.lines().collect();
    if let Some(i) = lines.iter().rposition(|l| l.contains("panicked at")) {
        return lines[i..]
            .iter()
            .take_while(|l| !l.starts_with("stack backtrace:") && !l.starts_with("note: run with"))
            .take(n)
            .map(|l| l.to_string())
            .collect();
    }
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

/// Remove ANSI escape sequences (`ESC [ ... letter`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// SIGTERM all of `procs` at once, wait up to `grace` for them, SIGKILL the rest.
async fn stop_all(procs: &mut [Proc], grace: Duration) {
    for p in procs.iter_mut() {
        if p.exited().is_none() {
            p.signal(Signal::SIGTERM);
        }
    }
    let start = Instant::now();
    while start.elapsed() < grace && procs.iter_mut().any(|p| p.exited().is_none()) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for p in procs.iter_mut() {
        if p.exited().is_none() {
            eprintln!("{} did not stop within {grace:?}; killing it", p.label);
            p.signal_group(Signal::SIGKILL);
            let _ = p.child.wait().await;
        } else {
            // Leftovers of an exited child still in its group (the group id cannot be
            // reused while any member lives).
            p.signal_group(Signal::SIGKILL);
        }
    }
}

/// What ended the supervision.
enum End {
    Signal(&'static str),
    Died(String),
}

/// Start the cluster and supervise it. `Ok(true)`: stopped by a signal, cleanly.
pub async fn execute(args: LocalArgs) -> anyhow::Result<bool> {
    if args.agents == 0 {
        bail!("--agents must be at least 1");
    }
    let master_bin = locate(MASTER_BIN)?;
    let agent_bin = locate(AGENT_BIN)?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&args.data_dir)
        .with_context(|| format!("cannot resolve {}", args.data_dir.display()))?;
    let listen = args.listen.clone();
    if tokio::net::TcpStream::connect(&listen).await.is_ok() {
        bail!(
            "something already accepts connections on {listen} (another `agora local`?); choose another --listen"
        );
    }

    let mut sigint = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;

    // With --masters N > 1: a local etcd first (the last in `master`, stopped with it),
    // then N masters on consecutive ports; agents and frameworks get the whole list.
    let mut master = Vec::new();
    let mut masters_list = listen.clone();
    // With several masters, each one's arguments, to restart it (etcd, last, is not).
    let mut master_argv: Vec<Vec<OsString>> = Vec::new();
    if args.masters > 1 {
        let etcd_bin = locate("etcd").map_err(|_| {
            anyhow::anyhow!(
                "--masters {} runs the masters over etcd, and `etcd` is not on PATH; \
                 install it (Debian/Ubuntu: apt-get install etcd-server) or use --masters 1",
                args.masters
            )
        })?;
        let (client, peer) = (free_loopback()?, free_loopback()?);
        let mut list = Vec::new();
        for i in 0..args.masters {
            let at = nth_master(&listen, i)?;
            let argv = ha_master_args(&at, i, &data_dir, &format!("http://{client}"));
            master.push(Proc::spawn(
                format!("master {}", i + 1),
                &master_bin,
                &argv,
                data_dir.join(format!("master-{}.log", i + 1)),
            )?);
            master_argv.push(argv);
            list.push(at);
        }
        master.push(Proc::spawn(
            "etcd".into(),
            &etcd_bin,
            &etcd_args(&data_dir, &client, &peer),
            data_dir.join("etcd.log"),
        )?);
        masters_list = list.join(",");
        println!("masters {masters_list} elect a leader through etcd at http://{client}");
    } else {
        master.push(Proc::spawn(
            "master".into(),
            &master_bin,
            &master_args(&listen, &data_dir),
            data_dir.join("master.log"),
        )?);
    }
    let mut agents: Vec<Proc> = Vec::new();
    // Each agent's arguments, to restart it with the same ones.
    let mut agent_argv: Vec<Vec<OsString>> = Vec::new();
    // Optional helpers (the jobs framework): stopped with the cluster, but their death
    // does not stop it.
    let mut extras: Vec<Proc> = Vec::new();

    // Wait until the master accepts connections (or dies, or we are told to stop).
    let start = Instant::now();
    let early_end = loop {
        if let Some(status) = master[0].exited() {
            break Some(End::Died(master[0].describe_death(status)));
        }
        let probe = tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(&listen),
        );
        tokio::select! {
            _ = sigint.recv() => break Some(End::Signal("SIGINT")),
            _ = sigterm.recv() => break Some(End::Signal("SIGTERM")),
            r = probe => if let Ok(Ok(_)) = r { break None },
        }
        if start.elapsed() > MASTER_START_TIMEOUT {
            stop_all(&mut master, STOP_GRACE).await;
            bail!(
                "the master did not accept connections on {listen} within {MASTER_START_TIMEOUT:?}; see {}",
                data_dir.join("master.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let end = match early_end {
        Some(end) => end,
        None => {
            let shares = match &args.agent_resources {
                Some(r) => vec![r.clone(); args.agents as usize],
                None => match probe_host(&data_dir) {
                    Ok(host) => split_host(host, args.agents),
                    Err(e) => {
                        eprintln!(
                            "cannot measure this host ({e:#}); each agent detects its own resources"
                        );
                        Vec::new()
                    }
                },
            };
            for k in 1..=args.agents {
                // Masters take consecutive ports from the first one's: agents' HTTP ports
                // come after them.
                let args = agent_args(
                    k,
                    &masters_list,
                    &data_dir,
                    shares.get(k as usize - 1).map(String::as_str),
                    agent_listen(&listen, k + args.masters.saturating_sub(1)).as_deref(),
                );
                let spawned = Proc::spawn(
                    format!("agent {k}"),
                    &agent_bin,
                    &args,
                    data_dir.join(format!("agent-{k}.log")),
                );
                match spawned {
                    Ok(p) => {
                        agent_argv.push(args);
                        agents.push(p);
                    }
                    Err(e) => {
                        stop_all(&mut agents, STOP_GRACE).await;
                        stop_all(&mut master, STOP_GRACE).await;
                        return Err(e);
                    }
                }
            }
            print_banner(&listen, &data_dir, &master[0], &agents, &agent_argv);
            // The jobs framework is optional: started when its binary is there.
            let jobs_at = jobs_listen(&listen);
            if let (Ok(bin), Some(at)) = (locate(JOBS_BIN), jobs_at) {
                match Proc::spawn(
                    "jobs".into(),
                    &bin,
                    &jobs_args(&masters_list, &at, &data_dir),
                    data_dir.join("jobs.log"),
                ) {
                    Ok(p) => {
                        println!(
                            "  jobs     REST http://{at}/v1/jobs   pid {}   log {}",
                            p.pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
                            p.log.display()
                        );
                        extras.push(p);
                    }
                    Err(e) => eprintln!("not starting the jobs framework: {e:#}"),
                }
            }
            // The services framework is optional too (Marathon-compatible API).
            let services_at = services_listen(&listen);
            if let (Ok(bin), Some(api)) = (locate(SERVICES_BIN), services_at) {
                match Proc::spawn(
                    "services".into(),
                    &bin,
                    &services_args(&masters_list, &api, &data_dir),
                    data_dir.join("services.log"),
                ) {
                    Ok(p) => {
                        println!(
                            "  services Marathon API http://{api}/v2/apps   log {}",
                            p.log.display()
                        );
                        println!(
                            "try: curl -X POST http://{api}/v2/apps -H 'Content-Type: application/json' \\"
                        );
                        println!(
                            "       -d '{{\"id\": \"/hello\", \"cmd\": \"sleep 1000\", \"instances\": 2, \"cpus\": 0.1, \"mem\": 32}}'"
                        );
                        extras.push(p);
                    }
                    Err(e) => eprintln!("not starting the services framework: {e:#}"),
                }
            }
            let mut restarts = Restarts {
                bin: agent_bin.clone(),
                deaths: vec![Vec::new(); agents.len()],
                down: vec![false; agents.len()],
                argv: agent_argv,
                recovery: "it recovers its tasks from its work directory",
            };
            // With several masters one that dies is restarted too (it rejoins as a
            // follower; another leads meanwhile). A single master, or etcd, ends the
            // cluster.
            let mut master_restarts = Restarts {
                bin: master_bin.clone(),
                deaths: vec![Vec::new(); master_argv.len()],
                down: vec![false; master_argv.len()],
                argv: master_argv,
                recovery: "it rejoins as a follower; another master leads meanwhile",
            };
            supervise(
                &mut master,
                &mut master_restarts,
                &mut agents,
                &mut restarts,
                &mut sigint,
                &mut sigterm,
            )
            .await
        }
    };

    let clean = match end {
        End::Signal(name) => {
            eprintln!("{name}: stopping the agents, then the master");
            true
        }
        End::Died(what) => {
            eprintln!("{what}");
            eprintln!("stopping the rest of the cluster");
            false
        }
    };
    stop_all(&mut extras, STOP_GRACE).await;
    stop_all(&mut agents, STOP_GRACE).await;
    stop_all(&mut master, STOP_GRACE).await;
    eprintln!("local cluster stopped");
    Ok(clean)
}

/// What the supervisor needs to restart agents (or masters of a group), and each one's
/// recent deaths.
struct Restarts {
    bin: PathBuf,
    argv: Vec<Vec<OsString>>,
    deaths: Vec<Vec<Instant>>,
    /// Left down after too many deaths.
    down: Vec<bool>,
    /// What a restarted one does (for the message).
    recovery: &'static str,
}

/// Whether an agent that died at `now`, after `deaths` (times of earlier deaths), is
/// restarted: at most `AGENT_RESTARTS_MAX` restarts within `AGENT_RESTART_WINDOW`. Pure.
pub fn should_restart(deaths: &[Instant], now: Instant) -> bool {
    let recent = deaths
        .iter()
        .filter(|d| now.duration_since(**d) < AGENT_RESTART_WINDOW)
        .count();
    recent < AGENT_RESTARTS_MAX
}

/// An agent (or a master of a group) died: report it, then restart it or leave it down.
async fn agent_died(i: usize, agents: &mut [Proc], restarts: &mut Restarts, status: ExitStatus) {
    eprintln!("{}", agents[i].describe_death(status));
    // Helpers it left in its group (the group id is not reused while one lives).
    agents[i].signal_group(Signal::SIGKILL);
    let now = Instant::now();
    if !should_restart(&restarts.deaths[i], now) {
        restarts.down[i] = true;
        eprintln!(
            "{} died {} times within {:?}; left down, the rest of the cluster keeps running",
            agents[i].label,
            AGENT_RESTARTS_MAX + 1,
            AGENT_RESTART_WINDOW
        );
        return;
    }
    restarts.deaths[i].push(now);
    tokio::time::sleep(AGENT_RESTART_DELAY).await;
    let label = agents[i].label.clone();
    let log = agents[i].log.clone();
    match Proc::spawn(label.clone(), &restarts.bin, &restarts.argv[i], log) {
        Ok(p) => {
            eprintln!(
                "{label} restarted (pid {}); {}",
                p.pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
                restarts.recovery
            );
            agents[i] = p;
        }
        Err(e) => {
            restarts.down[i] = true;
            eprintln!("cannot restart {label}: {e:#}; left down");
        }
    }
}

async fn supervise(
    master: &mut [Proc],
    master_restarts: &mut Restarts,
    agents: &mut [Proc],
    restarts: &mut Restarts,
    sigint: &mut tokio::signal::unix::Signal,
    sigterm: &mut tokio::signal::unix::Signal,
) -> End {
    loop {
        for i in 0..master.len() {
            if i < master_restarts.argv.len() && master_restarts.down[i] {
                continue;
            }
            if let Some(status) = master[i].exited() {
                if i >= master_restarts.argv.len() {
                    return End::Died(master[i].describe_death(status));
                }
                agent_died(i, master, master_restarts, status).await;
                if master_restarts.down.iter().all(|d| *d) {
                    return End::Died("every master is down".into());
                }
            }
        }
        for i in 0..agents.len() {
            if restarts.down[i] {
                continue;
            }
            if let Some(status) = agents[i].exited() {
                agent_died(i, agents, restarts, status).await;
            }
        }
        tokio::select! {
            _ = sigint.recv() => return End::Signal("SIGINT"),
            _ = sigterm.recv() => return End::Signal("SIGTERM"),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

fn print_banner(
    listen: &str,
    data_dir: &Path,
    master: &Proc,
    agents: &[Proc],
    argv: &[Vec<OsString>],
) {
    let pid = |p: &Proc| p.pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into());
    let flag = |args: &[OsString], name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.to_string_lossy().into_owned())
    };
    println!("web UI: http://{listen}/");
    println!("agora local cluster is up (data in {})", data_dir.display());
    println!(
        "  master   gRPC {listen}   HTTP http://{listen}/   pid {}   log {}",
        pid(master),
        master.log.display()
    );
    for (i, a) in agents.iter().enumerate() {
        let k = i + 1;
        let args = argv.get(i).map(Vec::as_slice).unwrap_or_default();
        println!(
            "  agent {k}  hostname local-agent-{k}   resources {}   HTTP {}   pid {}   log {}",
            flag(args, "--resources").unwrap_or_else(|| "detected".into()),
            flag(args, "--listen")
                .map(|l| format!("http://{l}/"))
                .unwrap_or_else(|| "-".into()),
            pid(a),
            a.log.display()
        );
    }
    println!("try: agora agents --master {listen}");
    println!("     agora run --master {listen} --instances 2 -- echo hello");
    println!("     agora tasks --master {listen}; agora logs TASK --master {listen}");
    println!(
        "Ctrl-C stops the cluster; an agent (or one of several masters) that dies is restarted."
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("agora-cli-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn make_exe(path: &Path) {
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn binaries_next_to_agora_win_over_path() {
        let root = temp_dir("find");
        let beside = root.join("bin");
        let on_path = root.join("path");
        std::fs::create_dir_all(&beside).unwrap();
        std::fs::create_dir_all(&on_path).unwrap();
        make_exe(&on_path.join("agora-master"));
        let path = std::env::join_paths([on_path.clone()]).unwrap();
        assert_eq!(
            find_binary("agora-master", Some(&beside), Some(&path)),
            Some(on_path.join("agora-master"))
        );
        make_exe(&beside.join("agora-master"));
        assert_eq!(
            find_binary("agora-master", Some(&beside), Some(&path)),
            Some(beside.join("agora-master"))
        );
        assert_eq!(find_binary("agora-agent", Some(&beside), Some(&path)), None);
        // Not executable: skipped.
        std::fs::write(on_path.join("agora-agent"), "x").unwrap();
        assert_eq!(find_binary("agora-agent", None, Some(&path)), None);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn child_arguments() {
        let d = Path::new("/tmp/x");
        assert_eq!(
            master_args("127.0.0.1:5050", d),
            ["--listen", "127.0.0.1:5050", "--data-dir", "/tmp/x/master"]
                .map(OsString::from)
                .to_vec()
        );
        assert_eq!(
            agent_args(2, "127.0.0.1:5050", d, None, None),
            [
                "--master",
                "127.0.0.1:5050",
                "--work-dir",
                "/tmp/x/agent-2",
                "--hostname",
                "local-agent-2"
            ]
            .map(OsString::from)
            .to_vec()
        );
        let with = agent_args(1, "m:1", d, Some("cpus:2;mem:512"), Some("127.0.0.1:5051"));
        assert_eq!(
            &with[6..],
            &[
                "--resources".into(),
                OsString::from("cpus:2;mem:512"),
                "--listen".into(),
                "127.0.0.1:5051".into()
            ]
        );
    }

    #[test]
    fn agents_split_the_host() {
        let host = Host {
            cpus: 2,
            mem_mb: 8192,
            disk_mb: 105 * 1024,
        };
        assert_eq!(
            split_host(host, 2),
            vec![
                "cpus:1;mem:3584;disk:51200;ports:[31000-31499]",
                "cpus:1;mem:3584;disk:51200;ports:[31500-31999]",
            ]
        );
        let three = split_host(host, 3);
        assert_eq!(three.len(), 3);
        assert!(three[0].starts_with("cpus:0.666;mem:2389;"), "{three:?}");
        // Every share parses, and together they never exceed the host.
        let mut cpus = 0.0;
        for s in &three {
            let r = agora_resources::Resources::parse(s).expect("valid");
            cpus += r.scalar("cpus").as_f64();
        }
        assert!(cpus <= 2.0, "{cpus}");
        let small = split_host(
            Host {
                cpus: 1,
                mem_mb: 1024,
                disk_mb: 1024,
            },
            4,
        );
        assert!(
            small[3].starts_with("cpus:0.25;mem:128;disk:128;"),
            "{small:?}"
        );
    }

    #[test]
    fn agents_listen_next_to_the_master_unless_the_port_is_taken() {
        // A port just seen free: the agent next to a master one below it gets it.
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let master = format!("127.0.0.1:{}", free - 1);
        assert_eq!(agent_listen(&master, 1), Some(format!("127.0.0.1:{free}")));
        // The same port taken: another, free one.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = taken.local_addr().expect("addr").port();
        let master = format!("127.0.0.1:{}", port - 1);
        let other = agent_listen(&master, 1).expect("a free port");
        assert_ne!(other, format!("127.0.0.1:{port}"));
        assert!(
            std::net::TcpListener::bind(other.as_str()).is_ok(),
            "{other}"
        );
        let far = agent_listen("127.0.0.1:5050", 12).expect("a free port");
        assert!(
            far.starts_with("127.0.0.1:") && far != "127.0.0.1:5062",
            "{far}"
        );
        assert_eq!(agent_listen("localhost:5050", 1), None);
    }

    #[test]
    fn a_dying_agent_is_restarted_a_bounded_number_of_times() {
        let now = Instant::now();
        assert!(should_restart(&[], now));
        let recent = vec![now; AGENT_RESTARTS_MAX - 1];
        assert!(should_restart(&recent, now));
        let too_many = vec![now; AGENT_RESTARTS_MAX];
        assert!(!should_restart(&too_many, now));
        if let Some(long_ago) = now.checked_sub(AGENT_RESTART_WINDOW + Duration::from_secs(1)) {
            assert!(
                should_restart(&[long_ago; 10], now),
                "old deaths are forgotten"
            );
        }
    }

    #[test]
    fn jobs_framework_arguments() {
        assert_eq!(
            jobs_listen("127.0.0.1:5050").as_deref(),
            Some("127.0.0.1:5060")
        );
        assert_eq!(jobs_listen("localhost:5050"), None);
        assert_eq!(jobs_listen("127.0.0.1:65530"), None);
        assert_eq!(
            jobs_args("127.0.0.1:5050", "127.0.0.1:5060", Path::new("/tmp/x")),
            [
                "--master",
                "127.0.0.1:5050",
                "--listen",
                "127.0.0.1:5060",
                "--data-dir",
                "/tmp/x/jobs"
            ]
            .map(OsString::from)
            .to_vec()
        );
    }

    #[test]
    fn services_arguments() {
        assert_eq!(
            services_listen("127.0.0.1:5050").as_deref(),
            Some("127.0.0.1:5080")
        );
        assert_eq!(services_listen("localhost:5050"), None);
        assert_eq!(
            services_args("127.0.0.1:5050", "127.0.0.1:5080", Path::new("/tmp/x")),
            [
                "--master",
                "127.0.0.1:5050",
                "--listen",
                "127.0.0.1:5080",
                "--data-dir",
                "/tmp/x/services"
            ]
            .map(OsString::from)
            .to_vec()
        );
    }

    #[test]
    fn a_group_of_masters_takes_consecutive_ports_and_the_local_etcd() {
        assert_eq!(
            nth_master("127.0.0.1:5050", 2).expect("ok"),
            "127.0.0.1:5052"
        );
        assert!(nth_master("127.0.0.1:65535", 1).is_err());
        assert!(nth_master("nonsense", 1).is_err());
        let args = ha_master_args(
            "127.0.0.1:5051",
            1,
            Path::new("/d"),
            "http://127.0.0.1:2379",
        );
        let args: Vec<_> = args
            .iter()
            .map(|a| a.to_string_lossy().to_string())
            .collect();
        assert_eq!(
            args,
            [
                "--listen",
                "127.0.0.1:5051",
                "--data-dir",
                "/d/master-1",
                "--etcd-endpoints",
                "http://127.0.0.1:2379"
            ]
        );
        let etcd: Vec<_> = etcd_args(Path::new("/d"), "127.0.0.1:1", "127.0.0.1:2")
            .iter()
            .map(|a| a.to_string_lossy().to_string())
            .collect();
        assert!(etcd.contains(&"agora-local=http://127.0.0.1:2".to_string()));
        assert!(etcd.contains(&"/d/etcd".to_string()));
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let root = temp_dir("tail");
        let f = root.join("log");
        std::fs::write(&f, "1\n2\n3\n4\n").unwrap();
        assert_eq!(log_tail(&f, 2), vec!["3", "4"]);
        assert_eq!(log_tail(&f, 10).len(), 4);
        assert!(log_tail(&root.join("missing"), 3).is_empty());
        std::fs::write(
            &f,
            "\u{1b}[32m INFO\u{1b}[0m started\n\nthread 'main' panicked at src/x.rs:1:2:\nboom\nstack backtrace:\n   0: foo\n",
        )
        .unwrap();
        assert_eq!(
            log_tail(&f, 20),
            vec!["thread 'main' panicked at src/x.rs:1:2:", "boom"]
        );
        assert_eq!(strip_ansi("\u{1b}[2mdim\u{1b}[0m text"), "dim text");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[tokio::test]
    async fn stop_all_terminates_children_and_escalates() {
        // A child that ignores SIGTERM needs the SIGKILL escalation.
        let root = temp_dir("stop");
        let sh = Path::new("/bin/sh");
        let mut procs = vec![
            Proc::spawn(
                "polite".into(),
                sh,
                &["-c".into(), "exec sleep 30".into()],
                root.join("a.log"),
            )
            .unwrap(),
            Proc::spawn(
                "stubborn".into(),
                sh,
                &["-c".into(), "trap '' TERM; sleep 30".into()],
                root.join("b.log"),
            )
            .unwrap(),
        ];
        tokio::time::sleep(Duration::from_millis(200)).await;
        let start = Instant::now();
        stop_all(&mut procs, Duration::from_millis(500)).await;
        assert!(start.elapsed() < Duration::from_secs(5));
        for p in procs.iter_mut() {
            assert!(p.exited().is_some(), "{} still running", p.label);
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}
