//! Scheduler API over gRPC (frameworks -> master): each method unwraps the request, calls
//! the service layer and wraps its reply; a refusal becomes a status through the service
//! error's one gRPC mapping.

use std::pin::Pin;

use agora_proto::v1::{self, scheduler_server::Scheduler};
use futures::Stream;
use tonic::{Request, Response, Status};

use super::ClosingStream;
use crate::actor::Command;
use crate::auth::Caller;
use crate::service::{self, Service};

pub struct SchedulerService {
    service: Service,
}

impl SchedulerService {
    pub fn new(service: Service) -> Self {
        Self { service }
    }
}

/// An empty answer, or the refusal as a status.
fn empty(r: service::Result<()>) -> Result<Response<v1::Empty>, Status> {
    r.map(|()| Response::new(v1::Empty {}))
        .map_err(Status::from)
}

fn reply<T>(r: service::Result<T>) -> Result<Response<T>, Status> {
    r.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl Scheduler for SchedulerService {
    type SubscribeStream = Pin<Box<dyn Stream<Item = Result<v1::Event, Status>> + Send>>;

    async fn subscribe(
        &self,
        request: Request<v1::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let caller = Caller::of(&request);
        let sub = self
            .service
            .subscribe(&caller, request.into_inner())
            .await?;
        let stream = ClosingStream::new(
            sub.events,
            self.service.handle().clone(),
            Command::FrameworkStreamClosed {
                framework_id: sub.framework_id,
                epoch: sub.epoch,
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn teardown(
        &self,
        r: Request<v1::TeardownRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        empty(self.service.teardown(&Caller::of(&r), r.into_inner()).await)
    }

    async fn accept(
        &self,
        r: Request<v1::AcceptRequest>,
    ) -> Result<Response<v1::AcceptResponse>, Status> {
        reply(self.service.accept(&Caller::of(&r), r.into_inner()).await)
    }

    async fn accept_batch(
        &self,
        r: Request<v1::AcceptBatchRequest>,
    ) -> Result<Response<v1::AcceptBatchResponse>, Status> {
        reply(
            self.service
                .accept_batch(&Caller::of(&r), r.into_inner())
                .await,
        )
    }

    async fn decline(&self, r: Request<v1::DeclineRequest>) -> Result<Response<v1::Empty>, Status> {
        empty(self.service.decline(&Caller::of(&r), r.into_inner()).await)
    }

    async fn revive(&self, r: Request<v1::ReviveRequest>) -> Result<Response<v1::Empty>, Status> {
        empty(self.service.revive(&Caller::of(&r), r.into_inner()).await)
    }

    async fn suppress(
        &self,
        r: Request<v1::SuppressRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        empty(self.service.suppress(&Caller::of(&r), r.into_inner()).await)
    }

    async fn kill(&self, r: Request<v1::KillRequest>) -> Result<Response<v1::Empty>, Status> {
        empty(self.service.kill(&Caller::of(&r), r.into_inner()).await)
    }

    async fn shutdown(
        &self,
        r: Request<v1::ShutdownRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        empty(self.service.shutdown(&Caller::of(&r), r.into_inner()).await)
    }

    async fn acknowledge(
        &self,
        r: Request<v1::AcknowledgeRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        empty(
            self.service
                .acknowledge(&Caller::of(&r), r.into_inner())
                .await,
        )
    }

    async fn acknowledge_batch(
        &self,
        r: Request<v1::AcknowledgeBatchRequest>,
    ) -> Result<Response<v1::BatchResponse>, Status> {
        reply(
            self.service
                .acknowledge_batch(&Caller::of(&r), r.into_inner())
                .await,
        )
    }

    async fn reconcile(
        &self,
        r: Request<v1::ReconcileRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        empty(
            self.service
                .reconcile(&Caller::of(&r), r.into_inner())
                .await,
        )
    }

    async fn message(&self, r: Request<v1::MessageRequest>) -> Result<Response<v1::Empty>, Status> {
        empty(self.service.message(&Caller::of(&r), r.into_inner()).await)
    }

    async fn update_framework(
        &self,
        r: Request<v1::UpdateFrameworkRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        empty(
            self.service
                .update_framework(&Caller::of(&r), r.into_inner())
                .await,
        )
    }
}
