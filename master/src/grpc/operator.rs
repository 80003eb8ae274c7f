//! Operator API over gRPC (operators, CLI, web UI -> master): each method unwraps the
//! request, calls the service layer and wraps its reply. Reads, teardown, maintenance and
//! the ACL checks live in `service::operator`, shared with the HTTP API.

use std::pin::Pin;

use agora_proto::v1::{self, operator_server::Operator};
use agora_resources::Resources;
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::actor::{MaintenanceOp, OpKind};
use crate::auth::Caller;
use crate::service::{self, Error, Service};

pub use crate::service::operator::VERSION;

pub struct OperatorService {
    service: Service,
}

impl OperatorService {
    pub fn new(service: Service) -> Self {
        Self { service }
    }

    async fn resource_op(
        &self,
        caller: &Caller,
        agent_id: String,
        kind: OpKind,
        resources: Vec<v1::Resource>,
    ) -> Result<Response<v1::Empty>, Status> {
        empty(
            self.service
                .resource_op(caller, agent_id, kind, resources)
                .await,
        )
    }

    async fn maintenance(
        &self,
        caller: &Caller,
        op: MaintenanceOp,
    ) -> Result<Response<v1::Empty>, Status> {
        empty(self.service.maintenance(caller, op).await)
    }
}

fn empty(r: service::Result<()>) -> Result<Response<v1::Empty>, Status> {
    r.map(|()| Response::new(v1::Empty {}))
        .map_err(Status::from)
}

fn reply<T>(r: service::Result<T>) -> Result<Response<T>, Status> {
    r.map(Response::new).map_err(Status::from)
}

/// Resources of a request, for a quota (`what`: "guarantee", "limit").
fn quota_resources(what: &str, r: &[v1::Resource]) -> Result<Resources, Status> {
    Resources::from_proto(r).map_err(|e| Status::from(Error::invalid(format!("quota {what}: {e}"))))
}

#[tonic::async_trait]
impl Operator for OperatorService {
    type SubscribeStream = Pin<Box<dyn Stream<Item = Result<v1::OperatorEvent, Status>> + Send>>;

    async fn get_health(
        &self,
        _r: Request<v1::Empty>,
    ) -> Result<Response<v1::HealthResponse>, Status> {
        let h = self.service.health().await?;
        Ok(Response::new(v1::HealthResponse {
            healthy: true,
            leading: h.leading,
            leader: h.leader.unwrap_or_default(),
        }))
    }

    async fn get_version(
        &self,
        _r: Request<v1::Empty>,
    ) -> Result<Response<v1::VersionResponse>, Status> {
        let (version, git_sha) = self.service.version();
        Ok(Response::new(v1::VersionResponse {
            version: version.to_string(),
            git_sha: git_sha.to_string(),
        }))
    }

    async fn get_flags(
        &self,
        _r: Request<v1::Empty>,
    ) -> Result<Response<v1::FlagsResponse>, Status> {
        Ok(Response::new(v1::FlagsResponse {
            flags: self.service.flags(),
        }))
    }

    async fn get_state(&self, r: Request<v1::Empty>) -> Result<Response<v1::ClusterState>, Status> {
        reply(self.service.state(&Caller::of(&r)).await)
    }

    async fn get_roles(
        &self,
        r: Request<v1::Empty>,
    ) -> Result<Response<v1::RolesResponse>, Status> {
        let roles = self.service.roles(&Caller::of(&r)).await?;
        Ok(Response::new(v1::RolesResponse { roles }))
    }

    async fn get_weights(
        &self,
        _r: Request<v1::Empty>,
    ) -> Result<Response<v1::WeightsResponse>, Status> {
        let weights = self.service.weights().await?;
        Ok(Response::new(v1::WeightsResponse {
            weights: weights
                .into_iter()
                .map(|(role, weight)| v1::WeightInfo { role, weight })
                .collect(),
        }))
    }

    async fn update_weights(
        &self,
        r: Request<v1::UpdateWeightsRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let weights = r
            .into_inner()
            .weights
            .into_iter()
            .map(|w| (w.role, w.weight))
            .collect();
        empty(self.service.update_weights(&caller, weights).await)
    }

