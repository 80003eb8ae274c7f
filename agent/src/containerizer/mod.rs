//! The containerizer seam: how the agent runs a task's processes.
//!
//! [`Containerizer`] starts a task from a validated [`LaunchSpec`] and hands back a
//! [`Container`], which can be waited on and killed. The agent's state actor only ever
//! talks to these traits, so a cgroup/namespace implementation (a later issue) plugs in
//! beside [`process::ProcessContainerizer`] without touching the rest of the agent.
//!
//! This module owns the translation of an untrusted `TaskInfo` into a [`LaunchSpec`]
//! ([`LaunchSpec::from_task`]) and the vocabulary shared by all implementations
//! ([`Termination`], [`LaunchError`]). It must never hold task state or talk to the master:
//! a containerizer knows processes, not the protocol.

pub mod cgroups;
pub mod gpus;
pub mod image;
pub mod limits;
pub mod linux;
pub mod process;
pub mod publish;
pub mod spawn;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agora_proto::v1::{FrameworkInfo, TaskInfo, command_info};
use agora_resources::Resources;
use futures::future::BoxFuture;

use crate::fetcher::{BadUri, FetchError, FetchUri};
use crate::sandbox::{IdKind, InvalidId, validate_id};

/// Most ports a single task may be assigned (each becomes a `PORTn` variable).
pub const MAX_PORTS_PER_TASK: u64 = 1024;
/// Most environment variables a command may carry.
pub const MAX_ENV_VARS: usize = 4096;

/// How a task's command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Termination {
    /// The command exited by itself with this status.
    Exited(i32),
    /// The command was terminated by this signal number.
    Signaled(i32),
    /// The containerizer lost track of the command (e.g. waiting for it failed); the
    /// processes have been killed.
    Unknown(String),
    /// The container hit its memory limit: the kernel OOM-killed processes of it. The text
    /// says how much and how the main process ended.
    MemoryLimit(String),
    /// The container listened on a port outside its allocation and was killed for it
    /// ([`limits`]); the text names the ports.
    PortLimit(String),
    /// The container's sandbox outgrew its `disk` resource and was killed for it
    /// ([`limits`]); the text says by how much.
    DiskLimit(String),
}

impl fmt::Display for Termination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Termination::Exited(code) => write!(f, "command exited with status {code}"),
            Termination::Signaled(sig) => write!(f, "terminated by signal {}", signal_name(*sig)),
            Termination::Unknown(why) => write!(f, "lost track of the command: {why}"),
            Termination::MemoryLimit(what)
            | Termination::PortLimit(what)
            | Termination::DiskLimit(what) => f.write_str(what),
        }
    }
}

/// `SIGSEGV` for 11; `signal 77` for a number Linux does not name.
pub fn signal_name(signal: i32) -> String {
    match nix::sys::signal::Signal::try_from(signal) {
        Ok(sig) => sig.as_str().to_string(),
        Err(_) => format!("signal {signal}"),
    }
}

/// What to execute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Program {
    /// `/bin/sh -c <script>`.
    Shell(String),
    /// `args[0]` (looked up in PATH) with `args[1..]`; never empty.
    Argv(Vec<String>),
}

impl Program {
    /// The executable started, for error messages.
    pub fn executable(&self) -> &str {
        match self {
            Program::Shell(_) => "/bin/sh",
            Program::Argv(args) => args.first().map(String::as_str).unwrap_or(""),
        }
    }
}

/// Everything a containerizer needs to start one task, already validated.
#[derive(Clone, Debug, PartialEq)]
pub struct LaunchSpec {
    /// The framework's id: a safe path component.
    pub framework_id: String,
    /// The task's id: a safe path component.
    pub task_id: String,
    /// This agent's id (`AGORA_AGENT_ID`).
    pub agent_id: String,
    /// What to execute.
    pub program: Program,
    /// The command's own environment, in order (no name is empty or holds '=' or NUL).
    pub environment: Vec<(String, String)>,
    /// Assigned ports, ascending (`PORT0..` and `PORTS`).
    pub ports: Vec<u64>,
    /// Unix user to run as; `None`: the agent's own user. The agent decides it before a
    /// containerizer sees the spec ([`crate::prepare`]: the default user, root refused).
    pub user: Option<String>,
    /// The task's resources (for isolators that enforce limits; the plain process
    /// containerizer ignores them).
    pub resources: Resources,
    /// URIs to fetch into the sandbox before the command starts. The agent's launch
    /// preparation ([`crate::prepare::PreparingContainerizer`]) fetches them as the task's
    /// user; containerizers ignore them.
    pub uris: Vec<FetchUri>,
    /// The image the task's root file system is built from (a path on the agent, see
    /// [`image`]); `None`: the host's file system. Only the Linux containerizer runs
    /// images.
    pub image: Option<PathBuf>,
    /// Persistent volumes, filled in by the agent's volume preparation
    /// ([`crate::volumes`]): a container with an image bind-mounts them.
    pub volumes: Vec<VolumeMount>,
}

