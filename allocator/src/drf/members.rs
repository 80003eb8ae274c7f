//! Members: one per (framework, role) the allocator has seen. Owns a member's eligibility
//! (subscribed, not suppressed, framework active), its place in its role's sorted order,
//! and what the framework's spec makes of it (subscription, compiled offer constraints
//! and the per-agent mismatch bits, the declared demand). Must never book resources or
//! touch filters; the only hold it drops is that of a member whose demand is withdrawn.

use std::collections::{BTreeMap, BTreeSet};

use super::bitset::{clear_bit, set_bit};
use super::{DrfAllocator, Member, Need, insert_slot};
use crate::constraints::{CompiledConstraints, RoleConstraints};
use crate::kinds;
use crate::{AllocatorError, FrameworkSpec};

impl DrfAllocator {
    pub(super) fn eligible(&self, m: &Member) -> bool {
        m.subscribed && !m.suppressed && self.fw(m.framework).is_some_and(|f| f.active)
    }

    /// Re-key member `m` in its role's order; `sync` also re-keys the role (the caller
    /// may do it for the whole path instead).
    pub(super) fn relist_with(&mut self, m: u32, sync: bool) {
        let Some(mem) = self.member(m) else {
            return;
        };
        let share = self.eligible(mem).then(|| {
            kinds::share_key(kinds::dominant_share(&self.kinds, &mem.alloc, &self.totals))
        });
        let (old, node) = (mem.listed, mem.node);
        // The tie-break only keeps keys unique; `Tree::walk` decides ties afresh.
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
    pub(super) fn relist(&mut self, m: u32) {
        self.relist_with(m, true);
    }

    pub(super) fn need_of(&self, spec: &FrameworkSpec, role: &str) -> Option<Need> {
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
        let held = per_agent
            .iter()
            .map(|x: &u64| x.saturating_mul(u64::from(gang)))
            .collect();
        Some(Need {
            held,
            role: role.to_string(),
            shape: d.shape.clone(),
            count,
            same_agent: d.same_agent,
            per_agent,
            task,
            gang,
        })
    }

    pub(super) fn compile_constraints(
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
    pub(super) fn refresh_mismatch(&mut self, m: u32) {
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

    pub(super) fn new_member(&mut self, f: u32, role: &str, subscribed: bool) -> u32 {
        let node = self.tree.intern(role);
        let member = Member {
            framework: f,
            role: role.to_string(),
            node,
            alloc: Vec::new(),
            revocable: Vec::new(),
            alloc_agents: 0,
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
    pub(super) fn apply_spec(
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
}
