//! Agent API over gRPC (agents -> master): each method unwraps the request, calls the
//! service layer and wraps its reply.

use std::pin::Pin;

use agora_proto::v1::{self, agent_api_server::AgentApi};
use futures::Stream;
use tonic::{Request, Response, Status};

use super::ClosingStream;
use crate::actor::Command;
use crate::auth::Caller;
use crate::service::{self, Service};

pub struct AgentService {
    service: Service,
}

impl AgentService {
    pub fn new(service: Service) -> Self {
        Self { service }
    }
}

fn empty(r: service::Result<()>) -> Result<Response<v1::Empty>, Status> {
    r.map(|()| Response::new(v1::Empty {}))
        .map_err(Status::from)
}

#[tonic::async_trait]
impl AgentApi for AgentService {
    type RegisterStream = Pin<Box<dyn Stream<Item = Result<v1::AgentCommand, Status>> + Send>>;

    async fn register(
        &self,
        request: Request<v1::RegisterAgentRequest>,
    ) -> Result<Response<Self::RegisterStream>, Status> {
        let caller = Caller::of(&request);
        let s = self
            .service
            .register_agent(&caller, request.into_inner())
            .await?;
        let stream = ClosingStream::boxed(
            s.commands,
            self.service.handle().clone(),
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
        empty(
            self.service
                .agent_heartbeat(&caller, r.into_inner().agent_id)
                .await,
        )
    }

    async fn update_status(
        &self,
        r: Request<v1::StatusUpdateRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        empty(
            self.service
                .update_status(&Caller::of(&r), r.into_inner())
                .await,
        )
    }

    async fn update_statuses(
        &self,
        r: Request<v1::StatusUpdateBatch>,
    ) -> Result<Response<v1::BatchResponse>, Status> {
        self.service
            .update_statuses(&Caller::of(&r), r.into_inner())
            .await
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn executor_message(
        &self,
        r: Request<v1::ExecutorToFrameworkMessage>,
    ) -> Result<Response<v1::Empty>, Status> {
        empty(
            self.service
                .executor_message(&Caller::of(&r), r.into_inner())
                .await,
        )
    }

    async fn executor_exited(
        &self,
        r: Request<v1::ExecutorExitedRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        empty(
            self.service
                .executor_exited(&Caller::of(&r), r.into_inner())
                .await,
        )
    }

    async fn update_usage(
        &self,
        r: Request<v1::UsageReport>,
    ) -> Result<Response<v1::Empty>, Status> {
        empty(
            self.service
                .update_usage(&Caller::of(&r), r.into_inner())
                .await,
        )
    }

    async fn update_oversubscribed(
        &self,
        r: Request<v1::UpdateOversubscribedRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        empty(
            self.service
                .update_oversubscribed(&Caller::of(&r), r.into_inner())
                .await,
        )
    }
}