    async fn get_quota(
        &self,
        _r: Request<v1::Empty>,
    ) -> Result<Response<v1::QuotaResponse>, Status> {
        let quotas = self.service.quotas().await?;
        Ok(Response::new(v1::QuotaResponse {
            quotas: quotas
                .into_iter()
                .map(|q| v1::QuotaInfo {
                    role: q.role,
                    guarantee: q.guarantee.to_proto(),
                    limit: q.limit.map(|l| l.to_proto()).unwrap_or_default(),
                })
                .collect(),
        }))
    }

    async fn set_quota(
        &self,
        r: Request<v1::SetQuotaRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let r = r.into_inner();
        let q = r
            .quota
            .ok_or_else(|| Status::from(Error::invalid("set quota needs a quota")))?;
        let guarantee = quota_resources("guarantee", &q.guarantee)?;
        let limit = if q.limit.is_empty() {
            None
        } else {
            Some(quota_resources("limit", &q.limit)?)
        };
        empty(
            self.service
                .set_quota(&caller, q.role, guarantee, limit, r.force)
                .await,
        )
    }

    async fn remove_quota(
        &self,
        r: Request<v1::RemoveQuotaRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        empty(
            self.service
                .remove_quota(&caller, r.into_inner().role)
                .await,
        )
    }

    async fn reserve_resources(
        &self,
        r: Request<v1::ReserveResourcesRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let r = r.into_inner();
        self.resource_op(&caller, r.agent_id, OpKind::Reserve, r.resources)
            .await
    }

    async fn unreserve_resources(
        &self,
        r: Request<v1::UnreserveResourcesRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let r = r.into_inner();
        self.resource_op(&caller, r.agent_id, OpKind::Unreserve, r.resources)
            .await
    }

    async fn create_volumes(
        &self,
        r: Request<v1::VolumesRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let r = r.into_inner();
        self.resource_op(&caller, r.agent_id, OpKind::Create, r.volumes)
            .await
    }

    async fn destroy_volumes(
        &self,
        r: Request<v1::VolumesRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let r = r.into_inner();
        self.resource_op(&caller, r.agent_id, OpKind::Destroy, r.volumes)
            .await
    }

    async fn teardown_framework(
        &self,
        r: Request<v1::TeardownRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        empty(
            self.service
                .teardown_framework(&caller, r.into_inner().framework_id)
                .await,
        )
    }

    async fn drain_agent(
        &self,
        r: Request<v1::DrainAgentRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let r = r.into_inner();
        self.maintenance(
            &caller,
            MaintenanceOp::Drain {
                agent_id: r.agent_id,
                grace_period_seconds: r.grace_period_seconds,
                mark_gone: r.mark_gone,
            },
        )
        .await
    }

    async fn deactivate_agent(
        &self,
        r: Request<v1::AgentRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let agent_id = r.into_inner().agent_id;
        self.maintenance(&caller, MaintenanceOp::Deactivate { agent_id })
            .await
    }

    async fn reactivate_agent(
        &self,
        r: Request<v1::AgentRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let agent_id = r.into_inner().agent_id;
        self.maintenance(&caller, MaintenanceOp::Reactivate { agent_id })
            .await
    }

    async fn mark_agent_gone(
        &self,
        r: Request<v1::AgentRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let agent_id = r.into_inner().agent_id;
        self.maintenance(&caller, MaintenanceOp::MarkGone { agent_id })
            .await
    }

    async fn kill_task(
        &self,
        r: Request<v1::KillTaskRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let r = r.into_inner();
        empty(
            self.service
                .kill_task(&caller, r.framework_id, r.task_id)
                .await,
        )
    }

    async fn get_usage(
        &self,
        r: Request<v1::Empty>,
    ) -> Result<Response<v1::UsageResponse>, Status> {
        reply(self.service.usage(&Caller::of(&r)).await)
    }

    async fn subscribe(
        &self,
        r: Request<v1::Empty>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let events = self.service.subscribe_events(Caller::of(&r)).await?;
        Ok(Response::new(Box::pin(
            events.map(|e| e.map_err(Status::from)),
        )))
    }
}
