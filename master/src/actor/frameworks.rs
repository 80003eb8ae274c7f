//! The actor's scheduler-API half: subscription, every scheduler call, framework
//! disconnection, failover expiry and removal. Every call is validated completely before
//! anything changes, so a refused call leaves the state as it was.

use std::collections::{HashMap, HashSet};

use crate::service::Error;
use agora_proto::TaskState;
use agora_proto::v1::{self, Event, FrameworkCapability};
use agora_resources::Resources;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::operations::Requester;
use super::{FrameworkEntry, Master, SchedulerCall, Subscription, TaskEntry, update_event};
use crate::allocator::{AttributeConstraint, Demand, FrameworkSpec, Predicate, RoleConstraints};
use crate::clock::Millis;
use crate::state::framework::{FrameworkEvent, FrameworkStatus};
use crate::state::offer::OfferEvent;
use crate::state::stored::{StatusLog, StoredResources};
use crate::validate;

// The struct update keeps this compiling while the allocator's spec grows new fields.
#[allow(clippy::needless_update)]
pub(super) fn spec_of(info: &v1::FrameworkInfo) -> FrameworkSpec {
    FrameworkSpec {
        roles: info.roles.clone(),
        revocable: validate::has_capability(info, FrameworkCapability::RevocableResources),
        gpus: validate::has_capability(info, FrameworkCapability::GpuResources),
        min_allocatable: info
            .min_allocatable
            .iter()
            .filter_map(|m| Resources::from_proto(&m.resources).ok())
            .collect(),
        offer_constraints: info
            .offer_constraints
            .iter()
            .map(role_constraints_of)
            .collect(),
        demands: info
            .demands
            .iter()
            .filter_map(|d| {
                Some(Demand {
                    role: d.role.clone(),
                    shape: Resources::from_proto(&d.task_shape).ok()?,
                    count: d.count,
                    same_agent: d.same_agent,
                })
            })
            .collect(),
    }
}

/// Proto offer constraints to the allocator's; a constraint with an unknown predicate
/// can never hold, so it is kept as "attribute matches nothing".
fn role_constraints_of(rc: &v1::RoleConstraints) -> RoleConstraints {
    use v1::attribute_constraint::Predicate as P;
    RoleConstraints {
        role: rc.role.clone(),
        groups: rc
            .groups
            .iter()
            .map(|g| {
                g.constraints
                    .iter()
                    .map(|c| AttributeConstraint {
                        attribute: c.attribute.clone(),
                        predicate: match P::try_from(c.predicate) {
                            Ok(P::Exists) => Predicate::Exists,
                            Ok(P::NotExists) => Predicate::NotExists,
                            Ok(P::Equals) => Predicate::Equals(c.value.clone()),
                            Ok(P::NotEquals) => Predicate::NotEquals(c.value.clone()),
                            Ok(P::Matches) => Predicate::Matches(c.value.clone()),
                            Ok(P::NotMatches) => Predicate::NotMatches(c.value.clone()),
                            Ok(P::Unspecified) | Err(_) => Predicate::Matches("[^\\s\\S]".into()),
                        },
                    })
                    .collect()
            })
            .collect(),
    }
}

