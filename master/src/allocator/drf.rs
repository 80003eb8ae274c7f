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
//!    the first `max_frameworks` of them put a **hold** on the agent closest to fitting
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
//!   child of weight 1 ("own leaf") next to its sub-roles. Ties break by a tie-break
//!   drawn from the seeded RNG when the role or member is first seen, so a seed fixes
//!   every tie.
//! * **Reservations**: resources reserved for role `eng` may be offered to frameworks of
//!   `eng` and of any sub-role (`eng/ml`), never to others; they count toward `eng`'s
//!   consumption whether allocated or not, and, once allocated to `eng/ml`, toward
//!   `eng/ml`'s too.
//! * **Quota**: guarantee <= limit; scalar, unreserved, non-revocable resources only; the
//!   guarantees of a role's nearest quota'd descendants fit in its guarantee, and a
//!   limit is at most the nearest quota'd ancestor's limit; a guarantee above the
//!   cluster total needs `force`. Limits cut unreserved offers only (reservations are
//!   never cut, but count). A role whose every limited kind is reached leaves the order.
//! * **Filters**: per (framework, role, agent), the latest decline wins. A filter blocks
//!   while it has not expired and what the member could be offered on the agent is
//!   contained in what it refused; once more becomes free there, it is dropped.
//!   `revive` drops all of the framework's filters.
//! * **Capabilities**: revocable resources only to frameworks with the capability, gpus
//!   only to GPU-capable ones.
//! * **Demands**: a framework that declared a demand is offered, outside the demand pass,
//!   only candidates in which one task (or its same-agent group) fits: no crumbs. Only
//!   the scalar part of a shape is considered.
//! * **Cost**: a cycle is `O(agents + offers * (depth * log n) + skipped)`, where
//!   `skipped` counts members passed over because they are filtered or mismatched on an
//!   agent (a bit test each); suppressed and inactive members and capped roles are not
//!   visited at all; agents on which every member is filtered are skipped whole.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

use agora_resources::{Attributes, Resources, Scalar, Value};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;

use super::constraints::{CompiledConstraints, RoleConstraints};
use super::kinds::{self, Amounts, Kinds};
use super::tree::{Key, Quota, ROOT, Tree};
use super::{
    Allocation, Allocator, AllocatorConfig, AllocatorError, DemandExplain, EXPLAIN_LIST_MAX,
    ExplainTarget, Explanation, FilterInfo, FrameworkExplain, FrameworkRoleExplain, FrameworkSpec,
    HoldInfo, QuotaExplain, QuotaStatus, RoleExplain, RoleShare,
};
use crate::clock::Millis;
use crate::state::stored::StoredResources;

/// Quota roles tried per agent in the quota stage (bounds a cycle's cost when agents
/// suit no quota role).
pub const STAGE1_ROLES_PER_AGENT: usize = 64;

#[derive(Clone, Debug)]
struct Filter {
    /// Compact (`StoredResources`): a master keeps one filter per declining framework on
    /// every agent, and a refused bag of cpus, mem and disk is about 600 bytes as a
    /// `Resources` but 32 as stored (10 frameworks on 4,000 agents held 25 MB of them).
    refused: StoredResources,
    until: Millis,
}

#[derive(Clone, Debug)]
struct Hold {
    member: u32,
    since: Millis,
    last_progress: Millis,
    /// Sum over needed kinds of min(free, need) when progress was last seen.
    mark: u64,
}

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
    /// Every filter blocks for any free part contained in this.
    filter_basis: Resources,
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
}

