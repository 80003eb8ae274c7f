//! [`CommandExecutor`]: runs each task's command as a child process of the executor.
//!
//! Owns the executor's children, in one supervisor actor: their process groups, which task
//! group each belongs to, and which were asked to die. A task runs in
//! `<executor sandbox>/tasks/<task id>/` with `stdout` and `stderr` files there, in its own
//! process group. The command is the task's `CommandInfo`, or else its `data` as a shell
//! script. States reported: STARTING, RUNNING, then FINISHED (exit 0), FAILED (exit code or
//! signal) or KILLED.
//!
//! Group semantics (LAUNCH_GROUP): the tasks of a group start together; when one ends in
//! anything but FINISHED, or any member is killed, every other member is killed too.
//!
//! It must never signal a process group it did not create, and never leave a child
//! unreaped: every child has a waiter that reports its end to the supervisor.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use agora_proto::v1::{
    KillPolicy, StatusReason, TaskGroupInfo, TaskInfo, TaskState, TaskStatus, command_info,
};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::sync::{mpsc, oneshot};

use crate::driver::ExecutorHandle;
use crate::executor::Executor;

/// Grace period of a kill without a kill policy.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3);

/// Options of [`CommandExecutor`].
#[derive(Clone, Debug, Default)]
pub struct CommandOptions {
    /// Answer every framework message with `echo:` + the message (the example executor).
    pub echo_messages: bool,
}

/// Runs tasks as child processes. See the [module documentation](self).
#[derive(Debug)]
pub struct CommandExecutor {
    options: CommandOptions,
    sandbox: PathBuf,
    supervisor: Option<mpsc::Sender<Sup>>,
}

impl CommandExecutor {
    /// An executor whose tasks run below `sandbox` (normally its working directory).
    pub fn new(options: CommandOptions, sandbox: PathBuf) -> CommandExecutor {
        CommandExecutor {
            options,
            sandbox,
            supervisor: None,
        }
    }

    fn supervisor(&mut self, handle: &ExecutorHandle) -> mpsc::Sender<Sup> {
        if let Some(tx) = &self.supervisor {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel(256);
        let sup = Supervisor {
            handle: handle.clone(),
            sandbox: self.sandbox.clone(),
            tasks: HashMap::new(),
            next_group: 0,
            self_tx: tx.downgrade(),
            idle_waiters: Vec::new(),
        };
        tokio::spawn(sup.run(rx));
        self.supervisor = Some(tx.clone());
        tx
    }
}

fn grace_of(policy: Option<&KillPolicy>) -> Duration {
    policy
        .map(|p| p.grace_period_seconds)
        .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 3600.0)
        .map_or(DEFAULT_GRACE, Duration::from_secs_f64)
}

impl Executor for CommandExecutor {
    async fn launch_task(&mut self, handle: &ExecutorHandle, task: TaskInfo) {
        let tx = self.supervisor(handle);
        let _ = tx
            .send(Sup::Launch {
                tasks: vec![task],
                group: false,
            })
            .await;
    }

    async fn launch_group(&mut self, handle: &ExecutorHandle, group: TaskGroupInfo) {
        let tx = self.supervisor(handle);
        let _ = tx
            .send(Sup::Launch {
                tasks: group.tasks,
                group: true,
            })
            .await;
    }

    async fn kill_task(
        &mut self,
        handle: &ExecutorHandle,
        task_id: String,
        kill_policy: Option<KillPolicy>,
    ) {
        let tx = self.supervisor(handle);
        let grace = grace_of(kill_policy.as_ref());
        let _ = tx.send(Sup::Kill { task_id, grace }).await;
    }

    async fn message(&mut self, handle: &ExecutorHandle, data: Vec<u8>) {
        if self.options.echo_messages {
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&data);
            if let Err(e) = handle.message(reply).await {
                tracing::warn!("cannot answer a framework message: {e}");
            }
        }
    }

    async fn shutdown(&mut self, handle: &ExecutorHandle, grace: Duration) {
        let tx = self.supervisor(handle);
        let (reply, rx) = oneshot::channel();
        let _ = tx.send(Sup::Shutdown { grace, reply }).await;
        // The agent kills the container after the grace period anyway.
        let _ = tokio::time::timeout(grace + Duration::from_secs(2), rx).await;
    }
}

