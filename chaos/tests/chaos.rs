//! The chaos soak, short: real processes in network namespaces under faults for 25 s, then
//! every invariant (see the crate documentation). Needs root (namespaces, tmpfs mounts);
//! `scripts/test.sh` filters `needs_root` tests out where that is missing, so they show
//! as skipped.

use std::process::Command;

fn count(report: &str, label: &str) -> u64 {
    report
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} in the report:\n{report}"))
}

#[test]
fn needs_root_netns_chaos_short() {
    let out = Command::new(env!("CARGO_BIN_EXE_agora-chaos"))
        .args(["--seconds", "25", "--seed", "11", "--agents", "3"])
        .output()
        .expect("running agora-chaos");
    let report = String::from_utf8_lossy(&out.stdout);
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "agora-chaos found violations or could not run:\n{report}\n{logs}"
    );
    assert_eq!(count(&report, "violations: "), 0, "{report}");
    assert!(count(&report, "faults injected: ") >= 5, "{report}");
    assert!(count(&report, "tasks launched: ") >= 20, "{report}");
}