/// A persistent volume as a container with an image of its own mounts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeMount {
    /// The volume's directory on the agent.
    pub host_path: PathBuf,
    /// Its path relative to the sandbox (validated: relative, no `..`).
    pub container_path: PathBuf,
}

/// A task the agent refuses before trying to start it (reported as TASK_INVALID).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTask {
    /// An id that cannot be a directory name.
    #[error(transparent)]
    Id(#[from] InvalidId),
    /// The task names a custom executor: its executor runs it, not the command path.
    #[error("a task with an executor is run by that executor, not as a command")]
    ExecutorUnsupported,
    /// No command to run.
    #[error("task has no command")]
    NoCommand,
    /// A command with neither `shell` nor `argv`.
    #[error("command has neither shell nor argv")]
    NoProgram,
    /// `argv` with no program.
    #[error("command argv is empty")]
    EmptyArgv,
    /// A NUL byte where the OS cannot take one.
    #[error("{what} contains a NUL byte")]
    NulByte {
        /// Which field.
        what: String,
    },
    /// An environment variable name the OS cannot take.
    #[error("invalid environment variable name {name:?}")]
    BadEnvName {
        /// The name as received.
        name: String,
    },
    /// Too many environment variables.
    #[error("command has {count} environment variables; at most {MAX_ENV_VARS} are allowed")]
    TooManyEnvVars {
        /// How many were sent.
        count: usize,
    },
    /// Resources that do not parse.
    #[error("invalid task resources: {0}")]
    Resources(String),
    /// A URI that cannot be fetched.
    #[error(transparent)]
    Uri(#[from] BadUri),
    /// More ports than [`MAX_PORTS_PER_TASK`].
    #[error("task has {count} ports; at most {MAX_PORTS_PER_TASK} are allowed")]
    TooManyPorts {
        /// How many were assigned.
        count: u64,
    },
    /// An image path that cannot name a file on the agent.
    #[error("container image path {path:?} must be an absolute path on the agent")]
    BadImagePath {
        /// The path as sent (at most 256 characters).
        path: String,
    },
}

impl LaunchSpec {
    /// Validates a task sent by the master and turns it into a launch spec.
    pub fn from_task(
        framework: &FrameworkInfo,
        task: &TaskInfo,
        agent_id: &str,
    ) -> Result<LaunchSpec, InvalidTask> {
        validate_id(IdKind::Framework, &framework.id)?;
        validate_id(IdKind::Task, &task.task_id)?;
        if task.executor.is_some() {
            return Err(InvalidTask::ExecutorUnsupported);
        }
        let command = task.command.as_ref().ok_or(InvalidTask::NoCommand)?;
        let (program, environment) = parse_command(command)?;
        let resources = Resources::from_proto(&task.resources)
            .map_err(|e| InvalidTask::Resources(e.to_string()))?;
        let port_ranges = resources.ranges("ports");
        let count = port_ranges.count();
        if count > MAX_PORTS_PER_TASK {
            return Err(InvalidTask::TooManyPorts { count });
        }
        let ports = port_ranges.iter().flat_map(|(lo, hi)| lo..=hi).collect();
        let user = [&command.user, &framework.user]
            .into_iter()
            .find(|u| !u.is_empty())
            .cloned();
        if let Some(u) = &user {
            no_nul("user", u)?;
        }
        let uris = command
            .uris
            .iter()
            .map(FetchUri::from_proto)
            .collect::<Result<Vec<_>, _>>()?;
        let image = match task.container.as_ref().and_then(|c| c.image.as_ref()) {
            None => None,
            Some(image) => {
                let path = PathBuf::from(&image.path);
                if !path.is_absolute() || image.path.contains('\0') {
                    return Err(InvalidTask::BadImagePath {
                        path: image.path.chars().take(256).collect(),
                    });
                }
                Some(path)
            }
        };
        Ok(LaunchSpec {
            framework_id: framework.id.clone(),
            task_id: task.task_id.clone(),
            agent_id: agent_id.to_string(),
            program,
            environment,
            ports,
            user,
            resources,
            uris,
            image,
            volumes: Vec::new(),
        })
    }

    /// The variables the agent adds to every task (they override the command's own):
    /// `AGORA_TASK_ID`, `AGORA_FRAMEWORK_ID`, `AGORA_AGENT_ID`, `AGORA_SANDBOX`,
    /// `PORT0..PORTn`, `PORTS` (only when ports are assigned).
    pub fn agora_environment(&self, sandbox: &std::path::Path) -> Vec<(String, String)> {
        let mut env = vec![
            ("AGORA_TASK_ID".to_string(), self.task_id.clone()),
            ("AGORA_FRAMEWORK_ID".to_string(), self.framework_id.clone()),
            ("AGORA_AGENT_ID".to_string(), self.agent_id.clone()),
            (
                "AGORA_SANDBOX".to_string(),
                sandbox.to_string_lossy().into_owned(),
            ),
            // What Mesos gives every task and executor (Mesos HTTP executors read them).
            (
                "MESOS_SANDBOX".to_string(),
                sandbox.to_string_lossy().into_owned(),
            ),
            (
                "MESOS_DIRECTORY".to_string(),
                sandbox.to_string_lossy().into_owned(),
            ),
        ];
        for (i, port) in self.ports.iter().enumerate() {
            env.push((format!("PORT{i}"), port.to_string()));
        }
        if !self.ports.is_empty() {
            let list: Vec<String> = self.ports.iter().map(u64::to_string).collect();
            env.push(("PORTS".to_string(), list.join(",")));
        }
        env
    }
}

/// The program and environment of a command, validated.
fn parse_command(
    command: &agora_proto::v1::CommandInfo,
) -> Result<(Program, Vec<(String, String)>), InvalidTask> {
    let program = match &command.run {
        None => return Err(InvalidTask::NoProgram),
        Some(command_info::Run::Shell(script)) => {
            no_nul("shell command", script)?;
            Program::Shell(script.clone())
        }
        Some(command_info::Run::Argv(argv)) => {
            if argv.args.is_empty() || argv.args[0].is_empty() {
                return Err(InvalidTask::EmptyArgv);
            }
            for (i, arg) in argv.args.iter().enumerate() {
                no_nul(&format!("argv[{i}]"), arg)?;
            }
            Program::Argv(argv.args.clone())
        }
    };
    if command.environment.len() > MAX_ENV_VARS {
        return Err(InvalidTask::TooManyEnvVars {
            count: command.environment.len(),
        });
    }
    let mut environment = Vec::with_capacity(command.environment.len());
    for var in &command.environment {
        if var.name.is_empty() || var.name.contains('=') || var.name.contains('\0') {
            return Err(InvalidTask::BadEnvName {
                name: var.name.chars().take(64).collect(),
            });
        }
        no_nul(&format!("environment variable {}", var.name), &var.value)?;
        environment.push((var.name.clone(), var.value.clone()));
    }
    Ok((program, environment))
}

/// The sandbox name (in place of a task id) of an executor's container: executors and
/// tasks share `<work-dir>/sandboxes/<framework>/`, so the prefix keeps them apart.
pub fn executor_sandbox_name(executor_id: &str) -> String {
    format!("executor.{executor_id}")
}

impl LaunchSpec {
    /// The launch spec of an executor's container. `program`: the executor's own command
    /// (`None`: run `default_program`, the agent's default executor). `resources`: what the
    /// container may use (the executor's plus its tasks'). `environment` is added to the
    /// command's own (the `AGORA_EXECUTOR_*` variables).
    pub fn for_executor(
        framework: &FrameworkInfo,
        executor: &agora_proto::v1::ExecutorInfo,
        default_program: &std::path::Path,
        resources: Resources,
        agent_id: &str,
        extra_environment: Vec<(String, String)>,
    ) -> Result<LaunchSpec, InvalidTask> {
        validate_id(IdKind::Framework, &framework.id)?;
        validate_id(IdKind::Executor, &executor.executor_id)?;
        let task_id = executor_sandbox_name(&executor.executor_id);
        validate_id(IdKind::Task, &task_id)?;
        let (program, mut environment, uris, user) = match &executor.command {
            Some(command) => {
                let (program, environment) = parse_command(command)?;
                let uris = command
                    .uris
                    .iter()
                    .map(FetchUri::from_proto)
                    .collect::<Result<Vec<_>, _>>()?;
                let user = Some(command.user.clone()).filter(|u| !u.is_empty());
                (program, environment, uris, user)
            }
            None => (
                Program::Argv(vec![default_program.to_string_lossy().into_owned()]),
                Vec::new(),
                Vec::new(),
                None,
            ),
        };
        environment.extend(extra_environment);
        let user = user.or_else(|| Some(framework.user.clone()).filter(|u| !u.is_empty()));
        if let Some(u) = &user {
            no_nul("user", u)?;
        }
        let port_ranges = resources.ranges("ports");
        let count = port_ranges.count();
        if count > MAX_PORTS_PER_TASK {
            return Err(InvalidTask::TooManyPorts { count });
        }
        let ports = port_ranges.iter().flat_map(|(lo, hi)| lo..=hi).collect();
        Ok(LaunchSpec {
            framework_id: framework.id.clone(),
            task_id,
            agent_id: agent_id.to_string(),
            program,
            environment,
            ports,
            user,
            resources,
            uris,
            image: None,
            volumes: Vec::new(),
        })
    }
}

fn no_nul(what: &str, value: &str) -> Result<(), InvalidTask> {
    if value.contains('\0') {
        return Err(InvalidTask::NulByte {
            what: what.to_string(),
        });
    }
    Ok(())
}

/// Why a container could not be started (reported as CONTAINER_LAUNCH_FAILED).
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// An id that cannot be a directory name.
    #[error(transparent)]
    InvalidId(#[from] InvalidId),
    /// The sandbox directory could not be prepared.
    #[error("cannot prepare sandbox {path}: {error}")]
    Sandbox {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The task's user does not exist on this host.
    #[error("user {0:?} does not exist on this host")]
    UnknownUser(String),
    /// The task would run as root and the operator did not allow it.
    #[error(
        "task would run as root (user {user:?}{}); this agent runs tasks as root only with --allow-root-tasks",
        default_note(.defaulted)
    )]
    RootRefused {
        /// The user named (or the default user).
        user: String,
        /// The user came from `--default-user`, not from the task.
        defaulted: bool,
    },
    /// Looking up the task's user failed.
    #[error("cannot look up user {user:?}: {error}")]
    UserLookup {
        /// The user.
        user: String,
        /// The OS error.
        error: nix::Error,
    },
    /// The agent is not root and cannot run tasks as another user.
    #[error("agent runs as uid {agent_uid} and cannot run tasks as user {user:?}")]
    CannotSwitchUser {
        /// The requested user.
        user: String,
        /// The agent's uid.
        agent_uid: u32,
    },
    /// The sandbox could not be given to the task's user.
    #[error("cannot give {path} to user {user:?}: {error}")]
    Chown {
        /// The path.
        path: PathBuf,
        /// The user.
        user: String,
        /// The OS error.
        error: nix::Error,
    },
    /// A URI could not be fetched (reported as FETCH_FAILED).
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The container's cgroup could not be created.
    #[error("cannot create the container's cgroup: {0}")]
    Cgroup(#[from] cgroups::CgroupError),
    /// The task's image cannot be used.
    #[error(transparent)]
    Image(#[from] image::ImageError),
    /// The task's `gpus` cannot be given.
    #[error(transparent)]
    Gpu(#[from] gpus::GpuError),
    /// The task names an image and this containerizer cannot run one.
    #[error("the task names a container image; images need --isolation linux")]
    ImageNeedsLinux,
    /// fork/exec failed (e.g. the program does not exist).
    #[error("cannot start {program:?}: {error}")]
    Spawn {
        /// The executable.
        program: String,
        /// The OS error.
        error: std::io::Error,
    },
}

fn default_note(defaulted: &bool) -> &'static str {
    if *defaulted {
        ", the --default-user"
    } else {
        ""
    }
}

/// Starts tasks. Implementations are shared (`Arc`) between the agent's actors.
pub trait Containerizer: Send + Sync + 'static {
    /// Creates the task's sandbox and starts its command. Resolves once the command runs
    /// (or could not be started). The returned future must not borrow `self`.
    fn launch(
        &self,
        spec: LaunchSpec,
    ) -> BoxFuture<'static, Result<Arc<dyn Container>, LaunchError>>;

    /// Re-attaches to a container a previous run of the agent started (from its
    /// checkpointed [`ContainerRef`]). `None`: this containerizer cannot recover
    /// containers, or the reference is not one of its containers. A container that ended
    /// while the agent was down is returned already ended, with its termination.
    fn recover(&self, reference: ContainerRef) -> BoxFuture<'static, Option<Arc<dyn Container>>> {
        let _ = reference;
        Box::pin(async { None })
    }

    /// Destroys containers of this agent left by a previous run that are not in `owned`
    /// (container ids of checkpointed tasks). Only the implementation's own containers
    /// are ever touched.
    fn destroy_orphans(&self, owned: Vec<String>) -> BoxFuture<'static, ()> {
        let _ = owned;
        Box::pin(async {})
    }

    /// The agent stops and no task is left: release what the containerizer holds for the
    /// agent (the Linux one removes its empty cgroup root).
    fn release(&self) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }

    /// The isolation this containerizer provides, as named by `--isolation`.
    fn isolation(&self) -> &'static str {
        "process"
    }

    /// Fetches `uris` into `sandbox`, the sandbox of a container that already runs (the
    /// tasks handed to a running executor), as the user owning it. Only the agent's launch
    /// preparation ([`crate::prepare::PreparingContainerizer`]) can.
    fn fetch_into(
        &self,
        sandbox: PathBuf,
        uris: Vec<FetchUri>,
    ) -> BoxFuture<'static, Result<(), LaunchError>> {
        let _ = (sandbox, uris);
        Box::pin(async {
            Err(LaunchError::Spawn {
                program: "fetch".into(),
                error: std::io::Error::other("this containerizer does not fetch URIs"),
            })
        })
    }
}

