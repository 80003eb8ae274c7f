//! Operator API service (operators, CLI, web UI -> master). Reads come from snapshots the
//! actor builds; changes go through actor commands like every other call. Every change is
//! checked against the ACLs first, and state reads show only what the caller may view.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use agora_proto::v1::{self, operator_server::Operator};
use futures::Stream;
use tonic::{Request, Response, Status};

use crate::actor::{Command, MaintenanceOp, MasterHandle, OpKind};
use crate::auth::{Action, Caller, Gate};
use agora_resources::Resources;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub struct OperatorService {
    handle: MasterHandle,
    flags: HashMap<String, String>,
    gate: Arc<Gate>,
}

/// The principal of framework `id` as the actor knows it ("" if unknown), the object of
/// teardown_framework.
pub async fn framework_principal(handle: &MasterHandle, id: &str) -> Result<String, Status> {
    let state = handle.ask(|reply| Command::State { reply }).await?;
    Ok(state
        .frameworks
        .into_iter()
        .filter_map(|f| f.info)
        .find(|i| i.id == id)
        .map(|i| i.principal)
        .unwrap_or_default())
}

impl OperatorService {
    async fn maintenance(
        &self,
        caller: &Caller,
        op: MaintenanceOp,
    ) -> Result<Response<v1::Empty>, Status> {
        let agent_id = match &op {
            MaintenanceOp::Deactivate { agent_id }
            | MaintenanceOp::Reactivate { agent_id }
            | MaintenanceOp::Drain { agent_id, .. }
            | MaintenanceOp::MarkGone { agent_id } => agent_id.clone(),
        };
        self.gate.authorize(caller, Action::DrainAgent, &agent_id)?;
        self.handle
            .ask(|reply| Command::Maintenance { op, reply })
            .await??;
        Ok(Response::new(v1::Empty {}))
    }

    async fn resource_op(
        &self,
        agent_id: String,
        kind: OpKind,
        resources: Vec<v1::Resource>,
    ) -> Result<Response<v1::Empty>, Status> {
        self.handle
            .ask(|reply| Command::ResourceOp {
                agent_id,
                kind,
                resources,
                reply,
            })
            .await??;
        Ok(Response::new(v1::Empty {}))
    }

    pub fn new(handle: MasterHandle, flags: HashMap<String, String>, gate: Arc<Gate>) -> Self {
        Self {
            handle,
            flags,
            gate,
        }
    }
}

#[tonic::async_trait]
impl Operator for OperatorService {
    type SubscribeStream = Pin<Box<dyn Stream<Item = Result<v1::OperatorEvent, Status>> + Send>>;

    async fn get_health(
        &self,
        _r: Request<v1::Empty>,
    ) -> Result<Response<v1::HealthResponse>, Status> {
        // Answered by the actor, so a wedged actor shows up as unhealthy (a timeout); a
        // ping, not the cluster state, which is megabytes at 10,000 agents.
        let master_id = self.handle.ask(|reply| Command::Ping { reply }).await?;
        Ok(Response::new(v1::HealthResponse {
            healthy: !master_id.is_empty(),
            leading: true,
        }))
    }

    async fn get_version(
        &self,
        _r: Request<v1::Empty>,
    ) -> Result<Response<v1::VersionResponse>, Status> {
        Ok(Response::new(v1::VersionResponse {
            version: VERSION.to_string(),
            git_sha: option_env!("AGORA_GIT_SHA").unwrap_or("").to_string(),
        }))
    }

    async fn get_flags(
        &self,
        _r: Request<v1::Empty>,
    ) -> Result<Response<v1::FlagsResponse>, Status> {
        Ok(Response::new(v1::FlagsResponse {
            flags: self.flags.clone(),
        }))
    }

    async fn get_state(&self, r: Request<v1::Empty>) -> Result<Response<v1::ClusterState>, Status> {
        let caller = Caller::of(&r);
        let state = self.handle.ask(|reply| Command::State { reply }).await?;
        Ok(Response::new(self.gate.filter_state(&caller, state)))
    }

    async fn get_roles(
        &self,
        r: Request<v1::Empty>,
    ) -> Result<Response<v1::RolesResponse>, Status> {
        let caller = Caller::of(&r);
        let state = self.handle.ask(|reply| Command::State { reply }).await?;
        let state = self.gate.filter_state(&caller, state);
        Ok(Response::new(v1::RolesResponse { roles: state.roles }))
    }

    async fn get_weights(
        &self,
        _r: Request<v1::Empty>,
    ) -> Result<Response<v1::WeightsResponse>, Status> {
        let state = self.handle.ask(|reply| Command::State { reply }).await?;
        Ok(Response::new(v1::WeightsResponse {
            weights: state
                .roles
                .into_iter()
                .map(|r| v1::WeightInfo {
                    role: r.name,
                    weight: r.weight,
                })
                .collect(),
        }))
    }

