//! Decline filters: per (member, agent), what the member refused there and until when.
//! Owns adding a filter (refusals of one agent declined together add up), dropping
//! filters that no longer cover what the member could be offered once more is free on
//! the agent or a hold there ends, and expiring them in deadline order (a heap,
//! `O(expired log n)`). A filter blocks the resources it names and any subset: it is
//! compared with what the member would really be offered (cut by holds and quota), never
//! with the agent's whole free part. A filter whose bit is set ("armed") is known to cover
//! that offer and blocks by a bit test; any other is compared with each offer exactly. Keeps the
//! agent's filtered bits and count and the member's filtered agents in step. Must never
//! book resources.

use std::cmp::Reverse;

use agora_resources::{CompactResources, Resources};

use super::bitset::{bit, clear_bit, set_bit};
use super::{Agent, DrfAllocator};
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

    /// The filter stays, but no longer blocks by its bit: it is compared exactly with
    /// each offer from now on.
    fn disarm(&mut self, a: u32, m: u32) {
        if let Some(agent) = self.agent_mut(a)
            && clear_bit(&mut agent.filtered, m)
        {
            agent.filtered_count -= 1;
        }
    }

    /// Whether member `m`'s filter on `agent` blocks offering it `cand`: the filter names
    /// all of `cand` (a subset of what was refused is refused too).
    pub(super) fn filter_blocks(agent: &Agent, m: u32, cand: &Resources) -> bool {
        agent
            .filters
            .get(&m)
            .is_some_and(|f| f.refused.contains(cand))
    }

    /// More became free on agent `a`: disarm the filters that no longer cover what their
    /// member could be offered there.
    pub(super) fn free_grew(&mut self, a: u32) {
        let Some(agent) = self.agent(a) else {
            return;
        };
        // Every armed filter was checked against the free part `filter_basis` (or a
        // smaller one, when it was added later): while nothing grew beyond it, each still
        // covers what its member could be offered.
        if agent.filtered_count == 0 || agent.filter_basis.contains(&agent.free) {
            return;
        }
        self.recheck_filters(a);
    }

    /// Re-check every armed filter on agent `a` against what its member could be offered
    /// now (after more became free, or a hold there ended): one that no longer covers it
    /// is disarmed, so a filter never keeps back resources its framework did not refuse.
    pub(super) fn recheck_filters(&mut self, a: u32) {
        let Some(agent) = self.agent(a) else {
            return;
        };
        if agent.filtered_count == 0 {
            return;
        }
        let hold = self.hold_cut(a);
        let mut stale = Vec::new();
        for (m, f) in &agent.filters {
            if !bit(&agent.filtered, *m) {
                continue;
            }
            match self.offerable(agent, *m, hold.as_ref(), &self.required) {
                Some(cand) if f.refused.contains(&cand) => {}
                _ => stale.push(*m),
            }
        }
        let free = agent.free.clone();
        for m in stale {
            self.disarm(a, m);
        }
        if let Some(agent) = self.agent_mut(a) {
            agent.filter_basis = free;
        }
    }

    /// Filters member `m` on agent `a` until `until`: from now on `m` is not offered there
    /// `refused` or any part of it. `prior` is the filter `m` had there before the refused
    /// resources came back. The filter is *armed* (blocks by a bit test, the agent may be
    /// skipped whole) when it covers what `m` would be offered there now (the free part
    /// cut by another member's hold and by quota); otherwise each offer is compared with
    /// it.
    pub(super) fn add_filter(
        &mut self,
        a: u32,
        m: u32,
        refused: &Resources,
        until: Millis,
        prior: Option<(Filter, bool)>,
    ) {
        let Some(agent) = self.agent(a) else {
            return;
        };
        // Several offers of one agent declined together each come back here: their refusals
        // add up (until the earliest expiry), or the second would see the first's resources
        // free again and not filter at all. Only an armed prior filter is that recent.
        let (refused, until) = match prior {
            Some((f, true)) => match f.refused.to_resources().checked_add(refused) {
                Ok(sum) => (sum, f.until.min(until)),
                Err(_) => (refused.clone(), until),
            },
            _ => (refused.clone(), until),
        };
        let hold = self.hold_cut(a);
        let covers = self
            .offerable(agent, m, hold.as_ref(), &self.required)
            .is_some_and(|cand| refused.contains(&cand));
        let Some(agent) = self.agent_mut(a) else {
            return;
        };
        agent.filters.insert(
            m,
            Filter {
                refused: CompactResources::from(&refused),
                until,
            },
        );
        if covers {
            // The free part only shrank since the last check (every growth re-checks), so
            // every earlier armed filter covers what is offerable from this smaller basis.
            agent.filter_basis = agent.free.clone();
            if set_bit(&mut agent.filtered, m) {
                agent.filtered_count += 1;
            }
        } else if clear_bit(&mut agent.filtered, m) {
            agent.filtered_count -= 1;
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