impl Master {
    pub(super) fn subscribe(
        &mut self,
        request: v1::SubscribeRequest,
    ) -> Result<Subscription, Error> {
        let mut info = request
            .framework
            .ok_or_else(|| Error::invalid_argument("subscribe needs a framework"))?;
        validate::framework_info(&mut info)?;
        crate::allocator::check_spec(&spec_of(&info)).map_err(Error::invalid_argument)?;
        let now = self.now();
        let id = if info.id.is_empty() {
            self.fresh_id('F')
        } else {
            info.id.clone()
        };
        // The life cycle first: a refused subscription changes nothing.
        let next = match self.frameworks.get(&id) {
            Some(fw) => Some(
                fw.status
                    .on(FrameworkEvent::Subscribe)
                    .map_err(|_| retired_error(&id, fw.status))?,
            ),
            None => None,
        };
        // A framework's principal never changes hands, also not across a master restart
        // (recovered frameworks are not in the edge's ownership map).
        if let Some(old) = self.frameworks.get(&id)
            && !old.info.principal.is_empty()
            && old.info.principal != info.principal
        {
            return Err(Error::permission_denied(format!(
                "framework '{id}' belongs to principal '{}'; principal '{}' cannot subscribe it",
                old.info.principal, info.principal
            )));
        }
        info.id = id.clone();
        let epoch = self.fresh_epoch();
        let (tx, rx) = mpsc::channel(self.config.framework_queue_capacity);

        if let Some(next) = next {
            // Failover or reconnect: the old stream (if any) is superseded and the offers it
            // held are void, since the new scheduler instance never saw them.
            if let Some(old) = self.frameworks.get_mut(&id)
                && let Some(old_tx) = old.tx.take()
            {
                let _ = old_tx.try_send(Ok(Event {
                    event: Some(v1::event::Event::Error(v1::event::Error {
                        message: "superseded by a newer subscription".into(),
                    })),
                }));
            }
            let offers: Vec<String> = self.frameworks[&id].offers.iter().cloned().collect();
            for o in offers {
                self.rescind_offer(&o, "framework re-subscribed", true);
            }
            let spec = spec_of(&info);
            self.allocator
                .update_framework(&id, spec)
                .map_err(|e| Error::internal(e.to_string()))?;
            self.allocator
                .set_framework_active(&id, true)
                .map_err(|e| Error::internal(e.to_string()))?;
            if let Some(fw) = self.frameworks.get_mut(&id) {
                fw.status = next;
                fw.info = info.clone();
                fw.tx = Some(tx.clone());
                fw.epoch = epoch;
                fw.disconnected_at = None;
            }
            info!(framework = %id, name = %info.name, "framework re-subscribed");
            self.emit_framework(&id, false);
        } else {
            self.allocator
                .add_framework(&id, spec_of(&info))
                .map_err(|e| Error::internal(e.to_string()))?;
            self.frameworks.insert(
                id.clone(),
                FrameworkEntry {
                    info: info.clone(),
                    status: FrameworkStatus::Active,
                    tx: Some(tx.clone()),
                    epoch,
                    registered_at: now,
                    disconnected_at: None,
                    offers: HashSet::new(),
                    tasks: HashSet::new(),
                },
            );
            info!(framework = %id, name = %info.name, roles = ?info.roles, "framework subscribed");
            self.emit_framework(&id, true);
        }
        let subscribed = Event {
            event: Some(v1::event::Event::Subscribed(v1::event::Subscribed {
                framework_id: id.clone(),
                heartbeat_interval_seconds: self.config.framework_heartbeat.as_secs_f64(),
                master_id: self.master_id.clone(),
            })),
        };
        // The queue is new and empty: this cannot fail for lack of room.
        let _ = tx.try_send(Ok(subscribed));
        self.persist_framework(&info);
        self.needs_allocation = true;
        Ok(Subscription {
            framework_id: id,
            epoch,
            events: rx,
        })
    }

    /// Whether the framework is torn down or its failover timeout expired.
    pub(super) fn framework_retired(&self, id: &str) -> bool {
        self.frameworks
            .get(id)
            .is_some_and(|f| f.status.is_retired())
    }

    /// The framework must exist and hold a live subscription.
    fn connected_framework(&self, id: &str) -> Result<&FrameworkEntry, Error> {
        if id.is_empty() {
            return Err(Error::invalid_argument("framework_id is empty"));
        }
        match self.frameworks.get(id) {
            None => Err(Error::not_found(format!("unknown framework id '{id}'"))),
            Some(fw) if fw.status.is_retired() => Err(retired_error(id, fw.status)),
            Some(fw) if fw.status != FrameworkStatus::Active => Err(Error::failed_precondition(
                format!("framework '{id}' is not subscribed; subscribe first"),
            )),
            Some(fw) => Ok(fw),
        }
    }

    pub(super) fn scheduler_call(&mut self, call: SchedulerCall) -> Result<(), Error> {
        match call {
            SchedulerCall::Teardown(r) => {
                self.connected_framework(&r.framework_id)?;
                self.remove_framework(
                    &r.framework_id,
                    FrameworkEvent::Teardown,
                    "torn down by the framework",
                );
                Ok(())
            }
            SchedulerCall::Decline(r) => self.decline(r),
            SchedulerCall::Revive(r) => {
                self.connected_framework(&r.framework_id)?;
                self.allocator
                    .revive(&r.framework_id, &r.roles)
                    .map_err(|e| Error::invalid_argument(e.to_string()))?;
                self.needs_allocation = true;
                Ok(())
            }
            SchedulerCall::Suppress(r) => {
                self.connected_framework(&r.framework_id)?;
                self.allocator
                    .suppress(&r.framework_id, &r.roles)
                    .map_err(|e| Error::invalid_argument(e.to_string()))?;
                Ok(())
            }
            SchedulerCall::Kill(r) => self.kill(r),
            SchedulerCall::Shutdown(r) => {
                self.connected_framework(&r.framework_id)?;
                validate::id("executor id", &r.executor_id)?;
                self.known_agent(&r.agent_id)?;
                self.command_agent(
                    &r.agent_id,
                    v1::agent_command::Command::ShutdownExecutor(
                        v1::agent_command::ShutdownExecutor {
                            framework_id: r.framework_id,
                            executor_id: r.executor_id,
                        },
                    ),
                    "retry later",
                )?;
                Ok(())
            }
            SchedulerCall::Acknowledge(r) => self.acknowledge(r),
            SchedulerCall::Reconcile(r) => self.reconcile(r),
            SchedulerCall::Message(r) => {
                self.connected_framework(&r.framework_id)?;
                validate::id("executor id", &r.executor_id)?;
                self.known_agent(&r.agent_id)?;
                self.command_agent(
                    &r.agent_id,
                    v1::agent_command::Command::FrameworkMessage(
                        v1::agent_command::FrameworkMessage {
                            framework_id: r.framework_id,
                            executor_id: r.executor_id,
                            data: r.data,
                        },
                    ),
                    "retry later",
                )?;
                Ok(())
            }
            SchedulerCall::UpdateFramework(r) => {
                let mut info = r
                    .framework
                    .ok_or_else(|| Error::invalid_argument("update needs a framework"))?;
                self.connected_framework(&info.id)?;
                validate::framework_info(&mut info)?;
                crate::allocator::check_spec(&spec_of(&info)).map_err(Error::invalid_argument)?;
                let id = info.id.clone();
                self.allocator
                    .update_framework(&id, spec_of(&info))
                    .map_err(|e| Error::internal(e.to_string()))?;
                self.persist_framework(&info);
                if let Some(fw) = self.frameworks.get_mut(&id) {
                    fw.info = info;
                }
                self.emit_framework(&id, false);
                self.needs_allocation = true;
                Ok(())
            }
        }
    }

