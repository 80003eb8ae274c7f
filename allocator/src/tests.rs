//! Unit tests of the "drf" policy: the mission's DRF, weighted-DRF and max-min tables step
//! by step, then each semantic rule (reservations, quota, filters, capabilities,
//! constraints, demands and holds, gangs, explain).

use std::collections::BTreeMap;

use agora_resources::{Attributes, Resources};

use super::*;

const FAR: Millis = u64::MAX;

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

/// One launched task: who, and what every framework holds afterwards.
#[derive(Debug, Clone, PartialEq)]
struct Step {
    who: String,
    holds: BTreeMap<String, Resources>,
}

/// Drive the allocator like frameworks that each launch one task of their shape per offer
/// when it fits (returning the rest at once) and decline for good otherwise; stop when
/// nothing more is offered.
fn simulate(a: &mut DrfAllocator, tasks: &BTreeMap<&str, Resources>) -> Vec<Step> {
    let mut held: BTreeMap<String, Resources> = tasks
        .keys()
        .map(|f| (f.to_string(), Resources::new()))
        .collect();
    let mut steps = Vec::new();
    for cycle in 0..1000 {
        let offers = a.allocate(cycle);
        if offers.is_empty() {
            break;
        }
        for o in offers {
            let task = &tasks[o.framework.as_str()];
            if o.resources.contains(task) {
                let rest = o.resources.checked_sub(task).unwrap();
                a.recover(&o.agent, &o.framework, &o.role, &rest, None)
                    .unwrap();
                let h = held.get_mut(&o.framework).unwrap();
                *h = h.checked_add(task).unwrap();
                steps.push(Step {
                    who: o.framework.clone(),
                    holds: held.clone(),
                });
            } else {
                a.recover(&o.agent, &o.framework, &o.role, &o.resources, Some(FAR))
                    .unwrap();
            }
            a.check_invariants().unwrap();
        }
    }
    steps
}

fn drf_run(seed: u64, weight_a: Option<f64>) -> Vec<Step> {
    let mut a = alloc(seed);
    a.add_agent("s1", res("cpus:9;mem:18")).unwrap();
    a.add_framework("A", spec(&["ra"])).unwrap();
    a.add_framework("B", spec(&["rb"])).unwrap();
    if let Some(w) = weight_a {
        a.set_weight("ra", w).unwrap();
    }
    let tasks = BTreeMap::from([("A", res("cpus:1;mem:4")), ("B", res("cpus:3;mem:1"))]);
    simulate(&mut a, &tasks)
}

/// The table as (who, A holds, B holds) rows.
fn rows(steps: &[Step]) -> Vec<(String, String, String)> {
    steps
        .iter()
        .map(|s| {
            (
                s.who.clone(),
                s.holds["A"].to_string(),
                s.holds["B"].to_string(),
            )
        })
        .collect()
}

fn row(who: &str, a: &str, b: &str) -> (String, String, String) {
    let fmt = |t: &str| {
        if t.is_empty() {
            String::new()
        } else {
            res(t).to_string()
        }
    };
    (who.to_string(), fmt(a), fmt(b))
}

#[test]
fn drf_table_of_the_mission_step_by_step() {
    let table = vec![
        row("B", "", "cpus:3;mem:1"),
        row("A", "cpus:1;mem:4", "cpus:3;mem:1"),
        row("A", "cpus:2;mem:8", "cpus:3;mem:1"),
        row("B", "cpus:2;mem:8", "cpus:6;mem:2"),
        row("A", "cpus:3;mem:12", "cpus:6;mem:2"),
    ];
    // Step 1 is a tie broken at random: find seeds where B wins it, as in the table.
    let mut matched = 0;
    for seed in 0..32 {
        let steps = drf_run(seed, None);
        if steps[0].who == "B" {
            assert_eq!(rows(&steps), table, "seed {seed}");
            matched += 1;
        } else {
            // The other branch of the tie, equally valid: A first, then B, ...
            assert_eq!(steps.len(), 5, "seed {seed}: A 3 tasks, B 2 tasks");
        }
        // CPU is exhausted: A runs 3 tasks, B runs 2.
        let last = &steps.last().unwrap().holds;
        assert_eq!(last["A"], res("cpus:3;mem:12"));
        assert_eq!(last["B"], res("cpus:6;mem:2"));
    }
    assert!(matched > 0, "some seed breaks the step-1 tie toward B");
    assert_eq!(drf_run(5, None), drf_run(5, None), "same seed, same run");
}

