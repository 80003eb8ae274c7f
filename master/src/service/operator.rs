//! Operator calls (operators, the CLI, later the web UI -> master): reads through narrow
//! queries (the whole state only for `state` and, under ACLs, `usage`), and changes
//! checked against the ACLs and the edge limits before the actor sees them. Reads show
//! only what the caller may view. Teardown and maintenance live here once for every
//! transport.

use std::collections::HashMap;

use agora_proto::v1;
use agora_resources::Resources;
use futures::{Stream, StreamExt};

use super::{Error, Result, Service};
use crate::actor::queries::{ExecutorView, ListFilter, ListPage, TaskFilter, TaskPage};
use crate::actor::{Command, MaintenanceOp, OpKind, Query};
use crate::allocator::{ExplainTarget, Explanation, QuotaStatus};
use crate::auth::{Action, Caller, EventFilter};
use crate::validate;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What `/health` and `GetHealth` say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// The acting master's id (empty on a follower: it has no actor yet).
    pub master_id: String,
    /// Whether this master acts (elected, or the only one).
    pub leading: bool,
    /// The leader's `HOST:PORT` when known (a single master advertises none).
    pub leader: Option<String>,
}

/// The ACL action of an operator resource operation.
fn action_of(kind: OpKind) -> Action {
    match kind {
        OpKind::Reserve => Action::ReserveResources,
        OpKind::Unreserve => Action::UnreserveResources,
        OpKind::Create => Action::CreateVolume,
        OpKind::Destroy => Action::DestroyVolume,
    }
}

impl MaintenanceOp {
    pub fn agent_id(&self) -> &str {
        match self {
            MaintenanceOp::Deactivate { agent_id }
            | MaintenanceOp::Reactivate { agent_id }
            | MaintenanceOp::Drain { agent_id, .. }
            | MaintenanceOp::MarkGone { agent_id } => agent_id,
        }
    }
}

impl Service {
    /// Liveness and leadership. A leader (or single master) answers through its actor
    /// (a wedged actor times out); a follower answers itself, naming the leader it knows.
    pub async fn health(&self) -> Result<Health> {
        let leader = self.leadership.leader();
        if !self.leadership.leading() {
            return Ok(Health {
                master_id: String::new(),
                leading: false,
                leader,
            });
        }
        let master_id = self.read(|reply| Command::Ping { reply }).await?;
        Ok(Health {
            master_id,
            leading: true,
            leader,
        })
    }

    pub fn version(&self) -> (&'static str, &'static str) {
        (VERSION, option_env!("AGORA_GIT_SHA").unwrap_or(""))
    }

    pub fn flags(&self) -> HashMap<String, String> {
        (*self.flags).clone()
    }

