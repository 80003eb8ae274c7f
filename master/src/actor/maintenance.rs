//! The actor's maintenance half: deactivating and reactivating agents, draining them with
//! a grace period, and marking them gone. Operators drive all of it through the Operator
//! API.
//!
//! Invariants kept here: a deactivated agent is not in the allocator (nothing on it is
//! offered; its live tasks keep running but are not booked there); a gone agent never
//! comes back under its id (the registry remembers it) and its live tasks are reported
//! GONE_BY_OPERATOR once.

use agora_proto::TaskState;
use agora_proto::v1;
use tonic::Status;
use tracing::{info, warn};

use super::Master;
use crate::clock::Millis;
use crate::registry::RegistryOp;
use crate::state::agent::{AgentEvent, AgentStatus};
use crate::validate;

/// An agent being drained: its tasks were told to stop; when none is left it is marked
/// gone if asked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Drain {
    pub mark_gone: bool,
    pub started: Millis,
}

impl Master {
    /// Whether the agent's resources are in the allocator.
    pub(super) fn agent_in_allocator(&self, id: &str) -> bool {
        !self.deactivated.contains(id)
            && self
                .agents
                .get(id)
                .is_some_and(|a| a.status.is_schedulable())
    }

    fn maintained_agent(&self, id: &str) -> Result<(), Status> {
        validate::id("agent id", id)?;
        match self.agents.get(id) {
            None => Err(Status::not_found(format!("unknown agent id '{id}'"))),
            Some(a) if a.status == AgentStatus::Removed => Err(Status::failed_precondition(
                format!("agent '{id}' was removed"),
            )),
            Some(_) => Ok(()),
        }
    }

    /// Take the agent out of the allocator: its offers are rescinded, its tasks keep
    /// running.
    pub(super) fn deactivate_agent(&mut self, id: &str) -> Result<(), Status> {
        self.maintained_agent(id)?;
        if self.deactivated.contains(id) {
            return Ok(());
        }
        let in_allocator = self.agent_in_allocator(id);
        self.deactivated.insert(id.to_string());
        self.persist(RegistryOp::DeactivateAgent { id: id.to_string() });
        if let Some(agent) = self.agents.get(id) {
            let offers: Vec<String> = agent.offers.iter().cloned().collect();
            let keys: Vec<_> = agent.tasks.iter().cloned().collect();
            for o in offers {
                self.rescind_offer(&o, "agent deactivated", false);
            }
            for k in keys {
                if let Some(t) = self.tasks.get_mut(&k) {
                    t.booked = false;
                }
            }
        }
        if in_allocator && let Err(e) = self.allocator.remove_agent(id) {
            warn!(error = %e, "removing deactivated agent from allocator");
        }
        info!(agent = %id, "agent deactivated");
        self.emit_agent(id, false);
        Ok(())
    }

    pub(super) fn reactivate_agent(&mut self, id: &str) -> Result<(), Status> {
        self.maintained_agent(id)?;
        if !self.deactivated.contains(id) {
            return Err(Status::failed_precondition(format!(
                "agent '{id}' is not deactivated"
            )));
        }
        self.deactivated.remove(id);
        self.draining.remove(id);
        self.persist(RegistryOp::ReactivateAgent { id: id.to_string() });
        if self.agent_in_allocator(id)
            && let Some(agent) = self.agents.get(id)
        {
            let total = agent.total.clone();
            let attributes =
                agora_resources::Attributes::from_proto(&agent.info.attributes).unwrap_or_default();
            let keys: Vec<_> = agent.tasks.iter().cloned().collect();
            if let Err(e) = self.add_agent_to_allocator(id, total, attributes) {
                warn!(error = %e, "adding reactivated agent to allocator");
            }
            for k in keys {
                self.book_task(&k);
            }
        }
        info!(agent = %id, "agent reactivated");
        self.needs_allocation = true;
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
    ) -> Result<(), Status> {
        self.maintained_agent(id)?;
        validate::seconds("grace_period_seconds", grace_seconds)?;
        self.deactivate_agent(id)?;
        let now = self.now();
        self.draining.insert(
            id.to_string(),
            Drain {
                mark_gone,
                started: now,
            },
        );
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
        let done: Vec<(String, Drain)> = self
            .draining
            .iter()
            .filter(|(id, _)| {
                self.agents.get(*id).is_none_or(|a| {
                    a.tasks
                        .iter()
                        .all(|k| self.tasks.get(k).is_none_or(|t| t.state.is_terminal()))
                })
            })
            .map(|(id, d)| (id.clone(), *d))
            .collect();
        for (id, drain) in done {
            self.draining.remove(&id);
            info!(agent = %id, took_ms = self.now().saturating_sub(drain.started), "agent drained");
            if drain.mark_gone {
                self.mark_agent_gone(&id);
            } else {
                self.emit_agent(&id, false);
            }
        }
    }

    /// The agent is gone for good: its live tasks are reported GONE_BY_OPERATOR, it is
    /// told to shut down, and its id is retired.
    pub(super) fn mark_agent_gone(&mut self, id: &str) {
        let in_allocator = self.agent_in_allocator(id);
        let Some(agent) = self.agents.get_mut(id) else {
            return;
        };
        let Ok(next) = agent.status.on(AgentEvent::Remove) else {
            return;
        };
        agent.status = next;
        let offers: Vec<String> = agent.offers.iter().cloned().collect();
        let keys: Vec<_> = agent.tasks.iter().cloned().collect();
        for o in offers {
            self.rescind_offer(&o, "agent gone", false);
        }
        if in_allocator && let Err(e) = self.allocator.remove_agent(id) {
            warn!(error = %e, "removing gone agent from allocator");
        }
        for k in &keys {
            if let Some(t) = self.tasks.get_mut(k) {
                t.booked = false;
            }
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
        self.deactivated.remove(id);
        self.draining.remove(id);
        self.removed_agents.insert(id.to_string());
        self.forget_usage(id);
        self.persist(RegistryOp::RemoveAgent { id: id.to_string() });
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

    pub(super) fn operator_mark_gone(&mut self, id: &str) -> Result<(), Status> {
        self.maintained_agent(id)?;
        self.mark_agent_gone(id);
        Ok(())
    }
}
