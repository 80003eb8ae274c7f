//! First-version weighted DRF policy ("drf").
//!
//! Owns the allocator's book: each agent's total and what is allocated (offered or used) on
//! it per (framework, role), each framework's allocation per role, decline filters and
//! suppressed roles, and role weights. Per agent it offers everything allocatable to the
//! role with the lowest weighted dominant share, and inside that role to the framework with
//! the lowest dominant share; ties are broken by the seeded RNG. It must never do I/O or
//! read a clock.

use std::collections::{BTreeMap, BTreeSet};

use agora_resources::Resources;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::{Allocation, Allocator, AllocatorConfig, AllocatorError, FrameworkSpec, RoleShare};
use crate::clock::Millis;

#[derive(Debug, Default)]
struct AgentBook {
    total: Resources,
    /// Sum of `allocations`.
    allocated: Resources,
    allocations: BTreeMap<(String, String), Resources>,
}

#[derive(Debug)]
struct Filter {
    resources: Resources,
    until: Millis,
}

#[derive(Debug)]
struct FrameworkBook {
    spec: FrameworkSpec,
    active: bool,
    suppressed: BTreeSet<String>,
    allocated: BTreeMap<String, Resources>,
    filters: BTreeMap<String, Vec<Filter>>,
}

pub struct DrfAllocator {
    config: AllocatorConfig,
    rng: SmallRng,
    agents: BTreeMap<String, AgentBook>,
    frameworks: BTreeMap<String, FrameworkBook>,
    weights: BTreeMap<String, f64>,
    /// Cluster totals, the denominators of every share.
    totals: Resources,
    role_allocated: BTreeMap<String, Resources>,
}

fn accounting(agent: &str, reason: impl std::fmt::Display) -> AllocatorError {
    AllocatorError::Accounting {
        agent: agent.to_string(),
        reason: reason.to_string(),
    }
}

fn add_into(slot: &mut Resources, extra: &Resources, agent: &str) -> Result<(), AllocatorError> {
    *slot = slot.checked_add(extra).map_err(|e| accounting(agent, e))?;
    Ok(())
}

/// The scalar part of `r`: what per-role and per-framework sums can hold.
fn scalars(r: &Resources) -> Resources {
    r.filter(|x| matches!(x.value, agora_resources::Value::Scalar(_)))
}

fn sub_from(slot: &mut Resources, gone: &Resources, agent: &str) -> Result<(), AllocatorError> {
    *slot = slot.checked_sub(gone).map_err(|e| accounting(agent, e))?;
    Ok(())
}

