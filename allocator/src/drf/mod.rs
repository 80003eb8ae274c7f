//! The "drf" policy: hierarchical weighted DRF with reservations, quota, filters, offer
//! constraints, and holds/gangs for declared demands.
//!
//! Owns the allocator's book: each agent's total, free part and allocations per
//! (framework, role) "member"; each member's filters; the role tree (`tree.rs`) with
//! weights, quotas and the incrementally sorted order; holds. It must never do I/O, read
//! a clock (time arrives as `now`), or draw randomness other than from its seeded RNG.
//!
//! # One cycle (`allocate(now)`)
//!
//! 1. Expired filters are dropped (a heap ordered by expiry, `O(expired log n)`); holds
//!    past their bounds are dropped.
//! 2. **Demand pass** (only when some eligible framework declared a demand): the
//!    `HoldConfig::max_demands_per_cycle` most under-served demanding members, in fair
//!    order, are offered an agent (or, for a gang, a set of agents) on which their whole
//!    shape fits *now*; a gang gets all its agents in this cycle or none. If nothing fits,
//!    they put a **hold** (at most `max_frameworks` holders at a time, earlier holds
//!    counted) on the agent closest to fitting
//!    (a gang on up to `count` agents, at most `max_agents_per_framework`): from then on
//!    the agent's free resources, up to the shape's amounts, are not offered to others.
//!    **Bounds of a hold**: at most the shape (times `count` on one agent) per held
//!    agent; at most `max_agents_per_framework` agents and `max_frameworks` frameworks at
//!    once; dropped after `max_ms` (default 1 h) whatever happens, after `stall_ms`
//!    (default 10 min) without anything more becoming free on the agent, when the
//!    framework is no longer eligible or withdraws the demand; then the same framework may
//!    not hold that agent for `cooldown_ms` (default 5 min).
//! 3. **Quota stage** (only when quotas are set): agents in a seeded random order; per
//!    agent, roles below their guarantee (lowest weighted share first, at most
//!    `STAGE1_ROLES_PER_AGENT` roles tried per agent) are offered unreserved resources,
//!    the guaranteed kinds cut to what is still owed.
//! 4. **Fair stage**: agents in the same order; per agent, the first member in the sorted
//!    order (role tree by weighted share, then frameworks of the role by share) that is
//!    not filtered there, matches the constraints, and gets a candidate meeting its
//!    minimum is offered everything allocatable to it (cut by quota limits, by the
//!    headroom other roles' unmet guarantees need, and by holds); then the next member
//!    for what is left (e.g. reservations of another role).
//!
//! # Semantics
//!
//! * **Shares**: a role's share is the dominant share of its subtree's consumption =
//!   allocated (offered or used) + unallocated reservations, over the cluster's
//!   non-revocable totals; names in `excluded_from_shares` (default gpus) do not count.
//!   Siblings compare share / weight. The frameworks of exactly a role form a virtual
//!   child of weight 1 ("own leaf") next to its sub-roles. Ties are ordered afresh by
//!   every walk of the order (a salt drawn from the seeded RNG per decision), so every
//!   tie is an independent coin flip and a seed fixes them all.
//! * **Reservations**: resources reserved for role `eng` may be offered to frameworks of
//!   `eng` and of any sub-role (`eng/ml`), never to others; they count toward `eng`'s
//!   consumption whether allocated or not, and, once allocated to `eng/ml`, toward
//!   `eng/ml`'s too.
//! * **Quota**: guarantee <= limit; scalar, unreserved, non-revocable resources only; the
//!   guarantees of a role's nearest quota'd descendants fit in its guarantee, and a
//!   limit is at most the nearest quota'd ancestor's limit; a guarantee above the
//!   cluster total needs `force`. Limits cut unreserved offers only (reservations are
//!   never cut, but count). A role whose every limited kind is reached leaves the order.
//! * **Filters**: per (framework, role, agent), the latest decline wins. A filter blocks,
//!   until it expires, every offer to the member there contained in what it refused (cut
//!   by holds and quota, the offer is compared, not the agent's free part). Armed filters
//!   (known to cover the offer) block by a bit; more becoming free or a hold ending
//!   re-checks and disarms them. `revive` drops all of the framework's filters.
//! * **Capabilities**: revocable resources only to frameworks with the capability, gpus
//!   only to GPU-capable ones.
//! * **Demands**: a framework that declared a demand is offered, outside the demand pass,
//!   only candidates in which one task (or its same-agent group) fits: no crumbs. Only
//!   the scalar part of a shape is considered.
//! * **Cost**: a cycle is `O(agents + offers * (depth * log n) + skipped)`, where
//!   `skipped` counts members passed over because they are filtered or mismatched on an
//!   agent (a bit test each); suppressed and inactive members and capped roles are not
//!   visited at all; agents on which every member is filtered are skipped whole.
//!
//! # Modules
//!
//! The book (`Agent`, `Member`, `Framework`, the role tree) is defined here; each seam
//! lives in its own module: `agents` (agents joining and leaving), `frameworks`
//! (framework events), `members` (eligibility, order, specs), `book` (booking and its
//! audit), `candidates` (what a member may be offered on an agent), `filters`, `holds`
//! (demand pass and holds), `quota` and `quota_validation`, `stages` (quota and fair
//! stages), `explain` (reports), `bitset`.

