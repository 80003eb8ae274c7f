//! Demands and holds: the demand pass that serves declared demands (a gang gets all its
//! agents in one cycle or none) and the holds that keep an agent's free resources, up to
//! the demand's shape, back for the most under-served demanding frameworks. Owns placing,
//! maintaining and dropping holds within their bounds (`HoldConfig`: frameworks, agents
//! per framework, maximum age, stall time, cooldown) and the cooldowns. Must never hold
//! more than the shape per agent, nor keep a hold past its bounds.

use agora_resources::Resources;

use super::candidates::{fit_count, fits};
use super::{DrfAllocator, Need};
use crate::kinds;
use crate::tree::ROOT;
use crate::{Allocation, Millis};

#[derive(Clone, Debug)]
pub(super) struct Hold {
    pub(super) member: u32,
    pub(super) since: Millis,
    pub(super) last_progress: Millis,
    /// Sum over needed kinds of min(free, need) when progress was last seen.
    pub(super) mark: u64,
}

/// Sum over needed kinds of min(have, need): progress toward a hold's shape.
pub(super) fn progress(have: &[u64], need: &[u64]) -> u64 {
    need.iter()
        .enumerate()
        .map(|(k, n)| kinds::at(have, k).min(*n))
        .fold(0u64, u64::saturating_add)
}

impl DrfAllocator {
    /// Drop member `m`'s holds (all, or the one on `only`), starting a cooldown at `now`.
    pub(super) fn drop_holds(&mut self, m: u32, cooldown_from: Option<Millis>) {
        let agents: Vec<u32> = self
            .member(m)
            .map(|x| x.holds.iter().copied().collect())
            .unwrap_or_default();
        for a in agents {
            self.drop_hold(a, cooldown_from);
        }
    }

    pub(super) fn drop_hold(&mut self, a: u32, cooldown_from: Option<Millis>) {
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
        // What the hold kept back is offerable again: filters that covered only the rest
        // must not keep it from their frameworks.
        self.recheck_filters(a);
    }

    pub(super) fn maintain_holds(&mut self, now: Millis) {
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
                .and_then(|x| x.need.as_ref().map(|n| n.held.clone()))
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

    pub(super) fn place_hold(&mut self, a: u32, m: u32, now: Millis, mark: u64) {
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

    /// Members holding at least one agent now.
    pub(super) fn holders(&self) -> std::collections::BTreeSet<u32> {
        self.held_agents
            .iter()
            .filter_map(|a| self.agent(*a)?.hold.as_ref().map(|h| h.member))
            .collect()
    }

    /// Agents in the order the demand pass examines them for member `m`: its held
    /// agents first, then every other agent by index.
    pub(super) fn demand_agent_order(&self, m: u32) -> Vec<u32> {
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
    pub(super) fn demand_pass(&mut self, now: Millis, out: &mut Vec<Allocation>) {
        self.maintain_holds(now);
        let max = self.config.holds.max_demands_per_cycle;
        if max == 0 {
            return;
        }
        let mut order = Vec::new();
        let salt: u64 = rand::Rng::random(&mut self.rng);
        {
            let members = &self.members;
            let demanding = &self.demanding;
            self.tree.walk(ROOT, salt, &mut |m| {
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
        for m in order {
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
            // At most `max_frameworks` frameworks hold at a time, counting holds taken in
            // earlier cycles: a new holder waits until one of them is served or dropped.
            let holds_already = self.member(m).is_some_and(|x| !x.holds.is_empty());
            if !holds_already && self.holders().len() >= self.config.holds.max_frameworks {
                continue;
            }
            self.extend_holds(m, &need, now);
        }
    }

    /// Give member `m` holds on the agents closest to fitting its need.
    pub(super) fn extend_holds(&mut self, m: u32, need: &Need, now: Millis) {
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
            scored.push((progress(&am, &need.held), a));
        }
        // Closest to fitting first; lower index on ties (deterministic).
        scored.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
        for (mark, a) in scored.into_iter().take(want - have) {
            self.place_hold(a, m, now, mark);
        }
    }
}
