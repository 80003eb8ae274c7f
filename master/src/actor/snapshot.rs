//! Read-only views the actor builds on request: the cluster state (agents, frameworks,
//! tasks, offers, roles) and the metrics snapshot. Readers get copies, never references
//! into live state.

use std::collections::BTreeMap;

use agora_proto::v1;
use agora_resources::{Resources, Scalar, Value};

use super::{Master, TaskEntry};
use crate::metrics::{Gauges, Metrics};
use crate::state::stored::{StoredResources, StoredStatus};

/// Counters plus gauges derived from state, as `/metrics` renders them.
#[derive(Clone, Debug)]
pub struct MetricsSnapshot {
    pub metrics: Metrics,
    pub gauges: Gauges,
}

fn task_record(t: &TaskEntry) -> v1::TaskRecord {
    let full = |s: &StoredStatus| s.to_status(&t.info.task_id, &t.framework_id, &t.agent_id);
    v1::TaskRecord {
        task: Some(t.info.to_proto()),
        framework_id: t.framework_id.clone(),
        state: t.state as i32,
        latest_status: t.statuses.latest().map(full),
        history: t.statuses.history().iter().map(full).collect(),
    }
}

/// Per scalar name, the sum (thousandths, saturating) over `bags`, like
/// `Resources::scalar` of their sum but without building the sum.
fn scalar_totals<'a>(bags: impl Iterator<Item = &'a Resources>) -> BTreeMap<&'a str, u64> {
    // A cluster has a handful of scalar names: a short list searched in place beats a map
    // entry per resource (this runs over every agent and task on each `/metrics` scrape).
    let mut sums: Vec<(&str, u64)> = Vec::new();
    for bag in bags {
        for r in bag.iter() {
            if let Value::Scalar(v) = r.value {
                let name = r.name.as_str();
                match sums.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, e)) => *e = e.saturating_add(v.thousandths()),
                    None => sums.push((name, v.thousandths())),
                }
            }
        }
    }
    sums.into_iter().collect()
}

/// `scalar_totals` over tasks' stored resources, without decoding them.
fn stored_scalar_totals<'a>(
    bags: impl Iterator<Item = &'a StoredResources>,
) -> BTreeMap<&'a str, u64> {
    let mut sums: BTreeMap<&str, u64> = BTreeMap::new();
    for bag in bags {
        bag.for_each_scalar(|name, t| {
            let e = sums.entry(name).or_default();
            *e = e.saturating_add(t);
        });
    }
    sums
}

fn units(r: &Resources, name: &str) -> f64 {
    r.scalar(name).as_f64()
}

impl Master {
    /// Per agent: (allocated to tasks, outstanding offers).
    fn agent_usage(&self, agent_id: &str) -> (Resources, Resources) {
        let mut used = Resources::new();
        let mut offered = Resources::new();
        if let Some(a) = self.agents.get(agent_id) {
            for key in &a.tasks {
                if let Some(t) = self.tasks.get(key).filter(|t| !t.state.is_terminal()) {
                    used = used
                        .checked_add(&t.resources.to_resources())
                        .unwrap_or(used);
                }
            }
            for o in &a.offers {
                if let Some(o) = self.offers.get(o) {
                    offered = offered.checked_add(&o.resources).unwrap_or(offered);
                }
            }
            for (f, e) in &a.executors {
                if let Some(x) = self
                    .executors
                    .get(&(agent_id.to_string(), f.clone(), e.clone()))
                {
                    used = used.checked_add(&x.resources).unwrap_or(used);
                }
            }
        }
        (used, offered)
    }

    pub(super) fn agent_state(&self, id: &str) -> Option<v1::AgentState> {
        let a = self.agents.get(id)?;
        let (used, offered) = self.agent_usage(id);
        Some(v1::AgentState {
            info: Some(a.info.to_proto()),
            status: self.agent_status_name(id).to_string(),
            total: a.total.to_proto(),
            allocated: used.to_proto(),
            offered: offered.to_proto(),
            registered_at_ms: a.registered_at as i64,
            last_heartbeat_ms: a.last_heartbeat as i64,
        })
    }

