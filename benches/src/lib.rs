//! Shared set-ups for Agora's benchmarks, so benches and their smoke tests build the same
//! clusters. Building a set-up may allocate freely; it never measures anything itself.

#![forbid(unsafe_code)]

use agora_master::allocator::{Allocator, AllocatorConfig, DrfAllocator, FrameworkSpec};
use agora_resources::Resources;

fn res(text: &str) -> Resources {
    // The texts below are constants of this file; a failure is a bug in the benchmark.
    Resources::parse(text).unwrap_or_else(|e| panic!("benchmark resources '{text}': {e}"))
}

/// The Mesos `DeclineOffers` set-up: every agent has
/// `cpus:24;mem:4096;disk:4096;ports:[31000-32000]` and already runs
/// `cpus:16;mem:2014;disk:1024` plus 16 ports for one framework (round-robin); cycles offer
/// the rest until every framework has declined every agent with a very long filter. The
/// allocator returned is ready for measured cycles, which offer nothing.
pub fn decline_offers(agents: usize, frameworks: usize) -> DrfAllocator {
    let mut a = DrfAllocator::new(AllocatorConfig::default());
    let total = res("cpus:24;mem:4096;disk:4096;ports:[31000-32000]");
    let used = res("cpus:16;mem:2014;disk:1024;ports:[31000-31015]");
    for f in 0..frameworks {
        let spec = FrameworkSpec {
            roles: vec![format!("role{f}")],
            ..FrameworkSpec::default()
        };
        a.add_framework(&format!("f{f}"), spec)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    for i in 0..agents {
        let agent = format!("agent{i}");
        let f = i % frameworks.max(1);
        a.add_agent(&agent, total.clone())
            .unwrap_or_else(|e| panic!("{e}"));
        a.add_allocated(&agent, &format!("f{f}"), &format!("role{f}"), &used)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // Declines move each agent on to the next framework in fair order, so the steady state
    // (every framework has declined every agent) takes up to one round per framework.
    for round in 0..=frameworks {
        let offers = a.allocate(0);
        if offers.is_empty() {
            break;
        }
        assert!(
            round < frameworks,
            "offers still made after every framework declined"
        );
        for o in offers {
            a.recover(
                &o.agent,
                &o.framework,
                &o.role,
                &o.resources,
                Some(u64::MAX),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decline_offers_setup_offers_nothing_after_declines() {
        let mut a = decline_offers(50, 5);
        assert!(a.allocate(1).is_empty());
    }
}
