//! What happens to a launch before a containerizer starts it: the task's user is decided
//! ([`UserPolicy`]: the framework's or the command's user, else `--default-user`; root
//! only with `--allow-root-tasks`), the sandbox is created and given to that user, and the
//! task's URIs are fetched into it **as that user** ([`crate::fetcher`]).
//!
//! [`PreparingContainerizer`] wraps the containerizer the agent runs (tasks and custom
//! executors alike), so no containerizer ever sees a spec whose user was not decided here.
//!
//! Must never: let a task run as root without the operator's flag, run a task with no user
//! as the agent's own (privileged) user, or fetch anything with the agent's privileges
//! into a sandbox. A non-root agent has no privilege to drop: its tasks with no user run
//! as the agent's user, and a task naming another user is refused by the containerizer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use nix::unistd::{Gid, Uid, User, chown};

use crate::containerizer::{Container, ContainerRef, Containerizer, LaunchError, LaunchSpec};
use crate::fetcher::{FetchConfig, Identity, fetch_all};
use crate::sandbox::sandbox_dir;

/// The default of `--default-user`.
pub const DEFAULT_USER: &str = "nobody";

/// Who tasks run as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserPolicy {
    /// The user of tasks (and executors) that name none, when the agent is root.
    pub default_user: String,
    /// Whether tasks may run as root (uid 0).
    pub allow_root: bool,
}

impl Default for UserPolicy {
    fn default() -> UserPolicy {
        UserPolicy {
            default_user: DEFAULT_USER.to_string(),
            allow_root: false,
        }
    }
}

/// Looks a user up by name (`None`: no such user).
pub type Lookup<'a> = &'a dyn Fn(&str) -> Result<Option<Identity>, LaunchError>;

/// The system's user database.
pub fn system_lookup(name: &str) -> Result<Option<Identity>, LaunchError> {
    let entry = User::from_name(name).map_err(|error| LaunchError::UserLookup {
        user: name.to_string(),
        error,
    })?;
    Ok(entry.map(|u| Identity {
        name: u.name,
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
    }))
}

impl UserPolicy {
    /// The user a task runs as. `requested`: the task's (or its framework's) user.
    /// `agent_uid`: the agent's effective uid. `None`: the agent's own user (only for a
    /// non-root agent, or a root agent whose task may be root and asked for it).
    pub fn decide(
        &self,
        requested: Option<&str>,
        agent_uid: u32,
        lookup: Lookup<'_>,
    ) -> Result<Option<Identity>, LaunchError> {
        let agent_is_root = agent_uid == 0;
        let (name, defaulted) = match requested {
            Some(name) => (name, false),
            None if agent_is_root => (self.default_user.as_str(), true),
            // Nothing to drop: the task runs as the (unprivileged) agent's user.
            None => return Ok(None),
        };
        let identity = lookup(name)?.ok_or_else(|| LaunchError::UnknownUser(name.to_string()))?;
        if identity.uid == 0 && !self.allow_root {
            return Err(LaunchError::RootRefused {
                user: name.to_string(),
                defaulted,
            });
        }
        if identity.uid == agent_uid {
            return Ok(None);
        }
        if !agent_is_root {
            return Err(LaunchError::CannotSwitchUser {
                user: name.to_string(),
                agent_uid,
            });
        }
        Ok(Some(identity))
    }
}

/// Decides the user, prepares the sandbox and fetches URIs, then hands the launch to the
/// containerizer it wraps; everything else passes through.
pub struct PreparingContainerizer {
    inner: Arc<dyn Containerizer>,
    work_dir: PathBuf,
    users: UserPolicy,
    fetch: FetchConfig,
}

impl PreparingContainerizer {
    /// Wraps `inner`, whose sandboxes live under `work_dir`.
    pub fn new(
        inner: Arc<dyn Containerizer>,
        work_dir: &Path,
        users: UserPolicy,
        fetch: FetchConfig,
    ) -> PreparingContainerizer {
        PreparingContainerizer {
            inner,
            work_dir: work_dir.to_path_buf(),
            users,
            fetch,
        }
    }
}

fn sandbox_err(path: &Path) -> impl FnOnce(std::io::Error) -> LaunchError + '_ {
    move |error| LaunchError::Sandbox {
        path: path.to_path_buf(),
        error,
    }
}

/// Creates the sandbox (and its framework directory) and gives the sandbox to `identity`.
fn create_sandbox(sandbox: &Path, identity: Option<&Identity>) -> Result<(), LaunchError> {
    std::fs::create_dir_all(sandbox).map_err(sandbox_err(sandbox))?;
    if let Some(i) = identity {
        chown(
            sandbox,
            Some(Uid::from_raw(i.uid)),
            Some(Gid::from_raw(i.gid)),
        )
        .map_err(|error| LaunchError::Chown {
            path: sandbox.to_path_buf(),
            user: i.name.clone(),
            error,
        })?;
    }
    Ok(())
}