    /// Connectivity, overridden by maintenance: draining, deactivated.
    pub(super) fn agent_status_name(&self, id: &str) -> &'static str {
        match self.agents.get(id) {
            None => "unknown",
            Some(a) => self.agent_status_name_of(id, a),
        }
    }

    /// `agent_status_name` for an entry in hand (no second lookup).
    fn agent_status_name_of(&self, _id: &str, a: &super::AgentEntry) -> &'static str {
        a.status.name()
    }

    pub(super) fn framework_state(&self, id: &str) -> Option<v1::FrameworkState> {
        let f = self.frameworks.get(id)?;
        let mut used = Resources::new();
        let mut active = 0;
        for t in &f.tasks {
            if let Some(t) = self
                .tasks
                .get(&(id.to_string(), t.clone()))
                .filter(|t| !t.state.is_terminal())
            {
                used = used
                    .checked_add(&t.resources.to_resources())
                    .unwrap_or(used);
                active += 1;
            }
        }
        let mut offered = Resources::new();
        for o in &f.offers {
            if let Some(o) = self.offers.get(o) {
                offered = offered.checked_add(&o.resources).unwrap_or(offered);
            }
        }
        Some(v1::FrameworkState {
            info: Some(f.info.clone()),
            status: f.status.name().to_string(),
            allocated: used.to_proto(),
            offered: offered.to_proto(),
            active_tasks: active,
            registered_at_ms: f.registered_at as i64,
        })
    }

    pub(super) fn task_record(&self, key: &(String, String)) -> Option<v1::TaskRecord> {
        self.tasks.get(key).map(task_record)
    }

    pub(super) fn cluster_state(&self) -> v1::ClusterState {
        let mut agents: Vec<v1::AgentState> = self
            .agents
            .keys()
            .filter_map(|id| self.agent_state(id))
            .collect();
        agents.sort_by(|a, b| {
            a.info
                .as_ref()
                .map(|i| &i.id)
                .cmp(&b.info.as_ref().map(|i| &i.id))
        });

        let mut frameworks: Vec<v1::FrameworkState> = self
            .frameworks
            .iter()
            .filter(|(_, f)| !f.status.is_retired())
            .filter_map(|(id, _)| self.framework_state(id))
            .collect();
        frameworks.sort_by(|a, b| {
            a.info
                .as_ref()
                .map(|i| &i.id)
                .cmp(&b.info.as_ref().map(|i| &i.id))
        });

        let mut tasks: Vec<v1::TaskRecord> = self.tasks.values().map(task_record).collect();
        tasks.extend(self.completed.iter().map(task_record));
        tasks.sort_by(|a, b| {
            (&a.framework_id, a.task.as_ref().map(|t| &t.task_id))
                .cmp(&(&b.framework_id, b.task.as_ref().map(|t| &t.task_id)))
        });

        let mut offers: Vec<v1::OfferRecord> = self
            .offers
            .values()
            .map(|o| v1::OfferRecord {
                offer: Some(o.offer.clone()),
                created_at_ms: o.created_at as i64,
            })
            .collect();
        offers.sort_by(|a, b| {
            a.offer
                .as_ref()
                .map(|o| &o.id)
                .cmp(&b.offer.as_ref().map(|o| &o.id))
        });

        v1::ClusterState {
            master_id: self.master_id.clone(),
            agents,
            frameworks,
            tasks,
            offers,
            roles: self.roles(),
        }
    }

    pub(super) fn roles(&self) -> Vec<v1::RoleState> {
        let mut by_role: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (id, f) in self
            .frameworks
            .iter()
            .filter(|(_, f)| !f.status.is_retired())
        {
            for r in &f.info.roles {
                by_role.entry(r.clone()).or_default().push(id.clone());
            }
        }
        self.allocator
            .role_shares()
            .into_iter()
            .map(|s| {
                let mut fws = by_role.remove(&s.role).unwrap_or_default();
                fws.sort();
                v1::RoleState {
                    name: s.role,
                    weight: s.weight,
                    allocated: s.allocated.to_proto(),
                    dominant_share: s.dominant_share,
                    frameworks: fws,
                }
            })
            .collect()
    }

    pub(super) fn metrics_snapshot(&self) -> MetricsSnapshot {
        let mut g = Gauges::default();
        for (id, a) in &self.agents {
            *g.agents_by_status
                .entry(self.agent_status_name_of(id, a))
                .or_default() += 1;
        }
        for f in self.frameworks.values() {
            *g.frameworks_by_status.entry(f.status.name()).or_default() += 1;
        }
        for t in self.tasks.values() {
            *g.tasks_by_state.entry(t.state.as_str_name()).or_default() += 1;
        }
        g.offers_outstanding = self.offers.len() as u64;

        // Scalar sums only: `/metrics` is scraped every few seconds and used to add whole
        // bags (`checked_add` copies its accumulator, so every task cost a clone of a
        // growing bag: at 100,000 tasks one scrape held the actor for tens of ms).
        let total = scalar_totals(
            self.agents
                .iter()
                .filter(|(_, a)| a.status.is_schedulable())
                .map(|(_, a)| &a.total),
        );
        let used = stored_scalar_totals(
            self.tasks
                .values()
                .filter(|t| t.booked)
                .map(|t| &t.resources),
        );
        let offered = scalar_totals(self.offers.values().map(|o| &o.resources));
        for (name, t) in &total {
            if *t > 0 {
                let of = |m: &BTreeMap<&str, u64>| {
                    Scalar::from_thousandths(m.get(name).copied().unwrap_or(0)).as_f64()
                };
                g.resources.push((
                    name.to_string(),
                    Scalar::from_thousandths(*t).as_f64(),
                    of(&used),
                    of(&offered),
                ));
            }
        }
        for s in self.allocator.role_shares() {
            for name in s.allocated.names() {
                g.role_allocated.push((
                    s.role.clone(),
                    name.to_string(),
                    units(&s.allocated, name),
                ));
            }
            g.role_shares.push((s.role, s.dominant_share, s.weight));
        }
        g.command_queue_depth = self.handle.queue_depth() as u64;
        g.operator_subscribers = self.subscribers.len() as u64;
        g.operator_subscribers_dropped_slow = self.subscribers.dropped_slow;
        MetricsSnapshot {
            metrics: self.metrics.clone(),
            gauges: g,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The metrics sums equal what adding the bags whole gave (the code they replaced),
    /// reservations, ranges and sets included.
    #[test]
    fn scalar_totals_match_summing_whole_bags() {
        let bags: Vec<Resources> = [
            "cpus:1.5;mem:256;ports:[31000-31001]",
            "cpus(spark):2;mem:1024;disk:10",
            "gpus:1;bugs:{a,b}",
            "",
        ]
        .iter()
        .map(|t| Resources::parse(t).expect("valid"))
        .collect();
        let mut whole = Resources::new();
        for b in &bags {
            whole = whole.checked_add(b).expect("adds");
        }
        let sums = scalar_totals(bags.iter());
        let stored: Vec<StoredResources> = bags.iter().map(StoredResources::from).collect();
        assert_eq!(stored_scalar_totals(stored.iter()), sums);
        for name in whole.names() {
            let want = whole.scalar(name).thousandths();
            assert_eq!(sums.get(name).copied().unwrap_or(0), want, "{name}");
        }
        assert_eq!(sums.get("cpus"), Some(&3500));
        assert!(!sums.contains_key("ports") && !sums.contains_key("bugs"));
    }
}
