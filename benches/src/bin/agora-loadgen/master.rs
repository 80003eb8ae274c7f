//! The master under test: spawning a real `agora-master` process (and killing it on drop,
//! also when the harness itself dies: the child gets `PR_SET_PDEATHSIG`), `kill -9` and
//! restart on the same address and data directory, health checks, and sampling of its
//! resident memory, CPU time and `/metrics` while a scenario runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How to start a master.
#[derive(Clone, Debug)]
pub struct MasterSpawn {
    pub bin: PathBuf,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub log_dir: PathBuf,
    pub log_level: String,
    pub args: Vec<String>,
}

/// A running master: one we started, or one given with `--master`.
pub struct Master {
    pub addr: SocketAddr,
    proc: Option<Spawned>,
}

struct Spawned {
    spawn: MasterSpawn,
    child: Child,
    starts: u32,
}

impl Master {
    pub fn external(addr: SocketAddr) -> Self {
        Self { addr, proc: None }
    }

    pub fn spawn(spawn: MasterSpawn) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&spawn.log_dir)
            .with_context(|| format!("creating {}", spawn.log_dir.display()))?;
        let child = start_child(&spawn, 1)?;
        Ok(Self {
            addr: spawn.addr,
            proc: Some(Spawned {
                spawn,
                child,
                starts: 1,
            }),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(|p| p.child.id())
    }

    /// `kill -9`, and reap it.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        let Some(p) = &mut self.proc else {
            bail!("the master was given with --master; the harness cannot kill it");
        };
        let _ = p.child.kill();
        let _ = p.child.wait();
        Ok(())
    }

    /// Start it again with the same flags (address, data directory).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let Some(p) = &mut self.proc else {
            bail!("the master was given with --master; the harness cannot restart it");
        };
        p.starts += 1;
        p.child = start_child(&p.spawn, p.starts)?;
        Ok(())
    }

    /// Fails early if the process we started has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(p) = &mut self.proc
            && let Ok(Some(status)) = p.child.try_wait()
        {
            bail!(
                "agora-master exited ({status}); see its log in {}",
                p.spawn.log_dir.display()
            );
        }
        Ok(())
    }

    /// Poll `GET /health` until 200.
    pub async fn wait_healthy(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        let t0 = Instant::now();
        loop {
            self.check_alive()?;
            if let Ok((200, _)) = http_get(self.addr, "/health", Duration::from_secs(2)).await {
                return Ok(t0.elapsed());
            }
            if t0.elapsed() > timeout {
                bail!("master at {} not healthy after {timeout:?}", self.addr);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        if let Some(p) = &mut self.proc {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

fn start_child(s: &MasterSpawn, start: u32) -> anyhow::Result<Child> {
    if !s.bin.exists() {
        bail!(
            "{} is missing: build it first (cargo build --release -p agora-master), or pass --master-bin / --master",
            s.bin.display()
        );
    }
    let log = s.log_dir.join(format!("master-{start}.log"));
    let out = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone().context("cloning the log file handle")?;
    let mut cmd = Command::new(&s.bin);
    cmd.arg("--listen")
        .arg(s.addr.to_string())
        .arg("--data-dir")
        .arg(&s.data_dir)
        .args(&s.args)
        .env("RUST_LOG", &s.log_level)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    die_with_parent(&mut cmd);
    cmd.spawn()
        .with_context(|| format!("spawning {}", s.bin.display()))
}

/// The child gets SIGKILL when the thread that spawned it ends, so a master never outlives
/// a harness that was itself killed. Masters are spawned from runtime worker threads or the
/// main thread, which live as long as the harness.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only calls prctl, which
    // is async-signal-safe; it touches no memory shared with the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// `target/<profile>/agora-master` beside this executable.
pub fn default_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default()
        .join("agora-master")
}

/// A free loopback port (bound and released; the master binds it right after).
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    l.local_addr().context("reading the free port")
}

/// Resident set size of a process in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// User + system CPU seconds of a process (`/proc/<pid>/stat` fields 14 and 15).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields resume after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // SAFETY-free: sysconf is a plain libc query.
    let hz = clock_ticks();
    Some((utime + stime) / hz)
}

fn clock_ticks() -> f64 {
    #[allow(unsafe_code)]
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Minimal HTTP/1.1 GET over loopback, with a deadline.
pub async fn http_get(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> anyhow::Result<(u16, String)> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(timeout, fut)
        .await
        .with_context(|| format!("GET {path}: no answer in {timeout:?}"))?
        .with_context(|| format!("GET {path}"))?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((code, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Value of an unlabelled (or exactly labelled) Prometheus sample.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (n, v) = l.rsplit_once(' ')?;
        (n == name).then(|| v.parse().ok())?
    })
}

/// One observation of the master process.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Sample {
    /// Seconds since the scenario started.
    pub t: f64,
    pub rss_kib: Option<u64>,
    /// CPU use since the previous sample, in cores (1.0 = one core busy).
    pub cpu_cores: Option<f64>,
    /// Commands waiting for the master actor (`agora_event_queue_depth`).
    pub queue_depth: Option<f64>,
    pub alloc_cycles: Option<f64>,
    pub alloc_seconds: Option<f64>,
    pub offers_outstanding: Option<f64>,
    pub tasks_running: Option<f64>,
    /// How long `/metrics` took to answer (it goes through the master actor).
    pub metrics_ms: Option<f64>,
    /// CPU use of the harness itself, in cores: emulators share the machine with the master.
    pub harness_cpu_cores: Option<f64>,
}

/// Samples the master every `period` until dropped.
pub struct Sampler {
    pub samples: Arc<Mutex<Vec<Sample>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    pub fn start(addr: SocketAddr, pid: Option<u32>, start: Instant, period: Duration) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let out = samples.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_cpu: Option<(Instant, f64)> = None;
            let me = std::process::id();
            let mut my_last: Option<(Instant, f64)> = None;
            loop {
                tick.tick().await;
                let now = Instant::now();
                let mut s = Sample {
                    t: now.duration_since(start).as_secs_f64(),
                    ..Sample::default()
                };
                if let Some(pid) = pid {
                    s.rss_kib = rss_kib(pid);
                    if let Some(cpu) = cpu_seconds(pid) {
                        if let Some((t, c)) = last_cpu {
                            let dt = now.duration_since(t).as_secs_f64();
                            if dt > 0.0 && cpu >= c {
                                s.cpu_cores = Some((cpu - c) / dt);
                            }
                        }
                        last_cpu = Some((now, cpu));
                    }
                }
                if let Some(cpu) = cpu_seconds(me) {
                    if let Some((t, c)) = my_last {
                        let dt = now.duration_since(t).as_secs_f64();
                        if dt > 0.0 && cpu >= c {
                            s.harness_cpu_cores = Some((cpu - c) / dt);
                        }
                    }
                    my_last = Some((now, cpu));
                }
                let t0 = Instant::now();
                if let Ok((200, text)) =
                    http_get(addr, "/metrics", period.max(Duration::from_secs(2))).await
                {
                    s.metrics_ms = Some(t0.elapsed().as_secs_f64() * 1000.0);
                    s.queue_depth = metric(&text, "agora_event_queue_depth");
                    s.alloc_cycles = metric(&text, "agora_allocation_cycle_seconds_count");
                    s.alloc_seconds = metric(&text, "agora_allocation_cycle_seconds_sum");
                    s.offers_outstanding = metric(&text, "agora_offers_outstanding");
                    s.tasks_running = metric(&text, "agora_tasks{state=\"RUNNING\"}");
                }
                if let Ok(mut v) = out.lock() {
                    v.push(s);
                }
            }
        });
        Self { samples, task }
    }

    pub fn take(&self) -> Vec<Sample> {
        self.samples.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Mean allocation cycle time between two samples (ms), from the histogram's sum/count.
pub fn mean_cycle_ms(samples: &[Sample]) -> Option<f64> {
    let first = samples.iter().find(|s| s.alloc_cycles.is_some())?;
    let last = samples.iter().rev().find(|s| s.alloc_cycles.is_some())?;
    let n = last.alloc_cycles? - first.alloc_cycles?;
    let secs = last.alloc_seconds? - first.alloc_seconds?;
    (n > 0.0).then(|| secs / n * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_metrics_and_proc() {
        let text = "# HELP x\nagora_event_queue_depth 12\nagora_tasks{state=\"RUNNING\"} 7\n";
        assert_eq!(metric(text, "agora_event_queue_depth"), Some(12.0));
        assert_eq!(metric(text, "agora_tasks{state=\"RUNNING\"}"), Some(7.0));
        assert_eq!(metric(text, "agora_missing"), None);
        let me = std::process::id();
        assert!(rss_kib(me).is_some_and(|k| k > 0));
        assert!(cpu_seconds(me).is_some());
        assert_eq!(dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "abcde");
    }
}
