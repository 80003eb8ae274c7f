//! Smoke test of the scale harness: a tiny, bounded `agora-loadgen launch` against a real
//! `agora-master` process (spawned by the harness from the same target directory; the CI
//! script builds the workspace binaries first: `cargo build --workspace --bins`). Checks
//! that tasks reached RUNNING, that nothing was lost, that the report and charts were
//! written, and that the master the harness started is gone afterwards.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn master_bin() -> PathBuf {
    let loadgen = PathBuf::from(env!("CARGO_BIN_EXE_agora-loadgen"));
    let p = loadgen
        .parent()
        .map(|d| d.join("agora-master"))
        .expect("target directory");
    assert!(
        p.exists(),
        "{} is missing: build the workspace binaries first (cargo build --workspace --bins)",
        p.display()
    );
    p
}

/// Live processes of `bin` whose command line mentions `marker` (the run's results
/// directory, which holds the spawned master's data dir). Other tests start the same binary
/// concurrently; only this run's master counts.
fn pids_of(bin: &Path, marker: &Path) -> Vec<u32> {
    let marker = marker.display().to_string();
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker));
        if ours && std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == bin) {
            out.push(pid);
        }
    }
    out
}

#[test]
fn tiny_launch_run_reports_and_cleans_up() {
    let master = master_bin();
    let results = std::env::temp_dir().join(format!(
        "agora-loadgen-smoke-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    let before = pids_of(&master, &results);
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_agora-loadgen"))
        .args(["--results", results.to_str().expect("utf-8 temp dir")])
        .args(["--master-bin", master.to_str().expect("utf-8 path")])
        .args(["--max-seconds", "18"])
        .args(["launch", "--agents", "20", "--frameworks", "2"])
        .args([
            "--duration-secs",
            "3",
            "--task-secs",
            "1",
            "--task-jitter-secs",
            "0.5",
        ])
        .args(["--kill-fraction", "0.2"])
        .output()
        .expect("running agora-loadgen");
    let took = t0.elapsed();
    let log = format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "agora-loadgen failed ({:?})\n{log}",
        out.status
    );
    assert!(took < Duration::from_secs(20), "took {took:?}\n{log}");

    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(results.join("report.json")).expect("report.json written"),
    )
    .expect("report.json is JSON");
    let size = &report["figures"]["sizes"][0];
    assert_eq!(size["agents"], 20, "{report}");
    let c = &size["counters"];
    assert_eq!(c["agent_registrations"], 20, "{report}");
    assert_eq!(c["subscriptions"], 2, "{report}");
    assert!(
        c["running"].as_u64().unwrap_or(0) >= 20,
        "few tasks ran: {report}"
    );
    assert!(
        c["finished"].as_u64().unwrap_or(0) > 0,
        "no task finished: {report}"
    );
    assert_eq!(c["lost_or_failed"], 0, "{report}");
    assert!(
        size["launch_latency_ms"]["count"].as_u64().unwrap_or(0) >= 20,
        "{report}"
    );
    assert!(
        size["launch_latency_ms"]["p99_ms"].as_f64().unwrap_or(0.0) > 0.0,
        "{report}"
    );
    for chart in [
        "running-per-second.svg",
        "launch-latency-vs-agents.svg",
        "master-rss.svg",
    ] {
        let svg = std::fs::read_to_string(results.join(chart)).expect("chart written");
        assert!(svg.starts_with("<svg") && svg.contains("</svg>"), "{chart}");
    }
    assert!(results.join("agents-20").join("master-1.log").exists());

    // The master the harness spawned is gone (reaped before the harness exited).
    let leaked: Vec<u32> = pids_of(&master, &results)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert!(
        leaked.is_empty(),
        "master processes left running: {leaked:?}"
    );
    let _ = std::fs::remove_dir_all(&results);
}