/// Which containerizer to use (`--isolation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum IsolationKind {
    /// cgroups (cpu, memory, pids) and pid/mount/uts/ipc namespaces.
    Linux,
    /// Plain processes in their own process group: no resource isolation.
    Process,
}

/// The requested isolation is unavailable.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    /// `--isolation linux` on a host where it cannot work.
    #[error("--isolation linux is unavailable: {0}")]
    Linux(cgroups::CgroupError),
    /// `--network isolated` without Linux containers.
    #[error("--network isolated needs --isolation linux (root and usable cgroups); {0}")]
    NetworkNeedsLinux(String),
    /// The work directory cannot be resolved.
    #[error("cannot use work directory {path}: {error}")]
    WorkDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
}

/// Picks the containerizer: the one asked for, or (no choice) Linux when cgroups are
/// usable and the agent is root, else the plain-process one. The choice and the reason
/// are logged.
pub fn select(
    requested: Option<IsolationKind>,
    work_dir: &std::path::Path,
    linux_config: linux::LinuxConfig,
) -> Result<Arc<dyn Containerizer>, SelectError> {
    let process = || {
        process::ProcessContainerizer::new(work_dir).map_err(|error| SelectError::WorkDir {
            path: work_dir.to_path_buf(),
            error,
        })
    };
    let isolated_network = linux_config.network == linux::NetworkMode::Isolated;
    match requested {
        Some(IsolationKind::Process) if isolated_network => Err(SelectError::NetworkNeedsLinux(
            "--isolation process was chosen".into(),
        )),
        Some(IsolationKind::Process) => {
            tracing::info!("isolation: process (chosen by --isolation)");
            Ok(Arc::new(process()?))
        }
        Some(IsolationKind::Linux) => {
            let c = linux::LinuxContainerizer::new(work_dir, linux_config)
                .map_err(SelectError::Linux)?;
            tracing::info!(cgroups = %c.cgroups().mode(), agent_cgroup = c.agent_name(), "isolation: linux (chosen by --isolation)");
            Ok(Arc::new(c))
        }
        None => {
            let why_not = if !nix::unistd::Uid::effective().is_root() {
                "the agent does not run as root".to_string()
            } else {
                match linux::LinuxContainerizer::new(work_dir, linux_config) {
                    Ok(c) => {
                        tracing::info!(cgroups = %c.cgroups().mode(), agent_cgroup = c.agent_name(), "isolation: linux (cgroups usable)");
                        return Ok(Arc::new(c));
                    }
                    Err(e) => e.to_string(),
                }
            };
            if isolated_network {
                return Err(SelectError::NetworkNeedsLinux(why_not));
            }
            tracing::warn!(
                "isolation: process, without resource limits ({why_not}); use --isolation process to silence this"
            );
            Ok(Arc::new(process()?))
        }
    }
}

