//! The plain-process containerizer: a task is a child process in its own process group.
//!
//! Owns, per task, the child process handle (inside one reaper tokio task) and the sandbox
//! directory it creates under `<work-dir>/sandboxes/<framework_id>/<task_id>/`. The child
//! gets stdin from /dev/null, stdout and stderr into the files `stdout` and `stderr` of the
//! sandbox, the sandbox as working directory, and the agent's environment plus the
//! command's plus the Agora variables.
//!
//! It must never signal anything but the process group it created (never group 0 or 1),
//! and never leave processes of a task behind: when the main process ends, whatever is
//! left of its process group is killed. There is no resource isolation here; processes
//! that leave their process group (`setsid`) escape it. The Linux containerizer closes
//! both gaps.
//!
//! Tasks outlive the agent: [`ProcessContainerizer::recover`] re-attaches to a task's main
//! process from its checkpointed pid and start time (a pidfd then tells when it ends; it is
//! no longer the agent's child, so its exit status is lost and the task ends with an
//! unknown termination). A process whose pid and start time no longer match ended while
//! the agent was away: its container is returned already ended. A restarted agent never
//! reports a task ended while its process still runs.

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Gid, Pid, Uid, User, chown, fchown};
use tokio::process::Command;
use tokio::sync::watch;

use super::{
    Container, ContainerRef, Containerizer, LaunchError, LaunchSpec, Program, Termination,
};
use crate::sandbox::sandbox_dir;

/// Runs each task as a child process of the agent, in its own process group.
#[derive(Clone, Debug)]
pub struct ProcessContainerizer {
    work_dir: PathBuf,
}

impl ProcessContainerizer {
    /// A containerizer keeping sandboxes under `work_dir` (made absolute; created lazily).
    pub fn new(work_dir: impl AsRef<Path>) -> std::io::Result<ProcessContainerizer> {
        Ok(ProcessContainerizer {
            work_dir: std::path::absolute(work_dir.as_ref())?,
        })
    }

    /// The absolute work directory.
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }
}

impl Containerizer for ProcessContainerizer {
    fn recover(&self, reference: ContainerRef) -> BoxFuture<'static, Option<Arc<dyn Container>>> {
        Box::pin(async move { Some(recover(reference)) })
    }

    fn launch(
        &self,
        spec: LaunchSpec,
    ) -> BoxFuture<'static, Result<Arc<dyn Container>, LaunchError>> {
        let work_dir = self.work_dir.clone();
        Box::pin(async move { start(&work_dir, &spec) })
    }
}

/// Another user the task runs as.
pub(super) struct RunAs {
    pub(super) name: String,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) home: PathBuf,
}

/// `None` when the task runs as the agent's own user.
pub(super) fn resolve_user(user: Option<&str>) -> Result<Option<RunAs>, LaunchError> {
    let Some(name) = user else {
        return Ok(None);
    };
    let entry = User::from_name(name)
        .map_err(|error| LaunchError::UserLookup {
            user: name.to_string(),
            error,
        })?
        .ok_or_else(|| LaunchError::UnknownUser(name.to_string()))?;
    let agent_uid = Uid::current();
    if entry.uid == agent_uid {
        return Ok(None);
    }
    if !agent_uid.is_root() {
        return Err(LaunchError::CannotSwitchUser {
            user: name.to_string(),
            agent_uid: agent_uid.as_raw(),
        });
    }
    Ok(Some(RunAs {
        name: entry.name,
        uid: entry.uid.as_raw(),
        gid: entry.gid.as_raw(),
        home: entry.dir,
    }))
}

/// The user a container's sandbox belongs to: who its command checks run as. `None`:
/// the agent's own user (the sandbox is the agent's: the task runs as the agent).
pub(super) fn sandbox_owner(sandbox: &Path) -> Result<Option<RunAs>, String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(sandbox)
        .map_err(|e| format!("cannot read sandbox {}: {e}", sandbox.display()))?;
    if !meta.is_dir() {
        return Err(format!("sandbox {} is not a directory", sandbox.display()));
    }
    if meta.uid() == Uid::effective().as_raw() {
        return Ok(None);
    }
    let entry = User::from_uid(Uid::from_raw(meta.uid())).ok().flatten();
    Ok(Some(RunAs {
        name: entry
            .as_ref()
            .map_or_else(|| meta.uid().to_string(), |u| u.name.clone()),
        uid: meta.uid(),
        gid: meta.gid(),
        home: entry.map_or_else(|| PathBuf::from("/"), |u| u.dir),
    }))
}