#[test]
fn weighted_drf_table_both_tie_branches_by_seed() {
    let common = vec![
        row("B", "", "cpus:3;mem:1"),
        row("A", "cpus:1;mem:4", "cpus:3;mem:1"),
        row("A", "cpus:2;mem:8", "cpus:3;mem:1"),
        row("A", "cpus:3;mem:12", "cpus:3;mem:1"),
    ];
    let mut a_branch = common.clone();
    a_branch.push(row("A", "cpus:4;mem:16", "cpus:3;mem:1"));
    let mut b_branch = common.clone();
    b_branch.push(row("B", "cpus:3;mem:12", "cpus:6;mem:2"));
    let (mut seen_a, mut seen_b) = (None, None);
    for seed in 0..64 {
        let steps = drf_run(seed, Some(2.0));
        if steps[0].who != "B" {
            continue;
        }
        let got = rows(&steps);
        if got == a_branch {
            seen_a.get_or_insert(seed);
        } else if got == b_branch {
            seen_b.get_or_insert(seed);
        } else {
            panic!("seed {seed}: unexpected run {got:?}");
        }
    }
    let (sa, sb) = (seen_a.expect("branch 5a"), seen_b.expect("branch 5b"));
    // 5a ends at 7/9 cpu and 17/18 mem; 5b at 9/9 cpu.
    let end = |seed| {
        let s = drf_run(seed, Some(2.0));
        let h = &s.last().unwrap().holds;
        h["A"].checked_add(&h["B"]).unwrap()
    };
    assert_eq!(end(sa), res("cpus:7;mem:17"));
    assert_eq!(end(sb), res("cpus:9;mem:14"));
}

#[test]
fn max_min_example_of_the_mission() {
    let mut a = alloc(3);
    a.add_agent("s1", res("mem:100")).unwrap();
    let demands = [("u1", 10u64), ("u2", 18), ("u3", 42), ("u4", 46)];
    for (u, _) in demands {
        a.add_framework(
            u,
            FrameworkSpec {
                min_allocatable: vec![res("mem:1")],
                ..spec(&[u])
            },
        )
        .unwrap();
    }
    let mut got: BTreeMap<&str, u64> = demands.iter().map(|(u, _)| (*u, 0)).collect();
    for cycle in 0..500 {
        let offers = a.allocate(cycle);
        if offers.is_empty() {
            break;
        }
        for o in offers {
            let u = demands.iter().find(|d| d.0 == o.framework).unwrap();
            let rest = o.resources.checked_sub(&res("mem:1")).unwrap();
            a.recover(&o.agent, &o.framework, &o.role, &rest, None)
                .unwrap();
            let g = got.get_mut(u.0).unwrap();
            *g += 1;
            if *g == u.1 {
                a.suppress(u.0, &[]).unwrap();
            }
        }
    }
    assert_eq!(
        got.values().copied().collect::<Vec<_>>(),
        vec![10, 18, 36, 36]
    );
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
    a.check_invariants().unwrap();
}

#[test]
fn weights_divide_shares_and_are_validated() {
    let mut a = alloc(3);
    a.add_agent("a1", res("cpus:10;mem:10")).unwrap();
    a.add_agent("a2", res("cpus:10;mem:10")).unwrap();
    a.add_framework("fa", spec(&["ra"])).unwrap();
    a.add_framework("fb", spec(&["rb"])).unwrap();
    a.add_allocated("a1", "fa", "ra", &res("cpus:4")).unwrap();
    a.add_allocated("a1", "fb", "rb", &res("cpus:3")).unwrap();
    a.set_weight("ra", 2.0).unwrap();
    let offers = a.allocate(0);
    assert_eq!(offers[0].framework, "fa");
    assert!(a.set_weight("ra", 0.0).is_err());
    assert!(a.set_weight("ra", f64::NAN).is_err());
    assert!(a.set_weight("bad role!", 1.0).is_err());
    assert_eq!(a.weights(), vec![("ra".to_string(), 2.0)]);
}

#[test]
fn hierarchical_roles_share_between_subtrees_first() {
    // eng has two sub-roles with a framework each, ops one framework: eng as a whole and
    // ops alternate, so ops ends with about half the cluster.
    let mut a = alloc(9);
    for i in 0..8 {
        a.add_agent(&format!("s{i}"), res("cpus:1;mem:100"))
            .unwrap();
    }
    a.add_framework("ml", spec(&["eng/ml"])).unwrap();
    a.add_framework("web", spec(&["eng/web"])).unwrap();
    a.add_framework("ops", spec(&["ops"])).unwrap();
    let offers = a.allocate(0);
    let count = |f: &str| offers.iter().filter(|o| o.framework == f).count();
    assert_eq!(count("ops"), 4);
    assert_eq!(count("ml"), 2);
    assert_eq!(count("web"), 2);
}

