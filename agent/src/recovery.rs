//! Agent recovery: what a starting agent does with the checkpoint in its work directory.
//!
//! [`decide`] (pure) compares the checkpointed [`AgentMeta`] with this run's: no
//! checkpoint, or a never-registered one, starts afresh; a different boot id (the host
//! rebooted: every container is gone) starts afresh as a new agent; a different
//! configuration (resources, attributes, isolation) is refused with a message saying what
//! changed and how to proceed; otherwise the agent resumes under its old id.
//!
//! [`recover`] carries the decision out: on resume it asks the containerizer to re-attach
//! to every checkpointed task's container, produces a terminal update for tasks whose
//! container cannot be found, and destroys container cgroups of this agent that no
//! checkpointed task owns (a crash between creating a container and checkpointing it).
//!
//! It must never kill a container a checkpointed task owns, and never touch another
//! agent's cgroups.

use std::sync::Arc;

use agora_proto::v1::{StatusReason, TaskState};
use agora_resources::{Attributes, Resources};

use crate::checkpoint::{AgentMeta, Checkpoint, CheckpointError, TaskRecord};
use crate::containerizer::Containerizer;
use crate::state::{RecoveredExecutor, RecoveredTask};
use crate::task::{Report, TaskKey};

/// What to do with a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to recover: start as a new agent.
    Fresh,
    /// The host rebooted since the checkpoint: start as a new agent (the old id is given
    /// for the log).
    Rebooted {
        /// The previous agent id.
        old_agent_id: String,
    },
    /// Resume as this agent.
    Resume {
        /// The agent id to re-register with.
        agent_id: String,
    },
}

/// A restart with a configuration the checkpoint does not allow.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the work directory holds the checkpoint of agent {agent_id}, started with {what}; \
     restart with the same configuration to recover its tasks, or remove {meta_dir} to start \
     as a new agent (its tasks will be killed)"
)]
pub struct Incompatible {
    /// The checkpointed agent.
    pub agent_id: String,
    /// What differs ("--resources cpus:2 (now cpus:4)").
    pub what: String,
    /// The checkpoint directory.
    pub meta_dir: String,
}

fn resources_text(r: &[agora_proto::v1::Resource]) -> String {
    Resources::from_proto(r).map_or_else(|e| format!("<invalid: {e}>"), |r| r.to_string())
}

fn attributes_text(a: &[agora_proto::v1::Attribute]) -> String {
    Attributes::from_proto(a).map_or_else(
        |e| format!("<invalid: {e}>"),
        |a| {
            a.iter()
                .map(|x| format!("{}:{}", x.name, x.value))
                .collect::<Vec<_>>()
                .join(";")
        },
    )
}

/// Decides what to do with checkpointed meta `old` for a run configured as `now`.
pub fn decide(
    old: Option<&AgentMeta>,
    now: &AgentMeta,
    meta_dir: &str,
) -> Result<Decision, Incompatible> {
    let Some(old) = old else {
        return Ok(Decision::Fresh);
    };
    if old.agent_id.is_empty() {
        return Ok(Decision::Fresh);
    }
    if old.boot_id != now.boot_id {
        return Ok(Decision::Rebooted {
            old_agent_id: old.agent_id.clone(),
        });
    }
    let incompatible = |what: String| Incompatible {
        agent_id: old.agent_id.clone(),
        what,
        meta_dir: meta_dir.to_string(),
    };
    let same_resources = match (
        Resources::from_proto(&old.resources),
        Resources::from_proto(&now.resources),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => old.resources == now.resources,
    };
    if !same_resources {
        return Err(incompatible(format!(
            "--resources {} (now {})",
            resources_text(&old.resources),
            resources_text(&now.resources)
        )));
    }
    if old.attributes != now.attributes {
        return Err(incompatible(format!(
            "--attributes {} (now {})",
            attributes_text(&old.attributes),
            attributes_text(&now.attributes)
        )));
    }
    if old.isolation != now.isolation {
        return Err(incompatible(format!(
            "--isolation {} (now {})",
            old.isolation, now.isolation
        )));
    }
    Ok(Decision::Resume {
        agent_id: old.agent_id.clone(),
    })
}