enum Sup {
    Launch {
        tasks: Vec<TaskInfo>,
        group: bool,
    },
    Kill {
        task_id: String,
        grace: Duration,
    },
    ForceKill {
        task_id: String,
        pgid: i32,
    },
    Exited {
        task_id: String,
        status: std::io::Result<ExitStatus>,
    },
    Shutdown {
        grace: Duration,
        reply: oneshot::Sender<()>,
    },
}

struct Child {
    pgid: i32,
    group: Option<u64>,
    /// Why the task is being killed (it then ends KILLED with this message and reason).
    killing: Option<(String, StatusReason)>,
}

struct Supervisor {
    handle: ExecutorHandle,
    sandbox: PathBuf,
    tasks: HashMap<String, Child>,
    next_group: u64,
    self_tx: mpsc::WeakSender<Sup>,
    idle_waiters: Vec<oneshot::Sender<()>>,
}

impl Drop for Supervisor {
    /// The executor is going away (its driver returned, or the runtime is shutting down):
    /// tasks still running would outlive it in their own process groups (the Linux
    /// containerizer's cgroup would catch them, plain processes would not).
    fn drop(&mut self) {
        for child in self.tasks.values() {
            let _ = killpg(Pid::from_raw(child.pgid), Signal::SIGKILL);
        }
    }
}

fn status(task_id: &str, state: TaskState, reason: StatusReason, message: String) -> TaskStatus {
    TaskStatus {
        task_id: task_id.to_string(),
        state: state as i32,
        reason: reason as i32,
        message,
        ..Default::default()
    }
}

/// The shell program of a task: its command, or its data as a script.
fn program_of(task: &TaskInfo) -> Result<tokio::process::Command, String> {
    if let Some(cmd) = &task.command {
        let mut command = match &cmd.run {
            Some(command_info::Run::Shell(script)) => {
                let mut c = tokio::process::Command::new("/bin/sh");
                c.arg("-c").arg(script);
                c
            }
            Some(command_info::Run::Argv(argv)) => {
                let Some((program, args)) = argv.args.split_first() else {
                    return Err("command argv is empty".into());
                };
                let mut c = tokio::process::Command::new(program);
                c.args(args);
                c
            }
            None => return Err("command has neither shell nor argv".into()),
        };
        for var in &cmd.environment {
            command.env(&var.name, &var.value);
        }
        return Ok(command);
    }
    match std::str::from_utf8(&task.data) {
        Ok(script) if !script.trim().is_empty() => {
            let mut c = tokio::process::Command::new("/bin/sh");
            c.arg("-c").arg(script);
            Ok(c)
        }
        _ => Err("task has no command and no data to run".into()),
    }
}

fn safe_component(id: &str) -> bool {
    !id.is_empty() && id != "." && id != ".." && !id.contains('/') && !id.contains('\0')
}

impl Supervisor {
    async fn run(mut self, mut rx: mpsc::Receiver<Sup>) {
        while let Some(msg) = rx.recv().await {
            match msg {
                Sup::Launch { tasks, group } => self.launch(tasks, group).await,
                Sup::Kill { task_id, grace } => {
                    let why = "killed by the framework".to_string();
                    let members = self.members_of(&task_id);
                    for id in members {
                        self.kill(&id, grace, why.clone(), StatusReason::KilledByFramework);
                    }
                }
                Sup::ForceKill { task_id, pgid } => {
                    if self.tasks.get(&task_id).is_some_and(|c| c.pgid == pgid) {
                        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
                    }
                }
                Sup::Exited { task_id, status } => self.exited(task_id, status).await,
                Sup::Shutdown { grace, reply } => {
                    let ids: Vec<String> = self.tasks.keys().cloned().collect();
                    for id in ids {
                        let why = "killed because the executor shut down".to_string();
                        self.kill(&id, grace, why, StatusReason::ExecutorTerminated);
                    }
                    self.idle_waiters.push(reply);
                    self.notify_idle();
                }
            }
        }
    }

