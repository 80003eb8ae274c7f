//! Agents joining and leaving: an agent's book (total, free part, attributes and the
//! mismatch bits of constrained members), and what its total adds to or takes from the
//! cluster totals (the share denominators), the unreserved availability and the role
//! tree's reservations. When totals change, every share key is re-derived before the
//! next cycle (`resync_after_totals`). Must never offer anything.

use std::collections::BTreeMap;

use agora_resources::{Attributes, Resources};

use super::bitset::set_bit;
use super::candidates::is_plain;
use super::{Agent, DrfAllocator, insert_slot};
use crate::AllocatorError;
use crate::kinds;

impl DrfAllocator {
    /// An agent registered (`Allocator::add_agent_with_attributes`).
    pub(super) fn admit_agent(
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

    /// An agent left (`Allocator::remove_agent`): whatever was booked on it is returned
    /// to its members first.
    pub(super) fn retire_agent(&mut self, agent: &str) -> Result<(), AllocatorError> {
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

    pub(super) fn resync_after_totals(&mut self) {
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
}