    fn known_agent(&self, agent_id: &str) -> Result<(), Error> {
        validate::id("agent id", agent_id)?;
        if !self.agents.contains_key(agent_id) {
            return Err(Error::not_found(format!("unknown agent id '{agent_id}'")));
        }
        Ok(())
    }

    /// Offers named by a call: present, unique, outstanding, the framework's own.
    fn owned_offers(&self, framework_id: &str, offer_ids: &[String]) -> Result<(), Error> {
        if offer_ids.is_empty() {
            return Err(Error::invalid_argument("no offer ids given"));
        }
        let mut seen = HashSet::new();
        for id in offer_ids {
            if !seen.insert(id) {
                return Err(Error::invalid_argument(format!(
                    "offer '{id}' is listed twice"
                )));
            }
            match self.offers.get(id) {
                None => {
                    return Err(Error::not_found(format!(
                        "offer '{id}' is not outstanding (accepted, declined, rescinded, or never made)"
                    )));
                }
                Some(o) if o.offer.framework_id != framework_id => {
                    return Err(Error::permission_denied(format!(
                        "offer '{id}' was made to another framework"
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    pub(super) fn accept(&mut self, r: v1::AcceptRequest) -> Result<v1::AcceptResponse, Error> {
        let fw = self.connected_framework(&r.framework_id)?;
        let fw_info = fw.info.clone();
        self.owned_offers(&r.framework_id, &r.offer_ids)?;
        let refuse_ms = self.reoffer_delay_ms(validate::refuse_ms(
            r.filters.as_ref(),
            self.config.default_refuse_seconds,
            self.config.max_refuse_seconds,
        )?);

        // All offers on one agent and for one role; their resources pooled.
        let first = &self.offers[&r.offer_ids[0]];
        let agent_id = first.offer.agent_id.clone();
        let role = first.offer.role.clone();
        let mut offered = Resources::new();
        for id in &r.offer_ids {
            let o = &self.offers[id];
            if o.offer.agent_id != agent_id {
                return Err(Error::invalid_argument(format!(
                    "offers '{}' and '{id}' are on different agents; accept offers of one agent per call",
                    r.offer_ids[0]
                )));
            }
            if o.offer.role != role {
                return Err(Error::invalid_argument(format!(
                    "offers '{}' and '{id}' are for different roles; accept offers of one role per call",
                    r.offer_ids[0]
                )));
            }
            offered = offered
                .checked_add(&o.resources)
                .map_err(|e| Error::internal(e.to_string()))?;
        }

        // Validate every operation before touching anything.
        let mut remaining = offered.clone();
        let mut launches: Vec<(v1::TaskInfo, Resources)> = Vec::new();
        let mut ids_in_call = HashSet::new();
        // RESERVE/UNRESERVE/CREATE/DESTROY, in call order; a later LAUNCH may use what
        // they produce (it is added to `remaining`).
        let mut conversions = Vec::new();
        let mut planned_total = self
            .agents
            .get(&agent_id)
            .map(|a| a.total.clone())
            .unwrap_or_default();
        let mut executors: HashMap<String, v1::ExecutorInfo> = HashMap::new();
        let mut groups: Vec<(v1::ExecutorInfo, Vec<(v1::TaskInfo, Resources)>)> = Vec::new();
        for (i, op) in r.operations.iter().enumerate() {
            use v1::operation::Operation as Op;
            match &op.operation {
                None => {
                    return Err(Error::invalid_argument(format!("operation {i} is empty")));
                }
                Some(Op::Launch(launch)) => {
                    if launch.tasks.is_empty() {
                        return Err(Error::invalid_argument(format!(
                            "operation {i} (LAUNCH) has no tasks"
                        )));
                    }
                    for task in &launch.tasks {
                        let res = validate::task(task, &agent_id)?;
                        let live = task.executor.as_ref().and_then(|e| {
                            self.live_executor(&agent_id, &r.framework_id, &e.executor_id)
                        });
                        let executor_res =
                            new_executor_resources(task, &r.framework_id, live, &mut executors)?;
                        let tid = &task.task_id;
                        if !ids_in_call.insert(tid.clone()) {
                            return Err(Error::invalid_argument(format!(
                                "duplicate task id '{tid}' in this call"
                            )));
                        }
                        if let Some(existing) =
                            self.tasks.get(&(r.framework_id.clone(), tid.clone()))
                        {
                            return Err(Error::already_exists(format!(
                                "task id '{tid}' is already used by a task in state {}",
                                existing.state.as_str_name()
                            )));
                        }
                        let needed = res
                            .checked_add(&executor_res)
                            .map_err(|e| Error::invalid_argument(e.to_string()))?;
                        remaining = remaining.checked_sub(&needed).map_err(|e| {
                            Error::invalid_argument(format!(
                                "task '{tid}' does not fit in the offered resources ({}): {e}",
                                remaining
                            ))
                        })?;
                        launches.push((task.clone(), res));
                    }
                }
                Some(Op::LaunchGroup(group)) => {
                    let (executor, tasks) = self.check_group(
                        i,
                        group,
                        &r.framework_id,
                        &agent_id,
                        &mut remaining,
                        &mut ids_in_call,
                        &mut executors,
                    )?;
                    groups.push((executor, tasks));
                }
                Some(op @ (Op::Reserve(_) | Op::Unreserve(_) | Op::Create(_) | Op::Destroy(_))) => {
                    let who = Requester::Framework {
                        role: &role,
                        principal: &fw_info.principal,
                    };
                    conversions.push(self.plan_accept_op(
                        i,
                        op,
                        who,
                        &agent_id,
                        &mut remaining,
                        &mut planned_total,
                    )?);
                }
            }
        }
        if (!launches.is_empty() || !groups.is_empty())
            && self.agents.get(&agent_id).is_none_or(|a| a.tx.is_none())
        {
            return Err(Error::unavailable(format!(
                "agent '{agent_id}' is not connected; decline the offer and wait for another"
            )));
        }

        // Apply. The conversions go first: if the allocator refuses one (its book
        // disagrees), they are undone and the offers stay outstanding.
        if !conversions.is_empty() {
            self.apply_conversions(&agent_id, Some((&r.framework_id, &role)), &conversions)?;
        }
        for id in &r.offer_ids {
            self.close_offer(id, OfferEvent::Accept);
            self.metrics.offers_accepted += 1;
        }
        // Executors this call starts: booked once, for as long as they live.
        for (eid, info) in executors {
            if self
                .live_executor(&agent_id, &r.framework_id, &eid)
                .is_none()
            {
                let res = Resources::from_proto(&info.resources).unwrap_or_default();
                self.add_executor(&agent_id, &r.framework_id, &role, info, res, true);
            }
        }
        let mut launched = Vec::new();
        for (mut task, resources) in launches {
            task.agent_id = agent_id.clone();
            task.role = role.clone();
            let key = (r.framework_id.clone(), task.task_id.clone());
            let entry = TaskEntry {
                info: task.clone().into(),
                framework_id: r.framework_id.clone(),
                agent_id: agent_id.clone(),
                role: role.clone(),
                resources: StoredResources::from(&resources),
                state: TaskState::Staging,
                booked: true,
                statuses: StatusLog::default(),
                relayed: None,
            };
            self.tasks.insert(key.clone(), entry);
            self.emit_task_added(&key);
            if let Some(a) = self.agents.get_mut(&agent_id) {
                a.tasks.insert(key.clone());
            }
            if let Some(f) = self.frameworks.get_mut(&r.framework_id) {
                f.tasks.insert(task.task_id.clone());
            }
            launched.push(task.task_id.clone());
            self.metrics.tasks_launched += 1;
            let sent = self.send_agent(
                &agent_id,
                v1::agent_command::Command::RunTask(v1::agent_command::RunTask {
                    framework: Some(fw_info.clone()),
                    task: Some(task),
                }),
            );
            if !sent {
                self.fail_task(
                    &key,
                    TaskState::Dropped,
                    v1::StatusReason::AgentDisconnected,
                    "the agent disconnected before the task could be sent to it",
                );
            }
        }
        for (executor, tasks) in groups {
            launched.extend(self.launch_group(&fw_info, &agent_id, &role, executor, tasks));
        }
        if !remaining.is_empty() {
            let until = self.now().saturating_add(refuse_ms);
            if let Err(e) = self.allocator.recover(
                &agent_id,
                &r.framework_id,
                &role,
                &remaining,
                (refuse_ms > 0).then_some(until),
            ) {
                warn!(error = %e, "recovering unused offer resources");
            }
        }
        self.needs_allocation = true;
        Ok(v1::AcceptResponse {
            launched_task_ids: launched,
        })
    }

    /// A decline filter of at least `min_refuse_ms`: declined resources are not bounced
    /// between frameworks in a tight loop (counted in `decline_filters_raised`).
    fn reoffer_delay_ms(&mut self, refuse_ms: u64) -> u64 {
        if refuse_ms < self.config.min_refuse_ms {
            self.metrics.decline_filters_raised += 1;
            self.config.min_refuse_ms
        } else {
            refuse_ms
        }
    }

    fn decline(&mut self, r: v1::DeclineRequest) -> Result<(), Error> {
        self.connected_framework(&r.framework_id)?;
        self.owned_offers(&r.framework_id, &r.offer_ids)?;
        let refuse_ms = self.reoffer_delay_ms(validate::refuse_ms(
            r.filters.as_ref(),
            self.config.default_refuse_seconds,
            self.config.max_refuse_seconds,
        )?);
        let until = self.now().saturating_add(refuse_ms);
        for id in &r.offer_ids {
            let Some(entry) = self.close_offer(id, OfferEvent::Decline) else {
                continue;
            };
            self.metrics.offers_declined += 1;
            if let Err(e) = self.allocator.recover(
                &entry.offer.agent_id,
                &r.framework_id,
                &entry.offer.role,
                &entry.resources,
                (refuse_ms > 0).then_some(until),
            ) {
                warn!(error = %e, "recovering declined offer");
            }
        }
        self.needs_allocation = true;
        Ok(())
    }

    fn kill(&mut self, r: v1::KillRequest) -> Result<(), Error> {
        self.connected_framework(&r.framework_id)?;
        self.kill_task(r)
    }

    /// An operator's kill: the framework must exist and not be retired, but need not be
    /// subscribed.
    pub(super) fn operator_kill(
        &mut self,
        framework_id: String,
        task_id: String,
    ) -> Result<(), Error> {
        match self.frameworks.get(&framework_id) {
            None => {
                return Err(Error::not_found(format!(
                    "unknown framework id '{framework_id}'"
                )));
            }
            Some(fw) if fw.status.is_retired() => {
                return Err(retired_error(&framework_id, fw.status));
            }
            Some(_) => {}
        }
        self.kill_task(v1::KillRequest {
            framework_id,
            task_id,
            ..Default::default()
        })
    }

    /// Send the kill of a live task to its agent (the framework was checked by the caller).
    fn kill_task(&mut self, r: v1::KillRequest) -> Result<(), Error> {
        validate::id("task id", &r.task_id)?;
        if let Some(kp) = &r.kill_policy {
            validate::seconds("kill_policy grace_period_seconds", kp.grace_period_seconds)?;
        }
        let key = (r.framework_id.clone(), r.task_id.clone());
        let Some(task) = self.tasks.get(&key) else {
            if let Some(done) = self.completed_task(&key) {
                return Err(Error::failed_precondition(format!(
                    "task '{}' already ended ({})",
                    r.task_id,
                    done.state.as_str_name()
                )));
            }
            return Err(Error::not_found(format!(
                "unknown task '{}' of framework '{}'",
                r.task_id, r.framework_id
            )));
        };
        if !r.agent_id.is_empty() && r.agent_id != task.agent_id {
            return Err(Error::invalid_argument(format!(
                "task '{}' runs on agent '{}', not '{}'",
                r.task_id, task.agent_id, r.agent_id
            )));
        }
        if task.state.is_terminal() {
            return Err(Error::failed_precondition(format!(
                "task '{}' already ended ({})",
                r.task_id,
                task.state.as_str_name()
            )));
        }
        let agent_id = task.agent_id.clone();
        let kill_policy = r.kill_policy.or(task.info.kill_policy);
        self.command_agent(
            &agent_id,
            v1::agent_command::Command::KillTask(v1::agent_command::KillTask {
                framework_id: r.framework_id,
                task_id: r.task_id,
                kill_policy,
            }),
            "retry the kill later",
        )
    }

    /// Acknowledgements in one call, each judged as `acknowledge` judges one.
    pub(super) fn acknowledge_batch(
        &mut self,
        r: v1::AcknowledgeBatchRequest,
    ) -> Result<Vec<v1::batch_response::Refused>, Error> {
        self.connected_framework(&r.framework_id)?;
        Ok(self.judge_each(r.acks, Self::acknowledge))
    }

    fn acknowledge(&mut self, r: v1::AcknowledgeRequest) -> Result<(), Error> {
        self.connected_framework(&r.framework_id)?;
        validate::id("task id", &r.task_id)?;
        if r.uuid.is_empty() {
            return Err(Error::invalid_argument("acknowledgement uuid is empty"));
        }
        let key = (r.framework_id.clone(), r.task_id.clone());
        let (agent_id, terminal_acked) = match self.tasks.get(&key) {
            Some(t) => (
                t.agent_id.clone(),
                t.statuses.latest().is_some_and(|s| {
                    s.uuid.is(&r.uuid)
                        && TaskState::try_from(s.state).is_ok_and(|st| st.is_terminal())
                }),
            ),
            None => {
                // An ended task's last ack, or an ack for a task from before a master
                // restart: pass it on to the agent the framework names.
                match self.completed_task(&(r.framework_id.clone(), r.task_id.clone())) {
                    Some(t) => (t.agent_id.clone(), false),
                    None if !r.agent_id.is_empty() => (r.agent_id.clone(), false),
                    None => {
                        return Err(Error::not_found(format!(
                            "unknown task '{}' of framework '{}'",
                            r.task_id, r.framework_id
                        )));
                    }
                }
            }
        };
        if !r.agent_id.is_empty() && r.agent_id != agent_id {
            return Err(Error::invalid_argument(format!(
                "task '{}' runs on agent '{agent_id}', not '{}'",
                r.task_id, r.agent_id
            )));
        }
        // If the agent is away the ack is dropped; the agent re-sends the update after it
        // reconnects and the framework acknowledges again.
        self.send_agent(
            &agent_id,
            v1::agent_command::Command::Acknowledge(v1::agent_command::Acknowledge {
                framework_id: r.framework_id,
                task_id: r.task_id,
                uuid: r.uuid,
            }),
        );
        if terminal_acked {
            self.complete_task(&key);
        }
        Ok(())
    }

    fn reconcile(&mut self, r: v1::ReconcileRequest) -> Result<(), Error> {
        let fw = self.connected_framework(&r.framework_id)?;
        let partition_aware =
            validate::has_capability(&fw.info, FrameworkCapability::PartitionAware);
        for t in &r.tasks {
            validate::id("task id", &t.task_id)?;
        }
        let now = self.now() as i64;
        let answer = |task: &TaskEntry| v1::TaskStatus {
            task_id: task.info.task_id.clone(),
            framework_id: task.framework_id.clone(),
            agent_id: task.agent_id.clone(),
            state: task.state as i32,
            reason: v1::StatusReason::Reconciliation as i32,
            message: task
                .statuses
                .latest()
                .map(|s| s.message().to_string())
                .unwrap_or_default(),
            source: v1::StatusSource::SourceMaster as i32,
            timestamp_ms: now,
            exit_code: task.statuses.latest().and_then(|s| s.exit_code),
            ..v1::TaskStatus::default()
        };
        let mut out = Vec::new();
        if r.tasks.is_empty() {
            for id in &fw.tasks {
                if let Some(t) = self.tasks.get(&(r.framework_id.clone(), id.clone())) {
                    out.push(answer(t));
                }
            }
        } else {
            for t in &r.tasks {
                let key = (r.framework_id.clone(), t.task_id.clone());
                let found = self.tasks.get(&key).or_else(|| self.completed_task(&key));
                if let Some(task) = found {
                    out.push(answer(task));
                    continue;
                }
                // Unknown to the master: what its agent's state allows it to say, if
                // anything (never LOST for a task an agent may still bring back).
                let Some((state, reason, message)) =
                    self.unknown_task_answer(&t.agent_id, partition_aware)
                else {
                    continue;
                };
                out.push(v1::TaskStatus {
                    task_id: t.task_id.clone(),
                    framework_id: r.framework_id.clone(),
                    agent_id: t.agent_id.clone(),
                    state: state as i32,
                    reason: reason as i32,
                    message: message.into(),
                    source: v1::StatusSource::SourceMaster as i32,
                    timestamp_ms: now,
                    ..v1::TaskStatus::default()
                });
            }
        }
        for status in out {
            self.send_event(&r.framework_id, update_event(status));
        }
        Ok(())
    }

    /// The answer to reconciling a task the master does not know, by what it knows of
    /// the agent the framework names (Mesos's rules): none while that agent, or with no
    /// agent named any agent, may still re-register after a master restart; UNREACHABLE
    /// (else LOST) on an unreachable agent; GONE (else LOST) on a removed one; otherwise
    /// UNKNOWN (else LOST).
    fn unknown_task_answer(
        &self,
        agent_id: &str,
        partition_aware: bool,
    ) -> Option<(TaskState, v1::StatusReason, &'static str)> {
        use crate::state::agent::AgentStatus as A;
        let or_lost = |s: TaskState| if partition_aware { s } else { TaskState::Lost };
        let agent = if agent_id.is_empty() {
            if self.agents_recovering() {
                return None;
            }
            None
        } else {
            self.agents.get(agent_id).map(|a| a.status)
        };
        match agent {
            Some(A::Recovering(_)) => None,
            Some(A::Unreachable(_)) => Some((
                or_lost(TaskState::Unreachable),
                v1::StatusReason::AgentUnreachable,
                "the task's agent is unreachable",
            )),
            Some(A::Removed) => Some((
                or_lost(TaskState::Gone),
                v1::StatusReason::AgentRemoved,
                "the task's agent was removed",
            )),
            _ => Some((
                or_lost(TaskState::Unknown),
                v1::StatusReason::TaskUnknown,
                "the master does not know this task",
            )),
        }
    }

    pub(super) fn framework_stream_closed(&mut self, id: &str, epoch: u64) {
        let now = self.now();
        let Some(fw) = self.frameworks.get_mut(id) else {
            return;
        };
        if fw.epoch != epoch {
            return;
        }
        let Ok(next) = fw.status.on(FrameworkEvent::StreamLost) else {
            return;
        };
        fw.status = next;
        fw.tx = None;
        fw.disconnected_at = Some(now);
        info!(framework = %id, failover_timeout_seconds = fw.info.failover_timeout_seconds, "framework disconnected");
        let offers: Vec<String> = fw.offers.iter().cloned().collect();
        if let Err(e) = self.allocator.set_framework_active(id, false) {
            warn!(error = %e, "deactivating framework");
        }
        for o in offers {
            self.rescind_offer(&o, "framework disconnected", true);
        }
        self.emit_framework(id, false);
    }

    pub(super) fn check_failover_timeouts(&mut self, now: Millis) {
        let expired: Vec<String> = self
            .frameworks
            .iter()
            .filter(|(_, f)| {
                f.status.is_failing_over()
                    && f.disconnected_at.is_some_and(|t| {
                        now.saturating_sub(t)
                            >= (f.info.failover_timeout_seconds * 1000.0) as Millis
                    })
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.remove_framework(
                &id,
                FrameworkEvent::FailoverExpired,
                "failover timeout expired",
            );
        }
    }

    /// Retire a framework (`event`: torn down or failover expired): offers rescinded,
    /// tasks killed on their agents, resources returned, its id never used again. The
    /// transition is checked first: a retired or unknown framework is left as it is.
    pub(super) fn remove_framework(&mut self, id: &str, event: FrameworkEvent, reason: &str) {
        let Some(fw) = self.frameworks.get(id) else {
            return;
        };
        let Ok(next) = fw.status.on(event) else {
            return;
        };
        info!(framework = %id, reason, "removing framework");
        let offers: Vec<String> = fw.offers.iter().cloned().collect();
        let tasks: Vec<String> = fw.tasks.iter().cloned().collect();
        for o in offers {
            self.rescind_offer(&o, reason, true);
        }
        let mut agents: HashMap<String, ()> = HashMap::new();
        for t in tasks {
            let key = (id.to_string(), t);
            if let Some(task) = self.tasks.get(&key) {
                agents.insert(task.agent_id.clone(), ());
            }
            self.unbook_task(&key);
        }
        for agent in agents.into_keys() {
            self.send_agent(
                &agent,
                v1::agent_command::Command::ShutdownFramework(
                    v1::agent_command::ShutdownFramework {
                        framework_id: id.to_string(),
                    },
                ),
            );
        }
        self.release_framework_executors(id);
        if let Err(e) = self.allocator.remove_framework(id) {
            warn!(error = %e, "removing framework from allocator");
        }
        // Tasks stay tracked until their agents report them ended; their updates are then
        // acknowledged by the master on the framework's behalf.
        // The entry stays, retired: its status is what refuses the id from now on.
        if let Some(fw) = self.frameworks.get_mut(id) {
            fw.status = next;
            fw.offers.clear();
            fw.tasks.clear();
            fw.disconnected_at = None;
            if let Some(tx) = fw.tx.take() {
                let _ = tx.try_send(Ok(Event {
                    event: Some(v1::event::Event::Error(v1::event::Error {
                        message: format!("framework {reason}"),
                    })),
                }));
            }
        }
        self.backlogged_since.remove(id);
        self.persist(crate::registry::RegistryOp::TearDownFramework { id: id.to_string() });
        let framework_id = id.to_string();
        self.emit(|_| {
            Some(v1::operator_event::Event::FrameworkRemoved(
                v1::operator_event::FrameworkRemoved { framework_id },
            ))
        });
        self.needs_allocation = true;
    }
}

/// Why a retired framework's id is refused.
pub(super) fn retired_error(id: &str, status: FrameworkStatus) -> Error {
    match status {
        FrameworkStatus::TornDown => Error::failed_precondition(format!(
            "framework '{id}' was torn down; subscribe without an id to register anew"
        )),
        FrameworkStatus::FailoverExpired => Error::failed_precondition(format!(
            "framework '{id}' did not re-subscribe within its failover timeout and was \
             removed; subscribe without an id to register anew"
        )),
        other => Error::failed_precondition(format!("framework '{id}' is {}", other.name())),
    }
}

/// The resources of the executor a LAUNCH task names that this call starts: the first
/// time the call names it and it is not running already (a running one's resources are
/// booked; it must be described as it was launched). An executor id used twice in one
/// call must carry the same `ExecutorInfo`.
fn new_executor_resources(
    task: &v1::TaskInfo,
    framework_id: &str,
    live: Option<&v1::ExecutorInfo>,
    seen: &mut HashMap<String, v1::ExecutorInfo>,
) -> Result<Resources, Error> {
    let Some(executor) = &task.executor else {
        return Ok(Resources::new());
    };
    let executor_resources = validate::executor(executor, framework_id)?;
    if let Some(live) = live {
        if live != executor {
            return Err(Error::invalid_argument(format!(
                "executor '{}' is running with a different description; launch on it with the \
                 same ExecutorInfo or use a new executor id",
                executor.executor_id
            )));
        }
        return Ok(Resources::new());
    }
    match seen.get(&executor.executor_id) {
        Some(known) if known != executor => Err(Error::invalid_argument(format!(
            "executor '{}' is described differently by two launches of this call",
            executor.executor_id
        ))),
        Some(_) => Ok(Resources::new()),
        None => {
            seen.insert(executor.executor_id.clone(), executor.clone());
            Ok(executor_resources)
        }
    }
}

impl Master {
    /// Validates LAUNCH_GROUP operation `i` and takes its resources out of `remaining`:
    /// an executor with an id, a non-empty group of tasks with unique, unused ids, and
    /// the executor's plus every task's resources fitting the offer. The executor's
    /// resources (unless it runs already) are booked once, with the executor (`executors.rs`).
    #[allow(clippy::too_many_arguments)]
    fn check_group(
        &self,
        i: usize,
        group: &v1::operation::LaunchGroup,
        framework_id: &str,
        agent_id: &str,
        remaining: &mut Resources,
        ids_in_call: &mut HashSet<String>,
        executors: &mut HashMap<String, v1::ExecutorInfo>,
    ) -> Result<(v1::ExecutorInfo, Vec<(v1::TaskInfo, Resources)>), Error> {
        let Some(executor) = group.executor.clone() else {
            return Err(Error::invalid_argument(format!(
                "operation {i} (LAUNCH_GROUP) has no executor"
            )));
        };
        if executor.executor_id.is_empty() {
            return Err(Error::invalid_argument(format!(
                "operation {i} (LAUNCH_GROUP) executor has no executor_id"
            )));
        }
        let tasks = group
            .task_group
            .as_ref()
            .map(|g| g.tasks.as_slice())
            .unwrap_or(&[]);
        if tasks.is_empty() {
            return Err(Error::invalid_argument(format!(
                "operation {i} (LAUNCH_GROUP) has no tasks"
            )));
        }
        let mut executor_resources = validate::executor(&executor, framework_id)?;
        if executors.contains_key(&executor.executor_id) {
            return Err(Error::invalid_argument(format!(
                "executor '{}' is used by two operations of this call",
                executor.executor_id
            )));
        }
        match self.live_executor(agent_id, framework_id, &executor.executor_id) {
            // Running already: its resources are booked; more tasks join it.
            Some(live) if *live == executor => executor_resources = Resources::new(),
            Some(_) => {
                return Err(Error::invalid_argument(format!(
                    "executor '{}' is running with a different description",
                    executor.executor_id
                )));
            }
            None => {}
        }
        executors.insert(executor.executor_id.clone(), executor.clone());
        *remaining = remaining.checked_sub(&executor_resources).map_err(|e| {
            Error::invalid_argument(format!(
                "executor '{}' does not fit in the offered resources ({remaining}): {e}",
                executor.executor_id
            ))
        })?;
        let mut out = Vec::with_capacity(tasks.len());
        for task in tasks {
            let res = validate::group_task(task, agent_id, &executor.executor_id)?;
            let tid = &task.task_id;
            if !ids_in_call.insert(tid.clone()) {
                return Err(Error::invalid_argument(format!(
                    "duplicate task id '{tid}' in this call"
                )));
            }
            if let Some(existing) = self.tasks.get(&(framework_id.to_string(), tid.clone())) {
                return Err(Error::already_exists(format!(
                    "task id '{tid}' is already used by a task in state {}",
                    existing.state.as_str_name()
                )));
            }
            *remaining = remaining.checked_sub(&res).map_err(|e| {
                Error::invalid_argument(format!(
                    "task '{tid}' of the group does not fit in the offered resources ({remaining}): {e}"
                ))
            })?;
            out.push((task.clone(), res));
        }
        Ok((executor, out))
    }

    /// Books every task of a validated group and sends one RunTaskGroup; returns the
    /// launched task ids.
    fn launch_group(
        &mut self,
        fw_info: &v1::FrameworkInfo,
        agent_id: &str,
        role: &str,
        executor: v1::ExecutorInfo,
        tasks: Vec<(v1::TaskInfo, Resources)>,
    ) -> Vec<String> {
        let framework_id = fw_info.id.clone();
        let mut keys = Vec::with_capacity(tasks.len());
        let mut infos = Vec::with_capacity(tasks.len());
        for (mut task, resources) in tasks {
            task.agent_id = agent_id.to_string();
            task.role = role.to_string();
            let key = (framework_id.clone(), task.task_id.clone());
            let entry = TaskEntry {
                info: task.clone().into(),
                framework_id: framework_id.clone(),
                agent_id: agent_id.to_string(),
                role: role.to_string(),
                resources: StoredResources::from(&resources),
                state: TaskState::Staging,
                booked: true,
                statuses: StatusLog::default(),
                relayed: None,
            };
            self.tasks.insert(key.clone(), entry);
            self.emit_task_added(&key);
            if let Some(a) = self.agents.get_mut(agent_id) {
                a.tasks.insert(key.clone());
            }
            if let Some(f) = self.frameworks.get_mut(&framework_id) {
                f.tasks.insert(task.task_id.clone());
            }
            self.metrics.tasks_launched += 1;
            keys.push(key);
            infos.push(task);
        }
        let sent = self.send_agent(
            agent_id,
            v1::agent_command::Command::RunTaskGroup(v1::agent_command::RunTaskGroup {
                framework: Some(fw_info.clone()),
                executor: Some(executor),
                task_group: Some(v1::TaskGroupInfo { tasks: infos }),
            }),
        );
        if !sent {
            for key in &keys {
                self.fail_task(
                    key,
                    TaskState::Dropped,
                    v1::StatusReason::AgentDisconnected,
                    "the agent disconnected before the task group could be sent to it",
                );
            }
        }
        keys.into_iter().map(|(_, t)| t).collect()
    }
}