    /// The task and, when it is in a group, every other live member of the group.
    fn members_of(&self, task_id: &str) -> Vec<String> {
        match self.tasks.get(task_id).and_then(|c| c.group) {
            Some(g) => self
                .tasks
                .iter()
                .filter(|(_, c)| c.group == Some(g))
                .map(|(id, _)| id.clone())
                .collect(),
            None if self.tasks.contains_key(task_id) => vec![task_id.to_string()],
            None => Vec::new(),
        }
    }

    fn notify_idle(&mut self) {
        if self.tasks.is_empty() {
            for w in self.idle_waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }

    async fn send(&self, status: TaskStatus) {
        if let Err(e) = self.handle.update(status).await {
            tracing::error!("status update refused: {e}");
        }
    }

    async fn launch(&mut self, tasks: Vec<TaskInfo>, group: bool) {
        let group_id = group.then(|| {
            self.next_group += 1;
            self.next_group
        });
        let mut failed: Option<String> = None;
        for task in &tasks {
            self.send(status(
                &task.task_id,
                TaskState::Starting,
                StatusReason::Unspecified,
                String::new(),
            ))
            .await;
        }
        for task in tasks {
            let id = task.task_id.clone();
            if self.tasks.contains_key(&id) {
                tracing::warn!(task = %id, "launch of a task that already runs; ignored");
                continue;
            }
            if let Some(first) = &failed {
                self.send(status(
                    &id,
                    TaskState::Killed,
                    StatusReason::Unspecified,
                    format!("not started because task {first} of its group failed to start"),
                ))
                .await;
                continue;
            }
            match self.spawn(&task) {
                Ok(pgid) => {
                    self.tasks.insert(
                        id.clone(),
                        Child {
                            pgid,
                            group: group_id,
                            killing: None,
                        },
                    );
                    self.send(status(
                        &id,
                        TaskState::Running,
                        StatusReason::Unspecified,
                        String::new(),
                    ))
                    .await;
                }
                Err(e) => {
                    self.send(status(
                        &id,
                        TaskState::Failed,
                        StatusReason::ContainerLaunchFailed,
                        e,
                    ))
                    .await;
                    if group_id.is_some() {
                        failed = Some(id.clone());
                    }
                }
            }
        }
        if let (Some(first), Some(g)) = (failed, group_id) {
            let ids: Vec<String> = self
                .tasks
                .iter()
                .filter(|(_, c)| c.group == Some(g))
                .map(|(id, _)| id.clone())
                .collect();
            for id in ids {
                let why = format!("killed because task {first} of its group failed to start");
                self.kill(&id, DEFAULT_GRACE, why, StatusReason::Unspecified);
            }
        }
    }

    fn spawn(&self, task: &TaskInfo) -> Result<i32, String> {
        let id = &task.task_id;
        if !safe_component(id) {
            return Err(format!("task id {id:?} cannot be a directory name"));
        }
        let mut command = program_of(task)?;
        let dir = self.sandbox.join("tasks").join(id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let open = |name: &str| {
            std::fs::File::create(dir.join(name))
                .map_err(|e| format!("cannot create {}: {e}", dir.join(name).display()))
        };
        command
            .current_dir(&dir)
            .env_remove(crate::env::TOKEN)
            .env("AGORA_TASK_ID", id)
            .env(crate::env::SANDBOX, &dir)
            .stdin(Stdio::null())
            .stdout(open("stdout")?)
            .stderr(open("stderr")?)
            .process_group(0);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start the task's command: {e}"))?;
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or("the task's process ended before it could be tracked")?;
        let tx = self.self_tx.clone();
        let task_id = id.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            if let Some(tx) = tx.upgrade() {
                let _ = tx.send(Sup::Exited { task_id, status }).await;
            }
        });
        Ok(pid)
    }

