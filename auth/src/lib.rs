//! Security policy shared by the master and the agent: who exists and with which secret
//! (`credentials`, the `--credentials` file), and what each principal may do (`acl`, the
//! `--acls` file and its allow/deny decision).
//!
//! Pure: no I/O, no clock, no async. It must never decide where a check is made (the
//! master's and the agent's edges do) and never print a secret.

#![forbid(unsafe_code)]

pub mod acl;
pub mod credentials;

pub use acl::{Acls, Action, Decision};
pub use credentials::Credentials;

use agora_proto::v1;

/// The user a task runs as (the object of `run_task`, `view_tasks`, `access_sandbox`):
/// its command's, its executor's, else the framework's.
pub fn task_user<'a>(task: &'a v1::TaskInfo, framework_user: &'a str) -> &'a str {
    let own = task
        .command
        .as_ref()
        .map(|c| c.user.as_str())
        .filter(|u| !u.is_empty())
        .or_else(|| {
            task.executor
                .as_ref()
                .and_then(|e| e.command.as_ref())
                .map(|c| c.user.as_str())
                .filter(|u| !u.is_empty())
        });
    own.unwrap_or(framework_user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_user_prefers_command_then_executor_then_framework() {
        let cmd = |u: &str| v1::CommandInfo {
            user: u.into(),
            ..Default::default()
        };
        let mut t = v1::TaskInfo::default();
        assert_eq!(task_user(&t, "fw"), "fw");
        t.executor = Some(v1::ExecutorInfo {
            command: Some(cmd("exec")),
            ..Default::default()
        });
        assert_eq!(task_user(&t, "fw"), "exec");
        t.command = Some(cmd("own"));
        assert_eq!(task_user(&t, "fw"), "own");
        t.command = Some(cmd(""));
        assert_eq!(task_user(&t, "fw"), "exec");
    }
}
