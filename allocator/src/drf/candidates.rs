//! What a member could be offered on an agent: the candidate (the agent's free part cut
//! to what the member may receive: reservations of its role or an ancestor, revocable
//! and gpus only with the capability), the minimum-size check, and the scalar helpers
//! the stages and holds share (cutting a candidate to per-kind allowances, fitting a
//! shape). Pure functions of the book; must never change it.

use std::borrow::Cow;

use agora_resources::{Resources, Scalar, Value};

use super::bitset::bit;
use super::{Agent, DrfAllocator};
use crate::FrameworkSpec;
use crate::kinds::{self, Amounts, Kinds};

pub(super) fn is_plain(total: &Resources) -> bool {
    total
        .iter()
        .all(|r| r.reservation.is_none() && !r.revocable && r.name != "gpus")
}

/// `cand` with its unreserved non-revocable scalars cut to `allowed` (per kind; missing
/// kinds unbounded). Gpus are cut to whole numbers.
pub(super) fn chop(kinds: &Kinds, cand: &Resources, allowed: &[u64]) -> Resources {
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

pub(super) fn fits(have: &[u64], need: &[u64]) -> bool {
    need.iter()
        .enumerate()
        .all(|(k, n)| kinds::at(have, k) >= *n)
}

/// How many tasks of `task` fit in `have` (scalars only); `u32::MAX` for an empty task.
pub(super) fn fit_count(have: &[u64], task: &[u64]) -> u32 {
    let mut n = u64::from(u32::MAX);
    for (k, t) in task.iter().enumerate() {
        if *t > 0 {
            n = n.min(kinds::at(have, k) / t);
        }
    }
    n as u32
}

/// Whether `anc` is `role` or one of its ancestors (`eng` for `eng/ml`).
pub(super) fn is_self_or_ancestor(anc: &str, role: &str) -> bool {
    role == anc
        || (role.len() > anc.len()
            && role.starts_with(anc)
            && role.as_bytes().get(anc.len()) == Some(&b'/'))
}

impl DrfAllocator {
    pub(super) fn candidate_from<'a>(
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

    pub(super) fn meets_minimum(&self, spec: &FrameworkSpec, candidate: &Resources) -> bool {
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

    /// What another member's hold on agent `a` keeps back from everyone else: (holder,
    /// amounts per kind); `None` when the agent is not held.
    pub(super) fn hold_cut(&self, a: u32) -> Option<(u32, Amounts)> {
        let h = self.agent(a)?.hold.as_ref()?;
        let need = self.member(h.member)?.need.as_ref()?;
        Some((h.member, need.held.clone()))
    }

    /// What member `m` would be offered on agent `a` in the fair stage now (ignoring its
    /// filters): its candidate cut by another member's `hold` there and, with quotas, by
    /// what the quota rules allow (its own hold cuts nothing). `None`: the member is gone.
    pub(super) fn offerable<'a>(
        &'a self,
        agent: &'a Agent,
        m: u32,
        hold: Option<&(u32, Amounts)>,
        required: &[u64],
    ) -> Option<Cow<'a, Resources>> {
        let hold = hold.filter(|(h, _)| *h != m);
        let mem = self.member(m)?;
        let fw = self.fw(mem.framework)?;
        let mut cand = Self::candidate_from(agent.plain, &fw.spec, &mem.role, &agent.free);
        if let Some((_, held)) = hold {
            let have = self.kinds.amounts(&cand);
            let allowed: Amounts = (0..self.kinds.len())
                .map(|k| kinds::at(&have, k).saturating_sub(kinds::at(held, k)))
                .collect();
            cand = Cow::Owned(chop(&self.kinds, &cand, &allowed));
        }
        if !self.quota_roles.is_empty() {
            let allowed = self.allowed(mem.node, required);
            cand = Cow::Owned(chop(&self.kinds, &cand, &allowed));
        }
        Some(cand)
    }

    /// Amounts member `m` could be offered on agent `a` now (non-revocable scalars).
    pub(super) fn candidate_amounts(&self, a: u32, m: u32) -> Option<(Resources, Amounts)> {
        let agent = self.agent(a)?;
        let mem = self.member(m)?;
        let fw = self.fw(mem.framework)?;
        if bit(&agent.filtered, m) || bit(&agent.mismatch, m) {
            return None;
        }
        let cand = Self::candidate_from(agent.plain, &fw.spec, &mem.role, &agent.free).into_owned();
        if Self::filter_blocks(agent, m, &cand) {
            return None;
        }
        let amounts = self.kinds.amounts(&cand);
        Some((cand, amounts))
    }
}
