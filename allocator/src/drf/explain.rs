//! Reports on the book, for operators: `explain` (why a role or a framework is or is not
//! getting offers: shares, quota standing, suppression, filters, constraint mismatches,
//! holds, in plain-language reasons) and the role shares for the state endpoints and
//! metrics. Lists are bounded by `EXPLAIN_LIST_MAX`. Reads only; must never change the
//! book, the order or the RNG.

use std::collections::{BTreeMap, BTreeSet};

use agora_resources::Resources;

use super::DrfAllocator;
use super::bitset::bit;
use crate::kinds::{self, Amounts};
use crate::{
    Allocator, AllocatorError, DemandExplain, EXPLAIN_LIST_MAX, ExplainTarget, Explanation,
    FilterInfo, FrameworkExplain, FrameworkRoleExplain, HoldInfo, Millis, QuotaExplain,
    RoleExplain, RoleGauge, RoleShare,
};

impl DrfAllocator {
    pub(super) fn frameworks_of_role(&self, n: u32) -> (usize, usize) {
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

    pub(super) fn hold_info(&self, a: u32) -> Option<HoldInfo> {
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
            needed: self.kinds.to_resources(&need.held),
            free_now,
            since_ms: h.since,
            expires_ms: h.since.saturating_add(self.config.holds.max_ms),
        })
    }

    pub(super) fn role_explain(&self, n: u32) -> RoleExplain {
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

    /// `Allocator::role_shares`.
    pub(super) fn shares_by_role(&self) -> Vec<RoleShare> {
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

    /// `Allocator::explain`.
    pub(super) fn explain_target(
        &self,
        target: &ExplainTarget,
        now: Millis,
    ) -> Result<Explanation, AllocatorError> {
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
                        let largest = mem
                            .filtered_agents
                            .iter()
                            .filter_map(|a| self.agent(*a)?.filters.get(m))
                            .map(|f| f.refused.to_resources())
                            .max_by_key(|r| self.kinds.amounts(r).iter().sum::<u64>())
                            .unwrap_or_default();
                        let hint = if mem.need.is_none() {
                            "; if its tasks need more than that at once, declare a demand so \
                             agents are held for it"
                        } else {
                            ""
                        };
                        reasons.push(format!(
                            "role '{role}': filtered on {filters_total} agent(s) after declining \
                             offers (the largest declined: {largest}){hint}"
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
                    if self.eligible(mem) {
                        self.wait_reasons(*m, role, now, &mut reasons);
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

    /// `Allocator::role_gauges`: the role shares from the members' amounts, without
    /// walking the agents (`O(members + roles)`; a metrics scrape calls it).
    pub(super) fn gauges_by_role(&self) -> Vec<RoleGauge> {
        // Per role: (non-revocable, revocable) scalars of its members with an allocation.
        let mut by_role: BTreeMap<&str, (Amounts, Amounts)> = BTreeMap::new();
        for mem in self.members.iter().flatten() {
            if mem.alloc_agents > 0 {
                let slot = by_role.entry(mem.role.as_str()).or_default();
                kinds::add(&mut slot.0, &mem.alloc);
                kinds::add(&mut slot.1, &mem.revocable);
            }
        }
        let mut roles: BTreeSet<&str> = self
            .tree
            .nodes
            .iter()
            .filter(|n| n.weight_set)
            .map(|n| n.name.as_str())
            .collect();
        for fw in self.frameworks.iter().flatten() {
            roles.extend(fw.spec.roles.iter().map(String::as_str));
        }
        roles.extend(by_role.keys().copied());
        let empty = (Amounts::new(), Amounts::new());
        roles
            .into_iter()
            .map(|role| {
                let (held, revocable) = by_role.get(role).unwrap_or(&empty);
                let mut allocated: Vec<(String, u64)> = (0..self.kinds.len())
                    .filter_map(|k| {
                        let t = kinds::at(held, k).saturating_add(kinds::at(revocable, k));
                        (t > 0).then(|| (self.kinds.name(k).to_string(), t))
                    })
                    .collect();
                allocated.sort();
                RoleGauge {
                    role: role.to_string(),
                    weight: self.weight(role),
                    dominant_share: kinds::dominant_share(&self.kinds, held, &self.totals),
                    allocated,
                }
            })
            .collect()
    }

    /// Why demanding member `m` (eligible) waits, and what would help, in words.
    fn wait_reasons(&self, m: u32, role: &str, now: Millis, reasons: &mut Vec<String>) {
        let Some(mem) = self.member(m) else {
            return;
        };
        let Some(need) = &mem.need else {
            return;
        };
        let task = self.kinds.to_resources(&need.task);
        let what = if need.gang > 1 {
            format!("a gang of {} tasks of {task} across agents", need.gang)
        } else if need.count > 1 {
            format!("{} tasks of {task} on one agent", need.count)
        } else {
            format!("one task of {task}")
        };
        // Could the need ever fit: tasks that fit in the agents' totals for this member.
        let (mut ever, mut now_fit, mut best) = (0u32, 0u32, Amounts::new());
        let mut best_agent = String::new();
        let unit = if need.gang > 1 {
            &need.task
        } else {
            &need.per_agent
        };
        for (i, ag) in self.agents.iter().enumerate() {
            let (Some(agent), Some(fw)) = (ag, self.fw(mem.framework)) else {
                continue;
            };
            let whole = Self::candidate_from(agent.plain, &fw.spec, &mem.role, &agent.total);
            ever = ever.saturating_add(super::candidates::fit_count(
                &self.kinds.amounts(&whole),
                unit,
            ));
            let cut = agent.hold.as_ref().is_some_and(|h| h.member != m);
            if let Some((_, am)) = self.candidate_amounts(i as u32, m)
                && !cut
            {
                now_fit = now_fit.saturating_add(super::candidates::fit_count(&am, unit));
                if super::holds::progress(&am, &need.held)
                    > super::holds::progress(&best, &need.held)
                {
                    best = am;
                    best_agent = agent.id.clone();
                }
            }
        }
        if ever < need.gang {
            reasons.push(format!(
                "role '{role}': its demand ({what}) can never be met: the agents, even empty, \
                 have room for {ever} of {} (add larger agents or shrink the demand)",
                need.gang
            ));
            return;
        }
        if !mem.holds.is_empty() {
            let mut free = Resources::new();
            let mut first_end = Millis::MAX;
            for a in &mem.holds {
                if let Some(h) = self.agent(*a).and_then(|x| x.hold.as_ref()) {
                    first_end = first_end.min(h.since.saturating_add(self.config.holds.max_ms));
                }
                if let Some((c, _)) = self.candidate_amounts(*a, m)
                    && let Ok(sum) = free.checked_add(&c)
                {
                    free = sum;
                }
            }
            reasons.push(format!(
                "role '{role}': waiting for its demand ({what}) on {} held agent(s): nobody \
                 else is offered what frees there up to the demand; free for it there now: \
                 {free}; offered as soon as it fits; the holds end at the latest at {first_end} \
                 ms",
                mem.holds.len()
            ));
            return;
        }
        let holders: Vec<String> = self
            .holders()
            .into_iter()
            .filter(|h| *h != m)
            .filter_map(|h| self.fw(self.member(h)?.framework).map(|f| f.id.clone()))
            .collect();
        let cooling = self
            .agents
            .iter()
            .enumerate()
            .filter(|(i, ag)| {
                ag.is_some() && mem.cooldowns.get(&(*i as u32)).is_some_and(|t| *t > now)
            })
            .count();
        let free_part = if best_agent.is_empty() {
            "nothing is free for it on any agent".to_string()
        } else {
            format!(
                "the most free for it on one agent is {} on '{best_agent}'",
                self.kinds.to_resources(&best)
            )
        };
        if now_fit >= need.gang {
            reasons.push(format!(
                "role '{role}': its demand ({what}) fits on free resources now: it is offered \
                 in the next allocation cycle"
            ));
        } else if !holders.is_empty() && holders.len() >= self.config.holds.max_frameworks {
            reasons.push(format!(
                "role '{role}': its demand ({what}) fits nowhere now ({free_part}); agents \
                 are held for {} already and at most {} framework(s) may hold at a time: it \
                 is served when its demand fits on free resources, or holds agents itself once \
                 theirs is served or ends",
                holders.join(", "),
                self.config.holds.max_frameworks
            ));
        } else if self.config.holds.max_frameworks == 0 {
            reasons.push(format!(
                "role '{role}': its demand ({what}) fits nowhere now ({free_part}) and holds \
                 are disabled: it waits until enough frees at once (enable holds to keep \
                 freed resources back for it)"
            ));
        } else if cooling > 0 {
            reasons.push(format!(
                "role '{role}': its demand ({what}) fits nowhere now ({free_part}); its holds \
                 were dropped (stalled or too old) and {cooling} agent(s) cool down before it \
                 may hold them again"
            ));
        } else {
            reasons.push(format!(
                "role '{role}': its demand ({what}) fits nowhere now ({free_part}); it \
                 holds agents from the next allocation cycle"
            ));
        }
    }
}
