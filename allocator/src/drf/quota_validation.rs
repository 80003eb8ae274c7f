//! Whether a quota may be set: scalar, unreserved, non-revocable amounts; guarantee <=
//! limit; the guarantees of a role's nearest quota'd descendants fit in its guarantee and
//! its own fits (with its quota'd siblings') in its nearest quota'd ancestor's, whose
//! limit bounds its limit; a guarantee above the cluster total only with `force`. Reads
//! the role tree only; must never change anything.

use agora_resources::{Resources, Scalar, Value};

use super::DrfAllocator;
use crate::AllocatorError;
use crate::kinds;

impl DrfAllocator {
    pub(super) fn validate_quota(
        &self,
        role: &str,
        guarantee: &Resources,
        limit: Option<&Resources>,
        force: bool,
    ) -> Result<(), AllocatorError> {
        let bad = |reason: String| AllocatorError::InvalidQuota {
            role: role.to_string(),
            reason,
        };
        for r in guarantee.iter().chain(limit.into_iter().flatten()) {
            if !matches!(r.value, Value::Scalar(_)) {
                return Err(bad(format!("'{r}' is not a scalar")));
            }
            if r.reservation.is_some() || r.revocable {
                return Err(bad(format!("'{r}' must be unreserved and non-revocable")));
            }
        }
        // A zero amount cannot be written (zero scalars vanish from `Resources`), so an
        // empty limit would silently mean "nothing limited". Refuse it instead.
        if limit.is_some_and(Resources::is_empty) {
            return Err(bad(
                "the limit names no resource with a positive amount; give at least one \
                 (e.g. cpus:1), or no limit at all (a limit of zero cannot be expressed yet)"
                    .to_string(),
            ));
        }
        if let Some(l) = limit {
            for name in guarantee.names() {
                let g = guarantee.scalar(name);
                if l.names().contains(name) && g > l.scalar(name) {
                    return Err(bad(format!(
                        "guarantee {name}:{g} exceeds limit {name}:{}",
                        l.scalar(name)
                    )));
                }
            }
        }
        // Nearest quota'd ancestor: our guarantee plus our quota'd siblings' must fit in
        // its guarantee, and our limit in its limit.
        let n = self.tree.get(role);
        let ancestor = role
            .rmatch_indices('/')
            .map(|(i, _)| &role[..i])
            .find(|anc| {
                self.tree
                    .get(anc)
                    .is_some_and(|x| self.tree.node(x).quota.is_some())
            });
        if let Some(anc) = ancestor
            && let Some(an) = self.tree.get(anc)
            && let Some(aq) = &self.tree.node(an).quota
        {
            let mut sum = guarantee.clone();
            for other in &self.quota_roles {
                if Some(*other) == n {
                    continue;
                }
                let oname = &self.tree.node(*other).name;
                if self.nearest_quota_ancestor(*other) == Some(an)
                    && let Some(oq) = &self.tree.node(*other).quota
                {
                    sum = sum
                        .checked_add(&oq.guarantee)
                        .map_err(|e| bad(format!("{oname}: {e}")))?;
                }
            }
            for name in sum.names() {
                if sum.scalar(name) > aq.guarantee.scalar(name) {
                    return Err(bad(format!(
                        "children's guarantees ({name}:{}) exceed the guarantee of '{anc}' ({name}:{})",
                        sum.scalar(name),
                        aq.guarantee.scalar(name)
                    )));
                }
            }
            if let Some(al) = &aq.limit {
                for name in al.names() {
                    let mine = limit.map(|l| l.names().contains(name)).unwrap_or(false);
                    if !mine || limit.is_some_and(|l| l.scalar(name) > al.scalar(name)) {
                        return Err(bad(format!(
                            "limit on {name} must be set and at most the limit of '{anc}' ({name}:{})",
                            al.scalar(name)
                        )));
                    }
                }
            }
        }
        // Our quota'd descendants must fit in the new quota.
        if let Some(me) = n {
            let mut sum = Resources::new();
            for other in &self.quota_roles {
                if self.nearest_quota_ancestor(*other) == Some(me)
                    && let Some(oq) = &self.tree.node(*other).quota
                {
                    sum = sum
                        .checked_add(&oq.guarantee)
                        .map_err(|e| bad(e.to_string()))?;
                }
            }
            for name in sum.names() {
                if sum.scalar(name) > guarantee.scalar(name) {
                    return Err(bad(format!(
                        "children's guarantees ({name}:{}) exceed the new guarantee",
                        sum.scalar(name)
                    )));
                }
            }
        }
        if !force {
            for name in guarantee.names() {
                let total = self
                    .kinds
                    .get(name)
                    .map(|k| kinds::at(&self.totals, k))
                    .unwrap_or(0);
                if guarantee.scalar(name).thousandths() > total {
                    return Err(bad(format!(
                        "guarantee {name}:{} exceeds the cluster total {name}:{} (use force)",
                        guarantee.scalar(name),
                        Scalar::from_thousandths(total)
                    )));
                }
            }
        }
        Ok(())
    }
}