#[test]
fn reserved_resources_only_reach_their_role_and_its_children_and_count_in_its_share() {
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
    let e = a.explain(&ExplainTarget::Role("eng".into()), 0).unwrap();
    assert_eq!(e.roles[0].reserved, res("cpus:8"));
    assert!((e.roles[0].dominant_share - 0.8).abs() < 1e-9);
    a.check_invariants().unwrap();
}

#[test]
fn unallocated_reservations_count_toward_the_share() {
    // eng holds an idle reservation of 6 of 10 cpus: ops is offered the free cpus first.
    let mut a = alloc(2);
    a.add_agent("a1", res("cpus(eng):6;mem(eng):10")).unwrap();
    a.add_agent("a2", res("cpus:4;mem:10")).unwrap();
    a.add_framework("e", spec(&["eng"])).unwrap();
    a.add_framework("o", spec(&["ops"])).unwrap();
    let offers = a.allocate(0);
    let o = offers.iter().find(|o| o.agent == "a2").unwrap();
    assert_eq!(o.framework, "o");
}

#[test]
fn decline_filter_holds_until_expiry_unless_more_is_free() {
    let mut a = alloc(1);
    a.add_agent("a1", res("cpus:4;mem:1024")).unwrap();
    a.add_framework("f", spec(&["r"])).unwrap();
    let o = a.allocate(0).remove(0);
    let rest = res("cpus:3;mem:1024");
    a.recover("a1", "f", "r", &rest, Some(5_000)).unwrap();
    assert!(a.allocate(1_000).is_empty(), "filtered");
    a.recover("a1", "f", "r", &res("cpus:1"), None).unwrap();
    let again = a.allocate(1_000);
    assert_eq!(again.len(), 1, "more than was refused is free");
    assert_eq!(again[0].resources, o.resources);
    a.recover("a1", "f", "r", &o.resources, Some(5_000))
        .unwrap();
    assert!(a.allocate(4_999).is_empty());
    assert_eq!(a.allocate(5_000).len(), 1, "filter expired");
}

#[test]
fn offers_of_one_agent_declined_together_all_stay_filtered() {
    let mut a = alloc(1);
    a.add_agent("a1", res("cpus:4;mem:1024")).unwrap();
    a.add_framework("f", spec(&["r"])).unwrap();
    a.allocate(0).remove(0);
    // A cpu comes back while the first offer is outstanding: a second offer.
    a.recover("a1", "f", "r", &res("cpus:1"), None).unwrap();
    let second = a.allocate(1).remove(0);
    assert_eq!(second.resources, res("cpus:1"));
    // Both declined in one call: each recovery adds a filter on the same agent.
    a.recover("a1", "f", "r", &res("cpus:3;mem:1024"), Some(5_000))
        .unwrap();
    a.recover("a1", "f", "r", &second.resources, Some(8_000))
        .unwrap();
    assert!(a.allocate(1_000).is_empty(), "both refusals filter");
    // The combined filter ends with the earliest refusal.
    assert_eq!(a.allocate(5_000).len(), 1);
}

#[test]
fn filter_on_one_framework_passes_the_agent_to_the_next() {
    let mut a = alloc(4);
    a.add_agent("a1", res("cpus:4;mem:1024")).unwrap();
    a.add_framework("f", spec(&["r"])).unwrap();
    a.add_framework("g", spec(&["r"])).unwrap();
    let o = a.allocate(0).remove(0);
    a.recover("a1", &o.framework, "r", &o.resources, Some(FAR))
        .unwrap();
    let o2 = a.allocate(1).remove(0);
    assert_ne!(o2.framework, o.framework);
    a.recover("a1", &o2.framework, "r", &o2.resources, Some(FAR))
        .unwrap();
    assert!(a.allocate(2).is_empty());
    let e = a
        .explain(&ExplainTarget::Framework(o.framework.clone()), 2)
        .unwrap();
    assert_eq!(e.framework.as_ref().unwrap().roles[0].filters_total, 1);
    assert!(e.reasons.iter().any(|r| r.contains("filtered on 1 agent")));
}