/// The environment of a command check: a fixed PATH, the user's names and home, and the
/// sandbox. Nothing of the agent's own environment.
pub(super) fn check_environment(sandbox: &Path, run_as: Option<&RunAs>) -> Vec<(String, String)> {
    let mut env = vec![
        ("PATH".to_string(), super::linux::DEFAULT_PATH.to_string()),
        (
            "AGORA_SANDBOX".to_string(),
            sandbox.to_string_lossy().into_owned(),
        ),
    ];
    if let Some(r) = run_as {
        env.push(("USER".into(), r.name.clone()));
        env.push(("LOGNAME".into(), r.name.clone()));
        env.push(("HOME".into(), r.home.to_string_lossy().into_owned()));
    }
    env
}

pub(super) fn sandbox_error(path: &Path) -> impl FnOnce(std::io::Error) -> LaunchError + '_ {
    move |error| LaunchError::Sandbox {
        path: path.to_path_buf(),
        error,
    }
}

/// A fresh output file. Whatever a previous run of the same task left at `path` (possibly
/// a symlink planted by the task) is removed, and the new file is created exclusively, so
/// the agent never writes through a link.
pub(super) fn create_output(path: &Path) -> Result<File, LaunchError> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(sandbox_error(path)(e)),
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .mode(0o644)
        .open(path)
        .map_err(sandbox_error(path))
}

pub(super) fn give_fd_to(file: &File, path: &Path, run_as: &RunAs) -> Result<(), LaunchError> {
    fchown(
        file,
        Some(Uid::from_raw(run_as.uid)),
        Some(Gid::from_raw(run_as.gid)),
    )
    .map_err(|error| LaunchError::Chown {
        path: path.to_path_buf(),
        user: run_as.name.clone(),
        error,
    })
}

/// Gives a directory the agent just created (its parent is the agent's) to the task's user.
pub(super) fn give_to(path: &Path, run_as: &RunAs) -> Result<(), LaunchError> {
    chown(
        path,
        Some(Uid::from_raw(run_as.uid)),
        Some(Gid::from_raw(run_as.gid)),
    )
    .map_err(|error| LaunchError::Chown {
        path: path.to_path_buf(),
        user: run_as.name.clone(),
        error,
    })
}

fn start(work_dir: &Path, spec: &LaunchSpec) -> Result<Arc<dyn Container>, LaunchError> {
    if spec.image.is_some() {
        return Err(LaunchError::ImageNeedsLinux);
    }
    let sandbox = sandbox_dir(work_dir, &spec.framework_id, &spec.task_id)?;
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

    let mut cmd = match &spec.program {
        Program::Shell(script) => {
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg(script);
            c
        }
        Program::Argv(args) => {
            // Looked up here, not by the child: a child that switched users would report
            // a PATH directory it may not search (EACCES) instead of a missing program.
            let path = spec
                .environment
                .iter()
                .rev()
                .find(|(k, _)| k == "PATH")
                .map(|(_, v)| std::ffi::OsString::from(v))
                .or_else(|| std::env::var_os("PATH"))
                .unwrap_or_else(|| super::linux::DEFAULT_PATH.into());
            let program = super::linux::find_program(spec.program.executable(), &path)?;
            let mut c = Command::new(program);
            c.arg0(spec.program.executable()).args(args.iter().skip(1));
            c
        }
    };
    cmd.current_dir(&sandbox)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        // Its own process group, so signals reach every process a shell starts.
        .process_group(0)
        .kill_on_drop(false);
    cmd.envs(spec.environment.iter().map(|(k, v)| (k, v)));
    if let Some(run_as) = &run_as {
        // std drops the agent's supplementary groups when root sets a uid.
        cmd.uid(run_as.uid)
            .gid(run_as.gid)
            .env("USER", &run_as.name)
            .env("LOGNAME", &run_as.name)
            .env("HOME", &run_as.home);
    }
    cmd.envs(spec.agora_environment(&sandbox));

    let mut child = cmd.spawn().map_err(|error| LaunchError::Spawn {
        program: spec.program.executable().to_string(),
        error,
    })?;
    // A freshly spawned child always has an id; it is only cleared once reaped.
    let pid = child.id().unwrap_or(0);
    let start_time = i32::try_from(pid)
        .ok()
        .and_then(super::linux::process_start_time)
        .unwrap_or(0);
    let (tx, rx) = watch::channel(None);
    tracing::debug!(pid, sandbox = %sandbox.display(), "task process started");
    tokio::spawn(async move {
        let termination = match child.wait().await {
            Ok(status) => termination_of(status),
            Err(e) => Termination::Unknown(format!("waiting for pid {pid} failed: {e}")),
        };
        // The main process is gone: destroy what is left of its process group, and wait
        // (bounded) until the group is empty so "ended" means no process is left.
        signal_group(pid, Signal::SIGKILL);
        wait_group_empty(pid).await;
        tx.send_replace(Some(termination));
    });
    Ok(Arc::new(ProcessContainer {
        pid,
        start_time,
        sandbox,
        rx,
    }))
}

