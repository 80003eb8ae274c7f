//! Real `agora-master` and `agora-agent` processes, each started in its host's network
//! namespace (`ip netns exec`) and in a time namespace of its own whose monotonic and boot
//! clocks are offset by a seeded amount (`unshare --time --monotonic`): every restart is a
//! step of the clocks the process reads its timeouts from.
//!
//! Owns only the processes it spawned; it kills them by pid, never by name.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// One supervised process: `unshare` (the parent that holds the time namespace open) and
/// its one child, the real program.
pub struct Proc {
    pub name: String,
    netns: String,
    bin: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
    /// The clock offset of the current incarnation, in seconds.
    pub clock_offset_s: u64,
}

impl Proc {
    pub fn new(name: &str, netns: &str, bin: &Path, args: Vec<String>, log: PathBuf) -> Proc {
        Proc {
            name: name.to_string(),
            netns: netns.to_string(),
            bin: bin.to_path_buf(),
            args,
            log,
            child: None,
            clock_offset_s: 0,
        }
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            None => false,
            Some(c) => matches!(c.try_wait(), Ok(None)),
        }
    }

    /// Starts the program with its clocks `clock_offset_s` ahead of the host's.
    pub fn start(&mut self, clock_offset_s: u64) -> anyhow::Result<()> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let err = out.try_clone()?;
        let offset = clock_offset_s.to_string();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.netns, "unshare", "--time"])
            .args(["--monotonic", &offset, "--boottime", &offset])
            .arg("--kill-child=SIGKILL")
            .arg("--")
            .arg(&self.bin)
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {}", self.name))?;
        self.child = Some(child);
        self.clock_offset_s = clock_offset_s;
        Ok(())
    }

    /// `kill -9` of the program itself (not of its `unshare` parent), then waits for both.
    pub fn kill9(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let parent = child.id();
        // The program is unshare's only child; it may not have been forked yet.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(pid) = children(parent).first() {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                break;
            }
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // unshare exits once its child died; if it lingers, it goes too (and its child
        // with it: --kill-child).
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The children of `pid` (Linux: `/proc/PID/task/PID/children`).
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}
