//! Scheduler API service (frameworks -> master).

use std::pin::Pin;

use agora_proto::v1::{self, scheduler_server::Scheduler};
use futures::Stream;
use tonic::{Request, Response, Status};

use super::ClosingStream;
use crate::actor::{CallReply, Command, MasterHandle, SchedulerCall};

pub struct SchedulerService {
    handle: MasterHandle,
}

impl SchedulerService {
    pub fn new(handle: MasterHandle) -> Self {
        Self { handle }
    }

    async fn call(&self, call: SchedulerCall) -> Result<CallReply, Status> {
        self.handle
            .ask(|reply| Command::Scheduler { call, reply })
            .await?
    }

    async fn done(&self, call: SchedulerCall) -> Result<Response<v1::Empty>, Status> {
        self.call(call).await.map(|_| Response::new(v1::Empty {}))
    }
}

#[tonic::async_trait]
impl Scheduler for SchedulerService {
    type SubscribeStream = Pin<Box<dyn Stream<Item = Result<v1::Event, Status>> + Send>>;

    async fn subscribe(
        &self,
        request: Request<v1::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let request = request.into_inner();
        let sub = self
            .handle
            .ask(|reply| Command::Subscribe { request, reply })
            .await??;
        let stream = ClosingStream::new(
            sub.events,
            self.handle.clone(),
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
        self.done(SchedulerCall::Teardown(r.into_inner())).await
    }

    async fn accept(
        &self,
        r: Request<v1::AcceptRequest>,
    ) -> Result<Response<v1::AcceptResponse>, Status> {
        match self
            .call(SchedulerCall::Accept(Box::new(r.into_inner())))
            .await?
        {
            CallReply::Accepted(resp) => Ok(Response::new(resp)),
            CallReply::Done => Ok(Response::new(v1::AcceptResponse::default())),
        }
    }

    async fn decline(&self, r: Request<v1::DeclineRequest>) -> Result<Response<v1::Empty>, Status> {
        self.done(SchedulerCall::Decline(r.into_inner())).await
    }

    async fn revive(&self, r: Request<v1::ReviveRequest>) -> Result<Response<v1::Empty>, Status> {
        self.done(SchedulerCall::Revive(r.into_inner())).await
    }

    async fn suppress(
        &self,
        r: Request<v1::SuppressRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        self.done(SchedulerCall::Suppress(r.into_inner())).await
    }

    async fn kill(&self, r: Request<v1::KillRequest>) -> Result<Response<v1::Empty>, Status> {
        self.done(SchedulerCall::Kill(r.into_inner())).await
    }

    async fn shutdown(
        &self,
        r: Request<v1::ShutdownRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        self.done(SchedulerCall::Shutdown(r.into_inner())).await
    }

    async fn acknowledge(
        &self,
        r: Request<v1::AcknowledgeRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        self.done(SchedulerCall::Acknowledge(r.into_inner())).await
    }

    async fn reconcile(
        &self,
        r: Request<v1::ReconcileRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        self.done(SchedulerCall::Reconcile(r.into_inner())).await
    }

    async fn message(&self, r: Request<v1::MessageRequest>) -> Result<Response<v1::Empty>, Status> {
        self.done(SchedulerCall::Message(r.into_inner())).await
    }

    async fn update_framework(
        &self,
        r: Request<v1::UpdateFrameworkRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        self.done(SchedulerCall::UpdateFramework(Box::new(r.into_inner())))
            .await
    }
}
