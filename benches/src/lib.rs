//! Shared set-ups for Agora's benchmarks, so benches and their smoke tests build the same
//! clusters. Building a set-up may allocate freely; it never measures anything itself.

#![forbid(unsafe_code)]

pub mod schedsim;

use agora_allocator::{Allocation, Allocator, AllocatorConfig, DrfAllocator, FrameworkSpec};
use agora_resources::Resources;

fn res(text: &str) -> Resources {
    // The texts below are constants of this file; a failure is a bug in the benchmark.
    Resources::parse(text).unwrap_or_else(|e| panic!("benchmark resources '{text}': {e}"))
}

/// A filter that outlives any benchmark.
pub const FOREVER: u64 = u64::MAX;

/// A cluster driven like Mesos's `DeclineOffers` benchmark: every offer is declined with
/// a very long filter; once every framework has declined every agent (a cycle offers
/// nothing), the frameworks revive and the loop starts over.
pub struct DeclineLoop {
    pub allocator: DrfAllocator,
    /// Frameworks that revive when the loop starts over (not the suppressed ones).
    pub active: Vec<String>,
    pub now: u64,
}

impl DeclineLoop {
    /// One measured step: the caller times `allocate`, then hands the offers back here.
    pub fn allocate(&mut self) -> Vec<Allocation> {
        self.now += 1;
        self.allocator.allocate(self.now)
    }

    /// Decline every offer with a very long filter; revive everyone when nothing was
    /// offered (every framework declined every agent).
    pub fn decline(&mut self, offers: Vec<Allocation>) {
        if offers.is_empty() {
            for f in &self.active {
                self.allocator
                    .revive(f, &[])
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            return;
        }
        for o in offers {
            self.allocator
                .recover(&o.agent, &o.framework, &o.role, &o.resources, Some(FOREVER))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// The Mesos `DeclineOffers` set-up: every agent has
/// `cpus:24;mem:4096;disk:4096;ports:[31000-32000]` and already runs
/// `cpus:16;mem:2014;disk:1024` plus 16 ports for one framework (round-robin), one role
/// per framework; a first cycle offers the rest and every framework declines it with a
/// very long filter. `suppressed_percent` of the frameworks are suppressed (and never
/// revive).
pub fn decline_offers_with(
    agents: usize,
    frameworks: usize,
    suppressed_percent: usize,
) -> DeclineLoop {
    let mut a = DrfAllocator::new(AllocatorConfig::default());
    let total = res("cpus:24;mem:4096;disk:4096;ports:[31000-32000]");
    let used = res("cpus:16;mem:2014;disk:1024;ports:[31000-31015]");
    let suppressed = frameworks * suppressed_percent / 100;
    let mut active = Vec::new();
    for f in 0..frameworks {
        let spec = FrameworkSpec {
            roles: vec![format!("role{f}")],
            ..FrameworkSpec::default()
        };
        let id = format!("f{f}");
        a.add_framework(&id, spec).unwrap_or_else(|e| panic!("{e}"));
        if f < suppressed {
            a.suppress(&id, &[]).unwrap_or_else(|e| panic!("{e}"));
        } else {
            active.push(id);
        }
    }
    for i in 0..agents {
        let agent = format!("agent{i}");
        let f = i % frameworks.max(1);
        a.add_agent(&agent, total.clone())
            .unwrap_or_else(|e| panic!("{e}"));
        a.add_allocated(&agent, &format!("f{f}"), &format!("role{f}"), &used)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let mut lp = DeclineLoop {
        allocator: a,
        active,
        now: 0,
    };
    let offers = lp.allocate();
    if suppressed < frameworks {
        assert_eq!(offers.len(), agents, "every agent's leftover offered once");
    }
    lp.decline(offers);
    lp
}

/// `decline_offers_with` without suppressed frameworks.
pub fn decline_offers(agents: usize, frameworks: usize) -> DeclineLoop {
    decline_offers_with(agents, frameworks, 0)
}

/// Mesos's `LargeAndSmallQuota` (QuotaParam(2500, 500, 1) gives 3000 agents): agents of
/// `cpus:2;mem:2048;disk:2048`; `small` roles with quota `cpus:1;mem:1024;disk:1024` and
/// `large` roles with `cpus:4;mem:4096;disk:4096` (guarantee = limit, as Mesos's
/// `createQuota`), one framework per role; agents = small / 5 + large * 5. The first
/// cycle (the measured one) satisfies every quota.
pub fn large_and_small_quota(small: usize, large: usize) -> DrfAllocator {
    let mut a = DrfAllocator::new(AllocatorConfig::default());
    let agents = small / 5 + large * 5;
    for i in 0..agents {
        a.add_agent(&format!("agent{i}"), res("cpus:2;mem:2048;disk:2048"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let roles = (0..small)
        .map(|i| (format!("small{i}"), res("cpus:1;mem:1024;disk:1024")))
        .chain((0..large).map(|i| (format!("large{i}"), res("cpus:4;mem:4096;disk:4096"))));
    for (role, quota) in roles {
        let spec = FrameworkSpec {
            roles: vec![role.clone()],
            ..FrameworkSpec::default()
        };
        a.add_framework(&format!("fw-{role}"), spec)
            .unwrap_or_else(|e| panic!("{e}"));
        a.set_quota(&role, quota.clone(), Some(quota), false)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decline_loop_offers_each_agent_to_a_new_framework_until_all_declined() {
        let mut lp = decline_offers(50, 5);
        for _round in 1..5 {
            let offers = lp.allocate();
            assert_eq!(offers.len(), 50);
            lp.decline(offers);
        }
        let offers = lp.allocate();
        assert!(offers.is_empty(), "every framework declined every agent");
        lp.decline(offers);
        assert_eq!(lp.allocate().len(), 50, "revived");
        lp.allocator.check_invariants().unwrap();
    }

    #[test]
    fn suppressed_frameworks_get_nothing() {
        let mut lp = decline_offers_with(100, 100, 99);
        let offers = lp.allocate();
        assert!(offers.iter().all(|o| o.framework == "f99"));
    }

    #[test]
    fn quota_cycle_satisfies_every_quota() {
        let mut a = large_and_small_quota(25, 5);
        let offers = a.allocate(1);
        let cpus: u64 = offers
            .iter()
            .map(|o| o.resources.scalar("cpus").thousandths())
            .sum();
        assert_eq!(cpus, (25 + 5 * 4) * 1000);
        for q in a.quotas() {
            assert_eq!(q.consumed, q.guarantee, "{}", q.role);
        }
        assert!(a.allocate(2).is_empty());
    }
}