/// The container id of a process container in checkpoints: its group and start time.
fn container_id(pid: u32, start_time: u64) -> String {
    format!("process-{pid}-{start_time}")
}

/// Re-attaches to a task's process group left by a previous run of the agent.
fn recover(reference: ContainerRef) -> Arc<dyn Container> {
    let ContainerRef {
        container_id: id,
        pid,
        start_time,
        sandbox,
    } = reference;
    let (tx, rx) = watch::channel(None);
    let container = Arc::new(ProcessContainer {
        pid,
        start_time,
        sandbox,
        rx,
    });
    let raw = i32::try_from(pid).unwrap_or(0);
    let ours = raw > 1
        && id == container_id(pid, start_time)
        && super::linux::process_start_time(raw) == Some(start_time)
        && own_group(raw);
    let pidfd = if ours {
        super::spawn::pidfd_open(raw).ok()
    } else {
        None
    };
    // The start time is checked again after the pidfd is open: the pidfd then names the
    // task's process, never one that reused its pid.
    let pidfd = pidfd.filter(|_| super::linux::process_start_time(raw) == Some(start_time));
    match pidfd {
        None => {
            tracing::info!(pid, "the task's process ended while the agent was away");
            tx.send_replace(Some(Termination::Unknown(
                "the task ended while the agent was down; its exit status is lost".into(),
            )));
        }
        Some(pidfd) => {
            tracing::info!(pid, "re-attached to the task's process group");
            tokio::spawn(async move {
                let waited = super::spawn::pidfd_exited(Arc::new(pidfd)).await;
                signal_group(pid, Signal::SIGKILL);
                wait_group_empty(pid).await;
                let why = match waited {
                    Ok(()) => "its exit status is lost: the agent restarted while it ran".into(),
                    Err(e) => format!("cannot wait for it after an agent restart: {e}"),
                };
                tx.send_replace(Some(Termination::Unknown(why)));
            });
        }
    }
    container
}

/// Whether process `pid` leads its own process group (as every task's main process does).
fn own_group(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat_group_and_state(&stat))
        .is_some_and(|(group, state)| group == pid && state != 'Z')
}

pub(super) fn termination_of(status: ExitStatus) -> Termination {
    match (status.code(), status.signal()) {
        (Some(code), _) => Termination::Exited(code),
        (None, Some(sig)) => Termination::Signaled(sig),
        (None, None) => Termination::Unknown(format!("unexpected wait status {status}")),
    }
}

/// Sends `signal` to process group `pgid`. A group that no longer exists is not an error.
fn signal_group(pgid: u32, signal: Signal) {
    let Ok(raw) = i32::try_from(pgid) else {
        return;
    };
    // Group 0 is the agent's own and 1 is init's: never signal them.
    if raw <= 1 {
        tracing::error!(pgid, "refusing to signal process group");
        return;
    }
    match killpg(Pid::from_raw(raw), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => tracing::warn!(pgid, %signal, error = %e, "cannot signal process group"),
    }
}

/// How long the reaper waits for a killed process group to disappear.
const GROUP_EXIT_TIMEOUT: Duration = Duration::from_secs(2);

/// Waits until no live process of group `pgid` is left (they were sent SIGKILL), at most
/// [`GROUP_EXIT_TIMEOUT`]. Zombies count as gone: they are dead and wait only for their new
/// parent (init, which may reap lazily) to collect them.
async fn wait_group_empty(pgid: u32) {
    let Ok(raw) = i32::try_from(pgid) else {
        return;
    };
    if raw <= 1 {
        return;
    }
    let deadline = tokio::time::Instant::now() + GROUP_EXIT_TIMEOUT;
    while group_has_live_member(raw) {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                pgid,
                "processes of the task's group still run after SIGKILL"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether a process of group `pgid` exists that is not a zombie.
fn group_has_live_member(pgid: i32) -> bool {
    // Signal 0 only checks that the group has a member (zombies included).
    if killpg(Pid::from_raw(pgid), None).is_err() {
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            return false;
        };
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| stat_group_and_state(&stat))
            .is_some_and(|(group, state)| group == pgid && state != 'Z')
    })
}

