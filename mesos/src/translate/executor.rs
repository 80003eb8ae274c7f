//! The executor API: Mesos executor `Call`s into Agora's executor requests, Agora's
//! executor events into Mesos executor `Event`s.
//!
//! Owns the shape checks (type known, ids set, the type's message present) and the
//! mapping. It must never decide whether a call is allowed: the agent's state actor does.

use agora_proto::v1 as a;

use super::*;
use crate::schema::executor::{self as x, CallType};

/// What a Mesos executor call asks of the agent.
#[derive(Clone, Debug, PartialEq)]
pub enum ExecutorCall {
    Subscribe(a::ExecutorSubscribeRequest),
    Update(a::ExecutorUpdateRequest),
    Message(a::ExecutorMessageRequest),
    /// HEARTBEAT: nothing to do (the connection itself shows the executor is alive).
    Heartbeat,
}

fn missing(name: &str) -> Refusal {
    Refusal::bad_request(format!("Expecting '{name}' to be present"))
}

pub fn call_to_agora(call: &x::Call) -> Result<ExecutorCall, Refusal> {
    let kind = call
        .r#type
        .and_then(|t| CallType::try_from(t).ok())
        .filter(|t| *t != CallType::UNKNOWN)
        .ok_or_else(|| Refusal::bad_request("Expecting 'type' to be present"))?;
    let framework_id = required("framework_id", &call.framework_id)?;
    let executor_id = required("executor_id", &call.executor_id)?;
    Ok(match kind {
        CallType::SUBSCRIBE => {
            let sub = call.subscribe.clone().unwrap_or_default();
            ExecutorCall::Subscribe(a::ExecutorSubscribeRequest {
                framework_id,
                executor_id,
                unacknowledged_updates: sub
                    .unacknowledged_updates
                    .iter()
                    .enumerate()
                    .map(|(i, u)| {
                        let field = format!("subscribe.unacknowledged_updates[{i}].status");
                        let s = u.status.as_ref().ok_or_else(|| missing(&field))?;
                        status_to_agora(&field, s)
                    })
                    .collect::<Result<_, _>>()?,
                unacknowledged_tasks: sub
                    .unacknowledged_tasks
                    .iter()
                    .enumerate()
                    .map(|(i, t)| task_to_agora(&format!("subscribe.unacknowledged_tasks[{i}]"), t))
                    .collect::<Result<_, _>>()?,
            })
        }
        CallType::UPDATE => {
            let s = call
                .update
                .as_ref()
                .and_then(|u| u.status.as_ref())
                .ok_or_else(|| missing("update.status"))?;
            let mut status = status_to_agora("update.status", s)?;
            status.framework_id = framework_id.clone();
            if status.executor_id.is_empty() {
                status.executor_id = executor_id.clone();
            }
            ExecutorCall::Update(a::ExecutorUpdateRequest {
                framework_id,
                executor_id,
                status: Some(status),
            })
        }
        CallType::MESSAGE => {
            let data = call
                .message
                .as_ref()
                .and_then(|m| m.data.clone())
                .ok_or_else(|| missing("message.data"))?;
            ExecutorCall::Message(a::ExecutorMessageRequest {
                framework_id,
                executor_id,
                data,
            })
        }
        CallType::HEARTBEAT => ExecutorCall::Heartbeat,
        CallType::UNKNOWN => unreachable!("filtered above"),
    })
}

fn typed(t: x::EventType) -> x::Event {
    x::Event {
        r#type: t.n(),
        ..Default::default()
    }
}

/// An Agora executor event as a Mesos one. `framework_id` fills the framework id of
/// SUBSCRIBED's framework info when Agora's leaves it empty (Mesos executors check it).
pub fn event_to_mesos(ev: &a::ExecutorEvent, framework_id: &str) -> Option<x::Event> {
    use a::executor_event::Event as E;
    use x::EventType as T;
    Some(match ev.event.as_ref()? {
        E::Subscribed(s) => {
            let mut framework = s
                .framework
                .as_ref()
                .map(framework_info_to_mesos)
                .unwrap_or_default();
            if framework.id.is_none() {
                framework.id = some_id(framework_id);
            }
            let mut executor = s.executor.as_ref().map(executor_to_mesos);
            if let Some(e) = executor.as_mut()
                && e.framework_id.is_none()
            {
                e.framework_id = some_id(framework_id);
            }
            x::Event {
                subscribed: Some(x::Subscribed {
                    executor_info: executor,
                    framework_info: Some(framework),
                    agent_info: s.agent.as_ref().map(agent_info_to_mesos),
                    container_id: None,
                }),
                ..typed(T::SUBSCRIBED)
            }
        }
        E::Launch(l) => x::Event {
            launch: Some(x::Launch {
                task: l.task.as_ref().map(task_to_mesos),
            }),
            ..typed(T::LAUNCH)
        },
        E::LaunchGroup(l) => x::Event {
            launch_group: Some(x::LaunchGroup {
                task_group: l.task_group.as_ref().map(|g| m::TaskGroupInfo {
                    tasks: g.tasks.iter().map(task_to_mesos).collect(),
                }),
            }),
            ..typed(T::LAUNCH_GROUP)
        },
        E::Kill(k) => x::Event {
            kill: Some(x::Kill {
                task_id: some_id(&k.task_id),
                kill_policy: k.kill_policy.as_ref().map(|p| m::KillPolicy {
                    grace_period: Some(duration_of(p.grace_period_seconds)),
                }),
            }),
            ..typed(T::KILL)
        },
        E::Acknowledged(k) => x::Event {
            acknowledged: Some(x::Acknowledged {
                task_id: some_id(&k.task_id),
                uuid: uuid_to_mesos(&k.uuid),
            }),
            ..typed(T::ACKNOWLEDGED)
        },
        E::Message(msg) => x::Event {
            message: Some(x::Message {
                data: Some(msg.data.clone()),
            }),
            ..typed(T::MESSAGE)
        },
        E::Shutdown(_) => typed(T::SHUTDOWN),
        E::Error(e) => x::Event {
            error: Some(x::Error {
                message: Some(e.message.clone()),
            }),
            ..typed(T::ERROR)
        },
    })
}