impl Containerizer for PreparingContainerizer {
    fn launch(
        &self,
        mut spec: LaunchSpec,
    ) -> BoxFuture<'static, Result<Arc<dyn Container>, LaunchError>> {
        let inner = Arc::clone(&self.inner);
        let work_dir = self.work_dir.clone();
        let users = self.users.clone();
        let fetch = self.fetch.clone();
        Box::pin(async move {
            let requested = spec.user.clone();
            let identity = tokio::task::spawn_blocking(move || {
                users.decide(
                    requested.as_deref(),
                    Uid::effective().as_raw(),
                    &system_lookup,
                )
            })
            .await
            .map_err(|e| LaunchError::Spawn {
                program: String::new(),
                error: std::io::Error::other(format!("user lookup failed: {e}")),
            })??;
            if let Some(i) = &identity {
                spec.user = Some(i.name.clone());
            }
            let sandbox = sandbox_dir(&work_dir, &spec.framework_id, &spec.task_id)?;
            create_sandbox(&sandbox, identity.as_ref())?;
            fetch_all(&fetch, &spec.uris, &sandbox, identity.as_ref()).await?;
            inner.launch(spec).await
        })
    }

    fn recover(&self, reference: ContainerRef) -> BoxFuture<'static, Option<Arc<dyn Container>>> {
        self.inner.recover(reference)
    }

    fn destroy_orphans(&self, owned: Vec<String>) -> BoxFuture<'static, ()> {
        self.inner.destroy_orphans(owned)
    }

    fn release(&self) -> BoxFuture<'static, ()> {
        self.inner.release()
    }

    fn fetch_into(
        &self,
        sandbox: std::path::PathBuf,
        uris: Vec<crate::fetcher::FetchUri>,
    ) -> BoxFuture<'static, Result<(), LaunchError>> {
        let fetch = self.fetch.clone();
        Box::pin(async move {
            // As the sandbox's owner: the user the container runs as.
            let meta = std::fs::metadata(&sandbox).map_err(|error| LaunchError::Sandbox {
                path: sandbox.clone(),
                error,
            })?;
            let identity = {
                use std::os::unix::fs::MetadataExt;
                let (uid, gid) = (meta.uid(), meta.gid());
                if uid == Uid::effective().as_raw() {
                    None
                } else {
                    let name = nix::unistd::User::from_uid(Uid::from_raw(uid))
                        .ok()
                        .flatten()
                        .map_or_else(|| uid.to_string(), |u| u.name);
                    Some(crate::fetcher::Identity { name, uid, gid })
                }
            };
            fetch_all(&fetch, &uris, &sandbox, identity.as_ref()).await?;
            Ok(())
        })
    }

    fn isolation(&self) -> &'static str {
        self.inner.isolation()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(name: &str) -> Result<Option<Identity>, LaunchError> {
        let id = |uid| {
            Ok(Some(Identity {
                name: name.to_string(),
                uid,
                gid: uid,
            }))
        };
        match name {
            "root" | "toor" => id(0),
            "nobody" => id(65534),
            "alice" => id(1000),
            _ => Ok(None),
        }
    }

    fn decide(p: &UserPolicy, requested: Option<&str>, agent: u32) -> Result<Option<u32>, String> {
        p.decide(requested, agent, &users)
            .map(|i| i.map(|i| i.uid))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn root_agent_runs_tasks_without_a_user_as_the_default_user() {
        let p = UserPolicy::default();
        assert_eq!(decide(&p, None, 0), Ok(Some(65534)));
        assert_eq!(decide(&p, Some("alice"), 0), Ok(Some(1000)));
        let other = UserPolicy {
            default_user: "alice".into(),
            ..UserPolicy::default()
        };
        assert_eq!(decide(&other, None, 0), Ok(Some(1000)));
    }

    #[test]
    fn root_needs_the_operators_flag() {
        let p = UserPolicy::default();
        for (requested, defaulted) in [(Some("root"), false), (Some("toor"), false)] {
            let err = decide(&p, requested, 0).expect_err("root refused");
            assert!(err.contains("--allow-root-tasks"), "{err}");
            assert_eq!(err.contains("--default-user"), defaulted, "{err}");
        }
        let root_default = UserPolicy {
            default_user: "root".into(),
            allow_root: false,
        };
        let err = decide(&root_default, None, 0).expect_err("root refused");
        assert_eq!(
            err,
            "task would run as root (user \"root\", the --default-user); this agent runs tasks as root only with --allow-root-tasks"
        );
        let allowed = UserPolicy {
            allow_root: true,
            ..UserPolicy::default()
        };
        // Root on a root agent: the agent's own user, no switch.
        assert_eq!(decide(&allowed, Some("root"), 0), Ok(None));
    }

    #[test]
    fn unknown_users_and_non_root_agents() {
        let p = UserPolicy::default();
        let err = decide(&p, Some("mallory"), 0).expect_err("unknown");
        assert_eq!(err, "user \"mallory\" does not exist on this host");
        // A non-root agent has nothing to drop: no user means its own.
        assert_eq!(decide(&p, None, 1000), Ok(None));
        assert_eq!(decide(&p, Some("alice"), 1000), Ok(None));
        let err = decide(&p, Some("nobody"), 1000).expect_err("cannot switch");
        assert!(err.contains("cannot run tasks as user \"nobody\""), "{err}");
        let err = decide(&p, Some("root"), 1000).expect_err("root");
        assert!(err.contains("--allow-root-tasks"), "{err}");
    }
}
