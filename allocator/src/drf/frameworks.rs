//! Framework events: a framework subscribing, updating its spec, leaving, going inactive
//! and back, suppressing and reviving roles. Each checks everything it can before the
//! first change (unknown framework, invalid role, constraint that does not compile, role
//! not subscribed); leaving returns everything booked to the framework and drops its
//! filters and holds. Must never decide offers.

use std::collections::BTreeMap;

use super::{DrfAllocator, Framework, insert_slot};
use crate::{AllocatorError, FrameworkSpec};

impl DrfAllocator {
    /// A new framework (`Allocator::add_framework`).
    pub(super) fn insert_framework(
        &mut self,
        framework: &str,
        spec: FrameworkSpec,
    ) -> Result<(), AllocatorError> {
        if self.framework_ids.contains_key(framework) {
            return Err(AllocatorError::DuplicateFramework(framework.to_string()));
        }
        for r in &spec.roles {
            Self::valid_role(r)?;
        }
        for d in &spec.demands {
            self.kinds.intern_all(&d.shape);
        }
        let constraints = Self::compile_constraints(framework, &spec)?;
        let fw = Framework {
            id: framework.to_string(),
            spec,
            active: true,
            members: BTreeMap::new(),
        };
        let f = insert_slot(&mut self.frameworks, &mut self.framework_slots, fw);
        self.framework_ids.insert(framework.to_string(), f);
        self.apply_spec(f, constraints)
    }

    /// A framework changed its spec (`Allocator::update_framework`).
    pub(super) fn change_framework(
        &mut self,
        framework: &str,
        spec: FrameworkSpec,
    ) -> Result<(), AllocatorError> {
        let f = self.framework_index(framework)?;
        for r in &spec.roles {
            Self::valid_role(r)?;
        }
        for d in &spec.demands {
            self.kinds.intern_all(&d.shape);
        }
        let constraints = Self::compile_constraints(framework, &spec)?;
        if let Some(fw) = self.fw_mut(f) {
            fw.spec = spec;
        }
        self.apply_spec(f, constraints)
    }

    /// A framework left (`Allocator::remove_framework`): its allocations go back to
    /// their agents.
    pub(super) fn delete_framework(&mut self, framework: &str) -> Result<(), AllocatorError> {
        let f = self.framework_index(framework)?;
        let members: Vec<u32> = self
            .fw(f)
            .map(|fw| fw.members.values().copied().collect())
            .unwrap_or_default();
        for m in members {
            let agents: Vec<u32> = self
                .agents
                .iter()
                .enumerate()
                .filter(|(_, ag)| {
                    ag.as_ref()
                        .is_some_and(|ag| ag.allocations.contains_key(&m))
                })
                .map(|(i, _)| i as u32)
                .collect();
            for a in agents {
                if let Some(r) = self.agent(a).and_then(|x| x.allocations.get(&m)).cloned() {
                    self.book(a, m, &r, false)?;
                    self.free_grew(a);
                }
            }
            let filtered: Vec<u32> = self
                .member(m)
                .map(|x| x.filtered_agents.iter().copied().collect())
                .unwrap_or_default();
            for a in filtered {
                self.drop_filter(a, m);
            }
            self.drop_holds(m, None);
            if let Some(mem) = self.member_mut(m) {
                mem.subscribed = false;
                mem.constraints = None;
            }
            self.relist(m);
            if self.constrained.contains(&m) {
                self.refresh_mismatch(m);
            }
            self.demanding.remove(&m);
            if let Some(slot) = self.members.get_mut(m as usize) {
                *slot = None;
            }
            self.member_slots.push(m);
            self.live_members = self.live_members.saturating_sub(1);
        }
        if let Some(slot) = self.frameworks.get_mut(f as usize) {
            *slot = None;
        }
        self.framework_slots.push(f);
        self.framework_ids.remove(framework);
        Ok(())
    }

    /// A framework disconnected or came back (`Allocator::set_framework_active`).
    pub(super) fn activate_framework(
        &mut self,
        framework: &str,
        active: bool,
    ) -> Result<(), AllocatorError> {
        let f = self.framework_index(framework)?;
        if let Some(fw) = self.fw_mut(f) {
            fw.active = active;
        }
        let members: Vec<u32> = self
            .fw(f)
            .map(|fw| fw.members.values().copied().collect())
            .unwrap_or_default();
        for m in members {
            self.relist(m);
        }
        Ok(())
    }

    /// `Allocator::suppress`.
    pub(super) fn suppress_roles(
        &mut self,
        framework: &str,
        roles: &[String],
    ) -> Result<(), AllocatorError> {
        let f = self.framework_index(framework)?;
        let spec_roles = self.fw(f).map(|x| x.spec.roles.clone()).unwrap_or_default();
        let targets: Vec<String> = if roles.is_empty() {
            spec_roles.clone()
        } else {
            roles.to_vec()
        };
        if let Some(role) = targets.iter().find(|r| !spec_roles.contains(r)) {
            return Err(AllocatorError::RoleNotSubscribed {
                framework: framework.to_string(),
                role: role.clone(),
            });
        }
        for role in targets {
            if let Some(m) = self.member_index(f, &role) {
                if let Some(mem) = self.member_mut(m) {
                    mem.suppressed = true;
                }
                self.relist(m);
            }
        }
        Ok(())
    }

    /// `Allocator::revive`: also drops every filter of the framework.
    pub(super) fn revive_roles(
        &mut self,
        framework: &str,
        roles: &[String],
    ) -> Result<(), AllocatorError> {
        let f = self.framework_index(framework)?;
        let spec_roles = self.fw(f).map(|x| x.spec.roles.clone()).unwrap_or_default();
        if let Some(role) = roles.iter().find(|r| !spec_roles.contains(r)) {
            return Err(AllocatorError::RoleNotSubscribed {
                framework: framework.to_string(),
                role: role.clone(),
            });
        }
        let members: Vec<(String, u32)> = self
            .fw(f)
            .map(|fw| fw.members.iter().map(|(r, m)| (r.clone(), *m)).collect())
            .unwrap_or_default();
        for (role, m) in members {
            let filtered: Vec<u32> = self
                .member(m)
                .map(|x| x.filtered_agents.iter().copied().collect())
                .unwrap_or_default();
            for a in filtered {
                self.drop_filter(a, m);
            }
            if roles.is_empty() || roles.contains(&role) {
                if let Some(mem) = self.member_mut(m) {
                    mem.suppressed = false;
                }
                self.relist(m);
            }
        }
        Ok(())
    }
}
