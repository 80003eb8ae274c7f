//! The scheduler API: Mesos `Call`s into Agora's scheduler requests, Agora's scheduler
//! events into Mesos `Event`s.
//!
//! Owns the shape checks Mesos makes before a call reaches its master (the type is known,
//! its message is there, the framework id is set and agrees with the framework info) and
//! the mapping. It must never decide whether a call is allowed: the service layer does.

use agora_proto::v1 as a;

use super::*;
use crate::schema::scheduler::{self as s, CallType};

/// What a Mesos call asks of Agora's service layer.
#[derive(Clone, Debug, PartialEq)]
pub enum SchedulerCall {
    Subscribe(a::SubscribeRequest),
    Teardown(a::TeardownRequest),
    Accept(a::AcceptRequest),
    Decline(a::DeclineRequest),
    Revive(a::ReviveRequest),
    Suppress(a::SuppressRequest),
    Kill(a::KillRequest),
    Shutdown(a::ShutdownRequest),
    Acknowledge(a::AcknowledgeRequest),
    Reconcile(a::ReconcileRequest),
    Message(a::MessageRequest),
    UpdateFramework(a::UpdateFrameworkRequest),
    /// A call Agora answers without changing anything: REQUEST (Mesos's own allocator
    /// ignores it too), ACCEPT_INVERSE_OFFERS and DECLINE_INVERSE_OFFERS (Agora sends no
    /// inverse offers, and Mesos ignores unknown ones). The framework must still be
    /// subscribed: `framework_id` names it.
    NoChange {
        framework_id: String,
    },
}

impl SchedulerCall {
    /// The framework the call is made for ("" for a first SUBSCRIBE).
    pub fn framework_id(&self) -> &str {
        match self {
            SchedulerCall::Subscribe(r) => r.framework.as_ref().map_or("", |f| &f.id),
            SchedulerCall::Teardown(r) => &r.framework_id,
            SchedulerCall::Accept(r) => &r.framework_id,
            SchedulerCall::Decline(r) => &r.framework_id,
            SchedulerCall::Revive(r) => &r.framework_id,
            SchedulerCall::Suppress(r) => &r.framework_id,
            SchedulerCall::Kill(r) => &r.framework_id,
            SchedulerCall::Shutdown(r) => &r.framework_id,
            SchedulerCall::Acknowledge(r) => &r.framework_id,
            SchedulerCall::Reconcile(r) => &r.framework_id,
            SchedulerCall::Message(r) => &r.framework_id,
            SchedulerCall::UpdateFramework(r) => r.framework.as_ref().map_or("", |f| &f.id),
            SchedulerCall::NoChange { framework_id } => framework_id,
        }
    }
}

fn missing(name: &str) -> Refusal {
    Refusal::bad_request(format!("Expecting '{name}' to be present"))
}

fn filters(f: &Option<m::Filters>) -> Option<a::Filters> {
    f.as_ref().map(|f| a::Filters {
        refuse_seconds: f.refuse_seconds,
    })
}

fn roles(r: &Option<s::Roles>) -> Vec<String> {
    r.iter()
        .flat_map(|r| &r.roles)
        .map(|r| role_to_agora(r))
        .collect()
}

fn offer_ids(ids: &[m::OfferId]) -> Vec<String> {
    ids.iter().map(|o| o.text().to_string()).collect()
}

/// The framework description of a SUBSCRIBE or UPDATE_FRAMEWORK; its id must agree
/// with the call's.
fn framework(
    field: &str,
    info: &Option<m::FrameworkInfo>,
    call_id: &str,
) -> Result<a::FrameworkInfo, Refusal> {
    let info = info
        .as_ref()
        .ok_or_else(|| missing(&format!("{field}.framework_info")))?;
    let out = framework_info_to_agora(info);
    if !call_id.is_empty() && call_id != out.id {
        return Err(Refusal::bad_request(format!(
            "'framework_id' ('{}') differs from '{field}.framework_info.id' ('{}')",
            q(call_id),
            q(&out.id)
        )));
    }
    Ok(out)
}