    /// The URL scheme this master serves HTTP with: `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.flags.get("tls").is_some_and(|v| v == "true") {
            "https"
        } else {
            "http"
        }
    }

    /// The whole cluster state as `caller` may view it (`/api/v1/state`, `GetState`).
    pub async fn state(&self, caller: &Caller) -> Result<v1::ClusterState> {
        let s = self.read(|reply| Command::State { reply }).await?;
        Ok(self.gate.filter_state(caller, s))
    }

    /// Counters and gauges (the numbers behind `/metrics`).
    pub async fn metrics(&self) -> Result<crate::actor::MetricsSnapshot> {
        self.read(|reply| Command::Metrics { reply }).await
    }

    pub async fn metrics_text(&self) -> Result<String> {
        let s = self.read(|reply| Command::Metrics { reply }).await?;
        Ok(crate::metrics::render(&s.metrics, &s.gauges) + &self.gate.render_metrics())
    }

    async fn all_frameworks(&self) -> Result<Vec<v1::FrameworkState>> {
        self.query(|reply| Query::Frameworks { reply }).await
    }

    /// Roles with their weights, shares and the frameworks `caller` may view.
    pub async fn roles(&self, caller: &Caller) -> Result<Vec<v1::RoleState>> {
        let roles = self.query(|reply| Query::Roles { reply }).await?;
        if !self.gate.acls_configured() {
            return Ok(roles);
        }
        let frameworks = self.all_frameworks().await?;
        Ok(self.visible(caller, frameworks, Vec::new(), roles).roles)
    }

    /// The live custom executors of the frameworks `caller` may view.
    pub async fn executors(&self, caller: &Caller) -> Result<Vec<ExecutorView>> {
        let mut all = self.query(|reply| Query::Executors { reply }).await?;
        if self.gate.acls_configured() {
            let frameworks = self.all_frameworks().await?;
            let visible: std::collections::HashSet<String> = self
                .visible(caller, frameworks, Vec::new(), Vec::new())
                .frameworks
                .into_iter()
                .filter_map(|f| f.info.map(|i| i.id))
                .collect();
            all.retain(|e| visible.contains(&e.framework_id));
        }
        Ok(all)
    }

    pub async fn weights(&self) -> Result<Vec<(String, f64)>> {
        self.query(|reply| Query::Weights { reply }).await
    }

    pub async fn update_weights(&self, caller: &Caller, weights: Vec<(String, f64)>) -> Result<()> {
        for (role, _) in &weights {
            validate::role("weight role", role)?;
            self.gate.authorize(caller, Action::UpdateWeights, role)?;
        }
        self.call(|reply| Command::UpdateWeights { weights, reply })
            .await
    }

    pub async fn quotas(&self) -> Result<Vec<QuotaStatus>> {
        self.read(|reply| Command::Quotas { reply }).await
    }

    pub async fn set_quota(
        &self,
        caller: &Caller,
        role: String,
        guarantee: Resources,
        limit: Option<Resources>,
        force: bool,
    ) -> Result<()> {
        validate::role("quota role", &role)?;
        self.gate.authorize(caller, Action::SetQuota, &role)?;
        self.call(|reply| Command::SetQuota {
            role,
            guarantee,
            limit,
            force,
            reply,
        })
        .await
    }

    pub async fn remove_quota(&self, caller: &Caller, role: String) -> Result<()> {
        validate::role("quota role", &role)?;
        self.gate.authorize(caller, Action::SetQuota, &role)?;
        self.call(|reply| Command::RemoveQuota { role, reply })
            .await
    }

    /// An operator's RESERVE / UNRESERVE / CREATE / DESTROY on one agent.
    pub async fn resource_op(
        &self,
        caller: &Caller,
        agent_id: String,
        kind: OpKind,
        resources: Vec<v1::Resource>,
    ) -> Result<()> {
        validate::id("agent id", &agent_id)?;
        validate::resource_limits(kind.name(), &resources)?;
        self.gate
            .authorize_resources(caller, action_of(kind), &resources)?;
        self.call(|reply| Command::ResourceOp {
            agent_id,
            kind,
            resources,
            reply,
        })
        .await
    }

    /// An operator's teardown; the ACL object is the framework's principal, read with a
    /// one-framework query.
    pub async fn teardown_framework(&self, caller: &Caller, framework_id: String) -> Result<()> {
        validate::id("framework id", &framework_id)?;
        if self.gate.acls_configured() {
            let principal = self
                .framework_lookup(&framework_id)
                .await?
                .state
                .and_then(|f| f.info)
                .map(|i| i.principal)
                .unwrap_or_default();
            self.gate
                .authorize(caller, Action::TeardownFramework, &principal)?;
        }
        let id = framework_id.clone();
        self.call(|reply| Command::OperatorTeardown {
            framework_id: id,
            reply,
        })
        .await?;
        self.gate.forget_framework(&framework_id);
        Ok(())
    }

    /// An operator's kill of one task (ACL: teardown_framework on the framework's
    /// principal: whoever may remove a framework may stop one of its tasks).
    pub async fn kill_task(
        &self,
        caller: &Caller,
        framework_id: String,
        task_id: String,
    ) -> Result<()> {
        validate::id("framework id", &framework_id)?;
        validate::id("task id", &task_id)?;
        if self.gate.acls_configured() {
            let principal = self
                .framework_lookup(&framework_id)
                .await?
                .state
                .and_then(|f| f.info)
                .map(|i| i.principal)
                .unwrap_or_default();
            self.gate
                .authorize(caller, Action::TeardownFramework, &principal)?;
        }
        self.call(|reply| Command::OperatorKill {
            framework_id,
            task_id,
            reply,
        })
        .await
    }

    /// Deactivate, reactivate, drain or mark an agent gone (ACL: drain_agent on its id).
    pub async fn maintenance(&self, caller: &Caller, op: MaintenanceOp) -> Result<()> {
        validate::id("agent id", op.agent_id())?;
        self.gate
            .authorize(caller, Action::DrainAgent, op.agent_id())?;
        self.call(|reply| Command::Maintenance { op, reply }).await
    }

    /// Every agent's latest usage report, without the containers `caller` may not view.
    pub async fn usage(&self, caller: &Caller) -> Result<v1::UsageResponse> {
        self.usage_of(caller, None).await
    }

    /// The latest usage report of `agent_id` (or of every agent), without the containers
    /// `caller` may not view. One agent's report is read without the others'.
    pub async fn usage_of(
        &self,
        caller: &Caller,
        agent_id: Option<String>,
    ) -> Result<v1::UsageResponse> {
        let usage = match agent_id {
            None => self.read(|reply| Command::Usage { reply }).await?,
            Some(id) => {
                validate::id("agent id", &id)?;
                let agents = self
                    .query(|reply| Query::AgentUsage { id, reply })
                    .await?
                    .into_iter()
                    .collect();
                v1::UsageResponse { agents }
            }
        };
        // The filter needs every task's user: under ACLs, the whole state.
        let state = if self.gate.acls_configured() {
            Some(self.read(|reply| Command::State { reply }).await?)
        } else {
            None
        };
        Ok(self.gate.filter_usage(caller, usage, state))
    }

    /// The operator event stream as `caller` may view it, starting with a snapshot.
    pub async fn subscribe_events(
        &self,
        caller: Caller,
    ) -> Result<impl Stream<Item = std::result::Result<v1::OperatorEvent, Error>> + Send + use<>>
    {
        self.subscribe_events_from(caller, true).await
    }

    /// The operator event stream as `caller` may view it; the first event is the whole
    /// (visible) state when `snapshot`, else the stream starts with the next change.
    pub async fn subscribe_events_from(
        &self,
        caller: Caller,
        snapshot: bool,
    ) -> Result<impl Stream<Item = std::result::Result<v1::OperatorEvent, Error>> + Send + use<>>
    {
        let mut filter = EventFilter::new(self.gate.clone(), caller);
        let rx = self
            .read(|reply| Command::SubscribeEvents { snapshot, reply })
            .await?;
        Ok(
            tokio_stream::wrappers::ReceiverStream::new(rx).filter_map(move |item| {
                let out = match item {
                    Ok(event) => filter.pass(event).map(Ok),
                    Err(e) => Some(Err(e)),
                };
                futures::future::ready(out)
            }),
        )
    }

    /// Why a role or framework is or is not getting offers. Explaining a framework shows
    /// its allocation: only to callers who may view it.
    pub async fn explain(&self, caller: &Caller, target: ExplainTarget) -> Result<Explanation> {
        match &target {
            ExplainTarget::Role(role) => validate::role("role", role)?,
            ExplainTarget::Framework(id) => {
                validate::id("framework id", id)?;
                if self.gate.acls_configured() {
                    self.framework(caller, id).await.map_err(|e| match e {
                        Error::NotFound(_) => Error::PermissionDenied(format!(
                            "{} is not authorized to view_frameworks on framework '{id}'",
                            caller.principal().map_or(
                                "an unauthenticated caller".to_string(),
                                |p| format!("principal '{}'", super::quote(p))
                            )
                        )),
                        e => e,
                    })?;
                }
            }
        }
        self.call(|reply| Command::Explain { target, reply }).await
    }

    /// One framework, if it exists and `caller` may view it (else `NOT_FOUND`).
    pub async fn framework(&self, caller: &Caller, id: &str) -> Result<v1::FrameworkState> {
        validate::id("framework id", id)?;
        let found = self.framework_lookup(id).await?.state;
        let visible = found.and_then(|f| {
            self.visible(caller, vec![f], Vec::new(), Vec::new())
                .frameworks
                .pop()
        });
        visible.ok_or_else(|| Error::not_found(format!("unknown framework id '{id}'")))
    }

    /// Every framework `caller` may view.
    pub async fn frameworks(&self, caller: &Caller) -> Result<Vec<v1::FrameworkState>> {
        let all = self.all_frameworks().await?;
        Ok(self.visible(caller, all, Vec::new(), Vec::new()).frameworks)
    }

    pub async fn agent(&self, id: &str) -> Result<v1::AgentState> {
        validate::id("agent id", id)?;
        let id = id.to_string();
        let found = self
            .query(|reply| Query::Agent {
                id: id.clone(),
                reply,
            })
            .await?;
        found.ok_or_else(|| Error::not_found(format!("unknown agent id '{id}'")))
    }

    pub async fn agents(&self) -> Result<Vec<v1::AgentState>> {
        self.query(|reply| Query::Agents { reply }).await
    }

    /// One page of the agents `filter` selects (the actor builds only that page).
    pub async fn agent_page(&self, filter: ListFilter) -> Result<ListPage<v1::AgentState>> {
        self.query(|reply| Query::AgentPage { filter, reply }).await
    }

    /// One page of the frameworks `filter` selects that `caller` may view. Without ACLs
    /// the actor builds only that page; under ACLs visibility depends on each framework,
    /// so the visible list is read whole and paged here.
    pub async fn framework_page(
        &self,
        caller: &Caller,
        filter: ListFilter,
    ) -> Result<ListPage<v1::FrameworkState>> {
        if !self.gate.acls_configured() {
            return self
                .query(|reply| Query::FrameworkPage { filter, reply })
                .await;
        }
        let matching: Vec<v1::FrameworkState> = self
            .frameworks(caller)
            .await?
            .into_iter()
            .filter(|f| filter.status.as_deref().is_none_or(|s| f.status == s))
            .filter(|f| {
                filter
                    .text
                    .as_deref()
                    .is_none_or(|t| f.info.as_ref().is_some_and(|i| i.name.contains(t)))
            })
            .collect();
        Ok(ListPage {
            total: matching.len(),
            items: matching
                .into_iter()
                .skip(filter.offset)
                .take(filter.limit)
                .collect(),
        })
    }

    /// One page of tasks; under ACLs, without the tasks `caller` may not view (a page may
    /// then hold fewer than `limit` tasks; `total` counts before that filter).
    pub async fn tasks(&self, caller: &Caller, filter: TaskFilter) -> Result<TaskPage> {
        if let Some(f) = &filter.framework_id {
            validate::id("framework id", f)?;
        }
        if let Some(a) = &filter.agent_id {
            validate::id("agent id", a)?;
        }
        let mut page = self.query(|reply| Query::Tasks { filter, reply }).await?;
        if self.gate.acls_configured() {
            let frameworks = self.all_frameworks().await?;
            page.tasks = self
                .visible(caller, frameworks, page.tasks, Vec::new())
                .tasks;
        }
        Ok(page)
    }

    /// Where `caller` may read the sandbox of task `task_id` of `framework_id`: the
    /// address of the agent's HTTP endpoint, after the `access_sandbox` ACL (object: the
    /// task's user) allowed it. A task the master no longer knows, or on an agent without
    /// an HTTP endpoint, is refused with the reason.
    pub async fn sandbox_agent(
        &self,
        caller: &Caller,
        framework_id: &str,
        task_id: &str,
    ) -> Result<String> {
        validate::id("framework id", framework_id)?;
        validate::id("task id", task_id)?;
        let filter = TaskFilter {
            framework_id: Some(framework_id.to_string()),
            task_id: Some(task_id.to_string()),
            limit: 1,
            ..Default::default()
        };
        let page = self.query(|reply| Query::Tasks { filter, reply }).await?;
        let unknown = || {
            Error::not_found(format!(
                "unknown task '{}' of framework '{}' (or it ended long ago)",
                super::quote(task_id),
                super::quote(framework_id)
            ))
        };
        let task = page.tasks.into_iter().next().ok_or_else(unknown)?;
        if self.gate.acls_configured() {
            let fw_user = self
                .framework_lookup(framework_id)
                .await?
                .state
                .and_then(|f| f.info)
                .map(|i| i.user)
                .unwrap_or_default();
            let user = task
                .task
                .as_ref()
                .map(|t| agora_auth::task_user(t, &fw_user).to_string())
                .unwrap_or(fw_user);
            self.gate
                .authorize(caller, crate::auth::Action::AccessSandbox, &user)?;
        }
        let agent_id = agora_views::state::task_agent(&task).to_string();
        if agent_id.is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "task '{}' has no agent yet",
                super::quote(task_id)
            )));
        }
        let agent = self.agent(&agent_id).await?;
        let address = agent.info.map(|i| i.address).unwrap_or_default();
        if address.is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "agent '{agent_id}' serves no sandbox files: start it with --listen HOST:PORT"
            )));
        }
        Ok(address)
    }
}