#[test]
fn suppress_stops_offers_and_revive_clears_filters() {
    let mut a = alloc(1);
    a.add_agent("a1", res("cpus:4")).unwrap();
    a.add_framework("f", spec(&["r"])).unwrap();
    a.suppress("f", &[]).unwrap();
    assert!(a.allocate(0).is_empty());
    assert!(a.suppress("f", &["nope".to_string()]).is_err());
    let e = a.explain(&ExplainTarget::Framework("f".into()), 0).unwrap();
    assert!(e.reasons.iter().any(|r| r.contains("suppressed")));
    a.revive("f", &[]).unwrap();
    let o = a.allocate(0).remove(0);
    a.recover("a1", "f", "r", &o.resources, Some(FAR)).unwrap();
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
    a.check_invariants().unwrap();

    let mut b = alloc(1);
    b.add_agent("a1", res("cpus:0.005;mem:16")).unwrap();
    b.add_framework("f", spec(&["r"])).unwrap();
    assert!(b.allocate(0).is_empty(), "below cpus:0.01 and mem:32");
    b.update_framework(
        "f",
        FrameworkSpec {
            min_allocatable: vec![res("mem:16")],
            ..spec(&["r"])
        },
    )
    .unwrap();
    assert_eq!(b.allocate(0).len(), 1, "per-framework minimum");
}

#[test]
fn gpus_do_not_count_in_dominant_shares_by_default() {
    let mut a = alloc(1);
    a.add_agent("a1", res("cpus:10;gpus:4")).unwrap();
    a.add_framework(
        "g",
        FrameworkSpec {
            gpus: true,
            ..spec(&["rg"])
        },
    )
    .unwrap();
    a.add_allocated("a1", "g", "rg", &res("cpus:1;gpus:4"))
        .unwrap();
    let share = a
        .role_shares()
        .into_iter()
        .find(|s| s.role == "rg")
        .unwrap()
        .dominant_share;
    assert!((share - 0.1).abs() < 1e-9);
}

#[test]
fn removing_an_agent_releases_its_allocations() {
    let mut a = alloc(1);
    a.add_agent("a1", res("cpus:4")).unwrap();
    a.add_framework("f", spec(&["r"])).unwrap();
    a.allocate(0);
    a.remove_agent("a1").unwrap();
    assert!(a.role_shares().iter().all(|s| s.allocated.is_empty()));
    assert_eq!(
        a.recover("a1", "f", "r", &res("cpus:1"), None),
        Err(AllocatorError::UnknownAgent("a1".into()))
    );
    a.check_invariants().unwrap();
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
        by_name("nope", AllocatorConfig::default()),
        Err(AllocatorError::UnknownPolicy(_))
    ));
    assert!(by_name("drf", AllocatorConfig::default()).is_ok());
}

#[test]
fn offer_constraints_select_agents_by_attributes() {
    let mut a = alloc(1);
    for (id, rack) in [("a1", "rack-1"), ("a2", "rack-2"), ("a3", "rack-3")] {
        a.add_agent_with_attributes(
            id,
            res("cpus:1;mem:64"),
            Attributes::parse(&format!("rack:{rack}")).unwrap(),
        )
        .unwrap();
    }
    let constrained = FrameworkSpec {
        offer_constraints: vec![RoleConstraints {
            role: "r".into(),
            groups: vec![vec![AttributeConstraint {
                attribute: "rack".into(),
                predicate: Predicate::Matches("rack-[12]".into()),
            }]],
        }],
        ..spec(&["r"])
    };
    a.add_framework("f", constrained.clone()).unwrap();
    let mut agents: Vec<String> = a.allocate(0).into_iter().map(|o| o.agent).collect();
    agents.sort();
    assert_eq!(agents, vec!["a1", "a2"]);
    let e = a.explain(&ExplainTarget::Framework("f".into()), 0).unwrap();
    assert_eq!(
        e.framework.unwrap().roles[0].constraint_mismatches,
        vec!["a3".to_string()]
    );
    // Bad patterns are refused, not panicked on.
    let mut bad = constrained;
    bad.offer_constraints[0].groups[0][0].predicate = Predicate::Matches("(".into());
    assert!(matches!(
        a.add_framework("g", bad),
        Err(AllocatorError::InvalidConstraint { .. })
    ));
}

fn quota_cluster() -> DrfAllocator {
    let mut a = alloc(1);
    for i in 0..4 {
        a.add_agent(&format!("s{i}"), res("cpus:4;mem:4096"))
            .unwrap();
    }
    a
}