impl DrfAllocator {
    pub fn new(config: AllocatorConfig) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(config.seed),
            config,
            agents: BTreeMap::new(),
            frameworks: BTreeMap::new(),
            weights: BTreeMap::new(),
            totals: Resources::new(),
            role_allocated: BTreeMap::new(),
        }
    }

    fn weight(&self, role: &str) -> f64 {
        self.weights.get(role).copied().unwrap_or(1.0)
    }

    /// Largest fraction of the cluster total that `allocated` holds of any kind that counts.
    fn dominant_share(&self, allocated: &Resources) -> f64 {
        let mut share = 0.0_f64;
        for name in allocated.names() {
            if self.config.excluded_from_shares.iter().any(|n| n == name) {
                continue;
            }
            let total = self.totals.scalar(name).thousandths();
            if total == 0 {
                continue;
            }
            let held = allocated.scalar(name).thousandths();
            share = share.max(held as f64 / total as f64);
        }
        share
    }

    fn framework_mut(&mut self, framework: &str) -> Result<&mut FrameworkBook, AllocatorError> {
        self.frameworks
            .get_mut(framework)
            .ok_or_else(|| AllocatorError::UnknownFramework(framework.to_string()))
    }

    fn meets_minimum(&self, spec: &FrameworkSpec, candidate: &Resources) -> bool {
        let alternatives = if spec.min_allocatable.is_empty() {
            &self.config.min_allocatable
        } else {
            &spec.min_allocatable
        };
        // Quantities by name: a reserved `cpus(eng):8` satisfies a minimum of `cpus:0.01`.
        alternatives.is_empty()
            || alternatives.iter().any(|m| {
                m.names()
                    .into_iter()
                    .all(|name| candidate.scalar(name) >= m.scalar(name))
            })
    }

    /// What `framework` may be offered from `free` under `role`.
    fn candidate(spec: &FrameworkSpec, role: &str, free: &Resources) -> Resources {
        free.allocatable_to(role)
            .filter(|r| (spec.revocable || !r.revocable) && (spec.gpus || r.name != "gpus"))
    }

    /// Roles with at least one framework that may receive offers, lowest weighted share
    /// first; equal shares in random order.
    fn sorted_roles(&mut self) -> Vec<String> {
        let mut roles: BTreeSet<&str> = BTreeSet::new();
        for fw in self.frameworks.values().filter(|f| f.active) {
            for role in &fw.spec.roles {
                if !fw.suppressed.contains(role) {
                    roles.insert(role);
                }
            }
        }
        let empty = Resources::new();
        let mut keyed: Vec<(f64, u64, String)> = roles
            .into_iter()
            .map(|role| {
                let alloc = self.role_allocated.get(role).unwrap_or(&empty);
                let share = self.dominant_share(alloc) / self.weight(role);
                (share, 0, role.to_string())
            })
            .collect();
        for k in &mut keyed {
            k.1 = self.rng.random();
        }
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        keyed.into_iter().map(|k| k.2).collect()
    }

    /// Frameworks of `role` that may receive offers, lowest share inside the role first.
    fn sorted_frameworks(&mut self, role: &str) -> Vec<String> {
        let empty = Resources::new();
        let mut keyed: Vec<(f64, u64, String)> = self
            .frameworks
            .iter()
            .filter(|(_, f)| {
                f.active && f.spec.roles.iter().any(|r| r == role) && !f.suppressed.contains(role)
            })
            .map(|(id, f)| {
                let alloc = f.allocated.get(role).unwrap_or(&empty);
                (self.dominant_share(alloc), 0, id.clone())
            })
            .collect();
        for k in &mut keyed {
            k.1 = self.rng.random();
        }
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        keyed.into_iter().map(|k| k.2).collect()
    }

    fn is_filtered(fw: &FrameworkBook, agent: &str, candidate: &Resources, now: Millis) -> bool {
        fw.filters.get(agent).is_some_and(|filters| {
            filters
                .iter()
                .any(|f| f.until > now && f.resources.contains(candidate))
        })
    }

    fn record(
        &mut self,
        agent: &str,
        framework: &str,
        role: &str,
        resources: &Resources,
    ) -> Result<(), AllocatorError> {
        let book = self
            .agents
            .get_mut(agent)
            .ok_or_else(|| AllocatorError::UnknownAgent(agent.to_string()))?;
        let fw = self
            .frameworks
            .get_mut(framework)
            .ok_or_else(|| AllocatorError::UnknownFramework(framework.to_string()))?;
        add_into(&mut book.allocated, resources, agent)?;
        add_into(
            book.allocations
                .entry((framework.to_string(), role.to_string()))
                .or_default(),
            resources,
            agent,
        )?;
        // Sums across agents hold scalars only: ranges and sets add by union, so ports of two
        // agents would collapse into one range and could no longer be subtracted per agent.
        let quantities = scalars(resources);
        add_into(
            fw.allocated.entry(role.to_string()).or_default(),
            &quantities,
            agent,
        )?;
        add_into(
            self.role_allocated.entry(role.to_string()).or_default(),
            &quantities,
            agent,
        )?;
        Ok(())
    }

    /// Undo `record` for resources leaving an agent's book (recovered or agent removed).
    fn release(
        &mut self,
        agent: &str,
        framework: &str,
        role: &str,
        resources: &Resources,
    ) -> Result<(), AllocatorError> {
        let resources = &scalars(resources);
        if let Some(fw) = self.frameworks.get_mut(framework)
            && let Some(slot) = fw.allocated.get_mut(role)
        {
            sub_from(slot, resources, agent)?;
            if slot.is_empty() {
                fw.allocated.remove(role);
            }
        }
        if let Some(slot) = self.role_allocated.get_mut(role) {
            sub_from(slot, resources, agent)?;
            if slot.is_empty() {
                self.role_allocated.remove(role);
            }
        }
        Ok(())
    }

    fn recompute_totals(&mut self) -> Result<(), AllocatorError> {
        let mut totals = Resources::new();
        for (id, book) in &self.agents {
            totals = totals
                .checked_add(&book.total.non_revocable())
                .map_err(|e| accounting(id, e))?;
        }
        self.totals = totals;
        Ok(())
    }
}