mod agents;
mod bitset;
mod book;
mod candidates;
mod explain;
mod filters;
mod frameworks;
mod holds;
mod members;
mod quota;
mod quota_validation;
mod stages;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

use agora_resources::{Attributes, Resources};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::constraints::CompiledConstraints;
use crate::kinds::{Amounts, Kinds};
use crate::tree::{Key, Tree};
use crate::{
    Allocation, Allocator, AllocatorConfig, AllocatorError, ExplainTarget, Explanation,
    FrameworkSpec, Millis, QuotaStatus, RoleGauge, RoleShare,
};
use filters::Filter;
use holds::Hold;

#[derive(Clone, Debug)]
struct Agent {
    id: String,
    total: Resources,
    free: Resources,
    attributes: Attributes,
    /// No reservation, revocable or gpus entry: every member's candidate is `free`.
    plain: bool,
    allocations: BTreeMap<u32, Resources>,
    filters: BTreeMap<u32, Filter>,
    /// Every armed filter covers what its member could be offered from any free part
    /// contained in this (checked when the filter was armed or last re-checked).
    filter_basis: Resources,
    /// Armed filters: known to cover what the member would be offered here, so they
    /// block by a bit test. Other filters are compared with each offer.
    filtered: Vec<u64>,
    filtered_count: usize,
    mismatch: Vec<u64>,
    hold: Option<Hold>,
}

#[derive(Clone, Debug)]
struct Need {
    role: String,
    shape: Resources,
    count: u32,
    same_agent: bool,
    /// Scalar amounts one agent must offer (the shape, times count when same_agent).
    per_agent: Amounts,
    /// Scalar amounts of one task.
    task: Amounts,
    /// Tasks wanted across agents (1 unless a gang).
    gang: u32,
    /// Scalar amounts a hold keeps back on one agent: `per_agent`, times `gang` for a
    /// gang (a held agent may end up carrying every task of it; the demand pass serves
    /// the gang as soon as its tasks fit across agents, so the free part held in all
    /// stays below the whole need).
    held: Amounts,
}

#[derive(Clone, Debug)]
struct Member {
    framework: u32,
    role: String,
    node: u32,
    alloc: Amounts,
    /// Revocable scalars allocated (`alloc` counts non-revocable ones only).
    revocable: Amounts,
    /// Agents on which the member has an allocation (of any resource).
    alloc_agents: u32,
    subscribed: bool,
    suppressed: bool,
    listed: Option<Key>,
    filtered_agents: BTreeSet<u32>,
    constraints: Option<CompiledConstraints>,
    need: Option<Need>,
    holds: BTreeSet<u32>,
    cooldowns: BTreeMap<u32, Millis>,
}

#[derive(Clone, Debug)]
struct Framework {
    id: String,
    spec: FrameworkSpec,
    active: bool,
    members: BTreeMap<String, u32>,
}

/// The "drf" policy. See the module documentation.
#[derive(Clone, Debug)]
pub struct DrfAllocator {
    config: AllocatorConfig,
    rng: SmallRng,
    kinds: Kinds,
    tree: Tree,
    agents: Vec<Option<Agent>>,
    /// Looked up (never iterated) on every event naming an agent: a hash map, since a
    /// sorted map compared long shared-prefix ids a dozen times per lookup (memcmp was the
    /// master's top symbol under churn).
    agent_ids: HashMap<String, u32>,
    agent_slots: Vec<u32>,
    frameworks: Vec<Option<Framework>>,
    framework_ids: HashMap<String, u32>,
    framework_slots: Vec<u32>,
    members: Vec<Option<Member>>,
    member_slots: Vec<u32>,
    live_members: usize,
    constrained: BTreeSet<u32>,
    demanding: BTreeSet<u32>,
    held_agents: BTreeSet<u32>,
    /// Non-revocable scalar totals of the cluster: the denominators of every share.
    totals: Amounts,
    /// Free, unreserved, non-revocable scalars of the cluster.
    available: Amounts,
    totals_dirty: bool,
    expiry: BinaryHeap<Reverse<(Millis, u32, u32)>>,
    quota_roles: BTreeSet<u32>,
    /// Sum of top quota roles' unmet guarantees; recomputed at each cycle's start and
    /// kept up to date by `book`.
    required: Amounts,
    /// Reused by `book_amounts` (all, unreserved).
    scratch: (Amounts, Amounts),
}