/// Usage of one container (the Linux containerizer reads it from its cgroups).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// Total cpu time, in nanoseconds.
    pub cpu_time_ns: u64,
    /// User cpu time, in nanoseconds (0 when unknown).
    pub cpu_user_ns: u64,
    /// System cpu time, in nanoseconds (0 when unknown).
    pub cpu_system_ns: u64,
    /// CFS periods elapsed (only with a quota).
    pub cpu_periods: u64,
    /// CFS periods in which the container was throttled.
    pub cpu_throttled_periods: u64,
    /// Time spent throttled, in nanoseconds.
    pub cpu_throttled_ns: u64,
    /// Memory in use, in bytes.
    pub memory_bytes: u64,
    /// Highest memory use, in bytes (0 when the kernel does not track it).
    pub memory_peak_bytes: u64,
    /// Memory limit, in bytes (`None`: unlimited).
    pub memory_limit_bytes: Option<u64>,
    /// Processes killed by the OOM killer in this cgroup.
    pub oom_kills: u64,
    /// Processes in the cgroup.
    pub pids_current: u64,
}

/// What identifies a running container across agent restarts (checkpointed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRef {
    /// The containerizer's id of the container (its cgroup name).
    pub container_id: String,
    /// Pid of the container's first process, in the agent's pid namespace.
    pub pid: u32,
    /// Its start time (clock ticks after boot), guarding against pid reuse.
    pub start_time: u64,
    /// The sandbox directory.
    pub sandbox: PathBuf,
}

