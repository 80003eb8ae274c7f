//! Scheduler API service (frameworks -> master). Authentication and rate limits happened
//! in the auth middleware; here each call is checked against the `Gate` (principal,
//! framework ownership, ACLs) before the actor sees it.

use std::pin::Pin;
use std::sync::Arc;

use agora_proto::v1::{self, scheduler_server::Scheduler};
use futures::Stream;
use tonic::{Request, Response, Status};

use super::ClosingStream;
use crate::actor::{Command, MasterHandle, SchedulerCall};
use crate::auth::{Caller, Gate};

pub struct SchedulerService {
    handle: MasterHandle,
    gate: Arc<Gate>,
}

impl SchedulerService {
    pub fn new(handle: MasterHandle, gate: Arc<Gate>) -> Self {
        Self { handle, gate }
    }

    /// Calls that name a framework: only its owner may make them.
    async fn owned(
        &self,
        caller: &Caller,
        framework_id: &str,
        call: SchedulerCall,
    ) -> Result<Response<v1::Empty>, Status> {
        self.gate.check_owner(caller, framework_id)?;
        self.done(call).await
    }

    async fn call(&self, call: SchedulerCall) -> Result<(), Status> {
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
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let info = request.framework.clone().unwrap_or_default();
        self.gate.check_subscribe(&caller, &info)?;
        let sub = self
            .handle
            .ask(|reply| Command::Subscribe { request, reply })
            .await??;
        self.gate
            .record_framework(&caller, &sub.framework_id, &info.user);
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
        let caller = Caller::of(&r);
        let r = r.into_inner();
        let id = r.framework_id.clone();
        self.owned(&caller, &id, SchedulerCall::Teardown(r)).await?;
        self.gate.forget_framework(&id);
        Ok(Response::new(v1::Empty {}))
    }

    async fn accept(
        &self,
        r: Request<v1::AcceptRequest>,
    ) -> Result<Response<v1::AcceptResponse>, Status> {
        let caller = Caller::of(&r);
        let r = r.into_inner();
        self.gate.check_accept(&caller, &r)?;
        let request = Box::new(r);
        let resp = self
            .handle
            .ask(|reply| Command::Accept { request, reply })
            .await??;
        Ok(Response::new(resp))
    }

    async fn accept_batch(
        &self,
        r: Request<v1::AcceptBatchRequest>,
    ) -> Result<Response<v1::AcceptBatchResponse>, Status> {
        let caller = Caller::of(&r);
        let mut r = r.into_inner();
        self.gate.check_owner(&caller, &r.framework_id)?;
        super::check_batch(
            "accepts",
            "framework id",
            &r.framework_id,
            &mut r.accepts,
            |a| &mut a.framework_id,
        )?;
        let n = r.accepts.len();
        // The ACLs judge each item; the ones they refuse never reach the actor.
        let mut refused = Vec::new();
        let mut items = Vec::with_capacity(n);
        for (i, a) in r.accepts.into_iter().enumerate() {
            match self.gate.check_accept(&caller, &a) {
                Ok(()) => items.push((i, a)),
                Err(s) => refused.push(crate::actor::refusal(i, &s)),
            }
        }
        let mut responses = vec![v1::AcceptResponse::default(); n];
        if !items.is_empty() {
            let results = self
                .handle
                .ask(|reply| Command::AcceptBatch { items, reply })
                .await??;
            for (i, result) in results {
                match result {
                    Ok(resp) => {
                        if let Some(slot) = responses.get_mut(i) {
                            *slot = resp;
                        }
                    }
                    Err(s) => refused.push(crate::actor::refusal(i, &s)),
                }
            }
        }
        refused.sort_by_key(|x| x.index);
        Ok(Response::new(v1::AcceptBatchResponse {
            responses,
            refused,
        }))
    }

    async fn decline(&self, r: Request<v1::DeclineRequest>) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let r = r.into_inner();
        let id = r.framework_id.clone();
        self.owned(&caller, &id, SchedulerCall::Decline(r)).await
    }

    async fn revive(&self, r: Request<v1::ReviveRequest>) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let r = r.into_inner();
        let id = r.framework_id.clone();
        self.owned(&caller, &id, SchedulerCall::Revive(r)).await
    }

    async fn suppress(
        &self,
        r: Request<v1::SuppressRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let r = r.into_inner();
        let id = r.framework_id.clone();
        self.owned(&caller, &id, SchedulerCall::Suppress(r)).await
    }

    async fn kill(&self, r: Request<v1::KillRequest>) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let r = r.into_inner();
        let id = r.framework_id.clone();
        self.owned(&caller, &id, SchedulerCall::Kill(r)).await
    }

    async fn shutdown(
        &self,
        r: Request<v1::ShutdownRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let r = r.into_inner();
        let id = r.framework_id.clone();
        self.owned(&caller, &id, SchedulerCall::Shutdown(r)).await
    }

    async fn acknowledge(
        &self,
        r: Request<v1::AcknowledgeRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let r = r.into_inner();
        let id = r.framework_id.clone();
        self.owned(&caller, &id, SchedulerCall::Acknowledge(r))
            .await
    }

    async fn acknowledge_batch(
        &self,
        r: Request<v1::AcknowledgeBatchRequest>,
    ) -> Result<Response<v1::BatchResponse>, Status> {
        let caller = Caller::of(&r);
        let mut r = r.into_inner();
        self.gate.check_owner(&caller, &r.framework_id)?;
        super::check_batch(
            "acknowledgements",
            "framework id",
            &r.framework_id,
            &mut r.acks,
            |a| &mut a.framework_id,
        )?;
        let refused = self
            .handle
            .ask(|reply| Command::AcknowledgeBatch { request: r, reply })
            .await??;
        Ok(Response::new(v1::BatchResponse { refused }))
    }

    async fn reconcile(
        &self,
        r: Request<v1::ReconcileRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let r = r.into_inner();
        let id = r.framework_id.clone();
        self.owned(&caller, &id, SchedulerCall::Reconcile(r)).await
    }

    async fn message(&self, r: Request<v1::MessageRequest>) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let r = r.into_inner();
        let id = r.framework_id.clone();
        self.owned(&caller, &id, SchedulerCall::Message(r)).await
    }

    async fn update_framework(
        &self,
        r: Request<v1::UpdateFrameworkRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let r = r.into_inner();
        let info = r.framework.clone().unwrap_or_default();
        // The same checks as a subscription: the principal cannot change hands and the
        // ACLs must allow every role.
        self.gate.check_subscribe(&caller, &info)?;
        self.gate.check_owner(&caller, &info.id)?;
        self.done(SchedulerCall::UpdateFramework(Box::new(r)))
            .await?;
        self.gate.record_framework(&caller, &info.id, &info.user);
        Ok(Response::new(v1::Empty {}))
    }
}
