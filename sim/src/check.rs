//! The invariants: `cluster` on the master's state after every step, `histories` on what
//! agents generated and frameworks received once the cluster has settled.
//!
//! Pure functions of their inputs; each violation is one line naming what broke.

use std::collections::BTreeMap;

use agora_proto::TaskState;
use agora_proto::v1;
use agora_resources::Resources;

use crate::agent::SimAgent;
use crate::framework::{SimFramework, is_final};

fn resources(what: &str, items: &[v1::Resource]) -> Result<Resources, String> {
    Resources::from_proto(items)
        .map_err(|e| format!("{what}: the master reports invalid resources: {e}"))
}

fn sum(what: &str, a: &Resources, b: &Resources) -> Result<Resources, String> {
    a.checked_add(b).map_err(|e| format!("{what}: {e}"))
}

/// No resource booked twice or below zero: on every agent, what is allocated plus what is
/// offered fits its total; the outstanding offers on an agent add up to what it reports
/// offered; the roles' allocations fit in what the agents have allocated or offered; every live task names a known
/// agent.
pub fn cluster(state: &v1::ClusterState) -> Result<(), String> {
    let mut offers_by_agent: BTreeMap<&str, Resources> = BTreeMap::new();
    for record in &state.offers {
        let Some(offer) = &record.offer else { continue };
        let r = resources(&format!("offer {}", offer.id), &offer.resources)?;
        let entry = offers_by_agent.entry(offer.agent_id.as_str()).or_default();
        *entry = sum(&format!("offers on {}", offer.agent_id), entry, &r)?;
    }
    let mut agents_allocated = Resources::new();
    let mut known_agents = Vec::new();
    for agent in &state.agents {
        let id = agent.info.as_ref().map_or("", |i| i.id.as_str());
        known_agents.push(id);
        let total = resources(&format!("agent {id} total"), &agent.total)?;
        let allocated = resources(&format!("agent {id} allocated"), &agent.allocated)?;
        let offered = resources(&format!("agent {id} offered"), &agent.offered)?;
        let booked = sum(&format!("agent {id}"), &allocated, &offered)?;
        if !total.contains(&booked) {
            return Err(format!(
                "agent {id} ({}): allocated {allocated} + offered {offered} exceeds its total {total}",
                agent.status
            ));
        }
        let outstanding = offers_by_agent.remove(id).unwrap_or_default();
        if outstanding != offered {
            return Err(format!(
                "agent {id}: its outstanding offers hold {outstanding} but it reports {offered} offered"
            ));
        }
        // The allocator counts offered resources as allocated to the role they went to.
        agents_allocated = sum("agents' allocations", &agents_allocated, &booked)?;
    }
    if let Some((agent, r)) = offers_by_agent.into_iter().next() {
        return Err(format!(
            "offers of {r} on agent {agent}, which the master does not list"
        ));
    }
    let mut roles_allocated = Resources::new();
    for role in &state.roles {
        let r = resources(&format!("role {}", role.name), &role.allocated)?;
        roles_allocated = sum("roles' allocations", &roles_allocated, &r)?;
    }
    // Agents out of the allocator (unreachable, deactivated) keep their live tasks in the
    // master's view but not in the roles' allocations: the roles may hold less, never more.
    if !agents_allocated
        .unreserved()
        .contains(&roles_allocated.unreserved())
    {
        return Err(format!(
            "the roles hold {roles_allocated} allocated but the agents {agents_allocated} allocated or offered"
        ));
    }
    for task in &state.tasks {
        let live = !task.state().is_terminal();
        let agent = task.task.as_ref().map_or("", |t| t.agent_id.as_str());
        if live && !known_agents.contains(&agent) {
            return Err(format!(
                "task {} is {:?} on agent {agent}, which the master does not list",
                task.task.as_ref().map_or("", |t| t.task_id.as_str()),
                task.state()
            ));
        }
    }
    Ok(())
}

/// After the cluster settled: every update an agent still in the cluster generated reached
/// its framework, in the order generated; no task has two different final states or anything
/// but repeats after its final state; every task a framework launched or heard of ended in a
/// final state or was reported LOST / UNREACHABLE (or UNKNOWN to a partition-aware
/// framework), after the frameworks' final explicit reconciliation.
pub fn histories(agents: &[SimAgent], frameworks: &[SimFramework]) -> Result<(), String> {
    // uuid -> position in its task's generated sequence.
    let mut position: BTreeMap<&str, usize> = BTreeMap::new();
    for agent in agents {
        for uuids in agent.generated.values() {
            for (i, uuid) in uuids.iter().enumerate() {
                position.insert(uuid.as_str(), i);
            }
        }
    }
    let by_name: BTreeMap<&str, &SimFramework> = frameworks
        .iter()
        .filter_map(|f| f.id.as_deref().map(|id| (id, f)))
        .collect();
    for fw in frameworks {
        for (task, received) in &fw.received {
            let mut last_position = None;
            let mut final_state: Option<TaskState> = None;
            // Reconciliation answers (no uuid) report the master's latest view, which may run
            // ahead of the updates still on their way (as in Mesos): advisory, not part of
            // the ordered stream.
            for update in received.iter().filter(|u| !u.uuid.is_empty()) {
                if let Some(f) = final_state
                    && update.state != f
                {
                    return Err(format!(
                        "{} task {task}: {:?} after its final state {f:?} (history {:?})",
                        fw.name,
                        update.state,
                        received
                            .iter()
                            .map(|u| format!("{:?} {}", u.state, u.uuid))
                            .collect::<Vec<_>>()
                    ));
                }
                if is_final(update.state) {
                    final_state = Some(update.state);
                }
                if update.source_master || update.uuid.is_empty() {
                    continue;
                }
                if let Some(&p) = position.get(update.uuid.as_str()) {
                    if let Some(lp) = last_position
                        && p < lp
                    {
                        return Err(format!(
                            "{} task {task}: agent update {} (#{p}) arrived after #{lp}",
                            fw.name, update.uuid
                        ));
                    }
                    last_position = Some(p);
                }
            }
        }
        for task in fw.launched.iter().chain(fw.received.keys()) {
            let last = fw
                .received
                .get(task)
                .and_then(|r| r.last())
                .map(|u| u.state);
            // UNKNOWN ("no such task") is the answer a partition-aware framework gets for a
            // task whose launch was lost; others are told LOST.
            let ended = last.is_some_and(|s| {
                is_final(s)
                    || matches!(s, TaskState::Lost | TaskState::Unreachable)
                    || (fw.partition_aware && s == TaskState::Unknown)
            });
            if !ended {
                return Err(format!(
                    "{} (partition aware: {}) task {task}: launched but its last state is {last:?}, \
                     neither final nor LOST/UNREACHABLE (nor UNKNOWN for a partition-aware framework)",
                    fw.name, fw.partition_aware
                ));
            }
        }
    }
    for agent in agents {
        if agent.life == crate::agent::Life::Removed {
            continue;
        }
        for ((fw_id, task), uuids) in &agent.generated {
            let Some(fw) = by_name.get(fw_id.as_str()) else {
                return Err(format!(
                    "{}: updates for unknown framework {fw_id}",
                    agent.hostname
                ));
            };
            let received = fw.received.get(task);
            for uuid in uuids {
                let got = received.is_some_and(|r| r.iter().any(|u| &u.uuid == uuid));
                if !got {
                    return Err(format!(
                        "{}: update {uuid} of task {task} never reached {}",
                        agent.hostname, fw.name
                    ));
                }
            }
        }
    }
    Ok(())
}
