//! Decline filters: per (member, agent), what the member refused there and until when.
//! Owns adding a filter (refusals of one agent declined together add up), dropping
//! filters that no longer cover what the member could be offered once more is free on
//! the agent, and expiring them in deadline order (a heap, `O(expired log n)`). Keeps the
//! agent's filtered bits and count and the member's filtered agents in step. Must never
//! book resources.

use std::cmp::Reverse;

use agora_resources::{CompactResources, Resources};

use super::DrfAllocator;
use super::bitset::{clear_bit, set_bit};
use crate::Millis;

#[derive(Clone, Debug)]
pub(super) struct Filter {
    /// Compact: a master keeps one filter per declining framework on every agent, and a
    /// refused bag of cpus, mem and disk is about 600 bytes as a `Resources` but 32 as
    /// `CompactResources` (10 frameworks on 4,000 agents held 25 MB of them).
    pub(super) refused: CompactResources,
    pub(super) until: Millis,
}

impl DrfAllocator {
    pub(super) fn drop_filter(&mut self, a: u32, m: u32) {
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
    pub(super) fn free_grew(&mut self, a: u32) {
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
    pub(super) fn add_filter(
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
                refused: CompactResources::from(&refused),
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

    pub(super) fn expire_filters(&mut self, now: Millis) {
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
}
