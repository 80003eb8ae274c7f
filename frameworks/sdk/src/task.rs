//! Building [`TaskInfo`]s: a command (shell string or argv) plus resources, environment,
//! labels and kill policy.
//!
//! Pure data construction. It must never choose resources (see `offer`) or talk to the
//! master.

use std::time::Duration;

use agora_proto::v1::command_info::{Argv, Run};
use agora_proto::v1::{CommandInfo, EnvironmentVariable, KillPolicy, Label, TaskInfo};
use agora_resources::Resources;

use crate::error::SdkError;

/// A task description not yet bound to an id and an agent. Build once, then
/// [`build`](Self::build) one `TaskInfo` per task launched.
///
/// ```
/// use agora_sdk::{Resources, TaskBuilder};
///
/// let shape = Resources::parse("cpus:0.5;mem:64").unwrap();
/// let hello = TaskBuilder::shell("echo $GREETING; sleep 1")
///     .resources(shape)
///     .env("GREETING", "hi");
/// let first = hello.build("hello-0", "agent-1");
/// let second = hello.build("hello-1", "agent-2");
/// assert_eq!(first.name, "hello-0");
/// assert_eq!(second.agent_id, "agent-2");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TaskBuilder {
    name: Option<String>,
    command: CommandInfo,
    resources: Resources,
    labels: Vec<Label>,
    kill_grace: Option<Duration>,
}

impl TaskBuilder {
    /// A task running `command` with `/bin/sh -c`.
    pub fn shell(command: impl Into<String>) -> TaskBuilder {
        TaskBuilder::with_run(Run::Shell(command.into()))
    }

    /// A task running a program directly: `args[0]` is looked up in PATH, the rest are its
    /// arguments. Refuses an empty argv or an empty program name.
    pub fn argv<I, S>(args: I) -> Result<TaskBuilder, SdkError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let args: Vec<String> = args.into_iter().map(Into::into).collect();
        match args.first() {
            None => Err(SdkError::InvalidTask(
                "empty argv: no program to run".into(),
            )),
            Some(p) if p.is_empty() => Err(SdkError::InvalidTask(
                "argv[0] (the program) is empty".into(),
            )),
            Some(_) => Ok(TaskBuilder::with_run(Run::Argv(Argv { args }))),
        }
    }

    fn with_run(run: Run) -> TaskBuilder {
        TaskBuilder {
            name: None,
            command: CommandInfo {
                run: Some(run),
                ..Default::default()
            },
            resources: Resources::new(),
            labels: Vec::new(),
            kill_grace: None,
        }
    }

    /// Human-readable name; defaults to the task id.
    pub fn name(mut self, name: impl Into<String>) -> TaskBuilder {
        self.name = Some(name.into());
        self
    }

    /// The resources the task uses. They must be taken from the offer it is launched on
    /// (see [`crate::offer::take`]) so reservations match.
    pub fn resources(mut self, resources: Resources) -> TaskBuilder {
        self.resources = resources;
        self
    }

    /// Add an environment variable of the command.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> TaskBuilder {
        self.command.environment.push(EnvironmentVariable {
            name: name.into(),
            value: value.into(),
        });
        self
    }

    /// Run the command as this Unix user instead of the framework's.
    pub fn user(mut self, user: impl Into<String>) -> TaskBuilder {
        self.command.user = user.into();
        self
    }

    /// Add a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> TaskBuilder {
        self.labels.push(Label {
            key: key.into(),
            value: value.into(),
        });
        self
    }

    /// Time between SIGTERM and SIGKILL when the task is killed (agent default: 3 s).
    pub fn kill_grace(mut self, grace: Duration) -> TaskBuilder {
        self.kill_grace = Some(grace);
        self
    }

    /// The task's resources as set so far.
    pub fn resources_ref(&self) -> &Resources {
        &self.resources
    }

    /// A `TaskInfo` with this id, on this agent.
    pub fn build(&self, task_id: impl Into<String>, agent_id: impl Into<String>) -> TaskInfo {
        let task_id = task_id.into();
        TaskInfo {
            name: self.name.clone().unwrap_or_else(|| task_id.clone()),
            task_id,
            agent_id: agent_id.into(),
            resources: self.resources.to_proto(),
            command: Some(self.command.clone()),
            labels: self.labels.clone(),
            kill_policy: self.kill_grace.map(|g| KillPolicy {
                grace_period_seconds: g.as_secs_f64(),
            }),
            ..Default::default()
        }
    }
}

/// A task running `command` with `/bin/sh -c` on `agent_id` with `resources`.
pub fn shell_task(
    task_id: impl Into<String>,
    agent_id: impl Into<String>,
    command: impl Into<String>,
    resources: &Resources,
) -> TaskInfo {
    TaskBuilder::shell(command)
        .resources(resources.clone())
        .build(task_id, agent_id)
}

/// A task running `argv` (program and arguments) on `agent_id` with `resources`.
pub fn argv_task<S: Into<String>>(
    task_id: impl Into<String>,
    agent_id: impl Into<String>,
    argv: impl IntoIterator<Item = S>,
    resources: &Resources,
) -> Result<TaskInfo, SdkError> {
    Ok(TaskBuilder::argv(argv)?
        .resources(resources.clone())
        .build(task_id, agent_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Resources {
        Resources::parse("cpus:0.5;mem:64").unwrap()
    }

    #[test]
    fn shell_task_carries_command_resources_and_ids() {
        let t = shell_task("t-1", "agent-1", "echo hi", &shape());
        assert_eq!(t.task_id, "t-1");
        assert_eq!(t.name, "t-1");
        assert_eq!(t.agent_id, "agent-1");
        assert_eq!(
            t.command.as_ref().and_then(|c| c.run.clone()),
            Some(Run::Shell("echo hi".into()))
        );
        assert_eq!(Resources::from_proto(&t.resources).unwrap(), shape());
        assert!(t.executor.is_none());
        assert!(t.kill_policy.is_none());
    }

    #[test]
    fn argv_task_keeps_arguments_in_order() {
        let t = argv_task("t", "a", ["sleep", "1"], &shape()).unwrap();
        assert_eq!(
            t.command.and_then(|c| c.run),
            Some(Run::Argv(Argv {
                args: vec!["sleep".into(), "1".into()]
            }))
        );
    }

    #[test]
    fn empty_argv_is_refused() {
        assert!(matches!(
            TaskBuilder::argv(Vec::<String>::new()),
            Err(SdkError::InvalidTask(_))
        ));
        assert!(matches!(
            TaskBuilder::argv([""]),
            Err(SdkError::InvalidTask(_))
        ));
    }

    #[test]
    fn builder_options_reach_the_task_info() {
        let b = TaskBuilder::shell("true")
            .name("web")
            .env("A", "1")
            .user("nobody")
            .label("team", "ml")
            .kill_grace(Duration::from_millis(1500))
            .resources(shape());
        let t = b.build("web-0", "a1");
        assert_eq!(t.name, "web");
        let cmd = t.command.unwrap();
        assert_eq!(cmd.user, "nobody");
        assert_eq!(cmd.environment[0].name, "A");
        assert_eq!(cmd.environment[0].value, "1");
        assert_eq!(t.labels[0].key, "team");
        assert_eq!(t.kill_policy.unwrap().grace_period_seconds, 1.5);
        // The builder is reusable for more tasks.
        assert_eq!(b.build("web-1", "a2").task_id, "web-1");
    }
}
