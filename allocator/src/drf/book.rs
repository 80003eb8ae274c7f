//! Booking: moving resources on an agent between its free part and a member's allocation,
//! and keeping every derived amount in step in the same call (the member's scalar
//! vector, the role tree's allocated and reserved-allocated amounts, the cluster's
//! unreserved availability, the unmet quota headroom). Also the events that book or
//! return resources (tasks already running, recovered offers, conversions by RESERVE /
//! UNRESERVE / CREATE / DESTROY) and `audit`, which recounts the book from scratch.
//!
//! Must never: let free + allocated differ from an agent's total, book what is not free,
//! or change anything when a call fails (every check comes before the first change).

use std::collections::BTreeMap;

use agora_resources::{Resources, Value};

use super::candidates::is_plain;
use super::{DrfAllocator, accounting};
use crate::kinds::{self, Amounts};
use crate::tree::ROOT;
use crate::{AllocatorError, Millis};

impl DrfAllocator {
    /// Move `res` on agent `a` between free and member `m` (`take`: free -> member).
    /// Scalar names must have been interned.
    pub(super) fn book(
        &mut self,
        a: u32,
        m: u32,
        res: &Resources,
        take: bool,
    ) -> Result<(), AllocatorError> {
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
            if agent.allocations.insert(m, slot).is_none() {
                self.count_alloc_agent(m, true);
            }
        } else {
            let cur = agent.allocations.get(&m).ok_or_else(|| {
                accounting(&agent.id, "nothing allocated to that framework and role")
            })?;
            let rest = cur.checked_sub(res).map_err(|e| accounting(&agent.id, e))?;
            let new_free = agent
                .free
                .checked_add(res)
                .map_err(|e| accounting(&agent.id, e))?;
            agent.free = new_free;
            if rest.is_empty() {
                agent.allocations.remove(&m);
                self.count_alloc_agent(m, false);
            } else {
                agent.allocations.insert(m, rest);
            }
        }
        self.book_amounts(m, res, take);
        Ok(())
    }

    /// Move everything free on agent `a` to member `m` (the common whole-agent offer,
    /// without copying the free part twice); returns what was taken.
    pub(super) fn take_whole(&mut self, a: u32, m: u32) -> Result<Resources, AllocatorError> {
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
        if agent.allocations.insert(m, slot).is_none() {
            self.count_alloc_agent(m, true);
        }
        self.book_amounts(m, &taken, true);
        Ok(taken)
    }

    /// Member `m` gained (or lost) its allocation on one more agent.
    fn count_alloc_agent(&mut self, m: u32, gained: bool) {
        if let Some(mem) = self.member_mut(m) {
            mem.alloc_agents = if gained {
                mem.alloc_agents.saturating_add(1)
            } else {
                mem.alloc_agents.saturating_sub(1)
            };
        }
    }

    /// The vector side of a booking: member, role tree, cluster availability, quota.
    pub(super) fn book_amounts(&mut self, m: u32, res: &Resources, take: bool) {
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
            if let (Value::Scalar(s), true) = (&e.value, e.revocable) {
                let k = self.kinds.intern(&e.name);
                if let Some(mem) = self.members.get_mut(m as usize).and_then(Option::as_mut) {
                    if mem.revocable.len() <= k {
                        mem.revocable.resize(k + 1, 0);
                    }
                    mem.revocable[k] = if take {
                        mem.revocable[k].saturating_add(s.thousandths())
                    } else {
                        mem.revocable[k].saturating_sub(s.thousandths())
                    };
                }
            }
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
    pub(super) fn account_reservations(&mut self, total: &Resources, add: bool) {
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

    /// Resources already in use (`Allocator::add_allocated`).
    pub(super) fn book_in_use(
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

    /// Resources coming back (`Allocator::recover`), with a decline filter when
    /// `refuse_until` is given.
    pub(super) fn recover_resources(
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
        let prior = refuse_until.and_then(|_| self.agent(a)).and_then(|ag| {
            let f = ag.filters.get(&m)?.clone();
            Some((f, super::bitset::bit(&ag.filtered, m)))
        });
        self.book(a, m, resources, false)?;
        self.free_grew(a);
        if let Some(until) = refuse_until {
            self.add_filter(a, m, resources, until, prior);
        }
        Ok(())
    }

    /// `Allocator::convert_resources`.
    pub(super) fn convert_booked(
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

    /// Recount the book from the agents and compare (`Allocator::check_invariants`).
    pub(super) fn audit(&self) -> Result<(), String> {
        let mut totals: Amounts = Vec::new();
        let mut available: Amounts = Vec::new();
        let mut member_alloc: BTreeMap<u32, Amounts> = BTreeMap::new();
        // Per member: agents it holds something on, and its revocable scalars.
        let mut member_agents: BTreeMap<u32, (u32, Amounts)> = BTreeMap::new();
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
                let held = member_agents.entry(*m).or_default();
                held.0 += 1;
                for e in r {
                    if let (Value::Scalar(s), true) = (&e.value, e.revocable)
                        && let Some(k) = self.kinds.get(&e.name)
                    {
                        if held.1.len() <= k {
                            held.1.resize(k + 1, 0);
                        }
                        held.1[k] = held.1[k].saturating_add(s.thousandths());
                    }
                }
            }
            if sum != agent.total {
                return Err(format!(
                    "agent {}: free {} + allocated = {} != total {}",
                    agent.id, agent.free, sum, agent.total
                ));
            }
            kinds::add(&mut totals, &self.kinds.amounts(&agent.total));
            let armed = agent
                .filters
                .keys()
                .filter(|m| super::bitset::bit(&agent.filtered, **m))
                .count();
            let bits: u32 = agent.filtered.iter().map(|w| w.count_ones()).sum();
            if armed != agent.filtered_count || bits as usize != armed {
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
                let (agents, revocable) = member_agents.remove(&(i as u32)).unwrap_or_default();
                if agents != mem.alloc_agents || trim(&revocable) != trim(&mem.revocable) {
                    return Err(format!(
                        "member {i} ({}) agent count or revocable drift",
                        mem.role
                    ));
                }
            }
        }
        Ok(())
    }
}