/// Live (not zombie) processes of group `pgid`.
fn group_members(pgid: i32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| stat_group_and_state(&stat))
                .is_some_and(|(group, state)| group == pgid && state != 'Z')
        })
        .collect()
}

/// Process group and state of a `/proc/<pid>/stat` line. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted after its last ')'.
fn stat_group_and_state(stat: &str) -> Option<(i32, char)> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((pgrp, state))
}

/// One task's process group.
struct ProcessContainer {
    pid: u32,
    /// The main process' start time (0 if unknown): with the pid, its checkpointed identity.
    start_time: u64,
    sandbox: PathBuf,
    /// `Some` once the reaper saw the main process end and killed the rest of the group.
    rx: watch::Receiver<Option<Termination>>,
}

impl Container for ProcessContainer {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn pids(&self) -> Vec<u32> {
        let Ok(group) = i32::try_from(self.pid) else {
            return Vec::new();
        };
        let mut pids = vec![self.pid];
        pids.extend(group_members(group).into_iter().filter(|p| *p != self.pid));
        pids
    }

    fn run_check(
        &self,
        argv: Vec<String>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(), String>> {
        let sandbox = self.sandbox.clone();
        Box::pin(async move {
            let run_as = sandbox_owner(&sandbox)?;
            let (program, args) = argv.split_first().ok_or("empty command")?;
            let mut cmd = Command::new(program);
            cmd.args(args)
                .current_dir(&sandbox)
                .env_clear()
                .envs(check_environment(&sandbox, run_as.as_ref()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .kill_on_drop(true);
            if let Some(r) = &run_as {
                cmd.uid(r.uid).gid(r.gid);
            }
            let mut child = cmd
                .spawn()
                .map_err(|e| format!("cannot run {program:?}: {e}"))?;
            let pid = child.id().unwrap_or(0);
            match tokio::time::timeout(timeout, child.wait()).await {
                Ok(Ok(status)) if status.success() => Ok(()),
                Ok(Ok(status)) => Err(format!("command {status}")),
                Ok(Err(e)) => Err(format!("waiting for the command failed: {e}")),
                Err(_) => {
                    signal_group(pid, Signal::SIGKILL);
                    let _ = child.wait().await;
                    Err(format!("timed out after {timeout:?}"))
                }
            }
        })
    }

    fn sandbox(&self) -> &Path {
        &self.sandbox
    }

    fn reference(&self) -> Option<ContainerRef> {
        (self.start_time != 0).then(|| ContainerRef {
            container_id: container_id(self.pid, self.start_time),
            pid: self.pid,
            start_time: self.start_time,
            sandbox: self.sandbox.clone(),
        })
    }

    fn wait(&self) -> BoxFuture<'static, Termination> {
        let mut rx = self.rx.clone();
        Box::pin(async move { super::wait_termination(&mut rx).await })
    }

    fn kill(&self, grace: Duration) -> BoxFuture<'static, Termination> {
        let pid = self.pid;
        let mut rx = self.rx.clone();
        Box::pin(async move {
            let ended = rx.borrow().clone();
            if let Some(t) = ended {
                return t;
            }
            signal_group(pid, Signal::SIGTERM);
            if let Ok(t) = tokio::time::timeout(grace, super::wait_termination(&mut rx)).await {
                return t;
            }
            tracing::info!(
                pid,
                grace_ms = grace.as_millis(),
                "task outlived its grace period; sending SIGKILL"
            );
            signal_group(pid, Signal::SIGKILL);
            super::wait_termination(&mut rx).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat() {
        let line = "4242 (we(ird) name) S 1 4240 4240 0 -1 4194560 88 0 0 0";
        assert_eq!(stat_group_and_state(line), Some((4240, 'S')));
        assert_eq!(stat_group_and_state("1 (init) Z 0 7 7"), Some((7, 'Z')));
        assert_eq!(stat_group_and_state("garbage"), None);
        assert_eq!(stat_group_and_state("1 (x) S 0 notanumber"), None);
    }

    #[test]
    fn own_group_has_a_live_member() {
        let own = nix::unistd::getpgrp().as_raw();
        assert!(group_has_live_member(own));
    }
}