/// A recovery that cannot proceed.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// The configuration changed.
    #[error(transparent)]
    Incompatible(#[from] Incompatible),
    /// The checkpoint cannot be read or reset.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// The outcome of recovery.
pub struct Recovered {
    /// The agent id to re-register with (`None`: register as a new agent).
    pub agent_id: Option<String>,
    /// Tasks re-attached to their containers.
    pub tasks: Vec<RecoveredTask>,
    /// Terminal reports for checkpointed tasks whose container is gone without a trace.
    pub lost: Vec<(TaskKey, Report)>,
    /// Custom executors re-attached to their containers.
    pub executors: Vec<RecoveredExecutor>,
}

/// Reads the checkpoint, decides, re-attaches. On a fresh start the old checkpoint is
/// removed and `now` (without an id) is written.
pub async fn recover(
    checkpoint: &Checkpoint,
    now: &AgentMeta,
    containerizer: &Arc<dyn Containerizer>,
) -> Result<Recovered, RecoveryError> {
    let old = checkpoint.read_agent().unwrap_or_else(|e| {
        tracing::error!("ignoring an unreadable agent checkpoint: {e}");
        None
    });
    let meta_dir = checkpoint.dir().display().to_string();
    let decision = decide(old.as_ref(), now, &meta_dir)?;
    let agent_id = match decision {
        Decision::Fresh | Decision::Rebooted { .. } => {
            if let Decision::Rebooted { old_agent_id } = &decision {
                tracing::warn!(
                    old_agent_id,
                    "the host rebooted since the last checkpoint: registering as a new agent"
                );
            }
            checkpoint.clear()?;
            checkpoint.write_agent(now)?;
            containerizer.destroy_orphans(Vec::new()).await;
            return Ok(Recovered {
                agent_id: None,
                tasks: Vec::new(),
                lost: Vec::new(),
                executors: Vec::new(),
            });
        }
        Decision::Resume { agent_id } => agent_id,
    };
    tracing::info!(%agent_id, "recovering from the checkpoint");
    let (records, errors) = checkpoint.read_tasks();
    for e in errors {
        tracing::error!("skipping a task checkpoint: {e}");
    }
    let mut tasks = Vec::new();
    let mut lost = Vec::new();
    let mut owned = Vec::new();
    for (key, record) in records {
        owned.push(record.container_id.clone());
        match reattach(containerizer, &key, &record).await {
            Some(task) => tasks.push(task),
            None => {
                tracing::warn!(task = %key, "cannot re-attach to the task's container");
                if let Err(e) = checkpoint.remove_task(&key) {
                    tracing::error!(task = %key, "{e}");
                }
                lost.push((
                    key,
                    Report::new(
                        TaskState::Failed,
                        StatusReason::AgentRestarted,
                        "the agent restarted and could not re-attach to the task's container",
                    ),
                ));
            }
        }
    }
    let (records, errors) = checkpoint.read_executors();
    for e in errors {
        tracing::error!("skipping an executor checkpoint: {e}");
    }
    let mut executors = Vec::new();
    for (key, record) in records {
        owned.push(record.container_id.clone());
        let container = if record.container_id.is_empty() {
            None
        } else {
            containerizer.recover(record.container()).await
        };
        match container {
            Some(container) => executors.push(RecoveredExecutor {
                key,
                record,
                container,
            }),
            None => {
                tracing::warn!(executor = %key, "cannot re-attach to the executor's container");
                if let Err(e) = checkpoint.remove_executor(&key) {
                    tracing::error!(executor = %key, "{e}");
                }
                for t in &record.tasks {
                    let state = TaskState::try_from(t.state).unwrap_or(TaskState::Staging);
                    let Some(task) = t.task.as_ref().filter(|_| !state.is_terminal()) else {
                        continue;
                    };
                    lost.push((
                        TaskKey::new(key.framework_id.clone(), task.task_id.clone()),
                        Report::new(
                            TaskState::Failed,
                            StatusReason::ExecutorTerminated,
                            "the agent restarted and could not re-attach to the task's executor",
                        ),
                    ));
                }
            }
        }
    }
    containerizer.destroy_orphans(owned).await;
    Ok(Recovered {
        agent_id: Some(agent_id),
        tasks,
        lost,
        executors,
    })
}

async fn reattach(
    containerizer: &Arc<dyn Containerizer>,
    key: &TaskKey,
    record: &TaskRecord,
) -> Option<RecoveredTask> {
    let (framework, task) = (record.framework.clone()?, record.task.clone()?);
    let container = containerizer.recover(record.container()).await?;
    Some(RecoveredTask {
        key: key.clone(),
        framework,
        task,
        container,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: &str, boot: &str, resources: &str) -> AgentMeta {
        AgentMeta {
            agent_id: id.into(),
            boot_id: boot.into(),
            resources: Resources::parse(resources).expect("resources").to_proto(),
            attributes: Vec::new(),
            isolation: "linux".into(),
        }
    }

    #[test]
    fn decisions() {
        let now = meta("", "b1", "cpus:2;mem:64");
        assert_eq!(decide(None, &now, "/w/meta"), Ok(Decision::Fresh));
        // Never registered: nothing to recover.
        let never = meta("", "b1", "cpus:2;mem:64");
        assert_eq!(decide(Some(&never), &now, "/w/meta"), Ok(Decision::Fresh));
        let same = meta("a1", "b1", "mem:64;cpus:2");
        assert_eq!(
            decide(Some(&same), &now, "/w/meta"),
            Ok(Decision::Resume {
                agent_id: "a1".into()
            })
        );
        let rebooted = meta("a1", "b0", "cpus:4");
        assert_eq!(
            decide(Some(&rebooted), &now, "/w/meta"),
            Ok(Decision::Rebooted {
                old_agent_id: "a1".into()
            })
        );
        let changed = meta("a1", "b1", "cpus:4;mem:64");
        let err = decide(Some(&changed), &now, "/w/meta").expect_err("incompatible");
        let text = err.to_string();
        assert!(text.contains("agent a1"), "{text}");
        assert!(
            text.contains("--resources cpus:4;mem:64 (now cpus:2;mem:64)"),
            "{text}"
        );
        assert!(text.contains("/w/meta"), "{text}");
        let mut other_isolation = same.clone();
        other_isolation.isolation = "process".into();
        let err = decide(Some(&other_isolation), &now, "/w/meta").expect_err("isolation");
        assert!(err.to_string().contains("--isolation process (now linux)"));
    }
}