#[derive(Clone, Debug)]
struct Member {
    framework: u32,
    role: String,
    node: u32,
    alloc: Amounts,
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

fn bit(v: &[u64], i: u32) -> bool {
    v.get(i as usize / 64)
        .is_some_and(|w| w & (1 << (i % 64)) != 0)
}

/// Set bit `i`; true when it was clear.
fn set_bit(v: &mut Vec<u64>, i: u32) -> bool {
    let w = i as usize / 64;
    if v.len() <= w {
        v.resize(w + 1, 0);
    }
    let was = v[w] & (1 << (i % 64)) != 0;
    v[w] |= 1 << (i % 64);
    !was
}

/// Clear bit `i`; true when it was set.
fn clear_bit(v: &mut [u64], i: u32) -> bool {
    match v.get_mut(i as usize / 64) {
        Some(w) => {
            let was = *w & (1 << (i % 64)) != 0;
            *w &= !(1 << (i % 64));
            was
        }
        None => false,
    }
}

fn is_plain(total: &Resources) -> bool {
    total
        .iter()
        .all(|r| r.reservation.is_none() && !r.revocable && r.name != "gpus")
}

/// `cand` with its unreserved non-revocable scalars cut to `allowed` (per kind; missing
/// kinds unbounded). Gpus are cut to whole numbers.
fn chop(kinds: &Kinds, cand: &Resources, allowed: &[u64]) -> Resources {
    let mut out = Resources::new();
    for e in cand {
        let mut e = e.clone();
        if e.reservation.is_none()
            && !e.revocable
            && let Value::Scalar(s) = e.value
            && let Some(k) = kinds.get(&e.name)
        {
            let mut cap = allowed.get(k).copied().unwrap_or(u64::MAX);
            if e.name == "gpus" {
                cap -= cap % 1000;
            }
            if s.thousandths() > cap {
                if cap == 0 {
                    continue;
                }
                e.value = Value::Scalar(Scalar::from_thousandths(cap));
            }
        }
        // Entries come from a valid bag and only shrink, so a refusal cannot happen; if
        // it did, leaving the entry out only makes the offer smaller.
        let _ = out.push(e);
    }
    out
}

fn fits(have: &[u64], need: &[u64]) -> bool {
    need.iter()
        .enumerate()
        .all(|(k, n)| kinds::at(have, k) >= *n)
}

/// How many tasks of `task` fit in `have` (scalars only); `u32::MAX` for an empty task.
fn fit_count(have: &[u64], task: &[u64]) -> u32 {
    let mut n = u64::from(u32::MAX);
    for (k, t) in task.iter().enumerate() {
        if *t > 0 {
            n = n.min(kinds::at(have, k) / t);
        }
    }
    n as u32
}

/// Sum over needed kinds of min(have, need): progress toward a hold's shape.
fn progress(have: &[u64], need: &[u64]) -> u64 {
    need.iter()
        .enumerate()
        .map(|(k, n)| kinds::at(have, k).min(*n))
        .fold(0u64, u64::saturating_add)
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

    // -----------------------------------------------------------------------------
    // Lookups
    // -----------------------------------------------------------------------------

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

    // -----------------------------------------------------------------------------
    // Members: eligibility and order
    // -----------------------------------------------------------------------------

    fn eligible(&self, m: &Member) -> bool {
        m.subscribed && !m.suppressed && self.fw(m.framework).is_some_and(|f| f.active)
    }

    /// Re-key member `m` in its role's order; `sync` also re-keys the role (the caller
    /// may do it for the whole path instead).
    fn relist_with(&mut self, m: u32, sync: bool) {
        let Some(mem) = self.member(m) else {
            return;
        };
        let share = self.eligible(mem).then(|| {
            kinds::share_key(kinds::dominant_share(&self.kinds, &mem.alloc, &self.totals))
        });
        let (old, node) = (mem.listed, mem.node);
        // A fresh tie-break whenever the share changes: every tie is a seeded coin flip.
        let want = match (share, old) {
            (Some(s), Some((o, t))) if s == o => Some((s, t)),
            (Some(s), _) => Some((s, rand::Rng::random(&mut self.rng))),
            (None, _) => None,
        };
        if want == old {
            return;
        }
        {
            let n = self.tree.node_mut(node);
            if let Some((s, t)) = old {
                n.members.remove(&(s, t, m));
            }
            if let Some((s, t)) = want {
                n.members.insert((s, t, m));
            }
        }
        if let Some(mem) = self.member_mut(m) {
            mem.listed = want;
        }
        if old.is_some() != want.is_some() {
            self.tree
                .count_member(node, want.is_some(), &self.kinds, &self.totals);
        } else if sync {
            self.tree.sync(node, &self.kinds, &self.totals);
        }
    }

    /// Put member `m` where it belongs in its role's order (or out of it).
    fn relist(&mut self, m: u32) {
        self.relist_with(m, true);
    }

    fn need_of(&self, spec: &FrameworkSpec, role: &str) -> Option<Need> {
        let d = spec.demands.iter().find(|d| {
            d.role == role || (d.role.is_empty() && spec.roles.first().is_some_and(|r| r == role))
        })?;
        let count = d.count.max(1);
        let task = self.kinds.amounts(&d.shape);
        if kinds::is_zero(&task) {
            return None;
        }
        let (per_agent, gang) = if d.same_agent {
            (
                task.iter()
                    .map(|t| t.saturating_mul(u64::from(count)))
                    .collect(),
                1,
            )
        } else {
            (task.clone(), count)
        };
        Some(Need {
            role: role.to_string(),
            shape: d.shape.clone(),
            count,
            same_agent: d.same_agent,
            per_agent,
            task,
            gang,
        })
    }

    fn compile_constraints(
        framework: &str,
        spec: &FrameworkSpec,
    ) -> Result<BTreeMap<String, CompiledConstraints>, AllocatorError> {
        let mut by_role: BTreeMap<&str, RoleConstraints> = BTreeMap::new();
        for rc in &spec.offer_constraints {
            let slot = by_role.entry(&rc.role).or_insert_with(|| RoleConstraints {
                role: rc.role.clone(),
                groups: Vec::new(),
            });
            slot.groups.extend(rc.groups.iter().cloned());
        }
        let mut out = BTreeMap::new();
        for (role, rc) in by_role {
            let c = CompiledConstraints::compile(&rc).map_err(|reason| {
                AllocatorError::InvalidConstraint {
                    framework: framework.to_string(),
                    reason,
                }
            })?;
            if !c.is_empty() {
                out.insert(role.to_string(), c);
            }
        }
        Ok(out)
    }

    /// Re-evaluate member `m`'s constraints on every agent.
    fn refresh_mismatch(&mut self, m: u32) {
        let constraints = self.member(m).and_then(|x| x.constraints.clone());
        for agent in self.agents.iter_mut().flatten() {
            let bad = constraints
                .as_ref()
                .is_some_and(|c| !c.matches(&agent.attributes));
            if bad {
                set_bit(&mut agent.mismatch, m);
            } else {
                clear_bit(&mut agent.mismatch, m);
            }
        }
        if constraints.is_some() {
            self.constrained.insert(m);
        } else {
            self.constrained.remove(&m);
        }
    }

    fn new_member(&mut self, f: u32, role: &str, subscribed: bool) -> u32 {
        let node = self.tree.intern(role);
        let member = Member {
            framework: f,
            role: role.to_string(),
            node,
            alloc: Vec::new(),
            subscribed,
            suppressed: false,
            listed: None,
            filtered_agents: BTreeSet::new(),
            constraints: None,
            need: None,
            holds: BTreeSet::new(),
            cooldowns: BTreeMap::new(),
        };
        let m = insert_slot(&mut self.members, &mut self.member_slots, member);
        self.live_members += 1;
        if let Some(fw) = self.fw_mut(f) {
            fw.members.insert(role.to_string(), m);
        }
        m
    }

    /// Apply `spec` to framework `f`'s members (subscription, constraints, demands).
    fn apply_spec(
        &mut self,
        f: u32,
        constraints: BTreeMap<String, CompiledConstraints>,
    ) -> Result<(), AllocatorError> {
        let Some(fw) = self.fw(f) else {
            return Ok(());
        };
        let spec = fw.spec.clone();
        let existing: Vec<(String, u32)> =
            fw.members.iter().map(|(r, m)| (r.clone(), *m)).collect();
        for (role, m) in existing {
            if !spec.roles.contains(&role)
                && let Some(mem) = self.member_mut(m)
            {
                mem.subscribed = false;
                mem.suppressed = false;
            }
        }
        for role in &spec.roles {
            let m = match self.member_index(f, role) {
                Some(m) => {
                    if let Some(mem) = self.member_mut(m) {
                        mem.subscribed = true;
                    }
                    m
                }
                None => self.new_member(f, role, true),
            };
            let c = constraints.get(role).cloned();
            let had = self.member(m).is_some_and(|x| x.constraints.is_some());
            let need = self.need_of(&spec, role);
            if let Some(mem) = self.member_mut(m) {
                mem.constraints = c;
                mem.need = need;
            }
            if had || constraints.contains_key(role) {
                self.refresh_mismatch(m);
            }
        }
        let all: Vec<u32> = self
            .fw(f)
            .map(|fw| fw.members.values().copied().collect())
            .unwrap_or_default();
        for m in all {
            let demanding = self
                .member(m)
                .is_some_and(|x| x.subscribed && x.need.is_some());
            if demanding {
                self.demanding.insert(m);
            } else {
                self.demanding.remove(&m);
                self.drop_holds(m, None);
            }
            self.relist(m);
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------
    // Candidates
    // -----------------------------------------------------------------------------

    fn candidate_from<'a>(
        agent_plain: bool,
        spec: &FrameworkSpec,
        role: &str,
        free: &'a Resources,
    ) -> Cow<'a, Resources> {
        if agent_plain {
            Cow::Borrowed(free)
        } else {
            Cow::Owned(free.filter(|r| {
                r.reservation
                    .as_ref()
                    .is_none_or(|res| is_self_or_ancestor(&res.role, role))
                    && (spec.revocable || !r.revocable)
                    && (spec.gpus || r.name != "gpus")
            }))
        }
    }

    fn meets_minimum(&self, spec: &FrameworkSpec, candidate: &Resources) -> bool {
        let alternatives = if spec.min_allocatable.is_empty() {
            &self.config.min_allocatable
        } else {
            &spec.min_allocatable
        };
        // Quantities by name: a reserved `cpus(eng):8` satisfies a minimum of `cpus:0.01`.
        alternatives.is_empty()
            || alternatives.iter().any(|m| {
                m.iter().all(|e| match e.value {
                    Value::Scalar(s) => candidate.scalar(&e.name) >= s,
                    _ => true,
                })
            })
    }

    /// The quota role with no quota'd ancestor above `n`, if any.
    fn top_quota(&self, n: u32) -> Option<u32> {
        self.tree
            .path(n)
            .filter(|x| self.tree.node(*x).quota.is_some())
            .last()
    }

    fn unmet(&self, q: u32) -> Amounts {
        let node = self.tree.node(q);
        match &node.quota {
            Some(quota) => quota
                .g
                .iter()
                .enumerate()
                .map(|(k, g)| g.saturating_sub(node.consumption_at(k)))
                .collect(),
            None => Vec::new(),
        }
    }

    /// Sum of the unmet guarantees of top quota roles: what must stay free for them.
    fn required_headroom(&self) -> Amounts {
        let mut req = Vec::new();
        for q in &self.quota_roles {
            if self.top_quota(*q) == Some(*q) {
                kinds::add(&mut req, &self.unmet(*q));
            }
        }
        req
    }

    /// Per kind, how much unreserved a member of node `n` may get now: the cluster's
    /// free part minus the headroom other roles' guarantees need, and within every
    /// limit on `n`'s path.
    fn allowed(&self, n: u32, required: &[u64]) -> Amounts {
        let len = self.kinds.len();
        let own = self.top_quota(n).map(|q| self.unmet(q)).unwrap_or_default();
        let mut allowed: Amounts = (0..len)
            .map(|k| {
                let others = kinds::at(required, k).saturating_sub(kinds::at(&own, k));
                kinds::at(&self.available, k).saturating_sub(others)
            })
            .collect();
        for x in self.tree.path(n) {
            let node = self.tree.node(x);
            if let Some(q) = &node.quota
                && q.l.is_some()
            {
                for (k, a) in allowed.iter_mut().enumerate() {
                    let lim = q.limit_at(k);
                    if lim != u64::MAX {
                        *a = (*a).min(lim.saturating_sub(node.consumption_at(k)));
                    }
                }
            }
        }
        allowed
    }

    // -----------------------------------------------------------------------------
    // Booking
    // -----------------------------------------------------------------------------

    /// Move `res` on agent `a` between free and member `m` (`take`: free -> member).
    /// Scalar names must have been interned.
    fn book(&mut self, a: u32, m: u32, res: &Resources, take: bool) -> Result<(), AllocatorError> {
        if res.is_empty() {
            return Ok(());
        }
        let Some(agent) = self.agents.get_mut(a as usize).and_then(Option::as_mut) else {
            return Err(AllocatorError::UnknownAgent(format!("#{a}")));
        };
        if take {
            let new_free = agent
                .free
                .checked_sub(res)
                .map_err(|e| accounting(&agent.id, e))?;
            let slot = match agent.allocations.get(&m) {
                Some(cur) => cur.checked_add(res).map_err(|e| accounting(&agent.id, e))?,
                None => res.clone(),
            };
            agent.free = new_free;
            agent.allocations.insert(m, slot);
        } else {
            let cur = agent.allocations.get(&m).ok_or_else(|| {
                accounting(&agent.id, "nothing allocated to that framework and role")
            })?;
            let rest = cur.checked_sub(res).map_err(|e| accounting(&agent.id, e))?;
            let new_free = agent
                .free
                .checked_add(res)
                .map_err(|e| accounting(&agent.id, e))?;
            if rest.is_empty() {
                agent.allocations.remove(&m);
            } else {
                agent.allocations.insert(m, rest);
            }
            agent.free = new_free;
        }
        self.book_amounts(m, res, take);
        Ok(())
    }

    /// Move everything free on agent `a` to member `m` (the common whole-agent offer,
    /// without copying the free part twice); returns what was taken.
    fn take_whole(&mut self, a: u32, m: u32) -> Result<Resources, AllocatorError> {
        let Some(agent) = self.agents.get_mut(a as usize).and_then(Option::as_mut) else {
            return Err(AllocatorError::UnknownAgent(format!("#{a}")));
        };
        let taken = std::mem::take(&mut agent.free);
        let slot = match agent.allocations.get(&m) {
            Some(cur) => match cur.checked_add(&taken) {
                Ok(sum) => sum,
                Err(e) => {
                    let id = agent.id.clone();
                    agent.free = taken;
                    return Err(accounting(&id, e));
                }
            },
            None => taken.clone(),
        };
        agent.allocations.insert(m, slot);
        self.book_amounts(m, &taken, true);
        Ok(taken)
    }

    /// The vector side of a booking: member, role tree, cluster availability, quota.
    fn book_amounts(&mut self, m: u32, res: &Resources, take: bool) {
        let quota_top = if self.quota_roles.is_empty() {
            None
        } else {
            self.member(m)
                .and_then(|x| self.top_quota(x.node))
                .map(|q| (q, self.unmet(q)))
        };
        // Scratch vectors, so a booking allocates nothing here.
        let (mut amounts, mut unreserved) = std::mem::take(&mut self.scratch);
        self.kinds
            .amounts_split_into(res, &mut amounts, &mut unreserved);
        if take {
            kinds::sub(&mut self.available, &unreserved);
        } else {
            kinds::add(&mut self.available, &unreserved);
        }
        let Some(mem) = self.member_mut(m) else {
            self.scratch = (amounts, unreserved);
            return;
        };
        if take {
            kinds::add(&mut mem.alloc, &amounts);
        } else {
            kinds::sub(&mut mem.alloc, &amounts);
        }
        let node = mem.node;
        {
            let n = self.tree.node_mut(node);
            if take {
                kinds::add(&mut n.own_alloc, &amounts);
            } else {
                kinds::sub(&mut n.own_alloc, &amounts);
            }
        }
        let mut cur = Some(node);
        while let Some(x) = cur.filter(|x| *x != ROOT) {
            let n = self.tree.node_mut(x);
            if take {
                kinds::add(&mut n.alloc, &amounts);
            } else {
                kinds::sub(&mut n.alloc, &amounts);
            }
            cur = n.parent;
        }
        for e in res {
            if let (Value::Scalar(s), Some(r), false) = (&e.value, &e.reservation, e.revocable) {
                let k = self.kinds.intern(&e.name);
                let rn = self.tree.intern(&r.role);
                let path: Vec<u32> = self.tree.path(rn).collect();
                for x in path {
                    let n = self.tree.node_mut(x);
                    if n.reserved_alloc.len() <= k {
                        n.reserved_alloc.resize(k + 1, 0);
                    }
                    if take {
                        n.reserved_alloc[k] = n.reserved_alloc[k].saturating_add(s.thousandths());
                    } else {
                        n.reserved_alloc[k] = n.reserved_alloc[k].saturating_sub(s.thousandths());
                    }
                }
            }
        }
        if let Some((q, before)) = quota_top {
            let after = self.unmet(q);
            kinds::sub(&mut self.required, &before);
            kinds::add(&mut self.required, &after);
        }
        self.scratch = (amounts, unreserved);
        self.relist_with(m, false);
        self.tree.sync_path(node, &self.kinds, &self.totals);
    }

    /// Add (or subtract) an agent's reservations to the role tree.
    fn account_reservations(&mut self, total: &Resources, add: bool) {
        for e in total {
            if let (Value::Scalar(s), Some(r), false) = (&e.value, &e.reservation, e.revocable) {
                let k = self.kinds.intern(&e.name);
                let rn = self.tree.intern(&r.role);
                let path: Vec<u32> = self.tree.path(rn).collect();
                for x in &path {
                    let n = self.tree.node_mut(*x);
                    if n.reserved.len() <= k {
                        n.reserved.resize(k + 1, 0);
                    }
                    if add {
                        n.reserved[k] = n.reserved[k].saturating_add(s.thousandths());
                    } else {
                        n.reserved[k] = n.reserved[k].saturating_sub(s.thousandths());
                    }
                }
                self.tree.sync_path(rn, &self.kinds, &self.totals);
            }
        }
    }

    // -----------------------------------------------------------------------------
    // Filters and holds
    // -----------------------------------------------------------------------------

    fn drop_filter(&mut self, a: u32, m: u32) {
        if let Some(agent) = self.agent_mut(a)
            && agent.filters.remove(&m).is_some()
            && clear_bit(&mut agent.filtered, m)
        {
            agent.filtered_count -= 1;
        }
        if let Some(mem) = self.member_mut(m) {
            mem.filtered_agents.remove(&a);
        }
    }

    /// More became free on agent `a`: drop the filters that no longer cover what their
    /// member could be offered there.
    fn free_grew(&mut self, a: u32) {
        let Some(agent) = self.agent(a) else {
            return;
        };
        if agent.filters.is_empty() || agent.filter_basis.contains(&agent.free) {
            return;
        }
        let mut stale = Vec::new();
        for (m, f) in &agent.filters {
            let Some(mem) = self.member(*m) else {
                stale.push(*m);
                continue;
            };
            let Some(fw) = self.fw(mem.framework) else {
                stale.push(*m);
                continue;
            };
            let cand = Self::candidate_from(agent.plain, &fw.spec, &mem.role, &agent.free);
            if !f.refused.contains(&cand) {
                stale.push(*m);
            }
        }
        let free = agent.free.clone();
        for m in stale {
            self.drop_filter(a, m);
        }
        if let Some(agent) = self.agent_mut(a) {
            agent.filter_basis = free;
        }
    }

    /// Filters member `m` on agent `a`; `prior` is the filter `m` had there before the
    /// refused resources came back (recovering them may have dropped it as stale).
    fn add_filter(
        &mut self,
        a: u32,
        m: u32,
        refused: &Resources,
        until: Millis,
        prior: Option<Filter>,
    ) {
        let (Some(agent), Some(mem)) = (self.agent(a), self.member(m)) else {
            return;
        };
        let Some(fw) = self.fw(mem.framework) else {
            return;
        };
        // Several offers of one agent declined together each come back here: their refusals
        // add up (until the earliest expiry), or the second would see the first's resources
        // free again and not filter at all.
        let (refused, until) = match prior {
            Some(f) => match f.refused.to_resources().checked_add(refused) {
                Ok(sum) => (sum, f.until.min(until)),
                Err(_) => (refused.clone(), until),
            },
            None => (refused.clone(), until),
        };
        let cand = Self::candidate_from(agent.plain, &fw.spec, &mem.role, &agent.free);
        if !refused.contains(&cand) {
            // More than was refused is free: the filter would not block anything.
            return;
        }
        let Some(agent) = self.agent_mut(a) else {
            return;
        };
        if agent.filters.is_empty() {
            agent.filter_basis = agent.free.clone();
        }
        agent.filters.insert(
            m,
            Filter {
                refused: StoredResources::from(&refused),
                until,
            },
        );
        if set_bit(&mut agent.filtered, m) {
            agent.filtered_count += 1;
        }
        if let Some(mem) = self.member_mut(m) {
            mem.filtered_agents.insert(a);
        }
        self.expiry.push(Reverse((until, a, m)));
    }

    fn expire_filters(&mut self, now: Millis) {
        while let Some(Reverse((until, a, m))) = self.expiry.peek().copied() {
            if until > now {
                break;
            }
            self.expiry.pop();
            let current = self
                .agent(a)
                .and_then(|ag| ag.filters.get(&m))
                .is_some_and(|f| f.until == until);
            if current {
                self.drop_filter(a, m);
            }
        }
    }

    /// Drop member `m`'s holds (all, or the one on `only`), starting a cooldown at `now`.
    fn drop_holds(&mut self, m: u32, cooldown_from: Option<Millis>) {
        let agents: Vec<u32> = self
            .member(m)
            .map(|x| x.holds.iter().copied().collect())
            .unwrap_or_default();
        for a in agents {
            self.drop_hold(a, cooldown_from);
        }
    }

    fn drop_hold(&mut self, a: u32, cooldown_from: Option<Millis>) {
        let Some(hold) = self.agent_mut(a).and_then(|ag| ag.hold.take()) else {
            return;
        };
        self.held_agents.remove(&a);
        let cooldown = self.config.holds.cooldown_ms;
        if let Some(mem) = self.member_mut(hold.member) {
            mem.holds.remove(&a);
            if let Some(now) = cooldown_from {
                mem.cooldowns.insert(a, now.saturating_add(cooldown));
            }
        }
    }

    /// Amounts member `m` could be offered on agent `a` now (non-revocable scalars).
    fn candidate_amounts(&self, a: u32, m: u32) -> Option<(Resources, Amounts)> {
        let agent = self.agent(a)?;
        let mem = self.member(m)?;
        let fw = self.fw(mem.framework)?;
        if bit(&agent.filtered, m) || bit(&agent.mismatch, m) {
            return None;
        }
        let cand = Self::candidate_from(agent.plain, &fw.spec, &mem.role, &agent.free).into_owned();
        let amounts = self.kinds.amounts(&cand);
        Some((cand, amounts))
    }

    fn maintain_holds(&mut self, now: Millis) {
        let held: Vec<u32> = self.held_agents.iter().copied().collect();
        let bounds = self.config.holds;
        for a in held {
            let Some(hold) = self.agent(a).and_then(|ag| ag.hold.clone()) else {
                self.held_agents.remove(&a);
                continue;
            };
            let alive = self
                .member(hold.member)
                .is_some_and(|mem| mem.need.is_some() && self.eligible(mem));
            if !alive {
                self.drop_hold(a, None);
                continue;
            }
            if now.saturating_sub(hold.since) >= bounds.max_ms {
                self.drop_hold(a, Some(now));
                continue;
            }
            let need = self
                .member(hold.member)
                .and_then(|x| x.need.as_ref().map(|n| n.per_agent.clone()))
                .unwrap_or_default();
            let mark = self
                .candidate_amounts(a, hold.member)
                .map(|(_, am)| progress(&am, &need))
                .unwrap_or(0);
            if mark > hold.mark {
                if let Some(h) = self.agent_mut(a).and_then(|ag| ag.hold.as_mut()) {
                    h.mark = mark;
                    h.last_progress = now;
                }
            } else if now.saturating_sub(hold.last_progress) >= bounds.stall_ms {
                self.drop_hold(a, Some(now));
            }
        }
    }

    fn place_hold(&mut self, a: u32, m: u32, now: Millis, mark: u64) {
        if let Some(agent) = self.agent_mut(a) {
            agent.hold = Some(Hold {
                member: m,
                since: now,
                last_progress: now,
                mark,
            });
        }
        self.held_agents.insert(a);
        if let Some(mem) = self.member_mut(m) {
            mem.holds.insert(a);
        }
    }

    /// Agents in the order the demand pass examines them for member `m`: its held
    /// agents first, then every other agent by index.
    fn demand_agent_order(&self, m: u32) -> Vec<u32> {
        let held: Vec<u32> = self
            .member(m)
            .map(|x| x.holds.iter().copied().collect())
            .unwrap_or_default();
        let mut order = held.clone();
        for (i, ag) in self.agents.iter().enumerate() {
            if ag.is_some() && !held.contains(&(i as u32)) {
                order.push(i as u32);
            }
        }
        order
    }

    /// The demand pass (see the module documentation).
    fn demand_pass(&mut self, now: Millis, out: &mut Vec<Allocation>) {
        self.maintain_holds(now);
        let max = self.config.holds.max_demands_per_cycle;
        if max == 0 {
            return;
        }
        let mut order = Vec::new();
        {
            let members = &self.members;
            let demanding = &self.demanding;
            self.tree.walk(ROOT, &mut |m| {
                if demanding.contains(&m)
                    && members
                        .get(m as usize)
                        .and_then(Option::as_ref)
                        .is_some_and(|x| x.need.is_some())
                {
                    order.push(m);
                }
                order.len() >= max
            });
        }
        for (rank, m) in order.into_iter().enumerate() {
            let Some(need) = self.member(m).and_then(|x| x.need.clone()) else {
                continue;
            };
            let agents = self.demand_agent_order(m);
            // Which agents would serve the demand now.
            let mut chosen: Vec<(u32, Resources, u32)> = Vec::new();
            let mut tasks = 0u32;
            let unit = if need.gang > 1 {
                &need.task
            } else {
                &need.per_agent
            };
            let (mut free_all, mut free_unres) = std::mem::take(&mut self.scratch);
            for a in &agents {
                let Some(agent) = self.agent(*a) else {
                    continue;
                };
                if agent.hold.as_ref().is_some_and(|h| h.member != m) {
                    continue;
                }
                // Cheap upper bound first (no copy): everything free on the agent.
                self.kinds
                    .amounts_split_into(&agent.free, &mut free_all, &mut free_unres);
                if !fits(&free_all, unit) {
                    continue;
                }
                let Some((cand, am)) = self.candidate_amounts(*a, m) else {
                    continue;
                };
                let n = if need.gang > 1 {
                    fit_count(&am, &need.task)
                } else if fits(&am, &need.per_agent) {
                    1
                } else {
                    0
                };
                if n == 0 {
                    continue;
                }
                tasks = tasks.saturating_add(n);
                chosen.push((*a, cand, n));
                if tasks >= need.gang {
                    break;
                }
            }
            self.scratch = (free_all, free_unres);
            if tasks >= need.gang {
                self.drop_holds(m, None);
                let (framework, role) = match self
                    .member(m)
                    .and_then(|x| self.fw(x.framework).map(|f| (f.id.clone(), x.role.clone())))
                {
                    Some(x) => x,
                    None => continue,
                };
                for (a, cand, _) in chosen {
                    if cand.is_empty() || self.book(a, m, &cand, true).is_err() {
                        continue;
                    }
                    let agent = self.agent(a).map(|x| x.id.clone()).unwrap_or_default();
                    out.push(Allocation {
                        framework: framework.clone(),
                        agent,
                        role: role.clone(),
                        resources: cand,
                    });
                }
                continue;
            }
            if rank >= self.config.holds.max_frameworks {
                continue;
            }
            self.extend_holds(m, &need, now);
        }
    }

    /// Give member `m` holds on the agents closest to fitting its need.
    fn extend_holds(&mut self, m: u32, need: &Need, now: Millis) {
        let want = (need.gang as usize).min(self.config.holds.max_agents_per_framework);
        let have = self.member(m).map(|x| x.holds.len()).unwrap_or(0);
        if have >= want {
            return;
        }
        let mut scored: Vec<(u64, u32)> = Vec::new();
        for (i, ag) in self.agents.iter().enumerate() {
            let a = i as u32;
            let Some(agent) = ag else {
                continue;
            };
            if agent.hold.is_some() {
                continue;
            }
            let Some(mem) = self.member(m) else {
                return;
            };
            if mem.cooldowns.get(&a).is_some_and(|until| *until > now) {
                continue;
            }
            let Some(fw) = self.fw(mem.framework) else {
                return;
            };
            // Only agents on which the need could ever fit.
            let whole = Self::candidate_from(agent.plain, &fw.spec, &mem.role, &agent.total);
            if !fits(&self.kinds.amounts(&whole), &need.per_agent) {
                continue;
            }
            let Some((_, am)) = self.candidate_amounts(a, m) else {
                continue;
            };
            scored.push((progress(&am, &need.per_agent), a));
        }
        // Closest to fitting first; lower index on ties (deterministic).
        scored.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
        for (mark, a) in scored.into_iter().take(want - have) {
            self.place_hold(a, m, now, mark);
        }
    }

    // -----------------------------------------------------------------------------
    // Stages
    // -----------------------------------------------------------------------------

    fn agent_order(&mut self) -> Vec<u32> {
        let live = self.live_members;
        let mut order: Vec<u32> = self
            .agents
            .iter()
            .enumerate()
            .filter(|(_, a)| {
                a.as_ref()
                    .is_some_and(|a| !a.free.is_empty() && a.filtered_count < live)
            })
            .map(|(i, _)| i as u32)
            .collect();
        order.shuffle(&mut self.rng);
        order
    }

    /// Book and report an offer to member `m` on agent `a`: `cand`, or everything free
    /// when `None`.
    fn emit(&mut self, a: u32, m: u32, cand: Option<Resources>, out: &mut Vec<Allocation>) {
        let cand = match cand {
            Some(c) => match self.book(a, m, &c, true) {
                Ok(()) => c,
                Err(_) => return,
            },
            None => match self.take_whole(a, m) {
                Ok(c) => c,
                Err(_) => return,
            },
        };
        let Some(mem) = self.member(m) else {
            return;
        };
        let Some(fw) = self.fw(mem.framework) else {
            return;
        };
        let agent = self.agent(a).map(|x| x.id.clone()).unwrap_or_default();
        out.push(Allocation {
            framework: fw.id.clone(),
            agent,
            role: mem.role.clone(),
            resources: cand,
        });
    }

    /// Quota roles below their guarantee that have an eligible framework, by share.
    fn unmet_roles(&self) -> Vec<(Key, u32)> {
        let mut v: Vec<(Key, u32)> = self
            .quota_roles
            .iter()
            .filter(|q| self.tree.node(**q).active > 0)
            .filter(|q| !kinds::is_zero(&self.unmet(**q)))
            .map(|q| {
                (
                    (
                        kinds::share_key(self.tree.weighted_share(*q, &self.kinds, &self.totals)),
                        u64::from(*q),
                    ),
                    *q,
                )
            })
            .collect();
        v.sort();
        v
    }

    fn quota_stage(&mut self, agents: &[u32], out: &mut Vec<Allocation>) {
        let mut unmet: BTreeSet<(Key, u32)> = self.unmet_roles().into_iter().collect();
        for &a in agents {
            if unmet.is_empty() {
                return;
            }
            let roles: Vec<(Key, u32)> =
                unmet.iter().take(STAGE1_ROLES_PER_AGENT).copied().collect();
            for (key, q) in roles {
                let Some(agent) = self.agent(a) else {
                    break;
                };
                if agent.free.is_empty() {
                    break;
                }
                let owed = self.unmet(q);
                let required = &self.required;
                let mut found: Option<(u32, Resources)> = None;
                self.tree.walk(q, &mut |m| {
                    if bit(&agent.filtered, m) || bit(&agent.mismatch, m) {
                        return false;
                    }
                    let (Some(mem), true) = (self.member(m), true) else {
                        return false;
                    };
                    let Some(fw) = self.fw(mem.framework) else {
                        return false;
                    };
                    let unreserved = agent
                        .free
                        .filter(|r| r.reservation.is_none() && !r.revocable);
                    let cand = Self::candidate_from(false, &fw.spec, &mem.role, &unreserved);
                    let mut allowed = self.allowed(mem.node, required);
                    for (k, al) in allowed.iter_mut().enumerate() {
                        if self
                            .tree
                            .node(q)
                            .quota
                            .as_ref()
                            .is_some_and(|qq| kinds::at(&qq.g, k) > 0)
                        {
                            *al = (*al).min(kinds::at(&owed, k));
                        }
                    }
                    let cand = chop(&self.kinds, &cand, &allowed);
                    let am = self.kinds.amounts(&cand);
                    let useful = owed
                        .iter()
                        .enumerate()
                        .any(|(k, o)| *o > 0 && kinds::at(&am, k) > 0);
                    if !useful || !self.meets_minimum(&fw.spec, &cand) {
                        return false;
                    }
                    found = Some((m, cand));
                    true
                });
                if let Some((m, cand)) = found {
                    self.emit(a, m, Some(cand), out);
                    unmet.remove(&(key, q));
                    // Every quota role on the member's path may have moved.
                    let node = self.member(m).map(|x| x.node).unwrap_or(q);
                    let on_path: Vec<u32> = self
                        .tree
                        .path(node)
                        .filter(|x| self.quota_roles.contains(x))
                        .collect();
                    unmet.retain(|(_, x)| !on_path.contains(x));
                    for x in on_path {
                        if self.tree.node(x).active > 0 && !kinds::is_zero(&self.unmet(x)) {
                            let k = (
                                kinds::share_key(self.tree.weighted_share(
                                    x,
                                    &self.kinds,
                                    &self.totals,
                                )),
                                u64::from(x),
                            );
                            unmet.insert((k, x));
                        }
                    }
                }
            }
        }
    }

    fn fair_stage(&mut self, agents: &[u32], out: &mut Vec<Allocation>) {
        let quotas = !self.quota_roles.is_empty();
        let mut given: Vec<u32> = Vec::new();
        for &a in agents {
            given.clear();
            while let Some(agent) = self.agent(a) {
                if agent.free.is_empty() || agent.filtered_count >= self.live_members {
                    break;
                }
                let required = &self.required;
                let hold = agent.hold.as_ref().and_then(|h| {
                    let need = self.member(h.member)?.need.as_ref()?;
                    Some((h.member, need.per_agent.clone()))
                });
                let mut found: Option<(u32, Option<Resources>)> = None;
                self.tree.walk(ROOT, &mut |m| {
                    if bit(&agent.filtered, m) || bit(&agent.mismatch, m) || given.contains(&m) {
                        return false;
                    }
                    if hold.as_ref().is_some_and(|(h, _)| *h == m) {
                        return false;
                    }
                    let Some(mem) = self.member(m) else {
                        return false;
                    };
                    let Some(fw) = self.fw(mem.framework) else {
                        return false;
                    };
                    let mut cand =
                        Self::candidate_from(agent.plain, &fw.spec, &mem.role, &agent.free);
                    if let Some((_, need)) = &hold {
                        let have = self.kinds.amounts(&cand);
                        let allowed: Amounts = (0..self.kinds.len())
                            .map(|k| kinds::at(&have, k).saturating_sub(kinds::at(need, k)))
                            .collect();
                        cand = Cow::Owned(chop(&self.kinds, &cand, &allowed));
                    }
                    if quotas {
                        let allowed = self.allowed(mem.node, required);
                        cand = Cow::Owned(chop(&self.kinds, &cand, &allowed));
                    }
                    if cand.is_empty() || !self.meets_minimum(&fw.spec, &cand) {
                        return false;
                    }
                    // A framework that declared a demand gets no crumbs: only offers in
                    // which one task (or its same-agent group) fits.
                    if let Some(need) = &mem.need {
                        let unit = if need.gang > 1 {
                            &need.task
                        } else {
                            &need.per_agent
                        };
                        if !fits(&self.kinds.amounts(&cand), unit) {
                            return false;
                        }
                    }
                    found = Some((
                        m,
                        match cand {
                            Cow::Borrowed(_) => None,
                            Cow::Owned(c) => Some(c),
                        },
                    ));
                    true
                });
                match found {
                    Some((m, cand)) => {
                        given.push(m);
                        self.emit(a, m, cand, out);
                    }
                    None => break,
                }
            }
        }
    }

    fn resync_after_totals(&mut self) {
        self.totals_dirty = false;
        let ms: Vec<u32> = (0..self.members.len() as u32).collect();
        for m in ms {
            // Re-key: unlist and list again with shares against the new totals.
            if let Some(mem) = self.member(m)
                && let Some((s, t)) = mem.listed
            {
                let node = mem.node;
                let key = (
                    kinds::share_key(kinds::dominant_share(&self.kinds, &mem.alloc, &self.totals)),
                    t,
                );
                let n = self.tree.node_mut(node);
                n.members.remove(&(s, t, m));
                n.members.insert((key.0, key.1, m));
                if let Some(mem) = self.member_mut(m) {
                    mem.listed = Some(key);
                }
            }
        }
        self.tree.sync_all(&self.kinds, &self.totals);
    }

    fn frameworks_of_role(&self, n: u32) -> (usize, usize) {
        let mut eligible = 0;
        let mut suppressed = 0;
        for mem in self.members.iter().flatten() {
            if mem.node == n && mem.subscribed {
                if self.eligible(mem) {
                    eligible += 1;
                } else if mem.suppressed {
                    suppressed += 1;
                }
            }
        }
        (eligible, suppressed)
    }

    fn hold_info(&self, a: u32) -> Option<HoldInfo> {
        let agent = self.agent(a)?;
        let h = agent.hold.as_ref()?;
        let mem = self.member(h.member)?;
        let fw = self.fw(mem.framework)?;
        let need = mem.need.as_ref()?;
        let free_now = self
            .candidate_amounts(a, h.member)
            .map(|(c, _)| c)
            .unwrap_or_default();
        Some(HoldInfo {
            agent: agent.id.clone(),
            framework: fw.id.clone(),
            role: mem.role.clone(),
            needed: self.kinds.to_resources(&need.per_agent),
            free_now,
            since_ms: h.since,
            expires_ms: h.since.saturating_add(self.config.holds.max_ms),
        })
    }

    fn role_explain(&self, n: u32) -> RoleExplain {
        let node = self.tree.node(n);
        let consumption = node.consumption();
        let allocated = self.kinds.to_resources(&node.alloc);
        let reserved = self.kinds.to_resources(&node.reserved);
        let share = kinds::dominant_share(&self.kinds, &consumption, &self.totals);
        let quota = node.quota.as_ref().map(|q| {
            let unmet = self.unmet(n);
            let headroom = q.l.as_ref().map(|l| {
                let h: Amounts = l
                    .iter()
                    .enumerate()
                    .map(|(k, lim)| {
                        if *lim == u64::MAX {
                            0
                        } else {
                            lim.saturating_sub(kinds::at(&consumption, k))
                        }
                    })
                    .collect();
                self.kinds.to_resources(&h)
            });
            QuotaExplain {
                guarantee: q.guarantee.clone(),
                limit: q.limit.clone(),
                consumed: self.kinds.to_resources(&consumption),
                unmet_guarantee: self.kinds.to_resources(&unmet),
                headroom_to_limit: headroom,
                at_limit: node.capped,
            }
        });
        let (eligible, suppressed) = self.frameworks_of_role(n);
        RoleExplain {
            role: node.name.clone(),
            weight: node.weight,
            dominant_share: share,
            weighted_share: share / node.weight,
            allocated,
            reserved,
            quota,
            eligible_frameworks: eligible,
            suppressed_frameworks: suppressed,
        }
    }

    fn validate_quota(
        &self,
        role: &str,
        guarantee: &Resources,
        limit: Option<&Resources>,
        force: bool,
    ) -> Result<(), AllocatorError> {
        let bad = |reason: String| AllocatorError::InvalidQuota {
            role: role.to_string(),
            reason,
        };
        for r in guarantee.iter().chain(limit.into_iter().flatten()) {
            if !matches!(r.value, Value::Scalar(_)) {
                return Err(bad(format!("'{r}' is not a scalar")));
            }
            if r.reservation.is_some() || r.revocable {
                return Err(bad(format!("'{r}' must be unreserved and non-revocable")));
            }
        }
        // A zero amount cannot be written (zero scalars vanish from `Resources`), so an
        // empty limit would silently mean "nothing limited". Refuse it instead.
        if limit.is_some_and(Resources::is_empty) {
            return Err(bad(
                "the limit names no resource with a positive amount; give at least one \
                 (e.g. cpus:1), or no limit at all (a limit of zero cannot be expressed yet)"
                    .to_string(),
            ));
        }
        if let Some(l) = limit {
            for name in guarantee.names() {
                let g = guarantee.scalar(name);
                if l.names().contains(name) && g > l.scalar(name) {
                    return Err(bad(format!(
                        "guarantee {name}:{g} exceeds limit {name}:{}",
                        l.scalar(name)
                    )));
                }
            }
        }
        // Nearest quota'd ancestor: our guarantee plus our quota'd siblings' must fit in
        // its guarantee, and our limit in its limit.
        let n = self.tree.get(role);
        let ancestor = role
            .rmatch_indices('/')
            .map(|(i, _)| &role[..i])
            .find(|anc| {
                self.tree
                    .get(anc)
                    .is_some_and(|x| self.tree.node(x).quota.is_some())
            });
        if let Some(anc) = ancestor
            && let Some(an) = self.tree.get(anc)
            && let Some(aq) = &self.tree.node(an).quota
        {
            let mut sum = guarantee.clone();
            for other in &self.quota_roles {
                if Some(*other) == n {
                    continue;
                }
                let oname = &self.tree.node(*other).name;
                if self.nearest_quota_ancestor(*other) == Some(an)
                    && let Some(oq) = &self.tree.node(*other).quota
                {
                    sum = sum
                        .checked_add(&oq.guarantee)
                        .map_err(|e| bad(format!("{oname}: {e}")))?;
                }
            }
            for name in sum.names() {
                if sum.scalar(name) > aq.guarantee.scalar(name) {
                    return Err(bad(format!(
                        "children's guarantees ({name}:{}) exceed the guarantee of '{anc}' ({name}:{})",
                        sum.scalar(name),
                        aq.guarantee.scalar(name)
                    )));
                }
            }
            if let Some(al) = &aq.limit {
                for name in al.names() {
                    let mine = limit.map(|l| l.names().contains(name)).unwrap_or(false);
                    if !mine || limit.is_some_and(|l| l.scalar(name) > al.scalar(name)) {
                        return Err(bad(format!(
                            "limit on {name} must be set and at most the limit of '{anc}' ({name}:{})",
                            al.scalar(name)
                        )));
                    }
                }
            }
        }
        // Our quota'd descendants must fit in the new quota.
        if let Some(me) = n {
            let mut sum = Resources::new();
            for other in &self.quota_roles {
                if self.nearest_quota_ancestor(*other) == Some(me)
                    && let Some(oq) = &self.tree.node(*other).quota
                {
                    sum = sum
                        .checked_add(&oq.guarantee)
                        .map_err(|e| bad(e.to_string()))?;
                }
            }
            for name in sum.names() {
                if sum.scalar(name) > guarantee.scalar(name) {
                    return Err(bad(format!(
                        "children's guarantees ({name}:{}) exceed the new guarantee",
                        sum.scalar(name)
                    )));
                }
            }
        }
        if !force {
            for name in guarantee.names() {
                let total = self
                    .kinds
                    .get(name)
                    .map(|k| kinds::at(&self.totals, k))
                    .unwrap_or(0);
                if guarantee.scalar(name).thousandths() > total {
                    return Err(bad(format!(
                        "guarantee {name}:{} exceeds the cluster total {name}:{} (use force)",
                        guarantee.scalar(name),
                        Scalar::from_thousandths(total)
                    )));
                }
            }
        }
        Ok(())
    }

    /// The nearest strict ancestor of `n` with a quota.
    fn nearest_quota_ancestor(&self, n: u32) -> Option<u32> {
        self.tree
            .path(n)
            .skip(1)
            .find(|x| self.tree.node(*x).quota.is_some())
    }
}

/// Whether `anc` is `role` or one of its ancestors (`eng` for `eng/ml`).
fn is_self_or_ancestor(anc: &str, role: &str) -> bool {
    role == anc
        || (role.len() > anc.len()
            && role.starts_with(anc)
            && role.as_bytes().get(anc.len()) == Some(&b'/'))
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
        if self.agent_ids.contains_key(agent) {
            return Err(AllocatorError::DuplicateAgent(agent.to_string()));
        }
        self.kinds.intern_all(&total);
        let amounts = self.kinds.amounts(&total);
        let unreserved = self
            .kinds
            .amounts_where(&total, |r| r.reservation.is_none());
        let mut mismatch = Vec::new();
        for m in &self.constrained {
            if let Some(c) = self.member(*m).and_then(|x| x.constraints.as_ref())
                && !c.matches(&attributes)
            {
                set_bit(&mut mismatch, *m);
            }
        }
        let book = Agent {
            id: agent.to_string(),
            plain: is_plain(&total),
            free: total.clone(),
            filter_basis: Resources::new(),
            total: total.clone(),
            attributes,
            allocations: BTreeMap::new(),
            filters: BTreeMap::new(),
            filtered: Vec::new(),
            filtered_count: 0,
            mismatch,
            hold: None,
        };
        let a = insert_slot(&mut self.agents, &mut self.agent_slots, book);
        self.agent_ids.insert(agent.to_string(), a);
        kinds::add(&mut self.totals, &amounts);
        kinds::add(&mut self.available, &unreserved);
        self.totals_dirty = true;
        self.account_reservations(&total, true);
        Ok(())
    }