    fn kill(&mut self, task_id: &str, grace: Duration, why: String, reason: StatusReason) {
        let Some(child) = self.tasks.get_mut(task_id) else {
            return;
        };
        if child.killing.is_some() {
            return;
        }
        child.killing = Some((why, reason));
        let pgid = child.pgid;
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
        let tx = self.self_tx.clone();
        let task_id = task_id.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if let Some(tx) = tx.upgrade() {
                let _ = tx.send(Sup::ForceKill { task_id, pgid }).await;
            }
        });
    }

    async fn exited(&mut self, task_id: String, exit: std::io::Result<ExitStatus>) {
        let Some(child) = self.tasks.remove(&task_id) else {
            return;
        };
        // Whatever the task left in its process group goes with it.
        let _ = killpg(Pid::from_raw(child.pgid), Signal::SIGKILL);
        let update = match (&child.killing, &exit) {
            (Some((why, reason)), _) => status(&task_id, TaskState::Killed, *reason, why.clone()),
            (None, Ok(st)) if st.success() => status(
                &task_id,
                TaskState::Finished,
                StatusReason::CommandExited,
                "command exited with status 0".into(),
            ),
            (None, Ok(st)) => match (st.code(), st.signal()) {
                (Some(code), _) => {
                    let mut s = status(
                        &task_id,
                        TaskState::Failed,
                        StatusReason::CommandExited,
                        format!("command exited with status {code}"),
                    );
                    s.exit_code = Some(code);
                    s
                }
                (None, sig) => status(
                    &task_id,
                    TaskState::Failed,
                    StatusReason::CommandSignaled,
                    format!("terminated by signal {}", sig.unwrap_or(0)),
                ),
            },
            (None, Err(e)) => status(
                &task_id,
                TaskState::Failed,
                StatusReason::Unspecified,
                format!("cannot wait for the command: {e}"),
            ),
        };
        let finished = update.state == TaskState::Finished as i32;
        self.send(update).await;
        if let (false, Some(g)) = (finished, child.group) {
            let others: Vec<String> = self
                .tasks
                .iter()
                .filter(|(_, c)| c.group == Some(g))
                .map(|(id, _)| id.clone())
                .collect();
            for id in others {
                let why = format!("killed because task {task_id} of its group ended");
                self.kill(&id, DEFAULT_GRACE, why, StatusReason::Unspecified);
            }
        }
        self.notify_idle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_proto::v1::CommandInfo;

    #[test]
    fn program_comes_from_command_then_data() {
        let mut task = TaskInfo {
            task_id: "t".into(),
            data: b"echo from data".to_vec(),
            ..Default::default()
        };
        let c = program_of(&task).expect("data script");
        let args: Vec<_> = c.as_std().get_args().collect();
        assert_eq!(c.as_std().get_program(), "/bin/sh");
        assert_eq!(args, ["-c", "echo from data"]);
        task.command = Some(CommandInfo {
            run: Some(command_info::Run::Argv(command_info::Argv {
                args: vec!["/bin/echo".into(), "x".into()],
            })),
            ..Default::default()
        });
        let c = program_of(&task).expect("argv");
        assert_eq!(c.as_std().get_program(), "/bin/echo");
        task.command = Some(CommandInfo::default());
        assert_eq!(
            program_of(&task).err().as_deref(),
            Some("command has neither shell nor argv")
        );
        task.command = None;
        task.data = b"   ".to_vec();
        assert_eq!(
            program_of(&task).err().as_deref(),
            Some("task has no command and no data to run")
        );
    }

    #[test]
    fn grace_and_ids() {
        assert_eq!(grace_of(None), DEFAULT_GRACE);
        let p = |s: f64| KillPolicy {
            grace_period_seconds: s,
        };
        assert_eq!(grace_of(Some(&p(1.5))), Duration::from_millis(1500));
        assert_eq!(grace_of(Some(&p(-1.0))), DEFAULT_GRACE);
        assert_eq!(grace_of(Some(&p(f64::NAN))), DEFAULT_GRACE);
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(!safe_component(bad), "{bad:?}");
        }
        assert!(safe_component("web.1"));
    }
}