fn operation(field: &str, op: &m::Operation) -> Result<a::Operation, Refusal> {
    use a::operation::Operation as O;
    let kind = op
        .r#type
        .ok_or_else(|| Refusal::bad_request(format!("'{field}.type' is required")))?;
    let body = |name: &str| missing(&format!("{field}.{name}"));
    let o = if kind == m::OperationType::LAUNCH as i32 {
        let l = op.launch.as_ref().ok_or_else(|| body("launch"))?;
        O::Launch(a::operation::Launch {
            tasks: l
                .task_infos
                .iter()
                .enumerate()
                .map(|(i, t)| task_to_agora(&format!("{field}.launch.task_infos[{i}]"), t))
                .collect::<Result<_, _>>()?,
        })
    } else if kind == m::OperationType::LAUNCH_GROUP as i32 {
        let l = op
            .launch_group
            .as_ref()
            .ok_or_else(|| body("launch_group"))?;
        let e = l
            .executor
            .as_ref()
            .ok_or_else(|| body("launch_group.executor"))?;
        O::LaunchGroup(a::operation::LaunchGroup {
            executor: Some(executor_to_agora(
                &format!("{field}.launch_group.executor"),
                e,
            )?),
            task_group: Some(a::TaskGroupInfo {
                tasks: l
                    .task_group
                    .iter()
                    .flat_map(|g| &g.tasks)
                    .enumerate()
                    .map(|(i, t)| {
                        task_to_agora(&format!("{field}.launch_group.task_group.tasks[{i}]"), t)
                    })
                    .collect::<Result<_, _>>()?,
            }),
        })
    } else if kind == m::OperationType::RESERVE as i32 {
        let r = op.reserve.as_ref().ok_or_else(|| body("reserve"))?;
        O::Reserve(a::operation::Reserve {
            resources: resources_to_agora(&format!("{field}.reserve.resources"), &r.resources)?,
        })
    } else if kind == m::OperationType::UNRESERVE as i32 {
        let r = op.unreserve.as_ref().ok_or_else(|| body("unreserve"))?;
        O::Unreserve(a::operation::Unreserve {
            resources: resources_to_agora(&format!("{field}.unreserve.resources"), &r.resources)?,
        })
    } else if kind == m::OperationType::CREATE as i32 {
        let r = op.create.as_ref().ok_or_else(|| body("create"))?;
        O::Create(a::operation::Create {
            volumes: resources_to_agora(&format!("{field}.create.volumes"), &r.volumes)?,
        })
    } else if kind == m::OperationType::DESTROY as i32 {
        let r = op.destroy.as_ref().ok_or_else(|| body("destroy"))?;
        O::Destroy(a::operation::Destroy {
            volumes: resources_to_agora(&format!("{field}.destroy.volumes"), &r.volumes)?,
        })
    } else {
        use crate::json::MesosEnum;
        return Err(Refusal::bad_request(format!(
            "'{field}.type' {} is not supported by Agora",
            m::OperationType::name_of(kind).unwrap_or("UNKNOWN")
        )));
    };
    Ok(a::Operation { operation: Some(o) })
}

