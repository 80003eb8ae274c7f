//! Agent API service (agents -> master).

use std::pin::Pin;

use agora_proto::v1::{self, agent_api_server::AgentApi};
use futures::Stream;
use tonic::{Request, Response, Status};

use super::ClosingStream;
use crate::actor::{Command, MasterHandle};

pub struct AgentService {
    handle: MasterHandle,
}

impl AgentService {
    pub fn new(handle: MasterHandle) -> Self {
        Self { handle }
    }
}

#[tonic::async_trait]
impl AgentApi for AgentService {
    type RegisterStream = Pin<Box<dyn Stream<Item = Result<v1::AgentCommand, Status>> + Send>>;

    async fn register(
        &self,
        request: Request<v1::RegisterAgentRequest>,
    ) -> Result<Response<Self::RegisterStream>, Status> {
        let request = request.into_inner();
        let s = self
            .handle
            .ask(|reply| Command::RegisterAgent { request, reply })
            .await??;
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
        let agent_id = r.into_inner().agent_id;
        self.handle
            .ask(|reply| Command::AgentHeartbeat { agent_id, reply })
            .await??;
        Ok(Response::new(v1::Empty {}))
    }

    async fn update_status(
        &self,
        r: Request<v1::StatusUpdateRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        let request = r.into_inner();
        self.handle
            .ask(|reply| Command::StatusUpdate { request, reply })
            .await??;
        Ok(Response::new(v1::Empty {}))
    }

    async fn executor_message(
        &self,
        r: Request<v1::ExecutorToFrameworkMessage>,
    ) -> Result<Response<v1::Empty>, Status> {
        let request = r.into_inner();
        self.handle
            .ask(|reply| Command::ExecutorMessage { request, reply })
            .await??;
        Ok(Response::new(v1::Empty {}))
    }

    async fn executor_exited(
        &self,
        r: Request<v1::ExecutorExitedRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        let request = r.into_inner();
        self.handle
            .ask(|reply| Command::ExecutorExited { request, reply })
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
