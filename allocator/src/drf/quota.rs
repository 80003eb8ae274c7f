//! Quota standing: setting and removing a role's quota, what a quota'd role is still owed
//! (unmet guarantee), the headroom every other role must leave for those guarantees, and
//! how much unreserved a member may get within the limits on its path. Validation of a
//! new quota lives in `quota_validation.rs`. Must never book resources.

use agora_resources::Resources;

use super::DrfAllocator;
use crate::kinds::{self, Amounts};
use crate::tree::Quota;
use crate::{AllocatorError, QuotaStatus};

impl DrfAllocator {
    /// The quota role with no quota'd ancestor above `n`, if any.
    pub(super) fn top_quota(&self, n: u32) -> Option<u32> {
        self.tree
            .path(n)
            .filter(|x| self.tree.node(*x).quota.is_some())
            .last()
    }

    pub(super) fn unmet(&self, q: u32) -> Amounts {
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
    pub(super) fn required_headroom(&self) -> Amounts {
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
    pub(super) fn allowed(&self, n: u32, required: &[u64]) -> Amounts {
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

    /// The nearest strict ancestor of `n` with a quota.
    pub(super) fn nearest_quota_ancestor(&self, n: u32) -> Option<u32> {
        self.tree
            .path(n)
            .skip(1)
            .find(|x| self.tree.node(*x).quota.is_some())
    }

    /// `Allocator::set_quota`, after `validate_quota`.
    pub(super) fn put_quota(
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

    /// `Allocator::remove_quota`.
    pub(super) fn delete_quota(&mut self, role: &str) -> Result<(), AllocatorError> {
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

    /// `Allocator::quotas`.
    pub(super) fn quota_statuses(&self) -> Vec<QuotaStatus> {
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
}