#[test]
fn quota_guarantee_is_met_first_and_limit_never_exceeded() {
    let mut a = quota_cluster();
    a.add_framework("q", spec(&["q"])).unwrap();
    a.add_framework("o", spec(&["o"])).unwrap();
    a.set_quota(
        "q",
        res("cpus:6;mem:6144"),
        Some(res("cpus:8;mem:8192")),
        false,
    )
    .unwrap();
    let offers = a.allocate(0);
    let sum = |f: &str| {
        offers
            .iter()
            .filter(|o| o.framework == f)
            .fold(Resources::new(), |acc, o| {
                acc.checked_add(&o.resources).unwrap()
            })
    };
    assert!(sum("q").scalar("cpus") >= res("cpus:6").scalar("cpus"));
    assert!(sum("q").scalar("cpus") <= res("cpus:8").scalar("cpus"));
    assert_eq!(
        sum("q").checked_add(&sum("o")).unwrap(),
        res("cpus:16;mem:16384")
    );
    let status = a.quotas();
    assert_eq!(status[0].role, "q");
    let e = a.explain(&ExplainTarget::Role("q".into()), 0).unwrap();
    assert!(
        e.roles[0]
            .quota
            .as_ref()
            .unwrap()
            .unmet_guarantee
            .is_empty()
    );
    a.check_invariants().unwrap();

    // Alone, q still stops at its limit.
    let mut b = quota_cluster();
    b.add_framework("q", spec(&["q"])).unwrap();
    b.set_quota("q", res("cpus:2"), Some(res("cpus:5;mem:5000")), false)
        .unwrap();
    let total = b.allocate(0).iter().fold(Resources::new(), |acc, o| {
        acc.checked_add(&o.resources).unwrap()
    });
    assert_eq!(total.scalar("cpus"), res("cpus:5").scalar("cpus"));
    assert_eq!(total.scalar("mem"), res("mem:5000").scalar("mem"));
    assert!(b.allocate(1).is_empty(), "capped roles leave the order");
}

#[test]
fn quota_headroom_is_kept_for_a_role_whose_framework_comes_later() {
    let mut a = quota_cluster();
    a.set_quota("q", res("cpus:8;mem:8192"), None, false)
        .unwrap();
    a.add_framework("o", spec(&["o"])).unwrap();
    let got = a.allocate(0).iter().fold(Resources::new(), |acc, o| {
        acc.checked_add(&o.resources).unwrap()
    });
    assert_eq!(
        got,
        res("cpus:8;mem:8192"),
        "half is kept for q's guarantee"
    );
    a.add_framework("q", spec(&["q"])).unwrap();
    let got = a.allocate(1).iter().fold(Resources::new(), |acc, o| {
        acc.checked_add(&o.resources).unwrap()
    });
    assert_eq!(got, res("cpus:8;mem:8192"));
}

#[test]
fn quota_validation() {
    let mut a = quota_cluster();
    let err = |r: Result<(), AllocatorError>| matches!(r, Err(AllocatorError::InvalidQuota { .. }));
    assert!(err(a.set_quota(
        "q",
        res("cpus:4"),
        Some(res("cpus:2")),
        false
    )));
    assert!(err(a.set_quota("q", res("ports:[1-2]"), None, false)));
    assert!(err(a.set_quota("q", res("cpus(q):1"), None, false)));
    assert!(
        err(a.set_quota("q", res("cpus:100"), None, false)),
        "above cluster"
    );
    a.set_quota("q", res("cpus:100"), None, true).unwrap();
    a.set_quota("eng", res("cpus:4"), Some(res("cpus:6")), false)
        .unwrap();
    a.set_quota("eng/ml", res("cpus:3"), Some(res("cpus:6")), false)
        .unwrap();
    assert!(
        err(a.set_quota("eng/web", res("cpus:2"), Some(res("cpus:6")), false)),
        "3 + 2 > 4"
    );
    assert!(
        err(a.set_quota("eng/web", res("cpus:1"), Some(res("cpus:7")), false)),
        "limit above parent's"
    );
    a.set_quota("eng/web", res("cpus:1"), Some(res("cpus:6")), false)
        .unwrap();
    assert!(
        err(a.set_quota("eng", res("cpus:3"), None, false)),
        "children no longer fit"
    );
    a.remove_quota("eng/web").unwrap();
    assert!(a.remove_quota("eng/web").is_err());
}

