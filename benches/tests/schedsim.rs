//! The scheduling-quality simulator on a short, small run: the figures it reports are
//! sane and compare the policies the way the issue expects (sharing beats static
//! partitioning on utilisation; with demands the whole-agent job is not starved).

use agora_benches::schedsim::{self, Policy};

#[test]
fn sharing_beats_static_partitioning_and_demands_end_starvation() {
    let w = schedsim::mesos_mix(3, 12, 1);
    let stat = schedsim::run(&w, Policy::Static, 3);
    let plain = schedsim::run(&w, Policy::PlainDrf, 3);
    let agora = schedsim::run(&w, Policy::Demands, 3);
    for r in [&stat, &plain, &agora] {
        assert!(r.cpu_util > 0.0 && r.cpu_util <= 1.0, "{r:?}");
        assert!(r.mem_util > 0.0 && r.mem_util <= 1.0, "{r:?}");
        assert!(r.drf_distance >= 0.0 && r.drf_distance <= 1.0);
    }
    assert!(
        plain.cpu_util > stat.cpu_util,
        "sharing uses more cpu than static slices: {} vs {}",
        plain.cpu_util,
        stat.cpu_util
    );
    let started = |r: &schedsim::Report| {
        r.wait_s["big"].len() - r.never_started.get("big").copied().unwrap_or(0)
    };
    assert!(
        started(&agora) >= 1,
        "with its demand declared the whole-agent job runs: {agora:?}"
    );
    assert!(started(&agora) >= started(&plain));
    // Deterministic: one seed, one result.
    let again = schedsim::run(&w, Policy::Demands, 3);
    assert_eq!(again.offers, agora.offers);
    assert_eq!(again.cpu_util, agora.cpu_util);
}