    async fn update_weights(
        &self,
        r: Request<v1::UpdateWeightsRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let weights: Vec<(String, f64)> = r
            .into_inner()
            .weights
            .into_iter()
            .map(|w| (w.role, w.weight))
            .collect();
        for (role, _) in &weights {
            self.gate.authorize(&caller, Action::UpdateWeights, role)?;
        }
        self.handle
            .ask(|reply| Command::UpdateWeights { weights, reply })
            .await??;
        Ok(Response::new(v1::Empty {}))
    }

    async fn get_quota(
        &self,
        _r: Request<v1::Empty>,
    ) -> Result<Response<v1::QuotaResponse>, Status> {
        let quotas = self.handle.ask(|reply| Command::Quotas { reply }).await?;
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
            .ok_or_else(|| Status::invalid_argument("set quota needs a quota"))?;
        self.gate.authorize(&caller, Action::SetQuota, &q.role)?;
        let guarantee = Resources::from_proto(&q.guarantee)
            .map_err(|e| Status::invalid_argument(format!("quota guarantee: {e}")))?;
        let limit = if q.limit.is_empty() {
            None
        } else {
            Some(
                Resources::from_proto(&q.limit)
                    .map_err(|e| Status::invalid_argument(format!("quota limit: {e}")))?,
            )
        };
        self.handle
            .ask(|reply| Command::SetQuota {
                role: q.role,
                guarantee,
                limit,
                force: r.force,
                reply,
            })
            .await??;
        Ok(Response::new(v1::Empty {}))
    }

    async fn remove_quota(
        &self,
        r: Request<v1::RemoveQuotaRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let role = r.into_inner().role;
        self.gate.authorize(&caller, Action::SetQuota, &role)?;
        self.handle
            .ask(|reply| Command::RemoveQuota { role, reply })
            .await??;
        Ok(Response::new(v1::Empty {}))
    }

    async fn reserve_resources(
        &self,
        r: Request<v1::ReserveResourcesRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        self.gate.authorize_resources(
            &Caller::of(&r),
            Action::ReserveResources,
            &r.get_ref().resources,
        )?;
        let r = r.into_inner();
        self.resource_op(r.agent_id, OpKind::Reserve, r.resources)
            .await
    }

    async fn unreserve_resources(
        &self,
        r: Request<v1::UnreserveResourcesRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        self.gate.authorize_resources(
            &Caller::of(&r),
            Action::UnreserveResources,
            &r.get_ref().resources,
        )?;
        let r = r.into_inner();
        self.resource_op(r.agent_id, OpKind::Unreserve, r.resources)
            .await
    }

    async fn create_volumes(
        &self,
        r: Request<v1::VolumesRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        self.gate.authorize_resources(
            &Caller::of(&r),
            Action::CreateVolume,
            &r.get_ref().volumes,
        )?;
        let r = r.into_inner();
        self.resource_op(r.agent_id, OpKind::Create, r.volumes)
            .await
    }

    async fn destroy_volumes(
        &self,
        r: Request<v1::VolumesRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        self.gate.authorize_resources(
            &Caller::of(&r),
            Action::DestroyVolume,
            &r.get_ref().volumes,
        )?;
        let r = r.into_inner();
        self.resource_op(r.agent_id, OpKind::Destroy, r.volumes)
            .await
    }

    async fn teardown_framework(
        &self,
        r: Request<v1::TeardownRequest>,
    ) -> Result<Response<v1::Empty>, Status> {
        let caller = Caller::of(&r);
        let framework_id = r.into_inner().framework_id;
        if framework_id.is_empty() {
            return Err(Status::invalid_argument("framework_id is empty"));
        }
        if self.gate.acls_configured() {
            let principal = framework_principal(&self.handle, &framework_id).await?;
            self.gate
                .authorize(&caller, Action::TeardownFramework, &principal)?;
        }
        self.handle
            .ask(|reply| Command::OperatorTeardown {
                framework_id: framework_id.clone(),
                reply,
            })
            .await??;
        self.gate.forget_framework(&framework_id);
        Ok(Response::new(v1::Empty {}))
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

    async fn get_usage(
        &self,
        r: Request<v1::Empty>,
    ) -> Result<Response<v1::UsageResponse>, Status> {
        let caller = Caller::of(&r);
        let usage = self.handle.ask(|reply| Command::Usage { reply }).await?;
        let state = if self.gate.acls_configured() {
            Some(self.handle.ask(|reply| Command::State { reply }).await?)
        } else {
            None
        };
        Ok(Response::new(self.gate.filter_usage(&caller, usage, state)))
    }

    async fn subscribe(
        &self,
        r: Request<v1::Empty>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        use futures::StreamExt;
        let mut filter = crate::auth::EventFilter::new(self.gate.clone(), Caller::of(&r));
        let rx = self
            .handle
            .ask(|reply| Command::SubscribeEvents { reply })
            .await?;
        let events = tokio_stream::wrappers::ReceiverStream::new(rx).filter_map(move |item| {
            let out = match item {
                Ok(event) => filter.pass(event).map(Ok),
                Err(e) => Some(Err(e)),
            };
            futures::future::ready(out)
        });
        Ok(Response::new(Box::pin(events)))
    }
}