impl Allocator for DrfAllocator {
    fn policy(&self) -> &'static str {
        "drf"
    }

    fn add_agent(&mut self, agent: &str, total: Resources) -> Result<(), AllocatorError> {
        if self.agents.contains_key(agent) {
            return Err(AllocatorError::DuplicateAgent(agent.to_string()));
        }
        self.agents.insert(
            agent.to_string(),
            AgentBook {
                total,
                ..AgentBook::default()
            },
        );
        self.recompute_totals()
    }

    fn remove_agent(&mut self, agent: &str) -> Result<(), AllocatorError> {
        let book = self
            .agents
            .remove(agent)
            .ok_or_else(|| AllocatorError::UnknownAgent(agent.to_string()))?;
        for ((framework, role), resources) in &book.allocations {
            self.release(agent, framework, role, resources)?;
        }
        for fw in self.frameworks.values_mut() {
            fw.filters.remove(agent);
        }
        self.recompute_totals()
    }

    fn add_framework(
        &mut self,
        framework: &str,
        spec: FrameworkSpec,
    ) -> Result<(), AllocatorError> {
        if self.frameworks.contains_key(framework) {
            return Err(AllocatorError::DuplicateFramework(framework.to_string()));
        }
        self.frameworks.insert(
            framework.to_string(),
            FrameworkBook {
                spec,
                active: true,
                suppressed: BTreeSet::new(),
                allocated: BTreeMap::new(),
                filters: BTreeMap::new(),
            },
        );
        Ok(())
    }

    fn update_framework(
        &mut self,
        framework: &str,
        spec: FrameworkSpec,
    ) -> Result<(), AllocatorError> {
        let fw = self.framework_mut(framework)?;
        fw.suppressed.retain(|r| spec.roles.contains(r));
        fw.spec = spec;
        Ok(())
    }

    fn remove_framework(&mut self, framework: &str) -> Result<(), AllocatorError> {
        if !self.frameworks.contains_key(framework) {
            return Err(AllocatorError::UnknownFramework(framework.to_string()));
        }
        // Anything still booked to the framework goes back to its agents.
        let mut leftovers = Vec::new();
        for (agent, book) in &self.agents {
            for ((fw, role), res) in &book.allocations {
                if fw == framework {
                    leftovers.push((agent.clone(), role.clone(), res.clone()));
                }
            }
        }
        for (agent, role, res) in leftovers {
            self.recover(&agent, framework, &role, &res, None)?;
        }
        self.frameworks.remove(framework);
        Ok(())
    }

    fn set_framework_active(
        &mut self,
        framework: &str,
        active: bool,
    ) -> Result<(), AllocatorError> {
        self.framework_mut(framework)?.active = active;
        Ok(())
    }

    fn add_allocated(
        &mut self,
        agent: &str,
        framework: &str,
        role: &str,
        resources: &Resources,
    ) -> Result<(), AllocatorError> {
        self.record(agent, framework, role, resources)
    }

    fn recover(
        &mut self,
        agent: &str,
        framework: &str,
        role: &str,
        resources: &Resources,
        refuse_until: Option<Millis>,
    ) -> Result<(), AllocatorError> {
        if resources.is_empty() {
            return Ok(());
        }
        let book = self
            .agents
            .get_mut(agent)
            .ok_or_else(|| AllocatorError::UnknownAgent(agent.to_string()))?;
        let key = (framework.to_string(), role.to_string());
        let slot = book
            .allocations
            .get_mut(&key)
            .ok_or_else(|| accounting(agent, format!("nothing allocated to {framework}/{role}")))?;
        sub_from(slot, resources, agent)?;
        if slot.is_empty() {
            book.allocations.remove(&key);
        }
        sub_from(&mut book.allocated, resources, agent)?;
        self.release(agent, framework, role, resources)?;
        if let (Some(until), Some(fw)) = (refuse_until, self.frameworks.get_mut(framework)) {
            fw.filters
                .entry(agent.to_string())
                .or_default()
                .push(Filter {
                    resources: resources.clone(),
                    until,
                });
        }
        Ok(())
    }

    fn suppress(&mut self, framework: &str, roles: &[String]) -> Result<(), AllocatorError> {
        let fw = self.framework_mut(framework)?;
        let targets: Vec<String> = if roles.is_empty() {
            fw.spec.roles.clone()
        } else {
            roles.to_vec()
        };
        for role in targets {
            if !fw.spec.roles.contains(&role) {
                return Err(AllocatorError::RoleNotSubscribed {
                    framework: framework.to_string(),
                    role,
                });
            }
            fw.suppressed.insert(role);
        }
        Ok(())
    }

    fn revive(&mut self, framework: &str, roles: &[String]) -> Result<(), AllocatorError> {
        let fw = self.framework_mut(framework)?;
        if let Some(role) = roles.iter().find(|r| !fw.spec.roles.contains(r)) {
            return Err(AllocatorError::RoleNotSubscribed {
                framework: framework.to_string(),
                role: role.clone(),
            });
        }
        fw.filters.clear();
        if roles.is_empty() {
            fw.suppressed.clear();
        } else {
            fw.suppressed.retain(|r| !roles.contains(r));
        }
        Ok(())
    }

    fn set_weight(&mut self, role: &str, weight: f64) -> Result<(), AllocatorError> {
        if !weight.is_finite() || weight <= 0.0 {
            return Err(AllocatorError::InvalidWeight {
                role: role.to_string(),
                weight,
            });
        }
        self.weights.insert(role.to_string(), weight);
        Ok(())
    }

    fn weights(&self) -> Vec<(String, f64)> {
        self.weights.iter().map(|(r, w)| (r.clone(), *w)).collect()
    }

    fn allocate(&mut self, now: Millis) -> Vec<Allocation> {
        for fw in self.frameworks.values_mut() {
            fw.filters.retain(|_, filters| {
                filters.retain(|f| f.until > now);
                !filters.is_empty()
            });
        }
        let mut agents: Vec<String> = self
            .agents
            .iter()
            .filter(|(_, b)| b.allocated != b.total)
            .map(|(id, _)| id.clone())
            .collect();
        agents.shuffle(&mut self.rng);

        let mut out = Vec::new();
        for agent in agents {
            let Some(book) = self.agents.get(&agent) else {
                continue;
            };
            let Ok(mut free) = book.total.checked_sub(&book.allocated) else {
                continue;
            };
            for role in self.sorted_roles() {
                if free.is_empty() {
                    break;
                }
                for framework in self.sorted_frameworks(&role) {
                    let Some(fw) = self.frameworks.get(&framework) else {
                        continue;
                    };
                    let candidate = Self::candidate(&fw.spec, &role, &free);
                    if candidate.is_empty()
                        || !self.meets_minimum(&fw.spec, &candidate)
                        || Self::is_filtered(fw, &agent, &candidate, now)
                    {
                        continue;
                    }
                    if self.record(&agent, &framework, &role, &candidate).is_err() {
                        continue;
                    }
                    free = match free.checked_sub(&candidate) {
                        Ok(f) => f,
                        Err(_) => Resources::new(),
                    };
                    out.push(Allocation {
                        framework,
                        agent: agent.clone(),
                        role: role.clone(),
                        resources: candidate,
                    });
                    break;
                }
            }
        }
        out
    }

    fn role_shares(&self) -> Vec<RoleShare> {
        let mut roles: BTreeSet<String> = self.weights.keys().cloned().collect();
        for fw in self.frameworks.values() {
            roles.extend(fw.spec.roles.iter().cloned());
        }
        roles
            .into_iter()
            .map(|role| {
                let allocated = self.role_allocated.get(&role).cloned().unwrap_or_default();
                RoleShare {
                    weight: self.weight(&role),
                    dominant_share: self.dominant_share(&allocated),
                    allocated,
                    role,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(text: &str) -> Resources {
        Resources::parse(text).expect("test resources parse")
    }

    fn spec(roles: &[&str]) -> FrameworkSpec {
        FrameworkSpec {
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..FrameworkSpec::default()
        }
    }

    fn alloc(seed: u64) -> DrfAllocator {
        DrfAllocator::new(AllocatorConfig {
            seed,
            ..AllocatorConfig::default()
        })
    }

    #[test]
    fn whole_free_agent_goes_to_one_framework_and_is_not_offered_twice() {
        let mut a = alloc(1);
        a.add_agent("a1", res("cpus:4;mem:4096")).unwrap();
        a.add_framework("f1", spec(&["r"])).unwrap();
        let offers = a.allocate(0);
        assert_eq!(offers.len(), 1);
        assert_eq!(offers[0].resources, res("cpus:4;mem:4096"));
        assert!(
            a.allocate(0).is_empty(),
            "offered resources count as allocated"
        );
    }

    #[test]
    fn lowest_dominant_share_role_is_offered_first() {
        let mut a = alloc(7);
        a.add_agent("a1", res("cpus:9;mem:18")).unwrap();
        a.add_agent("a2", res("cpus:1;mem:1")).unwrap();
        a.add_framework("fa", spec(&["ra"])).unwrap();
        a.add_framework("fb", spec(&["rb"])).unwrap();
        // fa already uses a third of the cpus on a1.
        a.add_allocated("a1", "fa", "ra", &res("cpus:3;mem:1"))
            .unwrap();
        let offers = a.allocate(0);
        // Whichever agent comes first, the free part of a1 and all of a2 go to the role with
        // the lower share first; fb holds nothing so it is first in line.
        let first = offers.first().expect("an offer");
        assert_eq!(first.framework, "fb");
    }

    #[test]
    fn weights_divide_shares() {
        let mut a = alloc(3);
        a.add_agent("a1", res("cpus:10;mem:10")).unwrap();
        a.add_agent("a2", res("cpus:10;mem:10")).unwrap();
        a.add_framework("fa", spec(&["ra"])).unwrap();
        a.add_framework("fb", spec(&["rb"])).unwrap();
        a.add_allocated("a1", "fa", "ra", &res("cpus:4")).unwrap();
        a.add_allocated("a1", "fb", "rb", &res("cpus:3")).unwrap();
        // Unweighted, rb (0.15) is below ra (0.2); with ra weighted 2, ra (0.1) is below.
        a.set_weight("ra", 2.0).unwrap();
        let shares: BTreeMap<String, f64> = a
            .role_shares()
            .into_iter()
            .map(|s| (s.role, s.dominant_share / s.weight))
            .collect();
        assert!(shares["ra"] < shares["rb"]);
        let offers = a.allocate(0);
        assert_eq!(offers[0].framework, "fa");
        assert!(a.set_weight("ra", 0.0).is_err());
        assert!(a.set_weight("ra", f64::NAN).is_err());
    }

    #[test]
    fn reserved_resources_only_reach_their_role_and_its_children() {
        let mut a = alloc(1);
        a.add_agent("a1", res("cpus:2;cpus(eng):8")).unwrap();
        a.add_framework("other", spec(&["ops"])).unwrap();
        let offers = a.allocate(0);
        assert_eq!(offers.len(), 1);
        assert_eq!(offers[0].resources, res("cpus:2"));
        a.add_framework("ml", spec(&["eng/ml"])).unwrap();
        let offers = a.allocate(0);
        assert_eq!(offers.len(), 1);
        assert_eq!(offers[0].framework, "ml");
        assert_eq!(offers[0].resources, res("cpus(eng):8"));
    }

    #[test]
    fn decline_filter_holds_until_expiry_unless_more_is_free() {
        let mut a = alloc(1);
        a.add_agent("a1", res("cpus:4;mem:1024")).unwrap();
        a.add_framework("f", spec(&["r"])).unwrap();
        let o = a.allocate(0).remove(0);
        // Take one cpu into use, decline the rest for 5 s.
        let rest = res("cpus:3;mem:1024");
        a.recover("a1", "f", "r", &rest, Some(5_000)).unwrap();
        assert!(a.allocate(1_000).is_empty(), "filtered");
        // The used cpu comes back: more than was refused is free, so it is offered again.
        a.recover("a1", "f", "r", &res("cpus:1"), None).unwrap();
        let again = a.allocate(1_000);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].resources, o.resources);
        a.recover("a1", "f", "r", &o.resources, Some(5_000))
            .unwrap();
        assert!(a.allocate(4_999).is_empty());
        assert_eq!(a.allocate(5_000).len(), 1, "filter expired");
    }

    #[test]
    fn suppress_stops_offers_and_revive_clears_filters() {
        let mut a = alloc(1);
        a.add_agent("a1", res("cpus:4")).unwrap();
        a.add_framework("f", spec(&["r"])).unwrap();
        a.suppress("f", &[]).unwrap();
        assert!(a.allocate(0).is_empty());
        assert!(a.suppress("f", &["nope".to_string()]).is_err());
        a.revive("f", &[]).unwrap();
        let o = a.allocate(0).remove(0);
        a.recover("a1", "f", "r", &o.resources, Some(u64::MAX))
            .unwrap();
        assert!(a.allocate(10).is_empty());
        a.revive("f", &[]).unwrap();
        assert_eq!(a.allocate(10).len(), 1);
    }

    #[test]
    fn capabilities_gate_revocable_and_gpus_and_crumbs_are_not_offered() {
        let mut a = alloc(1);
        a.add_agent("a1", res("cpus:1;gpus:2;cpus(*,revocable):2"))
            .unwrap();
        a.add_framework("plain", spec(&["r"])).unwrap();
        let o = a.allocate(0).remove(0);
        assert_eq!(o.resources, res("cpus:1"));
        a.remove_framework("plain").unwrap();
        a.add_framework(
            "gpu",
            FrameworkSpec {
                gpus: true,
                revocable: true,
                ..spec(&["r"])
            },
        )
        .unwrap();
        let o = a.allocate(0).remove(0);
        assert_eq!(o.resources, res("cpus:1;gpus:2;cpus(*,revocable):2"));

        let mut b = alloc(1);
        b.add_agent("a1", res("cpus:0.005;mem:16")).unwrap();
        b.add_framework("f", spec(&["r"])).unwrap();
        assert!(b.allocate(0).is_empty(), "below cpus:0.01 and mem:32");
    }

    #[test]
    fn removing_an_agent_releases_its_allocations() {
        let mut a = alloc(1);
        a.add_agent("a1", res("cpus:4")).unwrap();
        a.add_framework("f", spec(&["r"])).unwrap();
        a.allocate(0);
        a.remove_agent("a1").unwrap();
        let shares = a.role_shares();
        assert!(shares.iter().all(|s| s.allocated.is_empty()));
        assert_eq!(
            a.recover("a1", "f", "r", &res("cpus:1"), None),
            Err(AllocatorError::UnknownAgent("a1".into()))
        );
    }

    #[test]
    fn ports_on_several_agents_recover_independently() {
        let mut a = alloc(1);
        for i in 0..3 {
            a.add_agent(&format!("a{i}"), res("cpus:2;ports:[31000-31999]"))
                .unwrap();
        }
        a.add_framework("f", spec(&["r"])).unwrap();
        let offers = a.allocate(0);
        assert_eq!(offers.len(), 3);
        for o in &offers {
            a.recover(&o.agent, "f", "r", &o.resources, None)
                .expect("each agent's ports come back on their own");
        }
        assert!(a.role_shares().iter().all(|s| s.allocated.is_empty()));
        assert_eq!(a.allocate(1).len(), 3);
    }

    #[test]
    fn same_seed_same_decisions() {
        let run = |seed| {
            let mut a = alloc(seed);
            for i in 0..20 {
                a.add_agent(&format!("a{i}"), res("cpus:2;mem:64")).unwrap();
            }
            for f in 0..5 {
                a.add_framework(&format!("f{f}"), spec(&["r"])).unwrap();
            }
            a.allocate(0)
                .into_iter()
                .map(|o| (o.framework, o.agent))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
    }

    #[test]
    fn unknown_policy_is_refused() {
        assert!(matches!(
            by_name_for_test("nope"),
            Err(AllocatorError::UnknownPolicy(_))
        ));
        assert!(by_name_for_test("drf").is_ok());
    }

    fn by_name_for_test(name: &str) -> Result<Box<dyn Allocator>, AllocatorError> {
        super::super::by_name(name, AllocatorConfig::default())
    }
}
