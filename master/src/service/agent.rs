//! Agent calls (agents -> master). Authentication happened in the auth middleware;
//! registration is checked against the ACLs (register_agent, object: hostname) and every
//! later call against the agent's owner.

use agora_proto::v1;

use super::scheduler::check_batch;
use super::{Error, Result, Service};
use crate::actor::{AgentStream, Command};
use crate::auth::{Action, Caller};

impl Service {
    pub async fn register_agent(
        &self,
        caller: &Caller,
        request: v1::RegisterAgentRequest,
    ) -> Result<AgentStream> {
        let hostname = request
            .info
            .as_ref()
            .map(|i| i.hostname.as_str())
            .unwrap_or("");
        self.gate
            .authorize(caller, Action::RegisterAgent, hostname)?;
        if let Some(id) = request.info.as_ref().map(|i| i.id.as_str())
            && !id.is_empty()
        {
            self.gate.check_agent_owner(caller, id)?;
        }
        let s = self
            .call(|reply| Command::RegisterAgent { request, reply })
            .await?;
        self.gate.record_agent(caller, &s.agent_id);
        Ok(s)
    }

    pub async fn agent_heartbeat(&self, caller: &Caller, agent_id: String) -> Result<()> {
        self.gate.check_agent_owner(caller, &agent_id)?;
        self.call(|reply| Command::AgentHeartbeat { agent_id, reply })
            .await
    }

    pub async fn update_status(
        &self,
        caller: &Caller,
        request: v1::StatusUpdateRequest,
    ) -> Result<()> {
        self.gate.check_agent_owner(caller, &request.agent_id)?;
        self.call(|reply| Command::StatusUpdate { request, reply })
            .await
    }

    pub async fn update_statuses(
        &self,
        caller: &Caller,
        batch: v1::StatusUpdateBatch,
    ) -> Result<v1::BatchResponse> {
        let v1::StatusUpdateBatch {
            agent_id,
            mut updates,
        } = batch;
        self.gate.check_agent_owner(caller, &agent_id)?;
        check_batch("status updates", "agent id", &agent_id, &mut updates, |u| {
            &mut u.agent_id
        })?;
        let refused = self
            .call(|reply| Command::StatusUpdates {
                agent_id,
                updates,
                reply,
            })
            .await?;
        Ok(v1::BatchResponse { refused })
    }

    pub async fn executor_message(
        &self,
        caller: &Caller,
        request: v1::ExecutorToFrameworkMessage,
    ) -> Result<()> {
        self.gate.check_agent_owner(caller, &request.agent_id)?;
        self.call(|reply| Command::ExecutorMessage { request, reply })
            .await
    }

    pub async fn executor_exited(
        &self,
        caller: &Caller,
        request: v1::ExecutorExitedRequest,
    ) -> Result<()> {
        self.gate.check_agent_owner(caller, &request.agent_id)?;
        self.call(|reply| Command::ExecutorExited { request, reply })
            .await
    }

    pub async fn update_usage(&self, caller: &Caller, report: v1::UsageReport) -> Result<()> {
        self.gate.check_agent_owner(caller, &report.agent_id)?;
        // Checked here, off the actor: a report can be large.
        crate::actor::usage::validate_report(&report)?;
        self.call(|reply| Command::UpdateUsage { report, reply })
            .await
    }

    pub async fn update_oversubscribed(
        &self,
        _caller: &Caller,
        _request: v1::UpdateOversubscribedRequest,
    ) -> Result<()> {
        Err(Error::Unimplemented(
            "oversubscription is not supported by this master yet".into(),
        ))
    }
}