/// A running (or ended) task container.
pub trait Container: Send + Sync + 'static {
    /// Process id of the task's main process (also its process group id where the
    /// implementation uses one).
    fn pid(&self) -> u32;

    /// Absolute path of the sandbox directory.
    fn sandbox(&self) -> &std::path::Path;

    /// Resolves once the task's main process ended and the rest of its processes have been
    /// killed. May be called any number of times; every call sees the same termination.
    fn wait(&self) -> BoxFuture<'static, Termination>;

    /// Asks the task to stop (SIGTERM), and forces it (SIGKILL) when it is still alive
    /// after `grace`. Resolves with the termination. Calling it on an ended container just
    /// returns the termination.
    fn kill(&self, grace: Duration) -> BoxFuture<'static, Termination>;

    /// Changes the container's limits to `resources` (an executor's container follows
    /// its tasks). Implementations without limits accept and ignore it.
    fn update_resources(&self, resources: &Resources) -> Result<(), String> {
        let _ = resources;
        Ok(())
    }

    /// Runs `argv` (a command health check) inside the container: in its namespaces and
    /// cgroups where it has them, as the user owning its sandbox (the task's user), with the
    /// sandbox as working directory; `Ok` on exit status 0, else why not. A command still
    /// running after `timeout` is killed. Never runs anything with the agent's privileges
    /// unless the task itself has them.
    fn run_check(
        &self,
        argv: Vec<String>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(), String>> {
        let _ = (argv, timeout);
        Box::pin(async { Err("this container cannot run command checks".to_string()) })
    }

    /// The container's live processes, by pid in the agent's pid namespace (for watching
    /// their sockets). Default: the main process only.
    fn pids(&self) -> Vec<u32> {
        vec![self.pid()]
    }

    /// Resource usage, when the implementation measures it (cgroups) and the container
    /// still runs.
    fn usage(&self) -> Option<Usage> {
        None
    }

    /// What to checkpoint to re-attach after an agent restart; `None` when the
    /// implementation cannot re-attach.
    fn reference(&self) -> Option<ContainerRef> {
        None
    }
}