    fn remove_agent(&mut self, agent: &str) -> Result<(), AllocatorError> {
        let a = self.agent_index(agent)?;
        let allocations: Vec<(u32, Resources)> = self
            .agent(a)
            .map(|x| x.allocations.iter().map(|(m, r)| (*m, r.clone())).collect())
            .unwrap_or_default();
        for (m, r) in allocations {
            self.book(a, m, &r, false)?;
        }
        let filtered: Vec<u32> = self
            .agent(a)
            .map(|x| x.filters.keys().copied().collect())
            .unwrap_or_default();
        for m in filtered {
            self.drop_filter(a, m);
        }
        self.drop_hold(a, None);
        let Some(book) = self.agents.get_mut(a as usize).and_then(Option::take) else {
            return Err(AllocatorError::UnknownAgent(agent.to_string()));
        };
        self.agent_ids.remove(agent);
        self.agent_slots.push(a);
        let amounts = self.kinds.amounts(&book.total);
        let unreserved = self
            .kinds
            .amounts_where(&book.free, |r| r.reservation.is_none());
        kinds::sub(&mut self.totals, &amounts);
        kinds::sub(&mut self.available, &unreserved);
        self.totals_dirty = true;
        self.account_reservations(&book.total, false);
        for mem in self.members.iter_mut().flatten() {
            mem.cooldowns.remove(&a);
        }
        Ok(())
    }