fn accounting(agent: &str, reason: impl std::fmt::Display) -> AllocatorError {
    AllocatorError::Accounting {
        agent: agent.to_string(),
        reason: reason.to_string(),
    }
}

/// Put `item` into a slot freed by an earlier removal, or a new one; its index.
fn insert_slot<T>(items: &mut Vec<Option<T>>, free: &mut Vec<u32>, item: T) -> u32 {
    match free.pop() {
        Some(i) => {
            items[i as usize] = Some(item);
            i
        }
        None => {
            items.push(Some(item));
            (items.len() - 1) as u32
        }
    }
}

impl DrfAllocator {
    pub fn new(config: AllocatorConfig) -> Self {
        let mut rng = SmallRng::seed_from_u64(config.seed);
        let tree = Tree::new(&mut rng);
        Self {
            kinds: Kinds::new(&config.excluded_from_shares),
            config,
            rng,
            tree,
            agents: Vec::new(),
            agent_ids: HashMap::new(),
            agent_slots: Vec::new(),
            frameworks: Vec::new(),
            framework_ids: HashMap::new(),
            framework_slots: Vec::new(),
            members: Vec::new(),
            member_slots: Vec::new(),
            live_members: 0,
            constrained: BTreeSet::new(),
            demanding: BTreeSet::new(),
            held_agents: BTreeSet::new(),
            totals: Vec::new(),
            available: Vec::new(),
            totals_dirty: false,
            expiry: BinaryHeap::new(),
            quota_roles: BTreeSet::new(),
            required: Vec::new(),
            scratch: (Vec::new(), Vec::new()),
        }
    }

    fn agent(&self, a: u32) -> Option<&Agent> {
        self.agents.get(a as usize).and_then(Option::as_ref)
    }

    fn agent_mut(&mut self, a: u32) -> Option<&mut Agent> {
        self.agents.get_mut(a as usize).and_then(Option::as_mut)
    }

    fn member(&self, m: u32) -> Option<&Member> {
        self.members.get(m as usize).and_then(Option::as_ref)
    }

    fn member_mut(&mut self, m: u32) -> Option<&mut Member> {
        self.members.get_mut(m as usize).and_then(Option::as_mut)
    }

    fn fw(&self, f: u32) -> Option<&Framework> {
        self.frameworks.get(f as usize).and_then(Option::as_ref)
    }

    fn fw_mut(&mut self, f: u32) -> Option<&mut Framework> {
        self.frameworks.get_mut(f as usize).and_then(Option::as_mut)
    }

    fn agent_index(&self, agent: &str) -> Result<u32, AllocatorError> {
        self.agent_ids
            .get(agent)
            .copied()
            .ok_or_else(|| AllocatorError::UnknownAgent(agent.to_string()))
    }

    fn framework_index(&self, framework: &str) -> Result<u32, AllocatorError> {
        self.framework_ids
            .get(framework)
            .copied()
            .ok_or_else(|| AllocatorError::UnknownFramework(framework.to_string()))
    }

    fn member_index(&self, f: u32, role: &str) -> Option<u32> {
        self.fw(f).and_then(|fw| fw.members.get(role).copied())
    }

    fn weight(&self, role: &str) -> f64 {
        self.tree
            .get(role)
            .map(|n| self.tree.node(n).weight)
            .unwrap_or(1.0)
    }

    fn valid_role(role: &str) -> Result<(), AllocatorError> {
        agora_resources::validate_role(role).map_err(|e| AllocatorError::InvalidRole {
            role: role.to_string(),
            reason: e.to_string(),
        })
    }
}