/// Wait for a container's termination as its reaper records it (shared by every
/// containerizer: each keeps a `watch` its reaper fills in exactly once).
pub(crate) async fn wait_termination(
    rx: &mut tokio::sync::watch::Receiver<Option<Termination>>,
) -> Termination {
    if let Some(t) = rx.borrow().clone() {
        return t;
    }
    match rx.wait_for(Option::is_some).await {
        Ok(done) => match &*done {
            Some(t) => t.clone(),
            None => Termination::Unknown("no termination recorded".into()),
        },
        Err(_) => Termination::Unknown("the container's reaper stopped".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_proto::v1::{
        CommandInfo, EnvironmentVariable, ExecutorInfo, Range, Ranges, Resource, resource,
    };

    fn framework() -> FrameworkInfo {
        FrameworkInfo {
            id: "fw".into(),
            ..Default::default()
        }
    }

    fn shell_task(id: &str, script: &str) -> TaskInfo {
        TaskInfo {
            task_id: id.into(),
            command: Some(CommandInfo {
                run: Some(command_info::Run::Shell(script.into())),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn ports(ranges: &[(u64, u64)]) -> Resource {
        Resource {
            name: "ports".into(),
            value: Some(resource::Value::Ranges(Ranges {
                range: ranges
                    .iter()
                    .map(|&(begin, end)| Range { begin, end })
                    .collect(),
            })),
            ..Default::default()
        }
    }

    #[test]
    fn shell_task_becomes_spec() {
        let spec = LaunchSpec::from_task(&framework(), &shell_task("t", "echo hi"), "a1")
            .expect("valid task");
        assert_eq!(spec.program, Program::Shell("echo hi".into()));
        assert_eq!(spec.agent_id, "a1");
        assert!(spec.ports.is_empty());
        assert_eq!(spec.user, None);
    }

    #[test]
    fn ports_become_environment() {
        let mut task = shell_task("t", "true");
        task.resources
            .push(ports(&[(31005, 31006), (31000, 31000)]));
        let spec = LaunchSpec::from_task(&framework(), &task, "a1").expect("valid task");
        assert_eq!(spec.ports, vec![31000, 31005, 31006]);
        let env = spec.agora_environment(std::path::Path::new("/w/s"));
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PORT0"), Some("31000"));
        assert_eq!(get("PORT2"), Some("31006"));
        assert_eq!(get("PORT3"), None);
        assert_eq!(get("PORTS"), Some("31000,31005,31006"));
        assert_eq!(get("AGORA_SANDBOX"), Some("/w/s"));
        assert_eq!(get("AGORA_TASK_ID"), Some("t"));
        assert_eq!(get("AGORA_FRAMEWORK_ID"), Some("fw"));
        assert_eq!(get("AGORA_AGENT_ID"), Some("a1"));
    }

    #[test]
    fn too_many_ports_refused() {
        let mut task = shell_task("t", "true");
        task.resources.push(ports(&[(1000, 3000)]));
        let err = LaunchSpec::from_task(&framework(), &task, "a1").expect_err("too many");
        assert_eq!(err, InvalidTask::TooManyPorts { count: 2001 });
    }

    #[test]
    fn user_comes_from_command_then_framework() {
        let mut fw = framework();
        fw.user = "alice".into();
        let mut task = shell_task("t", "true");
        let spec = LaunchSpec::from_task(&fw, &task, "a").expect("valid");
        assert_eq!(spec.user.as_deref(), Some("alice"));
        if let Some(c) = task.command.as_mut() {
            c.user = "bob".into();
        }
        let spec = LaunchSpec::from_task(&fw, &task, "a").expect("valid");
        assert_eq!(spec.user.as_deref(), Some("bob"));
    }

    #[test]
    fn invalid_tasks_refused() {
        let fw = framework();
        let bad_id = LaunchSpec::from_task(&fw, &shell_task("a/b", "true"), "a");
        assert!(matches!(bad_id, Err(InvalidTask::Id(_))));

        let mut bad_fw = framework();
        bad_fw.id = String::new();
        let err = LaunchSpec::from_task(&bad_fw, &shell_task("t", "true"), "a")
            .expect_err("empty framework id");
        assert_eq!(
            err.to_string(),
            "invalid framework id \"\": must not be empty"
        );

        let mut no_cmd = shell_task("t", "true");
        no_cmd.command = None;
        assert_eq!(
            LaunchSpec::from_task(&fw, &no_cmd, "a"),
            Err(InvalidTask::NoCommand)
        );

        let mut no_run = shell_task("t", "true");
        if let Some(c) = no_run.command.as_mut() {
            c.run = None;
        }
        assert_eq!(
            LaunchSpec::from_task(&fw, &no_run, "a"),
            Err(InvalidTask::NoProgram)
        );

        let mut empty_argv = shell_task("t", "true");
        if let Some(c) = empty_argv.command.as_mut() {
            c.run = Some(command_info::Run::Argv(command_info::Argv { args: vec![] }));
        }
        assert_eq!(
            LaunchSpec::from_task(&fw, &empty_argv, "a"),
            Err(InvalidTask::EmptyArgv)
        );

        let mut executor = shell_task("t", "true");
        executor.executor = Some(ExecutorInfo::default());
        assert_eq!(
            LaunchSpec::from_task(&fw, &executor, "a"),
            Err(InvalidTask::ExecutorUnsupported)
        );

        let mut bad_env = shell_task("t", "true");
        if let Some(c) = bad_env.command.as_mut() {
            c.environment.push(EnvironmentVariable {
                name: "A=B".into(),
                value: "x".into(),
            });
        }
        assert!(matches!(
            LaunchSpec::from_task(&fw, &bad_env, "a"),
            Err(InvalidTask::BadEnvName { .. })
        ));

        let nul = shell_task("t", "echo \0");
        assert!(matches!(
            LaunchSpec::from_task(&fw, &nul, "a"),
            Err(InvalidTask::NulByte { .. })
        ));
    }

    #[test]
    fn container_image_becomes_spec() {
        use agora_proto::v1::{ContainerInfo, Image};
        let mut task = shell_task("t", "true");
        task.container = Some(ContainerInfo {
            image: Some(Image {
                path: "/srv/images/app".into(),
            }),
        });
        let spec = LaunchSpec::from_task(&framework(), &task, "a").expect("valid");
        assert_eq!(spec.image, Some(PathBuf::from("/srv/images/app")));
        task.container = Some(ContainerInfo {
            image: Some(Image {
                path: "images/app".into(),
            }),
        });
        assert_eq!(
            LaunchSpec::from_task(&framework(), &task, "a")
                .expect_err("relative")
                .to_string(),
            "container image path \"images/app\" must be an absolute path on the agent"
        );
        task.container = Some(ContainerInfo::default());
        let spec = LaunchSpec::from_task(&framework(), &task, "a").expect("valid");
        assert_eq!(spec.image, None);
    }

    #[test]
    fn executor_spec() {
        let fw = framework();
        let mut exec = ExecutorInfo {
            executor_id: "e1".into(),
            command: Some(CommandInfo {
                run: Some(command_info::Run::Shell("run-executor".into())),
                ..Default::default()
            }),
            ..Default::default()
        };
        let res = Resources::parse("cpus:0.5;mem:64;ports:[31000-31001]").expect("resources");
        let env = vec![("AGORA_EXECUTOR_ID".to_string(), "e1".to_string())];
        let default = std::path::Path::new("/opt/agora/agora-default-executor");
        let spec = LaunchSpec::for_executor(&fw, &exec, default, res.clone(), "a1", env.clone())
            .expect("valid executor");
        assert_eq!(spec.task_id, "executor.e1");
        assert_eq!(spec.program, Program::Shell("run-executor".into()));
        assert_eq!(spec.environment, env);
        assert_eq!(spec.ports, vec![31000, 31001]);
        assert_eq!(spec.resources, res);
        // No command: the default executor.
        exec.command = None;
        let spec = LaunchSpec::for_executor(&fw, &exec, default, Resources::new(), "a1", vec![])
            .expect("default executor");
        assert_eq!(
            spec.program,
            Program::Argv(vec!["/opt/agora/agora-default-executor".into()])
        );
        exec.executor_id = "a/b".into();
        let err = LaunchSpec::for_executor(&fw, &exec, default, Resources::new(), "a1", vec![])
            .expect_err("bad id");
        assert_eq!(
            err.to_string(),
            "invalid executor id \"a/b\": must not contain '/'"
        );
    }

    #[test]
    fn isolated_network_needs_linux_containers() {
        let config = linux::LinuxConfig {
            network: linux::NetworkMode::Isolated,
            ..linux::LinuxConfig::default()
        };
        let err = select(
            Some(IsolationKind::Process),
            std::path::Path::new("/tmp/agora-select-test"),
            config,
        )
        .err()
        .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "--network isolated needs --isolation linux (root and usable cgroups); \
                 --isolation process was chosen"
            )
        );
    }

    #[test]
    fn termination_messages() {
        assert_eq!(
            Termination::Exited(3).to_string(),
            "command exited with status 3"
        );
        assert_eq!(
            Termination::Signaled(11).to_string(),
            "terminated by signal SIGSEGV"
        );
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(77), "signal 77");
    }
}