    fn add_framework(
        &mut self,
        framework: &str,
        spec: FrameworkSpec,
    ) -> Result<(), AllocatorError> {
        if self.framework_ids.contains_key(framework) {
            return Err(AllocatorError::DuplicateFramework(framework.to_string()));
        }
        for r in &spec.roles {
            Self::valid_role(r)?;
        }
        for d in &spec.demands {
            self.kinds.intern_all(&d.shape);
        }
        let constraints = Self::compile_constraints(framework, &spec)?;
        let fw = Framework {
            id: framework.to_string(),
            spec,
            active: true,
            members: BTreeMap::new(),
        };
        let f = insert_slot(&mut self.frameworks, &mut self.framework_slots, fw);
        self.framework_ids.insert(framework.to_string(), f);
        self.apply_spec(f, constraints)
    }

    fn update_framework(
        &mut self,
        framework: &str,
        spec: FrameworkSpec,
    ) -> Result<(), AllocatorError> {
        let f = self.framework_index(framework)?;
        for r in &spec.roles {
            Self::valid_role(r)?;
        }
        for d in &spec.demands {
            self.kinds.intern_all(&d.shape);
        }
        let constraints = Self::compile_constraints(framework, &spec)?;
        if let Some(fw) = self.fw_mut(f) {
            fw.spec = spec;
        }
        self.apply_spec(f, constraints)
    }