/// The starvation scenario of mission section 4: a full cluster frees one cpu every 30 s
/// (alternating agents); small frameworks take every freed cpu; a framework needing 50 cpus
/// at once never starts under plain DRF, and starts within a bounded number of cycles when
/// it declares its demand.
fn starvation(declare: bool) -> (Option<u64>, usize) {
    let mut a = alloc(11);
    let task = res("cpus:1;mem:1024");
    for s in ["s0", "s1"] {
        a.add_agent(s, res("cpus:64;mem:65536")).unwrap();
    }
    a.add_framework("small1", spec(&["small"])).unwrap();
    a.add_framework("small2", spec(&["small"])).unwrap();
    let mut running: Vec<(String, String)> = Vec::new();
    for s in ["s0", "s1"] {
        for i in 0..64 {
            let f = if i % 2 == 0 { "small1" } else { "small2" };
            a.add_allocated(s, f, "small", &task).unwrap();
            running.push((s.to_string(), f.to_string()));
        }
    }
    let big = FrameworkSpec {
        demands: if declare {
            vec![Demand {
                role: "big".into(),
                shape: res("cpus:50;mem:1024"),
                count: 1,
                same_agent: false,
            }]
        } else {
            Vec::new()
        },
        ..spec(&["big"])
    };
    a.add_framework("big", big).unwrap();
    let mut small_launched = 0;
    for cycle in 0..150u64 {
        let now = cycle * 30_000;
        // One task of a small framework finishes on alternating agents.
        let agent = if cycle % 2 == 0 { "s0" } else { "s1" };
        if let Some(i) = running.iter().position(|(s, _)| s == agent) {
            let (s, f) = running.remove(i);
            a.recover(&s, &f, "small", &task, None).unwrap();
        }
        // The master allocates again a second later (declined crumbs are filtered for the
        // big framework for 5 s, so they go elsewhere).
        let offers: Vec<Allocation> = [now, now + 1_000]
            .into_iter()
            .flat_map(|t| {
                let offers = a.allocate(t);
                let mut kept = Vec::new();
                for o in offers {
                    if o.framework == "big"
                        && o.resources.scalar("cpus") < res("cpus:50").scalar("cpus")
                    {
                        a.recover(&o.agent, "big", "big", &o.resources, Some(t + 5_000))
                            .unwrap();
                    } else {
                        kept.push(o);
                    }
                }
                kept
            })
            .collect();
        for o in offers {
            if o.framework == "big" {
                return (Some(cycle), small_launched);
            } else {
                // Small frameworks launch one-cpu tasks on everything they get.
                let n = o.resources.scalar("cpus").thousandths() / 1000;
                let used = Resources::parse(&format!("cpus:{n};mem:{}", n * 1024)).unwrap();
                let rest = o.resources.checked_sub(&used).unwrap();
                a.recover(&o.agent, &o.framework, "small", &rest, None)
                    .unwrap();
                for _ in 0..n {
                    running.push((o.agent.clone(), o.framework.clone()));
                }
                small_launched += n as usize;
            }
        }
        a.check_invariants().unwrap();
    }
    (None, small_launched)
}

#[test]
fn big_framework_starts_within_bounded_cycles_while_small_ones_keep_running() {
    let (plain, _) = starvation(false);
    assert_eq!(plain, None, "plain wDRF starves the 50-cpu framework");
    let (started, small) = starvation(true);
    // One cpu frees on the held agent every other cycle: 50 cpus take ~100 cycles.
    let cycle = started.expect("the 50-cpu framework starts");
    assert!(cycle <= 101, "started at cycle {cycle}");
    assert!(small >= 45, "small frameworks kept launching ({small})");
}

#[test]
fn gang_is_offered_all_at_once_or_nothing() {
    let mut a = alloc(5);
    a.add_agent("s0", res("cpus:4;mem:4096")).unwrap();
    a.add_agent("s1", res("cpus:4;mem:4096")).unwrap();
    a.add_framework("busy", spec(&["busy"])).unwrap();
    a.add_allocated("s0", "busy", "busy", &res("cpus:2;mem:2048"))
        .unwrap();
    a.add_allocated("s1", "busy", "busy", &res("cpus:3;mem:3072"))
        .unwrap();
    let gang = FrameworkSpec {
        demands: vec![Demand {
            role: "g".into(),
            shape: res("cpus:1;mem:1024"),
            count: 4,
            same_agent: false,
        }],
        ..spec(&["g"])
    };
    a.add_framework("g", gang).unwrap();
    a.suppress("busy", &[]).unwrap();
    // 2 + 1 cpus free: the gang of 4 is not offered (and nobody else wants them).
    assert!(a.allocate(0).iter().all(|o| o.framework != "g"));
    // One more cpu frees on s1: 2 + 2 across agents serve the gang at once.
    a.recover("s1", "busy", "busy", &res("cpus:1;mem:1024"), None)
        .unwrap();
    let offers = a.allocate(1);
    let g: Vec<_> = offers.iter().filter(|o| o.framework == "g").collect();
    assert_eq!(g.len(), 2, "both agents in one cycle: {offers:?}");
    let cpus: u64 = g
        .iter()
        .map(|o| o.resources.scalar("cpus").thousandths())
        .sum();
    assert_eq!(cpus, 4000);
}

