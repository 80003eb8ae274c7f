//! Agent API service (agents -> master). Authentication happened in the auth middleware;
//! registration is checked against the ACLs (register_agent, object: hostname) here.

use std::pin::Pin;
use std::sync::Arc;

use agora_proto::v1::{self, agent_api_server::AgentApi};
use futures::Stream;
use tonic::{Request, Response, Status};

use super::ClosingStream;
use crate::actor::{Command, MasterHandle};
use crate::auth::{Action, Caller, Gate};

pub struct AgentService {
    handle: MasterHandle,
    gate: Arc<Gate>,
}

impl AgentService {
    pub fn new(handle: MasterHandle, gate: Arc<Gate>) -> Self {
        Self { handle, gate }
    }
}

#[tonic::async_trait]
impl AgentApi for AgentService {
    type RegisterStream = Pin<Box<dyn Stream<Item = Result<v1::AgentCommand, Status>> + Send>>;

    async fn register(
        &self,
        request: Request<v1::RegisterAgentRequest>,
    ) -> Result<Response<Self::RegisterStream>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let hostname = request
            .info
            .as_ref()
            .map(|i| i.hostname.as_str())
            .unwrap_or("");
        self.gate
            .authorize(&caller, Action::RegisterAgent, hostname)?;
        if let Some(id) = request.info.as_ref().map(|i| i.id.as_str())
            && !id.is_empty()
        {
            self.gate.check_agent_owner(&caller, id)?;
        }
        let s = self
            .handle
            .ask(|reply| Command::RegisterAgent { request, reply })
            .await??;
        self.gate.record_agent(&caller, &s.agent_id);
        let stream = ClosingStream::boxed(
            s.commands,
            self.handle.clone(),
            Command::AgentStreamClosed {
                agent_id: s.agent_id,
                epoch: s.epoch,
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn heartbeat(
        &self,
        r: Request<v1::AgentHeartbeatRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let agent_id = r.into_inner().agent_id;
        self.gate.check_agent_owner(&caller, &agent_id)?;
        self.handle
            .ask(|reply| Command::AgentHeartbeat { agent_id, reply })
            .await??;
        Ok(Response::new(v1::Empty {}))
    }

    async fn update_status(
        &self,
        r: Request<v1::StatusUpdateRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let request = r.into_inner();
        self.gate.check_agent_owner(&caller, &request.agent_id)?;
        self.handle
            .ask(|reply| Command::StatusUpdate { request, reply })
            .await??;
        Ok(Response::new(v1::Empty {}))
    }

    async fn update_statuses(
        &self,
        r: Request<v1::StatusUpdateBatch>,
    ) -> Result<Response<v1::BatchResponse>, Status> {
        let caller = Caller::of(&r);
        let v1::StatusUpdateBatch {
            agent_id,
            mut updates,
        } = r.into_inner();
        self.gate.check_agent_owner(&caller, &agent_id)?;
        super::check_batch("status updates", "agent id", &agent_id, &mut updates, |u| {
            &mut u.agent_id
        })?;
        let refused = self
            .handle
            .ask(|reply| Command::StatusUpdates {
                agent_id,
                updates,
                reply,
            })
            .await??;
        Ok(Response::new(v1::BatchResponse { refused }))
    }

    async fn executor_message(
        &self,
        r: Request<v1::ExecutorToFrameworkMessage>,
    ) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let request = r.into_inner();
        self.gate.check_agent_owner(&caller, &request.agent_id)?;
        self.handle
            .ask(|reply| Command::ExecutorMessage { request, reply })
            .await??;
        Ok(Response::new(v1::Empty {}))
    }

    async fn executor_exited(
        &self,
        r: Request<v1::ExecutorExitedRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let request = r.into_inner();
        self.gate.check_agent_owner(&caller, &request.agent_id)?;
        self.handle
            .ask(|reply| Command::ExecutorExited { request, reply })
            .await??;
        Ok(Response::new(v1::Empty {}))
    }

    async fn update_usage(
        &self,
        r: Request<v1::UsageReport>,
    ) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let report = r.into_inner();
        self.gate.check_agent_owner(&caller, &report.agent_id)?;
        // Checked here, off the actor: a report can be large.
        crate::actor::usage::validate_report(&report)?;
        self.handle
            .ask(|reply| Command::UpdateUsage { report, reply })
            .await??;
        Ok(Response::new(v1::Empty {}))
    }

    async fn update_oversubscribed(
        &self,
        _r: Request<v1::UpdateOversubscribedRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        Err(Status::unimplemented(
            "oversubscription is not supported by this master yet",
        ))
    }
}