    fn remove_framework(&mut self, framework: &str) -> Result<(), AllocatorError> {
        let f = self.framework_index(framework)?;
        let members: Vec<u32> = self
            .fw(f)
            .map(|fw| fw.members.values().copied().collect())
            .unwrap_or_default();
        for m in members {
            let agents: Vec<u32> = self
                .agents
                .iter()
                .enumerate()
                .filter(|(_, ag)| {
                    ag.as_ref()
                        .is_some_and(|ag| ag.allocations.contains_key(&m))
                })
                .map(|(i, _)| i as u32)
                .collect();
            for a in agents {
                if let Some(r) = self.agent(a).and_then(|x| x.allocations.get(&m)).cloned() {
                    self.book(a, m, &r, false)?;
                    self.free_grew(a);
                }
            }
            let filtered: Vec<u32> = self
                .member(m)
                .map(|x| x.filtered_agents.iter().copied().collect())
                .unwrap_or_default();
            for a in filtered {
                self.drop_filter(a, m);
            }
            self.drop_holds(m, None);
            if let Some(mem) = self.member_mut(m) {
                mem.subscribed = false;
                mem.constraints = None;
            }
            self.relist(m);
            if self.constrained.contains(&m) {
                self.refresh_mismatch(m);
            }
            self.demanding.remove(&m);
            if let Some(slot) = self.members.get_mut(m as usize) {
                *slot = None;
            }
            self.member_slots.push(m);
            self.live_members = self.live_members.saturating_sub(1);
        }
        if let Some(slot) = self.frameworks.get_mut(f as usize) {
            *slot = None;
        }
        self.framework_slots.push(f);
        self.framework_ids.remove(framework);
        Ok(())
    }