/// Translates a Mesos scheduler call, checking its shape as Mesos's master does.
pub fn call_to_agora(call: &s::Call) -> Result<SchedulerCall, Refusal> {
    let kind = call
        .r#type
        .and_then(|t| CallType::try_from(t).ok())
        .filter(|t| *t != CallType::UNKNOWN)
        .ok_or_else(|| Refusal::bad_request("Expecting 'type' to be present"))?;
    let fid = text(&call.framework_id);
    if kind != CallType::SUBSCRIBE && fid.is_empty() {
        return Err(missing("framework_id"));
    }
    let framework_id = fid.clone();
    Ok(match kind {
        CallType::SUBSCRIBE => {
            let sub = call
                .subscribe
                .as_ref()
                .ok_or_else(|| missing("subscribe"))?;
            let info = framework("subscribe", &sub.framework_info, &fid)?;
            SchedulerCall::Subscribe(a::SubscribeRequest {
                framework: Some(info),
                secret: String::new(),
            })
        }
        CallType::TEARDOWN => SchedulerCall::Teardown(a::TeardownRequest { framework_id }),
        CallType::ACCEPT => {
            let x = call.accept.as_ref().ok_or_else(|| missing("accept"))?;
            SchedulerCall::Accept(a::AcceptRequest {
                framework_id,
                offer_ids: offer_ids(&x.offer_ids),
                operations: x
                    .operations
                    .iter()
                    .enumerate()
                    .map(|(i, op)| operation(&format!("accept.operations[{i}]"), op))
                    .collect::<Result<_, _>>()?,
                filters: filters(&x.filters),
            })
        }
        CallType::DECLINE => {
            let x = call.decline.as_ref().ok_or_else(|| missing("decline"))?;
            SchedulerCall::Decline(a::DeclineRequest {
                framework_id,
                offer_ids: offer_ids(&x.offer_ids),
                filters: filters(&x.filters),
            })
        }
        CallType::REVIVE => SchedulerCall::Revive(a::ReviveRequest {
            framework_id,
            roles: roles(&call.revive),
        }),
        CallType::SUPPRESS => SchedulerCall::Suppress(a::SuppressRequest {
            framework_id,
            roles: roles(&call.suppress),
        }),
        CallType::KILL => {
            let x = call.kill.as_ref().ok_or_else(|| missing("kill"))?;
            SchedulerCall::Kill(a::KillRequest {
                framework_id,
                task_id: required("kill.task_id", &x.task_id)?,
                agent_id: text(&x.agent_id),
                kill_policy: seconds_of(
                    &x.kill_policy.as_ref().and_then(|k| k.grace_period.clone()),
                )
                .map(|s| a::KillPolicy {
                    grace_period_seconds: s,
                }),
            })
        }
        CallType::SHUTDOWN => {
            let x = call.shutdown.as_ref().ok_or_else(|| missing("shutdown"))?;
            SchedulerCall::Shutdown(a::ShutdownRequest {
                framework_id,
                executor_id: required("shutdown.executor_id", &x.executor_id)?,
                agent_id: required("shutdown.agent_id", &x.agent_id)?,
            })
        }
        CallType::ACKNOWLEDGE => {
            let x = call
                .acknowledge
                .as_ref()
                .ok_or_else(|| missing("acknowledge"))?;
            let uuid = x
                .uuid
                .as_deref()
                .ok_or_else(|| missing("acknowledge.uuid"))?;
            SchedulerCall::Acknowledge(a::AcknowledgeRequest {
                framework_id,
                agent_id: required("acknowledge.agent_id", &x.agent_id)?,
                task_id: required("acknowledge.task_id", &x.task_id)?,
                uuid: uuid_to_agora("acknowledge.uuid", uuid)?,
            })
        }
        CallType::RECONCILE => {
            let tasks = call
                .reconcile
                .iter()
                .flat_map(|r| &r.tasks)
                .enumerate()
                .map(|(i, t)| {
                    Ok(a::reconcile_request::Task {
                        task_id: required(&format!("reconcile.tasks[{i}].task_id"), &t.task_id)?,
                        agent_id: text(&t.agent_id),
                    })
                })
                .collect::<Result<_, Refusal>>()?;
            SchedulerCall::Reconcile(a::ReconcileRequest {
                framework_id,
                tasks,
            })
        }
        CallType::MESSAGE => {
            let x = call.message.as_ref().ok_or_else(|| missing("message"))?;
            SchedulerCall::Message(a::MessageRequest {
                framework_id,
                agent_id: required("message.agent_id", &x.agent_id)?,
                executor_id: required("message.executor_id", &x.executor_id)?,
                data: x.data.clone().ok_or_else(|| missing("message.data"))?,
            })
        }
        CallType::UPDATE_FRAMEWORK => {
            let x = call
                .update_framework
                .as_ref()
                .ok_or_else(|| missing("update_framework"))?;
            let info = framework("update_framework", &x.framework_info, &fid)?;
            if info.id.is_empty() {
                return Err(missing("update_framework.framework_info.id"));
            }
            SchedulerCall::UpdateFramework(a::UpdateFrameworkRequest {
                framework: Some(info),
            })
        }
        CallType::REQUEST | CallType::ACCEPT_INVERSE_OFFERS | CallType::DECLINE_INVERSE_OFFERS => {
            SchedulerCall::NoChange { framework_id }
        }
        CallType::ACKNOWLEDGE_OPERATION_STATUS | CallType::RECONCILE_OPERATIONS => {
            return Err(Refusal::new(
                501,
                "operation feedback (ACKNOWLEDGE_OPERATION_STATUS, RECONCILE_OPERATIONS) is not supported by Agora",
            ));
        }
        CallType::UNKNOWN => unreachable!("filtered above"),
    })
}