#[test]
fn fragmentation_same_agent_demand_holds_one_agent_until_it_fits() {
    let mut a = alloc(5);
    a.add_agent("s0", res("cpus:4;mem:4096")).unwrap();
    a.add_agent("s1", res("cpus:4;mem:4096")).unwrap();
    a.add_framework("busy", spec(&["busy"])).unwrap();
    a.add_allocated("s0", "busy", "busy", &res("cpus:4;mem:4096"))
        .unwrap();
    a.add_allocated("s1", "busy", "busy", &res("cpus:4;mem:4096"))
        .unwrap();
    let four = FrameworkSpec {
        demands: vec![Demand {
            role: "f".into(),
            shape: res("cpus:1;mem:1024"),
            count: 4,
            same_agent: true,
        }],
        ..spec(&["f"])
    };
    a.add_framework("f", four).unwrap();
    a.add_framework("other", spec(&["other"])).unwrap();
    // Two cpus free on each agent.
    for s in ["s0", "s1"] {
        a.recover(s, "busy", "busy", &res("cpus:2;mem:2048"), None)
            .unwrap();
    }
    let offers = a.allocate(0);
    assert!(offers.iter().all(|o| o.framework != "f"));
    let e = a.explain(&ExplainTarget::Framework("f".into()), 0).unwrap();
    assert_eq!(e.holds.len(), 1, "one agent held: {e:?}");
    let held = e.holds[0].agent.clone();
    // The held agent's two free cpus were not handed to `other`.
    assert!(offers.iter().all(|o| o.agent != held), "{offers:?}");
    a.recover(&held, "busy", "busy", &res("cpus:2;mem:2048"), None)
        .unwrap();
    let offers = a.allocate(1);
    let f: Vec<_> = offers.iter().filter(|o| o.framework == "f").collect();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].agent, held);
    assert_eq!(f[0].resources, res("cpus:4;mem:4096"));
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["kind"], "framework");
    assert!(json["framework"]["demands"][0]["count"] == 4);
}

#[test]
fn holds_are_bounded_in_time() {
    let mut a = DrfAllocator::new(AllocatorConfig {
        seed: 1,
        holds: HoldConfig {
            stall_ms: 1_000,
            ..HoldConfig::default()
        },
        ..AllocatorConfig::default()
    });
    a.add_agent("s0", res("cpus:8;mem:8192")).unwrap();
    a.add_framework("busy", spec(&["busy"])).unwrap();
    a.add_allocated("s0", "busy", "busy", &res("cpus:7;mem:7168"))
        .unwrap();
    let big = FrameworkSpec {
        demands: vec![Demand {
            role: "big".into(),
            shape: res("cpus:8;mem:8192"),
            count: 1,
            same_agent: false,
        }],
        ..spec(&["big"])
    };
    a.add_framework("big", big).unwrap();
    a.add_framework("other", spec(&["other"])).unwrap();
    assert!(a.allocate(0).is_empty(), "held");
    assert!(a.allocate(500).is_empty(), "still held");
    // No progress for stall_ms: the hold is dropped and `other` gets the cpu.
    let offers = a.allocate(1_000);
    assert_eq!(offers.len(), 1);
    assert_eq!(offers[0].framework, "other");
}

#[test]
fn explain_role_and_unknown_targets() {
    let mut a = quota_cluster();
    a.add_framework("f", spec(&["eng/ml"])).unwrap();
    a.set_weight("eng", 2.5).unwrap();
    a.allocate(0);
    let e = a.explain(&ExplainTarget::Role("eng".into()), 7).unwrap();
    assert_eq!(e.kind, "role");
    assert_eq!(e.roles[0].weight, 2.5);
    assert!((e.roles[0].dominant_share - 1.0).abs() < 1e-9);
    assert!((e.roles[0].weighted_share - 0.4).abs() < 1e-9);
    let json = serde_json::to_string(&e).unwrap();
    assert!(json.contains("\"weighted_share\""));
    assert!(a.explain(&ExplainTarget::Role("nope".into()), 0).is_err());
    assert!(
        a.explain(&ExplainTarget::Framework("nope".into()), 0)
            .is_err()
    );
}

#[test]
fn multi_role_framework_gets_offers_under_each_role() {
    let mut a = alloc(2);
    a.add_agent("s0", res("cpus:2;cpus(x):2")).unwrap();
    a.add_framework("f", spec(&["x", "y"])).unwrap();
    let offers = a.allocate(0);
    let x = offers
        .iter()
        .find(|o| o.role == "x")
        .expect("an offer under x");
    assert!(x.resources.contains(&res("cpus(x):2")));
    assert!(
        offers
            .iter()
            .all(|o| o.role == "x" || o.resources == res("cpus:2"))
    );
    a.check_invariants().unwrap();
}