    fn set_framework_active(
        &mut self,
        framework: &str,
        active: bool,
    ) -> Result<(), AllocatorError> {
        let f = self.framework_index(framework)?;
        if let Some(fw) = self.fw_mut(f) {
            fw.active = active;
        }
        let members: Vec<u32> = self
            .fw(f)
            .map(|fw| fw.members.values().copied().collect())
            .unwrap_or_default();
        for m in members {
            self.relist(m);
        }
        Ok(())
    }

    fn add_allocated(
        &mut self,
        agent: &str,
        framework: &str,
        role: &str,
        resources: &Resources,
    ) -> Result<(), AllocatorError> {
        let a = self.agent_index(agent)?;
        let f = self.framework_index(framework)?;
        Self::valid_role(role)?;
        let m = match self.member_index(f, role) {
            Some(m) => m,
            None => {
                let m = self.new_member(f, role, false);
                self.relist(m);
                m
            }
        };
        self.kinds.intern_all(resources);
        self.book(a, m, resources, true)
    }

    fn recover(
        &mut self,
        agent: &str,
        framework: &str,
        role: &str,
        resources: &Resources,
        refuse_until: Option<Millis>,
    ) -> Result<(), AllocatorError> {
        if resources.is_empty() {
            return Ok(());
        }
        let a = self.agent_index(agent)?;
        let f = self.framework_index(framework)?;
        let m = self
            .member_index(f, role)
            .ok_or_else(|| accounting(agent, format!("nothing allocated to {framework}/{role}")))?;
        self.kinds.intern_all(resources);
        let prior = refuse_until
            .and_then(|_| self.agent(a))
            .and_then(|ag| ag.filters.get(&m).cloned());
        self.book(a, m, resources, false)?;
        self.free_grew(a);
        if let Some(until) = refuse_until {
            self.add_filter(a, m, resources, until, prior);
        }
        Ok(())
    }

