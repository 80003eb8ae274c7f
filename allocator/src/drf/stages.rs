//! The two offer stages of a cycle, over the agents in a seeded random order: the quota
//! stage (roles below their guarantee, lowest weighted share first, offered unreserved
//! resources cut to what is still owed) and the fair stage (per agent, the first eligible
//! member in DRF order that is not filtered, matches its constraints and gets a candidate
//! meeting its minimum, cut by quota limits, other roles' unmet guarantees and holds).
//! Offers are booked as they are made (`emit`). Must never offer a member anything its
//! filters, constraints, capabilities, quota limits or a hold exclude.

use std::borrow::Cow;
use std::collections::BTreeSet;

use agora_resources::Resources;
use rand::Rng;
use rand::seq::SliceRandom;

use super::DrfAllocator;
use super::bitset::bit;
use super::candidates::{chop, fits};
use crate::Allocation;
use crate::kinds;
use crate::tree::{Key, ROOT};

/// Quota roles tried per agent in the quota stage (bounds a cycle's cost when agents
/// suit no quota role).
pub(super) const STAGE1_ROLES_PER_AGENT: usize = 64;

impl DrfAllocator {
    pub(super) fn agent_order(&mut self) -> Vec<u32> {
        let live = self.live_members;
        // Agents on which every member's filter is armed are skipped whole (with quotas
        // armed filters are compared exactly, see `fair_stage`).
        let skip_filtered = self.quota_roles.is_empty();
        let mut order: Vec<u32> = self
            .agents
            .iter()
            .enumerate()
            .filter(|(_, a)| {
                a.as_ref().is_some_and(|a| {
                    !a.free.is_empty() && (!skip_filtered || a.filtered_count < live)
                })
            })
            .map(|(i, _)| i as u32)
            .collect();
        order.shuffle(&mut self.rng);
        order
    }

    /// Book and report an offer to member `m` on agent `a`: `cand`, or everything free
    /// when `None`.
    pub(super) fn emit(
        &mut self,
        a: u32,
        m: u32,
        cand: Option<Resources>,
        out: &mut Vec<Allocation>,
    ) {
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
    pub(super) fn unmet_roles(&self) -> Vec<(Key, u32)> {
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

    pub(super) fn quota_stage(&mut self, agents: &[u32], out: &mut Vec<Allocation>) {
        let mut unmet: BTreeSet<(Key, u32)> = self.unmet_roles().into_iter().collect();
        for &a in agents {
            if unmet.is_empty() {
                return;
            }
            let roles: Vec<(Key, u32)> =
                unmet.iter().take(STAGE1_ROLES_PER_AGENT).copied().collect();
            for (key, q) in roles {
                let salt: u64 = self.rng.random();
                let Some(agent) = self.agent(a) else {
                    break;
                };
                if agent.free.is_empty() {
                    break;
                }
                let owed = self.unmet(q);
                let required = &self.required;
                let mut found: Option<(u32, Resources)> = None;
                self.tree.walk(q, salt, &mut |m| {
                    if bit(&agent.mismatch, m) {
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
                    if !useful
                        || !self.meets_minimum(&fw.spec, &cand)
                        || Self::filter_blocks(agent, m, &cand)
                    {
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

    pub(super) fn fair_stage(&mut self, agents: &[u32], out: &mut Vec<Allocation>) {
        // With quotas an armed filter may go stale without anything freeing on its agent
        // (another role's guarantee met raises what a role may take): compare exactly.
        let quotas = !self.quota_roles.is_empty();
        let mut given: Vec<u32> = Vec::new();
        for &a in agents {
            given.clear();
            let hold = self.hold_cut(a);
            loop {
                let salt: u64 = self.rng.random();
                let Some(agent) = self.agent(a) else {
                    break;
                };
                if agent.free.is_empty() || (!quotas && agent.filtered_count >= self.live_members) {
                    break;
                }
                let unarmed = agent.filters.len() > agent.filtered_count;
                let required = &self.required;
                let mut found: Option<(u32, Option<Resources>)> = None;
                self.tree.walk(ROOT, salt, &mut |m| {
                    let armed = bit(&agent.filtered, m);
                    if (armed && !quotas) || bit(&agent.mismatch, m) || given.contains(&m) {
                        return false;
                    }
                    if hold.as_ref().is_some_and(|(h, _)| *h == m) {
                        return false;
                    }
                    let Some(cand) = self.offerable(agent, m, hold.as_ref(), required) else {
                        return false;
                    };
                    if (armed || unarmed) && Self::filter_blocks(agent, m, &cand) {
                        return false;
                    }
                    let Some(mem) = self.member(m) else {
                        return false;
                    };
                    let Some(fw) = self.fw(mem.framework) else {
                        return false;
                    };
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
}
