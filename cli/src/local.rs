//! `agora local`: a whole cluster on this machine — one `agora-master`, N `agora-agent`
//! and (when built) one `agora-services` child processes — supervised until Ctrl-C/SIGTERM or until a child dies.
//!
//! Owns the child processes it starts and nothing else: it signals only the pids it
//! spawned (agents first, then the master; SIGTERM, then SIGKILL after a grace period).
//! It must never kill processes it did not start, and never talk to the cluster's APIs
//! beyond checking that the master's port accepts connections. Children run in their own
//! process group so a terminal Ctrl-C reaches only this supervisor, which then stops them
//! in order.

use std::ffi::{OsStr, OsString};
use std::fs::File;
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
pub fn agent_args(k: u32, master: &str, data_dir: &Path, resources: Option<&str>) -> Vec<OsString> {
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
    fn spawn(label: String, bin: &Path, args: &[OsString], log: PathBuf) -> anyhow::Result<Proc> {
        let out = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
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
            master.push(Proc::spawn(
                format!("master {}", i + 1),
                &master_bin,
                &ha_master_args(&at, i, &data_dir, &format!("http://{client}")),
                data_dir.join(format!("master-{}.log", i + 1)),
            )?);
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
            for k in 1..=args.agents {
                let spawned = Proc::spawn(
                    format!("agent {k}"),
                    &agent_bin,
                    &agent_args(k, &masters_list, &data_dir, args.agent_resources.as_deref()),
                    data_dir.join(format!("agent-{k}.log")),
                );
                match spawned {
                    Ok(p) => agents.push(p),
                    Err(e) => {
                        stop_all(&mut agents, STOP_GRACE).await;
                        stop_all(&mut master, STOP_GRACE).await;
                        return Err(e);
                    }
                }
            }
            print_banner(&listen, &data_dir, &master[0], &agents);
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
            supervise(&mut master, &mut agents, &mut sigint, &mut sigterm).await
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

async fn supervise(
    master: &mut [Proc],
    agents: &mut [Proc],
    sigint: &mut tokio::signal::unix::Signal,
    sigterm: &mut tokio::signal::unix::Signal,
) -> End {
    loop {
        for p in master.iter_mut().chain(agents.iter_mut()) {
            if let Some(status) = p.exited() {
                return End::Died(p.describe_death(status));
            }
        }
        tokio::select! {
            _ = sigint.recv() => return End::Signal("SIGINT"),
            _ = sigterm.recv() => return End::Signal("SIGTERM"),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

fn print_banner(listen: &str, data_dir: &Path, master: &Proc, agents: &[Proc]) {
    let pid = |p: &Proc| p.pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into());
    println!("agora local cluster is up (data in {})", data_dir.display());
    println!(
        "  master   gRPC {listen}   HTTP http://{listen}/   pid {}   log {}",
        pid(master),
        master.log.display()
    );
    for (i, a) in agents.iter().enumerate() {
        let k = i + 1;
        println!(
            "  agent {k}  hostname local-agent-{k}   work dir {}   pid {}   log {}",
            data_dir.join(format!("agent-{k}")).display(),
            pid(a),
            a.log.display()
        );
    }
    println!("try: agora agents --master {listen}");
    println!("     agora run --master {listen} --instances 2 -- echo hello");
    println!("Ctrl-C stops the cluster.");
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
            agent_args(2, "127.0.0.1:5050", d, None),
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
        let with = agent_args(1, "m:1", d, Some("cpus:2;mem:512"));
        assert_eq!(
            &with[6..],
            &["--resources".into(), OsString::from("cpus:2;mem:512")]
        );
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