    fn convert_resources(
        &mut self,
        agent: &str,
        allocated_to: Option<(&str, &str)>,
        from: &Resources,
        to: &Resources,
    ) -> Result<(), AllocatorError> {
        let a = self.agent_index(agent)?;
        let m = match allocated_to {
            None => None,
            Some((framework, role)) => {
                let f = self.framework_index(framework)?;
                Some(self.member_index(f, role).ok_or_else(|| {
                    accounting(agent, format!("nothing allocated to {framework}/{role}"))
                })?)
            }
        };
        // Everything is checked before the first change, so an error leaves the book as
        // it was.
        let Some(book) = self.agent(a) else {
            return Err(AllocatorError::UnknownAgent(agent.to_string()));
        };
        let holder = match m {
            Some(m) => book.allocations.get(&m).cloned().unwrap_or_default(),
            None => book.free.clone(),
        };
        if let Err(e) = holder.checked_sub(from) {
            let place = if m.is_some() { "allocated" } else { "free" };
            return Err(accounting(agent, format!("not {place} on the agent: {e}")));
        }
        let new_total = book
            .total
            .checked_sub(from)
            .and_then(|t| t.checked_add(to))
            .map_err(|e| accounting(agent, e))?;
        self.kinds.intern_all(from);
        self.kinds.intern_all(to);
        if let Some(m) = m {
            self.book(a, m, from, false)?;
        }
        let Some(book) = self.agent_mut(a) else {
            return Err(AllocatorError::UnknownAgent(agent.to_string()));
        };
        // `from` is free now (it was, or the booking above freed it).
        let new_free = book
            .free
            .checked_sub(from)
            .and_then(|f| f.checked_add(to))
            .map_err(|e| accounting(agent, e))?;
        book.free = new_free;
        book.total = new_total;
        book.plain = is_plain(&book.total);
        let unreserved = |r: &agora_resources::Resource| r.reservation.is_none();
        let (from_unres, to_unres) = (
            self.kinds.amounts_where(from, unreserved),
            self.kinds.amounts_where(to, unreserved),
        );
        kinds::sub(&mut self.available, &from_unres);
        kinds::add(&mut self.available, &to_unres);
        let (from_all, to_all) = (self.kinds.amounts(from), self.kinds.amounts(to));
        kinds::sub(&mut self.totals, &from_all);
        kinds::add(&mut self.totals, &to_all);
        self.totals_dirty = true;
        self.account_reservations(from, false);
        self.account_reservations(to, true);
        match m {
            Some(m) => self.book(a, m, to, true)?,
            // Unreserved resources may now suit members filtered on this agent.
            None => self.free_grew(a),
        }
        Ok(())
    }

    fn suppress(&mut self, framework: &str, roles: &[String]) -> Result<(), AllocatorError> {
        let f = self.framework_index(framework)?;
        let spec_roles = self.fw(f).map(|x| x.spec.roles.clone()).unwrap_or_default();
        let targets: Vec<String> = if roles.is_empty() {
            spec_roles.clone()
        } else {
            roles.to_vec()
        };
        if let Some(role) = targets.iter().find(|r| !spec_roles.contains(r)) {
            return Err(AllocatorError::RoleNotSubscribed {
                framework: framework.to_string(),
                role: role.clone(),
            });
        }
        for role in targets {
            if let Some(m) = self.member_index(f, &role) {
                if let Some(mem) = self.member_mut(m) {
                    mem.suppressed = true;
                }
                self.relist(m);
            }
        }
        Ok(())
    }

    fn revive(&mut self, framework: &str, roles: &[String]) -> Result<(), AllocatorError> {
        let f = self.framework_index(framework)?;
        let spec_roles = self.fw(f).map(|x| x.spec.roles.clone()).unwrap_or_default();
        if let Some(role) = roles.iter().find(|r| !spec_roles.contains(r)) {
            return Err(AllocatorError::RoleNotSubscribed {
                framework: framework.to_string(),
                role: role.clone(),
            });
        }
        let members: Vec<(String, u32)> = self
            .fw(f)
            .map(|fw| fw.members.iter().map(|(r, m)| (r.clone(), *m)).collect())
            .unwrap_or_default();
        for (role, m) in members {
            let filtered: Vec<u32> = self
                .member(m)
                .map(|x| x.filtered_agents.iter().copied().collect())
                .unwrap_or_default();
            for a in filtered {
                self.drop_filter(a, m);
            }
            if roles.is_empty() || roles.contains(&role) {
                if let Some(mem) = self.member_mut(m) {
                    mem.suppressed = false;
                }
                self.relist(m);
            }
        }
        Ok(())
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
        Self::valid_role(role)?;
        self.validate_quota(role, &guarantee, limit.as_ref(), force)?;
        self.kinds.intern_all(&guarantee);
        if let Some(l) = &limit {
            self.kinds.intern_all(l);
        }
        let g = self.kinds.amounts(&guarantee);
        let l = limit.as_ref().map(|l| {
            (0..self.kinds.len())
                .map(|k| {
                    let name = self.kinds.name(k);
                    if l.names().contains(name) {
                        l.scalar(name).thousandths()
                    } else {
                        u64::MAX
                    }
                })
                .collect()
        });
        let n = self.tree.intern(role);
        self.tree.node_mut(n).quota = Some(Quota {
            guarantee,
            limit,
            g,
            l,
        });
        self.quota_roles.insert(n);
        self.tree.sync_path(n, &self.kinds, &self.totals);
        Ok(())
    }

    fn remove_quota(&mut self, role: &str) -> Result<(), AllocatorError> {
        let n = self
            .tree
            .get(role)
            .filter(|n| self.quota_roles.contains(n))
            .ok_or_else(|| AllocatorError::UnknownRole(role.to_string()))?;
        self.tree.node_mut(n).quota = None;
        self.quota_roles.remove(&n);
        self.tree.sync_path(n, &self.kinds, &self.totals);
        Ok(())
    }