#[test]
fn converting_an_accepted_offer_reserves_it_for_the_role_only() {
    let mut a = alloc(3);
    a.add_agent("a1", res("cpus:4;mem:100")).unwrap();
    a.add_framework("db", spec(&["db"])).unwrap();
    let offers = a.allocate(0);
    assert_eq!(offers[0].resources, res("cpus:4;mem:100"));
    // The framework reserves 2 cpus of its offer and returns everything.
    let reserved = res("cpus(db,dynamic,principal=p):2");
    a.convert_resources("a1", Some(("db", "db")), &res("cpus:2"), &reserved)
        .unwrap();
    a.check_invariants().unwrap();
    a.recover("a1", "db", "db", &res("cpus:2;mem:100"), None)
        .unwrap();
    a.recover("a1", "db", "db", &reserved, Some(FAR)).unwrap();
    a.check_invariants().unwrap();
    // Another role is offered only the unreserved rest.
    a.add_framework("web", spec(&["web"])).unwrap();
    let offers = a.allocate(0);
    let web = offers.iter().find(|o| o.framework == "web").unwrap();
    assert_eq!(web.resources, res("cpus:2;mem:100"), "{offers:?}");
    for o in &offers {
        if o.resources.iter().any(|r| r.reservation.is_some()) {
            assert_eq!((o.framework.as_str(), &o.resources), ("db", &reserved));
            a.recover("a1", "db", "db", &reserved, None).unwrap();
        }
    }
    // Unreserving the free reservation gives the cpus to everyone again.
    a.convert_resources("a1", None, &reserved, &res("cpus:2"))
        .unwrap();
    a.check_invariants().unwrap();
    let offers = a.allocate(0);
    assert_eq!(offers.len(), 1);
    assert_eq!(offers[0].resources, res("cpus:2"));
}

#[test]
fn conversion_of_what_is_not_there_changes_nothing() {
    let mut a = alloc(4);
    a.add_agent("a1", res("cpus:4;disk(db):100")).unwrap();
    a.add_framework("db", spec(&["db"])).unwrap();
    let before = format!("{:?}", a.role_shares());
    let e = a
        .convert_resources("a1", None, &res("cpus:8"), &res("cpus(db,dynamic):8"))
        .unwrap_err();
    assert!(e.to_string().contains("not free on the agent"), "{e}");
    let e = a
        .convert_resources(
            "a1",
            Some(("db", "db")),
            &res("cpus:1"),
            &res("cpus(db,dynamic):1"),
        )
        .unwrap_err();
    assert!(e.to_string().contains("not allocated on the agent"), "{e}");
    assert!(matches!(
        a.convert_resources("nope", None, &res("cpus:1"), &res("cpus(db,dynamic):1")),
        Err(AllocatorError::UnknownAgent(_))
    ));
    assert_eq!(before, format!("{:?}", a.role_shares()));
    a.check_invariants().unwrap();
    // A volume made from free static reserved disk is offered to its role as a volume.
    let vol = res("disk(db,volume=v1,path=data):100");
    a.convert_resources("a1", None, &res("disk(db):100"), &vol)
        .unwrap();
    a.check_invariants().unwrap();
    let offers = a.allocate(0);
    assert_eq!(
        offers[0].resources,
        res("cpus:4").checked_add(&vol).unwrap()
    );
}

#[test]
fn role_gauges_count_revocable_and_reserved_scalars_and_skip_ranges() {
    let mut a = alloc(1);
    a.add_agent(
        "a1",
        res("cpus:1;mem:64;cpus(*,revocable):2;cpus(eng):3;ports:[1-5]"),
    )
    .unwrap();
    a.add_framework(
        "f1",
        FrameworkSpec {
            roles: vec!["eng".into()],
            revocable: true,
            ..FrameworkSpec::default()
        },
    )
    .unwrap();
    a.set_weight("idle", 2.0).unwrap();
    let offers = a.allocate(0);
    assert_eq!(offers.len(), 1);
    let want: Vec<RoleGauge> = a.role_shares().into_iter().map(RoleGauge::of).collect();
    let got = a.role_gauges();
    assert_eq!(got, want);
    let eng = got.iter().find(|g| g.role == "eng").expect("eng");
    assert_eq!(
        eng.allocated,
        vec![("cpus".to_string(), 6000), ("mem".to_string(), 64_000)]
    );
    assert!(
        got.iter()
            .any(|g| g.role == "idle" && g.allocated.is_empty())
    );
    // Returning everything leaves the role with nothing.
    for o in offers {
        a.recover(&o.agent, &o.framework, &o.role, &o.resources, None)
            .unwrap();
    }
    let want: Vec<RoleGauge> = a.role_shares().into_iter().map(RoleGauge::of).collect();
    assert_eq!(a.role_gauges(), want);
    assert!(a.role_gauges().iter().all(|g| g.allocated.is_empty()));
}