/// What SUBSCRIBED says about the master.
pub fn master_info(id: &str, hostname: &str, ip: std::net::IpAddr, port: u16) -> m::MasterInfo {
    let ip_u32 = match ip {
        // Mesos packs the IPv4 address in network byte order into a uint32.
        std::net::IpAddr::V4(v4) => u32::from_le_bytes(v4.octets()),
        std::net::IpAddr::V6(_) => 0,
    };
    m::MasterInfo {
        id: Some(id.to_string()),
        ip: Some(ip_u32),
        port: Some(u32::from(port)),
        pid: Some(format!("master@{ip}:{port}")),
        hostname: Some(hostname.to_string()),
        version: Some(crate::translate::MESOS_VERSION.to_string()),
        address: Some(m::Address {
            hostname: Some(hostname.to_string()),
            ip: Some(ip.to_string()),
            port: Some(i32::from(port)),
        }),
    }
}

pub fn offer_to_mesos(o: &a::Offer) -> m::Offer {
    m::Offer {
        id: some_id(&o.id),
        framework_id: some_id(&o.framework_id),
        agent_id: some_id(&o.agent_id),
        hostname: Some(o.hostname.clone()),
        resources: resources_to_mesos(&o.resources, Some(&o.role)),
        attributes: o.attributes.iter().map(attribute_to_mesos).collect(),
        allocation_info: Some(m::AllocationInfo {
            role: Some(role_to_mesos(&o.role)),
        }),
        ..Default::default()
    }
}

fn typed(t: s::EventType) -> s::Event {
    s::Event {
        r#type: t.n(),
        ..Default::default()
    }
}

/// An Agora scheduler event as a Mesos event. `master` is what SUBSCRIBED tells.
pub fn event_to_mesos(e: &a::Event, master: &m::MasterInfo) -> Option<s::Event> {
    use a::event::Event as E;
    use s::EventType as T;
    Some(match e.event.as_ref()? {
        E::Subscribed(x) => s::Event {
            subscribed: Some(s::Subscribed {
                framework_id: some_id(&x.framework_id),
                heartbeat_interval_seconds: Some(x.heartbeat_interval_seconds),
                master_info: Some(m::MasterInfo {
                    id: (!x.master_id.is_empty())
                        .then(|| x.master_id.clone())
                        .or_else(|| master.id.clone()),
                    ..master.clone()
                }),
            }),
            ..typed(T::SUBSCRIBED)
        },
        E::Offers(x) => s::Event {
            offers: Some(s::Offers {
                offers: x.offers.iter().map(offer_to_mesos).collect(),
            }),
            ..typed(T::OFFERS)
        },
        E::Rescind(x) => s::Event {
            rescind: Some(s::Rescind {
                offer_id: some_id(&x.offer_id),
            }),
            ..typed(T::RESCIND)
        },
        E::Update(x) => s::Event {
            update: Some(s::Update {
                status: x.status.as_ref().map(status_to_mesos),
            }),
            ..typed(T::UPDATE)
        },
        E::Message(x) => s::Event {
            message: Some(s::Message {
                agent_id: some_id(&x.agent_id),
                executor_id: some_id(&x.executor_id),
                data: Some(x.data.clone()),
            }),
            ..typed(T::MESSAGE)
        },
        E::Failure(x) => s::Event {
            failure: Some(s::Failure {
                agent_id: some_id(&x.agent_id),
                executor_id: some_id(&x.executor_id),
                status: x.exit_code,
            }),
            ..typed(T::FAILURE)
        },
        E::Error(x) => s::Event {
            error: Some(s::Error {
                message: Some(x.message.clone()),
            }),
            ..typed(T::ERROR)
        },
        E::Heartbeat(_) => typed(T::HEARTBEAT),
    })
}