    fn quotas(&self) -> Vec<QuotaStatus> {
        self.quota_roles
            .iter()
            .filter_map(|n| {
                let node = self.tree.node(*n);
                let q = node.quota.as_ref()?;
                Some(QuotaStatus {
                    role: node.name.clone(),
                    guarantee: q.guarantee.clone(),
                    limit: q.limit.clone(),
                    consumed: self.kinds.to_resources(&node.consumption()),
                })
            })
            .collect()
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
        let mut by_role: BTreeMap<String, Resources> = BTreeMap::new();
        for agent in self.agents.iter().flatten() {
            for (m, r) in &agent.allocations {
                if let Some(mem) = self.member(*m) {
                    let slot = by_role.entry(mem.role.clone()).or_default();
                    if let Ok(sum) = slot.checked_add(r) {
                        *slot = sum;
                    }
                }
            }
        }
        let mut roles: BTreeSet<String> = self.weights().into_iter().map(|(r, _)| r).collect();
        for fw in self.frameworks.iter().flatten() {
            roles.extend(fw.spec.roles.iter().cloned());
        }
        roles.extend(by_role.keys().cloned());
        roles
            .into_iter()
            .map(|role| {
                let allocated = by_role.get(&role).cloned().unwrap_or_default();
                let amounts = self.kinds.amounts(&allocated);
                RoleShare {
                    weight: self.weight(&role),
                    dominant_share: kinds::dominant_share(&self.kinds, &amounts, &self.totals),
                    allocated,
                    role,
                }
            })
            .collect()
    }

    fn explain(&self, target: &ExplainTarget, now: Millis) -> Result<Explanation, AllocatorError> {
        let mut reasons = Vec::new();
        match target {
            ExplainTarget::Role(role) => {
                let n = self
                    .tree
                    .get(role)
                    .ok_or_else(|| AllocatorError::UnknownRole(role.clone()))?;
                let r = self.role_explain(n);
                if r.eligible_frameworks == 0 {
                    reasons.push(if r.suppressed_frameworks > 0 {
                        "every framework of the role is suppressed or inactive".to_string()
                    } else {
                        "no eligible framework subscribed to the role".to_string()
                    });
                }
                if let Some(q) = &r.quota {
                    if q.at_limit {
                        reasons.push("at quota limit".to_string());
                    }
                    if !q.unmet_guarantee.is_empty() {
                        reasons.push(format!("guarantee not yet met: owed {}", q.unmet_guarantee));
                    }
                }
                let holds: Vec<HoldInfo> = self
                    .held_agents
                    .iter()
                    .filter_map(|a| self.hold_info(*a))
                    .filter(|h| {
                        self.tree
                            .get(&h.role)
                            .is_some_and(|x| self.tree.is_ancestor_or_self(n, x))
                    })
                    .collect();
                Ok(Explanation {
                    kind: "role",
                    at_ms: now,
                    roles: vec![r],
                    framework: None,
                    holds,
                    reasons,
                })
            }
            ExplainTarget::Framework(id) => {
                let f = self.framework_index(id)?;
                let fw = self
                    .fw(f)
                    .ok_or_else(|| AllocatorError::UnknownFramework(id.clone()))?;
                if !fw.active {
                    reasons.push("framework is inactive (disconnected)".to_string());
                }
                let mut roles = Vec::new();
                let mut per_role = Vec::new();
                let mut holds = Vec::new();
                for (role, m) in &fw.members {
                    let Some(mem) = self.member(*m) else {
                        continue;
                    };
                    roles.push(self.role_explain(mem.node));
                    let mut allocated = Resources::new();
                    for agent in self.agents.iter().flatten() {
                        if let Some(r) = agent.allocations.get(m)
                            && let Ok(sum) = allocated.checked_add(r)
                        {
                            allocated = sum;
                        }
                    }
                    let mut filters = Vec::new();
                    for a in &mem.filtered_agents {
                        if let Some(agent) = self.agent(*a)
                            && let Some(fl) = agent.filters.get(m)
                            && fl.until > now
                            && filters.len() < EXPLAIN_LIST_MAX
                        {
                            filters.push(FilterInfo {
                                agent: agent.id.clone(),
                                role: role.clone(),
                                refused: fl.refused.to_resources(),
                                until_ms: fl.until,
                            });
                        }
                    }
                    let filters_total = mem.filtered_agents.len();
                    let mut mismatches = Vec::new();
                    let mut mismatches_total = 0;
                    if mem.constraints.is_some() {
                        for agent in self.agents.iter().flatten() {
                            if bit(&agent.mismatch, *m) {
                                mismatches_total += 1;
                                if mismatches.len() < EXPLAIN_LIST_MAX {
                                    mismatches.push(agent.id.clone());
                                }
                            }
                        }
                    }
                    if mem.suppressed {
                        reasons.push(format!("role '{role}' is suppressed"));
                    }
                    if !mem.subscribed {
                        reasons.push(format!("no longer subscribed to role '{role}'"));
                    }
                    if filters_total > 0 {
                        reasons.push(format!(
                            "role '{role}': filtered on {filters_total} agent(s) after declines"
                        ));
                    }
                    if mismatches_total > 0 {
                        reasons.push(format!(
                            "role '{role}': offer constraints exclude {mismatches_total} of {} agent(s)",
                            self.agent_ids.len()
                        ));
                    }
                    if let Some(q) = roles.last().and_then(|r| r.quota.as_ref())
                        && q.at_limit
                    {
                        reasons.push(format!("role '{role}' is at its quota limit"));
                    }
                    for a in &mem.holds {
                        if let Some(h) = self.hold_info(*a) {
                            holds.push(h);
                        }
                    }
                    per_role.push(FrameworkRoleExplain {
                        role: role.clone(),
                        dominant_share: kinds::dominant_share(
                            &self.kinds,
                            &mem.alloc,
                            &self.totals,
                        ),
                        allocated,
                        suppressed: mem.suppressed,
                        subscribed: mem.subscribed,
                        filters,
                        filters_total,
                        constraint_mismatches: mismatches,
                        constraint_mismatches_total: mismatches_total,
                    });
                }
                if !holds.is_empty() {
                    reasons.push(format!(
                        "{} agent(s) held for the framework's demand",
                        holds.len()
                    ));
                }
                let mut caps = Vec::new();
                if fw.spec.revocable {
                    caps.push("REVOCABLE_RESOURCES");
                }
                if fw.spec.gpus {
                    caps.push("GPU_RESOURCES");
                }
                let min = if fw.spec.min_allocatable.is_empty() {
                    self.config.min_allocatable.clone()
                } else {
                    fw.spec.min_allocatable.clone()
                };
                let demands = fw
                    .members
                    .values()
                    .filter_map(|m| self.member(*m)?.need.as_ref())
                    .map(|n| DemandExplain {
                        role: n.role.clone(),
                        shape: n.shape.clone(),
                        count: n.count,
                        same_agent: n.same_agent,
                    })
                    .collect();
                Ok(Explanation {
                    kind: "framework",
                    at_ms: now,
                    roles,
                    framework: Some(FrameworkExplain {
                        framework: id.clone(),
                        active: fw.active,
                        capabilities: caps,
                        min_allocatable: min,
                        roles: per_role,
                        demands,
                        holds: holds.clone(),
                    }),
                    holds,
                    reasons,
                })
            }
        }
    }

    fn check_invariants(&self) -> Result<(), String> {
        let mut totals: Amounts = Vec::new();
        let mut available: Amounts = Vec::new();
        let mut member_alloc: BTreeMap<u32, Amounts> = BTreeMap::new();
        for agent in self.agents.iter().flatten() {
            kinds::add(
                &mut available,
                &self
                    .kinds
                    .amounts_where(&agent.free, |r| r.reservation.is_none()),
            );
            let mut sum = agent.free.clone();
            for (m, r) in &agent.allocations {
                if self.member(*m).is_none() {
                    return Err(format!("agent {}: allocation to a dead member", agent.id));
                }
                sum = sum
                    .checked_add(r)
                    .map_err(|e| format!("agent {}: {e}", agent.id))?;
                kinds::add(member_alloc.entry(*m).or_default(), &self.kinds.amounts(r));
            }
            if sum != agent.total {
                return Err(format!(
                    "agent {}: free {} + allocated = {} != total {}",
                    agent.id, agent.free, sum, agent.total
                ));
            }
            kinds::add(&mut totals, &self.kinds.amounts(&agent.total));
            let count = agent.filters.len();
            if count != agent.filtered_count {
                return Err(format!("agent {}: filter count drift", agent.id));
            }
        }
        let trim = |v: &[u64]| -> Vec<u64> {
            let mut v = v.to_vec();
            while v.last() == Some(&0) {
                v.pop();
            }
            v
        };
        if trim(&totals) != trim(&self.totals) {
            return Err("cluster totals drift".to_string());
        }
        if trim(&available) != trim(&self.available) {
            return Err("unreserved availability drift".to_string());
        }
        for (i, mem) in self.members.iter().enumerate() {
            if let Some(mem) = mem {
                let want = member_alloc.remove(&(i as u32)).unwrap_or_default();
                if trim(&want) != trim(&mem.alloc) {
                    return Err(format!("member {i} ({}) allocation drift", mem.role));
                }
            }
        }
        Ok(())
    }
}
