//! Read-only views the actor builds on request: the cluster state (agents, frameworks,
//! tasks, offers, roles) and the metrics snapshot. Readers get copies, never references
//! into live state.
//!
//! The metrics gauges are kept in step with the state instead of being counted at each
//! scrape: the actor's agents, frameworks, offers and tasks live in `TalliedMap`s whose
//! tallies (defined here: counts by status or state, scalar sums) follow every change, so
//! a scrape costs the changes since the last one plus the agents in maintenance, never a
//! walk over every agent and task. Debug builds check each scrape against a full recount.

use std::collections::BTreeMap;

use agora_proto::v1;
use agora_resources::{Resources, Scalar};

use super::{AgentEntry, FrameworkEntry, Master, OfferEntry, TaskEntry};
use crate::metrics::{Gauges, Metrics};
use crate::state::agent::AgentStatus;
use crate::state::framework::FrameworkStatus;
use crate::state::stored::{StoredResources, StoredStatus};
use crate::tally::Tally;

/// Per scalar name, a sum in thousandths; names whose sum is zero are left out, so sums
/// built in different orders compare equal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ScalarSums(BTreeMap<String, u64>);

impl ScalarSums {
    fn add(&mut self, name: &str, t: u64) {
        if t == 0 {
            return;
        }
        match self.0.get_mut(name) {
            Some(v) => *v = v.saturating_add(t),
            None => {
                self.0.insert(name.to_string(), t);
            }
        }
    }

    fn sub(&mut self, name: &str, t: u64) {
        if let Some(v) = self.0.get_mut(name) {
            *v = v.saturating_sub(t);
            if *v == 0 {
                self.0.remove(name);
            }
        }
    }

    fn add_bag(&mut self, bag: &StoredResources) {
        bag.for_each_scalar(|n, t| self.add(n, t));
    }

    fn sub_bag(&mut self, bag: &StoredResources) {
        bag.for_each_scalar(|n, t| self.sub(n, t));
    }

    fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }
}

fn count(map: &mut BTreeMap<&'static str, u64>, key: &'static str, add: bool) {
    if add {
        *map.entry(key).or_default() += 1;
    } else if let Some(v) = map.get_mut(key) {
        *v = v.saturating_sub(1);
        if *v == 0 {
            map.remove(key);
        }
    }
}

/// Agents by life-cycle status (maintenance included: it is part of the status), and the
/// totals of the schedulable ones.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct AgentTally {
    by_status: BTreeMap<&'static str, u64>,
    schedulable_total: ScalarSums,
}

impl Tally for AgentTally {
    type Entry = AgentEntry;
    type Mark = (AgentStatus, Option<StoredResources>);

    fn mark(a: &AgentEntry) -> Self::Mark {
        (
            a.status,
            a.status
                .is_schedulable()
                .then(|| StoredResources::from(&a.total)),
        )
    }
    fn add(&mut self, (status, total): &Self::Mark) {
        count(&mut self.by_status, status.name(), true);
        if let Some(t) = total {
            self.schedulable_total.add_bag(t);
        }
    }
    fn sub(&mut self, (status, total): &Self::Mark) {
        count(&mut self.by_status, status.name(), false);
        if let Some(t) = total {
            self.schedulable_total.sub_bag(t);
        }
    }
}

/// Frameworks by status.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct FrameworkTally {
    by_status: BTreeMap<&'static str, u64>,
}

impl Tally for FrameworkTally {
    type Entry = FrameworkEntry;
    type Mark = FrameworkStatus;

    fn mark(f: &FrameworkEntry) -> FrameworkStatus {
        f.status
    }
    fn add(&mut self, s: &FrameworkStatus) {
        count(&mut self.by_status, s.name(), true);
    }
    fn sub(&mut self, s: &FrameworkStatus) {
        count(&mut self.by_status, s.name(), false);
    }
}

/// What outstanding offers hold.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct OfferTally {
    offered: ScalarSums,
}

impl Tally for OfferTally {
    type Entry = OfferEntry;
    type Mark = StoredResources;

    fn mark(o: &OfferEntry) -> StoredResources {
        StoredResources::from(&o.resources)
    }
    fn add(&mut self, r: &StoredResources) {
        self.offered.add_bag(r);
    }
    fn sub(&mut self, r: &StoredResources) {
        self.offered.sub_bag(r);
    }
}

/// Tasks by state, and the resources of the booked ones (what the allocator counts as
/// used).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct TaskTally {
    by_state: BTreeMap<&'static str, u64>,
    used: ScalarSums,
}

impl Tally for TaskTally {
    type Entry = TaskEntry;
    type Mark = (agora_proto::TaskState, Option<StoredResources>);

