//! The actor's maintenance half: deactivating and reactivating agents, draining them with
//! a grace period, and marking them gone. Operators drive all of it through the Operator
//! API.
//!
//! Invariants kept here: a deactivated agent is not in the allocator (nothing on it is
//! offered; its live tasks keep running but are not booked there); a gone agent never
//! comes back under its id (the registry remembers it) and its live tasks are reported
//! GONE_BY_OPERATOR once.

use crate::service::Error;
use agora_proto::TaskState;
use agora_proto::v1;
use tracing::{info, warn};

use super::Master;
use crate::registry::RegistryOp;
use crate::state::agent::{AgentEvent, AgentStatus};
use crate::validate;

impl Master {
    /// Whether the agent's resources are in the allocator (read from its status).
    pub(super) fn agent_in_allocator(&self, id: &str) -> bool {
        self.agents
            .get(id)
            .is_some_and(|a| a.status.is_schedulable())
    }

    fn maintained_agent(&self, id: &str) -> Result<AgentStatus, Error> {
        validate::id("agent id", id)?;
        match self.agents.get(id) {
            None => Err(Error::not_found(format!("unknown agent id '{id}'"))),
            Some(a) if a.status == AgentStatus::Removed => Err(Error::failed_precondition(
                format!("agent '{id}' was removed"),
            )),
            Some(a) => Ok(a.status),
        }
    }

    /// Take the agent out of the allocator: its offers are rescinded, its tasks keep
    /// running.
    pub(super) fn deactivate_agent(&mut self, id: &str) -> Result<(), Error> {
        let before = self.maintained_agent(id)?;
        if before.is_deactivated() {
            return Ok(());
        }
        self.agent_event(id, AgentEvent::Deactivate)?;
        self.persist(RegistryOp::DeactivateAgent { id: id.to_string() });
        info!(agent = %id, "agent deactivated");
        self.emit_agent(id, false);
        Ok(())
    }

    pub(super) fn reactivate_agent(&mut self, id: &str) -> Result<(), Error> {
        let before = self.maintained_agent(id)?;
        if !before.is_deactivated() {
            return Err(Error::failed_precondition(format!(
                "agent '{id}' is not deactivated"
            )));
        }
        self.agent_event(id, AgentEvent::Reactivate)?;
        self.persist(RegistryOp::ReactivateAgent { id: id.to_string() });
        info!(agent = %id, "agent reactivated");
        self.emit_agent(id, false);
        Ok(())
    }

    /// Deactivate, ask every live task to stop within `grace_seconds`, and when none is
    /// left, mark the agent gone if asked.
    pub(super) fn drain_agent(
        &mut self,
        id: &str,
        grace_seconds: f64,
        mark_gone: bool,
    ) -> Result<(), Error> {
        let before = self.maintained_agent(id)?;
        validate::seconds("grace_period_seconds", grace_seconds)?;
        let started = self.now();
        self.agent_event(id, AgentEvent::Drain { mark_gone, started })?;
        if !before.is_deactivated() {
            self.persist(RegistryOp::DeactivateAgent { id: id.to_string() });
        }
        let live: Vec<(String, String)> = self
            .agents
            .get(id)
            .map(|a| {
                a.tasks
                    .iter()
                    .filter(|k| self.tasks.get(*k).is_some_and(|t| !t.state.is_terminal()))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        info!(agent = %id, tasks = live.len(), grace_seconds, mark_gone, "draining agent");
        for (fw, task) in live {
            self.send_agent(
                id,
                v1::agent_command::Command::KillTask(v1::agent_command::KillTask {
                    framework_id: fw,
                    task_id: task,
                    kill_policy: Some(v1::KillPolicy {
                        grace_period_seconds: grace_seconds,
                    }),
                }),
            );
        }
        self.emit_agent(id, false);
        self.check_drains();
        Ok(())
    }

    /// Finish drains whose agents run nothing any more.
    pub(super) fn check_drains(&mut self) {
        let done: Vec<String> = self
            .draining
            .iter()
            .filter(|id| {
                self.agents.get(*id).is_none_or(|a| {
                    a.tasks
                        .iter()
                        .all(|k| self.tasks.get(k).is_none_or(|t| t.state.is_terminal()))
                })
            })
            .cloned()
            .collect();
        for id in done {
            let Some((mark_gone, started)) = self.agents.get(&id).and_then(|a| a.status.drain())
            else {
                self.draining.remove(&id);
                continue;
            };
            if self.agent_event(&id, AgentEvent::Drained).is_err() {
                continue;
            }
            info!(agent = %id, took_ms = self.now().saturating_sub(started), "agent drained");
            if mark_gone {
                self.mark_agent_gone(&id);
            } else {
                self.emit_agent(&id, false);
            }
        }
    }

    /// The agent is gone for good: its live tasks are reported GONE_BY_OPERATOR, it is
    /// told to shut down, and its id is retired.
    pub(super) fn mark_agent_gone(&mut self, id: &str) {
        if self.agent_event(id, AgentEvent::MarkGone).is_err() {
            return;
        }
        self.forget_agent_executors(id);
        let keys: Vec<_> = self
            .agents
            .get(id)
            .map(|a| a.tasks.iter().cloned().collect())
            .unwrap_or_default();
        for k in &keys {
            self.fail_task(
                k,
                TaskState::GoneByOperator,
                v1::StatusReason::AgentRemoved,
                "an operator marked the agent gone",
            );
        }
        self.send_agent(
            id,
            v1::agent_command::Command::Shutdown(v1::agent_command::Shutdown {
                reason: format!("agent '{id}' was marked gone by an operator"),
            }),
        );
        if let Some(agent) = self.agents.get_mut(id) {
            agent.tx = None;
        }
        self.forget_usage(id);
        self.persist(RegistryOp::RemoveAgent { id: id.to_string() });
        self.send_agent_lost(id);
        warn!(agent = %id, "agent marked gone");
        self.emit(|_| {
            Some(v1::operator_event::Event::AgentRemoved(
                v1::operator_event::AgentRemoved {
                    agent_id: id.to_string(),
                },
            ))
        });
        self.needs_allocation = true;
    }

    pub(super) fn operator_mark_gone(&mut self, id: &str) -> Result<(), Error> {
        self.maintained_agent(id)?;
        self.mark_agent_gone(id);
        Ok(())
    }
}