impl Allocator for DrfAllocator {
    fn policy(&self) -> &'static str {
        "drf"
    }

    fn add_agent(&mut self, agent: &str, total: Resources) -> Result<(), AllocatorError> {
        self.add_agent_with_attributes(agent, total, Attributes::default())
    }

    fn add_agent_with_attributes(
        &mut self,
        agent: &str,
        total: Resources,
        attributes: Attributes,
    ) -> Result<(), AllocatorError> {
        self.admit_agent(agent, total, attributes)
    }

    fn remove_agent(&mut self, agent: &str) -> Result<(), AllocatorError> {
        self.retire_agent(agent)
    }

    fn add_framework(
        &mut self,
        framework: &str,
        spec: FrameworkSpec,
    ) -> Result<(), AllocatorError> {
        self.insert_framework(framework, spec)
    }

    fn update_framework(
        &mut self,
        framework: &str,
        spec: FrameworkSpec,
    ) -> Result<(), AllocatorError> {
        self.change_framework(framework, spec)
    }

    fn remove_framework(&mut self, framework: &str) -> Result<(), AllocatorError> {
        self.delete_framework(framework)
    }

    fn set_framework_active(
        &mut self,
        framework: &str,
        active: bool,
    ) -> Result<(), AllocatorError> {
        self.activate_framework(framework, active)
    }

    fn add_allocated(
        &mut self,
        agent: &str,
        framework: &str,
        role: &str,
        resources: &Resources,
    ) -> Result<(), AllocatorError> {
        self.book_in_use(agent, framework, role, resources)
    }

    fn recover(
        &mut self,
        agent: &str,
        framework: &str,
        role: &str,
        resources: &Resources,
        refuse_until: Option<Millis>,
    ) -> Result<(), AllocatorError> {
        self.recover_resources(agent, framework, role, resources, refuse_until)
    }

    fn convert_resources(
        &mut self,
        agent: &str,
        allocated_to: Option<(&str, &str)>,
        from: &Resources,
        to: &Resources,
    ) -> Result<(), AllocatorError> {
        self.convert_booked(agent, allocated_to, from, to)
    }

    fn suppress(&mut self, framework: &str, roles: &[String]) -> Result<(), AllocatorError> {
        self.suppress_roles(framework, roles)
    }

    fn revive(&mut self, framework: &str, roles: &[String]) -> Result<(), AllocatorError> {
        self.revive_roles(framework, roles)
    }

    fn set_weight(&mut self, role: &str, weight: f64) -> Result<(), AllocatorError> {
        if !weight.is_finite() || weight <= 0.0 {
            return Err(AllocatorError::InvalidWeight {
                role: role.to_string(),
                weight,
            });
        }
        Self::valid_role(role)?;
        let n = self.tree.intern(role);
        let node = self.tree.node_mut(n);
        node.weight = weight;
        node.weight_set = true;
        self.tree.sync(n, &self.kinds, &self.totals);
        Ok(())
    }

    fn weights(&self) -> Vec<(String, f64)> {
        self.tree
            .nodes
            .iter()
            .filter(|n| n.weight_set)
            .map(|n| (n.name.clone(), n.weight))
            .collect()
    }

    fn set_quota(
        &mut self,
        role: &str,
        guarantee: Resources,
        limit: Option<Resources>,
        force: bool,
    ) -> Result<(), AllocatorError> {
        self.put_quota(role, guarantee, limit, force)
    }

    fn remove_quota(&mut self, role: &str) -> Result<(), AllocatorError> {
        self.delete_quota(role)
    }

    fn quotas(&self) -> Vec<QuotaStatus> {
        self.quota_statuses()
    }

    fn allocate(&mut self, now: Millis) -> Vec<Allocation> {
        self.expire_filters(now);
        if self.totals_dirty {
            self.resync_after_totals();
        }
        // Agents with something free, in a seeded random order (the demand pass may empty
        // some; the stages skip those).
        let agents = self.agent_order();
        // Typically one offer per agent with something free: reserve once instead of
        // copying the vector as it grows.
        let mut out = Vec::with_capacity(agents.len());
        self.required = if self.quota_roles.is_empty() {
            Vec::new()
        } else {
            self.required_headroom()
        };
        if !self.demanding.is_empty() || !self.held_agents.is_empty() {
            self.demand_pass(now, &mut out);
        }
        if !self.quota_roles.is_empty() {
            self.quota_stage(&agents, &mut out);
        }
        self.fair_stage(&agents, &mut out);
        out
    }

    fn role_shares(&self) -> Vec<RoleShare> {
        self.shares_by_role()
    }

    fn role_gauges(&self) -> Vec<RoleGauge> {
        self.gauges_by_role()
    }

    fn explain(&self, target: &ExplainTarget, now: Millis) -> Result<Explanation, AllocatorError> {
        self.explain_target(target, now)
    }

    fn check_invariants(&self) -> Result<(), String> {
        self.audit()
    }
}