    fn mark(t: &TaskEntry) -> Self::Mark {
        (t.state, t.booked.then(|| t.resources.clone()))
    }
    fn add(&mut self, (state, used): &Self::Mark) {
        count(&mut self.by_state, state.as_str_name(), true);
        if let Some(r) = used {
            self.used.add_bag(r);
        }
    }
    fn sub(&mut self, (state, used): &Self::Mark) {
        count(&mut self.by_state, state.as_str_name(), false);
        if let Some(r) = used {
            self.used.sub_bag(r);
        }
    }
}

/// Counters plus gauges derived from state, as `/metrics` renders them.
#[derive(Clone, Debug)]
pub struct MetricsSnapshot {
    pub metrics: Metrics,
    pub gauges: Gauges,
}

pub(super) fn task_record(t: &TaskEntry) -> v1::TaskRecord {
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
/// `Resources::scalar` of their sum but without building the sum. Only the recount that
/// checks the tallies walks bags; release builds scrape the tallies alone.
#[cfg(any(test, debug_assertions))]
fn scalar_totals<'a>(bags: impl Iterator<Item = &'a Resources>) -> BTreeMap<&'a str, u64> {
    // A cluster has a handful of scalar names: a short list searched in place beats a map
    // entry per resource.
    let mut sums: Vec<(&str, u64)> = Vec::new();
    for bag in bags {
        for r in bag.iter() {
            if let agora_resources::Value::Scalar(v) = r.value {
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
#[cfg(any(test, debug_assertions))]
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

impl Master {
    /// Per agent: (allocated to tasks, outstanding offers).
    ///
    /// On a schedulable agent a live task counts only once booked: a task the agent
    /// re-registered with as already ended stays live here until its terminal update
    /// arrives, but its resources are free (and may be offered) from the re-registration
    /// on. Off the allocator (deactivated, unreachable) every live task counts.
    fn agent_usage(&self, agent_id: &str) -> (Resources, Resources) {
        let mut used = Resources::new();
        let mut offered = Resources::new();
        let in_allocator = self.agent_in_allocator(agent_id);
        if let Some(a) = self.agents.get(agent_id) {
            for key in &a.tasks {
                if let Some(t) = self
                    .tasks
                    .get(key)
                    .filter(|t| !t.state.is_terminal() && (t.booked || !in_allocator))
                {
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

    /// The gauges of agents, frameworks, tasks, offers and resources, from the tallies:
    /// `O(changes since the last scrape)`.
    fn state_gauges(&mut self) -> Gauges {
        let mut g = Gauges::default();
        let agents = self.agents.tally();
        g.agents_by_status = agents.by_status.clone();
        let total = agents.schedulable_total.clone();
        g.frameworks_by_status = self.frameworks.tally().by_status.clone();
        let tasks = self.tasks.tally();
        g.tasks_by_state = tasks.by_state.clone();
        let used = tasks.used.clone();
        let offered = self.offers.tally().offered.clone();
        g.offers_outstanding = self.offers.len() as u64;
        for (name, t) in &total.0 {
            let units = |t: u64| Scalar::from_thousandths(t).as_f64();
            g.resources.push((
                name.clone(),
                units(*t),
                units(used.get(name)),
                units(offered.get(name)),
            ));
        }
        g
    }

    /// `state_gauges` by walking every agent, task and offer: what the tallies must
    /// always equal (debug builds check it at every scrape, tests after changes).
    #[cfg(any(test, debug_assertions))]
    fn state_gauges_by_walking(&self) -> Gauges {
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
        g
    }

    pub(super) fn metrics_snapshot(&mut self) -> MetricsSnapshot {
        let mut g = self.state_gauges();
        #[cfg(debug_assertions)]
        {
            let walked = self.state_gauges_by_walking();
            debug_assert_eq!(g, walked, "metrics tallies drifted from a full recount");
        }
        for r in self.allocator.role_gauges() {
            for (name, t) in &r.allocated {
                g.role_allocated.push((
                    r.role.clone(),
                    name.clone(),
                    Scalar::from_thousandths(*t).as_f64(),
                ));
            }
            g.role_shares.push((r.role, r.dominant_share, r.weight));
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

    /// The gauges the tallies keep equal a full recount after every kind of change:
    /// inserts, changes through `get_mut` and `values_mut`, removals, maintenance.
    #[test]
    fn tallied_gauges_equal_a_full_recount_after_changes() {
        use std::collections::HashSet;
        use std::sync::Arc;

        use agora_proto::TaskState;

        use crate::clock::ManualClock;
        use crate::config::MasterConfig;
        use crate::registry::{MemRegistry, RegistryState};
        use crate::state::agent::Maintenance;
        use crate::state::offer::OfferState;
        use crate::state::stored::{StatusLog, StoredAgentInfo, StoredTaskInfo};

        let dir = std::env::temp_dir().join(format!("agora-tally-{}", uuid::Uuid::new_v4()));
        let (mut m, _handle, _rx) = Master::new(
            MasterConfig {
                data_dir: dir.clone(),
                ..MasterConfig::default()
            },
            Arc::new(ManualClock::new(1_000_000)),
            Box::new(MemRegistry::default()),
            RegistryState::default(),
        )
        .expect("master");
        let res = |t: &str| Resources::parse(t).expect("valid");
        let check = |m: &mut Master, step: &str| {
            let walked = m.state_gauges_by_walking();
            assert_eq!(m.state_gauges(), walked, "after {step}");
        };
        for (id, total) in [
            ("a1", "cpus:4;mem:1024;ports:[31000-31999]"),
            ("a2", "cpus:8;gpus:1;mem:2048;disk:100"),
            ("a3", "cpus(eng):2;mem:512"),
        ] {
            m.agents.insert(
                id.to_string(),
                AgentEntry {
                    info: StoredAgentInfo::from(v1::AgentInfo::default()),
                    total: res(total),
                    status: AgentStatus::Registered {
                        connected: true,
                        maintenance: Maintenance::Active,
                    },
                    tx: None,
                    epoch: 0,
                    registered_at: 0,
                    last_heartbeat: 0,
                    tasks: HashSet::new(),
                    offers: HashSet::new(),
                    executors: HashSet::new(),
                },
            );
        }
        check(&mut m, "agents");
        let task = |id: &str, agent: &str, r: &str, state: TaskState, booked: bool| TaskEntry {
            info: StoredTaskInfo::from(v1::TaskInfo {
                task_id: id.into(),
                ..Default::default()
            }),
            framework_id: "fw".into(),
            agent_id: agent.into(),
            role: "r".into(),
            resources: StoredResources::from(&res(r)),
            state,
            booked,
            statuses: StatusLog::default(),
            relayed: None,
        };
        let tasks = [
            ("t1", "a1", "cpus:1;mem:64", TaskState::Running, true),
            (
                "t2",
                "a1",
                "cpus:0.5;ports:[31000-31001]",
                TaskState::Staging,
                true,
            ),
            ("t3", "a2", "gpus:1;mem:128", TaskState::Finished, false),
        ];
        for (id, agent, r, state, booked) in tasks {
            m.tasks.insert(
                ("fw".to_string(), id.to_string()),
                task(id, agent, r, state, booked),
            );
        }
        m.offers.insert(
            "o1".into(),
            OfferEntry {
                offer: v1::Offer::default(),
                resources: res("cpus:2;mem:256;ports:[31500-31600]"),
                state: OfferState::Outstanding,
                created_at: 0,
            },
        );
        check(&mut m, "tasks and offers");
        let key = ("fw".to_string(), "t1".to_string());
        if let Some(t) = m.tasks.get_mut(&key) {
            t.state = TaskState::Killed;
            t.booked = false;
        }
        check(&mut m, "a task ended");
        if let Some(a) = m.agents.get_mut("a2") {
            a.status = AgentStatus::Unreachable(Maintenance::Active);
        }
        check(&mut m, "an agent unreachable");
        if let Some(a) = m.agents.get_mut("a1") {
            a.total = res("cpus:4;mem:1024;disk:50;ports:[31000-31999]");
        }
        if let Some(a) = m.agents.get_mut("a3") {
            a.status = AgentStatus::Registered {
                connected: true,
                maintenance: Maintenance::Deactivated,
            };
        }
        if let Some(a) = m.agents.get_mut("a1") {
            a.status = AgentStatus::Registered {
                connected: true,
                maintenance: Maintenance::Draining {
                    mark_gone: false,
                    started: 0,
                },
            };
        }
        check(&mut m, "maintenance and a new total");
        for a in m.agents.values_mut() {
            if let AgentStatus::Registered { maintenance, .. } = a.status {
                a.status = AgentStatus::Registered {
                    connected: false,
                    maintenance,
                };
            }
        }
        check(&mut m, "every agent disconnected");
        m.tasks.remove(&("fw".to_string(), "t2".to_string()));
        m.offers.remove("o1");
        m.agents.remove("a2");
        check(&mut m, "removals");
        let g = m.state_gauges();
        assert_eq!(
            g.tasks_by_state.get(TaskState::Killed.as_str_name()),
            Some(&1)
        );
        assert_eq!(g.agents_by_status.get("draining"), Some(&1));
        assert_eq!(g.agents_by_status.get("deactivated"), Some(&1));
        assert_eq!(g.offers_outstanding, 0);
        // Agents in maintenance are out of the allocator: neither draining a1 nor
        // deactivated a3 counts, and a2 is gone, so no agent offers cpus.
        assert!(
            g.resources.iter().all(|r| r.0 != "cpus"),
            "{:?}",
            g.resources
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
